//! The job events of MongoStore: one document per job, its events in a
//! list capped at `MAX_JOB_EVENTS` by the same `$push` that appends.

use super::*;

#[async_trait]
impl EventStore for MongoStore {
    async fn record_events(&self, job_id: Uuid, events: &[JobEvent], now: Timestamp) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events
            .iter()
            .map(|e| bson::to_bson(&e.to_value()))
            .collect::<std::result::Result<Vec<Bson>, _>>()
            .map_err(|e| Error::backend("recording job events", e))?;
        self.db
            .collection::<Document>(JOB_EVENTS)
            .update_one(
                doc! {"job_id": job_id.to_string()},
                doc! {
                    "$setOnInsert": {"created_at": date(now)},
                    "$push": {"events": {"$each": events, "$slice": MAX_JOB_EVENTS as i64}},
                },
            )
            .upsert(true)
            .await
            .map_err(|e| Error::backend("recording job events", e))?;
        Ok(())
    }

    async fn job_events(&self, job_id: Uuid) -> Result<Vec<JobEvent>> {
        let found = self
            .db
            .collection::<Document>(JOB_EVENTS)
            .find_one(doc! {"job_id": job_id.to_string()})
            .await
            .map_err(|e| Error::backend("reading job events", e))?;
        let events = found
            .and_then(|d| d.get_array("events").ok().cloned())
            .unwrap_or_default();
        Ok(events
            .into_iter()
            .filter_map(|e| JobEvent::from_value(&e.into_relaxed_extjson()))
            .collect())
    }
}
