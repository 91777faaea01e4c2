//! Loading, validation and resolution: board.toml + config → [`System`], or every problem.
//!
//! [`load`] runs six passes, each a module with a plain input and output:
//!
//! 1. [`input`] (schema): read and parse both files, check board.toml's own facts, pick the
//!    GIC → [`input::Input`]. A failure here stops the load (nothing later is reliable).
//! 2. [`resources`]: names, cores, memory (physical and guest-physical), devices, colors,
//!    channels → [`resources::Resources`] (where every vCPU is placed, each VM's devices).
//! 3. [`scheduling`]: per-core policies, servers, the core-level and guest-level
//!    schedulability analysis → [`scheduling::Schedule`] (the `PCPUS` plan, vCPU slots).
//! 4. [`descriptors`]: guest images, DTBs, the hypervisor region's room → the resolved VMs.
//! 5. [`payloads`]: the VMs' images and DTBs into the payload bundle, and the RAM it is
//!    loaded into → [`crate::Payloads`].
//! 6. [`coloring`]: LLC colors against clusters (isolation), DMA devices and the per-color
//!    page supply → warnings and each color's budget.
//!
//! Passes 2–5 push every problem they find into one list and keep going, so one run reports
//! all of them; [`load`] fails when the list is not empty.

mod coloring;
mod descriptors;
mod input;
mod payloads;
mod resources;
mod scheduling;

use std::format;
use std::string::String;
use std::vec::Vec;

use crate::desc::HypervisorDesc;
use crate::error::ConfigError;
use crate::{Options, System, PAGE_SIZE};

/// The guest-physical address space every core Tessera supports can translate: 40 bits
/// (Cortex-A53's PARange; the stage-2 tables are built for at least this much). A VM window
/// ending above `1 << IPA_BITS` is rejected at build time.
pub const IPA_BITS: u32 = 40;

/// Most servers one shared core schedules.
pub const MAX_SERVERS_PER_CORE: usize = 16;

/// Largest `max_cpus` a board may declare (a vCPU's MPIDR Aff0 is 8 bits).
pub const MAX_BOARD_CPUS: usize = 256;

/// Load, validate and resolve. Returns every problem found.
pub fn load(opts: &Options) -> Result<System, Vec<ConfigError>> {
    let mut errs = Vec::new();
    let Some(inp) = input::run(opts, &mut errs) else {
        return Err(errs);
    };
    let res = resources::run(&inp, &mut errs);
    let sched = scheduling::run(&inp, &res, &mut errs);
    let out = descriptors::run(opts, &inp, &res, &sched, &mut errs);
    let payloads = payloads::run(&inp, &out.vms, &mut errs);
    let colored = coloring::run(&inp, &res, payloads.region, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    let used_cpus = res.placement.keys().next_back().map_or(0, |&c| c + 1);
    let config_name = opts
        .config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hypervisor = HypervisorDesc {
        colors: inp
            .cfg
            .hypervisor
            .colors
            .as_deref()
            .map_or(0, crate::codegen::color_mask),
        verify_coloring: inp.cfg.hypervisor.verify_coloring,
    };
    let input::Input {
        board_path: _,
        board,
        cfg,
        version: _,
        gic,
        hyp_region,
        cpu,
        llc,
        clusters,
    } = inp;
    Ok(System {
        hyp_mmio: descriptors::hyp_mmio(&board, &gic),
        gic,
        hyp_region,
        board,
        config_name,
        config: cfg,
        vms: out.vms,
        pcpus: sched.pcpus,
        analysis: sched.analysis,
        channels: res.channels,
        payloads,
        used_cpus,
        inputs: out.inputs,
        env_vars: out.env_vars,
        warnings: out.warnings.into_iter().chain(colored.warnings).collect(),
        cpu,
        llc,
        clusters,
        hypervisor,
        color_pages: colored.color_pages,
    })
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    let a_end = a.0.saturating_add(a.1);
    let b_end = b.0.saturating_add(b.1);
    a.1 != 0 && b.1 != 0 && a.0 < b_end && b.0 < a_end
}

/// `[base, base+size)` contains `[b, b+s)` (false when either end overflows).
fn contains(outer: (u64, u64), inner: (u64, u64)) -> bool {
    let (Some(oe), Some(ie)) = (outer.0.checked_add(outer.1), inner.0.checked_add(inner.1)) else {
        return false;
    };
    inner.0 >= outer.0 && ie <= oe
}

/// Pairs `(i, j)`, `i < j`, of overlapping ranges (sort + sweep; O(n log n + pairs)).
/// Exposed so the property tests can compare it with a brute-force oracle.
pub fn overlapping_pairs(ranges: &[(u64, u64)]) -> Vec<(usize, usize)> {
    let mut idx: Vec<usize> = (0..ranges.len()).filter(|&i| ranges[i].1 != 0).collect();
    idx.sort_by_key(|&i| (ranges[i].0, i));
    let mut out = Vec::new();
    for (k, &i) in idx.iter().enumerate() {
        let end_i = ranges[i].0.saturating_add(ranges[i].1);
        for &j in &idx[k + 1..] {
            if ranges[j].0 >= end_i {
                break;
            }
            out.push((i.min(j), i.max(j)));
        }
    }
    out.sort_unstable();
    out
}

/// The name a `TESSERA_IMAGE_<VM>` variable uses for a VM (upper case, `-` → `_`).
pub fn image_env_var(vm: &str) -> String {
    vm_env_var("IMAGE", vm)
}

/// `TESSERA_INITRD_<VM>`: a VM's initramfs override.
pub fn initrd_env_var(vm: &str) -> String {
    vm_env_var("INITRD", vm)
}

/// `TESSERA_BOOTARGS_<VM>`: a VM's bootargs (kernel command line) override.
pub fn bootargs_env_var(vm: &str) -> String {
    vm_env_var("BOOTARGS", vm)
}

fn vm_env_var(what: &str, vm: &str) -> String {
    format!(
        "TESSERA_{what}_{}",
        vm.to_ascii_uppercase().replace('-', "_")
    )
}

fn aligned(v: u64) -> bool {
    v.is_multiple_of(PAGE_SIZE)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn pairs_simple() {
        let r = [(0, 10), (5, 10), (20, 5), (14, 7), (100, 0)];
        assert_eq!(overlapping_pairs(&r), vec![(0, 1), (1, 3), (2, 3)]);
    }

    #[test]
    fn env_var_name() {
        assert_eq!(image_env_var("my-vm"), "TESSERA_IMAGE_MY_VM");
    }

    #[test]
    fn contains_never_overflows() {
        assert!(!contains((0, 0x1000), (u64::MAX - 0xfff, 0x2000)));
        assert!(!contains(
            (u64::MAX - 0xfff, 0x2000),
            (u64::MAX - 0xfff, 0x10)
        ));
        assert!(contains((0x1000, 0x2000), (0x2000, 0x1000)));
    }
}
