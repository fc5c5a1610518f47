//! What every endpoint keeps (SPEC.md §2): the health check, the optional
//! trailing slash, JSON errors for unknown routes, wrong methods (`HEAD` is not
//! a `GET`) and bad path segments, and data a store would change refused
//! alike everywhere.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::*;
use crate::support::*;

#[tokio::test]
async fn version_answers_on_v1_with_and_without_slash() {
    let server = Server::new().await;
    for uri in ["/v1", "/v1/"] {
        let reply = server.get(uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {reply:?}");
        assert!(
            reply.text().starts_with("Testflinger Server v"),
            "{uri}: {reply:?}"
        );
        assert!(
            reply.text().len() > "Testflinger Server v".len(),
            "{uri}: {reply:?}"
        );
        assert!(reply.content_type().starts_with("text/plain"), "{reply:?}");
    }
}

#[tokio::test]
async fn trailing_slash_is_optional() {
    let server = Server::new().await;
    let reply = server
        .post_json("/v1/job/", &json!({"job_queue": "q"}))
        .await;
    let id = reply.ok_json()["job_id"].as_str().unwrap().to_owned();
    let definition = server.get(&format!("/v1/job/{id}/")).await.ok_json();
    assert_eq!(definition["job_id"], json!(id));
    assert_eq!(
        server.result(&format!("{id}/")).await["job_state"],
        json!("waiting")
    );
    let claimed = server.get("/v1/job/?queue=q").await.ok_json();
    assert_eq!(claimed["job_id"], json!(id));
    server
        .post_json("/v1/agents/queues/", &json!({"q": "d"}))
        .await
        .assert_ok_text();
    assert_eq!(
        server.get("/v1/agents/queues/").await.ok_json(),
        json!({"q": "d"})
    );
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn unknown_route_is_404_json() {
    let server = Server::new().await;
    for uri in ["/nope", "/v1/nope", "/v2/job", "/v1/job/x/y/z"] {
        server.get(uri).await.assert_error(StatusCode::NOT_FOUND);
    }
    server
        .post_json("/v1/nope", &json!({}))
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_method_is_405_json() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let cases = [
        (Method::DELETE, "/v1/job".to_owned()),
        (Method::PUT, "/v1/job".to_owned()),
        (Method::POST, "/v1".to_owned()),
        (Method::DELETE, format!("/v1/job/{id}")),
        (Method::GET, format!("/v1/job/{id}/action")),
        (Method::PUT, format!("/v1/result/{id}")),
        (Method::DELETE, format!("/v1/result/{id}/artifact")),
        (Method::DELETE, "/v1/agents/queues".to_owned()),
        (Method::POST, "/v1/agents/images/q".to_owned()),
    ];
    for (method, uri) in cases {
        let reply = server
            .send(request(method.clone(), &uri, None, Body::empty()))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {reply:?}"
        );
        reply.assert_error(StatusCode::METHOD_NOT_ALLOWED);
    }
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
async fn a_bad_path_segment_gets_a_json_400() {
    let server = Server::new().await;
    for uri in [
        "/v1/agents/data/%FF",
        "/v1/queues/%FF/agents",
        "/v1/queues/%FF/jobs",
        "/v1/agents/images/%FF",
    ] {
        server.get(uri).await.assert_error(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn every_error_body_has_message_and_detail() {
    let server = Server::with_config(|c| c.limits.json_body = 1024).await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let cases: Vec<(Reply, StatusCode)> = vec![
        (
            server
                .post_raw("/v1/job", Some("application/json"), "{")
                .await,
            StatusCode::BAD_REQUEST,
        ),
        (
            server.post_json("/v1/job", &json!({})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            server
                .post_json("/v1/job", &json!({"job_queue": "q", "p": "x".repeat(2000)}))
                .await,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            server
                .post_raw("/v1/job", Some("multipart/form-data; boundary=x"), "--x--")
                .await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (server.get("/v1/job").await, StatusCode::BAD_REQUEST),
        (server.get("/v1/job/zzz").await, StatusCode::BAD_REQUEST),
        (cancel(&server, UNKNOWN_ID).await, StatusCode::NOT_FOUND),
        (
            server
                .post_json(&format!("/v1/job/{id}/action"), &json!({"action": "x"}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            server
                .post_json(&format!("/v1/result/{UNKNOWN_ID}"), &json!({}))
                .await,
            StatusCode::NOT_FOUND,
        ),
        (
            server
                .post_raw(&format!("/v1/result/{id}/artifact"), None, "x")
                .await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (server.get("/v1/missing").await, StatusCode::NOT_FOUND),
        (
            server
                .send(request(Method::PATCH, "/v1/job", None, Body::empty()))
                .await,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (reply, status) in cases {
        reply.assert_error(status);
    }
}

#[tokio::test]
async fn data_that_a_store_would_change_is_refused_alike_everywhere() {
    let server = Server::new().await;
    server
        .post_json("/v1/job", &json!({"job_queue": "q", "test_data": {"$numberLong": "5"}, "big": 18446744073709551615u64}))
        .await
        .assert_invalid_fields(&["big", "test_data.$numberLong"]);
    let id = server
        .submit(json!({"job_queue": "q", "kept": {"nested": [1, {"deep": true}]}}))
        .await;
    assert_eq!(
        server.get(&format!("/v1/job/{id}")).await.ok_json()["kept"],
        json!({"nested": [1, {"deep": true}]})
    );
    server
        .post_json(
            &format!("/v1/result/{id}"),
            &json!({"agent_reported_state": "x", "job_state": "test"}),
        )
        .await
        .assert_invalid_fields(&["agent_reported_state"]);
    server
        .post_json(
            "/v1/agents/data/dev",
            &json!({"_id": 5, "meta": {"$set": 1}}),
        )
        .await
        .assert_invalid_fields(&["_id", "meta.$set"]);
}

/// Log lines a test collects from the subscriber it installs.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_backend_failure_is_500_and_logged_once_inside_its_request_span() {
    use testflinger_functions::{app, AppState};
    use testflinger_shared::testing::{open_config, TestEnv};
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // The test runs on one thread: everything it logs goes here.
    let _guard = tracing::subscriber::set_default(subscriber);
    // While a single dispatcher is registered, tracing-core decides whether a
    // span or event is wanted from the default dispatcher of whichever thread
    // reaches it first: another test's thread, with none, would turn the
    // `request` span off for this one too. A second registered dispatcher
    // makes it ask every registered dispatcher instead.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    let env = TestEnv::embedded();
    let router = app(AppState::new(&env.config, open_config(&env.config).await));
    // The store breaks under the server: its agents table is gone.
    let database = env.config.data_dir.join("testflinger.sqlite3");
    rusqlite::Connection::open(database)
        .unwrap()
        .execute_batch("DROP TABLE agents;")
        .unwrap();
    let request = axum::http::Request::builder()
        .uri("/v1/agents/data/dev-01")
        .header("x-request-id", "req-42")
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        !body["message"].as_str().unwrap().contains("agents"),
        "the cause stays out of the answer: {body}"
    );
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("storage backend failure"))
        .collect();
    assert_eq!(failures.len(), 1, "logged once: {log}");
    let line = failures[0];
    for field in [
        "ERROR",
        "request{",
        "method=GET",
        "route=\"agent-data-get\"",
        "request_id=req-42",
        "no such table: agents",
    ] {
        assert!(line.contains(field), "{field:?} missing from {line:?}");
    }
    assert!(
        log.lines().any(|l| l.contains("testflinger::request")
            && l.contains("status=500")
            && l.contains("request_id=req-42")),
        "the answer is logged in the same span: {log}"
    );
}
