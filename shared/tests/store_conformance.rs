//! One conformance suite for the store trait, run unchanged against every
//! implementation: the embedded SQLite store and MongoDB (a real
//! MongoDB-wire-compatible server; see `testflinger_shared::testing`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value};
use testflinger_shared::job::{validate_submission, AttachmentsStatus, NewJob};
use testflinger_shared::logs::{LegacyStream, LogFragment, LogType};
use testflinger_shared::results::{validate_result, ResultPatch, REPORTED_STATE_KEY};
use testflinger_shared::store::{CancelOutcome, ClaimRequest, Store};
use testflinger_shared::Timestamp;
use uuid::Uuid;

/// Runs each case against every store; a store whose server is not
/// configured is skipped, unless backends are required (CI).
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let env = testflinger_shared::testing::TestEnv::embedded();
                    super::$case(env.open().await.store).await;
                }
            )*
        }
        mod mongodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(env) = testflinger_shared::testing::TestEnv::mongodb() else { return };
                    super::$case(env.open().await.store).await;
                }
            )*
        }
    };
}

conformance!(
    a_stored_job_reads_back_as_submitted,
    an_unknown_job_is_none,
    the_claim_takes_priority_then_fifo,
    the_claim_serves_every_requested_queue,
    the_claim_skips_jobs_that_exclude_the_agent,
    the_claim_skips_jobs_waiting_for_attachments,
    the_claim_marks_the_job_running,
    concurrent_claims_hand_out_each_job_once,
    cancel_moves_only_unfinished_jobs,
    results_merge_and_status_is_replaced,
    reported_states_move_the_job_until_terminal,
    a_result_for_an_unknown_job_is_refused,
    queues_and_images_are_upserted,
    expired_jobs_are_purged,
    log_fragments_are_kept_in_order_and_resends_change_nothing,
    logs_for_an_unknown_job_are_refused,
    legacy_output_is_consumed_by_each_read,
);

fn t(millis: i64) -> Timestamp {
    Timestamp::from_millis(1_790_000_000_000 + millis)
}

fn new_job(body: Value, created: i64) -> NewJob {
    validate_submission(body, t(created)).expect("a valid job")
}

async fn insert(store: &Arc<dyn Store>, body: Value, created: i64) -> Uuid {
    let job = new_job(body, created);
    store.insert_job(&job).await.expect("insert");
    job.job_id
}

fn claim(queues: &[&str], agent: Option<&str>) -> ClaimRequest {
    ClaimRequest {
        queues: queues.iter().map(|q| q.to_string()).collect(),
        agent_name: agent.map(str::to_owned),
    }
}

async fn claim_id(store: &Arc<dyn Store>, queues: &[&str], agent: Option<&str>) -> Option<Uuid> {
    store
        .claim_job(&claim(queues, agent), t(100_000))
        .await
        .expect("claim")
        .map(|job| job.job_id)
}

fn patch(body: Value) -> ResultPatch {
    validate_result(body.as_object().unwrap().clone()).expect("a valid result")
}

async fn a_stored_job_reads_back_as_submitted(store: Arc<dyn Store>) {
    let body = json!({
        "job_queue": "q", "job_priority": 3, "name": "n",
        "tags": ["a", "b"], "provision_data": {"url": "http://x"},
        "reserve_data": {"timeout": "1h"}, "custom": {"deep": [1, 2.5, null, true]},
    });
    let id = insert(&store, body, 5).await;
    let job = store.get_job(id).await.unwrap().expect("stored");
    assert_eq!(job.job_id, id);
    assert_eq!(job.job_queue, "q");
    assert_eq!(job.job_priority, 3);
    assert_eq!(job.state, "waiting");
    assert_eq!(job.created_at, t(5));
    assert_eq!(job.started_at, None);
    assert_eq!(job.attachments_status, None);
    assert_eq!(
        job.job_data["custom"],
        json!({"deep": [1, 2.5, null, true]})
    );
    assert_eq!(job.job_data["reserve_data"]["timeout"], json!(3600));
    assert_eq!(job.job_data["tags"], json!(["a", "b"]));
    assert!(job.result_data.is_empty());
}

