//! GICD register behaviour on both versions: round trips, banking, RAZ/WI, ownership.

mod common;
use common::gicd::*;
use common::*;

const OWNED: [u32; 4] = [33, 40, 63, 255];

fn both() -> [TestVgic; 2] {
    [vgic(Version::V3, 4, &OWNED), vgic(Version::V2, 4, &OWNED)]
}

#[test]
fn ctlr_v3() {
    let mut v = vgic(Version::V3, 2, &OWNED);
    let mut fx = Effects::new();
    // ARE (bit 4) and DS (bit 6) read as one and cannot be cleared.
    assert_eq!(v.gicd_read(0, CTLR, 4), 0x50);
    v.gicd_write(0, CTLR, 4, 0b11, &mut fx);
    assert_eq!(v.gicd_read(1, CTLR, 4), 0x53);
    v.gicd_write(0, CTLR, 4, 0x2, &mut fx);
    assert_eq!(v.gicd_read(0, CTLR, 4), 0x52);
    v.gicd_write(0, CTLR, 4, 0xFFFF_FF80, &mut fx);
    assert_eq!(v.gicd_read(0, CTLR, 4), 0x50);
}

#[test]
fn ctlr_v2() {
    let mut v = vgic(Version::V2, 2, &OWNED);
    let mut fx = Effects::new();
    assert_eq!(v.gicd_read(0, CTLR, 4), 0);
    v.gicd_write(0, CTLR, 4, 1, &mut fx);
    assert_eq!(v.gicd_read(1, CTLR, 4), 1);
    v.gicd_write(0, CTLR, 4, 0xFFFF_FFFF, &mut fx);
    assert_eq!(v.gicd_read(0, CTLR, 4), 3);
}

#[test]
fn id_registers() {
    let [mut v3, mut v2] = both();
    // ITLinesNumber = 256/32 - 1 = 7, IDbits = 9 (10-bit INTIDs), no LPIs, SecurityExtn 0.
    assert_eq!(v3.gicd_read(0, TYPER, 4), 7 | (9 << 19));
    // CPUNumber = 4 - 1.
    assert_eq!(v2.gicd_read(0, TYPER, 4), 7 | (3 << 5));
    assert_eq!(v3.gicd_read(0, IIDR, 4), 0x43B);
    assert_eq!(v2.gicd_read(0, IIDR, 4), 0x43B);
    assert_eq!(v3.gicd_read(0, 0xFFE8, 4), 0x3B);
    assert_eq!(v2.gicd_read(0, 0xFE8, 4), 0x2B);
    // Component ID 0xB105F00D.
    let cidr: Vec<u64> = (0..4).map(|i| v3.gicd_read(0, 0xFFF0 + 4 * i, 4)).collect();
    assert_eq!(cidr, [0x0D, 0xF0, 0x05, 0xB1]);
    let cidr: Vec<u64> = (0..4).map(|i| v2.gicd_read(0, 0xFF0 + 4 * i, 4)).collect();
    assert_eq!(cidr, [0x0D, 0xF0, 0x05, 0xB1]);
    // The v2 frame is 4 KiB; the v3 ID block is not at the v2 place.
    assert_eq!(v2.gicd_read(0, 0xFFE8, 4), 0);
    assert_eq!(v3.gicd_read(0, 0xFE8, 4), 0);
    // Read-only.
    let mut fx = Effects::new();
    v3.gicd_write(0, TYPER, 4, 0, &mut fx);
    assert_eq!(v3.gicd_read(0, TYPER, 4), 7 | (9 << 19));
    // A3V when an affinity uses Aff3.
    let mut v = TestVgic::empty();
    let mpidr = [0x0, 0x1_0000_0000];
    v.init(&VgicConfig {
        version: Version::V3,
        vcpus: 2,
        owned_spis: &[],
        vcpu_mpidr: &mpidr,
    })
    .unwrap();
    assert_eq!(v.gicd_read(0, TYPER, 4), 7 | (9 << 19) | (1 << 24));
}

