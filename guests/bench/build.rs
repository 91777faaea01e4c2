//! Links the guest with the shared runtime linker script (guests/rt/link.ld) at its load address.

use std::path::PathBuf;

/// Where the image is linked and must be loaded: RAM base (0x4000_0000) + text_offset (0x8_0000).
const LOAD_BASE: u64 = 0x4008_0000;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Only the bare-metal targets use the runtime's linker script.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest.join("../rt/link.ld");
    let script = script.canonicalize().unwrap_or(script);
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rustc-link-arg-bins=--defsym=__load_base={LOAD_BASE:#x}");
}
