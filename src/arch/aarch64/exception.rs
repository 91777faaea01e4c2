//! EL2 exception vectors, the trap frame, and the two ways into a guest or a fresh stack.
//!
//! Every exception saves x0–x30, ELR_EL2 and SPSR_EL2 into a [`TrapFrame`] on the core's EL2
//! stack and calls a Rust handler with it; when the handler returns, the frame (possibly
//! edited) is restored and `eret` resumes the guest. A handler that decides the vCPU is gone
//! does not return: it calls [`run_on_fresh_stack`].

use core::arch::global_asm;

use aarch64_cpu::registers::VBAR_EL2;
use tock_registers::interfaces::Writeable;

/// Guest registers as saved on an exception from EL1/EL0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    /// x0 … x30.
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

/// Size of [`TrapFrame`] as the assembly sees it.
const FRAME_SIZE: usize = 34 * 8;
const _: () = assert!(core::mem::size_of::<TrapFrame>() == FRAME_SIZE);

impl TrapFrame {
    /// All registers zero.
    pub const ZERO: TrapFrame = TrapFrame {
        x: [0; 31],
        elr: 0,
        spsr: 0,
        _pad: 0,
    };

    /// A frame that starts a vCPU at `entry` in EL1h with all of DAIF masked and `x0 = arg`.
    pub fn new_el1(entry: u64, arg: u64) -> Self {
        let mut f = TrapFrame::default();
        f.x[0] = arg;
        f.elr = entry;
        f.spsr = SPSR_EL1H_MASKED;
        f
    }

    /// Register `n` as the guest sees it (31 = XZR reads as zero).
    pub fn reg(&self, n: usize) -> u64 {
        if n < 31 {
            self.x[n]
        } else {
            0
        }
    }

    /// Sets register `n` (writes to 31, XZR, are discarded).
    pub fn set_reg(&mut self, n: usize, v: u64) {
        if n < 31 {
            self.x[n] = v;
        }
    }
}

/// SPSR for EL1h with D, A, I and F masked (the state of a core coming out of reset).
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;

/// Which vector an exception came through.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorKind {
    CurrentSync = 0,
    CurrentIrq = 1,
    CurrentFiq = 2,
    CurrentSError = 3,
    LowerSync = 4,
    LowerIrq = 5,
    LowerFiq = 6,
    LowerSError = 7,
    Unhandled = 8,
}

