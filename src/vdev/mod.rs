//! Emulated devices: guest accesses to their guest-physical windows trap (nothing is mapped
//! there in stage 2) and are carried out here.

mod pl011;

pub use pl011::{input_arrived as vuart_input_arrived, reset as vuart_reset};

use crate::arch::esr::Esr;
use crate::arch::TrapFrame;
use crate::vm::VcpuRef;

/// Size of each emulated device window.
const WINDOW: u64 = 0x1000;

/// Emulates the access that faulted at `ipa`, if an emulated device of VM `vm` lives there.
/// `None`: no device here (a real stage-2 fault). `Some(false)`: a device, but an access it
/// cannot decode (no valid syndrome: e.g. a load pair), treated as a fault.
pub fn mmio(frame: &mut TrapFrame, caller: VcpuRef, ipa: u64, esr: Esr) -> Option<bool> {
    let vm = caller.vm;
    if let Some(r) = crate::vgic::mmio(frame, caller, ipa, esr) {
        return Some(r);
    }
    let d = crate::vm::desc(vm);
    if ipa >= d.vuart_ipa && ipa - d.vuart_ipa < WINDOW {
        if !esr.isv() {
            return Some(false);
        }
        let offset = ipa - d.vuart_ipa;
        let size = esr.access_size();
        if esr.is_write() {
            let v = frame.reg(esr.srt());
            pl011::write(vm, offset, v, size);
        } else {
            let mut v = pl011::read(vm, offset, size);
            if esr.sign_extend() {
                let shift = 64 - 8 * size as u32;
                v = (((v << shift) as i64) >> shift) as u64;
            }
            if !esr.sixty_four() {
                v &= 0xffff_ffff;
            }
            frame.set_reg(esr.srt(), v);
        }
        return Some(true);
    }
    None
}
