//! `cargo xtask bench`'s channel figures (issue #9): the `ring` guest (guests/ring) in configs
//! generated here (written to `target/bench/ring/*.toml`, one per run), under the same
//! `-icount shift=0,sleep=off` as every bench run.
//!
//! - `ring_hi_latency`: one-way latency (send time in the message → receive, `CNTVCT` of both
//!   VMs; Tessera keeps `CNTVOFF` at 0) of 10 000 class-7 messages (32 B, one every 243 µs,
//!   the sender sleeping in `wfi` on its virtual timer between them) from `hi` to `rx`, with
//!   three low-priority flooders (`flood-a..c`, 1000-B messages as fast as they can, each on a
//!   channel of its own, coalesced doorbells) idle (`ms=0`) or flooding. `rx` receives strictly
//!   by priority, one message at a time, highest class first across its channels.
//! - `ring_fifo_hi_latency` (the baseline): the same VMs and traffic, but the `hi` channel has a
//!   single class and `rx` serves its channels round robin, up to 64 messages from each per turn
//!   (`order=rr batch=64`): the model of a driver domain that serves its queues in turn, in
//!   batches, with no notion of priority (Xen's netback). A hi message waits behind whatever
//!   batches of the other channels come first.
//!
//!   In three layouts: `core`: everything on one QEMU core (`-smp 1`) under fixed-priority
//!   servers (`hi` above `rx` above the flooders), where `-icount` is deterministic, `rx` with
//!   budget enough to keep up with the flooders' budgets; `core-busy`: the same with `rx`
//!   overloaded (its rings fill); `smp`: each VM on a core of its own (`-smp 5`), where QEMU
//!   runs the cores in turn (one instruction stream), so a message can wait for the receiver's
//!   core to get its turn.
//! - `ring_throughput_64` / `_1500`: 100 000 / 20 000 messages of 64 / 1500 B through one class
//!   (512 / 64 slots) from `tx` (core 1) to `rx` (core 0), exclusive cores, which `-icount` runs
//!   in turn, so the figure is that of the two sides' work serialised on one instruction stream
//!   (`tx` sleeps 20 µs in `wfi` when the class is full, so `rx` gets the CPU); payload built
//!   once, `rx` checks sequence numbers. Bytes / (last receive − first send) against an in-guest copy of the same
//!   bytes in chunks of the message size (`rx`, afterwards).
//! - `doorbells_per_s`: doorbell interrupts taken per second by `rx` while one flooder on
//!   another core sends 20 000 256-B messages as fast as the class takes them, with
//!   `notify = "coalesced"` against `notify = "every"` (`-smp 2`).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use regex::Regex;

use super::{timed_run, BaselineSource, Options, Record};
use crate::images::Builder;
use crate::util::Paths;

/// Counter frequency of QEMU virt (62.5 MHz): ticks per µs.
const TICKS_PER_US: f64 = 62.5;
/// Hi messages per latency run.
const HI_MESSAGES: u32 = 10_000;
/// Their period (µs): not a divisor of the servers' periods (250, 500 µs), so that the
/// messages arrive at every phase of the receiver's budget period rather than at two.
const HI_PERIOD_US: u64 = 243;
/// When the senders start (µs after their boot), so that `rx` is ready.
const START_US: u64 = 5_000;

/// Where the VMs run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layout {
    /// Everything on QEMU core 0 under fixed-priority servers; `rx`'s budget exceeds what the
    /// flooders' budgets let them send, so it keeps up.
    Core,
    /// The same, but `rx`'s budget is smaller than the flooders' traffic needs: the receiver
    /// is the bottleneck and its rings fill.
    CoreBusy,
    /// One core per VM.
    Smp,
}

impl Layout {
    fn key(self) -> &'static str {
        match self {
            Layout::Core => "core",
            Layout::CoreBusy => "core-busy",
            Layout::Smp => "smp",
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Layout::Core => {
                "one QEMU core, fixed priority hi > rx > flooders, rx keeps up (hi 20/250 us, \
                 rx 225/500 us, flooders 3 x 800/10000 us)"
            }
            Layout::CoreBusy => {
                "one QEMU core, fixed priority hi > rx > flooders, rx overloaded (hi 20/250 us, \
                 rx 100/500 us, flooders 3 x 1500/10000 us)"
            }
            Layout::Smp => "a core per VM (-smp 5; QEMU runs the cores in turn)",
        }
    }
}

