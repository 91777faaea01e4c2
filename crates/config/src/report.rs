//! The human-readable partition report (`cargo xtask check-config`).

use core::fmt;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::codegen;
use crate::desc::{ColorList, FaultPolicy, GicVersion, ResetPolicy, SchedPolicy};
use crate::sched::{kind_str, policy_str, CorePolicy, Supply};
use crate::{ImageState, LlcSource, System};

/// A validated system as a table; `Display` prints it.
#[derive(Clone, Debug)]
pub struct Report {
    /// The rendered text.
    pub text: String,
    /// Warnings (also in `text`).
    pub warnings: Vec<String>,
    /// VMs whose image is not built yet (also in `text`).
    pub not_built: Vec<String>,
}

impl Report {
    pub fn new(s: &System) -> Report {
        let mut t = String::new();
        let mut not_built = Vec::new();
        let b = &s.board;
        let gic = match s.gic.version {
            GicVersion::V2 => "GICv2",
            GicVersion::V3 => "GICv3",
        };
        t += &format!(
            "board {}: RAM {:#x}+{:#x}, {} cores (config uses {}), {gic}, console PL011 {:#x}\n",
            b.name, b.ram.base, b.ram.size, b.max_cpus, s.used_cpus, b.console.uart
        );
        t += &format!(
            "hypervisor: loaded at {:#x}, region {:#x}..{:#x}\n",
            b.hypervisor.load_address,
            s.hyp_region.base,
            s.hyp_region.base + s.hyp_region.size
        );
        let p = &s.payloads;
        t += &format!(
            "payloads: {} KiB bundle (images and DTBs of {} VM(s)), loaded at {:#x}, region {:#x}..{:#x}\n",
            (p.bytes.len() as u64).div_ceil(1024),
            s.vms.len(),
            p.region.base,
            p.region.base,
            p.region.base + p.region.size
        );
        match &s.llc {
            Some(l) => {
                let g = &l.geometry;
                let src = match &l.source {
                    LlcSource::Override => "board [llc] override".to_string(),
                    LlcSource::CpuModel(m) => format!("CPU `{m}`, CLIDR/CCSIDR"),
                };
                t += &format!(
                    "LLC: {} KiB, {}-way, {} B lines → {} colors of 4 KiB ({src})\n",
                    g.size >> 10,
                    g.ways,
                    g.line,
                    g.colors()
                );
            }
            None if s.cpu.is_empty() => {
                t += "LLC: unknown (no [llc] override, no CPU model): no coloring\n"
            }
            None => {
                t += &format!(
                "LLC: unknown for CPU `{}` (no [llc] override or [cpu.llc] entry): no coloring\n",
                s.cpu
            )
            }
        }
        if s.clusters.len() > 1 {
            let cl: Vec<String> = s
                .clusters
                .iter()
                .enumerate()
                .map(|(k, c)| format!("{k}: cores {c:?}"))
                .collect();
            t += &format!("LLC clusters: {}\n", cl.join("; "));
        }
        let h = &s.hypervisor;
        if h.colors != 0 || h.verify_coloring {
            let colors = if h.colors == 0 {
                "uncolored".to_string()
            } else {
                format!("colors {}", ColorList(h.colors))
            };
            let verify = if h.verify_coloring {
                ", coloring verified at boot"
            } else {
                ""
            };
            t += &format!("hypervisor memory: {colors}{verify}\n");
        }
        t += &format!("config {}: {} VM(s)\n", s.config_name, s.vms.len());
        for vm in &s.vms {
            t += &format!("\nvm {} `{}`\n", vm.id, vm.name);
            let cpus: Vec<String> = vm
                .cpus
                .iter()
                .enumerate()
                .map(|(i, c)| format!("vCPU{i}→pCPU{c}"))
                .collect();
            t += &format!("  cpus      {}\n", cpus.join(" "));
            for m in &vm.mem {
                let pa = m.phys.map_or("auto".into(), |p| format!("{p:#x}"));
                t += &format!(
                    "  memory    ipa {:#x}..{:#x} ({} MiB) → pa {pa}\n",
                    m.ipa,
                    m.ipa + m.size,
                    m.size >> 20
                );
            }
            if let Some(c) = &vm.colors {
                let iso = if vm.isolated { "isolated" } else { "shared" };
                t += &format!(
                    "  colors    {} ({iso}; RAM and stage-2 tables 4 KiB at a time)\n",
                    ColorList(codegen::color_mask(c))
                );
            }
            t += &format!("  vuart     ipa {:#x}, INTID 33\n", vm.vuart_ipa);
            for d in &vm.devices {
                t += &format!(
                    "  device    {} pa {:#x} → ipa {:#x} ({:#x} bytes), INTIDs {:?}\n",
                    d.name, d.pa, d.ipa, d.size, d.irqs
                );
            }
            match &vm.image {
                ImageState::Loaded { path, image } => {
                    t += &format!(
                        "  image     {} ({}, {} bytes, {} in RAM) at ipa {:#x}, entry {:#x}\n",
                        path.display(),
                        image.format.as_str(),
                        image.bytes.len(),
                        image.mem_size,
                        image.load_ipa,
                        image.entry_ipa
                    )
                }
                ImageState::NotBuilt { path } | ImageState::Missing { path } => {
                    not_built.push(vm.name.clone());
                    t += &format!("  image     {} (not built yet)\n", path.display());
                }
            }
            t += &format!(
                "  dtb       ipa {:#x} ({} bytes)\n",
                vm.dtb_ipa,
                vm.dtb.len()
            );
            if let Some(i) = &vm.initrd {
                t += &format!(
                    "  initrd    ipa {:#x} ({} bytes) {}\n",
                    i.ipa,
                    i.bytes.len(),
                    i.path.display()
                );
            }
            if !vm.bootargs.is_empty() {
                t += &format!("  bootargs  {}\n", vm.bootargs);
            }
            let fault = match vm.on_fault {
                FaultPolicy::InjectAbort => "inject abort",
                FaultPolicy::Stop => "stop VM",
            };
            t += &format!("  on_fault  {fault}\n");
            if vm.on_reset == ResetPolicy::Stop {
                t += "  on_reset  stop VM\n";
            }
        }
        t += "\npCPUs\n";
        for (i, p) in s.pcpus.iter().enumerate() {
            match &p.policy {
                CorePolicy::Idle => t += &format!("  pCPU{i}  idle\n"),
                CorePolicy::Exclusive { vm, vcpu } => {
                    t += &format!("  pCPU{i}  exclusive: {} vCPU{vcpu}\n", s.vms[*vm].name)
                }
                CorePolicy::Shared { policy, servers } => {
                    shared_core(&mut t, s, i, *policy, servers, p.trace)
                }
            }
        }
        if !s.analysis.guests.is_empty() {
            t += "\nguest tasks (periodic resource model)\n";
            for g in &s.analysis.guests {
                let vm = &s.vms[g.vm];
                let on = match g.supply {
                    Supply::Core { cpu } => format!("the whole of pCPU{cpu} (exclusive)"),
                    Supply::Server {
                        cpu,
                        kind,
                        budget_us,
                        period_us,
                    } => format!(
                        "pCPU{cpu} {} server {budget_us}/{period_us} µs",
                        kind_str(kind)
                    ),
                };
                let slack = g
                    .slack_us
                    .map_or(String::new(), |s| format!(", least slack {s} µs"));
                t += &format!(
                    "  {} vCPU{}: {} task(s), {}, utilisation {} on {on}: schedulable{slack}\n",
                    vm.name,
                    g.vcpu,
                    g.tasks,
                    g.policy.as_str(),
                    pct(g.utilisation_ppm)
                );
                if let Some(sv) = server_of(s, g.vm, g.vcpu).filter(|sv| sv.budget_auto) {
                    t += &format!(
                        "      budget \"auto\" = {} µs per {} µs (the least that passes)\n",
                        sv.desc.budget_us, sv.desc.period_us
                    );
                }
            }
        }
        if !s.channels.is_empty() {
            t += "\nchannels (one direction each; class 0 lowest)\n";
            for (i, c) in s.channels.iter().enumerate() {
                let colors = if c.colors == 0 {
                    String::new()
                } else {
                    format!(", colors {}", ColorList(c.colors))
                };
                t += &format!(
                    "  #{i} {}: {} -> {} ({:#x} bytes at IPA {:#x} / {:#x}{colors})\n",
                    c.name,
                    s.vms[c.from_vm].name,
                    s.vms[c.to_vm].name,
                    c.size,
                    c.ipa_from,
                    c.ipa_to
                );
                for (k, cl) in c.classes.iter().enumerate() {
                    t += &format!(
                        "    class {k}: {} x {} B, notify {}, doorbell INTID {} priority {:#x} to vCPU {}\n",
                        cl.slot_count,
                        cl.slot_size,
                        match cl.notify {
                            crate::desc::ChannelNotify::Every => "every",
                            crate::desc::ChannelNotify::Coalesced => "coalesced",
                        },
                        cl.irq,
                        cl.priority,
                        cl.vcpu
                    );
                }
            }
        }
        if !s.color_pages.is_empty() {
            t += "\npages per color (free / needed; uncolored demand spread over all colors)\n";
            let mut k = 0;
            let cp = &s.color_pages;
            while k < cp.len() {
                let mut j = k;
                while j + 1 < cp.len()
                    && (cp[j + 1].free, cp[j + 1].needed) == (cp[k].free, cp[k].needed)
                {
                    j += 1;
                }
                let which = if j == k {
                    format!("color {}", cp[k].color)
                } else {
                    format!("colors {}-{}", cp[k].color, cp[j].color)
                };
                t += &format!(
                    "  {which:<14} {} / {} pages{}\n",
                    cp[k].free,
                    cp[k].needed,
                    if j > k { " each" } else { "" }
                );
                k = j + 1;
            }
        }
        for w in &s.warnings {
            t += &format!("warning: {w}\n");
        }
        Report {
            text: t,
            warnings: s.warnings.clone(),
            not_built,
        }
    }
}

