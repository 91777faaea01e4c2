//! `cargo xtask bench --only console`: how much a console flood slows another VM's prints.
//!
//! Two Tessera runs of the same three cores under `-icount shift=0,sleep=off`: `victim` (the
//! bench guest, `mode=console-victim`, core 0) times 30 `println!`s of its own with `CNTVCT`
//! while `flooder` (adversary `mode=console-flood`, cores 1 and 2) either floods the console
//! from both vCPUs (config `console-flood`: DR byte writes and 4 KiB `ConsoleWrite` calls) or
//! spins without touching it (config `console-quiet`, the baseline).
//!
//! How the measurement is made to mean something under `-icount`: QEMU then runs the vCPUs of
//! all cores in turns on one host thread (a turn lasts until the vCPU yields or QEMU's
//! round-robin kick, tens of ms), and the one virtual clock advances with whichever vCPU runs.
//! - Left alone, the victim's prints would all fit in one of its turns while the flooder
//!   stands still: no interference could show. So the victim yields (`sevl; wfe`, `yield=1`)
//!   before each print: each print then starts after both flooder vCPUs had a turn and were
//!   stopped wherever the kick stopped them (inside the hypervisor, holding the console's
//!   queue lock, with lines queued): 30 samples of 30 flood states.
//! - Both runs have the same turns: the quiet neighbour is the same VM spinning instead of
//!   flooding. A print that meets a lock held by a stopped vCPU spins until QEMU's next kick
//!   (the hypervisor's spin loops do not yield), which shows as a sample of tens of ms: the
//!   analogue, stretched by QEMU, of waiting behind the flooder on real cores.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::{timed_run, BaselineSource, Figure, Options, Parsed, Record};
use crate::images::Builder;
use crate::util::Paths;

/// The QEMU runs: (key, config). The baseline comes first.
pub const RUNS: [(&str, &str); 2] = [("quiet", "console-quiet"), ("flood", "console-flood")];

/// Victim figures compared between the runs: (record name, guest figure).
const FIGURES: [(&str, &str); 2] = [
    ("console_print", "console_print"),
    ("console_print_p99", "console_print_p99"),
];

/// One run: the victim's figures and the bytes the hypervisor reported dropped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConsoleRun {
    pub parsed: Parsed,
    /// Sum of `console output over budget, N bytes dropped` (and queue-full) counts.
    pub dropped: u64,
}

/// The outcome of each run, by key.
pub type Runs = Vec<(&'static str, std::result::Result<ConsoleRun, String>)>;

/// The bytes dropped according to the hypervisor's reports in a serial log.
pub fn dropped_bytes(log: &str) -> u64 {
    let re = regex::Regex::new(
        r"^\[tessera\] vm \S+: console output over budget, (\d+) bytes dropped(?: \((\d+) more)?",
    )
    .expect("valid regex");
    log.lines()
        .filter_map(|l| re.captures(l.trim_end_matches('\r')))
        .map(|c| {
            let n = |i| {
                c.get(i)
                    .and_then(|m| m.as_str().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            n(1) + n(2)
        })
        .sum()
}

fn run_of<'a>(runs: &'a Runs, key: &str) -> Option<&'a ConsoleRun> {
    runs.iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, r)| r.as_ref().ok())
}

/// The console records of GIC version `gic`: each victim figure under flood against the same
/// figure beside the quiet neighbour, and the flood's dropped bytes.
pub fn records(gic: u8, runs: &Runs) -> Vec<Record> {
    let quiet = run_of(runs, "quiet");
    let flood = run_of(runs, "flood");
    let mut out: Vec<Record> = FIGURES
        .iter()
        .map(|&(name, figure)| {
            let t: Option<&Figure> = flood.and_then(|r| r.parsed.figure(figure));
            let b: Option<&Figure> = quiet.and_then(|r| r.parsed.figure(figure));
            let (value, baseline) = (t.map(|f| f.median), b.map(|f| f.median));
            Record {
                name: name.to_string(),
                gic,
                value,
                unit: "ticks".to_string(),
                baseline,
                baseline_source: b.map(|_| BaselineSource::Unflooded),
                baseline_max: b.map(|f| f.max),
                ratio: super::ratio(value, baseline),
                max: t.map(|f| f.max),
                samples: t.map(|f| f.samples),
            }
        })
        .collect();
    out.push(Record {
        name: "console_flood_dropped".to_string(),
        gic,
        value: flood.map(|r| r.dropped),
        unit: "bytes".to_string(),
        baseline: None,
        baseline_source: None,
        baseline_max: None,
        ratio: None,
        max: None,
        samples: None,
    });
    out
}

