//! `ring`: inter-VM channel tests for Tessera (guests/rt's `ring` API over crates/ring).
//!
//! The bootargs pick a mode (`mode=<name>`) and its parameters; every line starts with
//! `ring: <mode>:`; the guest exits 0 on success and 1 after a `FAILED` line.
//!
//! Every message carries a header: sequence number (u32, per channel and class, from 0),
//! send time (CNTVCT, u64; Tessera keeps CNTVOFF at 0, so VMs share the clock), a checksum
//! (u32) over the rest; the payload bytes follow from the sequence number.
//!
//! - `ping tx=<chan> rx=<chan> n=<N> size=<bytes>`: N round trips on class 0; each reply must
//!   carry the same sequence number and a valid checksum. Prints the round-trip times.
//! - `pong tx=<chan> rx=<chan> n=<N>`: checks each message and sends it back.
//! - `send chan=<c> class=<k> n=<N> size=<bytes> period_us=<P> [full_sleep_us=<S>]
//!   [start_us=<D>] [fast=1]`: after sleeping D µs, N messages, one every P µs, sleeping
//!   between them in `wfi` on the virtual timer (P = 0: as fast as the ring takes them; on Full
//!   it retries at once, or after sleeping S µs). `fast=1` builds the payload once and then
//!   only writes each message's sequence number and time (for `rx verify=seq`).
//! - `flood chan=<c> class=<k> ms=<T> size=<bytes>`: sends as fast as it can for T ms,
//!   counting Full (never retrying a message: the next one gets the next sequence number only
//!   once one was accepted); `n=<N>` stops after N messages, `start_us=<D>` sleeps D µs first.
//! - `full chan=<c> class=<k>`: sends until the class refuses: must be Full after exactly
//!   `slots` messages, and stay Full.
//! - `garbage chan=<c> n=<N>`: writes N rounds of impossible producer indices and slot
//!   lengths into the region, ringing the doorbell each time, then stops.
//! - `rx expect=<chan>:<N> ... [hi=<chan>] [untrusted=<chan>] [delay_ms=<D>]
//!   [timeout_ms=<T>]`: receives from every receiving channel end, highest class first
//!   across channels (by each channel's top class), waiting for doorbells when idle. Each
//!   message of a trusted channel must have a valid checksum and the next sequence number of
//!   its class. Ends when every `expect` count is reached (and, for an `untrusted` channel,
//!   at least one violation was seen); prints per-channel, per-class counts, violations and,
//!   for the `hi` channel, one-way latency (median, p99, max), failing if its median or max
//!   exceeds `lat_median_us=<U>` / `lat_max_us=<U>` when given. `order=rr [batch=<B>]`: the
//!   FIFO baseline instead: channels served in turn, up to B (64) messages each per turn,
//!   whatever their classes. `verify=seq`: check sequence numbers only (for `send fast=1`).
//!   `bench=1`: also prints `ring: bench: hi_latency ...` (ticks, with p99), `ring: bench:
//!   traffic ...` (messages, bytes, first send → last receive, doorbells taken), with
//!   `memcpy=1` the time of an in-guest copy of the same bytes in chunks of the mean message
//!   size (`ring: bench: memcpy ...`), and `bench: done` (for `cargo xtask bench`).
//! - `split rx0=<chan> rx1=<chan> n=<N> [timeout_ms=<T>]`: a receiver with two CPUs. CPU 0
//!   sets up the doorbells of both channel ends (each class routed to the CPU its DT
//!   `tessera,class-vcpus` names, which must be 0 for `rx0` and 1 for `rx1`, and where the
//!   distributor already routed them before the guest wrote anything), starts CPU 1,
//!   and each CPU receives N checked messages (class 0) from its own channel, waiting for
//!   doorbells when idle. Fails unless each CPU took its own channel's doorbells and never
//!   the other's.
#![no_std]
#![no_main]

use core::fmt;

use tessera_guest_rt::dt::parse_u64;
use tessera_guest_rt::ring::{self, Receiver, RecvError, SendError, Sender, SharedMem};
use tessera_guest_rt::{entry, irq, println, timer, BootInfo};

entry!(main);

/// Bytes before the payload: seq u32, time u64, checksum u32.
const HEADER: usize = 16;
/// Largest message this guest handles.
const BUF: usize = 2048;
/// Latency samples kept (static arrays: at least the 10 000 of a benchmark run).
const MAX_SAMPLES: usize = 16384;

struct Failed;

