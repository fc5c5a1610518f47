//! One conformance suite for the store trait, run unchanged against every
//! implementation: the embedded SQLite store and MongoDB (a real
//! MongoDB-wire-compatible server; see `testflinger_shared::testing`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value};
use testflinger_shared::agents::{validate_agent_update, ProvisionEntry};
use testflinger_shared::auth::{hash_secret, new_refresh_token, refresh_token_hash};
use testflinger_shared::clients::{Client, OwnerRemoval, RefreshToken, RestrictedQueue};
use testflinger_shared::job::{validate_submission, AttachmentsStatus, NewJob};
use testflinger_shared::logs::{LegacyStream, LogFragment, LogType};
use testflinger_shared::queues::SearchQuery;
use testflinger_shared::results::{validate_result, ResultPatch, REPORTED_STATE_KEY};
use testflinger_shared::role::Role;
use testflinger_shared::secrets::StoredSecret;
use testflinger_shared::store::prelude::*;
use testflinger_shared::store::{CancelOutcome, ClaimRequest};
use testflinger_shared::{Error, Timestamp};
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
    a_batch_of_jobs_is_stored_in_order,
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
    agents_are_upserted_and_keep_their_last_log_lines,
    provisions_move_the_streak_and_unknown_agents_get_nothing,
    position_counts_the_jobs_claimed_before,
    queue_jobs_are_listed_newest_first,
    wait_times_come_from_claims,
    uploaded_attachments_make_a_job_claimable,
    search_filters_by_tags_and_states_and_pages,
    concurrent_provisions_each_count_once,
    a_job_too_large_to_store_is_refused_as_such,
    clients_are_created_replaced_listed_and_deleted,
    any_queue_name_the_api_accepts_is_kept,
    deleting_a_client_removes_its_tokens_secrets_and_ownerships,
    refresh_tokens_work_until_expired_or_revoked,
    owners_restrict_queues_and_grant_them,
    removing_owners_ends_the_restriction_with_the_last,
    concurrent_owners_all_join_one_restriction,
    a_client_deleted_while_made_an_owner_owns_nothing,
    concurrent_writes_of_one_record_agree,
    secrets_are_per_client_and_expire,
    ephemeral_secrets_are_taken_once,
    concurrent_takes_hand_out_each_ephemeral_secret_once,
    expired_tokens_and_secrets_are_purged,
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
    assert_eq!(job.state.as_str(), "waiting");
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

