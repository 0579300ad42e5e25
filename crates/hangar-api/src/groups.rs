//! REST handlers for groups under `/api/groups`, following the MCP Hangar
//! REST reference. Documented like [`crate::rest`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hangar_core::{BreakerConfig, GroupSpec, MemberSpec, Strategy};
use hangar_runtime::{Engine, GroupStatus, ProviderSource, RuntimeError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::schema;

/// `GET /api/groups` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    /// The groups, by id.
    #[schema(value_type = Vec<schema::GroupStatus>)]
    pub groups: Vec<GroupStatus>,
}

/// Lists groups with their members and breaker states.
#[utoipa::path(
    get,
    path = "/groups",
    tag = "groups",
    operation_id = "list_groups",
    responses(
        (status = 200, description = "The groups", body = GroupList),
    ),
    security(("bearer" = ["groups:read"]))
)]
pub async fn list_groups(State(engine): State<Engine>) -> Json<GroupList> {
    Json(GroupList {
        groups: engine.group_statuses(),
    })
}

/// `POST /api/groups` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// Unique id (same rules as provider ids; groups and providers share names).
    #[schema(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$")]
    group_id: String,
    /// How members are picked (default `round_robin`).
    #[serde(default)]
    #[schema(value_type = Option<schema::Strategy>)]
    strategy: Option<Strategy>,
    /// Healthy members needed (default 1, at least 1).
    #[serde(default)]
    #[schema(minimum = 1)]
    min_healthy: Option<u32>,
    /// Free text.
    #[serde(default)]
    description: Option<String>,
    /// The members, in order; each must name an existing provider.
    #[serde(default)]
    #[schema(value_type = Vec<schema::MemberSpec>)]
    members: Vec<MemberSpec>,
    /// Breaker settings (defaults: 5 failures, 30 s).
    #[serde(default)]
    #[schema(value_type = Option<schema::BreakerConfig>)]
    circuit_breaker: Option<BreakerConfig>,
}

/// `POST /api/groups` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupCreated {
    /// The new group's id.
    pub group_id: String,
    /// Always true.
    pub created: bool,
}

/// Creates a group (persisted).
#[utoipa::path(
    post,
    path = "/groups",
    tag = "groups",
    operation_id = "create_group",
    request_body = CreateGroup,
    responses(
        (status = 201, description = "Created", body = GroupCreated,
            links(
                ("GetGroup" = (operation_id = "get_group", parameters(("group_id" = "$response.body#/group_id")))),
                ("UpdateGroup" = (operation_id = "update_group", parameters(("group_id" = "$response.body#/group_id")))),
                ("RebalanceGroup" = (operation_id = "rebalance_group", parameters(("group_id" = "$response.body#/group_id")))),
                ("AddMember" = (operation_id = "add_group_member", parameters(("group_id" = "$response.body#/group_id")))),
                ("DeleteGroup" = (operation_id = "delete_group", parameters(("group_id" = "$response.body#/group_id")))),
            ),
        ),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 404, description = "A member names no existing provider", body = ErrorBody),
        (status = 409, description = "A provider or group with this id exists", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Unknown field or invalid value (the message names the field)", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["groups:write"]))
)]
pub async fn create_group(
    State(engine): State<Engine>,
    ApiJson(body): ApiJson<CreateGroup>,
) -> Result<(StatusCode, Json<GroupCreated>), ApiError> {
    let defaults = GroupSpec::default();
    let spec = GroupSpec {
        strategy: body.strategy.unwrap_or(defaults.strategy),
        min_healthy: body.min_healthy.unwrap_or(defaults.min_healthy),
        members: body.members,
        circuit_breaker: body.circuit_breaker.unwrap_or(defaults.circuit_breaker),
        description: body.description,
    };
    engine
        .add_group(&body.group_id, spec, ProviderSource::Api)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(GroupCreated {
            group_id: body.group_id,
            created: true,
        }),
    ))
}

/// `GET /api/groups/{id}`: the status plus the breaker settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupDetail {
    #[serde(flatten)]
    #[schema(value_type = schema::GroupStatus)]
    status: GroupStatus,
    /// Breaker settings.
    #[schema(value_type = schema::BreakerConfig)]
    circuit_breaker: BreakerConfig,
}

