//! The physical console: hypervisor messages (`[tessera] ...`), every VM's output one whole line
//! at a time (`[<vm>] ...`), and keyboard input routed to one VM at a time.
//!
//! Output, built so that no VM can slow another down through the console:
//! - Each VM assembles its line in a buffer of its own (a ticket lock only its own vCPUs share).
//!   A finished line is charged to the VM's **rate budget** (a token bucket of
//!   [`RATE_BYTES_PER_S`] bytes per second, [`BURST_BYTES`] deep, never refilled by a reset):
//!   over budget, the line is dropped and counted, and the hypervisor reports
//!   `vm <name>: console output over budget, <n> bytes dropped` at most once per
//!   [`REPORT_INTERVAL_MS`] (and when the VM resets or ends).
//! - Admitted lines are copied whole into one queue of formatted lines (`[<vm>] <line>\r\n`)
//!   in RAM. The queue's producer lock is a ticket lock (fair) held only for that copy, never
//!   while waiting on the UART. VM lines leave [`HYP_RESERVE`] bytes of the queue free, so the
//!   hypervisor's own lines always fit; a VM line that does not fit is dropped and counted.
//! - Whoever finishes a line then tries to take the **drainer** role (a flag taken with a
//!   compare-and-swap, never waited for by a VM) and moves queued bytes to the UART while its
//!   transmit FIFO has room, without waiting on it. Lines leave in the order they were queued,
//!   one byte stream, so lines never mix mid-line; a VM's lines keep their order.
//! - Hypervisor lines (`hprintln!`) are queued the same way and their caller waits until its
//!   line has reached the UART (taking the drainer role in turn): never dropped, and written
//!   before e.g. the power-off that follows the final line.
//!
//! Input focus: type Ctrl-T then a digit to send input to VM number <digit> (the order of the
//! config); Ctrl-T Ctrl-T sends a literal Ctrl-T. (Not Ctrl-A: QEMU's own console multiplexer
//! takes that one.) Each VM's received bytes wait in a queue of its own; a virtual UART's FR
//! reads look only at that queue. Where board.toml names the console's interrupt
//! (`console.irq`), received bytes interrupt the boot core ([`rx_interrupt`]) and no guest
//! access touches the physical UART; otherwise its receiver is polled by a DR or FR read of
//! any VM at most once per [`INPUT_POLL_US`] machine-wide (whoever passes the deadline first,
//! with a try-lock: nobody waits). Both also look after every drain.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use heapless::Vec;
use spin::mutex::TicketMutex;

use crate::arch::vcpu as hw;
use crate::config::{BOARD, VMS};
use crate::drivers::pl011::Pl011;
use crate::vm::{VmId, MAX_VMS};

/// Each VM's console rate budget: bytes per second (a line costs its length plus one).
/// A build constant for every VM (the config has no per-VM field yet).
pub const RATE_BYTES_PER_S: u64 = 4096;
/// Depth of the budget: bytes a VM may print at once after being quiet.
pub const BURST_BYTES: u64 = 8192;
/// At most one over-budget report per VM per this many milliseconds.
pub const REPORT_INTERVAL_MS: u64 = 1000;
/// Bytes of formatted lines waiting for the UART.
const QUEUE_SIZE: usize = 16 * 1024;
/// Free queue bytes that only hypervisor lines may use.
pub const HYP_RESERVE: usize = 4 * 1024;
/// Longest VM line (bytes without the newline); a longer one is cut into lines of this size.
const LINE_MAX: usize = 200;
/// Longest VM name shown in a line prefix.
const NAME_MAX: usize = 32;
/// A VM line as queued: `[` name `] ` line `\r\n`.
const VM_LINE_CAP: usize = LINE_MAX + NAME_MAX + 10;
/// A hypervisor line as queued (a longer message is cut, ending in `...`).
const HYP_LINE_CAP: usize = 400;
/// Bytes of input each VM can hold (a pasted line or a scenario's command arrives faster than
/// a guest's receive interrupt drains it).
const INPUT_DEPTH: usize = 1024;
/// Most bytes one poll moves from the physical receiver.
const POLL_MAX: usize = 64;
/// The physical receiver is polled at most this often by guests' UART reads.
pub const INPUT_POLL_US: u64 = 50;
/// Ctrl-T: the input focus escape.
const ESCAPE: u8 = 0x14;

