//! The `defmt` global logger of the hypervisor: compact binary log frames, kept apart from
//! the human-readable console.
//!
//! With the `semihosting` feature (QEMU runs) frames go to the semihosting console, which
//! `cargo xtask run` points at a file (`-semihosting-config chardev=`) and decodes with
//! `defmt-print` when it is installed. Without it (hardware) they go to a RAM ring,
//! `TESSERA_DEFMT_RING`, that a debugger can dump. The level is chosen at build time with
//! `DEFMT_LOG` (default: errors only, so the hot paths carry no logging code).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use aarch64_cpu::registers::CNTPCT_EL0;
use tock_registers::interfaces::Readable;

// Timestamps are physical counter ticks (CNTFRQ_EL0 per second).
defmt::timestamp!("{=u64}", CNTPCT_EL0.get());

#[defmt::global_logger]
struct Logger;

static TAKEN: AtomicBool = AtomicBool::new(false);

struct EncoderCell(UnsafeCell<defmt::Encoder>);
// SAFETY: the encoder is only touched between `acquire` and `release`, which the TAKEN flag
// makes mutually exclusive across cores.
unsafe impl Sync for EncoderCell {}
static ENCODER: EncoderCell = EncoderCell(UnsafeCell::new(defmt::Encoder::new()));

/// Bytes of the RAM ring used when there is no semihosting host.
const RING_SIZE: usize = 16 * 1024;
#[allow(dead_code)] // Read by a debugger, not by Rust code.
struct Ring(UnsafeCell<[u8; RING_SIZE]>);
// SAFETY: written only under the TAKEN flag, like the encoder.
unsafe impl Sync for Ring {}
#[unsafe(no_mangle)]
static TESSERA_DEFMT_RING: Ring = Ring(UnsafeCell::new([0; RING_SIZE]));
#[unsafe(no_mangle)]
static TESSERA_DEFMT_RING_POS: AtomicUsize = AtomicUsize::new(0);

fn write_bytes(bytes: &[u8]) {
    #[cfg(feature = "semihosting")]
    super::semihosting::write_console(bytes);
    #[cfg(not(feature = "semihosting"))]
    for &b in bytes {
        let pos = TESSERA_DEFMT_RING_POS.fetch_add(1, Ordering::Relaxed) % RING_SIZE;
        // SAFETY: under the TAKEN flag (see `Ring`), and `pos` is in bounds.
        unsafe { (*TESSERA_DEFMT_RING.0.get())[pos] = b };
    }
}

// SAFETY: `acquire`/`release` bracket every `write` (defmt's contract) and the TAKEN flag
// serialises them across cores; EL2 runs with interrupts masked, so no handler can re-enter.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        while TAKEN
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: we hold TAKEN.
        unsafe { (*ENCODER.0.get()).start_frame(write_bytes) };
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // SAFETY: the caller acquired first (defmt's contract), so we hold TAKEN.
        unsafe { (*ENCODER.0.get()).end_frame(write_bytes) };
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: between acquire and release, so we hold TAKEN.
        unsafe { (*ENCODER.0.get()).write(bytes, write_bytes) };
    }
}
