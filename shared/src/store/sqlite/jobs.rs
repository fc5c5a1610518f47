//! The jobs of SqliteStore.

use super::*;

/// A job's columns; the 11th is its posted result keys (`result_fields`),
/// laid over `result_data` by [`job_from_row`], then the lease's.
/// One queue's newest claim waits (`?1` queue, `?2` since, `?3` limit).
pub(super) const WAITS_SQL: &str = "SELECT started_at - created_at FROM jobs \
     WHERE job_queue = ?1 AND started_at IS NOT NULL AND started_at >= ?2 \
     ORDER BY started_at DESC LIMIT ?3";

/// Unfinished jobs per queue and state; the WHERE clause is the
/// `jobs_active` index's, word for word, so that the partial index serves it.
pub(super) const ACTIVE_COUNTS_SQL: &str = "SELECT job_queue, state, count(*) FROM jobs \
     WHERE state NOT IN ('complete', 'completed', 'cancelled') \
     GROUP BY job_queue, state";

pub(super) const JOB_COLUMNS: &str =
    "job_id, job_queue, job_priority, state, created_at, started_at, \
     attachments_status, job_data, result_data, claimed_by, \
     (SELECT json_group_object(key, json(value)) FROM result_fields \
      WHERE result_fields.job_id = jobs.job_id), \
     lease_until, lease_holder, attempts, passed_over";

/// A job whose lease may move: claimed and not finished (the condition of
/// the `jobs_lease` index, word for word).
const HELD: &str = "state NOT IN ('waiting', 'complete', 'completed', 'cancelled')";

/// The jobs whose lease ran out before ?1, oldest lease first, at most ?2,
/// served by the `jobs_lease` index.
pub(super) fn expired_leases_sql() -> String {
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs \
         WHERE lease_until IS NOT NULL AND {HELD} AND lease_until < ?1 \
         ORDER BY lease_until LIMIT ?2"
    )
}

/// Stores one new job in state `waiting`: the row of [`Store::insert_job`]
/// and [`Store::insert_jobs`] (which count it, in the same transaction).
/// A new job's row, its data already serialized: a large job is then
/// never copied whole on its way to the writer thread.
#[derive(Clone)]
pub(super) struct JobRow {
    job_id: String,
    job_queue: String,
    job_priority: i64,
    created_at: i64,
    attachments_status: Option<&'static str>,
    exclude_agents: Option<String>,
    job_data: String,
}

impl JobRow {
    pub(super) fn of(job: &NewJob) -> JobRow {
        JobRow {
            job_id: job.job_id.to_string(),
            job_queue: job.job_queue.clone(),
            job_priority: job.job_priority,
            created_at: job.created_at.millis(),
            attachments_status: job.attachments_status.map(AttachmentsStatus::as_str),
            exclude_agents: (!job.exclude_agents.is_empty())
                .then(|| Value::from(job.exclude_agents.clone()).to_string()),
            job_data: to_json(&job.job_data),
        }
    }
}

pub(super) fn insert_job_row(conn: &Connection, job: &JobRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO jobs (job_id, job_queue, job_priority, state, created_at, \
         attachments_status, exclude_agents, job_data, updated_at) \
         VALUES (?1, ?2, ?3, 'waiting', ?4, ?5, ?6, ?7, ?4)",
    )?
    .execute(params![
        job.job_id,
        job.job_queue,
        job.job_priority,
        job.created_at,
        job.attachments_status,
        job.exclude_agents,
        job.job_data,
    ])?;
    Ok(())
}

pub(super) fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<JobSummary> {
    let job = job_from_row(row)?;
    Ok(JobSummary::of(&job))
}

