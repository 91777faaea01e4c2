//! The two descriptor formats: stage 2 and EL2 (non-VHE) stage 1.
//!
//! Arm ARM D8.3 "Translation table descriptor formats" (VMSAv8-64, 4 KiB granule, 48-bit OA).

use crate::{
    El2Stage1Config, GuestPhysAddr, InputAddress, Layout, MemAttrs, MemKind, PhysAddr,
    Stage2Config, VirtAddr, MAIR_IDX_DEVICE_NGNRE, MAIR_IDX_NORMAL_WB,
};

/// Descriptor bit 0: valid.
pub(crate) const DESC_VALID: u64 = 1 << 0;
/// Descriptor bit 1: table (levels 0..=2) or page (level 3); clear for a block.
pub(crate) const DESC_TABLE_OR_PAGE: u64 = 1 << 1;
/// Output address bits \[47:12\].
pub(crate) const OA_MASK: u64 = 0x0000_ffff_ffff_f000;

const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;

/// Output address bits of a leaf at `level`.
const fn leaf_oa_mask(level: u8) -> u64 {
    OA_MASK & !(crate::level_size(level) - 1)
}

/// Low two bits of a leaf at `level`: page (0b11) at level 3, block (0b01) at levels 1 and 2.
const fn leaf_type(level: u8) -> u64 {
    if level == 3 {
        DESC_VALID | DESC_TABLE_OR_PAGE
    } else {
        DESC_VALID
    }
}

/// Whether `desc` is a leaf (block or page) descriptor at `level`.
pub(crate) const fn is_leaf(desc: u64, level: u8) -> bool {
    match level {
        1 | 2 => desc & 0b11 == DESC_VALID,
        3 => desc & 0b11 == DESC_VALID | DESC_TABLE_OR_PAGE,
        _ => false,
    }
}

/// Whether `desc` is a table descriptor at `level`.
pub(crate) const fn is_table(desc: u64, level: u8) -> bool {
    level < 3 && desc & 0b11 == DESC_VALID | DESC_TABLE_OR_PAGE
}

/// A table descriptor pointing at `next` (no hierarchical attribute restrictions).
pub(crate) const fn table_desc(next: PhysAddr) -> u64 {
    (next.0 & OA_MASK) | DESC_VALID | DESC_TABLE_OR_PAGE
}

/// A translation table format: how leaves encode [`MemAttrs`], what the input address is and
/// how the geometry is configured.
pub trait TranslationFormat {
    /// The input address type ([`GuestPhysAddr`] or [`VirtAddr`]).
    type Input: InputAddress;
    /// The geometry configuration ([`Stage2Config`] or [`El2Stage1Config`]).
    type Config;

    /// The geometry of a configuration.
    fn layout(config: &Self::Config) -> Layout;

    /// The block (level 1, 2) or page (level 3) descriptor mapping `pa` with `attrs`. `None`
    /// when the format cannot express `attrs`, `level` has no leaves, or `pa` is not aligned to
    /// the level's size or above 48 bits.
    fn encode_leaf(pa: PhysAddr, attrs: MemAttrs, level: u8) -> Option<u64>;

    /// The output address and attributes of a leaf descriptor at `level`; `None` when `desc` is
    /// not a valid block/page at that level.
    fn decode_leaf(desc: u64, level: u8) -> Option<(PhysAddr, MemAttrs)>;
}

fn check_leaf(pa: PhysAddr, level: u8) -> bool {
    (1..=3).contains(&level) && pa.0 & !leaf_oa_mask(level) == 0
}

/// VMSAv8-64 stage 2 (IPA → PA), for `VTTBR_EL2`.
///
/// Leaves: MemAttr\[5:2\] = 0b1111 (Normal, Inner/Outer Write-Back) or 0b0001 (Device-nGnRE),
/// S2AP\[7:6\] (bit 6 read, bit 7 write), SH\[9:8\] = Inner Shareable for Normal (0 for Device,
/// where it is ignored), AF set, XN (bit 54) when not executable.
///
/// Assumes `HCR_EL2.FWB == 0` (MemAttr combines with the guest's stage-1 attributes) and no
/// FEAT_XNX (XN\[0\], bit 53, left 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage2 {}

/// MemAttr\[3:2\]: zero for every Device type.
const S2_MEMATTR_DEVICE_MASK: u64 = 0b1100 << 2;
const S2_MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
const S2_MEMATTR_DEVICE_NGNRE: u64 = 0b0001 << 2;
const S2AP_R: u64 = 1 << 6;
const S2AP_W: u64 = 1 << 7;

impl TranslationFormat for Stage2 {
    type Input = GuestPhysAddr;
    type Config = Stage2Config;

    fn layout(config: &Stage2Config) -> Layout {
        config.layout()
    }

    fn encode_leaf(pa: PhysAddr, attrs: MemAttrs, level: u8) -> Option<u64> {
        if !check_leaf(pa, level) {
            return None;
        }
        let mut d = pa.0 | leaf_type(level) | AF;
        d |= match attrs.kind {
            MemKind::Normal => S2_MEMATTR_NORMAL_WB | SH_INNER,
            MemKind::Device => S2_MEMATTR_DEVICE_NGNRE,
        };
        if attrs.read {
            d |= S2AP_R;
        }
        if attrs.write {
            d |= S2AP_W;
        }
        if !attrs.exec {
            d |= XN;
        }
        Some(d)
    }

