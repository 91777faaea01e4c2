//! Injection, routing and the list-register policy.

mod common;
use common::gicd::*;
use common::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[test]
fn inject_disabled_then_enable_kicks() {
    for version in [Version::V3, Version::V2] {
        let mut v = vgic(version, 2, &[40]);
        assert_eq!(
            v.inject(0, 40, None),
            None,
            "disabled: latched, nobody to kick"
        );
        assert!(!v.has_pending(0));
        let (isp, bit) = bit_reg(ISPENDR, 40);
        assert_eq!(v.gicd_read(0, isp, 4), bit, "pending while disabled");
        let fx = guest_enable(&mut v, version, 0, 40);
        assert_eq!(fx.kick, 1, "enabling a pending interrupt kicks its vCPU");
        assert!(v.has_pending(0) && !v.has_pending(1));
        assert_eq!(v.inject(0, 40, None), None, "already pending");
        let (e, s) = v.next_for_lr(0).unwrap();
        assert_eq!(
            (e.intid, e.hw, e.group1, s),
            (40, None, true, LrState::Pending)
        );
        assert_eq!(v.next_for_lr(0), None);
    }
}

#[test]
fn group_enable_gates_delivery() {
    let mut v = vgic(Version::V3, 1, &[40, 41]);
    guest_enable(&mut v, Version::V3, 0, 40);
    let mut fx = Effects::new();
    v.gicd_write(0, ISENABLER + 4, 4, 1 << 9, &mut fx); // 41 enabled, Group 0
    v.gicd_write(0, CTLR, 4, 0, &mut fx);
    assert_eq!(v.inject(0, 40, None), None);
    assert_eq!(v.inject(0, 41, None), None);
    assert!(!v.has_pending(0));
    fx.clear();
    v.gicd_write(0, CTLR, 4, 0b01, &mut fx); // Group 0 only
    assert_eq!(fx.kick, 1);
    let (e, _) = v.next_for_lr(0).unwrap();
    assert_eq!((e.intid, e.group1), (41, false));
    assert!(!v.has_pending(0));
    v.gicd_write(0, CTLR, 4, 0b11, &mut fx);
    assert_eq!(
        v.next_for_lr(0).map(|(e, _)| (e.intid, e.group1)),
        Some((40, true))
    );
}

#[test]
fn ppi_with_hardware_link() {
    let mut v = vgic(Version::V3, 2, &[]);
    guest_enable(&mut v, Version::V3, 1, 27);
    assert_eq!(v.inject(1, 27, Some(27)), Some(1));
    assert!(!v.has_pending(0));
    let (e, s) = v.next_for_lr(1).unwrap();
    assert_eq!(
        (e.intid, e.hw, e.eoi, s),
        (27, Some(27), false, LrState::Pending)
    );
    assert_eq!(lr_v3_decode(lr_v3_encode(&e, s)), (e, s));
    // The guest deactivated it (LR invalid): nothing left.
    v.lr_returned(1, e, LrState::Invalid);
    assert!(!v.has_pending(1));
    // Unknown vCPU.
    assert_eq!(v.inject(2, 27, None), None);
}

