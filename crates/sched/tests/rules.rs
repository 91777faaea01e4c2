//! Unit tests of each server kind's budget rule, the two policies, preemption at release,
//! late calls, wake timers, errors and the trace.

use tessera_sched::*;

use ServerKind::*;

fn core<const N: usize>(policy: Policy, servers: &[ServerParams]) -> CoreScheduler<N> {
    let mut c = CoreScheduler::<N>::new(policy, servers, 0).unwrap();
    for s in 0..servers.len() {
        c.set_online(s, true, 0).unwrap();
    }
    c
}

fn p(kind: ServerKind, budget: u64, period: u64, prio: u32) -> ServerParams {
    ServerParams::new(kind, budget, period, prio)
}

#[test]
fn deferrable_keeps_budget_across_idle() {
    let mut c = core::<4>(Policy::Edf, &[p(Deferrable, 3, 10, 0)]);
    let d = c.schedule(0);
    assert_eq!((d.run, d.timer), (Some(0), Some(3)));
    c.block(0, 1).unwrap();
    let d = c.schedule(1);
    assert_eq!((d.run, d.charged, d.timer), (None, None, None));
    assert_eq!(c.budget(0), Some(2));
    c.wake(0, 5).unwrap();
    let d = c.schedule(5);
    assert_eq!(
        (d.run, d.timer),
        (Some(0), Some(7)),
        "kept 2 ticks of budget"
    );
    let d = c.schedule(7);
    assert_eq!(
        (d.run, d.timer),
        (None, Some(10)),
        "depleted until the release"
    );
    let d = c.schedule(10);
    assert_eq!((d.run, d.timer), (Some(0), Some(13)));
    assert_eq!(c.deadline(0), Some(20));
}

#[test]
fn deferrable_budget_is_lost_at_period_end() {
    let mut c = core::<4>(Policy::Edf, &[p(Deferrable, 3, 10, 0)]);
    c.schedule(0);
    c.block(0, 1).unwrap();
    c.schedule(1);
    c.wake(0, 12).unwrap();
    let d = c.schedule(12);
    // Refilled to Θ = 3 at 10 (not 2 + 3).
    assert_eq!((d.run, d.timer), (Some(0), Some(15)));
}

#[test]
fn periodic_idles_its_budget_away() {
    let mut c = core::<4>(
        Policy::FixedPriority,
        &[p(Periodic, 3, 10, 0), p(Deferrable, 5, 10, 1)],
    );
    c.block(0, 0).unwrap();
    let d = c.schedule(0);
    assert_eq!(d.run, None, "the core idles although server 1 could run");
    assert_eq!(d.charged, Some(0));
    assert_eq!(d.timer, Some(3));
    // The vCPU wakes at 1: it runs on what is left.
    c.wake(0, 1).unwrap();
    let d = c.schedule(1);
    assert_eq!((d.run, d.charged, d.timer), (Some(0), Some(0), Some(3)));
    assert_eq!(c.budget(0), Some(2));
    let d = c.schedule(3);
    assert_eq!((d.run, d.timer), (Some(1), Some(8)));
    assert_eq!(c.budget(0), Some(0));
}

#[test]
fn periodic_idle_budget_gone_at_wake() {
    let mut c = core::<4>(Policy::Edf, &[p(Periodic, 3, 10, 0)]);
    c.block(0, 0).unwrap();
    let d = c.schedule(0);
    assert_eq!((d.run, d.charged, d.timer), (None, Some(0), Some(3)));
    let d = c.schedule(3);
    assert_eq!((d.run, d.charged, d.timer), (None, None, Some(10)));
    c.wake(0, 5).unwrap();
    let d = c.schedule(5);
    assert_eq!(
        (d.run, d.timer),
        (None, Some(10)),
        "no budget left after idling"
    );
}

#[test]
fn polling_drops_budget_on_block() {
    let mut c = core::<4>(Policy::Edf, &[p(Polling, 3, 10, 0)]);
    c.schedule(0);
    c.block(0, 1).unwrap();
    assert_eq!(c.budget(0), Some(0));
    c.wake(0, 2).unwrap();
    let d = c.schedule(2);
    assert_eq!((d.run, d.timer), (None, Some(10)));
    let d = c.schedule(10);
    assert_eq!((d.run, d.timer), (Some(0), Some(13)));
}

