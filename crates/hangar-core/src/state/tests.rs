use std::time::Duration;

use super::{
    BackoffPolicy, FailurePolicy, ProviderEvent as E, ProviderState as S, ProviderStateMachine,
    Timestamp, TransitionError,
};

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn cause(s: &str) -> String {
    s.to_owned()
}

/// A machine driven into `state` at time 0 with the default policy.
fn machine_in(state: S) -> ProviderStateMachine {
    let mut m = ProviderStateMachine::new(FailurePolicy::default());
    let path: &[E] = match state {
        S::Cold => &[],
        S::Initializing => &[E::StartRequested],
        S::Ready => &[E::StartRequested, E::Initialized],
        S::Dead => &[
            E::StartRequested,
            E::StartFailed {
                cause: String::new(),
            },
        ],
        S::Degraded => &[E::StartRequested, E::Initialized],
    };
    for event in path {
        assert!(m.apply(event.clone(), t(0)).is_ok());
    }
    if state == S::Degraded {
        for _ in 0..3 {
            assert!(m.apply(E::CheckFailed { cause: cause("x") }, t(0)).is_ok());
        }
    }
    assert_eq!(m.state(), state);
    m
}

/// Applies `event` in `from` and returns the resulting state, or None if rejected.
fn step(from: S, event: E) -> Result<S, TransitionError> {
    let mut m = machine_in(from);
    m.apply(event, t(10)).map(|_| m.state())
}

#[test]
fn cold_start_requested_initializes() {
    let mut m = machine_in(S::Cold);
    let tr = m.apply(E::StartRequested, t(5)).ok().flatten();
    assert_eq!(
        tr.as_ref().map(|t| (t.from, t.to)),
        Some((S::Cold, S::Initializing))
    );
    assert_eq!(tr.map(|t| t.at), Some(t(5)));
    assert_eq!(m.state_since(), t(5));
}

#[test]
fn initializing_rows() {
    assert_eq!(step(S::Initializing, E::Initialized), Ok(S::Ready));
    assert_eq!(
        step(
            S::Initializing,
            E::StartFailed {
                cause: cause("spawn")
            }
        ),
        Ok(S::Dead)
    );
    assert_eq!(
        step(
            S::Initializing,
            E::Exited {
                cause: cause("exit 1")
            }
        ),
        Ok(S::Dead)
    );
    assert_eq!(step(S::Initializing, E::StopRequested), Ok(S::Cold));
    assert_eq!(
        step(S::Initializing, E::StartRequested),
        Ok(S::Initializing)
    );
}

#[test]
fn start_failure_keeps_the_cause() {
    let mut m = machine_in(S::Initializing);
    let tr = m
        .apply(
            E::StartFailed {
                cause: cause("ENOENT"),
            },
            t(3),
        )
        .ok()
        .flatten();
    assert_eq!(
        tr.map(|t| t.reason),
        Some("start failed: ENOENT".to_owned())
    );
    assert_eq!(m.last_cause(), Some("ENOENT"));
    assert_eq!(m.crash_streak(), 1);
}

#[test]
fn ready_degrades_only_at_the_threshold() {
    let mut m = machine_in(S::Ready);
    for i in 1..3 {
        assert_eq!(
            m.apply(
                E::CheckFailed {
                    cause: cause("timeout")
                },
                t(i)
            ),
            Ok(None)
        );
        assert_eq!(m.consecutive_failures(), u32::try_from(i).unwrap_or(0));
    }
    let tr = m
        .apply(
            E::CheckFailed {
                cause: cause("timeout"),
            },
            t(3),
        )
        .ok()
        .flatten();
    assert_eq!(
        tr.as_ref().map(|t| (t.from, t.to)),
        Some((S::Ready, S::Degraded))
    );
    assert_eq!(
        tr.map(|t| t.reason),
        Some("failed 3 times in a row: timeout".to_owned())
    );
    assert_eq!(m.last_cause(), Some("timeout"));
}

#[test]
fn success_while_ready_resets_the_counter() {
    let mut m = machine_in(S::Ready);
    for _ in 0..2 {
        assert_eq!(
            m.apply(E::CheckFailed { cause: cause("x") }, t(1)),
            Ok(None)
        );
    }
    assert_eq!(m.apply(E::CheckSucceeded, t(2)), Ok(None));
    assert_eq!(m.consecutive_failures(), 0);
    assert_eq!(
        m.apply(E::CheckFailed { cause: cause("x") }, t(3)),
        Ok(None)
    );
    assert_eq!(m.state(), S::Ready);
}

#[test]
fn ready_exit_is_a_crash() {
    let mut m = machine_in(S::Ready);
    let tr = m
        .apply(
            E::Exited {
                cause: cause("signal 9"),
            },
            t(1),
        )
        .ok()
        .flatten();
    assert_eq!(tr.as_ref().map(|t| t.to), Some(S::Dead));
    assert_eq!(tr.map(|t| t.reason), Some("crashed: signal 9".to_owned()));
}