#[test]
fn hardware_spi() {
    let mut v = vgic(Version::V2, 1, &[48]);
    let fx = guest_enable(&mut v, Version::V2, 0, 48);
    assert_eq!(fx.phys_enable.as_slice(), &[48]);
    assert_eq!(v.inject(0, 48, Some(48)), Some(0));
    let (e, s) = v.next_for_lr(0).unwrap();
    assert_eq!((e.hw, s), (Some(48), LrState::Pending));
    // Guest made it pending again while active (ISPENDR): a HW LR cannot be pending+active,
    // so it goes back Active and the pending state waits in the model.
    v.lr_returned(0, e, LrState::Active);
    let mut fx = Effects::new();
    let (isp, bit) = bit_reg(ISPENDR, 48);
    v.gicd_write(0, isp, 4, bit, &mut fx);
    assert_eq!(fx.kick, 1);
    let (e, s) = v.next_for_lr(0).unwrap();
    assert_eq!((e.hw, e.eoi, s), (Some(48), false, LrState::Active));
    assert_eq!(v.next_for_lr(0), None);
    // Deactivated (the physical one with it); the guest's own pending instance is not
    // hardware-linked.
    v.lr_returned(0, e, LrState::Invalid);
    let (e, s) = v.next_for_lr(0).unwrap();
    assert_eq!((e.hw, s), (None, LrState::Pending));
    v.lr_returned(0, e, LrState::Invalid);
    // The next physical firing is linked again.
    assert_eq!(v.inject(0, 48, Some(48)), Some(0));
    assert_eq!(v.next_for_lr(0).map(|(e, _)| e.hw), Some(Some(48)));
    fx.clear();
    let (ice, bit) = bit_reg(ICENABLER, 48);
    v.gicd_write(0, ice, 4, bit, &mut fx);
    assert_eq!(fx.phys_disable.as_slice(), &[48]);
}

#[test]
fn guest_dropping_a_hardware_instance_deactivates_it() {
    let mut v = vgic(Version::V3, 1, &[48, 49]);
    let mut fx = Effects::new();
    // Pending in the model (group disabled, so not handed out), then cleared by the guest.
    assert_eq!(v.inject(0, 48, Some(48)), None);
    let (icp, bit) = bit_reg(ICPENDR, 48);
    v.gicd_write(0, icp, 4, bit, &mut fx);
    assert_eq!(fx.phys_deactivate.as_slice(), &[48]);
    fx.clear();
    v.gicd_write(0, icp, 4, bit, &mut fx);
    assert!(fx.phys_deactivate.is_empty(), "only once");
    // Came back active from an LR, then the guest clears the active state.
    guest_enable(&mut v, Version::V3, 0, 49);
    assert_eq!(v.inject(0, 49, Some(49)), Some(0));
    let (e, _) = v.next_for_lr(0).unwrap();
    v.lr_returned(0, e, LrState::Active);
    fx.clear();
    let (ica, bit) = bit_reg(ICACTIVER, 49);
    v.gicd_write(0, ica, 4, bit, &mut fx);
    assert_eq!(fx.phys_deactivate.as_slice(), &[49]);
    assert!(!v.has_pending(0));
    // Guest-made pending/active instances are never hardware-linked.
    fx.clear();
    let (isp, _) = bit_reg(ISPENDR, 49);
    v.gicd_write(0, isp, 4, bit, &mut fx);
    assert_eq!(v.next_for_lr(0).map(|(e, _)| e.hw), Some(None));
    let (isa, _) = bit_reg(ISACTIVER, 48);
    v.gicd_write(0, isa, 4, 1 << 16, &mut fx);
    v.gicd_write(0, ica, 4, 1 << 16, &mut fx);
    assert!(fx.phys_deactivate.is_empty());
}

#[test]
fn lr_returned_pending_requeues() {
    let mut v = vgic(Version::V3, 1, &all_spis());
    guest_enable(&mut v, Version::V3, 0, 50);
    v.inject(0, 50, None);
    let (e, s) = v.next_for_lr(0).unwrap();
    assert_eq!(s, LrState::Pending);
    assert!(!v.has_pending(0));
    v.lr_returned(0, e, LrState::Pending);
    assert!(v.has_pending(0));
    assert_eq!(v.next_for_lr(0), Some((e, LrState::Pending)));
    // Returning twice, or an entry never handed out, changes nothing.
    v.lr_returned(0, e, LrState::Invalid);
    v.lr_returned(0, e, LrState::Pending);
    let mut other = e;
    other.intid = 51;
    v.lr_returned(0, other, LrState::Pending);
    assert_eq!(v.next_for_lr(0), None);
}