async fn a_batch_of_jobs_is_stored_in_order(store: Arc<dyn Store>) {
    store.insert_jobs(&[]).await.expect("an empty batch");
    // 250 jobs round-robin over 3 queues, ten to a millisecond (so that the
    // order of the batch must break ties), one of them urgent.
    let jobs: Vec<NewJob> = (0..250)
        .map(|i| {
            let mut body = json!({
                "job_queue": format!("bulk-{}", i % 3), "name": format!("job {i}"),
                "tags": ["bulk"], "test_data": {"test_cmds": "true"},
            });
            if i == 200 {
                body["job_priority"] = json!(5);
            }
            new_job(body, i / 10)
        })
        .collect();
    store.insert_jobs(&jobs).await.expect("insert a batch");
    for (i, submitted) in jobs.iter().enumerate() {
        let job = store
            .get_job(submitted.job_id)
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(job.state.as_str(), "waiting");
        assert_eq!(job.job_queue, submitted.job_queue);
        assert_eq!(job.created_at, t(i as i64 / 10));
        assert_eq!(job.job_data, submitted.job_data, "job {i}");
    }
    let ids = |queues: &[&str]| -> Vec<Uuid> {
        jobs.iter()
            .filter(|j| queues.contains(&j.job_queue.as_str()))
            .map(|j| j.job_id)
            .collect()
    };
    // One queue alone, then the two others together: FIFO in batch order.
    let mut claimed = Vec::new();
    while let Some(id) = claim_id(&store, &["bulk-1"], None).await {
        claimed.push(id);
    }
    assert_eq!(claimed, ids(&["bulk-1"]));
    let mut expected = ids(&["bulk-0", "bulk-2"]);
    let urgent = jobs[200].job_id;
    expected.retain(|id| *id != urgent);
    expected.insert(0, urgent);
    let mut claimed = Vec::new();
    while let Some(id) = claim_id(&store, &["bulk-0", "bulk-2"], None).await {
        claimed.push(id);
    }
    assert_eq!(claimed, expected);
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
    assert_eq!(claimed.state.as_str(), "running");
    assert_eq!(claimed.started_at, Some(t(61_000)));
    assert_eq!(claimed.job_data["x"], json!(1));
    let stored = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(stored.state.as_str(), "running");
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
        store.cancel_job(waiting, t(0)).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        store
            .get_job(waiting)
            .await
            .unwrap()
            .unwrap()
            .state
            .as_str(),
        "cancelled"
    );
    assert_eq!(
        store.cancel_job(waiting, t(0)).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
    assert_eq!(claim_id(&store, &["q"], None).await, None);

    let finished = insert(&store, json!({"job_queue": "q"}), 2).await;
    store
        .apply_result(finished, &patch(json!({"job_state": "complete"})), t(3))
        .await
        .unwrap();
    assert_eq!(
        store.cancel_job(finished, t(0)).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
    assert_eq!(
        store
            .get_job(finished)
            .await
            .unwrap()
            .unwrap()
            .state
            .as_str(),
        "complete"
    );

    assert_eq!(
        store.cancel_job(Uuid::new_v4(), t(0)).await.unwrap(),
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
    assert_eq!(job.state.as_str(), "waiting");
}

async fn reported_states_move_the_job_until_terminal(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 1).await;
    claim_id(&store, &["q"], None).await.expect("claimed");
    for phase in ["setup", "provision", "test"] {
        store
            .apply_result(id, &patch(json!({"job_state": phase})), t(2))
            .await
            .unwrap();
        assert_eq!(
            store.get_job(id).await.unwrap().unwrap().state.as_str(),
            phase
        );
    }
    // `waiting` is the server's state: never reported back.
    store
        .apply_result(id, &patch(json!({"job_state": "waiting"})), t(3))
        .await
        .unwrap();
    assert_eq!(
        store.get_job(id).await.unwrap().unwrap().state.as_str(),
        "test"
    );

    assert_eq!(
        store.cancel_job(id, t(0)).await.unwrap(),
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
    assert_eq!(job.state.as_str(), "cancelled");
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

fn agent_update(body: Value) -> testflinger_shared::agents::AgentUpdate {
    validate_agent_update(body.as_object().unwrap().clone()).expect("a valid agent update")
}

async fn agents_are_upserted_and_keep_their_last_log_lines(store: Arc<dyn Store>) {
    store
        .upsert_agent(
            "dev-1",
            &agent_update(json!({"state": "waiting", "queues": ["q1", "q2"], "log": ["l0"]})),
            t(1),
        )
        .await
        .unwrap();
    let lines: Vec<String> = (1..=120).map(|i| format!("l{i}")).collect();
    store
        .upsert_agent(
            "dev-1",
            &agent_update(json!({"state": "test", "log": lines})),
            t(2),
        )
        .await
        .unwrap();
    store
        .upsert_agent("dev-0", &agent_update(json!({"location": "lab"})), t(3))
        .await
        .unwrap();
    let agent = store.get_agent("dev-1").await.unwrap().expect("stored");
    assert_eq!(agent.fields["state"], json!("test"));
    assert_eq!(agent.queues(), ["q1", "q2"]);
    assert_eq!(agent.log.len(), 100);
    assert_eq!(agent.log.first().map(String::as_str), Some("l21"));
    assert_eq!(agent.log.last().map(String::as_str), Some("l120"));
    assert_eq!(agent.updated_at, t(2));
    let names: Vec<String> = store
        .list_agents()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["dev-0", "dev-1"]);
    assert!(store.get_agent("nobody").await.unwrap().is_none());
}

async fn provisions_move_the_streak_and_unknown_agents_get_nothing(store: Arc<dyn Store>) {
    let entry = |code: i64| ProvisionEntry {
        job_id: "j".into(),
        exit_code: code,
        detail: "d".into(),
    };
    assert!(!store
        .record_provision("ghost", &entry(0), t(1))
        .await
        .unwrap());
    assert!(
        store.get_agent("ghost").await.unwrap().is_none(),
        "nothing written for an unknown agent"
    );
    store
        .upsert_agent("dev", &agent_update(json!({"state": "waiting"})), t(1))
        .await
        .unwrap();
    for code in [0, 0, 1] {
        assert!(store
            .record_provision("dev", &entry(code), t(2))
            .await
            .unwrap());
    }
    let agent = store.get_agent("dev").await.unwrap().unwrap();
    assert_eq!(agent.provision_streak, Some(("fail".to_string(), 1)));
    assert_eq!(agent.provision_log.len(), 3);
    assert_eq!(agent.provision_log[2]["exit_code"], json!(1));
    for _ in 0..105 {
        store
            .record_provision("dev", &entry(0), t(3))
            .await
            .unwrap();
    }
    let agent = store.get_agent("dev").await.unwrap().unwrap();
    assert_eq!(agent.provision_streak, Some(("pass".to_string(), 105)));
    assert_eq!(agent.provision_log.len(), 100);
}

async fn position_counts_the_jobs_claimed_before(store: Arc<dyn Store>) {
    let first = insert(&store, json!({"job_queue": "q"}), 1).await;
    let second = insert(&store, json!({"job_queue": "q"}), 2).await;
    let urgent = insert(&store, json!({"job_queue": "q", "job_priority": 9}), 3).await;
    insert(&store, json!({"job_queue": "other"}), 0).await;
    assert_eq!(store.job_position(urgent).await.unwrap(), Some(0));
    assert_eq!(store.job_position(first).await.unwrap(), Some(1));
    assert_eq!(store.job_position(second).await.unwrap(), Some(2));
    assert_eq!(claim_id(&store, &["q"], None).await, Some(urgent));
    assert_eq!(
        store.job_position(urgent).await.unwrap(),
        None,
        "no longer waiting"
    );
    assert_eq!(store.job_position(second).await.unwrap(), Some(1));
    assert_eq!(store.job_position(Uuid::new_v4()).await.unwrap(), None);
}

async fn queue_jobs_are_listed_newest_first(store: Arc<dyn Store>) {
    let old = insert(&store, json!({"job_queue": "q"}), 1).await;
    let new = insert(&store, json!({"job_queue": "q"}), 2).await;
    insert(&store, json!({"job_queue": "other"}), 3).await;
    store.cancel_job(old, t(0)).await.unwrap();
    let jobs = store.queue_jobs("q", 10).await.unwrap();
    let listed: Vec<(Uuid, &str)> = jobs
        .iter()
        .map(|j| (j.job_id, j.job_state.as_str()))
        .collect();
    assert_eq!(listed, [(new, "waiting"), (old, "cancelled")]);
    assert_eq!(store.queue_jobs("q", 1).await.unwrap().len(), 1);
    assert!(store.queue_jobs("empty", 10).await.unwrap().is_empty());
}

async fn wait_times_come_from_claims(store: Arc<dyn Store>) {
    insert(&store, json!({"job_queue": "a"}), 0).await;
    insert(&store, json!({"job_queue": "a"}), 40_000).await;
    insert(&store, json!({"job_queue": "b"}), 90_000).await;
    for _ in 0..2 {
        claim_id(&store, &["a"], None).await.unwrap(); // claimed at t(100_000)
    }
    claim_id(&store, &["b"], None).await.unwrap();
    let all = store.wait_times(&[], t(0), 10).await.unwrap();
    let mut a = all["a"].clone();
    a.sort();
    assert_eq!(a, [60_000, 100_000]);
    assert_eq!(all["b"], [10_000]);
    let only_b = store
        .wait_times(&["b".to_string()], t(0), 10)
        .await
        .unwrap();
    assert_eq!(only_b.keys().collect::<Vec<_>>(), ["b"]);
    assert_eq!(store.wait_times(&[], t(0), 1).await.unwrap()["a"].len(), 1);
    assert!(store
        .wait_times(&[], t(200_000), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn uploaded_attachments_make_a_job_claimable(store: Arc<dyn Store>) {
    let job = new_job(
        json!({"job_queue": "q", "test_data": {"attachments": [{"agent": "a"}]}}),
        1,
    );
    store.insert_job(&job).await.unwrap();
    assert_eq!(claim_id(&store, &["q"], None).await, None);
    assert!(store.complete_attachments(job.job_id).await.unwrap());
    let claimed = store
        .claim_job(&claim(&["q"], None), t(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        claimed.attachments_status,
        Some(AttachmentsStatus::Complete)
    );
    let plain = insert(&store, json!({"job_queue": "q"}), 3).await;
    assert!(
        !store.complete_attachments(plain).await.unwrap(),
        "no attachments declared"
    );
    assert!(!store.complete_attachments(Uuid::new_v4()).await.unwrap());
}

async fn search_filters_by_tags_and_states_and_pages(store: Arc<dyn Store>) {
    let a = insert(&store, json!({"job_queue": "q", "tags": ["x", "y"]}), 1).await;
    let b = insert(&store, json!({"job_queue": "q", "tags": ["x"]}), 2).await;
    let c = insert(&store, json!({"job_queue": "q", "tags": ["y"]}), 3).await;
    let d = insert(&store, json!({"job_queue": "q"}), 4).await;
    store.cancel_job(c, t(0)).await.unwrap();
    // The query as the API would parse it from these parameters.
    let query_of = |pairs: &[(&str, &str)]| {
        let mut query = SearchQuery::default();
        for (key, value) in pairs {
            match *key {
                "tags" => query.tags.push(value.to_string()),
                "match" => query.match_all = *value == "all",
                "state" if *value == "active" => query.active = true,
                "state" => query.states.push(value.to_string()),
                "limit" => query.limit = value.parse().unwrap(),
                other => panic!("no such parameter {other}"),
            }
        }
        query
    };
    let search_query = |query: SearchQuery| {
        let store = store.clone();
        async move {
            store
                .search_jobs(&query)
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.job_id)
                .collect::<Vec<_>>()
        }
    };
    let search = |pairs: &[(&str, &str)]| search_query(query_of(pairs));
    assert_eq!(search(&[]).await, [d, c, b, a]);
    assert_eq!(search(&[("tags", "x")]).await, [b, a]);
    assert_eq!(search(&[("tags", "x"), ("tags", "y")]).await, [c, b, a]);
    assert_eq!(
        search(&[("tags", "x"), ("tags", "y"), ("match", "all")]).await,
        [a]
    );
    assert_eq!(search(&[("state", "cancelled")]).await, [c]);
    assert_eq!(search(&[("state", "active")]).await, [d, b, a]);
    assert_eq!(
        search(&[("state", "cancelled"), ("tags", "x")]).await,
        Vec::<Uuid>::new()
    );
    // Pages: limit + 1 come back; the cursor continues after the last shown.
    let first = search(&[("limit", "2")]).await;
    assert_eq!(first, [d, c, b]);
    let all = store.search_jobs(&SearchQuery::default()).await.unwrap();
    let mut next = query_of(&[("limit", "2")]);
    next.before = Some((all[1].created_at, all[1].job_id));
    assert_eq!(search_query(next).await, [b, a]);
}

async fn concurrent_provisions_each_count_once(store: Arc<dyn Store>) {
    store
        .upsert_agent("busy", &agent_update(json!({"state": "waiting"})), t(1))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let entry = ProvisionEntry {
                job_id: "j".into(),
                exit_code: 0,
                detail: String::new(),
            };
            store.record_provision("busy", &entry, t(2)).await.unwrap()
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap());
    }
    let agent = store.get_agent("busy").await.unwrap().unwrap();
    assert_eq!(agent.provision_streak, Some(("pass".to_string(), 20)));
    assert_eq!(agent.provision_log.len(), 20);
}

async fn a_job_too_large_to_store_is_refused_as_such(store: Arc<dyn Store>) {
    // 2.6 MB of JSON, over 16 MiB as BSON: stored whole, or refused as too
    // large (413), never a backend failure (500).
    let zeros = vec![0; 1_300_000];
    let job = new_job(json!({"job_queue": "q", "zeros": zeros}), 1);
    match store.insert_job(&job).await {
        Ok(()) => {
            let stored = store.get_job(job.job_id).await.unwrap().unwrap();
            assert_eq!(
                stored.job_data["zeros"].as_array().map(Vec::len),
                Some(1_300_000)
            );
        }
        Err(Error::TooLarge { .. }) => assert!(store.get_job(job.job_id).await.unwrap().is_none()),
        Err(other) => panic!("expected success or TooLarge, got {other:?}"),
    }
}

// ---- Clients, tokens, restricted queues, secrets ----

/// A client with no permissions; the hash need not be a real one here.
fn client(id: &str) -> Client {
    Client::new(id, format!("hash-of-{id}"), Role::Contributor)
}

async fn put_clients(store: &Arc<dyn Store>, ids: &[&str]) {
    for id in ids {
        assert!(store.put_client(&client(id)).await.unwrap(), "{id} created");
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn allowed_queues(store: &Arc<dyn Store>, client_id: &str) -> Vec<String> {
    store
        .get_client(client_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("client {client_id} exists"))
        .allowed_queues
}

/// A refresh token issued at `t(issued)`, expiring at `t(expires)`;
/// returns its hash.
async fn issue_token(store: &Arc<dyn Store>, client_id: &str, issued: i64, expires: i64) -> String {
    let token_hash = refresh_token_hash(&new_refresh_token());
    store
        .insert_refresh_token(&RefreshToken {
            token_hash: token_hash.clone(),
            client_id: client_id.into(),
            issued_at: t(issued),
            expires_at: t(expires),
            revoked: false,
        })
        .await
        .unwrap();
    token_hash
}

/// Sealed bytes as the store must keep them: not UTF-8, with zeros.
fn sealed(tag: u8) -> Vec<u8> {
    vec![0, 255, tag, 0x80, 0, 0xfe, tag, 1, 2, 3, 0]
}

fn secret(
    client_id: &str,
    path: &str,
    tag: u8,
    expires: Option<i64>,
    ephemeral: bool,
) -> StoredSecret {
    StoredSecret {
        client_id: client_id.into(),
        path: path.into(),
        sealed: sealed(tag),
        expires_at: expires.map(t),
        ephemeral,
        updated_at: t(1),
    }
}

async fn existing(
    store: &Arc<dyn Store>,
    client_id: &str,
    paths: &[&str],
    now: i64,
) -> Vec<String> {
    let mut found = store
        .existing_secrets(client_id, &strings(paths), t(now))
        .await
        .unwrap();
    found.sort();
    found
}

async fn take(
    store: &Arc<dyn Store>,
    client_id: &str,
    paths: &[&str],
    now: i64,
) -> Vec<StoredSecret> {
    let mut taken = store
        .take_secrets(client_id, &strings(paths), t(now))
        .await
        .unwrap();
    taken.sort_by(|a, b| a.path.cmp(&b.path));
    taken
}

fn sorted_owners(queue: Option<RestrictedQueue>) -> Option<Vec<String>> {
    queue.map(|q| {
        let mut owners = q.owners;
        owners.sort();
        owners
    })
}

async fn clients_are_created_replaced_listed_and_deleted(store: Arc<dyn Store>) {
    assert!(store.get_client("nobody").await.unwrap().is_none());
    assert!(store.list_clients().await.unwrap().is_empty());

    let mut full = Client::new("zeta", hash_secret("a long enough secret"), Role::Manager);
    full.max_priority = BTreeMap::from([("*".to_string(), 5), ("lab-q".to_string(), 100)]);
    full.allowed_queues = strings(&["restricted-b", "restricted-a", "*"]);
    full.max_reservation_time =
        BTreeMap::from([("lab-q".to_string(), 86_400), ("*".to_string(), 43_200)]);
    assert!(store.put_client(&full).await.unwrap(), "created");
    assert_eq!(store.get_client("zeta").await.unwrap(), Some(full.clone()));

    // Every role, and empty permission maps, read back as stored.
    let mut expected = vec![full.clone()];
    for (id, role) in [
        ("alpha", Role::Admin),
        ("mid", Role::Agent),
        ("beta", Role::Contributor),
    ] {
        let c = Client::new(id, format!("$argon2id$fake-{id}"), role);
        assert!(store.put_client(&c).await.unwrap());
        assert_eq!(store.get_client(id).await.unwrap(), Some(c.clone()));
        expected.push(c);
    }
    expected.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    assert_eq!(
        store.list_clients().await.unwrap(),
        expected,
        "by client_id"
    );

    // A put replaces the client whole: nothing of the old one is merged in.
    let replacement = Client::new("zeta", "another-hash", Role::Agent);
    assert!(!store.put_client(&replacement).await.unwrap(), "replaced");
    assert_eq!(store.get_client("zeta").await.unwrap(), Some(replacement));
    assert_eq!(store.list_clients().await.unwrap().len(), 4);

    assert!(store.delete_client("zeta").await.unwrap());
    assert!(store.get_client("zeta").await.unwrap().is_none());
    assert!(!store.delete_client("zeta").await.unwrap(), "already gone");
    assert!(!store.delete_client("nobody").await.unwrap());
    let ids: Vec<String> = store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["alpha", "beta", "mid"]);
}

/// The permissions API accepts any non-empty queue name as a key of the
/// limit maps (`.` and a leading `$` included) and client ids with `.`.
async fn any_queue_name_the_api_accepts_is_kept(store: Arc<dyn Store>) {
    let mut c = Client::new("ci.bot", "hash", Role::Contributor);
    c.max_priority = BTreeMap::from([
        ("lab.rpi4".to_string(), 7),
        ("$odd".to_string(), 1),
        ("*".to_string(), 0),
    ]);
    c.max_reservation_time = BTreeMap::from([("a.b.c".to_string(), i64::MAX)]);
    c.allowed_queues = strings(&["x.y", "$z"]);
    assert!(store.put_client(&c).await.unwrap());
    assert_eq!(store.get_client("ci.bot").await.unwrap(), Some(c.clone()));
    assert_eq!(store.list_clients().await.unwrap(), vec![c.clone()]);

    assert!(store.add_queue_owner("lab.rpi4", "ci.bot").await.unwrap());
    assert_eq!(
        store.get_restricted_queue("lab.rpi4").await.unwrap(),
        Some(RestrictedQueue {
            queue: "lab.rpi4".into(),
            owners: strings(&["ci.bot"])
        })
    );
    let mut granted = allowed_queues(&store, "ci.bot").await;
    granted.sort();
    assert_eq!(granted, ["$z", "lab.rpi4", "x.y"]);
    let after = store.get_client("ci.bot").await.unwrap().unwrap();
    assert_eq!(after.max_priority, c.max_priority, "limits untouched");
    assert_eq!(
        store
            .remove_queue_owner("lab.rpi4", "ci.bot")
            .await
            .unwrap(),
        OwnerRemoval::Removed {
            restriction_ended: true
        }
    );
    assert_eq!(allowed_queues(&store, "ci.bot").await, ["x.y", "$z"]);
    assert!(store.delete_client("ci.bot").await.unwrap());
}

async fn deleting_a_client_removes_its_tokens_secrets_and_ownerships(store: Arc<dyn Store>) {
    put_clients(&store, &["gone", "kept"]).await;
    let gone_token = issue_token(&store, "gone", 0, 100_000).await;
    let kept_token = issue_token(&store, "kept", 0, 100_000).await;
    for owner in ["gone", "kept"] {
        store
            .put_secret(&secret(owner, "lab/wifi", 1, None, false))
            .await
            .unwrap();
    }
    assert!(store.add_queue_owner("solo", "gone").await.unwrap());
    assert!(store.add_queue_owner("shared", "gone").await.unwrap());
    assert!(store.add_queue_owner("shared", "kept").await.unwrap());

    assert!(store.delete_client("gone").await.unwrap());

    assert_eq!(
        store.use_refresh_token(&gone_token, t(10)).await.unwrap(),
        None,
        "a deleted client's refresh token no longer works"
    );
    assert!(existing(&store, "gone", &["lab/wifi"], 10).await.is_empty());
    assert!(take(&store, "gone", &["lab/wifi"], 10).await.is_empty());
    // The restriction stays, even with no owner left.
    assert_eq!(
        store.get_restricted_queue("solo").await.unwrap(),
        Some(RestrictedQueue {
            queue: "solo".into(),
            owners: vec![]
        }),
        "deleting a client must not open its queue to everybody"
    );
    assert_eq!(
        sorted_owners(store.get_restricted_queue("shared").await.unwrap()),
        Some(strings(&["kept"]))
    );
    let queues: Vec<String> = store
        .list_restricted_queues()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.queue)
        .collect();
    assert_eq!(queues, ["shared", "solo"]);

    // The other client is untouched.
    assert_eq!(
        store.use_refresh_token(&kept_token, t(10)).await.unwrap(),
        Some("kept".to_string())
    );
    assert_eq!(
        existing(&store, "kept", &["lab/wifi"], 10).await,
        ["lab/wifi"]
    );
    assert_eq!(allowed_queues(&store, "kept").await, ["shared"]);

    // A new client with the same id inherits nothing.
    put_clients(&store, &["gone"]).await;
    assert_eq!(
        store.use_refresh_token(&gone_token, t(10)).await.unwrap(),
        None
    );
    assert!(existing(&store, "gone", &["lab/wifi"], 10).await.is_empty());
    assert!(allowed_queues(&store, "gone").await.is_empty());
    assert_eq!(
        store.remove_queue_owner("solo", "gone").await.unwrap(),
        OwnerRemoval::NotOwner
    );
}

async fn refresh_tokens_work_until_expired_or_revoked(store: Arc<dyn Store>) {
    put_clients(&store, &["ci", "other"]).await;
    let token = issue_token(&store, "ci", 0, 10_000).await;
    let second = issue_token(&store, "ci", 0, 10_000).await;
    let others = issue_token(&store, "other", 0, 10_000).await;

    assert_eq!(
        store.use_refresh_token(&token, t(5_000)).await.unwrap(),
        Some("ci".to_string())
    );
    assert_eq!(
        store.use_refresh_token(&token, t(6_000)).await.unwrap(),
        Some("ci".to_string()),
        "a refresh token serves until it expires"
    );
    assert_eq!(
        store.use_refresh_token(&others, t(5_000)).await.unwrap(),
        Some("other".to_string())
    );
    // Expired at its expiry instant and after.
    assert_eq!(
        store.use_refresh_token(&token, t(10_000)).await.unwrap(),
        None
    );
    assert_eq!(
        store.use_refresh_token(&token, t(20_000)).await.unwrap(),
        None
    );
    assert_eq!(
        store.use_refresh_token(&token, t(9_999)).await.unwrap(),
        Some("ci".to_string()),
        "an expired use changes nothing"
    );

    assert!(store.revoke_refresh_token(&token).await.unwrap());
    assert_eq!(
        store.use_refresh_token(&token, t(5_000)).await.unwrap(),
        None,
        "revoked"
    );
    assert!(
        !store.revoke_refresh_token(&token).await.unwrap(),
        "already revoked"
    );
    assert_eq!(
        store.use_refresh_token(&second, t(5_000)).await.unwrap(),
        Some("ci".to_string()),
        "revoking one token leaves the client's others working"
    );

    // A token stored as revoked never works.
    let stored_revoked = refresh_token_hash(&new_refresh_token());
    store
        .insert_refresh_token(&RefreshToken {
            token_hash: stored_revoked.clone(),
            client_id: "ci".into(),
            issued_at: t(0),
            expires_at: t(10_000),
            revoked: true,
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .use_refresh_token(&stored_revoked, t(5_000))
            .await
            .unwrap(),
        None
    );
    assert!(!store.revoke_refresh_token(&stored_revoked).await.unwrap());

    let unknown = refresh_token_hash("never issued");
    assert_eq!(
        store.use_refresh_token(&unknown, t(5_000)).await.unwrap(),
        None
    );
    assert!(!store.revoke_refresh_token(&unknown).await.unwrap());
}

async fn owners_restrict_queues_and_grant_them(store: Arc<dyn Store>) {
    assert!(
        !store.add_queue_owner("q", "ghost").await.unwrap(),
        "unknown client"
    );
    assert!(
        store.get_restricted_queue("q").await.unwrap().is_none(),
        "nothing written for an unknown client"
    );
    assert!(store.list_restricted_queues().await.unwrap().is_empty());
    assert!(store.get_client("ghost").await.unwrap().is_none());

    let mut first = client("first");
    first.allowed_queues = strings(&["earlier"]);
    store.put_client(&first).await.unwrap();
    put_clients(&store, &["second"]).await;

    assert!(store.add_queue_owner("q", "first").await.unwrap());
    assert_eq!(
        store.get_restricted_queue("q").await.unwrap(),
        Some(RestrictedQueue {
            queue: "q".into(),
            owners: strings(&["first"])
        })
    );
    let mut granted = allowed_queues(&store, "first").await;
    granted.sort();
    assert_eq!(granted, ["earlier", "q"], "the queue is added, others kept");

    // Adding the same owner again changes nothing.
    assert!(store.add_queue_owner("q", "first").await.unwrap());
    assert_eq!(
        sorted_owners(store.get_restricted_queue("q").await.unwrap()),
        Some(strings(&["first"]))
    );
    let mut granted = allowed_queues(&store, "first").await;
    granted.sort();
    assert_eq!(granted, ["earlier", "q"], "no duplicate grant");

    assert!(store.add_queue_owner("q", "second").await.unwrap());
    assert_eq!(
        sorted_owners(store.get_restricted_queue("q").await.unwrap()),
        Some(strings(&["first", "second"]))
    );
    assert_eq!(allowed_queues(&store, "second").await, ["q"]);

    // Listed by queue name, whatever the order they were restricted in.
    for queue in ["q-c", "q-a", "q-b"] {
        assert!(store.add_queue_owner(queue, "second").await.unwrap());
    }
    let listed: Vec<(String, Vec<String>)> = store
        .list_restricted_queues()
        .await
        .unwrap()
        .into_iter()
        .map(|q| (q.queue.clone(), sorted_owners(Some(q)).unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            ("q".to_string(), strings(&["first", "second"])),
            ("q-a".to_string(), strings(&["second"])),
            ("q-b".to_string(), strings(&["second"])),
            ("q-c".to_string(), strings(&["second"])),
        ]
    );
    assert!(store.get_restricted_queue("open").await.unwrap().is_none());
}

async fn removing_owners_ends_the_restriction_with_the_last(store: Arc<dyn Store>) {
    put_clients(&store, &["a", "b", "outsider"]).await;
    assert_eq!(
        store.remove_queue_owner("q", "a").await.unwrap(),
        OwnerRemoval::NotRestricted
    );
    assert!(store.get_restricted_queue("q").await.unwrap().is_none());

    assert!(store.add_queue_owner("q", "a").await.unwrap());
    assert!(store.add_queue_owner("q", "b").await.unwrap());
    assert!(store.add_queue_owner("other", "a").await.unwrap());
    assert_eq!(
        store.remove_queue_owner("q", "outsider").await.unwrap(),
        OwnerRemoval::NotOwner
    );
    assert_eq!(
        store.remove_queue_owner("q", "ghost").await.unwrap(),
        OwnerRemoval::NotOwner
    );
    assert_eq!(
        sorted_owners(store.get_restricted_queue("q").await.unwrap()),
        Some(strings(&["a", "b"])),
        "a refused removal changes nothing"
    );

    assert_eq!(
        store.remove_queue_owner("q", "a").await.unwrap(),
        OwnerRemoval::Removed {
            restriction_ended: false
        }
    );
    assert_eq!(
        sorted_owners(store.get_restricted_queue("q").await.unwrap()),
        Some(strings(&["b"])),
        "the restriction stays while an owner is left"
    );
    assert_eq!(
        allowed_queues(&store, "a").await,
        ["other"],
        "the removed owner loses the queue, keeps the rest"
    );
    assert_eq!(allowed_queues(&store, "b").await, ["q"]);
    assert_eq!(
        store.remove_queue_owner("q", "a").await.unwrap(),
        OwnerRemoval::NotOwner,
        "already removed"
    );

    assert_eq!(
        store.remove_queue_owner("q", "b").await.unwrap(),
        OwnerRemoval::Removed {
            restriction_ended: true
        }
    );
    assert!(store.get_restricted_queue("q").await.unwrap().is_none());
    assert!(allowed_queues(&store, "b").await.is_empty());
    assert_eq!(
        store.remove_queue_owner("q", "b").await.unwrap(),
        OwnerRemoval::NotRestricted
    );
    let queues: Vec<String> = store
        .list_restricted_queues()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.queue)
        .collect();
    assert_eq!(queues, ["other"]);
}

async fn concurrent_owners_all_join_one_restriction(store: Arc<dyn Store>) {
    const OWNERS: usize = 12;
    let ids: Vec<String> = (0..OWNERS).map(|i| format!("owner-{i:02}")).collect();
    for id in &ids {
        store.put_client(&client(id)).await.unwrap();
    }
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.add_queue_owner("contended", &id).await.unwrap()
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert_eq!(
        sorted_owners(store.get_restricted_queue("contended").await.unwrap()),
        Some(ids.clone()),
        "every concurrent owner is kept, the restriction made once"
    );
    assert_eq!(store.list_restricted_queues().await.unwrap().len(), 1);
    for id in &ids {
        assert_eq!(allowed_queues(&store, id).await, ["contended"]);
    }
}

/// Adding an owner races deleting that client: whichever comes first, a
/// deleted client must not be left owning a queue (a client created later
/// under the same id would inherit it). A race detector: it cannot fail for
/// a correct store, and catches a check-then-write store nearly every run.
async fn a_client_deleted_while_made_an_owner_owns_nothing(store: Arc<dyn Store>) {
    const LANES: usize = 8;
    const ROUNDS: usize = 250;
    let mut lanes = Vec::new();
    for lane in 0..LANES {
        let store = store.clone();
        lanes.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let id = format!("doomed-{lane}-{round}");
                let queue = format!("q-{lane}-{round}");
                store.put_client(&client(&id)).await.unwrap();
                let add = {
                    let (store, id, queue) = (store.clone(), id.clone(), queue.clone());
                    tokio::spawn(async move { store.add_queue_owner(&queue, &id).await.unwrap() })
                };
                let delete = {
                    let (store, id) = (store.clone(), id.clone());
                    tokio::spawn(async move { store.delete_client(&id).await.unwrap() })
                };
                add.await.unwrap();
                assert!(delete.await.unwrap());
                assert!(store.get_client(&id).await.unwrap().is_none());
                if let Some(restriction) = store.get_restricted_queue(&queue).await.unwrap() {
                    assert!(
                        restriction.owners.is_empty(),
                        "deleted client {id} still owns {queue}: {restriction:?}"
                    );
                }
            }
        }));
    }
    for lane in lanes {
        lane.await.unwrap();
    }
}