/// The table: under flood median/max, quiet median/max, ratio of the medians.
pub fn table(gic: u8, records: &[Record]) -> String {
    const N: usize = 22;
    const W: usize = 17;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:N$} | {:>W$} {:>W$} {:>8}",
        format!("GICv{gic}"),
        "flood med/max",
        "quiet med/max",
        "ratio"
    );
    let _ = writeln!(out, "{}", "-".repeat(N + 3 + 2 * W + 10));
    let mm = |m: Option<u64>, x: Option<u64>| match (m, x) {
        (Some(m), Some(x)) => format!("{m}/{x}"),
        (Some(m), None) => m.to_string(),
        _ => "-".to_string(),
    };
    for r in records {
        let q = r
            .ratio
            .map_or_else(|| "-".to_string(), |q| format!("{q:.2}x"));
        let _ = writeln!(
            out,
            "{:N$} | {:>W$} {:>W$} {:>8}",
            format!("{} ({})", r.name, r.unit),
            mm(r.value, r.max),
            mm(r.baseline, r.baseline_max),
            q
        );
    }
    out
}

/// What each console figure is, for the notes under the table.
pub const NOTES: [&str; 3] = [
    "console_print: CNTVCT ticks of one println! of a 53-byte line by the victim VM (1 vCPU, core \
     0; every byte an FR poll and a DR write, each a trap), 30 prints, each after a yield to the \
     other vCPUs (QEMU round-robin); flood = beside a 2-vCPU VM flooding the console as fast as \
     it can (DR writes + 4 KiB ConsoleWrite calls), quiet = beside the same VM spinning without \
     output",
    "console_print_p99: the 99th percentile of the same 30 prints (one sample each run)",
    "console_flood_dropped: bytes the hypervisor reported dropped over the flooder's budget \
     (4096 B/s, 8192 B burst) during the flood run",
];

/// Builds and runs both console configs for GIC version `gic` (logs in `dir`); returns the
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
        let what = format!("[console {}/{}] {config} GICv{gic}", i + 1, RUNS.len());
        let log = dir.join(format!("gicv{gic}-{config}.log"));
        let r = (|| -> Result<ConsoleRun> {
            let spec = super::icount_spec(paths, builder, o, config, gic, &what)?;
            let parsed = timed_run(paths, &what, &spec, &log, o.timeout)?;
            let text = super::log_text(&log);
            let dropped = dropped_bytes(&text);
            if *key == "flood" && dropped == 0 {
                anyhow::bail!("the flood run reported no dropped bytes: was there a flood?");
            }
            Ok(ConsoleRun { parsed, dropped })
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

    const QUIET: &str = "\
[victim] bench: console-victim: measuring
[victim] bench: console_print median=1000 max=1200 min=990 samples=100 unit=ticks
[victim] bench: console_print_p99 median=1100 max=1100 min=1100 samples=1 unit=ticks
[victim] bench: done
";
    const FLOOD: &str = "\
[tessera] vm flooder: console output over budget, 3008 bytes dropped
[victim] bench: console_print median=1500 max=9000 min=1000 samples=100 unit=ticks
[victim] bench: console_print_p99 median=2200 max=2200 min=2200 samples=1 unit=ticks
[tessera] vm flooder: console output over budget, 100 bytes dropped (20 more with the console queue full)\r
[flooder] [tessera] vm x: console output over budget, 5 bytes dropped
[victim] bench: done
";

    #[test]
    fn dropped_counts_only_hypervisor_reports() {
        assert_eq!(dropped_bytes(FLOOD), 3008 + 100 + 20);
        assert_eq!(dropped_bytes(QUIET), 0);
    }

    #[test]
    fn records_flood_against_quiet() {
        let run = |t: &str| ConsoleRun {
            parsed: parse_log(t),
            dropped: dropped_bytes(t),
        };
        let runs: Runs = vec![("quiet", Ok(run(QUIET))), ("flood", Ok(run(FLOOD)))];
        let r = records(3, &runs);
        assert_eq!(r.len(), 3);
        let p = &r[0];
        assert_eq!(
            (p.name.as_str(), p.value, p.baseline, p.max, p.baseline_max),
            (
                "console_print",
                Some(1500),
                Some(1000),
                Some(9000),
                Some(1200)
            )
        );
        assert_eq!(p.ratio, Some(1.5));
        assert_eq!(p.baseline_source, Some(BaselineSource::Unflooded));
        assert_eq!((r[1].value, r[1].baseline), (Some(2200), Some(1100)));
        assert_eq!((r[2].value, r[2].unit.as_str()), (Some(3128), "bytes"));
        let t = table(3, &r);
        assert!(
            t.lines()
                .any(|l| l.starts_with("console_print (ticks)") && l.contains("1.50x")),
            "{t}"
        );

        // A failed flood run: no value, the quiet baseline stays.
        let runs: Runs = vec![
            ("quiet", Ok(run(QUIET))),
            ("flood", Err("timed out".into())),
        ];
        let r = records(2, &runs);
        assert_eq!(
            (r[0].value, r[0].baseline, r[0].ratio),
            (None, Some(1000), None)
        );
        assert_eq!(r[2].value, None);
    }
}
