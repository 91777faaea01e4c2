//! Architecture support. Tessera runs only on AArch64 at EL2.
mod aarch64;
pub use aarch64::*;