macro_rules! fail {
    ($mode:expr, $($arg:tt)*) => {{
        println!("ring: {}: FAILED {}", $mode, format_args!($($arg)*));
        return Err(Failed);
    }};
}

type Outcome = Result<(), Failed>;

fn main(info: &'static BootInfo) -> u32 {
    let mode = info.bootarg("mode").unwrap_or("");
    let r = match mode {
        "ping" => ping(info),
        "pong" => pong(info),
        "send" => send(info),
        "flood" => flood(info),
        "full" => full(info),
        "garbage" => garbage(info),
        "rx" => rx(info),
        "split" => split(info),
        _ => {
            println!("ring: FAILED unknown mode {:?}", mode);
            Err(Failed)
        }
    };
    match r {
        Ok(()) => 0,
        Err(Failed) => 1,
    }
}

fn arg(info: &BootInfo, key: &str, default: u64) -> u64 {
    info.bootarg(key).and_then(parse_u64).unwrap_or(default)
}

fn checksum(bytes: &[u8]) -> u32 {
    // FNV-1a.
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// Builds message `seq` of `len` bytes (at least HEADER) into `buf`.
fn build(buf: &mut [u8], seq: u32, len: usize, time: u64) {
    let len = len.max(HEADER);
    buf[0..4].copy_from_slice(&seq.to_le_bytes());
    buf[4..12].copy_from_slice(&time.to_le_bytes());
    for (i, b) in buf[HEADER..len].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    let c = checksum_of(&buf[..len]);
    buf[12..16].copy_from_slice(&c.to_le_bytes());
}

/// The checksum of a message: over everything but the checksum field.
fn checksum_of(m: &[u8]) -> u32 {
    let head = checksum(&m[..12]);
    head ^ checksum(&m[HEADER..]).rotate_left(7)
}

/// A received message's sequence number and time, if its checksum holds.
fn check(m: &[u8]) -> Option<(u32, u64)> {
    if m.len() < HEADER {
        return None;
    }
    let want = u32::from_le_bytes(m[12..16].try_into().ok()?);
    if checksum_of(m) != want {
        return None;
    }
    let seq = u32::from_le_bytes(m[0..4].try_into().ok()?);
    // The payload must also be the one `seq` implies (the checksum covers it; this checks the
    // generator too).
    let ok = m[HEADER..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (seq as usize).wrapping_mul(31).wrapping_add(i) as u8);
    ok.then(|| {
        (
            seq,
            u64::from_le_bytes(m[4..12].try_into().unwrap_or([0; 8])),
        )
    })
}

fn open_tx(mode: &str, name: &str) -> Result<Sender, Failed> {
    let Some(c) = ring::find(name) else {
        fail!(mode, "no channel end named {:?} in the device tree", name);
    };
    Sender::open(&c).map_err(|e| {
        println!("ring: {}: FAILED open {}: {:?}", mode, name, e);
        Failed
    })
}

fn open_rx(mode: &str, name: &str) -> Result<Receiver, Failed> {
    let Some(c) = ring::find(name) else {
        fail!(mode, "no channel end named {:?} in the device tree", name);
    };
    let r = Receiver::open(&c).map_err(|e| {
        println!("ring: {}: FAILED open {}: {:?}", mode, name, e);
        Failed
    })?;
    if let Err(e) = r.enable_doorbells() {
        fail!(mode, "doorbells of {}: {:?}", name, e);
    }
    Ok(r)
}

fn init_irq(mode: &str) -> Outcome {
    if let Err(e) = irq::init() {
        fail!(mode, "irq::init: {:?}", e);
    }
    irq::enable_local();
    Ok(())
}

/// Latency statistics in µs: (median, p99, max) of `samples` (sorted in place).
fn stats(samples: &mut [u64]) -> (u64, u64, u64) {
    if samples.is_empty() {
        return (0, 0, 0);
    }
    samples.sort_unstable();
    let n = samples.len();
    let us = timer::us_from_ticks;
    (
        us(samples[n / 2]),
        us(samples[(n * 99 / 100).min(n - 1)]),
        us(samples[n - 1]),
    )
}

struct Us(u64, u64, u64);
impl fmt::Display for Us {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "median {} us p99 {} us max {} us",
            self.0, self.1, self.2
        )
    }
}

/// Waits (doorbells) for the next message on `r`.
fn recv_one(r: &mut Receiver, buf: &mut [u8]) -> Result<ring::Received, RecvError> {
    loop {
        if let Some(m) = r.try_recv(buf)? {
            return Ok(m);
        }
        ring::wait(&mut [r]);
    }
}

