//! Per-core real-time scheduling of vCPUs by servers, as pure logic (no_std, no heap).
//!
//! The EL2 hypervisor keeps one [`CoreScheduler`] per physical core that is shared by several
//! vCPUs. Each vCPU is one *server* with a budget Θ and a period Π ([`ServerParams`]); servers
//! are ordered by EDF or by fixed priority ([`Policy`]). The hypervisor reports events
//! ([`set_online`], [`wake`], [`block`], [`set_wake_timer`]) and calls [`schedule`], which
//! answers which vCPU to run and when to program the one-shot EL2 timer next ([`Decision`]).
//! There is no periodic tick. Semantics of the server kinds: see [`ServerKind`] and
//! `shared/RT-THEORY.md`.
//!
//! All times are absolute, monotonic counter ticks ([`Ticks`]). A time earlier than the last one
//! seen is treated as the last one seen.
//!
//! # Accounting contract
//! The server *charged* is exactly the one the last [`schedule`] returned in
//! [`Decision::charged`] (the running server, or a periodic server idling its budget away).
//! It is charged for all time from that call's `now` to the `now` of the next call of any
//! method that takes a `now`. Events due in between are processed at the next call, at the
//! instants they were due, so a late call (a timer interrupt taken late) still releases
//! periods at their exact boundaries.
//!
//! Late calls: a charged server that ran past the end of its budget (the timer interrupt came
//! late) has its budget saturate at 0; the overrun is not carried over as debt. A sporadic
//! server that ran a whole period Π without a call is treated conservatively: budget 0 and a
//! single replenishment of Θ at `now − Θ + Π`.
//!
//! Offline servers of every kind never compete for the core (a periodic server idles its
//! budget away only while its vCPU is online but blocked); their periods keep running.
//!
//! # Cost
//! Every method is O(N) in the number of servers with a small constant (one pass to charge and
//! process due events, one pass to pick, one pass to compute the timer), plus O(R) = O(8) per
//! sporadic server for its replenishment list. No allocation. Divisions happen only when a call
//! is late by at least a whole period (catching up many periods in O(1) instead of looping) —
//! never on the on-time path. The CBS wake-up test uses one 128-bit multiplication per wake.
//!
//! ```
//! use tessera_sched::*;
//! let servers = [
//!     ServerParams::new(ServerKind::Deferrable, 2, 10, 0),
//!     ServerParams::new(ServerKind::Deferrable, 5, 20, 1),
//! ];
//! let mut core: CoreScheduler<16> = CoreScheduler::new(Policy::Edf, &servers, 0).unwrap();
//! core.set_online(0, true, 0).unwrap();
//! core.set_online(1, true, 0).unwrap();
//! let d = core.schedule(0);
//! assert_eq!((d.run, d.timer), (Some(0), Some(2))); // deadline 10 < 20; budget ends at 2
//! let d = core.schedule(2);
//! assert_eq!((d.run, d.timer), (Some(1), Some(7)));
//! let d = core.schedule(7);
//! assert_eq!((d.run, d.timer), (None, Some(10))); // both depleted: idle until release at 10
//! ```
//!
//! [`set_online`]: CoreScheduler::set_online
//! [`wake`]: CoreScheduler::wake
//! [`block`]: CoreScheduler::block
//! [`set_wake_timer`]: CoreScheduler::set_wake_timer
//! [`schedule`]: CoreScheduler::schedule
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

mod trace;

pub use trace::{TraceEvent, TraceKind, TraceRing};

/// Absolute time or duration in counter ticks.
pub type Ticks = u64;

/// Largest number of servers one core can hold ([`Decision::woken`] is a 32-bit mask).
pub const MAX_SERVERS: usize = 32;

/// Capacity of a sporadic server's replenishment list.
///
/// When a new chunk must be recorded and the list is full, the chunk is merged into the newest
/// entry: that entry's amount grows by the chunk's and its time moves to the chunk's
/// replenishment time. Budget is thus returned later than exact, never earlier, so the
/// server's consumption in any window of length Π still stays ≤ Θ.
pub const SPORADIC_REPLENISHMENTS: usize = 8;