async fn an_unknown_job_is_none(store: Arc<dyn Store>) {
    assert!(store.get_job(Uuid::new_v4()).await.unwrap().is_none());
}

async fn the_claim_takes_priority_then_fifo(store: Arc<dyn Store>) {
    let low_old = insert(&store, json!({"job_queue": "q"}), 1).await;
    let high = insert(&store, json!({"job_queue": "q", "job_priority": 10}), 2).await;
    let low_new = insert(&store, json!({"job_queue": "q"}), 3).await;
    let mid = insert(&store, json!({"job_queue": "q", "job_priority": 5}), 4).await;
    for expected in [high, mid, low_old, low_new] {
        assert_eq!(claim_id(&store, &["q"], None).await, Some(expected));
    }
    assert_eq!(claim_id(&store, &["q"], None).await, None);
}

async fn the_claim_serves_every_requested_queue(store: Arc<dyn Store>) {
    let a = insert(&store, json!({"job_queue": "a"}), 1).await;
    let b = insert(&store, json!({"job_queue": "b", "job_priority": 2}), 2).await;
    let c = insert(&store, json!({"job_queue": "c"}), 0).await;
    assert_eq!(claim_id(&store, &["a", "b"], None).await, Some(b));
    assert_eq!(claim_id(&store, &["a", "b"], None).await, Some(a));
    assert_eq!(claim_id(&store, &["a", "b"], None).await, None);
    assert_eq!(claim_id(&store, &["c"], None).await, Some(c));
    assert_eq!(claim_id(&store, &[], None).await, None);
}

async fn the_claim_skips_jobs_that_exclude_the_agent(store: Arc<dyn Store>) {
    let excluded = insert(
        &store,
        json!({"job_queue": "q", "exclude_agents": ["dev-1", "dev-2"]}),
        1,
    )
    .await;
    let open = insert(&store, json!({"job_queue": "q"}), 2).await;
    assert_eq!(claim_id(&store, &["q"], Some("dev-2")).await, Some(open));
    assert_eq!(claim_id(&store, &["q"], Some("dev-2")).await, None);
    assert_eq!(
        claim_id(&store, &["q"], Some("dev-3")).await,
        Some(excluded)
    );
}

async fn the_claim_skips_jobs_waiting_for_attachments(store: Arc<dyn Store>) {
    let body = json!({"job_queue": "q", "test_data": {"attachments": [{"agent": "f.txt"}]}});
    let job = new_job(body, 1);
    assert_eq!(job.attachments_status, Some(AttachmentsStatus::Waiting));
    store.insert_job(&job).await.unwrap();
    let stored = store.get_job(job.job_id).await.unwrap().unwrap();
    assert_eq!(stored.attachments_status, Some(AttachmentsStatus::Waiting));
    assert!(!stored.job_data.contains_key("attachments_status"));
    assert_eq!(claim_id(&store, &["q"], None).await, None);
}

async fn the_claim_marks_the_job_running(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q", "x": 1}), 1).await;
    let claimed = store
        .claim_job(&claim(&["q"], Some("dev")), t(61_000))
        .await
        .unwrap()
        .expect("a job");
    assert_eq!(claimed.job_id, id);
    assert_eq!(claimed.state, "running");
    assert_eq!(claimed.started_at, Some(t(61_000)));
    assert_eq!(claimed.job_data["x"], json!(1));
    let stored = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(stored.state, "running");
    assert_eq!(stored.started_at, Some(t(61_000)));
}

async fn concurrent_claims_hand_out_each_job_once(store: Arc<dyn Store>) {
    const JOBS: usize = 120;
    const CLAIMERS: usize = 16;
    let mut submitted = HashSet::new();
    for i in 0..JOBS {
        submitted.insert(insert(&store, json!({"job_queue": "race"}), i as i64).await);
    }
    let mut tasks = Vec::new();
    for _ in 0..CLAIMERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(id) = claim_id(&store, &["race"], None).await {
                mine.push(id);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    let distinct: HashSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), JOBS, "every job claimed once, none twice");
    assert_eq!(distinct, submitted);
}