#[test]
fn polling_found_idle_at_release_gets_nothing() {
    let mut c = core::<4>(Policy::Edf, &[p(Polling, 3, 10, 0)]);
    c.schedule(0);
    c.block(0, 1).unwrap();
    c.schedule(1);
    c.wake(0, 12).unwrap();
    let d = c.schedule(12);
    assert_eq!((d.run, d.timer), (None, Some(20)));
    assert_eq!(c.budget(0), Some(0));
    // A wake timer due exactly at the release counts as work at the release.
    let mut c = core::<4>(Policy::Edf, &[p(Polling, 3, 10, 0)]);
    c.block(0, 0).unwrap();
    c.set_wake_timer(0, Some(10)).unwrap();
    let d = c.schedule(0);
    assert_eq!(d.timer, Some(10));
    let d = c.schedule(10);
    assert_eq!((d.run, d.woken, d.timer), (Some(0), 1, Some(13)));
}

#[test]
fn sporadic_chunks_replenish_one_period_after_they_began() {
    let mut c = core::<4>(Policy::Edf, &[p(Sporadic, 4, 10, 0)]);
    assert_eq!(c.schedule(0).timer, Some(4));
    c.block(0, 1).unwrap();
    c.schedule(1);
    c.wake(0, 3).unwrap();
    assert_eq!(c.schedule(3).timer, Some(6));
    c.block(0, 5).unwrap();
    c.schedule(5);
    c.wake(0, 6).unwrap();
    let d = c.schedule(6);
    assert_eq!((d.run, d.timer), (Some(0), Some(7)));
    let d = c.schedule(7);
    assert_eq!((d.run, d.timer), (None, Some(10)));
    let mut r = [(0, 0); 8];
    let k = c.replenishments(0, &mut r);
    assert_eq!(&r[..k], &[(10, 1), (13, 2), (16, 1)]);
    let d = c.schedule(10);
    assert_eq!((d.run, d.timer), (Some(0), Some(11)));
    assert_eq!(
        c.deadline(0),
        Some(20),
        "activated by the replenishment at 10"
    );
    let d = c.schedule(11);
    assert_eq!((d.run, d.timer), (None, Some(13)));
    let k = c.replenishments(0, &mut r);
    assert_eq!(&r[..k], &[(13, 2), (16, 1), (20, 1)]);
}

#[test]
fn sporadic_full_list_merges_late() {
    let mut c = core::<4>(Policy::Edf, &[p(Sporadic, 20, 100, 0)]);
    // Ten one-tick chunks at 0, 2, 4, ...: eight entries, the last two merged into the eighth.
    for i in 0..10u64 {
        let d = c.schedule(2 * i);
        assert_eq!(d.run, Some(0));
        c.block(0, 2 * i + 1).unwrap();
        c.schedule(2 * i + 1);
        c.wake(0, 2 * i + 2).unwrap();
    }
    let mut r = [(0, 0); 8];
    let k = c.replenishments(0, &mut r);
    assert_eq!(k, 8);
    assert_eq!(
        &r[..7],
        &[
            (100, 1),
            (102, 1),
            (104, 1),
            (106, 1),
            (108, 1),
            (110, 1),
            (112, 1)
        ]
    );
    assert_eq!(
        r[7],
        (118, 3),
        "entries 114, 116, 118 merged at the latest time"
    );
    assert_eq!(c.budget(0), Some(10));
}

