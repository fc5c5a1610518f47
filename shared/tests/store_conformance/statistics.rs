//! Conformance of job statistics: every stored job counted once under its
//! day, queue and submitter; ranges, filters and grouping as
//! `StatisticsQuery` defines them; counters outlive retention.

use super::*;
use testflinger_shared::job::CLIENT_ID;
use testflinger_shared::statistics::{
    CounterKey, DailyCount, Day, GroupBy, JobStatistics, StatisticsQuery,
};

conformance!(
    jobs_are_counted_by_day_queue_and_submitter,
    a_batch_is_counted_like_single_jobs,
    concurrent_submissions_are_each_counted_once,
    the_range_is_whole_days_with_an_exclusive_stop,
    filters_select_queues_and_submitters,
    counts_follow_the_one_definition_of_the_query,
    counters_outlive_the_jobs_they_counted,
);

const DAY_MS: i64 = 86_400_000;

/// A job on `queue` by `submitter` (`None`: anonymous), created `day` days
/// and `ms` milliseconds after the first day of the suite's clock.
fn job(queue: &str, submitter: Option<&str>, day: i64, ms: i64) -> NewJob {
    let mut job = new_job(
        json!({ "job_queue": queue }),
        first_midnight() + day * DAY_MS + ms,
    );
    if let Some(id) = submitter {
        job.job_data.insert(CLIENT_ID.into(), json!(id));
    }
    job
}

/// Offset from `t(0)` of the first midnight (UTC) at or after it.
fn first_midnight() -> i64 {
    let zero = t(0).millis();
    (DAY_MS - zero.rem_euclid(DAY_MS)) % DAY_MS
}

fn day(n: i64) -> Day {
    Day::of(t(first_midnight() + n * DAY_MS))
}

fn query(group_by: GroupBy, start: i64, stop: i64) -> StatisticsQuery {
    StatisticsQuery {
        group_by,
        start: day(start),
        stop: day(stop),
        queues: vec![],
        submitters: vec![],
    }
}

/// The store's answer, summed and ordered: `[(day, key, count)]`.
async fn counts(
    store: &Arc<dyn Store>,
    query: &StatisticsQuery,
) -> Vec<(i64, Option<String>, u64)> {
    let daily = store.daily_job_counts(query).await.expect("statistics");
    JobStatistics::new(query.clone(), daily)
        .daily
        .into_iter()
        .map(|c| (c.day.days_since(day(0)), c.key, c.count))
        .collect()
}

fn row(d: i64, key: Option<&str>, count: u64) -> (i64, Option<String>, u64) {
    (d, key.map(str::to_owned), count)
}

async fn store_all(store: &Arc<dyn Store>, jobs: &[NewJob]) {
    for job in jobs {
        store.insert_job(job).await.expect("insert");
    }
}

async fn jobs_are_counted_by_day_queue_and_submitter(store: Arc<dyn Store>) {
    store_all(
        &store,
        &[
            job("rpi4", Some("ci"), 0, 0),
            job("rpi4", Some("ci"), 0, DAY_MS - 1),
            job("rpi4", None, 0, 5),
            job("x86", Some("ci"), 0, 7),
            job("x86", Some("bot"), 1, 0),
            job("rpi4", None, 1, 3),
            job("rpi4", None, 1, 4),
        ],
    )
    .await;
    let by_queue = counts(&store, &query(GroupBy::Queue, 0, 2)).await;
    assert_eq!(
        by_queue,
        [
            row(0, Some("rpi4"), 3),
            row(0, Some("x86"), 1),
            row(1, Some("rpi4"), 2),
            row(1, Some("x86"), 1),
        ]
    );
    let by_submitter = counts(&store, &query(GroupBy::SubmittedBy, 0, 2)).await;
    assert_eq!(
        by_submitter,
        [
            row(0, None, 1),
            row(0, Some("ci"), 3),
            row(1, None, 2),
            row(1, Some("bot"), 1),
        ]
    );
    assert!(counts(&store, &query(GroupBy::Queue, 2, 10))
        .await
        .is_empty());
}

async fn a_batch_is_counted_like_single_jobs(store: Arc<dyn Store>) {
    let batch = [
        job("q", Some("ci"), 0, 1),
        job("q", Some("ci"), 0, 2),
        job("q", None, 0, 3),
        job("other", Some("ci"), 1, 1),
    ];
    store.insert_jobs(&batch).await.expect("insert a batch");
    store.insert_jobs(&[]).await.expect("an empty batch");
    store.insert_job(&job("q", Some("ci"), 0, 4)).await.unwrap();
    assert_eq!(
        counts(&store, &query(GroupBy::SubmittedBy, 0, 2)).await,
        [
            row(0, None, 1),
            row(0, Some("ci"), 3),
            row(1, Some("ci"), 1)
        ]
    );
}

