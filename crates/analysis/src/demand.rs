//! EDF processor-demand tests: core level (dedicated processor) and guest level (periodic
//! resource).
//!
//! Demand of task i in a window of length t (after overhead inflation):
//! * sporadic: `dbfᵢ(t) = max(0, ⌊(t + Jᵢ − Dᵢ)/Tᵢ⌋ + 1)·Cᵢ` (0 while `t + Jᵢ < Dᵢ`);
//! * deferrable server: `dbfᵢ(t) = ⌊t/Tᵢ⌋·Cᵢ + min(Cᵢ, t mod Tᵢ)`.
//!
//! The set passes iff `B + Σ dbfᵢ(t) ≤ supply(t)` for every window length t at least the
//! shortest relative deadline (`Dᵢ − Jᵢ`, or `Dᵢ` for a server) — a missed deadline needs a
//! busy window at least that long. `supply(t)` is `t` (core) or `sbf(t)` (guest). The demand
//! minus supply can only reach a new maximum at a sporadic task's step point `Dᵢ − Jᵢ + kTᵢ`,
//! at a server's corner `Cᵢ + kTᵢ` (where its demand stops rising), or at the shortest
//! deadline itself; those are the points checked, in increasing order, up to a horizon past
//! which the test provably holds: the least of
//! * the synchronous busy period (core only): least `w = B + Σ ⌈(w + Jᵢ)/Tᵢ⌉ Cᵢ`;
//! * the linear bound: `Σ dbfᵢ(t) ≤ U·t + Σ aᵢUᵢ` (`aᵢ = (Tᵢ + Jᵢ − Dᵢ)⁺`, `Tᵢ − Cᵢ` for a
//!   server) against `supply(t) ≥ ρ(t − δ)` (`ρ = Θ/Π`, `δ = 2(Π − Θ)`; ρ = 1, δ = 0 on a
//!   core), valid when `U < ρ`;
//! * the hyperperiod bound `t₀ + lcm(Tᵢ, Π)` (`t₀` the largest `Dᵢ − Jᵢ` and `Π − Θ`), past
//!   which demand minus supply repeats without growing, valid when `U ≤ ρ`.

use core::cmp::Ordering;

use crate::arith::{add, ceil_div, lcm, mul};
use crate::model::{
    prepare, AnalysisError, Check, Error, Overheads, Task, TaskKind, TaskProblem, Unschedulable,
};
use crate::prm::PeriodicResource;
use crate::util::{compare_rate, fixed_sum, utilisation_of, Fixed, Utilisation};
use crate::{MAX_ITERATIONS, MAX_POINTS, MAX_TASKS};

/// Outcome of a passed EDF demand test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DemandReport {
    /// Utilisation of the (inflated) tasks.
    pub utilisation: Utilisation,
    /// Largest window length (µs) that had to be examined (a proven bound; 0 if nothing to do).
    pub horizon: u64,
    /// Number of time points examined.
    pub points_checked: u64,
    /// Least `supply(t) − demand(t)` over the examined points (µs); `u64::MAX` if none.
    pub min_slack: u64,
    /// The window length where `min_slack` occurs (0 if none).
    pub min_slack_at: u64,
}

/// What supplies the processor time.
#[derive(Clone, Copy)]
enum Supply {
    /// A whole core: supply(t) = t.
    Dedicated,
    /// A periodic resource: supply(t) = sbf(t).
    Periodic(PeriodicResource),
}

impl Supply {
    fn at(self, t: u64) -> u64 {
        match self {
            Supply::Dedicated => t,
            Supply::Periodic(r) => r.sbf(t),
        }
    }

    /// Supply rate as (budget, period).
    fn rate(self) -> (u64, u64) {
        match self {
            Supply::Dedicated => (1, 1),
            Supply::Periodic(r) => (r.budget(), r.period()),
        }
    }
}

/// EDF processor-demand test of the servers (or tasks) of one core.
///
/// Every task's `wcet` is inflated by `overheads.per_activation`; `overheads.blocking` is
/// added to the demand at every checked point and to the busy period. Exact (necessary and
/// sufficient) for sporadic tasks without overheads; sufficient with jitter, blocking or
/// deferrable servers. On success the report gives the utilisation and the least slack.
pub fn core_edf(tasks: &[Task], overheads: &Overheads) -> Result<DemandReport, Error> {
    demand_test(
        tasks,
        overheads.per_activation,
        overheads.blocking,
        Supply::Dedicated,
    )
}

