//! The per-VM virtual GIC: state, configuration, injection and the list-register policy.

use crate::config::{pack_affinity, ConfigError, RouteError, Version, VgicConfig};
use crate::effects::Effects;
use crate::irq::{
    Irq, ACTIVE, EDGE, ENABLED, GROUP1, IN_LR, IRM, LR_ACTIVE, LR_PENDING, OWNED, PENDING,
};
use crate::lr::{LrEntry, LrState};

/// First SPI INTID.
pub(crate) const FIRST_SPI: u32 = 32;
/// Last INTID that can be an SPI (1020..=1023 are special).
pub(crate) const LAST_SPI: u32 = 1019;

/// `GICD_CTLR` group enables the guest controls (both versions: bit 0 Group 0, bit 1 Group 1).
pub(crate) const CTLR_ENABLE_GRP0: u32 = 1 << 0;
pub(crate) const CTLR_ENABLE_GRP1: u32 = 1 << 1;

/// Where one interrupt's state lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    /// SGI/PPI `intid` (< 32) of vCPU `vcpu`.
    Private(usize, u32),
    /// An owned SPI.
    Shared(u32),
}

impl Loc {
    pub(crate) fn intid(self) -> u32 {
        match self {
            Loc::Private(_, i) | Loc::Shared(i) => i,
        }
    }
}

/// The virtual distributor (and, on GICv3, redistributors) of one VM.
///
/// `MAX_VCPUS` (1..=32) and `MAX_IRQS` (a multiple of 32 in 32..=1024: INTIDs below it exist)
/// are capacities; a `Vgic<8, 256>` takes about 8 KiB, a `Vgic<8, 1024>` about 20 KiB. Build
/// it with [`Vgic::empty`] (usable in a `static`), then [`Vgic::init`]. Before `init` every
/// access is RAZ/WI and nothing is ever pending. [`next_for_lr`](Vgic::next_for_lr) and
/// [`has_pending`](Vgic::has_pending) scan the vCPU's 32 private interrupts and all
/// `MAX_IRQS` SPI slots.
///
/// Intended use by the hypervisor (the model is not thread-safe: one lock per VM):
/// - trapped GICD/GICR accesses → [`gicd_read`](Vgic::gicd_read) /
///   [`gicd_write`](Vgic::gicd_write) / [`gicr_read`](Vgic::gicr_read) /
///   [`gicr_write`](Vgic::gicr_write); trapped
///   `ICC_SGI1R_EL1` → [`sgi1r_write`](Vgic::sgi1r_write); then act on the [`Effects`]
///   (kick vCPUs, mirror enables of hardware SPIs);
/// - an interrupt for the VM (device SPI taken at EL2, virtual timer PPI, virtual device) →
///   [`inject`](Vgic::inject), kick the vCPU it names;
/// - on each exit of a vCPU, give every used LR back with [`lr_returned`](Vgic::lr_returned)
///   (decoded with [`lr_v3_decode`](crate::lr_v3_decode) / [`lr_v2_decode`](crate::lr_v2_decode))
///   and clear it; before entering it, fill free LRs from [`next_for_lr`](Vgic::next_for_lr).
///   Keeping LRs across exits also works (return an LR whenever it is reclaimed, at maintenance
///   or when [`has_pending`](Vgic::has_pending) says more is waiting), but while an interrupt
///   sits in an LR the model only knows the state it was handed out with: guest reads of its
///   pending/active bits show that, and guest writes clearing them reach the model only.
#[derive(Clone, PartialEq, Eq)]
pub struct Vgic<const MAX_VCPUS: usize, const MAX_IRQS: usize> {
    pub(crate) version: Version,
    /// 0 until `init`.
    pub(crate) vcpus: usize,
    /// `GICD_CTLR` group enables.
    pub(crate) ctlr: u32,
    /// Affinity of each vCPU, packed Aff3.Aff2.Aff1.Aff0.
    pub(crate) affinity: [u32; MAX_VCPUS],
    /// `GICR_WAKER.ProcessorSleep` of each vCPU.
    pub(crate) asleep: u32,
    /// SGIs and PPIs of each vCPU.
    pub(crate) private: [[Irq; 32]; MAX_VCPUS],
    /// SPIs, indexed by INTID (entries 0..32 unused).
    pub(crate) shared: [Irq; MAX_IRQS],
    /// First guest read of unowned interrupts' registers since the last `take_denied_read`.
    pub(crate) denied_read: Option<u64>,
    /// The owned SPIs' INTIDs (the first `owned_count`), so that the LR policy scans only
    /// them instead of every SPI slot: it runs on the interrupt-injection path.
    pub(crate) owned: [u16; MAX_IRQS],
    pub(crate) owned_count: usize,
    /// Per vCPU, a superset of its private interrupts that may want an LR: a bit is set
    /// whenever that interrupt's state is touched (`irq_mut`) or the group enables change,
    /// and cleared by `next_for_lr` when it finds the interrupt does not want one. The LR
    /// policy then looks only at these instead of all 32 (it runs on the injection path).
    pub(crate) hint: [u32; MAX_VCPUS],
}