/// The latency layouts, in table order.
const LAYOUTS: [Layout; 3] = [Layout::Core, Layout::CoreBusy, Layout::Smp];

/// One run: what the generated config holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Run {
    /// `ring_hi_latency`: layout, FIFO baseline, flooders on.
    Latency {
        layout: Layout,
        fifo: bool,
        flood: bool,
    },
    /// `ring_throughput_<size>`.
    Throughput { size: u32 },
    /// `doorbells_per_s`: coalesced or every.
    Doorbells { coalesced: bool },
}

impl Run {
    /// The config's name (file stem, image name).
    pub fn name(self) -> String {
        match self {
            Run::Latency {
                layout,
                fifo,
                flood,
            } => format!(
                "ring-bench-{}-{}-{}",
                layout.key(),
                if fifo { "fifo" } else { "prio" },
                if flood { "flood" } else { "idle" }
            ),
            Run::Throughput { size } => format!("ring-bench-tput-{size}"),
            Run::Doorbells { coalesced } => format!(
                "ring-bench-doorbells-{}",
                if coalesced { "coalesced" } else { "every" }
            ),
        }
    }

    /// The config's text.
    pub fn config(self) -> String {
        match self {
            Run::Latency {
                layout,
                fifo,
                flood,
            } => latency_config(layout, fifo, flood),
            Run::Throughput { size } => throughput_config(size),
            Run::Doorbells { coalesced } => doorbells_config(coalesced),
        }
    }
}

/// Every run, in order.
pub fn runs() -> Vec<Run> {
    let mut v = Vec::new();
    for layout in LAYOUTS {
        for fifo in [false, true] {
            for flood in [false, true] {
                v.push(Run::Latency {
                    layout,
                    fifo,
                    flood,
                });
            }
        }
    }
    v.push(Run::Throughput { size: 64 });
    v.push(Run::Throughput { size: 1500 });
    v.push(Run::Doorbells { coalesced: false });
    v.push(Run::Doorbells { coalesced: true });
    v
}

fn vm(out: &mut String, name: &str, cpu: u32, bootargs: &str) {
    let _ = write!(
        out,
        "\n[[vms]]\nname = \"{name}\"\ncpus = [{cpu}]\nmemory = [{{ size = 0x100_0000 }}]\n\
         image = \"ring\"\nbootargs = \"{bootargs}\"\n"
    );
}

/// A channel `name` from `from` to `to` at `ipa_to` in the receiver (0x5000_0000 in the sender)
/// with `classes` (TOML inline tables).
fn channel(out: &mut String, name: &str, from: &str, to: &str, ipa_to: u64, classes: &[String]) {
    let _ = write!(
        out,
        "\n[[channels]]\nname = \"{name}\"\nfrom = \"{from}\"\nto = \"{to}\"\n\
         ipa_from = 0x5000_0000\nipa_to = {ipa_to:#x}\nclasses = [\n"
    );
    for c in classes {
        let _ = writeln!(out, "    {c},");
    }
    out.push_str("]\n");
}

