//! Interrupt virtualization: each VM's virtual distributor (and, on GICv3, redistributors)
//! emulated by trap with `crates/vgic-model`, and injection through this core's list
//! registers.
//!
//! Routing of physical interrupts:
//! - SGI 1 (`SGI_KICK`): another core has something for this core's vCPU (a new virtual
//!   interrupt, a stop request). Handled by the hypervisor.
//! - PPI 25: the virtual interface's maintenance interrupt (list registers drained while more
//!   virtual interrupts wait): refill.
//! - PPI 27: this core's EL1 virtual timer: handed to the core's vCPU as a hardware-linked
//!   virtual interrupt, so the guest's deactivation deactivates the physical one.
//! - An SPI the config gives a VM: hardware-linked to that VM, routed to the physical core
//!   of the vCPU the guest targets (vCPU 0 until the guest says otherwise).
//!
//! Each vCPU keeps a shadow of what was put in the list registers for it while it runs on its
//! core; the model holds everything else (pending, active-but-not-listed, enables,
//! priorities, routing). When a vCPU leaves its core (a switch on a shared core, or it stops)
//! its list registers go back into the model, so a vCPU that is not running has all its
//! interrupt state in the model and nothing in any core's registers.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use spin::Mutex;
use tessera_vgic_model::{
    lr_v2_decode, lr_v2_encode, lr_v3_decode, lr_v3_encode, Effects, LrEntry, LrState, Version,
    Vgic, VgicConfig,
};

use crate::arch::esr::Esr;
use crate::arch::gic::{self, vif};
use crate::arch::{self, TrapFrame};
use crate::config::{GicVersion, BOARD, VUART_INTID};
use crate::hprintln;
use crate::vm::{self, CoreId, VcpuId, VcpuRef, VmId, MAX_VCPUS, MAX_VMS};

/// INTIDs a VM's virtual distributor covers (SGIs, PPIs and SPIs up to 255).
const MAX_IRQS: usize = 256;
type Model = Vgic<MAX_VCPUS, MAX_IRQS>;

static MODELS: [Mutex<Model>; MAX_VMS] = [const { Mutex::new(Model::empty()) }; MAX_VMS];
/// Per VM: accesses to distributor registers of interrupts it does not own (ignored). The first
/// is reported at once, the count when the machine stops.
static DENIED: [AtomicU64; MAX_VMS] = [const { AtomicU64::new(0) }; MAX_VMS];

/// What was put in the list registers for a vCPU (valid while it runs on its core).
struct LrShadow {
    entries: [Option<LrEntry>; 16],
}

/// Per-vCPU interrupt state of the hypervisor (beyond the model): indexed `[vm][vcpu]`.
struct VcpuIrq {
    lrs: Mutex<LrShadow>,
    /// Its list registers need a look before it runs again (something was injected, or it
    /// just came onto its core).
    dirty: AtomicBool,
    /// GICv2: its virtual timer went in as a software interrupt and the physical timer PPI is
    /// masked until the guest ends it.
    timer_masked: AtomicBool,
}

static VCPU_IRQ: [[VcpuIrq; MAX_VCPUS]; MAX_VMS] = [const {
    [const {
        VcpuIrq {
            lrs: Mutex::new(LrShadow {
                entries: [None; 16],
            }),
            dirty: AtomicBool::new(false),
            timer_masked: AtomicBool::new(false),
        }
    }; MAX_VCPUS]
}; MAX_VMS];

fn irq_state(v: VcpuRef) -> &'static VcpuIrq {
    &VCPU_IRQ[v.vm.index()][v.vcpu.index()]
}

/// VM `vm`'s interrupt model.
#[inline(always)]
fn model(vm: VmId) -> &'static Mutex<Model> {
    &MODELS[vm.index()]
}

/// Size of a GICv3 redistributor (RD + SGI frames) in the guest's map.
const GICR_STRIDE: u64 = 0x2_0000;
const GICD_SIZE: u64 = 0x1_0000;