#[test]
fn cbs_wake_rule() {
    let mut c = core::<4>(Policy::Edf, &[p(Cbs, 2, 10, 0)]);
    assert_eq!((c.deadline(0), c.budget(0)), (Some(10), Some(2)));
    c.schedule(0);
    c.block(0, 1).unwrap();
    c.schedule(1);
    // q/(d−t) = 1/7 ≤ 2/10: keep (d, q).
    c.wake(0, 3).unwrap();
    assert_eq!((c.deadline(0), c.budget(0)), (Some(10), Some(1)));
    c.block(0, 3).unwrap();
    // q/(d−t) = 1/4 > 2/10: d = 6 + 10, q = 2.
    c.wake(0, 6).unwrap();
    assert_eq!((c.deadline(0), c.budget(0)), (Some(16), Some(2)));
    // Runs out at 8, throttled until 16, then d = 26, q = 2.
    let d = c.schedule(6);
    assert_eq!((d.run, d.timer), (Some(0), Some(8)));
    let d = c.schedule(8);
    assert_eq!((d.run, d.timer), (None, Some(16)));
    let d = c.schedule(16);
    assert_eq!((d.run, d.timer), (Some(0), Some(18)));
    assert_eq!(c.deadline(0), Some(26));
    // A wake after the deadline resets.
    c.block(0, 17).unwrap();
    c.wake(0, 30).unwrap();
    assert_eq!((c.deadline(0), c.budget(0)), (Some(40), Some(2)));
}

#[test]
fn cbs_throttled_stays_throttled_on_wake() {
    let mut c = core::<4>(Policy::Edf, &[p(Cbs, 2, 10, 0)]);
    c.schedule(0);
    c.block(0, 2).unwrap(); // depleted at 2 exactly
    c.schedule(2);
    c.wake(0, 4).unwrap();
    let d = c.schedule(4);
    assert_eq!((d.run, d.timer), (None, Some(10)));
    assert_eq!(c.deadline(0), Some(10));
}

#[test]
fn edf_and_fixed_priority_pick_differently() {
    let servers = [p(Deferrable, 1, 20, 0), p(Deferrable, 1, 10, 1)];
    let mut e = core::<4>(Policy::Edf, &servers);
    assert_eq!(e.schedule(0).run, Some(1), "deadline 10 before 20");
    let mut f = core::<4>(Policy::FixedPriority, &servers);
    assert_eq!(f.schedule(0).run, Some(0), "priority 0 before 1");
    // Ties go to the lower index.
    let tie = [p(Deferrable, 1, 10, 3), p(Deferrable, 1, 10, 3)];
    assert_eq!(core::<4>(Policy::Edf, &tie).schedule(0).run, Some(0));
    assert_eq!(
        core::<4>(Policy::FixedPriority, &tie).schedule(0).run,
        Some(0)
    );
}

#[test]
fn preemption_at_release() {
    let mut c = core::<4>(
        Policy::FixedPriority,
        &[p(Deferrable, 2, 5, 0), p(Deferrable, 10, 20, 1)],
    );
    assert_eq!(c.schedule(0).run, Some(0));
    let d = c.schedule(2);
    assert_eq!(
        (d.run, d.timer),
        (Some(1), Some(5)),
        "timer at the high server's release"
    );
    let d = c.schedule(5);
    assert_eq!((d.run, d.timer), (Some(0), Some(7)));
    assert_eq!(c.budget(1), Some(7));
    // EDF: server 1 (deadline 20) is preempted at 5 only if server 0's new deadline (10) is
    // earlier, which it is.
    let mut e = core::<4>(
        Policy::Edf,
        &[p(Deferrable, 2, 5, 0), p(Deferrable, 10, 20, 1)],
    );
    e.schedule(0);
    assert_eq!(e.schedule(2).timer, Some(5));
    assert_eq!(e.schedule(5).run, Some(0));
}

#[test]
fn low_priority_release_does_not_arm_timer() {
    let mut c = core::<4>(
        Policy::FixedPriority,
        &[p(Deferrable, 10, 20, 0), p(Deferrable, 1, 3, 1)],
    );
    c.schedule(0);
    c.schedule(0);
    let d = c.schedule(0);
    assert_eq!(
        (d.run, d.timer),
        (Some(0), Some(10)),
        "server 1's releases at 3, 6, 9 cannot preempt"
    );
}

