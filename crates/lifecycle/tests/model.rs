//! Exhaustive model check: every interleaving of the vCPUs of one VM (2 or 3) issuing CPU_ON,
//! CPU_OFF, SYSTEM_OFF and SYSTEM_RESET, the hypervisor stopping the VM, the reset owner's
//! steps (wait, rewrite memory, complete or give up), the winners' count-off, and the cores'
//! start and stop acknowledgements — explored breadth-first over distinct states up to a bound
//! on the number of guest calls, using the crate's pure transitions on plain words. The machine
//! also runs one bystander VM, so its running count starts at 2.
//!
//! Every reachable state is checked against the invariants, every step against the transition
//! rules, and from every state the cores and the reset owner alone must reach a quiet state.
//! Deliberately broken protocols (the old lifecycle's races) must be caught.

use std::collections::{HashSet, VecDeque};

use tessera_lifecycle::{CpuOff, VcpuState, VmOff, VmState, Word};

/// What one actor (a vCPU's handler, or the hypervisor) is in the middle of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Between calls.
    Ready,
    /// Won the VM's end: still has to count it off the machine.
    CountOff,
    /// Owns reset `g` and waits for the other vCPUs to leave their cores.
    ResetWait(u32),
    /// Owns reset `g` and is rewriting the VM's memory.
    ResetWipe(u32),
}

const ACTORS: usize = 4;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct St {
    w: Word,
    /// The machine's running count (the bystander VM and this one at the start).
    count: usize,
    /// How many operations returned `Ended`.
    ended: u8,
    /// Actors 0..n are the vCPUs, actor n is the hypervisor.
    phase: [Phase; ACTORS],
    /// Guest calls each actor may still make.
    budget: [u8; ACTORS],
}

/// The protocol under test, reduced to what the model needs (so broken variants can be
/// expressed on raw words).
struct Proto {
    cpu_on: fn(Word, usize) -> Option<Word>,
    cpu_off: fn(Word, usize) -> Option<(Word, bool)>,
    vm_off: fn(Word, Option<usize>) -> Option<(Word, bool)>,
    reset_begin: fn(Word, usize) -> Option<(Word, u32)>,
    reset_ready: fn(Word, u32) -> bool,
    reset_complete: fn(Word, u32) -> Option<Word>,
    reset_fail: fn(Word, u32) -> Option<Word>,
}

const REAL: Proto = Proto {
    cpu_on: |w, t| w.cpu_on(t).ok(),
    cpu_off: |w, me| match w.cpu_off(me) {
        Ok((n, CpuOff::Last(_))) => Some((n, true)),
        Ok((n, _)) => Some((n, false)),
        Err(_) => None,
    },
    vm_off: |w, me| match w.vm_off(me) {
        Ok((n, VmOff::Ended { .. })) => Some((n, true)),
        Ok((n, VmOff::AlreadyEnding)) => Some((n, false)),
        Err(_) => None,
    },
    reset_begin: |w, me| w.reset_begin(me).ok().map(|(n, t)| (n, t.generation)),
    reset_ready: |w, g| w.reset_ready(g),
    reset_complete: |w, g| w.reset_complete(g, 0).ok(),
    reset_fail: |w, g| w.reset_fail(g).ok().map(|(n, _)| n),
};

#[derive(Debug)]
struct Stats {
    states: usize,
    transitions: usize,
    max_depth: usize,
}

fn on_core(w: Word, i: usize) -> bool {
    w.vcpu(i).on_core()
}

