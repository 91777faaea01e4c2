//! Everything that touches AArch64 system registers or needs assembly lives below here.

mod boot;
pub mod cache;
pub mod el1off;
pub mod el2ctl;
pub mod esr;
pub mod exception;
pub mod gic;
mod log;
mod mmu;
pub mod psci;
pub mod regs;
pub mod semihosting;
pub mod vcpu;

pub use boot::early_puts;
pub use exception::{enter_guest, run_on_fresh_stack, TrapFrame};
pub use mmu::{build_and_switch, for_each_own_page, image_extent, secondary_start};

use aarch64_cpu::asm;

use crate::ids::CoreId;
use aarch64_cpu::registers::TPIDR_EL2;
use tock_registers::interfaces::Readable;

/// Index of the physical core we run on (set from the boot protocol into TPIDR_EL2).
pub fn core_index() -> CoreId {
    CoreId(TPIDR_EL2.get() as usize)
}

/// Stops this core for good (low power wait).
pub fn halt_core() -> ! {
    loop {
        asm::wfe();
    }
}

/// Ends the whole machine: the semihosting exit code when built for QEMU, PSCI SYSTEM_OFF
/// otherwise. Never returns.
pub fn halt_machine(code: u32) -> ! {
    #[cfg(feature = "semihosting")]
    semihosting::exit(code);
    #[cfg(not(feature = "semihosting"))]
    let _ = code;
    psci::system_off()
}