fn uart() -> Pl011 {
    Pl011::new(BOARD.console_uart)
}

// ---------------------------------------------------------------------------------------------
// The output queue.

/// Formatted lines waiting for the UART: a byte ring with producers serialized by
/// [`PRODUCER`] and one consumer, the holder of [`DRAINER`].
struct Queue {
    bytes: [AtomicU8; QUEUE_SIZE],
    /// Bytes ever queued (moved only under [`PRODUCER`], published with Release).
    tail: AtomicUsize,
    /// Bytes ever handed to the UART (moved only by the drainer).
    head: AtomicUsize,
}

static QUEUE: Queue = Queue {
    bytes: [const { AtomicU8::new(0) }; QUEUE_SIZE],
    tail: AtomicUsize::new(0),
    head: AtomicUsize::new(0),
};
/// Serializes producers of [`QUEUE`] for the copy of one line (fair: a ticket lock).
static PRODUCER: TicketMutex<()> = TicketMutex::new(());
/// Held by the one core moving queued bytes to the UART; only ever try-locked.
static DRAINER: AtomicBool = AtomicBool::new(false);

/// Appends `line` whole if at least `reserve` bytes stay free after it; its end position.
fn enqueue(line: &[u8], reserve: usize) -> Option<usize> {
    let _g = PRODUCER.lock();
    let tail = QUEUE.tail.load(Ordering::Relaxed);
    let used = tail.wrapping_sub(QUEUE.head.load(Ordering::Acquire));
    if used + line.len() + reserve > QUEUE_SIZE {
        return None;
    }
    for (i, &b) in line.iter().enumerate() {
        QUEUE.bytes[tail.wrapping_add(i) % QUEUE_SIZE].store(b, Ordering::Relaxed);
    }
    let end = tail.wrapping_add(line.len());
    QUEUE.tail.store(end, Ordering::Release);
    Some(end)
}

