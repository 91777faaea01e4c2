//! Raw SMC Calling Convention calls (`HVC #0` / `SMC #0`) and semihosting.

use core::arch::asm;

use crate::exception::{self, Fault};

/// How a call reaches its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `SMC #0` (PSCI under Tessera and on QEMU `virt` with virtualization=on).
    Smc,
    /// `HVC #0` (the Tessera ABI; PSCI on QEMU `virt` without EL2).
    Hvc,
}

impl Conduit {
    /// The device tree's name of the conduit.
    pub fn name(self) -> &'static str {
        match self {
            Conduit::Smc => "smc",
            Conduit::Hvc => "hvc",
        }
    }
}

/// Makes an SMCCC call: function id in `x0`, `args` in `x1..=x6`; returns `x0..=x3`.
///
/// The call itself cannot break this program's memory safety: the callee only reads and writes
/// registers (which are all declared clobbered per SMCCC 1.0: `x0..=x17`) and, for calls that
/// take buffers, memory the caller names. Calls with side effects on the whole machine
/// (`CPU_OFF`, `SYSTEM_OFF`, Tessera `Shutdown`) are the caller's business.
pub fn call(conduit: Conduit, id: u64, args: [u64; 6]) -> [u64; 4] {
    match conduit {
        Conduit::Hvc => hvc(id, args),
        Conduit::Smc => smc(id, args),
    }
}

macro_rules! smccc_asm {
    ($insn:literal, $id:expr, $args:expr) => {{
        let (r0, r1, r2, r3): (u64, u64, u64, u64);
        // SAFETY: the instruction only transfers control to the hypervisor/firmware, which
        // returns to the next instruction with results in x0..x3; every register the SMCCC
        // allows it to change (x0..x17) is declared as an output, and no memory of this
        // program is handed over except through addresses the caller chose to pass.
        unsafe {
            asm!(
                $insn,
                inout("x0") $id => r0,
                inout("x1") $args[0] => r1,
                inout("x2") $args[1] => r2,
                inout("x3") $args[2] => r3,
                inout("x4") $args[3] => _,
                inout("x5") $args[4] => _,
                inout("x6") $args[5] => _,
                out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
                out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _,
                out("x17") _,
                options(nostack),
            );
        }
        [r0, r1, r2, r3]
    }};
}

/// `HVC #0` with the SMCCC register convention.
pub fn hvc(id: u64, args: [u64; 6]) -> [u64; 4] {
    smccc_asm!("hvc #0", id, args)
}

/// `SMC #0` with the SMCCC register convention.
pub fn smc(id: u64, args: [u64; 6]) -> [u64; 4] {
    smccc_asm!("smc #0", id, args)
}

/// Like [`call`], but a synchronous exception or SError taken by the call (for example an
/// UNDEFINED exception injected by the hypervisor) is caught and returned as `Err` instead of
/// ending the guest.
pub fn call_catching(conduit: Conduit, id: u64, args: [u64; 6]) -> Result<[u64; 4], Fault> {
    // The `nop` after the call makes resumption at ELR + 4 land right whether the exception's
    // ELR names the call instruction itself or the instruction after it.
    exception::catching(|| match conduit {
        Conduit::Hvc => smccc_asm!("hvc #0\n nop", id, args),
        Conduit::Smc => smccc_asm!("smc #0\n nop", id, args),
    })
}

/// Semihosting `SYS_EXIT_EXTENDED` (operation 0x20) with `ADP_Stopped_ApplicationExit` and
/// `code`: QEMU run with `-semihosting` exits with status `code`. Returns if semihosting is
/// not there (then the `HLT` is UNDEFINED and the exception handler halts the CPU instead, as
/// the guest is already exiting).
pub fn semihosting_exit(code: u32) {
    const SYS_EXIT_EXTENDED: u64 = 0x20;
    const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;
    let block: [u64; 2] = [ADP_STOPPED_APPLICATION_EXIT, u64::from(code)];
    // SAFETY: `HLT #0xF000` is the A64 semihosting trap: the debugger/QEMU reads the two-word
    // parameter block at x1 (alive and initialized for the duration of the asm) and writes only
    // x0. Without semihosting it raises an exception handled by the runtime's vectors.
    unsafe {
        asm!(
            "hlt #0xf000",
            inout("x0") SYS_EXIT_EXTENDED => _,
            in("x1") block.as_ptr(),
            options(nostack, readonly),
        );
    }
}
