//! VMs and vCPUs at run time: their state machines, the memory they were given, and the
//! operations that cross cores (start a vCPU, stop or reset a VM, power the machine off).
//!
//! Static descriptions come from `config::VMS`; this module holds what changes while running.

pub mod boot;
mod lifecycle;
mod memory;

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

pub use lifecycle::{
    drain_interrupts, finish_vm, kick_if_stopping, reset_vm, start_vcpu, vcpu_off, VmEnd,
};
pub use memory::{ipa_to_pa, vm_ram_contains};

use crate::config::{VcpuDesc, VmDesc, PCPUS, VMS};

/// Capacities of the run-time tables (the config generator enforces the same limits).
pub const MAX_VMS: usize = 16;
pub const MAX_VCPUS: usize = 8;
pub const MAX_PCPUS: usize = 16;
pub const MAX_MEM_REGIONS: usize = 4;

/// vCPU power states (PSCI's view plus a stop request in flight).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    Off = 0,
    OnPending = 1,
    On = 2,
    StopRequested = 3,
}

impl VcpuState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => VcpuState::OnPending,
            2 => VcpuState::On,
            3 => VcpuState::StopRequested,
            _ => VcpuState::Off,
        }
    }
}

pub struct VcpuRt {
    state: AtomicU8,
    entry: AtomicU64,
    context: AtomicU64,
}

impl VcpuRt {
    const fn new() -> Self {
        VcpuRt {
            state: AtomicU8::new(0),
            entry: AtomicU64::new(0),
            context: AtomicU64::new(0),
        }
    }

    pub fn state(&self) -> VcpuState {
        VcpuState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set(&self, s: VcpuState) {
        self.state.store(s as u8, Ordering::Release);
    }

    fn transition(&self, from: VcpuState, to: VcpuState) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// VM states.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmState {
    Running = 0,
    Resetting = 1,
    Off = 2,
}

pub struct VmRt {
    state: AtomicU8,
    exit_code: AtomicU32,
    vttbr: AtomicU64,
    /// Physical base of each `mem` region (each region is physically contiguous).
    region_pa: [AtomicU64; MAX_MEM_REGIONS],
    fault_reports: AtomicU32,
    resets: AtomicU32,
    pub vcpus: [VcpuRt; MAX_VCPUS],
}

impl VmRt {
    const fn new() -> Self {
        VmRt {
            state: AtomicU8::new(VmState::Off as u8),
            exit_code: AtomicU32::new(0),
            vttbr: AtomicU64::new(0),
            region_pa: [const { AtomicU64::new(0) }; MAX_MEM_REGIONS],
            fault_reports: AtomicU32::new(0),
            resets: AtomicU32::new(0),
            vcpus: [const { VcpuRt::new() }; MAX_VCPUS],
        }
    }

    pub fn state(&self) -> VmState {
        match self.state.load(Ordering::Acquire) {
            0 => VmState::Running,
            1 => VmState::Resetting,
            _ => VmState::Off,
        }
    }

    /// How many times the VM was reset since the machine booted.
    pub fn resets(&self) -> u32 {
        self.resets.load(Ordering::Relaxed)
    }

    pub fn vttbr(&self) -> u64 {
        self.vttbr.load(Ordering::Acquire)
    }

    /// Counts a fault report; false once a VM has had its share (a misbehaving guest must not
    /// be able to flood the shared console).
    pub fn may_report_fault(&self, vm: usize) -> bool {
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

static VM_RT: [VmRt; MAX_VMS] = [const { VmRt::new() }; MAX_VMS];

/// Number of VMs not yet off; the machine powers off when it reaches 0.
static RUNNING_VMS: AtomicUsize = AtomicUsize::new(0);

/// Physical MPIDR of each core, from the DTB.
static CORE_MPIDR: [AtomicU64; MAX_PCPUS] = [const { AtomicU64::new(0) }; MAX_PCPUS];

pub fn core_mpidr(core: usize) -> u64 {
    CORE_MPIDR
        .get(core)
        .map_or(0, |m| m.load(Ordering::Relaxed))
}

/// Run-time state of VM `vm`.
pub fn rt(vm: usize) -> &'static VmRt {
    &VM_RT[vm]
}

/// The vCPU this core runs, as `(vm, vcpu)`, from the static partition.
pub fn current() -> Option<(usize, usize)> {
    match PCPUS.get(crate::arch::core_index())?.policy {
        crate::config::PcpuPolicy::Exclusive { vm, vcpu } => Some((vm, vcpu)),
        crate::config::PcpuPolicy::Idle => None,
    }
}

/// Static description of VM `vm`.
pub fn desc(vm: usize) -> &'static VmDesc {
    &VMS[vm]
}

/// The vCPU of `vm` whose MPIDR (affinity fields) is `mpidr`.
pub fn vcpu_by_mpidr(vm: usize, mpidr: u64) -> Option<(usize, &'static VcpuDesc)> {
    const AFF_MASK: u64 = 0xff_00ff_ffff;
    desc(vm)
        .vcpus
        .iter()
        .enumerate()
        .find(|(_, v)| v.mpidr & AFF_MASK == mpidr & AFF_MASK)
}
