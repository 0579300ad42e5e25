//! Scopes: `GET/POST /api/scopes`, `DELETE /api/scopes/{scope_id}`. A
//! provider in a scope gets only that scope's secrets; deleting a scope
//! makes its providers and secrets unscoped.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use hangar_runtime::Engine;
use hangar_runtime::scopes::{Scope, ScopeError, Scopes};
use hangar_runtime::secrets::Secrets;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};

impl From<ScopeError> for ApiError {
    fn from(e: ScopeError) -> Self {
        let (status, kind) = match &e {
            ScopeError::InvalidId(_) | ScopeError::InvalidDescription => {
                (StatusCode::UNPROCESSABLE_ENTITY, "ValidationError")
            }
            ScopeError::AlreadyExists(_) => (StatusCode::CONFLICT, "ScopeAlreadyExistsError"),
            ScopeError::NotFound(_) => (StatusCode::NOT_FOUND, "ScopeNotFoundError"),
            ScopeError::Store(_) | ScopeError::Secret(_) | ScopeError::Provider { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "ScopeUpdateError")
            }
        };
        ApiError::new(status, kind, e.to_string())
    }
}

/// One scope.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Scope)]
pub struct ScopeView {
    /// Id (also its name).
    pub scope_id: String,
    /// What it is for.
    #[schema(required = true)]
    pub description: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<Scope> for ScopeView {
    fn from(s: Scope) -> Self {
        Self {
            scope_id: s.scope_id,
            description: s.description,
            created_at: s.created_at,
        }
    }
}

/// `GET /api/scopes` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeList {
    /// Every scope, by id.
    pub scopes: Vec<ScopeView>,
    /// How many.
    pub total: usize,
}

/// Lists scopes.
#[utoipa::path(
    get,
    path = "/scopes",
    tag = "secrets",
    operation_id = "list_scopes",
    responses((status = 200, description = "Scopes", body = ScopeList)),
    security(("bearer" = ["secrets:read"]))
)]
pub async fn list_scopes(State(scopes): State<Scopes>) -> Json<ScopeList> {
    let list: Vec<ScopeView> = scopes.list().into_iter().map(Into::into).collect();
    Json(ScopeList {
        total: list.len(),
        scopes: list,
    })
}

/// `POST /api/scopes` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScope {
    /// Id, `[a-z0-9_-]` (1 to 64, starting with a letter or digit).
    #[serde(alias = "name")]
    pub scope_id: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// Creates a scope. Providers join it with `scope:` in their spec; secrets
/// with `PUT /api/secrets/{name} {"value", "scope"}`.
#[utoipa::path(
    post,
    path = "/scopes",
    tag = "secrets",
    operation_id = "create_scope",
    request_body = CreateScope,
    responses(
        (status = 201, description = "Created", body = ScopeView),
        (status = 400, description = "Malformed JSON body", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid id or description", body = ErrorBody),
    ),
    security(("bearer" = ["secrets:write"]))
)]
pub async fn create_scope(
    State(scopes): State<Scopes>,
    ApiJson(body): ApiJson<CreateScope>,
) -> Result<impl IntoResponse, ApiError> {
    let scope = scopes.create(&body.scope_id, body.description).await?;
    Ok((StatusCode::CREATED, Json(ScopeView::from(scope))))
}

/// `DELETE /api/scopes/{scope_id}` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteScopeResponse {
    /// The scope.
    pub scope_id: String,
    /// Always true.
    pub deleted: bool,
    /// Providers now unscoped.
    pub providers: Vec<String>,
    /// Secrets now unscoped.
    pub secrets: Vec<String>,
}

/// Deletes a scope: its providers and secrets become unscoped (running
/// providers keep their process until they restart).
#[utoipa::path(
    delete,
    path = "/scopes/{scope_id}",
    tag = "secrets",
    operation_id = "delete_scope",
    params(("scope_id" = String, Path, description = "Scope id")),
    responses(
        (status = 200, description = "Deleted", body = DeleteScopeResponse),
        (status = 404, description = "No such scope", body = ErrorBody),
    ),
    security(("bearer" = ["secrets:write"]))
)]
pub async fn delete_scope(
    State(scopes): State<Scopes>,
    State(engine): State<Engine>,
    State(secrets): State<Secrets>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeleteScopeResponse>, ApiError> {
    let done = scopes.delete(&id, &engine, &secrets).await?;
    Ok(Json(DeleteScopeResponse {
        scope_id: id,
        deleted: true,
        providers: done.providers,
        secrets: done.secrets,
    }))
}

/// The scope routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list_scopes, create_scope))
        .routes(routes!(delete_scope))
}
