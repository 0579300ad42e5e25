//! REST handlers under `/api`, following the MCP Hangar REST reference.
//!
//! Every handler carries its `#[utoipa::path]`: paths are relative to `/api`
//! (the document nests them), and `app::api_router` registers the handlers
//! through `utoipa_axum::routes!`, so what is served is what is documented.
//! 401 (missing or invalid key) and 403 (Origin not allowed) come from the
//! middleware in front of every `/api` route and are added to every operation
//! by `openapi::document`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::{Extension, Json};
use hangar_core::{Grants, Permission, ProviderSpec, ProviderState};
use hangar_runtime::{Engine, HealthRecord, LogLine, ProviderSource, ProviderStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::schema;

/// `GET /api/providers?state=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only providers in this state (empty: all).
    #[param(value_type = Option<schema::ProviderState>)]
    state: Option<String>,
}

/// `GET /api/providers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    /// The providers, by id.
    #[schema(value_type = Vec<schema::ProviderStatus>)]
    pub providers: Vec<ProviderStatus>,
}

/// Lists providers, optionally only those in one state.
#[utoipa::path(
    get,
    path = "/providers",
    tag = "providers",
    operation_id = "list_providers",
    params(ListQuery),
    responses(
        (status = 200, description = "The providers", body = ProviderList),
        (status = 422, description = "`state` is not a provider state, or the query string is malformed", body = ErrorBody),
    ),
    security(("bearer" = ["providers:read"]))
)]
pub async fn list_providers(
    State(engine): State<Engine>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ProviderList>, ApiError> {
    let filter = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(parse_state(s)?),
    };
    let providers: Vec<_> = engine
        .statuses()
        .into_iter()
        .filter(|p| filter.is_none_or(|f| p.state == f))
        .collect();
    Ok(Json(ProviderList { providers }))
}

fn parse_state(s: &str) -> Result<ProviderState, ApiError> {
    match s {
        "cold" => Ok(ProviderState::Cold),
        "initializing" => Ok(ProviderState::Initializing),
        "ready" => Ok(ProviderState::Ready),
        "degraded" => Ok(ProviderState::Degraded),
        "dead" => Ok(ProviderState::Dead),
        other => Err(ApiError::validation(format!(
            "state: must be one of cold, initializing, ready, degraded, dead (got '{other}')"
        ))),
    }
}

/// `POST /api/providers` body: `provider_id` plus the provider spec fields.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateProvider {
    /// Unique id: letters, digits, `_` and `-`, starting with a letter or
    /// digit, at most 63 characters, without `__`.
    #[schema(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$")]
    provider_id: String,
    #[serde(flatten)]
    #[schema(value_type = schema::ProviderSpec)]
    spec: Value,
}

/// `POST /api/providers` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderCreated {
    /// The new provider's id.
    pub provider_id: String,
    /// Always true.
    pub created: bool,
}

/// Creates a provider (persisted; started on first use).
#[utoipa::path(
    post,
    path = "/providers",
    tag = "providers",
    operation_id = "create_provider",
    request_body = CreateProvider,
    responses(
        (status = 201, description = "Created", body = ProviderCreated,
            links(
                ("GetProvider" = (operation_id = "get_provider", parameters(("provider_id" = "$response.body#/provider_id")))),
                ("UpdateProvider" = (operation_id = "update_provider", parameters(("provider_id" = "$response.body#/provider_id")))),
                ("StartProvider" = (operation_id = "start_provider", parameters(("provider_id" = "$response.body#/provider_id")))),
                ("StopProvider" = (operation_id = "stop_provider", parameters(("provider_id" = "$response.body#/provider_id")))),
                ("ProviderTools" = (operation_id = "list_provider_tools", parameters(("provider_id" = "$response.body#/provider_id")))),
                ("ProviderHealth" = (operation_id = "get_provider_health", parameters(("provider_id" = "$response.body#/provider_id")))),
                ("ProviderLogs" = (operation_id = "get_provider_logs", parameters(("provider_id" = "$response.body#/provider_id")))),
                ("ToolHistory" = (operation_id = "get_tool_history", parameters(("provider_id" = "$response.body#/provider_id")))),
                ("DeleteProvider" = (operation_id = "delete_provider", parameters(("provider_id" = "$response.body#/provider_id")))),
            ),
        ),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 409, description = "A provider or group with this id exists", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid id or spec (the message names the field)", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["providers:define"]))
)]
pub async fn create_provider(
    State(engine): State<Engine>,
    ApiJson(body): ApiJson<CreateProvider>,
) -> Result<(StatusCode, Json<ProviderCreated>), ApiError> {
    let spec: ProviderSpec = serde_json::from_value(body.spec)
        .map_err(|e| ApiError::validation(format!("invalid provider spec: {e}")))?;
    engine
        .add_provider(&body.provider_id, spec, ProviderSource::Api)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ProviderCreated {
            provider_id: body.provider_id,
            created: true,
        }),
    ))
}

