//! Jobs: the submitted document, its validation, its states, and the views
//! that the API hands out.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::validation::FieldErrors;
use crate::webhooks;
use crate::{Error, Result, Timestamp};

/// A job's state (SPEC.md §6). The server itself writes `waiting`,
/// `running` and `cancelled`; every other state comes from the agent, which
/// reports the phase it is in (`setup`, `provision`, ..., `complete`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobState {
    Waiting,
    Running,
    Cancelled,
    Complete,
    /// An older spelling of `complete`, still terminal.
    Completed,
    /// Any other state an agent reported, kept as it was sent.
    Reported(String),
}

impl JobState {
    /// States that are never left once entered. Both stores build their
    /// filters from this list; nothing else spells it.
    pub const TERMINAL: [JobState; 3] =
        [JobState::Complete, JobState::Completed, JobState::Cancelled];

    pub fn parse(text: &str) -> JobState {
        match text {
            "waiting" => JobState::Waiting,
            "running" => JobState::Running,
            "cancelled" => JobState::Cancelled,
            "complete" => JobState::Complete,
            "completed" => JobState::Completed,
            other => JobState::Reported(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Running => "running",
            JobState::Cancelled => "cancelled",
            JobState::Complete => "complete",
            JobState::Completed => "completed",
            JobState::Reported(other) => other,
        }
    }

    pub fn is_terminal(&self) -> bool {
        JobState::TERMINAL.contains(self)
    }

    /// The terminal states' names, for the stores' filters.
    pub fn terminal_names() -> [&'static str; 3] {
        ["complete", "completed", "cancelled"]
    }

    /// Where an agent's report of `reported` leads from this state: the new
    /// state, or `None` when the job keeps its state (it is terminal, or
    /// the report is `waiting`, the server's own state, which never comes
    /// back). A refused report is only recorded in the result.
    pub fn after_report(&self, reported: &str) -> Option<JobState> {
        let next = JobState::parse(reported);
        if self.is_terminal() || next == JobState::Waiting {
            None
        } else {
            Some(next)
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phases an agent runs, in order, as SPEC.md §6 names them.
pub const PHASES: [&str; 8] = [
    "setup",
    "provision",
    "firmware_update",
    "test",
    "allocate",
    "allocated",
    "reserve",
    "cleanup",
];

/// The `<phase>_data` sections that may declare attachments.
pub const ATTACHMENT_SECTIONS: [&str; 3] = ["provision_data", "firmware_update_data", "test_data"];

/// The server-owned field that says whether attachments have arrived.
pub const ATTACHMENTS_STATUS: &str = "attachments_status";

/// Whether a job's attachments have arrived. A job whose submission declares
/// attachments is not claimable until they are `Complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentsStatus {
    Waiting,
    Complete,
}

impl AttachmentsStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentsStatus::Waiting => "waiting",
            AttachmentsStatus::Complete => "complete",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "waiting" => Some(AttachmentsStatus::Waiting),
            "complete" => Some(AttachmentsStatus::Complete),
            _ => None,
        }
    }
}

/// The server-owned field naming the client that submitted a job with a
/// token (for cancel ownership and its secrets); absent for anonymous jobs.
pub const CLIENT_ID: &str = "client_id";

/// A validated submission, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub job_id: Uuid,
    pub job_queue: String,
    pub job_priority: i64,
    pub exclude_agents: Vec<String>,
    pub attachments_status: Option<AttachmentsStatus>,
    /// The submission as validated (normalised values, without `job_id`),
    /// unknown fields included: it is handed to the agent as it is.
    pub job_data: Map<String, Value>,
    pub created_at: Timestamp,
}

