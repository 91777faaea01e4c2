//! Pass 2 (resources): VM names, where every vCPU is placed, physical memory (explicit `phys`
//! ranges, RAM demand), devices and their interrupts, LLC colors, channels, and each VM's
//! guest-physical windows (overlaps, overflow, the IPA size limit). Sharing a core is decided
//! by the scheduling pass, which knows the cores' policies.

use std::collections::{BTreeMap, BTreeSet};
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use super::{aligned, contains, overlapping_pairs, overlaps, valid_name, IPA_BITS};
use crate::codegen::color_mask;
use crate::desc::GicVersion;
use crate::desc::{ChannelNotify, ClassDesc};
use crate::dtb::VUART_INTID;
use crate::error::{range, ConfigError, ErrorKind as K, Subject};
use crate::schema::{ChannelSpec, NotifySpec};
use crate::validate::input::Input;
use crate::{
    Channel, Device, PAGE_SIZE, VGIC_GICC, VGIC_GICD, VGIC_GICR, VGIC_GICR_STRIDE, VUART_IPA,
};

/// Highest INTID a doorbell may have: the hypervisor's virtual distributor covers INTIDs
/// below 256.
pub const MAX_DOORBELL_INTID: u32 = 255;

/// What the later passes need from this one.
#[derive(Debug, Default)]
pub struct Resources {
    /// VM name → index (first VM of a duplicated name).
    pub vm_index: BTreeMap<String, usize>,
    /// Core → every `(vm, vcpu)` placed on it, in config order (cores that exist only).
    pub placement: BTreeMap<usize, Vec<(usize, usize)>>,
    /// Per VM (config order): the board devices passed through to it.
    pub devices: Vec<Vec<Device>>,
    /// The channels whose ends and geometry are valid, in config order (complete only when
    /// no error was reported).
    pub channels: Vec<Channel>,
}

pub fn run(inp: &Input, errs: &mut Vec<ConfigError>) -> Resources {
    let mut res = Resources::default();
    if inp.cfg.vms.is_empty() {
        errs.push(ConfigError::new(
            K::NoVms,
            Subject::Config,
            "vms",
            "no VM: at least one [[vms]] is required",
        ));
    }
    names(inp, &mut res, errs);
    cores(inp, &mut res, errs);
    memory(inp, errs);
    devices(inp, &mut res, errs);
    colors(inp, errs);
    channels(inp, &mut res, errs);
    for vi in 0..inp.cfg.vms.len() {
        ipa_windows(inp, vi, &res.devices[vi], &res.channels, errs);
    }
    res
}

/// The name no VM may have: `[tessera] ` starts the hypervisor's own console lines.
const RESERVED_VM_NAME: &str = "tessera";

fn names(inp: &Input, res: &mut Resources, errs: &mut Vec<ConfigError>) {
    for (i, v) in inp.cfg.vms.iter().enumerate() {
        if !valid_name(&v.name) {
            errs.push(ConfigError::vm(
                K::DuplicateName,
                &v.name,
                "name",
                "use letters, digits, - and _ (non-empty)",
            ));
        }
        if v.name.eq_ignore_ascii_case(RESERVED_VM_NAME) {
            errs.push(ConfigError::vm(
                K::DuplicateName,
                &v.name,
                "name",
                "`tessera` is the hypervisor's own console prefix: a VM of that name could \
                 print lines that read as the hypervisor's",
            ));
        }
        if let Some(&first) = res.vm_index.get(v.name.as_str()) {
            errs.push(ConfigError::vm(
                K::DuplicateName,
                &v.name,
                "name",
                format!("VM #{i} has the same name as VM #{first}"),
            ));
        } else {
            res.vm_index.insert(v.name.clone(), i);
        }
    }
}

