//! Arm semihosting, used only to hand the final exit code to QEMU (`-semihosting`).

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
