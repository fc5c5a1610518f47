//! What agents advertise: queues and images.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use testflinger_shared::agents::{
    validate_agent_name, validate_agent_update, validate_images, validate_provision_entry,
    validate_queues,
};
use testflinger_shared::Timestamp;

use super::ok_text;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, Segment};
use crate::AppState;

/// `POST /v1/agents/queues`: `{queue: description}`.
pub async fn advertise_queues(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let queues = validate_queues(&body)?;
    state.store.upsert_queues(&queues, Timestamp::now()).await?;
    Ok(ok_text())
}

/// `GET /v1/agents/queues`
pub async fn list_queues(
    State(state): State<AppState>,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    Ok(Json(state.store.list_queues().await?))
}

/// `POST /v1/agents/images`: `{queue: {image: provision data}}`.
pub async fn advertise_images(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let images = validate_images(&body)?;
    state.store.set_images(&images, Timestamp::now()).await?;
    Ok(ok_text())
}

/// `GET /v1/agents/images/{queue}`
pub async fn get_images(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    Ok(Json(state.store.get_images(&queue).await?))
}

/// `POST /v1/agents/data/{name}`: upserts the agent and hands out the
/// `agent_name` cookie that the claim reads.
pub async fn post_agent_data(
    State(state): State<AppState>,
    Segment(name): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    validate_agent_name(&name)?;
    let update = validate_agent_update(body)?;
    state
        .store
        .upsert_agent(&name, &update, Timestamp::now())
        .await?;
    let cookie = format!("agent_name={name}; HttpOnly; Path=/; SameSite=Strict");
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"status": "OK"})),
    )
        .into_response())
}

/// `GET /v1/agents/data`: every agent, without its logs.
pub async fn list_agents(State(state): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let agents = state.store.list_agents().await?;
    let restricted = state.store.list_restricted_queues().await?;
    Ok(Json(
        agents
            .iter()
            .map(|a| Value::Object(a.view(false, &restricted)))
            .collect(),
    ))
}

/// `GET /v1/agents/data/{name}`
pub async fn get_agent(
    State(state): State<AppState>,
    Segment(name): Segment,
) -> ApiResult<Json<Value>> {
    match state.store.get_agent(&name).await? {
        Some(agent) => {
            let restricted = state.store.list_restricted_queues().await?;
            Ok(Json(Value::Object(agent.view(true, &restricted))))
        }
        None => Err(ApiError::not_found(format!(
            "Agent '{name}' does not exist."
        ))),
    }
}

/// `POST /v1/agents/provision_logs/{name}`
pub async fn post_provision_log(
    State(state): State<AppState>,
    Segment(name): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let entry = validate_provision_entry(&body)?;
    if state
        .store
        .record_provision(&name, &entry, Timestamp::now())
        .await?
    {
        Ok(ok_text())
    } else {
        Err(ApiError::not_found(format!(
            "Agent '{name}' does not exist."
        )))
    }
}