/// vCPU counts and core indices; records the placement of every vCPU on an existing core.
fn cores(inp: &Input, res: &mut Resources, errs: &mut Vec<ConfigError>) {
    let max_cpus = inp.board.max_cpus;
    for (vi, v) in inp.cfg.vms.iter().enumerate() {
        if v.cpus.is_empty() {
            errs.push(ConfigError::vm(
                K::VcpuCount,
                &v.name,
                "cpus",
                "no vCPU: list at least one pCPU",
            ));
        }
        if v.cpus.len() > max_cpus {
            errs.push(ConfigError::vm(
                K::VcpuCount,
                &v.name,
                "cpus",
                format!(
                    "{} vCPUs but the board has {} cores",
                    v.cpus.len(),
                    max_cpus
                ),
            ));
        }
        for (ci, &c) in v.cpus.iter().enumerate() {
            if c >= max_cpus {
                errs.push(ConfigError::vm(
                    K::PcpuRange,
                    &v.name,
                    format!("cpus[{ci}]"),
                    format!("pCPU {c} does not exist (board max_cpus = {max_cpus})"),
                ));
                continue;
            }
            res.placement.entry(c).or_default().push((vi, ci));
        }
    }
}

/// Explicit physical ranges (inside RAM, outside the hypervisor, disjoint) and the RAM demand.
fn memory(inp: &Input, errs: &mut Vec<ConfigError>) {
    let ram = (inp.board.ram.base, inp.board.ram.size);
    let hyp = (inp.hyp_region.base, inp.hyp_region.size);
    let mut phys: Vec<(u64, u64)> = Vec::new();
    let mut phys_who: Vec<(usize, usize)> = Vec::new();
    let mut demand: u64 = 0;
    for (vi, v) in inp.cfg.vms.iter().enumerate() {
        if v.memory.is_empty() {
            errs.push(ConfigError::vm(
                K::ZeroSize,
                &v.name,
                "memory",
                "no RAM region",
            ));
        }
        for (mi, m) in v.memory.iter().enumerate() {
            let f = format!("memory[{mi}]");
            demand = demand.saturating_add(m.size);
            if m.size == 0 {
                errs.push(ConfigError::vm(
                    K::ZeroSize,
                    &v.name,
                    format!("{f}.size"),
                    "region of size zero",
                ));
                continue;
            }
            for (what, val) in [
                ("ipa", Some(m.ipa)),
                ("size", Some(m.size)),
                ("phys", m.phys),
            ] {
                if let Some(val) = val.filter(|&x| !aligned(x)) {
                    errs.push(ConfigError::vm(
                        K::Unaligned,
                        &v.name,
                        format!("{f}.{what}"),
                        format!("{val:#x} is not 4 KiB aligned"),
                    ));
                }
            }
            if let Some(p) = m.phys {
                if !contains(ram, (p, m.size)) {
                    errs.push(ConfigError::vm(
                        K::OutsideRam,
                        &v.name,
                        format!("{f}.phys"),
                        format!(
                            "{} is not inside board RAM {}",
                            range(p, m.size),
                            range(ram.0, ram.1)
                        ),
                    ));
                }
                if overlaps((p, m.size), hyp) {
                    errs.push(ConfigError::vm(
                        K::HypOverlap,
                        &v.name,
                        format!("{f}.phys"),
                        format!(
                            "{} overlaps the hypervisor region {}",
                            range(p, m.size),
                            range(hyp.0, hyp.1)
                        ),
                    ));
                }
                phys.push((p, m.size));
                phys_who.push((vi, mi));
            }
        }
    }
    for (i, j) in overlapping_pairs(&phys) {
        let (vi, mi) = phys_who[i];
        let (vj, mj) = phys_who[j];
        errs.push(ConfigError::vm(
            K::PhysOverlap,
            &inp.cfg.vms[vj].name,
            format!("memory[{mj}].phys"),
            format!(
                "{} overlaps vm `{}` `memory[{mi}].phys` {}",
                range(phys[j].0, phys[j].1),
                inp.cfg.vms[vi].name,
                range(phys[i].0, phys[i].1)
            ),
        ));
    }
    // Channels count against RAM too (those whose geometry is valid; the others are
    // reported by `channels`).
    for c in &inp.cfg.channels {
        if let Ok(l) = layout(c) {
            demand = demand.saturating_add(u64::from(l.total_size()));
        }
    }
    let available = ram.1.saturating_sub(hyp.1);
    if demand > available {
        errs.push(ConfigError::new(
            K::RamDemand,
            Subject::Config,
            "memory",
            format!(
                "VMs and channels need {demand:#x} bytes of RAM but the board has {available:#x} outside the hypervisor region"
            ),
        ));
    }
}

