//! Read-only views of queues: their agents, their jobs, their wait times.

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use testflinger_shared::queues::{
    wait_times_view, QUEUE_JOBS_LIMIT, WAIT_SAMPLE, WAIT_WINDOW_DAYS,
};
use testflinger_shared::Timestamp;

use super::no_content;
use crate::error::{ApiError, ApiResult};
use crate::extract::{query_values, Segment};
use crate::AppState;

/// `GET /v1/queues/{queue}/agents`. A queue exists when some agent lists it;
/// the CLI's submit pre-check relies on the 404 message.
pub async fn queue_agents(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> ApiResult<Json<Vec<Value>>> {
    let agents = state.store.list_agents().await?;
    let restricted = state.store.list_restricted_queues().await?;
    let serving: Vec<Value> = agents
        .iter()
        .filter(|a| a.queues().contains(&queue.as_str()))
        .map(|a| Value::Object(a.view(false, &restricted)))
        .collect();
    if serving.is_empty() {
        return Err(ApiError::not_found(format!(
            "Queue '{queue}' does not exist."
        )));
    }
    Ok(Json(serving))
}

/// `GET /v1/queues/{queue}/jobs`: the queue's jobs in any state, newest first.
pub async fn queue_jobs(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> ApiResult<Response> {
    let jobs = state.store.queue_jobs(&queue, QUEUE_JOBS_LIMIT).await?;
    if jobs.is_empty() {
        return Ok(no_content());
    }
    let list: Vec<Value> = jobs.iter().map(|j| j.view(false)).collect();
    Ok(Json(list).into_response())
}

/// `GET /v1/queues/wait_times?queue=a&queue=b`: percentiles of recent waits.
pub async fn wait_times(State(state): State<AppState>, parts: Parts) -> ApiResult<Json<Value>> {
    let queues = query_values(parts.uri.query(), "queue");
    let since = Timestamp::from_millis(Timestamp::now().millis() - WAIT_WINDOW_DAYS * 86_400_000);
    let waits = state.store.wait_times(&queues, since, WAIT_SAMPLE).await?;
    Ok(Json(wait_times_view(&waits)))
}
