//! REST handlers for groups under `/api/groups`, following the MCP Hangar
//! REST reference.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hangar_core::{BreakerConfig, GroupSpec, MemberSpec, Strategy};
use hangar_runtime::{Engine, ProviderSource, RuntimeError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::ApiJson;

fn status_json(engine: &Engine, id: &str) -> Result<Value, ApiError> {
    Ok(serde_json::to_value(engine.group_status(id)?).unwrap_or(Value::Null))
}

pub async fn list_groups(State(engine): State<Engine>) -> Json<Value> {
    Json(json!({ "groups": engine.group_statuses() }))
}

/// `POST /api/groups` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    group_id: String,
    #[serde(default)]
    strategy: Option<Strategy>,
    #[serde(default)]
    min_healthy: Option<u32>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    members: Vec<MemberSpec>,
    #[serde(default)]
    circuit_breaker: Option<BreakerConfig>,
}

pub async fn create_group(
    State(engine): State<Engine>,
    ApiJson(body): ApiJson<CreateGroup>,
) -> Result<impl IntoResponse, ApiError> {
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
        Json(json!({ "group_id": body.group_id, "created": true })),
    ))
}

pub async fn get_group(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut v = status_json(&engine, &id)?;
    if let Some(obj) = v.as_object_mut() {
        let spec = engine.group(&id)?.spec();
        obj.insert("circuit_breaker".into(), json!(spec.circuit_breaker));
    }
    Ok(Json(v))
}

/// `PUT /api/groups/{id}` body (all optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    strategy: Option<Strategy>,
    min_healthy: Option<u32>,
    description: Option<String>,
    /// Partial: keys not given keep their current value.
    circuit_breaker: Option<serde_json::Map<String, Value>>,
}

pub async fn update_group(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateGroup>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "group_id": id, "updated": true })))
}

pub async fn delete_group(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    engine.remove_group(&id).await?;
    Ok(Json(json!({ "group_id": id, "deleted": true })))
}

pub async fn rebalance_group(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let group = engine.group(&id)?;
    // Re-check members: a health check on every running member.
    for m in &group.spec().members {
        if let Ok(p) = engine.provider(&m.provider) {
            p.health_check().await;
        }
    }
    group.reset();
    Ok(Json(json!({ "status": "rebalanced", "group_id": id })))
}

/// `POST /api/groups/{id}/members` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    member_id: String,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default = "one")]
    priority: u32,
}

fn one() -> u32 {
    1
}

pub async fn add_member(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<impl IntoResponse, ApiError> {
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
        Json(json!({ "group_id": id, "provider_id": body.member_id, "added": true })),
    ))
}

pub async fn remove_member(
    State(engine): State<Engine>,
    Path((id, member)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mut spec = (*engine.group(&id)?.spec()).clone();
    let index = spec
        .member_index(&member)
        .ok_or_else(|| RuntimeError::MemberNotFound {
            group: id.clone(),
            member: member.clone(),
        })?;
    spec.members.remove(index);
    engine.update_group(&id, spec).await?;
    Ok(Json(
        json!({ "group_id": id, "provider_id": member, "removed": true }),
    ))
}
