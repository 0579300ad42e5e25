//! Live MCP sessions: `GET /api/sessions`, `GET/DELETE /api/sessions/{session_id}`
//! and `POST /api/sessions/{session_id}/abort`.
//!
//! These are the 2025-era sessions of this process (`initialize` and an
//! `Mcp-Session-Id`); stateless 2026-07-28 clients hold none. A principal
//! sees, ends and aborts its own sessions; `sessions:read` sees everyone's,
//! `sessions:admin` ends and aborts everyone's. Someone else's session is a
//! 404 to a caller that may not see it.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use hangar_core::rbac::{Grants, Permission};
use hangar_mcp::rmcp::model::RequestId;
use hangar_mcp::{SessionEntry, SessionTable};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath;

/// One live session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Its `Mcp-Session-Id`.
    pub session_id: String,
    /// Who opened it.
    pub principal_id: String,
    /// `2025` (sessions exist only in that era).
    pub era: &'static str,
    /// The negotiated protocol version.
    pub protocol_version: String,
    /// The client's name, as it said in `initialize`.
    #[schema(required = true)]
    pub client_name: Option<String>,
    /// The client's version.
    #[schema(required = true)]
    pub client_version: Option<String>,
    /// What the client declared it can do (sampling, elicitation, roots...).
    #[schema(value_type = Object)]
    pub capabilities: serde_json::Value,
    /// When it opened (RFC 3339).
    pub started: String,
    /// When it was last used (RFC 3339).
    pub last_activity: String,
    /// Calls being served.
    pub calls_in_flight: usize,
    /// Resources it subscribed to.
    pub subscriptions: usize,
}

/// A session with its calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDetail {
    /// The session.
    #[serde(flatten)]
    pub session: SessionView,
    /// The JSON-RPC ids of its calls in flight.
    pub in_flight: Vec<String>,
    /// Its last calls (at most 20), oldest first.
    pub recent_calls: Vec<RecentCallView>,
}

/// One finished call.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecentCallView {
    /// The client's JSON-RPC id of it.
    pub request_id: String,
    /// The tool, as the client named it.
    pub tool: String,
    /// When it finished (RFC 3339).
    pub finished: String,
    /// How long it took.
    pub duration_ms: u64,
    /// `success`, `tool_error`, `error` or `cancelled`.
    pub outcome: &'static str,
}

/// `GET /api/sessions` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// The sessions the caller may see, oldest first.
    pub sessions: Vec<SessionView>,
    /// How many.
    pub total: usize,
}

/// `DELETE /api/sessions/{session_id}` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionEnded {
    /// The session.
    pub session_id: String,
    /// Always true: it is gone (its next request gets 404).
    pub ended: bool,
}

/// `POST /api/sessions/{session_id}/abort` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    /// The JSON-RPC id of the one call to abort (a string or a number);
    /// none: every call in flight.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub request_id: Option<RequestId>,
}

/// `POST /api/sessions/{session_id}/abort` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Aborted {
    /// The session.
    pub session_id: String,
    /// The JSON-RPC ids of the calls cancelled (each caller gets a
    /// cancelled error; the provider gets `notifications/cancelled`).
    pub aborted: Vec<String>,
}

/// The `/api/sessions` routes.
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(get_session, end_session))
        .routes(routes!(abort_session))
}

fn view(id: &str, e: &SessionEntry, idle: std::time::Duration) -> SessionView {
    let last = time::OffsetDateTime::now_utc()
        - time::Duration::try_from(idle).unwrap_or(time::Duration::ZERO);
    SessionView {
        session_id: id.to_owned(),
        principal_id: e.principal().to_owned(),
        era: "2025",
        protocol_version: e.protocol_version.to_string(),
        client_name: e.client_info.as_ref().map(|i| i.name.clone()),
        client_version: e.client_info.as_ref().map(|i| i.version.clone()),
        capabilities: serde_json::to_value(&e.capabilities).unwrap_or_default(),
        started: e.started.clone(),
        last_activity: last
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        calls_in_flight: e.inflight_ids().len(),
        subscriptions: e.subscription_count(),
    }
}

/// The session `id` if the caller may see it (own, or `sessions:read`), and
/// whether it may change it (own, or `sessions:admin`).
fn visible(
    sessions: &SessionTable,
    caller: &Principal,
    grants: &Grants,
    id: &str,
) -> Result<(Arc<SessionEntry>, std::time::Duration, bool), ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "SessionNotFoundError",
            format!("session '{id}' not found"),
        )
    };
    let (entry, idle) = sessions.peek(id).ok_or_else(not_found)?;
    let own = entry.principal() == caller.id;
    if !own && !grants.allows(&Permission::SESSIONS_READ) {
        return Err(not_found());
    }
    Ok((
        entry,
        idle,
        own || grants.allows(&Permission::SESSIONS_ADMIN),
    ))
}

fn may_change(may: bool) -> Result<(), ApiError> {
    if may {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "PermissionDeniedError",
            format!(
                "requires permission `{}` to change another principal's session",
                Permission::SESSIONS_ADMIN
            ),
        ))
    }
}

