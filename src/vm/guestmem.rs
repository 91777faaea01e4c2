//! Guest memory: the one way the hypervisor reads, writes, copies, zeroes and cleans a VM's
//! RAM (DESIGN.md §3).
//!
//! A VM's RAM is *not* physically contiguous: a cache-colored VM's RAM is single 4 KiB frames
//! of its colors. [`GuestMemory`] therefore goes page by page (leaf by leaf): it validates a
//! guest-physical range against the VM's RAM regions (the config's `mem`, so never a device,
//! a channel or the vGIC window), translates it by walking the VM's own stage 2 (the stage 2
//! *is* the frame list: no second copy of 131072 frames for a 512 MiB VM), checks each leaf is
//! Normal, writable memory, and only then touches memory, each physically contiguous piece
//! through the one physical-to-pointer conversion, [`mm::phys_to_ptr`]. Uncolored VMs are
//! mapped with blocks, so their pieces are 2 MiB (or 1 GiB) long.
//!
//! Reads of guest memory are volatile (the guest may change it at any time; every byte is read
//! exactly once). Writes, zeroing and cache cleaning are for memory of a VM none of whose vCPUs
//! runs (loading at boot and at reset).
//!
//! A VM's stage 2 never changes after it is built (channels, devices and RAM are all mapped by
//! `memory::build`), so a walk needs no lock.

use core::sync::atomic::Ordering;

use tessera_stage2::{GuestPhysAddr, MemKind, PageTable, PhysAddr, Stage2};

use super::{desc, get, memory, VmId};
use crate::arch::cache;
use crate::mm;

/// Why a guest-memory access was refused (nothing was touched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestMemError {
    /// `ipa + len` wraps around.
    Overflow,
    /// This address of the range is not in any of the VM's RAM regions.
    NotRam(GuestPhysAddr),
    /// This address of the VM's RAM has no Normal, writable stage-2 leaf (a hypervisor bug,
    /// or the VM is not built yet).
    Unmapped(GuestPhysAddr),
}

impl core::fmt::Display for GuestMemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            GuestMemError::Overflow => f.write_str("guest range wraps around"),
            GuestMemError::NotRam(a) => write!(f, "IPA {:#x} is not the VM's RAM", a.0),
            GuestMemError::Unmapped(a) => {
                write!(f, "IPA {:#x} of the VM's RAM is not mapped as RAM", a.0)
            }
        }
    }
}

/// One physically contiguous piece of a guest range: `len` bytes at `ipa`, which are at `pa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub ipa: GuestPhysAddr,
    pub pa: PhysAddr,
    pub len: u64,
}

/// A VM's RAM as the hypervisor reaches it. Cheap to make ([`GuestMemory::of`]): the VM and
/// its stage-2 root.
#[derive(Clone, Copy, Debug)]
pub struct GuestMemory {
    vm: VmId,
    /// The VM's stage 2 (`None` before `memory::build` made it).
    s2: Option<PageTable<Stage2>>,
}

impl GuestMemory {
    /// VM `vm`'s memory.
    pub fn of(vm: VmId) -> Self {
        GuestMemory {
            vm,
            s2: stage2_of(vm),
        }
    }

    /// Whether all of `[ipa, ipa + len)` is the VM's RAM (its config's regions; the stage 2 is
    /// not consulted). `len == 0`: whether `ipa` itself is.
    pub fn is_ram(&self, ipa: GuestPhysAddr, len: u64) -> bool {
        is_ram(self.vm, ipa, len)
    }

    /// The physical address of RAM byte `ipa` (a walk of the stage 2), `None` if `ipa` is not
    /// the VM's RAM. Only for reports: memory is reached through the methods below.
    pub fn translate(&self, ipa: GuestPhysAddr) -> Option<PhysAddr> {
        self.piece_at(ipa.0, ipa.0.checked_add(1)?)
            .ok()
            .map(|p| p.pa)
    }

