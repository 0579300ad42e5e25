//! `/mcp`, Hangar's own Streamable HTTP front, in front of rmcp's service.
//!
//! Every `/mcp` request passes through `front` after the key and
//! permission checks.
//!
//! - 2025-era sessions are Hangar's own: `initialize` (within
//!   `server.max_sessions` / `server.max_sessions_per_principal`) opens one
//!   in the [`SessionTable`]; every later POST of the session (requests,
//!   notifications, the client's answers to requests Hangar sent it), its GET
//!   stream (`list_changed`) and its DELETE are served here; an unknown,
//!   expired or other principal's session is a 404.
//! - Of a session-less client, a well-formed stateless 2026-07-28 `tools/call`
//!   or `tools/list` is served here.
//!
//! Requests run in the request's own task through the `AggregatingServer::*_as`
//! methods (the code rmcp's handler runs too: policies, approvals, audit,
//! breakers, failover). The reply is `application/json` unless progress or a
//! request to the client comes first; then it is `text/event-stream`, those
//! in order and the result last. `tools/list` answers are reused through
//! `ListCache` when nothing they depend on changed.
//!
//! Everything else (other 2026-07-28 methods such as `server/discover` and
//! `subscriptions/listen`, requests with unusual headers or `_meta`, whose
//! exact error answers are rmcp's) goes on to rmcp's `StreamableHttpService`
//! unchanged; it never holds a session.

// Logging is deprecated by SEP-2577, but 2025-era clients still use it.
#![allow(deprecated)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hangar_mcp::jsonrpc::Envelope;
use hangar_mcp::rmcp::ErrorData;
use hangar_mcp::rmcp::ServerHandler as _;
use hangar_mcp::rmcp::model::{
    CallToolRequestParams, ErrorCode, GetPromptRequestParams, InitializeRequestParams,
    LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam,
    ProtocolVersion, ReadResourceRequestParams, RequestId, RequestMetaObject, ServerResult,
    SetLevelRequestParams,
};
use hangar_mcp::trace::TraceContext;
use hangar_mcp::{
    AggregatingServer, CallerCanCall, CallerId, CallerRoles, ClientPeer, ClientRequests, Incoming,
    ProgressSink, SessionEntry, SessionInit, SessionTable,
};
use hangar_runtime::Engine;
use http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The session header of the 2025-era protocol.
pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Progress notifications queued for a client that has not read them yet.
const PROGRESS_QUEUE: usize = 64;
/// Requests to the client queued on a call's reply stream.
const ASK_QUEUE: usize = 8;

/// Limits on 2025-era sessions (`server.session_idle_timeout_s`,
/// `server.max_sessions`, `server.max_sessions_per_principal`).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// How long a session may go unused.
    pub idle_timeout: Duration,
    /// Sessions open at once.
    pub max: usize,
    /// Sessions one principal may hold.
    pub per_principal: usize,
}

impl SessionLimits {
    /// The limits a config sets.
    pub fn from_settings(settings: &hangar_core::config::ServerSettings) -> Self {
        Self {
            idle_timeout: Duration::from_secs(settings.session_idle_timeout_s),
            max: settings.max_sessions,
            per_principal: settings.max_sessions_per_principal,
        }
    }
}

/// What [`front`] needs.
#[derive(Clone)]
pub(crate) struct McpFront {
    pub(crate) backend: Arc<Engine>,
    pub(crate) sessions: Arc<SessionTable>,
    pub(crate) limits: SessionLimits,
    pub(crate) max_body_bytes: usize,
    /// Cancelled at shutdown: ends the GET streams.
    pub(crate) shutdown: CancellationToken,
    /// `tools/list` answers already serialized.
    pub(crate) lists: Arc<ListCache>,
    /// Stateless calls waiting for their client's input (the era bridge).
    pub(crate) parking: Arc<crate::mcp_bridge::Parking>,
}

/// The serialized `tools/list` results of the last few (catalog, era,
/// visible set) triples. The visible set is computed for every request (the
/// policy verdicts of the caller, no IO), so an answer is reused only when it
/// is exactly what would be built: a policy or catalog change can never serve
/// a stale list. What is saved is building and serializing the list.
#[derive(Default)]
pub(crate) struct ListCache {
    entries: std::sync::Mutex<VecDeque<CachedList>>,
}

struct CachedList {
    catalog: Arc<hangar_mcp::Catalog>,
    stateless: bool,
    visible: Vec<u32>,
    result: Bytes,
}

/// Serialized lists kept at most.
const LIST_CACHE: usize = 16;

impl ListCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, VecDeque<CachedList>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The serialized result for (`catalog`, `stateless`, `visible`), built
    /// by `build` when not kept.
    fn get_or_build(
        &self,
        catalog: &Arc<hangar_mcp::Catalog>,
        stateless: bool,
        visible: Vec<u32>,
        build: impl FnOnce(&[u32]) -> Result<Vec<u8>, ErrorData>,
    ) -> Result<Bytes, ErrorData> {
        let same = |e: &CachedList| {
            Arc::ptr_eq(&e.catalog, catalog) && e.stateless == stateless && e.visible == visible
        };
        if let Some(e) = self.entries().iter().find(|e| same(e)) {
            return Ok(e.result.clone());
        }
        // Built outside the lock: other lists are served meanwhile.
        let result = Bytes::from(build(&visible)?);
        let mut entries = self.entries();
        // Lists of older catalogs are never asked for again.
        entries.retain(|e| Arc::ptr_eq(&e.catalog, catalog));
        if entries.len() >= LIST_CACHE {
            entries.pop_front();
        }
        entries.push_back(CachedList {
            catalog: catalog.clone(),
            stateless,
            visible,
            result: result.clone(),
        });
        Ok(result)
    }
}

impl McpFront {
    /// Ends session `id`: it is forgotten, its streams close, and its
    /// resource subscriptions are released.
    pub(crate) fn end_session(&self, id: &str) {
        end_session(&self.sessions, &self.backend, id);
    }

