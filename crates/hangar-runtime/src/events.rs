//! Domain events: provider state changes, tool calls, breaker changes,
//! approvals, audit records, alerts, each on its stream (`provider:<id>`,
//! `group:<id>`, `audit`, ...) with a per-stream version and a global
//! position that the store keeps.
//!
//! Emitting never blocks and never touches the database: events go through a
//! channel to one writer task that appends them in batches (one transaction
//! per batch) to the store's append-only `events` table. Live subscribers get
//! them from a bounded broadcast channel (a slow one lags, and
//! [`crate::feed`] catches it up from the store); watchers get chosen types
//! through bounded channels of their own.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use crate::store::Store;

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 512;
/// How long the writer gathers events before a transaction.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(50);

/// The stream holding audit records.
pub const AUDIT_STREAM: &str = "audit";
/// The record of retention removing audit records:
/// `{event_type, deleted, retention}`.
pub const AUDIT_PRUNED: &str = "AuditPruned";
/// The audit record types (each kept up to `audit_retention`).
pub const AUDIT_EVENT_TYPES: [&str; 6] = [
    "ToolCallAudited",
    "ResourceReadAudited",
    "PromptGetAudited",
    "AdminChange",
    "SecurityEvent",
    AUDIT_PRUNED,
];

/// Whether `stream_id` is part of the audit trail, which nothing but its
/// configured retention deletes from (compaction refuses it).
pub fn is_append_only(stream_id: &str) -> bool {
    stream_id == AUDIT_STREAM || stream_id == crate::approvals::APPROVALS_STREAM
}

/// How the event store keeps its size bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventStoreSettings {
    /// Tool invocation records kept per provider (older ones are deleted).
    pub history_retention: u64,
    /// A stream gets a snapshot after this many new events; compaction
    /// (`Store::compact`) deletes the events a snapshot covers.
    pub snapshot_every: u64,
    /// Audit records kept per type on the `audit` stream (older ones are deleted).
    pub audit_retention: u64,
}

impl Default for EventStoreSettings {
    fn default() -> Self {
        Self {
            history_retention: hangar_core::config::DEFAULT_HISTORY_RETENTION,
            snapshot_every: hangar_core::config::DEFAULT_SNAPSHOT_EVERY,
            audit_retention: hangar_core::config::DEFAULT_AUDIT_RETENTION,
        }
    }
}

/// One domain event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DomainEvent {
    /// Global position in the event store, from 1, never reused: the SSE
    /// `id` a client resumes from (`Last-Event-ID`).
    pub position: u64,
    /// `provider:<id>`, `group:<id>`, `audit`, `approvals`, `alerts`, `config`.
    pub stream_id: String,
    /// Position within the stream, from 1.
    pub version: u64,
    /// e.g. `ProviderStateChanged`, `CircuitBreakerStateChanged`.
    pub event_type: Cow<'static, str>,
    /// Event data.
    pub payload: Value,
    /// RFC 3339.
    pub time: String,
}

enum Msg {
    Event(DomainEvent, Instant),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Positions handed out so far: the global one and each stream's version.
#[derive(Default)]
struct Counters {
    position: u64,
    versions: HashMap<String, u64>,
}

/// A bounded channel that gets every event of some types (alerts, metrics):
/// unlike the broadcast, it can't lag behind a flood of other events.
struct Watcher {
    types: &'static [&'static str],
    tx: mpsc::Sender<DomainEvent>,
}

/// What the writer is doing, for metrics and alerts.
#[derive(Debug, Default)]
struct WriterStats {
    queued: AtomicU64,
    dropped: AtomicU64,
    lag_ms: AtomicU64,
    failed_batches: AtomicU64,
}

/// A reading of the event writer: how far behind it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct WriterReading {
    /// Events emitted but not yet stored.
    pub queue_depth: u64,
    /// Events not stored because the queue was full (never audit,
    /// approvals or alerts; they were still streamed live).
    pub dropped: u64,
    /// How long the last stored batch's oldest event waited, in ms.
    pub lag_ms: u64,
    /// Batches the store refused.
    pub failed_batches: u64,
    /// The last position handed out.
    pub last_position: u64,
}

/// Where domain events go; cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    counters: Arc<Mutex<Counters>>,
    writer: Option<mpsc::UnboundedSender<Msg>>,
    live: broadcast::Sender<DomainEvent>,
    watchers: Arc<Mutex<Vec<Watcher>>>,
    stats: Arc<WriterStats>,
    store: Option<Store>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").finish_non_exhaustive()
    }
}

