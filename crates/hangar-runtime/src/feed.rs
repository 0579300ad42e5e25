//! Event feeds: what one SSE or WebSocket consumer receives. A feed replays
//! the stored events after a position (a reconnecting client's
//! `Last-Event-ID`), then follows the live tail; when the consumer is so
//! slow that the live broadcast overtook it, the feed catches up from the
//! store instead of losing events, and says it lagged only when nothing
//! stored can fill the gap. Each feed is a task writing into a small bounded
//! channel: a consumer that stops reading holds one broadcast cursor and a
//! few queued events, never more, and never slows an emitter.

use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use crate::events::{DomainEvent, EventBus};

/// Events read from the store per query while replaying.
const REPLAY_PAGE: u32 = 500;

/// Which events a consumer gets.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events about this provider (its stream, or a payload naming it
    /// as `provider_id` or `provider`).
    pub provider_id: Option<String>,
    /// Only these event types (empty: all).
    pub event_types: Vec<String>,
    /// Streams this consumer may not see (e.g. `audit` without `audit:read`).
    pub hidden_streams: Vec<String>,
}

impl EventFilter {
    /// Whether `e` goes to the consumer.
    pub fn matches(&self, e: &DomainEvent) -> bool {
        if self.hidden_streams.contains(&e.stream_id) {
            return false;
        }
        if !self.event_types.is_empty() && !self.event_types.iter().any(|t| *t == e.event_type) {
            return false;
        }
        match &self.provider_id {
            None => true,
            Some(id) => {
                e.stream_id.strip_prefix("provider:") == Some(id.as_str())
                    || ["provider_id", "provider"]
                        .iter()
                        .any(|k| e.payload.get(k).and_then(Value::as_str) == Some(id.as_str()))
            }
        }
    }
}

/// What a feed yields.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedItem {
    /// An event that matched the filter.
    Event(DomainEvent),
    /// `missed` events went by that the feed could not deliver (no store to
    /// catch up from).
    Lagged {
        /// How many.
        missed: u64,
    },
}

impl EventBus {
    /// A feed of the events matching `filter`: if `after` is given, the
    /// stored events after that position first, then live ones. The channel
    /// holds at most `buffer` items; the feed ends when the receiver is
    /// dropped.
    pub fn feed(
        &self,
        filter: EventFilter,
        after: Option<u64>,
        buffer: usize,
    ) -> mpsc::Receiver<FeedItem> {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let (live, now) = self.subscribe_at();
        let bus = self.clone();
        tokio::spawn(async move {
            let run = Feed {
                bus,
                filter,
                tx,
                // A position from the future (another database, a
                // hand-written id) would mute the feed until the store
                // caught up with it: it means "from now".
                last: after.map_or(now, |a| a.min(now)),
            };
            run.run(live, after.is_some()).await;
        });
        rx
    }
}

struct Feed {
    bus: EventBus,
    filter: EventFilter,
    tx: mpsc::Sender<FeedItem>,
    /// The last position delivered or passed over.
    last: u64,
}

/// The consumer went away.
struct Gone;

impl Feed {
    async fn run(mut self, mut live: broadcast::Receiver<DomainEvent>, replay: bool) {
        if replay && self.replay().await.is_err() {
            return;
        }
        loop {
            let sent = tokio::select! {
                r = live.recv() => match r {
                    Ok(e) => self.live_event(e).await,
                    Err(broadcast::error::RecvError::Lagged(missed)) => self.lagged(missed).await,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = self.tx.closed() => return,
            };
            if sent.is_err() {
                return;
            }
        }
    }

    async fn live_event(&mut self, e: DomainEvent) -> Result<(), Gone> {
        // Replayed already (the store and the live tail overlap).
        if e.position <= self.last {
            return Ok(());
        }
        self.last = e.position;
        self.send(e).await
    }

    async fn lagged(&mut self, missed: u64) -> Result<(), Gone> {
        if self.bus.store().is_some() {
            tracing::debug!(
                missed,
                from = self.last,
                "event consumer lagged; catching up from the store"
            );
            return self.replay().await;
        }
        self.tx
            .send(FeedItem::Lagged { missed })
            .await
            .map_err(|_| Gone)
    }

    /// Sends the stored events after `self.last`.
    async fn replay(&mut self) -> Result<(), Gone> {
        let Some(store) = self.bus.store().cloned() else {
            return Ok(());
        };
        self.bus.flush().await;
        loop {
            let page = match store.events_after(self.last, REPLAY_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "could not replay stored events");
                    return Ok(());
                }
            };
            let full = page.len() == REPLAY_PAGE as usize;
            for e in page {
                self.last = self.last.max(e.position);
                self.send(e).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn send(&self, e: DomainEvent) -> Result<(), Gone> {
        if !self.filter.matches(&e) {
            return Ok(());
        }
        self.tx.send(FeedItem::Event(e)).await.map_err(|_| Gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn next(rx: &mut mpsc::Receiver<FeedItem>) -> Option<FeedItem> {
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn a_position_from_the_future_means_from_now() {
        let bus = EventBus::in_memory();
        let mut rx = bus.feed(EventFilter::default(), Some(1_000_000), 8);
        bus.emit(
            "provider:p".into(),
            "ProviderStarted",
            serde_json::json!({}),
        );
        match next(&mut rx).await {
            Some(FeedItem::Event(e)) => assert_eq!(e.event_type, "ProviderStarted"),
            other => panic!("expected the live event, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn filters_pick_provider_and_type_and_hide_streams() {
        let bus = EventBus::in_memory();
        let filter = EventFilter {
            provider_id: Some("p".into()),
            event_types: vec!["ToolInvoked".into()],
            hidden_streams: vec!["audit".into()],
        };
        let mut rx = bus.feed(filter, None, 8);
        bus.emit("provider:q".into(), "ToolInvoked", serde_json::json!({}));
        bus.emit(
            "provider:p".into(),
            "ProviderStarted",
            serde_json::json!({}),
        );
        bus.emit(
            "audit".into(),
            "ToolInvoked",
            serde_json::json!({"provider_id": "p"}),
        );
        bus.emit(
            "group:g".into(),
            "ToolInvoked",
            serde_json::json!({"provider_id": "p", "n": 1}),
        );
        match next(&mut rx).await {
            Some(FeedItem::Event(e)) => {
                assert_eq!(
                    (e.stream_id.as_str(), e.payload["n"].as_u64()),
                    ("group:g", Some(1))
                );
            }
            other => panic!("expected the one matching event, got {other:?}"),
        }
    }
}
