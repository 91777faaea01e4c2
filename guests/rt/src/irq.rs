//! Interrupts: handler registration, the IRQ path, and local masking.
//!
//! ```ignore
//! irq::init()?;                          // GIC from the DTB, distributor + this CPU
//! irq::set_handler(27, Some(on_timer));  // fn(intid: u32)
//! irq::enable(27)?;
//! irq::enable_local();                   // clear PSTATE.I
//! ```
//!
//! CPUs started with [`crate::cpu::start`] after [`init`] run [`init_cpu`] themselves before
//! their main function; SGI/PPI handlers, enables and priorities are per CPU (banked), so each
//! CPU registers and enables its own.
//!
//! The IRQ vector acknowledges interrupts one after the other until the GIC has nothing more
//! for this CPU, calls the registered handler of each (with interrupts masked: no nesting) and
//! ends it (EOImode 0) after the handler returns. An interrupt without a handler is counted,
//! disabled (so a level-sensitive one cannot storm) and ended.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use aarch64_cpu::registers::{Readable, DAIF};

use crate::boot::MAX_CPUS;
pub use crate::dt::Trigger;
pub use crate::gic::{
    clear_pending, disable, enable, is_enabled, is_pending, route_here, send_sgi, set_pending,
    set_priority, set_trigger, GicError, MAX_INTID, PPI_BASE, SPI_BASE, SPURIOUS,
};

/// An interrupt handler: called with the INTID, interrupts masked, before the EOI.
pub type Handler = fn(u32);

/// Number of banked (per-CPU) INTIDs: SGIs and PPIs.
const LOCAL: usize = SPI_BASE as usize;

/// SGI/PPI handlers of each CPU (0 = none; else a `Handler` as `usize`).
static LOCAL_HANDLERS: [[AtomicUsize; LOCAL]; MAX_CPUS] =
    [const { [const { AtomicUsize::new(0) }; LOCAL] }; MAX_CPUS];
/// SPI handlers (index = INTID - 32), shared by all CPUs.
static SPI_HANDLERS: [AtomicUsize; MAX_INTID as usize - LOCAL] =
    [const { AtomicUsize::new(0) }; MAX_INTID as usize - LOCAL];

/// `CNTVCT_EL0` read at exception entry of the last IRQ taken on each CPU.
static ENTRY_TICKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Interrupts taken with no handler.
static UNHANDLED: AtomicU32 = AtomicU32::new(0);
/// The INTID of the last interrupt without a handler (`SPURIOUS` if none).
static LAST_UNHANDLED: AtomicU32 = AtomicU32::new(SPURIOUS);
/// IRQ exceptions in which the GIC had nothing to acknowledge.
static SPURIOUS_COUNT: AtomicU32 = AtomicU32::new(0);
/// Bit per CPU: [`init_cpu`] done.
static CPU_READY: AtomicUsize = AtomicUsize::new(0);

/// Sets the GIC up from the device tree ([`crate::BootInfo::gic`]): the distributor once, then
/// the calling CPU ([`init_cpu`]). Interrupts stay masked locally (see [`enable_local`]).
pub fn init() -> Result<(), GicError> {
    crate::gic::init(crate::boot_info().gic.as_ref())?;
    init_cpu()
}

/// Sets up the calling CPU's GIC interface (after [`init`] ran on some CPU). Idempotent.
pub fn init_cpu() -> Result<(), GicError> {
    let bit = 1usize << (crate::cpu::index() % MAX_CPUS);
    if CPU_READY.load(Ordering::SeqCst) & bit != 0 {
        return Ok(());
    }
    crate::gic::init_cpu()?;
    CPU_READY.fetch_or(bit, Ordering::SeqCst);
    Ok(())
}

/// Sets the GIC up if nobody did yet, registers `handler` for the calling CPU's virtual
/// timer interrupt and enables it; returns its INTID. Interrupts stay masked locally.
pub fn use_virtual_timer(handler: Handler) -> Result<u32, GicError> {
    if initialized() {
        init_cpu()?;
    } else {
        init()?;
    }
    let intid = crate::timer::virt_intid();
    set_handler(intid, Some(handler));
    enable(intid)?;
    Ok(intid)
}

/// Whether [`init`] succeeded (so CPUs started later set up their interface by themselves).
pub fn initialized() -> bool {
    crate::gic::ready()
}

/// The GIC version in use, once initialized.
pub fn gic_version() -> Option<crate::dt::GicVersion> {
    crate::gic::version()
}