fn version() -> Version {
    match BOARD.gic.version {
        GicVersion::V2 => Version::V2,
        GicVersion::V3 => Version::V3,
    }
}

/// Sets up VM `vm`'s virtual distributor (boot core, before any vCPU runs).
pub fn init_vm(vm: VmId) -> Result<(), &'static str> {
    let d = vm::desc(vm);
    let mut spis: heapless::Vec<u32, 64> = heapless::Vec::new();
    for dev in d.devices {
        for &irq in dev.irqs {
            spis.push(irq)
                .map_err(|_| "more than 64 interrupts passed through")?;
            // Static ownership (the validator made each device interrupt belong to one VM).
            if let Some(o) = SPI_OWNER.get(irq as usize) {
                o.store(vm.index() as u8, Ordering::Relaxed);
            }
        }
    }
    // The virtual PL011's interrupt and channel doorbells: owned like passed-through SPIs,
    // but purely virtual.
    for irq in core::iter::once(VUART_INTID).chain(crate::channel::doorbells_of(vm)) {
        spis.push(irq)
            .map_err(|_| "more than 64 interrupts passed through or doorbells")?;
    }
    let mut mpidrs: heapless::Vec<u64, MAX_VCPUS> = heapless::Vec::new();
    for v in d.vcpus {
        mpidrs.push(v.mpidr).map_err(|_| "too many vCPUs")?;
    }
    let cfg = VgicConfig {
        version: version(),
        vcpus: d.vcpus.len(),
        owned_spis: &spis,
        vcpu_mpidr: &mpidrs,
    };
    let mut m = model(vm).lock();
    m.init(&cfg).map_err(|_| "invalid vGIC configuration")?;
    // Each doorbell starts routed to the vCPU its class names (the guest may move it). Nothing
    // is pending after `init`, so there is nobody to kick.
    let mut fx = Effects::default();
    for (irq, vcpu) in crate::channel::doorbell_routes_of(vm) {
        m.set_initial_route(irq, vcpu, &mut fx)
            .map_err(|_| "a channel doorbell names a vCPU the receiver does not have")?;
    }
    Ok(())
}

/// VM `vm` is being reset (all its vCPUs are stopped): its virtual GIC goes back to the reset
/// state, and the physical interrupts it owns are disabled and deactivated (one it left
/// active would otherwise never fire again).
pub fn reset_vm(vm: VmId) -> Result<(), &'static str> {
    for dev in vm::desc(vm).devices {
        for &irq in dev.irqs {
            gic::disable(irq, 0);
            gic::deactivate(irq);
        }
    }
    init_vm(vm)
}

/// Per-core set-up: the interrupts this core takes for its vCPUs, and a clean virtual
/// interface.
pub fn init_core(core: CoreId) {
    let mpidr = vm::core_mpidr(core);
    vif::reset();
    gic::enable(gic::PPI_MAINTENANCE, core, mpidr);
    gic::enable(gic::PPI_VTIMER, core, mpidr);
}

/// A vCPU starts from scratch (PSCI CPU_ON, VM start or reset): nothing listed for it.
pub fn vcpu_reset_interface(v: VcpuRef) {
    let st = irq_state(v);
    st.lrs.lock().entries = [None; 16];
    st.timer_masked.store(false, Ordering::Relaxed);
    st.dirty.store(true, Ordering::Relaxed);
}

/// vCPU `v` comes onto this core (its virtual interface state was restored): list its
/// interrupts before it runs.
pub fn vcpu_enters(v: VcpuRef) {
    let st = irq_state(v);
    st.dirty.store(true, Ordering::Relaxed);
    if st.timer_masked.load(Ordering::Relaxed) {
        let core = arch::core_index();
        gic::disable(gic::PPI_VTIMER, vm::core_mpidr(core));
    }
}

