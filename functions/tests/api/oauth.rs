//! Authentication and authorisation through the router (SPEC.md §3, §4.4,
//! §8): tokens, token checks, the three modes, submission permissions,
//! client permissions, restricted queues, secrets, the job events relay and
//! who may cancel a job. Each test runs on its own backends (embedded, or
//! MongoDB + S3 with `TESTFLINGER_TEST_BACKENDS=production`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use testflinger_shared::auth::{refresh_token_hash, AuthMode, Role, TokenKeys};
use testflinger_shared::clients::{Client, RefreshToken};
use testflinger_shared::secrets::{SecretsKey, StoredSecret};
use testflinger_shared::Timestamp;

use crate::common::*;

// ---------------------------------------------------------------- helpers

/// The secret `Server::client_token` gives a client.
fn secret_of(client_id: &str) -> String {
    format!("{client_id}-secret-of-length")
}

async fn standard() -> Server {
    Server::with_auth(AuthMode::Standard).await
}

async fn admin_token(server: &Server) -> String {
    server.client_token("admin", Role::Admin, |_| {}).await
}

async fn manager_token(server: &Server) -> String {
    server.client_token("manager", Role::Manager, |_| {}).await
}

async fn agent_token(server: &Server) -> String {
    server.client_token("agent-bot", Role::Agent, |_| {}).await
}

