//! The hypervisor's own address space (EL2 stage 1): an identity map of the board's RAM
//! (Normal, write-back) and of the MMIO ranges the hypervisor drives (Device-nGnRE), built
//! with `crates/stage2`'s EL2 stage-1 format in a small pool of tables inside the image.
//!
//! Only the image's text is executable (and read-only); its read-only data is read-only; every
//! other byte of RAM (guest memory, the firmware's DTB, the image's data, bss and stacks) and
//! all MMIO is never executable at EL2, and SCTLR_EL2.WXN makes any writable page
//! non-executable too. A guest that plants code in its RAM cannot have EL2 run it.

use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, MAIR_EL2, SCTLR_EL2, TCR_EL2, TTBR0_EL2};
use tessera_stage2::{
    parange_bits, El2Stage1, El2Stage1Config, MemAttrs, PageTable, PhysAddr, TableMemory, VirtAddr,
    MAIR_EL2 as MAIR_VALUE,
};
use tock_registers::interfaces::{Readable, Writeable};

use crate::config::PhysRange;

/// Tables for the EL2 map: a root plus enough for RAM in blocks and a few 4 KiB-mapped MMIO
/// windows.
const POOL_TABLES: usize = 16;

#[repr(C, align(4096))]
struct Pool([[u64; 512]; POOL_TABLES]);
static mut POOL: Pool = Pool([[0; 512]; POOL_TABLES]);

/// Bump allocator over [`POOL`]; only the boot core uses it, before the MMU is on.
struct PoolMemory {
    used: usize,
}

impl PoolMemory {
    fn base() -> u64 {
        &raw const POOL as u64
    }
}

impl TableMemory for PoolMemory {
    fn alloc_table(&mut self, count_4k: usize, align: usize) -> Option<PhysAddr> {
        // Tables in the pool are 4 KiB aligned; the EL2 map never asks for concatenation.
        if align > 4096 || self.used + count_4k > POOL_TABLES {
            return None;
        }
        let pa = Self::base() + (self.used as u64) * 4096;
        self.used += count_4k;
        Some(PhysAddr(pa))
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        // SAFETY: `table` lies in POOL (handed out above), index < 512; only the boot core
        // touches the pool, before other cores start.
        unsafe { core::ptr::read_volatile((table.0 as usize as *const u64).add(index)) }
    }

    fn write(&mut self, table: PhysAddr, index: usize, desc: u64) {
        // SAFETY: as for `read`.
        unsafe { core::ptr::write_volatile((table.0 as usize as *mut u64).add(index), desc) }
    }
}

static TTBR0: AtomicU64 = AtomicU64::new(0);
static TCR: AtomicU64 = AtomicU64::new(0);

/// Why the EL2 map could not be built.
#[derive(Debug)]
pub struct MmuError {
    pub base: u64,
}

/// Builds the identity map (boot core, once, before any other core runs).
pub fn build_el2_tables(ram: &[PhysRange], mmio: &[PhysRange]) -> Result<(), MmuError> {
    let pa_bits = parange_bits(ID_AA64MMFR0_EL1.get());
    let top = ram
        .iter()
        .chain(mmio)
        .map(|r| r.base + r.size)
        .max()
        .unwrap_or(0);
    let va_bits = if top <= 1 << 39 { 39 } else { pa_bits.min(48) };
    let cfg = El2Stage1Config::new(va_bits, pa_bits);
    let mut mem = PoolMemory { used: 0 };
    let mut pt = PageTable::<El2Stage1>::new(&mut mem, &cfg).map_err(|_| MmuError { base: 0 })?;
    let image = image_layout();
    let mut regions: heapless::Vec<(PhysRange, MemAttrs), 24> = heapless::Vec::new();
    for r in ram {
        // RAM is data to the hypervisor (guest memory, DTBs, its own data): never executable.
        // The image's text and read-only data are carved out with their own permissions.
        for piece in minus(*r, image.whole()) {
            push(&mut regions, piece, MemAttrs::RAM_RW)?;
        }
    }
    push(&mut regions, image.text, MemAttrs::RAM_RX)?;
    push(&mut regions, image.rodata, MemAttrs::RAM_RO)?;
    push(&mut regions, image.data, MemAttrs::RAM_RW)?;
    for r in mmio {
        push(&mut regions, *r, MemAttrs::DEVICE_RW)?;
    }
    for (r, attrs) in regions.iter().filter(|(r, _)| r.size > 0) {
        pt.map(&mut mem, VirtAddr(r.base), PhysAddr(r.base), r.size, *attrs)
            .map_err(|_| MmuError { base: r.base })?;
    }
    TTBR0.store(El2Stage1Config::ttbr0_el2(pt.root()), Ordering::Relaxed);
    TCR.store(cfg.tcr_el2(), Ordering::Relaxed);
    Ok(())
}