/// Events a live subscriber may fall behind by before it is told it lagged
/// (and catches up from the store).
pub const LIVE_CAPACITY: usize = 1024;

/// Events queued for the writer beyond which the ones that are not part of
/// the audit trail are streamed but not stored: a store that can't keep up
/// must not grow memory without bound.
pub const MAX_QUEUED: u64 = 100_000;

/// Whether events of this stream are stored even when the writer's queue
/// is full.
fn always_stored(stream_id: &str) -> bool {
    is_append_only(stream_id) || stream_id == crate::alerts::ALERTS_STREAM
}

impl EventBus {
    /// A bus that persists to `store` (if any), bounded by `settings`.
    /// Stream versions and the global position continue from what the store
    /// holds. Must be called inside a tokio runtime.
    pub async fn new(store: Option<Store>, settings: EventStoreSettings) -> Self {
        let mut bus = Self::in_memory();
        let Some(store) = store else { return bus };
        let mut counters = Counters::default();
        match store.stream_versions().await {
            Ok(v) => counters.versions = v,
            Err(e) => tracing::warn!(error = %e, "could not read event stream versions"),
        }
        match store.last_position().await {
            Ok(p) => counters.position = p,
            Err(e) => tracing::warn!(error = %e, "could not read the last event position"),
        }
        *crate::lock(&bus.counters) = counters;
        let (tx, rx) = mpsc::unbounded_channel();
        bus.store = Some(store.clone());
        tokio::spawn(write_batches(store, rx, settings, bus.clone()));
        bus.writer = Some(tx);
        bus
    }

    /// Numbers an event, hands it to watchers and live subscribers, and
    /// queues it for the writer if `queue`. All under one lock, so positions
    /// reach subscribers and the store in order.
    fn record(
        &self,
        stream_id: String,
        event_type: &'static str,
        payload: Value,
        queue: bool,
    ) -> DomainEvent {
        let mut c = crate::lock(&self.counters);
        c.position += 1;
        let position = c.position;
        let version = {
            let n = c.versions.entry(stream_id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let event = DomainEvent {
            position,
            stream_id,
            version,
            event_type: Cow::Borrowed(event_type),
            payload,
            time: crate::now_rfc3339(),
        };
        for w in crate::lock(&self.watchers).iter() {
            if w.types.contains(&event_type) && w.tx.try_send(event.clone()).is_err() {
                tracing::warn!(
                    event_type,
                    "event watcher full or gone; event not delivered to it"
                );
            }
        }
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(event.clone());
        }
        if queue && let Some(w) = &self.writer {
            let queued = self.stats.queued.load(Ordering::Relaxed);
            if queued >= MAX_QUEUED && !always_stored(&event.stream_id) {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                if w.send(Msg::Event(event.clone(), Instant::now())).is_err() {
                    self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!("event writer stopped; event not stored");
                }
            }
        }
        event
    }

    /// A bus that keeps nothing (live subscribers only).
    pub fn in_memory() -> Self {
        Self {
            counters: Arc::new(Mutex::new(Counters::default())),
            writer: None,
            live: broadcast::channel(LIVE_CAPACITY).0,
            watchers: Arc::new(Mutex::new(Vec::new())),
            stats: Arc::new(WriterStats::default()),
            store: None,
        }
    }

    /// Records an event on `stream_id` (never blocks).
    pub fn emit(&self, stream_id: String, event_type: &'static str, payload: Value) {
        self.record(stream_id, event_type, payload, true);
    }

    /// Waits until every event emitted so far is stored.
    pub async fn flush(&self) {
        if let Some(w) = &self.writer {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if w.send(Msg::Flush(tx)).is_ok() {
                let _ = rx.await;
            }
        }
    }

    /// Live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DomainEvent> {
        self.live.subscribe()
    }

    /// Live events from now on, and the last position handed out before
    /// them (taken together, so nothing falls between the two).
    pub fn subscribe_at(&self) -> (broadcast::Receiver<DomainEvent>, u64) {
        let c = crate::lock(&self.counters);
        (self.live.subscribe(), c.position)
    }

