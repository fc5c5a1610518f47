//! Job events: each job's timeline as the server recorded it, and the
//! agent's events relayed to the job's webhooks (SPEC.md §8): a single
//! webhook's answer comes back as it was, several webhooks' as a summary
//! (`views::relay_summary`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use testflinger_shared::app::RelayAnswer;

use crate::auth::CallerOf;
use crate::error::ApiResult;
use crate::extract::{JobId, JsonObject};
use crate::{views, AppState};

/// `POST /v1/job/{id}/events`
pub async fn relay_events(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    JobId(id): JobId,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let answer = match state.app.relay_events(&caller, id, body).await? {
        RelayAnswer::Passthrough(answer) => answer,
        RelayAnswer::Summary(outcomes) => {
            return Ok(Json(views::relay_summary(&outcomes)).into_response())
        }
    };
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(value) = answer
        .content_type
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(response)
}

/// `GET /v1/events/job/{id}`: `{"job_id", "events": [...]}`.
pub async fn get_job_events(
    State(state): State<AppState>,
    JobId(id): JobId,
) -> ApiResult<Json<Value>> {
    let events = state.app.job_events(id).await?;
    let events: Vec<Value> = events.iter().map(views::job_event).collect();
    Ok(Json(json!({ "job_id": id, "events": events })))
}
