//! Paths of the workspace and small helpers for running tools.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Where things are.
pub struct Paths {
    /// The workspace root (holds Cargo.toml, boards/, guests/, ci/).
    pub root: PathBuf,
    /// Cargo's target directory: `$CARGO_TARGET_DIR` if set, else `<root>/target`.
    pub target: PathBuf,
}

impl Paths {
    pub fn discover() -> Result<Paths> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.join("..").canonicalize().with_context(|| {
            format!(
                "cannot find the workspace root above {}",
                manifest.display()
            )
        })?;
        if !root.join("Cargo.toml").is_file() || !root.join("boards").is_dir() {
            bail!(
                "{} does not look like the Tessera workspace (no Cargo.toml or boards/); run \
                 `cargo xtask` from a Tessera checkout",
                root.display()
            );
        }
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) if !t.is_empty() => {
                let t = PathBuf::from(t);
                if t.is_absolute() {
                    t
                } else {
                    std::env::current_dir()?.join(t)
                }
            }
            _ => root.join("target"),
        };
        Ok(Paths { root, target })
    }

    /// `target/guests`: the raw guest binaries.
    pub fn guest_dir(&self) -> PathBuf {
        self.target.join("guests")
    }
}

/// A path shown relative to the workspace root when it lies below it.
pub fn display_rel(paths: &Paths, p: &Path) -> String {
    p.strip_prefix(&paths.root)
        .unwrap_or(p)
        .display()
        .to_string()
}

/// `cargo`, the same one that runs xtask, in the workspace root.
pub fn cargo(paths: &Paths) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(&paths.root);
    c
}

/// `cargo <subcommand> --target <target>` for one of the bare-metal AArch64 targets.
///
/// When the toolchain has no prebuilt standard library for `target` (some Rust dist mirrors
/// offer only host components: `rustup target add` then fails with "unavailable for
/// download"), `core` is built from the `rust-src` component instead (`-Zbuild-std`, allowed
/// on a stable toolchain with `RUSTC_BOOTSTRAP=1`, as the Rust project's own builds do).
/// Setup decides which of the two applies.
pub fn cargo_for_target(paths: &Paths, subcommand: &str, target: &str) -> Command {
    let mut c = cargo(paths);
    c.args([subcommand, "--target", target]);
    if !has_prebuilt_std(paths, target) {
        c.env("RUSTC_BOOTSTRAP", "1").args([
            "-Zbuild-std=core,compiler_builtins",
            "-Zbuild-std-features=compiler-builtins-mem",
        ]);
    }
    c
}

/// Whether the active toolchain's sysroot holds a prebuilt standard library for `target`.
pub fn has_prebuilt_std(paths: &Paths, target: &str) -> bool {
    sysroot(paths).is_some_and(|s| s.join("lib/rustlib").join(target).join("lib").is_dir())
}

/// The active toolchain's sysroot (`rustc --print sysroot` in the workspace root).
pub fn sysroot(paths: &Paths) -> Option<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    output(
        Command::new(rustc)
            .args(["--print", "sysroot"])
            .current_dir(&paths.root),
    )
    .map(|s| PathBuf::from(s.trim()))
}

/// Runs a command with the terminal as its output; fails naming `what` if it fails.
pub fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("{what}: could not start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status}); see the output above");
    }
    Ok(())
}

/// Runs a command and returns its standard output; `None` if it cannot start or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The host triple of the active Rust toolchain.
pub fn host_triple(paths: &Paths) -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let vv = output(Command::new(&rustc).arg("-vV").current_dir(&paths.root))
        .context("`rustc -vV` failed; is a Rust toolchain installed (rustup)?")?;
    vv.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .context("`rustc -vV` printed no host triple")
}

/// `llvm-objcopy` of the rustup `llvm-tools` component.
pub fn llvm_objcopy(paths: &Paths) -> Result<PathBuf> {
    llvm_tool(paths, "llvm-objcopy")
}

/// A tool (`llvm-objcopy`, `llvm-nm`, ...) of the rustup `llvm-tools` component.
pub fn llvm_tool(paths: &Paths, tool: &str) -> Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = output(
        Command::new(&rustc)
            .args(["--print", "sysroot"])
            .current_dir(&paths.root),
    )
    .context("`rustc --print sysroot` failed")?;
    let bin = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host_triple(paths)?)
        .join("bin")
        .join(tool);
    if !bin.is_file() {
        bail!(
            "{} is missing; install it with `rustup component add llvm-tools` (or run `cargo \
             xtask setup`)",
            bin.display()
        );
    }
    Ok(bin)
}

/// `llvm-objcopy -O binary elf bin`.
pub fn objcopy_binary(paths: &Paths, elf: &Path, bin: &Path) -> Result<()> {
    if let Some(dir) = bin.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let objcopy = llvm_objcopy(paths)?;
    run(
        Command::new(objcopy)
            .args(["-O", "binary"])
            .arg(elf)
            .arg(bin),
        &format!("llvm-objcopy of {}", elf.display()),
    )
}

/// Reads a small TOML file.
pub fn read_toml(path: &Path) -> Result<toml::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))
}

/// The number of cores a config uses (highest `cpus` entry + 1), at least 1.
pub fn config_cores(config: &Path) -> Result<u32> {
    let v = read_toml(config)?;
    let max = v
        .get("vms")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|vm| vm.get("cpus").and_then(|c| c.as_array()))
        .flatten()
        .filter_map(|c| c.as_integer())
        .max()
        .unwrap_or(0);
    u32::try_from(max + 1).with_context(|| format!("{}: bad cpus", config.display()))
}