/// `r` without `hole`: the part below it and the part above it (either may be empty).
fn minus(r: PhysRange, hole: PhysRange) -> [PhysRange; 2] {
    let end = r.base + r.size;
    let hole_end = hole.base + hole.size;
    let below = PhysRange {
        base: r.base,
        size: hole.base.clamp(r.base, end) - r.base,
    };
    let above_base = hole_end.clamp(r.base, end);
    let above = PhysRange {
        base: above_base,
        size: end - above_base,
    };
    [below, above]
}

fn push(
    v: &mut heapless::Vec<(PhysRange, MemAttrs), 24>,
    r: PhysRange,
    attrs: MemAttrs,
) -> Result<(), MmuError> {
    v.push((r, attrs)).map_err(|_| MmuError { base: r.base })
}

/// The parts of the loaded image, from the linker script's symbols (each 4 KiB aligned).
struct ImageLayout {
    /// `.text.boot`, `.text` (vectors included): read-only, executable.
    text: PhysRange,
    /// `.rodata`: read-only, never executable.
    rodata: PhysRange,
    /// `.data`, `.bss`, the page-table pool, the stacks: read/write, never executable.
    data: PhysRange,
}

impl ImageLayout {
    fn whole(&self) -> PhysRange {
        PhysRange {
            base: self.text.base,
            size: self.data.base + self.data.size - self.text.base,
        }
    }
}

fn image_layout() -> ImageLayout {
    unsafe extern "C" {
        static __image_start: u8;
        static __rodata_start: u8;
        static __data_start: u8;
        static __image_end: u8;
    }
    let start = &raw const __image_start as u64;
    let rodata = &raw const __rodata_start as u64;
    let data = &raw const __data_start as u64;
    let end = &raw const __image_end as u64;
    let range = |base: u64, top: u64| PhysRange {
        base,
        size: top.saturating_sub(base),
    };
    ImageLayout {
        text: range(start, rodata),
        rodata: range(rodata, data),
        data: range(data, end),
    }
}

/// Turns on the EL2 stage-1 MMU and caches with the tables [`build_el2_tables`] made.
pub fn enable_el2_mmu() {
    MAIR_EL2.set(MAIR_VALUE);
    TCR_EL2.set(TCR.load(Ordering::Relaxed));
    TTBR0_EL2.set(TTBR0.load(Ordering::Relaxed));
    barrier::dsb(barrier::SY);
    barrier::isb(barrier::SY);
    // SAFETY: invalidating EL2 TLB entries only drops cached translations.
    unsafe { core::arch::asm!("tlbi alle2", options(nostack)) };
    barrier::dsb(barrier::SY);
    barrier::isb(barrier::SY);
    // RES1 bits of SCTLR_EL2 (E2H = 0) | M | C | SA | I | WXN (whatever is writable is never
    // executable, whatever the tables say).
    SCTLR_EL2.set(0x30c5_0830 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12) | (1 << 19));
    barrier::isb(barrier::SY);
}
