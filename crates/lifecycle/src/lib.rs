//! The lifecycle of a Tessera VM and its vCPUs as one state machine whose transitions are
//! atomic as a whole.
//!
//! The VM's state ([`VmState`]) and the power state of each of its vCPUs ([`VcpuState`]) live
//! in **one** 64-bit word ([`Word`]); every operation — PSCI CPU_ON, CPU_OFF, SYSTEM_OFF (and
//! the Shutdown hypercall, a fault under `on_fault = "stop"`, an SError), SYSTEM_RESET, the
//! end of a reset, a core starting or stopping one of its vCPUs — is a pure function from one
//! consistent snapshot of that word to the next, and [`Lifecycle`] applies it with a single
//! compare-and-swap loop. No operation ever sees, or leaves behind, a half-done transition of
//! another one.
//!
//! Each operation returns what the caller must do next: notify the cores of some vCPUs, wait
//! for some vCPUs to leave their cores, or — exactly once per VM — count the VM off the
//! machine ([`Ended`], consumed by [`RunningCount::count_off`]).
//!
//! # Word layout
//!
//! | bits   | field                                                         |
//! |--------|---------------------------------------------------------------|
//! | 0–1    | VM state: 0 `Idle`, 1 `Running`, 2 `Resetting`, 3 `Off`       |
//! | 2–17   | vCPU `i` at bits `2 + 2i`: 0 `Off`, 1 `OnPending`, 2 `On`, 3 `StopRequested` |
//! | 18–21  | number of vCPUs (0 before boot, then 1–8)                     |
//! | 22–31  | zero                                                          |
//! | 32–63  | reset generation: how many resets have begun                 |
//!
//! # Rules (the invariants the tests check in every reachable state)
//!
//! - `Off` is final: no operation leaves it, and an `Off` VM has no vCPU `On` or `OnPending`
//!   (vCPUs still on a core are `StopRequested` until their core acknowledges).
//! - Exactly one operation ends a VM (returns [`Ended`]): the VM is counted off once, and never
//!   while a reset brings it back (a reset is owned by the vCPU that began it; SYSTEM_OFF from
//!   another vCPU during the reset finds the VM not running and only stops its caller).
//! - While `Resetting`, every vCPU is `Off` or `StopRequested`; CPU_ON is refused; the reset
//!   completes ([`Word::reset_complete`]) only when every vCPU is `Off`, i.e. every other vCPU
//!   has left its core, so the VM's memory may be rewritten.
//! - While `Running`, no vCPU is `StopRequested`.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Most vCPUs one VM can have (the word holds 2 bits per vCPU).
pub const MAX_VCPUS: usize = 8;

const VM_MASK: u64 = 0b11;
const VCPU_SHIFT: u32 = 2;
const COUNT_SHIFT: u32 = 18;
const COUNT_MASK: u64 = 0xf;
const GEN_SHIFT: u32 = 32;
const RESERVED_MASK: u64 = 0x3ff << 22;

/// The state of a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmState {
    /// Configured but not started yet (the machine is booting).
    Idle,
    /// Running (some vCPUs may be off).
    Running,
    /// A vCPU of the VM is resetting it: the other vCPUs are being stopped, then the VM's
    /// memory is rewritten and its boot vCPU started again.
    Resetting,
    /// Ended (powered off or stopped by the hypervisor); final.
    Off,
}

impl VmState {
    fn bits(self) -> u64 {
        match self {
            VmState::Idle => 0,
            VmState::Running => 1,
            VmState::Resetting => 2,
            VmState::Off => 3,
        }
    }

    fn from_bits(b: u64) -> Self {
        match b & VM_MASK {
            0 => VmState::Idle,
            1 => VmState::Running,
            2 => VmState::Resetting,
            _ => VmState::Off,
        }
    }
}

/// The power state of a vCPU (PSCI's view plus a stop request in flight).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VcpuState {
    /// Not on any core.
    Off,
    /// Started (CPU_ON, boot, end of a reset): its core will load it.
    OnPending,
    /// On its core.
    On,
    /// Asked to stop (VM off or reset): still on its core until the core acknowledges
    /// ([`Word::core_stop`]).
    StopRequested,
}