fn try_take_drainer() -> bool {
    DRAINER
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

fn release_drainer() {
    DRAINER.store(false, Ordering::Release);
}

/// Whether the queue holds bytes not yet handed to the UART.
fn pending() -> bool {
    QUEUE.tail.load(Ordering::Acquire) != QUEUE.head.load(Ordering::Relaxed)
}

/// With the drainer role held: hands queued bytes to the UART until the queue is empty or
/// the transmit FIFO is full; bytes before position `wait_until` are written even if that
/// means waiting for the FIFO. Returns whether it stopped at a full FIFO.
fn drain_held(wait_until: usize) -> bool {
    let uart = uart();
    let mut head = QUEUE.head.load(Ordering::Relaxed);
    loop {
        let tail = QUEUE.tail.load(Ordering::Acquire);
        if head == tail {
            return false;
        }
        while head != tail {
            let b = QUEUE.bytes[head % QUEUE_SIZE].load(Ordering::Relaxed);
            if (head.wrapping_sub(wait_until) as isize) < 0 {
                uart.write_byte(b);
            } else if !uart.try_write_byte(b) {
                QUEUE.head.store(head, Ordering::Release);
                return true;
            }
            head = head.wrapping_add(1);
        }
        QUEUE.head.store(head, Ordering::Release);
    }
}

/// Moves what is queued to the UART without waiting for it, if no other core is doing so.
fn drain() {
    loop {
        if !try_take_drainer() {
            return;
        }
        let stalled = drain_held(QUEUE.head.load(Ordering::Relaxed));
        release_drainer();
        // A producer that failed to take the role just before it was released left its line
        // to us: look again.
        if stalled || !pending() {
            break;
        }
    }
    poll_input();
}

/// Waits until every queued byte before position `end` has been handed to the UART.
fn wait_written(end: usize) {
    while (QUEUE.head.load(Ordering::Acquire).wrapping_sub(end) as isize) < 0 {
        if try_take_drainer() {
            drain_held(end);
            release_drainer();
        } else {
            core::hint::spin_loop();
        }
    }
    // Bytes queued meanwhile by producers that found the role taken.
    if pending() {
        drain();
    }
}

// ---------------------------------------------------------------------------------------------
// Hypervisor lines.

/// A line being formatted: `\n` becomes `\r\n`; what does not fit is cut and marked `...`.
struct Staging<const N: usize> {
    buf: Vec<u8, N>,
    cut: bool,
}

impl<const N: usize> Staging<N> {
    const fn new() -> Self {
        Staging {
            buf: Vec::new(),
            cut: false,
        }
    }

    /// Appends `b`, keeping room for a final `...\r\n`.
    fn push(&mut self, b: u8) {
        if self.cut || self.buf.len() + 5 >= N {
            self.cut = true;
            return;
        }
        let _ = self.buf.push(b);
    }

    fn finish(&mut self) -> &[u8] {
        if self.cut {
            let _ = self.buf.extend_from_slice(b"...");
        }
        let _ = self.buf.extend_from_slice(b"\r\n");
        &self.buf
    }
}

impl<const N: usize> Write for Staging<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.push(b'\r');
            }
            self.push(b);
        }
        Ok(())
    }
}

/// Prints `[tessera] <args>` and a newline, whole, after every line queued before it; returns
/// once the line has reached the UART.
pub fn hyp_println(args: fmt::Arguments) {
    let mut s = Staging::<HYP_LINE_CAP>::new();
    let _ = s.write_fmt(format_args!("[tessera] {}", args));
    let line = s.finish();
    let end = loop {
        if let Some(end) = enqueue(line, 0) {
            break end;
        }
        // Full (the hypervisor printed more than the reserve at once): make room.
        let head = QUEUE.head.load(Ordering::Acquire);
        wait_written(head.wrapping_add(line.len()));
    };
    wait_written(end);
}

/// Prints without the queue's lock (panic and fatal paths, where it may be held): first
/// writes what is queued if the drainer role can be had within a bounded wait.
pub fn emergency_print(args: fmt::Arguments) {
    let mut held = false;
    for _ in 0..1_000_000 {
        if try_take_drainer() {
            held = true;
            break;
        }
        core::hint::spin_loop();
    }
    if held {
        drain_held(QUEUE.tail.load(Ordering::Acquire));
    }
    let _ = Raw.write_fmt(args);
    if held {
        release_drainer();
    }
}

/// Writes straight to the UART, waiting on it.
struct Raw;
impl Write for Raw {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let uart = uart();
        for b in s.bytes() {
            if b == b'\n' {
                uart.write_byte(b'\r');
            }
            uart.write_byte(b);
        }
        Ok(())
    }
}

/// `hyp_println!`-style convenience.
#[macro_export]
macro_rules! hprintln {
    ($($arg:tt)*) => { $crate::console::hyp_println(format_args!($($arg)*)) };
}

// ---------------------------------------------------------------------------------------------
// VM output.

/// One VM's output state: its line being assembled and its rate budget.
struct VmConsole {
    line: Vec<u8, LINE_MAX>,
    /// Budget left in byte-ticks (bytes × counter frequency).
    credit: u64,
    /// Counter value of the last refill; 0: the budget was never used (it starts full).
    refilled_at: u64,
    /// Bytes dropped over budget since the last report.
    over_budget: u64,
    /// Bytes dropped because the queue was full, since the last report.
    queue_full: u64,
    /// Counter value of the last report.
    reported_at: u64,
}

