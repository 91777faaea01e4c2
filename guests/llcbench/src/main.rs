//! `llcbench`: the guest of the LLC coloring experiment (`cargo xtask bench --only llc`); also
//! boots bare on QEMU `virt` (bootargs from `-append`).
//!
//! QEMU models no cache: the experiment runs with a TCG plugin (ci/llc-plugin) that simulates
//! the shared LLC on physical addresses and counts, per physical core, the accesses and misses
//! inside *windows* that this guest marks with two no-op instructions the plugin recognises:
//! [`window_start`] (`orr x9, x9, x9`) and [`window_end`] (`orr x10, x10, x10`). Nothing else
//! in this guest (or its runtime) uses these encodings, and compilers do not emit them.
//!
//! # Bootargs
//!
//! `llcbench mode=<mode> [key=N ...]` (numbers decimal or `0x` hex):
//!
//! - `mode=rt [ws_kib=256] [passes=50] [irq=1] [hvc=1] [yield=1]`: the real-time VM. Fills a
//!   working set of `ws_kib` KiB, walks it once (warm-up: every line cached), then `passes`
//!   times: (`yield=1`: `sevl; wfe` first — a yield to the other vCPUs under QEMU's
//!   round-robin, so every pass meets whatever the neighbour did in between) open a window,
//!   take one virtual timer interrupt (`irq=1`: armed to fire at once, waited for in `wfi`:
//!   under Tessera the physical interrupt, its injection and the guest's acknowledge all run
//!   inside the window, the path whose latency the RTAS'23 measurements show), make one Tessera
//!   `Version` hypercall (`hvc=1`, under Tessera only), read one word of every 64-byte line,
//!   close the window. Prints `llc_rt_pass` (CNTVCT ticks per pass) and the counter at the end
//!   (`llcbench: rt end_ticks=N`).
//! - `mode=stream [buf_kib=8192] [chunk_kib=1024] [ms=N] [yield=1]`: the neighbour. Reads one
//!   word of every line of a `buf_kib` KiB buffer, over and over; after each `chunk_kib` KiB
//!   (default: a whole 1 MiB LLC's worth) it yields (`yield=1`). Stops after `ms` milliseconds
//!   of counter time (`ms=0`: never) with `llcbench: stream done ... end_ticks=N`.
//! - `mode=stream-hvc [hvc_every_kib=4] ...`: the same, plus one Tessera `Version` hypercall
//!   after every `hvc_every_kib` KiB read (the hypervisor's code and data run on the
//!   neighbour's core all the time).
//! - `mode=bandwidth [size_kib=4096] [reps=8]`: copies `size_kib` KiB (`copy_from_slice`) `reps`
//!   times; prints `llc_memcpy` (ticks per copy) and `llc_bandwidth` (MB/s).
//!
//! Every mode first prints `boot_ticks` (one sample): `CNTVCT` when `main` starts. Tessera leaves
//! `CNTVOFF_EL2` at 0, so under `-icount` this is the time from machine reset (the hypervisor's
//! boot, building every VM) to this VM's first instructions, plus this runtime's own start.
//!
//! Figures use the bench line format, `bench: <name> median=.. max=.. min=.. samples=..
//! unit=..`, then `bench: done` and exit 0; `bench: FAILED <why>` and exit 1 on errors.
#![no_std]
#![no_main]

use core::ptr::read_volatile;
use core::sync::atomic::{AtomicBool, Ordering};

use tessera_guest_rt::dt::parse_u64;
use tessera_guest_rt::{entry, irq, println, tessera, timer, BootInfo};

entry!(main);

/// Most measured passes of `mode=rt`.
const MAX_PASSES: usize = 1000;
/// Most copies of `mode=bandwidth`.
const MAX_REPS: usize = 64;
/// Bytes between two reads of a walk: one cache line.
const LINE: usize = 64;

/// A run failed; the `bench: FAILED` line is printed.
struct Failed;