/// How a server treats budget while its vCPU has nothing to do (RT-Xen semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// Unused budget is kept until the period ends, then refilled to Θ.
    Deferrable,
    /// While it has budget and is the best contender but its vCPU is idle, its budget is
    /// consumed anyway and the core idles ([`Decision::charged`] without [`Decision::run`]).
    Periodic,
    /// When its vCPU blocks, goes offline, or is idle at a period boundary, its budget drops
    /// to 0 at once.
    Polling,
    /// Each chunk of continuous execution is returned one period after the chunk began.
    /// EDF deadline: Π after the server last became eligible (or after a replenishment that
    /// arrived at or after its previous deadline).
    Sporadic,
    /// Constant bandwidth server (Linux SCHED_DEADLINE): on wake-up, if `d < now` or
    /// `q/(d − now) > Θ/Π` then `d = now + Π, q = Θ`; at `q = 0` it is throttled until `d`,
    /// then `d += Π, q = Θ`. EDF deadline: `d`.
    Cbs,
}

/// How eligible servers are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Earliest deadline first; ties go to the lower server index. Deadline: end of the
    /// current period (deferrable, periodic, polling), see [`ServerKind`] for the others.
    Edf,
    /// Fixed priority, lower [`ServerParams::priority`] value first; ties to the lower index.
    FixedPriority,
}

/// One server's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServerParams {
    /// Budget policy.
    pub kind: ServerKind,
    /// Budget Θ per period, ticks (0 < Θ ≤ Π).
    pub budget: Ticks,
    /// Period Π, ticks (> 0).
    pub period: Ticks,
    /// Fixed-priority policy only: lower value = higher priority.
    pub priority: u32,
}

impl ServerParams {
    /// Shorthand constructor.
    pub const fn new(kind: ServerKind, budget: Ticks, period: Ticks, priority: u32) -> Self {
        Self {
            kind,
            budget,
            period,
            priority,
        }
    }
}

/// Why a scheduler could not be built or an event was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedError {
    /// More servers than the scheduler's `N` or than [`MAX_SERVERS`].
    TooManyServers,
    /// A server has period 0.
    ZeroPeriod {
        /// Server index.
        server: usize,
    },
    /// A server has budget 0.
    ZeroBudget {
        /// Server index.
        server: usize,
    },
    /// A server's budget exceeds its period.
    BudgetExceedsPeriod {
        /// Server index.
        server: usize,
    },
    /// A server index that does not exist on this core.
    NoSuchServer,
}

/// The answer of [`CoreScheduler::schedule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// The vCPU to run, or `None` to idle the core.
    pub run: Option<usize>,
    /// The server whose budget is consumed until the next call: equal to `run` when that is
    /// `Some`; a periodic server idling its budget away when `run` is `None`; else `None`.
    pub charged: Option<usize>,
    /// Absolute time at which `schedule` must be called again (program the one-shot EL2 timer),
    /// always later than `now`; `None` if nothing is due until the next event.
    pub timer: Option<Ticks>,
    /// Bit `s` set: server `s`'s wake timer fired since the previous `schedule` (inject its
    /// virtual timer interrupt).
    pub woken: u32,
}

/// Fixed-capacity, time-ordered list of pending sporadic replenishments `(time, amount)`.
#[derive(Clone, Copy, Debug)]
struct Replenishments {
    at: [(Ticks, Ticks); SPORADIC_REPLENISHMENTS],
    len: usize,
}

impl Replenishments {
    const EMPTY: Self = Self {
        at: [(0, 0); SPORADIC_REPLENISHMENTS],
        len: 0,
    };

    fn front(&self) -> Option<(Ticks, Ticks)> {
        if self.len == 0 {
            None
        } else {
            self.at.first().copied()
        }
    }

    fn pop_front(&mut self) {
        if self.len > 0 {
            self.at.copy_within(1..self.len, 0);
            self.len -= 1;
        }
    }

