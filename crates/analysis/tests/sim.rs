//! The analysis against exact discrete-time simulation (integer µs, one tick = 1 µs).
//!
//! * core EDF / FP (synchronous periodic tasks, D ≤ T, no jitter): verdict == simulation;
//! * deferrable servers under FP and EDF with adversarial (late, back-to-back) demand:
//!   accepted sets never deny a backlogged server its budget;
//! * guest EDF / FP in a periodic resource (worst-case and random supply patterns): accepted
//!   sets never miss; the pessimism (rejected but feasible in the worst-case pattern) is
//!   printed by `pessimism_of_guest_tests` (run with `--nocapture`);
//! * `min_budget`: the result passes and one µs less fails;
//! * `sbf`: monotone, ≤ t, periodic, and equal to the true least supply.

use proptest::prelude::*;
use tessera_analysis::*;

const PERIODS: [u64; 13] = [2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 24, 30, 40];

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

fn hyperperiod(tasks: &[Task]) -> u64 {
    tasks.iter().fold(1, |h, t| lcm(h, t.period))
}

/// Small deterministic generator for the statistics test and for supply patterns.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Simulates periodic tasks (D ≤ T, first release at `offset`, then every T) on a processor
/// available at tick t iff `available(t)`, until `end`. Returns true iff every job whose
/// deadline is ≤ `end` completes by its deadline.
fn simulate(
    tasks: &[Task],
    policy: Policy,
    offset: u64,
    end: u64,
    available: &dyn Fn(u64) -> bool,
) -> bool {
    let n = tasks.len();
    let mut remaining = vec![0u64; n];
    let mut deadline = vec![0u64; n];
    for t in offset..=end {
        for i in 0..n {
            if remaining[i] > 0 && deadline[i] <= t {
                return false;
            }
            if (t - offset).is_multiple_of(tasks[i].period) {
                remaining[i] = tasks[i].wcet;
                deadline[i] = t + tasks[i].deadline;
            }
        }
        if t == end || !available(t) {
            continue;
        }
        let ready = (0..n).filter(|&i| remaining[i] > 0);
        let pick = match policy {
            Policy::Edf => ready.min_by_key(|&i| (deadline[i], i)),
            Policy::FixedPriority => ready.min_by_key(|&i| (tasks[i].priority, i)),
        };
        if let Some(i) = pick {
            remaining[i] -= 1;
        }
    }
    true
}

/// Task sets: n tasks with periods from `PERIODS`, `1 ≤ C ≤ D ≤ T` (constrained deadlines),
/// distinct priorities (the input order), so the hyperperiod stays ≤ 120.
fn task_set(max_tasks: usize) -> impl Strategy<Value = Vec<Task>> {
    prop::collection::vec((0..PERIODS.len(), 0.0f64..1.0, 0.0f64..1.0), 1..=max_tasks).prop_map(
        |raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (p, c, d))| {
                    let period = PERIODS[p];
                    // Bias towards small C so that sets are near the boundary.
                    let wcet = 1 + ((c * c * period as f64 * 0.7) as u64).min(period - 1);
                    let deadline = wcet + (d * (period - wcet + 1) as f64) as u64;
                    Task::new(wcet, period, deadline.min(period), i as u32)
                })
                .collect()
        },
    )
}

fn dedicated(_: u64) -> bool {
    true
}

/// Worst-case periodic-resource supply seen from time Θ: budget at the start of period 0,
/// at the end of every later period (blackout 2(Π − Θ) after t = Θ).
fn worst_supply(period: u64, budget: u64) -> impl Fn(u64) -> bool {
    move |t| {
        let k = t / period;
        let r = t % period;
        if k == 0 {
            r < budget
        } else {
            r >= period - budget
        }
    }
}

