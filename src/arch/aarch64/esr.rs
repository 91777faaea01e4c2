//! Decoding of ESR_EL2: the pure logic lives in the host-tested `tessera-trap` crate.
pub use tessera_trap::{decode, injected_abort_esr, injected_undef_esr, Esr, Trap};
