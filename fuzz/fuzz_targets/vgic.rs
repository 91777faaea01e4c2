//! Fuzz target `vgic`: see `tessera_fuzz_targets::vgic`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz_targets::vgic::run(data));
