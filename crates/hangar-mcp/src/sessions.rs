//! The 2025-era MCP sessions: who opened each, when it was last used, and
//! (once the client sent `notifications/initialized`) the link Hangar's own
//! `/mcp` front needs to serve the session's calls in the request's task.
//!
//! A session is a small entry here (the principal, a last-use time, the
//! session's peer handle). What makes a 2025 session a session (the client's
//! `initialize` parameters) lives with the peer; nothing in this table is
//! needed to serve a 2026-07-28 request, which carries everything itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use rmcp::RoleServer;
use rmcp::model::{ClientCapabilities, RequestId};
use rmcp::service::Peer;
use tokio_util::sync::CancellationToken;

/// What serving a session's request needs besides the request itself.
#[derive(Debug, Clone)]
pub struct SessionLink {
    /// The session's peer: its client capabilities, and where a provider's
    /// server-to-client requests (sampling, elicitation, roots) go.
    pub peer: Peer<RoleServer>,
    /// The session's number (equal for requests of one session; decides
    /// whether a provider's request to "the client" is unambiguous).
    pub client_key: u64,
}

impl SessionLink {
    /// The capabilities the client declared in `initialize`.
    pub fn capabilities(&self) -> Option<ClientCapabilities> {
        self.peer.peer_info().map(|i| i.capabilities.clone())
    }
}

/// One session.
#[derive(Debug)]
pub struct SessionEntry {
    principal: String,
    last_used_ms: AtomicU64,
    link: OnceLock<SessionLink>,
    /// The client sent `notifications/initialized` (the link follows as soon
    /// as rmcp's session worker has handled it).
    initialized: std::sync::atomic::AtomicBool,
    linked: tokio::sync::Notify,
    /// Calls of this session the front is serving, by JSON-RPC id, so the
    /// client's `notifications/cancelled` reaches them.
    inflight: Mutex<HashMap<RequestId, CancellationToken>>,
}

/// Keeps a call in its session's in-flight map until dropped.
#[derive(Debug)]
pub struct InflightCall {
    entry: Arc<SessionEntry>,
    id: RequestId,
}

impl Drop for InflightCall {
    fn drop(&mut self) {
        self.entry.inflight().remove(&self.id);
    }
}

impl SessionEntry {
    /// The principal that opened the session: nobody else may use it.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    fn inflight(&self) -> MutexGuard<'_, HashMap<RequestId, CancellationToken>> {
        self.inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a call in flight (until the returned guard drops); `ct` is
    /// cancelled when the client cancels request `id`.
    pub fn track_inflight(self: &Arc<Self>, id: RequestId, ct: CancellationToken) -> InflightCall {
        self.inflight().insert(id.clone(), ct);
        InflightCall {
            entry: self.clone(),
            id,
        }
    }

    /// The cancellation token of call `id`, if it is in flight.
    pub fn take_inflight(&self, id: &RequestId) -> Option<CancellationToken> {
        self.inflight().remove(id)
    }

    /// Records that the client sent `notifications/initialized`.
    pub fn mark_initialized(&self) {
        self.initialized.store(true, Ordering::Release);
    }

    /// The session's link; when the client has sent `notifications/initialized`
    /// but rmcp has not handled it yet, waits for it up to `within`.
    pub async fn linked(&self, within: Duration) -> Option<&SessionLink> {
        if self.link.get().is_none() && self.initialized.load(Ordering::Acquire) {
            let notified = self.linked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.link.get().is_none() {
                let _ = tokio::time::timeout(within, notified).await;
            }
        }
        self.link()
    }

    /// The session's link, once it is initialized and still open.
    pub fn link(&self) -> Option<&SessionLink> {
        self.link.get().filter(|l| !l.peer.is_transport_closed())
    }
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
        // A poisoned lock only means a panic elsewhere; the map stays valid.
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

    /// Records a session `principal` just opened.
    pub fn open(&self, id: &str, principal: &str) {
        let entry = SessionEntry {
            principal: principal.to_owned(),
            last_used_ms: AtomicU64::new(self.now_ms()),
            link: OnceLock::new(),
            initialized: std::sync::atomic::AtomicBool::new(false),
            linked: tokio::sync::Notify::new(),
            inflight: Mutex::default(),
        };
        self.write().insert(Arc::from(id), Arc::new(entry));
    }

    /// The session `id`, marked as used now.
    pub fn get(&self, id: &str) -> Option<Arc<SessionEntry>> {
        let entry = self.read().get(id).cloned()?;
        entry.last_used_ms.store(self.now_ms(), Ordering::Relaxed);
        Some(entry)
    }

    /// Attaches the link of an initialized session (ignored for a session
    /// this table does not know).
    pub fn link(&self, id: &str, link: SessionLink) {
        if let Some(entry) = self.read().get(id) {
            let _ = entry.link.set(link);
            entry.linked.notify_waiters();
        }
    }

    /// Forgets a session; true if it was known.
    pub fn remove(&self, id: &str) -> bool {
        self.write().remove(id).is_some()
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

    /// Sessions unused for `timeout` or more, and those whose connection
    /// ended (their peer is closed).
    pub fn stale(&self, timeout: Duration) -> Vec<Arc<str>> {
        let now = self.now_ms();
        let limit = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.read()
            .iter()
            .filter(|(_, e)| {
                now.saturating_sub(e.last_used_ms.load(Ordering::Relaxed)) >= limit
                    || e.link.get().is_some_and(|l| l.peer.is_transport_closed())
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_per_principal_and_forgotten() {
        let t = SessionTable::default();
        t.open("a", "alice");
        t.open("b", "alice");
        t.open("c", "bob");
        assert_eq!(t.len(), 3);
        assert_eq!(t.count_of("alice"), 2);
        assert_eq!(
            t.get("a").map(|e| e.principal().to_owned()).as_deref(),
            Some("alice")
        );
        assert!(t.get("a").is_some_and(|e| e.link().is_none()));
        assert!(t.remove("a"));
        assert!(!t.remove("a"));
        assert!(t.get("a").is_none());
        assert_eq!(t.count_of("alice"), 1);
    }

    #[test]
    fn only_unused_sessions_are_stale() {
        let t = SessionTable::default();
        t.open("a", "alice");
        assert!(t.stale(Duration::from_secs(60)).is_empty());
        assert_eq!(t.stale(Duration::ZERO), vec![Arc::<str>::from("a")]);
    }
}