    fn decode_leaf(desc: u64, level: u8) -> Option<(PhysAddr, MemAttrs)> {
        if !is_leaf(desc, level) {
            return None;
        }
        // MemAttr[3:2] == 0b00 is Device memory (of some kind); anything else is Normal.
        let kind = if desc & S2_MEMATTR_DEVICE_MASK == 0 {
            MemKind::Device
        } else {
            MemKind::Normal
        };
        let attrs = MemAttrs {
            kind,
            read: desc & S2AP_R != 0,
            write: desc & S2AP_W != 0,
            exec: desc & XN == 0,
        };
        Some((PhysAddr(desc & leaf_oa_mask(level)), attrs))
    }
}

/// VMSAv8-64 stage 1 of the EL2 (non-VHE) translation regime, for `TTBR0_EL2`.
///
/// Leaves: AttrIndx\[4:2\] into [`MAIR_EL2`](crate::MAIR_EL2) (0 = Device-nGnRE, 1 = Normal WB),
/// AP\[7:6\] = 0b01 (read/write) or 0b11 (read-only) — AP\[1\] is RES1 in a one-EL regime, so
/// `read == false` cannot be expressed — SH\[9:8\] = Inner Shareable for Normal, AF set, nG = 0,
/// XN (bit 54) when not executable (PXN, bit 53, is RES0 in this regime).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum El2Stage1 {}

const S1_ATTRINDX_SHIFT: u32 = 2;
const S1_ATTRINDX_MASK: u64 = 0b111 << S1_ATTRINDX_SHIFT;
const S1_AP1_RES1: u64 = 1 << 6;
const S1_AP2_RO: u64 = 1 << 7;

impl TranslationFormat for El2Stage1 {
    type Input = VirtAddr;
    type Config = El2Stage1Config;

    fn layout(config: &El2Stage1Config) -> Layout {
        config.layout()
    }

    fn encode_leaf(pa: PhysAddr, attrs: MemAttrs, level: u8) -> Option<u64> {
        if !check_leaf(pa, level) || !attrs.read {
            return None;
        }
        let mut d = pa.0 | leaf_type(level) | AF | S1_AP1_RES1;
        d |= match attrs.kind {
            MemKind::Normal => ((MAIR_IDX_NORMAL_WB as u64) << S1_ATTRINDX_SHIFT) | SH_INNER,
            MemKind::Device => (MAIR_IDX_DEVICE_NGNRE as u64) << S1_ATTRINDX_SHIFT,
        };
        if !attrs.write {
            d |= S1_AP2_RO;
        }
        if !attrs.exec {
            d |= XN;
        }
        Some(d)
    }

    fn decode_leaf(desc: u64, level: u8) -> Option<(PhysAddr, MemAttrs)> {
        if !is_leaf(desc, level) {
            return None;
        }
        let idx = ((desc & S1_ATTRINDX_MASK) >> S1_ATTRINDX_SHIFT) as u8;
        let kind = if idx == MAIR_IDX_DEVICE_NGNRE {
            MemKind::Device
        } else {
            MemKind::Normal
        };
        let attrs = MemAttrs {
            kind,
            read: true,
            write: desc & S1_AP2_RO == 0,
            exec: desc & XN == 0,
        };
        Some((PhysAddr(desc & leaf_oa_mask(level)), attrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage2_normal_page_bits() {
        let d = Stage2::encode_leaf(PhysAddr(0x4000_1000), MemAttrs::RAM_RWX, 3).unwrap();
        assert_eq!(
            d,
            0x4000_1000 | 0b11 | (0b1111 << 2) | (0b11 << 6) | (0b11 << 8) | (1 << 10)
        );
        let d = Stage2::encode_leaf(PhysAddr(0x0900_1000), MemAttrs::DEVICE_RW, 2);
        assert_eq!(d, None, "not 2 MiB aligned");
        let d = Stage2::encode_leaf(PhysAddr(0x0800_0000), MemAttrs::DEVICE_RW, 2).unwrap();
        assert_eq!(
            d,
            0x0800_0000 | 0b01 | (0b0001 << 2) | (0b11 << 6) | (1 << 10) | (1 << 54)
        );
        assert_eq!(Stage2::encode_leaf(PhysAddr(0), MemAttrs::RAM_RW, 0), None);
    }

    #[test]
    fn el2_stage1_bits() {
        let d = El2Stage1::encode_leaf(PhysAddr(0x4020_0000), MemAttrs::RAM_RX, 2).unwrap();
        assert_eq!(
            d,
            0x4020_0000 | 0b01 | (1 << 2) | (0b11 << 6) | (0b11 << 8) | (1 << 10)
        );
        let d = El2Stage1::encode_leaf(PhysAddr(0x0900_0000), MemAttrs::DEVICE_RW, 3).unwrap();
        assert_eq!(d, 0x0900_0000 | 0b11 | (0b01 << 6) | (1 << 10) | (1 << 54));
        let wo = MemAttrs {
            read: false,
            ..MemAttrs::RAM_RW
        };
        assert_eq!(El2Stage1::encode_leaf(PhysAddr(0), wo, 3), None);
    }

    #[test]
    fn leaf_vs_table_encoding_per_level() {
        let page = Stage2::encode_leaf(PhysAddr(0x1000), MemAttrs::RAM_RW, 3).unwrap();
        assert!(is_leaf(page, 3));
        assert!(
            is_table(page, 2),
            "a page descriptor read at level 2 is a table"
        );
        assert_eq!(Stage2::decode_leaf(page, 2), None);
        let block = Stage2::encode_leaf(PhysAddr(1 << 30), MemAttrs::RAM_RW, 1).unwrap();
        assert!(is_leaf(block, 1) && !is_leaf(block, 3) && !is_table(block, 1));
        assert!(!is_leaf(0, 3) && !is_table(0, 1));
    }
}
