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
            "Names must be non-empty, contain no '.' or NUL character, and not start with '$'.",
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
const SERVER_FIELDS: [&str; 17] = [
    "_id",
    "submitted_by",
    "name",
    "updated_at",
    LAST_HEARD,
    SILENT_SINCE,
    "log",
    "provision_log",
    "provision_streak_type",
    "provision_streak_count",
    MODE_CHANGED_AT,
    MODE_CHANGED_BY,
    STATE_CHANGED_AT,
    STATE_CHANGED_BY,
    COMMANDED_MODE,
    COMMANDED_MODE_CHANGED_AT,
    COMMANDED_MODE_CHANGED_BY,
];

/// The agent's reported mode, its sub-state, and the admin's command.
pub const MODE: &str = "mode";
pub const STATE: &str = "state";
pub const COMMENT: &str = "comment";
pub const COMMANDED_MODE: &str = "commanded_mode";
pub const MODE_CHANGED_AT: &str = "mode_changed_at";
pub const MODE_CHANGED_BY: &str = "mode_changed_by";
pub const STATE_CHANGED_AT: &str = "state_changed_at";
pub const STATE_CHANGED_BY: &str = "state_changed_by";
pub const COMMANDED_MODE_CHANGED_AT: &str = "commanded_mode_changed_at";
pub const COMMANDED_MODE_CHANGED_BY: &str = "commanded_mode_changed_by";

/// The stamped fields: each with the `*_changed_at` and `*_changed_by`
/// written when it changes.
const STAMPED: [(&str, &str, &str); 3] = [
    (MODE, MODE_CHANGED_AT, MODE_CHANGED_BY),
    (STATE, STATE_CHANGED_AT, STATE_CHANGED_BY),
    (
        COMMANDED_MODE,
        COMMANDED_MODE_CHANGED_AT,
        COMMANDED_MODE_CHANGED_BY,
    ),
];

/// An agent's mode (upstream `AgentMode`, #1311): reported by the agent,
/// or commanded by an admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentMode {
    Online,
    Maintenance,
    Offline,
    Restart,
}

impl AgentMode {
    pub const ALL: [AgentMode; 4] = [
        AgentMode::Online,
        AgentMode::Maintenance,
        AgentMode::Offline,
        AgentMode::Restart,
    ];

    pub fn parse(text: &str) -> Option<AgentMode> {
        AgentMode::ALL.into_iter().find(|m| m.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgentMode::Online => "online",
            AgentMode::Maintenance => "maintenance",
            AgentMode::Offline => "offline",
            AgentMode::Restart => "restart",
        }
    }

    /// `offline` and `restart` have no sub-state.
    pub fn takes_state(self) -> bool {
        matches!(self, AgentMode::Online | AgentMode::Maintenance)
    }

    /// A commanded mode that stops the agent's claims.
    pub fn drains(self) -> bool {
        matches!(self, AgentMode::Maintenance | AgentMode::Offline)
    }
}

const MODE_PROBLEM: &str = "Must be one of: online, maintenance, offline, restart.";

/// The sub-states an agent may report through v2 (upstream `AgentState`
/// without `unknown` and without the legacy mode names).
pub const AGENT_STATES: [&str; 8] = [
    "waiting",
    "setup",
    "provision",
    "firmware_update",
    "test",
    "allocate",
    "reserve",
    "cleanup",
];

/// A v1 flat `state` as mode and sub-state (upstream #1312).
pub fn fold_legacy_state(state: &str) -> (AgentMode, Option<&str>) {
    match state {
        "offline" => (AgentMode::Offline, None),
        "restart" => (AgentMode::Restart, None),
        "maintenance" => (AgentMode::Maintenance, Some("waiting")),
        "unknown" => (AgentMode::Online, None),
        other => (AgentMode::Online, Some(other)),
    }
}

