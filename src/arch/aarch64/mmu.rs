//! The hypervisor's own address space (EL2 stage 1), built once by the boot core while it runs
//! on the early map (see `boot.rs`):
//!
//! * the **physmap**: the board's RAM identity-mapped (Normal WB, read/write, never
//!   executable) and the MMIO the hypervisor drives (Device-nGnRE) — `mm::phys_to_ptr` relies
//!   on it. It leaves out the image as loaded and, when the hypervisor is colored, the pages
//!   its code and read-only data moved to, so no writable alias of code exists;
//! * the **image** at its link addresses (`crates/config` `el2_image_va`): text read-only
//!   executable, read-only data read-only, data/bss/stacks read/write; backed by the pages it
//!   was loaded in or, with `[hypervisor] colors`, by frames of those colors that the image is
//!   copied into before the switch;
//! * the **trampoline page** (the secondary cores' entry) identity-mapped read-only
//!   executable: secondaries turn their MMU on inside it.
//!
//! Tables come from the frame allocator (in the hypervisor's colors when it has some).
//! SCTLR_EL2.WXN makes any writable page non-executable, whatever the tables say.

use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::ID_AA64MMFR0_EL1;
use tessera_stage2::{
    parange_bits, El2Stage1, El2Stage1Config, MemAttrs, PageTable, PhysAddr, TableMemory, VirtAddr,
};
use tock_registers::interfaces::Readable;

use crate::config::{PhysRange, BOARD};
use crate::mm;

/// Largest image (text to the end of the stacks) the relocation can move: 16 MiB.
const MAX_IMAGE_PAGES: usize = 4096;
/// Largest number of tables the self-check can list.
const MAX_TABLES: usize = 128;
/// Input-address bits of the real map: identity physmap below 256 GiB, image above.
const VA_BITS: u32 = 39;

static TTBR0: AtomicU64 = AtomicU64::new(0);
static TCR: AtomicU64 = AtomicU64::new(0);
static SECONDARY_ENTRY_PA: AtomicU64 = AtomicU64::new(0);
static SECONDARY_BOOT_PA: AtomicU64 = AtomicU64::new(0);

/// Where each image page goes (physical), when the image moves into colored frames.
static mut DEST: [u64; MAX_IMAGE_PAGES] = [0; MAX_IMAGE_PAGES];

/// Why the real map could not be built.
#[derive(Debug, Clone, Copy)]
pub enum MmuError {
    /// A range could not be mapped (out of table memory or overlapping).
    Map { base: u64 },
    /// No free frame (of the hypervisor's colors) for a table or an image page.
    OutOfFrames { colors: u64 },
    /// RAM or MMIO at or above 256 GiB, where the image's virtual addresses start.
    AboveIdentityLimit { base: u64 },
    /// The image is larger than the relocation supports.
    ImageTooLarge { pages: usize },
    /// Too many separate holes in the physmap.
    TooManyHoles,
}

impl core::fmt::Display for MmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            MmuError::Map { base } => write!(f, "cannot map {:#x} in the EL2 map", base),
            MmuError::OutOfFrames { colors } => write!(
                f,
                "no free frame of the hypervisor's colors ({}) for its image or tables",
                crate::llc::Colors(colors)
            ),
            MmuError::AboveIdentityLimit { base } => write!(
                f,
                "RAM or MMIO at {:#x}: the EL2 physmap covers only physical addresses below 256 GiB",
                base
            ),
            MmuError::ImageTooLarge { pages } => write!(
                f,
                "the image has {} pages, more than the {} the relocation supports",
                pages, MAX_IMAGE_PAGES
            ),
            MmuError::TooManyHoles => f.write_str("too many holes in the EL2 physmap"),
        }
    }
}

/// What the real map holds, for the boot report and the coloring self-check.
pub struct HypMap {
    /// Colors of the image's pages and tables (0: uncolored, the image stayed where loaded).
    pub colors: u64,
    /// Pages of the image (text to the end of the stacks).
    pub image_pages: usize,
    /// Table pages of the real map.
    pub table_pages: usize,
}

/// Table memory of the real map: frames from the allocator (of `colors`, if any), reached
/// through the physmap; remembers the frames for the self-check.
struct HypTables {
    colors: u64,
    frames: heapless::Vec<u64, MAX_TABLES>,
    count: usize,
}

