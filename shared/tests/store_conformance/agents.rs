//! Conformance of agents and their provision logs.

use super::*;

conformance!(
    agents_are_upserted_and_keep_their_last_log_lines,
    provisions_move_the_streak_and_unknown_agents_get_nothing,
    concurrent_provisions_each_count_once,
    modes_and_states_are_stamped_when_they_change,
    commanded_modes_update_only_existing_agents,
    agent_names_are_bound_once_whatever_the_case,
    concurrent_first_binds_make_one_owner,
    admins_reassign_and_release_agent_names,
    an_agent_is_heard_from_by_its_own_writes_and_never_back_in_time,
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

async fn modes_and_states_are_stamped_when_they_change(store: Arc<dyn Store>) {
    let mut update = agent_update(json!({"state": "waiting"}));
    update.by = Some("admin1".into());
    store.upsert_agent("m", &update, t(1)).await.unwrap();
    let agent = store.get_agent("m").await.unwrap().unwrap();
    assert_eq!(agent.fields["mode"], json!("online"));
    assert_eq!(agent.fields["state"], json!("waiting"));
    assert_eq!(agent.fields["mode_changed_at"], json!(t(1).to_rfc3339()));
    assert_eq!(agent.fields["mode_changed_by"], json!("admin1"));
    assert_eq!(agent.fields["state_changed_at"], json!(t(1).to_rfc3339()));
    assert_eq!(agent.fields["state_changed_by"], json!("admin1"));

    // A re-post of the same values stamps nothing.
    store
        .upsert_agent("m", &agent_update(json!({"state": "waiting"})), t(2))
        .await
        .unwrap();
    let agent = store.get_agent("m").await.unwrap().unwrap();
    assert_eq!(agent.fields["mode_changed_at"], json!(t(1).to_rfc3339()));
    assert_eq!(agent.fields["mode_changed_by"], json!("admin1"));

    // The agent's own report of offline: new stamps without `_by`, and no state.
    store
        .upsert_agent("m", &agent_update(json!({"state": "offline"})), t(3))
        .await
        .unwrap();
    let agent = store.get_agent("m").await.unwrap().unwrap();
    assert_eq!(agent.fields["mode"], json!("offline"));
    assert!(!agent.fields.contains_key("state"), "{:?}", agent.fields);
    assert!(!agent.fields.contains_key("mode_changed_by"));
    assert!(!agent.fields.contains_key("state_changed_by"));
    assert_eq!(agent.fields["mode_changed_at"], json!(t(3).to_rfc3339()));
    assert_eq!(agent.fields["state_changed_at"], json!(t(3).to_rfc3339()));
    assert_eq!(agent.legacy_state().as_deref(), Some("offline"));

    // Maintenance keeps waiting as its sub-state.
    store
        .upsert_agent("m", &agent_update(json!({"state": "maintenance"})), t(4))
        .await
        .unwrap();
    let agent = store.get_agent("m").await.unwrap().unwrap();
    assert_eq!(
        (agent.fields["mode"].clone(), agent.fields["state"].clone()),
        (json!("maintenance"), json!("waiting"))
    );
    assert_eq!(agent.legacy_state().as_deref(), Some("maintenance"));
}

async fn commanded_modes_update_only_existing_agents(store: Arc<dyn Store>) {
    let command = |mode: &str| {
        let mut update = validate_commanded_mode(
            json!({"commanded_mode": mode, "comment": "why"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        update.by = Some("boss".into());
        update
    };
    assert!(!store
        .update_agent("ghost", &command("offline"), t(1))
        .await
        .unwrap());
    assert!(store.get_agent("ghost").await.unwrap().is_none());
    store
        .upsert_agent("c", &agent_update(json!({"state": "waiting"})), t(1))
        .await
        .unwrap();
    assert!(store
        .update_agent("c", &command("maintenance"), t(2))
        .await
        .unwrap());
    assert!(store
        .update_agent("c", &command("maintenance"), t(3))
        .await
        .unwrap());
    let agent = store.get_agent("c").await.unwrap().unwrap();
    assert_eq!(agent.fields["commanded_mode"], json!("maintenance"));
    assert_eq!(agent.fields["comment"], json!("why"));
    assert_eq!(
        agent.fields["commanded_mode_changed_at"],
        json!(t(2).to_rfc3339()),
        "a repeated command does not restamp"
    );
    assert_eq!(agent.fields["commanded_mode_changed_by"], json!("boss"));
    assert!(agent.is_drained());
    assert_eq!(
        agent.fields["mode"],
        json!("online"),
        "the reported mode is the agent's"
    );
}

async fn agent_names_are_bound_once_whatever_the_case(store: Arc<dyn Store>) {
    assert_eq!(store.agent_owner("dev1").await.unwrap(), None);
    let owner = store.bind_agent_name("dev1", "lab-a", t(1)).await.unwrap();
    assert_eq!(
        (
            owner.name.as_str(),
            owner.client_id.as_str(),
            owner.bound_at
        ),
        ("dev1", "lab-a", t(1))
    );
    // Another spelling is the same name: the first owner stays.
    let again = store.bind_agent_name("DEV1", "lab-b", t(2)).await.unwrap();
    assert_eq!(again, owner);
    assert_eq!(store.agent_owner("Dev1").await.unwrap(), Some(owner));
    assert_eq!(store.agent_owner("dev10").await.unwrap(), None);
    // Owners are not agents: no agent record was written.
    assert!(store.get_agent("dev1").await.unwrap().is_none());
}

async fn concurrent_first_binds_make_one_owner(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let name = if i % 2 == 0 { "race" } else { "RACE" };
            store
                .bind_agent_name(name, &format!("client-{i}"), t(i))
                .await
                .unwrap()
                .client_id
        }));
    }
    let mut owners = HashSet::new();
    for task in tasks {
        owners.insert(task.await.unwrap());
    }
    assert_eq!(owners.len(), 1, "{owners:?}");
    let stored = store.agent_owner("race").await.unwrap().unwrap();
    assert!(owners.contains(&stored.client_id));
}

