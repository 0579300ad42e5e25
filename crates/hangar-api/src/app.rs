//! The HTTP application: routes, middleware, and the MCP endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hangar_mcp::AggregatingServer;
use hangar_runtime::Engine;
use http::StatusCode;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Gate, KeyRing, require_key};
use crate::authz::{Access, Authz, RoutePermissions, authorize};
use crate::config_api::ConfigLifecycle;
use crate::context::ApiContext;
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
    /// Roles, assignments, rate limits, failed-auth backoff, audit.
    pub access: Access,
    /// Allowed origins.
    pub origins: OriginPolicy,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Cancelled at shutdown: ends MCP sessions and streams.
    pub shutdown: CancellationToken,
    /// Where the server listens (decides the Host allow-list).
    pub listen: Option<SocketAddr>,
    /// Config file, reload, backups.
    pub lifecycle: Arc<ConfigLifecycle>,
    /// The catalog of deployable MCP servers.
    pub catalog: Arc<hangar_runtime::CatalogService>,
    /// Encrypted secrets.
    pub secrets: hangar_runtime::secrets::Secrets,
    /// Scopes of providers and secrets.
    pub scopes: hangar_runtime::scopes::Scopes,
    /// Limits on 2025-era MCP sessions.
    pub session_limits: crate::mcp_front::SessionLimits,
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

/// `GET /health` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always true.
    pub ok: bool,
    /// RFC 3339 server time.
    pub timestamp: String,
}

/// Liveness: answers while the server runs (no key needed).
#[utoipa::path(
    get,
    path = "/health",
    tag = "meta",
    operation_id = "health",
    responses((status = 200, description = "The server is up", body = Health)),
)]
async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        ok: true,
        timestamp: hangar_runtime::now_rfc3339(),
    })
}

/// The serialized OpenAPI document, computed once in [`router`].
#[derive(Debug, Clone)]
pub struct OpenApiJson(Bytes);

/// This OpenAPI 3.1 document (no key needed).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this server", body = Object)),
)]
async fn openapi_json(State(doc): State<OpenApiJson>) -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], doc.0).into_response()
}

/// The routes open to everyone: `/health`, `/openapi.json`.
pub(crate) fn open_router() -> OpenApiRouter<OpenApiJson> {
    OpenApiRouter::default()
        .routes(routes!(health))
        .routes(routes!(openapi_json))
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
        // 2025-era sessions are Hangar's own (`mcp_front`): rmcp only sees
        // session-less requests the front leaves to it.
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// The REST routes under `/api` with their documentation (paths relative to
/// `/api`; state not applied). Every handler is registered through
/// `routes!`, which also adds its `#[utoipa::path]` to the document, so what
/// is served is what is documented.
pub fn api_router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::default()
        .routes(routes!(rest::list_providers, rest::create_provider))
        .routes(routes!(
            rest::get_provider,
            rest::update_provider,
            rest::delete_provider
        ))
        .routes(routes!(rest::start_provider))
        .routes(routes!(rest::stop_provider))
        .routes(routes!(rest::restart_provider))
        .routes(routes!(rest::abort_provider_calls))
        .routes(routes!(rest::provider_tools))
        .routes(routes!(rest::provider_health))
        .routes(routes!(rest::provider_logs))
        .routes(routes!(rest::provider_history))
        .routes(routes!(groups::list_groups, groups::create_group))
        .routes(routes!(
            groups::get_group,
            groups::update_group,
            groups::delete_group
        ))
        .routes(routes!(groups::rebalance_group))
        .routes(routes!(groups::add_member))
        .routes(routes!(groups::remove_member))
        .routes(routes!(rest::system))
        // Routes written as utoipa-axum routers (each documents itself).
        .merge(crate::config_api::routes())
        .merge(crate::catalog_api::routes())
        .merge(crate::maintenance::routes())
        .merge(crate::secrets_api::routes())
        .merge(crate::policies_api::routes())
        .merge(crate::approvals_api::routes())
        .merge(crate::questions_api::routes())
        .merge(crate::scopes_api::routes())
        .merge(crate::auth_api::routes())
        .merge(crate::tokens_api::routes())
        .merge(crate::audit_api::routes())
        .merge(crate::observe_api::routes())
        .merge(crate::streams::routes())
        .merge(crate::sessions_api::routes())
}

