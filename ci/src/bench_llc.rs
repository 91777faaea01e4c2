//! `cargo xtask bench --only llc`: the effect of LLC coloring, measured with a cache model.
//!
//! QEMU models no cache, so the runs load a TCG plugin (ci/llc-plugin, built here on demand)
//! that simulates the shared LLC of the CPU model on physical addresses (set-associative, LRU,
//! the geometry the hypervisor colors for) and counts accesses and misses per physical core,
//! inside windows that guests/llcbench marks around each measured pass.
//!
//! Four runs under `-icount shift=0,sleep=off` and the plugin, the real-time VM `rt` (core 0,
//! `mode=rt`: a 256 KiB working set walked 50 times, one Tessera hypercall per pass):
//! 1. `llc-alone`: alone (the baseline);
//! 2. `llc-uncolored`: beside `noise` (core 1) streaming over 8 MiB, both uncolored;
//! 3. `llc-colored`: both colored apart (rt 0-7, noise 8-13), the hypervisor uncolored;
//! 4. `llc-colored-hyp`: the hypervisor colored too (14-15), the neighbour also hammering
//!    hypercalls (`mode=stream-hvc`).
//!
//! Records `llc_miss_ratio_interfered_{uncolored,colored,colored_hyp}`: the RT VM's LLC misses
//! inside its windows in runs 2-4, against run 1 (`baseline`, `ratio`, `delta`), and
//! `llc_rt_misses_alone`. The cost of coloring: `llc_boot_colored{,_hyp}` (CNTVCT when the
//! RT VM's `main` starts, runs 3 and 4 against run 2: the hypervisor's boot until the first VM
//! runs) and `llc_bandwidth_colored` (MB/s of a 4 MiB copy in one colored VM, `llc-bw-colored`,
//! against the same VM uncolored, `llc-bw`; two more runs, without the plugin).
//!
//! Under `-icount` QEMU runs the cores' vCPUs in turns on one thread. The RT VM yields before
//! each pass and the neighbour after each 1 MiB it streams, so the turns alternate: pass,
//! 1 MiB streamed, pass, ... — every pass meets a neighbour that has just swept an LLC's worth
//! of lines.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use regex::Regex;

use super::{parse_log, timed_run, BaselineSource, Options, Parsed, Record};
use crate::images::Builder;
use crate::util::{self, Paths};

/// The physical core of the RT VM in every llc config.
pub const RT_CORE: u32 = 0;
/// The physical core of the neighbour.
pub const NOISE_CORE: u32 = 1;
/// Name of the RT VM in the configs (its console lines carry `[rt] `).
const RT_VM: &str = "rt";
/// Name of the neighbour.
const NOISE_VM: &str = "noise";
/// Name of the VM of the bandwidth configs.
const BW_VM: &str = "bw";

/// One run of the experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunDef {
    pub key: &'static str,
    pub config: &'static str,
    /// With the LLC plugin (the bandwidth runs need none).
    pub plugin: bool,
}

/// The runs, in order; the first is the baseline of the miss figures.
pub const RUNS: [RunDef; 6] = [
    RunDef {
        key: "alone",
        config: "llc-alone",
        plugin: true,
    },
    RunDef {
        key: "uncolored",
        config: "llc-uncolored",
        plugin: true,
    },
    RunDef {
        key: "colored",
        config: "llc-colored",
        plugin: true,
    },
    RunDef {
        key: "colored_hyp",
        config: "llc-colored-hyp",
        plugin: true,
    },
    RunDef {
        key: "bw",
        config: "llc-bw",
        plugin: false,
    },
    RunDef {
        key: "bw_colored",
        config: "llc-bw-colored",
        plugin: false,
    },
];

/// A cache shape: size and line in bytes, associativity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub size: u64,
    pub ways: u32,
    pub line: u32,
}

impl Shape {
    /// 4 KiB page colors.
    pub fn colors(&self) -> u64 {
        (self.size / u64::from(self.ways) / 4096).max(1)
    }
}

/// The caches of a QEMU CPU model, as its CLIDR/CCSIDR report them (and board.toml's
/// `[cpu.llc]` declares them): (L1 data cache, shared L2 = the LLC). `None` for an unknown
/// model.
pub fn caches_of(cpu: &str) -> Option<(Shape, Shape)> {
    let s = |size, ways| Shape {
        size,
        ways,
        line: 64,
    };
    match cpu {
        "cortex-a53" => Some((s(32 << 10, 4), s(1 << 20, 16))),
        "cortex-a72" => Some((s(32 << 10, 2), s(1 << 20, 16))),
        "cortex-a57" => Some((s(32 << 10, 2), s(2 << 20, 16))),
        "max" => Some((s(64 << 10, 4), s(2 << 20, 16))),
        _ => None,
    }
}

