//! The physical frame allocator: a bitmap of 4 KiB frames over one physical range.

use crate::{CacheGeometry, ColorMask, PhysAddr, FRAME_SIZE, MAX_COLORS};

/// Most [`FrameAllocator::reserve`] ranges an allocator remembers.
pub const MAX_RESERVATIONS: usize = 16;

/// Bitmap words (`u64`, 64 frames each) a [`FrameAllocator`] needs for `bytes` of memory:
/// 2 GiB → 8192 words (64 KiB of bitmap), 8 GiB → 32768 words (256 KiB).
pub const fn bitmap_words(bytes: u64) -> usize {
    bytes.div_ceil(FRAME_SIZE * 64) as usize
}

/// Why a [`FrameAllocator`] call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// An address or size is not a multiple of 4 KiB (or the alignment not a power of two).
    Unaligned,
    /// [`FrameAllocator::init`]: the range has more frames than the bitmap (`WORDS * 64`), or
    /// wraps around.
    TooLarge,
    /// [`FrameAllocator::free`]: the range leaves the managed range.
    OutOfRange,
    /// [`FrameAllocator::free`]: this frame is not allocated.
    NotAllocated(PhysAddr),
    /// [`FrameAllocator::free`]: this frame is reserved.
    Reserved(PhysAddr),
    /// [`FrameAllocator::reserve`]: this frame has already been handed out.
    Allocated(PhysAddr),
    /// [`FrameAllocator::reserve`]: more than [`MAX_RESERVATIONS`] ranges.
    TooManyReservations,
}

/// A 4 KiB frame allocator over one physical range `[base, base + size)`, with a fixed-size
/// bitmap of `WORDS` `u64` (so `WORDS * 64` frames, see [`bitmap_words`]): 8192 words for
/// 2 GiB (64 KiB of bitmap), 32768 for 8 GiB (256 KiB).
///
/// Holds its bitmap inline, so it is large: put it in a `static` (built with the `const`
/// [`FrameAllocator::EMPTY`], then [`FrameAllocator::init`]) rather than on an EL2 stack.
///
/// Frames are either free, allocated, or reserved (set aside by [`FrameAllocator::reserve`]:
/// the hypervisor image, the DTB; never handed out, never freed). Handed-out memory is not
/// zeroed.
#[derive(Clone)]
pub struct FrameAllocator<const WORDS: usize> {
    /// Bit set = frame not free (allocated, reserved, or past the end of the range).
    used: [u64; WORDS],
    base: u64,
    frames: usize,
    free: usize,
    reservations: [(u64, u64); MAX_RESERVATIONS],
    n_reservations: usize,
    /// Round-robin position of `alloc_colored`: the color to try first.
    next_color: usize,
    /// Per color, a frame index below which no frame of that color is free.
    color_hint: [usize; MAX_COLORS],
    /// The color count `color_hint` was computed for.
    hint_colors: usize,
}

impl<const WORDS: usize> core::fmt::Debug for FrameAllocator<WORDS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameAllocator")
            .field("base", &PhysAddr(self.base))
            .field("frames", &self.frames)
            .field("free", &self.free)
            .field("reservations", &&self.reservations[..self.n_reservations])
            .finish()
    }
}

impl<const WORDS: usize> Default for FrameAllocator<WORDS> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const WORDS: usize> FrameAllocator<WORDS> {
    /// An allocator managing no memory (every allocation fails) until [`init`](Self::init).
    pub const EMPTY: Self = Self {
        used: [u64::MAX; WORDS],
        base: 0,
        frames: 0,
        free: 0,
        reservations: [(0, 0); MAX_RESERVATIONS],
        n_reservations: 0,
        next_color: 0,
        color_hint: [0; MAX_COLORS],
        hint_colors: 0,
    };

    /// Frames the bitmap can track (`WORDS * 64`).
    pub const CAPACITY: usize = WORDS * 64;

