//! What the replays (`replay_agent.rs`, `replay_cli.rs`) share: the requests
//! `testflinger-agent` sends and the answers `testflinger-cli` reads, made as
//! those clients make them (upstream-api.md §3, §8, §9), with or without
//! tokens.

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use testflinger_shared::auth::TokenKeys;
use testflinger_shared::role::{AuthMode, Role};
use testflinger_shared::Timestamp;

use super::*;

pub const AGENT: &str = "dev-01";

/// The phases the agent runs and posts as job states, in order (§8 step 12).
pub const PHASES: [&str; 6] = [
    "setup",
    "provision",
    "firmware_update",
    "test",
    "allocate",
    "reserve",
];

// ---------------------------------------------------------------------------
// What the agent sends

/// A log fragment with a fixed agent timestamp derived from its number.
pub fn fragment(n: i64, phase: &str, data: &str) -> Value {
    json!({
        "fragment_number": n,
        "timestamp": format!("2026-11-25T10:{:02}:{:02}Z", (n / 60) % 60, n % 60),
        "phase": phase,
        "log_data": data,
    })
}

pub async fn post_fragment(server: &Server, id: &str, log_type: &str, body: Value) {
    server
        .post_json(&format!("/v1/result/{id}/log/{log_type}"), &body)
        .await
        .assert_ok_text();
}

/// `POST /v1/agents/data/<name>`: 200 `{"status": "OK"}` and the cookie the
/// claim reads.
pub async fn post_agent_data(server: &Server, name: &str, body: Value) {
    let reply = server
        .post_json(&format!("/v1/agents/data/{name}"), &body)
        .await;
    assert_eq!(
        reply.ok_json(),
        json!({"status": "OK"}),
        "agent data {body}: {reply:?}"
    );
    let cookies: Vec<&str> = reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("an ASCII cookie"))
        .collect();
    assert_eq!(
        cookies,
        [format!(
            "agent_name={name}; HttpOnly; Path=/; SameSite=Strict"
        )],
        "{reply:?}"
    );
}

/// `GET /v1/agents/data/<name>`: 200, the agent.
pub async fn get_agent(server: &Server, name: &str) -> Value {
    let agent = server
        .get(&format!("/v1/agents/data/{name}"))
        .await
        .ok_json();
    assert_eq!(agent["name"], json!(name), "{agent}");
    agent
}

/// The agent's start-up (§8 steps 2–4) on `queues`.
pub async fn start_agent(server: &Server, name: &str, queues: &[&str]) {
    post_agent_data(server, name, json!({"state": "waiting", "comment": ""})).await;
    let advertised: serde_json::Map<String, Value> = queues
        .iter()
        .map(|q| (q.to_string(), json!(format!("The {q} devices"))))
        .collect();
    server
        .post_json("/v1/agents/queues", &Value::Object(advertised))
        .await
        .assert_ok_text();
    post_agent_data(
        server,
        name,
        json!({
            "location": "lab 1, rack 3",
            "queues": queues,
            "provision_type": "noprovision",
            "identifier": format!("{name}-serial"),
        }),
    )
    .await;
}

/// The agent's claim: `GET /v1/job?queue=..` with its cookie.
pub async fn claim_as(server: &Server, agent: &str, queues: &[&str]) -> Reply {
    let query: Vec<String> = queues.iter().map(|q| format!("queue={q}")).collect();
    server
        .get_as(&format!("/v1/job?{}", query.join("&")), agent)
        .await
}

/// A claim that must hand out `id`; returns the claim answer.
pub async fn claim_expecting(server: &Server, agent: &str, queues: &[&str], id: &str) -> Value {
    let job = claim_as(server, agent, queues).await.ok_json();
    assert_eq!(job["job_id"], json!(id), "{job}");
    let started = job["started_at"].as_str().unwrap_or_default();
    assert!(is_rfc3339_utc(started), "started_at: {job}");
    job
}

pub async fn job_state(server: &Server, id: &str) -> String {
    server.result(id).await["job_state"]
        .as_str()
        .expect("job_state is a string")
        .to_owned()
}

pub fn attachments_body(content: &[u8]) -> Vec<u8> {
    multipart(BOUNDARY, &[("file", Some("attachments.tar.gz"), content)])
}

pub async fn upload_attachments(server: &Server, id: &str, content: &[u8]) -> Reply {
    server
        .post_raw(
            &format!("/v1/job/{id}/attachments"),
            Some(&multipart_type()),
            attachments_body(content),
        )
        .await
}

// ---------------------------------------------------------------------------
// What the CLI reads

/// Every anonymous CLI command starts here; 404 means "carry on anonymously".
pub async fn cli_auth_init(server: &Server) {
    let reply = server.post_json("/oidc/auth-init", &json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reply:?}");
}

/// The CLI's next `start_fragment`: `max(last_fragment_number) + 1` over the
/// phases, or the same start when nothing new came.
pub fn next_start(view: &Value, log_type: &str, current: i64) -> i64 {
    let last = view[log_type]
        .as_object()
        .unwrap_or_else(|| panic!("{log_type} is an object: {view}"))
        .values()
        .map(|p| p["last_fragment_number"].as_i64().expect("an integer"))
        .max()
        .unwrap_or(-1);
    if last >= 0 {
        last + 1
    } else {
        current
    }
}

