//! The resolved scheduling plan of a [`crate::System`] (what `PCPUS` is generated from) and
//! the bridge to `tessera-analysis`: server and task sets in, one-line verdicts out.
//!
//! Core level: every server is a task `C = budget + overhead_us`, `T = D = period`, blocking
//! `B = max_el2_section_us` (board.toml `[scheduling]`); a deferrable server under fixed
//! priority has release jitter `period − budget` ([`tessera_analysis::Server::as_task`]).
//! Guest level: the VM's tasks on one vCPU against the supply-bound function of its server
//! (periodic resource model), or against a whole core when the vCPU is exclusive.

use std::format;
use std::string::String;
use std::vec::Vec;

use tessera_analysis as ta;

use crate::desc::{self, ServerDesc};
use crate::schema::{BoardScheduling, TaskPolicy, TaskSpec};

/// One physical core of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcpu {
    pub policy: CorePolicy,
    /// `[[scheduling]] trace` (shared cores only).
    pub trace: bool,
}

impl Pcpu {
    /// A parked core.
    pub const IDLE: Pcpu = Pcpu {
        policy: CorePolicy::Idle,
        trace: false,
    };
}

/// What a core runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorePolicy {
    /// No vCPU.
    Idle,
    /// One vCPU, alone.
    Exclusive { vm: usize, vcpu: usize },
    /// Several vCPUs as servers, in config order (a vCPU's slot is its index here).
    Shared {
        policy: desc::SchedPolicy,
        servers: Vec<Server>,
    },
}

/// One server of a shared core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// What the image gets (the budget already derived when the config said "auto").
    pub desc: ServerDesc,
    /// Its VM's name (reports).
    pub vm_name: String,
    /// The config said `budget_us = "auto"`.
    pub budget_auto: bool,
}

/// What a vCPU with declared tasks receives from its core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Supply {
    /// The whole core (exclusive).
    Core { cpu: usize },
    /// A server of a shared core.
    Server {
        cpu: usize,
        kind: desc::ServerKind,
        budget_us: u64,
        period_us: u64,
    },
}

impl Supply {
    /// `core 0, deferrable server 2000/10000 µs` or `core 1, exclusive`.
    pub fn describe(&self) -> String {
        match *self {
            Supply::Core { cpu } => format!("core {cpu}, exclusive"),
            Supply::Server {
                cpu,
                kind,
                budget_us,
                period_us,
            } => format!(
                "core {cpu}, {} server {budget_us}/{period_us} µs",
                kind_str(kind)
            ),
        }
    }
}

/// Lower-case config spelling of a server kind.
pub fn kind_str(k: desc::ServerKind) -> &'static str {
    match k {
        desc::ServerKind::Deferrable => "deferrable",
        desc::ServerKind::Periodic => "periodic",
        desc::ServerKind::Polling => "polling",
        desc::ServerKind::Sporadic => "sporadic",
        desc::ServerKind::Cbs => "cbs",
    }
}

/// Config spelling of a core policy.
pub fn policy_str(p: desc::SchedPolicy) -> &'static str {
    match p {
        desc::SchedPolicy::Edf => "edf",
        desc::SchedPolicy::FixedPriority => "fixed-priority",
    }
}

/// Every analysis that passed (a failed one is an error of the load).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Shared cores, by core index.
    pub cores: Vec<CoreAnalysis>,
    /// vCPUs with declared tasks, by VM then vCPU.
    pub guests: Vec<GuestAnalysis>,
}

/// The core-level result of one shared core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreAnalysis {
    pub cpu: usize,
    pub policy: desc::SchedPolicy,
    /// `Σ (budget + overhead) / period`, parts per million (rounded up).
    pub utilisation_ppm: u64,
    /// EDF: the least `t − demand(t)` over the checked points (µs) and where it occurs
    /// (`None` when no deadline falls below the proven horizon). Fixed priority: the least
    /// `period − response time` over the servers, and the index of that server.
    pub slack_us: Option<u64>,
    pub slack_at: u64,
    /// EDF: the window length up to which demand was checked (a proven bound), µs.
    pub horizon_us: u64,
    /// Fixed priority: each server's worst-case response time (µs), config order.
    pub response_us: Vec<u64>,
    /// The costs charged.
    pub costs: BoardScheduling,
}

/// The guest-level result of one vCPU with declared tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestAnalysis {
    pub vm: usize,
    pub vcpu: usize,
    pub policy: TaskPolicy,
    pub supply: Supply,
    /// Number of tasks checked.
    pub tasks: usize,
    /// `Σ wcet / period` of the tasks, parts per million (rounded up).
    pub utilisation_ppm: u64,
    /// EDF: the least `sbf(t) − demand(t)` over the checked points (µs; `None` when no point
    /// needed checking). Fixed priority: `None` (the test finds, per task, one point where
    /// demand fits the supply; it measures no margin).
    pub slack_us: Option<u64>,
}

