//! Target `vgic`: a VM's vGIC model (`tessera_vgic_model::Vgic`) driven by a script of what a
//! guest and the hypervisor can do to it: trapped GICD/GICR reads and writes at any offset
//! and size from any vCPU index (including one past the last), `ICC_SGI1R_EL1` writes,
//! injections of any INTID (hardware-linked or not), list-register refills and returns in
//! any state, and the private-interrupt fast path.
//!
//! Input: version (bit 0 of byte 0: GICv3), vCPU count (1..=4), up to 7 owned SPIs, then
//! operations of a few bytes each. Invariants after every operation: the model's LR hint
//! agrees with a full scan; physical side effects name only SPIs the VM owns (or the
//! INTID of a private interrupt it was given hardware-linked); an LR entry the model hands
//! out survives encoding into both LR formats; at most 4 LRs per vCPU are ever in use.

use tessera_vgic_model::{
    lr_v2_decode, lr_v2_encode, lr_v3_decode, lr_v3_encode, Effects, LrEntry, LrState, Version,
    Vgic, VgicConfig,
};

use crate::Input;

/// vCPU capacity of the fuzzed model.
const VCPUS: usize = 4;
/// INTID capacity (SPIs 32..127).
const IRQS: usize = 128;
/// List registers per vCPU (QEMU's GICv3 has 4).
const LRS: usize = 4;

/// One input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let version = if input.u8() & 1 == 1 {
        Version::V3
    } else {
        Version::V2
    };
    let vcpus = 1 + usize::from(input.u8()) % VCPUS;
    let mut spis: Vec<u32> = (0..input.u8() % 8)
        .map(|_| 32 + u32::from(input.u8()) % (IRQS as u32 - 32 + 8)) // a few beyond capacity
        .collect();
    spis.sort_unstable();
    spis.dedup();
    let mpidr: Vec<u64> = (0..vcpus as u64).map(|i| 0x8000_0000 | i).collect();
    let mut vgic: Box<Vgic<VCPUS, IRQS>> = Box::default();
    let cfg = VgicConfig {
        version,
        vcpus,
        owned_spis: &spis,
        vcpu_mpidr: &mpidr,
    };
    if vgic.init(&cfg).is_err() {
        assert!(
            spis.iter().any(|&s| s as usize >= IRQS),
            "init refused a valid config"
        );
        return;
    }
    let mut fx = Effects::new();
    let mut lrs: Vec<Vec<LrEntry>> = vec![Vec::new(); VCPUS + 1];
    // INTIDs below 32 the hypervisor linked to hardware (their physical effects are allowed).
    let mut linked: Vec<u32> = Vec::new();
    let size = |b: u8| [1usize, 2, 4, 8, 3][usize::from(b) % 5];
    while !input.is_empty() {
        fx.clear();
        let op = input.u8();
        let vcpu = usize::from(input.u8()) % (vcpus + 1);
        match op % 10 {
            0 => {
                let (off, sz) = (u64::from(input.u16()), size(input.u8()));
                let _ = vgic.gicd_read(vcpu, off, sz);
                let _ = vgic.take_denied_read();
            }
            1 => {
                let (off, sz, v) = (u64::from(input.u16()), size(input.u8()), input.u64());
                vgic.gicd_write(vcpu, off, sz, v, &mut fx);
            }
            2 => {
                let (off, sz) = (u64::from(input.u32() % 0x9_0000), size(input.u8()));
                let _ = vgic.gicr_read(vcpu, off, sz);
            }
            3 => {
                let (off, sz, v) = (
                    u64::from(input.u32() % 0x9_0000),
                    size(input.u8()),
                    input.u64(),
                );
                vgic.gicr_write(vcpu, off, sz, v, &mut fx);
            }
            4 => vgic.sgi1r_write(vcpu, input.u64(), &mut fx),
            5 => {
                let intid = u32::from(input.u16()) % 1100;
                let hw = match input.u8() % 3 {
                    0 => Some(intid),
                    1 => Some(u32::from(input.u16()) % 1100),
                    _ => None,
                };
                if let Some(h) = hw {
                    if intid < 32 || vgic.owns(intid) {
                        linked.push(h);
                    }
                }
                if let Some(target) = vgic.inject(vcpu, intid, hw) {
                    assert!(target < vcpus, "inject picked vCPU {target} of {vcpus}");
                }
            }
            6 => {
                if lrs[vcpu].len() < LRS {
                    if let Some((entry, state)) = vgic.next_for_lr(vcpu) {
                        check_entry(&entry, state, version);
                        lrs[vcpu].push(entry);
                    }
                }
            }
            7 => {
                if !lrs[vcpu].is_empty() {
                    let i = usize::from(input.u8()) % lrs[vcpu].len();
                    let entry = lrs[vcpu].swap_remove(i);
                    let state = LrState::from_bits(u64::from(input.u8() & 3));
                    vgic.lr_returned(vcpu, entry, state);
                }
            }
            8 => {
                if lrs[vcpu].len() < LRS {
                    let intid = u32::from(input.u8()) % 40;
                    if let Some(entry) = vgic.inject_private_to_lr(vcpu, intid, None) {
                        check_entry(&entry, LrState::Pending, version);
                        lrs[vcpu].push(entry);
                    }
                }
            }
            _ => {
                // A forged LR coming back (a stale or wrong entry): must be ignored safely.
                let entry = LrEntry {
                    intid: u32::from(input.u16()) % 1100,
                    priority: input.u8(),
                    hw: None,
                    source_cpu: input.u8() % 8,
                    group1: true,
                    eoi: false,
                };
                vgic.lr_returned(vcpu, entry, LrState::from_bits(u64::from(input.u8() & 3)));
            }
        }
        assert!(vgic.hint_is_consistent(), "LR hint disagrees with a scan");
        let phys = fx
            .phys_enable
            .iter()
            .chain(fx.phys_disable.iter())
            .chain(fx.phys_deactivate.iter());
        for &intid in phys {
            assert!(
                vgic.owns(intid) || linked.contains(&intid),
                "physical effect on INTID {intid}, which the VM does not own"
            );
        }
        let _ = vgic.has_pending(vcpu);
    }
}

/// An entry handed to an LR: a real INTID, and both LR encodings keep what they can hold.
fn check_entry(e: &LrEntry, state: LrState, version: Version) {
    assert!(e.intid < IRQS as u32, "LR entry for INTID {}", e.intid);
    assert!(state != LrState::Invalid);
    let (d3, s3) = lr_v3_decode(lr_v3_encode(e, state));
    assert_eq!((d3.intid, d3.hw, s3), (e.intid, e.hw, state));
    if version == Version::V2 {
        let (d2, s2) = lr_v2_decode(lr_v2_encode(e, state));
        assert_eq!((d2.intid, s2), (e.intid, state));
    }
}
