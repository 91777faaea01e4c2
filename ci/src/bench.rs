//! `cargo xtask bench`: the bench guest (guests/bench) bare on QEMU and under Tessera, for
//! GICv3 and/or GICv2, under `-icount shift=0,sleep=off` (one instruction = 1 ns, so the
//! figures repeat run to run); a table of Tessera against bare, and JSON records.
//!
//! The guest prints one line per figure,
//! `bench: <name> median=<ticks> max=<ticks> min=<ticks> samples=<n> unit=ticks`
//! (under Tessera prefixed with `[<vm>] `), `bench: <name> unavailable (<why>)` for a figure
//! it cannot take, `bench: done` at the end, or `bench: FAILED <why>`.
//!
//! Then the scheduling figures (vCPU switch, scheduler overhead per decision with 1..16 vCPUs on
//! a core, budget overrun, release jitter) for the first GIC version: see [`sched`]; the
//! channel ([`ring`]) and console ([`console`]) figures; the LLC coloring experiment with a
//! cache-model plugin ([`llc`]).

#[path = "bench_console.rs"]
pub mod console;
#[path = "bench_llc.rs"]
pub mod llc;
#[path = "bench_ring.rs"]
pub mod ring;
#[path = "bench_sched.rs"]
pub mod sched;

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use regex::Regex;

use crate::el2trace::{self, Sample, Symbols};
use crate::images::{Builder, HypervisorBuild};
use crate::qemu::{self, Outcome, QemuSpec};
use crate::util::{self, Paths};

/// QEMU arguments of every bench run: a deterministic virtual clock.
pub const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];
/// Lines of the serial log shown when a run fails.
const TAIL_LINES: usize = 30;
/// Figures every record set has (null values when a run did not give them), in table order;
/// other figures follow in the order the guest printed them.
const KNOWN: [&str; 5] = [
    "loop_baseline",
    "hvc_roundtrip",
    "virq_latency",
    "virq_handler_latency",
    "ipi_latency",
];
/// Figures always recorded, even when no run printed them.
const REQUIRED: [&str; 3] = ["hvc_roundtrip", "virq_latency", "ipi_latency"];
/// The figure that is the baseline of figures without a bare equivalent.
const LOOP_BASELINE: &str = "loop_baseline";

/// What `cargo xtask bench` was asked for.
pub struct Options {
    pub board: String,
    pub config: String,
    /// GIC versions, in the order they are run and shown.
    pub gics: Vec<u8>,
    pub cpu: String,
    pub memory: String,
    /// Per QEMU run.
    pub timeout: Duration,
    /// JSON output (default `target/bench/bench.json`).
    pub out: Option<PathBuf>,
    /// Afterwards, count the EL2 instructions of the injection path in a QEMU trace.
    pub el2_trace: bool,
    /// Keep the (~300 MB) trace logs.
    pub keep_trace: bool,
    /// Only one part: `gic` (bare against Tessera per GIC version), `sched` (the
    /// scheduling figures), `ring` (the channel figures), `console` or `llc` (the LLC
    /// coloring experiment); None: all.
    pub only: Option<String>,
}

/// One figure line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figure {
    pub name: String,
    pub median: u64,
    pub max: u64,
    pub min: u64,
    pub samples: u64,
    pub unit: String,
}

/// What one run's serial log says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub figures: Vec<Figure>,
    /// (figure, why) of `bench: <name> unavailable (<why>)`.
    pub unavailable: Vec<(String, String)>,
    /// CNTFRQ of the header line.
    pub cntfrq: Option<u64>,
    /// `bench: done` was printed.
    pub done: bool,
    /// The reason of the first `bench: FAILED` line.
    pub failed: Option<String>,
}

impl Parsed {
    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }
}

struct Patterns {
    figure: Regex,
    unavailable: Regex,
    header: Regex,
    done: Regex,
    failed: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    // Not anchored at the line start: under Tessera a VM's lines carry `[<vm>] `.
    P.get_or_init(|| Patterns {
        figure: Regex::new(
            r"bench: ([A-Za-z0-9_]+) median=(\d+) max=(\d+) min=(\d+) samples=(\d+) unit=(\S+)",
        )
        .expect("valid regex"),
        unavailable: Regex::new(r"bench: ([A-Za-z0-9_]+) unavailable \((.*)\)\s*$")
            .expect("valid regex"),
        header: Regex::new(r"bench: (?:bare|tessera) .*CNTFRQ (\d+) Hz").expect("valid regex"),
        done: Regex::new(r"bench: done\s*$").expect("valid regex"),
        failed: Regex::new(r"bench: FAILED (.*)$").expect("valid regex"),
    })
}

/// Reads the bench lines out of a serial log (other lines are ignored).
pub fn parse_log(log: &str) -> Parsed {
    let p = patterns();
    let mut out = Parsed::default();
    for line in log.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(c) = p.figure.captures(line) {
            let num = |i: usize| c[i].parse::<u64>().ok();
            if let (Some(median), Some(max), Some(min), Some(samples)) =
                (num(2), num(3), num(4), num(5))
            {
                let name = c[1].to_string();
                if out.figure(&name).is_none() {
                    out.figures.push(Figure {
                        name,
                        median,
                        max,
                        min,
                        samples,
                        unit: c[6].to_string(),
                    });
                }
            }
        } else if let Some(c) = p.unavailable.captures(line) {
            out.unavailable.push((c[1].to_string(), c[2].to_string()));
        } else if let Some(c) = p.header.captures(line) {
            out.cntfrq = c[1].parse().ok();
        } else if p.done.is_match(line) {
            out.done = true;
        } else if let Some(c) = p.failed.captures(line) {
            out.failed.get_or_insert_with(|| c[1].to_string());
        }
    }
    out
}