/// Every state reachable from `s` in one step, with a label.
fn successors(p: &Proto, s: &St, n: usize, out: &mut Vec<(String, St)>) {
    let w = s.w;
    for a in 0..=n {
        let vcpu = (a < n).then_some(a);
        match s.phase[a] {
            Phase::Ready => {
                if s.budget[a] == 0 || vcpu.is_some_and(|i| !on_core(w, i)) {
                    continue;
                }
                let mut t = s.clone();
                t.budget[a] -= 1;
                match vcpu {
                    None => {
                        if let Some((nw, ended)) = (p.vm_off)(w, None) {
                            let mut t = t.clone();
                            t.w = nw;
                            if ended {
                                t.ended += 1;
                                t.phase[a] = Phase::CountOff;
                            }
                            out.push(("hyp stop".into(), t));
                        }
                    }
                    Some(i) => {
                        for j in (0..n).filter(|&j| j != i) {
                            if let Some(nw) = (p.cpu_on)(w, j) {
                                let mut t = t.clone();
                                t.w = nw;
                                out.push((format!("v{i} cpu_on {j}"), t));
                            }
                        }
                        if let Some((nw, ended)) = (p.cpu_off)(w, i) {
                            let mut t = t.clone();
                            t.w = nw;
                            if ended {
                                t.ended += 1;
                                t.phase[a] = Phase::CountOff;
                            }
                            out.push((format!("v{i} cpu_off"), t));
                        }
                        if let Some((nw, ended)) = (p.vm_off)(w, Some(i)) {
                            let mut t = t.clone();
                            t.w = nw;
                            if ended {
                                t.ended += 1;
                                t.phase[a] = Phase::CountOff;
                            }
                            out.push((format!("v{i} system_off"), t));
                        }
                        if let Some((nw, g)) = (p.reset_begin)(w, i) {
                            let mut t = t.clone();
                            t.w = nw;
                            t.phase[a] = Phase::ResetWait(g);
                            out.push((format!("v{i} reset_begin"), t));
                        }
                    }
                }
            }
            Phase::CountOff => {
                let mut t = s.clone();
                t.count = t.count.wrapping_sub(1);
                t.phase[a] = Phase::Ready;
                out.push((format!("a{a} count_off"), t));
            }
            Phase::ResetWait(g) => {
                if (p.reset_ready)(w, g) {
                    let mut t = s.clone();
                    t.phase[a] = Phase::ResetWipe(g);
                    out.push((format!("a{a} reset wipe"), t));
                }
                // Giving up (the wait's time limit) is allowed at any moment.
                if let Some(nw) = (p.reset_fail)(w, g) {
                    let mut t = s.clone();
                    t.w = nw;
                    t.ended += 1;
                    t.phase[a] = Phase::CountOff;
                    out.push((format!("a{a} reset give up"), t));
                }
            }
            Phase::ResetWipe(g) => {
                if let Some(nw) = (p.reset_complete)(w, g) {
                    let mut t = s.clone();
                    t.w = nw;
                    t.phase[a] = Phase::Ready;
                    out.push((format!("a{a} reset complete"), t));
                }
                if let Some(nw) = (p.reset_fail)(w, g) {
                    let mut t = s.clone();
                    t.w = nw;
                    t.ended += 1;
                    t.phase[a] = Phase::CountOff;
                    out.push((format!("a{a} reset reload failed"), t));
                }
            }
        }
    }
    // The cores: start pending vCPUs, acknowledge stop requests.
    for i in 0..n {
        if let Ok(nw) = w.core_start(i) {
            let mut t = s.clone();
            t.w = nw;
            out.push((format!("core{i} start"), t));
        }
        if let Ok(nw) = w.core_stop(i) {
            let mut t = s.clone();
            t.w = nw;
            out.push((format!("core{i} stop"), t));
        }
    }
}

