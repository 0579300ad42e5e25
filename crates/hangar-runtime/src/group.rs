//! Groups at run time: one name in front of several providers, a balancer
//! with per-member circuit breakers, and failover for requests that never
//! reached a member.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hangar_core::{
    Balancer, BreakerState, BreakerTransition, CallOutcome, GroupSpec, GroupState, MemberView,
    ProviderState, Selection, Timestamp, group_state,
};
use serde::Serialize;
use tokio::time::Instant;

use crate::events::EventBus;
use crate::provider::{Provider, ProviderSource};

/// A point-in-time view of one member.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// Provider id.
    pub member_id: String,
    /// Routing weight.
    pub weight: u32,
    /// Failover priority (lower first).
    pub priority: u32,
    /// The provider's state (`missing` if no such provider).
    pub state: String,
    /// Its breaker.
    pub circuit_breaker_state: BreakerState,
    /// Member failures in a row.
    pub consecutive_failures: u32,
    /// Calls in flight on the provider.
    pub in_flight: usize,
    /// Counted as healthy for the group state.
    pub healthy: bool,
}

/// A point-in-time view of one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    /// Group id.
    pub group_id: String,
    /// healthy, partial, degraded or inactive.
    pub state: GroupState,
    /// Selection strategy.
    pub strategy: hangar_core::Strategy,
    /// Minimum healthy members.
    pub min_healthy: u32,
    /// Free text.
    pub description: Option<String>,
    /// `open` if any member's breaker is open, else `half_open` if any is
    /// half-open, else `closed`.
    pub circuit_breaker_state: BreakerState,
    /// Members.
    pub members: Vec<MemberStatus>,
    /// Tools not offered by every listed member (members should match).
    pub tool_differences: Vec<String>,
    /// Config file or API.
    pub source: ProviderSource,
}

/// One group.
pub struct Group {
    id: String,
    source: ProviderSource,
    spec: std::sync::RwLock<Arc<GroupSpec>>,
    balancer: Mutex<Balancer>,
    epoch: Instant,
    random: std::collections::hash_map::RandomState,
    counter: std::sync::atomic::AtomicU64,
    events: EventBus,
    metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Group {
    pub(crate) fn new(
        id: &str,
        spec: GroupSpec,
        source: ProviderSource,
        epoch: Instant,
        events: EventBus,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            id: id.to_owned(),
            source,
            balancer: Mutex::new(Balancer::new(&spec)),
            spec: std::sync::RwLock::new(Arc::new(spec)),
            epoch,
            random: std::collections::hash_map::RandomState::new(),
            counter: std::sync::atomic::AtomicU64::new(0),
            events,
            metrics,
        })
    }

    /// Group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where its definition came from.
    pub fn source(&self) -> ProviderSource {
        self.source
    }

    /// The current spec.
    pub fn spec(&self) -> Arc<GroupSpec> {
        self.spec
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the spec; breakers of members that stay are kept.
    pub fn set_spec(&self, spec: GroupSpec) {
        crate::lock(&self.balancer).update_spec(&spec);
        *self
            .spec
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(spec);
    }

    fn now(&self) -> Timestamp {
        crate::provider::millis_since(self.epoch)
    }

    fn random(&self) -> u64 {
        let mut h = self.random.build_hasher();
        h.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
        h.finish()
    }

    /// Picks a member for one call among `members` (the member providers in
    /// spec order, `None` for missing ones), skipping `exclude`d indices.
    pub(crate) fn select(
        &self,
        members: &[Option<Arc<Provider>>],
        exclude: &[usize],
    ) -> Option<Selection> {
        let views: Vec<MemberView> = members
            .iter()
            .map(|m| match m {
                Some(p) if p.is_available() => MemberView::available(p.in_flight_u32()),
                _ => MemberView::UNAVAILABLE,
            })
            .collect();
        let now = self.now();
        let selection = crate::lock(&self.balancer).select(&views, now, self.random(), exclude)?;
        if let Some(t) = &selection.transition {
            self.log_transition(&selection.provider, t);
        }
        Some(selection)
    }

    /// Reports how a selected call ended.
    pub(crate) fn record(&self, selection: Selection, outcome: CallOutcome) {
        let member = selection.provider.clone();
        let t = crate::lock(&self.balancer).record(selection, outcome, self.now());
        if let Some(t) = t {
            self.log_transition(&member, &t);
        }
    }

    fn log_transition(&self, member: &str, t: &BreakerTransition) {
        tracing::info!(
            group = %self.id,
            member,
            from = %t.from,
            to = %t.to,
            consecutive_failures = t.consecutive_failures,
            "circuit breaker changed"
        );
        self.metrics
            .breaker_transition(&self.id, member, t.to.as_str());
        self.events.emit(
            format!("group:{}", self.id),
            "CircuitBreakerStateChanged",
            serde_json::json!({
                "group_id": self.id,
                "member_id": member,
                "from": t.from,
                "to": t.to,
                "consecutive_failures": t.consecutive_failures,
            }),
        );
    }

    /// Closes every breaker (rebalance).
    pub fn reset(&self) {
        let now = self.now();
        let spec = self.spec();
        for (i, t) in crate::lock(&self.balancer).reset_all(now) {
            if let Some(m) = spec.members.get(i) {
                self.log_transition(&m.provider, &t);
            }
        }
    }

    /// A snapshot for the API.
    pub(crate) fn status(&self, members: &[Option<Arc<Provider>>]) -> GroupStatus {
        let spec = self.spec();
        let breakers = crate::lock(&self.balancer).breaker_statuses(self.now());
        let mut out = Vec::with_capacity(spec.members.len());
        for (i, m) in spec.members.iter().enumerate() {
            let provider = members.get(i).and_then(Option::as_ref);
            let b = breakers.get(i);
            let breaker_state = b.map_or(BreakerState::Closed, |b| b.state);
            let state = provider.map(|p| p.state());
            let healthy = breaker_state == BreakerState::Closed
                && state.is_some_and(|s| {
                    matches!(
                        s,
                        ProviderState::Ready | ProviderState::Cold | ProviderState::Initializing
                    )
                });
            out.push(MemberStatus {
                member_id: m.provider.clone(),
                weight: m.weight,
                priority: m.priority,
                state: state.map_or_else(|| "missing".to_owned(), |s| s.to_string()),
                circuit_breaker_state: breaker_state,
                consecutive_failures: b.map_or(0, |b| b.consecutive_failures),
                in_flight: provider.map_or(0, |p| p.status().in_flight),
                healthy,
            });
        }
        let healthy = out.iter().filter(|m| m.healthy).count();
        let overall = if out
            .iter()
            .any(|m| m.circuit_breaker_state == BreakerState::Open)
        {
            BreakerState::Open
        } else if out
            .iter()
            .any(|m| m.circuit_breaker_state == BreakerState::HalfOpen)
        {
            BreakerState::HalfOpen
        } else {
            BreakerState::Closed
        };
        GroupStatus {
            group_id: self.id.clone(),
            state: group_state(healthy, out.len(), spec.min_healthy),
            strategy: spec.strategy,
            min_healthy: spec.min_healthy,
            description: spec.description.clone(),
            circuit_breaker_state: overall,
            members: out,
            tool_differences: tool_differences(members),
            source: self.source,
        }
    }
}

