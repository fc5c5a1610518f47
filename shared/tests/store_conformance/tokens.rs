//! Conformance of refresh tokens.

use super::*;

conformance!(refresh_tokens_work_until_expired_or_revoked,);

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