    /// Validates all of `[ipa, ipa + len)` (RAM regions, then stage-2 leaves), then calls `f`
    /// on each physically contiguous piece in address order. Nothing is called if any byte of
    /// the range fails.
    pub fn for_each_piece(
        &self,
        ipa: GuestPhysAddr,
        len: u64,
        mut f: impl FnMut(Piece),
    ) -> Result<(), GuestMemError> {
        let end = ipa.0.checked_add(len).ok_or(GuestMemError::Overflow)?;
        self.pieces(ipa.0, end, |_| ())?;
        self.pieces(ipa.0, end, &mut f)
    }

    /// The `len` bytes at `ipa` as an iterator of volatile reads, validated in full first
    /// (e.g. a console buffer: the bytes go straight to the console, no copy).
    pub fn bytes(&self, ipa: GuestPhysAddr, len: u64) -> Result<GuestBytes, GuestMemError> {
        let end = ipa.0.checked_add(len).ok_or(GuestMemError::Overflow)?;
        self.pieces(ipa.0, end, |_| ())?;
        Ok(GuestBytes {
            mem: *self,
            next: ipa.0,
            end,
            pa: 0,
            left: 0,
        })
    }

    /// Writes `data` at `ipa` (memory of a VM none of whose vCPUs runs: loading).
    pub fn write(&self, ipa: GuestPhysAddr, data: &[u8]) -> Result<(), GuestMemError> {
        let mut at = 0usize;
        self.for_each_piece(ipa, data.len() as u64, |p| {
            let n = p.len as usize;
            // SAFETY: as in `GuestBytes::next`, `[p.pa, p.pa + n)` is mapped RAM of this VM; the
            // source is hypervisor data (the payload bundle, never mapped by a VM), so the two
            // do not overlap; no reference to guest memory is formed.
            unsafe {
                core::ptr::copy_nonoverlapping(data[at..at + n].as_ptr(), mm::phys_to_ptr(p.pa), n)
            };
            at += n;
        })
    }

    /// Zeroes `[ipa, ipa + len)`.
    pub fn zero(&self, ipa: GuestPhysAddr, len: u64) -> Result<(), GuestMemError> {
        self.for_each_piece(ipa, len, |p| {
            // SAFETY: as in `write`: a validated piece of this VM's RAM, mapped at EL2.
            unsafe { core::ptr::write_bytes(mm::phys_to_ptr(p.pa), 0, p.len as usize) };
        })
    }

    /// Cleans and invalidates `[ipa, ipa + len)` from the data caches to the point of
    /// coherency (no instruction-cache maintenance: see [`GuestMemory::sync_icache`]).
    pub fn clean_inval(&self, ipa: GuestPhysAddr, len: u64) -> Result<(), GuestMemError> {
        self.for_each_piece(ipa, len, |p| {
            cache::clean_inval_dcache_lines(mm::phys_to_ptr(p.pa) as u64, p.len);
        })
    }

    /// Invalidates the instruction caches (after code was written and cleaned).
    pub fn sync_icache(&self) {
        cache::invalidate_icache();
    }

    /// Zeroes all of the VM's RAM.
    pub fn zero_all(&self) -> Result<(), GuestMemError> {
        desc(self.vm)
            .mem
            .iter()
            .try_for_each(|m| self.zero(GuestPhysAddr(m.ipa), m.size))
    }

    /// Cleans all of the VM's RAM to the point of coherency and invalidates the instruction
    /// caches (before a guest starts with its MMU and caches off).
    pub fn clean_all(&self) -> Result<(), GuestMemError> {
        desc(self.vm)
            .mem
            .iter()
            .try_for_each(|m| self.clean_inval(GuestPhysAddr(m.ipa), m.size))?;
        self.sync_icache();
        Ok(())
    }

