//! Physical memory: the one place that turns physical addresses into pointers, the frame
//! allocator the VMs' memory and stage-2 tables come from, and the guest-memory accessors.
//!
//! The hypervisor's EL2 map is an identity map of the board's RAM and of its own MMIO, so a
//! physical address *is* the virtual address the hypervisor uses.

use spin::Mutex;
use tessera_colors::{bitmap_words, FrameAllocator};
use tessera_stage2::{PhysAddr, TableMemory};

use crate::config::PhysRange;

/// Largest RAM the allocator can manage: 8 GiB → a 256 KiB bitmap in .bss.
const WORDS: usize = bitmap_words(8 << 30);

static FRAMES: Mutex<FrameAllocator<WORDS>> = Mutex::new(FrameAllocator::EMPTY);

/// The device registers at physical `pa` as a typed register block.
pub fn phys_to_mmio<T>(pa: u64) -> *const T {
    pa as usize as *const T
}

/// The pointer through which the hypervisor reaches RAM at physical `pa` (identity map).
/// Dereferencing it is the caller's business (and needs its own SAFETY argument).
pub fn phys_to_ptr(pa: PhysAddr) -> *mut u8 {
    pa.0 as usize as *mut u8
}

/// Sets up the allocator over `ram`, minus the `reserved` ranges (hypervisor image, DTB).
pub fn init_frames(
    ram: PhysRange,
    reserved: &[PhysRange],
) -> Result<(), tessera_colors::FrameError> {
    let mut a = FRAMES.lock();
    a.init(PhysAddr(ram.base), ram.size)?;
    for r in reserved {
        a.reserve(PhysAddr(r.base), r.size)?;
    }
    Ok(())
}

/// Physically contiguous, zeroed memory of `size` bytes aligned to `align`.
pub fn alloc_zeroed(size: u64, align: u64) -> Option<PhysAddr> {
    let pa = FRAMES.lock().alloc_contiguous(size, align)?;
    zero(pa, size);
    Some(pa)
}

/// Claims exactly `[pa, pa + size)` (a config's explicit placement); zeroes it.
pub fn claim_zeroed(pa: PhysAddr, size: u64) -> Option<PhysAddr> {
    let mut a = FRAMES.lock();
    let free = (0..size / 4096).all(|i| a.is_free(pa.add(i * 4096)));
    if !free || a.reserve(pa, size).is_err() {
        return None;
    }
    drop(a);
    zero(pa, size);
    Some(pa)
}

/// Free 4 KiB frames left.
pub fn free_frames() -> usize {
    FRAMES.lock().free_frames()
}

/// Zeroes `[pa, pa + size)` of RAM the caller owns (a stopped VM's memory).
pub fn copy_zero(pa: PhysAddr, size: u64) {
    zero(pa, size)
}

fn zero(pa: PhysAddr, size: u64) {
    // SAFETY: [pa, pa + size) is identity-mapped RAM owned by the caller: just received from
    // the frame allocator or claimed, or the memory of a VM none of whose vCPUs runs.
    unsafe { core::ptr::write_bytes(pa.0 as usize as *mut u8, 0, size as usize) };
}

/// Copies `src` to physical `pa`.
pub fn copy_to_phys(pa: PhysAddr, src: &[u8]) {
    // SAFETY: callers pass a destination inside RAM they own (a VM's memory being loaded while
    // none of its vCPUs runs); the source is hypervisor data, so the ranges are disjoint.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), pa.0 as usize as *mut u8, src.len()) };
}

/// Reads one byte of RAM at physical `pa` (guest buffers, already validated to be the VM's).
pub fn read_phys_u8(pa: PhysAddr) -> u8 {
    // SAFETY: callers validated that `pa` is RAM of the calling VM (identity-mapped Normal
    // memory); a volatile read tolerates the guest changing it concurrently.
    unsafe { core::ptr::read_volatile(pa.0 as usize as *const u8) }
}

/// The allocator as stage-2 table memory.
pub struct Tables;

impl TableMemory for Tables {
    fn alloc_table(&mut self, count_4k: usize, align: usize) -> Option<PhysAddr> {
        alloc_zeroed(count_4k as u64 * 4096, align as u64)
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        // SAFETY: `table` came from `alloc_table` (identity-mapped RAM, 4 KiB) and index < 512.
        unsafe { core::ptr::read_volatile((table.0 as usize as *const u64).add(index)) }
    }

    fn write(&mut self, table: PhysAddr, index: usize, desc: u64) {
        // SAFETY: as for `read`; a single aligned 64-bit store, so the walker never sees a torn
        // descriptor.
        unsafe { core::ptr::write_volatile((table.0 as usize as *mut u64).add(index), desc) }
    }
}

/// One zeroed 4 KiB frame for the hypervisor itself (its image when colored, its EL2 tables):
/// of a color in `colors` (a color mask; `crate::llc::geometry()` must be known), or any frame
/// when `colors` is 0.
pub fn alloc_hyp_frame(colors: u64) -> Option<PhysAddr> {
    let pa = if colors == 0 {
        FRAMES.lock().alloc_contiguous(4096, 4096)?
    } else {
        let g = crate::llc::geometry();
        FRAMES
            .lock()
            .alloc_colored(tessera_colors::ColorMask(colors), &g)?
    };
    zero(pa, 4096);
    Some(pa)
}
