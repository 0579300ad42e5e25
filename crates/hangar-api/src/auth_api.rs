//! Auth management under `/api/auth`: API keys (raw key shown once; listings
//! show a prefix and metadata, never the key or its hash), roles (built-in
//! and custom), role assignments, principals, and permission checks.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::{Extension, Json};
use hangar_core::{Permission, RateLimit, Role, RoleError};
use hangar_runtime::StoredKey;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{KIND_KEY, KeyRing, NewKey, Principal, parse_time};
use crate::authz::{Access, AccessError};
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};

impl FromRef<ApiContext> for KeyRing {
    fn from_ref(ctx: &ApiContext) -> KeyRing {
        ctx.keys.clone()
    }
}

impl FromRef<ApiContext> for Access {
    fn from_ref(ctx: &ApiContext) -> Access {
        ctx.access.clone()
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        let (status, kind) = match &e {
            AccessError::Role(RoleError::Reserved(_)) => (StatusCode::CONFLICT, "BuiltinRoleError"),
            AccessError::Role(RoleError::Unknown(_)) | AccessError::RoleNotFound(_) => {
                (StatusCode::NOT_FOUND, "RoleNotFoundError")
            }
            AccessError::Role(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ValidationError"),
            AccessError::Exists(_) => (StatusCode::CONFLICT, "RoleAlreadyExistsError"),
            AccessError::NotAssigned { .. } => (StatusCode::NOT_FOUND, "RoleNotAssignedError"),
            AccessError::LastAdmin(_) => (StatusCode::CONFLICT, "LastAdminError"),
            AccessError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "StorageError"),
        };
        ApiError::new(status, kind, e.to_string())
    }
}

fn storage(e: hangar_runtime::StoreError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "StorageError",
        e.to_string(),
    )
}

/// Longest principal id, key name or role description accepted.
const MAX_LEN: usize = 128;

/// Checks a principal id: 1 to 128 of `A-Za-z0-9._@:-`.
pub(crate) fn check_principal(field: &str, id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@:-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "{field}: must be 1 to {MAX_LEN} characters of A-Z, a-z, 0-9, '.', '_', '@', ':' or '-'"
        )))
    }
}

/// Checks a key or token name: 1 to 128 characters, no control characters.
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_LEN
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::validation(format!(
            "name: must be 1 to {MAX_LEN} characters without control characters"
        )));
    }
    Ok(())
}

/// Parses an optional RFC 3339 expiry, which must be in the future.
pub(crate) fn check_expiry(s: Option<&str>) -> Result<Option<time::OffsetDateTime>, ApiError> {
    let Some(s) = s else { return Ok(None) };
    let t = parse_time(s).ok_or_else(|| {
        ApiError::validation(format!(
            "expires_at: not an RFC 3339 time (e.g. 2030-01-31T12:00:00Z): {s:?}"
        ))
    })?;
    if t <= time::OffsetDateTime::now_utc() {
        return Err(ApiError::validation("expires_at: must be in the future"));
    }
    Ok(Some(t))
}

// ----- keys -----

/// `POST /api/auth/keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Principal the key authenticates as (1 to 128 of `A-Za-z0-9._@:-`).
    pub principal_id: String,
    /// Human-readable name.
    pub name: String,
    /// Who asks (recorded in the log; default: the caller).
    #[serde(default)]
    pub created_by: Option<String>,
    /// RFC 3339 expiry, in the future; none = never expires.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `POST /api/auth/keys` answer: the raw key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyCreated {
    /// The key's public id.
    pub key_id: String,
    /// The key (`hgr_...`): shown only now, stored only as a hash.
    pub raw_key: String,
    /// Principal it authenticates as.
    pub principal_id: String,
    /// Its name.
    pub name: String,
    /// RFC 3339 expiry, if any.
    #[schema(required = true)]
    pub expires_at: Option<String>,
}