    /// Walks `[start, end)`, calling `f` on each piece (leaves whose frames are physically
    /// consecutive merged into one piece); stops at the first failing address.
    fn pieces(&self, start: u64, end: u64, mut f: impl FnMut(Piece)) -> Result<(), GuestMemError> {
        let mut a = start;
        let mut run: Option<Piece> = None;
        while a < end {
            let p = self.piece_at(a, end)?;
            a += p.len;
            run = match run {
                Some(r) if r.pa.0 + r.len == p.pa.0 => Some(Piece {
                    len: r.len + p.len,
                    ..r
                }),
                Some(r) => {
                    f(r);
                    Some(p)
                }
                None => Some(p),
            };
        }
        if let Some(r) = run {
            f(r);
        }
        Ok(())
    }

    /// The piece starting at `a` (at most up to `end`): within one RAM region and one leaf.
    fn piece_at(&self, a: u64, end: u64) -> Result<Piece, GuestMemError> {
        let ipa = GuestPhysAddr(a);
        let region_end = ram_region_end(self.vm, a).ok_or(GuestMemError::NotRam(ipa))?;
        let s2 = self.s2.ok_or(GuestMemError::Unmapped(ipa))?;
        let t = s2
            .translate(&mm::Tables::READ, ipa)
            .filter(|t| t.attrs.kind == MemKind::Normal && t.attrs.write)
            .ok_or(GuestMemError::Unmapped(ipa))?;
        let leaf_end = (a & !(t.leaf_size() - 1)).saturating_add(t.leaf_size());
        Ok(Piece {
            ipa,
            pa: t.pa,
            len: end.min(region_end).min(leaf_end) - a,
        })
    }
}

/// The bytes of a validated guest range, read (volatile) one at a time, translated a piece at
/// a time ([`GuestMemory::bytes`]).
pub struct GuestBytes {
    mem: GuestMemory,
    next: u64,
    end: u64,
    /// The current piece: its next byte's physical address and bytes left in it.
    pa: u64,
    left: u64,
}

impl Iterator for GuestBytes {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.left == 0 {
            if self.next >= self.end {
                return None;
            }
            // Validated when made; the stage 2 does not change, so this cannot fail (if it
            // did, the iteration would just end).
            let p = self.mem.piece_at(self.next, self.end).ok()?;
            self.next += p.len;
            (self.pa, self.left) = (p.pa.0, p.len);
        }
        // SAFETY: `pa` lies in a validated piece of the VM's RAM: frames given to this VM by
        // the frame allocator (or its claimed placement), all of which the EL2 physmap maps as
        // Normal memory, physically contiguous for the piece's length. Volatile because the
        // guest may write the byte concurrently.
        let b = unsafe { core::ptr::read_volatile(mm::phys_to_ptr(PhysAddr(self.pa))) };
        self.pa += 1;
        self.left -= 1;
        Some(b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.left + (self.end - self.next)) as usize;
        (n, Some(n))
    }
}

/// VM `vm`'s stage 2, once built.
pub fn stage2_of(vm: VmId) -> Option<PageTable<Stage2>> {
    let root = get(vm).s2_root.load(Ordering::Acquire);
    let cfg = memory::stage2_config_in_use()?;
    (root != 0).then(|| PageTable::from_root(PhysAddr(root), &cfg))
}

/// The end of the RAM region of VM `vm` holding `ipa`, or `None` if none does.
fn ram_region_end(vm: VmId, ipa: u64) -> Option<u64> {
    desc(vm)
        .mem
        .iter()
        .find(|m| ipa >= m.ipa && ipa - m.ipa < m.size)
        .map(|m| m.ipa + m.size)
}

/// Whether `[ipa, ipa + len)` lies in VM `vm`'s RAM regions (adjacent regions may share it).
pub fn is_ram(vm: VmId, ipa: GuestPhysAddr, len: u64) -> bool {
    let Some(end) = ipa.0.checked_add(len.max(1)) else {
        return false;
    };
    let mut a = ipa.0;
    while a < end {
        match ram_region_end(vm, a) {
            Some(e) => a = e,
            None => return false,
        }
    }
    true
}
