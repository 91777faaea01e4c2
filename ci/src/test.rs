//! `cargo xtask test`: host tests, clippy, rustfmt, then the QEMU scenarios.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::images::{self, Builder, HypervisorBuild, GUEST_TARGET, HYP_TARGET};
use crate::qemu::{self, QemuSpec};
use crate::scenario::{self, Compiled};
use crate::util::{self, Paths};

/// Lines of the serial log shown when a scenario fails.
const TAIL_LINES: usize = 30;

struct Outcome {
    name: String,
    passed: bool,
    time: Duration,
    /// Why it failed.
    detail: Vec<String>,
}

struct Report {
    outcomes: Vec<Outcome>,
}

impl Report {
    /// Runs a step (a closure that fails with a reason) and records it.
    fn step(&mut self, name: &str, f: impl FnOnce() -> Result<()>) -> bool {
        println!("xtask: step {name} ...");
        let start = Instant::now();
        let r = f();
        let time = start.elapsed();
        let passed = r.is_ok();
        match &r {
            Ok(()) => println!("xtask: step {name} ok ({:.1} s)", time.as_secs_f64()),
            Err(e) => println!(
                "xtask: step {name} FAILED ({:.1} s): {e:#}",
                time.as_secs_f64()
            ),
        }
        self.outcomes.push(Outcome {
            name: name.to_string(),
            passed,
            time,
            detail: r.err().map(|e| vec![format!("{e:#}")]).unwrap_or_default(),
        });
        passed
    }
}

