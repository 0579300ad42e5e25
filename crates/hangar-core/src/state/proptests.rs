use std::time::Duration;

use proptest::prelude::*;

use super::{
    BackoffPolicy, FailurePolicy, ProviderEvent as E, ProviderState as S, ProviderStateMachine,
    Timestamp,
};

fn event() -> impl Strategy<Value = E> {
    prop_oneof![
        Just(E::StartRequested),
        Just(E::Initialized),
        "[a-z]{0,4}".prop_map(|cause| E::StartFailed { cause }),
        "[a-z]{0,4}".prop_map(|cause| E::CheckFailed { cause }),
        Just(E::CheckSucceeded),
        "[a-z]{0,4}".prop_map(|cause| E::Exited { cause }),
        Just(E::StopRequested),
        Just(E::IdleExpired),
        Just(E::BackoffElapsed),
    ]
}

fn policy() -> impl Strategy<Value = FailurePolicy> {
    (
        0u32..6,
        0u32..10,
        1u64..5_000,
        1u64..120_000,
        0u32..4,
        0u64..120_000,
    )
        .prop_map(
            |(threshold, max, initial, max_delay, multiplier, reset)| FailurePolicy {
                failure_threshold: threshold,
                max_failures: max,
                backoff: BackoffPolicy {
                    initial: Duration::from_millis(initial),
                    max: Duration::from_millis(max_delay),
                    multiplier,
                    reset_after: Duration::from_millis(reset),
                },
            },
        )
}

/// Random events, each after a random pause (ms).
fn run() -> impl Strategy<Value = Vec<(E, u64)>> {
    prop::collection::vec((event(), 0u64..90_000), 0..80)
}

proptest! {
    #[test]
    fn machine_invariants_hold(policy in policy(), events in run()) {
        let mut m = ProviderStateMachine::new(policy);
        let threshold = m.policy().failure_threshold;
        let max_failures = m.policy().max_failures;
        let max_delay = m.policy().backoff.max;
        let mut now = 0u64;
        let mut last_delay: Option<Duration> = None;
        for (event, pause) in events {
            now += pause;
            let before = m.clone();
            let stop = matches!(event, E::StopRequested | E::IdleExpired);
            let was_running = before.state().is_running();
            let is_stop_request = matches!(event, E::StopRequested);
            match m.apply(event, Timestamp(now)) {
                Err(err) => {
                    prop_assert_eq!(&m, &before);
                    prop_assert_eq!(err.from, before.state());
                }
                Ok(Some(tr)) => {
                    prop_assert_eq!(tr.from, before.state());
                    prop_assert_eq!(tr.to, m.state());
                    prop_assert_ne!(tr.from, tr.to);
                    prop_assert_eq!(m.state_since(), Timestamp(now));
                }
                Ok(None) => {
                    prop_assert_eq!(m.state(), before.state());
                    prop_assert_eq!(m.state_since(), before.state_since());
                }
            }
            prop_assert!(S::ALL.contains(&m.state()));
            match m.state() {
                S::Ready => prop_assert!(m.consecutive_failures() < threshold),
                S::Degraded => prop_assert!(m.consecutive_failures() <= max_failures),
                // The failure that kills a degraded machine may be one past max_failures
                // when failure_threshold == max_failures.
                S::Dead => prop_assert!(m.consecutive_failures() <= max_failures + 1),
                S::Cold | S::Initializing => prop_assert_eq!(m.consecutive_failures(), 0),
            }
            if stop && was_running {
                prop_assert_eq!(m.state(), S::Cold);
            }
            if is_stop_request {
                prop_assert_eq!(m.state(), S::Cold);
                prop_assert_eq!(m.crash_streak(), 0);
            }
            if stop && (was_running || m.state() == S::Cold) {
                prop_assert_eq!(m.crash_streak(), 0);
            }
            // Backoff: non-decreasing within a streak, never above max.
            match m.next_restart_delay() {
                Some(delay) => {
                    prop_assert!(delay <= max_delay);
                    prop_assert_eq!(m.state(), S::Dead);
                    if m.crash_streak() > 1
                        && let Some(previous) = last_delay
                    {
                        prop_assert!(delay >= previous);
                    }
                    last_delay = Some(delay);
                }
                None => prop_assert_ne!(m.state(), S::Dead),
            }
            if m.crash_streak() <= 1 && m.state() != S::Dead {
                last_delay = None;
            }
            if m.state() == S::Dead {
                let mut probe = m.clone();
                let started = probe.apply(E::StartRequested, Timestamp(now));
                prop_assert!(matches!(started, Ok(Some(_))));
                prop_assert_eq!(probe.state(), S::Initializing);
            }
        }
    }

    #[test]
    fn backoff_delay_is_monotonic_and_capped(policy in policy(), n in 0u32..200) {
        let backoff = policy.backoff;
        prop_assert!(backoff.delay(n) <= backoff.delay(n + 1));
        prop_assert!(backoff.delay(n) <= backoff.max);
    }
}