    /// Appends `(time, amount)`; `time` is never earlier than any held entry's (chunks start
    /// in order). When full, merges into the newest entry (see [`SPORADIC_REPLENISHMENTS`]).
    fn push(&mut self, time: Ticks, amount: Ticks) {
        if let Some(slot) = self.at.get_mut(self.len) {
            *slot = (time, amount);
            self.len += 1;
        } else if let Some(last) = self.at.last_mut() {
            last.0 = last.0.max(time);
            last.1 = last.1.saturating_add(amount);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (Ticks, Ticks)> + '_ {
        self.at.iter().take(self.len).copied()
    }
}

/// One server's state.
#[derive(Clone, Copy, Debug)]
struct Server {
    p: ServerParams,
    online: bool,
    /// The vCPU has work (not blocked). Runnable = `online && awake`.
    awake: bool,
    /// Remaining budget (CBS: q).
    budget: Ticks,
    /// Deferrable/periodic/polling: next release = end of the current period.
    /// CBS: d. Sporadic: EDF deadline (valid while `active`).
    deadline: Ticks,
    /// Wake timer of a blocked vCPU.
    wake_at: Option<Ticks>,
    /// Sporadic: eligible since `deadline - Π`.
    active: bool,
    /// Sporadic: start of the chunk being executed.
    chunk_start: Option<Ticks>,
    /// Sporadic: consumption in that chunk so far.
    chunk_used: Ticks,
    /// Sporadic: pending replenishments.
    repl: Replenishments,
}

impl Server {
    const UNUSED: Self = Self {
        p: ServerParams::new(ServerKind::Deferrable, 1, 1, u32::MAX),
        online: false,
        awake: false,
        budget: 0,
        deadline: Ticks::MAX,
        wake_at: None,
        active: false,
        chunk_start: None,
        chunk_used: 0,
        repl: Replenishments::EMPTY,
    };

    fn runnable(&self) -> bool {
        self.online && self.awake
    }

    /// May be picked: eligible (runnable with budget), or a periodic server with budget.
    fn contender(&self) -> bool {
        self.online
            && self.budget > 0
            && (self.awake || matches!(self.p.kind, ServerKind::Periodic))
    }

    /// Time of the next event that changes this server's budget or deadline by itself.
    fn next_budget_event(&self) -> Option<Ticks> {
        match self.p.kind {
            ServerKind::Deferrable | ServerKind::Periodic | ServerKind::Polling => {
                Some(self.deadline)
            }
            ServerKind::Sporadic => self.repl.front().map(|(t, _)| t),
            ServerKind::Cbs => (self.budget == 0).then_some(self.deadline),
        }
    }
}

/// The scheduler of one physical core: up to `N` servers, a trace ring of `T` events
/// (`T = 0`: no trace, no cost).
#[derive(Clone, Debug)]
pub struct CoreScheduler<const N: usize, const T: usize = 64> {
    policy: Policy,
    n: usize,
    servers: [Server; N],
    /// `now` of the last call.
    last: Ticks,
    /// Server charged since `last` (the last decision's `charged`).
    current: Option<usize>,
    /// The last decision's `run`.
    running: Option<usize>,
    /// Wake timers fired since the last `schedule`.
    woken: u32,
    trace: TraceRing<T>,
}

impl<const N: usize, const T: usize> CoreScheduler<N, T> {
    /// A scheduler with no servers (it never runs anything), to be set up in place with
    /// [`reset`](Self::reset): a `static` can hold it without building a large value on a
    /// small stack first.
    pub const EMPTY: Self = Self {
        policy: Policy::Edf,
        n: 0,
        servers: [Server::UNUSED; N],
        last: 0,
        current: None,
        running: None,
        woken: 0,
        trace: TraceRing::new(),
    };

    /// Makes `self` the scheduler [`new`](Self::new) would return, in place (the trace ring
    /// is emptied, its settings kept). On error `self` is unchanged.
    pub fn reset(
        &mut self,
        policy: Policy,
        servers: &[ServerParams],
        now: Ticks,
    ) -> Result<(), SchedError> {
        Self::validate(servers)?;
        self.policy = policy;
        self.n = servers.len();
        for (i, slot) in self.servers.iter_mut().enumerate() {
            *slot = match servers.get(i) {
                Some(&p) => Server {
                    p,
                    budget: p.budget,
                    deadline: now.saturating_add(p.period),
                    ..Server::UNUSED
                },
                None => Server::UNUSED,
            };
        }
        self.last = now;
        self.current = None;
        self.running = None;
        self.woken = 0;
        self.trace.clear();
        Ok(())
    }