impl NewJob {
    /// The client that submits the job with a token; `None` when anonymous.
    pub fn client_id(&self) -> Option<&str> {
        self.job_data.get(CLIENT_ID).and_then(Value::as_str)
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub job_id: Uuid,
    pub job_queue: String,
    pub job_priority: i64,
    pub state: JobState,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub attachments_status: Option<AttachmentsStatus>,
    pub job_data: Map<String, Value>,
    pub result_data: Map<String, Value>,
    /// The client whose token claimed the job; `None` before the claim,
    /// for an anonymous claim, and for jobs claimed before the server
    /// recorded claimers.
    pub claimed_by: Option<String>,
    /// The claim lease (SPEC.md §11): until when the claiming agent holds
    /// the job without saying anything. `None` before the first claim,
    /// after a lease ran out (the job was requeued or ended), and for jobs
    /// claimed before leases existed.
    pub lease_until: Option<Timestamp>,
    /// The agent that holds the lease (the claim's `agent_name`).
    pub lease_holder: Option<String>,
    /// How many times the job was claimed: the claim's token, compared by
    /// every move of the lease.
    pub attempts: i64,
    /// The agent whose lease ran out, passed over by the next claim.
    pub passed_over: Option<String>,
}

/// The job field that bounds its claims (default `TESTFLINGER_MAX_ATTEMPTS`).
pub const MAX_ATTEMPTS: &str = "max_attempts";

impl Job {
    /// How many claims the job gets: its own `max_attempts`, else `default`.
    pub fn max_attempts(&self, default: u32) -> i64 {
        self.job_data
            .get(MAX_ATTEMPTS)
            .and_then(Value::as_i64)
            .filter(|n| *n >= 1)
            .unwrap_or(i64::from(default))
    }

    /// Whether an agent that speaks about this job (`agent`: its cookie, if
    /// any) lost it: a lease ran out since (the job was requeued or ended
    /// for it), or another agent holds the job now.
    pub fn lease_lost_by(&self, agent: Option<&str>) -> bool {
        if self.attempts == 0 {
            return false;
        }
        if self.lease_until.is_none() {
            return true;
        }
        match (agent, &self.lease_holder) {
            (Some(agent), Some(holder)) => {
                crate::agents::agent_name_key(agent) != crate::agents::agent_name_key(holder)
            }
            _ => false,
        }
    }

    /// The agent the job was assigned to at its claim (`result_data.agent_id`).
    pub fn agent_id(&self) -> Option<&str> {
        self.result_data.get("agent_id").and_then(Value::as_str)
    }

    /// The client that submitted the job with a token; `None` when anonymous.
    pub fn client_id(&self) -> Option<&str> {
        self.job_data.get(CLIENT_ID).and_then(Value::as_str)
    }
}

/// Validates a submitted job body (SPEC.md §5) and turns it into a [`NewJob`].
/// Every bad field is reported at once. Unknown fields are kept.
pub fn validate_submission(body: Value, now: Timestamp) -> Result<NewJob> {
    let Value::Object(mut data) = body else {
        let mut errors = FieldErrors::new();
        errors.add("_schema", "The job must be a JSON object.");
        return Err(Error::validation(errors));
    };
    let mut errors = FieldErrors::new();
    // The server chooses the id of a new job (SPEC.md §5), and records who
    // submitted it: neither is the submitter's to say.
    data.remove("job_id");
    data.remove(CLIENT_ID);
    crate::validation::check_storable_fields(&data, &mut errors);
    if data.contains_key(ATTACHMENTS_STATUS) {
        errors.add(ATTACHMENTS_STATUS, "This field is set by the server.");
    }

    let job_queue = match data.get("job_queue") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
        Some(Value::String(_)) => {
            errors.add("job_queue", "Must be a non-empty string.");
            String::new()
        }
        Some(_) => {
            errors.add("job_queue", "Not a valid string.");
            String::new()
        }
        None => {
            errors.add("job_queue", "Missing data for required field.");
            String::new()
        }
    };

    check_string(&data, "name", &mut errors);
    if let Some(value) = data.get(webhooks::FIELD) {
        // Checked, not rewritten: the job keeps the value as submitted.
        webhooks::parse_webhooks(value, &mut errors);
    }
    if let Some(v) = data.get("debug") {
        if !v.is_boolean() {
            errors.add("debug", "Not a valid boolean.");
        }
    }
    if let Some(v) = data.get("parent_job_id") {
        match v.as_str() {
            Some(s) if Uuid::parse_str(s).is_ok() => {}
            _ => errors.add("parent_job_id", "Not a valid job id (a UUID string)."),
        }
    }
    check_tags(&data, &mut errors);

