//! Physical cores and the run loop.
//!
//! Each core has a [`Pcpu`] (reached by its index, which TPIDR_EL2 holds) and runs the same
//! loop: enter a vCPU, take an exit, let the handler say what happened ([`Exit`]), then
//! [`end_exit`] decides — continue the same vCPU, switch to another, or idle the core — and the
//! vector returns into whatever guest context is now in the trap frame.
//!
//! - `exclusive` cores host one vCPU. Its context stays in the core's registers: the fast
//!   path of an exit is one state load and the vGIC's dirty check, no scheduler, no hypervisor
//!   timer, WFI not trapped.
//! - `edf` / `fixed-priority` (shared) cores run several vCPUs as real-time servers chosen by
//!   `tessera_sched::CoreScheduler`; budgets and releases are enforced with the EL2 physical
//!   timer (CNTHP, PPI 26); WFI traps, and a vCPU with nothing to do leaves the run queue until
//!   an interrupt (or its virtual timer) wakes it. The outgoing vCPU's registers, EL1 state,
//!   FP/SIMD, virtual timer and virtual CPU interface are saved in its `vm::Vcpu`; its list
//!   registers go back into the vGIC model.
//!
//! Other cores never touch a core's scheduler: they change a vCPU's state and [`notify`] its
//! core (an attention flag plus the kick SGI), and the core itself applies the change at the
//! end of its current exit (or in its idle loop).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use aarch64_cpu::asm;
use spin::Mutex;
use tessera_sched::{CoreScheduler, Decision, Policy, ServerKind, ServerParams, TraceKind};

use crate::arch::vcpu::{self as hw, GuestControl, HCR_SHARED_EXTRA};
use crate::arch::{self, gic, TrapFrame};
use crate::config::{self, PcpuPolicy, PCPUS};
use crate::vm::{self, CoreId, SavedContext, VcpuId, VcpuRef, VcpuState, VmId, MAX_PCPUS};
use crate::{hprintln, vgic};

/// Most vCPUs (servers) one shared core runs (the config validator enforces the same).
pub const MAX_SERVERS: usize = 16;
/// Scheduler events each traced core keeps (from the start of the run; later ones are dropped
/// and counted).
const TRACE_EVENTS: usize = 1024;

type Scheduler = CoreScheduler<MAX_SERVERS, TRACE_EVENTS>;

/// What an exit handler says happened to the vCPU that trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It continues where the trap frame says.
    Resume,
    /// It executed WFI with nothing pending (shared cores only): it leaves the run queue until
    /// an interrupt arrives or its virtual timer reaches `wake_at`.
    Idle { wake_at: Option<u64> },
    /// It is off (CPU_OFF, VM stopped or reset): it leaves its core.
    Off,
}

impl From<vm::Outcome> for Exit {
    fn from(o: vm::Outcome) -> Self {
        match o {
            vm::Outcome::Resume => Exit::Resume,
            vm::Outcome::Off => Exit::Off,
        }
    }
}

/// Per-core state of a shared core (only its own core locks it, except the final trace dump).
/// Its trace ring makes it ~25 KiB: a larger ring would have to be set up without a temporary
/// on the 64 KiB EL2 stack.
struct Shared {
    sched: Scheduler,
    /// Slot of the vCPU whose context is in the core's registers.
    running: Option<usize>,
    /// Record scheduler events (`[[scheduling]] trace`).
    trace: bool,
}

/// One physical core.
pub struct Pcpu {
    shared: Mutex<Option<Shared>>,
    /// Another core changed the state of one of this core's vCPUs (start, stop, new interrupt).
    attention: AtomicBool,
    /// The scheduler's timer fired: a budget ran out or a release/replenishment is due.
    resched: AtomicBool,
    /// The running vCPU of a shared core, encoded `(vm << 8 | vcpu) + 1`; 0 = none.
    current: AtomicU32,
    /// What the scheduling machinery did on this core (printed when the machine stops): an
    /// exclusive core must show none of it.
    stats: Stats,
}