impl VmConsole {
    const fn new() -> Self {
        VmConsole {
            line: Vec::new(),
            credit: 0,
            refilled_at: 0,
            over_budget: 0,
            queue_full: 0,
            reported_at: 0,
        }
    }

    /// Charges `bytes` to the budget at counter time `now`; false: over budget (nothing
    /// charged).
    fn charge(&mut self, bytes: u64, now: u64, freq: u64) -> bool {
        let cap = BURST_BYTES.saturating_mul(freq);
        if self.refilled_at == 0 {
            self.credit = cap;
        } else {
            let gained = now
                .saturating_sub(self.refilled_at)
                .saturating_mul(RATE_BYTES_PER_S);
            self.credit = self.credit.saturating_add(gained).min(cap);
        }
        self.refilled_at = now.max(1);
        let cost = bytes.saturating_mul(freq);
        if self.credit >= cost {
            self.credit -= cost;
            true
        } else {
            false
        }
    }

    /// Sends the assembled line (to the queue, or to the drop counts) and clears it. Returns
    /// whether a line was queued.
    fn commit(&mut self, vm: VmId) -> bool {
        let now = hw::now();
        let cost = self.line.len() as u64 + 1;
        let queued = if self.charge(cost, now, hw::counter_frequency()) {
            let mut s = Staging::<VM_LINE_CAP>::new();
            s.push(b'[');
            let name = VMS.get(vm.index()).map_or("?", |v| v.name);
            for &b in name.as_bytes().iter().take(NAME_MAX) {
                s.push(b);
            }
            s.push(b']');
            s.push(b' ');
            for &b in self.line.iter() {
                // Control characters other than tab would garble the shared console.
                s.push(if b == b'\t' || (0x20..0x7f).contains(&b) {
                    b
                } else {
                    b'.'
                });
            }
            let text = s.finish();
            let mut r = enqueue(text, HYP_RESERVE);
            if r.is_none() {
                // Make room if the UART takes it, then try once more.
                drain();
                r = enqueue(text, HYP_RESERVE);
            }
            if r.is_none() {
                self.queue_full += cost;
            }
            r.is_some()
        } else {
            self.over_budget += cost;
            false
        };
        self.line.clear();
        queued
    }

    /// The drop counts to report now (and resets them), if a report is due: `force` at a
    /// reset or power-off, else once per [`REPORT_INTERVAL_MS`].
    fn take_report(&mut self, force: bool) -> Option<(u64, u64)> {
        if self.over_budget == 0 && self.queue_full == 0 {
            return None;
        }
        let now = hw::now();
        let interval = hw::counter_frequency().saturating_mul(REPORT_INTERVAL_MS) / 1000;
        if !force && self.reported_at != 0 && now.saturating_sub(self.reported_at) < interval {
            return None;
        }
        self.reported_at = now.max(1);
        let r = (self.over_budget, self.queue_full);
        self.over_budget = 0;
        self.queue_full = 0;
        Some(r)
    }
}

/// Per VM; locked by that VM's own vCPUs only (and by the hypervisor acting for the VM).
static VM_CONSOLES: [TicketMutex<VmConsole>; MAX_VMS] =
    [const { TicketMutex::new(VmConsole::new()) }; MAX_VMS];

fn report(vm: VmId, (over_budget, queue_full): (u64, u64)) {
    let name = VMS.get(vm.index()).map_or("?", |v| v.name);
    if queue_full == 0 {
        hyp_println(format_args!(
            "vm {}: console output over budget, {} bytes dropped",
            name, over_budget
        ));
    } else {
        hyp_println(format_args!(
            "vm {}: console output over budget, {} bytes dropped ({} more with the console queue full)",
            name, over_budget, queue_full
        ));
    }
}

