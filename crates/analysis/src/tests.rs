//! Textbook examples with hand-computed results.

use crate::*;

fn t(c: u64, p: u64, prio: u32) -> Task {
    Task::implicit(c, p, prio)
}

#[test]
fn sbf_values_by_hand() {
    // Π = 5, Θ = 2: b = 3, blackout 6.
    let r = PeriodicResource::new(5, 2).unwrap();
    let expected = [0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 3, 4, 4, 4, 4, 5, 6];
    for (time, &want) in expected.iter().enumerate() {
        assert_eq!(r.sbf(time as u64), want, "sbf({time})");
    }
    assert_eq!(r.blackout(), 6);
    // Full budget: sbf(t) = t; zero budget: nothing.
    assert_eq!(sbf(7, 7, 123), Some(123));
    assert_eq!(sbf(7, 0, 1000), Some(0));
    assert_eq!(sbf(0, 0, 5), None);
    assert_eq!(sbf(4, 5, 5), None);
    // No overflow at the top of the range.
    assert_eq!(sbf(3, 2, u64::MAX), Some(2 * ((u64::MAX - 1) / 3) + 1));
}

#[test]
fn rta_burns_wellings_example() {
    // T = (7, 12, 20), C = (3, 3, 5), rate-monotonic: R = (3, 6, 20).
    let set = [t(3, 7, 1), t(3, 12, 2), t(5, 20, 3)];
    let rep = core_fp(&set, &Overheads::NONE).unwrap();
    assert_eq!(rep.response_times(), &[3, 6, 20]);
    // U = 3/7 + 1/4 + 1/4 = 0.928571..., rounded up.
    assert_eq!(rep.utilisation.parts_per_million(), 928_572);
    // One more µs of overhead on each activation breaks the last task.
    let err = core_fp(
        &set,
        &Overheads {
            per_activation: 1,
            blocking: 0,
        },
    )
    .unwrap_err();
    assert!(matches!(
        err,
        Error::Unschedulable(Unschedulable::ResponseTimeExceedsDeadline { task: 2, .. })
    ));
}

#[test]
fn rta_liu_layland_and_blocking() {
    // U = 0.25 + 0.333 + 0.25 = 0.833 > 3(2^{1/3} − 1) = 0.78, yet RTA accepts: R = 1, 3, 10.
    let set = [t(1, 4, 0), t(2, 6, 1), t(3, 12, 2)];
    let rep = core_fp(&set, &Overheads::NONE).unwrap();
    assert_eq!(rep.response_times(), &[1, 3, 10]);
    // Blocking 2: R = (3, 6, 12) (fits); blocking 3: R2 = 5 + ⌈R/4⌉ → 7 > 6.
    let b2 = core_fp(
        &set,
        &Overheads {
            per_activation: 0,
            blocking: 2,
        },
    )
    .unwrap();
    assert_eq!(b2.response_times(), &[3, 6, 12]);
    let b3 = core_fp(
        &set,
        &Overheads {
            per_activation: 0,
            blocking: 3,
        },
    );
    assert!(matches!(
        b3,
        Err(Error::Unschedulable(
            Unschedulable::ResponseTimeExceedsDeadline {
                task: 1,
                response_time: Some(7),
                deadline: 6
            }
        ))
    ));
}

