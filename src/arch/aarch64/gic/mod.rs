//! The physical GIC, as far as the hypervisor itself uses it: distributor and per-core CPU
//! interface set-up, and software-generated interrupts (SGIs) between physical cores, which
//! Tessera uses to make a core leave its guest (a VM being stopped or reset).
//!
//! One implementation per GIC generation; the board's (build-time) choice picks it and the DTB
//! check at boot makes sure the hardware agrees.

mod v2;
mod v3;

use spin::Once;

use crate::config::{GicDesc, GicVersion};

/// The SGI Tessera sends to make a core look at its vCPU's state (stop/reset requests).
pub const SGI_KICK: u32 = 1;

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
pub fn init_cpu(core: usize, mpidr: u64) {
    match GIC.get() {
        Some(Gic::V2(g)) => g.init_cpu(core),
        Some(Gic::V3(g)) => g.init_cpu(mpidr),
        None => {}
    }
}

/// Sends SGI `intid` to physical core `core` (whose MPIDR is `mpidr`).
pub fn send_sgi(core: usize, mpidr: u64, intid: u32) {
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
