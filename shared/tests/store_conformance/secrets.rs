//! Conformance of secrets.

use super::*;

conformance!(
    secrets_are_per_client_and_expire,
    ephemeral_secrets_are_taken_once,
    concurrent_takes_hand_out_each_ephemeral_secret_once,
);

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
