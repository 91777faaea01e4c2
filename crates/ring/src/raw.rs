//! [`RawSharedMem`]: [`SharedMem`] over a raw pointer to the mapped region (feature `raw`).
//!
//! This is the crate's only unsafe code. Every access is an atomic operation on one aligned
//! 32-bit word of the region, made through a reference that lives only for that operation
//! (`AtomicU32::from_ptr`); no `&[u8]` or `&Header` into the region is ever formed, so the
//! peer changing the memory at any time is, to Rust, just another thread's atomic stores.

use core::ptr::NonNull;
use core::sync::atomic::AtomicU32;

use crate::mem::SharedMem;

/// The shared region as a base pointer and a size, for guests (and the hypervisor) that have it
/// mapped. Copyable: all copies access the same memory, atomically.
#[derive(Clone, Copy, Debug)]
pub struct RawSharedMem {
    base: NonNull<u32>,
    words: usize,
}

// SAFETY: the region is only ever accessed through atomic operations (see `word`), so using it
// from several threads at once is as sound as sharing an `&[AtomicU32]`; `new`'s contract makes
// the memory valid for the value's whole life, whatever thread holds it.
unsafe impl Send for RawSharedMem {}
// SAFETY: as for `Send`: `&RawSharedMem` gives only atomic access.
unsafe impl Sync for RawSharedMem {}

impl RawSharedMem {
    /// The region of `size` bytes (rounded down to whole words) at `base`, or `None` if `base`
    /// is null or not 4-byte aligned.
    ///
    /// # Safety
    /// For as long as the returned value or any copy of it exists, `base..base + size` must be
    /// mapped readable and writable (normal memory, with the same attributes at both ends) and
    /// must not be accessed by this program other than atomically (through `RawSharedMem`,
    /// `AtomicSliceMem` or atomics of its own). The peer may write it in any way at any time.
    pub unsafe fn new(base: *mut u8, size: usize) -> Option<Self> {
        let base = NonNull::new(base)?.cast::<u32>();
        if !base.as_ptr().is_aligned() {
            return None;
        }
        Some(RawSharedMem {
            base,
            words: size / 4,
        })
    }
}

impl SharedMem for RawSharedMem {
    fn size(&self) -> usize {
        self.words * 4
    }

    fn word(&self, index: usize) -> Option<&AtomicU32> {
        if index >= self.words {
            return None;
        }
        // SAFETY: `index < words`, so the pointer stays inside the region that `new`'s caller
        // promised is mapped for the value's life (hence for the borrow of `self`), aligned
        // (the base is 4-byte aligned), and only accessed atomically, which is what
        // `AtomicU32::from_ptr` requires. A wrong promise would make this access fault or race
        // with non-atomic code.
        Some(unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(index)) })
    }
}