/// Bit-per-interrupt set/clear pairs and IGROUPR, on the SPI word holding 32..63.
#[test]
fn bit_registers_spis() {
    for mut v in both() {
        let owned_bits: u64 = (1 << 1) | (1 << 8) | (1 << 31); // 33, 40, 63
        let mut fx = Effects::new();
        // IGROUPR1: read-write.
        v.gicd_write(0, IGROUPR + 4, 4, 0xFFFF_FFFF, &mut fx);
        assert_eq!(v.gicd_read(0, IGROUPR + 4, 4), owned_bits);
        v.gicd_write(0, IGROUPR + 4, 4, 1 << 1, &mut fx);
        assert_eq!(v.gicd_read(1, IGROUPR + 4, 4), 1 << 1);
        for (set, clear) in [
            (ISENABLER, ICENABLER),
            (ISPENDR, ICPENDR),
            (ISACTIVER, ICACTIVER),
        ] {
            assert_eq!(v.gicd_read(0, set + 4, 4), 0);
            v.gicd_write(0, set + 4, 4, 0xFFFF_FFFF, &mut fx);
            assert_eq!(v.gicd_read(0, set + 4, 4), owned_bits, "set {set:#x}");
            assert_eq!(
                v.gicd_read(1, clear + 4, 4),
                owned_bits,
                "clear {clear:#x} reads the state"
            );
            // Writing zeros does nothing.
            v.gicd_write(0, set + 4, 4, 0, &mut fx);
            v.gicd_write(0, clear + 4, 4, 0, &mut fx);
            assert_eq!(v.gicd_read(0, set + 4, 4), owned_bits);
            v.gicd_write(0, clear + 4, 4, 1 << 8, &mut fx);
            assert_eq!(v.gicd_read(0, set + 4, 4), (1 << 1) | (1 << 31));
            // Byte access to the byte holding INTID 63.
            v.gicd_write(0, clear + 7, 1, 0x80, &mut fx);
            assert_eq!(v.gicd_read(0, set + 4, 4), 1 << 1);
            assert_eq!(v.gicd_read(0, set + 4, 1), 1 << 1);
        }
        // A 64-bit access spans two words (INTIDs 0..63).
        v.gicd_write(0, ISENABLER, 8, 1 << 40, &mut fx);
        assert_eq!(v.gicd_read(0, ISENABLER, 8) >> 32, (1 << 1) | (1 << 8));
    }
}

#[test]
fn enable_changes_are_reported_for_mirroring() {
    for mut v in both() {
        let mut fx = Effects::new();
        v.gicd_write(0, ISENABLER + 4, 4, (1 << 1) | (1 << 8), &mut fx);
        assert_eq!(fx.phys_enable.as_slice(), &[33, 40]);
        assert!(fx.phys_disable.is_empty());
        fx.clear();
        // Already enabled: no change, nothing to mirror.
        v.gicd_write(0, ISENABLER + 4, 4, 1 << 1, &mut fx);
        assert!(fx.phys_enable.is_empty());
        v.gicd_write(0, ICENABLER + 4, 4, 0xFFFF_FFFF, &mut fx);
        assert_eq!(fx.phys_disable.as_slice(), &[33, 40]);
        // A full 64-bit write of every SPI fits.
        let mut v = vgic(Version::V3, 1, &all_spis());
        fx.clear();
        v.gicd_write(0, ISENABLER + 8, 8, u64::MAX, &mut fx);
        assert_eq!(fx.phys_enable.len(), 64);
        // Private interrupts are never mirrored.
        let mut v = vgic(Version::V2, 1, &[]);
        fx.clear();
        v.gicd_write(0, ISENABLER, 4, u64::from(u32::MAX), &mut fx);
        assert_eq!(v.gicd_read(0, ISENABLER, 4), u64::from(u32::MAX));
        assert!(fx.phys_enable.is_empty());
    }
}

#[test]
fn priorities() {
    for mut v in both() {
        let mut fx = Effects::new();
        // Byte access; the low 3 bits are RAZ/WI (32 levels).
        v.gicd_write(0, IPRIORITYR + 33, 1, 0xA7, &mut fx);
        assert_eq!(v.gicd_read(0, IPRIORITYR + 33, 1), 0xA0);
        assert_eq!(v.gicd_read(0, IPRIORITYR + 32, 4), 0xA000);
        // Word access over 32..35 (33 owned only); 16-bit access.
        v.gicd_write(0, IPRIORITYR + 32, 4, 0x1122_3344, &mut fx);
        assert_eq!(v.gicd_read(0, IPRIORITYR + 32, 4), 0x3000);
        v.gicd_write(0, IPRIORITYR + 40, 2, 0xFFFF, &mut fx);
        assert_eq!(v.gicd_read(0, IPRIORITYR + 40, 2), 0xF8);
        // 64-bit access covering 56..63.
        v.gicd_write(0, IPRIORITYR + 56, 8, 0x8000_0000_0000_0000, &mut fx);
        assert_eq!(v.gicd_read(0, IPRIORITYR + 56, 8), 0x8000_0000_0000_0000);
        assert_eq!(v.gicd_read(0, IPRIORITYR + 63, 1), 0x80);
    }
}

