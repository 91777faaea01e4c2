//! `rt-bench`: periodic real-time tasks of declared WCET, measured per job (also boots bare on
//! QEMU `virt`, with the bootargs given by `-append`).
//!
//! # Bootargs
//!
//! `rtbench tasks=P:C[:D[:PRIO]],... [jobs=N] [spin=0|1|2] [spin_ms=MS] [tick_us=US]`
//!
//! - `tasks`: one entry per task, comma-separated: period `P`, WCET `C`, relative deadline `D`
//!   (default `P`), all in microseconds, and a priority `PRIO` (default: the task's index;
//!   lower = more urgent). At most [`MAX_TASKS`] tasks.
//! - `jobs`: jobs per task (default 1000); at most [`MAX_RECORDED`] jobs in all.
//! - `spin=1`: no tasks; spin with interrupts masked (an adversarial neighbour: it never
//!   waits, never yields, never takes an interrupt). `spin=2`: spin with interrupts unmasked
//!   and the virtual timer ticking every `tick_us` (default 1000). `spin_ms=MS` ends the spin
//!   after `MS` milliseconds of wall time (counter time) with `rt-bench: spin done ...` and exit
//!   0; without it (or 0) the spinner never ends. The first word `rtbench` is just a marker.
//!
//! # Model
//!
//! All tasks release their first job together, 1 ms after calibration (`t0`); job `k` of task
//! `i` is released at `t0 + k * P_i`. Scheduling inside the guest is **non-preemptive fixed
//! priority**: whenever the CPU is free, the pending job of the most urgent task (lowest
//! `PRIO`, then lowest index; jobs of one task in release order) runs to completion. A job
//! released while another runs waits for it (blocking of at most one lower-priority WCET).
//! When no job is pending, the guest arms the virtual timer for the earliest next release and
//! waits in `wfi` with IRQs masked (it wakes on the pending timer, takes it, and re-checks the
//! time; the handler only stops the timer). Per job: response = completion − release; a miss
//! when the response exceeds the deadline; start latency = start − release.
//!
//! # Execution time as progress, not wall time
//!
//! A job "executes for `C` µs of its own CPU time". Under a hypervisor the vCPU may be
//! descheduled in the middle of a job, so the wall time of the busy loop is not its execution
//! time. The loop runs in small chunks (a fixed number of iterations, calibrated at boot with
//! IRQs masked to take about [`CHUNK_US`] µs: `chunk` = the median of [`CALIBRATION_SAMPLES`]
//! chunks) and reads `CNTVCT` after each. A chunk whose wall duration `d` is at most `3 *
//! chunk` counts `d` as execution; a longer one was interrupted (descheduled, or the QEMU
//! thread lost its host CPU): it counts as `chunk` (the work it did) and the rest as stolen
//! time. The job ends when the counted execution reaches `C`, so it overshoots by less than one
//! chunk, and preemptions shorter than `3 * chunk` are counted as its own time.
//!
//! # Output
//!
//! One line per task, then the verdict, then exit (PSCI `SYSTEM_OFF` bare, `Shutdown` under
//! Tessera) with 0 or 1:
//!
//! ```text
//! rt-bench: task 0 period 10000 us wcet 1000 us deadline 10000 us prio 0: jobs 1000 misses 0 resp max 1234 us p99 1100 us med 1010 us start max 40 us preempted 3 stolen 120 us
//! rt-bench: ok
//! ```
//!
//! or `rt-bench: FAIL <n> misses` (or `rt-bench: FAIL <why>` for bad bootargs).
#![no_std]
#![no_main]

use core::fmt;

use heapless::Vec;
use spin::Mutex;
use tessera_guest_rt::dt::parse_u64;
use tessera_guest_rt::{entry, irq, println, timer, BootInfo};

entry!(main);

/// Most tasks.
const MAX_TASKS: usize = 8;
/// Most jobs recorded (all tasks together).
const MAX_RECORDED: usize = 64 * 1024;
/// Jobs per task without `jobs=`.
const DEFAULT_JOBS: u32 = 1000;
/// Target wall duration of one busy-loop chunk.
const CHUNK_US: u64 = 2;
/// Chunks timed per calibration step.
const CALIBRATION_SAMPLES: usize = 31;
/// A chunk longer than this many times the calibrated one was interrupted.
const INTERRUPTED_FACTOR: u64 = 3;
/// Delay between the end of calibration and the first release.
const START_DELAY_US: u64 = 1000;
/// Virtual timer period of `spin=2` without `tick_us=`.
const DEFAULT_TICK_US: u64 = 1000;

/// The run failed; the `rt-bench: FAIL ...` line is printed.
struct Failed;