pub(super) fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let id: String = row.get(0)?;
    let attachments: Option<String> = row.get(6)?;
    let job_data: String = row.get(7)?;
    let mut result_data = parse_object(&row.get::<_, String>(8)?);
    if let Some(posted) = row.get::<_, Option<String>>(10)? {
        result_data.extend(parse_object(&posted));
    }
    Ok(Job {
        job_id: Uuid::parse_str(&id).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })?,
        job_queue: row.get(1)?,
        job_priority: row.get(2)?,
        state: JobState::parse(&row.get::<_, String>(3)?),
        created_at: Timestamp::from_millis(row.get(4)?),
        started_at: row.get::<_, Option<i64>>(5)?.map(Timestamp::from_millis),
        attachments_status: attachments.as_deref().and_then(AttachmentsStatus::parse),
        job_data: parse_object(&job_data),
        result_data,
        claimed_by: row.get(9)?,
        lease_until: row.get::<_, Option<i64>>(11)?.map(Timestamp::from_millis),
        lease_holder: row.get(12)?,
        attempts: row.get(13)?,
        passed_over: row.get(14)?,
    })
}

/// The `seq` of the job a claim takes for `queues` distinct queues: the best
/// candidate of each queue comes from the `jobs_claim` index (one seek per
/// queue), then the best of those. Parameters: ?2 agent name, then one per
/// queue from ?5 (?3 is the claiming client and ?4 the lease's end, used by
/// [`claim_sql`]).
pub(super) fn candidate_sql(queues: usize) -> String {
    let per_queue: Vec<String> = (0..queues)
        .map(|i| {
            format!(
                "SELECT * FROM (SELECT seq, job_priority FROM jobs \
                 WHERE state = 'waiting' AND job_queue = ?{} \
                 AND (attachments_status IS NULL OR attachments_status = 'complete') \
                 AND (exclude_agents IS NULL OR ?2 IS NULL \
                      OR NOT EXISTS (SELECT 1 FROM json_each(jobs.exclude_agents) \
                                     WHERE lower(value) = lower(?2))) \
                 AND (passed_over IS NULL OR ?2 IS NULL OR lower(passed_over) <> lower(?2)) \
                 ORDER BY job_priority DESC, seq LIMIT 1)",
                i + 5
            )
        })
        .collect();
    format!(
        "SELECT seq FROM ({}) ORDER BY job_priority DESC, seq LIMIT 1",
        per_queue.join(" UNION ALL ")
    )
}

/// The claim: the candidate flipped to `running` in one statement, its
/// lease started (a claim without a lease is not counted as an attempt:
/// the job is then as jobs claimed before leases). Parameters: ?1 now, ?3 the claiming client, ?4 the lease's
/// end, then those of [`candidate_sql`].
pub(super) fn claim_sql(queues: usize) -> String {
    format!(
        "UPDATE jobs SET state = 'running', started_at = ?1, updated_at = ?1, claimed_by = ?3, \
         lease_until = ?4, lease_holder = ?2, passed_over = NULL, \
         attempts = attempts + (?4 IS NOT NULL), \
         result_data = CASE WHEN ?2 IS NULL THEN result_data \
                       ELSE json_set(result_data, '$.agent_id', ?2) END \
         WHERE seq = ({}) RETURNING {JOB_COLUMNS}",
        candidate_sql(queues)
    )
}

/// Whether the claim would find a job; the same parameters as [`claim_sql`].
pub(super) fn probe_sql(queues: usize) -> String {
    format!(
        "SELECT ?1 IS NOT NULL AND EXISTS ({})",
        candidate_sql(queues)
    )
}

