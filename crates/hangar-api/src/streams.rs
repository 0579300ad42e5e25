//! Live streams: domain events over SSE (`GET /api/events`) and WebSocket
//! (`/api/ws/events`, `/api/ws/state`), a provider's stderr over WebSocket
//! (`/api/ws/providers/{provider_id}/logs`).
//!
//! Each stream is fed by a bounded channel ([`hangar_runtime::feed`]): a
//! consumer that stops reading holds a few queued items and a cursor in the
//! shared broadcast ring, and the connection's write timeout closes it; it
//! never slows the call path. Every event carries its store position as
//! the SSE `id`, so a client reconnecting with `Last-Event-ID` gets what it
//! missed from the store, then the live tail.
//!
//! A stream checks every few seconds that its key still works and still
//! holds the permission, and ends when it doesn't (revoking a key ends its
//! streams). Events of the `audit` stream go only to keys with
//! `audit:read`, those of `approvals` only to keys with `approvals:read`.
//!
//! Browsers can't set headers on a WebSocket: they pass the key as a
//! subprotocol, `new WebSocket(url, ["hangar.v1", "bearer." + key])`; the
//! server answers with `hangar.v1` (never echoing the key).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, extract::ws::rejection::WebSocketUpgradeRejection};
use futures::Stream;
use hangar_core::{Grants, Permission};
use hangar_runtime::{EventFilter, FeedItem};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};

/// How often a live stream checks that its key and permission still hold.
const RECHECK: Duration = Duration::from_secs(5);
/// Items queued for one consumer.
const FEED_BUFFER: usize = 64;
/// The subprotocol a WebSocket client offers (with `bearer.<key>`).
pub const WS_PROTOCOL: &str = "hangar.v1";
/// Longest accepted list of event types in `event_type`.
const MAX_TYPES: usize = 32;

/// `GET /api/events` and `/api/ws/events` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events about this provider (its own stream, or records naming it).
    pub provider_id: Option<String>,
    /// Only these event types, comma-separated (e.g.
    /// `ProviderStateChanged,AlertRaised`).
    pub event_type: Option<String>,
    /// Resume after this position (what `Last-Event-ID` says; the header
    /// wins when both are given).
    #[param(value_type = Option<u64>)]
    pub last_event_id: Option<String>,
}

/// Who is streaming, re-checked as the stream goes.
#[derive(Clone)]
struct Holder {
    ctx: ApiContext,
    principal: Principal,
    permission: Permission,
    /// When the key and permission are checked next: a deadline kept across
    /// items, so a busy stream is checked as often as an idle one.
    due: tokio::time::Instant,
}

impl Holder {
    fn new(ctx: ApiContext, principal: Principal, permission: Permission) -> Self {
        Self {
            ctx,
            principal,
            permission,
            due: tokio::time::Instant::now() + RECHECK,
        }
    }

    fn still_allowed(&self) -> bool {
        self.ctx.keys.still_valid(&self.principal.key_id)
            && self
                .ctx
                .access
                .grants(&self.principal.id)
                .allows(&self.permission)
    }
}

fn filter_for(grants: &Grants, q: &EventsQuery) -> Result<EventFilter, ApiError> {
    let event_types: Vec<String> = q
        .event_type
        .as_deref()
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if event_types.len() > MAX_TYPES {
        return Err(ApiError::validation(format!(
            "event_type: at most {MAX_TYPES} types"
        )));
    }
    let mut hidden = Vec::new();
    if !grants.allows(&Permission::AUDIT_READ) {
        hidden.push(hangar_runtime::events::AUDIT_STREAM.to_owned());
    }
    if !grants.allows(&Permission::APPROVALS_READ) {
        hidden.push(hangar_runtime::approvals::APPROVALS_STREAM.to_owned());
    }
    Ok(EventFilter {
        provider_id: q.provider_id.clone().filter(|p| !p.is_empty()),
        event_types,
        hidden_streams: hidden,
    })
}

fn resume_point(headers: &http::HeaderMap, q: &EventsQuery) -> Result<Option<u64>, ApiError> {
    let header = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    match header.or_else(|| q.last_event_id.clone()) {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => s.trim().parse::<u64>().map(Some).map_err(|_| {
            ApiError::validation(format!(
                "Last-Event-ID: must be an event position (a non-negative integer), got {s:?}"
            ))
        }),
    }
}

