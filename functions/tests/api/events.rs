//! The job events relay (SPEC.md §8): an agent's events go to the job's own
//! webhooks, only where the configuration trusts them, with the configured
//! token, bounded retries and a timeout; a single webhook's answer comes back,
//! several webhooks' as a summary. Mattermost webhooks get a line of text.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use testflinger_shared::role::AuthMode;
use testflinger_shared::secrets::SecretsKey;

use crate::common::*;
use crate::support::*;

/// How the test webhook answers.
#[derive(Clone, Copy)]
enum HookAnswer {
    Status(u16),
    Sleep(Duration),
}

/// One request the webhook received: its method, path and query, JSON body
/// and `Authorization` header.
#[derive(Debug, Clone)]
struct HookCall {
    method: Method,
    uri: String,
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
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    calls.lock().unwrap().push(HookCall {
        method,
        uri: uri.to_string(),
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

/// A webhook on 127.0.0.1 and a free port, answering PUT and POST /hook.
async fn start_hook(answer: HookAnswer) -> Hook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::put(hook_handler).post(hook_handler))
        .with_state((calls.clone(), answer));
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Hook { port, calls }
}

/// A standard-mode server that relays to `webhook_url` with "hook-token".
async fn relay_server(webhook_url: Option<String>) -> Server {
    relay_server_trusting(webhook_url, Vec::new()).await
}

/// A standard-mode server that relays to `webhook_url` and `webhook_urls`
/// (`WEBHOOK_URL`, `WEBHOOK_URLS`) with "hook-token".
async fn relay_server_trusting(webhook_url: Option<String>, webhook_urls: Vec<String>) -> Server {
    Server::with_config(|config| {
        config.auth.mode = AuthMode::Standard;
        config.auth.signing_key = Some(SIGNING_KEY.into());
        config.auth.secrets_key = Some(SecretsKey::from_base64(SECRETS_KEY).unwrap());
        config.auth.webhook_url = webhook_url;
        config.auth.webhook_urls = webhook_urls;
        config.auth.webhook_auth = Some("hook-token".into());
    })
    .await
}

/// The base URL a hook is trusted by.
fn base(hook: &Hook) -> String {
    format!("http://127.0.0.1:{}", hook.port)
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

/// A job submitted, and claimed by the agent of `agent` (only the client
/// that claimed a job posts its events); its id.
async fn submit_claimed(server: &Server, agent: &str, job: Value) -> String {
    let queue = job["job_queue"].as_str().unwrap().to_owned();
    let id = server.submit(job).await;
    let claimed = claim(server, &queue, Some(agent), Some("a1"))
        .await
        .ok_json();
    assert_eq!(claimed["job_id"], json!(id));
    id
}

/// A job whose webhook is `webhook`, and its events posted by an agent.
async fn relay(server: &Server, webhook: &str) -> Reply {
    let agent = agent_token(server).await;
    let id = submit_claimed(
        server,
        &agent,
        json!({"job_queue": "q", "job_status_webhook": webhook}),
    )
    .await;
    post_events(server, &agent, &id, &events_body(webhook)).await
}

/// A job whose `job_status_webhook` is `webhooks` (a URL, an object or a
/// list), and its events posted by an agent with addresses of its own in
/// the body (never used); the job's id and the answer.
async fn relay_to(server: &Server, webhooks: Value) -> (String, Reply) {
    let agent = agent_token(server).await;
    let id = submit_claimed(
        server,
        &agent,
        json!({"job_queue": "q", "job_status_webhook": webhooks}),
    )
    .await;
    let mut body = events_body("http://127.0.0.1:9/not-this-one");
    body["job_status_webhooks"] = json!(["http://127.0.0.1:9/nor-this-one"]);
    let reply = post_events(server, &agent, &id, &body).await;
    (id, reply)
}

/// The events as the default webhooks receive them.
fn relayed_events() -> Value {
    json!({
        "agent_id": "a1",
        "job_queue": "q",
        "events": [
            {"event_name": "job_start", "timestamp": "2026-11-25T10:00:00Z", "detail": ""},
        ],
    })
}

// ---------------------------------------------------------------- relayed

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

// ---------------------------------------------------------------- refused

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
    let id = submit_claimed(
        &server,
        &agent,
        json!({"job_queue": "q", "job_status_webhook": untrusted}),
    )
    .await;
    post_events(&server, &agent, &id, &events_body(&hook.url()))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    assert!(hook.calls().is_empty(), "{:?}", hook.calls());
}

#[tokio::test]
async fn job_events_need_the_jobs_own_webhook() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    let agent = agent_token(&server).await;
    let id = submit_claimed(&server, &agent, json!({"job_queue": "q"})).await;
    post_events(&server, &agent, &id, &events_body(&hook.url()))
        .await
        .assert_invalid_fields(&["job_status_webhook"]);
    assert!(hook.calls().is_empty());
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
    let id = submit_claimed(
        &server,
        &agent,
        json!({"job_queue": "q", "job_status_webhook": hook.url()}),
    )
    .await;
    let mut body = events_body(&hook.url());
    body["events"] = json!({"event_name": "job_start"});
    post_events(&server, &agent, &id, &body)
        .await
        .assert_invalid_fields(&["events"]);
    assert!(hook.calls().is_empty());
}