async fn cancel_moves_only_unfinished_jobs(store: Arc<dyn Store>) {
    let waiting = insert(&store, json!({"job_queue": "q"}), 1).await;
    assert_eq!(
        store.cancel_job(waiting).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        store.get_job(waiting).await.unwrap().unwrap().state,
        "cancelled"
    );
    assert_eq!(
        store.cancel_job(waiting).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
    assert_eq!(claim_id(&store, &["q"], None).await, None);

    let finished = insert(&store, json!({"job_queue": "q"}), 2).await;
    store
        .apply_result(finished, &patch(json!({"job_state": "complete"})), t(3))
        .await
        .unwrap();
    assert_eq!(
        store.cancel_job(finished).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
    assert_eq!(
        store.get_job(finished).await.unwrap().unwrap().state,
        "complete"
    );

    assert_eq!(
        store.cancel_job(Uuid::new_v4()).await.unwrap(),
        CancelOutcome::NotFound
    );
}

async fn results_merge_and_status_is_replaced(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 1).await;
    for body in [
        json!({"exit_code": 0, "output": "foo", "status": {"setup": 0, "provision": 1}}),
        json!({"device_info": {"ip": "10.0.0.2"}, "status": {"setup": 0}}),
    ] {
        assert!(store.apply_result(id, &patch(body), t(2)).await.unwrap());
    }
    let job = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(job.result_data["exit_code"], json!(0));
    assert_eq!(job.result_data["output"], json!("foo"));
    assert_eq!(job.result_data["device_info"], json!({"ip": "10.0.0.2"}));
    assert_eq!(job.result_data["status"], json!({"setup": 0}));
    assert_eq!(job.state, "waiting");
}

async fn reported_states_move_the_job_until_terminal(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 1).await;
    claim_id(&store, &["q"], None).await.expect("claimed");
    for phase in ["setup", "provision", "test"] {
        store
            .apply_result(id, &patch(json!({"job_state": phase})), t(2))
            .await
            .unwrap();
        assert_eq!(store.get_job(id).await.unwrap().unwrap().state, phase);
    }
    // `waiting` is the server's state: never reported back.
    store
        .apply_result(id, &patch(json!({"job_state": "waiting"})), t(3))
        .await
        .unwrap();
    assert_eq!(store.get_job(id).await.unwrap().unwrap().state, "test");

    assert_eq!(
        store.cancel_job(id).await.unwrap(),
        CancelOutcome::Cancelled
    );
    store
        .apply_result(
            id,
            &patch(json!({"job_state": "complete", "status": {"test": 247}})),
            t(4),
        )
        .await
        .unwrap();
    let job = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(job.state, "cancelled");
    assert_eq!(job.result_data[REPORTED_STATE_KEY], json!("complete"));
    assert_eq!(job.result_data["status"], json!({"test": 247}));
}

async fn a_result_for_an_unknown_job_is_refused(store: Arc<dyn Store>) {
    let unknown = Uuid::new_v4();
    assert!(!store
        .apply_result(unknown, &patch(json!({"a": 1})), t(1))
        .await
        .unwrap());
    assert!(!store
        .apply_result(unknown, &patch(json!({"job_state": "setup"})), t(1))
        .await
        .unwrap());
    assert!(store.get_job(unknown).await.unwrap().is_none());
}

async fn queues_and_images_are_upserted(store: Arc<dyn Store>) {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    store
        .upsert_queues(&map(&[("q1", "first"), ("q2", "second")]), t(1))
        .await
        .unwrap();
    store
        .upsert_queues(&map(&[("q1", "renamed")]), t(2))
        .await
        .unwrap();
    assert_eq!(
        store.list_queues().await.unwrap(),
        map(&[("q1", "renamed"), ("q2", "second")])
    );

    let mut images = BTreeMap::new();
    images.insert(
        "q1".to_string(),
        map(&[("jammy", "url: a"), ("noble", "url: b")]),
    );
    images.insert("imageonly".to_string(), map(&[("x", "url: x")]));
    store.set_images(&images, t(3)).await.unwrap();
    assert_eq!(
        store.get_images("q1").await.unwrap(),
        map(&[("jammy", "url: a"), ("noble", "url: b")])
    );
    images.insert("q1".to_string(), map(&[("oracular", "url: c")]));
    store.set_images(&images, t(4)).await.unwrap();
    assert_eq!(
        store.get_images("q1").await.unwrap(),
        map(&[("oracular", "url: c")])
    );
    assert!(store.get_images("nowhere").await.unwrap().is_empty());
    // A queue known only for its images is not an advertised queue.
    assert_eq!(
        store.list_queues().await.unwrap(),
        map(&[("q1", "renamed"), ("q2", "second")])
    );
}

