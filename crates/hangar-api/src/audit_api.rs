//! The audit log, read side: `GET /api/observability/audit` and
//! `GET /api/observability/security`.
//!
//! Records are domain events on the `audit` stream (see
//! [`crate::authz`]): `AdminChange` (every mutating `/api` request),
//! `SecurityEvent` (failed auth, denied access, rate limiting) and
//! `ToolCallAudited` (every tool call, from the MCP path). None carries
//! argument or secret values. Reading first flushes the event writer, so every
//! record of a request that has been answered is there.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use hangar_runtime::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authz::{AUDIT_STREAM, SECURITY_EVENT};
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;

/// Records returned when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// Largest `limit`.
const MAX_LIMIT: usize = 1000;

/// One audit record: where and when, its type, and the event's fields
/// (`AdminChange`: principal, method, path, status; `SecurityEvent`: kind,
/// principal, client, method, path, detail; `ToolCallAudited`: principal,
/// provider, tool, verdict, outcome, duration_ms, arguments_digest).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    /// Position in the event store (newer is larger).
    pub position: u64,
    /// RFC 3339.
    pub time: String,
    /// `AdminChange`, `SecurityEvent` or `ToolCallAudited`.
    pub event_type: String,
    /// The event's fields.
    #[serde(flatten)]
    pub fields: BTreeMap<String, Value>,
}

/// `GET /api/observability/audit` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// Matching records, newest first, at most `limit`.
    pub records: Vec<AuditRecord>,
    /// How many records match in all.
    pub total: u64,
}

/// `GET /api/observability/security` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityList {
    /// `SecurityEvent` records, newest first, at most `limit`.
    pub events: Vec<AuditRecord>,
    /// How many there are in all.
    pub total: u64,
}

/// `GET /api/observability/audit` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only tool calls (resource reads, prompt gets) of this provider.
    pub provider_id: Option<String>,
    /// Only this type: `ToolCallAudited`, `ResourceReadAudited`,
    /// `PromptGetAudited`, `AdminChange`, `SecurityEvent` or `AuditPruned`
    /// (what retention removed).
    pub event_type: Option<String>,
    /// At most this many records (1 to 1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// `GET /api/observability/security` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SecurityQuery {
    /// At most this many events (1 to 1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

fn parse_limit(limit: Option<&str>) -> Result<usize, ApiError> {
    let Some(s) = limit else {
        return Ok(DEFAULT_LIMIT);
    };
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::validation(format!(
                "limit: must be an integer from 1 to {MAX_LIMIT}, got {s:?}"
            ))
        })
}

/// Every audit record type (tool calls, resource reads, prompt gets, admin
/// changes, security events, retention's own records).
const TYPES: [&str; 6] = hangar_runtime::events::AUDIT_EVENT_TYPES;

async fn read(
    engine: &Engine,
    types: Vec<String>,
    provider: Option<String>,
    limit: usize,
) -> Result<(Vec<AuditRecord>, u64), ApiError> {
    let Some(store) = engine.store() else {
        return Ok((Vec::new(), 0));
    };
    engine.events().flush().await;
    let (events, total) = store
        .events_by_types(
            AUDIT_STREAM,
            types,
            provider.map(|p| ("provider", p)),
            limit,
        )
        .await
        .map_err(hangar_runtime::RuntimeError::Store)?;
    let records = events
        .into_iter()
        .map(|(event_type, e)| AuditRecord {
            position: e.position,
            time: e.time,
            event_type,
            fields: match e.payload {
                Value::Object(map) => map
                    .into_iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "position" | "time" | "event_type"))
                    .collect(),
                other => BTreeMap::from([("payload".to_owned(), other)]),
            },
        })
        .collect();
    Ok((records, total))
}

/// The audit log: tool calls, admin changes and security events, newest
/// first.
#[utoipa::path(
    get,
    path = "/observability/audit",
    tag = "observability",
    operation_id = "get_audit_log",
    params(AuditQuery),
    responses(
        (status = 200, description = "Matching records", body = AuditList),
        (status = 422, description = "Bad `limit` or `event_type` (the message names it)", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["audit:read"]))
)]
pub async fn audit_log(
    State(engine): State<Engine>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let limit = parse_limit(q.limit.as_deref())?;
    let types = match q.event_type.as_deref() {
        None => TYPES.iter().map(|t| (*t).to_owned()).collect(),
        Some(t) if TYPES.contains(&t) => vec![t.to_owned()],
        Some(t) => {
            return Err(ApiError::validation(format!(
                "event_type: must be one of {}, got {t:?}",
                TYPES.join(", ")
            )));
        }
    };
    let (records, total) = read(&engine, types, q.provider_id, limit).await?;
    Ok(Json(AuditList { records, total }))
}

/// Security events (failed authentication, denied access, rate limiting),
/// newest first.
#[utoipa::path(
    get,
    path = "/observability/security",
    tag = "observability",
    operation_id = "get_security_events",
    params(SecurityQuery),
    responses(
        (status = 200, description = "The events", body = SecurityList),
        (status = 422, description = "Bad `limit`", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["audit:read"]))
)]
pub async fn security_events(
    State(engine): State<Engine>,
    ApiQuery(q): ApiQuery<SecurityQuery>,
) -> Result<Json<SecurityList>, ApiError> {
    let limit = parse_limit(q.limit.as_deref())?;
    let (events, total) = read(&engine, vec![SECURITY_EVENT.to_owned()], None, limit).await?;
    Ok(Json(SecurityList { events, total }))
}

/// The audit routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(audit_log))
        .routes(routes!(security_events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(parse_limit(Some("1000")).ok(), Some(1000));
        for bad in ["0", "1001", "x", "-1"] {
            let e = parse_limit(Some(bad)).err().map(|e| e.message);
            assert!(e.is_some_and(|m| m.starts_with("limit:")), "{bad}");
        }
    }
}