#[test]
fn late_schedule_catches_up_without_drift() {
    let mut c = core::<4>(Policy::Edf, &[p(Deferrable, 2, 10, 0)]);
    assert_eq!(c.schedule(0).timer, Some(2));
    // The timer interrupt is taken 55 ticks late: released at 50 (5 periods), charged 50..57.
    let d = c.schedule(57);
    assert_eq!((d.run, d.timer), (None, Some(60)));
    assert_eq!((c.deadline(0), c.budget(0)), (Some(60), Some(0)));
    let rel: Vec<_> = c
        .drain_trace()
        .filter(|e| e.kind == TraceKind::Release)
        .map(|e| (e.time, e.arg))
        .collect();
    assert_eq!(rel, [(50, 5)]);
    // Idle core, long blocked vCPU.
    let mut c = core::<4>(Policy::Edf, &[p(Deferrable, 2, 10, 0)]);
    c.block(0, 0).unwrap();
    c.schedule(0);
    c.wake(0, 1_000_005).unwrap();
    let d = c.schedule(1_000_005);
    assert_eq!((d.run, d.timer), (Some(0), Some(1_000_007)));
    assert_eq!(c.deadline(0), Some(1_000_010));
}

#[test]
fn late_cbs_and_sporadic_stay_sane() {
    let mut c = core::<4>(Policy::Edf, &[p(Cbs, 3, 10, 0), p(Sporadic, 3, 10, 1)]);
    c.schedule(0);
    let d = c.schedule(1_000);
    assert!(d.timer.unwrap() > 1_000);
    assert!(c.deadline(0).unwrap() > 1_000);
    let mut c = core::<4>(Policy::Edf, &[p(Sporadic, 3, 10, 0)]);
    c.schedule(0);
    let d = c.schedule(1_000);
    assert_eq!(d.run, None);
    let mut r = [(0, 0); 8];
    let k = c.replenishments(0, &mut r);
    assert_eq!(&r[..k], &[(1_007, 3)]);
    assert_eq!(c.schedule(1_007).run, Some(0));
}

#[test]
fn wake_timer_wakes_and_reports() {
    let mut c = core::<4>(
        Policy::Edf,
        &[p(Deferrable, 2, 10, 0), p(Deferrable, 2, 10, 1)],
    );
    c.set_wake_timer(1, Some(7)).unwrap();
    c.block(1, 0).unwrap();
    let d = c.schedule(0);
    assert_eq!((d.run, d.timer), (Some(0), Some(2)));
    let d = c.schedule(2);
    assert_eq!((d.run, d.timer, d.woken), (None, Some(7), 0));
    let d = c.schedule(7);
    assert_eq!((d.run, d.timer, d.woken), (Some(1), Some(9), 0b10));
    assert_eq!(c.wake_timer(1), None);
    // Cancelled by wake; dropped if it expires while runnable.
    c.set_wake_timer(0, Some(8)).unwrap();
    let d = c.schedule(9);
    assert_eq!(d.woken, 0);
    assert_eq!(c.wake_timer(0), None);
}

#[test]
fn offline_servers_never_run() {
    let mut c = CoreScheduler::<4>::new(Policy::Edf, &[p(Deferrable, 2, 10, 0)], 0).unwrap();
    let d = c.schedule(0);
    assert_eq!((d.run, d.timer), (None, None));
    c.wake(0, 1).unwrap();
    assert_eq!(
        c.schedule(1).run,
        None,
        "wake of an offline vCPU is ignored"
    );
    c.set_online(0, true, 2).unwrap();
    assert_eq!(c.schedule(2).run, Some(0));
    c.set_online(0, false, 3).unwrap();
    assert_eq!(c.schedule(3).run, None);
}

