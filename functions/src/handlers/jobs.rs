//! Jobs: submit, claim, read, cancel.

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use testflinger_shared::auth::{AuthMode, Role};
use testflinger_shared::clients::check_submission;
use testflinger_shared::job::{validate_submission, Job, CLIENT_ID};
use testflinger_shared::queues::SearchQuery;
use testflinger_shared::secrets::{inaccessible, job_secret_paths};
use testflinger_shared::store::{CancelOutcome, ClaimRequest, MAX_CLAIM_QUEUES};
use testflinger_shared::Timestamp;

use super::{no_content, ok_text};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{cookie, query_values, JobId, JsonObject};
use crate::AppState;

/// `POST /v1/job`. Priority, restricted queues, long reservations and
/// secrets are checked against the caller's permissions as stored now.
pub async fn submit_job(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let now = Timestamp::now();
    let mut job = validate_submission(Value::Object(body), now)?;
    let restriction = state.store.get_restricted_queue(&job.job_queue).await?;
    check_submission(&job, caller.client.as_ref(), restriction.as_ref())?;
    let paths = job_secret_paths(&job.job_data);
    if !paths.is_empty() {
        if state.auth.mode == AuthMode::Open {
            // Anonymous callers may claim in the open mode: a secret would
            // go to whoever asks.
            return Err(ApiError::invalid_field(
                "json",
                "test_data.secrets",
                "Secrets need agents that authenticate: this server runs in the open mode, where anyone may claim jobs.",
            ));
        }
        if state.auth.secrets_key.is_none() {
            return Err(ApiError::invalid_field(
                "json",
                "test_data.secrets",
                "This server keeps no secrets (it has no TESTFLINGER_SECRETS_KEY).",
            ));
        }
        let Some(client_id) = caller.client_id() else {
            return Err(ApiError::invalid_field(
                "json",
                "test_data.secrets",
                "Only an authenticated client can use its secrets; log in first.",
            ));
        };
        let existing = state.store.existing_secrets(client_id, &paths, now).await?;
        let missing: Vec<String> = paths
            .into_iter()
            .filter(|p| !existing.contains(p))
            .collect();
        if !missing.is_empty() {
            return Err(inaccessible(&missing).into());
        }
    }
    if let Some(client_id) = caller.client_id() {
        job.job_data
            .insert(CLIENT_ID.into(), Value::String(client_id.to_owned()));
    }
    state.store.insert_job(&job).await?;
    tracing::info!(job_id = %job.job_id, queue = %job.job_queue, priority = job.job_priority, client_id = ?caller.client_id(), "job submitted");
    Ok(Json(json!({ "job_id": job.job_id })))
}

/// `GET /v1/job?queue=a&queue=b`: the agent's claim. Only `GET`: a `HEAD`
/// would claim a job and throw the answer away.
pub async fn claim_job(
    State(state): State<AppState>,
    caller: Caller,
    parts: Parts,
) -> ApiResult<Response> {
    super::refuse_head(&parts.method)?;
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
    let agent_name = cookie(&parts.headers, "agent_name");
    if agent_name.is_none() && state.auth.mode != AuthMode::Open {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "Agent not identified: post to /v1/agents/data/{name} first for the agent_name cookie.",
        ));
    }
    let request = ClaimRequest { queues, agent_name };
    let now = Timestamp::now();
    match state.store.claim_job(&request, now).await? {
        Some(job) => {
            tracing::info!(job_id = %job.job_id, queue = %job.job_queue, agent = ?request.agent_name, "job claimed");
            let mut view = job.claim_view();
            resolve_secrets(&state, &caller, &job, &mut view, now).await?;
            Ok(Json(Value::Object(view)).into_response())
        }
        None => Ok(no_content()),
    }
}

/// Puts the values of the job's secrets in the claim answer, in place of
/// their paths. A secret that is gone (expired, deleted, an ephemeral one
/// already read) or cannot be opened resolves to "".
async fn resolve_secrets(
    state: &AppState,
    caller: &Caller,
    job: &Job,
    view: &mut Map<String, Value>,
    now: Timestamp,
) -> ApiResult<()> {
    let paths = job_secret_paths(&job.job_data);
    let (Some(client_id), false) = (job.client_id(), paths.is_empty()) else {
        return Ok(());
    };
    // Only to a caller with an agent token, never to an anonymous one.
    let stored = if caller.role() == Some(Role::Agent) {
        state.store.take_secrets(client_id, &paths, now).await?
    } else {
        tracing::warn!(job_id = %job.job_id, "secrets withheld: the claiming caller has no agent token");
        Vec::new()
    };
    let key = state.auth.secrets_key.as_ref();
    let value_of = |path: &str| -> String {
        stored
            .iter()
            .find(|s| s.path == path)
            .zip(key)
            .and_then(|(s, key)| key.open(client_id, path, &s.sealed))
            .unwrap_or_default()
    };
    if let Some(Value::Object(secrets)) =
        view.get_mut("test_data").and_then(|t| t.get_mut("secrets"))
    {
        for value in secrets.values_mut() {
            let path = value.as_str().unwrap_or_default().to_owned();
            *value = Value::String(value_of(&path));
        }
    }
    Ok(())
}

/// `GET /v1/job/{id}`
pub async fn get_job(State(state): State<AppState>, JobId(id): JobId) -> ApiResult<Response> {
    Ok(match state.store.get_job(id).await? {
        Some(job) => Json(Value::Object(job.definition())).into_response(),
        None => no_content(),
    })
}

/// `POST /v1/job/{id}/action`: `{"action": "cancel"}`. A job submitted with
/// a token is cancelled only by its client, a manager or an admin; an
/// anonymous job by anyone (as upstream).
pub async fn act_on_job(
    State(state): State<AppState>,
    caller: Caller,
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
    if let Some(job) = state.store.get_job(id).await? {
        if let Some(owner) = job.client_id() {
            if caller.client.is_none() {
                // 401, so that a client with credentials logs in and replays.
                return Err(ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    format!("Job {id} was submitted by a client: cancelling it needs that client's (or a manager's) token."),
                ));
            }
            if caller.client_id() != Some(owner) && !caller.is_manager() {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    format!("Job {id} belongs to client '{owner}': only that client, a manager or an admin may cancel it."),
                ));
            }
        }
    }
    match state.store.cancel_job(id).await? {
        CancelOutcome::Cancelled => {
            tracing::info!(job_id = %id, by = ?caller.client_id(), "job cancelled");
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
