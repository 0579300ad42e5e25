//! The circuit breaker of one group member.
//!
//! | from | event | to |
//! |---|---|---|
//! | closed | `failure_threshold` member failures in a row | open |
//! | open | `reset_timeout` elapsed | half-open (one probe call admitted) |
//! | half-open | the probe succeeds | closed |
//! | half-open | the probe fails | open (fresh timeout) |
//! | any | [`CircuitBreaker::reset`] (rebalance) | closed |
//!
//! Failures are counted *in a row*: any success resets the count. Only
//! [`CallOutcome::MemberFailure`] counts; caller errors and cancellations neither count nor
//! reset, and a released probe frees the probe slot so the next call can probe.
//!
//! Every admitted call holds a [`Permit`] that must be reported exactly once
//! ([`CircuitBreaker::record`]). A permit from before a state change (or reported twice) is
//! stale and ignored, so a late answer can neither extend an open period nor free the slot
//! of a newer probe.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ErrorOrigin;
use crate::state::Timestamp;

mod secs;
#[cfg(test)]
mod tests;

/// Default member failures in a row before the breaker opens.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;

/// Default time an open breaker waits before admitting a probe.
pub const DEFAULT_RESET_TIMEOUT: Duration = Duration::from_secs(30);

/// Thresholds of one breaker; YAML `circuit_breaker: { failure_threshold, reset_timeout_s }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Member failures in a row that open the breaker (default 5; 0 acts as 1).
    pub failure_threshold: u32,
    /// How long the breaker stays open before admitting a probe (default 30 s). Read and
    /// written as `reset_timeout_s`: whole seconds, or a decimal for sub-second timeouts.
    #[serde(rename = "reset_timeout_s", with = "secs")]
    pub reset_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            reset_timeout: DEFAULT_RESET_TIMEOUT,
        }
    }
}

impl BreakerConfig {
    /// Whether every field has its default value (such configs are left out of YAML).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// What a breaker lets through (lower case in the API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow; member failures in a row are counted.
    Closed,
    /// Calls are refused until the reset timeout has elapsed.
    Open,
    /// The reset timeout has elapsed: one probe call at a time is admitted.
    #[serde(alias = "half-open")]
    HalfOpen,
}

impl BreakerState {
    /// The name used in the API and logs: `closed`, `open`, `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A breaker state change (becomes a domain event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerTransition {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
    /// When it was applied.
    pub at: Timestamp,
    /// Member failures in a row at that moment.
    pub consecutive_failures: u32,
}

/// How a call was admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    /// The breaker is closed.
    Normal,
    /// The breaker is half-open and this call is its single probe.
    Probe,
}

/// How a call ended, as classified by the caller. Only [`CallOutcome::MemberFailure`] counts
/// against the member; [`CallOutcome::CallerError`] is neutral.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// The member answered (resets the failure count; closes a half-open breaker).
    Success,
    /// The member is at fault: unreachable, failed to start, crashed, timed out, or broke the
    /// transport or the protocol.
    MemberFailure,
    /// Not the member's fault: bad arguments, unknown tool, a tool result with `isError`,
    /// a cancelled call, or an error inside Hangar. Neither counts nor resets; a probe ending
    /// this way frees the probe slot.
    CallerError,
}

impl CallOutcome {
    /// The outcome of a call that failed with an error from `origin`: only upstream errors
    /// are member failures.
    pub fn from_error_origin(origin: ErrorOrigin) -> Self {
        match origin {
            ErrorOrigin::Upstream => Self::MemberFailure,
            ErrorOrigin::Downstream | ErrorOrigin::Hangar => Self::CallerError,
        }
    }
}

/// Proof that one call was admitted; report it once with [`CircuitBreaker::record`].
#[must_use = "an admitted call must be reported, or a probe slot stays taken"]
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    admission: Admission,
    epoch: u64,
}

impl Permit {
    /// Normal call or probe.
    pub fn admission(&self) -> Admission {
        self.admission
    }
}