/// Items of `rx` until it ends or the holder loses its key or permission.
async fn next_item<T>(rx: &mut mpsc::Receiver<T>, holder: &mut Holder) -> Option<T> {
    loop {
        if tokio::time::Instant::now() >= holder.due {
            if !holder.still_allowed() {
                return None;
            }
            holder.due = tokio::time::Instant::now() + RECHECK;
        }
        tokio::select! {
            item = rx.recv() => return item,
            () = holder.ctx.shutdown.cancelled() => return None,
            () = tokio::time::sleep_until(holder.due) => {}
        }
    }
}

fn feed_stream(
    rx: mpsc::Receiver<FeedItem>,
    holder: Holder,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((rx, holder), |(mut rx, mut holder)| async move {
        let item = next_item(&mut rx, &mut holder).await?;
        let event = match item {
            FeedItem::Event(e) => Event::default()
                .id(e.position.to_string())
                .data(serde_json::to_string(&e).unwrap_or_default()),
            FeedItem::Lagged { missed } => Event::default()
                .event("lagged")
                .data(serde_json::json!({ "missed": missed }).to_string()),
        };
        Some((Ok(event), (rx, holder)))
    })
}

/// Domain events as they happen, as Server-Sent Events: each `data` is one
/// event (`position`, `stream_id`, `version`, `event_type`, `payload`,
/// `time`) and its `id` is the position. Reconnect with `Last-Event-ID` (or
/// `?last_event_id=`) to get what was missed, then the live tail. An event
/// named `lagged` (`{"missed": n}`) says events were skipped; with a store
/// the stream catches up instead. A comment is sent every 15 s.
#[utoipa::path(
    get,
    path = "/events",
    tag = "observability",
    operation_id = "stream_events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this position"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = String),
        (status = 422, description = "A bad `Last-Event-ID` or `event_type`", body = ErrorBody),
    ),
    security(("bearer" = ["events:read"]))
)]
pub async fn events_sse(
    State(ctx): State<ApiContext>,
    Extension(principal): Extension<Principal>,
    Extension(grants): Extension<Arc<Grants>>,
    headers: http::HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filter = filter_for(&grants, &q)?;
    let after = resume_point(&headers, &q)?;
    tracing::info!(principal = %principal.id, ?after, "event stream opened (SSE)");
    let rx = ctx.engine.events().feed(filter, after, FEED_BUFFER);
    let holder = Holder::new(ctx, principal, Permission::EVENTS_READ);
    Ok(Sse::new(feed_stream(rx, holder)).keep_alive(KeepAlive::default()))
}

