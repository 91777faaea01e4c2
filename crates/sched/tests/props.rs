//! Property tests: a discrete-event driver feeds random wake/block/online/wake-timer sequences,
//! calls `schedule` exactly at the returned timer times and after every event, and checks the
//! scheduler against the driver's own model of the vCPUs and its own record of consumption.
//! Plus an exact simulation: always-busy servers under EDF with U ≤ 1 get exactly Θ per period.

use proptest::prelude::*;
use tessera_sched::*;

const MAXS: usize = 6;
type Core = CoreScheduler<8, 0>;

#[derive(Clone, Copy, Debug)]
enum Act {
    Wake(usize),
    Block(usize),
    Online(usize),
    Offline(usize),
    /// Block with a wake timer `delta` ticks ahead.
    Sleep(usize, u64),
}

fn kind_strategy() -> impl Strategy<Value = ServerKind> {
    prop_oneof![
        Just(ServerKind::Deferrable),
        Just(ServerKind::Periodic),
        Just(ServerKind::Polling),
        Just(ServerKind::Sporadic),
        Just(ServerKind::Cbs),
    ]
}

fn server_strategy() -> impl Strategy<Value = ServerParams> {
    (kind_strategy(), 1u64..40, 0u32..4, any::<u64>())
        .prop_map(|(k, period, prio, b)| ServerParams::new(k, 1 + b % period, period, prio))
}

fn act_strategy() -> impl Strategy<Value = (u64, Act)> {
    // Indices up to MAXS + 1 so that some are out of range.
    let s = 0..MAXS + 1;
    (
        0u64..25,
        prop_oneof![
            3 => s.clone().prop_map(Act::Wake),
            2 => s.clone().prop_map(Act::Block),
            1 => s.clone().prop_map(Act::Online),
            1 => s.clone().prop_map(Act::Offline),
            2 => (s, 0u64..40).prop_map(|(s, d)| Act::Sleep(s, d)),
        ],
    )
}

/// The driver's own view of the vCPUs and the consumption it observed.
struct Driver {
    core: Core,
    params: Vec<ServerParams>,
    policy: Policy,
    now: u64,
    dec: Decision,
    online: Vec<bool>,
    awake: Vec<bool>,
    wake_at: Vec<Option<u64>>,
    expect_woken: u32,
    /// Per server: intervals during which it was charged.
    charged: Vec<Vec<(u64, u64)>>,
    /// Per CBS server: consumption per scheduling deadline (deadline → amount).
    cbs_chunks: Vec<std::collections::BTreeMap<u64, u64>>,
    /// Deadline of the charged server at the last decision.
    charged_deadline: u64,
    /// Pseudo-random state for probe times.
    probe: u64,
}

impl Driver {
    fn new(policy: Policy, params: Vec<ServerParams>) -> Self {
        let core = Core::new(policy, &params, 0).unwrap();
        let n = params.len();
        Driver {
            core,
            policy,
            now: 0,
            dec: Decision {
                run: None,
                charged: None,
                timer: None,
                woken: 0,
            },
            online: vec![false; n],
            awake: vec![false; n],
            wake_at: vec![None; n],
            expect_woken: 0,
            charged: vec![Vec::new(); n],
            cbs_chunks: vec![Default::default(); n],
            charged_deadline: 0,
            params,
            probe: 1,
        }
    }

    /// Moves time to `t`, recording the consumption of the last decision, and mirrors the wake
    /// timers that expire in the driver's model.
    fn move_to(&mut self, t: u64) {
        assert!(t >= self.now);
        if let Some(c) = self.dec.charged {
            if t > self.now {
                self.charged[c].push((self.now, t));
                *self.cbs_chunks[c].entry(self.charged_deadline).or_default() += t - self.now;
            }
        }
        self.now = t;
        for s in 0..self.params.len() {
            if let Some(w) = self.wake_at[s] {
                if w <= t {
                    self.wake_at[s] = None;
                    if self.online[s] && !self.awake[s] {
                        self.awake[s] = true;
                        self.expect_woken |= 1 << s;
                    }
                }
            }
        }
    }

