//! `cargo xtask`: the host tool that sets up the toolchain and QEMU, builds guests and the
//! Tessera image, boots it on QEMU, checks configs, runs the whole test suite and the benchmarks.
//!
//! Every sub-command but `check-config` first runs the (idempotent) setup step.

mod bench;
mod check;
mod el2trace;
mod fuzz;
mod images;
mod linux;
mod miri;
mod qemu;
mod scenario;
mod setup;
mod soak;
mod test;
mod trace;
mod util;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use images::{Builder, HypervisorBuild};
use util::Paths;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and test Tessera", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what the build needs (Rust targets, llvm-tools, QEMU >= 9); idempotent.
    Setup,
    /// Build the guests a config names and the Tessera image for a board + config.
    Build(BuildArgs),
    /// Build, then boot the image on QEMU with the console on this terminal.
    Run(RunArgs),
    /// Validate a config without building and print its partition report.
    CheckConfig(CheckConfigArgs),
    /// Host tests, clippy, rustfmt and the QEMU scenarios of ci/scenarios.
    Test(TestArgs),
    /// Benchmarks under -icount: the bench guest under Tessera against bare QEMU (never part
    /// of `test`).
    Bench(BenchArgs),
    /// Run a config on QEMU and draw the hypervisor's scheduler trace as an SVG timeline.
    Trace(TraceArgs),
    /// Boot one image many times and count runs that hang or fail (rare races; never part of
    /// `test`). Default: the `linux` config, 40 runs.
    Soak(SoakArgs),
    /// Coverage-guided fuzzing (cargo-fuzz, nightly; installed if missing) of the targets in
    /// fuzz/; new corpus entries go to fuzz/corpus/<target>/.
    Fuzz(FuzzArgs),
    /// The pure crates' tests under Miri (nightly `miri` component; installed if missing).
    Miri,
}

#[derive(Args)]
struct FuzzArgs {
    /// Only this target (config, vgic, ring, dtb, trap).
    #[arg(long)]
    target: Option<String>,
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

#[derive(Args)]
struct ImageArgs {
    /// Board: a directory under boards/.
    #[arg(long, default_value = "qemu-virt")]
    board: String,
    /// Config: a name under boards/<board>/configs/ (without .toml) or a path to a .toml.
    #[arg(long, default_value = "default")]
    config: String,
    /// GIC version to build for (default: the board's `gic.default`).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=3))]
    gic: Option<u8>,
    /// Replace a VM's image: VM=PATH (raw arm64 Image, raw binary or ELF), or VM=guests/<name>
    /// to build and use one of this repository's guests. Repeatable.
    #[arg(long = "guest", value_name = "VM=PATH")]
    guests: Vec<String>,
    /// A Linux kernel for a VM: VM=PATH of an arm64 `Image` (same as --guest). Repeatable.
    #[arg(long = "kernel", value_name = "VM=PATH")]
    kernels: Vec<String>,
    /// An initramfs for a VM (cpio, optionally compressed as the kernel supports): VM=PATH.
    /// Loaded below the VM's DTB and named in its /chosen. Repeatable.
    #[arg(long = "initrd", value_name = "VM=PATH")]
    initrds: Vec<String>,
    /// A VM's kernel command line (its DT's /chosen/bootargs), replacing the config's
    /// `bootargs`: VM="console=ttyAMA0 ...". Repeatable.
    #[arg(long = "cmdline", value_name = "VM=ARGS")]
    cmdlines: Vec<String>,
}

/// QEMU CPU models xtask knows (`-cpu`; board.toml `[cpu.llc]` gives each one's LLC).
const CPU_MODELS: [&str; 4] = ["cortex-a53", "cortex-a57", "cortex-a72", "max"];

#[derive(Args)]
struct BuildArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// CPU model the image is for (QEMU -cpu; its LLC decides the colors); default: the
    /// board's `[cpu] default`.
    #[arg(long, value_parser = CPU_MODELS)]
    cpu: Option<String>,
    /// Also report the final status through Arm semihosting SYS_EXIT (QEMU -semihosting).
    /// Off by default: every build ends with PSCI SYSTEM_OFF, as on hardware.
    #[arg(long)]
    semihosting: bool,
    /// Release build: the default and only profile of the image (accepted for clarity).
    #[arg(long)]
    release: bool,
}

