//! The virtual redistributors (GICv3 only; IHI 0069 §12.10, §12.11). vCPU i's redistributor
//! is at `i * 0x20000` in the VM's GICR region: the RD frame, then the SGI frame at +0x10000.
//!
//! RD frame:
//!
//! - 0x0000 CTLR — RAZ/WI (no LPIs); PROPBASER/PENDBASER likewise.
//! - 0x0004 IIDR — 0x0000_043B (Arm).
//! - 0x0008 TYPER (64-bit, or 32-bit halves) — Affinity_Value (bits 63:32) from the vCPU's
//!   MPIDR, Processor_Number (bits 23:8) = its index, Last (bit 4) on the last vCPU; no LPIs.
//! - 0x0014 WAKER — ProcessorSleep bit 1 RW (resets to 1), ChildrenAsleep bit 2 mirrors it.
//! - 0xFFD0.. PIDR4, PIDR0–2, CIDR0–3 — PIDR2 = 0x3B.
//!
//! SGI frame (+0x10000): IGROUPR0 0x0080, IS/ICENABLER0 0x0100/0x0180, IS/ICPENDR0
//! 0x0200/0x0280, IS/ICACTIVER0 0x0300/0x0380, IPRIORITYR0–7 0x0400–0x041C, ICFGR0/1
//! 0x0C00/0x0C04 (SGIs RO edge, PPIs RW), as in the distributor. Everything else RAZ/WI,
//! including frames beyond the VM's vCPUs.

use crate::access::{self, merge};
use crate::config::Version;
use crate::effects::Effects;
use crate::fields::{decode, Field};
use crate::gicd::{id_register, IIDR_VALUE};
use crate::vgic::Vgic;

/// Bytes of one vCPU's redistributor (RD + SGI frames).
pub const GICR_STRIDE: u64 = 0x2_0000;
const SGI_FRAME: u64 = 0x1_0000;

const IIDR: u64 = 0x0004;
const TYPER_LO: u64 = 0x0008;
const TYPER_HI: u64 = 0x000C;
const WAKER: u64 = 0x0014;

const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

impl<const MAX_VCPUS: usize, const MAX_IRQS: usize> Vgic<MAX_VCPUS, MAX_IRQS> {
    /// A trapped read by `vcpu` at `offset` in the VM's whole GICR region (which vCPU's
    /// redistributor follows from the offset). RAZ on GICv2.
    pub fn gicr_read(&mut self, vcpu: usize, offset: u64, size: usize) -> u64 {
        let Some(frame) = self.gicr_frame(vcpu, offset) else {
            return 0;
        };
        access::read(offset % GICR_STRIDE, size, |word, mask| {
            self.gicr_read32(frame, word, mask)
        })
    }

    /// A trapped write by `vcpu` at `offset` in the VM's GICR region. WI on GICv2.
    pub fn gicr_write(
        &mut self,
        vcpu: usize,
        offset: u64,
        size: usize,
        value: u64,
        fx: &mut Effects,
    ) {
        let Some(frame) = self.gicr_frame(vcpu, offset) else {
            return;
        };
        access::write(offset % GICR_STRIDE, size, value, |word, v, mask| {
            self.gicr_write32(vcpu, frame, word, v, mask, fx)
        })
    }

    fn gicr_frame(&self, vcpu: usize, offset: u64) -> Option<usize> {
        let frame = usize::try_from(offset / GICR_STRIDE).ok()?;
        (self.version == Version::V3 && vcpu < self.vcpus && frame < self.vcpus).then_some(frame)
    }

    /// The SGI-frame per-interrupt array at `word` (INTIDs < 32 only, no ITARGETSR).
    fn gicr_field(word: u64) -> Option<(Field, u32)> {
        let (f, base) = decode(word.checked_sub(SGI_FRAME)?)?;
        (base < 32 && f != Field::Targets).then_some((f, base))
    }

    fn gicr_read32(&mut self, frame: usize, word: u64, mask: u32) -> u32 {
        if let Some((f, base)) = Self::gicr_field(word) {
            return self.field_read(f, frame, base, word, mask);
        }
        match word {
            IIDR => IIDR_VALUE,
            TYPER_LO => {
                let last = frame + 1 == self.vcpus;
                ((frame as u32 & 0xFFFF) << 8) | (u32::from(last) << 4)
            }
            TYPER_HI => self.affinity[frame],
            WAKER if self.asleep & (1 << frame) != 0 => {
                WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP
            }
            0xFFD0..=0xFFFC => id_register(word - 0xFFD0, 3),
            _ => 0,
        }
    }

    fn gicr_write32(
        &mut self,
        vcpu: usize,
        frame: usize,
        word: u64,
        value: u32,
        mask: u32,
        fx: &mut Effects,
    ) {
        if let Some((f, base)) = Self::gicr_field(word) {
            return self.field_write(f, frame, base, word, value, mask, vcpu, fx);
        }
        if word == WAKER {
            let old = self.gicr_read32(frame, WAKER, mask);
            if merge(old, value, mask) & WAKER_PROCESSOR_SLEEP != 0 {
                self.asleep |= 1 << frame;
            } else {
                self.asleep &= !(1 << frame);
            }
        }
    }
}
