//! Contract tests: the API of SPEC.md §2, §4.1–4.3, §5, §6 and §7, driven
//! through the real router (no socket), each test on its own backends: the
//! embedded store in a fresh temporary folder, or, with
//! `TESTFLINGER_TEST_BACKENDS=production`, its own MongoDB database and S3
//! bucket (`scripts/test.sh` runs both).

use std::collections::{HashMap, HashSet};

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use bytes::Bytes;
use serde_json::json;
use testflinger_shared::auth::{AuthMode, Role};
use uuid::Uuid;

use crate::common::*;

// ---------------------------------------------------------------- health check

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

// ---------------------------------------------------------------- submit

#[tokio::test]
async fn submit_returns_a_job_id() {
    let server = Server::new().await;
    let reply = server
        .post_json("/v1/job", &json!({"job_queue": "q"}))
        .await;
    let body = reply.ok_json();
    let id = body["job_id"].as_str().expect("job_id is a string");
    let parsed = Uuid::parse_str(id).expect("job_id is a UUID");
    assert_eq!(id, parsed.hyphenated().to_string(), "canonical lower case");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}

#[tokio::test]
async fn submit_assigns_distinct_ids() {
    let server = Server::new().await;
    let a = server.submit(json!({"job_queue": "q"})).await;
    let b = server.submit(json!({"job_queue": "q"})).await;
    assert_ne!(a, b);
}

#[tokio::test]
async fn submit_keeps_unknown_fields_in_the_job_and_the_claim() {
    let server = Server::new().await;
    let job = json!({
        "job_queue": "keep",
        "my_field": {"nested": [1, "two", null]},
        "another": 42,
        "provision_data": {"distro": "noble"},
        "test_data": {"test_cmds": "echo hi", "extra": true},
    });
    let id = server.submit(job.clone()).await;

    let definition = server.get(&format!("/v1/job/{id}")).await.ok_json();
    for (key, value) in job.as_object().unwrap() {
        assert_eq!(&definition[key], value, "GET /v1/job keeps {key}");
    }
    assert_eq!(definition["job_id"], json!(id));

    let claimed = server.claim_one("queue=keep").await;
    for (key, value) in job.as_object().unwrap() {
        assert_eq!(&claimed[key], value, "the claim keeps {key}");
    }
    assert_eq!(claimed["job_id"], json!(id));
}

#[tokio::test]
async fn submit_ignores_a_job_id_in_the_body() {
    let server = Server::new().await;
    let chosen = "11111111-2222-4333-8444-555555555555";
    let id = server
        .submit(json!({"job_queue": "q", "job_id": chosen}))
        .await;
    assert_ne!(id, chosen, "the server picks the id");
    server
        .get(&format!("/v1/job/{chosen}"))
        .await
        .assert_no_content();
    let definition = server.get(&format!("/v1/job/{id}")).await.ok_json();
    assert_eq!(definition["job_id"], json!(id));
}

