//! What agents advertise: queues with descriptions, and images per queue.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::validation::FieldErrors;
use crate::{Result, Timestamp};

/// `POST /v1/agents/queues`: `{queue: description}`.
pub fn validate_queues(body: &Map<String, Value>) -> Result<BTreeMap<String, String>> {
    let mut errors = FieldErrors::new();
    let mut out = BTreeMap::new();
    for (queue, description) in body {
        check_name(queue, &mut errors);
        match description.as_str() {
            Some(d) => {
                out.insert(queue.clone(), d.to_owned());
            }
            None => errors.add(queue.clone(), "The description must be a string."),
        }
    }
    errors.into_result()?;
    Ok(out)
}

/// `POST /v1/agents/images`: `{queue: {image: provision string}}`.
pub fn validate_images(
    body: &Map<String, Value>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut errors = FieldErrors::new();
    let mut out = BTreeMap::new();
    for (queue, images) in body {
        check_name(queue, &mut errors);
        let Some(images) = images.as_object() else {
            errors.add(
                queue.clone(),
                "Must be an object of image name: provision data.",
            );
            continue;
        };
        let mut map = BTreeMap::new();
        for (image, provision) in images {
            check_name(image, &mut errors);
            match provision.as_str() {
                Some(p) => {
                    map.insert(image.clone(), p.to_owned());
                }
                None => errors.add(
                    format!("{queue}.{image}"),
                    "The provision data must be a string.",
                ),
            }
        }
        out.insert(queue.clone(), map);
    }
    errors.into_result()?;
    Ok(out)
}

/// Queue and image names become document keys in MongoDB, so upstream
/// forbids `.` and a leading `$`; the same rule holds on every backend.
fn check_name(name: &str, errors: &mut FieldErrors) {
    if !crate::validation::is_storable_key(name) {
        errors.add(
            name.to_owned(),
            "Names must be non-empty and contain no '.' nor a leading '$'.",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queues_need_string_descriptions() {
        let ok = validate_queues(json!({"q1": "first"}).as_object().unwrap()).unwrap();
        assert_eq!(ok["q1"], "first");
        assert!(validate_queues(json!({"q1": 1}).as_object().unwrap()).is_err());
        assert!(validate_queues(json!({"a.b": "x"}).as_object().unwrap()).is_err());
    }

    #[test]
    fn images_are_maps_of_strings() {
        let ok = validate_images(
            json!({"q": {"jammy": "url: http://x"}})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ok["q"]["jammy"], "url: http://x");
        assert!(validate_images(json!({"q": "x"}).as_object().unwrap()).is_err());
        assert!(validate_images(json!({"q": {"$x": "y"}}).as_object().unwrap()).is_err());
    }
}

/// How many `log` lines and provision-log entries an agent keeps.
pub const AGENT_LOG_KEEP: usize = 100;
pub const PROVISION_LOG_KEEP: usize = 100;

/// Fields the server owns on an agent; an agent cannot post them.
const SERVER_FIELDS: [&str; 8] = [
    "_id",
    "submitted_by",
    "name",
    "updated_at",
    "log",
    "provision_log",
    "provision_streak_type",
    "provision_streak_count",
];

/// A validated `POST /v1/agents/data/{name}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentUpdate {
    /// Fields set as given (`state`, `queues`, `location`, `comment`, ...).
    pub fields: Map<String, Value>,
    /// Lines appended to the agent's log (the last [`AGENT_LOG_KEEP`] kept).
    pub log: Vec<String>,
}

/// Agent names go into paths and cookies: printable, no `;`, `,`, `/` or spaces.
pub fn validate_agent_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, ';' | ',' | '/' | '"' | '\\'));
    if ok {
        Ok(())
    } else {
        Err(crate::Error::BadRequest(format!(
            "Invalid agent name {name:?}: use letters, digits and punctuation other than ; , / \" \\"
        )))
    }
}

/// Known fields are type-checked; other storable fields are kept.
pub fn validate_agent_update(mut body: Map<String, Value>) -> Result<AgentUpdate> {
    let mut errors = FieldErrors::new();
    crate::validation::check_storable_fields(&body, &mut errors);
    for field in [
        "state",
        "location",
        "provision_type",
        "job_id",
        "identifier",
        "comment",
    ] {
        if body.get(field).is_some_and(|v| !v.is_string()) {
            errors.add(field, "Not a valid string.");
        }
    }
    if let Some(queues) = body.get("queues") {
        if !queues
            .as_array()
            .is_some_and(|q| q.iter().all(Value::is_string))
        {
            errors.add("queues", "Must be a list of strings.");
        }
    }
    let log = match body.remove("log") {
        None => Vec::new(),
        Some(Value::Array(lines)) if lines.iter().all(Value::is_string) => lines
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            errors.add("log", "Must be a list of strings.");
            Vec::new()
        }
    };
    for field in SERVER_FIELDS {
        if body.contains_key(field) {
            errors.add(field, "This field is set by the server.");
        }
    }
    errors.into_result()?;
    Ok(AgentUpdate { fields: body, log })
}

/// One `POST /v1/agents/provision_logs/{name}` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionEntry {
    pub job_id: String,
    pub exit_code: i64,
    pub detail: String,
}

pub fn validate_provision_entry(body: &Map<String, Value>) -> Result<ProvisionEntry> {
    let mut errors = FieldErrors::new();
    let job_id = match body.get("job_id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => {
            errors.add("job_id", "Must be a string.");
            String::new()
        }
    };
    let exit_code = match body.get("exit_code").and_then(Value::as_i64) {
        Some(code) => code,
        None => {
            errors.add("exit_code", "Must be an integer.");
            0
        }
    };
    let detail = match body.get("detail") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(d)) => d.clone(),
        Some(_) => {
            errors.add("detail", "Not a valid string.");
            String::new()
        }
    };
    errors.into_result()?;
    Ok(ProvisionEntry {
        job_id,
        exit_code,
        detail,
    })
}

