//! Calls to the platform's PSCI firmware (PSCI 1.1, SMC conduit: what QEMU `virt` with
//! virtualization=on offers).

/// PSCI function identifiers and return codes (`tessera_abi::smccc`, shared with guests).
pub mod func {
    pub use tessera_abi::smccc::arch::VERSION as SMCCC_VERSION;
    pub use tessera_abi::smccc::psci::*;
}
pub use tessera_abi::smccc::psci::ret;

/// An SMCCC fast call to the firmware (EL3) from EL2: `func` in w0, arguments in x1..x3;
/// returns x0.
pub fn smc(func: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut x0 = func as u64;
    // SAFETY: an SMCCC call to firmware; per SMCCC 1.1 it may clobber x0-x17 and nothing else.
    unsafe {
        core::arch::asm!("smc #0",
            inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
            out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _, options(nostack));
    }
    x0 as i64
}

/// Starts physical core `mpidr` at `entry` (EL2) with `x0 = context`.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> i64 {
    smc(func::CPU_ON, mpidr, entry, context)
}

/// Powers the machine off.
pub fn system_off() -> ! {
    smc(func::SYSTEM_OFF, 0, 0, 0);
    super::halt_core()
}
