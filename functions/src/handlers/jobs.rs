//! Jobs: submit, claim, read, cancel, position, search.

use axum::extract::State;
use axum::http::{header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use testflinger_shared::{Error, Timestamp};

use super::{no_content, ok_text, text};
use crate::auth::CallerOf;
use crate::error::ApiResult;
use crate::extract::{cookie, JobId, JsonObject};
use crate::{query, views, AppState};

/// `POST /v1/job`
pub async fn submit_job(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let job_id = state
        .app
        .submit_job(&caller, Value::Object(body), Timestamp::now())
        .await?;
    Ok(Json(json!({ "job_id": job_id })))
}

/// `GET /v1/job?queue=a&queue=b`: the agent's claim. Only `GET`: a `HEAD`
/// would claim a job and throw the answer away.
pub async fn claim_job(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    parts: Parts,
) -> ApiResult<Response> {
    super::refuse_head(&parts.method)?;
    let queues = query::values(parts.uri.query(), "queue");
    let agent_name = cookie(&parts.headers, "agent_name");
    let claimed = state
        .app
        .claim_job(&caller, queues, agent_name, Timestamp::now())
        .await?;
    Ok(match claimed {
        Some(claimed) => Json(Value::Object(views::claim(&claimed))).into_response(),
        None => no_content(),
    })
}

/// `GET /v1/job/{id}`
pub async fn get_job(State(state): State<AppState>, JobId(id): JobId) -> ApiResult<Response> {
    Ok(match state.app.get_job(id).await? {
        Some(job) => Json(Value::Object(views::job_definition(&job))).into_response(),
        None => no_content(),
    })
}

/// `POST /v1/job/{id}/action`: `{"action": "cancel"}`.
pub async fn act_on_job(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    JobId(id): JobId,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    match body.get("action").and_then(Value::as_str) {
        Some("cancel") => {}
        _ => return Err(Error::invalid_field("action", "Must be one of: cancel.").into()),
    }
    state.app.cancel_job(&caller, id, Timestamp::now()).await?;
    Ok(ok_text())
}

/// `GET /v1/job/{id}/position`: 0 = next to be claimed on its queue.
pub async fn job_position(State(state): State<AppState>, JobId(id): JobId) -> ApiResult<Response> {
    let position = state.app.job_position(id).await?;
    Ok(text(axum::http::StatusCode::OK, position.to_string()))
}

/// `GET /v1/job/search?tags=..&match=any|all&state=..&limit=..&before=..`
pub async fn search_jobs(State(state): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let search = query::search_query(&query::pairs(parts.uri.query()))?;
    let page = state.app.search_jobs(&search).await?;
    let list: Vec<Value> = page
        .jobs
        .iter()
        .map(|j| views::job_summary(j, true))
        .collect();
    let mut response = Json(list).into_response();
    if let (true, Some(last)) = (page.more, page.jobs.last()) {
        let link = format!(
            "<{}?{}>; rel=\"next\"",
            parts.uri.path(),
            query::next_page(&search, last)
        );
        if let Ok(value) = link.parse() {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}