impl VcpuState {
    fn bits(self) -> u64 {
        match self {
            VcpuState::Off => 0,
            VcpuState::OnPending => 1,
            VcpuState::On => 2,
            VcpuState::StopRequested => 3,
        }
    }

    fn from_bits(b: u64) -> Self {
        match b & 0b11 {
            0 => VcpuState::Off,
            1 => VcpuState::OnPending,
            2 => VcpuState::On,
            _ => VcpuState::StopRequested,
        }
    }

    /// Whether the vCPU may be executing on its core (`On` or `StopRequested`).
    pub fn on_core(self) -> bool {
        matches!(self, VcpuState::On | VcpuState::StopRequested)
    }
}

/// A set of vCPU indices of one VM (bit `i` = vCPU `i`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VcpuSet(u8);

impl VcpuSet {
    /// No vCPU.
    pub const EMPTY: VcpuSet = VcpuSet(0);

    /// The set with bits `bits`.
    pub const fn from_bits(bits: u8) -> Self {
        VcpuSet(bits)
    }

    /// Its bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether vCPU `i` is in the set.
    pub fn contains(self, i: usize) -> bool {
        i < MAX_VCPUS && self.0 & (1 << i) != 0
    }

    /// The set with vCPU `i` added (`i` below [`MAX_VCPUS`]; others are ignored).
    #[must_use]
    pub fn with(self, i: usize) -> Self {
        if i < MAX_VCPUS {
            VcpuSet(self.0 | 1 << i)
        } else {
            self
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The vCPU indices in the set, ascending.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_VCPUS).filter(move |&i| self.contains(i))
    }
}

/// Why an operation was refused (the word is unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refused {
    /// The VM is not running (not started, being reset or off): PSCI `DENIED`.
    NotRunning,
    /// The VM was already started ([`Word::boot`]).
    AlreadyStarted,
    /// No such vCPU in this VM (or a vCPU count outside 1–8).
    NoSuchVcpu,
    /// CPU_ON of a vCPU that is on (or still stopping): PSCI `ALREADY_ON`.
    AlreadyOn,
    /// CPU_ON of a vCPU already starting: PSCI `ON_PENDING`.
    OnPending,
    /// The calling vCPU is not on its core (a hypervisor bug, never a guest's doing).
    CallerNotOnCore,
    /// A reset cannot complete yet: some vCPU has not left its core.
    NotReady,
    /// The reset generation does not match, or the VM is not being reset.
    NotResetting,
    /// A core-side start of a vCPU that is not `OnPending`.
    NotPending,
    /// A core-side stop of a vCPU that is not `StopRequested`.
    NotStopping,
    /// The raw word is not a valid state.
    Malformed,
}

/// Proof that a VM was started: count it on the machine ([`RunningCount::count_on`]).
#[must_use = "a started VM must be counted on the machine"]
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Started {
    /// The vCPU to start (its core must be notified).
    pub notify: VcpuSet,
}

/// Proof that this call ended the VM — returned once per VM, ever. Count it off the machine
/// ([`RunningCount::count_off`]).
#[must_use = "an ended VM must be counted off the machine exactly once"]
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ended;

impl Ended {
    /// Counts the VM off a plain counter (for single-threaded users and models); true when
    /// it was the last one. A counter already at 0 is left at 0 (and false returned).
    pub fn apply_to(self, running: &mut usize) -> bool {
        match running.checked_sub(1) {
            Some(n) => {
                *running = n;
                n == 0
            }
            None => false,
        }
    }
}

/// What CPU_OFF of the calling vCPU did.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub enum CpuOff {
    /// The caller is off; the VM runs on.
    Off,
    /// The caller was the VM's last vCPU not off: the VM is off too.
    Last(Ended),
    /// The caller was already asked to stop (the VM is being reset or is off): its core
    /// acknowledges the stop when the caller leaves.
    Stopping,
}

