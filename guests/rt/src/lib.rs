//! `tessera-guest-rt`: a small `no_std` AArch64 EL1 runtime for Tessera's test guests.
//!
//! The same image boots under Tessera and bare on QEMU `virt` (`-kernel guest.bin`):
//!
//! - [`boot`]: the arm64 Image header and entry points (primary and PSCI secondaries), per-CPU
//!   stacks, FP/SIMD, the EL1 identity-mapped MMU, BSS; then the guest's `main` (see [`entry!`]).
//! - [`dt`]: what the device tree says ([`BootInfo`]): console, RAM, CPUs, PSCI conduit,
//!   bootargs, and whether Tessera is underneath.
//! - [`console`]: polled PL011 (only DR and FR, which Tessera emulates) and [`print!`]/[`println!`].
//! - [`psci`], [`tessera`], [`smccc`]: firmware and hypervisor calls.
//! - [`exception`]: EL1 vectors, a hookable synchronous handler and fault probes.
//! - [`irq`], [`gic`]: interrupts (GICv2/GICv3 from the device tree, handlers, SGIs).
//! - [`timer`]: the virtual counter and virtual timer.
//! - [`ring`]: Tessera's inter-VM channels (found in the DT; send, receive by priority,
//!   wait for a doorbell).
//! - [`cpu`]: the current CPU's index, starting other CPUs.
//! - [`exit`]: end the guest with an exit code (see docs/internals.md).
//!
//! A guest is a `#![no_std] #![no_main]` binary whose build.rs links with `guests/rt/link.ld`
//! and which names its main function with [`entry!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use tessera_guest_rt::{entry, println, BootInfo};
//! entry!(main);
//! fn main(info: &'static BootInfo) -> u32 {
//!     println!("hi, {} MiB of RAM", info.ram_size() >> 20);
//!     0 // exit code
//! }
//! ```
#![no_std]

pub mod boot;
pub mod console;
pub mod cpu;
pub mod dt;
pub mod event;
pub mod exception;
pub mod gic;
pub mod irq;
mod mmu;
mod panic;
mod power;
pub mod psci;
pub mod ring;
pub mod smccc;
pub mod tessera;
pub mod timer;

pub use boot::{boot_info, MAX_CPUS};
pub use dt::{BootInfo, Device, GicVersion, MemRegion};
pub use power::exit;
pub use tessera_abi as abi;
