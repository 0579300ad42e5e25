//! Groups: several providers behind one name, with load balancing, failover and a
//! circuit breaker per member.
//!
//! - [`GroupSpec`]: strategy, `min_healthy`, members (weight, priority), breaker settings.
//! - [`CircuitBreaker`]: per member, closed → open → half-open → closed, counting only
//!   [`CallOutcome::MemberFailure`]s in a row.
//! - [`Balancer`]: picks the member for one call; an open member is never picked, a half-open
//!   one gets one probe at a time, and skipping unavailable members is what makes failover.
//! - [`group_state`]: healthy / partial / degraded / inactive from member counts.
//!
//! ```yaml
//! groups:
//!   llm-pool:
//!     strategy: priority        # lower priority value = preferred
//!     min_healthy: 1
//!     members:
//!       - { provider: llm-1, priority: 1 }
//!       - { provider: llm-2, priority: 2 }
//!     circuit_breaker: { failure_threshold: 5, reset_timeout_s: 30 }
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spec::{SpecError, validate_provider_id};

mod balancer;
mod breaker;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use balancer::{Balancer, MemberView, Selection};
pub use breaker::{
    Admission, Admitted, BreakerConfig, BreakerState, BreakerStatus, BreakerTransition,
    CallOutcome, CircuitBreaker, DEFAULT_FAILURE_THRESHOLD, DEFAULT_RESET_TIMEOUT, Permit,
};

/// How a group picks the member for a call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each eligible member in turn.
    #[default]
    RoundRobin,
    /// In proportion to `weight`, interleaved (nginx's smooth weighted round robin).
    WeightedRoundRobin,
    /// The member with the fewest calls in flight; ties in turn.
    LeastConnections,
    /// Uniformly at random (from a random number the caller passes in).
    Random,
    /// Failover: the lowest `priority` value among eligible members; ties in turn.
    Priority,
}

impl Strategy {
    /// All five strategies.
    pub const ALL: [Strategy; 5] = [
        Self::RoundRobin,
        Self::WeightedRoundRobin,
        Self::LeastConnections,
        Self::Random,
        Self::Priority,
    ];

    /// The snake_case name used in config, API and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::WeightedRoundRobin => "weighted_round_robin",
            Self::LeastConnections => "least_connections",
            Self::Random => "random",
            Self::Priority => "priority",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a strategy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown strategy `{0}` (expected round_robin, weighted_round_robin, least_connections, random or priority)"
)]
pub struct ParseStrategyError(pub String);

impl FromStr for Strategy {
    type Err = ParseStrategyError;

    /// Accepts the snake_case names, in any case, with `-` for `_`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == wanted)
            .ok_or_else(|| ParseStrategyError(s.to_owned()))
    }
}

/// One member of a group: a provider, with its routing weight and priority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a group member (a map with provider)"
)]
pub struct MemberSpec {
    /// The provider's id (`member_id` is accepted too, as in the REST body).
    #[serde(alias = "member_id")]
    pub provider: String,
    /// Share of calls under `weighted_round_robin` (default 1, at least 1); other strategies
    /// ignore it.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: u32,
    /// Failover order under `priority`: lower values are preferred (default 1); other
    /// strategies ignore it.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub priority: u32,
}

impl MemberSpec {
    /// A member for `provider` with weight 1 and priority 1.
    pub fn new(provider: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            weight: 1,
            priority: 1,
        }
    }
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// A group of providers behind one name. Unknown fields are rejected; defaults are left out
/// when serialized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a group spec (a map of its fields)"
)]
pub struct GroupSpec {
    /// How members are picked (default `round_robin`).
    pub strategy: Strategy,
    /// Healthy members needed for the group to count as healthy or partial (default 1, at
    /// least 1). More than the members is allowed (a group being built up) but then the group
    /// is at best degraded.
    pub min_healthy: u32,
    /// The members, in order (the order breaks ties).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberSpec>,
    /// Breaker settings, the same for every member.
    #[serde(skip_serializing_if = "BreakerConfig::is_default")]
    pub circuit_breaker: BreakerConfig,
    /// Free text shown in listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Default for GroupSpec {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            min_healthy: 1,
            members: Vec::new(),
            circuit_breaker: BreakerConfig::default(),
            description: None,
        }
    }
}

