//! What the API shows of the domain's records: the JSON views of SPEC.md,
//! built from what the use cases answer. Nothing here decides anything.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use testflinger_shared::agents::{
    Agent, COMMANDED_MODE, COMMANDED_MODE_CHANGED_AT, COMMANDED_MODE_CHANGED_BY, COMMENT, JOB_ID,
    LAST_HEARD, MODE, MODE_CHANGED_AT, SILENT_SINCE, STATE, STATE_CHANGED_AT,
};
use testflinger_shared::app::agents::{Agents, OwnerChange};
use testflinger_shared::app::events::TargetOutcome;
use testflinger_shared::app::jobs::Claimed;
use testflinger_shared::app::results::JobResult;
use testflinger_shared::clients::{Client, RestrictedQueue};
use testflinger_shared::events::JobEvent;
use testflinger_shared::job::{Job, ATTACHMENTS_STATUS, CLIENT_ID};
use testflinger_shared::logs::{LogFragment, LogQuery, LogType, LOG_PHASES};
use testflinger_shared::queues::JobSummary;
use testflinger_shared::statistics::JobStatistics;
use testflinger_shared::Timestamp;

/// `GET /v1/job/{id}`: the job as submitted plus `job_id`.
pub fn job_definition(job: &Job) -> Map<String, Value> {
    let mut out = job.job_data.clone();
    out.remove(CLIENT_ID);
    out.insert("job_id".into(), Value::String(job.job_id.to_string()));
    out
}

/// The claim answer (SPEC.md §7): the submitted fields flattened, plus
/// `job_id`, `client_id`, `started_at` and `attachments_status` when
/// relevant, with each secret's path replaced by its value ("" when the
/// secret is gone or withheld).
pub fn claim(claimed: &Claimed) -> Map<String, Value> {
    let job = &claimed.job;
    let mut out = job_definition(job);
    if let Some(client_id) = job.client_id() {
        out.insert(CLIENT_ID.into(), Value::String(client_id.to_owned()));
    }
    if let Some(started) = job.started_at {
        out.insert("started_at".into(), Value::String(started.to_rfc3339()));
    }
    if let Some(status) = job.attachments_status {
        out.insert(
            ATTACHMENTS_STATUS.into(),
            Value::String(status.as_str().into()),
        );
    }
    if let Some(Value::Object(secrets)) =
        out.get_mut("test_data").and_then(|t| t.get_mut("secrets"))
    {
        for value in secrets.values_mut() {
            let path = value.as_str().unwrap_or_default();
            let resolved = claimed.secrets.get(path).cloned().unwrap_or_default();
            *value = Value::String(resolved);
        }
    }
    out
}

/// `{job_id, created_at, job_state, job_queue, submitted_by}` (+ `tags`
/// for search); `submitted_by` is null for anonymous jobs.
pub fn job_summary(summary: &JobSummary, with_tags: bool) -> Value {
    let mut out = json!({
        "job_id": summary.job_id,
        "created_at": summary.created_at.to_rfc3339(),
        "job_state": summary.job_state.as_str(),
        "job_queue": summary.job_queue,
        "submitted_by": summary.submitted_by,
    });
    if with_tags {
        out["tags"] = json!(summary.tags);
    }
    out
}

/// The key of `GET /v1/result/{id}` that names each `<phase>_<type>` log
/// cut to its tail: how many bytes are there, where they start (fragment
/// number and byte offset into it) and where the whole log is.
pub const TRUNCATED_LOGS: &str = "truncated_logs";

