//! Results: what agents post, what clients read.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use testflinger_shared::logs::LogType;
use testflinger_shared::results::{result_view, validate_result};
use testflinger_shared::Timestamp;

use super::{no_content, ok_text};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JobId, JsonObject};
use crate::AppState;

/// `POST /v1/result/{id}`
pub async fn post_result(
    State(state): State<AppState>,
    JobId(id): JobId,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let patch = validate_result(body)?;
    if state
        .store
        .apply_result(id, &patch, Timestamp::now())
        .await?
    {
        Ok(ok_text())
    } else {
        Err(ApiError::not_found(format!("Job {id} not found.")))
    }
}

/// `GET /v1/result/{id}`
pub async fn get_result(State(state): State<AppState>, JobId(id): JobId) -> ApiResult<Response> {
    let Some(job) = state.store.get_job(id).await? else {
        return Ok(no_content());
    };
    let output = state.store.read_logs(id, LogType::Output, 0).await?;
    let serial = state.store.read_logs(id, LogType::Serial, 0).await?;
    let logs = [(LogType::Output, output), (LogType::Serial, serial)];
    Ok(Json(Value::Object(result_view(&job, &logs))).into_response())
}
