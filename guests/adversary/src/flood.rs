//! `mode=console-flood`: floods the shared console from two vCPUs at once, as fast as they can.
//!
//! Each vCPU (0 and 1; vCPU 1 is started with PSCI `CPU_ON`) repeats, for `flood_ms=N`
//! milliseconds of the virtual counter (default 3000): 1024 byte writes straight to the virtual
//! PL011's data register (short lines, a line longer than the console's line limit, control
//! characters; never waiting on FR), then one `ConsoleWrite` hypercall of a full 4 KiB buffer
//! of lines. Every write must be taken (the hypercall must return `Ok(4096)`): the console may
//! drop what is over this VM's budget, but never fail or stall the writer.
//!
//! Then vCPU 0 stays quiet for `quiet_ms=N` (default 500: the console budget refills), and
//! prints `adversary: console-flood: <b> bytes via DR, <c> ConsoleWrite calls (<w> bytes) in
//! <ms> ms`.
//!
//! `flood=0` runs the same two vCPUs for the same time spinning without touching the console
//! (no `wfi`, no yield): the neighbour that `cargo xtask bench --only console` measures the
//! victim beside when there is no flood, so that both runs share the cores alike (under QEMU
//! `-icount` the vCPUs of all cores take turns on one host thread).
//!
//! `turn_us=N` (both modes; default 0: off) keeps the virtual timer of each vCPU armed N µs
//! ahead with its interrupt masked (`CNTV_CTL_EL0` ENABLE + IMASK: it never interrupts). Under
//! `-icount` QEMU ends every vCPU's turn at the next timer deadline of the machine, so the
//! vCPUs of all cores then take turns of a few µs instead of up to QEMU's 100 ms round-robin
//! kick: the flood runs interleaved with the victim's prints, as it would run beside them on
//! real cores. Without `-icount` it changes nothing.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aarch64_cpu::registers::{Writeable, CNTV_CTL_EL0, CNTV_CVAL_EL0};

use tessera_guest_rt::dt::{parse_u64, DEFAULT_CONSOLE};
use tessera_guest_rt::{cpu, println, tessera, timer, BootInfo};

use crate::Report;

/// One `ConsoleWrite` buffer, the largest the ABI accepts.
const CHUNK: usize = 4096;
/// Byte writes to DR between two hypercalls.
const DR_BURST: usize = 1024;

/// Counter value at which both vCPUs stop.
static END: AtomicU64 = AtomicU64::new(0);
/// `turn_us` in counter ticks (0: off).
static TURN: AtomicU64 = AtomicU64::new(0);
/// Whether the vCPUs write (`flood=1`) or only spin (`flood=0`).
static FLOOD: AtomicBool = AtomicBool::new(true);
/// The console's data register (the DT's PL011).
static DR: AtomicU64 = AtomicU64::new(DEFAULT_CONSOLE as u64);
/// vCPU 1's counts, published before its `DONE`.
static SECOND_DR: AtomicU64 = AtomicU64::new(0);
static SECOND_CALLS: AtomicU64 = AtomicU64::new(0);
static SECOND_FAILED: AtomicBool = AtomicBool::new(false);
static SECOND_DONE: AtomicBool = AtomicBool::new(false);
/// vCPU 1's counter at its last round (for the report when it does not finish).
static SECOND_SEEN: AtomicU64 = AtomicU64::new(0);

/// The `ConsoleWrite` buffer of each vCPU (written once, then only read by the hypervisor).
static mut BUFFERS: [[u8; CHUNK]; 2] = [[0; CHUNK]; 2];

/// What one vCPU did.
#[derive(Default)]
struct Counts {
    dr_bytes: u64,
    calls: u64,
    failed: bool,
}

/// A number from the bootargs, or `default`.
fn arg(info: &BootInfo, key: &str, default: u64, report: &mut Report) -> u64 {
    match info.bootarg(key).map(parse_u64) {
        None => default,
        Some(Some(v)) => v,
        Some(None) => {
            println!("adversary: bad {}=N in bootargs", key);
            report.fail();
            default
        }
    }
}

