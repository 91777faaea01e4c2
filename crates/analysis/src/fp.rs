//! Fixed-priority tests: response-time analysis on a core, scheduling points in a guest.
//!
//! `hp(i)`: every other task with a priority value ≤ task i's (equal priorities interfere
//! both ways, which is conservative). Both tests require constrained deadlines (`D ≤ T`) for
//! tasks with demand.

use crate::arith::{add, ceil_div, mul};
use crate::model::{prepare, AnalysisError, Check, Error, Overheads, Task, Unschedulable};
use crate::prm::PeriodicResource;
use crate::util::{utilisation_of, Utilisation};
use crate::{MAX_ITERATIONS, MAX_POINTS, MAX_TASKS};

/// Outcome of a passed core-level fixed-priority test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FpReport {
    /// Utilisation of the (inflated) tasks.
    pub utilisation: Utilisation,
    response: [u64; MAX_TASKS],
    len: usize,
}

impl FpReport {
    /// Worst-case response time of each task (µs), in input order (0 for a task without
    /// demand). Each is ≤ the task's deadline; `deadline − response` is its slack.
    pub fn response_times(&self) -> &[u64] {
        &self.response[..self.len]
    }
}

/// Outcome of a passed guest-level fixed-priority test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GuestFpReport {
    /// Utilisation of the tasks.
    pub utilisation: Utilisation,
    witness: [u64; MAX_TASKS],
    len: usize,
}

impl GuestFpReport {
    /// For each task (input order), the earliest scheduling point `t ≤ D` at which its demand
    /// fits the supply bound (an upper bound on its response time in the periodic resource);
    /// 0 for a task without demand.
    pub fn witnesses(&self) -> &[u64] {
        &self.witness[..self.len]
    }
}

/// Whether task `j` interferes with task `i`.
fn interferes(all: &[Task], i: usize, j: usize) -> bool {
    j != i && all[j].wcet > 0 && all[j].priority <= all[i].priority
}

/// `Σ_{j ∈ hp(i)} ⌈(t + Jⱼ)/Tⱼ⌉ Cⱼ`.
fn interference(all: &[Task], i: usize, t: u64) -> Result<u64, AnalysisError> {
    let mut sum = 0u64;
    for j in (0..all.len()).filter(|&j| interferes(all, i, j)) {
        let jobs = ceil_div(add(t, all[j].jitter)?, all[j].period);
        sum = add(sum, mul(jobs, all[j].wcet)?)?;
    }
    Ok(sum)
}

/// Fixed-priority response-time analysis of the servers (or tasks) of one core:
/// `Rᵢ = Cᵢ + B + Σ_{j ∈ hp(i)} ⌈(Rᵢ + Jⱼ)/Tⱼ⌉ Cⱼ`, iterated from `Cᵢ + B`; passes iff
/// `Rᵢ ≤ Dᵢ` for all i. `wcet`s are inflated by `overheads.per_activation`, `B` is
/// `overheads.blocking`. Exact for synchronous sporadic tasks with `D ≤ T`, no jitter and no
/// overheads; sufficient otherwise. Fails on the first task (input order) that misses.
pub fn core_fp(tasks: &[Task], overheads: &Overheads) -> Result<FpReport, Error> {
    let prepared = prepare(tasks, overheads.per_activation, Check::Fp)?;
    let all = &prepared[..tasks.len()];
    let mut report = FpReport {
        utilisation: utilisation_of(all)?,
        response: [0; MAX_TASKS],
        len: all.len(),
    };
    for i in 0..all.len() {
        if all[i].wcet == 0 {
            continue;
        }
        let base = add(all[i].wcet, overheads.blocking)?;
        let deadline = all[i].deadline;
        let mut r = base;
        let mut settled = false;
        for _ in 0..MAX_ITERATIONS {
            let next = add(base, interference(all, i, r)?)?;
            if next == r {
                settled = true;
                break;
            }
            r = next;
            if r > deadline {
                break;
            }
        }
        if settled && r <= deadline {
            report.response[i] = r;
            continue;
        }
        if r <= deadline {
            return Err(AnalysisError::HorizonTooLarge { horizon: deadline }.into());
        }
        // Missed: try to settle the iteration to report the true response time.
        let mut response = None;
        for _ in 0..MAX_ITERATIONS {
            let Some(next) = interference(all, i, r)
                .ok()
                .and_then(|x| base.checked_add(x))
            else {
                break;
            };
            if next == r {
                response = Some(r);
                break;
            }
            r = next;
        }
        return Err(Unschedulable::ResponseTimeExceedsDeadline {
            task: i,
            response_time: response,
            deadline,
        }
        .into());
    }
    Ok(report)
}

/// Fixed priority inside a VM whose vCPU is the periodic resource `resource` (Shin & Lee):
/// task i passes iff some `t ∈ (0, Dᵢ]` has `Cᵢ + Σ_{j ∈ hp(i)} ⌈(t + Jⱼ)/Tⱼ⌉ Cⱼ ≤ sbf(t)`.
/// Only the scheduling points `kTⱼ − Jⱼ < Dᵢ` and `Dᵢ` are examined (the demand is constant
/// between them and `sbf` is non-decreasing). Sufficient. Fails on the first task (input
/// order) with no such point.
pub fn guest_fp(resource: PeriodicResource, tasks: &[Task]) -> Result<GuestFpReport, Error> {
    let prepared = prepare(tasks, 0, Check::Fp)?;
    let all = &prepared[..tasks.len()];
    let mut report = GuestFpReport {
        utilisation: utilisation_of(all)?,
        witness: [0; MAX_TASKS],
        len: all.len(),
    };
    for i in 0..all.len() {
        if all[i].wcet == 0 {
            continue;
        }
        let deadline = all[i].deadline;
        // Next scheduling point contributed by each interfering task.
        let mut next: [Option<u64>; MAX_TASKS] = [None; MAX_TASKS];
        for j in (0..all.len()).filter(|&j| interferes(all, i, j)) {
            let t = &all[j];
            // Smallest k ≥ 1 with kT − J > 0.
            let k = t.jitter / t.period + 1;
            next[j] = k
                .checked_mul(t.period)
                .map(|x| x - t.jitter)
                .filter(|&p| p < deadline);
        }
        let mut points = 0u64;
        let mut found = None;
        loop {
            let t = next.iter().flatten().copied().min().unwrap_or(deadline);
            for (j, slot) in next.iter_mut().enumerate() {
                if *slot == Some(t) {
                    *slot = t.checked_add(all[j].period).filter(|&p| p < deadline);
                }
            }
            points += 1;
            if points > MAX_POINTS {
                return Err(AnalysisError::HorizonTooLarge { horizon: deadline }.into());
            }
            let demand = add(all[i].wcet, interference(all, i, t)?)?;
            if demand <= resource.sbf(t) {
                found = Some(t);
                break;
            }
            if t >= deadline {
                break;
            }
        }
        match found {
            Some(t) => report.witness[i] = t,
            None => {
                let demand_at_deadline = interference(all, i, deadline)
                    .ok()
                    .and_then(|x| x.checked_add(all[i].wcet))
                    .unwrap_or(u64::MAX);
                return Err(Unschedulable::NoSchedulingPoint {
                    task: i,
                    deadline,
                    demand_at_deadline,
                    supply_at_deadline: resource.sbf(deadline),
                }
                .into());
            }
        }
    }
    Ok(report)
}
