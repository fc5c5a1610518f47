//! The embedded store: SQLite (bundled) in WAL mode, one file in the data
//! folder. Writes go through one connection, so a multi-statement rule is one
//! transaction; reads use a small pool and run beside writes (WAL).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{CancelOutcome, ClaimRequest, Store};
use crate::agents::{self, Agent, AgentUpdate, ProvisionEntry};
use crate::auth::Role;
use crate::clients::{Client, OwnerRemoval, RefreshToken, RestrictedQueue};
use crate::job::{self, AttachmentsStatus, Job, NewJob};
use crate::logs::{LegacyStream, LogFragment, LogType};
use crate::queues::{JobSummary, SearchQuery};
use crate::results::{self, ResultPatch};
use crate::secrets::StoredSecret;
use crate::{Error, Result, Timestamp};

/// The database file inside the data folder.
pub const DATABASE_FILE: &str = "testflinger.sqlite3";

/// How often an unchanged advertised queue's `updated_at` is refreshed.
const QUEUE_REFRESH_MILLIS: i64 = 3_600_000;

/// Idle read connections kept open: enough for the async workers and the
/// blocking readers of a busy server, so that reads seldom open one.
const MAX_IDLE_READERS: usize = 32;

/// Schema migrations, applied in order; `PRAGMA user_version` is the count applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE jobs (
    seq                INTEGER PRIMARY KEY,   -- insertion order: FIFO among equal priorities
    job_id             TEXT NOT NULL UNIQUE,
    job_queue          TEXT NOT NULL,
    job_priority       INTEGER NOT NULL,
    state              TEXT NOT NULL,
    created_at         INTEGER NOT NULL,      -- ms since the epoch
    started_at         INTEGER,
    attachments_status TEXT,
    exclude_agents     TEXT,                  -- JSON list, NULL when empty
    job_data           TEXT NOT NULL,         -- the submission, JSON
    result_data        TEXT NOT NULL DEFAULT '{}',
    updated_at         INTEGER NOT NULL
);
-- Serves the claim: per queue, waiting jobs in claim order.
CREATE INDEX jobs_claim ON jobs (job_queue, job_priority DESC, seq) WHERE state = 'waiting';
CREATE INDEX jobs_created ON jobs (created_at);