/// What a VM power-off (SYSTEM_OFF, Shutdown, a stop by the hypervisor) did.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub enum VmOff {
    /// This call ended the VM. The caller (if a vCPU of the VM) is off; the other vCPUs on a
    /// core are `StopRequested` and those starting are cancelled: notify all of `notify`.
    Ended {
        /// The VM's one [`Ended`].
        ended: Ended,
        /// vCPUs whose cores must look at their state.
        notify: VcpuSet,
    },
    /// The VM was already being reset or ended by another call; the caller (if a vCPU of
    /// the VM) is `StopRequested` and leaves its core.
    AlreadyEnding,
}

/// The reset a vCPU began ([`Word::reset_begin`]): it owns the VM until it completes or
/// fails the reset.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetTicket {
    /// The reset's generation (the VM's reset count including this one).
    pub generation: u32,
    /// vCPUs whose cores must look at their state (stopped or cancelled).
    pub notify: VcpuSet,
    /// vCPUs that must leave their cores before the VM's memory may be rewritten.
    pub wait: VcpuSet,
}

/// A snapshot of a VM's lifecycle: the VM state, each vCPU's state and the reset generation in
/// one `u64` (layout in the crate docs). Every transition is a pure method returning the next
/// word; [`Lifecycle`] applies them atomically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Word(u64);

impl Word {
    /// A VM that has not been started, with no vCPUs.
    pub const IDLE: Word = Word(0);

    /// The raw value.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// A word from a raw value, checked: reserved bits zero, at most 8 vCPUs, vCPUs beyond
    /// the count `Off`.
    pub fn from_raw(raw: u64) -> Result<Word, Refused> {
        let w = Word(raw);
        let n = w.vcpus();
        let beyond = if n >= MAX_VCPUS {
            0
        } else {
            (raw >> (VCPU_SHIFT + 2 * n as u32)) & ((1 << (2 * (MAX_VCPUS - n))) - 1)
        };
        if raw & RESERVED_MASK != 0 || n > MAX_VCPUS || beyond != 0 {
            return Err(Refused::Malformed);
        }
        if w.vm() == VmState::Idle && raw != 0 {
            return Err(Refused::Malformed);
        }
        Ok(w)
    }

    /// The VM's state.
    pub fn vm(self) -> VmState {
        VmState::from_bits(self.0)
    }

    /// Number of vCPUs (0 before boot).
    pub fn vcpus(self) -> usize {
        ((self.0 >> COUNT_SHIFT) & COUNT_MASK) as usize
    }

    /// The state of vCPU `i` (`Off` for a vCPU the VM does not have).
    pub fn vcpu(self, i: usize) -> VcpuState {
        if i >= self.vcpus() {
            return VcpuState::Off;
        }
        VcpuState::from_bits(self.0 >> (VCPU_SHIFT + 2 * i as u32))
    }

    /// How many resets of the VM have begun.
    pub fn generation(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32
    }

    /// The vCPUs in state `s`.
    pub fn in_state(self, s: VcpuState) -> VcpuSet {
        (0..self.vcpus())
            .filter(|&i| self.vcpu(i) == s)
            .fold(VcpuSet::EMPTY, VcpuSet::with)
    }

    /// Whether every vCPU is `Off`.
    pub fn all_off(self) -> bool {
        (0..self.vcpus()).all(|i| self.vcpu(i) == VcpuState::Off)
    }

    fn with_vm(self, s: VmState) -> Word {
        Word(self.0 & !VM_MASK | s.bits())
    }

    fn with_vcpu(self, i: usize, s: VcpuState) -> Word {
        let shift = VCPU_SHIFT + 2 * i as u32;
        Word(self.0 & !(0b11 << shift) | s.bits() << shift)
    }

    fn with_generation(self, g: u32) -> Word {
        Word(self.0 & !(u64::from(u32::MAX) << GEN_SHIFT) | u64::from(g) << GEN_SHIFT)
    }

