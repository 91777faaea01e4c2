//! The model's state of one interrupt (one INTID of one vCPU for SGIs/PPIs, or one SPI).

pub(crate) const PENDING: u16 = 1 << 0;
pub(crate) const ACTIVE: u16 = 1 << 1;
pub(crate) const ENABLED: u16 = 1 << 2;
pub(crate) const GROUP1: u16 = 1 << 3;
/// Edge-triggered (`ICFGR` bit 2n+1).
pub(crate) const EDGE: u16 = 1 << 4;
/// SPIs: the VM owns it.
pub(crate) const OWNED: u16 = 1 << 5;
/// Handed out by `next_for_lr` and not yet returned: the LR owns its pending/active state,
/// `PENDING` then means "pending again since it went into the LR".
pub(crate) const IN_LR: u16 = 1 << 6;
/// The state it was handed out with (what guest reads of ISPENDR/ISACTIVER see meanwhile).
pub(crate) const LR_PENDING: u16 = 1 << 7;
pub(crate) const LR_ACTIVE: u16 = 1 << 8;
/// v3 SPIs: `GICD_IROUTER.Interrupt_Routing_Mode` (1-of-N).
pub(crate) const IRM: u16 = 1 << 9;

/// Implemented priority bits: the top 5 (32 levels), what a GICv2 LR and a typical GICv3
/// virtual CPU interface (`ICH_VTR_EL2.PRIbits` = 4, i.e. 5 bits) can express.
pub(crate) const PRIORITY_MASK: u8 = 0xF8;

const NO_HW: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Irq {
    pub flags: u16,
    pub priority: u8,
    /// v2 SPIs: `GICD_ITARGETSR` byte.
    pub targets: u8,
    /// v2 SGIs: vCPUs whose copy of this SGI is pending (the model's part).
    pub sources: u8,
    /// v2 SGIs: the source of the instance that is active or in an LR.
    pub active_src: u8,
    /// SPIs: the vCPU it is pending / active / in an LR on (valid while any of those holds).
    pub vcpu: u8,
    /// v3 SPIs: `GICD_IROUTER` affinity packed Aff3.Aff2.Aff1.Aff0.
    pub route: u32,
    /// Physical INTID of a hardware-linked interrupt, or `NO_HW`.
    hw: u32,
}

impl Irq {
    pub const EMPTY: Self = Self {
        flags: 0,
        priority: 0,
        targets: 0,
        sources: 0,
        active_src: 0,
        vcpu: 0,
        route: 0,
        hw: NO_HW,
    };

    pub fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    pub fn set(&mut self, f: u16, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }

    pub fn hw(&self) -> Option<u32> {
        (self.hw != NO_HW).then_some(self.hw)
    }

    pub fn set_hw(&mut self, hw: Option<u32>) {
        self.hw = hw.unwrap_or(NO_HW);
    }

    /// Somewhere in its life cycle (so `vcpu` is meaningful for an SPI).
    pub fn placed(&self) -> bool {
        self.has(PENDING | ACTIVE | IN_LR)
    }

    /// Pending as the guest sees it.
    pub fn pending_view(&self) -> bool {
        self.has(PENDING) || (self.has(IN_LR) && self.has(LR_PENDING))
    }

    /// Active as the guest sees it.
    pub fn active_view(&self) -> bool {
        self.has(ACTIVE) || (self.has(IN_LR) && self.has(LR_ACTIVE))
    }
}
