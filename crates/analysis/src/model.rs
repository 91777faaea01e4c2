//! Inputs (tasks, servers, overheads) and outcomes (errors, reasons for rejection).

use crate::util::Utilisation;
use crate::MAX_TASKS;

/// How a [`Task`] places its demand; it changes the EDF demand-bound function only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// A sporadic (or periodic) task: jobs at least `period` apart, each needing `wcet` by
    /// `deadline` after its arrival, released up to `jitter` after arrival.
    #[default]
    Sporadic,
    /// A deferrable server (budget `wcet`, period `period`, `deadline == period`): it keeps
    /// unused budget until its period ends, so it may start consuming at any point of its
    /// period. Under EDF its demand in any window of length t is at most
    /// `⌊t/T⌋·C + min(C, t mod T)` (back-to-back at the end of one period and the start of the
    /// next); under fixed priority it acts through its `jitter` (set to `Π − Θ` by
    /// [`Server::as_task`]).
    DeferrableServer,
}

/// One task (or one server seen as a task) of an analysis. Times in µs.
///
/// Semantics of `jitter`: under **fixed priority** it only enlarges the interference the task
/// causes on lower-priority tasks (`⌈(t + J)/T⌉` activations in a window t); the task's own
/// response time is measured from its release and compared with `deadline` (if your deadlines
/// are relative to arrival, pass `deadline − jitter`). Under **EDF** the deadline is relative
/// to arrival and a job may be released up to `jitter` later, giving
/// `dbf(t) = max(0, ⌊(t + J − D)/T⌋ + 1)·C`. For a deferrable server both readings give
/// sound results (see [`TaskKind::DeferrableServer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Task {
    /// Worst-case execution time C (for a server: its budget Θ). May be 0 (no demand).
    pub wcet: u64,
    /// Minimum inter-arrival time T (for a server: its period Π). Must be > 0.
    pub period: u64,
    /// Relative deadline D. Must be > 0; fixed-priority tests require `D ≤ T`.
    pub deadline: u64,
    /// Fixed priority: a **lower value is a higher priority**. Tasks of equal priority are
    /// assumed to interfere with each other (conservative). Ignored by EDF.
    pub priority: u32,
    /// Release jitter J (see the type's documentation for its meaning per policy).
    pub jitter: u64,
    /// How the task places its demand.
    pub kind: TaskKind,
}

impl Task {
    /// A sporadic task with constrained deadline, no jitter.
    pub const fn new(wcet: u64, period: u64, deadline: u64, priority: u32) -> Self {
        Task {
            wcet,
            period,
            deadline,
            priority,
            jitter: 0,
            kind: TaskKind::Sporadic,
        }
    }

    /// A sporadic task with implicit deadline (`D = T`), no jitter.
    pub const fn implicit(wcet: u64, period: u64, priority: u32) -> Self {
        Task::new(wcet, period, period, priority)
    }

    /// The same task with release jitter `jitter`.
    pub const fn with_jitter(self, jitter: u64) -> Self {
        Task { jitter, ..self }
    }
}

/// Budget behaviour of a server (see `RT-THEORY.md`, "Servers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// Keeps unused budget until the period ends.
    Deferrable,
    /// Budget idles away while the vCPU has nothing to do.
    Periodic,
    /// Remaining budget dropped when the vCPU becomes idle.
    Polling,
    /// Each consumed chunk returns one period after its consumption began.
    Sporadic,
    /// Constant bandwidth server (Linux SCHED_DEADLINE rules).
    ConstantBandwidth,
}

/// A server (one per vCPU) as the core-level analysis sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Server {
    /// Budget behaviour.
    pub kind: ServerKind,
    /// Budget Θ in µs.
    pub budget: u64,
    /// Period Π in µs.
    pub period: u64,
    /// Fixed priority (lower value = higher priority); ignored under EDF.
    pub priority: u32,
}

