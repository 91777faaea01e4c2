//! The Tessera hypercall ABI (crates/abi) as the hypervisor implements it.

use tessera_abi::{Call, Error, CONSOLE_WRITE_MAX, VERSION_MAJOR, VERSION_MINOR};
use tessera_stage2::GuestPhysAddr;

use crate::arch::TrapFrame;
use crate::console;
use crate::pcpu::Exit;
use crate::vm::{self, GuestMemory, VcpuRef, VmEnd, VmId};

/// Handles HVC function `frame.x[0]` for vCPU `caller`.
pub fn handle(frame: &mut TrapFrame, caller: VcpuRef) -> Exit {
    let vm = caller.vm;
    let Some(call) = Call::from_id(frame.x[0]) else {
        frame.x[0] = Error::NotSupported.as_reg();
        return Exit::Resume;
    };
    match call {
        Call::Version => {
            frame.x[0] = 0;
            frame.x[1] = ((VERSION_MAJOR as u64) << 16) | VERSION_MINOR as u64;
        }
        Call::Null => frame.x[0] = 0,
        Call::ConsoleWrite => match console_write(vm, frame.x[1], frame.x[2]) {
            Ok(n) => {
                frame.x[0] = 0;
                frame.x[1] = n;
            }
            Err(e) => frame.x[0] = e.as_reg(),
        },
        Call::Identity => {
            frame.x[0] = 0;
            frame.x[1] = vm.index() as u64;
            frame.x[2] = caller.vcpu.index() as u64;
            frame.x[3] = vm::desc(vm).vcpus.len() as u64;
        }
        Call::Shutdown => return vm::finish_vm(vm, VmEnd::Exit(frame.x[1] as u32)).into(),
        Call::Doorbell => match crate::channel::doorbell(vm, frame.x[1], frame.x[2]) {
            Ok(raised) => {
                frame.x[0] = 0;
                frame.x[1] = u64::from(raised);
            }
            Err(e) => frame.x[0] = e.as_reg(),
        },
        Call::ResetCount => {
            frame.x[0] = 0;
            frame.x[1] = u64::from(vm::get(vm).resets());
        }
    }
    Exit::Resume
}

/// Copies `len` bytes at guest-physical `ipa` to the VM's console, after checking every byte
/// lies in the VM's own RAM (page by page: the buffer may cross frames that are not physically
/// adjacent). Each byte is read once, volatile.
fn console_write(vm: VmId, ipa: u64, len: u64) -> Result<u64, Error> {
    if len > CONSOLE_WRITE_MAX || ipa.checked_add(len).is_none() {
        return Err(Error::InvalidParameters);
    }
    if len == 0 {
        return Ok(0);
    }
    let bytes = GuestMemory::of(vm)
        .bytes(GuestPhysAddr(ipa), len)
        .map_err(|_| Error::InvalidParameters)?;
    // The whole buffer counts against the VM's console budget: what is over it is dropped
    // (and reported by the hypervisor), but the call still succeeds with every byte taken.
    console::vm_write(vm, bytes);
    Ok(len)
}
