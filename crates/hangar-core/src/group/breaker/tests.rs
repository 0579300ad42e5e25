use std::time::Duration;

use super::{
    Admission, BreakerConfig, BreakerState as S, BreakerTransition, CallOutcome, CircuitBreaker,
    Permit,
};
use crate::error::ErrorOrigin;
use crate::state::Timestamp;

const TIMEOUT_MS: u64 = 10_000;

fn t(ms: u64) -> Timestamp {
    Timestamp(ms)
}

fn breaker(threshold: u32) -> CircuitBreaker {
    CircuitBreaker::new(BreakerConfig {
        failure_threshold: threshold,
        reset_timeout: Duration::from_millis(TIMEOUT_MS),
    })
}

fn admit(b: &mut CircuitBreaker, now: u64) -> Permit {
    match b.try_acquire(t(now)) {
        Some(admitted) => admitted.permit,
        None => panic!("refused at {now}: {b:?}"),
    }
}

fn call(b: &mut CircuitBreaker, outcome: CallOutcome, now: u64) -> Option<BreakerTransition> {
    let permit = admit(b, now);
    b.record(permit, outcome, t(now))
}

fn tr(from: S, to: S, at: u64, failures: u32) -> Option<BreakerTransition> {
    Some(BreakerTransition {
        from,
        to,
        at: t(at),
        consecutive_failures: failures,
    })
}

/// Opens a threshold-3 breaker at `at`.
fn opened(at: u64) -> CircuitBreaker {
    let mut b = breaker(3);
    for _ in 0..2 {
        assert_eq!(call(&mut b, CallOutcome::MemberFailure, at), None);
    }
    assert_eq!(
        call(&mut b, CallOutcome::MemberFailure, at),
        tr(S::Closed, S::Open, at, 3)
    );
    b
}

#[test]
fn opens_after_threshold_failures_in_a_row() {
    let b = opened(500);
    assert_eq!(b.state(t(500)), S::Open);
    assert_eq!(b.consecutive_failures(), 3);
    assert_eq!(b.opened_at(), Some(t(500)));
    assert_eq!(b.half_open_at(), Some(t(500 + TIMEOUT_MS)));
}

#[test]
fn failures_between_successes_never_open_it() {
    // The "lifetime count" bug: 2,000 failures in total, never 3 in a row.
    let mut b = breaker(3);
    for i in 0..1000 {
        assert_eq!(call(&mut b, CallOutcome::MemberFailure, i), None);
        assert_eq!(call(&mut b, CallOutcome::MemberFailure, i), None);
        assert_eq!(call(&mut b, CallOutcome::Success, i), None);
        assert_eq!(b.consecutive_failures(), 0);
    }
    assert_eq!(b.state(t(1000)), S::Closed);
}

#[test]
fn caller_errors_neither_count_nor_reset() {
    let mut b = breaker(3);
    for _ in 0..1000 {
        assert_eq!(call(&mut b, CallOutcome::CallerError, 0), None);
    }
    assert_eq!(b.state(t(0)), S::Closed);
    assert_eq!(b.consecutive_failures(), 0);
    call(&mut b, CallOutcome::MemberFailure, 1);
    call(&mut b, CallOutcome::MemberFailure, 2);
    call(&mut b, CallOutcome::CallerError, 3);
    assert_eq!(b.consecutive_failures(), 2);
    assert_eq!(
        call(&mut b, CallOutcome::MemberFailure, 4),
        tr(S::Closed, S::Open, 4, 3)
    );
}

#[test]
fn open_refuses_until_the_reset_timeout() {
    let mut b = opened(1000);
    let deadline = 1000 + TIMEOUT_MS;
    for now in [1000, 5000, deadline - 1] {
        assert_eq!(b.state(t(now)), S::Open);
        assert!(!b.can_admit(t(now)));
        assert_eq!(b.try_acquire(t(now)), None);
    }
    assert_eq!(b.state(t(deadline)), S::HalfOpen);
    assert!(b.can_admit(t(deadline)));
}