/// Device names, single ownership; resolves each VM's devices.
fn devices(inp: &Input, res: &mut Resources, errs: &mut Vec<ConfigError>) {
    let board = &inp.board;
    let dev_by_name: BTreeMap<&str, usize> = board
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let mut dev_owner: BTreeMap<&str, usize> = BTreeMap::new();
    for (vi, v) in inp.cfg.vms.iter().enumerate() {
        let mut mine: Vec<Device> = Vec::new();
        for (di, d) in v.devices.iter().enumerate() {
            let f = format!("devices[{di}]");
            let Some(&bi) = dev_by_name.get(d.as_str()) else {
                let known: Vec<&str> = dev_by_name.keys().copied().collect();
                errs.push(ConfigError::vm(
                    K::UnknownDevice,
                    &v.name,
                    f,
                    format!("board has no device `{d}` (it has: {})", known.join(", ")),
                ));
                continue;
            };
            match dev_owner.get(d.as_str()) {
                Some(&o) if o == vi => errs.push(ConfigError::vm(
                    K::DeviceTwice,
                    &v.name,
                    f,
                    format!("device `{d}` is listed twice"),
                )),
                Some(&o) => errs.push(ConfigError::vm(
                    K::DeviceTwice,
                    &v.name,
                    f,
                    format!(
                        "device `{d}` is already passed through to vm `{}`",
                        inp.cfg.vms[o].name
                    ),
                )),
                None => {
                    dev_owner.insert(d, vi);
                }
            }
            let bd = &board.devices[bi];
            if !mine.iter().any(|x| x.name == bd.name) {
                mine.push(Device {
                    name: bd.name.clone(),
                    compatible: bd.compatible.clone(),
                    pa: bd.base,
                    ipa: bd.base,
                    size: bd.size,
                    irqs: bd.irqs.clone(),
                    dt: bd.dt.clone(),
                });
            }
        }
        res.devices.push(mine);
    }
}

/// Colors of VMs, channels and the hypervisor: inside the LLC's range (and below 64, the
/// descriptors' mask width), each listed once, only when a geometry is known; colored VMs
/// place no memory at an explicit `phys`. Sharing, DMA and supply: the coloring pass.
fn colors(inp: &Input, errs: &mut Vec<ConfigError>) {
    for v in &inp.cfg.vms {
        check_color_list(inp, Subject::Vm(v.name.clone()), "colors", &v.colors, errs);
        if v.colors.is_some() && v.memory.iter().any(|m| m.phys.is_some()) {
            errs.push(ConfigError::vm(
                K::Colors,
                &v.name,
                "colors",
                "a colored VM cannot also place memory at an explicit `phys`",
            ));
        }
    }
    for c in &inp.cfg.channels {
        check_color_list(
            inp,
            Subject::Channel(c.name.clone()),
            "colors",
            &c.colors,
            errs,
        );
    }
    check_color_list(
        inp,
        Subject::Config,
        "hypervisor.colors",
        &inp.cfg.hypervisor.colors,
        errs,
    );
}

/// One `colors` list: non-empty, known geometry, every color in range, none twice.
fn check_color_list(
    inp: &Input,
    subject: Subject,
    field: &str,
    colors: &Option<Vec<u32>>,
    errs: &mut Vec<ConfigError>,
) {
    let Some(colors) = colors else { return };
    let e = |detail: String| ConfigError::new(K::Colors, subject.clone(), field, detail);
    let Some(llc) = &inp.llc else {
        errs.push(e(no_geometry(inp)));
        return;
    };
    if colors.is_empty() {
        errs.push(e(
            "empty color list (omit `colors` for uncolored memory)".into()
        ));
    }
    let n = llc.geometry.colors();
    let limit = n.min(MAX_COLORS);
    let mut seen = BTreeSet::new();
    for &c in colors {
        if u64::from(c) >= limit {
            let why = if n > MAX_COLORS && u64::from(c) < n {
                format!("color {c}: only colors 0..{MAX_COLORS} of the LLC's {n} can be used")
            } else {
                format!(
                    "color {c} is outside the LLC's 0..{n} ({})",
                    geometry_str(llc)
                )
            };
            errs.push(e(why));
        } else if !seen.insert(c) {
            errs.push(e(format!("color {c} is listed twice")));
        }
    }
}