#[test]
fn active_comes_back_active_and_merges_new_pending() {
    let mut v = vgic(Version::V3, 2, &all_spis());
    guest_enable(&mut v, Version::V3, 0, 60);
    v.inject(0, 60, None);
    let (e, _) = v.next_for_lr(0).unwrap();
    // Re-triggered while the LR holds it (active): the vCPU must sync its LRs.
    assert_eq!(v.inject(0, 60, None), Some(0));
    assert_eq!(v.inject(0, 60, None), None, "coalesced");
    v.lr_returned(0, e, LrState::Active);
    let (e, s) = v.next_for_lr(0).unwrap();
    assert_eq!((e.intid, s), (60, LrState::PendingActive));
    // An active interrupt goes back into an LR even when disabled meanwhile.
    v.lr_returned(0, e, LrState::Active);
    let mut fx = Effects::new();
    let (ice, bit) = bit_reg(ICENABLER, 60);
    v.gicd_write(0, ice, 4, bit, &mut fx);
    assert_eq!(
        v.next_for_lr(0).map(|(e, s)| (e.intid, s)),
        Some((60, LrState::Active))
    );
    // Re-triggered while in the LR: the model cannot know whether the guest acknowledged
    // the LR's instance, so it keeps the new edge and kicks.
    let mut v = vgic(Version::V3, 1, &all_spis());
    guest_enable(&mut v, Version::V3, 0, 61);
    v.inject(0, 61, None);
    let (e, _) = v.next_for_lr(0).unwrap();
    assert_eq!(v.inject(0, 61, None), Some(0));
    // Came back still pending: the two edges merge into one delivery.
    v.lr_returned(0, e, LrState::Pending);
    let (e, s) = v.next_for_lr(0).unwrap();
    assert_eq!(s, LrState::Pending);
    v.lr_returned(0, e, LrState::Invalid);
    assert_eq!(v.next_for_lr(0), None);
    // Came back done: the second edge is delivered.
    v.inject(0, 61, None);
    let (e, _) = v.next_for_lr(0).unwrap();
    assert_eq!(v.inject(0, 61, None), Some(0));
    v.lr_returned(0, e, LrState::Invalid);
    assert_eq!(
        v.next_for_lr(0).map(|(e, s)| (e.intid, s)),
        Some((61, LrState::Pending))
    );
}

#[test]
fn active_ones_go_back_first() {
    let mut v = vgic(Version::V3, 1, &all_spis());
    for (intid, prio) in [(40, 0xF0), (41, 0x10), (42, 0x00)] {
        guest_enable(&mut v, Version::V3, 0, intid);
        guest_priority(&mut v, Version::V3, 0, intid, prio);
    }
    v.inject(0, 40, None);
    let (e, _) = v.next_for_lr(0).unwrap();
    v.lr_returned(0, e, LrState::Active);
    v.inject(0, 41, None);
    v.inject(0, 42, None);
    let order: Vec<(u32, LrState)> = drain(&mut v, 0)
        .iter()
        .map(|(e, s)| (e.intid, *s))
        .collect();
    assert_eq!(
        order,
        [
            (40, LrState::Active),
            (42, LrState::Pending),
            (41, LrState::Pending)
        ]
    );
}

#[test]
fn guest_sees_lr_state_of_handed_out_interrupts() {
    let mut v = vgic(Version::V3, 1, &[40]);
    guest_enable(&mut v, Version::V3, 0, 40);
    v.inject(0, 40, None);
    let (e, _) = v.next_for_lr(0).unwrap();
    let (isp, bit) = bit_reg(ISPENDR, 40);
    let (isa, _) = bit_reg(ISACTIVER, 40);
    assert_eq!(v.gicd_read(0, isp, 4), bit);
    v.lr_returned(0, e, LrState::Active);
    assert_eq!(v.gicd_read(0, isp, 4), 0);
    assert_eq!(v.gicd_read(0, isa, 4), bit);
    let (e, _) = v.next_for_lr(0).unwrap();
    assert_eq!(v.gicd_read(0, isa, 4), bit);
    v.lr_returned(0, e, LrState::Invalid);
    assert_eq!(v.gicd_read(0, isa, 4), 0);
}