#[test]
fn half_open_admits_exactly_one_probe() {
    let mut b = opened(0);
    let admitted = b.try_acquire(t(TIMEOUT_MS));
    let Some(admitted) = admitted else {
        panic!("no probe admitted")
    };
    assert_eq!(admitted.permit.admission(), Admission::Probe);
    assert_eq!(admitted.transition, tr(S::Open, S::HalfOpen, TIMEOUT_MS, 3));
    assert!(b.probe_in_flight());
    for later in [TIMEOUT_MS, TIMEOUT_MS + 1, 10 * TIMEOUT_MS] {
        assert_eq!(b.try_acquire(t(later)), None);
        assert!(!b.can_admit(t(later)));
        assert_eq!(b.state(t(later)), S::HalfOpen);
    }
    assert_eq!(
        b.record(admitted.permit, CallOutcome::Success, t(20)),
        tr(S::HalfOpen, S::Closed, 20, 0)
    );
}

#[test]
fn probe_success_closes() {
    let mut b = opened(0);
    assert_eq!(
        call(&mut b, CallOutcome::Success, TIMEOUT_MS + 5),
        tr(S::HalfOpen, S::Closed, TIMEOUT_MS + 5, 0)
    );
    assert_eq!(b.state(t(TIMEOUT_MS + 5)), S::Closed);
    assert_eq!(b.consecutive_failures(), 0);
    assert_eq!(b.opened_at(), None);
    // Counting starts over: it takes the full threshold again.
    for _ in 0..2 {
        assert_eq!(
            call(&mut b, CallOutcome::MemberFailure, TIMEOUT_MS + 6),
            None
        );
    }
}

#[test]
fn probe_failure_reopens_with_a_fresh_timeout() {
    let mut b = opened(0);
    let at = TIMEOUT_MS + 100;
    assert_eq!(
        call(&mut b, CallOutcome::MemberFailure, at),
        tr(S::HalfOpen, S::Open, at, 4)
    );
    assert_eq!(b.opened_at(), Some(t(at)));
    assert_eq!(b.state(t(at + TIMEOUT_MS - 1)), S::Open);
    assert_eq!(b.try_acquire(t(at + TIMEOUT_MS - 1)), None);
    // Not stuck open: the next timeout admits the next probe, which can close it.
    assert_eq!(
        call(&mut b, CallOutcome::Success, at + TIMEOUT_MS),
        tr(S::HalfOpen, S::Closed, at + TIMEOUT_MS, 0)
    );
}

#[test]
fn released_probe_frees_the_slot_without_a_verdict() {
    let mut b = opened(0);
    let probe = admit(&mut b, TIMEOUT_MS);
    assert_eq!(
        b.record(probe, CallOutcome::CallerError, t(TIMEOUT_MS)),
        None
    );
    assert_eq!(b.state(t(TIMEOUT_MS)), S::HalfOpen);
    assert_eq!(b.consecutive_failures(), 3);
    let Some(next) = b.try_acquire(t(TIMEOUT_MS + 1)) else {
        panic!("slot not freed")
    };
    assert_eq!(next.permit.admission(), Admission::Probe);
    assert_eq!(next.transition, None);
    assert_eq!(b.try_acquire(t(TIMEOUT_MS + 1)), None);
}

#[test]
fn stale_permits_are_ignored() {
    let mut b = breaker(3);
    let permits: Vec<Permit> = (0..5).map(|_| admit(&mut b, 0)).collect();
    let mut permits = permits.into_iter();
    for p in permits.by_ref().take(3) {
        b.record(p, CallOutcome::MemberFailure, t(1));
    }
    assert_eq!(b.state(t(1)), S::Open);
    // A late failure neither extends the open period nor counts.
    if let Some(p) = permits.next() {
        assert_eq!(b.record(p, CallOutcome::MemberFailure, t(5000)), None);
    }
    assert_eq!((b.opened_at(), b.consecutive_failures()), (Some(t(1)), 3));
    let probe = admit(&mut b, TIMEOUT_MS + 1);
    // A late success of a normal call does not close it, and a late release does not free
    // the probe slot.
    if let Some(p) = permits.next() {
        assert_eq!(b.record(p, CallOutcome::Success, t(TIMEOUT_MS + 2)), None);
    }
    assert!(b.probe_in_flight());
    assert_eq!(
        b.record(probe, CallOutcome::CallerError, t(TIMEOUT_MS + 3)),
        None
    );
    let second = admit(&mut b, TIMEOUT_MS + 4);
    assert!(b.probe_in_flight());
    b.on_released(Permit {
        admission: Admission::Probe,
        epoch: second.epoch.wrapping_sub(1),
    });
    assert!(
        b.probe_in_flight(),
        "an old probe's release freed the new probe's slot"
    );
    assert_eq!(b.try_acquire(t(TIMEOUT_MS + 5)), None);
}

