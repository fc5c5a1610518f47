//! Job results: what an agent may post, and the flat view clients read.

use serde_json::{Map, Value};

use crate::validation::FieldErrors;
use crate::Result;

/// A validated `POST /v1/result/{id}` body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultPatch {
    /// Keys merged into the stored result; `status` replaces the stored map.
    pub fields: Map<String, Value>,
    /// The state the agent reports, if any (SPEC.md §6).
    pub job_state: Option<String>,
}

/// Validates a result body: any keys, but `status` must map phases to
/// integers, `device_info` must be an object and `job_state` a non-empty string.
pub fn validate_result(mut body: Map<String, Value>) -> Result<ResultPatch> {
    let mut errors = FieldErrors::new();
    crate::validation::check_storable_fields(&body, &mut errors);
    if body.contains_key(REPORTED_STATE_KEY) {
        errors.add(REPORTED_STATE_KEY, "This field is set by the server.");
    }
    if let Some(status) = body.get("status") {
        match status.as_object() {
            Some(map) => {
                for (phase, code) in map {
                    if !crate::validation::is_storable_key(phase) {
                        errors.add(format!("status.{phase}"), "Not a valid phase name.");
                    } else if !code.is_i64() {
                        errors.add(format!("status.{phase}"), "Must be an integer exit code.");
                    }
                }
            }
            None => errors.add("status", "Must be an object of phase: exit code."),
        }
    }
    if body.get("agent_id").is_some_and(|a| !a.is_string()) {
        errors.add("agent_id", "Not a valid string.");
    }
    if let Some(info) = body.get("device_info") {
        if !info.is_object() {
            errors.add("device_info", "Must be an object.");
        }
    }
    let job_state = match body.remove("job_state") {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(_) => {
            errors.add("job_state", "Must be a non-empty string.");
            None
        }
    };
    errors.into_result()?;
    Ok(ResultPatch {
        fields: body,
        job_state,
    })
}

/// The key under which a refused state report is recorded (SPEC.md §6: "a
/// later `complete` from the agent is recorded in the result").
pub const REPORTED_STATE_KEY: &str = "agent_reported_state";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn free_form_results_pass_through() {
        let patch = validate_result(obj(json!({"exit_code": 0, "output": "foo"}))).unwrap();
        assert_eq!(patch.fields, obj(json!({"exit_code": 0, "output": "foo"})));
        assert_eq!(patch.job_state, None);
    }

    #[test]
    fn typed_keys_are_checked() {
        let err = validate_result(obj(
            json!({"status": {"test": "x"}, "device_info": 1, "job_state": 2}),
        ));
        let crate::Error::Validation { fields, .. } = err.unwrap_err() else {
            panic!("expected validation error")
        };
        let names: Vec<_> = fields.fields().collect();
        assert_eq!(names, vec!["device_info", "job_state", "status.test"]);
    }

    #[test]
    fn keys_must_be_storable() {
        assert!(validate_result(obj(json!({"a.b": 1}))).is_err());
        assert!(validate_result(obj(json!({"$set": 1}))).is_err());
        assert!(validate_result(obj(json!({"status": {"a.b": 1}}))).is_err());
    }
}
