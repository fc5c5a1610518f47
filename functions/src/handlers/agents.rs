//! What agents advertise: queues and images.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use std::collections::BTreeMap;
use testflinger_shared::agents::{validate_images, validate_queues};
use testflinger_shared::Timestamp;

use super::ok_text;
use crate::error::ApiResult;
use crate::extract::JsonObject;
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
    Path(queue): Path<String>,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    Ok(Json(state.store.get_images(&queue).await?))
}
