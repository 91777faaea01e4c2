//! `hello`: the smallest useful Tessera guest (also boots bare on QEMU `virt`).
//!
//! Prints its view of the machine, tests a few MiB of its RAM, optionally echoes `echo=N` lines
//! of console input (bootargs; `hello: waiting for input`, then `hello: echo "<line>"` each,
//! or `hello: FAILED no input` after 20 s), optionally burns `work=N` loop iterations, starts
//! every other CPU of its DTB with PSCI `CPU_ON` (each prints a line and powers off), waits for
//! all of them to be off, and exits 0 (`hello: ok`).
//! On any failure it prints `hello: FAILED <why>` and exits 1.
//!
//! `race=N race-with=K` (under Tessera) races the VM lifecycle instead: on every boot vCPU 0
//! starts vCPU 1, both wait for a flag in the VM's own RAM, then vCPU 0 calls SYSTEM_RESET
//! while vCPU 1 calls (after a delay that varies per round) `off` SYSTEM_OFF, `shutdown` the
//! Shutdown hypercall, `cpuoff` CPU_OFF, `reset` SYSTEM_RESET too, or `cpuon` CPU_ON of vCPU 2
//! (3 vCPUs). After N resets (the ResetCount hypercall) it prints `hello: race done after N
//! resets` and ends as usual; `off`/`shutdown` end the VM the first time they win.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTVCT_EL0};
use tessera_guest_rt::console::{self, ReadLineError};
use tessera_guest_rt::dt::parse_u64;
use tessera_guest_rt::psci::{self, AffinityState};
use tessera_guest_rt::{abi, cpu, entry, println, tessera, timer, BootInfo, MemRegion, MAX_CPUS};

entry!(main);

/// Bytes of RAM the memory test covers.
const MEMTEST_BYTES: usize = 4 << 20;
/// How long to wait for the other CPUs to power off.
const CPU_TIMEOUT_SECS: u64 = 10;
/// How long `echo=N` waits for its lines (all of them together).
const ECHO_TIMEOUT_SECS: u64 = 20;
/// Longest echoed line; the rest of a longer line is dropped.
const ECHO_LINE_MAX: usize = 128;

/// Set by each CPU after it printed its line.
static DONE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

fn main(info: &'static BootInfo) -> u32 {
    match run(info) {
        Ok(()) => {
            println!("hello: ok");
            0
        }
        Err(Failed) => 1,
    }
}

/// A check failed (its `hello: FAILED <why>` line is already printed).
struct Failed;

/// Prints `hello: FAILED <why>` and returns `Err(Failed)` from the enclosing function.
macro_rules! fail {
    ($($arg:tt)*) => {{
        println!("hello: FAILED {}", format_args!($($arg)*));
        return Err(Failed);
    }};
}

