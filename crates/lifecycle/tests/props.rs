//! Property tests: random call sequences over VMs of 1–8 vCPUs, applied both to the pure
//! [`Word`] transitions and to the atomic [`Lifecycle`], which must agree; the invariants hold
//! after every call.

use proptest::prelude::*;
use tessera_lifecycle::{
    CpuOff, Lifecycle, Refused, RunningCount, VcpuState, VmOff, VmState, Word, MAX_VCPUS,
};

#[derive(Clone, Copy, Debug)]
enum Op {
    CpuOn(usize, usize),
    CpuOff(usize),
    VmOff(Option<usize>),
    ResetBegin(usize),
    ResetComplete,
    ResetFail,
    CoreStart(usize),
    CoreStop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let v = 0..MAX_VCPUS + 1;
    prop_oneof![
        3 => (v.clone(), v.clone()).prop_map(|(a, b)| Op::CpuOn(a, b)),
        1 => v.clone().prop_map(Op::CpuOff),
        1 => proptest::option::weighted(0.8, v.clone()).prop_map(Op::VmOff),
        1 => v.clone().prop_map(Op::ResetBegin),
        2 => Just(Op::ResetComplete),
        1 => Just(Op::ResetFail),
        3 => v.clone().prop_map(Op::CoreStart),
        3 => v.prop_map(Op::CoreStop),
    ]
}

