//! GICv3: distributor and redistributors by MMIO, CPU interface by system registers
//! (GICv3 architecture specification, IHI 0069, chapters 12.8–12.11).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

use super::{set_priority, Distributor};
use crate::arch::regs;
use crate::config::GicDesc;
use crate::mm::phys_to_mmio;

register_structs! {
    RedistributorRd {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => iidr: ReadOnly<u32>),
        (0x008 => typer: ReadOnly<u64>),
        (0x010 => _reserved0),
        (0x014 => waker: ReadWrite<u32>),
        (0x018 => _reserved1),
        (0x10000 => @END),
    }
}

register_structs! {
    RedistributorSgi {
        (0x000 => _reserved0),
        (0x080 => igroupr0: ReadWrite<u32>),
        (0x084 => _reserved1),
        (0x100 => isenabler0: ReadWrite<u32>),
        (0x104 => _reserved2),
        (0x180 => icenabler0: ReadWrite<u32>),
        (0x184 => _reserved3),
        (0x400 => ipriorityr: [ReadWrite<u32>; 8]),
        (0x420 => _reserved4),
        (0x10000 => @END),
    }
}

const GICD_CTLR_ENABLE_G0: u32 = 1 << 0;
const GICD_CTLR_ENABLE_G1: u32 = 1 << 1;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_STRIDE: u64 = 0x2_0000;
/// ICC_SRE_EL2: SRE (system registers) | DFB | DIB | Enable (EL1 may use ICC_SRE_EL1).
const ICC_SRE_EL2_VALUE: u64 = 0b1111;

pub struct GicV3 {
    gicd: u64,
    gicr: u64,
}

impl GicV3 {
    pub fn new(desc: &GicDesc) -> Self {
        GicV3 {
            gicd: desc.gicd,
            gicr: desc.gicr,
        }
    }

