//! Fuzz target `ring`: see `tessera_fuzz_targets::ring`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz_targets::ring::run(data));
