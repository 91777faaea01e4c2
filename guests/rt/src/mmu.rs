//! The EL1 stage-1 identity map, built at compile time.
//!
//! 4 KiB granule, `T0SZ = 25` (39-bit VA: the walk starts at level 1, whose 512 entries are
//! 1 GiB blocks): `[0, 1 GiB)` Device-nGnRE (the MMIO of QEMU `virt` and of Tessera's VMs),
//! `[1 GiB, 512 GiB)` Normal write-back. Every CPU uses the same read-only table; the boot code
//! (boot.rs) programs MAIR/TCR/TTBR0/SCTLR from the constants here.

use aarch64_cpu::registers::{MAIR_EL1, SCTLR_EL1, TCR_EL1};

/// Entries of the level-1 table.
const ENTRIES: usize = 512;
/// Size of a level-1 block (4 KiB granule).
const BLOCK_SIZE: u64 = 1 << 30;

/// MAIR index of Device-nGnRE.
const ATTR_DEVICE: u64 = 0;
/// MAIR index of Normal memory, inner/outer write-back, read/write-allocate.
const ATTR_NORMAL: u64 = 1;

/// `MAIR_EL1`: Attr0 = Device-nGnRE (0x04), Attr1 = Normal WB RWA (0xff).
pub(crate) const MAIR: u64 = MAIR_EL1::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck.value
    | MAIR_EL1::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc.value
    | MAIR_EL1::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc.value;

/// `TCR_EL1` without IPS (the boot code fills IPS from `ID_AA64MMFR0_EL1.PARange`, capped at
/// 48 bits): TTBR0 walks only, 4 KiB granule, T0SZ 25, inner-shareable WB walks.
pub(crate) const TCR: u64 = TCR_EL1::T0SZ.val(25).value
    | TCR_EL1::TG0::KiB_4.value
    | TCR_EL1::SH0::Inner.value
    | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::EPD0::EnableTTBR0Walks.value
    | TCR_EL1::EPD1::DisableTTBR1Walks.value;

/// RES1 bits of `SCTLR_EL1` in Armv8.0 (11, 20, 22, 23, 28, 29).
const SCTLR_RES1: u64 = (1 << 11) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29);

/// `SCTLR_EL1` before the MMU is on: little-endian, MMU and caches off, no alignment checks.
pub(crate) const SCTLR_MMU_OFF: u64 = SCTLR_RES1;

/// `SCTLR_EL1` with the MMU and caches on and SP alignment checking.
pub(crate) const SCTLR_MMU_ON: u64 = SCTLR_RES1
    | SCTLR_EL1::M::Enable.value
    | SCTLR_EL1::C::Cacheable.value
    | SCTLR_EL1::I::Cacheable.value
    | SCTLR_EL1::SA::Enable.value
    | SCTLR_EL1::SA0::Enable.value;

// Block descriptor fields (Arm ARM D8.3, VMSAv8-64 block descriptor).
const DESC_BLOCK: u64 = 0b01;
const DESC_ATTR_SHIFT: u64 = 2;
const DESC_SH_INNER: u64 = 0b11 << 8;
const DESC_AF: u64 = 1 << 10;
const DESC_PXN: u64 = 1 << 53;
const DESC_UXN: u64 = 1 << 54;

/// A level-1 translation table.
#[repr(C, align(4096))]
pub(crate) struct Table([u64; ENTRIES]);

const fn build_table() -> Table {
    let mut t = [0u64; ENTRIES];
    let mut i = 0;
    while i < ENTRIES {
        let base = i as u64 * BLOCK_SIZE;
        t[i] = if i == 0 {
            // Devices: never executable, EL1 read/write.
            base | DESC_BLOCK | (ATTR_DEVICE << DESC_ATTR_SHIFT) | DESC_AF | DESC_PXN | DESC_UXN
        } else {
            // RAM: EL1 read/write/execute, not executable at EL0.
            base | DESC_BLOCK
                | (ATTR_NORMAL << DESC_ATTR_SHIFT)
                | DESC_SH_INNER
                | DESC_AF
                | DESC_UXN
        };
        i += 1;
    }
    Table(t)
}

/// The identity map shared by all CPUs (read-only: it lives in .rodata).
pub(crate) static PAGE_TABLE: Table = build_table();