    fn validate(servers: &[ServerParams]) -> Result<(), SchedError> {
        if servers.len() > N || servers.len() > MAX_SERVERS {
            return Err(SchedError::TooManyServers);
        }
        for (i, p) in servers.iter().enumerate() {
            if p.period == 0 {
                return Err(SchedError::ZeroPeriod { server: i });
            }
            if p.budget == 0 {
                return Err(SchedError::ZeroBudget { server: i });
            }
            if p.budget > p.period {
                return Err(SchedError::BudgetExceedsPeriod { server: i });
            }
        }
        Ok(())
    }

    /// A scheduler for `servers` (index = server number), all released at `now` with full
    /// budget and all offline.
    pub fn new(policy: Policy, servers: &[ServerParams], now: Ticks) -> Result<Self, SchedError> {
        Self::validate(servers)?;
        let servers_state = core::array::from_fn(|i| match servers.get(i) {
            Some(&p) => Server {
                p,
                budget: p.budget,
                deadline: now.saturating_add(p.period),
                ..Server::UNUSED
            },
            None => Server::UNUSED,
        });
        Ok(Self {
            policy,
            n: servers.len(),
            servers: servers_state,
            last: now,
            current: None,
            running: None,
            woken: 0,
            trace: TraceRing::new(),
        })
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the core has no server.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    fn check(&self, s: usize) -> Result<(), SchedError> {
        if s < self.n {
            Ok(())
        } else {
            Err(SchedError::NoSuchServer)
        }
    }

    /// Powers server `s`'s vCPU on (it starts runnable; a CBS applies its wake-up rule) or
    /// off (it leaves the competition, a polling server loses its budget). Either change
    /// cancels its wake timer; no change (already in that state) does nothing. Budget and
    /// releases continue on the period grid from [`new`](Self::new) while offline.
    /// Call [`schedule`](Self::schedule) afterwards.
    pub fn set_online(&mut self, s: usize, online: bool, now: Ticks) -> Result<(), SchedError> {
        self.check(s)?;
        let now = self.advance(now);
        let Some(srv) = self.servers.get_mut(s) else {
            return Ok(());
        };
        if online == srv.online {
            return Ok(());
        }
        srv.online = online;
        if online {
            self.record(now, TraceKind::Online, s, 0);
            self.do_wake(s, now, false);
        } else {
            srv.awake = false;
            srv.wake_at = None;
            self.record(now, TraceKind::Offline, s, 0);
            self.went_idle(s, now);
        }
        Ok(())
    }

    /// Server `s`'s vCPU has work (an interrupt is pending, it left WFI). Cancels its wake
    /// timer. Ignored for an offline vCPU. Call [`schedule`](Self::schedule) afterwards.
    pub fn wake(&mut self, s: usize, now: Ticks) -> Result<(), SchedError> {
        self.check(s)?;
        let now = self.advance(now);
        if let Some(srv) = self.servers.get_mut(s) {
            srv.wake_at = None;
            if srv.online && !srv.awake {
                self.do_wake(s, now, false);
            }
        }
        Ok(())
    }

    /// Server `s`'s vCPU is idle (trapped WFI with nothing pending). A polling server loses
    /// its remaining budget. Call [`schedule`](Self::schedule) afterwards.
    pub fn block(&mut self, s: usize, now: Ticks) -> Result<(), SchedError> {
        self.check(s)?;
        let now = self.advance(now);
        if let Some(srv) = self.servers.get_mut(s) {
            if srv.runnable() {
                srv.awake = false;
                self.record(now, TraceKind::Block, s, 0);
                self.went_idle(s, now);
            }
        }
        Ok(())
    }

    /// Sets (or with `None` cancels) the time at which blocked server `s` becomes runnable by
    /// itself (its virtual timer's deadline). It fires only while the vCPU is online and
    /// blocked; [`wake`](Self::wake) and going offline cancel it; a timer that expires while
    /// the vCPU is runnable is dropped. Firing sets the server's bit in
    /// [`Decision::woken`]. Call [`schedule`](Self::schedule) afterwards (usually right after
    /// [`block`](Self::block)) to get an updated timer.
    pub fn set_wake_timer(&mut self, s: usize, at: Option<Ticks>) -> Result<(), SchedError> {
        self.check(s)?;
        if let Some(srv) = self.servers.get_mut(s) {
            srv.wake_at = at;
        }
        Ok(())
    }

    /// Charges the charged server up to `now`, processes due period releases,
    /// replenishments and wake timers, and picks the server to run.
    ///
    /// Cost: O(N) — three passes over the servers (charge/catch up, pick, timer), each
    /// constant work except O([`SPORADIC_REPLENISHMENTS`]) for a sporadic server with due
    /// replenishments.
    pub fn schedule(&mut self, now: Ticks) -> Decision {
        let now = self.advance(now);

        // Pick: best contender by (key, index).
        let mut best: Option<(Ticks, usize)> = None;
        for (s, srv) in self.servers.iter().enumerate().take(self.n) {
            if srv.contender() {
                let k = self.key(srv);
                if best.is_none_or(|(bk, _)| k < bk) {
                    best = Some((k, s));
                }
            }
        }
        let charged = best.map(|(_, s)| s);
        let run = charged.filter(|&s| self.servers.get(s).is_some_and(Server::runnable));

        // Sporadic chunks: close the outgoing one, open the incoming one.
        if let Some(c) = self.current {
            if Some(c) != charged {
                self.close_chunk(c);
            }
        }
        if let Some(srv) = charged.and_then(|c| self.servers.get_mut(c)) {
            if srv.p.kind == ServerKind::Sporadic && srv.chunk_start.is_none() {
                srv.chunk_start = Some(now);
                srv.chunk_used = 0;
            }
        }

        if (run, charged) != (self.running, self.current) {
            match run {
                Some(s) => self.record(now, TraceKind::Switch, s, 0),
                None => self.record_raw(
                    now,
                    TraceKind::Idle,
                    charged.map_or(TraceEvent::NO_SERVER, |c| c as u8),
                    0,
                ),
            }
        }
        self.current = charged;
        self.running = run;

        let timer = self.next_timer(now, best);
        let woken = core::mem::take(&mut self.woken);
        Decision {
            run,
            charged,
            timer,
            woken,
        }
    }

    /// Records an event in the trace (the hypervisor uses it for [`TraceKind::Inject`]).
    /// `server` out of range is recorded as [`TraceEvent::NO_SERVER`].
    pub fn trace(&mut self, time: Ticks, kind: TraceKind, server: usize, arg: u64) {
        self.record(time, kind, server, arg);
    }

    /// The trace ring (read, iterate).
    pub fn trace_ring(&self) -> &TraceRing<T> {
        &self.trace
    }

    /// The trace ring (drain, clear, enable/disable).
    pub fn trace_ring_mut(&mut self) -> &mut TraceRing<T> {
        &mut self.trace
    }

    /// Removes and yields the recorded events, oldest first.
    pub fn drain_trace(&mut self) -> impl Iterator<Item = TraceEvent> + '_ {
        self.trace.drain()
    }

