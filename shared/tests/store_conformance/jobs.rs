//! Conformance of jobs: storing, claiming, cancelling, results and states, position, queue lists, wait times, attachments, search.

use super::*;
use testflinger_shared::job::{Job, JobState};
use testflinger_shared::store::claim_order;

conformance!(
    a_stored_job_reads_back_as_submitted,
    an_unknown_job_is_none,
    the_claim_takes_priority_then_fifo,
    the_claim_serves_every_requested_queue,
    a_batch_of_jobs_is_stored_in_order,
    the_claim_skips_jobs_that_exclude_the_agent,
    the_claim_excludes_agents_whatever_the_case,
    the_claim_records_the_claiming_client,
    the_claim_skips_jobs_waiting_for_attachments,
    the_claim_marks_the_job_running,
    concurrent_claims_hand_out_each_job_once,
    cancel_moves_only_unfinished_jobs,
    results_merge_and_status_is_replaced,
    reported_states_move_the_job_until_terminal,
    a_result_for_an_unknown_job_is_refused,
    position_counts_the_jobs_claimed_before,
    queue_jobs_are_listed_newest_first,
    wait_times_come_from_claims,
    uploaded_attachments_make_a_job_claimable,
    search_filters_by_tags_and_states_and_pages,
    search_narrows_to_a_queue_and_a_submitter,
    active_jobs_are_counted_by_queue_and_state,
    a_job_too_large_to_store_is_refused_as_such,
    claims_follow_the_one_definition_of_eligibility_and_order,
    reported_states_follow_the_one_transition_rule,
    result_patches_touch_only_their_keys,
    the_claim_names_the_agent_over_a_posted_agent_id,
    every_key_the_validation_admits_reads_back_unchanged,
);

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
    let claimed = drain(&store, &["bulk-1"]).await;
    assert_eq!(claimed, ids(&["bulk-1"]));
    let mut expected = ids(&["bulk-0", "bulk-2"]);
    let urgent = jobs[200].job_id;
    expected.retain(|id| *id != urgent);
    expected.insert(0, urgent);
    let claimed = drain(&store, &["bulk-0", "bulk-2"]).await;
    assert_eq!(claimed, expected);
}