/// Where a record's baseline comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaselineSource {
    /// The same figure of the bare run.
    Bare,
    /// `loop_baseline` of the Tessera run (figures with no bare equivalent, e.g. a hypercall).
    Loop,
    /// The same measurement on an exclusive core (the scheduling figures).
    Exclusive,
    /// The server's budget, in the same run (`budget_run`).
    Budget,
    /// The same run without the flooders (`console_print*`: a quiet neighbour;
    /// `ring_*hi_latency*`: the flooders idle).
    Unflooded,
    /// An in-guest copy of the same bytes (`ring_throughput_*`).
    Memcpy,
    /// A doorbell after every message (`doorbells_per_s`).
    EveryMessage,
    /// The same VM alone on the machine (`llc_miss_ratio_*`).
    Alone,
    /// The same VMs uncolored (`llc_boot_*`, `llc_bandwidth_colored`).
    Uncolored,
}

impl BaselineSource {
    fn as_str(self) -> &'static str {
        match self {
            BaselineSource::Bare => "bare",
            BaselineSource::Loop => LOOP_BASELINE,
            BaselineSource::Exclusive => "exclusive",
            BaselineSource::Budget => "budget",
            BaselineSource::Unflooded => "unflooded",
            BaselineSource::Memcpy => "memcpy",
            BaselineSource::EveryMessage => "every-message",
            BaselineSource::Alone => "alone",
            BaselineSource::Uncolored => "uncolored",
        }
    }
}

/// One figure of one GIC version: Tessera against its baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub name: String,
    pub gic: u8,
    /// Tessera median.
    pub value: Option<u64>,
    pub unit: String,
    /// Baseline median (see `baseline_source`).
    pub baseline: Option<u64>,
    pub baseline_source: Option<BaselineSource>,
    /// Max of the baseline figure.
    pub baseline_max: Option<u64>,
    /// value / baseline, when both exist and the baseline is not 0.
    pub ratio: Option<f64>,
    /// Tessera max.
    pub max: Option<u64>,
    /// Tessera sample count.
    pub samples: Option<u64>,
}

/// value / baseline; `None` when either is missing or the baseline is 0.
pub fn ratio(value: Option<u64>, baseline: Option<u64>) -> Option<f64> {
    match (value, baseline) {
        (Some(v), Some(b)) if b > 0 => Some(v as f64 / b as f64),
        _ => None,
    }
}

