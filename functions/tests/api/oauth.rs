//! Tokens and modes (SPEC.md §3): issuing, refreshing and revoking tokens,
//! the OIDC answer the CLI expects, how an access token is checked, and what
//! the `open`, `standard` and `strict` modes let anonymous callers and each
//! role do.

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use testflinger_shared::auth::{refresh_token_hash, TokenKeys};
use testflinger_shared::clients::{Client, RefreshToken};
use testflinger_shared::role::{AuthMode, Role};
use testflinger_shared::Timestamp;

use crate::common::*;
use crate::support::*;

/// `POST /v1/oauth2/token` with any `Authorization` header (or none).
async fn token_with_header(server: &Server, authorization: Option<&str>) -> Reply {
    let mut req = request(Method::POST, "/v1/oauth2/token", None, Body::empty());
    if let Some(value) = authorization {
        req.headers_mut()
            .insert(header::AUTHORIZATION, value.parse().unwrap());
    }
    server.send(req).await
}

async fn revoke(server: &Server, token: Option<&str>, refresh_token: &str) -> Reply {
    server
        .call(
            Method::POST,
            "/v1/oauth2/revoke",
            token,
            Some(&json!({ "refresh_token": refresh_token })),
        )
        .await
}

/// Changes a stored client, as another request (or an operator) would.
async fn edit_client(server: &Server, client_id: &str, edit: impl FnOnce(&mut Client)) {
    let mut client = server
        .state
        .app
        .store()
        .get_client(client_id)
        .await
        .unwrap()
        .expect("the client exists");
    edit(&mut client);
    server.state.app.store().put_client(&client).await.unwrap();
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn token_issues_a_bearer_access_token_and_a_refresh_token() {
    let server = standard().await;
    server
        .add_client("ci", &secret_of("ci"), Role::Contributor, |_| {})
        .await;
    let body = server.login("ci", &secret_of("ci")).await.ok_json();
    let object = body.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_token", "token_type"],
        "{body}"
    );
    assert_eq!(body["token_type"], json!("Bearer"));
    assert_eq!(body["expires_in"], json!(600));
    let refresh_token = body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh_token.len(), 64, "{body}");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3, "a JWT: {access}");
    // The token is accepted: the job belongs to its client.
    let id = server.submit_with(json!({"job_queue": "q"}), access).await;
    let job = server
        .call(Method::GET, &format!("/v1/job/{id}"), Some(access), None)
        .await
        .ok_json();
    assert_eq!(job["job_id"], json!(id));
}