/// Per-core counters of scheduler activity.
struct Stats {
    decisions: AtomicU64,
    timer_irqs: AtomicU64,
    wfx_traps: AtomicU64,
    switches: AtomicU64,
}

impl Stats {
    fn bump(c: &AtomicU64) {
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

impl Pcpu {
    const fn new() -> Self {
        Pcpu {
            shared: Mutex::new(None),
            attention: AtomicBool::new(false),
            resched: AtomicBool::new(false),
            current: AtomicU32::new(0),
            stats: Stats {
                decisions: AtomicU64::new(0),
                timer_irqs: AtomicU64::new(0),
                wfx_traps: AtomicU64::new(0),
                switches: AtomicU64::new(0),
            },
        }
    }
}

static PCPU: [Pcpu; MAX_PCPUS] = [const { Pcpu::new() }; MAX_PCPUS];

fn this() -> (CoreId, &'static Pcpu) {
    let core = arch::core_index();
    (core, pcpu(core))
}

/// The per-core state of `core`.
#[inline(always)]
fn pcpu(core: CoreId) -> &'static Pcpu {
    &PCPU[core.index()]
}

/// The config's description of `core`.
#[inline(always)]
fn policy(core: CoreId) -> Option<&'static PcpuPolicy> {
    PCPUS.get(core.index()).map(|p| &p.policy)
}

/// The vCPU a shared core's server slot (or an exclusive core's policy) names.
#[inline(always)]
fn vcpu_ref(vm: usize, vcpu: usize) -> VcpuRef {
    VcpuRef::new(VmId(vm), VcpuId(vcpu))
}

/// The vCPU of server `s` of a shared core.
#[inline(always)]
fn server_vcpu(s: &config::ServerDesc) -> VcpuRef {
    vcpu_ref(s.vm, s.vcpu)
}

fn encode(v: VcpuRef) -> u32 {
    ((v.vm.index() as u32) << 8 | v.vcpu.index() as u32) + 1
}

/// The vCPU this core is running. On an exclusive core: the one it hosts (whether or not it
/// is on).
#[inline]
pub fn current() -> Option<VcpuRef> {
    let core = arch::core_index();
    match policy(core)? {
        PcpuPolicy::Exclusive { vm, vcpu } => Some(vcpu_ref(*vm, *vcpu)),
        PcpuPolicy::Shared { .. } => match pcpu(core).current.load(Ordering::Relaxed) {
            0 => None,
            c => Some(vcpu_ref(((c - 1) >> 8) as usize, ((c - 1) & 0xff) as usize)),
        },
        PcpuPolicy::Idle => None,
    }
}

/// Whether this core runs several vCPUs (WFI trapped, scheduler active).
pub fn is_shared() -> bool {
    matches!(policy(arch::core_index()), Some(PcpuPolicy::Shared { .. }))
}

/// Tells the core of vCPU `v` that its state or its interrupts changed.
pub fn notify(v: VcpuRef) {
    let core = vm::core_of(v);
    pcpu(core).attention.store(true, Ordering::Release);
    if core != arch::core_index() {
        gic::send_sgi(core, vm::core_mpidr(core), gic::SGI_KICK);
    }
}

