//! Change notifications: resource subscriptions and list changes.
//!
//! * 2025 session era: `resources/subscribe` records the session's peer for a
//!   URI (`resources/unsubscribe` removes it); a resource update then sends
//!   `notifications/resources/updated` to every subscribed session.
//! * 2026-07-28 stateless era: `subscriptions/listen` opens a stream
//!   ([`Hub::listen`]) that receives every published change its accepted
//!   filter allows (list changes, updates of subscribed URIs), tagged with the
//!   subscription id by rmcp's `SubscriptionSink`.
//!
//! Changes are published by the fixture's trigger tools
//! (`test_trigger_tool_change`, `test_trigger_prompt_change`,
//! `test_trigger_resource_update`).

use std::sync::{Mutex, PoisonError};

use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::{Peer, SubscriptionContext, SubscriptionSendError};
use rmcp::{ErrorData, RoleServer};
use tokio::sync::broadcast;

/// Buffered changes per listener before it lags (and skips some).
const CHANNEL_CAPACITY: usize = 64;

/// A change worth notifying about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The tool list changed.
    Tools,
    /// The prompt list changed.
    Prompts,
    /// The resource with this URI changed.
    ResourceUpdated(String),
}

/// A session-era `resources/subscribe`.
struct Subscriber {
    session: u64,
    uri: String,
    peer: Peer<RoleServer>,
}

/// Shared by every session of the process.
pub struct Hub {
    changes: broadcast::Sender<Change>,
    subscribers: Mutex<Vec<Subscriber>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            changes: broadcast::channel(CHANNEL_CAPACITY).0,
            subscribers: Mutex::new(Vec::new()),
        }
    }
}

impl Hub {
    /// Record that `session` (reached through `peer`) watches `uri`.
    pub fn subscribe(&self, session: u64, uri: &str, peer: Peer<RoleServer>) {
        let mut subscribers = self.lock();
        if !subscribers
            .iter()
            .any(|s| s.session == session && s.uri == uri)
        {
            subscribers.push(Subscriber {
                session,
                uri: uri.to_owned(),
                peer,
            });
        }
    }

    /// Forget that `session` watches `uri`.
    pub fn unsubscribe(&self, session: u64, uri: &str) {
        self.lock()
            .retain(|s| !(s.session == session && s.uri == uri));
    }

    /// How many sessions watch `uri`.
    #[cfg(test)]
    fn subscriber_count(&self, uri: &str) -> usize {
        self.lock().iter().filter(|s| s.uri == uri).count()
    }

    /// Announce `change` to open listen streams and, for a resource update,
    /// to the subscribed sessions. Returns how many session-era subscribers
    /// were notified.
    pub async fn publish(&self, change: Change) -> usize {
        // No receiver (no open listen stream) is not an error.
        let _ = self.changes.send(change.clone());
        let Change::ResourceUpdated(uri) = change else {
            return 0;
        };
        let targets: Vec<(u64, Peer<RoleServer>)> = self
            .lock()
            .iter()
            .filter(|s| s.uri == uri)
            .map(|s| (s.session, s.peer.clone()))
            .collect();
        let mut notified = 0;
        for (session, peer) in targets {
            let param = ResourceUpdatedNotificationParam::new(uri.clone());
            match peer.notify_resource_updated(param).await {
                Ok(()) => notified += 1,
                Err(error) => {
                    tracing::info!(%error, session, "dropping subscriber that went away");
                    self.lock().retain(|s| s.session != session);
                }
            }
        }
        notified
    }

    /// Serve one `subscriptions/listen` stream until the client cancels it.
    pub async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.changes.subscribe();
        let sink = context.sink().clone();
        loop {
            let change = tokio::select! {
                () = context.cancelled() => return Ok(()),
                change = changes.recv() => change,
            };
            let sent = match change {
                Ok(Change::Tools) => sink.notify_tool_list_changed().await,
                Ok(Change::Prompts) => sink.notify_prompt_list_changed().await,
                Ok(Change::ResourceUpdated(uri)) => sink.notify_resource_updated(uri).await,
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "listen stream lagged behind changes");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            };
            match sent {
                // Filtered out: the client did not ask for this kind.
                Ok(()) | Err(SubscriptionSendError::NotificationNotAccepted(_)) => {}
                Err(SubscriptionSendError::SubscriptionClosed) => return Ok(()),
                Err(error) => {
                    tracing::info!(%error, "listen stream closed");
                    return Ok(());
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publishing_without_listeners_is_fine() {
        let hub = Hub::default();
        assert_eq!(hub.publish(Change::Tools).await, 0);
        assert_eq!(
            hub.publish(Change::ResourceUpdated("test://x".into()))
                .await,
            0
        );
        assert_eq!(hub.subscriber_count("test://x"), 0);
        hub.unsubscribe(1, "test://x");
    }
}