#[test]
fn priorities_private_v2_banked() {
    let mut v = vgic(Version::V2, 2, &OWNED);
    let mut fx = Effects::new();
    v.gicd_write(0, IPRIORITYR + 27, 1, 0x40, &mut fx);
    v.gicd_write(1, IPRIORITYR + 27, 1, 0x88, &mut fx);
    assert_eq!(v.gicd_read(0, IPRIORITYR + 27, 1), 0x40);
    assert_eq!(v.gicd_read(1, IPRIORITYR + 27, 1), 0x88);
    v.gicd_write(1, ISENABLER, 4, 1 << 27, &mut fx);
    assert_eq!(v.gicd_read(0, ISENABLER, 4), 0);
    assert_eq!(v.gicd_read(1, ISENABLER, 4), 1 << 27);
}

#[test]
fn v3_private_range_is_raz_wi() {
    let mut v = vgic(Version::V3, 2, &OWNED);
    let mut fx = Effects::new();
    for reg in [
        IGROUPR,
        ISENABLER,
        ISPENDR,
        ISACTIVER,
        IPRIORITYR,
        ICFGR + 4,
        ITARGETSR + 32,
    ] {
        v.gicd_write(0, reg, 4, 0xFFFF_FFFF, &mut fx);
        assert_eq!(v.gicd_read(0, reg, 4), 0, "{reg:#x}");
    }
    // Architecturally RAZ/WI, not an ownership violation.
    assert_eq!(fx.denied, None);
    assert_eq!(v.take_denied_read(), None);
    // The redistributor did not change.
    assert_eq!(v.gicr_read(0, 0x1_0100, 4), 0);
    // ITARGETSR does not exist with ARE; SGIR neither.
    v.gicd_write(0, SGIR, 4, 0x0001_0001, &mut fx);
    assert!(!v.has_pending(0) && fx.kick == 0);
}

#[test]
fn itargetsr_v2() {
    let mut v = vgic(Version::V2, 4, &OWNED);
    let mut fx = Effects::new();
    // 0..31: read-only, each byte = the reader's bit.
    assert_eq!(v.gicd_read(2, ITARGETSR, 4), 0x0404_0404);
    assert_eq!(v.gicd_read(1, ITARGETSR + 28, 4), 0x0202_0202);
    v.gicd_write(2, ITARGETSR, 4, 0, &mut fx);
    assert_eq!(v.gicd_read(2, ITARGETSR + 1, 1), 0x04);
    // SPIs: byte access; only existing vCPUs' bits stick.
    v.gicd_write(0, ITARGETSR + 33, 1, 0xFF, &mut fx);
    assert_eq!(v.gicd_read(0, ITARGETSR + 33, 1), 0x0F);
    v.gicd_write(0, ITARGETSR + 40, 4, 0x0302_0104, &mut fx);
    assert_eq!(v.gicd_read(0, ITARGETSR + 40, 4), 0x04);
    assert_eq!(v.gicd_read(0, ITARGETSR + 32, 4), 0x0F00);
}

#[test]
fn icfgr() {
    for mut v in both() {
        let mut fx = Effects::new();
        // INTIDs 32..47: 33 → bits [3:2], 40 → bits [17:16]; bit 2n is RAZ.
        v.gicd_write(0, ICFGR + 8, 4, 0xFFFF_FFFF, &mut fx);
        assert_eq!(v.gicd_read(0, ICFGR + 8, 4), (0b10 << 2) | (0b10 << 16));
        v.gicd_write(0, ICFGR + 8, 4, 0b10 << 16, &mut fx);
        assert_eq!(v.gicd_read(0, ICFGR + 8, 4), 0b10 << 16);
    }
    // v2 banked: SGIs always edge (RO), PPIs programmable.
    let mut v = vgic(Version::V2, 2, &OWNED);
    let mut fx = Effects::new();
    assert_eq!(v.gicd_read(0, ICFGR, 4), 0xAAAA_AAAA);
    v.gicd_write(0, ICFGR, 4, 0, &mut fx);
    assert_eq!(v.gicd_read(0, ICFGR, 4), 0xAAAA_AAAA);
    assert_eq!(v.gicd_read(0, ICFGR + 4, 4), 0);
    v.gicd_write(0, ICFGR + 4, 4, 0b10 << 22, &mut fx); // INTID 27 edge
    assert_eq!(v.gicd_read(0, ICFGR + 4, 4), 0b10 << 22);
    assert_eq!(v.gicd_read(1, ICFGR + 4, 4), 0);
}