/// The records of one GIC version from its Tessera and bare runs (either may be missing).
pub fn records(gic: u8, tessera: Option<&Parsed>, bare: Option<&Parsed>) -> Vec<Record> {
    let mut names: Vec<String> = Vec::new();
    let seen = |p: Option<&Parsed>| -> Vec<String> {
        p.map(|p| {
            p.figures
                .iter()
                .map(|f| f.name.clone())
                .chain(p.unavailable.iter().map(|(n, _)| n.clone()))
                .collect()
        })
        .unwrap_or_default()
    };
    let mut all = seen(tessera);
    all.extend(seen(bare));
    for k in KNOWN {
        if REQUIRED.contains(&k) || all.iter().any(|n| n == k) {
            names.push(k.to_string());
        }
    }
    for n in all {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let loop_median = tessera
        .and_then(|t| t.figure(LOOP_BASELINE))
        .or_else(|| bare.and_then(|b| b.figure(LOOP_BASELINE)));
    names
        .into_iter()
        .map(|name| {
            let t = tessera.and_then(|t| t.figure(&name));
            let b = bare.and_then(|b| b.figure(&name));
            let (base, source) = match (b, loop_median) {
                (Some(b), _) => (Some(b), Some(BaselineSource::Bare)),
                (None, Some(l)) if name != LOOP_BASELINE => (Some(l), Some(BaselineSource::Loop)),
                _ => (None, None),
            };
            let value = t.map(|f| f.median);
            let baseline = base.map(|f| f.median);
            Record {
                unit: t
                    .or(b)
                    .map_or_else(|| "ticks".to_string(), |f| f.unit.clone()),
                gic,
                value,
                baseline,
                baseline_source: source,
                baseline_max: base.map(|f| f.max),
                ratio: ratio(value, baseline),
                max: t.map(|f| f.max),
                samples: t.map(|f| f.samples),
                name,
            }
        })
        .collect()
}

/// The ratio cell of the table.
pub fn ratio_cell(r: &Record) -> String {
    let base = match r.baseline_source {
        Some(BaselineSource::Loop) => "loop",
        Some(BaselineSource::Exclusive) => "exclusive",
        Some(BaselineSource::Budget) => "budget",
        _ => "bare",
    };
    match (r.value, r.baseline, r.ratio) {
        (None, _, _) => "-".into(),
        (Some(_), _, Some(x)) if r.baseline_source == Some(BaselineSource::Loop) => {
            format!("{x:.2}x loop")
        }
        (Some(_), _, Some(x)) => format!("{x:.2}x"),
        (Some(_), Some(0), None) => format!("{base}=0"),
        (Some(_), _, None) => "no bare".into(),
    }
}

fn med_max(median: Option<u64>, max: Option<u64>) -> String {
    match (median, max) {
        (Some(m), Some(x)) => format!("{m}/{x}"),
        (Some(m), None) => m.to_string(),
        _ => "-".into(),
    }
}

/// Results of one GIC version.
pub struct GicResult {
    pub gic: u8,
    /// The Tessera run, or why there is none.
    pub tessera: std::result::Result<Parsed, String>,
    pub bare: std::result::Result<Parsed, String>,
}

impl GicResult {
    pub fn records(&self) -> Vec<Record> {
        records(
            self.gic,
            self.tessera.as_ref().ok(),
            self.bare.as_ref().ok(),
        )
    }
}

const NAME_W: usize = 22;
const T_W: usize = 15;
const B_W: usize = 12;
const R_W: usize = 12;

/// The table: per GIC version side by side, Tessera median/max, bare median/max, ratio.
pub fn table(results: &[GicResult]) -> String {
    let per = |r: &GicResult| -> Vec<Record> { r.records() };
    let sets: Vec<Vec<Record>> = results.iter().map(per).collect();
    let mut names: Vec<String> = Vec::new();
    for s in &sets {
        for r in s {
            if !names.contains(&r.name) {
                names.push(r.name.clone());
            }
        }
    }
    let block = T_W + B_W + R_W + 2;
    let mut out = String::new();
    let _ = write!(out, "{:NAME_W$}", "");
    for r in results {
        let title = format!("GICv{}", r.gic);
        let _ = write!(out, " | {title:^block$}");
    }
    out.push('\n');
    let _ = write!(out, "{:NAME_W$}", "figure (ticks)");
    for _ in results {
        let _ = write!(
            out,
            " | {:>T_W$} {:>B_W$} {:>R_W$}",
            "tessera med/max", "bare med/max", "ratio"
        );
    }
    out.push('\n');
    let _ = writeln!(out, "{}", "-".repeat(NAME_W + results.len() * (block + 3)));
    for name in &names {
        let _ = write!(out, "{name:NAME_W$}");
        for (res, set) in results.iter().zip(&sets) {
            let rec = set.iter().find(|r| &r.name == name);
            let (t, b, q) = match rec {
                Some(r) => {
                    let t = if res.tessera.is_err() {
                        "unavailable".to_string()
                    } else {
                        med_max(r.value, r.max)
                    };
                    let b = match (&res.bare, r.baseline_source) {
                        (Err(_), _) => "unavailable".to_string(),
                        (Ok(_), Some(BaselineSource::Bare)) => med_max(r.baseline, r.baseline_max),
                        (Ok(_), _) => "-".to_string(),
                    };
                    (t, b, ratio_cell(r))
                }
                None => ("-".into(), "-".into(), "-".into()),
            };
            let _ = write!(out, " | {t:>T_W$} {b:>B_W$} {q:>R_W$}");
        }
        out.push('\n');
    }
    out.lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

/// Notes under the table: what the ratio cells mean, the tick length, what failed.
pub fn notes(results: &[GicResult]) -> Vec<String> {
    let mut notes = Vec::new();
    let all: Vec<Record> = results.iter().flat_map(GicResult::records).collect();
    if all
        .iter()
        .any(|r| r.baseline_source == Some(BaselineSource::Bare) && r.baseline == Some(0))
    {
        notes.push(
            "bare=0: the bare figure is 0 ticks (below the counter's resolution), so there is \
             no ratio; compare the absolute Tessera ticks"
                .into(),
        );
    }
    if all
        .iter()
        .any(|r| r.baseline_source == Some(BaselineSource::Loop))
    {
        notes.push(
            "figures with no bare equivalent (hvc_roundtrip) are held against loop_baseline of \
             the Tessera run (the cost of the timing itself): `Nx loop`, or `loop=0` when that \
             is 0 ticks (then read the absolute ticks)"
                .into(),
        );
    }
    let freq = results
        .iter()
        .flat_map(|r| [r.tessera.as_ref().ok(), r.bare.as_ref().ok()])
        .flatten()
        .find_map(|p| p.cntfrq);
    if let Some(f) = freq.filter(|&f| f > 0) {
        let ns = 1e9 / f as f64;
        notes.push(format!(
            "1 tick = 1/CNTFRQ = {ns:.0} ns = {ns:.0} instructions under -icount shift=0 \
             (CNTFRQ {f} Hz)"
        ));
    }
    for r in results {
        if let Err(e) = &r.tessera {
            notes.push(format!(
                "GICv{} Tessera: {}",
                r.gic,
                e.lines().next().unwrap_or("")
            ));
        }
        if let Err(e) = &r.bare {
            notes.push(format!(
                "GICv{} bare: {}",
                r.gic,
                e.lines().next().unwrap_or("")
            ));
        }
    }
    notes
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: Option<u64>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

/// The records as a JSON array, one record per line.
pub fn to_json(records: &[Record]) -> String {
    let mut out = String::from("[\n");
    for (i, r) in records.iter().enumerate() {
        let ratio = r
            .ratio
            .filter(|x| x.is_finite())
            .map_or_else(|| "null".into(), |x| format!("{x:.4}"));
        let source = r
            .baseline_source
            .map_or_else(|| "null".into(), |s| json_str(s.as_str()));
        let _ = write!(
            out,
            "  {{\"name\": {}, \"gic\": {}, \"value\": {}, \"unit\": {}, \"baseline\": {}, \
             \"ratio\": {}, \"max\": {}, \"samples\": {}, \"baseline_source\": {}, \
             \"baseline_max\": {}, \"delta\": {}}}",
            json_str(&r.name),
            r.gic,
            json_num(r.value),
            json_str(&r.unit),
            json_num(r.baseline),
            ratio,
            json_num(r.max),
            json_num(r.samples),
            source,
            json_num(r.baseline_max),
            r.value
                .zip(r.baseline)
                .map_or_else(|| "null".into(), |(v, b)| (v as i64 - b as i64).to_string()),
        );
        out.push_str(if i + 1 < records.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    out
}

/// Runs one QEMU, its console into `log`; the parsed log, or why the run is no good (with the
/// log's tail).
fn run_one(paths: &Paths, spec: &QemuSpec, log: &Path, timeout: Duration) -> Result<Parsed> {
    let _ = std::fs::write(log.with_extension("cmd"), spec.describe() + "\n");
    let child = spec
        .command_logged(&paths.root, log)?
        .stdin(Stdio::null())
        .spawn()
        .context("could not start qemu-system-aarch64; run `cargo xtask setup` to install it")?;
    let outcome = qemu::wait(child, Some(timeout))?;
    let text = log_text(log);
    let parsed = parse_log(&text);
    let problem = match outcome {
        Outcome::TimedOut(t) => Some(format!(
            "QEMU was still running after {} s and was killed (give more time with --timeout)",
            t.as_secs()
        )),
        _ if parsed.failed.is_some() => Some(format!(
            "the guest failed: {}",
            parsed.failed.as_deref().unwrap_or("")
        )),
        // Under Tessera the status is the hypervisor's final line (QEMU itself exits 0).
        Outcome::Exited(0) if spec.virtualization && qemu::hypervisor_status(&text) != Some(0) => {
            Some(match qemu::hypervisor_status(&text) {
                Some(s) => format!("Tessera ended with status {s}"),
                None => "Tessera printed no final status line".to_string(),
            })
        }
        Outcome::Exited(0) if !parsed.done => {
            Some("QEMU exited 0 but the guest never printed `bench: done`".to_string())
        }
        Outcome::Exited(0) => None,
        Outcome::Exited(c) => Some(format!("QEMU exited with status {c}")),
    };
    if let Some(p) = problem {
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(TAIL_LINES);
        let mut msg = format!(
            "{p}\n  command: {}\n  last {} line(s) of {}:",
            spec.describe(),
            lines.len() - from,
            util::display_rel(paths, log)
        );
        for l in &lines[from..] {
            let _ = write!(msg, "\n  | {}", l.trim_end_matches('\r'));
        }
        bail!(msg);
    }
    Ok(parsed)
}

/// For --el2-trace: the Tessera run of a GIC version and a copy of its ELF, or why there is none.
type TraceTarget = std::result::Result<(QemuSpec, PathBuf), String>;

pub fn run(paths: &Paths, o: &Options) -> Result<i32> {
    let dir = paths.target.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut builder = Builder::new(paths);
    println!("xtask: bench: building the bench guest ...");
    let guest = builder.guest("bench")?;
    let only = |part: &str| o.only.as_deref().is_none_or(|p| p == part);
    let (classic, with_sched, with_ring) = (only("gic"), only("sched"), only("ring"));
    // The bare/Tessera pairs per GIC version (none with `--only sched`).
    let gics: &[u8] = if classic { &o.gics } else { &[] };
    let total = gics.len() * 2;
    let mut n = 0;
    let mut results = Vec::new();
    let mut failures = 0;
    // Per GIC version, for --el2-trace: the Tessera run and a copy of its ELF (the next build
    // overwrites cargo's).
    let mut trace_targets: Vec<(u8, TraceTarget)> = Vec::new();
    for &gic in gics {
        // (a) bare: the same bench.bin at EL1, no EL2.
        n += 1;
        let bare_spec = QemuSpec {
            kernel: guest.bin.clone(),
            gic,
            cpu: o.cpu.clone(),
            smp: 2,
            memory: o.memory.clone(),
            virtualization: false,
            gdb: false,
            // The bare guest's only way to report a failure status.
            semihosting: true,
            defmt_file: None,
            extra: ICOUNT.iter().map(|s| s.to_string()).collect(),
        };
        let bare = timed_run(
            paths,
            &format!("[{n}/{total}] bare GICv{gic}"),
            &bare_spec,
            &dir.join(format!("gicv{gic}-bare.log")),
            o.timeout,
        );
        // (b) Tessera with the bench config, built for this GIC version.
        n += 1;
        let mut trace_target = Err("the Tessera image was not built".to_string());
        let tessera = (|| -> Result<Parsed> {
            let mut hb = HypervisorBuild::new(
                paths,
                &o.board,
                &o.config,
                Some(gic),
                Vec::new(),
                false,
                None,
            )?;
            hb.set_cpu(&o.cpu);
            println!(
                "xtask: bench: [{n}/{total}] building Tessera ({}, GICv{gic}) ...",
                hb.config_name
            );
            let built = builder.build_hypervisor(&hb)?;
            let spec = QemuSpec {
                kernel: built.image,
                gic,
                cpu: o.cpu.clone(),
                smp: util::config_cores(&hb.config_path)?.max(2),
                memory: o.memory.clone(),
                virtualization: true,
                gdb: false,
                semihosting: false,
                defmt_file: None,
                extra: ICOUNT.iter().map(|s| s.to_string()).collect(),
            };
            if o.el2_trace {
                let elf = dir.join(format!("tessera-gic{gic}.elf"));
                trace_target = std::fs::copy(&built.elf, &elf)
                    .map(|_| (spec.clone(), elf.clone()))
                    .map_err(|e| {
                        format!(
                            "cannot copy {} to {}: {e}",
                            built.elf.display(),
                            elf.display()
                        )
                    });
            }
            timed_run(
                paths,
                &format!("[{n}/{total}] Tessera GICv{gic}"),
                &spec,
                &dir.join(format!("gicv{gic}-tessera.log")),
                o.timeout,
            )
        })();
        for (what, r) in [("Tessera", &tessera), ("bare", &bare)] {
            if let Err(e) = r {
                failures += 1;
                let first = format!("{e:#}");
                let first = first.lines().next().unwrap_or("");
                println!("xtask: bench: GICv{gic} {what}: unavailable ({first})");
            }
        }
        trace_targets.push((gic, trace_target));
        results.push(GicResult {
            gic,
            tessera: tessera.map_err(|e| format!("{e:#}")),
            bare: bare.map_err(|e| format!("{e:#}")),
        });
    }

    let mut sched_runs = 0;
    let sched = match o.gics.first().filter(|_| with_sched) {
        Some(&gic) => {
            let (runs, failed) = sched::run_all(paths, &mut builder, o, gic, &dir)?;
            failures += failed;
            sched_runs = runs.len();
            Some(sched::records(gic, &runs))
        }
        None => None,
    };

    let mut ring_runs = 0;
    let ring = match o.gics.first().filter(|_| with_ring) {
        Some(&gic) => {
            let (runs, failed) = ring::run_all(paths, &mut builder, o, gic, &dir)?;
            failures += failed;
            ring_runs = runs.len();
            Some((gic, runs))
        }
        None => None,
    };

    let mut console_runs = 0;
    let console = match o.gics.first().filter(|_| only("console")) {
        Some(&gic) => {
            let (runs, failed) = console::run_all(paths, &mut builder, o, gic, &dir)?;
            failures += failed;
            console_runs = runs.len();
            Some(console::records(gic, &runs))
        }
        None => None,
    };

    let mut llc_runs = 0;
    let llc = match o.gics.first().filter(|_| only("llc")) {
        Some(&gic) => {
            let (runs, failed) = llc::run_all(paths, &mut builder, o, gic, &dir)?;
            failures += failed;
            llc_runs = runs.len();
            Some((gic, runs))
        }
        None => None,
    };

    let mut records: Vec<Record> = Vec::new();
    if classic {
        println!();
        println!("xtask: bench results (median/max of each figure in CNTVCT ticks, -icount shift=0,sleep=off; ratio = Tessera median / bare median)");
        print!("{}", table(&results));
        for note in notes(&results) {
            println!("  note: {note}");
        }
        records.extend(results.iter().flat_map(GicResult::records));
    }
    if let Some(recs) = sched {
        println!();
        println!("xtask: bench scheduling results (median/max in CNTVCT ticks, -icount shift=0,sleep=off, one QEMU core; exclusive = the same measurement on an exclusive core in this run; delta = shared median - exclusive median)");
        print!("{}", sched::table(recs[0].gic, &recs));
        for note in sched::NOTES {
            println!("  note: {note}");
        }
        records.extend(recs);
    }
    if let Some((gic, runs)) = ring {
        println!();
        println!("xtask: bench channel results (-icount shift=0,sleep=off; 1 us = 62.5 ticks)");
        print!("{}", ring::table(gic, &runs));
        for note in ring::NOTES {
            println!("  note: {note}");
        }
        records.extend(ring::records(gic, &runs));
    }
    if let Some(recs) = console {
        println!();
        println!("xtask: bench console results (CNTVCT ticks per print of the victim VM, -icount shift=0,sleep=off; ratio = under flood / beside a quiet neighbour)");
        print!("{}", console::table(recs[0].gic, &recs));
        for note in console::NOTES {
            println!("  note: {note}");
        }
        records.extend(recs);
    }
    if let Some((gic, runs)) = llc {
        let recs = llc::records(gic, &runs);
        println!();
        println!("xtask: bench LLC coloring results (simulated LLC of {}, -icount shift=0,sleep=off; the RT VM's LLC accesses and misses inside its measured windows)", o.cpu);
        print!("{}", llc::table(gic, &runs, &recs));
        for note in llc::NOTES {
            println!("  note: {note}");
        }
        for (key, r) in &runs {
            for w in r.iter().flat_map(|r| &r.warnings) {
                println!("  WARNING: {key}: {w}");
            }
        }
        records.extend(recs);
    }
    if o.el2_trace {
        let mut traced = Vec::new();
        for (i, (gic, target)) in trace_targets.iter().enumerate() {
            let what = format!("[{}/{}] EL2 trace GICv{gic}", i + 1, trace_targets.len());
            let hint = results
                .iter()
                .find(|r| r.gic == *gic)
                .and_then(|r| r.tessera.as_ref().ok())
                .and_then(|p| p.figure("virq_latency"))
                .map(|f| f.samples as usize);
            let r = match target {
                Ok((spec, elf)) => el2_trace_run(paths, o, &dir, &what, *gic, spec, elf, hint)
                    .map_err(|e| format!("{e:#}")),
                Err(e) => Err(e.clone()),
            };
            count_unavailable(&what, &r, &mut failures);
            traced.push((*gic, r));
        }
        println!();
        print!("{}", el2_table(&traced));
        for (gic, r) in &traced {
            records.extend(el2_records(*gic, r.as_ref().ok()));
        }
    }
    let out = o.out.clone().unwrap_or_else(|| dir.join("bench.json"));
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&out, to_json(&records))
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "xtask: bench: {} records written to {} (serial logs: {})",
        records.len(),
        util::display_rel(paths, &out),
        util::display_rel(paths, &dir)
    );
    if failures > 0 {
        let runs = total
            + sched_runs
            + ring_runs
            + console_runs
            + llc_runs
            + if o.el2_trace { gics.len() } else { 0 };
        println!("xtask: bench: {failures} of {runs} run(s) failed (see above); their columns are unavailable");
        return Ok(1);
    }
    Ok(0)
}

/// QEMU logging of an EL2 trace run: translated blocks, every block executed (unchained, so
/// each is logged), exceptions.
pub const EL2_TRACE_LOG: &str = "in_asm,exec,nochain,int";
/// Functions listed per EL2 figure.
const TOP_FUNCTIONS: usize = 10;
/// The EL2 figures: (record name, table label).
const EL2_FIGURES: [(&str, &str); 2] = [
    ("el2_insns_virq", "virq (timer)"),
    ("el2_insns_ipi", "ipi (receiver side)"),
];

/// One EL2 figure of one GIC version.
#[derive(Clone, Debug, PartialEq)]
pub struct El2Figure {
    /// (median, min, max); None without samples.
    pub stats: Option<(u64, u64, u64)>,
    pub samples: usize,
    /// (instructions per sample, function).
    pub top: Vec<(f64, String)>,
}

impl El2Figure {
    fn new(samples: &[&Sample], syms: &Symbols) -> El2Figure {
        El2Figure {
            stats: el2trace::stats(samples),
            samples: samples.len(),
            top: el2trace::top_functions(samples, syms, TOP_FUNCTIONS),
        }
    }
}

/// The EL2 figures of one GIC version, in `EL2_FIGURES` order.
pub type El2Result = [El2Figure; 2];

/// Runs the Tessera bench image once more with QEMU's trace log, and counts.
#[allow(clippy::too_many_arguments)]
fn el2_trace_run(
    paths: &Paths,
    o: &Options,
    dir: &Path,
    what: &str,
    gic: u8,
    spec: &QemuSpec,
    elf: &Path,
    timer_hint: Option<usize>,
) -> Result<El2Result> {
    let syms = Symbols::read(paths, elf)?;
    let trace = dir.join(format!("el2-trace-gic{gic}.log"));
    let mut spec = spec.clone();
    spec.extra.extend([
        "-d".to_string(),
        EL2_TRACE_LOG.to_string(),
        "-D".to_string(),
        trace.display().to_string(),
    ]);
    let _ = std::fs::remove_file(&trace);
    let serial = dir.join(format!("gicv{gic}-el2-trace.log"));
    let ran = timed_run(paths, what, &spec, &serial, o.timeout);
    let counted = ran.and_then(|_| {
        let start = Instant::now();
        let size = std::fs::metadata(&trace).map(|m| m.len()).unwrap_or(0);
        let file =
            File::open(&trace).with_context(|| format!("QEMU wrote no {}", trace.display()))?;
        let (samples, lines) =
            el2trace::parse_reader(std::io::BufReader::with_capacity(1 << 20, file), syms.image)?;
        println!(
            "xtask: bench: {what}: parsed {} ({} MB, {lines} lines) in {:.1} s: {} IRQ -> virtual \
             IRQ samples (Tessera image {:#x}..{:#x})",
            util::display_rel(paths, &trace),
            size / 1_000_000,
            start.elapsed().as_secs_f64(),
            samples.len(),
            syms.image.0,
            syms.image.1
        );
        if samples.is_empty() {
            bail!(
                "no physical IRQ followed by a virtual IRQ in {} (does this QEMU log \
                 `Taking exception` lines for -d int?)",
                util::display_rel(paths, &trace)
            );
        }
        let (timer, ipi) =
            el2trace::split(&samples, timer_hint.unwrap_or(samples.len().div_ceil(2)));
        Ok([El2Figure::new(&timer, &syms), El2Figure::new(&ipi, &syms)])
    });
    if o.keep_trace {
        println!(
            "xtask: bench: {what}: trace kept in {}",
            util::display_rel(paths, &trace)
        );
    } else {
        let _ = std::fs::remove_file(&trace);
    }
    counted
}

/// The EL2 table: per figure and GIC version, median [min..max] and the sample count; then
/// the top functions of each.
pub fn el2_table(traced: &[(u8, std::result::Result<El2Result, String>)]) -> String {
    const W: usize = 26;
    let mut out = String::from(
        "xtask: bench: EL2 instructions on the interrupt-injection path (Tessera-image \
         instructions between the physical IRQ and the guest's virtual IRQ, same CPU; QEMU -d \
         in_asm,exec,nochain,int)\n",
    );
    let _ = write!(out, "{:NAME_W$}", "figure (instructions)");
    for (gic, _) in traced {
        let _ = write!(out, " | {:>W$}", format!("GICv{gic} median [min..max] n"));
    }
    out.push('\n');
    let _ = writeln!(out, "{}", "-".repeat(NAME_W + traced.len() * (W + 3)));
    for (i, (_, label)) in EL2_FIGURES.iter().enumerate() {
        let _ = write!(out, "{label:NAME_W$}");
        for (_, r) in traced {
            let cell = match r {
                Err(_) => "unavailable".to_string(),
                Ok(f) => match f[i].stats {
                    Some((med, min, max)) => format!("{med} [{min}..{max}] {}", f[i].samples),
                    None => "no samples".to_string(),
                },
            };
            let _ = write!(out, " | {cell:>W$}");
        }
        out.push('\n');
    }
    for (gic, r) in traced {
        let Ok(f) = r else { continue };
        for (fig, (_, label)) in f.iter().zip(EL2_FIGURES) {
            if fig.top.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "  GICv{gic} {label}: top functions, instructions per sample"
            );
            for (k, name) in &fig.top {
                let _ = writeln!(out, "    {k:8.1}  {name}");
            }
        }
    }
    out
}

/// The JSON records of one GIC version's EL2 figures (null values when the run failed).
pub fn el2_records(gic: u8, r: Option<&El2Result>) -> Vec<Record> {
    EL2_FIGURES
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let f = r.map(|r| &r[i]);
            let stats = f.and_then(|f| f.stats);
            Record {
                name: name.to_string(),
                gic,
                value: stats.map(|s| s.0),
                unit: "instructions".into(),
                baseline: None,
                baseline_source: None,
                baseline_max: None,
                ratio: None,
                max: stats.map(|s| s.2),
                samples: f.filter(|f| f.samples > 0).map(|f| f.samples as u64),
            }
        })
        .collect()
}