/// Claims until nothing is left. An empty answer is asked again a few
/// times before it counts as the end: under the full suite's load the
/// MongoDB-compatible test server has, rarely, answered a claim with
/// nothing while jobs waited (an agent simply polls again); the order of
/// what is claimed is what this checks.
async fn drain(store: &Arc<dyn Store>, queues: &[&str]) -> Vec<Uuid> {
    let mut claimed = Vec::new();
    let mut empty = 0;
    while empty < 5 {
        match claim_id(store, queues, None).await {
            Some(id) => {
                claimed.push(id);
                empty = 0;
            }
            None => {
                empty += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    claimed
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

async fn the_claim_excludes_agents_whatever_the_case(store: Arc<dyn Store>) {
    let excluded = insert(
        &store,
        json!({"job_queue": "q", "exclude_agents": ["DEV-1", "dev-2"]}),
        1,
    )
    .await;
    for agent in ["dev-1", "Dev-1", "DEV-2"] {
        assert_eq!(claim_id(&store, &["q"], Some(agent)).await, None, "{agent}");
    }
    assert_eq!(
        claim_id(&store, &["q"], Some("dev-3")).await,
        Some(excluded)
    );
}

async fn the_claim_records_the_claiming_client(store: Arc<dyn Store>) {
    let first = insert(&store, json!({"job_queue": "q"}), 1).await;
    let second = insert(&store, json!({"job_queue": "q"}), 2).await;
    assert_eq!(
        store.get_job(first).await.unwrap().unwrap().claimed_by,
        None
    );
    let request = ClaimRequest {
        client_id: Some("lab-a".into()),
        ..claim(&["q"], Some("dev-1"))
    };
    let claimed = store
        .claim_job(&request, t(10))
        .await
        .unwrap()
        .expect("a job");
    assert_eq!(
        (claimed.job_id, claimed.claimed_by.as_deref()),
        (first, Some("lab-a"))
    );
    let stored = store.get_job(first).await.unwrap().unwrap();
    assert_eq!(stored.claimed_by.as_deref(), Some("lab-a"));
    assert_eq!(stored.agent_id(), Some("dev-1"));
    // A result changes nothing of it, whatever the result says.
    store
        .apply_result(
            first,
            &patch(json!({"claimed_by": "lab-b", "job_state": "test"})),
            t(11),
        )
        .await
        .unwrap();
    let stored = store.get_job(first).await.unwrap().unwrap();
    assert_eq!(stored.claimed_by.as_deref(), Some("lab-a"));
    // An anonymous claim (the open mode) records no client.
    let anonymous = store
        .claim_job(&claim(&["q"], None), t(12))
        .await
        .unwrap()
        .expect("a job");
    assert_eq!((anonymous.job_id, anonymous.claimed_by), (second, None));
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
        assert!(store
            .apply_result(id, &patch(body), t(2))
            .await
            .unwrap()
            .is_some());
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
    assert!(store
        .apply_result(unknown, &patch(json!({"a": 1})), t(1))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .apply_result(unknown, &patch(json!({"job_state": "setup"})), t(1))
        .await
        .unwrap()
        .is_none());
    assert!(store.get_job(unknown).await.unwrap().is_none());
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

async fn search_narrows_to_a_queue_and_a_submitter(store: Arc<dyn Store>) {
    let submitted = |body: Value, created: i64, client: Option<&'static str>| {
        let store = store.clone();
        async move {
            let mut job = new_job(body, created);
            if let Some(client) = client {
                job.job_data.insert("client_id".into(), json!(client));
            }
            store.insert_job(&job).await.unwrap();
            job.job_id
        }
    };
    let a = submitted(json!({"job_queue": "q1", "tags": ["x"]}), 1, Some("ci")).await;
    let b = submitted(json!({"job_queue": "q2", "tags": ["x"]}), 2, Some("ci")).await;
    let c = submitted(json!({"job_queue": "q1"}), 3, None).await;
    let d = submitted(json!({"job_queue": "q1"}), 4, Some("other")).await;
    let search = |query: SearchQuery| {
        let store = store.clone();
        async move {
            let page = store.search_jobs(&query).await.unwrap();
            page.into_iter().map(|j| j.job_id).collect::<Vec<_>>()
        }
    };
    let queue = |q: &str| SearchQuery {
        queue: Some(q.into()),
        ..SearchQuery::default()
    };
    let by = |client: &str| SearchQuery {
        submitted_by: Some(client.into()),
        ..SearchQuery::default()
    };
    assert_eq!(search(queue("q1")).await, [d, c, a]);
    assert_eq!(search(queue("q2")).await, [b]);
    assert_eq!(search(queue("none")).await, Vec::<Uuid>::new());
    assert_eq!(search(by("ci")).await, [b, a]);
    assert_eq!(search(by("other")).await, [d]);
    let both = SearchQuery {
        tags: vec!["x".into()],
        ..queue("q1")
    };
    assert_eq!(
        search(SearchQuery {
            submitted_by: Some("ci".into()),
            ..both
        })
        .await,
        [a]
    );
    // Pages within a queue: the cursor continues after the last shown.
    let first = search(SearchQuery {
        limit: 1,
        ..queue("q1")
    })
    .await;
    assert_eq!(first, [d, c], "limit + 1 come back");
    let all = store.search_jobs(&queue("q1")).await.unwrap();
    let next = SearchQuery {
        limit: 1,
        before: Some((all[0].created_at, all[0].job_id)),
        ..queue("q1")
    };
    assert_eq!(search(next).await, [c, a]);
}

async fn active_jobs_are_counted_by_queue_and_state(store: Arc<dyn Store>) {
    assert!(store.active_job_counts().await.unwrap().is_empty());
    for created in 1..=3 {
        insert(&store, json!({"job_queue": "q1"}), created).await;
    }
    insert(&store, json!({"job_queue": "q2"}), 4).await;
    insert(&store, json!({"job_queue": "q2"}), 5).await;
    let cancelled = insert(&store, json!({"job_queue": "q3"}), 6).await;
    store.cancel_job(cancelled, t(7)).await.unwrap();
    let running = store
        .claim_job(&claim(&["q1"], None), t(8))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.job_queue, "q1");
    let claimed = store
        .claim_job(&claim(&["q2"], None), t(9))
        .await
        .unwrap()
        .unwrap();
    // The agent reports a phase; later the job completes.
    let state = |s: &str| patch(json!({"job_state": s}));
    store
        .apply_result(claimed.job_id, &state("provision"), t(10))
        .await
        .unwrap();
    let counts = store.active_job_counts().await.unwrap();
    let expected: BTreeMap<String, BTreeMap<String, u64>> = [
        ("q1", vec![("running", 1), ("waiting", 2)]),
        ("q2", vec![("provision", 1), ("waiting", 1)]),
    ]
    .into_iter()
    .map(|(q, states)| {
        (
            q.to_owned(),
            states.into_iter().map(|(s, n)| (s.to_owned(), n)).collect(),
        )
    })
    .collect();
    assert_eq!(
        counts, expected,
        "q3's only job is cancelled: q3 is not listed"
    );
    store
        .apply_result(claimed.job_id, &state("complete"), t(11))
        .await
        .unwrap();
    let counts = store.active_job_counts().await.unwrap();
    assert_eq!(
        counts["q2"],
        [("waiting".to_owned(), 1)].into_iter().collect()
    );
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

/// A small deterministic generator, so a failure replays exactly.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// A mixed backlog (priorities, queues, excluded agents, attachments still
/// missing, cancelled jobs, equal submission times) is claimed by agents
/// asking for random sets of queues; every claim must hand out exactly
/// the job that `ClaimRequest::admits` and `claim_order` pick.
async fn claims_follow_the_one_definition_of_eligibility_and_order(store: Arc<dyn Store>) {
    let mut rng = Lcg(7);
    let queues = ["q0", "q1", "q2"];
    let mut model: Vec<Job> = Vec::new();
    for i in 0..120 {
        let mut body = json!({
            "job_queue": queues[rng.below(3) as usize],
            "job_priority": rng.below(3),
        });
        match rng.below(8) {
            0 => body["exclude_agents"] = json!(["agent-a"]),
            2 => body["exclude_agents"] = json!(["Agent-B", "other"]),
            1 => body["test_data"] = json!({"attachments": [{"agent": "f.txt"}]}),
            _ => {}
        }
        // Every third job shares its millisecond with the one before.
        let id = insert(&store, body, i - i64::from(i % 3 == 2)).await;
        if rng.below(10) == 0 {
            store.cancel_job(id, t(i)).await.unwrap();
        }
        model.push(store.get_job(id).await.unwrap().expect("stored"));
    }
    // Names in any case: exclusions hold whatever the case of either.
    let agents = [None, Some("agent-a"), Some("AGENT-A"), Some("agent-b")];
    let mut handed_out = 0;
    for _ in 0..150 {
        let asked: Vec<&str> = queues
            .iter()
            .copied()
            .filter(|_| rng.below(2) == 0)
            .collect();
        if asked.is_empty() {
            continue;
        }
        let request = claim(&asked, agents[rng.below(4) as usize]);
        let expected = model
            .iter()
            .filter(|job| request.admits(job))
            .min_by(|a, b| claim_order(a, b))
            .map(|job| job.job_id);
        let claimed = store
            .claim_job(&request, t(200_000))
            .await
            .unwrap()
            .map(|job| job.job_id);
        assert_eq!(claimed, expected, "claim for {request:?}");
        if let Some(id) = claimed {
            handed_out += 1;
            let job = model.iter_mut().find(|j| j.job_id == id).unwrap();
            job.state = JobState::Running;
        }
    }
    assert!(
        handed_out > 50,
        "the backlog was claimed ({handed_out} jobs)"
    );
}

/// From each state a job can be in, each kind of report moves it exactly
/// as `JobState::after_report` says, on every store.
async fn reported_states_follow_the_one_transition_rule(store: Arc<dyn Store>) {
    let from_states = ["running", "provision", "complete", "completed", "cancelled"];
    let reports = [
        "setup",
        "waiting",
        "complete",
        "cancelled",
        "a-custom-phase",
    ];
    for (i, from) in from_states.iter().enumerate() {
        for (j, reported) in reports.iter().enumerate() {
            let queue = format!("rule-{i}-{j}");
            let id = insert(&store, json!({"job_queue": queue}), 1).await;
            claim_id(&store, &[queue.as_str()], None)
                .await
                .expect("claimed");
            match *from {
                "running" => {}
                "cancelled" => {
                    store.cancel_job(id, t(2)).await.unwrap();
                }
                other => {
                    store
                        .apply_result(id, &patch(json!({"job_state": other})), t(2))
                        .await
                        .unwrap();
                }
            }
            let before = store.get_job(id).await.unwrap().unwrap().state;
            assert_eq!(before.as_str(), *from);
            store
                .apply_result(id, &patch(json!({"job_state": reported})), t(3))
                .await
                .unwrap();
            let after = store.get_job(id).await.unwrap().unwrap();
            let expected = before.after_report(reported).unwrap_or(before.clone());
            assert_eq!(after.state, expected, "{from} + report {reported}");
            if before.after_report(reported).is_none() {
                assert_eq!(
                    after.result_data[REPORTED_STATE_KEY],
                    json!(reported),
                    "a refused report is recorded"
                );
            }
        }
    }
}

/// A patch writes its keys and nothing else: concurrent patches of
/// different keys onto a large stored result all survive, and the keys no
/// patch names stay as they were.
async fn result_patches_touch_only_their_keys(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 1).await;
    let large: serde_json::Map<String, Value> = (0..500)
        .map(|i| (format!("stored_{i}"), json!("x".repeat(1024))))
        .collect();
    let mut first = large.clone();
    first.insert("status".into(), json!({"setup": 0}));
    store
        .apply_result(id, &patch(Value::Object(first)), t(2))
        .await
        .unwrap()
        .expect("the job exists");
    let patches = (0..16).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let body = json!({ format!("patch_{i}"): i, "device_info": {"writer": i} });
            store.apply_result(id, &patch(body), t(3)).await
        })
    });
    for done in futures::future::join_all(patches).await {
        done.unwrap().unwrap().expect("the job exists");
    }
    let change = store
        .apply_result(id, &patch(json!({"status": {"test": 1}})), t(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        change.previous_status,
        *json!({"setup": 0}).as_object().unwrap()
    );
    let result = store.get_job(id).await.unwrap().unwrap().result_data;
    for i in 0..16 {
        assert_eq!(
            result[&format!("patch_{i}")],
            json!(i),
            "patch {i} survives"
        );
    }
    for (key, value) in &large {
        assert_eq!(&result[key], value, "{key} unchanged");
    }
    assert!(
        result["device_info"]["writer"].is_i64(),
        "{}",
        result["device_info"]
    );
    assert_eq!(result["status"], json!({"test": 1}));
    assert_eq!(result.len(), 500 + 16 + 2);
}

