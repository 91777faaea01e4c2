//! GICv3 redistributor frames.

mod common;
use common::gicd::*;
use common::*;

const SGI: u64 = 0x1_0000;

fn rd(vcpu: u64, off: u64) -> u64 {
    vcpu * GICR_STRIDE + off
}

#[test]
fn rd_frame() {
    let mut v = TestVgic::empty();
    let mpidr = [0x8000_0000, 0x8000_0001, 0x01_8002_0300]; // Aff3 1, Aff2 2, Aff1 3
    v.init(&VgicConfig {
        version: Version::V3,
        vcpus: 3,
        owned_spis: &[],
        vcpu_mpidr: &mpidr,
    })
    .unwrap();
    // TYPER: Affinity_Value [63:32] = Aff3.Aff2.Aff1.Aff0, Processor_Number [23:8], Last [4].
    assert_eq!(v.gicr_read(0, rd(0, 0x8), 8), 0);
    assert_eq!(v.gicr_read(0, rd(1, 0x8), 8), (1 << 32) | (1 << 8));
    assert_eq!(
        v.gicr_read(0, rd(2, 0x8), 8),
        (0x0102_0300 << 32) | (2 << 8) | (1 << 4)
    );
    assert_eq!(v.gicr_read(1, rd(2, 0xC), 4), 0x0102_0300);
    assert_eq!(v.gicr_read(1, rd(2, 0x8), 4), (2 << 8) | (1 << 4));
    // IIDR, PIDR2 (ArchRev 3), CIDR.
    assert_eq!(v.gicr_read(0, rd(1, 0x4), 4), 0x43B);
    assert_eq!(v.gicr_read(0, rd(1, 0xFFE8), 4), 0x3B);
    assert_eq!(v.gicr_read(0, rd(1, 0xFFFC), 4), 0xB1);
    // CTLR, PROPBASER, PENDBASER: RAZ/WI (no LPIs).
    let mut fx = Effects::new();
    for (off, size) in [(0x0, 4), (0x10, 4), (0x70, 8), (0x78, 8)] {
        v.gicr_write(0, rd(0, off), size, u64::MAX, &mut fx);
        assert_eq!(v.gicr_read(0, rd(0, off), size), 0);
    }
    // TYPER is read-only.
    v.gicr_write(0, rd(0, 0x8), 8, u64::MAX, &mut fx);
    assert_eq!(v.gicr_read(0, rd(0, 0x8), 8), 0);
}

#[test]
fn waker() {
    let mut v = vgic(Version::V3, 2, &[]);
    let mut fx = Effects::new();
    // ProcessorSleep [1] resets to 1; ChildrenAsleep [2] follows it.
    assert_eq!(v.gicr_read(0, rd(0, 0x14), 4), 0b110);
    v.gicr_write(0, rd(0, 0x14), 4, 0, &mut fx);
    assert_eq!(v.gicr_read(0, rd(0, 0x14), 4), 0);
    assert_eq!(v.gicr_read(0, rd(1, 0x14), 4), 0b110, "per vCPU");
    v.gicr_write(0, rd(0, 0x14), 4, 0b100, &mut fx);
    assert_eq!(
        v.gicr_read(0, rd(0, 0x14), 4),
        0,
        "ChildrenAsleep is read-only"
    );
    v.gicr_write(0, rd(0, 0x14), 4, 0b010, &mut fx);
    assert_eq!(v.gicr_read(0, rd(0, 0x14), 4), 0b110);
    // Byte access to WAKER.
    v.gicr_write(1, rd(1, 0x14), 1, 0, &mut fx);
    assert_eq!(v.gicr_read(1, rd(1, 0x14), 1), 0);
}

