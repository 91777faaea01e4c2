//! The generic timer: the virtual counter (`CNTVCT_EL0`) and the EL1 virtual timer
//! (`CNTV_*`, a PPI: INTID 27 unless the device tree's `/timer` says otherwise).

use aarch64_cpu::registers::{
    Readable, Writeable, CNTFRQ_EL0, CNTVCT_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0,
};

/// The virtual timer's INTID when the device tree does not give one.
pub const DEFAULT_VIRT_INTID: u32 = 27;

/// Counter frequency in Hz (`CNTFRQ_EL0`; at least 1).
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get().max(1)
}

/// The virtual counter, after an `isb` (so it is not read early).
#[inline(always)]
pub fn now() -> u64 {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTVCT_EL0.get()
}

/// Counter ticks in `us` microseconds.
pub fn ticks_from_us(us: u64) -> u64 {
    (u128::from(us) * u128::from(frequency()) / 1_000_000) as u64
}

/// Microseconds in `ticks` counter ticks.
pub fn us_from_ticks(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000 / u128::from(frequency())) as u64
}

/// The virtual timer's INTID (from the device tree, else [`DEFAULT_VIRT_INTID`]).
pub fn virt_intid() -> u32 {
    crate::boot_info()
        .virt_timer_intid
        .unwrap_or(DEFAULT_VIRT_INTID)
}

/// Arms the virtual timer to fire when `CNTVCT >= cval` (enabled, not masked).
pub fn set_virt_deadline(cval: u64) {
    CNTV_CVAL_EL0.set(cval);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Arms the virtual timer `ticks` from now.
pub fn set_virt_after(ticks: u64) {
    set_virt_deadline(now().wrapping_add(ticks));
}

/// The virtual timer's compare value (`CNTV_CVAL_EL0`).
pub fn virt_deadline() -> u64 {
    CNTV_CVAL_EL0.get()
}

/// Disables the virtual timer (its interrupt output drops).
pub fn stop_virt() {
    CNTV_CTL_EL0.set(0);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Whether the virtual timer's condition is met (`CNTV_CTL_EL0.ISTATUS`).
pub fn virt_fired() -> bool {
    CNTV_CTL_EL0.is_set(CNTV_CTL_EL0::ISTATUS)
}

/// A virtual-timer handler for [`sleep_until`]: stops the timer (its level drops), nothing
/// else. Register it with `irq::use_virtual_timer(timer::stop_on_wake)`.
pub fn stop_on_wake(_intid: u32) {
    stop_virt();
}

/// Waits in `wfi` until the virtual counter reaches `when`: arms the virtual timer, waits,
/// and lets its interrupt be taken, as often as needed. IRQs must be masked on entry and are
/// masked on return; the virtual timer's interrupt must be enabled with a handler that stops
/// the timer ([`stop_on_wake`]). Other interrupts taken meanwhile run their handlers. On a
/// shared core the `wfi` blocks the vCPU until the deadline, so the core runs others.
pub fn sleep_until(when: u64) {
    while now() < when {
        set_virt_deadline(when);
        // With IRQs masked `wfi` still returns once an interrupt is pending; unmasking then
        // takes it, and no wake-up is lost between the check and the wait.
        crate::irq::wait();
        crate::irq::enable_local();
        crate::irq::disable_local();
    }
}
