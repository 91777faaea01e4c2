//! Starting, stopping and resetting vCPUs and VMs, across cores.
//!
//! These functions change vCPU and VM states and tell the cores concerned; they never take a
//! core away from its caller and never diverge: they return an [`Outcome`] and the run loop
//! (`crate::pcpu`) acts on the states when the exit ends — a vCPU that went `Off` leaves its
//! core, one that became `OnPending` is started, a `StopRequested` one on another core is
//! stopped by that core when the kick SGI makes it look.

use core::sync::atomic::Ordering;

use aarch64_cpu::asm::barrier;

use super::{current, desc, get, memory, vm_ram_contains, VcpuState, VmState, RUNNING_VMS};
use crate::arch::{self, psci::ret};
use crate::config::VMS;
use crate::{console, hprintln, pcpu};

/// How a VM ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmEnd {
    /// It powered itself off (PSCI SYSTEM_OFF, Tessera Shutdown, all vCPUs off) with a code.
    Exit(u32),
    /// The hypervisor stopped it (a fault under `on_fault = "stop"`).
    Stopped,
}

/// What became of the calling vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// It continues (the call's result is in its registers).
    Resume,
    /// It is off (or being restarted): the run loop takes it off its core.
    Off,
}

/// Exit code reported for a VM stopped by the hypervisor.
pub const STOPPED_EXIT_CODE: u32 = tessera_abi::status::STOPPED;

/// VTCR_EL2 computed at boot from the CPU's PARange.
pub static VTCR: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// PSCI CPU_ON of vCPU `target` of `vm` at guest-physical `entry` with `context` in x0.
pub fn start_vcpu(vm: usize, target: usize, entry: u64, context: u64) -> i64 {
    if get(vm).state() != VmState::Running {
        return ret::DENIED;
    }
    if !vm_ram_contains(vm, tessera_stage2::GuestPhysAddr(entry), 4) || !entry.is_multiple_of(4) {
        return ret::INVALID_ADDRESS;
    }
    let v = &get(vm).vcpus[target];
    match v.state() {
        VcpuState::On | VcpuState::StopRequested => return ret::ALREADY_ON,
        VcpuState::OnPending => return ret::ON_PENDING,
        VcpuState::Off => {}
    }
    v.entry.store(entry, Ordering::Release);
    v.context.store(context, Ordering::Release);
    if !v.transition(VcpuState::Off, VcpuState::OnPending) {
        return ret::ALREADY_ON;
    }
    pcpu::notify(vm, target);
    ret::SUCCESS
}

/// PSCI CPU_OFF of the calling vCPU. When it was the VM's last running vCPU, the VM is off.
pub fn vcpu_off(vm: usize, vcpu: usize) -> Outcome {
    get(vm).vcpus[vcpu].set(VcpuState::Off);
    let any_alive = get(vm).vcpus[..desc(vm).vcpus.len()]
        .iter()
        .any(|v| v.state() != VcpuState::Off);
    if !any_alive {
        hprintln!("vm {}: every vCPU called CPU_OFF", desc(vm).name);
        let _ = finish_vm(vm, VmEnd::Exit(0));
    }
    Outcome::Off
}

/// Asks every running vCPU of `vm` other than the caller to stop, and cancels pending starts.
fn stop_other_vcpus(vm: usize) {
    let me = current();
    for i in 0..desc(vm).vcpus.len() {
        if me == Some((vm, i)) {
            continue;
        }
        let v = &get(vm).vcpus[i];
        loop {
            match v.state() {
                VcpuState::On => {
                    if v.transition(VcpuState::On, VcpuState::StopRequested) {
                        pcpu::notify(vm, i);
                        break;
                    }
                }
                VcpuState::OnPending => {
                    if v.transition(VcpuState::OnPending, VcpuState::Off) {
                        pcpu::notify(vm, i);
                        break;
                    }
                }
                VcpuState::Off | VcpuState::StopRequested => break,
            }
        }
    }
}

