//! `irqtest`: interrupt tests for Tessera's vGIC (also boots bare on QEMU `virt`, GICv2 or v3).
//!
//! Runs the one test named by the bootargs' `test=<name>`, prints `irqtest: <name>: ok` and
//! exits 0, or `irqtest: <name>: FAILED <why>` and exits 1:
//!
//! - `timer`: the virtual timer at 1 kHz for 200 ms (measured with CNTVCT); the tick count
//!   must be within 5% of 200.
//! - `sgi-pingpong`: 1000 round trips of an SGI ping (CPU 0 → CPU 1) and pong (back), each
//!   checked to arrive on the right CPU (needs two CPUs).
//! - `rtc-alarm`: the PL031 RTC (`arm,pl031`, interrupt from the DT): alarm at RTCDR + 2 s,
//!   the interrupt must come within 5 s.
//! - `poke-foreign`: `foreign=<INTID>` names an SPI of another VM: setting its enable, pending,
//!   priority and target/route in the distributor must read back 0 (RAZ/WI) and no interrupt
//!   may arrive. Needs Tessera (bare: `skipped`, exit 0; with `force=1` it runs bare and
//!   must fail, which checks the checks).
//! - `priority`: ten SGIs to itself with distinct priorities assigned in scrambled order,
//!   made pending with IRQs masked (more than QEMU's four list registers); once unmasked they
//!   must arrive exactly once each, most urgent (lowest value) first.
#![no_std]
#![no_main]

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use tessera_guest_rt::dt::parse_u64;
use tessera_guest_rt::event::{signal, wait_until};
use tessera_guest_rt::gic::{self, GICD_IPRIORITYR, GICD_IROUTER, GICD_ISENABLER};
use tessera_guest_rt::gic::{GICD_ISPENDR, GICD_ITARGETSR};
use tessera_guest_rt::psci::AffinityState;
use tessera_guest_rt::{cpu, entry, irq, println, timer, BootInfo, GicVersion};

entry!(main);

/// A test failed (its `irqtest: <name>: FAILED <why>` line is already printed).
struct Fail;

impl Fail {
    /// Prints the failure line of the running test.
    fn new(why: fmt::Arguments<'_>) -> Self {
        let name = TESTS
            .get(CURRENT.load(Ordering::SeqCst))
            .map_or("?", |t| t.0);
        println!("irqtest: {}: FAILED {}", name, why);
        Fail
    }
}

/// Prints the failure line and returns `Err(Fail)` from the enclosing function.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err(Fail::new(format_args!($($arg)*)))
    };
}

/// Index in [`TESTS`] of the running test.
static CURRENT: AtomicUsize = AtomicUsize::new(0);

