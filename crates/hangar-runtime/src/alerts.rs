//! Alerts: conditions an operator must hear about, derived from domain
//! events (a provider dead or restarting in a loop, a breaker open, a group
//! below `min_healthy`, repeated failed keys, the event writer falling
//! behind). Each alert is itself an event (`AlertRaised` on stream
//! `alerts`): stored, streamed, and read back by `GET
//! /api/observability/alerts`. A condition raises one alert when it starts
//! and an `info` one when it clears, never one per event.
//!
//! An optional webhook per level gets each alert as JSON, through a bounded
//! queue and a few delivery tasks retrying with backoff: a dead webhook
//! costs dropped deliveries (logged), never a blocked caller.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::events::{DomainEvent, EventBus};
use crate::metrics::Metrics;

/// The stream holding alerts.
pub const ALERTS_STREAM: &str = "alerts";
/// The event type of an alert.
pub const ALERT_RAISED: &str = "AlertRaised";

/// The event types alerts are derived from.
const WATCHED: &[&str] = &[
    "ProviderStateChanged",
    "CircuitBreakerStateChanged",
    "SecurityEvent",
];

/// Webhook deliveries waiting; more are dropped (and logged).
const WEBHOOK_QUEUE: usize = 256;
/// Deliveries in flight at once.
const WEBHOOK_CONCURRENCY: usize = 4;
/// Attempts per delivery (backoff 1 s, 2 s, 4 s, ...).
const WEBHOOK_ATTEMPTS: u32 = 5;

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    /// Something recovered, or worth knowing.
    Info,
    /// Something is wrong; service continues.
    Warning,
    /// Service is lost or about to be.
    Critical,
}

impl AlertLevel {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl std::str::FromStr for AlertLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Self::Info),
            "warning" => Ok(Self::Warning),
            "critical" => Ok(Self::Critical),
            _ => Err(format!(
                "unknown alert level '{s}' (expected critical, warning or info)"
            )),
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique id.
    pub id: String,
    /// How bad.
    pub level: AlertLevel,
    /// What kind of condition (e.g. `provider_dead`, `restart_loop`).
    pub kind: String,
    /// What it is about: `provider:<id>`, `group:<id>`, `auth`, `events`.
    pub subject: String,
    /// One sentence for people.
    pub message: String,
    /// What caused it (e.g. the provider's last error).
    pub cause: Option<String>,
    /// RFC 3339.
    pub time: String,
}

/// When alerts fire and where they go.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// A URL per level that gets each alert of that level (POST, JSON).
    pub webhooks: BTreeMap<AlertLevel, String>,
    /// A provider dying this many times ...
    pub restart_loop_count: u32,
    /// ... within this window is in a restart loop.
    pub restart_loop_window: Duration,
    /// This many failed keys ...
    pub auth_failure_count: u32,
    /// ... within this window raise an alert.
    pub auth_failure_window: Duration,
    /// The event writer is behind when this many events wait ...
    pub writer_queue_threshold: u64,
    /// ... or its last batch waited this long.
    pub writer_lag_threshold: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            webhooks: BTreeMap::new(),
            restart_loop_count: 3,
            restart_loop_window: Duration::from_secs(300),
            auth_failure_count: 20,
            auth_failure_window: Duration::from_secs(60),
            writer_queue_threshold: 10_000,
            writer_lag_threshold: Duration::from_secs(5),
        }
    }
}

/// What the alerter asks of the engine: every group's (id, healthy
/// members, min_healthy), or `None` once the engine is gone.
pub(crate) type GroupReader = Box<dyn Fn() -> Option<Vec<(String, u32, u32)>> + Send + Sync>;

/// Alerts kept in memory for an engine without a store.
const RECENT: usize = 200;

/// Alerts active now (for the `alerts_active` figure), and the last few
/// raised (what an engine without a store lists).
#[derive(Debug, Default)]
pub(crate) struct Active {
    keys: HashSet<String>,
    recent: VecDeque<Alert>,
}