/// Sets up this core's scheduler (shared cores) and its physical interrupts; called once per
/// core before it enters [`run`].
pub fn init_core(core: CoreId) {
    let PcpuPolicy::Shared { policy, servers } = PCPUS[core.index()].policy else {
        return;
    };
    let freq = hw::counter_frequency();
    let ticks = |us: u64| (us as u128 * freq as u128 / 1_000_000) as u64;
    let mut params: heapless::Vec<ServerParams, MAX_SERVERS> = heapless::Vec::new();
    for s in servers {
        let p = ServerParams {
            kind: match s.kind {
                config::ServerKind::Deferrable => ServerKind::Deferrable,
                config::ServerKind::Periodic => ServerKind::Periodic,
                config::ServerKind::Polling => ServerKind::Polling,
                config::ServerKind::Sporadic => ServerKind::Sporadic,
                config::ServerKind::Cbs => ServerKind::Cbs,
            },
            budget: ticks(s.budget_us),
            period: ticks(s.period_us),
            priority: s.priority,
        };
        if params.push(p).is_err() {
            hprintln!("core {}: more than {} servers; halting", core, MAX_SERVERS);
            arch::halt_machine(70);
        }
    }
    let policy = match policy {
        config::SchedPolicy::Edf => Policy::Edf,
        config::SchedPolicy::FixedPriority => Policy::FixedPriority,
    };
    let trace = PCPUS[core.index()].trace;
    let mut guard = pcpu(core).shared.lock();
    let sh = guard.insert(Shared {
        sched: Scheduler::EMPTY,
        running: None,
        trace,
    });
    if let Err(e) = sh.sched.reset(policy, &params, hw::now()) {
        hprintln!("core {}: invalid server set ({:?}); halting", core, e);
        arch::halt_machine(70);
    }
    sh.sched.trace_ring_mut().set_enabled(trace);
    sh.sched.trace_ring_mut().set_keep_first(true);
    drop(guard);
    gic::enable(gic::PPI_HYP_TIMER, core, vm::core_mpidr(core));
}

/// Enters this core's run loop (boot): waits until a vCPU can run, then enters it. Never
/// returns; from then on every exit ends in [`end_exit`].
pub extern "C" fn run() -> ! {
    let mut frame = TrapFrame::ZERO;
    // Look at every vCPU's state once: the boot vCPUs are already waiting to start.
    pcpu(arch::core_index())
        .attention
        .store(true, Ordering::Release);
    end_exit(&mut frame, Exit::Off);
    arch::enter_guest(&frame)
}

/// Acknowledges every pending physical interrupt of this core and hands each to the vGIC (or,
/// for the hypervisor timer and the kick SGI, to the run loop).
pub fn drain_interrupts() {
    while let Some(intid) = gic::acknowledge() {
        physical_irq(intid);
    }
}

fn physical_irq(intid: u32) {
    if intid == gic::PPI_HYP_TIMER {
        // The scheduler's deadline: it is re-armed by the decision at the end of this exit.
        hw::hyp_timer_set(None);
        let p = pcpu(arch::core_index());
        p.resched.store(true, Ordering::Relaxed);
        Stats::bump(&p.stats.timer_irqs);
        gic::end_of_interrupt(intid);
        gic::deactivate(intid);
    } else {
        vgic::physical_irq(intid);
    }
}

/// The end of every exit: act on what happened and on what other cores asked, then leave the
/// guest context to resume in `frame`.
#[inline]
pub fn end_exit(frame: &mut TrapFrame, exit: Exit) {
    let core = arch::core_index();
    match policy(core) {
        Some(&PcpuPolicy::Exclusive { vm, vcpu }) => {
            let v = vcpu_ref(vm, vcpu);
            // The fast path of every exit on an exclusive core: the vCPU simply continues.
            if matches!(exit, Exit::Resume) && vm::vcpu(v).state() == VcpuState::On {
                vgic::flush_if_dirty(v);
            } else {
                exclusive(frame, v, exit)
            }
        }
        Some(PcpuPolicy::Shared { .. }) => shared(frame, core, exit),
        _ => arch::halt_core(),
    }
}

