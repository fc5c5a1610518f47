//! Agents: their data and cookie, provision logs, advertised queues and images.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use testflinger_shared::Timestamp;

use super::ok_text;
use crate::error::ApiResult;
use crate::extract::{JsonObject, Segment};
use crate::{views, AppState};

/// `POST /v1/agents/queues`: `{queue: description}`.
pub async fn advertise_queues(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    state.app.advertise_queues(&body, Timestamp::now()).await?;
    Ok(ok_text())
}

/// `GET /v1/agents/queues`
pub async fn list_queues(
    State(state): State<AppState>,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    Ok(Json(state.app.list_queues().await?))
}

/// `POST /v1/agents/images`: `{queue: {image: provision data}}`.
pub async fn advertise_images(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    state.app.advertise_images(&body, Timestamp::now()).await?;
    Ok(ok_text())
}

/// `GET /v1/agents/images/{queue}`
pub async fn get_images(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    Ok(Json(state.app.get_images(&queue).await?))
}

/// `POST /v1/agents/data/{name}`: upserts the agent and hands out the
/// `agent_name` cookie that the claim reads.
pub async fn post_agent_data(
    State(state): State<AppState>,
    Segment(name): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    state
        .app
        .post_agent_data(&name, body, Timestamp::now())
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
    Ok(Json(views::agents(&state.app.list_agents().await?)))
}

/// `GET /v1/agents/data/{name}`
pub async fn get_agent(
    State(state): State<AppState>,
    Segment(name): Segment,
) -> ApiResult<Json<Value>> {
    let listing = state.app.get_agent(&name).await?;
    let agent = &listing.agents[0];
    Ok(Json(views::agent(agent, true, &listing.restricted)))
}

/// `POST /v1/agents/provision_logs/{name}`
pub async fn post_provision_log(
    State(state): State<AppState>,
    Segment(name): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    state
        .app
        .post_provision_log(&name, &body, Timestamp::now())
        .await?;
    Ok(ok_text())
}