    /// Ends sessions unused for the idle timeout, every few seconds, until
    /// `shutdown`.
    pub(crate) fn spawn_sweeper(&self) {
        let front = self.clone();
        let every =
            (self.limits.idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = front.shutdown.cancelled() => {
                        front.sessions.clear();
                        front.parking.clear();
                        return;
                    }
                    _ = tick.tick() => {
                        for id in front.sessions.stale(front.limits.idle_timeout) {
                            front.end_session(&id);
                        }
                        front.parking.sweep();
                    }
                }
            }
        });
    }
}

/// `params` of `notifications/cancelled`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelledParams {
    request_id: RequestId,
}

#[derive(Serialize)]
struct Reply<'a, T: Serialize> {
    jsonrpc: &'static str,
    id: &'a RequestId,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorData>,
}

#[derive(Serialize)]
struct Notification<T: Serialize> {
    jsonrpc: &'static str,
    method: &'static str,
    params: T,
}

/// The era a request the front serves belongs to.
enum Era {
    /// A stateless 2026-07-28 request.
    Stateless,
    /// A request of a 2025-era session.
    Session(Arc<SessionEntry>),
}

/// The `/mcp` middleware (see the module documentation).
pub(crate) async fn front(State(front): State<McpFront>, req: Request, next: Next) -> Response {
    let principal = req
        .extensions()
        .get::<crate::auth::Principal>()
        .map(|p| p.id.clone())
        .unwrap_or_default();
    let session_id = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let modern = req
        .headers()
        .get(VERSION_HEADER)
        .is_some_and(|v| v.as_bytes() >= ProtocolVersion::V_2026_07_28.as_str().as_bytes());
    front
        .backend
        .metrics()
        .mcp_request(hangar_runtime::metrics::ERAS[usize::from(modern)]);
    let entry = match &session_id {
        // Unknown, ended, or someone else's: the same 404, so the client
        // initializes again.
        Some(id) => match front.sessions.get(id) {
            Some(e) if e.principal() == principal => Some(e),
            _ => return session_not_found(),
        },
        None => None,
    };

    match (req.method().clone(), &entry, &session_id) {
        (http::Method::GET, Some(entry), _) => return event_stream(&front, entry),
        (http::Method::DELETE, Some(_), Some(id)) => {
            front.end_session(id);
            // Gone now, not later: 200 (clients log 202 as a failed end).
            return StatusCode::OK.into_response();
        }
        (http::Method::POST, _, _) => {}
        (_, Some(_), _) => {
            return rpc_error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                ErrorData::invalid_request("method not allowed on /mcp", None),
            );
        }
        _ => return next.run(req).await,
    }
    if !is_json_post(req.headers()) {
        if entry.is_some() {
            return rpc_error_response(
                StatusCode::NOT_ACCEPTABLE,
                None,
                ErrorData::invalid_request(
                    "a POST to /mcp is JSON (Content-Type: application/json) and accepts \
                     application/json and text/event-stream",
                    None,
                ),
            );
        }
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, front.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return rpc_error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                ErrorData::invalid_request(
                    format!("request body larger than {} bytes", front.max_body_bytes),
                    None,
                ),
            );
        }
    };
    let envelope = match serde_json::from_slice::<Envelope<'_>>(&bytes) {
        Ok(e) => e,
        Err(e) if entry.is_some() => {
            return rpc_error_response(
                StatusCode::BAD_REQUEST,
                None,
                ErrorData::new(
                    ErrorCode::PARSE_ERROR,
                    format!("invalid JSON-RPC: {e}"),
                    None,
                ),
            );
        }
        Err(_) => {
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
        }
    };
    if let Some(entry) = entry {
        return session_message(&front, &parts, &envelope, entry).await;
    }
    let served = match (envelope.method.as_deref(), &envelope.id) {
        // 2026-07-28 removed the handshake: asked for in that era, it does
        // not exist (404, -32601).
        (Some("initialize"), Some(id)) if modern => Some(rpc_error_response(
            StatusCode::NOT_FOUND,
            Some(id),
            ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                "method not found: initialize (removed in 2026-07-28; use server/discover)",
                None,
            ),
        )),
        (Some("initialize"), Some(id)) => {
            Some(initialize(&front, &parts, &principal, id, envelope.params))
        }
        (Some("subscriptions/listen"), Some(id)) => {
            use hangar_mcp::Backend as _;
            match stateless_request(
                &parts.headers,
                "subscriptions/listen",
                &envelope,
                &front.backend.catalog(),
            ) {
                Some(_) => Some(listen(&front, &parts, id, envelope.params).await),
                None => None,
            }
        }
        (Some(method @ ("tools/call" | "tools/list" | "completion/complete")), Some(id)) => {
            use hangar_mcp::Backend as _;
            match stateless_request(&parts.headers, method, &envelope, &front.backend.catalog()) {
                Some(meta) => Some(
                    answer(
                        &front,
                        &parts,
                        method,
                        id,
                        envelope.params,
                        meta,
                        Era::Stateless,
                    )
                    .await,
                ),
                None => None,
            }
        }
        _ => None,
    };
    match served {
        Some(resp) => resp,
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

/// `initialize`: a new 2025-era session (within the caps), answered as JSON
/// with its `Mcp-Session-Id`.
fn initialize(
    front: &McpFront,
    parts: &http::request::Parts,
    principal: &str,
    id: &RequestId,
    params: Option<&RawValue>,
) -> Response {
    if let Some(refused) = session_cap(front, principal, id) {
        return refused;
    }
    let mut params: InitializeRequestParams =
        match serde_json::from_str(params.map_or("null", |p| p.get())) {
            Ok(p) => p,
            Err(e) => {
                return rpc_error_response(
                    StatusCode::BAD_REQUEST,
                    Some(id),
                    ErrorData::invalid_params(format!("invalid initialize params: {e}"), None),
                );
            }
        };
    // A supplied Mcp-Method or MCP-Protocol-Version header must agree with
    // the body (intermediaries route on them).
    let method_header = single(&parts.headers, "mcp-method");
    let version_header = single(&parts.headers, VERSION_HEADER);
    if method_header.is_some_and(|m| m != "initialize")
        || version_header.is_some_and(|v| v != params.protocol_version.as_str())
    {
        return rpc_error_response(
            StatusCode::BAD_REQUEST,
            Some(id),
            ErrorData::new(
                ErrorCode::HEADER_MISMATCH,
                "the Mcp-Method / MCP-Protocol-Version headers do not match the initialize request",
                None,
            ),
        );
    }
    // The handshake exists only before 2026-07-28: a newer (or unknown)
    // version gets the latest one that has it.
    let known = ProtocolVersion::KNOWN_VERSIONS
        .iter()
        .any(|k| k.as_str() == params.protocol_version.as_str());
    if !known || params.protocol_version.as_str() >= ProtocolVersion::V_2026_07_28.as_str() {
        params.protocol_version = ProtocolVersion::LATEST_WITH_INITIALIZE;
    }
    let client_key = AggregatingServer::<Engine>::next_client_key();
    let server = AggregatingServer::for_session(front.backend.clone(), client_key);
    let result = match server.negotiate_initialize(&params) {
        Ok(r) => r,
        Err(e) => return finish(id, Err(e), false),
    };
    let session = hex::encode(rand::random::<[u8; 16]>());
    front.sessions.open(
        &session,
        principal,
        SessionInit {
            protocol_version: result.protocol_version.clone(),
            capabilities: params.capabilities,
            client_key,
            client_info: Some(params.client_info),
            started: hangar_runtime::now_rfc3339(),
        },
    );
    let mut resp = finish(id, Ok(ServerResult::InitializeResult(result)), false);
    if let Ok(value) = http::HeaderValue::from_str(&session) {
        resp.headers_mut().insert(SESSION_HEADER, value);
    }
    resp
}

/// Everything a 2025-era session POSTs.
async fn session_message(
    front: &McpFront,
    parts: &http::request::Parts,
    envelope: &Envelope<'_>,
    entry: Arc<SessionEntry>,
) -> Response {
    let version_ok = single(&parts.headers, VERSION_HEADER).is_none_or(|v| {
        v < ProtocolVersion::V_2026_07_28.as_str()
            && ProtocolVersion::KNOWN_VERSIONS
                .iter()
                .any(|k| k.as_str() == v)
    });
    if !version_ok {
        return rpc_error_response(
            StatusCode::BAD_REQUEST,
            envelope.id.as_ref(),
            ErrorData::invalid_request("unsupported MCP-Protocol-Version for this session", None),
        );
    }
    match (envelope.method.as_deref(), &envelope.id) {
        (Some(method), Some(id)) => match method {
            "ping" => finish(id, Ok(ServerResult::empty(())), false),
            "resources/subscribe" | "resources/unsubscribe" => {
                let result = subscription(front, parts, method, envelope.params, &entry).await;
                finish(id, result.map(|()| ServerResult::empty(())), false)
            }
            "logging/setLevel" => match parse_params::<SetLevelRequestParams>(envelope.params) {
                Ok(p) => {
                    entry.set_log_level(p.level);
                    finish(id, Ok(ServerResult::empty(())), false)
                }
                Err(e) => finish(id, Err(e), false),
            },
            "initialize" => finish(
                id,
                Err(ErrorData::invalid_request(
                    "the session is already initialized",
                    None,
                )),
                false,
            ),
            "tools/call"
            | "tools/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
            | "prompts/list"
            | "prompts/get"
            | "completion/complete" => {
                let meta = meta_of(envelope.params).unwrap_or_default();
                answer(
                    front,
                    parts,
                    method,
                    id,
                    envelope.params,
                    meta,
                    Era::Session(entry),
                )
                .await
            }
            other => finish(
                id,
                Err(ErrorData::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!("method not found: {other}"),
                    None,
                )),
                false,
            ),
        },
        (Some(method), None) => {
            if method == "notifications/cancelled"
                && let Some(p) = envelope.params
                && let Ok(p) = serde_json::from_str::<CancelledParams>(p.get())
                && let Some(ct) = entry.take_inflight(&p.request_id)
            {
                ct.cancel();
            }
            StatusCode::ACCEPTED.into_response()
        }
        (None, Some(id)) => {
            // The client's answer to a request Hangar sent it.
            let answer = match (&envelope.error, envelope.result) {
                (Some(error), _) => Err(error.clone()),
                (None, Some(result)) => serde_json::from_str(result.get())
                    .map_err(|e| ErrorData::invalid_params(format!("invalid result: {e}"), None)),
                (None, None) => Err(ErrorData::invalid_request(
                    "a response needs a result or an error",
                    None,
                )),
            };
            entry.answer(id, answer);
            StatusCode::ACCEPTED.into_response()
        }
        (None, None) => rpc_error_response(
            StatusCode::BAD_REQUEST,
            None,
            ErrorData::invalid_request("not a JSON-RPC request, notification or response", None),
        ),
    }
}

