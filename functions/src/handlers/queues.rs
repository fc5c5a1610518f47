//! Read-only views of queues: their agents, their jobs, their wait times.

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use testflinger_shared::Timestamp;

use super::no_content;
use crate::error::ApiResult;
use crate::extract::Segment;
use crate::{query, views, AppState};

/// `GET /v1/queues/{queue}/agents`
pub async fn queue_agents(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(views::agents(
        &state.app.queue_agents(&queue, Timestamp::now()).await?,
    )))
}

/// `GET /v1/queues/{queue}/jobs`: the queue's jobs in any state, newest first.
pub async fn queue_jobs(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> ApiResult<Response> {
    let jobs = state.app.queue_jobs(&queue).await?;
    if jobs.is_empty() {
        return Ok(no_content());
    }
    let list: Vec<Value> = jobs.iter().map(|j| views::job_summary(j, false)).collect();
    Ok(Json(list).into_response())
}

/// `GET /v1/queues/wait_times?queue=a&queue=b`: percentiles of recent waits.
pub async fn wait_times(State(state): State<AppState>, parts: Parts) -> ApiResult<Json<Value>> {
    let queues = query::values(parts.uri.query(), "queue");
    let waits = state.app.wait_times(&queues, Timestamp::now()).await?;
    Ok(Json(views::wait_times(&waits)))
}