/// EDF inside a VM whose vCPU is the periodic resource `resource`: `Σ dbfᵢ(t) ≤ sbf(t)`
/// (Shin & Lee). Sufficient; tasks of kind [`TaskKind::DeferrableServer`] are rejected with
/// [`TaskProblem::ServerInGuest`].
pub fn guest_edf(resource: PeriodicResource, tasks: &[Task]) -> Result<DemandReport, Error> {
    if let Some(index) = tasks
        .iter()
        .position(|t| t.kind == TaskKind::DeferrableServer)
    {
        return Err(AnalysisError::InvalidTask {
            index,
            problem: TaskProblem::ServerInGuest,
        }
        .into());
    }
    demand_test(tasks, 0, 0, Supply::Periodic(resource))
}

/// Demand of one (inflated, active) task in a window of length t.
fn dbf(task: &Task, t: u64) -> Result<u64, AnalysisError> {
    match task.kind {
        TaskKind::Sporadic => {
            let shifted = add(t, task.jitter)?;
            if shifted < task.deadline {
                return Ok(0);
            }
            let jobs = (shifted - task.deadline) / task.period + 1;
            mul(jobs, task.wcet)
        }
        TaskKind::DeferrableServer => {
            let full = mul(t / task.period, task.wcet)?;
            add(full, task.wcet.min(t % task.period))
        }
    }
}

/// First check point of a task (its first demand step or corner).
fn first_point(task: &Task) -> u64 {
    match task.kind {
        // prepare() guarantees jitter < deadline for active sporadic tasks.
        TaskKind::Sporadic => task.deadline - task.jitter,
        TaskKind::DeferrableServer => task.wcet,
    }
}

/// Shortest window in which a job of this task can miss its deadline.
fn shortest_window(task: &Task) -> u64 {
    match task.kind {
        TaskKind::Sporadic => task.deadline - task.jitter,
        TaskKind::DeferrableServer => task.deadline,
    }
}

fn demand_test(
    tasks: &[Task],
    per_activation: u64,
    blocking: u64,
    supply: Supply,
) -> Result<DemandReport, Error> {
    let prepared = prepare(tasks, per_activation, Check::Edf)?;
    let all = &prepared[..tasks.len()];
    let utilisation = utilisation_of(all)?;
    let (supply_budget, supply_period) = supply.rate();
    let order = compare_rate(all, supply_budget, supply_period)?;
    if order == Ordering::Greater {
        return Err(Unschedulable::Overload {
            utilisation,
            supply_budget,
            supply_period,
        }
        .into());
    }
    let mut report = DemandReport {
        utilisation,
        horizon: 0,
        points_checked: 0,
        min_slack: u64::MAX,
        min_slack_at: 0,
    };
    // Only tasks with demand matter (their indices in `all`).
    let mut active = [0usize; MAX_TASKS];
    let mut n = 0;
    for (i, t) in all.iter().enumerate() {
        if t.wcet > 0 {
            active[n] = i;
            n += 1;
        }
    }
    let active = &active[..n];
    let Some(floor) = active.iter().map(|&i| shortest_window(&all[i])).min() else {
        return Ok(report);
    };
    let horizon = horizon(all, active, blocking, supply, order)?;
    report.horizon = horizon;

    let mut next: [Option<u64>; MAX_TASKS] = [None; MAX_TASKS];
    for &i in active {
        next[i] = Some(first_point(&all[i]));
    }
    let mut floor_pending = true;
    loop {
        let mut t = active.iter().filter_map(|&i| next[i]).min();
        if floor_pending {
            t = Some(t.map_or(floor, |t| t.min(floor)));
        }
        let Some(t) = t else { break };
        if t > horizon {
            break;
        }
        if t == floor {
            floor_pending = false;
        }
        for &i in active {
            if next[i] == Some(t) {
                next[i] = t.checked_add(all[i].period);
            }
        }
        report.points_checked += 1;
        if report.points_checked > MAX_POINTS {
            return Err(AnalysisError::HorizonTooLarge { horizon }.into());
        }
        if t < floor {
            continue;
        }
        let mut demand = blocking;
        for &i in active {
            demand = add(demand, dbf(&all[i], t)?)?;
        }
        let available = supply.at(t);
        if demand > available {
            return Err(Unschedulable::DemandExceedsSupply {
                t,
                demand,
                supply: available,
            }
            .into());
        }
        if available - demand < report.min_slack {
            report.min_slack = available - demand;
            report.min_slack_at = t;
        }
    }
    Ok(report)
}

