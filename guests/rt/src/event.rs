//! Waiting for another CPU: `wfe`-based waits with a timeout, and the matching wake-up.

use crate::timer;

/// Waits (`wfe`, which also yields to other vCPUs under QEMU) until `done()` or `timeout`
/// counter ticks pass. Returns whether `done()` became true.
pub fn wait_until(timeout: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = timer::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if timer::now() > deadline {
            return done();
        }
        aarch64_cpu::asm::wfe();
    }
}

/// Makes earlier stores visible and wakes CPUs waiting in `wfe`.
pub fn signal() {
    // SAFETY: a barrier and an event: no memory or register effects beyond ordering.
    unsafe { core::arch::asm!("dsb ish", "sev", options(nostack, preserves_flags)) };
}