/// `PUT /api/providers/{id}` body: any provider spec fields, each replacing
/// the current one (`null` resets a field to its default). Fields that decide
/// what runs (mode, command, image, env, volumes, endpoint, headers,
/// container settings, scope) need `providers:define`; `policies` need
/// `auth:write`; the rest (description, timeouts, health checks) `providers:write`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = schema::ProviderSpec)]
pub struct UpdateProvider(serde_json::Map<String, Value>);

/// `PUT /api/providers/{id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderUpdated {
    /// The provider's id.
    pub provider_id: String,
    /// Always true.
    pub updated: bool,
    /// The running process must restart to pick up the change (env).
    pub restart_required: bool,
    /// Written to the store (false for providers from the config file).
    pub persisted: bool,
}

/// Changes some of a provider's settings.
#[utoipa::path(
    put,
    path = "/providers/{provider_id}",
    tag = "providers",
    operation_id = "update_provider",
    params(("provider_id" = String, Path, description = "Provider id")),
    request_body = UpdateProvider,
    responses(
        (status = 200, description = "Updated", body = ProviderUpdated),
        (status = 400, description = "The body is not valid JSON, or the path is malformed", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 403, description = "Changing what runs needs `providers:define`, policies `auth:write`", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Unknown field or invalid value", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["providers:write"]))
)]
pub async fn update_provider(
    State(engine): State<Engine>,
    Extension(grants): Extension<Arc<Grants>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(UpdateProvider(changes)): ApiJson<UpdateProvider>,
) -> Result<Json<ProviderUpdated>, ApiError> {
    let p = engine.provider(&id)?;
    let current = p.spec();
    let mut merged = match serde_json::to_value(&*current) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    for (field, value) in changes {
        if value.is_null() {
            merged.remove(&field);
        } else {
            merged.insert(field, value);
        }
    }
    let spec: ProviderSpec = serde_json::from_value(Value::Object(merged))
        .map_err(|e| ApiError::validation(format!("invalid provider spec: {e}")))?;
    if current.runs_differently_from(&spec) {
        crate::authz::require(
            &grants,
            &Permission::PROVIDERS_DEFINE,
            "change what a provider runs (its command, image, env, endpoint, ...)",
        )?;
    }
    if current.policies != spec.policies {
        crate::authz::require(
            &grants,
            &Permission::AUTH_WRITE,
            "change a provider's policies",
        )?;
    }
    let restart_required = engine.update_provider(&id, spec).await?;
    Ok(Json(ProviderUpdated {
        provider_id: id,
        updated: true,
        restart_required,
        persisted: p.source() == ProviderSource::Api,
    }))
}

/// What env values (and header values) are shown as.
pub(crate) const REDACTED: &str = "<redacted>";

pub(crate) fn redacted_spec(spec: &ProviderSpec) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    for field in ["env", "headers"] {
        if let Some(map) = v.get_mut(field).and_then(Value::as_object_mut) {
            for val in map.values_mut() {
                *val = Value::String(REDACTED.into());
            }
        }
    }
    v
}