/// How a test ended without failing.
enum Pass {
    Ok,
    Skipped(&'static str),
}

type Outcome = Result<Pass, Fail>;

/// Converts a GIC error into a failure with context.
fn gic_err(what: &'static str) -> impl Fn(irq::GicError) -> Fail {
    move |e| Fail::new(format_args!("{}: {:?}", what, e))
}

/// A test.
type TestFn = fn(&'static BootInfo) -> Outcome;

const TESTS: [(&str, TestFn); 5] = [
    ("timer", test_timer),
    ("sgi-pingpong", test_sgi_pingpong),
    ("rtc-alarm", test_rtc_alarm),
    ("poke-foreign", test_poke_foreign),
    ("priority", test_priority),
];

fn main(info: &'static BootInfo) -> u32 {
    let Some(name) = info.bootarg("test") else {
        println!("irqtest: FAILED no test=<name> in the bootargs");
        return 1;
    };
    let Some(index) = TESTS.iter().position(|(n, _)| *n == name) else {
        println!("irqtest: {}: FAILED unknown test", name);
        return 1;
    };
    CURRENT.store(index, Ordering::SeqCst);
    let (name, test) = TESTS[index];
    println!(
        "irqtest: {}: start ({}, {} cpus)",
        name,
        if info.tessera { "tessera" } else { "bare" },
        info.cpu_count()
    );
    let outcome = match irq::init() {
        Ok(()) => test(info),
        Err(e) => Err(Fail::new(format_args!("irq::init: {:?}", e))),
    };
    irq::disable_local();
    match outcome {
        Ok(Pass::Ok) => {
            println!("irqtest: {}: ok", name);
            reset_if_asked(info, name);
            0
        }
        Ok(Pass::Skipped(why)) => {
            println!("irqtest: {}: skipped ({})", name, why);
            0
        }
        Err(Fail) => 1,
    }
}

/// `reset=N` in the bootargs (under Tessera): after a passing run, reset the VM from inside a
/// virtual timer interrupt handler, until it has been reset N times (Tessera's ResetCount).
fn reset_if_asked(info: &'static BootInfo, name: &str) {
    let Some(n) = info.bootarg("reset").and_then(parse_u64) else {
        return;
    };
    if !info.tessera {
        return;
    }
    let done = tessera_guest_rt::tessera::reset_count().unwrap_or(u64::MAX);
    if done >= n {
        println!("irqtest: {}: passed again after {} reset(s)", name, done);
        return;
    }
    println!(
        "irqtest: {}: resetting from a timer interrupt ({} of {})",
        name,
        done + 1,
        n
    );
    RESET_IN_HANDLER.store(true, Ordering::SeqCst);
    let intid = timer::virt_intid();
    irq::set_handler(intid, Some(on_tick));
    if irq::enable(intid).is_err() {
        println!("irqtest: FAILED cannot enable the timer for the reset");
        tessera_guest_rt::exit(1);
    }
    timer::set_virt_after(timer::ticks_from_us(1000));
    irq::enable_local();
    loop {
        irq::wait();
    }
}

// ---------------------------------------------------------------------------------------------
// timer

/// Ticks counted by the timer handler.
static TICKS: AtomicU32 = AtomicU32::new(0);
/// Timer interrupts taken while the timer condition did not hold (CNTV_CTL.ISTATUS clear):
/// not ticks. A guest must ignore them, as Linux's arch timer driver does; counted and
/// reported, they say how often the hypervisor delivered a stale instance.
static SPURIOUS: AtomicU32 = AtomicU32::new(0);
/// Timer period in counter ticks.
static PERIOD: AtomicU64 = AtomicU64::new(0);
/// End of the measured window (counter value): only deadlines up to it are ticks of the test,
/// even when the handler runs late (host load) and catches up past it.
static WINDOW_END: AtomicU64 = AtomicU64::new(u64::MAX);

/// Test length in milliseconds.
const TIMER_MS: u64 = 200;
/// Timer rate.
const TIMER_HZ: u64 = 1000;

/// Set when the next timer interrupt must reset the VM from inside its handler (`reset=N`).
static RESET_IN_HANDLER: AtomicBool = AtomicBool::new(false);

fn on_tick(_intid: u32) {
    if RESET_IN_HANDLER.load(Ordering::Relaxed) {
        // The timer interrupt is active (hardware-linked under Tessera) and never ended: the
        // reset must still leave the next boot a working timer.
        let conduit = tessera_guest_rt::boot_info().psci;
        if let Some(c) = conduit {
            let e = tessera_guest_rt::psci::system_reset(c);
            println!("irqtest: FAILED SYSTEM_RESET returned {:?}", e);
        }
        tessera_guest_rt::exit(1);
    }
    // Next deadline relative to the previous one: no drift. A late tick catches up here, in
    // the handler, rather than by leaving the timer asserted: a level interrupt still raised
    // at EOI is legal, but QEMU's GICv2 does not re-signal a hardware-linked one that the
    // guest deactivates while it is still raised (it waits for the next GIC event).
    if !timer::virt_fired() {
        SPURIOUS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let period = PERIOD.load(Ordering::Relaxed);
    let end = WINDOW_END.load(Ordering::Relaxed);
    let due = timer::virt_deadline();
    if due <= end {
        TICKS.fetch_add(1, Ordering::Relaxed);
    }
    let mut next = due + period;
    while next <= timer::now() {
        if next <= end {
            TICKS.fetch_add(1, Ordering::Relaxed);
        }
        next += period;
    }
    timer::set_virt_deadline(next);
}

fn test_timer(_info: &'static BootInfo) -> Outcome {
    let intid = timer::virt_intid();
    let freq = timer::frequency();
    let period = freq / TIMER_HZ;
    PERIOD.store(period, Ordering::SeqCst);
    irq::set_handler(intid, Some(on_tick));
    irq::enable(intid).map_err(gic_err("enable the timer interrupt"))?;

    let start = timer::now();
    let end = start + TIMER_MS * freq / 1000;
    WINDOW_END.store(end, Ordering::SeqCst);
    timer::set_virt_deadline(start + period);
    irq::enable_local();
    while timer::now() < end {
        irq::wait();
    }
    irq::disable_local();
    timer::stop_virt();
    let ticks = u64::from(TICKS.load(Ordering::SeqCst));
    let expected = TIMER_MS * TIMER_HZ / 1000;
    let (lo, hi) = (expected * 95 / 100, expected * 105 / 100);
    println!(
        "irqtest: timer: {} ticks in {} ms at {} Hz (INTID {}, CNTFRQ {} Hz; expected {}..={}), {} spurious",
        ticks,
        TIMER_MS,
        TIMER_HZ,
        intid,
        freq,
        lo,
        hi,
        SPURIOUS.load(Ordering::SeqCst)
    );
    if !(lo..=hi).contains(&ticks) {
        fail!("{} ticks, expected {}..={}", ticks, lo, hi);
    }
    Ok(Pass::Ok)
}

// ---------------------------------------------------------------------------------------------
// sgi-pingpong

/// SGI sent by the main CPU to the peer.
const PING: u32 = 1;
/// SGI sent back by the peer.
const PONG: u32 = 2;
/// Round trips.
const ROUNDS: u32 = 1000;

static MAIN_CPU: AtomicUsize = AtomicUsize::new(0);
static PEER_CPU: AtomicUsize = AtomicUsize::new(0);
static PEER_READY: AtomicBool = AtomicBool::new(false);
static PEER_ERROR: AtomicU32 = AtomicU32::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static PINGS: AtomicU32 = AtomicU32::new(0);
static PONGS: AtomicU32 = AtomicU32::new(0);
/// CPU on which a ping or pong arrived wrongly (+1; 0 = none).
static WRONG_CPU: AtomicUsize = AtomicUsize::new(0);

fn on_ping(_intid: u32) {
    let me = cpu::index();
    if me != PEER_CPU.load(Ordering::Relaxed) {
        WRONG_CPU.store(me + 1, Ordering::SeqCst);
        return;
    }
    PINGS.fetch_add(1, Ordering::SeqCst);
    if irq::send_sgi(MAIN_CPU.load(Ordering::Relaxed), PONG).is_err() {
        PEER_ERROR.fetch_add(1, Ordering::SeqCst);
    }
}

fn on_pong(_intid: u32) {
    let me = cpu::index();
    if me != MAIN_CPU.load(Ordering::Relaxed) {
        WRONG_CPU.store(me + 1, Ordering::SeqCst);
        return;
    }
    PONGS.fetch_add(1, Ordering::SeqCst);
}

fn pingpong_peer(_index: usize) {
    let ok = irq::init_cpu().is_ok() && irq::set_handler(PING, Some(on_ping));
    if !ok || irq::enable(PING).is_err() {
        PEER_ERROR.fetch_add(1, Ordering::SeqCst);
    }
    PEER_READY.store(true, Ordering::SeqCst);
    signal();
    irq::enable_local();
    while !STOP.load(Ordering::SeqCst) {
        aarch64_cpu::asm::wfe();
    }
    irq::disable_local();
}

fn test_sgi_pingpong(info: &'static BootInfo) -> Outcome {
    let me = cpu::index();
    let Some(peer) = (0..info.cpu_count()).find(|&i| i != me) else {
        fail!(
            "needs at least 2 vCPUs, the device tree lists {}",
            info.cpu_count()
        );
    };
    MAIN_CPU.store(me, Ordering::SeqCst);
    PEER_CPU.store(peer, Ordering::SeqCst);
    irq::set_handler(PONG, Some(on_pong));
    irq::enable(PONG).map_err(gic_err("enable the pong SGI"))?;
    if let Err(e) = cpu::start(peer, pingpong_peer) {
        fail!("cannot start cpu {}: {:?}", peer, e);
    }
    let second = timer::frequency();
    if !wait_until(5 * second, || PEER_READY.load(Ordering::SeqCst)) {
        fail!("cpu {} did not come up", peer);
    }
    if PEER_ERROR.load(Ordering::SeqCst) != 0 {
        fail!("cpu {} could not set up its ping SGI", peer);
    }
    irq::enable_local();
    let start = timer::now();
    let mut result = Ok(());
    for round in 0..ROUNDS {
        if let Err(e) = irq::send_sgi(peer, PING) {
            result = Err(Fail::new(format_args!("send ping {}: {:?}", round, e)));
            break;
        }
        let arrived = wait_until(second, || {
            PONGS.load(Ordering::SeqCst) > round || WRONG_CPU.load(Ordering::SeqCst) != 0
        });
        let wrong = WRONG_CPU.load(Ordering::SeqCst);
        if wrong != 0 {
            result = Err(Fail::new(format_args!(
                "round {}: an SGI arrived on cpu {}",
                round,
                wrong - 1
            )));
            break;
        }
        if !arrived {
            result = Err(Fail::new(format_args!(
                "round {}: no pong within 1 s ({} pings seen by cpu {})",
                round,
                PINGS.load(Ordering::SeqCst),
                peer
            )));
            break;
        }
    }
    let elapsed = timer::now() - start;
    irq::disable_local();
    STOP.store(true, Ordering::SeqCst);
    signal();
    result?;
    let (pings, pongs) = (PINGS.load(Ordering::SeqCst), PONGS.load(Ordering::SeqCst));
    println!(
        "irqtest: sgi-pingpong: {} round trips cpu {} <-> cpu {} in {} us ({} pings, {} pongs)",
        ROUNDS,
        me,
        peer,
        timer::us_from_ticks(elapsed),
        pings,
        pongs
    );
    if pings != ROUNDS || pongs != ROUNDS {
        fail!("{} pings and {} pongs for {} rounds", pings, pongs, ROUNDS);
    }
    if PEER_ERROR.load(Ordering::SeqCst) != 0 {
        fail!("cpu {} could not send a pong", peer);
    }
    let off = wait_until(5 * second, || {
        matches!(cpu::state(peer), Ok(AffinityState::Off))
    });
    if !off {
        fail!("cpu {} did not power off", peer);
    }
    Ok(Pass::Ok)
}

// ---------------------------------------------------------------------------------------------
// rtc-alarm

// PL031 registers.
const RTCDR: usize = 0x00;
const RTCMR: usize = 0x04;
const RTCIMSC: usize = 0x10;
const RTCRIS: usize = 0x14;
const RTCICR: usize = 0x1c;

static RTC_BASE: AtomicUsize = AtomicUsize::new(0);
static RTC_FIRED: AtomicU32 = AtomicU32::new(0);
static RTC_AT: AtomicU64 = AtomicU64::new(0);

/// One 32-bit register access to the RTC.
fn rtc_read(offset: usize) -> u32 {
    let addr = RTC_BASE.load(Ordering::Relaxed) + offset;
    // SAFETY: RTC_BASE is the `reg` of the DT's `arm,pl031` node (set before any access),
    // in the Device-memory identity map; `offset` is one of its 32-bit registers.
    unsafe { (addr as *const u32).read_volatile() }
}

fn rtc_write(offset: usize, value: u32) {
    let addr = RTC_BASE.load(Ordering::Relaxed) + offset;
    // SAFETY: as for `rtc_read`; writes to the RTC's alarm registers affect only the RTC.
    unsafe { (addr as *mut u32).write_volatile(value) }
}

fn on_rtc(_intid: u32) {
    RTC_AT.store(timer::now(), Ordering::SeqCst);
    rtc_write(RTCIMSC, 0);
    rtc_write(RTCICR, 1);
    RTC_FIRED.fetch_add(1, Ordering::SeqCst);
}

fn test_rtc_alarm(info: &'static BootInfo) -> Outcome {
    let Some(rtc) = info.device("arm,pl031") else {
        fail!("no arm,pl031 node in the device tree");
    };
    let Some(rtc_irq) = rtc.irq else {
        fail!("the arm,pl031 node at {:#x} has no interrupt", rtc.reg.base);
    };
    if rtc.reg.size < 0x20 {
        fail!("the arm,pl031 node's reg {} is too small", rtc.reg);
    }
    let intid = rtc_irq.intid;
    RTC_BASE.store(rtc.reg.base, Ordering::SeqCst);
    rtc_write(RTCIMSC, 0);
    rtc_write(RTCICR, 1);
    irq::set_handler(intid, Some(on_rtc));
    irq::set_trigger(intid, rtc_irq.trigger).map_err(gic_err("configure the RTC interrupt"))?;
    irq::enable(intid).map_err(gic_err("enable the RTC interrupt"))?;
    let now = rtc_read(RTCDR);
    let alarm = now.wrapping_add(2);
    let start = timer::now();
    rtc_write(RTCMR, alarm);
    rtc_write(RTCIMSC, 1);
    irq::enable_local();
    let second = timer::frequency();
    let fired = wait_until(5 * second, || RTC_FIRED.load(Ordering::SeqCst) != 0);
    irq::disable_local();
    if !fired {
        let ris = rtc_read(RTCRIS);
        rtc_write(RTCIMSC, 0);
        fail!(
            "no interrupt (INTID {}) within 5 s: RTCDR {} -> {}, RTCMR {}, RTCRIS {:#x}",
            intid,
            now,
            rtc_read(RTCDR),
            alarm,
            ris
        );
    }
    let ms = timer::us_from_ticks(RTC_AT.load(Ordering::SeqCst) - start) / 1000;
    println!(
        "irqtest: rtc-alarm: PL031 at {:#x}, INTID {} fired {} ms after RTCMR = RTCDR + 2 ({} -> {})",
        rtc.reg.base, intid, ms, now, alarm
    );
    if RTC_FIRED.load(Ordering::SeqCst) != 1 {
        fail!(
            "{} interrupts for one alarm",
            RTC_FIRED.load(Ordering::SeqCst)
        );
    }
    Ok(Pass::Ok)
}

// ---------------------------------------------------------------------------------------------
// poke-foreign

static FOREIGN_SEEN: AtomicU32 = AtomicU32::new(0);

fn on_foreign(_intid: u32) {
    FOREIGN_SEEN.fetch_add(1, Ordering::SeqCst);
}

fn test_poke_foreign(info: &'static BootInfo) -> Outcome {
    // `force=1` runs it bare anyway (where it must fail: the SPI is real): checks the checks.
    if !info.tessera && info.bootarg("force").is_none() {
        return Ok(Pass::Skipped("needs Tessera"));
    }
    let Some(arg) = info.bootarg("foreign") else {
        fail!("no foreign=<INTID> in the bootargs");
    };
    let Some(n) = parse_u64(arg).and_then(|n| u32::try_from(n).ok()) else {
        fail!("bad foreign={}", arg);
    };
    if !(irq::SPI_BASE..irq::MAX_INTID).contains(&n) {
        fail!("foreign INTID {} is not an SPI", n);
    }
    let version = irq::gic_version();
    irq::set_handler(n, Some(on_foreign));
    let io = gic_err("distributor access");
    let word = 4 * (n as usize / 32);
    let bit = 1u32 << (n % 32);
    let byte_shift = 8 * (n % 4);
    let byte_word = n as usize & !3;

    // Enable and pending: write-1-to-set, then read the bit back.
    gic::dist_write32(GICD_ISENABLER + word, bit).map_err(&io)?;
    let enabled = gic::dist_read32(GICD_ISENABLER + word).map_err(&io)? & bit;
    gic::dist_write32(GICD_ISPENDR + word, bit).map_err(&io)?;
    let pending = gic::dist_read32(GICD_ISPENDR + word).map_err(&io)? & bit;
    // Priority: read-modify-write of the byte in its word (the neighbours may be ours).
    let old = gic::dist_read32(GICD_IPRIORITYR + byte_word).map_err(&io)?;
    let new = (old & !(0xff << byte_shift)) | (0x80 << byte_shift);
    gic::dist_write32(GICD_IPRIORITYR + byte_word, new).map_err(&io)?;
    let priority =
        (gic::dist_read32(GICD_IPRIORITYR + byte_word).map_err(&io)? >> byte_shift) & 0xff;
    // Target: v3 route to this CPU, v2 this CPU's interface bit.
    let target = match version {
        Some(GicVersion::V3) => {
            let off = GICD_IROUTER + 8 * n as usize;
            gic::dist_write64(off, cpu::mpidr() & 0xff_00ff_ffff).map_err(&io)?;
            let routed = gic::dist_read64(off).map_err(&io)?;
            // This CPU's affinity may be 0, which RAZ cannot be told from: also try "any
            // CPU" routing (IRM, bit 31).
            gic::dist_write64(off, 1 << 31).map_err(&io)?;
            routed | gic::dist_read64(off).map_err(&io)?
        }
        _ => {
            let old = gic::dist_read32(GICD_ITARGETSR + byte_word).map_err(&io)?;
            let mask = gic::dist_read32(GICD_ITARGETSR).map_err(&io)? & 0xff;
            let mask = if mask == 0 { 1 } else { mask };
            let new = (old & !(0xff << byte_shift)) | (mask << byte_shift);
            gic::dist_write32(GICD_ITARGETSR + byte_word, new).map_err(&io)?;
            u64::from(
                (gic::dist_read32(GICD_ITARGETSR + byte_word).map_err(&io)? >> byte_shift) & 0xff,
            )
        }
    };
    println!(
        "irqtest: poke-foreign: INTID {}: enable {} pending {} priority {:#x} target {:#x}",
        n,
        u32::from(enabled != 0),
        u32::from(pending != 0),
        priority,
        target
    );

    // Give a wrongly enabled interrupt time to arrive.
    irq::enable_local();
    wait_until(timer::frequency() / 5, || {
        FOREIGN_SEEN.load(Ordering::SeqCst) != 0
    });
    irq::disable_local();
    let seen = FOREIGN_SEEN.load(Ordering::SeqCst);

    if enabled != 0 || pending != 0 || priority != 0 || target != 0 {
        fail!(
            "INTID {} of another VM is not RAZ/WI: enable {} pending {} priority {:#x} target {:#x}",
            n,
            u32::from(enabled != 0),
            u32::from(pending != 0),
            priority,
            target
        );
    }
    if seen != 0 {
        fail!("INTID {} of another VM arrived {} time(s)", n, seen);
    }
    Ok(Pass::Ok)
}

// ---------------------------------------------------------------------------------------------
// priority

/// SGIs used.
const PRIO_SGIS: usize = 10;
/// Priority of SGI i (distinct multiples of 0x10: visible with 4 implemented priority bits).
const PRIORITIES: [u8; PRIO_SGIS] = [0x50, 0x10, 0x90, 0x30, 0xa0, 0x20, 0x70, 0x40, 0x80, 0x60];
/// The order in which they are sent (so that neither INTID nor sending order matches
/// priority order).
const SEND_ORDER: [u32; PRIO_SGIS] = [3, 8, 0, 5, 9, 1, 6, 2, 7, 4];

static PRIO_SEEN: [AtomicU32; PRIO_SGIS] = [const { AtomicU32::new(u32::MAX) }; PRIO_SGIS];
static PRIO_COUNT: AtomicUsize = AtomicUsize::new(0);
static PRIO_HITS: [AtomicU32; PRIO_SGIS] = [const { AtomicU32::new(0) }; PRIO_SGIS];

fn on_prio(intid: u32) {
    let i = PRIO_COUNT.fetch_add(1, Ordering::SeqCst);
    if let Some(slot) = PRIO_SEEN.get(i) {
        slot.store(intid, Ordering::SeqCst);
    }
    if let Some(hits) = PRIO_HITS.get(intid as usize) {
        hits.fetch_add(1, Ordering::SeqCst);
    }
}

/// Formats a list of INTIDs.
struct List<'a>(&'a [u32]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, x) in self.0.iter().enumerate() {
            write!(f, "{}{}", if i == 0 { "" } else { " " }, x)?;
        }
        Ok(())
    }
}

