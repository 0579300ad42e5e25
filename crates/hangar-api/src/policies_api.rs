//! Policies: `GET`/`PUT`/`DELETE /api/auth/policies/{provider_id}/{tool_name}`.
//! Both path segments may be globs (`*`, `?`; URL-encoded); the tool is the
//! provider's own tool name, and a group's policies name the group id (a
//! group's calls also obey each member's policies). `kind` (`tool`, the
//! default; `resource`: the segment is a resource URI glob; `prompt`) picks
//! what the policy governs. API policies are stored before they apply; a
//! provider spec's `policies:` are listed too (`source: config`) but only
//! changed through the spec.

use axum::Json;
use axum::extract::State;
use hangar_core::{Effect, PolicyKind, Subject, ToolPolicy};
use hangar_runtime::Engine;
use hangar_runtime::policies::{GateError, PolicySource};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

impl From<GateError> for ApiError {
    fn from(e: GateError) -> Self {
        let (status, kind) = match &e {
            GateError::InvalidPolicy(_) | GateError::InvalidAnswer(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "ValidationError")
            }
            GateError::NotFound {
                what: "question", ..
            } => (StatusCode::NOT_FOUND, "QuestionNotFoundError"),
            GateError::NotFound { .. } => (StatusCode::NOT_FOUND, "PermissionNotFoundError"),
            GateError::AlreadyAnswered { .. } => (StatusCode::CONFLICT, "AlreadyAnsweredError"),
            GateError::Forbidden(_) => (StatusCode::FORBIDDEN, "PermissionDeniedError"),
            GateError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "StorageError"),
        };
        ApiError::new(status, kind, e.to_string())
    }
}

/// What a policy does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyEffect {
    /// The call goes through.
    Allow,
    /// The call waits for a reviewer (a permission request).
    Ask,
    /// The tool is hidden and its calls refused.
    Deny,
}

impl From<PolicyEffect> for Effect {
    fn from(e: PolicyEffect) -> Self {
        match e {
            PolicyEffect::Allow => Effect::Allow,
            PolicyEffect::Ask => Effect::Ask,
            PolicyEffect::Deny => Effect::Deny,
        }
    }
}

impl From<Effect> for PolicyEffect {
    fn from(e: Effect) -> Self {
        match e {
            Effect::Allow => PolicyEffect::Allow,
            Effect::Ask => PolicyEffect::Ask,
            Effect::Deny => PolicyEffect::Deny,
        }
    }
}

/// What a policy governs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyTarget {
    /// Tool calls (`tools/call`, `tools/list`): the pattern matches tool names.
    #[default]
    Tool,
    /// Resource reads and listings: the pattern matches resource URIs.
    Resource,
    /// Prompt gets and listings: the pattern matches prompt names.
    Prompt,
}

impl From<PolicyTarget> for PolicyKind {
    fn from(t: PolicyTarget) -> Self {
        match t {
            PolicyTarget::Tool => PolicyKind::Tool,
            PolicyTarget::Resource => PolicyKind::Resource,
            PolicyTarget::Prompt => PolicyKind::Prompt,
        }
    }
}

impl From<PolicyKind> for PolicyTarget {
    fn from(k: PolicyKind) -> Self {
        match k {
            PolicyKind::Tool => PolicyTarget::Tool,
            PolicyKind::Resource => PolicyTarget::Resource,
            PolicyKind::Prompt => PolicyTarget::Prompt,
        }
    }
}

/// `?kind=` of the policy routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KindQuery {
    /// What the policies govern (default `tool`).
    #[param(value_type = Option<PolicyTarget>)]
    kind: Option<PolicyTarget>,
}

/// Where a policy comes from.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyOrigin {
    /// A provider spec's `policies:` (changed through the spec).
    Config,
    /// Set over this API (stored).
    Api,
}

/// One tool policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// Provider (or group) id glob.
    pub provider: String,
    /// Tool name glob (the provider's own names), or resource URI or prompt
    /// name glob (by `kind`).
    pub tool: String,
    /// What it governs.
    pub kind: PolicyTarget,
    /// The principal it is about (or `role_id`).
    #[schema(required = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// The role it is about (or `principal_id`).
    #[schema(required = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    /// What it does.
    pub effect: PolicyEffect,
    /// Where it comes from.
    pub source: PolicyOrigin,
}

fn view(p: ToolPolicy, source: PolicySource) -> PolicyView {
    let (principal_id, role_id) = match p.subject {
        Subject::Principal(id) => (Some(id), None),
        Subject::Role(id) => (None, Some(id)),
    };
    PolicyView {
        provider: p.provider_glob,
        tool: p.tool_glob,
        kind: p.kind.into(),
        principal_id,
        role_id,
        effect: p.effect.into(),
        source: match source {
            PolicySource::Config => PolicyOrigin::Config,
            PolicySource::Api => PolicyOrigin::Api,
        },
    }
}

/// `GET /api/auth/policies/{provider_id}/{tool_name}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    /// The policies written for exactly this provider and tool pattern.
    pub policies: Vec<PolicyView>,
}