/// Most colors a descriptor mask (`u64`) holds.
pub const MAX_COLORS: u64 = 64;

/// Why colors cannot be checked: no `[llc]` override and no `[cpu.llc]` entry for the CPU.
pub(crate) fn no_geometry(inp: &Input) -> String {
    let models: Vec<&str> = inp
        .board
        .cpu
        .iter()
        .flat_map(|c| c.llc.keys().map(String::as_str))
        .collect();
    if inp.cpu.is_empty() {
        "colors need an LLC geometry: the board has no [llc] override and names no CPU model ([cpu] default)".to_string()
    } else if models.is_empty() {
        format!(
            "colors need an LLC geometry: the board has no [llc] override and no [cpu.llc] entry for CPU `{}`",
            inp.cpu
        )
    } else {
        format!(
            "colors need an LLC geometry: the board has no [llc] override and no [cpu.llc] entry for CPU `{}` (it knows: {}; build with --cpu)",
            inp.cpu,
            models.join(", ")
        )
    }
}

/// `2 MiB 16-way, 32 colors (cortex-a57)` for messages.
pub(crate) fn geometry_str(llc: &crate::Llc) -> String {
    let g = &llc.geometry;
    let src = match &llc.source {
        crate::LlcSource::Override => "board [llc] override".to_string(),
        crate::LlcSource::CpuModel(m) => format!("CPU `{m}`"),
    };
    format!(
        "{} KiB {}-way LLC of {src}: {} colors",
        g.size >> 10,
        g.ways,
        g.colors()
    )
}

/// The ring layout of a channel's classes (crates/ring checks the geometry).
pub(crate) fn layout(c: &ChannelSpec) -> Result<tessera_ring::Layout, tessera_ring::LayoutError> {
    let geometry: Vec<tessera_ring::ClassGeometry> = c
        .classes
        .iter()
        .map(|k| tessera_ring::ClassGeometry {
            slot_count: k.slots,
            slot_size: k.slot_size,
            notify: match k.notify {
                NotifySpec::Every => tessera_ring::NotifyPolicy::EveryMessage,
                NotifySpec::Coalesced => tessera_ring::NotifyPolicy::Coalesced,
            },
        })
        .collect();
    tessera_ring::Layout::new(&geometry)
}