fn ping(info: &BootInfo) -> Outcome {
    let m = "ping";
    init_irq(m)?;
    let mut tx = open_tx(m, info.bootarg("tx").unwrap_or("ping"))?;
    let mut rx = open_rx(m, info.bootarg("rx").unwrap_or("pong"))?;
    let n = arg(info, "n", 10_000) as u32;
    let size = (arg(info, "size", 64) as usize).clamp(HEADER, BUF);
    println!("ring: ping: {} round trips of {} bytes", n, size);
    let mut out = [0u8; BUF];
    let mut inb = [0u8; BUF];
    static mut RTT: [u64; MAX_SAMPLES] = [0; MAX_SAMPLES];
    // SAFETY: only this function, on one CPU, ever touches RTT.
    let rtt = unsafe { &mut *core::ptr::addr_of_mut!(RTT) };
    let mut kept = 0;
    for seq in 0..n {
        let t0 = timer::now();
        build(&mut out, seq, size, t0);
        loop {
            match tx.send(0, &out[..size]) {
                Ok(()) => break,
                Err(SendError::Full) => ring::wait(&mut [&mut rx]),
                Err(e) => fail!(m, "send {}: {:?}", seq, e),
            }
        }
        let got = match recv_one(&mut rx, &mut inb) {
            Ok(g) => g,
            Err(e) => fail!(m, "receive {}: {:?}", seq, e),
        };
        match check(&inb[..got.len]) {
            Some((s, _)) if s == seq && got.len == size => {}
            Some((s, _)) => fail!(
                m,
                "reply {} carries sequence {} ({} bytes)",
                seq,
                s,
                got.len
            ),
            None => fail!(m, "reply {} has a bad checksum", seq),
        }
        if kept < MAX_SAMPLES {
            rtt[kept] = timer::now() - t0;
            kept += 1;
        }
    }
    let (med, p99, max) = stats(&mut rtt[..kept]);
    println!(
        "ring: ping: {} round trips ok (sequence and checksum checked both ways), rtt {}",
        n,
        Us(med, p99, max)
    );
    println!(
        "ring: ping: doorbells {} (already pending {}), doorbells taken {}",
        tx.doorbells,
        tx.doorbells_already_pending,
        ring::doorbells_taken()
    );
    Ok(())
}

fn pong(info: &BootInfo) -> Outcome {
    let m = "pong";
    init_irq(m)?;
    let mut rx = open_rx(m, info.bootarg("rx").unwrap_or("ping"))?;
    let mut tx = open_tx(m, info.bootarg("tx").unwrap_or("pong"))?;
    let n = arg(info, "n", 10_000) as u32;
    let mut buf = [0u8; BUF];
    for seq in 0..n {
        let got = match recv_one(&mut rx, &mut buf) {
            Ok(g) => g,
            Err(e) => fail!(m, "receive {}: {:?}", seq, e),
        };
        match check(&buf[..got.len]) {
            Some((s, _)) if s == seq => {}
            Some((s, _)) => fail!(m, "message {} carries sequence {}", seq, s),
            None => fail!(m, "message {} has a bad checksum", seq),
        }
        loop {
            match tx.send(0, &buf[..got.len]) {
                Ok(()) => break,
                Err(SendError::Full) => core::hint::spin_loop(),
                Err(e) => fail!(m, "send {}: {:?}", seq, e),
            }
        }
    }
    println!("ring: pong: {} messages checked and returned", n);
    Ok(())
}

/// Sets up the virtual timer for [`timer::sleep_until`] (IRQs stay masked).
fn init_sleep(mode: &str) -> Outcome {
    if let Err(e) = irq::use_virtual_timer(timer::stop_on_wake) {
        fail!(mode, "virtual timer interrupt: {:?}", e);
    }
    irq::disable_local();
    Ok(())
}

/// Sleeps `us` microseconds in `wfi` (IRQs masked on entry and on return; [`init_sleep`] ran).
fn sleep_us(us: u64) {
    timer::sleep_until(timer::now() + timer::ticks_from_us(us));
}