#[test]
fn errors_not_panics() {
    type C = CoreScheduler<2>;
    let ok = p(Deferrable, 1, 2, 0);
    assert_eq!(
        C::new(Policy::Edf, &[ok, ok, ok], 0).err(),
        Some(SchedError::TooManyServers)
    );
    assert_eq!(
        C::new(Policy::Edf, &[ok, p(Deferrable, 0, 0, 0)], 0).err(),
        Some(SchedError::ZeroPeriod { server: 1 })
    );
    assert_eq!(
        C::new(Policy::Edf, &[p(Cbs, 0, 5, 0)], 0).err(),
        Some(SchedError::ZeroBudget { server: 0 })
    );
    assert_eq!(
        C::new(Policy::Edf, &[p(Sporadic, 6, 5, 0)], 0).err(),
        Some(SchedError::BudgetExceedsPeriod { server: 0 })
    );
    assert_eq!(
        CoreScheduler::<40>::new(Policy::Edf, &[ok; 33], 0).err(),
        Some(SchedError::TooManyServers)
    );
    let mut c = C::new(Policy::Edf, &[ok], 0).unwrap();
    assert_eq!(c.wake(1, 0), Err(SchedError::NoSuchServer));
    assert_eq!(c.block(7, 0), Err(SchedError::NoSuchServer));
    assert_eq!(
        c.set_online(usize::MAX, true, 0),
        Err(SchedError::NoSuchServer)
    );
    assert_eq!(c.set_wake_timer(2, Some(1)), Err(SchedError::NoSuchServer));
    assert_eq!(c.budget(1), None);
    // Time going backwards is clamped; huge times saturate.
    c.set_online(0, true, 100).unwrap();
    assert_eq!(c.schedule(50).run, Some(0));
    assert_eq!(c.now(), 100);
    let d = c.schedule(u64::MAX - 1);
    assert!(d.timer.is_none_or(|t| t > u64::MAX - 1) || d.timer == Some(u64::MAX));
    let empty = C::new(Policy::FixedPriority, &[], 0).unwrap();
    assert!(empty.is_empty());
}

#[test]
fn trace_records_the_story() {
    let mut c = core::<4>(Policy::Edf, &[p(Deferrable, 2, 10, 0)]);
    c.schedule(0);
    c.trace(1, TraceKind::Inject, 0, 27);
    c.schedule(2);
    c.schedule(10);
    let kinds: Vec<_> = c
        .drain_trace()
        .map(|e| (e.time, e.kind, e.server, e.arg))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, TraceKind::Online, 0, 0),
            (0, TraceKind::Wake, 0, 0),
            (0, TraceKind::Switch, 0, 0),
            (1, TraceKind::Inject, 0, 27),
            (2, TraceKind::Deplete, 0, 0),
            (2, TraceKind::Idle, TraceEvent::NO_SERVER, 0),
            (10, TraceKind::Release, 0, 1),
            (10, TraceKind::Switch, 0, 0),
        ]
    );
    let mut quiet = CoreScheduler::<4, 0>::new(Policy::Edf, &[p(Deferrable, 2, 10, 0)], 0).unwrap();
    quiet.set_online(0, true, 0).unwrap();
    quiet.schedule(0);
    assert!(quiet.trace_ring().is_empty());
    c.trace_ring_mut().set_enabled(false);
    c.schedule(12);
    assert!(c.trace_ring().is_empty());
}

#[test]
fn trace_ring_keep_first_drops_new_events_when_full() {
    use tessera_sched::{TraceEvent, TraceKind, TraceRing};
    let mut r = TraceRing::<2>::new();
    r.set_keep_first(true);
    for t in 0..5 {
        r.push(TraceEvent {
            time: t,
            kind: TraceKind::Wake,
            server: 0,
            arg: 0,
        });
    }
    let times: std::vec::Vec<u64> = r.iter().map(|e| e.time).collect();
    assert_eq!(times, [0, 1]);
    assert_eq!(r.dropped(), 3);
}

#[test]
fn reset_in_place_equals_new() {
    use tessera_sched::{CoreScheduler, Policy, ServerKind, ServerParams};
    let params = [
        ServerParams::new(ServerKind::Deferrable, 2, 10, 0),
        ServerParams::new(ServerKind::Sporadic, 3, 12, 1),
    ];
    let mut a = CoreScheduler::<4, 8>::EMPTY;
    assert!(a.schedule(5).run.is_none());
    a.reset(Policy::FixedPriority, &params, 100).unwrap();
    let mut b = CoreScheduler::<4, 8>::new(Policy::FixedPriority, &params, 100).unwrap();
    for s in 0..2 {
        a.set_online(s, true, 100).unwrap();
        b.set_online(s, true, 100).unwrap();
        a.wake(s, 100).unwrap();
        b.wake(s, 100).unwrap();
    }
    for now in [100, 101, 102, 105, 110, 113, 130] {
        assert_eq!(a.schedule(now), b.schedule(now));
    }
    let bad = [ServerParams::new(ServerKind::Polling, 0, 10, 0)];
    assert!(a.reset(Policy::Edf, &bad, 0).is_err());
}