/// Prints `bench: FAILED <why>` and returns `Err(Failed)` from the enclosing function.
macro_rules! fail {
    ($($arg:tt)*) => {{
        println!("bench: FAILED {}", format_args!($($arg)*));
        return Err(Failed);
    }};
}

fn main(info: &'static BootInfo) -> u32 {
    let boot = timer::now();
    match run(info, boot) {
        Ok(()) => {
            println!("bench: done");
            0
        }
        Err(Failed) => 1,
    }
}

fn run(info: &'static BootInfo, boot: u64) -> Result<(), Failed> {
    if let Some(e) = info.dt_error {
        fail!("cannot read the device tree: {}", e);
    }
    let mode = info.bootarg("mode").unwrap_or("rt");
    println!(
        "llcbench: {} mode={} CNTFRQ {} Hz",
        if info.tessera { "tessera" } else { "bare" },
        mode,
        timer::frequency()
    );
    report("boot_ticks", &mut [boot], "ticks");
    match mode {
        "rt" => rt(info),
        "stream" => stream(info, false),
        "stream-hvc" => stream(info, true),
        "bandwidth" => bandwidth(info),
        m => fail!("unknown mode={} (rt, stream, stream-hvc, bandwidth)", m),
    }
}

/// A number from the bootargs, or `default`.
fn arg(info: &BootInfo, key: &str, default: u64) -> Result<u64, Failed> {
    match info.bootarg(key).map(parse_u64) {
        None => Ok(default),
        Some(Some(v)) => Ok(v),
        Some(None) => fail!("bad bootargs: {}=N", key),
    }
}

/// `KiB` kilobytes of free RAM (see [`BootInfo::scratch`]) as a pointer and length.
fn buffer(info: &BootInfo, what: &str, kib: u64) -> Result<(*mut u8, usize), Failed> {
    let len = match usize::try_from(kib).ok().and_then(|k| k.checked_mul(1024)) {
        Some(l) if l >= LINE => l,
        _ => fail!("{}: {} KiB is not a usable size", what, kib),
    };
    match info.scratch(len) {
        Some(r) => Ok((r.base as *mut u8, len)),
        None => fail!(
            "{}: no {} KiB of free RAM (the VM has {} KiB)",
            what,
            kib,
            info.ram_size() / 1024
        ),
    }
}

/// Opens a measurement window of the LLC plugin on this core.
#[inline(always)]
fn window_start() {
    // SAFETY: `orr x9, x9, x9` leaves x9 (and everything else) unchanged: an architectural
    // no-op. Without `nomem` it is also a compiler barrier, so the window's loads stay inside.
    unsafe { core::arch::asm!("orr x9, x9, x9", options(nostack, preserves_flags)) };
}

/// Closes the window opened by [`window_start`].
#[inline(always)]
fn window_end() {
    // SAFETY: as in `window_start`, with x10.
    unsafe { core::arch::asm!("orr x10, x10, x10", options(nostack, preserves_flags)) };
}

/// A yield to the other vCPUs under QEMU (returns at once on hardware: the event register is
/// set by `sevl`).
fn yield_cpu() {
    aarch64_cpu::asm::sevl();
    aarch64_cpu::asm::wfe();
}

/// Reads one word of every line of `[base, base + len)`; returns their wrapping sum (so the
/// reads are not optimised away).
fn walk(base: *const u8, len: usize) -> u64 {
    let mut sum = 0u64;
    let mut off = 0;
    while off + 8 <= len {
        // SAFETY: [base, base + len) is free RAM of this VM (BootInfo::scratch), mapped Normal
        // memory in the runtime's identity map; `off` is 8-byte aligned (base is 64 KiB
        // aligned) and off + 8 <= len.
        sum = sum.wrapping_add(unsafe { read_volatile(base.add(off).cast::<u64>()) });
        off += LINE;
    }
    sum
}