fn latency_config(layout: Layout, fifo: bool, flood: bool) -> String {
    const FLOODERS: [&str; 3] = ["a", "b", "c"];
    let mut out = format!(
        "# Generated by `cargo xtask bench` (ci/src/bench_ring.rs): ring_hi_latency, layout {}, \
         {}, flooders {}.\n",
        layout.key(),
        if fifo {
            "FIFO baseline (single-class rings, round robin in batches of 64)"
        } else {
            "priority classes"
        },
        if flood { "on" } else { "idle" }
    );
    let cpu = |i: u32| match layout {
        Layout::Core | Layout::CoreBusy => 0,
        Layout::Smp => i,
    };
    let order = if fifo {
        "order=rr batch=64"
    } else {
        "order=prio"
    };
    vm(
        &mut out,
        "rx",
        cpu(0),
        &format!("mode=rx expect=hi:{HI_MESSAGES} hi=hi timeout_ms=30000 bench=1 {order}"),
    );
    let hi_class = if fifo { 0 } else { 7 };
    vm(
        &mut out,
        "hi",
        cpu(1),
        &format!(
            "mode=send chan=hi class={hi_class} n={HI_MESSAGES} period_us={HI_PERIOD_US} \
             size=32 start_us={START_US}"
        ),
    );
    // The flooders outlast the hi sender.
    let ms = if flood {
        START_US / 1000 + u64::from(HI_MESSAGES) * HI_PERIOD_US / 1000 + 100
    } else {
        0
    };
    for (i, f) in FLOODERS.iter().enumerate() {
        vm(
            &mut out,
            &format!("flood-{f}"),
            cpu(2 + i as u32),
            &format!("mode=flood chan=bulk-{f} class=0 ms={ms} size=1000"),
        );
    }
    let class = |irq: u32, prio: u32, notify: &str| {
        format!(
            "{{ slots = 16, slot_size = 64, notify = \"{notify}\", irq = {irq}, priority = {prio:#x} }}"
        )
    };
    let hi_classes: Vec<String> = if fifo {
        vec![class(64, 0xa0, "every")]
    } else {
        (0..8)
            .map(|k| class(64 + k, if k == 7 { 0x40 } else { 0xa0 }, "every"))
            .collect()
    };
    channel(&mut out, "hi", "hi", "rx", 0x5000_0000, &hi_classes);
    for (i, f) in FLOODERS.iter().enumerate() {
        let bulk = format!(
            "{{ slots = 64, slot_size = 1024, notify = \"coalesced\", irq = {}, priority = {:#x} }}",
            80 + i,
            if fifo { 0xa0 } else { 0xc0 }
        );
        channel(
            &mut out,
            &format!("bulk-{f}"),
            &format!("flood-{f}"),
            "rx",
            0x5010_0000 + 0x10_0000 * i as u64,
            &[bulk],
        );
    }
    let (rx_budget, flood_budget) = match layout {
        Layout::Core => (225, 800),
        Layout::CoreBusy => (100, 1500),
        Layout::Smp => return out,
    };
    let _ = write!(
        out,
        "\n[[scheduling]]\ncpu = 0\npolicy = \"fixed-priority\"\nservers = [\n    \
         {{ vm = \"hi\", vcpu = 0, kind = \"deferrable\", budget_us = 20, period_us = 250, priority = 0 }},\n    \
         {{ vm = \"rx\", vcpu = 0, kind = \"deferrable\", budget_us = {rx_budget}, period_us = 500, priority = 1 }},\n"
    );
    for (i, f) in FLOODERS.iter().enumerate() {
        let _ = writeln!(
            out,
            "    {{ vm = \"flood-{f}\", vcpu = 0, kind = \"periodic\", budget_us = {flood_budget}, \
             period_us = 10000, priority = {} }},",
            2 + i
        );
    }
    out.push_str("]\n");
    out
}

fn throughput_config(size: u32) -> String {
    let (n, slots) = if size <= 64 {
        (100_000, 512)
    } else {
        (20_000, 64)
    };
    let mut out = format!(
        "# Generated by `cargo xtask bench` (ci/src/bench_ring.rs): ring_throughput, {n} \
         messages of {size} B, tx on core 1, rx on core 0 (QEMU runs them in turn).\n"
    );
    vm(
        &mut out,
        "rx",
        0,
        &format!("mode=rx expect=t:{n} timeout_ms=30000 bench=1 verify=seq memcpy=1"),
    );
    vm(
        &mut out,
        "tx",
        1,
        &format!(
            "mode=send chan=t class=0 n={n} size={size} fast=1 full_sleep_us=20 \
             start_us={START_US}"
        ),
    );
    channel(
        &mut out,
        "t",
        "tx",
        "rx",
        0x5000_0000,
        &[format!(
            "{{ slots = {slots}, slot_size = {}, notify = \"coalesced\", irq = 48 }}",
            size.max(16)
        )],
    );
    out
}

fn doorbells_config(coalesced: bool) -> String {
    let notify = if coalesced { "coalesced" } else { "every" };
    let mut out = format!(
        "# Generated by `cargo xtask bench` (ci/src/bench_ring.rs): doorbells_per_s, one \
         flooder on core 1 into rx on core 0, notify = {notify}.\n"
    );
    vm(
        &mut out,
        "rx",
        0,
        "mode=rx expect=bulk:20000 timeout_ms=30000 bench=1",
    );
    vm(
        &mut out,
        "flood",
        1,
        &format!("mode=flood chan=bulk class=0 n=20000 ms=30000 size=256 start_us={START_US}"),
    );
    channel(
        &mut out,
        "bulk",
        "flood",
        "rx",
        0x5000_0000,
        &[format!(
            "{{ slots = 64, slot_size = 256, notify = \"{notify}\", irq = 48 }}"
        )],
    );
    out
}