/// Creates an API key for a principal. The raw key is in this answer only.
#[utoipa::path(
    post,
    path = "/auth/keys",
    tag = "auth",
    operation_id = "create_key",
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; `raw_key` is shown only now", body = KeyCreated,
            links(
                ("RevokeKey" = (operation_id = "revoke_key", parameters(("id" = "$response.body#/key_id")))),
                ("ListKeys" = (operation_id = "list_keys", parameters(("id" = "$response.body#/principal_id")))),
            ),
        ),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid principal_id, name or expires_at", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["auth:write"]))
)]
pub async fn create_key(
    State(keys): State<KeyRing>,
    Extension(caller): Extension<Principal>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    check_principal("principal_id", &body.principal_id)?;
    check_name(&body.name)?;
    let expires_at = check_expiry(body.expires_at.as_deref())?;
    let (key, raw) = keys
        .create(
            NewKey {
                principal_id: &body.principal_id,
                name: &body.name,
                kind: KIND_KEY,
                expires_at,
                parent_key_id: None,
            },
            None,
        )
        .await
        .map_err(storage)?;
    tracing::info!(
        key_id = %key.key_id,
        principal = %key.principal_id,
        by = ?body.created_by.as_deref().unwrap_or(&caller.id),
        "API key created"
    );
    Ok((
        StatusCode::CREATED,
        Json(KeyCreated {
            key_id: key.key_id,
            raw_key: raw,
            principal_id: key.principal_id,
            name: key.name,
            expires_at: key.expires_at,
        }),
    ))
}

/// `DELETE /api/auth/keys/{key_id}` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    /// Who revokes (recorded in the log; default: the caller).
    #[serde(default)]
    pub revoked_by: Option<String>,
    /// Why (recorded in the log).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `DELETE /api/auth/keys/{key_id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRevoked {
    /// The key.
    pub key_id: String,
    /// Always true.
    pub revoked: bool,
}

/// Parses an optional JSON body (empty = default).
fn optional_body<T: Default + serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", e.to_string())
        } else {
            ApiError::validation(e.to_string())
        }
    })
}

/// Revokes an API key (or personal token): it fails with 401 from now on.
/// (`/auth/keys/{id}` names a key here and a principal in `GET`: one route.)
/// Revoking a revoked key changes nothing.
#[utoipa::path(
    delete,
    path = "/auth/keys/{id}",
    tag = "auth",
    operation_id = "revoke_key",
    params(("id" = String, Path, description = "The key's id (`key_id`)")),
    request_body(
        content = Option<RevokeKey>,
        content_type = "application/json",
        description = "Optional; the content type is not checked",
    ),
    responses(
        (status = 200, description = "Revoked", body = KeyRevoked),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 422, description = "Unknown field or wrong type in the body", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["auth:write"]))
)]
pub async fn revoke_key(
    State(keys): State<KeyRing>,
    Extension(caller): Extension<Principal>,
    ApiPath(key_id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<KeyRevoked>, ApiError> {
    let body: RevokeKey = optional_body(&body)?;
    let revoked = keys.revoke(&key_id).await.map_err(storage)?;
    if revoked.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "KeyNotFoundError",
            format!("key '{key_id}' not found"),
        ));
    }
    tracing::info!(
        key_id = ?key_id,
        by = ?body.revoked_by.as_deref().unwrap_or(&caller.id),
        reason = ?body.reason.as_deref().unwrap_or(""),
        "API key revoked"
    );
    Ok(Json(KeyRevoked {
        key_id,
        revoked: true,
    }))
}

/// A key as listed: never the key nor its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    /// The key's public id.
    pub key_id: String,
    /// Its name.
    pub name: String,
    /// The first characters of the key (`hgr_` and 8 more), to recognize it.
    pub prefix: String,
    /// Principal it authenticates as.
    pub principal_id: String,
    /// `key` (API key) or `token` (personal token).
    pub kind: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 expiry, if any.
    #[schema(required = true)]
    pub expires_at: Option<String>,
    /// RFC 3339, if revoked.
    #[schema(required = true)]
    pub revoked_at: Option<String>,
}

