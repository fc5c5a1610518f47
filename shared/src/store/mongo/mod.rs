//! The production document store: MongoDB through the official driver.
//!
//! Collections and fields follow upstream Testflinger (`jobs` with
//! `job_data`, `result_data.job_state`, `job_priority`, `created_at`; `queues`;
//! `started_at`), so an operator who knows upstream's database finds
//! their way. Indexes are created by [`MongoStore::setup`], an explicit,
//! idempotent deploy step, never on a cold start.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{self, doc, Binary, Bson, DateTime, Document};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    AgentStore, CancelOutcome, ClaimRequest, ClientStore, EventStore, JobStore, LeaseEnd, LogStore,
    QueueStore, RetentionStore, SecretStore, StatisticsStore, TokenStore,
};
use crate::agents::{agent_name_key, Agent, AgentOwner, AgentUpdate, ProvisionEntry};
use crate::clients::{Client as ApiClient, OwnerRemoval, RefreshToken, RestrictedQueue};
use crate::config::MongoConfig;
use crate::events::{JobEvent, ResultChange, MAX_JOB_EVENTS};
use crate::job::{AttachmentsStatus, Job, JobState, NewJob, ATTACHMENTS_STATUS};
use crate::logs::{LegacyStream, LogFragment, LogTail, LogType};
use crate::queues::{JobSummary, SearchQuery};
use crate::results::{self, ResultPatch};
use crate::role::Role;
use crate::secrets::StoredSecret;
use crate::statistics::{CounterKey, DailyCount, Day, GroupBy, StatisticsQuery};
use crate::{Error, Result, Timestamp};

const JOBS: &str = "jobs";
const QUEUES: &str = "queues";
const LOGS: &str = "logs";
const JOB_EVENTS: &str = "job_events";
const AGENTS: &str = "agents";
/// Which client owns each agent name: `_id` is the name folded to lower
/// case (`agents::agent_name_key`), with `name`, `client_id`, `bound_at`.
const AGENT_OWNERS: &str = "agent_owners";
/// Upstream's collection of clients and their permissions.
const CLIENTS: &str = "client_permissions";
const REFRESH_TOKENS: &str = "refresh_tokens";
const RESTRICTED_QUEUES: &str = "restricted_queues";
const SECRETS: &str = "secrets";
/// Upstream's legacy live-output collection.
const LIVE_OUTPUT: &str = "output";
/// Counters of submitted jobs, as upstream names its statistics collection.
const JOB_STATISTICS: &str = "job_statistics";
/// The compound index that serves the claim's filter and sort.
pub const CLAIM_INDEX: &str = "claim_order";
pub struct MongoStore {
    db: Database,
}
impl MongoStore {
    /// Connects and checks that the server answers, so that a wrong address
    /// fails at start-up with a message naming the host (never the password).
    pub async fn connect(config: &MongoConfig) -> Result<Self> {
        let mut options = ClientOptions::parse(&config.uri).await.map_err(|e| {
            Error::backend("reading the MongoDB URI", config.redact(&e.to_string()))
        })?;
        options.app_name = Some("testflinger-rs".into());
        options.max_pool_size = Some(config.max_pool_size);
        options.server_selection_timeout = Some(config.connect_timeout);
        options.connect_timeout = Some(config.connect_timeout);
        if config.command_metrics {
            options.command_event_handler = Some(mongodb::event::EventHandler::callback(
                |event: mongodb::event::command::CommandEvent| {
                    use mongodb::event::command::CommandEvent;
                    let (name, duration) = match &event {
                        CommandEvent::Succeeded(e) => (&e.command_name, e.duration),
                        CommandEvent::Failed(e) => (&e.command_name, e.duration),
                        _ => return,
                    };
                    crate::metrics::observe(
                        crate::metrics::STORE_DURATION,
                        &[("backend", "mongodb"), ("operation", name)],
                        duration.as_secs_f64(),
                    );
                },
            ));
        }
        let hosts = options
            .hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let client = Client::with_options(options).map_err(|e| {
            Error::backend(
                "configuring the MongoDB client",
                config.redact(&e.to_string()),
            )
        })?;
        let db = client.database(&config.database);
        db.run_command(doc! {"ping": 1}).await.map_err(|e| {
            Error::backend(
                "connecting to MongoDB",
                format!(
                    "cannot reach MongoDB at {hosts}: {}",
                    config.redact(&e.to_string())
                ),
            )
        })?;
        Ok(MongoStore { db })
    }