/// `GET /v1/result/{id}`: every stored result key, `job_state`,
/// `<phase>_status` for each phase in the status map, and `<phase>_output`
/// / `<phase>_serial` with each phase's log: whole, or its last
/// `TESTFLINGER_RESULT_LOG_TAIL` bytes and an entry in [`TRUNCATED_LOGS`].
pub fn result(result: &JobResult) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in &result.job.result_data {
        if key == "status" {
            if let Some(status) = value.as_object() {
                for (phase, code) in status {
                    out.insert(format!("{phase}_status"), code.clone());
                }
            }
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    let mut cuts = Map::new();
    for (log_type, tails) in &result.logs {
        for tail in tails {
            let key = format!("{}_{}", tail.phase, log_type.as_str());
            if let Some(cut) = tail.cut {
                cuts.insert(
                    key.clone(),
                    json!({
                        "returned_bytes": tail.text.len(),
                        "starts_at_fragment": cut.fragment_number,
                        "starts_at_offset": cut.offset,
                        "full_log": format!(
                            "/v1/result/{}/log/{}?phase={}",
                            result.job.job_id,
                            log_type.as_str(),
                            tail.phase
                        ),
                    }),
                );
            }
            if !tail.text.is_empty() {
                out.insert(key, Value::String(tail.text.clone()));
            }
        }
    }
    // Only when something was left out: otherwise the answer is upstream's.
    if !cuts.is_empty() {
        out.insert(TRUNCATED_LOGS.into(), Value::Object(cuts));
    }
    out.insert(
        "job_state".into(),
        Value::String(result.job.state.to_string()),
    );
    out
}

/// One event of `GET /v1/events/job/{id}`, as upstream shows it (its
/// `timestamp` in MongoDB's extended JSON: `{"$date": "<RFC 3339>"}`).
pub fn job_event(event: &JobEvent) -> Value {
    let mut out = json!({
        "event_name": event.name.as_str(),
        "timestamp": {"$date": event.timestamp.to_rfc3339()},
        "message": event.message,
        "detail": event.detail,
    });
    if let Some(phase) = &event.phase {
        out["phase"] = json!(phase);
    }
    if let Some(status) = event.status {
        out["status"] = json!(status);
    }
    out
}

/// `GET /v1/result/{id}/status`: `job_state` and `<phase>_status` for each
/// phase of the status map that is a phase logs are kept for.
pub fn result_status(job: &Job) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("job_state".into(), Value::String(job.state.to_string()));
    if let Some(status) = job.result_data.get("status").and_then(Value::as_object) {
        for phase in LOG_PHASES {
            if let Some(code) = status.get(phase) {
                out.insert(format!("{phase}_status"), code.clone());
            }
        }
    }
    out
}

/// `{"<type>": {"<phase>": {"last_fragment_number", "log_data"}}}` with
/// every phase present (−1 and "" when empty) unless the query names one
/// phase. `fragments` must be in fragment-number order.
pub fn log(log_type: LogType, query: &LogQuery, fragments: &[LogFragment]) -> Value {
    let phases: Vec<&str> = match &query.phase {
        Some(phase) => vec![phase.as_str()],
        None => LOG_PHASES.to_vec(),
    };
    let mut out = Map::new();
    for phase in phases {
        let mut last = -1;
        let mut data = String::new();
        for fragment in fragments
            .iter()
            .filter(|f| f.phase == phase && query.admits(f))
        {
            last = last.max(fragment.fragment_number);
            data.push_str(&fragment.log_data);
        }
        out.insert(
            phase.to_owned(),
            json!({"last_fragment_number": last, "log_data": data}),
        );
    }
    json!({ log_type.as_str(): out })
}

/// The API's view of an agent: the fields, `name`, `updated_at`, the streak
/// and `restricted_to` (each of its queues that is restricted, with the
/// owners); with `details`, also `log` and `provision_log`.
pub fn agent(agent: &Agent, details: bool, listing: &Agents) -> Value {
    let restricted = &listing.restricted;
    let mut out = Map::new();
    out.insert("name".into(), Value::String(agent.name.clone()));
    for (key, value) in &agent.fields {
        out.insert(key.clone(), value.clone());
    }
    // v1 readers see the flat state synthesised from mode and sub-state.
    match agent.legacy_state() {
        Some(state) => out.insert(STATE.into(), Value::String(state)),
        None => out.remove(STATE),
    };
    out.insert(
        "updated_at".into(),
        Value::String(agent.updated_at.to_rfc3339()),
    );
    if let Some((kind, count)) = &agent.provision_streak {
        out.insert("provision_streak_type".into(), Value::String(kind.clone()));
        out.insert("provision_streak_count".into(), Value::from(*count));
    }
    out.insert("restricted_to".into(), restricted_to(agent, restricted));
    liveness(&mut out, agent, listing.offline_before);
    if details {
        out.insert("log".into(), json!(agent.log));
        out.insert(
            "provision_log".into(),
            Value::Array(agent.provision_log.clone()),
        );
    }
    Value::Object(out)
}

/// `last_heard`: when the agent itself last spoke; `silent_since`, only
/// when it has been silent past `TESTFLINGER_AGENT_OFFLINE_SECONDS`.
fn liveness(out: &mut Map<String, Value>, agent: &Agent, offline_before: Timestamp) {
    out.insert(
        LAST_HEARD.into(),
        Value::String(agent.heard_at().to_rfc3339()),
    );
    if let Some(since) = agent.silent_since(offline_before) {
        out.insert(SILENT_SINCE.into(), Value::String(since.to_rfc3339()));
    }
}

/// Each of the agent's queues that is restricted, with its owners.
fn restricted_to(agent: &Agent, restricted: &[RestrictedQueue]) -> Value {
    let queues = agent.queues();
    Value::Object(
        restricted
            .iter()
            .filter(|r| queues.contains(&r.queue.as_str()))
            .map(|r| (r.queue.clone(), json!(r.owners)))
            .collect(),
    )
}

