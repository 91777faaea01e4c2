//! The human-readable partition report (`cargo xtask check-config`).

use core::fmt;
use std::format;
use std::string::String;
use std::vec::Vec;

use crate::desc::{FaultPolicy, GicVersion, PcpuPolicy};
use crate::{ImageState, System};

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
        if let Some(l) = b.llc {
            t += &format!(
                "LLC: {:#x} bytes, {} ways → {} colors\n",
                l.size,
                l.ways,
                l.colors()
            );
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
                t += &format!("  colors    {c:?}\n");
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
            if !vm.bootargs.is_empty() {
                t += &format!("  bootargs  {}\n", vm.bootargs);
            }
            let fault = match vm.on_fault {
                FaultPolicy::InjectAbort => "inject abort",
                FaultPolicy::Stop => "stop VM",
            };
            t += &format!("  on_fault  {fault}\n");
        }
        t += "\npCPUs\n";
        for (i, p) in s.pcpus.iter().enumerate() {
            match p {
                PcpuPolicy::Idle => t += &format!("  pCPU{i}  idle\n"),
                PcpuPolicy::Exclusive { vm, vcpu } => {
                    t += &format!("  pCPU{i}  exclusive: {} vCPU{vcpu}\n", s.vms[*vm].name)
                }
                PcpuPolicy::Shared { .. } => t += &format!("  pCPU{i}  shared\n"),
            }
        }
        if !s.config.channels.is_empty() {
            t += "\nchannels (parsed and checked; not built into the image yet)\n";
            for c in &s.config.channels {
                t += &format!(
                    "  {}: {} ({:#x} bytes)\n",
                    c.name,
                    c.ends.join(" <-> "),
                    c.size
                );
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

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
