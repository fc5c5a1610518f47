//! Contract tests for the job lifecycle beyond the foundation (SPEC.md
//! §4.2 live output), on the same per-test backends as `contract.rs`.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

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

// ---------------------------------------------------------------- agents and queues

#[tokio::test]
async fn agent_data_sets_the_cookie_and_checks_fields() {
    let server = Server::new().await;
    let reply = server
        .post_json(
            "/v1/agents/data/dev-1",
            &json!({"state": "waiting", "queues": ["q"], "log": ["booted"]}),
        )
        .await;
    assert_eq!(reply.ok_json(), json!({"status": "OK"}));
    assert_eq!(
        reply.headers["set-cookie"],
        "agent_name=dev-1; HttpOnly; Path=/; SameSite=Strict"
    );
    server
        .post_json(
            "/v1/agents/data/dev-1",
            &json!({"state": 3, "queues": "q", "updated_at": "x"}),
        )
        .await
        .assert_invalid_fields(&["queues", "state", "updated_at"]);
    server
        .post_json("/v1/agents/data/a;b", &json!({"state": "waiting"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST);

    let listed = server.get("/v1/agents/data").await.ok_json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        listed[0].get("log").is_none(),
        "the list leaves logs out: {listed}"
    );
    assert_eq!(listed[0]["restricted_to"], json!({}));
    let one = server.get("/v1/agents/data/dev-1").await.ok_json();
    assert_eq!(one["log"], json!(["booted"]));
    assert_eq!(one["state"], json!("waiting"));
    assert!(is_rfc3339_utc(one["updated_at"].as_str().unwrap()));
    server
        .get("/v1/agents/data/nobody")
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_provision_log_for_an_unknown_agent_is_404_and_writes_nothing() {
    let server = Server::new().await;
    let entry = json!({"job_id": UNKNOWN_ID, "exit_code": 1, "detail": "provision_fail"});
    server
        .post_json("/v1/agents/provision_logs/ghost", &entry)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .get("/v1/agents/data/ghost")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .post_json(
            "/v1/agents/provision_logs/ghost",
            &json!({"exit_code": "x"}),
        )
        .await
        .assert_invalid_fields(&["exit_code", "job_id"]);
    server
        .post_json("/v1/agents/data/dev", &json!({"state": "waiting"}))
        .await
        .ok_json();
    server
        .post_json("/v1/agents/provision_logs/dev", &entry)
        .await
        .assert_ok_text();
    let agent = server.get("/v1/agents/data/dev").await.ok_json();
    assert_eq!(agent["provision_streak_type"], json!("fail"));
    assert_eq!(agent["provision_streak_count"], json!(1));
}

#[tokio::test]
async fn a_queue_exists_when_an_agent_lists_it() {
    let server = Server::new().await;
    let reply = server.get("/v1/queues/lab-q/agents").await;
    assert_eq!(
        reply.assert_error(StatusCode::NOT_FOUND)["message"],
        json!("Queue 'lab-q' does not exist.")
    );
    server
        .post_json(
            "/v1/agents/data/dev",
            &json!({"state": "waiting", "queues": ["lab-q"]}),
        )
        .await
        .ok_json();
    let agents = server.get("/v1/queues/lab-q/agents").await.ok_json();
    assert_eq!(agents[0]["name"], json!("dev"));
    server
        .get("/v1/queues/lab-q/jobs")
        .await
        .assert_no_content();
    let id = server.submit(json!({"job_queue": "lab-q"})).await;
    let jobs = server.get("/v1/queues/lab-q/jobs").await.ok_json();
    assert_eq!(
        jobs,
        json!([{"job_id": id, "created_at": jobs[0]["created_at"], "job_state": "waiting", "job_queue": "lab-q"}])
    );
}

#[tokio::test]
async fn wait_times_cover_claimed_queues_only() {
    let server = Server::new().await;
    assert_eq!(
        server.get("/v1/queues/wait_times").await.ok_json(),
        json!({})
    );
    server.submit(json!({"job_queue": "a"})).await;
    server.submit(json!({"job_queue": "b"})).await;
    server.claim_one("queue=a").await;
    server.claim_one("queue=b").await;
    let all = server.get("/v1/queues/wait_times").await.ok_json();
    assert_eq!(all.as_object().unwrap().len(), 2);
    let keys: Vec<&String> = all["a"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["5", "10", "50", "90", "95"]);
    assert!(all["a"]["50"].as_f64().unwrap() >= 0.0);
    let only_a = server.get("/v1/queues/wait_times?queue=a").await.ok_json();
    assert_eq!(
        only_a.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["a"]
    );
}

#[tokio::test]
async fn position_is_410_once_a_job_is_not_waiting() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let reply = server.get(&format!("/v1/job/{id}/position")).await;
    assert_eq!((reply.status, reply.text()), (StatusCode::OK, "0"));
    server.claim_one("queue=q").await;
    server
        .get(&format!("/v1/job/{id}/position"))
        .await
        .assert_error(StatusCode::GONE);
    server
        .get(&format!("/v1/job/{UNKNOWN_ID}/position"))
        .await
        .assert_error(StatusCode::GONE);
    server
        .get("/v1/job/nope/position")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn search_parameters_are_checked() {
    let server = Server::new().await;
    let body = server
        .get("/v1/job/search?match=some&limit=0")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&String> = body["detail"]["query"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(fields, ["limit", "match"]);
    assert_eq!(server.get("/v1/job/search").await.ok_json(), json!([]));
}

#[tokio::test]
async fn attachments_are_only_for_jobs_that_declare_them() {
    let server = Server::new().await;
    let plain = server.submit(json!({"job_queue": "q"})).await;
    let body = multipart(BOUNDARY, &[("file", Some("a.tar.gz"), b"data")]);
    server
        .post_raw(
            &format!("/v1/job/{plain}/attachments"),
            Some(&multipart_type()),
            body.clone(),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    server
        .post_raw(
            &format!("/v1/job/{UNKNOWN_ID}/attachments"),
            Some(&multipart_type()),
            body.clone(),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .get(&format!("/v1/job/{plain}/attachments"))
        .await
        .assert_no_content();

    // A job waiting for attachments that is cancelled no longer takes them.
    let waiting = server
        .submit(json!({"job_queue": "q", "test_data": {"attachments": [{"agent": "f"}]}}))
        .await;
    server
        .post_json(
            &format!("/v1/job/{waiting}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_ok_text();
    server
        .post_raw(
            &format!("/v1/job/{waiting}/attachments"),
            Some(&multipart_type()),
            body,
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
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
