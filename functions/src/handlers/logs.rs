//! Live output: log fragments, and the legacy append-and-consume buffers.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use testflinger_shared::logs::{log_view, validate_fragment, LegacyStream, LogQuery, LogType};
use testflinger_shared::Timestamp;
use uuid::Uuid;

use super::{no_content, ok_text};
use crate::error::{ApiError, ApiResult};
use crate::extract::{read_limited, JobId, JsonObject, Segment};
use crate::AppState;

/// `POST /v1/result/{id}/log/{output|serial}`
pub async fn post_log(
    State(state): State<AppState>,
    JobId(id): JobId,
    Segment(log_type): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let log_type = LogType::parse(&log_type)?;
    let fragment = validate_fragment(&body, state.limits.log_fragment)?;
    if state
        .store
        .append_log(id, log_type, &fragment, Timestamp::now())
        .await?
    {
        Ok(ok_text())
    } else {
        Err(job_not_found(id))
    }
}

/// `GET /v1/result/{id}/log/{output|serial}?start_fragment=N&start_timestamp=T&phase=P`
pub async fn get_log(
    State(state): State<AppState>,
    JobId(id): JobId,
    Segment(log_type): Segment,
    parts: Parts,
) -> ApiResult<Json<serde_json::Value>> {
    let log_type = LogType::parse(&log_type)?;
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let query = LogQuery::parse(&pairs).map_err(|fields| ApiError::validation("query", &fields))?;
    let fragments = state
        .store
        .read_logs(id, log_type, query.start_fragment)
        .await?;
    Ok(Json(log_view(log_type, &query, &fragments)))
}

/// `POST /v1/result/{id}/output` (legacy): the raw body is appended.
pub async fn post_legacy_output(
    state: State<AppState>,
    id: JobId,
    body: Body,
) -> ApiResult<Response> {
    append_legacy(state, id, LegacyStream::Output, body).await
}

/// `POST /v1/result/{id}/serial_output` (legacy).
pub async fn post_legacy_serial(
    state: State<AppState>,
    id: JobId,
    body: Body,
) -> ApiResult<Response> {
    append_legacy(state, id, LegacyStream::SerialOutput, body).await
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
    JobId(id): JobId,
    stream: LegacyStream,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_limited(body, state.limits.log_fragment).await?;
    let text = String::from_utf8_lossy(&bytes);
    if state
        .store
        .append_live_output(id, stream, &text, Timestamp::now())
        .await?
    {
        Ok(ok_text())
    } else {
        Err(job_not_found(id))
    }
}

async fn take_legacy(
    State(state): State<AppState>,
    JobId(id): JobId,
    stream: LegacyStream,
) -> ApiResult<Response> {
    Ok(match state.store.take_live_output(id, stream).await? {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        None => no_content(),
    })
}

fn job_not_found(id: Uuid) -> ApiError {
    ApiError::not_found(format!("Job {id} not found."))
}