    let job_priority = match data.get("job_priority") {
        None => 0,
        Some(v) => match v.as_i64() {
            Some(p) if p >= 0 => p,
            _ => {
                errors.add("job_priority", "Must be an integer of 0 or more.");
                0
            }
        },
    };
    for field in ["global_timeout", "output_timeout", "allocation_timeout"] {
        if let Some(v) = data.get(field) {
            if !matches!(v.as_i64(), Some(n) if n > 0) {
                errors.add(field, "Must be a positive integer (seconds).");
            }
        }
    }
    if let Some(v) = data.get(MAX_ATTEMPTS) {
        if !matches!(v.as_i64(), Some(n) if (1..=100).contains(&n)) {
            errors.add(MAX_ATTEMPTS, "Must be an integer from 1 to 100 (claims).");
        }
    }
    let exclude_agents = check_string_list(&data, "exclude_agents", &mut errors);

    if let Some(v) = data.get("provision_data") {
        if !(v.is_object() || v.is_null()) {
            errors.add("provision_data", "Must be an object.");
        }
    }
    for field in ["firmware_update_data", "allocate_data"] {
        if let Some(v) = data.get(field) {
            if !v.is_object() {
                errors.add(field, "Must be an object.");
            }
        }
    }
    check_test_data(&data, &mut errors);
    if let Some(reserve) = data.get_mut("reserve_data") {
        check_reserve_data(reserve, &mut errors);
    }

    let mut has_attachments = false;
    for section in ATTACHMENT_SECTIONS {
        if let Some(list) = data.get(section).and_then(|s| s.get("attachments")) {
            has_attachments |= check_attachments(section, list, &mut errors);
        }
    }

    errors.into_result()?;
    Ok(NewJob {
        job_id: Uuid::new_v4(),
        job_queue,
        job_priority,
        exclude_agents,
        attachments_status: has_attachments.then_some(AttachmentsStatus::Waiting),
        job_data: data,
        created_at: now,
    })
}

fn check_string(data: &Map<String, Value>, field: &str, errors: &mut FieldErrors) {
    if let Some(v) = data.get(field) {
        if !v.is_string() {
            errors.add(field, "Not a valid string.");
        }
    }
}

/// A list of strings; returns the strings when it is one.
fn check_string_list(
    data: &Map<String, Value>,
    field: &str,
    errors: &mut FieldErrors,
) -> Vec<String> {
    match data.get(field) {
        None => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            errors.add(field, "Must be a list of strings.");
            Vec::new()
        }
    }
}

/// Most tags a job may carry, and the longest tag in bytes (SPEC.md §2).
pub const MAX_TAGS: usize = 100;
pub const MAX_TAG_BYTES: usize = 256;

fn check_tags(data: &Map<String, Value>, errors: &mut FieldErrors) {
    let tags = check_string_list(data, "tags", errors);
    if tags.len() > MAX_TAGS {
        errors.add("tags", format!("At most {MAX_TAGS} tags are allowed."));
    }
    if tags.iter().any(|t| t.len() > MAX_TAG_BYTES) {
        errors.add(
            "tags",
            format!("Each tag must be at most {MAX_TAG_BYTES} bytes."),
        );
    }
}

