//! Pass 3 (scheduling): the policy of every core, the servers of shared cores, the VMs'
//! declared task sets, and the schedulability analysis (core level: EDF demand or
//! fixed-priority response time over the servers; guest level: periodic resource model).
//!
//! Input: the parsed files and the vCPU placement of [`Resources`]. Output: [`Schedule`], the
//! `PCPUS` plan with each vCPU's slot and the analysis results for the report.

use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use super::input::{Input, MAX_TIME_US};
use super::resources::Resources;
use super::{valid_name, MAX_SERVERS_PER_CORE};
use crate::desc::{self, ServerDesc};
use crate::error::{ConfigError, ErrorKind as K, Subject};
use crate::sched::{self, Analysis, CorePolicy, Pcpu, Server, Supply};
use crate::schema::{BudgetSpec, SchedPolicy, SchedSpec, ServerKind, TaskPolicy, VmSpec};

/// What the descriptors pass and [`crate::System`] take from this one.
#[derive(Debug, Default)]
pub struct Schedule {
    /// One per board core.
    pub pcpus: Vec<Pcpu>,
    /// Per VM, per vCPU: its index in its core's servers (0 on an exclusive core).
    pub slots: Vec<Vec<usize>>,
    /// Verdicts, utilisation and slack for the report.
    pub analysis: Analysis,
}

pub fn run(inp: &Input, res: &Resources, errs: &mut Vec<ConfigError>) -> Schedule {
    let cfg = &inp.cfg;
    let max_cpus = inp.board.max_cpus;
    let mut out = Schedule {
        pcpus: vec![Pcpu::IDLE; max_cpus],
        slots: cfg.vms.iter().map(|v| vec![0; v.cpus.len()]).collect(),
        analysis: Analysis::default(),
    };
    let entries = entries(inp, errs);
    let tasks_ok: Vec<bool> = cfg.vms.iter().map(|v| check_tasks(v, errs)).collect();
    // (vm, vcpu) → (core, server index) of every server the core checks accepted, with its
    // final budget.
    let mut supply_of: BTreeMap<(usize, usize), Supply> = BTreeMap::new();
    let none = Vec::new();
    for cpu in 0..max_cpus {
        let placed = res.placement.get(&cpu).unwrap_or(&none);
        let spec = entries.get(&cpu).copied();
        match spec.map_or(SchedPolicy::Exclusive, |s| s.policy) {
            SchedPolicy::Exclusive => {
                exclusive_core(inp, cpu, spec, placed, &mut out, &mut supply_of, errs)
            }
            p => {
                let policy = match p {
                    SchedPolicy::FixedPriority => desc::SchedPolicy::FixedPriority,
                    _ => desc::SchedPolicy::Edf,
                };
                if let Some(spec) = spec {
                    shared_core(
                        inp,
                        res,
                        cpu,
                        policy,
                        spec,
                        placed,
                        &tasks_ok,
                        &mut out,
                        &mut supply_of,
                        errs,
                    );
                }
            }
        }
    }
    // Guest level: every vCPU with declared tasks, against what its core gives it.
    for (vi, v) in cfg.vms.iter().enumerate() {
        if !tasks_ok[vi] || v.tasks.is_empty() {
            continue;
        }
        let policy = v.task_policy.unwrap_or(TaskPolicy::Edf);
        for vcpu in 0..v.cpus.len() {
            let tasks: Vec<&crate::schema::TaskSpec> =
                v.tasks.iter().filter(|t| t.vcpu == vcpu).collect();
            if tasks.is_empty() {
                continue;
            }
            // No supply known: the core's own checks failed and said so.
            let Some(supply) = supply_of.get(&(vi, vcpu)) else {
                continue;
            };
            match sched::guest_test(policy, &tasks, supply) {
                Ok(g) => out
                    .analysis
                    .guests
                    .push(sched::GuestAnalysis { vm: vi, vcpu, ..g }),
                Err(detail) => errs.push(ConfigError::vm(
                    K::Unschedulable,
                    &v.name,
                    "tasks",
                    format!("vcpu {vcpu} ({}): {detail}", supply.describe()),
                )),
            }
        }
    }
    out
}

/// The first `[[scheduling]]` entry of every existing core (range and duplicates reported).
fn entries<'a>(inp: &'a Input, errs: &mut Vec<ConfigError>) -> BTreeMap<usize, &'a SchedSpec> {
    let mut map = BTreeMap::new();
    for s in &inp.cfg.scheduling {
        let subj = || Subject::Cpu(s.cpu);
        if s.cpu >= inp.board.max_cpus {
            errs.push(ConfigError::new(
                K::PcpuRange,
                subj(),
                "cpu",
                format!(
                    "pCPU {} does not exist (board max_cpus = {})",
                    s.cpu, inp.board.max_cpus
                ),
            ));
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = map.entry(s.cpu) {
            e.insert(s);
        } else {
            errs.push(ConfigError::new(
                K::Scheduling,
                subj(),
                "cpu",
                "a second [[scheduling]] entry for this pCPU",
            ));
        }
    }
    map
}