/// The invariants of one state.
fn check(s: &St, n: usize) -> Result<(), String> {
    let w = s.w;
    if Word::from_raw(w.raw()) != Ok(w) {
        return Err("malformed word".into());
    }
    if s.ended > 1 {
        return Err("the VM ended twice".into());
    }
    let pending = s.phase[..=n]
        .iter()
        .filter(|p| **p == Phase::CountOff)
        .count();
    if s.count == 0 || s.count > 2 {
        return Err(format!(
            "running count {} (the bystander still runs)",
            s.count
        ));
    }
    if w.vm() != VmState::Off && s.count != 2 {
        return Err(format!("VM {:?} but counted off", w.vm()));
    }
    if w.vm() == VmState::Off && pending == 0 && s.count != 1 {
        return Err("VM off but still counted".into());
    }
    let states: Vec<VcpuState> = (0..n).map(|i| w.vcpu(i)).collect();
    let owners: Vec<u32> = s.phase[..=n]
        .iter()
        .filter_map(|p| match p {
            Phase::ResetWait(g) | Phase::ResetWipe(g) => Some(*g),
            _ => None,
        })
        .collect();
    match w.vm() {
        VmState::Idle => return Err("idle after boot".into()),
        VmState::Off => {
            if states
                .iter()
                .any(|v| matches!(v, VcpuState::On | VcpuState::OnPending))
            {
                return Err(format!("zombie vCPU in an off VM: {states:?}"));
            }
        }
        VmState::Resetting => {
            if states
                .iter()
                .any(|v| matches!(v, VcpuState::On | VcpuState::OnPending))
            {
                return Err(format!(
                    "vCPU running or starting during a reset: {states:?}"
                ));
            }
            if owners.len() != 1 || owners[0] != w.generation() {
                return Err(format!(
                    "reset owners {owners:?}, generation {}",
                    w.generation()
                ));
            }
        }
        VmState::Running => {
            if states.contains(&VcpuState::StopRequested) {
                return Err(format!("stop request in a running VM: {states:?}"));
            }
        }
    }
    if w.vm() != VmState::Resetting && !owners.is_empty() {
        return Err(format!("reset owner {owners:?} of a {:?} VM", w.vm()));
    }
    for p in &s.phase[..=n] {
        if let Phase::ResetWipe(_) = p {
            if w.vm() != VmState::Resetting || !w.all_off() {
                return Err(format!(
                    "memory rewritten with vCPUs {states:?}, VM {:?}",
                    w.vm()
                ));
            }
        }
    }
    Ok(())
}

/// The rules of one step.
fn check_step(a: &St, b: &St, n: usize) -> Result<(), String> {
    if a.w.vm() == VmState::Off && b.w.vm() != VmState::Off {
        return Err("an off VM came back".into());
    }
    if b.w.generation() < a.w.generation() {
        return Err("reset generation went back".into());
    }
    for i in 0..n {
        let (x, y) = (a.w.vcpu(i), b.w.vcpu(i));
        if y == VcpuState::On && x != VcpuState::On && x != VcpuState::OnPending {
            return Err(format!("vCPU {i} went {x:?} -> On"));
        }
    }
    Ok(())
}

/// From `s`, the cores and the actors in the middle of something (no new guest calls) must
/// reach a state with no stop request outstanding, no reset in progress and every VM end
/// counted.
fn check_quiesces(p: &Proto, s: &St, n: usize) -> Result<(), String> {
    let mut s = s.clone();
    for _ in 0..64 {
        let quiet = (0..n).all(|i| s.w.vcpu(i) != VcpuState::StopRequested)
            && s.phase[..=n].iter().all(|p| *p == Phase::Ready);
        if quiet {
            return Ok(());
        }
        let mut next = Vec::new();
        let mut frozen = s.clone();
        frozen.budget = [0; ACTORS];
        successors(p, &frozen, n, &mut next);
        // Prefer stop acknowledgements, then anything that is not giving up a reset.
        let pick = next
            .iter()
            .find(|(l, _)| l.ends_with(" stop"))
            .or_else(|| {
                next.iter()
                    .find(|(l, _)| !l.contains("give up") && !l.contains("failed"))
            })
            .or(next.first());
        match pick {
            Some((_, t)) => {
                s = t.clone();
                s.budget = [0; ACTORS];
            }
            None => return Err(format!("stuck: {s:?}")),
        }
    }
    Err(format!("no quiet state reached from {s:?}"))
}

fn initial(n: usize, all_on: bool, budget: u8) -> St {
    let (mut w, _started) = Word::IDLE.boot(n, 0).expect("boot");
    if all_on {
        for i in 1..n {
            w = w.cpu_on(i).expect("cpu_on");
        }
        for i in 0..n {
            w = w.core_start(i).expect("start");
        }
    }
    let mut b = [0; ACTORS];
    b[..n].fill(budget);
    b[n] = 1;
    St {
        w,
        count: 2,
        ended: 0,
        phase: [Phase::Ready; ACTORS],
        budget: b,
    }
}