async fn expired_jobs_are_purged(store: Arc<dyn Store>) {
    let old = insert(&store, json!({"job_queue": "q"}), 1).await;
    let young = insert(&store, json!({"job_queue": "q"}), 10_000).await;
    let purged = store.purge_expired(t(5_000)).await.unwrap();
    assert_eq!(purged, vec![old]);
    assert!(store.get_job(old).await.unwrap().is_none());
    assert!(store.get_job(young).await.unwrap().is_some());
}

fn fragment(n: i64, phase: &str, data: &str) -> LogFragment {
    LogFragment {
        fragment_number: n,
        timestamp: t(1_000 + n),
        phase: phase.into(),
        log_data: data.into(),
    }
}

async fn log_fragments_are_kept_in_order_and_resends_change_nothing(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 1).await;
    // Out of order, across phases, one resent with other data.
    for f in [
        fragment(2, "test", "c"),
        fragment(0, "setup", "a"),
        fragment(1, "provision", "b"),
        fragment(2, "test", "resent"),
    ] {
        assert!(store
            .append_log(id, LogType::Output, &f, t(5))
            .await
            .unwrap());
    }
    store
        .append_log(id, LogType::Serial, &fragment(0, "test", "serial"), t(5))
        .await
        .unwrap();

    let output = store.read_logs(id, LogType::Output, 0).await.unwrap();
    let numbers: Vec<i64> = output.iter().map(|f| f.fragment_number).collect();
    assert_eq!(numbers, [0, 1, 2]);
    assert_eq!(output[2], fragment(2, "test", "c"));
    assert_eq!(output[0].timestamp, t(1_000));
    let later = store.read_logs(id, LogType::Output, 2).await.unwrap();
    assert_eq!(later, vec![fragment(2, "test", "c")]);
    let serial = store.read_logs(id, LogType::Serial, 0).await.unwrap();
    assert_eq!(serial, vec![fragment(0, "test", "serial")]);
}

async fn logs_for_an_unknown_job_are_refused(store: Arc<dyn Store>) {
    let unknown = Uuid::new_v4();
    assert!(!store
        .append_log(unknown, LogType::Output, &fragment(0, "test", "x"), t(1))
        .await
        .unwrap());
    assert!(store
        .read_logs(unknown, LogType::Output, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .append_live_output(unknown, LegacyStream::Output, "x", t(1))
        .await
        .unwrap());
}

async fn legacy_output_is_consumed_by_each_read(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 1).await;
    assert_eq!(
        store
            .take_live_output(id, LegacyStream::Output)
            .await
            .unwrap(),
        None
    );
    for chunk in ["line 1\n", "line 2\n"] {
        assert!(store
            .append_live_output(id, LegacyStream::Output, chunk, t(2))
            .await
            .unwrap());
    }
    store
        .append_live_output(id, LegacyStream::SerialOutput, "serial\n", t(2))
        .await
        .unwrap();
    assert_eq!(
        store
            .take_live_output(id, LegacyStream::Output)
            .await
            .unwrap()
            .as_deref(),
        Some("line 1\nline 2\n")
    );
    assert_eq!(
        store
            .take_live_output(id, LegacyStream::Output)
            .await
            .unwrap(),
        None
    );
    store
        .append_live_output(id, LegacyStream::Output, "line 3\n", t(3))
        .await
        .unwrap();
    assert_eq!(
        store
            .take_live_output(id, LegacyStream::Output)
            .await
            .unwrap()
            .as_deref(),
        Some("line 3\n")
    );
    assert_eq!(
        store
            .take_live_output(id, LegacyStream::SerialOutput)
            .await
            .unwrap()
            .as_deref(),
        Some("serial\n")
    );
}