/// The flat `state` a v1 reader sees: the mode's name, or for an online
/// agent its sub-state (`waiting` when it has none). A record without a
/// mode (written before modes) shows its stored state as it is.
pub fn legacy_state(mode: Option<&str>, state: Option<&str>) -> Option<String> {
    match mode.and_then(AgentMode::parse) {
        Some(AgentMode::Online) => Some(state.unwrap_or("waiting").to_owned()),
        Some(other) => Some(other.as_str().to_owned()),
        None => state.map(str::to_owned),
    }
}

/// A validated change to an agent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentUpdate {
    /// Fields set as given (`mode`, `state`, `queues`, `location`, `comment`, ...).
    pub fields: Map<String, Value>,
    /// Lines appended to the agent's log (the last [`AGENT_LOG_KEEP`] kept).
    pub log: Vec<String>,
    /// Fields removed (`state` when the mode takes none).
    pub unset: Vec<String>,
    /// Who made the change, written as `*_changed_by`; `None` for an
    /// agent's own report (upstream stamps no `_by` then).
    pub by: Option<String>,
    /// The agent itself speaks: its `last_heard` becomes the update's time.
    pub heard: bool,
}

/// What a store writes for an update: the fields to set and to remove.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentChanges {
    pub set: Map<String, Value>,
    pub unset: Vec<String>,
}

impl AgentUpdate {
    /// The writes for this update on the agent's current fields (`None`:
    /// a new agent): the update's own, plus `*_changed_at`/`*_changed_by`
    /// for each of mode, state and commanded mode whose value changes (a
    /// re-post of the same value stamps nothing). Both stores call this.
    pub fn changes(&self, current: Option<&Map<String, Value>>, now: Timestamp) -> AgentChanges {
        let mut set = self.fields.clone();
        let mut unset: Vec<String> = self
            .unset
            .iter()
            .filter(|f| !set.contains_key(*f))
            .cloned()
            .collect();
        for (field, at, by) in STAMPED {
            let after = if let Some(value) = self.fields.get(field) {
                Some(value)
            } else if self.unset.iter().any(|f| f == field) {
                None
            } else {
                continue;
            };
            let before = current.and_then(|c| c.get(field));
            if before == after {
                continue;
            }
            set.insert(at.into(), Value::String(now.to_rfc3339()));
            match &self.by {
                Some(client) => {
                    set.insert(by.into(), Value::String(client.clone()));
                }
                None => unset.push(by.into()),
            }
        }
        // Nothing to remove that is not there.
        unset.retain(|f| current.is_some_and(|c| c.contains_key(f)));
        AgentChanges { set, unset }
    }
}

impl AgentChanges {
    /// Applies the writes to a stored agent's fields.
    pub fn apply(&self, fields: &mut Map<String, Value>) {
        for field in &self.unset {
            fields.remove(field);
        }
        fields.extend(self.set.clone());
    }
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
    let mode = match body.remove(MODE) {
        None => None,
        Some(Value::String(m)) if AgentMode::parse(&m).is_some() => AgentMode::parse(&m),
        Some(_) => {
            errors.add(MODE, MODE_PROBLEM);
            None
        }
    };
    errors.into_result()?;
    let mut update = AgentUpdate {
        fields: body,
        log,
        ..AgentUpdate::default()
    };
    // The legacy flat `state` folded into mode + sub-state; an explicit
    // `mode` wins over the mode the state implies.
    let posted_state = update
        .fields
        .remove(STATE)
        .and_then(|v| v.as_str().map(str::to_owned));
    let folded = posted_state.as_deref().map(fold_legacy_state);
    let mode = mode.or(folded.map(|(m, _)| m));
    if let Some(mode) = mode {
        update.fields.insert(MODE.into(), mode.as_str().into());
    }
    let sub_state = folded.and_then(|(_, s)| s);
    match (mode, sub_state) {
        (Some(m), _) if !m.takes_state() => update.unset.push(STATE.into()),
        (_, Some(s)) => {
            update.fields.insert(STATE.into(), s.into());
        }
        (_, None) if posted_state.is_some() => update.unset.push(STATE.into()),
        _ => {}
    }
    Ok(update)
}

