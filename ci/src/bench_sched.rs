//! `cargo xtask bench`'s scheduling figures: the bench guest's shared-core modes
//! (guests/bench/src/sched.rs) in the `bench-sched-*` configs, one QEMU core each
//! (`-smp 1`: under `-icount` a second busy core would take turns with the first and show up as
//! gaps in its counter), each figure against the same measurement on an exclusive core in the
//! same `cargo xtask bench` (config `bench-sched-excl`).
//!
//! - `vcpu_switch`: `virq_latency` of the probe (virtual timer deadline → IRQ vector entry)
//!   while a spinner runs on its core (fixed priority, the probe above): the spinner's exit on
//!   the hypervisor timer, the decision, saving the spinner and loading the probe; against the
//!   same probe alone on an exclusive core.
//! - `vcpu_switch_gap`: the spinner's side of the same run: how long it was away per probe
//!   wake-up (two switches, the probe's timer interrupt and its `wfi` trap); no exclusive
//!   equivalent.
//! - `sched_overhead_nN`: the probe's null-hypercall round trip on an EDF core with N servers
//!   (N − 1 idle VMs blocked in `wfi`), against the same on an exclusive core; `delta` is the
//!   scheduler's cost per decision.
//! - `budget_run` / `budget_overrun`: two spinners with IRQs masked on an EDF core; the one with
//!   budget Θ measures its runs (counter progress without an absence above 20 µs) and reports
//!   run − Θ; no exclusive equivalent (an exclusive core has no budget).
//! - `release_jitter`: periodic jobs released by the virtual timer (start − release) beside an
//!   `rt-bench spin=1` neighbour (fixed priority, the jobs above), against the same jobs alone on
//!   an exclusive core.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::{timed_run, BaselineSource, Figure, Options, Parsed, Record};
use crate::images::Builder;
use crate::util::Paths;

/// The QEMU runs: (key, config). The exclusive run comes first.
pub const RUNS: [(&str, &str); 9] = [
    ("excl", "bench-sched-excl"),
    ("n1", "bench-sched-n1"),
    ("n2", "bench-sched-n2"),
    ("n4", "bench-sched-n4"),
    ("n8", "bench-sched-n8"),
    ("n16", "bench-sched-n16"),
    ("switch", "bench-sched-switch"),
    ("overrun", "bench-sched-overrun"),
    ("jitter", "bench-sched-jitter"),
];

/// What a scheduling figure is held against.
#[derive(Clone, Copy)]
enum Against {
    /// This guest figure of the exclusive run.
    Exclusive(&'static str),
    /// This guest figure of the same run (`budget`: the server's budget).
    Budget(&'static str),
    Nothing,
}

/// One scheduling figure: record name, run, guest figure, baseline.
struct Spec {
    name: &'static str,
    run: &'static str,
    figure: &'static str,
    against: Against,
}

const SPECS: [Spec; 10] = [
    Spec {
        name: "vcpu_switch",
        run: "switch",
        figure: "virq_latency",
        against: Against::Exclusive("virq_latency"),
    },
    Spec {
        name: "vcpu_switch_gap",
        run: "switch",
        figure: "spin_gap",
        against: Against::Nothing,
    },
    Spec {
        name: "sched_overhead_n1",
        run: "n1",
        figure: "hvc_roundtrip",
        against: Against::Exclusive("hvc_roundtrip"),
    },
    Spec {
        name: "sched_overhead_n2",
        run: "n2",
        figure: "hvc_roundtrip",
        against: Against::Exclusive("hvc_roundtrip"),
    },
    Spec {
        name: "sched_overhead_n4",
        run: "n4",
        figure: "hvc_roundtrip",
        against: Against::Exclusive("hvc_roundtrip"),
    },
    Spec {
        name: "sched_overhead_n8",
        run: "n8",
        figure: "hvc_roundtrip",
        against: Against::Exclusive("hvc_roundtrip"),
    },
    Spec {
        name: "sched_overhead_n16",
        run: "n16",
        figure: "hvc_roundtrip",
        against: Against::Exclusive("hvc_roundtrip"),
    },
    Spec {
        name: "budget_run",
        run: "overrun",
        figure: "budget_run",
        against: Against::Budget("budget"),
    },
    Spec {
        name: "budget_overrun",
        run: "overrun",
        figure: "budget_overrun",
        against: Against::Nothing,
    },
    Spec {
        name: "release_jitter",
        run: "jitter",
        figure: "release_jitter",
        against: Against::Exclusive("release_jitter"),
    },
];

/// The outcome of each run, by key (missing: not run).
pub type Runs = Vec<(&'static str, std::result::Result<Parsed, String>)>;

fn run_of<'a>(runs: &'a Runs, key: &str) -> Option<&'a Parsed> {
    runs.iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, r)| r.as_ref().ok())
}

