//! Job events (SPEC.md §8): the agent posts the cumulative event list of a
//! job, and the server relays it to each of the job's webhooks
//! (`job_status_webhook`, read by [`crate::webhooks`]), but only to the
//! schemes and hosts its operator trusts (`WEBHOOK_URL`, `WEBHOOK_URLS`).
//!
//! A job with one `default` webhook gets the answer of that webhook back, as
//! it always did. A job with several webhooks, or a Mattermost one, gets a
//! summary of what became of each ([`RelayAnswer::Summary`]) when at least
//! one took the events, and a bad gateway when none did.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::App;
use crate::webhooks::{self, mattermost_text, WebhookKind, WebhookTarget};
use crate::{Error, Result};

pub use crate::webhooks::origin;

/// How long one attempt may take, and how many attempts a relay makes.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(3);
pub const WEBHOOK_ATTEMPTS: usize = 2;
/// The most of a webhook's answer that is passed back.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A webhook's answer.
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

/// The HTTP method of a webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookMethod {
    /// `default` webhooks.
    Put,
    /// Mattermost webhooks.
    Post,
}

/// Sends one request with a JSON payload, with a bearer token when given,
/// within [`WEBHOOK_TIMEOUT`] and without following redirects.
#[async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    async fn send(
        &self,
        method: WebhookMethod,
        url: &str,
        bearer: Option<&str>,
        payload: &Value,
    ) -> std::result::Result<WebhookAnswer, WebhookFailure>;
}

/// What a relay answers the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayAnswer {
    /// The job names one webhook, of type `default`: its answer, as it was
    /// (at most [`MAX_ANSWER_BYTES`] of it).
    Passthrough(WebhookAnswer),
    /// The job names several webhooks, or a Mattermost one, and at least one
    /// of them took the events: what became of each, in the job's order.
    Summary(Vec<TargetOutcome>),
}

/// What became of one of a job's webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetOutcome {
    /// Its position in the job's `job_status_webhook` list (0 for a single
    /// URL or object).
    pub index: usize,
    pub kind: WebhookKind,
    pub result: TargetResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetResult {
    /// It answered with a success (2xx).
    Delivered { status: u16 },
    /// It is not on a trusted host: nothing was sent.
    Untrusted,
    /// It answered with anything else (after the retry, for a server error).
    Rejected { status: u16 },
    /// It did not answer in time, twice.
    TimedOut,
    /// It could not be reached, twice.
    Unreachable,
    /// This process cannot make HTTPS requests.
    Unavailable,
}

impl TargetResult {
    pub fn delivered(self) -> bool {
        matches!(self, TargetResult::Delivered { .. })
    }

    /// The webhook's status, when it answered.
    pub fn status(self) -> Option<u16> {
        match self {
            TargetResult::Delivered { status } | TargetResult::Rejected { status } => Some(status),
            _ => None,
        }
    }

    /// Why it was not delivered; `None` when it was.
    pub fn problem(self) -> Option<String> {
        Some(match self {
            TargetResult::Delivered { .. } => return None,
            TargetResult::Untrusted => {
                "not on a host this server relays to (WEBHOOK_URL, WEBHOOK_URLS)".to_owned()
            }
            TargetResult::Rejected { status } => format!("answered {status}"),
            TargetResult::TimedOut => format!(
                "did not answer within {} s ({WEBHOOK_ATTEMPTS} attempts)",
                WEBHOOK_TIMEOUT.as_secs()
            ),
            TargetResult::Unreachable => {
                format!("could not be reached ({WEBHOOK_ATTEMPTS} attempts)")
            }
            TargetResult::Unavailable => "this server cannot make HTTPS requests".to_owned(),
        })
    }