fn upgrade(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, ApiError> {
    ws.map(|ws| ws.protocols([WS_PROTOCOL]))
        .map_err(|r| ApiError::new(r.status(), "WebSocketUpgradeError", r.body_text()))
}

/// Sends `first`, then each item of `rx` (as `frame` makes it), as text
/// frames, until the client closes, stops reading (the write timeout), the
/// holder loses its key, or `rx` ends.
async fn pump<T>(
    mut socket: WebSocket,
    first: Vec<String>,
    mut rx: mpsc::Receiver<T>,
    mut holder: Holder,
    frame: fn(T) -> String,
) {
    for text in first {
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            item = next_item(&mut rx, &mut holder) => match item {
                Some(item) => {
                    if socket.send(Message::Text(frame(item).into())).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            msg = socket.recv() => match msg {
                // Pings are answered by the socket itself; text from the
                // client means nothing here.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

fn feed_frame(item: FeedItem) -> String {
    match item {
        FeedItem::Event(e) => serde_json::to_string(&e).unwrap_or_default(),
        FeedItem::Lagged { missed } => {
            serde_json::json!({ "type": "lagged", "missed": missed }).to_string()
        }
    }
}

async fn ws_feed(
    ctx: ApiContext,
    principal: Principal,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: &http::HeaderMap,
    mut filter: EventFilter,
    q: &EventsQuery,
    only: Option<&str>,
) -> Result<Response, ApiError> {
    let ws = upgrade(ws)?;
    let after = resume_point(headers, q)?;
    if let Some(t) = only {
        filter.event_types = vec![t.to_owned()];
    }
    tracing::info!(principal = %principal.id, ?after, "event stream opened (WebSocket)");
    let rx = ctx.engine.events().feed(filter, after, FEED_BUFFER);
    let holder = Holder::new(ctx, principal, Permission::EVENTS_READ);
    Ok(ws
        .on_upgrade(move |socket| pump(socket, Vec::new(), rx, holder, feed_frame))
        .into_response())
}

/// Every domain event as a JSON text frame (the SSE `data`), with the same
/// filters and `last_event_id` resume. Browsers pass the key as the
/// subprotocol `bearer.<key>` next to `hangar.v1`.
#[utoipa::path(
    get,
    path = "/ws/events",
    tag = "observability",
    operation_id = "ws_events",
    params(EventsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake", body = ErrorBody),
        (status = 422, description = "A bad `last_event_id` or `event_type`", body = ErrorBody),
    ),
    security(("bearer" = ["events:read"]))
)]
pub async fn ws_events(
    State(ctx): State<ApiContext>,
    Extension(principal): Extension<Principal>,
    Extension(grants): Extension<Arc<Grants>>,
    headers: http::HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let filter = filter_for(&grants, &q)?;
    ws_feed(ctx, principal, ws, &headers, filter, &q, None).await
}

/// Provider state changes only (`ProviderStateChanged`), as JSON text frames.
#[utoipa::path(
    get,
    path = "/ws/state",
    tag = "observability",
    operation_id = "ws_state",
    params(EventsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake", body = ErrorBody),
        (status = 422, description = "A bad `last_event_id`", body = ErrorBody),
    ),
    security(("bearer" = ["events:read"]))
)]
pub async fn ws_state(
    State(ctx): State<ApiContext>,
    Extension(principal): Extension<Principal>,
    Extension(grants): Extension<Arc<Grants>>,
    headers: http::HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let filter = filter_for(&grants, &q)?;
    ws_feed(
        ctx,
        principal,
        ws,
        &headers,
        filter,
        &q,
        Some("ProviderStateChanged"),
    )
    .await
}

/// `/api/ws/providers/{provider_id}/logs` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogFollowQuery {
    /// Recent lines sent first (0 to 1000, default 100).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 1000, default = 100)]
    pub lines: Option<String>,
}

/// A provider's stderr lines, live: the last `lines` first, then each line
/// as it is read, one JSON text frame each (`timestamp`, `line`,
/// `provider_id`, `stream`). A frame `{"type":"lagged","missed":n}` says
/// lines were skipped because the client read too slowly.
#[utoipa::path(
    get,
    path = "/ws/providers/{provider_id}/logs",
    tag = "observability",
    operation_id = "ws_provider_logs",
    params(("provider_id" = String, Path, description = "Provider id"), LogFollowQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 422, description = "`lines` is not an integer from 0 to 1000", body = ErrorBody),
    ),
    security(("bearer" = ["providers:read"]))
)]
pub async fn ws_provider_logs(
    State(ctx): State<ApiContext>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LogFollowQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let lines = crate::rest::ranged("lines", q.lines.as_deref(), 100, 0..=1000)?;
    let provider = ctx.engine.provider(&id)?;
    let ws = upgrade(ws)?;
    let (recent, mut live) = provider.follow_logs(usize::try_from(lines).unwrap_or(1000));
    drop(provider);
    let first = recent
        .iter()
        .map(|l| serde_json::to_string(l).unwrap_or_default())
        .collect();
    tracing::info!(principal = %principal.id, provider = %id, "log stream opened");
    let holder = Holder::new(ctx, principal, Permission::PROVIDERS_READ);
    // Lines go through a small channel so the key checks of `next_item` apply.
    let (tx, rx) = mpsc::channel::<String>(FEED_BUFFER);
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                r = live.recv() => r,
                () = tx.closed() => return,
            };
            let frame = match received {
                Ok(line) => serde_json::to_string(&line).unwrap_or_default(),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    serde_json::json!({ "type": "lagged", "missed": missed }).to_string()
                }
                // The provider was removed.
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    Ok(ws
        .on_upgrade(move |socket| pump(socket, first, rx, holder, std::convert::identity))
        .into_response())
}

/// The stream routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(events_sse))
        .routes(routes!(ws_events))
        .routes(routes!(ws_state))
        .routes(routes!(ws_provider_logs))
}
