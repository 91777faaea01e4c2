//! Cache maintenance to the point of coherency, for memory the hypervisor writes that a guest
//! will read with its MMU (and so its caches) off.

use aarch64_cpu::asm::barrier;

/// Cleans and invalidates `[pa, pa + len)` from the data caches to the point of coherency, and
/// invalidates the instruction caches.
pub fn clean_inval_dcache_range(pa: u64, len: u64) {
    let line = dcache_line_size();
    let mut a = pa & !(line - 1);
    let end = pa + len;
    while a < end {
        // SAFETY: DC CIVAC on identity-mapped memory only writes back/invalidates cache lines;
        // it never changes memory contents as seen by a coherent observer.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    barrier::dsb(barrier::SY);
    // SAFETY: invalidating all instruction caches to PoU is always safe; it only costs refills.
    unsafe { core::arch::asm!("ic ialluis", options(nostack)) };
    barrier::dsb(barrier::SY);
    barrier::isb(barrier::SY);
}

/// Invalidates all instruction caches of the inner-shareable domain (after code that was
/// written has been cleaned to the point of coherency or unification).
pub fn invalidate_icache() {
    barrier::dsb(barrier::SY);
    // SAFETY: invalidating all instruction caches to PoU is always safe; it only costs refills.
    unsafe { core::arch::asm!("ic ialluis", options(nostack)) };
    barrier::dsb(barrier::SY);
    barrier::isb(barrier::SY);
}

/// Cleans and invalidates `[pa, pa + len)` from the data caches to the point of coherency
/// (no instruction-cache maintenance): the by-address form of a guest's set/way operation.
pub fn clean_inval_dcache_lines(pa: u64, len: u64) {
    let line = dcache_line_size();
    let mut a = pa & !(line - 1);
    let end = pa.saturating_add(len);
    while a < end {
        // SAFETY: as in `clean_inval_dcache_range`: DC CIVAC on identity-mapped RAM.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    barrier::dsb(barrier::SY);
}

/// Smallest data cache line (CTR_EL0.DminLine).
fn dcache_line_size() -> u64 {
    let ctr: u64;
    // SAFETY: CTR_EL0 is a read-only identification register.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Invalidates all stage-1 and stage-2 TLB entries of every VMID (EL1&0 regime), all cores.
pub fn tlb_invalidate_guests() {
    barrier::dsb(barrier::ISHST);
    // SAFETY: TLB invalidation only drops cached translations.
    unsafe { core::arch::asm!("tlbi alle1is", options(nostack)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}
