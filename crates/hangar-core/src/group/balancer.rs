//! Member selection for one group: the strategy, the round-robin cursor, smooth weighted
//! round-robin weights and one circuit breaker per member.

use serde::{Deserialize, Serialize};

use super::breaker::{
    Admission, BreakerStatus, BreakerTransition, CallOutcome, CircuitBreaker, Permit,
};
use super::{BreakerConfig, GroupSpec, MemberSpec, Strategy};
use crate::state::Timestamp;

#[cfg(test)]
mod tests;

/// What the runtime knows about one member at selection time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// The provider exists and can take calls (running, or cold and startable); the runtime
    /// decides. Unavailable members are never picked.
    pub available: bool,
    /// Calls to this member not finished yet (used by `least_connections`).
    pub in_flight: u32,
}

impl MemberView {
    /// An available member with `in_flight` calls running.
    pub const fn available(in_flight: u32) -> Self {
        Self {
            available: true,
            in_flight,
        }
    }

    /// A member that cannot take calls.
    pub const UNAVAILABLE: Self = Self {
        available: false,
        in_flight: 0,
    };
}

/// The member picked for one call. Report how the call ended with [`Balancer::record`].
#[must_use = "a selection must be recorded, or a probe slot stays taken"]
#[derive(Debug, PartialEq, Eq)]
pub struct Selection {
    /// Index of the member in the group's member list (as of the selection).
    pub index: usize,
    /// The member's provider id.
    pub provider: String,
    /// The open → half-open change this selection applied, if any (to announce).
    pub transition: Option<BreakerTransition>,
    incarnation: u64,
    permit: Permit,
}

impl Selection {
    /// Normal call, or the single probe of a half-open breaker.
    pub fn admission(&self) -> Admission {
        self.permit.admission()
    }
}

/// One member's routing data and breaker.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    provider: String,
    weight: u32,
    priority: u32,
    breaker: CircuitBreaker,
    /// Smooth weighted round-robin running weight.
    current: i64,
    /// Unique within the balancer, so a selection made before a member was removed and
    /// added again is not reported to the new member.
    incarnation: u64,
}

/// Selection state of one group. Pure: the runtime passes in member views, the time and a
/// random number, and reports every selection's outcome.
///
/// Invariants: a member whose breaker is open (timeout not elapsed) is never picked; a
/// half-open member has at most one probe in flight; only the picked member's breaker is
/// touched by a selection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balancer {
    strategy: Strategy,
    breaker_config: BreakerConfig,
    members: Vec<Member>,
    cursor: usize,
    next_incarnation: u64,
}

impl Balancer {
    /// A balancer for `spec`'s members, all breakers closed.
    pub fn new(spec: &GroupSpec) -> Self {
        let mut balancer = Self {
            strategy: spec.strategy,
            breaker_config: spec.circuit_breaker,
            members: Vec::new(),
            cursor: 0,
            next_incarnation: 0,
        };
        balancer.update_spec(spec);
        balancer
    }

    /// Applies a changed spec: strategy, weights, priorities and breaker settings. Members
    /// that remain (by provider id) keep their breaker; new members start closed. Running
    /// weights of weighted round-robin restart from zero.
    pub fn update_spec(&mut self, spec: &GroupSpec) {
        self.strategy = spec.strategy;
        self.breaker_config = spec.circuit_breaker;
        let mut old = std::mem::take(&mut self.members);
        let mut members = Vec::with_capacity(spec.members.len());
        for m in &spec.members {
            let member = match old.iter().position(|o| o.provider == m.provider) {
                Some(pos) => {
                    let mut kept = old.swap_remove(pos);
                    kept.breaker.set_config(spec.circuit_breaker);
                    kept.weight = m.weight.max(1);
                    kept.priority = m.priority;
                    kept.current = 0;
                    kept
                }
                None => self.new_member(m),
            };
            members.push(member);
        }
        self.members = members;
    }

