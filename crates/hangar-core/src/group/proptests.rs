use std::time::Duration;

use proptest::prelude::*;

use super::{
    Admission, Balancer, BreakerConfig, BreakerState, CallOutcome, CircuitBreaker, GroupSpec,
    MemberSpec, MemberView, Selection, Strategy as Balance,
};
use crate::state::Timestamp;

fn outcome() -> impl Strategy<Value = CallOutcome> {
    prop_oneof![
        Just(CallOutcome::Success),
        Just(CallOutcome::MemberFailure),
        Just(CallOutcome::CallerError),
    ]
}

fn strategy() -> impl Strategy<Value = Balance> {
    prop::sample::select(Balance::ALL.to_vec())
}

fn spec(strategy: Balance, members: &[(u32, u32)], threshold: u32, timeout_ms: u64) -> GroupSpec {
    GroupSpec {
        strategy,
        members: members
            .iter()
            .enumerate()
            .map(|(i, &(weight, priority))| MemberSpec {
                provider: format!("m{i}"),
                weight,
                priority,
            })
            .collect(),
        circuit_breaker: BreakerConfig {
            failure_threshold: threshold,
            reset_timeout: Duration::from_millis(timeout_ms),
        },
        ..GroupSpec::default()
    }
}

/// One step of a random run against a balancer.
#[derive(Clone, Debug)]
enum Op {
    /// Select with these member views (availability, in flight), random number and
    /// excluded members (bit mask).
    Select(Vec<(bool, u32)>, u64, u8),
    /// Report the pending selection at this position (modulo their number).
    Record(usize, CallOutcome),
    /// Let time pass (ms).
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (prop::collection::vec((prop::bool::weighted(0.8), 0u32..4), 5), any::<u64>(), any::<u8>())
            .prop_map(|(views, random, exclude)| Op::Select(views, random, exclude)),
        3 => (any::<usize>(), outcome()).prop_map(|(i, o)| Op::Record(i, o)),
        1 => (0u64..3_000).prop_map(Op::Advance),
    ]
}

