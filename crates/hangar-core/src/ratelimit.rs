//! Rate limits: requests per API key, and a slowdown for repeated failed auth.
//!
//! [`RateLimiter`] is a GCRA limiter (a token bucket kept as one timestamp per key): a key may
//! send `burst` requests at once, then one every `per_seconds / requests`. Each
//! [`RateLimiter::check`] returns a [`Decision`] carrying what the HTTP answer needs:
//!
//! | header | value |
//! |---|---|
//! | `RateLimit-Limit` | [`Decision::limit`] (the burst: the most requests a full bucket allows at once) |
//! | `RateLimit-Remaining` | [`Decision::remaining`] |
//! | `RateLimit-Reset` | [`Decision::reset_after_secs`] (seconds until the bucket is full again) |
//! | `Retry-After` (429 only) | [`Decision::retry_after_secs`] (seconds until a request is allowed) |
//!
//! [`AuthBackoff`] slows down a client (e.g. by IP address) after repeated failed
//! authentication: a delay that doubles with each failure past the free ones, capped, and
//! forgotten after a success or a quiet period.
//!
//! Both take the time as a [`Timestamp`] and keep bounded memory: [`RateLimiter::sweep`] and
//! [`AuthBackoff::sweep`] drop entries that no longer hold anything back (dropping them
//! changes no future decision), and at most `max_keys` keys are tracked: beyond that, new keys
//! share one overflow entry until a sweep frees room, so a flood of new keys is held back as
//! one.
//!
//! ```yaml
//! rate_limit: { requests: 600, per_seconds: 60, burst: 50 }
//! auth_backoff: { free_failures: 5, base_delay_s: 1, max_delay_s: 60, quiet_period_s: 900 }
//! ```

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::state::Timestamp;

mod auth_backoff;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use auth_backoff::{AuthBackoff, AuthBackoffConfig};

/// Most requests a limit may allow per window, and the largest burst.
pub const MAX_REQUESTS: u32 = 1_000_000;

/// Longest window of a limit: one day.
pub const MAX_PER_SECONDS: u32 = 86_400;

/// Default number of keys a limiter tracks individually.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

const MICROS_PER_MS: u64 = 1_000;
const MICROS_PER_SEC: u64 = 1_000_000;

/// A request rate: `requests` per `per_seconds` sustained, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per window (1 to 1,000,000).
    pub requests: u32,
    /// The window, in seconds (1 to 86,400).
    pub per_seconds: u32,
    /// Requests allowed at once after a quiet spell (1 to 1,000,000); default `requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// `requests` per `per_seconds`, with a burst of `requests`.
    pub const fn new(requests: u32, per_seconds: u32) -> Self {
        Self {
            requests,
            per_seconds,
            burst: None,
        }
    }

    /// The same rate with another burst.
    pub const fn with_burst(self, burst: u32) -> Self {
        Self {
            burst: Some(burst),
            ..self
        }
    }

    /// The burst in effect: `burst`, or `requests` when unset (at least 1).
    pub fn effective_burst(&self) -> u32 {
        self.burst.unwrap_or(self.requests).max(1)
    }

    /// Checks the bounds of every field.
    pub fn validate(&self) -> Result<(), RateLimitError> {
        let in_range = |field: &str, value: u32, max: u32| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(RateLimitError::new(
                    field,
                    format!("must be between 1 and {max}, got {value}"),
                ))
            }
        };
        in_range("requests", self.requests, MAX_REQUESTS)?;
        in_range("per_seconds", self.per_seconds, MAX_PER_SECONDS)?;
        match self.burst {
            Some(burst) => in_range("burst", burst, MAX_REQUESTS),
            None => Ok(()),
        }
    }

    /// Whether `self` allows a higher sustained rate than `other`, or the same rate with a
    /// larger burst.
    pub fn is_more_generous_than(&self, other: &RateLimit) -> bool {
        let mine = u64::from(self.requests) * u64::from(other.per_seconds.max(1));
        let theirs = u64::from(other.requests) * u64::from(self.per_seconds.max(1));
        mine.cmp(&theirs)
            .then_with(|| self.effective_burst().cmp(&other.effective_burst()))
            .is_gt()
    }

    /// The limit as the GCRA sees it, clamped into the valid ranges.
    fn gcra(&self) -> Gcra {
        let requests = u64::from(self.requests.clamp(1, MAX_REQUESTS));
        let per_seconds = u64::from(self.per_seconds.clamp(1, MAX_PER_SECONDS));
        let burst = self.effective_burst().min(MAX_REQUESTS);
        Gcra {
            // Rounded up, so the sustained rate never exceeds the configured one.
            interval_us: (per_seconds * MICROS_PER_SEC).div_ceil(requests),
            burst,
        }
    }
}