impl Server {
    /// The server as a core-level task: `C = Θ, T = D = Π`. A deferrable server gets
    /// `jitter = Π − Θ` (fixed priority: back-to-back interference) and
    /// [`TaskKind::DeferrableServer`] (EDF demand). Periodic, polling and sporadic servers and
    /// CBS are plain periodic tasks. Invalid values (Π = 0, Θ > Π) are reported by the
    /// analysis that receives the task.
    pub const fn as_task(&self) -> Task {
        let base = Task::implicit(self.budget, self.period, self.priority);
        match self.kind {
            ServerKind::Deferrable => Task {
                jitter: self.period.saturating_sub(self.budget),
                kind: TaskKind::DeferrableServer,
                ..base
            },
            ServerKind::Periodic
            | ServerKind::Polling
            | ServerKind::Sporadic
            | ServerKind::ConstantBandwidth => base,
        }
    }
}

/// Scheduling policy of one level (core or guest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Earliest deadline first.
    Edf,
    /// Fixed priority (lower value = higher priority).
    FixedPriority,
}

/// Hypervisor costs charged by the core-level tests (µs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Overheads {
    /// Added to every task's `wcet` (per activation: switch in and out, timer interrupt,
    /// replenishment), e.g. the figure from `cargo xtask bench`.
    pub per_activation: u64,
    /// Longest non-preemptible stretch of EL2 work that can delay any task once (added as
    /// blocking `B` to every response time, and to the demand at every EDF check point).
    /// Recurrent EL2 work is better given as a task of its own.
    pub blocking: u64,
}

impl Overheads {
    /// No overheads.
    pub const NONE: Overheads = Overheads {
        per_activation: 0,
        blocking: 0,
    };
}

/// What is wrong with one input task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskProblem {
    /// `period` is 0.
    ZeroPeriod,
    /// `deadline` is 0.
    ZeroDeadline,
    /// `deadline > period` where the test requires constrained deadlines (fixed priority).
    DeadlineExceedsPeriod,
    /// EDF: `jitter ≥ deadline` with `wcet > 0`: a job could be released at its deadline.
    JitterNotBelowDeadline,
    /// A [`TaskKind::DeferrableServer`] whose `deadline` differs from its `period`.
    ServerDeadlineNotPeriod,
    /// A [`TaskKind::DeferrableServer`] inside a guest EDF test (not supported there).
    ServerInGuest,
}

/// The analysis could not reach a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnalysisError {
    /// More than [`MAX_TASKS`] tasks.
    TooManyTasks {
        /// Number of tasks given.
        count: usize,
        /// The limit, [`MAX_TASKS`].
        max: usize,
    },
    /// Task `index` (position in the input slice) is invalid.
    InvalidTask {
        /// Position in the input slice.
        index: usize,
        /// What is wrong.
        problem: TaskProblem,
    },
    /// A periodic resource with `period == 0` or `budget > period`.
    InvalidResource {
        /// The period given.
        period: u64,
        /// The budget given.
        budget: u64,
    },
    /// An intermediate value does not fit in 64 (or 128) bits.
    Overflow,
    /// The analysis horizon has too many check points or iterations
    /// ([`MAX_POINTS`](crate::MAX_POINTS), [`MAX_ITERATIONS`](crate::MAX_ITERATIONS)), or no
    /// finite horizon could be computed ("analysis horizon too large").
    HorizonTooLarge {
        /// The horizon (µs) that would have to be examined; `u64::MAX` if unknown.
        horizon: u64,
    },
}