/// A successful [`CircuitBreaker::try_acquire`].
#[must_use = "an admitted call must be reported, or a probe slot stays taken"]
#[derive(Debug, PartialEq, Eq)]
pub struct Admitted {
    /// To report the call's outcome with.
    pub permit: Permit,
    /// The open → half-open change this admission applied, if not applied before.
    pub transition: Option<BreakerTransition>,
}

/// Snapshot of one breaker for listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerStatus {
    /// State at the snapshot's time.
    pub state: BreakerState,
    /// Member failures in a row.
    pub consecutive_failures: u32,
    /// When the breaker last opened, while open or half-open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<Timestamp>,
}

/// The stored phase; "open with the timeout elapsed" is reported as half-open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Closed,
    Open,
    HalfOpen { probe_in_flight: bool },
}

impl Phase {
    /// The state as stored, before looking at the clock.
    fn state(self) -> BreakerState {
        match self {
            Self::Closed => BreakerState::Closed,
            Self::Open => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// The circuit breaker of one member (see the module docs for its transitions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    phase: Phase,
    consecutive_failures: u32,
    opened_at: Option<Timestamp>,
    /// Bumped on every state change and probe admission or release; permits carry it.
    epoch: u64,
}

impl CircuitBreaker {
    /// A closed breaker; a `failure_threshold` of 0 acts as 1.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config: normalize(config),
            phase: Phase::Closed,
            consecutive_failures: 0,
            opened_at: None,
            epoch: 0,
        }
    }

    /// The (normalized) config.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Changes the thresholds, keeping state and counts; an open breaker uses the new
    /// timeout from when it opened.
    pub fn set_config(&mut self, config: BreakerConfig) {
        self.config = normalize(config);
    }

    /// The state at `now`: open whose reset timeout has elapsed is half-open.
    pub fn state(&self, now: Timestamp) -> BreakerState {
        match self.phase {
            Phase::Open if self.timeout_elapsed(now) => BreakerState::HalfOpen,
            phase => phase.state(),
        }
    }

    /// Whether [`CircuitBreaker::try_acquire`] at `now` would admit a call.
    pub fn can_admit(&self, now: Timestamp) -> bool {
        match self.phase {
            Phase::Closed => true,
            Phase::Open => self.timeout_elapsed(now),
            Phase::HalfOpen { probe_in_flight } => !probe_in_flight,
        }
    }

    /// Member failures in a row since the last success or reset.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the breaker last opened; `None` while closed.
    pub fn opened_at(&self) -> Option<Timestamp> {
        self.opened_at
    }

    /// While open: when a probe becomes admissible.
    pub fn half_open_at(&self) -> Option<Timestamp> {
        match self.phase {
            Phase::Open => self
                .opened_at
                .map(|at| at.saturating_add(self.config.reset_timeout)),
            _ => None,
        }
    }

    /// Whether a probe call is admitted and not yet reported.
    pub fn probe_in_flight(&self) -> bool {
        self.phase
            == (Phase::HalfOpen {
                probe_in_flight: true,
            })
    }

    /// Snapshot for listings.
    pub fn status(&self, now: Timestamp) -> BreakerStatus {
        BreakerStatus {
            state: self.state(now),
            consecutive_failures: self.consecutive_failures,
            opened_at: self.opened_at,
        }
    }

    /// Applies open → half-open once the reset timeout has elapsed, so the change can be
    /// announced on time; admission does the same on its own.
    pub fn poll(&mut self, now: Timestamp) -> Option<BreakerTransition> {
        if self.phase == Phase::Open && self.timeout_elapsed(now) {
            let probe_in_flight = false;
            let phase = Phase::HalfOpen { probe_in_flight };
            return Some(self.enter(BreakerState::Open, phase, now));
        }
        None
    }