    fn check_vcpu(self, i: usize) -> Result<(), Refused> {
        if i < self.vcpus() {
            Ok(())
        } else {
            Err(Refused::NoSuchVcpu)
        }
    }

    fn check_caller(self, me: usize) -> Result<(), Refused> {
        self.check_vcpu(me)?;
        if self.vcpu(me).on_core() {
            Ok(())
        } else {
            Err(Refused::CallerNotOnCore)
        }
    }

    /// Every vCPU other than `except` asked to leave: `On` → `StopRequested`, `OnPending` →
    /// `Off`. Returns the new word, the vCPUs changed and the ones now `StopRequested`.
    fn stop_others(self, except: Option<usize>) -> (Word, VcpuSet, VcpuSet) {
        let (mut w, mut notify, mut wait) = (self, VcpuSet::EMPTY, VcpuSet::EMPTY);
        for i in 0..self.vcpus() {
            if Some(i) == except {
                continue;
            }
            match self.vcpu(i) {
                VcpuState::On => {
                    w = w.with_vcpu(i, VcpuState::StopRequested);
                    notify = notify.with(i);
                    wait = wait.with(i);
                }
                VcpuState::OnPending => {
                    w = w.with_vcpu(i, VcpuState::Off);
                    notify = notify.with(i);
                }
                VcpuState::StopRequested => wait = wait.with(i),
                VcpuState::Off => {}
            }
        }
        (w, notify, wait)
    }

    /// Starts the VM (machine boot): `Idle` → `Running` with `vcpus` vCPUs, `first` of them
    /// `OnPending`.
    pub fn boot(self, vcpus: usize, first: usize) -> Result<(Word, Started), Refused> {
        if self.vm() != VmState::Idle {
            return Err(Refused::AlreadyStarted);
        }
        if vcpus == 0 || vcpus > MAX_VCPUS || first >= vcpus {
            return Err(Refused::NoSuchVcpu);
        }
        let w = Word((vcpus as u64) << COUNT_SHIFT | (self.0 & !(COUNT_MASK << COUNT_SHIFT)))
            .with_vm(VmState::Running)
            .with_vcpu(first, VcpuState::OnPending);
        Ok((
            w,
            Started {
                notify: VcpuSet::EMPTY.with(first),
            },
        ))
    }

    /// PSCI CPU_ON of vCPU `target`: `Off` → `OnPending` while the VM runs. On success the
    /// target's core must be notified.
    pub fn cpu_on(self, target: usize) -> Result<Word, Refused> {
        self.check_vcpu(target)?;
        if self.vm() != VmState::Running {
            return Err(Refused::NotRunning);
        }
        match self.vcpu(target) {
            VcpuState::Off => Ok(self.with_vcpu(target, VcpuState::OnPending)),
            VcpuState::OnPending => Err(Refused::OnPending),
            VcpuState::On | VcpuState::StopRequested => Err(Refused::AlreadyOn),
        }
    }

    /// PSCI CPU_OFF of the calling vCPU `me`. When it leaves every vCPU `Off` in a running VM,
    /// the VM ends.
    pub fn cpu_off(self, me: usize) -> Result<(Word, CpuOff), Refused> {
        self.check_caller(me)?;
        if self.vcpu(me) == VcpuState::StopRequested {
            return Ok((self, CpuOff::Stopping));
        }
        let w = self.with_vcpu(me, VcpuState::Off);
        if w.vm() == VmState::Running && w.all_off() {
            Ok((w.with_vm(VmState::Off), CpuOff::Last(Ended)))
        } else {
            Ok((w, CpuOff::Off))
        }
    }