#[tokio::test]
async fn token_refuses_bad_credentials_with_401() {
    let server = standard().await;
    server
        .add_client("ci", &secret_of("ci"), Role::Contributor, |_| {})
        .await;
    server
        .login("ci", "not-the-right-secret")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    server
        .login("nobody", &secret_of("ci"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    token_with_header(&server, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    token_with_header(&server, Some("Bearer something"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    token_with_header(&server, Some("Basic not%base64"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn repeated_wrong_secrets_are_throttled_with_429_without_holding_up_other_clients() {
    let server = standard().await;
    for id in ["ci", "other"] {
        server
            .add_client(id, &secret_of(id), Role::Contributor, |_| {})
            .await;
    }
    // A few mistakes are free; the one after closes the door for a second.
    for _ in 0..=testflinger_shared::throttle::CLIENT_FREE_FAILURES {
        server
            .login("ci", "not-the-right-secret")
            .await
            .assert_error(StatusCode::UNAUTHORIZED);
    }
    // While it is closed, even the right secret waits (it is not checked).
    let throttled = server.login("ci", &secret_of("ci")).await;
    let message = throttled.assert_error(StatusCode::TOO_MANY_REQUESTS)["message"].to_string();
    assert!(message.contains("try again"), "{message}");
    let retry_after: u64 = throttled.headers[axum::http::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Another client logs in as usual meanwhile.
    server.login("other", &secret_of("other")).await.ok_json();
}

#[tokio::test]
async fn refresh_gives_a_new_access_token_that_works() {
    let server = standard().await;
    let (_, refresh_token) = login_pair(&server, "mgr", Role::Manager).await;
    let body = refresh(&server, &refresh_token).await.ok_json();
    assert_eq!(body["token_type"], json!("Bearer"), "{body}");
    assert_eq!(body["expires_in"], json!(600), "{body}");
    let access = body["access_token"].as_str().expect("an access token");
    // A manager-only endpoint accepts it.
    let list = server
        .call(Method::GET, "/v1/client-permissions", Some(access), None)
        .await
        .ok_json();
    assert_eq!(list[0]["client_id"], json!("mgr"), "{list}");
    // The refresh token can be used again.
    refresh(&server, &refresh_token).await.ok_json();
}

#[tokio::test]
async fn refresh_with_an_unknown_token_is_400_and_without_one_422() {
    let server = standard().await;
    login_pair(&server, "ci", Role::Contributor).await;
    refresh(&server, &"A".repeat(64))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    refresh(&server, "garbage")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .call(Method::POST, "/v1/oauth2/refresh", None, Some(&json!({})))
        .await
        .assert_invalid_fields(&["refresh_token"]);
    server
        .call(
            Method::POST,
            "/v1/oauth2/refresh",
            None,
            Some(&json!({"refresh_token": 42})),
        )
        .await
        .assert_invalid_fields(&["refresh_token"]);
    // An expired refresh token (they live 6 days) is refused the same way.
    let now = Timestamp::now().millis();
    server
        .state
        .app
        .store()
        .insert_refresh_token(&RefreshToken {
            token_hash: refresh_token_hash(&"E".repeat(64)),
            client_id: "ci".into(),
            issued_at: Timestamp::from_millis(now - 7 * 86_400_000),
            expires_at: Timestamp::from_millis(now - 86_400_000),
            revoked: false,
        })
        .await
        .unwrap();
    refresh(&server, &"E".repeat(64))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn revoke_needs_an_admin() {
    let server = standard().await;
    let (contributor, refresh_token) = login_pair(&server, "ci", Role::Contributor).await;
    let manager = manager_token(&server).await;
    revoke(&server, None, &refresh_token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    revoke(&server, Some(&contributor), &refresh_token)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    revoke(&server, Some(&manager), &refresh_token)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    // Nothing was revoked.
    refresh(&server, &refresh_token).await.ok_json();
}

#[tokio::test]
async fn a_revoked_refresh_token_no_longer_refreshes() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let (_, refresh_token) = login_pair(&server, "ci", Role::Contributor).await;
    let body = revoke(&server, Some(&admin), &refresh_token)
        .await
        .ok_json();
    assert_eq!(body, json!({"status": "OK"}));
    refresh(&server, &refresh_token)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    revoke(&server, Some(&admin), &refresh_token)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    revoke(&server, Some(&admin), "never-issued")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .call(
            Method::POST,
            "/v1/oauth2/revoke",
            Some(&admin),
            Some(&json!({})),
        )
        .await
        .assert_invalid_fields(&["refresh_token"]);
}

#[tokio::test]
async fn without_a_signing_key_no_token_is_issued_or_accepted() {
    let server = Server::new().await;
    server
        .add_client("ci", &secret_of("ci"), Role::Contributor, |_| {})
        .await;
    server
        .login("ci", &secret_of("ci"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    refresh(&server, &"A".repeat(64))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    // A token from anywhere is refused, not ignored.
    let token =
        TokenKeys::new(SIGNING_KEY.as_bytes(), 0).issue("ci", Role::Admin, Timestamp::now());
    server
        .call(Method::GET, "/v1/agents/queues", Some(&token), None)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    server
        .call(
            Method::POST,
            "/v1/job",
            Some(&token),
            Some(&json!({"job_queue": "q"})),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN);
    // Without a token, the open mode lets everyone in.
    server.submit(json!({"job_queue": "q"})).await;
}

#[tokio::test]
async fn oidc_auth_init_is_404_so_the_cli_goes_on_anonymously() {
    let server = Server::new().await;
    server
        .post_json("/oidc/auth-init", &json!({}))
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- token checks

#[tokio::test]
async fn an_expired_token_is_401() {
    let server = standard().await;
    server
        .add_client("ci", &secret_of("ci"), Role::Contributor, |_| {})
        .await;
    let hour_ago = Timestamp::from_millis(Timestamp::now().millis() - 3_600_000);
    let token = TokenKeys::new(SIGNING_KEY.as_bytes(), 0).issue("ci", Role::Contributor, hour_ago);
    // Even where anonymous callers are welcome, a bad token is not ignored.
    server
        .call(Method::GET, "/v1/agents/queues", Some(&token), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    submit(&server, Some(&token), json!({"job_queue": "q"}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_issued_an_hour_ahead_is_401() {
    let server = standard().await;
    server
        .add_client("ci", &secret_of("ci"), Role::Contributor, |_| {})
        .await;
    let hour_ahead = Timestamp::now().plus_seconds(3_600);
    let token =
        TokenKeys::new(SIGNING_KEY.as_bytes(), 0).issue("ci", Role::Contributor, hour_ahead);
    let answer = submit(&server, Some(&token), json!({"job_queue": "q"})).await;
    answer.assert_error(StatusCode::UNAUTHORIZED);
    assert!(
        answer.text().contains("issued in the future"),
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn a_forged_or_garbage_token_is_403() {
    let server = standard().await;
    server
        .add_client("ci", &secret_of("ci"), Role::Admin, |_| {})
        .await;
    let forged = TokenKeys::new(b"another signing key entirely", 0).issue(
        "ci",
        Role::Admin,
        Timestamp::now(),
    );
    let genuine = server
        .client_token("other", Role::Contributor, |_| {})
        .await;
    let mut tampered = genuine.clone();
    tampered.pop();
    for token in [forged.as_str(), "garbage", "a.b.c", tampered.as_str()] {
        server
            .call(Method::GET, "/v1/client-permissions", Some(token), None)
            .await
            .assert_error(StatusCode::FORBIDDEN);
        submit(&server, Some(token), json!({"job_queue": "q"}))
            .await
            .assert_error(StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn the_token_of_a_deleted_client_is_401() {
    let server = standard().await;
    let token = server.client_token("gone", Role::Contributor, |_| {}).await;
    server.submit_with(json!({"job_queue": "q"}), &token).await;
    assert!(server
        .state
        .app
        .store()
        .delete_client("gone")
        .await
        .unwrap());
    let body = submit(&server, Some(&token), json!({"job_queue": "q"}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    assert_message_contains(&body, "gone");
}

#[tokio::test]
async fn a_promotion_takes_effect_with_the_same_token() {
    let server = standard().await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    server
        .call(Method::GET, "/v1/client-permissions", Some(&token), None)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    edit_client(&server, "ci", |c| c.role = Role::Manager).await;
    let list = server
        .call(Method::GET, "/v1/client-permissions", Some(&token), None)
        .await
        .ok_json();
    assert_eq!(list[0]["role"], json!("manager"), "{list}");
}

#[tokio::test]
async fn a_priority_grant_takes_effect_with_the_same_token() {
    let server = standard().await;
    let token = server.client_token("ci", Role::Contributor, |_| {}).await;
    let job = json!({"job_queue": "q", "job_priority": 5});
    submit(&server, Some(&token), job.clone())
        .await
        .assert_error(StatusCode::FORBIDDEN);
    edit_client(&server, "ci", |c| {
        c.max_priority.insert("q".into(), 5);
    })
    .await;
    server.submit_with(job.clone(), &token).await;
    // And a withdrawal too.
    edit_client(&server, "ci", |c| c.max_priority.clear()).await;
    submit(&server, Some(&token), job)
        .await
        .assert_error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_demotion_to_agent_takes_effect_with_the_same_token() {
    let server = standard().await;
    let token = manager_token(&server).await;
    put_client(
        &server,
        Some(&token),
        "new-one",
        json!({"client_secret": "a-long-enough-secret"}),
    )
    .await
    .assert_put_ok();
    edit_client(&server, "manager", |c| c.role = Role::Agent).await;
    put_client(
        &server,
        Some(&token),
        "new-one",
        json!({"role": "contributor"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    server
        .call(Method::GET, "/v1/client-permissions", Some(&token), None)
        .await
        .assert_error(StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------- modes

#[tokio::test]
async fn open_mode_lets_anonymous_callers_submit_claim_and_post_results() {
    let server = Server::with_auth(AuthMode::Open).await;
    let id = server.submit(json!({"job_queue": "open-q"})).await;
    // No agent_name cookie: still allowed in the open mode.
    let claimed = claim(&server, "open-q", None, None).await.ok_json();
    assert_eq!(claimed["job_id"], json!(id));
    server
        .post_result(&id, json!({"job_state": "provision"}))
        .await;
    let reply = server
        .post_json("/v1/agents/data/dev-1", &json!({"queues": ["open-q"]}))
        .await;
    assert_eq!(reply.ok_json(), json!({"status": "OK"}));
}

#[tokio::test]
async fn open_mode_still_needs_tokens_for_admin_and_manager_endpoints() {
    let server = Server::with_auth(AuthMode::Open).await;
    let admin = admin_token(&server).await;
    serve_queues(&server, &admin, "dev-1", &["q"]).await;
    server
        .get("/v1/client-permissions")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    put_client(
        &server,
        None,
        "sneaky",
        json!({"client_secret": "a-long-enough-secret", "role": "admin"}),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED);
    server
        .call(Method::DELETE, "/v1/client-permissions/admin", None, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    restrict(&server, None, "q", "admin")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    revoke(&server, None, &"A".repeat(64))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    put_secret(&server, None, "admin", "p", json!({"value": "v"}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    // Nothing changed.
    server.login("admin", &secret_of("admin")).await.ok_json();
    server
        .get("/v1/restricted-queues/q")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let list = server
        .call(Method::GET, "/v1/client-permissions", Some(&admin), None)
        .await
        .ok_json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn standard_mode_lets_anonymous_callers_submit_and_read() {
    let server = standard().await;
    let id = server
        .submit(json!({"job_queue": "q", "tags": ["t"]}))
        .await;
    for uri in [
        format!("/v1/job/{id}"),
        format!("/v1/job/{id}/position"),
        "/v1/job/search?tags=t".to_owned(),
        "/v1/agents/data".to_owned(),
        "/v1/agents/queues".to_owned(),
        "/v1/restricted-queues".to_owned(),
        "/v1/queues/wait_times".to_owned(),
    ] {
        let reply = server.get(&uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {reply:?}");
    }
    let result = server.get(&format!("/v1/result/{id}")).await.ok_json();
    assert_eq!(result["job_state"], json!("waiting"), "{result}");
}

#[tokio::test]
async fn standard_mode_refuses_agent_endpoints_to_anonymous_callers() {
    let server = standard().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    claim(&server, "q", None, Some("dev-1"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    let calls: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            format!("/v1/result/{id}"),
            json!({"job_state": "provision"}),
        ),
        (
            Method::POST,
            format!("/v1/result/{id}/log/output"),
            json!({"fragment_number": 0, "timestamp": "2026-11-25T10:00:00Z",
                   "phase": "setup", "log_data": "x"}),
        ),
        (
            Method::POST,
            "/v1/agents/data/dev-1".to_owned(),
            json!({"queues": ["q"]}),
        ),
        (
            Method::POST,
            "/v1/agents/provision_logs/dev-1".to_owned(),
            json!({"job_id": id, "exit_code": 0}),
        ),
        (
            Method::POST,
            "/v1/agents/queues".to_owned(),
            json!({"q": "a queue"}),
        ),
        (
            Method::POST,
            format!("/v1/job/{id}/events"),
            json!({"events": []}),
        ),
    ];
    for (method, uri, body) in calls {
        let reply = call_as(&server, method, &uri, None, Some("dev-1"), Some(&body)).await;
        reply.assert_error(StatusCode::UNAUTHORIZED);
    }
    // Nothing was written.
    let job = server.get(&format!("/v1/job/{id}")).await.ok_json();
    assert_eq!(job["job_id"], json!(id));
    server
        .get("/v1/agents/data/dev-1")
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn standard_mode_agent_token_may_do_agent_work() {
    let server = standard().await;
    let agent = agent_token(&server).await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    serve_queues(&server, &agent, "dev-1", &["q"]).await;
    let claimed = claim(&server, "q", Some(&agent), Some("dev-1"))
        .await
        .ok_json();
    assert_eq!(claimed["job_id"], json!(id));
    call_as(
        &server,
        Method::POST,
        &format!("/v1/result/{id}"),
        Some(&agent),
        Some("dev-1"),
        Some(&json!({"job_state": "provision"})),
    )
    .await
    .assert_ok_text();
    call_as(
        &server,
        Method::POST,
        &format!("/v1/result/{id}/log/output"),
        Some(&agent),
        Some("dev-1"),
        Some(
            &json!({"fragment_number": 0, "timestamp": "2026-11-25T10:00:00Z",
                     "phase": "provision", "log_data": "booting"}),
        ),
    )
    .await
    .assert_ok_text();
    let result = server.result(&id).await;
    assert_eq!(result["job_state"], json!("provision"), "{result}");
}

#[tokio::test]
async fn standard_mode_refuses_agent_endpoints_to_a_contributor_with_403() {
    let server = standard().await;
    let contributor = server.client_token("ci", Role::Contributor, |_| {}).await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    claim(&server, "q", Some(&contributor), Some("dev-1"))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    call_as(
        &server,
        Method::POST,
        &format!("/v1/result/{id}"),
        Some(&contributor),
        None,
        Some(&json!({"job_state": "complete"})),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    call_as(
        &server,
        Method::POST,
        "/v1/agents/data/dev-1",
        Some(&contributor),
        None,
        Some(&json!({"queues": ["q"]})),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    // The job is still waiting.
    let position = server.get(&format!("/v1/job/{id}/position")).await;
    assert_eq!(position.status, StatusCode::OK, "{position:?}");
    assert_eq!(position.text(), "0");
}

#[tokio::test]
async fn strict_mode_refuses_every_anonymous_call_but_the_health_check() {
    let server = Server::with_auth(AuthMode::Strict).await;
    for uri in ["/v1", "/v1/"] {
        let reply = server.get(uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {reply:?}");
        assert!(
            reply.text().starts_with("Testflinger Server v"),
            "{reply:?}"
        );
    }
    let id = UNKNOWN_ID;
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/v1/job".into(),
            Some(json!({"job_queue": "q"})),
        ),
        (Method::GET, "/v1/job?queue=q".into(), None),
        (Method::GET, format!("/v1/job/{id}"), None),
        (Method::GET, format!("/v1/job/{id}/position"), None),
        (
            Method::POST,
            format!("/v1/job/{id}/action"),
            Some(json!({"action": "cancel"})),
        ),
        (Method::GET, "/v1/job/search".into(), None),
        (Method::GET, format!("/v1/result/{id}"), None),
        (Method::GET, format!("/v1/result/{id}/log/output"), None),
        (Method::GET, "/v1/agents/data".into(), None),
        (Method::GET, "/v1/agents/data/dev-1".into(), None),
        (
            Method::POST,
            "/v1/agents/data/dev-1".into(),
            Some(json!({"queues": ["q"]})),
        ),
        (Method::GET, "/v1/agents/queues".into(), None),
        (Method::GET, "/v1/queues/q/agents".into(), None),
        (Method::GET, "/v1/restricted-queues".into(), None),
        (Method::GET, "/v1/client-permissions".into(), None),
    ];
    for (method, uri, body) in calls {
        let reply = call_as(
            &server,
            method.clone(),
            &uri,
            None,
            Some("dev-1"),
            body.as_ref(),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri}: {reply:?}"
        );
        reply.assert_error(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn strict_mode_allows_tokens_by_role() {
    let server = Server::with_auth(AuthMode::Strict).await;
    let contributor = server.client_token("ci", Role::Contributor, |_| {}).await;
    let agent = agent_token(&server).await;
    let id = server
        .submit_with(json!({"job_queue": "q"}), &contributor)
        .await;
    server
        .call(
            Method::GET,
            &format!("/v1/job/{id}"),
            Some(&contributor),
            None,
        )
        .await
        .ok_json();
    server
        .call(Method::GET, "/v1/job/search", Some(&contributor), None)
        .await
        .ok_json();
    // An agent does not submit; a contributor does not claim.
    submit(&server, Some(&agent), json!({"job_queue": "q"}))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    claim(&server, "q", Some(&contributor), Some("dev-1"))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    serve_queues(&server, &agent, "dev-1", &["q"]).await;
    let claimed = claim(&server, "q", Some(&agent), Some("dev-1"))
        .await
        .ok_json();
    assert_eq!(claimed["job_id"], json!(id));
    // Both read results.
    for token in [&agent, &contributor] {
        let result = server
            .call(Method::GET, &format!("/v1/result/{id}"), Some(token), None)
            .await
            .ok_json();
        assert_eq!(result["job_state"], json!("running"), "{result}");
    }
}