/// A run's log as text (empty if it cannot be read).
pub(crate) fn log_text(log: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned()
}

/// A run that failed counts in `failures` and is reported on one line:
/// `xtask: bench: <what>: unavailable (<the error's first line>)`.
pub(crate) fn count_unavailable<T>(
    what: &str,
    r: &std::result::Result<T, String>,
    failures: &mut usize,
) {
    if let Err(e) = r {
        *failures += 1;
        println!(
            "xtask: bench: {what}: unavailable ({})",
            e.lines().next().unwrap_or("")
        );
    }
}

/// Builds `config` (a name or a path) for GICv`gic` and the bench's CPU model and describes its
/// QEMU run under `-icount`, with as many cores as the config uses: what the scheduling,
/// console, ring and llc benchmarks each run.
pub(crate) fn icount_spec(
    paths: &Paths,
    builder: &mut crate::images::Builder,
    o: &Options,
    config: &str,
    gic: u8,
    what: &str,
) -> Result<QemuSpec> {
    let mut hb = crate::images::HypervisorBuild::new(
        paths,
        &o.board,
        config,
        Some(gic),
        Vec::new(),
        false,
        None,
    )?;
    // Built for the CPU model the run uses: colors are validated against its LLC, and an image
    // whose config colors anything refuses to boot on another.
    hb.set_cpu(&o.cpu);
    println!("xtask: bench: {what}: building ...");
    let built = builder.build_hypervisor(&hb)?;
    Ok(QemuSpec {
        kernel: built.image,
        gic,
        cpu: o.cpu.clone(),
        smp: crate::util::config_cores(&hb.config_path)?,
        memory: o.memory.clone(),
        virtualization: true,
        gdb: false,
        semihosting: false,
        defmt_file: None,
        extra: ICOUNT.iter().map(|s| s.to_string()).collect(),
    })
}

