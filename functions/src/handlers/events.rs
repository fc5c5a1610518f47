//! Job events (SPEC.md §8): relayed to the job's webhook by the use case;
//! the webhook's answer comes back as it was.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use crate::error::ApiResult;
use crate::extract::{JobId, JsonObject};
use crate::AppState;

/// `POST /v1/job/{id}/events`
pub async fn relay_events(
    State(state): State<AppState>,
    JobId(id): JobId,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let answer = state.app.relay_events(id, body).await?;
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