fn run(info: &'static BootInfo) -> Result<(), Failed> {
    if let Some(v) = info.bootarg("race") {
        return race(info, v);
    }
    println!("hello: hello, world");
    if let Some(e) = info.dt_error {
        fail!("cannot read the device tree at {:#x}: {}", info.dtb.base, e);
    }
    let n = info.cpu_count();
    if n == 0 {
        fail!("the device tree lists no cpus");
    }
    if info.cpus_in_dt > n {
        println!(
            "hello: the device tree lists {} cpus; using the first {}",
            info.cpus_in_dt, n
        );
    }

    if info.tessera {
        let (major, minor) = match tessera::version() {
            Ok(v) => v,
            Err(e) => fail!("Tessera Version hypercall failed: {:?}", e),
        };
        if major != abi::VERSION_MAJOR {
            fail!(
                "Tessera ABI {}.{}, expected {}.x",
                major,
                minor,
                abi::VERSION_MAJOR
            );
        }
        let id = match tessera::identity() {
            Ok(id) => id,
            Err(e) => fail!("Identity hypercall failed: {:?}", e),
        };
        println!(
            "hello: running under Tessera (ABI {}.{}): vm {}, vcpu {} of {}",
            major, minor, id.vm, id.vcpu, id.vcpus
        );
        if id.vcpus != info.cpus_in_dt as u64 {
            fail!(
                "Identity says {} vcpus, the device tree lists {}",
                id.vcpus,
                info.cpus_in_dt
            );
        }
        if id.vcpu != info.boot_cpu as u64 {
            fail!(
                "Identity says vcpu {}, MPIDR says cpu {}",
                id.vcpu,
                info.boot_cpu
            );
        }
    } else {
        println!("hello: running on bare metal (no hypervisor), {} cpus", n);
    }

    let Some(conduit) = info.psci else {
        fail!("no PSCI node in the device tree")
    };
    let (pmaj, pmin) = psci::version(conduit);
    println!("hello: PSCI {}.{} via {}", pmaj, pmin, conduit.name());

    if info.ram.is_empty() {
        fail!("no memory in the device tree");
    }
    println!("hello: RAM {} MiB", info.ram_size() >> 20);
    for r in &info.ram {
        println!("hello:   ram {} ({} MiB)", r, r.size >> 20);
    }
    println!("hello: image {}, dtb {}", info.image, info.dtb);
    if !info.bootargs().is_empty() {
        println!("hello: bootargs \"{}\"", info.bootargs());
    }

    memory_test(info)?;

    let echo = match info.bootarg("echo") {
        None => 0,
        Some(v) => match parse_u64(v) {
            Some(n) => n,
            None => fail!("bad echo={} in bootargs", v),
        },
    };
    if echo > 0 {
        echo_lines(echo)?;
    }

    let resets = match info.bootarg("reset") {
        None => 0,
        Some(v) => match parse_u64(v) {
            Some(r) => r,
            None => fail!("bad reset={} in bootargs", v),
        },
    };
    if resets > 0 {
        if !info.tessera {
            fail!("reset={} needs Tessera (it counts the resets)", resets);
        }
        let done = match tessera::reset_count() {
            Ok(n) => n,
            Err(e) => fail!("ResetCount hypercall failed: {:?}", e),
        };
        if done < resets {
            println!("hello: reset {} of {}", done + 1, resets);
            // Reset while the other CPUs run: the hypervisor must stop them too.
            start_others(info)?;
            let err = psci::system_reset(conduit);
            fail!("SYSTEM_RESET returned {:?}", err);
        }
        println!("hello: booted again after {} reset(s)", done);
    }

    let work = match info.bootarg("work") {
        None => 0,
        Some(v) => match parse_u64(v) {
            Some(w) => w,
            None => fail!("bad work={} in bootargs", v),
        },
    };
    if work > 0 {
        let t0 = CNTVCT_EL0.get();
        busy(work);
        let ticks = CNTVCT_EL0.get().wrapping_sub(t0);
        println!(
            "hello: work={} done in {} us",
            work,
            ticks * 1_000_000 / CNTFRQ_EL0.get().max(1)
        );
    }

    cpus(info)
}

/// Writes and reads back patterns over a few MiB of free RAM (or less if the VM is small).
fn memory_test(info: &BootInfo) -> Result<(), Failed> {
    let mut len = MEMTEST_BYTES;
    let region = loop {
        if let Some(r) = info.scratch(len) {
            break r;
        }
        len /= 2;
        if len < 64 << 10 {
            fail!("no free RAM to test");
        }
    };
    match test_region(region) {
        Ok(()) => {
            println!(
                "hello: memory test {} ({} KiB): ok",
                region,
                region.size >> 10
            );
            Ok(())
        }
        Err((addr, wrote, read)) => {
            println!(
                "hello: memory test {} ({} KiB): failed",
                region,
                region.size >> 10
            );
            fail!(
                "memory test: wrote {:#x} at {:#x}, read back {:#x}",
                wrote,
                addr,
                read
            )
        }
    }
}

