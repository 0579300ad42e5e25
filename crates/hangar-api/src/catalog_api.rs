//! The catalog of deployable MCP servers: `GET/POST /api/catalog`,
//! `GET/DELETE /api/catalog/{entry_id}`, `POST /api/catalog/{entry_id}/deploy`.
//!
//! Entries are built in (shipped in code, `builtin: true`, not deletable) or
//! added over the API (id = name, persisted before the answer). Deploying an
//! entry creates a provider exactly like `POST /api/providers`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use hangar_core::{Grants, Permission, ProviderMode, validate_provider_id};
use hangar_runtime::catalog::{self, CatalogEntry, CatalogError, NewCatalogEntry};
use hangar_runtime::{CatalogService, Engine, ProviderSource};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::ApiContext;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;

/// The catalog routes (documented in the OpenAPI document).
pub fn routes() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list_entries, add_entry))
        .routes(routes!(get_entry, delete_entry))
        .routes(routes!(deploy_entry))
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let (status, kind) = match &e {
            CatalogError::NotFound(_) => (StatusCode::NOT_FOUND, "CatalogEntryNotFoundError"),
            CatalogError::AlreadyExists(_) => {
                (StatusCode::CONFLICT, "CatalogEntryAlreadyExistsError")
            }
            CatalogError::Builtin(_) => (StatusCode::CONFLICT, "BuiltinCatalogEntryError"),
            CatalogError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ValidationError"),
            CatalogError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "StorageError"),
        };
        Self::new(status, kind, e.to_string())
    }
}

/// One catalog entry.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CatalogEntry)]
pub struct CatalogEntryView {
    /// Unique id; for user entries, the name.
    #[schema(example = "time")]
    pub entry_id: String,
    /// Name.
    #[schema(example = "time")]
    pub name: String,
    /// Short description.
    pub description: String,
    /// How deployed providers run.
    #[schema(value_type = crate::schema::ProviderMode)]
    pub mode: String,
    /// Subprocess argv (program first), or null.
    #[schema(required = true, example = json!(["uvx", "mcp-server-time"]))]
    pub command: Option<Vec<String>>,
    /// Docker image, or null.
    #[schema(required = true)]
    pub image: Option<String>,
    /// Remote Streamable HTTP URL, or null.
    #[schema(required = true)]
    pub endpoint: Option<String>,
    /// Searchable tags.
    #[schema(example = json!(["time", "official", "python"]))]
    pub tags: Vec<String>,
    /// Environment of deployed providers, names only: values are shown as
    /// `<redacted>`.
    pub env: BTreeMap<String, String>,
    /// The variables a deploy may set.
    pub inputs: Vec<CatalogInputView>,
    /// Shipped with Hangar (cannot be deleted).
    pub builtin: bool,
}

/// A variable a deploy may (or must) set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CatalogInput)]
pub struct CatalogInputView {
    /// The environment variable.
    #[schema(example = "TZ")]
    pub name: String,
    /// What to put there.
    #[serde(default)]
    pub description: String,
    /// Whether a deploy must set it (unless the entry's env has a value).
    #[serde(default)]
    pub required: bool,
}

impl From<CatalogInputView> for catalog::CatalogInput {
    fn from(i: CatalogInputView) -> Self {
        Self {
            name: i.name,
            description: i.description,
            required: i.required,
        }
    }
}

impl From<catalog::CatalogInput> for CatalogInputView {
    fn from(i: catalog::CatalogInput) -> Self {
        Self {
            name: i.name,
            description: i.description,
            required: i.required,
        }
    }
}

impl From<CatalogEntry> for CatalogEntryView {
    fn from(e: CatalogEntry) -> Self {
        Self {
            entry_id: e.entry_id,
            name: e.name,
            description: e.description,
            mode: e.mode.as_str().to_owned(),
            command: e.command,
            image: e.image,
            endpoint: e.endpoint,
            tags: e.tags,
            env: e
                .env
                .into_keys()
                .map(|k| (k, crate::rest::REDACTED.to_owned()))
                .collect(),
            inputs: e.inputs.into_iter().map(Into::into).collect(),
            builtin: e.builtin,
        }
    }
}

/// `GET /api/catalog` filters; empty values do not filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogQuery {
    /// Case-insensitive substring of the name or description.
    pub search: Option<String>,
    /// Comma-separated tags; an entry must have all of them (AND).
    #[param(example = "official,python")]
    pub tags: Option<String>,
}

/// Entries matching the filters.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogList {
    /// Sorted by `entry_id`.
    pub entries: Vec<CatalogEntryView>,
    /// Number of entries returned.
    pub total: usize,
}