/// vCPU `v` leaves this core (its virtual timer is already stopped). `keep`: it
/// will come back (a switch), so its list registers go back into the model with the state
/// the guest left them in; otherwise it stopped, and what was listed is dropped. Either way
/// the core's list registers end up empty and its timer PPI usable by the next vCPU.
pub fn vcpu_leaves(v: VcpuRef, keep: bool) {
    let st = irq_state(v);
    {
        let mut lrs = st.lrs.lock();
        if keep {
            let mut m = model(v.vm).lock();
            let empty = vif::empty_lrs();
            for i in 0..vif::lr_count() {
                if let Some(e) = lrs.entries[i].take() {
                    let state = if empty & (1 << i) != 0 {
                        LrState::Invalid
                    } else {
                        decode(vif::lr_read(i)).1
                    };
                    m.lr_returned(v.vcpu.index(), e, state);
                }
            }
        } else {
            lrs.entries = [None; 16];
        }
    }
    // A hardware-linked timer interrupt in flight keeps the physical PPI active: release it
    // (the restored timer raises it again if it is still due).
    gic::deactivate(gic::PPI_VTIMER);
    if keep {
        if st.timer_masked.load(Ordering::Relaxed) {
            let core = arch::core_index();
            gic::enable(gic::PPI_VTIMER, core, vm::core_mpidr(core));
        }
    } else {
        unmask_timer(v);
    }
    vif::reset();
}

/// Whether a vCPU that is not running has an interrupt to take (it should leave WFI).
pub fn has_work(v: VcpuRef) -> bool {
    irq_state(v).dirty.load(Ordering::Acquire) || model(v.vm).lock().has_pending(v.vcpu.index())
}

/// Whether the running vCPU has an interrupt pending in its list registers or waiting for
/// one (WFI would return at once).
pub fn running_has_work(v: VcpuRef) -> bool {
    let lrs = irq_state(v).lrs.lock();
    let empty = vif::empty_lrs();
    for i in 0..vif::lr_count() {
        if lrs.entries[i].is_some() && empty & (1 << i) == 0 {
            let (_, state) = decode(vif::lr_read(i));
            if matches!(state, LrState::Pending | LrState::PendingActive) {
                return true;
            }
        }
    }
    drop(lrs);
    has_work(v)
}

/// Makes sure vCPU `v` looks at its virtual interrupts soon: at the end of this exit if it is
/// the one running here, else through its core's run loop (which also wakes it from WFI on a
/// shared core).
fn kick(v: VcpuRef) {
    irq_state(v).dirty.store(true, Ordering::Release);
    if vm::current() != Some(v) {
        crate::pcpu::notify(v);
    }
}

fn apply(vm: VmId, fx: &Effects) {
    // The vUART's interrupt and doorbells (crate::channel) have no physical interrupt to
    // mirror.
    for &intid in fx.phys_enable.iter().filter(|&&i| !purely_virtual(vm, i)) {
        // Hardware SPIs follow the guest's routing to the core of vCPU 0 at least; the model
        // re-targets on delivery.
        let core = vm::core_of(VcpuRef::new(vm, VcpuId(0)));
        gic::enable(intid, core, vm::core_mpidr(core));
    }
    for &intid in fx.phys_disable.iter().filter(|&&i| !purely_virtual(vm, i)) {
        gic::disable(intid, 0);
    }
    for &intid in fx.phys_deactivate.iter() {
        gic::deactivate(intid);
    }
    for v in 0..vm::desc(vm).vcpus.len() {
        if fx.kick & (1 << v) != 0 {
            kick(VcpuRef::new(vm, VcpuId(v)));
        }
    }
    if let Some((offset, write)) = fx.denied {
        report_denied(vm, offset, write);
    }
}

/// Interrupts of VM `vm` that exist only in its virtual GIC: its vUART's and its doorbells.
fn purely_virtual(vm: VmId, intid: u32) -> bool {
    intid == VUART_INTID || crate::channel::is_doorbell(vm, intid)
}

fn report_denied(vm: VmId, offset: u64, write: bool) {
    let Some(count) = DENIED.get(vm.index()) else {
        return;
    };
    if count.fetch_add(1, Ordering::Relaxed) == 0 {
        hprintln!(
            "vm {}: {} of a virtual GIC register at offset {:#x} for an interrupt it does not own: ignored (the first; the count follows at the end)",
            vm::desc(vm).name,
            if write { "write" } else { "read" },
            offset
        );
    }
}