/// Lists the policies written for exactly this provider and tool pattern
/// (not every policy that would match them).
#[utoipa::path(
    get,
    path = "/auth/policies/{provider_id}/{tool_name}",
    tag = "auth",
    operation_id = "get_tool_policies",
    params(
        ("provider_id" = String, Path, description = "Provider or group id, or a glob (`*`, `?`)"),
        ("tool_name" = String, Path, description = "The provider's own tool name (resource URI, prompt name), or a glob"),
        KindQuery,
    ),
    responses(
        (status = 200, description = "The policies", body = PolicyList),
        (status = 404, description = "No policy is written for this pattern pair", body = ErrorBody),
        (status = 422, description = "Unknown kind", body = ErrorBody),
    ),
    security(("bearer" = ["auth:read"]))
)]
pub async fn get_tool_policies(
    State(engine): State<Engine>,
    ApiPath((provider, tool)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<KindQuery>,
) -> Result<Json<PolicyList>, ApiError> {
    let policies: Vec<PolicyView> = engine
        .policies()
        .for_pair(q.kind.unwrap_or_default().into(), &provider, &tool)
        .into_iter()
        .map(|(p, s)| view(p, s))
        .collect();
    if policies.is_empty() {
        return Err(no_policy(&provider, &tool));
    }
    Ok(Json(PolicyList { policies }))
}

fn no_policy(provider: &str, tool: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "PolicyNotFoundError",
        format!("no tool policy for provider '{provider}' and tool '{tool}'"),
    )
}

/// `PUT /api/auth/policies/{provider_id}/{tool_name}` body: exactly one of
/// `principal_id` and `role_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicy {
    /// The principal it is about.
    #[serde(default)]
    pub principal_id: Option<String>,
    /// The role it is about.
    #[serde(default)]
    pub role_id: Option<String>,
    /// What it does.
    pub effect: PolicyEffect,
    /// What it governs (default `tool`; `resource`: the path's pattern is a
    /// resource URI glob; `prompt`).
    #[serde(default)]
    pub kind: Option<PolicyTarget>,
}

/// `PUT /api/auth/policies/{provider_id}/{tool_name}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PutPolicyResponse {
    /// The policy as stored.
    pub policy: PolicyView,
    /// True when it did not exist before.
    pub created: bool,
}

fn subject(principal_id: Option<String>, role_id: Option<String>) -> Result<Subject, ApiError> {
    match (principal_id, role_id) {
        (Some(id), None) => Ok(Subject::Principal(id)),
        (None, Some(id)) => Ok(Subject::Role(id)),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValidationError",
            "exactly one of `principal_id` and `role_id` is required",
        )),
    }
}

/// Sets the effect for one principal or role on a provider and tool pattern
/// (replacing the one it had there). Applies to the next call and listing.
#[utoipa::path(
    put,
    path = "/auth/policies/{provider_id}/{tool_name}",
    tag = "auth",
    operation_id = "put_tool_policy",
    params(
        ("provider_id" = String, Path, description = "Provider or group id, or a glob (`*`, `?`)"),
        ("tool_name" = String, Path, description = "The provider's own tool name, or a glob"),
    ),
    request_body = PutPolicy,
    responses(
        (status = 201, description = "Created", body = PutPolicyResponse),
        (status = 200, description = "Replaced", body = PutPolicyResponse),
        (status = 400, description = "Malformed JSON body", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid subject, effect or pattern", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["auth:write"]))
)]
pub async fn put_tool_policy(
    State(engine): State<Engine>,
    ApiPath((provider, tool)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PutPolicy>,
) -> Result<(StatusCode, Json<PutPolicyResponse>), ApiError> {
    let policy = ToolPolicy::new(
        provider,
        tool,
        subject(body.principal_id, body.role_id)?,
        body.effect.into(),
    )
    .with_kind(body.kind.unwrap_or_default().into());
    let created = engine.policies().put(policy.clone()).await?;
    tracing::info!(provider = ?policy.provider_glob, name = ?policy.tool_glob, kind = %policy.kind, subject = ?policy.subject, effect = %policy.effect, "policy set");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(PutPolicyResponse {
            policy: view(policy, PolicySource::Api),
            created,
        }),
    ))
}

/// `DELETE /api/auth/policies/{provider_id}/{tool_name}` query: clear only one
/// subject's policy.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClearQuery {
    /// Only this principal's policy.
    principal_id: Option<String>,
    /// Only this role's policy.
    role_id: Option<String>,
    /// What the policies govern (default `tool`).
    #[param(value_type = Option<PolicyTarget>)]
    kind: Option<PolicyTarget>,
}

/// `DELETE /api/auth/policies/{provider_id}/{tool_name}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClearResponse {
    /// How many policies were deleted.
    pub deleted: u64,
}

/// Clears the API policies of a provider and tool pattern (or one subject's).
#[utoipa::path(
    delete,
    path = "/auth/policies/{provider_id}/{tool_name}",
    tag = "auth",
    operation_id = "clear_tool_policies",
    params(
        ("provider_id" = String, Path, description = "Provider or group id, or a glob (`*`, `?`)"),
        ("tool_name" = String, Path, description = "The provider's own tool name, or a glob"),
        ClearQuery,
    ),
    responses(
        (status = 200, description = "Cleared", body = ClearResponse),
        (status = 404, description = "No API policy to clear for this pattern pair", body = ErrorBody),
        (status = 422, description = "Both principal_id and role_id given", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["auth:write"]))
)]
pub async fn clear_tool_policies(
    State(engine): State<Engine>,
    ApiPath((provider, tool)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ClearQuery>,
) -> Result<Json<ClearResponse>, ApiError> {
    let only = match (q.principal_id, q.role_id) {
        (None, None) => None,
        (p, r) => Some(subject(p, r)?),
    };
    let deleted = engine
        .policies()
        .delete(
            q.kind.unwrap_or_default().into(),
            &provider,
            &tool,
            only.as_ref(),
        )
        .await?;
    if deleted == 0 {
        return Err(no_policy(&provider, &tool));
    }
    tracing::info!(provider = ?provider, name = ?tool, deleted, "policies cleared");
    Ok(Json(ClearResponse { deleted }))
}

/// The policy routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(
        get_tool_policies,
        put_tool_policy,
        clear_tool_policies
    ))
}
