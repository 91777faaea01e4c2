//! A virtual PL011 per VM (DDI 0183 register map): what a guest writes to DR goes to the
//! console under its name (within the VM's rate budget, see src/console.rs); DR reads take
//! keyboard input when the VM has the input focus.
//! FR is answered from the VM's own state: the transmitter is always empty and never full (the
//! console takes every byte, queues or drops it, without making the guest wait), RXFE says
//! whether the VM's own input queue is empty. No register access takes a lock another VM
//! shares or waits on the physical UART.
//! Interrupts (the VM's own virtual SPI, `VUART_INTID`): the receive and receive-timeout
//! status (RXRIS, RTRIS) are raised while the VM's input queue holds bytes, the transmit
//! status (TXRIS) always (the FIFO is always empty); MIS = RIS & IMSC. The interrupt is made
//! pending when a status the guest unmasks becomes true: a write to IMSC that unmasks a raised
//! status, or input arriving while RX/RT are unmasked. A driver that reads until RXFE and
//! stops transmitting interrupts once it has nothing to send (Linux's amba-pl011) then sees
//! every byte and never a storm.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::console;
use crate::vm::{VmId, MAX_VMS};

const DR: u64 = 0x000;
const RSR: u64 = 0x004;
const FR: u64 = 0x018;
const IBRD: u64 = 0x024;
const FBRD: u64 = 0x028;
const LCR_H: u64 = 0x02c;
const CR: u64 = 0x030;
const IFLS: u64 = 0x034;
const IMSC: u64 = 0x038;
const RIS: u64 = 0x03c;
const MIS: u64 = 0x040;
const ICR: u64 = 0x044;
const DMACR: u64 = 0x048;

/// Interrupt bits (IMSC, RIS, MIS, ICR).
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;

const FR_RXFE: u64 = 1 << 4;
const FR_TXFE: u64 = 1 << 7;

/// PeriphID0..3 and PCellID0..3 at 0xFE0..0xFFC, as a real PL011 r1p5 reports them (Linux's
/// AMBA bus matches on them).
const ID_REGS: [u64; 8] = [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// Registers that only store what the guest wrote.
struct Plain {
    ibrd: AtomicU32,
    fbrd: AtomicU32,
    lcr_h: AtomicU32,
    cr: AtomicU32,
    ifls: AtomicU32,
    imsc: AtomicU32,
    dmacr: AtomicU32,
}

static STATE: [Plain; MAX_VMS] = [const {
    Plain {
        ibrd: AtomicU32::new(0),
        fbrd: AtomicU32::new(0),
        lcr_h: AtomicU32::new(0),
        cr: AtomicU32::new(0x300),
        ifls: AtomicU32::new(0x12),
        imsc: AtomicU32::new(0),
        dmacr: AtomicU32::new(0),
    }
}; MAX_VMS];

fn plain(vm: VmId, offset: u64) -> Option<&'static AtomicU32> {
    let s = STATE.get(vm.index())?;
    Some(match offset {
        IBRD => &s.ibrd,
        FBRD => &s.fbrd,
        LCR_H => &s.lcr_h,
        CR => &s.cr,
        IFLS => &s.ifls,
        IMSC => &s.imsc,
        DMACR => &s.dmacr,
        _ => return None,
    })
}

/// The raw interrupt status of VM `vm`'s vUART.
fn raw_status(vm: VmId) -> u32 {
    if console::vm_input_ready(vm) {
        INT_TX | INT_RX | INT_RT
    } else {
        INT_TX
    }
}

fn imsc(vm: VmId) -> u32 {
    STATE
        .get(vm.index())
        .map_or(0, |s| s.imsc.load(Ordering::Relaxed))
}

/// Input for VM `vm` arrived (console): interrupt it if it asked for receive interrupts.
pub fn input_arrived(vm: VmId) {
    if imsc(vm) & (INT_RX | INT_RT) != 0 {
        crate::vgic::inject_virtual(vm, crate::config::VUART_INTID);
    }
}

/// VM `vm` is being reset: its vUART goes back to its reset state.
pub fn reset(vm: VmId) {
    if let Some(s) = STATE.get(vm.index()) {
        for (r, v) in [
            (&s.ibrd, 0),
            (&s.fbrd, 0),
            (&s.lcr_h, 0),
            (&s.cr, 0x300),
            (&s.ifls, 0x12),
            (&s.imsc, 0),
            (&s.dmacr, 0),
        ] {
            r.store(v, Ordering::Relaxed);
        }
    }
}

/// A guest read of `size` bytes at `offset`.
pub fn read(vm: VmId, offset: u64, _size: usize) -> u64 {
    match offset {
        RIS => u64::from(raw_status(vm)),
        MIS => u64::from(raw_status(vm) & imsc(vm)),
        DR => console::vm_input_pop(vm).map_or(0, u64::from),
        RSR => 0,
        // TXFF and BUSY never set: a guest never waits for the console.
        FR => {
            if console::vm_input_ready(vm) {
                FR_TXFE
            } else {
                FR_TXFE | FR_RXFE
            }
        }
        0xfe0..=0xffc if offset.is_multiple_of(4) => ID_REGS[((offset - 0xfe0) / 4) as usize],
        _ => plain(vm, offset).map_or(0, |r| r.load(Ordering::Relaxed) as u64),
    }
}

/// A guest write of `size` bytes at `offset`.
pub fn write(vm: VmId, offset: u64, value: u64, _size: usize) {
    match offset {
        DR => console::vm_output(vm, value as u8),
        IMSC => {
            let Some(s) = STATE.get(vm.index()) else {
                return;
            };
            let new = value as u32 & 0x7ff;
            let old = s.imsc.swap(new, Ordering::Relaxed);
            // A status the guest just unmasked that is already raised interrupts at once.
            if (new & !old) & raw_status(vm) != 0 {
                crate::vgic::inject_virtual(vm, crate::config::VUART_INTID);
            }
        }
        // The statuses are levels of the queue's state: nothing to clear.
        ICR => {}
        _ => {
            if let Some(r) = plain(vm, offset) {
                r.store(value as u32, Ordering::Relaxed);
            }
        }
    }
}
