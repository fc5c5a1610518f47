//! A job's events (upstream's job "Activity"): what happened to a job and
//! when, recorded by the server from the requests it already gets, never
//! posted by anyone. Bounded per job.

use serde_json::{json, Map, Value};

use crate::job::JobState;
use crate::logs::LOG_PHASES;
use crate::Timestamp;

/// The most events kept per job; later ones are dropped (a job has a
/// dozen or two; this bounds an agent that flips states in a loop).
pub const MAX_JOB_EVENTS: usize = 200;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    JobSubmitted,
    JobAssigned,
    JobPhaseStarted,
    JobPhaseCompleted,
    JobCompleted,
    JobCancelled,
    /// A job put back in its queue (leases, later).
    JobRequeued,
}

impl EventName {
    pub const ALL: [EventName; 7] = [
        EventName::JobSubmitted,
        EventName::JobAssigned,
        EventName::JobPhaseStarted,
        EventName::JobPhaseCompleted,
        EventName::JobCompleted,
        EventName::JobCancelled,
        EventName::JobRequeued,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventName::JobSubmitted => "job_submitted",
            EventName::JobAssigned => "job_assigned",
            EventName::JobPhaseStarted => "job_phase_started",
            EventName::JobPhaseCompleted => "job_phase_completed",
            EventName::JobCompleted => "job_completed",
            EventName::JobCancelled => "job_cancelled",
            EventName::JobRequeued => "job_requeued",
        }
    }

    pub fn parse(text: &str) -> Option<EventName> {
        EventName::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// One event of a job's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub name: EventName,
    pub timestamp: Timestamp,
    pub message: String,
    pub detail: String,
    pub phase: Option<String>,
    pub status: Option<i64>,
}

impl JobEvent {
    fn new(name: EventName, at: Timestamp, message: String, detail: String) -> Self {
        JobEvent {
            name,
            timestamp: at,
            message,
            detail,
            phase: None,
            status: None,
        }
    }

    /// `POST /v1/job`; `client` is the submitting client, if any.
    pub fn submitted(at: Timestamp, queue: &str, client: Option<&str>) -> Self {
        let by = client.unwrap_or("an anonymous client");
        JobEvent::new(
            EventName::JobSubmitted,
            at,
            format!("Job submitted to queue '{queue}' by {by}"),
            client.unwrap_or_default().to_owned(),
        )
    }

    /// The claim, by `agent` (the `agent_name` cookie) when known.
    pub fn assigned(at: Timestamp, agent: Option<&str>) -> Self {
        let message = match agent {
            Some(agent) => format!("Job assigned to agent '{agent}'"),
            None => "Job assigned to an agent that did not identify itself".to_owned(),
        };
        JobEvent::new(
            EventName::JobAssigned,
            at,
            message,
            agent.unwrap_or_default().to_owned(),
        )
    }

    /// The cancel action, by `client` when the caller had a token.
    pub fn cancelled(at: Timestamp, client: Option<&str>) -> Self {
        let by = client.unwrap_or("an anonymous client");
        JobEvent::new(
            EventName::JobCancelled,
            at,
            format!("Job cancelled by {by}"),
            client.unwrap_or_default().to_owned(),
        )
    }

    /// The stored and shown form.
    pub fn to_value(&self) -> Value {
        let mut out = Map::new();
        out.insert("event_name".into(), json!(self.name.as_str()));
        out.insert("timestamp".into(), json!(self.timestamp.millis()));
        out.insert("message".into(), json!(self.message));
        out.insert("detail".into(), json!(self.detail));
        if let Some(phase) = &self.phase {
            out.insert("phase".into(), json!(phase));
        }
        if let Some(status) = self.status {
            out.insert("status".into(), json!(status));
        }
        Value::Object(out)
    }

    /// Reads the stored form back; `None` for a record this version cannot read.
    pub fn from_value(value: &Value) -> Option<Self> {
        Some(JobEvent {
            name: EventName::parse(value.get("event_name")?.as_str()?)?,
            timestamp: Timestamp::from_millis(value.get("timestamp")?.as_i64()?),
            message: value.get("message")?.as_str()?.to_owned(),
            detail: value.get("detail")?.as_str()?.to_owned(),
            phase: value
                .get("phase")
                .and_then(Value::as_str)
                .map(str::to_owned),
            status: value.get("status").and_then(Value::as_i64),
        })
    }
}

