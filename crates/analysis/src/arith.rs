//! Checked integer helpers: every overflow becomes [`AnalysisError::Overflow`].

use crate::model::AnalysisError;

/// `a + b`, or [`AnalysisError::Overflow`].
pub(crate) fn add(a: u64, b: u64) -> Result<u64, AnalysisError> {
    a.checked_add(b).ok_or(AnalysisError::Overflow)
}

/// `a · b`, or [`AnalysisError::Overflow`].
pub(crate) fn mul(a: u64, b: u64) -> Result<u64, AnalysisError> {
    a.checked_mul(b).ok_or(AnalysisError::Overflow)
}

/// `⌈a / b⌉` for `b > 0` (callers guarantee `b > 0`; `b == 0` yields `u64::MAX`).
pub(crate) fn ceil_div(a: u64, b: u64) -> u64 {
    if b == 0 {
        return u64::MAX;
    }
    a.div_ceil(b)
}

/// Greatest common divisor (`gcd(0, x) = x`).
pub(crate) fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        let r = a % b;
        a = b;
        b = r;
    }
    a
}

/// Least common multiple of two positive numbers, `None` on overflow of `u128`.
pub(crate) fn lcm(a: u128, b: u128) -> Option<u128> {
    if a == 0 || b == 0 {
        return Some(0);
    }
    (a / gcd(a, b)).checked_mul(b)
}