/// Channels: names, ends, colors (resolved), IPAs, ring geometry, doorbell
/// interrupts. Resolves the valid ones into `res.channels`.
fn channels(inp: &Input, res: &mut Resources, errs: &mut Vec<ConfigError>) {
    use tessera_ring::LayoutError as L;
    let mut chan_names = BTreeSet::new();
    // Per receiver VM: doorbell INTID → "channel `c` classes[k]".
    let mut doorbells: BTreeMap<(usize, u32), String> = BTreeMap::new();
    // Physical interrupts of every passed-through device: INTID → (vm, device).
    let mut dev_irqs: BTreeMap<u32, (usize, &str)> = BTreeMap::new();
    for (vi, devs) in res.devices.iter().enumerate() {
        for d in devs {
            for &i in &d.irqs {
                dev_irqs.entry(i).or_insert((vi, d.name.as_str()));
            }
        }
    }
    for c in &inp.cfg.channels {
        let s = || Subject::Channel(c.name.clone());
        let before = errs.len();
        if !valid_name(&c.name) {
            errs.push(ConfigError::new(
                K::DuplicateName,
                s(),
                "name",
                "use letters, digits, - and _ (non-empty)",
            ));
        }
        if !chan_names.insert(c.name.as_str()) {
            errs.push(ConfigError::new(
                K::DuplicateName,
                s(),
                "name",
                "another channel has this name",
            ));
        }
        let end = |field: &str, vm: &str, errs: &mut Vec<ConfigError>| {
            let i = res.vm_index.get(vm).copied();
            if i.is_none() {
                errs.push(ConfigError::new(
                    K::Channel,
                    s(),
                    field,
                    format!("no VM named `{vm}`"),
                ));
            }
            i
        };
        let from = end("from", &c.from, errs);
        let to = end("to", &c.to, errs);
        if from.is_some() && from == to {
            errs.push(ConfigError::new(
                K::Channel,
                s(),
                "to",
                format!("the sender and the receiver are both vm `{}`", c.to),
            ));
        }
        for (field, ipa) in [("ipa_from", c.ipa_from), ("ipa_to", c.ipa_to)] {
            if !aligned(ipa) {
                errs.push(ConfigError::new(
                    K::Unaligned,
                    s(),
                    field,
                    format!("{ipa:#x} is not 4 KiB aligned"),
                ));
            }
        }
        let lay = match layout(c) {
            Ok(l) => Some(l),
            Err(e) => {
                let (field, why) = match e {
                    L::ClassCount(n) => (
                        "classes".to_string(),
                        format!(
                            "{n} classes: a channel has 1 to {}",
                            tessera_ring::MAX_CLASSES
                        ),
                    ),
                    L::SlotCount { class } => (
                        format!("classes[{class}].slots"),
                        format!(
                            "{} slots: must be a power of two from 1 to {}",
                            c.classes[usize::from(class)].slots,
                            tessera_ring::layout::MAX_SLOT_COUNT
                        ),
                    ),
                    L::SlotSize { class } => (
                        format!("classes[{class}].slot_size"),
                        "a slot holds at least 1 byte".to_string(),
                    ),
                    _ => (
                        "classes".to_string(),
                        "the ring would not fit in 4 GiB".to_string(),
                    ),
                };
                errs.push(ConfigError::new(K::Channel, s(), field, why));
                None
            }
        };
        let mut classes = Vec::new();
        for (k, cl) in c.classes.iter().enumerate() {
            let f = |x: &str| format!("classes[{k}].{x}");
            if cl.priority > 255 {
                errs.push(ConfigError::new(
                    K::Channel,
                    s(),
                    f("priority"),
                    format!("{} is not a GIC priority (0..=255)", cl.priority),
                ));
            }
            if let Some(to) = to {
                let n = inp.cfg.vms[to].cpus.len();
                if cl.vcpu as usize >= n {
                    errs.push(ConfigError::new(
                        K::Channel,
                        s(),
                        f("vcpu"),
                        format!(
                            "vm `{}` (the receiver) has no vCPU {}: it has {n} (0..={})",
                            c.to,
                            cl.vcpu,
                            n.saturating_sub(1)
                        ),
                    ));
                }
            }
            let irq = cl.irq;
            if !(32..=MAX_DOORBELL_INTID).contains(&irq) {
                errs.push(ConfigError::new(
                    K::Channel,
                    s(),
                    f("irq"),
                    format!(
                        "INTID {irq} is not an SPI the virtual GIC covers (32..={MAX_DOORBELL_INTID})"
                    ),
                ));
            } else if irq == VUART_INTID {
                errs.push(ConfigError::new(
                    K::Channel,
                    s(),
                    f("irq"),
                    format!("INTID {irq} is the virtual UART's"),
                ));
            } else if let Some(&(dv, dn)) = dev_irqs.get(&irq) {
                errs.push(ConfigError::new(
                    K::Channel,
                    s(),
                    f("irq"),
                    format!(
                        "INTID {irq} is the interrupt of device `{dn}` passed through to vm `{}`",
                        inp.cfg.vms[dv].name
                    ),
                ));
            } else if let Some(to) = to {
                let me = format!("channel `{}` classes[{k}]", c.name);
                if let Some(other) = doorbells.get(&(to, irq)) {
                    errs.push(ConfigError::new(
                        K::Channel,
                        s(),
                        f("irq"),
                        format!(
                            "INTID {irq} of vm `{}` is already the doorbell of {other}",
                            c.to
                        ),
                    ));
                } else {
                    doorbells.insert((to, irq), me);
                }
            }
            classes.push(ClassDesc {
                slot_count: cl.slots,
                slot_size: cl.slot_size,
                notify: match cl.notify {
                    NotifySpec::Every => ChannelNotify::Every,
                    NotifySpec::Coalesced => ChannelNotify::Coalesced,
                },
                irq,
                priority: cl.priority.min(255) as u8,
                vcpu: cl.vcpu,
            });
        }
        if let (Some(from), Some(to), Some(l), true) = (from, to, lay, errs.len() == before) {
            res.channels.push(Channel {
                name: c.name.clone(),
                from_vm: from,
                to_vm: to,
                ipa_from: c.ipa_from,
                ipa_to: c.ipa_to,
                size: u64::from(l.total_size()),
                classes,
                // The config's colors, else the receiver's.
                colors: c
                    .colors
                    .as_deref()
                    .or(inp.cfg.vms[to].colors.as_deref())
                    .map_or(0, color_mask),
            });
        }
    }
}

