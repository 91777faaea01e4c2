//! Starting, stopping and resetting vCPUs and VMs, across cores.
//!
//! Every core runs at most one vCPU (the `exclusive` policy). A core whose vCPU is off waits in
//! [`park_loop`] until another vCPU of the same VM starts it (PSCI CPU_ON: state OnPending +
//! SEV). A core whose vCPU must stop (its VM powered off, failed or is being reset from
//! another core) is kicked with an SGI; it notices the StopRequested state on its way out of
//! the interrupt and parks.

use core::sync::atomic::Ordering;

use aarch64_cpu::asm::{self, barrier};
use aarch64_cpu::registers::{CNTHCTL_EL2, CNTVOFF_EL2, VTCR_EL2, VTTBR_EL2};
use tock_registers::interfaces::Writeable;

use super::{
    core_mpidr, current, desc, memory, rt, vm_ram_contains, VcpuState, VmState, RUNNING_VMS,
};
use crate::arch::{self, gic, psci::ret, regs, TrapFrame};
use crate::config::VMS;
use crate::{console, hprintln};

/// How a VM ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmEnd {
    /// It powered itself off (PSCI SYSTEM_OFF, Tessera Shutdown, all vCPUs off) with a code.
    Exit(u32),
    /// The hypervisor stopped it (a fault under `on_fault = "stop"`).
    Stopped,
}

/// Exit code reported for a VM stopped by the hypervisor.
pub const STOPPED_EXIT_CODE: u32 = tessera_abi::status::STOPPED;

/// CNTHCTL_EL2: EL1 may read the physical counter (EL1PCTEN) but not use the physical timer
/// (EL1PCEN = 0), which stays the hypervisor's; guests use the virtual timer.
const CNTHCTL_GUEST: u64 = 1 << 0;

/// VTCR_EL2 computed at boot from the CPU's PARange.
pub static VTCR: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Programs this core's EL2 controls for vCPU `vcpu` of VM `vm`.
fn load_vcpu_context(vm: usize, vcpu: usize) {
    VTCR_EL2.set(VTCR.load(Ordering::Relaxed));
    VTTBR_EL2.set(rt(vm).vttbr());
    regs::set_vcpu_identity(desc(vm).vcpus[vcpu].mpidr);
    CNTVOFF_EL2.set(0);
    CNTHCTL_EL2.set(CNTHCTL_GUEST);
    arch::el2ctl::write_guest_traps();
    barrier::isb(barrier::SY);
    regs::reset_el1_state();
}

/// Acknowledges every pending physical interrupt of this core and hands each to the vGIC.
pub fn drain_interrupts() {
    while let Some(intid) = gic::acknowledge() {
        crate::vgic::physical_irq(intid);
    }
}

/// Where a core waits while its vCPU is off. Never returns; enters the guest when the vCPU is
/// started.
pub extern "C" fn park_loop() -> ! {
    let Some((vm, vcpu)) = current() else {
        // No vCPU on this core in the config: it stays parked for good.
        arch::halt_core()
    };
    let v = &rt(vm).vcpus[vcpu];
    crate::vgic::stop_vcpu_interface();
    loop {
        drain_interrupts();
        if v.transition(VcpuState::StopRequested, VcpuState::Off) {
            continue;
        }
        if v.transition(VcpuState::OnPending, VcpuState::On) {
            let entry = v.entry.load(Ordering::Acquire);
            let context = v.context.load(Ordering::Acquire);
            defmt::info!(
                "vm {=usize} vcpu {=usize}: start at {=u64:#x}",
                vm,
                vcpu,
                entry
            );
            load_vcpu_context(vm, vcpu);
            crate::vgic::reset_vcpu_interface();
            crate::vgic::flush_if_dirty();
            arch::enter_guest(&TrapFrame::new_el1(entry, context));
        }
        asm::wfe();
    }
}

/// Leaves the current vCPU for good (its state was set by the caller) and waits.
pub fn park_current() -> ! {
    arch::run_on_fresh_stack(park_loop)
}

/// If this core's vCPU was asked to stop, stop it now (called after every trap and interrupt).
pub fn kick_if_stopping() {
    if let Some((vm, vcpu)) = current() {
        let v = &rt(vm).vcpus[vcpu];
        // A plain load first: this runs on every exit, the exclusive store rarely.
        if v.state() == VcpuState::StopRequested
            && v.transition(VcpuState::StopRequested, VcpuState::Off)
        {
            park_current();
        }
    }
}

/// PSCI CPU_ON of vCPU `target` of `vm` at guest-physical `entry` with `context` in x0.
pub fn start_vcpu(vm: usize, target: usize, entry: u64, context: u64) -> i64 {
    if rt(vm).state() != VmState::Running {
        return ret::DENIED;
    }
    if !vm_ram_contains(vm, tessera_stage2::GuestPhysAddr(entry), 4) || !entry.is_multiple_of(4) {
        return ret::INVALID_ADDRESS;
    }
    let v = &rt(vm).vcpus[target];
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
    barrier::dsb(barrier::ISH);
    asm::sev();
    ret::SUCCESS
}

