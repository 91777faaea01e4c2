//! Last-level-cache coloring and the color-aware physical frame allocator.
//!
//! A page's *color* is `(PA / 4 KiB) mod colors`, `colors = (LLC size / ways) / 4 KiB`: pages
//! of different colors never share an LLC set, so VMs given disjoint [`ColorMask`]s do not
//! evict each other's lines. [`CacheGeometry`] gets the LLC shape from `CLIDR_EL1` /
//! `CCSIDR_EL1` (or a board override); [`FrameAllocator`] hands out 4 KiB frames, contiguous
//! runs for uncolored VMs or single frames of given colors for colored ones; [`map_frames`]
//! maps such frames at contiguous guest-physical addresses, 4 KiB at a time.
//!
//! ```
//! use tessera_colors::*;
//! // In the image: `static FRAMES: Mutex<FrameAllocator<{ bitmap_words(2 << 30) }>>`
//! // = Mutex::new(FrameAllocator::EMPTY), then `init` in place.
//! let mut frames = Box::new(FrameAllocator::<{ bitmap_words(1 << 30) }>::EMPTY);
//! frames.init(PhysAddr(0x4000_0000), 1 << 30).unwrap();
//! frames.reserve(PhysAddr(0x4000_0000), 0x20_0000).unwrap(); // hypervisor image
//! let llc = CacheGeometry { size: 1 << 20, ways: 16, line: 64 }; // 16 colors
//! let ram = frames.alloc_contiguous(64 << 20, 2 << 20).unwrap(); // uncolored VM
//! assert_eq!(ram, PhysAddr(0x4020_0000));
//! let mask = ColorMask::EMPTY.with(2).with(3);
//! let page = frames.alloc_colored(mask, &llc).unwrap(); // colored VM, one page at a time
//! assert_eq!(llc.color_of(page), 2);
//! assert_eq!(llc.color_of(frames.alloc_colored(mask, &llc).unwrap()), 3);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

mod allocator;
mod geometry;
mod map;
mod mask;

pub use allocator::{bitmap_words, FrameAllocator, FrameError, MAX_RESERVATIONS};
pub use geometry::{ccidx_from_mmfr2, csselr_data, llc_level, CacheGeometry};
pub use map::{map_frames, MapFramesError};
pub use mask::{ColorIter, ColorMask, MAX_COLORS};
pub use tessera_stage2::PhysAddr;

/// Size of a frame / page (4 KiB).
pub const FRAME_SIZE: u64 = 4096;