/// Tool names some listed members have and others lack.
pub(crate) fn tool_differences(members: &[Option<Arc<Provider>>]) -> Vec<String> {
    let sets: Vec<BTreeSet<String>> = members
        .iter()
        .flatten()
        .filter_map(|p| p.listing())
        .map(|l| l.tools.iter().map(|t| t.name.to_string()).collect())
        .collect();
    let Some(first) = sets.first() else {
        return Vec::new();
    };
    let union: BTreeSet<String> = sets.iter().flatten().cloned().collect();
    let common: BTreeSet<String> = sets.iter().skip(1).fold(first.clone(), |acc, s| {
        acc.intersection(s).cloned().collect()
    });
    union.difference(&common).cloned().collect()
}

/// Lease bookkeeping for a call routed through a group: reports the outcome
/// to the member's breaker exactly once, releasing the slot if the call
/// ended without a report (for instance, the client went away).
pub(crate) struct GroupTicket {
    pub(crate) group: Arc<Group>,
    selection: Mutex<Option<Selection>>,
    reported: AtomicBool,
    /// The member provider's own lease guard (in-flight count, idle time).
    pub(crate) _inner: Box<dyn std::any::Any + Send + Sync>,
}

impl GroupTicket {
    pub(crate) fn new(
        group: Arc<Group>,
        selection: Selection,
        inner: Box<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        Self {
            group,
            selection: Mutex::new(Some(selection)),
            reported: AtomicBool::new(false),
            _inner: inner,
        }
    }

    /// Records the outcome once.
    pub(crate) fn finish(&self, outcome: CallOutcome) {
        if self.reported.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(sel) = crate::lock(&self.selection).take() {
            self.group.record(sel, outcome);
        }
    }
}

impl Drop for GroupTicket {
    fn drop(&mut self) {
        self.finish(CallOutcome::CallerError);
    }
}
