//! Secrets (SPEC.md §4.4): who writes and deletes a client's secrets and
//! how they are checked; the secrets a job names, checked at submit and
//! resolved in the claim only.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use testflinger_shared::role::{AuthMode, Role};
use testflinger_shared::secrets::{SecretsKey, StoredSecret};
use testflinger_shared::Timestamp;

use crate::common::*;
use crate::support::*;

async fn delete_secret(server: &Server, token: Option<&str>, client_id: &str, path: &str) -> Reply {
    server
        .call(
            Method::DELETE,
            &format!("/v1/secrets/{client_id}/{path}"),
            token,
            None,
        )
        .await
}

fn job_with_secrets(queue: &str, secrets: Value) -> Value {
    json!({
        "job_queue": queue,
        "test_data": {"test_cmds": "env", "secrets": secrets},
    })
}

// ---------------------------------------------------------------- writing and deleting

#[tokio::test]
async fn a_client_writes_its_own_secrets() {
    let server = standard().await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    let body = put_secret(
        &server,
        Some(&token),
        "ci",
        "lab/wifi/password",
        json!({"value": "hunter2-hunter2"}),
    )
    .await
    .ok_json();
    let expires_at = body["expires_at"].as_str().expect("an expiry by default");
    assert!(is_rfc3339_utc(expires_at), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert!(!body.to_string().contains("hunter2"), "{body}");
    let body = put_secret(
        &server,
        Some(&token),
        "ci",
        "forever",
        json!({"value": "v", "expire_after": null}),
    )
    .await
    .ok_json();
    assert_eq!(body, json!({"expires_at": null}));
    let body = put_secret(
        &server,
        Some(&token),
        "ci",
        "soon",
        json!({"value": "v", "expire_after": 60, "ephemeral": true}),
    )
    .await
    .ok_json();
    assert!(
        is_rfc3339_utc(body["expires_at"].as_str().unwrap()),
        "{body}"
    );
}

#[tokio::test]
async fn only_its_client_or_an_admin_writes_a_secret() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    server.client_token("ci", Role::Contributor, |_| {}).await;
    let other = server
        .client_token("other", Role::Contributor, |_| {})
        .await;
    let body = json!({"value": "v"});
    put_secret(&server, None, "ci", "p", body.clone())
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    put_secret(&server, Some(&other), "ci", "p", body.clone())
        .await
        .assert_error(StatusCode::FORBIDDEN);
    put_secret(&server, Some(&manager), "ci", "p", body.clone())
        .await
        .assert_error(StatusCode::FORBIDDEN);
    put_secret(&server, Some(&admin), "ci", "p", body.clone())
        .await
        .ok_json();
    delete_secret(&server, None, "ci", "p")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    delete_secret(&server, Some(&other), "ci", "p")
        .await
        .assert_error(StatusCode::FORBIDDEN);
    // An admin may not write for a client that does not exist.
    put_secret(&server, Some(&admin), "nobody", "p", body)
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn secret_paths_and_bodies_are_validated() {
    let server = standard().await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    // (A trailing slash is trimmed from every path, SPEC.md §2: "a/" is "a".)
    for path in ["a..b", "a%20b", "a/../b", "a//b", "a.b/c"] {
        let reply = put_secret(&server, Some(&token), "ci", path, json!({"value": "v"})).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {reply:?}"
        );
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    }
    put_secret(&server, Some(&token), "ci", "p", json!({}))
        .await
        .assert_invalid_fields(&["value"]);
    put_secret(&server, Some(&token), "ci", "p", json!({"value": 3}))
        .await
        .assert_invalid_fields(&["value"]);
    put_secret(
        &server,
        Some(&token),
        "ci",
        "p",
        json!({"value": "v", "expire_after": 0, "ephemeral": "yes", "colour": 1}),
    )
    .await
    .assert_invalid_fields(&["colour", "ephemeral", "expire_after"]);
    server
        .call(
            Method::PUT,
            "/v1/secrets/ci/p",
            Some(&token),
            Some(&json!([1])),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn deleting_a_secret_twice_is_404() {
    let server = standard().await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    put_secret(&server, Some(&token), "ci", "a/b", json!({"value": "v"}))
        .await
        .ok_json();
    delete_secret(&server, Some(&token), "ci", "a/b")
        .await
        .assert_ok_text();
    delete_secret(&server, Some(&token), "ci", "a/b")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    delete_secret(&server, Some(&token), "ci", "never/written")
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_secrets_key_secrets_are_refused() {
    let server = Server::with_config(|config| {
        config.auth.mode = AuthMode::Standard;
        config.auth.signing_key = Some(SIGNING_KEY.into());
        config.auth.secrets_key = None;
    })
    .await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    put_secret(&server, Some(&token), "ci", "p", json!({"value": "v"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    delete_secret(&server, Some(&token), "ci", "p")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    submit(
        &server,
        Some(&token),
        job_with_secrets("q", json!({"WIFI": "p"})),
    )
    .await
    .assert_invalid_fields(&["test_data.secrets"]);
}

// ---------------------------------------------------------------- secrets in jobs

#[tokio::test]
async fn the_open_mode_refuses_jobs_that_name_secrets() {
    // Anyone may claim in the open mode, so a secret would go to whoever asks.
    let server = Server::with_auth(AuthMode::Open).await;
    let ci = server.client_token("ci", Role::Contributor, |_| {}).await;
    put_secret(&server, Some(&ci), "ci", "wifi", json!({"value": "v"}))
        .await
        .ok_json();
    let body = submit(
        &server,
        Some(&ci),
        job_with_secrets("q", json!({"W": "wifi"})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.to_string().contains("open mode"), "{body}");
}

#[tokio::test]
async fn a_job_names_only_secrets_its_client_has() {
    let server = standard().await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    let other = server
        .client_token("other", Role::Contributor, |_| {})
        .await;
    put_secret(
        &server,
        Some(&token),
        "ci",
        "lab/wifi",
        json!({"value": "v"}),
    )
    .await
    .ok_json();
    submit(
        &server,
        None,
        job_with_secrets("q", json!({"WIFI": "lab/wifi"})),
    )
    .await
    .assert_invalid_fields(&["test_data.secrets"]);
    let body = submit(
        &server,
        Some(&token),
        job_with_secrets("q", json!({"WIFI": "lab/wifi", "KEY": "lab/missing"})),
    )
    .await
    .assert_invalid_fields(&["test_data.secrets"]);
    assert_message_contains(&body, "lab/missing");
    assert!(!body.to_string().contains("lab/wifi"), "{body}");
    // Another client's secret is not reachable by its path.
    let body = submit(
        &server,
        Some(&other),
        job_with_secrets("q", json!({"WIFI": "lab/wifi"})),
    )
    .await
    .assert_invalid_fields(&["test_data.secrets"]);
    assert_message_contains(&body, "lab/wifi");
}

#[tokio::test]
async fn a_secret_is_resolved_in_the_claim_and_nowhere_else() {
    let server = standard().await;
    let agent = agent_token(&server).await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    let value = "the-wifi-password-42";
    put_secret(
        &server,
        Some(&token),
        "ci",
        "lab/wifi",
        json!({"value": value}),
    )
    .await
    .ok_json();
    let id = server
        .submit_with(job_with_secrets("q", json!({"WIFI": "lab/wifi"})), &token)
        .await;
    let reply = server
        .call(Method::GET, &format!("/v1/job/{id}"), Some(&token), None)
        .await;
    let job = reply.ok_json();
    assert_eq!(job["test_data"]["secrets"], json!({"WIFI": "lab/wifi"}));
    assert!(!reply.text().contains(value), "{reply:?}");
    let search = server.get("/v1/job/search?state=waiting").await;
    assert!(!search.text().contains(value), "{search:?}");
    let claimed = claim(&server, "q", Some(&agent), Some("dev-1"))
        .await
        .ok_json();
    assert_eq!(claimed["job_id"], json!(id));
    assert_eq!(claimed["test_data"]["secrets"], json!({"WIFI": value}));
    assert_eq!(claimed["test_data"]["test_cmds"], json!("env"));
    // After the claim the job still shows only the path.
    let job = server.get(&format!("/v1/job/{id}")).await.ok_json();
    assert_eq!(job["test_data"]["secrets"], json!({"WIFI": "lab/wifi"}));
}

#[tokio::test]
async fn an_ephemeral_secret_is_read_once_then_refused_at_submit() {
    let server = standard().await;
    let agent = agent_token(&server).await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    put_secret(
        &server,
        Some(&token),
        "ci",
        "once",
        json!({"value": "one-time-value", "ephemeral": true}),
    )
    .await
    .ok_json();
    let job = job_with_secrets("q", json!({"OTP": "once"}));
    server.submit_with(job.clone(), &token).await;
    let claimed = claim(&server, "q", Some(&agent), Some("dev-1"))
        .await
        .ok_json();
    assert_eq!(
        claimed["test_data"]["secrets"],
        json!({"OTP": "one-time-value"})
    );
    // It was consumed: a new job naming it is refused.
    let body = submit(&server, Some(&token), job)
        .await
        .assert_invalid_fields(&["test_data.secrets"]);
    assert_message_contains(&body, "once");
}

#[tokio::test]
async fn an_ephemeral_secret_named_by_two_waiting_jobs_resolves_once() {
    let server = standard().await;
    let agent = agent_token(&server).await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    put_secret(
        &server,
        Some(&token),
        "ci",
        "once",
        json!({"value": "one-time-value", "ephemeral": true}),
    )
    .await
    .ok_json();
    let job = job_with_secrets("q", json!({"OTP": "once"}));
    let first = server.submit_with(job.clone(), &token).await;
    let second = server.submit_with(job, &token).await;
    let claimed = claim(&server, "q", Some(&agent), Some("dev-1"))
        .await
        .ok_json();
    assert_eq!(claimed["job_id"], json!(first));
    assert_eq!(
        claimed["test_data"]["secrets"],
        json!({"OTP": "one-time-value"})
    );
    let claimed = claim(&server, "q", Some(&agent), Some("dev-1"))
        .await
        .ok_json();
    assert_eq!(claimed["job_id"], json!(second));
    assert_eq!(claimed["test_data"]["secrets"], json!({"OTP": ""}));
}

#[tokio::test]
async fn an_expired_secret_is_refused_at_submit_and_empty_at_claim() {
    let server = standard().await;
    let agent = agent_token(&server).await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    put_secret(
        &server,
        Some(&token),
        "ci",
        "lab/key",
        json!({"value": "live-value"}),
    )
    .await
    .ok_json();
    let job = job_with_secrets("q", json!({"KEY": "lab/key"}));
    server.submit_with(job.clone(), &token).await;
    // The secret expires (as if its expire_after had run out).
    let key = SecretsKey::from_base64(SECRETS_KEY).unwrap();
    let now = Timestamp::now().millis();
    server
        .state
        .app
        .store()
        .put_secret(&StoredSecret {
            client_id: "ci".into(),
            path: "lab/key".into(),
            sealed: key.seal("ci", "lab/key", "live-value"),
            expires_at: Some(Timestamp::from_millis(now - 1_000)),
            ephemeral: false,
            updated_at: Timestamp::from_millis(now - 61_000),
        })
        .await
        .unwrap();
    let body = submit(&server, Some(&token), job)
        .await
        .assert_invalid_fields(&["test_data.secrets"]);
    assert_message_contains(&body, "lab/key");
    let claimed = claim(&server, "q", Some(&agent), Some("dev-1"))
        .await
        .ok_json();
    assert_eq!(claimed["test_data"]["secrets"], json!({"KEY": ""}));
}

#[tokio::test]
async fn a_secret_deleted_after_submit_resolves_to_empty() {
    let server = standard().await;
    let agent = agent_token(&server).await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    put_secret(
        &server,
        Some(&token),
        "ci",
        "gone",
        json!({"value": "old-value"}),
    )
    .await
    .ok_json();
    put_secret(
        &server,
        Some(&token),
        "ci",
        "kept",
        json!({"value": "kept-value"}),
    )
    .await
    .ok_json();
    server
        .submit_with(
            job_with_secrets("q", json!({"GONE": "gone", "KEPT": "kept"})),
            &token,
        )
        .await;
    delete_secret(&server, Some(&token), "ci", "gone")
        .await
        .assert_ok_text();
    let claimed = claim(&server, "q", Some(&agent), Some("dev-1"))
        .await
        .ok_json();
    assert_eq!(
        claimed["test_data"]["secrets"],
        json!({"GONE": "", "KEPT": "kept-value"})
    );
}
