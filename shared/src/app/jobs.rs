//! Jobs: submit, claim (with the job's secrets), read, cancel, position,
//! search.

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use super::{App, Caller};
use crate::agents::agent_name_key;
use crate::clients::check_submission;
use crate::events::JobEvent;
use crate::job::{validate_submission, Job, CLIENT_ID};
use crate::permissions;
use crate::queues::{JobSummary, SearchQuery};
use crate::role::AuthMode;
use crate::secrets::{inaccessible, job_secret_paths};
use crate::store::{CancelOutcome, ClaimRequest, MAX_CLAIM_QUEUES};
use crate::{Error, Result, Timestamp};

/// A claimed job and the values of the secrets it names, by path (a secret
/// that is gone, withheld or cannot be opened has no entry: it reads "").
#[derive(Debug)]
pub struct Claimed {
    pub job: Job,
    pub secrets: BTreeMap<String, String>,
}

/// One page of a search: at most the query's limit, and whether more follow.
#[derive(Debug)]
pub struct SearchPage {
    pub jobs: Vec<JobSummary>,
    pub more: bool,
}

impl App {
    /// `POST /v1/job`. Priority, restricted queues, long reservations and
    /// secrets are checked against the caller's permissions as stored now.
    pub async fn submit_job(&self, caller: &Caller, body: Value, now: Timestamp) -> Result<Uuid> {
        let mut job = validate_submission(body, now)?;
        let restriction = self.store.get_restricted_queue(&job.job_queue).await?;
        check_submission(&job, caller.client.as_ref(), restriction.as_ref())?;
        if !job.exclude_agents.is_empty() {
            self.check_some_agent_may_run(&job.job_queue, &job.exclude_agents)
                .await?;
        }
        let paths = job_secret_paths(&job.job_data);
        if !paths.is_empty() {
            let refuse = |why: &str| Error::invalid_field("test_data.secrets", why);
            if self.settings.auth_mode == AuthMode::Open {
                // Anonymous callers may claim in the open mode: a secret
                // would go to whoever asks.
                return Err(refuse("Secrets need agents that authenticate: this server runs in the open mode, where anyone may claim jobs."));
            }
            if self.settings.secrets_key.is_none() {
                return Err(refuse(
                    "This server keeps no secrets (it has no TESTFLINGER_SECRETS_KEY).",
                ));
            }
            let Some(client_id) = caller.client_id() else {
                return Err(refuse(
                    "Only an authenticated client can use its secrets; log in first.",
                ));
            };
            let existing = self.store.existing_secrets(client_id, &paths, now).await?;
            let missing: Vec<String> = paths
                .into_iter()
                .filter(|p| !existing.contains(p))
                .collect();
            if !missing.is_empty() {
                return Err(inaccessible(&missing));
            }
        }
        if let Some(client_id) = caller.client_id() {
            job.job_data
                .insert(CLIENT_ID.into(), Value::String(client_id.to_owned()));
        }
        self.store.insert_job(&job).await?;
        tracing::info!(job_id = %job.job_id, queue = %job.job_queue, priority = job.job_priority, client_id = ?caller.client_id(), "job submitted");
        crate::metrics::count(
            crate::metrics::JOBS_SUBMITTED,
            &[("queue", &job.job_queue)],
            1,
        );
        let submitted = JobEvent::submitted(now, &job.job_queue, caller.client_id());
        self.record(job.job_id, &[submitted], now).await;
        Ok(job.job_id)
    }

    /// A job that excludes agents must leave at least one agent of its
    /// queue able to run it (as upstream: the CLI's
    /// `--wait-for-available-agents` waits on this 422); a queue no agent
    /// serves has none.
    async fn check_some_agent_may_run(&self, queue: &str, excluded: &[String]) -> Result<()> {
        let agents = self.store.list_agents().await?;
        let excluded: Vec<String> = excluded.iter().map(|a| agent_name_key(a)).collect();
        let may_run = agents
            .iter()
            .any(|a| a.queues().contains(&queue) && !excluded.contains(&agent_name_key(&a.name)));
        if may_run {
            return Ok(());
        }
        let mut fields = crate::validation::FieldErrors::new();
        fields.add(
            "exclude_agents",
            format!("Every agent of queue '{queue}' is excluded, or none serves it."),
        );
        Err(Error::Validation {
            location: crate::error::Location::Json,
            message: "There are no agents on the specified queue that are allowed to run this job"
                .into(),
            fields,
        })
    }

