//! Permission requests: `GET /api/permissions` (the calls an `ask` policy
//! holds) and `POST /api/permissions/{id}/reply` (`once`, `always`, `reject`).

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use hangar_core::{Grants, Permission};
use hangar_runtime::approvals::{PermissionRequest, Reply};
use hangar_runtime::{Engine, Replier};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};

/// A tool call waiting for a reviewer (never its argument values).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PermissionRequest)]
pub struct PermissionView {
    /// Pass this to the reply route.
    pub id: String,
    /// Who made the call.
    #[schema(required = true)]
    pub principal: Option<String>,
    /// Provider (or group) id.
    pub provider: String,
    /// What is held: a tool call, a resource read or a prompt get.
    pub kind: crate::policies_api::PolicyTarget,
    /// The provider's own tool name (the resource URI, the prompt name).
    pub tool: String,
    /// HMAC-SHA256 (hex, under a key of this server) of the canonical JSON
    /// arguments: equal arguments, equal digests; never the values.
    pub arguments_digest: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; the call fails when nobody replied by then.
    pub expires_at: String,
}

impl From<PermissionRequest> for PermissionView {
    fn from(r: PermissionRequest) -> Self {
        Self {
            id: r.id,
            principal: r.principal,
            provider: r.provider,
            kind: r.kind.into(),
            tool: r.tool,
            arguments_digest: r.arguments_digest,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

/// `GET /api/permissions` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionList {
    /// Pending requests, oldest first.
    pub permissions: Vec<PermissionView>,
    /// How many.
    pub total: usize,
}

/// Lists the pending permission requests.
#[utoipa::path(
    get,
    path = "/permissions",
    tag = "approvals",
    operation_id = "list_permissions",
    responses((status = 200, description = "Pending permission requests", body = PermissionList)),
    security(("bearer" = ["approvals:read"]))
)]
pub async fn list_permissions(State(engine): State<Engine>) -> Json<PermissionList> {
    let permissions: Vec<PermissionView> = engine
        .approvals()
        .list()
        .into_iter()
        .map(Into::into)
        .collect();
    Json(PermissionList {
        total: permissions.len(),
        permissions,
    })
}

/// A reply.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplyKind {
    /// Allow this call.
    Once,
    /// Allow this call and store an allow policy for its principal on this
    /// provider and tool.
    Always,
    /// Refuse this call (the caller gets a tool error with the message).
    Reject,
}

/// `POST /api/permissions/{id}/reply` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionReply {
    /// `once`, `always` or `reject`.
    pub reply: ReplyKind,
    /// Passed back to the caller (useful when rejecting).
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /api/permissions/{id}/reply` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionReplied {
    /// Always true.
    pub replied: bool,
    /// The reply given.
    pub reply: ReplyKind,
}

/// Answers a pending permission request; the held call goes on (or fails).
/// Nobody approves their own held call (unless `server.allow_self_approval`),
/// and `always` (which stores an allow policy) needs `auth:write`.
#[utoipa::path(
    post,
    path = "/permissions/{id}/reply",
    tag = "approvals",
    operation_id = "reply_permission",
    params(("id" = String, Path, description = "Permission request id")),
    request_body = PermissionReply,
    responses(
        (status = 200, description = "Replied", body = PermissionReplied),
        (status = 400, description = "Malformed JSON body", body = ErrorBody),
        (status = 403, description = "Approving one's own call, or `always` without `auth:write`", body = ErrorBody),
        (status = 404, description = "Unknown or expired request", body = ErrorBody),
        (status = 409, description = "Already answered", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Not a valid reply", body = ErrorBody),
        (status = 500, description = "The store failed (`always`)", body = ErrorBody),
    ),
    security(("bearer" = ["approvals:write"]))
)]
pub async fn reply_permission(
    State(engine): State<Engine>,
    Extension(caller): Extension<crate::auth::Principal>,
    Extension(grants): Extension<Arc<Grants>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PermissionReply>,
) -> Result<Json<PermissionReplied>, ApiError> {
    let reply = match body.reply {
        ReplyKind::Once => Reply::Once,
        ReplyKind::Always => Reply::Always,
        ReplyKind::Reject => Reply::Reject,
    };
    let replier = Replier {
        principal: &caller.id,
        may_set_policies: grants.allows(&Permission::AUTH_WRITE),
    };
    let request = engine
        .reply_permission(&id, reply, body.message, replier)
        .await?;
    tracing::info!(id = %request.id, provider = ?request.provider, tool = ?request.tool, reviewer = ?caller.id, reply = reply.as_str(), "permission request answered");
    Ok(Json(PermissionReplied {
        replied: true,
        reply: body.reply,
    }))
}

/// The permission routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list_permissions))
        .routes(routes!(reply_permission))
}