/// `ring: bench: hi_latency ...` of `rx`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    pub median: u64,
    pub p99: u64,
    pub max: u64,
    pub samples: u64,
}

/// `ring: bench: traffic ...` of `rx`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub messages: u64,
    pub bytes: u64,
    /// First send → last receive.
    pub ticks: u64,
    pub doorbells: u64,
}

/// What a ring run's log says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RingLog {
    pub latency: Option<Latency>,
    pub traffic: Option<Traffic>,
    /// Ticks of the in-guest copy of the same bytes.
    pub memcpy_ticks: Option<u64>,
    /// Messages the flooders sent, in total.
    pub flooded: u64,
    /// Doorbell hypercalls the flooders made.
    pub flood_doorbells: u64,
}

struct Patterns {
    latency: Regex,
    traffic: Regex,
    memcpy: Regex,
    flood: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        latency: Regex::new(
            r"ring: bench: hi_latency median=(\d+) p99=(\d+) max=(\d+) min=\d+ samples=(\d+)",
        )
        .expect("valid regex"),
        traffic: Regex::new(
            r"ring: bench: traffic messages=(\d+) bytes=(\d+) ticks=(\d+) rx_ticks=\d+ doorbells=(\d+)",
        )
        .expect("valid regex"),
        memcpy: Regex::new(r"ring: bench: memcpy bytes=\d+ chunk=\d+ ticks=(\d+)")
            .expect("valid regex"),
        flood: Regex::new(r"ring: flood: \S+ class \d+: sent (\d+), Full \d+ times, doorbells (\d+)")
            .expect("valid regex"),
    })
}

/// Reads the ring bench lines of a serial log.
pub fn parse(log: &str) -> RingLog {
    let p = patterns();
    let mut out = RingLog::default();
    for line in log.lines() {
        let n = |c: &regex::Captures, i: usize| c[i].parse::<u64>().unwrap_or(0);
        if let Some(c) = p.latency.captures(line) {
            out.latency = Some(Latency {
                median: n(&c, 1),
                p99: n(&c, 2),
                max: n(&c, 3),
                samples: n(&c, 4),
            });
        } else if let Some(c) = p.traffic.captures(line) {
            out.traffic = Some(Traffic {
                messages: n(&c, 1),
                bytes: n(&c, 2),
                ticks: n(&c, 3),
                doorbells: n(&c, 4),
            });
        } else if let Some(c) = p.memcpy.captures(line) {
            out.memcpy_ticks = Some(n(&c, 1));
        } else if let Some(c) = p.flood.captures(line) {
            out.flooded += n(&c, 1);
            out.flood_doorbells += n(&c, 2);
        }
    }
    out
}

/// The outcome of each run.
pub type Runs = Vec<(Run, std::result::Result<RingLog, String>)>;

/// Builds and runs every ring config for GIC version `gic` (configs and logs in `dir/ring`);
/// returns the outcomes and the number of failed runs.
pub fn run_all(
    paths: &Paths,
    builder: &mut Builder,
    o: &Options,
    gic: u8,
    dir: &Path,
) -> Result<(Runs, usize)> {
    let dir = dir.join("ring");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let all = runs();
    let mut out: Runs = Vec::new();
    let mut failures = 0;
    for (i, run) in all.iter().enumerate() {
        let name = run.name();
        let what = format!("[ring {}/{}] {name} GICv{gic}", i + 1, all.len());
        let r = (|| -> Result<RingLog> {
            let cfg = dir.join(format!("{name}.toml"));
            std::fs::write(&cfg, run.config())
                .with_context(|| format!("cannot write {}", cfg.display()))?;
            let spec =
                super::icount_spec(paths, builder, o, &cfg.display().to_string(), gic, &what)?;
            let log = dir.join(format!("gicv{gic}-{name}.log"));
            timed_run(paths, &what, &spec, &log, o.timeout)?;
            let text = super::log_text(&log);
            Ok(parse(&text))
        })()
        .map_err(|e| format!("{e:#}"));
        super::count_unavailable(&what, &r, &mut failures);
        out.push((*run, r));
    }
    Ok((out, failures))
}