pub fn run(paths: &Paths, filter: Option<&str>, jobs: usize, dir: Option<&Path>) -> Result<i32> {
    let selected = |name: &str| filter.is_none_or(|f| name.contains(f));
    let dir = dir.map_or_else(|| paths.root.join("ci/scenarios"), Path::to_path_buf);
    let scenarios: Vec<Compiled> = scenario::load_dir(&dir)?
        .into_iter()
        .filter(|c| selected(&c.scenario.name))
        .collect();
    let steps = [
        "host-tests",
        "clippy-host",
        "fmt",
        "clippy-tessera",
        "clippy-guests",
        "fuzz-corpus",
    ];
    if scenarios.is_empty() && !steps.iter().any(|s| selected(s)) {
        bail!(
            "--filter {:?} matches no step ({}) and no scenario in ci/scenarios",
            filter.unwrap_or(""),
            steps.join(", ")
        );
    }
    let mut report = Report {
        outcomes: Vec::new(),
    };

    // 1. Host tests (default-members: the host crates and xtask).
    if selected("host-tests") {
        report.step("host-tests", || {
            util::run(util::cargo(paths).arg("test"), "cargo test (host crates)")
        });
    }
    // 2. Clippy on the host crates.
    if selected("clippy-host") {
        report.step("clippy-host", || {
            util::run(
                util::cargo(paths).args(["clippy", "--", "-D", "warnings"]),
                "cargo clippy (host crates)",
            )
        });
    }
    // 3. Formatting of the whole workspace.
    if selected("fmt") {
        report.step("fmt", || {
            util::run(
                util::cargo(paths).args(["fmt", "--all", "--check"]),
                "cargo fmt --check (run `cargo fmt --all` to fix)",
            )
        });
    }

    // 3b. The fuzz targets' corpus (fuzz/corpus/<target>/*) replayed on stable.
    if selected("fuzz-corpus") {
        report.step("fuzz-corpus", || {
            util::run(
                &mut crate::fuzz::replay_command(paths),
                "fuzz corpus replay (cargo test --manifest-path fuzz/Cargo.toml)",
            )
        });
    }

    let mut builder = Builder::new(paths);

    // 2b. Clippy on the EL2 image (needs the default config's guests for build.rs) and guests.
    if selected("clippy-tessera") {
        report.step("clippy-tessera", || clippy_tessera(paths, &mut builder));
    }
    if selected("clippy-guests") {
        report.step("clippy-guests", || {
            let mut cmd = util::cargo_for_target(paths, "clippy", GUEST_TARGET);
            for g in guest_packages(paths)? {
                cmd.args(["-p", &g]);
            }
            cmd.args(["--", "-D", "warnings"]);
            util::run(&mut cmd, "cargo clippy (guests)")
        });
    }

    // 4. QEMU scenarios: build each distinct image once, then run.
    let mut jobs_list = Vec::new();
    let mut images: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    for c in &scenarios {
        let s = &c.scenario;
        if s.expects_build_error() {
            report
                .outcomes
                .push(build_error_scenario(paths, &mut builder, c));
            continue;
        }
        let planned = plan_image(paths, c);
        let (key, spec) = match planned {
            Ok(p) => p,
            Err(e) => {
                println!("xtask: scenario {} FAILED: {e:#}", s.name);
                report.outcomes.push(Outcome {
                    name: format!("scenario {}", s.name),
                    passed: false,
                    time: Duration::ZERO,
                    detail: vec![format!("{e:#}")],
                });
                continue;
            }
        };
        if let ImageSpec::Bare { guest, .. } = &spec {
            if Path::new(guest).is_file() {
                // A prebuilt image: nothing to build.
                images.insert(key.clone(), Some(PathBuf::from(guest)));
            }
        }
        if !images.contains_key(&key) {
            let mut built = None;
            report.step(&format!("build {key}"), || {
                built = Some(build_image(&mut builder, &spec)?);
                Ok(())
            });
            images.insert(key.clone(), built);
        }
        match images.get(&key).cloned().flatten() {
            Some(image) => match payload_variant(paths, s, &image) {
                Ok(image) => jobs_list.push((c, qemu_spec(c, &spec, image))),
                Err(e) => report.outcomes.push(Outcome {
                    name: format!("scenario {}", s.name),
                    passed: false,
                    time: Duration::ZERO,
                    detail: vec![format!("{e:#}")],
                }),
            },
            None => report.outcomes.push(Outcome {
                name: format!("scenario {}", s.name),
                passed: false,
                time: Duration::ZERO,
                detail: vec![format!("its image ({key}) did not build; see above")],
            }),
        }
    }
    if !jobs_list.is_empty() {
        let log_dir = paths.target.join("test-logs");
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        println!(
            "xtask: running {} scenario(s), {} at a time; logs in {}",
            jobs_list.len(),
            jobs.min(jobs_list.len()),
            util::display_rel(paths, &log_dir)
        );
        report
            .outcomes
            .extend(run_scenarios(paths, jobs_list, jobs, &log_dir));
    }

    // Summary.
    let passed = report.outcomes.iter().filter(|o| o.passed).count();
    let failed = report.outcomes.len() - passed;
    println!();
    println!("xtask: summary");
    for o in &report.outcomes {
        println!(
            "  {:4}  {} ({:.1} s)",
            if o.passed { "ok" } else { "FAIL" },
            o.name,
            o.time.as_secs_f64()
        );
        if !o.passed {
            for d in &o.detail {
                println!("          {}", d.lines().next().unwrap_or(""));
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { 0 } else { 1 })
}

/// The package names of the guests and their runtime (everything under guests/).
fn guest_packages(paths: &Paths) -> Result<Vec<String>> {
    let mut v = Vec::new();
    let dir = paths.root.join("guests");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    entries.sort();
    for p in entries {
        let m = util::read_toml(&p.join("Cargo.toml"))?;
        if let Some(n) = m
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
        {
            v.push(n.to_string());
        }
    }
    if v.is_empty() {
        bail!("no guest packages under {}", dir.display());
    }
    Ok(v)
}

fn clippy_tessera(paths: &Paths, builder: &mut Builder) -> Result<()> {
    let hb = HypervisorBuild::new(paths, "qemu-virt", "default", None, Vec::new(), false, None)?;
    for g in images::guests_named_by_config(paths, &hb.config_path)? {
        builder.guest(&g)?;
    }
    // Every feature combination the builds use: plain (hardware and every QEMU test), the EL2
    // fault selftest, `run --semihosting` and `run --log` (defmt on the log UART).
    for features in [
        None,
        Some("selftest-el2-fault"),
        Some("semihosting"),
        Some("defmt-uart"),
    ] {
        let mut cmd = util::cargo_for_target(paths, "clippy", HYP_TARGET);
        cmd.args(["-p", "tessera"]);
        if let Some(f) = features {
            cmd.args(["--features", f]);
        }
        cmd.args(["--", "-D", "warnings"])
            .env("TESSERA_BOARD", &hb.board)
            .env("TESSERA_CONFIG", &hb.config)
            .env("TESSERA_GIC", hb.gic.to_string())
            .env("TESSERA_GUEST_DIR", paths.guest_dir());
        util::run(
            &mut cmd,
            &format!(
                "cargo clippy -p tessera --target {HYP_TARGET}{}",
                features
                    .map(|f| format!(" --features {f}"))
                    .unwrap_or_default()
            ),
        )?;
    }
    Ok(())
}

/// What a scenario boots.
enum ImageSpec {
    Hypervisor(Box<HypervisorBuild>),
    /// A guest of this repository (name) or an image file, booted bare.
    Bare {
        guest: String,
        gic: u8,
    },
}

/// (key naming the image, how to build it).
fn plan_image(paths: &Paths, c: &Compiled) -> Result<(String, ImageSpec)> {
    let s = &c.scenario;
    if s.board != "qemu-virt" {
        bail!(
            "board {:?}: xtask only knows QEMU's `virt` machine so far (qemu-virt)",
            s.board
        );
    }
    if s.bare {
        let guest = s.guest.clone().unwrap_or_default();
        let gic = match s.gic {
            Some(g) => g,
            None => images::board_default_gic(&images::board_dir(paths, &s.board)?)?,
        };
        return Ok((format!("bare {guest}"), ImageSpec::Bare { guest, gic }));
    }
    let mut overrides = Vec::new();
    for (vm, path) in &s.guests {
        // Resolved at build time (a guest name may need building first).
        overrides.push((vm.clone(), PathBuf::from(path)));
    }
    let suffix = (!overrides.is_empty()).then(|| format!("-{}", s.name));
    let mut hb = HypervisorBuild::new(paths, &s.board, &s.config, s.gic, overrides, false, suffix)?;
    hb.set_cpu(s.image_cpu());
    if !s.features.is_empty() {
        let known = tessera_features(paths)?;
        if let Some(f) = s.features.iter().find(|f| !known.contains(f)) {
            bail!(
                "features: tessera has no feature {f:?} (Cargo.toml [features]: {})",
                known.join(", ")
            );
        }
        // The same set in any order is the same image.
        let mut features = s.features.clone();
        features.sort();
        features.dedup();
        hb.features = features;
    }
    Ok((hb.image_stem(), ImageSpec::Hypervisor(Box::new(hb))))
}

/// The features of package `tessera` (the `[features]` of the root Cargo.toml).
fn tessera_features(paths: &Paths) -> Result<Vec<String>> {
    let manifest = util::read_toml(&paths.root.join("Cargo.toml"))?;
    Ok(manifest
        .get("features")
        .and_then(|f| f.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default())
}

fn build_image(builder: &mut Builder, spec: &ImageSpec) -> Result<PathBuf> {
    match spec {
        ImageSpec::Bare { guest, .. } => builder.resolve_image(guest),
        ImageSpec::Hypervisor(hb) => {
            let hb = resolve_overrides(builder, hb)?;
            Ok(builder.build_hypervisor(&hb)?.image)
        }
    }
}

/// `hb` with its image overrides built (guests of this repository) and resolved to files.
fn resolve_overrides(builder: &mut Builder, hb: &HypervisorBuild) -> Result<HypervisorBuild> {
    let mut hb = hb.clone();
    for (_, p) in hb.overrides.iter_mut() {
        *p = builder.resolve_override(&p.display().to_string())?;
    }
    Ok(hb)
}

/// A scenario whose image must not build (`expect_build_error`): builds it with the config's
/// problems and cargo's output captured (kept in target/test-logs/<name>.log) and judges them.
fn build_error_scenario(paths: &Paths, builder: &mut Builder, c: &Compiled) -> Outcome {
    let s = &c.scenario;
    let start = Instant::now();
    println!(
        "xtask: scenario {}: building, expecting a build error ...",
        s.name
    );
    let mut lines = Vec::new();
    let problems = match plan_image(paths, c) {
        Err(e) => vec![format!("{e:#}")],
        Ok((_, ImageSpec::Bare { .. })) => {
            vec!["a bare scenario cannot expect a build error".to_string()]
        }
        Ok((_, ImageSpec::Hypervisor(hb))) => {
            match resolve_overrides(builder, &hb).and_then(|hb| builder.try_build_hypervisor(&hb)) {
                Err(e) => vec![format!("not the expected build error: {e:#}")],
                Ok(Ok(_)) => scenario::judge_build(c, Ok(())),
                Ok(Err(out)) => {
                    lines = out;
                    scenario::judge_build(c, Err(&lines))
                }
            }
        }
    };
    let log_dir = paths.target.join("test-logs");
    let log = log_path(&log_dir, &s.name);
    let _ = std::fs::create_dir_all(&log_dir)
        .and_then(|()| std::fs::write(&log, lines.join("\n") + "\n"));
    let passed = problems.is_empty();
    println!(
        "xtask: scenario {} {} (build error expected; its lines are in {})",
        s.name,
        if passed { "ok" } else { "FAILED" },
        util::display_rel(paths, &log)
    );
    for p in &problems {
        println!("  reason: {p}");
    }
    if !passed {
        for l in lines.iter().rev().take(TAIL_LINES).rev() {
            println!("  | {l}");
        }
    }
    Outcome {
        name: format!("scenario {}", s.name),
        passed,
        time: start.elapsed(),
        detail: problems,
    }
}

/// The image a scenario boots: `image` itself, or (for `payloads = "omit" | "corrupt"`) a copy
/// `target/tessera/scenario-<name>.bin` without, or with a damaged, payload bundle beside it.
fn payload_variant(paths: &Paths, s: &crate::scenario::Scenario, image: &Path) -> Result<PathBuf> {
    use crate::scenario::PayloadMode;
    if s.payloads == PayloadMode::Load {
        return Ok(image.to_path_buf());
    }
    let copy = paths
        .target
        .join("tessera")
        .join(format!("scenario-{}.bin", s.name));
    std::fs::copy(image, &copy)
        .with_context(|| format!("cannot copy {} to {}", image.display(), copy.display()))?;
    let bundle_copy = crate::images::payloads_path(&copy);
    let _ = std::fs::remove_file(&bundle_copy);
    if s.payloads == PayloadMode::Corrupt {
        let src = crate::images::payloads_path(image);
        let mut bytes =
            std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?;
        let (_, base) = crate::qemu::payloads_of(image)
            .with_context(|| format!("{} is not a payload bundle", src.display()))?;
        let bundle = tessera_bundle::Bundle::parse(&bytes, base)
            .map_err(|e| anyhow::anyhow!("{}: {e}", src.display()))?;
        let last = (0..bundle.len())
            .rev()
            .filter_map(|i| bundle.entry(i))
            .find(|e| e.size > 0)
            .context("the bundle has no non-empty payload to damage")?;
        let at = (last.offset + last.size / 2) as usize;
        bytes[at] ^= 0x5a;
        std::fs::write(&bundle_copy, &bytes)
            .with_context(|| format!("cannot write {}", bundle_copy.display()))?;
    }
    Ok(copy)
}

fn qemu_spec(c: &Compiled, spec: &ImageSpec, kernel: PathBuf) -> QemuSpec {
    let s = &c.scenario;
    let image_gic = match spec {
        ImageSpec::Hypervisor(hb) => hb.gic,
        ImageSpec::Bare { gic, .. } => *gic,
    };
    QemuSpec {
        kernel,
        gic: s.machine_gic(image_gic),
        cpu: s.cpu.clone(),
        smp: s.smp,
        memory: s.memory_arg(),
        virtualization: s.virtualization(),
        gdb: false,
        semihosting: s.semihosting(),
        defmt_file: None,
        extra: s.qemu_args.clone(),
    }
}

fn run_scenarios(
    paths: &Paths,
    list: Vec<(&Compiled, QemuSpec)>,
    jobs: usize,
    log_dir: &Path,
) -> Vec<Outcome> {
    let total = list.len();
    let queue = Mutex::new(list.into_iter().enumerate().collect::<VecDeque<_>>());
    let results = Mutex::new(Vec::new());
    let done = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(total) {
            scope.spawn(|| loop {
                let Some((i, (c, spec))) = queue.lock().expect("queue lock").pop_front() else {
                    break;
                };
                let o = run_one(paths, c, &spec, log_dir);
                let mut n = done.lock().expect("progress lock");
                *n += 1;
                print_result(paths, &o, c, &spec, *n, total, log_dir);
                drop(n);
                results.lock().expect("results lock").push((i, o));
            });
        }
    });
    let mut r = results.into_inner().expect("results lock");
    r.sort_by_key(|(i, _)| *i);
    r.into_iter().map(|(_, o)| o).collect()
}

fn log_path(log_dir: &Path, name: &str) -> PathBuf {
    log_dir.join(format!("{name}.log"))
}

fn run_one(paths: &Paths, c: &Compiled, spec: &QemuSpec, log_dir: &Path) -> Outcome {
    let s = &c.scenario;
    let name = format!("scenario {}", s.name);
    let start = Instant::now();
    let fail = |detail: String| Outcome {
        name: name.clone(),
        passed: false,
        time: start.elapsed(),
        detail: vec![detail],
    };
    let log = log_path(log_dir, &s.name);
    let _ = std::fs::write(
        log_dir.join(format!("{}.cmd", s.name)),
        spec.describe() + "\n",
    );
    let mut cmd: Command = match spec.command_logged(&paths.root, &log) {
        Ok(c) => c,
        Err(e) => return fail(format!("{e:#}")),
    };
    // With `input`, stdin is a pipe the feeder writes to and keeps open until QEMU ends.
    cmd.stdin(if c.input.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return fail(format!(
                "cannot start qemu-system-aarch64 ({e}); run `cargo xtask setup`"
            ))
        }
    };
    let timeout = Some(Duration::from_secs(s.timeout));
    // Files' modification times have a coarse grain on some file systems: look back a little.
    let started = std::time::SystemTime::now() - Duration::from_secs(2);
    let (waited, fired) = match child.stdin.take() {
        None => (qemu::wait(child, timeout), 0),
        Some(stdin) => {
            let stop = AtomicBool::new(false);
            std::thread::scope(|scope| {
                let feeder = scope.spawn(|| feed_input(&log, &c.input, stdin, &stop));
                let waited = qemu::wait(child, timeout);
                stop.store(true, Ordering::Relaxed);
                (waited, feeder.join().unwrap_or(0))
            })
        }
    };
    let outcome = match waited {
        Ok(o) => o,
        Err(e) => return fail(format!("{e:#}")),
    };
    let bytes = std::fs::read(&log).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let mut problems = scenario::judge(c, outcome, &text);
    for p in scenario::touched_host_files(&s.host_untouched, started) {
        problems.push(format!(
            "host_untouched: {p} was created or modified during the run"
        ));
    }
    if let Some((after, _)) = c.input.get(fired) {
        problems.push(format!(
            "input: entry {fired} (of {}) was never sent: no line matched /{after}/ after the \
             previous entry's",
            c.input.len()
        ));
    }
    Outcome {
        name,
        passed: problems.is_empty(),
        time: start.elapsed(),
        detail: problems,
    }
}