fn send(info: &BootInfo) -> Outcome {
    let m = "send";
    let name = info.bootarg("chan").unwrap_or("");
    let mut tx = open_tx(m, name)?;
    let class = arg(info, "class", 0) as u8;
    let n = arg(info, "n", 1000) as u32;
    let size = (arg(info, "size", 64) as usize).clamp(HEADER, BUF);
    let period = timer::ticks_from_us(arg(info, "period_us", 0));
    let full_sleep = arg(info, "full_sleep_us", 0);
    // `fast=1`: the payload is built once; each message only gets its sequence number and
    // time (its checksum is stale: for a receiver with `verify=seq`).
    let fast = arg(info, "fast", 0) != 0;
    init_sleep(m)?;
    sleep_us(arg(info, "start_us", 0));
    let mut buf = [0u8; BUF];
    build(&mut buf, 0, size, 0);
    let mut full = 0u64;
    let mut next = timer::now();
    for seq in 0..n {
        if period != 0 {
            // Sleep (virtual timer + wfi) until the next release.
            timer::sleep_until(next);
            next += period;
        }
        loop {
            let now = timer::now();
            if fast {
                buf[0..4].copy_from_slice(&seq.to_le_bytes());
                buf[4..12].copy_from_slice(&now.to_le_bytes());
            } else {
                build(&mut buf, seq, size, now);
            }
            match tx.send(class, &buf[..size]) {
                Ok(()) => break,
                Err(SendError::Full) => {
                    full += 1;
                    if full_sleep > 0 {
                        sleep_us(full_sleep);
                    }
                }
                Err(e) => fail!(m, "{} seq {}: {:?}", name, seq, e),
            }
        }
    }
    println!(
        "ring: send: {} class {}: {} messages sent, Full {} times, doorbells {}",
        name, class, n, full, tx.doorbells
    );
    Ok(())
}

fn flood(info: &BootInfo) -> Outcome {
    let m = "flood";
    let name = info.bootarg("chan").unwrap_or("");
    let mut tx = open_tx(m, name)?;
    let class = arg(info, "class", 0) as u8;
    let size = (arg(info, "size", 64) as usize).clamp(HEADER, BUF);
    let start = arg(info, "start_us", 0);
    if start > 0 {
        init_sleep(m)?;
        sleep_us(start);
    }
    let end = timer::now() + timer::ticks_from_us(arg(info, "ms", 1000) * 1000);
    let most = arg(info, "n", u64::from(u32::MAX)) as u32;
    let mut buf = [0u8; BUF];
    let (mut seq, mut full) = (0u32, 0u64);
    while timer::now() < end && seq < most {
        build(&mut buf, seq, size, timer::now());
        match tx.send(class, &buf[..size]) {
            Ok(()) => seq += 1,
            Err(SendError::Full) => full += 1,
            Err(e) => fail!(m, "{} seq {}: {:?}", name, seq, e),
        }
    }
    println!(
        "ring: flood: {} class {}: sent {}, Full {} times, doorbells {} (already pending {})",
        name, class, seq, full, tx.doorbells, tx.doorbells_already_pending
    );
    Ok(())
}

fn full(info: &BootInfo) -> Outcome {
    let m = "full";
    let name = info.bootarg("chan").unwrap_or("");
    let mut tx = open_tx(m, name)?;
    let class = arg(info, "class", 0) as u8;
    let Some(slots) = tx.info().classes.get(usize::from(class)).map(|c| c.slots) else {
        fail!(m, "{} has no class {}", name, class);
    };
    let mut buf = [0u8; BUF];
    let mut sent = 0u32;
    loop {
        build(&mut buf, sent, HEADER, timer::now());
        match tx.send(class, &buf[..HEADER]) {
            Ok(()) => sent += 1,
            Err(SendError::Full) => break,
            Err(e) => fail!(m, "{}: {:?}", name, e),
        }
        if sent > slots {
            fail!(
                m,
                "{} accepted {} messages but has {} slots",
                name,
                sent,
                slots
            );
        }
    }
    if sent != slots {
        fail!(
            m,
            "Full after {} messages, but the class has {} slots",
            sent,
            slots
        );
    }
    // Still full: nothing was consumed (the receiver waits before it reads).
    build(&mut buf, sent, HEADER, timer::now());
    if tx.send(class, &buf[..HEADER]) != Err(SendError::Full) {
        fail!(m, "a second send did not return Full");
    }
    println!(
        "ring: full: {} class {}: Full after {} messages ({} slots), and again at once: ok",
        name, class, sent, slots
    );
    Ok(())
}

