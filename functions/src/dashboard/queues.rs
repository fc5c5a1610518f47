//! `/queues` and `/queues/{name}` (depth, waits and their chart, agents,
//! jobs).

use axum::extract::{RawQuery, State};
use maud::html;
use testflinger_shared::app::dashboard::AgentFilter;
use testflinger_shared::queues::{wait_percentiles, SearchQuery};
use testflinger_shared::Timestamp;

use super::chart::wait_chart;
use super::overview::{job_table, queue_table};
use super::{duration, encode, page, param, state_badge, PageResult, Section};
use crate::extract::Segment;
use crate::query::{cursor, pairs, search_query};
use crate::AppState;

/// Jobs listed on a queue's page at once.
const QUEUE_JOBS_PER_PAGE: usize = 25;

pub async fn queues_page(State(state): State<AppState>) -> PageResult {
    let queues = state.app.dashboard_queues(Timestamp::now()).await?;
    page(
        "Queues",
        Section::Queues,
        html! {
            h1 { "Queues" }
            (queue_table(&queues))
        },
    )
}

pub async fn queue_page(
    State(state): State<AppState>,
    Segment(name): Segment,
    RawQuery(query): RawQuery,
) -> PageResult {
    let now = Timestamp::now();
    let pairs = pairs(query.as_deref());
    let before: Vec<(String, String)> = param(&pairs, "before")
        .map(|b| vec![("before".to_owned(), b)])
        .unwrap_or_default();
    let mut search: SearchQuery = search_query(&before)?;
    search.queue = Some(name.clone());
    search.limit = QUEUE_JOBS_PER_PAGE;
    let rows = state.app.dashboard_queues(now).await?;
    let row = rows.iter().find(|q| q.name == name);
    let agents = state
        .app
        .filter_agents(&AgentFilter {
            queue: Some(name.clone()),
            ..AgentFilter::default()
        })
        .await?;
    let jobs = state.app.search_jobs(&search).await?;
    let waits = state.app.queue_wait_sample(&name, now).await?;
    let percentiles = wait_percentiles(&waits);
    let next = jobs
        .jobs
        .last()
        .filter(|_| jobs.more)
        .map(|last| format!("/queues/{}?before={}", encode(&name), encode(&cursor(last))));
    page(
        &format!("Queue {name}"),
        Section::Queues,
        html! {
            h1 { "Queue " (name) }
            @match row {
                None => p { "No agent, advertisement or unfinished job names this queue." },
                Some(row) => {
                    p {
                        @match &row.description {
                            Some(d) if !d.is_empty() => (d),
                            _ => span.muted { "No description" },
                        }
                    }
                    ul.cards aria-label="Queue depth" {
                        li { span.count { (row.waiting) } "waiting" }
                        li { span.count { (row.running) } "running" }
                        li { span.count { (row.agents) } "agents" }
                    }
                }
            }
            h2 id="waits" { "Wait times (last 7 days)" }
            @if !percentiles.is_empty() {
                div.table-wrap {
                    table aria-labelledby="waits" {
                        thead { tr { @for (p, _) in &percentiles { th.num scope="col" { "p" (p) } } } }
                        tbody { tr { @for (_, s) in &percentiles { td.num { (duration(*s)) } } } }
                    }
                }
            }
            (wait_chart(&name, &waits))
            h2 id="queue-agents" { "Agents" }
            @if agents.is_empty() {
                p { "No agent serves this queue." }
            } @else {
                div.table-wrap {
                    table aria-labelledby="queue-agents" {
                        thead { tr { th scope="col" { "Agent" } th scope="col" { "State" } th scope="col" { "Current job" } th scope="col" { "Last seen" } } }
                        tbody {
                            @for agent in &agents {
                                tr {
                                    th scope="row" { a href={ "/agents/" (encode(&agent.name)) } { (agent.name) } }
                                    td { (state_badge(&agent.legacy_state().unwrap_or_else(|| "unknown".into()))) }
                                    td.mono { @if let Some(job) = agent.job_id() { a href={ "/jobs/" (encode(job)) } { (job) } } }
                                    td { (super::last_seen_cell(agent, now, state.app.offline_before(now))) }
                                }
                            }
                        }
                    }
                }
            }
            h2 id="queue-jobs" { "Jobs" }
            (job_table(&jobs.jobs, now))
            nav.pager aria-label="Pages" {
                @if search.before.is_some() {
                    a href={ "/queues/" (encode(&name)) } { "← Newest" }
                }
                @if let Some(next) = &next {
                    a href=(next) rel="next" { "Older jobs →" }
                }
                a href={ "/jobs?queue=" (encode(&name)) } { "Search this queue's jobs" }
            }
        },
    )
}