/// Horizon for the guest simulations: long enough to see several hyperperiods of tasks and
/// resource after the blackout.
fn guest_end(tasks: &[Task], period: u64, offset: u64) -> u64 {
    offset + 2 * lcm(hyperperiod(tasks), period) + 2 * period + 40
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn core_edf_is_exact(tasks in task_set(5)) {
        let verdict = core_edf(&tasks, &Overheads::NONE);
        prop_assert!(!matches!(verdict, Err(Error::Analysis(_))), "{verdict:?}");
        let h = hyperperiod(&tasks);
        let sim = simulate(&tasks, Policy::Edf, 0, h, &dedicated);
        prop_assert_eq!(verdict.is_ok(), sim, "{:?}", verdict);
    }

    #[test]
    fn core_fp_is_exact(tasks in task_set(5)) {
        let verdict = core_fp(&tasks, &Overheads::NONE);
        prop_assert!(!matches!(verdict, Err(Error::Analysis(_))), "{verdict:?}");
        let h = hyperperiod(&tasks);
        let sim = simulate(&tasks, Policy::FixedPriority, 0, h, &dedicated);
        prop_assert_eq!(verdict.is_ok(), sim, "{:?}", verdict);
        if let Ok(rep) = verdict {
            // The reported response time of each task is reached by its first job: removing
            // one µs from its deadline makes the simulation miss.
            for (i, &r) in rep.response_times().iter().enumerate() {
                prop_assert!(r <= tasks[i].deadline);
                if r > tasks[i].wcet {
                    let mut tighter = tasks.clone();
                    tighter[i].deadline = r - 1;
                    prop_assert!(!simulate(&tighter, Policy::FixedPriority, 0, h, &dedicated));
                }
            }
        }
    }

    #[test]
    fn overheads_only_make_it_harder(tasks in task_set(4), o in 0u64..3, b in 0u64..4) {
        let ov = Overheads { per_activation: o, blocking: b };
        if core_edf(&tasks, &ov).is_ok() {
            prop_assert!(core_edf(&tasks, &Overheads::NONE).is_ok());
            // Inflated tasks meet their deadlines in simulation.
            let inflated: Vec<Task> = tasks.iter().map(|t| Task { wcet: t.wcet + o, ..*t }).collect();
            if inflated.iter().all(|t| t.wcet <= t.deadline) {
                prop_assert!(simulate(&inflated, Policy::Edf, 0, hyperperiod(&tasks), &dedicated));
            }
        }
        if core_fp(&tasks, &ov).is_ok() {
            prop_assert!(core_fp(&tasks, &Overheads::NONE).is_ok());
        }
    }

    #[test]
    fn guest_tests_are_sufficient(
        tasks in task_set(3),
        p in 0..PERIODS.len(),
        frac in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        let period = PERIODS[p];
        let budget = ((frac * period as f64).round() as u64).clamp(1, period);
        let resource = PeriodicResource::new(period, budget).unwrap();
        for policy in [Policy::Edf, Policy::FixedPriority] {
            let accepted = guest_schedulable(resource, policy, &tasks).unwrap();
            if !accepted {
                continue;
            }
            // Worst-case pattern, tasks released right after the first budget.
            let end = guest_end(&tasks, period, budget);
            prop_assert!(
                simulate(&tasks, policy, budget, end, &worst_supply(period, budget)),
                "{policy:?} accepted but misses in the worst-case pattern"
            );
            // A random pattern: Θ ticks at random places in every period, random release.
            let mut rng = Lcg(seed);
            let periods = (end / period + 1) as usize;
            let mut slots = vec![false; periods * period as usize];
            for k in 0..periods {
                let base = k * period as usize;
                let mut placed = 0;
                while placed < budget {
                    let s = base + rng.below(period) as usize;
                    if !slots[s] {
                        slots[s] = true;
                        placed += 1;
                    }
                }
            }
            let offset = rng.below(period);
            let end = guest_end(&tasks, period, offset);
            let available = |t: u64| slots.get(t as usize).copied().unwrap_or(false);
            prop_assert!(
                simulate(&tasks, policy, offset, end.min(slots.len() as u64 - 1), &available),
                "{policy:?} accepted but misses in a random pattern"
            );
        }
    }

    #[test]
    fn min_budget_is_least(tasks in task_set(3), p in 0..PERIODS.len()) {
        let period = PERIODS[p];
        for policy in [Policy::Edf, Policy::FixedPriority] {
            let result = min_budget(period, policy, &tasks).unwrap();
            let at = |b| guest_schedulable(PeriodicResource::new(period, b).unwrap(), policy, &tasks).unwrap();
            match result {
                Some(b) => {
                    prop_assert!(at(b));
                    if b >= 1 {
                        prop_assert!(!at(b - 1));
                    }
                    // Monotone: every larger budget passes too.
                    for more in b..=period {
                        prop_assert!(at(more));
                    }
                }
                None => prop_assert!(!at(period)),
            }
        }
    }
}

/// The least supply of Γ(Π, Θ) in any window of length t: each period independently places
/// its Θ units as far outside the window as it can.
fn least_supply(period: u64, budget: u64, t: u64) -> u64 {
    (0..period)
        .map(|s| {
            let (a, b) = (s, s + t);
            (0..=b / period)
                .map(|j| {
                    let (ps, pe) = (j * period, (j + 1) * period);
                    let overlap = b.min(pe).saturating_sub(a.max(ps));
                    budget.saturating_sub(period - overlap)
                })
                .sum::<u64>()
        })
        .min()
        .unwrap()
}