    fn act(&mut self, a: Act) {
        let n = self.params.len();
        let now = self.now;
        match a {
            Act::Wake(s) => {
                let r = self.core.wake(s, now);
                if s < n {
                    r.unwrap();
                    self.wake_at[s] = None;
                    if self.online[s] {
                        self.awake[s] = true;
                    }
                } else {
                    assert_eq!(r, Err(SchedError::NoSuchServer));
                }
            }
            Act::Block(s) | Act::Sleep(s, _) => {
                if let Act::Sleep(_, d) = a {
                    let r = self.core.set_wake_timer(s, Some(now + d));
                    if s < n {
                        r.unwrap();
                        self.wake_at[s] = Some(now + d);
                    }
                }
                let r = self.core.block(s, now);
                if s < n {
                    r.unwrap();
                    // The core processes a wake timer due now (block advances first): mirror
                    // that, then block.
                    self.move_to(now);
                    self.awake[s] = false;
                } else {
                    assert_eq!(r, Err(SchedError::NoSuchServer));
                }
            }
            Act::Online(s) | Act::Offline(s) => {
                let on = matches!(a, Act::Online(_));
                let r = self.core.set_online(s, on, now);
                if s < n {
                    r.unwrap();
                    if on != self.online[s] {
                        self.online[s] = on;
                        self.awake[s] = on;
                        self.wake_at[s] = None;
                    }
                } else {
                    assert_eq!(r, Err(SchedError::NoSuchServer));
                }
            }
        }
    }

    fn schedule(&mut self) {
        let now = self.now;
        let d = self.core.schedule(now);
        let n = self.params.len();
        assert_eq!(d.woken, self.expect_woken, "wake timers reported at {now}");
        self.expect_woken = 0;
        if let Some(t) = d.timer {
            assert!(t > now, "timer {t} not after now {now}");
        }
        // State agrees with the driver's model.
        for s in 0..n {
            assert_eq!(self.core.is_online(s), Some(self.online[s]));
            assert_eq!(
                self.core.is_runnable(s),
                Some(self.online[s] && self.awake[s]),
                "server {s} at {now}"
            );
            if self.online[s] && !self.awake[s] {
                if let Some(w) = self.wake_at[s] {
                    assert!(
                        d.timer.is_some_and(|t| t <= w),
                        "wake timer {w} of {s} missed"
                    );
                }
            }
            assert!(self.core.budget(s).unwrap() <= self.params[s].budget);
        }
        // Runs only an online, awake vCPU; run and charged agree.
        if let Some(r) = d.run {
            assert!(self.online[r] && self.awake[r], "ran blocked/offline {r}");
            assert_eq!(d.charged, Some(r));
        }
        // The charged server has budget and the timer stops it before the budget is gone.
        if let Some(c) = d.charged {
            let b = self.core.budget(c).unwrap();
            assert!(b > 0, "charged {c} without budget");
            assert!(d.timer.is_some_and(|t| t <= now + b));
            if d.run.is_none() {
                assert_eq!(self.params[c].kind, ServerKind::Periodic);
                assert!(!self.awake[c] && self.online[c]);
            }
        }
        // Charged is the best contender; no contender ⇒ nothing charged (work conservation).
        let key = |s: usize| -> (u64, usize) {
            match self.policy {
                Policy::Edf => (self.core.deadline(s).unwrap(), s),
                Policy::FixedPriority => (u64::from(self.params[s].priority), s),
            }
        };
        let best = (0..n)
            .filter(|&s| {
                let b = self.core.budget(s).unwrap();
                let c = self.online[s]
                    && b > 0
                    && (self.awake[s] || self.params[s].kind == ServerKind::Periodic);
                assert_eq!(self.core.is_contender(s), Some(c));
                c
            })
            .min_by_key(|&s| key(s));
        assert_eq!(d.charged, best, "pick at {now}");
        for s in 0..n {
            if self.online[s] && self.awake[s] && self.core.budget(s).unwrap() > 0 {
                assert!(d.charged.is_some(), "idle core while {s} is eligible");
            }
        }
        // Sporadic: budget + pending replenishments never exceed Θ; list time-ordered.
        for s in 0..n {
            if self.params[s].kind == ServerKind::Sporadic {
                let mut r = [(0, 0); 8];
                let k = self.core.replenishments(s, &mut r);
                let pending: u64 = r[..k].iter().map(|e| e.1).sum();
                assert!(self.core.budget(s).unwrap() + pending <= self.params[s].budget);
                assert!(r[..k].windows(2).all(|w| w[0].0 <= w[1].0));
            }
        }
        // The timer is not late: a call at any time before it decides the same.
        let horizon = d.timer.unwrap_or(now + 50);
        if horizon > now + 1 {
            self.probe = self
                .probe
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let t = now + 1 + (self.probe >> 33) % (horizon - now - 1);
            let mut clone = self.core.clone();
            let p = clone.schedule(t);
            assert_eq!(
                (p.run, p.charged, p.woken),
                (d.run, d.charged, 0),
                "probe at {t} (timer {horizon})"
            );
        }
        self.charged_deadline = d.charged.map_or(0, |c| self.core.deadline(c).unwrap());
        self.dec = d;
    }

