//! Pass 6 (coloring): LLC colors against the LLC clusters, devices and memory supply.
//!
//! Runs after the payload pass (the bundle's region is part of the supply arithmetic). The
//! color lists themselves (range, duplicates, a known geometry) are checked by the resources
//! pass; colors it rejected are left out here.
//!
//! Errors:
//! * an uncolored VM with `isolated = true` (it uses every color);
//! * two colored VMs sharing a color within one LLC cluster when either is isolated;
//! * a colored channel using a color of an isolated VM that is not one of its ends, within a
//!   cluster of its ends;
//! * a colored VM owning a `dma = true` device (Tessera drives no IOMMU);
//! * a color whose free pages do not cover what needs it ([`crate::coloring`] explains the
//!   model), with the arithmetic.
//!
//! Warnings:
//! * an isolated colored VM sharing a cluster with an uncolored VM or an uncolored hypervisor;
//! * the hypervisor's colors shared with an isolated VM (the hypervisor runs on every core:
//!   its lines in those colors evict the VM's, e.g. while serving a noisy neighbour's
//!   hypercalls). A warning, not an error: the hypervisor's footprint is small and a board
//!   with few colors may have none to spare for it;
//! * a VM whose cores span LLC clusters (its colors are taken in each).

use std::collections::{BTreeMap, BTreeSet};
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use super::descriptors::HYP_CODE_ALLOWANCE;
use super::input::Input;
use super::resources::{Resources, MAX_COLORS};
use crate::coloring::{pages_of_color, spread, stage2_table_bound, subtract};
use crate::desc::{GicVersion, PhysRange};
use crate::error::{ConfigError, ErrorKind as K, Subject};
use crate::{ColorPages, PAGE_SIZE, STACK_SIZE, VGIC_GICC};

/// Bytes of the hypervisor's tables and heap counted against its colors besides its image and
/// stacks (see [`hyp_colored_bytes`]).
pub const HYP_TABLES_AND_HEAP: u64 = 4 << 20;

/// What a colored hypervisor takes from its colors (an upper bound): the image, data and bss
/// allowance its region is checked against (8 MiB), one stack per core, and
/// [`HYP_TABLES_AND_HEAP`].
pub fn hyp_colored_bytes(max_cpus: usize) -> u64 {
    HYP_CODE_ALLOWANCE
        .saturating_add(STACK_SIZE.saturating_mul(max_cpus as u64))
        .saturating_add(HYP_TABLES_AND_HEAP)
}

/// What [`crate::System`] takes from this pass.
#[derive(Debug, Default)]
pub struct Coloring {
    pub warnings: Vec<String>,
    pub color_pages: Vec<ColorPages>,
}

