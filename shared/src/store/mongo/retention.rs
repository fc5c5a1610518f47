//! The retention of MongoStore.

use super::*;

#[async_trait]
impl RetentionStore for MongoStore {
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
        self.db
            .collection::<Document>(JOB_EVENTS)
            .delete_many(doc! {"created_at": {"$lt": date(cutoff)}})
            .await
            .map_err(|e| Error::backend("purging expired job events", e))?;
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
}