impl<const MAX_VCPUS: usize, const MAX_IRQS: usize> Vgic<MAX_VCPUS, MAX_IRQS> {
    const CAPACITY_OK: () = assert!(
        MAX_VCPUS >= 1 && MAX_VCPUS <= 32 && MAX_IRQS >= 32 && MAX_IRQS <= 1024,
        "Vgic: MAX_VCPUS must be 1..=32 and MAX_IRQS 32..=1024"
    );
    const IRQS_ALIGNED: () = assert!(
        MAX_IRQS.is_multiple_of(32),
        "Vgic: MAX_IRQS must be a multiple of 32"
    );

    /// A vGIC with no vCPUs: everything RAZ/WI until [`init`](Vgic::init).
    pub const fn empty() -> Self {
        #[allow(clippy::let_unit_value)]
        let ((), ()) = (Self::CAPACITY_OK, Self::IRQS_ALIGNED);
        Self {
            version: Version::V3,
            vcpus: 0,
            ctlr: 0,
            affinity: [0; MAX_VCPUS],
            asleep: 0,
            private: [[Irq::EMPTY; 32]; MAX_VCPUS],
            shared: [Irq::EMPTY; MAX_IRQS],
            denied_read: None,
            owned: [0; MAX_IRQS],
            owned_count: 0,
            hint: [u32::MAX; MAX_VCPUS],
        }
    }

    /// Checks `cfg` and resets the vGIC to the architectural reset state for it (everything
    /// disabled, Group 0, priority 0, SPIs level-sensitive and routed to vCPU 0's affinity /
    /// no ITARGETSR target, redistributors asleep). On error the vGIC is left untouched.
    pub fn init(&mut self, cfg: &VgicConfig) -> Result<(), ConfigError> {
        let max = match cfg.version {
            Version::V2 => MAX_VCPUS.min(8),
            Version::V3 => MAX_VCPUS,
        };
        if cfg.vcpus == 0 {
            return Err(ConfigError::NoVcpus);
        }
        if cfg.vcpus > max {
            return Err(ConfigError::TooManyVcpus {
                vcpus: cfg.vcpus,
                max,
            });
        }
        if cfg.vcpu_mpidr.len() != cfg.vcpus {
            return Err(ConfigError::MpidrCount {
                given: cfg.vcpu_mpidr.len(),
                vcpus: cfg.vcpus,
            });
        }
        for (i, &m) in cfg.vcpu_mpidr.iter().enumerate() {
            if cfg.vcpu_mpidr[..i]
                .iter()
                .any(|&o| pack_affinity(o) == pack_affinity(m))
            {
                return Err(ConfigError::DuplicateAffinity(i));
            }
        }
        for &spi in cfg.owned_spis {
            if !(FIRST_SPI..=LAST_SPI).contains(&spi) {
                return Err(ConfigError::NotAnSpi(spi));
            }
            if spi as usize >= MAX_IRQS {
                return Err(ConfigError::SpiBeyondCapacity(spi));
            }
        }

        self.version = cfg.version;
        self.vcpus = cfg.vcpus;
        self.ctlr = 0;
        self.hint = [u32::MAX; MAX_VCPUS];
        self.asleep = if cfg.vcpus == 32 {
            u32::MAX
        } else {
            (1u32 << cfg.vcpus) - 1
        };
        self.denied_read = None;
        for (v, a) in self.affinity.iter_mut().enumerate() {
            *a = cfg.vcpu_mpidr.get(v).map_or(0, |&m| pack_affinity(m));
        }
        for bank in self.private.iter_mut() {
            for (i, irq) in bank.iter_mut().enumerate() {
                *irq = Irq::EMPTY;
                // SGIs are always edge-triggered; PPIs reset level-sensitive.
                irq.set(EDGE, i < 16);
            }
        }
        for irq in self.shared.iter_mut() {
            *irq = Irq::EMPTY;
        }
        self.owned_count = 0;
        for &spi in cfg.owned_spis {
            if !self.shared[spi as usize].has(OWNED) {
                self.shared[spi as usize].set(OWNED, true);
                self.owned[self.owned_count] = spi as u16;
                self.owned_count += 1;
            }
        }
        self.owned[..self.owned_count].sort_unstable();
        Ok(())
    }