/// The v2 view of an agent (upstream `AgentOutV2`): reported mode and
/// sub-state, the admin's commanded mode, and the job it runs (or null).
pub fn agent_v2(agent: &Agent, listing: &Agents, job: Option<&Job>) -> Value {
    let restricted = &listing.restricted;
    let field = |name: &str| agent.fields.get(name).cloned().unwrap_or(Value::Null);
    let job = job.map(|job| {
        json!({
            "job_id": job.job_id.to_string(),
            "job_state": job.state.as_str(),
            "job_queue": job.job_queue,
            "created_at": job.created_at.to_rfc3339(),
            "started_at": job.started_at.map(|t| t.to_rfc3339()),
            "submitted_by": job.client_id(),
        })
    });
    let mut out = json!({
        "name": agent.name,
        "mode": field(MODE),
        "mode_changed_at": field(MODE_CHANGED_AT),
        "commanded_mode": field(COMMANDED_MODE),
        "commanded_mode_changed_at": field(COMMANDED_MODE_CHANGED_AT),
        "commanded_mode_changed_by": field(COMMANDED_MODE_CHANGED_BY),
        "state": field(STATE),
        "state_changed_at": field(STATE_CHANGED_AT),
        "job_id": field(JOB_ID),
        "queues": agent.fields.get("queues").cloned().unwrap_or_else(|| json!([])),
        "location": field("location"),
        "provision_type": field("provision_type"),
        "comment": field(COMMENT),
        "restricted_to": restricted_to(agent, restricted),
        "job": job,
    });
    if let Value::Object(map) = &mut out {
        liveness(map, agent, listing.offline_before);
    }
    out
}

/// Agents in the v2 view.
/// `PUT /v2/agents/{name}/owner`: `{"name", "client_id", "previous_client_id"}`
/// (`null` for a released or a formerly free name).
pub fn agent_owner_change(change: &OwnerChange) -> Value {
    json!({
        "name": change.name,
        "client_id": change.client_id,
        "previous_client_id": change.previous.as_ref().map(|o| o.client_id.as_str()),
    })
}

pub fn agents_v2(listing: &Agents) -> Vec<Value> {
    listing
        .agents
        .iter()
        .map(|a| agent_v2(a, listing, listing.jobs.get(&a.name)))
        .collect()
}

/// Agents listed (without their logs).
pub fn agents(listing: &Agents) -> Vec<Value> {
    listing
        .agents
        .iter()
        .map(|a| agent(a, false, listing))
        .collect()
}

/// What the API shows of a client: everything but the secret's hash.
pub fn client(client: &Client) -> Value {
    json!({
        "client_id": client.client_id,
        "role": client.role.as_str(),
        "max_priority": client.max_priority,
        "allowed_queues": client.allowed_queues,
        "max_reservation_time": client.max_reservation_time,
    })
}

pub fn restricted_queue(restriction: &RestrictedQueue) -> Value {
    json!({ "queue": restriction.queue, "owners": restriction.owners })
}

/// `GET /v1/queues/wait_times`: `{queue: {"5": s, "10": s, ...}}`.
pub fn wait_times(waits: &BTreeMap<String, Vec<(u32, f64)>>) -> Value {
    Value::Object(
        waits
            .iter()
            .map(|(queue, percentiles)| {
                let values: Map<String, Value> = percentiles
                    .iter()
                    .map(|(p, seconds)| (p.to_string(), json!(seconds)))
                    .collect();
                (queue.clone(), Value::Object(values))
            })
            .collect(),
    )
}

/// `GET /v1/statistics/jobs`: the range counted (whole UTC days, `stop`
/// exclusive), the grouping and filters, then `total`, `totals` (one entry
/// per group, most jobs first) and `daily` (one entry per day and group with
/// jobs, by day). A group's `key` is its queue or its submitter's client id;
/// `null` is the anonymous submitters.
pub fn job_statistics(stats: &JobStatistics) -> Value {
    let query = &stats.query;
    json!({
        "group_by": query.group_by.as_str(),
        "start": query.start.to_string(),
        "stop": query.stop.to_string(),
        "queues": query.queues,
        "submitters": query.submitters,
        "total": stats.total,
        "totals": stats
            .totals
            .iter()
            .map(|t| json!({"key": t.key, "count": t.count}))
            .collect::<Vec<_>>(),
        "daily": stats
            .daily
            .iter()
            .map(|d| json!({"date": d.day.to_string(), "key": d.key, "count": d.count}))
            .collect::<Vec<_>>(),
    })
}

