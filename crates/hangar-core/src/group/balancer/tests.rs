use std::time::Duration;

use super::{Balancer, MemberView, Selection};
use crate::group::{
    Admission, BreakerConfig, BreakerState, CallOutcome, GroupSpec, MemberSpec, Strategy,
};
use crate::state::Timestamp;

const TIMEOUT_MS: u64 = 1_000;
const UP: MemberView = MemberView::available(0);
const DOWN: MemberView = MemberView::UNAVAILABLE;

fn t(ms: u64) -> Timestamp {
    Timestamp(ms)
}

fn group(strategy: Strategy, members: &[(&str, u32, u32)]) -> GroupSpec {
    GroupSpec {
        strategy,
        members: members
            .iter()
            .map(|&(provider, weight, priority)| MemberSpec {
                provider: provider.into(),
                weight,
                priority,
            })
            .collect(),
        circuit_breaker: BreakerConfig {
            failure_threshold: 2,
            reset_timeout: Duration::from_millis(TIMEOUT_MS),
        },
        ..GroupSpec::default()
    }
}

fn plain(strategy: Strategy, n: usize) -> Balancer {
    let ids = ["a", "b", "c", "d", "e"];
    let members: Vec<(&str, u32, u32)> = ids.iter().take(n).map(|id| (*id, 1, 1)).collect();
    Balancer::new(&group(strategy, &members))
}

fn pick(b: &mut Balancer, views: &[MemberView], now: u64) -> Selection {
    match b.select(views, t(now), 0, &[]) {
        Some(selection) => selection,
        None => panic!("nothing selected at {now}: {b:?}"),
    }
}

/// Selects and records `outcome`; returns the chosen index.
fn call(b: &mut Balancer, views: &[MemberView], outcome: CallOutcome, now: u64) -> usize {
    let selection = pick(b, views, now);
    let index = selection.index;
    b.record(selection, outcome, t(now));
    index
}

/// Opens member `index` (threshold 2) at `now` by failing calls that land on it.
fn open(b: &mut Balancer, index: usize, now: u64) {
    let mut views = vec![DOWN; b.len()];
    if let Some(view) = views.get_mut(index) {
        *view = UP;
    }
    for _ in 0..2 {
        assert_eq!(call(b, &views, CallOutcome::MemberFailure, now), index);
    }
    let state = b.breaker(index).map(|br| br.state(t(now)));
    assert_eq!(state, Some(BreakerState::Open));
}

#[test]
fn round_robin_spreads_evenly() {
    let mut b = plain(Strategy::RoundRobin, 4);
    let mut counts = [0u32; 4];
    for i in 0..1000 {
        let index = call(&mut b, &[UP; 4], CallOutcome::Success, i);
        counts[index] += 1;
    }
    assert_eq!(counts, [250; 4]);
}

#[test]
fn round_robin_skips_unavailable_and_excluded_members() {
    let mut b = plain(Strategy::RoundRobin, 3);
    let views = [UP, DOWN, UP];
    let order: Vec<usize> = (0..4)
        .map(|i| call(&mut b, &views, CallOutcome::Success, i))
        .collect();
    assert_eq!(order, [0, 2, 0, 2]);
    let retry = b.select(&[UP; 3], t(5), 0, &[0, 1]);
    assert_eq!(retry.as_ref().map(|s| s.index), Some(2));
    if let Some(s) = retry {
        b.record(s, CallOutcome::Success, t(5));
    }
    assert_eq!(b.select(&[UP; 3], t(5), 0, &[0, 1, 2]), None);
    assert_eq!(b.select(&[DOWN; 3], t(5), 0, &[]), None);
    // Views missing for some members count as unavailable.
    assert_eq!(call(&mut b, &[DOWN, UP], CallOutcome::Success, 6), 1);
    assert_eq!(
        Balancer::new(&GroupSpec::default()).select(&[], t(0), 0, &[]),
        None
    );
}