/// Concurrent writers of one client, one secret, or the last owners of one
/// queue: none fails, and exactly one is told it created or ended it.
async fn concurrent_writes_of_one_record_agree(store: Arc<dyn Store>) {
    const WRITERS: usize = 16;
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = client("contended");
            c.max_priority.insert("q".into(), i as i64);
            store.put_client(&c).await.unwrap()
        }));
    }
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.unwrap());
    }
    assert_eq!(created, 1, "exactly one put creates the client");
    assert_eq!(store.list_clients().await.unwrap().len(), 1);

    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put_secret(&secret("contended", "shared/path", i as u8, None, false))
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let taken = take(&store, "contended", &["shared/path"], 10).await;
    assert_eq!(taken.len(), 1);
    assert!((0..WRITERS).any(|i| taken[0].sealed == sealed(i as u8)));

    put_clients(&store, &["x", "y"]).await;
    for round in 0..20 {
        let queue = format!("q-{round}");
        for owner in ["x", "y"] {
            assert!(store.add_queue_owner(&queue, owner).await.unwrap());
        }
        let mut tasks = Vec::new();
        for owner in ["x", "y"] {
            let (store, queue) = (store.clone(), queue.clone());
            tasks.push(tokio::spawn(async move {
                store.remove_queue_owner(&queue, owner).await.unwrap()
            }));
        }
        let mut ended = 0;
        for task in tasks {
            match task.await.unwrap() {
                OwnerRemoval::Removed { restriction_ended } => {
                    ended += usize::from(restriction_ended)
                }
                other => panic!("{queue}: expected a removal, got {other:?}"),
            }
        }
        assert_eq!(
            ended, 1,
            "{queue}: exactly one removal ends the restriction"
        );
        assert!(store.get_restricted_queue(&queue).await.unwrap().is_none());
    }
    assert!(allowed_queues(&store, "x").await.is_empty());
    assert!(allowed_queues(&store, "y").await.is_empty());
}

