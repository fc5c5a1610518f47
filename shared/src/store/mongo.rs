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

use super::{CancelOutcome, ClaimRequest, Store};
use crate::agents::{self, Agent, AgentUpdate, ProvisionEntry};
use crate::auth::Role;
use crate::clients::{Client as ApiClient, OwnerRemoval, RefreshToken, RestrictedQueue};
use crate::config::MongoConfig;
use crate::job::{self, AttachmentsStatus, Job, NewJob, ATTACHMENTS_STATUS};
use crate::logs::{LegacyStream, LogFragment, LogType};
use crate::queues::{JobSummary, SearchQuery};
use crate::results::{self, ResultPatch};
use crate::secrets::StoredSecret;
use crate::{Error, Result, Timestamp};

const JOBS: &str = "jobs";
const QUEUES: &str = "queues";
const LOGS: &str = "logs";
const AGENTS: &str = "agents";
/// Upstream's collection of clients and their permissions.
const CLIENTS: &str = "client_permissions";
const REFRESH_TOKENS: &str = "refresh_tokens";
const RESTRICTED_QUEUES: &str = "restricted_queues";
const SECRETS: &str = "secrets";

/// Compare-and-set attempts of a provision streak under contention.
const PROVISION_ATTEMPTS: usize = 64;
/// Upstream's legacy live-output collection.
const LIVE_OUTPUT: &str = "output";

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
                    index(
                        doc! {"job_data.tags": 1, "created_at": -1},
                        "by_tag",
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
                CLIENTS,
                vec![index(doc! {"client_id": 1}, "client_id", true, None)],
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

fn job_from_document(mut document: Document) -> Result<Job> {
    let corrupt =
        |what: &str| Error::backend("reading a job", format!("job document without {what}"));
    let job_id = document
        .get_str("job_id")
        .ok()
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| corrupt("a job_id"))?;
    let created_at = document
        .get_datetime("created_at")
        .map_err(|_| corrupt("created_at"))?
        .timestamp_millis();
    let started_at = document
        .get_datetime("started_at")
        .ok()
        .map(|d| Timestamp::from_millis(d.timestamp_millis()));
    let job_priority = int(&document, "job_priority");
    let mut job_data = match document.remove("job_data") {
        Some(Bson::Document(d)) => d,
        _ => return Err(corrupt("job_data")),
    };
    let attachments_status = match job_data.remove(ATTACHMENTS_STATUS) {
        Some(Bson::String(s)) => AttachmentsStatus::parse(&s),
        _ => None,
    };
    let mut result_data = match document.remove("result_data") {
        Some(Bson::Document(d)) => d,
        _ => Document::new(),
    };
    let state = match result_data.remove("job_state") {
        Some(Bson::String(s)) => s,
        _ => return Err(corrupt("result_data.job_state")),
    };
    let job_data = to_json_map(job_data);
    Ok(Job {
        job_id,
        job_queue: job_data
            .get("job_queue")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        job_priority,
        state,
        created_at: Timestamp::from_millis(created_at),
        started_at,
        attachments_status,
        job_data,
        result_data: to_json_map(result_data),
    })
}

/// A new job's document, in state `waiting`; refused (413) when MongoDB
/// could not store it.
fn job_document(job: &NewJob) -> Result<Document> {
    let mut job_data = to_document(&job.job_data, "job")?;
    if let Some(status) = job.attachments_status {
        job_data.insert(ATTACHMENTS_STATUS, status.as_str());
    }
    let document = doc! {
        "job_id": job.job_id.to_string(),
        "created_at": date(job.created_at),
        "updated_at": date(job.created_at),
        "job_priority": job.job_priority,
        "job_data": job_data,
        "result_data": {"job_state": job::WAITING},
    };
    check_size(&document)?;
    Ok(document)
}

/// The claim as one `findOneAndUpdate`: exposed so that benchmarks can time
/// the very same query through the driver alone.
pub struct ClaimQuery {
    pub filter: Document,
    pub update: Document,
    pub sort: Document,
}

impl ClaimQuery {
    pub fn new(request: &ClaimRequest, now: Timestamp) -> Self {
        let mut filter = doc! {
            "result_data.job_state": job::WAITING,
            "job_data.job_queue": {"$in": &request.queues},
            format!("job_data.{ATTACHMENTS_STATUS}"): {"$ne": AttachmentsStatus::Waiting.as_str()},
        };
        if let Some(agent) = &request.agent_name {
            filter.insert("job_data.exclude_agents", doc! {"$ne": agent});
        }
        ClaimQuery {
            filter,
            update: doc! {"$set": {
                "result_data.job_state": job::RUNNING,
                "started_at": date(now),
                "updated_at": date(now),
            }},
            // `_id` (an ObjectId, increasing within a process) breaks ties
            // between jobs created in the same millisecond.
            sort: doc! {"job_priority": -1, "created_at": 1, "_id": 1},
        }
    }
}