    /// Routes the owned SPI `intid` to vCPU `vcpu`, as a guest write of its routing register
    /// would: v3 `GICD_IROUTER` = that vCPU's affinity with 1-of-N off, v2 `GICD_ITARGETSR` =
    /// that vCPU's bit alone. For the hypervisor's placement of an SPI after [`init`] (e.g. a
    /// channel doorbell bound to a vCPU by the config): the guest sees it as the reset value
    /// and may re-route it like any SPI. A pending SPI not yet active or in a list register
    /// follows (the vCPU to kick goes into `fx`).
    ///
    /// [`init`]: Vgic::init
    pub fn set_initial_route(
        &mut self,
        intid: u32,
        vcpu: usize,
        fx: &mut Effects,
    ) -> Result<(), RouteError> {
        if intid < FIRST_SPI || !self.owns(intid) {
            return Err(RouteError::NotOwned(intid));
        }
        if vcpu >= self.vcpus {
            return Err(RouteError::NoSuchVcpu(vcpu));
        }
        let affinity = self.affinity[vcpu];
        let irq = &mut self.shared[intid as usize];
        match self.version {
            Version::V3 => {
                irq.route = affinity;
                irq.set(IRM, false);
            }
            // GICv2 has at most 8 vCPUs (checked by `init`).
            Version::V2 => irq.targets = 1u8 << (vcpu & 7),
        }
        self.reroute(intid, fx);
        Ok(())
    }

    /// Whether the VM owns `intid`: SGIs and PPIs (per vCPU) always, SPIs if configured.
    pub fn owns(&self, intid: u32) -> bool {
        intid < FIRST_SPI
            || self
                .shared
                .get(intid as usize)
                .is_some_and(|i| i.has(OWNED))
    }

    /// The first guest read, since the last call, that only covered interrupts the VM does
    /// not own (reads have no [`Effects`]; writes report through [`Effects::denied`]).
    pub fn take_denied_read(&mut self) -> Option<u64> {
        self.denied_read.take()
    }

    // ---- state access -------------------------------------------------------------------

    /// The state of `intid` as seen from `bank` (the vCPU whose SGIs/PPIs are meant), or
    /// `None` if it does not exist for the VM (unowned SPI, beyond `MAX_IRQS`, bad vCPU).
    pub(crate) fn loc(&self, bank: usize, intid: u32) -> Option<Loc> {
        if intid < FIRST_SPI {
            (bank < self.vcpus).then_some(Loc::Private(bank, intid))
        } else {
            let irq = self.shared.get(intid as usize)?;
            irq.has(OWNED).then_some(Loc::Shared(intid))
        }
    }

    pub(crate) fn irq(&self, l: Loc) -> &Irq {
        match l {
            Loc::Private(v, i) => &self.private[v][i as usize],
            Loc::Shared(i) => &self.shared[i as usize],
        }
    }

    pub(crate) fn irq_mut(&mut self, l: Loc) -> &mut Irq {
        match l {
            Loc::Private(v, i) => {
                self.hint[v] |= 1 << i;
                &mut self.private[v][i as usize]
            }
            Loc::Shared(i) => &mut self.shared[i as usize],
        }
    }