/// A VM's guest-physical windows (RAM, vUART, vGIC, devices): no overflow, inside the IPA
/// space every supported core translates, pairwise disjoint.
fn ipa_windows(
    inp: &Input,
    vi: usize,
    devices: &[Device],
    channels: &[Channel],
    errs: &mut Vec<ConfigError>,
) {
    let v = &inp.cfg.vms[vi];
    let nv = v.cpus.len().max(1) as u64;
    let mut windows: Vec<(u64, u64)> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    for (mi, m) in v.memory.iter().enumerate() {
        windows.push((m.ipa, m.size));
        labels.push(format!("memory[{mi}]"));
    }
    windows.push((VUART_IPA, PAGE_SIZE));
    labels.push("vUART".into());
    windows.push((VGIC_GICD, 0x10000));
    labels.push("vGIC distributor".into());
    match inp.version {
        GicVersion::V3 => {
            windows.push((VGIC_GICR, VGIC_GICR_STRIDE.saturating_mul(nv)));
            labels.push("vGIC redistributors".into());
        }
        GicVersion::V2 => {
            windows.push((VGIC_GICC, 0x2000));
            labels.push("vGIC CPU interface".into());
        }
    }
    for d in devices {
        windows.push((d.ipa, d.size));
        labels.push(format!("device `{}`", d.name));
    }
    for c in channels {
        for (vm, ipa, dir) in [
            (c.from_vm, c.ipa_from, "ipa_from"),
            (c.to_vm, c.ipa_to, "ipa_to"),
        ] {
            if vm == vi {
                windows.push((ipa, c.size));
                labels.push(format!("channel `{}` {dir}", c.name));
            }
        }
    }
    let limit = 1u64 << IPA_BITS;
    for (i, &(base, size)) in windows.iter().enumerate() {
        if size == 0 {
            continue;
        }
        match base.checked_add(size) {
            None => errs.push(ConfigError::vm(
                K::IpaRange,
                &v.name,
                &labels[i],
                format!("ipa {base:#x} + size {size:#x} overflows"),
            )),
            Some(end) if end > limit => errs.push(ConfigError::vm(
                K::IpaRange,
                &v.name,
                &labels[i],
                format!(
                    "guest-physical {} ends above the {IPA_BITS}-bit IPA space ({limit:#x}) every supported core can translate",
                    range(base, size)
                ),
            )),
            Some(_) => {}
        }
    }
    for (i, j) in overlapping_pairs(&windows) {
        // Report each pair on the later (config-side) window first.
        let (a, b) = if j < v.memory.len() {
            (j, i)
        } else if i < v.memory.len() {
            (i, j)
        } else {
            (j, i)
        };
        errs.push(ConfigError::vm(
            K::IpaOverlap,
            &v.name,
            &labels[a],
            format!(
                "guest-physical {} overlaps {} {}",
                range(windows[a].0, windows[a].1),
                labels[b],
                range(windows[b].0, windows[b].1)
            ),
        ));
    }
}