/// `resources/subscribe` or `resources/unsubscribe` of a session: recorded
/// in the session (its GET stream then carries the resource's
/// `notifications/resources/updated`), and held at the provider while any
/// client holds it. Subscribing needs what reading does (`tools:call`, a
/// policy that does not deny reading the resource).
async fn subscription(
    front: &McpFront,
    parts: &http::request::Parts,
    method: &str,
    params: Option<&RawValue>,
    entry: &Arc<SessionEntry>,
) -> Result<(), ErrorData> {
    use hangar_mcp::Backend as _;
    #[derive(Deserialize)]
    struct Uri {
        uri: String,
    }
    let Uri { uri } = parse_params(params)?;
    if method == "resources/unsubscribe" {
        if entry.unsubscribe(&uri) {
            front.backend.unsubscribe_resource(&uri).await;
        }
        return Ok(());
    }
    let ext = &parts.extensions;
    if !ext.get::<CallerCanCall>().is_none_or(|c| c.0) {
        return Err(ErrorData::invalid_request(
            "permission denied: resources/subscribe needs the tools:call permission",
            None,
        ));
    }
    if let Some(provider) = front.backend.catalog().resolve_resource(&uri) {
        let roles = ext
            .get::<CallerRoles>()
            .map_or_else(|| Arc::from(Vec::new()), |r| r.0.clone());
        let caller = ext.get::<CallerId>().map(|c| c.0.as_str());
        let effect = front.backend.verdict(
            hangar_core::PolicyKind::Resource,
            caller,
            &roles,
            provider,
            &uri,
        );
        if effect == hangar_core::Effect::Deny {
            // A resource you may not read does not exist.
            return Err(ErrorData::resource_not_found(
                format!("Resource not found: {uri}"),
                None,
            ));
        }
    }
    if !entry.is_subscribed(&uri) && entry.subscription_count() >= MAX_SUBSCRIPTIONS {
        return Err(ErrorData::invalid_request(
            format!("at most {MAX_SUBSCRIPTIONS} resource subscriptions per session or stream"),
            None,
        ));
    }
    if entry.subscribe(&uri)
        && let Err(e) = front.backend.subscribe_resource(&uri).await
    {
        entry.unsubscribe(&uri);
        front.backend.unsubscribe_resource(&uri).await;
        return Err(ErrorData::internal_error(e.to_string(), None));
    }
    Ok(())
}