/// Any request, with an optional bearer token, `agent_name` cookie and JSON
/// body.
async fn call_as(
    server: &Server,
    method: Method,
    uri: &str,
    token: Option<&str>,
    agent: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut req = match body {
        Some(body) => request(
            method,
            uri,
            Some("application/json"),
            Body::from(body.to_string()),
        ),
        None => request(method, uri, None, Body::empty()),
    };
    if let Some(token) = token {
        req.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    if let Some(agent) = agent {
        req.headers_mut().insert(
            header::COOKIE,
            format!("agent_name={agent}").parse().unwrap(),
        );
    }
    server.send(req).await
}

/// `GET /v1/job?queue=<queue>`, as an agent would (token and cookie optional).
async fn claim(server: &Server, queue: &str, token: Option<&str>, agent: Option<&str>) -> Reply {
    let uri = format!("/v1/job?queue={queue}");
    call_as(server, Method::GET, &uri, token, agent, None).await
}

/// `POST /v1/oauth2/token` with any `Authorization` header (or none).
async fn token_with_header(server: &Server, authorization: Option<&str>) -> Reply {
    let mut req = request(Method::POST, "/v1/oauth2/token", None, Body::empty());
    if let Some(value) = authorization {
        req.headers_mut()
            .insert(header::AUTHORIZATION, value.parse().unwrap());
    }
    server.send(req).await
}

/// A client written to the store, logged in: (access token, refresh token).
async fn login_pair(server: &Server, client_id: &str, role: Role) -> (String, String) {
    let secret = secret_of(client_id);
    server.add_client(client_id, &secret, role, |_| {}).await;
    let body = server.login(client_id, &secret).await.ok_json();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(server: &Server, refresh_token: &str) -> Reply {
    server
        .call(
            Method::POST,
            "/v1/oauth2/refresh",
            None,
            Some(&json!({ "refresh_token": refresh_token })),
        )
        .await
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
        .store
        .get_client(client_id)
        .await
        .unwrap()
        .expect("the client exists");
    edit(&mut client);
    server.state.store.put_client(&client).await.unwrap();
}

/// An agent (name `agent`) that serves `queues`, posted with `token`.
async fn serve_queues(server: &Server, token: &str, agent: &str, queues: &[&str]) {
    let reply = server
        .call(
            Method::POST,
            &format!("/v1/agents/data/{agent}"),
            Some(token),
            Some(&json!({ "queues": queues, "state": "waiting" })),
        )
        .await;
    assert_eq!(reply.ok_json(), json!({"status": "OK"}), "{reply:?}");
}

async fn restrict(server: &Server, token: Option<&str>, queue: &str, client_id: &str) -> Reply {
    server
        .call(
            Method::POST,
            &format!("/v1/restricted-queues/{queue}"),
            token,
            Some(&json!({ "client_id": client_id })),
        )
        .await
}

async fn unrestrict(server: &Server, token: Option<&str>, queue: &str, client_id: &str) -> Reply {
    server
        .call(
            Method::DELETE,
            &format!("/v1/restricted-queues/{queue}"),
            token,
            Some(&json!({ "client_id": client_id })),
        )
        .await
}

async fn put_client(server: &Server, token: Option<&str>, client_id: &str, body: Value) -> Reply {
    server
        .call(
            Method::PUT,
            &format!("/v1/client-permissions/{client_id}"),
            token,
            Some(&body),
        )
        .await
}

async fn submit(server: &Server, token: Option<&str>, job: Value) -> Reply {
    server
        .call(Method::POST, "/v1/job", token, Some(&job))
        .await
}

async fn cancel(server: &Server, token: Option<&str>, id: &str) -> Reply {
    server
        .call(
            Method::POST,
            &format!("/v1/job/{id}/action"),
            token,
            Some(&json!({"action": "cancel"})),
        )
        .await
}

async fn put_secret(
    server: &Server,
    token: Option<&str>,
    client_id: &str,
    path: &str,
    body: Value,
) -> Reply {
    server
        .call(
            Method::PUT,
            &format!("/v1/secrets/{client_id}/{path}"),
            token,
            Some(&body),
        )
        .await
}

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

trait AssertPut {
    /// 200 with the plain-text answer of `PUT /v1/client-permissions/{id}`.
    fn assert_put_ok(&self);
}

impl AssertPut for Reply {
    fn assert_put_ok(&self) {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        assert!(self.content_type().starts_with("text/plain"), "{self:?}");
        assert!(
            self.text().contains(" permissions for client '"),
            "{self:?}"
        );
    }
}

fn assert_message_contains(body: &Value, needle: &str) {
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} in {body}");
}

// ---------------------------------------------------------------- 1. tokens

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
        .store
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

// ---------------------------------------------------------------- 2. token checks

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
    assert!(server.state.store.delete_client("gone").await.unwrap());
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

// ---------------------------------------------------------------- 3. modes

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

#[tokio::test]
async fn claim_without_the_agent_cookie_is_401_in_standard_and_strict_modes() {
    for mode in [AuthMode::Standard, AuthMode::Strict] {
        let server = Server::with_auth(mode).await;
        let agent = agent_token(&server).await;
        let contributor = server.client_token("ci", Role::Contributor, |_| {}).await;
        let id = server
            .submit_with(json!({"job_queue": "q"}), &contributor)
            .await;
        let body = claim(&server, "q", Some(&agent), None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED);
        assert_message_contains(&body, "Agent not identified");
        // The job was not taken: with the cookie, it is claimed.
        let claimed = claim(&server, "q", Some(&agent), Some("dev-1"))
            .await
            .ok_json();
        assert_eq!(claimed["job_id"], json!(id), "{mode:?}");
    }
}

// ---------------------------------------------------------------- 4. submission checks

#[tokio::test]
async fn priority_above_zero_needs_a_token() {
    let server = standard().await;
    submit(&server, None, json!({"job_queue": "q", "job_priority": 1}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    server
        .submit(json!({"job_queue": "q", "job_priority": 0}))
        .await;
}

#[tokio::test]
async fn priority_is_limited_per_queue_and_by_the_star() {
    let server = standard().await;
    let token = server
        .client_token("ci", Role::Contributor, |c| {
            c.max_priority.insert("fast".into(), 10);
            c.max_priority.insert("*".into(), 2);
        })
        .await;
    let job = |queue: &str, priority: i64| json!({"job_queue": queue, "job_priority": priority});
    server.submit_with(job("fast", 10), &token).await;
    submit(&server, Some(&token), job("fast", 11))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    server.submit_with(job("other", 2), &token).await;
    submit(&server, Some(&token), job("other", 3))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    // A client without any grant may not raise the priority at all.
    let plain = server
        .client_token("plain", Role::Contributor, |_| {})
        .await;
    submit(&server, Some(&plain), job("fast", 1))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    server.submit_with(job("fast", 0), &plain).await;
}

#[tokio::test]
async fn a_restricted_queue_takes_jobs_only_from_allowed_clients() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let owner = server
        .client_token("owner", Role::Contributor, |_| {})
        .await;
    let other = server
        .client_token("other", Role::Contributor, |_| {})
        .await;
    serve_queues(&server, &admin, "dev-1", &["secure"]).await;
    // Before the restriction, anyone submits.
    server.submit(json!({"job_queue": "secure"})).await;
    restrict(&server, Some(&admin), "secure", "owner")
        .await
        .assert_ok_text();
    let job = json!({"job_queue": "secure"});
    submit(&server, None, job.clone())
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    submit(&server, Some(&other), job.clone())
        .await
        .assert_error(StatusCode::FORBIDDEN);
    server.submit_with(job.clone(), &owner).await;
    // The owner's allowed_queues gained the queue.
    let owner_view = server
        .call(
            Method::GET,
            "/v1/client-permissions/owner",
            Some(&admin),
            None,
        )
        .await
        .ok_json();
    assert_eq!(
        owner_view["allowed_queues"],
        json!(["secure"]),
        "{owner_view}"
    );
    // Other queues stay open.
    submit(&server, Some(&other), json!({"job_queue": "open"}))
        .await
        .ok_json();
}

#[tokio::test]
async fn reservations_over_six_hours_need_a_client_allowed_them() {
    let server = standard().await;
    let token = server
        .client_token("ci", Role::Contributor, |c| {
            c.max_reservation_time.insert("lab".into(), 36_000);
        })
        .await;
    let job = |timeout: Value| json!({"job_queue": "lab", "reserve_data": {"timeout": timeout}});
    // Six hours or less: anyone.
    server.submit(job(json!("6h"))).await;
    server.submit(job(json!(21_600))).await;
    submit(&server, None, job(json!("7h")))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    submit(&server, None, job(json!(21_601)))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    server.submit_with(job(json!("10h")), &token).await;
    submit(&server, Some(&token), job(json!("11h")))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    // Other queues have no grant: only the free six hours.
    submit(
        &server,
        Some(&token),
        json!({"job_queue": "elsewhere", "reserve_data": {"timeout": "7h"}}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_client_id_in_the_job_body_is_ignored() {
    let server = standard().await;
    let agent = agent_token(&server).await;
    let alice = server
        .client_token("alice", Role::Contributor, |_| {})
        .await;
    let mallory = server
        .client_token("mallory", Role::Contributor, |_| {})
        .await;
    // Mallory cannot submit in Alice's name...
    let id = server
        .submit_with(json!({"job_queue": "q", "client_id": "alice"}), &mallory)
        .await;
    let job = server.get(&format!("/v1/job/{id}")).await.ok_json();
    assert!(job.get("client_id").is_none(), "{job}");
    // ...so Alice may not cancel it (it is Mallory's).
    cancel(&server, Some(&alice), &id)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    let claimed = claim(&server, "q", Some(&agent), Some("dev-1"))
        .await
        .ok_json();
    assert_eq!(claimed["client_id"], json!("mallory"), "{claimed}");

    // An anonymous job naming a client belongs to nobody.
    let anon = server
        .submit(json!({"job_queue": "q2", "client_id": "alice"}))
        .await;
    let job = server.get(&format!("/v1/job/{anon}")).await.ok_json();
    assert!(job.get("client_id").is_none(), "{job}");
    cancel(&server, Some(&mallory), &anon)
        .await
        .assert_ok_text();
}

// ---------------------------------------------------------------- 5. client permissions

#[tokio::test]
async fn client_permissions_are_read_by_admins_and_managers_only() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    let contributor = server
        .client_token("ci", Role::Contributor, |c| {
            c.max_priority.insert("q".into(), 3);
        })
        .await;
    for uri in ["/v1/client-permissions", "/v1/client-permissions/ci"] {
        server
            .call(Method::GET, uri, None, None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED);
        server
            .call(Method::GET, uri, Some(&contributor), None)
            .await
            .assert_error(StatusCode::FORBIDDEN);
    }
    let list = server
        .call(Method::GET, "/v1/client-permissions", Some(&admin), None)
        .await
        .ok_json();
    let mut ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["admin", "ci", "manager"], "{list}");
    let one = server
        .call(
            Method::GET,
            "/v1/client-permissions/ci",
            Some(&manager),
            None,
        )
        .await
        .ok_json();
    assert_eq!(
        one,
        json!({
            "client_id": "ci",
            "role": "contributor",
            "max_priority": {"q": 3},
            "allowed_queues": [],
            "max_reservation_time": {},
        })
    );
    server
        .call(
            Method::GET,
            "/v1/client-permissions/nobody",
            Some(&admin),
            None,
        )
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn client_permissions_never_show_a_secret_or_its_hash() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let secret = "a-very-secret-secret-value";
    put_client(
        &server,
        Some(&admin),
        "ci",
        json!({"client_secret": secret}),
    )
    .await
    .assert_put_ok();
    for uri in ["/v1/client-permissions", "/v1/client-permissions/ci"] {
        let reply = server.call(Method::GET, uri, Some(&admin), None).await;
        reply.ok_json();
        let text = reply.text();
        for leak in [secret, &secret_of("admin"), "argon2", "hash", "$2"] {
            assert!(!text.contains(leak), "{leak:?} in {text}");
        }
    }
}

#[tokio::test]
async fn put_creates_then_updates_a_client() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let reply = put_client(
        &server,
        Some(&admin),
        "new-ci",
        json!({"client_secret": "a-long-enough-secret", "role": "contributor",
               "max_priority": {"q": 5}, "allowed_queues": ["secure"]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(reply.content_type().starts_with("text/plain"), "{reply:?}");
    assert_eq!(reply.text(), "Created permissions for client 'new-ci'");
    let reply = put_client(
        &server,
        Some(&admin),
        "new-ci",
        json!({"max_reservation_time": {"*": 30_000}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.text(), "Updated permissions for client 'new-ci'");
    let view = server
        .call(
            Method::GET,
            "/v1/client-permissions/new-ci",
            Some(&admin),
            None,
        )
        .await
        .ok_json();
    assert_eq!(
        view,
        json!({
            "client_id": "new-ci",
            "role": "contributor",
            "max_priority": {"q": 5},
            "allowed_queues": ["secure"],
            "max_reservation_time": {"*": 30_000},
        })
    );
}

#[tokio::test]
async fn put_validates_the_client() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    put_client(&server, Some(&admin), "x", json!({"role": "contributor"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "short"}),
    )
    .await
    .assert_invalid_fields(&["client_secret"]);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "a-long-enough-secret", "colour": "blue"}),
    )
    .await
    .assert_invalid_fields(&["colour"]);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "a-long-enough-secret", "role": "root"}),
    )
    .await
    .assert_invalid_fields(&["role"]);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "a-long-enough-secret", "max_priority": {"q": -1}}),
    )
    .await
    .assert_invalid_fields(&["max_priority"]);
    // Nothing was created.
    server
        .call(Method::GET, "/v1/client-permissions/x", Some(&admin), None)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    // Anonymous callers manage nobody.
    put_client(
        &server,
        None,
        "x",
        json!({"client_secret": "a-long-enough-secret"}),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED);
    // A client id with '$' is refused; 15 characters are enough.
    put_client(
        &server,
        Some(&admin),
        "bad$id",
        json!({"client_secret": "a-long-enough-secret"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "fourteen-chars"}),
    )
    .await
    .assert_invalid_fields(&["client_secret"]);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "fifteen-chars!!"}),
    )
    .await
    .assert_put_ok();
    server.login("x", "fifteen-chars!!").await.ok_json();
}