/// The scheduling records of GIC version `gic` from the runs.
pub fn records(gic: u8, runs: &Runs) -> Vec<Record> {
    let excl = run_of(runs, "excl");
    SPECS
        .iter()
        .map(|s| {
            let run = run_of(runs, s.run);
            let t: Option<&Figure> = run.and_then(|p| p.figure(s.figure));
            let (b, source): (Option<&Figure>, _) = match s.against {
                Against::Exclusive(e) => {
                    (excl.and_then(|p| p.figure(e)), BaselineSource::Exclusive)
                }
                Against::Budget(e) => (run.and_then(|p| p.figure(e)), BaselineSource::Budget),
                Against::Nothing => (None, BaselineSource::Exclusive),
            };
            let value = t.map(|f| f.median);
            let baseline = b.map(|f| f.median);
            Record {
                name: s.name.to_string(),
                gic,
                value,
                unit: t
                    .or(b)
                    .map_or_else(|| "ticks".to_string(), |f| f.unit.clone()),
                baseline,
                baseline_source: b.map(|_| source),
                baseline_max: b.map(|f| f.max),
                ratio: super::ratio(value, baseline),
                max: t.map(|f| f.max),
                samples: t.map(|f| f.samples),
            }
        })
        .collect()
}

/// value − baseline (signed), when both exist.
pub fn delta(r: &Record) -> Option<i64> {
    match (r.value, r.baseline) {
        (Some(v), Some(b)) => Some(v as i64 - b as i64),
        _ => None,
    }
}

/// The scheduling table: shared-core median/max, exclusive (or budget) median/max, delta of
/// the medians, ratio.
pub fn table(gic: u8, records: &[Record]) -> String {
    const N: usize = 22;
    const W: usize = 15;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:N$} | {:>W$} {:>W$} {:>8} {:>8}",
        format!("GICv{gic} (ticks)"),
        "shared med/max",
        "excl./budget",
        "delta",
        "ratio"
    );
    let _ = writeln!(out, "{}", "-".repeat(N + 3 + 2 * W + 2 + 18));
    let mm = |m: Option<u64>, x: Option<u64>| match (m, x) {
        (Some(m), Some(x)) => format!("{m}/{x}"),
        _ => "-".to_string(),
    };
    for r in records {
        let d = delta(r).map_or_else(|| "-".to_string(), |d| format!("{d:+}"));
        let q = r
            .ratio
            .map_or_else(|| "-".to_string(), |q| format!("{q:.2}x"));
        let _ = writeln!(
            out,
            "{:N$} | {:>W$} {:>W$} {:>8} {:>8}",
            r.name,
            mm(r.value, r.max),
            mm(r.baseline, r.baseline_max),
            d,
            q
        );
    }
    out
}

/// What each scheduling figure is, for the notes under the table.
pub const NOTES: [&str; 5] = [
    "vcpu_switch: virtual-timer deadline -> IRQ entry of a probe VM blocked in wfi while a \
     spinner VM runs on its fixed-priority core (spinner exit on CNTHP, decision, save spinner, \
     load probe, timer injection); exclusive: the same probe alone on its core",
    "vcpu_switch_gap: the spinner's absence per probe wake-up (two switches + the probe's \
     interrupt and wfi trap); min/median/max of jumps of 5..1250 ticks in its CNTVCT reads",
    "sched_overhead_nN: null hypercall round trip on an EDF core with N servers (N-1 VMs blocked \
     in wfi); delta = the shared core's cost per exit (an exit that changes nothing the \
     scheduler decides on resumes without a decision)",
    "budget_run/budget_overrun: a spinner with IRQs masked, periodic server of budget 250 us \
     beside another spinner (EDF): its runs (against the budget in ticks), and run - budget \
     (0 when shorter)",
    "release_jitter: start - release of periodic jobs (virtual-timer release, wfi with IRQs \
     masked) beside an rt-bench spin=1 neighbour below them (fixed priority); exclusive: the \
     same jobs alone",
];

