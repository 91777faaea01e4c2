//! `tessera-llc`: a QEMU TCG plugin (system mode, AArch64) that simulates a shared last-level
//! cache on *physical* addresses, so that the effect of Tessera's cache coloring can be
//! measured although QEMU models no cache (`cargo xtask bench --only llc`).
//!
//! Built against plugin API v4 (`qemu-plugin` with `plugin-api-v4`: QEMU 10.0 refuses v5).
//!
//! # Use
//!
//! `qemu-system-aarch64 ... -plugin libtessera_llc.so,size=1M,ways=16,line=64,l1=32K,l1ways=2,ram=0x40000000:2G,core_reg=TPIDR_EL2,out=llc.txt`
//!
//! - `size`, `ways` (required), `line` (default 64): the LLC, set-associative, true LRU,
//!   write-allocate, shared by all cores. Sizes take `K`/`M`/`G` suffixes or `0x` hex.
//! - `l1`, `l1ways` (default none; ways default 2): private L1 data and instruction caches per
//!   core in front of it (same geometry each, non-inclusive, LRU); only their misses reach the
//!   LLC.
//! - `ram=<base>:<size>`: the machine's RAM; instruction fetches from it are modelled too (each
//!   executed translation block fetches the lines its instructions occupy). QEMU gives plugins
//!   an instruction's host address, not its physical one: the plugin learns the RAM block's
//!   host-to-physical offset from the first block translated in RAM, which QEMU's `virt` boot
//!   runs with the MMU off (its boot stub at the RAM base). Without `ram=`: data only.
//! - `core_reg=<register>`: a register holding the executing physical core's index (Tessera
//!   keeps it in `TPIDR_EL2`): read at the start of every block to attribute what follows.
//!   Needed under `-icount` (single-threaded TCG), where QEMU 10.0 hands every callback the
//!   index of the vCPU that *translated* the block, wrong for code several cores share (see
//!   `plugin.rs`).
//! - `out`: the report file written at exit (otherwise standard error).
//!
//! Every load and store to RAM (not MMIO) is one access per cache line it touches, under the
//! physical address QEMU resolved for it; the core is QEMU's vCPU index (= the hypervisor's
//! physical core), or `core_reg`'s value. Write-backs and page-table walks are not modelled.
//!
//! # Measurement windows
//!
//! A guest brackets what it measures with two marker instructions, recognised when QEMU
//! translates them ([`model::MARKER_START`] `orr x9, x9, x9` opens a window on the executing
//! core, [`model::MARKER_END`] `orr x10, x10, x10` closes it). Both are architectural no-ops
//! that compilers do not emit (they write moves as `orr xD, xzr, xM`). Per core the plugin
//! counts the whole run and the sum of its closed windows, keeps each window's misses for the
//! median and maximum, and the page colors the windows touched.
//!
//! # Report
//!
//! Written by QEMU's exit callback (normal exit: PSCI SYSTEM_OFF, semihosting exit, SIGTERM or
//! SIGINT; not SIGKILL); format in [`model::report`].

pub mod model;

#[cfg(not(test))]
mod plugin;