#[test]
fn ready_and_degraded_stop_or_idle_go_cold() {
    for from in [S::Ready, S::Degraded] {
        assert_eq!(step(from, E::StopRequested), Ok(S::Cold));
        assert_eq!(step(from, E::IdleExpired), Ok(S::Cold));
    }
}

#[test]
fn degraded_recovers_on_success() {
    let mut m = machine_in(S::Degraded);
    let tr = m.apply(E::CheckSucceeded, t(1)).ok().flatten();
    assert_eq!(tr.map(|t| (t.from, t.to)), Some((S::Degraded, S::Ready)));
    assert_eq!(m.consecutive_failures(), 0);
    assert_eq!(m.last_cause(), None);
}

#[test]
fn degraded_exit_dies() {
    assert_eq!(
        step(
            S::Degraded,
            E::Exited {
                cause: cause("eof")
            }
        ),
        Ok(S::Dead)
    );
}

#[test]
fn degraded_dies_at_max_failures() {
    let mut m = machine_in(S::Degraded);
    assert_eq!(m.consecutive_failures(), 3);
    for _ in 4..6 {
        assert_eq!(
            m.apply(E::CheckFailed { cause: cause("x") }, t(1)),
            Ok(None)
        );
    }
    let tr = m
        .apply(
            E::CheckFailed {
                cause: cause("boom"),
            },
            t(2),
        )
        .ok()
        .flatten();
    assert_eq!(
        tr.as_ref().map(|t| (t.from, t.to)),
        Some((S::Degraded, S::Dead))
    );
    assert_eq!(
        tr.map(|t| t.reason),
        Some("failed 6 times in a row: boom".to_owned())
    );
    assert_eq!(m.last_cause(), Some("boom"));
}

#[test]
fn dead_restarts_on_start_or_backoff() {
    assert_eq!(step(S::Dead, E::StartRequested), Ok(S::Initializing));
    assert_eq!(step(S::Dead, E::BackoffElapsed), Ok(S::Initializing));
    assert_eq!(step(S::Dead, E::StopRequested), Ok(S::Cold));
    let mut m = machine_in(S::Dead);
    assert!(m.apply(E::BackoffElapsed, t(1)).is_ok());
    assert_eq!(m.restart_count(), 1);
    assert_eq!(m.last_cause(), Some(""));
}

#[test]
fn late_events_change_nothing() {
    for (from, event) in [
        (S::Cold, E::StopRequested),
        (S::Cold, E::IdleExpired),
        (S::Cold, E::Exited { cause: cause("x") }),
        (S::Dead, E::Exited { cause: cause("x") }),
        (S::Ready, E::StartRequested),
        (S::Degraded, E::StartRequested),
        (S::Ready, E::CheckSucceeded),
    ] {
        let mut m = machine_in(from);
        let before = m.clone();
        assert_eq!(m.apply(event, t(9)), Ok(None));
        assert_eq!(m.state(), before.state());
        assert_eq!(m.state_since(), before.state_since());
    }
}

#[test]
fn invalid_events_are_typed_errors() {
    for (from, event) in [
        (S::Cold, E::Initialized),
        (S::Cold, E::StartFailed { cause: cause("x") }),
        (S::Cold, E::CheckFailed { cause: cause("x") }),
        (S::Cold, E::CheckSucceeded),
        (S::Cold, E::BackoffElapsed),
        (S::Initializing, E::CheckFailed { cause: cause("x") }),
        (S::Initializing, E::CheckSucceeded),
        (S::Initializing, E::IdleExpired),
        (S::Initializing, E::BackoffElapsed),
        (S::Ready, E::Initialized),
        (S::Ready, E::StartFailed { cause: cause("x") }),
        (S::Ready, E::BackoffElapsed),
        (S::Degraded, E::Initialized),
        (S::Degraded, E::BackoffElapsed),
        (S::Dead, E::Initialized),
        (S::Dead, E::CheckFailed { cause: cause("x") }),
        (S::Dead, E::CheckSucceeded),
        (S::Dead, E::IdleExpired),
        (S::Dead, E::StartFailed { cause: cause("x") }),
    ] {
        let mut m = machine_in(from);
        let before = m.clone();
        let name = event.name();
        let err = m.apply(event, t(9));
        assert_eq!(err, Err(TransitionError { from, event: name }));
        assert_eq!(m, before, "{from} + {name} must not change the machine");
    }
    let msg = TransitionError {
        from: S::Cold,
        event: "initialized",
    }
    .to_string();
    assert_eq!(msg, "event `initialized` is not valid in state cold");
}

