//! The periodic resource model (Shin & Lee, RTSS 2003): supply bound, guest verdicts and the
//! least budget that keeps a guest schedulable.

use crate::demand::guest_edf;
use crate::fp::guest_fp;
use crate::model::{AnalysisError, Error, Policy, Task};

/// A periodic resource Γ(Π, Θ): `budget` µs of CPU guaranteed in every `period` µs.
/// Invariant: `period > 0` and `budget ≤ period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeriodicResource {
    period: u64,
    budget: u64,
}

impl PeriodicResource {
    /// Γ(period, budget); [`AnalysisError::InvalidResource`] unless `0 < period` and
    /// `budget ≤ period`.
    pub const fn new(period: u64, budget: u64) -> Result<Self, AnalysisError> {
        if period == 0 || budget > period {
            return Err(AnalysisError::InvalidResource { period, budget });
        }
        Ok(PeriodicResource { period, budget })
    }

    /// Period Π (µs).
    pub const fn period(&self) -> u64 {
        self.period
    }

    /// Budget Θ (µs).
    pub const fn budget(&self) -> u64 {
        self.budget
    }

    /// Longest interval without supply, `2(Π − Θ)` (saturating).
    pub const fn blackout(&self) -> u64 {
        (self.period - self.budget).saturating_mul(2)
    }

    /// Supply-bound function: the least CPU time the resource provides in any window of
    /// length `t`. With `b = Π − Θ` and `n = ⌊max(0, t − b)/Π⌋`:
    /// `sbf(t) = n·Θ + max(0, t − 2b − n·Π)`. It is 0 for `t ≤ 2b`, non-decreasing, `≤ t`,
    /// equal to `t` when `Θ = Π`, and `sbf(t + Π) = sbf(t) + Θ` for `t ≥ b`.
    pub const fn sbf(&self, t: u64) -> u64 {
        let b = self.period - self.budget;
        if t <= b {
            return 0;
        }
        let n = (t - b) / self.period;
        // 0 ≤ rest < Π, and rest − b = t − 2b − nΠ.
        let rest = t - b - n * self.period;
        // n·Θ ≤ n·Π ≤ t − b: no overflow; the sum is ≤ t.
        n * self.budget + rest.saturating_sub(b)
    }
}

/// [`PeriodicResource::sbf`] of Γ(period, budget) at `t`; `None` if `period == 0` or
/// `budget > period`.
pub const fn sbf(period: u64, budget: u64, t: u64) -> Option<u64> {
    match PeriodicResource::new(period, budget) {
        Ok(r) => Some(r.sbf(t)),
        Err(_) => None,
    }
}

/// Whether `tasks` pass the guest test of `policy` ([`guest_edf`] or [`guest_fp`]) on
/// `resource`: `Ok(true)` / `Ok(false)`, or the error when no verdict is possible.
pub fn guest_schedulable(
    resource: PeriodicResource,
    policy: Policy,
    tasks: &[Task],
) -> Result<bool, AnalysisError> {
    let verdict = match policy {
        Policy::Edf => guest_edf(resource, tasks).map(|_| ()),
        Policy::FixedPriority => guest_fp(resource, tasks).map(|_| ()),
    };
    match verdict {
        Ok(()) => Ok(true),
        Err(Error::Unschedulable(_)) => Ok(false),
        Err(Error::Analysis(e)) => Err(e),
    }
}

/// The least budget `Θ ≤ period` (1 µs resolution) with which the guest passes its test;
/// `Ok(None)` if even `Θ = period` fails; `Ok(Some(0))` if the tasks have no demand.
/// Binary search, relying on the verdict being monotone in Θ (sbf is).
pub fn min_budget(
    period: u64,
    policy: Policy,
    tasks: &[Task],
) -> Result<Option<u64>, AnalysisError> {
    let at = |budget| -> Result<bool, AnalysisError> {
        guest_schedulable(PeriodicResource::new(period, budget)?, policy, tasks)
    };
    if !at(period)? {
        return Ok(None);
    }
    if at(0)? {
        return Ok(Some(0));
    }
    // Invariant: fails at lo, passes at hi.
    let (mut lo, mut hi) = (0u64, period);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if at(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Some(hi))
}

/// Among the candidate `periods`, the periodic resource with the least bandwidth `Θ/Π` that
/// keeps the guest schedulable (its Θ from [`min_budget`]); ties keep the earlier candidate.
/// `Ok(None)` if no candidate works (or `periods` is empty). This is `budget = "auto"`.
pub fn best_interface(
    periods: &[u64],
    policy: Policy,
    tasks: &[Task],
) -> Result<Option<PeriodicResource>, AnalysisError> {
    let mut best: Option<PeriodicResource> = None;
    for &period in periods {
        let Some(budget) = min_budget(period, policy, tasks)? else {
            continue;
        };
        let better = match best {
            None => true,
            Some(b) => {
                u128::from(budget) * u128::from(b.period())
                    < u128::from(b.budget()) * u128::from(period)
            }
        };
        if better {
            best = Some(PeriodicResource::new(period, budget)?);
        }
    }
    Ok(best)
}
