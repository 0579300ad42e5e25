use std::time::Duration;

use super::{
    AuthBackoff, AuthBackoffConfig, DEFAULT_MAX_KEYS, Decision, RateLimit, RateLimitError,
    RateLimiter,
};
use crate::state::Timestamp;

fn t(ms: u64) -> Timestamp {
    Timestamp(ms)
}

/// 10 per second (one every 100 ms), burst 3.
fn limiter() -> RateLimiter<String> {
    match RateLimiter::new(RateLimit::new(10, 1).with_burst(3)) {
        Ok(limiter) => limiter,
        Err(e) => panic!("{e}"),
    }
}

fn allowed(limit: u32, remaining: u32, reset_after_ms: u64) -> Decision {
    Decision {
        allowed: true,
        limit,
        remaining,
        reset_after_ms,
        retry_after_ms: None,
    }
}

fn refused(limit: u32, reset_after_ms: u64, retry_after_ms: u64) -> Decision {
    Decision {
        allowed: false,
        limit,
        remaining: 0,
        reset_after_ms,
        retry_after_ms: Some(retry_after_ms),
    }
}

#[test]
fn a_burst_then_the_sustained_rate() {
    let mut l = limiter();
    assert_eq!(l.check("k", t(1_000)), allowed(3, 2, 100));
    assert_eq!(l.check("k", t(1_000)), allowed(3, 1, 200));
    assert_eq!(l.check("k", t(1_000)), allowed(3, 0, 300));
    assert_eq!(l.check("k", t(1_000)), refused(3, 300, 100));
    assert_eq!(l.check("k", t(1_050)), refused(3, 250, 50));
    // One interval later one request is allowed again, and only one.
    assert_eq!(l.check("k", t(1_100)), allowed(3, 0, 300));
    assert_eq!(l.check("k", t(1_100)), refused(3, 300, 100));
    // After a quiet spell the bucket is full again.
    assert_eq!(l.check("k", t(5_000)), allowed(3, 2, 100));
}

#[test]
fn refused_requests_are_not_counted() {
    let mut l = limiter();
    for _ in 0..3 {
        assert!(l.check("k", t(0)).allowed);
    }
    for _ in 0..100 {
        assert!(!l.check("k", t(0)).allowed);
    }
    assert!(l.check("k", t(100)).allowed);
}

#[test]
fn retry_after_is_exact() {
    let mut l = limiter();
    for _ in 0..3 {
        assert!(l.check("k", t(0)).allowed);
    }
    let refusal = l.check("k", t(37));
    let wait = refusal.retry_after_ms.unwrap_or_default();
    assert_eq!(wait, 63);
    assert!(!l.check("k", t(37 + wait - 1)).allowed);
    assert!(l.check("k", t(37 + wait)).allowed);
}

#[test]
fn keys_are_independent() {
    let mut l = limiter();
    for _ in 0..3 {
        assert!(l.check("a", t(0)).allowed);
    }
    assert!(!l.check("a", t(0)).allowed);
    assert!(l.check("b", t(0)).allowed);
    assert_eq!(l.len(), 2);
}

#[test]
fn burst_defaults_to_requests() {
    let mut l = match RateLimiter::new(RateLimit::new(5, 60)) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    for remaining in (0..5).rev() {
        let d = l.check("k", t(0));
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (5, remaining));
    }
    let d = l.check("k", t(0));
    // One request every 12 s; the bucket is full again a minute after the first.
    assert_eq!(d, refused(5, 60_000, 12_000));
    assert_eq!(d.retry_after_secs(), Some(12));
    assert_eq!(d.reset_after_secs(), 60);
}

#[test]
fn header_seconds_round_up() {
    let d = refused(3, 1_001, 1);
    assert_eq!(d.reset_after_secs(), 2);
    assert_eq!(d.retry_after_secs(), Some(1));
    assert_eq!(refused(3, 0, 0).retry_after_secs(), Some(1));
    assert_eq!(allowed(3, 2, 0).reset_after_secs(), 0);
    assert_eq!(allowed(3, 2, 0).retry_after_secs(), None);
}

