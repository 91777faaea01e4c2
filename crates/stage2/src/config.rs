//! Table geometry and the system-register values that go with it (`VTCR_EL2`, `VTTBR_EL2`,
//! `TCR_EL2`, `TTBR0_EL2`, `MAIR_EL2`).

use crate::PhysAddr;

/// Largest input/output address size supported (48 bits: no FEAT_LPA/LPA2 52-bit descriptors).
pub const MAX_ADDR_BITS: u32 = 48;

/// Smallest input address size supported (T0SZ = 39, the largest T0SZ without FEAT_TTST).
pub const MIN_INPUT_BITS: u32 = 25;

/// Attribute index of Device-nGnRE in [`MAIR_EL2`].
pub const MAIR_IDX_DEVICE_NGNRE: u8 = 0;
/// Attribute index of Normal Inner/Outer Write-Back Read/Write-Allocate in [`MAIR_EL2`].
pub const MAIR_IDX_NORMAL_WB: u8 = 1;
/// The `MAIR_EL2` value the EL2 stage-1 descriptors of this crate assume:
/// Attr0 = 0x04 (Device-nGnRE), Attr1 = 0xff (Normal, Inner/Outer WB non-transient RA WA).
pub const MAIR_EL2: u64 = 0x04 | (0xff << 8);

/// Physical address size in bits from `ID_AA64MMFR0_EL1` (its PARange field, bits \[3:0\]).
///
/// 0b0000 → 32, 0b0001 → 36, 0b0010 → 40, 0b0011 → 42, 0b0100 → 44, 0b0101 → 48,
/// 0b0110 → 52, 0b0111 → 56; reserved encodings read as 48.
pub const fn parange_bits(id_aa64mmfr0: u64) -> u32 {
    match id_aa64mmfr0 & 0xf {
        0b0000 => 32,
        0b0001 => 36,
        0b0010 => 40,
        0b0011 => 42,
        0b0100 => 44,
        0b0101 => 48,
        0b0110 => 52,
        0b0111 => 56,
        _ => 48,
    }
}

/// The PS/IPS encoding of the largest architected physical address size ≤ `min(pa_bits, 48)`.
const fn ps_encoding(pa_bits: u32) -> u64 {
    match pa_bits {
        0..=35 => 0b000,
        36..=39 => 0b001,
        40..=41 => 0b010,
        42..=43 => 0b011,
        44..=47 => 0b100,
        _ => 0b101,
    }
}

/// The output address size (bits) of a PS encoding.
const fn ps_bits(ps: u64) -> u32 {
    match ps {
        0b000 => 32,
        0b001 => 36,
        0b010 => 40,
        0b011 => 42,
        0b100 => 44,
        _ => 48,
    }
}

const fn clamp(v: u32, lo: u32, hi: u32) -> u32 {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// The shape of a table tree: input size, start level and number of concatenated root tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Input address size in bits (64 − T0SZ); inputs are `0 .. 1 << input_bits`.
    pub input_bits: u32,
    /// Output (physical) address size in bits; outputs must lie below `1 << output_bits`.
    pub output_bits: u32,
    /// Level of the root table (0, 1 or 2).
    pub start_level: u8,
    /// Number of concatenated 4 KiB root tables (1, 2, 4, 8 or 16); stage 2 only.
    pub root_tables: usize,
}

impl Layout {
    /// Bytes of input address space.
    pub const fn input_size(&self) -> u64 {
        1 << self.input_bits
    }
    /// Number of root descriptors actually in use (across concatenated tables).
    pub const fn root_entries(&self) -> usize {
        (self.input_size() / crate::level_size(self.start_level)) as usize
    }
}

/// Stage-2 (IPA → PA) geometry and `VTCR_EL2` for the 4 KiB granule.
///
/// Start level and concatenation follow the Arm ARM consistency rule for SL0/T0SZ (pseudocode
/// `AArch64.S2InconsistentSL`): the start level must resolve between 1 and 9 + 4 bits, the
/// extra 4 bits as up to 16 concatenated root tables. We use:
///
/// | IPA bits | start level | root tables            |
/// |----------|-------------|------------------------|
/// | 25..=30  | 2           | 1                      |
/// | 31..=39  | 1           | 1                      |
/// | 40..=43  | 1           | 2^(bits − 39) (2..=16) |
/// | 44..=48  | 0           | 1                      |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2Config {
    layout: Layout,
    ps: u64,
}

impl Stage2Config {
    /// The largest IPA space for a CPU with `pa_bits` of physical address
    /// ([`parange_bits`] of `ID_AA64MMFR0_EL1`): IPA bits = min(PA bits, 48) (PA bits not
    /// being an architected PARange size round down to one).
    pub const fn new(pa_bits: u32) -> Self {
        Self::with_ipa_bits(pa_bits, pa_bits)
    }

