//! The virtual distributor's register map (GICv3: IHI 0069 §12.9; GICv2: IHI 0048B §4.3).
//!
//! - 0x0000 CTLR — v3: EnableGrp0 bit 0, EnableGrp1 bit 1, ARE bit 4 and DS bit 6
//!   RAO/WI; v2: EnableGrp0 bit 0, EnableGrp1 bit 1.
//! - 0x0004 TYPER — ITLinesNumber = MAX_IRQS/32 − 1; v2: CPUNumber = vcpus − 1; v3: IDbits = 9,
//!   A3V if some vCPU has Aff3 ≠ 0, CPUNumber 0, no LPIs/MBIS; SecurityExtn 0.
//! - 0x0008 IIDR — 0x0000_043B (Arm).
//! - 0x0080 IGROUPRn — RW.
//! - 0x0100/0x0180 IS/ICENABLERn — W1S/W1C; enable changes of owned SPIs go to `Effects`.
//! - 0x0200/0x0280 IS/ICPENDRn — W1S/W1C (v2: SGI bits WI; use SGIR / \[CS\]PENDSGIR).
//! - 0x0300/0x0380 IS/ICACTIVERn — W1S/W1C.
//! - 0x0400 IPRIORITYRn — byte-accessible; the top 5 bits are kept, bits 2:0 RAZ/WI.
//! - 0x0800 ITARGETSRn — v2 only (v3: RAZ/WI); byte-accessible; 0–7 read-only = the reader's
//!   bit; only existing vCPUs' bits stick.
//! - 0x0C00 ICFGRn — bit 2n+1 edge (1) / level (0); SGIs read-only edge; bit 2n RAZ.
//! - 0x0F00 SGIR — v2, write-only: TargetListFilter 0 list / 1 all but self / 2 self; never
//!   outside the VM.
//! - 0x0F10/0x0F20 CPENDSGIRn/SPENDSGIRn — v2: a byte per SGI of the accessing vCPU, a bit per
//!   source vCPU.
//! - 0x6000 + 8n IROUTERn — v3: 64-bit (or 32-bit halves); Aff3.Aff2.Aff1.Aff0 and
//!   Interrupt_Routing_Mode bit 31.
//! - 0xFFD0.. (v2 0xFD0..) PIDR4, PIDR0–2, CIDR0–3 — PIDR2 = 0x3B (v3) / 0x2B (v2) with Arm's
//!   JEP106 code; CIDR = 0xB105F00D.
//!
//! Everything else is RAZ/WI. On GICv3 (ARE = 1) the registers of INTIDs < 32 are RAZ/WI (they
//! live in the redistributors); on GICv2 they are banked per accessing vCPU. Interrupts the VM
//! does not own read as 0 and ignore writes; a write that tries to set anything for them
//! is reported in [`Effects::denied`], a read that covers nothing else in
//! [`Vgic::take_denied_read`].

use crate::access::{self, merge};
use crate::config::Version;
use crate::effects::Effects;
use crate::fields::{decode, Field};
use crate::irq::{IN_LR, IRM, LR_PENDING, PENDING};
use crate::vgic::{Loc, Vgic, CTLR_ENABLE_GRP0, CTLR_ENABLE_GRP1};

const CTLR: u64 = 0x0000;
const TYPER: u64 = 0x0004;
const IIDR: u64 = 0x0008;
const SGIR: u64 = 0x0F00;
const CPENDSGIR: u64 = 0x0F10;
const SPENDSGIR: u64 = 0x0F20;
const IROUTER: u64 = 0x6000;
const IROUTER_END: u64 = 0x7FDC;

const CTLR_ARE: u32 = 1 << 4;
const CTLR_DS: u32 = 1 << 6;

/// `IIDR` of the virtual GICD and GICRs: Implementer 0x43B (Arm), product/revision 0.
pub(crate) const IIDR_VALUE: u32 = 0x43B;

/// The CoreSight-style ID registers at the end of a frame (`off` relative to 0xFD0 below the
/// frame end): PIDR4, PIDR0, PIDR1, PIDR2 (ArchRev), CIDR0–3.
pub(crate) fn id_register(off_from_fd0: u64, arch_rev: u32) -> u32 {
    match off_from_fd0 {
        0x00 => 0x04,                  // PIDR4: DES_2 = Arm's JEP106 continuation code 4
        0x10 => 0x00,                  // PIDR0: part number [7:0]
        0x14 => 0xB0,                  // PIDR1: DES_0 = 0xB (JEP106 0x3B, low bits)
        0x18 => (arch_rev << 4) | 0xB, // PIDR2: ArchRev, JEDEC, DES_1 = 3
        0x20 => 0x0D,
        0x24 => 0xF0,
        0x28 => 0x05,
        0x2C => 0xB1,
        _ => 0,
    }
}