/// VM `vm`'s console output: lines are emitted whole, prefixed with the VM's name, within the
/// VM's rate budget.
pub fn vm_write(vm: VmId, bytes: impl IntoIterator<Item = u8>) {
    let Some(state) = VM_CONSOLES.get(vm.index()) else {
        return;
    };
    let mut queued = false;
    let due = {
        let mut c = state.lock();
        for byte in bytes {
            match byte {
                b'\r' => {}
                b'\n' => queued |= c.commit(vm),
                _ => {
                    if c.line.is_full() {
                        queued |= c.commit(vm);
                    }
                    let _ = c.line.push(byte);
                }
            }
        }
        c.take_report(false)
    };
    if queued {
        drain();
    }
    if let Some(r) = due {
        report(vm, r);
    }
}

/// One byte of VM `vm`'s console output (see [`vm_write`]).
pub fn vm_output(vm: VmId, byte: u8) {
    vm_write(vm, [byte]);
}

/// Emits what VM `vm` printed without a final newline, and reports what it had dropped (when
/// it resets or powers off).
pub fn vm_flush(vm: VmId) {
    let Some(state) = VM_CONSOLES.get(vm.index()) else {
        return;
    };
    let due = {
        let mut c = state.lock();
        if !c.line.is_empty() {
            c.commit(vm);
        }
        c.take_report(true)
    };
    drain();
    if let Some(r) = due {
        report(vm, r);
    }
}

// ---------------------------------------------------------------------------------------------
// Input.

/// One VM's received bytes: single producer (the holder of [`INPUT_POLLER`]), consumed by the
/// VM's vCPUs under its [`VM_CONSOLES`] lock.
struct InputQueue {
    bytes: [AtomicU8; INPUT_DEPTH],
    /// Bytes ever pushed.
    tail: AtomicUsize,
    /// Bytes ever taken.
    head: AtomicUsize,
}

impl InputQueue {
    const fn new() -> Self {
        InputQueue {
            bytes: [const { AtomicU8::new(0) }; INPUT_DEPTH],
            tail: AtomicUsize::new(0),
            head: AtomicUsize::new(0),
        }
    }

    fn is_empty(&self) -> bool {
        self.tail.load(Ordering::Acquire) == self.head.load(Ordering::Acquire)
    }

    /// Producer side; false when full (the byte is lost).
    fn push(&self, b: u8) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        if tail.wrapping_sub(self.head.load(Ordering::Acquire)) >= INPUT_DEPTH {
            return false;
        }
        self.bytes[tail % INPUT_DEPTH].store(b, Ordering::Relaxed);
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// Consumer side (under the VM's lock).
    fn pop(&self) -> Option<u8> {
        let head = self.head.load(Ordering::Relaxed);
        if head == self.tail.load(Ordering::Acquire) {
            return None;
        }
        let b = self.bytes[head % INPUT_DEPTH].load(Ordering::Relaxed);
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Some(b)
    }
}

static INPUT: [InputQueue; MAX_VMS] = [const { InputQueue::new() }; MAX_VMS];
/// The VM (config order) that gets keyboard input.
static FOCUS: AtomicUsize = AtomicUsize::new(0);
/// A Ctrl-T was read; the next byte picks the focus (only touched by the poller).
static ESCAPED: AtomicBool = AtomicBool::new(false);
/// Held by the one core reading the physical receiver; only ever try-locked.
static INPUT_POLLER: AtomicBool = AtomicBool::new(false);
/// Counter value before which guests' UART reads do not poll the physical receiver.
static NEXT_POLL: AtomicU64 = AtomicU64::new(0);

/// What a poll has to say once the poller role is released.
enum Notice {
    Focus(usize),
    BadFocus,
}

