//! The bench guest's modes for shared cores (`cargo xtask bench`'s scheduling figures), chosen
//! by the bootarg `mode=`:
//!
//! - `mode=probe [settle_ms=MS] [tests=hvc,virq,release] [delta=TICKS] [period_us=US]
//!   [jobs=N] [work_us=US]`: first waits `settle_ms` in `wfi` (the other VMs of its core boot
//!   and block meanwhile), then runs the listed tests (default all three): `loop_baseline` and
//!   `hvc_roundtrip` (`hvc`), `virq_latency`/`virq_handler_latency` with the timer armed
//!   `delta` + 0..150 ticks ahead (`virq`, default delta 50), and `release_jitter` (`release`):
//!   `jobs` periodic jobs (default 500), released every `period_us` (default 1000) by the
//!   virtual timer, each waiting in `wfi` with IRQs masked until its release and then busy for
//!   `work_us` (default 50); sample = first `CNTVCT` read after the wait − release.
//! - `mode=idle [idle_ms=MS]`: waits in `wfi` (virtual timer armed `idle_ms` ahead, default
//!   1000) and ends: a vCPU that is blocked all along.
//! - `mode=spin [spin_ms=MS] [gap=TICKS] [split=TICKS] [budget_us=US]`: spins with IRQs
//!   masked reading `CNTVCT` for `spin_ms` (default 100) and classifies each jump between two
//!   reads: above `gap` (default 4) ticks and at most `split` (default 1250 = 20 µs at
//!   62.5 MHz) it is a short absence (figure `spin_gap`: the core went elsewhere and came
//!   back, e.g. two vCPU switches); above `split` it ends a run (the vCPU was descheduled for
//!   a while: its server's budget ran out). With `budget_us`, each complete run (not the first
//!   or the last) is a sample of `budget_run` (its length from the first read after one long
//!   absence to the last before the next) and of `budget_overrun` (that length − the budget,
//!   0 if shorter); the budget itself is printed as the one-sample figure `budget`.
//!
//! Every mode prints `bench: done` at the end (`probe` prints its figures first).

use spin::Mutex;
use tessera_guest_rt::dt::parse_u64;
use tessera_guest_rt::{irq, println, tessera, timer, BootInfo};

use crate::{report, virq, Failed, SAMPLES};

/// Most jobs of `release`.
const MAX_JOBS: usize = 2000;
/// Most `spin_gap` samples recorded.
const MAX_GAPS: usize = 4096;
/// Most `budget_run` samples recorded.
const MAX_RUNS: usize = 1024;

/// The sample buffers of the modes (statics: together they exceed the guest's 32 KiB stack).
struct Buffers {
    a: [u64; SAMPLES],
    b: [u64; SAMPLES],
    jobs: [u64; MAX_JOBS],
    gaps: [u64; MAX_GAPS],
    runs: [u64; MAX_RUNS],
    over: [u64; MAX_RUNS],
}

static BUFFERS: Mutex<Buffers> = Mutex::new(Buffers {
    a: [0; SAMPLES],
    b: [0; SAMPLES],
    jobs: [0; MAX_JOBS],
    gaps: [0; MAX_GAPS],
    runs: [0; MAX_RUNS],
    over: [0; MAX_RUNS],
});

/// A number bootarg (`key=N`), or `default` when absent.
fn number(info: &BootInfo, key: &str, default: u64) -> Result<u64, Failed> {
    match info.bootarg(key) {
        None => Ok(default),
        Some(v) => match parse_u64(v) {
            Some(n) => Ok(n),
            None => fail!("bad bootargs: {}={:?} is not a number", key, v),
        },
    }
}

/// Runs the mode `mode` names.
#[inline(never)]
pub fn run_mode(info: &'static BootInfo, mode: &str) -> Result<(), Failed> {
    match mode {
        "probe" => probe(info),
        "idle" => idle(info),
        "spin" => spin(info),
        other => fail!("bad bootargs: mode={:?} (probe, idle or spin)", other),
    }
}

/// The virtual timer's handler of the waits: it only needs to wake the CPU.
fn on_wake(_intid: u32) {
    timer::stop_virt();
}

/// Sets up the GIC (once) and the virtual timer interrupt with `handler`.
fn timer_irq(handler: irq::Handler) -> Result<(), Failed> {
    if let Err(e) = irq::use_virtual_timer(handler) {
        fail!("cannot set up the virtual timer interrupt: {:?}", e);
    }
    Ok(())
}

/// Waits in `wfi` until the counter reaches `when` (IRQs masked on entry and on return; the
/// virtual timer's handler must be [`on_wake`]).
fn sleep_until(when: u64) {
    while timer::now() < when {
        timer::set_virt_deadline(when);
        irq::wait();
        irq::enable_local();
        irq::disable_local();
    }
}