impl From<StoredKey> for KeyInfo {
    fn from(k: StoredKey) -> Self {
        Self {
            key_id: k.key_id,
            name: k.name,
            prefix: k.prefix,
            principal_id: k.principal_id,
            kind: k.kind,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// `GET /api/auth/keys/{principal_id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// The principal's keys and tokens, oldest first (revoked ones included).
    pub keys: Vec<KeyInfo>,
    /// How many.
    pub total: usize,
}

/// Lists a principal's keys and personal tokens (metadata only).
#[utoipa::path(
    get,
    path = "/auth/keys/{id}",
    tag = "auth",
    operation_id = "list_keys",
    params(("id" = String, Path, description = "The principal's id (`principal_id`)")),
    responses(
        (status = 200, description = "The principal's keys", body = KeyList),
        (status = 404, description = "No principal with this id (it has no key and no role)", body = ErrorBody),
    ),
    security(("bearer" = ["auth:read"]))
)]
pub async fn list_keys(
    State(keys): State<KeyRing>,
    State(access): State<Access>,
    ApiPath(principal_id): ApiPath<String>,
) -> Result<Json<KeyList>, ApiError> {
    let keys: Vec<KeyInfo> = keys
        .list(Some(&principal_id), None)
        .into_iter()
        .map(Into::into)
        .collect();
    if keys.is_empty() && access.roles_of(&principal_id).is_empty() {
        return Err(principal_not_found(&principal_id));
    }
    Ok(Json(KeyList {
        total: keys.len(),
        keys,
    }))
}

fn principal_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "PrincipalNotFoundError",
        format!("principal '{id}' not found (it has no key and no role)"),
    )
}

// ----- roles -----

/// A request rate: `requests` per `per_seconds`, up to `burst` at once.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RateLimit)]
pub struct RateLimitView {
    /// Requests per window (1 to 1,000,000).
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub requests: u32,
    /// The window in seconds (1 to 86,400).
    #[schema(minimum = 1, maximum = 86_400)]
    pub per_seconds: u32,
    /// Requests allowed at once (default `requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub burst: Option<u32>,
}

impl From<RateLimit> for RateLimitView {
    fn from(l: RateLimit) -> Self {
        Self {
            requests: l.requests,
            per_seconds: l.per_seconds,
            burst: l.burst,
        }
    }
}

impl From<RateLimitView> for RateLimit {
    fn from(l: RateLimitView) -> Self {
        Self {
            requests: l.requests,
            per_seconds: l.per_seconds,
            burst: l.burst,
        }
    }
}

/// A role.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Role)]
pub struct RoleView {
    /// Id (`a-z`, `0-9`, `_`, `-`; 1 to 64).
    pub id: String,
    /// What it is for.
    pub description: String,
    /// Permissions: `resource:action`, `resource:*` or `*`.
    pub permissions: Vec<String>,
    /// Defined by Hangar (cannot be changed or removed).
    pub builtin: bool,
    /// Request rate of each key holding it; null = the server default.
    #[schema(required = true)]
    pub rate_limit: Option<RateLimitView>,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        Self {
            id: r.id,
            description: r.description,
            permissions: r.permissions.iter().map(ToString::to_string).collect(),
            builtin: r.builtin,
            rate_limit: r.rate_limit.map(Into::into),
        }
    }
}

/// A list of roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    /// The roles, by id.
    pub roles: Vec<RoleView>,
    /// How many.
    pub total: usize,
}

fn role_list(roles: impl IntoIterator<Item = Role>) -> Json<RoleList> {
    let roles: Vec<RoleView> = roles.into_iter().map(Into::into).collect();
    Json(RoleList {
        total: roles.len(),
        roles,
    })
}

/// Lists every role, built-in and custom.
#[utoipa::path(
    get,
    path = "/auth/roles",
    tag = "auth",
    operation_id = "list_roles",
    responses((status = 200, description = "All roles", body = RoleList)),
    security(("bearer" = ["auth:read"]))
)]
pub async fn list_roles(State(access): State<Access>) -> Json<RoleList> {
    role_list(access.roles())
}