/// The claim statement's parameters: ?1 now, ?2 agent name, ?3 the
/// claiming client, ?4 the lease's end, then the queues.
pub(super) fn claim_values(request: &ClaimRequest, now: Timestamp) -> Vec<rusqlite::types::Value> {
    let mut values: Vec<rusqlite::types::Value> = vec![
        now.millis().into(),
        request.agent_name.clone().into(),
        request.client_id.clone().into(),
        request.lease_until.map(Timestamp::millis).into(),
    ];
    values.extend(request.queues.iter().cloned().map(Into::into));
    values
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn insert_job(&self, job: &NewJob) -> Result<()> {
        let (row, key) = (JobRow::of(job), CounterKey::of(job));
        // The job and its count: one transaction, so both or neither.
        self.write("storing a job", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            insert_job_row(&tx, &row)?;
            super::statistics::count_jobs(&tx, &key, 1)?;
            tx.commit()
        })
        .await
    }

    async fn insert_jobs(&self, jobs: &[NewJob]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let rows: Vec<JobRow> = jobs.iter().map(JobRow::of).collect();
        let counts = CounterKey::tally(jobs);
        // One transaction: one commit (and one WAL sync) for the batch.
        self.write("storing jobs", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for row in &rows {
                insert_job_row(&tx, row)?;
            }
            for (key, count) in &counts {
                super::statistics::count_jobs(&tx, key, *count)?;
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
            let mut claimed = conn
                .prepare_cached(&claim_sql(request.queues.len()))?
                .query_row(params_from_iter(claim_values(&request, now)), job_from_row)
                .optional()?;
            // The claim names the agent: an `agent_id` posted to the result
            // before it no longer stands (as the claim's `$set` on MongoDB).
            if let (Some(job), Some(agent)) = (&mut claimed, &request.agent_name) {
                let dropped = conn
                    .prepare_cached(
                        "DELETE FROM result_fields WHERE job_id = ?1 AND key = 'agent_id'",
                    )?
                    .execute([job.job_id.to_string()])?;
                if dropped > 0 {
                    job.result_data
                        .insert("agent_id".into(), Value::String(agent.clone()));
                }
            }
            Ok(claimed)
        })
        .await
    }

    async fn renew_lease(
        &self,
        job_id: Uuid,
        agent: Option<&str>,
        until: Timestamp,
    ) -> Result<bool> {
        let agent = agent.map(str::to_owned);
        self.write("renewing a lease", move |conn| {
            let changed = conn
                .prepare_cached(&format!(
                    "UPDATE jobs SET lease_until = max(lease_until, ?3) \
                     WHERE job_id = ?1 AND lease_until IS NOT NULL AND {HELD} \
                     AND (?2 IS NULL OR lease_holder IS NULL OR lower(lease_holder) = lower(?2))"
                ))?
                .execute(params![job_id.to_string(), agent, until.millis()])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn expired_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<Job>> {
        self.read("finding expired leases", move |conn| {
            let mut stmt = conn.prepare_cached(&expired_leases_sql())?;
            let rows = stmt.query_map(params![now.millis(), limit as i64], job_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn end_lease(
        &self,
        job_id: Uuid,
        attempts: i64,
        now: Timestamp,
        end: LeaseEnd,
    ) -> Result<bool> {
        self.write("ending a lease", move |conn| {
            let (state, passed_over) = end.outcome();
            let changed = conn
                .prepare_cached(&format!(
                    "UPDATE jobs SET state = ?4, lease_until = NULL, lease_holder = NULL, \
                     passed_over = ?5, updated_at = ?3 \
                     WHERE job_id = ?1 AND attempts = ?2 AND lease_until IS NOT NULL \
                     AND {HELD} AND lease_until < ?3"
                ))?
                .execute(params![
                    job_id.to_string(),
                    attempts,
                    now.millis(),
                    state.as_str(),
                    passed_over
                ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn cancel_job(&self, job_id: Uuid, now: Timestamp) -> Result<CancelOutcome> {
        self.write("cancelling a job", move |conn| {
            let id = job_id.to_string();
            let terminal = JobState::terminal_names()
                .map(|s| format!("'{s}'"))
                .join(", ");
            let changed = conn
                .prepare_cached(&format!(
                    "UPDATE jobs SET state = '{}', updated_at = ?2 \
                     WHERE job_id = ?1 AND state NOT IN ({terminal})",
                    JobState::Cancelled
                ))?
                .execute(params![id, now.millis()])?;
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
    ) -> Result<Option<ResultChange>> {
        let patch = patch.clone();
        // Only the posted keys are written (one row each in `result_fields`),
        // and only `status` and `agent_id` are read: the cost follows the
        // post, whatever the size of the result already stored.
        self.write("storing a result", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let id = job_id.to_string();
            let current: Option<(String, Option<String>, Option<String>)> = tx
                .prepare_cached(
                    "SELECT state, \
                     coalesce((SELECT value FROM result_fields \
                               WHERE job_id = ?1 AND key = 'status'), \
                              json_extract(result_data, '$.status')), \
                     coalesce((SELECT json_extract(value, '$') FROM result_fields \
                               WHERE job_id = ?1 AND key = 'agent_id'), \
                              json_extract(result_data, '$.agent_id')) \
                     FROM jobs WHERE job_id = ?1",
                )?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let Some((state, status, agent_id)) = current else {
                return Ok(None);
            };
            let before = JobState::parse(&state);
            let change = ResultChange {
                after: before.clone(),
                previous_status: status.as_deref().map(parse_object).unwrap_or_default(),
                agent_id,
                before,
            };
            let mut put = tx.prepare_cached(
                "INSERT INTO result_fields (job_id, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (job_id, key) DO UPDATE SET value = excluded.value",
            )?;
            for (key, value) in &patch.fields {
                put.execute(params![id, key, value.to_string()])?;
            }
            let mut after = change.before.clone();
            if let Some(reported) = &patch.job_state {
                match change.before.after_report(reported) {
                    Some(next) => {
                        tx.prepare_cached(
                            "DELETE FROM result_fields WHERE job_id = ?1 AND key = ?2",
                        )?
                        .execute(params![id, results::REPORTED_STATE_KEY])?;
                        // A result stored before `result_fields` keeps it in the column.
                        tx.prepare_cached(
                            "UPDATE jobs SET result_data = json_remove(result_data, '$.' || ?2) \
                             WHERE job_id = ?1 AND json_type(result_data, '$.' || ?2) IS NOT NULL",
                        )?
                        .execute(params![id, results::REPORTED_STATE_KEY])?;
                        after = next;
                    }
                    None => {
                        put.execute(params![
                            id,
                            results::REPORTED_STATE_KEY,
                            Value::String(reported.clone()).to_string()
                        ])?;
                    }
                }
            }
            drop(put);
            tx.prepare_cached("UPDATE jobs SET state = ?2, updated_at = ?3 WHERE job_id = ?1")?
                .execute(params![id, after.as_str(), now.millis()])?;
            tx.commit()?;
            Ok(Some(ResultChange { after, ..change }))
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
            if JobState::parse(&state) != JobState::Waiting {
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
            // Per queue, the newest `per_queue` claims from the covering
            // `jobs_waits` index: the cost follows the sample, not the
            // number of jobs claimed in the window.
            let queues = if queues.is_empty() {
                let mut stmt = conn.prepare_cached(
                    "SELECT DISTINCT job_queue FROM jobs WHERE started_at IS NOT NULL",
                )?;
                let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
                names.collect::<rusqlite::Result<Vec<_>>>()?
            } else {
                queues
            };
            let mut stmt = conn.prepare_cached(WAITS_SQL)?;
            let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            for queue in queues {
                let waits = stmt
                    .query_map(params![queue, since.millis(), per_queue as i64], |r| {
                        r.get::<_, i64>(0)
                    })?
                    .map(|wait| wait.map(|w| w.max(0)))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                if !waits.is_empty() {
                    out.insert(queue, waits);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn active_job_counts(&self) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
        self.read("counting unfinished jobs", move |conn| {
            let mut stmt = conn.prepare_cached(ACTIVE_COUNTS_SQL)?;
            let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (queue, state, count) = row?;
                out.entry(queue).or_default().insert(state, count as u64);
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
                let terminal: Vec<String> = JobState::terminal_names().iter().map(|s| s.to_string()).collect();
                state_terms.push(format!("state NOT IN ({})", placeholders(&terminal, &mut values)));
            }
            if !state_terms.is_empty() {
                conditions.push(format!("({})", state_terms.join(" OR ")));
            }
            if let Some(queue) = &query.queue {
                values.push(queue.clone().into());
                conditions.push(format!("job_queue = ?{}", values.len()));
            }
            if let Some(client) = &query.submitted_by {
                values.push(client.clone().into());
                conditions.push(format!("json_extract(job_data, '$.client_id') = ?{}", values.len()));
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
}