#[test]
fn per_call_limits_use_the_same_bucket() {
    let mut l = limiter();
    // 100 per second (one every 10 ms), burst 10.
    let generous = RateLimit::new(100, 1).with_burst(10);
    for _ in 0..10 {
        assert!(l.check_with("k", &generous, t(0)).allowed);
    }
    assert_eq!(l.check_with("k", &generous, t(0)), refused(10, 100, 10));
    // Under the default limit the same history (full again at 100 ms) leaves room.
    assert_eq!(l.check("k", t(0)), allowed(3, 1, 200));
    // Back under the generous limit, the key waits for what the default limit took.
    assert_eq!(l.check_with("k", &generous, t(0)), refused(10, 200, 110));
    assert!(l.check_with("k", &generous, t(110)).allowed);
}

#[test]
fn invalid_per_call_limits_are_clamped() {
    let mut l = limiter();
    let zero = RateLimit {
        requests: 0,
        per_seconds: 0,
        burst: Some(0),
    };
    let d = l.check_with("k", &zero, t(0));
    assert_eq!(d, allowed(1, 0, 1_000));
    assert_eq!(l.check_with("k", &zero, t(0)), refused(1, 1_000, 1_000));
}

#[test]
fn sweep_drops_only_full_buckets_and_changes_nothing() {
    let mut l = limiter();
    let mut twin = limiter();
    for (key, at) in [("a", 0), ("b", 0), ("b", 0), ("c", 250)] {
        assert_eq!(l.check(key, t(at)), twin.check(key, t(at)));
    }
    // a full at 100, b at 200, c at 350.
    assert_eq!(l.sweep(t(99)), 0);
    assert_eq!(l.sweep(t(200)), 2);
    assert_eq!(l.len(), 1);
    assert_eq!(l.sweep(t(350)), 1);
    assert!(l.is_empty());
    for (key, at) in [("a", 400), ("b", 400), ("c", 400), ("c", 400)] {
        assert_eq!(l.check(key, t(at)), twin.check(key, t(at)));
    }
}

#[test]
fn new_keys_share_an_overflow_bucket_when_full() {
    let mut l = limiter().with_max_keys(2);
    assert!(l.check("a", t(0)).allowed);
    assert!(l.check("b", t(0)).allowed);
    for key in ["c", "d", "e"] {
        assert!(l.check(key, t(0)).allowed, "{key}");
    }
    assert_eq!(l.len(), 2);
    assert!(!l.check("f", t(0)).allowed);
    // Tracked keys keep their own buckets.
    assert!(l.check("a", t(0)).allowed);
    // A sweep frees room: new keys are tracked again.
    assert_eq!(l.sweep(t(1_000)), 2);
    assert!(l.check("f", t(1_000)).allowed);
    assert_eq!(l.len(), 1);
}

#[test]
fn remove_forgets_a_key() {
    let mut l = limiter();
    for _ in 0..3 {
        assert!(l.check("k", t(0)).allowed);
    }
    l.remove("k");
    assert!(l.is_empty());
    assert!(l.check("k", t(0)).allowed);
}

