//! Ending the guest: [`exit`].

use core::sync::atomic::{AtomicBool, Ordering};

use crate::{boot, cpu, psci, smccc, tessera};

/// Set once the guest is on its way out, so that a fault on the way ends in a halt instead of
/// another attempt to exit.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Ends the guest with `code` (0 = success).
///
/// - Under Tessera: the `Shutdown(code)` hypercall (the whole VM powers off).
/// - Bare, `code == 0`: PSCI `SYSTEM_OFF` (QEMU exits with status 0).
/// - Bare, `code != 0`: semihosting `SYS_EXIT_EXTENDED`, so QEMU (run with `-semihosting`)
///   exits with status `code`.
///
/// If none of these takes effect, the CPU halts.
pub fn exit(code: u32) -> ! {
    if EXITING.swap(true, Ordering::SeqCst) {
        // A second exit (from a fault or panic while exiting): don't try again.
        cpu::halt();
    }
    let info = boot::try_boot_info();
    if info.is_some_and(|i| i.tessera) {
        tessera::shutdown(code);
    }
    if code == 0 {
        if let Some(conduit) = info.and_then(|i| i.psci) {
            psci::system_off(conduit);
        }
    }
    smccc::semihosting_exit(code);
    cpu::halt()
}

/// Whether [`exit`] has been called (used by the fault paths to avoid recursion).
pub(crate) fn exiting() -> bool {
    EXITING.load(Ordering::SeqCst)
}
