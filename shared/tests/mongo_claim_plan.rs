//! The MongoDB claim is served by its index: the server's own query plan for
//! the very `findAndModify` the store sends has one bounded scan of
//! `claim_order` per requested queue, merged in claim order, and neither a
//! collection scan nor a blocking sort. So the cost of a claim does not
//! depend on how many jobs wait (SPEC.md §7) — the embedded store's
//! counterpart reads SQLite's `EXPLAIN QUERY PLAN` (`store::sqlite` tests).

use mongodb::bson::{doc, Bson, Document};
use serde_json::json;
use testflinger_shared::config::StoreConfig;
use testflinger_shared::job::validate_submission;
use testflinger_shared::store::mongo::{ClaimQuery, CLAIM_INDEX};
use testflinger_shared::store::ClaimRequest;
use testflinger_shared::Timestamp;

/// Every stage of a plan, depth first.
fn stages(plan: &Document) -> Vec<&Document> {
    let mut all = vec![plan];
    if let Ok(input) = plan.get_document("inputStage") {
        all.extend(stages(input));
    }
    if let Ok(inputs) = plan.get_array("inputStages") {
        for input in inputs {
            if let Bson::Document(input) = input {
                all.extend(stages(input));
            }
        }
    }
    all
}

/// The point intervals a scan has on `field` (`["[\"a\", \"a\"]"]`).
fn bounds<'a>(scan: &'a Document, field: &str) -> Vec<&'a str> {
    scan.get_document("indexBounds")
        .and_then(|b| b.get_array(field))
        .map(|values| values.iter().filter_map(Bson::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_is_one_bounded_index_scan_per_queue_and_no_sort() {
    let Some(env) = testflinger_shared::testing::TestEnv::mongodb() else {
        return;
    };
    let backends = env.open().await;
    // Enough jobs that a planner has a choice to make, over several queues.
    let jobs: Vec<_> = (0..300)
        .map(|i| {
            validate_submission(
                json!({"job_queue": format!("plan-q{}", i % 3), "job_priority": i % 2}),
                Timestamp::from_millis(1_000 + i),
            )
            .unwrap()
        })
        .collect();
    backends.store.insert_jobs(&jobs).await.unwrap();

    let StoreConfig::MongoDb(mongo) = &env.config.store else {
        unreachable!("a MongoDB environment")
    };
    let client = mongodb::Client::with_uri_str(&mongo.uri).await.unwrap();
    let database = client.database(&mongo.database);
    for queues in [vec!["plan-q1"], vec!["plan-q0", "plan-q2"]] {
        let request = ClaimRequest {
            queues: queues.iter().map(|q| q.to_string()).collect(),
            agent_name: Some("plan-agent".into()),
            client_id: Some("plan-client".into()),
            lease_until: None,
        };
        let query = ClaimQuery::new(&request, Timestamp::now());
        let explained = database
            .run_command(doc! {
                "explain": {
                    "findAndModify": "jobs",
                    "query": query.filter,
                    "sort": query.sort,
                    "update": query.update,
                    "hint": CLAIM_INDEX,
                    "new": true,
                },
                "verbosity": "queryPlanner",
            })
            .await
            .expect("the server explains the claim");
        let plan = explained
            .get_document("queryPlanner")
            .and_then(|p| p.get_document("winningPlan"))
            .unwrap_or_else(|_| panic!("no winning plan in {explained}"));
        let all = stages(plan);
        let names: Vec<&str> = all.iter().filter_map(|s| s.get_str("stage").ok()).collect();
        assert!(
            !names.contains(&"COLLSCAN") && !names.contains(&"SORT"),
            "{queues:?}: a scan of the collection or a blocking sort: {names:?}"
        );
        assert!(names.contains(&"LIMIT"), "{queues:?}: {names:?}");
        let scans: Vec<&&Document> = all
            .iter()
            .filter(|s| s.get_str("stage") == Ok("IXSCAN"))
            .collect();
        // One scan per queue (merged in claim order), or one scan whose
        // bounds list every queue: either way each queue is a point.
        let mut scanned_queues: Vec<String> = Vec::new();
        for scan in &scans {
            assert_eq!(scan.get_str("indexName"), Ok(CLAIM_INDEX), "{scan}");
            assert_eq!(
                bounds(scan, "result_data.job_state"),
                ["[\"waiting\", \"waiting\"]"],
                "{scan}"
            );
            for interval in bounds(scan, "job_data.job_queue") {
                let (low, high) = interval
                    .trim_matches(|c| c == '[' || c == ']')
                    .split_once(", ")
                    .unwrap_or_else(|| panic!("an interval: {interval}"));
                assert_eq!(low, high, "{queues:?}: a range, not a point: {interval}");
                scanned_queues.push(low.trim_matches('"').to_owned());
            }
        }
        scanned_queues.sort();
        assert_eq!(scanned_queues, queues, "{names:?}");
        if queues.len() > 1 && scans.len() > 1 {
            assert!(names.contains(&"SORT_MERGE"), "{names:?}");
        }
    }
}

/// A deployment where `setup` never ran (no claim index): claims still
/// work, never a 500 (they name the index first, then go without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_work_on_a_database_that_setup_never_prepared() {
    use testflinger_shared::store::prelude::*;
    use testflinger_shared::store::MongoStore;
    let Some(env) = testflinger_shared::testing::TestEnv::mongodb() else {
        return;
    };
    let StoreConfig::MongoDb(mongo) = &env.config.store else {
        unreachable!("a MongoDB environment")
    };
    // Connect only: no `setup`, so no indexes.
    let store = MongoStore::connect(mongo).await.expect("connects");
    let now = Timestamp::now();
    let mut ids = Vec::new();
    for priority in [0, 5, 0] {
        let job = validate_submission(json!({"job_queue": "bare", "job_priority": priority}), now)
            .unwrap();
        store.insert_job(&job).await.unwrap();
        ids.push(job.job_id);
    }
    let request = ClaimRequest {
        queues: vec!["bare".into()],
        agent_name: None,
        client_id: None,
        lease_until: None,
    };
    for expected in [ids[1], ids[0], ids[2]] {
        let claimed = store.claim_job(&request, now).await.expect("no error");
        assert_eq!(claimed.map(|j| j.job_id), Some(expected));
    }
    assert!(store.claim_job(&request, now).await.unwrap().is_none());
}