/// The least of the available proven horizons (see the module documentation).
fn horizon(
    all: &[Task],
    active: &[usize],
    blocking: u64,
    supply: Supply,
    order: Ordering,
) -> Result<u64, AnalysisError> {
    let least = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut best = hyperperiod_bound(all, active, supply);
    if order == Ordering::Less {
        best = least(best, linear_bound(all, blocking, supply));
    }
    if let Supply::Dedicated = supply {
        let cap = best.unwrap_or(u64::MAX);
        best = least(best, busy_period(all, active, blocking, cap)?);
    }
    best.ok_or(AnalysisError::HorizonTooLarge { horizon: u64::MAX })
}

/// `⌈a·C·2⁶⁴ / T⌉`, `None` on overflow.
fn scaled_ratio_ceil(a: u64, c: u64, t: u64) -> Option<u128> {
    let p = u128::from(a) * u128::from(c);
    let t = u128::from(t);
    let q = p / t;
    let r = p % t;
    if q >> 64 != 0 {
        return None;
    }
    (q << 64).checked_add((r << 64).div_ceil(t))
}

/// Window length from which demand ≤ supply holds by the linear bounds (requires U < ρ).
fn linear_bound(all: &[Task], blocking: u64, supply: Supply) -> Option<u64> {
    let mut offset: u128 = u128::from(blocking) << 64;
    for t in all.iter().filter(|t| t.wcet > 0) {
        let a = match t.kind {
            TaskKind::Sporadic => t.period.checked_add(t.jitter)?.saturating_sub(t.deadline),
            TaskKind::DeferrableServer => t.period.saturating_sub(t.wcet),
        };
        offset = offset.checked_add(scaled_ratio_ceil(a, t.wcet, t.period)?)?;
    }
    let (rate, blackout) = match supply {
        Supply::Dedicated => (
            Fixed {
                floor: 1 << 64,
                inexact: 0,
            },
            0u128,
        ),
        Supply::Periodic(r) => (
            Fixed::ratio(r.budget(), r.period()),
            2 * u128::from(r.period() - r.budget()),
        ),
    };
    let u = fixed_sum(all);
    let slope = rate.floor.checked_sub(u.upper()).filter(|&s| s > 0)?;
    let num = offset.checked_add(rate.upper().checked_mul(blackout)?)?;
    u64::try_from(num.div_ceil(slope)).ok()
}

/// `t₀ + lcm(periods, Π)`, `None` on overflow.
fn hyperperiod_bound(all: &[Task], active: &[usize], supply: Supply) -> Option<u64> {
    let (mut h, mut t0): (u128, u64) = match supply {
        Supply::Dedicated => (1, 0),
        Supply::Periodic(r) => (u128::from(r.period()), r.period() - r.budget()),
    };
    for &i in active {
        let t = &all[i];
        h = lcm(h, u128::from(t.period))?;
        t0 = t0.max(shortest_window(t));
    }
    u64::try_from(h).ok()?.checked_add(t0)
}

/// Length of the synchronous busy period, `None` if it exceeds `cap` (then useless) or does
/// not settle within [`MAX_ITERATIONS`].
fn busy_period(
    all: &[Task],
    active: &[usize],
    blocking: u64,
    cap: u64,
) -> Result<Option<u64>, AnalysisError> {
    let mut w = blocking;
    for &i in active {
        w = add(w, all[i].wcet)?;
    }
    for _ in 0..MAX_ITERATIONS {
        let mut next = blocking;
        for &i in active {
            let t = &all[i];
            let jitter = match t.kind {
                TaskKind::Sporadic => t.jitter,
                TaskKind::DeferrableServer => t.jitter.max(t.period - t.wcet.min(t.period)),
            };
            let Some(shifted) = w.checked_add(jitter) else {
                return Ok(None);
            };
            let Some(work) = ceil_div(shifted, t.period).checked_mul(t.wcet) else {
                return Ok(None);
            };
            let Some(sum) = next.checked_add(work) else {
                return Ok(None);
            };
            next = sum;
        }
        if next == w {
            return Ok(Some(w));
        }
        if next > cap {
            return Ok(None);
        }
        w = next;
    }
    Ok(None)
}
