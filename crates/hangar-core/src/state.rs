//! The provider state machine, with failure counting and restart backoff.
//!
//! Every state change of a provider goes through [`ProviderStateMachine::apply`]. Time is
//! passed in as a [`Timestamp`]; nothing here reads a clock.
//!
//! | from | event | to |
//! |---|---|---|
//! | cold | `StartRequested` | initializing |
//! | initializing | `Initialized` | ready |
//! | initializing | `StartFailed`, `Exited` | dead |
//! | initializing | `StopRequested` | cold |
//! | ready | `CheckFailed` (`failure_threshold` in a row) | degraded |
//! | ready / degraded | `Exited` | dead (crashed) |
//! | degraded | `CheckSucceeded` | ready |
//! | degraded | `CheckFailed` (`max_failures` in a row) | dead |
//! | ready / degraded | `StopRequested`, `IdleExpired` | cold |
//! | dead | `StartRequested`, `BackoffElapsed` | initializing |
//! | dead | `StopRequested` | cold (no more restarts) |
//!
//! Events that arrive late or repeat something already true are accepted without a change
//! (`Ok(None)`): `StartRequested` while initializing/ready/degraded, `StopRequested` and
//! `IdleExpired` while cold, `Exited` while cold or dead, `CheckSucceeded` while ready, and a
//! `CheckFailed` below its threshold. Every other pair is a [`TransitionError`] and leaves the
//! machine unchanged.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// Milliseconds on a monotonic clock chosen by the caller (e.g. since the engine started).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The clock's origin.
    pub const ZERO: Self = Self(0);

    /// A timestamp `ms` milliseconds after the clock's origin.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the clock's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, or zero if `earlier` is later than `self`.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// This timestamp plus `d` (whole milliseconds), saturating at the clock's end.
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ms))
    }
}

/// The lifecycle state of one provider (lower case in the API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderState {
    /// Not running; starts on first use or on `start`.
    Cold,
    /// Spawned or connecting; the MCP handshake is not done yet.
    Initializing,
    /// Handshake done, tools listed, calls accepted.
    Ready,
    /// Running but failing health checks or calls; still accepts calls.
    Degraded,
    /// Failed to start, crashed or failed too often; restarted after a backoff.
    Dead,
}

impl ProviderState {
    /// All five states.
    pub const ALL: [ProviderState; 5] = [
        Self::Cold,
        Self::Initializing,
        Self::Ready,
        Self::Degraded,
        Self::Dead,
    ];

    /// The lower-case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cold => "cold",
            Self::Initializing => "initializing",
            Self::Ready => "ready",
            Self::Degraded => "degraded",
            Self::Dead => "dead",
        }
    }

    /// Whether the provider is up and can take calls (ready or degraded).
    pub fn is_running(self) -> bool {
        matches!(self, Self::Ready | Self::Degraded)
    }
}

