//! `bench`: micro-benchmarks in virtual-counter ticks (also boots bare on QEMU `virt`).
//!
//! Prints one machine-readable line per figure,
//! `bench: <name> median=<ticks> max=<ticks> min=<ticks> samples=<n> unit=ticks`, then
//! `bench: done` and exits 0 (a measurement that cannot complete prints `bench: FAILED <why>`
//! and exits 1):
//!
//! - `loop_baseline`: the timing loop with an empty body (the cost of measuring).
//! - `hvc_roundtrip`: the Tessera `Null` hypercall, timed one by one (Tessera only; bare prints
//!   `bench: hvc_roundtrip unavailable (bare metal)`).
//! - `virq_latency`: virtual timer armed 50..200 ticks ahead, CPU in `wfi`: `CNTVCT` read first
//!   thing at exception entry (the IRQ vector) minus `CNTV_CVAL`.
//! - `virq_handler_latency`: the same interrupts, `CNTVCT` read first thing in the registered
//!   Rust handler (after the context save and the acknowledge) minus `CNTV_CVAL`.
//! - `ipi_latency` (two CPUs): CPU 0 stores `CNTVCT` and sends an SGI to CPU 1 (waiting in
//!   `wfi`), whose IRQ entry reads `CNTVCT`; one SGI in flight at a time.
//!
//! With the bootarg `mode=probe|idle|spin` it runs one of the modes for shared cores instead
//! (see [`sched`]); `mode=console-victim` times its own console prints (see [`console`]).
//!
//! Run under QEMU with `-icount shift=0,sleep=off` for repeatable figures: `sleep=off` makes
//! `wfi` skip to the next timer deadline without losing instructions' time. All waits on
//! the other CPU use `wfe` (a yield under QEMU, which is single-threaded with icount) or a
//! pending interrupt, with a timeout.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tessera_guest_rt::event::{signal, wait_until};
use tessera_guest_rt::psci::AffinityState;
use tessera_guest_rt::{cpu, entry, irq, println, tessera, timer, BootInfo, GicVersion};

entry!(main);

/// Samples per figure.
const SAMPLES: usize = 1000;
/// SGI used for the IPI benchmark.
const IPI_SGI: u32 = 3;

/// A measurement could not complete (the `bench: FAILED` line is printed).
struct Failed;

/// Prints `bench: FAILED <why>` and returns `Err(Failed)` from the enclosing function.
macro_rules! fail {
    ($($arg:tt)*) => {{
        println!("bench: FAILED {}", format_args!($($arg)*));
        return Err(Failed);
    }};
}

mod console;
mod sched;

fn main(info: &'static BootInfo) -> u32 {
    match run(info) {
        Ok(()) => {
            println!("bench: done");
            0
        }
        Err(Failed) => 1,
    }
}

fn run(info: &'static BootInfo) -> Result<(), Failed> {
    if let Some(mode) = info.bootarg("mode") {
        if mode == "console-victim" {
            return console::victim(info);
        }
        return sched::run_mode(info, mode);
    }
    if let Err(e) = irq::init() {
        fail!("irq::init: {:?}", e);
    }
    let gic = match irq::gic_version() {
        Some(GicVersion::V2) => "gicv2",
        Some(GicVersion::V3) => "gicv3",
        None => "no gic",
    };
    println!(
        "bench: {} {}, {} cpus, CNTFRQ {} Hz",
        if info.tessera { "tessera" } else { "bare" },
        gic,
        info.cpu_count(),
        timer::frequency()
    );
    let mut samples = [0u64; SAMPLES];

    for s in samples.iter_mut() {
        let t0 = timer::now();
        let t1 = timer::now();
        *s = t1 - t0;
    }
    report("loop_baseline", &mut samples);

    if info.tessera {
        for s in samples.iter_mut() {
            let t0 = timer::now();
            let r = tessera::null();
            let t1 = timer::now();
            if let Err(e) = r {
                fail!("Null hypercall: {:?}", e);
            }
            *s = t1 - t0;
        }
        report("hvc_roundtrip", &mut samples);
    } else {
        println!("bench: hvc_roundtrip unavailable (bare metal)");
    }

    let mut at_handler = [0u64; SAMPLES];
    virq(&mut samples, &mut at_handler, 50)?;
    report("virq_latency", &mut samples);
    report("virq_handler_latency", &mut at_handler);

    if info.cpu_count() >= 2 {
        ipi(info, &mut samples)?;
        report("ipi_latency", &mut samples);
    } else {
        println!("bench: ipi_latency unavailable (1 cpu)");
    }
    Ok(())
}

/// Sorts `samples` and prints the figure's line.
fn report(name: &str, samples: &mut [u64]) {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        println!("bench: {} unavailable (no samples)", name);
        return;
    }
    println!(
        "bench: {} median={} max={} min={} samples={} unit=ticks",
        name,
        samples[n / 2],
        samples[n - 1],
        samples[0],
        n
    );
}

/// Takes a pending IRQ: unmask, synchronize (the interrupt is taken here), mask again.
fn take_pending_irq() {
    irq::enable_local();
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    irq::disable_local();
}

// ---------------------------------------------------------------------------------------------
// virq_latency

static VIRQ_DONE: AtomicBool = AtomicBool::new(false);
static VIRQ_AT_ENTRY: AtomicU64 = AtomicU64::new(0);
static VIRQ_AT_HANDLER: AtomicU64 = AtomicU64::new(0);