/// Prints `rt-bench: FAIL <why>` and returns `Err(Failed)` from the enclosing function.
macro_rules! fail {
    ($($arg:tt)*) => {{
        println!("rt-bench: FAIL {}", format_args!($($arg)*));
        return Err(Failed);
    }};
}

/// One task as the bootargs declare it (microseconds).
#[derive(Clone, Copy, Debug)]
struct TaskSpec {
    period_us: u64,
    wcet_us: u64,
    deadline_us: u64,
    prio: u32,
}

/// What the bootargs ask for.
// Built once and matched at once: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Mode {
    /// Run the task set, `jobs` jobs per task.
    Tasks {
        tasks: Vec<TaskSpec, MAX_TASKS>,
        jobs: u32,
    },
    /// Spin (`spin=1`: IRQs masked; `spin=2`: IRQs on, timer every `tick_us`), for `ms`
    /// milliseconds (0 = forever).
    Spin { masked: bool, ms: u64, tick_us: u64 },
}

fn main(info: &'static BootInfo) -> u32 {
    irq::disable_local();
    match run(info) {
        Ok(()) => 0,
        Err(Failed) => 1,
    }
}

fn run(info: &'static BootInfo) -> Result<(), Failed> {
    if let Some(e) = info.dt_error {
        fail!("cannot read the device tree: {}", e);
    }
    let under = if info.tessera { "tessera" } else { "bare" };
    match parse_mode(info)? {
        Mode::Spin {
            masked,
            ms,
            tick_us,
        } => spin(under, masked, ms, tick_us),
        Mode::Tasks { tasks, jobs } => run_tasks(under, &tasks, jobs),
    }
}

// ---------------------------------------------------------------------------------------------
// bootargs

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

fn parse_mode(info: &BootInfo) -> Result<Mode, Failed> {
    let spin = number(info, "spin", 0)?;
    if spin != 0 {
        if spin > 2 {
            fail!("bad bootargs: spin={} (0, 1 or 2)", spin);
        }
        let tick_us = number(info, "tick_us", DEFAULT_TICK_US)?;
        if tick_us == 0 {
            fail!("bad bootargs: tick_us=0");
        }
        return Ok(Mode::Spin {
            masked: spin == 1,
            ms: number(info, "spin_ms", 0)?,
            tick_us,
        });
    }
    let Some(list) = info.bootarg("tasks") else {
        fail!(
            "bad bootargs: no tasks=P:C[:D[:PRIO]],... (or spin=1|2) in {:?}",
            info.bootargs()
        );
    };
    let mut tasks: Vec<TaskSpec, MAX_TASKS> = Vec::new();
    for (i, entry) in list.split(',').enumerate() {
        let mut fields = [None::<u64>; 4];
        let mut count = 0;
        for (slot, text) in fields.iter_mut().zip(entry.split(':')) {
            *slot = parse_u64(text);
            if slot.is_none() {
                fail!(
                    "bad bootargs: task {} {:?}: {:?} is not a number",
                    i,
                    entry,
                    text
                );
            }
            count += 1;
        }
        if count < 2 || entry.split(':').count() > 4 {
            fail!(
                "bad bootargs: task {} {:?}: expected period_us:wcet_us[:deadline_us[:prio]]",
                i,
                entry
            );
        }
        let period_us = fields[0].unwrap_or(0);
        let wcet_us = fields[1].unwrap_or(0);
        let deadline_us = fields[2].unwrap_or(period_us);
        let prio = fields[3].unwrap_or(i as u64);
        if period_us == 0 || wcet_us == 0 || deadline_us == 0 {
            fail!(
                "bad bootargs: task {} {:?}: zero period, WCET or deadline",
                i,
                entry
            );
        }
        if wcet_us > deadline_us {
            fail!(
                "bad bootargs: task {} {:?}: WCET above the deadline",
                i,
                entry
            );
        }
        let Ok(prio) = u32::try_from(prio) else {
            fail!("bad bootargs: task {} {:?}: priority too large", i, entry);
        };
        let spec = TaskSpec {
            period_us,
            wcet_us,
            deadline_us,
            prio,
        };
        if tasks.push(spec).is_err() {
            fail!("bad bootargs: more than {} tasks", MAX_TASKS);
        }
    }
    let jobs = number(info, "jobs", u64::from(DEFAULT_JOBS))?;
    if jobs == 0 || jobs.saturating_mul(tasks.len() as u64) > MAX_RECORDED as u64 {
        fail!(
            "bad bootargs: jobs={} with {} tasks (1 to {} jobs in all)",
            jobs,
            tasks.len(),
            MAX_RECORDED
        );
    }
    Ok(Mode::Tasks {
        tasks,
        jobs: jobs as u32,
    })
}

// ---------------------------------------------------------------------------------------------
// execution time

/// Loop iterations the compiler cannot remove.
#[inline(never)]
fn work(iterations: u32) {
    for i in 0..iterations {
        core::hint::black_box(i);
    }
}

