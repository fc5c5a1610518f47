//! Live output: log fragments, and the legacy append-and-consume buffers.

use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use testflinger_shared::logs::{LegacyStream, LogType};
use testflinger_shared::Timestamp;

use super::{no_content, ok_text, text};
use crate::auth::CallerOf;
use crate::error::ApiResult;
use crate::extract::{read_limited, JobId, JsonObject, Segment};
use crate::{query, views, AppState};

/// `POST /v1/result/{id}/log/{output|serial}`
pub async fn post_log(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    JobId(id): JobId,
    Segment(log_type): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    state
        .app
        .post_log(&caller, id, &log_type, &body, Timestamp::now())
        .await?;
    Ok(ok_text())
}

/// `GET /v1/result/{id}/log/{output|serial}?start_fragment=N&start_timestamp=T&phase=P`
pub async fn get_log(
    State(state): State<AppState>,
    JobId(id): JobId,
    Segment(log_type): Segment,
    parts: Parts,
) -> ApiResult<Json<serde_json::Value>> {
    let log_type = LogType::parse(&log_type)?;
    let log_query = query::log_query(&query::pairs(parts.uri.query()))?;
    let fragments = state.app.get_log(id, log_type, &log_query).await?;
    Ok(Json(views::log(log_type, &log_query, &fragments)))
}

/// `POST /v1/result/{id}/output` (legacy): the raw body is appended.
pub async fn post_legacy_output(
    state: State<AppState>,
    caller: CallerOf,
    id: JobId,
    body: Body,
) -> ApiResult<Response> {
    append_legacy(state, caller, id, LegacyStream::Output, body).await
}

/// `POST /v1/result/{id}/serial_output` (legacy).
pub async fn post_legacy_serial(
    state: State<AppState>,
    caller: CallerOf,
    id: JobId,
    body: Body,
) -> ApiResult<Response> {
    append_legacy(state, caller, id, LegacyStream::SerialOutput, body).await
}

/// `GET /v1/result/{id}/output` (legacy): what is new since the last read.
pub async fn get_legacy_output(
    method: axum::http::Method,
    state: State<AppState>,
    id: JobId,
) -> ApiResult<Response> {
    super::refuse_head(&method)?;
    take_legacy(state, id, LegacyStream::Output).await
}

/// `GET /v1/result/{id}/serial_output` (legacy).
pub async fn get_legacy_serial(
    method: axum::http::Method,
    state: State<AppState>,
    id: JobId,
) -> ApiResult<Response> {
    super::refuse_head(&method)?;
    take_legacy(state, id, LegacyStream::SerialOutput).await
}

async fn append_legacy(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    JobId(id): JobId,
    stream: LegacyStream,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_limited(body, state.app.settings().limits.log_fragment).await?;
    let text = String::from_utf8_lossy(&bytes);
    state
        .app
        .append_live_output(&caller, id, stream, &text, Timestamp::now())
        .await?;
    Ok(ok_text())
}

async fn take_legacy(
    State(state): State<AppState>,
    JobId(id): JobId,
    stream: LegacyStream,
) -> ApiResult<Response> {
    Ok(match state.app.take_live_output(id, stream).await? {
        Some(output) => text(StatusCode::OK, output),
        None => no_content(),
    })
}
