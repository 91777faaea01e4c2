//! Polled PL011 console and the [`print!`](crate::print)/[`println!`](crate::println) macros;
//! polled input with [`read_byte`] and [`read_line`].
//!
//! Under Tessera the UART is emulated by trapping, and only `UARTDR` (0x000) and `UARTFR`
//! (0x018) are used (input reaches the VM that has the console's input focus). Bare, the runtime also sets `UARTCR` (UART, TX and RX enabled) once; the
//! baud rate is whatever firmware or QEMU left. A lock makes each `print!`/`println!` call
//! come out whole when several CPUs print.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use spin::{Mutex, Once};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

use crate::dt::{BootInfo, DEFAULT_CONSOLE};

register_bitfields! [u32,
    /// Flag register (PL011 TRM 3.3.3).
    FR [
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    /// Control register (PL011 TRM 3.3.8).
    CR [
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) []
    ]
];

register_structs! {
    /// The PL011 registers the runtime uses.
    Pl011Registers {
        (0x000 => dr: ReadWrite<u32>),
        (0x004 => _reserved0),
        (0x018 => fr: ReadOnly<u32, FR::Register>),
        (0x01c => _reserved1),
        (0x030 => cr: ReadWrite<u32, CR::Register>),
        (0x034 => @END),
    }
}

/// A PL011 UART, polled.
pub struct Pl011 {
    regs: &'static Pl011Registers,
}

// SAFETY: the registers are only accessed with single volatile MMIO loads/stores, which are
// fine from any CPU; interleaving of bytes between CPUs is prevented by `LINE_LOCK` (or
// accepted on the emergency path).
unsafe impl Sync for Pl011 {}
// SAFETY: as for `Sync`: the value is just the address of MMIO registers.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// A driver for the PL011 at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the address of a PL011's registers (or of a trap-emulated one), mapped
    /// as Device memory for the rest of the program, and no other code may program the UART in
    /// a conflicting way.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: the caller guarantees `base` addresses PL011 registers valid for 'static;
        // `Pl011Registers` is a `#[repr(C)]` block of volatile cells matching their layout.
        let regs = unsafe { &*(base as *const Pl011Registers) };
        Self { regs }
    }

    /// Enables the UART, transmitter and receiver (bare metal only: Tessera emulates DR/FR).
    pub fn enable(&self) {
        self.regs
            .cr
            .write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }

    /// Sends one byte, waiting while the transmit FIFO is full.
    pub fn write_byte(&self, byte: u8) {
        while self.regs.fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        self.regs.dr.set(u32::from(byte));
    }

    /// One received byte, if the receive FIFO holds one (does not wait).
    pub fn read_byte(&self) -> Option<u8> {
        if self.regs.fr.is_set(FR::RXFE) {
            None
        } else {
            // Bits 8..11 are the byte's error flags.
            Some((self.regs.dr.get() & 0xff) as u8)
        }
    }
}

static UART: Once<Pl011> = Once::new();
/// Serializes whole print calls between CPUs.
static LINE_LOCK: Mutex<()> = Mutex::new(());
/// Serializes input (an FR check and the DR read that follows it).
static INPUT_LOCK: Mutex<()> = Mutex::new(());
/// The last line [`read_line`] returned ended with '\r' (so a '\n' next is its "\r\n").
static AFTER_CR: AtomicBool = AtomicBool::new(false);
/// Bare metal: terminals want "\r\n". Under Tessera lines end with "\n" only.
static CRLF: AtomicBool = AtomicBool::new(false);

/// Sets the console up from the boot information (called once, before `main`).
pub(crate) fn init(info: &BootInfo) {
    let base = info.console.unwrap_or(DEFAULT_CONSOLE);
    let uart = UART.call_once(|| {
        // SAFETY: `base` comes from the DTB's console PL011 (or the `virt`/Tessera default
        // 0x0900_0000), which lies in the identity map's Device range; only this module
        // drives it.
        unsafe { Pl011::new(base) }
    });
    if !info.tessera {
        uart.enable();
        CRLF.store(true, Ordering::Relaxed);
    }
}

/// Writes to the UART (nothing before the console is initialized).
struct Writer;

impl Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let Some(uart) = UART.get() else {
            return Ok(());
        };
        let crlf = CRLF.load(Ordering::Relaxed);
        for b in s.bytes() {
            if b == b'\n' && crlf {
                uart.write_byte(b'\r');
            }
            uart.write_byte(b);
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>, newline: bool) {
    let _guard = LINE_LOCK.lock();
    let _ = Writer.write_fmt(args);
    if newline {
        let _ = Writer.write_str("\n");
    }
}

/// Prints a line even if another CPU (or this one, interrupted) holds the console lock:
/// waits a bounded time for it, then prints anyway. For fault and panic reports.
pub fn emergency_println(args: fmt::Arguments<'_>) {
    let mut guard = None;
    for _ in 0..1_000_000 {
        guard = LINE_LOCK.try_lock();
        if guard.is_some() {
            break;
        }
        core::hint::spin_loop();
    }
    let _ = Writer.write_fmt(args);
    let _ = Writer.write_str("\n");
    drop(guard);
}

/// Writes raw bytes to the console under the lock (no formatting).
pub fn write_bytes(bytes: &[u8]) {
    let _guard = LINE_LOCK.lock();
    let Some(uart) = UART.get() else { return };
    for &b in bytes {
        uart.write_byte(b);
    }
}

/// One byte of console input if one is waiting (polls FR.RXFE, then reads DR; never waits).
/// `None` also before the console is initialized.
pub fn read_byte() -> Option<u8> {
    let uart = UART.get()?;
    let _guard = INPUT_LOCK.lock();
    uart.read_byte()
}

/// Why [`read_line`] returned no line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadLineError {
    /// The counter passed the deadline; the bytes read so far are in the buffer.
    Timeout {
        /// How many bytes of a line had arrived.
        len: usize,
    },
}

/// Reads one line into `buf`, polling, until '\r' or '\n' (not stored; "\r\n" counts as one
/// end of line) or until `CNTVCT` passes `deadline`. Returns the line's length; bytes beyond
/// `buf`'s size are dropped.
pub fn read_line(buf: &mut [u8], deadline: u64) -> Result<usize, ReadLineError> {
    let mut len = 0;
    loop {
        match read_byte() {
            Some(b'\n') if len == 0 && AFTER_CR.swap(false, Ordering::Relaxed) => {}
            Some(b @ (b'\r' | b'\n')) => {
                AFTER_CR.store(b == b'\r', Ordering::Relaxed);
                return Ok(len);
            }
            Some(b) => {
                AFTER_CR.store(false, Ordering::Relaxed);
                if let Some(slot) = buf.get_mut(len) {
                    *slot = b;
                    len += 1;
                }
            }
            None => {
                if crate::timer::now() > deadline {
                    return Err(ReadLineError::Timeout { len });
                }
                // Under Tessera each poll is a trap: do not hammer it.
                for _ in 0..200 {
                    core::hint::spin_loop();
                }
            }
        }
    }
}

/// Prints to the console (whole, even with several CPUs printing).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::console::_print(format_args!($($arg)*), false)
    };
}

/// Prints a line to the console (whole, even with several CPUs printing).
#[macro_export]
macro_rules! println {
    () => {
        $crate::console::_print(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::console::_print(format_args!($($arg)*), true)
    };
}
