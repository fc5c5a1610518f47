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

use super::{
    AgentStore, CancelOutcome, ClaimRequest, ClientStore, EventStore, JobStore, LeaseEnd, LogStore,
    QueueStore, RetentionStore, SecretStore, StatisticsStore, TokenStore,
};
use crate::agents::{agent_name_key, Agent, AgentOwner, AgentUpdate, ProvisionEntry};
use crate::clients::{Client, OwnerRemoval, RefreshToken, RestrictedQueue};
use crate::events::{JobEvent, ResultChange, MAX_JOB_EVENTS};
use crate::job::{AttachmentsStatus, Job, JobState, NewJob};
use crate::logs::{LegacyStream, LogFragment, LogTail, LogType};
use crate::queues::{JobSummary, SearchQuery};
use crate::results::{self, ResultPatch};
use crate::role::Role;
use crate::secrets::StoredSecret;
use crate::statistics::{CounterKey, DailyCount, Day, GroupBy, StatisticsQuery};
use crate::{Error, Result, Timestamp};

/// The database file inside the data folder.
pub const DATABASE_FILE: &str = "testflinger.sqlite3";
/// How often an unchanged advertised queue's `updated_at` is refreshed.
const QUEUE_REFRESH_MILLIS: i64 = 3_600_000;
/// Idle read connections kept open: enough for the async workers and the
/// blocking readers of a busy server, so that reads seldom open one.
const MAX_IDLE_READERS: usize = 32;
/// Schema migrations, the numbered files of `migrations/`, applied in
/// order; `PRAGMA user_version` is the count applied. A migration is never
/// edited once released: a change is a new file.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_jobs_and_queues.sql"),
    include_str!("migrations/0002_logs_and_live_output.sql"),
    include_str!("migrations/0003_agents_and_job_indexes.sql"),
    include_str!("migrations/0004_claim_index_skips_pending_attachments.sql"),
    include_str!("migrations/0005_clients_tokens_restricted_queues_secrets.sql"),
    include_str!("migrations/0006_job_events.sql"),
    include_str!("migrations/0007_job_statistics.sql"),
    include_str!("migrations/0008_agent_owners_and_job_claimers.sql"),
    include_str!("migrations/0009_result_fields.sql"),
    include_str!("migrations/0010_claim_leases.sql"),
    include_str!("migrations/0011_agent_last_heard.sql"),
    include_str!("migrations/0012_dashboard_indexes.sql"),
];
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
            let started = std::time::Instant::now();
            let mut conn = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            let out = f(&mut conn).map_err(|e| Error::backend(context, e));
            timed(context, started);
            out
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
/// Records a store operation's time (a write's includes its wait for the
/// writer connection).
fn timed(operation: &'static str, started: std::time::Instant) {
    crate::metrics::observe(
        crate::metrics::STORE_DURATION,
        &[("backend", "sqlite"), ("operation", operation)],
        started.elapsed().as_secs_f64(),
    );
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
        let started = std::time::Instant::now();
        let out = f(&conn).map_err(|e| Error::backend(context, e));
        timed(context, started);
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

mod agents;
mod clients;
mod events;
mod jobs;
mod logs;
mod queues;
mod retention;
mod secrets;
mod statistics;
mod tokens;

#[cfg(test)]
mod tests {
    use super::jobs::{claim_sql, expired_leases_sql, probe_sql, ACTIVE_COUNTS_SQL, WAITS_SQL};
    use super::*;

    #[test]
    fn the_dashboard_reads_are_served_by_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = store.inner.writer.lock().unwrap();
        let plan_of = |sql: &str, args: Vec<rusqlite::types::Value>| -> Vec<String> {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let cases: [(&str, Vec<rusqlite::types::Value>, &str); 4] = [
            (ACTIVE_COUNTS_SQL, vec![], "jobs_active"),
            (WAITS_SQL, vec!["q".to_string().into(), 0i64.into(), 10i64.into()], "jobs_waits"),
            // The job search narrowed to a queue, then to a submitter, as
            // `search_jobs` writes them.
            (
                "SELECT job_id FROM jobs WHERE job_queue = ?1 ORDER BY created_at DESC, job_id DESC LIMIT 51",
                vec!["q".to_string().into()],
                "jobs_by_queue_newest",
            ),
            (
                "SELECT job_id FROM jobs WHERE json_extract(job_data, '$.client_id') = ?1 \
                 ORDER BY created_at DESC, job_id DESC LIMIT 51",
                vec!["ci".to_string().into()],
                "jobs_by_submitter",
            ),
        ];
        for (sql, args, index) in cases {
            let plan = plan_of(sql, args);
            assert!(
                plan.iter().any(|l| l.contains(index)),
                "{sql}: not served by {index}: {plan:#?}"
            );
            assert!(
                !plan.iter().any(|l| l.contains("TEMP B-TREE FOR ORDER BY")),
                "{sql}: sorted apart from the index: {plan:#?}"
            );
        }
    }

    #[test]
    fn the_lease_sweep_is_served_by_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = store.inner.writer.lock().unwrap();
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", expired_leases_sql()))
            .unwrap();
        let plan: Vec<String> = stmt
            .query_map(params![0i64, 10i64], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("USING INDEX jobs_lease")),
            "plan: {plan:#?}"
        );
    }

    #[test]
    fn the_claim_is_served_by_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = store.inner.writer.lock().unwrap();
        for queues in [1, 3] {
            for sql in [claim_sql(queues), probe_sql(queues)] {
                let sql = format!("EXPLAIN QUERY PLAN {sql}");
                let mut stmt = conn.prepare(&sql).unwrap();
                let mut args: Vec<rusqlite::types::Value> = vec![
                    0i64.into(),
                    "agent".to_string().into(),
                    "client".to_string().into(),
                    1i64.into(),
                ];
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
