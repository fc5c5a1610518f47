//! The queues of SqliteStore.

use super::*;

#[async_trait]
impl QueueStore for SqliteStore {
    async fn upsert_queues(&self, queues: &BTreeMap<String, String>, now: Timestamp) -> Result<()> {
        // Agents re-post the same queues every cycle. Only a new or changed
        // description, or an `updated_at` older than the refresh period
        // (retention needs no finer), takes the single writer.
        let fresh_since = now.millis() - QUEUE_REFRESH_MILLIS;
        let changed: BTreeMap<String, String> = self.read_now("reading queues", |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT description, updated_at FROM queues WHERE name = ?1")?;
            let mut changed = BTreeMap::new();
            for (name, description) in queues {
                let current: Option<(Option<String>, i64)> = stmt
                    .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let unchanged = matches!(&current,
                        Some((Some(stored), at)) if stored == description && *at >= fresh_since);
                if !unchanged {
                    changed.insert(name.clone(), description.clone());
                }
            }
            Ok(changed)
        })?;
        if changed.is_empty() {
            return Ok(());
        }
        self.write("storing queues", move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO queues (name, description, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
                     updated_at = excluded.updated_at",
                )?;
                for (name, description) in &changed {
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
        self.read_now("reading images", move |conn| {
            let images: Option<Option<String>> = conn
                .prepare_cached("SELECT images FROM queues WHERE name = ?1")?
                .query_row([queue], |r| r.get(0))
                .optional()?;
            Ok(images
                .flatten()
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default())
        })
    }
}
