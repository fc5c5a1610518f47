//! The document store: every record the server keeps except blobs.
//!
//! One trait, implemented by the embedded SQLite store (and by MongoDB in
//! production). Rules live in the domain modules; a store only stores, but
//! does so atomically where the rules need it (the claim, state moves).

use std::collections::BTreeMap;

use async_trait::async_trait;
use uuid::Uuid;

use crate::agents::{Agent, AgentOwner, AgentUpdate, ProvisionEntry};
use crate::clients::{Client, OwnerRemoval, RefreshToken, RestrictedQueue};
use crate::events::{JobEvent, ResultChange};
use crate::job::{AttachmentsStatus, Job, JobState, NewJob};
use crate::logs::{LegacyStream, LogFragment, LogTail, LogType};
use crate::queues::{JobSummary, SearchQuery};
use crate::results::ResultPatch;
use crate::secrets::StoredSecret;
use crate::statistics::{DailyCount, StatisticsQuery};
use crate::{Result, Timestamp};

pub mod mongo;
pub mod sqlite;

pub use mongo::MongoStore;
pub use sqlite::SqliteStore;

/// Most distinct queues one claim may ask for.
pub const MAX_CLAIM_QUEUES: usize = 100;

/// `GET /v1/job`: which queues the agent serves and who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Distinct, non-empty queue names, at most [`MAX_CLAIM_QUEUES`].
    pub queues: Vec<String>,
    /// The `agent_name` cookie, matched against each job's `exclude_agents`
    /// whatever the case of either.
    pub agent_name: Option<String>,
    /// The client that claims (`None`: anonymous), recorded on the job as
    /// its `claimed_by`: only that client (or an admin) may then post about it.
    pub client_id: Option<String>,
    /// The lease the claim starts (until then the job stays with the agent
    /// without a word); `None`: no lease, the job is never requeued and the
    /// claim is not counted in its `attempts` (as a claim before leases).
    pub lease_until: Option<Timestamp>,
}

impl ClaimRequest {
    /// The claim's eligibility rule (SPEC.md §7), defined once: a job is
    /// handed out only while `waiting`, on one of the requested queues,
    /// with its attachments (if any) uploaded, and not excluding the agent
    /// (names compared by [`crate::agents::agent_name_key`]: an exclusion
    /// of `dev1` also keeps out `DEV1`). Both stores encode it in their own
    /// query language; the conformance suite checks each against this
    /// definition.
    pub fn admits(&self, job: &Job) -> bool {
        let excluded = |agent: &String| {
            job.job_data
                .get("exclude_agents")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|list| crate::agents::excludes(list, agent))
        };
        let passed_over = |agent: &String| {
            job.passed_over.as_ref().is_some_and(|p| {
                crate::agents::agent_name_key(p) == crate::agents::agent_name_key(agent)
            })
        };
        job.state == JobState::Waiting
            && self.queues.contains(&job.job_queue)
            && job.attachments_status != Some(AttachmentsStatus::Waiting)
            && !self.agent_name.as_ref().is_some_and(excluded)
            && !self.agent_name.as_ref().is_some_and(passed_over)
    }
}

/// The claim order (SPEC.md §7), defined once: higher `job_priority` first,
/// then earlier submission (FIFO). Among jobs submitted in the same
/// millisecond the stores keep insertion order.
pub fn claim_order(a: &Job, b: &Job) -> std::cmp::Ordering {
    b.job_priority
        .cmp(&a.job_priority)
        .then(a.created_at.cmp(&b.created_at))
}

/// How an expired lease ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEnd {
    /// Back to `waiting`; the claim passes over this agent, if any.
    Requeue { passed_over: Option<String> },
    /// The last attempt: the job ends `cancelled`.
    Fail,
}

impl LeaseEnd {
    /// The state the job ends the lease in, and the agent its next claim
    /// passes over: one rule for both stores.
    pub fn outcome(self) -> (JobState, Option<String>) {
        match self {
            LeaseEnd::Requeue { passed_over } => (JobState::Waiting, passed_over),
            LeaseEnd::Fail => (JobState::Cancelled, None),
        }
    }
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    /// The job was already in a terminal state; nothing changed.
    AlreadyFinished,
    NotFound,
}