fn garbage(info: &BootInfo) -> Outcome {
    let m = "garbage";
    let name = info.bootarg("chan").unwrap_or("");
    let mut tx = open_tx(m, name)?;
    let n = arg(info, "n", 200);
    init_sleep(m)?;
    let layout = *tx.producer().layout();
    let mem = *tx.producer().mem();
    let mut x: u32 = 0x1234_5678;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut writes = 0u64;
    for round in 0..n {
        for (k, cl) in layout.classes().iter().enumerate() {
            // Every slot's length word: beyond the slot size.
            for s in 0..cl.geometry.slot_count {
                mem.store_u32(cl.slot_offset(s), cl.geometry.slot_size + 1 + rnd() % 4096);
                writes += 1;
            }
            // The producer index: alternately far ahead (impossible) and one ahead (so that
            // the bad length is read).
            let consumer = mem.load_u32(cl.consumer_index_offset());
            let p = if round % 2 == 0 {
                consumer.wrapping_add(cl.geometry.slot_count + 1 + rnd() % 1000)
            } else {
                consumer.wrapping_add(1)
            };
            mem.store_u32(cl.producer_index_offset(), p);
            writes += 1;
            tx.ring(k as u8);
        }
        sleep_us(500);
    }
    println!(
        "ring: garbage: {}: {} rounds, {} bad words written, {} doorbells",
        name, n, writes, tx.doorbells
    );
    Ok(())
}

/// Per receiving channel: what `rx` counted.
struct RxState {
    rx: Receiver,
    expect: u64,
    trusted: bool,
    hi: bool,
    /// Next sequence number per class.
    next: [u32; ring::MAX_CLASSES],
    received: [u64; ring::MAX_CLASSES],
    bad: u64,
    violations: u64,
}

impl RxState {
    fn total(&self) -> u64 {
        self.received.iter().sum()
    }
    fn done(&self) -> bool {
        self.total() >= self.expect && (self.trusted || self.violations > 0)
    }
}

/// The order in which `rx` serves its channels.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Highest top class first, one message at a time, then the highest channel again.
    Priority,
    /// The FIFO baseline: channels in turn, up to `batch` messages from each (or until it is
    /// empty) before the next one (a netback-style round robin; no notion of priority).
    RoundRobin { batch: u64 },
}

/// What `rx` measured over the whole run (for `bench=1`).
#[derive(Default)]
struct Traffic {
    messages: u64,
    bytes: u64,
    /// Send time (from its header) of the first message received.
    first_send: Option<u64>,
    /// When the last message was received.
    last_recv: u64,
}

/// The outcome of taking one message from a channel.
enum Took {
    Nothing,
    One,
}

/// Takes (at most) one message from `c` and checks it; fails on a trusted peer's error.
fn take_one(
    c: &mut RxState,
    buf: &mut [u8],
    seq_only: bool,
    lat: &mut [u64],
    kept: &mut usize,
    traffic: &mut Traffic,
) -> Result<Took, Failed> {
    let m = "rx";
    match c.rx.try_recv(buf) {
        Ok(None) => Ok(Took::Nothing),
        Ok(Some(msg)) => {
            let now = timer::now();
            let k = usize::from(msg.class);
            c.received[k] += 1;
            let body = &buf[..msg.len];
            let checked = if seq_only {
                (msg.len >= HEADER).then(|| {
                    let w = |a: usize, b: usize| {
                        let mut v = [0u8; 8];
                        v[..b - a].copy_from_slice(&body[a..b]);
                        u64::from_le_bytes(v)
                    };
                    (w(0, 4) as u32, w(4, 12))
                })
            } else {
                check(body)
            };
            traffic.messages += 1;
            traffic.bytes += msg.len as u64;
            traffic.last_recv = now;
            match checked {
                Some((seq, t)) if seq == c.next[k] => {
                    c.next[k] = seq.wrapping_add(1);
                    traffic.first_send.get_or_insert(t);
                    if c.hi && k + 1 == c.rx.info().classes.len() && *kept < lat.len() {
                        lat[*kept] = now.saturating_sub(t);
                        *kept += 1;
                    }
                }
                other => {
                    c.bad += 1;
                    if c.trusted {
                        match other {
                            Some((seq, _)) => fail!(
                                m,
                                "{} class {}: sequence {} where {} was due",
                                c.rx.info().name,
                                k,
                                seq,
                                c.next[k]
                            ),
                            None => {
                                fail!(m, "{} class {}: bad checksum", c.rx.info().name, k)
                            }
                        }
                    }
                }
            }
            Ok(Took::One)
        }
        Err(RecvError::Violation { .. }) => {
            c.violations += 1;
            if c.trusted {
                fail!(
                    m,
                    "{}: protocol violation by a trusted peer",
                    c.rx.info().name
                );
            }
            Ok(Took::One)
        }
        Err(e) => fail!(m, "{}: {:?}", c.rx.info().name, e),
    }
}

