//! Metrics, through `prometheus-client` (the Prometheus project's own Rust
//! client: OpenMetrics text, typed label sets, no global registry).
//!
//! Counters and histograms that follow calls are updated where things
//! happen (a call's report, a provider's transition, a failed key); gauges
//! that describe the current state (provider states, breakers, pending
//! approvals, the event writer) are set from the engine when metrics are
//! read ([`crate::Engine::render_metrics`]), so nothing on the call path
//! keeps them. A sampler keeps a bounded history of the summary for charts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

/// How often the history sampler takes a sample.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    provider: String,
    tool: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    provider: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    provider: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    group: String,
    member: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EraLabels {
    era: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    level: &'static str,
    kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn call_buckets() -> Histogram {
    // 0.25 ms .. ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

fn start_buckets() -> Histogram {
    // 10 ms .. ~40 s.
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

/// The state gauges' possible values (one series per state, 1 for the
/// current one).
const PROVIDER_STATES: [&str; 5] = ["cold", "initializing", "ready", "degraded", "dead"];
const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

/// The MCP protocol eras counted apart.
pub const ERAS: [&str; 2] = ["2025", "2026-07-28"];

/// Every metric Hangar keeps.
pub struct Metrics {
    registry: Registry,
    tool_calls: Family<CallLabels, Counter>,
    call_seconds: HistogramFamily<ProviderLabels>,
    starts: Family<ProviderLabels, Counter>,
    restarts: Family<ProviderLabels, Counter>,
    start_seconds: HistogramFamily<ProviderLabels>,
    health_checks: Family<OutcomeLabels, Counter>,
    breaker_transitions: Family<BreakerLabels, Counter>,
    mcp_requests: Family<EraLabels, Counter>,
    auth_failures: Counter,
    access_denied: Counter,
    rate_limited: Counter,
    alerts: Family<AlertLabels, Counter>,
    // Set when read.
    provider_state: Family<StateLabels, Gauge>,
    breaker_state: Family<BreakerLabels, Gauge>,
    group_healthy: Family<GroupLabels, Gauge>,
    group_min_healthy: Family<GroupLabels, Gauge>,
    sessions: Family<EraLabels, Gauge>,
    approvals_pending: Gauge,
    questions_pending: Gauge,
    event_queue_depth: Gauge,
    event_writer_lag: Gauge<f64, AtomicU64>,
    events_dropped: Counter,
    event_subscribers: Gauge,
    uptime: Gauge<f64, AtomicU64>,
    // Totals for the summary, kept beside the labelled families.
    calls: AtomicU64,
    call_errors: AtomicU64,
    /// Serializes reads, which set the gauges before encoding.
    read: tokio::sync::Mutex<()>,
    history: Mutex<History>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(60)
    }
}

/// Current values that the engine reads when metrics are asked for.
#[derive(Debug, Default, Clone)]
pub struct Readings {
    /// (provider, state).
    pub providers: Vec<(String, &'static str)>,
    /// (group, member, breaker state).
    pub breakers: Vec<(String, String, &'static str)>,
    /// (group, healthy members, min_healthy).
    pub groups: Vec<(String, u32, u32)>,
    /// Live MCP sessions per era (same order as [`ERAS`]).
    pub sessions: [u64; 2],
    /// Held calls waiting for an answer.
    pub approvals_pending: u64,
    /// Provider questions waiting for an answer.
    pub questions_pending: u64,
    /// The event writer.
    pub writer: crate::events::WriterReading,
    /// Live event subscribers.
    pub event_subscribers: u64,
    /// Seconds since the engine started.
    pub uptime_s: f64,
    /// Alerts currently active.
    pub alerts_active: u64,
}

/// One sample of the summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// RFC 3339.
    pub timestamp: String,
    /// The summary's values at that time, plus `calls_per_s` since the
    /// previous sample.
    pub values: BTreeMap<&'static str, f64>,
}

#[derive(Debug)]
struct History {
    samples: VecDeque<Sample>,
    capacity: usize,
    last_calls: Option<(u64, std::time::Instant)>,
}

fn as_f64(n: u64) -> f64 {
    // Counts stay far below 2^53.
    n as f64
}

impl Metrics {
    /// Metrics keeping `history_minutes` of samples.
    pub fn new(history_minutes: u32) -> Self {
        let mut registry = Registry::with_prefix("hangar");
        let tool_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "Tool calls by provider, tool and outcome (success, tool_error, error)",
            tool_calls.clone(),
        );
        let call_seconds: HistogramFamily<ProviderLabels> =
            Family::new_with_constructor(call_buckets as fn() -> Histogram);
        registry.register(
            "tool_call_duration_seconds",
            "Time a provider took to answer a tool call",
            call_seconds.clone(),
        );
        let starts = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_starts",
            "Provider starts attempted",
            starts.clone(),
        );
        let restarts = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_restarts",
            "Starts of a provider that was dead (after a crash or failed start)",
            restarts.clone(),
        );
        let start_seconds: HistogramFamily<ProviderLabels> =
            Family::new_with_constructor(start_buckets as fn() -> Histogram);
        registry.register(
            "provider_cold_start_seconds",
            "Time from start to ready (spawn or connect, handshake, listing)",
            start_seconds.clone(),
        );
        let health_checks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "provider_health_checks",
            "Health checks by provider and outcome (ok, failed)",
            health_checks.clone(),
        );
        let breaker_transitions = Family::<BreakerLabels, Counter>::default();
        registry.register(
            "circuit_breaker_transitions",
            "Circuit breaker changes by group, member and new state",
            breaker_transitions.clone(),
        );
        let mcp_requests = Family::<EraLabels, Counter>::default();
        registry.register(
            "mcp_requests",
            "HTTP requests to /mcp by protocol era",
            mcp_requests.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Requests with a bad, expired or revoked key",
            auth_failures.clone(),
        );
        let access_denied = Counter::default();
        registry.register(
            "access_denied",
            "Requests refused for lack of a permission",
            access_denied.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited",
            "Requests refused over a principal's rate limit",
            rate_limited.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register("alerts", "Alerts raised by level and kind", alerts.clone());
        let provider_state = Family::<StateLabels, Gauge>::default();
        registry.register(
            "provider_state",
            "1 for each provider's current state, 0 for the others",
            provider_state.clone(),
        );
        let breaker_state = Family::<BreakerLabels, Gauge>::default();
        registry.register(
            "circuit_breaker_state",
            "1 for each group member's current breaker state, 0 for the others",
            breaker_state.clone(),
        );
        let group_healthy = Family::<GroupLabels, Gauge>::default();
        registry.register(
            "group_healthy_members",
            "Members of a group that can take calls",
            group_healthy.clone(),
        );
        let group_min_healthy = Family::<GroupLabels, Gauge>::default();
        registry.register(
            "group_min_healthy",
            "Healthy members a group needs",
            group_min_healthy.clone(),
        );
        let sessions = Family::<EraLabels, Gauge>::default();
        registry.register(
            "mcp_sessions_active",
            "Live MCP sessions by protocol era (2026-07-28 is sessionless)",
            sessions.clone(),
        );
        let approvals_pending = Gauge::default();
        registry.register(
            "approvals_pending",
            "Tool calls held for a human's approval",
            approvals_pending.clone(),
        );
        let questions_pending = Gauge::default();
        registry.register(
            "questions_pending",
            "Provider questions waiting for an operator",
            questions_pending.clone(),
        );
        let event_queue_depth = Gauge::default();
        registry.register(
            "event_writer_queue_depth",
            "Events emitted but not yet stored",
            event_queue_depth.clone(),
        );
        let event_writer_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "event_writer_lag_seconds",
            "How long the oldest event of the last stored batch waited",
            event_writer_lag.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "Events streamed but not stored because the writer's queue was full",
            events_dropped.clone(),
        );
        let event_subscribers = Gauge::default();
        registry.register(
            "event_subscribers",
            "Live event stream consumers (SSE, WebSocket, alerts)",
            event_subscribers.clone(),
        );
        let uptime = Gauge::<f64, AtomicU64>::default();
        registry.register("uptime_seconds", "Seconds since start", uptime.clone());
        Self {
            registry,
            tool_calls,
            call_seconds,
            starts,
            restarts,
            start_seconds,
            health_checks,
            breaker_transitions,
            mcp_requests,
            auth_failures,
            access_denied,
            rate_limited,
            alerts,
            provider_state,
            breaker_state,
            group_healthy,
            group_min_healthy,
            sessions,
            approvals_pending,
            questions_pending,
            event_queue_depth,
            event_writer_lag,
            events_dropped,
            event_subscribers,
            uptime,
            calls: AtomicU64::new(0),
            call_errors: AtomicU64::new(0),
            read: tokio::sync::Mutex::new(()),
            history: Mutex::new(History {
                samples: VecDeque::new(),
                capacity: usize::try_from(
                    u64::from(history_minutes.max(1)) * 60 / SAMPLE_EVERY.as_secs(),
                )
                .unwrap_or(360),
                last_calls: None,
            }),
        }
    }

    /// One finished tool call.
    pub fn tool_call(&self, provider: &str, tool: &str, outcome: &'static str, took: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if outcome != "success" {
            self.call_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.tool_calls
            .get_or_create(&CallLabels {
                provider: provider.to_owned(),
                tool: tool.to_owned(),
                outcome,
            })
            .inc();
        self.call_seconds
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// A provider changed state (`from` → `to`, lower case).
    pub fn transition(&self, provider: &str, from: &str, to: &str) {
        if to == "initializing" {
            let labels = ProviderLabels {
                provider: provider.to_owned(),
            };
            self.starts.get_or_create(&labels).inc();
            if from == "dead" {
                self.restarts.get_or_create(&labels).inc();
            }
        }
    }

    /// A provider became ready `took` after its start began.
    pub fn started(&self, provider: &str, took: Duration) {
        self.start_seconds
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// One health check.
    pub fn health_check(&self, provider: &str, ok: bool) {
        self.health_checks
            .get_or_create(&OutcomeLabels {
                provider: provider.to_owned(),
                outcome: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// A group member's breaker changed to `to`.
    pub fn breaker_transition(&self, group: &str, member: &str, to: &'static str) {
        self.breaker_transitions
            .get_or_create(&BreakerLabels {
                group: group.to_owned(),
                member: member.to_owned(),
                state: to,
            })
            .inc();
    }

    /// One request to `/mcp` in `era` (one of [`ERAS`]).
    pub fn mcp_request(&self, era: &'static str) {
        self.mcp_requests.get_or_create(&EraLabels { era }).inc();
    }

    /// A request with a bad key.
    pub fn auth_failure(&self) {
        self.auth_failures.inc();
    }

    /// A request refused for lack of a permission.
    pub fn access_denied(&self) {
        self.access_denied.inc();
    }

    /// A request over its rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// An alert was raised.
    pub fn alert(&self, level: &'static str, kind: &'static str) {
        self.alerts
            .get_or_create(&AlertLabels { level, kind })
            .inc();
    }

    fn set(&self, r: &Readings) {
        self.provider_state.clear();
        for (provider, state) in &r.providers {
            for s in PROVIDER_STATES {
                self.provider_state
                    .get_or_create(&StateLabels {
                        provider: provider.clone(),
                        state: s,
                    })
                    .set(i64::from(s == *state));
            }
        }
        self.breaker_state.clear();
        for (group, member, state) in &r.breakers {
            for s in BREAKER_STATES {
                self.breaker_state
                    .get_or_create(&BreakerLabels {
                        group: group.clone(),
                        member: member.clone(),
                        state: s,
                    })
                    .set(i64::from(s == *state));
            }
        }
        self.group_healthy.clear();
        self.group_min_healthy.clear();
        for (group, healthy, min) in &r.groups {
            let labels = GroupLabels {
                group: group.clone(),
            };
            self.group_healthy
                .get_or_create(&labels)
                .set(i64::from(*healthy));
            self.group_min_healthy
                .get_or_create(&labels)
                .set(i64::from(*min));
        }
        for (era, n) in ERAS.iter().zip(r.sessions) {
            self.sessions
                .get_or_create(&EraLabels { era })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.approvals_pending.set(int(r.approvals_pending));
        self.questions_pending.set(int(r.questions_pending));
        self.event_queue_depth.set(int(r.writer.queue_depth));
        self.event_writer_lag.set(as_f64(r.writer.lag_ms) / 1000.0);
        let seen = self.events_dropped.get();
        self.events_dropped
            .inc_by(r.writer.dropped.saturating_sub(seen));
        self.event_subscribers.set(int(r.event_subscribers));
        self.uptime.set(r.uptime_s);
    }

    /// The OpenMetrics text of every metric, with gauges set from `r`.
    pub async fn render(&self, r: &Readings) -> String {
        let _one = self.read.lock().await;
        self.set(r);
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }

    /// The headline numbers.
    pub fn summary(&self, r: &Readings) -> BTreeMap<&'static str, f64> {
        let count = |s: &str| as_f64(r.providers.iter().filter(|(_, st)| *st == s).count() as u64);
        let mut m = BTreeMap::new();
        m.insert(
            "tool_calls_total",
            as_f64(self.calls.load(Ordering::Relaxed)),
        );
        m.insert(
            "tool_call_errors_total",
            as_f64(self.call_errors.load(Ordering::Relaxed)),
        );
        m.insert("providers_total", as_f64(r.providers.len() as u64));
        for s in PROVIDER_STATES {
            m.insert(
                match s {
                    "cold" => "providers_cold",
                    "initializing" => "providers_initializing",
                    "ready" => "providers_ready",
                    "degraded" => "providers_degraded",
                    _ => "providers_dead",
                },
                count(s),
            );
        }
        m.insert("groups_total", as_f64(r.groups.len() as u64));
        m.insert(
            "groups_below_min_healthy",
            as_f64(r.groups.iter().filter(|(_, h, min)| h < min).count() as u64),
        );
        m.insert(
            "breakers_open",
            as_f64(r.breakers.iter().filter(|(_, _, s)| *s == "open").count() as u64),
        );
        m.insert("sessions_active", as_f64(r.sessions.iter().sum()));
        m.insert("approvals_pending", as_f64(r.approvals_pending));
        m.insert("questions_pending", as_f64(r.questions_pending));
        m.insert("auth_failures_total", as_f64(self.auth_failures.get()));
        m.insert("rate_limited_total", as_f64(self.rate_limited.get()));
        m.insert("event_writer_queue_depth", as_f64(r.writer.queue_depth));
        m.insert("events_dropped_total", as_f64(r.writer.dropped));
        m.insert("alerts_active", as_f64(r.alerts_active));
        m.insert("uptime_seconds", r.uptime_s);
        m
    }

    /// Takes one history sample (the sampler calls this every
    /// [`SAMPLE_EVERY`]).
    pub fn sample(&self, r: &Readings) {
        let mut values = self.summary(r);
        let calls = self.calls.load(Ordering::Relaxed);
        let now = std::time::Instant::now();
        let mut h = crate::lock(&self.history);
        let rate = match h.last_calls {
            Some((before, at)) => {
                let secs = now.duration_since(at).as_secs_f64();
                if secs > 0.0 {
                    as_f64(calls.saturating_sub(before)) / secs
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        h.last_calls = Some((calls, now));
        values.insert("calls_per_s", rate);
        if h.samples.len() >= h.capacity {
            h.samples.pop_front();
        }
        h.samples.push_back(Sample {
            timestamp: crate::now_rfc3339(),
            values,
        });
    }

    /// The samples of the last `minutes`, oldest first.
    pub fn history(&self, minutes: u32) -> Vec<Sample> {
        let n = usize::try_from(u64::from(minutes) * 60 / SAMPLE_EVERY.as_secs()).unwrap_or(0);
        let h = crate::lock(&self.history);
        let skip = h.samples.len().saturating_sub(n);
        h.samples.iter().skip(skip).cloned().collect()
    }

    /// How many minutes of history are kept.
    pub fn history_minutes(&self) -> u32 {
        let h = crate::lock(&self.history);
        u32::try_from(h.capacity as u64 * SAMPLE_EVERY.as_secs() / 60).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_show_in_the_text_and_the_summary() {
        let m = Metrics::new(1);
        m.tool_call("fx", "add", "success", Duration::from_millis(2));
        m.tool_call("fx", "add", "tool_error", Duration::from_millis(3));
        m.transition("fx", "cold", "initializing");
        m.transition("fx", "dead", "initializing");
        let r = Readings {
            providers: vec![("fx".into(), "ready")],
            ..Readings::default()
        };
        let text = m.render(&r).await;
        assert!(
            text.contains(
                r#"hangar_tool_calls_total{provider="fx",tool="add",outcome="success"} 1"#
            )
        );
        assert!(text.contains(r#"hangar_provider_starts_total{provider="fx"} 2"#));
        assert!(text.contains(r#"hangar_provider_restarts_total{provider="fx"} 1"#));
        assert!(text.contains(r#"hangar_provider_state{provider="fx",state="ready"} 1"#));
        assert!(text.contains(r#"hangar_provider_state{provider="fx",state="dead"} 0"#));
        assert!(text.contains(r#"hangar_tool_call_duration_seconds_count{provider="fx"} 2"#));
        let s = m.summary(&r);
        assert_eq!(s["tool_calls_total"], 2.0);
        assert_eq!(s["tool_call_errors_total"], 1.0);
        assert_eq!(s["providers_ready"], 1.0);
    }

    #[test]
    fn history_is_bounded() {
        let m = Metrics::new(1);
        for _ in 0..50 {
            m.sample(&Readings::default());
        }
        // One minute at one sample per 10 s.
        assert_eq!(m.history(60).len(), 6);
        assert_eq!(m.history(0).len(), 0);
        assert_eq!(m.history_minutes(), 1);
    }
}
