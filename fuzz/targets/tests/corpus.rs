//! Replays every file of `fuzz/corpus/<target>/` through its target's body, on the stable
//! toolchain (part of `cargo xtask test`): a crash the fuzzer once found, kept in the corpus,
//! stays fixed. Each target must have a non-empty corpus.

use std::path::Path;

#[test]
fn replay_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    for (name, run) in tessera_fuzz_targets::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for target {name}");
        for f in &files {
            let data = std::fs::read(f).expect("read corpus file");
            // A panic names the file: run it with `cargo +nightly fuzz run <target> <file>`.
            eprintln!("replay {name}: {}", f.display());
            run(&data);
        }
        println!("{name}: {} inputs replayed", files.len());
    }
}

/// The input that made `fdt` 0.2.0-alpha3 panic (u32 wrap of `off_dt_strings +
/// size_dt_strings`): the header check must reject it, and the target must not panic.
#[test]
fn dtb_header_wrap_is_rejected() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/dtb/regress-header-wrap");
    let data = std::fs::read(path).expect("regression input");
    assert!(!tessera_fuzz_targets::dtb::header_in_bounds(&data));
    tessera_fuzz_targets::dtb::run(&data);
    // The seeds (the DTBs Tessera generates) pass the check.
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/dtb/seed-default-alpha.dtb");
    assert!(tessera_fuzz_targets::dtb::header_in_bounds(
        &std::fs::read(seed).expect("seed")
    ));
}
