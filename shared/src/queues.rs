//! Read-only views over queues and jobs: per-queue job lists, wait-time
//! percentiles, queue position and job search.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::job::{self, Job};
use crate::validation::FieldErrors;
use crate::Timestamp;

/// A job as the list views show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub job_id: Uuid,
    pub created_at: Timestamp,
    pub job_state: String,
    pub job_queue: String,
    pub tags: Vec<String>,
}

impl JobSummary {
    pub fn of(job: &Job) -> Self {
        JobSummary {
            job_id: job.job_id,
            created_at: job.created_at,
            job_state: job.state.clone(),
            job_queue: job.job_queue.clone(),
            tags: job
                .job_data
                .get("tags")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// `{job_id, created_at, job_state, job_queue}` (+ `tags` for search).
    pub fn view(&self, with_tags: bool) -> Value {
        let mut out = json!({
            "job_id": self.job_id,
            "created_at": self.created_at.to_rfc3339(),
            "job_state": self.job_state,
            "job_queue": self.job_queue,
        });
        if with_tags {
            out["tags"] = json!(self.tags);
        }
        out
    }
}

/// Most jobs `GET /v1/queues/{q}/jobs` lists (newest first).
pub const QUEUE_JOBS_LIMIT: usize = 1000;

/// Wait times: claims of the last [`WAIT_WINDOW_DAYS`] days, at most the
/// [`WAIT_SAMPLE`] most recent per queue.
pub const WAIT_WINDOW_DAYS: i64 = 7;
pub const WAIT_SAMPLE: usize = 1000;
pub const WAIT_PERCENTILES: [u32; 5] = [5, 10, 50, 90, 95];

/// `{"5": s, "10": s, "50": s, "90": s, "95": s}` of wait seconds, by linear
/// interpolation between the closest ranks.
pub fn wait_percentiles(waits_ms: &[i64]) -> Value {
    let mut seconds: Vec<f64> = waits_ms.iter().map(|ms| *ms as f64 / 1000.0).collect();
    seconds.sort_by(f64::total_cmp);
    let mut out = Map::new();
    for p in WAIT_PERCENTILES {
        let rank = (seconds.len() as f64 - 1.0) * f64::from(p) / 100.0;
        let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
        let value = seconds[low] + (seconds[high] - seconds[low]) * (rank - low as f64);
        out.insert(p.to_string(), json!((value * 1000.0).round() / 1000.0));
    }
    Value::Object(out)
}

/// `GET /v1/queues/wait_times`: one entry per queue with claims.
pub fn wait_times_view(waits: &BTreeMap<String, Vec<i64>>) -> Value {
    Value::Object(
        waits
            .iter()
            .filter(|(_, w)| !w.is_empty())
            .map(|(queue, w)| (queue.clone(), wait_percentiles(w)))
            .collect(),
    )
}

/// `GET /v1/job/search` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    pub tags: Vec<String>,
    pub match_all: bool,
    /// States asked for by name.
    pub states: Vec<String>,
    /// `state=active`: any state that is not terminal.
    pub active: bool,
    pub limit: usize,
    /// Only jobs older than this (created_at, job_id) position: the cursor.
    pub before: Option<(Timestamp, Uuid)>,
}

pub const SEARCH_DEFAULT_LIMIT: usize = 100;
pub const SEARCH_MAX_LIMIT: usize = 1000;

impl SearchQuery {
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut query = SearchQuery {
            tags: Vec::new(),
            match_all: false,
            states: Vec::new(),
            active: false,
            limit: SEARCH_DEFAULT_LIMIT,
            before: None,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "tags" => query.tags.push(value.clone()),
                "match" => match value.as_str() {
                    "any" => query.match_all = false,
                    "all" => query.match_all = true,
                    _ => errors.add("match", "Must be \"any\" or \"all\"."),
                },
                "state" if value == "active" => query.active = true,
                "state" if !value.is_empty() => query.states.push(value.clone()),
                "limit" => match value.parse::<usize>() {
                    Ok(n) if (1..=SEARCH_MAX_LIMIT).contains(&n) => query.limit = n,
                    _ => errors.add(
                        "limit",
                        format!("Must be an integer from 1 to {SEARCH_MAX_LIMIT}."),
                    ),
                },
                "before" => match parse_cursor(value) {
                    Some(cursor) => query.before = Some(cursor),
                    None => {
                        errors.add("before", "Not a cursor from a previous page's Link header.")
                    }
                },
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(query)
        } else {
            Err(errors)
        }
    }

