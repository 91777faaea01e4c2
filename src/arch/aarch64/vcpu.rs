//! The per-vCPU hardware context beyond the general registers: EL1 system registers, FP/SIMD,
//! the virtual timer, and the EL2 controls a vCPU runs under (HCR_EL2, VTTBR_EL2, VMPIDR_EL2).
//!
//! On an `exclusive` core this state simply stays in the core's registers (nothing is saved
//! or restored on an exit: the fast paths never touch it). On a shared core the run loop saves
//! the outgoing vCPU's state here and loads the incoming one's.

use core::arch::asm;

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    CNTHCTL_EL2, CNTHP_CTL_EL2, CNTPCT_EL0, CNTVOFF_EL2, VTCR_EL2, VTTBR_EL2,
};
use tock_registers::interfaces::{Readable, Writeable};

use super::regs;

/// HCR_EL2 traps added for a guest on a shared core: WFI and WFE (TWI, TWE), so an idle vCPU
/// gives its core back to the scheduler. The rest of HCR_EL2 (and MDCR_EL2, CPTR_EL2) is
/// `el2ctl`'s, the same for every vCPU.
pub const HCR_SHARED_EXTRA: u64 = (1 << 13) | (1 << 14);
/// CNTHCTL_EL2: EL1 may read the physical counter (EL1PCTEN) but not use the physical timer
/// (EL1PCEN = 0), which stays the hypervisor's; guests use the virtual timer.
const CNTHCTL_GUEST: u64 = 1 << 0;

/// The EL2 controls of one vCPU, programmed when it (re)enters a core.
#[derive(Clone, Copy, Debug)]
pub struct GuestControl {
    /// HCR_EL2 bits beyond `el2ctl::hcr_el2()` ([`HCR_SHARED_EXTRA`] or 0).
    pub extra_hcr: u64,
    pub vtcr: u64,
    pub vttbr: u64,
    pub vmpidr: u64,
}

impl GuestControl {
    /// Programs this core's EL2 controls for the vCPU.
    pub fn load(&self) {
        VTCR_EL2.set(self.vtcr);
        VTTBR_EL2.set(self.vttbr);
        regs::set_vcpu_identity(self.vmpidr);
        CNTVOFF_EL2.set(0);
        CNTHCTL_EL2.set(CNTHCTL_GUEST);
        super::el2ctl::write_guest_traps(self.extra_hcr);
    }
}

macro_rules! el1_state {
    ($($(#[$m:meta])* $field:ident = $reg:literal, reset $reset:expr;)*) => {
        /// The EL1/EL0 system registers a guest owns (Arm ARM D1.1: the "EL1 context" a
        /// hypervisor switches), including the virtual timer.
        #[derive(Clone, Copy, Debug)]
        pub struct El1State {
            $($(#[$m])* pub $field: u64,)*
        }

        impl El1State {
            /// The architectural reset state (MMU and caches off, timer off, FP/SIMD trapped at
            /// EL1 as after a core's reset).
            pub const RESET: El1State = El1State { $($field: $reset,)* };

            /// Reads this core's registers into `self`.
            #[inline(never)]
            pub fn save(&mut self) {
                $(
                    // SAFETY: reading an EL1/EL0 system register at EL2 has no side effect.
                    unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) self.$field, options(nomem, nostack, preserves_flags)) };
                )*
            }

            /// Writes `self` into this core's registers.
            #[inline(never)]
            pub fn restore(&self) {
                $(
                    // SAFETY: these registers belong to the guest's EL1 context; EL2 does not
                    // depend on them (its own translation and vectors are EL2 registers).
                    unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) self.$field, options(nomem, nostack, preserves_flags)) };
                )*
            }
        }
    };
}

el1_state! {
    sctlr = "sctlr_el1", reset regs::SCTLR_EL1_RESET;
    cpacr = "cpacr_el1", reset 0;
    ttbr0 = "ttbr0_el1", reset 0;
    ttbr1 = "ttbr1_el1", reset 0;
    tcr = "tcr_el1", reset 0;
    esr = "esr_el1", reset 0;
    afsr0 = "afsr0_el1", reset 0;
    afsr1 = "afsr1_el1", reset 0;
    far = "far_el1", reset 0;
    mair = "mair_el1", reset 0;
    amair = "amair_el1", reset 0;
    vbar = "vbar_el1", reset 0;
    contextidr = "contextidr_el1", reset 0;
    tpidr_el0 = "tpidr_el0", reset 0;
    tpidrro_el0 = "tpidrro_el0", reset 0;
    tpidr_el1 = "tpidr_el1", reset 0;
    cntkctl = "cntkctl_el1", reset 0;
    par = "par_el1", reset 0;
    csselr = "csselr_el1", reset 0;
    sp_el0 = "sp_el0", reset 0;
    sp_el1 = "sp_el1", reset 0;
    elr_el1 = "elr_el1", reset 0;
    spsr_el1 = "spsr_el1", reset 0;
    /// Virtual timer control (ENABLE, IMASK; ISTATUS is read-only).
    cntv_ctl = "cntv_ctl_el0", reset 0;
    /// Virtual timer compare value.
    cntv_cval = "cntv_cval_el0", reset 0;
}

impl El1State {
    /// Whether the saved virtual timer is enabled and unmasked, and when it fires (in counter
    /// ticks: CNTVOFF_EL2 is 0, so virtual and physical counts agree).
    pub fn timer_deadline(&self) -> Option<u64> {
        (self.cntv_ctl & 0b11 == 0b01).then_some(self.cntv_cval)
    }
}

