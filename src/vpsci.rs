//! PSCI 1.1 and the SMCCC architecture calls as each VM sees them: CPU_ON/OFF and
//! AFFINITY_INFO over the VM's own vCPUs, SYSTEM_OFF/RESET meaning *this VM*.

use crate::arch::psci::{func, ret};
use crate::arch::TrapFrame;
use crate::pcpu::Exit;
use crate::vm::{self, Outcome, VcpuRef, VcpuState, VmEnd, VmId};

use tessera_abi::smccc::arch::RANGE as ARCH_RANGE;

const CPU_ON32: u32 = func::smc32(func::CPU_ON);
const AFFINITY_INFO32: u32 = func::smc32(func::AFFINITY_INFO);
const CPU_SUSPEND32: u32 = func::smc32(func::CPU_SUSPEND);
const PSCI_VERSION_1_1: u64 = 0x0001_0001;
const SMCCC_VERSION_1_1: u64 = 0x0001_0001;

/// PSCI (0x84000000–0x8400001F and the SMC64 forms 0xC4000000–0xC400001F) or SMCCC
/// architecture calls (0x80000000–0x8000FFFF).
pub fn is_psci_or_arch(fid: u64) -> bool {
    let f = fid as u32 as u64 == fid;
    let id = fid as u32;
    f && (func::RANGE32.contains(&id) || func::RANGE64.contains(&id) || ARCH_RANGE.contains(&id))
}

/// Handles PSCI / SMCCC function `frame.x[0]` for vCPU `caller`.
pub fn handle(frame: &mut TrapFrame, caller: VcpuRef) -> Exit {
    let vm = caller.vm;
    let fid = frame.x[0] as u32;
    if let Some(r) = crate::smccc::arch_call(fid, frame.x[1]) {
        frame.x[0] = r as u64;
        return Exit::Resume;
    }
    let smc32 = fid & 0x4000_0000 == 0;
    let arg = |i: usize| {
        if smc32 {
            frame.x[i] & 0xffff_ffff
        } else {
            frame.x[i]
        }
    };
    let result: i64 = match fid {
        func::SMCCC_VERSION => SMCCC_VERSION_1_1 as i64,
        func::VERSION => PSCI_VERSION_1_1 as i64,
        func::FEATURES => features(arg(1) as u32),
        CPU_ON32 | func::CPU_ON => cpu_on(vm, arg(1), arg(2), arg(3)),
        func::CPU_OFF => return vm::vcpu_off(caller).into(),
        AFFINITY_INFO32 | func::AFFINITY_INFO => affinity_info(vm, arg(1), arg(2)),
        func::SYSTEM_OFF => return vm::finish_vm(vm, VmEnd::Exit(0)).into(),
        func::SYSTEM_RESET => match vm::reset_vm(vm) {
            Outcome::Off => return Exit::Off,
            // Another vCPU is already resetting or stopping the VM (and stops this one).
            Outcome::Resume => ret::DENIED,
        },
        // Standby-style suspend: returning at once is a valid implementation.
        CPU_SUSPEND32 | func::CPU_SUSPEND => ret::SUCCESS,
        // "Trusted OS not present": no migration is needed.
        func::MIGRATE_INFO_TYPE => 2,
        _ => ret::NOT_SUPPORTED,
    };
    defmt::debug!(
        "vm {=usize} vcpu {=usize}: PSCI {=u32:#x} -> {=i64}",
        vm.index(),
        caller.vcpu.index(),
        fid,
        result
    );
    frame.x[0] = result as u64;
    Exit::Resume
}

fn features(fid: u32) -> i64 {
    match fid {
        func::SMCCC_VERSION
        | func::VERSION
        | func::FEATURES
        | func::CPU_ON
        | CPU_ON32
        | func::CPU_OFF
        | func::AFFINITY_INFO
        | AFFINITY_INFO32
        | func::SYSTEM_OFF
        | func::SYSTEM_RESET
        | func::CPU_SUSPEND
        | CPU_SUSPEND32
        | func::MIGRATE_INFO_TYPE => ret::SUCCESS,
        _ => ret::NOT_SUPPORTED,
    }
}

fn cpu_on(vm: VmId, target: u64, entry: u64, context: u64) -> i64 {
    match vm::vcpu_by_mpidr(vm, target) {
        Some((t, _)) => vm::start_vcpu(vm, t, entry, context),
        None => ret::INVALID_PARAMETERS,
    }
}

fn affinity_info(vm: VmId, target: u64, level: u64) -> i64 {
    if level != 0 {
        return ret::INVALID_PARAMETERS;
    }
    match vm::vcpu_by_mpidr(vm, target) {
        Some((t, _)) => match vm::vcpu(VcpuRef::new(vm, t)).state() {
            VcpuState::On | VcpuState::StopRequested => 0,
            VcpuState::Off => 1,
            VcpuState::OnPending => 2,
        },
        None => ret::INVALID_PARAMETERS,
    }
}
