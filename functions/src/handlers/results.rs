//! Results: what agents post, what clients read.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use testflinger_shared::Timestamp;

use super::{no_content, ok_text};
use crate::auth::CallerOf;
use crate::error::ApiResult;
use crate::extract::{JobId, JsonObject};
use crate::{views, AppState};

/// `POST /v1/result/{id}`
pub async fn post_result(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    JobId(id): JobId,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    state
        .app
        .post_result(&caller, id, body, Timestamp::now())
        .await?;
    Ok(ok_text())
}

/// `GET /v1/result/{id}`
pub async fn get_result(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    JobId(id): JobId,
) -> ApiResult<Response> {
    Ok(
        match state.app.get_result(&caller, id, Timestamp::now()).await? {
            Some(result) => Json(Value::Object(views::result(&result))).into_response(),
            None => no_content(),
        },
    )
}

/// `GET /v1/result/{id}/status`: the state and each phase's exit status,
/// without the logs (the newer agent's cancel check, the CLI's `status`).
pub async fn get_status(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    JobId(id): JobId,
) -> ApiResult<Response> {
    Ok(
        match state.app.get_status(&caller, id, Timestamp::now()).await? {
            Some(job) => Json(Value::Object(views::result_status(&job))).into_response(),
            None => no_content(),
        },
    )
}
