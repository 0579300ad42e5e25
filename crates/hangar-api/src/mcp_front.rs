//! `/mcp`, Hangar's own Streamable HTTP front, in front of rmcp's service.
//!
//! Every `/mcp` request passes through [`front`] after the key and
//! permission checks. It keeps the 2025-era session table (who opened each
//! session, when it was last used, the session cap and idle expiry) and
//! serves the hot requests itself, in the request's own task:
//!
//! - `tools/call` and `tools/list`, of a stateless 2026-07-28 client or of an
//!   initialized 2025 session: the JSON-RPC envelope is parsed, the request
//!   goes to [`AggregatingServer::call_tool_as`] / `list_tools_as` (the same
//!   code rmcp's handler runs: policies, approvals, audit, breakers,
//!   failover), and the answer is `application/json`, unless the provider
//!   sends progress first, in which case the reply switches to
//!   `text/event-stream` and carries the progress before the result;
//! - `notifications/cancelled` for a call it serves.
//!
//! Anything else (`initialize`, the GET stream, other methods, requests with
//! unusual headers or metadata, whose exact error answers are rmcp's) goes
//! on to rmcp's `StreamableHttpService` unchanged. Both see the same session
//! table, so a session opened through rmcp is served here once initialized.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hangar_mcp::rmcp::ErrorData;
use hangar_mcp::rmcp::model::{
    CallToolRequestParams, ErrorCode, PaginatedRequestParams, ProgressNotificationParam,
    ProtocolVersion, RequestId, RequestMetaObject, ServerResult,
};
use hangar_mcp::rmcp::transport::streamable_http_server::SessionManager;
use hangar_mcp::rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use hangar_mcp::trace::TraceContext;
use hangar_mcp::{
    AggregatingServer, CallerCanCall, CallerId, CallerRoles, Incoming, ProgressSink, SessionEntry,
    SessionTable,
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
/// How long a request that follows `notifications/initialized` right away
/// waits for rmcp to have handled it.
const LINK_WAIT: Duration = Duration::from_secs(2);
/// Progress notifications queued for a client that has not read them yet.
const PROGRESS_QUEUE: usize = 64;

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

impl Default for SessionLimits {
    fn default() -> Self {
        let d = hangar_core::config::ServerSettings::default();
        Self::from_settings(&d)
    }
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
    pub(crate) manager: Arc<LocalSessionManager>,
    pub(crate) limits: SessionLimits,
    pub(crate) max_body_bytes: usize,
}

impl McpFront {
    /// Ends sessions unused for the idle timeout (and those whose stream
    /// closed), every few seconds, until `shutdown`.
    pub(crate) fn spawn_sweeper(&self, shutdown: CancellationToken) {
        let front = self.clone();
        let every =
            (self.limits.idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => front.sweep().await,
                }
            }
        });
    }

    async fn sweep(&self) {
        for id in self.sessions.stale(self.limits.idle_timeout) {
            self.sessions.remove(&id);
            if let Err(e) = self.manager.close_session(&id).await {
                tracing::debug!(error = %e, "could not close an idle MCP session");
            }
        }
    }
}

/// The JSON-RPC envelope of a POSTed message: only what routing needs.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default, borrow)]
    method: Option<&'a str>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
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
    /// A request of an initialized 2025-era session.
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
    let mut entry = None;
    if let Some(id) = &session_id {
        match front.sessions.get(id) {
            // Someone else's session does not exist for this caller.
            Some(e) if e.principal() != principal => return session_not_found(),
            Some(e) => entry = Some(e),
            None => {}
        }
    }

    let deleting = req.method() == http::Method::DELETE;
    let req = if req.method() == http::Method::POST && is_json_post(req.headers()) {
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
        if let Ok(envelope) = serde_json::from_slice::<Envelope<'_>>(&bytes) {
            let served = serve(
                &front,
                &parts,
                &envelope,
                entry.as_ref(),
                session_id.is_some(),
                &principal,
            )
            .await;
            if let Some(resp) = served {
                return resp;
            }
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };

    let resp = next.run(req).await;
    after_rmcp(&front, session_id.as_deref(), &principal, deleting, resp)
}