fn check_test_data(data: &Map<String, Value>, errors: &mut FieldErrors) {
    let Some(test_data) = data.get("test_data") else {
        return;
    };
    let Some(test_data) = test_data.as_object() else {
        errors.add("test_data", "Must be an object.");
        return;
    };
    if let Some(v) = test_data.get("test_cmds") {
        if !v.is_string() {
            errors.add("test_data.test_cmds", "Not a valid string.");
        }
    }
    if let Some(secrets) = test_data.get("secrets") {
        let Some(secrets) = secrets.as_object() else {
            errors.add(
                "test_data.secrets",
                "Must be an object of ENV_NAME: secret path.",
            );
            return;
        };
        for (name, path) in secrets {
            if !is_env_name(name) {
                errors.add(
                    format!("test_data.secrets.{name}"),
                    "Not a valid environment variable name.",
                );
            }
            if !path.as_str().is_some_and(crate::secrets::is_secret_path) {
                errors.add(
                    format!("test_data.secrets.{name}"),
                    "The secret path must be segments of letters, digits, '_' and '-' joined by '/'.",
                );
            }
        }
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks an `attachments` list; returns whether it declares any attachment.
fn check_attachments(section: &str, list: &Value, errors: &mut FieldErrors) -> bool {
    let field = format!("{section}.attachments");
    let Some(items) = list.as_array() else {
        errors.add(field, "Must be a list of {\"agent\": path} objects.");
        return false;
    };
    for (i, item) in items.iter().enumerate() {
        let ok = item.as_object().is_some_and(|o| {
            o.get("agent").is_some_and(Value::is_string)
                && o.get("device").is_none_or(Value::is_string)
        });
        if !ok {
            errors.add(
                format!("{field}.{i}"),
                "Must be an object with a string \"agent\" (and optionally a string \"device\").",
            );
        }
    }
    !items.is_empty()
}

/// The reservation length used when a job does not give one (SPEC.md §5).
pub const DEFAULT_RESERVATION_SECONDS: i64 = 3600;

fn check_reserve_data(reserve: &mut Value, errors: &mut FieldErrors) {
    let Some(reserve) = reserve.as_object_mut() else {
        errors.add("reserve_data", "Must be an object.");
        return;
    };
    if let Some(keys) = reserve.get("ssh_keys") {
        let ok = keys.as_array().is_some_and(|keys| {
            keys.iter()
                .all(|k| k.as_str().is_some_and(is_ssh_key_reference))
        });
        if !ok {
            errors.add(
                "reserve_data.ssh_keys",
                "Must be a list of \"lp:<user>\" or \"gh:<user>\" strings.",
            );
        }
    }
    if let Some(timeout) = reserve.get("timeout") {
        match parse_duration(timeout) {
            Some(seconds) => {
                reserve.insert("timeout".into(), Value::from(seconds));
            }
            None => errors.add(
                "reserve_data.timeout",
                "Must be a positive number of seconds or a duration such as \"30m\" or \"7h\".",
            ),
        }
    }
}

fn is_ssh_key_reference(key: &str) -> bool {
    let user = key.strip_prefix("lp:").or_else(|| key.strip_prefix("gh:"));
    user.is_some_and(|u| !u.is_empty() && !u.chars().any(char::is_whitespace))
}

/// A positive duration: an integer of seconds, or a string such as `3600`,
/// `30m`, `7h`, `1d` or `1h30m`.
pub fn parse_duration(value: &Value) -> Option<i64> {
    let seconds = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(text) => parse_duration_text(text.trim())?,
        _ => return None,
    };
    (seconds > 0).then_some(seconds)
}

fn parse_duration_text(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(seconds);
    }
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let n: i64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
    }
    number.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validate(body: Value) -> Result<NewJob> {
        validate_submission(body, Timestamp::from_millis(0))
    }

    fn bad_fields(body: Value) -> Vec<String> {
        match validate(body) {
            Err(Error::Validation { fields, .. }) => fields.fields().map(str::to_owned).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn keeps_unknown_fields_and_drops_the_submitted_job_id() {
        let job = validate(json!({
            "job_queue": "q", "job_id": "x", "my_field": {"a": 1}
        }))
        .unwrap();
        assert_eq!(job.job_data["my_field"], json!({"a": 1}));
        assert!(!job.job_data.contains_key("job_id"));
        assert_eq!(job.job_queue, "q");
        assert_eq!(job.job_priority, 0);
    }

    #[test]
    fn webhooks_are_checked_and_kept_as_submitted() {
        for webhook in [
            json!("https://h.example/x"),
            json!({"url": "https://m.example/hooks/k", "type": "mattermost"}),
            json!(["https://h.example/x", {"url": "https://h.example/y"}]),
        ] {
            let job = validate(json!({"job_queue": "q", "job_status_webhook": webhook})).unwrap();
            assert_eq!(job.job_data["job_status_webhook"], webhook);
        }
        assert_eq!(
            bad_fields(json!({
                "job_queue": "q",
                "job_status_webhook": ["https://h.example/x", {"url": "https://h.example/y", "type": "irc"}],
            })),
            ["job_status_webhook.1.type"]
        );
    }

    #[test]
    fn lists_every_bad_field_at_once() {
        let fields = bad_fields(json!({
            "job_priority": -1,
            "tags": "not-a-list",
            "global_timeout": 0,
            "reserve_data": {"timeout": "soon", "ssh_keys": ["bob"]},
            "exclude_agents": [1],
            "test_data": {"test_cmds": 5},
        }));
        assert_eq!(
            fields,
            vec![
                "exclude_agents",
                "global_timeout",
                "job_priority",
                "job_queue",
                "reserve_data.ssh_keys",
                "reserve_data.timeout",
                "tags",
                "test_data.test_cmds",
            ]
        );
    }

    #[test]
    fn rejects_empty_queue_and_non_objects() {
        assert_eq!(bad_fields(json!({"job_queue": " "})), vec!["job_queue"]);
        assert_eq!(bad_fields(json!([1, 2])), vec!["_schema"]);
        assert_eq!(bad_fields(json!({"job_queue": 3})), vec!["job_queue"]);
    }

    #[test]
    fn a_boolean_or_float_priority_is_not_an_integer() {
        assert_eq!(
            bad_fields(json!({"job_queue": "q", "job_priority": true})),
            vec!["job_priority"]
        );
        assert_eq!(
            bad_fields(json!({"job_queue": "q", "job_priority": 1.5})),
            vec!["job_priority"]
        );
    }

    #[test]
    fn normalises_reservation_durations_to_seconds() {
        let job =
            validate(json!({"job_queue": "q", "reserve_data": {"timeout": "1h30m"}})).unwrap();
        assert_eq!(job.job_data["reserve_data"]["timeout"], json!(5400));
        assert_eq!(parse_duration(&json!("30m")), Some(1800));
        assert_eq!(parse_duration(&json!("7h")), Some(25200));
        assert_eq!(parse_duration(&json!(60)), Some(60));
        assert_eq!(parse_duration(&json!("90")), Some(90));
        assert_eq!(parse_duration(&json!("h")), None);
        assert_eq!(parse_duration(&json!("5x")), None);
        assert_eq!(parse_duration(&json!(0)), None);
    }

    #[test]
    fn declared_attachments_make_the_job_wait_for_them() {
        let job = validate(json!({
            "job_queue": "q",
            "test_data": {"attachments": [{"agent": "a.txt"}]}
        }))
        .unwrap();
        assert_eq!(job.attachments_status, Some(AttachmentsStatus::Waiting));
        assert_eq!(
            bad_fields(
                json!({"job_queue": "q", "provision_data": {"attachments": [{"device": 1}]}})
            ),
            vec!["provision_data.attachments.0"]
        );
    }

    #[test]
    fn field_names_must_be_storable_and_attachments_status_is_the_servers() {
        assert_eq!(
            bad_fields(
                json!({"job_queue": "q", "a.b": 1, "$x": 2, "attachments_status": "complete"})
            ),
            vec!["$x", "a.b", "attachments_status"]
        );
    }

    #[test]
    fn tag_limits_hold() {
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| i.to_string()).collect();
        assert_eq!(
            bad_fields(json!({"job_queue": "q", "tags": many})),
            vec!["tags"]
        );
        let long = "x".repeat(MAX_TAG_BYTES + 1);
        assert_eq!(
            bad_fields(json!({"job_queue": "q", "tags": [long]})),
            vec!["tags"]
        );
    }

    #[test]
    fn secrets_names_and_paths_are_checked() {
        assert_eq!(
            bad_fields(
                json!({"job_queue": "q", "test_data": {"secrets": {"1BAD": "a/b", "OK": "a b"}}})
            ),
            vec!["test_data.secrets.1BAD", "test_data.secrets.OK"]
        );
        validate(json!({"job_queue": "q", "test_data": {"secrets": {"TOKEN": "ci/token"}}}))
            .unwrap();
    }

    #[test]
    fn terminal_states_are_the_three_of_the_spec() {
        let terminal = |s: &str| JobState::parse(s).is_terminal();
        assert!(terminal("complete") && terminal("completed") && terminal("cancelled"));
        assert!(!terminal("test") && !terminal("waiting") && !terminal("running"));
        let names: Vec<&str> = JobState::TERMINAL.iter().map(JobState::as_str).collect();
        assert_eq!(names, JobState::terminal_names());
    }

    #[test]
    fn states_read_back_as_written() {
        for text in [
            "waiting",
            "running",
            "cancelled",
            "complete",
            "completed",
            "provision",
            "x",
        ] {
            assert_eq!(JobState::parse(text).as_str(), text);
        }
        assert_eq!(JobState::parse("setup"), JobState::Reported("setup".into()));
    }

    #[test]
    fn terminal_states_are_never_left() {
        let after = |current: &str, reported: &str| {
            JobState::parse(current)
                .after_report(reported)
                .map(|s| s.to_string())
        };
        assert_eq!(after("running", "setup").as_deref(), Some("setup"));
        assert_eq!(after("test", "complete").as_deref(), Some("complete"));
        assert_eq!(after("cancelled", "complete"), None);
        assert_eq!(after("complete", "test"), None);
        assert_eq!(after("running", "waiting"), None);
    }
}