/// `POST /v1/job/{id}/events` for a job with several webhooks (or a
/// Mattermost one), when at least one took the events:
/// `{"status": "OK", "delivered": n, "failed": m, "webhooks": [{"index",
/// "type", "delivered", "status"?, "error"?}, ...]}`, one entry per webhook
/// in the job's order; `status` is the webhook's HTTP status when it
/// answered, `error` says why it did not take the events.
pub fn relay_summary(outcomes: &[TargetOutcome]) -> Value {
    let delivered = outcomes.iter().filter(|o| o.result.delivered()).count();
    let webhooks: Vec<Value> = outcomes
        .iter()
        .map(|outcome| {
            let mut entry = json!({
                "index": outcome.index,
                "type": outcome.kind.as_str(),
                "delivered": outcome.result.delivered(),
            });
            if let Some(status) = outcome.result.status() {
                entry["status"] = json!(status);
            }
            if let Some(problem) = outcome.result.problem() {
                entry["error"] = json!(problem);
            }
            entry
        })
        .collect();
    json!({
        "status": "OK",
        "delivered": delivered,
        "failed": outcomes.len() - delivered,
        "webhooks": webhooks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use testflinger_shared::role::Role;
    use testflinger_shared::Timestamp;

    fn fragment(n: i64, phase: &str, data: &str, at: i64) -> LogFragment {
        LogFragment {
            fragment_number: n,
            timestamp: Timestamp::from_millis(at),
            phase: phase.into(),
            log_data: data.into(),
        }
    }

    #[test]
    fn the_view_has_every_phase_and_filters() {
        let fragments = [
            fragment(0, "setup", "a", 10),
            fragment(1, "setup", "b", 20),
            fragment(2, "test", "c", 30),
        ];
        let all = log(LogType::Output, &LogQuery::default(), &fragments);
        assert_eq!(
            all["output"]["setup"],
            json!({"last_fragment_number": 1, "log_data": "ab"})
        );
        assert_eq!(
            all["output"]["test"],
            json!({"last_fragment_number": 2, "log_data": "c"})
        );
        assert_eq!(
            all["output"]["cleanup"],
            json!({"last_fragment_number": -1, "log_data": ""})
        );
        assert_eq!(all["output"].as_object().unwrap().len(), LOG_PHASES.len());

        let from_one = LogQuery {
            start_fragment: 1,
            ..LogQuery::default()
        };
        let view = log(LogType::Serial, &from_one, &fragments);
        assert_eq!(
            view["serial"]["setup"],
            json!({"last_fragment_number": 1, "log_data": "b"})
        );

        let since = LogQuery {
            start_timestamp: Some(Timestamp::from_millis(25)),
            phase: Some("test".into()),
            ..LogQuery::default()
        };
        let view = log(LogType::Output, &since, &fragments);
        assert_eq!(
            view,
            json!({"output": {"test": {"last_fragment_number": 2, "log_data": "c"}}})
        );
    }

    #[test]
    fn a_client_is_shown_without_its_secret_hash() {
        let client = Client::new("x", "hashed:a long enough secret", Role::Manager);
        let view = super::client(&client).to_string();
        assert!(!view.contains("hashed"), "{view}");
        assert!(view.contains("manager"), "{view}");
    }

    #[test]
    fn statistics_keep_anonymous_as_null() {
        use testflinger_shared::statistics::{DailyCount, Day, GroupBy, StatisticsQuery};
        let day = Day::parse("2026-09-01").unwrap();
        let query = StatisticsQuery {
            group_by: GroupBy::SubmittedBy,
            start: day,
            stop: day.plus(2),
            queues: vec!["q".into()],
            submitters: vec![],
        };
        let counts = vec![
            DailyCount {
                day,
                key: None,
                count: 2,
            },
            DailyCount {
                day: day.plus(1),
                key: Some("ci".into()),
                count: 3,
            },
        ];
        let view = job_statistics(&JobStatistics::new(query, counts));
        assert_eq!(
            view,
            json!({
                "group_by": "submitted_by", "start": "2026-09-01", "stop": "2026-09-03",
                "queues": ["q"], "submitters": [], "total": 5,
                "totals": [{"key": "ci", "count": 3}, {"key": null, "count": 2}],
                "daily": [
                    {"date": "2026-09-01", "key": null, "count": 2},
                    {"date": "2026-09-02", "key": "ci", "count": 3},
                ],
            })
        );
    }

    #[test]
    fn wait_times_are_keyed_by_percentile() {
        let mut waits = BTreeMap::new();
        waits.insert("q".to_owned(), vec![(5, 1.5), (50, 6.0)]);
        assert_eq!(wait_times(&waits), json!({"q": {"5": 1.5, "50": 6.0}}));
    }
}
