//! AArch64 VMSAv8-64 translation tables with the 4 KiB granule, for two formats:
//!
//! * [`Stage2`]: a VM's stage-2 tables (IPA → PA), rooted in `VTTBR_EL2`, configured by
//!   [`Stage2Config`] (which also yields the `VTCR_EL2` value);
//! * [`El2Stage1`]: the hypervisor's own EL2 (non-VHE) stage-1 tables (VA → PA), rooted in
//!   `TTBR0_EL2`, configured by [`El2Stage1Config`] (which yields `TCR_EL2`; attributes index
//!   into [`MAIR_EL2`]).
//!
//! Both go through one generic [`PageTable`], which never touches memory itself: every table
//! access goes through a [`TableMemory`] the caller passes to each call. The hypervisor
//! implements it over identity-mapped physical memory; tests implement it with a map.
//!
//! Addresses are typed: [`PhysAddr`] for output (physical) addresses, and the format's input
//! address, [`GuestPhysAddr`] for stage 2 and [`VirtAddr`] for EL2 stage 1 (see
//! [`TranslationFormat::Input`]).
//!
//! The crate only edits descriptors. It never issues barriers, TLB or cache maintenance: after
//! changing live tables the caller does `DSB ISHST` (for a new mapping) or the TLBI sequence
//! (after [`PageTable::unmap`]). [`PageTable::map`] only ever writes to descriptors that were
//! invalid, so no break-before-make sequence is needed for it.
//!
//! Reference: Arm ARM (DDI 0487), chapter D8 "The AArch64 Virtual Memory System Architecture".
//!
//! # Example: a VM's stage 2
//!
//! ```
//! use tessera_stage2::*;
//! # use std::collections::BTreeMap;
//! # /// Table memory over a map (the hypervisor uses identity-mapped frames instead).
//! # #[derive(Default)]
//! # struct Frames { next: u64, desc: BTreeMap<(u64, usize), u64> }
//! # impl TableMemory for Frames {
//! #     fn alloc_table(&mut self, count: usize, align: usize) -> Option<PhysAddr> {
//! #         let a = (self.next + align as u64 - 1) & !(align as u64 - 1);
//! #         self.next = a + count as u64 * PAGE_SIZE;
//! #         Some(PhysAddr(0x8000_0000 + a))
//! #     }
//! #     fn read(&self, t: PhysAddr, i: usize) -> u64 { self.desc.get(&(t.0, i)).copied().unwrap_or(0) }
//! #     fn write(&mut self, t: PhysAddr, i: usize, d: u64) { self.desc.insert((t.0, i), d); }
//! # }
//! # let mut mem = Frames::default();
//! # let id_aa64mmfr0_el1 = 0x2; // PARange = 40 bits
//! let cfg = Stage2Config::new(parange_bits(id_aa64mmfr0_el1));
//! let mut s2 = PageTable::<Stage2>::new(&mut mem, &cfg)?;
//! s2.map(&mut mem, GuestPhysAddr(0x4000_0000), PhysAddr(0x6000_0000), 128 << 20, MemAttrs::RAM_RWX)?;
//! s2.map(&mut mem, GuestPhysAddr(0x0900_0000), PhysAddr(0x0900_0000), 0x1000, MemAttrs::DEVICE_RW)?;
//! let (vtcr, vttbr) = (cfg.vtcr_el2(), Stage2Config::vttbr_el2(s2.root(), 1));
//! # assert_eq!(vtcr, 0x8002_3558);
//! # assert_eq!(vttbr >> 48, 1);
//! let t = s2.translate(&mem, GuestPhysAddr(0x4020_0010)).unwrap();
//! assert_eq!((t.pa, t.level), (PhysAddr(0x6020_0010), 2)); // a 2 MiB block
//! # Ok::<(), MapError<GuestPhysAddr>>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

mod addr;
mod attrs;
mod config;
mod format;
mod memory;
mod table;

pub use addr::{GuestPhysAddr, InputAddress, PhysAddr, VirtAddr};
pub use attrs::{MemAttrs, MemKind};
pub use config::{
    parange_bits, El2Stage1Config, Layout, Stage2Config, MAIR_EL2, MAIR_IDX_DEVICE_NGNRE,
    MAIR_IDX_NORMAL_WB, MAX_ADDR_BITS, MIN_INPUT_BITS,
};
pub use format::{El2Stage1, Stage2, TranslationFormat};
pub use memory::TableMemory;
pub use table::{MapError, PageTable, Translation, WalkItem};

/// Size of a translation granule, a page and a translation table (4 KiB).
pub const PAGE_SIZE: u64 = 4096;
/// Number of descriptors in one translation table (4 KiB / 8 bytes).
pub const ENTRIES_PER_TABLE: usize = 512;
/// Size of a level-2 block (2 MiB).
pub const BLOCK_2M: u64 = 2 << 20;
/// Size of a level-1 block (1 GiB).
pub const BLOCK_1G: u64 = 1 << 30;

/// Bytes mapped by one descriptor at `level` (0..=3) with the 4 KiB granule.
pub const fn level_size(level: u8) -> u64 {
    1 << (12 + 9 * (3 - level as u32))
}