#[test]
fn irouter() {
    let mut v = vgic(Version::V3, 4, &OWNED);
    let mut fx = Effects::new();
    let r33 = IROUTER + 8 * 33;
    assert_eq!(v.gicd_read(0, r33, 8), 0);
    // Aff3 [39:32], IRM [31], Aff2/1/0; other bits RES0.
    v.gicd_write(0, r33, 8, 0xFFFF_FF01_FFFF_FFFF, &mut fx);
    assert_eq!(v.gicd_read(0, r33, 8), 0x0000_0001_80FF_FFFF);
    // 32-bit halves.
    v.gicd_write(0, r33, 4, 0x0000_0302, &mut fx);
    v.gicd_write(0, r33 + 4, 4, 0x7, &mut fx);
    assert_eq!(v.gicd_read(0, r33, 8), 0x0000_0007_0000_0302);
    assert_eq!(v.gicd_read(0, r33 + 4, 4), 0x7);
    assert_eq!(v.gicd_read(0, r33, 4), 0x302);
    // Byte within the low half.
    v.gicd_write(0, r33 + 2, 1, 0x05, &mut fx);
    assert_eq!(v.gicd_read(0, r33, 8), 0x0000_0007_0005_0302);
    // INTIDs < 32: reserved, RAZ/WI.
    v.gicd_write(0, IROUTER + 8 * 27, 8, 0x1, &mut fx);
    assert_eq!(v.gicd_read(0, IROUTER + 8 * 27, 8), 0);
    assert_eq!(fx.denied, None);
    // No IROUTER on GICv2.
    let mut v = vgic(Version::V2, 4, &OWNED);
    v.gicd_write(0, r33, 8, 1, &mut fx);
    assert_eq!(v.gicd_read(0, r33, 8), 0);
}

#[test]
fn pendsgir_v2() {
    let mut v = vgic(Version::V2, 4, &[]);
    let mut fx = Effects::new();
    // SPENDSGIR1 byte 1 = SGI 5, sources vCPUs 0 and 2 (bit 6 does not exist).
    v.gicd_write(1, SPENDSGIR + 5, 1, 0b0100_0101, &mut fx);
    assert_eq!(v.gicd_read(1, SPENDSGIR + 4, 4), 0b101 << 8);
    assert_eq!(v.gicd_read(1, CPENDSGIR + 4, 4), 0b101 << 8);
    assert_eq!(v.gicd_read(0, SPENDSGIR + 4, 4), 0, "banked per vCPU");
    assert_eq!(v.gicd_read(1, ISPENDR, 4), 1 << 5);
    v.gicd_write(1, CPENDSGIR + 4, 4, 0b1 << 8, &mut fx);
    assert_eq!(v.gicd_read(1, SPENDSGIR + 5, 1), 0b100);
    v.gicd_write(1, CPENDSGIR + 5, 1, 0xFF, &mut fx);
    assert_eq!(v.gicd_read(1, ISPENDR, 4), 0);
    // ISPENDR/ICPENDR do not touch SGIs on GICv2; PPIs are fine.
    v.gicd_write(1, ISPENDR, 4, 0xFFFF_FFFF, &mut fx);
    assert_eq!(v.gicd_read(1, ISPENDR, 4), 0xFFFF_0000);
    v.gicd_write(1, SPENDSGIR, 1, 1, &mut fx);
    v.gicd_write(1, ICPENDR, 4, 0xFFFF_FFFF, &mut fx);
    assert_eq!(v.gicd_read(1, ISPENDR, 4), 1);
}

