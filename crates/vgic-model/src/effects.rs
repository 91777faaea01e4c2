//! What a trapped register write asks the hypervisor to do next.

/// Most INTIDs one access can affect (a 64-bit write to a bit-per-interrupt register).
pub const MAX_PHYS_CHANGES: usize = 64;

/// Side effects of a distributor / redistributor / SGI register write. The model only adds
/// to it; the caller clears it (e.g. [`Effects::clear`]) before each trapped access.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Bit `i` set: vCPU `i` may have new work (something to put in its LRs, or a model-side
    /// pending state behind an interrupt already in an LR): kick it so it syncs its LRs.
    pub kick: u32,
    /// Owned SPIs (virtual INTIDs) the guest enabled. Every owned SPI whose guest enable
    /// changed is reported; the hypervisor mirrors those it has linked to hardware to the
    /// physical GIC and ignores the rest (purely virtual devices).
    pub phys_enable: heapless::Vec<u32, MAX_PHYS_CHANGES>,
    /// Owned SPIs (virtual INTIDs) the guest disabled; see `phys_enable`.
    pub phys_disable: heapless::Vec<u32, MAX_PHYS_CHANGES>,
    /// Physical INTIDs the hypervisor must deactivate (`ICC_DIR_EL1` / `GICC_DIR`): the
    /// guest dropped the pending or active state of a hardware-linked instance the model
    /// held (ICPENDR / ICACTIVER), so no LR will ever deactivate it.
    pub phys_deactivate: heapless::Vec<u32, MAX_PHYS_CHANGES>,
    /// The first access in this batch that touched an interrupt the VM does not own (SPIs
    /// not in `owned_spis`, INTIDs at or beyond `MAX_IRQS`): `(offset, write)`, for a
    /// one-time report. The access itself was RAZ/WI for those interrupts.
    pub denied: Option<(u64, bool)>,
}

impl Effects {
    /// No effects.
    pub const fn new() -> Self {
        Self {
            kick: 0,
            phys_enable: heapless::Vec::new(),
            phys_disable: heapless::Vec::new(),
            phys_deactivate: heapless::Vec::new(),
            denied: None,
        }
    }

    /// Forgets everything recorded.
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    pub(crate) fn kick(&mut self, vcpu: usize) {
        if vcpu < 32 {
            self.kick |= 1 << vcpu;
        }
    }

    pub(crate) fn deny(&mut self, offset: u64, write: bool) {
        if self.denied.is_none() {
            self.denied = Some((offset, write));
        }
    }
}