/// At machine stop: how many accesses to interrupts it does not own each VM made.
pub fn dump_denied() {
    for vm in vm::ids() {
        let n = DENIED[vm.index()].load(Ordering::Relaxed);
        if n > 0 {
            hprintln!(
                "vm {}: {} access(es) to virtual GIC registers of interrupts it does not own, ignored",
                vm::desc(vm).name,
                n
            );
        }
    }
}

/// Makes the purely virtual SPI `intid` of VM `vm` (its vUART's, a channel doorbell) pending and kicks the
/// vCPU it is routed to. Returns false (and does nothing) if it was pending already, or the
/// guest has it disabled (it stays pending, as on a GIC).
pub fn inject_virtual(vm: VmId, intid: u32) -> bool {
    let target = model(vm).lock().inject(0, intid, None);
    match target {
        Some(v) => {
            kick(VcpuRef::new(vm, VcpuId(v)));
            true
        }
        None => false,
    }
}

/// Emulates a trapped access to the VM's GICD / GICR window, if `ipa` is in one.
/// Same contract as `vdev::mmio`.
pub fn mmio(frame: &mut TrapFrame, caller: VcpuRef, ipa: u64, esr: Esr) -> Option<bool> {
    let (vm, vcpu) = (caller.vm, caller.vcpu.index());
    let d = vm::desc(vm);
    let g = &d.vgic;
    let (is_gicd, offset) = if ipa >= g.gicd && ipa - g.gicd < GICD_SIZE {
        (true, ipa - g.gicd)
    } else if g.version == GicVersion::V3
        && ipa >= g.gicr
        && ipa - g.gicr < GICR_STRIDE * d.vcpus.len() as u64
    {
        (false, ipa - g.gicr)
    } else {
        return None;
    };
    if !esr.isv() {
        return Some(false);
    }
    let size = esr.access_size();
    let mut fx = Effects::default();
    {
        let mut m = model(vm).lock();
        if esr.is_write() {
            let v = frame.reg(esr.srt());
            if is_gicd {
                m.gicd_write(vcpu, offset, size, v, &mut fx);
            } else {
                m.gicr_write(vcpu, offset, size, v, &mut fx);
            }
        } else {
            let v = if is_gicd {
                m.gicd_read(vcpu, offset, size)
            } else {
                m.gicr_read(vcpu, offset, size)
            };
            frame.set_reg(
                esr.srt(),
                if esr.sixty_four() { v } else { v & 0xffff_ffff },
            );
            if let Some(offset) = m.take_denied_read() {
                fx.denied = Some((offset, false));
            }
        }
    }
    apply(vm, &fx);
    Some(true)
}

/// A trapped write of ICC_SGI1R_EL1 (GICv3 SGI generation).
pub fn sgi1r(caller: VcpuRef, value: u64) {
    let mut fx = Effects::default();
    model(caller.vm)
        .lock()
        .sgi1r_write(caller.vcpu.index(), value, &mut fx);
    apply(caller.vm, &fx);
}