/// Follows the serial log as QEMU writes it and sends each `input` entry to QEMU's stdin once
/// a whole line matches its `after` (entries in order, a line fires at most one). Keeps stdin
/// open until `stop` (QEMU has ended). Returns how many entries were sent.
fn feed_input(
    log: &Path,
    input: &[(regex::Regex, Vec<u8>)],
    mut stdin: ChildStdin,
    stop: &AtomicBool,
) -> usize {
    let mut reader = File::open(log).ok();
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut progress = false;
        if let Some(r) = reader.as_mut().filter(|_| next < input.len()) {
            while let Ok(n @ 1..) = r.read(&mut chunk) {
                pending.extend_from_slice(&chunk[..n]);
                progress = true;
            }
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Some((after, send)) = input.get(next) else {
                continue;
            };
            let text = String::from_utf8_lossy(&line);
            if after.is_match(text.trim_end_matches(['\r', '\n'])) {
                // QEMU may already be gone (the judge then reports why): ignore EPIPE.
                let _ = stdin.write_all(send).and_then(|()| stdin.flush());
                next += 1;
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(stdin);
    next
}

fn print_result(
    paths: &Paths,
    o: &Outcome,
    c: &Compiled,
    spec: &QemuSpec,
    n: usize,
    total: usize,
    log_dir: &Path,
) {
    let out = std::io::stdout();
    let mut out = out.lock();
    let s = &c.scenario;
    let log = log_path(log_dir, &s.name);
    let _ = writeln!(
        out,
        "xtask: [{n}/{total}] {} {} ({:.1} s)",
        o.name,
        if o.passed { "ok" } else { "FAILED" },
        o.time.as_secs_f64()
    );
    if o.passed {
        return;
    }
    if let Some(d) = &s.description {
        let _ = writeln!(out, "  about: {d}");
    }
    for d in &o.detail {
        let _ = writeln!(out, "  reason: {d}");
    }
    let _ = writeln!(out, "  command: {}", spec.describe());
    let text = std::fs::read(&log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    let _ = writeln!(
        out,
        "  last {} line(s) of {}:",
        lines.len() - from,
        util::display_rel(paths, &log)
    );
    for l in &lines[from..] {
        let _ = writeln!(out, "  | {}", l.trim_end_matches('\r'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(text: &str) -> Compiled {
        scenario::parse(Path::new("t.toml"), text).unwrap()
    }

    fn hypervisor(gic: u8) -> ImageSpec {
        ImageSpec::Hypervisor(Box::new(HypervisorBuild {
            board: "qemu-virt".into(),
            config: "default".into(),
            config_path: PathBuf::from("boards/qemu-virt/configs/default.toml"),
            config_name: "default".into(),
            gic,
            overrides: Vec::new(),
            initrds: Vec::new(),
            cmdlines: Vec::new(),
            semihosting: false,
            features: Vec::new(),
            log: None,
            suffix: None,
            cpu: None,
            board_cpu: None,
        }))
    }

    fn machine(spec: &QemuSpec) -> String {
        let a = spec.args();
        let i = a.iter().position(|x| x == "-machine").unwrap();
        a[i + 1].clone()
    }

    #[test]
    fn qemu_machine_follows_the_image_by_default() {
        let c = compiled("name='x'\ngic=2");
        let spec = qemu_spec(&c, &hypervisor(2), PathBuf::from("t.bin"));
        assert_eq!(machine(&spec), "virt,virtualization=on,gic-version=2");
        let bare = compiled("name='x'\nbare=true\nguest='hello'\ngic=3");
        let spec = qemu_spec(
            &bare,
            &ImageSpec::Bare {
                guest: "hello".into(),
                gic: 3,
            },
            PathBuf::from("hello.bin"),
        );
        assert_eq!(machine(&spec), "virt,gic-version=3");
    }

    #[test]
    fn qemu_machine_overrides() {
        let c = compiled("name='x'\ngic=3\nmachine_gic=2\nsmp=2\nmemory='1G'");
        let spec = qemu_spec(&c, &hypervisor(3), PathBuf::from("t.bin"));
        assert_eq!(machine(&spec), "virt,virtualization=on,gic-version=2");
        let a = spec.args();
        assert!(a.windows(2).any(|w| w == ["-smp", "2"]), "{a:?}");
        assert!(a.windows(2).any(|w| w == ["-m", "1G"]), "{a:?}");
        let c = compiled("name='x'\ngic=3\nvirtualization=false");
        let spec = qemu_spec(&c, &hypervisor(3), PathBuf::from("t.bin"));
        assert_eq!(machine(&spec), "virt,gic-version=3");
        assert!(!spec.describe().contains("-semihosting"));
        let bare = compiled("name='x'\nbare=true\nguest='hello'");
        let spec = qemu_spec(
            &bare,
            &ImageSpec::Bare {
                guest: "hello".into(),
                gic: 3,
            },
            PathBuf::from("hello.bin"),
        );
        assert!(spec.describe().contains(" -semihosting"));
    }

    #[test]
    fn features_make_their_own_image() {
        let paths = Paths::discover().unwrap();
        let key = |text: &str| plan_image(&paths, &compiled(text)).unwrap().0;
        let plain = key("name='x'\ngic=3");
        let fault = key("name='x'\ngic=3\nfeatures=['selftest-el2-fault']");
        assert!(plain.starts_with("qemu-virt-default-gic3"), "{plain}");
        assert_eq!(fault, format!("{plain}+selftest-el2-fault"));
        let twice = key("name='x'\ngic=3\nfeatures=['selftest-el2-fault', 'selftest-el2-fault']");
        assert_eq!(twice, fault);
        let err = plan_image(&paths, &compiled("name='x'\nfeatures=['no-such-feature']"));
        assert!(format!("{:#}", err.err().unwrap()).contains("no feature"));
    }

    #[test]
    fn cpu_models_make_their_own_image() {
        let paths = Paths::discover().unwrap();
        let key = |text: &str| plan_image(&paths, &compiled(text)).unwrap().0;
        let a53 = key("name='x'\ngic=3\ncpu='cortex-a53'");
        let a72 = key("name='x'\ngic=3\ncpu='cortex-a72'");
        let max = key("name='x'\ngic=3\ncpu='max'");
        assert_ne!(a53, a72);
        assert_ne!(a53, max);
        assert_ne!(a72, max);
        // The image is named after the model it is built for, not the one QEMU runs.
        let wrong = key("name='x'\ngic=3\ncpu='max'\nbuild_cpu='cortex-a53'");
        assert_eq!(wrong, a53);
        let board = images::board_dir(&paths, "qemu-virt").unwrap();
        if let Some(default) = images::board_default_cpu(&board).unwrap() {
            let d = key(&format!("name='x'\ngic=3\ncpu='{default}'"));
            assert_eq!(
                d, "qemu-virt-default-gic3",
                "the board's default is not named"
            );
        }
        let ImageSpec::Hypervisor(hb) = plan_image(&paths, &compiled("name='x'\ncpu='cortex-a53'"))
            .unwrap()
            .1
        else {
            panic!("not a Tessera image")
        };
        assert_eq!(hb.effective_cpu(), Some("cortex-a53"));
        let cmd = images::tessera_cargo(&paths, &hb);
        let env: Vec<_> = cmd.get_envs().collect();
        assert!(
            env.iter()
                .any(|(k, v)| *k == "TESSERA_CPU" && v.is_some_and(|v| v == "cortex-a53")),
            "{env:?}"
        );
    }

    #[test]
    fn image_stem_names_only_a_non_default_cpu() {
        let ImageSpec::Hypervisor(mut hb) = hypervisor(3) else {
            unreachable!()
        };
        hb.board_cpu = Some("max".into());
        assert_eq!(hb.image_stem(), "qemu-virt-default-gic3");
        assert_eq!(hb.effective_cpu(), Some("max"));
        hb.set_cpu("max");
        assert_eq!(hb.image_stem(), "qemu-virt-default-gic3");
        hb.set_cpu("cortex-a53");
        hb.features = vec!["selftest-el2-fault".into()];
        assert_eq!(
            hb.image_stem(),
            "qemu-virt-default-gic3-cortex-a53+selftest-el2-fault"
        );
        hb.board_cpu = None;
        hb.cpu = None;
        assert_eq!(hb.effective_cpu(), None);
    }

    #[test]
    fn boot_error_scenarios_share_the_default_image() {
        let paths = Paths::discover().unwrap();
        let all = scenario::load_dir(&paths.root.join("ci/scenarios")).unwrap();
        let key = |name: &str| {
            let c = all.iter().find(|c| c.scenario.name == name).unwrap();
            plan_image(&paths, c).unwrap().0
        };
        let default = key("default-gicv3");
        let errors: Vec<&Compiled> = all
            .iter()
            .filter(|c| c.scenario.name.starts_with("boot-error-"))
            .collect();
        for name in ["memory", "cpus", "gic", "el1"] {
            let name = format!("boot-error-{name}");
            assert!(errors.iter().any(|c| c.scenario.name == name), "{name}");
        }
        for c in errors {
            assert_eq!(key(&c.scenario.name), default, "{}", c.scenario.name);
            assert_eq!(c.scenario.expect_exit, 70, "{}", c.scenario.name);
        }
    }
}
