//! VMs and vCPUs at run time: their state machines, the memory they were given, the saved
//! context of each vCPU, and the operations that cross cores (start a vCPU, stop or reset a
//! VM, power the machine off).
//!
//! Static descriptions come from `config::VMS`; this module holds what changes while running.
//! Which vCPU a core runs, and when, is the business of `crate::pcpu` (the run loop).

pub mod boot;
mod lifecycle;
mod memory;

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use spin::Mutex;

pub use lifecycle::{finish_vm, reset_vm, start_vcpu, vcpu_off, Outcome, VmEnd};
pub use memory::{ipa_to_pa, vm_ram_contains};

use crate::arch::vcpu::{El1State, FpState};
use crate::arch::{gic::vif::VifState, TrapFrame};
use crate::config::{VcpuDesc, VmDesc, VMS};

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

/// A vCPU at run time: its power state, where it starts next, and its saved context.
pub struct Vcpu {
    state: AtomicU8,
    entry: AtomicU64,
    context: AtomicU64,
    /// Its context while it is off its core. Only the vCPU's own core touches it (vCPUs are
    /// pinned), so the lock is never contended; it keeps that rule checked.
    pub saved: Mutex<SavedContext>,
}

impl Vcpu {
    const fn new() -> Self {
        Vcpu {
            state: AtomicU8::new(0),
            entry: AtomicU64::new(0),
            context: AtomicU64::new(0),
            saved: Mutex::new(SavedContext::RESET),
        }
    }

    pub fn state(&self) -> VcpuState {
        VcpuState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set(&self, s: VcpuState) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Atomically moves the state `from` → `to`; false if it was not `from`.
    pub fn transition(&self, from: VcpuState, to: VcpuState) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Where a vCPU in `OnPending` starts: `(entry, x0)`.
    pub fn start_point(&self) -> (u64, u64) {
        (
            self.entry.load(Ordering::Acquire),
            self.context.load(Ordering::Acquire),
        )
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

/// A VM at run time.
pub struct Vm {
    state: AtomicU8,
    exit_code: AtomicU32,
    vttbr: AtomicU64,
    /// Physical base of each `mem` region (each region is physically contiguous).
    region_pa: [AtomicU64; MAX_MEM_REGIONS],
    fault_reports: AtomicU32,
    resets: AtomicU32,
    pub vcpus: [Vcpu; MAX_VCPUS],
}

impl Vm {
    const fn new() -> Self {
        Vm {
            state: AtomicU8::new(VmState::Off as u8),
            exit_code: AtomicU32::new(0),
            vttbr: AtomicU64::new(0),
            region_pa: [const { AtomicU64::new(0) }; MAX_MEM_REGIONS],
            fault_reports: AtomicU32::new(0),
            resets: AtomicU32::new(0),
            vcpus: [const { Vcpu::new() }; MAX_VCPUS],
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

static VMS_LIVE: [Vm; MAX_VMS] = [const { Vm::new() }; MAX_VMS];

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
pub fn get(vm: usize) -> &'static Vm {
    &VMS_LIVE[vm]
}

/// The vCPU this core is running (or, on an exclusive core, the one it hosts), as `(vm, vcpu)`.
pub fn current() -> Option<(usize, usize)> {
    crate::pcpu::current()
}

/// VTCR_EL2 for every VM (from the CPU's PARange, computed at boot).
pub fn vtcr() -> u64 {
    lifecycle::VTCR.load(Ordering::Relaxed)
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
