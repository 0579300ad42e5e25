use proptest::prelude::*;

use super::{AuthBackoff, AuthBackoffConfig, RateLimit, RateLimiter};
use crate::state::Timestamp;

fn limit() -> impl Strategy<Value = RateLimit> {
    (1u32..50, 1u32..5, prop::option::of(1u32..20)).prop_map(|(requests, per_seconds, burst)| {
        RateLimit {
            requests,
            per_seconds,
            burst,
        }
    })
}

/// Request times: non-decreasing, with gaps from 0 to 2 s.
fn times() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(0u64..2_000, 1..150).prop_map(|gaps| {
        gaps.iter()
            .scan(0u64, |now, gap| {
                *now += gap;
                Some(*now)
            })
            .collect()
    })
}

fn limiter(limit: RateLimit) -> Result<RateLimiter<u8>, TestCaseError> {
    RateLimiter::new(limit).map_err(|e| TestCaseError::fail(e.to_string()))
}

proptest! {
    /// In any interval [a, b], at most `burst + (b - a) / interval` requests get through.
    #[test]
    fn never_more_than_burst_plus_rate(limit in limit(), times in times()) {
        let mut l = limiter(limit)?;
        let allowed: Vec<u64> = times
            .iter()
            .filter(|&&at| l.check(&0, Timestamp(at)).allowed)
            .copied()
            .collect();
        let interval_us = (u64::from(limit.per_seconds) * 1_000_000).div_ceil(u64::from(limit.requests));
        let burst = u64::from(limit.effective_burst());
        for (i, &a) in allowed.iter().enumerate() {
            for (j, &b) in allowed.iter().enumerate().skip(i) {
                let count = (j - i + 1) as u64;
                prop_assert!(
                    count <= burst + (b - a) * 1_000 / interval_us,
                    "{} requests in [{}, {}] ms", count, a, b
                );
            }
        }
    }

    /// `remaining` is exactly how many further requests at the same instant get through,
    /// and a refused request is allowed after `retry_after_ms`, not before.
    #[test]
    fn decisions_tell_the_truth(limit in limit(), times in times()) {
        let mut l = limiter(limit)?;
        for &at in &times {
            let now = Timestamp(at);
            let d = l.check(&0, now);
            prop_assert_eq!(d.limit, limit.effective_burst());
            prop_assert!(d.remaining < d.limit);
            if d.allowed {
                let mut probe = l.clone();
                for _ in 0..d.remaining {
                    prop_assert!(probe.check(&0, now).allowed);
                }
                prop_assert!(!probe.check(&0, now).allowed);
            } else {
                prop_assert_eq!(d.remaining, 0);
                let wait = d.retry_after_ms.unwrap_or_default();
                prop_assert!(wait > 0);
                prop_assert!(!l.clone().check(&0, Timestamp(at + wait - 1)).allowed);
                prop_assert!(l.clone().check(&0, Timestamp(at + wait)).allowed);
            }
            // A full bucket after `reset_after_ms`.
            let later = l.clone().check(&0, Timestamp(at + d.reset_after_ms));
            prop_assert_eq!(later.remaining, later.limit - 1);
        }
    }

    /// Sweeping at any time changes no decision, and only ever shrinks the map.
    #[test]
    fn sweeping_is_invisible(
        limit in limit(),
        steps in prop::collection::vec((0u64..1_500, 0u8..4, any::<bool>()), 1..100),
    ) {
        let mut swept = limiter(limit)?;
        let mut plain = limiter(limit)?;
        let mut now = 0;
        for (gap, key, sweep) in steps {
            now += gap;
            if sweep {
                swept.sweep(Timestamp(now));
            }
            prop_assert_eq!(swept.check(&key, Timestamp(now)), plain.check(&key, Timestamp(now)));
            prop_assert!(swept.len() <= plain.len());
        }
    }

    /// The backoff delay never shrinks while failures keep coming, and never exceeds the cap.
    #[test]
    fn backoff_grows_monotonically(
        free in 0u32..5,
        base in 0u64..10,
        extra in 0u64..100,
        gaps in prop::collection::vec(0u64..5_000, 1..40),
    ) {
        let config = AuthBackoffConfig {
            free_failures: free,
            base_delay_s: base,
            max_delay_s: base + extra,
            quiet_period_s: 3_600,
        };
        let mut b = AuthBackoff::<u8>::new(config).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut now = 0;
        let mut previous = std::time::Duration::ZERO;
        for gap in gaps {
            now += gap;
            let delay = b.record_failure(&0, Timestamp(now));
            prop_assert!(delay >= previous);
            prop_assert!(delay.as_secs() <= base + extra);
            prop_assert_eq!(b.check(&0, Timestamp(now)), (!delay.is_zero()).then_some(delay));
            previous = delay;
        }
    }
}
