//! EL1 exception vectors, the synchronous-exception hook and fault probes.
//!
//! Every exception saves a full [`TrapFrame`] (general registers, ELR/SPSR/ESR/FAR, FP/SIMD)
//! on the current stack and calls `rt_exception`. What happens then:
//!
//! 1. On a CPU that is inside a *catching* section ([`probe_read`], [`probe_write`],
//!    [`crate::smccc::call_catching`]): a synchronous exception is recorded and execution
//!    resumes at `ELR + 4` (skipping the faulting instruction); an SError is recorded and
//!    execution resumes where it was interrupted.
//! 2. Synchronous exceptions from EL1 go to the hook set with [`set_sync_hook`], if any;
//!    if it returns `true` execution resumes with the (possibly modified) frame.
//! 3. Anything else prints ESR/FAR/ELR and ends the guest with exit code 3.

use core::arch::{asm, global_asm};
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aarch64_cpu::registers::{Writeable, DAIF};
use spin::Mutex;

use crate::boot::MAX_CPUS;

/// Registers saved on exception entry.
#[derive(Debug)]
#[repr(C)]
pub struct TrapFrame {
    /// `x0..=x30`.
    pub x: [u64; 31],
    /// Where execution resumes (`ELR_EL1`); a hook may change it.
    pub elr: u64,
    /// `SPSR_EL1` restored on return.
    pub spsr: u64,
    /// `ESR_EL1` of the exception (informational).
    pub esr: u64,
    /// `FAR_EL1` of the exception (informational).
    pub far: u64,
    /// `FPCR`.
    pub fpcr: u64,
    /// `FPSR`.
    pub fpsr: u64,
    /// `CNTVCT_EL0` read first thing at exception entry (for latency measurements).
    pub entry_ticks: u64,
    /// `q0..=q31`.
    pub q: [u128; 32],
}

const FRAME_SIZE: usize = size_of::<TrapFrame>();
const _: () = {
    assert!(FRAME_SIZE == 816);
    assert!(offset_of!(TrapFrame, elr) == 248);
    assert!(offset_of!(TrapFrame, esr) == 264);
    assert!(offset_of!(TrapFrame, fpcr) == 280);
    assert!(offset_of!(TrapFrame, entry_ticks) == 296);
    assert!(offset_of!(TrapFrame, q) == 304);
};

impl TrapFrame {
    /// Exception class (`ESR.EC`).
    pub fn ec(&self) -> u8 {
        esr_ec(self.esr)
    }
}