async fn secrets_are_per_client_and_expire(store: Arc<dyn Store>) {
    put_clients(&store, &["a", "b"]).await;
    store
        .put_secret(&secret("a", "lab/wifi", 1, None, false))
        .await
        .unwrap();
    store
        .put_secret(&secret("a", "lab/token", 2, Some(50_000), false))
        .await
        .unwrap();
    store
        .put_secret(&secret("a", "old", 3, Some(1_000), false))
        .await
        .unwrap();
    store
        .put_secret(&secret("b", "lab/token", 4, None, false))
        .await
        .unwrap();

    let asked = ["lab/wifi", "lab/token", "old", "missing", "b-only"];
    assert_eq!(
        existing(&store, "a", &asked, 10_000).await,
        ["lab/token", "lab/wifi"],
        "only existing, unexpired paths"
    );
    assert_eq!(
        existing(&store, "a", &asked, 500).await,
        ["lab/token", "lab/wifi", "old"]
    );
    assert_eq!(
        existing(&store, "a", &["lab/wifi"], 60_000).await,
        ["lab/wifi"]
    );
    assert!(existing(&store, "a", &[], 10_000).await.is_empty());

    // Non-ephemeral secrets are read unchanged, and stay.
    for _ in 0..2 {
        assert_eq!(
            take(&store, "a", &asked, 10_000).await,
            vec![
                secret("a", "lab/token", 2, Some(50_000), false),
                secret("a", "lab/wifi", 1, None, false),
            ]
        );
    }
    assert!(
        take(&store, "a", &["old"], 10_000).await.is_empty(),
        "expired"
    );
    assert!(take(&store, "a", &["lab/token"], 60_000).await.is_empty());

    // Per client: the same path is another secret, another's is invisible.
    assert_eq!(
        take(&store, "b", &asked, 10_000).await,
        vec![secret("b", "lab/token", 4, None, false)]
    );
    assert!(existing(&store, "b", &["lab/wifi"], 10_000)
        .await
        .is_empty());
    assert!(take(&store, "b", &["lab/wifi"], 10_000).await.is_empty());
    assert!(!store.delete_secret("b", "lab/wifi").await.unwrap());
    assert_eq!(
        existing(&store, "a", &["lab/wifi"], 10_000).await,
        ["lab/wifi"]
    );

    // A put replaces the secret whole.
    let mut replaced = secret("a", "lab/wifi", 9, Some(70_000), false);
    replaced.updated_at = t(2_000);
    store.put_secret(&replaced).await.unwrap();
    assert_eq!(
        take(&store, "a", &["lab/wifi"], 10_000).await,
        vec![replaced]
    );
    store
        .put_secret(&secret("a", "old", 5, None, false))
        .await
        .unwrap();
    assert_eq!(
        existing(&store, "a", &["old"], 10_000).await,
        ["old"],
        "an expired secret put again lives again"
    );

    assert!(store.delete_secret("a", "lab/wifi").await.unwrap());
    assert!(
        !store.delete_secret("a", "lab/wifi").await.unwrap(),
        "already deleted"
    );
    assert!(existing(&store, "a", &["lab/wifi"], 10_000)
        .await
        .is_empty());
    assert!(take(&store, "a", &["lab/wifi"], 10_000).await.is_empty());
    assert_eq!(
        existing(&store, "b", &["lab/token"], 10_000).await,
        ["lab/token"],
        "another client's secret stays"
    );
}