/// Lists the built-in roles (admin, operator, developer, viewer, auditor).
#[utoipa::path(
    get,
    path = "/auth/roles/builtin",
    tag = "auth",
    operation_id = "list_builtin_roles",
    responses((status = 200, description = "The built-in roles", body = RoleList)),
    security(("bearer" = ["auth:read"]))
)]
pub async fn list_builtin_roles() -> Json<RoleList> {
    role_list(hangar_core::builtin_roles())
}

fn role_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "RoleNotFoundError",
        format!("role '{id}' not found"),
    )
}

/// Shows one role.
#[utoipa::path(
    get,
    path = "/auth/roles/{role_id}",
    tag = "auth",
    operation_id = "get_role",
    params(("role_id" = String, Path, description = "Role id")),
    responses(
        (status = 200, description = "The role", body = RoleView),
        (status = 404, description = "No such role", body = ErrorBody),
    ),
    security(("bearer" = ["auth:read"]))
)]
pub async fn get_role(
    State(access): State<Access>,
    ApiPath(role_id): ApiPath<String>,
) -> Result<Json<RoleView>, ApiError> {
    access
        .role(&role_id)
        .map(|r| Json(r.into()))
        .ok_or_else(|| role_not_found(&role_id))
}

/// `POST /api/auth/roles` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    /// Id (`a-z`, `0-9`, `_`, `-`; 1 to 64; not a built-in role's).
    pub id: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Known permissions (`resource:action`, `resource:*` or `*`).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Request rate of each key holding it; none = the server default.
    #[serde(default)]
    pub rate_limit: Option<RateLimitView>,
}

/// `PUT /api/auth/roles/{role_id}` body: the role's new content.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRole {
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Known permissions (replace the current ones).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Request rate of each key holding it; none = the server default.
    #[serde(default)]
    pub rate_limit: Option<RateLimitView>,
}

fn build_role(
    id: String,
    description: String,
    permissions: Vec<String>,
    rate_limit: Option<RateLimitView>,
) -> Result<Role, ApiError> {
    if description.chars().count() > 1024 {
        return Err(ApiError::validation("description: at most 1024 characters"));
    }
    let permissions = permissions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.parse::<Permission>()
                .map_err(|e| ApiError::validation(format!("permissions[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Role {
        id,
        description,
        permissions,
        builtin: false,
        rate_limit: rate_limit.map(Into::into),
    })
}

/// Creates a custom role.
#[utoipa::path(
    post,
    path = "/auth/roles",
    tag = "auth",
    operation_id = "create_role",
    request_body = CreateRole,
    responses(
        (status = 201, description = "Created", body = RoleView,
            links(("GetRole" = (operation_id = "get_role", parameters(("role_id" = "$response.body#/id")))))),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 409, description = "A role with this id exists (built-in ids are reserved)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid id, permission or rate limit", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["auth:write"]))
)]
pub async fn create_role(
    State(access): State<Access>,
    ApiJson(body): ApiJson<CreateRole>,
) -> Result<(StatusCode, Json<RoleView>), ApiError> {
    let role = build_role(body.id, body.description, body.permissions, body.rate_limit)?;
    let role = access.create_role(role).await?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

/// Replaces a custom role's description, permissions and rate limit.
#[utoipa::path(
    put,
    path = "/auth/roles/{role_id}",
    tag = "auth",
    operation_id = "update_role",
    params(("role_id" = String, Path, description = "Role id")),
    request_body = UpdateRole,
    responses(
        (status = 200, description = "Updated", body = RoleView),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 409, description = "Built-in roles cannot be changed", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid permission or rate limit", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["auth:write"]))
)]
pub async fn update_role(
    State(access): State<Access>,
    ApiPath(role_id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateRole>,
) -> Result<Json<RoleView>, ApiError> {
    if hangar_core::is_builtin_role_id(&role_id) {
        return Err(AccessError::Role(RoleError::Reserved(role_id)).into());
    }
    if access.role(&role_id).is_none() {
        return Err(role_not_found(&role_id));
    }
    let role = build_role(role_id, body.description, body.permissions, body.rate_limit)?;
    Ok(Json(access.update_role(role).await?.into()))
}

/// `DELETE /api/auth/roles/{role_id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleDeleted {
    /// The role.
    pub role_id: String,
    /// Always true.
    pub deleted: bool,
}

