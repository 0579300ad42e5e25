//! The 2025-era MCP sessions Hangar's own `/mcp` front serves.
//!
//! A session is what its client said in `initialize` (protocol version and
//! capabilities) plus the principal that opened it, a last-use time, the
//! calls in flight (so `notifications/cancelled` reaches them) and the
//! requests Hangar sent the client and awaits answers to. It is a small entry
//! in one map: no task, no channel, until a request needs one. Nothing in
//! this table is needed to serve a 2026-07-28 request, which carries
//! everything itself.

// Logging is deprecated by SEP-2577, but 2025-era clients still set levels.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::model::{ClientCapabilities, LoggingLevel, ProtocolVersion, RequestId};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The answer a client POSTs to a request Hangar sent it.
pub type ClientAnswer = Result<serde_json::Value, ErrorData>;

/// One session.
#[derive(Debug)]
pub struct SessionEntry {
    principal: String,
    /// The negotiated protocol version.
    pub protocol_version: ProtocolVersion,
    /// What the client declared in `initialize`.
    pub capabilities: ClientCapabilities,
    /// This session's number (equal for requests of one session; decides
    /// whether a provider's request to "the client" is unambiguous).
    pub client_key: u64,
    last_used_ms: AtomicU64,
    /// Cancelled when the session ends (its GET stream closes).
    ended: CancellationToken,
    /// Calls of this session being served, by JSON-RPC id.
    inflight: Mutex<HashMap<RequestId, CancellationToken>>,
    /// Requests sent to the client, awaiting its answer, by id.
    asked: Mutex<HashMap<RequestId, oneshot::Sender<ClientAnswer>>>,
    next_ask: AtomicU64,
    /// The least severe log level the client wants (`logging/setLevel`), as
    /// [`level_rank`]; [`NO_LEVEL`] until it sets one (then everything goes).
    log_level: AtomicU8,
    /// Resource URIs the client subscribed to (`resources/subscribe`).
    subscriptions: Mutex<std::collections::BTreeSet<String>>,
    /// Who the client said it is in `initialize`.
    pub client_info: Option<rmcp::model::Implementation>,
    /// When it opened (RFC 3339).
    pub started: String,
    /// Its last calls, newest last (at most [`RECENT_CALLS`]).
    recent: Mutex<std::collections::VecDeque<RecentCall>>,
}

/// Calls a session remembers for `GET /api/sessions/{id}`.
pub const RECENT_CALLS: usize = 20;

/// One finished call of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentCall {
    /// The client's JSON-RPC id of it.
    pub request_id: String,
    /// The tool as the client named it.
    pub tool: String,
    /// When it finished (formatted only when someone reads it).
    pub finished: std::time::SystemTime,
    /// How long it took.
    pub duration_ms: u64,
    /// `success`, `tool_error`, `error` or `cancelled`.
    pub outcome: &'static str,
}

/// No `logging/setLevel` yet.
const NO_LEVEL: u8 = 0;

/// The severity rank of a log level, 1 (debug) to 8 (emergency).
pub fn level_rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 1,
        LoggingLevel::Info => 2,
        LoggingLevel::Notice => 3,
        LoggingLevel::Warning => 4,
        LoggingLevel::Error => 5,
        LoggingLevel::Critical => 6,
        LoggingLevel::Alert => 7,
        LoggingLevel::Emergency => 8,
    }
}

/// Keeps a call in its session's in-flight map until dropped.
#[derive(Debug)]
pub struct InflightCall {
    entry: Arc<SessionEntry>,
    id: RequestId,
}

impl Drop for InflightCall {
    fn drop(&mut self) {
        lock(&self.entry.inflight).remove(&self.id);
    }
}

/// Keeps a request to the client pending until dropped.
#[derive(Debug)]
pub struct PendingAsk {
    entry: Arc<SessionEntry>,
    /// The request's id (what the client answers to).
    pub id: RequestId,
}