    /// Server `s`'s parameters.
    pub fn params(&self, s: usize) -> Option<ServerParams> {
        self.srv(s).map(|v| v.p)
    }

    /// Server `s`'s remaining budget (as of the last call; CBS: q).
    pub fn budget(&self, s: usize) -> Option<Ticks> {
        self.srv(s).map(|v| v.budget)
    }

    /// Server `s`'s EDF deadline as of the last call: end of the current period (deferrable,
    /// periodic, polling), `d` (CBS), Π after activation (sporadic; meaningful while it is
    /// eligible).
    pub fn deadline(&self, s: usize) -> Option<Ticks> {
        self.srv(s).map(|v| v.deadline)
    }

    /// Whether server `s`'s vCPU is online and not blocked.
    pub fn is_runnable(&self, s: usize) -> Option<bool> {
        self.srv(s).map(Server::runnable)
    }

    /// Whether server `s`'s vCPU is online.
    pub fn is_online(&self, s: usize) -> Option<bool> {
        self.srv(s).map(|v| v.online)
    }

    /// Whether server `s` competes for the core now: online with budget, and runnable or
    /// periodic (which then idles its budget away).
    pub fn is_contender(&self, s: usize) -> Option<bool> {
        self.srv(s).map(Server::contender)
    }

    /// Server `s`'s pending wake timer.
    pub fn wake_timer(&self, s: usize) -> Option<Ticks> {
        self.srv(s).and_then(|v| v.wake_at)
    }