async fn ephemeral_secrets_are_taken_once(store: Arc<dyn Store>) {
    put_clients(&store, &["a"]).await;
    let once = secret("a", "once", 1, None, true);
    let kept = secret("a", "kept", 2, None, false);
    store.put_secret(&once).await.unwrap();
    store.put_secret(&kept).await.unwrap();
    store
        .put_secret(&secret("a", "stale", 3, Some(1_000), true))
        .await
        .unwrap();
    store
        .put_secret(&secret("a", "untouched", 4, None, true))
        .await
        .unwrap();

    // Checking that an ephemeral secret exists does not consume it.
    assert_eq!(
        existing(&store, "a", &["once", "kept", "stale"], 5_000).await,
        ["kept", "once"]
    );
    assert_eq!(
        take(&store, "a", &["once", "kept", "stale"], 5_000).await,
        vec![kept.clone(), once.clone()]
    );
    assert_eq!(
        take(&store, "a", &["once", "kept", "stale"], 5_000).await,
        vec![kept.clone()],
        "the ephemeral one is gone once read"
    );
    assert!(existing(&store, "a", &["once"], 5_000).await.is_empty());
    assert!(!store.delete_secret("a", "once").await.unwrap());
    assert_eq!(
        existing(&store, "a", &["untouched"], 5_000).await,
        ["untouched"],
        "an ephemeral secret not asked for stays"
    );

    // Asked for twice in one read, it is still handed out once.
    let twice = secret("a", "twice", 5, None, true);
    store.put_secret(&twice).await.unwrap();
    assert_eq!(
        take(&store, "a", &["twice", "twice"], 5_000).await,
        vec![twice]
    );

    // Put again, it can be read once more.
    store.put_secret(&once).await.unwrap();
    assert_eq!(take(&store, "a", &["once"], 5_000).await, vec![once]);
    assert!(take(&store, "a", &["once"], 5_000).await.is_empty());
}