impl Drop for PendingAsk {
    fn drop(&mut self) {
        lock(&self.entry.asked).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the map stays valid.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SessionEntry {
    /// An entry in no table, holding what one stream subscribed to (a
    /// 2026-07-28 `subscriptions/listen`).
    pub fn detached() -> Self {
        Self {
            principal: String::new(),
            protocol_version: ProtocolVersion::V_2026_07_28,
            capabilities: ClientCapabilities::default(),
            client_key: 0,
            last_used_ms: AtomicU64::new(0),
            ended: CancellationToken::new(),
            inflight: Mutex::default(),
            asked: Mutex::default(),
            next_ask: AtomicU64::new(1),
            log_level: AtomicU8::new(NO_LEVEL),
            subscriptions: Mutex::default(),
            client_info: None,
            started: String::new(),
            recent: Mutex::default(),
        }
    }

    /// The principal that opened the session: nobody else may use it.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// Cancelled when the session ends.
    pub fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    /// Records a subscription to `uri`; false if it was there already.
    pub fn subscribe(&self, uri: &str) -> bool {
        lock(&self.subscriptions).insert(uri.to_owned())
    }

    /// Drops the subscription to `uri`; false if there was none.
    pub fn unsubscribe(&self, uri: &str) -> bool {
        lock(&self.subscriptions).remove(uri)
    }

    /// Records a finished call (the oldest is forgotten past [`RECENT_CALLS`]).
    pub fn record_call(&self, call: RecentCall) {
        let mut recent = lock(&self.recent);
        if recent.len() >= RECENT_CALLS {
            recent.pop_front();
        }
        recent.push_back(call);
    }

    /// Its last calls, oldest first.
    pub fn recent_calls(&self) -> Vec<RecentCall> {
        lock(&self.recent).iter().cloned().collect()
    }

    /// The JSON-RPC ids of its calls in flight.
    pub fn inflight_ids(&self) -> Vec<RequestId> {
        lock(&self.inflight).keys().cloned().collect()
    }

    /// Cancels its call `id`, or every call in flight: the ids cancelled.
    pub fn abort(&self, id: Option<&RequestId>) -> Vec<RequestId> {
        let mut inflight = lock(&self.inflight);
        let ids: Vec<RequestId> = match id {
            Some(id) => inflight
                .contains_key(id)
                .then(|| id.clone())
                .into_iter()
                .collect(),
            None => inflight.keys().cloned().collect(),
        };
        for id in &ids {
            if let Some(ct) = inflight.remove(id) {
                ct.cancel();
            }
        }
        ids
    }

    /// How many resources the client subscribed to.
    pub fn subscription_count(&self) -> usize {
        lock(&self.subscriptions).len()
    }

    /// Whether the client subscribed to `uri`.
    pub fn is_subscribed(&self, uri: &str) -> bool {
        lock(&self.subscriptions).contains(uri)
    }

    /// Every subscription, removed (the session ends).
    pub fn take_subscriptions(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.subscriptions))
            .into_iter()
            .collect()
    }

    /// `logging/setLevel`: log messages below `level` are not sent to it.
    pub fn set_log_level(&self, level: LoggingLevel) {
        self.log_level.store(level_rank(level), Ordering::Relaxed);
    }

    /// Whether a log message at `level` goes to this client.
    pub fn wants_log(&self, level: LoggingLevel) -> bool {
        let min = self.log_level.load(Ordering::Relaxed);
        min == NO_LEVEL || level_rank(level) >= min
    }

    /// Records a call in flight (until the returned guard drops); `ct` is
    /// cancelled when the client cancels request `id`.
    pub fn track_inflight(self: &Arc<Self>, id: RequestId, ct: CancellationToken) -> InflightCall {
        lock(&self.inflight).insert(id.clone(), ct);
        InflightCall {
            entry: self.clone(),
            id,
        }
    }

    /// The cancellation token of call `id`, if it is in flight.
    pub fn take_inflight(&self, id: &RequestId) -> Option<CancellationToken> {
        lock(&self.inflight).remove(id)
    }