#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores a new job in state `waiting`, and counts it in the job
    /// statistics: 1 added to the counter of
    /// [`CounterKey::of`](crate::statistics::CounterKey::of) the job (see
    /// [`StatisticsStore`]).
    async fn insert_job(&self, job: &NewJob) -> Result<()>;

    /// Stores many new jobs at once, in order, for bulk loading: the same
    /// result as [`Store::insert_job`] for each in turn (FIFO among equal
    /// priorities follows the slice; every job counted), in far fewer round
    /// trips.
    async fn insert_jobs(&self, jobs: &[NewJob]) -> Result<()>;

    async fn get_job(&self, job_id: Uuid) -> Result<Option<Job>>;

    /// Atomically moves the best eligible job (SPEC.md §7) to `running` and
    /// returns it; `None` when nothing is eligible. Records `started_at`
    /// (the wait is `started_at - created_at`), the agent name as
    /// `result_data.agent_id` and the claiming client as `claimed_by`. No
    /// two calls, from any process, ever return the same job.
    async fn claim_job(&self, request: &ClaimRequest, now: Timestamp) -> Result<Option<Job>>;

    /// Renews a claim lease to `until`, in one conditional update: only a
    /// job holding a lease, neither waiting nor terminal, and (when `agent`
    /// is given) held by that agent or by no named agent. `false` when
    /// nothing matched (the caller then reads the job to tell why).
    async fn renew_lease(
        &self,
        job_id: Uuid,
        agent: Option<&str>,
        until: Timestamp,
    ) -> Result<bool>;

    /// Jobs whose lease ran out before `now` (neither waiting nor terminal),
    /// oldest lease first, at most `limit`.
    async fn expired_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<Job>>;

    /// Ends the lease of the claim numbered `attempts` if it is still the
    /// job's claim, still expired at `now` and the job neither waiting nor
    /// terminal (one conditional update: a renewal racing it wins or loses
    /// whole). The lease and its holder are cleared; the job goes back to
    /// `waiting` (keeping its priority and place, passing over
    /// `passed_over`) or ends `cancelled`. `false` when it did not match.
    async fn end_lease(
        &self,
        job_id: Uuid,
        attempts: i64,
        now: Timestamp,
        end: LeaseEnd,
    ) -> Result<bool>;

    /// Moves a job that is not terminal to `cancelled` at `now`.
    async fn cancel_job(&self, job_id: Uuid, now: Timestamp) -> Result<CancelOutcome>;

    /// Merges a result into the job's result (replacing `status` whole) and,
    /// when it reports a state, moves the job by [`JobState::after_report`]
    /// in the same atomic step; answers what changed, as seen by that step.
    /// `None` when the job does not exist.
    async fn apply_result(
        &self,
        job_id: Uuid,
        patch: &ResultPatch,
        now: Timestamp,
    ) -> Result<Option<ResultChange>>;

    /// How many jobs the claim would hand out before this one on its queue
    /// (0 = next); `None` when the job is unknown or not waiting.
    async fn job_position(&self, job_id: Uuid) -> Result<Option<u64>>;

    /// A queue's jobs in any state, newest first, at most `limit`.
    async fn queue_jobs(&self, queue: &str, limit: usize) -> Result<Vec<JobSummary>>;

    /// Claim waits (`started_at - created_at`, ms) of jobs claimed since
    /// `since`, newest first, at most `per_queue` per queue; all queues when
    /// `queues` is empty.
    async fn wait_times(
        &self,
        queues: &[String],
        since: Timestamp,
        per_queue: usize,
    ) -> Result<BTreeMap<String, Vec<i64>>>;

    /// How many jobs not yet finished each queue holds, by state
    /// (`queue -> state -> count`; terminal states are not counted).
    /// Served by an index of unfinished jobs, so the cost follows the
    /// queues' depth, not the number of jobs ever stored.
    async fn active_job_counts(&self) -> Result<BTreeMap<String, BTreeMap<String, u64>>>;

    /// Marks a job's attachments as uploaded, which makes it claimable.
    /// `false` when the job is unknown or declares no attachments.
    async fn complete_attachments(&self, job_id: Uuid) -> Result<bool>;

    /// Jobs matching the query, newest first, at most `limit + 1` (the extra
    /// one tells that another page exists).
    async fn search_jobs(&self, query: &SearchQuery) -> Result<Vec<JobSummary>>;
}

#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Stores a log fragment. A fragment number already stored for this job
    /// and log type is kept as it is, so a resend changes nothing. `false`
    /// when the job does not exist.
    async fn append_log(
        &self,
        job_id: Uuid,
        log_type: LogType,
        fragment: &LogFragment,
        now: Timestamp,
    ) -> Result<bool>;

    /// The job's fragments of one type numbered `start_fragment` or more,
    /// in fragment-number order.
    async fn read_logs(
        &self,
        job_id: Uuid,
        log_type: LogType,
        start_fragment: i64,
    ) -> Result<Vec<LogFragment>>;

    /// The last `max_bytes` of each phase's log of one type (phases in
    /// [`crate::logs::LOG_PHASES`] order, only those with text), each read
    /// newest fragment first and no further back than its tail needs, so
    /// memory stays within the tails whatever the logs' size.
    async fn read_log_tails(
        &self,
        job_id: Uuid,
        log_type: LogType,
        max_bytes: u64,
    ) -> Result<Vec<LogTail>>;

    /// Appends text to a legacy live-output buffer. `false` when the job
    /// does not exist.
    async fn append_live_output(
        &self,
        job_id: Uuid,
        stream: LegacyStream,
        text: &str,
        now: Timestamp,
    ) -> Result<bool>;

    /// Removes and returns, in one atomic step, everything appended to a
    /// legacy buffer since the last take; `None` when nothing is new.
    async fn take_live_output(&self, job_id: Uuid, stream: LegacyStream) -> Result<Option<String>>;
}