/// A physical interrupt taken on this core (acknowledged by the caller, priority not dropped).
pub fn physical_irq(intid: u32) {
    let core = arch::core_index();
    gic::end_of_interrupt(intid);
    match intid {
        // Another core changed something for a vCPU of this core: the run loop looks at the
        // attention flag and the vCPUs' dirty flags when this exit ends.
        gic::SGI_KICK => gic::deactivate(intid),
        // The console's receiver: input goes to the VM with the focus (and its vUART
        // interrupt). A level: deactivating after the FIFO was read re-arms it.
        i if Some(i) == BOARD.console_irq => {
            crate::console::rx_interrupt();
            gic::deactivate(i);
        }
        gic::PPI_MAINTENANCE => {
            // Its causes (underflow, an EOI of a list register asking for one) are levels:
            // take the list registers back and refill them before deactivating, or it fires
            // again at once. The refill re-arms underflow only while more interrupts wait.
            vif::set_control(false);
            if let Some(v) = vm::current() {
                irq_state(v).dirty.store(true, Ordering::Relaxed);
                flush_if_dirty(v);
            }
            gic::deactivate(intid);
        }
        // Hardware-linked: the physical PPI stays active (and so quiet) until the guest
        // deactivates the virtual one, even while the model keeps it pending (disabled in the
        // guest's view, or already listed).
        gic::PPI_VTIMER => match vm::current() {
            Some(v) if vm::vcpu(v).state() != vm::VcpuState::On => {
                // The core's vCPU is off (CPU_OFF, a reset in progress, not started yet): the
                // timer it left armed fired with nobody to take it. Turn the timer off and
                // release the PPI: left active, it would never fire for the vCPU's next start
                // (seen: Linux's second CPU got no timer interrupt after a VM reboot).
                crate::arch::vcpu::vtimer_disable();
                gic::deactivate(intid);
            }
            Some(v) if version() == Version::V2 => {
                // GICv2: QEMU's model does not re-signal a hardware-linked level interrupt that
                // a guest deactivates while it is still raised (a timer deadline already past),
                // which stalls the guest's timer. So the timer goes in as a software interrupt
                // that asks for a maintenance interrupt at its EOI, with the physical PPI
                // masked until then; unmasking re-evaluates the line. One extra exit per tick.
                gic::deactivate(intid);
                if !crate::arch::vcpu::vtimer_asserted() {
                    // A stale edge of a level that has already dropped (the guest moved its
                    // deadline): nothing to deliver. Injecting it would run the guest's handler
                    // before its deadline (seen under host load on QEMU's GICv2).
                    return;
                }
                gic::disable(intid, vm::core_mpidr(core));
                let st = irq_state(v);
                st.timer_masked.store(true, Ordering::Relaxed);
                model(v.vm).lock().inject(v.vcpu.index(), intid, None);
                st.dirty.store(true, Ordering::Relaxed);
            }
            Some(v) => {
                if !fast_inject(v, intid, Some(intid)) {
                    irq_state(v).dirty.store(true, Ordering::Relaxed);
                }
            }
            None => {
                gic::deactivate(intid);
                gic::disable(intid, vm::core_mpidr(core));
            }
        },
        _ => match owner_of(intid) {
            Some(vm) => {
                let target = model(vm).lock().inject(0, intid, Some(intid));
                if let Some(v) = target {
                    kick(VcpuRef::new(vm, VcpuId(v)));
                }
            }
            None => {
                gic::deactivate(intid);
                hprintln!("core {}: unexpected physical interrupt {}", core, intid);
            }
        },
    }
}

/// The injection fast path, for an interrupt of this core's own vCPU (the virtual timer):
/// retire the list registers the guest finished with and put `intid` straight into a free
/// one, without the full refill's scans. Valid because a refill always empties the model's
/// queue into free list registers, so while one is free nothing of higher priority waits
/// (anything that arrived since set DIRTY, and then the full refill runs instead).
/// Returns false when the full refill is needed.
fn fast_inject(v: VcpuRef, intid: u32, hw: Option<u32>) -> bool {
    let st = irq_state(v);
    let vcpu = v.vcpu.index();
    if st.dirty.load(Ordering::Relaxed) {
        model(v.vm).lock().inject(vcpu, intid, hw);
        return false;
    }
    let mut lrs = st.lrs.lock();
    let mut m = model(v.vm).lock();
    let empty = vif::empty_lrs();
    let mut free = None;
    for i in 0..vif::lr_count() {
        match lrs.entries[i] {
            Some(e) if empty & (1 << i) != 0 => {
                if e.intid == gic::PPI_VTIMER && e.hw.is_none() {
                    unmask_timer(v);
                }
                m.lr_returned(vcpu, e, LrState::Invalid);
                lrs.entries[i] = None;
                free.get_or_insert(i);
            }
            None => {
                free.get_or_insert(i);
            }
            Some(_) => {}
        }
    }
    let Some(i) = free else {
        m.inject(vcpu, intid, hw);
        return false;
    };
    if let Some(e) = m.inject_private_to_lr(vcpu, intid, hw) {
        vif::lr_write(i, encode(&e, LrState::Pending));
        lrs.entries[i] = Some(e);
        return true;
    }
    m.inject(vcpu, intid, hw);
    match m.next_for_lr_of(vcpu, intid) {
        Some((e, state)) => {
            vif::lr_write(i, encode(&e, state));
            lrs.entries[i] = Some(e);
            true
        }
        None => false,
    }
}

