//! Conformance of retention: what expires is purged.

use super::*;

conformance!(
    expired_jobs_are_purged,
    expired_tokens_and_secrets_are_purged,
);

async fn expired_jobs_are_purged(store: Arc<dyn Store>) {
    let old = insert(&store, json!({"job_queue": "q"}), 1).await;
    let young = insert(&store, json!({"job_queue": "q"}), 10_000).await;
    let purged = store.purge_expired(t(5_000)).await.unwrap();
    assert_eq!(purged, vec![old]);
    assert!(store.get_job(old).await.unwrap().is_none());
    assert!(store.get_job(young).await.unwrap().is_some());
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