    /// A smaller IPA space (e.g. 40 bits) to save root tables. `ipa_bits` is clamped to
    /// `25 ..= PS bits`, PS bits being the largest architected size ≤ min(pa_bits, 48): an
    /// IPA space larger than the PA space is not allowed.
    pub const fn with_ipa_bits(pa_bits: u32, ipa_bits: u32) -> Self {
        let ps = ps_encoding(pa_bits);
        let output_bits = ps_bits(ps);
        // The IPA space may not exceed the output (PS) size.
        let ipa = clamp(ipa_bits, MIN_INPUT_BITS, output_bits);
        let (start_level, root_tables) = if ipa >= 44 {
            (0, 1)
        } else if ipa >= 40 {
            (1, 1usize << (ipa - 39))
        } else if ipa >= 31 {
            (1, 1)
        } else {
            (2, 1)
        };
        Self {
            layout: Layout {
                input_bits: ipa,
                output_bits,
                start_level,
                root_tables,
            },
            ps,
        }
    }

    /// The table geometry.
    pub const fn layout(&self) -> Layout {
        self.layout
    }

    /// IPA size in bits.
    pub const fn ipa_bits(&self) -> u32 {
        self.layout.input_bits
    }

    /// Start (root) level.
    pub const fn start_level(&self) -> u8 {
        self.layout.start_level
    }

    /// Number of concatenated root tables (the root is `root_tables * 4 KiB`, aligned to its size).
    pub const fn root_tables(&self) -> usize {
        self.layout.root_tables
    }

    /// The `VTCR_EL2` value: T0SZ = 64 − IPA bits, SL0 from the start level, IRGN0/ORGN0 =
    /// Write-Back RA WA, SH0 = Inner Shareable, TG0 = 4 KiB, PS from PARange (≤ 48 bits),
    /// VS = 0 (8-bit VMID), bit 31 RES1. Arm ARM D19 "VTCR_EL2".
    pub const fn vtcr_el2(&self) -> u64 {
        let t0sz = (64 - self.layout.input_bits) as u64;
        // SL0 with TG0 = 4 KiB: 0b00 = level 2, 0b01 = level 1, 0b10 = level 0.
        let sl0 = (2 - self.layout.start_level) as u64;
        const IRGN0_WBWA: u64 = 0b01 << 8;
        const ORGN0_WBWA: u64 = 0b01 << 10;
        const SH0_INNER: u64 = 0b11 << 12;
        const TG0_4K: u64 = 0b00 << 14;
        const RES1: u64 = 1 << 31;
        t0sz | (sl0 << 6) | IRGN0_WBWA | ORGN0_WBWA | SH0_INNER | TG0_4K | (self.ps << 16) | RES1
    }

    /// The `VTTBR_EL2` value for a root at `root` and an 8-bit (or, with VTCR_EL2.VS set by the
    /// caller, 16-bit) `vmid`: BADDR = root, VMID in bits \[63:48\], CnP = 0.
    pub const fn vttbr_el2(root: PhysAddr, vmid: u16) -> u64 {
        (root.0 & 0x0000_ffff_ffff_fffe) | ((vmid as u64) << 48)
    }
}

/// EL2 (non-VHE) stage-1 (VA → PA) geometry and `TCR_EL2` for the 4 KiB granule, TTBR0_EL2 only.
///
/// No concatenation at stage 1: 40..=48 VA bits start at level 0, 31..=39 at level 1,
/// 25..=30 at level 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct El2Stage1Config {
    layout: Layout,
    ps: u64,
}

impl El2Stage1Config {
    /// `va_bits` of virtual address space (clamped to 25..=48) on a CPU with `pa_bits` of
    /// physical address ([`parange_bits`]).
    pub const fn new(va_bits: u32, pa_bits: u32) -> Self {
        let ps = ps_encoding(pa_bits);
        let va = clamp(va_bits, MIN_INPUT_BITS, MAX_ADDR_BITS);
        let start_level = if va >= 40 {
            0
        } else if va >= 31 {
            1
        } else {
            2
        };
        Self {
            layout: Layout {
                input_bits: va,
                output_bits: ps_bits(ps),
                start_level,
                root_tables: 1,
            },
            ps,
        }
    }

    /// The table geometry.
    pub const fn layout(&self) -> Layout {
        self.layout
    }

