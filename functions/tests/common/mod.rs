//! Helpers of the API tests (`api/`) and the replays: a router over its own
//! backends, requests, replies with assertions, multipart bodies; in
//! [`replay`], the real clients' requests.

#![allow(dead_code)]

pub mod replay;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;
use testflinger_functions::{app, App, AppState};
use testflinger_shared::auth::hash_secret;
use testflinger_shared::clients::Client;
use testflinger_shared::config::Config;
use testflinger_shared::role::{AuthMode, Role};
use testflinger_shared::secrets::SecretsKey;
use testflinger_shared::testing::{open_config, TestEnv};
use tower::ServiceExt;
use uuid::Uuid;

/// A router over its own backends, which live as long as the server.
pub struct Server {
    pub app: App,
    pub state: AppState,
    _env: TestEnv,
}

/// The signing key of servers made by [`Server::with_auth`].
pub const SIGNING_KEY: &str = "a test signing key, long enough";
/// Their secrets key (base64 of 32 bytes).
pub const SECRETS_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

impl Server {
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::with_env(TestEnv::from_env(), adjust).await
    }

    /// A server over the backends of `env`, whatever the environment asks.
    pub async fn with_env(env: TestEnv, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = env.config.clone();
        adjust(&mut config);
        let backends = open_config(&config).await;
        let state = AppState::new(&config, backends);
        Server {
            app: app(state.clone()),
            state,
            _env: env,
        }
    }

    /// A server that issues tokens, in `mode`, with secrets enabled.
    pub async fn with_auth(mode: AuthMode) -> Self {
        Self::with_config(|config| {
            config.auth.mode = mode;
            config.auth.signing_key = Some(SIGNING_KEY.into());
            config.auth.secrets_key = Some(SecretsKey::from_base64(SECRETS_KEY).unwrap());
        })
        .await
    }

    /// Writes a client straight to the store (as `create-client` does);
    /// `adjust` sets its permissions.
    pub async fn add_client(
        &self,
        client_id: &str,
        secret: &str,
        role: Role,
        adjust: impl FnOnce(&mut Client),
    ) {
        let mut client = Client::new(client_id, hash_secret(secret), role);
        adjust(&mut client);
        self.state.app.store().put_client(&client).await.unwrap();
    }

    /// `POST /v1/oauth2/token` with HTTP Basic; returns the whole answer.
    pub async fn login(&self, client_id: &str, secret: &str) -> Reply {
        use base64::Engine;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
        let mut req = request(Method::POST, "/v1/oauth2/token", None, Body::empty());
        req.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        self.send(req).await
    }

    /// A client with `role` and the access token it logs in with.
    pub async fn client_token(
        &self,
        client_id: &str,
        role: Role,
        adjust: impl FnOnce(&mut Client),
    ) -> String {
        let secret = format!("{client_id}-secret-of-length");
        self.add_client(client_id, &secret, role, adjust).await;
        let reply = self.login(client_id, &secret).await;
        reply.ok_json()["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// Any request, with a bearer token and/or a JSON body.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
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
        self.send(req).await
    }

    /// Submits a job with a token; it must be accepted. Returns its id.
    pub async fn submit_with(&self, job: Value, token: &str) -> String {
        let reply = self
            .call(Method::POST, "/v1/job", Some(token), Some(&job))
            .await;
        reply.ok_json()["job_id"]
            .as_str()
            .expect("job_id")
            .to_owned()
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        send(self.app.clone(), request).await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(request(Method::GET, uri, None, Body::empty()))
            .await
    }

    pub async fn get_as(&self, uri: &str, agent: &str) -> Reply {
        let mut req = request(Method::GET, uri, None, Body::empty());
        req.headers_mut().insert(
            header::COOKIE,
            format!("agent_name={agent}").parse().unwrap(),
        );
        self.send(req).await
    }

    pub async fn post_json(&self, uri: &str, body: &Value) -> Reply {
        self.post_raw(uri, Some("application/json"), body.to_string())
            .await
    }

    pub async fn post_raw(
        &self,
        uri: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        self.send(request(Method::POST, uri, content_type, body.into()))
            .await
    }

    /// Submits a job that must be accepted; returns its id.
    pub async fn submit(&self, job: Value) -> String {
        let reply = self.post_json("/v1/job", &job).await;
        assert_eq!(reply.status, StatusCode::OK, "submit {job}: {reply:?}");
        let id = reply.json()["job_id"]
            .as_str()
            .expect("job_id is a string")
            .to_owned();
        Uuid::parse_str(&id).expect("job_id is a UUID");
        id
    }

    /// Claims one job that must be there; returns the claim answer.
    pub async fn claim_one(&self, query: &str) -> Value {
        let reply = self.get(&format!("/v1/job?{query}")).await;
        assert_eq!(reply.status, StatusCode::OK, "claim {query}: {reply:?}");
        reply.json()
    }

    pub async fn result(&self, id: &str) -> Value {
        let reply = self.get(&format!("/v1/result/{id}")).await;
        assert_eq!(reply.status, StatusCode::OK, "result {id}: {reply:?}");
        reply.json()
    }

    pub async fn post_result(&self, id: &str, body: Value) {
        let reply = self.post_json(&format!("/v1/result/{id}"), &body).await;
        reply.assert_ok_text();
    }
}