/// Deletes a custom role; the principals holding it lose its permissions.
#[utoipa::path(
    delete,
    path = "/auth/roles/{role_id}",
    tag = "auth",
    operation_id = "delete_role",
    params(("role_id" = String, Path, description = "Role id")),
    responses(
        (status = 200, description = "Deleted", body = RoleDeleted),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 409, description = "Built-in roles cannot be removed", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["auth:write"]))
)]
pub async fn delete_role(
    State(access): State<Access>,
    ApiPath(role_id): ApiPath<String>,
) -> Result<Json<RoleDeleted>, ApiError> {
    access.delete_role(&role_id).await?;
    Ok(Json(RoleDeleted {
        role_id,
        deleted: true,
    }))
}

// ----- principals -----

/// `POST /api/auth/principals/{principal_id}/roles` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRole {
    /// The role to give.
    pub role_id: String,
}

/// A role assignment change.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleAssignment {
    /// The principal.
    pub principal_id: String,
    /// The role.
    pub role_id: String,
    /// Whether the principal holds the role now.
    pub assigned: bool,
}

/// Gives a principal a role (a principal needs no key to be given roles).
#[utoipa::path(
    post,
    path = "/auth/principals/{principal_id}/roles",
    tag = "auth",
    operation_id = "assign_role",
    params(("principal_id" = String, Path, description = "Principal id")),
    request_body = AssignRole,
    responses(
        (status = 200, description = "Assigned (also when it was already)", body = RoleAssignment),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Invalid principal id or body", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["auth:write"]))
)]
pub async fn assign_role(
    State(access): State<Access>,
    ApiPath(principal_id): ApiPath<String>,
    ApiJson(body): ApiJson<AssignRole>,
) -> Result<Json<RoleAssignment>, ApiError> {
    check_principal("principal_id", &principal_id)?;
    access.assign(&principal_id, &body.role_id).await?;
    Ok(Json(RoleAssignment {
        principal_id,
        role_id: body.role_id,
        assigned: true,
    }))
}

/// Takes a role from a principal. The last principal holding `admin` keeps it.
#[utoipa::path(
    delete,
    path = "/auth/principals/{principal_id}/roles/{role_id}",
    tag = "auth",
    operation_id = "unassign_role",
    params(
        ("principal_id" = String, Path, description = "Principal id"),
        ("role_id" = String, Path, description = "Role id"),
    ),
    responses(
        (status = 200, description = "Taken away", body = RoleAssignment),
        (status = 404, description = "The principal does not hold the role", body = ErrorBody),
        (status = 409, description = "The last principal holding `admin` keeps it", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["auth:write"]))
)]
pub async fn unassign_role(
    State(access): State<Access>,
    ApiPath((principal_id, role_id)): ApiPath<(String, String)>,
) -> Result<Json<RoleAssignment>, ApiError> {
    access.unassign(&principal_id, &role_id).await?;
    Ok(Json(RoleAssignment {
        principal_id,
        role_id,
        assigned: false,
    }))
}

/// A principal: who a key authenticates as.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrincipalInfo {
    /// Its id.
    pub principal_id: String,
    /// Role ids assigned to it.
    pub roles: Vec<String>,
    /// Its keys and tokens that still work (not revoked, not expired).
    pub active_keys: usize,
}

/// `GET /api/auth/principals` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrincipalList {
    /// Principals with a key or a role, by id.
    pub principals: Vec<PrincipalInfo>,
    /// How many.
    pub total: usize,
}

