//! The retention of SqliteStore.

use super::*;

#[async_trait]
impl RetentionStore for SqliteStore {
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
                "DELETE FROM job_events WHERE recorded_at < ?1",
                [cutoff.millis()],
            )?;
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
}
