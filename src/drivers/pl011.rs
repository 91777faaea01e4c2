//! Arm PrimeCell PL011 UART (DDI 0183): the hypervisor's console. Output is polled; input
//! raises the board's console interrupt (when board.toml names it).
//!
//! The console (src/console.rs) writes with [`Pl011::try_write_byte`], which never waits: a
//! full transmit FIFO leaves the byte queued in RAM for the next drain. Only the hypervisor's
//! own last words (a fatal report, the final line before power-off) use the waiting
//! [`Pl011::write_byte`].

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

use crate::mm::phys_to_mmio;

register_structs! {
    Registers {
        (0x000 => dr: ReadWrite<u32>),
        (0x004 => _reserved0),
        (0x018 => fr: ReadOnly<u32>),
        (0x01c => _reserved1),
        (0x038 => imsc: ReadWrite<u32>),
        (0x03c => _reserved2),
        (0x044 => icr: ReadWrite<u32>),
        (0x048 => _reserved3),
        (0x1000 => @END),
    }
}

const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
/// IMSC/ICR: receive and receive-timeout interrupts.
const INT_RX_RT: u32 = (1 << 4) | (1 << 6);

/// A PL011 the loader (QEMU, the Pi firmware) already configured: Tessera only moves bytes.
pub struct Pl011 {
    base: u64,
}

impl Pl011 {
    pub const fn new(base: u64) -> Self {
        Pl011 { base }
    }

    fn regs(&self) -> &'static Registers {
        // SAFETY: `base` is the board's console UART from board.toml, which the EL2 map covers
        // as Device memory (and which is accessible with the MMU off); layout per DDI 0183.
        unsafe { &*phys_to_mmio::<Registers>(self.base) }
    }

    /// Sends `b`, waiting while the transmit FIFO is full.
    pub fn write_byte(&self, b: u8) {
        let r = self.regs();
        while r.fr.get() & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        r.dr.set(b as u32);
    }

    /// Sends `b` if the transmit FIFO has room; `false` (nothing sent) if it is full.
    pub fn try_write_byte(&self, b: u8) -> bool {
        let r = self.regs();
        if r.fr.get() & FR_TXFF != 0 {
            return false;
        }
        r.dr.set(b as u32);
        true
    }

    /// Raises the UART's interrupt while received bytes wait (receive and receive-timeout
    /// interrupts only: transmission stays polled).
    pub fn enable_rx_interrupt(&self) {
        let r = self.regs();
        r.icr.set(INT_RX_RT);
        r.imsc.set(INT_RX_RT);
    }

    /// One received byte, if the receive FIFO holds one (never waits).
    pub fn read_byte(&self) -> Option<u8> {
        let r = self.regs();
        (r.fr.get() & FR_RXFE == 0).then(|| (r.dr.get() & 0xff) as u8)
    }
}