pub(crate) fn timed_run(
    paths: &Paths,
    what: &str,
    spec: &QemuSpec,
    log: &Path,
    timeout: Duration,
) -> Result<Parsed> {
    println!("xtask: bench: {what}: {}", spec.describe());
    let start = Instant::now();
    let r = run_one(paths, spec, log, timeout);
    let secs = start.elapsed().as_secs_f64();
    match &r {
        Ok(p) => println!(
            "xtask: bench: {what} ok ({} figures, {secs:.1} s)",
            p.figures.len()
        ),
        Err(e) => println!("xtask: bench: {what} FAILED ({secs:.1} s): {e:#}"),
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE: &str = "\
bench: bare gicv3, 2 cpus, CNTFRQ 62500000 Hz\r
bench: loop_baseline median=0 max=1 min=0 samples=1000 unit=ticks
bench: hvc_roundtrip unavailable (bare metal)
bench: virq_latency median=0 max=0 min=0 samples=1000 unit=ticks
bench: virq_handler_latency median=7 max=7 min=7 samples=1000 unit=ticks
bench: ipi_latency median=4 max=5 min=4 samples=1000 unit=ticks
bench: done
";

    const TESSERA: &str = "\
[tessera] Tessera v0.1.0 on qemu-virt
[bench] bench: tessera gicv3, 2 cpus, CNTFRQ 62500000 Hz
[bench] bench: loop_baseline median=2 max=3 min=0 samples=1000 unit=ticks
[bench] bench: hvc_roundtrip median=30 max=41 min=29 samples=1000 unit=ticks
[bench] bench: virq_latency median=14 max=20 min=12 samples=1000 unit=ticks
[bench] bench: virq_handler_latency median=21 max=30 min=20 samples=1000 unit=ticks
[bench] bench: ipi_latency median=12 max=16 min=11 samples=1000 unit=ticks
[bench] bench: done
[tessera] vm bench off (exit 0)
";

    #[test]
    fn parses_bare_and_prefixed_lines() {
        let b = parse_log(BARE);
        assert!(b.done);
        assert_eq!(b.failed, None);
        assert_eq!(b.cntfrq, Some(62_500_000));
        assert_eq!(b.figures.len(), 4);
        assert_eq!(
            b.figure("ipi_latency"),
            Some(&Figure {
                name: "ipi_latency".into(),
                median: 4,
                max: 5,
                min: 4,
                samples: 1000,
                unit: "ticks".into()
            })
        );
        assert_eq!(
            b.unavailable,
            vec![("hvc_roundtrip".to_string(), "bare metal".to_string())]
        );
        let t = parse_log(TESSERA);
        assert!(t.done);
        assert_eq!(t.figures.len(), 5);
        assert_eq!(t.figure("hvc_roundtrip").map(|f| f.median), Some(30));
    }

    #[test]
    fn failure_and_missing_done() {
        let p = parse_log("[bench] bench: loop_baseline median=0 max=1 min=0 samples=10 unit=ticks\n[bench] bench: FAILED ipi_latency: cpu 1 did not come up\n");
        assert!(!p.done);
        assert_eq!(
            p.failed.as_deref(),
            Some("ipi_latency: cpu 1 did not come up")
        );
        // Malformed figure lines are not figures.
        let p = parse_log("bench: x median=1 max=2 min=0 samples=ten unit=ticks\n");
        assert!(p.figures.is_empty());
    }

    #[test]
    fn ratio_logic() {
        assert_eq!(ratio(Some(14), Some(2)), Some(7.0));
        assert_eq!(ratio(Some(14), Some(0)), None);
        assert_eq!(ratio(None, Some(2)), None);
        assert_eq!(ratio(Some(3), None), None);
    }

    #[test]
    fn records_pick_baselines() {
        let b = parse_log(BARE);
        let t = parse_log(TESSERA);
        let r = records(3, Some(&t), Some(&b));
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, KNOWN.to_vec());
        let get = |n: &str| r.iter().find(|r| r.name == n).unwrap();
        // Bare figure present: ratio to it.
        let ipi = get("ipi_latency");
        assert_eq!(
            (ipi.value, ipi.baseline, ipi.ratio, ipi.max, ipi.samples),
            (Some(12), Some(4), Some(3.0), Some(16), Some(1000))
        );
        assert_eq!(ipi.baseline_source, Some(BaselineSource::Bare));
        assert_eq!(ratio_cell(ipi), "3.00x");
        // Bare figure 0: no ratio, said so.
        let virq = get("virq_latency");
        assert_eq!(
            (virq.value, virq.baseline, virq.ratio),
            (Some(14), Some(0), None)
        );
        assert_eq!(ratio_cell(virq), "bare=0");
        // No bare equivalent: against the Tessera run's loop_baseline.
        let hvc = get("hvc_roundtrip");
        assert_eq!(hvc.baseline_source, Some(BaselineSource::Loop));
        assert_eq!((hvc.baseline, hvc.ratio), (Some(2), Some(15.0)));
        assert_eq!(ratio_cell(hvc), "15.00x loop");
        // Tessera unavailable: values null, bare baselines kept, required names present.
        let r = records(2, None, Some(&b));
        let hvc = r.iter().find(|r| r.name == "hvc_roundtrip").unwrap();
        assert_eq!((hvc.value, hvc.ratio), (None, None));
        assert_eq!(ratio_cell(hvc), "-");
        let ipi = r.iter().find(|r| r.name == "ipi_latency").unwrap();
        assert_eq!(ipi.baseline, Some(4));
        // Nothing at all: still the required records.
        let r = records(3, None, None);
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, REQUIRED.to_vec());
    }

    #[test]
    fn json_and_table() {
        let res = [
            GicResult {
                gic: 3,
                tessera: Ok(parse_log(TESSERA)),
                bare: Ok(parse_log(BARE)),
            },
            GicResult {
                gic: 2,
                tessera: Err("build failed".into()),
                bare: Ok(parse_log(BARE)),
            },
        ];
        let recs: Vec<Record> = res.iter().flat_map(GicResult::records).collect();
        let j = to_json(&recs);
        assert!(j.starts_with("[\n") && j.ends_with("]\n"), "{j}");
        assert!(
            j.contains(
                "{\"name\": \"ipi_latency\", \"gic\": 3, \"value\": 12, \"unit\": \"ticks\", \
             \"baseline\": 4, \"ratio\": 3.0000, \"max\": 16, \"samples\": 1000, \
             \"baseline_source\": \"bare\", \"baseline_max\": 5, \"delta\": 8}"
            ),
            "{j}"
        );
        assert!(
            j.contains("\"name\": \"hvc_roundtrip\", \"gic\": 2, \"value\": null"),
            "{j}"
        );
        assert_eq!(j.matches("\"name\"").count(), recs.len());
        assert_eq!(json_str("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
        let t = table(&res);
        assert!(t.contains("GICv3") && t.contains("GICv2"), "{t}");
        let ipi = t.lines().find(|l| l.starts_with("ipi_latency")).unwrap();
        assert!(
            ipi.contains("12/16") && ipi.contains("4/5") && ipi.contains("3.00x"),
            "{t}"
        );
        assert!(ipi.contains("unavailable"), "{t}");
        let n = notes(&res);
        assert!(n.iter().any(|l| l.contains("bare=0")), "{n:?}");
        assert!(n.iter().any(|l| l.contains("16 ns")), "{n:?}");
        assert!(
            n.iter()
                .any(|l| l.starts_with("GICv2 Tessera: build failed")),
            "{n:?}"
        );
    }

    #[test]
    fn el2_table_and_records() {
        let fig = |med, n| El2Figure {
            stats: Some((med, med - 70, med + 10)),
            samples: n,
            top: vec![(120.5, "tessera::irq::handle".to_string())],
        };
        let traced = vec![
            (3, Ok([fig(450, 1000), fig(801, 1001)])),
            (2, Err("QEMU exited with status 1".to_string())),
        ];
        let t = el2_table(&traced);
        let virq = t.lines().find(|l| l.starts_with("virq (timer)")).unwrap();
        assert!(
            virq.contains("450 [380..460] 1000") && virq.contains("unavailable"),
            "{t}"
        );
        let ipi = t.lines().find(|l| l.starts_with("ipi (receiver")).unwrap();
        assert!(ipi.contains("801 [731..811] 1001"), "{t}");
        assert!(
            t.contains("GICv3 virq (timer): top functions")
                && t.contains("   120.5  tessera::irq::handle"),
            "{t}"
        );
        let mut recs = el2_records(3, traced[0].1.as_ref().ok());
        recs.extend(el2_records(2, None));
        let j = to_json(&recs);
        assert!(
            j.contains(
                "{\"name\": \"el2_insns_virq\", \"gic\": 3, \"value\": 450, \"unit\": \
                 \"instructions\", \"baseline\": null, \"ratio\": null, \"max\": 460, \
                 \"samples\": 1000, \"baseline_source\": null, \"baseline_max\": null, \
                 \"delta\": null}"
            ),
            "{j}"
        );
        assert!(
            j.contains("\"name\": \"el2_insns_ipi\", \"gic\": 2, \"value\": null"),
            "{j}"
        );
    }
}