/// `memcpy=1`: ticks to copy `bytes` bytes in chunks of `chunk` with the runtime's memcpy
/// (from a 64-chunk source to a 64-chunk destination, as a ring's slots would be).
fn memcpy_ticks(bytes: u64, chunk: usize) -> u64 {
    const SLOTS: usize = 64;
    static mut SRC: [u8; SLOTS * BUF] = [0; SLOTS * BUF];
    static mut DST: [u8; SLOTS * BUF] = [0; SLOTS * BUF];
    // SAFETY: only this function, on one CPU, touches SRC and DST.
    let (src, dst) = unsafe {
        (
            &*core::ptr::addr_of!(SRC),
            &mut *core::ptr::addr_of_mut!(DST),
        )
    };
    let chunk = chunk.clamp(1, BUF);
    let n = bytes / chunk as u64;
    let t0 = timer::now();
    for i in 0..n {
        let o = (i as usize % SLOTS) * chunk;
        dst[o..o + chunk].copy_from_slice(core::hint::black_box(&src[o..o + chunk]));
        core::hint::black_box(&dst[o]);
    }
    timer::now() - t0
}

fn rx(info: &BootInfo) -> Outcome {
    let m = "rx";
    init_irq(m)?;
    let hi_name = info.bootarg("hi").unwrap_or("");
    let untrusted = info.bootarg("untrusted").unwrap_or("");
    let order = match info.bootarg("order").unwrap_or("prio") {
        "prio" => Order::Priority,
        "rr" => Order::RoundRobin {
            batch: arg(info, "batch", 64).max(1),
        },
        o => fail!(m, "order={:?}: prio or rr", o),
    };
    let seq_only = match info.bootarg("verify").unwrap_or("full") {
        "full" => false,
        "seq" => true,
        v => fail!(m, "verify={:?}: full or seq", v),
    };
    let bench = arg(info, "bench", 0) != 0;
    let mut chans: heapless::Vec<RxState, { ring::MAX_CHANNELS }> = heapless::Vec::new();
    for c in ring::channels().iter().filter(|c| c.rx) {
        let expect = info
            .bootarg_values("expect")
            .filter_map(|e| e.split_once(':'))
            .find(|(n, _)| *n == c.name.as_str())
            .and_then(|(_, v)| parse_u64(v))
            .unwrap_or(0);
        let st = RxState {
            rx: open_rx(m, c.name.as_str())?,
            expect,
            trusted: c.name.as_str() != untrusted,
            hi: c.name.as_str() == hi_name,
            next: [0; ring::MAX_CLASSES],
            received: [0; ring::MAX_CLASSES],
            bad: 0,
            violations: 0,
        };
        let _ = chans.push(st);
    }
    if chans.is_empty() {
        fail!(m, "no receiving channel end in the device tree");
    }
    // Highest top class first (then channel number).
    chans.sort_unstable_by_key(|c| (core::cmp::Reverse(c.rx.top_class()), c.rx.info().index));
    let delay = arg(info, "delay_ms", 0);
    if delay > 0 {
        init_sleep(m)?;
        sleep_us(delay * 1000);
        irq::enable_local();
    }
    let start = timer::now();
    let deadline = start + timer::ticks_from_us(arg(info, "timeout_ms", 60_000) * 1000);
    static mut LAT: [u64; MAX_SAMPLES] = [0; MAX_SAMPLES];
    // SAFETY: only this function, on one CPU, ever touches LAT.
    let lat = unsafe { &mut *core::ptr::addr_of_mut!(LAT) };
    let mut kept = 0;
    let mut traffic = Traffic::default();
    let mut buf = [0u8; BUF];
    // Round robin: the channel being served and how many it gave in this turn.
    let (mut cur, mut taken) = (0usize, 0u64);
    while !chans.iter().all(RxState::done) {
        if timer::now() > deadline {
            for c in &chans {
                println!(
                    "ring: rx: {}: {} of {} messages, {} violations at the timeout",
                    c.rx.info().name,
                    c.total(),
                    c.expect,
                    c.violations
                );
            }
            fail!(m, "timeout");
        }
        let got = match order {
            Order::Priority => {
                let mut got = false;
                for c in chans.iter_mut() {
                    if let Took::One =
                        take_one(c, &mut buf, seq_only, lat, &mut kept, &mut traffic)?
                    {
                        // One message at a time, then the highest channel again.
                        got = true;
                        break;
                    }
                }
                got
            }
            Order::RoundRobin { batch } => {
                let n = chans.len();
                let mut got = false;
                for _ in 0..n {
                    let c = &mut chans[cur];
                    if let Took::One =
                        take_one(c, &mut buf, seq_only, lat, &mut kept, &mut traffic)?
                    {
                        taken += 1;
                        if taken >= batch {
                            cur = (cur + 1) % n;
                            taken = 0;
                        }
                        got = true;
                        break;
                    }
                    // Empty: the next channel's turn.
                    cur = (cur + 1) % n;
                    taken = 0;
                }
                got
            }
        };
        if !got {
            let mut rs: heapless::Vec<&mut Receiver, { ring::MAX_CHANNELS }> =
                chans.iter_mut().map(|c| &mut c.rx).collect();
            ring::wait(&mut rs);
        }
    }
    let end = timer::now();
    for c in &chans {
        let n = c.rx.info().classes.len();
        println!(
            "ring: rx: {}: {} messages, per class {:?}, violations {}, bad {} ({})",
            c.rx.info().name,
            c.total(),
            &c.received[..n],
            c.violations,
            c.bad,
            match (c.trusted, seq_only) {
                (false, _) => "untrusted",
                (true, false) => "trusted: all checked",
                (true, true) => "trusted: sequence checked",
            }
        );
    }
    let mut lat_ticks = (0, 0, 0, 0);
    if kept > 0 {
        let (med, p99, max) = stats(&mut lat[..kept]);
        lat_ticks = (
            lat[kept / 2],
            lat[(kept * 99 / 100).min(kept - 1)],
            lat[kept - 1],
            lat[0],
        );
        println!(
            "ring: rx: {} latency over {} messages: {}",
            hi_name,
            kept,
            Us(med, p99, max)
        );
        // Bounds asked for by the scenario.
        let bound = |key| info.bootarg(key).and_then(parse_u64);
        if let Some(b) = bound("lat_median_us").filter(|&b| med > b) {
            fail!(m, "{} median latency {} us above {} us", hi_name, med, b);
        }
        if let Some(b) = bound("lat_max_us").filter(|&b| max > b) {
            fail!(m, "{} max latency {} us above {} us", hi_name, max, b);
        }
    }
    let doorbells = ring::doorbells_taken();
    println!("ring: rx: ok, doorbells taken {}", doorbells);
    if bench {
        if kept > 0 {
            println!(
                "ring: bench: hi_latency median={} p99={} max={} min={} samples={} unit=ticks",
                lat_ticks.0, lat_ticks.1, lat_ticks.2, lat_ticks.3, kept
            );
        }
        let first = traffic.first_send.unwrap_or(start);
        println!(
            "ring: bench: traffic messages={} bytes={} ticks={} rx_ticks={} doorbells={}",
            traffic.messages,
            traffic.bytes,
            traffic.last_recv.saturating_sub(first),
            end - start,
            doorbells
        );
        if arg(info, "memcpy", 0) != 0 && traffic.messages > 0 {
            let chunk = (traffic.bytes / traffic.messages) as usize;
            println!(
                "ring: bench: memcpy bytes={} chunk={} ticks={}",
                traffic.bytes,
                chunk,
                memcpy_ticks(traffic.bytes, chunk)
            );
        }
        println!("bench: done");
    }
    Ok(())
}