async fn concurrent_submissions_are_each_counted_once(store: Arc<dyn Store>) {
    const TASKS: i64 = 8;
    const EACH: i64 = 15;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                // Every task on the same counters, the first of each new.
                let submitter = if i % 2 == 0 { Some("ci") } else { None };
                let job = job("race", submitter, i % 3, task * EACH + i);
                store.insert_job(&job).await.expect("insert");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rows = counts(&store, &query(GroupBy::SubmittedBy, 0, 3)).await;
    let total: u64 = rows.iter().map(|r| r.2).sum();
    assert_eq!(total, (TASKS * EACH) as u64, "{rows:?}");
    // Per task: i = 0..15; i % 3 gives the day, i % 2 the submitter.
    let expected = |d: i64, ci: bool| {
        (0..EACH)
            .filter(|i| i % 3 == d && (i % 2 == 0) == ci)
            .count() as u64
            * TASKS as u64
    };
    let mut want = Vec::new();
    for d in 0..3 {
        want.push(row(d, None, expected(d, false)));
        want.push(row(d, Some("ci"), expected(d, true)));
    }
    assert_eq!(rows, want);
}

async fn the_range_is_whole_days_with_an_exclusive_stop(store: Arc<dyn Store>) {
    for d in -1..=3 {
        store_all(
            &store,
            &[job("q", None, d, 0), job("q", None, d, DAY_MS - 1)],
        )
        .await;
    }
    assert_eq!(
        counts(&store, &query(GroupBy::Queue, 0, 3)).await,
        [
            row(0, Some("q"), 2),
            row(1, Some("q"), 2),
            row(2, Some("q"), 2)
        ]
    );
    assert_eq!(
        counts(&store, &query(GroupBy::Queue, 3, 4)).await,
        [row(3, Some("q"), 2)]
    );
    assert!(counts(&store, &query(GroupBy::Queue, 1, 1))
        .await
        .is_empty());
    assert!(counts(&store, &query(GroupBy::Queue, 2, 1))
        .await
        .is_empty());
}

async fn filters_select_queues_and_submitters(store: Arc<dyn Store>) {
    store_all(
        &store,
        &[
            job("a", Some("ci"), 0, 1),
            job("a", Some("bot"), 0, 2),
            job("a", None, 0, 3),
            job("b", Some("ci"), 0, 4),
            job("c", Some("ci"), 0, 5),
        ],
    )
    .await;
    let mut q = query(GroupBy::Queue, 0, 1);
    q.queues = strings(&["a", "c", "nowhere"]);
    assert_eq!(
        counts(&store, &q).await,
        [row(0, Some("a"), 3), row(0, Some("c"), 1)]
    );
    q.submitters = strings(&["ci"]);
    assert_eq!(
        counts(&store, &q).await,
        [row(0, Some("a"), 1), row(0, Some("c"), 1)]
    );
    let mut q = query(GroupBy::SubmittedBy, 0, 1);
    q.submitters = strings(&["ci", "bot"]);
    assert_eq!(
        counts(&store, &q).await,
        [row(0, Some("bot"), 1), row(0, Some("ci"), 3)],
        "a submitter filter leaves anonymous jobs out"
    );
    q.submitters = strings(&["nobody"]);
    assert!(counts(&store, &q).await.is_empty());
}

/// Many jobs over a few days, queues and submitters, and many queries:
/// each answer is what `StatisticsQuery::admits` and `group_of` make of
/// the jobs stored.
async fn counts_follow_the_one_definition_of_the_query(store: Arc<dyn Store>) {
    let queues = ["a", "b", "c"];
    let submitters = [None, Some("ci"), Some("bot")];
    let mut jobs = Vec::new();
    for i in 0..90i64 {
        let queue = queues[(i * 7 % 3) as usize];
        let submitter = submitters[(i * 5 % 3) as usize];
        jobs.push(job(queue, submitter, i % 4, i * 1_000));
    }
    store.insert_jobs(&jobs[..40]).await.unwrap();
    store_all(&store, &jobs[40..]).await;
    let filters: [&[&str]; 3] = [&[], &["a"], &["b", "c"]];
    let who: [&[&str]; 3] = [&[], &["ci"], &["ci", "bot"]];
    for group_by in GroupBy::ALL {
        for (start, stop) in [(0, 4), (1, 3), (3, 9), (-5, 1)] {
            for queue_filter in filters {
                for submitter_filter in who {
                    let mut q = query(group_by, start, stop);
                    q.queues = strings(queue_filter);
                    q.submitters = strings(submitter_filter);
                    let mut expected: BTreeMap<(Day, Option<String>), u64> = BTreeMap::new();
                    for job in &jobs {
                        let key = CounterKey::of(job);
                        if q.admits(&key) {
                            *expected.entry((key.day, q.group_of(&key))).or_insert(0) += 1;
                        }
                    }
                    let expected: Vec<DailyCount> = expected
                        .into_iter()
                        .map(|((day, key), count)| DailyCount { day, key, count })
                        .collect();
                    let daily = store.daily_job_counts(&q).await.unwrap();
                    assert_eq!(
                        JobStatistics::new(q.clone(), daily).daily,
                        expected,
                        "{q:?}"
                    );
                }
            }
        }
    }
}

async fn counters_outlive_the_jobs_they_counted(store: Arc<dyn Store>) {
    let old = job("q", Some("ci"), 0, 1);
    store.insert_job(&old).await.unwrap();
    let purged = store
        .purge_expired(t(first_midnight() + 5 * DAY_MS))
        .await
        .unwrap();
    assert_eq!(purged, vec![old.job_id]);
    assert_eq!(
        counts(&store, &query(GroupBy::SubmittedBy, 0, 1)).await,
        [row(0, Some("ci"), 1)]
    );
}