/// Lists principals: those with a key or a role.
#[utoipa::path(
    get,
    path = "/auth/principals",
    tag = "auth",
    operation_id = "list_principals",
    responses((status = 200, description = "The principals", body = PrincipalList)),
    security(("bearer" = ["auth:read"]))
)]
pub async fn list_principals(
    State(keys): State<KeyRing>,
    State(access): State<Access>,
) -> Json<PrincipalList> {
    let with_keys = keys.principals();
    let assigned = access.assignments();
    let ids: BTreeSet<&String> = with_keys.keys().chain(assigned.keys()).collect();
    let principals: Vec<PrincipalInfo> = ids
        .into_iter()
        .map(|id| PrincipalInfo {
            principal_id: id.clone(),
            roles: assigned.get(id).cloned().unwrap_or_default(),
            active_keys: with_keys.get(id).copied().unwrap_or(0),
        })
        .collect();
    Json(PrincipalList {
        total: principals.len(),
        principals,
    })
}

/// `GET /api/auth/principals/{principal_id}/roles` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrincipalRoles {
    /// The principal.
    pub principal_id: String,
    /// Role ids assigned to it.
    pub roles: Vec<String>,
    /// What those roles allow (wildcards kept, covered permissions left out).
    pub permissions: Vec<String>,
}

/// Lists a principal's roles and what they allow.
#[utoipa::path(
    get,
    path = "/auth/principals/{principal_id}/roles",
    tag = "auth",
    operation_id = "list_principal_roles",
    params(("principal_id" = String, Path, description = "Principal id")),
    responses(
        (status = 200, description = "Its roles", body = PrincipalRoles),
        (status = 404, description = "No principal with this id (it has no key and no role)", body = ErrorBody),
    ),
    security(("bearer" = ["auth:read"]))
)]
pub async fn list_principal_roles(
    State(keys): State<KeyRing>,
    State(access): State<Access>,
    ApiPath(principal_id): ApiPath<String>,
) -> Result<Json<PrincipalRoles>, ApiError> {
    let roles = access.roles_of(&principal_id);
    if roles.is_empty() && keys.list(Some(&principal_id), None).is_empty() {
        return Err(principal_not_found(&principal_id));
    }
    let grants = access.resolve(&principal_id);
    Ok(Json(PrincipalRoles {
        roles,
        permissions: grants
            .permissions()
            .iter()
            .map(ToString::to_string)
            .collect(),
        principal_id,
    }))
}

/// `POST /api/auth/check-permission` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckPermission {
    /// The principal.
    pub principal_id: String,
    /// e.g. `providers:start`.
    pub permission: String,
}

/// `POST /api/auth/check-permission` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionCheck {
    /// The principal.
    pub principal_id: String,
    /// The permission.
    pub permission: String,
    /// Whether one of its roles allows it.
    pub allowed: bool,
}

/// Whether a principal's roles allow a permission.
#[utoipa::path(
    post,
    path = "/auth/check-permission",
    tag = "auth",
    operation_id = "check_permission",
    request_body = CheckPermission,
    responses(
        (status = 200, description = "The answer", body = PermissionCheck),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Not a permission", body = ErrorBody),
    ),
    security(("bearer" = ["auth:read"]))
)]
pub async fn check_permission(
    State(access): State<Access>,
    ApiJson(body): ApiJson<CheckPermission>,
) -> Result<Json<PermissionCheck>, ApiError> {
    let permission: Permission = body
        .permission
        .parse()
        .map_err(|e| ApiError::validation(format!("permission: {e}")))?;
    let allowed = access.resolve(&body.principal_id).allows(&permission);
    Ok(Json(PermissionCheck {
        principal_id: body.principal_id,
        permission: permission.to_string(),
        allowed,
    }))
}

/// The auth management routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(create_key))
        .routes(routes!(list_keys, revoke_key))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(list_builtin_roles))
        .routes(routes!(get_role, update_role, delete_role))
        .routes(routes!(list_principals))
        .routes(routes!(list_principal_roles, assign_role))
        .routes(routes!(unassign_role))
        .routes(routes!(check_permission))
}