#[test]
fn routing_v3() {
    let mut v = vgic(Version::V3, 4, &[40, 41]);
    let mut fx = Effects::new();
    guest_enable(&mut v, Version::V3, 0, 40);
    guest_enable(&mut v, Version::V3, 0, 41);
    let r40 = IROUTER + 8 * 40;
    // Reset route Aff 0.0.0.0 = vCPU 0.
    assert_eq!(v.inject(3, 40, None), Some(0));
    v.next_for_lr(0).unwrap();
    // Aff0 = 2.
    v.gicd_write(0, IROUTER + 8 * 41, 8, 2, &mut fx);
    assert_eq!(v.inject(0, 41, None), Some(2));
    assert_eq!(v.next_for_lr(2).map(|(e, _)| e.intid), Some(41));
    // 1-of-N: the hint wins; a hint outside the VM gives vCPU 0.
    let mut v = vgic(Version::V3, 4, &[40]);
    guest_enable(&mut v, Version::V3, 0, 40);
    v.gicd_write(0, r40, 8, 1 << 31, &mut fx);
    assert_eq!(v.inject(3, 40, None), Some(3));
    let (e, _) = v.next_for_lr(3).unwrap();
    v.lr_returned(3, e, LrState::Invalid);
    assert_eq!(v.inject(7, 40, None), Some(0));
    // A route naming no vCPU of the VM: vCPU 0.
    let mut v = vgic(Version::V3, 4, &[40]);
    guest_enable(&mut v, Version::V3, 0, 40);
    v.gicd_write(0, r40, 8, 0x0000_0001_0000_0002, &mut fx);
    assert_eq!(v.inject(2, 40, None), Some(0));
}

#[test]
fn routing_follows_a_pending_interrupt() {
    let mut v = vgic(Version::V3, 2, &[40]);
    assert_eq!(v.inject(0, 40, None), None); // disabled, pending on vCPU 0
    let mut fx = Effects::new();
    v.gicd_write(0, IROUTER + 8 * 40, 8, 1, &mut fx);
    let fx = guest_enable(&mut v, Version::V3, 0, 40);
    assert_eq!(fx.kick, 0b10);
    assert!(!v.has_pending(0));
    let (e, _) = v.next_for_lr(1).unwrap();
    assert_eq!(e.intid, 40);
    // Once in an LR it stays with that vCPU until returned.
    let mut fx = Effects::new();
    v.gicd_write(0, IROUTER + 8 * 40, 8, 0, &mut fx);
    assert_eq!(
        v.inject(0, 40, None),
        Some(1),
        "stays with vCPU 1, whose LR holds it"
    );
    assert_eq!(v.next_for_lr(0), None);
    assert_eq!(v.next_for_lr(1), None, "not offered again while in an LR");
    // Back from the LR, the new edge is delivered where it was pending (a pending SPI
    // moves only at routing writes).
    v.lr_returned(1, e, LrState::Invalid);
    assert_eq!(v.next_for_lr(1).map(|(e, _)| e.intid), Some(40));
}

#[test]
fn routing_v2() {
    let mut v = vgic(Version::V2, 4, &[40]);
    guest_enable(&mut v, Version::V2, 0, 40);
    let mut fx = Effects::new();
    // No target: vCPU 0.
    assert_eq!(v.inject(2, 40, None), Some(0));
    let (e, _) = v.next_for_lr(0).unwrap();
    v.lr_returned(0, e, LrState::Invalid);
    v.gicd_write(0, ITARGETSR + 40, 1, 0b0100, &mut fx);
    assert_eq!(v.inject(0, 40, None), Some(2));
    let (e, _) = v.next_for_lr(2).unwrap();
    v.lr_returned(2, e, LrState::Invalid);
    // Several targets: the hint if it is one of them, else the lowest.
    v.gicd_write(0, ITARGETSR + 40, 1, 0b1010, &mut fx);
    assert_eq!(v.inject(3, 40, None), Some(3));
    let (e, _) = v.next_for_lr(3).unwrap();
    v.lr_returned(3, e, LrState::Invalid);
    assert_eq!(v.inject(2, 40, None), Some(1));
}

