//! `cargo xtask fuzz`: the coverage-guided fuzz targets of `fuzz/` (cargo-fuzz, libFuzzer,
//! nightly), each for a given time, new corpus entries saved to `fuzz/corpus/<target>/`.
//! The target bodies are `fuzz/targets` (tessera-fuzz-targets); `cargo xtask test` replays
//! the committed corpus through them on stable ([`replay_command`]).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util::{self, Paths};

/// The targets and the largest input each is given (libFuzzer `-max_len`).
pub const TARGETS: [(&str, usize); 5] = [
    ("config", 8192),
    ("vgic", 4096),
    ("ring", 8192),
    ("dtb", 8192),
    ("trap", 16),
];

/// `cargo test` of the fuzz target bodies: replays `fuzz/corpus/*/*` on the active (stable)
/// toolchain.
pub fn replay_command(paths: &Paths) -> Command {
    let mut c = util::cargo(paths);
    c.args([
        "test",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "-p",
        "tessera-fuzz-targets",
    ]);
    c
}

/// One target's run.
struct Outcome {
    target: &'static str,
    runs: Option<u64>,
    new_inputs: usize,
    crashes: Vec<String>,
    ok: bool,
}

/// Runs `target` (all when `None`) for `seconds` each; exit status 1 if any crashed.
pub fn run(paths: &Paths, target: Option<&str>, seconds: u64) -> Result<i32> {
    let chosen: Vec<(&'static str, usize)> = TARGETS
        .iter()
        .copied()
        .filter(|(t, _)| target.is_none_or(|want| want == *t))
        .collect();
    if chosen.is_empty() {
        bail!(
            "no fuzz target {:?}; the targets are: {}",
            target.unwrap_or(""),
            TARGETS.map(|t| t.0).join(", ")
        );
    }
    ensure_tools(paths)?;
    let mut outcomes = Vec::new();
    for (t, max_len) in chosen {
        outcomes.push(run_one(paths, t, max_len, seconds)?);
    }
    println!("\nxtask fuzz: {seconds} s per target");
    println!(
        "{:<8} {:>12} {:>12} {:>8}",
        "target", "executions", "new inputs", "crashes"
    );
    let mut failed = false;
    for o in &outcomes {
        println!(
            "{:<8} {:>12} {:>12} {:>8}",
            o.target,
            o.runs.map_or("?".into(), |r| r.to_string()),
            o.new_inputs,
            o.crashes.len()
        );
        for c in &o.crashes {
            println!("         crash input: {c}");
        }
        failed |= !o.ok || !o.crashes.is_empty();
    }
    if failed {
        println!(
            "xtask fuzz: a target failed. Reproduce with `cargo +nightly fuzz run <target> <input>` \
             (from the repository root), fix the bug, and copy the input into \
             fuzz/corpus/<target>/ so `cargo xtask test` keeps replaying it."
        );
        return Ok(1);
    }
    Ok(0)
}

/// Nightly and cargo-fuzz, installed if missing (saying so).
fn ensure_tools(paths: &Paths) -> Result<()> {
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_nightly {
        println!("xtask fuzz: installing the nightly toolchain (libFuzzer needs -Zsanitizer)");
        util::run(
            Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
            ]),
            "rustup toolchain install nightly",
        )?;
    }
    let has_fuzz = Command::new("rustup")
        .current_dir(&paths.root)
        .args(["run", "nightly", "cargo", "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_fuzz {
        println!("xtask fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
        util::run(
            Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]),
            "cargo install cargo-fuzz",
        )?;
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.filter_map(Result::ok).count())
}

fn run_one(paths: &Paths, target: &'static str, max_len: usize, seconds: u64) -> Result<Outcome> {
    let corpus = paths.root.join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let artifacts = paths.root.join("fuzz/artifacts").join(target);
    std::fs::create_dir_all(&artifacts)?;
    let before = count_files(&corpus);
    let crashes_before = count_files(&artifacts);
    println!("xtask fuzz: {target} for {seconds} s (corpus {before} inputs)");
    let started = Instant::now();
    // `rustup run nightly cargo`, not the stable `cargo` that runs xtask ($CARGO).
    let output = Command::new("rustup")
        .current_dir(&paths.root)
        .args(["run", "nightly", "cargo", "fuzz", "run", "-O", target])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={max_len}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped())
        .output()
        .context("running cargo fuzz")?;
    let log = String::from_utf8_lossy(&output.stderr);
    let log_path = paths.target.join("fuzz").join(format!("{target}.log"));
    if let Some(d) = log_path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&log_path, log.as_bytes())?;
    let runs = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|v| v.trim().parse().ok());
    let crashes: Vec<String> = std::fs::read_dir(&artifacts)?
        .filter_map(Result::ok)
        .map(|e| util::display_rel(paths, &e.path()))
        .collect();
    let new_crashes = crashes.len().saturating_sub(crashes_before);
    println!(
        "xtask fuzz: {target}: {} executions in {:.0} s, {} new crash input(s); log {}",
        runs.map_or("?".into(), |r: u64| r.to_string()),
        started.elapsed().as_secs_f64(),
        new_crashes,
        util::display_rel(paths, &log_path)
    );
    if !output.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        for l in tail.iter().rev() {
            println!("  {l}");
        }
    }
    Ok(Outcome {
        target,
        runs,
        new_inputs: count_files(&corpus).saturating_sub(before),
        crashes,
        ok: output.status.success(),
    })
}