#[test]
fn sgi_frame_round_trips() {
    let mut v = vgic(Version::V3, 2, &[]);
    let mut fx = Effects::new();
    let f = |vcpu, off| rd(vcpu, SGI + off);
    v.gicr_write(0, f(0, IGROUPR), 4, 0xFFFF_FFFF, &mut fx);
    assert_eq!(v.gicr_read(0, f(0, IGROUPR), 4), 0xFFFF_FFFF);
    assert_eq!(v.gicr_read(0, f(1, IGROUPR), 4), 0, "frames are per vCPU");
    for (set, clear) in [
        (ISENABLER, ICENABLER),
        (ISPENDR, ICPENDR),
        (ISACTIVER, ICACTIVER),
    ] {
        v.gicr_write(0, f(1, set), 4, 0x0800_0002, &mut fx);
        assert_eq!(v.gicr_read(0, f(1, set), 4), 0x0800_0002);
        assert_eq!(v.gicr_read(1, f(1, clear), 4), 0x0800_0002);
        assert_eq!(v.gicr_read(1, f(0, set), 4), 0);
        v.gicr_write(1, f(1, clear), 4, 0x2, &mut fx);
        assert_eq!(v.gicr_read(0, f(1, set), 4), 0x0800_0000);
    }
    // Private enables are never mirrored to the physical GIC.
    assert!(fx.phys_enable.is_empty() && fx.phys_disable.is_empty());
    // IPRIORITYR0-7, byte access, 5 bits.
    v.gicr_write(1, f(1, IPRIORITYR + 27), 1, 0x9F, &mut fx);
    assert_eq!(v.gicr_read(1, f(1, IPRIORITYR + 24), 4), 0x9800_0000);
    v.gicr_write(1, f(1, IPRIORITYR), 8, 0x1122_3344_5566_7788, &mut fx);
    assert_eq!(v.gicr_read(1, f(1, IPRIORITYR), 8), 0x1020_3040_5060_7088);
    // Beyond IPRIORITYR7 (INTIDs >= 32) and ITARGETSR: RAZ/WI.
    v.gicr_write(1, f(1, IPRIORITYR + 32), 4, 0xFFFF_FFFF, &mut fx);
    assert_eq!(v.gicr_read(1, f(1, IPRIORITYR + 32), 4), 0);
    assert_eq!(v.gicr_read(1, f(1, ITARGETSR), 4), 0);
    // ICFGR0: SGIs RO edge; ICFGR1: PPIs programmable.
    assert_eq!(v.gicr_read(0, f(0, ICFGR), 4), 0xAAAA_AAAA);
    v.gicr_write(0, f(0, ICFGR), 4, 0, &mut fx);
    assert_eq!(v.gicr_read(0, f(0, ICFGR), 4), 0xAAAA_AAAA);
    v.gicr_write(0, f(0, ICFGR + 4), 4, 0xFFFF_FFFF, &mut fx);
    assert_eq!(v.gicr_read(0, f(0, ICFGR + 4), 4), 0xAAAA_AAAA);
    assert_eq!(v.gicr_read(0, f(1, ICFGR + 4), 4), 0);
    // IGRPMODR0, NSACR: RAZ/WI.
    for off in [0xD00, 0xE00] {
        v.gicr_write(0, f(0, off), 4, 0xFFFF_FFFF, &mut fx);
        assert_eq!(v.gicr_read(0, f(0, off), 4), 0);
    }
    assert_eq!(fx.denied, None);
}

#[test]
fn outside_the_region_and_v2() {
    let mut v = vgic(Version::V3, 2, &[]);
    let mut fx = Effects::new();
    // A third frame does not exist for a 2-vCPU VM.
    v.gicr_write(0, rd(2, SGI + ISENABLER), 4, 1, &mut fx);
    assert_eq!(v.gicr_read(0, rd(2, SGI + ISENABLER), 4), 0);
    assert_eq!(v.gicr_read(0, rd(2, 0x8), 8), 0);
    assert_eq!(v.gicr_read(0, u64::MAX - 7, 8), 0);
    assert_eq!(v.gicr_read(5, rd(0, 0x8), 8), 0, "unknown accessing vCPU");
    let mut v = vgic(Version::V2, 2, &[]);
    v.gicr_write(0, rd(0, SGI + ISENABLER), 4, 1, &mut fx);
    assert_eq!(v.gicr_read(0, rd(0, 0x14), 4), 0);
    assert_eq!(v.gicd_read(0, ISENABLER, 4), 0);
}
