//! Physical memory: the one place that turns physical addresses into pointers
//! ([`phys_to_ptr`]), and the frame allocator the VMs' memory, the channels and the stage-2
//! tables come from (contiguous runs, or single frames of given LLC colors).
//!
//! The hypervisor's EL2 map keeps an identity "physmap" of the board's RAM (Normal memory), so
//! the pointer for RAM at physical `pa` is `pa` itself; only this module relies on that. Guest
//! memory is reached through `vm::GuestMemory`, which validates and translates guest ranges
//! and then comes here for the pointer.

use spin::Mutex;
use tessera_colors::{bitmap_words, ColorMask, FrameAllocator};
use tessera_stage2::{PhysAddr, TableMemory};

use crate::config::PhysRange;

/// Largest RAM the allocator can manage: 8 GiB → a 256 KiB bitmap in .bss.
const WORDS: usize = bitmap_words(8 << 30);

static FRAMES: Mutex<FrameAllocator<WORDS>> = Mutex::new(FrameAllocator::EMPTY);

/// The device registers at physical `pa` as a typed register block.
pub fn phys_to_mmio<T>(pa: u64) -> *const T {
    pa as usize as *const T
}

/// The pointer through which the hypervisor reaches RAM at physical `pa` (the physmap: an
/// identity map of all of the board's RAM). Dereferencing it is the caller's business (and
/// needs its own SAFETY argument); every conversion of a physical RAM address into a pointer
/// goes through here.
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

/// Free 4 KiB frames of a color in `colors` (a color mask; the LLC geometry must be known).
pub fn free_frames_colored(colors: u64) -> usize {
    FRAMES
        .lock()
        .free_frames_colored(ColorMask(colors), &crate::llc::geometry())
}

/// One zeroed 4 KiB frame of a color in `colors` (a non-empty color mask; the LLC geometry
/// must be known): a colored VM's RAM, a colored channel.
pub fn alloc_colored_zeroed(colors: u64) -> Option<PhysAddr> {
    let g = crate::llc::geometry();
    let pa = FRAMES.lock().alloc_colored(ColorMask(colors), &g)?;
    zero(pa, 4096);
    Some(pa)
}

fn zero(pa: PhysAddr, size: u64) {
    // SAFETY: [pa, pa + size) is RAM just received from the frame allocator or claimed (owned
    // by the caller, mapped by nobody else yet), inside the physmap.
    unsafe { core::ptr::write_bytes(phys_to_ptr(pa), 0, size as usize) };
}

/// The allocator as stage-2 table memory: tables anywhere (`colors == 0`) or, for a colored
/// VM, only in frames of its colors.
#[derive(Clone, Copy, Debug)]
pub struct Tables {
    colors: u64,
}

impl Tables {
    /// For reading (walking) any tree; tables it allocates are uncolored.
    pub const READ: Tables = Tables { colors: 0 };

    /// Tables only in frames of a color in `colors` (0: uncolored).
    pub const fn colored(colors: u64) -> Self {
        Tables { colors }
    }
}

impl TableMemory for Tables {
    fn alloc_table(&mut self, count_4k: usize, align: usize) -> Option<PhysAddr> {
        let size = count_4k as u64 * 4096;
        if self.colors == 0 {
            return alloc_zeroed(size, align as u64);
        }
        let pa = if count_4k == 1 {
            alloc_colored_zeroed(self.colors)?
        } else {
            // A concatenated stage-2 root: consecutive colors only (see
            // `vm::stage2_config`, which avoids needing one).
            let g = crate::llc::geometry();
            let pa = FRAMES.lock().alloc_contiguous_colored(
                count_4k,
                align as u64,
                ColorMask(self.colors),
                &g,
            )?;
            zero(pa, size);
            pa
        };
        Some(pa)
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        // SAFETY: `table` is a 4 KiB table of a tree this allocator built (RAM in the
        // physmap) and index < 512; tables are only written by the boot core while it builds a
        // VM, before anyone reads that VM's tree concurrently.
        unsafe { core::ptr::read_volatile((phys_to_ptr(table) as *const u64).add(index)) }
    }

    fn write(&mut self, table: PhysAddr, index: usize, desc: u64) {
        // SAFETY: as for `read`; a single aligned 64-bit store, so the walker never sees a torn
        // descriptor.
        unsafe { core::ptr::write_volatile((phys_to_ptr(table) as *mut u64).add(index), desc) }
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
