//! `/jobs` (search by state, queue, tag and submitter; paged),
//! `/jobs/{id}` (fields, phases, events, output tail, artifact, position)
//! and `/jobs/{id}/output` (the tail as text, which the page's script
//! polls while the job runs).

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::{Map, Value};
use testflinger_shared::job::{Job, JobState};
use testflinger_shared::logs::{LogTail, LOG_PHASES};
use testflinger_shared::Timestamp;

use super::overview::job_table;
use super::{duration, encode, page, param, state_badge, when, PageError, PageResult, Section};
use crate::extract::JobId;
use crate::query::{cursor, pairs, search_query};
use crate::AppState;

/// Jobs on one page of the search.
const JOBS_PER_PAGE: usize = 50;

/// The states the search offers (any other can be asked for by URL).
const SEARCH_STATES: &[&str] = &[
    "active",
    "waiting",
    "running",
    "setup",
    "provision",
    "test",
    "reserve",
    "cleanup",
    "complete",
    "cancelled",
];

pub async fn jobs_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> PageResult {
    let now = Timestamp::now();
    // An empty field of the form asks for nothing.
    let pairs: Vec<(String, String)> = pairs(query.as_deref())
        .into_iter()
        .map(|(k, v)| (k, v.trim().to_owned()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let mut search = search_query(&pairs)?;
    search.limit = JOBS_PER_PAGE;
    search.queue = param(&pairs, "queue");
    search.submitted_by = param(&pairs, "submitted_by");
    let found = state.app.search_jobs(&search).await?;
    let chosen_state = param(&pairs, "state");
    let tag = search.tags.first().cloned();
    let next = found.jobs.last().filter(|_| found.more).map(|last| {
        let mut link = String::from("/jobs?");
        for (key, value) in [
            ("state", &chosen_state),
            ("queue", &search.queue),
            ("tags", &tag),
            ("submitted_by", &search.submitted_by),
        ] {
            if let Some(value) = value {
                link.push_str(&format!("{key}={}&", encode(value)));
            }
        }
        link.push_str(&format!("before={}", encode(&cursor(last))));
        link
    });
    page(
        "Jobs",
        Section::Jobs,
        html! {
            h1 { "Jobs" }
            form.filters method="get" action="/jobs" role="search" aria-label="Search jobs" {
                label for="f-state" {
                    "State"
                    select id="f-state" name="state" {
                        option value="" { "any" }
                        @for s in SEARCH_STATES {
                            option value=(s) selected[chosen_state.as_deref() == Some(*s)] { (s) }
                        }
                    }
                }
                label for="f-queue" {
                    "Queue"
                    input id="f-queue" name="queue" type="search" value=[search.queue.as_deref()];
                }
                label for="f-tag" {
                    "Tag"
                    input id="f-tag" name="tags" type="search" value=[tag.as_deref()];
                }
                label for="f-submitter" {
                    "Submitted by"
                    input id="f-submitter" name="submitted_by" type="search" value=[search.submitted_by.as_deref()];
                }
                button type="submit" { "Search" }
            }
            (job_table(&found.jobs, now))
            nav.pager aria-label="Pages" {
                @if search.before.is_some() {
                    a href="/jobs" { "← Newest" }
                }
                @if let Some(next) = &next {
                    a href=(next) rel="next" { "Older jobs →" }
                }
            }
        },
    )
}

/// The job document as the page shows it: what `GET /v1/job/{id}` shows,
/// less what could hold a credential. Webhook URLs often carry a token in
/// their path (Mattermost's do), so only their host is kept; secrets are
/// shown by name, not by the path they are stored under.
fn redacted(job_data: &Map<String, Value>) -> Map<String, Value> {
    let mut data = job_data.clone();
    if let Some(hook) = data.get_mut("job_status_webhook") {
        *hook = Value::String(format!("(hidden: {})", webhook_hosts(hook)));
    }
    if let Some(Value::Object(secrets)) =
        data.get_mut("test_data").and_then(|t| t.get_mut("secrets"))
    {
        for value in secrets.values_mut() {
            *value = Value::String("(secret)".into());
        }
    }
    data
}

fn webhook_hosts(hook: &Value) -> String {
    let host = |url: &str| {
        url.split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
            .map(|authority| authority.rsplit('@').next().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    let urls: Vec<String> = match hook {
        Value::String(url) => vec![host(url)],
        Value::Object(o) => vec![host(o.get("url").and_then(Value::as_str).unwrap_or(""))],
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(url) => host(url),
                other => host(other.get("url").and_then(Value::as_str).unwrap_or("")),
            })
            .collect(),
        _ => Vec::new(),
    };
    format!("webhook on {}", urls.join(", "))
}

/// Each phase that has run or has a status: (phase, exit code).
fn phases(job: &Job) -> Vec<(&'static str, Option<i64>)> {
    let status = job.result_data.get("status").and_then(Value::as_object);
    let current = job.state.as_str();
    LOG_PHASES
        .iter()
        .filter_map(|&phase| {
            let code = status.and_then(|s| s.get(phase)).and_then(Value::as_i64);
            (code.is_some() || phase == current).then_some((phase, code))
        })
        .collect()
}

fn tail_text(tails: &[LogTail]) -> String {
    let mut text = String::new();
    for tail in tails {
        text.push_str(&format!("== {} ==\n", tail.phase));
        if tail.cut.is_some() {
            text.push_str("[… earlier output left out …]\n");
        }
        text.push_str(&tail.text);
        if !tail.text.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

async fn load_job(state: &AppState, id: uuid::Uuid) -> Result<Job, PageError> {
    state
        .app
        .get_job(id)
        .await?
        .ok_or_else(|| testflinger_shared::Error::NotFound(format!("Job {id} not found.")).into())
}

pub async fn job_page(State(state): State<AppState>, JobId(id): JobId) -> PageResult {
    let now = Timestamp::now();
    let job = load_job(&state, id).await?;
    let events = state.app.job_events(id).await?;
    let tails = state.app.job_output_tail(id).await?;
    let waiting = job.state == JobState::Waiting;
    let position = if waiting {
        state.app.job_position(id).await.ok()
    } else {
        None
    };
    let expected_wait = if waiting {
        state
            .app
            .wait_times(std::slice::from_ref(&job.job_queue), now)
            .await?
            .get(&job.job_queue)
            .and_then(|p| p.iter().find(|(q, _)| *q == 50).map(|(_, s)| *s))
    } else {
        None
    };
    let text = |key: &str| {
        job.job_data
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let agent = job.lease_holder.clone().or_else(|| {
        job.result_data
            .get("agent_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let document =
        serde_json::to_string_pretty(&Value::Object(redacted(&job.job_data))).unwrap_or_default();
    let output = tail_text(&tails);
    let live = !job.state.is_terminal();
    page(
        &format!("Job {id}"),
        Section::Jobs,
        html! {
            h1 { "Job " span.mono { (id) } }
            dl.fields {
                dt { "State" } dd { (state_badge(job.state.as_str())) }
                @if let Some(name) = text("name") { dt { "Name" } dd { (name) } }
                dt { "Queue" } dd { a href={ "/queues/" (encode(&job.job_queue)) } { (job.job_queue) } }
                dt { "Priority" } dd { (job.job_priority) }
                dt { "Submitted by" } dd {
                    @match job.client_id() { Some(c) => (c), None => span.muted { "anonymous" } }
                }
                dt { "Created" } dd { (when(job.created_at, now)) }
                @if let Some(started) = job.started_at {
                    dt { "Started" } dd { (when(started, now)) }
                }
                @if let Some(agent) = &agent {
                    dt { "Agent" } dd { a href={ "/agents/" (encode(agent)) } { (agent) } }
                }
                @if job.attempts > 1 {
                    dt { "Attempts" } dd { (job.attempts) }
                }
                @if let Some(tags) = job.job_data.get("tags").and_then(Value::as_array) {
                    dt { "Tags" } dd {
                        @for (i, tag) in tags.iter().filter_map(Value::as_str).enumerate() {
                            @if i > 0 { ", " }
                            a href={ "/jobs?tags=" (encode(tag)) } { (tag) }
                        }
                    }
                }
                @if let Some(position) = position {
                    dt { "Position" } dd { (position) @if position == 0 { " (next to run)" } }
                    dt { "Expected start" } dd {
                        @match expected_wait {
                            Some(p50) => {
                                @let start = Timestamp::from_millis(job.created_at.millis() + (p50 * 1000.0) as i64);
                                @if start.millis() > now.millis() {
                                    "about " (when(start, now))
                                } @else {
                                    "any moment (it has waited longer than the queue's median, " (duration(p50)) ")"
                                }
                            }
                            None => span.muted { "unknown: no recent claim on this queue" },
                        }
                    }
                }
                dt { "Artifact" } dd {
                    a href={ "/v1/result/" (id) "/artifact" } download { "artifact.tar.gz" }
                    span.muted { " (when the agent uploaded one)" }
                }
            }
            h2 id="phases" { "Phases" }
            @let phase_list = phases(&job);
            @if phase_list.is_empty() {
                p { "No phase has run yet." }
            } @else {
                div.table-wrap {
                    table aria-labelledby="phases" {
                        thead { tr { th scope="col" { "Phase" } th scope="col" { "Status" } } }
                        tbody {
                            @for (phase, code) in &phase_list {
                                tr {
                                    th scope="row" { (phase) }
                                    td {
                                        @match code {
                                            Some(0) => span class="state pass" { "passed (0)" },
                                            Some(c) => span class="state fail" { "failed (" (c) ")" },
                                            None => span.state { "in progress" },
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 id="events" { "Events" }
            @if events.is_empty() {
                p { "No event recorded." }
            } @else {
                ol.timeline aria-labelledby="events" {
                    @for event in &events {
                        li {
                            (when(event.timestamp, now)) " — "
                            strong { (event.name.as_str()) }
                            @if let Some(phase) = &event.phase { " (" (phase) ")" }
                            @if !event.message.is_empty() { ": " (event.message) }
                            @if !event.detail.is_empty() { " " span.muted { (event.detail) } }
                        }
                    }
                }
            }
            h2 id="output" { "Output" }
            p.live id="output-note" {
                @if live { "Reload the page for newer output." } @else { "The job has finished." }
            }
            @if live {
                pre id="output-tail" tabindex="0" aria-labelledby="output" aria-describedby="output-note"
                    data-live-tail={ "/jobs/" (id) "/output" } { (output) }
            } @else {
                pre id="output-tail" tabindex="0" aria-labelledby="output" aria-describedby="output-note" { (output) }
            }
            details {
                summary { "Job definition" }
                pre.job-document { (document) }
            }
        },
    )
}

/// `GET /jobs/{id}/output`: the end of each phase's output as plain text,
/// and whether the job has finished (`X-Job-Finished`), for the page's
/// live tail.
pub async fn job_output(
    State(state): State<AppState>,
    JobId(id): JobId,
) -> Result<Response, PageError> {
    let job = load_job(&state, id).await?;
    let tails = state.app.job_output_tail(id).await?;
    let mut response = tail_text(&tails).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "x-job-finished",
        HeaderValue::from_static(if job.state.is_terminal() {
            "true"
        } else {
            "false"
        }),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn webhook_urls_and_secret_paths_are_hidden() {
        let data = json!({
            "job_queue": "q",
            "job_status_webhook": [{"url": "https://user:pw@chat.example/hooks/s3cr3t"}, "http://ci.example:8080/x?token=t0k"],
            "test_data": {"secrets": {"WIFI": "lab/wifi-password"}, "test_cmds": "true"},
        });
        let shown = Value::Object(redacted(data.as_object().unwrap())).to_string();
        for hidden in ["s3cr3t", "t0k", "pw@", "lab/wifi-password"] {
            assert!(!shown.contains(hidden), "{hidden} shown in {shown}");
        }
        assert!(
            shown.contains("chat.example") && shown.contains("ci.example:8080"),
            "{shown}"
        );
        assert!(
            shown.contains("WIFI") && shown.contains("test_cmds"),
            "{shown}"
        );
    }
}
