//! Arm PrimeCell PL011 UART (DDI 0183), polled: the hypervisor's console.

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
        (0x1000 => @END),
    }
}

const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;

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

    pub fn write_byte(&self, b: u8) {
        let r = self.regs();
        while r.fr.get() & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        r.dr.set(b as u32);
    }

    pub fn read_byte(&self) -> Option<u8> {
        let r = self.regs();
        (r.fr.get() & FR_RXFE == 0).then(|| (r.dr.get() & 0xff) as u8)
    }
}
