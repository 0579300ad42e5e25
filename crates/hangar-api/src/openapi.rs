//! The OpenAPI 3.1 document of the whole server, served at `GET /openapi.json`.
//!
//! It is generated, never written by hand: the `/api` operations come from the
//! `#[utoipa::path]` of the handlers that `app::api_router` registers (with
//! `utoipa_axum::routes!`, so a route cannot be served without being
//! documented), `/health` and `/openapi.json` likewise from `app`, and `/mcp`
//! from the documentation-only operations below (it is `mcp_front`'s
//! middleware in front of rmcp's service, not an axum handler). [`document`] then adds what the middleware in front of the
//! routes does to every operation: the bearer security requirement and 401 on
//! `/api/*` and `/mcp`, 403 for a disallowed `Origin`, 413 on bodies.

use serde::Serialize;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, Ref, RefOr,
    ResponseBuilder,
};
use utoipa::{OpenApi as _, PartialSchema, ToSchema};

use crate::error::ErrorBody;

/// Name of the security scheme (`Authorization: Bearer hgr_...`).
pub const SECURITY_SCHEME: &str = "bearer";

/// The whole document: `/api` operations, `/health`, `/openapi.json`, `/mcp`.
pub fn openapi() -> OpenApi {
    document(
        crate::app::api_router().into_openapi(),
        crate::app::open_router().into_openapi(),
    )
}

/// Whether a path needs a key: everything under `/api/`, `/mcp` and
/// `/metrics` (the rest, `/health` and `/openapi.json`, is open).
pub fn is_protected(path: &str) -> bool {
    path.starts_with("/api/") || path == "/mcp" || path == "/metrics"
}

/// The document, serialized (what `GET /openapi.json` answers).
pub fn openapi_json() -> String {
    to_json(&openapi())
}

/// The document as JSON. Serialize through this (or [`to_json`]), not with
/// serde directly: utoipa 5.5 writes the fields of Link objects in snake_case
/// (`operation_id`), which is fixed here to the spec's `operationId`,
/// `operationRef` and `requestBody`.
pub fn to_value(doc: &OpenApi) -> serde_json::Value {
    let mut v = serde_json::to_value(doc).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialize the OpenAPI document");
        serde_json::json!({
            "error": "InternalError",
            "message": format!("cannot serialize the OpenAPI document: {e}"),
            "status_code": 500,
        })
    });
    let responses = v
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses"))
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let links = response
            .get_mut("links")
            .and_then(serde_json::Value::as_object_mut);
        for link in links.into_iter().flat_map(|l| l.values_mut()) {
            let Some(link) = link.as_object_mut() else {
                continue;
            };
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(from) {
                    link.insert(to.to_owned(), value);
                }
            }
        }
    }
    v
}

/// The document as a JSON string (see [`to_value`]).
pub fn to_json(doc: &OpenApi) -> String {
    to_value(doc).to_string()
}

/// Builds the document from the `/api` router's paths (relative to `/api`)
/// and the open routes' paths.
pub fn document(api: OpenApi, open: OpenApi) -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Hangar")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Hangar, an MCP gateway: one MCP endpoint (`/mcp`, Streamable HTTP) in \
                     front of many MCP servers (providers), and a REST API (`/api`) to manage \
                     them. Every `/api` route and `/mcp` need `Authorization: Bearer hgr_...`; \
                     the scope of an operation's bearer requirement is the permission the \
                     key's roles must hold (`self`: any key, acting on its own things). \
                     Errors are `{\"error\", \"message\", \"status_code\"}`.",
                ))
                .license(Some(LicenseBuilder::new().name("Apache-2.0").build()))
                .build(),
        )
        .servers(Some([Server::new("/")]))
        .build();
    doc.merge(open);
    let mut doc = doc.nest("/api", api);
    doc.merge(McpDoc::openapi());
    doc.merge(crate::observe_api::scrape_router().into_openapi());

    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        SECURITY_SCHEME.to_owned(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("hgr_<64 hex>")
                .description(Some(
                    "An API key: `Authorization: Bearer hgr_...`. The admin key comes from \
                     HANGAR_ADMIN_KEY or `<data-dir>/admin.key` at first start.",
                ))
                .build(),
        ),
    );
    for (name, schema) in [
        ("ErrorBody", ErrorBody::schema()),
        ("JsonRpcMessage", JsonRpcMessage::schema()),
        ("JsonRpcError", JsonRpcError::schema()),
        ("McpError", McpError::schema()),
    ] {
        components.schemas.entry(name.to_owned()).or_insert(schema);
    }

    for (path, item) in doc.paths.paths.iter_mut() {
        let protected = is_protected(path);
        for (_, op) in operations_mut(item) {
            if protected {
                // The scope an operation declares is the permission it needs
                // (enforced by `authz::authorize`); none declared = refused.
                if op.security.as_ref().is_none_or(Vec::is_empty) {
                    op.security = Some(vec![SecurityRequirement::new(
                        SECURITY_SCHEME,
                        Vec::<String>::new(),
                    )]);
                }
                add_response(op, "401", "Missing or invalid API key");
                add_response(
                    op,
                    "403",
                    "The `Origin` header is not allowed, or the key's roles lack the \
                     permission this operation declares (its bearer scope)",
                );
                add_response(
                    op,
                    "429",
                    "The key's rate limit is exceeded, or this client failed to \
                     authenticate too often; retry after `Retry-After` seconds",
                );
                add_rate_limit_headers(op);
            }
            add_response(op, "403", "The `Origin` header is not allowed");
            if op.request_body.is_some() {
                add_response(op, "413", "The body is larger than `server.max_body_bytes`");
            }
        }
    }

    let mut tags = vec![
        tag("providers", "MCP servers Hangar runs"),
        tag(
            "groups",
            "Providers behind one name, with load balancing and failover",
        ),
        tag("system", "Server-wide figures"),
        tag(
            "mcp",
            "The MCP endpoint (Streamable HTTP, both protocol eras)",
        ),
        tag("meta", "Liveness and this document"),
    ];
    let mut used: Vec<String> = doc
        .paths
        .paths
        .values_mut()
        .flat_map(|item| operations_mut(item).map(|(_, op)| op.tags.clone().unwrap_or_default()))
        .flatten()
        .collect();
    used.sort();
    used.dedup();
    for name in used {
        if !tags.iter().any(|t| t.name == name) {
            tags.push(TagBuilder::new().name(name).build());
        }
    }
    doc.tags = Some(tags);
    doc
}