/// A 2026-07-28 `subscriptions/listen`: an SSE stream that acknowledges the
/// filter it accepted, then carries the list changes and resource updates it
/// asked for, each tagged with the listen request's id, until the client
/// closes it. Its resource subscriptions are held at the providers while it
/// lasts (as a session's are).
async fn listen(
    front: &McpFront,
    parts: &http::request::Parts,
    id: &RequestId,
    params: Option<&RawValue>,
) -> Response {
    use hangar_mcp::Backend as _;
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Filter {
        #[serde(default)]
        tools_list_changed: bool,
        #[serde(default)]
        prompts_list_changed: bool,
        #[serde(default)]
        resources_list_changed: bool,
        #[serde(default)]
        resource_subscriptions: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Params {
        notifications: Filter,
    }
    let filter = match parse_params::<Params>(params) {
        Ok(p) => p.notifications,
        Err(e) => return finish(id, Err(e), true),
    };
    // Each URI is subscribed as a session's would be (same permission and
    // policy); one that can't be is left out of what is acknowledged.
    let holder = Arc::new(hangar_mcp::SessionEntry::detached());
    let mut accepted_uris = Vec::new();
    for uri in filter.resource_subscriptions.iter().take(MAX_LISTEN_URIS) {
        match subscription(
            front,
            parts,
            "resources/subscribe",
            Some(&uri_param(uri)),
            &holder,
        )
        .await
        {
            Ok(()) => accepted_uris.push(uri.clone()),
            Err(e) => {
                tracing::debug!(uri = %uri, error = %e.message, "listen: resource not subscribed")
            }
        }
    }
    let subscription_id = serde_json::to_value(id).unwrap_or_default();
    let tag = serde_json::json!({ "io.modelcontextprotocol/subscriptionId": subscription_id });
    let mut accepted = serde_json::Map::new();
    for (key, on) in [
        ("toolsListChanged", filter.tools_list_changed),
        ("promptsListChanged", filter.prompts_list_changed),
        ("resourcesListChanged", filter.resources_list_changed),
    ] {
        if on {
            accepted.insert(key.to_owned(), serde_json::Value::Bool(true));
        }
    }
    if !accepted_uris.is_empty() {
        accepted.insert(
            "resourceSubscriptions".to_owned(),
            serde_json::json!(accepted_uris),
        );
    }
    let ack = serde_json::json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": {"_meta": tag, "notifications": accepted},
    });
    let first = sse_event(ack.to_string().as_bytes());

    let mut changes = front.backend.changes();
    changes.borrow_and_update();
    let updates = front.backend.resource_updates();
    let shutdown = front.shutdown.clone();
    let release = ReleaseOnDrop {
        engine: front.backend.clone(),
        holder: holder.clone(),
    };
    let lists: Vec<&'static str> = [
        (
            filter.tools_list_changed,
            "notifications/tools/list_changed",
        ),
        (
            filter.prompts_list_changed,
            "notifications/prompts/list_changed",
        ),
        (
            filter.resources_list_changed,
            "notifications/resources/list_changed",
        ),
    ]
    .into_iter()
    .filter_map(|(on, m)| on.then_some(m))
    .collect();
    let tick = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let head = futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(first) });
    let tail = futures::stream::unfold(
        (changes, updates, tick, release),
        move |(mut changes, mut updates, mut tick, release)| {
            let (shutdown, tag, lists) = (shutdown.clone(), tag.clone(), lists.clone());
            async move {
                let item = loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return None,
                        r = changes.changed() => {
                            r.ok()?;
                            if lists.is_empty() {
                                continue;
                            }
                            let mut out = Vec::new();
                            for method in &lists {
                                let n = serde_json::json!({
                                    "jsonrpc": "2.0", "method": method, "params": {"_meta": tag},
                                });
                                out.extend_from_slice(&sse_event(n.to_string().as_bytes()));
                            }
                            break Bytes::from(out);
                        }
                        u = updates.recv() => match u {
                            Ok(uri) if release.holder.is_subscribed(&uri) => {
                                let n = serde_json::json!({
                                    "jsonrpc": "2.0",
                                    "method": "notifications/resources/updated",
                                    "params": {"_meta": tag, "uri": &*uri},
                                });
                                break sse_event(n.to_string().as_bytes());
                            }
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                        },
                        _ = tick.tick() => break Bytes::from_static(b": keep-alive\n\n"),
                    }
                };
                Some((Ok(item), (changes, updates, tick, release)))
            }
        },
    );
    sse_response(Body::from_stream(futures::StreamExt::chain(head, tail)))
}

/// URIs one `subscriptions/listen` may name, and resources one session or
/// listen stream may subscribe to.
const MAX_LISTEN_URIS: usize = 256;
const MAX_SUBSCRIPTIONS: usize = MAX_LISTEN_URIS;

fn uri_param(uri: &str) -> Box<RawValue> {
    RawValue::from_string(serde_json::json!({ "uri": uri }).to_string())
        .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).unwrap_or_default())
}

/// Releases a listen stream's resource subscriptions when it ends.
struct ReleaseOnDrop {
    engine: Arc<Engine>,
    holder: Arc<SessionEntry>,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        release_subscriptions(&self.engine, &self.holder);
    }
}

/// Ends session `id` of `sessions`: it is forgotten, its streams close, and
/// its resource subscriptions are released.
pub(crate) fn end_session(sessions: &SessionTable, engine: &Engine, id: &str) {
    if let Some(entry) = sessions.remove(id) {
        release_subscriptions(engine, &entry);
    }
}