// Vector table (Arm ARM D1.10.2): 16 entries of 0x80 bytes; entry n passes n as `kind`.
// Each entry reads CNTVCT_EL0 right away (exception entry is context-synchronizing, so the
// read cannot happen earlier) and stores it in the frame's `entry_ticks`.
global_asm!(
    r#"
    .macro RT_VECTOR kind
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mrs     x1, cntvct_el0
    str     x1, [sp, #{entry_ticks}]
    mov     x0, #\kind
    b       __rt_exception_common
    .endm

    .section .text.rt_vectors, "ax"
    .balign 2048
    .global __rt_vectors
__rt_vectors:
    RT_VECTOR 0
    RT_VECTOR 1
    RT_VECTOR 2
    RT_VECTOR 3
    RT_VECTOR 4
    RT_VECTOR 5
    RT_VECTOR 6
    RT_VECTOR 7
    RT_VECTOR 8
    RT_VECTOR 9
    RT_VECTOR 10
    RT_VECTOR 11
    RT_VECTOR 12
    RT_VECTOR 13
    RT_VECTOR 14
    RT_VECTOR 15

__rt_exception_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #248]
    mrs     x2, esr_el1
    mrs     x3, far_el1
    stp     x2, x3, [sp, #264]
    mrs     x2, fpcr
    mrs     x3, fpsr
    stp     x2, x3, [sp, #280]
    add     x2, sp, #304
    stp     q0, q1, [x2, #0]
    stp     q2, q3, [x2, #32]
    stp     q4, q5, [x2, #64]
    stp     q6, q7, [x2, #96]
    stp     q8, q9, [x2, #128]
    stp     q10, q11, [x2, #160]
    stp     q12, q13, [x2, #192]
    stp     q14, q15, [x2, #224]
    stp     q16, q17, [x2, #256]
    stp     q18, q19, [x2, #288]
    stp     q20, q21, [x2, #320]
    stp     q22, q23, [x2, #352]
    stp     q24, q25, [x2, #384]
    stp     q26, q27, [x2, #416]
    stp     q28, q29, [x2, #448]
    stp     q30, q31, [x2, #480]
    mov     x1, sp
    bl      {handler}
    add     x2, sp, #304
    ldp     q0, q1, [x2, #0]
    ldp     q2, q3, [x2, #32]
    ldp     q4, q5, [x2, #64]
    ldp     q6, q7, [x2, #96]
    ldp     q8, q9, [x2, #128]
    ldp     q10, q11, [x2, #160]
    ldp     q12, q13, [x2, #192]
    ldp     q14, q15, [x2, #224]
    ldp     q16, q17, [x2, #256]
    ldp     q18, q19, [x2, #288]
    ldp     q20, q21, [x2, #320]
    ldp     q22, q23, [x2, #352]
    ldp     q24, q25, [x2, #384]
    ldp     q26, q27, [x2, #416]
    ldp     q28, q29, [x2, #448]
    ldp     q30, q31, [x2, #480]
    ldp     x2, x3, [sp, #280]
    msr     fpcr, x2
    msr     fpsr, x3
    ldp     x2, x3, [sp, #248]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    add     sp, sp, #{frame}
    eret
"#,
    frame = const FRAME_SIZE,
    entry_ticks = const offset_of!(TrapFrame, entry_ticks),
    handler = sym rt_exception,
);

/// Vector kinds (entry index in the table).
const KIND_NAMES: [&str; 16] = [
    "sync (EL1, SP0)",
    "irq (EL1, SP0)",
    "fiq (EL1, SP0)",
    "serror (EL1, SP0)",
    "sync",
    "irq",
    "fiq",
    "serror",
    "sync (EL0, AArch64)",
    "irq (EL0, AArch64)",
    "fiq (EL0, AArch64)",
    "serror (EL0, AArch64)",
    "sync (EL0, AArch32)",
    "irq (EL0, AArch32)",
    "fiq (EL0, AArch32)",
    "serror (EL0, AArch32)",
];
const KIND_SYNC: u64 = 4;
const KIND_IRQ_SP0: u64 = 1;
const KIND_IRQ: u64 = 5;
const KIND_SERROR: u64 = 7;

/// A hook for synchronous exceptions taken at EL1: returns `true` if it handled the
/// exception (execution resumes from the frame, e.g. with `frame.elr += 4`).
pub type SyncHook = fn(&mut TrapFrame) -> bool;

static SYNC_HOOK: Mutex<Option<SyncHook>> = Mutex::new(None);

/// Installs (or with `None` removes) the synchronous-exception hook, shared by all CPUs.
pub fn set_sync_hook(hook: Option<SyncHook>) {
    *SYNC_HOOK.lock() = hook;
}

/// An exception caught while probing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `ESR_EL1`.
    pub esr: u64,
    /// `FAR_EL1` (meaningful for aborts; 0 for an SError).
    pub far: u64,
    /// Whether this was an SError (asynchronous) rather than a synchronous exception.
    pub serror: bool,
}

impl Fault {
    /// Exception class (`ESR.EC`): 0x25 data abort, 0x21 instruction abort, 0x00 unknown, ...
    pub fn ec(&self) -> u8 {
        esr_ec(self.esr)
    }

    /// Fault status code (`ESR.ISS[5:0]`, DFSC/IFSC for aborts): 0x10 synchronous external
    /// abort, 0x04..=0x07 translation fault at level 0..=3, 0x21 alignment fault.
    pub fn fsc(&self) -> u8 {
        (self.esr & 0x3f) as u8
    }

    /// Whether this is a data abort taken from EL1 (EC 0x25).
    pub fn is_data_abort(&self) -> bool {
        !self.serror && self.ec() == 0x25
    }
}

fn esr_ec(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// Per-CPU catching state.
struct Catch {
    armed: AtomicBool,
    caught: AtomicBool,
    esr: AtomicU64,
    far: AtomicU64,
    serror: AtomicBool,
}

impl Catch {
    const fn new() -> Self {
        Self {
            armed: AtomicBool::new(false),
            caught: AtomicBool::new(false),
            esr: AtomicU64::new(0),
            far: AtomicU64::new(0),
            serror: AtomicBool::new(false),
        }
    }
}

static CATCH: [Catch; MAX_CPUS] = [const { Catch::new() }; MAX_CPUS];

fn catch_slot() -> &'static Catch {
    &CATCH[crate::cpu::index() % MAX_CPUS]
}

/// Runs `f` with exceptions caught. `f` must consist of one asm block whose faulting
/// instruction may be skipped (resumption at ELR + 4) without breaking the program: crate
/// internal, used only with such blocks.
pub(crate) fn catching<R>(f: impl FnOnce() -> R) -> Result<R, Fault> {
    let slot = catch_slot();
    slot.caught.store(false, Ordering::SeqCst);
    slot.armed.store(true, Ordering::SeqCst);
    let r = f();
    // Take any SError the access caused while still armed.
    // SAFETY: barriers only order memory accesses; they touch no memory or registers.
    unsafe { asm!("dsb sy", "isb", options(nostack, preserves_flags)) };
    slot.armed.store(false, Ordering::SeqCst);
    if slot.caught.load(Ordering::SeqCst) {
        Err(Fault {
            esr: slot.esr.load(Ordering::SeqCst),
            far: slot.far.load(Ordering::SeqCst),
            serror: slot.serror.load(Ordering::SeqCst),
        })
    } else {
        Ok(r)
    }
}

/// Runs `f` with synchronous exceptions and SErrors caught, for probes of instructions the
/// hypervisor or the CPU may refuse (semihosting `HLT`, system registers): a synchronous
/// exception resumes at `ELR + 4` and is returned as `Err`.
///
/// # Safety
///
/// `f` must consist of one asm block whose faulting instruction may be skipped (execution
/// resumes after it with its outputs unwritten) without breaking the program.
pub unsafe fn catching_asm<R>(f: impl FnOnce() -> R) -> Result<R, Fault> {
    catching(f)
}

/// Reads the 32-bit word at physical (guest-physical) address `addr` (4-byte aligned for a
/// clean result: a misaligned access to Device memory faults), returning the fault instead
/// of dying if the access is refused.
///
/// This is safe: the access is an asm load that creates no reference, so it cannot break
/// Rust's aliasing rules; a device register with read side effects is the caller's concern.
pub fn probe_read(addr: usize) -> Result<u32, Fault> {
    catching(|| {
        let mut value: u32 = 0;
        // SAFETY: a single load from an arbitrary address: it either completes or faults, and
        // a fault is caught (execution resumes after the load, `value` keeping 0). It writes
        // no memory and only the declared output register.
        unsafe {
            asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = inout(reg) value, options(nostack, readonly))
        };
        value
    })
}

/// Writes the 32-bit `value` at `addr`, returning the fault instead of dying if refused.
///
/// # Safety
///
/// If the write is *not* refused it modifies memory or a device: `addr` must not be memory
/// this program relies on (its image, stacks, live data) nor a device whose change breaks it.
pub unsafe fn probe_write(addr: usize, value: u32) -> Result<(), Fault> {
    catching(|| {
        // SAFETY: a single store; the caller guarantees that, if it happens, nothing this
        // program relies on changes. A fault is caught (execution resumes after the store).
        unsafe { asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) value, options(nostack)) };
    })
}

/// Unmasks SError at EL1 (so that an injected asynchronous abort is reported, not held).
/// Debug, IRQ and FIQ stay masked (see [`crate::irq::enable_local`]).
pub(crate) fn unmask_serror() {
    DAIF.write(DAIF::D::Masked + DAIF::A::Unmasked + DAIF::I::Masked + DAIF::F::Masked);
}

/// Called by the vectors with the entry index and the saved registers.
extern "C" fn rt_exception(kind: u64, frame: &mut TrapFrame) {
    let slot = catch_slot();
    if (kind == KIND_SYNC || kind == KIND_SERROR) && slot.armed.load(Ordering::SeqCst) {
        let serror = kind == KIND_SERROR;
        slot.esr.store(frame.esr, Ordering::SeqCst);
        slot.far
            .store(if serror { 0 } else { frame.far }, Ordering::SeqCst);
        slot.serror.store(serror, Ordering::SeqCst);
        slot.caught.store(true, Ordering::SeqCst);
        if !serror {
            frame.elr += 4;
        }
        return;
    }
    if (kind == KIND_IRQ || kind == KIND_IRQ_SP0) && crate::irq::dispatch(frame.entry_ticks) {
        return;
    }
    if kind == KIND_SYNC {
        // `try_lock`: an exception taken while this CPU holds the lock must not deadlock.
        let hook = SYNC_HOOK.try_lock().and_then(|h| *h);
        if hook.is_some_and(|h| h(frame)) {
            return;
        }
    }
    unexpected(kind, frame)
}

fn unexpected(kind: u64, frame: &TrapFrame) -> ! {
    let name = KIND_NAMES.get(kind as usize).copied().unwrap_or("?");
    crate::console::emergency_println(format_args!(
        "rt: unexpected exception {} on cpu {}: ESR {:#x} (EC {:#x}) FAR {:#x} ELR {:#x} SPSR {:#x}",
        name,
        crate::cpu::index(),
        frame.esr,
        frame.ec(),
        frame.far,
        frame.elr,
        frame.spsr
    ));
    if crate::power::exiting() {
        crate::cpu::halt();
    }
    crate::exit(3)
}
