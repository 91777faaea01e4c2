//! VMs and vCPUs at run time: their state machines, the memory they were given, the saved
//! context of each vCPU, and the operations that cross cores (start a vCPU, stop or reset a
//! VM, power the machine off).
//!
//! Static descriptions come from `config::VMS`; this module holds what changes while running.
//! Which vCPU a core runs, and when, is the business of `crate::pcpu` (the run loop).

pub mod boot;
mod colorcheck;
mod guestmem;
mod lifecycle;
mod memory;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use spin::Mutex;
use tessera_lifecycle::{Lifecycle, RunningCount};

pub use guestmem::{stage2_of, GuestMemory};
pub use lifecycle::{finish_vm, reset_vm, start_vcpu, vcpu_off, Outcome, VmEnd};
pub use memory::{ipa_to_pa, stage2_config, vm_ram_contains};
pub use tessera_lifecycle::{VcpuState, VmState};

use crate::arch::vcpu::{El1State, FpState};
use crate::arch::{gic::vif::VifState, TrapFrame};
use crate::config::{VcpuDesc, VmDesc, VMS};
pub use crate::ids::{CoreId, VcpuId, VcpuRef, VmId};

/// Capacities of the run-time tables (the config generator enforces the same limits).
pub const MAX_VMS: usize = 16;
pub const MAX_VCPUS: usize = 8;
pub const MAX_PCPUS: usize = 16;
pub const MAX_MEM_REGIONS: usize = 4;
// A VM's lifecycle word holds every vCPU's state.
const _: () = assert!(MAX_VCPUS <= tessera_lifecycle::MAX_VCPUS);

/// Everything a vCPU needs to continue where it left off, while it is not on its core.
#[derive(Clone, Copy, Debug)]
pub struct SavedContext {
    /// General registers, PC (ELR) and PSTATE (SPSR).
    pub frame: TrapFrame,
    pub el1: El1State,
    pub fp: FpState,
    /// Virtual CPU interface (its list registers are returned to the vGIC model instead).
    pub vif: VifState,
}

impl SavedContext {
    const RESET: SavedContext = SavedContext {
        frame: TrapFrame::ZERO,
        el1: El1State::RESET,
        fp: FpState::RESET,
        vif: VifState::ZERO,
    };

    /// The state of a vCPU that starts at `entry` with `x0 = arg` (PSCI CPU_ON, VM start or
    /// reset): the architectural reset state of every register, nothing left of any earlier
    /// run.
    pub fn fresh(entry: u64, arg: u64) -> Self {
        SavedContext {
            frame: TrapFrame::new_el1(entry, arg),
            ..SavedContext::RESET
        }
    }
}

/// A vCPU at run time: where it starts next and its saved context. Its power state is part of
/// its VM's lifecycle word ([`Vm::life`]), which every state change goes through.
pub struct Vcpu {
    /// Its VM and its index there (fixed).
    vm: u8,
    index: u8,
    /// Where it starts next, `(entry, x0)`: written under this lock around the transition that
    /// makes it `OnPending` (CPU_ON, boot, reset), read under it after the one that makes it
    /// `On`, so a start always sees the start point of the call that started it.
    start: Mutex<(u64, u64)>,
    /// Its context while it is off its core. Only the vCPU's own core touches it (vCPUs are
    /// pinned), so the lock is never contended; it keeps that rule checked.
    pub saved: Mutex<SavedContext>,
}

impl Vcpu {
    const fn new() -> Self {
        Vcpu {
            vm: 0,
            index: 0,
            start: Mutex::new((0, 0)),
            saved: Mutex::new(SavedContext::RESET),
        }
    }

    fn life(&self) -> &'static Lifecycle {
        &VMS_LIVE[self.vm as usize].life
    }

    /// Its power state (one load of the VM's lifecycle word).
    #[inline]
    pub fn state(&self) -> VcpuState {
        self.life().snapshot().vcpu(self.index as usize)
    }

    /// Its core loads it: `OnPending` → `On`. Returns where it starts, `(entry, x0)`, or
    /// `None` if it was not starting.
    pub fn core_start(&self) -> Option<(u64, u64)> {
        self.life().core_start(self.index as usize).ok()?;
        Some(*self.start.lock())
    }

    /// Its core has taken it off (its interrupts returned): `StopRequested` → `Off`. False if
    /// no stop was requested.
    pub fn core_stop(&self) -> bool {
        self.life().core_stop(self.index as usize).is_ok()
    }
}