    /// Runs until `t`, calling `schedule` at every timer on the way.
    fn run_until(&mut self, t: u64) {
        while let Some(tm) = self.dec.timer.filter(|&tm| tm <= t) {
            self.move_to(tm);
            self.schedule();
        }
        self.move_to(t);
    }

    /// Consumption bounds from the driver's own record.
    fn check_consumption(&self) {
        for (s, p) in self.params.iter().enumerate() {
            let iv = &self.charged[s];
            let used = |a: u64, b: u64| -> u64 {
                iv.iter()
                    .map(|&(x, y)| y.min(b).saturating_sub(x.max(a)))
                    .sum()
            };
            match p.kind {
                ServerKind::Deferrable | ServerKind::Periodic | ServerKind::Polling => {
                    let last = iv.last().map_or(0, |e| e.1);
                    let mut k = 0;
                    while k * p.period < last {
                        let u = used(k * p.period, (k + 1) * p.period);
                        assert!(u <= p.budget, "server {s} {p:?}: {u} in period {k}");
                        k += 1;
                    }
                }
                ServerKind::Sporadic => {
                    // The maximum over sliding windows is reached with a window starting at
                    // an interval start or ending at an interval end.
                    for &(x, y) in iv {
                        let a = used(x, x + p.period);
                        let b = used(y.saturating_sub(p.period), y);
                        assert!(
                            a <= p.budget && b <= p.budget,
                            "server {s} {p:?}: window at {x}/{y}: {a}/{b}"
                        );
                    }
                }
                ServerKind::Cbs => {
                    // CBS isolation (Abeni & Buttazzo 1998): budget served under deadline D
                    // was granted at D − Π; for any t1 = D_i − Π ≤ t2 = D_j, the service of
                    // chunks granted at or after t1 with deadline at or before t2 is at most
                    // Θ/Π·(t2 − t1). Each chunk is at most Θ.
                    let ch = &self.cbs_chunks[s];
                    for (&d, &e) in ch {
                        assert!(
                            e <= p.budget,
                            "server {s} {p:?}: chunk {e} with deadline {d}"
                        );
                    }
                    for &di in ch.keys() {
                        let t1 = di - p.period;
                        for &t2 in ch.keys().filter(|&&d| d >= di) {
                            let demand: u64 = ch.range(di..=t2).map(|(_, &e)| e).sum();
                            assert!(
                                demand * p.period <= p.budget * (t2 - t1),
                                "server {s} {p:?}: demand {demand} in [{t1},{t2}]"
                            );
                        }
                    }
                }
            }
        }
    }
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    prop_oneof![Just(Policy::Edf), Just(Policy::FixedPriority)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_events_keep_invariants(
        policy in policy_strategy(),
        params in proptest::collection::vec(server_strategy(), 1..=MAXS),
        acts in proptest::collection::vec(act_strategy(), 0..60),
    ) {
        let mut d = Driver::new(policy, params);
        d.schedule();
        for (delay, a) in acts {
            let t = d.now + delay;
            d.run_until(t);
            d.act(a);
            d.schedule();
        }
        let end = d.now + 100;
        d.run_until(end);
        d.check_consumption();
    }

    /// `schedule` called late (timer interrupts taken up to 60 ticks late): never panics, the
    /// timer is always in the future, releases stay on the period grid.
    #[test]
    fn late_calls_stay_sane(
        policy in policy_strategy(),
        params in proptest::collection::vec(server_strategy(), 1..=MAXS),
        acts in proptest::collection::vec((act_strategy(), 0u64..60), 0..60),
    ) {
        let mut c = Core::new(policy, &params, 0).unwrap();
        let mut now = 0;
        let mut timer = c.schedule(0).timer;
        for ((delay, a), late) in acts {
            let t = now + delay;
            while let Some(tm) = timer.filter(|&tm| tm + late <= t) {
                now = tm + late;
                timer = c.schedule(now).timer;
                prop_assert!(timer.is_none_or(|x| x > now));
            }
            now = t;
            let _ = match a {
                Act::Wake(s) => c.wake(s, now),
                Act::Block(s) => c.block(s, now),
                Act::Online(s) => c.set_online(s, true, now),
                Act::Offline(s) => c.set_online(s, false, now),
                Act::Sleep(s, d) => c.set_wake_timer(s, Some(now + d)).and_then(|_| c.block(s, now)),
            };
            let d = c.schedule(now);
            timer = d.timer;
            prop_assert!(timer.is_none_or(|x| x > now));
            for (s, p) in params.iter().enumerate() {
                prop_assert!(c.budget(s).unwrap() <= p.budget);
                if matches!(p.kind, ServerKind::Deferrable | ServerKind::Periodic | ServerKind::Polling) {
                    let dl = c.deadline(s).unwrap();
                    prop_assert_eq!(dl % p.period, 0);
                    prop_assert!(dl > now && dl <= now + p.period);
                }
                if p.kind == ServerKind::Sporadic {
                    let mut r = [(0, 0); 8];
                    let k = c.replenishments(s, &mut r);
                    let pending: u64 = r[..k].iter().map(|e| e.1).sum();
                    prop_assert!(c.budget(s).unwrap() + pending <= p.budget);
                }
            }
            if let Some(r) = d.run {
                prop_assert!(c.is_runnable(r).unwrap() && c.budget(r).unwrap() > 0);
            }
        }
    }

    /// Always-busy servers under EDF with U ≤ 1 get exactly Θ in every period (periods divide
    /// the hyperperiod 120; checked over two hyperperiods), and the core idles exactly 1 − U.
    #[test]
    fn edf_busy_servers_get_exactly_their_budget(
        raw in proptest::collection::vec((0usize..8, any::<u64>(), 0usize..4), 1..=6),
        stagger in any::<bool>(),
    ) {
        const H: u64 = 120;
        const PERIODS: [u64; 8] = [2, 3, 4, 5, 6, 8, 10, 12];
        let kinds = [ServerKind::Deferrable, ServerKind::Periodic, ServerKind::Polling, ServerKind::Cbs];
        let mut left = H; // utilisation left, in units of 1/H
        let mut params = Vec::new();
        for (pi, b, k) in raw {
            let period = PERIODS[pi];
            let max_budget = (left / (H / period)).min(period);
            if max_budget == 0 {
                continue;
            }
            let budget = 1 + b % max_budget;
            left -= budget * (H / period);
            params.push(ServerParams::new(kinds[k], budget, period, 0));
        }
        prop_assume!(!params.is_empty());
        let mut d = Driver::new(Policy::Edf, params.clone());
        for s in 0..params.len() {
            d.act(Act::Online(s));
            if stagger {
                d.schedule();
            }
        }
        d.schedule();
        d.run_until(2 * H);
        for (s, p) in params.iter().enumerate() {
            for k in 0..2 * H / p.period {
                let (a, b) = (k * p.period, (k + 1) * p.period);
                let u: u64 = d.charged[s].iter().map(|&(x, y)| y.min(b).saturating_sub(x.max(a))).sum();
                prop_assert_eq!(u, p.budget, "server {} {:?} period {}", s, p, k);
            }
        }
        let busy: u64 = d.charged.iter().flatten().map(|&(x, y)| y.min(2 * H) - x.min(2 * H)).sum();
        prop_assert_eq!(busy, 2 * (H - left));
    }
}

#[test]
fn edf_full_utilisation_example() {
    // U = 1/2 + 1/3 + 1/6 = 1.
    let params = vec![
        ServerParams::new(ServerKind::Deferrable, 2, 4, 0),
        ServerParams::new(ServerKind::Cbs, 2, 6, 0),
        ServerParams::new(ServerKind::Periodic, 2, 12, 0),
    ];
    let mut d = Driver::new(Policy::Edf, params.clone());
    for s in 0..3 {
        d.act(Act::Online(s));
    }
    d.schedule();
    d.run_until(48);
    let busy: u64 = d.charged.iter().flatten().map(|&(x, y)| y - x).sum();
    assert_eq!(busy, 48);
    d.check_consumption();
}