/// Releases (off the caller's task) every resource subscription `holder`
/// holds.
fn release_subscriptions(engine: &Engine, holder: &SessionEntry) {
    let uris = holder.take_subscriptions();
    if uris.is_empty() {
        return;
    }
    let engine = engine.clone();
    tokio::spawn(async move {
        for uri in uris {
            engine.unsubscribe_resource(&uri).await;
        }
    });
}

/// The session's GET stream: `list_changed` notifications while it lasts
/// (a comment every 15 s keeps intermediaries from closing it). No task:
/// the stream is polled by the connection that reads it.
fn event_stream(front: &McpFront, entry: &Arc<SessionEntry>) -> Response {
    use hangar_mcp::Backend as _;
    let mut changes = front.backend.changes();
    changes.borrow_and_update();
    let updates = front.backend.resource_updates();
    let ended = entry.ended().clone();
    let shutdown = front.shutdown.clone();
    let session = entry.clone();
    let tick = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let stream = futures::stream::unfold(
        (changes, updates, tick),
        move |(mut changes, mut updates, mut tick)| {
            let (ended, shutdown, session) = (ended.clone(), shutdown.clone(), session.clone());
            async move {
                let item = loop {
                    tokio::select! {
                        () = ended.cancelled() => return None,
                        () = shutdown.cancelled() => return None,
                        r = changes.changed() => {
                            r.ok()?;
                            break list_changed_events();
                        }
                        u = updates.recv() => match u {
                            Ok(uri) if session.is_subscribed(&uri) => break resource_updated_event(&uri),
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                        },
                        _ = tick.tick() => break Bytes::from_static(b": keep-alive\n\n"),
                    }
                };
                Some((
                    Ok::<Bytes, std::convert::Infallible>(item),
                    (changes, updates, tick),
                ))
            }
        },
    );
    sse_response(Body::from_stream(stream))
}

fn resource_updated_event(uri: &str) -> Bytes {
    let n = Notification {
        jsonrpc: "2.0",
        method: "notifications/resources/updated",
        params: serde_json::json!({ "uri": uri }),
    };
    serde_json::to_vec(&n).map_or_else(|_| Bytes::new(), |b| sse_event(&b))
}

/// How often an idle GET stream gets a comment line.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn list_changed_events() -> Bytes {
    let mut out = Vec::new();
    for method in [
        "notifications/tools/list_changed",
        "notifications/resources/list_changed",
        "notifications/prompts/list_changed",
    ] {
        out.extend_from_slice(&sse_event(
            format!(r#"{{"jsonrpc":"2.0","method":"{method}"}}"#).as_bytes(),
        ));
    }
    Bytes::from(out)
}

fn sse_response(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Sends a provider's server-to-client requests (sampling, elicitation,
/// roots) to a 2025 session's client on the call's reply stream, and waits
/// for the answer the client POSTs.
struct SessionAsker {
    entry: Arc<SessionEntry>,
    out: mpsc::Sender<Bytes>,
}

impl ClientRequests for SessionAsker {
    fn request(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> futures::future::BoxFuture<'static, Result<serde_json::Value, ErrorData>> {
        let entry = self.entry.clone();
        let out = self.out.clone();
        Box::pin(async move {
            let (pending, answer) = entry.ask();
            let message = serde_json::json!({
                "jsonrpc": "2.0", "id": pending.id, "method": method, "params": params,
            });
            let gone = || ErrorData::internal_error("the client's reply stream is closed", None);
            out.send(sse_event(message.to_string().as_bytes()))
                .await
                .map_err(|_| gone())?;
            tokio::select! {
                a = answer => a.map_err(|_| gone())?,
                () = entry.ended().cancelled() => Err(ErrorData::internal_error("the session ended", None)),
            }
        })
    }

    fn log(&self, params: &LoggingMessageNotificationParam) {
        if !self.entry.wants_log(params.level) {
            return;
        }
        let n = Notification {
            jsonrpc: "2.0",
            method: "notifications/message",
            params,
        };
        if let Ok(body) = serde_json::to_vec(&n) {
            // Never waits: a client that does not read loses log lines, not calls.
            let _ = self.out.try_send(sse_event(&body));
        }
    }
}

/// Refuses an `initialize` past the session caps.
fn session_cap(front: &McpFront, principal: &str, id: &RequestId) -> Option<Response> {
    let what = if front.sessions.len() >= front.limits.max {
        format!(
            "too many MCP sessions open (server.max_sessions = {})",
            front.limits.max
        )
    } else if front.sessions.count_of(principal) >= front.limits.per_principal {
        format!(
            "this principal holds too many MCP sessions (server.max_sessions_per_principal = {}); \
             end some (DELETE /mcp) or use the sessionless 2026-07-28 protocol",
            front.limits.per_principal
        )
    } else {
        return None;
    };
    tracing::info!(principal, "MCP session refused: {what}");
    let error = ErrorData::new(
        ErrorCode::INTERNAL_ERROR,
        what,
        Some(serde_json::json!({"origin": "hangar"})),
    );
    Some(rpc_error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        Some(id),
        error,
    ))
}

/// The request's `_meta` (parsed once, for the request to use) when a
/// session-less request is a well-formed stateless 2026-07-28 one the front
/// serves: the version header and `_meta` agree on 2026-07-28, the client's
/// capabilities are there, and the SEP-2243 headers are plain and match the
/// body. Anything unusual is left to rmcp, whose answers (errors included)
/// are the reference.
fn stateless_request(
    headers: &HeaderMap,
    method: &str,
    envelope: &Envelope<'_>,
    catalog: &hangar_mcp::Catalog,
) -> Option<RequestMetaObject> {
    if single(headers, VERSION_HEADER)? != ProtocolVersion::V_2026_07_28.as_str() {
        return None;
    }
    let meta = meta_of(envelope.params)?;
    let declared = meta.protocol_version()?;
    if declared.as_str() != ProtocolVersion::V_2026_07_28.as_str()
        || !meta.missing_required_keys(&declared).is_empty()
        || single(headers, "mcp-method")? != method
        || headers.keys().any(|k| k.as_str().starts_with("mcp-param-"))
    {
        return None;
    }
    if method == "tools/call" {
        let name = tool_name(envelope.params)?;
        let header = single(headers, "mcp-name")?;
        // A tool that promotes arguments to Mcp-Param-* headers: rmcp checks
        // they are there and match.
        if header != name || header.starts_with("=?base64?") || catalog.has_param_headers(&name) {
            return None;
        }
    }
    Some(meta)
}

