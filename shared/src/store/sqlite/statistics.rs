//! The job statistics of SqliteStore: table `job_statistics`
//! (`migrations/0007_job_statistics.sql`), one row per (day, queue,
//! submitter), `''` standing for anonymous.

use super::*;

/// What an anonymous job's `submitted_by` is stored as (no client id is
/// empty).
const ANONYMOUS: &str = "";

/// Adds `count` jobs to a counter: called by the job inserts, inside their
/// transaction.
pub(super) fn count_jobs(conn: &Connection, key: &CounterKey, count: u64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO job_statistics (day, queue, submitted_by, count) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (day, queue, submitted_by) DO UPDATE SET count = count + excluded.count",
    )?
    .execute(params![
        key.day.to_string(),
        key.queue,
        key.submitted_by.as_deref().unwrap_or(ANONYMOUS),
        i64::try_from(count).unwrap_or(i64::MAX),
    ])?;
    Ok(())
}

/// The query of [`StatisticsStore::daily_job_counts`] and its parameters:
/// the days' range on the primary key, then the filters.
fn counts_sql(query: &StatisticsQuery) -> (String, Vec<rusqlite::types::Value>) {
    let group = match query.group_by {
        GroupBy::Queue => "queue",
        GroupBy::SubmittedBy => "submitted_by",
    };
    let mut values: Vec<rusqlite::types::Value> = vec![
        query.start.to_string().into(),
        query.stop.to_string().into(),
    ];
    let mut sql =
        format!("SELECT day, {group}, SUM(count) FROM job_statistics WHERE day >= ?1 AND day < ?2");
    for (column, list) in [
        ("queue", &query.queues),
        ("submitted_by", &query.submitters),
    ] {
        if list.is_empty() {
            continue;
        }
        let first = values.len() + 1;
        let marks: Vec<String> = (first..first + list.len())
            .map(|i| format!("?{i}"))
            .collect();
        sql.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
        values.extend(list.iter().cloned().map(Into::into));
    }
    if !query.submitters.is_empty() {
        // A client filter never selects anonymous jobs.
        sql.push_str(&format!(" AND submitted_by <> '{ANONYMOUS}'"));
    }
    sql.push_str(" GROUP BY 1, 2");
    (sql, values)
}

#[async_trait]
impl StatisticsStore for SqliteStore {
    async fn daily_job_counts(&self, query: &StatisticsQuery) -> Result<Vec<DailyCount>> {
        let (sql, values) = counts_sql(query);
        let by_submitter = query.group_by == GroupBy::SubmittedBy;
        self.read("reading job statistics", move |conn| {
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(values), |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?;
            let mut counts = Vec::new();
            for row in rows {
                let (day, key, count) = row?;
                let Some(day) = Day::parse(&day) else {
                    continue;
                };
                counts.push(DailyCount {
                    day,
                    key: (!(by_submitter && key == ANONYMOUS)).then_some(key),
                    count: u64::try_from(count).unwrap_or(0),
                });
            }
            Ok(counts)
        })
        .await
    }
}
