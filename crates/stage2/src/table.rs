//! The generic table tree: map, unmap, translate.

use core::marker::PhantomData;

use crate::format::{is_leaf, is_table, table_desc, DESC_VALID, OA_MASK};
use crate::{
    level_size, InputAddress, Layout, MemAttrs, PhysAddr, TableMemory, TranslationFormat,
    ENTRIES_PER_TABLE, PAGE_SIZE,
};

/// Why [`PageTable::new`], [`PageTable::map`] or [`PageTable::unmap`] failed. `A` is the
/// format's input address type. A failed call leaves the mappings as they were (tables
/// allocated on the way may stay, empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError<A> {
    /// An address or the size is not a multiple of 4 KiB.
    Unaligned,
    /// The input range leaves the input address space, or the output range leaves the
    /// output (PS) address space.
    OutOfRange,
    /// `map`: this input address of the range is already mapped.
    AlreadyMapped(A),
    /// `unmap`: this input address of the range is not mapped.
    NotMapped(A),
    /// `unmap`: the range cuts the block mapped at this (block-aligned) input address; blocks
    /// are never split.
    SplitsBlock(A),
    /// [`TableMemory::alloc_table`] returned `None`.
    OutOfMemory,
    /// The format cannot express these attributes (EL2 stage 1 without `read`).
    InvalidAttributes,
}

/// The result of a software walk ([`PageTable::translate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address the input address translates to (including the offset within the
    /// page or block).
    pub pa: PhysAddr,
    /// The attributes of the leaf.
    pub attrs: MemAttrs,
    /// The level of the leaf: 1 (1 GiB block), 2 (2 MiB block) or 3 (4 KiB page).
    pub level: u8,
}

impl Translation {
    /// Bytes mapped by the leaf (1 GiB, 2 MiB or 4 KiB).
    pub const fn leaf_size(&self) -> u64 {
        level_size(self.level)
    }
}

/// What [`PageTable::walk`] reports. `A` is the format's input address type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkItem<A> {
    /// A 4 KiB translation table at physical `pa`, holding the descriptors of `level`.
    Table {
        /// Where the table is.
        pa: PhysAddr,
        /// The level of its descriptors (the root's is the start level).
        level: u8,
    },
    /// A leaf: `size` bytes at input address `va` map to `pa`.
    Leaf {
        /// First input address of the leaf (aligned to `size`).
        va: A,
        /// First output address.
        pa: PhysAddr,
        /// Bytes the leaf maps (1 GiB, 2 MiB or 4 KiB).
        size: u64,
        /// Its attributes, `None` if the format cannot decode the descriptor.
        attrs: Option<MemAttrs>,
        /// 1, 2 (blocks) or 3 (page).
        level: u8,
    },
}

/// A tree of translation tables in format `F` ([`Stage2`](crate::Stage2) or
/// [`El2Stage1`](crate::El2Stage1)).
///
/// The value is only the root address and geometry (it is `Copy`; keep it in a VM structure).
/// The tables themselves live in the [`TableMemory`] passed to every call; use the same one
/// (or one over the same memory) for all calls on a tree.
pub struct PageTable<F: TranslationFormat> {
    root: PhysAddr,
    layout: Layout,
    _format: PhantomData<F>,
}

impl<F: TranslationFormat> Clone for PageTable<F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F: TranslationFormat> Copy for PageTable<F> {}

impl<F: TranslationFormat> core::fmt::Debug for PageTable<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PageTable")
            .field("root", &self.root)
            .field("layout", &self.layout)
            .finish()
    }
}

const fn shift(level: u8) -> u32 {
    12 + 9 * (3 - level as u32)
}

const fn align_down(a: u64, size: u64) -> u64 {
    a & !(size - 1)
}

type Res<F> = Result<(), MapError<<F as TranslationFormat>::Input>>;

impl<F: TranslationFormat> PageTable<F> {
    /// Allocates and zeroes an empty root (`root_tables` concatenated tables, aligned to their
    /// total size).
    pub fn new<M: TableMemory + ?Sized>(
        mem: &mut M,
        config: &F::Config,
    ) -> Result<Self, MapError<F::Input>> {
        let layout = F::layout(config);
        let n = layout.root_tables;
        let root = mem
            .alloc_table(n, n * PAGE_SIZE as usize)
            .ok_or(MapError::OutOfMemory)?;
        for t in 0..n {
            zero_table(mem, root.add(t as u64 * PAGE_SIZE));
        }
        Ok(Self {
            root,
            layout,
            _format: PhantomData,
        })
    }