fn probe(info: &'static BootInfo) -> Result<(), Failed> {
    timer_irq(on_wake)?;
    irq::disable_local();
    let tests = info.bootarg("tests").unwrap_or("hvc,virq,release");
    let has = |t: &str| tests.split(',').any(|x| x == t);
    let settle = timer::ticks_from_us(number(info, "settle_ms", 0)?.saturating_mul(1000));
    sleep_until(timer::now() + settle);
    println!(
        "bench: probe ({}), tests {}, CNTFRQ {} Hz",
        if info.tessera { "tessera" } else { "bare" },
        tests,
        timer::frequency()
    );
    let mut buf = BUFFERS.lock();
    let Buffers {
        a: samples,
        b: at_handler,
        jobs,
        ..
    } = &mut *buf;
    if has("hvc") {
        for s in samples.iter_mut() {
            let t0 = timer::now();
            let t1 = timer::now();
            *s = t1 - t0;
        }
        report("loop_baseline", samples);
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
            report("hvc_roundtrip", samples);
        } else {
            println!("bench: hvc_roundtrip unavailable (bare metal)");
        }
    }
    if has("virq") {
        let delta = number(info, "delta", 50)?;
        virq(samples, at_handler, delta)?;
        report("virq_latency", samples);
        report("virq_handler_latency", at_handler);
        // virq() leaves its own handler registered.
        timer_irq(on_wake)?;
        irq::disable_local();
    }
    if has("release") {
        release(info, jobs)?;
    }
    Ok(())
}

/// `release_jitter`: periodic jobs released by the virtual timer.
fn release(info: &BootInfo, late: &mut [u64; MAX_JOBS]) -> Result<(), Failed> {
    let period = timer::ticks_from_us(number(info, "period_us", 1000)?).max(1);
    let work = timer::ticks_from_us(number(info, "work_us", 50)?);
    let jobs = number(info, "jobs", 500)?;
    if jobs == 0 || jobs > MAX_JOBS as u64 || work >= period {
        fail!(
            "bad bootargs: jobs={} (1 to {}), work_us below period_us",
            jobs,
            MAX_JOBS
        );
    }
    let late = &mut late[..jobs as usize];
    let t0 = timer::now() + period;
    for (k, l) in late.iter_mut().enumerate() {
        let release = t0 + k as u64 * period;
        sleep_until(release);
        let start = timer::now();
        *l = start - release;
        while timer::now() < start + work {
            core::hint::spin_loop();
        }
    }
    timer::stop_virt();
    report("release_jitter", late);
    Ok(())
}

fn idle(info: &BootInfo) -> Result<(), Failed> {
    timer_irq(on_wake)?;
    irq::disable_local();
    let ms = number(info, "idle_ms", 1000)?;
    sleep_until(timer::now() + timer::ticks_from_us(ms.saturating_mul(1000)));
    timer::stop_virt();
    Ok(())
}

fn spin(info: &BootInfo) -> Result<(), Failed> {
    irq::disable_local();
    let ms = number(info, "spin_ms", 100)?;
    let gap = number(info, "gap", 4)?;
    let split = number(info, "split", 1250)?.max(gap);
    let budget = match info.bootarg("budget_us") {
        Some(_) => Some(timer::ticks_from_us(number(info, "budget_us", 0)?)),
        None => None,
    };
    let mut buf = BUFFERS.lock();
    let Buffers {
        gaps, runs, over, ..
    } = &mut *buf;
    let (mut n_gaps, mut n_runs) = (0usize, 0usize);
    // A buffer filled up (later samples are dropped).
    let mut full = false;
    let start = timer::now();
    let end = start + timer::ticks_from_us(ms.saturating_mul(1000));
    // The current run began at `run_start`; `first` until the first long absence.
    let mut run_start = start;
    let mut first = true;
    let mut prev = start;
    while prev < end {
        let t = timer::now();
        let d = t - prev;
        if d > split {
            if !first {
                if let Some(r) = runs.get_mut(n_runs) {
                    *r = prev - run_start;
                    n_runs += 1;
                } else {
                    full = true;
                }
            }
            first = false;
            run_start = t;
        } else if d > gap {
            if let Some(g) = gaps.get_mut(n_gaps) {
                *g = d;
                n_gaps += 1;
            } else {
                full = true;
            }
        }
        prev = t;
    }
    println!(
        "bench: spin ({} ms, gap > {} ticks, run split > {} ticks){}",
        ms,
        gap,
        split,
        if full {
            ", buffers full: later samples dropped"
        } else {
            ""
        }
    );
    report("spin_gap", &mut gaps[..n_gaps]);
    if let Some(b) = budget {
        let runs = &mut runs[..n_runs];
        report("budget_run", runs);
        let over = &mut over[..runs.len()];
        for (o, r) in over.iter_mut().zip(runs.iter()) {
            *o = r.saturating_sub(b);
        }
        report("budget_overrun", over);
        report("budget", &mut [b]);
        println!(
            "bench: runs shorter than the budget: {} of {}",
            runs.iter().filter(|&&r| r < b).count(),
            runs.len()
        );
    }
    Ok(())
}
