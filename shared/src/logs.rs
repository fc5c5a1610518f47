//! Live output (SPEC.md §4.2): log fragments numbered across the phases of a
//! job, one counter per log type, and the legacy append-and-consume buffers
//! of older agents.

use serde_json::{Map, Value};

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

/// The end of one phase's log, as `GET /v1/result/{id}` carries it: at most
/// the configured number of bytes (`TESTFLINGER_RESULT_LOG_TAIL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTail {
    pub phase: String,
    pub text: String,
    /// Where the text starts when the log is longer: everything before it
    /// was left out.
    pub cut: Option<LogCut>,
}

/// The text starts `offset` bytes into fragment `fragment_number`; the
/// phase's earlier fragments, and that fragment's first bytes, were left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCut {
    pub fragment_number: i64,
    pub offset: u64,
}

/// Builds a [`LogTail`] from a phase's fragments read newest first, so
/// that a store reads no further back than the tail needs.
#[derive(Debug)]
pub struct TailBuilder {
    phase: String,
    room: u64,
    parts: Vec<String>,
    /// The earliest fragment taken so far.
    first_taken: Option<i64>,
    cut: Option<LogCut>,
}

impl TailBuilder {
    pub fn new(phase: &str, max_bytes: u64) -> Self {
        TailBuilder {
            phase: phase.to_owned(),
            room: max_bytes,
            parts: Vec::new(),
            first_taken: None,
            cut: None,
        }
    }

    /// Takes the next fragment back; `false` once the tail is complete
    /// (read no more).
    pub fn push(&mut self, fragment_number: i64, text: &str) -> bool {
        if text.is_empty() {
            return true;
        }
        let len = text.len() as u64;
        if len <= self.room {
            self.room -= len;
            self.parts.push(text.to_owned());
            self.first_taken = Some(fragment_number);
            return true;
        }
        // The tail starts inside this fragment, on a character boundary.
        let mut start = text.len() - self.room as usize;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        self.room = 0;
        self.cut = Some(match self.first_taken {
            // Nothing of this one: the tail starts at the fragment after it.
            Some(next) if start == text.len() => LogCut {
                fragment_number: next,
                offset: 0,
            },
            _ => {
                self.parts.push(text[start..].to_owned());
                LogCut {
                    fragment_number,
                    offset: start as u64,
                }
            }
        });
        false
    }

    /// The tail in reading order; `None` when the phase has no text.
    pub fn finish(self) -> Option<LogTail> {
        if self.parts.is_empty() && self.cut.is_none() {
            return None;
        }
        let mut parts = self.parts;
        parts.reverse();
        Some(LogTail {
            phase: self.phase,
            text: parts.concat(),
            cut: self.cut,
        })
    }
}

/// `?start_fragment=N&start_timestamp=T&phase=P`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogQuery {
    pub start_fragment: i64,
    pub start_timestamp: Option<Timestamp>,
    pub phase: Option<String>,
}

impl LogQuery {
    pub fn admits(&self, fragment: &LogFragment) -> bool {
        fragment.fragment_number >= self.start_fragment
            && self.start_timestamp.is_none_or(|t| fragment.timestamp >= t)
            && self.phase.as_deref().is_none_or(|p| fragment.phase == p)
    }
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
    use serde_json::json;

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
    fn unknown_log_types_are_not_found() {
        assert!(matches!(LogType::parse("console"), Err(Error::NotFound(_))));
        assert_eq!(LogType::parse("serial").unwrap(), LogType::Serial);
    }

    fn tail(max: u64, fragments: &[(i64, &str)]) -> Option<LogTail> {
        let mut builder = TailBuilder::new("test", max);
        for (number, text) in fragments.iter().rev() {
            if !builder.push(*number, text) {
                break;
            }
        }
        builder.finish()
    }

    #[test]
    fn a_tail_keeps_the_last_bytes_and_says_where_it_starts() {
        assert_eq!(tail(10, &[]), None);
        let whole = tail(10, &[(0, "ab"), (3, "cd")]).unwrap();
        assert_eq!((whole.text.as_str(), whole.cut), ("abcd", None));
        let cut = tail(4, &[(0, "abc"), (1, "def"), (2, "gh")]).unwrap();
        assert_eq!(cut.text, "efgh");
        assert_eq!(
            cut.cut,
            Some(LogCut {
                fragment_number: 1,
                offset: 1
            })
        );
        // Exactly full: the earlier fragment is left out whole, and the
        // tail starts at the beginning of the next.
        let cut = tail(5, &[(0, "abc"), (1, "def"), (2, "gh")]).unwrap();
        assert_eq!(cut.text, "defgh");
        assert_eq!(
            cut.cut,
            Some(LogCut {
                fragment_number: 1,
                offset: 0
            })
        );
        // Never inside a character: "é" is two bytes.
        let cut = tail(2, &[(7, "aé")]).unwrap();
        assert_eq!((cut.text.as_str(), cut.cut.unwrap().offset), ("é", 1));
        let cut = tail(1, &[(7, "aé")]).unwrap();
        assert_eq!((cut.text.as_str(), cut.cut.unwrap().offset), ("", 3));
    }
}
