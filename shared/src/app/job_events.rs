//! A job's events: recorded by the other use cases as things happen (never
//! posted by anyone), read back as the job's timeline.

use uuid::Uuid;

use super::App;
use crate::events::JobEvent;
use crate::{Error, Result, Timestamp};

impl App {
    /// Appends to a job's timeline. The timeline is a record of what
    /// happened, not part of it: a failure to write it is logged and the
    /// request that made the events still succeeds.
    pub(super) async fn record(&self, job_id: Uuid, events: &[JobEvent], now: Timestamp) {
        if let Err(error) = self.store.record_events(job_id, events, now).await {
            tracing::warn!(job_id = %job_id, error = %error, "job events not recorded");
        }
    }

    /// Links an agent to the job it claimed, or unlinks it from a job that
    /// ended; as [`App::record`], a failure is logged, never the answer.
    pub(super) async fn link_agent(
        &self,
        agent: &str,
        job_id: Uuid,
        link: Option<Option<&str>>,
        now: Timestamp,
    ) {
        let done = match link {
            Some(submitted_by) => {
                self.store
                    .set_agent_job(agent, job_id, submitted_by, now)
                    .await
            }
            None => self.store.clear_agent_job(agent, job_id, now).await,
        };
        if let Err(error) = done {
            tracing::warn!(job_id = %job_id, agent, error = %error, "agent's job link not updated");
        }
    }

    /// `GET /v1/events/job/{id}`: the job's events in order; 404 for an
    /// unknown job.
    pub async fn job_events(&self, job_id: Uuid) -> Result<Vec<JobEvent>> {
        if self.store.get_job(job_id).await?.is_none() {
            return Err(Error::NotFound("Job not found".into()));
        }
        self.store.job_events(job_id).await
    }
}