/// Builds and runs every scheduling config for GIC version `gic` (logs in `dir`); returns the
/// outcomes and the number of failed runs.
pub fn run_all(
    paths: &Paths,
    builder: &mut Builder,
    o: &Options,
    gic: u8,
    dir: &Path,
) -> Result<(Runs, usize)> {
    let mut runs: Runs = Vec::new();
    let mut failures = 0;
    for (i, (key, config)) in RUNS.iter().enumerate() {
        let what = format!("[sched {}/{}] {config} GICv{gic}", i + 1, RUNS.len());
        let r = (|| -> Result<Parsed> {
            let spec = super::icount_spec(paths, builder, o, config, gic, &what)?;
            timed_run(
                paths,
                &what,
                &spec,
                &dir.join(format!("gicv{gic}-{config}.log")),
                o.timeout,
            )
        })()
        .map_err(|e| format!("{e:#}"));
        super::count_unavailable(&what, &r, &mut failures);
        runs.push((key, r));
    }
    Ok((runs, failures))
}

#[cfg(test)]
mod tests {
    use super::super::parse_log;
    use super::*;

    const EXCL: &str = "\
[probe] bench: probe (tessera), tests hvc,virq,release, CNTFRQ 62500000 Hz
[probe] bench: loop_baseline median=0 max=1 min=0 samples=1000 unit=ticks
[probe] bench: hvc_roundtrip median=30 max=40 min=29 samples=1000 unit=ticks
[probe] bench: virq_latency median=14 max=20 min=12 samples=1000 unit=ticks
[probe] bench: release_jitter median=20 max=25 min=18 samples=300 unit=ticks
[probe] bench: done
";
    const N4: &str = "\
[probe] bench: hvc_roundtrip median=45 max=300 min=44 samples=1000 unit=ticks
[probe] bench: done
";
    const OVERRUN: &str = "\
[theta] bench: budget_run median=15519 max=15630 min=15472 samples=150 unit=ticks
[theta] bench: budget_overrun median=0 max=5 min=0 samples=150 unit=ticks
[theta] bench: budget median=15625 max=15625 min=15625 samples=1 unit=ticks
";

    #[test]
    fn records_against_exclusive() {
        let runs: Runs = vec![
            ("excl", Ok(parse_log(EXCL))),
            ("n4", Ok(parse_log(N4))),
            ("switch", Err("timed out".into())),
            ("overrun", Ok(parse_log(OVERRUN))),
        ];
        let r = records(3, &runs);
        assert_eq!(r.len(), SPECS.len());
        let get = |n: &str| r.iter().find(|r| r.name == n).unwrap();
        let n4 = get("sched_overhead_n4");
        assert_eq!(
            (n4.value, n4.baseline, n4.max, n4.baseline_max, n4.gic),
            (Some(45), Some(30), Some(300), Some(40), 3)
        );
        assert_eq!(n4.baseline_source, Some(BaselineSource::Exclusive));
        assert_eq!(delta(n4), Some(15));
        assert_eq!(n4.ratio, Some(1.5));
        // A failed run: no value, but the exclusive baseline stays.
        let sw = get("vcpu_switch");
        assert_eq!((sw.value, sw.baseline), (None, Some(14)));
        assert_eq!(delta(sw), None);
        // No exclusive equivalent: no baseline.
        let o = get("budget_overrun");
        assert_eq!(
            (o.value, o.baseline, o.baseline_source),
            (Some(0), None, None)
        );
        // Runs against the budget of the same run.
        let b = get("budget_run");
        assert_eq!(
            (b.value, b.baseline, b.max),
            (Some(15519), Some(15625), Some(15630))
        );
        assert_eq!(b.baseline_source, Some(BaselineSource::Budget));
        assert_eq!(delta(b), Some(-106));
        // Not run at all: nothing.
        let j = get("release_jitter");
        assert_eq!((j.value, j.samples), (None, None));
        let t = table(3, &r);
        let line = t
            .lines()
            .find(|l| l.starts_with("sched_overhead_n4"))
            .unwrap();
        assert!(
            line.contains("45/300") && line.contains("30/40") && line.contains("+15"),
            "{t}"
        );
        assert!(t.lines().any(|l| l.starts_with("release_jitter")), "{t}");
    }
}
