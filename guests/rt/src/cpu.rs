//! The current CPU, and starting the others (PSCI `CPU_ON`).

use aarch64_cpu::asm::wfe;
use aarch64_cpu::registers::{Readable, Writeable, MPIDR_EL1, TPIDR_EL1};
use spin::Mutex;

use crate::boot::{boot_info, MAX_CPUS};
use crate::psci::{self, AffinityState, PsciError};

/// Affinity fields of MPIDR (Aff3 and Aff2..Aff0), as the DTB's `cpu` `reg` lists them.
const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;

/// The current CPU's index in [`crate::BootInfo::cpus`] (kept in `TPIDR_EL1`).
pub fn index() -> usize {
    TPIDR_EL1.get() as usize
}

pub(crate) fn set_index(index: usize) {
    TPIDR_EL1.set(index as u64);
}

/// The current CPU's MPIDR affinity value (comparable to the DTB's `cpu` `reg`).
pub fn mpidr() -> u64 {
    MPIDR_EL1.get() & MPIDR_AFF_MASK
}

/// Stops this CPU for good (interrupts are masked: `wfe` in a loop).
pub fn halt() -> ! {
    loop {
        wfe();
    }
}

/// What a started CPU runs: called with its index; when it returns the CPU powers off.
pub type SecondaryMain = fn(usize);

static ENTRIES: Mutex<[Option<SecondaryMain>; MAX_CPUS]> = Mutex::new([None; MAX_CPUS]);

/// Why a CPU could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// No such CPU in the DTB (or beyond [`MAX_CPUS`]).
    NoSuchCpu,
    /// That is the calling CPU.
    IsSelf,
    /// The DTB names no PSCI conduit.
    NoPsci,
    /// PSCI `CPU_ON` failed.
    Psci(PsciError),
}

extern "C" {
    /// Entry point of secondary CPUs (boot.rs).
    fn _secondary_start();
}

/// Starts CPU `index` (of [`crate::BootInfo::cpus`]) running `main(index)`, with its own stack
/// and the same MMU setup (and its GIC interface set up if [`crate::irq::init`] has run). The CPU powers off (PSCI `CPU_OFF`) when `main` returns.
pub fn start(index: usize, main: SecondaryMain) -> Result<(), StartError> {
    let info = boot_info();
    let &target = info.cpus.get(index).ok_or(StartError::NoSuchCpu)?;
    if index == self::index() {
        return Err(StartError::IsSelf);
    }
    let conduit = info.psci.ok_or(StartError::NoPsci)?;
    ENTRIES.lock()[index] = Some(main);
    let entry = _secondary_start as *const () as usize as u64;
    psci::cpu_on(conduit, target, entry, index as u64).map_err(StartError::Psci)
}

/// PSCI `AFFINITY_INFO` of CPU `index`.
pub fn state(index: usize) -> Result<AffinityState, StartError> {
    let info = boot_info();
    let &target = info.cpus.get(index).ok_or(StartError::NoSuchCpu)?;
    let conduit = info.psci.ok_or(StartError::NoPsci)?;
    psci::affinity_info(conduit, target).map_err(StartError::Psci)
}

/// Powers the calling CPU off (PSCI `CPU_OFF`); halts if PSCI refuses.
pub fn off() -> ! {
    if let Some(conduit) = boot_info().psci {
        psci::cpu_off(conduit);
    }
    halt()
}

/// Body of a secondary CPU (from boot.rs, MMU on, stack set, `TPIDR_EL1` = index).
pub(crate) fn run_secondary(index: usize) -> ! {
    let main = ENTRIES.lock().get_mut(index).and_then(Option::take);
    if crate::irq::initialized() {
        // Errors show again when the CPU's main calls `irq::init_cpu` itself.
        let _ = crate::irq::init_cpu();
    }
    if let Some(main) = main {
        main(index);
    }
    off()
}