#[test]
fn guest_ispendr_on_spi_and_ppi() {
    let mut v = vgic(Version::V3, 2, &[40]);
    guest_enable(&mut v, Version::V3, 0, 40);
    guest_enable(&mut v, Version::V3, 1, 20);
    let mut fx = Effects::new();
    let (isp, bit) = bit_reg(ISPENDR, 40);
    v.gicd_write(1, isp, 4, bit, &mut fx);
    assert_eq!(fx.kick, 1);
    v.gicr_write(0, GICR_STRIDE + 0x1_0200, 4, 1 << 20, &mut fx);
    assert_eq!(fx.kick, 0b11);
    assert_eq!(v.next_for_lr(1).map(|(e, _)| e.intid), Some(20));
    assert_eq!(v.next_for_lr(0).map(|(e, _)| e.intid), Some(40));
}

#[test]
fn higher_priority_arrival_reclaims_an_lr() {
    let mut v = vgic(Version::V3, 1, &all_spis());
    for (intid, prio) in [(40, 0x80), (41, 0x90), (42, 0xA0), (43, 0xB0), (44, 0x10)] {
        guest_enable(&mut v, Version::V3, 0, intid);
        guest_priority(&mut v, Version::V3, 0, intid, prio);
    }
    for intid in 40..44 {
        v.inject(0, intid, None);
    }
    let mut lrs: Vec<(LrEntry, LrState)> = (0..4).map(|_| v.next_for_lr(0).unwrap()).collect();
    assert!(!v.has_pending(0));
    assert_eq!(v.inject(0, 44, None), Some(0));
    assert!(v.has_pending(0));
    // The hypervisor gives back its lowest-priority pending LR and reloads it.
    let worst = lrs
        .iter()
        .enumerate()
        .max_by_key(|(_, (e, _))| e.priority)
        .unwrap()
        .0;
    let (e, s) = lrs[worst];
    v.lr_returned(0, e, s);
    lrs[worst] = v.next_for_lr(0).unwrap();
    assert_eq!(lrs[worst].0.intid, 44);
    assert_eq!(lrs[worst].0.priority, 0x10);
    // ... and 43 waits for an LR to free up.
    assert!(v.has_pending(0));
    let (e, _) = lrs[0];
    v.lr_returned(0, e, LrState::Invalid);
    assert_eq!(v.next_for_lr(0).map(|(e, _)| e.intid), Some(43));
}

fn versions() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V3), Just(Version::V2)]
}

/// (intid, priority, enabled, group 1) for distinct INTIDs of vCPU 0 (PPIs/SGIs and SPIs).
fn interrupt_set() -> impl Strategy<Value = BTreeMap<u32, (u8, bool, bool)>> {
    prop::collection::btree_map(
        0u32..256,
        (
            any::<u8>(),
            prop::bool::weighted(0.8),
            prop::bool::weighted(0.8),
        ),
        0..64,
    )
}