fn vcpu_name(inp: &Input, (vm, vcpu): (usize, usize)) -> String {
    format!("vm `{}` vcpu {vcpu}", inp.cfg.vms[vm].name)
}

/// A core that is `exclusive` (listed so, or not listed): at most one vCPU, no servers.
fn exclusive_core(
    inp: &Input,
    cpu: usize,
    spec: Option<&SchedSpec>,
    placed: &[(usize, usize)],
    out: &mut Schedule,
    supply_of: &mut BTreeMap<(usize, usize), Supply>,
    errs: &mut Vec<ConfigError>,
) {
    let subj = || Subject::Cpu(cpu);
    if let Some(s) = spec {
        if placed.is_empty() {
            errs.push(ConfigError::new(
                K::Scheduling,
                subj(),
                "policy",
                "exclusive but no vCPU runs on this pCPU",
            ));
        }
        if !s.servers.is_empty() {
            errs.push(ConfigError::new(
                K::Scheduling,
                subj(),
                "servers",
                "servers apply to edf / fixed-priority cores, not exclusive",
            ));
        }
        if s.trace {
            errs.push(ConfigError::new(
                K::NotSupported,
                subj(),
                "trace",
                "not supported yet on an exclusive core (it runs no scheduler); use edf or fixed-priority",
            ));
        }
    }
    let Some(&first) = placed.first() else {
        return;
    };
    for &(vm, vcpu) in &placed[1..] {
        errs.push(ConfigError::vm(
            K::PcpuTwice,
            &inp.cfg.vms[vm].name,
            format!("cpus[{vcpu}]"),
            format!(
                "core {cpu} runs {} and {}: a shared core needs policy edf or fixed-priority",
                vcpu_name(inp, first),
                vcpu_name(inp, (vm, vcpu))
            ),
        ));
    }
    out.pcpus[cpu] = Pcpu {
        policy: CorePolicy::Exclusive {
            vm: first.0,
            vcpu: first.1,
        },
        trace: false,
    };
    supply_of.insert(first, Supply::Core { cpu });
}

