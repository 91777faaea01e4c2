//! The physical GIC, as far as the hypervisor itself uses it: distributor and per-core CPU
//! interface set-up, and software-generated interrupts (SGIs) between physical cores, which
//! Tessera uses to make a core leave its guest (a VM being stopped or reset).
//!
//! One implementation per GIC generation; the board's (build-time) choice picks it and the DTB
//! check at boot makes sure the hardware agrees.

mod v2;
mod v3;

use spin::Once;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

use crate::config::{GicDesc, GicVersion};
use crate::ids::CoreId;

/// The SGI Tessera sends to make a core look at its vCPU's state (stop/reset requests, new
/// virtual interrupts for it).
pub const SGI_KICK: u32 = 1;
/// The virtual interface's maintenance interrupt (a PPI).
pub const PPI_MAINTENANCE: u32 = 25;
/// The EL2 physical timer's interrupt (CNTHP, a PPI): the scheduler's budget and release
/// timer on shared cores.
pub const PPI_HYP_TIMER: u32 = 26;
/// The EL1 virtual timer's interrupt (a PPI).
pub const PPI_VTIMER: u32 = 27;
/// Priority of the interrupts the hypervisor handles or hands to guests.
pub const HYP_PRIORITY: u8 = 0x80;

register_structs! {
    /// The distributor's registers as both generations lay them out (IHI 0069 §12.9,
    /// IHI 0048B §4.3): ITARGETSR and SGIR exist on GICv2 only (its frame is 4 KiB), IROUTER on
    /// GICv3 only (with affinity routing).
    Distributor {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => typer: ReadOnly<u32>),
        (0x008 => _reserved0),
        (0x080 => igroupr: [ReadWrite<u32>; 32]),
        (0x100 => isenabler: [ReadWrite<u32>; 32]),
        (0x180 => icenabler: [ReadWrite<u32>; 32]),
        (0x200 => _reserved1),
        (0x400 => ipriorityr: [ReadWrite<u32>; 255]),
        (0x7fc => _reserved2),
        (0x800 => itargetsr: [ReadWrite<u32>; 255]),
        (0xbfc => _reserved3),
        (0xc00 => icfgr: [ReadWrite<u32>; 64]),
        (0xd00 => _reserved4),
        (0xf00 => sgir: WriteOnly<u32>),
        (0xf04 => _reserved5),
        (0x6100 => irouter: [ReadWrite<u64>; 988]),
        (0x7fe0 => _reserved6),
        (0x10000 => @END),
    }
}

/// The distributor at physical `gicd`.
fn distributor(gicd: u64) -> &'static Distributor {
    // SAFETY: `gicd` is the board's distributor, identity-mapped as Device memory by the EL2
    // MMU set-up; the layout follows both GIC specifications (see `Distributor`), and callers
    // touch only the registers their generation has.
    unsafe { &*crate::mm::phys_to_mmio::<Distributor>(gicd) }
}

/// Sets the priority byte of `intid` in a 4-interrupts-per-word priority register.
fn set_priority(reg: &ReadWrite<u32>, intid: u32, priority: u8) {
    let shift = (intid % 4) * 8;
    reg.set((reg.get() & !(0xff << shift)) | ((priority as u32) << shift));
}

enum Gic {
    V2(v2::GicV2),
    V3(v3::GicV3),
}

static GIC: Once<Gic> = Once::new();

/// Sets up the distributor (boot core, once).
pub fn init_distributor(desc: &GicDesc) {
    GIC.call_once(|| match desc.version {
        GicVersion::V2 => Gic::V2(v2::GicV2::new(desc)),
        GicVersion::V3 => Gic::V3(v3::GicV3::new(desc)),
    });
    match GIC.get() {
        Some(Gic::V2(g)) => g.init_distributor(),
        Some(Gic::V3(g)) => g.init_distributor(),
        None => {}
    }
}

/// Sets up this core's redistributor / CPU interface and enables SGIs on it.
pub fn init_cpu(core: CoreId, mpidr: u64) {
    match GIC.get() {
        Some(Gic::V2(g)) => g.init_cpu(core),
        Some(Gic::V3(g)) => g.init_cpu(mpidr),
        None => {}
    }
}

/// Sends SGI `intid` to physical core `core` (whose MPIDR is `mpidr`).
pub fn send_sgi(core: CoreId, mpidr: u64, intid: u32) {
    match GIC.get() {
        Some(Gic::V2(g)) => g.send_sgi(core, intid),
        Some(Gic::V3(g)) => g.send_sgi(mpidr, intid),
        None => {}
    }
}