    /// A GICv2 SGI (these carry a source vCPU).
    pub(crate) fn is_v2_sgi(&self, l: Loc) -> bool {
        self.version == Version::V2 && l.intid() < 16
    }

    fn group_enabled(&self, irq: &Irq) -> bool {
        let bit = if irq.has(GROUP1) {
            CTLR_ENABLE_GRP1
        } else {
            CTLR_ENABLE_GRP0
        };
        self.ctlr & bit != 0
    }

    /// Pending (in the model), enabled and its group enabled.
    fn deliverable(&self, irq: &Irq) -> bool {
        irq.has(PENDING) && irq.has(ENABLED) && self.group_enabled(irq)
    }

    /// What `next_for_lr` considers: not in an LR, and active (must go back so the guest can
    /// deactivate it) or deliverable.
    fn wants_lr(&self, irq: &Irq) -> bool {
        !irq.has(IN_LR) && (irq.has(ACTIVE) || self.deliverable(irq))
    }

    /// The vCPU an interrupt is with, if any.
    fn owner(&self, l: Loc) -> Option<usize> {
        match l {
            Loc::Private(v, _) => Some(v),
            Loc::Shared(_) => {
                let irq = self.irq(l);
                irq.placed().then_some(usize::from(irq.vcpu))
            }
        }
    }

    /// Kicks the vCPU the interrupt is with if it has something to (re)load into an LR: it
    /// wants an LR, or it got pending again while in one.
    pub(crate) fn kick_if_ready(&self, l: Loc, fx: &mut Effects) {
        let irq = self.irq(l);
        if self.wants_lr(irq) || self.deliverable(irq) {
            if let Some(v) = self.owner(l) {
                fx.kick(v);
            }
        }
    }

    /// Kicks every vCPU that has something for its LRs.
    pub(crate) fn kick_all_ready(&self, fx: &mut Effects) {
        for v in 0..self.vcpus {
            if self.best(v).is_some() {
                fx.kick(v);
            }
        }
    }

    // ---- routing --------------------------------------------------------------------------

    /// The vCPU an SPI goes to now. `hint` (e.g. the vCPU on whose pCPU it arrived, or the
    /// writer of ISPENDR) wins among several eligible ones (v3 1-of-N, v2 several ITARGETSR
    /// bits); a route naming no vCPU of the VM gives vCPU 0.
    pub(crate) fn route(&self, intid: u32, hint: usize) -> usize {
        let irq = &self.shared[intid as usize];
        match self.version {
            Version::V3 => {
                if irq.has(IRM) {
                    if hint < self.vcpus {
                        hint
                    } else {
                        0
                    }
                } else {
                    self.vcpu_by_affinity(irq.route).unwrap_or(0)
                }
            }
            Version::V2 => {
                let mask = u32::from(irq.targets) & self.vcpu_mask();
                if hint < self.vcpus && mask & (1 << hint) != 0 {
                    hint
                } else if mask != 0 {
                    mask.trailing_zeros() as usize
                } else {
                    0
                }
            }
        }
    }

    pub(crate) fn vcpu_by_affinity(&self, aff: u32) -> Option<usize> {
        self.affinity[..self.vcpus].iter().position(|&a| a == aff)
    }

    /// Bit i set for every vCPU i.
    pub(crate) fn vcpu_mask(&self) -> u32 {
        if self.vcpus >= 32 {
            u32::MAX
        } else {
            (1u32 << self.vcpus) - 1
        }
    }

    /// Gives an idle SPI its vCPU (a placed one stays where it is: an active or in-LR
    /// interrupt cannot move).
    fn place(&mut self, l: Loc, hint: usize) {
        if let Loc::Shared(i) = l {
            if !self.irq(l).placed() {
                let v = self.route(i, hint);
                self.irq_mut(l).vcpu = v as u8;
            }
        }
    }

    /// After a routing change: a pending SPI not yet active or in an LR follows it.
    pub(crate) fn reroute(&mut self, intid: u32, fx: &mut Effects) {
        let l = Loc::Shared(intid);
        let irq = *self.irq(l);
        if irq.has(PENDING) && !irq.has(ACTIVE | IN_LR) {
            let v = self.route(intid, usize::from(irq.vcpu));
            self.irq_mut(l).vcpu = v as u8;
            self.kick_if_ready(l, fx);
        }
    }