/// The QEMU machine of `run` and `soak`.
#[derive(Args)]
struct MachineArgs {
    /// QEMU CPU model (the image is built for it).
    #[arg(long, default_value = "cortex-a72", value_parser = CPU_MODELS)]
    cpu: String,
    /// Number of physical cores QEMU models.
    #[arg(long, default_value_t = 4)]
    smp: u32,
    /// Guest RAM of the QEMU machine (QEMU -m syntax).
    #[arg(long, default_value = "2G")]
    memory: String,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    machine: MachineArgs,
    /// Kill QEMU and fail after this many seconds (ignored with --gdb).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Start QEMU halted with a gdb server on :1234 and print how to attach.
    #[arg(long)]
    gdb: bool,
    /// Compile the hypervisor's defmt logging in at this level (DEFMT_LOG), send its frames to
    /// the board's log UART (QEMU virt's second PL011, feature `defmt-uart`), collect them in
    /// target/tessera/defmt-<config>.bin and decode them after the run with defmt-print when
    /// it is installed.
    #[arg(long, value_parser = ["error", "warn", "info", "debug", "trace"])]
    log: Option<String>,
    /// Enable Arm semihosting in QEMU (and the hypervisor's SYS_EXIT). Every guest can then
    /// use it too: end QEMU, read and write host files, run host commands. Only for trusted
    /// guests.
    #[arg(long)]
    semihosting: bool,
}

