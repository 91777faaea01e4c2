//! Tessera: a static-partitioning real-time hypervisor for AArch64, running at EL2.
//!
//! The board, the VMs and their resources come from a config validated at build time
//! (`build.rs` → `crates/config`); this image only carries them out.
#![no_std]
#![no_main]

mod arch;
mod channel;
mod config;
mod console;
mod drivers;
mod hypercall;
mod ids;
mod llc;
mod mm;
mod panic;
mod payload;
mod pcpu;
mod smccc;
mod sysreg;
mod trap;
mod vdev;
mod vgic;
mod vm;
mod vpsci;