/// `split`: messages received by CPU 1 (`u64::MAX` once it failed).
static SPLIT_CPU1_GOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// `split`: CPU 1 finished (successfully or not).
static SPLIT_CPU1_DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Receives `n` messages of class 0 on `r`, checking checksums and sequence numbers.
fn split_recv(r: &mut Receiver, n: u32) -> Outcome {
    let m = "split";
    let name = r.info().name.clone();
    let mut buf = [0u8; BUF];
    for seq in 0..n {
        let got = match recv_one(r, &mut buf) {
            Ok(g) => g,
            Err(e) => fail!(m, "{} receive {}: {:?}", name, seq, e),
        };
        match check(&buf[..got.len]) {
            Some((s, _)) if s == seq && got.class == 0 => {}
            Some((s, _)) => fail!(
                m,
                "{} message {} carries sequence {} (class {})",
                name,
                seq,
                s,
                got.class
            ),
            None => fail!(m, "{} message {} has a bad checksum", name, seq),
        }
    }
    Ok(())
}

/// CPU 1 of `split`: receives from `rx1` (its doorbells were routed here by CPU 0).
fn split_cpu1(cpu: usize) {
    use core::sync::atomic::Ordering;
    let info = tessera_guest_rt::boot_info();
    let name = info.bootarg("rx1").unwrap_or("");
    let n = arg(info, "n", 1000) as u32;
    let ok = (|| -> Outcome {
        let Some(c) = ring::find(name) else {
            fail!("split", "no channel end named {:?} on CPU {}", name, cpu);
        };
        let mut r = Receiver::open(&c).map_err(|e| {
            println!("ring: split: FAILED open {} on CPU {}: {:?}", name, cpu, e);
            Failed
        })?;
        irq::enable_local();
        split_recv(&mut r, n)
    })();
    SPLIT_CPU1_GOT.store(
        if ok.is_ok() { u64::from(n) } else { u64::MAX },
        Ordering::SeqCst,
    );
    SPLIT_CPU1_DONE.store(true, Ordering::SeqCst);
}