fn tag(name: &str, description: &str) -> utoipa::openapi::Tag {
    TagBuilder::new()
        .name(name)
        .description(Some(description))
        .build()
}

/// Every operation of a path item, with its method (lower case).
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("options", item.options.as_mut()),
        ("head", item.head.as_mut()),
        ("patch", item.patch.as_mut()),
        ("trace", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
}

/// Documents the rate-limit headers on every response of a rate-limited
/// operation (present once the key is authenticated), and `Retry-After` on 429.
fn add_rate_limit_headers(op: &mut Operation) {
    let integer = || {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(0))
            .build()
    };
    let header = |description: &str| {
        utoipa::openapi::header::HeaderBuilder::new()
            .schema(integer())
            .description(Some(description))
            .build()
    };
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        for (name, description) in [
            (
                "RateLimit-Limit",
                "Requests the key may send at once (its burst)",
            ),
            (
                "RateLimit-Remaining",
                "Requests the key may still send right now",
            ),
            (
                "RateLimit-Reset",
                "Seconds until the key's allowance is full again",
            ),
        ] {
            response
                .headers
                .entry(name.to_owned())
                .or_insert_with(|| header(description));
        }
        if status == "429" {
            response
                .headers
                .entry("Retry-After".to_owned())
                .or_insert_with(|| header("Seconds to wait before retrying"));
        }
    }
}

/// Adds an `ErrorBody` response for `status` unless the operation has one.
fn add_response(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        });
}

/// A JSON-RPC 2.0 message (request, notification, response or error) as MCP
/// sends it. Batches are not part of MCP since 2025-06-18.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}))]
pub struct JsonRpcMessage {
    /// Always `2.0`.
    #[schema(pattern = r"^2\.0$")]
    pub jsonrpc: String,
    /// Request id (absent in notifications; null in some errors).
    #[schema(required = false, value_type = Option<serde_json::Value>)]
    pub id: Option<serde_json::Value>,
    /// Method, for requests and notifications (e.g. `initialize`, `tools/call`).
    #[schema(required = false)]
    pub method: String,
    /// Parameters.
    #[schema(required = false, value_type = Object)]
    pub params: serde_json::Value,
    /// Result, for responses.
    #[schema(required = false, value_type = Object)]
    pub result: serde_json::Value,
    /// Error, for error responses.
    #[schema(required = false)]
    pub error: JsonRpcError,
}

/// A JSON-RPC error object.
#[derive(Serialize, ToSchema)]
pub struct JsonRpcError {
    /// Error code (e.g. -32700 parse error, -32600 invalid request).
    pub code: i64,
    /// Description.
    pub message: String,
    /// Extra data.
    #[schema(required = false, value_type = Object)]
    pub data: serde_json::Value,
}

/// An error on `/mcp`: Hangar's `ErrorBody` from the middleware in front of
/// the endpoint (401, 403 for an Origin, 413 by Content-Length), or a JSON-RPC
/// error message from the MCP service itself.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum McpError {
    /// From Hangar's middleware.
    Hangar(ErrorBody),
    /// From the MCP service.
    JsonRpc(JsonRpcMessage),
}

