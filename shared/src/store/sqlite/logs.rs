//! The logs of SqliteStore.

use super::*;
use crate::logs::{TailBuilder, LOG_PHASES};

#[async_trait]
impl LogStore for SqliteStore {
    async fn append_log(
        &self,
        job_id: Uuid,
        log_type: LogType,
        fragment: &LogFragment,
        now: Timestamp,
    ) -> Result<bool> {
        let fragment = fragment.clone();
        self.write("storing a log fragment", move |conn| {
            let id = job_id.to_string();
            if !job_exists(conn, &id)? {
                return Ok(false);
            }
            conn.prepare_cached(
                "INSERT INTO logs (job_id, log_type, fragment_number, phase, timestamp, log_data, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (job_id, log_type, fragment_number) DO NOTHING",
            )?
            .execute(params![
                id,
                log_type.as_str(),
                fragment.fragment_number,
                fragment.phase,
                fragment.timestamp.millis(),
                fragment.log_data,
                now.millis()
            ])?;
            Ok(true)
        })
        .await
    }

    async fn read_logs(
        &self,
        job_id: Uuid,
        log_type: LogType,
        start_fragment: i64,
    ) -> Result<Vec<LogFragment>> {
        self.read("reading logs", move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT fragment_number, timestamp, phase, log_data FROM logs \
                 WHERE job_id = ?1 AND log_type = ?2 AND fragment_number >= ?3 \
                 ORDER BY fragment_number",
            )?;
            let rows = stmt.query_map(
                params![job_id.to_string(), log_type.as_str(), start_fragment],
                |r| {
                    Ok(LogFragment {
                        fragment_number: r.get(0)?,
                        timestamp: Timestamp::from_millis(r.get(1)?),
                        phase: r.get(2)?,
                        log_data: r.get(3)?,
                    })
                },
            )?;
            rows.collect()
        })
        .await
    }

    async fn read_log_tails(
        &self,
        job_id: Uuid,
        log_type: LogType,
        max_bytes: u64,
    ) -> Result<Vec<LogTail>> {
        self.read("reading the ends of logs", move |conn| {
            // Newest first down the primary key; `phase` is read before
            // `log_data`, so other phases' text is never loaded.
            let mut stmt = conn.prepare_cached(
                "SELECT fragment_number, log_data FROM logs \
                 WHERE job_id = ?1 AND log_type = ?2 AND phase = ?3 \
                 ORDER BY fragment_number DESC",
            )?;
            let id = job_id.to_string();
            let mut tails = Vec::new();
            for phase in LOG_PHASES {
                let mut tail = TailBuilder::new(phase, max_bytes);
                let mut rows = stmt.query(params![id, log_type.as_str(), phase])?;
                while let Some(row) = rows.next()? {
                    let text = row.get_ref(1)?.as_str().unwrap_or_default();
                    if !tail.push(row.get(0)?, text) {
                        break;
                    }
                }
                tails.extend(tail.finish());
            }
            Ok(tails)
        })
        .await
    }

    async fn append_live_output(
        &self,
        job_id: Uuid,
        stream: LegacyStream,
        text: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let text = text.to_owned();
        self.write("appending live output", move |conn| {
            let id = job_id.to_string();
            if !job_exists(conn, &id)? {
                return Ok(false);
            }
            conn.prepare_cached(
                "INSERT INTO live_output (job_id, stream, text, updated_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, stream.as_str(), text, now.millis()])?;
            Ok(true)
        })
        .await
    }

    async fn take_live_output(&self, job_id: Uuid, stream: LegacyStream) -> Result<Option<String>> {
        self.write("reading live output", move |conn| {
            let mut stmt = conn.prepare_cached(
                "DELETE FROM live_output WHERE job_id = ?1 AND stream = ?2 RETURNING seq, text",
            )?;
            let mut chunks: Vec<(i64, String)> = stmt
                .query_map(params![job_id.to_string(), stream.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            chunks.sort_by_key(|(seq, _)| *seq);
            let text: String = chunks.into_iter().map(|(_, text)| text).collect();
            Ok((!text.is_empty()).then_some(text))
        })
        .await
    }
}
