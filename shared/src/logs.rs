//! Live output (SPEC.md §4.2): log fragments numbered across the phases of a
//! job, one counter per log type, and the legacy append-and-consume buffers
//! of older agents.

use serde_json::{json, Map, Value};

use crate::validation::FieldErrors;
use crate::{Error, Result, Timestamp};

/// The two kinds of log an agent streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogType {
    Output,
    Serial,
}

impl LogType {
    /// The `{output|serial}` path segment; anything else is an unknown log type.
    pub fn parse(segment: &str) -> Result<Self> {
        match segment {
            "output" => Ok(LogType::Output),
            "serial" => Ok(LogType::Serial),
            other => Err(Error::NotFound(format!(
                "Unknown log type {other:?}: use \"output\" or \"serial\"."
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogType::Output => "output",
            LogType::Serial => "serial",
        }
    }
}

/// The phases whose logs the API reports, in order.
pub const LOG_PHASES: [&str; 7] = [
    "setup",
    "provision",
    "firmware_update",
    "test",
    "allocate",
    "reserve",
    "cleanup",
];

/// One fragment as an agent posts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFragment {
    pub fragment_number: i64,
    pub timestamp: Timestamp,
    pub phase: String,
    pub log_data: String,
}

/// Validates `{"fragment_number", "timestamp", "phase", "log_data"}`.
pub fn validate_fragment(body: &Map<String, Value>, max_bytes: u64) -> Result<LogFragment> {
    let mut errors = FieldErrors::new();
    let fragment_number = match body.get("fragment_number").and_then(Value::as_i64) {
        Some(n) if n >= 0 => n,
        _ => {
            errors.add("fragment_number", "Must be an integer of 0 or more.");
            0
        }
    };
    let timestamp = match body
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(Timestamp::parse_rfc3339)
    {
        Some(t) => t,
        None => {
            errors.add("timestamp", "Must be an RFC 3339 date-time.");
            Timestamp::from_millis(0)
        }
    };
    let phase = match body.get("phase").and_then(Value::as_str) {
        Some(p) if LOG_PHASES.contains(&p) => p.to_owned(),
        _ => {
            errors.add(
                "phase",
                format!("Must be one of: {}.", LOG_PHASES.join(", ")),
            );
            String::new()
        }
    };
    let log_data = match body.get("log_data").and_then(Value::as_str) {
        Some(text) if text.len() as u64 <= max_bytes => text.to_owned(),
        Some(_) => {
            errors.add(
                "log_data",
                format!("A fragment may hold at most {max_bytes} bytes."),
            );
            String::new()
        }
        None => {
            errors.add("log_data", "Must be a string.");
            String::new()
        }
    };
    errors.into_result()?;
    Ok(LogFragment {
        fragment_number,
        timestamp,
        phase,
        log_data,
    })
}

/// `?start_fragment=N&start_timestamp=T&phase=P`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogQuery {
    pub start_fragment: i64,
    pub start_timestamp: Option<Timestamp>,
    pub phase: Option<String>,
}

impl LogQuery {
    /// Parses the query parameters; every bad one is reported.
    pub fn parse(query: &[(String, String)]) -> std::result::Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut out = LogQuery::default();
        for (key, value) in query {
            match key.as_str() {
                "start_fragment" => match value.parse::<i64>() {
                    Ok(n) if n >= 0 => out.start_fragment = n,
                    _ => errors.add("start_fragment", "Must be an integer of 0 or more."),
                },
                "start_timestamp" => match Timestamp::parse_rfc3339(value) {
                    Some(t) => out.start_timestamp = Some(t),
                    None => errors.add("start_timestamp", "Must be an RFC 3339 date-time."),
                },
                "phase" => {
                    if LOG_PHASES.contains(&value.as_str()) {
                        out.phase = Some(value.clone());
                    } else {
                        errors.add(
                            "phase",
                            format!("Must be one of: {}.", LOG_PHASES.join(", ")),
                        );
                    }
                }
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    pub fn admits(&self, fragment: &LogFragment) -> bool {
        fragment.fragment_number >= self.start_fragment
            && self.start_timestamp.is_none_or(|t| fragment.timestamp >= t)
            && self.phase.as_deref().is_none_or(|p| fragment.phase == p)
    }
}

/// `{"<type>": {"<phase>": {"last_fragment_number", "log_data"}}}` with every
/// phase present (−1 and "" when empty) unless the query names one phase.
/// `fragments` must be in fragment-number order.
pub fn log_view(log_type: LogType, query: &LogQuery, fragments: &[LogFragment]) -> Value {
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

/// Each phase's whole log, for the flat result (`<phase>_output`); only
/// phases with data.
pub fn phase_logs(fragments: &[LogFragment]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for phase in LOG_PHASES {
        let text: String = fragments
            .iter()
            .filter(|f| f.phase == phase)
            .map(|f| f.log_data.as_str())
            .collect();
        if !text.is_empty() {
            out.push((phase.to_owned(), text));
        }
    }
    out
}

/// The legacy live-output buffers (`/output`, `/serial_output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegacyStream {
    Output,
    SerialOutput,
}

impl LegacyStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LegacyStream::Output => "output",
            LegacyStream::SerialOutput => "serial_output",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(n: i64, phase: &str, data: &str, at: i64) -> LogFragment {
        LogFragment {
            fragment_number: n,
            timestamp: Timestamp::from_millis(at),
            phase: phase.into(),
            log_data: data.into(),
        }
    }

    #[test]
    fn fragments_are_validated() {
        let ok = json!({"fragment_number": 0, "timestamp": "2026-11-25T00:00:00Z", "phase": "test", "log_data": "hi"});
        assert_eq!(
            validate_fragment(ok.as_object().unwrap(), 10)
                .unwrap()
                .log_data,
            "hi"
        );
        let bad =
            json!({"fragment_number": -1, "timestamp": "now", "phase": "lunch", "log_data": 5});
        let Err(Error::Validation { fields, .. }) = validate_fragment(bad.as_object().unwrap(), 10)
        else {
            panic!("expected a validation error")
        };
        assert_eq!(
            fields.fields().collect::<Vec<_>>(),
            ["fragment_number", "log_data", "phase", "timestamp"]
        );
        let big = json!({"fragment_number": 0, "timestamp": "2026-11-25T00:00:00Z", "phase": "test", "log_data": "x".repeat(11)});
        assert!(validate_fragment(big.as_object().unwrap(), 10).is_err());
    }

    #[test]
    fn the_view_has_every_phase_and_filters() {
        let fragments = [
            fragment(0, "setup", "a", 10),
            fragment(1, "setup", "b", 20),
            fragment(2, "test", "c", 30),
        ];
        let all = log_view(LogType::Output, &LogQuery::default(), &fragments);
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
        let view = log_view(LogType::Serial, &from_one, &fragments);
        assert_eq!(
            view["serial"]["setup"],
            json!({"last_fragment_number": 1, "log_data": "b"})
        );

        let since = LogQuery {
            start_timestamp: Some(Timestamp::from_millis(25)),
            phase: Some("test".into()),
            ..LogQuery::default()
        };
        let view = log_view(LogType::Output, &since, &fragments);
        assert_eq!(
            view,
            json!({"output": {"test": {"last_fragment_number": 2, "log_data": "c"}}})
        );
    }

    #[test]
    fn queries_are_parsed_and_checked() {
        let q = |pairs: &[(&str, &str)]| {
            LogQuery::parse(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(q(&[("start_fragment", "3")]).unwrap().start_fragment, 3);
        let errors = q(&[
            ("start_fragment", "x"),
            ("phase", "lunch"),
            ("start_timestamp", "no"),
        ])
        .unwrap_err();
        assert_eq!(
            errors.fields().collect::<Vec<_>>(),
            ["phase", "start_fragment", "start_timestamp"]
        );
    }

    #[test]
    fn unknown_log_types_are_not_found() {
        assert!(matches!(LogType::parse("console"), Err(Error::NotFound(_))));
        assert_eq!(LogType::parse("serial").unwrap(), LogType::Serial);
    }
}
