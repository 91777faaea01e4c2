//! The hypervisor's own address space (EL2 stage 1): an identity map of the board's RAM
//! (Normal, write-back) and of the MMIO ranges the hypervisor drives (Device-nGnRE).
//!
//! 4 KiB granule, 39-bit VA (T0SZ = 25, walk starts at level 1). The first 4 GiB are mapped
//! with 2 MiB blocks (boards put devices there), anything above with 1 GiB blocks.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, MAIR_EL2, SCTLR_EL2, TCR_EL2, TTBR0_EL2};
use tock_registers::interfaces::{Readable, Writeable};

use crate::config::PhysRange;

#[repr(C, align(4096))]
struct Table([u64; 512]);

const L2_TABLES: usize = 4;
static mut L1: Table = Table([0; 512]);
static mut L2: [Table; L2_TABLES] = [const { Table([0; 512]) }; L2_TABLES];

const MAIR_DEVICE_IDX: u64 = 0;
const MAIR_NORMAL_IDX: u64 = 1;
/// MAIR_EL2: index 0 = Device-nGnRE (0x04), index 1 = Normal, inner/outer WB RA WA (0xff).
const MAIR_VALUE: u64 = 0x04 | (0xff << 8);

const DESC_VALID: u64 = 1 << 0;
const DESC_TABLE: u64 = 1 << 1;
const DESC_AF: u64 = 1 << 10;
const DESC_SH_INNER: u64 = 3 << 8;
const DESC_XN: u64 = 1 << 54;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    None,
    Normal,
    Device,
}

fn block(pa: u64, kind: Kind) -> u64 {
    match kind {
        Kind::None => 0,
        Kind::Normal => pa | DESC_VALID | DESC_AF | DESC_SH_INNER | (MAIR_NORMAL_IDX << 2),
        Kind::Device => pa | DESC_VALID | DESC_AF | DESC_XN | (MAIR_DEVICE_IDX << 2),
    }
}

fn overlaps(a: u64, alen: u64, r: &PhysRange) -> bool {
    a < r.base + r.size && r.base < a + alen
}

fn kind_of(a: u64, len: u64, ram: &[PhysRange], mmio: &[PhysRange]) -> Kind {
    if mmio.iter().any(|r| overlaps(a, len, r)) {
        Kind::Device
    } else if ram.iter().any(|r| overlaps(a, len, r)) {
        Kind::Normal
    } else {
        Kind::None
    }
}

/// Builds the identity map (boot core, once, before any other core runs).
///
/// A 2 MiB block that holds any MMIO range is mapped as Device as a whole, so boards must keep
/// RAM and the hypervisor's MMIO in different 2 MiB windows (board.toml validation checks it).
pub fn build_el2_tables(ram: &[PhysRange], mmio: &[PhysRange]) {
    // SAFETY: runs once on the boot core before the MMU is on and before any secondary core
    // starts, so nothing else reads or writes the tables concurrently.
    let (l1, l2) = unsafe { (&mut *(&raw mut L1), &mut *(&raw mut L2)) };
    for (gib, entry) in l1.0.iter_mut().enumerate() {
        let base = (gib as u64) << 30;
        if gib < L2_TABLES {
            let t = &mut l2[gib];
            for (i, e) in t.0.iter_mut().enumerate() {
                let a = base + ((i as u64) << 21);
                *e = block(a, kind_of(a, 1 << 21, ram, mmio));
            }
            *entry = (&raw const t.0 as u64) | DESC_VALID | DESC_TABLE;
        } else {
            *entry = block(base, kind_of(base, 1 << 30, ram, mmio));
        }
    }
}

/// Turns on the EL2 stage-1 MMU and caches with the tables [`build_el2_tables`] made.
pub fn enable_el2_mmu() {
    let parange = ID_AA64MMFR0_EL1.get() & 0xf;
    MAIR_EL2.set(MAIR_VALUE);
    // T0SZ=25 | IRGN0=WBWA | ORGN0=WBWA | SH0=inner | TG0=4K | PS=PARange | RES1 (bits 23, 31).
    let tcr = 25 | (1 << 8) | (1 << 10) | (3 << 12) | (parange.min(5) << 16) | (1 << 23) | (1 << 31);
    TCR_EL2.set(tcr);
    TTBR0_EL2.set(&raw const L1 as u64);
    barrier::dsb(barrier::SY);
    barrier::isb(barrier::SY);
    // SAFETY: invalidating EL2 TLB entries only drops cached translations.
    unsafe { core::arch::asm!("tlbi alle2", options(nostack)) };
    barrier::dsb(barrier::SY);
    barrier::isb(barrier::SY);
    // RES1 bits of SCTLR_EL2 (E2H = 0) | M | C | SA | I.
    SCTLR_EL2.set(0x30c5_0830 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12));
    barrier::isb(barrier::SY);
}