/// Acknowledges the highest-priority pending interrupt of this core, if any.
pub fn acknowledge() -> Option<u32> {
    let intid = match GIC.get()? {
        Gic::V2(g) => g.acknowledge(),
        Gic::V3(g) => g.acknowledge(),
    };
    (intid < 1020).then_some(intid)
}

/// Ends (drops priority and deactivates) an acknowledged interrupt.
pub fn end_of_interrupt(intid: u32) {
    match GIC.get() {
        Some(Gic::V2(g)) => g.end_of_interrupt(intid),
        Some(Gic::V3(g)) => g.end_of_interrupt(intid),
        None => {}
    }
}

/// Deactivates an interrupt Tessera acknowledged for itself (EOImode 1 splits priority drop
/// and deactivation).
pub fn deactivate(intid: u32) {
    match GIC.get() {
        Some(Gic::V2(g)) => g.deactivate(intid),
        Some(Gic::V3(g)) => g.deactivate(intid),
        None => {}
    }
}

/// Enables physical `intid` for physical core `core` (PPIs: must be called on that core
/// for GICv2, whose PPI registers are banked).
pub fn enable(intid: u32, core: CoreId, mpidr: u64) {
    match GIC.get() {
        Some(Gic::V2(g)) => g.enable(intid, core, HYP_PRIORITY),
        Some(Gic::V3(g)) => g.enable(intid, mpidr, HYP_PRIORITY),
        None => {}
    }
}

/// Disables physical `intid` (see [`enable`] for PPIs).
pub fn disable(intid: u32, mpidr: u64) {
    match GIC.get() {
        Some(Gic::V2(g)) => g.disable(intid),
        Some(Gic::V3(g)) => g.disable(intid, mpidr),
        None => {}
    }
}

/// This core's virtual CPU interface: list registers in the raw format of the GIC version
/// (ICH_LR<n>_EL2 on v3, GICH_LR<n> on v2).
pub mod vif {
    use super::{Gic, GIC};

    pub fn lr_count() -> usize {
        match GIC.get() {
            Some(Gic::V2(g)) => g.lr_count(),
            Some(Gic::V3(_)) => super::v3::vif::lr_count(),
            None => 0,
        }
        .min(16)
    }

    pub fn lr_read(i: usize) -> u64 {
        match GIC.get() {
            Some(Gic::V2(g)) => g.lr_read(i),
            Some(Gic::V3(_)) => super::v3::vif::lr_read(i),
            None => 0,
        }
    }

    pub fn lr_write(i: usize, v: u64) {
        match GIC.get() {
            Some(Gic::V2(g)) => g.lr_write(i, v),
            Some(Gic::V3(_)) => super::v3::vif::lr_write(i, v),
            None => {}
        }
    }

    /// Bit i set: list register i is empty.
    pub fn empty_lrs() -> u64 {
        match GIC.get() {
            Some(Gic::V2(g)) => g.empty_lrs(),
            Some(Gic::V3(_)) => super::v3::vif::empty_lrs(),
            None => 0,
        }
    }

    /// Enables the virtual interface; `underflow_irq` asks for a maintenance interrupt when
    /// at most one list register is in use (time to refill).
    pub fn set_control(underflow_irq: bool) {
        match GIC.get() {
            Some(Gic::V2(g)) => g.set_control(underflow_irq),
            Some(Gic::V3(_)) => super::v3::vif::set_control(underflow_irq),
            None => {}
        }
    }

    /// A vCPU's virtual CPU interface state beyond its list registers (which go back into the
    /// vGIC model when it leaves a core): the VM control register (its priority mask, binary
    /// points, group enables) and the active-priority registers.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct VifState {
        pub vmcr: u64,
        /// v3: AP0R0–3 then AP1R0–3 (those the CPU has); v2: `ap[0]` = GICH_APR.
        pub ap: [u64; 8],
    }

    impl VifState {
        /// The reset state: nothing active, the guest's interface disabled.
        pub const ZERO: VifState = VifState {
            vmcr: 0,
            ap: [0; 8],
        };
    }

    /// Reads this core's virtual interface state.
    pub fn save() -> VifState {
        match GIC.get() {
            Some(Gic::V2(g)) => g.vif_save(),
            Some(Gic::V3(_)) => super::v3::vif::save(),
            None => VifState::default(),
        }
    }

    /// Writes a saved virtual interface state into this core's virtual interface.
    pub fn restore(s: &VifState) {
        match GIC.get() {
            Some(Gic::V2(g)) => g.vif_restore(s),
            Some(Gic::V3(_)) => super::v3::vif::restore(s),
            None => {}
        }
    }

    /// Clears every list register and the virtual interface state.
    pub fn reset() {
        match GIC.get() {
            Some(Gic::V2(g)) => g.vif_reset(),
            Some(Gic::V3(_)) => super::v3::vif::reset(),
            None => {}
        }
    }
}