#[test]
fn unowned_spis_are_raz_wi_and_reported() {
    for version in [Version::V3, Version::V2] {
        let mut v = vgic(version, 2, &OWNED);
        let mut fx = Effects::new();
        // INTID 34 is not owned.
        let (en, bit) = bit_reg(ISENABLER, 34);
        v.gicd_write(0, en, 4, bit, &mut fx);
        assert_eq!(fx.denied, Some((en, true)));
        assert_eq!(v.gicd_read(0, en, 4), 0);
        assert!(fx.phys_enable.is_empty());
        // Zero bits for unowned ones are no violation.
        fx.clear();
        v.gicd_write(0, en, 4, 1 << 1, &mut fx);
        assert_eq!(fx.denied, None);
        assert_eq!(fx.phys_enable.as_slice(), &[33]);
        // Byte registers: the offending byte's offset.
        v.gicd_write(0, IPRIORITYR + 32, 4, 0x0000_8000, &mut fx);
        assert_eq!(fx.denied, None);
        v.gicd_write(0, IPRIORITYR + 32, 4, 0x0080_8000, &mut fx);
        assert_eq!(fx.denied, Some((IPRIORITYR + 34, true)));
        assert_eq!(v.gicd_read(0, IPRIORITYR + 34, 1), 0);
        assert_eq!(v.gicd_read(0, IPRIORITYR + 33, 1), 0x80);
        // Reads that only cover unowned interrupts are remembered (once, until taken).
        assert_eq!(v.take_denied_read(), Some(IPRIORITYR + 34));
        assert_eq!(v.take_denied_read(), None);
        assert_eq!(v.gicd_read(0, IPRIORITYR + 34, 2), 0);
        v.gicd_read(0, IPRIORITYR + 36, 1);
        assert_eq!(v.take_denied_read(), Some(IPRIORITYR + 34));
        assert_eq!(v.take_denied_read(), None);
        // A word with an owned interrupt in it is a normal read.
        v.gicd_read(0, ISPENDR + 4, 4);
        assert_eq!(v.take_denied_read(), None);
        // Beyond MAX_IRQS (256) and beyond 1019.
        fx.clear();
        v.gicd_write(0, ISENABLER + 4 * 10, 4, 1, &mut fx);
        assert_eq!(fx.denied, Some((ISENABLER + 40, true)));
        assert_eq!(v.gicd_read(0, ISENABLER + 4 * 31, 4), 0);
        assert_eq!(v.take_denied_read(), Some(ISENABLER + 124));
        // Pending, active, config, group, targets likewise.
        for reg in [IGROUPR, ISPENDR, ISACTIVER] {
            fx.clear();
            let (off, bit) = bit_reg(reg, 34);
            v.gicd_write(0, off, 4, bit, &mut fx);
            assert_eq!(fx.denied, Some((off, true)));
            assert_eq!(v.gicd_read(0, off, 4), 0, "{reg:#x}");
        }
        fx.clear();
        v.gicd_write(0, ICFGR + 8, 4, 0b10 << 4, &mut fx); // INTID 34
        assert_eq!(fx.denied, Some((ICFGR + 8, true)));
        // The hypervisor cannot inject it either.
        assert_eq!(v.inject(0, 34, None), None);
        assert!(!v.owns(34) && v.owns(33) && v.owns(27) && v.owns(3) && !v.owns(300));
        assert!(!v.has_pending(0) && !v.has_pending(1));
    }
    // IROUTER of an unowned SPI.
    let mut v = vgic(Version::V3, 2, &OWNED);
    let mut fx = Effects::new();
    v.gicd_write(0, IROUTER + 8 * 34, 8, 1, &mut fx);
    assert_eq!(fx.denied, Some((IROUTER + 8 * 34, true)));
    assert_eq!(v.gicd_read(0, IROUTER + 8 * 34, 8), 0);
    assert_eq!(v.take_denied_read(), Some(IROUTER + 8 * 34));
    // ITARGETSR of an unowned SPI.
    let mut v = vgic(Version::V2, 2, &OWNED);
    v.gicd_write(0, ITARGETSR + 34, 1, 1, &mut fx);
    assert_eq!(v.gicd_read(0, ITARGETSR + 34, 1), 0);
}