    fn of(answer: std::result::Result<WebhookAnswer, WebhookFailure>) -> Self {
        match answer {
            Ok(answer) if (200..300).contains(&answer.status) => TargetResult::Delivered {
                status: answer.status,
            },
            Ok(answer) => TargetResult::Rejected {
                status: answer.status,
            },
            Err(WebhookFailure::Timeout) => TargetResult::TimedOut,
            Err(WebhookFailure::Unreachable) => TargetResult::Unreachable,
            Err(WebhookFailure::Unavailable) => TargetResult::Unavailable,
        }
    }
}

fn bad_gateway(message: String) -> Error {
    Error::Upstream {
        message,
        timed_out: false,
    }
}

/// One request to one webhook, tried again once on a server error or no
/// answer; the last attempt's answer.
async fn deliver(
    sender: &dyn WebhookSender,
    method: WebhookMethod,
    url: &str,
    bearer: Option<&str>,
    payload: &Value,
) -> std::result::Result<WebhookAnswer, WebhookFailure> {
    let mut attempt = 1;
    loop {
        let answer = sender.send(method, url, bearer, payload).await;
        let again = match &answer {
            Ok(answer) => answer.status >= 500,
            Err(WebhookFailure::Unavailable) => false,
            Err(_) => true,
        };
        if !again || attempt >= WEBHOOK_ATTEMPTS {
            return answer;
        }
        tracing::info!(attempt, "webhook attempt failed; retrying");
        attempt += 1;
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

    /// `POST /v1/job/{id}/events`: relays the body to each of the job's own
    /// webhooks (the body's copies of addresses, `job_status_webhook` and
    /// `job_status_webhooks`, are dropped, never used). `default` webhooks
    /// get a `PUT` of the body with the `WEBHOOK_AUTH` bearer; Mattermost
    /// ones a `POST {"text"}` without credentials. Each is retried once on a
    /// server error or no answer; an untrusted or failing webhook does not
    /// stop the others. A server error or a 401/403 of a webhook is a bad
    /// gateway here: the agent would otherwise refresh its token and replay
    /// for nothing.
    pub async fn relay_events(
        &self,
        caller: &super::Caller,
        job_id: Uuid,
        mut body: Map<String, Value>,
    ) -> Result<RelayAnswer> {
        let Some(job) = self.store.get_job(job_id).await? else {
            return Err(Error::NotFound(format!("Job {job_id} not found.")));
        };
        crate::permissions::may_report_on_job(caller, self.settings.auth_mode, &job)?;
        self.hold_lease(caller, job_id, crate::Timestamp::now())
            .await?;
        if body.get("events").is_some_and(|e| !e.is_array()) {
            return Err(Error::invalid_field("events", "Must be a list of events."));
        }
        body.remove("job_status_webhook");
        body.remove("job_status_webhooks");
        let targets = webhooks::job_webhooks(&job.job_data)?.ok_or_else(|| {
            Error::invalid_field(
                webhooks::FIELD,
                "The job has no job_status_webhook to relay its events to.",
            )
        })?;
        if self.settings.webhook_urls.is_empty() {
            return Err(Error::Forbidden(
                "This server relays no webhooks: neither WEBHOOK_URL nor WEBHOOK_URLS is set."
                    .into(),
            ));
        }
        let trusted: Vec<bool> = targets
            .iter()
            .map(|t| self.trusts_webhook(&t.url))
            .collect();
        if !trusted.contains(&true) {
            tracing::warn!(job_id = %job_id, "webhook refused: not on a trusted host");
            return Err(Error::Forbidden(
                "No webhook of the job is on a host this server relays to (WEBHOOK_URL, WEBHOOK_URLS)."
                    .into(),
            ));
        }
        let Some(sender) = self.webhooks.as_deref() else {
            return Err(bad_gateway(
                "This server cannot make HTTPS requests (it has no webhook client).".into(),
            ));
        };
        if let [only] = targets.as_slice() {
            if only.kind == WebhookKind::Default {
                let payload = Value::Object(body);
                return self.relay_to_one(job_id, sender, &only.url, &payload).await;
            }
        }

        let events = body
            .get("events")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let text = mattermost_text(&job_id.to_string(), &job.job_queue, events);
        let mattermost = json!({ "text": text });
        let payload = Value::Object(body);
        let bearer = self.settings.webhook_auth.as_deref();
        let send = |index: usize, target: &WebhookTarget| {
            let (method, bearer, payload) = match target.kind {
                WebhookKind::Default => (WebhookMethod::Put, bearer, &payload),
                WebhookKind::Mattermost => (WebhookMethod::Post, None, &mattermost),
            };
            let url = target.url.clone();
            let kind = target.kind;
            let trusted = trusted[index];
            async move {
                let result = if trusted {
                    TargetResult::of(deliver(sender, method, &url, bearer, payload).await)
                } else {
                    TargetResult::Untrusted
                };
                TargetOutcome {
                    index,
                    kind,
                    result,
                }
            }
        };
        let outcomes: Vec<TargetOutcome> =
            futures::future::join_all(targets.iter().enumerate().map(|(i, t)| send(i, t))).await;
        for outcome in &outcomes {
            let kind = outcome.kind.as_str();
            match outcome.result.problem() {
                None => tracing::info!(
                    job_id = %job_id, webhook = outcome.index, kind,
                    status = outcome.result.status(), "job events relayed"
                ),
                Some(problem) => tracing::warn!(
                    job_id = %job_id, webhook = outcome.index, kind, %problem,
                    "job events not relayed to this webhook"
                ),
            }
        }
        if outcomes.iter().any(|o| o.result.delivered()) {
            return Ok(RelayAnswer::Summary(outcomes));
        }
        let tried: Vec<&TargetOutcome> = outcomes
            .iter()
            .filter(|o| o.result != TargetResult::Untrusted)
            .collect();
        let problems: Vec<String> = outcomes
            .iter()
            .map(|o| {
                format!(
                    "#{} ({}) {}",
                    o.index,
                    o.kind.as_str(),
                    o.result.problem().unwrap_or_default()
                )
            })
            .collect();
        Err(Error::Upstream {
            message: format!("No webhook took the events: {}.", problems.join("; ")),
            timed_out: tried.iter().all(|o| o.result == TargetResult::TimedOut),
        })
    }

    /// The relay of a job with one `default` webhook: its answer passes
    /// back; a server error, a 401/403 or no answer there is a 502 (504
    /// when it did not answer in time).
    async fn relay_to_one(
        &self,
        job_id: Uuid,
        sender: &dyn WebhookSender,
        url: &str,
        payload: &Value,
    ) -> Result<RelayAnswer> {
        let bearer = self.settings.webhook_auth.as_deref();
        match deliver(sender, WebhookMethod::Put, url, bearer, payload).await {
            Ok(mut answer) => {
                tracing::info!(job_id = %job_id, status = answer.status, "job events relayed");
                if answer.status >= 500 || answer.status == 401 || answer.status == 403 {
                    return Err(bad_gateway(format!(
                        "The webhook answered {}.",
                        answer.status
                    )));
                }
                answer.body.truncate(MAX_ANSWER_BYTES);
                Ok(RelayAnswer::Passthrough(answer))
            }
            Err(WebhookFailure::Unavailable) => Err(bad_gateway(
                "This server cannot make HTTPS requests (its TLS setup failed); the error has been logged.".into(),
            )),
            Err(WebhookFailure::Timeout) => Err(Error::Upstream {
                message: format!(
                    "The webhook did not answer within {} s ({WEBHOOK_ATTEMPTS} attempts).",
                    WEBHOOK_TIMEOUT.as_secs()
                ),
                timed_out: true,
            }),
            Err(WebhookFailure::Unreachable) => Err(bad_gateway(format!(
                "The webhook could not be reached ({WEBHOOK_ATTEMPTS} attempts)."
            ))),
        }
    }
}