/// Why a task set is not schedulable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unschedulable {
    /// Long-run demand exceeds supply: utilisation above 1 (core) or above Θ/Π (guest).
    Overload {
        /// The (overhead-inflated) utilisation.
        utilisation: Utilisation,
        /// Supply rate numerator (1 for a dedicated core, Θ for a periodic resource).
        supply_budget: u64,
        /// Supply rate denominator (1 for a dedicated core, Π for a periodic resource).
        supply_period: u64,
    },
    /// EDF: at window length `t` the demand exceeds the supply (the first such point).
    DemandExceedsSupply {
        /// Window length (µs) — an absolute deadline in the synchronous worst case.
        t: u64,
        /// Demand `B + Σ dbfᵢ(t)` (µs).
        demand: u64,
        /// Supply: `t` on a dedicated core, `sbf(t)` for a periodic resource.
        supply: u64,
    },
    /// Fixed priority (core): task `task`'s response time exceeds its deadline.
    ResponseTimeExceedsDeadline {
        /// Position in the input slice.
        task: usize,
        /// Its worst-case response time, or `None` if the iteration diverges (or does not
        /// settle within [`MAX_ITERATIONS`](crate::MAX_ITERATIONS)).
        response_time: Option<u64>,
        /// Its deadline.
        deadline: u64,
    },
    /// Fixed priority (guest): no scheduling point `t ∈ (0, D]` of task `task` has
    /// `demand(t) ≤ sbf(t)`.
    NoSchedulingPoint {
        /// Position in the input slice.
        task: usize,
        /// Its deadline.
        deadline: u64,
        /// Demand at `t = D`: `Cᵢ + Σ_hp ⌈(D + Jⱼ)/Tⱼ⌉ Cⱼ` (saturating).
        demand_at_deadline: u64,
        /// `sbf(D)`.
        supply_at_deadline: u64,
    },
}

/// Outcome of an analysis that did not accept the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// A verdict: not schedulable, with the reason.
    Unschedulable(Unschedulable),
    /// No verdict: invalid input or analysis limits exceeded.
    Analysis(AnalysisError),
}

impl From<AnalysisError> for Error {
    fn from(e: AnalysisError) -> Self {
        Error::Analysis(e)
    }
}

impl From<Unschedulable> for Error {
    fn from(u: Unschedulable) -> Self {
        Error::Unschedulable(u)
    }
}

/// Which checks [`validate`] applies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Count, period and deadline only.
    Basic,
    /// EDF demand test.
    Edf,
    /// Fixed priority (requires D ≤ T).
    Fp,
}

/// Checks count and per-task values; returns the tasks with `wcet` inflated by
/// `per_activation` in a fixed array (only the first `tasks.len()` entries are meaningful).
pub(crate) fn prepare(
    tasks: &[Task],
    per_activation: u64,
    check: Check,
) -> Result<[Task; MAX_TASKS], AnalysisError> {
    if tasks.len() > MAX_TASKS {
        return Err(AnalysisError::TooManyTasks {
            count: tasks.len(),
            max: MAX_TASKS,
        });
    }
    let mut out = [Task::implicit(0, 1, 0); MAX_TASKS];
    for (index, (task, slot)) in tasks.iter().zip(out.iter_mut()).enumerate() {
        let bad = |problem| AnalysisError::InvalidTask { index, problem };
        if task.period == 0 {
            return Err(bad(TaskProblem::ZeroPeriod));
        }
        if task.deadline == 0 {
            return Err(bad(TaskProblem::ZeroDeadline));
        }
        if task.kind == TaskKind::DeferrableServer && task.deadline != task.period {
            return Err(bad(TaskProblem::ServerDeadlineNotPeriod));
        }
        let wcet = task
            .wcet
            .checked_add(per_activation)
            .ok_or(AnalysisError::Overflow)?;
        match check {
            Check::Basic => {}
            Check::Edf => {
                if wcet > 0 && task.kind == TaskKind::Sporadic && task.jitter >= task.deadline {
                    return Err(bad(TaskProblem::JitterNotBelowDeadline));
                }
            }
            Check::Fp => {
                if wcet > 0 && task.deadline > task.period {
                    return Err(bad(TaskProblem::DeadlineExceedsPeriod));
                }
            }
        }
        *slot = Task { wcet, ..*task };
    }
    Ok(out)
}