/// Longest accepted breaker reset timeout: one day.
pub const MAX_RESET_TIMEOUT_S: u64 = 86_400;

impl GroupSpec {
    /// A group with `strategy` and these members (weight 1, priority 1), other fields at
    /// their defaults.
    pub fn new<I, S>(strategy: Strategy, providers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            strategy,
            members: providers.into_iter().map(MemberSpec::new).collect(),
            ..Self::default()
        }
    }

    /// Index of the member for `provider`.
    pub fn member_index(&self, provider: &str) -> Option<usize> {
        self.members.iter().position(|m| m.provider == provider)
    }

    /// Checks the group id (same rules as provider ids: groups share their namespace) and
    /// every field; returns the first problem. Error fields are relative to the group
    /// (`members[1].weight`, `circuit_breaker.failure_threshold`, or `id`). Whether members
    /// name existing providers is checked by the config, which knows them.
    pub fn validate(&self, id: &str) -> Result<(), SpecError> {
        validate_provider_id(id).map_err(|err| {
            SpecError::new(
                err.field,
                err.message.replacen("provider id", "group id", 1),
            )
        })?;
        if self.min_healthy == 0 {
            return Err(SpecError::new("min_healthy", "must be at least 1"));
        }
        for (i, member) in self.members.iter().enumerate() {
            let field = |name: &str| format!("members[{i}].{name}");
            validate_provider_id(&member.provider)
                .map_err(|err| SpecError::new(field("provider"), err.message))?;
            if self
                .members
                .iter()
                .take(i)
                .any(|seen| seen.provider == member.provider)
            {
                return Err(SpecError::new(
                    field("provider"),
                    format!("provider `{}` is listed twice", member.provider),
                ));
            }
            if member.weight == 0 {
                return Err(SpecError::new(field("weight"), "must be at least 1"));
            }
        }
        let breaker = &self.circuit_breaker;
        if breaker.failure_threshold == 0 {
            return Err(SpecError::new(
                "circuit_breaker.failure_threshold",
                "must be at least 1",
            ));
        }
        let timeout = breaker.reset_timeout;
        if timeout.is_zero() || timeout > Duration::from_secs(MAX_RESET_TIMEOUT_S) {
            return Err(SpecError::new(
                "circuit_breaker.reset_timeout_s",
                format!(
                    "must be more than 0 and at most {MAX_RESET_TIMEOUT_S}, got {}",
                    timeout.as_secs_f64()
                ),
            ));
        }
        Ok(())
    }
}

/// The health of a group as a whole (lower case in the API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupState {
    /// Every member is healthy (and at least `min_healthy` of them).
    Healthy,
    /// Some members are not healthy, but at least `min_healthy` are.
    Partial,
    /// At least one member is healthy, but fewer than `min_healthy`.
    Degraded,
    /// No healthy member, or no members at all.
    Inactive,
}

impl GroupState {
    /// The lower-case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Partial => "partial",
            Self::Degraded => "degraded",
            Self::Inactive => "inactive",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The group state from how many of `total` members are healthy. Which member is healthy
/// (its provider can take calls and its breaker is closed) is the runtime's call.
///
/// inactive if none is healthy (or there are no members); healthy if all are and that is at
/// least `min_healthy`; partial if at least `min_healthy` are; degraded otherwise.
/// `healthy` above `total` counts as `total`.
pub fn group_state(healthy: usize, total: usize, min_healthy: u32) -> GroupState {
    let healthy = healthy.min(total);
    let enough = u64::try_from(healthy).unwrap_or(u64::MAX) >= u64::from(min_healthy);
    if healthy == 0 {
        GroupState::Inactive
    } else if !enough {
        GroupState::Degraded
    } else if healthy == total {
        GroupState::Healthy
    } else {
        GroupState::Partial
    }
}
