//! `cargo xtask soak`: boot one image many times and count the runs that hang or fail — for
//! rare races (a Linux boot that hangs once in forty) that one CI run would not catch.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::qemu::{self, Outcome, QemuSpec};
use crate::util::{self, Paths};

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Ok,
    /// No final hypervisor line within the time limit.
    Hung,
    /// The hypervisor's status was not 0 (or QEMU ended without one).
    Failed(String),
}

/// Runs `spec` `runs` times, `jobs` at a time, each with `timeout`; keeps the logs of runs that
/// did not end with status 0 under `<target>/soak-logs/`. Returns the process exit code.
pub fn run(paths: &Paths, spec: &QemuSpec, runs: usize, jobs: usize, timeout: u64) -> Result<i32> {
    let dir = paths.target.join("soak-logs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    println!(
        "xtask: soak: {runs} runs of {} ({jobs} at a time, {timeout} s each at most); logs of bad runs in {}",
        util::display_rel(paths, &spec.kernel),
        util::display_rel(paths, &dir)
    );
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Verdict, Duration)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= runs {
                    break;
                }
                let log = dir.join(format!("run-{i:04}.log"));
                let t0 = Instant::now();
                let verdict = one(paths, spec, &log, timeout)
                    .unwrap_or_else(|e| Verdict::Failed(format!("{e:#}")));
                let took = t0.elapsed();
                if verdict == Verdict::Ok {
                    let _ = std::fs::remove_file(&log);
                }
                let mut r = results.lock().expect("results lock");
                r.push((i, verdict.clone(), took));
                let line = match &verdict {
                    Verdict::Ok => "ok".to_string(),
                    Verdict::Hung => format!(
                        "HUNG (no final line in {timeout} s); last line: {}",
                        last_line(&log)
                    ),
                    Verdict::Failed(why) => format!("FAILED: {why}"),
                };
                println!(
                    "xtask: soak [{}/{runs}] run {i}: {line} ({:.1} s)",
                    r.len(),
                    took.as_secs_f64()
                );
            });
        }
    });
    let r = results.into_inner().expect("results");
    let hung = r.iter().filter(|x| x.1 == Verdict::Hung).count();
    let failed = r
        .iter()
        .filter(|x| matches!(x.1, Verdict::Failed(_)))
        .count();
    let ok = r.len() - hung - failed;
    let mut times: Vec<f64> = r
        .iter()
        .filter(|x| x.1 == Verdict::Ok)
        .map(|x| x.2.as_secs_f64())
        .collect();
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!(
        "xtask: soak: {} runs in {:.0} s: {ok} ok, {hung} hung, {failed} failed (median good run {median:.1} s)",
        r.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if ok == r.len() { 0 } else { 1 })
}

fn one(paths: &Paths, spec: &QemuSpec, log: &Path, timeout: u64) -> Result<Verdict> {
    let mut cmd = spec.command_logged(&paths.root, log)?;
    cmd.stdin(std::process::Stdio::null());
    let child = cmd.spawn().context("cannot start qemu-system-aarch64")?;
    let outcome = qemu::wait(child, Some(Duration::from_secs(timeout)))?;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    Ok(match (outcome, qemu::hypervisor_status(&text)) {
        (_, Some(0)) => Verdict::Ok,
        (Outcome::TimedOut(_), None) => Verdict::Hung,
        (_, Some(s)) => Verdict::Failed(format!("hypervisor status {s}; {}", last_line(log))),
        (Outcome::Exited(q), None) => Verdict::Failed(format!(
            "QEMU exited with {q} without a final hypervisor line; {}",
            last_line(log)
        )),
    })
}

fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "<empty log>".into())
}