CREATE TABLE queues (
    name        TEXT PRIMARY KEY,
    description TEXT,
    images      TEXT,
    updated_at  INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE logs (
    job_id          TEXT NOT NULL,
    log_type        TEXT NOT NULL,
    fragment_number INTEGER NOT NULL,
    phase           TEXT NOT NULL,
    timestamp       INTEGER NOT NULL,   -- the agent's time, ms
    log_data        TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,   -- the server's time, ms
    PRIMARY KEY (job_id, log_type, fragment_number)
) WITHOUT ROWID;
CREATE INDEX logs_updated ON logs (updated_at);

CREATE TABLE live_output (
    seq        INTEGER PRIMARY KEY,
    job_id     TEXT NOT NULL,
    stream     TEXT NOT NULL,
    text       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX live_output_by_job ON live_output (job_id, stream, seq);
"#,
    r#"
CREATE TABLE agents (
    name           TEXT PRIMARY KEY,
    fields         TEXT NOT NULL,           -- JSON object
    log            TEXT NOT NULL DEFAULT '[]',
    updated_at     INTEGER NOT NULL,
    streak_type    TEXT,
    streak_count   INTEGER,
    provision_log  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX agents_updated ON agents (updated_at);
CREATE INDEX jobs_by_queue ON jobs (job_queue, seq);
CREATE INDEX jobs_started ON jobs (started_at) WHERE started_at IS NOT NULL;
CREATE INDEX jobs_newest ON jobs (created_at, job_id);
"#,
    // Jobs still waiting for attachments are not claimable: kept out of the
    // claim index, no claim walks past them.
    r#"
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (job_queue, job_priority DESC, seq)
    WHERE state = 'waiting' AND (attachments_status IS NULL OR attachments_status = 'complete');
"#,
    // Clients and their permissions, refresh tokens (by hash), restricted
    // queues with their owners, and sealed secrets.
    r#"
CREATE TABLE client_permissions (
    client_id            TEXT PRIMARY KEY,
    client_secret_hash   TEXT NOT NULL,
    role                 TEXT NOT NULL,
    max_priority         TEXT NOT NULL DEFAULT '{}',   -- JSON object: queue -> integer
    allowed_queues       TEXT NOT NULL DEFAULT '[]',   -- JSON list
    max_reservation_time TEXT NOT NULL DEFAULT '{}'    -- JSON object: queue -> seconds
) WITHOUT ROWID;

CREATE TABLE refresh_tokens (
    token_hash    TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    issued_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0,
    last_accessed INTEGER
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_by_client ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- A restriction outlives its owners (deleting a client must not open a
-- queue), so the queue and its owners are separate tables.
CREATE TABLE restricted_queues (
    queue_name TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE restricted_queue_owners (
    queue_name TEXT NOT NULL REFERENCES restricted_queues (queue_name) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    PRIMARY KEY (queue_name, client_id)
) WITHOUT ROWID;
CREATE INDEX restricted_queue_owners_by_client ON restricted_queue_owners (client_id);

CREATE TABLE secrets (
    client_id  TEXT NOT NULL,
    path       TEXT NOT NULL,
    value      BLOB NOT NULL,      -- sealed: nonce, ciphertext and tag
    expires_at INTEGER,            -- NULL: never
    ephemeral  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, path)
) WITHOUT ROWID;
CREATE INDEX secrets_expiry ON secrets (expires_at) WHERE expires_at IS NOT NULL;
"#,
];

const JOB_COLUMNS: &str = "job_id, job_queue, job_priority, state, created_at, started_at, \
                           attachments_status, job_data, result_data";

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir` and brings its
    /// schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::backend("creating the data folder", e))?;
        let path = data_dir.join(DATABASE_FILE);
        let mut writer = open_connection(&path)?;
        migrate(&mut writer)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the write connection, off the async threads.
    async fn write<T, F>(&self, context: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn).map_err(|e| Error::backend(context, e))
        })
        .await
        .map_err(|e| Error::backend(context, e))?
    }

    /// Runs `f` on a pooled read connection, off the async threads: for
    /// reads whose cost grows with the data (lists, searches, logs).
    async fn read<T, F>(&self, context: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.with_reader(context, f))
            .await
            .map_err(|e| Error::backend(context, e))?
    }

    /// Runs `f` on a pooled read connection on the calling thread: for the
    /// index lookups of a single row or of a small table that the agents'
    /// polling repeats all day (an agent, a job, the claim probe). Such a
    /// read takes microseconds, and under WAL never waits for the writer,
    /// so handing it to a blocking thread and back (two thread wake-ups)
    /// would cost more than the read itself.
    fn read_now<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.inner.with_reader(context, f)
    }
}

impl Inner {
    /// Lends a read connection (opening one when all are busy) and keeps
    /// it for the next read, up to [`MAX_IDLE_READERS`].
    fn with_reader<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.path)?,
        };
        let out = f(&conn).map_err(|e| Error::backend(context, e));
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
        out
    }
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open(path).map_err(|e| Error::backend("opening the embedded database", e))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA busy_timeout = 10000;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| Error::backend("configuring the embedded database", e))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let run = |conn: &mut Connection| -> rusqlite::Result<()> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", i + 1)?;
        }
        tx.commit()
    };
    run(conn).map_err(|e| Error::backend("migrating the embedded database", e))
}

const AGENT_COLUMNS: &str =
    "name, fields, log, updated_at, streak_type, streak_count, provision_log";

fn agent_from_row(row: &Row<'_>) -> rusqlite::Result<Agent> {
    let fields: String = row.get(1)?;
    let log: String = row.get(2)?;
    let streak_type: Option<String> = row.get(4)?;
    let streak_count: Option<i64> = row.get(5)?;
    let provision_log: String = row.get(6)?;
    Ok(Agent {
        name: row.get(0)?,
        fields: parse_object(&fields),
        log: serde_json::from_str(&log).unwrap_or_default(),
        updated_at: Timestamp::from_millis(row.get(3)?),
        provision_streak: streak_type.zip(streak_count),
        provision_log: serde_json::from_str(&provision_log).unwrap_or_default(),
    })
}

fn load_agent(conn: &Connection, name: &str) -> rusqlite::Result<Option<Agent>> {
    conn.prepare_cached(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?1"
    ))?
    .query_row([name], agent_from_row)
    .optional()
}

fn save_agent(conn: &Connection, agent: &Agent) -> rusqlite::Result<()> {
    let (streak_type, streak_count) = agent.provision_streak.clone().unzip();
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO agents ({AGENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        agent.name,
        to_json(&agent.fields),
        Value::from(agent.log.clone()).to_string(),
        agent.updated_at.millis(),
        streak_type,
        streak_count,
        Value::Array(agent.provision_log.clone()).to_string(),
    ])?;
    Ok(())
}

/// Stores one new job in state `waiting`: the row of [`Store::insert_job`]
/// and [`Store::insert_jobs`].
fn insert_job_row(conn: &Connection, job: &NewJob) -> rusqlite::Result<()> {
    let exclude = (!job.exclude_agents.is_empty())
        .then(|| Value::from(job.exclude_agents.clone()).to_string());
    conn.prepare_cached(
        "INSERT INTO jobs (job_id, job_queue, job_priority, state, created_at, \
         attachments_status, exclude_agents, job_data, updated_at) \
         VALUES (?1, ?2, ?3, 'waiting', ?4, ?5, ?6, ?7, ?4)",
    )?
    .execute(params![
        job.job_id.to_string(),
        job.job_queue,
        job.job_priority,
        job.created_at.millis(),
        job.attachments_status.map(AttachmentsStatus::as_str),
        exclude,
        to_json(&job.job_data),
    ])?;
    Ok(())
}

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<JobSummary> {
    let job = job_from_row(row)?;
    Ok(JobSummary::of(&job))
}

fn job_exists(conn: &Connection, job_id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM jobs WHERE job_id = ?1")?
        .exists([job_id])
}

fn to_json(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

fn parse_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let id: String = row.get(0)?;
    let attachments: Option<String> = row.get(6)?;
    let job_data: String = row.get(7)?;
    let result_data: String = row.get(8)?;
    Ok(Job {
        job_id: Uuid::parse_str(&id).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })?,
        job_queue: row.get(1)?,
        job_priority: row.get(2)?,
        state: row.get(3)?,
        created_at: Timestamp::from_millis(row.get(4)?),
        started_at: row.get::<_, Option<i64>>(5)?.map(Timestamp::from_millis),
        attachments_status: attachments.as_deref().and_then(AttachmentsStatus::parse),
        job_data: parse_object(&job_data),
        result_data: parse_object(&result_data),
    })
}

/// The `seq` of the job a claim takes for `queues` distinct queues: the best
/// candidate of each queue comes from the `jobs_claim` index (one seek per
/// queue), then the best of those. Parameters: ?2 agent name, then one per
/// queue from ?3.
fn candidate_sql(queues: usize) -> String {
    let per_queue: Vec<String> = (0..queues)
        .map(|i| {
            format!(
                "SELECT * FROM (SELECT seq, job_priority FROM jobs \
                 WHERE state = 'waiting' AND job_queue = ?{} \
                 AND (attachments_status IS NULL OR attachments_status = 'complete') \
                 AND (exclude_agents IS NULL OR ?2 IS NULL \
                      OR NOT EXISTS (SELECT 1 FROM json_each(jobs.exclude_agents) WHERE value = ?2)) \
                 ORDER BY job_priority DESC, seq LIMIT 1)",
                i + 3
            )
        })
        .collect();
    format!(
        "SELECT seq FROM ({}) ORDER BY job_priority DESC, seq LIMIT 1",
        per_queue.join(" UNION ALL ")
    )
}

/// The claim: the candidate flipped to `running` in one statement.
/// Parameters: ?1 now, then those of [`candidate_sql`].
fn claim_sql(queues: usize) -> String {
    format!(
        "UPDATE jobs SET state = 'running', started_at = ?1, updated_at = ?1 \
         WHERE seq = ({}) RETURNING {JOB_COLUMNS}",
        candidate_sql(queues)
    )
}

/// Whether the claim would find a job; the same parameters as [`claim_sql`].
fn probe_sql(queues: usize) -> String {
    format!(
        "SELECT ?1 IS NOT NULL AND EXISTS ({})",
        candidate_sql(queues)
    )
}

/// The claim statement's parameters: ?1 now, ?2 agent name, then the queues.
fn claim_values(request: &ClaimRequest, now: Timestamp) -> Vec<rusqlite::types::Value> {
    let mut values: Vec<rusqlite::types::Value> =
        vec![now.millis().into(), request.agent_name.clone().into()];
    values.extend(request.queues.iter().cloned().map(Into::into));
    values
}

const CLIENT_COLUMNS: &str = "client_id, client_secret_hash, role, max_priority, allowed_queues, \
                              max_reservation_time";

fn client_from_row(row: &Row<'_>) -> rusqlite::Result<Client> {
    let role: String = row.get(2)?;
    let role = Role::parse(&role).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown role {role:?}").into(),
        )
    })?;
    let max_priority: String = row.get(3)?;
    let allowed_queues: String = row.get(4)?;
    let max_reservation_time: String = row.get(5)?;
    Ok(Client {
        client_id: row.get(0)?,
        secret_hash: row.get(1)?,
        role,
        max_priority: serde_json::from_str(&max_priority).unwrap_or_default(),
        allowed_queues: serde_json::from_str(&allowed_queues).unwrap_or_default(),
        max_reservation_time: serde_json::from_str(&max_reservation_time).unwrap_or_default(),
    })
}

fn load_client(conn: &Connection, client_id: &str) -> rusqlite::Result<Option<Client>> {
    conn.prepare_cached(&format!(
        "SELECT {CLIENT_COLUMNS} FROM client_permissions WHERE client_id = ?1"
    ))?
    .query_row([client_id], client_from_row)
    .optional()
}

fn save_client(conn: &Connection, client: &Client) -> rusqlite::Result<()> {
    let json = |value: serde_json::Result<String>| value.unwrap_or_else(|_| "null".into());
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO client_permissions ({CLIENT_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))?
    .execute(params![
        client.client_id,
        client.secret_hash,
        client.role.as_str(),
        json(serde_json::to_string(&client.max_priority)),
        json(serde_json::to_string(&client.allowed_queues)),
        json(serde_json::to_string(&client.max_reservation_time)),
    ])?;
    Ok(())
}

fn load_restriction(conn: &Connection, queue: &str) -> rusqlite::Result<Option<RestrictedQueue>> {
    let restricted = conn
        .prepare_cached("SELECT 1 FROM restricted_queues WHERE queue_name = ?1")?
        .exists([queue])?;
    if !restricted {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT client_id FROM restricted_queue_owners WHERE queue_name = ?1 ORDER BY client_id",
    )?;
    let owners = stmt
        .query_map([queue], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(RestrictedQueue {
        queue: queue.to_owned(),
        owners,
    }))
}

const SECRET_COLUMNS: &str = "client_id, path, value, expires_at, ephemeral, updated_at";

/// A secret that has not expired at ?3.
const SECRET_LIVE: &str = "(expires_at IS NULL OR expires_at > ?3)";

fn secret_from_row(row: &Row<'_>) -> rusqlite::Result<StoredSecret> {
    Ok(StoredSecret {
        client_id: row.get(0)?,
        path: row.get(1)?,
        sealed: row.get(2)?,
        expires_at: row.get::<_, Option<i64>>(3)?.map(Timestamp::from_millis),
        ephemeral: row.get(4)?,
        updated_at: Timestamp::from_millis(row.get(5)?),
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
impl Store for SqliteStore {
    async fn insert_job(&self, job: &NewJob) -> Result<()> {
        let job = job.clone();
        self.write("storing a job", move |conn| insert_job_row(conn, &job))
            .await
    }

    async fn insert_jobs(&self, jobs: &[NewJob]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let jobs = jobs.to_vec();
        // One transaction: one commit (and one WAL sync) for the batch.
        self.write("storing jobs", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for job in &jobs {
                insert_job_row(&tx, job)?;
            }
            tx.commit()
        })
        .await
    }

    async fn get_job(&self, job_id: Uuid) -> Result<Option<Job>> {
        self.read_now("reading a job", move |conn| {
            conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?1"))?
                .query_row([job_id.to_string()], job_from_row)
                .optional()
        })
    }

    async fn claim_job(&self, request: &ClaimRequest, now: Timestamp) -> Result<Option<Job>> {
        if request.queues.is_empty() {
            return Ok(None);
        }
        // Most claims find nothing (idle agents poll every few seconds): a
        // read, in parallel with everything else under WAL, says so without
        // taking the single writer.
        let any = self.read_now("looking for a job to claim", |conn| {
            conn.prepare_cached(&probe_sql(request.queues.len()))?
                .query_row(params_from_iter(claim_values(request, now)), |r| {
                    r.get::<_, bool>(0)
                })
        })?;
        if !any {
            return Ok(None);
        }
        let request = request.clone();
        // One statement, so one atomic write; the wait is the job's own
        // `started_at - created_at`.
        self.write("claiming a job", move |conn| {
            conn.prepare_cached(&claim_sql(request.queues.len()))?
                .query_row(params_from_iter(claim_values(&request, now)), job_from_row)
                .optional()
        })
        .await
    }

    async fn cancel_job(&self, job_id: Uuid) -> Result<CancelOutcome> {
        self.write("cancelling a job", move |conn| {
            let id = job_id.to_string();
            let terminal = job::TERMINAL_STATES.map(|s| format!("'{s}'")).join(", ");
            let changed = conn
                .prepare_cached(&format!(
                    "UPDATE jobs SET state = '{}', updated_at = ?2 \
                     WHERE job_id = ?1 AND state NOT IN ({terminal})",
                    job::CANCELLED
                ))?
                .execute(params![id, Timestamp::now().millis()])?;
            if changed == 1 {
                return Ok(CancelOutcome::Cancelled);
            }
            Ok(if job_exists(conn, &id)? {
                CancelOutcome::AlreadyFinished
            } else {
                CancelOutcome::NotFound
            })
        })
        .await
    }

    async fn apply_result(
        &self,
        job_id: Uuid,
        patch: &ResultPatch,
        now: Timestamp,
    ) -> Result<bool> {
        let patch = patch.clone();
        self.write("storing a result", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let id = job_id.to_string();
            let current: Option<(String, String)> = tx
                .prepare_cached("SELECT state, result_data FROM jobs WHERE job_id = ?1")?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((state, result_data)) = current else {
                return Ok(false);
            };
            let mut result = parse_object(&result_data);
            for (key, value) in &patch.fields {
                result.insert(key.clone(), value.clone());
            }
            let mut new_state = state.clone();
            if let Some(reported) = &patch.job_state {
                match results::next_state(&state, reported) {
                    Some(next) => {
                        result.remove(results::REPORTED_STATE_KEY);
                        new_state = next;
                    }
                    None => {
                        result.insert(
                            results::REPORTED_STATE_KEY.into(),
                            Value::String(reported.clone()),
                        );
                    }
                }
            }
            tx.prepare_cached(
                "UPDATE jobs SET state = ?2, result_data = ?3, updated_at = ?4 WHERE job_id = ?1",
            )?
            .execute(params![id, new_state, to_json(&result), now.millis()])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn upsert_queues(&self, queues: &BTreeMap<String, String>, now: Timestamp) -> Result<()> {
        // Agents re-post the same queues every cycle. Only a new or changed
        // description, or an `updated_at` older than the refresh period
        // (retention needs no finer), takes the single writer.
        let fresh_since = now.millis() - QUEUE_REFRESH_MILLIS;
        let changed: BTreeMap<String, String> = self.read_now("reading queues", |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT description, updated_at FROM queues WHERE name = ?1")?;
            let mut changed = BTreeMap::new();
            for (name, description) in queues {
                let current: Option<(Option<String>, i64)> = stmt
                    .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let unchanged = matches!(&current,
                        Some((Some(stored), at)) if stored == description && *at >= fresh_since);
                if !unchanged {
                    changed.insert(name.clone(), description.clone());
                }
            }
            Ok(changed)
        })?;
        if changed.is_empty() {
            return Ok(());
        }
        self.write("storing queues", move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO queues (name, description, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
                     updated_at = excluded.updated_at",
                )?;
                for (name, description) in &changed {
                    stmt.execute(params![name, description, now.millis()])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn list_queues(&self) -> Result<BTreeMap<String, String>> {
        self.read("reading queues", |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, description FROM queues WHERE description IS NOT NULL",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    async fn set_images(
        &self,
        images: &BTreeMap<String, BTreeMap<String, String>>,
        now: Timestamp,
    ) -> Result<()> {
        let images = images.clone();
        self.write("storing images", move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO queues (name, images, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (name) DO UPDATE SET images = excluded.images",
                )?;
                for (queue, map) in &images {
                    let json = serde_json::to_string(map).unwrap_or_else(|_| "{}".into());
                    stmt.execute(params![queue, json, now.millis()])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn get_images(&self, queue: &str) -> Result<BTreeMap<String, String>> {
        let queue = queue.to_owned();
        self.read_now("reading images", move |conn| {
            let images: Option<Option<String>> = conn
                .prepare_cached("SELECT images FROM queues WHERE name = ?1")?
                .query_row([queue], |r| r.get(0))
                .optional()?;
            Ok(images
                .flatten()
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default())
        })
    }

    async fn append_log(
        &self,
        job_id: Uuid,
        log_type: LogType,
        fragment: &LogFragment,
        now: Timestamp,
    ) -> Result<bool> {
        let fragment = fragment.clone();
        self.write("storing a log fragment", move |conn| {
            let id = job_id.to_string();
            if !job_exists(conn, &id)? {
                return Ok(false);
            }
            conn.prepare_cached(
                "INSERT INTO logs (job_id, log_type, fragment_number, phase, timestamp, log_data, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (job_id, log_type, fragment_number) DO NOTHING",
            )?
            .execute(params![
                id,
                log_type.as_str(),
                fragment.fragment_number,
                fragment.phase,
                fragment.timestamp.millis(),
                fragment.log_data,
                now.millis()
            ])?;
            Ok(true)
        })
        .await
    }

    async fn read_logs(
        &self,
        job_id: Uuid,
        log_type: LogType,
        start_fragment: i64,
    ) -> Result<Vec<LogFragment>> {
        self.read("reading logs", move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT fragment_number, timestamp, phase, log_data FROM logs \
                 WHERE job_id = ?1 AND log_type = ?2 AND fragment_number >= ?3 \
                 ORDER BY fragment_number",
            )?;
            let rows = stmt.query_map(
                params![job_id.to_string(), log_type.as_str(), start_fragment],
                |r| {
                    Ok(LogFragment {
                        fragment_number: r.get(0)?,
                        timestamp: Timestamp::from_millis(r.get(1)?),
                        phase: r.get(2)?,
                        log_data: r.get(3)?,
                    })
                },
            )?;
            rows.collect()
        })
        .await
    }

    async fn append_live_output(
        &self,
        job_id: Uuid,
        stream: LegacyStream,
        text: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let text = text.to_owned();
        self.write("appending live output", move |conn| {
            let id = job_id.to_string();
            if !job_exists(conn, &id)? {
                return Ok(false);
            }
            conn.prepare_cached(
                "INSERT INTO live_output (job_id, stream, text, updated_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, stream.as_str(), text, now.millis()])?;
            Ok(true)
        })
        .await
    }

    async fn take_live_output(&self, job_id: Uuid, stream: LegacyStream) -> Result<Option<String>> {
        self.write("reading live output", move |conn| {
            let mut stmt = conn.prepare_cached(
                "DELETE FROM live_output WHERE job_id = ?1 AND stream = ?2 RETURNING seq, text",
            )?;
            let mut chunks: Vec<(i64, String)> = stmt
                .query_map(params![job_id.to_string(), stream.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            chunks.sort_by_key(|(seq, _)| *seq);
            let text: String = chunks.into_iter().map(|(_, text)| text).collect();
            Ok((!text.is_empty()).then_some(text))
        })
        .await
    }

    async fn upsert_agent(&self, name: &str, update: &AgentUpdate, now: Timestamp) -> Result<()> {
        let (name, update) = (name.to_owned(), update.clone());
        self.write("storing an agent", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut agent = load_agent(&tx, &name)?.unwrap_or_else(|| Agent {
                name: name.clone(),
                fields: Map::new(),
                log: Vec::new(),
                updated_at: now,
                provision_streak: None,
                provision_log: Vec::new(),
            });
            agent.fields.extend(update.fields);
            agent.log.extend(update.log);
            agents::keep_last(&mut agent.log, agents::AGENT_LOG_KEEP);
            agent.updated_at = now;
            save_agent(&tx, &agent)?;
            tx.commit()
        })
        .await
    }

    async fn get_agent(&self, name: &str) -> Result<Option<Agent>> {
        let name = name.to_owned();
        self.read_now("reading an agent", move |conn| load_agent(conn, &name))
    }

    async fn list_agents(&self) -> Result<Vec<Agent>> {
        self.read("reading agents", |conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name"))?;
            let rows = stmt.query_map([], agent_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn record_provision(
        &self,
        name: &str,
        entry: &ProvisionEntry,
        now: Timestamp,
    ) -> Result<bool> {
        let (name, entry) = (name.to_owned(), entry.clone());
        self.write("recording a provision", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let Some(mut agent) = load_agent(&tx, &name)? else {
                return Ok(false);
            };
            let current = agent
                .provision_streak
                .as_ref()
                .map(|(k, n)| (k.as_str(), *n));
            let (kind, count) = agents::next_streak(current, entry.exit_code);
            agent.provision_streak = Some((kind.to_owned(), count));
            agent.provision_log.push(entry.to_value(now));
            agents::keep_last(&mut agent.provision_log, agents::PROVISION_LOG_KEEP);
            save_agent(&tx, &agent)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn job_position(&self, job_id: Uuid) -> Result<Option<u64>> {
        self.read("finding a job's position", move |conn| {
            let found: Option<(String, i64, i64, String)> = conn
                .prepare_cached(
                    "SELECT job_queue, job_priority, seq, state FROM jobs WHERE job_id = ?1",
                )?
                .query_row([job_id.to_string()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let Some((queue, priority, seq, state)) = found else {
                return Ok(None);
            };
            if state != job::WAITING {
                return Ok(None);
            }
            let ahead: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM jobs WHERE state = 'waiting' AND job_queue = ?1 \
                     AND (attachments_status IS NULL OR attachments_status = 'complete') \
                     AND (job_priority > ?2 OR (job_priority = ?2 AND seq < ?3))",
                )?
                .query_row(params![queue, priority, seq], |r| r.get(0))?;
            Ok(Some(ahead as u64))
        })
        .await
    }

    async fn queue_jobs(&self, queue: &str, limit: usize) -> Result<Vec<JobSummary>> {
        let queue = queue.to_owned();
        self.read("listing a queue's jobs", move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE job_queue = ?1 ORDER BY seq DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![queue, limit as i64], summary_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn wait_times(
        &self,
        queues: &[String],
        since: Timestamp,
        per_queue: usize,
    ) -> Result<BTreeMap<String, Vec<i64>>> {
        let queues = queues.to_vec();
        self.read("reading wait times", move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT job_queue, started_at - created_at FROM jobs \
                 WHERE started_at IS NOT NULL AND started_at >= ?1 ORDER BY started_at DESC",
            )?;
            let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            let rows = stmt.query_map([since.millis()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (queue, wait) = row?;
                if !queues.is_empty() && !queues.contains(&queue) {
                    continue;
                }
                let waits = out.entry(queue).or_default();
                if waits.len() < per_queue {
                    waits.push(wait.max(0));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn complete_attachments(&self, job_id: Uuid) -> Result<bool> {
        self.write("marking attachments uploaded", move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE jobs SET attachments_status = 'complete' \
                     WHERE job_id = ?1 AND attachments_status IS NOT NULL",
                )?
                .execute([job_id.to_string()])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn search_jobs(&self, query: &SearchQuery) -> Result<Vec<JobSummary>> {
        let query = query.clone();
        self.read("searching jobs", move |conn| {
            let mut conditions: Vec<String> = Vec::new();
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            let placeholders = |items: &[String], values: &mut Vec<rusqlite::types::Value>| {
                let start = values.len();
                values.extend(items.iter().cloned().map(Into::into));
                (start..values.len()).map(|i| format!("?{}", i + 1)).collect::<Vec<_>>().join(", ")
            };
            if !query.tags.is_empty() {
                let list = placeholders(&query.tags, &mut values);
                if query.match_all {
                    let distinct = query.tags.iter().collect::<std::collections::HashSet<_>>().len();
                    conditions.push(format!(
                        "(SELECT count(DISTINCT value) FROM json_each(jobs.job_data, '$.tags') WHERE value IN ({list})) = {distinct}"
                    ));
                } else {
                    conditions.push(format!(
                        "EXISTS (SELECT 1 FROM json_each(jobs.job_data, '$.tags') WHERE value IN ({list}))"
                    ));
                }
            }
            let mut state_terms = Vec::new();
            if !query.states.is_empty() {
                state_terms.push(format!("state IN ({})", placeholders(&query.states, &mut values)));
            }
            if query.active {
                let terminal: Vec<String> = job::TERMINAL_STATES.iter().map(|s| s.to_string()).collect();
                state_terms.push(format!("state NOT IN ({})", placeholders(&terminal, &mut values)));
            }
            if !state_terms.is_empty() {
                conditions.push(format!("({})", state_terms.join(" OR ")));
            }
            if let Some((created, id)) = query.before {
                values.push(created.millis().into());
                values.push(id.to_string().into());
                let (c, i) = (values.len() - 1, values.len());
                conditions.push(format!("(created_at < ?{c} OR (created_at = ?{c} AND job_id < ?{i}))"));
            }
            let filter = if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            };
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs {filter} ORDER BY created_at DESC, job_id DESC LIMIT {}",
                query.limit + 1
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(values), summary_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn purge_expired(&self, cutoff: Timestamp) -> Result<Vec<Uuid>> {
        self.write("purging expired records", move |conn| {
            let tx = conn.transaction()?;
            let ids: Vec<String> = {
                let mut stmt =
                    tx.prepare_cached("DELETE FROM jobs WHERE created_at < ?1 RETURNING job_id")?;
                let rows = stmt.query_map([cutoff.millis()], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            tx.execute(
                "DELETE FROM queues WHERE updated_at < ?1 AND images IS NULL",
                [cutoff.millis()],
            )?;
            tx.execute("DELETE FROM logs WHERE updated_at < ?1", [cutoff.millis()])?;
            tx.execute(
                "DELETE FROM agents WHERE updated_at < ?1",
                [cutoff.millis()],
            )?;
            tx.execute(
                "DELETE FROM live_output WHERE updated_at < ?1",
                [cutoff.millis()],
            )?;
            // Tokens and secrets without use once expired (NULL: never).
            tx.execute(
                "DELETE FROM refresh_tokens WHERE expires_at < ?1",
                [cutoff.millis()],
            )?;
            tx.execute(
                "DELETE FROM secrets WHERE expires_at < ?1",
                [cutoff.millis()],
            )?;
            tx.commit()?;
            Ok(ids
                .iter()
                .filter_map(|id| Uuid::parse_str(id).ok())
                .collect())
        })
        .await
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<Client>> {
        let client_id = client_id.to_owned();
        self.read_now("reading a client", move |conn| {
            load_client(conn, &client_id)
        })
    }

    async fn list_clients(&self) -> Result<Vec<Client>> {
        self.read("reading clients", |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM client_permissions ORDER BY client_id"
            ))?;
            let rows = stmt.query_map([], client_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn put_client(&self, client: &Client) -> Result<bool> {
        let client = client.clone();
        self.write("storing a client", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let existed = tx
                .prepare_cached("SELECT 1 FROM client_permissions WHERE client_id = ?1")?
                .exists([&client.client_id])?;
            save_client(&tx, &client)?;
            tx.commit()?;
            Ok(!existed)
        })
        .await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        let client_id = client_id.to_owned();
        self.write("deleting a client", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let deleted = tx
                .prepare_cached("DELETE FROM client_permissions WHERE client_id = ?1")?
                .execute([&client_id])?;
            tx.prepare_cached("DELETE FROM refresh_tokens WHERE client_id = ?1")?
                .execute([&client_id])?;
            tx.prepare_cached("DELETE FROM secrets WHERE client_id = ?1")?
                .execute([&client_id])?;
            // The restrictions stay, even without owners.
            tx.prepare_cached("DELETE FROM restricted_queue_owners WHERE client_id = ?1")?
                .execute([&client_id])?;
            tx.commit()?;
            Ok(deleted == 1)
        })
        .await
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()> {
        let token = token.clone();
        self.write("storing a refresh token", move |conn| {
            conn.prepare_cached(
                "INSERT INTO refresh_tokens \
                 (token_hash, client_id, issued_at, expires_at, revoked, last_accessed) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?3)",
            )?
            .execute(params![
                token.token_hash,
                token.client_id,
                token.issued_at.millis(),
                token.expires_at.millis(),
                token.revoked,
            ])?;
            Ok(())
        })
        .await
    }

    async fn use_refresh_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<String>> {
        let token_hash = token_hash.to_owned();
        self.write("using a refresh token", move |conn| {
            conn.prepare_cached(
                "UPDATE refresh_tokens SET last_accessed = ?2 \
                 WHERE token_hash = ?1 AND revoked = 0 AND expires_at > ?2 \
                 RETURNING client_id",
            )?
            .query_row(params![token_hash, now.millis()], |r| r.get(0))
            .optional()
        })
        .await
    }

    async fn revoke_refresh_token(&self, token_hash: &str) -> Result<bool> {
        let token_hash = token_hash.to_owned();
        self.write("revoking a refresh token", move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = ?1 AND revoked = 0",
                )?
                .execute([token_hash])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn revoke_client_tokens(&self, client_id: &str) -> Result<u64> {
        let client_id = client_id.to_owned();
        self.write("revoking a client's refresh tokens", move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE refresh_tokens SET revoked = 1 WHERE client_id = ?1 AND revoked = 0",
                )?
                .execute([client_id])?;
            Ok(changed as u64)
        })
        .await
    }

    async fn list_restricted_queues(&self) -> Result<Vec<RestrictedQueue>> {
        self.read_now("reading restricted queues", |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT r.queue_name, o.client_id FROM restricted_queues r \
                 LEFT JOIN restricted_queue_owners o ON o.queue_name = r.queue_name \
                 ORDER BY r.queue_name, o.client_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            let mut out: Vec<RestrictedQueue> = Vec::new();
            for row in rows {
                let (queue, owner) = row?;
                if out.last().is_none_or(|last| last.queue != queue) {
                    out.push(RestrictedQueue {
                        queue,
                        owners: Vec::new(),
                    });
                }
                if let (Some(owner), Some(last)) = (owner, out.last_mut()) {
                    last.owners.push(owner);
                }
            }
            Ok(out)
        })
    }

    async fn get_restricted_queue(&self, queue: &str) -> Result<Option<RestrictedQueue>> {
        let queue = queue.to_owned();
        self.read_now("reading a restricted queue", move |conn| {
            load_restriction(conn, &queue)
        })
    }

    async fn add_queue_owner(&self, queue: &str, client_id: &str) -> Result<bool> {
        let (queue, client_id) = (queue.to_owned(), client_id.to_owned());
        self.write("adding a queue owner", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let Some(mut client) = load_client(&tx, &client_id)? else {
                return Ok(false);
            };
            tx.prepare_cached("INSERT OR IGNORE INTO restricted_queues (queue_name) VALUES (?1)")?
                .execute([&queue])?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO restricted_queue_owners (queue_name, client_id) \
                 VALUES (?1, ?2)",
            )?
            .execute([&queue, &client_id])?;
            if !client.allowed_queues.contains(&queue) {
                client.allowed_queues.push(queue);
                save_client(&tx, &client)?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn remove_queue_owner(&self, queue: &str, client_id: &str) -> Result<OwnerRemoval> {
        let (queue, client_id) = (queue.to_owned(), client_id.to_owned());
        self.write("removing a queue owner", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let restricted = tx
                .prepare_cached("SELECT 1 FROM restricted_queues WHERE queue_name = ?1")?
                .exists([&queue])?;
            if !restricted {
                return Ok(OwnerRemoval::NotRestricted);
            }
            let removed = tx
                .prepare_cached(
                    "DELETE FROM restricted_queue_owners WHERE queue_name = ?1 AND client_id = ?2",
                )?
                .execute([&queue, &client_id])?;
            if removed == 0 {
                return Ok(OwnerRemoval::NotOwner);
            }
            if let Some(mut client) = load_client(&tx, &client_id)? {
                let before = client.allowed_queues.len();
                client.allowed_queues.retain(|q| *q != queue);
                if client.allowed_queues.len() != before {
                    save_client(&tx, &client)?;
                }
            }
            let restriction_ended = tx
                .prepare_cached(
                    "DELETE FROM restricted_queues WHERE queue_name = ?1 AND NOT EXISTS \
                     (SELECT 1 FROM restricted_queue_owners WHERE queue_name = ?1)",
                )?
                .execute([&queue])?
                == 1;
            tx.commit()?;
            Ok(OwnerRemoval::Removed { restriction_ended })
        })
        .await
    }

    async fn put_secret(&self, secret: &StoredSecret) -> Result<()> {
        let secret = secret.clone();
        self.write("storing a secret", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO secrets \
                 (client_id, path, value, expires_at, ephemeral, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                secret.client_id,
                secret.path,
                secret.sealed,
                secret.expires_at.map(Timestamp::millis),
                secret.ephemeral,
                secret.updated_at.millis(),
            ])?;
            Ok(())
        })
        .await
    }

    async fn delete_secret(&self, client_id: &str, path: &str) -> Result<bool> {
        let (client_id, path) = (client_id.to_owned(), path.to_owned());
        self.write("deleting a secret", move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM secrets WHERE client_id = ?1 AND path = ?2")?
                .execute([client_id, path])?;
            Ok(deleted == 1)
        })
        .await
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
        let client_id = client_id.to_owned();
        self.read("reading secrets", move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT 1 FROM secrets WHERE client_id = ?1 AND path = ?2 AND {SECRET_LIVE}"
            ))?;
            let mut out = Vec::new();
            for path in paths {
                if stmt.exists(params![client_id, path, now.millis()])? {
                    out.push(path);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn take_secrets(
        &self,
        client_id: &str,
        paths: &[String],
        now: Timestamp,
    ) -> Result<Vec<StoredSecret>> {
        let paths = distinct(paths);
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let client_id = client_id.to_owned();
        // One transaction on the single writer: an ephemeral secret is read
        // and deleted in one step, so exactly one reader gets it.
        self.write("reading secrets", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut out = Vec::new();
            {
                let mut select = tx.prepare_cached(&format!(
                    "SELECT {SECRET_COLUMNS} FROM secrets \
                     WHERE client_id = ?1 AND path = ?2 AND {SECRET_LIVE}"
                ))?;
                let mut delete =
                    tx.prepare_cached("DELETE FROM secrets WHERE client_id = ?1 AND path = ?2")?;
                for path in paths {
                    let found = select
                        .query_row(params![client_id, path, now.millis()], secret_from_row)
                        .optional()?;
                    if let Some(secret) = found {
                        if secret.ephemeral {
                            delete.execute([&client_id, &path])?;
                        }
                        out.push(secret);
                    }
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_is_served_by_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = store.inner.writer.lock().unwrap();
        for queues in [1, 3] {
            for sql in [claim_sql(queues), probe_sql(queues)] {
                let sql = format!("EXPLAIN QUERY PLAN {sql}");
                let mut stmt = conn.prepare(&sql).unwrap();
                let mut args: Vec<rusqlite::types::Value> =
                    vec![0i64.into(), "agent".to_string().into()];
                args.extend((0..queues).map(|i| rusqlite::types::Value::from(format!("q{i}"))));
                let plan: Vec<String> = stmt
                    .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                let seeks = plan
                    .iter()
                    .filter(|l| l.contains("USING INDEX jobs_claim"))
                    .count();
                assert_eq!(seeks, queues, "plan: {plan:#?}");
                assert!(
                    !plan.iter().any(|l| l.starts_with("SCAN jobs")),
                    "the claim must not scan the jobs table: {plan:#?}"
                );
                // Each queue's candidate comes in index order; only the few
                // candidates (one per queue) are sorted.
                let sorts = plan.iter().filter(|l| l.contains("TEMP B-TREE")).count();
                // (The probe's EXISTS needs no order at all.)
                assert!(sorts <= usize::from(queues > 1), "plan: {plan:#?}");
            }
        }
    }

    #[tokio::test]
    async fn a_restriction_outlives_its_owners_until_the_last_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        for id in ["a", "b"] {
            let client = Client::new(id, "hash", Role::Contributor);
            assert!(store.put_client(&client).await.unwrap());
            assert!(store.add_queue_owner("q", id).await.unwrap());
        }
        assert!(store.add_queue_owner("solo", "b").await.unwrap());
        assert!(store.delete_client("b").await.unwrap());
        let listed = store.list_restricted_queues().await.unwrap();
        assert_eq!(
            listed,
            [
                RestrictedQueue {
                    queue: "q".into(),
                    owners: vec!["a".into()]
                },
                RestrictedQueue {
                    queue: "solo".into(),
                    owners: vec![]
                },
            ]
        );
        assert_eq!(
            store.remove_queue_owner("q", "a").await.unwrap(),
            OwnerRemoval::Removed {
                restriction_ended: true
            }
        );
        assert_eq!(store.get_restricted_queue("q").await.unwrap(), None);
        assert!(store
            .get_client("a")
            .await
            .unwrap()
            .unwrap()
            .allowed_queues
            .is_empty());
    }

    #[test]
    fn reopening_keeps_the_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = store.inner.writer.lock().unwrap();
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }
}