// ---------------------------------------------------------------------------
// With authentication: the agent-host client, its tokens and the agent
// holding them (SPEC.md §3, upstream-api.md §3, §8)

/// The agent-role client the operator creates for an agent host.
pub const AGENT_HOST: &str = "agent-host-lab1";

pub const AGENT_HOST_SECRET: &str = "the agent host's secret";

/// An access token for `client_id` that expired 50 minutes ago (issued an
/// hour ago, for 10 minutes), signed with the server's key.
pub fn expired_token(client_id: &str, role: Role) -> String {
    let an_hour_ago = Timestamp::from_millis(Timestamp::now().millis() - 3_600_000);
    TokenKeys::new(SIGNING_KEY.as_bytes(), 0).issue(client_id, role, an_hour_ago)
}

/// What `POST /v1/oauth2/token` answers: `{access_token, token_type,
/// expires_in, refresh_token}`.
pub fn assert_token_set(tokens: &Value) {
    assert_eq!(tokens["token_type"], json!("Bearer"), "{tokens}");
    assert_eq!(tokens["expires_in"], json!(600), "{tokens}");
    assert!(
        tokens["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3),
        "a JWT: {tokens}"
    );
    assert!(
        tokens["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() == 64),
        "a 64-character refresh token: {tokens}"
    );
}

/// The JSON message of an error answer, which both clients print.
pub fn error_message(reply: &Reply, status: StatusCode) -> String {
    reply.assert_error(status)["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

/// The agent-host charm: logs in once with the agent client's credentials
/// and writes the refresh token to the agent's token file.
pub async fn charm_login(server: &Server, client_id: &str, secret: &str) -> String {
    let tokens = server.login(client_id, secret).await.ok_json();
    assert_token_set(&tokens);
    tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

/// `{queue: description}` as the agent advertises its queues.
pub fn advertised(queues: &[&str]) -> Value {
    Value::Object(
        queues
            .iter()
            .map(|q| (q.to_string(), json!(format!("The {q} devices"))))
            .collect(),
    )
}

/// `testflinger-agent` started with `--token-file`: one `requests.Session`
/// that keeps the `agent_name` cookie from `Set-Cookie`, sends the cached
/// access token as `Authorization: Bearer`, gets that token from
/// `POST /v1/oauth2/refresh` before its first request, and on a 401 drops
/// it, refreshes and replays the request once (upstream-api.md §3.3, §8).
/// Without a token file it is an agent of an `open` server: no
/// `Authorization` header at all.
pub struct TokenAgent<'a> {
    server: &'a Server,
    name: String,
    refresh_token: Option<String>,
    pub access_token: Option<String>,
    cookie: Option<String>,
    /// Refreshes so far.
    pub refreshes: usize,
    /// Each 401 the session answered with a refresh and a replay.
    pub unauthorized: Vec<Reply>,
}

impl<'a> TokenAgent<'a> {
    pub fn new(server: &'a Server, name: &str, refresh_token: Option<String>) -> Self {
        TokenAgent {
            server,
            name: name.to_owned(),
            refresh_token,
            access_token: None,
            cookie: None,
            refreshes: 0,
            unauthorized: Vec::new(),
        }
    }

    /// An agent on `server` in `mode`: with its own agent-role client and
    /// token file, except in `open` mode, where agents hold no token.
    pub async fn for_mode(server: &'a Server, mode: AuthMode, name: &str) -> Self {
        if mode == AuthMode::Open {
            return TokenAgent::new(server, name, None);
        }
        let client_id = format!("agent-host-{name}");
        let secret = format!("{client_id}-secret");
        server
            .add_client(&client_id, &secret, Role::Agent, |_| {})
            .await;
        let refresh_token = charm_login(server, &client_id, &secret).await;
        TokenAgent::new(server, name, Some(refresh_token))
    }

    /// `POST /v1/oauth2/refresh {"refresh_token"}`: a new access token.
    pub async fn refresh(&mut self) {
        let token = self.refresh_token.clone().expect("a token file");
        let reply = self
            .server
            .post_json("/v1/oauth2/refresh", &json!({"refresh_token": token}))
            .await;
        let body = reply.ok_json();
        assert_eq!(body["token_type"], json!("Bearer"), "{body}");
        assert_eq!(body["expires_in"], json!(600), "{body}");
        self.access_token = Some(
            body["access_token"]
                .as_str()
                .expect("an access token")
                .to_owned(),
        );
        self.refreshes += 1;
    }

    /// Ten minutes pass: the cached access token has expired.
    pub fn expire_access_token(&mut self) {
        self.access_token = Some(expired_token(AGENT_HOST, Role::Agent));
    }

    pub fn take_unauthorized(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.unauthorized)
    }

    /// One request as the session sends it, without the 401 handling.
    pub async fn send_once(
        &mut self,
        method: &Method,
        uri: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let mut req = request(method.clone(), uri, content_type, Body::from(body.to_vec()));
        if let Some(token) = &self.access_token {
            req.headers_mut().insert(
                header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            );
        }
        if let Some(cookie) = &self.cookie {
            req.headers_mut()
                .insert(header::COOKIE, cookie.parse().unwrap());
        }
        let reply = self.server.send(req).await;
        for value in reply.headers.get_all(header::SET_COOKIE) {
            let pair = value
                .to_str()
                .expect("an ASCII cookie")
                .split(';')
                .next()
                .unwrap_or_default()
                .trim();
            if pair.starts_with("agent_name=") {
                self.cookie = Some(pair.to_owned());
            }
        }
        reply
    }

    /// One request with the agent's token handling.
    pub async fn send(
        &mut self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        if self.refresh_token.is_some() && self.access_token.is_none() {
            self.refresh().await;
        }
        let reply = self.send_once(&method, uri, content_type, &body).await;
        if reply.status != StatusCode::UNAUTHORIZED || self.refresh_token.is_none() {
            return reply;
        }
        self.unauthorized.push(reply);
        self.access_token = None;
        self.refresh().await;
        self.send_once(&method, uri, content_type, &body).await
    }

    pub async fn get(&mut self, uri: &str) -> Reply {
        self.send(Method::GET, uri, None, Vec::new()).await
    }

    pub async fn post_json(&mut self, uri: &str, body: &Value) -> Reply {
        self.send(
            Method::POST,
            uri,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// `POST /v1/agents/data/<name>`: `{"status": "OK"}` and the cookie.
    pub async fn post_agent_data(&mut self, body: Value) {
        let uri = format!("/v1/agents/data/{}", self.name);
        let reply = self.post_json(&uri, &body).await;
        assert_eq!(reply.ok_json(), json!({"status": "OK"}), "{body}");
        let cookies: Vec<&str> = reply
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("an ASCII cookie"))
            .collect();
        assert_eq!(
            cookies,
            [format!(
                "agent_name={}; HttpOnly; Path=/; SameSite=Strict",
                self.name
            )],
            "{reply:?}"
        );
        assert_eq!(
            self.cookie.as_deref(),
            Some(format!("agent_name={}", self.name).as_str())
        );
    }

    /// `GET /v1/agents/data/<name>`
    pub async fn get_self(&mut self) -> Value {
        let uri = format!("/v1/agents/data/{}", self.name);
        let agent = self.get(&uri).await.ok_json();
        assert_eq!(agent["name"], json!(self.name), "{agent}");
        agent
    }

    pub async fn result(&mut self, id: &str) -> Value {
        self.get(&format!("/v1/result/{id}")).await.ok_json()
    }

    pub async fn post_result(&mut self, id: &str, body: Value) {
        self.post_json(&format!("/v1/result/{id}"), &body)
            .await
            .assert_ok_text();
    }

    pub async fn post_fragment(&mut self, id: &str, log_type: &str, body: Value) {
        self.post_json(&format!("/v1/result/{id}/log/{log_type}"), &body)
            .await
            .assert_ok_text();
    }

    /// `GET /v1/job?queue=..`
    pub async fn claim(&mut self, queues: &[&str]) -> Reply {
        let query: Vec<String> = queues.iter().map(|q| format!("queue={q}")).collect();
        self.get(&format!("/v1/job?{}", query.join("&"))).await
    }

    pub async fn upload_artifact(&mut self, id: &str, content: &[u8]) -> Reply {
        self.send(
            Method::POST,
            &format!("/v1/result/{id}/artifact"),
            Some(&multipart_type()),
            multipart(BOUNDARY, &[("file", Some("file"), content)]),
        )
        .await
    }

    /// Start-up (§8 steps 1–4).
    pub async fn start(&mut self, queues: &[&str]) {
        self.post_agent_data(json!({"state": "waiting", "comment": ""}))
            .await;
        self.post_json("/v1/agents/queues", &advertised(queues))
            .await
            .assert_ok_text();
        let images = json!({queues[0]: {"jammy": "url: http://images.example/jammy.img.xz"}});
        self.post_json("/v1/agents/images", &images)
            .await
            .assert_ok_text();
        let identity = json!({
            "location": "lab 1, rack 3",
            "queues": queues,
            "provision_type": "noprovision",
            "identifier": format!("{}-serial", self.name),
        });
        self.post_agent_data(identity).await;
    }

    /// One idle polling cycle (§8 steps 5–9); returns the claim's answer.
    pub async fn poll(&mut self, queues: &[&str]) -> Reply {
        let health = self.get("/v1").await;
        assert_eq!(health.status, StatusCode::OK, "{health:?}");
        assert!(
            health.text().starts_with("Testflinger Server v"),
            "{health:?}"
        );
        self.get_self().await;
        self.post_json("/v1/agents/queues", &advertised(queues))
            .await
            .assert_ok_text();
        for _ in 0..2 {
            let agent = self.get_self().await;
            assert!(agent["restricted_to"].is_object(), "{agent}");
        }
        self.claim(queues).await
    }
}