/// Writes `(index ^ seed)` to every word of `[base, base + len)`.
fn fill(base: *mut u8, len: usize, seed: u64) {
    for i in 0..len / 8 {
        // SAFETY: as in `walk`: free RAM of this VM, in bounds, aligned.
        unsafe { base.cast::<u64>().add(i).write_volatile(i as u64 ^ seed) };
    }
}

/// The virtual timer interrupt of the current pass was handled.
static TICKED: AtomicBool = AtomicBool::new(false);

fn on_timer(_intid: u32) {
    timer::stop_virt();
    TICKED.store(true, Ordering::SeqCst);
}

/// Arms the virtual timer to fire at once and takes its interrupt (IRQs stay masked outside:
/// `wfi` wakes on the pending interrupt, which is taken between an unmask and a mask).
/// `false` if none came within a second.
fn take_timer_irq() -> bool {
    TICKED.store(false, Ordering::SeqCst);
    let start = timer::now();
    timer::set_virt_deadline(start);
    while !TICKED.load(Ordering::SeqCst) {
        if timer::now() - start > timer::frequency() {
            timer::stop_virt();
            return false;
        }
        irq::wait();
        irq::enable_local();
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
        irq::disable_local();
    }
    true
}

/// The real-time VM: a working set walked in marked windows.
fn rt(info: &BootInfo) -> Result<(), Failed> {
    let ws_kib = arg(info, "ws_kib", 256)?;
    let passes = arg(info, "passes", 50)? as usize;
    let irq = arg(info, "irq", 1)? != 0;
    let hvc = arg(info, "hvc", 1)? != 0 && info.tessera;
    let yields = arg(info, "yield", 1)? != 0;
    if passes == 0 || passes > MAX_PASSES {
        fail!("passes={} (1..={})", passes, MAX_PASSES);
    }
    let (base, len) = buffer(info, "ws_kib", ws_kib)?;
    println!(
        "llcbench: rt working set {} KiB at {:#x} ({} lines), {} passes, irq {}, hvc {}, yield {}",
        ws_kib,
        base as usize,
        len / LINE,
        passes,
        u8::from(irq),
        u8::from(hvc),
        u8::from(yields)
    );
    irq::disable_local();
    if irq {
        if let Err(e) = irq::use_virtual_timer(on_timer) {
            fail!("cannot set up the virtual timer interrupt: {:?}", e);
        }
    }
    fill(base, len, 0x5a5a);
    let mut check = walk(base, len);
    let mut samples = [0u64; MAX_PASSES];
    // Warm up the interrupt and hypercall paths too.
    if irq && !take_timer_irq() {
        fail!("no virtual timer interrupt within 1 s");
    }
    if hvc && tessera::version().is_err() {
        fail!("the Tessera Version call failed");
    }
    let mut lost = 0u32;
    for s in samples[..passes].iter_mut() {
        if yields {
            yield_cpu();
        }
        window_start();
        let t0 = timer::now();
        if irq && !take_timer_irq() {
            lost += 1;
        }
        if hvc {
            let _ = tessera::version();
        }
        let sum = walk(base, len);
        let t1 = timer::now();
        window_end();
        check ^= sum;
        *s = t1 - t0;
    }
    let end = timer::now();
    if lost > 0 {
        fail!("{} of {} timer interrupts did not come", lost, passes);
    }
    println!("llcbench: rt end_ticks={} check={:#x}", end, check);
    report("llc_rt_pass", &mut samples[..passes], "ticks");
    Ok(())
}