#[test]
fn bad_accesses_are_raz_wi() {
    for mut v in both() {
        let mut fx = Effects::new();
        v.gicd_write(0, CTLR, 4, 3, &mut fx);
        let ctlr = v.gicd_read(0, CTLR, 4);
        // Misaligned and odd sizes.
        assert_eq!(v.gicd_read(0, IPRIORITYR + 33, 2), 0);
        assert_eq!(v.gicd_read(0, CTLR, 3), 0);
        assert_eq!(v.gicd_read(0, CTLR + 4, 16), 0);
        v.gicd_write(0, CTLR + 2, 4, 0, &mut fx);
        v.gicd_write(0, CTLR, 0, 0, &mut fx);
        assert_eq!(v.gicd_read(0, CTLR, 4), ctlr);
        // Unknown vCPUs.
        assert_eq!(v.gicd_read(9, CTLR, 4), 0);
        v.gicd_write(4, CTLR, 4, 0, &mut fx);
        assert_eq!(v.gicd_read(0, CTLR, 4), ctlr);
        // Reserved space.
        for off in [
            0x10,
            0x40,
            0xD00,
            0xE00,
            0x5000,
            0x8000,
            0xFFC0,
            0x1_0000,
            u64::MAX - 3,
        ] {
            v.gicd_write(0, off, 4, u64::MAX, &mut fx);
            assert_eq!(v.gicd_read(0, off, 4), 0, "{off:#x}");
        }
    }
    // Before init everything is RAZ/WI.
    let mut v = TestVgic::empty();
    let mut fx = Effects::new();
    v.gicd_write(0, CTLR, 4, 3, &mut fx);
    assert_eq!(v.gicd_read(0, TYPER, 4), 0);
    assert_eq!(v.inject(0, 27, None), None);
    assert_eq!(v.next_for_lr(0), None);
}

#[test]
fn init_errors() {
    let mut v = TestVgic::empty();
    let cfg = |version, vcpus, spis, mpidr| VgicConfig {
        version,
        vcpus,
        owned_spis: spis,
        vcpu_mpidr: mpidr,
    };
    assert_eq!(
        v.init(&cfg(Version::V3, 0, &[], &[])),
        Err(ConfigError::NoVcpus)
    );
    assert_eq!(
        v.init(&cfg(Version::V3, 9, &[], &[0; 9])),
        Err(ConfigError::TooManyVcpus { vcpus: 9, max: 8 })
    );
    let mut big: Vgic<16, 64> = Vgic::empty();
    let mpidr: Vec<u64> = (0..9).collect();
    assert_eq!(
        big.init(&cfg(Version::V2, 9, &[], &mpidr)),
        Err(ConfigError::TooManyVcpus { vcpus: 9, max: 8 })
    );
    assert_eq!(big.init(&cfg(Version::V3, 9, &[], &mpidr)), Ok(()));
    assert_eq!(
        v.init(&cfg(Version::V3, 2, &[], &MPIDR[..1])),
        Err(ConfigError::MpidrCount { given: 1, vcpus: 2 })
    );
    assert_eq!(
        v.init(&cfg(Version::V3, 2, &[], &[0x8000_0001, 0x1])),
        Err(ConfigError::DuplicateAffinity(1))
    );
    assert_eq!(
        v.init(&cfg(Version::V3, 1, &[31], &MPIDR[..1])),
        Err(ConfigError::NotAnSpi(31))
    );
    assert_eq!(
        v.init(&cfg(Version::V3, 1, &[1020], &MPIDR[..1])),
        Err(ConfigError::NotAnSpi(1020))
    );
    assert_eq!(
        v.init(&cfg(Version::V3, 1, &[256], &MPIDR[..1])),
        Err(ConfigError::SpiBeyondCapacity(256))
    );
    // A failed init leaves the vGIC as it was (here: uninitialised).
    assert_eq!(v.gicd_read(0, TYPER, 4), 0);
    // Re-init resets all state.
    let mut v = vgic(Version::V3, 2, &OWNED);
    guest_enable(&mut v, Version::V3, 0, 33);
    v.inject(0, 33, None);
    assert!(v.has_pending(0));
    v.init(&cfg(Version::V2, 2, &OWNED, &MPIDR[..2])).unwrap();
    assert!(!v.has_pending(0));
    assert_eq!(v.gicd_read(0, ISENABLER + 4, 4), 0);
    assert_eq!(v.gicd_read(0, CTLR, 4), 0);
}

#[test]
fn static_construction() {
    static EMPTY: Vgic<8, 1024> = Vgic::empty();
    assert!(!EMPTY.has_pending(0));
    assert!(!EMPTY.owns(32));
    assert!(core::mem::size_of::<Vgic<8, 256>>() < 9 * 1024);
}