/// Pattern passes over `region`: the first mismatch as `(address, written, read)`.
fn test_region(region: MemRegion) -> Result<(), (usize, u64, u64)> {
    let words = region.size / 8;
    let base = region.base as *mut u64;
    let patterns: [fn(usize) -> u64; 4] = [
        |_| 0x5555_5555_5555_5555,
        |_| 0xaaaa_aaaa_aaaa_aaaa,
        |i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x0123_4567_89ab_cdef,
        |i| !(i as u64),
    ];
    for pattern in patterns {
        for i in 0..words {
            // SAFETY: `region` comes from `BootInfo::scratch`: RAM of this VM that holds
            // neither the image, its stacks, nor the DTB, and nothing else in this program
            // uses it; `i < words` keeps the access inside it, 8-byte aligned.
            unsafe { base.add(i).write_volatile(pattern(i)) };
        }
        for i in 0..words {
            // SAFETY: as above.
            let got = unsafe { base.add(i).read_volatile() };
            if got != pattern(i) {
                return Err((region.base + 8 * i, pattern(i), got));
            }
        }
    }
    Ok(())
}

/// Reads `n` lines of console input and prints each back as `hello: echo "<line>"`.
fn echo_lines(n: u64) -> Result<(), Failed> {
    let deadline = timer::now() + ECHO_TIMEOUT_SECS * timer::frequency();
    println!("hello: waiting for input ({} line(s))", n);
    let mut buf = [0u8; ECHO_LINE_MAX];
    for i in 0..n {
        match console::read_line(&mut buf, deadline) {
            Ok(len) => println!("hello: echo \"{}\"", buf[..len].escape_ascii()),
            Err(ReadLineError::Timeout { len }) => fail!(
                "no input: {} of {} line(s) after {} s (partial line: \"{}\")",
                i,
                n,
                ECHO_TIMEOUT_SECS,
                buf[..len].escape_ascii()
            ),
        }
    }
    Ok(())
}

/// Burns `n` loop iterations.
fn busy(n: u64) {
    for i in 0..n {
        core::hint::black_box(i);
    }
}

/// This CPU's line.
fn greet(index: usize) {
    println!("hello from vcpu {} (mpidr {:#x})", index, cpu::mpidr());
    if let Some(done) = DONE.get(index) {
        done.store(true, Ordering::SeqCst);
    }
}

/// Starts every other CPU, then waits until all are off.
/// Starts every other CPU spinning forever (until the VM is reset under it).
fn start_others(info: &BootInfo) -> Result<(), Failed> {
    let me = cpu::index();
    for i in (0..info.cpu_count()).filter(|&i| i != me) {
        if let Err(e) = cpu::start(i, spin_forever) {
            fail!("CPU_ON of cpu {} (mpidr {:#x}): {:?}", i, info.cpus[i], e);
        }
    }
    Ok(())
}

fn spin_forever(index: usize) {
    println!("hello: vcpu {} spinning until the reset", index);
    loop {
        core::hint::spin_loop();
    }
}

fn cpus(info: &BootInfo) -> Result<(), Failed> {
    let me = cpu::index();
    let n = info.cpu_count();
    greet(me);
    for i in (0..n).filter(|&i| i != me) {
        if let Err(e) = cpu::start(i, greet) {
            fail!("CPU_ON of cpu {} (mpidr {:#x}): {:?}", i, info.cpus[i], e);
        }
    }
    let freq = CNTFRQ_EL0.get().max(1);
    let deadline = CNTVCT_EL0.get() + CPU_TIMEOUT_SECS * freq;
    for i in (0..n).filter(|&i| i != me) {
        loop {
            let off = match cpu::state(i) {
                Ok(AffinityState::Off) => true,
                Ok(_) => false,
                Err(e) => fail!("AFFINITY_INFO of cpu {}: {:?}", i, e),
            };
            let said_hello = DONE[i].load(Ordering::SeqCst);
            if off && said_hello {
                break;
            }
            if CNTVCT_EL0.get() > deadline {
                if off {
                    // Off without having printed: it never ran, or died first.
                    fail!("cpu {} is off but never said hello", i);
                }
                fail!("cpu {} still on after {} s", i, CPU_TIMEOUT_SECS);
            }
            busy(1000);
        }
    }
    println!("hello: all {} vcpus done", n);
    Ok(())
}

/// What vCPU 1 does against vCPU 0's SYSTEM_RESET in `race=N` mode.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum RaceWith {
    Off = 1,
    Shutdown = 2,
    CpuOff = 3,
    Reset = 4,
    CpuOn = 5,
}

