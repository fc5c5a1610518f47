//! `/agents` (filtered by queue, state and location; paged) and
//! `/agents/{name}` (details, provision history, recent log).

use std::collections::BTreeSet;

use axum::extract::{RawQuery, State};
use maud::{html, Markup};
use serde_json::Value;
use testflinger_shared::agents::Agent;
use testflinger_shared::app::dashboard::AgentFilter;
use testflinger_shared::Timestamp;

use super::{encode, page, param, state_badge, when, PageResult, Section};
use crate::extract::Segment;
use crate::query::pairs;
use crate::AppState;

/// Agents on one page of the listing.
const AGENTS_PER_PAGE: usize = 100;

/// States an agent can be in, for the filter's choices (any other state an
/// agent reports still shows, and can be asked for by URL).
const AGENT_STATES: &[&str] = &[
    "waiting",
    "setup",
    "provision",
    "firmware_update",
    "test",
    "allocate",
    "allocated",
    "reserve",
    "cleanup",
    "maintenance",
    "offline",
    "restart",
];

fn text_field<'a>(agent: &'a Agent, key: &str) -> Option<&'a str> {
    agent
        .fields
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn streak(agent: &Agent) -> Markup {
    html! {
        @match &agent.provision_streak {
            Some((kind, count)) => {
                span class=(if kind == "pass" { "state pass" } else { "state fail" }) {
                    (count) " " (kind)
                }
            }
            None => span.muted { "—" },
        }
    }
}