/// The one value of header `name` (none if absent, repeated or not text).
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

fn meta_of(params: Option<&RawValue>) -> Option<RequestMetaObject> {
    #[derive(Deserialize)]
    struct WithMeta {
        #[serde(rename = "_meta", default)]
        meta: Option<RequestMetaObject>,
    }
    serde_json::from_str::<WithMeta>(params?.get()).ok()?.meta
}

fn tool_name(params: Option<&RawValue>) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        name: String,
    }
    serde_json::from_str::<Named>(params?.get())
        .ok()
        .map(|n| n.name)
}

fn is_json_post(headers: &HeaderMap) -> bool {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case("application/json"))
        });
    let (mut accepts_json, mut accepts_sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        for item in value.to_str().unwrap_or_default().split(',') {
            let mut fields = item.split(';');
            let essence = fields.next().unwrap_or_default().trim();
            // `q=0` excludes a type.
            if fields.any(|f| f.trim().replace(' ', "").starts_with("q=0") && !f.contains('.')) {
                continue;
            }
            accepts_json |= essence.eq_ignore_ascii_case("application/json");
            accepts_sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && accepts_json && accepts_sse
}

/// Serves one request: a stateless `tools/call` or `tools/list`, or any
/// request of a 2025 session. The reply is JSON when the work ends before it
/// sends anything; from the first progress notification or request to the
/// client on, it is an event stream carrying them in order, the result last.
async fn answer(
    front: &McpFront,
    parts: &http::request::Parts,
    method: &str,
    id: &RequestId,
    params: Option<&RawValue>,
    meta: RequestMetaObject,
    era: Era,
) -> Response {
    let stateless = matches!(era, Era::Stateless);
    let ext = &parts.extensions;
    let (server, capabilities) = match &era {
        Era::Stateless => (
            AggregatingServer::new(front.backend.clone()),
            meta.client_capabilities(),
        ),
        Era::Session(entry) => (
            AggregatingServer::for_session(front.backend.clone(), entry.client_key),
            Some(entry.capabilities.clone()),
        ),
    };
    let progress_token = meta.get_progress_token();
    // Channels only where something may come through them: progress when
    // the client asked for it, requests to the client in a session.
    let (progress_tx, mut progress_rx) = match progress_token {
        Some(_) => {
            let (tx, rx) = mpsc::channel(PROGRESS_QUEUE);
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let (asks_tx, mut asks_rx) = match era {
        Era::Session(_) => {
            let (tx, rx) = mpsc::channel::<Bytes>(ASK_QUEUE);
            (Some(tx), Some(rx))
        }
        Era::Stateless => (None, None),
    };
    // A stateless call: a retry of a parked call goes on where it stopped;
    // a new one gets the era bridge when its client can answer requests.
    let mut bridge = None;
    let mut parsed_call = None;
    // Only a stateless call can be parked (the principal is what it is bound to).
    let principal = match stateless && method == "tools/call" {
        true => ext
            .get::<CallerId>()
            .map(|c| c.0.clone())
            .unwrap_or_default(),
        false => String::new(),
    };
    if stateless && method == "tools/call" {
        let call: CallToolRequestParams = match parse_params(params) {
            Ok(c) => c,
            Err(e) => return finish(id, Err(e), stateless),
        };
        if let Some(state) = call.request_state.as_deref()
            && let Some(result) = front
                .parking
                .resume(
                    &front.backend,
                    &principal,
                    &call.name,
                    state,
                    call.input_responses.clone(),
                )
                .await
        {
            return finish(id, result, stateless);
        }
        if capabilities
            .as_ref()
            .is_some_and(|c| c.sampling.is_some() || c.elicitation.is_some() || c.roots.is_some())
        {
            bridge = Some((call.name.to_string(), crate::mcp_bridge::Bridge::new()));
        }
        parsed_call = Some(call);
    }
    let mut incoming = Incoming {
        caller: ext.get::<CallerId>().map(|c| c.0.clone()),
        roles: ext
            .get::<CallerRoles>()
            .map_or_else(|| Arc::from(Vec::new()), |r| r.0.clone()),
        can_call: ext.get::<CallerCanCall>().is_none_or(|c| c.0),
        stateless,
        capabilities,
        progress: progress_tx.map_or(ProgressSink::None, ProgressSink::Channel),
        progress_token,
        ct: CancellationToken::new(),
        trace: TraceContext::from_meta(&meta).or_else(|| {
            let value = |name: &str| single(&parts.headers, name);
            TraceContext::new(value("traceparent")?, value("tracestate"))
        }),
        peer: match (&era, asks_tx) {
            (Era::Session(entry), Some(out)) => Some(ClientPeer::Front(Arc::new(SessionAsker {
                entry: entry.clone(),
                out,
            }))),
            _ => None,
        },
        request_id: Some(hangar_mcp::jsonrpc::id_text(id)),
    };
    let (tool, mut bridge_rx) = match bridge {
        Some((tool, (bridge, rx))) => {
            incoming.peer = Some(ClientPeer::Front(Arc::new(bridge)));
            (tool, Some(rx))
        }
        None => (String::new(), None),
    };
    if method == "tools/list" {
        if let Err(e) = listing_params(params) {
            return finish(id, Err(e), stateless);
        }
        let (catalog, visible) = server.visible_tools(&incoming).await;
        let listed = front
            .lists
            .get_or_build(&catalog, stateless, visible, |visible| {
                let tools = hangar_mcp::tools_result(&catalog, visible);
                let shaped = shape(Ok(ServerResult::ListToolsResult(tools)), stateless)?;
                serde_json::to_vec(&shaped).map_err(|e| {
                    ErrorData::internal_error(format!("could not encode the list: {e}"), None)
                })
            });
        return match listed {
            Ok(result) => list_reply(id, &result),
            Err(e) => finish(id, Err(e), stateless),
        };
    }
    // A 2025 session's client cancels by notification: remember the call.
    let registered = match &era {
        Era::Session(entry) => Some(entry.track_inflight(id.clone(), incoming.ct.clone())),
        Era::Stateless => None,
    };
    let record = match &era {
        Era::Session(entry) => Some((entry.clone(), id.clone())),
        Era::Stateless => None,
    };
    let mut work = match work(server, method, params, incoming, parsed_call, record) {
        Ok(work) => work,
        Err(e) => return finish(id, Err(e), stateless),
    };
    let mut queue = VecDeque::new();
    let mut work = tokio::select! {
        biased;
        result = &mut work => {
            // What was sent before the result (a log line, progress) goes first.
            drain(&mut progress_rx, &mut asks_rx, &mut queue);
            if queue.is_empty() {
                return finish(id, result, stateless);
            }
            queue.push_back(sse_event(&reply_body(id, result, stateless)));
            None
        }
        Some(p) = recv(&mut progress_rx) => {
            queue.push_back(progress_event(p));
            Some(work)
        }
        Some(ask) = recv(&mut asks_rx) => {
            queue.push_back(ask);
            Some(work)
        }
        Some(ask) = recv(&mut bridge_rx) => {
            // The provider asks the stateless client something: the call is
            // parked and the client gets the question as input requests.
            let running = crate::mcp_bridge::Running {
                work,
                asks: bridge_rx.take().unwrap_or_else(|| mpsc::channel(1).1),
                progress: progress_rx.take(),
            };
            match front.parking.park(&front.backend, &principal, &tool, ask, running) {
                Ok(input) => return finish(id, input, stateless),
                Err(running) => {
                    // Refused (too many waiting): the call goes on without it.
                    bridge_rx = Some(running.asks);
                    progress_rx = running.progress;
                    Some(running.work)
                }
            }
        }
    };
    let id = id.clone();
    let parking = (
        front.parking.clone(),
        front.backend.clone(),
        principal,
        tool,
    );
    let stream = futures::stream::poll_fn(move |cx| {
        use std::task::Poll;
        // The session's record of the call lives as long as the stream.
        let _registered = &registered;
        loop {
            if let Some(event) = queue.pop_front() {
                return Poll::Ready(Some(Ok::<Bytes, std::convert::Infallible>(event)));
            }
            if work.is_none() {
                return Poll::Ready(None);
            }
            if let Some(Poll::Ready(Some(p))) = progress_rx.as_mut().map(|rx| rx.poll_recv(cx)) {
                queue.push_back(progress_event(p));
                continue;
            }
            if let Some(Poll::Ready(Some(ask))) = asks_rx.as_mut().map(|rx| rx.poll_recv(cx)) {
                queue.push_back(ask);
                continue;
            }
            if let Some(Poll::Ready(Some(ask))) = bridge_rx.as_mut().map(|rx| rx.poll_recv(cx)) {
                // Progress came first, then a question: the input request is
                // this stream's last event and the call is parked.
                let (parked, backend, principal, tool) = &parking;
                let Some(taken) = work.take() else { continue };
                let running = crate::mcp_bridge::Running {
                    work: taken,
                    asks: bridge_rx.take().unwrap_or_else(|| mpsc::channel(1).1),
                    progress: progress_rx.take(),
                };
                match parked.park(backend, principal, tool, ask, running) {
                    Ok(input) => queue.push_back(sse_event(&reply_body(&id, input, stateless))),
                    Err(running) => {
                        bridge_rx = Some(running.asks);
                        progress_rx = running.progress;
                        work = Some(running.work);
                    }
                }
                continue;
            }
            let Some(running) = work.as_mut() else {
                continue;
            };
            match running.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => {
                    work = None;
                    // What was sent before the result goes first.
                    drain(&mut progress_rx, &mut asks_rx, &mut queue);
                    queue.push_back(sse_event(&reply_body(&id, result, stateless)));
                }
            }
        }
    });
    sse_response(Body::from_stream(stream))
}

/// Moves what is already queued on the progress and client channels to `queue`.
fn drain(
    progress_rx: &mut Option<mpsc::Receiver<ProgressNotificationParam>>,
    asks_rx: &mut Option<mpsc::Receiver<Bytes>>,
    queue: &mut VecDeque<Bytes>,
) {
    while let Some(Ok(p)) = progress_rx.as_mut().map(mpsc::Receiver::try_recv) {
        queue.push_back(progress_event(p));
    }
    while let Some(Ok(event)) = asks_rx.as_mut().map(mpsc::Receiver::try_recv) {
        queue.push_back(event);
    }
}

/// The next message of an optional channel (none: never).
async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A listing's params. The whole list is one page, so Hangar never hands out
/// a cursor: one sent back is not Hangar's, and gets -32602 (as the spec asks
/// of an invalid cursor) rather than the first page again.
fn listing_params(params: Option<&RawValue>) -> Result<(), ErrorData> {
    let p: Option<PaginatedRequestParams> = parse_params(params)?;
    match p.and_then(|p| p.cursor) {
        Some(_) => Err(ErrorData::invalid_params(
            "invalid cursor: this server answers every list in one page",
            None,
        )),
        None => Ok(()),
    }
}

/// A request's params as `T` (absent params are `null`).
fn parse_params<T: serde::de::DeserializeOwned>(params: Option<&RawValue>) -> Result<T, ErrorData> {
    serde_json::from_str(params.map_or("null", |p| p.get()))
        .map_err(|e| ErrorData::invalid_params(format!("invalid params: {e}"), None))
}

/// The work of `method` (a parse error of its params is the error;
/// `parsed_call` is a `tools/call`'s params when already parsed).
fn work(
    server: AggregatingServer<Engine>,
    method: &str,
    params: Option<&RawValue>,
    incoming: Incoming,
    parsed_call: Option<CallToolRequestParams>,
    record: Option<(Arc<SessionEntry>, RequestId)>,
) -> Result<futures::future::BoxFuture<'static, Result<ServerResult, ErrorData>>, ErrorData> {
    Ok(match method {
        "tools/call" => {
            // Parsed already when the front looked at it (a stateless call).
            let request: CallToolRequestParams = match parsed_call {
                Some(call) => call,
                None => parse_params(params)?,
            };
            Box::pin(async move {
                let started = std::time::Instant::now();
                let tool = request.name.to_string();
                let ct = incoming.ct.clone();
                let result = server
                    .call_tool_as(request, incoming)
                    .await
                    .map(ServerResult::from);
                // A session remembers its last calls (`GET /api/sessions/{id}`).
                if let Some((entry, id)) = record {
                    let outcome = match &result {
                        _ if ct.is_cancelled() => "cancelled",
                        Err(_) => "error",
                        Ok(ServerResult::CallToolResult(r)) if r.is_error == Some(true) => {
                            "tool_error"
                        }
                        Ok(_) => "success",
                    };
                    entry.record_call(hangar_mcp::RecentCall {
                        request_id: hangar_mcp::jsonrpc::id_text(&id),
                        tool,
                        finished: std::time::SystemTime::now(),
                        duration_ms: u64::try_from(started.elapsed().as_millis())
                            .unwrap_or(u64::MAX),
                        outcome,
                    });
                }
                result
            })
        }
        "resources/read" => {
            let request: ReadResourceRequestParams = parse_params(params)?;
            Box::pin(async move {
                server
                    .read_resource_as(request, incoming)
                    .await
                    .map(ServerResult::from)
            })
        }
        "prompts/get" => {
            let request: GetPromptRequestParams = parse_params(params)?;
            Box::pin(async move {
                server
                    .get_prompt_as(request, incoming)
                    .await
                    .map(ServerResult::from)
            })
        }
        "completion/complete" => {
            let request: hangar_mcp::rmcp::model::CompleteRequestParams = parse_params(params)?;
            Box::pin(async move {
                server
                    .complete_as(request, incoming)
                    .await
                    .map(ServerResult::CompleteResult)
            })
        }
        list => {
            listing_params(params)?;
            let list = list.to_owned();
            Box::pin(async move {
                Ok(match list.as_str() {
                    "resources/list" => {
                        ServerResult::ListResourcesResult(server.list_resources_as(&incoming).await)
                    }
                    "resources/templates/list" => ServerResult::ListResourceTemplatesResult(
                        server.list_resource_templates_as(&incoming).await,
                    ),
                    "prompts/list" => {
                        ServerResult::ListPromptsResult(server.list_prompts_as(&incoming).await)
                    }
                    other => {
                        return Err(ErrorData::new(
                            ErrorCode::METHOD_NOT_FOUND,
                            format!("method not found: {other}"),
                            None,
                        ));
                    }
                })
            })
        }
    })
}

fn progress_event(p: ProgressNotificationParam) -> Bytes {
    let n = Notification {
        jsonrpc: "2.0",
        method: "notifications/progress",
        params: p,
    };
    match serde_json::to_vec(&n) {
        Ok(body) => sse_event(&body),
        Err(_) => Bytes::new(),
    }
}

fn sse_event(data: &[u8]) -> Bytes {
    let mut event = Vec::with_capacity(data.len() + 24);
    event.extend_from_slice(b"event: message\ndata: ");
    event.extend_from_slice(data);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

/// The result shaped for the client's era, as rmcp's handler shapes it:
/// 2026-07-28 results carry `resultType` and the caching hints, 2025 ones
/// neither (and no non-object structured output).
fn shape(
    result: Result<ServerResult, ErrorData>,
    stateless: bool,
) -> Result<ServerResult, ErrorData> {
    match result {
        Ok(ServerResult::InputRequiredResult(_)) if !stateless => Err(ErrorData::invalid_request(
            "InputRequiredResult requires negotiated protocol version 2026-07-28 or newer",
            None,
        )),
        Ok(mut r) => {
            if stateless {
                r.fill_missing_cache_hints();
            } else {
                r.strip_result_type_for_legacy_peer();
                r.strip_non_object_output_for_legacy_peer();
            }
            Ok(r)
        }
        Err(mut e) => {
            if stateless && e.code == ErrorCode::RESOURCE_NOT_FOUND {
                e.code = ErrorCode::INVALID_PARAMS;
            }
            Err(e)
        }
    }
}

fn reply_body(id: &RequestId, result: Result<ServerResult, ErrorData>, stateless: bool) -> Vec<u8> {
    let (result, error) = match shape(result, stateless) {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e)),
    };
    let reply = Reply {
        jsonrpc: "2.0",
        id,
        result,
        error,
    };
    serde_json::to_vec(&reply).unwrap_or_else(|e| {
        let error = ErrorData::internal_error(format!("could not encode the result: {e}"), None);
        serde_json::to_vec(&Reply::<()> {
            jsonrpc: "2.0",
            id,
            result: None,
            error: Some(error),
        })
        .unwrap_or_default()
    })
}