/// A VM at run time.
pub struct Vm {
    /// The VM's state, every vCPU's power state and its reset count, changed only by the
    /// lifecycle's atomic transitions (`lifecycle.rs`).
    life: Lifecycle,
    exit_code: AtomicU32,
    vttbr: AtomicU64,
    /// Physical address of its stage-2 root (0 until `memory::build` made it); with the
    /// stage-2 configuration, the frame list of its memory (`GuestMemory` walks it).
    s2_root: AtomicU64,
    fault_reports: AtomicU32,
    pub vcpus: [Vcpu; MAX_VCPUS],
}

impl Vm {
    const fn new() -> Self {
        Vm {
            life: Lifecycle::new(),
            exit_code: AtomicU32::new(0),
            vttbr: AtomicU64::new(0),
            s2_root: AtomicU64::new(0),
            fault_reports: AtomicU32::new(0),
            vcpus: [const { Vcpu::new() }; MAX_VCPUS],
        }
    }

    pub fn state(&self) -> VmState {
        self.life.snapshot().vm()
    }

    /// How many times the VM was reset since the machine booted.
    pub fn resets(&self) -> u32 {
        self.life.snapshot().generation()
    }

    pub fn vttbr(&self) -> u64 {
        self.vttbr.load(Ordering::Acquire)
    }

    /// Counts a fault report; false once a VM has had its share (a misbehaving guest must not
    /// be able to flood the shared console).
    pub fn may_report_fault(&self, vm: VmId) -> bool {
        const LIMIT: u32 = 16;
        let n = self.fault_reports.fetch_add(1, Ordering::Relaxed);
        if n == LIMIT {
            crate::hprintln!(
                "vm {}: further faults are handled but not reported",
                desc(vm).name
            );
        }
        n < LIMIT
    }
}

static VMS_LIVE: [Vm; MAX_VMS] = vms_live();

/// The run-time VM table, each vCPU knowing its VM and index.
const fn vms_live() -> [Vm; MAX_VMS] {
    let mut t = [const { Vm::new() }; MAX_VMS];
    let mut vm = 0;
    while vm < MAX_VMS {
        let mut i = 0;
        while i < MAX_VCPUS {
            t[vm].vcpus[i].vm = vm as u8;
            t[vm].vcpus[i].index = i as u8;
            i += 1;
        }
        vm += 1;
    }
    t
}

/// Number of VMs not yet off; the machine powers off when it reaches 0. Each VM is counted on
/// by its start and off by the one transition that ends it.
static RUNNING_VMS: RunningCount = RunningCount::new();

/// Physical MPIDR of each core, from the DTB.
static CORE_MPIDR: [AtomicU64; MAX_PCPUS] = [const { AtomicU64::new(0) }; MAX_PCPUS];

pub fn core_mpidr(core: CoreId) -> u64 {
    CORE_MPIDR
        .get(core.index())
        .map_or(0, |m| m.load(Ordering::Relaxed))
}

/// Run-time state of VM `vm`.
pub fn get(vm: VmId) -> &'static Vm {
    &VMS_LIVE[vm.index()]
}

/// The run-time state of vCPU `v`.
pub fn vcpu(v: VcpuRef) -> &'static Vcpu {
    &VMS_LIVE[v.vm.index()].vcpus[v.vcpu.index()]
}

/// Every VM of the config, in order.
pub fn ids() -> impl Iterator<Item = VmId> {
    (0..VMS.len()).map(VmId)
}

/// The vCPU this core is running (or, on an exclusive core, the one it hosts).
pub fn current() -> Option<VcpuRef> {
    crate::pcpu::current()
}

/// VTCR_EL2 for every VM (from the CPU's PARange, computed at boot).
pub fn vtcr() -> u64 {
    lifecycle::VTCR.load(Ordering::Relaxed)
}

/// Static description of VM `vm`.
pub fn desc(vm: VmId) -> &'static VmDesc {
    &VMS[vm.index()]
}

/// Static description of vCPU `v`.
pub fn vcpu_desc(v: VcpuRef) -> &'static VcpuDesc {
    &VMS[v.vm.index()].vcpus[v.vcpu.index()]
}

/// The physical core vCPU `v` is pinned to.
pub fn core_of(v: VcpuRef) -> CoreId {
    CoreId(vcpu_desc(v).pcpu)
}

/// The vCPU of `vm` whose MPIDR (affinity fields) is `mpidr`.
pub fn vcpu_by_mpidr(vm: VmId, mpidr: u64) -> Option<(VcpuId, &'static VcpuDesc)> {
    const AFF_MASK: u64 = 0xff_00ff_ffff;
    desc(vm)
        .vcpus
        .iter()
        .enumerate()
        .find(|(_, v)| v.mpidr & AFF_MASK == mpidr & AFF_MASK)
        .map(|(i, v)| (VcpuId(i), v))
}
