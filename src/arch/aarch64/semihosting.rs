//! Arm semihosting (QEMU `-semihosting`), feature `semihosting` only: the final exit code.
//!
//! Off by default. QEMU serves `HLT #0xF000` from EL1 as well, without any trap to EL2, so on a
//! machine where semihosting is enabled every guest can end QEMU with any status, read and
//! write host files and run host commands. `cargo xtask run --semihosting` enables it only when
//! asked for, with a warning; every other run takes its status from the hypervisor's final
//! console line and ends with PSCI SYSTEM_OFF.

/// SYS_EXIT_EXTENDED with ADP_Stopped_ApplicationExit and `code`. Does not return under QEMU.
#[allow(dead_code)]
pub fn exit(code: u32) {
    let block: [u64; 2] = [0x2_0026, code as u64];
    // SAFETY: HLT #0xF000 is the semihosting trap; QEMU reads the two-word parameter block we
    // pass by address and terminates. Without a semihosting host this would be an undefined
    // instruction, which is why only the `semihosting` feature calls it.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") 0x20u64, in("x1") block.as_ptr(), options(nostack));
    }
}