/// The whole reply as `application/json`, with the status rmcp gives a
/// stateless request's error (a 2025 session's errors are in-band, 200).
fn finish(id: &RequestId, result: Result<ServerResult, ErrorData>, stateless: bool) -> Response {
    let status = match &result {
        Err(e) if stateless => match e.code {
            ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
            | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
            | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        },
        _ => StatusCode::OK,
    };
    json_response(status, reply_body(id, result, stateless))
}

/// A JSON-RPC response around an already serialized `result`.
fn list_reply(id: &RequestId, result: &[u8]) -> Response {
    let id = serde_json::to_vec(id).unwrap_or_else(|_| b"null".to_vec());
    let mut body = Vec::with_capacity(result.len() + id.len() + 40);
    body.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    body.extend_from_slice(&id);
    body.extend_from_slice(br#","result":"#);
    body.extend_from_slice(result);
    body.push(b'}');
    json_response(StatusCode::OK, body)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

fn rpc_error_response(status: StatusCode, id: Option<&RequestId>, error: ErrorData) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": error,
    });
    json_response(status, body.to_string().into_bytes())
}

/// What an unknown (or someone else's, or expired) session gets: 404, so the
/// client initializes again.
fn session_not_found() -> Response {
    rpc_error_response(
        StatusCode::NOT_FOUND,
        None,
        ErrorData::invalid_request("Session not found", None),
    )
}
