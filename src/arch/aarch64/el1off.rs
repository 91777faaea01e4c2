//! Powering off when the loader started Tessera at EL1 (no EL2: `virtualization=on` missing on
//! QEMU, or firmware that drops to EL1): nothing of the hypervisor can run, so it reports the
//! boot error and asks the firmware to power the machine off through PSCI SYSTEM_OFF, by HVC
//! (QEMU `virt` without EL2 and EL3 serves PSCI on HVC) and then SMC (firmware at EL3). On a
//! machine where neither conduit exists the instruction is UNDEFINED: a minimal EL1 vector
//! table steps over it, and the core waits for good.

use core::arch::global_asm;

// Every entry steps over the instruction that raised the exception (ELR_EL1 + 4) and returns.
global_asm!(
    r#"
.macro TESSERA_EL1_SKIP
    .balign 0x80
    mrs     x9, elr_el1
    add     x9, x9, #4
    msr     elr_el1, x9
    eret
.endm
    .section .text.el1off, "ax"
    .balign 0x800
    .global tessera_el1_skip_vectors
tessera_el1_skip_vectors:
    .rept 16
    TESSERA_EL1_SKIP
    .endr
"#
);

unsafe extern "C" {
    static tessera_el1_skip_vectors: u8;
}

/// PSCI SYSTEM_OFF from EL1 by HVC, then SMC; waits for good if neither powers off. `el` is
/// the current exception level: only at EL1 are the conduits tried.
pub fn power_off_from_el1(el: u64) -> ! {
    if el == 1 {
        let vectors = &raw const tessera_el1_skip_vectors as u64;
        // SAFETY: at EL1 with every exception masked; the vector table (2 KiB aligned, in the
        // image) only steps over a faulting HVC/SMC. PSCI SYSTEM_OFF either powers off or
        // returns (an error code in x0, or the UNDEFINED exception skipped); SMCCC lets the
        // callee clobber x0-x17, which are declared.
        unsafe {
            core::arch::asm!("msr vbar_el1, {}", "isb", in(reg) vectors, options(nostack));
            for insn in 0..2 {
                let mut x0 = u64::from(super::psci::func::SYSTEM_OFF);
                if insn == 0 {
                    core::arch::asm!("hvc #0",
                        inout("x0") x0, out("x1") _, out("x2") _, out("x3") _, out("x4") _,
                        out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                        out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                        out("x15") _, out("x16") _, out("x17") _, options(nostack));
                } else {
                    core::arch::asm!("smc #0",
                        inout("x0") x0, out("x1") _, out("x2") _, out("x3") _, out("x4") _,
                        out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                        out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                        out("x15") _, out("x16") _, out("x17") _, options(nostack));
                }
                let _ = x0;
            }
        }
    }
    super::halt_core()
}