/// The neighbour: streams over a large buffer (and hammers hypercalls with `hvc`).
fn stream(info: &BootInfo, hvc: bool) -> Result<(), Failed> {
    let buf_kib = arg(info, "buf_kib", 8192)?;
    let chunk_kib = arg(info, "chunk_kib", 1024)?;
    let ms = arg(info, "ms", 0)?;
    let yields = arg(info, "yield", 1)? != 0;
    let hvc_every_kib = arg(info, "hvc_every_kib", 4)?.max(1);
    let hvc = hvc && info.tessera;
    let (base, len) = buffer(info, "buf_kib", buf_kib)?;
    let chunk = match usize::try_from(chunk_kib.saturating_mul(1024)) {
        Ok(c) if c >= LINE => c.min(len),
        _ => fail!("chunk_kib={} is not a usable size", chunk_kib),
    };
    let step = if hvc {
        usize::try_from(hvc_every_kib * 1024)
            .unwrap_or(chunk)
            .min(chunk)
    } else {
        chunk
    };
    println!(
        "llcbench: stream {} KiB at {:#x}, yield every {} KiB, hypercall every {}, for {} ms",
        buf_kib,
        base as usize,
        chunk / 1024,
        if hvc { step / 1024 } else { 0 },
        ms
    );
    fill(base, len, 0xa5a5);
    let deadline = (ms > 0).then(|| timer::now() + timer::ticks_from_us(ms.saturating_mul(1000)));
    let (mut sum, mut chunks, mut sweeps, mut calls) = (0u64, 0u64, 0u64, 0u64);
    let mut off = 0;
    loop {
        let this = chunk.min(len - off);
        let mut done = 0;
        while done < this {
            let n = step.min(this - done);
            // SAFETY: off + done + n <= len: inside the buffer.
            sum = sum.wrapping_add(walk(unsafe { base.add(off + done) }, n));
            done += n;
            if hvc {
                let _ = tessera::version();
                calls += 1;
            }
        }
        chunks += 1;
        off += this;
        if off >= len {
            off = 0;
            sweeps += 1;
        }
        if deadline.is_some_and(|d| timer::now() >= d) {
            break;
        }
        if yields {
            yield_cpu();
        }
    }
    println!(
        "llcbench: stream done sweeps={} chunks={} hypercalls={} end_ticks={} check={:#x}",
        sweeps,
        chunks,
        calls,
        timer::now(),
        sum
    );
    Ok(())
}

/// Guest memory bandwidth: a large copy, timed.
fn bandwidth(info: &BootInfo) -> Result<(), Failed> {
    let size_kib = arg(info, "size_kib", 4096)?;
    let reps = arg(info, "reps", 8)? as usize;
    if reps == 0 || reps > MAX_REPS {
        fail!("reps={} (1..={})", reps, MAX_REPS);
    }
    let (base, len) = buffer(info, "size_kib", size_kib.saturating_mul(2))?;
    let half = len / 2;
    fill(base, len, 0x3c3c);
    // SAFETY: [base, base + len) is free RAM of this VM, not otherwise referenced while these
    // two disjoint halves are borrowed.
    let (src, dst) = unsafe {
        (
            core::slice::from_raw_parts(base, half),
            core::slice::from_raw_parts_mut(base.add(half), half),
        )
    };
    println!(
        "llcbench: bandwidth: {} KiB copies at {:#x}, {} times",
        half / 1024,
        base as usize,
        reps
    );
    let mut ticks = [0u64; MAX_REPS];
    let mut mbps = [0u64; MAX_REPS];
    for (t, m) in ticks[..reps].iter_mut().zip(&mut mbps[..reps]) {
        let t0 = timer::now();
        dst.copy_from_slice(src);
        let d = (timer::now() - t0).max(1);
        *t = d;
        *m = (half as u128 * u128::from(timer::frequency()) / u128::from(d) / 1_000_000) as u64;
    }
    if dst[half - 1] != src[half - 1] || dst[0] != src[0] {
        fail!("the copy is wrong");
    }
    report("llc_memcpy", &mut ticks[..reps], "ticks");
    report("llc_bandwidth", &mut mbps[..reps], "MB/s");
    Ok(())
}

/// Prints one figure line (sorts `samples`).
fn report(name: &str, samples: &mut [u64], unit: &str) {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        println!("bench: {} unavailable (no samples)", name);
        return;
    }
    println!(
        "bench: {} median={} max={} min={} samples={} unit={}",
        name,
        samples[(n - 1) / 2],
        samples[n - 1],
        samples[0],
        n,
        unit
    );
}