/// An `agent_id` posted to a waiting job does not outlive the claim, which
/// names the agent that took it.
async fn the_claim_names_the_agent_over_a_posted_agent_id(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 1).await;
    store
        .apply_result(
            id,
            &patch(json!({"agent_id": "someone-else", "a": 1})),
            t(2),
        )
        .await
        .unwrap();
    let claimed = store
        .claim_job(&claim(&["q"], Some("dev-1")), t(3))
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(claimed.agent_id(), Some("dev-1"));
    let job = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(job.agent_id(), Some("dev-1"));
    assert_eq!(job.result_data["a"], json!(1));
    let change = store
        .apply_result(id, &patch(json!({"b": 2})), t(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.agent_id.as_deref(), Some("dev-1"));
}

/// What the validation lets through, both stores keep exactly: unusual but
/// storable keys at every level (dotted and empty ones inside values), in a
/// job and in a result.
async fn every_key_the_validation_admits_reads_back_unchanged(store: Arc<dyn Store>) {
    let odd = json!({
        "a$b": 1, "with space": 2, "ünïcödé": 3, "-": 4, "_id": 5, "\u{1}ctl": 6,
        "tab\t": 7, "slash/and~tilde": 8, "dollar": {"inner$": [{"_id": null}]},
        "hosts": {"node1.lab": {"": [{"a.b.c": true}]}}
    });
    let id = insert(&store, json!({"job_queue": "q", "free": odd.clone()}), 1).await;
    assert_eq!(
        store.get_job(id).await.unwrap().unwrap().job_data["free"],
        odd
    );
    store
        .apply_result(id, &patch(odd.clone()), t(2))
        .await
        .unwrap()
        .unwrap();
    store
        .apply_result(id, &patch(json!({"device_info": odd.clone()})), t(3))
        .await
        .unwrap()
        .unwrap();
    let result = store.get_job(id).await.unwrap().unwrap().result_data;
    for (key, value) in odd.as_object().unwrap() {
        assert_eq!(&result[key], value, "{key:?}");
    }
    assert_eq!(result["device_info"], odd);
}