/// An exclusive core whose vCPU stops or waits to start: the core idles until it is started.
#[inline(never)]
fn exclusive(frame: &mut TrapFrame, id: VcpuRef, exit: Exit) {
    let v = vm::vcpu(id);
    // It left the guest (off, stopped, reset) or was asked to stop: its interrupts go back to
    // the model first, then the stop is acknowledged (a reset of its VM waits for that).
    if exit != Exit::Resume || v.state() == VcpuState::StopRequested {
        vgic::vcpu_leaves(id, false);
        let _ = v.core_stop();
    }
    loop {
        match v.state() {
            VcpuState::On => {
                // A Resume exit whose vCPU is still on (nothing to do).
                vgic::flush_if_dirty(id);
                return;
            }
            VcpuState::StopRequested => {
                vgic::vcpu_leaves(id, false);
                let _ = v.core_stop();
            }
            VcpuState::OnPending => {
                if let Some((entry, arg)) = v.core_start() {
                    defmt::info!(
                        "vm {=usize} vcpu {=usize}: start at {=u64:#x}",
                        id.vm.index(),
                        id.vcpu.index(),
                        entry
                    );
                    load(frame, id, &SavedContext::fresh(entry, arg), 0);
                    vgic::flush_if_dirty(id);
                    return;
                }
            }
            VcpuState::Off => {
                drain_interrupts();
                if v.state() == VcpuState::Off {
                    asm::wfi();
                }
            }
        }
    }
}

/// Loads a vCPU's whole context into this core (its registers into `frame`).
fn load(frame: &mut TrapFrame, v: VcpuRef, ctx: &SavedContext, extra_hcr: u64) {
    GuestControl {
        extra_hcr,
        vtcr: vm::vtcr(),
        vttbr: vm::get(v.vm).vttbr(),
        vmpidr: vm::vcpu_desc(v).mpidr,
    }
    .load();
    ctx.el1.restore();
    ctx.fp.restore();
    gic::vif::restore(&ctx.vif);
    *frame = ctx.frame;
    vgic::vcpu_enters(v);
}

/// Saves the running vCPU's context (its registers from `frame`) and takes it off the core.
fn save(frame: &TrapFrame, v: VcpuRef) {
    let mut s = vm::vcpu(v).saved.lock();
    s.frame = *frame;
    s.el1.save();
    s.fp.save();
    s.vif = gic::vif::save();
    drop(s);
    hw::vtimer_off();
    vgic::vcpu_leaves(v, true);
}

/// A shared core: apply state changes, ask the scheduler, switch or idle.
fn shared(frame: &mut TrapFrame, core: CoreId, exit: Exit) {
    let Some(&PcpuPolicy::Shared { servers, .. }) = policy(core) else {
        return;
    };
    let p = pcpu(core);
    // Nothing that could change the decision happened (no timer, no wake-up, start or stop,
    // the vCPU did not block): it continues without asking the scheduler. Its time is charged
    // at the next decision; its budget is still enforced by the armed timer.
    if exit == Exit::Resume
        && !p.attention.load(Ordering::Relaxed)
        && !p.resched.load(Ordering::Relaxed)
    {
        if let Some(v) = current() {
            if vm::vcpu(v).state() == VcpuState::On {
                vgic::flush_if_dirty(v);
                return;
            }
        }
    }
    loop {
        p.resched.store(false, Ordering::Relaxed);
        {
            let mut guard = p.shared.lock();
            let Some(sh) = guard.as_mut() else {
                return;
            };
            let now = hw::now();
            if let Some(slot) = sh.running {
                let id = server_vcpu(&servers[slot]);
                if let Exit::Idle { wake_at } = exit {
                    let _ = sh.sched.block(slot, now);
                    let _ = sh.sched.set_wake_timer(slot, wake_at);
                }
                let v = vm::vcpu(id);
                if v.state() != VcpuState::On {
                    // Gone: nothing of its context is kept (it restarts fresh). Its interrupts
                    // go back to the model before a stop request is acknowledged.
                    hw::vtimer_off();
                    vgic::vcpu_leaves(id, false);
                    let _ = v.core_stop();
                    let _ = sh.sched.set_online(slot, false, now);
                    sh.running = None;
                    p.current.store(0, Ordering::Relaxed);
                }
            }
            if p.attention.swap(false, Ordering::Acquire) {
                apply_states(sh, servers, now);
            }
            let d: Decision = sh.sched.schedule(now);
            Stats::bump(&p.stats.decisions);
            hw::hyp_timer_set(d.timer);
            if d.run != sh.running {
                Stats::bump(&p.stats.switches);
                if let Some(old) = sh.running.take() {
                    save(frame, server_vcpu(&servers[old]));
                    p.current.store(0, Ordering::Relaxed);
                }
                if let Some(new) = d.run {
                    let id = server_vcpu(&servers[new]);
                    let ctx = *vm::vcpu(id).saved.lock();
                    load(frame, id, &ctx, HCR_SHARED_EXTRA);
                    sh.running = Some(new);
                    p.current.store(encode(id), Ordering::Relaxed);
                }
            }
            if let Some(slot) = d.run {
                vgic::flush_if_dirty(server_vcpu(&servers[slot]));
                return;
            }
        }
        // Nothing to run: wait for an interrupt (the hypervisor timer, a kick, a device) with
        // the scheduler unlocked, then decide again. The exit was accounted for above.
        asm::wfi();
        drain_interrupts();
        if exit != Exit::Resume {
            // Only the first pass handles the exit itself.
            return shared(frame, core, Exit::Resume);
        }
    }
}