/// `POST /api/catalog` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCatalogEntry {
    /// Entry name, also its id: `^[a-zA-Z0-9_-]{1,64}$`.
    #[schema(value_type = String, required = true, example = "weather")]
    pub name: Option<String>,
    /// Short description (non-empty).
    #[schema(value_type = String, required = true, example = "Weather forecasts")]
    pub description: Option<String>,
    /// How deployed providers run (default `subprocess`; `container` is an
    /// alias of `docker`).
    #[schema(value_type = Option<crate::schema::ProviderMode>)]
    pub mode: Option<String>,
    /// Subprocess argv (required for subprocess mode).
    #[schema(example = json!(["uvx", "mcp-weather"]))]
    pub command: Option<Vec<String>>,
    /// Docker image (required for docker mode).
    pub image: Option<String>,
    /// Streamable HTTP URL (required for remote mode).
    pub endpoint: Option<String>,
    /// Searchable tags (non-empty, without `,`).
    pub tags: Option<Vec<String>>,
    /// Environment of deployed providers (subprocess and docker).
    pub env: Option<BTreeMap<String, String>>,
    /// The variables a deploy may set (names unique); a deploy can set no
    /// other variable.
    pub inputs: Option<Vec<CatalogInputView>>,
}

/// `DELETE /api/catalog/{entry_id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogEntryDeleted {
    /// The deleted entry.
    pub entry_id: String,
    /// Always true.
    pub deleted: bool,
}

/// `POST /api/catalog/{entry_id}/deploy` body (optional; `{}` = defaults).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployCatalogEntry {
    /// Id of the new provider (default: the entry id).
    #[schema(example = "time-utc")]
    pub provider_id: Option<String>,
    /// Values of the entry's declared inputs, merged over its env (these
    /// win); other variables are refused. A `${secret:NAME}` reference needs
    /// `secrets:use`.
    pub env: Option<BTreeMap<String, String>>,
}

/// `POST /api/catalog/{entry_id}/deploy` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogEntryDeployed {
    /// The provider created.
    pub provider_id: String,
    /// Always true.
    pub created: bool,
    /// The entry it was created from.
    pub entry_id: String,
}

/// A required string field: 422 naming it when missing or empty.
fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ApiError::validation(format!(
            "invalid catalog entry: {field}: is required"
        ))),
    }
}

/// List catalog entries.
#[utoipa::path(
    get,
    path = "/catalog",
    tag = "catalog",
    params(CatalogQuery),
    responses(
        (status = 200, description = "Matching entries, sorted by id", body = CatalogList),
        (status = 422, description = "Malformed query string", body = ErrorBody),
    ),
    security(("bearer" = ["catalog:read"]))
)]
pub async fn list_entries(
    State(catalog): State<Arc<CatalogService>>,
    query: Result<Query<CatalogQuery>, QueryRejection>,
) -> Result<Json<CatalogList>, ApiError> {
    let Query(q) = query?;
    let entries: Vec<CatalogEntryView> = catalog
        .list(q.search.as_deref(), q.tags.as_deref())
        .into_iter()
        .map(CatalogEntryView::from)
        .collect();
    Ok(Json(CatalogList {
        total: entries.len(),
        entries,
    }))
}

/// Show one catalog entry.
#[utoipa::path(
    get,
    path = "/catalog/{entry_id}",
    tag = "catalog",
    params(("entry_id" = String, Path, description = "Catalog entry id")),
    responses(
        (status = 200, description = "The entry", body = CatalogEntryView),
        (status = 404, description = "No such entry", body = ErrorBody),
    ),
    security(("bearer" = ["catalog:read"]))
)]
pub async fn get_entry(
    State(catalog): State<Arc<CatalogService>>,
    Path(entry_id): Path<String>,
) -> Result<Json<CatalogEntryView>, ApiError> {
    Ok(Json(catalog.get(&entry_id)?.into()))
}

/// Add a user entry; it is persisted before the answer.
#[utoipa::path(
    post,
    path = "/catalog",
    tag = "catalog",
    request_body = CreateCatalogEntry,
    responses(
        (status = 201, description = "Entry created", body = CatalogEntryView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "An entry (built-in or user) with this name exists", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid entry; the message names the field", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["providers:define"]))
)]
pub async fn add_entry(
    State(catalog): State<Arc<CatalogService>>,
    ApiJson(body): ApiJson<CreateCatalogEntry>,
) -> Result<(StatusCode, Json<CatalogEntryView>), ApiError> {
    let name = required(body.name, "name")?;
    let description = required(body.description, "description")?;
    let mode = match body.mode.as_deref() {
        None | Some("") => ProviderMode::Subprocess,
        Some(m) => m
            .parse::<ProviderMode>()
            .map_err(|e| ApiError::validation(format!("invalid catalog entry: mode: {e}")))?,
    };
    let entry = catalog
        .add(NewCatalogEntry {
            name,
            description,
            mode,
            command: body.command,
            image: body.image,
            endpoint: body.endpoint,
            tags: body.tags.unwrap_or_default(),
            env: body.env.unwrap_or_default(),
            inputs: body
                .inputs
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(entry.into())))
}

