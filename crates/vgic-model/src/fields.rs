//! The per-interrupt register arrays GICD and the GICR SGI frame share: IGROUPR,
//! IS/ICENABLER, IS/ICPENDR, IS/ICACTIVER, IPRIORITYR, ITARGETSR, ICFGR (same offsets in both
//! frames, IHI 0069 §12.9 and §12.11; IHI 0048B §4.3).

use crate::access::first_byte;
use crate::effects::Effects;
use crate::irq::{EDGE, ENABLED, GROUP1, PRIORITY_MASK};
use crate::vgic::{Loc, Vgic};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
    Priority,
    Targets,
    Config,
}

impl Field {
    /// Bits per interrupt.
    fn width(self) -> u32 {
        match self {
            Field::Priority | Field::Targets => 8,
            Field::Config => 2,
            _ => 1,
        }
    }
}

/// The register array and the first INTID of the 32-bit word at `word` (a word offset in the
/// GICD frame or the GICR SGI frame).
pub(crate) fn decode(word: u64) -> Option<(Field, u32)> {
    let bits = |base: u64| (((word - base) / 4) * 32) as u32;
    Some(match word {
        0x080..=0x0FF => (Field::Group, bits(0x080)),
        0x100..=0x17F => (Field::SetEnable, bits(0x100)),
        0x180..=0x1FF => (Field::ClearEnable, bits(0x180)),
        0x200..=0x27F => (Field::SetPending, bits(0x200)),
        0x280..=0x2FF => (Field::ClearPending, bits(0x280)),
        0x300..=0x37F => (Field::SetActive, bits(0x300)),
        0x380..=0x3FF => (Field::ClearActive, bits(0x380)),
        0x400..=0x7FF => (Field::Priority, (word - 0x400) as u32),
        0x800..=0xBFF => (Field::Targets, (word - 0x800) as u32),
        0xC00..=0xCFF => (Field::Config, (((word - 0xC00) / 4) * 16) as u32),
        _ => return None,
    })
}

impl<const MAX_VCPUS: usize, const MAX_IRQS: usize> Vgic<MAX_VCPUS, MAX_IRQS> {
    /// Reads the word of `f` starting at INTID `base`; `bank` is the vCPU whose SGIs/PPIs
    /// are meant. Interrupts the VM does not own read as 0; a read covering only such
    /// interrupts is remembered for [`Vgic::take_denied_read`].
    pub(crate) fn field_read(
        &mut self,
        f: Field,
        bank: usize,
        base: u32,
        word: u64,
        mask: u32,
    ) -> u32 {
        let width = f.width();
        let lane = (1u32 << width) - 1;
        let mut value = 0;
        let mut any_owned = false;
        for k in 0..32 / width {
            let shift = k * width;
            if (lane << shift) & mask == 0 {
                continue;
            }
            if let Some(l) = self.loc(bank, base + k) {
                any_owned = true;
                value |= self.lane_read(f, l, bank) << shift;
            }
        }
        if !any_owned && self.denied_read.is_none() {
            self.denied_read = Some(first_byte(word, mask));
        }
        value
    }

    fn lane_read(&self, f: Field, l: Loc, bank: usize) -> u32 {
        let irq = self.irq(l);
        let intid = l.intid();
        match f {
            Field::Group => u32::from(irq.has(GROUP1)),
            Field::SetEnable | Field::ClearEnable => u32::from(irq.has(ENABLED)),
            Field::SetPending | Field::ClearPending => u32::from(irq.pending_view()),
            Field::SetActive | Field::ClearActive => u32::from(irq.active_view()),
            Field::Priority => u32::from(irq.priority),
            // SGIs/PPIs: read-only, the reading vCPU (GICv2 §4.3.12).
            Field::Targets if intid < 32 => 1 << (bank & 7),
            Field::Targets => u32::from(irq.targets),
            Field::Config => {
                if irq.has(EDGE) {
                    0b10
                } else {
                    0
                }
            }
        }
    }

    /// Writes the word of `f` starting at INTID `base` for vCPU `writer`; `bank` as in
    /// [`Vgic::field_read`]. Non-zero lanes of interrupts the VM does not own are ignored and
    /// reported.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn field_write(
        &mut self,
        f: Field,
        bank: usize,
        base: u32,
        word: u64,
        value: u32,
        mask: u32,
        writer: usize,
        fx: &mut Effects,
    ) {
        let width = f.width();
        let lane = (1u32 << width) - 1;
        for k in 0..32 / width {
            let shift = k * width;
            if (lane << shift) & mask == 0 {
                continue;
            }
            let v = (value >> shift) & lane;
            match self.loc(bank, base + k) {
                Some(l) => self.lane_write(f, l, v, writer, fx),
                None if v != 0 => fx.deny(word + u64::from(shift / 8), true),
                None => {}
            }
        }
    }

    fn lane_write(&mut self, f: Field, l: Loc, v: u32, writer: usize, fx: &mut Effects) {
        let intid = l.intid();
        let v2_sgi = self.is_v2_sgi(l);
        match f {
            Field::Group => self.irq_mut(l).set(GROUP1, v != 0),
            Field::SetEnable if v != 0 => {
                let irq = self.irq_mut(l);
                if !irq.has(ENABLED) {
                    irq.set(ENABLED, true);
                    if let Loc::Shared(i) = l {
                        let _ = fx.phys_enable.push(i);
                    }
                }
            }
            Field::ClearEnable if v != 0 => {
                let irq = self.irq_mut(l);
                if irq.has(ENABLED) {
                    irq.set(ENABLED, false);
                    if let Loc::Shared(i) = l {
                        let _ = fx.phys_disable.push(i);
                    }
                }
            }
            // GICv2 SGIs: pending state only through GICD_SGIR / [CS]PENDSGIR (§4.3.7).
            Field::SetPending if v != 0 && !v2_sgi => self.guest_set_pending(l, writer),
            Field::ClearPending if v != 0 && !v2_sgi => self.guest_clear_pending(l, fx),
            Field::SetActive if v != 0 => self.set_active(l, writer),
            Field::ClearActive if v != 0 => self.guest_clear_active(l, fx),
            Field::Priority => self.irq_mut(l).priority = v as u8 & PRIORITY_MASK,
            Field::Targets if intid >= 32 => {
                self.irq_mut(l).targets = (v & self.vcpu_mask()) as u8;
                self.reroute(intid, fx);
            }
            // SGIs are always edge-triggered; bit 0 of each field is reserved.
            Field::Config if intid >= 16 => self.irq_mut(l).set(EDGE, v & 0b10 != 0),
            _ => {}
        }
        if !matches!(
            f,
            Field::ClearPending | Field::ClearActive | Field::ClearEnable
        ) {
            self.kick_if_ready(l, fx);
        }
    }
}
