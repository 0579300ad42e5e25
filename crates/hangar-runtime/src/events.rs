//! Domain events: provider state changes and circuit breaker changes, each
//! on its stream (`provider:<id>`, `group:<id>`) with a per-stream version.
//!
//! Emitting never blocks and never touches the database: events go through a
//! channel to one writer task that appends them in batches (one transaction
//! per batch) to the store's append-only `events` table. Live subscribers get
//! them from a broadcast channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    /// `provider:<id>` or `group:<id>`.
    pub stream_id: String,
    /// Position within the stream, from 1.
    pub version: u64,
    /// e.g. `ProviderStateChanged`, `CircuitBreakerStateChanged`.
    pub event_type: &'static str,
    /// Event data.
    pub payload: Value,
    /// RFC 3339.
    pub time: String,
}

enum Msg {
    Event(DomainEvent),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Where domain events go; cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    versions: Arc<Mutex<HashMap<String, u64>>>,
    writer: Option<mpsc::UnboundedSender<Msg>>,
    live: broadcast::Sender<DomainEvent>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").finish_non_exhaustive()
    }
}

impl EventBus {
    /// A bus that persists to `store` (if any), bounded by `settings`.
    /// Stream versions continue from what the store holds. Must be called
    /// inside a tokio runtime.
    pub async fn new(store: Option<Store>, settings: EventStoreSettings) -> Self {
        let live = Self::in_memory().live;
        let mut versions = HashMap::new();
        let writer = match store {
            Some(store) => {
                match store.stream_versions().await {
                    Ok(v) => versions = v,
                    Err(e) => tracing::warn!(error = %e, "could not read event stream versions"),
                }
                let (tx, rx) = mpsc::unbounded_channel();
                Some((tx, rx, store))
            }
            None => None,
        };
        let versions = Arc::new(Mutex::new(versions));
        let writer = writer.map(|(tx, rx, store)| {
            let own = Self {
                versions: versions.clone(),
                writer: None,
                live: live.clone(),
            };
            tokio::spawn(write_batches(store, rx, settings, own));
            tx
        });
        Self {
            versions,
            writer,
            live,
        }
    }

    /// Numbers and broadcasts an event (without queueing it for the writer).
    fn next(&self, stream_id: String, event_type: &'static str, payload: Value) -> DomainEvent {
        let version = {
            let mut v = crate::lock(&self.versions);
            let n = v.entry(stream_id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let event = DomainEvent {
            stream_id,
            version,
            event_type,
            payload,
            time: crate::now_rfc3339(),
        };
        let _ = self.live.send(event.clone());
        event
    }

    /// A bus that keeps nothing (live subscribers only).
    pub fn in_memory() -> Self {
        Self {
            versions: Arc::new(Mutex::new(HashMap::new())),
            writer: None,
            live: broadcast::channel(1024).0,
        }
    }

    /// Records an event on `stream_id` (never blocks).
    pub fn emit(&self, stream_id: String, event_type: &'static str, payload: Value) {
        let event = self.next(stream_id, event_type, payload);
        if let Some(w) = &self.writer
            && w.send(Msg::Event(event)).is_err()
        {
            tracing::warn!("event writer stopped; event not stored");
        }
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
        for m in batch.drain(..) {
            match m {
                Msg::Event(e) => events.push(e),
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
        if n > 0
            && let Err(e) = store.append_events(events).await
        {
            tracing::error!(error = %e, events = n, "could not store domain events");
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
                        records.push(bus.next(
                            AUDIT_STREAM.to_owned(),
                            AUDIT_PRUNED,
                            serde_json::json!({
                                "event_type": t,
                                "deleted": deleted,
                                "retention": settings.audit_retention,
                            }),
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
