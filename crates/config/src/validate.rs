//! Loading, validation and resolution: board.toml + config → [`System`], or every problem.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use crate::desc::{FaultPolicy, GicDesc, GicVersion, MemDesc, PcpuPolicy, PhysRange};
use crate::error::{range, ConfigError, ErrorKind as K, Subject};
use crate::image::{self, FlatImage, ImageFormat};
use crate::schema::{BoardFile, ConfigFile, OnFault, SchedPolicy, SmpMethod};
use crate::{
    dtb, Device, ImageState, MissingImages, Options, System, Vm, DTB_MAX, PAGE_SIZE, STACK_SIZE,
    VGIC_GICC, VGIC_GICD, VGIC_GICR, VGIC_GICR_STRIDE, VUART_IPA,
};

/// Room the hypervisor's own code, data and bss need in its region, besides the embedded
/// guest images, DTBs and the per-core stacks (a generous bound; the linker script asserts
/// the real end).
const HYP_CODE_ALLOWANCE: u64 = 8 << 20;

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    let a_end = a.0.saturating_add(a.1);
    let b_end = b.0.saturating_add(b.1);
    a.1 != 0 && b.1 != 0 && a.0 < b_end && b.0 < a_end
}

/// `[base, base+size)` contains `[b, b+s)`.
fn contains(outer: (u64, u64), inner: (u64, u64)) -> bool {
    inner.0 >= outer.0
        && inner
            .0
            .checked_add(inner.1)
            .is_some_and(|e| e <= outer.0.saturating_add(outer.1))
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

fn read(path: &Path, errs: &mut Vec<ConfigError>) -> Option<String> {
    match fs::read_to_string(path) {
        Ok(s) => Some(s),
        Err(e) => {
            errs.push(ConfigError::new(
                K::Io,
                Subject::File(path.to_path_buf()),
                "",
                format!("cannot read: {e}"),
            ));
            None
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<T> {
    match toml::from_str::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let at = e
                .span()
                .map(|s| {
                    let upto = &text[..s.start.min(text.len())];
                    let line = upto.matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            let msg = e.message().replace('\n', " ");
            errs.push(ConfigError::new(
                K::Parse,
                Subject::File(path.to_path_buf()),
                "",
                format!("{}{at}", msg.trim()),
            ));
            None
        }
    }
}

/// The name a `TESSERA_IMAGE_<VM>` variable uses for a VM (upper case, `-` → `_`).
pub fn image_env_var(vm: &str) -> String {
    format!(
        "TESSERA_IMAGE_{}",
        vm.to_ascii_uppercase().replace('-', "_")
    )
}

fn aligned(v: u64) -> bool {
    v.is_multiple_of(PAGE_SIZE)
}

fn check_board(b: &BoardFile, errs: &mut Vec<ConfigError>) {
    let e = |field: &str, detail: String| ConfigError::new(K::Board, Subject::Board, field, detail);
    if b.max_cpus == 0 {
        errs.push(e("max_cpus", "must be at least 1".into()));
    }
    if b.ram.size == 0 {
        errs.push(e("ram.size", "is zero".into()));
    }
    if !aligned(b.ram.base) || !aligned(b.ram.size) {
        errs.push(e(
            "ram",
            format!("{} is not 4 KiB aligned", range(b.ram.base, b.ram.size)),
        ));
    }
    let h = &b.hypervisor;
    if !aligned(h.load_address) || !aligned(h.size) || h.size == 0 {
        errs.push(e(
            "hypervisor",
            format!(
                "{} must be non-empty and 4 KiB aligned",
                range(h.load_address, h.size)
            ),
        ));
    }
    if !contains((b.ram.base, b.ram.size), (h.load_address, h.size)) {
        errs.push(e(
            "hypervisor",
            format!(
                "{} is not inside RAM {}",
                range(h.load_address, h.size),
                range(b.ram.base, b.ram.size)
            ),
        ));
    }
    if b.smp.method == SmpMethod::SpinTable && b.smp.release_addrs.len() < b.max_cpus {
        errs.push(e(
            "smp.release_addrs",
            format!(
                "spin-table needs one release address per core ({} < max_cpus {})",
                b.smp.release_addrs.len(),
                b.max_cpus
            ),
        ));
    }
    if b.smp.method != SmpMethod::SpinTable && !b.smp.release_addrs.is_empty() {
        errs.push(e(
            "smp.release_addrs",
            "only used with method = \"spin-table\"".into(),
        ));
    }
    match b.gic.default {
        2 if b.gic.v2.is_none() => {
            errs.push(e("gic.default", "is 2 but [gic.v2] is missing".into()))
        }
        3 if b.gic.v3.is_none() => {
            errs.push(e("gic.default", "is 3 but [gic.v3] is missing".into()))
        }
        2 | 3 => {}
        v => errs.push(e("gic.default", format!("{v} is not 2 or 3"))),
    }
    if let Some(llc) = &b.llc {
        if llc.colors() == 0 {
            errs.push(e(
                "llc",
                format!(
                    "size {:#x} / ways {} / 4096 gives no color",
                    llc.size, llc.ways
                ),
            ));
        }
    }
    let mut names = BTreeSet::new();
    let mut irq_owner: BTreeMap<u32, &str> = BTreeMap::new();
    if let Some(irq) = b.console.irq {
        irq_owner.insert(irq, "console");
    }
    for (i, d) in b.devices.iter().enumerate() {
        let f = format!("devices[{i}]");
        if !names.insert(d.name.as_str()) {
            errs.push(e(&f, format!("device name `{}` appears twice", d.name)));
        }
        if !valid_name(&d.name) {
            errs.push(e(
                &format!("{f}.name"),
                format!("`{}`: use letters, digits, - and _", d.name),
            ));
        }
        if d.size == 0 {
            errs.push(e(
                &format!("{f}.size"),
                format!("device `{}` has size zero", d.name),
            ));
        }
        if !aligned(d.base) || !aligned(d.size) {
            errs.push(e(
                &f,
                format!(
                    "device `{}` {} is not 4 KiB aligned",
                    d.name,
                    range(d.base, d.size)
                ),
            ));
        }
        if d.compatible.is_empty() {
            errs.push(e(
                &format!("{f}.compatible"),
                format!("device `{}` has none", d.name),
            ));
        }
        let hyp_uarts = std::iter::once(("console", b.console.uart))
            .chain(b.log.iter().map(|l| ("log", l.uart)));
        for (what, uart) in hyp_uarts {
            if overlaps((d.base, d.size), (uart & !(PAGE_SIZE - 1), PAGE_SIZE)) {
                errs.push(e(
                    &f,
                    format!(
                        "device `{}` {} overlaps the hypervisor's {what} UART at {uart:#x}",
                        d.name,
                        range(d.base, d.size)
                    ),
                ));
            }
        }
        if overlaps((d.base, d.size), (b.ram.base, b.ram.size)) {
            errs.push(e(
                &f,
                format!("device `{}` {} overlaps RAM", d.name, range(d.base, d.size)),
            ));
        }
        for &irq in &d.irqs {
            if !(32..1020).contains(&irq) {
                errs.push(e(
                    &format!("{f}.irqs"),
                    format!("INTID {irq} of `{}` is not an SPI (32..1019)", d.name),
                ));
            }
            if let Some(other) = irq_owner.insert(irq, &d.name) {
                errs.push(e(
                    &format!("{f}.irqs"),
                    format!("INTID {irq} of `{}` is also `{other}`'s", d.name),
                ));
            }
        }
    }
    let devs: Vec<(u64, u64)> = b.devices.iter().map(|d| (d.base, d.size)).collect();
    for (i, j) in overlapping_pairs(&devs) {
        errs.push(e(
            &format!("devices[{j}]"),
            format!("`{}` overlaps `{}`", b.devices[j].name, b.devices[i].name),
        ));
    }
}

/// The name no VM may have: `[tessera] ` starts the hypervisor's own console lines.
const RESERVED_VM_NAME: &str = "tessera";

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The physical GIC of the board for `version`.
fn board_gic(b: &BoardFile, version: GicVersion) -> Option<GicDesc> {
    match version {
        GicVersion::V3 => b.gic.v3.map(|g| GicDesc {
            version,
            gicd: g.gicd,
            gicr: g.gicr,
            gicc: 0,
            gich: 0,
            gicv: 0,
        }),
        GicVersion::V2 => b.gic.v2.map(|g| GicDesc {
            version,
            gicd: g.gicd,
            gicr: 0,
            gicc: g.gicc,
            gich: g.gich,
            gicv: g.gicv,
        }),
    }
}

fn page_up(v: u64) -> u64 {
    v.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

/// MMIO the hypervisor maps for itself: the console, the log UART and the GIC frames
/// (page-aligned).
fn hyp_mmio(b: &BoardFile, g: &GicDesc) -> Vec<PhysRange> {
    let mut v = vec![PhysRange {
        base: b.console.uart & !(PAGE_SIZE - 1),
        size: PAGE_SIZE,
    }];
    if let Some(log) = &b.log {
        v.push(PhysRange {
            base: log.uart & !(PAGE_SIZE - 1),
            size: PAGE_SIZE,
        });
    }
    let mut add = |base: u64, size: u64| {
        v.push(PhysRange {
            base: base & !(PAGE_SIZE - 1),
            size: page_up(size),
        })
    };
    match g.version {
        GicVersion::V3 => {
            add(g.gicd, 0x10000);
            add(g.gicr, VGIC_GICR_STRIDE * b.max_cpus as u64);
        }
        GicVersion::V2 => {
            add(g.gicd, 0x1000);
            add(g.gicc, 0x2000);
            add(g.gich, 0x2000);
            add(g.gicv, 0x2000);
        }
    }
    v
}

/// Resolve a VM's `image` to a file path.
fn image_path(spec: &str, opts: &Options) -> PathBuf {
    let is_path = spec.contains('/')
        || [".bin", ".elf", ".img"].iter().any(|s| spec.ends_with(s))
        || spec == "Image";
    if is_path {
        let p = Path::new(spec);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            opts.repo_root.join(p)
        }
    } else {
        opts.guest_dir.join(format!("{spec}.bin"))
    }
}

/// Load, validate and resolve. Returns every problem found.
pub fn load(opts: &Options) -> Result<System, Vec<ConfigError>> {
    let mut errs = Vec::new();
    let board_path = opts.board_dir.join("board.toml");
    let board_text = read(&board_path, &mut errs);
    let cfg_text = read(&opts.config, &mut errs);
    let board: Option<BoardFile> = board_text.and_then(|t| parse(&board_path, &t, &mut errs));
    let cfg: Option<ConfigFile> = cfg_text.and_then(|t| parse(&opts.config, &t, &mut errs));
    let (Some(board), Some(cfg)) = (board, cfg) else {
        return Err(errs);
    };
    check_board(&board, &mut errs);
    if !errs.is_empty() {
        // A broken board makes every VM check unreliable.
        return Err(errs);
    }

    let version = match opts.gic.unwrap_or(board.gic.default) {
        2 => GicVersion::V2,
        3 => GicVersion::V3,
        v => {
            errs.push(ConfigError::new(
                K::Board,
                Subject::Board,
                "gic",
                format!("GIC version {v} is not 2 or 3"),
            ));
            return Err(errs);
        }
    };
    let Some(gic) = board_gic(&board, version) else {
        errs.push(ConfigError::new(
            K::Board,
            Subject::Board,
            "gic",
            format!(
                "the board has no GICv{0} frames ([gic.v{0}])",
                opts.gic.unwrap_or(board.gic.default)
            ),
        ));
        return Err(errs);
    };

    let ram = (board.ram.base, board.ram.size);
    let hyp_end = board.hypervisor.load_address + board.hypervisor.size;
    let hyp_region = (board.ram.base, hyp_end - board.ram.base);
    let mut env_vars = vec![];
    let mut inputs = vec![board_path.clone(), opts.config.clone()];
    let mut warnings = vec![];

    if cfg.vms.is_empty() {
        errs.push(ConfigError::new(
            K::NoVms,
            Subject::Config,
            "vms",
            "no VM: at least one [[vms]] is required",
        ));
    }

    // Names.
    let mut vm_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, v) in cfg.vms.iter().enumerate() {
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
        if let Some(&first) = vm_index.get(v.name.as_str()) {
            errs.push(ConfigError::vm(
                K::DuplicateName,
                &v.name,
                "name",
                format!("VM #{i} has the same name as VM #{first}"),
            ));
        } else {
            vm_index.insert(&v.name, i);
        }
    }

    // pCPUs.
    let mut pcpu_owner: BTreeMap<usize, (usize, usize)> = BTreeMap::new(); // pcpu -> (vm, vcpu)
    for (vi, v) in cfg.vms.iter().enumerate() {
        if v.cpus.is_empty() {
            errs.push(ConfigError::vm(
                K::VcpuCount,
                &v.name,
                "cpus",
                "no vCPU: list at least one pCPU",
            ));
        }
        if v.cpus.len() > board.max_cpus {
            errs.push(ConfigError::vm(
                K::VcpuCount,
                &v.name,
                "cpus",
                format!(
                    "{} vCPUs but the board has {} cores",
                    v.cpus.len(),
                    board.max_cpus
                ),
            ));
        }
        for (ci, &c) in v.cpus.iter().enumerate() {
            if c >= board.max_cpus {
                errs.push(ConfigError::vm(
                    K::PcpuRange,
                    &v.name,
                    format!("cpus[{ci}]"),
                    format!(
                        "pCPU {c} does not exist (board max_cpus = {})",
                        board.max_cpus
                    ),
                ));
                continue;
            }
            match pcpu_owner.get(&c) {
                Some(&(ov, ovc)) if ov == vi => errs.push(ConfigError::vm(
                    K::PcpuTwice,
                    &v.name,
                    format!("cpus[{ci}]"),
                    format!("pCPU {c} is already vCPU {ovc}'s"),
                )),
                Some(&(ov, _)) => errs.push(ConfigError::vm(
                    K::PcpuTwice,
                    &v.name,
                    format!("cpus[{ci}]"),
                    format!("pCPU {c} is already used by vm `{}`", cfg.vms[ov].name),
                )),
                None => {
                    pcpu_owner.insert(c, (vi, ci));
                }
            }
        }
    }

    // Physical memory: every explicit `phys` of every VM.
    let mut phys: Vec<(u64, u64)> = vec![];
    let mut phys_who: Vec<(usize, usize)> = vec![];
    let mut demand: u64 = 0;
    for (vi, v) in cfg.vms.iter().enumerate() {
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
            if m.ipa.checked_add(m.size).is_none() {
                errs.push(ConfigError::vm(
                    K::IpaOverlap,
                    &v.name,
                    &f,
                    "ipa + size overflows",
                ));
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
                if overlaps((p, m.size), hyp_region) {
                    errs.push(ConfigError::vm(
                        K::HypOverlap,
                        &v.name,
                        format!("{f}.phys"),
                        format!(
                            "{} overlaps the hypervisor region {}",
                            range(p, m.size),
                            range(hyp_region.0, hyp_region.1)
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
            &cfg.vms[vj].name,
            format!("memory[{mj}].phys"),
            format!(
                "{} overlaps vm `{}` `memory[{mi}].phys` {}",
                range(phys[j].0, phys[j].1),
                cfg.vms[vi].name,
                range(phys[i].0, phys[i].1)
            ),
        ));
    }

    // Channels count against RAM too.
    for c in &cfg.channels {
        demand = demand.saturating_add(c.size);
    }
    let available = ram.1 - hyp_region.1;
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

    // Devices.
    let dev_by_name: BTreeMap<&str, usize> = board
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let mut dev_owner: BTreeMap<&str, usize> = BTreeMap::new();
    for (vi, v) in cfg.vms.iter().enumerate() {
        for (di, d) in v.devices.iter().enumerate() {
            let f = format!("devices[{di}]");
            if !dev_by_name.contains_key(d.as_str()) {
                let known: Vec<&str> = dev_by_name.keys().copied().collect();
                errs.push(ConfigError::vm(
                    K::UnknownDevice,
                    &v.name,
                    f,
                    format!("board has no device `{d}` (it has: {})", known.join(", ")),
                ));
                continue;
            }
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
                        cfg.vms[o].name
                    ),
                )),
                None => {
                    dev_owner.insert(d, vi);
                }
            }
        }
    }

    // Colors.
    let ncolors = board.llc.map(|l| l.colors());
    let mut color_owner: BTreeMap<u32, String> = BTreeMap::new();
    let mut check_colors =
        |subject: Subject, colors: &Option<Vec<u32>>, errs: &mut Vec<ConfigError>| {
            let Some(colors) = colors else { return };
            let Some(n) = ncolors else {
                errs.push(ConfigError::new(
                    K::Colors,
                    subject,
                    "colors",
                    "the board has no [llc] geometry, so colors cannot be checked",
                ));
                return;
            };
            if colors.is_empty() {
                errs.push(ConfigError::new(
                    K::Colors,
                    subject.clone(),
                    "colors",
                    "empty color list (omit `colors` for an uncolored VM)",
                ));
            }
            let mut seen = BTreeSet::new();
            for &c in colors {
                if u64::from(c) >= n {
                    errs.push(ConfigError::new(
                        K::Colors,
                        subject.clone(),
                        "colors",
                        format!("color {c} is outside the board's 0..{n}"),
                    ));
                } else if !seen.insert(c) {
                    errs.push(ConfigError::new(
                        K::Colors,
                        subject.clone(),
                        "colors",
                        format!("color {c} is listed twice"),
                    ));
                } else if let Some(other) = color_owner.get(&c) {
                    errs.push(ConfigError::new(
                        K::Colors,
                        subject.clone(),
                        "colors",
                        format!("color {c} is already {other}'s"),
                    ));
                } else {
                    color_owner.insert(c, subject.to_string());
                }
            }
        };
    for v in &cfg.vms {
        check_colors(Subject::Vm(v.name.clone()), &v.colors, &mut errs);
        if v.colors.is_some() && v.memory.iter().any(|m| m.phys.is_some()) {
            errs.push(ConfigError::vm(
                K::Colors,
                &v.name,
                "colors",
                "a colored VM cannot also place memory at an explicit `phys`",
            ));
        }
    }

    // Channels.
    let mut chan_names = BTreeSet::new();
    for c in &cfg.channels {
        let s = || Subject::Channel(c.name.clone());
        if !chan_names.insert(c.name.as_str()) {
            errs.push(ConfigError::new(
                K::DuplicateName,
                s(),
                "name",
                "another channel has this name",
            ));
        }
        if c.size == 0 {
            errs.push(ConfigError::new(
                K::ZeroSize,
                s(),
                "size",
                "region of size zero",
            ));
        } else if !aligned(c.size) {
            errs.push(ConfigError::new(
                K::Unaligned,
                s(),
                "size",
                format!("{:#x} is not 4 KiB aligned", c.size),
            ));
        }
        if c.ends.len() < 2 {
            errs.push(ConfigError::new(
                K::Channel,
                s(),
                "ends",
                "a channel needs at least two VMs",
            ));
        }
        let mut seen = BTreeSet::new();
        for e in &c.ends {
            if !vm_index.contains_key(e.as_str()) {
                errs.push(ConfigError::new(
                    K::Channel,
                    s(),
                    "ends",
                    format!("no VM named `{e}`"),
                ));
            } else if !seen.insert(e.as_str()) {
                errs.push(ConfigError::new(
                    K::Channel,
                    s(),
                    "ends",
                    format!("vm `{e}` is listed twice"),
                ));
            }
        }
        check_colors(s(), &c.colors, &mut errs);
    }

    // Scheduling.
    let mut sched_seen = BTreeSet::new();
    for s in &cfg.scheduling {
        let subj = || Subject::Cpu(s.cpu);
        if s.cpu >= board.max_cpus {
            errs.push(ConfigError::new(
                K::PcpuRange,
                subj(),
                "cpu",
                format!(
                    "pCPU {} does not exist (board max_cpus = {})",
                    s.cpu, board.max_cpus
                ),
            ));
            continue;
        }
        if !sched_seen.insert(s.cpu) {
            errs.push(ConfigError::new(
                K::Scheduling,
                subj(),
                "cpu",
                "a second [[scheduling]] entry for this pCPU",
            ));
        }
        match s.policy {
            SchedPolicy::Exclusive => {
                if !pcpu_owner.contains_key(&s.cpu) {
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
            }
            p => errs.push(ConfigError::new(
                K::NotSupported,
                subj(),
                "policy",
                format!(
                    "not supported yet: policy `{}` (only `exclusive` is implemented)",
                    p.as_str()
                ),
            )),
        }
    }

    // Per VM: IPA windows, image, DTB.
    let mut vms = vec![];
    for (vi, v) in cfg.vms.iter().enumerate() {
        let nv = v.cpus.len().max(1) as u64;
        let mut windows: Vec<(u64, u64)> = vec![];
        let mut labels: Vec<String> = vec![];
        for (mi, m) in v.memory.iter().enumerate() {
            windows.push((m.ipa, m.size));
            labels.push(format!("memory[{mi}]"));
        }
        windows.push((VUART_IPA, PAGE_SIZE));
        labels.push("vUART".into());
        windows.push((VGIC_GICD, 0x10000));
        labels.push("vGIC distributor".into());
        match version {
            GicVersion::V3 => {
                windows.push((VGIC_GICR, VGIC_GICR_STRIDE * nv));
                labels.push("vGIC redistributors".into());
            }
            GicVersion::V2 => {
                windows.push((VGIC_GICC, 0x2000));
                labels.push("vGIC CPU interface".into());
            }
        }
        let mut devices = vec![];
        for d in &v.devices {
            if let Some(&i) = dev_by_name.get(d.as_str()) {
                let bd = &board.devices[i];
                if devices.iter().any(|x: &Device| x.name == bd.name) {
                    continue;
                }
                windows.push((bd.base, bd.size));
                labels.push(format!("device `{}`", bd.name));
                devices.push(Device {
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

        let mem: Vec<MemDesc> = v
            .memory
            .iter()
            .map(|m| MemDesc {
                ipa: m.ipa,
                size: m.size,
                phys: m.phys,
            })
            .collect();
        let first = v
            .memory
            .first()
            .map(|m| (m.ipa, m.size))
            .unwrap_or((crate::DEFAULT_RAM_IPA, 0));
        let dtb_ipa = (first.0 + first.1).saturating_sub(DTB_MAX);
        if first.1 != 0 && first.1 <= DTB_MAX {
            errs.push(ConfigError::vm(
                K::ImageFit,
                &v.name,
                "memory[0].size",
                format!(
                    "{:#x} leaves no room below the {DTB_MAX:#x}-byte DTB area",
                    first.1
                ),
            ));
        }

        // Image.
        let env = image_env_var(&v.name);
        env_vars.push(env.clone());
        let over = if opts.read_image_env {
            std::env::var_os(&env).filter(|s| !s.is_empty())
        } else {
            None
        };
        let over = over
            .map(PathBuf::from)
            .or_else(|| opts.image_overrides.get(&v.name).cloned());
        let path = over.clone().unwrap_or_else(|| image_path(&v.image, opts));
        inputs.push(path.clone());
        let field = if over.is_some() {
            env.clone()
        } else {
            "image".to_string()
        };
        let image = match fs::read(&path) {
            Ok(bytes) => match image::load(&bytes, first.0) {
                Ok(img) => ImageState::Loaded {
                    path: path.clone(),
                    image: img,
                },
                Err(msg) => {
                    errs.push(ConfigError::vm(
                        K::BadImage,
                        &v.name,
                        &field,
                        format!("{}: {msg}", path.display()),
                    ));
                    ImageState::Missing { path: path.clone() }
                }
            },
            Err(_) => {
                let crate_toml = opts
                    .repo_root
                    .join("guests")
                    .join(&v.image)
                    .join("Cargo.toml");
                match opts.missing_images {
                    MissingImages::ReportUnbuilt if over.is_none() && crate_toml.is_file() => {
                        ImageState::NotBuilt { path: path.clone() }
                    }
                    MissingImages::Placeholder => {
                        warnings.push(format!(
                            "vm `{}`: image {} is missing: embedding an empty placeholder (this image cannot run guests)",
                            v.name,
                            path.display()
                        ));
                        ImageState::Loaded {
                            path: path.clone(),
                            image: FlatImage {
                                format: ImageFormat::Placeholder,
                                bytes: vec![],
                                load_ipa: first.0,
                                mem_size: 0,
                                entry_ipa: first.0,
                            },
                        }
                    }
                    _ => {
                        errs.push(ConfigError::vm(
                            K::MissingImage,
                            &v.name,
                            &field,
                            if over.is_none() && !crate_toml.is_file() && !v.image.contains('/') {
                                format!(
                                    "`{}` is neither a guest of this repository (no guests/{}/Cargo.toml) nor an image file ({} does not exist)",
                                    v.image,
                                    v.image,
                                    path.display()
                                )
                            } else {
                                format!(
                                    "{} does not exist (build the guests first: cargo xtask build)",
                                    path.display()
                                )
                            },
                        ));
                        ImageState::Missing { path: path.clone() }
                    }
                }
            }
        };
        if let ImageState::Loaded { image: img, .. } = &image {
            // Zero-size regions are already reported; fitting an image into them says nothing.
            let sizes_ok = v.memory.iter().all(|m| m.size != 0);
            if img.format != ImageFormat::Placeholder && sizes_ok {
                check_fit(&v.name, &field, img, &v.memory, dtb_ipa, &mut errs);
            }
        }

        // DTB.
        let mem_pairs: Vec<(u64, u64)> = v.memory.iter().map(|m| (m.ipa, m.size)).collect();
        let dtb = match dtb::generate(&dtb::DtbInput {
            vcpus: v.cpus.len(),
            mem: &mem_pairs,
            gic: version,
            devices: &devices,
            bootargs: &v.bootargs,
        }) {
            Ok(b) => b,
            Err(msg) => {
                errs.push(ConfigError::vm(K::Dtb, &v.name, "dtb", msg));
                vec![]
            }
        };

        let vgic = match version {
            GicVersion::V3 => GicDesc {
                version,
                gicd: VGIC_GICD,
                gicr: VGIC_GICR,
                gicc: 0,
                gich: 0,
                gicv: 0,
            },
            GicVersion::V2 => GicDesc {
                version,
                gicd: VGIC_GICD,
                gicr: 0,
                gicc: VGIC_GICC,
                gich: 0,
                gicv: 0,
            },
        };
        vms.push(Vm {
            id: vi,
            name: v.name.clone(),
            cpus: v.cpus.clone(),
            mem,
            devices,
            bootargs: v.bootargs.clone(),
            on_fault: match v.on_fault {
                OnFault::Inject => FaultPolicy::InjectAbort,
                OnFault::Stop => FaultPolicy::Stop,
            },
            colors: v.colors.clone(),
            image,
            dtb,
            dtb_ipa,
            vuart_ipa: VUART_IPA,
            vgic,
        });
    }

    // The hypervisor region must hold the image with everything embedded.
    let embedded: u64 = vms
        .iter()
        .map(|v| {
            let img = match &v.image {
                ImageState::Loaded { image, .. } => image.bytes.len() as u64,
                _ => 0,
            };
            img + v.dtb.len() as u64
        })
        .sum();
    let need = embedded + STACK_SIZE * board.max_cpus as u64 + HYP_CODE_ALLOWANCE;
    if need > board.hypervisor.size {
        errs.push(ConfigError::new(
            K::HypTooSmall,
            Subject::Board,
            "hypervisor.size",
            format!(
                "{:#x} bytes cannot hold the hypervisor with {embedded:#x} bytes of embedded guest images and DTBs (about {need:#x} needed)",
                board.hypervisor.size
            ),
        ));
    }

    if !errs.is_empty() {
        return Err(errs);
    }

    let max_cpus = board.max_cpus;
    let mut pcpus = vec![PcpuPolicy::Idle; max_cpus];
    for (&c, &(vm, vcpu)) in &pcpu_owner {
        pcpus[c] = PcpuPolicy::Exclusive { vm, vcpu };
    }
    let used_cpus = pcpu_owner.keys().next_back().map_or(0, |&c| c + 1);
    let config_name = opts
        .config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(System {
        hyp_mmio: hyp_mmio(&board, &gic),
        gic,
        hyp_region: PhysRange {
            base: hyp_region.0,
            size: hyp_region.1,
        },
        board,
        config_name,
        config: cfg,
        vms,
        pcpus,
        used_cpus,
        inputs,
        env_vars,
        warnings,
    })
}

fn check_fit(
    vm: &str,
    field: &str,
    img: &FlatImage,
    mem: &[crate::schema::MemSpec],
    dtb_ipa: u64,
    errs: &mut Vec<ConfigError>,
) {
    let span = (img.load_ipa, img.mem_size.max(1));
    let region = mem.iter().position(|m| contains((m.ipa, m.size), span));
    match region {
        None => {
            // One line for one cause: the entry point of an image outside the RAM is not
            // worth a second error.
            let ram: Vec<String> = mem.iter().map(|m| range(m.ipa, m.size)).collect();
            let hint = if img.format == ImageFormat::Elf
                && !mem.iter().any(|m| overlaps((m.ipa, m.size), span))
            {
                "; an ELF loads where it is linked: link it for this VM's RAM"
            } else {
                ""
            };
            errs.push(ConfigError::vm(
                K::ImageFit,
                vm,
                field,
                format!(
                    "the {} occupies {} which is not inside one RAM region (RAM: {}){hint}",
                    img.format.as_str(),
                    range(img.load_ipa, img.mem_size),
                    ram.join(", ")
                ),
            ));
            return;
        }
        Some(0) if overlaps(span, (dtb_ipa, DTB_MAX)) => errs.push(ConfigError::vm(
            K::ImageFit,
            vm,
            field,
            format!(
                "the image occupies {} and must end below the DTB at {dtb_ipa:#x} (memory[0] too small)",
                range(img.load_ipa, img.mem_size)
            ),
        )),
        _ => {}
    }
    if !mem
        .iter()
        .any(|m| contains((m.ipa, m.size), (img.entry_ipa, 4)))
    {
        errs.push(ConfigError::vm(
            K::ImageFit,
            vm,
            field,
            format!("entry point {:#x} is outside the VM's RAM", img.entry_ipa),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_simple() {
        let r = [(0, 10), (5, 10), (20, 5), (14, 7), (100, 0)];
        assert_eq!(overlapping_pairs(&r), vec![(0, 1), (1, 3), (2, 3)]);
    }

    #[test]
    fn env_var_name() {
        assert_eq!(image_env_var("my-vm"), "TESSERA_IMAGE_MY_VM");
    }
}
