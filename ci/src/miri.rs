//! `cargo xtask miri`: the tests of the pure crates that guests' data reaches, under Miri
//! (nightly, installed with its `miri` component if missing): undefined behaviour, out-of-
//! bounds or misaligned accesses, data races in the host tests' threads, leaks.
//! Property tests run few cases there (`PROPTEST_CASES`, and `cfg(miri)` where a test sets
//! its own count); the long stress tests are skipped under Miri (`cfg_attr(miri, ignore)`).

use std::process::{Command, Stdio};

use anyhow::Result;

use crate::util::{self, Paths};

/// The crates checked, each guests' data reaches: ring (shared memory from a peer VM),
/// vgic-model (trapped GIC accesses), abi (hypercall arguments), trap (ESR decoding).
pub const CRATES: [&str; 4] = [
    "tessera-ring",
    "tessera-vgic-model",
    "tessera-abi",
    "tessera-trap",
];

/// `cargo miri test` of [`CRATES`]: the exit status of the run.
pub fn run(paths: &Paths) -> Result<i32> {
    ensure_miri()?;
    let mut cmd = command(paths);
    println!("xtask miri: {}", CRATES.join(", "));
    let status = cmd.status()?;
    Ok(if status.success() { 0 } else { 1 })
}

/// The Miri command (also used by `cargo xtask test`'s `miri` step).
pub fn command(paths: &Paths) -> Command {
    let mut c = Command::new("rustup");
    c.current_dir(&paths.root)
        .args(["run", "nightly", "cargo", "miri", "test"]);
    for k in CRATES {
        c.args(["-p", k]);
    }
    // Own target directory: Miri's artefacts differ from the normal build's.
    c.env("CARGO_TARGET_DIR", paths.target.join("miri"))
        .env("PROPTEST_CASES", "8")
        // Proptest keeps failing seeds in files next to the tests: allow file access.
        .env("MIRIFLAGS", "-Zmiri-disable-isolation")
        .env_remove("CARGO");
    c
}

/// Nightly with the `miri` component, installed if missing (saying so).
pub fn ensure_miri() -> Result<()> {
    let ok = Command::new("rustup")
        .args(["run", "nightly", "cargo", "miri", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("xtask miri: installing the nightly toolchain's miri component");
        util::run(
            Command::new("rustup").args([
                "component",
                "add",
                "miri",
                "rust-src",
                "--toolchain",
                "nightly",
            ]),
            "rustup component add miri --toolchain nightly",
        )?;
        util::run(
            Command::new("rustup").args(["run", "nightly", "cargo", "miri", "setup"]),
            "cargo miri setup",
        )?;
    }
    Ok(())
}