/// The calibrated busy loop (see the crate documentation).
struct Burner {
    /// Iterations per chunk.
    iterations: u32,
    /// Median wall duration of a chunk, in counter ticks (at least 1).
    chunk: u64,
    /// Longest chunk counted at its wall duration; longer ones were interrupted.
    limit: u64,
}

/// What one burn observed besides its own execution.
#[derive(Default, Clone, Copy)]
struct Burned {
    /// Chunks that were interrupted.
    interrupted: u32,
    /// Wall ticks of those chunks beyond one chunk each.
    stolen: u64,
}

impl Burner {
    /// Median wall duration of a chunk of `iterations` (IRQs are masked).
    fn median_chunk(iterations: u32) -> u64 {
        let mut samples = [0u64; CALIBRATION_SAMPLES];
        for s in samples.iter_mut() {
            let t = timer::now();
            work(iterations);
            *s = timer::now().wrapping_sub(t);
        }
        samples.sort_unstable();
        samples[CALIBRATION_SAMPLES / 2]
    }

    /// Doubles the iterations until a chunk takes about [`CHUNK_US`].
    fn calibrate() -> Burner {
        let target = timer::ticks_from_us(CHUNK_US).max(4);
        let mut iterations = 8u32;
        let mut chunk = Self::median_chunk(iterations);
        while chunk < target && iterations < 1 << 24 {
            iterations *= 2;
            chunk = Self::median_chunk(iterations);
        }
        let chunk = chunk.max(1);
        Burner {
            iterations,
            chunk,
            limit: chunk * INTERRUPTED_FACTOR,
        }
    }