/// A validated `POST /v2/agents/{name}/data`: only the agent's own fields,
/// `mode` one of the modes and `state` one of [`AGENT_STATES`]; a mode
/// without sub-state (`offline`, `restart`) refuses a state (400) and
/// removes the stored one.
pub fn validate_agent_update_v2(mut body: Map<String, Value>) -> Result<AgentUpdate> {
    let mut errors = FieldErrors::new();
    for (field, value) in &body {
        let ok = match field.as_str() {
            "identifier" | "job_id" | "location" | "provision_type" => value.is_string(),
            "log" | "queues" => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            MODE => value.as_str().and_then(AgentMode::parse).is_some(),
            STATE => value.as_str().is_some_and(|s| AGENT_STATES.contains(&s)),
            _ => {
                errors.add(field.clone(), "Unknown field.");
                continue;
            }
        };
        if !ok {
            let problem = match field.as_str() {
                "log" | "queues" => "Must be a list of strings.".to_owned(),
                MODE => MODE_PROBLEM.to_owned(),
                STATE => format!("Must be one of: {}.", AGENT_STATES.join(", ")),
                _ => "Not a valid string.".to_owned(),
            };
            errors.add(field.clone(), problem);
        }
    }
    errors.into_result()?;
    let mode = body
        .get(MODE)
        .and_then(Value::as_str)
        .and_then(AgentMode::parse);
    if let Some(mode) = mode.filter(|m| !m.takes_state()) {
        if body.contains_key(STATE) {
            return Err(crate::Error::BadRequest(format!(
                "mode={} does not take a state",
                mode.as_str()
            )));
        }
    }
    let log = match body.remove("log") {
        Some(Value::Array(lines)) => lines
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let mut update = AgentUpdate {
        fields: body,
        log,
        ..AgentUpdate::default()
    };
    if mode.is_some_and(|m| !m.takes_state()) {
        update.unset.push(STATE.into());
    }
    Ok(update)
}

/// A validated `PATCH /v2/agents/{name}/commanded_mode`:
/// `{"commanded_mode" (required), "comment"? (default "", which clears)}`.
pub fn validate_commanded_mode(body: &Map<String, Value>) -> Result<AgentUpdate> {
    let mut errors = FieldErrors::new();
    let mode = match body.get(COMMANDED_MODE) {
        None => {
            errors.add(COMMANDED_MODE, "Missing data for required field.");
            None
        }
        Some(value) => {
            let mode = value.as_str().and_then(AgentMode::parse);
            if mode.is_none() {
                errors.add(COMMANDED_MODE, MODE_PROBLEM);
            }
            mode
        }
    };
    let comment = match body.get(COMMENT) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(c)) => c.clone(),
        Some(_) => {
            errors.add(COMMENT, "Not a valid string.");
            String::new()
        }
    };
    for field in body.keys() {
        if field != COMMANDED_MODE && field != COMMENT {
            errors.add(field.clone(), "Unknown field.");
        }
    }
    errors.into_result()?;
    let mut fields = Map::new();
    if let Some(mode) = mode {
        fields.insert(COMMANDED_MODE.into(), mode.as_str().into());
    }
    fields.insert(COMMENT.into(), Value::String(comment));
    Ok(AgentUpdate {
        fields,
        ..AgentUpdate::default()
    })
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

/// When the agent itself last spoke (kept apart from `updated_at`, which
/// an admin's command also moves); and, in listings, since when it has
/// been silent.
pub const LAST_HEARD: &str = "last_heard";
pub const SILENT_SINCE: &str = "silent_since";

