//! The trap dispatcher: what happens when a guest leaves EL1 for EL2.

use aarch64_cpu::registers::{ELR_EL2, ESR_EL2, FAR_EL2, SPSR_EL2};
use tock_registers::interfaces::Readable;

use crate::arch::esr::{self, Esr, Trap};
use crate::arch::exception::VectorKind;
use crate::arch::{self, regs, TrapFrame};
use crate::config::FaultPolicy;
use crate::pcpu::{self, Exit};
use crate::vm::{self, VcpuRef, VmEnd};
use crate::{console, hprintln, hypercall, sysreg, vdev, vgic, vpsci};

/// Entry from the vectors with the saved guest registers: handle the exit, then let the run
/// loop decide what runs next (the same vCPU, another, or none).
pub fn handle(frame: &mut TrapFrame, kind: VectorKind) {
    let exit = match kind {
        VectorKind::LowerSync => lower_sync(frame),
        VectorKind::LowerIrq | VectorKind::LowerFiq => {
            pcpu::drain_interrupts();
            Exit::Resume
        }
        VectorKind::LowerSError => {
            let esr = Esr(ESR_EL2.get());
            guest_error(frame, "SError (asynchronous abort)", esr, 0)
        }
        _ => hypervisor_fault(frame, kind),
    };
    pcpu::end_exit(frame, exit);
}

fn lower_sync(frame: &mut TrapFrame) -> Exit {
    let esr = Esr(ESR_EL2.get());
    defmt::trace!(
        "trap: EC {=u8:#x} ISS {=u32:#x} at {=u64:#x}",
        esr.ec_raw(),
        esr.iss(),
        frame.elr
    );
    let gic_v3 = crate::config::BOARD.gic.version == crate::config::GicVersion::V3;
    match esr::decode(esr, gic_v3) {
        Trap::Hvc { imm } => {
            if imm != 0 {
                frame.x[0] = tessera_abi::Error::NotSupported.as_reg();
                Exit::Resume
            } else {
                call(frame, true)
            }
        }
        Trap::Smc => {
            // A trapped SMC returns to the SMC itself; step over it.
            frame.elr += 4;
            call(frame, false)
        }
        Trap::DataAbort { esr, may_be_mmio } => data_abort(frame, esr, may_be_mmio),
        Trap::InstrAbort => {
            let far = FAR_EL2.get();
            stage2_fault(frame, esr, far, regs::fault_ipa(far), true)
        }
        Trap::Wfx { wfe } => {
            frame.elr += 4;
            wait_for_interrupt(frame, wfe)
        }
        Trap::Sgi1rWrite { rt } => {
            let v = current_or_fatal(frame);
            vgic::sgi1r(v, frame.reg(rt));
            frame.elr += 4;
            Exit::Resume
        }
        trap @ (Trap::SysReg | Trap::Undefined) => {
            let caller = current_or_fatal(frame);
            let (vm, vcpu) = (caller.vm, caller.vcpu);
            if trap == Trap::SysReg && sysreg::handle(frame, caller, esr).is_some() {
                return Exit::Resume;
            }
            if vm::get(vm).may_report_fault(vm) {
                hprintln!(
                    "vm {} vcpu {}: {} (ESR {:#x}) at {:#x} → undefined instruction",
                    vm::desc(vm).name,
                    vcpu,
                    esr.class_name(),
                    esr.0,
                    frame.elr
                );
            }
            inject_undef(frame);
            Exit::Resume
        }
    }
}

/// A trapped WFI or WFE (only shared cores trap them). WFI with nothing pending makes the vCPU
/// idle until an interrupt or its virtual timer; WFE (a spin-wait hint) just lets the
/// scheduler decide again.
fn wait_for_interrupt(frame: &TrapFrame, is_wfe: bool) -> Exit {
    pcpu::count_wfx_trap();
    if is_wfe || !pcpu::is_shared() {
        return Exit::Resume;
    }
    if vgic::running_has_work(current_or_fatal(frame)) {
        return Exit::Resume;
    }
    let mut el1 = crate::arch::vcpu::El1State::RESET;
    el1.save();
    match el1.timer_deadline() {
        Some(t) if t <= crate::arch::vcpu::now() => Exit::Resume,
        wake_at => Exit::Idle { wake_at },
    }
}

/// HVC or SMC: PSCI and SMCCC architecture calls by either conduit, Tessera calls by HVC.
fn call(frame: &mut TrapFrame, via_hvc: bool) -> Exit {
    let caller = current_or_fatal(frame);
    let fid = frame.x[0];
    if vpsci::is_psci_or_arch(fid) {
        vpsci::handle(frame, caller)
    } else if via_hvc {
        hypercall::handle(frame, caller)
    } else {
        frame.x[0] = tessera_abi::Error::NotSupported.as_reg();
        Exit::Resume
    }
}

/// A data abort: an emulated device's MMIO (only a translation fault not on a stage-1 walk
/// can be one), else a stage-2 fault.
fn data_abort(frame: &mut TrapFrame, esr: Esr, may_be_mmio: bool) -> Exit {
    let far = FAR_EL2.get();
    let ipa = regs::fault_ipa(far);
    let caller = current_or_fatal(frame);
    if may_be_mmio {
        if let Some(handled) = vdev::mmio(frame, caller, ipa, esr) {
            if handled {
                frame.elr += 4;
                return Exit::Resume;
            }
        }
    }
    stage2_fault(frame, esr, far, ipa, false)
}