    /// An allocator over `[base, base + size)`, all free. Returns the whole allocator by value
    /// (`WORDS * 8` bytes and more): fine on a host, use [`EMPTY`](Self::EMPTY) +
    /// [`init`](Self::init) in place at EL2.
    pub fn new(base: PhysAddr, size: u64) -> Result<Self, FrameError> {
        let mut a = Self::EMPTY;
        a.init(base, size)?;
        Ok(a)
    }

    /// (Re)starts managing `[base, base + size)` (4 KiB aligned, at most
    /// [`CAPACITY`](Self::CAPACITY) frames), all free, forgetting every allocation and
    /// reservation.
    pub fn init(&mut self, base: PhysAddr, size: u64) -> Result<(), FrameError> {
        if !base.0.is_multiple_of(FRAME_SIZE) || !size.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Unaligned);
        }
        let frames = size / FRAME_SIZE;
        if frames > Self::CAPACITY as u64 || base.0.checked_add(size).is_none() {
            return Err(FrameError::TooLarge);
        }
        *self = Self::EMPTY;
        self.base = base.0;
        self.frames = frames as usize;
        self.free = self.frames;
        self.clear_bits(0, self.frames);
        Ok(())
    }

    /// First managed address.
    pub fn base(&self) -> PhysAddr {
        PhysAddr(self.base)
    }

    /// Number of managed frames.
    pub fn total_frames(&self) -> usize {
        self.frames
    }

    /// Number of free frames.
    pub fn free_frames(&self) -> usize {
        self.free
    }

    /// Whether the frame holding `pa` is managed and free.
    pub fn is_free(&self, pa: PhysAddr) -> bool {
        match self.index_of(pa.0) {
            Some(i) => !self.bit(i),
            None => false,
        }
    }

    /// Number of free frames of a color in `mask` (checks a colored VM's config fits).
    pub fn free_frames_colored(&self, mask: ColorMask, geometry: &CacheGeometry) -> usize {
        let n = geometry.page_colors();
        (0..self.frames)
            .filter(|&i| !self.bit(i) && mask.contains(self.color(i, n)))
            .count()
    }

    /// Sets `[base, base + size)` aside for good (widened to 4 KiB frames, clipped to the
    /// managed range; `size == 0` reserves nothing): it is never handed out nor freed.
    /// Reservations may overlap each other but not allocated frames
    /// ([`FrameError::Allocated`]). Meant for boot, before any allocation.
    pub fn reserve(&mut self, base: PhysAddr, size: u64) -> Result<(), FrameError> {
        if size == 0 {
            return Ok(());
        }
        let start = (base.0 & !(FRAME_SIZE - 1)).max(self.base);
        let end = base.0.saturating_add(size).saturating_add(FRAME_SIZE - 1) & !(FRAME_SIZE - 1);
        let end = end.min(self.end());
        if start >= end {
            return Ok(());
        }
        if self.n_reservations == MAX_RESERVATIONS {
            return Err(FrameError::TooManyReservations);
        }
        let (from, to) = (self.index(start), self.index(end));
        for i in from..to {
            if self.bit(i) && !self.is_reserved(self.addr(i)) {
                return Err(FrameError::Allocated(PhysAddr(self.addr(i))));
            }
        }
        for i in from..to {
            if !self.bit(i) {
                self.set_bit(i);
                self.free -= 1;
            }
        }
        self.reservations[self.n_reservations] = (start, end);
        self.n_reservations += 1;
        Ok(())
    }

    /// The first (lowest) run of free frames covering `size` bytes (rounded up to 4 KiB)
    /// whose physical address is a multiple of `align` (a power of two; below 4 KiB means
    /// 4 KiB). `None` if `size` is 0, `align` is not a power of two, or no run fits. Use a
    /// 2 MiB (or 1 GiB) `align` so stage 2 can map the run with blocks.
    pub fn alloc_contiguous(&mut self, size: u64, align: u64) -> Option<PhysAddr> {
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        let n = usize::try_from(size.div_ceil(FRAME_SIZE)).ok()?;
        let align_frames = (align / FRAME_SIZE).max(1);
        let base_pfn = self.base / FRAME_SIZE;
        let mut from = 0usize;
        loop {
            // First index ≥ from whose address is aligned.
            let pfn = (base_pfn + from as u64).checked_next_multiple_of(align_frames)?;
            let i = usize::try_from(pfn - base_pfn).ok()?;
            if i.checked_add(n)? > self.frames {
                return None;
            }
            match self.first_set(i, i + n) {
                None => {
                    self.set_bits(i, i + n);
                    self.free -= n;
                    return Some(PhysAddr(self.addr(i)));
                }
                Some(u) => from = self.first_clear(u + 1)?,
            }
        }
    }

    /// One free frame whose color ([`CacheGeometry::color_of`]) is in `mask`, taking the
    /// colors of `mask` round-robin so consecutive frames spread over them (lowest free
    /// frame of each color). `None` if no free frame has an allowed color (colors of `mask`
    /// at or above `geometry.page_colors()` never match).
    pub fn alloc_colored(&mut self, mask: ColorMask, geometry: &CacheGeometry) -> Option<PhysAddr> {
        let n = geometry.page_colors();
        if self.hint_colors != n {
            self.color_hint = [0; MAX_COLORS];
            self.hint_colors = n;
        }
        let base_pfn = self.base / FRAME_SIZE;
        for k in 0..n {
            let c = (self.next_color + k) % n;
            if !mask.contains(c) {
                continue;
            }
            // First index ≥ hint with color c.
            let h = self.color_hint[c];
            let mut i = h + (c + n - ((base_pfn + h as u64) % n as u64) as usize) % n;
            while i < self.frames {
                if !self.bit(i) {
                    self.set_bit(i);
                    self.free -= 1;
                    self.color_hint[c] = i + n;
                    self.next_color = (c + 1) % n;
                    return Some(PhysAddr(self.addr(i)));
                }
                i += n;
            }
            self.color_hint[c] = self.frames;
        }
        None
    }

    /// The first (lowest) run of `count` free frames whose address is a multiple of `align`
    /// (a power of two; below 4 KiB means 4 KiB) and *every* frame of which has a color in
    /// `mask`: e.g. a stage-2 root of 2 concatenated tables for a colored VM. Such a run exists
    /// only if `mask` holds `count` consecutive colors starting at a color the alignment
    /// allows. `None` if `count` is 0, `align` is not a power of two, or no run fits. Costs a
    /// scan of the managed range: meant for the rare multi-frame table, not for RAM.
    pub fn alloc_contiguous_colored(
        &mut self,
        count: usize,
        align: u64,
        mask: ColorMask,
        geometry: &CacheGeometry,
    ) -> Option<PhysAddr> {
        if count == 0 || !align.is_power_of_two() {
            return None;
        }
        let n = geometry.page_colors();
        let step = usize::try_from((align / FRAME_SIZE).max(1)).ok()?;
        let base_pfn = self.base / FRAME_SIZE;
        let first = (base_pfn.checked_next_multiple_of(step as u64)? - base_pfn) as usize;
        let mut i = first;
        while i.checked_add(count)? <= self.frames {
            let fits = (i..i + count).all(|j| !self.bit(j) && mask.contains(self.color(j, n)));
            if fits {
                self.set_bits(i, i + count);
                self.free -= count;
                return Some(PhysAddr(self.addr(i)));
            }
            i += step;
        }
        None
    }

    /// Returns `[pa, pa + size)` (4 KiB aligned), which must be wholly allocated (not free,
    /// not reserved, inside the range). Fails without freeing anything otherwise.
    pub fn free(&mut self, pa: PhysAddr, size: u64) -> Result<(), FrameError> {
        if !pa.0.is_multiple_of(FRAME_SIZE) || !size.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Unaligned);
        }
        match pa.0.checked_add(size) {
            Some(end) if pa.0 >= self.base && end <= self.end() => {}
            _ => return Err(FrameError::OutOfRange),
        }
        let from = self.index(pa.0);
        let to = from + (size / FRAME_SIZE) as usize;
        for i in from..to {
            let a = self.addr(i);
            if !self.bit(i) {
                return Err(FrameError::NotAllocated(PhysAddr(a)));
            }
            if self.is_reserved(a) {
                return Err(FrameError::Reserved(PhysAddr(a)));
            }
        }
        self.clear_bits(from, to);
        self.free += to - from;
        if self.hint_colors != 0 {
            let n = self.hint_colors;
            for i in from..(to.min(from + n)) {
                let c = self.color(i, n);
                self.color_hint[c] = self.color_hint[c].min(i);
            }
        }
        Ok(())
    }

    // --- helpers -------------------------------------------------------------------------

    fn end(&self) -> u64 {
        self.base + self.frames as u64 * FRAME_SIZE
    }

    fn index(&self, a: u64) -> usize {
        ((a - self.base) / FRAME_SIZE) as usize
    }

    fn index_of(&self, a: u64) -> Option<usize> {
        (a >= self.base && a < self.end()).then(|| self.index(a))
    }

    fn addr(&self, i: usize) -> u64 {
        self.base + i as u64 * FRAME_SIZE
    }

    fn color(&self, i: usize, n: usize) -> usize {
        ((self.base / FRAME_SIZE + i as u64) % n as u64) as usize
    }

    fn is_reserved(&self, a: u64) -> bool {
        self.reservations[..self.n_reservations]
            .iter()
            .any(|&(s, e)| a >= s && a < e)
    }

    fn bit(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_bit(&mut self, i: usize) {
        self.used[i / 64] |= 1 << (i % 64);
    }

    /// Mask of bits `[from, to)` within one word (`from < to <= 64`).
    fn word_mask(from: usize, to: usize) -> u64 {
        let hi = if to == 64 { u64::MAX } else { (1u64 << to) - 1 };
        hi & !((1u64 << from) - 1)
    }

    /// Calls `f(word, mask)` for the words covering bits `[from, to)`.
    fn for_words(from: usize, to: usize, mut f: impl FnMut(usize, u64) -> bool) {
        let mut i = from;
        while i < to {
            let w = i / 64;
            let lo = i % 64;
            let hi = (to - w * 64).min(64);
            if !f(w, Self::word_mask(lo, hi)) {
                return;
            }
            i = (w + 1) * 64;
        }
    }

    fn set_bits(&mut self, from: usize, to: usize) {
        let used = &mut self.used;
        Self::for_words(from, to, |w, m| {
            used[w] |= m;
            true
        });
    }

    fn clear_bits(&mut self, from: usize, to: usize) {
        let used = &mut self.used;
        Self::for_words(from, to, |w, m| {
            used[w] &= !m;
            true
        });
    }

    /// The first set (not free) bit in `[from, to)`.
    fn first_set(&self, from: usize, to: usize) -> Option<usize> {
        let mut found = None;
        Self::for_words(from, to, |w, m| {
            let bits = self.used[w] & m;
            if bits != 0 {
                found = Some(w * 64 + bits.trailing_zeros() as usize);
                return false;
            }
            true
        });
        found
    }

    /// The first clear (free) bit at or after `from`, below `frames`.
    fn first_clear(&self, from: usize) -> Option<usize> {
        let mut found = None;
        Self::for_words(from, self.frames, |w, m| {
            let bits = !self.used[w] & m;
            if bits != 0 {
                found = Some(w * 64 + bits.trailing_zeros() as usize);
                return false;
            }
            true
        });
        found
    }
}