/// One tool of a provider, with its own (not prefixed) name.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolInfo {
    /// The provider's own tool name.
    pub name: String,
    /// What the tool does.
    pub description: Option<String>,
    /// The tool's input JSON Schema.
    #[schema(value_type = Object)]
    pub parameters: Arc<serde_json::Map<String, Value>>,
}

fn tools_of(engine: &Engine, id: &str) -> Result<Vec<ToolInfo>, ApiError> {
    let p = engine.provider(id)?;
    Ok(p.listing()
        .map(|l| {
            l.tools
                .iter()
                .map(|t| ToolInfo {
                    name: t.name.to_string(),
                    description: t.description.as_ref().map(ToString::to_string),
                    parameters: t.input_schema.clone(),
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The `health` part of a provider's detail.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthSummary {
    /// Health derived from the state.
    #[schema(value_type = schema::HealthStatus)]
    pub status: &'static str,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// The cause of the last failure.
    pub last_error: Option<String>,
    /// Recent health checks, oldest first.
    #[schema(value_type = Vec<schema::HealthRecord>)]
    pub history: Vec<HealthRecord>,
}

/// `GET /api/providers/{id}`: the status plus tools, health and configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderDetail {
    #[serde(flatten)]
    #[schema(value_type = schema::ProviderStatus)]
    status: ProviderStatus,
    /// The provider's id (same as `provider`).
    provider_id: String,
    /// Its tools, from the last listing (empty if never started).
    tools: Vec<ToolInfo>,
    /// Health summary and check history.
    health: HealthSummary,
    /// The spec, env values redacted.
    #[schema(value_type = schema::ProviderSpec)]
    configuration: Value,
}

/// One provider in detail: status, tools, health, configuration.
#[utoipa::path(
    get,
    path = "/providers/{provider_id}",
    tag = "providers",
    operation_id = "get_provider",
    params(("provider_id" = String, Path, description = "Provider id")),
    responses(
        (status = 200, description = "The provider", body = ProviderDetail),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
    ),
    security(("bearer" = ["providers:read"]))
)]
pub async fn get_provider(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProviderDetail>, ApiError> {
    let p = engine.provider(&id)?;
    let status = p.status();
    let health = HealthSummary {
        status: status.health_status,
        consecutive_failures: status.consecutive_failures,
        last_error: status.last_error.clone(),
        history: p.health_history(),
    };
    Ok(Json(ProviderDetail {
        tools: tools_of(&engine, &id)?,
        configuration: redacted_spec(&p.spec()),
        status,
        provider_id: id,
        health,
    }))
}

/// `DELETE /api/providers/{id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderDeleted {
    /// The removed provider's id.
    pub provider_id: String,
    /// Always true.
    pub deleted: bool,
}

/// Stops a provider and removes it (and its stored definition).
#[utoipa::path(
    delete,
    path = "/providers/{provider_id}",
    tag = "providers",
    operation_id = "delete_provider",
    params(("provider_id" = String, Path, description = "Provider id")),
    responses(
        (status = 200, description = "Stopped and removed", body = ProviderDeleted),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 409, description = "The provider is a member of a group", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["providers:write"]))
)]
pub async fn delete_provider(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProviderDeleted>, ApiError> {
    engine.remove_provider(&id).await?;
    Ok(Json(ProviderDeleted {
        provider_id: id,
        deleted: true,
    }))
}

/// `POST /api/providers/{id}/start` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderStarted {
    /// The provider's id.
    pub provider_id: String,
    /// Whether this call started it (false: it was running already).
    pub started: bool,
    /// State before the call.
    #[schema(value_type = schema::ProviderState)]
    pub previous_state: ProviderState,
    /// State now.
    #[schema(value_type = schema::ProviderState)]
    pub state: ProviderState,
    /// Tools listed.
    pub tools_count: u64,
    /// Process id.
    pub pid: Option<i32>,
}