/// Keeps the table in step with what rmcp answered.
fn after_rmcp(
    front: &McpFront,
    session_id: Option<&str>,
    principal: &str,
    deleting: bool,
    mut resp: Response,
) -> Response {
    match session_id {
        None => {
            if let Some(id) = resp
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                front.sessions.open(id, principal);
            }
        }
        Some(id) if resp.status() == StatusCode::NOT_FOUND => {
            front.sessions.remove(id);
        }
        Some(id) if deleting && resp.status().is_success() => {
            front.sessions.remove(id);
            // The session is gone now, not later: 200 (clients log 202 as
            // a failed termination).
            *resp.status_mut() = StatusCode::OK;
        }
        Some(_) => {}
    }
    resp
}

/// Serves `envelope` when it is one of the front's requests; `None` hands
/// it on to rmcp.
async fn serve(
    front: &McpFront,
    parts: &http::request::Parts,
    envelope: &Envelope<'_>,
    entry: Option<&Arc<SessionEntry>>,
    has_session: bool,
    principal: &str,
) -> Option<Response> {
    let method = envelope.method?;
    match (method, &envelope.id) {
        ("initialize", Some(id)) if !has_session => session_cap(front, principal, id),
        ("notifications/initialized", None) => {
            entry?.mark_initialized();
            None
        }
        ("notifications/cancelled", None) => {
            let entry = entry?;
            let params: CancelledParams = serde_json::from_str(envelope.params?.get()).ok()?;
            entry.take_inflight(&params.request_id).map(|ct| {
                ct.cancel();
                StatusCode::ACCEPTED.into_response()
            })
        }
        ("tools/call" | "tools/list", Some(id)) => {
            if let Some(entry) = entry {
                // Right after `notifications/initialized`, rmcp may still be
                // handling it.
                entry.linked(LINK_WAIT).await;
            }
            let era = era_of(&parts.headers, method, envelope, entry, has_session)?;
            Some(answer(front, parts, method, id, envelope.params, era).await)
        }
        _ => None,
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

/// Which era the request belongs to, when the front may serve it: a
/// well-formed stateless 2026-07-28 request, or one of an initialized 2025
/// session. Anything unusual is left to rmcp, whose answers (errors
/// included) are the reference.
fn era_of(
    headers: &HeaderMap,
    method: &str,
    envelope: &Envelope<'_>,
    entry: Option<&Arc<SessionEntry>>,
    has_session: bool,
) -> Option<Era> {
    let version = single(headers, VERSION_HEADER);
    if has_session {
        let entry = entry?;
        entry.link()?;
        // A known 2025-era version (or none: 2025-03-26), no per-request
        // metadata of the sessionless era.
        let known = version.is_none_or(|v| {
            v < ProtocolVersion::V_2026_07_28.as_str()
                && ProtocolVersion::KNOWN_VERSIONS
                    .iter()
                    .any(|k| k.as_str() == v)
        });
        let meta = meta_of(envelope.params);
        if !known
            || meta
                .as_ref()
                .is_some_and(|m| m.protocol_version().is_some())
        {
            return None;
        }
        return Some(Era::Session(entry.clone()));
    }
    // Sessionless: the version header and `_meta` agree on 2026-07-28, the
    // client's capabilities are there, and the SEP-2243 headers are plain
    // and match the body.
    if version? != ProtocolVersion::V_2026_07_28.as_str() {
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
        if header != name || header.starts_with("=?base64?") {
            return None;
        }
    }
    Some(Era::Stateless)
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

/// Serves one `tools/call` or `tools/list`.
async fn answer(
    front: &McpFront,
    parts: &http::request::Parts,
    method: &str,
    id: &RequestId,
    params: Option<&RawValue>,
    era: Era,
) -> Response {
    let stateless = matches!(era, Era::Stateless);
    let invalid = |e: serde_json::Error| {
        finish(
            id,
            Err(ErrorData::invalid_params(
                format!("invalid params: {e}"),
                None,
            )),
            stateless,
        )
    };
    let (server, meta, peer, capabilities) = match &era {
        Era::Stateless => (
            AggregatingServer::new(front.backend.clone()),
            meta_of(params),
            None,
            None,
        ),
        Era::Session(entry) => {
            let Some(link) = entry.link() else {
                return session_not_found();
            };
            (
                AggregatingServer::for_session(front.backend.clone(), link.client_key),
                meta_of(params),
                Some(link.peer.clone()),
                link.capabilities(),
            )
        }
    };
    let meta = meta.unwrap_or_default();
    let ext = &parts.extensions;
    let mut incoming = Incoming {
        caller: ext.get::<CallerId>().map(|c| c.0.clone()),
        roles: ext
            .get::<CallerRoles>()
            .map_or_else(|| Arc::from(Vec::new()), |r| r.0.clone()),
        can_call: ext.get::<CallerCanCall>().is_none_or(|c| c.0),
        stateless,
        capabilities: capabilities.or_else(|| meta.client_capabilities()),
        progress_token: meta.get_progress_token(),
        ct: CancellationToken::new(),
        trace: TraceContext::from_meta(&meta).or_else(|| {
            let value = |name: &str| single(&parts.headers, name);
            TraceContext::new(value("traceparent")?, value("tracestate"))
        }),
        peer,
        progress: ProgressSink::None,
    };

    if method == "tools/list" {
        if let Some(p) = params
            && let Err(e) = serde_json::from_str::<Option<PaginatedRequestParams>>(p.get())
        {
            return invalid(e);
        }
        let result = server.list_tools_as(&incoming).await;
        return finish(id, Ok(ServerResult::ListToolsResult(result)), stateless);
    }

    let request: CallToolRequestParams = match params.map(|p| serde_json::from_str(p.get())) {
        Some(Ok(r)) => r,
        Some(Err(e)) => return invalid(e),
        None => return invalid(serde::de::Error::missing_field("params")),
    };
    // A 2025 session's client cancels by notification: remember the call.
    let registered = match &era {
        Era::Session(entry) => Some(entry.track_inflight(id.clone(), incoming.ct.clone())),
        Era::Stateless => None,
    };
    if incoming.progress_token.is_none() {
        let result = server.call_tool_as(request, incoming).await;
        return finish(id, result.map(ServerResult::from), stateless);
    }
    // With a progress token the reply may have to stream: JSON if the call
    // ends before any progress, else SSE from the first notification on.
    let (tx, mut rx) = mpsc::channel(PROGRESS_QUEUE);
    incoming.progress = ProgressSink::Channel(tx);
    let mut call = Box::pin(async move { server.call_tool_as(request, incoming).await });
    let first = tokio::select! {
        biased;
        result = &mut call => {
            return finish(id, result.map(ServerResult::from), stateless);
        }
        Some(p) = rx.recv() => p,
    };
    let id = id.clone();
    let mut queue = VecDeque::from([progress_event(first)]);
    let mut call = Some(call);
    let stream = futures::stream::poll_fn(move |cx| {
        use std::task::Poll;
        // The session's record of the call lives as long as the stream.
        let _registered = &registered;
        loop {
            if let Some(event) = queue.pop_front() {
                return Poll::Ready(Some(Ok::<Bytes, std::convert::Infallible>(event)));
            }
            let Some(running) = call.as_mut() else {
                return Poll::Ready(None);
            };
            if let Poll::Ready(Some(p)) = rx.poll_recv(cx) {
                queue.push_back(progress_event(p));
                continue;
            }
            match running.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => {
                    call = None;
                    // Progress sent before the result goes first.
                    while let Ok(p) = rx.try_recv() {
                        queue.push_back(progress_event(p));
                    }
                    let body = reply_body(&id, result.map(ServerResult::from), stateless);
                    queue.push_back(sse_event(&body));
                }
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
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
pub(crate) fn session_not_found() -> Response {
    rpc_error_response(
        StatusCode::NOT_FOUND,
        None,
        ErrorData::invalid_request("Session not found", None),
    )
}