    fn gicd(&self) -> &'static Distributor {
        super::distributor(self.gicd)
    }

    /// Finds the redistributor whose GICR_TYPER affinity matches `mpidr`.
    fn redistributor(&self, mpidr: u64) -> Option<u64> {
        let aff = ((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xff_ffff);
        let mut base = self.gicr;
        for _ in 0..crate::vm::MAX_PCPUS * 2 {
            // SAFETY: redistributor frames are identity-mapped Device memory within the board's
            // GICR range; the walk stops at the frame flagged Last.
            let rd = unsafe { &*phys_to_mmio::<RedistributorRd>(base) };
            let typer = rd.typer.get();
            if typer >> 32 == aff {
                return Some(base);
            }
            if typer & GICR_TYPER_LAST != 0 {
                return None;
            }
            base += GICR_STRIDE;
        }
        None
    }

    pub fn init_distributor(&self) {
        let d = self.gicd();
        d.ctlr.set(0);
        // Affinity routing on, both groups on (QEMU's GIC has one security state: DS = 1).
        d.ctlr
            .set(GICD_CTLR_ARE | GICD_CTLR_ENABLE_G1 | GICD_CTLR_ENABLE_G0);
    }

    pub fn init_cpu(&self, mpidr: u64) {
        let Some(base) = self.redistributor(mpidr) else {
            crate::console::hyp_println(format_args!(
                "FATAL: no GICv3 redistributor for MPIDR {:#x}",
                mpidr
            ));
            crate::arch::halt_machine(0xfe);
        };
        // SAFETY: `base` is this core's redistributor (found by affinity), Device-mapped.
        let rd = unsafe { &*phys_to_mmio::<RedistributorRd>(base) };
        rd.waker.set(rd.waker.get() & !GICR_WAKER_PROCESSOR_SLEEP);
        while rd.waker.get() & GICR_WAKER_CHILDREN_ASLEEP != 0 {
            core::hint::spin_loop();
        }
        // SAFETY: the SGI/PPI frame follows the RD frame at +64 KiB (IHI 0069 §12.10).
        let sgi = unsafe { &*phys_to_mmio::<RedistributorSgi>(base + 0x1_0000) };
        sgi.igroupr0.set(0xffff_ffff);
        for p in sgi.ipriorityr.iter() {
            p.set(0x8080_8080);
        }
        sgi.icenabler0.set(0xffff_0000);
        sgi.isenabler0
            .set((1 << super::SGI_KICK) | (1 << super::PPI_MAINTENANCE));

        aarch64_cpu::registers::ICC_SRE_EL2.set(ICC_SRE_EL2_VALUE);
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
        regs::set_icc_pmr_el1(0xff);
        regs::set_icc_bpr1_el1(0);
        // EOImode 1: EOIR only drops priority; deactivation is separate (ICC_DIR_EL1), so a
        // hardware interrupt handed to a guest stays active until the guest deactivates it.
        regs::set_icc_ctlr_el1_raw(1 << 1);
        regs::set_icc_igrpen1_el1(1);
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    }

    pub fn send_sgi(&self, mpidr: u64, intid: u32) {
        let aff3 = (mpidr >> 32) & 0xff;
        let aff2 = (mpidr >> 16) & 0xff;
        let aff1 = (mpidr >> 8) & 0xff;
        let aff0 = mpidr & 0xf;
        let v =
            (aff3 << 48) | (aff2 << 32) | ((intid as u64 & 0xf) << 24) | (aff1 << 16) | (1 << aff0);
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
        regs::set_icc_sgi1r_el1(v);
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    }

    pub fn acknowledge(&self) -> u32 {
        (regs::icc_iar1_el1() & 0xff_ffff) as u32
    }

    pub fn end_of_interrupt(&self, intid: u32) {
        regs::set_icc_eoir1_el1(intid as u64);
    }

    pub fn deactivate(&self, intid: u32) {
        regs::set_icc_dir_el1(intid as u64);
    }

    fn sgi_frame(&self, mpidr: u64) -> Option<&'static RedistributorSgi> {
        let base = self.redistributor(mpidr)?;
        // SAFETY: the SGI/PPI frame of a redistributor found by affinity, Device-mapped.
        Some(unsafe { &*phys_to_mmio::<RedistributorSgi>(base + 0x1_0000) })
    }

    /// Enables `intid`: a PPI/SGI in core `mpidr`'s redistributor, or an SPI routed to it.
    pub fn enable(&self, intid: u32, mpidr: u64, priority: u8) {
        let bit = 1u32 << (intid % 32);
        if intid < 32 {
            if let Some(sgi) = self.sgi_frame(mpidr) {
                set_priority(&sgi.ipriorityr[(intid / 4) as usize], intid, priority);
                sgi.isenabler0.set(bit);
            }
            return;
        }
        let d = self.gicd();
        let n = (intid / 32) as usize;
        d.igroupr[n].set(d.igroupr[n].get() | bit);
        set_priority(&d.ipriorityr[(intid / 4) as usize], intid, priority);
        let aff = ((mpidr >> 32) & 0xff) << 32 | (mpidr & 0xff_ffff);
        d.irouter[(intid - 32) as usize].set(aff);
        d.isenabler[n].set(bit);
    }

    /// Disables `intid` (a PPI/SGI of core `mpidr`, or an SPI).
    pub fn disable(&self, intid: u32, mpidr: u64) {
        let bit = 1u32 << (intid % 32);
        if intid < 32 {
            if let Some(sgi) = self.sgi_frame(mpidr) {
                sgi.icenabler0.set(bit);
            }
        } else {
            self.gicd().icenabler[(intid / 32) as usize].set(bit);
        }
    }
}

/// The virtual CPU interface (ICH_* registers, IHI 0069 §12.4).
pub mod vif {
    use aarch64_cpu::registers::*;
    use tock_registers::interfaces::{Readable, Writeable};

    use crate::arch::regs;

    pub fn lr_count() -> usize {
        (ICH_VTR_EL2.get() & 0x1f) as usize + 1
    }

    pub fn lr_read(i: usize) -> u64 {
        match i {
            0 => ICH_LR0_EL2.get(),
            1 => ICH_LR1_EL2.get(),
            2 => ICH_LR2_EL2.get(),
            3 => ICH_LR3_EL2.get(),
            4 => ICH_LR4_EL2.get(),
            5 => ICH_LR5_EL2.get(),
            6 => ICH_LR6_EL2.get(),
            7 => ICH_LR7_EL2.get(),
            8 => ICH_LR8_EL2.get(),
            9 => ICH_LR9_EL2.get(),
            10 => ICH_LR10_EL2.get(),
            11 => ICH_LR11_EL2.get(),
            12 => ICH_LR12_EL2.get(),
            13 => ICH_LR13_EL2.get(),
            14 => ICH_LR14_EL2.get(),
            _ => ICH_LR15_EL2.get(),
        }
    }