    fn new_member(&mut self, spec: &MemberSpec) -> Member {
        let incarnation = self.next_incarnation;
        self.next_incarnation = self.next_incarnation.wrapping_add(1);
        Member {
            provider: spec.provider.clone(),
            weight: spec.weight.max(1),
            priority: spec.priority,
            breaker: CircuitBreaker::new(self.breaker_config),
            current: 0,
            incarnation,
        }
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Provider ids of the members, in order.
    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.provider.as_str())
    }

    /// The breaker of member `index`.
    pub fn breaker(&self, index: usize) -> Option<&CircuitBreaker> {
        self.members.get(index).map(|m| &m.breaker)
    }

    /// Every member's breaker at `now`, in member order.
    pub fn breaker_statuses(&self, now: Timestamp) -> Vec<BreakerStatus> {
        self.members.iter().map(|m| m.breaker.status(now)).collect()
    }

    /// Picks the member for one call among those that are available in `views` (indexed
    /// like the members; a missing view counts as unavailable), not in `exclude` (members
    /// already tried for this call) and admitted by their breaker. `random` is used by the
    /// `random` strategy only. `None` if no member qualifies.
    ///
    /// Only the picked member's breaker is asked for admission, so a probe slot is taken only
    /// for the member that will really be called.
    pub fn select(
        &mut self,
        views: &[MemberView],
        now: Timestamp,
        random: u64,
        exclude: &[usize],
    ) -> Option<Selection> {
        let eligible: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.is_eligible(i, views, now, exclude))
            .collect();
        let index = match self.strategy {
            Strategy::RoundRobin => self.next_in_turn(&eligible),
            Strategy::WeightedRoundRobin => self.smooth_weighted(&eligible),
            Strategy::LeastConnections => {
                let load = |i: usize| views.get(i).map_or(u32::MAX, |v| v.in_flight);
                let least = eligible.iter().map(|&i| load(i)).min();
                let tied: Vec<usize> = eligible
                    .iter()
                    .copied()
                    .filter(|&i| Some(load(i)) == least)
                    .collect();
                self.next_in_turn(&tied)
            }
            Strategy::Random => {
                let len = u64::try_from(eligible.len()).ok().filter(|&n| n > 0)?;
                let pick = usize::try_from(random % len).ok()?;
                eligible.get(pick).copied()
            }
            Strategy::Priority => {
                let priority = |i: usize| self.members.get(i).map_or(u32::MAX, |m| m.priority);
                let best = eligible.iter().map(|&i| priority(i)).min();
                let tied: Vec<usize> = eligible
                    .iter()
                    .copied()
                    .filter(|&i| Some(priority(i)) == best)
                    .collect();
                self.next_in_turn(&tied)
            }
        }?;
        let member = self.members.get_mut(index)?;
        let admitted = member.breaker.try_acquire(now)?;
        Some(Selection {
            index,
            provider: member.provider.clone(),
            transition: admitted.transition,
            incarnation: member.incarnation,
            permit: admitted.permit,
        })
    }

    /// Reports how the call of `selection` ended; returns the member's breaker change, if
    /// any. A selection whose member was removed since is ignored.
    pub fn record(
        &mut self,
        selection: Selection,
        outcome: CallOutcome,
        now: Timestamp,
    ) -> Option<BreakerTransition> {
        let member = self
            .members
            .iter_mut()
            .find(|m| m.incarnation == selection.incarnation)?;
        member.breaker.record(selection.permit, outcome, now)
    }

    /// Applies open → half-open for every member whose reset timeout has elapsed, so the
    /// changes can be announced on time. Returns `(member index, change)` pairs.
    pub fn poll(&mut self, now: Timestamp) -> Vec<(usize, BreakerTransition)> {
        self.members
            .iter_mut()
            .enumerate()
            .filter_map(|(i, m)| m.breaker.poll(now).map(|t| (i, t)))
            .collect()
    }

    /// Closes every breaker and clears its count (rebalance). Returns the changes.
    pub fn reset_all(&mut self, now: Timestamp) -> Vec<(usize, BreakerTransition)> {
        self.members
            .iter_mut()
            .enumerate()
            .filter_map(|(i, m)| m.breaker.reset(now).map(|t| (i, t)))
            .collect()
    }

    fn is_eligible(&self, i: usize, views: &[MemberView], now: Timestamp, ex: &[usize]) -> bool {
        let available = views.get(i).is_some_and(|v| v.available);
        let admits = self
            .members
            .get(i)
            .is_some_and(|m| m.breaker.can_admit(now));
        available && admits && !ex.contains(&i)
    }

    /// The first candidate at or after the cursor (wrapping); moves the cursor past it.
    /// `candidates` is in ascending order.
    fn next_in_turn(&mut self, candidates: &[usize]) -> Option<usize> {
        let pick = candidates
            .iter()
            .copied()
            .find(|&i| i >= self.cursor)
            .or_else(|| candidates.first().copied())?;
        self.cursor = pick.saturating_add(1);
        Some(pick)
    }

    /// nginx's smooth weighted round-robin over the candidates: each gains its weight, the
    /// largest running weight wins (first on ties) and gives back the candidates' total.
    fn smooth_weighted(&mut self, candidates: &[usize]) -> Option<usize> {
        let mut total: i64 = 0;
        let mut best: Option<(usize, i64)> = None;
        for &i in candidates {
            let Some(member) = self.members.get_mut(i) else {
                continue;
            };
            let weight = i64::from(member.weight);
            member.current = member.current.saturating_add(weight);
            total = total.saturating_add(weight);
            if best.is_none_or(|(_, current)| member.current > current) {
                best = Some((i, member.current));
            }
        }
        let (pick, _) = best?;
        if let Some(member) = self.members.get_mut(pick) {
            member.current = member.current.saturating_sub(total);
        }
        Some(pick)
    }
}