#[tokio::test]
async fn submit_malformed_json_is_400() {
    let server = Server::new().await;
    for body in ["{\"job_queue\": ", "not json", "{'job_queue': 'q'}", ""] {
        let reply = server
            .post_raw("/v1/job", Some("application/json"), body)
            .await;
        reply.assert_error(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn submit_body_not_an_object_is_422() {
    let server = Server::new().await;
    for body in ["[1]", "\"x\"", "3", "null", "true"] {
        let reply = server
            .post_raw("/v1/job", Some("application/json"), body)
            .await;
        let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error["detail"]["json"].is_object(), "{body}: {reply:?}");
    }
}

#[tokio::test]
async fn submit_without_a_valid_job_queue_is_422_naming_job_queue() {
    let server = Server::new().await;
    for job in [
        json!({}),
        json!({"name": "no queue"}),
        json!({"job_queue": ""}),
        json!({"job_queue": "   "}),
        json!({"job_queue": 3}),
        json!({"job_queue": null}),
        json!({"job_queue": ["q"]}),
        json!({"job_queue": {"q": 1}}),
    ] {
        let reply = server.post_json("/v1/job", &job).await;
        reply.assert_invalid_fields(&["job_queue"]);
    }
}

#[tokio::test]
async fn submit_bad_job_priority_is_422() {
    let server = Server::new().await;
    for priority in [json!(-1), json!(1.5), json!(true), json!("5"), json!(null)] {
        let reply = server
            .post_json(
                "/v1/job",
                &json!({"job_queue": "q", "job_priority": priority}),
            )
            .await;
        reply.assert_invalid_fields(&["job_priority"]);
    }
}

#[tokio::test]
async fn submit_names_every_bad_field_in_one_answer() {
    let server = Server::new().await;
    let reply = server
        .post_json(
            "/v1/job",
            &json!({
                "job_queue": "q",
                "job_priority": -1,
                "tags": "not-a-list",
                "global_timeout": "soon",
                "reserve_data": {"timeout": "whenever", "ssh_keys": ["bob"]},
                "exclude_agents": [1, 2],
            }),
        )
        .await;
    reply.assert_invalid_fields(&[
        "job_priority",
        "tags",
        "global_timeout",
        "reserve_data.timeout",
        "reserve_data.ssh_keys",
        "exclude_agents",
    ]);
    // With the queue missing too, it is named alongside the others.
    let reply = server
        .post_json(
            "/v1/job",
            &json!({"job_priority": 1.5, "tags": [1], "exclude_agents": "agent-1"}),
        )
        .await;
    reply.assert_invalid_fields(&["job_queue", "job_priority", "tags", "exclude_agents"]);
}

#[tokio::test]
async fn submit_bad_field_types_are_422() {
    let server = Server::new().await;
    let cases = [
        (json!({"tags": [1, 2]}), "tags"),
        (json!({"tags": {"a": "b"}}), "tags"),
        (json!({"global_timeout": 0}), "global_timeout"),
        (json!({"global_timeout": -5}), "global_timeout"),
        (json!({"global_timeout": 1.5}), "global_timeout"),
        (json!({"global_timeout": "10"}), "global_timeout"),
        (
            json!({"reserve_data": {"timeout": true}}),
            "reserve_data.timeout",
        ),
        (
            json!({"reserve_data": {"timeout": -1}}),
            "reserve_data.timeout",
        ),
        (
            json!({"reserve_data": {"ssh_keys": "lp:bob"}}),
            "reserve_data.ssh_keys",
        ),
        (
            json!({"reserve_data": {"ssh_keys": ["xx:bob"]}}),
            "reserve_data.ssh_keys",
        ),
        (
            json!({"reserve_data": {"ssh_keys": [7]}}),
            "reserve_data.ssh_keys",
        ),
        (json!({"exclude_agents": "agent-1"}), "exclude_agents"),
        (json!({"exclude_agents": [true]}), "exclude_agents"),
    ];
    for (extra, field) in cases {
        let mut job = json!({"job_queue": "q"});
        for (k, v) in extra.as_object().unwrap() {
            job[k] = v.clone();
        }
        let reply = server.post_json("/v1/job", &job).await;
        reply.assert_invalid_fields(&[field]);
    }
    // Nothing of those was stored.
    server.get("/v1/job?queue=q").await.assert_no_content();
}

#[tokio::test]
async fn submit_stores_reserve_timeout_as_seconds() {
    let server = Server::new().await;
    let id = server
        .submit(json!({
            "job_queue": "q",
            "reserve_data": {"timeout": "30m", "ssh_keys": ["lp:bob", "gh:alice"]},
        }))
        .await;
    let definition = server.get(&format!("/v1/job/{id}")).await.ok_json();
    assert_eq!(definition["reserve_data"]["timeout"], json!(1800));
    assert_eq!(
        definition["reserve_data"]["ssh_keys"],
        json!(["lp:bob", "gh:alice"])
    );
    let claimed = server.claim_one("queue=q").await;
    assert_eq!(claimed["reserve_data"]["timeout"], json!(1800));
}

#[tokio::test]
async fn submit_over_the_json_limit_with_content_length_is_413() {
    let server = Server::with_config(|c| c.limits.json_body = 1024).await;
    let body = json!({"job_queue": "big", "pad": "x".repeat(2000)}).to_string();
    let mut req = request(
        Method::POST,
        "/v1/job",
        Some("application/json"),
        Body::from(body.clone()),
    );
    req.headers_mut().insert(
        header::CONTENT_LENGTH,
        body.len().to_string().parse().unwrap(),
    );
    server
        .send(req)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    server.get("/v1/job?queue=big").await.assert_no_content();
}

#[tokio::test]
async fn submit_over_the_json_limit_without_content_length_is_413() {
    let server = Server::with_config(|c| c.limits.json_body = 1024).await;
    let body = json!({"job_queue": "big", "pad": "x".repeat(4000)}).to_string();
    let chunks: Vec<Result<Bytes, std::io::Error>> = body
        .as_bytes()
        .chunks(256)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let streamed = Body::from_stream(futures::stream::iter(chunks));
    let req = request(Method::POST, "/v1/job", Some("application/json"), streamed);
    assert!(req.headers().get(header::CONTENT_LENGTH).is_none());
    server
        .send(req)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    server.get("/v1/job?queue=big").await.assert_no_content();
}

#[tokio::test]
async fn submit_under_the_json_limit_is_accepted() {
    let server = Server::with_config(|c| c.limits.json_body = 1024).await;
    let body = json!({"job_queue": "small", "pad": "x".repeat(900)});
    server.submit(body).await;
    server.claim_one("queue=small").await;
}

#[tokio::test]
async fn submit_multipart_on_a_json_endpoint_is_415() {
    let server = Server::new().await;
    let body = multipart(BOUNDARY, &[("job_queue", None, b"q")]);
    let reply = server
        .post_raw("/v1/job", Some(&multipart_type()), body)
        .await;
    reply.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    server.get("/v1/job?queue=q").await.assert_no_content();
}

// ---------------------------------------------------------------- claim

#[tokio::test]
async fn claim_with_nothing_eligible_is_204() {
    let server = Server::new().await;
    server.get("/v1/job?queue=empty").await.assert_no_content();
    server.submit(json!({"job_queue": "other"})).await;
    server.get("/v1/job?queue=empty").await.assert_no_content();
}

#[tokio::test]
async fn claim_without_queue_is_400() {
    let server = Server::new().await;
    for uri in ["/v1/job", "/v1/job?", "/v1/job?queue=", "/v1/job?other=q"] {
        server.get(uri).await.assert_error(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn claim_serves_every_repeated_queue_param() {
    let server = Server::new().await;
    let a = server.submit(json!({"job_queue": "a"})).await;
    let b = server.submit(json!({"job_queue": "b"})).await;
    server.submit(json!({"job_queue": "c"})).await;

    let first = server.claim_one("queue=a&queue=b").await;
    let second = server.claim_one("queue=a&queue=b").await;
    assert_eq!(first["job_id"], json!(a), "oldest first");
    assert_eq!(second["job_id"], json!(b));
    server
        .get("/v1/job?queue=a&queue=b")
        .await
        .assert_no_content();
}

/// A contributor that may submit any priority up to 100.
async fn priority_token(server: &Server) -> String {
    server
        .client_token("prio", Role::Contributor, |c| {
            c.max_priority.insert("*".into(), 100);
        })
        .await
}

#[tokio::test]
async fn claim_takes_higher_priority_first() {
    // Priorities above 0 need a client allowed them (SPEC.md §3); the
    // claim itself stays anonymous in the open mode.
    let server = Server::with_auth(AuthMode::Open).await;
    let token = priority_token(&server).await;
    let low = server.submit(json!({"job_queue": "p"})).await;
    let mid = server
        .submit_with(json!({"job_queue": "p", "job_priority": 5}), &token)
        .await;
    let high = server
        .submit_with(json!({"job_queue": "p", "job_priority": 10}), &token)
        .await;
    let mid2 = server
        .submit_with(json!({"job_queue": "p", "job_priority": 5}), &token)
        .await;
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(server.claim_one("queue=p").await["job_id"].clone());
    }
    assert_eq!(
        order,
        vec![json!(high), json!(mid), json!(mid2), json!(low)]
    );
    server.get("/v1/job?queue=p").await.assert_no_content();
}

#[tokio::test]
async fn claim_takes_higher_priority_first_across_queues() {
    let server = Server::with_auth(AuthMode::Open).await;
    let token = priority_token(&server).await;
    let old = server.submit(json!({"job_queue": "a"})).await;
    let urgent = server
        .submit_with(json!({"job_queue": "b", "job_priority": 3}), &token)
        .await;
    assert_eq!(
        server.claim_one("queue=a&queue=b").await["job_id"],
        json!(urgent)
    );
    assert_eq!(
        server.claim_one("queue=a&queue=b").await["job_id"],
        json!(old)
    );
}

#[tokio::test]
async fn claim_is_fifo_within_a_priority() {
    let server = Server::new().await;
    let mut submitted = Vec::new();
    for i in 0..10 {
        submitted.push(json!(
            server.submit(json!({"job_queue": "fifo", "n": i})).await
        ));
    }
    let mut claimed = Vec::new();
    for _ in 0..10 {
        claimed.push(server.claim_one("queue=fifo").await["job_id"].clone());
    }
    assert_eq!(claimed, submitted);
}

#[tokio::test]
async fn claim_answers_the_job_with_id_started_at_and_fields() {
    let server = Server::new().await;
    let job = json!({
        "job_queue": "q",
        "name": "my job",
        "tags": ["x", "y"],
        "global_timeout": 3600,
        "provision_data": {"url": "http://example.com/image.img.xz"},
        "test_data": {"test_cmds": "ls"},
    });
    let id = server.submit(job.clone()).await;
    let reply = server.get("/v1/job?queue=q").await;
    let claimed = reply.ok_json();
    assert_eq!(claimed["job_id"], json!(id));
    let started = claimed["started_at"].as_str().expect("started_at string");
    assert!(is_rfc3339_utc(started), "started_at {started:?}");
    for (key, value) in job.as_object().unwrap() {
        assert_eq!(&claimed[key], value, "claim answer field {key}");
    }
}

#[tokio::test]
async fn a_claimed_job_is_not_claimed_again() {
    let server = Server::new().await;
    server.submit(json!({"job_queue": "once"})).await;
    server.claim_one("queue=once").await;
    server.get("/v1/job?queue=once").await.assert_no_content();
    server
        .get_as("/v1/job?queue=once", "another-agent")
        .await
        .assert_no_content();
}

#[tokio::test]
async fn claim_honours_exclude_agents() {
    let server = Server::new().await;
    let id = server
        .submit(json!({"job_queue": "ex", "exclude_agents": ["bad-1", "bad-2"]}))
        .await;
    server
        .get_as("/v1/job?queue=ex", "bad-1")
        .await
        .assert_no_content();
    server
        .get_as("/v1/job?queue=ex", "bad-2")
        .await
        .assert_no_content();
    let reply = server.get_as("/v1/job?queue=ex", "good-1").await;
    assert_eq!(reply.ok_json()["job_id"], json!(id));
}

#[tokio::test]
async fn claim_skips_an_excluded_job_for_the_next_eligible_one() {
    let server = Server::new().await;
    let excluded = server
        .submit(json!({"job_queue": "ex", "exclude_agents": ["bad-1"]}))
        .await;
    let later = server.submit(json!({"job_queue": "ex"})).await;
    let reply = server.get_as("/v1/job?queue=ex", "bad-1").await;
    assert_eq!(reply.ok_json()["job_id"], json!(later));
    let reply = server.get_as("/v1/job?queue=ex", "good-1").await;
    assert_eq!(reply.ok_json()["job_id"], json!(excluded));
}

#[tokio::test]
async fn a_job_waiting_for_attachments_is_not_claimable() {
    let server = Server::new().await;
    let id = server
        .submit(json!({
            "job_queue": "att",
            "test_data": {"attachments": [{"agent": "f"}]},
        }))
        .await;
    server.get("/v1/job?queue=att").await.assert_no_content();
    assert_eq!(server.result(&id).await["job_state"], json!("waiting"));
    for section in ["provision_data", "firmware_update_data"] {
        let mut job = json!({"job_queue": "att2"});
        job[section] = json!({"attachments": [{"agent": "f", "device": "/tmp/f"}]});
        server.submit(job).await;
        server.get("/v1/job?queue=att2").await.assert_no_content();
    }
}

#[tokio::test]
async fn a_claimed_job_is_running() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    assert_eq!(server.result(&id).await["job_state"], json!("waiting"));
    server.claim_one("queue=q").await;
    assert_eq!(server.result(&id).await["job_state"], json!("running"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_claims_hand_out_each_job_exactly_once() {
    const JOBS: usize = 200;
    const CLAIMS: usize = 400;
    let server = Server::new().await;
    let mut submitted = HashSet::new();
    for i in 0..JOBS {
        submitted.insert(server.submit(json!({"job_queue": "race", "n": i})).await);
    }
    assert_eq!(submitted.len(), JOBS);

    let tasks: Vec<_> = (0..CLAIMS)
        .map(|i| {
            let app = server.app.clone();
            tokio::spawn(async move {
                let mut req = request(Method::GET, "/v1/job?queue=race", None, Body::empty());
                req.headers_mut().insert(
                    header::COOKIE,
                    format!("agent_name=agent-{i}").parse().unwrap(),
                );
                send(app, req).await
            })
        })
        .collect();

    let mut handed_out: HashMap<String, usize> = HashMap::new();
    let (mut ok, mut none) = (0, 0);
    for task in tasks {
        let reply = task.await.expect("claim task");
        match reply.status {
            StatusCode::OK => {
                ok += 1;
                let id = reply.json()["job_id"].as_str().unwrap().to_owned();
                *handed_out.entry(id).or_default() += 1;
            }
            StatusCode::NO_CONTENT => {
                assert!(reply.body.is_empty());
                none += 1;
            }
            other => panic!("unexpected claim answer {other}: {reply:?}"),
        }
    }
    assert_eq!(ok, JOBS, "exactly {JOBS} claims get a job");
    assert_eq!(none, CLAIMS - JOBS);
    let twice: Vec<_> = handed_out.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "jobs handed out more than once: {twice:?}"
    );
    let ids: HashSet<String> = handed_out.into_keys().collect();
    assert_eq!(ids, submitted, "every job is handed out");
    server.get("/v1/job?queue=race").await.assert_no_content();
}

// ---------------------------------------------------------------- get job

#[tokio::test]
async fn get_job_returns_the_definition_with_job_id() {
    let server = Server::new().await;
    let job = json!({"job_queue": "q", "name": "n", "tags": ["a"], "job_priority": 0});
    let id = server.submit(job.clone()).await;
    let definition = server.get(&format!("/v1/job/{id}")).await.ok_json();
    assert_eq!(definition["job_id"], json!(id));
    for (key, value) in job.as_object().unwrap() {
        assert_eq!(&definition[key], value, "{key}");
    }
}

#[tokio::test]
async fn get_job_accepts_an_upper_case_id() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let definition = server
        .get(&format!("/v1/job/{}", id.to_uppercase()))
        .await
        .ok_json();
    assert_eq!(definition["job_id"], json!(id), "canonical lower case");
}

#[tokio::test]
async fn get_unknown_job_is_204() {
    let server = Server::new().await;
    server
        .get(&format!("/v1/job/{UNKNOWN_ID}"))
        .await
        .assert_no_content();
}

#[tokio::test]
async fn get_job_with_a_bad_id_is_400() {
    let server = Server::new().await;
    for id in ["not-a-uuid", "12345", "0b6f3c1e-8a0e-4d0b-9a43-3f2ad1f0c00"] {
        server
            .get(&format!("/v1/job/{id}"))
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
}

// ---------------------------------------------------------------- cancel

async fn cancel(server: &Server, id: &str) -> Reply {
    server
        .post_json(
            &format!("/v1/job/{id}/action"),
            &json!({"action": "cancel"}),
        )
        .await
}

#[tokio::test]
async fn cancel_returns_ok_and_cancels_the_job() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    cancel(&server, &id).await.assert_ok_text();
    assert_eq!(server.result(&id).await["job_state"], json!("cancelled"));
    // A cancelled job is no longer claimable.
    server.get("/v1/job?queue=q").await.assert_no_content();
}

#[tokio::test]
async fn cancel_a_running_job_is_ok() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server.claim_one("queue=q").await;
    server.post_result(&id, json!({"job_state": "test"})).await;
    cancel(&server, &id).await.assert_ok_text();
    assert_eq!(server.result(&id).await["job_state"], json!("cancelled"));
}

#[tokio::test]
async fn cancel_twice_is_400() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    cancel(&server, &id).await.assert_ok_text();
    cancel(&server, &id)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    assert_eq!(server.result(&id).await["job_state"], json!("cancelled"));
}

#[tokio::test]
async fn cancel_a_complete_job_is_400() {
    let server = Server::new().await;
    for finished in ["complete", "completed"] {
        let id = server.submit(json!({"job_queue": "q"})).await;
        server.claim_one("queue=q").await;
        server
            .post_result(&id, json!({"job_state": finished}))
            .await;
        cancel(&server, &id)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
        assert_eq!(server.result(&id).await["job_state"], json!(finished));
    }
}

#[tokio::test]
async fn cancel_unknown_job_is_404() {
    let server = Server::new().await;
    cancel(&server, UNKNOWN_ID)
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_or_missing_action_is_422() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    for body in [
        json!({"action": "explode"}),
        json!({"action": ""}),
        json!({"action": 1}),
        json!({}),
    ] {
        server
            .post_json(&format!("/v1/job/{id}/action"), &body)
            .await
            .assert_invalid_fields(&["action"]);
    }
    assert_eq!(server.result(&id).await["job_state"], json!("waiting"));
}

#[tokio::test]
async fn action_with_a_bad_id_is_400() {
    let server = Server::new().await;
    cancel(&server, "not-a-uuid")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

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

// ---------------------------------------------------------------- artifacts

#[tokio::test]
async fn artifact_upload_then_download_returns_the_same_bytes() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let content = binary(70_000, 7);
    upload_artifact(&server, &id, &content)
        .await
        .assert_ok_text();
    let reply = server.get(&format!("/v1/result/{id}/artifact")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply
            .headers
            .get(header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok()),
        Some("attachment; filename=artifact.tar.gz")
    );
    assert_eq!(reply.body.len(), content.len());
    assert!(reply.body == content, "the bytes come back unchanged");
}

#[tokio::test]
async fn a_second_artifact_upload_replaces_the_first() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    upload_artifact(&server, &id, &binary(5000, 1))
        .await
        .assert_ok_text();
    let second = binary(300, 2);
    upload_artifact(&server, &id, &second)
        .await
        .assert_ok_text();
    let reply = server.get(&format!("/v1/result/{id}/artifact")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(reply.body == second, "the newer upload is served");
}

#[tokio::test]
async fn artifact_download_with_none_stored_is_204() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server
        .get(&format!("/v1/result/{id}/artifact"))
        .await
        .assert_no_content();
}

#[tokio::test]
async fn artifact_upload_for_unknown_job_is_404() {
    let server = Server::new().await;
    upload_artifact(&server, UNKNOWN_ID, b"data")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .get(&format!("/v1/result/{UNKNOWN_ID}/artifact"))
        .await
        .assert_no_content();
}

#[tokio::test]
async fn artifact_with_a_bad_id_is_400() {
    let server = Server::new().await;
    upload_artifact(&server, "not-a-uuid", b"data")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .get("/v1/result/not-a-uuid/artifact")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn artifact_upload_without_multipart_is_415() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let uri = format!("/v1/result/{id}/artifact");
    server
        .post_raw(&uri, Some("application/octet-stream"), b"raw".to_vec())
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    server
        .post_raw(&uri, None, b"raw".to_vec())
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    server.get(&uri).await.assert_no_content();
}

#[tokio::test]
async fn artifact_multipart_without_a_file_field_is_400() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let body = multipart(
        BOUNDARY,
        &[("other", Some("a.tgz"), b"data"), ("note", None, b"hello")],
    );
    server
        .post_raw(
            &format!("/v1/result/{id}/artifact"),
            Some(&multipart_type()),
            body,
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .get(&format!("/v1/result/{id}/artifact"))
        .await
        .assert_no_content();
}

#[tokio::test]
async fn artifact_truncated_multipart_is_400_and_stores_nothing() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let mut body = multipart(BOUNDARY, &[("file", Some("a.tgz"), &binary(3000, 6))]);
    body.truncate(body.len() - 200);
    server
        .post_raw(
            &format!("/v1/result/{id}/artifact"),
            Some(&multipart_type()),
            body,
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .get(&format!("/v1/result/{id}/artifact"))
        .await
        .assert_no_content();
}

#[tokio::test]
async fn artifact_file_field_after_other_fields_is_stored() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let content = binary(1234, 9);
    let body = multipart(
        BOUNDARY,
        &[("note", None, b"hello"), ("file", Some("a.tgz"), &content)],
    );
    server
        .post_raw(
            &format!("/v1/result/{id}/artifact"),
            Some(&multipart_type()),
            body,
        )
        .await
        .assert_ok_text();
    let reply = server.get(&format!("/v1/result/{id}/artifact")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body == content);
}