fn get(runs: &Runs, run: Run) -> Option<&RingLog> {
    runs.iter()
        .find(|(r, _)| *r == run)
        .and_then(|(_, r)| r.as_ref().ok())
}

fn lat(runs: &Runs, layout: Layout, fifo: bool, flood: bool) -> Option<Latency> {
    get(
        runs,
        Run::Latency {
            layout,
            fifo,
            flood,
        },
    )
    .and_then(|l| l.latency)
}

/// Bytes per µs (= MB/s) of `bytes` in `ticks`.
fn mb_per_s(bytes: u64, ticks: u64) -> Option<f64> {
    (ticks > 0).then(|| bytes as f64 * TICKS_PER_US / ticks as f64)
}

/// Doorbells per second.
fn per_s(t: &Traffic) -> Option<f64> {
    (t.ticks > 0).then(|| t.doorbells as f64 * TICKS_PER_US * 1e6 / t.ticks as f64)
}

/// The JSON records of the ring runs.
pub fn records(gic: u8, runs: &Runs) -> Vec<Record> {
    let mut v = Vec::new();
    for layout in LAYOUTS {
        for fifo in [false, true] {
            let flooded = lat(runs, layout, fifo, true);
            let idle = lat(runs, layout, fifo, false);
            let base = if fifo {
                "ring_fifo_hi_latency"
            } else {
                "ring_hi_latency"
            };
            for (suffix, pick) in [
                ("", (|l: &Latency| l.median) as fn(&Latency) -> u64),
                ("_p99", |l: &Latency| l.p99),
            ] {
                let value = flooded.as_ref().map(pick);
                let baseline = idle.as_ref().map(pick);
                v.push(Record {
                    name: format!("{base}{suffix}_{}", layout.key()),
                    gic,
                    value,
                    unit: "ticks".into(),
                    baseline,
                    baseline_source: idle.map(|_| BaselineSource::Unflooded),
                    baseline_max: idle.map(|l| l.max),
                    ratio: super::ratio(value, baseline),
                    max: flooded.map(|l| l.max),
                    samples: flooded.map(|l| l.samples),
                });
            }
        }
    }
    for size in [64, 1500] {
        let r = get(runs, Run::Throughput { size });
        let t = r.and_then(|r| r.traffic);
        let value = t.and_then(|t| mb_per_s(t.bytes, t.ticks));
        let baseline = r
            .and_then(|r| Some((t?.bytes, r.memcpy_ticks?)))
            .and_then(|(b, m)| mb_per_s(b, m));
        v.push(Record {
            name: format!("ring_throughput_{size}"),
            gic,
            value: value.map(|x| x.round() as u64),
            unit: "MB/s".into(),
            baseline: baseline.map(|x| x.round() as u64),
            baseline_source: baseline.map(|_| BaselineSource::Memcpy),
            baseline_max: None,
            ratio: match (value, baseline) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            },
            max: None,
            samples: t.map(|t| t.messages),
        });
    }
    let db = |coalesced| {
        get(runs, Run::Doorbells { coalesced })
            .and_then(|r| r.traffic)
            .and_then(|t| per_s(&t))
    };
    let (c, e) = (db(true), db(false));
    v.push(Record {
        name: "doorbells_per_s".into(),
        gic,
        value: c.map(|x| x.round() as u64),
        unit: "1/s".into(),
        baseline: e.map(|x| x.round() as u64),
        baseline_source: e.map(|_| BaselineSource::EveryMessage),
        baseline_max: None,
        ratio: match (c, e) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        },
        max: None,
        samples: get(runs, Run::Doorbells { coalesced: true })
            .and_then(|r| r.traffic)
            .map(|t| t.messages),
    });
    v
}

fn us(t: u64) -> String {
    format!("{:.1}", t as f64 / TICKS_PER_US)
}

fn cell(l: Option<Latency>) -> String {
    l.map_or_else(
        || "unavailable".to_string(),
        |l| format!("{}/{}/{}", us(l.median), us(l.p99), us(l.max)),
    )
}

fn ratio2(a: Option<Latency>, b: Option<Latency>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0 && b.p99 > 0 => format!(
            "{:.2}x / {:.2}x",
            a.median as f64 / b.median as f64,
            a.p99 as f64 / b.p99 as f64
        ),
        _ => "-".to_string(),
    }
}