/// Reads an agent document: upstream keeps the agent's fields at the top.
fn agent_from_document(mut document: Document) -> Agent {
    document.remove("_id");
    let name = document.get_str("name").unwrap_or_default().to_owned();
    document.remove("name");
    let updated_at = document
        .get_datetime("updated_at")
        .map(|d| d.timestamp_millis())
        .unwrap_or(0);
    document.remove("updated_at");
    let strings = |value: Option<Bson>| -> Vec<Bson> {
        match value {
            Some(Bson::Array(items)) => items,
            _ => Vec::new(),
        }
    };
    let log = strings(document.remove("log"))
        .into_iter()
        .filter_map(|b| b.as_str().map(str::to_owned))
        .collect();
    let provision_log = strings(document.remove("provision_log"))
        .into_iter()
        .map(Bson::into_relaxed_extjson)
        .collect();
    let streak = match (
        document.remove("provision_streak_type"),
        document.remove("provision_streak_count"),
    ) {
        (Some(Bson::String(kind)), Some(count)) => {
            let count = match count {
                Bson::Int64(n) => n,
                Bson::Int32(n) => i64::from(n),
                _ => 0,
            };
            Some((kind, count))
        }
        _ => None,
    };
    Agent {
        name,
        fields: to_json_map(document),
        log,
        updated_at: Timestamp::from_millis(updated_at),
        provision_streak: streak,
        provision_log,
    }
}

fn summary_from_document(document: Document) -> Result<JobSummary> {
    Ok(JobSummary::of(&job_from_document(document)?))
}

fn terminal_states() -> Vec<&'static str> {
    job::TERMINAL_STATES.to_vec()
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

fn client_document(client: &ApiClient) -> Document {
    let limits = |map: &BTreeMap<String, i64>| -> Document {
        map.iter()
            .map(|(queue, limit)| (queue.clone(), Bson::Int64(*limit)))
            .collect()
    };
    doc! {
        "client_id": &client.client_id,
        "client_secret_hash": &client.secret_hash,
        "role": client.role.as_str(),
        "max_priority": limits(&client.max_priority),
        "allowed_queues": &client.allowed_queues,
        "max_reservation_time": limits(&client.max_reservation_time),
    }
}