fn analysis_kind(k: desc::ServerKind) -> ta::ServerKind {
    match k {
        desc::ServerKind::Deferrable => ta::ServerKind::Deferrable,
        desc::ServerKind::Periodic => ta::ServerKind::Periodic,
        desc::ServerKind::Polling => ta::ServerKind::Polling,
        desc::ServerKind::Sporadic => ta::ServerKind::Sporadic,
        desc::ServerKind::Cbs => ta::ServerKind::ConstantBandwidth,
    }
}

/// `rt/0 2000/10000` for each server.
fn server_list(servers: &[Server]) -> String {
    let v: Vec<String> = servers
        .iter()
        .map(|s| {
            format!(
                "{}/{} {}/{}",
                s.vm_name, s.desc.vcpu, s.desc.budget_us, s.desc.period_us
            )
        })
        .collect();
    v.join(", ")
}

fn ppm_str(ppm: u64) -> String {
    format!("{}.{}%", ppm / 10_000, (ppm % 10_000) / 1_000)
}

fn analysis_error(e: ta::AnalysisError, what: &str) -> String {
    match e {
        ta::AnalysisError::TooManyTasks { count, max } => {
            format!("{count} {what}: the analysis takes at most {max}")
        }
        ta::AnalysisError::InvalidTask { index, problem } => {
            format!("{what} #{index} is invalid for the analysis: {problem:?}")
        }
        ta::AnalysisError::InvalidResource { period, budget } => {
            format!("invalid server {budget}/{period} µs for the analysis")
        }
        ta::AnalysisError::Overflow => {
            "the analysis overflows 64 bits: use smaller or harmonic periods".into()
        }
        ta::AnalysisError::HorizonTooLarge { horizon } => format!(
            "no verdict: the analysis horizon ({horizon} µs) is too large to check; use harmonic periods"
        ),
    }
}

/// The core-level test of one shared core's servers. `Err` is the detail of a one-line
/// message (the caller names the core and policy).
pub fn core_test(
    policy: desc::SchedPolicy,
    servers: &[Server],
    costs: BoardScheduling,
) -> Result<CoreAnalysis, String> {
    let tasks: Vec<ta::Task> = servers
        .iter()
        .map(|s| {
            ta::Server {
                kind: analysis_kind(s.desc.kind),
                budget: s.desc.budget_us,
                period: s.desc.period_us,
                priority: s.desc.priority,
            }
            .as_task()
        })
        .collect();
    let overheads = ta::Overheads {
        per_activation: costs.overhead_us,
        blocking: costs.max_el2_section_us,
    };
    let list = || {
        format!(
            "(servers: {}; charged {} µs per activation, blocking {} µs)",
            server_list(servers),
            costs.overhead_us,
            costs.max_el2_section_us
        )
    };
    let unsched = |u: ta::Unschedulable| -> String {
        match u {
            ta::Unschedulable::Overload { utilisation, .. } => format!(
                "utilisation {} > 100% {}",
                ppm_str(utilisation.parts_per_million()),
                list()
            ),
            ta::Unschedulable::DemandExceedsSupply { t, demand, supply } => {
                format!("demand {demand} µs > {supply} µs at t = {t} µs {}", list())
            }
            ta::Unschedulable::ResponseTimeExceedsDeadline {
                task,
                response_time,
                deadline,
            } => {
                let s = &servers[task.min(servers.len().saturating_sub(1))];
                let r = response_time.map_or("does not converge".into(), |r| format!("{r} µs"));
                format!(
                    "server servers[{task}] ({}/{}, priority {}): response time {r} > period {deadline} µs {}",
                    s.vm_name,
                    s.desc.vcpu,
                    s.desc.priority,
                    list()
                )
            }
            ta::Unschedulable::NoSchedulingPoint { task, .. } => {
                format!("server servers[{task}] fails {}", list())
            }
        }
    };
    let err = |e: ta::Error| match e {
        ta::Error::Unschedulable(u) => unsched(u),
        ta::Error::Analysis(a) => analysis_error(a, "servers"),
    };
    match policy {
        desc::SchedPolicy::Edf => {
            let r = ta::core_edf(&tasks, &overheads).map_err(err)?;
            Ok(CoreAnalysis {
                cpu: 0,
                policy,
                utilisation_ppm: r.utilisation.parts_per_million(),
                slack_us: (r.min_slack != u64::MAX).then_some(r.min_slack),
                slack_at: r.min_slack_at,
                horizon_us: r.horizon,
                response_us: Vec::new(),
                costs,
            })
        }
        desc::SchedPolicy::FixedPriority => {
            let r = ta::core_fp(&tasks, &overheads).map_err(err)?;
            let resp = r.response_times().to_vec();
            let (slack_at, slack_us) = tasks
                .iter()
                .zip(&resp)
                .map(|(t, &r)| t.deadline.saturating_sub(r))
                .enumerate()
                .min_by_key(|&(_, s)| s)
                .unwrap_or((0, 0));
            Ok(CoreAnalysis {
                cpu: 0,
                policy,
                utilisation_ppm: r.utilisation.parts_per_million(),
                slack_us: Some(slack_us),
                slack_at: slack_at as u64,
                horizon_us: 0,
                response_us: resp,
                costs,
            })
        }
    }
}