proptest! {
    /// Smooth weighted round-robin: exact shares every full cycle, and never further than
    /// two calls from the ideal share in between.
    #[test]
    fn weights_converge_to_their_ratios(
        weights in prop::collection::vec(1u32..20, 1..6),
        cycles in 1u64..5,
    ) {
        let members: Vec<(u32, u32)> = weights.iter().map(|&w| (w, 1)).collect();
        let mut b = Balancer::new(&spec(Balance::WeightedRoundRobin, &members, 5, 1000));
        let views = vec![MemberView::available(0); weights.len()];
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut counts = vec![0u64; weights.len()];
        for n in 1..=total * cycles {
            let s = b.select(&views, Timestamp(0), 0, &[]);
            prop_assert!(s.is_some());
            let Some(s) = s else { break };
            if let Some(c) = counts.get_mut(s.index) {
                *c += 1;
            }
            prop_assert_eq!(b.record(s, CallOutcome::Success, Timestamp(0)), None);
            for (&count, &w) in counts.iter().zip(&weights) {
                let ideal = n * u64::from(w);
                prop_assert!(count * total + 2 * total > ideal && count * total < ideal + 2 * total,
                    "n={} count={} weight={} of {}", n, count, w, total);
                if n % total == 0 {
                    prop_assert_eq!(count * total, ideal);
                }
            }
        }
    }

    /// Random selections, outcomes and pauses: an open member is never chosen, a half-open
    /// member never has two probes out, only closed members take normal calls, and a member
    /// that could take the call is never refused.
    #[test]
    fn selection_respects_breakers(
        strategy in strategy(),
        members in prop::collection::vec((1u32..4, 1u32..3), 1..6),
        threshold in 1u32..4,
        timeout_ms in 1u64..5_000,
        ops in prop::collection::vec(op(), 0..150),
    ) {
        let mut b = Balancer::new(&spec(strategy, &members, threshold, timeout_ms));
        let mut pending: Vec<Selection> = Vec::new();
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Advance(ms) => now += ms,
                Op::Record(i, outcome) => {
                    if !pending.is_empty() {
                        let s = pending.swap_remove(i % pending.len());
                        b.record(s, outcome, Timestamp(now));
                    }
                }
                Op::Select(views, random, mask) => {
                    let views: Vec<MemberView> = views
                        .iter()
                        .take(b.len())
                        .map(|&(available, in_flight)| MemberView { available, in_flight })
                        .collect();
                    let exclude: Vec<usize> = (0..b.len()).filter(|i| mask & (1 << i) != 0).collect();
                    let before: Vec<BreakerState> =
                        b.breaker_statuses(Timestamp(now)).iter().map(|s| s.state).collect();
                    let eligible = (0..b.len()).any(|i| {
                        views.get(i).is_some_and(|v| v.available)
                            && !exclude.contains(&i)
                            && b.breaker(i).is_some_and(|br| br.can_admit(Timestamp(now)))
                    });
                    let selection = b.select(&views, Timestamp(now), random, &exclude);
                    prop_assert_eq!(selection.is_some(), eligible);
                    let Some(s) = selection else { continue };
                    prop_assert!(views.get(s.index).is_some_and(|v| v.available));
                    prop_assert!(!exclude.contains(&s.index));
                    let state = before.get(s.index).copied();
                    prop_assert_ne!(state, Some(BreakerState::Open));
                    match s.admission() {
                        Admission::Normal => prop_assert_eq!(state, Some(BreakerState::Closed)),
                        Admission::Probe => {
                            prop_assert_eq!(state, Some(BreakerState::HalfOpen));
                            let probes = pending
                                .iter()
                                .filter(|p| p.index == s.index && p.admission() == Admission::Probe)
                                .count();
                            prop_assert_eq!(probes, 0, "second probe for member {}", s.index);
                        }
                    }
                    pending.push(s);
                }
            }
            for (i, br) in (0..b.len()).filter_map(|i| b.breaker(i).map(|br| (i, br))) {
                let probes = pending
                    .iter()
                    .filter(|p| p.index == i && p.admission() == Admission::Probe)
                    .count();
                prop_assert!(probes <= 1);
                prop_assert_eq!(br.probe_in_flight(), probes == 1);
            }
        }
    }

    /// One caller at a time against a model: the breaker opens exactly when `threshold`
    /// member failures come in a row (caller errors are invisible), half-opens exactly when
    /// the timeout has passed, and a probe decides between closed and open.
    #[test]
    fn breaker_follows_the_model(
        threshold in 1u32..5,
        timeout_ms in 1u64..1_000,
        steps in prop::collection::vec((outcome(), 0u64..600), 0..200),
    ) {
        let mut breaker = CircuitBreaker::new(BreakerConfig {
            failure_threshold: threshold,
            reset_timeout: Duration::from_millis(timeout_ms),
        });
        let mut run = 0u32;
        let mut opened_at: Option<u64> = None;
        let mut now = 0u64;
        for (outcome, pause) in steps {
            now += pause;
            let expected = match opened_at {
                None => BreakerState::Closed,
                Some(at) if now - at < timeout_ms => BreakerState::Open,
                Some(_) => BreakerState::HalfOpen,
            };
            prop_assert_eq!(breaker.state(Timestamp(now)), expected);
            let admitted = breaker.try_acquire(Timestamp(now));
            prop_assert_eq!(admitted.is_some(), expected != BreakerState::Open);
            let Some(admitted) = admitted else { continue };
            let change = breaker.record(admitted.permit, outcome, Timestamp(now));
            match (expected, outcome) {
                (_, CallOutcome::CallerError) => {}
                (_, CallOutcome::Success) => {
                    run = 0;
                    opened_at = None;
                }
                (BreakerState::Closed, CallOutcome::MemberFailure) => {
                    run += 1;
                    if run >= threshold {
                        opened_at = Some(now);
                    }
                }
                (_, CallOutcome::MemberFailure) => {
                    run += 1;
                    opened_at = Some(now);
                }
            }
            let after = if opened_at.is_some() { BreakerState::Open } else { BreakerState::Closed };
            let after = if outcome == CallOutcome::CallerError { expected } else { after };
            prop_assert_eq!(change.map(|c| c.to), (after != expected).then_some(after));
            prop_assert_eq!(breaker.consecutive_failures(), run);
            prop_assert_eq!(breaker.opened_at(), opened_at.map(Timestamp));
        }
    }
}