impl TableMemory for HypTables {
    fn alloc_table(&mut self, count_4k: usize, _align: usize) -> Option<PhysAddr> {
        // The EL2 map's root is a single table (39-bit input addresses start at level 1).
        if count_4k != 1 {
            return None;
        }
        let pa = mm::alloc_hyp_frame(self.colors)?;
        let _ = self.frames.push(pa.0);
        self.count += 1;
        Some(pa)
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        // SAFETY: `table` is a table frame of this map (from `alloc_table`), reached through
        // the identity physmap; index < 512.
        unsafe { core::ptr::read_volatile((mm::phys_to_ptr(table) as *const u64).add(index)) }
    }

    fn write(&mut self, table: PhysAddr, index: usize, desc: u64) {
        // SAFETY: as for `read`; an aligned 64-bit store.
        unsafe { core::ptr::write_volatile((mm::phys_to_ptr(table) as *mut u64).add(index), desc) }
    }
}

/// Builds the real map, moves the image into frames of `colors` when that is not 0, and
/// switches this core to it. `load_pa` is where the loader put the image. Boot core, once,
/// with the frame allocator ready and no other core running.
pub fn build_and_switch(load_pa: u64, colors: u64) -> Result<HypMap, MmuError> {
    let pa_bits = parange_bits(ID_AA64MMFR0_EL1.get());
    let cfg = El2Stage1Config::new(VA_BITS, pa_bits);
    let img = image_layout();
    let pages = ((img.end - img.start) / 4096) as usize;
    if pages > MAX_IMAGE_PAGES {
        return Err(MmuError::ImageTooLarge { pages });
    }
    for r in core::iter::once(&BOARD.ram).chain(BOARD.hyp_mmio) {
        if r.base + r.size > img.start & !0x3fff_ffff {
            return Err(MmuError::AboveIdentityLimit { base: r.base });
        }
    }
    // Physical page of each image page.
    let dest = &raw mut DEST;
    for i in 0..pages {
        let pa = if colors == 0 {
            load_pa + (i as u64) * 4096
        } else {
            mm::alloc_hyp_frame(colors)
                .ok_or(MmuError::OutOfFrames { colors })?
                .0
        };
        // SAFETY: only the boot core touches DEST, before any other core runs; i < pages ≤
        // MAX_IMAGE_PAGES.
        unsafe { (*dest)[i] = pa };
    }
    // SAFETY: as above; a shared view while nothing writes DEST.
    let dest: &[u64] = unsafe { &(&*dest)[..pages] };
    let page_pa = |va: u64| dest[((va - img.start) / 4096) as usize];
    let tramp_pa = page_pa(img.tramp);

    let mut mem = HypTables {
        colors,
        frames: heapless::Vec::new(),
        count: 0,
    };
    let mut pt = PageTable::<El2Stage1>::new(&mut mem, &cfg)
        .map_err(|_| MmuError::OutOfFrames { colors })?;

    // Holes of the physmap: the image as loaded, its code and read-only pages wherever they
    // are now, and the trampoline page (mapped executable on its own below).
    let mut holes: heapless::Vec<PhysRange, 512> = heapless::Vec::new();
    let image_bytes = img.end - img.start;
    add_hole(&mut holes, load_pa, image_bytes)?;
    if colors != 0 {
        for va in (img.start..img.data).step_by(4096) {
            add_hole(&mut holes, page_pa(va), 4096)?;
        }
    }
    holes.sort_unstable_by_key(|r| r.base);
    let ram = BOARD.ram;
    let mut at = ram.base;
    for h in holes.iter().chain(core::iter::once(&PhysRange {
        base: ram.base + ram.size,
        size: 0,
    })) {
        let (lo, hi) = (h.base.clamp(ram.base, ram.base + ram.size), h.base + h.size);
        if lo > at {
            map(&mut pt, &mut mem, at, at, lo - at, MemAttrs::RAM_RW)?;
        }
        at = at.max(hi.min(ram.base + ram.size));
    }
    for r in BOARD.hyp_mmio {
        map(
            &mut pt,
            &mut mem,
            r.base,
            r.base,
            r.size,
            MemAttrs::DEVICE_RW,
        )?;
    }
    map(
        &mut pt,
        &mut mem,
        tramp_pa,
        tramp_pa,
        4096,
        MemAttrs::RAM_RX,
    )?;

    // The image at its link addresses.
    let sections = [
        (img.start, img.rodata, MemAttrs::RAM_RX),
        (img.rodata, img.data, MemAttrs::RAM_RO),
        (img.data, img.end, MemAttrs::RAM_RW),
    ];
    for (lo, hi, attrs) in sections {
        // Runs of pages that are mapped (every page but the stacks' guard pages), physically
        // contiguous when the image is not colored.
        let mut va = lo;
        while va < hi {
            if img.is_guard(va) {
                va += 4096;
                continue;
            }
            let mut end = va + 4096;
            while end < hi
                && !img.is_guard(end)
                && (colors == 0 || page_pa(end) == page_pa(va) + (end - va))
            {
                end += 4096;
            }
            map(&mut pt, &mut mem, va, page_pa(va), end - va, attrs)?;
            va = end;
        }
    }

    let ttbr0 = El2Stage1Config::ttbr0_el2(pt.root());
    let tcr = cfg.tcr_el2();
    if colors == 0 {
        // SAFETY: the new map maps the image at the same virtual addresses onto the same
        // physical pages as the early map, and the physmap the same way for every page this
        // code uses; only the boot core runs.
        unsafe { tessera_switch_ttbr(ttbr0) };
    } else {
        // SAFETY: `dest` holds `pages` distinct frames of the allocator, reached through the
        // physmap of both maps; the routine copies the whole image there (using no stack, so
        // the copy is exactly this core's state at the switch) and switches to the new map,
        // which maps the image's virtual addresses onto those frames. Only the boot core runs
        // and every interrupt is masked.
        unsafe { tessera_relocate(dest.as_ptr(), pages, img.start, ttbr0) };
    }
    enable_wxn();
    TTBR0.store(ttbr0, Ordering::Relaxed);
    TCR.store(tcr, Ordering::Relaxed);
    let translate = |va: u64| {
        pt.translate(&mem, VirtAddr(va))
            .map_or(0, |t: tessera_stage2::Translation| t.pa.0)
    };
    SECONDARY_ENTRY_PA.store(
        translate(super::boot::secondary_entry_va()),
        Ordering::Relaxed,
    );
    SECONDARY_BOOT_PA.store(
        super::boot::publish_secondary_boot(ttbr0, tcr, translate),
        Ordering::Relaxed,
    );
    let map = HypMap {
        colors,
        image_pages: pages,
        table_pages: mem.count,
    };
    if colors != 0 {
        TABLE_FRAMES_KNOWN.store(mem.frames.len() == mem.count, Ordering::Relaxed);
        for (i, f) in mem.frames.iter().enumerate() {
            TABLE_FRAMES[i].store(*f, Ordering::Relaxed);
        }
        TABLE_FRAME_COUNT.store(mem.frames.len() as u64, Ordering::Relaxed);
    }
    Ok(map)
}

