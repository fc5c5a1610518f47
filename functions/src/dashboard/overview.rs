//! `/`: each queue's depth and waits, agents by state, the newest jobs.

use axum::extract::State;
use maud::{html, Markup};
use testflinger_shared::app::dashboard::QueueRow;
use testflinger_shared::queues::JobSummary;
use testflinger_shared::Timestamp;

use super::{duration, encode, page, state_badge, when, PageResult, Section};
use crate::AppState;

pub async fn overview_page(State(state): State<AppState>) -> PageResult {
    let now = Timestamp::now();
    let overview = state.app.dashboard_overview(now).await?;
    let agents: usize = overview.agents_by_state.values().sum();
    page(
        "Overview",
        Section::Overview,
        html! {
            h1 { "Overview" }
            h2 id="queues" { "Queues" }
            (queue_table(&overview.queues))
            h2 id="agents" { "Agents by state" }
            @if agents == 0 {
                p { "No agent has registered yet." }
            } @else {
                ul.cards aria-labelledby="agents" {
                    @for (agent_state, count) in &overview.agents_by_state {
                        li {
                            span.count { (count) }
                            a href={ "/agents?state=" (encode(agent_state)) } { (agent_state) }
                        }
                    }
                }
                p.muted { (agents) " agents in all. " a href="/agents" { "All agents" } }
            }
            h2 id="recent" { "Recent jobs" }
            (job_table(&overview.recent_jobs, now))
            p { a href="/jobs" { "Search all jobs" } }
        },
    )
}

fn seconds(value: Option<f64>) -> Markup {
    html! {
        @match value {
            Some(s) => (duration(s)),
            None => span.muted { "—" },
        }
    }
}

/// The queues table of the overview and the queues page.
pub(super) fn queue_table(queues: &[QueueRow]) -> Markup {
    html! {
        @if queues.is_empty() {
            p { "No queue is known yet: queues appear when an agent lists them." }
        } @else {
            div.table-wrap {
                table {
                    thead {
                        tr {
                            th scope="col" { "Queue" }
                            th.num scope="col" { "Waiting" }
                            th.num scope="col" { "Running" }
                            th.num scope="col" { "Agents" }
                            th.num scope="col" { "Wait p50" }
                            th.num scope="col" { "Wait p90" }
                        }
                    }
                    tbody {
                        @for q in queues {
                            tr {
                                th scope="row" { a href={ "/queues/" (encode(&q.name)) } { (q.name) } }
                                td.num { (q.waiting) }
                                td.num { (q.running) }
                                td.num { (q.agents) }
                                td.num { (seconds(q.wait_p50)) }
                                td.num { (seconds(q.wait_p90)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A table of jobs, newest first (overview, jobs, queue pages).
pub(super) fn job_table(jobs: &[JobSummary], now: Timestamp) -> Markup {
    html! {
        @if jobs.is_empty() {
            p { "No job matches." }
        } @else {
            div.table-wrap {
                table {
                    thead {
                        tr {
                            th scope="col" { "Job" }
                            th scope="col" { "State" }
                            th scope="col" { "Queue" }
                            th scope="col" { "Submitted by" }
                            th scope="col" { "Created" }
                            th scope="col" { "Tags" }
                        }
                    }
                    tbody {
                        @for job in jobs {
                            tr {
                                td.mono { a href={ "/jobs/" (job.job_id) } { (job.job_id) } }
                                td { (state_badge(job.job_state.as_str())) }
                                td { a href={ "/queues/" (encode(&job.job_queue)) } { (job.job_queue) } }
                                td {
                                    @match &job.submitted_by {
                                        Some(client) => (client),
                                        None => span.muted { "anonymous" },
                                    }
                                }
                                td { (when(job.created_at, now)) }
                                td { (job.tags.join(", ")) }
                            }
                        }
                    }
                }
            }
        }
    }
}
