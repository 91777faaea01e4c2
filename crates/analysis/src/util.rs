//! Utilisation `U = Σ Cᵢ/Tᵢ`: a 64.64 fixed-point bracket plus an exact comparison.

use core::cmp::Ordering;

use crate::arith::lcm;
use crate::model::{prepare, AnalysisError, Check, Overheads, Task};

/// A non-negative rational known to lie in `[floor, floor + inexact]·2⁻⁶⁴` (strictly below
/// the upper end when `inexact > 0`); saturates at `u128::MAX` (far above any rate ≤ 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Fixed {
    pub(crate) floor: u128,
    pub(crate) inexact: u32,
}

impl Fixed {
    /// `num / den` (den > 0).
    pub(crate) fn ratio(num: u64, den: u64) -> Fixed {
        let scaled = u128::from(num) << 64;
        let den = u128::from(den.max(1));
        Fixed {
            floor: scaled / den,
            inexact: u32::from(scaled % den != 0),
        }
    }

    /// Sum of two brackets.
    pub(crate) fn plus(self, other: Fixed) -> Fixed {
        Fixed {
            floor: self.floor.saturating_add(other.floor),
            inexact: self.inexact.saturating_add(other.inexact),
        }
    }

    /// Upper end of the bracket (scaled by 2⁶⁴).
    pub(crate) fn upper(self) -> u128 {
        self.floor.saturating_add(u128::from(self.inexact))
    }
}

/// The utilisation `U = Σ Cᵢ/Tᵢ` of a task set (after overhead inflation).
///
/// Kept as a fixed-point bracket for display ([`Utilisation::parts_per_million`]) together
/// with the exact comparison against 1 ([`Utilisation::cmp_one`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Utilisation {
    sum: Fixed,
    vs_one: Ordering,
}

impl Utilisation {
    /// U in parts per million, rounded **up** (an upper bound, within 1 ppm; exactly
    /// 1 000 000 when U = 1). Saturates at `u64::MAX`.
    pub fn parts_per_million(&self) -> u64 {
        if self.vs_one == Ordering::Equal {
            return 1_000_000;
        }
        let v = self.sum.upper();
        let whole = v >> 64;
        let frac = v & u128::from(u64::MAX);
        let frac_ppm = (frac * 1_000_000).div_ceil(1u128 << 64);
        let total = whole.saturating_mul(1_000_000).saturating_add(frac_ppm);
        u64::try_from(total).unwrap_or(u64::MAX)
    }

    /// Exact comparison of U with 1 (`Greater`: overloaded on a dedicated core).
    pub fn cmp_one(&self) -> Ordering {
        self.vs_one
    }

    /// Exact `U ≤ 1`.
    pub fn at_most_one(&self) -> bool {
        self.vs_one != Ordering::Greater
    }
}

/// Fixed-point bracket of `Σ Cᵢ/Tᵢ` over the first `n` tasks.
pub(crate) fn fixed_sum(tasks: &[Task]) -> Fixed {
    tasks.iter().filter(|t| t.wcet > 0).fold(
        Fixed {
            floor: 0,
            inexact: 0,
        },
        |acc, t| acc.plus(Fixed::ratio(t.wcet, t.period)),
    )
}

/// Exact comparison of `Σ Cᵢ/Tᵢ` with `budget/period` (`period > 0`). Uses the fixed-point
/// bracket and falls back to exact rational arithmetic (common denominator) only when the
/// bracket cannot decide; that fallback may fail with [`AnalysisError::Overflow`].
pub(crate) fn compare_rate(
    tasks: &[Task],
    budget: u64,
    period: u64,
) -> Result<Ordering, AnalysisError> {
    let u = fixed_sum(tasks);
    let r = Fixed::ratio(budget, period);
    if u.upper() < r.floor {
        return Ok(Ordering::Less);
    }
    if u.floor > r.upper() {
        return Ok(Ordering::Greater);
    }
    if u.inexact == 0 && r.inexact == 0 {
        return Ok(u.floor.cmp(&r.floor));
    }
    // Exact: U = num/den with den = lcm of the periods.
    let mut den: u128 = 1;
    for t in tasks.iter().filter(|t| t.wcet > 0) {
        den = lcm(den, u128::from(t.period)).ok_or(AnalysisError::Overflow)?;
    }
    let mut num: u128 = 0;
    for t in tasks.iter().filter(|t| t.wcet > 0) {
        let term = (den / u128::from(t.period))
            .checked_mul(u128::from(t.wcet))
            .ok_or(AnalysisError::Overflow)?;
        num = num.checked_add(term).ok_or(AnalysisError::Overflow)?;
    }
    let lhs = num
        .checked_mul(u128::from(period))
        .ok_or(AnalysisError::Overflow)?;
    let rhs = den
        .checked_mul(u128::from(budget))
        .ok_or(AnalysisError::Overflow)?;
    Ok(lhs.cmp(&rhs))
}

/// Builds the [`Utilisation`] of already prepared (inflated) tasks.
pub(crate) fn utilisation_of(tasks: &[Task]) -> Result<Utilisation, AnalysisError> {
    Ok(Utilisation {
        sum: fixed_sum(tasks),
        vs_one: compare_rate(tasks, 1, 1)?,
    })
}

/// The utilisation `Σ (Cᵢ + per_activation)/Tᵢ` of `tasks` (at most
/// [`MAX_TASKS`](crate::MAX_TASKS); periods must be > 0). `overheads.blocking` does not count.
pub fn utilisation(tasks: &[Task], overheads: &Overheads) -> Result<Utilisation, AnalysisError> {
    let prepared = prepare(tasks, overheads.per_activation, Check::Basic)?;
    utilisation_of(&prepared[..tasks.len()])
}
