//! Metrics and alerts: `GET /metrics` (Prometheus/OpenMetrics text),
//! `GET /api/observability/metrics` (`{prometheus_text, summary}`),
//! `GET /api/observability/metrics/history?minutes=` and
//! `GET /api/observability/alerts?level=`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use hangar_runtime::{Alert, AlertLevel, Engine};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;

/// The content type of OpenMetrics text (Prometheus scrapes it).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /api/observability/metrics` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsAnswer {
    /// Every metric as OpenMetrics text (what `GET /metrics` serves).
    pub prometheus_text: String,
    /// The headline numbers: `tool_calls_total`, `tool_call_errors_total`,
    /// `providers_total`, `providers_ready` (and the other states),
    /// `groups_total`, `groups_below_min_healthy`, `breakers_open`,
    /// `sessions_active`, `approvals_pending`, `questions_pending`,
    /// `auth_failures_total`, `rate_limited_total`,
    /// `event_writer_queue_depth`, `events_dropped_total`, `alerts_active`,
    /// `uptime_seconds`.
    pub summary: BTreeMap<String, f64>,
}

/// Metrics as Prometheus text plus a summary.
#[utoipa::path(
    get,
    path = "/observability/metrics",
    tag = "observability",
    operation_id = "get_metrics",
    responses((status = 200, description = "The metrics", body = MetricsAnswer)),
    security(("bearer" = ["system:read"]))
)]
pub async fn metrics(State(engine): State<Engine>) -> Json<MetricsAnswer> {
    let prometheus_text = engine.render_metrics().await;
    let summary = engine
        .metrics_summary()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    Json(MetricsAnswer {
        prometheus_text,
        summary,
    })
}

/// Every metric as OpenMetrics text, for Prometheus (`bearer_token` or
/// `authorization` in its scrape config; a key with `system:read`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "observability",
    operation_id = "scrape_metrics",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)),
    security(("bearer" = ["system:read"]))
)]
pub async fn scrape(State(engine): State<Engine>) -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, OPENMETRICS)],
        engine.render_metrics().await,
    )
}

/// `GET /api/observability/metrics/history` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The last this many minutes (1 up to `server.metrics_history_minutes`,
    /// default 15).
    #[param(value_type = Option<u32>, minimum = 1, default = 15)]
    pub minutes: Option<String>,
}

/// One sample.
#[derive(Debug, Serialize, ToSchema)]
pub struct SampleBody {
    /// RFC 3339.
    pub timestamp: String,
    /// The summary's values then, plus `calls_per_s` since the sample before.
    pub values: BTreeMap<String, f64>,
}

/// `GET /api/observability/metrics/history` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryAnswer {
    /// The minutes asked for.
    pub minutes: u32,
    /// Seconds between samples.
    pub interval_s: u64,
    /// Samples, oldest first.
    pub samples: Vec<SampleBody>,
}

/// Periodic snapshots of the metric summary, for charts (one every 10 s,
/// kept for `server.metrics_history_minutes`).
#[utoipa::path(
    get,
    path = "/observability/metrics/history",
    tag = "observability",
    operation_id = "get_metrics_history",
    params(HistoryQuery),
    responses(
        (status = 200, description = "The samples", body = HistoryAnswer),
        (status = 422, description = "`minutes` out of range", body = ErrorBody),
    ),
    security(("bearer" = ["system:read"]))
)]
pub async fn metrics_history(
    State(engine): State<Engine>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let kept = engine.metrics().history_minutes();
    let minutes = crate::rest::ranged(
        "minutes",
        q.minutes.as_deref(),
        15.min(u64::from(kept)),
        1..=u64::from(kept),
    )?;
    let minutes = u32::try_from(minutes).unwrap_or(kept);
    let samples = engine
        .metrics_history(minutes)
        .into_iter()
        .map(|s| SampleBody {
            timestamp: s.timestamp,
            values: s
                .values
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        })
        .collect();
    Ok(Json(HistoryAnswer {
        minutes,
        interval_s: hangar_runtime::metrics::SAMPLE_EVERY.as_secs(),
        samples,
    }))
}

/// `GET /api/observability/alerts` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// Only this level: `critical`, `warning` or `info`.
    pub level: Option<String>,
    /// At most this many (1 to 1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

/// `GET /api/observability/alerts` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    /// Alerts, newest first.
    #[schema(value_type = Vec<Object>)]
    pub alerts: Vec<Alert>,
    /// How many match in all.
    pub total: u64,
}

/// Alert history, newest first: provider dead, restart loop, breaker
/// open, group below `min_healthy`, repeated failed keys, event writer
/// behind; and, at `info`, each condition clearing. Each alert has `id`,
/// `level`, `kind`, `subject`, `message`, `cause` and `time`.
#[utoipa::path(
    get,
    path = "/observability/alerts",
    tag = "observability",
    operation_id = "get_alerts",
    params(AlertsQuery),
    responses(
        (status = 200, description = "The alerts", body = AlertList),
        (status = 422, description = "Unknown `level` or bad `limit`", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["system:read"]))
)]
pub async fn alerts(
    State(engine): State<Engine>,
    ApiQuery(q): ApiQuery<AlertsQuery>,
) -> Result<Json<AlertList>, ApiError> {
    let level = q
        .level
        .as_deref()
        .map(|l| {
            l.parse::<AlertLevel>()
                .map_err(|m| ApiError::validation(format!("level: {m}")))
        })
        .transpose()?;
    let limit = crate::rest::ranged("limit", q.limit.as_deref(), 100, 1..=1000)?;
    let (alerts, total) = engine
        .alerts(level, usize::try_from(limit).unwrap_or(1000))
        .await?;
    Ok(Json(AlertList { alerts, total }))
}

/// The `/api` observability routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(metrics_history))
        .routes(routes!(alerts))
}

/// `GET /metrics`, outside `/api` (documented with `/mcp`).
pub fn scrape_router() -> OpenApiRouter<Engine> {
    OpenApiRouter::new().routes(routes!(scrape))
}
