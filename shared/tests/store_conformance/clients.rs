//! Conformance of clients and restricted queues.

use super::*;

conformance!(
    clients_are_created_replaced_listed_and_deleted,
    any_queue_name_the_api_accepts_is_kept,
    deleting_a_client_removes_its_tokens_secrets_and_ownerships,
    owners_restrict_queues_and_grant_them,
    removing_owners_ends_the_restriction_with_the_last,
    concurrent_owners_all_join_one_restriction,
    a_client_deleted_while_made_an_owner_owns_nothing,
    concurrent_writes_of_one_record_agree,
    deleting_a_client_releases_its_agent_names,
);

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

async fn deleting_a_client_releases_its_agent_names(store: Arc<dyn Store>) {
    put_clients(&store, &["lab-a", "lab-b"]).await;
    store.bind_agent_name("dev1", "lab-a", t(1)).await.unwrap();
    store.bind_agent_name("dev2", "lab-a", t(1)).await.unwrap();
    store.bind_agent_name("dev3", "lab-b", t(1)).await.unwrap();
    assert!(store.delete_client("lab-a").await.unwrap());
    assert_eq!(store.agent_owner("dev1").await.unwrap(), None);
    assert_eq!(store.agent_owner("dev2").await.unwrap(), None);
    assert_eq!(
        store
            .agent_owner("dev3")
            .await
            .unwrap()
            .map(|o| o.client_id)
            .as_deref(),
        Some("lab-b")
    );
}
