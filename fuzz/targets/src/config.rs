//! Target `config`: config text (UTF-8 TOML) validated against the `qemu-virt` board, as
//! `cargo xtask check-config` and the image's build.rs do (`tessera_config::load`). A first
//! line `#gic=2` selects GICv2. Invariants: no panic; a failed load names at least one
//! problem, and each renders; a successful load yields a partition report and the generated
//! Rust and linker script (the build's other outputs) without panicking.
//!
//! Images are never read from the host: missing images become placeholders, the guest
//! directory is empty, environment overrides are off, and inputs naming device or kernel
//! pseudo-file trees (`dev/`, `proc/`, `sys/`) are skipped (an image path of `/dev/zero`
//! would read forever; that is the host's business, not the validator's).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tessera_config::{MissingImages, Options, Report};

/// The repository root (fuzz/targets/../..).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// A directory of this process's own for the config file and the (empty) guest directory.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("tessera-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(d.join("guests")).expect("temp dir");
        d
    })
}

/// One input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ["dev/", "proc/", "sys/"].iter().any(|p| text.contains(p)) {
        return;
    }
    let gic = text.starts_with("#gic=2").then_some(2);
    let root = repo_root();
    let dir = scratch();
    // Name the file per thread (the replay test runs single-threaded, libFuzzer too).
    let path = dir.join(format!("{:?}.toml", std::thread::current().id()).replace(['(', ')'], ""));
    std::fs::write(&path, text).expect("write the config");
    let mut opts = Options::new(&root, "qemu-virt", path.to_str().expect("UTF-8 temp path"));
    opts.gic = gic;
    opts.guest_dir = dir.join("guests");
    opts.read_image_env = false;
    opts.missing_images = MissingImages::Placeholder;
    match tessera_config::load(&opts) {
        Ok(system) => {
            let report = Report::new(&system);
            assert!(!report.to_string().is_empty());
            assert!(!tessera_config::codegen::config_rs_text(&system).is_empty());
            assert!(!tessera_config::codegen::link_x_text(&system).is_empty());
        }
        Err(errs) => {
            assert!(!errs.is_empty(), "a failed load must say why");
            for e in &errs {
                assert!(!e.to_string().is_empty());
            }
        }
    }
}