fn finish_api(routes: Router<ApiContext>, ctx: ApiContext) -> Router {
    routes
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(ctx)
}

/// The whole application: `/health` and `/openapi.json` (open), `/mcp` and
/// `/api` (key required).
pub fn router(state: AppState) -> Router {
    let (api, api_doc) = api_router().split_for_parts();
    let (open, open_doc) = open_router().split_for_parts();
    // Documented by `openapi::document` with `/mcp`.
    let (scrape, _) = crate::observe_api::scrape_router().split_for_parts();
    // Built once: `GET /openapi.json` serves these bytes, and every route's
    // permission is read from them (see `authz`).
    let document = crate::openapi::to_value(&crate::openapi::document(api_doc, open_doc));
    let permissions = RoutePermissions::from_document(&document);
    let doc = OpenApiJson(Bytes::from(document.to_string()));
    let table = Arc::new(hangar_mcp::SessionTable::default());
    let counted = Arc::downgrade(&table);
    state.engine.set_session_counter(Box::new(move || {
        let live = counted.upgrade().map_or(0, |t| t.len() as u64);
        // 2026-07-28 is sessionless.
        [live, 0]
    }));
    let front = crate::mcp_front::McpFront {
        backend: Arc::new(state.engine.clone()),
        sessions: table.clone(),
        limits: state.session_limits,
        max_body_bytes: state.max_body_bytes,
        shutdown: state.shutdown.clone(),
        lists: Arc::default(),
        parking: Arc::default(),
    };
    front.spawn_sweeper();
    let protected = Router::new()
        .route_service("/mcp", mcp_service(&state))
        .route_layer(middleware::from_fn(jsonrpc_errors))
        .route_layer(middleware::from_fn_with_state(
            front,
            crate::mcp_front::front,
        ))
        .merge(scrape.with_state(state.engine.clone()))
        .nest(
            "/api",
            finish_api(
                api,
                ApiContext {
                    engine: state.engine.clone(),
                    lifecycle: state.lifecycle.clone(),
                    catalog: state.catalog.clone(),
                    secrets: state.secrets.clone(),
                    scopes: state.scopes.clone(),
                    keys: state.keys.clone(),
                    access: state.access.clone(),
                    shutdown: state.shutdown.clone(),
                    sessions: table,
                },
            ),
        )
        // Runs after `require_key` (layers added later run first).
        .route_layer(middleware::from_fn_with_state(
            Authz {
                access: state.access.clone(),
                routes: permissions,
            },
            authorize,
        ))
        .route_layer(middleware::from_fn_with_state(
            Gate {
                keys: state.keys.clone(),
                access: state.access.clone(),
            },
            require_key,
        ));
    open.method_not_allowed_fallback(method_not_allowed)
        .with_state(doc)
        .merge(protected)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.max_body_bytes,
            check_length,
        ))
        .layer(cors(&state.origins))
        .layer(middleware::from_fn_with_state(
            state.origins.clone(),
            check_origin,
        ))
}

/// CORS for the allowed origins (localhost and `server.allowed_origins`):
/// preflights are answered here, before any key is asked for (browsers send
/// them without credentials), and answers carry the headers browsers need
/// to read them.
fn cors(origins: &OriginPolicy) -> tower_http::cors::CorsLayer {
    use http::{HeaderName, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins = origins.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin.to_str().is_ok_and(|o| origins.allows(o))
        }))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static(crate::mcp_front::SESSION_HEADER),
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-method"),
            HeaderName::from_static("mcp-name"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            HeaderName::from_static(crate::mcp_front::SESSION_HEADER),
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
            header::RETRY_AFTER,
        ])
        .max_age(std::time::Duration::from_secs(600))
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