fn on_virq(_intid: u32) {
    let now = timer::now();
    let cval = timer::virt_deadline();
    timer::stop_virt();
    VIRQ_AT_HANDLER.store(now.wrapping_sub(cval), Ordering::Relaxed);
    VIRQ_AT_ENTRY.store(irq::entry_ticks().wrapping_sub(cval), Ordering::Relaxed);
    VIRQ_DONE.store(true, Ordering::SeqCst);
}

/// `virq_latency` samples: the timer armed `delta` + 0..150 ticks ahead.
fn virq(at_entry: &mut [u64], at_handler: &mut [u64], delta: u64) -> Result<(), Failed> {
    let intid = timer::virt_intid();
    irq::set_handler(intid, Some(on_virq));
    if let Err(e) = irq::enable(intid) {
        fail!("enable the virtual timer interrupt {}: {:?}", intid, e);
    }
    let timeout = timer::frequency();
    irq::disable_local();
    for (i, (e, h)) in at_entry.iter_mut().zip(at_handler.iter_mut()).enumerate() {
        // delta..=delta + 150 ticks ahead, varied so the figure does not depend on one
        // alignment.
        let delta = delta + (i as u64 * 37) % 151;
        VIRQ_DONE.store(false, Ordering::SeqCst);
        let start = timer::now();
        timer::set_virt_deadline(start + delta);
        // With IRQs masked `wfi` still wakes on the pending interrupt, and no interrupt can
        // slip in between the check and the `wfi`.
        while !VIRQ_DONE.load(Ordering::SeqCst) {
            if timer::now() - start > timeout {
                timer::stop_virt();
                fail!(
                    "virq_latency: no timer interrupt (INTID {}) within 1 s",
                    intid
                );
            }
            irq::wait();
            take_pending_irq();
        }
        *e = VIRQ_AT_ENTRY.load(Ordering::Relaxed);
        *h = VIRQ_AT_HANDLER.load(Ordering::Relaxed);
    }
    let _ = irq::disable(intid);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ipi_latency

/// CNTVCT stored by the sender just before the SGI (0 = a wake-up without a sample).
static IPI_SENT: AtomicU64 = AtomicU64::new(0);
static IPI_LATENCY: AtomicU64 = AtomicU64::new(0);
static IPI_ACK: AtomicBool = AtomicBool::new(false);
static IPI_READY: AtomicBool = AtomicBool::new(false);
static IPI_STOP: AtomicBool = AtomicBool::new(false);
static IPI_ERRORS: AtomicUsize = AtomicUsize::new(0);

fn on_ipi(_intid: u32) {
    let entry = irq::entry_ticks();
    let sent = IPI_SENT.load(Ordering::SeqCst);
    if sent != 0 {
        IPI_LATENCY.store(entry.wrapping_sub(sent), Ordering::SeqCst);
        IPI_ACK.store(true, Ordering::SeqCst);
        signal();
    }
}

fn ipi_peer(_index: usize) {
    let ok = irq::init_cpu().is_ok() && irq::set_handler(IPI_SGI, Some(on_ipi));
    if !ok || irq::enable(IPI_SGI).is_err() {
        IPI_ERRORS.fetch_add(1, Ordering::SeqCst);
    }
    irq::disable_local();
    IPI_READY.store(true, Ordering::SeqCst);
    signal();
    while !IPI_STOP.load(Ordering::SeqCst) {
        irq::wait();
        take_pending_irq();
    }
}

fn ipi(info: &'static BootInfo, samples: &mut [u64]) -> Result<(), Failed> {
    let me = cpu::index();
    let Some(peer) = (0..info.cpu_count()).find(|&i| i != me) else {
        fail!("ipi_latency: no second cpu");
    };
    if let Err(e) = cpu::start(peer, ipi_peer) {
        fail!("ipi_latency: cannot start cpu {}: {:?}", peer, e);
    }
    let second = timer::frequency();
    if !wait_until(5 * second, || IPI_READY.load(Ordering::SeqCst)) {
        fail!("ipi_latency: cpu {} did not come up", peer);
    }
    if IPI_ERRORS.load(Ordering::SeqCst) != 0 {
        fail!("ipi_latency: cpu {} could not set up SGI {}", peer, IPI_SGI);
    }
    let mut result = Ok(());
    for (i, s) in samples.iter_mut().enumerate() {
        IPI_ACK.store(false, Ordering::SeqCst);
        let sent = timer::now();
        IPI_SENT.store(sent, Ordering::SeqCst);
        if let Err(e) = irq::send_sgi(peer, IPI_SGI) {
            println!("bench: FAILED ipi_latency: send SGI: {:?}", e);
            result = Err(Failed);
            break;
        }
        if !wait_until(second, || IPI_ACK.load(Ordering::SeqCst)) {
            println!(
                "bench: FAILED ipi_latency: sample {}: no answer within 1 s",
                i
            );
            result = Err(Failed);
            break;
        }
        *s = IPI_LATENCY.load(Ordering::SeqCst);
    }
    // Release the peer: the flag, then an SGI without a sample to end its `wfi`.
    IPI_SENT.store(0, Ordering::SeqCst);
    IPI_STOP.store(true, Ordering::SeqCst);
    let _ = irq::send_sgi(peer, IPI_SGI);
    result?;
    if !wait_until(5 * second, || {
        matches!(cpu::state(peer), Ok(AffinityState::Off))
    }) {
        fail!("ipi_latency: cpu {} did not power off", peer);
    }
    Ok(())
}