pub async fn agents_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> PageResult {
    let now = Timestamp::now();
    let pairs = pairs(query.as_deref());
    let filter = AgentFilter {
        queue: param(&pairs, "queue"),
        state: param(&pairs, "state"),
        location: param(&pairs, "location"),
    };
    let page_number: usize = param(&pairs, "page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let agents = state.app.filter_agents(&filter).await?;
    let queues: BTreeSet<String> = state.app.dashboard_queue_names().await?;
    let total = agents.len();
    let shown: Vec<&Agent> = agents
        .iter()
        .skip((page_number - 1) * AGENTS_PER_PAGE)
        .take(AGENTS_PER_PAGE)
        .collect();
    let link_to_page = |n: usize| {
        let mut query = String::new();
        for (key, value) in [
            ("queue", &filter.queue),
            ("state", &filter.state),
            ("location", &filter.location),
        ] {
            if let Some(value) = value {
                query.push_str(&format!("{key}={}&", encode(value)));
            }
        }
        format!("/agents?{query}page={n}")
    };
    page(
        "Agents",
        Section::Agents,
        html! {
            h1 { "Agents" }
            form.filters method="get" action="/agents" role="search" aria-label="Filter agents" {
                label for="f-queue" {
                    "Queue"
                    select id="f-queue" name="queue" {
                        option value="" { "any" }
                        @for q in &queues {
                            option value=(q) selected[filter.queue.as_deref() == Some(q.as_str())] { (q) }
                        }
                    }
                }
                label for="f-state" {
                    "State"
                    select id="f-state" name="state" {
                        option value="" { "any" }
                        @for s in AGENT_STATES {
                            option value=(s) selected[filter.state.as_deref() == Some(*s)] { (s) }
                        }
                    }
                }
                label for="f-location" {
                    "Location"
                    input id="f-location" name="location" type="search" value=[filter.location.as_deref()];
                }
                button type="submit" { "Filter" }
            }
            p { (total) " agents match." }
            @if !shown.is_empty() {
                div.table-wrap {
                    table {
                        thead {
                            tr {
                                th scope="col" { "Agent" }
                                th scope="col" { "State" }
                                th scope="col" { "Queues" }
                                th scope="col" { "Location" }
                                th scope="col" { "Current job" }
                                th scope="col" { "Submitted by" }
                                th scope="col" { "Last seen" }
                                th scope="col" { "Provision streak" }
                            }
                        }
                        tbody {
                            @for agent in &shown {
                                tr {
                                    th scope="row" { a href={ "/agents/" (encode(&agent.name)) } { (agent.name) } }
                                    td { (state_badge(&agent.legacy_state().unwrap_or_else(|| "unknown".into()))) }
                                    td { (agent.queues().join(", ")) }
                                    td { (text_field(agent, "location").unwrap_or("")) }
                                    td.mono {
                                        @if let Some(job) = agent.job_id() {
                                            a href={ "/jobs/" (encode(job)) } { (job) }
                                        }
                                    }
                                    td { (agent.submitted_by().unwrap_or("")) }
                                    td { (super::last_seen_cell(agent, now, state.app.offline_before(now))) }
                                    td { (streak(agent)) }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if page_number > 1 {
                    a href=(link_to_page(page_number - 1)) rel="prev" { "← Previous" }
                }
                @if page_number * AGENTS_PER_PAGE < total {
                    a href=(link_to_page(page_number + 1)) rel="next" { "Next →" }
                }
            }
        },
    )
}

/// Agent fields shown on its page, in this order, with their labels.
const DETAILS: &[(&str, &str)] = &[
    ("mode", "Mode"),
    ("state", "Sub-state"),
    ("commanded_mode", "Commanded mode"),
    ("location", "Location"),
    ("provision_type", "Provision type"),
    ("comment", "Comment"),
    ("identifier", "Identifier"),
];

pub async fn agent_page(State(state): State<AppState>, Segment(name): Segment) -> PageResult {
    let now = Timestamp::now();
    let listing = state
        .app
        .get_agent(&testflinger_shared::app::Caller::default(), &name, now)
        .await?;
    let Some(agent) = listing.agents.first() else {
        return Err(
            testflinger_shared::Error::NotFound(format!("Agent '{name}' does not exist.")).into(),
        );
    };
    let flat_state = agent.legacy_state().unwrap_or_else(|| "unknown".into());
    page(
        &agent.name,
        Section::Agents,
        html! {
            h1 { "Agent " (agent.name) }
            dl.fields {
                dt { "State" } dd { (state_badge(&flat_state)) }
                dt { "Queues" } dd {
                    @for (i, q) in agent.queues().iter().enumerate() {
                        @if i > 0 { ", " }
                        a href={ "/queues/" (encode(q)) } { (q) }
                    }
                }
                @for (key, label) in DETAILS {
                    @if let Some(value) = text_field(agent, key) {
                        dt { (label) } dd { (value) }
                    }
                }
                dt { "Current job" } dd.mono {
                    @match agent.job_id() {
                        Some(job) => a href={ "/jobs/" (encode(job)) } { (job) },
                        None => span.muted { "none" },
                    }
                }
                @if let Some(client) = agent.submitted_by() {
                    dt { "Submitted by" } dd { (client) }
                }
                dt { "Last seen" } dd { (super::last_seen_cell(agent, now, state.app.offline_before(now))) }
                dt { "Provision streak" } dd { (streak(agent)) }
            }
            h2 id="provision" { "Provision history" }
            @if agent.provision_log.is_empty() {
                p { "No provision recorded." }
            } @else {
                div.table-wrap {
                    table aria-labelledby="provision" {
                        thead {
                            tr {
                                th scope="col" { "When" }
                                th scope="col" { "Job" }
                                th.num scope="col" { "Exit code" }
                                th scope="col" { "Detail" }
                            }
                        }
                        tbody {
                            // Newest first. The entry's `client_id` (whose
                            // job it was) is not shown.
                            @for entry in agent.provision_log.iter().rev() {
                                @let field = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                                @let code = entry.get("exit_code").and_then(Value::as_i64);
                                tr {
                                    td {
                                        @match Timestamp::parse_rfc3339(&field("timestamp")) {
                                            Some(at) => (when(at, now)),
                                            None => (field("timestamp")),
                                        }
                                    }
                                    td.mono { a href={ "/jobs/" (encode(&field("job_id"))) } { (field("job_id")) } }
                                    td.num {
                                        @match code {
                                            Some(0) => span class="state pass" { "0" },
                                            Some(c) => span class="state fail" { (c) },
                                            None => "",
                                        }
                                    }
                                    td { (field("detail")) }
                                }
                            }
                        }
                    }
                }
            }
            h2 id="log" { "Recent log" }
            @if agent.log.is_empty() {
                p { "The agent has sent no log lines." }
            } @else {
                pre aria-labelledby="log" tabindex="0" { @for line in &agent.log { (line) "\n" } }
            }
        },
    )
}
