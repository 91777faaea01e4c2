//! Shared set-up for the integration tests.
#![allow(dead_code)]

pub use tessera_vgic_model::*;

/// The capacities the tests use (like the image's `Vgic<8, 256>`).
pub type TestVgic = Vgic<8, 256>;

/// Tessera's default vCPU MPIDRs: `0x8000_0000 | i`.
pub const MPIDR: [u64; 8] = [
    0x8000_0000,
    0x8000_0001,
    0x8000_0002,
    0x8000_0003,
    0x8000_0004,
    0x8000_0005,
    0x8000_0006,
    0x8000_0007,
];

pub fn vgic(version: Version, vcpus: usize, spis: &[u32]) -> TestVgic {
    let mut v = TestVgic::empty();
    v.init(&VgicConfig {
        version,
        vcpus,
        owned_spis: spis,
        vcpu_mpidr: &MPIDR[..vcpus],
    })
    .expect("valid config");
    v
}

pub fn all_spis() -> Vec<u32> {
    (32..256).collect()
}

/// GICD offsets.
pub mod gicd {
    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0004;
    pub const IIDR: u64 = 0x0008;
    pub const IGROUPR: u64 = 0x0080;
    pub const ISENABLER: u64 = 0x0100;
    pub const ICENABLER: u64 = 0x0180;
    pub const ISPENDR: u64 = 0x0200;
    pub const ICPENDR: u64 = 0x0280;
    pub const ISACTIVER: u64 = 0x0300;
    pub const ICACTIVER: u64 = 0x0380;
    pub const IPRIORITYR: u64 = 0x0400;
    pub const ITARGETSR: u64 = 0x0800;
    pub const ICFGR: u64 = 0x0C00;
    pub const SGIR: u64 = 0x0F00;
    pub const CPENDSGIR: u64 = 0x0F10;
    pub const SPENDSGIR: u64 = 0x0F20;
    pub const IROUTER: u64 = 0x6000;
}

/// The word offset of the bit-per-interrupt register at `base` holding `intid`, and its bit.
pub fn bit_reg(base: u64, intid: u32) -> (u64, u64) {
    (base + u64::from(intid / 32) * 4, 1 << (intid % 32))
}

/// Enables both groups, puts `intid` in Group 1 and enables it, through the registers the
/// guest would use (GICD for SPIs and GICv2 SGI/PPIs, the vCPU's GICR SGI frame on v3).
pub fn guest_enable(v: &mut TestVgic, version: Version, vcpu: usize, intid: u32) -> Effects {
    let mut fx = Effects::new();
    v.gicd_write(vcpu, gicd::CTLR, 4, 0b11, &mut fx);
    let (en, bit) = bit_reg(gicd::ISENABLER, intid);
    let (grp, _) = bit_reg(gicd::IGROUPR, intid);
    if version == Version::V3 && intid < 32 {
        let frame = vcpu as u64 * GICR_STRIDE + 0x1_0000;
        let old = v.gicr_read(vcpu, frame + grp, 4);
        v.gicr_write(vcpu, frame + grp, 4, old | bit, &mut fx);
        v.gicr_write(vcpu, frame + en, 4, bit, &mut fx);
    } else {
        let old = v.gicd_read(vcpu, grp, 4);
        v.gicd_write(vcpu, grp, 4, old | bit, &mut fx);
        v.gicd_write(vcpu, en, 4, bit, &mut fx);
    }
    fx
}

/// Sets the priority of `intid` through IPRIORITYR (byte access).
pub fn guest_priority(v: &mut TestVgic, version: Version, vcpu: usize, intid: u32, prio: u8) {
    let mut fx = Effects::new();
    let off = gicd::IPRIORITYR + u64::from(intid);
    if version == Version::V3 && intid < 32 {
        v.gicr_write(
            vcpu,
            vcpu as u64 * GICR_STRIDE + 0x1_0000 + off,
            1,
            prio.into(),
            &mut fx,
        );
    } else {
        v.gicd_write(vcpu, off, 1, prio.into(), &mut fx);
    }
}

/// Everything `next_for_lr` hands out for `vcpu`, without returning any LR.
pub fn drain(v: &mut TestVgic, vcpu: usize) -> Vec<(LrEntry, LrState)> {
    let mut out = Vec::new();
    while let Some(e) = v.next_for_lr(vcpu) {
        out.push(e);
        assert!(out.len() <= 2000, "next_for_lr does not stop");
    }
    out
}
