//! The jobs of MongoStore.

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

pub(super) fn job_from_document(mut document: Document) -> Result<Job> {
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
        Some(Bson::String(s)) => JobState::parse(&s),
        _ => return Err(corrupt("result_data.job_state")),
    };
    let job_data = to_json_map(job_data);
    let claimed_by = document.get_str("claimed_by").ok().map(str::to_owned);
    let lease_until = document
        .get_datetime("lease_until")
        .ok()
        .map(|d| Timestamp::from_millis(d.timestamp_millis()));
    let lease_holder = document.get_str("lease_holder").ok().map(str::to_owned);
    let passed_over = document.get_str("passed_over").ok().map(str::to_owned);
    let attempts = int(&document, "attempts");
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
        claimed_by,
        lease_until,
        lease_holder,
        attempts,
        passed_over,
    })
}

/// A new job's document, in state `waiting`; refused (413) when MongoDB
/// could not store it.
pub(super) fn job_document(job: &NewJob) -> Result<Document> {
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
        "result_data": {"job_state": JobState::Waiting.as_str()},
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
            "result_data.job_state": JobState::Waiting.as_str(),
            "job_data.job_queue": {"$in": &request.queues},
            format!("job_data.{ATTACHMENTS_STATUS}"): {"$ne": AttachmentsStatus::Waiting.as_str()},
        };
        if let Some(agent) = &request.agent_name {
            // `exclude_agents` and `passed_over` compared case-insensitively
            // (`agents::agent_name_key`): `$toLower` folds ASCII as it does.
            // The index serves the rest of the filter; this is checked on
            // the candidates it yields.
            let key = crate::agents::agent_name_key(agent);
            filter.insert(
                "$expr",
                doc! {"$and": [
                    {"$not": [{"$in": [
                        &key,
                        {"$map": {
                            "input": {"$ifNull": ["$job_data.exclude_agents", []]},
                            "in": {"$toLower": "$$this"},
                        }},
                    ]}]},
                    {"$ne": [{"$toLower": {"$ifNull": ["$passed_over", ""]}}, &key]},
                ]},
            );
        }
        let mut set = doc! {
            "result_data.job_state": JobState::Running.as_str(),
            "started_at": date(now),
            "updated_at": date(now),
            "lease_until": request.lease_until.map(date),
            "lease_holder": request.agent_name.as_deref(),
            "passed_over": Bson::Null,
        };
        if let Some(agent) = &request.agent_name {
            set.insert("result_data.agent_id", agent);
        }
        if let Some(client) = &request.client_id {
            set.insert("claimed_by", client);
        }
        ClaimQuery {
            filter,
            // A claim without a lease is not an attempt (as in SQLite).
            update: doc! {"$set": set, "$inc": {"attempts": i32::from(request.lease_until.is_some())}},
            // `_id` (an ObjectId, increasing within a process) breaks ties
            // between jobs created in the same millisecond.
            sort: doc! {"job_priority": -1, "created_at": 1, "_id": 1},
        }
    }
}

pub(super) fn summary_from_document(document: Document) -> Result<JobSummary> {
    Ok(JobSummary::of(&job_from_document(document)?))
}

/// `filter` narrowed to jobs whose lease may move: holding one, claimed
/// and not finished.
fn held_lease(mut filter: Document) -> Document {
    let mut states = terminal_states();
    states.push(JobState::Waiting.as_str());
    filter.insert("result_data.job_state", doc! {"$nin": states});
    filter.insert("lease_until", doc! {"$type": "date"});
    filter
}

pub(super) fn terminal_states() -> Vec<&'static str> {
    JobState::terminal_names().to_vec()
}

/// Set once a claim found the claim index missing (`setup` never ran):
/// later claims of this process do not name it.
static CLAIM_INDEX_MISSING: AtomicBool = AtomicBool::new(false);

/// Whether MongoDB refused a query for naming an index that does not exist.
fn is_missing_index(error: &mongodb::error::Error) -> bool {
    let text = error.to_string();
    text.contains("hint") && text.contains("existing index")
}

