// Shared body of every guest's build.rs (each includes this file with `include!` and calls
// `link_guest(LOAD_BASE)`): links the guest with the runtime's linker script (guests/rt/link.ld)
// at its load address.

fn link_guest(load_base: u64) {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../rt/link_guest.rs");
    // Only the bare-metal targets use the runtime's linker script.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let manifest = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let script = manifest.join("../rt/link.ld");
    let script = script.canonicalize().unwrap_or(script);
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rustc-link-arg-bins=--defsym=__load_base={load_base:#x}");
}