    /// Powers the VM off (SYSTEM_OFF, Shutdown, a stop by the hypervisor), called by its vCPU
    /// `me` or by the hypervisor (`None`). Only a running VM ends: one being reset belongs to
    /// the resetting vCPU (which asked the caller to stop), one that is off has ended.
    pub fn vm_off(self, me: Option<usize>) -> Result<(Word, VmOff), Refused> {
        if let Some(me) = me {
            self.check_caller(me)?;
        }
        match self.vm() {
            VmState::Idle => Err(Refused::NotRunning),
            VmState::Resetting | VmState::Off => Ok((self, VmOff::AlreadyEnding)),
            VmState::Running => {
                let (mut w, notify, _) = self.stop_others(me);
                if let Some(me) = me {
                    w = w.with_vcpu(me, VcpuState::Off);
                }
                Ok((
                    w.with_vm(VmState::Off),
                    VmOff::Ended {
                        ended: Ended,
                        notify,
                    },
                ))
            }
        }
    }

    /// PSCI SYSTEM_RESET by vCPU `me`: `Running` → `Resetting`, the caller `Off`, every other
    /// vCPU stopping or cancelled, the generation counted. Refused (`NotRunning`) when the VM
    /// is already being reset or ended: then the caller is `StopRequested` and leaves.
    pub fn reset_begin(self, me: usize) -> Result<(Word, ResetTicket), Refused> {
        self.check_caller(me)?;
        if self.vm() != VmState::Running {
            return Err(Refused::NotRunning);
        }
        let generation = self.generation().wrapping_add(1);
        let (w, notify, wait) = self.stop_others(Some(me));
        let w = w
            .with_vcpu(me, VcpuState::Off)
            .with_vm(VmState::Resetting)
            .with_generation(generation);
        Ok((
            w,
            ResetTicket {
                generation,
                notify,
                wait,
            },
        ))
    }

    /// Whether the reset of generation `generation` may rewrite the VM's memory: the VM is
    /// still in that reset and every vCPU has left its core.
    pub fn reset_ready(self, generation: u32) -> bool {
        self.vm() == VmState::Resetting && self.generation() == generation && self.all_off()
    }

    /// Ends the reset of generation `generation`: `Resetting` → `Running` with vCPU `first`
    /// `OnPending` (its core must be notified). Only when every vCPU is `Off`.
    pub fn reset_complete(self, generation: u32, first: usize) -> Result<Word, Refused> {
        self.check_vcpu(first)?;
        if self.vm() != VmState::Resetting || self.generation() != generation {
            return Err(Refused::NotResetting);
        }
        if !self.all_off() {
            return Err(Refused::NotReady);
        }
        Ok(self
            .with_vm(VmState::Running)
            .with_vcpu(first, VcpuState::OnPending))
    }

    /// Gives up the reset of generation `generation` (reload failed, a vCPU never left its
    /// core): the VM ends. vCPUs still `StopRequested` stay so until their cores acknowledge.
    pub fn reset_fail(self, generation: u32) -> Result<(Word, Ended), Refused> {
        if self.vm() != VmState::Resetting || self.generation() != generation {
            return Err(Refused::NotResetting);
        }
        Ok((self.with_vm(VmState::Off), Ended))
    }

    /// The core of vCPU `i` loads it: `OnPending` → `On`.
    pub fn core_start(self, i: usize) -> Result<Word, Refused> {
        self.check_vcpu(i)?;
        if self.vcpu(i) != VcpuState::OnPending {
            return Err(Refused::NotPending);
        }
        Ok(self.with_vcpu(i, VcpuState::On))
    }

    /// The core of vCPU `i` has taken it off (after returning its interrupts):
    /// `StopRequested` → `Off`.
    pub fn core_stop(self, i: usize) -> Result<Word, Refused> {
        self.check_vcpu(i)?;
        if self.vcpu(i) != VcpuState::StopRequested {
            return Err(Refused::NotStopping);
        }
        Ok(self.with_vcpu(i, VcpuState::Off))
    }
}

/// The lifecycle word of one VM, shared by every core: each operation is one compare-and-swap
/// loop over the pure transition of [`Word`].
#[derive(Debug)]
pub struct Lifecycle {
    word: AtomicU64,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// A VM not started yet.
    pub const fn new() -> Self {
        Lifecycle {
            word: AtomicU64::new(0),
        }
    }

    /// The current word (acquire: what the last transition published is visible).
    pub fn snapshot(&self) -> Word {
        Word(self.word.load(Ordering::Acquire))
    }

