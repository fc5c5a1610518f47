//! Contract tests for the job lifecycle beyond the foundation (SPEC.md
//! §4.2 live output), on the same per-test backends as `contract.rs`.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

fn fragment(n: i64, phase: &str, data: &str) -> Value {
    json!({
        "fragment_number": n,
        "timestamp": format!("2026-11-25T10:00:{:02}Z", n.min(59)),
        "phase": phase,
        "log_data": data,
    })
}

async fn post_fragment(server: &Server, id: &str, log_type: &str, body: Value) -> Reply {
    server
        .post_json(&format!("/v1/result/{id}/log/{log_type}"), &body)
        .await
}

#[tokio::test]
async fn log_fragments_come_back_per_phase_with_every_phase_present() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    for (n, phase, data) in [
        (0, "setup", "s0\n"),
        (1, "setup", "s1\n"),
        (2, "test", "t2\n"),
    ] {
        post_fragment(&server, &id, "output", fragment(n, phase, data))
            .await
            .assert_ok_text();
    }
    let view = server
        .get(&format!("/v1/result/{id}/log/output"))
        .await
        .ok_json();
    let phases = view["output"].as_object().unwrap();
    assert_eq!(phases.len(), 7, "every phase is present: {view}");
    assert_eq!(
        view["output"]["setup"],
        json!({"last_fragment_number": 1, "log_data": "s0\ns1\n"})
    );
    assert_eq!(
        view["output"]["test"],
        json!({"last_fragment_number": 2, "log_data": "t2\n"})
    );
    assert_eq!(
        view["output"]["provision"],
        json!({"last_fragment_number": -1, "log_data": ""})
    );
}

#[tokio::test]
async fn start_fragment_counts_across_phases_as_the_cli_polls() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    for (n, phase) in [(0, "setup"), (1, "provision"), (2, "test"), (3, "test")] {
        post_fragment(
            &server,
            &id,
            "output",
            fragment(n, phase, &format!("f{n} ")),
        )
        .await
        .assert_ok_text();
    }
    let view = server
        .get(&format!("/v1/result/{id}/log/output?start_fragment=2"))
        .await
        .ok_json();
    assert_eq!(
        view["output"]["test"],
        json!({"last_fragment_number": 3, "log_data": "f2 f3 "})
    );
    assert_eq!(
        view["output"]["setup"],
        json!({"last_fragment_number": -1, "log_data": ""})
    );
    // The CLI's next poll starts after the highest number it saw.
    let next = server
        .get(&format!("/v1/result/{id}/log/output?start_fragment=4"))
        .await
        .ok_json();
    assert!(next["output"]
        .as_object()
        .unwrap()
        .values()
        .all(|p| p["last_fragment_number"] == json!(-1)));
}

#[tokio::test]
async fn phase_and_start_timestamp_narrow_the_answer() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    for (n, phase) in [(0, "setup"), (10, "test"), (20, "test")] {
        post_fragment(&server, &id, "serial", fragment(n, phase, &format!("{n};")))
            .await
            .assert_ok_text();
    }
    let view = server
        .get(&format!(
            "/v1/result/{id}/log/serial?phase=test&start_timestamp=2026-11-25T10:00:15Z"
        ))
        .await
        .ok_json();
    assert_eq!(
        view,
        json!({"serial": {"test": {"last_fragment_number": 20, "log_data": "20;"}}})
    );
}

#[tokio::test]
async fn a_resent_fragment_changes_nothing() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    post_fragment(&server, &id, "output", fragment(0, "test", "first"))
        .await
        .assert_ok_text();
    post_fragment(&server, &id, "output", fragment(0, "test", "first"))
        .await
        .assert_ok_text();
    post_fragment(&server, &id, "output", fragment(0, "test", "other"))
        .await
        .assert_ok_text();
    let view = server
        .get(&format!("/v1/result/{id}/log/output?phase=test"))
        .await
        .ok_json();
    assert_eq!(
        view["output"]["test"],
        json!({"last_fragment_number": 0, "log_data": "first"})
    );
}

#[tokio::test]
async fn an_unknown_log_type_is_404_never_500() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    post_fragment(&server, &id, "console", fragment(0, "test", "x"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .get(&format!("/v1/result/{id}/log/console"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_fragments_and_queries_are_422() {
    let server = Server::with_config(|c| c.limits.log_fragment = 8).await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    post_fragment(
        &server,
        &id,
        "output",
        json!({"fragment_number": -1, "timestamp": "soon", "phase": "lunch"}),
    )
    .await
    .assert_invalid_fields(&["fragment_number", "log_data", "phase", "timestamp"]);
    post_fragment(&server, &id, "output", fragment(0, "test", "123456789"))
        .await
        .assert_invalid_fields(&["log_data"]);
    let reply = server
        .get(&format!(
            "/v1/result/{id}/log/output?start_fragment=x&phase=lunch"
        ))
        .await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&String> = body["detail"]["query"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(fields, ["phase", "start_fragment"]);
}

#[tokio::test]
async fn a_fragment_for_an_unknown_job_is_404_and_a_bad_id_400() {
    let server = Server::new().await;
    post_fragment(&server, UNKNOWN_ID, "output", fragment(0, "test", "x"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    post_fragment(&server, "nope", "output", fragment(0, "test", "x"))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_result_carries_each_phase_log() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    post_fragment(&server, &id, "output", fragment(0, "setup", "hello "))
        .await
        .assert_ok_text();
    post_fragment(&server, &id, "output", fragment(1, "setup", "world"))
        .await
        .assert_ok_text();
    post_fragment(&server, &id, "serial", fragment(0, "test", "console"))
        .await
        .assert_ok_text();
    server
        .post_result(&id, json!({"status": {"setup": 0}}))
        .await;
    let result = server.result(&id).await;
    assert_eq!(result["setup_output"], json!("hello world"));
    assert_eq!(result["test_serial"], json!("console"));
    assert_eq!(result["setup_status"], json!(0));
    assert!(result.get("test_output").is_none(), "{result}");
}

#[tokio::test]
async fn legacy_output_is_appended_and_each_read_consumes_it() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server
        .get(&format!("/v1/result/{id}/output"))
        .await
        .assert_no_content();
    for chunk in ["one\n", "two\n"] {
        server
            .post_raw(
                &format!("/v1/result/{id}/output"),
                Some("text/plain"),
                chunk,
            )
            .await
            .assert_ok_text();
    }
    server
        .post_raw(&format!("/v1/result/{id}/serial_output"), None, "serial\n")
        .await
        .assert_ok_text();
    let read = server.get(&format!("/v1/result/{id}/output")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.text(), "one\ntwo\n");
    server
        .get(&format!("/v1/result/{id}/output"))
        .await
        .assert_no_content();
    assert_eq!(
        server
            .get(&format!("/v1/result/{id}/serial_output"))
            .await
            .text(),
        "serial\n"
    );
    server
        .get(&format!("/v1/result/{id}/serial_output"))
        .await
        .assert_no_content();
    server
        .post_raw(&format!("/v1/result/{UNKNOWN_ID}/output"), None, "x")
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn oidc_auth_init_is_404_so_the_cli_goes_on_anonymously() {
    let server = Server::new().await;
    server
        .post_json("/oidc/auth-init", &json!({}))
        .await
        .assert_error(StatusCode::NOT_FOUND);
}