#[test]
fn weighted_round_robin_interleaves() {
    let spec = group(
        Strategy::WeightedRoundRobin,
        &[("a", 5, 1), ("b", 1, 1), ("c", 1, 1)],
    );
    let mut b = Balancer::new(&spec);
    let order: Vec<usize> = (0..14)
        .map(|i| call(&mut b, &[UP; 3], CallOutcome::Success, i))
        .collect();
    assert_eq!(order, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
}

#[test]
fn least_connections_prefers_the_idle_member() {
    let mut b = plain(Strategy::LeastConnections, 3);
    let views = [
        MemberView::available(3),
        MemberView::available(1),
        MemberView::available(2),
    ];
    for i in 0..10 {
        assert_eq!(call(&mut b, &views, CallOutcome::Success, i), 1);
    }
    // Ties take turns.
    let order: Vec<usize> = (0..6)
        .map(|i| call(&mut b, &[UP; 3], CallOutcome::Success, i))
        .collect();
    assert_eq!(order, [2, 0, 1, 2, 0, 1]);
}

#[test]
fn random_uses_the_number_passed_in() {
    let mut b = plain(Strategy::Random, 3);
    let views = [UP, DOWN, UP];
    for (random, expected) in [(0, 0), (1, 2), (2, 0), (u64::MAX, 2)] {
        let s = b.select(&views, t(0), random, &[]);
        assert_eq!(s.as_ref().map(|s| s.index), Some(expected), "{random}");
        if let Some(s) = s {
            b.record(s, CallOutcome::Success, t(0));
        }
    }
}

#[test]
fn priority_fails_over_and_returns_to_the_primary() {
    let spec = group(
        Strategy::Priority,
        &[("backup", 1, 2), ("primary", 1, 1), ("spare", 1, 3)],
    );
    let mut b = Balancer::new(&spec);
    assert_eq!(call(&mut b, &[UP; 3], CallOutcome::Success, 0), 1);
    // Unavailable primary: the backup takes over, then the primary again.
    assert_eq!(call(&mut b, &[UP, DOWN, UP], CallOutcome::Success, 1), 0);
    assert_eq!(call(&mut b, &[UP; 3], CallOutcome::Success, 2), 1);
    // An open breaker on the primary never blocks the healthy backup.
    open(&mut b, 1, 100);
    for now in [100, 500, 100 + TIMEOUT_MS - 1] {
        assert_eq!(call(&mut b, &[UP; 3], CallOutcome::Success, now), 0);
    }
    // After the timeout the primary gets one probe; meanwhile calls go to the backup.
    let probe = pick(&mut b, &[UP; 3], 100 + TIMEOUT_MS);
    assert_eq!((probe.index, probe.admission()), (1, Admission::Probe));
    assert_eq!(call(&mut b, &[UP; 3], CallOutcome::Success, 1200), 0);
    let closed = b.record(probe, CallOutcome::Success, t(1200));
    assert_eq!(closed.map(|tr| tr.to), Some(BreakerState::Closed));
    for now in 1200..1210 {
        assert_eq!(call(&mut b, &[UP; 3], CallOutcome::Success, now), 1);
    }
    // Primary and backup both open: the spare, not nothing.
    open(&mut b, 1, 2000);
    open(&mut b, 0, 2000);
    assert_eq!(call(&mut b, &[UP; 3], CallOutcome::Success, 2001), 2);
}

#[test]
fn equal_priorities_take_turns() {
    let spec = group(Strategy::Priority, &[("a", 1, 1), ("b", 1, 1), ("c", 1, 2)]);
    let mut b = Balancer::new(&spec);
    let order: Vec<usize> = (0..4)
        .map(|i| call(&mut b, &[UP; 3], CallOutcome::Success, i))
        .collect();
    assert_eq!(order, [0, 1, 0, 1]);
}

#[test]
fn only_the_chosen_member_spends_its_probe() {
    let mut b = plain(Strategy::RoundRobin, 2);
    open(&mut b, 0, 0);
    open(&mut b, 1, 0);
    let probe = pick(&mut b, &[UP; 2], TIMEOUT_MS);
    let other = 1 - probe.index;
    let untouched = b.breaker(other);
    assert_eq!(untouched.map(|br| br.probe_in_flight()), Some(false));
    assert_eq!(untouched.map(|br| br.can_admit(t(TIMEOUT_MS))), Some(true));
    let second = pick(&mut b, &[UP; 2], TIMEOUT_MS);
    assert_eq!(
        (second.index, second.admission()),
        (other, Admission::Probe)
    );
    assert_eq!(b.select(&[UP; 2], t(TIMEOUT_MS), 0, &[]), None);
    b.record(probe, CallOutcome::CallerError, t(TIMEOUT_MS));
    b.record(second, CallOutcome::Success, t(TIMEOUT_MS));
}

#[test]
fn caller_errors_never_evict_a_member() {
    let mut b = Balancer::new(&group(Strategy::Priority, &[("a", 1, 1), ("b", 1, 2)]));
    for i in 0..1000 {
        assert_eq!(call(&mut b, &[UP; 2], CallOutcome::CallerError, i), 0);
    }
    let status = b.breaker_statuses(t(1000));
    assert_eq!(status.first().map(|s| s.state), Some(BreakerState::Closed));
    assert_eq!(status.first().map(|s| s.consecutive_failures), Some(0));
}

#[test]
fn update_spec_keeps_breakers_of_remaining_members() {
    let mut b = plain(Strategy::RoundRobin, 3);
    open(&mut b, 1, 0);
    let stale = pick(&mut b, &[UP, DOWN, DOWN], 1);
    assert_eq!(stale.provider, "a");
    // Remove `a`, reorder, add `x`.
    let spec = group(Strategy::Priority, &[("c", 1, 1), ("b", 1, 1), ("x", 1, 1)]);
    b.update_spec(&spec);
    assert_eq!(b.strategy(), Strategy::Priority);
    assert_eq!(b.providers().collect::<Vec<_>>(), ["c", "b", "x"]);
    let states: Vec<BreakerState> = b.breaker_statuses(t(1)).iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::Closed
        ]
    );
    // `a` again is a new member: the selection made for the old one does not reach it.
    let spec = group(
        Strategy::Priority,
        &[("a", 1, 1), ("c", 1, 1), ("b", 1, 1), ("x", 1, 1)],
    );
    b.update_spec(&spec);
    assert_eq!(b.record(stale, CallOutcome::MemberFailure, t(1)), None);
    assert_eq!(b.breaker(0).map(|br| br.consecutive_failures()), Some(0));
    // A member that stays keeps getting reports, wherever it moved.
    let for_x = pick(&mut b, &[DOWN, DOWN, DOWN, UP], 2);
    b.update_spec(&group(Strategy::Priority, &[("x", 1, 1), ("b", 1, 1)]));
    assert_eq!(b.record(for_x, CallOutcome::MemberFailure, t(3)), None);
    assert_eq!(b.breaker(0).map(|br| br.consecutive_failures()), Some(1));
}

#[test]
fn reset_all_and_poll_report_changes() {
    let mut b = plain(Strategy::RoundRobin, 3);
    open(&mut b, 0, 0);
    open(&mut b, 2, 0);
    assert!(b.poll(t(TIMEOUT_MS - 1)).is_empty());
    let half: Vec<(usize, BreakerState)> = b
        .poll(t(TIMEOUT_MS))
        .into_iter()
        .map(|(i, tr)| (i, tr.to))
        .collect();
    assert_eq!(
        half,
        [(0, BreakerState::HalfOpen), (2, BreakerState::HalfOpen)]
    );
    let closed: Vec<usize> = b
        .reset_all(t(TIMEOUT_MS))
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(closed, [0, 2]);
    assert!(
        b.breaker_statuses(t(TIMEOUT_MS))
            .iter()
            .all(|s| s.state == BreakerState::Closed && s.consecutive_failures == 0)
    );
}