#[derive(Args)]
struct SoakArgs {
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    machine: MachineArgs,
    /// How many boots.
    #[arg(long, default_value_t = 40)]
    runs: usize,
    /// How many QEMUs at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// A run without the hypervisor's final line after this many seconds counts as hung.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

#[derive(Args)]
struct CheckConfigArgs {
    /// Path of the config, e.g. boards/qemu-virt/configs/default.toml.
    config: PathBuf,
    /// Board (default: inferred from a path boards/<board>/configs/...).
    #[arg(long)]
    board: Option<String>,
    /// GIC version to check against (default: the board's `gic.default`).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=3))]
    gic: Option<u8>,
    /// CPU model whose LLC colors are checked against (default: the board's `[cpu] default`).
    #[arg(long, value_parser = CPU_MODELS)]
    cpu: Option<String>,
}

#[derive(Args)]
struct TestArgs {
    /// Run only the steps and scenarios whose name contains this string.
    #[arg(long)]
    filter: Option<String>,
    /// How many QEMU scenarios run at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Directory of scenario files (default: ci/scenarios).
    #[arg(long, value_name = "DIR")]
    scenarios: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// GIC version(s) to measure: 2, 3 or both (GICv3 first).
    #[arg(long, default_value = "both", value_parser = ["2", "3", "both"])]
    gic: String,
    /// Where to write the JSON records (default: target/bench/bench.json).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Board: a directory under boards/.
    #[arg(long, default_value = "qemu-virt")]
    board: String,
    /// The Tessera config the bench guest runs in (name or path).
    #[arg(long, default_value = "bench")]
    config: String,
    /// QEMU CPU model.
    #[arg(long, default_value = "cortex-a72", value_parser = ["cortex-a53", "cortex-a72", "max"])]
    cpu: String,
    /// Kill a QEMU run and fail it after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Afterwards, run the Tessera bench image once more per GIC version with QEMU's trace log
    /// (-d in_asm,exec,nochain,int) and count the EL2 instructions between each physical IRQ
    /// and the virtual IRQ it becomes (timer and IPI), with the top functions.
    #[arg(long)]
    el2_trace: bool,
    /// With --el2-trace: keep the trace logs (target/bench/el2-trace-gicN.log, ~300 MB each).
    #[arg(long, requires = "el2_trace")]
    keep_trace: bool,
    /// Only one part: `gic` (bare against Tessera per GIC version), `sched` (the scheduling
    /// figures), `ring` (the channel figures), `console` (a victim's prints beside a console
    /// flood) or `llc` (LLC coloring, with a cache-model plugin), the last four on the first
    /// GIC version. Default: all.
    #[arg(long, value_parser = ["gic", "sched", "ring", "console", "llc"])]
    only: Option<String>,
}

#[derive(Args)]
struct TraceArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// Where the SVG goes (default: target/trace/<config>-gic<N>.svg).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Draw an existing console log instead of running QEMU (e.g. a scenario's
    /// target/test-logs/<name>.log).
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,
    /// Start of the window drawn, in µs from the first trace event.
    #[arg(long, value_name = "US")]
    from_us: Option<u64>,
    /// Length of the window drawn, in µs (default: two hyperperiods of the servers, at least
    /// four of the longest period, at most 50 ms).
    #[arg(long, value_name = "US")]
    span_us: Option<u64>,
    /// QEMU CPU model (the image is built for it).
    #[arg(long, default_value = "cortex-a72", value_parser = CPU_MODELS)]
    cpu: String,
    /// Number of physical cores QEMU models (default: the cores the config uses).
    #[arg(long)]
    smp: Option<u32>,
    /// Guest RAM of the QEMU machine (QEMU -m syntax).
    #[arg(long, default_value = "2G")]
    memory: String,
    /// Kill QEMU after this many seconds (what was logged is still drawn).
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Run without `-icount shift=0,sleep=off` (guest time then follows the host's clock and
    /// load; with it, one instruction is 1 ns and the schedule does not depend on the host).
    #[arg(long)]
    no_icount: bool,
}

fn main() {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn real_main(cli: Cli) -> Result<i32> {
    let paths = Paths::discover()?;
    match cli.command {
        Command::Setup => {
            setup::ensure(&paths)?;
            println!("xtask: setup complete");
            Ok(0)
        }
        Command::Build(args) => {
            let _ = args.release; // always a release build
            setup::ensure(&paths)?;
            let mut builder = Builder::new(&paths);
            let hb = hypervisor_build(
                &paths,
                &mut builder,
                &args.image,
                args.semihosting,
                args.cpu.as_deref(),
            )?;
            builder.build_hypervisor(&hb)?;
            Ok(0)
        }
        Command::Run(args) => cmd_run(&paths, args),
        Command::CheckConfig(args) => {
            setup::ensure(&paths)?;
            check::cmd_check_config(
                &paths,
                &args.config,
                args.board.as_deref(),
                args.gic,
                args.cpu.as_deref(),
            )
        }
        Command::Test(args) => {
            setup::ensure(&paths)?;
            test::run(
                &paths,
                args.filter.as_deref(),
                args.jobs.max(1),
                args.scenarios.as_deref(),
            )
        }
        Command::Trace(args) => cmd_trace(&paths, args),
        Command::Soak(args) => cmd_soak(&paths, args),
        Command::Fuzz(args) => fuzz::run(&paths, args.target.as_deref(), args.seconds),
        Command::Miri => miri::run(&paths),
        Command::Bench(args) => {
            setup::ensure(&paths)?;
            let gics = match args.gic.as_str() {
                "2" => vec![2],
                "3" => vec![3],
                _ => vec![3, 2],
            };
            bench::run(
                &paths,
                &bench::Options {
                    board: args.board,
                    config: args.config,
                    gics,
                    cpu: args.cpu,
                    memory: "2G".into(),
                    timeout: Duration::from_secs(args.timeout),
                    out: args.out,
                    el2_trace: args.el2_trace,
                    keep_trace: args.keep_trace,
                    only: args.only,
                },
            )
        }
    }
}

/// Turns the command-line image options into a build description (building guest overrides
/// that name guests of this repository) for CPU model `cpu` (`None`: the board's default).
fn hypervisor_build(
    paths: &Paths,
    builder: &mut Builder,
    a: &ImageArgs,
    semihosting: bool,
    cpu: Option<&str>,
) -> Result<HypervisorBuild> {
    let vm_value = |flag: &str, g: &str, example: &str| -> Result<(String, String)> {
        let (vm, value) = g
            .split_once('=')
            .with_context(|| format!("--{flag} {g:?}: expected VM=..., e.g. --{flag} {example}"))?;
        if vm.is_empty() || (value.is_empty() && flag != "cmdline") {
            bail!("--{flag} {g:?}: expected VM=... with a VM name and a value, e.g. --{flag} {example}");
        }
        Ok((vm.to_string(), value.to_string()))
    };
    let mut overrides = Vec::new();
    for g in &a.guests {
        let (vm, path) = vm_value("guest", g, "alpha=guests/hello")?;
        overrides.push((vm, builder.resolve_override(&path)?));
    }
    for g in &a.kernels {
        let (vm, path) = vm_value("kernel", g, "linux=/path/to/Image")?;
        overrides.push((vm, builder.resolve_override(&path)?));
    }
    let mut hb = HypervisorBuild::new(
        paths,
        &a.board,
        &a.config,
        a.gic,
        overrides,
        semihosting,
        None,
    )?;
    if let Some(cpu) = cpu {
        hb.set_cpu(cpu);
    }
    for g in &a.initrds {
        let (vm, path) = vm_value("initrd", g, "linux=/path/to/initrd.cpio")?;
        let p = std::path::Path::new(&path);
        let p = p
            .canonicalize()
            .with_context(|| format!("--initrd {g:?}: {} does not exist", p.display()))?;
        hb.initrds.push((vm, p));
    }
    for g in &a.cmdlines {
        hb.cmdlines
            .push(vm_value("cmdline", g, "linux=\"console=ttyAMA0\"")?);
    }
    Ok(hb)
}

/// Copies QEMU's console output to our stdout as it comes, and returns all of it.
fn tee(mut from: impl std::io::Read) -> Vec<u8> {
    use std::io::Write;
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let stdout = std::io::stdout();
    while let Ok(n @ 1..) = from.read(&mut buf) {
        let mut out = stdout.lock();
        let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
        all.extend_from_slice(&buf[..n]);
    }
    all
}

/// Decodes the hypervisor's defmt frames with `defmt-print`, or says how to.
fn show_defmt_log(paths: &Paths, frames: &std::path::Path, elf: &std::path::Path) {
    let frames_rel = util::display_rel(paths, frames);
    let elf_rel = util::display_rel(paths, elf);
    let decode = format!("defmt-print -e {elf_rel} < {frames_rel}");
    let input = match std::fs::File::open(frames) {
        Ok(f) => f,
        Err(e) => {
            println!("xtask: no defmt log at {frames_rel} ({e})");
            return;
        }
    };
    println!("xtask: hypervisor defmt log ({decode}):");
    let status = std::process::Command::new("defmt-print")
        .args(["-e".as_ref(), elf.as_os_str()])
        .stdin(input)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => println!("xtask: defmt-print ended with {s}; the frames are in {frames_rel}"),
        Err(_) => println!(
            "xtask: defmt-print is not installed; install it with `cargo install defmt-print \
             --locked` (a few minutes), then decode with: {decode}"
        ),
    }
}

fn cmd_soak(paths: &Paths, args: SoakArgs) -> Result<i32> {
    setup::ensure(paths)?;
    let mut builder = Builder::new(paths);
    let mut image = args.image;
    if image.config == "default" {
        image.config = "linux".into();
    }
    let hb = hypervisor_build(paths, &mut builder, &image, false, Some(&args.machine.cpu))?;
    let built = builder.build_hypervisor(&hb)?;
    let spec = qemu::QemuSpec {
        kernel: built.image,
        gic: hb.gic,
        cpu: args.machine.cpu,
        smp: args.machine.smp,
        memory: args.machine.memory,
        virtualization: true,
        gdb: false,
        semihosting: false,
        defmt_file: None,
        extra: Vec::new(),
    };
    soak::run(paths, &spec, args.runs, args.jobs, args.timeout)
}

fn cmd_run(paths: &Paths, args: RunArgs) -> Result<i32> {
    setup::ensure(paths)?;
    let mut builder = Builder::new(paths);
    if args.semihosting {
        println!(
            "xtask: WARNING: --semihosting: QEMU serves semihosting to every guest as well as \
             to the hypervisor (no EL2 trap): any guest can end QEMU, read and write host files \
             and run host commands (SYS_SYSTEM). Use it only with guests you trust."
        );
    }
    let mut hb = hypervisor_build(
        paths,
        &mut builder,
        &args.image,
        args.semihosting,
        Some(&args.machine.cpu),
    )?;
    hb.log = args.log.clone();
    if args.log.is_some() {
        hb.features.push("defmt-uart".into());
    }
    let built = builder.build_hypervisor(&hb)?;
    let defmt_file = args.log.as_ref().map(|_| {
        built
            .image
            .with_file_name(format!("defmt-{}.bin", hb.config_name))
    });
    let spec = qemu::QemuSpec {
        kernel: built.image.clone(),
        gic: hb.gic,
        cpu: args.machine.cpu.clone(),
        smp: args.machine.smp,
        memory: args.machine.memory.clone(),
        virtualization: true,
        gdb: args.gdb,
        semihosting: args.semihosting,
        defmt_file: defmt_file.clone(),
        extra: Vec::new(),
    };
    if args.gdb {
        println!("xtask: QEMU waits for gdb on :1234; attach from another terminal with:");
        println!(
            "  gdb-multiarch {} -ex 'target remote :1234'",
            util::display_rel(paths, &built.elf)
        );
        if !built.guest_elfs.is_empty() {
            println!("xtask: guest symbols (addresses are the guests' own IPAs; load them when you debug a guest):");
            for elf in &built.guest_elfs {
                println!("  (gdb) add-symbol-file {}", util::display_rel(paths, elf));
            }
        }
        println!("xtask: quit QEMU with Ctrl-A X (or `kill` in gdb)");
    }
    println!("xtask: {}", spec.describe());
    let mut cmd = spec.command();
    // The console goes through us (to the terminal unchanged) so that the run's status can be
    // read from the hypervisor's final line; input stays the terminal's.
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("could not start qemu-system-aarch64; run `cargo xtask setup` to install it")?;
    let console = child
        .stdout
        .take()
        .map(|out| std::thread::spawn(move || tee(out)));
    let timeout = (!args.gdb).then(|| Duration::from_secs(args.timeout));
    let outcome = qemu::wait(child, timeout)?;
    let log = console.and_then(|t| t.join().ok()).unwrap_or_default();
    if let Some(f) = &defmt_file {
        show_defmt_log(paths, f, &built.elf);
    }
    match outcome {
        qemu::Outcome::Exited(code) => {
            let status = qemu::hypervisor_status(&String::from_utf8_lossy(&log));
            match status {
                Some(s) => {
                    println!("xtask: Tessera's status {s} (QEMU exited with {code})");
                    if code != 0 && !(args.semihosting && i64::from(code) == i64::from(s)) {
                        println!(
                            "xtask: WARNING: QEMU's own status {code} is not the 0 of PSCI \
                             SYSTEM_OFF: something other than the hypervisor ended the machine"
                        );
                    }
                    Ok(i32::try_from(s).unwrap_or(255))
                }
                None => bail!(
                    "QEMU exited with {code} but Tessera printed no final status line \
                     (`[tessera] all VMs off; exit N`, `[tessera] boot error`, \
                     `[tessera] FATAL`)"
                ),
            }
        }
        qemu::Outcome::TimedOut(t) => bail!(
            "QEMU did not finish within {} s and was killed; look at the console output above, \
             or give more time with --timeout SECS",
            t.as_secs()
        ),
    }
}

fn cmd_trace(paths: &Paths, args: TraceArgs) -> Result<i32> {
    let window = trace::WindowSpec {
        from_us: args.from_us,
        span_us: args.span_us,
    };
    if let Some(log) = args.log {
        let stem = log
            .file_stem()
            .map_or("trace".into(), |s| s.to_string_lossy().into_owned());
        let out = args
            .out
            .unwrap_or_else(|| paths.target.join("trace").join(format!("{stem}.svg")));
        return trace::run(
            paths,
            &trace::Options {
                title: format!("Tessera scheduler trace: {}", log.display()),
                out,
                window,
                log,
                run: None,
            },
        );
    }
    setup::ensure(paths)?;
    let mut builder = Builder::new(paths);
    let hb = hypervisor_build(paths, &mut builder, &args.image, false, Some(&args.cpu))?;
    let built = builder.build_hypervisor(&hb)?;
    let name = format!("{}-gic{}", hb.config_name, hb.gic);
    let smp = match args.smp {
        Some(n) => n,
        None => util::config_cores(&hb.config_path)?,
    };
    let mut extra = Vec::new();
    if !args.no_icount {
        extra.extend(["-icount".to_string(), "shift=0,sleep=off".to_string()]);
    }
    let spec = qemu::QemuSpec {
        kernel: built.image.clone(),
        gic: hb.gic,
        cpu: args.cpu.clone(),
        smp,
        memory: args.memory.clone(),
        virtualization: true,
        gdb: false,
        defmt_file: None,
        semihosting: false,
        extra,
    };
    let dir = paths.target.join("trace");
    trace::run(
        paths,
        &trace::Options {
            title: format!(
                "Tessera scheduler trace: config {} (board {}, GICv{})",
                hb.config_name, hb.board, hb.gic
            ),
            out: args.out.unwrap_or_else(|| dir.join(format!("{name}.svg"))),
            window,
            log: dir.join(format!("{name}.log")),
            run: Some((spec, Duration::from_secs(args.timeout))),
        },
    )
}