// ---------------------------------------------------------------- a failing webhook

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
async fn a_webhook_refusing_our_token_is_a_bad_gateway_not_a_401() {
    // A 401 would make the agent refresh its own token and replay.
    let hook = start_hook(HookAnswer::Status(401)).await;
    let server = relay_server(Some(format!("http://127.0.0.1:{}", hook.port))).await;
    relay(&server, &hook.url())
        .await
        .assert_error(StatusCode::BAD_GATEWAY);
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

// ---------------------------------------------------------------- typed and several webhooks

#[tokio::test]
async fn job_events_go_to_every_webhook_of_a_list() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(base(&hook))).await;
    let (_, reply) = relay_to(
        &server,
        json!([
            format!("{}?n=0", hook.url()),
            {"url": format!("{}?n=1", hook.url()), "type": "default"},
        ]),
    )
    .await;
    assert_eq!(
        reply.ok_json(),
        json!({
            "status": "OK",
            "delivered": 2,
            "failed": 0,
            "webhooks": [
                {"index": 0, "type": "default", "delivered": true, "status": 200},
                {"index": 1, "type": "default", "delivered": true, "status": 200},
            ],
        })
    );
    let mut calls = hook.calls();
    calls.sort_by(|a, b| a.uri.cmp(&b.uri));
    assert_eq!(calls.len(), 2, "{calls:?}");
    for (call, uri) in calls.iter().zip(["/hook?n=0", "/hook?n=1"]) {
        assert_eq!(call.uri, uri);
        assert_eq!(call.method, Method::PUT);
        assert_eq!(
            call.body,
            relayed_events(),
            "no address of the body is passed on"
        );
        assert_eq!(call.authorization.as_deref(), Some("Bearer hook-token"));
    }
}

#[tokio::test]
async fn a_mattermost_webhook_gets_a_post_of_text_without_credentials() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(base(&hook))).await;
    let (id, reply) = relay_to(&server, json!({"url": hook.url(), "type": "mattermost"})).await;
    assert_eq!(
        reply.ok_json(),
        json!({
            "status": "OK",
            "delivered": 1,
            "failed": 0,
            "webhooks": [{"index": 0, "type": "mattermost", "delivered": true, "status": 200}],
        })
    );
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, Method::POST);
    assert_eq!(calls[0].authorization, None, "the URL is its own secret");
    assert_eq!(
        calls[0].body,
        json!({"text": format!("Testflinger job {id} on q: job_start")})
    );
}

