//! What the dashboard pages read (issue 14): the lab at a glance, queues
//! with their depth and waits, agents narrowed by queue, state and
//! location. Every read is one of the API's own, or an index-backed count;
//! nothing here writes.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::App;
use crate::agents::Agent;
use crate::logs::{LogTail, LogType};
use crate::queues::{JobSummary, SearchQuery, WAIT_SAMPLE, WAIT_WINDOW_DAYS};
use crate::{Result, Timestamp};

/// One queue as the dashboard lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub name: String,
    /// What the agents advertised about it (`POST /v1/agents/queues`).
    pub description: Option<String>,
    /// Jobs waiting to be claimed.
    pub waiting: u64,
    /// Jobs claimed and not finished (running or in a phase).
    pub running: u64,
    /// Agents that list the queue.
    pub agents: usize,
    /// Median and 90th percentile of the recent claim waits, in seconds.
    pub wait_p50: Option<f64>,
    pub wait_p90: Option<f64>,
}

/// The overview: queues, agents by state, the newest jobs.
#[derive(Debug)]
pub struct Overview {
    pub queues: Vec<QueueRow>,
    /// Agents counted by their flat state (`waiting`, `test`, `offline`, ...).
    pub agents_by_state: BTreeMap<String, usize>,
    pub recent_jobs: Vec<JobSummary>,
}

/// The agents page's filters; each empty one admits every agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFilter {
    pub queue: Option<String>,
    pub state: Option<String>,
    /// A part of the location, whatever its case.
    pub location: Option<String>,
}

impl AgentFilter {
    pub fn admits(&self, agent: &Agent) -> bool {
        let queue_ok = self
            .queue
            .as_deref()
            .is_none_or(|q| agent.queues().contains(&q));
        let state_ok = self
            .state
            .as_deref()
            .is_none_or(|s| agent.legacy_state().as_deref() == Some(s));
        let location_ok = self.location.as_deref().is_none_or(|part| {
            agent
                .fields
                .get("location")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|l| l.to_lowercase().contains(&part.to_lowercase()))
        });
        queue_ok && state_ok && location_ok
    }
}

/// When the agent itself was last heard from ([`Agent::heard_at`]: its
/// `last_heard`, or its last update for an agent stored before that).
pub fn last_seen(agent: &Agent) -> Timestamp {
    agent.heard_at()
}

/// Bytes of a job's output the job page shows (its live tail).
pub const OUTPUT_TAIL_BYTES: u64 = 16 * 1024;
/// Newest jobs on the overview.
pub const RECENT_JOBS: usize = 15;

impl App {
    /// Every queue known from an agent, an advertisement or an unfinished
    /// job, with its depth, agents and recent waits; by name.
    pub async fn dashboard_queues(&self, now: Timestamp) -> Result<Vec<QueueRow>> {
        let agents = self.store.list_agents().await?;
        self.queue_rows(&agents, now).await
    }

    async fn queue_rows(&self, agents: &[Agent], now: Timestamp) -> Result<Vec<QueueRow>> {
        let advertised = self.store.list_queues().await?;
        let counts = self.store.active_job_counts().await?;
        let waits = self.wait_times(&[], now).await?;
        let mut agents_per_queue: BTreeMap<&str, usize> = BTreeMap::new();
        for agent in agents {
            for queue in agent.queues() {
                *agents_per_queue.entry(queue).or_default() += 1;
            }
        }
        let names: BTreeSet<&str> = advertised
            .keys()
            .map(String::as_str)
            .chain(agents_per_queue.keys().copied())
            .chain(counts.keys().map(String::as_str))
            .collect();
        Ok(names
            .into_iter()
            .map(|name| {
                let states = counts.get(name);
                let waiting = states.and_then(|s| s.get("waiting")).copied().unwrap_or(0);
                let active: u64 = states.map(|s| s.values().sum()).unwrap_or(0);
                let percentile = |p: u32| {
                    waits
                        .get(name)
                        .and_then(|w| w.iter().find(|(q, _)| *q == p))
                        .map(|(_, seconds)| *seconds)
                };
                QueueRow {
                    name: name.to_owned(),
                    description: advertised.get(name).cloned(),
                    waiting,
                    running: active - waiting,
                    agents: agents_per_queue.get(name).copied().unwrap_or(0),
                    wait_p50: percentile(50),
                    wait_p90: percentile(90),
                }
            })
            .collect())
    }

    /// The overview page.
    pub async fn dashboard_overview(&self, now: Timestamp) -> Result<Overview> {
        let agents = self.store.list_agents().await?;
        let queues = self.queue_rows(&agents, now).await?;
        let mut agents_by_state: BTreeMap<String, usize> = BTreeMap::new();
        for agent in &agents {
            let state = agent.legacy_state().unwrap_or_else(|| "unknown".into());
            *agents_by_state.entry(state).or_default() += 1;
        }
        let recent = self
            .search_jobs(&SearchQuery {
                limit: RECENT_JOBS,
                ..SearchQuery::default()
            })
            .await?;
        Ok(Overview {
            queues,
            agents_by_state,
            recent_jobs: recent.jobs,
        })
    }

    /// The names of every queue an agent lists or advertised, without
    /// their depth or waits (the agents page's filter).
    pub async fn dashboard_queue_names(&self) -> Result<BTreeSet<String>> {
        let mut names: BTreeSet<String> = self.store.list_queues().await?.into_keys().collect();
        for agent in self.store.list_agents().await? {
            names.extend(agent.queues().into_iter().map(str::to_owned));
        }
        Ok(names)
    }

    /// The agents the filter admits, by name.
    pub async fn filter_agents(&self, filter: &AgentFilter) -> Result<Vec<Agent>> {
        let mut agents = self.store.list_agents().await?;
        agents.retain(|a| filter.admits(a));
        agents.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(agents)
    }

    /// A queue's recent claim waits in ms (the sample the percentiles are
    /// computed from), newest first.
    pub async fn queue_wait_sample(&self, queue: &str, now: Timestamp) -> Result<Vec<i64>> {
        let since = Timestamp::from_millis(now.millis() - WAIT_WINDOW_DAYS * 86_400_000);
        let mut waits = self
            .store
            .wait_times(&[queue.to_owned()], since, WAIT_SAMPLE)
            .await?;
        Ok(waits.remove(queue).unwrap_or_default())
    }

    /// The end of each phase's output ([`OUTPUT_TAIL_BYTES`] at most each).
    pub async fn job_output_tail(&self, job_id: Uuid) -> Result<Vec<LogTail>> {
        self.store
            .read_log_tails(job_id, LogType::Output, OUTPUT_TAIL_BYTES)
            .await
    }
}