#[test]
fn rta_reports_divergence_and_response() {
    // The higher-priority task alone loads the core fully: the lower one diverges.
    let set = [t(3, 3, 0), t(1, 4, 1)];
    match core_fp(&set, &Overheads::NONE) {
        Err(Error::Unschedulable(Unschedulable::ResponseTimeExceedsDeadline {
            task: 1,
            response_time: None,
            deadline: 4,
        })) => {}
        other => panic!("{other:?}"),
    }
    // Misses but converges: (1,2), (2,5,D=3): R2 = 2 + ⌈R/2⌉: 2 → 3 → 4 → 4.
    let set = [t(1, 2, 0), Task::new(2, 5, 3, 1)];
    match core_fp(&set, &Overheads::NONE) {
        Err(Error::Unschedulable(Unschedulable::ResponseTimeExceedsDeadline {
            task: 1,
            response_time: Some(4),
            deadline: 3,
        })) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn deferrable_server_jitter_in_rta() {
    // High-priority deferrable server Θ = 2, Π = 4 (jitter 2), low task C = 3, D = T = 6.
    // Without jitter: R = 3 + 2⌈R/4⌉ → 5 → 7 > 6... use D = 8: R = 7 with plain task;
    // with jitter ⌈(R + 2)/4⌉: 5 → 7 → 9 > 8.
    let server = Server {
        kind: ServerKind::Deferrable,
        budget: 2,
        period: 4,
        priority: 0,
    };
    let low = Task::new(3, 8, 8, 1);
    let plain = [Task::implicit(2, 4, 0), low];
    assert_eq!(
        core_fp(&plain, &Overheads::NONE).unwrap().response_times(),
        &[2, 7]
    );
    let deferrable = [server.as_task(), low];
    assert_eq!(deferrable[0].jitter, 2);
    assert!(core_fp(&deferrable, &Overheads::NONE).is_err());
    // Other kinds are plain periodic tasks.
    for kind in [
        ServerKind::Periodic,
        ServerKind::Polling,
        ServerKind::Sporadic,
        ServerKind::ConstantBandwidth,
    ] {
        assert_eq!(Server { kind, ..server }.as_task(), Task::implicit(2, 4, 0));
    }
}

#[test]
fn edf_implicit_full_utilisation_passes() {
    let set = [t(1, 2, 0), t(1, 3, 0), t(1, 6, 0)];
    let rep = core_edf(&set, &Overheads::NONE).unwrap();
    assert_eq!(rep.utilisation.parts_per_million(), 1_000_000);
    assert!(rep.utilisation.at_most_one());
    assert_eq!(rep.min_slack, 0);
    // Rate-monotonic fails the same set (R3 = 1 + ⌈R/2⌉ + ⌈R/3⌉ → 7 > 6).
    assert!(core_fp(&set, &Overheads::NONE).is_err());
}

#[test]
fn edf_overload_is_reported() {
    let set = [t(1, 2, 0), t(1, 3, 0), t(1, 5, 0)];
    match core_edf(&set, &Overheads::NONE) {
        Err(Error::Unschedulable(Unschedulable::Overload { utilisation, .. })) => {
            assert_eq!(utilisation.cmp_one(), core::cmp::Ordering::Greater);
            assert_eq!(utilisation.parts_per_million(), 1_033_334);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn edf_constrained_deadlines_fail_below_full_utilisation() {
    // U = 0.5 + 0.4 = 0.9 ≤ 1, but dbf(3) = 2 + 2 = 4 > 3.
    let set = [Task::new(2, 4, 2, 0), Task::new(2, 5, 3, 0)];
    assert!(utilisation(&set, &Overheads::NONE).unwrap().at_most_one());
    assert_eq!(
        core_edf(&set, &Overheads::NONE),
        Err(Error::Unschedulable(Unschedulable::DemandExceedsSupply {
            t: 3,
            demand: 4,
            supply: 3
        }))
    );
    // With D = 4 for the second task it passes; least slack at t = 2 (2 − 2 = 0).
    let ok = [Task::new(2, 4, 2, 0), Task::new(2, 5, 4, 0)];
    let rep = core_edf(&ok, &Overheads::NONE).unwrap();
    assert_eq!((rep.min_slack, rep.min_slack_at), (0, 2));
}

#[test]
fn edf_blocking_and_overhead() {
    let set = [t(2, 10, 0), t(3, 15, 0)];
    // Implicit deadlines, U < 1: the linear bound is 0, nothing to check.
    let rep = core_edf(&set, &Overheads::NONE).unwrap();
    assert_eq!(
        (rep.horizon, rep.points_checked, rep.min_slack),
        (0, 0, u64::MAX)
    );
    // Blocking 8 still fits at t = 10 (2 + 8 = 10), 9 does not.
    let b = |blocking| Overheads {
        per_activation: 0,
        blocking,
    };
    assert!(core_edf(&set, &b(8)).is_ok());
    assert_eq!(
        core_edf(&set, &b(9)),
        Err(Error::Unschedulable(Unschedulable::DemandExceedsSupply {
            t: 10,
            demand: 11,
            supply: 10
        }))
    );
}

#[test]
fn edf_deferrable_server_demand() {
    // Two deferrable servers Θ = 5, Π = 10 (U = 1): back-to-back demand 10 + 10 at t = 15.
    let ds = Server {
        kind: ServerKind::Deferrable,
        budget: 5,
        period: 10,
        priority: 0,
    }
    .as_task();
    assert!(matches!(
        core_edf(&[ds, ds], &Overheads::NONE),
        Err(Error::Unschedulable(Unschedulable::DemandExceedsSupply {
            t: 15,
            ..
        }))
    ));
    // Two of Θ = 2: fine.
    let small = Server {
        budget: 2,
        ..Server {
            kind: ServerKind::Deferrable,
            budget: 0,
            period: 10,
            priority: 0,
        }
    }
    .as_task();
    assert!(core_edf(&[small, small], &Overheads::NONE).is_ok());
}

#[test]
fn guest_tests_by_hand() {
    // One task C = 1, T = D = 10 in Γ(5, 2): sbf(7) = 1 ≤ ... first t with sbf ≥ 1 is 7.
    let set = [t(1, 10, 0)];
    let r = PeriodicResource::new(5, 2).unwrap();
    assert_eq!(guest_fp(r, &set).unwrap().witnesses(), &[10]);
    assert!(guest_edf(r, &set).is_ok());
    // Deadline 6 < blackout: nothing can be guaranteed.
    let tight = [Task::new(1, 10, 6, 0)];
    assert!(guest_edf(r, &tight).is_err());
    assert!(matches!(
        guest_fp(r, &tight),
        Err(Error::Unschedulable(Unschedulable::NoSchedulingPoint {
            task: 0,
            deadline: 6,
            demand_at_deadline: 1,
            supply_at_deadline: 0
        }))
    ));
    // Least budget for C = 1, D = 6 with Π = 5: need 2(5 − Θ) < 6 and sbf(6) ≥ 1 → Θ = 3.
    assert_eq!(min_budget(5, Policy::Edf, &tight), Ok(Some(3)));
    assert_eq!(min_budget(5, Policy::FixedPriority, &tight), Ok(Some(3)));
    // Impossible even with the whole period: C = 7 > D = 6.
    assert_eq!(
        min_budget(5, Policy::Edf, &[Task::new(7, 10, 6, 0)]),
        Ok(None)
    );
    // No demand: zero budget.
    assert_eq!(min_budget(5, Policy::Edf, &[t(0, 10, 0)]), Ok(Some(0)));
    // Best interface: Π = 5 needs Θ = 3 (0.6); Π = 2 needs Θ = 1 (0.5)?
    let best = best_interface(&[5, 2], Policy::Edf, &tight)
        .unwrap()
        .unwrap();
    assert_eq!(min_budget(2, Policy::Edf, &tight), Ok(Some(1)));
    assert_eq!((best.period(), best.budget()), (2, 1));
}

#[test]
fn invalid_inputs_are_typed_errors() {
    let too_many = [t(1, 100, 0); MAX_TASKS + 1];
    assert_eq!(
        core_edf(&too_many, &Overheads::NONE),
        Err(Error::Analysis(AnalysisError::TooManyTasks {
            count: MAX_TASKS + 1,
            max: MAX_TASKS
        }))
    );
    let zero_period = [t(1, 10, 0), Task::new(1, 0, 5, 0)];
    assert_eq!(
        core_fp(&zero_period, &Overheads::NONE),
        Err(Error::Analysis(AnalysisError::InvalidTask {
            index: 1,
            problem: TaskProblem::ZeroPeriod
        }))
    );
    assert_eq!(
        core_fp(&[Task::new(1, 5, 6, 0)], &Overheads::NONE),
        Err(Error::Analysis(AnalysisError::InvalidTask {
            index: 0,
            problem: TaskProblem::DeadlineExceedsPeriod
        }))
    );
    // EDF accepts D > T.
    assert!(core_edf(&[Task::new(1, 5, 6, 0)], &Overheads::NONE).is_ok());
    assert_eq!(
        core_edf(&[Task::new(1, 5, 3, 0).with_jitter(3)], &Overheads::NONE),
        Err(Error::Analysis(AnalysisError::InvalidTask {
            index: 0,
            problem: TaskProblem::JitterNotBelowDeadline
        }))
    );
    assert_eq!(
        PeriodicResource::new(4, 5),
        Err(AnalysisError::InvalidResource {
            period: 4,
            budget: 5
        })
    );
    // Overflow is an error, not a panic.
    let huge = [Task::implicit(u64::MAX, u64::MAX, 0)];
    assert_eq!(
        core_edf(
            &huge,
            &Overheads {
                per_activation: 1,
                blocking: 0
            }
        ),
        Err(Error::Analysis(AnalysisError::Overflow))
    );
    // A horizon too large to enumerate: U = 1 − 5·10⁻¹³, constrained deadline, busy period
    // ≈ 10¹² with a deadline every 2 µs.
    let big = [
        t(1, 2, 0),
        Task::new(499_999_999_999, 1_000_000_000_001, 600_000_000_000, 1),
    ];
    let r = core_edf(&big, &Overheads::NONE);
    assert!(
        matches!(
            r,
            Err(Error::Analysis(AnalysisError::HorizonTooLarge { .. }))
        ),
        "{r:?}"
    );
}

#[test]
fn utilisation_exact_near_one() {
    // 1/3 + 1/3 + 1/3 is exactly 1 although each term is inexact in binary.
    let set = [t(1, 3, 0), t(1, 3, 0), t(1, 3, 0)];
    let u = utilisation(&set, &Overheads::NONE).unwrap();
    assert_eq!(u.cmp_one(), core::cmp::Ordering::Equal);
    assert_eq!(u.parts_per_million(), 1_000_000);
    assert!(core_edf(&set, &Overheads::NONE).is_ok());
    // Just above one.
    let over = [t(1, 3, 0), t(1, 3, 0), t(334, 1000, 0)];
    assert_eq!(
        utilisation(&over, &Overheads::NONE).unwrap().cmp_one(),
        core::cmp::Ordering::Greater
    );
}