fn explore(p: &Proto, n: usize, budget: u8) -> Result<Stats, String> {
    let mut seen: HashSet<St> = HashSet::new();
    let mut queue: VecDeque<(St, usize)> = VecDeque::new();
    for all_on in [false, true] {
        let s = initial(n, all_on, budget);
        if seen.insert(s.clone()) {
            queue.push_back((s, 0));
        }
    }
    let mut stats = Stats {
        states: 0,
        transitions: 0,
        max_depth: 0,
    };
    let mut next = Vec::new();
    while let Some((s, depth)) = queue.pop_front() {
        stats.states += 1;
        stats.max_depth = stats.max_depth.max(depth);
        check(&s, n).map_err(|e| format!("{e}\n  in {s:?}"))?;
        check_quiesces(p, &s, n)?;
        next.clear();
        successors(p, &s, n, &mut next);
        for (label, t) in next.drain(..) {
            stats.transitions += 1;
            check_step(&s, &t, n).map_err(|e| format!("{e}\n  step {label} from {s:?}"))?;
            if seen.insert(t.clone()) {
                queue.push_back((t, depth + 1));
            }
        }
    }
    Ok(stats)
}

#[test]
fn two_vcpus_every_interleaving() {
    let st = explore(&REAL, 2, 10).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("2 vCPUs, 10 calls each + hypervisor stop: {st:?}");
    assert!(st.states > 1_000, "{st:?}");
}

#[test]
fn three_vcpus_every_interleaving() {
    let st = explore(&REAL, 3, 6).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("3 vCPUs, 6 calls each + hypervisor stop: {st:?}");
    assert!(st.states > 10_000, "{st:?}");
}

// --- Broken protocols: the checker must find their races. ---

fn raw_vm(w: Word, bits: u64) -> Word {
    Word::from_raw(w.raw() & !0b11 | bits).expect("word")
}

fn raw_vcpu(w: Word, i: usize, bits: u64) -> Word {
    let sh = 2 + 2 * i as u32;
    Word::from_raw(w.raw() & !(0b11 << sh) | bits << sh).expect("word")
}

fn expect_caught(p: &Proto, what: &str) {
    match explore(p, 2, 3) {
        Ok(st) => panic!("{what}: not caught ({st:?})"),
        Err(e) => eprintln!("{what}: caught: {}", e.lines().next().unwrap_or("")),
    }
}

/// The old lifecycle: SYSTEM_OFF also ends a VM being reset, and the reset then marks the VM
/// running regardless.
#[test]
fn catches_off_during_reset() {
    let p = Proto {
        vm_off: |w, me| match w.vm() {
            VmState::Resetting => Some((raw_vm(w, 3), true)),
            _ => (REAL.vm_off)(w, me),
        },
        reset_ready: |w, _| w.all_off(),
        reset_complete: |w, _| w.all_off().then(|| raw_vcpu(raw_vm(w, 1), 0, 1)),
        ..REAL
    };
    expect_caught(&p, "off during reset");
}

/// CPU_ON that does not look at the VM's state (a zombie vCPU through a reset or power-off).
#[test]
fn catches_cpu_on_during_reset() {
    let p = Proto {
        cpu_on: |w, t| (w.vcpu(t) == VcpuState::Off).then(|| raw_vcpu(w, t, 1)),
        ..REAL
    };
    expect_caught(&p, "cpu_on during reset");
}

/// A reset that stops waiting and rewrites memory under a vCPU still on its core.
#[test]
fn catches_reset_not_waiting() {
    let p = Proto {
        reset_ready: |w, _| w.vm() == VmState::Resetting,
        reset_complete: |w, _| (w.vm() == VmState::Resetting).then(|| raw_vcpu(raw_vm(w, 1), 0, 1)),
        ..REAL
    };
    expect_caught(&p, "reset without waiting");
}

/// The old CPU_OFF: mark the caller off, then end the VM if all are off, as two steps (two
/// vCPUs switching off together both end it).
#[test]
fn catches_split_cpu_off() {
    // Modelled as: CPU_OFF ends the VM whenever every *other* vCPU is off, whatever the VM
    // state, without checking that the caller is the one that made it so.
    let p = Proto {
        cpu_off: |w, me| {
            let others_off = (0..w.vcpus()).all(|i| i == me || w.vcpu(i) == VcpuState::Off);
            let nw = raw_vcpu(w, me, 0);
            if others_off {
                Some((raw_vm(nw, 3), true))
            } else {
                Some((nw, false))
            }
        },
        ..REAL
    };
    expect_caught(&p, "split cpu_off");
}