#[async_trait]
impl JobStore for MongoStore {
    async fn insert_job(&self, job: &NewJob) -> Result<()> {
        self.jobs()
            .insert_one(job_document(job)?)
            .await
            .map_err(|e| write_error("storing a job", e))?;
        self.count_stored_jobs(std::slice::from_ref(job)).await;
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
        self.count_stored_jobs(jobs).await;
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
        let jobs = self.jobs();
        let claim = |hinted: bool| {
            let action = jobs
                .find_one_and_update(query.filter.clone(), query.update.clone())
                .sort(query.sort.clone())
                .return_document(ReturnDocument::After);
            if hinted {
                action.hint(mongodb::options::Hint::Name(CLAIM_INDEX.into()))
            } else {
                action
            }
        };
        let claimed = if CLAIM_INDEX_MISSING.load(Ordering::Relaxed) {
            claim(false).await
        } else {
            match claim(true).await {
                Err(e) if is_missing_index(&e) => {
                    // Never a 500 for it: claim without the hint (the planner
                    // still finds whatever index exists), and say once how to
                    // fix the deployment.
                    if !CLAIM_INDEX_MISSING.swap(true, Ordering::Relaxed) {
                        tracing::error!(
                            "the MongoDB indexes are missing (index {CLAIM_INDEX:?} not found): claims \
                             run without it and slow down as queues grow; run `testflinger-local setup` \
                             once against this database"
                        );
                    }
                    claim(false).await
                }
                other => other,
            }
        }
        .map_err(|e| Error::backend("claiming a job", e))?;
        // One write: the wait is `started_at - created_at` of the job itself.
        claimed.map(job_from_document).transpose()
    }

    async fn renew_lease(
        &self,
        job_id: Uuid,
        agent: Option<&str>,
        until: Timestamp,
    ) -> Result<bool> {
        let mut filter = held_lease(doc! {"job_id": job_id.to_string()});
        if let Some(agent) = agent {
            filter.insert(
                "$or",
                vec![
                    doc! {"lease_holder": Bson::Null},
                    doc! {"$expr": {"$eq": [
                        {"$toLower": {"$ifNull": ["$lease_holder", ""]}},
                        crate::agents::agent_name_key(agent),
                    ]}},
                ],
            );
        }
        let changed = self
            .jobs()
            .update_one(filter, doc! {"$max": {"lease_until": date(until)}})
            .await
            .map_err(|e| Error::backend("renewing a lease", e))?;
        Ok(changed.matched_count == 1)
    }

