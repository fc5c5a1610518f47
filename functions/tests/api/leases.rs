//! Claim leases (issue 13, SPEC.md §11): a silent agent's job is requeued
//! and claimed by another agent, the old agent's posts get 409; an agent
//! that keeps talking keeps its job; the last attempt ends the job. Time is
//! driven by the `now` given to the sweep (and to the use cases), never by
//! sleeping.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use testflinger_shared::app::Caller;
use testflinger_shared::Timestamp;

use crate::common::*;
use crate::support::*;

/// The lease of these tests.
const LEASE: i64 = 60;

/// Agents stay alive through the hours these tests skip over (the sweep
/// passes a silent agent over only for an agent that is not silent too:
/// `liveness.rs` tests that).
async fn server() -> Server {
    Server::with_config(|config| {
        config.leases.lease_seconds = LEASE as u64;
        config.leases.agent_offline_seconds = 7 * 86_400;
    })
    .await
}

async fn register(server: &Server, agent: &str) {
    let reply = call_as(
        server,
        Method::POST,
        &format!("/v1/agents/data/{agent}"),
        None,
        Some(agent),
        Some(&json!({"queues": ["q"], "state": "waiting"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

async fn claimed_by(server: &Server, agent: &str) -> Option<String> {
    let reply = claim(server, "q", None, Some(agent)).await;
    if reply.status == StatusCode::NO_CONTENT {
        return None;
    }
    Some(reply.ok_json()["job_id"].as_str().unwrap().to_owned())
}

async fn post_result_as(server: &Server, agent: &str, id: &str, body: Value) -> Reply {
    call_as(
        server,
        Method::POST,
        &format!("/v1/result/{id}"),
        None,
        Some(agent),
        Some(&body),
    )
    .await
}

async fn post_log_as(server: &Server, agent: &str, id: &str) -> Reply {
    let fragment = json!({"fragment_number": 7, "timestamp": "2026-12-03T10:00:00Z",
                          "phase": "provision", "log_data": "late line\n"});
    call_as(
        server,
        Method::POST,
        &format!("/v1/result/{id}/log/output"),
        None,
        Some(agent),
        Some(&fragment),
    )
    .await
}

async fn state_of(server: &Server, id: &str) -> String {
    server.result(id).await["job_state"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn event_names(server: &Server, id: &str) -> Vec<String> {
    let body = server.get(&format!("/v1/events/job/{id}")).await.ok_json();
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_name"].as_str().unwrap().to_owned())
        .collect()
}

fn later(seconds: i64) -> Timestamp {
    Timestamp::now().plus_seconds(seconds)
}

fn agent(name: &str) -> Caller {
    Caller {
        client: None,
        agent: Some(name.into()),
    }
}

#[tokio::test]
async fn a_silent_agents_job_goes_to_another_agent_and_its_posts_get_409() {
    let server = server().await;
    register(&server, "dev-1").await;
    register(&server, "dev-2").await;
    let id = server
        .submit(json!({"job_queue": "q", "tags": ["leased"]}))
        .await;
    assert_eq!(claimed_by(&server, "dev-1").await.as_deref(), Some(&*id));
    post_result_as(&server, "dev-1", &id, json!({"job_state": "provision"}))
        .await
        .assert_ok_text();

    // Within the lease nothing moves.
    let app = &server.state.app;
    let report = app.sweep_leases(later(LEASE / 2)).await.unwrap();
    assert_eq!(report.requeued + report.failed, 0);
    assert_eq!(state_of(&server, &id).await, "provision");

    // dev-1 says nothing past its lease: the job goes back to its queue.
    let report = app.sweep_leases(later(LEASE * 10)).await.unwrap();
    assert_eq!((report.requeued, report.failed), (1, 0));
    assert_eq!(state_of(&server, &id).await, "waiting");
    assert!(event_names(&server, &id)
        .await
        .contains(&"job_requeued".to_owned()));
    let events = server.get(&format!("/v1/events/job/{id}")).await.ok_json();
    let requeued = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_name"] == "job_requeued")
        .unwrap()
        .clone();
    assert!(requeued["message"].as_str().unwrap().contains("dev-1"));

    // The old agent's posts are refused and change nothing.
    let late = post_result_as(&server, "dev-1", &id, json!({"job_state": "test"})).await;
    late.assert_error(StatusCode::CONFLICT);
    post_log_as(&server, "dev-1", &id)
        .await
        .assert_error(StatusCode::CONFLICT);
    assert_eq!(state_of(&server, &id).await, "waiting");

    // The silent agent is passed over; another agent of the queue gets it.
    assert_eq!(claimed_by(&server, "dev-1").await, None);
    assert_eq!(claimed_by(&server, "dev-2").await.as_deref(), Some(&*id));
    post_result_as(&server, "dev-1", &id, json!({"job_state": "complete"}))
        .await
        .assert_error(StatusCode::CONFLICT);
    post_result_as(&server, "dev-2", &id, json!({"job_state": "provision"}))
        .await
        .assert_ok_text();
    post_log_as(&server, "dev-2", &id).await.assert_ok_text();
    assert_eq!(state_of(&server, &id).await, "provision");
    let job = app.get_job(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
    assert_eq!(job.lease_holder.as_deref(), Some("dev-2"));
}

#[tokio::test]
async fn an_agent_that_keeps_talking_never_loses_its_job() {
    let server = server().await;
    register(&server, "dev-1").await;
    register(&server, "dev-2").await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    assert_eq!(claimed_by(&server, "dev-1").await.as_deref(), Some(&*id));
    let job_id: uuid::Uuid = id.parse().unwrap();
    let app = &server.state.app;
    let dev1 = agent("dev-1");
    // An hour of a healthy agent: every 50 s (less than the lease) one of
    // what it sends anyway, each renewing the lease.
    for step in 1..=72 {
        let now = later(step * 50);
        match step % 4 {
            0 => {
                let body = json!({"job_state": "test"});
                app.post_result(&dev1, job_id, body.as_object().unwrap().clone(), now)
                    .await
                    .unwrap();
            }
            1 => {
                app.get_status(&dev1, job_id, now).await.unwrap().unwrap();
            }
            2 => {
                app.get_result(&dev1, job_id, now).await.unwrap().unwrap();
            }
            _ => {
                let body = json!({"state": "test"});
                app.post_agent_data(&dev1, "dev-1", body.as_object().unwrap().clone(), now)
                    .await
                    .unwrap();
            }
        }
        let report = app.sweep_leases(now.plus_seconds(LEASE - 5)).await.unwrap();
        assert_eq!(report.requeued + report.failed, 0, "step {step}");
    }
    assert_eq!(state_of(&server, &id).await, "test");
    assert_eq!(claimed_by(&server, "dev-2").await, None);
    // A reader that is not the holder (a CLI polling the status) renews nothing.
    let cli = Caller::default();
    let last = later(72 * 50);
    app.get_status(&cli, job_id, last.plus_seconds(LEASE - 1))
        .await
        .unwrap();
    let report = app
        .sweep_leases(last.plus_seconds(LEASE + 1))
        .await
        .unwrap();
    assert_eq!(report.requeued, 1);
}

#[tokio::test]
async fn the_last_attempt_ends_the_job_with_a_reason() {
    let server = server().await;
    register(&server, "dev-1").await;
    register(&server, "dev-2").await;
    // The default: two attempts.
    let id = server.submit(json!({"job_queue": "q"})).await;
    assert_eq!(claimed_by(&server, "dev-1").await.as_deref(), Some(&*id));
    let app = &server.state.app;
    assert_eq!(
        app.sweep_leases(later(LEASE * 2)).await.unwrap().requeued,
        1
    );
    assert_eq!(claimed_by(&server, "dev-2").await.as_deref(), Some(&*id));
    let report = app.sweep_leases(later(LEASE * 4)).await.unwrap();
    assert_eq!((report.requeued, report.failed), (0, 1));
    assert_eq!(state_of(&server, &id).await, "cancelled");
    let events = server.get(&format!("/v1/events/job/{id}")).await.ok_json();
    let last = events["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event_name"], "job_cancelled");
    assert!(last["message"].as_str().unwrap().contains("attempt 2 of 2"));
    post_result_as(&server, "dev-2", &id, json!({"job_state": "complete"}))
        .await
        .assert_error(StatusCode::CONFLICT);
    assert_eq!(state_of(&server, &id).await, "cancelled");
    assert_eq!(claimed_by(&server, "dev-1").await, None);

    // A job's own max_attempts.
    let once = server
        .submit(json!({"job_queue": "q", "max_attempts": 1}))
        .await;
    assert_eq!(claimed_by(&server, "dev-1").await.as_deref(), Some(&*once));
    let report = app.sweep_leases(later(LEASE * 2)).await.unwrap();
    assert_eq!((report.requeued, report.failed), (0, 1));
    assert_eq!(state_of(&server, &once).await, "cancelled");
    server
        .call(
            Method::POST,
            "/v1/job",
            None,
            Some(&json!({"job_queue": "q", "max_attempts": 0})),
        )
        .await
        .assert_invalid_fields(&["max_attempts"]);
}

#[tokio::test]
async fn a_single_device_gets_its_job_back() {
    let server = server().await;
    register(&server, "dev-1").await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    assert_eq!(claimed_by(&server, "dev-1").await.as_deref(), Some(&*id));
    let app = &server.state.app;
    assert_eq!(
        app.sweep_leases(later(LEASE * 2)).await.unwrap().requeued,
        1
    );
    assert_eq!(claimed_by(&server, "dev-1").await.as_deref(), Some(&*id));
    post_result_as(&server, "dev-1", &id, json!({"job_state": "setup"}))
        .await
        .assert_ok_text();
}

/// Each thing the upstream agent already sends, over HTTP, renews a lease
/// that had run out (the claim is made as if long ago); a reader without
/// the holder's cookie renews nothing.
#[tokio::test]
async fn what_the_agent_sends_over_http_renews_its_lease() {
    let server = server().await;
    register(&server, "dev-1").await;
    register(&server, "dev-2").await;
    let app = &server.state.app;
    let renewals: Vec<(&str, Option<&str>)> = vec![
        ("status check", Some("dev-1")),
        ("result read", Some("dev-1")),
        ("result post", Some("dev-1")),
        ("log fragment", Some("dev-1")),
        ("agent data", Some("dev-1")),
        ("artifact", Some("dev-1")),
        ("status read by a CLI", None),
    ];
    for (what, cookie) in renewals {
        let id = server.submit(json!({"job_queue": "q"})).await;
        let long_ago = later(-LEASE * 10);
        let claimed = app
            .claim_job(
                &agent("dev-1"),
                vec!["q".into()],
                Some("dev-1".into()),
                long_ago,
            )
            .await
            .unwrap()
            .expect("claimed");
        assert_eq!(claimed.job.job_id.to_string(), id);
        let reply = match what {
            "status check" | "status read by a CLI" => {
                let uri = format!("/v1/result/{id}/status");
                call_as(&server, Method::GET, &uri, None, cookie, None).await
            }
            "result read" => {
                let uri = format!("/v1/result/{id}");
                call_as(&server, Method::GET, &uri, None, cookie, None).await
            }
            "result post" => {
                post_result_as(&server, "dev-1", &id, json!({"job_state": "setup"})).await
            }
            "log fragment" => post_log_as(&server, "dev-1", &id).await,
            "agent data" => {
                let uri = "/v1/agents/data/dev-1";
                let body = json!({"state": "provision"});
                call_as(&server, Method::POST, uri, None, cookie, Some(&body)).await
            }
            _ => {
                let body = multipart(BOUNDARY, &[("file", Some("a.tgz"), b"artifact bytes")]);
                let mut req = request(
                    Method::POST,
                    &format!("/v1/result/{id}/artifact"),
                    Some(&multipart_type()),
                    axum::body::Body::from(body),
                );
                req.headers_mut().insert(
                    axum::http::header::COOKIE,
                    "agent_name=dev-1".parse().unwrap(),
                );
                server.send(req).await
            }
        };
        assert_eq!(reply.status, StatusCode::OK, "{what}: {reply:?}");
        let report = app.sweep_leases(later(LEASE / 2)).await.unwrap();
        if cookie.is_some() {
            assert_eq!(report.requeued, 0, "{what} renews the lease");
            post_result_as(&server, "dev-1", &id, json!({"job_state": "complete"}))
                .await
                .assert_ok_text();
        } else {
            assert_eq!(report.requeued, 1, "{what} renews nothing");
            assert_eq!(state_of(&server, &id).await, "waiting");
            // Out of the way of the next round.
            cancel(&server, &id).await.assert_ok_text();
        }
    }
}
