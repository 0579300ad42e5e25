//! The HTTP application: routes, middleware, and the MCP endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hangar_mcp::AggregatingServer;
use hangar_runtime::Engine;
use http::StatusCode;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::auth::{KeyRing, require_key};
use crate::error::ApiError;
use crate::{groups, rest};

/// Which browser origins may call Hangar.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    extra: Vec<String>,
}

impl OriginPolicy {
    /// Localhost origins (any port) plus `extra` exact origins; `*` allows all.
    pub fn new(extra: Vec<String>) -> Self {
        Self { extra }
    }

    /// Whether `origin` may call.
    pub fn allows(&self, origin: &str) -> bool {
        if self
            .extra
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        {
            return true;
        }
        let rest = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        let Some(rest) = rest else { return false };
        let host = if let Some(v6) = rest.strip_prefix('[') {
            v6.split(']').next().map(|h| format!("[{h}]"))
        } else {
            rest.split(':').next().map(str::to_owned)
        };
        let Some(host) = host else { return false };
        let port_ok = match rest.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => p.parse::<u16>().is_ok(),
            _ => true,
        };
        port_ok
            && (host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "[::1]")
            && !rest.contains('/')
    }

    fn rmcp_list(&self) -> Vec<String> {
        let mut list: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .flat_map(|h| [format!("http://{h}:*"), format!("https://{h}:*")])
            .collect();
        list.extend(self.extra.iter().cloned());
        list
    }
}

/// Everything the HTTP layer needs.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// API keys.
    pub keys: KeyRing,
    /// Allowed origins.
    pub origins: OriginPolicy,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Cancelled at shutdown: ends MCP sessions and streams.
    pub shutdown: CancellationToken,
    /// Where the server listens (decides the Host allow-list).
    pub listen: Option<SocketAddr>,
}

async fn check_origin(State(origins): State<OriginPolicy>, req: Request, next: Next) -> Response {
    if let Some(origin) = req.headers().get(http::header::ORIGIN) {
        let ok = origin.to_str().is_ok_and(|o| origins.allows(o));
        if !ok {
            return ApiError::new(StatusCode::FORBIDDEN, "Forbidden", "origin not allowed")
                .into_response();
        }
    }
    next.run(req).await
}

async fn check_length(State(max): State<usize>, req: Request, next: Next) -> Response {
    let too_big = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64);
    if too_big {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("request body larger than {max} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

/// rmcp answers some malformed `/mcp` requests with a plain-text 4xx; clients
/// get a JSON-RPC error body instead (same status).
async fn jsonrpc_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"));
    if !status.is_client_error() || is_json {
        return resp;
    }
    let text = match axum::body::to_bytes(resp.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_owned(),
    };
    let code = if text.contains("deserialize") || text.contains("parse") {
        -32700
    } else {
        -32600
    };
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": text },
    });
    (status, axum::Json(body)).into_response()
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "ok": true, "timestamp": hangar_runtime::now_rfc3339() }))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::route_not_found(req.uri().path())
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "method not allowed",
    )
}

/// The `/mcp` Streamable HTTP service (both protocol eras).
pub fn mcp_service(
    state: &AppState,
) -> StreamableHttpService<AggregatingServer<Engine>, LocalSessionManager> {
    let backend = Arc::new(state.engine.clone());
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_origins(state.origins.rmcp_list())
        .with_max_request_body_bytes(state.max_body_bytes)
        // Stateless (2026-07-28) calls without progress get a plain JSON reply.
        .with_json_response(true)
        .with_cancellation_token(state.shutdown.child_token());
    if state.listen.is_some_and(|a| !a.ip().is_loopback()) {
        // Reachable by other hosts: Host names are the operator's; keys guard access.
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || Ok(AggregatingServer::new(backend.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// The REST routes under `/api` (state applied).
pub fn api_routes(engine: Engine) -> Router {
    Router::new()
        .route(
            "/providers",
            get(rest::list_providers).post(rest::create_provider),
        )
        .route(
            "/providers/{provider_id}",
            get(rest::get_provider)
                .put(rest::update_provider)
                .delete(rest::delete_provider),
        )
        .route("/providers/{provider_id}/start", post(rest::start_provider))
        .route("/providers/{provider_id}/stop", post(rest::stop_provider))
        .route("/providers/{provider_id}/tools", get(rest::provider_tools))
        .route(
            "/providers/{provider_id}/health",
            get(rest::provider_health),
        )
        .route("/providers/{provider_id}/logs", get(rest::provider_logs))
        .route(
            "/providers/{provider_id}/tools/history",
            get(rest::provider_history),
        )
        .route(
            "/groups",
            get(groups::list_groups).post(groups::create_group),
        )
        .route(
            "/groups/{group_id}",
            get(groups::get_group)
                .put(groups::update_group)
                .delete(groups::delete_group),
        )
        .route(
            "/groups/{group_id}/rebalance",
            post(groups::rebalance_group),
        )
        .route("/groups/{group_id}/members", post(groups::add_member))
        .route(
            "/groups/{group_id}/members/{member_id}",
            axum::routing::delete(groups::remove_member),
        )
        .route("/system", get(rest::system))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(engine)
}

/// The whole application: `/health` (open), `/mcp` and `/api` (key required).
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route_service("/mcp", mcp_service(&state))
        .route_layer(middleware::from_fn(jsonrpc_errors))
        .nest("/api", api_routes(state.engine.clone()))
        .route_layer(middleware::from_fn_with_state(
            state.keys.clone(),
            require_key,
        ));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.max_body_bytes,
            check_length,
        ))
        .layer(middleware::from_fn_with_state(
            state.origins.clone(),
            check_origin,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let p = OriginPolicy::default();
        assert!(p.allows("http://localhost:3000"));
        assert!(p.allows("http://127.0.0.1"));
        assert!(p.allows("https://[::1]:8443"));
        assert!(!p.allows("http://evil.example"));
        assert!(!p.allows("http://localhost.evil.example"));
        assert!(!p.allows("null"));
        let p = OriginPolicy::new(vec!["https://app.example.com".into()]);
        assert!(p.allows("https://app.example.com"));
        assert!(!p.allows("https://app.example.com.evil"));
    }
}