    async fn expired_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<Job>> {
        let mut filter = held_lease(Document::new());
        filter.insert("lease_until", doc! {"$type": "date", "$lt": date(now)});
        let documents: Vec<Document> = self
            .jobs()
            .find(filter)
            .sort(doc! {"lease_until": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| Error::backend("finding expired leases", e))?
            .try_collect()
            .await
            .map_err(|e| Error::backend("finding expired leases", e))?;
        documents.into_iter().map(job_from_document).collect()
    }

    async fn end_lease(
        &self,
        job_id: Uuid,
        attempts: i64,
        now: Timestamp,
        end: LeaseEnd,
    ) -> Result<bool> {
        let mut filter = held_lease(doc! {"job_id": job_id.to_string(), "attempts": attempts});
        filter.insert("lease_until", doc! {"$type": "date", "$lt": date(now)});
        let (state, passed_over) = end.outcome();
        let changed = self
            .jobs()
            .update_one(
                filter,
                doc! {"$set": {
                    "result_data.job_state": state.as_str(),
                    "lease_until": Bson::Null,
                    "lease_holder": Bson::Null,
                    "passed_over": passed_over,
                    "updated_at": date(now),
                }},
            )
            .await
            .map_err(|e| Error::backend("ending a lease", e))?;
        Ok(changed.matched_count == 1)
    }

    async fn cancel_job(&self, job_id: Uuid, now: Timestamp) -> Result<CancelOutcome> {
        let id = job_id.to_string();
        let changed = self
            .jobs()
            .update_one(
                doc! {"job_id": &id, "result_data.job_state": {"$nin": terminal_states()}},
                doc! {"$set": {"result_data.job_state": JobState::Cancelled.as_str(), "updated_at": date(now)}},
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
    ) -> Result<Option<ResultChange>> {
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
        // What the change was is read from the document as the same atomic
        // update found it.
        let seen = doc! {
            "result_data.job_state": 1, "result_data.status": 1, "result_data.agent_id": 1,
        };
        let change_from = |before: Document, after: Option<JobState>| {
            let result = before
                .get_document("result_data")
                .cloned()
                .unwrap_or_default();
            let before = JobState::parse(result.get_str("job_state").unwrap_or_default());
            ResultChange {
                after: after.unwrap_or_else(|| before.clone()),
                before,
                previous_status: result
                    .get_document("status")
                    .map(|s| to_json_map(s.clone()))
                    .unwrap_or_default(),
                agent_id: result.get_str("agent_id").ok().map(str::to_owned),
            }
        };
        // The state moves only when the job is not terminal (one atomic
        // update); otherwise the report is only recorded, as
        // `JobState::after_report` says.
        if let Some(reported) = patch
            .job_state
            .as_deref()
            .filter(|s| JobState::parse(s) != JobState::Waiting)
        {
            let mut moving = set.clone();
            moving.insert("result_data.job_state", reported);
            let before = self
                .jobs()
                .find_one_and_update(
                    doc! {"job_id": &id, "result_data.job_state": {"$nin": terminal_states()}},
                    doc! {
                        "$set": moving,
                        "$unset": {format!("result_data.{}", results::REPORTED_STATE_KEY): ""},
                    },
                )
                .projection(seen.clone())
                .return_document(ReturnDocument::Before)
                .await
                .map_err(|e| write_error("storing a result", e))?;
            if let Some(before) = before {
                return Ok(Some(change_from(before, Some(JobState::parse(reported)))));
            }
        }
        if let Some(reported) = &patch.job_state {
            set.insert(
                format!("result_data.{}", results::REPORTED_STATE_KEY),
                reported.as_str(),
            );
        }
        let before = self
            .jobs()
            .find_one_and_update(doc! {"job_id": &id}, doc! {"$set": set})
            .projection(seen)
            .return_document(ReturnDocument::Before)
            .await
            .map_err(|e| write_error("storing a result", e))?;
        Ok(before.map(|before| change_from(before, None)))
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
        if job.state != JobState::Waiting {
            return Ok(None);
        }
        let (priority, created) = (job.job_priority, date(job.created_at));
        let ahead = self
            .jobs()
            .count_documents(doc! {
                "result_data.job_state": JobState::Waiting.as_str(),
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

    async fn active_job_counts(&self) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
        // The claim index leads with the state: terminal states are ranges
        // the match skips.
        let pipeline = [
            doc! {"$match": {"result_data.job_state": {"$nin": terminal_states()}}},
            doc! {"$group": {
                "_id": {"queue": "$job_data.job_queue", "state": "$result_data.job_state"},
                "count": {"$sum": 1},
            }},
        ];
        let context = "counting unfinished jobs";
        let documents: Vec<Document> = self
            .jobs()
            .aggregate(pipeline)
            .await
            .map_err(|e| Error::backend(context, e))?
            .try_collect()
            .await
            .map_err(|e| Error::backend(context, e))?;
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (queue, state, count) in documents.iter().filter_map(|d| {
            let id = d.get_document("_id").ok()?;
            let count = match d.get("count")? {
                Bson::Int32(n) => u64::try_from(*n).ok()?,
                Bson::Int64(n) => u64::try_from(*n).ok()?,
                _ => return None,
            };
            Some((
                id.get_str("queue").ok()?.to_owned(),
                id.get_str("state").ok()?.to_owned(),
                count,
            ))
        }) {
            *out.entry(queue).or_default().entry(state).or_default() += count;
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
        if let Some(queue) = &query.queue {
            conditions.push(doc! {"job_data.job_queue": queue});
        }
        if let Some(client) = &query.submitted_by {
            conditions.push(doc! {"job_data.client_id": client});
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
}