impl Active {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The recent alerts of `level` (all if `None`), newest first, at most
    /// `limit`; plus how many of that level are kept.
    pub(crate) fn recent(&self, level: Option<AlertLevel>, limit: usize) -> (Vec<Alert>, u64) {
        let matching = self
            .recent
            .iter()
            .rev()
            .filter(|a| level.is_none_or(|l| a.level == l));
        let total = matching.clone().count() as u64;
        (matching.take(limit).cloned().collect(), total)
    }
}

struct Alerter {
    bus: EventBus,
    metrics: Arc<Metrics>,
    settings: AlertSettings,
    groups: GroupReader,
    active: Arc<std::sync::Mutex<Active>>,
    deaths: HashMap<String, VecDeque<Instant>>,
    looping: HashMap<String, Instant>,
    auth_failures: VecDeque<Instant>,
    dropped_seen: u64,
    webhooks: Option<mpsc::Sender<(String, Alert)>>,
}

/// Starts the alerter on `bus`; it stops when `groups` says the engine is gone.
pub(crate) fn spawn(
    bus: EventBus,
    metrics: Arc<Metrics>,
    settings: AlertSettings,
    groups: GroupReader,
    active: Arc<std::sync::Mutex<Active>>,
) {
    let rx = bus.watch(WATCHED, 4096);
    let webhooks = (!settings.webhooks.is_empty()).then(spawn_webhooks);
    let alerter = Alerter {
        bus,
        metrics,
        settings,
        groups,
        active,
        deaths: HashMap::new(),
        looping: HashMap::new(),
        auth_failures: VecDeque::new(),
        dropped_seen: 0,
        webhooks,
    };
    tokio::spawn(alerter.run(rx));
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

impl Alerter {
    async fn run(mut self, mut rx: mpsc::Receiver<DomainEvent>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => self.on_event(&e),
                    None => return,
                },
                _ = tick.tick() => {
                    if !self.on_tick() {
                        return;
                    }
                }
            }
        }
    }

    /// Raises `alert` if `key` is not active yet (`Some(key)`), or always
    /// (`None`).
    fn raise(&mut self, key: Option<String>, alert: Alert) {
        if let Some(key) = key
            && !crate::lock(&self.active).keys.insert(key)
        {
            return;
        }
        self.emit(alert);
    }

    /// Clears `key`; if it was active, raises the `info` alert saying so.
    fn clear(&mut self, key: &str, alert: impl FnOnce() -> Alert) {
        if crate::lock(&self.active).keys.remove(key) {
            self.emit(alert());
        }
    }

    fn emit(&mut self, alert: Alert) {
        let kind: &'static str = match alert.kind.as_str() {
            "provider_dead" => "provider_dead",
            "provider_recovered" => "provider_recovered",
            "restart_loop" => "restart_loop",
            "breaker_open" => "breaker_open",
            "breaker_closed" => "breaker_closed",
            "group_below_min_healthy" => "group_below_min_healthy",
            "group_recovered" => "group_recovered",
            "auth_failures" => "auth_failures",
            "event_writer_behind" => "event_writer_behind",
            "event_writer_recovered" => "event_writer_recovered",
            _ => "other",
        };
        self.metrics.alert(alert.level.as_str(), kind);
        match alert.level {
            AlertLevel::Critical => {
                tracing::error!(kind, subject = %alert.subject, message = %alert.message, "alert")
            }
            AlertLevel::Warning => {
                tracing::warn!(kind, subject = %alert.subject, message = %alert.message, "alert")
            }
            AlertLevel::Info => {
                tracing::info!(kind, subject = %alert.subject, message = %alert.message, "alert")
            }
        }
        if let (Some(tx), Some(url)) = (&self.webhooks, self.settings.webhooks.get(&alert.level))
            && tx.try_send((url.clone(), alert.clone())).is_err()
        {
            tracing::warn!(kind, "alert webhook queue full; delivery dropped");
        }
        {
            let mut active = crate::lock(&self.active);
            if active.recent.len() == RECENT {
                active.recent.pop_front();
            }
            active.recent.push_back(alert.clone());
        }
        self.bus.emit(
            ALERTS_STREAM.to_owned(),
            ALERT_RAISED,
            serde_json::to_value(&alert).unwrap_or_default(),
        );
    }

    fn on_event(&mut self, e: &DomainEvent) {
        match &*e.event_type {
            "ProviderStateChanged" => self.on_provider(&e.payload),
            "CircuitBreakerStateChanged" => self.on_breaker(&e.payload),
            "SecurityEvent" if text(&e.payload, "kind") == "auth_failed" => self.on_auth_failure(),
            _ => {}
        }
    }

    fn on_provider(&mut self, p: &Value) {
        let id = text(p, "provider_id");
        let (from, to, reason) = (text(p, "from"), text(p, "to"), text(p, "reason"));
        let subject = format!("provider:{id}");
        if to == "dead" {
            let now = Instant::now();
            let window = self.settings.restart_loop_window;
            let deaths = self.deaths.entry(id.clone()).or_default();
            deaths.push_back(now);
            while deaths
                .front()
                .is_some_and(|t| now.duration_since(*t) > window)
            {
                deaths.pop_front();
            }
            let n = deaths.len();
            self.raise(
                Some(format!("dead:{id}")),
                alert(
                    AlertLevel::Warning,
                    "provider_dead",
                    &subject,
                    format!("provider '{id}' is dead"),
                    Some(reason.clone()),
                ),
            );
            let looping = self
                .looping
                .get(&id)
                .is_some_and(|t| now.duration_since(*t) <= window);
            if n >= self.settings.restart_loop_count as usize && !looping {
                self.looping.insert(id.clone(), now);
                self.raise(
                    None,
                    alert(
                        AlertLevel::Critical,
                        "restart_loop",
                        &subject,
                        format!(
                            "provider '{id}' died {n} times within {} s",
                            window.as_secs()
                        ),
                        Some(reason),
                    ),
                );
            }
        } else if to == "ready" || (to == "cold" && from == "dead") {
            self.clear(&format!("dead:{id}"), || {
                alert(
                    AlertLevel::Info,
                    "provider_recovered",
                    &subject,
                    format!("provider '{id}' is {to} again"),
                    None,
                )
            });
        }
        self.check_groups();
    }

    fn on_breaker(&mut self, p: &Value) {
        let (group, member, to) = (text(p, "group_id"), text(p, "member_id"), text(p, "to"));
        let subject = format!("group:{group}");
        let key = format!("breaker:{group}/{member}");
        if to == "open" {
            let failures = p
                .get("consecutive_failures")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            self.raise(
                Some(key),
                alert(
                    AlertLevel::Warning,
                    "breaker_open",
                    &subject,
                    format!("circuit breaker of '{member}' in group '{group}' opened"),
                    Some(format!("{failures} consecutive failures")),
                ),
            );
        } else if to == "closed" {
            self.clear(&key, || {
                alert(
                    AlertLevel::Info,
                    "breaker_closed",
                    &subject,
                    format!("circuit breaker of '{member}' in group '{group}' closed"),
                    None,
                )
            });
        }
        self.check_groups();
    }

    fn check_groups(&mut self) {
        let Some(groups) = (self.groups)() else {
            return;
        };
        for (group, healthy, min) in groups {
            let key = format!("group:{group}");
            if healthy < min {
                self.raise(
                    Some(key),
                    alert(
                        AlertLevel::Critical,
                        "group_below_min_healthy",
                        &format!("group:{group}"),
                        format!("group '{group}' has {healthy} healthy members of {min} needed"),
                        None,
                    ),
                );
            } else {
                self.clear(&key, || {
                    alert(
                        AlertLevel::Info,
                        "group_recovered",
                        &format!("group:{group}"),
                        format!("group '{group}' has {healthy} healthy members again"),
                        None,
                    )
                });
            }
        }
    }

    fn on_auth_failure(&mut self) {
        let now = Instant::now();
        self.auth_failures.push_back(now);
        // Only "at least N within the window" matters: the N most recent
        // failures say it, so a flood of bad keys keeps N entries, no more.
        if self.auth_failures.len() > self.settings.auth_failure_count as usize {
            self.auth_failures.pop_front();
        }
        self.expire_auth_failures(now);
        let n = self.auth_failures.len();
        if n >= self.settings.auth_failure_count as usize {
            let window = self.settings.auth_failure_window.as_secs();
            self.raise(
                Some("auth".to_owned()),
                alert(
                    AlertLevel::Warning,
                    "auth_failures",
                    "auth",
                    format!("{n} requests with a bad key within {window} s"),
                    Some("see GET /api/observability/security".to_owned()),
                ),
            );
        }
    }

    fn expire_auth_failures(&mut self, now: Instant) {
        let window = self.settings.auth_failure_window;
        while self
            .auth_failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.auth_failures.pop_front();
        }
    }

    /// Once a second: the writer, the auth window. False once the engine is gone.
    fn on_tick(&mut self) -> bool {
        if (self.groups)().is_none() {
            return false;
        }
        let now = Instant::now();
        self.expire_auth_failures(now);
        if self.auth_failures.is_empty() {
            // Quiet for a whole window: a new burst alerts again (no info alert).
            crate::lock(&self.active).keys.remove("auth");
        }
        let w = self.bus.writer_reading();
        let newly_dropped = w.dropped.saturating_sub(self.dropped_seen);
        self.dropped_seen = w.dropped;
        let behind = w.queue_depth >= self.settings.writer_queue_threshold
            || Duration::from_millis(w.lag_ms) >= self.settings.writer_lag_threshold
            || newly_dropped > 0;
        if behind {
            let level = if newly_dropped > 0 {
                AlertLevel::Critical
            } else {
                AlertLevel::Warning
            };
            self.raise(
                Some("writer".to_owned()),
                alert(
                    level,
                    "event_writer_behind",
                    "events",
                    format!(
                        "the event writer is behind: {} events waiting, last batch waited {} ms",
                        w.queue_depth, w.lag_ms
                    ),
                    (newly_dropped > 0).then(|| format!("{newly_dropped} events not stored")),
                ),
            );
        } else if w.queue_depth < self.settings.writer_queue_threshold / 2 {
            self.clear("writer", || {
                alert(
                    AlertLevel::Info,
                    "event_writer_recovered",
                    "events",
                    "the event writer caught up".to_owned(),
                    None,
                )
            });
        }
        true
    }
}