    /// Sporadic server `s`'s pending replenishments `(time, amount)`, oldest first (empty for
    /// other kinds), written into `out`; returns how many.
    pub fn replenishments(&self, s: usize, out: &mut [(Ticks, Ticks)]) -> usize {
        let Some(v) = self.srv(s) else { return 0 };
        let mut k = 0;
        for (slot, e) in out.iter_mut().zip(v.repl.iter()) {
            *slot = e;
            k += 1;
        }
        k
    }

    /// The last decision's `(run, charged)`.
    pub fn current(&self) -> (Option<usize>, Option<usize>) {
        (self.running, self.current)
    }

    /// `now` of the last call.
    pub fn now(&self) -> Ticks {
        self.last
    }

    // ---- internals ----

    fn srv(&self, s: usize) -> Option<&Server> {
        if s < self.n {
            self.servers.get(s)
        } else {
            None
        }
    }

    fn key(&self, srv: &Server) -> Ticks {
        match self.policy {
            Policy::Edf => srv.deadline,
            Policy::FixedPriority => Ticks::from(srv.p.priority),
        }
    }

    fn record(&mut self, time: Ticks, kind: TraceKind, s: usize, arg: u64) {
        let server = if s < self.n && s < usize::from(TraceEvent::NO_SERVER) {
            s as u8
        } else {
            TraceEvent::NO_SERVER
        };
        self.record_raw(time, kind, server, arg);
    }

    #[inline]
    fn record_raw(&mut self, time: Ticks, kind: TraceKind, server: u8, arg: u64) {
        if T > 0 {
            self.trace.push(TraceEvent {
                time,
                kind,
                server,
                arg,
            });
        }
    }

    /// Brings the state to `now` (clamped to be monotonic) and returns it: charges the charged
    /// server, processes every server's due events in time order (wake timer before budget
    /// events due after it).
    fn advance(&mut self, now: Ticks) -> Ticks {
        let now = now.max(self.last);
        if let Some(c) = self.current {
            self.charge(c, self.last, now);
        }
        for s in 0..self.n {
            let Some(srv) = self.servers.get_mut(s) else {
                break;
            };
            if let Some(w) = srv.wake_at.filter(|&w| w <= now) {
                if srv.online && !srv.awake {
                    // Events due strictly before the wake see the vCPU blocked; one due at
                    // the same instant sees it runnable (a polling server keeps its budget).
                    if w > 0 {
                        self.process_events(s, w - 1);
                    }
                    self.woken |= 1u32 << (s as u32 & 31);
                    self.do_wake(s, w, true);
                } else {
                    srv.wake_at = None;
                }
            }
            self.process_events(s, now);
        }
        self.last = now;
        now
    }

