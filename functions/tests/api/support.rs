//! Helpers that several API modules share: a `standard`-mode server and
//! tokens by role, requests as a client or an agent, and the calls that set up
//! what a test needs (a served queue, a restriction, a client, a secret).

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use testflinger_shared::role::{AuthMode, Role};

use crate::common::*;

/// The secret `Server::client_token` gives a client.
pub fn secret_of(client_id: &str) -> String {
    format!("{client_id}-secret-of-length")
}

pub async fn standard() -> Server {
    Server::with_auth(AuthMode::Standard).await
}

pub async fn admin_token(server: &Server) -> String {
    server.client_token("admin", Role::Admin, |_| {}).await
}

pub async fn manager_token(server: &Server) -> String {
    server.client_token("manager", Role::Manager, |_| {}).await
}

pub async fn agent_token(server: &Server) -> String {
    server.client_token("agent-bot", Role::Agent, |_| {}).await
}

/// A client written to the store, logged in: (access token, refresh token).
pub async fn login_pair(server: &Server, client_id: &str, role: Role) -> (String, String) {
    let secret = secret_of(client_id);
    server.add_client(client_id, &secret, role, |_| {}).await;
    let body = server.login(client_id, &secret).await.ok_json();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// Any request, with an optional bearer token, `agent_name` cookie and JSON
/// body.
pub async fn call_as(
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
pub async fn claim(
    server: &Server,
    queue: &str,
    token: Option<&str>,
    agent: Option<&str>,
) -> Reply {
    let uri = format!("/v1/job?queue={queue}");
    call_as(server, Method::GET, &uri, token, agent, None).await
}

pub async fn submit(server: &Server, token: Option<&str>, job: Value) -> Reply {
    server
        .call(Method::POST, "/v1/job", token, Some(&job))
        .await
}

/// `POST /v1/job/{id}/action` `{"action": "cancel"}`, anonymously.
pub async fn cancel(server: &Server, id: &str) -> Reply {
    server
        .post_json(
            &format!("/v1/job/{id}/action"),
            &json!({"action": "cancel"}),
        )
        .await
}

pub async fn refresh(server: &Server, refresh_token: &str) -> Reply {
    server
        .call(
            Method::POST,
            "/v1/oauth2/refresh",
            None,
            Some(&json!({ "refresh_token": refresh_token })),
        )
        .await
}

/// An agent (name `agent`) that serves `queues`, posted with `token`.
pub async fn serve_queues(server: &Server, token: &str, agent: &str, queues: &[&str]) {
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

pub async fn restrict(server: &Server, token: Option<&str>, queue: &str, client_id: &str) -> Reply {
    server
        .call(
            Method::POST,
            &format!("/v1/restricted-queues/{queue}"),
            token,
            Some(&json!({ "client_id": client_id })),
        )
        .await
}

pub async fn put_client(
    server: &Server,
    token: Option<&str>,
    client_id: &str,
    body: Value,
) -> Reply {
    server
        .call(
            Method::PUT,
            &format!("/v1/client-permissions/{client_id}"),
            token,
            Some(&body),
        )
        .await
}

pub async fn put_secret(
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

pub trait AssertPut {
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

pub fn assert_message_contains(body: &Value, needle: &str) {
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} in {body}");
}
