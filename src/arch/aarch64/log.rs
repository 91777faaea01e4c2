//! The `defmt` global logger of the hypervisor: compact binary log frames, kept apart from
//! the human-readable console.
//!
//! With the feature `defmt-uart` and a board with a log UART (board.toml `[log]`: on QEMU
//! `virt`, the second PL011 that QEMU creates for a second `-serial`), frames go to that UART,
//! which `cargo xtask run --log LEVEL` points at a file and decodes with `defmt-print`. No guest
//! can write there: the UART is mapped at EL2 only, and the config validator refuses to pass it
//! through. Otherwise (hardware, or a board without one) they go to a RAM ring,
//! `TESSERA_DEFMT_RING`, that a debugger can dump. (Semihosting, the old path, is a channel
//! every guest can use too.) The level is chosen at build time with `DEFMT_LOG` (default:
//! errors only, so the hot paths carry no logging code).

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
    #[cfg(feature = "defmt-uart")]
    if let Some(base) = crate::config::BOARD.log_uart {
        let uart = crate::drivers::pl011::Pl011::new(base);
        for &b in bytes {
            uart.write_byte(b);
        }
        return;
    }
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