    /// Whether a job's state is asked for (no state asked: every state).
    pub fn admits_state(&self, state: &str) -> bool {
        (self.states.is_empty() && !self.active)
            || self.states.iter().any(|s| s == state)
            || (self.active && !job::is_terminal(state))
    }

    /// The query string of the page after `last`.
    pub fn next_page(&self, last: &JobSummary) -> String {
        let mut pairs = form_pairs(&self.tags, "tags");
        if self.match_all {
            pairs.push(("match".into(), "all".into()));
        }
        pairs.extend(form_pairs(&self.states, "state"));
        if self.active {
            pairs.push(("state".into(), "active".into()));
        }
        pairs.push(("limit".into(), self.limit.to_string()));
        pairs.push(("before".into(), cursor(last)));
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", percent(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn form_pairs(values: &[String], key: &str) -> Vec<(String, String)> {
    values.iter().map(|v| (key.to_owned(), v.clone())).collect()
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `<created_at ms>_<job id>`: where the next page starts.
pub fn cursor(summary: &JobSummary) -> String {
    format!("{}_{}", summary.created_at.millis(), summary.job_id)
}

fn parse_cursor(text: &str) -> Option<(Timestamp, Uuid)> {
    let (millis, id) = text.split_once('_')?;
    Some((
        Timestamp::from_millis(millis.parse().ok()?),
        Uuid::parse_str(id).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn percentiles_interpolate_in_seconds() {
        let waits: Vec<i64> = (1..=11).map(|s| s * 1000).collect();
        let view = wait_percentiles(&waits);
        assert_eq!(view["50"], json!(6.0));
        assert_eq!(view["5"], json!(1.5));
        assert_eq!(view["95"], json!(10.5));
        assert_eq!(
            wait_percentiles(&[90_000_000])["50"],
            json!(90_000.0),
            "a day or more counts in full"
        );
    }

    #[test]
    fn search_queries_parse_and_page() {
        let q = SearchQuery::parse(&pairs(&[
            ("tags", "a b"),
            ("tags", "c"),
            ("match", "all"),
            ("state", "active"),
            ("limit", "2"),
        ]))
        .unwrap();
        assert_eq!(q.tags, ["a b", "c"]);
        assert!(q.match_all && q.active);
        assert!(q.admits_state("test") && !q.admits_state("cancelled"));
        let last = JobSummary {
            job_id: Uuid::nil(),
            created_at: Timestamp::from_millis(42),
            job_state: "waiting".into(),
            job_queue: "q".into(),
            tags: vec![],
        };
        let next = q.next_page(&last);
        assert_eq!(
            next,
            format!(
                "tags=a%20b&tags=c&match=all&state=active&limit=2&before=42_{}",
                Uuid::nil()
            )
        );
        let again = SearchQuery::parse(&form_urlencoded_pairs(&next)).unwrap();
        assert_eq!(
            again.before,
            Some((Timestamp::from_millis(42), Uuid::nil()))
        );
        let bad = SearchQuery::parse(&pairs(&[
            ("match", "some"),
            ("limit", "0"),
            ("before", "x"),
        ]))
        .unwrap_err();
        assert_eq!(
            bad.fields().collect::<Vec<_>>(),
            ["before", "limit", "match"]
        );
    }

    fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.replace("%20", " ")))
            .collect()
    }
}