/// Delete a user entry (providers deployed from it stay). Built-in entries
/// cannot be deleted.
#[utoipa::path(
    delete,
    path = "/catalog/{entry_id}",
    tag = "catalog",
    params(("entry_id" = String, Path, description = "Catalog entry id")),
    responses(
        (status = 200, description = "Entry deleted", body = CatalogEntryDeleted),
        (status = 404, description = "No such entry", body = ErrorBody),
        (status = 409, description = "Built-in entries cannot be deleted", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["catalog:write"]))
)]
pub async fn delete_entry(
    State(catalog): State<Arc<CatalogService>>,
    Path(entry_id): Path<String>,
) -> Result<Json<CatalogEntryDeleted>, ApiError> {
    catalog.remove(&entry_id).await?;
    Ok(Json(CatalogEntryDeleted {
        entry_id,
        deleted: true,
    }))
}

/// Create a provider from an entry, exactly like `POST /api/providers`
/// (persisted; started on first use). The body is optional.
#[utoipa::path(
    post,
    path = "/catalog/{entry_id}/deploy",
    tag = "catalog",
    params(("entry_id" = String, Path, description = "Catalog entry id")),
    request_body(
        content = Option<DeployCatalogEntry>,
        description = "Optional: provider id (default: the entry id) and env merged over the entry's"
    ),
    responses(
        (status = 201, description = "Provider created", body = CatalogEntryDeployed),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "The env references a secret and the caller lacks `secrets:use`", body = ErrorBody),
        (status = 404, description = "No such entry", body = ErrorBody),
        (status = 409, description = "A provider or group with this id exists", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid provider id, or env that is not a declared input; the message names the field", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["catalog:deploy"]))
)]
pub async fn deploy_entry(
    State(catalog): State<Arc<CatalogService>>,
    State(engine): State<Engine>,
    Extension(grants): Extension<Arc<Grants>>,
    Path(entry_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CatalogEntryDeployed>), ApiError> {
    let body = body.map_err(|r| {
        let kind = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "PayloadTooLarge"
        } else {
            "BadRequest"
        };
        ApiError::new(r.status(), kind, r.body_text())
    })?;
    let entry = catalog.get(&entry_id)?;
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        DeployCatalogEntry::default()
    } else {
        let Json(b) = Json::<DeployCatalogEntry>::from_bytes(&body)?;
        b
    };
    let provider_id = body.provider_id.unwrap_or_else(|| entry.entry_id.clone());
    validate_provider_id(&provider_id)
        .map_err(|e| ApiError::validation(format!("provider_id: {}", e.message)))?;
    let env = body.env.unwrap_or_default();
    let spec = catalog::to_spec(&entry, &env)
        .map_err(|e| ApiError::validation(format!("invalid provider spec: {e}")))?;
    if !hangar_runtime::secrets::references(&env).is_empty() {
        crate::authz::require(
            &grants,
            &Permission::SECRETS_USE,
            "give a deployed provider a secret (`${secret:...}` in env)",
        )?;
    }
    engine
        .add_provider(&provider_id, spec, ProviderSource::Api)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CatalogEntryDeployed {
            provider_id,
            created: true,
            entry_id,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_paths() {
        let (_, api) = routes().split_for_parts();
        let paths: Vec<&str> = api.paths.paths.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "/catalog",
                "/catalog/{entry_id}",
                "/catalog/{entry_id}/deploy"
            ]
        );
        let json = serde_json::to_value(&api).expect("openapi json");
        for schema in [
            "CatalogEntry",
            "CatalogList",
            "CreateCatalogEntry",
            "DeployCatalogEntry",
            "CatalogEntryDeployed",
            "CatalogEntryDeleted",
            "ErrorBody",
        ] {
            assert!(
                json["components"]["schemas"][schema].is_object(),
                "{schema} missing"
            );
        }
        let deploy = &json["paths"]["/catalog/{entry_id}/deploy"]["post"];
        assert_ne!(deploy["requestBody"]["required"], true, "{deploy}");
        let entry = &json["components"]["schemas"]["CatalogEntry"];
        assert_eq!(
            entry["required"].as_array().map(Vec::len),
            Some(11),
            "{entry}"
        );
        let create = &json["components"]["schemas"]["CreateCatalogEntry"];
        assert_eq!(
            create["required"],
            serde_json::json!(["name", "description"])
        );
    }
}
