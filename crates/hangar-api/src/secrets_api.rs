//! Secrets: `GET /api/secrets` (names only), `PUT /api/secrets/{name}`,
//! `DELETE /api/secrets/{name}`, and `POST /api/providers/{provider_id}/refresh`
//! (re-inject secrets and restart). Values are write-only: no response, log
//! or event ever carries one.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use hangar_runtime::Engine;
use hangar_runtime::secrets::{SecretError, SecretInfo, Secrets};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> Self {
        let (status, kind) = match &e {
            SecretError::InvalidName { .. }
            | SecretError::InvalidScope { .. }
            | SecretError::InvalidValue { .. }
            | SecretError::BadReference { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "ValidationError")
            }
            SecretError::Missing { .. } | SecretError::OutOfScope { .. } => {
                (StatusCode::CONFLICT, "SecretUnavailableError")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "SecretStoreError"),
        };
        ApiError::new(status, kind, e.to_string())
    }
}

/// What is shown about a secret (never its value).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SecretInfo)]
pub struct SecretView {
    /// The name used in `${secret:NAME}`.
    pub name: String,
    /// The scope, if the secret is scoped.
    #[schema(required = true)]
    pub scope: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<SecretInfo> for SecretView {
    fn from(s: SecretInfo) -> Self {
        Self {
            name: s.name,
            scope: s.scope,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// `GET /api/secrets` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretList {
    /// Every secret, by name.
    pub secrets: Vec<SecretView>,
    /// How many.
    pub total: usize,
}

/// Lists secrets by name (values are never shown).
#[utoipa::path(
    get,
    path = "/secrets",
    tag = "secrets",
    operation_id = "list_secrets",
    responses((status = 200, description = "Secret names", body = SecretList)),
    security(("bearer" = ["secrets:read"]))
)]
pub async fn list_secrets(State(secrets): State<Secrets>) -> Json<SecretList> {
    let list: Vec<SecretView> = secrets.list().into_iter().map(Into::into).collect();
    Json(SecretList {
        total: list.len(),
        secrets: list,
    })
}

/// `PUT /api/secrets/{name}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The value (write-only; at most 64 KiB, no NUL).
    pub value: String,
    /// Optional scope label.
    #[serde(default)]
    pub scope: Option<String>,
}

/// `PUT /api/secrets/{name}` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct PutSecretResponse {
    /// The secret (never its value).
    pub secret: SecretView,
    /// True when it did not exist before.
    pub created: bool,
}

/// Creates or replaces a secret, encrypted at rest (AES-256-GCM). Providers
/// using it get the new value at their next start or on `refresh`.
#[utoipa::path(
    put,
    path = "/secrets/{name}",
    tag = "secrets",
    operation_id = "put_secret",
    params(("name" = String, Path, description = "Secret name ([A-Za-z_][A-Za-z0-9_]*)")),
    request_body = PutSecret,
    responses(
        (status = 201, description = "Created", body = PutSecretResponse),
        (status = 200, description = "Replaced", body = PutSecretResponse),
        (status = 400, description = "Malformed JSON body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid name, scope or value", body = ErrorBody),
    ),
    security(("bearer" = ["secrets:write"]))
)]
pub async fn put_secret(
    State(secrets): State<Secrets>,
    State(scopes): State<hangar_runtime::scopes::Scopes>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PutSecret>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(scope) = body.scope.as_deref()
        && scopes.get(scope).is_none()
    {
        return Err(ApiError::validation(format!(
            "scope: no scope '{scope}' (create it with POST /api/scopes)"
        )));
    }
    let (info, created) = secrets.put(&name, &body.value, body.scope).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(PutSecretResponse {
            secret: info.into(),
            created,
        }),
    ))
}

/// `DELETE /api/secrets/{name}` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteSecretResponse {
    /// The secret.
    pub name: String,
    /// Always true.
    pub deleted: bool,
}

/// Deletes a secret. Running providers keep the value they started with
/// until they restart.
#[utoipa::path(
    delete,
    path = "/secrets/{name}",
    tag = "secrets",
    operation_id = "delete_secret",
    params(("name" = String, Path, description = "Secret name")),
    responses(
        (status = 200, description = "Deleted", body = DeleteSecretResponse),
        (status = 404, description = "No such secret", body = ErrorBody),
    ),
    security(("bearer" = ["secrets:write"]))
)]
pub async fn delete_secret(
    State(secrets): State<Secrets>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DeleteSecretResponse>, ApiError> {
    if secrets.delete(&name).await? {
        Ok(Json(DeleteSecretResponse {
            name,
            deleted: true,
        }))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "SecretNotFoundError",
            format!("secret '{name}' not found"),
        ))
    }
}

/// `POST /api/providers/{provider_id}/refresh` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResponse {
    /// The provider.
    pub provider_id: String,
    /// Whether it was running and restarted with fresh values (false: it
    /// was not running; it gets them at its next start).
    pub restarted: bool,
}

/// Re-injects the provider's secrets: a running provider is restarted so its
/// process gets the current values.
#[utoipa::path(
    post,
    path = "/providers/{provider_id}/refresh",
    tag = "providers",
    operation_id = "refresh_provider",
    params(("provider_id" = String, Path, description = "Provider id")),
    responses(
        (status = 200, description = "Refreshed", body = RefreshResponse),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 502, description = "The provider failed to start again", body = ErrorBody),
    ),
    security(("bearer" = ["secrets:write"]))
)]
pub async fn refresh_provider(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RefreshResponse>, ApiError> {
    let provider = engine.provider(&id)?;
    let running = provider.state() != hangar_core::ProviderState::Cold;
    if running {
        provider.restart().await?;
    }
    Ok(Json(RefreshResponse {
        provider_id: id,
        restarted: running,
    }))
}

/// The secrets routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list_secrets))
        .routes(routes!(put_secret, delete_secret))
        .routes(routes!(refresh_provider))
}