    /// Every future event of `types`, through a channel of `capacity`
    /// (events past it are logged and not delivered to this watcher).
    pub fn watch(
        &self,
        types: &'static [&'static str],
        capacity: usize,
    ) -> mpsc::Receiver<DomainEvent> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut w = crate::lock(&self.watchers);
        w.retain(|w| !w.tx.is_closed());
        w.push(Watcher { types, tx });
        rx
    }

    /// The store events are written to, if any.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// How the writer is doing.
    pub fn writer_reading(&self) -> WriterReading {
        let position = crate::lock(&self.counters).position;
        WriterReading {
            queue_depth: self.stats.queued.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            lag_ms: self.stats.lag_ms.load(Ordering::Relaxed),
            failed_batches: self.stats.failed_batches.load(Ordering::Relaxed),
            last_position: position,
        }
    }

    /// Live subscribers (SSE and WebSocket consumers, among others).
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }
}

async fn write_batches(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    settings: EventStoreSettings,
    bus: EventBus,
) {
    let history_retention = settings.history_retention;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Invocation records written per stream since its last prune.
    let mut since_prune: HashMap<String, u64> = HashMap::new();
    let prune_every = (history_retention / 10).max(1);
    // Events written per stream since its last snapshot.
    let mut since_snapshot: HashMap<String, u64> = HashMap::new();
    // Audit records written since the audit stream was last pruned.
    let mut audit_since_prune = 0u64;
    let audit_prune_every = (settings.audit_retention / 10).max(1);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Gather for a moment so one transaction carries many events, unless
        // someone is waiting for a flush.
        let flushing = batch.iter().any(|m| matches!(m, Msg::Flush(_)));
        if !flushing && batch.len() < MAX_BATCH {
            tokio::time::sleep(BATCH_WINDOW).await;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
        }
        let mut events = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        let mut oldest = Instant::now();
        for m in batch.drain(..) {
            match m {
                Msg::Event(e, queued_at) => {
                    oldest = oldest.min(queued_at);
                    events.push(e);
                }
                Msg::Flush(done) => flushes.push(done),
            }
        }
        for e in events
            .iter()
            .filter(|e| e.event_type == crate::engine::TOOL_INVOCATION)
        {
            *since_prune.entry(e.stream_id.clone()).or_default() += 1;
        }
        for e in &events {
            *since_snapshot.entry(e.stream_id.clone()).or_default() += 1;
        }
        audit_since_prune += events
            .iter()
            .filter(|e| e.stream_id == AUDIT_STREAM)
            .count() as u64;
        let n = events.len();
        if n > 0 {
            if let Err(e) = store.append_events(events).await {
                bus.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, events = n, "could not store domain events");
            }
            bus.stats.queued.fetch_sub(n as u64, Ordering::Relaxed);
            let lag = u64::try_from(oldest.elapsed().as_millis()).unwrap_or(u64::MAX);
            bus.stats.lag_ms.store(lag, Ordering::Relaxed);
        }
        // Prune a stream once it has grown by a tenth of the retention (or on
        // a flush), so the bound holds without a DELETE per batch.
        let due: Vec<String> = since_prune
            .iter()
            .filter(|(_, n)| **n >= prune_every || !flushes.is_empty())
            .map(|(s, _)| s.clone())
            .collect();
        if !due.is_empty() {
            for s in &due {
                since_prune.remove(s);
            }
            if let Err(e) = store
                .prune_events(due, crate::engine::TOOL_INVOCATION, history_retention)
                .await
            {
                tracing::warn!(error = %e, "could not prune tool invocation history");
            }
        }
        if audit_since_prune >= audit_prune_every || (audit_since_prune > 0 && !flushes.is_empty())
        {
            audit_since_prune = 0;
            let mut records = Vec::new();
            for t in AUDIT_EVENT_TYPES {
                match store
                    .prune_events(vec![AUDIT_STREAM.to_owned()], t, settings.audit_retention)
                    .await
                {
                    // Retention is the only thing that removes audit records,
                    // and it says so in the trail itself.
                    Ok(deleted) if deleted > 0 && t != AUDIT_PRUNED => {
                        records.push(bus.record(
                            AUDIT_STREAM.to_owned(),
                            AUDIT_PRUNED,
                            serde_json::json!({
                                "event_type": t,
                                "deleted": deleted,
                                "retention": settings.audit_retention,
                            }),
                            false,
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not prune the audit stream"),
                }
            }
            if !records.is_empty()
                && let Err(e) = store.append_events(records).await
            {
                tracing::error!(error = %e, "could not record the audit retention");
            }
        }
        let due: Vec<String> = since_snapshot
            .iter()
            .filter(|(_, n)| **n >= settings.snapshot_every)
            .map(|(s, _)| s.clone())
            .collect();
        for s in due {
            since_snapshot.remove(&s);
            if let Err(e) = store.take_snapshot(&s).await {
                tracing::warn!(error = %e, stream = %s, "could not snapshot event stream");
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}