    // ---- pending / injection --------------------------------------------------------------

    /// Makes `l` pending. `source` is the sending vCPU of a GICv2 SGI, the routing hint of
    /// an SPI, unused otherwise. Returns false if the model already had it pending
    /// (coalesced).
    pub(crate) fn set_pending(&mut self, l: Loc, source: usize) -> bool {
        self.place(l, source);
        let v2_sgi = self.is_v2_sgi(l);
        let irq = self.irq_mut(l);
        // An instance in an LR does not absorb a new edge: the guest may have acknowledged it
        // already, which only the LR knows. The new pending state waits in the model and
        // merges with the LR's when it comes back (a still-pending LR absorbs it then).
        if v2_sgi {
            let src = (source & 7) as u8;
            if irq.sources & (1 << src) != 0 {
                return false;
            }
            irq.sources |= 1 << src;
        } else if irq.has(PENDING) {
            return false;
        }
        irq.set(PENDING, true);
        true
    }

    /// Clears the model's pending state of `l` (not an instance already in an LR).
    pub(crate) fn clear_pending(&mut self, l: Loc) {
        let irq = self.irq_mut(l);
        irq.sources = 0;
        irq.set(PENDING, false);
    }

    /// Sets the pending state of `l` for a guest write (ISPENDR): an instance the guest
    /// makes up is not linked to hardware.
    pub(crate) fn guest_set_pending(&mut self, l: Loc, writer: usize) {
        let irq = self.irq_mut(l);
        if !irq.has(PENDING | ACTIVE) {
            irq.set_hw(None);
        }
        self.set_pending(l, writer);
    }

    /// Clears the model's pending state of `l` for a guest write (ICPENDR). A hardware-linked
    /// instance dropped this way is reported so the physical interrupt gets deactivated.
    pub(crate) fn guest_clear_pending(&mut self, l: Loc, fx: &mut Effects) {
        let irq = self.irq_mut(l);
        if irq.has(PENDING) && !irq.has(ACTIVE) {
            if let Some(p) = irq.hw() {
                let _ = fx.phys_deactivate.push(p);
                irq.set_hw(None);
            }
        }
        self.clear_pending(l);
    }

    /// Clears the model's active state of `l` for a guest write (ICACTIVER), reporting a
    /// hardware-linked instance like [`Vgic::guest_clear_pending`].
    pub(crate) fn guest_clear_active(&mut self, l: Loc, fx: &mut Effects) {
        let irq = self.irq_mut(l);
        if irq.has(ACTIVE) {
            if let Some(p) = irq.hw() {
                let _ = fx.phys_deactivate.push(p);
                irq.set_hw(None);
            }
            irq.set(ACTIVE, false);
        }
    }

    /// Sets the active state of `l` (a guest write to ISACTIVER).
    pub(crate) fn set_active(&mut self, l: Loc, writer: usize) {
        self.place(l, writer);
        let v2_sgi = self.is_v2_sgi(l);
        let irq = self.irq_mut(l);
        if !irq.has(PENDING | ACTIVE) {
            irq.set_hw(None);
        }
        if !irq.active_view() {
            irq.set(ACTIVE, true);
            if v2_sgi {
                irq.active_src = (writer & 7) as u8;
            }
        }
    }

    /// Delivers SGI `sgi` from vCPU `from` to vCPU `to`.
    pub(crate) fn send_sgi(&mut self, from: usize, to: usize, sgi: u32, fx: &mut Effects) {
        if to < self.vcpus && sgi < 16 {
            let l = Loc::Private(to, sgi);
            if self.set_pending(l, from) {
                self.kick_if_ready(l, fx);
            }
        }
    }

