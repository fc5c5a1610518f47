//! Job events (SPEC.md §8): the agent posts the cumulative event list of a
//! job, and the server relays it to the job's webhook, but only to the one
//! scheme and host its operator trusts (`WEBHOOK_URL`).

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JobId, JsonObject};
use crate::AppState;

/// How long one attempt may take, and how many attempts a relay makes.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(3);
pub const WEBHOOK_ATTEMPTS: usize = 2;
/// The most of a webhook's answer that is passed back.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// One client per process (per cold start): no redirects, short timeouts.
fn http_client() -> ApiResult<&'static reqwest::Client> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(WEBHOOK_TIMEOUT)
                .connect_timeout(WEBHOOK_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            tracing::error!(error = %e, "cannot build the webhook HTTP client");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "This server cannot make HTTPS requests (its TLS setup failed); the error has been logged.",
            )
        })
}

/// Scheme, host and port, compared without regard to case; default ports
/// filled in so `https://h` and `https://h:443` are one origin.
fn origin(url: &str) -> Option<(String, String, u16)> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().or(match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    Some((scheme, host, port))
}

/// `POST /v1/job/{id}/events`
pub async fn relay_events(
    State(state): State<AppState>,
    JobId(id): JobId,
    JsonObject(mut body): JsonObject,
) -> ApiResult<Response> {
    let Some(job) = state.store.get_job(id).await? else {
        return Err(ApiError::not_found(format!("Job {id} not found.")));
    };
    if body.get("events").is_some_and(|e| !e.is_array()) {
        return Err(ApiError::invalid_field(
            "json",
            "events",
            "Must be a list of events.",
        ));
    }
    // Only the job's own webhook, as its submitter set it: the body's copy
    // (which the agent sends) is not trusted to pick the address.
    body.remove("job_status_webhook");
    let webhook = job
        .job_data
        .get("job_status_webhook")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::invalid_field(
                "json",
                "job_status_webhook",
                "The job has no job_status_webhook to relay its events to.",
            )
        })?;
    let Some(trusted) = state.auth.webhook_url.as_deref() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "This server relays no webhooks: its WEBHOOK_URL is not set.",
        ));
    };
    if origin(&webhook).is_none() || origin(&webhook) != origin(trusted) {
        tracing::warn!(job_id = %id, "webhook refused: not on the trusted host");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "The job's webhook is not on the host this server relays to (WEBHOOK_URL).",
        ));
    }
    let payload = Value::Object(body);
    let client = http_client()?;
    let mut last_error = None;
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let mut request = client.put(&webhook).json(&payload);
        if let Some(token) = &state.auth.webhook_auth {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(answer) if answer.status().is_server_error() && attempt < WEBHOOK_ATTEMPTS => {
                last_error = Some(Relay::Status(answer.status().as_u16()));
            }
            Ok(answer) => return Ok(pass_back(id, answer).await),
            Err(e) => {
                last_error = Some(if e.is_timeout() {
                    Relay::Timeout
                } else {
                    Relay::Unreachable
                });
            }
        }
        tracing::info!(job_id = %id, attempt, "webhook attempt failed; retrying");
    }
    Err(match last_error {
        Some(Relay::Timeout) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "The webhook did not answer within {} s ({WEBHOOK_ATTEMPTS} attempts).",
                WEBHOOK_TIMEOUT.as_secs()
            ),
        ),
        Some(Relay::Status(status)) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("The webhook answered {status}."),
        ),
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("The webhook could not be reached ({WEBHOOK_ATTEMPTS} attempts)."),
        ),
    })
}

enum Relay {
    Timeout,
    Unreachable,
    Status(u16),
}

/// The webhook's own status and body; a server error there is a bad
/// gateway here, never a 500 of ours.
async fn pass_back(id: uuid::Uuid, answer: reqwest::Response) -> Response {
    let status = answer.status().as_u16();
    tracing::info!(job_id = %id, status, "job events relayed");
    // The webhook's own 401/403 is not the agent's token failing: passed
    // back as such, the agent would refresh and replay for nothing.
    if answer.status().is_server_error() || status == 401 || status == 403 {
        return ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("The webhook answered {status}."),
        )
        .into_response();
    }
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let mut bytes = answer.bytes().await.unwrap_or_default();
    bytes.truncate(MAX_ANSWER_BYTES);
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(value) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