/// An invalid rate limit or backoff setting; `field` names the setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RateLimitError {
    /// The offending field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl RateLimitError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The answer to one [`RateLimiter::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the request may proceed (otherwise: 429).
    pub allowed: bool,
    /// The burst: requests a full bucket allows at once.
    pub limit: u32,
    /// Requests that would be allowed right now after this one.
    pub remaining: u32,
    /// Milliseconds until the bucket is full again (`remaining` back at `limit`).
    pub reset_after_ms: u64,
    /// When refused: milliseconds until a request is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl Decision {
    /// `reset_after_ms` in whole seconds, rounded up (`RateLimit-Reset`).
    pub fn reset_after_secs(&self) -> u64 {
        self.reset_after_ms.div_ceil(1_000)
    }

    /// `retry_after_ms` in whole seconds, rounded up and at least 1 (`Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_ms.map(|ms| ms.div_ceil(1_000).max(1))
    }
}

/// Generic cell rate algorithm parameters.
#[derive(Clone, Copy, Debug)]
struct Gcra {
    /// Microseconds between requests at the sustained rate.
    interval_us: u64,
    /// Requests allowed at once.
    burst: u32,
}

impl Gcra {
    /// Decides one request at `now_us` against a key's theoretical arrival time `tat` (µs),
    /// advancing it when allowed.
    fn decide(self, tat: &mut u64, now_us: u64) -> Decision {
        let start = (*tat).max(now_us);
        let next = start.saturating_add(self.interval_us);
        let capacity = self.interval_us.saturating_mul(u64::from(self.burst));
        // Time the bucket needs to refill if this request is taken: at least one interval.
        let used = next - now_us;
        if used <= capacity {
            *tat = next;
            let remaining = (capacity - used) / self.interval_us;
            Decision {
                allowed: true,
                limit: self.burst,
                remaining: u32::try_from(remaining).unwrap_or(self.burst),
                reset_after_ms: used.div_ceil(MICROS_PER_MS),
                retry_after_ms: None,
            }
        } else {
            Decision {
                allowed: false,
                limit: self.burst,
                remaining: 0,
                reset_after_ms: (start - now_us).div_ceil(MICROS_PER_MS),
                retry_after_ms: Some((used - capacity).div_ceil(MICROS_PER_MS)),
            }
        }
    }
}

fn micros(now: Timestamp) -> u64 {
    now.as_millis().saturating_mul(MICROS_PER_MS)
}

/// A GCRA rate limiter over keys of type `K` (API key ids, principal ids, …).
///
/// Each key is a bucket of [`RateLimit::effective_burst`] requests refilled at the limit's
/// rate; the limit may differ per call ([`RateLimiter::check_with`], e.g. by the key's roles).
#[derive(Clone, Debug)]
pub struct RateLimiter<K> {
    limit: RateLimit,
    /// Theoretical arrival time per key (µs): when its bucket is full again.
    tats: HashMap<K, u64>,
    /// Shared by new keys while `max_keys` are tracked.
    overflow: u64,
    max_keys: usize,
}

impl<K: Eq + Hash> RateLimiter<K> {
    /// A limiter applying `limit` (validated) to every key, tracking up to
    /// [`DEFAULT_MAX_KEYS`] keys.
    pub fn new(limit: RateLimit) -> Result<Self, RateLimitError> {
        limit.validate()?;
        Ok(Self {
            limit,
            tats: HashMap::new(),
            overflow: 0,
            max_keys: DEFAULT_MAX_KEYS,
        })
    }

    /// The same limiter tracking at most `max_keys` keys individually.
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// The default limit.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// Changes the default limit (validated); buckets keep their state.
    pub fn set_limit(&mut self, limit: RateLimit) -> Result<(), RateLimitError> {
        limit.validate()?;
        self.limit = limit;
        Ok(())
    }

    /// Decides one request of `key` at `now` under the default limit, and counts it if
    /// allowed.
    pub fn check<Q>(&mut self, key: &Q, now: Timestamp) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let limit = self.limit;
        self.check_with(key, &limit, now)
    }

    /// Decides one request of `key` at `now` under `limit` (out-of-range fields are clamped
    /// into range), and counts it if allowed.
    pub fn check_with<Q>(&mut self, key: &Q, limit: &RateLimit, now: Timestamp) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let gcra = limit.gcra();
        let now_us = micros(now);
        if let Some(tat) = self.tats.get_mut(key) {
            return gcra.decide(tat, now_us);
        }
        if self.tats.len() < self.max_keys {
            let mut tat = 0;
            let decision = gcra.decide(&mut tat, now_us);
            self.tats.insert(key.to_owned(), tat);
            decision
        } else {
            gcra.decide(&mut self.overflow, now_us)
        }
    }

    /// Forgets a key (e.g. a revoked API key).
    pub fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.tats.remove(key);
    }

    /// Drops the keys whose bucket is full again at `now` (they behave exactly as unknown
    /// keys); returns how many.
    pub fn sweep(&mut self, now: Timestamp) -> usize {
        let now_us = micros(now);
        let before = self.tats.len();
        self.tats.retain(|_, tat| *tat > now_us);
        if self.overflow <= now_us {
            self.overflow = 0;
        }
        before - self.tats.len()
    }

    /// Keys tracked individually.
    pub fn len(&self) -> usize {
        self.tats.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.tats.is_empty()
    }
}
