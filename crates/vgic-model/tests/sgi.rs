//! SGI generation: GICv2 GICD_SGIR, GICv3 ICC_SGI1R_EL1.

mod common;
use common::gicd::*;
use common::*;

/// vCPUs with SGI `sgi` pending (enabling it everywhere first).
fn pending_on(v: &mut TestVgic, version: Version, vcpus: usize, sgi: u32) -> Vec<usize> {
    (0..vcpus)
        .filter(|&c| {
            guest_enable(v, version, c, sgi);
            v.has_pending(c)
        })
        .collect()
}

fn sgir(filter: u64, list: u64, sgi: u64) -> u64 {
    (filter << 24) | (list << 16) | sgi
}

#[test]
fn v2_sgir_filters() {
    let cases: [(u64, u64, usize, &[usize]); 7] = [
        (0, 0b1010, 0, &[1, 3]),
        (0, 0b1111_0000, 0, &[]), // vCPUs 4..7 do not exist in a 4-vCPU VM
        (0, 0b1, 0, &[0]),        // a list may name the sender
        (1, 0, 2, &[0, 1, 3]),    // all but self
        (1, 0xFF, 2, &[0, 1, 3]), // the list is ignored
        (2, 0b1000, 1, &[1]),     // self
        (3, 0xFF, 1, &[]),        // reserved
    ];
    for (filter, list, from, expect) in cases {
        let mut v = vgic(Version::V2, 4, &[]);
        let mut fx = Effects::new();
        v.gicd_write(from, SGIR, 4, sgir(filter, list, 7), &mut fx);
        let kicked: Vec<usize> = (0..4).filter(|&c| fx.kick & (1 << c) != 0).collect();
        assert!(kicked.is_empty(), "not enabled yet: nobody to kick");
        assert_eq!(
            pending_on(&mut v, Version::V2, 4, 7),
            expect,
            "filter {filter} list {list:#x}"
        );
        for &t in expect {
            let (e, s) = v.next_for_lr(t).unwrap();
            assert_eq!(
                (e.intid, e.source_cpu, s),
                (7, from as u8, LrState::Pending)
            );
        }
    }
}

#[test]
fn v2_sgi_kicks_enabled_targets() {
    let mut v = vgic(Version::V2, 4, &[]);
    for c in 0..4 {
        guest_enable(&mut v, Version::V2, c, 1);
    }
    let mut fx = Effects::new();
    v.gicd_write(0, SGIR, 4, sgir(1, 0, 1), &mut fx);
    assert_eq!(fx.kick, 0b1110);
}

#[test]
fn v2_sgi_sources_are_separate() {
    let mut v = vgic(Version::V2, 4, &[]);
    guest_enable(&mut v, Version::V2, 1, 5);
    let mut fx = Effects::new();
    v.gicd_write(2, SGIR, 4, sgir(0, 0b10, 5), &mut fx);
    v.gicd_write(0, SGIR, 4, sgir(0, 0b10, 5), &mut fx);
    v.gicd_write(0, SGIR, 4, sgir(0, 0b10, 5), &mut fx); // coalesces with the previous one
    assert_eq!(v.gicd_read(1, SPENDSGIR + 4, 4), 0b101 << 8);
    // One LR per SGI: source 0 first, EOI maintenance requested because source 2 waits.
    let (e, s) = v.next_for_lr(1).unwrap();
    assert_eq!(
        (e.intid, e.source_cpu, e.eoi, s),
        (5, 0, true, LrState::Pending)
    );
    assert_eq!(v.next_for_lr(1), None);
    // The LR encoding carries the source.
    assert_eq!(lr_v2_decode(lr_v2_encode(&e, s)), (e, s));
    v.lr_returned(1, e, LrState::Invalid);
    let (e, s) = v.next_for_lr(1).unwrap();
    assert_eq!((e.source_cpu, e.eoi, s), (2, false, LrState::Pending));
    // A repeat from source 2 while its instance is in the LR is kept (the guest may have
    // acknowledged it already) and merges if the LR comes back still pending.
    fx.clear();
    v.gicd_write(2, SGIR, 4, sgir(0, 0b10, 5), &mut fx);
    assert_eq!(fx.kick, 0b10);
    v.lr_returned(1, e, LrState::Pending);
    let (e, s) = v.next_for_lr(1).unwrap();
    assert_eq!((e.source_cpu, e.eoi, s), (2, false, LrState::Pending));
    v.lr_returned(1, e, LrState::Active);
    let (e, s) = v.next_for_lr(1).unwrap();
    assert_eq!((e.source_cpu, s), (2, LrState::Active));
    v.lr_returned(1, e, LrState::Invalid);
    assert_eq!(v.next_for_lr(1), None);
}