async fn concurrent_takes_hand_out_each_ephemeral_secret_once(store: Arc<dyn Store>) {
    const READERS: usize = 16;
    const EPHEMERAL: usize = 6;
    put_clients(&store, &["ci"]).await;
    let mut paths: Vec<String> = (0..EPHEMERAL).map(|i| format!("race/{i}")).collect();
    for (i, path) in paths.iter().enumerate() {
        store
            .put_secret(&secret("ci", path, i as u8, None, true))
            .await
            .unwrap();
    }
    store
        .put_secret(&secret("ci", "race/shared", 99, None, false))
        .await
        .unwrap();
    paths.push("race/shared".into());

    let mut tasks = Vec::new();
    for _ in 0..READERS {
        let store = store.clone();
        let paths = paths.clone();
        tasks.push(tokio::spawn(async move {
            store.take_secrets("ci", &paths, t(10)).await.unwrap()
        }));
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for task in tasks {
        for taken in task.await.unwrap() {
            let i = taken.path.strip_prefix("race/").unwrap();
            let tag = if i == "shared" {
                99
            } else {
                i.parse().unwrap()
            };
            assert_eq!(taken.sealed, sealed(tag), "{}", taken.path);
            *counts.entry(taken.path).or_default() += 1;
        }
    }
    for path in &paths[..EPHEMERAL] {
        assert_eq!(counts.get(path), Some(&1), "{path} taken exactly once");
    }
    assert_eq!(
        counts.get("race/shared"),
        Some(&READERS),
        "read by every reader"
    );
    assert_eq!(
        existing(
            &store,
            "ci",
            &paths.iter().map(String::as_str).collect::<Vec<_>>(),
            10
        )
        .await,
        ["race/shared"]
    );
}

async fn expired_tokens_and_secrets_are_purged(store: Arc<dyn Store>) {
    put_clients(&store, &["ci"]).await;
    let expired = issue_token(&store, "ci", 0, 1_000).await;
    let live = issue_token(&store, "ci", 0, 10_000).await;
    for (path, expires) in [
        ("old", Some(1_000)),
        ("young", Some(10_000)),
        ("forever", None),
    ] {
        store
            .put_secret(&secret("ci", path, 1, expires, false))
            .await
            .unwrap();
    }
    let all = ["old", "young", "forever"];
    assert_eq!(
        existing(&store, "ci", &all, 0).await,
        ["forever", "old", "young"]
    );

    assert!(
        store.purge_expired(t(5_000)).await.unwrap().is_empty(),
        "no jobs"
    );

    // Asked as of before any expiry: only what was purged is missing.
    assert_eq!(store.use_refresh_token(&expired, t(0)).await.unwrap(), None);
    assert_eq!(
        store.use_refresh_token(&live, t(0)).await.unwrap(),
        Some("ci".to_string())
    );
    assert!(
        !store.revoke_refresh_token(&expired).await.unwrap(),
        "deleted"
    );
    assert_eq!(existing(&store, "ci", &all, 0).await, ["forever", "young"]);
    assert!(take(&store, "ci", &["old"], 0).await.is_empty());
    assert!(!store.delete_secret("ci", "old").await.unwrap(), "deleted");
    assert!(
        store.get_client("ci").await.unwrap().is_some(),
        "clients stay"
    );
}