/// Starts a provider unless it is running, and waits until it is ready.
#[utoipa::path(
    post,
    path = "/providers/{provider_id}/start",
    tag = "providers",
    operation_id = "start_provider",
    params(("provider_id" = String, Path, description = "Provider id")),
    responses(
        (status = 200, description = "Running", body = ProviderStarted),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 409, description = "Never started, and the caller may not start it (`providers:start`); or removed while starting", body = ErrorBody),
        (status = 502, description = "The provider could not be started (spawn failed, timeout, MCP handshake failed)", body = ErrorBody),
    ),
    security(("bearer" = ["providers:start"]))
)]
pub async fn start_provider(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProviderStarted>, ApiError> {
    let p = engine.provider(&id)?;
    let before = p.state();
    p.start().await?;
    let status = p.status();
    Ok(Json(ProviderStarted {
        provider_id: id,
        // False when it was running already.
        started: !before.is_running(),
        previous_state: before,
        state: status.state,
        tools_count: u64::try_from(status.tools_count).unwrap_or(u64::MAX),
        pid: status.pid,
    }))
}

/// Stops a provider (if it runs) and starts it again, waiting until it is
/// ready: its calls in flight end, its clients' sessions stay.
#[utoipa::path(
    post,
    path = "/providers/{provider_id}/restart",
    tag = "providers",
    operation_id = "restart_provider",
    params(("provider_id" = String, Path, description = "Provider id")),
    responses(
        (status = 200, description = "Running again", body = ProviderStarted),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 409, description = "Removed while restarting", body = ErrorBody),
        (status = 502, description = "The provider could not be started (spawn failed, timeout, MCP handshake failed)", body = ErrorBody),
    ),
    security(("bearer" = ["providers:start"]))
)]
pub async fn restart_provider(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProviderStarted>, ApiError> {
    let p = engine.provider(&id)?;
    let before = p.stop(false).await;
    p.start().await?;
    let status = p.status();
    Ok(Json(ProviderStarted {
        provider_id: id,
        started: true,
        previous_state: before,
        state: status.state,
        tools_count: u64::try_from(status.tools_count).unwrap_or(u64::MAX),
        pid: status.pid,
    }))
}

/// `POST /api/providers/{id}/abort` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortCalls {
    /// The client's JSON-RPC id of the one call to abort (as text; a call a
    /// client sent without an id shows as `#<n>`); none: every call in flight.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// `POST /api/providers/{id}/abort` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderAborted {
    /// The provider's id.
    pub provider_id: String,
    /// The client request ids of the calls cancelled.
    pub aborted: Vec<String>,
}

/// Aborts a provider's calls in flight (one, by `request_id`, or all): the
/// provider gets `notifications/cancelled` for each, their callers a
/// cancelled error; the provider keeps running.
#[utoipa::path(
    post,
    path = "/providers/{provider_id}/abort",
    tag = "providers",
    operation_id = "abort_provider_calls",
    params(("provider_id" = String, Path, description = "Provider id")),
    request_body(content = Option<AbortCalls>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "What was aborted", body = ProviderAborted),
        (status = 400, description = "Malformed JSON body or path", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "A body that is not an abort request", body = ErrorBody),
    ),
    security(("bearer" = ["providers:start"]))
)]
pub async fn abort_provider_calls(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<ProviderAborted>, ApiError> {
    let request: AbortCalls = crate::extract::optional_json(&body)?;
    let p = engine.provider(&id)?;
    let aborted = p.abort(request.request_id.as_deref());
    Ok(Json(ProviderAborted {
        provider_id: id,
        aborted,
    }))
}

/// `POST /api/providers/{id}/stop` body (optional; an empty body is fine).
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    /// Why (echoed back; default `user_request`).
    reason: Option<String>,
}