fn alert(
    level: AlertLevel,
    kind: &str,
    subject: &str,
    message: String,
    cause: Option<String>,
) -> Alert {
    Alert {
        id: format!("alert_{:016x}", rand::random::<u64>()),
        level,
        kind: kind.to_owned(),
        subject: subject.to_owned(),
        message,
        cause: cause.filter(|c| !c.is_empty()),
        time: crate::now_rfc3339(),
    }
}

fn spawn_webhooks() -> mpsc::Sender<(String, Alert)> {
    let (tx, mut rx) = mpsc::channel::<(String, Alert)>(WEBHOOK_QUEUE);
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "alert webhooks disabled: no HTTP client");
                return;
            }
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(WEBHOOK_CONCURRENCY));
        while let Some((url, alert)) = rx.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let client = client.clone();
            tokio::spawn(async move {
                let _permit = permit;
                deliver(&client, &url, &alert).await;
            });
        }
    });
    tx
}

#[tracing::instrument(skip_all, fields(alert = %alert.id, kind = %alert.kind))]
async fn deliver(client: &reqwest::Client, url: &str, alert: &Alert) {
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let result = client.post(url).json(alert).send().await;
        match result {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                tracing::warn!(
                    attempt,
                    status = r.status().as_u16(),
                    "alert webhook refused the alert"
                );
            }
            Err(e) => tracing::warn!(attempt, error = %e, "alert webhook unreachable"),
        }
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }
    tracing::error!("alert webhook gave up after {WEBHOOK_ATTEMPTS} attempts");
}