/// Moves whatever arrived on the physical UART into the focused VM's input queue, unless
/// another core is doing it.
fn poll_input() {
    if INPUT_POLLER
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    let mut notices: Vec<Notice, 4> = Vec::new();
    let mut got_input = false;
    let uart = uart();
    // Bounded: a fast typist (or a pasted text) cannot keep one core here.
    let mut dropped = 0u32;
    for _ in 0..POLL_MAX {
        let Some(b) = uart.read_byte() else { break };
        if ESCAPED.load(Ordering::Relaxed) {
            ESCAPED.store(false, Ordering::Relaxed);
            if b != ESCAPE {
                let n = b.wrapping_sub(b'0') as usize;
                if n < VMS.len() {
                    FOCUS.store(n, Ordering::Relaxed);
                    let _ = notices.push(Notice::Focus(n));
                } else {
                    let _ = notices.push(Notice::BadFocus);
                }
                continue;
            }
        } else if b == ESCAPE {
            ESCAPED.store(true, Ordering::Relaxed);
            continue;
        }
        if let Some(q) = INPUT.get(FOCUS.load(Ordering::Relaxed)) {
            if q.push(b) {
                got_input = true;
            } else {
                dropped += 1;
            }
        }
    }
    INPUT_POLLER.store(false, Ordering::Release);
    let focus = FOCUS.load(Ordering::Relaxed);
    if got_input {
        crate::vdev::vuart_input_arrived(VmId(focus));
    }
    if dropped > 0 {
        hyp_println(format_args!(
            "console: {} input byte(s) for {} dropped: it has {} unread",
            dropped,
            VMS.get(focus).map_or("?", |v| v.name),
            INPUT_DEPTH
        ));
    }
    for n in notices {
        match n {
            Notice::Focus(n) => hyp_println(format_args!("console input -> {}", VMS[n].name)),
            Notice::BadFocus => hyp_println(format_args!(
                "console: Ctrl-T then 0..{} picks the VM that gets input (Ctrl-T Ctrl-T sends Ctrl-T); input stays with {}",
                VMS.len() - 1,
                VMS.get(FOCUS.load(Ordering::Relaxed)).map_or("?", |v| v.name)
            )),
        }
    }
}

/// The console's receive interrupt (board.toml `console.irq`): moves what arrived to the VM
/// with the focus.
pub fn rx_interrupt() {
    poll_input();
}

/// Lets the physical receiver interrupt (boot core, before any VM runs).
pub fn enable_rx_interrupt() {
    uart().enable_rx_interrupt();
}

/// Polls the physical receiver if the machine-wide poll interval has passed.
fn maybe_poll_input() {
    if BOARD.console_irq.is_some() {
        // Input interrupts the hypervisor (`rx_interrupt`): guests' status reads never touch
        // the physical UART.
        return;
    }
    let now = hw::now();
    let next = NEXT_POLL.load(Ordering::Relaxed);
    if now < next {
        return;
    }
    let interval = hw::counter_frequency().saturating_mul(INPUT_POLL_US) / 1_000_000;
    if NEXT_POLL
        .compare_exchange(
            next,
            now.saturating_add(interval),
            Ordering::Relaxed,
            Ordering::Relaxed,
        )
        .is_ok()
    {
        poll_input();
    }
}

/// Whether VM `vm` has input waiting (its own queue; the physical receiver is polled at most
/// once per [`INPUT_POLL_US`] machine-wide).
pub fn vm_input_ready(vm: VmId) -> bool {
    let Some(q) = INPUT.get(vm.index()) else {
        return false;
    };
    if q.is_empty() {
        maybe_poll_input();
    }
    !q.is_empty()
}

/// Takes one input byte for VM `vm`.
pub fn vm_input_pop(vm: VmId) -> Option<u8> {
    let (q, state) = (INPUT.get(vm.index())?, VM_CONSOLES.get(vm.index())?);
    if q.is_empty() {
        maybe_poll_input();
    }
    let _g = state.lock();
    q.pop()
}

/// Drops input VM `vm` has not read yet (it is being reset).
pub fn vm_input_clear(vm: VmId) {
    if let (Some(q), Some(state)) = (INPUT.get(vm.index()), VM_CONSOLES.get(vm.index())) {
        let _g = state.lock();
        while q.pop().is_some() {}
    }
}