    /// The hypervisor makes `intid` pending: below 32 the SGI/PPI of `vcpu`; from 32 an owned
    /// SPI, going where the guest routed it (`vcpu` is then only the 1-of-N hint: pass the
    /// vCPU of the pCPU where it arrived). `hw` links it to physical INTID `hw`: the LR gets
    /// HW = 1 and the guest's deactivation deactivates the physical interrupt (which the
    /// hypervisor acknowledged and only priority-dropped). A GICv2 SGI injected this way has
    /// `vcpu` as its source.
    ///
    /// Returns the vCPU to kick if it now has something new to take; `None` if the interrupt
    /// was already pending in the model, is disabled (it stays pending, as on a GIC), its
    /// group is disabled, or it does not exist for the VM. An interrupt that sits in an LR
    /// becomes pending in the model as well (the guest may already have acknowledged the LR's
    /// instance) and its vCPU is named: it should give its LRs back so the states merge.
    pub fn inject(&mut self, vcpu: usize, intid: u32, hw: Option<u32>) -> Option<usize> {
        let bank = if intid < FIRST_SPI { vcpu } else { 0 };
        let l = self.loc(bank, intid)?;
        let irq = self.irq_mut(l);
        // The model's own (not in an LR) instance takes the link; a physical interrupt that
        // just fired cannot be the active one of an older instance.
        if hw.is_some() || !irq.has(PENDING | ACTIVE) {
            irq.set_hw(hw);
        }
        if !self.set_pending(l, vcpu) {
            return None;
        }
        let irq = self.irq(l);
        if self.deliverable(irq) {
            self.owner(l)
        } else {
            None
        }
    }

    /// Writes `ICC_SGI1R_EL1` for `vcpu` (GICv3 only; IHI 0069, `ICC_SGI1R_EL1`): `INTID[27:24]`,
    /// `TargetList[15:0]`, `Aff1[23:16]`, `Aff2[39:32]`, `IRM[40]` (all but self), `RS[47:44]`
    /// (TargetList bit n means Aff0 = RS * 16 + n), `Aff3[55:48]`. Only this VM's vCPUs can be
    /// named; other affinities are ignored.
    pub fn sgi1r_write(&mut self, vcpu: usize, value: u64, fx: &mut Effects) {
        if self.version != Version::V3 || vcpu >= self.vcpus {
            return;
        }
        let sgi = ((value >> 24) & 0xF) as u32;
        if value & (1 << 40) != 0 {
            for t in (0..self.vcpus).filter(|&t| t != vcpu) {
                self.send_sgi(vcpu, t, sgi, fx);
            }
            return;
        }
        let upper = ((((value >> 48) & 0xFF) << 16)
            | (((value >> 32) & 0xFF) << 8)
            | ((value >> 16) & 0xFF)) as u32;
        let rs = ((value >> 44) & 0xF) as u32;
        let list = (value & 0xFFFF) as u32;
        for t in 0..self.vcpus {
            let a = self.affinity[t];
            let aff0 = a & 0xFF;
            if a >> 8 == upper && aff0 >> 4 == rs && list & (1 << (aff0 & 0xF)) != 0 {
                self.send_sgi(vcpu, t, sgi, fx);
            }
        }
    }

    // ---- list registers -------------------------------------------------------------------

    /// The best candidate for an LR of `vcpu` among its interrupts that are not in an LR and
    /// are active, or pending + enabled + group-enabled: active ones first (the guest must
    /// find them in an LR to deactivate them), then the lowest (priority, INTID).
    fn best(&self, vcpu: usize) -> Option<Loc> {
        self.best_and_stale(vcpu).0
    }

    /// Checks the LR-policy hint against a full scan: every private interrupt that wants an LR
    /// has its hint bit. For tests (the hint is an internal optimisation).
    #[doc(hidden)]
    pub fn hint_is_consistent(&self) -> bool {
        (0..self.vcpus).all(|v| {
            self.private[v]
                .iter()
                .enumerate()
                .all(|(i, irq)| !self.wants_lr(irq) || self.hint[v] & (1 << i) != 0)
        })
    }