fn configure(v: &mut TestVgic, version: Version, set: &BTreeMap<u32, (u8, bool, bool)>) {
    let mut fx = Effects::new();
    v.gicd_write(0, CTLR, 4, 0b10, &mut fx); // Group 1 only
    for (&intid, &(prio, enabled, group1)) in set {
        guest_priority(v, version, 0, intid, prio);
        let (grp, bit) = bit_reg(IGROUPR, intid);
        let (en, _) = bit_reg(ISENABLER, intid);
        let frame = if version == Version::V3 && intid < 32 {
            0x1_0000
        } else {
            u64::MAX
        };
        let mut write = |v: &mut TestVgic, off: u64, value: u64| {
            if frame == u64::MAX {
                v.gicd_write(0, off, 4, value, &mut fx);
            } else {
                v.gicr_write(0, frame + off, 4, value, &mut fx);
            }
        };
        if group1 {
            let old = if frame == u64::MAX {
                v.gicd_read(0, grp, 4)
            } else {
                v.gicr_read(0, frame + grp, 4)
            };
            write(v, grp, old | bit);
        }
        if enabled {
            write(v, en, bit);
        }
    }
}

fn expected_order(set: &BTreeMap<u32, (u8, bool, bool)>) -> Vec<(u8, u32)> {
    let mut want: Vec<(u8, u32)> = set
        .iter()
        .filter(|(_, &(_, en, g1))| en && g1)
        .map(|(&i, &(p, _, _))| (p & 0xF8, i))
        .collect();
    want.sort();
    want
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 128 }))]

    /// Everything pending, enabled and group-enabled comes out exactly once, sorted by
    /// (priority, INTID); nothing else does.
    #[test]
    fn next_for_lr_priority_order(version in versions(), set in interrupt_set()) {
        let mut v = vgic(version, 2, &all_spis());
        configure(&mut v, version, &set);
        for &intid in set.keys() {
            v.inject(0, intid, None);
        }
        let out = drain(&mut v, 0);
        let got: Vec<(u8, u32)> = out.iter().map(|(e, _)| (e.priority, e.intid)).collect();
        prop_assert_eq!(got, expected_order(&set));
        prop_assert!(out.iter().all(|(e, s)| *s == LrState::Pending && e.group1 && e.hw.is_none()));
        prop_assert!(!v.has_pending(0));
        prop_assert!(!v.has_pending(1));
    }

    /// A guest with 4 LRs: the hypervisor fills free LRs, the guest takes the best pending
    /// one, activates and completes it; at random the hypervisor also reclaims pending LRs.
    /// Everything is delivered once, in priority order.
    #[test]
    fn four_lrs(
        version in versions(),
        set in interrupt_set(),
        reclaim in prop::collection::vec(any::<bool>(), 1..40),
    ) {
        let mut v = vgic(version, 1, &all_spis());
        configure(&mut v, version, &set);
        for &intid in set.keys() {
            v.inject(0, intid, None);
        }
        let mut lrs: [Option<(LrEntry, LrState)>; 4] = [None; 4];
        let mut delivered = Vec::new();
        for round in 0..1000 {
            for lr in lrs.iter_mut().filter(|l| l.is_none()) {
                *lr = v.next_for_lr(0);
            }
            // Hardware: the highest-priority pending LR is acknowledged (then deactivated).
            let best = lrs
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    let (e, _) = l.filter(|(_, s)| *s == LrState::Pending)?;
                    Some((e.priority, e.intid, i))
                })
                .min();
            let Some((prio, intid, i)) = best else { break };
            delivered.push((prio, intid));
            let (e, _) = lrs[i].unwrap();
            lrs[i] = Some((e, LrState::Active));
            // The guest EOIs; at the next exit the hypervisor syncs LRs.
            lrs[i] = Some((e, LrState::Invalid));
            for (k, lr) in lrs.iter_mut().enumerate() {
                let Some((e, s)) = *lr else { continue };
                let take_back = s == LrState::Invalid || reclaim[(round + k) % reclaim.len()];
                if take_back {
                    v.lr_returned(0, e, s);
                    *lr = None;
                }
            }
        }
        prop_assert_eq!(delivered, expected_order(&set));
        prop_assert!(lrs.iter().all(|l| l.is_none()));
        prop_assert!(!v.has_pending(0));
    }
}