/// A guest touched guest-physical memory it does not own: report, then inject an external
/// abort or stop the VM, as its config says.
fn stage2_fault(frame: &mut TrapFrame, esr: Esr, far: u64, ipa: u64, instruction: bool) -> Exit {
    let VcpuRef { vm, vcpu } = current_or_fatal(frame);
    let d = vm::desc(vm);
    let access = if instruction {
        "instruction fetch"
    } else if esr.is_write() {
        "write"
    } else {
        "read"
    };
    let action = match d.on_fault {
        FaultPolicy::InjectAbort => "injecting a synchronous external abort",
        FaultPolicy::Stop => "stopping the VM",
    };
    defmt::warn!(
        "vm {=usize} vcpu {=usize}: stage-2 fault at IPA {=u64:#x}, ESR {=u64:#x}",
        vm.index(),
        vcpu.index(),
        ipa,
        esr.0
    );
    if vm::get(vm).may_report_fault(vm) {
        hprintln!(
            "vm {} vcpu {}: stage-2 fault: {} at IPA {:#x} (VA {:#x}, PC {:#x}, ESR {:#x}); {}",
            d.name,
            vcpu,
            access,
            ipa,
            far,
            frame.elr,
            esr.0,
            action
        );
    }
    match d.on_fault {
        FaultPolicy::InjectAbort => {
            let from_el0 = frame.spsr & 0xf == 0;
            let esr1 = esr::injected_abort_esr(instruction, from_el0);
            frame.elr = regs::inject_el1_sync(frame.elr, frame.spsr, esr1, far);
            frame.spsr = arch::exception::SPSR_EL1H_MASKED;
            Exit::Resume
        }
        FaultPolicy::Stop => vm::finish_vm(vm, VmEnd::Stopped).into(),
    }
}

/// An error of the guest's own making that has no architectural injection (SError): stop it.
fn guest_error(frame: &TrapFrame, what: &str, esr: Esr, far: u64) -> Exit {
    let VcpuRef { vm, vcpu } = current_or_fatal(frame);
    hprintln!(
        "vm {} vcpu {}: {} (ESR {:#x}, FAR {:#x}, PC {:#x}); stopping the VM",
        vm::desc(vm).name,
        vcpu,
        what,
        esr.0,
        far,
        frame.elr
    );
    vm::finish_vm(vm, VmEnd::Stopped).into()
}

fn inject_undef(frame: &mut TrapFrame) {
    frame.elr = regs::inject_el1_sync(frame.elr, frame.spsr, esr::injected_undef_esr(), 0);
    frame.spsr = arch::exception::SPSR_EL1H_MASKED;
}

fn current_or_fatal(frame: &TrapFrame) -> VcpuRef {
    match vm::current() {
        Some(c) => c,
        None => hypervisor_fault(frame, VectorKind::LowerSync),
    }
}

/// An exception the hypervisor caused itself (or one it cannot attribute): a bug of ours.
/// Report everything and stop the machine.
fn hypervisor_fault(frame: &TrapFrame, kind: VectorKind) -> ! {
    let esr = Esr(ESR_EL2.get());
    let core = arch::core_index();
    console::emergency_print(format_args!(
        "\n[tessera] FATAL: unexpected {:?} exception on core {} ",
        kind, core
    ));
    // The vCPU the static partition gives this core (it need not have been running: an EL2
    // fault may come from the boot path or from a handler working for another core).
    match vm::current() {
        Some(v) => console::emergency_print(format_args!(
            "(hosts vm {} vCPU {})\n",
            vm::desc(v.vm).name,
            v.vcpu
        )),
        None => console::emergency_print(format_args!("(hosts no vCPU)\n")),
    }
    // ESR_EL2 is 64 bits but its top half (ISS2) is zero on most cores: print 8 digits then.
    console::emergency_print(format_args!(
        "[tessera]   ESR_EL2 {:#010x} ({}, ISS {:#x}",
        esr.0,
        esr.class_name(),
        esr.iss()
    ));
    match esr.abort_detail() {
        Some(detail) => console::emergency_print(format_args!(": {})\n", detail)),
        None => console::emergency_print(format_args!(")\n")),
    }
    console::emergency_print(format_args!(
        "[tessera]   FAR_EL2 {:#018x}  ELR_EL2 {:#018x}  SPSR_EL2 {:#010x}\n",
        FAR_EL2.get(),
        ELR_EL2.get(),
        SPSR_EL2.get()
    ));
    if kind == VectorKind::CurrentSync {
        let sp = arch::exception::interrupted_sp();
        if arch::exception::on_emergency_stack(frame) {
            console::emergency_print(format_args!(
                "[tessera]   EL2 stack overflow: SP_EL2 {:#018x} is in core {}'s stack guard page (reported from the emergency stack)\n",
                sp, core
            ));
        } else {
            console::emergency_print(format_args!("[tessera]   SP_EL2  {:#018x}\n", sp));
        }
    } else if matches!(
        kind,
        VectorKind::CurrentIrq | VectorKind::CurrentFiq | VectorKind::CurrentSError
    ) {
        // Taken at EL2 on SP_EL2: the vector pushed the frame just below the interrupted SP.
        let sp = frame as *const TrapFrame as u64 + core::mem::size_of::<TrapFrame>() as u64;
        console::emergency_print(format_args!("[tessera]   SP_EL2  {:#018x}\n", sp));
    }
    for (i, pair) in frame.x.chunks(4).enumerate() {
        console::emergency_print(format_args!("[tessera]  "));
        for (j, v) in pair.iter().enumerate() {
            console::emergency_print(format_args!(" x{:<2} {:#018x}", i * 4 + j, v));
        }
        console::emergency_print(format_args!("\n"));
    }
    arch::halt_machine(0xff)
}