#[tokio::test]
async fn artifact_over_the_blob_limit_is_413_and_keeps_the_previous_one() {
    let server = Server::with_config(|c| c.limits.blob = 1000).await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let uri = format!("/v1/result/{id}/artifact");

    // With none stored before: still none after.
    upload_artifact(&server, &id, &binary(2000, 3))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    server.get(&uri).await.assert_no_content();

    let first = binary(900, 4);
    upload_artifact(&server, &id, &first).await.assert_ok_text();
    upload_artifact(&server, &id, &binary(5000, 5))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    let reply = server.get(&uri).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(reply.body == first, "the previous artifact is intact");
}

// ---------------------------------------------------------------- agents

#[tokio::test]
async fn advertised_queues_are_listed() {
    let server = Server::new().await;
    let empty = server.get("/v1/agents/queues").await.ok_json();
    assert_eq!(empty, json!({}));
    server
        .post_json(
            "/v1/agents/queues",
            &json!({"q1": "the first queue", "q2": "the second"}),
        )
        .await
        .assert_ok_text();
    server
        .post_json("/v1/agents/queues", &json!({"q1": "renamed", "q3": ""}))
        .await
        .assert_ok_text();
    let listed = server.get("/v1/agents/queues").await.ok_json();
    assert_eq!(
        listed,
        json!({"q1": "renamed", "q2": "the second", "q3": ""})
    );
}