static TABLE_FRAMES: [AtomicU64; MAX_TABLES] = [const { AtomicU64::new(0) }; MAX_TABLES];
static TABLE_FRAME_COUNT: AtomicU64 = AtomicU64::new(0);
static TABLE_FRAMES_KNOWN: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Every physical page the hypervisor itself lives in — each page of the image as the real
/// map translates it, then each table page of the map — passed to `f(kind, va_or_pa, pa)`
/// with kind "image" or "table". Returns false when the table list is incomplete.
pub fn for_each_own_page(mut f: impl FnMut(&'static str, u64, u64)) -> bool {
    let img = image_layout();
    let pa_bits = parange_bits(ID_AA64MMFR0_EL1.get());
    let cfg = El2Stage1Config::new(VA_BITS, pa_bits);
    let root = PhysAddr(TTBR0.load(Ordering::Relaxed) & 0x0000_ffff_ffff_f000);
    let pt = PageTable::<El2Stage1>::from_root(root, &cfg);
    let mem = HypTables {
        colors: 0,
        frames: heapless::Vec::new(),
        count: 0,
    };
    for va in (img.start..img.end).step_by(4096) {
        let t = pt.translate(&mem, VirtAddr(va));
        if img.is_guard(va) {
            // A guard page must stay unmapped; report it as out of place if it is not.
            if let Some(t) = t {
                let _ = t;
                f("stack guard (mapped!)", va, u64::MAX);
            }
            continue;
        }
        f("image", va, t.map_or(u64::MAX, |t| t.pa.0));
    }
    let n = TABLE_FRAME_COUNT.load(Ordering::Relaxed) as usize;
    for t in TABLE_FRAMES.iter().take(n) {
        let pa = t.load(Ordering::Relaxed);
        f("table", pa, pa);
    }
    TABLE_FRAMES_KNOWN.load(Ordering::Relaxed)
}

fn add_hole(
    holes: &mut heapless::Vec<PhysRange, 512>,
    base: u64,
    size: u64,
) -> Result<(), MmuError> {
    if let Some(last) = holes.last_mut() {
        if last.base + last.size == base {
            last.size += size;
            return Ok(());
        }
    }
    holes
        .push(PhysRange { base, size })
        .map_err(|_| MmuError::TooManyHoles)
}

fn map(
    pt: &mut PageTable<El2Stage1>,
    mem: &mut HypTables,
    va: u64,
    pa: u64,
    size: u64,
    attrs: MemAttrs,
) -> Result<(), MmuError> {
    if size == 0 {
        return Ok(());
    }
    pt.map(mem, VirtAddr(va), PhysAddr(pa), size, attrs)
        .map_err(|_| MmuError::Map { base: pa })
}

/// The parts of the image at their link (virtual) addresses, each 4 KiB aligned.
struct ImageLayout {
    start: u64,
    tramp: u64,
    rodata: u64,
    data: u64,
    stacks: u64,
    stacks_end: u64,
    end: u64,
}

impl ImageLayout {
    /// Whether `va` is the lowest page of a core's stack: left unmapped, so that an EL2 stack
    /// overflow faults instead of silently writing over the next core's stack.
    fn is_guard(&self, va: u64) -> bool {
        va >= self.stacks
            && va < self.stacks_end
            && (va - self.stacks).is_multiple_of(super::boot::STACK_SIZE as u64)
    }
}

fn image_layout() -> ImageLayout {
    unsafe extern "C" {
        static __image_start: u8;
        static __tramp_start: u8;
        static __rodata_start: u8;
        static __data_start: u8;
        static __stacks_start: u8;
        static __stacks_end: u8;
        static __image_end: u8;
    }
    ImageLayout {
        start: &raw const __image_start as u64,
        tramp: &raw const __tramp_start as u64,
        rodata: &raw const __rodata_start as u64,
        data: &raw const __data_start as u64,
        stacks: &raw const __stacks_start as u64,
        stacks_end: &raw const __stacks_end as u64,
        end: &raw const __image_end as u64,
    }
}

/// The image's extent at its link addresses: `(start, end)`.
pub fn image_extent() -> (u64, u64) {
    let l = image_layout();
    (l.start, l.end)
}

/// Physical address of the secondary cores' entry, and the context id that core `index`
/// must be started with (the physical address of the boot block | index).
pub fn secondary_start(index: usize) -> (u64, u64) {
    (
        SECONDARY_ENTRY_PA.load(Ordering::Relaxed),
        SECONDARY_BOOT_PA.load(Ordering::Relaxed) | index as u64,
    )
}

/// Sets SCTLR_EL2.WXN (on the boot core, once its real map is live).
fn enable_wxn() {
    use aarch64_cpu::registers::SCTLR_EL2;
    use tock_registers::interfaces::Writeable;
    SCTLR_EL2.set(super::boot::SCTLR_MMU_ON | super::boot::SCTLR_WXN);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    // SAFETY: invalidating EL2 TLB entries only drops cached translations (WXN may be cached
    // in them).
    unsafe { core::arch::asm!("tlbi alle2", "dsb sy", "isb", options(nostack)) };
}

unsafe extern "C" {
    fn tessera_switch_ttbr(ttbr0: u64);
    fn tessera_relocate(dest: *const u64, pages: usize, src: u64, ttbr0: u64);
}

core::arch::global_asm!(
    r#"
    .section .text.tessera_mmu, "ax"
    .global tessera_switch_ttbr
tessera_switch_ttbr:
    dsb     sy
    msr     ttbr0_el2, x0
    isb
    tlbi    alle2
    dsb     sy
    isb
    ret

    // x0 = destination frames (physical, identity-mapped), x1 = pages, x2 = source (virtual),
    // x3 = new TTBR0_EL2. Uses no stack and no memory but the source and destinations.
    .global tessera_relocate
tessera_relocate:
    mrs     x13, ctr_el0
    ubfx    x13, x13, #16, #4
    mov     x14, #4
    lsl     x14, x14, x13               // smallest data cache line
    mov     x4, #0
1:  cmp     x4, x1
    b.hs    4f
    ldr     x5, [x0, x4, lsl #3]
    add     x6, x2, x4, lsl #12
    mov     x10, x6
    mov     x11, x5
    add     x12, x6, #4096
2:  ldp     x8, x9, [x10], #16
    stp     x8, x9, [x11], #16
    cmp     x10, x12
    b.lo    2b
    // Clean the copy to the point of coherency: secondaries fetch their entry and read their
    // boot block from it with the MMU off.
    mov     x11, x5
    add     x12, x5, #4096
3:  dc      cvac, x11
    add     x11, x11, x14
    cmp     x11, x12
    b.lo    3b
    add     x4, x4, #1
    b       1b
4:  dsb     sy
    ic      iallu
    dsb     sy
    isb
    msr     ttbr0_el2, x3
    isb
    tlbi    alle2
    dsb     sy
    ic      iallu
    dsb     sy
    isb
    ret
"#
);