/// Race mode state, in the VM's own RAM (wiped and reloaded by every reset).
static RACE_WITH: AtomicU8 = AtomicU8::new(0);
static RACE_DELAY: AtomicU64 = AtomicU64::new(0);
static RACER_READY: AtomicBool = AtomicBool::new(false);
static RACE_GO: AtomicBool = AtomicBool::new(false);

fn race(info: &'static BootInfo, rounds: &str) -> Result<(), Failed> {
    let Some(rounds) = parse_u64(rounds) else {
        fail!("bad race={} in bootargs", rounds)
    };
    let (with, name) = match info.bootarg("race-with") {
        Some("off") => (RaceWith::Off, "SYSTEM_OFF"),
        Some("shutdown") => (RaceWith::Shutdown, "Shutdown"),
        Some("cpuoff") => (RaceWith::CpuOff, "CPU_OFF"),
        Some("reset") => (RaceWith::Reset, "SYSTEM_RESET"),
        Some("cpuon") => (RaceWith::CpuOn, "CPU_ON of vcpu 2"),
        other => fail!("bad race-with={:?} in bootargs", other),
    };
    if !info.tessera {
        fail!("race=N needs Tessera (it counts the resets)");
    }
    let need = if with == RaceWith::CpuOn { 3 } else { 2 };
    if info.cpu_count() < need || cpu::index() != 0 {
        fail!("race-with={} needs {} vcpus, booting on vcpu 0", name, need);
    }
    let Some(conduit) = info.psci else {
        fail!("no PSCI node in the device tree")
    };
    let done = match tessera::reset_count() {
        Ok(n) => n,
        Err(e) => fail!("ResetCount hypercall failed: {:?}", e),
    };
    if done == 0 {
        println!(
            "hello: racing SYSTEM_RESET against {} for {} rounds",
            name, rounds
        );
    }
    if done >= rounds {
        println!("hello: race done after {} resets", done);
        return Ok(());
    }
    RACE_WITH.store(with as u8, Ordering::SeqCst);
    // The racer's head start varies from round to round around the point where the two calls
    // reach the hypervisor together.
    RACE_DELAY.store((done * 37) % 97, Ordering::SeqCst);
    if let Err(e) = cpu::start(1, racer) {
        fail!("CPU_ON of the racer: {:?}", e);
    }
    let deadline = CNTVCT_EL0.get() + CPU_TIMEOUT_SECS * CNTFRQ_EL0.get().max(1);
    while !RACER_READY.load(Ordering::Acquire) {
        if CNTVCT_EL0.get() > deadline {
            fail!("the racer never started (round {})", done + 1);
        }
        core::hint::spin_loop();
    }
    RACE_GO.store(true, Ordering::Release);
    let err = psci::system_reset(conduit);
    if matches!(with, RaceWith::Off | RaceWith::Shutdown | RaceWith::Reset) {
        // The racer won: the VM is off or being reset by vCPU 1, which stops this vCPU.
        loop {
            core::hint::spin_loop();
        }
    }
    fail!("SYSTEM_RESET returned {:?} (round {})", err, done + 1)
}

/// vCPU 1 in race mode.
fn racer(_index: usize) {
    let Some(conduit) = tessera_guest_rt::boot_info().psci else {
        return;
    };
    RACER_READY.store(true, Ordering::Release);
    while !RACE_GO.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    busy(RACE_DELAY.load(Ordering::Relaxed));
    match RACE_WITH.load(Ordering::Relaxed) {
        1 => {
            let _ = psci::system_off(conduit);
        }
        2 => {
            let _ = tessera::shutdown(0);
        }
        3 => {
            let _ = psci::cpu_off(conduit);
        }
        4 => {
            let _ = psci::system_reset(conduit);
        }
        _ => {
            let _ = cpu::start(2, spin_quietly);
        }
    }
    // Refused: the reset won and stops this vCPU.
    loop {
        core::hint::spin_loop();
    }
}

/// vCPU 2 of `race-with=cpuon`: spins until the reset stops it.
fn spin_quietly(_index: usize) {
    loop {
        core::hint::spin_loop();
    }
}