/// `POST /api/providers/{id}/stop` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderStopped {
    /// The provider's id.
    pub provider_id: String,
    /// Whether this call stopped it (false: it was not running).
    pub stopped: bool,
    /// State before the call.
    #[schema(value_type = schema::ProviderState)]
    pub previous_state: ProviderState,
    /// State now.
    #[schema(value_type = schema::ProviderState)]
    pub state: ProviderState,
    /// The reason given, or `user_request`.
    pub reason: String,
}

/// Parses the optional stop body: empty (or `null`) is the default, bad JSON
/// is a 400, JSON of the wrong shape a 422.
fn stop_body(body: Result<Bytes, BytesRejection>) -> Result<StopBody, ApiError> {
    let body = body.map_err(|e| {
        let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "PayloadTooLarge"
        } else {
            "BadRequest"
        };
        ApiError::new(e.status(), kind, e.body_text())
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(StopBody::default());
    }
    serde_json::from_slice::<Option<StopBody>>(&body)
        .map(Option::unwrap_or_default)
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::validation(format!("invalid body: {e}")),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("invalid JSON body: {e}"),
            ),
        })
}

/// Stops a provider (it starts again on next use).
#[utoipa::path(
    post,
    path = "/providers/{provider_id}/stop",
    tag = "providers",
    operation_id = "stop_provider",
    params(("provider_id" = String, Path, description = "Provider id")),
    request_body(
        content = Option<StopBody>,
        content_type = "application/json",
        description = "Optional; the content type is not checked",
    ),
    responses(
        (status = 200, description = "Stopped", body = ProviderStopped),
        (status = 400, description = "The body is not valid JSON, or the path is malformed", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Unknown field or wrong type in the body", body = ErrorBody),
    ),
    security(("bearer" = ["providers:start"]))
)]
pub async fn stop_provider(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ProviderStopped>, ApiError> {
    let body = stop_body(body)?;
    let reason = body.reason.unwrap_or_else(|| "user_request".to_owned());
    let p = engine.provider(&id)?;
    let before = p.stop(false).await;
    Ok(Json(ProviderStopped {
        provider_id: id,
        // False when it was not running.
        stopped: before.is_running(),
        previous_state: before,
        state: p.state(),
        reason,
    }))
}

/// `GET /api/providers/{id}/tools` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderTools {
    /// The provider's id.
    pub provider_id: String,
    /// Its tools.
    pub tools: Vec<ToolInfo>,
}

/// A provider's tools. A provider never listed is started once to list
/// them, which needs `providers:start` besides `providers:read` (409 without).
#[utoipa::path(
    get,
    path = "/providers/{provider_id}/tools",
    tag = "providers",
    operation_id = "list_provider_tools",
    params(("provider_id" = String, Path, description = "Provider id")),
    responses(
        (status = 200, description = "The tools", body = ProviderTools),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 409, description = "Never started, and the caller may not start it (`providers:start`); or removed while starting", body = ErrorBody),
        (status = 502, description = "The provider could not be started to list its tools", body = ErrorBody),
    ),
    security(("bearer" = ["providers:read"]))
)]
pub async fn provider_tools(
    State(engine): State<Engine>,
    Extension(grants): Extension<Arc<Grants>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProviderTools>, ApiError> {
    let p = engine.provider(&id)?;
    if p.listing().is_none() {
        // Never started: start it once so its tools are known, if the caller
        // may start providers (reading must not run anything).
        if !grants.allows(&Permission::PROVIDERS_START) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ProviderNotStartedError",
                format!(
                    "provider '{id}' has never run, so its tools are unknown; starting it \
                     needs the permission `providers:start`"
                ),
            ));
        }
        p.start().await?;
    }
    Ok(Json(ProviderTools {
        tools: tools_of(&engine, &id)?,
        provider_id: id,
    }))
}

