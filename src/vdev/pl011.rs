//! A virtual PL011 per VM (DDI 0183 register map): what a guest writes to DR goes to the
//! console under its name (within the VM's rate budget, see src/console.rs); DR reads take
//! keyboard input when the VM has the input focus.
//! FR is answered from the VM's own state: the transmitter is always empty and never full (the
//! console takes every byte, queues or drops it, without making the guest wait), RXFE says
//! whether the VM's own input queue is empty. No register access takes a lock another VM
//! shares or waits on the physical UART.
//! Interrupts arrive with the vGIC (issue #3): RIS/MIS read as zero until then.

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
const DMACR: u64 = 0x048;

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

/// A guest read of `size` bytes at `offset`.
pub fn read(vm: VmId, offset: u64, _size: usize) -> u64 {
    match offset {
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
        _ => {
            if let Some(r) = plain(vm, offset) {
                r.store(value as u32, Ordering::Relaxed);
            }
        }
    }
}