#[tokio::test]
async fn queue_with_a_non_string_description_is_422() {
    let server = Server::new().await;
    server
        .post_json("/v1/agents/queues", &json!({"good": "x", "bad": 5}))
        .await
        .assert_invalid_fields(&["bad"]);
    server
        .post_raw("/v1/agents/queues", Some("application/json"), "[\"q\"]")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(server.get("/v1/agents/queues").await.ok_json(), json!({}));
}

#[tokio::test]
async fn advertised_images_are_served_per_queue() {
    let server = Server::new().await;
    server
        .post_json(
            "/v1/agents/images",
            &json!({"q": {"img": "url: x", "jammy": "distro: jammy"}, "r": {"other": "url: y"}}),
        )
        .await
        .assert_ok_text();
    let images = server.get("/v1/agents/images/q").await.ok_json();
    assert_eq!(images, json!({"img": "url: x", "jammy": "distro: jammy"}));
    let images = server.get("/v1/agents/images/r").await.ok_json();
    assert_eq!(images, json!({"other": "url: y"}));
}

#[tokio::test]
async fn images_of_an_unknown_queue_are_empty() {
    let server = Server::new().await;
    let images = server.get("/v1/agents/images/nowhere").await.ok_json();
    assert_eq!(images, json!({}));
}

#[tokio::test]
async fn a_second_images_post_replaces_the_map() {
    let server = Server::new().await;
    server
        .post_json("/v1/agents/images", &json!({"q": {"img": "url: x"}}))
        .await
        .assert_ok_text();
    server
        .post_json("/v1/agents/images", &json!({"q": {"new": "url: z"}}))
        .await
        .assert_ok_text();
    let images = server.get("/v1/agents/images/q").await.ok_json();
    assert_eq!(images, json!({"new": "url: z"}));
}

#[tokio::test]
async fn images_with_bad_shapes_are_422() {
    let server = Server::new().await;
    server
        .post_json("/v1/agents/images", &json!({"q": "url: x"}))
        .await
        .assert_invalid_fields(&["q"]);
    server
        .post_json("/v1/agents/images", &json!({"q": {"img": 1}}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(server.get("/v1/agents/images/q").await.ok_json(), json!({}));
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
