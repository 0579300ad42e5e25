//! [`AuthBackoff`]: a per-client delay after repeated failed authentication.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DEFAULT_MAX_KEYS, RateLimitError};
use crate::state::Timestamp;

/// Longest delay or quiet period accepted: one day.
const MAX_SECONDS: u64 = 86_400;

/// When failed authentication slows a client down; YAML
/// `auth_backoff: { free_failures, base_delay_s, max_delay_s, quiet_period_s }`.
///
/// After failure number `free_failures + n` (n ≥ 1) the client must wait
/// `base_delay_s × 2^(n-1)` seconds, at most `max_delay_s`, during which its failed
/// attempts are refused. Only `quiet_period_s` without failures starts the count over: a
/// success does not (else one valid key would let a client reset the count between guesses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthBackoffConfig {
    /// Failures in a row without any delay (default 5).
    pub free_failures: u32,
    /// Delay after the first failure past the free ones, in seconds (default 1; 0 turns the
    /// delay off).
    pub base_delay_s: u64,
    /// Longest delay, in seconds (default 60, at most 86,400).
    pub max_delay_s: u64,
    /// Seconds without a failure after which the count starts over (default 900, at least
    /// 1, at most 86,400).
    pub quiet_period_s: u64,
}

impl Default for AuthBackoffConfig {
    fn default() -> Self {
        Self {
            free_failures: 5,
            base_delay_s: 1,
            max_delay_s: 60,
            quiet_period_s: 900,
        }
    }
}

impl AuthBackoffConfig {
    /// Checks the bounds and that `base_delay_s ≤ max_delay_s`.
    pub fn validate(&self) -> Result<(), RateLimitError> {
        if self.max_delay_s > MAX_SECONDS {
            return Err(RateLimitError::new(
                "max_delay_s",
                format!("must be at most {MAX_SECONDS}, got {}", self.max_delay_s),
            ));
        }
        if self.base_delay_s > self.max_delay_s {
            return Err(RateLimitError::new(
                "base_delay_s",
                format!(
                    "must not exceed max_delay_s ({}), got {}",
                    self.max_delay_s, self.base_delay_s
                ),
            ));
        }
        if !(1..=MAX_SECONDS).contains(&self.quiet_period_s) {
            return Err(RateLimitError::new(
                "quiet_period_s",
                format!(
                    "must be between 1 and {MAX_SECONDS}, got {}",
                    self.quiet_period_s
                ),
            ));
        }
        Ok(())
    }

    /// The delay imposed after `failures` failures in a row.
    pub fn delay_after(&self, failures: u32) -> Duration {
        let Some(past_free) = failures.checked_sub(self.free_failures).filter(|n| *n > 0) else {
            return Duration::ZERO;
        };
        let factor = 1u64.checked_shl(past_free - 1).unwrap_or(u64::MAX);
        let secs = self
            .base_delay_s
            .saturating_mul(factor)
            .min(self.max_delay_s);
        Duration::from_secs(secs)
    }

    fn quiet_period(&self) -> Duration {
        Duration::from_secs(self.quiet_period_s)
    }
}

/// One client's failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Failures {
    count: u32,
    last_failure: Timestamp,
    blocked_until: Timestamp,
}

impl Failures {
    /// Whether the quiet period has passed since the last failure (the count is void).
    fn is_quiet(&self, config: &AuthBackoffConfig, now: Timestamp) -> bool {
        now.saturating_duration_since(self.last_failure) >= config.quiet_period()
    }

    /// Whether the entry can be dropped without changing any decision.
    fn is_spent(&self, config: &AuthBackoffConfig, now: Timestamp) -> bool {
        self.is_quiet(config, now) && now >= self.blocked_until
    }
}

/// Failed-authentication counts per client (e.g. per IP address).
///
/// Use (Hangar's `require_key`): check the credentials first, so a valid one always
/// works; when they are bad, [`AuthBackoff::check`] says whether the client is inside a
/// delay (answer 429 with `Retry-After`, not counted), else [`AuthBackoff::record_failure`].
/// Failures fade only with time.
#[derive(Clone, Debug)]
pub struct AuthBackoff<K> {
    config: AuthBackoffConfig,
    clients: HashMap<K, Failures>,
    /// Shared by new clients while `max_keys` are tracked.
    overflow: Failures,
    max_keys: usize,
}

impl<K: Eq + Hash> AuthBackoff<K> {
    /// A tracker with `config` (validated), following up to
    /// [`DEFAULT_MAX_KEYS`](super::DEFAULT_MAX_KEYS) clients individually.
    pub fn new(config: AuthBackoffConfig) -> Result<Self, RateLimitError> {
        config.validate()?;
        Ok(Self {
            config,
            clients: HashMap::new(),
            overflow: Failures::default(),
            max_keys: DEFAULT_MAX_KEYS,
        })
    }

    /// The same tracker following at most `max_keys` clients individually.
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// The config.
    pub fn config(&self) -> &AuthBackoffConfig {
        &self.config
    }

    /// How long `client` must still wait at `now` before an attempt is looked at; `None`
    /// when it may try now.
    pub fn check<Q>(&self, client: &Q, now: Timestamp) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let failures = self.entry(client)?;
        (failures.blocked_until > now)
            .then(|| failures.blocked_until.saturating_duration_since(now))
    }

    /// Failures in a row of `client` that still count at `now`.
    pub fn failures<Q>(&self, client: &Q, now: Timestamp) -> u32
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.entry(client) {
            Some(failures) if !failures.is_quiet(&self.config, now) => failures.count,
            _ => 0,
        }
    }

    /// Counts a failed attempt of `client` at `now`; returns the delay it must now wait
    /// (zero within the free failures).
    pub fn record_failure<Q>(&mut self, client: &Q, now: Timestamp) -> Duration
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let config = self.config;
        let failures = if self.clients.contains_key(client) || self.clients.len() < self.max_keys {
            self.clients.entry(client.to_owned()).or_default()
        } else {
            &mut self.overflow
        };
        if failures.is_quiet(&config, now) {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last_failure = now;
        let delay = config.delay_after(failures.count);
        failures.blocked_until = failures.blocked_until.max(now.saturating_add(delay));
        delay
    }

    /// Drops the clients whose failures no longer count and who may try again at `now`;
    /// returns how many.
    pub fn sweep(&mut self, now: Timestamp) -> usize {
        let config = self.config;
        let before = self.clients.len();
        self.clients
            .retain(|_, failures| !failures.is_spent(&config, now));
        if self.overflow.is_spent(&config, now) {
            self.overflow = Failures::default();
        }
        before - self.clients.len()
    }

    /// Clients tracked individually.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The failures that apply to `client`: its own, or the overflow entry when it is not
    /// tracked and there is no room for it.
    fn entry<Q>(&self, client: &Q) -> Option<&Failures>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.clients.get(client) {
            Some(failures) => Some(failures),
            None if self.clients.len() >= self.max_keys => Some(&self.overflow),
            None => None,
        }
    }
}