fn test_priority(_info: &'static BootInfo) -> Outcome {
    let me = cpu::index();
    for (sgi, &prio) in PRIORITIES.iter().enumerate() {
        let sgi = sgi as u32;
        irq::set_handler(sgi, Some(on_prio));
        irq::set_priority(sgi, prio).map_err(gic_err("set an SGI priority"))?;
        irq::enable(sgi).map_err(gic_err("enable an SGI"))?;
    }
    irq::disable_local();
    for &sgi in &SEND_ORDER {
        irq::send_sgi(me, sgi).map_err(gic_err("send an SGI"))?;
    }
    // Let the SGIs reach this CPU's interface (they are made pending asynchronously on
    // hardware; QEMU and Tessera make them pending before the send instruction completes).
    let settle = timer::ticks_from_us(1000);
    let t0 = timer::now();
    while timer::now() - t0 < settle {
        core::hint::spin_loop();
    }
    let pending = (0..PRIO_SGIS as u32)
        .filter(|&s| irq::is_pending(s).unwrap_or(false))
        .count();
    irq::enable_local();
    let all = wait_until(timer::frequency(), || {
        PRIO_COUNT.load(Ordering::SeqCst) >= PRIO_SGIS
    });
    // Any duplicate would come right after.
    wait_until(timer::frequency() / 100, || false);
    irq::disable_local();

    let mut seen = [u32::MAX; PRIO_SGIS];
    for (s, slot) in seen.iter_mut().zip(&PRIO_SEEN) {
        *s = slot.load(Ordering::SeqCst);
    }
    let count = PRIO_COUNT.load(Ordering::SeqCst).min(PRIO_SGIS);
    let mut expected = [0u32; PRIO_SGIS];
    for (e, i) in expected.iter_mut().zip(0u32..) {
        *e = i;
    }
    expected.sort_unstable_by_key(|&s| PRIORITIES[s as usize]);
    println!(
        "irqtest: priority: {} SGIs pending before unmasking; handled in order [{}], expected [{}]",
        pending,
        List(&seen[..count]),
        List(&expected)
    );
    if !all {
        fail!(
            "only {} of {} SGIs arrived",
            PRIO_COUNT.load(Ordering::SeqCst),
            PRIO_SGIS
        );
    }
    let total = PRIO_COUNT.load(Ordering::SeqCst);
    if total != PRIO_SGIS {
        fail!("{} interrupts for {} SGIs", total, PRIO_SGIS);
    }
    for (sgi, hits) in PRIO_HITS.iter().enumerate() {
        let hits = hits.load(Ordering::SeqCst);
        if hits != 1 {
            fail!("SGI {} arrived {} times", sgi, hits);
        }
    }
    if seen != expected {
        fail!(
            "wrong order [{}], expected [{}]",
            List(&seen),
            List(&expected)
        );
    }
    Ok(Pass::Ok)
}
