//! Pass 1 (schema): read and parse board.toml and the config (serde, `deny_unknown_fields`),
//! check board.toml's own consistency and pick the GIC. Its output, [`Input`], is what every
//! later pass reads; when this pass fails, the load stops.

use std::collections::{BTreeMap, BTreeSet};
use std::format;
use std::fs;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use super::{aligned, contains, overlapping_pairs, overlaps, valid_name, MAX_BOARD_CPUS};
use crate::desc::{GicDesc, GicVersion, PhysRange};
use crate::error::{range, ConfigError, ErrorKind as K, Subject};
use crate::schema::{BoardFile, ConfigFile, LlcSpec, SmpMethod};
use crate::PAGE_SIZE;
use crate::{Llc, LlcSource, Options};

/// Largest time (µs) accepted anywhere in scheduling fields (1000 s): keeps every product and
/// sum the analysis forms far from overflow.
pub const MAX_TIME_US: u64 = 1_000_000_000;

/// The parsed, board-checked inputs.
#[derive(Debug)]
pub struct Input {
    pub board_path: PathBuf,
    pub board: BoardFile,
    pub cfg: ConfigFile,
    pub version: GicVersion,
    /// The physical GIC of `version`.
    pub gic: GicDesc,
    /// `[ram.base, hypervisor.load_address + hypervisor.size)`.
    pub hyp_region: PhysRange,
    /// The CPU model of this build (`Options::cpu`, else board `[cpu] default`, else empty).
    pub cpu: String,
    /// The geometry colors are validated against: the `[llc]` override, else the CPU model's
    /// `[cpu.llc]` entry; `None` when neither exists.
    pub llc: Option<Llc>,
    /// The LLC clusters (every core in exactly one; default one cluster of all cores).
    pub clusters: Vec<Vec<usize>>,
}

