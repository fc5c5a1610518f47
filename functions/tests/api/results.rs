//! Results (SPEC.md §4.2, §6): a job's result, posted and read, and how
//! `job_state` moves the job; live output as numbered log fragments per phase;
//! the legacy output buffers that each read consumes.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::*;
use crate::support::*;

// ---------------------------------------------------------------- results

#[tokio::test]
async fn result_round_trip_of_the_readme() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server
        .post_result(&id, json!({"exit_code": 0, "output": "foo"}))
        .await;
    let result = server.get(&format!("/v1/result/{id}")).await.ok_json();
    assert_eq!(result["exit_code"], json!(0));
    assert_eq!(result["output"], json!("foo"));
    assert_eq!(result["job_state"], json!("waiting"));
}

#[tokio::test]
async fn result_posts_merge_keys() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server
        .post_result(&id, json!({"a": 1, "device_info": {"ip": "10.0.0.1"}}))
        .await;
    server.post_result(&id, json!({"b": "two", "a": 3})).await;
    let result = server.result(&id).await;
    assert_eq!(result["a"], json!(3));
    assert_eq!(result["b"], json!("two"));
    assert_eq!(result["device_info"], json!({"ip": "10.0.0.1"}));
}

#[tokio::test]
async fn result_status_is_replaced_whole_and_shown_as_phase_status() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server
        .post_result(&id, json!({"status": {"setup": 0, "provision": 1}}))
        .await;
    let result = server.result(&id).await;
    assert_eq!(result["setup_status"], json!(0));
    assert_eq!(result["provision_status"], json!(1));

    server
        .post_result(&id, json!({"status": {"test": 2}}))
        .await;
    let result = server.result(&id).await;
    assert_eq!(result["test_status"], json!(2));
    assert!(result.get("setup_status").is_none(), "{result}");
    assert!(result.get("provision_status").is_none(), "{result}");
}

#[tokio::test]
async fn result_job_state_moves_the_job() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server.claim_one("queue=q").await;
    for state in ["setup", "provision", "test", "complete"] {
        server.post_result(&id, json!({"job_state": state})).await;
        assert_eq!(server.result(&id).await["job_state"], json!(state));
    }
}

#[tokio::test]
async fn terminal_states_are_sticky() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server.claim_one("queue=q").await;
    server.post_result(&id, json!({"job_state": "test"})).await;
    cancel(&server, &id).await.assert_ok_text();
    server
        .post_result(&id, json!({"job_state": "complete"}))
        .await;
    let result = server.result(&id).await;
    assert_eq!(result["job_state"], json!("cancelled"));
    assert_eq!(result["agent_reported_state"], json!("complete"));
}

#[tokio::test]
async fn a_complete_job_stays_complete() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server.claim_one("queue=q").await;
    server
        .post_result(&id, json!({"job_state": "complete"}))
        .await;
    server.post_result(&id, json!({"job_state": "test"})).await;
    assert_eq!(server.result(&id).await["job_state"], json!("complete"));
}

#[tokio::test]
async fn result_for_unknown_job_is_404() {
    let server = Server::new().await;
    server
        .post_json(
            &format!("/v1/result/{UNKNOWN_ID}"),
            &json!({"exit_code": 0}),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn result_with_a_bad_status_is_422() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let uri = format!("/v1/result/{id}");
    server
        .post_json(&uri, &json!({"status": 5}))
        .await
        .assert_invalid_fields(&["status"]);
    server
        .post_json(&uri, &json!({"status": "ok"}))
        .await
        .assert_invalid_fields(&["status"]);
    server
        .post_json(&uri, &json!({"status": {"test": "x"}}))
        .await
        .assert_invalid_fields(&["status.test"]);
    // Nothing of those was stored.
    let result = server.result(&id).await;
    assert!(result.get("test_status").is_none(), "{result}");
    assert!(result.get("status").is_none(), "{result}");
}

#[tokio::test]
async fn result_with_a_bad_job_state_or_device_info_is_422() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let uri = format!("/v1/result/{id}");
    for state in [json!(""), json!(3), json!(null), json!(["test"])] {
        server
            .post_json(&uri, &json!({"job_state": state}))
            .await
            .assert_invalid_fields(&["job_state"]);
    }
    server
        .post_json(&uri, &json!({"device_info": "x"}))
        .await
        .assert_invalid_fields(&["device_info"]);
    server
        .post_json(
            &uri,
            &json!({"device_info": 1, "job_state": 2, "status": {"test": "x"}}),
        )
        .await
        .assert_invalid_fields(&["device_info", "job_state", "status.test"]);
    assert_eq!(server.result(&id).await["job_state"], json!("waiting"));
}

