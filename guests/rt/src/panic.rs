//! Panic handler: print, then exit with code 2.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::SeqCst) {
        // A panic while reporting a panic (or on a second CPU): don't print again.
        crate::cpu::halt();
    }
    crate::console::emergency_println(format_args!(
        "rt: panic on cpu {}: {}",
        crate::cpu::index(),
        info
    ));
    crate::exit(2)
}