/// `GET /api/providers/{id}/health` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderHealth {
    /// The provider's id.
    pub provider_id: String,
    /// Lifecycle state.
    #[schema(value_type = schema::ProviderState)]
    pub state: ProviderState,
    /// Health derived from the state.
    #[schema(value_type = schema::HealthStatus)]
    pub health_status: &'static str,
    /// True while a connection is up.
    pub alive: bool,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Restarts so far.
    pub restart_count: u64,
    /// The cause of the last failure.
    pub last_error: Option<String>,
    /// Recent health checks, oldest first.
    #[schema(value_type = Vec<schema::HealthRecord>)]
    pub history: Vec<HealthRecord>,
}

/// A provider's health and health check history.
#[utoipa::path(
    get,
    path = "/providers/{provider_id}/health",
    tag = "providers",
    operation_id = "get_provider_health",
    params(("provider_id" = String, Path, description = "Provider id")),
    responses(
        (status = 200, description = "Health", body = ProviderHealth),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
    ),
    security(("bearer" = ["providers:read"]))
)]
pub async fn provider_health(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProviderHealth>, ApiError> {
    let p = engine.provider(&id)?;
    let s = p.status();
    Ok(Json(ProviderHealth {
        provider_id: id,
        state: s.state,
        health_status: s.health_status,
        alive: s.alive,
        consecutive_failures: s.consecutive_failures,
        restart_count: s.restart_count,
        last_error: s.last_error,
        history: p.health_history(),
    }))
}

/// `GET /api/providers/{id}/logs?lines=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// How many recent lines (1 to 1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    lines: Option<String>,
}

/// `GET /api/providers/{id}/logs` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderLogs {
    /// The lines, oldest first.
    #[schema(value_type = Vec<schema::LogLine>)]
    pub logs: Vec<LogLine>,
    /// The provider's id.
    pub provider_id: String,
    /// How many lines there are.
    pub count: u64,
    /// Lines dropped so far because the provider wrote more than
    /// `server.log_lines_per_s`.
    pub dropped: u64,
}

pub(crate) fn ranged(
    name: &str,
    value: Option<&str>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ApiError> {
    match value {
        None => Ok(default),
        Some(s) => match s.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ApiError::validation(format!(
                "{name}: must be an integer between {} and {} (got '{s}')",
                range.start(),
                range.end()
            ))),
        },
    }
}

/// A provider's recent stderr lines.
#[utoipa::path(
    get,
    path = "/providers/{provider_id}/logs",
    tag = "providers",
    operation_id = "get_provider_logs",
    params(("provider_id" = String, Path, description = "Provider id"), LogsQuery),
    responses(
        (status = 200, description = "The lines", body = ProviderLogs),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 422, description = "`lines` is not an integer from 1 to 1000, or the query string is malformed", body = ErrorBody),
    ),
    security(("bearer" = ["providers:read"]))
)]
pub async fn provider_logs(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Result<Json<ProviderLogs>, ApiError> {
    let lines =
        usize::try_from(ranged("lines", q.lines.as_deref(), 100, 1..=1000)?).unwrap_or(1000);
    let p = engine.provider(&id)?;
    let logs = p.logs(lines);
    Ok(Json(ProviderLogs {
        count: u64::try_from(logs.len()).unwrap_or(u64::MAX),
        dropped: p.logs_dropped(),
        logs,
        provider_id: id,
    }))
}

/// `GET /api/providers/{id}/tools/history?limit=&from_position=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Most records to return (1 to 500, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500, default = 100)]
    limit: Option<String>,
    /// Only records after this store position (default 0).
    #[param(value_type = Option<u64>, minimum = 0, default = 0)]
    from_position: Option<String>,
}

/// `GET /api/providers/{id}/tools/history` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolHistory {
    /// The provider's id.
    pub provider_id: String,
    /// Invocations, oldest first.
    #[schema(value_type = Vec<schema::ToolInvocation>)]
    pub history: Vec<Value>,
    /// How many invocation records the store holds for the provider.
    pub total: u64,
}