/// Read, parse, check the board. `None` (with `errs` filled) when nothing later is reliable.
pub fn run(opts: &Options, errs: &mut Vec<ConfigError>) -> Option<Input> {
    let board_path = opts.board_dir.join("board.toml");
    let board_text = read(&board_path, errs);
    let cfg_text = read(&opts.config, errs);
    let board: Option<BoardFile> = board_text.and_then(|t| parse(&board_path, &t, errs));
    let cfg: Option<ConfigFile> = cfg_text.and_then(|t| parse(&opts.config, &t, errs));
    let (Some(board), Some(cfg)) = (board, cfg) else {
        return None;
    };
    check_board(&board, errs);
    if !errs.is_empty() {
        // A broken board makes every VM check unreliable.
        return None;
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
            return None;
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
        return None;
    };
    // check_board guarantees the hypervisor range lies inside RAM (no overflow).
    let hyp_end = board
        .hypervisor
        .load_address
        .checked_add(board.hypervisor.size)?;
    let hyp_region = PhysRange {
        base: board.ram.base,
        size: hyp_end.checked_sub(board.ram.base)?,
    };
    let cpu = opts
        .cpu
        .clone()
        .or_else(|| board.cpu.as_ref().map(|c| c.default.clone()))
        .unwrap_or_default();
    let llc = match (&board.llc, &board.cpu) {
        (Some(o), _) => Some(Llc {
            geometry: o.desc(),
            source: LlcSource::Override,
        }),
        (None, Some(c)) => c.llc.get(&cpu).map(|l| Llc {
            geometry: l.desc(),
            source: LlcSource::CpuModel(cpu.clone()),
        }),
        (None, None) => None,
    };
    let clusters = if board.llc_clusters.is_empty() {
        vec![(0..board.max_cpus).collect()]
    } else {
        board.llc_clusters.iter().map(|c| c.cores.clone()).collect()
    };
    Some(Input {
        board_path,
        board,
        cfg,
        version,
        gic,
        hyp_region,
        cpu,
        llc,
        clusters,
    })
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
                    let upto = text.get(..s.start.min(text.len())).unwrap_or("");
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

fn check_board(b: &BoardFile, errs: &mut Vec<ConfigError>) {
    let e = |field: &str, detail: String| ConfigError::new(K::Board, Subject::Board, field, detail);
    if b.max_cpus == 0 {
        errs.push(e("max_cpus", "must be at least 1".into()));
    }
    if b.max_cpus > MAX_BOARD_CPUS {
        errs.push(e(
            "max_cpus",
            format!("{} is more than {MAX_BOARD_CPUS}", b.max_cpus),
        ));
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
    if b.ram.base.checked_add(b.ram.size).is_none() {
        errs.push(e(
            "ram",
            format!("{:#x} + {:#x} overflows", b.ram.base, b.ram.size),
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
        check_llc(&e, "llc", llc, errs);
    }
    if let Some(c) = &b.cpu {
        if c.default.is_empty() {
            errs.push(e("cpu.default", "is empty: name a CPU model".into()));
        }
        for (model, llc) in &c.llc {
            check_llc(&e, &format!("cpu.llc.\"{model}\""), llc, errs);
        }
    }
    let mut cluster_of: BTreeMap<usize, usize> = BTreeMap::new();
    for (k, cl) in b.llc_clusters.iter().enumerate() {
        let f = format!("llc_clusters[{k}].cores");
        if cl.cores.is_empty() {
            errs.push(e(&f, "no core: list at least one".into()));
        }
        for &core in &cl.cores {
            if core >= b.max_cpus {
                errs.push(e(
                    &f,
                    format!("core {core} does not exist (max_cpus = {})", b.max_cpus),
                ));
            } else if let Some(other) = cluster_of.insert(core, k) {
                errs.push(e(
                    &f,
                    format!("core {core} is already in llc_clusters[{other}]"),
                ));
            }
        }
    }
    if !b.llc_clusters.is_empty() {
        let missing: Vec<String> = (0..b.max_cpus)
            .filter(|c| !cluster_of.contains_key(c))
            .map(|c| c.to_string())
            .collect();
        if !missing.is_empty() {
            errs.push(e(
                "llc_clusters",
                format!(
                    "core(s) {} are in no cluster: with [[llc_clusters]], list every core once",
                    missing.join(", ")
                ),
            ));
        }
    }
    for (field, v) in [
        ("scheduling.overhead_us", b.scheduling.overhead_us),
        (
            "scheduling.max_el2_section_us",
            b.scheduling.max_el2_section_us,
        ),
    ] {
        if v > MAX_TIME_US {
            errs.push(e(
                field,
                format!("{v} µs is more than the limit {MAX_TIME_US} µs"),
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
        if d.base.checked_add(d.size).is_none() {
            errs.push(e(
                &f,
                format!(
                    "device `{}`: {:#x} + {:#x} overflows",
                    d.name, d.base, d.size
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

/// An LLC geometry: whole ways that are a power-of-two number of 4 KiB pages (so colors are
/// a power of two and the index bits above the page offset select them), a power-of-two line.
fn check_llc(
    e: &dyn Fn(&str, String) -> ConfigError,
    field: &str,
    l: &LlcSpec,
    errs: &mut Vec<ConfigError>,
) {
    let way = l.size.checked_div(u64::from(l.ways));
    match way {
        None => errs.push(e(field, "ways is zero".into())),
        Some(w) if !l.size.is_multiple_of(u64::from(l.ways)) => errs.push(e(
            field,
            format!(
                "size {:#x} is not a whole number of {} ways (way size {w:#x})",
                l.size, l.ways
            ),
        )),
        Some(w) if w < PAGE_SIZE || !w.is_power_of_two() => errs.push(e(
            field,
            format!(
                "way size {:#x} (size {:#x} / ways {}) is not a power of two of at least 4 KiB: no whole page color",
                w, l.size, l.ways
            ),
        )),
        Some(_) => {}
    }
    if !l.line.is_power_of_two() || l.line < 16 || u64::from(l.line) > PAGE_SIZE {
        errs.push(e(
            &format!("{field}.line"),
            format!("{} bytes is not a power of two from 16 to 4096", l.line),
        ));
    }
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