fn sgi1r(aff3: u64, aff2: u64, aff1: u64, rs: u64, list: u64, irm: bool, sgi: u64) -> u64 {
    (aff3 << 48)
        | (rs << 44)
        | (u64::from(irm) << 40)
        | (aff2 << 32)
        | (sgi << 24)
        | (aff1 << 16)
        | list
}

#[test]
fn v3_sgi1r_targets() {
    // Two clusters: Aff1 = 0 (vCPUs 0, 1), Aff1 = 1 (vCPUs 2, 3); vCPU 4 has Aff0 = 17.
    let mpidr = [0x0, 0x1, 0x100, 0x101, 0x11];
    let cases: [(u64, usize, &[usize]); 9] = [
        (sgi1r(0, 0, 0, 0, 0b10, false, 3), 0, &[1]),
        (sgi1r(0, 0, 1, 0, 0b11, false, 3), 0, &[2, 3]),
        (sgi1r(0, 0, 0, 0, 0b11, false, 3), 1, &[0, 1]),
        (sgi1r(0, 0, 0, 1, 0b10, false, 3), 0, &[4]), // RS = 1: Aff0 16 + 1
        (sgi1r(0, 0, 0, 0, 0xFFFC, false, 3), 0, &[]), // Aff0 2..15: none in the VM
        (sgi1r(0, 0, 2, 0, 0xFFFF, false, 3), 0, &[]), // no Aff1 = 2
        (sgi1r(1, 0, 0, 0, 0b1, false, 3), 0, &[]),   // Aff3 = 1
        (sgi1r(0, 7, 0, 0, 0b1, false, 3), 0, &[]),   // Aff2 = 7
        (sgi1r(9, 9, 9, 0, 0, true, 3), 2, &[0, 1, 3, 4]), // IRM: all but self
    ];
    for (value, from, expect) in cases {
        let mut v = TestVgic::empty();
        v.init(&VgicConfig {
            version: Version::V3,
            vcpus: 5,
            owned_spis: &[],
            vcpu_mpidr: &mpidr,
        })
        .unwrap();
        for c in 0..5 {
            guest_enable(&mut v, Version::V3, c, 3);
        }
        let mut fx = Effects::new();
        v.sgi1r_write(from, value, &mut fx);
        let got: Vec<usize> = (0..5).filter(|&c| v.has_pending(c)).collect();
        assert_eq!(got, expect, "{value:#x} from {from}");
        let kicked: Vec<usize> = (0..5).filter(|&c| fx.kick & (1 << c) != 0).collect();
        assert_eq!(kicked, expect);
        for &t in expect {
            let (e, s) = v.next_for_lr(t).unwrap();
            assert_eq!((e.intid, e.source_cpu, s), (3, 0, LrState::Pending));
        }
    }
}

#[test]
fn v3_sgi1r_intid_field_and_version() {
    let mut v = vgic(Version::V3, 2, &[]);
    guest_enable(&mut v, Version::V3, 1, 15);
    let mut fx = Effects::new();
    v.sgi1r_write(0, sgi1r(0, 0, 0, 0, 0b10, false, 15), &mut fx);
    assert_eq!(v.next_for_lr(1).map(|(e, _)| e.intid), Some(15));
    // Pending state is visible in the target's GICR_ISPENDR0 (15 sits pending in an LR).
    v.sgi1r_write(0, sgi1r(0, 0, 0, 0, 0b10, false, 4), &mut fx);
    assert_eq!(
        v.gicr_read(0, GICR_STRIDE + 0x1_0200, 4),
        (1 << 15) | (1 << 4)
    );
    // Unknown sender: ignored.
    v.sgi1r_write(7, sgi1r(0, 0, 0, 0, 0b11, false, 2), &mut fx);
    assert_eq!(v.gicr_read(0, 0x1_0200, 4), 0);
    // Not on GICv2.
    let mut v = vgic(Version::V2, 2, &[]);
    v.sgi1r_write(0, sgi1r(0, 0, 0, 0, 0b11, false, 2), &mut fx);
    assert_eq!(v.gicd_read(1, ISPENDR, 4), 0);
}