/// Shin & Lee's closed form: k = max(⌈(t − (Π − Θ))/Π⌉, 1);
/// sbf = t − (k + 1)(Π − Θ) on [(k + 1)Π − 2Θ, (k + 1)Π − Θ], else (k − 1)Θ.
fn shin_lee(period: u64, budget: u64, t: u64) -> u64 {
    let (p, q, t) = (period as i64, budget as i64, t as i64);
    let k = (((t - (p - q)) as f64 / p as f64).ceil() as i64).max(1);
    if t >= (k + 1) * p - 2 * q && t <= (k + 1) * p - q {
        (t - (k + 1) * (p - q)) as u64
    } else {
        ((k - 1) * q) as u64
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sbf_is_the_least_supply(period in 1u64..30, b in 0u64..30, t in 0u64..150) {
        let budget = b.min(period);
        let r = PeriodicResource::new(period, budget).unwrap();
        let s = r.sbf(t);
        prop_assert!(s <= t);
        prop_assert!(r.sbf(t + 1) >= s);
        prop_assert!(r.sbf(t + 1) <= s + 1);
        if t <= r.blackout() {
            prop_assert_eq!(s, 0);
        }
        if t >= period - budget {
            prop_assert_eq!(r.sbf(t + period), s + budget);
        }
        if budget < period {
            prop_assert!(PeriodicResource::new(period, budget + 1).unwrap().sbf(t) >= s);
        }
        prop_assert_eq!(s, least_supply(period, budget, t));
        if budget > 0 {
            prop_assert_eq!(s, shin_lee(period, budget, t));
        }
        prop_assert_eq!(sbf(period, budget, t), Some(s));
    }
}

/// Literal brute force for tiny resources: every placement of Θ units in each of 4 periods,
/// every window inside them.
#[test]
fn sbf_matches_enumerated_patterns() {
    for period in 1u64..=4 {
        for budget in 0..=period {
            let per: Vec<u64> = (0u64..1 << period)
                .filter(|m| u64::from(m.count_ones()) == budget)
                .collect();
            let mut least = vec![u64::MAX; (2 * period + 1) as usize];
            for a in &per {
                for b in &per {
                    for c in &per {
                        for d in &per {
                            let bits: Vec<bool> = [a, b, c, d]
                                .iter()
                                .flat_map(|m| (0..period).map(move |i| *m >> i & 1 == 1))
                                .collect();
                            for start in 0..period {
                                for (len, slot) in least.iter_mut().enumerate() {
                                    let s = start as usize;
                                    let got =
                                        bits[s..s + len].iter().filter(|&&x| x).count() as u64;
                                    *slot = (*slot).min(got);
                                }
                            }
                        }
                    }
                }
            }
            for (len, &want) in least.iter().enumerate() {
                assert_eq!(
                    sbf(period, budget, len as u64),
                    Some(want),
                    "Π={period} Θ={budget} t={len}"
                );
            }
        }
    }
}

/// Deferrable servers with adversarial demand, scheduled by FP or EDF (deadline = end of the
/// current period); server i's periods start at `phase[i] + kΠᵢ` (`phase[i] < Πᵢ`). Returns
/// false iff some server that had work at every tick of one of its periods received less
/// than its budget in that period.
fn simulate_deferrable(
    servers: &[Server],
    phase: &[u64],
    policy: Policy,
    seed: u64,
    end: u64,
) -> bool {
    let n = servers.len();
    let mut started = vec![false; n];
    let mut rng = Lcg(seed);
    let mut pending = vec![0u64; n];
    let mut budget = vec![0u64; n];
    let mut used = vec![0u64; n];
    let mut always_backlogged = vec![true; n];
    // Per server and period: when work arrives in it (offset) and how much.
    let mut arrival = vec![(0u64, 0u64); n];
    for t in 0..end {
        for i in 0..n {
            let s = &servers[i];
            let r = (t + s.period - phase[i]) % s.period;
            if r == 0 {
                if started[i] && always_backlogged[i] && used[i] < s.budget {
                    return false;
                }
                started[i] = true;
                budget[i] = s.budget;
                used[i] = 0;
                always_backlogged[i] = true;
                arrival[i] = match rng.below(5) {
                    0 => (0, s.budget + rng.below(3)),    // busy from the start
                    1 => (s.period - s.budget, s.budget), // late: back-to-back
                    2 => (rng.below(s.period), 1 + rng.below(s.budget + 1)),
                    3 => (s.period - s.budget, 2 * s.budget), // late, then keeps going
                    _ => (s.period, 0),                       // idle
                };
            }
            if r == arrival[i].0 {
                pending[i] += arrival[i].1;
            }
        }
        for i in 0..n {
            if pending[i] == 0 && budget[i] > 0 {
                always_backlogged[i] = false;
            }
        }
        let eligible = (0..n).filter(|&i| pending[i] > 0 && budget[i] > 0);
        let pick = match policy {
            Policy::FixedPriority => eligible.min_by_key(|&i| (servers[i].priority, i)),
            Policy::Edf => eligible.min_by_key(|&i| {
                let p = servers[i].period;
                (t + p - (t + p - phase[i]) % p, i)
            }),
        };
        if let Some(i) = pick {
            pending[i] -= 1;
            budget[i] -= 1;
            used[i] += 1;
        }
    }
    true
}

fn server_set() -> impl Strategy<Value = Vec<Server>> {
    prop::collection::vec((0..PERIODS.len(), 0.0f64..1.0), 1..=4).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (p, f))| {
                let period = PERIODS[p];
                Server {
                    kind: ServerKind::Deferrable,
                    budget: 1 + ((f * f * period as f64 * 0.8) as u64).min(period - 1),
                    period,
                    priority: i as u32,
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn deferrable_servers_accepted_never_starve(servers in server_set(), seed in any::<u64>()) {
        let tasks: Vec<Task> = servers.iter().map(Server::as_task).collect();
        let mut rng = Lcg(seed);
        let phase: Vec<u64> = servers.iter().map(|s| rng.below(s.period)).collect();
        let end = 4 * hyperperiod(&tasks) + 1;
        for policy in [Policy::FixedPriority, Policy::Edf] {
            let accepted = match policy {
                Policy::FixedPriority => core_fp(&tasks, &Overheads::NONE).is_ok(),
                Policy::Edf => core_edf(&tasks, &Overheads::NONE).is_ok(),
            };
            if accepted {
                for k in 0..4 {
                    prop_assert!(
                        simulate_deferrable(&servers, &phase, policy, seed.wrapping_add(k), end),
                        "{policy:?} accepted {servers:?} but a backlogged server starved"
                    );
                }
            }
        }
    }
}

/// The back-to-back effect is real: analysed as plain periodic tasks (no jitter) this set is
/// accepted, yet the late high-priority server (running at the end of one period and the start
/// of the next) starves the low one; with the jitter the analysis rejects it.
#[test]
fn deferrable_jitter_is_needed() {
    let servers = [
        Server {
            kind: ServerKind::Deferrable,
            budget: 2,
            period: 4,
            priority: 0,
        },
        Server {
            kind: ServerKind::Deferrable,
            budget: 3,
            period: 8,
            priority: 1,
        },
    ];
    let plain: Vec<Task> = servers
        .iter()
        .map(|s| Task::implicit(s.budget, s.period, s.priority))
        .collect();
    assert!(core_fp(&plain, &Overheads::NONE).is_ok());
    let tasks: Vec<Task> = servers.iter().map(Server::as_task).collect();
    assert!(core_fp(&tasks, &Overheads::NONE).is_err());
    // The low server's periods start 2 µs after the high one's.
    let starved = (0..200)
        .any(|seed| !simulate_deferrable(&servers, &[0, 2], Policy::FixedPriority, seed, 200));
    assert!(
        starved,
        "the simulation should exhibit the back-to-back starvation"
    );
}

/// Guest tests against the worst-case supply pattern: soundness is asserted, the pessimism
/// (rejected although the worst-case pattern meets every deadline) is printed.
#[test]
fn pessimism_of_guest_tests() {
    let mut rng = Lcg(0x7e55e7a);
    for policy in [Policy::Edf, Policy::FixedPriority] {
        let (mut accepted, mut rejected, mut rejected_feasible) = (0, 0, 0);
        for _ in 0..400 {
            let n = 1 + rng.below(3) as usize;
            let tasks: Vec<Task> = (0..n)
                .map(|i| {
                    let period = PERIODS[rng.below(PERIODS.len() as u64) as usize];
                    let wcet = 1 + rng.below(period / 3 + 1).min(period - 1);
                    let deadline = wcet + rng.below(period - wcet + 1);
                    Task::new(wcet, period, deadline, i as u32)
                })
                .collect();
            let period = PERIODS[rng.below(8) as usize];
            let budget = 1 + rng.below(period);
            let resource = PeriodicResource::new(period, budget).unwrap();
            let end = guest_end(&tasks, period, budget);
            let sim = simulate(&tasks, policy, budget, end, &worst_supply(period, budget));
            if guest_schedulable(resource, policy, &tasks).unwrap() {
                accepted += 1;
                assert!(
                    sim,
                    "{policy:?} accepted {tasks:?} on {resource:?} but it misses"
                );
            } else {
                rejected += 1;
                rejected_feasible += usize::from(sim);
            }
        }
        println!(
            "guest {policy:?}: {accepted} accepted, {rejected} rejected, of which \
             {rejected_feasible} meet all deadlines in the worst-case supply pattern"
        );
    }
}