impl<const MAX_VCPUS: usize, const MAX_IRQS: usize> Vgic<MAX_VCPUS, MAX_IRQS> {
    /// A trapped read by `vcpu` of `size` (1, 2, 4 or 8) bytes at `offset` in the 64 KiB
    /// GICD frame (4 KiB on GICv2; beyond is RAZ). Misaligned or odd-sized accesses read 0.
    pub fn gicd_read(&mut self, vcpu: usize, offset: u64, size: usize) -> u64 {
        if vcpu >= self.vcpus {
            return 0;
        }
        access::read(offset, size, |word, mask| {
            self.gicd_read32(vcpu, word, mask)
        })
    }

    /// A trapped write by `vcpu` of `size` bytes of `value` at `offset` in the GICD frame.
    /// Misaligned or odd-sized accesses are ignored.
    pub fn gicd_write(
        &mut self,
        vcpu: usize,
        offset: u64,
        size: usize,
        value: u64,
        fx: &mut Effects,
    ) {
        if vcpu >= self.vcpus {
            return;
        }
        access::write(offset, size, value, |word, v, mask| {
            self.gicd_write32(vcpu, word, v, mask, fx)
        })
    }

    fn gicd_ctlr(&self) -> u32 {
        match self.version {
            Version::V3 => self.ctlr | CTLR_ARE | CTLR_DS,
            Version::V2 => self.ctlr,
        }
    }

    fn gicd_typer(&self) -> u32 {
        let it_lines = (MAX_IRQS / 32 - 1) as u32;
        match self.version {
            Version::V2 => it_lines | (((self.vcpus - 1) as u32 & 7) << 5),
            Version::V3 => {
                let a3v = self.affinity[..self.vcpus].iter().any(|&a| a >> 24 != 0);
                it_lines | (9 << 19) | (u32::from(a3v) << 24)
            }
        }
    }

    /// The frame's ID register block starts at 0xFFD0 (v3) / 0xFD0 (v2).
    fn gicd_id_base(&self) -> u64 {
        match self.version {
            Version::V3 => 0xFFD0,
            Version::V2 => 0xFD0,
        }
    }

    /// The per-interrupt array at `word`, if this version has it for those INTIDs.
    fn gicd_field(&self, word: u64) -> Option<(Field, u32)> {
        let (f, base) = decode(word)?;
        match self.version {
            // ARE = 1: SGIs/PPIs are in the redistributors, ITARGETSR does not exist.
            Version::V3 if base < 32 || f == Field::Targets => None,
            _ => Some((f, base)),
        }
    }

    fn gicd_read32(&mut self, vcpu: usize, word: u64, mask: u32) -> u32 {
        if let Some((f, base)) = self.gicd_field(word) {
            return self.field_read(f, vcpu, base, word, mask);
        }
        let id_base = self.gicd_id_base();
        match (self.version, word) {
            (_, CTLR) => self.gicd_ctlr(),
            (_, TYPER) => self.gicd_typer(),
            (_, IIDR) => IIDR_VALUE,
            (Version::V2, CPENDSGIR..=0xF1F) => self.pendsgir_read(vcpu, word - CPENDSGIR),
            (Version::V2, SPENDSGIR..=0xF2F) => self.pendsgir_read(vcpu, word - SPENDSGIR),
            (Version::V3, IROUTER..=IROUTER_END) => self.irouter_read(word, mask),
            (Version::V3, 0xFFD0..=0xFFFC) | (Version::V2, 0xFD0..=0xFFC) => {
                let rev = if self.version == Version::V3 { 3 } else { 2 };
                id_register(word - id_base, rev)
            }
            _ => 0,
        }
    }

