//! Starting, stopping and resetting vCPUs and VMs, across cores.
//!
//! Every change of a VM's or vCPU's state is one atomic transition of the VM's lifecycle word
//! (`tessera_lifecycle`): the VM state and all its vCPUs' states change together or not at
//! all, and the transition says what is left to do — notify cores, wait for vCPUs to leave,
//! or (exactly once per VM) count the VM off the machine.
//!
//! These functions never take a core away from their caller and never diverge: they return an
//! [`Outcome`] and the run loop (`crate::pcpu`) acts on the states when the exit ends — a vCPU
//! that went `Off` leaves its core, one that became `OnPending` is started, a `StopRequested`
//! one is taken off by its core (which then acknowledges the stop) when the kick SGI makes it
//! look.

use core::sync::atomic::Ordering;

use aarch64_cpu::asm::barrier;
use tessera_lifecycle::{CpuOff, Ended, Refused, VcpuSet, VmOff};

use super::{
    current, desc, get, ids, memory, vm_ram_contains, VcpuId, VcpuRef, VmId, VmState, RUNNING_VMS,
};
use crate::arch::{self, psci::ret, vcpu as hw};
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

/// How long a reset waits for the VM's other vCPUs to leave their cores before it gives up and
/// stops the VM instead (its memory is never rewritten under a vCPU still on a core).
const RESET_WAIT_US: u64 = 5_000_000;

/// VTCR_EL2 computed at boot from the CPU's PARange.
pub static VTCR: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn notify_all(vm: VmId, set: VcpuSet) {
    for i in set.iter() {
        pcpu::notify(VcpuRef::new(vm, VcpuId(i)));
    }
}

/// The calling vCPU's index if the caller is a vCPU of `vm`.
fn caller_in(vm: VmId) -> Option<VcpuId> {
    current().filter(|c| c.vm == vm).map(|c| c.vcpu)
}

/// PSCI CPU_ON of vCPU `target` of `vm` at guest-physical `entry` with `context` in x0.
pub fn start_vcpu(vm: VmId, target: VcpuId, entry: u64, context: u64) -> i64 {
    let r = get(vm);
    if r.state() != VmState::Running {
        return ret::DENIED;
    }
    if !vm_ram_contains(vm, tessera_stage2::GuestPhysAddr(entry), 4) || !entry.is_multiple_of(4) {
        return ret::INVALID_ADDRESS;
    }
    let v = &r.vcpus[target.index()];
    // The start point is written under its lock around the transition, so the target's core
    // (which reads it under the lock after `OnPending` → `On`) sees this call's, and a losing
    // concurrent CPU_ON cannot overwrite it.
    let mut start = v.start.lock();
    let result = r.life.cpu_on(target.index());
    if result.is_ok() {
        *start = (entry, context);
    }
    drop(start);
    match result {
        Ok(()) => {
            pcpu::notify(VcpuRef::new(vm, target));
            ret::SUCCESS
        }
        Err(Refused::OnPending) => ret::ON_PENDING,
        Err(Refused::AlreadyOn) => ret::ALREADY_ON,
        Err(Refused::NoSuchVcpu) => ret::INVALID_PARAMETERS,
        // Being reset or off (a CPU_ON that lost the race against SYSTEM_RESET/OFF).
        Err(_) => ret::DENIED,
    }
}

/// PSCI CPU_OFF of the calling vCPU. When it was the VM's last vCPU not off, the VM is off.
pub fn vcpu_off(caller: VcpuRef) -> Outcome {
    let vm = caller.vm;
    if let Ok(CpuOff::Last(ended)) = get(vm).life.cpu_off(caller.vcpu.index()) {
        hprintln!("vm {}: every vCPU called CPU_OFF", desc(vm).name);
        vm_ended(vm, VmEnd::Exit(0), ended);
    }
    Outcome::Off
}

/// Ends VM `vm` (SYSTEM_OFF, Shutdown, a stop by the hypervisor); powers the machine off
/// after the last VM. A VM being reset belongs to the vCPU resetting it, which has asked the
/// caller to stop: the caller just leaves.
pub fn finish_vm(vm: VmId, end: VmEnd) -> Outcome {
    let me = caller_in(vm);
    if let Ok(VmOff::Ended { ended, notify }) = get(vm).life.vm_off(me.map(VcpuId::index)) {
        notify_all(vm, notify);
        vm_ended(vm, end, ended);
    }
    if me.is_some() {
        Outcome::Off
    } else {
        Outcome::Resume
    }
}