/// One group: members, breaker states and settings.
#[utoipa::path(
    get,
    path = "/groups/{group_id}",
    tag = "groups",
    operation_id = "get_group",
    params(("group_id" = String, Path, description = "Group id")),
    responses(
        (status = 200, description = "The group", body = GroupDetail),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
    ),
    security(("bearer" = ["groups:read"]))
)]
pub async fn get_group(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GroupDetail>, ApiError> {
    let status = engine.group_status(&id)?;
    let circuit_breaker = engine.group(&id)?.spec().circuit_breaker;
    Ok(Json(GroupDetail {
        status,
        circuit_breaker,
    }))
}

/// Breaker settings to change; keys not given keep their value.
#[derive(Debug, ToSchema)]
pub struct BreakerPatch {
    /// Member failures in a row that open the breaker (at least 1).
    #[schema(minimum = 1)]
    pub failure_threshold: Option<u32>,
    /// Seconds an open breaker waits (more than 0, at most 86400).
    #[schema(exclusive_minimum = 0, maximum = 86400)]
    pub reset_timeout_s: Option<f64>,
}

/// `PUT /api/groups/{id}` body (all optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    /// New strategy.
    #[schema(value_type = Option<schema::Strategy>)]
    strategy: Option<Strategy>,
    /// New minimum of healthy members (at least 1).
    #[schema(minimum = 1)]
    min_healthy: Option<u32>,
    /// New description.
    description: Option<String>,
    /// Partial: keys not given keep their current value.
    #[schema(value_type = Option<BreakerPatch>)]
    circuit_breaker: Option<serde_json::Map<String, Value>>,
}

/// `PUT /api/groups/{id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupUpdated {
    /// The group's id.
    pub group_id: String,
    /// Always true.
    pub updated: bool,
}

/// Changes a group's strategy, minimum, description or breaker settings.
#[utoipa::path(
    put,
    path = "/groups/{group_id}",
    tag = "groups",
    operation_id = "update_group",
    params(("group_id" = String, Path, description = "Group id")),
    request_body = UpdateGroup,
    responses(
        (status = 200, description = "Updated", body = GroupUpdated),
        (status = 400, description = "The body is not valid JSON, or the path is malformed", body = ErrorBody),
        (status = 404, description = "No such group (or a member's provider is gone)", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Unknown field or invalid value", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["groups:write"]))
)]
pub async fn update_group(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateGroup>,
) -> Result<Json<GroupUpdated>, ApiError> {
    let mut spec = (*engine.group(&id)?.spec()).clone();
    if let Some(s) = body.strategy {
        spec.strategy = s;
    }
    if let Some(m) = body.min_healthy {
        spec.min_healthy = m;
    }
    if let Some(d) = body.description {
        spec.description = Some(d);
    }
    if let Some(changes) = body.circuit_breaker {
        let mut merged = serde_json::to_value(spec.circuit_breaker)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        merged.extend(changes);
        spec.circuit_breaker = serde_json::from_value::<BreakerConfig>(Value::Object(merged))
            .map_err(|e| ApiError::validation(format!("circuit_breaker: {e}")))?;
    }
    engine.update_group(&id, spec).await?;
    Ok(Json(GroupUpdated {
        group_id: id,
        updated: true,
    }))
}

/// `DELETE /api/groups/{id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupDeleted {
    /// The removed group's id.
    pub group_id: String,
    /// Always true.
    pub deleted: bool,
}

/// Removes a group (its member providers stay).
#[utoipa::path(
    delete,
    path = "/groups/{group_id}",
    tag = "groups",
    operation_id = "delete_group",
    params(("group_id" = String, Path, description = "Group id")),
    responses(
        (status = 200, description = "Removed", body = GroupDeleted),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["groups:write"]))
)]
pub async fn delete_group(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GroupDeleted>, ApiError> {
    engine.remove_group(&id).await?;
    Ok(Json(GroupDeleted {
        group_id: id,
        deleted: true,
    }))
}

/// `POST /api/groups/{id}/rebalance` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupRebalanced {
    /// Always `rebalanced`.
    #[schema(pattern = "^rebalanced$")]
    pub status: &'static str,
    /// The group's id.
    pub group_id: String,
}

