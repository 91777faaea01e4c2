//! GICv2 (GIC-400 on the Raspberry Pi 4, `gic-version=2` on QEMU virt): distributor and CPU
//! interface by MMIO (GICv2 architecture specification, IHI 0048B, chapter 4).

use core::sync::atomic::{AtomicU8, Ordering};

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

use super::{set_priority, Distributor};
use crate::config::GicDesc;
use crate::ids::CoreId;
use crate::mm::phys_to_mmio;

register_structs! {
    CpuInterface {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => pmr: ReadWrite<u32>),
        (0x008 => bpr: ReadWrite<u32>),
        (0x00c => iar: ReadOnly<u32>),
        (0x010 => eoir: WriteOnly<u32>),
        (0x014 => _reserved0),
        (0x1000 => dir: WriteOnly<u32>),
        (0x1004 => _reserved1),
        (0x2000 => @END),
    }
}

register_structs! {
    /// Virtual interface control (GICH), banked per core (IHI 0048B §5.3).
    HypInterface {
        (0x000 => hcr: ReadWrite<u32>),
        (0x004 => vtr: ReadOnly<u32>),
        (0x008 => vmcr: ReadWrite<u32>),
        (0x00c => _reserved0),
        (0x010 => misr: ReadOnly<u32>),
        (0x014 => _reserved1),
        (0x030 => elrsr0: ReadOnly<u32>),
        (0x034 => elrsr1: ReadOnly<u32>),
        (0x038 => _reserved2),
        (0x0f0 => apr: ReadWrite<u32>),
        (0x0f4 => _reserved3),
        (0x100 => lr: [ReadWrite<u32>; 64]),
        (0x200 => _reserved4),
        (0x1000 => @END),
    }
}

pub struct GicV2 {
    gicd: u64,
    gicc: u64,
    gich: u64,
}

/// CPU interface number of each core (a GICv2 SGI names targets by it).
static CPU_IF: [AtomicU8; crate::vm::MAX_PCPUS] =
    [const { AtomicU8::new(0) }; crate::vm::MAX_PCPUS];

impl GicV2 {
    pub fn new(desc: &GicDesc) -> Self {
        GicV2 {
            gicd: desc.gicd,
            gicc: desc.gicc,
            gich: desc.gich,
        }
    }

    fn gicd(&self) -> &'static Distributor {
        super::distributor(self.gicd)
    }

    fn gich(&self) -> &'static HypInterface {
        // SAFETY: the board's GICH frame (banked per core), Device-mapped (IHI 0048B §5.3).
        unsafe { &*phys_to_mmio::<HypInterface>(self.gich) }
    }

    fn gicc(&self) -> &'static CpuInterface {
        // SAFETY: the board's CPU interface (banked per core), Device-mapped (IHI 0048B §4.4).
        unsafe { &*phys_to_mmio::<CpuInterface>(self.gicc) }
    }

    pub fn init_distributor(&self) {
        let d = self.gicd();
        d.ctlr.set(0);
        d.ctlr.set(1);
    }

    pub fn init_cpu(&self, core: CoreId) {
        let d = self.gicd();
        // ITARGETSR0..7 read back this core's own CPU interface mask (banked).
        let mask = (d.itargetsr[0].get() & 0xff) as u8;
        if let Some(slot) = CPU_IF.get(core.index()) {
            slot.store(mask, Ordering::Relaxed);
        }
        for p in d.ipriorityr.iter().take(8) {
            p.set(0x8080_8080);
        }
        d.icenabler[0].set(0xffff_0000);
        d.isenabler[0].set((1 << super::SGI_KICK) | (1 << super::PPI_MAINTENANCE));
        let c = self.gicc();
        c.pmr.set(0xff);
        c.bpr.set(0);
        // Enable | EOImodeNS: EOIR only drops priority, GICC_DIR deactivates.
        c.ctlr.set(1 | (1 << 9));
    }

    pub fn send_sgi(&self, core: CoreId, intid: u32) {
        let mask = CPU_IF
            .get(core.index())
            .map_or(0, |m| m.load(Ordering::Relaxed)) as u32;
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
        self.gicd().sgir.set((mask << 16) | (intid & 0xf));
    }

    pub fn acknowledge(&self) -> u32 {
        self.gicc().iar.get() & 0x3ff
    }

    pub fn end_of_interrupt(&self, intid: u32) {
        self.gicc().eoir.set(intid);
    }

    pub fn deactivate(&self, intid: u32) {
        self.gicc().dir.set(intid);
    }

    /// Enables `intid` (an SPI is targeted at `core`; SGIs/PPIs are banked per core, so this
    /// must run on the core concerned).
    pub fn enable(&self, intid: u32, core: CoreId, priority: u8) {
        let d = self.gicd();
        set_priority(&d.ipriorityr[(intid / 4) as usize], intid, priority);
        let shift = (intid % 4) * 8;
        if intid >= 32 {
            let mask = CPU_IF
                .get(core.index())
                .map_or(1, |m| m.load(Ordering::Relaxed)) as u32;
            let t = &d.itargetsr[(intid / 4) as usize];
            t.set((t.get() & !(0xff << shift)) | (mask << shift));
        }
        d.isenabler[(intid / 32) as usize].set(1 << (intid % 32));
    }

    pub fn disable(&self, intid: u32) {
        self.gicd().icenabler[(intid / 32) as usize].set(1 << (intid % 32));
    }

    pub fn lr_count(&self) -> usize {
        (self.gich().vtr.get() & 0x3f) as usize + 1
    }

    pub fn lr_read(&self, i: usize) -> u64 {
        self.gich().lr[i].get() as u64
    }

    pub fn lr_write(&self, i: usize, v: u64) {
        self.gich().lr[i].set(v as u32);
    }

    pub fn empty_lrs(&self) -> u64 {
        let h = self.gich();
        h.elrsr0.get() as u64 | ((h.elrsr1.get() as u64) << 32)
    }

    pub fn set_control(&self, underflow_irq: bool) {
        self.gich().hcr.set(1 | ((underflow_irq as u32) << 1));
    }

    pub fn vif_save(&self) -> super::vif::VifState {
        let h = self.gich();
        let mut s = super::vif::VifState {
            vmcr: h.vmcr.get() as u64,
            ..Default::default()
        };
        s.ap[0] = h.apr.get() as u64;
        s
    }

    pub fn vif_restore(&self, s: &super::vif::VifState) {
        let h = self.gich();
        h.vmcr.set(s.vmcr as u32);
        h.apr.set(s.ap[0] as u32);
    }

    pub fn vif_reset(&self) {
        for i in 0..self.lr_count() {
            self.lr_write(i, 0);
        }
        let h = self.gich();
        h.vmcr.set(0);
        h.apr.set(0);
        self.set_control(false);
    }
}
