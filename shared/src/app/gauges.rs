//! The gauges `GET /metrics` shows: jobs waiting and running per queue and
//! agents per state, read from the store (so every process and Lambda
//! instance reports the same lab), at most once per [`GAUGES_TTL`] however
//! often Prometheus scrapes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::App;
use crate::job::JobState;
use crate::metrics::{AGENTS, JOBS_ACTIVE};
use crate::{Result, Timestamp};

/// How long computed gauges are served before the store is asked again.
pub const GAUGES_TTL: Duration = Duration::from_secs(10);

/// Rows ready for [`crate::metrics::Registry::render`].
pub type Gauges = Vec<crate::metrics::Gauge>;

#[derive(Debug, Default)]
pub(super) struct GaugeCache {
    last: Mutex<Option<(Instant, Gauges)>>,
}

impl App {
    /// The gauges, from the cache while it is fresh.
    pub async fn gauges(&self, now: Timestamp) -> Result<Gauges> {
        if let Some((at, gauges)) = self
            .gauges
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            if at.elapsed() < GAUGES_TTL {
                return Ok(gauges.clone());
            }
        }
        let mut gauges = Gauges::new();
        let mut jobs: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        for (queue, states) in self.store.active_job_counts().await? {
            for (state, count) in states {
                let class = if JobState::parse(&state) == JobState::Waiting {
                    "waiting"
                } else {
                    "running"
                };
                *jobs.entry((queue.clone(), class)).or_default() += count;
            }
        }
        for ((queue, state), count) in jobs {
            gauges.push((
                JOBS_ACTIVE,
                vec![("queue", queue), ("state", state.into())],
                count as f64,
            ));
        }
        let offline_before = self.offline_before(now);
        let mut agents: BTreeMap<String, u64> = BTreeMap::new();
        for agent in self.store.list_agents().await? {
            let state = if agent.silent_since(offline_before).is_some() {
                "silent".to_owned()
            } else {
                agent.legacy_state().unwrap_or_else(|| "unknown".into())
            };
            *agents.entry(state).or_default() += 1;
        }
        for (state, count) in agents {
            gauges.push((AGENTS, vec![("state", state)], count as f64));
        }
        *self.gauges.last.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), gauges.clone()));
        Ok(gauges)
    }
}
