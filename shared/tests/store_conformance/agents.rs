//! Conformance of agents and their provision logs.

use super::*;

conformance!(
    agents_are_upserted_and_keep_their_last_log_lines,
    provisions_move_the_streak_and_unknown_agents_get_nothing,
    concurrent_provisions_each_count_once,
);

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