impl fmt::Display for ProviderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened to a provider, fed to [`ProviderStateMachine::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderEvent {
    /// `start` was asked for, or the first call arrived.
    StartRequested,
    /// The MCP `initialize` handshake is done and tools are listed.
    Initialized,
    /// Spawn, connect or handshake failed.
    StartFailed {
        /// Why.
        cause: String,
    },
    /// A health check or a call failed (upstream failures only).
    CheckFailed {
        /// Why.
        cause: String,
    },
    /// A health check or a call succeeded.
    CheckSucceeded,
    /// The process exited, or the connection dropped.
    Exited {
        /// Exit status or connection error.
        cause: String,
    },
    /// `stop` was asked for.
    StopRequested,
    /// No calls for `idle_ttl_s`.
    IdleExpired,
    /// The restart backoff of a dead provider is over.
    BackoffElapsed,
}

impl ProviderEvent {
    /// The event's snake_case name, as reported in [`TransitionError`].
    pub fn name(&self) -> &'static str {
        match self {
            Self::StartRequested => "start_requested",
            Self::Initialized => "initialized",
            Self::StartFailed { .. } => "start_failed",
            Self::CheckFailed { .. } => "check_failed",
            Self::CheckSucceeded => "check_succeeded",
            Self::Exited { .. } => "exited",
            Self::StopRequested => "stop_requested",
            Self::IdleExpired => "idle_expired",
            Self::BackoffElapsed => "backoff_elapsed",
        }
    }
}

/// A state change, with its reason (becomes a `ProviderStateChanged` event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// State before.
    pub from: ProviderState,
    /// State after.
    pub to: ProviderState,
    /// Human-readable reason, including the failure cause if any.
    pub reason: String,
    /// When it happened.
    pub at: Timestamp,
}

/// An event that makes no sense in the current state; the machine is left unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event `{event}` is not valid in state {from}")]
pub struct TransitionError {
    /// The state the machine was (and still is) in.
    pub from: ProviderState,
    /// The event's name ([`ProviderEvent::name`]).
    pub event: &'static str,
}

/// Exponential restart backoff for dead providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffPolicy {
    /// Delay before the first restart of a crash streak.
    pub initial: Duration,
    /// Upper bound for any delay.
    pub max: Duration,
    /// Factor between consecutive delays (values below 1 act as 1).
    pub multiplier: u32,
    /// A provider that was ready at least this long before it died starts a new streak.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2,
            reset_after: Duration::from_secs(60),
        }
    }
}

impl BackoffPolicy {
    /// Delay before restarting after the `streak`-th crash in a row (1-based; 0 acts as 1):
    /// `initial * multiplier^(streak-1)`, capped at `max`.
    pub fn delay(&self, streak: u32) -> Duration {
        let exponent = streak.saturating_sub(1);
        self.multiplier
            .max(1)
            .checked_pow(exponent)
            .and_then(|factor| self.initial.checked_mul(factor))
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// Thresholds of the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailurePolicy {
    /// Failures in a row before ready → degraded (0 acts as 1).
    pub failure_threshold: u32,
    /// Failures in a row, counted from the first one, before degraded → dead (values below
    /// `failure_threshold` act as `failure_threshold`).
    pub max_failures: u32,
    /// Restart backoff while dead.
    pub backoff: BackoffPolicy,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            max_failures: 6,
            backoff: BackoffPolicy::default(),
        }
    }
}

/// The state of one provider and the counters that drive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderStateMachine {
    policy: FailurePolicy,
    state: ProviderState,
    state_since: Timestamp,
    ready_since: Option<Timestamp>,
    consecutive_failures: u32,
    last_cause: Option<String>,
    restart_count: u64,
    crash_streak: u32,
}

impl ProviderStateMachine {
    /// A cold machine (since [`Timestamp::ZERO`]) with `policy`, thresholds normalized as
    /// documented on [`FailurePolicy`].
    pub fn new(policy: FailurePolicy) -> Self {
        Self {
            policy: Self::normalized(policy),
            state: ProviderState::Cold,
            state_since: Timestamp::ZERO,
            ready_since: None,
            consecutive_failures: 0,
            last_cause: None,
            restart_count: 0,
            crash_streak: 0,
        }
    }

    fn normalized(policy: FailurePolicy) -> FailurePolicy {
        let failure_threshold = policy.failure_threshold.max(1);
        FailurePolicy {
            failure_threshold,
            max_failures: policy.max_failures.max(failure_threshold),
            backoff: policy.backoff,
        }
    }

    /// Replaces the policy (normalized as by [`Self::new`]) without touching
    /// the state or the counters: the new thresholds decide from the next
    /// event on.
    pub fn set_policy(&mut self, policy: FailurePolicy) {
        self.policy = Self::normalized(policy);
    }

    /// The (normalized) policy.
    pub fn policy(&self) -> &FailurePolicy {
        &self.policy
    }

    /// The current state.
    pub fn state(&self) -> ProviderState {
        self.state
    }

    /// When the current state was entered.
    pub fn state_since(&self) -> Timestamp {
        self.state_since
    }

    /// Health check or call failures in a row since the last success or start.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Cause of the latest failure; cleared when the provider becomes ready or cold.
    pub fn last_cause(&self) -> Option<&str> {
        self.last_cause.as_deref()
    }

    /// How many times the provider was started again after dying.
    pub fn restart_count(&self) -> u64 {
        self.restart_count
    }

    /// Deaths in a row without a stop or a long enough ready period in between.
    pub fn crash_streak(&self) -> u32 {
        self.crash_streak
    }

    /// While dead: how long to wait before restarting. `None` in every other state.
    pub fn next_restart_delay(&self) -> Option<Duration> {
        (self.state == ProviderState::Dead).then(|| self.policy.backoff.delay(self.crash_streak))
    }

    /// While dead: when the restart backoff elapses.
    pub fn next_restart_at(&self) -> Option<Timestamp> {
        self.next_restart_delay()
            .map(|d| self.state_since.saturating_add(d))
    }

    /// Applies `event` at `now`. Returns the transition if the state changed, `None` if the
    /// event was valid but changed no state, or an error (machine unchanged) if invalid.
    pub fn apply(
        &mut self,
        event: ProviderEvent,
        now: Timestamp,
    ) -> Result<Option<Transition>, TransitionError> {
        use ProviderEvent as E;
        use ProviderState as S;
        let invalid = TransitionError {
            from: self.state,
            event: event.name(),
        };
        let outcome = match (self.state, event) {
            (S::Cold, E::StartRequested) => self.start(now, "start requested"),
            (S::Dead, E::StartRequested) => {
                self.restart_count = self.restart_count.saturating_add(1);
                self.start(now, "start requested")
            }
            (S::Dead, E::BackoffElapsed) => {
                self.restart_count = self.restart_count.saturating_add(1);
                self.start(now, "restart backoff elapsed")
            }
            (S::Initializing | S::Ready | S::Degraded, E::StartRequested)
            | (S::Cold, E::StopRequested | E::IdleExpired | E::Exited { .. })
            | (S::Dead, E::Exited { .. }) => None,
            (S::Initializing, E::Initialized) => {
                self.consecutive_failures = 0;
                self.last_cause = None;
                self.ready_since = Some(now);
                Some(self.enter(S::Ready, now, "initialized".to_owned()))
            }
            (S::Initializing, E::StartFailed { cause }) => {
                Some(self.die(now, format!("start failed: {cause}"), cause))
            }
            (S::Initializing, E::Exited { cause }) => {
                Some(self.die(now, format!("exited during startup: {cause}"), cause))
            }
            (S::Ready | S::Degraded, E::Exited { cause }) => {
                Some(self.die(now, format!("crashed: {cause}"), cause))
            }
            (S::Ready, E::CheckSucceeded) => {
                self.consecutive_failures = 0;
                None
            }
            (S::Degraded, E::CheckSucceeded) => {
                self.consecutive_failures = 0;
                self.last_cause = None;
                Some(self.enter(S::Ready, now, "health check succeeded".to_owned()))
            }
            (S::Ready, E::CheckFailed { cause }) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let count = self.consecutive_failures;
                let reason = format!("failed {count} times in a row: {cause}");
                self.last_cause = Some(cause);
                (count >= self.policy.failure_threshold)
                    .then(|| self.enter(S::Degraded, now, reason))
            }
            (S::Degraded, E::CheckFailed { cause }) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let count = self.consecutive_failures;
                if count >= self.policy.max_failures {
                    Some(self.die(
                        now,
                        format!("failed {count} times in a row: {cause}"),
                        cause,
                    ))
                } else {
                    self.last_cause = Some(cause);
                    None
                }
            }
            (S::Initializing | S::Ready | S::Degraded | S::Dead, E::StopRequested) => {
                Some(self.stop(now, "stop requested"))
            }
            (S::Ready | S::Degraded, E::IdleExpired) => Some(self.stop(now, "idle ttl reached")),
            _ => return Err(invalid),
        };
        Ok(outcome)
    }

    fn start(&mut self, now: Timestamp, reason: &str) -> Option<Transition> {
        self.consecutive_failures = 0;
        self.ready_since = None;
        Some(self.enter(ProviderState::Initializing, now, reason.to_owned()))
    }

    fn stop(&mut self, now: Timestamp, reason: &str) -> Transition {
        self.consecutive_failures = 0;
        self.crash_streak = 0;
        self.ready_since = None;
        self.last_cause = None;
        self.enter(ProviderState::Cold, now, reason.to_owned())
    }

    fn die(&mut self, now: Timestamp, reason: String, cause: String) -> Transition {
        let long_enough = self.ready_since.is_some_and(|since| {
            now.saturating_duration_since(since) >= self.policy.backoff.reset_after
        });
        self.crash_streak = if long_enough {
            1
        } else {
            self.crash_streak.saturating_add(1)
        };
        self.ready_since = None;
        self.last_cause = Some(cause);
        self.enter(ProviderState::Dead, now, reason)
    }

    fn enter(&mut self, to: ProviderState, now: Timestamp, reason: String) -> Transition {
        let from = self.state;
        self.state = to;
        self.state_since = now;
        Transition {
            from,
            to,
            reason,
            at: now,
        }
    }
}
