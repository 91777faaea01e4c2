//! Schedulability analysis for Tessera's per-core server scheduling (build time).
//!
//! Pure integer logic: `#![no_std]`, no heap, no `unsafe`, no panics on inputs. Times are
//! integer **microseconds** (`u64`). Every arithmetic step is checked; an overflow is the typed
//! error [`AnalysisError::Overflow`], never a wrap or a panic. Work is bounded by fixed limits
//! ([`MAX_TASKS`], [`MAX_POINTS`], [`MAX_ITERATIONS`]); exceeding them is
//! [`AnalysisError::HorizonTooLarge`].
//!
//! Two levels (formulas and sources in `shared/RT-THEORY.md`):
//!
//! * **Core level**: the servers of one pCPU, each as a [`Task`] (see [`Server::as_task`]):
//!   - [`core_edf`]: EDF processor-demand test, `B + Σ dbfᵢ(t) ≤ t` at every check point up to
//!     a proven horizon (the synchronous busy period, the linear bound
//!     `Σ (Tᵢ − Dᵢ + Jᵢ)⁺ Uᵢ / (1 − U)` or the hyperperiod, whichever is smallest).
//!   - [`core_fp`]: fixed-priority response-time analysis with release jitter and blocking,
//!     `Rᵢ = Cᵢ + B + Σ_{j ∈ hp(i)} ⌈(Rᵢ + Jⱼ)/Tⱼ⌉ Cⱼ`, schedulable iff `Rᵢ ≤ Dᵢ`.
//!   - Hypervisor overheads enter through [`Overheads`]: `per_activation` inflates every
//!     `Cᵢ`, `blocking` is a non-preemptible stretch of EL2 work charged once.
//! * **Guest level** (inside one VM): the periodic resource model of Shin & Lee,
//!   [`PeriodicResource`] with its supply-bound function [`PeriodicResource::sbf`]:
//!   - [`guest_edf`]: `Σ dbfᵢ(t) ≤ sbf(t)` at every absolute deadline up to a proven horizon.
//!   - [`guest_fp`]: task i passes iff some scheduling point `t ∈ (0, Dᵢ]` has
//!     `Cᵢ + Σ_{j ∈ hp(i)} ⌈(t + Jⱼ)/Tⱼ⌉ Cⱼ ≤ sbf(t)`.
//!   - [`min_budget`] / [`best_interface`]: the least budget (1 µs resolution) for a period,
//!     and the candidate period with the least bandwidth (`budget = "auto"`).
//!
//! Results: `Ok(report)` when schedulable, `Err(Error::Unschedulable(..))` with the reason (first
//! failing time point, failing task, overload), or `Err(Error::Analysis(..))` when the input is
//! invalid or the analysis cannot be completed within its bounds.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod arith;
mod demand;
mod fp;
mod model;
mod prm;
mod util;

pub use demand::{core_edf, guest_edf, DemandReport};
pub use fp::{core_fp, guest_fp, FpReport, GuestFpReport};
pub use model::{
    AnalysisError, Error, Overheads, Policy, Server, ServerKind, Task, TaskKind, TaskProblem,
    Unschedulable,
};
pub use prm::{best_interface, guest_schedulable, min_budget, sbf, PeriodicResource};
pub use util::{utilisation, Utilisation};

/// Most tasks (or servers) one analysis accepts; more is [`AnalysisError::TooManyTasks`].
pub const MAX_TASKS: usize = 64;

/// Most time points one EDF demand test (or one task's guest-FP test) evaluates; beyond it the
/// analysis stops with [`AnalysisError::HorizonTooLarge`].
pub const MAX_POINTS: u64 = 1 << 20;

/// Most fixed-point iterations of one response-time (or busy-period) computation; beyond it
/// the analysis stops with [`AnalysisError::HorizonTooLarge`].
pub const MAX_ITERATIONS: u64 = 100_000;

#[cfg(test)]
mod tests;