fn invariants(w: Word) -> Result<(), TestCaseError> {
    prop_assert_eq!(Word::from_raw(w.raw()), Ok(w));
    let n = w.vcpus();
    let s: Vec<VcpuState> = (0..n).map(|i| w.vcpu(i)).collect();
    match w.vm() {
        VmState::Off | VmState::Resetting => prop_assert!(
            !s.iter()
                .any(|v| matches!(v, VcpuState::On | VcpuState::OnPending)),
            "{:?} with {:?}",
            w.vm(),
            s
        ),
        VmState::Running => prop_assert!(!s.contains(&VcpuState::StopRequested), "{:?}", s),
        VmState::Idle => prop_assert!(false, "idle after boot"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_sequences(n in 1..=MAX_VCPUS, ops in proptest::collection::vec(op(), 1..80)) {
        let (mut w, started) = Word::IDLE.boot(n, 0).unwrap();
        let atomic = Lifecycle::new();
        let count = RunningCount::new();
        prop_assert_eq!(count.count_on(atomic.boot(n, 0).unwrap()), started.notify);
        // A bystander VM keeps the machine running.
        let _ = count.count_on(Lifecycle::new().boot(1, 0).unwrap());
        let mut ended = 0;
        let mut resets = 0u32;
        let mut ticket = None;
        for op in ops {
            let before = w;
            // The atomic form must give the same answer as the pure one.
            let (next, atomic_ok, done) = match op {
                Op::CpuOn(me, t) => {
                    // Only a vCPU on its core calls.
                    if !w.vcpu(me).on_core() { continue; }
                    let r = w.cpu_on(t);
                    (r.unwrap_or(w), atomic.cpu_on(t).is_ok() == r.is_ok(), false)
                }
                Op::CpuOff(me) => {
                    let r = w.cpu_off(me);
                    let a = atomic.cpu_off(me);
                    let last = matches!(r, Ok((_, CpuOff::Last(_))));
                    let same = match (&r, &a) {
                        (Ok((_, x)), Ok(y)) => x == y,
                        (Err(x), Err(y)) => x == y,
                        _ => false,
                    };
                    if let Ok(CpuOff::Last(e)) = a { prop_assert!(!count.count_off(e)); }
                    (r.map(|(n, _)| n).unwrap_or(w), same, last)
                }
                Op::VmOff(me) => {
                    let r = w.vm_off(me);
                    let a = atomic.vm_off(me);
                    let won = matches!(r, Ok((_, VmOff::Ended { .. })));
                    let same = match (&r, &a) {
                        (Ok((_, x)), Ok(y)) => x == y,
                        (Err(x), Err(y)) => x == y,
                        _ => false,
                    };
                    if let Ok(VmOff::Ended { ended, .. }) = a { prop_assert!(!count.count_off(ended)); }
                    (r.map(|(n, _)| n).unwrap_or(w), same, won)
                }
                Op::ResetBegin(me) => {
                    let r = w.reset_begin(me);
                    let a = atomic.reset_begin(me);
                    if let Ok((_, t)) = r {
                        resets += 1;
                        prop_assert_eq!(t.generation, resets);
                        prop_assert!(!t.wait.contains(me) && !t.notify.contains(me));
                        ticket = Some(t.generation);
                    }
                    (r.map(|(n, _)| n).unwrap_or(w), a.ok() == r.ok().map(|(_, t)| t), false)
                }
                Op::ResetComplete => {
                    let g = ticket.unwrap_or(0);
                    let r = w.reset_complete(g, 0);
                    if r.is_ok() {
                        prop_assert!(w.all_off(), "reset completed with {:?}", w);
                        prop_assert!(w.reset_ready(g));
                    } else if w.vm() == VmState::Resetting && w.generation() == g {
                        prop_assert_eq!(r, Err(Refused::NotReady));
                    }
                    (r.unwrap_or(w), atomic.reset_complete(g, 0) == r.map(|_| ()), false)
                }
                Op::ResetFail => {
                    let g = ticket.unwrap_or(0);
                    let r = w.reset_fail(g);
                    let a = atomic.reset_fail(g);
                    let won = r.is_ok();
                    let same = a.is_ok() == r.is_ok();
                    if let Ok(e) = a { prop_assert!(!count.count_off(e)); }
                    (r.map(|(n, _)| n).unwrap_or(w), same, won)
                }
                Op::CoreStart(i) => {
                    let r = w.core_start(i);
                    (r.unwrap_or(w), atomic.core_start(i) == r.map(|_| ()), false)
                }
                Op::CoreStop(i) => {
                    let r = w.core_stop(i);
                    (r.unwrap_or(w), atomic.core_stop(i) == r.map(|_| ()), false)
                }
            };
            prop_assert!(atomic_ok, "atomic and pure disagree on {:?} from {:?}", op, before);
            w = next;
            prop_assert_eq!(atomic.snapshot(), w);
            if done { ended += 1; }
            prop_assert!(ended <= 1, "ended twice");
            prop_assert_eq!(ended == 1, w.vm() == VmState::Off, "ended {} but {:?}", ended, w.vm());
            prop_assert_eq!(count.get(), 2 - ended);
            if before.vm() == VmState::Off {
                prop_assert_eq!(w.vm(), VmState::Off);
            }
            prop_assert_eq!(w.generation(), resets);
            invariants(w)?;
        }
    }

    #[test]
    fn from_raw_accepts_only_reachable_shapes(raw in any::<u64>()) {
        if let Ok(w) = Word::from_raw(raw) {
            prop_assert_eq!(w.raw(), raw);
            prop_assert!(w.vcpus() <= MAX_VCPUS);
            for i in w.vcpus()..MAX_VCPUS {
                prop_assert_eq!(w.vcpu(i), VcpuState::Off);
            }
        }
    }
}

#[test]
fn boot_only_once_and_counts() {
    let l = Lifecycle::new();
    let c = RunningCount::new();
    let _ = c.count_on(l.boot(2, 0).unwrap());
    assert_eq!(l.boot(2, 0), Err(Refused::AlreadyStarted));
    assert_eq!(Word::IDLE.boot(9, 0).err(), Some(Refused::NoSuchVcpu));
    assert_eq!(Word::IDLE.boot(2, 2).err(), Some(Refused::NoSuchVcpu));
    assert_eq!(l.cpu_on(1), Ok(()));
    assert_eq!(l.cpu_on(1), Err(Refused::OnPending));
    l.core_start(0).unwrap();
    l.core_start(1).unwrap();
    assert_eq!(l.cpu_on(1), Err(Refused::AlreadyOn));
    let t = l.reset_begin(1).unwrap();
    assert_eq!(t.wait.bits(), 0b01);
    assert_eq!(l.cpu_on(1), Err(Refused::NotRunning));
    assert_eq!(l.vm_off(Some(0)).unwrap(), VmOff::AlreadyEnding);
    assert_eq!(l.reset_complete(t.generation, 0), Err(Refused::NotReady));
    l.core_stop(0).unwrap();
    assert_eq!(
        l.reset_complete(t.generation + 1, 0),
        Err(Refused::NotResetting)
    );
    l.reset_complete(t.generation, 0).unwrap();
    assert_eq!(l.snapshot().vcpu(0), VcpuState::OnPending);
    l.core_start(0).unwrap();
    match l.vm_off(Some(0)).unwrap() {
        VmOff::Ended { ended, notify } => {
            assert!(notify.is_empty());
            assert!(c.count_off(ended));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.get(), 0);
}