#[tokio::test]
async fn result_not_an_object_is_422() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    for body in ["[1]", "\"x\"", "7"] {
        server
            .post_raw(&format!("/v1/result/{id}"), Some("application/json"), body)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn result_malformed_json_is_400() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server
        .post_raw(
            &format!("/v1/result/{id}"),
            Some("application/json"),
            "{\"exit_code\": ",
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn result_over_the_limit_is_413() {
    let server = Server::with_config(|c| c.limits.json_body = 1024).await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server
        .post_json(
            &format!("/v1/result/{id}"),
            &json!({"output": "y".repeat(2000)}),
        )
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    let result = server.result(&id).await;
    assert!(result.get("output").is_none(), "{result}");
}

#[tokio::test]
async fn get_result_of_unknown_job_is_204() {
    let server = Server::new().await;
    server
        .get(&format!("/v1/result/{UNKNOWN_ID}"))
        .await
        .assert_no_content();
}

#[tokio::test]
async fn get_result_with_a_bad_id_is_400() {
    let server = Server::new().await;
    server
        .get("/v1/result/not-a-uuid")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .post_json("/v1/result/not-a-uuid", &json!({"exit_code": 0}))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------- live output: log fragments

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

// ---------------------------------------------------------------- legacy output

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

// ---------------------------------------------------------------- status

#[tokio::test]
async fn status_answers_the_state_and_phase_exit_codes_without_logs() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let status = server
        .get(&format!("/v1/result/{id}/status"))
        .await
        .ok_json();
    assert_eq!(status, json!({"job_state": "waiting"}));
    server.claim_one("queue=q").await;
    server
        .post_result(
            &id,
            json!({"job_state": "test", "status": {"setup": 0, "provision": 1, "not_a_phase": 3}, "other": "x"}),
        )
        .await;
    let body = json!({"fragment_number": 0, "timestamp": "2026-11-25T00:00:00Z", "phase": "test", "log_data": "out"});
    server
        .post_json(&format!("/v1/result/{id}/log/output"), &body)
        .await
        .assert_ok_text();
    let status = server
        .get(&format!("/v1/result/{id}/status"))
        .await
        .ok_json();
    assert_eq!(
        status,
        json!({"job_state": "test", "setup_status": 0, "provision_status": 1})
    );
}

#[tokio::test]
async fn status_of_an_unknown_job_is_204_and_a_bad_id_400() {
    let server = Server::new().await;
    server
        .get(&format!("/v1/result/{}/status", uuid::Uuid::new_v4()))
        .await
        .assert_no_content();
    server
        .get("/v1/result/not-a-uuid/status")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn status_shows_a_cancel_to_the_agent_polling_it() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server.claim_one("queue=q").await;
    server
        .post_json(
            &format!("/v1/job/{id}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_ok_text();
    let status = server
        .get(&format!("/v1/result/{id}/status"))
        .await
        .ok_json();
    assert_eq!(status["job_state"], json!("cancelled"));
}

#[tokio::test]
async fn a_chunk_of_the_agents_largest_size_is_kept_whatever_its_characters() {
    // The agent cuts logs into chunks of 1,048,576 characters and never
    // retries a refused one: in non-ASCII text that is up to 4 MiB of UTF-8.
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    for (n, character) in ["é", "€", "𝄞"].into_iter().enumerate() {
        let chunk = character.repeat(1_048_576);
        let body = json!({"fragment_number": n, "timestamp": "2026-11-25T00:00:00Z", "phase": "test", "log_data": chunk});
        server
            .post_json(&format!("/v1/result/{id}/log/serial"), &body)
            .await
            .assert_ok_text();
    }
    let log = server
        .get(&format!("/v1/result/{id}/log/serial?phase=test"))
        .await
        .ok_json();
    let text = log["serial"]["test"]["log_data"].as_str().unwrap();
    assert_eq!(text.chars().count(), 3 * 1_048_576);
    assert_eq!(log["serial"]["test"]["last_fragment_number"], json!(2));
}

// ---------------------------------------------------------------- bounded results

#[tokio::test]
async fn concurrent_result_posts_of_different_keys_all_survive() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let large: serde_json::Map<String, Value> = (0..500)
        .map(|i| (format!("stored_{i}"), json!("x".repeat(1024))))
        .collect();
    server.post_result(&id, Value::Object(large.clone())).await;
    let uri = format!("/v1/result/{id}");
    let posts = (0..16).map(|i| {
        let body = json!({ format!("patch_{i}"): i, "status": {"test": i} });
        let uri = uri.clone();
        let server = &server;
        async move { server.post_json(&uri, &body).await }
    });
    for reply in futures::future::join_all(posts).await {
        reply.assert_ok_text();
    }
    let result = server.result(&id).await;
    for i in 0..16 {
        assert_eq!(result[&format!("patch_{i}")], json!(i));
    }
    for (key, value) in &large {
        assert_eq!(&result[key], value, "{key} unchanged");
    }
    assert!(result["test_status"].is_i64(), "{}", result["test_status"]);
}

#[tokio::test]
async fn a_result_answers_the_tail_of_long_logs_marked_as_cut() {
    let server = Server::with_config(|config| config.limits.result_log_tail = 1_000).await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server
        .post_result(&id, json!({"status": {"setup": 0}}))
        .await;
    post_fragment(&server, &id, "output", fragment(0, "setup", "set up\n"))
        .await
        .assert_ok_text();
    let mut whole = String::new();
    for n in 1..=10 {
        let text = format!("{n:03}:{}\n", "y".repeat(295));
        post_fragment(&server, &id, "output", fragment(n, "test", &text))
            .await
            .assert_ok_text();
        whole.push_str(&text);
    }
    post_fragment(&server, &id, "serial", fragment(0, "test", "serial\n"))
        .await
        .assert_ok_text();

    let result = server.result(&id).await;
    assert_eq!(result["setup_output"], json!("set up\n"));
    assert_eq!(result["test_serial"], json!("serial\n"));
    assert_eq!(result["setup_status"], json!(0));
    let tail = result["test_output"].as_str().unwrap();
    assert_eq!(tail, &whole[whole.len() - 1_000..]);
    // 10 fragments of 300 bytes: the tail starts 200 bytes into fragment 7.
    assert_eq!(
        result["truncated_logs"],
        json!({"test_output": {
            "returned_bytes": 1_000,
            "starts_at_fragment": 7,
            "starts_at_offset": 200,
            "full_log": format!("/v1/result/{id}/log/output?phase=test"),
        }})
    );
    // The whole log is where the answer says.
    let full = server
        .get(&format!("/v1/result/{id}/log/output?phase=test"))
        .await
        .ok_json();
    assert_eq!(full["output"]["test"]["log_data"], json!(whole));

    // Nothing cut: upstream's answer, without the marker.
    let short = server.submit(json!({"job_queue": "q"})).await;
    post_fragment(
        &server,
        &short,
        "output",
        fragment(0, "test", &"z".repeat(1_000)),
    )
    .await
    .assert_ok_text();
    let result = server.result(&short).await;
    assert_eq!(result["test_output"].as_str().unwrap().len(), 1_000);
    assert!(result.get("truncated_logs").is_none(), "{result}");
}