/// A provider's tool invocation history (never argument values).
#[utoipa::path(
    get,
    path = "/providers/{provider_id}/tools/history",
    tag = "providers",
    operation_id = "get_tool_history",
    params(("provider_id" = String, Path, description = "Provider id"), HistoryQuery),
    responses(
        (status = 200, description = "The history", body = ToolHistory),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 422, description = "`limit` or `from_position` out of range, or the query string is malformed", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["providers:read"]))
)]
pub async fn provider_history(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<ToolHistory>, ApiError> {
    let limit = ranged("limit", q.limit.as_deref(), 100, 1..=500)?;
    let from = ranged("from_position", q.from_position.as_deref(), 0, 0..=u64::MAX)?;
    let (records, total) = engine
        .tool_history(&id, from, usize::try_from(limit).unwrap_or(500))
        .await?;
    let history: Vec<Value> = records
        .into_iter()
        .map(|e| {
            let mut v = e.payload;
            if let Some(obj) = v.as_object_mut() {
                obj.insert("position".into(), json!(e.position));
                obj.insert("timestamp".into(), json!(e.time));
            }
            v
        })
        .collect();
    Ok(Json(ToolHistory {
        provider_id: id,
        history,
        total,
    }))
}

/// `GET /api/system` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemInfo {
    /// The figures.
    pub system: SystemStats,
}

/// Server-wide figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemStats {
    /// Providers known.
    pub total_providers: u64,
    /// How many providers are in each state (states with none are left out).
    pub providers_by_state: BTreeMap<String, u64>,
    /// Tools exposed on `/mcp`.
    pub total_tools: u64,
    /// Tool calls since start.
    pub total_tool_calls: u64,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// Hangar's version.
    pub version: String,
    /// Names several tools or prompts wanted (each got another name; none
    /// was dropped), and resource URIs several providers serve.
    pub name_collisions: Vec<NameCollision>,
}

/// Several tools (or prompts) that wanted the same name, or several providers
/// serving the same resource URI.
#[derive(Debug, Serialize, ToSchema)]
pub struct NameCollision {
    /// `tool`, `prompt` or `resource`.
    pub kind: &'static str,
    /// The name (or URI) they all wanted.
    pub name: String,
    /// Who wanted it, as `provider/own name` (resources: the provider ids; the
    /// first one serves reads).
    pub members: Vec<String>,
}

/// Server-wide figures: providers by state, tools, calls, uptime, version.
#[utoipa::path(
    get,
    path = "/system",
    tag = "system",
    operation_id = "get_system_info",
    responses(
        (status = 200, description = "The figures", body = SystemInfo),
    ),
    security(("bearer" = ["system:read"]))
)]
pub async fn system(State(engine): State<Engine>) -> Json<SystemInfo> {
    let statuses = engine.statuses();
    let catalog = engine.catalog_snapshot();
    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    for s in &statuses {
        *by_state.entry(s.state.to_string()).or_default() += 1;
    }
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Json(SystemInfo {
        system: SystemStats {
            total_providers: count(statuses.len()),
            providers_by_state: by_state,
            total_tools: count(catalog.tools().len()),
            total_tool_calls: engine.calls_total(),
            uptime_seconds: engine.uptime_seconds(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            name_collisions: name_collisions(&catalog),
        },
    })
}

/// Every name collision of `catalog`.
fn name_collisions(catalog: &hangar_mcp::Catalog) -> Vec<NameCollision> {
    let named = |kind, c: &hangar_core::naming::Collision| NameCollision {
        kind,
        name: c.exposed.clone(),
        members: c
            .tools
            .iter()
            .map(|t| format!("{}/{}", t.provider, t.tool))
            .collect(),
    };
    let tools = catalog.tool_collisions().iter().map(|c| named("tool", c));
    let prompts = catalog
        .prompt_collisions()
        .iter()
        .map(|c| named("prompt", c));
    let resources = catalog.resource_collisions().iter().map(|c| NameCollision {
        kind: "resource",
        name: c.uri.clone(),
        members: c.providers.clone(),
    });
    tools.chain(prompts).chain(resources).collect()
}