/// Ends VM `vm` (called on one of its vCPUs); powers the machine off after the last VM.
pub fn finish_vm(vm: usize, end: VmEnd) -> Outcome {
    let r = get(vm);
    let won = [VmState::Running, VmState::Resetting].iter().any(|&from| {
        r.state
            .compare_exchange(
                from as u8,
                VmState::Off as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    });
    if won {
        let code = match end {
            VmEnd::Exit(c) => c,
            VmEnd::Stopped => STOPPED_EXIT_CODE,
        };
        // The machine status this VM contributes: guest codes >= 64 become 64, so that no guest
        // can pass for a boot error, a hypervisor fault or a stopped VM (crates/abi status).
        r.exit_code.store(vm_status(end), Ordering::Release);
        defmt::info!("vm {=usize} off, exit {=u32}", vm, code);
        console::vm_flush(vm);
        match end {
            VmEnd::Exit(_) => hprintln!("vm {} off (exit {})", desc(vm).name, code),
            VmEnd::Stopped => hprintln!("vm {} stopped (exit {})", desc(vm).name, code),
        }
        stop_other_vcpus(vm);
        if RUNNING_VMS.fetch_sub(1, Ordering::AcqRel) == 1 {
            machine_off();
        }
    }
    if let Some((cvm, cvcpu)) = current() {
        if cvm == vm {
            r.vcpus[cvcpu].set(VcpuState::Off);
            return Outcome::Off;
        }
    }
    Outcome::Resume
}

fn vm_status(end: VmEnd) -> u32 {
    use tessera_abi::status::{self, VmOutcome};
    status::vm_status(match end {
        VmEnd::Exit(c) => VmOutcome::Exit(c),
        VmEnd::Stopped => VmOutcome::Stopped,
    })
}

/// Every VM is off: report and end the machine with the first non-zero VM status.
fn machine_off() -> ! {
    let code = (0..VMS.len())
        .map(|i| get(i).exit_code.load(Ordering::Acquire))
        .find(|&c| c != 0)
        .unwrap_or(0);
    pcpu::dump_traces();
    hprintln!("all VMs off; exit {}", code);
    arch::halt_machine(code)
}

/// PSCI SYSTEM_RESET of `vm` (called on one of its vCPUs): stop the others, reload the image
/// and device tree into wiped RAM, restart vCPU 0 at the image entry.
pub fn reset_vm(vm: usize) -> Outcome {
    let r = get(vm);
    if r.state
        .compare_exchange(
            VmState::Running as u8,
            VmState::Resetting as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        // Already being reset or stopped by another vCPU, which stops this one too.
        return Outcome::Resume;
    }
    let d = desc(vm);
    console::vm_flush(vm);
    let n = r.resets.fetch_add(1, Ordering::Relaxed) + 1;
    hprintln!("vm {} reset ({})", d.name, n);
    stop_other_vcpus(vm);
    let me = current();
    if let Some((_, cvcpu)) = me {
        r.vcpus[cvcpu].set(VcpuState::Off);
    }
    // The others leave their cores at their next exit (the kick SGI forces one); vCPUs on this
    // core are not running (the caller is), and the run loop takes them off when this exit
    // ends — so only wait for other cores.
    let here = arch::core_index();
    for (i, v) in r.vcpus[..d.vcpus.len()].iter().enumerate() {
        if me == Some((vm, i)) || d.vcpus[i].pcpu == here {
            continue;
        }
        let mut spins = 0u64;
        while v.state() != VcpuState::Off && spins < 100_000_000 {
            core::hint::spin_loop();
            spins += 1;
        }
    }
    pcpu::retire_local_vcpus(vm);
    console::vm_input_clear(vm);
    if let Err(e) = crate::vgic::reset_vm(vm) {
        hprintln!("vm {}: vGIC reset failed: {}", d.name, e);
        return finish_vm(vm, VmEnd::Stopped);
    }
    memory::wipe(vm);
    if let Err(e) = memory::load(vm) {
        hprintln!("vm {}: reload after reset failed: {}", d.name, e);
        return finish_vm(vm, VmEnd::Stopped);
    }
    let v0 = &r.vcpus[0];
    v0.entry.store(d.entry_ipa, Ordering::Release);
    v0.context.store(d.dtb_ipa, Ordering::Release);
    v0.set(VcpuState::OnPending);
    r.state.store(VmState::Running as u8, Ordering::Release);
    barrier::dsb(barrier::ISH);
    pcpu::notify(vm, 0);
    Outcome::Off
}

/// Marks `vm` running with vCPU 0 ready to start (boot).
pub(super) fn arm_boot_vcpu(vm: usize) {
    let d = desc(vm);
    let r = get(vm);
    let v0 = &r.vcpus[0];
    v0.entry.store(d.entry_ipa, Ordering::Relaxed);
    v0.context.store(d.dtb_ipa, Ordering::Relaxed);
    v0.set(VcpuState::OnPending);
    r.state.store(VmState::Running as u8, Ordering::Release);
    RUNNING_VMS.fetch_add(1, Ordering::AcqRel);
}