/// The register in which Tessera keeps the index of the physical core it runs on (see
/// src/arch/aarch64/mod.rs): the plugin reads it to know which core executes shared
/// hypervisor code (QEMU's own vCPU index is wrong for it under `-icount`; see
/// ci/llc-plugin/src/plugin.rs).
pub const CORE_REG: &str = "TPIDR_EL2";

/// The plugin's argument string (after the library path): the caches, the board's RAM
/// (`(base, size)`: instruction fetches from it are modelled too), the core register and the
/// report file.
pub fn plugin_args(l1: Shape, llc: Shape, ram: (u64, u64), out: &Path) -> String {
    format!(
        "size={},ways={},line={},l1={},l1ways={},ram={:#x}:{:#x},core_reg={CORE_REG},out={}",
        llc.size,
        llc.ways,
        llc.line,
        l1.size,
        l1.ways,
        ram.0,
        ram.1,
        out.display()
    )
}

/// board.toml's `ram = { base, size }`.
fn board_ram(paths: &Paths, board: &str) -> Result<(u64, u64)> {
    let file = paths.root.join("boards").join(board).join("board.toml");
    let v = util::read_toml(&file)?;
    let field = |k: &str| {
        v.get("ram")
            .and_then(|r| r.get(k))
            .and_then(|x| x.as_integer())
            .and_then(|x| u64::try_from(x).ok())
            .with_context(|| format!("{}: no ram.{k}", file.display()))
    };
    Ok((field("base")?, field("size")?))
}

/// One core's line of the plugin's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreCounts {
    pub accesses: u64,
    pub misses: u64,
    pub windows: u64,
    pub win_accesses: u64,
    pub win_misses: u64,
    pub win_misses_median: Option<u64>,
    pub win_misses_max: Option<u64>,
    /// Colors seen inside windows (compact list as the plugin prints it).
    pub win_colors: String,
    /// A window still open at exit.
    pub open: bool,
}

/// The plugin's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub llc: Option<Shape>,
    pub cores: HashMap<u32, CoreCounts>,
}

/// Parses the plugin's report (see ci/llc-plugin `model::report`).
pub fn parse_report(text: &str) -> Result<Report> {
    let mut lines = text.lines();
    if lines.next() != Some("tessera-llc 1") {
        bail!("not a tessera-llc report (first line is not `tessera-llc 1`)");
    }
    let mut r = Report::default();
    for line in lines {
        let kv: HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let num = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok());
        if line.starts_with("geometry ") {
            if let (Some(size), Some(ways), Some(l)) = (num("size"), num("ways"), num("line")) {
                r.llc = Some(Shape {
                    size,
                    ways: u32::try_from(ways)?,
                    line: u32::try_from(l)?,
                });
            }
        } else if let Some(core) = num("vcpu") {
            let need = |k: &str| num(k).with_context(|| format!("report line without {k}: {line}"));
            r.cores.insert(
                u32::try_from(core)?,
                CoreCounts {
                    accesses: need("accesses")?,
                    misses: need("misses")?,
                    windows: need("windows")?,
                    win_accesses: need("win_accesses")?,
                    win_misses: need("win_misses")?,
                    win_misses_median: num("win_misses_median"),
                    win_misses_max: num("win_misses_max"),
                    win_colors: kv.get("win_colors").unwrap_or(&"-").to_string(),
                    open: num("open") == Some(1),
                },
            );
        }
    }
    if r.llc.is_none() {
        bail!("the report has no geometry line");
    }
    Ok(r)
}

/// The lines of VM `vm` in a Tessera console log, without their `[<vm>] ` prefix.
pub fn vm_lines(log: &str, vm: &str) -> String {
    let prefix = format!("[{vm}] ");
    log.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix(prefix.as_str()))
        .fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

/// The LLC the hypervisor detected (`[tessera] LLC: L2 1024 KiB, 16-way, 64 B lines -> ...`).
pub fn hypervisor_llc(log: &str) -> Option<Shape> {
    let re = Regex::new(r"\[tessera\] LLC: \S+ (\d+) KiB, (\d+)-way, (\d+) B lines").ok()?;
    let c = re.captures(log)?;
    Some(Shape {
        size: c[1].parse::<u64>().ok()? << 10,
        ways: c[2].parse().ok()?,
        line: c[3].parse().ok()?,
    })
}

