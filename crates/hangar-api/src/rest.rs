//! REST handlers under `/api`, following the MCP Hangar REST reference.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hangar_core::{ProviderSpec, ProviderState};
use hangar_runtime::{Engine, ProviderSource};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::ApiJson;

/// `GET /api/providers?state=`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
}

pub async fn list_providers(
    State(engine): State<Engine>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(parse_state(s)?),
    };
    let providers: Vec<_> = engine
        .statuses()
        .into_iter()
        .filter(|p| filter.is_none_or(|f| p.state == f))
        .collect();
    Ok(Json(json!({ "providers": providers })))
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
#[derive(Debug, Deserialize)]
pub struct CreateProvider {
    provider_id: String,
    #[serde(flatten)]
    spec: Value,
}

pub async fn create_provider(
    State(engine): State<Engine>,
    ApiJson(body): ApiJson<CreateProvider>,
) -> Result<impl IntoResponse, ApiError> {
    let spec: ProviderSpec = serde_json::from_value(body.spec)
        .map_err(|e| ApiError::validation(format!("invalid provider spec: {e}")))?;
    engine
        .add_provider(&body.provider_id, spec, ProviderSource::Api)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "provider_id": body.provider_id, "created": true })),
    ))
}

/// `PUT /api/providers/{id}` body (all optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProvider {
    description: Option<String>,
    env: Option<BTreeMap<String, String>>,
    idle_ttl_s: Option<u64>,
    health_check_interval_s: Option<u64>,
}

pub async fn update_provider(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateProvider>,
) -> Result<Json<Value>, ApiError> {
    let p = engine.provider(&id)?;
    let mut spec = (*p.spec()).clone();
    if let Some(d) = body.description {
        spec.description = Some(d);
    }
    if let Some(env) = body.env {
        spec.env = env;
    }
    if let Some(t) = body.idle_ttl_s {
        spec.idle_ttl_s = t;
    }
    if let Some(t) = body.health_check_interval_s {
        spec.health_check_interval_s = t;
    }
    let restart_required = engine.update_provider(&id, spec).await?;
    Ok(Json(json!({
        "provider_id": id,
        "updated": true,
        "restart_required": restart_required,
        "persisted": p.source() == ProviderSource::Api,
    })))
}

fn redacted_spec(spec: &ProviderSpec) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    if let Some(env) = v.get_mut("env").and_then(Value::as_object_mut) {
        for val in env.values_mut() {
            *val = Value::String("<redacted>".into());
        }
    }
    v
}

fn tools_json(engine: &Engine, id: &str) -> Result<Vec<Value>, ApiError> {
    let p = engine.provider(id)?;
    Ok(p.listing()
        .map(|l| {
            l.tools
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.input_schema,
                    })
                })
                .collect()
        })
        .unwrap_or_default())
}

pub async fn get_provider(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = engine.provider(&id)?;
    let status = p.status();
    let mut v = serde_json::to_value(&status).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("provider_id".into(), json!(id));
        obj.insert("tools".into(), json!(tools_json(&engine, &id)?));
        obj.insert(
            "health".into(),
            json!({
                "status": status.health_status,
                "consecutive_failures": status.consecutive_failures,
                "last_error": status.last_error,
                "history": p.health_history(),
            }),
        );
        obj.insert("configuration".into(), redacted_spec(&p.spec()));
    }
    Ok(Json(v))
}

pub async fn delete_provider(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    engine.remove_provider(&id).await?;
    Ok(Json(json!({ "provider_id": id, "deleted": true })))
}

pub async fn start_provider(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = engine.provider(&id)?;
    let before = p.state();
    p.start().await?;
    let status = p.status();
    Ok(Json(json!({
        "provider_id": id,
        "started": true,
        "previous_state": before,
        "state": status.state,
        "tools_count": status.tools_count,
        "pid": status.pid,
    })))
}

/// `POST /api/providers/{id}/stop` body.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    reason: Option<String>,
}

pub async fn stop_provider(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: StopBody = if body.iter().all(u8::is_ascii_whitespace) {
        StopBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("invalid JSON body: {e}"),
            )
        })?
    };
    let reason = body.reason.unwrap_or_else(|| "user_request".to_owned());
    let p = engine.provider(&id)?;
    let before = p.stop(false).await;
    Ok(Json(json!({
        "provider_id": id,
        "stopped": true,
        "previous_state": before,
        "state": p.state(),
        "reason": reason,
    })))
}

pub async fn provider_tools(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = engine.provider(&id)?;
    if p.listing().is_none() {
        // Never started: start it once so its tools are known.
        p.start().await?;
    }
    Ok(Json(
        json!({ "provider_id": id, "tools": tools_json(&engine, &id)? }),
    ))
}

pub async fn provider_health(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = engine.provider(&id)?;
    let s = p.status();
    Ok(Json(json!({
        "provider_id": id,
        "state": s.state,
        "health_status": s.health_status,
        "alive": s.alive,
        "consecutive_failures": s.consecutive_failures,
        "restart_count": s.restart_count,
        "last_error": s.last_error,
        "history": p.health_history(),
    })))
}

/// `GET /api/providers/{id}/logs?lines=`.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    lines: Option<String>,
}

pub async fn provider_logs(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<Value>, ApiError> {
    let lines =
        usize::try_from(ranged("lines", q.lines.as_deref(), 100, 1..=1000)?).unwrap_or(1000);
    let p = engine.provider(&id)?;
    let logs = p.logs(lines);
    Ok(Json(
        json!({ "logs": logs, "provider_id": id, "count": logs.len() }),
    ))
}

/// `GET /api/providers/{id}/tools/history?limit=&from_position=`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    limit: Option<String>,
    from_position: Option<String>,
}

fn ranged(
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

pub async fn provider_history(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({ "provider_id": id, "history": history, "total": total }),
    ))
}

/// `GET /api/system`.
pub async fn system(State(engine): State<Engine>) -> Json<Value> {
    let statuses = engine.statuses();
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    for s in &statuses {
        *by_state.entry(s.state.to_string()).or_default() += 1;
    }
    Json(json!({
        "system": {
            "total_providers": statuses.len(),
            "providers_by_state": by_state,
            "total_tools": engine.catalog_snapshot().tools().len(),
            "total_tool_calls": engine.calls_total(),
            "uptime_seconds": engine.uptime_seconds(),
            "version": env!("CARGO_PKG_VERSION"),
        }
    }))
}