/// Applies what other cores (or this core's handlers for another of its vCPUs) changed:
/// starts, stops, and interrupts for vCPUs that are not running.
fn apply_states(sh: &mut Shared, servers: &[config::ServerDesc], now: u64) {
    for (slot, s) in servers.iter().enumerate() {
        let id = server_vcpu(s);
        let v = vm::vcpu(id);
        if sh.running == Some(slot) {
            continue;
        }
        match v.state() {
            VcpuState::OnPending => {
                if let Some((entry, arg)) = v.core_start() {
                    *v.saved.lock() = SavedContext::fresh(entry, arg);
                    vgic::vcpu_reset_interface(id);
                    let _ = sh.sched.set_online(slot, true, now);
                    let _ = sh.sched.set_wake_timer(slot, None);
                    let _ = sh.sched.wake(slot, now);
                }
            }
            VcpuState::StopRequested | VcpuState::Off => {
                let _ = v.core_stop();
                if sh.sched.is_online(slot) == Some(true) {
                    let _ = sh.sched.set_online(slot, false, now);
                }
            }
            VcpuState::On => {
                if vgic::has_work(id) {
                    let _ = sh.sched.wake(slot, now);
                    let _ = sh.sched.set_wake_timer(slot, None);
                }
            }
        }
    }
}

/// Takes every vCPU of `vm` on this core off the scheduler's run queue now (a VM reset
/// running on this core, before it rewrites the VM's memory).
pub fn retire_local_vcpus(vm: VmId) {
    let (core, p) = this();
    if let Some(&PcpuPolicy::Shared { servers, .. }) = policy(core) {
        if let Some(sh) = p.shared.lock().as_mut() {
            for (slot, s) in servers.iter().enumerate() {
                let id = server_vcpu(s);
                if id.vm == vm && sh.running != Some(slot) {
                    let v = vm::vcpu(id);
                    let _ = v.core_stop();
                    let _ = sh.sched.set_online(slot, false, hw::now());
                }
            }
        }
    }
}

/// Acknowledges the stop requests of this core's vCPUs that are not running (they are off the
/// core already) and takes them off the run queue. A VM reset calls it while it waits for
/// vCPUs on other cores: such a core may itself be waiting, in a reset of another VM, for a
/// vCPU of this core.
pub fn ack_local_stops() {
    let (core, p) = this();
    if let Some(&PcpuPolicy::Shared { servers, .. }) = policy(core) {
        if let Some(sh) = p.shared.lock().as_mut() {
            for (slot, s) in servers.iter().enumerate() {
                if sh.running != Some(slot) && vm::vcpu(server_vcpu(s)).core_stop() {
                    let _ = sh.sched.set_online(slot, false, hw::now());
                }
            }
        }
    }
}

