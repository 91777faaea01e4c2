//! `mode=console-victim`: times the VM's own console prints, for `cargo xtask bench --only
//! console` and the `console-flood-*` scenarios (a flooding VM on other cores).
//!
//! Waits `delay_ms=N` (default 500; the flood is under way by then), then prints `lines=N`
//! (default 100, at most [`MAX_LINES`]) lines `bench: line <i> <PAYLOAD>` with `println!`,
//! each timed with `CNTVCT` (the whole call: the runtime's FR polls and DR writes, each a trap
//! to the hypervisor's virtual PL011). Prints figures `console_print` (ticks per line) and
//! `console_print_p99` (its 99th percentile as a one-sample figure). The scenario checks
//! that every line arrived whole and in order; 100 lines stay well within a VM's console
//! budget, so none may be dropped.
//!
//! `yield=1`: before each print, `sevl; wfe` (returns at once on hardware; a yield to the next
//! vCPU under QEMU). Under `-icount` QEMU runs the vCPUs of all cores in turns on one thread, so
//! each print then starts after the other vCPUs have had a turn and were stopped wherever
//! QEMU's round-robin stopped them (inside the hypervisor, holding a lock, mid-line): every
//! sample meets the flood in another state. Without it all prints would fit in one turn while
//! the flood stands still.

use tessera_guest_rt::dt::parse_u64;
use tessera_guest_rt::{println, timer, BootInfo};

use super::{report, Failed};

/// Most lines one run prints.
pub const MAX_LINES: usize = 400;
/// The fixed text of every timed line.
pub const PAYLOAD: &str = "the quick brown fox jumps 0123456789";

/// A number from the bootargs, or `default`.
fn arg(info: &BootInfo, key: &str, default: u64) -> Result<u64, Failed> {
    match info.bootarg(key).map(parse_u64) {
        None => Ok(default),
        Some(Some(v)) => Ok(v),
        Some(None) => fail!("bad bootargs: {}=N", key),
    }
}

pub fn victim(info: &'static BootInfo) -> Result<(), Failed> {
    let lines = arg(info, "lines", 100)? as usize;
    let delay_ms = arg(info, "delay_ms", 500)?;
    if lines == 0 || lines > MAX_LINES {
        fail!("lines={} (1..={})", lines, MAX_LINES);
    }
    println!(
        "bench: console-victim: {} lines after {} ms, CNTFRQ {} Hz",
        lines,
        delay_ms,
        timer::frequency()
    );
    let start = timer::now() + timer::ticks_from_us(delay_ms.saturating_mul(1000));
    while timer::now() < start {
        core::hint::spin_loop();
    }
    println!("bench: console-victim: measuring");
    let yield_first = arg(info, "yield", 0)? != 0;
    let mut samples = [0u64; MAX_LINES];
    for (i, s) in samples[..lines].iter_mut().enumerate() {
        if yield_first {
            aarch64_cpu::asm::sevl();
            aarch64_cpu::asm::wfe();
        }
        let t0 = timer::now();
        println!("bench: line {:04} {}", i, PAYLOAD);
        *s = timer::now() - t0;
    }
    let s = &mut samples[..lines];
    s.sort_unstable();
    let p99 = s[(lines * 99).div_ceil(100) - 1];
    report("console_print", s);
    println!(
        "bench: console_print_p99 median={} max={} min={} samples=1 unit=ticks",
        p99, p99, p99
    );
    Ok(())
}
