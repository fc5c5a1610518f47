//! Jobs: submit, claim, read, cancel.

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use testflinger_shared::job::validate_submission;
use testflinger_shared::queues::SearchQuery;
use testflinger_shared::store::{CancelOutcome, ClaimRequest, MAX_CLAIM_QUEUES};
use testflinger_shared::Timestamp;

use super::{no_content, ok_text};
use crate::error::{ApiError, ApiResult};
use crate::extract::{cookie, query_values, JobId, JsonObject};
use crate::AppState;

/// `POST /v1/job`
pub async fn submit_job(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let job = validate_submission(Value::Object(body), Timestamp::now())?;
    state.store.insert_job(&job).await?;
    tracing::info!(job_id = %job.job_id, queue = %job.job_queue, priority = job.job_priority, "job submitted");
    Ok(Json(json!({ "job_id": job.job_id })))
}

/// `GET /v1/job?queue=a&queue=b`: the agent's claim.
pub async fn claim_job(State(state): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let mut queues: Vec<String> = Vec::new();
    for queue in query_values(parts.uri.query(), "queue") {
        if !queue.is_empty() && !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    if queues.is_empty() {
        let mut error = ApiError::invalid_field("query", "queue", "Give at least one queue.");
        error.status = axum::http::StatusCode::BAD_REQUEST;
        error.message = "No queue(s) specified in request".into();
        return Err(error);
    }
    if queues.len() > MAX_CLAIM_QUEUES {
        return Err(ApiError::invalid_field(
            "query",
            "queue",
            &format!("At most {MAX_CLAIM_QUEUES} queues may be polled at once."),
        ));
    }
    let request = ClaimRequest {
        queues,
        agent_name: cookie(&parts.headers, "agent_name"),
    };
    match state.store.claim_job(&request, Timestamp::now()).await? {
        Some(job) => {
            tracing::info!(job_id = %job.job_id, queue = %job.job_queue, agent = ?request.agent_name, "job claimed");
            Ok(Json(Value::Object(job.claim_view())).into_response())
        }
        None => Ok(no_content()),
    }
}

/// `GET /v1/job/{id}`
pub async fn get_job(State(state): State<AppState>, JobId(id): JobId) -> ApiResult<Response> {
    Ok(match state.store.get_job(id).await? {
        Some(job) => Json(Value::Object(job.definition())).into_response(),
        None => no_content(),
    })
}

/// `POST /v1/job/{id}/action`: `{"action": "cancel"}`.
pub async fn act_on_job(
    State(state): State<AppState>,
    JobId(id): JobId,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    match body.get("action").and_then(Value::as_str) {
        Some("cancel") => {}
        _ => {
            return Err(ApiError::invalid_field(
                "json",
                "action",
                "Must be one of: cancel.",
            ))
        }
    }
    match state.store.cancel_job(id).await? {
        CancelOutcome::Cancelled => {
            tracing::info!(job_id = %id, "job cancelled");
            Ok(ok_text())
        }
        CancelOutcome::AlreadyFinished => Err(ApiError::bad_request(
            "The job is already completed or cancelled",
        )),
        CancelOutcome::NotFound => Err(ApiError::not_found(format!("Job {id} not found."))),
    }
}

/// `GET /v1/job/{id}/position`: 0 = next to be claimed on its queue.
pub async fn job_position(State(state): State<AppState>, JobId(id): JobId) -> ApiResult<Response> {
    match state.store.job_position(id).await? {
        Some(position) => Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            position.to_string(),
        )
            .into_response()),
        None => Err(ApiError::new(
            axum::http::StatusCode::GONE,
            "Job not found or already started",
        )),
    }
}

/// `GET /v1/job/search?tags=..&match=any|all&state=..&limit=..&before=..`
pub async fn search_jobs(State(state): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let query =
        SearchQuery::parse(&pairs).map_err(|fields| ApiError::validation("query", &fields))?;
    let mut found = state.store.search_jobs(&query).await?;
    let more = found.len() > query.limit;
    found.truncate(query.limit);
    let list: Vec<Value> = found.iter().map(|j| j.view(true)).collect();
    let mut response = Json(list).into_response();
    if let (true, Some(last)) = (more, found.last()) {
        let link = format!(
            "<{}?{}>; rel=\"next\"",
            parts.uri.path(),
            query.next_page(last)
        );
        if let Ok(value) = link.parse() {
            response
                .headers_mut()
                .insert(axum::http::header::LINK, value);
        }
    }
    Ok(response)
}
