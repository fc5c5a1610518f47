//! The job events of SqliteStore.

use super::*;

#[async_trait]
impl EventStore for SqliteStore {
    async fn record_events(&self, job_id: Uuid, events: &[JobEvent], now: Timestamp) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events: Vec<String> = events.iter().map(|e| e.to_value().to_string()).collect();
        self.write("recording job events", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let id = job_id.to_string();
            let stored: i64 = tx
                .prepare_cached("SELECT count(*) FROM job_events WHERE job_id = ?1")?
                .query_row([&id], |r| r.get(0))?;
            let room = MAX_JOB_EVENTS.saturating_sub(usize::try_from(stored).unwrap_or(0));
            for event in events.iter().take(room) {
                tx.prepare_cached(
                    "INSERT INTO job_events (job_id, recorded_at, event) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, now.millis(), event])?;
            }
            tx.commit()
        })
        .await
    }

    async fn job_events(&self, job_id: Uuid) -> Result<Vec<JobEvent>> {
        self.read("reading job events", move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT event FROM job_events WHERE job_id = ?1 ORDER BY seq")?;
            let rows = stmt.query_map([job_id.to_string()], |r| r.get::<_, String>(0))?;
            let mut events = Vec::new();
            for text in rows {
                let value: Value = serde_json::from_str(&text?).unwrap_or(Value::Null);
                events.extend(JobEvent::from_value(&value));
            }
            Ok(events)
        })
        .await
    }
}