#[async_trait]
pub trait AgentStore: Send + Sync + 'static {
    /// Creates or updates an agent: writes [`AgentUpdate::changes`] on its
    /// current fields (the given fields, removals, and the `*_changed_*`
    /// stamps) and `updated_at`, appends the log lines keeping the last 100.
    async fn upsert_agent(&self, name: &str, update: &AgentUpdate, now: Timestamp) -> Result<()>;

    /// The same for an existing agent only: `false`, and nothing written,
    /// for an unknown one.
    async fn update_agent(&self, name: &str, update: &AgentUpdate, now: Timestamp) -> Result<bool>;

    async fn get_agent(&self, name: &str) -> Result<Option<Agent>>;

    /// Every agent, by name.
    async fn list_agents(&self) -> Result<Vec<Agent>>;

    /// Records a provision outcome on an agent (last 100 kept, each with
    /// the agent's current `submitted_by` as its `client_id`) and moves its
    /// pass/fail streak. `false`, and nothing written, for an unknown agent.
    async fn record_provision(
        &self,
        name: &str,
        entry: &ProvisionEntry,
        now: Timestamp,
    ) -> Result<bool>;

    /// Links an existing agent to the job it claimed: its `job_id`, and the
    /// job's submitter as its `submitted_by`. An unknown agent: nothing.
    async fn set_agent_job(
        &self,
        name: &str,
        job_id: Uuid,
        submitted_by: Option<&str>,
        now: Timestamp,
    ) -> Result<()>;

    /// Unlinks the agent from `job_id` (empty `job_id`, no `submitted_by`),
    /// only while it is still linked to that job.
    async fn clear_agent_job(&self, name: &str, job_id: Uuid, now: Timestamp) -> Result<()>;

    /// Records that an existing agent was heard from at `now` (its
    /// `last_heard` never moves back); an unknown agent: nothing.
    async fn mark_heard(&self, name: &str, now: Timestamp) -> Result<()>;

    /// The owner of an agent name, the name matched by
    /// [`agent_name_key`](crate::agents::agent_name_key); `None` when no
    /// client owns it. Owners are kept apart from agent records: a name
    /// may be owned before its agent registers, and stays owned when its
    /// record expires.
    async fn agent_owner(&self, name: &str) -> Result<Option<AgentOwner>>;

    /// Makes `client_id` the owner of `name` unless a client owns it
    /// already (by [`agent_name_key`](crate::agents::agent_name_key)), in
    /// one atomic step: of two first claims at once, one wins and both
    /// are answered that owner.
    async fn bind_agent_name(
        &self,
        name: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<AgentOwner>;

    /// An admin's reassignment: `client_id` becomes the owner of `name`
    /// whoever held it, or (`None`) the name is released, free for the next
    /// agent client that uses it. Answers the previous owner.
    async fn set_agent_owner(
        &self,
        name: &str,
        client_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<AgentOwner>>;
}

#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Upserts advertised queues with their descriptions.
    async fn upsert_queues(&self, queues: &BTreeMap<String, String>, now: Timestamp) -> Result<()>;

    /// Every advertised queue with its description.
    async fn list_queues(&self) -> Result<BTreeMap<String, String>>;

    /// Replaces the image map of each named queue.
    async fn set_images(
        &self,
        images: &BTreeMap<String, BTreeMap<String, String>>,
        now: Timestamp,
    ) -> Result<()>;

    /// The images of a queue; empty when none are known.
    async fn get_images(&self, queue: &str) -> Result<BTreeMap<String, String>>;
}