impl ProvisionEntry {
    /// The stored form, with the server's time and the client that
    /// submitted the agent's current job (`None`: anonymous or none).
    pub fn to_value(&self, now: Timestamp, client_id: Option<&str>) -> Value {
        json!({
            "job_id": self.job_id,
            "exit_code": self.exit_code,
            "detail": self.detail,
            "timestamp": now.to_rfc3339(),
            "client_id": client_id,
        })
    }
}

/// The agent field naming the job it runs (set at claim, emptied when the
/// job ends); upstream's agents posted it themselves, and old ones still do.
pub const JOB_ID: &str = "job_id";
/// The agent field naming the client that submitted the job it runs.
pub const SUBMITTED_BY: &str = "submitted_by";

/// The pass/fail streak after a provision with `exit_code`.
pub fn next_streak(current: Option<(&str, i64)>, exit_code: i64) -> (&'static str, i64) {
    let kind = if exit_code == 0 { "pass" } else { "fail" };
    match current {
        Some((current_kind, count)) if current_kind == kind => (kind, count + 1),
        _ => (kind, 1),
    }
}

/// A stored agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub name: String,
    pub fields: Map<String, Value>,
    pub log: Vec<String>,
    pub updated_at: Timestamp,
    pub provision_streak: Option<(String, i64)>,
    pub provision_log: Vec<Value>,
}

impl Agent {
    /// The streak after a provision that exited with `exit_code`.
    pub fn next_streak(&self, exit_code: i64) -> (&'static str, i64) {
        let current = self
            .provision_streak
            .as_ref()
            .map(|(k, n)| (k.as_str(), *n));
        next_streak(current, exit_code)
    }

    /// The client that submitted the job the agent runs.
    pub fn submitted_by(&self) -> Option<&str> {
        self.fields.get(SUBMITTED_BY).and_then(Value::as_str)
    }

    /// Links the agent to the job it claimed.
    pub fn link_job(&mut self, job_id: Uuid, submitted_by: Option<&str>) {
        self.fields
            .insert(JOB_ID.into(), Value::String(job_id.to_string()));
        match submitted_by {
            Some(client) => self
                .fields
                .insert(SUBMITTED_BY.into(), Value::String(client.to_owned())),
            None => self.fields.remove(SUBMITTED_BY),
        };
    }

    /// Unlinks the agent from `job_id`; `false` (nothing changed) when it
    /// runs another job or none.
    pub fn unlink_job(&mut self, job_id: Uuid) -> bool {
        if self.fields.get(JOB_ID).and_then(Value::as_str) != Some(&job_id.to_string()) {
            return false;
        }
        self.fields
            .insert(JOB_ID.into(), Value::String(String::new()));
        self.fields.remove(SUBMITTED_BY);
        true
    }

    /// The queues the agent lists.
    pub fn queues(&self) -> Vec<&str> {
        self.fields
            .get("queues")
            .and_then(Value::as_array)
            .map(|q| q.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}

/// Keeps the last `keep` items.
pub fn keep_last<T>(items: &mut Vec<T>, keep: usize) {
    if items.len() > keep {
        items.drain(..items.len() - keep);
    }
}

#[cfg(test)]
mod agent_tests {
    use super::*;

    #[test]
    fn agent_updates_are_typed_and_server_fields_refused() {
        let ok = validate_agent_update(
            json!({"state": "waiting", "queues": ["a"], "log": ["l1"], "firmware": "1.2"})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
        assert_eq!(ok.log, ["l1"]);
        assert_eq!(ok.fields["firmware"], json!("1.2"));
        assert!(!ok.fields.contains_key("log"));
        let bad = validate_agent_update(
            json!({"state": 1, "queues": "a", "updated_at": "x", "log": "y"})
                .as_object()
                .unwrap()
                .clone(),
        );
        let Err(crate::Error::Validation { fields, .. }) = bad else {
            panic!("expected a validation error")
        };
        assert_eq!(
            fields.fields().collect::<Vec<_>>(),
            ["log", "queues", "state", "updated_at"]
        );
    }

    #[test]
    fn streaks_count_runs_of_the_same_outcome() {
        assert_eq!(next_streak(None, 0), ("pass", 1));
        assert_eq!(next_streak(Some(("pass", 3)), 0), ("pass", 4));
        assert_eq!(next_streak(Some(("pass", 3)), 1), ("fail", 1));
        assert_eq!(next_streak(Some(("fail", 1)), 7), ("fail", 2));
    }

    #[test]
    fn names_and_provision_entries_are_checked() {
        assert!(validate_agent_name("dev-01.lab").is_ok());
        assert!(validate_agent_name("a;b").is_err() && validate_agent_name("").is_err());
        let entry =
            validate_provision_entry(json!({"job_id": "j", "exit_code": 1}).as_object().unwrap())
                .unwrap();
        assert_eq!((entry.exit_code, entry.detail.as_str()), (1, ""));
        assert!(validate_provision_entry(json!({"exit_code": "x"}).as_object().unwrap()).is_err());
    }

    #[test]
    fn only_the_last_items_are_kept() {
        let mut items: Vec<u32> = (0..105).collect();
        keep_last(&mut items, 100);
        assert_eq!(items.first(), Some(&5));
        assert_eq!(items.len(), 100);
    }
}