/// GICv2: the vCPU ended its software-injected timer interrupt: its core's timer PPI may fire
/// again (the vCPU runs on this core).
fn unmask_timer(v: VcpuRef) {
    if irq_state(v).timer_masked.swap(false, Ordering::Relaxed) {
        let core = arch::core_index();
        gic::enable(gic::PPI_VTIMER, core, vm::core_mpidr(core));
    }
}

/// Which VM owns each physical SPI passed through to a VM (`NO_OWNER`: none), filled once at
/// boot from the config's device table. Delivering a physical interrupt reads only this: no
/// other VM's vGIC lock is taken on the interrupt path.
static SPI_OWNER: [AtomicU8; 1024] = [const { AtomicU8::new(NO_OWNER) }; 1024];
const NO_OWNER: u8 = u8::MAX;

fn owner_of(intid: u32) -> Option<VmId> {
    match SPI_OWNER.get(intid as usize)?.load(Ordering::Relaxed) {
        NO_OWNER => None,
        vm => Some(VmId(vm as usize)),
    }
}

fn encode(e: &LrEntry, state: LrState) -> u64 {
    match version() {
        Version::V3 => lr_v3_encode(e, state),
        Version::V2 => lr_v2_encode(e, state) as u64,
    }
}

fn decode(raw: u64) -> (LrEntry, LrState) {
    match version() {
        Version::V3 => lr_v3_decode(raw),
        Version::V2 => lr_v2_decode(raw as u32),
    }
}

/// Before returning to this core's vCPU (when something changed): take every list register
/// back into the model with the state the guest left it in, then hand out again the
/// highest-priority interrupts (active ones first), and ask for a maintenance interrupt while
/// more wait than there are list registers. Re-listing everything keeps the priority order
/// exact: a newly pending higher-priority interrupt displaces a lower one still pending.
#[inline]
pub fn flush_if_dirty(v: VcpuRef) {
    let st = irq_state(v);
    // A plain load first: this runs on every exit, the exclusive swap only when needed.
    if st.dirty.load(Ordering::Relaxed) && st.dirty.swap(false, Ordering::Acquire) {
        refill(v, st);
    }
}

/// The list-register refill of [`flush_if_dirty`].
#[inline(never)]
fn refill(v: VcpuRef, st: &VcpuIrq) {
    let vcpu = v.vcpu.index();
    let mut lrs = st.lrs.lock();
    let mut m = model(v.vm).lock();
    let n = vif::lr_count();
    let empty = vif::empty_lrs();
    for i in 0..n {
        if let Some(e) = lrs.entries[i].take() {
            let state = if empty & (1 << i) != 0 {
                LrState::Invalid
            } else {
                decode(vif::lr_read(i)).1
            };
            if e.intid == gic::PPI_VTIMER && e.hw.is_none() && state == LrState::Invalid {
                unmask_timer(v);
            }
            m.lr_returned(vcpu, e, state);
        }
    }
    let mut exhausted = false;
    for i in 0..n {
        match (!exhausted).then(|| m.next_for_lr(vcpu)).flatten() {
            Some((mut e, state)) => {
                if e.intid == gic::PPI_VTIMER && e.hw.is_none() {
                    e.eoi = true;
                }
                vif::lr_write(i, encode(&e, state));
                lrs.entries[i] = Some(e);
            }
            None => {
                exhausted = true;
                vif::lr_write(i, 0);
            }
        }
    }
    // More waiting than list registers: ask for a maintenance interrupt when they drain.
    vif::set_control(!exhausted && m.has_pending(vcpu));
}
