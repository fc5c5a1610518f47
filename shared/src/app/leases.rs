//! Claim leases (SPEC.md §11): a claimed job stays with its agent while the
//! agent keeps talking about it; the sweep requeues the job of an agent
//! that went silent, and ends it after its last attempt.
//!
//! - The claim starts a lease of `TESTFLINGER_LEASE_SECONDS`.
//! - Whatever the claiming agent already sends renews it: result and log
//!   posts, artifact uploads, its reads of the result and status (the
//!   cancel checks), and its agent-data posts while linked to the job. A
//!   renewal is one conditional update ([`crate::store::JobStore::renew_lease`]).
//! - An agent that lost the job (the lease ran out, or another agent holds
//!   it now) is refused with 409 and changes nothing.
//! - [`App::sweep_leases`] ends expired leases, each by one conditional
//!   update ([`crate::store::JobStore::end_lease`]) that a racing renewal
//!   either beats or loses to, whole.

use uuid::Uuid;

use super::{App, Caller};
use crate::agents::agent_name_key;
use crate::events::{EventName, JobEvent};
use crate::job::Job;
use crate::store::LeaseEnd;
use crate::{Error, Result, Timestamp};

/// Expired leases one batch of a sweep reads at most.
pub const SWEEP_BATCH: usize = 500;
/// How long one sweep may keep taking batches (a Lambda run included).
pub const SWEEP_TIME: std::time::Duration = std::time::Duration::from_secs(20);

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub requeued: usize,
    pub failed: usize,
}

impl App {
    /// When a lease taken or renewed at `now` runs out.
    pub(super) fn lease_until(&self, now: Timestamp) -> Timestamp {
        let seconds = i64::try_from(self.settings.leases.lease_seconds).unwrap_or(i64::MAX);
        now.plus_seconds(seconds)
    }

    /// Before a post about a job: renews the lease of the agent that
    /// speaks, or refuses (409) an agent that lost the job. A job without
    /// a lease (never claimed, claimed before leases, or finished) passes.
    pub(super) async fn hold_lease(
        &self,
        caller: &Caller,
        job_id: Uuid,
        now: Timestamp,
    ) -> Result<()> {
        let agent = caller.agent.as_deref();
        if self
            .store
            .renew_lease(job_id, agent, self.lease_until(now))
            .await?
        {
            // Only the holder renews: the agent speaks about its own job.
            if let Some(agent) = agent {
                self.heard_from(agent, None, now).await;
            }
            return Ok(());
        }
        match self.store.get_job(job_id).await? {
            Some(job) if job.lease_lost_by(agent) => {
                tracing::warn!(job_id = %job_id, agent = ?agent, holder = ?job.lease_holder, "post from an agent that lost the job refused");
                Err(Error::Conflict(format!(
                    "Job {job_id} is no longer held by this agent: its lease ran out \
                     and the job was requeued or ended."
                )))
            }
            _ => Ok(()),
        }
    }