    /// Admits a call: always while closed, never while open, and while half-open only one
    /// probe at a time. `None` = refused.
    pub fn try_acquire(&mut self, now: Timestamp) -> Option<Admitted> {
        let transition = self.poll(now);
        let admission = match self.phase {
            Phase::Closed => Admission::Normal,
            Phase::Open
            | Phase::HalfOpen {
                probe_in_flight: true,
            } => return None,
            Phase::HalfOpen {
                probe_in_flight: false,
            } => {
                self.phase = Phase::HalfOpen {
                    probe_in_flight: true,
                };
                self.epoch = self.epoch.wrapping_add(1);
                Admission::Probe
            }
        };
        Some(Admitted {
            permit: Permit {
                admission,
                epoch: self.epoch,
            },
            transition,
        })
    }

    /// Reports how an admitted call ended; returns the state change, if any. Stale permits
    /// (issued before a state change, or already reported) are ignored.
    pub fn record(
        &mut self,
        permit: Permit,
        outcome: CallOutcome,
        now: Timestamp,
    ) -> Option<BreakerTransition> {
        match outcome {
            CallOutcome::Success => self.on_success(permit, now),
            CallOutcome::MemberFailure => self.on_failure(permit, now),
            CallOutcome::CallerError => {
                self.on_released(permit);
                None
            }
        }
    }

    /// The member answered: resets the failure count; a probe closes the breaker.
    pub fn on_success(&mut self, permit: Permit, now: Timestamp) -> Option<BreakerTransition> {
        if !self.is_current(&permit) {
            return None;
        }
        self.consecutive_failures = 0;
        match self.phase {
            Phase::HalfOpen { .. } => {
                self.opened_at = None;
                Some(self.enter(BreakerState::HalfOpen, Phase::Closed, now))
            }
            Phase::Closed | Phase::Open => None,
        }
    }

    /// The member failed: counts one more failure in a row; opens the breaker at the
    /// threshold, or re-opens it (fresh timeout) when the probe failed.
    pub fn on_failure(&mut self, permit: Permit, now: Timestamp) -> Option<BreakerTransition> {
        if !self.is_current(&permit) {
            return None;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let opens = match self.phase {
            Phase::Closed => self.consecutive_failures >= self.config.failure_threshold,
            Phase::HalfOpen { .. } => true,
            Phase::Open => false,
        };
        opens.then(|| {
            self.opened_at = Some(now);
            self.enter(self.phase.state(), Phase::Open, now)
        })
    }

    /// The call ended without a verdict on the member (caller error, cancellation): nothing
    /// is counted; a probe's slot is freed for the next call.
    pub fn on_released(&mut self, permit: Permit) {
        if self.is_current(&permit) && self.probe_in_flight() {
            self.phase = Phase::HalfOpen {
                probe_in_flight: false,
            };
            self.epoch = self.epoch.wrapping_add(1);
        }
    }

    /// Closes the breaker and clears the count (rebalance). Outstanding permits become stale.
    pub fn reset(&mut self, now: Timestamp) -> Option<BreakerTransition> {
        let from = self.state(now);
        self.consecutive_failures = 0;
        self.opened_at = None;
        let transition = self.enter(from, Phase::Closed, now);
        (from != BreakerState::Closed).then_some(transition)
    }

    fn timeout_elapsed(&self, now: Timestamp) -> bool {
        self.opened_at
            .is_none_or(|at| now.saturating_duration_since(at) >= self.config.reset_timeout)
    }

    fn is_current(&self, permit: &Permit) -> bool {
        let expected = match self.phase {
            Phase::Closed => Admission::Normal,
            Phase::HalfOpen {
                probe_in_flight: true,
            } => Admission::Probe,
            Phase::Open | Phase::HalfOpen { .. } => return false,
        };
        permit.epoch == self.epoch && permit.admission == expected
    }

    fn enter(&mut self, from: BreakerState, phase: Phase, now: Timestamp) -> BreakerTransition {
        self.phase = phase;
        self.epoch = self.epoch.wrapping_add(1);
        BreakerTransition {
            from,
            to: phase.state(),
            at: now,
            consecutive_failures: self.consecutive_failures,
        }
    }
}

fn normalize(config: BreakerConfig) -> BreakerConfig {
    BreakerConfig {
        failure_threshold: config.failure_threshold.max(1),
        reset_timeout: config.reset_timeout,
    }
}