    /// Charges server `c` for running from `from` to `to`, processing its own budget events
    /// in between (at most a few iterations: see the loop bound).
    fn charge(&mut self, c: usize, from: Ticks, to: Ticks) {
        let Some(srv) = self.servers.get_mut(c) else {
            return;
        };
        if to <= from {
            return;
        }
        if srv.p.kind == ServerKind::Sporadic && to - from >= srv.p.period {
            // Ran a whole period without a call: count its last Θ as one chunk that began Θ
            // before `to`, with nothing else pending (conservative; only for late calls).
            srv.repl = Replenishments::EMPTY;
            srv.repl
                .push(to - srv.p.budget + srv.p.period, srv.p.budget);
            srv.chunk_start = None;
            srv.chunk_used = 0;
            srv.active = false;
            if srv.budget > 0 {
                srv.budget = 0;
                self.record(to, TraceKind::Deplete, c, 0);
            }
            return;
        }
        let mut t = from;
        // Deferrable/periodic/polling and CBS need ≤ 3 iterations (catch-up is O(1)); a
        // sporadic server pops ≥ 1 entry per iteration and the entries it adds are due after
        // `to` (since `to − from < Π`).
        for _ in 0..SPORADIC_REPLENISHMENTS + 4 {
            let Some(srv) = self.servers.get(c) else {
                return;
            };
            let e = srv.next_budget_event();
            let sporadic = srv.p.kind == ServerKind::Sporadic;
            let seg_end = match e {
                Some(e) if e < to => e.max(t),
                _ => to,
            };
            self.consume(c, t, seg_end);
            let Some(e) = e.filter(|&e| e <= to) else {
                return;
            };
            let horizon = if sporadic { e } else { to };
            if let Some(r) = self.process_events(c, horizon) {
                t = t.max(r);
            } else {
                t = t.max(seg_end);
            }
            if let Some(srv) = self.servers.get_mut(c) {
                if srv.p.kind == ServerKind::Sporadic && srv.budget > 0 && srv.chunk_start.is_none()
                {
                    srv.chunk_start = Some(t);
                    srv.chunk_used = 0;
                }
            }
        }
    }

    /// Takes `[t0, t1)` of execution from `c`'s budget.
    fn consume(&mut self, c: usize, t0: Ticks, t1: Ticks) {
        let Some(srv) = self.servers.get_mut(c) else {
            return;
        };
        let dt = t1.saturating_sub(t0);
        if dt == 0 || srv.budget == 0 {
            return;
        }
        let used = dt.min(srv.budget);
        srv.budget -= used;
        if srv.p.kind == ServerKind::Sporadic {
            srv.chunk_used = srv.chunk_used.saturating_add(used);
        }
        if srv.budget == 0 {
            let at = t0 + used;
            if srv.p.kind == ServerKind::Sporadic {
                srv.active = false;
            }
            self.record(at, TraceKind::Deplete, c, 0);
            self.close_chunk(c);
        }
    }

    /// Ends server `c`'s sporadic chunk, scheduling its replenishment.
    fn close_chunk(&mut self, c: usize) {
        let Some(srv) = self.servers.get_mut(c) else {
            return;
        };
        if let Some(start) = srv.chunk_start.take() {
            if srv.chunk_used > 0 {
                srv.repl
                    .push(start.saturating_add(srv.p.period), srv.chunk_used);
            }
            srv.chunk_used = 0;
        }
    }

    /// Processes server `s`'s own budget events due at or before `t` (releases, sporadic
    /// replenishments, CBS refill), using its current runnable state. Several missed periods
    /// are caught up at once. Returns the time of the latest event processed.
    fn process_events(&mut self, s: usize, t: Ticks) -> Option<Ticks> {
        let srv = self.servers.get_mut(s)?;
        let p = srv.p;
        match p.kind {
            ServerKind::Deferrable | ServerKind::Periodic | ServerKind::Polling => {
                let r = srv.deadline;
                if r > t {
                    return None;
                }
                let (last, k) = if t - r < p.period {
                    (r, 1)
                } else {
                    let k = (t - r) / p.period;
                    (
                        r.saturating_add(k.saturating_mul(p.period)),
                        k.saturating_add(1),
                    )
                };
                srv.deadline = last.saturating_add(p.period);
                srv.budget = if p.kind == ServerKind::Polling && !srv.runnable() {
                    0
                } else {
                    p.budget
                };
                self.record(last, TraceKind::Release, s, k);
                Some(last)
            }
            ServerKind::Sporadic => {
                let mut latest = None;
                while let Some((at, amount)) = srv.repl.front() {
                    if at > t {
                        break;
                    }
                    srv.repl.pop_front();
                    srv.budget = srv.budget.saturating_add(amount).min(p.budget);
                    if srv.runnable() && srv.budget > 0 && (!srv.active || srv.deadline <= at) {
                        srv.active = true;
                        srv.deadline = at.saturating_add(p.period);
                    }
                    latest = Some(at);
                    if T > 0 {
                        self.trace.push(TraceEvent {
                            time: at,
                            kind: TraceKind::Replenish,
                            server: s as u8,
                            arg: amount,
                        });
                    }
                }
                latest
            }
            ServerKind::Cbs => {
                let d = srv.deadline;
                if srv.budget != 0 || d > t {
                    return None;
                }
                let r = if t - d < p.period {
                    d
                } else {
                    d.saturating_add(((t - d) / p.period).saturating_mul(p.period))
                };
                srv.deadline = r.saturating_add(p.period);
                srv.budget = p.budget;
                self.record(r, TraceKind::Replenish, s, p.budget);
                Some(r)
            }
        }
    }