/// The ring tables: latencies per layout (priority and FIFO side by side), throughput,
/// doorbells.
pub fn table(gic: u8, runs: &Runs) -> String {
    const N: usize = 34;
    const W: usize = 24;
    let mut out = String::new();
    for layout in LAYOUTS {
        let _ = writeln!(
            out,
            "GICv{gic} ring_hi_latency, {} (us: median/p99/max over {HI_MESSAGES})",
            layout.describe()
        );
        let _ = writeln!(
            out,
            "{:N$} | {:>W$} | {:>W$}",
            "", "priority classes", "FIFO (rr, batch 64)"
        );
        let _ = writeln!(out, "{}", "-".repeat(N + 6 + 2 * W));
        for (label, flood) in [("unflooded", false), ("3 flooders", true)] {
            let _ = writeln!(
                out,
                "{:N$} | {:>W$} | {:>W$}",
                label,
                cell(lat(runs, layout, false, flood)),
                cell(lat(runs, layout, true, flood))
            );
        }
        let _ = writeln!(
            out,
            "{:N$} | {:>W$} | {:>W$}",
            "flooded/unflooded (median / p99)",
            ratio2(
                lat(runs, layout, false, true),
                lat(runs, layout, false, false)
            ),
            ratio2(
                lat(runs, layout, true, true),
                lat(runs, layout, true, false)
            )
        );
        let flooded = |fifo| {
            get(
                runs,
                Run::Latency {
                    layout,
                    fifo,
                    flood: true,
                },
            )
            .and_then(|r| {
                let hi = r.latency.map_or(0, |l| l.samples);
                r.traffic
                    .map(|t| (t.messages.saturating_sub(hi), r.flooded))
            })
        };
        if let (Some((a, fa)), Some((b, fb))) = (flooded(false), flooded(true)) {
            let _ = writeln!(
                out,
                "{:N$} | {:>W$} | {:>W$}",
                "bulk received / flooders sent",
                format!("{a} / {fa}"),
                format!("{b} / {fb}")
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "GICv{gic} ring_throughput (tx, rx on 2 cores in turn) | ring MB/s | memcpy MB/s | ratio"
    );
    for size in [64, 1500] {
        let r = get(runs, Run::Throughput { size });
        let t = r.and_then(|r| r.traffic);
        let a = t.and_then(|t| mb_per_s(t.bytes, t.ticks));
        let b = r
            .and_then(|r| Some((t?.bytes, r.memcpy_ticks?)))
            .and_then(|(b, m)| mb_per_s(b, m));
        let f = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| format!("{x:.0}"));
        let q = match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "{:47} | {:>9} | {:>11} | {q}",
            format!(
                "  {size} B x {}",
                t.map_or_else(|| "-".to_string(), |t| t.messages.to_string())
            ),
            f(a),
            f(b)
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "GICv{gic} doorbells_per_s (rx, one flooder on another core) | taken/s | taken | hypercalls | messages"
    );
    for (label, coalesced) in [("every", false), ("coalesced", true)] {
        let r = get(runs, Run::Doorbells { coalesced });
        let t = r.and_then(|r| r.traffic);
        let _ = writeln!(
            out,
            "{:55} | {:>7} | {:>5} | {:>10} | {}",
            format!("  notify = {label}"),
            t.and_then(|t| per_s(&t))
                .map_or_else(|| "-".to_string(), |x| format!("{x:.0}")),
            t.map_or_else(|| "-".to_string(), |t| t.doorbells.to_string()),
            r.map_or_else(|| "-".to_string(), |r| r.flood_doorbells.to_string()),
            t.map_or_else(|| "-".to_string(), |t| t.messages.to_string())
        );
    }
    out
}

/// What the ring figures are, for the notes under the table.
pub const NOTES: [&str; 4] = [
    "ring_hi_latency: one-way, send time written in the message -> its receive, 10000 class-7 \
     32-B messages every 243 us (sender sleeping in wfi on its virtual timer); flooders: three \
     VMs sending 1000-B messages on class 0 of their own channels as fast as the rings take them",
    "FIFO baseline: the same traffic, single-class rings, rx serving its channels round robin, \
     up to 64 messages each per turn (a driver domain's batches, no priority)",
    "ring_throughput: payload built once (rx checks sequence numbers); bytes / (last receive - \
     first send), tx and rx on two exclusive cores that -icount runs in turn (their work \
     serialised); memcpy: rx copying the same bytes in chunks of the message size",
    "doorbells_per_s: doorbell interrupts rx took per second of the flood; hypercalls = the \
     flooder's Doorbell calls (every: one per message, a no-op when already pending)",
];

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[rx] ring: rx: ok, doorbells taken 12
[rx] ring: bench: hi_latency median=100 p99=250 max=900 min=40 samples=10000 unit=ticks
[rx] ring: bench: traffic messages=10200 bytes=520000 ticks=625000 rx_ticks=700000 doorbells=12
[rx] ring: bench: memcpy bytes=520000 chunk=50 ticks=62500
[rx] bench: done
[flood-a] ring: flood: bulk-a class 0: sent 100, Full 3 times, doorbells 7 (already pending 0)
[flood-b] ring: flood: bulk-b class 0: sent 50, Full 0 times, doorbells 2 (already pending 1)
";

    #[test]
    fn parses_the_rx_lines() {
        let l = parse(LOG);
        assert_eq!(
            l.latency,
            Some(Latency {
                median: 100,
                p99: 250,
                max: 900,
                samples: 10000
            })
        );
        let t = l.traffic.unwrap();
        assert_eq!(
            (t.messages, t.bytes, t.ticks, t.doorbells),
            (10200, 520000, 625000, 12)
        );
        assert_eq!(l.memcpy_ticks, Some(62500));
        assert_eq!((l.flooded, l.flood_doorbells), (150, 9));
        assert_eq!(parse("nothing"), RingLog::default());
    }

    #[test]
    fn configs_are_distinct_and_complete() {
        let all = runs();
        let mut names: Vec<String> = all.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        for r in &all {
            let c = r.config();
            let v: toml::Value = toml::from_str(&c).unwrap_or_else(|e| panic!("{c}\n{e}"));
            assert!(v.get("vms").is_some() && v.get("channels").is_some(), "{c}");
        }
        let core = Run::Latency {
            layout: Layout::Core,
            fifo: true,
            flood: true,
        }
        .config();
        assert!(core.contains("order=rr batch=64") && core.contains("ms=2535"));
        assert!(core.contains("policy = \"fixed-priority\""));
        let idle = Run::Latency {
            layout: Layout::Smp,
            fifo: false,
            flood: false,
        }
        .config();
        assert!(
            idle.contains("ms=0") && idle.contains("cpus = [4]") && !idle.contains("scheduling")
        );
    }

    #[test]
    fn records_and_table() {
        let flooded = parse(LOG);
        let mut idle = parse(LOG);
        idle.latency = Some(Latency {
            median: 50,
            p99: 100,
            max: 200,
            samples: 10000,
        });
        let runs: Runs = vec![
            (
                Run::Latency {
                    layout: Layout::Core,
                    fifo: false,
                    flood: true,
                },
                Ok(flooded.clone()),
            ),
            (
                Run::Latency {
                    layout: Layout::Core,
                    fifo: false,
                    flood: false,
                },
                Ok(idle),
            ),
            (Run::Throughput { size: 64 }, Ok(flooded.clone())),
            (Run::Doorbells { coalesced: true }, Err("timed out".into())),
        ];
        let r = records(3, &runs);
        let get = |n: &str| r.iter().find(|r| r.name == n).unwrap();
        let h = get("ring_hi_latency_core");
        assert_eq!(
            (h.value, h.baseline, h.ratio),
            (Some(100), Some(50), Some(2.0))
        );
        assert_eq!(get("ring_hi_latency_p99_core").ratio, Some(2.5));
        assert_eq!(get("ring_fifo_hi_latency_smp").value, None);
        let t = get("ring_throughput_64");
        // 520000 B in 10000 us = 52 MB/s; memcpy in 1000 us = 520 MB/s.
        assert_eq!((t.value, t.baseline), (Some(52), Some(520)));
        assert!((t.ratio.unwrap() - 0.1).abs() < 1e-9);
        assert_eq!(get("doorbells_per_s").value, None);
        let text = table(3, &runs);
        assert!(text.contains("1.6/4.0/14.4"), "{text}");
        assert!(text.contains("2.00x / 2.50x"), "{text}");
        assert!(text.contains("unavailable"), "{text}");
    }
}