#[tokio::test]
async fn default_and_mattermost_webhooks_of_one_job_are_each_spoken_to_in_their_way() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(base(&hook))).await;
    let agent = agent_token(&server).await;
    let id = submit_claimed(
        &server,
        &agent,
        json!({
            "job_queue": "q",
            "job_status_webhook": [
                {"url": format!("{}?to=chat", hook.url()), "type": "mattermost"},
                format!("{}?to=ci", hook.url()),
            ],
        }),
    )
    .await;
    let mut body = events_body(&hook.url());
    body["events"] = json!([
        {"event_name": "job_start", "timestamp": "2026-11-25T10:00:00Z", "detail": ""},
        {"event_name": "provision_fail", "timestamp": "2026-11-25T10:05:00Z", "detail": "no ssh"},
    ]);
    let summary = post_events(&server, &agent, &id, &body).await.ok_json();
    assert_eq!(summary["delivered"], json!(2), "{summary}");
    let calls = hook.calls();
    let chat = calls.iter().find(|c| c.uri == "/hook?to=chat").unwrap();
    assert_eq!(chat.method, Method::POST);
    assert_eq!(chat.authorization, None);
    assert_eq!(
        chat.body,
        json!({"text": format!("Testflinger job {id} on q: provision_fail: no ssh")})
    );
    let ci = calls.iter().find(|c| c.uri == "/hook?to=ci").unwrap();
    assert_eq!(ci.method, Method::PUT);
    assert_eq!(ci.authorization.as_deref(), Some("Bearer hook-token"));
    assert_eq!(ci.body["events"], body["events"]);
    assert!(ci.body.get("job_status_webhook").is_none(), "{:?}", ci.body);
}

#[tokio::test]
async fn one_failing_webhook_does_not_stop_the_others() {
    let failing = start_hook(HookAnswer::Status(500)).await;
    let working = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server_trusting(Some(base(&failing)), vec![base(&working)]).await;
    let (_, reply) = relay_to(&server, json!([failing.url(), working.url()])).await;
    assert_eq!(
        reply.ok_json(),
        json!({
            "status": "OK",
            "delivered": 1,
            "failed": 1,
            "webhooks": [
                {"index": 0, "type": "default", "delivered": false, "status": 500,
                 "error": "answered 500"},
                {"index": 1, "type": "default", "delivered": true, "status": 200},
            ],
        })
    );
    assert_eq!(failing.calls().len(), 2, "a server error is retried once");
    assert_eq!(working.calls().len(), 1);
}

#[tokio::test]
async fn when_every_webhook_fails_the_relay_is_502() {
    let failing = start_hook(HookAnswer::Status(500)).await;
    let refusing = start_hook(HookAnswer::Status(404)).await;
    let server = relay_server_trusting(None, vec![base(&failing), base(&refusing)]).await;
    let (_, reply) = relay_to(
        &server,
        json!([failing.url(), {"url": refusing.url(), "type": "mattermost"}]),
    )
    .await;
    let body = reply.assert_error(StatusCode::BAD_GATEWAY);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("#0 (default) answered 500")
            && message.contains("#1 (mattermost) answered 404"),
        "{message}"
    );
    assert_eq!(failing.calls().len(), 2);
    assert_eq!(refusing.calls().len(), 1, "a 4xx is not retried");
}

#[tokio::test]
async fn webhooks_are_called_side_by_side_and_all_too_slow_is_504() {
    let slow = start_hook(HookAnswer::Sleep(Duration::from_secs(5))).await;
    let server = relay_server(Some(base(&slow))).await;
    let started = std::time::Instant::now();
    let (_, reply) = relay_to(
        &server,
        json!([
            format!("{}?n=0", slow.url()),
            {"url": format!("{}?n=1", slow.url()), "type": "mattermost"},
        ]),
    )
    .await;
    reply.assert_error(StatusCode::GATEWAY_TIMEOUT);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(9),
        "the webhooks are not waited for one after the other: {elapsed:?}"
    );
    assert_eq!(slow.calls().len(), 4, "{:?}", slow.calls());
}