impl From<&hangar_core::config::AlertConfig> for AlertSettings {
    fn from(c: &hangar_core::config::AlertConfig) -> Self {
        Self {
            webhooks: c
                .webhooks
                .iter()
                .filter_map(|(level, url)| Some((level.parse().ok()?, url.clone())))
                .collect(),
            restart_loop_count: c.restart_loop_count,
            restart_loop_window: Duration::from_secs(c.restart_loop_window_s),
            auth_failure_count: c.auth_failure_count,
            auth_failure_window: Duration::from_secs(c.auth_failure_window_s),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// An alerter on an in-memory bus whose one group `g` has `healthy`
    /// members of 2 needed; returns the bus and a receiver of its alerts.
    fn alerter(
        healthy: Arc<AtomicU32>,
        settings: AlertSettings,
    ) -> (EventBus, mpsc::Receiver<DomainEvent>) {
        let bus = EventBus::in_memory();
        let alerts = bus.watch(&[ALERT_RAISED], 64);
        let groups: GroupReader =
            Box::new(move || Some(vec![("g".to_owned(), healthy.load(Ordering::Relaxed), 2)]));
        spawn(
            bus.clone(),
            Arc::default(),
            settings,
            groups,
            Arc::default(),
        );
        (bus, alerts)
    }

    async fn next(rx: &mut mpsc::Receiver<DomainEvent>) -> Alert {
        let e = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an alert")
            .expect("the bus");
        serde_json::from_value(e.payload).expect("an alert payload")
    }

    fn breaker(bus: &EventBus, to: &str) {
        bus.emit(
            "group:g".into(),
            "CircuitBreakerStateChanged",
            serde_json::json!({"group_id": "g", "member_id": "m1", "from": "closed", "to": to, "consecutive_failures": 5}),
        );
    }

    #[tokio::test]
    async fn an_open_breaker_and_a_thin_group_alert_once_then_recover() {
        let healthy = Arc::new(AtomicU32::new(1));
        let (bus, mut rx) = alerter(healthy.clone(), AlertSettings::default());
        breaker(&bus, "open");
        let a = next(&mut rx).await;
        assert_eq!(
            (a.kind.as_str(), a.level),
            ("breaker_open", AlertLevel::Warning)
        );
        assert_eq!(a.subject, "group:g");
        let a = next(&mut rx).await;
        assert_eq!(a.kind, "group_below_min_healthy");
        assert_eq!(a.level, AlertLevel::Critical);
        // The same condition again raises nothing new.
        breaker(&bus, "open");
        healthy.store(2, Ordering::Relaxed);
        breaker(&bus, "closed");
        // The breaker event and the once-a-second group check race: both
        // recoveries arrive, in either order, each once.
        let mut got = [next(&mut rx).await, next(&mut rx).await];
        got.sort_by(|a, b| a.kind.cmp(&b.kind));
        let got: Vec<_> = got.iter().map(|a| (a.kind.as_str(), a.level)).collect();
        assert_eq!(
            got,
            [
                ("breaker_closed", AlertLevel::Info),
                ("group_recovered", AlertLevel::Info)
            ]
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(1500), rx.recv())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn repeated_failed_keys_alert_at_the_threshold() {
        let settings = AlertSettings {
            auth_failure_count: 3,
            ..AlertSettings::default()
        };
        let (bus, mut rx) = alerter(Arc::new(AtomicU32::new(2)), settings);
        for _ in 0..5 {
            bus.emit(
                "audit".into(),
                "SecurityEvent",
                serde_json::json!({"kind": "auth_failed"}),
            );
        }
        let a = next(&mut rx).await;
        assert_eq!(
            (a.kind.as_str(), a.level),
            ("auth_failures", AlertLevel::Warning)
        );
        assert!(a.message.starts_with("3 requests"), "{}", a.message);
        // One alert for the burst, not one per failure.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), rx.recv())
                .await
                .is_err()
        );
    }

    #[test]
    fn settings_come_from_the_config() {
        let mut c = hangar_core::config::AlertConfig::default();
        c.webhooks
            .insert("critical".into(), "https://hooks.example/x".into());
        let s = AlertSettings::from(&c);
        assert_eq!(
            s.webhooks.get(&AlertLevel::Critical).map(String::as_str),
            Some("https://hooks.example/x")
        );
        assert_eq!(s.restart_loop_count, 3);
        assert_eq!("warning".parse::<AlertLevel>(), Ok(AlertLevel::Warning));
        assert!("loud".parse::<AlertLevel>().is_err());
    }
}