/// Counts a trapped WFI or WFE on this core.
pub fn count_wfx_trap() {
    Stats::bump(&pcpu(arch::core_index()).stats.wfx_traps);
}

/// Prints, for every core that hosts vCPUs, what its scheduling machinery did (when the
/// machine stops). Exclusive cores must show zeros: no scheduler, no timer, no WFx trap.
pub fn dump_stats() {
    for (core, pd) in PCPUS.iter().enumerate() {
        let policy = match pd.policy {
            PcpuPolicy::Idle => continue,
            PcpuPolicy::Exclusive { .. } => "exclusive",
            PcpuPolicy::Shared {
                policy: config::SchedPolicy::Edf,
                ..
            } => "edf",
            PcpuPolicy::Shared {
                policy: config::SchedPolicy::FixedPriority,
                ..
            } => "fixed-priority",
        };
        let st = &PCPU[core].stats;
        hprintln!(
            "core {} ({}): {} scheduler decisions, {} budget-timer interrupts, {} WFI/WFE traps, {} switches",
            core,
            policy,
            st.decisions.load(Ordering::Relaxed),
            st.timer_irqs.load(Ordering::Relaxed),
            st.wfx_traps.load(Ordering::Relaxed),
            st.switches.load(Ordering::Relaxed)
        );
    }
}

/// Prints the trace of every traced shared core (when the machine stops), in the format
/// `cargo xtask trace` renders.
pub fn dump_traces() {
    for (core, pd) in PCPUS.iter().enumerate() {
        let PcpuPolicy::Shared { servers, .. } = pd.policy else {
            continue;
        };
        if !pd.trace {
            continue;
        }
        let mut guard = PCPU[core].shared.lock();
        let Some(sh) = guard.as_mut() else {
            continue;
        };
        if !sh.trace {
            continue;
        }
        let ring = sh.sched.trace_ring();
        hprintln!(
            "trace core {} freq {} servers {} events {} dropped {}",
            core,
            hw::counter_frequency(),
            servers.len(),
            ring.len(),
            ring.dropped()
        );
        for (i, s) in servers.iter().enumerate() {
            hprintln!(
                "trace core {} server {} vm {} vcpu {} kind {} budget_us {} period_us {} prio {}",
                core,
                i,
                vm::desc(VmId(s.vm)).name,
                s.vcpu,
                kind_name(s.kind),
                s.budget_us,
                s.period_us,
                s.priority
            );
        }
        for ev in sh.sched.drain_trace() {
            let kind = match ev.kind {
                TraceKind::Switch => "switch",
                TraceKind::Idle => "idle",
                TraceKind::Release => "release",
                TraceKind::Deplete => "deplete",
                TraceKind::Replenish => "replenish",
                TraceKind::Wake => "wake",
                TraceKind::Block => "block",
                TraceKind::Inject => "inject",
                TraceKind::Online => "online",
                TraceKind::Offline => "offline",
            };
            if ev.server == tessera_sched::TraceEvent::NO_SERVER {
                hprintln!("trace core {} ev {} {} -", core, ev.time, kind);
            } else {
                hprintln!("trace core {} ev {} {} {}", core, ev.time, kind, ev.server);
            }
        }
        hprintln!("trace core {} end", core);
    }
}

fn kind_name(k: config::ServerKind) -> &'static str {
    match k {
        config::ServerKind::Deferrable => "deferrable",
        config::ServerKind::Periodic => "periodic",
        config::ServerKind::Polling => "polling",
        config::ServerKind::Sporadic => "sporadic",
        config::ServerKind::Cbs => "cbs",
    }
}