/// Stops this core's virtual timer (the outgoing vCPU's copy is in its saved `El1State`).
pub fn vtimer_off() {
    // SAFETY: CNTV_CTL_EL0 is the guest's timer; its state was saved by the caller.
    unsafe {
        asm!(
            "msr cntv_ctl_el0, xzr",
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// Whether this core's virtual timer condition holds and is signalled: CNTV_CTL_EL0 has
/// ENABLE and ISTATUS set and IMASK clear (the level of PPI 27).
pub fn vtimer_asserted() -> bool {
    let ctl: u64;
    // SAFETY: reading CNTV_CTL_EL0 at EL2 has no side effect.
    unsafe { asm!("mrs {}, cntv_ctl_el0", out(reg) ctl, options(nomem, nostack, preserves_flags)) };
    ctl & 0b111 == 0b101
}

/// Turns this core's virtual timer off (CNTV_CTL_EL0 = 0): the timer of a vCPU that has
/// stopped, still armed in hardware, must not keep raising PPI 27 with nobody to take it.
pub fn vtimer_disable() {
    // SAFETY: CNTV_CTL_EL0 is the guest's virtual timer control; no vCPU runs on this core
    // now and the next vCPU start loads its own value.
    unsafe {
        asm!(
            "msr cntv_ctl_el0, xzr",
            "isb",
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// The FP/SIMD registers of a vCPU (V0–V31, FPCR, FPSR).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub struct FpState {
    v: [u128; 32],
    fpcr: u64,
    fpsr: u64,
}

impl FpState {
    /// All zero (the state a core comes out of reset with is UNKNOWN; zero leaks nothing).
    pub const RESET: FpState = FpState {
        v: [0; 32],
        fpcr: 0,
        fpsr: 0,
    };

    /// Reads this core's FP/SIMD registers into `self`.
    #[inline(never)]
    pub fn save(&mut self) {
        // SAFETY: stores 32 × 16 bytes + 16 bytes into `self` (repr(C), 16-byte aligned, 528
        // bytes); CPTR_EL2.TFP is 0 so FP/SIMD instructions do not trap at EL2. The image is
        // built without FP (softfloat), so the compiler keeps nothing of its own in them.
        unsafe {
            asm!(
                ".arch_extension fp",
                ".arch_extension simd",
                "stp q0, q1, [{p}, #0]",
                "stp q2, q3, [{p}, #32]",
                "stp q4, q5, [{p}, #64]",
                "stp q6, q7, [{p}, #96]",
                "stp q8, q9, [{p}, #128]",
                "stp q10, q11, [{p}, #160]",
                "stp q12, q13, [{p}, #192]",
                "stp q14, q15, [{p}, #224]",
                "stp q16, q17, [{p}, #256]",
                "stp q18, q19, [{p}, #288]",
                "stp q20, q21, [{p}, #320]",
                "stp q22, q23, [{p}, #352]",
                "stp q24, q25, [{p}, #384]",
                "stp q26, q27, [{p}, #416]",
                "stp q28, q29, [{p}, #448]",
                "stp q30, q31, [{p}, #480]",
                "mrs {t}, fpcr",
                "str {t}, [{p}, #512]",
                "mrs {t}, fpsr",
                "str {t}, [{p}, #520]",
                p = in(reg) self as *mut FpState,
                t = out(reg) _,
                options(nostack, preserves_flags)
            );
        }
    }

    /// Writes `self` into this core's FP/SIMD registers.
    #[inline(never)]
    pub fn restore(&self) {
        // SAFETY: loads what `save` stored (same layout); EL2 code never uses FP/SIMD
        // registers (softfloat target), so overwriting them breaks nothing of ours.
        unsafe {
            asm!(
                ".arch_extension fp",
                ".arch_extension simd",
                "ldp q0, q1, [{p}, #0]",
                "ldp q2, q3, [{p}, #32]",
                "ldp q4, q5, [{p}, #64]",
                "ldp q6, q7, [{p}, #96]",
                "ldp q8, q9, [{p}, #128]",
                "ldp q10, q11, [{p}, #160]",
                "ldp q12, q13, [{p}, #192]",
                "ldp q14, q15, [{p}, #224]",
                "ldp q16, q17, [{p}, #256]",
                "ldp q18, q19, [{p}, #288]",
                "ldp q20, q21, [{p}, #320]",
                "ldp q22, q23, [{p}, #352]",
                "ldp q24, q25, [{p}, #384]",
                "ldp q26, q27, [{p}, #416]",
                "ldp q28, q29, [{p}, #448]",
                "ldp q30, q31, [{p}, #480]",
                "ldr {t}, [{p}, #512]",
                "msr fpcr, {t}",
                "ldr {t}, [{p}, #520]",
                "msr fpsr, {t}",
                p = in(reg) self as *const FpState,
                t = out(reg) _,
                options(nostack, preserves_flags, readonly)
            );
        }
    }
}

/// The physical counter (CNTPCT_EL0), in ticks of [`counter_frequency`].
pub fn now() -> u64 {
    barrier::isb(barrier::SY);
    CNTPCT_EL0.get()
}

/// The generic timer's frequency in Hz (CNTFRQ_EL0, set by firmware).
pub fn counter_frequency() -> u64 {
    aarch64_cpu::registers::CNTFRQ_EL0.get()
}

/// The EL2 physical timer (CNTHP, PPI 26): the scheduler's one-shot timer. Arms it to fire at
/// absolute counter value `at`, or disarms it.
pub fn hyp_timer_set(at: Option<u64>) {
    match at {
        Some(t) => {
            regs::set_cnthp_cval_el2(t);
            CNTHP_CTL_EL2.set(1);
        }
        None => CNTHP_CTL_EL2.set(0),
    }
}