    /// Executes for `ticks` counter ticks of own progress.
    fn burn(&self, ticks: u64) -> Burned {
        let mut out = Burned::default();
        let mut done = 0u64;
        let mut prev = timer::now();
        while done < ticks {
            work(self.iterations);
            let t = timer::now();
            let d = t.wrapping_sub(prev);
            prev = t;
            if d <= self.limit {
                done += d;
            } else {
                done += self.chunk;
                out.interrupted += 1;
                out.stolen += d - self.chunk;
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// tasks

/// Run-time state of one task (counter ticks).
#[derive(Clone, Copy, Default)]
struct Task {
    period: u64,
    wcet: u64,
    deadline: u64,
    prio: u32,
    /// Where its responses start in [`Record::responses`].
    offset: usize,
    done: u32,
    misses: u32,
    start_max: u64,
    interrupted: u32,
    stolen: u64,
}

impl Task {
    /// Jobs released by `now` (at most `jobs`), the first at `t0`.
    fn released(&self, t0: u64, now: u64, jobs: u32) -> u32 {
        if now < t0 {
            return 0;
        }
        let n = (now - t0) / self.period + 1;
        n.min(u64::from(jobs)) as u32
    }

    /// Release time of job `k`.
    fn release(&self, t0: u64, k: u32) -> u64 {
        t0 + u64::from(k) * self.period
    }
}

/// Response times of every job, in ticks (saturated at `u32::MAX`), task by task.
struct Record {
    responses: [u32; MAX_RECORDED],
}

static RECORD: Mutex<Record> = Mutex::new(Record {
    responses: [0; MAX_RECORDED],
});

/// The virtual timer's handler: the wait loop only needs to wake up.
fn on_timer(_intid: u32) {
    timer::stop_virt();
}

/// Waits until the counter reaches `when` (IRQs masked on entry and on return).
fn wait_until_tick(when: u64) {
    while timer::now() < when {
        timer::set_virt_deadline(when);
        // `wfi` with IRQs masked returns once the timer interrupt is pending; unmasking then
        // lets the handler take it (no lost wake-up between the check and the wait).
        irq::wait();
        irq::enable_local();
        irq::disable_local();
    }
}

/// Microseconds, for printing.
struct Us(u64);

impl fmt::Display for Us {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} us", timer::us_from_ticks(self.0))
    }
}

/// Sets up the timer interrupt; fails with a line.
fn timer_interrupt(handler: irq::Handler) -> Result<(), Failed> {
    if let Err(e) = irq::use_virtual_timer(handler) {
        fail!("cannot set up the virtual timer interrupt: {:?}", e);
    }
    Ok(())
}

fn run_tasks(under: &str, specs: &[TaskSpec], jobs: u32) -> Result<(), Failed> {
    timer_interrupt(on_timer)?;
    let burner = Burner::calibrate();
    let mut tasks: Vec<Task, MAX_TASKS> = Vec::new();
    let mut utilisation_permille = 0;
    for (i, s) in specs.iter().enumerate() {
        utilisation_permille += s.wcet_us * 1000 / s.period_us;
        let t = Task {
            period: timer::ticks_from_us(s.period_us).max(1),
            wcet: timer::ticks_from_us(s.wcet_us),
            deadline: timer::ticks_from_us(s.deadline_us),
            prio: s.prio,
            offset: i * jobs as usize,
            ..Task::default()
        };
        // Cannot fail: `specs` has at most MAX_TASKS entries.
        let _ = tasks.push(t);
    }
    println!(
        "rt-bench: start ({}), {} tasks, {} jobs each, utilisation {}.{}%, non-preemptive \
         fixed priority, chunk {} ticks ({} iterations), CNTFRQ {} Hz",
        under,
        tasks.len(),
        jobs,
        utilisation_permille / 10,
        utilisation_permille % 10,
        burner.chunk,
        burner.iterations,
        timer::frequency()
    );

    let mut record = RECORD.lock();
    let t0 = timer::now() + timer::ticks_from_us(START_DELAY_US);
    loop {
        let now = timer::now();
        // The most urgent task with a released, unfinished job.
        let next = tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.done < t.released(t0, now, jobs))
            .min_by_key(|(i, t)| (t.prio, *i))
            .map(|(i, _)| i);
        if let Some(i) = next {
            let task = &mut tasks[i];
            let release = task.release(t0, task.done);
            let start = timer::now();
            let burned = burner.burn(task.wcet);
            let end = timer::now();
            let response = end - release;
            task.start_max = task.start_max.max(start - release);
            task.interrupted += burned.interrupted;
            task.stolen += burned.stolen;
            if response > task.deadline {
                task.misses += 1;
            }
            record.responses[task.offset + task.done as usize] =
                u32::try_from(response).unwrap_or(u32::MAX);
            task.done += 1;
            continue;
        }
        // Nothing pending: sleep until the earliest release still to come.
        let Some(wake) = tasks
            .iter()
            .filter(|t| t.done < jobs)
            .map(|t| t.release(t0, t.done))
            .min()
        else {
            break;
        };
        wait_until_tick(wake);
    }
    timer::stop_virt();

    let mut misses = 0;
    for (i, t) in tasks.iter().enumerate() {
        let s = &specs[i];
        let r = &mut record.responses[t.offset..t.offset + jobs as usize];
        r.sort_unstable();
        let n = r.len();
        let at = |q: usize| u64::from(r[(n * q).div_ceil(100).clamp(1, n) - 1]);
        println!(
            "rt-bench: task {} period {} us wcet {} us deadline {} us prio {}: jobs {} misses {} \
             resp max {} p99 {} med {} start max {} preempted {} stolen {}",
            i,
            s.period_us,
            s.wcet_us,
            s.deadline_us,
            s.prio,
            t.done,
            t.misses,
            Us(at(100)),
            Us(at(99)),
            Us(at(50)),
            Us(t.start_max),
            t.interrupted,
            Us(t.stolen)
        );
        misses += t.misses;
    }
    if misses != 0 {
        fail!("{} misses", misses);
    }
    println!("rt-bench: ok");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// spinners

/// Timer interrupts taken by `spin=2`.
static TICKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// The `spin=2` timer period in ticks.
static TICK_PERIOD: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

/// `spin=2`'s timer: count and re-arm relative to the previous deadline (catching up).
fn on_tick(_intid: u32) {
    use core::sync::atomic::Ordering::Relaxed;
    let period = TICK_PERIOD.load(Relaxed);
    TICKS.fetch_add(1, Relaxed);
    let mut next = timer::virt_deadline() + period;
    while next <= timer::now() {
        next += period;
    }
    timer::set_virt_deadline(next);
}

fn spin(under: &str, masked: bool, ms: u64, tick_us: u64) -> Result<(), Failed> {
    use core::sync::atomic::Ordering::Relaxed;
    let how = if masked {
        "interrupts masked"
    } else {
        "interrupts enabled"
    };
    match ms {
        0 => println!("rt-bench: spinning forever ({}, {})", under, how),
        _ => println!("rt-bench: spinning for {} ms ({}, {})", ms, under, how),
    }
    if !masked {
        timer_interrupt(on_tick)?;
        let period = timer::ticks_from_us(tick_us).max(1);
        TICK_PERIOD.store(period, Relaxed);
        timer::set_virt_after(period);
        irq::enable_local();
    }
    let start = timer::now();
    let end = start.saturating_add(timer::ticks_from_us(ms.saturating_mul(1000)));
    // No wfi, no wfe, no hypercall: only the counter is read.
    while ms == 0 || timer::now() < end {
        work(1000);
    }
    irq::disable_local();
    timer::stop_virt();
    println!(
        "rt-bench: spin done after {} ms ({} timer interrupts)",
        timer::us_from_ticks(timer::now() - start) / 1000,
        TICKS.load(Relaxed)
    );
    Ok(())
}