#[test]
fn reset_closes_and_clears() {
    let mut b = opened(0);
    assert_eq!(b.reset(t(7)), tr(S::Open, S::Closed, 7, 0));
    assert_eq!(b.state(t(7)), S::Closed);
    assert_eq!((b.consecutive_failures(), b.opened_at()), (0, None));
    assert_eq!(b.reset(t(8)), None);

    let mut b = opened(0);
    let probe = admit(&mut b, TIMEOUT_MS);
    assert_eq!(
        b.reset(t(TIMEOUT_MS)),
        tr(S::HalfOpen, S::Closed, TIMEOUT_MS, 0)
    );
    // The probe from before the reset no longer counts.
    assert_eq!(
        b.record(probe, CallOutcome::MemberFailure, t(TIMEOUT_MS)),
        None
    );
    assert_eq!(b.consecutive_failures(), 0);

    let mut b = opened(0);
    assert_eq!(
        b.reset(t(TIMEOUT_MS)),
        tr(S::HalfOpen, S::Closed, TIMEOUT_MS, 0),
        "open with the timeout elapsed is reported as half-open"
    );
}

#[test]
fn poll_announces_half_open_once() {
    let mut b = opened(0);
    assert_eq!(b.poll(t(TIMEOUT_MS - 1)), None);
    assert_eq!(
        b.poll(t(TIMEOUT_MS)),
        tr(S::Open, S::HalfOpen, TIMEOUT_MS, 3)
    );
    assert_eq!(b.poll(t(TIMEOUT_MS + 1)), None);
    assert_eq!(b.half_open_at(), None);
    let Some(admitted) = b.try_acquire(t(TIMEOUT_MS + 2)) else {
        panic!("no probe")
    };
    assert_eq!(admitted.transition, None);
    assert_eq!(admitted.permit.admission(), Admission::Probe);
}

#[test]
fn zero_threshold_acts_as_one() {
    let mut b = breaker(0);
    assert_eq!(b.config().failure_threshold, 1);
    assert_eq!(
        call(&mut b, CallOutcome::MemberFailure, 3),
        tr(S::Closed, S::Open, 3, 1)
    );
}

#[test]
fn outcomes_from_error_origins() {
    assert_eq!(
        CallOutcome::from_error_origin(ErrorOrigin::Upstream),
        CallOutcome::MemberFailure
    );
    for origin in [ErrorOrigin::Downstream, ErrorOrigin::Hangar] {
        assert_eq!(
            CallOutcome::from_error_origin(origin),
            CallOutcome::CallerError
        );
    }
}

#[test]
fn names_and_serde() {
    for (state, name) in [
        (S::Closed, "closed"),
        (S::Open, "open"),
        (S::HalfOpen, "half_open"),
    ] {
        assert_eq!(state.to_string(), name);
        assert_eq!(
            serde_json::to_string(&state).ok(),
            Some(format!("\"{name}\""))
        );
    }
    assert_eq!(
        serde_json::from_str::<S>("\"half-open\"").ok(),
        Some(S::HalfOpen)
    );
    let read = |json: &str| serde_json::from_str::<BreakerConfig>(json).map_err(|e| e.to_string());
    assert_eq!(read("{}"), Ok(BreakerConfig::default()));
    assert_eq!(
        read(r#"{"reset_timeout_s": 0.25, "failure_threshold": 2}"#),
        Ok(BreakerConfig {
            failure_threshold: 2,
            reset_timeout: Duration::from_millis(250),
        })
    );
    assert_eq!(
        read(r#"{"reset_timeout_s": 7}"#).map(|c| c.reset_timeout),
        Ok(Duration::from_secs(7))
    );
    for bad in [r#"{"reset_timeout_s": -1}"#, r#"{"reset_timeout_s": -0.5}"#] {
        let err = read(bad).err().unwrap_or_default();
        assert!(err.contains("a non-negative number of seconds"), "{err}");
    }
    assert!(read(r#"{"reset_timeout": 7}"#).is_err());
    for config in [
        BreakerConfig::default(),
        BreakerConfig {
            failure_threshold: 1,
            reset_timeout: Duration::from_millis(1500),
        },
    ] {
        let json = serde_json::to_string(&config).unwrap_or_default();
        assert_eq!(read(&json), Ok(config), "{json}");
    }
}