/// Documentation-only operations for `/mcp` (served by `mcp_front` and, for
/// what it leaves alone, rmcp's `StreamableHttpService`, see `app::mcp_service`).
mod mcp_doc {
    #![allow(dead_code)]

    use super::{JsonRpcMessage, McpError};

    /// Sends one JSON-RPC message. Requests are answered with a JSON-RPC
    /// response, as `application/json` or as a `text/event-stream` carrying
    /// progress notifications and then the response; notifications and
    /// responses are accepted with 202. Without `MCP-Protocol-Version:
    /// 2026-07-28` (stateless era), `initialize` opens a session whose id comes
    /// back in `Mcp-Session-Id`, to be sent with every later request.
    /// `Accept` must list both `application/json` and `text/event-stream`.
    #[utoipa::path(
        post,
        path = "/mcp",
        tag = "mcp",
        operation_id = "mcp_post",
        security(("bearer" = ["tools:list"])),
        params(
            ("Mcp-Session-Id" = Option<String>, Header, description = "Session id (2025 era, after `initialize`)"),
            ("MCP-Protocol-Version" = Option<String>, Header, description = "Negotiated protocol version, e.g. `2025-06-18` or `2026-07-28`"),
        ),
        request_body(content = JsonRpcMessage, content_type = "application/json"),
        responses(
            (status = 200, description = "The JSON-RPC response, or a stream ending with it",
                content(
                    (JsonRpcMessage = "application/json"),
                    (String = "text/event-stream"),
                ),
                headers(("Mcp-Session-Id" = String, description = "Set in the answer to `initialize` (2025 era)"))),
            (status = 202, description = "Notification or response accepted"),
            (status = 400, description = "Missing session id (2025 era), missing or malformed request `_meta` or `Mcp-Method` header (2026-07-28), or headers that contradict the body", body = McpError),
            (status = 403, description = "The `Origin` or `Host` header is not allowed", body = McpError),
            (status = 404, description = "Unknown or closed session, or unknown method (stateless era)", body = McpError),
            (status = 406, description = "`Accept` does not list both `application/json` and `text/event-stream`", body = McpError),
            (status = 413, description = "The body is larger than `server.max_body_bytes`", body = McpError),
            (status = 415, description = "The body is not `application/json`, or not a JSON-RPC message", body = McpError),
            (status = 503, description = "`initialize` past `server.max_sessions` or `server.max_sessions_per_principal`", body = McpError),
        ),
    )]
    fn mcp_post() {}

    /// Opens the session's server-to-client event stream (2025 era):
    /// `list_changed` notifications while the session lasts. Nothing is
    /// replayed (`Last-Event-ID` is not used).
    #[utoipa::path(
        get,
        path = "/mcp",
        tag = "mcp",
        operation_id = "mcp_get",
        security(("bearer" = ["tools:list"])),
        params(
            ("Mcp-Session-Id" = Option<String>, Header, description = "Session id"),
            ("MCP-Protocol-Version" = Option<String>, Header, description = "Negotiated protocol version"),
        ),
        responses(
            (status = 200, description = "Server-sent events", content_type = "text/event-stream", body = String),
            (status = 400, description = "Missing session id or bad protocol version", body = McpError),
            (status = 403, description = "The `Origin` or `Host` header is not allowed", body = McpError),
            (status = 404, description = "Unknown, expired or another principal's session", body = McpError),
            (status = 405, description = "No stream for this request (stateless era)", body = McpError),
            (status = 406, description = "`Accept` does not list `text/event-stream`", body = McpError),
        ),
    )]
    fn mcp_get() {}

    /// Ends a session (2025 era).
    #[utoipa::path(
        delete,
        path = "/mcp",
        tag = "mcp",
        operation_id = "mcp_delete",
        security(("bearer" = ["tools:list"])),
        params(
            ("Mcp-Session-Id" = Option<String>, Header, description = "Session id"),
            ("MCP-Protocol-Version" = Option<String>, Header, description = "Negotiated protocol version"),
        ),
        responses(
            (status = 200, description = "Session ended"),
            (status = 400, description = "Missing session id or bad protocol version", body = McpError),
            (status = 403, description = "The `Origin` or `Host` header is not allowed", body = McpError),
            (status = 404, description = "Unknown, expired or another principal's session", body = McpError),
            (status = 405, description = "Sessions are not used in this protocol era (2026-07-28)", body = McpError),
        ),
    )]
    fn mcp_delete() {}
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(mcp_doc::mcp_post, mcp_doc::mcp_get, mcp_doc::mcp_delete))]
struct McpDoc;

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