fn client_from_document(document: Document) -> Result<ApiClient> {
    let corrupt = |what: &str| {
        Error::backend(
            "reading a client",
            format!("client document without {what}"),
        )
    };
    let limits = |key: &str| -> BTreeMap<String, i64> {
        document
            .get_document(key)
            .map(|map| {
                map.keys()
                    .map(|queue| (queue.clone(), int(map, queue)))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ApiClient {
        client_id: document
            .get_str("client_id")
            .map_err(|_| corrupt("a client_id"))?
            .to_owned(),
        // Upstream's OIDC clients have no secret (they cannot log in with
        // one), and a client without a role is a contributor there.
        secret_hash: document
            .get_str("client_secret_hash")
            .unwrap_or_default()
            .to_owned(),
        role: match document.get_str("role") {
            Err(_) => Role::Contributor,
            Ok(role) => Role::parse(role).ok_or_else(|| corrupt("a known role"))?,
        },
        max_priority: limits("max_priority"),
        allowed_queues: document
            .get_array("allowed_queues")
            .map(|queues| {
                queues
                    .iter()
                    .filter_map(|q| q.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        max_reservation_time: limits("max_reservation_time"),
    })
}

/// A restriction; its owners by client id.
fn restriction_from_document(document: &Document) -> RestrictedQueue {
    let mut owners: Vec<String> = document
        .get_array("owners")
        .map(|owners| {
            owners
                .iter()
                .filter_map(|o| o.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    owners.sort_unstable();
    owners.dedup();
    RestrictedQueue {
        queue: document
            .get_str("queue_name")
            .unwrap_or_default()
            .to_owned(),
        owners,
    }
}

/// The client's secrets among `paths` that have not expired at `now`.
fn live_secrets(client_id: &str, paths: &[String], now: Timestamp) -> Document {
    doc! {
        "client_id": client_id,
        "path": {"$in": paths},
        "$or": [{"expires_at": Bson::Null}, {"expires_at": {"$gt": date(now)}}],
    }
}

fn secret_from_document(document: &Document) -> Result<StoredSecret> {
    let corrupt = |what: &str| {
        Error::backend(
            "reading a secret",
            format!("secret document without {what}"),
        )
    };
    let sealed = match document.get("value") {
        Some(Bson::Binary(binary)) => binary.bytes.clone(),
        _ => return Err(corrupt("a binary value")),
    };
    let millis = |key: &str| {
        document
            .get_datetime(key)
            .ok()
            .map(|d| d.timestamp_millis())
    };
    Ok(StoredSecret {
        client_id: document
            .get_str("client_id")
            .map_err(|_| corrupt("a client_id"))?
            .to_owned(),
        path: document
            .get_str("path")
            .map_err(|_| corrupt("a path"))?
            .to_owned(),
        sealed,
        expires_at: millis("expires_at").map(Timestamp::from_millis),
        ephemeral: document.get_bool("ephemeral").unwrap_or(false),
        updated_at: Timestamp::from_millis(millis("updated_at").unwrap_or(0)),
    })
}

/// The paths in the order given, each once.
fn distinct(paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    for path in paths {
        if !out.contains(path) {
            out.push(path.clone());
        }
    }
    out
}

#[async_trait]
impl Store for MongoStore {
    async fn insert_job(&self, job: &NewJob) -> Result<()> {
        self.jobs()
            .insert_one(job_document(job)?)
            .await
            .map_err(|e| write_error("storing a job", e))?;
        Ok(())
    }

    async fn insert_jobs(&self, jobs: &[NewJob]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let documents = jobs.iter().map(job_document).collect::<Result<Vec<_>>>()?;
        // Ordered: stored in the slice's order, and the driver's `_id`s
        // (which break ties in the claim's sort) increase along it.
        self.jobs()
            .insert_many(documents)
            .ordered(true)
            .await
            .map_err(|e| write_error("storing jobs", e))?;
        Ok(())
    }

    async fn get_job(&self, job_id: Uuid) -> Result<Option<Job>> {
        self.jobs()
            .find_one(doc! {"job_id": job_id.to_string()})
            .await
            .map_err(|e| Error::backend("reading a job", e))?
            .map(job_from_document)
            .transpose()
    }

    async fn claim_job(&self, request: &ClaimRequest, now: Timestamp) -> Result<Option<Job>> {
        if request.queues.is_empty() {
            return Ok(None);
        }
        let query = ClaimQuery::new(request, now);
        let claimed = self
            .jobs()
            .find_one_and_update(query.filter, query.update)
            .sort(query.sort)
            .hint(mongodb::options::Hint::Name(CLAIM_INDEX.into()))
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| Error::backend("claiming a job", e))?;
        // One write: the wait is `started_at - created_at` of the job itself.
        claimed.map(job_from_document).transpose()
    }

    async fn cancel_job(&self, job_id: Uuid) -> Result<CancelOutcome> {
        let id = job_id.to_string();
        let changed = self
            .jobs()
            .update_one(
                doc! {"job_id": &id, "result_data.job_state": {"$nin": terminal_states()}},
                doc! {"$set": {"result_data.job_state": job::CANCELLED, "updated_at": date(Timestamp::now())}},
            )
            .await
            .map_err(|e| Error::backend("cancelling a job", e))?;
        if changed.matched_count == 1 {
            return Ok(CancelOutcome::Cancelled);
        }
        let exists = self
            .jobs()
            .count_documents(doc! {"job_id": &id})
            .await
            .map_err(|e| Error::backend("cancelling a job", e))?;
        Ok(if exists > 0 {
            CancelOutcome::AlreadyFinished
        } else {
            CancelOutcome::NotFound
        })
    }

    async fn apply_result(
        &self,
        job_id: Uuid,
        patch: &ResultPatch,
        now: Timestamp,
    ) -> Result<bool> {
        let id = job_id.to_string();
        let mut set = Document::new();
        for (key, value) in &patch.fields {
            let value = bson::to_bson(value).map_err(|e| {
                Error::BadRequest(format!("The result field {key} cannot be stored: {e}."))
            })?;
            set.insert(format!("result_data.{key}"), value);
        }
        set.insert("updated_at", date(now));
        check_size(&set)?;
        // The state moves only when the job is not terminal (one atomic
        // update); otherwise the report is only recorded, as the domain's
        // `next_state` says.
        if let Some(reported) = patch
            .job_state
            .as_deref()
            .filter(|s| results::is_reportable(s))
        {
            let mut moving = set.clone();
            moving.insert("result_data.job_state", reported);
            let moved = self
                .jobs()
                .update_one(
                    doc! {"job_id": &id, "result_data.job_state": {"$nin": terminal_states()}},
                    doc! {
                        "$set": moving,
                        "$unset": {format!("result_data.{}", results::REPORTED_STATE_KEY): ""},
                    },
                )
                .await
                .map_err(|e| write_error("storing a result", e))?;
            if moved.matched_count == 1 {
                return Ok(true);
            }
        }
        if let Some(reported) = &patch.job_state {
            set.insert(
                format!("result_data.{}", results::REPORTED_STATE_KEY),
                reported.as_str(),
            );
        }
        let recorded = self
            .jobs()
            .update_one(doc! {"job_id": &id}, doc! {"$set": set})
            .await
            .map_err(|e| write_error("storing a result", e))?;
        Ok(recorded.matched_count == 1)
    }

    async fn upsert_queues(&self, queues: &BTreeMap<String, String>, now: Timestamp) -> Result<()> {
        for (name, description) in queues {
            self.queues()
                .update_one(
                    doc! {"name": name},
                    doc! {"$set": {"description": description, "updated_at": date(now)}},
                )
                .upsert(true)
                .await
                .map_err(|e| Error::backend("storing queues", e))?;
        }
        Ok(())
    }

    async fn list_queues(&self) -> Result<BTreeMap<String, String>> {
        let documents = collect_all(
            self.queues().find(doc! {"description": {"$exists": true}}),
            "reading queues",
        )
        .await?;
        Ok(documents
            .iter()
            .filter_map(|d| {
                Some((
                    d.get_str("name").ok()?.to_owned(),
                    d.get_str("description").ok()?.to_owned(),
                ))
            })
            .collect())
    }

    async fn set_images(
        &self,
        images: &BTreeMap<String, BTreeMap<String, String>>,
        _now: Timestamp,
    ) -> Result<()> {
        for (queue, map) in images {
            let map: Document = map
                .iter()
                .map(|(k, v)| (k.clone(), Bson::String(v.clone())))
                .collect();
            self.queues()
                .update_one(doc! {"name": queue}, doc! {"$set": {"images": map}})
                .upsert(true)
                .await
                .map_err(|e| Error::backend("storing images", e))?;
        }
        Ok(())
    }

    async fn get_images(&self, queue: &str) -> Result<BTreeMap<String, String>> {
        let document = self
            .queues()
            .find_one(doc! {"name": queue})
            .await
            .map_err(|e| Error::backend("reading images", e))?;
        Ok(document
            .as_ref()
            .and_then(|d| d.get_document("images").ok())
            .map(|images| {
                images
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn append_log(
        &self,
        job_id: Uuid,
        log_type: LogType,
        fragment: &LogFragment,
        now: Timestamp,
    ) -> Result<bool> {
        let id = job_id.to_string();
        if !self.job_exists(&id).await? {
            return Ok(false);
        }
        // An upsert that only inserts: a resent fragment number changes nothing.
        self.db
            .collection::<Document>(LOGS)
            .update_one(
                doc! {"job_id": &id, "log_type": log_type.as_str(), "fragment_number": fragment.fragment_number},
                doc! {"$setOnInsert": {
                    "phase": &fragment.phase,
                    "timestamp": date(fragment.timestamp),
                    "log_data": &fragment.log_data,
                    "updated_at": date(now),
                }},
            )
            .upsert(true)
            .await
            .map_err(|e| Error::backend("storing a log fragment", e))?;
        Ok(true)
    }

    async fn read_logs(
        &self,
        job_id: Uuid,
        log_type: LogType,
        start_fragment: i64,
    ) -> Result<Vec<LogFragment>> {
        let documents = collect_all(
            self.db
                .collection::<Document>(LOGS)
                .find(doc! {
                    "job_id": job_id.to_string(),
                    "log_type": log_type.as_str(),
                    "fragment_number": {"$gte": start_fragment},
                })
                .sort(doc! {"fragment_number": 1}),
            "reading logs",
        )
        .await?;
        Ok(documents
            .iter()
            .map(|d| LogFragment {
                fragment_number: int(d, "fragment_number"),
                timestamp: Timestamp::from_millis(
                    d.get_datetime("timestamp")
                        .map(|t| t.timestamp_millis())
                        .unwrap_or(0),
                ),
                phase: d.get_str("phase").unwrap_or_default().to_owned(),
                log_data: d.get_str("log_data").unwrap_or_default().to_owned(),
            })
            .collect())
    }

    async fn append_live_output(
        &self,
        job_id: Uuid,
        stream: LegacyStream,
        text: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let id = job_id.to_string();
        if !self.job_exists(&id).await? {
            return Ok(false);
        }
        self.db
            .collection::<Document>(LIVE_OUTPUT)
            .update_one(
                doc! {"job_id": &id, "stream": stream.as_str()},
                doc! {"$push": {"chunks": text}, "$set": {"updated_at": date(now)}},
            )
            .upsert(true)
            .await
            .map_err(|e| Error::backend("appending live output", e))?;
        Ok(true)
    }

    async fn take_live_output(&self, job_id: Uuid, stream: LegacyStream) -> Result<Option<String>> {
        let taken = self
            .db
            .collection::<Document>(LIVE_OUTPUT)
            .find_one_and_delete(doc! {"job_id": job_id.to_string(), "stream": stream.as_str()})
            .await
            .map_err(|e| Error::backend("reading live output", e))?;
        Ok(taken.and_then(|d| {
            let chunks = d.get_array("chunks").ok()?;
            let text: String = chunks.iter().filter_map(Bson::as_str).collect();
            (!text.is_empty()).then_some(text)
        }))
    }

    async fn upsert_agent(&self, name: &str, update: &AgentUpdate, now: Timestamp) -> Result<()> {
        let mut set = to_document(&update.fields, "agent")?;
        set.insert("updated_at", date(now));
        check_size(&set)?;
        let mut change = doc! {"$set": set};
        if !update.log.is_empty() {
            change.insert(
                "$push",
                doc! {"log": {"$each": &update.log, "$slice": -(agents::AGENT_LOG_KEEP as i64)}},
            );
        }
        self.db
            .collection::<Document>(AGENTS)
            .update_one(doc! {"name": name}, change)
            .upsert(true)
            .await
            .map_err(|e| Error::backend("storing an agent", e))?;
        Ok(())
    }

    async fn get_agent(&self, name: &str) -> Result<Option<Agent>> {
        let found = self
            .db
            .collection::<Document>(AGENTS)
            .find_one(doc! {"name": name})
            .await
            .map_err(|e| Error::backend("reading an agent", e))?;
        Ok(found.map(agent_from_document))
    }

    async fn list_agents(&self) -> Result<Vec<Agent>> {
        let documents = collect_all(
            self.db
                .collection::<Document>(AGENTS)
                .find(doc! {})
                .sort(doc! {"name": 1}),
            "reading agents",
        )
        .await?;
        Ok(documents.into_iter().map(agent_from_document).collect())
    }

    async fn record_provision(
        &self,
        name: &str,
        entry: &ProvisionEntry,
        now: Timestamp,
    ) -> Result<bool> {
        let stored = bson::to_bson(&entry.to_value(now))
            .map_err(|e| Error::backend("recording a provision", e))?;
        // The streak moves by compare-and-set on the streak it was computed
        // from, so concurrent posts for one agent each count once.
        for _ in 0..PROVISION_ATTEMPTS {
            let Some(agent) = self.get_agent(name).await? else {
                return Ok(false);
            };
            let current = agent
                .provision_streak
                .as_ref()
                .map(|(k, n)| (k.as_str(), *n));
            let (kind, count) = agents::next_streak(current, entry.exit_code);
            let filter = match &agent.provision_streak {
                Some((old_kind, old_count)) => doc! {
                    "name": name, "provision_streak_type": old_kind, "provision_streak_count": old_count,
                },
                None => doc! {"name": name, "provision_streak_type": {"$exists": false}},
            };
            let changed = self
                .db
                .collection::<Document>(AGENTS)
                .update_one(
                    filter,
                    doc! {
                        "$set": {"provision_streak_type": kind, "provision_streak_count": count},
                        "$push": {"provision_log": {"$each": [stored.clone()], "$slice": -(agents::PROVISION_LOG_KEEP as i64)}},
                    },
                )
                .await
                .map_err(|e| Error::backend("recording a provision", e))?;
            if changed.matched_count == 1 {
                return Ok(true);
            }
            tokio::task::yield_now().await;
        }
        Err(Error::backend(
            "recording a provision",
            format!("the agent {name} changed {PROVISION_ATTEMPTS} times while its streak was being updated"),
        ))
    }

    async fn job_position(&self, job_id: Uuid) -> Result<Option<u64>> {
        let Some(document) = self
            .jobs()
            .find_one(doc! {"job_id": job_id.to_string()})
            .await
            .map_err(|e| Error::backend("finding a job's position", e))?
        else {
            return Ok(None);
        };
        let object_id = document.get("_id").cloned().unwrap_or(Bson::Null);
        let job = job_from_document(document)?;
        if job.state != job::WAITING {
            return Ok(None);
        }
        let (priority, created) = (job.job_priority, date(job.created_at));
        let ahead = self
            .jobs()
            .count_documents(doc! {
                "result_data.job_state": job::WAITING,
                "job_data.job_queue": &job.job_queue,
                format!("job_data.{ATTACHMENTS_STATUS}"): {"$ne": AttachmentsStatus::Waiting.as_str()},
                "$or": [
                    {"job_priority": {"$gt": priority}},
                    {"job_priority": priority, "created_at": {"$lt": created}},
                    {"job_priority": priority, "created_at": created, "_id": {"$lt": object_id}},
                ],
            })
            .await
            .map_err(|e| Error::backend("finding a job's position", e))?;
        Ok(Some(ahead))
    }

    async fn queue_jobs(&self, queue: &str, limit: usize) -> Result<Vec<JobSummary>> {
        let documents = collect_all(
            self.jobs()
                .find(doc! {"job_data.job_queue": queue})
                .sort(doc! {"created_at": -1, "_id": -1})
                .limit(limit as i64),
            "listing a queue's jobs",
        )
        .await?;
        documents.into_iter().map(summary_from_document).collect()
    }

    async fn wait_times(
        &self,
        queues: &[String],
        since: Timestamp,
        per_queue: usize,
    ) -> Result<BTreeMap<String, Vec<i64>>> {
        let mut filter = doc! {"started_at": {"$gte": date(since)}};
        if !queues.is_empty() {
            filter.insert("job_data.job_queue", doc! {"$in": queues});
        }
        let documents = collect_all(
            self.jobs()
                .find(filter)
                .projection(doc! {"job_data.job_queue": 1, "created_at": 1, "started_at": 1})
                .sort(doc! {"started_at": -1}),
            "reading wait times",
        )
        .await?;
        let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for document in documents {
            let queue = document
                .get_document("job_data")
                .ok()
                .and_then(|d| d.get_str("job_queue").ok())
                .unwrap_or_default()
                .to_owned();
            let (Ok(created), Ok(started)) = (
                document.get_datetime("created_at"),
                document.get_datetime("started_at"),
            ) else {
                continue;
            };
            let waits = out.entry(queue).or_default();
            if waits.len() < per_queue {
                waits.push((started.timestamp_millis() - created.timestamp_millis()).max(0));
            }
        }
        Ok(out)
    }

    async fn complete_attachments(&self, job_id: Uuid) -> Result<bool> {
        let field = format!("job_data.{ATTACHMENTS_STATUS}");
        let changed = self
            .jobs()
            .update_one(
                doc! {"job_id": job_id.to_string(), &field: {"$exists": true}},
                doc! {"$set": {&field: AttachmentsStatus::Complete.as_str()}},
            )
            .await
            .map_err(|e| Error::backend("marking attachments uploaded", e))?;
        Ok(changed.matched_count == 1)
    }

    async fn search_jobs(&self, query: &SearchQuery) -> Result<Vec<JobSummary>> {
        let mut conditions: Vec<Document> = Vec::new();
        if !query.tags.is_empty() {
            let operator = if query.match_all { "$all" } else { "$in" };
            conditions.push(doc! {"job_data.tags": {operator: &query.tags}});
        }
        let mut states: Vec<Document> = Vec::new();
        if !query.states.is_empty() {
            states.push(doc! {"result_data.job_state": {"$in": &query.states}});
        }
        if query.active {
            states.push(doc! {"result_data.job_state": {"$nin": terminal_states()}});
        }
        if !states.is_empty() {
            conditions.push(doc! {"$or": states});
        }
        if let Some((created, id)) = query.before {
            conditions.push(doc! {"$or": [
                {"created_at": {"$lt": date(created)}},
                {"created_at": date(created), "job_id": {"$lt": id.to_string()}},
            ]});
        }
        let filter = if conditions.is_empty() {
            doc! {}
        } else {
            doc! {"$and": conditions}
        };
        let documents = collect_all(
            self.jobs()
                .find(filter)
                .sort(doc! {"created_at": -1, "job_id": -1})
                .limit(query.limit as i64 + 1),
            "searching jobs",
        )
        .await?;
        documents.into_iter().map(summary_from_document).collect()
    }

    async fn purge_expired(&self, cutoff: Timestamp) -> Result<Vec<Uuid>> {
        // The TTL indexes of `setup` do this continuously; a sweep only
        // catches what they have not reached yet.
        let filter = doc! {"created_at": {"$lt": date(cutoff)}};
        let expired = collect_all(
            self.jobs()
                .find(filter.clone())
                .projection(doc! {"job_id": 1}),
            "purging expired jobs",
        )
        .await?;
        self.jobs()
            .delete_many(filter)
            .await
            .map_err(|e| Error::backend("purging expired jobs", e))?;
        let lapsed = doc! {"expires_at": {"$lt": date(cutoff)}};
        for collection in [REFRESH_TOKENS, SECRETS] {
            self.db
                .collection::<Document>(collection)
                .delete_many(lapsed.clone())
                .await
                .map_err(|e| Error::backend("purging expired tokens and secrets", e))?;
        }
        Ok(expired
            .iter()
            .filter_map(|d| Uuid::parse_str(d.get_str("job_id").ok()?).ok())
            .collect())
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<ApiClient>> {
        self.clients()
            .find_one(doc! {"client_id": client_id})
            .await
            .map_err(|e| Error::backend("reading a client", e))?
            .map(client_from_document)
            .transpose()
    }

    async fn list_clients(&self) -> Result<Vec<ApiClient>> {
        let documents = collect_all(
            self.clients().find(doc! {}).sort(doc! {"client_id": 1}),
            "reading clients",
        )
        .await?;
        documents.into_iter().map(client_from_document).collect()
    }

    async fn put_client(&self, client: &ApiClient) -> Result<bool> {
        let document = client_document(client);
        check_size(&document)?;
        let clients = self.clients();
        let put = || {
            clients
                .replace_one(doc! {"client_id": &client.client_id}, document.clone())
                .upsert(true)
        };
        // Two concurrent creations of one client: the unique index refuses
        // the second upsert, which then replaces the first's document.
        let replaced = match put().await {
            Err(e) if is_duplicate_key(&e) => put().await,
            other => other,
        }
        .map_err(|e| write_error("storing a client", e))?;
        Ok(replaced.upserted_id.is_some())
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        let context = "deleting a client";
        let deleted = self
            .clients()
            .delete_one(doc! {"client_id": client_id})
            .await
            .map_err(|e| Error::backend(context, e))?;
        self.db
            .collection::<Document>(REFRESH_TOKENS)
            .delete_many(doc! {"client_id": client_id})
            .await
            .map_err(|e| Error::backend(context, e))?;
        self.secrets()
            .delete_many(doc! {"client_id": client_id})
            .await
            .map_err(|e| Error::backend(context, e))?;
        // The restrictions stay, even without owners.
        self.restricted_queues()
            .update_many(
                doc! {"owners": client_id},
                doc! {"$pull": {"owners": client_id}},
            )
            .await
            .map_err(|e| Error::backend(context, e))?;
        Ok(deleted.deleted_count == 1)
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()> {
        self.db
            .collection::<Document>(REFRESH_TOKENS)
            .insert_one(doc! {
                "token_hash": &token.token_hash,
                "client_id": &token.client_id,
                "issued_at": date(token.issued_at),
                "expires_at": date(token.expires_at),
                "revoked": token.revoked,
                "last_accessed": date(token.issued_at),
            })
            .await
            .map_err(|e| Error::backend("storing a refresh token", e))?;
        Ok(())
    }

    async fn use_refresh_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<String>> {
        let found = self
            .db
            .collection::<Document>(REFRESH_TOKENS)
            .find_one_and_update(
                doc! {"token_hash": token_hash, "revoked": false, "expires_at": {"$gt": date(now)}},
                doc! {"$set": {"last_accessed": date(now)}},
            )
            .projection(doc! {"client_id": 1})
            .await
            .map_err(|e| Error::backend("using a refresh token", e))?;
        Ok(found.and_then(|d| d.get_str("client_id").ok().map(str::to_owned)))
    }

    async fn revoke_refresh_token(&self, token_hash: &str) -> Result<bool> {
        let changed = self
            .db
            .collection::<Document>(REFRESH_TOKENS)
            .update_one(
                doc! {"token_hash": token_hash, "revoked": false},
                doc! {"$set": {"revoked": true}},
            )
            .await
            .map_err(|e| Error::backend("revoking a refresh token", e))?;
        Ok(changed.matched_count == 1)
    }

    async fn revoke_client_tokens(&self, client_id: &str) -> Result<u64> {
        let changed = self
            .db
            .collection::<Document>(REFRESH_TOKENS)
            .update_many(
                doc! {"client_id": client_id, "revoked": false},
                doc! {"$set": {"revoked": true}},
            )
            .await
            .map_err(|e| Error::backend("revoking a client's refresh tokens", e))?;
        Ok(changed.modified_count)
    }

    async fn list_restricted_queues(&self) -> Result<Vec<RestrictedQueue>> {
        let documents = collect_all(
            self.restricted_queues()
                .find(doc! {})
                .sort(doc! {"queue_name": 1}),
            "reading restricted queues",
        )
        .await?;
        Ok(documents.iter().map(restriction_from_document).collect())
    }

    async fn get_restricted_queue(&self, queue: &str) -> Result<Option<RestrictedQueue>> {
        let found = self
            .restricted_queues()
            .find_one(doc! {"queue_name": queue})
            .await
            .map_err(|e| Error::backend("reading a restricted queue", e))?;
        Ok(found.as_ref().map(restriction_from_document))
    }

    async fn add_queue_owner(&self, queue: &str, client_id: &str) -> Result<bool> {
        let context = "adding a queue owner";
        let client = self
            .clients()
            .find_one(doc! {"client_id": client_id})
            .projection(doc! {"_id": 1})
            .await
            .map_err(|e| Error::backend(context, e))?;
        if client.is_none() {
            return Ok(false);
        }
        let restricted = self.restricted_queues();
        let restrict = || {
            restricted
                .update_one(
                    doc! {"queue_name": queue},
                    doc! {"$addToSet": {"owners": client_id}},
                )
                .upsert(true)
        };
        // Two concurrent first owners: the unique index refuses the second
        // upsert, which then finds the queue restricted.
        let added = match restrict().await {
            Err(e) if is_duplicate_key(&e) => restrict().await,
            other => other,
        }
        .map_err(|e| Error::backend(context, e))?;
        // Granting the queue is also the check that the client still
        // exists: `delete_client` removes the client before its ownerships,
        // so a client deleted after this point loses the ownership there,
        // and one deleted before it loses it here.
        let granted = self
            .clients()
            .update_one(
                doc! {"client_id": client_id},
                doc! {"$addToSet": {"allowed_queues": queue}},
            )
            .await
            .map_err(|e| Error::backend(context, e))?;
        if granted.matched_count == 1 {
            return Ok(true);
        }
        restricted
            .update_one(
                doc! {"queue_name": queue},
                doc! {"$pull": {"owners": client_id}},
            )
            .await
            .map_err(|e| Error::backend(context, e))?;
        if added.upserted_id.is_some() {
            // The restriction was this call's own doing: undone too, unless
            // another owner has joined meanwhile.
            restricted
                .delete_one(doc! {"queue_name": queue, "owners": {"$size": 0}})
                .await
                .map_err(|e| Error::backend(context, e))?;
        }
        Ok(false)
    }

    async fn remove_queue_owner(&self, queue: &str, client_id: &str) -> Result<OwnerRemoval> {
        let context = "removing a queue owner";
        let pulled = self
            .restricted_queues()
            .update_one(
                doc! {"queue_name": queue, "owners": client_id},
                doc! {"$pull": {"owners": client_id}},
            )
            .await
            .map_err(|e| Error::backend(context, e))?;
        if pulled.matched_count == 0 {
            let restricted = self
                .restricted_queues()
                .find_one(doc! {"queue_name": queue})
                .projection(doc! {"_id": 1})
                .await
                .map_err(|e| Error::backend(context, e))?;
            return Ok(match restricted {
                Some(_) => OwnerRemoval::NotOwner,
                None => OwnerRemoval::NotRestricted,
            });
        }
        self.clients()
            .update_one(
                doc! {"client_id": client_id},
                doc! {"$pull": {"allowed_queues": queue}},
            )
            .await
            .map_err(|e| Error::backend(context, e))?;
        // Only when no owner is left (one may have been added meanwhile).
        let ended = self
            .restricted_queues()
            .delete_one(doc! {"queue_name": queue, "owners": {"$size": 0}})
            .await
            .map_err(|e| Error::backend(context, e))?;
        Ok(OwnerRemoval::Removed {
            restriction_ended: ended.deleted_count == 1,
        })
    }

    async fn put_secret(&self, secret: &StoredSecret) -> Result<()> {
        let mut document = doc! {
            "client_id": &secret.client_id,
            "path": &secret.path,
            "value": Binary {
                subtype: BinarySubtype::Generic,
                bytes: secret.sealed.clone(),
            },
            "ephemeral": secret.ephemeral,
            "updated_at": date(secret.updated_at),
        };
        // No `expires_at` at all for a secret that never expires, so that
        // the TTL index leaves it alone.
        if let Some(expires_at) = secret.expires_at {
            document.insert("expires_at", date(expires_at));
        }
        check_size(&document)?;
        let secrets = self.secrets();
        let put = || {
            secrets
                .replace_one(
                    doc! {"client_id": &secret.client_id, "path": &secret.path},
                    document.clone(),
                )
                .upsert(true)
        };
        match put().await {
            Err(e) if is_duplicate_key(&e) => put().await,
            other => other,
        }
        .map_err(|e| write_error("storing a secret", e))?;
        Ok(())
    }

    async fn delete_secret(&self, client_id: &str, path: &str) -> Result<bool> {
        let deleted = self
            .secrets()
            .delete_one(doc! {"client_id": client_id, "path": path})
            .await
            .map_err(|e| Error::backend("deleting a secret", e))?;
        Ok(deleted.deleted_count == 1)
    }

    async fn existing_secrets(
        &self,
        client_id: &str,
        paths: &[String],
        now: Timestamp,
    ) -> Result<Vec<String>> {
        let paths = distinct(paths);
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let documents = collect_all(
            self.secrets()
                .find(live_secrets(client_id, &paths, now))
                .projection(doc! {"path": 1}),
            "reading secrets",
        )
        .await?;
        let found: Vec<&str> = documents
            .iter()
            .filter_map(|d| d.get_str("path").ok())
            .collect();
        Ok(paths
            .into_iter()
            .filter(|p| found.contains(&p.as_str()))
            .collect())
    }

    async fn take_secrets(
        &self,
        client_id: &str,
        paths: &[String],
        now: Timestamp,
    ) -> Result<Vec<StoredSecret>> {
        let context = "reading secrets";
        let paths = distinct(paths);
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let documents = collect_all(
            self.secrets().find(live_secrets(client_id, &paths, now)),
            context,
        )
        .await?;
        let mut found: BTreeMap<String, StoredSecret> = BTreeMap::new();
        for document in documents {
            let secret = secret_from_document(&document)?;
            let secret = if secret.ephemeral {
                // Read and deleted in one step: of concurrent readers,
                // exactly one gets it.
                let mut filter = live_secrets(client_id, std::slice::from_ref(&secret.path), now);
                filter.insert("ephemeral", true);
                let taken = self
                    .secrets()
                    .find_one_and_delete(filter)
                    .await
                    .map_err(|e| Error::backend(context, e))?;
                match taken {
                    Some(taken) => secret_from_document(&taken)?,
                    None => continue,
                }
            } else {
                secret
            };
            found.insert(secret.path.clone(), secret);
        }
        Ok(paths.iter().filter_map(|p| found.remove(p)).collect())
    }
}