    fn gicd_write32(&mut self, vcpu: usize, word: u64, value: u32, mask: u32, fx: &mut Effects) {
        if let Some((f, base)) = self.gicd_field(word) {
            return self.field_write(f, vcpu, base, word, value, mask, vcpu, fx);
        }
        match (self.version, word) {
            (_, CTLR) => {
                let old = self.ctlr;
                self.ctlr = merge(old, value, mask) & (CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1);
                // Group enables decide what wants an LR: look at every private interrupt again.
                self.hint = [u32::MAX; MAX_VCPUS];
                if self.ctlr & !old != 0 {
                    self.kick_all_ready(fx);
                }
            }
            (Version::V2, SGIR) => self.sgir_write(vcpu, value & mask, fx),
            (Version::V2, CPENDSGIR..=0xF1F) => {
                self.pendsgir_write(vcpu, word - CPENDSGIR, value & mask, false, fx)
            }
            (Version::V2, SPENDSGIR..=0xF2F) => {
                self.pendsgir_write(vcpu, word - SPENDSGIR, value & mask, true, fx)
            }
            (Version::V3, IROUTER..=IROUTER_END) => self.irouter_write(word, value, mask, fx),
            _ => {}
        }
    }

    /// `GICD_SGIR` (GICv2 §4.3.15): `SGIINTID[3:0]`, `CPUTargetList[23:16]`,
    /// `TargetListFilter[25:24]`; NSATT ignored; filter 3 (reserved) does nothing.
    fn sgir_write(&mut self, vcpu: usize, value: u32, fx: &mut Effects) {
        let sgi = value & 0xF;
        let targets = match (value >> 24) & 3 {
            0 => (value >> 16) & 0xFF,
            1 => !(1u32 << vcpu),
            2 => 1 << vcpu,
            _ => 0,
        } & self.vcpu_mask();
        for t in 0..self.vcpus {
            if targets & (1 << t) != 0 {
                self.send_sgi(vcpu, t, sgi, fx);
            }
        }
    }

    /// `GICD_[CS]PENDSGIRn` word `n = rel / 4`: byte k = pending sources of SGI 4n + k of the
    /// accessing vCPU.
    fn pendsgir_read(&self, vcpu: usize, rel: u64) -> u32 {
        let first = (rel / 4 * 4) as u32;
        (0..4).fold(0, |acc, k| {
            let l = Loc::Private(vcpu, first + k);
            let irq = self.irq(l);
            let mut src = u32::from(irq.sources);
            if irq.has(IN_LR) && irq.has(LR_PENDING) {
                src |= 1 << irq.active_src;
            }
            acc | (src << (8 * k))
        })
    }

    fn pendsgir_write(&mut self, vcpu: usize, rel: u64, value: u32, set: bool, fx: &mut Effects) {
        let first = (rel / 4 * 4) as u32;
        for k in 0..4 {
            let sources = (value >> (8 * k)) & 0xFF & self.vcpu_mask();
            let l = Loc::Private(vcpu, first + k);
            if set {
                for s in (0..self.vcpus).filter(|&s| sources & (1 << s) != 0) {
                    self.send_sgi(s, vcpu, first + k, fx);
                }
            } else {
                let irq = self.irq_mut(l);
                irq.sources &= !(sources as u8);
                irq.set(PENDING, irq.sources != 0);
            }
        }
    }

    /// `GICD_IROUTER<n>` halves: low = Aff2.Aff1.Aff0 + IRM bit 31, high = Aff3.
    fn irouter_read(&mut self, word: u64, mask: u32) -> u32 {
        let intid = ((word - IROUTER) / 8) as u32;
        if intid < 32 {
            return 0; // reserved
        }
        let Some(l) = self.loc(0, intid) else {
            if self.denied_read.is_none() {
                self.denied_read = Some(access::first_byte(word, mask));
            }
            return 0;
        };
        let irq = self.irq(l);
        if word & 4 == 0 {
            (irq.route & 0xFF_FFFF) | (u32::from(irq.has(IRM)) << 31)
        } else {
            irq.route >> 24
        }
    }

    fn irouter_write(&mut self, word: u64, value: u32, mask: u32, fx: &mut Effects) {
        let intid = ((word - IROUTER) / 8) as u32;
        if intid < 32 {
            return;
        }
        let Some(l) = self.loc(0, intid) else {
            if value & mask != 0 {
                fx.deny(access::first_byte(word, mask), true);
            }
            return;
        };
        let high = word & 4 != 0;
        let old = self.irouter_read(word, mask);
        let new = merge(old, value, mask);
        let irq = self.irq_mut(l);
        if high {
            irq.route = (irq.route & 0xFF_FFFF) | ((new & 0xFF) << 24);
        } else {
            irq.route = (irq.route & 0xFF00_0000) | (new & 0xFF_FFFF);
            irq.set(IRM, new & (1 << 31) != 0);
        }
        self.reroute(intid, fx);
    }
}