pub fn request(method: Method, uri: &str, content_type: Option<&str>, body: Body) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(body).expect("a valid request")
}

pub async fn send(app: App, request: Request<Body>) -> Reply {
    let response = app.oneshot(request).await.expect("the router never fails");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a readable body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} {}",
            self.status,
            self.headers.get(header::CONTENT_TYPE),
            String::from_utf8_lossy(&self.body[..self.body.len().min(2000)])
        )
    }
}

impl Reply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("expected a JSON body ({e}): {self:?}"))
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// 200 with a JSON body; returns it.
    pub fn ok_json(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        assert!(
            self.content_type().starts_with("application/json"),
            "{self:?}"
        );
        self.json()
    }

    /// 200 with the plain-text body `OK`.
    pub fn assert_ok_text(&self) {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        assert_eq!(self.text(), "OK", "{self:?}");
        assert!(self.content_type().starts_with("text/plain"), "{self:?}");
    }

    /// 204 with an empty body.
    pub fn assert_no_content(&self) {
        assert_eq!(self.status, StatusCode::NO_CONTENT, "{self:?}");
        assert!(self.body.is_empty(), "{self:?}");
    }

    /// An error of `status` with the JSON body `{"message": str, "detail": ...}`;
    /// returns the body.
    pub fn assert_error(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.content_type().starts_with("application/json"),
            "an error body is JSON: {self:?}"
        );
        let body = self.json();
        let message = body["message"].as_str().unwrap_or_else(|| {
            panic!("an error body has a string message: {self:?}");
        });
        assert!(!message.is_empty(), "{self:?}");
        assert!(
            body.get("detail").is_some(),
            "an error body has a detail: {self:?}"
        );
        body
    }

    /// A 422 whose `detail.json` names exactly `fields`; returns the body.
    pub fn assert_invalid_fields(&self, fields: &[&str]) -> Value {
        let body = self.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
        let named = body["detail"]["json"]
            .as_object()
            .unwrap_or_else(|| panic!("detail.json is an object: {self:?}"));
        let mut named: Vec<&str> = named.keys().map(String::as_str).collect();
        named.sort_unstable();
        let mut expected = fields.to_vec();
        expected.sort_unstable();
        assert_eq!(named, expected, "{self:?}");
        for (field, problems) in body["detail"]["json"].as_object().unwrap() {
            let problems = problems
                .as_array()
                .unwrap_or_else(|| panic!("{field}: a list of problems: {self:?}"));
            assert!(
                !problems.is_empty() && problems.iter().all(|p| p.is_string()),
                "{field}: {self:?}"
            );
        }
        body
    }
}

/// A multipart/form-data body with CRLF line endings.
pub fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(filename) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

pub const BOUNDARY: &str = "------------------------contract7d1e";

pub fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Uploads `content` as the artifact of `id` in the field `file`.
pub async fn upload_artifact(server: &Server, id: &str, content: &[u8]) -> Reply {
    let body = multipart(BOUNDARY, &[("file", Some("a.tgz"), content)]);
    server
        .post_raw(
            &format!("/v1/result/{id}/artifact"),
            Some(&multipart_type()),
            body,
        )
        .await
}

/// Some bytes that are not text, so that a mangled upload shows.
pub fn binary(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS[.fff...]Z`
pub fn is_rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| range.into_iter().all(|i| b[i].is_ascii_digit());
    if b.len() < 20 || !text.ends_with('Z') {
        return false;
    }
    let head = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let rest = &text[19..text.len() - 1];
    let fraction = rest.is_empty()
        || (rest.len() > 1
            && rest.starts_with('.')
            && rest[1..].bytes().all(|c| c.is_ascii_digit()));
    head && fraction
}

pub const UNKNOWN_ID: &str = "0b6f3c1e-8a0e-4d0b-9a43-3f2ad1f0c001";