fn split(info: &BootInfo) -> Outcome {
    use core::sync::atomic::Ordering;
    let m = "split";
    init_irq(m)?;
    irq::disable_local();
    let names = [
        info.bootarg("rx0").unwrap_or(""),
        info.bootarg("rx1").unwrap_or(""),
    ];
    let n = arg(info, "n", 1000) as u32;
    let timeout = timer::ticks_from_us(arg(info, "timeout_ms", 60_000) * 1000);
    // Before the guest touches them, the doorbells are where the config put them (the
    // hypervisor's reset routing).
    for name in names {
        let Some(c) = ring::find(name) else {
            fail!(m, "no channel end named {:?} in the device tree", name);
        };
        let (irq, vcpu) = (c.classes[0].irq.unwrap_or(0), c.classes[0].vcpu);
        match ring::route_of(irq) {
            Ok(r) if r == vcpu => println!(
                "ring: split: {} class 0: INTID {} routed to vCPU {} at reset",
                name,
                irq,
                r.unwrap_or(0)
            ),
            r => fail!(
                m,
                "{}: INTID {} reset routing {:?}, the DT says {:?}",
                name,
                irq,
                r,
                vcpu
            ),
        }
    }
    // CPU 0 sets up both ends' doorbells (routing each class to its DT CPU), then CPU 1 runs.
    let mut r0 = open_rx(m, names[0])?;
    let r1 = open_rx(m, names[1])?;
    let mut irqs = [0u32; 2];
    for (cpu, r) in [&r0, &r1].into_iter().enumerate() {
        let c = &r.info().classes[0];
        println!(
            "ring: split: {} class 0: doorbell INTID {} on vCPU {} (from the DT)",
            r.info().name,
            c.irq.unwrap_or(0),
            c.vcpu.unwrap_or(0)
        );
        if c.vcpu != Some(cpu) {
            fail!(
                m,
                "{}: the DT routes its doorbell to vCPU {:?}, not {}",
                r.info().name,
                c.vcpu,
                cpu
            );
        }
        irqs[cpu] = c.irq.unwrap_or(0);
    }
    drop(r1);
    if let Err(e) = tessera_guest_rt::cpu::start(1, split_cpu1) {
        fail!(m, "starting CPU 1: {:?}", e);
    }
    irq::enable_local();
    split_recv(&mut r0, n)?;
    let t0 = timer::now();
    while !SPLIT_CPU1_DONE.load(Ordering::SeqCst) {
        if timer::now() - t0 > timeout {
            fail!(m, "CPU 1 did not finish");
        }
        core::hint::spin_loop();
    }
    if SPLIT_CPU1_GOT.load(Ordering::SeqCst) != u64::from(n) {
        fail!(m, "CPU 1 failed");
    }
    for (cpu, name) in names.iter().enumerate() {
        println!(
            "ring: split: vCPU {}: {} messages of {} checked, doorbells taken {} (own INTID {}: {}, other INTID {}: {})",
            cpu,
            n,
            name,
            ring::doorbells_taken_on(cpu),
            irqs[cpu],
            ring::doorbell_seen_on(cpu, irqs[cpu]),
            irqs[1 - cpu],
            ring::doorbell_seen_on(cpu, irqs[1 - cpu])
        );
        if !ring::doorbell_seen_on(cpu, irqs[cpu]) || ring::doorbell_seen_on(cpu, irqs[1 - cpu]) {
            fail!(
                m,
                "vCPU {} did not take exactly its own channel's doorbells",
                cpu
            );
        }
    }
    println!("ring: split: ok");
    Ok(())
}