#[test]
fn limits_validate_with_the_field_named() {
    let field = |limit: RateLimit| limit.validate().err().map(|e: RateLimitError| e.field);
    assert_eq!(field(RateLimit::new(1, 1)), None);
    assert_eq!(
        field(RateLimit::new(1_000_000, 86_400).with_burst(1_000_000)),
        None
    );
    assert_eq!(field(RateLimit::new(0, 1)).as_deref(), Some("requests"));
    assert_eq!(
        field(RateLimit::new(1_000_001, 1)).as_deref(),
        Some("requests")
    );
    assert_eq!(field(RateLimit::new(1, 0)).as_deref(), Some("per_seconds"));
    assert_eq!(
        field(RateLimit::new(1, 86_401)).as_deref(),
        Some("per_seconds")
    );
    assert_eq!(
        field(RateLimit::new(1, 1).with_burst(0)).as_deref(),
        Some("burst")
    );
    let message = RateLimit::new(0, 1).validate().err().map(|e| e.to_string());
    assert_eq!(
        message.as_deref(),
        Some("requests: must be between 1 and 1000000, got 0")
    );
    assert!(RateLimiter::<String>::new(RateLimit::new(0, 1)).is_err());
    let mut l = limiter();
    assert!(l.set_limit(RateLimit::new(1, 0)).is_err());
    assert!(l.set_limit(RateLimit::new(1, 1)).is_ok());
    assert_eq!(l.limit(), &RateLimit::new(1, 1));
}