    /// The `TCR_EL2` value (non-VHE format): T0SZ = 64 − VA bits, IRGN0/ORGN0 = Write-Back RA
    /// WA, SH0 = Inner Shareable, TG0 = 4 KiB, PS from PARange (≤ 48 bits), RES1 bits 31 and 23.
    /// Arm ARM D19 "TCR_EL2".
    pub const fn tcr_el2(&self) -> u64 {
        let t0sz = (64 - self.layout.input_bits) as u64;
        const IRGN0_WBWA: u64 = 0b01 << 8;
        const ORGN0_WBWA: u64 = 0b01 << 10;
        const SH0_INNER: u64 = 0b11 << 12;
        const TG0_4K: u64 = 0b00 << 14;
        const RES1: u64 = (1 << 31) | (1 << 23);
        t0sz | IRGN0_WBWA | ORGN0_WBWA | SH0_INNER | TG0_4K | (self.ps << 16) | RES1
    }

    /// The `TTBR0_EL2` value for a root at `root` (CnP = 0).
    pub const fn ttbr0_el2(root: PhysAddr) -> u64 {
        root.0 & 0x0000_ffff_ffff_fffe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parange() {
        assert_eq!(parange_bits(0x0000_0000_0f10_0125), 48);
        assert_eq!(parange_bits(0x2), 40);
        assert_eq!(parange_bits(0x6), 52);
        assert_eq!(parange_bits(0xf), 48);
    }

    #[test]
    fn vtcr_40_bits_is_the_classic_value() {
        let c = Stage2Config::new(40);
        assert_eq!((c.ipa_bits(), c.start_level(), c.root_tables()), (40, 1, 2));
        assert_eq!(c.vtcr_el2(), 0x8002_3558);
    }

    #[test]
    fn start_level_and_concatenation_rules() {
        // (pa bits, ipa bits, start level, root tables, PS)
        let cases = [
            (32, 32, 1, 1, 0b000),
            (36, 36, 1, 1, 0b001),
            (40, 40, 1, 2, 0b010),
            (42, 42, 1, 8, 0b011),
            (44, 44, 0, 1, 0b100),
            (48, 48, 0, 1, 0b101),
            (52, 48, 0, 1, 0b101),
        ];
        for (pa, ipa, level, tables, ps) in cases {
            let c = Stage2Config::new(pa);
            assert_eq!(c.ipa_bits(), ipa, "pa {pa}");
            assert_eq!(c.start_level(), level, "pa {pa}");
            assert_eq!(c.root_tables(), tables, "pa {pa}");
            let v = c.vtcr_el2();
            assert_eq!(v & 0x3f, 64 - ipa as u64);
            assert_eq!((v >> 6) & 3, 2 - level as u64);
            assert_eq!((v >> 16) & 7, ps);
            assert_eq!(v >> 31, 1);
            // Arm ARM: the start level resolves 1 ..= 9 + 4 bits.
            let resolved = ipa as i64 - (12 + 9 * (3 - level as i64));
            assert!((1..=13).contains(&resolved), "pa {pa}: {resolved}");
            assert_eq!(1usize << resolved.saturating_sub(9).max(0), tables);
        }
        assert_eq!(Stage2Config::new(48).layout().root_entries(), 512);
        assert_eq!(Stage2Config::new(44).layout().root_entries(), 32);
        assert_eq!(Stage2Config::with_ipa_bits(48, 43).root_tables(), 16);
        let c = Stage2Config::with_ipa_bits(48, 40);
        assert_eq!(
            (c.ipa_bits(), c.root_tables(), (c.vtcr_el2() >> 16) & 7),
            (40, 2, 0b101)
        );
        assert_eq!(Stage2Config::with_ipa_bits(40, 48).ipa_bits(), 40);
        assert_eq!(Stage2Config::with_ipa_bits(48, 30).start_level(), 2);
    }

    #[test]
    fn vttbr_and_el2_registers() {
        assert_eq!(
            Stage2Config::vttbr_el2(PhysAddr(0x4123_0000), 7),
            0x0007_0000_4123_0000
        );
        let c = El2Stage1Config::new(39, 40);
        assert_eq!(c.layout().start_level, 1);
        assert_eq!(
            c.tcr_el2(),
            25 | (1 << 8) | (1 << 10) | (3 << 12) | (2 << 16) | (1 << 23) | (1 << 31)
        );
        assert_eq!(El2Stage1Config::new(48, 48).layout().start_level, 0);
        assert_eq!(El2Stage1Config::new(30, 48).layout().start_level, 2);
        assert_eq!(
            El2Stage1Config::ttbr0_el2(PhysAddr(0x4000_0000)),
            0x4000_0000
        );
        assert_eq!(MAIR_EL2, 0xff04);
    }
}
