//! Where translation tables live.

use crate::PhysAddr;

/// Memory holding translation tables, provided by the caller of every [`PageTable`] operation.
///
/// The hypervisor implements it over identity-mapped physical memory (its frame allocator for
/// `alloc_table`, volatile 64-bit accesses for `read`/`write`); tests implement it with a map.
///
/// Zeroing: [`PageTable`] writes zero to every descriptor of every table it allocates before
/// linking it in, so `alloc_table` need not return zeroed memory (handing out zeroed frames
/// anyway does no harm). Tables are never freed by [`PageTable`].
///
/// [`PageTable`]: crate::PageTable
pub trait TableMemory {
    /// Allocates `count_4k` physically contiguous 4 KiB tables whose base is aligned to `align`
    /// bytes (a power of two, at least 4096; a concatenated stage-2 root asks for
    /// `align == count_4k * 4096`). `None` when out of memory.
    fn alloc_table(&mut self, count_4k: usize, align: usize) -> Option<PhysAddr>;

    /// Reads descriptor `index` (always `< 512`) of the 4 KiB table at `table`.
    fn read(&self, table: PhysAddr, index: usize) -> u64;

    /// Writes descriptor `index` (always `< 512`) of the 4 KiB table at `table`. Implementations
    /// over live tables should use a single 64-bit store (descriptors must not tear).
    fn write(&mut self, table: PhysAddr, index: usize, desc: u64);
}