    /// Creates every index (idempotent): the claim index, unique keys and
    /// the TTL indexes that implement retention.
    pub async fn setup(&self, retention_days: u32) -> Result<()> {
        let ttl = Duration::from_secs(u64::from(retention_days) * 86_400);
        let index = |keys: Document, name: &str, unique: bool, expire: Option<Duration>| {
            IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(name.to_owned())
                        .unique(unique.then_some(true))
                        .expire_after(expire)
                        .build(),
                )
                .build()
        };
        let plan = [
            (
                JOBS,
                vec![
                    index(doc! {"job_id": 1}, "job_id", true, None),
                    index(
                        doc! {"result_data.job_state": 1, "job_data.job_queue": 1, "job_priority": -1, "created_at": 1, "_id": 1},
                        CLAIM_INDEX,
                        false,
                        None,
                    ),
                    index(doc! {"created_at": 1}, "retention", false, Some(ttl)),
                    index(
                        doc! {"job_data.job_queue": 1, "created_at": -1},
                        "by_queue",
                        false,
                        None,
                    ),
                    index(doc! {"started_at": -1}, "by_start", false, None),
                    index(doc! {"lease_until": 1}, "lease", false, None),
                    index(
                        doc! {"job_data.tags": 1, "created_at": -1},
                        "by_tag",
                        false,
                        None,
                    ),
                    // The dashboard's search by submitter.
                    index(
                        doc! {"job_data.client_id": 1, "created_at": -1},
                        "by_submitter",
                        false,
                        None,
                    ),
                ],
            ),
            (
                AGENTS,
                vec![
                    index(doc! {"name": 1}, "name", true, None),
                    index(doc! {"updated_at": 1}, "retention", false, Some(ttl)),
                ],
            ),
            (
                QUEUES,
                vec![
                    index(doc! {"name": 1}, "name", true, None),
                    index(doc! {"updated_at": 1}, "retention", false, Some(ttl)),
                ],
            ),
            (
                LOGS,
                vec![
                    index(
                        doc! {"job_id": 1, "log_type": 1, "fragment_number": 1},
                        "fragment",
                        true,
                        None,
                    ),
                    index(doc! {"updated_at": 1}, "retention", false, Some(ttl)),
                ],
            ),
            (
                LIVE_OUTPUT,
                vec![
                    index(doc! {"job_id": 1, "stream": 1}, "buffer", true, None),
                    index(doc! {"updated_at": 1}, "retention", false, Some(ttl)),
                ],
            ),
            (
                JOB_EVENTS,
                vec![
                    index(doc! {"job_id": 1}, "job_id", true, None),
                    index(doc! {"created_at": 1}, "retention", false, Some(ttl)),
                ],
            ),
            (
                CLIENTS,
                vec![index(doc! {"client_id": 1}, "client_id", true, None)],
            ),
            // Unique by `_id` (the folded name); deleting a client releases
            // its names. No TTL: a name stays owned after its agent expires.
            (
                AGENT_OWNERS,
                vec![index(doc! {"client_id": 1}, "by_client", false, None)],
            ),
            // Tokens and secrets go as soon as they expire (one without
            // `expires_at` never does).
            (
                REFRESH_TOKENS,
                vec![
                    index(doc! {"token_hash": 1}, "token_hash", true, None),
                    index(doc! {"client_id": 1}, "by_client", false, None),
                    index(
                        doc! {"expires_at": 1},
                        "expiry",
                        false,
                        Some(Duration::ZERO),
                    ),
                ],
            ),
            (
                RESTRICTED_QUEUES,
                vec![
                    index(doc! {"queue_name": 1}, "queue_name", true, None),
                    index(doc! {"owners": 1}, "by_owner", false, None),
                ],
            ),
            (
                SECRETS,
                vec![
                    index(doc! {"client_id": 1, "path": 1}, "secret", true, None),
                    index(
                        doc! {"expires_at": 1},
                        "expiry",
                        false,
                        Some(Duration::ZERO),
                    ),
                ],
            ),
            // One counter per day, queue and submitter; its range queries
            // seek on `day`. No TTL: statistics outlive the jobs.
            (
                JOB_STATISTICS,
                vec![index(
                    doc! {"day": 1, "queue": 1, "submitted_by": 1},
                    "counter",
                    true,
                    None,
                )],
            ),
        ];
        for (collection, indexes) in plan {
            self.db
                .collection::<Document>(collection)
                .create_indexes(indexes)
                .await
                .map_err(|e| Error::backend("creating indexes", format!("{collection}: {e}")))?;
        }
        Ok(())
    }

    fn jobs(&self) -> Collection<Document> {
        self.db.collection(JOBS)
    }

    fn queues(&self) -> Collection<Document> {
        self.db.collection(QUEUES)
    }

    fn clients(&self) -> Collection<Document> {
        self.db.collection(CLIENTS)
    }

    fn agent_owners(&self) -> Collection<Document> {
        self.db.collection(AGENT_OWNERS)
    }

    fn restricted_queues(&self) -> Collection<Document> {
        self.db.collection(RESTRICTED_QUEUES)
    }

    fn secrets(&self) -> Collection<Document> {
        self.db.collection(SECRETS)
    }

    async fn job_exists(&self, job_id: &str) -> Result<bool> {
        let found = self
            .jobs()
            .find_one(doc! {"job_id": job_id})
            .projection(doc! {"_id": 1})
            .await
            .map_err(|e| Error::backend("looking up a job", e))?;
        Ok(found.is_some())
    }
}
/// MongoDB's largest document.
const MAX_DOCUMENT_BYTES: u64 = 16 * 1024 * 1024;
/// A write refused for its size is the client's doing (413), not a broken
/// backend; everything else is a backend failure.
fn write_error(context: &'static str, error: mongodb::error::Error) -> Error {
    let text = error.to_string();
    if text.contains("too large")
        || text.contains("must be within")
        || text.contains("BSONObjectTooLarge")
    {
        Error::TooLarge {
            what: "the stored document",
            limit: MAX_DOCUMENT_BYTES,
        }
    } else {
        Error::backend(context, error)
    }
}
/// Refuses a document that MongoDB could not store (413), before writing.
fn check_size(document: &Document) -> Result<()> {
    let mut bytes = Vec::new();
    document
        .to_writer(&mut bytes)
        .map_err(|e| Error::backend("encoding a document", e))?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES - 64 * 1024 {
        return Err(Error::TooLarge {
            what: "the stored document",
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    Ok(())
}
/// Runs a `find` and collects every document it returns.
async fn collect_all(
    find: impl std::future::IntoFuture<Output = mongodb::error::Result<mongodb::Cursor<Document>>>,
    context: &'static str,
) -> Result<Vec<Document>> {
    find.await
        .map_err(|e| Error::backend(context, e))?
        .try_collect()
        .await
        .map_err(|e| Error::backend(context, e))
}
fn date(t: Timestamp) -> DateTime {
    DateTime::from_millis(t.millis())
}
fn to_document(map: &Map<String, Value>, what: &'static str) -> Result<Document> {
    bson::to_document(map)
        .map_err(|e| Error::BadRequest(format!("The {what} cannot be stored: {e}.")))
}
fn to_json_map(document: Document) -> Map<String, Value> {
    match Bson::Document(document).into_relaxed_extjson() {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
fn int(document: &Document, key: &str) -> i64 {
    match document.get(key) {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Double(n)) => *n as i64,
        _ => 0,
    }
}
/// Whether a write was refused by a unique index.
fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        _ => false,
    }
}

mod jobs;
pub use jobs::ClaimQuery;
mod agents;
mod clients;
mod events;
mod logs;
mod queues;
mod retention;
mod secrets;
mod statistics;
mod tokens;
