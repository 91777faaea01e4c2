//! The EL2 trap controls a core runs its guest with: HCR_EL2, MDCR_EL2 and CPTR_EL2, one
//! place with a reason per bit.
//!
//! What a guest sees as a result (the emulation of what is trapped is `crate::sysreg`):
//! - **PMU**: every PMU register access from EL1/EL0 traps (MDCR_EL2.TPM, TPMCR) and is
//!   read-as-zero / write-ignored. ID_AA64DFR0_EL1 is *not* trapped (no HCR_EL2.TID3: trapping
//!   the whole ID group would mean emulating every feature register), so a guest still finds
//!   PMUv3, but PMCR_EL0.N reads 0 (no event counters), PMCEID0/1 list no events and the cycle
//!   counter reads 0 and never runs: a PMU that counts nothing. The hardware counters stay the
//!   hypervisor's (HPMN = all counters, with counting at EL2 prohibited by HPMD/HCCD where
//!   implemented, and nothing enables them), so no guest can measure EL2 work.
//! - **Debug**: breakpoint, watchpoint, OS lock, debug ROM, DCC and trace-filter registers trap
//!   (TDA, TDOSA, TDRA, TTRF) and read as zero / ignore writes: a guest's own debugger sees
//!   the registers ID_AA64DFR0_EL1 announces but they never fire. The statistical profiling
//!   and trace buffers (FEAT_SPE, FEAT_TRBE) are owned by EL2 (E2PB = E2TB = 0b00: EL1
//!   accesses trap) and trace registers trap (CPTR_EL2.TTA).
//! - **Set/way cache maintenance** (DC ISW/CSW/CISW) traps (HCR_EL2.TSW) and becomes clean +
//!   invalidate by address of a slice of the VM's own RAM (`sysreg::set_way`).
//! - **ACTLR_EL1** (TACR) and, with FEAT_RAS, the error record registers (TERR) read as zero
//!   and ignore writes; implementation-defined registers (TIDCP) are UNDEFINED.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ID_AA64DFR0_EL1, ID_AA64PFR0_EL1};
use tock_registers::interfaces::Readable;

/// HCR_EL2 bits, non-VHE (E2H = 0).
pub mod hcr {
    /// Stage-2 translation on: each VM sees only what its tables map.
    pub const VM: u64 = 1 << 0;
    /// Set/way invalidation (DC ISW) is upgraded to clean + invalidate: a guest must not be
    /// able to discard dirty lines that are not its own.
    pub const SWIO: u64 = 1 << 1;
    /// FIQs go to EL2 (the hypervisor owns the physical GIC) and virtual FIQs are enabled.
    pub const FMO: u64 = 1 << 3;
    /// IRQs go to EL2 and virtual IRQs (the vGIC's list registers) are enabled.
    pub const IMO: u64 = 1 << 4;
    /// SErrors go to EL2 (reported and answered per VM) and virtual SErrors are enabled.
    pub const AMO: u64 = 1 << 5;
    /// TLB and instruction-cache maintenance by a guest is broadcast to the Inner Shareable
    /// domain, so a vCPU migrating or sharing a VMID never keeps stale entries.
    pub const FB: u64 = 1 << 9;
    /// Barrier shareability upgrade: Inner Shareable (BSU = 0b01).
    pub const BSU_INNER: u64 = 1 << 10;
    /// SMC traps to EL2: PSCI and SMCCC calls are the hypervisor's to answer (`vpsci`,
    /// `smccc`); a guest never reaches the firmware directly.
    pub const TSC: u64 = 1 << 19;
    /// Implementation-defined system registers (CRn 11/15) trap and are UNDEFINED for guests:
    /// they can reach core-wide controls (power, caches, errata) behind every VM's back.
    pub const TIDCP: u64 = 1 << 20;
    /// ACTLR_EL1 traps (read as zero, writes ignored): its implementation-defined bits can
    /// change the core's behaviour below the hypervisor.
    pub const TACR: u64 = 1 << 21;
    /// Set/way cache maintenance (DC ISW/CSW/CISW) traps: by set/way an operation reaches
    /// lines of every VM and of the hypervisor; it is emulated by address on the VM's own RAM.
    pub const TSW: u64 = 1 << 22;
    /// EL1 is AArch64.
    pub const RW: u64 = 1 << 31;
    /// Error record registers (ERR*/ERX*, FEAT_RAS) trap (read as zero, writes ignored): the
    /// records describe errors of the whole core/system, not of one VM. RES0 without FEAT_RAS,
    /// so [`super::hcr_el2`] sets it only where implemented.
    pub const TERR: u64 = 1 << 36;

    /// The bits every core sets, whatever it implements.
    pub const BASE: u64 =
        VM | SWIO | FMO | IMO | AMO | FB | BSU_INNER | TSC | TIDCP | TACR | TSW | RW;
}

/// MDCR_EL2 bits.
pub mod mdcr {
    /// HPMN\[4:0\]: counters `[0, HPMN)` are the EL1 range, the rest (none here) EL2's.
    pub const HPMN_MASK: u64 = 0x1f;
    /// PMCR_EL0 accesses from EL1/EL0 trap.
    pub const TPMCR: u64 = 1 << 5;
    /// Every other PMU register access from EL1/EL0 traps.
    pub const TPM: u64 = 1 << 6;
    /// Breakpoint/watchpoint, DCC and other debug register accesses trap.
    pub const TDA: u64 = 1 << 9;
    /// OS lock / power-down debug register accesses (OSLAR, OSLSR, OSDLR, DBGPRCR) trap.
    pub const TDOSA: u64 = 1 << 10;
    /// Debug ROM address register (MDRAR_EL1) accesses trap.
    pub const TDRA: u64 = 1 << 11;
    /// Statistical profiling control registers (PMS*, FEAT_SPE) trap. E2PB\[13:12\] stays 0b00:
    /// the profiling buffer belongs to EL2 and EL1 accesses to it trap.
    pub const TPMS: u64 = 1 << 14;
    /// Event counting prohibited at EL2 in the EL1 range (FEAT_PMUv3p1).
    pub const HPMD: u64 = 1 << 17;
    /// Trace filter control (TRFCR_EL1, FEAT_TRF) accesses trap.
    pub const TTRF: u64 = 1 << 19;
    /// The cycle counter does not count at EL2 (FEAT_PMUv3p5).
    pub const HCCD: u64 = 1 << 23;
    // E2TB[25:24] = 0b00 (FEAT_TRBE): the trace buffer belongs to EL2, EL1 accesses trap.
}

