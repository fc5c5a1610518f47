//! Read-only views over queues and jobs: per-queue job lists, wait-time
//! percentiles, queue position and job search.

use serde_json::Value;
use uuid::Uuid;

use crate::job::{Job, JobState};
use crate::Timestamp;

/// A job as the list views show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub job_id: Uuid,
    pub created_at: Timestamp,
    pub job_state: JobState,
    pub job_queue: String,
    pub tags: Vec<String>,
    /// The client that submitted it; `None` when anonymous.
    pub submitted_by: Option<String>,
}

impl JobSummary {
    pub fn of(job: &Job) -> Self {
        JobSummary {
            job_id: job.job_id,
            created_at: job.created_at,
            job_state: job.state.clone(),
            job_queue: job.job_queue.clone(),
            submitted_by: job.client_id().map(str::to_owned),
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
}

/// Most jobs `GET /v1/queues/{q}/jobs` lists (newest first).
pub const QUEUE_JOBS_LIMIT: usize = 1000;

/// Wait times: claims of the last [`WAIT_WINDOW_DAYS`] days, at most the
/// [`WAIT_SAMPLE`] most recent per queue.
pub const WAIT_WINDOW_DAYS: i64 = 7;
pub const WAIT_SAMPLE: usize = 1000;
pub const WAIT_PERCENTILES: [u32; 5] = [5, 10, 50, 90, 95];

/// Each of [`WAIT_PERCENTILES`] of the waits, in seconds rounded to the
/// millisecond, by linear interpolation between the closest ranks; empty
/// when there are no waits.
pub fn wait_percentiles(waits_ms: &[i64]) -> Vec<(u32, f64)> {
    if waits_ms.is_empty() {
        return Vec::new();
    }
    let mut seconds: Vec<f64> = waits_ms.iter().map(|ms| *ms as f64 / 1000.0).collect();
    seconds.sort_by(f64::total_cmp);
    WAIT_PERCENTILES
        .iter()
        .map(|&p| {
            let rank = (seconds.len() as f64 - 1.0) * f64::from(p) / 100.0;
            let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
            let value = seconds[low] + (seconds[high] - seconds[low]) * (rank - low as f64);
            (p, (value * 1000.0).round() / 1000.0)
        })
        .collect()
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
    /// Only the jobs of this queue (the dashboard's job search).
    pub queue: Option<String>,
    /// Only the jobs this client submitted (the dashboard's job search).
    pub submitted_by: Option<String>,
}

pub const SEARCH_DEFAULT_LIMIT: usize = 100;
pub const SEARCH_MAX_LIMIT: usize = 1000;

impl Default for SearchQuery {
    /// Every job, newest first, one page of [`SEARCH_DEFAULT_LIMIT`].
    fn default() -> Self {
        SearchQuery {
            tags: Vec::new(),
            match_all: false,
            states: Vec::new(),
            active: false,
            limit: SEARCH_DEFAULT_LIMIT,
            before: None,
            queue: None,
            submitted_by: None,
        }
    }
}

impl SearchQuery {
    /// Whether a job's state is asked for (no state asked: every state).
    pub fn admits_state(&self, state: &JobState) -> bool {
        (self.states.is_empty() && !self.active)
            || self.states.iter().any(|s| s == state.as_str())
            || (self.active && !state.is_terminal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_in_seconds() {
        let waits: Vec<i64> = (1..=11).map(|s| s * 1000).collect();
        let view = wait_percentiles(&waits);
        assert_eq!(view[2], (50, 6.0));
        assert_eq!(view[0], (5, 1.5));
        assert_eq!(view[4], (95, 10.5));
        assert_eq!(
            wait_percentiles(&[90_000_000])[2],
            (50, 90_000.0),
            "a day or more counts in full"
        );
        assert!(wait_percentiles(&[]).is_empty());
    }
}