/// `end_ticks=N` of a VM's `llcbench: rt|stream ... end_ticks=N` line.
pub fn end_ticks(vm_log: &str) -> Option<u64> {
    let re = Regex::new(r"llcbench: (?:rt|stream done).* end_ticks=(\d+)").ok()?;
    vm_log
        .lines()
        .find_map(|l| re.captures(l).and_then(|c| c[1].parse().ok()))
}

/// What one run gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LlcRun {
    /// The measured VM's figures (`rt` or `bw`).
    pub vm: Parsed,
    /// The RT core's counts (plugin runs).
    pub rt: Option<CoreCounts>,
    /// The neighbour's core counts (runs with a neighbour).
    pub noise: Option<CoreCounts>,
    /// Problems that do not void the run (shown as notes).
    pub warnings: Vec<String>,
}

impl LlcRun {
    fn boot(&self) -> Option<u64> {
        self.vm.figure("boot_ticks").map(|f| f.median)
    }
}

/// The outcome of each run, by key.
pub type Runs = Vec<(&'static str, std::result::Result<LlcRun, String>)>;

fn run_of<'a>(runs: &'a Runs, key: &str) -> Option<&'a LlcRun> {
    runs.iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, r)| r.as_ref().ok())
}

/// The colors a config gives VM `vm` (`None`: uncolored) and the hypervisor.
fn config_colors(config: &toml::Value, vm: Option<&str>) -> Option<Vec<u64>> {
    let table = match vm {
        Some(name) => config
            .get("vms")?
            .as_array()?
            .iter()
            .find(|v| v.get("name").and_then(|n| n.as_str()) == Some(name))?,
        None => config.get("hypervisor")?,
    };
    let colors = table.get("colors")?.as_array()?;
    Some(
        colors
            .iter()
            .filter_map(|c| c.as_integer().and_then(|c| u64::try_from(c).ok()))
            .collect(),
    )
}