/// CPTR_EL2 (E2H = 0).
pub mod cptr {
    /// RES1 bits \[13:12\], \[9:0\] with TZ (bit 8, SVE) and TSM (bit 12, SME) set: SVE and SME
    /// trap and are UNDEFINED for guests (the hypervisor does not switch their state). TFP
    /// (bit 10) clear: FP/SIMD belongs to the guest.
    pub const BASE: u64 = 0x33ff;
    /// Trace system register accesses trap (read as zero, writes ignored).
    pub const TTA: u64 = 1 << 20;
    /// Activity monitor (FEAT_AMUv1) accesses trap (read as zero, writes ignored): the
    /// counters run at every EL, EL2 included. RES0 without AMU, so set only where implemented.
    pub const TAM: u64 = 1 << 30;
}

fn field(reg: u64, shift: u32) -> u64 {
    (reg >> shift) & 0xf
}

/// HCR_EL2 for a core running a guest: [`hcr::BASE`], plus TERR where FEAT_RAS exists.
pub fn hcr_el2() -> u64 {
    let pfr0 = ID_AA64PFR0_EL1.get();
    let mut v = hcr::BASE;
    if field(pfr0, 28) != 0 {
        v |= hcr::TERR;
    }
    v
}

/// PMUVer of ID_AA64DFR0_EL1 when it names an architected PMUv3 (1..=0xE), else None.
fn pmu_version(dfr0: u64) -> Option<u64> {
    match field(dfr0, 8) {
        0 | 0xf => None,
        v => Some(v),
    }
}

/// MDCR_EL2 for a core running a guest, from what ID_AA64DFR0_EL1 says the core implements.
pub fn mdcr_el2() -> u64 {
    let dfr0 = ID_AA64DFR0_EL1.get();
    let mut v = mdcr::TPM | mdcr::TPMCR | mdcr::TDA | mdcr::TDOSA | mdcr::TDRA;
    if let Some(pmu) = pmu_version(dfr0) {
        // Every counter in the EL1 range (HPMN = N; HPMN = 0 would need FEAT_HPMN0), with EL2
        // counting prohibited there where the core can (PMUv3p1: HPMD; PMUv3p5: HCCD).
        v |= pmcr_n() & mdcr::HPMN_MASK;
        if pmu >= 4 {
            v |= mdcr::HPMD;
        }
        if pmu >= 6 {
            v |= mdcr::HCCD;
        }
    }
    if field(dfr0, 32) != 0 {
        v |= mdcr::TPMS;
    }
    if field(dfr0, 40) != 0 {
        v |= mdcr::TTRF;
    }
    v
}

/// CPTR_EL2 for a core running a guest.
pub fn cptr_el2() -> u64 {
    let pfr0 = ID_AA64PFR0_EL1.get();
    let mut v = cptr::BASE | cptr::TTA;
    if field(pfr0, 44) != 0 {
        v |= cptr::TAM;
    }
    v
}

/// PMCR_EL0.N, the number of event counters (read at EL2, where it is never trapped).
fn pmcr_n() -> u64 {
    let pmcr: u64;
    // SAFETY: reading PMCR_EL0 at EL2 has no side effect; only called when a PMUv3 exists.
    unsafe { core::arch::asm!("mrs {}, pmcr_el0", out(reg) pmcr, options(nomem, nostack)) };
    (pmcr >> 11) & 0x1f
}

/// Writes HCR_EL2, MDCR_EL2 and CPTR_EL2 for a guest on this core and puts the guest-visible
/// debug and PMU controls the traps hide in a quiet state (MDSCR_EL1 = 0: no debug events;
/// PMUSERENR_EL0 = 0: EL0 PMU accesses go to the guest kernel first). Called each time a vCPU
/// (re)starts on this core, before it enters the guest. `extra_hcr`: further HCR_EL2 traps of
/// this vCPU (TWI/TWE on a shared core).
pub fn write_guest_traps(extra_hcr: u64) {
    let dfr0 = ID_AA64DFR0_EL1.get();
    let mdcr = mdcr_el2();
    let hcr = hcr_el2() | extra_hcr;
    let cptr = cptr_el2();
    // SAFETY: EL2 owns these trap controls; the values are composed above from what the core
    // implements (RES0 bits of absent features are left 0). MDSCR_EL1 and PMUSERENR_EL0 are
    // EL1/EL0 state of the vCPU about to start, which the guest cannot see (trapped).
    unsafe {
        core::arch::asm!(
            "msr mdcr_el2, {m}",
            "msr hcr_el2, {h}",
            "msr cptr_el2, {c}",
            "msr mdscr_el1, xzr",
            m = in(reg) mdcr,
            h = in(reg) hcr,
            c = in(reg) cptr,
            options(nostack)
        );
        if pmu_version(dfr0).is_some() {
            core::arch::asm!("msr pmuserenr_el0, xzr", options(nostack));
        }
    }
    barrier::isb(barrier::SY);
}
