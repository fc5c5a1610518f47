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
use crate::job::{self, AttachmentsStatus, Job, NewJob};
use crate::logs::{LegacyStream, LogFragment, LogType};
use crate::results::{self, ResultPatch};
use crate::{Error, Result, Timestamp};

/// The database file inside the data folder.
pub const DATABASE_FILE: &str = "testflinger.sqlite3";

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

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

    /// Runs `f` on a pooled read connection, off the async threads.
    async fn read<T, F>(&self, context: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&inner.path)?,
            };
            let out = f(&conn).map_err(|e| Error::backend(context, e));
            let mut readers = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if readers.len() < MAX_IDLE_READERS {
                readers.push(conn);
            }
            out
        })
        .await
        .map_err(|e| Error::backend(context, e))?
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

/// The claim statement for `queues` distinct queues: the best candidate of
/// each queue comes from the `jobs_claim` index (one seek per queue), the best
/// of those is flipped to `running`. Parameters: ?1 now, ?2 agent name, then
/// one per queue.
fn claim_sql(queues: usize) -> String {
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
        "UPDATE jobs SET state = 'running', started_at = ?1, updated_at = ?1 \
         WHERE seq = (SELECT seq FROM ({}) ORDER BY job_priority DESC, seq LIMIT 1) \
         RETURNING {JOB_COLUMNS}",
        per_queue.join(" UNION ALL ")
    )
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_job(&self, job: &NewJob) -> Result<()> {
        let job = job.clone();
        self.write("storing a job", move |conn| {
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
        })
        .await
    }

    async fn get_job(&self, job_id: Uuid) -> Result<Option<Job>> {
        self.read("reading a job", move |conn| {
            conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?1"))?
                .query_row([job_id.to_string()], job_from_row)
                .optional()
        })
        .await
    }

    async fn claim_job(&self, request: &ClaimRequest, now: Timestamp) -> Result<Option<Job>> {
        if request.queues.is_empty() {
            return Ok(None);
        }
        let request = request.clone();
        // One statement, so one atomic write; the wait is the job's own
        // `started_at - created_at`.
        self.write("claiming a job", move |conn| {
            let mut values: Vec<rusqlite::types::Value> =
                vec![now.millis().into(), request.agent_name.clone().into()];
            values.extend(request.queues.iter().cloned().map(Into::into));
            conn.prepare_cached(&claim_sql(request.queues.len()))?
                .query_row(params_from_iter(values), job_from_row)
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
        let queues = queues.clone();
        self.write("storing queues", move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO queues (name, description, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
                     updated_at = excluded.updated_at",
                )?;
                for (name, description) in &queues {
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
        self.read("reading images", move |conn| {
            let images: Option<Option<String>> = conn
                .prepare_cached("SELECT images FROM queues WHERE name = ?1")?
                .query_row([queue], |r| r.get(0))
                .optional()?;
            Ok(images
                .flatten()
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default())
        })
        .await
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
                "DELETE FROM live_output WHERE updated_at < ?1",
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
            let sql = format!("EXPLAIN QUERY PLAN {}", claim_sql(queues));
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
            assert_eq!(sorts, usize::from(queues > 1), "plan: {plan:#?}");
        }
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
