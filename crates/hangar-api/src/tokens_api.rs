//! Personal tokens: `GET/POST /api/tokens`, `DELETE /api/tokens/{token_id}`.
//! A principal lists and revokes its own (scope `self`) and mints them with
//! `tokens:create`: a token is an `hgr_` key of kind `token` that
//! authenticates as the caller, exactly like an API key; the raw token is
//! shown once.
//!
//! Bounds: a token is minted only from an API key (never from a token), dies
//! with that key (revoking or expiring the key ends it), always expires
//! (`server.token_max_ttl_s`, 30 days by default), and a principal holds at
//! most `server.max_tokens_per_principal` working tokens.

use axum::extract::State;
use axum::{Extension, Json};
use hangar_runtime::StoredKey;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{KIND_TOKEN, KeyRing, NewKey, Principal};
use crate::auth_api::{check_expiry, check_name};
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};

/// A token as listed: never the token nor its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    /// The token's id.
    pub token_id: String,
    /// Its name.
    pub name: String,
    /// The first characters of the token (`hgr_` and 8 more).
    pub prefix: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 expiry, if any.
    #[schema(required = true)]
    pub expires_at: Option<String>,
    /// RFC 3339, if revoked.
    #[schema(required = true)]
    pub revoked_at: Option<String>,
}

impl From<StoredKey> for TokenInfo {
    fn from(k: StoredKey) -> Self {
        Self {
            token_id: k.key_id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// `GET /api/tokens` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// The caller's tokens, oldest first (revoked ones included).
    pub tokens: Vec<TokenInfo>,
    /// How many.
    pub total: usize,
}

/// Lists the caller's personal tokens (metadata only).
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    operation_id = "list_tokens",
    responses((status = 200, description = "The caller's tokens", body = TokenList)),
    security(("bearer" = ["self"]))
)]
pub async fn list_tokens(
    State(keys): State<KeyRing>,
    Extension(caller): Extension<Principal>,
) -> Json<TokenList> {
    let tokens: Vec<TokenInfo> = keys
        .list(Some(&caller.id), Some(KIND_TOKEN))
        .into_iter()
        .map(Into::into)
        .collect();
    Json(TokenList {
        total: tokens.len(),
        tokens,
    })
}

/// `POST /api/tokens` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Human-readable name.
    pub name: String,
    /// RFC 3339 expiry, in the future and at most `server.token_max_ttl_s`
    /// ahead; none = that maximum.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `POST /api/tokens` answer: the raw token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    /// The token's id.
    pub token_id: String,
    /// The token (`hgr_...`): shown only now, stored only as a hash.
    pub raw_token: String,
    /// The caller, whom it authenticates as.
    pub principal_id: String,
    /// Its name.
    pub name: String,
    /// RFC 3339 expiry (tokens always expire).
    #[schema(required = true)]
    pub expires_at: Option<String>,
}

/// The bounds of personal tokens (from `server:` settings).
#[derive(Debug, Clone, Copy)]
pub struct TokenLimits {
    /// Longest life of a token.
    pub max_ttl: std::time::Duration,
    /// Working tokens one principal may hold.
    pub per_principal: usize,
}

impl Default for TokenLimits {
    fn default() -> Self {
        Self {
            max_ttl: std::time::Duration::from_secs(hangar_core::config::DEFAULT_TOKEN_MAX_TTL_S),
            per_principal: hangar_core::config::DEFAULT_MAX_TOKENS_PER_PRINCIPAL,
        }
    }
}

/// Mints a personal token for the caller, from the API key it called with
/// (a token cannot mint tokens). The raw token is in this answer only.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    operation_id = "create_token",
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; `raw_token` is shown only now", body = TokenCreated,
            links(("RevokeToken" = (operation_id = "revoke_token", parameters(("token_id" = "$response.body#/token_id")))))),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 403, description = "Called with a token (tokens cannot mint tokens)", body = ErrorBody),
        (status = 409, description = "The caller holds `server.max_tokens_per_principal` working tokens", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid name or expires_at (past, or beyond `server.token_max_ttl_s`)", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["tokens:create"]))
)]
pub async fn create_token(
    State(keys): State<KeyRing>,
    State(limits): State<TokenLimits>,
    Extension(caller): Extension<Principal>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    if caller.via_token {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "PermissionDeniedError",
            "personal tokens cannot mint tokens; call with an API key",
        ));
    }
    check_name(&body.name)?;
    let latest = time::OffsetDateTime::now_utc() + limits.max_ttl;
    let expires_at = match check_expiry(body.expires_at.as_deref())? {
        Some(t) if t > latest => {
            return Err(ApiError::validation(format!(
                "expires_at: at most {} s ahead (server.token_max_ttl_s)",
                limits.max_ttl.as_secs()
            )));
        }
        Some(t) => t,
        None => latest,
    };
    if keys.active_tokens(&caller.id) >= limits.per_principal {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "TokenLimitError",
            format!(
                "principal already holds {} working tokens (server.max_tokens_per_principal); \
                 revoke one first",
                limits.per_principal
            ),
        ));
    }
    let (token, raw) = keys
        .create(
            NewKey {
                principal_id: &caller.id,
                name: &body.name,
                kind: KIND_TOKEN,
                expires_at: Some(expires_at),
                parent_key_id: Some(&caller.key_id),
            },
            None,
        )
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "StorageError",
                e.to_string(),
            )
        })?;
    tracing::info!(token_id = %token.key_id, principal = %caller.id, "personal token created");
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token_id: token.key_id,
            raw_token: raw,
            principal_id: token.principal_id,
            name: token.name,
            expires_at: token.expires_at,
        }),
    ))
}

/// `DELETE /api/tokens/{token_id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenRevoked {
    /// The token.
    pub token_id: String,
    /// Always true.
    pub revoked: bool,
}

/// Revokes one of the caller's personal tokens (anyone else's is a 404).
#[utoipa::path(
    delete,
    path = "/tokens/{token_id}",
    tag = "tokens",
    operation_id = "revoke_token",
    params(("token_id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "Revoked", body = TokenRevoked),
        (status = 404, description = "The caller has no such token", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["self"]))
)]
pub async fn revoke_token(
    State(keys): State<KeyRing>,
    Extension(caller): Extension<Principal>,
    ApiPath(token_id): ApiPath<String>,
) -> Result<Json<TokenRevoked>, ApiError> {
    let own = keys
        .get(&token_id)
        .is_some_and(|k| k.kind == KIND_TOKEN && k.principal_id == caller.id);
    if !own {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "TokenNotFoundError",
            format!("token '{token_id}' not found"),
        ));
    }
    keys.revoke(&token_id).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "StorageError",
            e.to_string(),
        )
    })?;
    tracing::info!(token_id = ?token_id, principal = %caller.id, "personal token revoked");
    Ok(Json(TokenRevoked {
        token_id,
        revoked: true,
    }))
}

/// The personal token routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}
