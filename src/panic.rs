//! A hypervisor panic is a bug of ours: report it and stop the machine.

use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    crate::console::emergency_print(format_args!(
        "\n[tessera] FATAL: hypervisor panic on core {}: {}\n",
        crate::arch::core_index(),
        info
    ));
    crate::arch::halt_machine(0xff)
}