async fn admins_reassign_and_release_agent_names(store: Arc<dyn Store>) {
    // A free name may be assigned before its agent exists.
    assert_eq!(
        store
            .set_agent_owner("dev2", Some("lab-a"), t(1))
            .await
            .unwrap(),
        None
    );
    store.bind_agent_name("dev1", "lab-a", t(1)).await.unwrap();
    let previous = store
        .set_agent_owner("DEV1", Some("lab-b"), t(2))
        .await
        .unwrap()
        .expect("it had an owner");
    assert_eq!(previous.client_id, "lab-a");
    let now = store.agent_owner("dev1").await.unwrap().unwrap();
    assert_eq!((now.client_id.as_str(), now.bound_at), ("lab-b", t(2)));
    // Released: the next agent client to use it takes it.
    let released = store.set_agent_owner("dev1", None, t(3)).await.unwrap();
    assert_eq!(released.map(|o| o.client_id).as_deref(), Some("lab-b"));
    assert_eq!(store.agent_owner("dev1").await.unwrap(), None);
    assert_eq!(
        store.set_agent_owner("dev1", None, t(4)).await.unwrap(),
        None
    );
    let next = store.bind_agent_name("Dev1", "lab-c", t(5)).await.unwrap();
    assert_eq!(
        (next.name.as_str(), next.client_id.as_str()),
        ("Dev1", "lab-c")
    );
    assert_eq!(
        store
            .agent_owner("dev2")
            .await
            .unwrap()
            .map(|o| o.client_id)
            .as_deref(),
        Some("lab-a")
    );
}

async fn an_agent_is_heard_from_by_its_own_writes_and_never_back_in_time(store: Arc<dyn Store>) {
    // An operator's write (not the agent's word) leaves last_heard unset.
    store
        .upsert_agent("dev-1", &agent_update(json!({"location": "lab"})), t(1))
        .await
        .unwrap();
    let agent = store.get_agent("dev-1").await.unwrap().unwrap();
    assert_eq!(agent.last_heard, None);
    assert_eq!(agent.heard_at(), t(1), "falls back to the last update");
    assert!(!agent.fields.contains_key("last_heard"));

    // The agent's own report stores it in the same write.
    let mut own = agent_update(json!({"state": "waiting"}));
    own.heard = true;
    store.upsert_agent("dev-1", &own, t(5)).await.unwrap();
    assert_eq!(
        store.get_agent("dev-1").await.unwrap().unwrap().last_heard,
        Some(t(5))
    );

    // Marks move it forward only; an operator's later write keeps it.
    store.mark_heard("dev-1", t(9)).await.unwrap();
    store.mark_heard("dev-1", t(7)).await.unwrap();
    store
        .update_agent("dev-1", &agent_update(json!({"comment": "by hand"})), t(20))
        .await
        .unwrap();
    let agent = store.get_agent("dev-1").await.unwrap().unwrap();
    assert_eq!(agent.last_heard, Some(t(9)));
    assert_eq!(agent.updated_at, t(20));
    assert_eq!(agent.silent_since(t(10)), Some(t(9)));
    assert_eq!(agent.silent_since(t(9)), None);
    // It is not one of the agent's fields, and listings read it too.
    assert!(!agent.fields.contains_key("last_heard"));
    let listed = store.list_agents().await.unwrap();
    assert_eq!(listed[0].last_heard, Some(t(9)));

    // An unknown agent is not created by being heard from.
    store.mark_heard("nobody", t(9)).await.unwrap();
    assert!(store.get_agent("nobody").await.unwrap().is_none());
}