fn slot(cpu: usize, intid: u32) -> Option<&'static AtomicUsize> {
    if intid < SPI_BASE {
        LOCAL_HANDLERS.get(cpu)?.get(intid as usize)
    } else {
        SPI_HANDLERS.get((intid - SPI_BASE) as usize)
    }
}

/// Registers (`Some`) or removes (`None`) the handler of `intid`: for an SGI/PPI on the
/// calling CPU only, for an SPI on every CPU. Returns `false` if `intid` is out of range.
pub fn set_handler(intid: u32, handler: Option<Handler>) -> bool {
    set_handler_on(crate::cpu::index(), intid, handler)
}

/// Like [`set_handler`], but an SGI/PPI handler is registered for CPU `cpu`.
pub fn set_handler_on(cpu: usize, intid: u32, handler: Option<Handler>) -> bool {
    match slot(cpu, intid) {
        Some(s) => {
            s.store(handler.map_or(0, |h| h as usize), Ordering::SeqCst);
            true
        }
        None => false,
    }
}

fn handler(cpu: usize, intid: u32) -> Option<Handler> {
    let raw = slot(cpu, intid)?.load(Ordering::Acquire);
    if raw == 0 {
        return None;
    }
    // SAFETY: the only non-zero values ever stored in the tables are `Handler` function
    // pointers converted to `usize` (`set_handler_on`), so this converts one back.
    Some(unsafe { core::mem::transmute::<usize, Handler>(raw) })
}

/// Unmasks IRQs on the calling CPU (clears `PSTATE.I`).
#[inline(always)]
pub fn enable_local() {
    // SAFETY: unmasking IRQs only lets the registered handlers run; the IRQ path saves and
    // restores the full context.
    unsafe { core::arch::asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
}

/// Masks IRQs on the calling CPU (sets `PSTATE.I`).
#[inline(always)]
pub fn disable_local() {
    // SAFETY: masking IRQs has no effect on memory.
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack, preserves_flags)) };
}

/// Whether IRQs are unmasked on the calling CPU.
pub fn local_enabled() -> bool {
    !DAIF.is_set(DAIF::I)
}

/// Runs `f` with IRQs masked on the calling CPU, restoring the previous mask afterwards.
pub fn without<R>(f: impl FnOnce() -> R) -> R {
    let was = local_enabled();
    disable_local();
    let r = f();
    if was {
        enable_local();
    }
    r
}

/// Waits for an interrupt (`wfi`). Returns when one is pending, even with IRQs masked.
#[inline(always)]
pub fn wait() {
    aarch64_cpu::asm::wfi();
}

/// `CNTVCT_EL0` as read first thing at exception entry of the IRQ being (or last) handled on
/// the calling CPU: for latency measurements without the cost of the context save. For a
/// further interrupt acknowledged in the same exception (after the handler of the first one
/// returned), the counter read just before its acknowledge.
pub fn entry_ticks() -> u64 {
    ENTRY_TICKS[crate::cpu::index() % MAX_CPUS].load(Ordering::Relaxed)
}

/// Interrupts taken with no handler registered (each was then disabled), and the last INTID.
pub fn unhandled() -> (u32, u32) {
    (
        UNHANDLED.load(Ordering::SeqCst),
        LAST_UNHANDLED.load(Ordering::SeqCst),
    )
}

/// IRQ exceptions in which the GIC had nothing to acknowledge.
pub fn spurious() -> u32 {
    SPURIOUS_COUNT.load(Ordering::SeqCst)
}

/// The IRQ path (from the vectors): acknowledge, dispatch, EOI, until nothing is pending.
pub(crate) fn dispatch(entry_ticks: u64) -> bool {
    let cpu = crate::cpu::index();
    if let Some(t) = ENTRY_TICKS.get(cpu) {
        t.store(entry_ticks, Ordering::Relaxed);
    }
    if !crate::gic::ready() {
        return false;
    }
    let mut first = true;
    loop {
        if !first {
            // A further interrupt taken in the same exception: its "entry" is now.
            if let Some(t) = ENTRY_TICKS.get(cpu) {
                t.store(crate::timer::now(), Ordering::Relaxed);
            }
        }
        let Some(ack) = crate::gic::ack() else { break };
        if ack.intid >= MAX_INTID {
            if first {
                SPURIOUS_COUNT.fetch_add(1, Ordering::SeqCst);
            }
            break;
        }
        first = false;
        match handler(cpu, ack.intid) {
            Some(h) => h(ack.intid),
            None => {
                UNHANDLED.fetch_add(1, Ordering::SeqCst);
                LAST_UNHANDLED.store(ack.intid, Ordering::SeqCst);
                let _ = disable(ack.intid);
            }
        }
        crate::gic::eoi(ack);
    }
    true
}
