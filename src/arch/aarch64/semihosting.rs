//! Arm semihosting (QEMU `-semihosting`): the final exit code, and the defmt log stream.

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

/// Sends `bytes` to the semihosting console one SYS_WRITEC at a time: QEMU routes that console
/// to the `-semihosting-config chardev=` backend (a SYS_WRITE to an opened ":tt" would go to
/// QEMU's stdout instead, into the serial stream).
#[allow(dead_code)]
pub fn write_console(bytes: &[u8]) {
    for b in bytes {
        call(0x03, b as *const u8 as u64);
    }
}

fn call(op: u64, arg: u64) -> u64 {
    let r: u64;
    // SAFETY: a semihosting request: the host reads the parameter block at `arg` (alive for
    // the call) and returns a value in x0; only built with the `semihosting` feature for QEMU.
    unsafe {
        core::arch::asm!("hlt #0xf000", inout("x0") op => r, in("x1") arg, options(nostack));
    }
    r
}