    pub fn lr_write(i: usize, v: u64) {
        match i {
            0 => ICH_LR0_EL2.set(v),
            1 => ICH_LR1_EL2.set(v),
            2 => ICH_LR2_EL2.set(v),
            3 => ICH_LR3_EL2.set(v),
            4 => ICH_LR4_EL2.set(v),
            5 => ICH_LR5_EL2.set(v),
            6 => ICH_LR6_EL2.set(v),
            7 => ICH_LR7_EL2.set(v),
            8 => ICH_LR8_EL2.set(v),
            9 => ICH_LR9_EL2.set(v),
            10 => ICH_LR10_EL2.set(v),
            11 => ICH_LR11_EL2.set(v),
            12 => ICH_LR12_EL2.set(v),
            13 => ICH_LR13_EL2.set(v),
            14 => ICH_LR14_EL2.set(v),
            _ => ICH_LR15_EL2.set(v),
        }
    }

    /// Bit i set: LR i holds no interrupt (ICH_ELRSR_EL2).
    pub fn empty_lrs() -> u64 {
        regs::ich_elrsr_el2()
    }

    /// ICH_HCR_EL2: En, plus UIE (maintenance interrupt when at most one LR is in use).
    pub fn set_control(underflow_irq: bool) {
        ICH_HCR_EL2.set(1 | ((underflow_irq as u64) << 1));
    }

    /// How many active-priority registers of each group exist: ICH_VTR_EL2.PRIbits =
    /// priority bits − 1; 5 bits → AP*R0, 6 → AP*R0–1, 7 → AP*R0–3 (writing the others is
    /// UNDEFINED).
    fn ap_regs() -> usize {
        match ((ICH_VTR_EL2.get() >> 29) & 7) + 1 {
            0..=5 => 1,
            6 => 2,
            _ => 4,
        }
    }

    /// Reads VMCR and the active-priority registers.
    pub fn save() -> super::super::vif::VifState {
        let mut s = super::super::vif::VifState {
            vmcr: ICH_VMCR_EL2.get(),
            ..Default::default()
        };
        let n = ap_regs();
        s.ap[0] = ICH_AP0R0_EL2.get();
        s.ap[4] = ICH_AP1R0_EL2.get();
        if n >= 2 {
            s.ap[1] = ICH_AP0R1_EL2.get();
            s.ap[5] = ICH_AP1R1_EL2.get();
        }
        if n >= 4 {
            s.ap[2] = ICH_AP0R2_EL2.get();
            s.ap[6] = ICH_AP1R2_EL2.get();
            s.ap[3] = ICH_AP0R3_EL2.get();
            s.ap[7] = ICH_AP1R3_EL2.get();
        }
        s
    }

    /// Writes VMCR and the active-priority registers.
    pub fn restore(s: &super::super::vif::VifState) {
        let n = ap_regs();
        ICH_AP0R0_EL2.set(s.ap[0]);
        ICH_AP1R0_EL2.set(s.ap[4]);
        if n >= 2 {
            ICH_AP0R1_EL2.set(s.ap[1]);
            ICH_AP1R1_EL2.set(s.ap[5]);
        }
        if n >= 4 {
            ICH_AP0R2_EL2.set(s.ap[2]);
            ICH_AP1R2_EL2.set(s.ap[6]);
            ICH_AP0R3_EL2.set(s.ap[3]);
            ICH_AP1R3_EL2.set(s.ap[7]);
        }
        ICH_VMCR_EL2.set(s.vmcr);
    }

    /// Resets the virtual interface for a vCPU that starts from scratch, including the
    /// active-priority registers: a vCPU stopped inside an interrupt handler leaves its
    /// priority marked active there, which would mask every later interrupt of that priority.
    pub fn reset() {
        for i in 0..lr_count() {
            lr_write(i, 0);
        }
        restore(&super::super::vif::VifState::default());
        set_control(false);
    }
}