    /// A tree already built at `root` with this configuration (e.g. rebuilt from a saved root).
    pub fn from_root(root: PhysAddr, config: &F::Config) -> Self {
        Self {
            root,
            layout: F::layout(config),
            _format: PhantomData,
        }
    }

    /// Physical address of the root (for `VTTBR_EL2` / `TTBR0_EL2`).
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// The geometry.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Maps `size` bytes at input address `va` to physical `pa` with `attrs`, using the largest
    /// leaves alignment allows: 1 GiB blocks at level 1, 2 MiB blocks at level 2, 4 KiB pages.
    ///
    /// `va`, `pa` and `size` must be multiples of 4 KiB; `size == 0` does nothing. Fails without
    /// changing any mapping if any page of the range is already mapped
    /// ([`MapError::AlreadyMapped`] with the first such address). Only invalid descriptors are
    /// written (no break-before-make needed); an existing, empty next-level table where a
    /// block would fit is reused, so that part is mapped with smaller leaves. The caller
    /// makes the writes visible to the walker (`DSB ISHST`) before use.
    pub fn map<M: TableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        va: F::Input,
        pa: PhysAddr,
        size: u64,
        attrs: MemAttrs,
    ) -> Res<F> {
        self.map_with(mem, va, pa, size, attrs, true)
    }

    /// As [`map`](Self::map), but only with 4 KiB pages (level-3 leaves), never blocks, however
    /// the range is aligned: for memory whose frames are chosen one by one (cache coloring),
    /// mapped run by run, where a run that happens to be block-aligned must still be pages (so
    /// that the layout does not depend on where the allocator's frames fell).
    pub fn map_pages<M: TableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        va: F::Input,
        pa: PhysAddr,
        size: u64,
        attrs: MemAttrs,
    ) -> Res<F> {
        self.map_with(mem, va, pa, size, attrs, false)
    }

    fn map_with<M: TableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        va: F::Input,
        pa: PhysAddr,
        size: u64,
        attrs: MemAttrs,
        blocks: bool,
    ) -> Res<F> {
        let (start, end) = self.check_range(va, size)?;
        if !pa.0.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned);
        }
        match pa.0.checked_add(size) {
            Some(pa_end) if pa_end <= 1u64 << self.layout.output_bits => {}
            _ => return Err(MapError::OutOfRange),
        }
        if F::encode_leaf(pa, attrs, 3).is_none() {
            return Err(MapError::InvalidAttributes);
        }
        if start == end {
            return Ok(());
        }
        if let Some(a) = self.first_leaf(mem, self.root, self.layout.start_level, start, end) {
            return Err(MapError::AlreadyMapped(F::Input::from_u64(a)));
        }
        let level = self.layout.start_level;
        let r = self.map_level(mem, self.root, level, start, pa.0, end, attrs, blocks);
        if r.is_err() {
            // Nothing in [start, end) was mapped before: every leaf there is ours.
            self.clear_leaves(mem, self.root, level, start, end);
        }
        r
    }

    /// Unmaps `size` bytes at input address `va` (multiples of 4 KiB), which must be mapped in
    /// full, by leaves lying wholly inside the range (blocks are never split). Fails without
    /// changing anything otherwise ([`MapError::NotMapped`], [`MapError::SplitsBlock`]).
    ///
    /// Descriptors are only invalidated; tables are kept (and reused by later maps). The caller
    /// then does `DSB ISHST` and TLB invalidation (`TLBI IPAS2E1IS` + `VMALLE1IS` for stage 2,
    /// `TLBI VAE2IS` for EL2) before the memory is reused.
    pub fn unmap<M: TableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        va: F::Input,
        size: u64,
    ) -> Res<F> {
        let (start, end) = self.check_range(va, size)?;
        if start == end {
            return Ok(());
        }
        let level = self.layout.start_level;
        self.check_unmap(mem, self.root, level, start, end)?;
        self.clear_leaves(mem, self.root, level, start, end);
        Ok(())
    }

    /// Software walk: the physical address, attributes and leaf level `va` translates to, or
    /// `None` if it is unmapped or outside the input address space.
    pub fn translate<M: TableMemory + ?Sized>(&self, mem: &M, va: F::Input) -> Option<Translation> {
        let a = va.to_u64();
        if a >= self.layout.input_size() {
            return None;
        }
        let mut table = self.root;
        let mut level = self.layout.start_level;
        loop {
            let (t, i) = self.slot(table, level, a);
            let d = mem.read(t, i);
            if is_leaf(d, level) {
                let (pa, attrs) = F::decode_leaf(d, level)?;
                let offset = a & (level_size(level) - 1);
                return Some(Translation {
                    pa: pa.add(offset),
                    attrs,
                    level,
                });
            }
            if !is_table(d, level) {
                return None;
            }
            table = PhysAddr(d & OA_MASK);
            level += 1;
        }
    }

    /// Visits the whole tree in input-address order: every table page (each concatenated root
    /// table once, then each next-level table before the entries it holds) and every leaf.
    /// Stops at, and returns, the first error `visit` returns. Invalid descriptors are skipped.
    /// A leaf whose descriptor the format cannot decode is reported with `attrs: None`.
    ///
    /// This is what a checker needs to see *all* memory a tree reaches, including the tables
    /// themselves (e.g. that a cache-colored VM's tables are in its colors).
    pub fn walk<M: TableMemory + ?Sized, E>(
        &self,
        mem: &M,
        mut visit: impl FnMut(WalkItem<F::Input>) -> Result<(), E>,
    ) -> Result<(), E> {
        let level = self.layout.start_level;
        for t in 0..self.layout.root_tables {
            visit(WalkItem::Table {
                pa: self.root.add(t as u64 * PAGE_SIZE),
                level,
            })?;
        }
        let entries = self.layout.root_entries();
        let size = level_size(level);
        for e in 0..entries {
            let (t, i) = (
                self.root.add((e / ENTRIES_PER_TABLE) as u64 * PAGE_SIZE),
                e % ENTRIES_PER_TABLE,
            );
            self.walk_entry(mem, mem.read(t, i), level, e as u64 * size, &mut visit)?;
        }
        Ok(())
    }

    /// [`walk`](Self::walk) below one descriptor `d` at `level` covering input `va`.
    fn walk_entry<M: TableMemory + ?Sized, E>(
        &self,
        mem: &M,
        d: u64,
        level: u8,
        va: u64,
        visit: &mut impl FnMut(WalkItem<F::Input>) -> Result<(), E>,
    ) -> Result<(), E> {
        if is_leaf(d, level) {
            let decoded = F::decode_leaf(d, level);
            return visit(WalkItem::Leaf {
                va: F::Input::from_u64(va),
                pa: decoded.map_or(PhysAddr(d & OA_MASK), |(pa, _)| pa),
                size: level_size(level),
                attrs: decoded.map(|(_, a)| a),
                level,
            });
        }
        if !is_table(d, level) {
            return Ok(());
        }
        let table = PhysAddr(d & OA_MASK);
        visit(WalkItem::Table {
            pa: table,
            level: level + 1,
        })?;
        let size = level_size(level + 1);
        for i in 0..ENTRIES_PER_TABLE {
            self.walk_entry(
                mem,
                mem.read(table, i),
                level + 1,
                va + i as u64 * size,
                visit,
            )?;
        }
        Ok(())
    }

    /// Validates an input range; returns it as raw `[start, end)`.
    fn check_range(&self, va: F::Input, size: u64) -> Result<(u64, u64), MapError<F::Input>> {
        let start = va.to_u64();
        if !start.is_multiple_of(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned);
        }
        match start.checked_add(size) {
            Some(end) if end <= self.layout.input_size() => Ok((start, end)),
            _ => Err(MapError::OutOfRange),
        }
    }

    /// The table and index holding the descriptor for `a` at `level` (`table` is the table of
    /// that level; at the start level the index may reach into a concatenated root table).
    fn slot(&self, table: PhysAddr, level: u8, a: u64) -> (PhysAddr, usize) {
        let idx = (a >> shift(level)) as usize;
        if level == self.layout.start_level {
            let idx = idx & (self.layout.root_entries() - 1);
            let t = idx / ENTRIES_PER_TABLE;
            (self.root.add(t as u64 * PAGE_SIZE), idx % ENTRIES_PER_TABLE)
        } else {
            (table, idx % ENTRIES_PER_TABLE)
        }
    }

    /// The first address of `[start, end)` that a leaf maps.
    fn first_leaf<M: TableMemory + ?Sized>(
        &self,
        mem: &M,
        table: PhysAddr,
        level: u8,
        start: u64,
        end: u64,
    ) -> Option<u64> {
        let size = level_size(level);
        let mut a = start;
        while a < end {
            let next = end.min(align_down(a, size) + size);
            let (t, i) = self.slot(table, level, a);
            let d = mem.read(t, i);
            if is_leaf(d, level) {
                return Some(a);
            }
            if is_table(d, level) {
                let found = self.first_leaf(mem, PhysAddr(d & OA_MASK), level + 1, a, next);
                if found.is_some() {
                    return found;
                }
            }
            a = next;
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn map_level<M: TableMemory + ?Sized>(
        &self,
        mem: &mut M,
        table: PhysAddr,
        level: u8,
        start: u64,
        pa: u64,
        end: u64,
        attrs: MemAttrs,
        blocks: bool,
    ) -> Res<F> {
        let size = level_size(level);
        let mut a = start;
        let mut p = pa;
        while a < end {
            let next = end.min(align_down(a, size) + size);
            let (t, i) = self.slot(table, level, a);
            let d = mem.read(t, i);
            let whole = (level == 3 || (blocks && level >= 1))
                && a.is_multiple_of(size)
                && p.is_multiple_of(size)
                && next - a == size;
            if whole && d & DESC_VALID == 0 {
                let leaf =
                    F::encode_leaf(PhysAddr(p), attrs, level).ok_or(MapError::InvalidAttributes)?;
                mem.write(t, i, leaf);
            } else {
                let next_table = if is_table(d, level) {
                    PhysAddr(d & OA_MASK)
                } else if d & DESC_VALID == 0 && level < 3 {
                    let nt = mem
                        .alloc_table(1, PAGE_SIZE as usize)
                        .ok_or(MapError::OutOfMemory)?;
                    zero_table(mem, nt);
                    mem.write(t, i, table_desc(nt));
                    nt
                } else {
                    return Err(MapError::AlreadyMapped(F::Input::from_u64(a)));
                };
                self.map_level(mem, next_table, level + 1, a, p, next, attrs, blocks)?;
            }
            p += next - a;
            a = next;
        }
        Ok(())
    }

    /// Checks that `[start, end)` is wholly mapped by leaves lying inside it.
    fn check_unmap<M: TableMemory + ?Sized>(
        &self,
        mem: &M,
        table: PhysAddr,
        level: u8,
        start: u64,
        end: u64,
    ) -> Res<F> {
        let size = level_size(level);
        let mut a = start;
        while a < end {
            let base = align_down(a, size);
            let next = end.min(base + size);
            let (t, i) = self.slot(table, level, a);
            let d = mem.read(t, i);
            if is_leaf(d, level) {
                if base != a || next != base + size {
                    return Err(MapError::SplitsBlock(F::Input::from_u64(base)));
                }
            } else if is_table(d, level) {
                self.check_unmap(mem, PhysAddr(d & OA_MASK), level + 1, a, next)?;
            } else {
                return Err(MapError::NotMapped(F::Input::from_u64(a)));
            }
            a = next;
        }
        Ok(())
    }

    /// Invalidates every leaf wholly inside `[start, end)`.
    fn clear_leaves<M: TableMemory + ?Sized>(
        &self,
        mem: &mut M,
        table: PhysAddr,
        level: u8,
        start: u64,
        end: u64,
    ) {
        let size = level_size(level);
        let mut a = start;
        while a < end {
            let base = align_down(a, size);
            let next = end.min(base + size);
            let (t, i) = self.slot(table, level, a);
            let d = mem.read(t, i);
            if is_leaf(d, level) {
                if base == a && next == base + size {
                    mem.write(t, i, 0);
                }
            } else if is_table(d, level) {
                self.clear_leaves(mem, PhysAddr(d & OA_MASK), level + 1, a, next);
            }
            a = next;
        }
    }
}

fn zero_table<M: TableMemory + ?Sized>(mem: &mut M, table: PhysAddr) {
    for i in 0..ENTRIES_PER_TABLE {
        mem.write(table, i, 0);
    }
}
