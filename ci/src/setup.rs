//! Idempotent setup: Rust targets, llvm-tools and QEMU >= 9.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{self, Paths};

const TARGETS: [&str; 2] = ["aarch64-unknown-none", "aarch64-unknown-none-softfloat"];
const MIN_QEMU_MAJOR: u32 = 9;
const BACKPORTS_LINE: &str = "deb http://deb.debian.org/debian bookworm-backports main";
const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/bookworm-backports.list";

pub fn ensure(paths: &Paths) -> Result<()> {
    ensure_rust(paths)?;
    ensure_qemu()
}

fn rustup(paths: &Paths) -> Command {
    let mut c = Command::new("rustup");
    // In the workspace root, rustup applies rust-toolchain.toml.
    c.current_dir(&paths.root);
    c
}

fn ensure_rust(paths: &Paths) -> Result<()> {
    let Some(installed) = util::output(rustup(paths).args(["target", "list", "--installed"]))
    else {
        return check_sysroot_without_rustup(paths);
    };
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        println!("xtask: setup: adding Rust targets {}", missing.join(" "));
        // Quietly: a mirror without these targets makes rustup print a long error.
        let added = rustup(paths)
            .args(["target", "add"])
            .args(&missing)
            .output()
            .map_err(anyhow::Error::from)
            .and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    let err = String::from_utf8_lossy(&o.stderr);
                    bail!(
                        "{}",
                        err.lines().next().unwrap_or("rustup target add failed")
                    )
                }
            });
        if let Err(e) = added {
            // Some dist mirrors serve no prebuilt standard library for bare-metal targets
            // ("unavailable for download"): build `core` from source instead.
            println!(
                "xtask: setup: no prebuilt standard library for {} ({e:#}); \
                 building core from source instead (rust-src component, -Zbuild-std)",
                missing.join(" ")
            );
            ensure_component(paths, "rust-src", "the Rust standard library's source")?;
        }
    }
    ensure_component(paths, "llvm-tools", "llvm-objcopy")?;
    util::llvm_objcopy(paths).map(|_| ())
}

/// Adds rustup component `name` (`what` says what it brings) unless it is installed.
fn ensure_component(paths: &Paths, name: &str, what: &str) -> Result<()> {
    let components = util::output(rustup(paths).args(["component", "list", "--installed"]))
        .context("`rustup component list --installed` failed")?;
    if !components.lines().any(|l| l.starts_with(name)) {
        println!("xtask: setup: adding the {name} component ({what})");
        util::run(
            rustup(paths).args(["component", "add", name]),
            &format!("rustup component add {name}"),
        )
        .with_context(|| {
            format!(
                "could not add the {name} component; check network access to the Rust dist server"
            )
        })?;
    }
    Ok(())
}

/// Without rustup (a distribution toolchain), only check and explain.
fn check_sysroot_without_rustup(paths: &Paths) -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = util::output(
        Command::new(&rustc)
            .args(["--print", "sysroot"])
            .current_dir(&paths.root),
    )
    .context("neither rustup nor rustc works; install Rust with rustup (https://rustup.rs)")?;
    let rustlib = Path::new(sysroot.trim()).join("lib/rustlib");
    for t in TARGETS {
        if !rustlib.join(t).is_dir() {
            bail!(
                "the Rust target {t} is not installed and rustup is not available; install Rust \
                 with rustup, then run `rustup target add {}`",
                TARGETS.join(" ")
            );
        }
    }
    util::llvm_objcopy(paths).map(|_| ())
}

/// Major version of `qemu-system-aarch64` on PATH, if any.
pub fn qemu_major() -> Option<u32> {
    let out = util::output(Command::new("qemu-system-aarch64").arg("--version"))?;
    parse_qemu_major(&out)
}

fn parse_qemu_major(version_output: &str) -> Option<u32> {
    let rest = version_output.split("version ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn ensure_qemu() -> Result<()> {
    match qemu_major() {
        Some(v) if v >= MIN_QEMU_MAJOR => return Ok(()),
        Some(v) => println!(
            "xtask: setup: qemu-system-aarch64 {v}.x is too old (need >= {MIN_QEMU_MAJOR})"
        ),
        None => println!("xtask: setup: qemu-system-aarch64 is not on PATH"),
    }
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let codename = os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_string());
    let debian = Path::new("/etc/debian_version").exists();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let bookworm = codename.as_deref() == Some("bookworm");
    let steps: Vec<String> = if bookworm {
        vec![
            format!("echo '{BACKPORTS_LINE}' > {BACKPORTS_LIST}   # if no backports source exists"),
            "apt-get update".into(),
            "apt-get install -y -t bookworm-backports qemu-system-arm".into(),
        ]
    } else {
        vec![
            "apt-get update".into(),
            "apt-get install -y qemu-system-arm".into(),
        ]
    };
    if !debian || !root {
        bail!(
            "QEMU >= {MIN_QEMU_MAJOR} (qemu-system-aarch64) is needed. {}",
            if debian {
                format!("As root, run:\n  {}", steps.join("\n  "))
            } else {
                "Install it with your system's package manager (the package is usually \
                 qemu-system-arm or qemu-system-aarch64), then run this command again."
                    .to_string()
            }
        );
    }
    if bookworm && !has_backports_source()? {
        println!("xtask: setup: adding bookworm-backports to {BACKPORTS_LIST}");
        std::fs::write(BACKPORTS_LIST, format!("{BACKPORTS_LINE}\n"))
            .with_context(|| format!("cannot write {BACKPORTS_LIST}"))?;
    }
    println!("xtask: setup: apt-get update");
    util::run(Command::new("apt-get").arg("update"), "apt-get update")?;
    let mut install = Command::new("apt-get");
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y"]);
    if bookworm {
        install.args(["-t", "bookworm-backports"]);
    }
    install.arg("qemu-system-arm");
    println!(
        "xtask: setup: installing qemu-system-arm{}",
        if bookworm {
            " from bookworm-backports"
        } else {
            ""
        }
    );
    util::run(&mut install, "apt-get install qemu-system-arm")?;
    match qemu_major() {
        Some(v) if v >= MIN_QEMU_MAJOR => {
            println!("xtask: setup: qemu-system-aarch64 {v}.x installed");
            Ok(())
        }
        other => bail!(
            "after installing qemu-system-arm, qemu-system-aarch64 is {}; install QEMU >= \
             {MIN_QEMU_MAJOR} by hand (see https://www.qemu.org/download/)",
            other.map_or("still missing".to_string(), |v| format!("version {v}"))
        ),
    }
}

fn has_backports_source() -> Result<bool> {
    let mut files = vec![std::path::PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    Ok(files.iter().any(|f| {
        std::fs::read_to_string(f)
            .map(|t| {
                t.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .any(|l| l.contains("bookworm-backports"))
            })
            .unwrap_or(false)
    }))
}

#[cfg(test)]
mod tests {
    use super::parse_qemu_major;

    #[test]
    fn qemu_version() {
        assert_eq!(
            parse_qemu_major("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)\nCopyright"),
            Some(10)
        );
        assert_eq!(parse_qemu_major("QEMU emulator version 7.2.0"), Some(7));
        assert_eq!(parse_qemu_major("nonsense"), None);
    }
}
