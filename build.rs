//! Build script of the EL2 image: validates `boards/$TESSERA_BOARD/board.toml` with
//! `boards/$TESSERA_BOARD/configs/$TESSERA_CONFIG.toml` (crates/config) and writes into OUT_DIR
//! `config.rs` (the `BOARD`, `VMS`, `PCPUS`, `CHANNELS` tables, the `HYPERVISOR` coloring and the
//! `BUNDLE` descriptor),
//! `link.x` and `payloads.bin` (the payload bundle; `cargo xtask` writes the same beside the
//! image).
//!
//! Environment (docs/internals.md): `TESSERA_BOARD`, `TESSERA_CONFIG` (name or path),
//! `TESSERA_GIC` (2 | 3), `TESSERA_CPU` (the CPU model: selects the LLC geometry colors are
//! validated against), `TESSERA_GUEST_DIR`, `TESSERA_IMAGE_<VM>`.
//! Without `TESSERA_BOARD` (a bare `cargo clippy -p tessera --target ...`) it uses
//! `qemu-virt` / `default` and puts empty placeholders into the bundle for guest images not
//! built yet.

use std::env;
use std::path::PathBuf;
use std::process::exit;

use tessera_config::{MissingImages, Options};

fn var(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    env::var(name).ok().filter(|s| !s.is_empty())
}

fn main() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=build.rs");

    let board_env = var("TESSERA_BOARD");
    let bare = board_env.is_none();
    let board = board_env.unwrap_or_else(|| "qemu-virt".into());
    let config = var("TESSERA_CONFIG").unwrap_or_else(|| "default".into());
    let mut opts = Options::new(&root, &board, &config);
    if let Some(gic) = var("TESSERA_GIC") {
        match gic.parse::<u8>() {
            Ok(v @ (2 | 3)) => opts.gic = Some(v),
            _ => {
                eprintln!("error: TESSERA_GIC = {gic:?}: must be 2 or 3");
                exit(1);
            }
        }
    }
    // The CPU model the image is built for: selects the LLC geometry colors are validated
    // against (default: board.toml's `[cpu] default`).
    if let Some(cpu) = var("TESSERA_CPU") {
        opts.cpu = Some(cpu);
    }
    if let Some(dir) = var("TESSERA_GUEST_DIR") {
        opts.guest_dir = PathBuf::from(dir);
    }
    opts.read_image_env = true;
    // The defmt level is compiled in.
    var("DEFMT_LOG");
    opts.missing_images = if bare {
        MissingImages::Placeholder
    } else {
        MissingImages::Error
    };
    // Notice new or removed config files too.
    println!("cargo:rerun-if-changed={}", opts.board_dir.display());
    println!(
        "cargo:rerun-if-changed={}",
        opts.board_dir.join("configs").display()
    );

    let system = match tessera_config::load(&opts) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!(
                "tessera: invalid configuration (board `{board}`, config `{}`): {} problem(s)",
                opts.config.display(),
                errors.len()
            );
            for e in &errors {
                eprintln!("error: {e}");
            }
            // Rerun when any input changes, even though we failed.
            println!("cargo:rerun-if-changed={}", opts.config.display());
            exit(1);
        }
    };
    if bare {
        println!(
            "cargo:warning=TESSERA_BOARD is not set: building for board `qemu-virt`, config `{config}` (use `cargo xtask build`)"
        );
    }
    for w in &system.warnings {
        println!("cargo:warning={w}");
    }
    for v in &system.env_vars {
        println!("cargo:rerun-if-env-changed={v}");
    }
    for p in &system.inputs {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    let generated = match tessera_config::codegen::write_all(&system, &out) {
        Ok(g) => g,
        Err(e) => {
            eprintln!(
                "error: cannot write generated files into {}: {e}",
                out.display()
            );
            exit(1);
        }
    };
    // The linker script only makes sense for the bare-metal target.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{}", generated.link_x.display());
        // defmt's own section layout (its log strings live in an INFO section of the ELF).
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
}