/// The colors of a compact list `0-7,14` (`-`: none).
pub fn parse_color_list(s: &str) -> Option<Vec<u64>> {
    if s == "-" {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<u64>().ok()?..=b.parse::<u64>().ok()?),
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// A warning when the RT core's windows touched colors outside the RT VM's and the
/// hypervisor's (checked only when both are colored: an uncolored hypervisor on the RT VM's
/// path may touch any color).
pub fn color_leak(config: &toml::Value, rt: &CoreCounts) -> Option<String> {
    let vm = config_colors(config, Some(RT_VM))?;
    let hyp = config_colors(config, None)?;
    let seen = parse_color_list(&rt.win_colors)?;
    let outside: Vec<u64> = seen
        .into_iter()
        .filter(|c| !vm.contains(c) && !hyp.contains(c))
        .collect();
    (!outside.is_empty()).then(|| {
        format!(
            "the RT core's windows touched colors {outside:?}, outside the RT VM's {vm:?} and the \
             hypervisor's {hyp:?}: the coloring is not (fully) in effect"
        )
    })
}

/// Checks one run's log and report and extracts its figures.
fn evaluate(
    def: &RunDef,
    log: &str,
    report: Option<&Report>,
    llc: Shape,
    config: &toml::Value,
) -> Result<LlcRun> {
    let measured_vm = if def.plugin { RT_VM } else { BW_VM };
    let vm_log = vm_lines(log, measured_vm);
    let vm = parse_log(&vm_log);
    if !vm.done {
        bail!("VM {measured_vm} never printed `bench: done`");
    }
    let mut run = LlcRun {
        vm,
        ..LlcRun::default()
    };
    match hypervisor_llc(log) {
        Some(h) if h.size != llc.size || h.ways != llc.ways => bail!(
            "the hypervisor detected an LLC of {} KiB, {}-way, but the plugin models {} KiB, \
             {}-way (caches_of in ci/src/bench_llc.rs is out of date for this CPU model)",
            h.size >> 10,
            h.ways,
            llc.size >> 10,
            llc.ways
        ),
        Some(_) => {}
        None => run
            .warnings
            .push("the hypervisor printed no `LLC:` line to check the plugin's geometry".into()),
    }
    let Some(report) = report else {
        return Ok(run);
    };
    if report.llc != Some(llc) {
        bail!(
            "the plugin report's geometry {:?} is not {llc:?}",
            report.llc
        );
    }
    let rt = report
        .cores
        .get(&RT_CORE)
        .with_context(|| format!("the plugin report has no line for core {RT_CORE}"))?
        .clone();
    let passes = run.vm.figure("llc_rt_pass").map(|f| f.samples);
    if passes != Some(rt.windows) || rt.open {
        bail!(
            "core {RT_CORE} closed {} window(s){} but the RT VM timed {passes:?} passes",
            rt.windows,
            if rt.open { " (one left open)" } else { "" }
        );
    }
    if let Some(w) = color_leak(config, &rt) {
        run.warnings.push(w);
    }
    run.rt = Some(rt);
    let has_noise = config
        .get("vms")
        .and_then(|v| v.as_array())
        .is_some_and(|vms| {
            vms.iter()
                .any(|v| v.get("name").and_then(|n| n.as_str()) == Some(NOISE_VM))
        });
    if has_noise {
        let noise_log = vm_lines(log, NOISE_VM);
        run.noise = report.cores.get(&NOISE_CORE).cloned();
        match (end_ticks(&vm_log), end_ticks(&noise_log)) {
            (Some(r), Some(n)) if n < r => bail!(
                "the neighbour stopped streaming (tick {n}) before the RT VM finished (tick {r}): \
                 give it a larger ms= in {}.toml",
                def.config
            ),
            (Some(_), Some(_)) => {}
            _ => bail!("the RT VM or the neighbour printed no end_ticks"),
        }
    }
    Ok(run)
}

/// Builds the plugin (ci/llc-plugin, a cdylib for the host); its path.
pub fn build_plugin(paths: &Paths) -> Result<PathBuf> {
    println!("xtask: bench: llc: building the LLC plugin (ci/llc-plugin) ...");
    util::run(
        util::cargo(paths).args(["build", "--release", "-p", "tessera-llc-plugin"]),
        "building the LLC plugin (cargo build --release -p tessera-llc-plugin)",
    )?;
    let so = paths.target.join("release").join("libtessera_llc.so");
    if !so.is_file() {
        bail!("the plugin build left no {}", so.display());
    }
    Ok(so)
}

/// Builds and runs every llc config for GIC version `gic` (logs and plugin reports in `dir`);
/// the outcomes and the number of failed runs.
pub fn run_all(
    paths: &Paths,
    builder: &mut Builder,
    o: &Options,
    gic: u8,
    dir: &Path,
) -> Result<(Runs, usize)> {
    let mut runs: Runs = Vec::new();
    let mut failures = 0;
    let Some((l1, llc)) = caches_of(&o.cpu) else {
        let why = format!("no cache geometry known for CPU model {}", o.cpu);
        for def in RUNS {
            let what = format!("[llc] {}", def.config);
            let r = Err(why.clone());
            super::count_unavailable(&what, &r, &mut failures);
            runs.push((def.key, r));
        }
        return Ok((runs, failures));
    };
    let plugin = build_plugin(paths)
        .and_then(|p| Ok((p, board_ram(paths, &o.board)?)))
        .map_err(|e| format!("{e:#}"));
    println!(
        "xtask: bench: llc: {} LLC {} KiB, {}-way, {} B lines ({} colors), L1 {} KiB {}-way",
        o.cpu,
        llc.size >> 10,
        llc.ways,
        llc.line,
        llc.colors(),
        l1.size >> 10,
        l1.ways
    );
    for (i, def) in RUNS.iter().enumerate() {
        let what = format!("[llc {}/{}] {} GICv{gic}", i + 1, RUNS.len(), def.config);
        let log = dir.join(format!("gicv{gic}-{}.log", def.config));
        let out = dir.join(format!("gicv{gic}-{}.llc.txt", def.config));
        let r = (|| -> Result<LlcRun> {
            let plugin = match (&plugin, def.plugin) {
                (Err(e), true) => bail!("no plugin: {e}"),
                (Ok(p), true) => Some(p),
                _ => None,
            };
            let mut spec = super::icount_spec(paths, builder, o, def.config, gic, &what)?;
            if let Some((p, ram)) = plugin {
                let _ = std::fs::remove_file(&out);
                spec.extra.extend([
                    "-plugin".to_string(),
                    format!("{},{}", p.display(), plugin_args(l1, llc, *ram, &out)),
                ]);
            }
            timed_run(paths, &what, &spec, &log, o.timeout)?;
            let text = super::log_text(&log);
            let report = match plugin {
                Some(_) => Some(
                    std::fs::read_to_string(&out)
                        .with_context(|| {
                            format!(
                                "the plugin wrote no report {} (did QEMU end normally?)",
                                util::display_rel(paths, &out)
                            )
                        })
                        .and_then(|t| parse_report(&t))?,
                ),
                None => None,
            };
            let config = util::read_toml(
                &paths
                    .root
                    .join("boards")
                    .join(&o.board)
                    .join("configs")
                    .join(format!("{}.toml", def.config)),
            )?;
            evaluate(def, &text, report.as_ref(), llc, &config)
        })()
        .map_err(|e| format!("{e:#}"));
        super::count_unavailable(&what, &r, &mut failures);
        if let Ok(run) = &r {
            for w in &run.warnings {
                println!("xtask: bench: {what}: WARNING: {w}");
            }
        }
        runs.push((def.key, r));
    }
    Ok((runs, failures))
}

/// The miss records: (record name, run key).
const MISS_RECORDS: [(&str, &str); 4] = [
    ("llc_rt_misses_alone", "alone"),
    ("llc_miss_ratio_interfered_uncolored", "uncolored"),
    ("llc_miss_ratio_interfered_colored", "colored"),
    ("llc_miss_ratio_interfered_colored_hyp", "colored_hyp"),
];

/// The llc records of GIC version `gic`.
pub fn records(gic: u8, runs: &Runs) -> Vec<Record> {
    let alone = run_of(runs, "alone").and_then(|r| r.rt.as_ref());
    let mut out: Vec<Record> = MISS_RECORDS
        .iter()
        .map(|&(name, key)| {
            let rt = run_of(runs, key).and_then(|r| r.rt.as_ref());
            let value = rt.map(|c| c.win_misses);
            let baseline = if key == "alone" {
                None
            } else {
                alone.map(|c| c.win_misses)
            };
            Record {
                name: name.to_string(),
                gic,
                value,
                unit: "misses".to_string(),
                baseline,
                baseline_source: baseline.map(|_| BaselineSource::Alone),
                baseline_max: if key == "alone" {
                    None
                } else {
                    alone.and_then(|c| c.win_misses_max)
                },
                ratio: super::ratio(value, baseline),
                max: rt.and_then(|c| c.win_misses_max),
                samples: rt.map(|c| c.windows),
            }
        })
        .collect();
    let uncolored_boot = run_of(runs, "uncolored").and_then(LlcRun::boot);
    for (name, key) in [
        ("llc_boot_colored", "colored"),
        ("llc_boot_colored_hyp", "colored_hyp"),
    ] {
        let value = run_of(runs, key).and_then(LlcRun::boot);
        out.push(Record {
            name: name.to_string(),
            gic,
            value,
            unit: "ticks".to_string(),
            baseline: uncolored_boot,
            baseline_source: uncolored_boot.map(|_| BaselineSource::Uncolored),
            baseline_max: None,
            ratio: super::ratio(value, uncolored_boot),
            max: None,
            samples: value.map(|_| 1),
        });
    }
    let bw = |key: &str| {
        run_of(runs, key)
            .and_then(|r| r.vm.figure("llc_bandwidth"))
            .cloned()
    };
    let (colored, plain) = (bw("bw_colored"), bw("bw"));
    let (value, baseline) = (
        colored.as_ref().map(|f| f.median),
        plain.as_ref().map(|f| f.median),
    );
    out.push(Record {
        name: "llc_bandwidth_colored".to_string(),
        gic,
        value,
        unit: "MB/s".to_string(),
        baseline,
        baseline_source: baseline.map(|_| BaselineSource::Uncolored),
        baseline_max: plain.as_ref().map(|f| f.max),
        ratio: super::ratio(value, baseline),
        max: colored.as_ref().map(|f| f.max),
        samples: colored.as_ref().map(|f| f.samples),
    });
    out
}

fn cell(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The table: per run the RT core's window counts, then the costs.
pub fn table(gic: u8, runs: &Runs, records: &[Record]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:18} | {:>9} {:>9} {:>8} {:>14} {:>12} {:>12}",
        format!("GICv{gic} RT VM"),
        "accesses",
        "misses",
        "miss %",
        "misses/pass",
        "vs alone",
        "colors"
    );
    let _ = writeln!(
        out,
        "{}",
        "-".repeat(18 + 3 + 9 + 1 + 9 + 1 + 8 + 1 + 14 + 26)
    );
    for (name, key) in MISS_RECORDS {
        let label = key.replace('_', "+");
        let rt = runs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| r.as_ref().map(|r| r.rt.clone()));
        let rec = records.iter().find(|r| r.name == name);
        let line = match rt {
            Some(Ok(Some(c))) => {
                let pct = if c.win_accesses > 0 {
                    format!("{:.2}", 100.0 * c.win_misses as f64 / c.win_accesses as f64)
                } else {
                    "-".to_string()
                };
                let vs = match rec {
                    _ if key == "alone" => "baseline".to_string(),
                    Some(r) => match (r.ratio, r.baseline) {
                        (Some(x), _) => format!("{x:.2}x"),
                        (None, Some(0)) => "alone=0".to_string(),
                        _ => "-".to_string(),
                    },
                    None => "-".to_string(),
                };
                format!(
                    "{:>9} {:>9} {:>8} {:>14} {:>12} {:>12}",
                    c.win_accesses,
                    c.win_misses,
                    pct,
                    format!("{}/{}", cell(c.win_misses_median), cell(c.win_misses_max)),
                    vs,
                    c.win_colors
                )
            }
            _ => "unavailable".to_string(),
        };
        let _ = writeln!(out, "{label:18} | {line}");
    }
    let get = |n: &str| records.iter().find(|r| r.name == n);
    let cost = |r: Option<&Record>, what: &str, unit: &str| -> String {
        match r {
            Some(r) => format!(
                "{what}: {} {unit} against {} uncolored ({})",
                cell(r.value),
                cell(r.baseline),
                r.ratio
                    .map_or("no ratio".to_string(), |x| format!("{x:.3}x"))
            ),
            None => format!("{what}: -"),
        }
    };
    let _ = writeln!(
        out,
        "{}",
        cost(
            get("llc_boot_colored"),
            "boot, VMs colored (CNTVCT at the RT VM's main)",
            "ticks"
        )
    );
    let _ = writeln!(
        out,
        "{}",
        cost(
            get("llc_boot_colored_hyp"),
            "boot, VMs and hypervisor colored",
            "ticks"
        )
    );
    let _ = writeln!(
        out,
        "{}",
        cost(
            get("llc_bandwidth_colored"),
            "4 MiB memcpy, colored VM",
            "MB/s"
        )
    );
    out
}