    /// The best candidate, and the hinted private interrupts found not to want an LR.
    fn best_and_stale(&self, vcpu: usize) -> (Option<Loc>, u32) {
        if vcpu >= self.vcpus {
            return (None, 0);
        }
        let mut stale = 0u32;
        let mut best: Option<((bool, u8), Loc)> = None;
        let mut consider = |irq: &Irq, l: Loc| {
            let key = (!irq.has(ACTIVE), irq.priority);
            // Candidates come in INTID order: only a strictly better key replaces.
            if best.is_none_or(|(k, _)| key < k) {
                best = Some((key, l));
            }
        };
        let mut bits = self.hint[vcpu];
        while bits != 0 {
            let i = bits.trailing_zeros();
            bits &= bits - 1;
            let irq = &self.private[vcpu][i as usize];
            if self.wants_lr(irq) {
                consider(irq, Loc::Private(vcpu, i));
            } else {
                stale |= 1 << i;
            }
        }
        // Owned SPIs, kept in INTID order (the tie-break on equal keys keeps the lowest INTID).
        for &i in self.owned[..self.owned_count].iter() {
            let irq = &self.shared[i as usize];
            if usize::from(irq.vcpu) == vcpu && self.wants_lr(irq) {
                consider(irq, Loc::Shared(u32::from(i)));
            }
        }
        (best.map(|(_, l)| l), stale)
    }

    /// Whether [`next_for_lr`](Vgic::next_for_lr) would return something for `vcpu`.
    pub fn has_pending(&self, vcpu: usize) -> bool {
        self.best(vcpu).is_some()
    }

    /// Takes the next interrupt for an LR of `vcpu`, among its interrupts that are not in an
    /// LR and are pending + enabled + group-enabled (in `GICD_CTLR`; a sleeping redistributor
    /// does not matter) or active: first any active one (one that came back active through
    /// [`lr_returned`](Vgic::lr_returned), or made active by the guest, must be in an LR for
    /// the guest to deactivate it), then the lowest (priority, INTID). Returns the entry and
    /// the state to write with it (`Pending`, `Active` or `PendingActive`; never
    /// `PendingActive` for a hardware-linked interrupt, which then stays pending in the
    /// model). The model now counts it as in an LR of `vcpu` and the LR owns its state until
    /// it comes back through `lr_returned`.
    ///
    /// When every LR is busy and [`has_pending`](Vgic::has_pending) is true, the caller may
    /// take the next entry, compare it with its lowest-priority LR that is only pending, and
    /// either swap them (returning the old one as `Pending`) or return the new one with the
    /// state it was handed out with.
    pub fn next_for_lr(&mut self, vcpu: usize) -> Option<(LrEntry, LrState)> {
        let (l, stale) = self.best_and_stale(vcpu);
        if vcpu < self.vcpus {
            self.hint[vcpu] &= !stale;
        }
        Some(self.take_for_lr(vcpu, l?))
    }

    /// Like [`next_for_lr`](Vgic::next_for_lr), but for one interrupt: `intid` (of `vcpu` if
    /// private), if it wants an LR. For the hypervisor's fast injection path, when a list
    /// register is free and so nothing else of higher priority is waiting (every refill
    /// empties the model's queue into free LRs). Costs O(1) instead of a scan.
    pub fn next_for_lr_of(&mut self, vcpu: usize, intid: u32) -> Option<(LrEntry, LrState)> {
        if vcpu >= self.vcpus {
            return None;
        }
        let l = self.loc(vcpu, intid)?;
        let irq = self.irq(l);
        let mine = matches!(l, Loc::Private(..)) || usize::from(irq.vcpu) == vcpu;
        (mine && self.wants_lr(irq)).then(|| self.take_for_lr(vcpu, l))
    }

    /// The injection fast path for a private interrupt (a PPI, or a GICv3 SGI, of `vcpu`)
    /// that is idle in the model (not pending, active or in an LR), enabled and
    /// group-enabled: makes it pending and hands it straight to an LR, leaving the model
    /// exactly as [`inject`](Vgic::inject) followed by [`next_for_lr_of`](Vgic::next_for_lr_of)
    /// would, without their general bookkeeping. `None`, with nothing changed, otherwise:
    /// then use those two. Valid only when a list register is free (see `next_for_lr_of`).
    pub fn inject_private_to_lr(
        &mut self,
        vcpu: usize,
        intid: u32,
        hw: Option<u32>,
    ) -> Option<LrEntry> {
        if vcpu >= self.vcpus || intid >= FIRST_SPI || (self.version == Version::V2 && intid < 16) {
            return None;
        }
        let ctlr = self.ctlr;
        let irq = &mut self.private[vcpu][intid as usize];
        let group = if irq.has(GROUP1) {
            CTLR_ENABLE_GRP1
        } else {
            CTLR_ENABLE_GRP0
        };
        if irq.has(PENDING | ACTIVE | IN_LR) || !irq.has(ENABLED) || ctlr & group == 0 {
            return None;
        }
        irq.set(IN_LR | LR_PENDING, true);
        irq.set_hw(None);
        self.hint[vcpu] |= 1 << intid;
        Some(LrEntry {
            intid,
            priority: irq.priority,
            hw,
            source_cpu: 0,
            group1: irq.has(GROUP1),
            eoi: false,
        })
    }