    /// Applies `f` atomically: computes the next word from a snapshot and installs it only if
    /// the word is still that snapshot, else retries from the new value.
    fn update<R>(&self, f: impl Fn(Word) -> Result<(Word, R), Refused>) -> Result<R, Refused> {
        let mut cur = self.snapshot();
        loop {
            let (next, r) = f(cur)?;
            if next == cur {
                return Ok(r);
            }
            match self.word.compare_exchange_weak(
                cur.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(r),
                Err(actual) => cur = Word(actual),
            }
        }
    }

    /// [`Word::boot`], atomically.
    pub fn boot(&self, vcpus: usize, first: usize) -> Result<Started, Refused> {
        self.update(|w| w.boot(vcpus, first))
    }

    /// [`Word::cpu_on`], atomically.
    pub fn cpu_on(&self, target: usize) -> Result<(), Refused> {
        self.update(|w| w.cpu_on(target).map(|n| (n, ())))
    }

    /// [`Word::cpu_off`], atomically.
    pub fn cpu_off(&self, me: usize) -> Result<CpuOff, Refused> {
        self.update(|w| w.cpu_off(me))
    }

    /// [`Word::vm_off`], atomically.
    pub fn vm_off(&self, me: Option<usize>) -> Result<VmOff, Refused> {
        self.update(|w| w.vm_off(me))
    }

    /// [`Word::reset_begin`], atomically.
    pub fn reset_begin(&self, me: usize) -> Result<ResetTicket, Refused> {
        self.update(|w| w.reset_begin(me))
    }

    /// [`Word::reset_complete`], atomically.
    pub fn reset_complete(&self, generation: u32, first: usize) -> Result<(), Refused> {
        self.update(|w| w.reset_complete(generation, first).map(|n| (n, ())))
    }

    /// [`Word::reset_fail`], atomically.
    pub fn reset_fail(&self, generation: u32) -> Result<Ended, Refused> {
        self.update(|w| w.reset_fail(generation))
    }

    /// [`Word::core_start`], atomically.
    pub fn core_start(&self, i: usize) -> Result<(), Refused> {
        self.update(|w| w.core_start(i).map(|n| (n, ())))
    }

    /// [`Word::core_stop`], atomically.
    pub fn core_stop(&self, i: usize) -> Result<(), Refused> {
        self.update(|w| w.core_stop(i).map(|n| (n, ())))
    }
}

/// The number of VMs of the machine not yet ended; the machine powers off when it reaches 0.
/// Only [`Started`] and [`Ended`] tokens change it, so each VM counts on once and off once.
#[derive(Debug, Default)]
pub struct RunningCount(AtomicUsize);

impl RunningCount {
    /// No VM counted.
    pub const fn new() -> Self {
        RunningCount(AtomicUsize::new(0))
    }

    /// Counts a started VM.
    pub fn count_on(&self, started: Started) -> VcpuSet {
        self.0.fetch_add(1, Ordering::AcqRel);
        started.notify
    }

    /// Counts an ended VM off; true when it was the last (the machine powers off).
    pub fn count_off(&self, ended: Ended) -> bool {
        let _ = ended;
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let Some(next) = cur.checked_sub(1) else {
                return false;
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next == 0,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The current count.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let (w, s) = Word::IDLE.boot(3, 0).unwrap();
        assert_eq!(s.notify, VcpuSet::EMPTY.with(0));
        assert_eq!(w.raw(), 1 | 1 << 2 | 3 << 18);
        assert_eq!(Word::from_raw(w.raw()), Ok(w));
        let (w, t) = w.core_start(0).unwrap().reset_begin(0).unwrap();
        assert_eq!(t.generation, 1);
        assert_eq!(w.raw(), 2 | 3 << 18 | 1 << 32);
        assert_eq!(Word::from_raw(1 << 22), Err(Refused::Malformed));
        assert_eq!(
            Word::from_raw(1 | 1 << 18 | 1 << 4),
            Err(Refused::Malformed)
        );
    }
}