/// An `edf` / `fixed-priority` core: one well-formed server per vCPU placed on it, then the
/// core-level test.
#[allow(clippy::too_many_arguments)]
fn shared_core(
    inp: &Input,
    res: &Resources,
    cpu: usize,
    policy: desc::SchedPolicy,
    spec: &SchedSpec,
    placed: &[(usize, usize)],
    tasks_ok: &[bool],
    out: &mut Schedule,
    supply_of: &mut BTreeMap<(usize, usize), Supply>,
    errs: &mut Vec<ConfigError>,
) {
    let cfg = &inp.cfg;
    let pname = spec.policy.as_str();
    let subj = || Subject::Cpu(cpu);
    let n_errs = errs.len();
    let mut push = |field: String, detail: String, kind: K| {
        errs.push(ConfigError::new(kind, subj(), field, detail));
    };
    if placed.is_empty() {
        push(
            "policy".into(),
            format!("{pname} but no vCPU runs on this pCPU"),
            K::Scheduling,
        );
    }
    if spec.servers.len() > MAX_SERVERS_PER_CORE {
        push(
            "servers".into(),
            format!(
                "{} servers; a core schedules at most {MAX_SERVERS_PER_CORE}",
                spec.servers.len()
            ),
            K::Scheduling,
        );
    }
    let mut servers: Vec<Server> = Vec::new();
    // (vm, vcpu) → server index.
    let mut seen: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut prio_seen: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, s) in spec.servers.iter().enumerate() {
        let f = format!("servers[{i}]");
        let who = format!("vm `{}` vcpu {}", s.vm, s.vcpu);
        let mut ok = true;
        let vm = match res.vm_index.get(&s.vm) {
            None => {
                push(
                    format!("{f}.vm"),
                    format!("no VM named `{}`", s.vm),
                    K::Scheduling,
                );
                ok = false;
                None
            }
            Some(&vm) => Some(vm),
        };
        if let Some(vm) = vm {
            let v = &cfg.vms[vm];
            match v.cpus.get(s.vcpu) {
                None => {
                    push(
                        format!("{f}.vcpu"),
                        format!(
                            "vm `{}` has no vcpu {} (it has {})",
                            s.vm,
                            s.vcpu,
                            v.cpus.len()
                        ),
                        K::Scheduling,
                    );
                    ok = false;
                }
                Some(&c) if c != cpu => {
                    push(
                        format!("{f}.vcpu"),
                        format!("{who} runs on core {c}, not core {cpu} (see its `cpus`)"),
                        K::Scheduling,
                    );
                    ok = false;
                }
                Some(_) => {
                    if let Some(&first) = seen.get(&(vm, s.vcpu)) {
                        push(
                            f.clone(),
                            format!("a second server for {who} (the first is servers[{first}])"),
                            K::Scheduling,
                        );
                        ok = false;
                    } else {
                        seen.insert((vm, s.vcpu), i);
                    }
                }
            }
        }
        if s.period_us == 0 {
            push(
                format!("{f}.period_us"),
                format!("is zero ({who})"),
                K::Scheduling,
            );
            ok = false;
        } else if s.period_us > MAX_TIME_US {
            push(
                format!("{f}.period_us"),
                format!(
                    "{} µs is more than the limit {MAX_TIME_US} µs ({who})",
                    s.period_us
                ),
                K::Scheduling,
            );
            ok = false;
        }
        let budget = match &s.budget_us {
            BudgetSpec::Us(0) => {
                push(
                    format!("{f}.budget_us"),
                    format!("is zero ({who})"),
                    K::Scheduling,
                );
                ok = false;
                None
            }
            BudgetSpec::Us(b) if s.period_us != 0 && *b > s.period_us => {
                push(
                    format!("{f}.budget_us"),
                    format!("{b} µs is more than the period {} µs ({who})", s.period_us),
                    K::Scheduling,
                );
                ok = false;
                None
            }
            BudgetSpec::Us(b) => Some((*b, false)),
            BudgetSpec::Word(w) if w == "auto" => None,
            BudgetSpec::Word(w) => {
                push(
                    format!("{f}.budget_us"),
                    format!("`{w}`: give microseconds or \"auto\" ({who})"),
                    K::Scheduling,
                );
                ok = false;
                None
            }
        };
        match (policy, s.priority) {
            (desc::SchedPolicy::FixedPriority, None) => {
                push(
                    format!("{f}.priority"),
                    format!("missing: a fixed-priority core needs a priority per server, lower = higher ({who})"),
                    K::Scheduling,
                );
                ok = false;
            }
            (desc::SchedPolicy::Edf, Some(_)) => {
                push(
                    format!("{f}.priority"),
                    format!("given on an edf core, where it means nothing: remove it or use policy fixed-priority ({who})"),
                    K::Scheduling,
                );
                ok = false;
            }
            (desc::SchedPolicy::FixedPriority, Some(p)) => {
                if let Some(&first) = prio_seen.get(&p) {
                    push(
                        format!("{f}.priority"),
                        format!("{p} is also servers[{first}]'s: give every server of a fixed-priority core its own priority ({who})"),
                        K::Scheduling,
                    );
                    ok = false;
                } else {
                    prio_seen.insert(p, i);
                }
            }
            (desc::SchedPolicy::Edf, None) => {}
        }
        // "auto": derive the least budget from the VM's tasks on this vCPU.
        let budget = match (ok, budget, vm) {
            (true, Some(b), _) => Some(b),
            (true, None, Some(vm)) => {
                let v = &cfg.vms[vm];
                let tasks: Vec<&crate::schema::TaskSpec> =
                    v.tasks.iter().filter(|t| t.vcpu == s.vcpu).collect();
                if tasks.is_empty() {
                    push(
                        format!("{f}.budget_us"),
                        format!(
                            "\"auto\" needs vm `{}`'s `tasks` for vcpu {} (none declared)",
                            s.vm, s.vcpu
                        ),
                        K::Scheduling,
                    );
                    None
                } else if !tasks_ok[vm] {
                    // The task errors are reported; no budget can be derived from them.
                    None
                } else {
                    let tp = v.task_policy.unwrap_or(TaskPolicy::Edf);
                    match sched::auto_budget(tp, &tasks, s.period_us) {
                        Ok(b) => Some((b, true)),
                        Err(detail) => {
                            push(
                                format!("{f}.budget_us"),
                                format!("\"auto\" for {who}: {detail}"),
                                K::Unschedulable,
                            );
                            None
                        }
                    }
                }
            }
            _ => None,
        };
        if let (Some((budget_us, auto)), Some(vm)) = (budget, vm) {
            servers.push(Server {
                desc: ServerDesc {
                    vm,
                    vcpu: s.vcpu,
                    kind: match s.kind {
                        ServerKind::Deferrable => desc::ServerKind::Deferrable,
                        ServerKind::Periodic => desc::ServerKind::Periodic,
                        ServerKind::Polling => desc::ServerKind::Polling,
                        ServerKind::Sporadic => desc::ServerKind::Sporadic,
                        ServerKind::Cbs => desc::ServerKind::Cbs,
                    },
                    budget_us,
                    period_us: s.period_us,
                    priority: s.priority.unwrap_or(0),
                },
                vm_name: s.vm.clone(),
                budget_auto: auto,
            });
        }
    }
    for &(vm, vcpu) in placed {
        if !seen.contains_key(&(vm, vcpu)) {
            errs.push(ConfigError::vm(
                K::Scheduling,
                &cfg.vms[vm].name,
                format!("cpus[{vcpu}]"),
                format!(
                    "vcpu {vcpu} runs on core {cpu} ({pname}) but no server of [[scheduling]] cpu {cpu} names it"
                ),
            ));
        }
    }
    if errs.len() != n_errs || servers.len() != spec.servers.len() {
        return;
    }
    // Every vCPU of the core has exactly one well-formed server: the core-level test.
    match sched::core_test(policy, &servers, inp.board.scheduling) {
        Ok(mut a) => {
            a.cpu = cpu;
            out.analysis.cores.push(a);
        }
        Err(detail) => {
            errs.push(ConfigError::new(
                K::Unschedulable,
                subj(),
                "servers",
                format!("core {cpu} ({pname}): not schedulable: {detail}"),
            ));
            return;
        }
    }
    for (i, s) in servers.iter().enumerate() {
        out.slots[s.desc.vm][s.desc.vcpu] = i;
        supply_of.insert(
            (s.desc.vm, s.desc.vcpu),
            Supply::Server {
                cpu,
                kind: s.desc.kind,
                budget_us: s.desc.budget_us,
                period_us: s.desc.period_us,
            },
        );
    }
    out.pcpus[cpu] = Pcpu {
        policy: CorePolicy::Shared { policy, servers },
        trace: spec.trace,
    };
}