#[tokio::test]
async fn a_created_client_logs_in_with_its_secret() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    put_client(
        &server,
        Some(&admin),
        "fresh",
        json!({"client_secret": "the-fresh-secret-1", "role": "agent"}),
    )
    .await
    .assert_put_ok();
    let body = server.login("fresh", "the-fresh-secret-1").await.ok_json();
    let token = body["access_token"].as_str().unwrap();
    serve_queues(&server, token, "dev-1", &["q"]).await;
    server
        .login("fresh", "the-fresh-secret-2")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    // A new secret replaces the old one.
    put_client(
        &server,
        Some(&admin),
        "fresh",
        json!({"client_secret": "the-fresh-secret-2"}),
    )
    .await
    .assert_put_ok();
    server.login("fresh", "the-fresh-secret-2").await.ok_json();
    server
        .login("fresh", "the-fresh-secret-1")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_manager_cannot_grant_or_edit_an_admin_but_creates_contributors() {
    let server = standard().await;
    let manager = manager_token(&server).await;
    admin_token(&server).await;
    put_client(
        &server,
        Some(&manager),
        "boss",
        json!({"client_secret": "a-long-enough-secret", "role": "admin"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    put_client(
        &server,
        Some(&manager),
        "admin",
        json!({"max_priority": {"*": 1}}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    put_client(
        &server,
        Some(&manager),
        "admin",
        json!({"client_secret": "taking-over-the-admin"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    server.login("admin", &secret_of("admin")).await.ok_json();
    let reply = put_client(
        &server,
        Some(&manager),
        "worker",
        json!({"client_secret": "a-long-enough-secret", "role": "contributor"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.text(), "Created permissions for client 'worker'");
    // Nor may the manager promote its contributor to admin.
    put_client(&server, Some(&manager), "worker", json!({"role": "admin"}))
        .await
        .assert_error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn only_an_admin_deletes_a_client() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    server.client_token("ci", Role::Contributor, |_| {}).await;
    let uri = "/v1/client-permissions/ci";
    server
        .call(Method::DELETE, uri, Some(&manager), None)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    server
        .call(Method::DELETE, uri, None, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    server
        .call(Method::DELETE, uri, Some(&admin), None)
        .await
        .assert_ok_text();
    server
        .call(Method::DELETE, uri, Some(&admin), None)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .call(Method::GET, uri, Some(&admin), None)
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_a_client_ends_its_tokens() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let (access, refresh_token) = login_pair(&server, "ci", Role::Contributor).await;
    server.submit_with(json!({"job_queue": "q"}), &access).await;
    server
        .call(
            Method::DELETE,
            "/v1/client-permissions/ci",
            Some(&admin),
            None,
        )
        .await
        .assert_ok_text();
    submit(&server, Some(&access), json!({"job_queue": "q"}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    refresh(&server, &refresh_token)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .login("ci", &secret_of("ci"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------- 6. restricted queues

#[tokio::test]
async fn restricting_a_queue_needs_an_admin_or_a_manager() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    let contributor = server.client_token("ci", Role::Contributor, |_| {}).await;
    serve_queues(&server, &admin, "dev-1", &["a", "b"]).await;
    restrict(&server, None, "a", "ci")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    restrict(&server, Some(&contributor), "a", "ci")
        .await
        .assert_error(StatusCode::FORBIDDEN);
    unrestrict(&server, Some(&contributor), "a", "ci")
        .await
        .assert_error(StatusCode::FORBIDDEN);
    server
        .call(Method::GET, "/v1/restricted-queues/a", Some(&admin), None)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    restrict(&server, Some(&manager), "a", "ci")
        .await
        .assert_ok_text();
    restrict(&server, Some(&admin), "b", "ci")
        .await
        .assert_ok_text();
    // Restricted queues are read by contributors and anonymous callers too.
    let list = server.get("/v1/restricted-queues").await.ok_json();
    assert_eq!(
        list,
        json!([{"queue": "a", "owners": ["ci"]}, {"queue": "b", "owners": ["ci"]}])
    );
    let one = server
        .call(
            Method::GET,
            "/v1/restricted-queues/a",
            Some(&contributor),
            None,
        )
        .await
        .ok_json();
    assert_eq!(one, json!({"queue": "a", "owners": ["ci"]}));
}

#[tokio::test]
async fn restricting_needs_a_known_client_a_served_queue_and_a_client_id() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    server.client_token("ci", Role::Contributor, |_| {}).await;
    serve_queues(&server, &admin, "dev-1", &["served"]).await;
    restrict(&server, Some(&admin), "served", "nobody")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    restrict(&server, Some(&admin), "unserved", "ci")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .call(
            Method::POST,
            "/v1/restricted-queues/served",
            Some(&admin),
            Some(&json!({})),
        )
        .await
        .assert_invalid_fields(&["client_id"]);
    server
        .call(
            Method::POST,
            "/v1/restricted-queues/served",
            Some(&admin),
            Some(&json!({"client_id": 7})),
        )
        .await
        .assert_invalid_fields(&["client_id"]);
    // Nothing was restricted.
    let list = server.get("/v1/restricted-queues").await.ok_json();
    assert_eq!(list, json!([]));
    server
        .get("/v1/restricted-queues/served")
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn removing_owners_ends_the_restriction_with_the_last_one() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    server.client_token("one", Role::Contributor, |_| {}).await;
    server.client_token("two", Role::Contributor, |_| {}).await;
    serve_queues(&server, &admin, "dev-1", &["lab"]).await;
    restrict(&server, Some(&admin), "lab", "one")
        .await
        .assert_ok_text();
    restrict(&server, Some(&admin), "lab", "two")
        .await
        .assert_ok_text();
    let mut restriction = server.get("/v1/restricted-queues/lab").await.ok_json();
    restriction["owners"]
        .as_array_mut()
        .unwrap()
        .sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(
        restriction,
        json!({"queue": "lab", "owners": ["one", "two"]})
    );

    unrestrict(&server, Some(&admin), "lab", "one")
        .await
        .assert_ok_text();
    let restriction = server.get("/v1/restricted-queues/lab").await.ok_json();
    assert_eq!(restriction, json!({"queue": "lab", "owners": ["two"]}));
    let one = server
        .call(
            Method::GET,
            "/v1/client-permissions/one",
            Some(&admin),
            None,
        )
        .await
        .ok_json();
    assert_eq!(one["allowed_queues"], json!([]), "{one}");
    let two = server
        .call(
            Method::GET,
            "/v1/client-permissions/two",
            Some(&admin),
            None,
        )
        .await
        .ok_json();
    assert_eq!(two["allowed_queues"], json!(["lab"]), "{two}");
    // Not an owner (any more).
    unrestrict(&server, Some(&admin), "lab", "one")
        .await
        .assert_error(StatusCode::NOT_FOUND);

    unrestrict(&server, Some(&admin), "lab", "two")
        .await
        .assert_ok_text();
    server
        .get("/v1/restricted-queues/lab")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    unrestrict(&server, Some(&admin), "lab", "two")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    // The queue is open again.
    server.submit(json!({"job_queue": "lab"})).await;
}

#[tokio::test]
async fn an_agent_shows_the_owners_of_its_restricted_queues() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    server.client_token("one", Role::Contributor, |_| {}).await;
    server.client_token("two", Role::Contributor, |_| {}).await;
    serve_queues(&server, &admin, "dev-1", &["lab", "open"]).await;
    serve_queues(&server, &admin, "dev-2", &["elsewhere"]).await;
    restrict(&server, Some(&admin), "lab", "one")
        .await
        .assert_ok_text();
    restrict(&server, Some(&admin), "lab", "two")
        .await
        .assert_ok_text();
    restrict(&server, Some(&admin), "elsewhere", "one")
        .await
        .assert_ok_text();
    let agent = server.get("/v1/agents/data/dev-1").await.ok_json();
    let mut owners: Vec<&str> = agent["restricted_to"]["lab"]
        .as_array()
        .unwrap_or_else(|| panic!("{agent}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    owners.sort_unstable();
    assert_eq!(owners, ["one", "two"], "{agent}");
    assert_eq!(
        agent["restricted_to"].as_object().unwrap().len(),
        1,
        "only this agent's queues: {agent}"
    );
    let other = server.get("/v1/agents/data/dev-2").await.ok_json();
    assert_eq!(other["restricted_to"], json!({"elsewhere": ["one"]}));
    // The list shows the same.
    let list = server.get("/v1/agents/data").await.ok_json();
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == json!("dev-2"))
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(listed["restricted_to"], json!({"elsewhere": ["one"]}));
}

// ---------------------------------------------------------------- 7. secrets

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
        .store
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

// ---------------------------------------------------------------- 8. job events relay

/// How the test webhook answers.
#[derive(Clone, Copy)]
enum HookAnswer {
    Status(u16),
    Sleep(Duration),
}

/// One PUT the webhook received: its JSON body and `Authorization` header.
#[derive(Debug, Clone)]
struct HookCall {
    body: Value,
    authorization: Option<String>,
}

type HookState = (Arc<Mutex<Vec<HookCall>>>, HookAnswer);

struct Hook {
    port: u16,
    calls: Arc<Mutex<Vec<HookCall>>>,
}

impl Hook {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn calls(&self) -> Vec<HookCall> {
        self.calls.lock().unwrap().clone()
    }
}

async fn hook_handler(
    State((calls, answer)): State<HookState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    calls.lock().unwrap().push(HookCall {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    match answer {
        HookAnswer::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            let body = if status.is_success() {
                json!({"received": true})
            } else {
                json!({"message": format!("the hook answers {code}"), "detail": {}})
            };
            (status, Json(body)).into_response()
        }
        HookAnswer::Sleep(duration) => {
            tokio::time::sleep(duration).await;
            (StatusCode::OK, Json(json!({"received": "late"}))).into_response()
        }
    }
}

/// A webhook on 127.0.0.1 and a free port, answering PUT /hook.
async fn start_hook(answer: HookAnswer) -> Hook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::put(hook_handler))
        .with_state((calls.clone(), answer));
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Hook { port, calls }
}

/// A standard-mode server that relays to `webhook_url` with "hook-token".
async fn relay_server(webhook_url: Option<String>) -> Server {
    Server::with_config(|config| {
        config.auth.mode = AuthMode::Standard;
        config.auth.signing_key = Some(SIGNING_KEY.into());
        config.auth.secrets_key = Some(SecretsKey::from_base64(SECRETS_KEY).unwrap());
        config.auth.webhook_url = webhook_url;
        config.auth.webhook_auth = Some("hook-token".into());
    })
    .await
}

fn events_body(webhook: &str) -> Value {
    json!({
        "job_status_webhook": webhook,
        "agent_id": "a1",
        "job_queue": "q",
        "events": [
            {"event_name": "job_start", "timestamp": "2026-11-25T10:00:00Z", "detail": ""},
        ],
    })
}

async fn post_events(server: &Server, token: &str, id: &str, body: &Value) -> Reply {
    server
        .call(
            Method::POST,
            &format!("/v1/job/{id}/events"),
            Some(token),
            Some(body),
        )
        .await
}

/// A job whose webhook is `webhook`, and its events posted by an agent.
async fn relay(server: &Server, webhook: &str) -> Reply {
    let agent = agent_token(server).await;
    let id = server
        .submit(json!({"job_queue": "q", "job_status_webhook": webhook}))
        .await;
    post_events(server, &agent, &id, &events_body(webhook)).await
}

#[tokio::test]
async fn job_events_are_relayed_to_the_webhook() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    let reply = relay(&server, &hook.url()).await;
    assert_eq!(reply.ok_json(), json!({"received": true}));
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].body,
        json!({
            "agent_id": "a1",
            "job_queue": "q",
            "events": [
                {"event_name": "job_start", "timestamp": "2026-11-25T10:00:00Z", "detail": ""},
            ],
        })
    );
    assert_eq!(calls[0].authorization.as_deref(), Some("Bearer hook-token"));
}

#[tokio::test]
async fn job_events_pass_back_the_webhooks_status() {
    let hook = start_hook(HookAnswer::Status(404)).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    let body = relay(&server, &hook.url())
        .await
        .assert_error(StatusCode::NOT_FOUND);
    assert_eq!(body["message"], json!("the hook answers 404"));
    assert_eq!(hook.calls().len(), 1, "a 4xx is not retried");
}

#[tokio::test]
async fn job_events_for_another_host_or_port_are_403() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = other.local_addr().unwrap().port();
    for webhook in [
        format!("http://localhost:{}/hook", hook.port),
        format!("http://127.0.0.1:{other_port}/hook"),
        format!("https://127.0.0.1:{}/hook", hook.port),
        "http://example.com/hook".to_owned(),
        // Parsers that disagree on where the host is must not be fooled.
        format!(
            "http://localhost:{other_port}\\@127.0.0.1:{}/hook",
            hook.port
        ),
        format!(
            "http://127.0.0.1:{}\\@localhost:{other_port}/hook",
            hook.port
        ),
    ] {
        let reply = relay(&server, &webhook).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{webhook}: {reply:?}");
        reply.assert_error(StatusCode::FORBIDDEN);
    }
    assert!(hook.calls().is_empty(), "{:?}", hook.calls());
}

#[tokio::test]
async fn job_events_follow_the_jobs_webhook_not_the_bodys() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    let agent = agent_token(&server).await;
    let untrusted = format!("http://localhost:{}/hook", hook.port);
    let id = server
        .submit(json!({"job_queue": "q", "job_status_webhook": untrusted}))
        .await;
    post_events(&server, &agent, &id, &events_body(&hook.url()))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    assert!(hook.calls().is_empty(), "{:?}", hook.calls());
}

#[tokio::test]
async fn job_events_without_a_configured_webhook_url_are_403() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(None).await;
    relay(&server, &hook.url())
        .await
        .assert_error(StatusCode::FORBIDDEN);
    assert!(hook.calls().is_empty(), "{:?}", hook.calls());
}

#[tokio::test]
async fn job_events_for_an_unknown_job_are_404() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    let agent = agent_token(&server).await;
    post_events(&server, &agent, UNKNOWN_ID, &events_body(&hook.url()))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    assert!(hook.calls().is_empty());
}

#[tokio::test]
async fn job_events_that_are_not_a_list_are_422() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    let agent = agent_token(&server).await;
    let id = server
        .submit(json!({"job_queue": "q", "job_status_webhook": hook.url()}))
        .await;
    let mut body = events_body(&hook.url());
    body["events"] = json!({"event_name": "job_start"});
    post_events(&server, &agent, &id, &body)
        .await
        .assert_invalid_fields(&["events"]);
    assert!(hook.calls().is_empty());
}

#[tokio::test]
async fn a_failing_webhook_is_tried_twice_then_502() {
    let hook = start_hook(HookAnswer::Status(500)).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    relay(&server, &hook.url())
        .await
        .assert_error(StatusCode::BAD_GATEWAY);
    assert_eq!(hook.calls().len(), 2, "{:?}", hook.calls());
}

#[tokio::test]
async fn an_unreachable_webhook_is_502() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let server = relay_server(Some(format!("http://127.0.0.1:{port}"))).await;
    relay(&server, &format!("http://127.0.0.1:{port}/hook"))
        .await
        .assert_error(StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn a_webhook_slower_than_the_timeout_is_504() {
    let hook = start_hook(HookAnswer::Sleep(Duration::from_secs(5))).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    let started = std::time::Instant::now();
    relay(&server, &hook.url())
        .await
        .assert_error(StatusCode::GATEWAY_TIMEOUT);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(9), "bounded: {elapsed:?}");
    assert_eq!(hook.calls().len(), 2, "{:?}", hook.calls());
}

// ---------------------------------------------------------------- 9. cancel ownership

#[tokio::test]
async fn only_its_client_or_a_manager_cancels_a_clients_job() {
    let server = standard().await;
    let alice = server
        .client_token("alice", Role::Contributor, |_| {})
        .await;
    let bob = server.client_token("bob", Role::Contributor, |_| {}).await;
    let manager = manager_token(&server).await;
    let admin = admin_token(&server).await;
    let id = server.submit_with(json!({"job_queue": "q"}), &alice).await;
    cancel(&server, Some(&bob), &id)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    cancel(&server, None, &id)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    // Still waiting.
    assert_eq!(
        server.get(&format!("/v1/job/{id}/position")).await.text(),
        "0"
    );
    cancel(&server, Some(&alice), &id).await.assert_ok_text();
    let second = server.submit_with(json!({"job_queue": "q"}), &alice).await;
    cancel(&server, Some(&manager), &second)
        .await
        .assert_ok_text();
    let third = server.submit_with(json!({"job_queue": "q"}), &alice).await;
    cancel(&server, Some(&admin), &third).await.assert_ok_text();
    let result = server.result(&second).await;
    assert_eq!(result["job_state"], json!("cancelled"), "{result}");
}

#[tokio::test]
async fn an_anonymous_caller_cannot_cancel_a_clients_job_even_in_open_mode() {
    let server = Server::with_auth(AuthMode::Open).await;
    let alice = server
        .client_token("alice", Role::Contributor, |_| {})
        .await;
    let id = server.submit_with(json!({"job_queue": "q"}), &alice).await;
    cancel(&server, None, &id)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    cancel(&server, Some(&alice), &id).await.assert_ok_text();
}

#[tokio::test]
async fn anyone_cancels_an_anonymous_job() {
    let server = standard().await;
    let bob = server.client_token("bob", Role::Contributor, |_| {}).await;
    let first = server.submit(json!({"job_queue": "q"})).await;
    let second = server.submit(json!({"job_queue": "q"})).await;
    cancel(&server, None, &first).await.assert_ok_text();
    cancel(&server, Some(&bob), &second).await.assert_ok_text();
    // A second cancel is 400, an unknown job 404.
    cancel(&server, None, &first)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    cancel(&server, None, UNKNOWN_ID)
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

// ---- Hardening after review ----

trait OkText {
    fn ok_text(&self);
}

impl OkText for Reply {
    /// 200 with a plain-text body (the client-permissions answers).
    fn ok_text(&self) {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        assert!(self.content_type().starts_with("text/plain"), "{self:?}");
    }
}

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
async fn a_new_secret_ends_the_sessions_of_the_old_one() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let (_, refresh_token) = login_pair(&server, "ci", Role::Contributor).await;
    refresh(&server, &refresh_token).await.ok_json();
    put_client(
        &server,
        Some(&admin),
        "ci",
        json!({"client_secret": "a new secret after a leak"}),
    )
    .await
    .ok_text();
    refresh(&server, &refresh_token)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .login("ci", "a new secret after a leak")
        .await
        .ok_json();
}

#[tokio::test]
async fn a_manager_changes_only_lower_roles_and_only_its_own_secret() {
    let server = standard().await;
    let manager = manager_token(&server).await;
    let manager_id = "manager";
    server
        .add_client("m2", &secret_of("m2"), Role::Manager, |_| {})
        .await;
    // Not a peer: neither its secret nor its permissions.
    for body in [
        json!({"client_secret": "taking over another manager"}),
        json!({"max_priority": {"*": 5}}),
    ] {
        put_client(&server, Some(&manager), "m2", body)
            .await
            .assert_error(StatusCode::FORBIDDEN);
    }
    // Not its own permissions, but its own secret.
    put_client(
        &server,
        Some(&manager),
        manager_id,
        json!({"allowed_queues": ["*"], "max_priority": {"*": 1000000}}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    put_client(
        &server,
        Some(&manager),
        manager_id,
        json!({"client_secret": "the manager's own new secret"}),
    )
    .await
    .ok_text();
    // Not another manager, but contributors.
    put_client(
        &server,
        Some(&manager),
        "m3",
        json!({"client_secret": "a secret for m3 here", "role": "manager"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    put_client(
        &server,
        Some(&manager),
        "c1",
        json!({"client_secret": "a secret for c1 here", "role": "contributor"}),
    )
    .await
    .ok_text();
}

#[tokio::test]
async fn a_manager_cannot_make_an_admin_own_a_queue() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    serve_queues(&server, &agent_token(&server).await, "dut-1", &["secure"]).await;
    restrict(&server, Some(&manager), "secure", "admin")
        .await
        .assert_error(StatusCode::FORBIDDEN);
    restrict(&server, Some(&admin), "secure", "admin")
        .await
        .assert_ok_text();
    unrestrict(&server, Some(&manager), "secure", "admin")
        .await
        .assert_error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn head_never_claims_a_job() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "hq"})).await;
    let reply = server
        .call(Method::HEAD, "/v1/job?queue=hq", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{reply:?}");
    assert_eq!(
        server.get(&format!("/v1/job/{id}/position")).await.text(),
        "0",
        "still waiting"
    );
    let reply = server
        .call(Method::HEAD, &format!("/v1/result/{id}/output"), None, None)
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{reply:?}");
}

#[tokio::test]
async fn job_events_need_the_jobs_own_webhook() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    let agent = agent_token(&server).await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    post_events(&server, &agent, &id, &events_body(&hook.url()))
        .await
        .assert_invalid_fields(&["job_status_webhook"]);
    assert!(hook.calls().is_empty());
}

#[tokio::test]
async fn a_webhook_refusing_our_token_is_a_bad_gateway_not_a_401() {
    // A 401 would make the agent refresh its own token and replay.
    let hook = start_hook(HookAnswer::Status(401)).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    relay(&server, &hook.url())
        .await
        .assert_error(StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn client_ids_cannot_hold_a_colon() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    put_client(
        &server,
        Some(&admin),
        "user:name",
        json!({"client_secret": "a long enough secret"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
}