/// A stored agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub name: String,
    pub fields: Map<String, Value>,
    pub log: Vec<String>,
    pub updated_at: Timestamp,
    /// The last time the agent itself was heard from (its claims, posts,
    /// and reads of its own data and job), written at most once per
    /// [`crate::app::liveness`] interval; `None` for an agent stored before
    /// the server kept it.
    pub last_heard: Option<Timestamp>,
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

    /// The flat `state` v1 readers see ([`legacy_state`]).
    pub fn legacy_state(&self) -> Option<String> {
        legacy_state(
            self.fields.get(MODE).and_then(Value::as_str),
            self.fields.get(STATE).and_then(Value::as_str),
        )
    }

    /// The mode an admin commanded, if any.
    pub fn commanded_mode(&self) -> Option<AgentMode> {
        self.fields
            .get(COMMANDED_MODE)
            .and_then(Value::as_str)
            .and_then(AgentMode::parse)
    }

    /// An agent commanded into maintenance or offline gets no new job
    /// (its running job, if any, finishes normally).
    pub fn is_drained(&self) -> bool {
        self.commanded_mode().is_some_and(AgentMode::drains)
    }

    /// When the agent was last heard from: its own word, or for an agent
    /// stored before the server kept that, its last update.
    pub fn heard_at(&self) -> Timestamp {
        self.last_heard.unwrap_or(self.updated_at)
    }

    /// Since when the agent has been silent, if it has not been heard from
    /// at `offline_before` or later; `None` while it is alive. Its reported
    /// and commanded state are left as they are.
    pub fn silent_since(&self, offline_before: Timestamp) -> Option<Timestamp> {
        let heard = self.heard_at();
        (heard < offline_before).then_some(heard)
    }

    /// The job the agent runs, if any.
    pub fn job_id(&self) -> Option<&str> {
        self.fields
            .get(JOB_ID)
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
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

    fn update(body: Value) -> AgentUpdate {
        validate_agent_update(body.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn legacy_states_fold_into_mode_and_sub_state() {
        for (posted, mode, state) in [
            ("offline", "offline", None),
            ("restart", "restart", None),
            ("maintenance", "maintenance", Some("waiting")),
            ("unknown", "online", None),
            ("waiting", "online", Some("waiting")),
            ("provision", "online", Some("provision")),
        ] {
            let u = update(json!({"state": posted}));
            assert_eq!(u.fields[MODE], json!(mode), "{posted}");
            assert_eq!(
                u.fields.get(STATE).and_then(Value::as_str),
                state,
                "{posted}"
            );
            assert_eq!(
                u.unset.contains(&STATE.to_owned()),
                state.is_none(),
                "{posted}"
            );
        }
        // An explicit mode wins; offline and restart drop the sub-state.
        let u = update(json!({"mode": "maintenance", "state": "offline"}));
        assert_eq!(u.fields[MODE], json!("maintenance"));
        let u = update(json!({"mode": "offline", "state": "waiting"}));
        assert_eq!(
            (u.fields[MODE].clone(), u.unset.clone()),
            (json!("offline"), vec![STATE.to_owned()])
        );
        let u = update(json!({"mode": "online"}));
        assert!(!u.fields.contains_key(STATE) && u.unset.is_empty());
        let u = update(json!({"location": "lab"}));
        assert!(!u.fields.contains_key(MODE) && !u.fields.contains_key(STATE));
        for bad in [
            json!({"mode": "sleeping"}),
            json!({"mode": 1}),
            json!({"mode_changed_at": "x"}),
        ] {
            assert!(
                validate_agent_update(bad.as_object().unwrap().clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn v1_readers_see_a_legacy_state() {
        assert_eq!(
            legacy_state(Some("offline"), None).as_deref(),
            Some("offline")
        );
        assert_eq!(
            legacy_state(Some("restart"), None).as_deref(),
            Some("restart")
        );
        assert_eq!(
            legacy_state(Some("maintenance"), Some("waiting")).as_deref(),
            Some("maintenance")
        );
        assert_eq!(
            legacy_state(Some("online"), Some("test")).as_deref(),
            Some("test")
        );
        assert_eq!(
            legacy_state(Some("online"), None).as_deref(),
            Some("waiting")
        );
        assert_eq!(
            legacy_state(None, Some("offline")).as_deref(),
            Some("offline")
        );
        assert_eq!(legacy_state(None, None), None);
    }

    #[test]
    fn changes_stamp_only_what_changed() {
        let now = Timestamp::from_millis(1_000);
        let mut u = update(json!({"state": "waiting"}));
        u.by = Some("admin1".into());
        let first = u.changes(None, now);
        assert_eq!(first.set[MODE_CHANGED_BY], json!("admin1"));
        assert_eq!(first.set[STATE_CHANGED_AT], json!(now.to_rfc3339()));
        let mut fields = Map::new();
        first.apply(&mut fields);
        // The same values again: nothing stamped.
        let again = u.changes(Some(&fields), Timestamp::from_millis(2_000));
        assert!(
            !again.set.contains_key(MODE_CHANGED_AT) && !again.set.contains_key(STATE_CHANGED_AT)
        );
        // An agent's report moves the mode: stamped, with no `_by`.
        let offline = update(json!({"state": "offline"})).changes(Some(&fields), now);
        assert!(
            offline.set.contains_key(MODE_CHANGED_AT) && offline.set.contains_key(STATE_CHANGED_AT)
        );
        assert!(
            offline.unset.contains(&STATE.to_owned())
                && offline.unset.contains(&MODE_CHANGED_BY.to_owned())
        );
        offline.apply(&mut fields);
        assert!(!fields.contains_key(STATE) && !fields.contains_key(MODE_CHANGED_BY));
    }

    #[test]
    fn v2_posts_and_commands_are_checked() {
        let ok = |b: Value| validate_agent_update_v2(b.as_object().unwrap().clone());
        let u = ok(json!({"mode": "online", "state": "provision", "log": ["x"], "queues": ["q"]}))
            .unwrap();
        assert_eq!(
            (u.fields[STATE].clone(), u.log.clone()),
            (json!("provision"), vec!["x".to_owned()])
        );
        assert_eq!(ok(json!({"mode": "restart"})).unwrap().unset, [STATE]);
        let Err(crate::Error::BadRequest(m)) = ok(json!({"mode": "offline", "state": "waiting"}))
        else {
            panic!()
        };
        assert_eq!(m, "mode=offline does not take a state");
        for bad in [
            json!({"state": "unknown"}),
            json!({"mode": "x"}),
            json!({"firmware": "1"}),
        ] {
            assert!(matches!(ok(bad), Err(crate::Error::Validation { .. })));
        }
        let c = validate_commanded_mode(json!({"commanded_mode": "offline"}).as_object().unwrap())
            .unwrap();
        assert_eq!(c.fields[COMMENT], json!(""));
        assert!(validate_commanded_mode(json!({}).as_object().unwrap()).is_err());
        assert!(
            validate_commanded_mode(json!({"commanded_mode": "gone"}).as_object().unwrap())
                .is_err()
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

/// The form in which agent names are compared for ownership and for a
/// job's `exclude_agents`: ASCII letters folded to lower case (agent names
/// are ASCII; the same folding as SQLite's `lower()` and MongoDB's
/// `$toLower`), so that `DEV1` is the same agent as `dev1`.
pub fn agent_name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Whether a job's `exclude_agents` list names `agent`, case-insensitively.
pub fn excludes(exclude_agents: &[Value], agent: &str) -> bool {
    let key = agent_name_key(agent);
    exclude_agents
        .iter()
        .filter_map(Value::as_str)
        .any(|excluded| agent_name_key(excluded) == key)
}

/// Which client an agent name belongs to: the first agent client that
/// registered it (posted its data) or claimed with it, unless an admin
/// assigned it since. Names are matched by [`agent_name_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOwner {
    /// The name as it was spelled when it was bound.
    pub name: String,
    pub client_id: String,
    pub bound_at: Timestamp,
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names_match_whatever_their_case() {
        assert_eq!(agent_name_key("DEV1-Lab"), "dev1-lab");
        let list = [json!("DEV1"), json!("other")];
        assert!(excludes(&list, "dev1") && excludes(&list, "Dev1"));
        assert!(!excludes(&list, "dev2"));
        assert!(excludes(&[json!("dev1")], "DEV1"));
    }
}