    /// `GET /v1/job?queue=..`: the agent's claim. `queues` as the agent
    /// sent them (empty and repeated names are dropped); `agent_name` from
    /// its cookie, which every mode but the open one requires.
    pub async fn claim_job(
        &self,
        caller: &Caller,
        queues: Vec<String>,
        agent_name: Option<String>,
        now: Timestamp,
    ) -> Result<Option<Claimed>> {
        let mut distinct: Vec<String> = Vec::new();
        for queue in queues {
            if !queue.is_empty() && !distinct.contains(&queue) {
                distinct.push(queue);
            }
        }
        if distinct.is_empty() {
            let mut fields = crate::validation::FieldErrors::new();
            fields.add("queue", "Give at least one queue.");
            return Err(Error::Malformed {
                location: crate::error::Location::Query,
                message: "No queue(s) specified in request".into(),
                fields,
            });
        }
        if distinct.len() > MAX_CLAIM_QUEUES {
            return Err(Error::invalid(
                crate::error::Location::Query,
                "queue",
                format!("At most {MAX_CLAIM_QUEUES} queues may be polled at once."),
            ));
        }
        if agent_name.is_none() && self.settings.auth_mode != AuthMode::Open {
            return Err(Error::Unauthorized(
                "Agent not identified: post to /v1/agents/data/{name} first for the agent_name cookie.".into(),
            ));
        }
        // The agent named must be the caller's own (or a name no client
        // owns yet, which becomes the caller's): 403 otherwise.
        if let Some(agent) = &agent_name {
            self.check_agent_identity(caller, agent, super::agents::Binding::Bind, now)
                .await?;
        }
        // Drain: an agent commanded into maintenance or offline takes no
        // new job (its running one finishes normally). The same read tells
        // whether the agent's liveness is due a write.
        if let Some(agent) = &agent_name {
            let stored = self.store.get_agent(agent).await?;
            let last_heard = stored.as_ref().and_then(|a| a.last_heard);
            self.heard_from(agent, last_heard, now).await;
            if stored.is_some_and(|a| a.is_drained()) {
                return Ok(None);
            }
        }
        let request = ClaimRequest {
            queues: distinct,
            agent_name,
            client_id: caller.client_id().map(str::to_owned),
            lease_until: Some(self.lease_until(now)),
        };
        let Some(job) = self.store.claim_job(&request, now).await? else {
            return Ok(None);
        };
        tracing::info!(job_id = %job.job_id, queue = %job.job_queue, agent = ?request.agent_name, "job claimed");
        crate::metrics::count(
            crate::metrics::JOBS_CLAIMED,
            &[("queue", &job.job_queue)],
            1,
        );
        if let Some(agent) = &request.agent_name {
            self.link_agent(agent, job.job_id, Some(job.client_id()), now)
                .await;
        }
        let assigned = JobEvent::assigned(now, request.agent_name.as_deref());
        self.record(job.job_id, &[assigned], now).await;
        let secrets = self.claimed_secrets(caller, &job, now).await?;
        Ok(Some(Claimed { job, secrets }))
    }

    /// The values of the claimed job's secrets: taken (ephemeral ones
    /// deleted as they are read) only for a caller with an agent token.
    async fn claimed_secrets(
        &self,
        caller: &Caller,
        job: &Job,
        now: Timestamp,
    ) -> Result<BTreeMap<String, String>> {
        let paths = job_secret_paths(&job.job_data);
        let (Some(client_id), false) = (job.client_id(), paths.is_empty()) else {
            return Ok(BTreeMap::new());
        };
        if !permissions::may_receive_secrets(caller) {
            tracing::warn!(job_id = %job.job_id, "secrets withheld: the claiming caller has no agent token");
            return Ok(BTreeMap::new());
        }
        let stored = self.store.take_secrets(client_id, &paths, now).await?;
        let Some(key) = self.settings.secrets_key.as_ref() else {
            return Ok(BTreeMap::new());
        };
        Ok(stored
            .iter()
            .filter_map(|s| {
                key.open(client_id, &s.path, &s.sealed)
                    .map(|value| (s.path.clone(), value))
            })
            .collect())
    }

    /// `GET /v1/job/{id}`: `None` for an unknown job.
    pub async fn get_job(&self, job_id: Uuid) -> Result<Option<Job>> {
        self.store.get_job(job_id).await
    }

    /// `POST /v1/job/{id}/action` `{"action": "cancel"}`, under the rule
    /// of [`permissions::may_cancel`].
    pub async fn cancel_job(&self, caller: &Caller, job_id: Uuid, now: Timestamp) -> Result<()> {
        let job = self.store.get_job(job_id).await?;
        if let Some(job) = &job {
            permissions::may_cancel(caller, &job_id.to_string(), job.client_id())?;
        }
        match self.store.cancel_job(job_id, now).await? {
            CancelOutcome::Cancelled => {
                tracing::info!(job_id = %job_id, by = ?caller.client_id(), "job cancelled");
                crate::metrics::count(crate::metrics::JOBS_FINISHED, &[("state", "cancelled")], 1);
                if let Some(agent) = job.as_ref().and_then(Job::agent_id) {
                    self.link_agent(agent, job_id, None, now).await;
                }
                let cancelled = JobEvent::cancelled(now, caller.client_id());
                self.record(job_id, &[cancelled], now).await;
                Ok(())
            }
            CancelOutcome::AlreadyFinished => Err(Error::BadRequest(
                "The job is already completed or cancelled".into(),
            )),
            CancelOutcome::NotFound => Err(Error::NotFound(format!("Job {job_id} not found."))),
        }
    }

    /// `GET /v1/job/{id}/position`: 0 = next to be claimed on its queue;
    /// 410 once it is no longer waiting (or was never known).
    pub async fn job_position(&self, job_id: Uuid) -> Result<u64> {
        self.store
            .job_position(job_id)
            .await?
            .ok_or_else(|| Error::Gone("Job not found or already started".into()))
    }

    /// `GET /v1/job/search`: newest first, one page.
    pub async fn search_jobs(&self, query: &SearchQuery) -> Result<SearchPage> {
        let mut jobs = self.store.search_jobs(query).await?;
        let more = jobs.len() > query.limit;
        jobs.truncate(query.limit);
        Ok(SearchPage { jobs, more })
    }
}