#[derive(Clone, Debug)]
enum Op {
    Gicd {
        vcpu: usize,
        off: u64,
        size: usize,
        value: u64,
    },
    Gicr {
        vcpu: usize,
        off: u64,
        size: usize,
        value: u64,
    },
    Sgi1r {
        vcpu: usize,
        value: u64,
    },
    Inject {
        vcpu: usize,
        intid: u32,
        hw: bool,
    },
    Take {
        vcpu: usize,
    },
    Return {
        pick: prop::sample::Index,
        state: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![Just(1usize), Just(2), Just(4), Just(8), Just(3)];
    let gicd_off = prop_oneof![
        0u64..0x40,
        0x80u64..0xD00,
        0xF00u64..0xF30,
        0x6000u64..0x6900,
        0xFFD0u64..0x1_0000,
        any::<u64>(),
    ];
    let gicr_off = prop_oneof![
        0u64..0x20,
        0x1_0000u64..0x1_0C10,
        0x2_0000u64..0x2_0020,
        0x3_0000u64..0x3_0C10
    ];
    prop_oneof![
        4 => (0usize..3, gicd_off, size.clone(), any::<u64>())
            .prop_map(|(vcpu, off, size, value)| Op::Gicd { vcpu, off, size, value }),
        3 => (0usize..3, gicr_off, size, any::<u64>())
            .prop_map(|(vcpu, off, size, value)| Op::Gicr { vcpu, off, size, value }),
        1 => (0usize..3, any::<u64>()).prop_map(|(vcpu, value)| Op::Sgi1r { vcpu, value }),
        3 => (0usize..3, 0u32..300, any::<bool>())
            .prop_map(|(vcpu, intid, hw)| Op::Inject { vcpu, intid, hw }),
        3 => (0usize..3).prop_map(|vcpu| Op::Take { vcpu }),
        3 => (any::<prop::sample::Index>(), 0u8..4)
            .prop_map(|(pick, state)| Op::Return { pick, state }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

    /// Random guest and hypervisor activity never panics, never hands out an interrupt the
    /// VM does not own, never puts one INTID into two LRs at once, and `has_pending` always
    /// predicts `next_for_lr`.
    #[test]
    fn random_activity(version in versions(), ops in prop::collection::vec(op(), 1..200)) {
        let owned = [33u32, 40, 41, 63, 100, 255];
        let mut v = vgic(version, 2, &owned);
        let mut fx = Effects::new();
        // Held LRs: (vcpu, entry, state).
        let mut held: Vec<(usize, LrEntry, LrState)> = Vec::new();
        for op in ops {
            fx.clear();
            match op {
                Op::Gicd { vcpu, off, size, value } => {
                    v.gicd_write(vcpu, off, size, value, &mut fx);
                    v.gicd_read(vcpu, off, size);
                }
                Op::Gicr { vcpu, off, size, value } => {
                    v.gicr_write(vcpu, off, size, value, &mut fx);
                    v.gicr_read(vcpu, off, size);
                }
                Op::Sgi1r { vcpu, value } => v.sgi1r_write(vcpu, value, &mut fx),
                Op::Inject { vcpu, intid, hw } => {
                    let kicked = v.inject(vcpu, intid, hw.then_some(intid));
                    prop_assert!(kicked.is_none_or(|k| k < 2));
                    if !v.owns(intid) || (intid < 32 && vcpu >= 2) {
                        prop_assert_eq!(kicked, None);
                    }
                }
                Op::Take { vcpu } => {
                    let predicted = v.has_pending(vcpu);
                    let got = v.next_for_lr(vcpu);
                    prop_assert_eq!(predicted, got.is_some());
                    if let Some((e, s)) = got {
                        prop_assert!(vcpu < 2 && v.owns(e.intid) && e.intid < 256);
                        prop_assert!(s != LrState::Invalid);
                        let clash = held.iter().any(|&(hv, he, _)| {
                            he.intid == e.intid && (e.intid >= 32 || hv == vcpu)
                        });
                        prop_assert!(!clash, "INTID {} handed out twice", e.intid);
                        prop_assert!(!(e.hw.is_some() && s == LrState::PendingActive));
                        prop_assert!(!(e.hw.is_some() && e.eoi));
                        held.push((vcpu, e, s));
                    }
                }
                Op::Return { pick, state } => {
                    if !held.is_empty() {
                        let (vcpu, e, _) = held.swap_remove(pick.index(held.len()));
                        v.lr_returned(vcpu, e, LrState::from_bits(state.into()));
                    }
                }
            }
            prop_assert!(v.hint_is_consistent());
            prop_assert!(fx.kick & !0b11 == 0);
            if let Some((off, write)) = fx.denied {
                prop_assert!(write);
                let _ = off;
            }
            let phys = fx.phys_enable.iter().chain(&fx.phys_disable).chain(&fx.phys_deactivate);
            // Physical effects only for interrupts with a physical side: the VM's own SPIs, or a
            // private interrupt injected hardware-linked (the generator links any of them; the
            // hypervisor links only the virtual timer, PPI 27).
            for i in phys {
                prop_assert!(owned.contains(i) || *i < 32);
            }
        }
        // Draining after returning everything terminates.
        for (vcpu, e, s) in held.drain(..) {
            v.lr_returned(vcpu, e, s);
        }
        for vcpu in 0..2 {
            let n = drain(&mut v, vcpu).len();
            prop_assert!(n <= 32 + owned.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

    /// The fast path of a private interrupt leaves the model exactly as `inject` then
    /// `next_for_lr_of` would, or changes nothing when it declines.
    #[test]
    fn private_fast_path_matches_the_general_one(
        version in prop_oneof![Just(Version::V2), Just(Version::V3)],
        intid in prop_oneof![Just(27u32), Just(25u32), 0u32..16],
        enabled in any::<bool>(),
        group1 in any::<bool>(),
        ctlr in 0u64..4,
        priority in any::<u8>(),
        pending in any::<bool>(),
        active in any::<bool>(),
        hw in prop_oneof![Just(None), Just(Some(27u32))],
    ) {
        let mut v = vgic(version, 2, &[]);
        let mut fx = Effects::new();
        let (enable_reg, bit) = bit_reg(ISENABLER, intid);
        let (group_reg, _) = bit_reg(IGROUPR, intid);
        let (pend_reg, _) = bit_reg(ISPENDR, intid);
        let (act_reg, _) = bit_reg(ISACTIVER, intid);
        let prio_reg = IPRIORITYR + u64::from(intid);
        // Private registers: the redistributor's SGI frame on v3, the banked GICD on v2.
        let mut write = |v: &mut TestVgic, off: u64, size: usize, val: u64| match version {
            Version::V3 => v.gicr_write(0, 0x1_0000 + off, size, val, &mut fx),
            Version::V2 => v.gicd_write(0, off, size, val, &mut fx),
        };
        write(&mut v, group_reg, 4, if group1 { bit } else { 0 });
        write(&mut v, prio_reg, 1, u64::from(priority));
        if enabled {
            write(&mut v, enable_reg, 4, bit);
        }
        if pending {
            write(&mut v, pend_reg, 4, bit);
        }
        if active {
            write(&mut v, act_reg, 4, bit);
        }
        v.gicd_write(0, CTLR, 4, ctlr, &mut fx);

        let before = v.clone();
        let mut general = v.clone();
        match v.inject_private_to_lr(0, intid, hw) {
            Some(e) => {
                general.inject(0, intid, hw);
                let (g, state) = general.next_for_lr_of(0, intid).expect("general path lists it");
                prop_assert_eq!(state, LrState::Pending);
                prop_assert_eq!(g, e);
                prop_assert!(v == general, "model states differ");
            }
            None => prop_assert!(v == before, "declined but changed the model"),
        }
    }
}