/// Lists live MCP sessions: the caller's own, or everyone's with `sessions:read`.
#[utoipa::path(
    get,
    path = "/sessions",
    tag = "sessions",
    operation_id = "list_sessions",
    responses((status = 200, description = "Live sessions", body = SessionList)),
    security(("bearer" = ["self"]))
)]
pub async fn list_sessions(
    State(ctx): State<ApiContext>,
    Extension(caller): Extension<Principal>,
    Extension(grants): Extension<Arc<Grants>>,
) -> Json<SessionList> {
    let all = grants.allows(&Permission::SESSIONS_READ);
    let mut sessions: Vec<SessionView> = ctx
        .sessions
        .list()
        .into_iter()
        .filter(|(_, e, _)| all || e.principal() == caller.id)
        .map(|(id, e, idle)| view(&id, &e, idle))
        .collect();
    sessions.sort_by(|a, b| {
        a.started
            .cmp(&b.started)
            .then(a.session_id.cmp(&b.session_id))
    });
    Json(SessionList {
        total: sessions.len(),
        sessions,
    })
}

/// One session with its calls in flight and its last calls.
#[utoipa::path(
    get,
    path = "/sessions/{session_id}",
    tag = "sessions",
    operation_id = "get_session",
    params(("session_id" = String, Path, description = "The Mcp-Session-Id")),
    responses(
        (status = 200, description = "The session", body = SessionDetail),
        (status = 404, description = "No such session the caller may see", body = ErrorBody),
    ),
    security(("bearer" = ["self"]))
)]
pub async fn get_session(
    State(ctx): State<ApiContext>,
    Extension(caller): Extension<Principal>,
    Extension(grants): Extension<Arc<Grants>>,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    let (entry, idle, _) = visible(&ctx.sessions, &caller, &grants, &session_id)?;
    Ok(Json(SessionDetail {
        session: view(&session_id, &entry, idle),
        in_flight: entry
            .inflight_ids()
            .iter()
            .map(hangar_mcp::jsonrpc::id_text)
            .collect(),
        recent_calls: entry
            .recent_calls()
            .into_iter()
            .map(|c| RecentCallView {
                request_id: c.request_id,
                tool: c.tool,
                finished: time::OffsetDateTime::from(c.finished)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                duration_ms: c.duration_ms,
                outcome: c.outcome,
            })
            .collect(),
    }))
}

/// Ends a session: its next request gets 404, its streams close, its calls
/// in flight are cancelled and its resource subscriptions released.
#[utoipa::path(
    delete,
    path = "/sessions/{session_id}",
    tag = "sessions",
    operation_id = "end_session",
    params(("session_id" = String, Path, description = "The Mcp-Session-Id")),
    responses(
        (status = 200, description = "Ended", body = SessionEnded),
        (status = 403, description = "Another principal's session, without sessions:admin", body = ErrorBody),
        (status = 404, description = "No such session the caller may see", body = ErrorBody),
    ),
    security(("bearer" = ["self"]))
)]
pub async fn end_session(
    State(ctx): State<ApiContext>,
    Extension(caller): Extension<Principal>,
    Extension(grants): Extension<Arc<Grants>>,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Json<SessionEnded>, ApiError> {
    let (entry, _, may) = visible(&ctx.sessions, &caller, &grants, &session_id)?;
    may_change(may)?;
    entry.abort(None);
    crate::mcp_front::end_session(&ctx.sessions, &ctx.engine, &session_id);
    Ok(Json(SessionEnded {
        session_id,
        ended: true,
    }))
}

/// Aborts a session's calls in flight (one, by `request_id`, or all): the
/// provider gets `notifications/cancelled`, the caller a cancelled error;
/// the provider and the session go on.
#[utoipa::path(
    post,
    path = "/sessions/{session_id}/abort",
    tag = "sessions",
    operation_id = "abort_session",
    params(("session_id" = String, Path, description = "The Mcp-Session-Id")),
    request_body(content = Option<AbortRequest>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "What was aborted", body = Aborted),
        (status = 400, description = "Malformed JSON body", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Another principal's session, without sessions:admin", body = ErrorBody),
        (status = 404, description = "No such session the caller may see", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "A body that is not an abort request", body = ErrorBody),
    ),
    security(("bearer" = ["self"]))
)]
pub async fn abort_session(
    State(ctx): State<ApiContext>,
    Extension(caller): Extension<Principal>,
    Extension(grants): Extension<Arc<Grants>>,
    ApiPath(session_id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<Aborted>, ApiError> {
    let request: AbortRequest = crate::extract::optional_json(&body)?;
    let (entry, _, may) = visible(&ctx.sessions, &caller, &grants, &session_id)?;
    may_change(may)?;
    let aborted = entry
        .abort(request.request_id.as_ref())
        .iter()
        .map(hangar_mcp::jsonrpc::id_text)
        .collect();
    Ok(Json(Aborted {
        session_id,
        aborted,
    }))
}
