//! Maintenance: `POST /api/maintenance/compact`.

use axum::Json;
use axum::extract::State;
use hangar_runtime::Engine;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;

/// `POST /api/maintenance/compact` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompactRequest {
    /// The stream to compact, e.g. `provider:math` or `group:web`.
    #[serde(default)]
    pub stream_id: Option<String>,
}

/// What a compaction did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Compacted {
    /// The stream.
    pub stream_id: String,
    /// Events deleted (those the latest snapshot covers).
    pub events_deleted: u64,
}

/// `POST /api/maintenance/compact` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompactResponse {
    /// What was compacted.
    pub compacted: Compacted,
}

/// Deletes the events of a stream that precede (and are covered by) its
/// latest snapshot. Streams get a snapshot every `server.snapshot_every`
/// events. The audit trail (`audit`, `approvals`) is append-only: 409.
#[utoipa::path(
    post,
    path = "/maintenance/compact",
    tag = "maintenance",
    operation_id = "compact_stream",
    request_body = CompactRequest,
    responses(
        (status = 200, description = "Events before the latest snapshot deleted", body = CompactResponse),
        (status = 400, description = "Malformed JSON body", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 409, description = "The stream has no snapshot yet, or is append-only (`audit`, `approvals`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing or empty stream_id", body = ErrorBody),
    ),
    security(("bearer" = ["maintenance:write"]))
)]
pub async fn compact(
    State(engine): State<Engine>,
    ApiJson(req): ApiJson<CompactRequest>,
) -> Result<Json<CompactResponse>, ApiError> {
    let stream_id = req
        .stream_id
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::validation("stream_id: required and must not be empty"))?;
    match engine.compact(&stream_id).await? {
        Some(events_deleted) => Ok(Json(CompactResponse {
            compacted: Compacted {
                stream_id,
                events_deleted,
            },
        })),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "NoSnapshotError",
            format!(
                "stream {stream_id} has no snapshot; streams get one every server.snapshot_every events"
            ),
        )),
    }
}

/// The maintenance routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(compact))
}