    /// Server `s` becomes runnable at `t`: CBS wake-up rule, sporadic activation, trace.
    fn do_wake(&mut self, s: usize, t: Ticks, by_timer: bool) {
        let Some(srv) = self.servers.get_mut(s) else {
            return;
        };
        srv.awake = true;
        srv.wake_at = None;
        let p = srv.p;
        match p.kind {
            ServerKind::Cbs => {
                // Reset if d < t or q/(d − t) > Θ/Π, i.e. q·Π > Θ·(d − t) (d == t with q > 0
                // counts as overflow). A throttled server (q = 0, d > t) stays throttled.
                let reset = srv.deadline < t
                    || u128::from(srv.budget) * u128::from(p.period)
                        > u128::from(p.budget) * u128::from(srv.deadline - t);
                if reset {
                    srv.deadline = t.saturating_add(p.period);
                    srv.budget = p.budget;
                }
            }
            ServerKind::Sporadic if srv.budget > 0 && !srv.active => {
                srv.active = true;
                srv.deadline = t.saturating_add(p.period);
            }
            _ => {}
        }
        self.record(t, TraceKind::Wake, s, u64::from(by_timer));
    }

    /// Server `s`'s vCPU stopped being runnable at `t` (blocked or offline).
    fn went_idle(&mut self, s: usize, t: Ticks) {
        let Some(srv) = self.servers.get_mut(s) else {
            return;
        };
        match srv.p.kind {
            ServerKind::Polling if srv.budget > 0 => {
                srv.budget = 0;
                self.record(t, TraceKind::Deplete, s, 0);
            }
            ServerKind::Sporadic => srv.active = false,
            _ => {}
        }
    }

    /// The next time `schedule` must run, given the pick `best = (key, server)`: the charged
    /// server's budget exhaustion; wake timers of blocked online vCPUs; budget events (release,
    /// replenishment, CBS refill) of the charged server, and of other servers that are
    /// runnable (or periodic and online) and could beat the pick once the event happened.
    /// Events of other servers are processed lazily at the next call, which gives the same
    /// state since nothing about those servers changes in between.
    fn next_timer(&self, now: Ticks, best: Option<(Ticks, usize)>) -> Option<Ticks> {
        let mut timer: Option<Ticks> = None;
        let mut at = |t: Ticks| {
            if timer.is_none_or(|x| t < x) {
                timer = Some(t);
            }
        };
        if let Some(srv) = best.and_then(|(_, c)| self.servers.get(c)) {
            at(now.saturating_add(srv.budget));
        }
        for (j, srv) in self.servers.iter().enumerate().take(self.n) {
            if !srv.online {
                continue;
            }
            if !srv.awake {
                if let Some(w) = srv.wake_at {
                    at(w);
                }
                if srv.p.kind != ServerKind::Periodic {
                    continue;
                }
            }
            let Some(e) = srv.next_budget_event() else {
                continue;
            };
            let matters = match best {
                None => true,
                Some((_, c)) if c == j => true,
                Some((ck, c)) => {
                    let k = match self.policy {
                        Policy::Edf => e.saturating_add(srv.p.period),
                        Policy::FixedPriority => Ticks::from(srv.p.priority),
                    };
                    (k, j) < (ck, c)
                }
            };
            if matters {
                at(e);
            }
        }
        timer
    }
}