/// The one place a VM is counted off: report its end, and power the machine off after the
/// last VM. `ended` proves the caller's transition ended the VM (once per VM).
fn vm_ended(vm: VmId, end: VmEnd, ended: Ended) {
    let code = match end {
        VmEnd::Exit(c) => c,
        VmEnd::Stopped => STOPPED_EXIT_CODE,
    };
    // The machine status this VM contributes: guest codes >= 64 become 64, so that no guest
    // can pass for a boot error, a hypervisor fault or a stopped VM (crates/abi status).
    get(vm).exit_code.store(vm_status(end), Ordering::Release);
    defmt::info!("vm {=usize} off, exit {=u32}", vm.index(), code);
    console::vm_flush(vm);
    match end {
        VmEnd::Exit(_) => hprintln!("vm {} off (exit {})", desc(vm).name, code),
        VmEnd::Stopped => hprintln!("vm {} stopped (exit {})", desc(vm).name, code),
    }
    if RUNNING_VMS.count_off(ended) {
        machine_off();
    }
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
    let code = ids()
        .map(|i| get(i).exit_code.load(Ordering::Acquire))
        .find(|&c| c != 0)
        .unwrap_or(0);
    pcpu::dump_stats();
    crate::vgic::dump_denied();
    pcpu::dump_traces();
    hprintln!("all VMs off; exit {}", code);
    arch::halt_machine(code)
}

/// PSCI SYSTEM_RESET of `vm` (called on one of its vCPUs): stop the others, wait until every
/// one has left its core, reload the image and device tree into wiped RAM, restart vCPU 0 at
/// the image entry. `Resume` when another vCPU is already resetting or ending the VM (which
/// stops this one too). A VM whose config says `on_reset = "stop"` is stopped instead.
pub fn reset_vm(vm: VmId) -> Outcome {
    if desc(vm).on_reset == crate::config::ResetPolicy::Stop {
        console::vm_flush(vm);
        hprintln!(
            "vm {} asked for a reset (on_reset = \"stop\"): stopping it",
            desc(vm).name
        );
        return finish_vm(vm, VmEnd::Stopped);
    }
    let r = get(vm);
    let Some(me) = caller_in(vm) else {
        return Outcome::Resume;
    };
    let Ok(ticket) = r.life.reset_begin(me.index()) else {
        return Outcome::Resume;
    };
    let g = ticket.generation;
    notify_all(vm, ticket.notify);
    let d = desc(vm);
    console::vm_flush(vm);
    hprintln!("vm {} reset ({})", d.name, g);
    // The others leave their cores at their next exit (the kick SGI forces one) and their
    // cores acknowledge. This core answers for its own vCPUs meanwhile: they are not running
    // (the caller is), and another core's reset may be waiting for them as this one waits.
    let deadline = hw::now().saturating_add(hw::counter_frequency() * RESET_WAIT_US / 1_000_000);
    let mut spins = 0u32;
    while !r.life.snapshot().reset_ready(g) {
        if spins.is_multiple_of(64) {
            pcpu::ack_local_stops();
            if hw::now() > deadline {
                let stuck = (0..d.vcpus.len())
                    .find(|&i| i != me.index() && r.vcpus[i].state() != super::VcpuState::Off)
                    .unwrap_or(me.index());
                hprintln!(
                    "vm {}: vcpu {} did not leave its core for the reset; stopping the VM",
                    d.name,
                    stuck
                );
                return fail_reset(vm, g);
            }
        }
        spins = spins.wrapping_add(1);
        core::hint::spin_loop();
    }
    pcpu::retire_local_vcpus(vm);
    console::vm_input_clear(vm);
    crate::vdev::vuart_reset(vm);
    if let Err(e) = crate::vgic::reset_vm(vm) {
        hprintln!("vm {}: vGIC reset failed: {}", d.name, e);
        return fail_reset(vm, g);
    }
    memory::wipe(vm);
    if let Err(e) = memory::load(vm) {
        hprintln!("vm {}: reload after reset failed: {}", d.name, e);
        return fail_reset(vm, g);
    }
    let v0 = &r.vcpus[0];
    let mut start = v0.start.lock();
    *start = (d.entry_ipa, d.dtb_ipa);
    let done = r.life.reset_complete(g, 0);
    drop(start);
    if done.is_err() {
        // Only this reset's owner moves the VM out of `Resetting`: not reached.
        return fail_reset(vm, g);
    }
    barrier::dsb(barrier::ISH);
    pcpu::notify(VcpuRef::new(vm, VcpuId(0)));
    Outcome::Off
}

/// Gives up reset `g` of `vm`: the VM is stopped (and counted off) instead.
fn fail_reset(vm: VmId, g: u32) -> Outcome {
    if let Ok(ended) = get(vm).life.reset_fail(g) {
        vm_ended(vm, VmEnd::Stopped, ended);
    }
    Outcome::Off
}

/// Marks `vm` running with vCPU 0 ready to start (boot), and counts it on the machine.
pub(super) fn arm_boot_vcpu(vm: VmId) {
    let d = desc(vm);
    let r = get(vm);
    let mut start = r.vcpus[0].start.lock();
    *start = (d.entry_ipa, d.dtb_ipa);
    let started = r.life.boot(d.vcpus.len(), 0);
    drop(start);
    match started {
        Ok(s) => {
            let _ = RUNNING_VMS.count_on(s);
        }
        Err(e) => hprintln!("vm {}: cannot start ({:?})", d.name, e),
    }
}