/// What the figures are, for the notes under the table.
pub const NOTES: [&str; 5] = [
    "RT VM: a 256 KiB working set read line by line in 50 passes, each inside a plugin window \
     on its core that also takes one virtual timer interrupt and makes one Tessera hypercall \
     (the hypervisor's injection and trap paths on that core count too); accesses/misses = \
     data and instruction lines reaching the simulated LLC (physical addresses, LRU, the CPU \
     model's geometry; private L1s in front); colors = page colors of the lines the windows \
     touched",
    "vs alone: RT misses / those of the RT VM alone (alone=0: it missed nothing alone, so the \
     misses themselves are the interference; JSON `delta`)",
    "uncolored: beside a neighbour streaming 8 MiB on core 1 (QEMU alternates: one pass, 1 MiB \
     streamed); colored: RT colors 0-7, neighbour 8-13, hypervisor uncolored; colored+hyp: the \
     hypervisor in colors 14-15 and the neighbour also making a hypercall per 4 KiB",
    "boot: -icount makes it instructions (1 tick = 16 instructions): the hypervisor's boot, \
     building both VMs, until the RT VM's main",
    "memcpy: -icount charges instructions only, not TLB misses or stage-2 walks (QEMU does not \
     time them), so a colored VM's 4 KiB stage-2 pages cost nothing here: the bandwidth ratio \
     shows only extra instructions (hypervisor work on the VM's core); on hardware the TLB \
     cost of losing 2 MiB blocks must be measured there",
];

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
tessera-llc 1
geometry size=1048576 ways=16 line=64 sets=1024 colors=16 l1_size=32768 l1_ways=2
vcpu=0 mem=5890418 accesses=756188 misses=750451 windows=50 win_mem=205700 win_accesses=204996 win_misses=204947 win_misses_median=4099 win_misses_max=4099 colors=0-15 win_colors=0-7,14-15 open=0 nested_starts=0 stray_ends=0
vcpu=1 mem=17570984 accesses=16501872 misses=16501674 windows=0 win_mem=0 win_accesses=0 win_misses=0 colors=0-15 win_colors=- open=0 nested_starts=0 stray_ends=0
";

    const LOG: &str = "\
tessera-llc: LLC 1024 KiB, 16-way, 64 B lines (1024 sets, 16 colors), L1 32 KiB 2-way, 2 vCPU(s)
[tessera] LLC: L2 1024 KiB, 16-way, 64 B lines -> 16 colors of 4 KiB (CCSIDR)
[noise] bench: boot_ticks median=1615693 max=1615693 min=1615693 samples=1 unit=ticks
[rt] llcbench: tessera mode=rt CNTFRQ 62500000 Hz\r
[rt] bench: boot_ticks median=2031624 max=2031624 min=2031624 samples=1 unit=ticks
[rt] llcbench: rt end_ticks=2437854 check=0x3ffe000
[rt] bench: llc_rt_pass median=1552 max=1552 min=1551 samples=50 unit=ticks
[rt] bench: done
[noise] llcbench: stream done sweeps=124 chunks=999 hypercalls=0 end_ticks=8269341 check=0x7
[noise] bench: done
[tessera] all VMs off; exit 0
";

    fn a72() -> Shape {
        caches_of("cortex-a72").unwrap().1
    }

    fn config(text: &str) -> toml::Value {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn report_and_log_parsing() {
        let r = parse_report(REPORT).unwrap();
        assert_eq!(r.llc, Some(a72()));
        let rt = &r.cores[&0];
        assert_eq!(
            (
                rt.windows,
                rt.win_accesses,
                rt.win_misses,
                rt.win_misses_max
            ),
            (50, 204996, 204947, Some(4099))
        );
        assert_eq!(rt.win_colors, "0-7,14-15");
        assert_eq!(r.cores[&1].win_misses_median, None);
        assert!(parse_report("hello\n").is_err());
        assert!(parse_report("tessera-llc 1\nvcpu=0 misses=1\n").is_err());

        let rt_log = vm_lines(LOG, "rt");
        assert!(rt_log.starts_with("llcbench: tessera mode=rt CNTFRQ"));
        assert_eq!(
            parse_log(&rt_log).figure("boot_ticks").unwrap().median,
            2031624
        );
        assert_eq!(end_ticks(&rt_log), Some(2437854));
        assert_eq!(end_ticks(&vm_lines(LOG, "noise")), Some(8269341));
        assert_eq!(hypervisor_llc(LOG), Some(a72()));
        assert_eq!(a72().colors(), 16);
        assert_eq!(caches_of("max").unwrap().1.colors(), 32);
        assert_eq!(
            plugin_args(
                caches_of("cortex-a72").unwrap().0,
                a72(),
                (0x4000_0000, 0x8000_0000),
                Path::new("/t/x.txt")
            ),
            "size=1048576,ways=16,line=64,l1=32768,l1ways=2,ram=0x40000000:0x80000000,\
             core_reg=TPIDR_EL2,out=/t/x.txt"
        );
    }

    #[test]
    fn evaluation_checks() {
        let def = RUNS[3];
        let colored = config(
            "[hypervisor]\ncolors = [14, 15]\n[[vms]]\nname = \"rt\"\ncolors = [0,1,2,3,4,5,6,7]\n\
             [[vms]]\nname = \"noise\"\n",
        );
        let report = parse_report(REPORT).unwrap();
        let run = evaluate(&def, LOG, Some(&report), a72(), &colored).unwrap();
        assert!(run.warnings.is_empty(), "{:?}", run.warnings);
        assert_eq!(run.rt.as_ref().unwrap().win_misses, 204947);
        assert_eq!(run.boot(), Some(2031624));
        // A color outside the RT VM's and the hypervisor's: a warning.
        let narrow = config("[hypervisor]\ncolors = [14]\n[[vms]]\nname = \"rt\"\ncolors = [0]\n");
        let run = evaluate(&def, LOG, Some(&report), a72(), &narrow).unwrap();
        assert!(
            run.warnings[0].contains("[1, 2, 3, 4, 5, 6, 7, 15]"),
            "{:?}",
            run.warnings
        );
        // An uncolored hypervisor: no check.
        let run = evaluate(&def, LOG, Some(&report), a72(), &config("")).unwrap();
        assert!(run.warnings.is_empty());
        // A config with a neighbour whose lines are missing: the run is void.
        let quiet = LOG.replace("[noise] llcbench", "[other] llcbench");
        let e = evaluate(&def, &quiet, Some(&report), a72(), &colored).unwrap_err();
        assert!(format!("{e}").contains("printed no end_ticks"), "{e}");
        // Another geometry than the hypervisor's: the run is void.
        let big = caches_of("max").unwrap().1;
        let e = evaluate(&def, LOG, Some(&report), big, &colored).unwrap_err();
        assert!(format!("{e}").contains("the hypervisor detected"), "{e}");
        // The neighbour stopped first.
        let early = LOG.replace("end_ticks=8269341", "end_ticks=100");
        let e = evaluate(&def, &early, Some(&report), a72(), &colored).unwrap_err();
        assert!(format!("{e}").contains("larger ms="), "{e}");
        // Windows and passes disagree.
        let fewer = REPORT.replace("windows=50", "windows=49");
        let e = evaluate(
            &def,
            LOG,
            Some(&parse_report(&fewer).unwrap()),
            a72(),
            &colored,
        )
        .unwrap_err();
        assert!(format!("{e}").contains("closed 49 window(s)"), "{e}");
        // No `bench: done` from the RT VM.
        let e = evaluate(
            &def,
            &LOG.replace("[rt] bench: done", ""),
            Some(&report),
            a72(),
            &colored,
        )
        .unwrap_err();
        assert!(format!("{e}").contains("never printed"), "{e}");
        assert_eq!(parse_color_list("0-2,5"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_color_list("-"), Some(vec![]));
        assert_eq!(parse_color_list("x"), None);
    }

    #[test]
    fn records_and_table() {
        let rt = |misses: u64, colors: &str| CoreCounts {
            accesses: 1,
            misses,
            windows: 50,
            win_accesses: 205_000,
            win_misses: misses,
            win_misses_median: Some(misses / 50),
            win_misses_max: Some(misses / 50 + 1),
            win_colors: colors.to_string(),
            open: false,
        };
        let run = |misses: u64, boot: u64| {
            LlcRun {
            vm: parse_log(&format!(
                "bench: boot_ticks median={boot} max={boot} min={boot} samples=1 unit=ticks\nbench: done\n"
            )),
            rt: Some(rt(misses, "0-7")),
            noise: None,
            warnings: Vec::new(),
        }
        };
        let bw = |mbps: u64| LlcRun {
            vm: parse_log(&format!(
                "bench: llc_bandwidth median={mbps} max={mbps} min={mbps} samples=8 unit=MB/s\n"
            )),
            ..LlcRun::default()
        };
        let runs: Runs = vec![
            ("alone", Ok(run(0, 1000))),
            ("uncolored", Ok(run(204_950, 2000))),
            ("colored", Ok(run(150, 2100))),
            ("colored_hyp", Err("build failed".into())),
            ("bw", Ok(bw(800))),
            ("bw_colored", Ok(bw(780))),
        ];
        let r = records(3, &runs);
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "llc_rt_misses_alone",
                "llc_miss_ratio_interfered_uncolored",
                "llc_miss_ratio_interfered_colored",
                "llc_miss_ratio_interfered_colored_hyp",
                "llc_boot_colored",
                "llc_boot_colored_hyp",
                "llc_bandwidth_colored"
            ]
        );
        assert_eq!((r[0].value, r[0].baseline), (Some(0), None));
        // Alone missed nothing: no ratio, the misses are the delta.
        assert_eq!(
            (r[1].value, r[1].baseline, r[1].ratio),
            (Some(204_950), Some(0), None)
        );
        assert_eq!(r[1].baseline_source, Some(BaselineSource::Alone));
        assert_eq!((r[3].value, r[3].ratio), (None, None));
        assert_eq!(
            (r[4].value, r[4].baseline, r[4].ratio),
            (Some(2100), Some(2000), Some(1.05))
        );
        assert_eq!(r[5].value, None);
        assert_eq!((r[6].value, r[6].baseline), (Some(780), Some(800)));
        assert_eq!(r[6].ratio, Some(0.975));
        let t = table(3, &runs, &r);
        let line = |k: &str| t.lines().find(|l| l.starts_with(k)).unwrap().to_string();
        assert!(line("uncolored").contains("alone=0"), "{t}");
        assert!(
            line("colored ").contains("150") && line("colored ").contains("3/4"),
            "{t}"
        );
        assert!(line("colored+hyp").contains("unavailable"), "{t}");
        assert!(
            t.contains("2100 ticks against 2000 uncolored (1.050x)"),
            "{t}"
        );
        assert!(t.contains("780 MB/s against 800 uncolored (0.975x)"), "{t}");
        // A non-zero alone baseline gives ratios.
        let mut runs = runs;
        runs[0] = ("alone", Ok(run(100, 1000)));
        let r = records(3, &runs);
        assert_eq!(r[2].ratio, Some(1.5));
        assert!(table(3, &runs, &r).contains("1.50x"));
    }
}