fn guest_tasks(tasks: &[&TaskSpec]) -> Vec<ta::Task> {
    tasks
        .iter()
        .map(|t| {
            ta::Task::new(
                t.wcet_us,
                t.period_us,
                t.deadline_us.unwrap_or(t.period_us),
                t.priority.unwrap_or(0),
            )
        })
        .collect()
}

fn analysis_policy(p: TaskPolicy) -> ta::Policy {
    match p {
        TaskPolicy::Edf => ta::Policy::Edf,
        TaskPolicy::FixedPriority => ta::Policy::FixedPriority,
    }
}

/// The guest-level test of the tasks of one vCPU against `supply`.
pub fn guest_test(
    policy: TaskPolicy,
    tasks: &[&TaskSpec],
    supply: &Supply,
) -> Result<GuestAnalysis, String> {
    let (budget, period) = match *supply {
        // A whole core supplies like a server whose budget is its period (sbf(t) = t).
        Supply::Core { .. } => {
            let p = tasks.iter().map(|t| t.period_us).max().unwrap_or(1);
            (p, p)
        }
        Supply::Server {
            budget_us,
            period_us,
            ..
        } => (budget_us, period_us),
    };
    let resource =
        ta::PeriodicResource::new(period, budget).map_err(|e| analysis_error(e, "tasks"))?;
    let ts = guest_tasks(tasks);
    let name = |i: usize| tasks.get(i).map_or("?", |t| t.name.as_str());
    let unsched = |u: ta::Unschedulable| -> String {
        match u {
            ta::Unschedulable::Overload {
                utilisation,
                supply_budget,
                supply_period,
            } => format!(
                "not schedulable: task utilisation {} > the server's {supply_budget}/{supply_period}",
                ppm_str(utilisation.parts_per_million())
            ),
            ta::Unschedulable::DemandExceedsSupply { t, demand, supply } => format!(
                "not schedulable: task demand {demand} µs > supply {supply} µs at t = {t} µs"
            ),
            ta::Unschedulable::NoSchedulingPoint {
                task,
                deadline,
                demand_at_deadline,
                supply_at_deadline,
            } => format!(
                "not schedulable: task `{}` finds no point up to its deadline {deadline} µs where demand fits the supply (at the deadline: demand {demand_at_deadline} µs > supply {supply_at_deadline} µs)",
                name(task)
            ),
            ta::Unschedulable::ResponseTimeExceedsDeadline {
                task,
                response_time,
                deadline,
            } => format!(
                "not schedulable: task `{}` response time {} > deadline {deadline} µs",
                name(task),
                response_time.map_or("unbounded".into(), |r| format!("{r} µs"))
            ),
        }
    };
    let err = |e: ta::Error| match e {
        ta::Error::Unschedulable(u) => unsched(u),
        ta::Error::Analysis(a) => analysis_error(a, "tasks"),
    };
    let (utilisation_ppm, slack_us) = match policy {
        TaskPolicy::Edf => {
            let r = ta::guest_edf(resource, &ts).map_err(err)?;
            (
                r.utilisation.parts_per_million(),
                (r.min_slack != u64::MAX).then_some(r.min_slack),
            )
        }
        TaskPolicy::FixedPriority => {
            let r = ta::guest_fp(resource, &ts).map_err(err)?;
            (r.utilisation.parts_per_million(), None)
        }
    };
    Ok(GuestAnalysis {
        vm: 0,
        vcpu: 0,
        policy,
        supply: *supply,
        tasks: tasks.len(),
        utilisation_ppm,
        slack_us,
    })
}

/// `budget_us = "auto"`: the least budget (µs) at `period_us` that keeps `tasks` schedulable.
pub fn auto_budget(policy: TaskPolicy, tasks: &[&TaskSpec], period_us: u64) -> Result<u64, String> {
    let ts = guest_tasks(tasks);
    match ta::min_budget(period_us, analysis_policy(policy), &ts) {
        // Tasks always have demand (wcet > 0 is checked), so 0 does not occur; a server needs
        // at least 1 µs anyway.
        Ok(Some(b)) => Ok(b.max(1)),
        Ok(None) => Err(format!(
            "even a budget equal to the period {period_us} µs cannot keep its {} task(s) schedulable: shorten the period",
            tasks.len()
        )),
        Err(a) => Err(analysis_error(a, "tasks")),
    }
}