#[test]
fn limits_read_from_json_and_compare() {
    let parsed: Result<RateLimit, _> =
        serde_json::from_str(r#"{"requests": 600, "per_seconds": 60}"#);
    assert_eq!(parsed.ok(), Some(RateLimit::new(600, 60)));
    assert_eq!(RateLimit::new(600, 60).effective_burst(), 600);
    assert!(
        serde_json::from_str::<RateLimit>(r#"{"requests": 1, "per_seconds": 1, "x": 1}"#).is_err()
    );
    assert_eq!(
        serde_json::to_string(&RateLimit::new(2, 3).with_burst(4))
            .ok()
            .as_deref(),
        Some(r#"{"requests":2,"per_seconds":3,"burst":4}"#)
    );

    let slow = RateLimit::new(60, 60);
    let fast = RateLimit::new(2, 1);
    assert!(fast.is_more_generous_than(&slow));
    assert!(!slow.is_more_generous_than(&fast));
    // Same rate: the larger burst is more generous.
    assert!(slow.is_more_generous_than(&RateLimit::new(1, 1)));
    assert!(!RateLimit::new(1, 1).is_more_generous_than(&slow));
    assert!(
        RateLimit::new(1, 1)
            .with_burst(61)
            .is_more_generous_than(&slow)
    );
    assert!(!slow.is_more_generous_than(&slow));
}

#[test]
fn decisions_serialize_for_the_api() {
    let json = serde_json::to_value(refused(3, 300, 100)).ok();
    assert_eq!(
        json,
        Some(serde_json::json!({
            "allowed": false, "limit": 3, "remaining": 0,
            "reset_after_ms": 300, "retry_after_ms": 100
        }))
    );
    let json = serde_json::to_value(allowed(3, 2, 100)).ok();
    assert_eq!(
        json.as_ref().and_then(|j| j.get("retry_after_ms")),
        None,
        "{json:?}"
    );
}

// ---- AuthBackoff ----

fn backoff(config: AuthBackoffConfig) -> AuthBackoff<String> {
    match AuthBackoff::new(config) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

const fn config(free: u32, base: u64, max: u64, quiet: u64) -> AuthBackoffConfig {
    AuthBackoffConfig {
        free_failures: free,
        base_delay_s: base,
        max_delay_s: max,
        quiet_period_s: quiet,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn delays_double_after_the_free_failures_and_are_capped() {
    let c = config(3, 1, 10, 900);
    let delays: Vec<u64> = (0..10).map(|n| c.delay_after(n).as_secs()).collect();
    assert_eq!(delays, [0, 0, 0, 0, 1, 2, 4, 8, 10, 10]);
    assert_eq!(c.delay_after(u32::MAX), secs(10));
    assert_eq!(config(0, 2, 60, 1).delay_after(1), secs(2));
    assert_eq!(config(0, 0, 60, 1).delay_after(50), Duration::ZERO);
}

#[test]
fn a_client_is_held_back_after_repeated_failures() {
    let mut b = backoff(config(2, 1, 60, 900));
    let ip = "10.0.0.1";
    assert_eq!(b.check(ip, t(0)), None);
    assert_eq!(b.record_failure(ip, t(0)), Duration::ZERO);
    assert_eq!(b.record_failure(ip, t(10)), Duration::ZERO);
    assert_eq!(b.check(ip, t(10)), None);
    assert_eq!(b.record_failure(ip, t(20)), secs(1));
    assert_eq!(b.check(ip, t(20)), Some(secs(1)));
    assert_eq!(b.check(ip, t(520)), Some(Duration::from_millis(500)));
    assert_eq!(b.check(ip, t(1_020)), None);
    assert_eq!(b.record_failure(ip, t(1_020)), secs(2));
    assert_eq!(b.record_failure(ip, t(3_020)), secs(4));
    assert_eq!(b.failures(ip, t(3_020)), 5);
    // Other clients are not affected.
    assert_eq!(b.check("10.0.0.2", t(3_020)), None);
}

#[test]
fn a_quiet_period_starts_over() {
    let mut b = backoff(config(1, 1, 60, 900));
    b.record_failure("c", t(0));
    assert_eq!(b.record_failure("c", t(1_000)), secs(1));
    assert_eq!(b.failures("c", t(900_999)), 2);
    assert_eq!(b.failures("c", t(901_000)), 0);
    assert_eq!(b.record_failure("c", t(901_000)), Duration::ZERO);
}

#[test]
fn sweep_drops_spent_clients() {
    let mut b = backoff(config(0, 60, 60, 10));
    b.record_failure("a", t(0));
    b.record_failure("b", t(5_000));
    // Quiet after 10 s, but a is blocked until 60 s.
    assert_eq!(b.sweep(t(30_000)), 0);
    assert_eq!(b.sweep(t(60_000)), 1);
    assert_eq!(b.len(), 1);
    assert_eq!(b.sweep(t(65_000)), 1);
    assert!(b.is_empty());
}

#[test]
fn new_clients_share_an_overflow_entry_when_full() {
    let mut b = backoff(config(1, 1, 60, 900)).with_max_keys(1);
    b.record_failure("a", t(0));
    assert_eq!(b.record_failure("b", t(0)), Duration::ZERO);
    assert_eq!(b.record_failure("c", t(0)), secs(1));
    assert_eq!(b.check("d", t(0)), Some(secs(1)));
    assert_eq!(b.check("a", t(0)), None);
    assert_eq!(b.len(), 1);
}

#[test]
fn backoff_config_validates_with_the_field_named() {
    let field = |c: AuthBackoffConfig| c.validate().err().map(|e| e.field);
    assert_eq!(field(AuthBackoffConfig::default()), None);
    assert_eq!(field(config(0, 0, 0, 1)), None);
    assert_eq!(
        field(config(5, 61, 60, 900)).as_deref(),
        Some("base_delay_s")
    );
    assert_eq!(
        field(config(5, 1, 86_401, 900)).as_deref(),
        Some("max_delay_s")
    );
    assert_eq!(
        field(config(5, 1, 60, 0)).as_deref(),
        Some("quiet_period_s")
    );
    assert!(AuthBackoff::<String>::new(config(5, 1, 60, 0)).is_err());
}

#[test]
fn backoff_config_reads_partial_yaml() {
    let parsed: Result<AuthBackoffConfig, _> =
        serde_json::from_str(r#"{"free_failures": 3, "max_delay_s": 30}"#);
    assert_eq!(
        parsed.ok(),
        Some(AuthBackoffConfig {
            free_failures: 3,
            max_delay_s: 30,
            ..AuthBackoffConfig::default()
        })
    );
    assert!(serde_json::from_str::<AuthBackoffConfig>(r#"{"free": 3}"#).is_err());
    assert_eq!(DEFAULT_MAX_KEYS, 100_000);
}
