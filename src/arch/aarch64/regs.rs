//! System registers that `aarch64-cpu` does not model, and the EL1 state Tessera writes when it
//! injects an exception or resets a vCPU.

use aarch64_cpu::registers::{
    ELR_EL1, ESR_EL1, FAR_EL1, HPFAR_EL2, MIDR_EL1, SPSR_EL1, VBAR_EL1, VMPIDR_EL2,
};
use tock_registers::interfaces::{Readable, Writeable};

macro_rules! sysreg_rw {
    ($(#[$m:meta])* $read:ident, $write:ident, $name:literal) => {
        $(#[$m])*
        #[allow(dead_code)]
        pub fn $read() -> u64 {
            let v: u64;
            // SAFETY: reading this system register has no side effect at EL2.
            unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
            v
        }
        $(#[$m])*
        #[allow(dead_code)]
        pub fn $write(v: u64) {
            // SAFETY: callers write values valid for this register; EL2 owns it.
            unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nostack)) };
        }
    };
}

sysreg_rw!(
    /// VPIDR_EL2: the MIDR a guest reads.
    vpidr_el2, set_vpidr_el2, "vpidr_el2"
);
sysreg_rw!(
    /// CNTHP_CVAL_EL2: compare value of the EL2 physical timer.
    cnthp_cval_el2, set_cnthp_cval_el2, "cnthp_cval_el2"
);
sysreg_rw!(
    /// ICC_PMR_EL1 (GICv3 priority mask), S3_0_C4_C6_0.
    icc_pmr_el1, set_icc_pmr_el1, "s3_0_c4_c6_0"
);
sysreg_rw!(
    /// ICC_IGRPEN1_EL1 (Group 1 enable), S3_0_C12_C12_7.
    icc_igrpen1_el1, set_icc_igrpen1_el1, "s3_0_c12_c12_7"
);
sysreg_rw!(
    /// ICC_IAR1_EL1 (acknowledge a Group 1 interrupt), S3_0_C12_C12_0.
    icc_iar1_el1, set_icc_iar1_el1_unused, "s3_0_c12_c12_0"
);
sysreg_rw!(
    /// ICC_EOIR1_EL1 (end of a Group 1 interrupt), S3_0_C12_C12_1.
    icc_eoir1_el1_unused, set_icc_eoir1_el1, "s3_0_c12_c12_1"
);
sysreg_rw!(
    /// ICC_SGI1R_EL1 (generate a Group 1 SGI), S3_0_C12_C11_5.
    icc_sgi1r_el1_unused, set_icc_sgi1r_el1, "s3_0_c12_c11_5"
);
sysreg_rw!(
    /// ICC_DIR_EL1 (deactivate an interrupt), S3_0_C12_C11_1.
    icc_dir_el1_unused, set_icc_dir_el1, "s3_0_c12_c11_1"
);
sysreg_rw!(
    /// ICH_ELRSR_EL2 (empty list registers), S3_4_C12_C11_5.
    ich_elrsr_el2, set_ich_elrsr_el2_unused, "s3_4_c12_c11_5"
);
sysreg_rw!(
    /// ICC_BPR1_EL1, S3_0_C12_C12_3.
    icc_bpr1_el1, set_icc_bpr1_el1, "s3_0_c12_c12_3"
);
sysreg_rw!(
    /// ICC_CTLR_EL1, S3_0_C12_C12_4.
    icc_ctlr_el1_raw, set_icc_ctlr_el1_raw, "s3_0_c12_c12_4"
);

/// The guest-physical address of the last stage-2 abort: HPFAR_EL2.FIPA plus FAR's page offset.
pub fn fault_ipa(far: u64) -> u64 {
    ((HPFAR_EL2.get() & 0x0000_0fff_ffff_fff0) << 8) | (far & 0xfff)
}

/// Sets the identity registers a vCPU sees: VMPIDR_EL2 and VPIDR_EL2 (= the real MIDR).
pub fn set_vcpu_identity(mpidr: u64) {
    VMPIDR_EL2.set(mpidr);
    set_vpidr_el2(MIDR_EL1.get());
}

/// SCTLR_EL1 as a core leaves reset: MMU and caches off, RES1 bits set.
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// Writes the EL1 exception registers for an exception injected into the guest and returns the
/// guest's vector address for it. `elr`/`spsr` are the interrupted context (from the trap
/// frame), `esr` the syndrome, `far` the faulting address (aborts).
pub fn inject_el1_sync(elr: u64, spsr: u64, esr: u64, far: u64) -> u64 {
    ELR_EL1.set(elr);
    SPSR_EL1.set(spsr);
    ESR_EL1.set(esr);
    FAR_EL1.set(far);
    let offset = match spsr & 0x1f {
        0b00100 => 0x000,            // EL1t
        0b00101 => 0x200,            // EL1h
        m if m & 0x10 == 0 => 0x400, // EL0, AArch64
        _ => 0x600,                  // AArch32 (not supported; HCR_EL2.RW = 1)
    };
    VBAR_EL1.get() + offset
}

/// CLIDR_EL1: which cache levels exist and their types.
pub fn clidr_el1() -> u64 {
    let v: u64;
    // SAFETY: an identification register; reading it has no side effect.
    unsafe { core::arch::asm!("mrs {}, clidr_el1", out(reg) v, options(nomem, nostack)) };
    v
}

/// CCSIDR_EL1 of the cache that `csselr` (a CSSELR_EL1 value) selects. CSSELR_EL1 is restored,
/// so a guest's selection survives (it is EL1 state this core may hold for a vCPU).
pub fn read_ccsidr(csselr: u64) -> u64 {
    use aarch64_cpu::asm::barrier;
    use aarch64_cpu::registers::{CCSIDR_EL1, CSSELR_EL1};
    let saved = CSSELR_EL1.get();
    CSSELR_EL1.set(csselr);
    barrier::isb(barrier::SY);
    let ccsidr = CCSIDR_EL1.get();
    CSSELR_EL1.set(saved);
    barrier::isb(barrier::SY);
    ccsidr
}
