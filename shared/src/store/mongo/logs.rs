//! The logs of MongoStore.

use super::*;
use crate::logs::{TailBuilder, LOG_PHASES};

#[async_trait]
impl LogStore for MongoStore {
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

    async fn read_log_tails(
        &self,
        job_id: Uuid,
        log_type: LogType,
        max_bytes: u64,
    ) -> Result<Vec<LogTail>> {
        let id = job_id.to_string();
        let mut tails = Vec::new();
        for phase in LOG_PHASES {
            // Newest first, a couple of fragments per batch: the cursor is
            // dropped as soon as the tail is complete.
            let mut cursor = self
                .db
                .collection::<Document>(LOGS)
                .find(doc! {"job_id": &id, "log_type": log_type.as_str(), "phase": phase})
                .sort(doc! {"fragment_number": -1})
                .projection(doc! {"fragment_number": 1, "log_data": 1})
                .batch_size(2)
                .await
                .map_err(|e| Error::backend("reading the ends of logs", e))?;
            let mut tail = TailBuilder::new(phase, max_bytes);
            while let Some(document) = cursor
                .try_next()
                .await
                .map_err(|e| Error::backend("reading the ends of logs", e))?
            {
                let text = document.get_str("log_data").unwrap_or_default();
                if !tail.push(int(&document, "fragment_number"), text) {
                    break;
                }
            }
            tails.extend(tail.finish());
        }
        Ok(tails)
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
}