#[async_trait]
pub trait ClientStore: Send + Sync + 'static {
    async fn get_client(&self, client_id: &str) -> Result<Option<Client>>;

    /// Every client, by `client_id`.
    async fn list_clients(&self) -> Result<Vec<Client>>;

    /// Creates or replaces a client whole; `true` when it was created.
    async fn put_client(&self, client: &Client) -> Result<bool>;

    /// Deletes a client, its refresh tokens and its secrets, releases the
    /// agent names it owns, and removes it from the owners of restricted
    /// queues (a queue keeps its restriction even when this leaves it
    /// without owners: deleting a client must not open a queue to
    /// everybody). `false` when it did not exist.
    async fn delete_client(&self, client_id: &str) -> Result<bool>;

    /// Every restricted queue with its owners, by queue name.
    async fn list_restricted_queues(&self) -> Result<Vec<RestrictedQueue>>;

    async fn get_restricted_queue(&self, queue: &str) -> Result<Option<RestrictedQueue>>;

    /// Restricts a queue (if it is not yet) and makes the client an owner,
    /// adding the queue to the client's `allowed_queues`. `false`, and
    /// nothing written, when the client does not exist.
    async fn add_queue_owner(&self, queue: &str, client_id: &str) -> Result<bool>;

    /// Removes an owner and the queue from that client's `allowed_queues`;
    /// the restriction ends when its last owner is removed.
    async fn remove_queue_owner(&self, queue: &str, client_id: &str) -> Result<OwnerRemoval>;
}

#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()>;

    /// The client of a refresh token (by its hash) that is neither revoked
    /// nor expired at `now`; records the use. `None` otherwise.
    async fn use_refresh_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<String>>;

    /// Revokes a refresh token; `false` when unknown or already revoked.
    async fn revoke_refresh_token(&self, token_hash: &str) -> Result<bool>;

    /// Revokes every refresh token of a client (its secret changed);
    /// returns how many were still live.
    async fn revoke_client_tokens(&self, client_id: &str) -> Result<u64>;
}

#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Creates or replaces a secret.
    async fn put_secret(&self, secret: &StoredSecret) -> Result<()>;

    /// `false` when the secret did not exist.
    async fn delete_secret(&self, client_id: &str, path: &str) -> Result<bool>;

    /// Those of `paths` that the client has and that have not expired at `now`.
    async fn existing_secrets(
        &self,
        client_id: &str,
        paths: &[String],
        now: Timestamp,
    ) -> Result<Vec<String>>;

    /// The client's secrets among `paths` that have not expired at `now`.
    /// Ephemeral ones are deleted as they are read, atomically, so exactly
    /// one reader ever gets each.
    async fn take_secrets(
        &self,
        client_id: &str,
        paths: &[String],
        now: Timestamp,
    ) -> Result<Vec<StoredSecret>>;
}

/// Job statistics: one counter of submitted jobs per (UTC day, queue,
/// submitter). [`JobStore::insert_job`] and [`JobStore::insert_jobs`] add
/// to them as they store jobs, atomically (two submissions at once are
/// both counted); retention never deletes them.
#[async_trait]
pub trait StatisticsStore: Send + Sync + 'static {
    /// The counters that [`StatisticsQuery::admits`], summed per day and
    /// per group of `query.group_by` (`key`: the queue, or the submitter
    /// with `None` for anonymous jobs). Days and groups without jobs are
    /// absent; any order.
    async fn daily_job_counts(&self, query: &StatisticsQuery) -> Result<Vec<DailyCount>>;
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends to a job's events, in order, keeping at most
    /// [`crate::events::MAX_JOB_EVENTS`] (the later ones are dropped).
    async fn record_events(&self, job_id: Uuid, events: &[JobEvent], now: Timestamp) -> Result<()>;

    /// A job's events in the order they were recorded.
    async fn job_events(&self, job_id: Uuid) -> Result<Vec<JobEvent>>;
}

#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// Deletes jobs created before `cutoff` (with their results and events), queues
    /// not advertised since then, and refresh tokens and secrets that
    /// expired before it; returns the ids of the deleted jobs so their
    /// blobs can be removed too. Job statistics stay.
    async fn purge_expired(&self, cutoff: Timestamp) -> Result<Vec<Uuid>>;
}

/// Every aggregate's store: what the use-case layer holds.
pub trait Store:
    JobStore
    + LogStore
    + AgentStore
    + QueueStore
    + ClientStore
    + TokenStore
    + SecretStore
    + EventStore
    + StatisticsStore
    + RetentionStore
{
}
impl<T> Store for T where
    T: JobStore
        + LogStore
        + AgentStore
        + QueueStore
        + ClientStore
        + TokenStore
        + SecretStore
        + EventStore
        + StatisticsStore
        + RetentionStore
{
}

/// The store traits, for code that holds an `Arc<dyn Store>` and calls it
/// directly (operator tools, tests): `use testflinger_shared::store::prelude::*;`.
pub mod prelude {
    pub use super::{
        AgentStore, ClientStore, EventStore, JobStore, LogStore, QueueStore, RetentionStore,
        SecretStore, StatisticsStore, Store, TokenStore,
    };
}
