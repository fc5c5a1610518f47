//! Jobs (SPEC.md §4.1, §5, §7): submit and its checks (the job document,
//! the body limits, what a priority or a long reservation needs), the claim,
//! reading a job, its position, search, and cancel, including who may cancel
//! whose job.

use std::collections::{HashMap, HashSet};

use axum::body::{Body, Bytes};
use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use testflinger_shared::role::{AuthMode, Role};
use uuid::Uuid;

use crate::common::*;
use crate::support::*;

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

// ---------------------------------------------------------------- submission checks (SPEC.md §3)

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
    cancel_as(&server, Some(&alice), &id)
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
    cancel_as(&server, Some(&mallory), &anon)
        .await
        .assert_ok_text();
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
    serve(&server, "good-1", "ex").await;
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
    serve(&server, "good-1", "ex").await;
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

// ---------------------------------------------------------------- position and search

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

// ---------------------------------------------------------------- cancel

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

// ---------------------------------------------------------------- cancel ownership

/// `POST /v1/job/{id}/action` `{"action": "cancel"}` with `token` (or none).
async fn cancel_as(server: &Server, token: Option<&str>, id: &str) -> Reply {
    server
        .call(
            Method::POST,
            &format!("/v1/job/{id}/action"),
            token,
            Some(&json!({"action": "cancel"})),
        )
        .await
}

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
    cancel_as(&server, Some(&bob), &id)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    cancel_as(&server, None, &id)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    // Still waiting.
    assert_eq!(
        server.get(&format!("/v1/job/{id}/position")).await.text(),
        "0"
    );
    cancel_as(&server, Some(&alice), &id).await.assert_ok_text();
    let second = server.submit_with(json!({"job_queue": "q"}), &alice).await;
    cancel_as(&server, Some(&manager), &second)
        .await
        .assert_ok_text();
    let third = server.submit_with(json!({"job_queue": "q"}), &alice).await;
    cancel_as(&server, Some(&admin), &third)
        .await
        .assert_ok_text();
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
    cancel_as(&server, None, &id)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    cancel_as(&server, Some(&alice), &id).await.assert_ok_text();
}

#[tokio::test]
async fn anyone_cancels_an_anonymous_job() {
    let server = standard().await;
    let bob = server.client_token("bob", Role::Contributor, |_| {}).await;
    let first = server.submit(json!({"job_queue": "q"})).await;
    let second = server.submit(json!({"job_queue": "q"})).await;
    cancel_as(&server, None, &first).await.assert_ok_text();
    cancel_as(&server, Some(&bob), &second)
        .await
        .assert_ok_text();
    // A second cancel is 400, an unknown job 404.
    cancel_as(&server, None, &first)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    cancel_as(&server, None, UNKNOWN_ID)
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

/// An agent (anonymous, in the open mode) that serves `queue`.
async fn serve(server: &Server, agent: &str, queue: &str) {
    server
        .post_json(
            &format!("/v1/agents/data/{agent}"),
            &json!({"queues": [queue], "state": "waiting"}),
        )
        .await
        .ok_json();
}

#[tokio::test]
async fn a_job_that_excludes_every_agent_of_its_queue_is_refused_as_upstream_does() {
    let server = Server::new().await;
    let job = json!({"job_queue": "ex", "exclude_agents": ["dev-1"]});
    // No agent serves the queue at all.
    let reply = server.post_json("/v1/job", &job).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["message"],
        json!("There are no agents on the specified queue that are allowed to run this job")
    );
    assert!(
        body["detail"]["json"]["exclude_agents"].is_array(),
        "{body}"
    );
    // Its only agent is excluded; an agent of another queue does not count.
    serve(&server, "dev-1", "ex").await;
    serve(&server, "dev-2", "other").await;
    server
        .post_json("/v1/job", &job)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    // One agent left that may run it: accepted.
    serve(&server, "dev-3", "ex").await;
    let reply = server.post_json("/v1/job", &job).await;
    assert!(reply.ok_json()["job_id"].is_string());
    // Without exclusions, a queue nobody serves still takes jobs.
    let reply = server
        .post_json("/v1/job", &json!({"job_queue": "nobody"}))
        .await;
    assert!(reply.ok_json()["job_id"].is_string());
}