    /// A new request to the client: its id, the guard keeping it pending, and
    /// where its answer arrives.
    pub fn ask(self: &Arc<Self>) -> (PendingAsk, oneshot::Receiver<ClientAnswer>) {
        let n = self.next_ask.fetch_add(1, Ordering::Relaxed);
        let id = RequestId::String(format!("hangar-{n}").into());
        let (tx, rx) = oneshot::channel();
        lock(&self.asked).insert(id.clone(), tx);
        (
            PendingAsk {
                entry: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Delivers the client's answer to request `id`; false if none is pending.
    pub fn answer(&self, id: &RequestId, answer: ClientAnswer) -> bool {
        match lock(&self.asked).remove(id) {
            Some(tx) => {
                let _ = tx.send(answer);
                true
            }
            None => false,
        }
    }
}

/// What a client said in `initialize`.
#[derive(Debug, Clone)]
pub struct SessionInit {
    /// The negotiated protocol version.
    pub protocol_version: ProtocolVersion,
    /// The client's capabilities.
    pub capabilities: ClientCapabilities,
    /// The session's number.
    pub client_key: u64,
    /// Who the client said it is.
    pub client_info: Option<rmcp::model::Implementation>,
    /// When it opened (RFC 3339).
    pub started: String,
}

/// Every open 2025-era session of this process.
#[derive(Debug)]
pub struct SessionTable {
    entries: RwLock<HashMap<Arc<str>, Arc<SessionEntry>>>,
    origin: Instant,
}

impl Default for SessionTable {
    fn default() -> Self {
        Self {
            entries: RwLock::default(),
            origin: Instant::now(),
        }
    }
}

impl SessionTable {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<Arc<str>, Arc<SessionEntry>>> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<SessionEntry>>> {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a session `principal` just opened with `init`.
    pub fn open(&self, id: &str, principal: &str, init: SessionInit) {
        let entry = SessionEntry {
            principal: principal.to_owned(),
            protocol_version: init.protocol_version,
            capabilities: init.capabilities,
            client_key: init.client_key,
            last_used_ms: AtomicU64::new(self.now_ms()),
            ended: CancellationToken::new(),
            inflight: Mutex::default(),
            asked: Mutex::default(),
            next_ask: AtomicU64::new(1),
            log_level: AtomicU8::new(NO_LEVEL),
            subscriptions: Mutex::default(),
            client_info: init.client_info,
            started: init.started,
            recent: Mutex::default(),
        };
        self.write().insert(Arc::from(id), Arc::new(entry));
    }

    /// The session `id`, marked as used now.
    pub fn get(&self, id: &str) -> Option<Arc<SessionEntry>> {
        let entry = self.read().get(id).cloned()?;
        entry.last_used_ms.store(self.now_ms(), Ordering::Relaxed);
        Some(entry)
    }

    /// Ends a session; the entry if it was open.
    pub fn remove(&self, id: &str) -> Option<Arc<SessionEntry>> {
        let removed = self.write().remove(id);
        if let Some(entry) = &removed {
            entry.ended.cancel();
        }
        removed
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// How many sessions `principal` has open.
    pub fn count_of(&self, principal: &str) -> usize {
        self.read()
            .values()
            .filter(|e| e.principal == principal)
            .count()
    }

    /// Sessions unused for `timeout` or more.
    pub fn stale(&self, timeout: Duration) -> Vec<Arc<str>> {
        let now = self.now_ms();
        self.read()
            .iter()
            .filter(|(_, e)| Self::idle(now, e) >= timeout)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every open session with its id, and how long since it was last used.
    pub fn list(&self) -> Vec<(Arc<str>, Arc<SessionEntry>, Duration)> {
        let now = self.now_ms();
        self.read()
            .iter()
            .map(|(id, e)| (id.clone(), e.clone(), Self::idle(now, e)))
            .collect()
    }

    /// Session `id` and how long since it was last used, without marking it
    /// used (as [`Self::get`] does).
    pub fn peek(&self, id: &str) -> Option<(Arc<SessionEntry>, Duration)> {
        let now = self.now_ms();
        let entry = self.read().get(id).cloned()?;
        let idle = Self::idle(now, &entry);
        Some((entry, idle))
    }

    fn idle(now: u64, entry: &SessionEntry) -> Duration {
        Duration::from_millis(now.saturating_sub(entry.last_used_ms.load(Ordering::Relaxed)))
    }

    /// Ends every session (shutdown).
    pub fn clear(&self) {
        for (_, entry) in self.write().drain() {
            entry.ended.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() -> SessionInit {
        SessionInit {
            protocol_version: ProtocolVersion::V_2025_06_18,
            capabilities: ClientCapabilities::default(),
            client_key: 1,
            client_info: None,
            started: String::new(),
        }
    }

    #[test]
    fn sessions_are_counted_per_principal_and_forgotten() {
        let t = SessionTable::default();
        t.open("a", "alice", init());
        t.open("b", "alice", init());
        t.open("c", "bob", init());
        assert_eq!(t.len(), 3);
        assert_eq!(t.count_of("alice"), 2);
        let a = t.get("a").unwrap();
        assert_eq!(a.principal(), "alice");
        assert!(t.remove("a").is_some());
        assert!(a.ended().is_cancelled());
        assert!(t.remove("a").is_none());
        assert!(t.get("a").is_none());
        assert_eq!(t.count_of("alice"), 1);
    }

    #[test]
    fn only_unused_sessions_are_stale() {
        let t = SessionTable::default();
        t.open("a", "alice", init());
        assert!(t.stale(Duration::from_secs(60)).is_empty());
        assert_eq!(t.stale(Duration::ZERO), vec![Arc::<str>::from("a")]);
    }

    #[tokio::test]
    async fn an_answer_reaches_the_request_it_is_for_once() {
        let t = SessionTable::default();
        t.open("a", "alice", init());
        let e = t.get("a").unwrap();
        let (pending, rx) = e.ask();
        assert!(e.answer(&pending.id, Ok(serde_json::json!({"ok": true}))));
        assert!(!e.answer(&pending.id, Ok(serde_json::json!({}))));
        assert_eq!(rx.await.unwrap().unwrap()["ok"], true);
        // A dropped request is no longer pending.
        let (pending, _rx) = e.ask();
        let id = pending.id.clone();
        drop(pending);
        assert!(!e.answer(&id, Ok(serde_json::json!({}))));
    }
}
