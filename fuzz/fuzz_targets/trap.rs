//! Fuzz target `trap`: see `tessera_fuzz_targets::trap`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz_targets::trap::run(data));