/// PSCI CPU_OFF of the calling vCPU. When it was the VM's last running vCPU, the VM is off.
pub fn vcpu_off(vm: usize, vcpu: usize) -> ! {
    rt(vm).vcpus[vcpu].set(VcpuState::Off);
    let any_alive = rt(vm).vcpus[..desc(vm).vcpus.len()]
        .iter()
        .any(|v| v.state() != VcpuState::Off);
    if !any_alive {
        hprintln!("vm {}: every vCPU called CPU_OFF", desc(vm).name);
        finish_vm(vm, VmEnd::Exit(0));
    }
    park_current()
}

/// Asks every running vCPU of `vm` other than this core's to stop, and cancels pending starts.
fn stop_other_vcpus(vm: usize) {
    let me = current();
    for (i, vd) in desc(vm).vcpus.iter().enumerate() {
        if me == Some((vm, i)) {
            continue;
        }
        let v = &rt(vm).vcpus[i];
        loop {
            match v.state() {
                VcpuState::On => {
                    if v.transition(VcpuState::On, VcpuState::StopRequested) {
                        gic::send_sgi(vd.pcpu, core_mpidr(vd.pcpu), gic::SGI_KICK);
                        break;
                    }
                }
                VcpuState::OnPending => {
                    if v.transition(VcpuState::OnPending, VcpuState::Off) {
                        break;
                    }
                }
                VcpuState::Off | VcpuState::StopRequested => break,
            }
        }
    }
}

/// Ends VM `vm` (called on one of its vCPUs); powers the machine off after the last VM.
pub fn finish_vm(vm: usize, end: VmEnd) -> ! {
    let r = rt(vm);
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
        }
    }
    park_current()
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
        .map(|i| rt(i).exit_code.load(Ordering::Acquire))
        .find(|&c| c != 0)
        .unwrap_or(0);
    hprintln!("all VMs off; exit {}", code);
    arch::halt_machine(code)
}

/// PSCI SYSTEM_RESET of `vm` (called on one of its vCPUs): stop the others, reload the image
/// and device tree into wiped RAM, restart vCPU 0 at the image entry.
pub fn reset_vm(vm: usize) -> ! {
    let r = rt(vm);
    if r.state
        .compare_exchange(
            VmState::Running as u8,
            VmState::Resetting as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        // Already being reset or stopped by another vCPU.
        kick_if_stopping();
        park_current();
    }
    let d = desc(vm);
    console::vm_flush(vm);
    let n = r.resets.fetch_add(1, Ordering::Relaxed) + 1;
    hprintln!("vm {} reset ({})", d.name, n);
    stop_other_vcpus(vm);
    let me = current();
    for (i, v) in r.vcpus[..d.vcpus.len()].iter().enumerate() {
        if me == Some((vm, i)) {
            continue;
        }
        let mut spins = 0u64;
        while v.state() != VcpuState::Off && spins < 100_000_000 {
            core::hint::spin_loop();
            spins += 1;
        }
    }
    console::vm_input_clear(vm);
    if let Err(e) = crate::vgic::reset_vm(vm) {
        hprintln!("vm {}: vGIC reset failed: {}", d.name, e);
        finish_vm(vm, VmEnd::Stopped);
    }
    memory::wipe(vm);
    if let Err(e) = memory::load(vm) {
        hprintln!("vm {}: reload after reset failed: {}", d.name, e);
        finish_vm(vm, VmEnd::Stopped);
    }
    if let Some((_, cvcpu)) = me {
        r.vcpus[cvcpu].set(VcpuState::Off);
    }
    let v0 = &r.vcpus[0];
    v0.entry.store(d.entry_ipa, Ordering::Release);
    v0.context.store(d.dtb_ipa, Ordering::Release);
    v0.set(VcpuState::OnPending);
    r.state.store(VmState::Running as u8, Ordering::Release);
    barrier::dsb(barrier::ISH);
    asm::sev();
    park_current()
}

/// Marks `vm` running with vCPU 0 ready to start (boot).
pub(super) fn arm_boot_vcpu(vm: usize) {
    let d = desc(vm);
    let r = rt(vm);
    let v0 = &r.vcpus[0];
    v0.entry.store(d.entry_ipa, Ordering::Relaxed);
    v0.context.store(d.dtb_ipa, Ordering::Relaxed);
    v0.set(VcpuState::OnPending);
    r.state.store(VmState::Running as u8, Ordering::Release);
    RUNNING_VMS.fetch_add(1, Ordering::AcqRel);
}