#[tokio::test]
async fn an_untrusted_webhook_in_a_list_is_skipped_and_a_trusted_one_called() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(base(&hook))).await;
    // The same server by another name: trusted only as 127.0.0.1.
    let untrusted = format!("http://localhost:{}/hook?untrusted", hook.port);
    let (_, reply) = relay_to(&server, json!([untrusted, hook.url()])).await;
    let summary = reply.ok_json();
    assert_eq!(
        summary["webhooks"][0],
        json!({"index": 0, "type": "default", "delivered": false,
               "error": "not on a host this server relays to (WEBHOOK_URL, WEBHOOK_URLS)"})
    );
    assert_eq!(
        summary["webhooks"][1]["delivered"],
        json!(true),
        "{summary}"
    );
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].uri, "/hook");
}

#[tokio::test]
async fn a_list_without_a_trusted_webhook_is_403() {
    let hook = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server(Some(base(&hook))).await;
    let (_, reply) = relay_to(
        &server,
        json!([
            format!("http://localhost:{}/hook", hook.port),
            {"url": format!("https://127.0.0.1:{}/hook", hook.port), "type": "mattermost"},
        ]),
    )
    .await;
    reply.assert_error(StatusCode::FORBIDDEN);
    assert!(hook.calls().is_empty(), "{:?}", hook.calls());
}

#[tokio::test]
async fn webhook_urls_trust_further_hosts() {
    let first = start_hook(HookAnswer::Status(200)).await;
    let second = start_hook(HookAnswer::Status(200)).await;
    let server = relay_server_trusting(Some(base(&first)), vec![base(&second)]).await;
    // A single default webhook on the second host: its answer passes back.
    assert_eq!(
        relay(&server, &second.url()).await.ok_json(),
        json!({"received": true})
    );
    assert_eq!(
        relay(&server, &first.url()).await.ok_json(),
        json!({"received": true})
    );
    assert_eq!(second.calls().len(), 1);
    assert_eq!(first.calls().len(), 1);

    // WEBHOOK_URLS alone is enough.
    let server = relay_server_trusting(None, vec![base(&second)]).await;
    assert_eq!(
        relay(&server, &second.url()).await.ok_json(),
        json!({"received": true})
    );
    relay(&server, &first.url())
        .await
        .assert_error(StatusCode::FORBIDDEN);
    assert_eq!(first.calls().len(), 1);
}

#[tokio::test]
async fn typed_webhooks_are_kept_as_submitted() {
    let server = relay_server(None).await;
    let webhooks = json!([
        "https://ci.example/hook",
        {"url": "https://chat.example/hooks/k", "type": "mattermost"},
        {"url": "https://ci.example/other"},
    ]);
    let id = server
        .submit(json!({"job_queue": "q", "job_status_webhook": webhooks}))
        .await;
    let job = server.get(&format!("/v1/job/{id}")).await.ok_json();
    assert_eq!(job["job_status_webhook"], webhooks);
}

#[tokio::test]
async fn bad_webhooks_are_refused_at_submission_naming_the_field() {
    let server = relay_server(None).await;
    for (webhook, fields) in [
        (
            json!({"url": "https://h.example/x", "type": "slack"}),
            vec!["job_status_webhook.type"],
        ),
        (
            json!(["https://h.example/x", {"url": "https://h.example/y", "type": "irc"}]),
            vec!["job_status_webhook.1.type"],
        ),
        (
            json!([{"url": "https://h.example/x", "token": "t"}]),
            vec!["job_status_webhook.0.token"],
        ),
        (json!({"url": 5}), vec!["job_status_webhook.url"]),
        (
            json!({"type": "mattermost"}),
            vec!["job_status_webhook.url"],
        ),
        (
            json!(["https://h.example/x", 5]),
            vec!["job_status_webhook.1"],
        ),
        (json!([]), vec!["job_status_webhook"]),
        (json!(5), vec!["job_status_webhook"]),
        (json!("ftp://h.example/x"), vec!["job_status_webhook"]),
    ] {
        server
            .post_json(
                "/v1/job",
                &json!({"job_queue": "q", "job_status_webhook": webhook}),
            )
            .await
            .assert_invalid_fields(&fields);
    }
}