/// `61.2%` from parts per million.
fn pct(ppm: u64) -> String {
    format!("{}.{}%", ppm / 10_000, (ppm % 10_000) / 1_000)
}

/// The server of `vm`'s vCPU `vcpu`, when its core is shared.
fn server_of(s: &System, vm: usize, vcpu: usize) -> Option<&crate::sched::Server> {
    let cpu = *s.vms.get(vm)?.cpus.get(vcpu)?;
    match &s.pcpus.get(cpu)?.policy {
        CorePolicy::Shared { servers, .. } => servers
            .iter()
            .find(|sv| sv.desc.vm == vm && sv.desc.vcpu == vcpu),
        _ => None,
    }
}

/// One shared core: the policy and verdict line, then one line per server.
fn shared_core(
    t: &mut String,
    s: &System,
    cpu: usize,
    policy: SchedPolicy,
    servers: &[crate::sched::Server],
    trace: bool,
) {
    let a = s.analysis.cores.iter().find(|a| a.cpu == cpu);
    let trace = if trace { ", trace on" } else { "" };
    *t += &format!(
        "  pCPU{cpu}  {} ({} servers{trace})",
        policy_str(policy),
        servers.len()
    );
    if let Some(a) = a {
        let slack = match (policy, a.slack_us) {
            (SchedPolicy::Edf, Some(s)) => format!(
                "least slack {s} µs at t = {} µs (demand checked up to {} µs)",
                a.slack_at, a.horizon_us
            ),
            (SchedPolicy::Edf, None) => format!(
                "no deadline below the proven horizon {} µs to check",
                a.horizon_us
            ),
            (SchedPolicy::FixedPriority, s) => format!(
                "least slack {} µs (servers[{}]: period − response time)",
                s.unwrap_or(0),
                a.slack_at
            ),
        };
        *t += &format!(
            ": utilisation {} (charging {} µs per activation, blocking {} µs), {slack}: schedulable\n",
            pct(a.utilisation_ppm),
            a.costs.overhead_us,
            a.costs.max_el2_section_us
        );
    } else {
        *t += "\n";
    }
    for (i, sv) in servers.iter().enumerate() {
        let d = &sv.desc;
        let auto = if sv.budget_auto { " (auto)" } else { "" };
        let mut line = format!(
            "          [{i}] {:<12} {:<10} budget {} µs{auto} / period {} µs ({})",
            format!("{}/{}", sv.vm_name, d.vcpu),
            kind_str(d.kind),
            d.budget_us,
            d.period_us,
            pct((d.budget_us.saturating_mul(1_000_000)).div_ceil(d.period_us.max(1)))
        );
        if policy == SchedPolicy::FixedPriority {
            line += &format!(", priority {}", d.priority);
            if let Some(r) = a.and_then(|a| a.response_us.get(i)) {
                line += &format!(", response {r} µs");
            }
        }
        *t += &line;
        *t += "\n";
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
