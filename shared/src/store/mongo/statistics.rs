//! The job statistics of MongoStore: collection `job_statistics`, one
//! document `{day: "YYYY-MM-DD", queue, submitted_by: client id or null,
//! count}` per counter, unique on (day, queue, submitted_by) and without a
//! TTL index: retention never deletes them.

use super::*;

impl MongoStore {
    fn job_statistics(&self) -> Collection<Document> {
        self.db.collection(JOB_STATISTICS)
    }

    /// Counts jobs that have just been stored, one `$inc` upsert per
    /// counter. There is no transaction around the jobs and their counts
    /// here, so a counter that fails to move is logged rather than
    /// returned: the jobs are stored, and an error would have the client
    /// submit them again (a job uncounted is better than a job run twice).
    pub(super) async fn count_stored_jobs(&self, jobs: &[NewJob]) {
        for (key, count) in CounterKey::tally(jobs) {
            if let Err(error) = self.count_jobs(&key, count).await {
                tracing::error!(
                    day = %key.day,
                    queue = %key.queue,
                    submitted_by = ?key.submitted_by,
                    jobs = count,
                    %error,
                    "stored jobs could not be counted in the job statistics"
                );
            }
        }
    }

    async fn count_jobs(&self, key: &CounterKey, count: u64) -> mongodb::error::Result<()> {
        let filter = doc! {
            "day": key.day.to_string(),
            "queue": &key.queue,
            "submitted_by": key.submitted_by.as_deref(),
        };
        let update = doc! {"$inc": {"count": i64::try_from(count).unwrap_or(i64::MAX)}};
        // Two first counts of a new counter at once: both upserts insert,
        // the unique index refuses one, and its retry finds the document.
        let mut retried = false;
        loop {
            match self
                .job_statistics()
                .update_one(filter.clone(), update.clone())
                .upsert(true)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if !retried && is_duplicate_key(&e) => retried = true,
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl StatisticsStore for MongoStore {
    async fn daily_job_counts(&self, query: &StatisticsQuery) -> Result<Vec<DailyCount>> {
        let mut filter = doc! {
            "day": {"$gte": query.start.to_string(), "$lt": query.stop.to_string()},
        };
        if !query.queues.is_empty() {
            filter.insert("queue", doc! {"$in": &query.queues});
        }
        if !query.submitters.is_empty() {
            // Strings only: anonymous jobs (null) are never selected.
            filter.insert("submitted_by", doc! {"$in": &query.submitters});
        }
        let group = match query.group_by {
            GroupBy::Queue => "$queue",
            GroupBy::SubmittedBy => "$submitted_by",
        };
        let pipeline = [
            doc! {"$match": filter},
            doc! {"$group": {
                "_id": {"day": "$day", "key": group},
                "count": {"$sum": "$count"},
            }},
        ];
        let context = "reading job statistics";
        let documents: Vec<Document> = self
            .job_statistics()
            .aggregate(pipeline)
            .await
            .map_err(|e| Error::backend(context, e))?
            .try_collect()
            .await
            .map_err(|e| Error::backend(context, e))?;
        Ok(documents
            .iter()
            .filter_map(|d| {
                let id = d.get_document("_id").ok()?;
                let day = Day::parse(id.get_str("day").ok()?)?;
                let key = match id.get("key") {
                    Some(Bson::String(key)) => Some(key.clone()),
                    _ => None,
                };
                let count = u64::try_from(int(d, "count")).ok()?;
                Some(DailyCount { day, key, count })
            })
            .collect())
    }
}
