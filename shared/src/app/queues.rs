//! Read-only views of queues: the agents serving them, their jobs, and how
//! long their jobs wait.

use std::collections::BTreeMap;

use super::agents::Agents;
use super::App;
use crate::queues::{
    wait_percentiles, JobSummary, QUEUE_JOBS_LIMIT, WAIT_SAMPLE, WAIT_WINDOW_DAYS,
};
use crate::{Error, Result, Timestamp};

impl App {
    /// `GET /v1/queues/{queue}/agents`. A queue exists when some agent
    /// lists it; the CLI's submit pre-check relies on the 404 message.
    pub async fn queue_agents(&self, queue: &str, now: Timestamp) -> Result<Agents> {
        let mut listing = self.list_agents(now).await?;
        listing.agents.retain(|a| a.queues().contains(&queue));
        if listing.agents.is_empty() {
            return Err(Error::NotFound(format!("Queue '{queue}' does not exist.")));
        }
        Ok(listing)
    }

    /// `GET /v1/queues/{queue}/jobs`: any state, newest first.
    pub async fn queue_jobs(&self, queue: &str) -> Result<Vec<JobSummary>> {
        self.store.queue_jobs(queue, QUEUE_JOBS_LIMIT).await
    }

    /// `GET /v1/queues/wait_times`: for each queue (all when none is named)
    /// with claims in the window, the wait percentiles in seconds.
    pub async fn wait_times(
        &self,
        queues: &[String],
        now: Timestamp,
    ) -> Result<BTreeMap<String, Vec<(u32, f64)>>> {
        let since = Timestamp::from_millis(now.millis() - WAIT_WINDOW_DAYS * 86_400_000);
        let waits = self.store.wait_times(queues, since, WAIT_SAMPLE).await?;
        Ok(waits
            .into_iter()
            .filter(|(_, w)| !w.is_empty())
            .map(|(queue, w)| (queue, wait_percentiles(&w)))
            .collect())
    }
}