    /// A read of the job's result or status: renews the lease when the
    /// reader is the agent holding it (its cancel checks); never refuses.
    pub async fn touch_lease(&self, caller: &Caller, job_id: Uuid, now: Timestamp) {
        let Some(agent) = caller.agent.as_deref() else {
            return;
        };
        match self
            .store
            .renew_lease(job_id, Some(agent), self.lease_until(now))
            .await
        {
            Ok(true) => self.heard_from(agent, None, now).await,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(job_id = %job_id, agent, error = %error, "lease not renewed")
            }
        }
    }

    /// An agent-data post renews the lease of the job the agent is linked to.
    pub(super) async fn touch_agent_lease(&self, agent: &str, now: Timestamp) {
        let linked = match self.store.get_agent(agent).await {
            Ok(found) => found.and_then(|a| a.job_id().and_then(|id| Uuid::parse_str(id).ok())),
            Err(_) => None,
        };
        if let Some(job_id) = linked {
            let caller = Caller {
                client: None,
                agent: Some(agent.to_owned()),
            };
            self.touch_lease(&caller, job_id, now).await;
        }
    }

    /// Ends every lease that ran out before `now`: the job goes back to its
    /// queue (attempts left) or ends `cancelled` (its last attempt), with a
    /// `job_requeued` or `job_cancelled` event saying why. Batches of
    /// [`SWEEP_BATCH`] follow one another while they are full and make
    /// progress, for at most [`SWEEP_TIME`]; what is left waits for the
    /// next sweep.
    pub async fn sweep_leases(&self, now: Timestamp) -> Result<SweepReport> {
        let started = std::time::Instant::now();
        let mut report = SweepReport::default();
        loop {
            let (found, batch) = self.sweep_lease_batch(now).await?;
            report.requeued += batch.requeued;
            report.failed += batch.failed;
            let progress = batch.requeued + batch.failed > 0;
            if found < SWEEP_BATCH || !progress || started.elapsed() > SWEEP_TIME {
                return Ok(report);
            }
        }
    }

    /// One batch of the sweep: how many expired leases it found, and what
    /// it did with them.
    async fn sweep_lease_batch(&self, now: Timestamp) -> Result<(usize, SweepReport)> {
        let mut report = SweepReport::default();
        let expired = self.store.expired_leases(now, SWEEP_BATCH).await?;
        let found = expired.len();
        if expired.is_empty() {
            return Ok((found, report));
        }
        let agents = self.store.list_agents().await?;
        let offline_before = self.offline_before(now);
        for job in expired {
            let silent = job.lease_holder.clone();
            let max = job.max_attempts(self.settings.leases.max_attempts);
            let lease = job.lease_until.unwrap_or(now);
            let who = silent
                .as_deref()
                .map(|a| format!("agent '{a}'"))
                .unwrap_or_else(|| "an unnamed agent".into());
            if job.attempts >= max {
                if self
                    .store
                    .end_lease(job.job_id, job.attempts, now, LeaseEnd::Fail)
                    .await?
                {
                    report.failed += 1;
                    crate::metrics::count(crate::metrics::LEASES_ENDED, &[], 1);
                    crate::metrics::count(
                        crate::metrics::JOBS_FINISHED,
                        &[("state", "cancelled")],
                        1,
                    );
                    tracing::warn!(job_id = %job.job_id, agent = ?silent, attempts = job.attempts, "lease expired on the last attempt: job ended");
                    if let Some(agent) = &silent {
                        self.link_agent(agent, job.job_id, None, now).await;
                    }
                    let event = lease_event(
                        EventName::JobCancelled,
                        now,
                        format!(
                            "Job ended: {who} went silent (lease expired at {}) on attempt {} of {max}",
                            lease.to_rfc3339(),
                            job.attempts
                        ),
                        silent.as_deref(),
                    );
                    self.record(job.job_id, &[event], now).await;
                }
                continue;
            }
            // Pass the silent agent over only while another agent of the
            // queue may run the job: a single device gets it back.
            let passed_over = silent
                .clone()
                .filter(|agent| another_agent_may_run(&agents, &job, agent, offline_before));
            let end = LeaseEnd::Requeue {
                passed_over: passed_over.clone(),
            };
            if self
                .store
                .end_lease(job.job_id, job.attempts, now, end)
                .await?
            {
                report.requeued += 1;
                crate::metrics::count(crate::metrics::JOBS_REQUEUED, &[], 1);
                tracing::warn!(job_id = %job.job_id, agent = ?silent, attempts = job.attempts, "lease expired: job requeued");
                if let Some(agent) = &silent {
                    self.link_agent(agent, job.job_id, None, now).await;
                }
                let event = lease_event(
                    EventName::JobRequeued,
                    now,
                    format!(
                        "Job requeued: {who} went silent (lease expired at {}) on attempt {} of {max}{}",
                        lease.to_rfc3339(),
                        job.attempts,
                        if passed_over.is_some() {
                            "; the next claim passes it over"
                        } else {
                            ""
                        }
                    ),
                    silent.as_deref(),
                );
                self.record(job.job_id, &[event], now).await;
            }
        }
        Ok((found, report))
    }
}

fn lease_event(name: EventName, at: Timestamp, message: String, agent: Option<&str>) -> JobEvent {
    JobEvent {
        name,
        timestamp: at,
        message,
        detail: agent.unwrap_or_default().to_owned(),
        phase: None,
        status: None,
    }
}

/// Whether an agent other than `silent` serves the job's queue, is not
/// excluded by it, not drained, and not silent itself (heard from at
/// `offline_before` or later).
fn another_agent_may_run(
    agents: &[crate::agents::Agent],
    job: &Job,
    silent: &str,
    offline_before: Timestamp,
) -> bool {
    let excluded: Vec<String> = job
        .job_data
        .get("exclude_agents")
        .and_then(serde_json::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(serde_json::Value::as_str)
                .map(agent_name_key)
                .collect()
        })
        .unwrap_or_default();
    agents.iter().any(|a| {
        let key = agent_name_key(&a.name);
        key != agent_name_key(silent)
            && !excluded.contains(&key)
            && !a.is_drained()
            && a.silent_since(offline_before).is_none()
            && a.queues().contains(&job.job_queue.as_str())
    })
}