/// Health-checks every running member and closes every breaker.
#[utoipa::path(
    post,
    path = "/groups/{group_id}/rebalance",
    tag = "groups",
    operation_id = "rebalance_group",
    params(("group_id" = String, Path, description = "Group id")),
    responses(
        (status = 200, description = "Rebalanced", body = GroupRebalanced),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
    ),
    security(("bearer" = ["groups:write"]))
)]
pub async fn rebalance_group(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GroupRebalanced>, ApiError> {
    let group = engine.group(&id)?;
    // Re-check members: a health check on every running member.
    for m in &group.spec().members {
        if let Ok(p) = engine.provider(&m.provider) {
            p.health_check().await;
        }
    }
    group.reset();
    Ok(Json(GroupRebalanced {
        status: "rebalanced",
        group_id: id,
    }))
}

/// `POST /api/groups/{id}/members` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The provider to add (must exist).
    #[schema(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$")]
    member_id: String,
    /// Routing weight (default 1, at least 1).
    #[serde(default = "one")]
    #[schema(minimum = 1)]
    weight: u32,
    /// Failover priority, lower first (default 1).
    #[serde(default = "one")]
    priority: u32,
}

fn one() -> u32 {
    1
}

/// `POST /api/groups/{id}/members` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberAdded {
    /// The group's id.
    pub group_id: String,
    /// The added provider.
    pub provider_id: String,
    /// Always true.
    pub added: bool,
}

/// Adds a provider to a group.
#[utoipa::path(
    post,
    path = "/groups/{group_id}/members",
    tag = "groups",
    operation_id = "add_group_member",
    params(("group_id" = String, Path, description = "Group id")),
    request_body = AddMember,
    responses(
        (status = 201, description = "Added", body = MemberAdded,
            links(
                ("RemoveMember" = (operation_id = "remove_group_member", parameters(("group_id" = "$response.body#/group_id"), ("member_id" = "$response.body#/provider_id")))),
            ),
        ),
        (status = 400, description = "The body is not valid JSON, or the path is malformed", body = ErrorBody),
        (status = 404, description = "No such group or provider", body = ErrorBody),
        (status = 409, description = "Already a member", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Unknown field or invalid value", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["groups:write"]))
)]
pub async fn add_member(
    State(engine): State<Engine>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<(StatusCode, Json<MemberAdded>), ApiError> {
    let mut spec = (*engine.group(&id)?.spec()).clone();
    if spec.member_index(&body.member_id).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "MemberAlreadyExistsError",
            format!("'{}' is already a member of group '{id}'", body.member_id),
        ));
    }
    spec.members.push(MemberSpec {
        provider: body.member_id.clone(),
        weight: body.weight,
        priority: body.priority,
    });
    engine.update_group(&id, spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(MemberAdded {
            group_id: id,
            provider_id: body.member_id,
            added: true,
        }),
    ))
}

/// `DELETE /api/groups/{id}/members/{member_id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberRemoved {
    /// The group's id.
    pub group_id: String,
    /// The removed provider.
    pub provider_id: String,
    /// Always true.
    pub removed: bool,
}

/// Removes a provider from a group (the provider stays).
#[utoipa::path(
    delete,
    path = "/groups/{group_id}/members/{member_id}",
    tag = "groups",
    operation_id = "remove_group_member",
    params(
        ("group_id" = String, Path, description = "Group id"),
        ("member_id" = String, Path, description = "Member provider id"),
    ),
    responses(
        (status = 200, description = "Removed", body = MemberRemoved),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such group, or not a member", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody),
    ),
    security(("bearer" = ["groups:write"]))
)]
pub async fn remove_member(
    State(engine): State<Engine>,
    ApiPath((id, member)): ApiPath<(String, String)>,
) -> Result<Json<MemberRemoved>, ApiError> {
    let mut spec = (*engine.group(&id)?.spec()).clone();
    let index = spec
        .member_index(&member)
        .ok_or_else(|| RuntimeError::MemberNotFound {
            group: id.clone(),
            member: member.clone(),
        })?;
    spec.members.remove(index);
    engine.update_group(&id, spec).await?;
    Ok(Json(MemberRemoved {
        group_id: id,
        provider_id: member,
        removed: true,
    }))
}
