//! Agents: their data and cookie, provision logs, advertised queues and images.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use testflinger_shared::Timestamp;

use super::ok_text;
use crate::auth::CallerOf;
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
    CallerOf(caller): CallerOf,
    Segment(name): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    state
        .app
        .post_agent_data(&caller, &name, body, Timestamp::now())
        .await?;
    Ok(agent_cookie(&name))
}

/// `{"status": "OK"}` with the `agent_name` cookie.
fn agent_cookie(name: &str) -> Response {
    let cookie = format!("agent_name={name}; HttpOnly; Path=/; SameSite=Strict");
    (
        [(header::SET_COOKIE, cookie)],
        Json(json!({"status": "OK"})),
    )
        .into_response()
}

/// `POST /v2/agents/{name}/data`: the agent's report; the same cookie.
pub async fn post_agent_data_v2(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    Segment(name): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    state
        .app
        .post_agent_data_v2(&caller, &name, body, Timestamp::now())
        .await?;
    Ok(agent_cookie(&name))
}

/// `PATCH /v2/agents/{name}/commanded_mode`
pub async fn command_agent_mode(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    Segment(name): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    state
        .app
        .command_agent_mode(&caller, &name, &body, Timestamp::now())
        .await?;
    Ok(Json(json!({"status": "OK"})))
}

/// `PUT /v2/agents/{name}/owner` `{"client_id": "<agent client>" | null}`:
/// an admin reassigns (or releases) an agent name.
pub async fn assign_agent_owner(
    State(state): State<AppState>,
    Segment(name): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let change = state
        .app
        .assign_agent_owner(&name, &body, Timestamp::now())
        .await?;
    Ok(Json(views::agent_owner_change(&change)))
}

/// `GET /v2/agents/data`
pub async fn list_agents_v2(State(state): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let listing = state.app.list_agents_v2(Timestamp::now()).await?;
    Ok(Json(views::agents_v2(&listing)))
}

/// `GET /v2/agents/{name}/data`
pub async fn get_agent_v2(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    Segment(name): Segment,
) -> ApiResult<Json<Value>> {
    let listing = state
        .app
        .get_agent_v2(&caller, &name, Timestamp::now())
        .await?;
    Ok(Json(views::agents_v2(&listing).remove(0)))
}

/// `GET /v1/agents/data`: every agent, without its logs.
pub async fn list_agents(State(state): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let listing = state.app.list_agents(Timestamp::now()).await?;
    Ok(Json(views::agents(&listing)))
}

/// `GET /v1/agents/data/{name}`: the agent reading its own data is heard
/// from.
pub async fn get_agent(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    Segment(name): Segment,
) -> ApiResult<Json<Value>> {
    let listing = state
        .app
        .get_agent(&caller, &name, Timestamp::now())
        .await?;
    let agent = &listing.agents[0];
    Ok(Json(views::agent(agent, true, &listing)))
}

/// `POST /v1/agents/provision_logs/{name}`
pub async fn post_provision_log(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    Segment(name): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    state
        .app
        .post_provision_log(&caller, &name, &body, Timestamp::now())
        .await?;
    Ok(ok_text())
}