/// A VM's `task_policy` and `tasks`: well-formed (true) or every problem reported (false).
fn check_tasks(v: &VmSpec, errs: &mut Vec<ConfigError>) -> bool {
    let n = errs.len();
    let mut push = |field: String, detail: String| {
        errs.push(ConfigError::vm(K::Tasks, &v.name, field, detail));
    };
    if v.tasks.is_empty() {
        if v.task_policy.is_some() {
            push(
                "task_policy".into(),
                "given without `tasks`: declare the guest's tasks or remove it".into(),
            );
        }
        return errs.len() == n;
    }
    let policy = v.task_policy.unwrap_or(TaskPolicy::Edf);
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (j, t) in v.tasks.iter().enumerate() {
        let f = format!("tasks[{j}]");
        let who = format!("task `{}`", t.name);
        if !valid_name(&t.name) {
            push(
                format!("{f}.name"),
                format!("`{}`: use letters, digits, - and _", t.name),
            );
        }
        if let Some(first) = names.insert(&t.name, j) {
            push(
                format!("{f}.name"),
                format!("`{}` is also tasks[{first}]'s name", t.name),
            );
        }
        let deadline = t.deadline_us.unwrap_or(t.period_us);
        for (what, val) in [
            ("period_us", t.period_us),
            ("wcet_us", t.wcet_us),
            ("deadline_us", deadline),
        ] {
            if val == 0 {
                push(format!("{f}.{what}"), format!("is zero ({who})"));
            } else if val > MAX_TIME_US {
                push(
                    format!("{f}.{what}"),
                    format!("{val} µs is more than the limit {MAX_TIME_US} µs ({who})"),
                );
            }
        }
        if t.wcet_us > deadline && deadline != 0 {
            push(
                format!("{f}.wcet_us"),
                format!(
                    "{} µs is more than its deadline {deadline} µs ({who})",
                    t.wcet_us
                ),
            );
        }
        if deadline > t.period_us && t.period_us != 0 {
            push(
                format!("{f}.deadline_us"),
                format!(
                    "{deadline} µs is more than its period {} µs: only constrained deadlines are analysed ({who})",
                    t.period_us
                ),
            );
        }
        if t.vcpu >= v.cpus.len() {
            push(
                format!("{f}.vcpu"),
                format!("the VM has no vcpu {} ({who})", t.vcpu),
            );
        }
        match (policy, t.priority) {
            (TaskPolicy::FixedPriority, None) => push(
                format!("{f}.priority"),
                format!("missing: task_policy fixed-priority needs a priority per task ({who})"),
            ),
            (TaskPolicy::Edf, Some(_)) => push(
                format!("{f}.priority"),
                format!("given but task_policy is edf, where it means nothing ({who})"),
            ),
            _ => {}
        }
    }
    errs.len() == n
}