/// What a result post did to a job, as the store saw it atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultChange {
    pub before: JobState,
    pub after: JobState,
    /// The `status` map before the post.
    pub previous_status: Map<String, Value>,
    /// The agent the job was assigned to (`result_data.agent_id`), if any.
    pub agent_id: Option<String>,
}

/// The events a result post makes (as upstream derives them): a newly
/// reported test phase starts; each phase new to the `status` map (or with
/// a new exit code) completes; reaching `complete` completes the job once.
/// A reported `cancelled` makes none: the cancel action records it.
pub fn result_events(
    change: &ResultChange,
    posted_status: Option<&Map<String, Value>>,
    at: Timestamp,
) -> Vec<JobEvent> {
    let mut events = Vec::new();
    if change.after != change.before {
        if let JobState::Reported(phase) = &change.after {
            if LOG_PHASES.contains(&phase.as_str()) {
                let mut event = JobEvent::new(
                    EventName::JobPhaseStarted,
                    at,
                    format!("Phase '{phase}' started"),
                    String::new(),
                );
                event.phase = Some(phase.clone());
                events.push(event);
            }
        }
    }
    for (phase, code) in posted_status.into_iter().flatten() {
        let Some(code) = code.as_i64() else { continue };
        if change.previous_status.get(phase).and_then(Value::as_i64) == Some(code) {
            continue;
        }
        let mut event = JobEvent::new(
            EventName::JobPhaseCompleted,
            at,
            format!("Phase '{phase}' completed with exit status {code}"),
            String::new(),
        );
        event.phase = Some(phase.clone());
        event.status = Some(code);
        events.push(event);
    }
    let completed = matches!(change.after, JobState::Complete | JobState::Completed);
    if completed && !change.before.is_terminal() {
        events.push(JobEvent::new(
            EventName::JobCompleted,
            at,
            "Job completed".into(),
            String::new(),
        ));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(before: &str, after: &str, previous: Value) -> ResultChange {
        ResultChange {
            before: JobState::parse(before),
            after: JobState::parse(after),
            previous_status: previous.as_object().cloned().unwrap_or_default(),
            agent_id: None,
        }
    }

    fn names(events: &[JobEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn phases_start_complete_and_the_job_completes_once() {
        let at = Timestamp::from_millis(1);
        let status = json!({"setup": 0});
        let events = result_events(
            &change("setup", "provision", json!({})),
            status.as_object(),
            at,
        );
        assert_eq!(names(&events), ["job_phase_started", "job_phase_completed"]);
        assert_eq!(events[0].phase.as_deref(), Some("provision"));
        assert_eq!(events[1].phase.as_deref(), Some("setup"));
        assert_eq!(events[1].status, Some(0));
        // The same status again: nothing new.
        let events = result_events(
            &change("provision", "provision", json!({"setup": 0})),
            status.as_object(),
            at,
        );
        assert!(events.is_empty(), "{events:?}");
        let done = result_events(&change("test", "complete", json!({})), None, at);
        assert_eq!(names(&done), ["job_completed"]);
        let again = result_events(&change("complete", "complete", json!({})), None, at);
        assert!(again.is_empty());
    }

    #[test]
    fn states_that_are_not_test_phases_start_nothing() {
        let at = Timestamp::from_millis(1);
        for after in ["cancelled", "running", "allocated", "a-custom-state"] {
            let events = result_events(&change("test", after, json!({})), None, at);
            assert!(events.is_empty(), "{after}: {events:?}");
        }
    }

    #[test]
    fn events_read_back_as_stored() {
        let mut event = JobEvent::assigned(Timestamp::from_millis(42), Some("dev-1"));
        event.phase = Some("test".into());
        event.status = Some(3);
        assert_eq!(JobEvent::from_value(&event.to_value()), Some(event));
        for name in EventName::ALL {
            assert_eq!(EventName::parse(name.as_str()), Some(name));
        }
    }
}