#[test]
fn backoff_grows_and_caps() {
    let policy = BackoffPolicy::default();
    let secs: Vec<u64> = (1..=9).map(|n| policy.delay(n).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(policy.delay(0), Duration::from_secs(1));
    assert_eq!(policy.delay(u32::MAX), Duration::from_secs(60));
}

#[test]
fn crash_streak_grows_without_uptime_and_resets_after_it() {
    let mut m = machine_in(S::Cold);
    let mut now = 0;
    let mut delays = Vec::new();
    for _ in 0..3 {
        assert!(m.apply(E::StartRequested, t(now)).is_ok());
        assert!(m.apply(E::Initialized, t(now)).is_ok());
        now += 1_000; // ready for 1 s < reset_after
        assert!(m.apply(E::Exited { cause: cause("x") }, t(now)).is_ok());
        delays.push(m.next_restart_delay());
    }
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
    assert_eq!(
        delays.into_iter().map(secs).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(4)]
    );
    assert_eq!(m.next_restart_at(), Some(t(now + 4_000)));

    assert!(m.apply(E::BackoffElapsed, t(now)).is_ok());
    assert_eq!(m.next_restart_delay(), None);
    assert!(m.apply(E::Initialized, t(now)).is_ok());
    now += 60_000; // ready for reset_after
    assert!(m.apply(E::Exited { cause: cause("x") }, t(now)).is_ok());
    assert_eq!(m.crash_streak(), 1);
    assert_eq!(secs(m.next_restart_delay()), Some(1));
    assert_eq!(m.restart_count(), 3);
}

#[test]
fn stop_resets_the_crash_streak() {
    let mut m = machine_in(S::Dead);
    assert!(m.apply(E::StartRequested, t(1)).is_ok());
    assert!(m.apply(E::StartFailed { cause: cause("x") }, t(2)).is_ok());
    assert_eq!(m.crash_streak(), 2);
    assert!(m.apply(E::StopRequested, t(3)).is_ok());
    assert_eq!(m.crash_streak(), 0);
    assert!(m.apply(E::StartRequested, t(4)).is_ok());
    assert!(m.apply(E::StartFailed { cause: cause("x") }, t(5)).is_ok());
    assert_eq!(m.next_restart_delay(), Some(Duration::from_secs(1)));

    let mut m = machine_in(S::Ready);
    assert!(m.apply(E::Exited { cause: cause("x") }, t(1)).is_ok());
    assert!(m.apply(E::StartRequested, t(2)).is_ok());
    assert!(m.apply(E::Initialized, t(2)).is_ok());
    assert!(m.apply(E::IdleExpired, t(3)).is_ok());
    assert_eq!(m.crash_streak(), 0);
}

#[test]
fn policy_is_normalized() {
    let m = ProviderStateMachine::new(FailurePolicy {
        failure_threshold: 0,
        max_failures: 0,
        backoff: BackoffPolicy::default(),
    });
    assert_eq!(
        (m.policy().failure_threshold, m.policy().max_failures),
        (1, 1)
    );
    let mut m = ProviderStateMachine::new(FailurePolicy {
        failure_threshold: 1,
        max_failures: 1,
        backoff: BackoffPolicy::default(),
    });
    for event in [
        E::StartRequested,
        E::Initialized,
        E::CheckFailed { cause: cause("a") },
    ] {
        assert!(m.apply(event, t(0)).is_ok());
    }
    assert_eq!(m.state(), S::Degraded);
    assert!(m.apply(E::CheckFailed { cause: cause("b") }, t(0)).is_ok());
    assert_eq!(m.state(), S::Dead);
}

#[test]
fn timestamps_saturate() {
    assert_eq!(t(5).saturating_duration_since(t(9)), Duration::ZERO);
    assert_eq!(
        t(9).saturating_duration_since(t(5)),
        Duration::from_millis(4)
    );
    assert_eq!(
        t(u64::MAX).saturating_add(Duration::from_secs(1)),
        t(u64::MAX)
    );
    assert_eq!(S::Degraded.to_string(), "degraded");
    assert_eq!(
        serde_json::to_string(&S::Initializing).ok(),
        Some("\"initializing\"".into())
    );
}

#[test]
fn a_new_policy_applies_from_the_next_event_and_keeps_the_counters() {
    let mut m = ProviderStateMachine::new(FailurePolicy {
        failure_threshold: 3,
        max_failures: 6,
        backoff: BackoffPolicy::default(),
    });
    m.apply(E::StartRequested, t(0)).unwrap();
    m.apply(E::Initialized, t(0)).unwrap();
    m.apply(
        E::CheckFailed {
            cause: cause("slow"),
        },
        t(1),
    )
    .unwrap();
    assert_eq!(m.state(), S::Ready);
    m.set_policy(FailurePolicy {
        failure_threshold: 0,
        max_failures: 2,
        backoff: BackoffPolicy::default(),
    });
    // Normalized like new(): a threshold of at least 1.
    assert_eq!(m.policy().failure_threshold, 1);
    assert_eq!(m.consecutive_failures(), 1);
    m.apply(
        E::CheckFailed {
            cause: cause("slow"),
        },
        t(1),
    )
    .unwrap();
    // Count 2 passes the new threshold (1), then the new maximum (2).
    assert_eq!(m.state(), S::Degraded);
    m.apply(
        E::CheckFailed {
            cause: cause("slow"),
        },
        t(2),
    )
    .unwrap();
    assert_eq!(m.state(), S::Dead);
}