pub fn console_flood(info: &'static BootInfo, report: &mut Report) {
    let flood = arg(info, "flood", 1, report) != 0;
    let ms = arg(info, "flood_ms", 3000, report);
    let quiet_ms = arg(info, "quiet_ms", 500, report);
    let turn_us = arg(info, "turn_us", 0, report);
    TURN.store(timer::ticks_from_us(turn_us), Ordering::Relaxed);
    if !info.tessera {
        println!("adversary: console-flood needs Tessera (the ConsoleWrite hypercall)");
        report.fail();
        return;
    }
    if info.cpu_count() < 2 {
        println!("adversary: console-flood needs 2 vCPUs");
        report.fail();
        return;
    }
    FLOOD.store(flood, Ordering::Relaxed);
    DR.store(
        info.console.unwrap_or(DEFAULT_CONSOLE) as u64,
        Ordering::Relaxed,
    );
    for cpu in 0..2 {
        fill_buffer(cpu);
    }
    println!(
        "adversary: console-flood: {} for {} ms on 2 vCPUs (turn_us={})",
        if flood { "flooding" } else { "spinning" },
        ms,
        turn_us
    );
    let start = timer::now();
    END.store(
        start.saturating_add(timer::ticks_from_us(ms.saturating_mul(1000))),
        Ordering::Release,
    );
    if let Err(e) = cpu::start(1, second) {
        println!("adversary: console-flood: cannot start vCPU 1: {:?}", e);
        report.fail();
        return;
    }
    let mine = work(0);
    // vCPU 1 stops at the same deadline; allow for a loaded host that runs it late.
    let deadline = END.load(Ordering::Relaxed) + timer::ticks_from_us(10_000_000);
    while !SECOND_DONE.load(Ordering::Acquire) {
        if timer::now() > deadline {
            println!(
                "adversary: console-flood: vCPU 1 did not finish (end {}, now {}, its last round at {}, {} calls)",
                END.load(Ordering::Relaxed),
                timer::now(),
                SECOND_SEEN.load(Ordering::Relaxed),
                SECOND_CALLS.load(Ordering::Relaxed)
            );
            report.fail();
            return;
        }
        core::hint::spin_loop();
    }
    let elapsed_ms = timer::us_from_ticks(timer::now() - start) / 1000;
    // Quiet: the console budget refills, so the lines below get through.
    let quiet_end = timer::now() + timer::ticks_from_us(quiet_ms.saturating_mul(1000));
    while timer::now() < quiet_end {
        core::hint::spin_loop();
    }
    let dr_bytes = mine.dr_bytes + SECOND_DR.load(Ordering::Relaxed);
    let calls = mine.calls + SECOND_CALLS.load(Ordering::Relaxed);
    println!(
        "adversary: console-flood: {} bytes via DR, {} ConsoleWrite calls ({} bytes) in {} ms",
        dr_bytes,
        calls,
        calls * CHUNK as u64,
        elapsed_ms
    );
    if mine.failed || SECOND_FAILED.load(Ordering::Relaxed) {
        println!(
            "adversary: console-flood: a ConsoleWrite of 4096 own bytes did not return Ok(4096)"
        );
        report.fail();
    }
    if flood && (dr_bytes == 0 || calls == 0) {
        println!("adversary: console-flood: nothing was written");
        report.fail();
    }
}

/// vCPU 1's body.
fn second(_index: usize) {
    let c = work(1);
    SECOND_DR.store(c.dr_bytes, Ordering::Relaxed);
    SECOND_CALLS.store(c.calls, Ordering::Relaxed);
    SECOND_FAILED.store(c.failed, Ordering::Relaxed);
    SECOND_DONE.store(true, Ordering::Release);
}

/// Lines of 64 bytes naming the vCPU, one control character in each.
fn fill_buffer(cpu: usize) {
    // SAFETY: called on vCPU 0 before vCPU 1 starts, so nothing else touches the buffers.
    let buf = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS[cpu]) };
    for (i, b) in buf.iter_mut().enumerate() {
        *b = match i % 64 {
            63 => b'\n',
            0..=15 => b"flood hvc cpu0  "[i % 64],
            16 => 0x1b,
            _ => b'a' + (i % 26) as u8,
        };
    }
    buf[13] = b'0' + cpu as u8;
}

/// The byte written to DR as number `n` of a burst: 40-byte lines, every fourth burst one
/// line of 300 bytes without a newline (longer than the console's line limit).
fn dr_byte(cpu: usize, burst: u64, n: usize) -> u8 {
    if burst % 4 == 3 && n < 300 {
        return if n == 299 { b'\n' } else { b'L' };
    }
    match n % 40 {
        39 => b'\n',
        0..=12 => b"flood dr cpu0"[n % 40] + u8::from(n % 40 == 12) * cpu as u8,
        13 => 0x07,
        k => b'A' + (k % 26) as u8,
    }
}

/// With `turn_us`: arms the virtual timer that far ahead, masked (a deadline for QEMU only).
fn next_turn(turn: u64) {
    if turn != 0 {
        CNTV_CVAL_EL0.set(timer::now().wrapping_add(turn));
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::SET);
    }
}

/// Floods (or spins) until `END`.
fn work(cpu: usize) -> Counts {
    let end = END.load(Ordering::Acquire);
    let turn = TURN.load(Ordering::Relaxed);
    let mut c = Counts::default();
    if !FLOOD.load(Ordering::Relaxed) {
        let mut spins = 0u64;
        while timer::now() < end {
            next_turn(turn);
            spins = core::hint::black_box(spins.wrapping_add(1));
        }
        timer::stop_virt();
        return c;
    }
    let dr = DR.load(Ordering::Relaxed) as *mut u32;
    // SAFETY: only read by the hypervisor from now on (fill_buffer ran before vCPU 1 started).
    let buf: &[u8; CHUNK] = unsafe { &*core::ptr::addr_of!(BUFFERS[cpu]) };
    let mut burst = 0u64;
    while timer::now() < end {
        for n in 0..DR_BURST {
            if n % 64 == 0 {
                next_turn(turn);
            }
            // SAFETY: `dr` is the console PL011's data register (the DT's, or the `virt`
            // default), in the runtime's Device mapping; a write there only emits a byte.
            unsafe { dr.write_volatile(u32::from(dr_byte(cpu, burst, n))) };
        }
        c.dr_bytes += DR_BURST as u64;
        burst += 1;
        next_turn(turn);
        match tessera::console_write(buf) {
            Ok(n) if n == CHUNK => {}
            _ => c.failed = true,
        }
        c.calls += 1;
        if cpu == 1 {
            SECOND_SEEN.store(timer::now(), Ordering::Relaxed);
            SECOND_CALLS.store(c.calls, Ordering::Relaxed);
        }
    }
    timer::stop_virt();
    c
}