// Each 128-byte vector slot makes room for the frame, saves x0/x1, puts its kind in x1 and
// branches to the common save path. Current EL with SP_EL0 and AArch32 lower ELs never
// happen (EL2 always runs on SP_EL2; HCR_EL2.RW=1), so they report as Unhandled.
global_asm!(
    r#"
.macro TESSERA_VECTOR kind
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x1, #\kind
    b       tessera_trap_common
.endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global tessera_vectors
tessera_vectors:
    TESSERA_VECTOR 8
    TESSERA_VECTOR 8
    TESSERA_VECTOR 8
    TESSERA_VECTOR 8
    // Current EL, synchronous: always fatal (a hypervisor fault). If SP lies in the guard page
    // at the bottom of this core's stack (stacks are 64 KiB aligned, the guard is their lowest
    // 4 KiB), pushing the frame would fault again for ever: report from the emergency stack.
    // SP_EL0 and TPIDR_EL0 (guest EL0 state, no longer needed on this path) hold x0 and the
    // interrupted SP for the report.
    .balign 0x80
    msr     sp_el0, x0
    mov     x0, sp
    msr     tpidr_el0, x0
    and     x0, x0, #{stack_mask}
    cbz     x0, 1f
    sub     x0, x0, #0x1000
    cmp     x0, #{frame}
    b.ge    1f
    adrp    x0, {emergency}
    add     x0, x0, :lo12:{emergency}
    add     x0, x0, #{emergency_size}
    mov     sp, x0
1:  mrs     x0, sp_el0
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x1, #0
    b       tessera_trap_common
    TESSERA_VECTOR 1
    TESSERA_VECTOR 2
    TESSERA_VECTOR 3
    TESSERA_VECTOR 4
    TESSERA_VECTOR 5
    TESSERA_VECTOR 6
    TESSERA_VECTOR 7
    TESSERA_VECTOR 8
    TESSERA_VECTOR 8
    TESSERA_VECTOR 8
    TESSERA_VECTOR 8

tessera_trap_common:
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
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x30, x2, [sp, #240]
    str     x3, [sp, #256]
    mov     x0, sp
    bl      {handler}

    .global tessera_restore_and_eret
tessera_restore_and_eret:
    ldp     x30, x2, [sp, #240]
    ldr     x3, [sp, #256]
    msr     elr_el2, x2
    msr     spsr_el2, x3
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
    add     sp, sp, #{frame}
    eret

    // x0 = frame to restore (anywhere), x1 = where the stack must end (its top).
    .global tessera_enter_guest
tessera_enter_guest:
    sub     sp, x1, #{frame}
    mov     x2, #0
5:  ldr     x3, [x0, x2]
    str     x3, [sp, x2]
    add     x2, x2, #8
    cmp     x2, #{frame}
    b.lo    5b
    b       tessera_restore_and_eret

    // x0 = new stack top, x1 = function to call on it (never returns).
    .global tessera_run_on_stack
tessera_run_on_stack:
    mov     sp, x0
    mov     x29, #0
    mov     x30, #0
    br      x1
"#,
    frame = const FRAME_SIZE,
    handler = sym trap_entry,
    stack_mask = const super::boot::STACK_SIZE - 1,
    emergency = sym EMERGENCY_STACK,
    emergency_size = const EMERGENCY_STACK_SIZE,
);

/// Bytes of the emergency stack a fatal EL2 exception is reported from when it came from a
/// stack overflow (one for the machine: the report halts it).
const EMERGENCY_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct EmergencyStack([u8; EMERGENCY_STACK_SIZE]);
static mut EMERGENCY_STACK: EmergencyStack = EmergencyStack([0; EMERGENCY_STACK_SIZE]);

/// Whether the trap frame at `frame` was pushed on the emergency stack, i.e. the exception
/// came from an EL2 stack overflow.
pub fn on_emergency_stack(frame: *const TrapFrame) -> bool {
    let base = &raw const EMERGENCY_STACK as u64;
    (base..base + EMERGENCY_STACK_SIZE as u64).contains(&(frame as u64))
}

/// The SP a current-EL synchronous exception interrupted (saved by its vector).
pub fn interrupted_sp() -> u64 {
    let v: u64;
    // SAFETY: reading TPIDR_EL0 has no side effect; the current-EL synchronous vector stored
    // the interrupted SP there.
    unsafe { core::arch::asm!("mrs {}, tpidr_el0", out(reg) v, options(nomem, nostack)) };
    v
}

unsafe extern "C" {
    static tessera_vectors: u8;
    fn tessera_enter_guest(frame: *const TrapFrame, stack_top: u64) -> !;
    fn tessera_run_on_stack(stack_top: u64, f: extern "C" fn() -> !) -> !;
}

/// Installs the vector table on this core.
pub fn install_vectors() {
    VBAR_EL2.set(&raw const tessera_vectors as u64);
}

extern "C" fn trap_entry(frame: &mut TrapFrame, kind: u64) {
    let kind = match kind {
        0 => VectorKind::CurrentSync,
        1 => VectorKind::CurrentIrq,
        2 => VectorKind::CurrentFiq,
        3 => VectorKind::CurrentSError,
        4 => VectorKind::LowerSync,
        5 => VectorKind::LowerIrq,
        6 => VectorKind::LowerFiq,
        7 => VectorKind::LowerSError,
        _ => VectorKind::Unhandled,
    };
    crate::trap::handle(frame, kind);
}

/// Enters the guest with the registers of `frame`, on a fresh EL2 stack (this core's stack is
/// reset: nothing on it survives). Never returns; the next exception starts a new handler.
pub fn enter_guest(frame: &TrapFrame) -> ! {
    let top = super::boot::stack_top(super::core_index());
    // SAFETY: the assembly copies the frame into the slot at the top of this core's stack and
    // erets from it. The slot is either the frame itself (a trap frame always sits there, as
    // guests trap with SP_EL2 at the stack top) or disjoint from it (`run_on_fresh_stack`
    // starts Rust code below the slot), so the copy never reads a word it already overwrote.
    // The call diverges, so no Rust frame below is used again.
    unsafe { tessera_enter_guest(frame, top) }
}

/// Abandons the current stack and runs `f` on this core's fresh stack.
pub fn run_on_fresh_stack(f: extern "C" fn() -> !) -> ! {
    // Keep the frame slot at the very top free: `enter_guest` copies into it.
    let top = super::boot::stack_top(super::core_index()) - (FRAME_SIZE as u64 + 16);
    // SAFETY: `f` never returns and nothing of the abandoned stack is referenced again, so
    // resetting SP to this core's stack top cannot invalidate a live borrow.
    unsafe { tessera_run_on_stack(top, f) }
}