/// `3-4` / `0-7,12` (any colors; `ColorList` holds those below 64 only).
fn list(colors: &[u32]) -> String {
    let mut v: Vec<u32> = colors.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

fn mask_list(mask: u64) -> Vec<u32> {
    (0..64).filter(|c| mask & (1u64 << c) != 0).collect()
}

fn clusters_str(cl: &BTreeSet<usize>) -> String {
    let v: Vec<String> = cl.iter().map(|c| c.to_string()).collect();
    v.join(" and ")
}

pub fn run(
    inp: &Input,
    res: &Resources,
    bundle: PhysRange,
    errs: &mut Vec<ConfigError>,
) -> Coloring {
    let mut out = Coloring::default();
    let cfg = &inp.cfg;
    for v in &cfg.vms {
        if v.colors.is_none() && v.isolated == Some(true) {
            errs.push(ConfigError::vm(
                K::Colors,
                &v.name,
                "isolated",
                "an uncolored VM uses every color and cannot be isolated: give it `colors`",
            ));
        }
    }
    let Some(llc) = &inp.llc else {
        // Colors used without a geometry are reported by the resources pass.
        return out;
    };
    let n = llc.geometry.colors();
    let usable = n.min(MAX_COLORS);
    // Valid colors only (the resources pass reports the others), ascending, distinct.
    let valid = |c: &Option<Vec<u32>>| -> Option<Vec<u32>> {
        c.as_ref().map(|c| {
            let s: BTreeSet<u32> = c
                .iter()
                .copied()
                .filter(|&x| u64::from(x) < usable)
                .collect();
            s.into_iter().collect()
        })
    };
    let cluster_of: BTreeMap<usize, usize> = inp
        .clusters
        .iter()
        .enumerate()
        .flat_map(|(k, cores)| cores.iter().map(move |&c| (c, k)))
        .collect();
    let vm_colors: Vec<Option<Vec<u32>>> = cfg.vms.iter().map(|v| valid(&v.colors)).collect();
    let isolated: Vec<bool> = cfg
        .vms
        .iter()
        .map(|v| v.colors.is_some() && v.isolated.unwrap_or(true))
        .collect();
    let vm_clusters: Vec<BTreeSet<usize>> = cfg
        .vms
        .iter()
        .map(|v| {
            v.cpus
                .iter()
                .filter_map(|c| cluster_of.get(c).copied())
                .collect()
        })
        .collect();
    let hyp_colors = valid(&cfg.hypervisor.colors);
    let multi = inp.clusters.len() > 1;

    // Isolation between VMs.
    for j in 0..cfg.vms.len() {
        for i in 0..j {
            let (Some(a), Some(b)) = (&vm_colors[i], &vm_colors[j]) else {
                continue;
            };
            if !(isolated[i] || isolated[j]) {
                continue;
            }
            let shared: Vec<u32> = b.iter().copied().filter(|c| a.contains(c)).collect();
            let common: BTreeSet<usize> = vm_clusters[i]
                .intersection(&vm_clusters[j])
                .copied()
                .collect();
            if shared.is_empty() || common.is_empty() {
                continue;
            }
            let who = match (isolated[i], isolated[j]) {
                (true, true) => "both are isolated".to_string(),
                (true, false) => format!("vm `{}` is isolated", cfg.vms[i].name),
                _ => "it is isolated".to_string(),
            };
            let within = if multi {
                format!(" within LLC cluster {}", clusters_str(&common))
            } else {
                String::new()
            };
            errs.push(ConfigError::vm(
                K::Colors,
                &cfg.vms[j].name,
                "colors",
                format!(
                    "color(s) {} are also vm `{}`'s{within} and {who} (`isolated = false` on both lets colored VMs share colors)",
                    list(&shared),
                    cfg.vms[i].name
                ),
            ));
        }
    }

    // Colored channels against isolated VMs that are not their ends.
    for c in &res.channels {
        if c.colors == 0 {
            continue;
        }
        let ends: BTreeSet<usize> = vm_clusters[c.from_vm]
            .union(&vm_clusters[c.to_vm])
            .copied()
            .collect();
        for (vi, v) in cfg.vms.iter().enumerate() {
            if vi == c.from_vm || vi == c.to_vm || !isolated[vi] {
                continue;
            }
            let Some(vc) = &vm_colors[vi] else { continue };
            let shared = mask_list(c.colors & crate::codegen::color_mask(vc));
            if !shared.is_empty() && !ends.is_disjoint(&vm_clusters[vi]) {
                errs.push(ConfigError::new(
                    K::Colors,
                    Subject::Channel(c.name.clone()),
                    "colors",
                    format!(
                        "color(s) {} are isolated vm `{}`'s, which shares an LLC cluster with the channel's ends `{}` and `{}`",
                        list(&shared),
                        v.name,
                        cfg.vms[c.from_vm].name,
                        cfg.vms[c.to_vm].name
                    ),
                ));
            }
        }
    }

    // DMA masters of colored VMs.
    for v in &cfg.vms {
        if v.colors.is_none() {
            continue;
        }
        for (di, name) in v.devices.iter().enumerate() {
            if inp.board.devices.iter().any(|d| &d.name == name && d.dma) {
                errs.push(ConfigError::vm(
                    K::Colors,
                    &v.name,
                    format!("devices[{di}]"),
                    format!(
                        "device `{name}` is a DMA master (board.toml dma = true) and Tessera drives no IOMMU: it would reach this colored VM's scattered pages by physical address; give it to an uncolored VM"
                    ),
                ));
            }
        }
    }

    // Warnings.
    for (vi, v) in cfg.vms.iter().enumerate() {
        if multi && vm_clusters[vi].len() > 1 {
            out.warnings.push(format!(
                "vm `{}`: its cores {:?} span LLC clusters {}: its colors are taken in each of them",
                v.name,
                v.cpus,
                clusters_str(&vm_clusters[vi])
            ));
        }
        if !isolated[vi] {
            continue;
        }
        let mut beside: Vec<String> = cfg
            .vms
            .iter()
            .enumerate()
            .filter(|&(ui, u)| {
                ui != vi && u.colors.is_none() && !vm_clusters[ui].is_disjoint(&vm_clusters[vi])
            })
            .map(|(_, u)| format!("uncolored vm `{}`", u.name))
            .collect();
        if hyp_colors.is_none() {
            beside.push("the uncolored hypervisor".into());
        }
        if !beside.is_empty() {
            out.warnings.push(format!(
                "vm `{}` is isolated (colors {}) but shares its LLC{} with {}: their cache lines can evict its own",
                v.name,
                vm_colors[vi].as_deref().map_or(String::new(), list),
                if multi { " cluster" } else { "" },
                beside.join(", ")
            ));
        }
        if let (Some(h), Some(mine)) = (&hyp_colors, &vm_colors[vi]) {
            let shared: Vec<u32> = h.iter().copied().filter(|c| mine.contains(c)).collect();
            if !shared.is_empty() {
                out.warnings.push(format!(
                    "vm `{}` is isolated but the hypervisor's colors include its color(s) {}: hypervisor work (e.g. another VM's hypercalls) evicts its lines",
                    v.name,
                    list(&shared)
                ));
            }
        }
    }

    let any = vm_colors.iter().any(Option::is_some)
        || res.channels.iter().any(|c| c.colors != 0)
        || hyp_colors.is_some();
    if any {
        out.color_pages = supply(inp, res, bundle, n, &vm_colors, &hyp_colors, errs);
    }
    out
}

/// One colored consumer of pages: who, how its pages are made up, over which colors.
struct User {
    subject: Subject,
    field: &'static str,
    /// `vm `a` 4096 RAM + ≤21 stage-2 table pages` (without the total).
    what: String,
    pages: u64,
    colors: Vec<u32>,
}

/// Guest-physical windows a VM's stage 2 maps (RAM, channels, devices, the v2 GICV frame).
fn windows(inp: &Input, res: &Resources, vi: usize) -> Vec<(u64, u64)> {
    let v = &inp.cfg.vms[vi];
    let mut w: Vec<(u64, u64)> = v.memory.iter().map(|m| (m.ipa, m.size)).collect();
    for c in &res.channels {
        if c.from_vm == vi {
            w.push((c.ipa_from, c.size));
        }
        if c.to_vm == vi {
            w.push((c.ipa_to, c.size));
        }
    }
    if let Some(devs) = res.devices.get(vi) {
        w.extend(devs.iter().map(|d| (d.ipa, d.size)));
    }
    if inp.version == GicVersion::V2 {
        w.push((VGIC_GICC, 0x2000));
    }
    w
}

/// The per-color supply check; returns every color's budget.
fn supply(
    inp: &Input,
    res: &Resources,
    bundle: PhysRange,
    n: u64,
    vm_colors: &[Option<Vec<u32>>],
    hyp_colors: &Option<Vec<u32>>,
    errs: &mut Vec<ConfigError>,
) -> Vec<ColorPages> {
    let cfg = &inp.cfg;
    let ram = (inp.board.ram.base, inp.board.ram.size);
    let hyp = (inp.hyp_region.base, inp.hyp_region.size);
    let bun = (bundle.base, bundle.size);
    let phys: Vec<(u64, u64)> = cfg
        .vms
        .iter()
        .flat_map(|v| v.memory.iter())
        .filter_map(|m| m.phys.map(|p| (p, m.size)))
        .collect();
    let mut holes = phys.clone();
    holes.push(hyp);
    holes.push(bun);
    let free_ranges = subtract(ram, &holes);
    // Each hole clipped to RAM, for the message.
    let clip = |r: &[(u64, u64)]| -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        for &h in r {
            let outside = subtract(ram, &[h]);
            v.extend(subtract(ram, &outside));
        }
        v
    };
    let (hyp_in, bun_in, phys_in) = (clip(&[hyp]), clip(&[bun]), clip(&phys));

    let mut users: Vec<User> = Vec::new();
    let mut uncolored = 0u64;
    for (vi, v) in cfg.vms.iter().enumerate() {
        let ram_pages: u64 = v
            .memory
            .iter()
            .filter(|m| m.phys.is_none())
            .map(|m| m.size / PAGE_SIZE)
            .sum();
        let tables = stage2_table_bound(&windows(inp, res, vi));
        match &vm_colors[vi] {
            Some(c) if !c.is_empty() => users.push(User {
                subject: Subject::Vm(v.name.clone()),
                field: "colors",
                what: format!(
                    "vm `{}` {ram_pages} RAM + ≤{tables} stage-2 table pages",
                    v.name
                ),
                pages: ram_pages.saturating_add(tables),
                colors: c.clone(),
            }),
            _ => uncolored = uncolored.saturating_add(ram_pages).saturating_add(tables),
        }
    }
    for c in &res.channels {
        let pages = c.size / PAGE_SIZE;
        if c.colors == 0 {
            uncolored = uncolored.saturating_add(pages);
        } else {
            users.push(User {
                subject: Subject::Channel(c.name.clone()),
                field: "colors",
                what: format!("channel `{}` {pages} pages", c.name),
                pages,
                colors: mask_list(c.colors),
            });
        }
    }
    if let Some(h) = hyp_colors.as_ref().filter(|h| !h.is_empty()) {
        let bytes = hyp_colored_bytes(inp.board.max_cpus);
        users.push(User {
            subject: Subject::Config,
            field: "hypervisor.colors",
            what: format!(
                "the hypervisor ≤{} pages (image, stacks, tables, heap)",
                bytes / PAGE_SIZE
            ),
            pages: bytes / PAGE_SIZE,
            colors: h.clone(),
        });
    }
    let shares: Vec<BTreeMap<u32, u64>> = users
        .iter()
        .map(|u| spread(u.pages, &u.colors).into_iter().collect())
        .collect();
    let uncolored_each = uncolored.div_ceil(n.max(1));

    let mut pages = Vec::new();
    // Per short color: (free, the message's parts, the main user), grouped below.
    let mut short: Vec<(u32, u64, u64, String, Option<usize>)> = Vec::new();
    for c in 0..n {
        let color = u32::try_from(c).unwrap_or(u32::MAX);
        let free = pages_of_color(&free_ranges, n, c);
        let mut needed = uncolored_each;
        let mut parts: Vec<String> = Vec::new();
        let mut main: Option<(usize, u64)> = None;
        for (ui, u) in users.iter().enumerate() {
            let Some(&s) = shares[ui].get(&color) else {
                continue;
            };
            needed = needed.saturating_add(s);
            parts.push(format!(
                "{} = {} over {} color(s) {} → {s}",
                u.what,
                u.pages,
                u.colors.len(),
                list(&u.colors)
            ));
            if main.is_none_or(|(_, m)| s > m) {
                main = Some((ui, s));
            }
        }
        parts.push(format!(
            "uncolored VMs and channels {uncolored} pages over all {n} colors → {uncolored_each}"
        ));
        pages.push(ColorPages {
            color,
            free,
            needed,
        });
        if needed > free {
            let why = format!(
                "{free} pages free ({} in RAM − {} in the hypervisor region − {} in the payload bundle − {} at explicit `phys`) but {needed} needed: {}",
                pages_of_color(&[ram], n, c),
                pages_of_color(&hyp_in, n, c),
                pages_of_color(&bun_in, n, c),
                pages_of_color(&phys_in, n, c),
                parts.join("; ")
            );
            short.push((color, free, needed, why, main.map(|m| m.0)));
        }
    }
    // One error per run of short colors with the same arithmetic and main user.
    let mut k = 0;
    while k < short.len() {
        let mut group = std::vec![short[k].0];
        let mut j = k + 1;
        while j < short.len() && short[j].3 == short[k].3 && short[j].4 == short[k].4 {
            group.push(short[j].0);
            j += 1;
        }
        let (subject, field) = match short[k].4 {
            Some(ui) => (users[ui].subject.clone(), users[ui].field),
            None => (Subject::Config, "memory"),
        };
        let per = if group.len() > 1 { " each" } else { "" };
        errs.push(ConfigError::new(
            K::ColorsExhausted,
            subject,
            field,
            format!(
                "not enough memory of color(s) {}{per}: {}",
                list(&group),
                short[k].3
            ),
        ));
        k = j;
    }
    pages
}