    fn take_for_lr(&mut self, vcpu: usize, l: Loc) -> (LrEntry, LrState) {
        let v2_sgi = self.is_v2_sgi(l);
        let before = *self.irq(l);
        let pend = self.deliverable(&before);
        let act = before.has(ACTIVE);
        let hw = before.hw();

        let (state, src) = if v2_sgi {
            if act {
                let s = before.active_src;
                let more = pend && before.sources & (1 << s) != 0;
                (
                    if more {
                        LrState::PendingActive
                    } else {
                        LrState::Active
                    },
                    s,
                )
            } else {
                (
                    LrState::Pending,
                    (before.sources.trailing_zeros() & 7) as u8,
                )
            }
        } else {
            let state = match (pend, act) {
                (true, true) if hw.is_none() => LrState::PendingActive,
                (_, true) => LrState::Active,
                _ => LrState::Pending,
            };
            (state, 0)
        };

        let irq = self.irq_mut(l);
        irq.set(ACTIVE, false);
        irq.set(IN_LR, true);
        // The LR carries the hardware link now; pending state left behind is the guest's own.
        irq.set_hw(None);
        irq.set(LR_PENDING, state.is_pending());
        irq.set(LR_ACTIVE, state.is_active());
        if state.is_pending() {
            if v2_sgi {
                irq.sources &= !(1 << src);
                irq.set(PENDING, irq.sources != 0);
            } else {
                irq.set(PENDING, false);
            }
        }
        if v2_sgi {
            irq.active_src = src;
        }
        if matches!(l, Loc::Shared(_)) {
            irq.vcpu = vcpu as u8;
        }
        let irq = *irq;
        (
            LrEntry {
                intid: l.intid(),
                priority: irq.priority,
                hw,
                source_cpu: src,
                group1: irq.has(GROUP1),
                eoi: hw.is_none() && self.deliverable(&irq),
            },
            state,
        )
    }

    /// An LR of `vcpu` holding `entry` came back in `state` (read back by the hypervisor, which
    /// frees the LR). `Invalid`: the guest is done with it. `Pending` / `Active` /
    /// `PendingActive`: the model takes that state back (merged with any pending state that
    /// arrived meanwhile) and [`next_for_lr`](Vgic::next_for_lr) will offer it again. Entries
    /// the model did not hand out to `vcpu` are ignored.
    pub fn lr_returned(&mut self, vcpu: usize, entry: LrEntry, state: LrState) {
        if vcpu >= self.vcpus {
            return;
        }
        let Some(l) = self.loc(vcpu, entry.intid) else {
            return;
        };
        let v2_sgi = self.is_v2_sgi(l);
        let irq = self.irq_mut(l);
        if !irq.has(IN_LR) || (matches!(l, Loc::Shared(_)) && usize::from(irq.vcpu) != vcpu) {
            return;
        }
        irq.set(IN_LR | LR_PENDING | LR_ACTIVE, false);
        if state != LrState::Invalid && entry.hw.is_some() {
            irq.set_hw(entry.hw);
        }
        if state.is_pending() {
            if v2_sgi {
                irq.sources |= 1 << irq.active_src;
            }
            irq.set(PENDING, true);
        }
        if state.is_active() {
            irq.set(ACTIVE, true);
        }
    }
}

impl<const MAX_VCPUS: usize, const MAX_IRQS: usize> Default for Vgic<MAX_VCPUS, MAX_IRQS> {
    fn default() -> Self {
        Self::empty()
    }
}
