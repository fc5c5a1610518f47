//! Job events (SPEC.md §8): the agent posts the cumulative event list of a
//! job, and the server relays it to the job's webhook, but only to the
//! schemes and hosts its operator trusts (`WEBHOOK_URL`, `WEBHOOK_URLS`).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::App;
use crate::{Error, Result};

pub use crate::webhooks::origin;

/// How long one attempt may take, and how many attempts a relay makes.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(3);
pub const WEBHOOK_ATTEMPTS: usize = 2;
/// The most of a webhook's answer that is passed back.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A webhook's answer, passed back to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Why an attempt got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFailure {
    Timeout,
    Unreachable,
    /// This process cannot make such requests at all (its TLS setup failed).
    Unavailable,
}

/// Sends one `PUT` of a JSON payload, with a bearer token when given,
/// within [`WEBHOOK_TIMEOUT`] and without following redirects.
#[async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    async fn put(
        &self,
        url: &str,
        bearer: Option<&str>,
        payload: &Value,
    ) -> std::result::Result<WebhookAnswer, WebhookFailure>;
}

fn bad_gateway(message: String) -> Error {
    Error::Upstream {
        message,
        timed_out: false,
    }
}

impl App {
    /// Whether `url` is on the scheme, host and port of a trusted base URL.
    fn trusts_webhook(&self, url: &str) -> bool {
        let Some(target) = origin(url) else {
            return false;
        };
        self.settings
            .webhook_urls
            .iter()
            .any(|base| origin(base).as_ref() == Some(&target))
    }

    /// `POST /v1/job/{id}/events`: relays the body to the job's own webhook
    /// (the body's copy of the address is not trusted), retrying once on a
    /// server error or no answer. The webhook's answer comes back, but a
    /// server error or a 401/403 of the webhook is a bad gateway here: the
    /// agent would otherwise refresh its token and replay for nothing.
    pub async fn relay_events(
        &self,
        job_id: Uuid,
        mut body: Map<String, Value>,
    ) -> Result<WebhookAnswer> {
        let Some(job) = self.store.get_job(job_id).await? else {
            return Err(Error::NotFound(format!("Job {job_id} not found.")));
        };
        if body.get("events").is_some_and(|e| !e.is_array()) {
            return Err(Error::invalid_field("events", "Must be a list of events."));
        }
        body.remove("job_status_webhook");
        let webhook = job
            .job_data
            .get("job_status_webhook")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::invalid_field(
                    "job_status_webhook",
                    "The job has no job_status_webhook to relay its events to.",
                )
            })?;
        if self.settings.webhook_urls.is_empty() {
            return Err(Error::Forbidden(
                "This server relays no webhooks: neither WEBHOOK_URL nor WEBHOOK_URLS is set."
                    .into(),
            ));
        }
        if !self.trusts_webhook(&webhook) {
            tracing::warn!(job_id = %job_id, "webhook refused: not on a trusted host");
            return Err(Error::Forbidden(
                "The job's webhook is not on a host this server relays to (WEBHOOK_URL, WEBHOOK_URLS)."
                    .into(),
            ));
        }
        let Some(sender) = &self.webhooks else {
            return Err(bad_gateway(
                "This server cannot make HTTPS requests (it has no webhook client).".into(),
            ));
        };
        let payload = Value::Object(body);
        let mut last_failure = None;
        for attempt in 1..=WEBHOOK_ATTEMPTS {
            let answer = sender
                .put(&webhook, self.settings.webhook_auth.as_deref(), &payload)
                .await;
            match answer {
                Ok(answer) if answer.status >= 500 && attempt < WEBHOOK_ATTEMPTS => {
                    last_failure = Some(Err(answer.status));
                }
                Ok(mut answer) => {
                    tracing::info!(job_id = %job_id, status = answer.status, "job events relayed");
                    if answer.status >= 500 || answer.status == 401 || answer.status == 403 {
                        return Err(bad_gateway(format!(
                            "The webhook answered {}.",
                            answer.status
                        )));
                    }
                    answer.body.truncate(MAX_ANSWER_BYTES);
                    return Ok(answer);
                }
                Err(WebhookFailure::Unavailable) => {
                    return Err(bad_gateway(
                        "This server cannot make HTTPS requests (its TLS setup failed); the error has been logged.".into(),
                    ));
                }
                Err(failure) => last_failure = Some(Ok(failure)),
            }
            tracing::info!(job_id = %job_id, attempt, "webhook attempt failed; retrying");
        }
        Err(match last_failure {
            Some(Ok(WebhookFailure::Timeout)) => Error::Upstream {
                message: format!(
                    "The webhook did not answer within {} s ({WEBHOOK_ATTEMPTS} attempts).",
                    WEBHOOK_TIMEOUT.as_secs()
                ),
                timed_out: true,
            },
            Some(Err(status)) => bad_gateway(format!("The webhook answered {status}.")),
            _ => bad_gateway(format!(
                "The webhook could not be reached ({WEBHOOK_ATTEMPTS} attempts)."
            )),
        })
    }
}
