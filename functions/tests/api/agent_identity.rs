//! An agent's identity is bound to its client (issue 12, item 8): an agent
//! name belongs to the agent client that first registered or claimed with
//! it (whatever its case), posts about a running job come only from the
//! client that claimed it (or an admin), and an admin reassigns names.
//! The open mode binds nothing.

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use testflinger_shared::role::{AuthMode, Role};

use crate::common::*;
use crate::support::*;

/// An agent client's access token.
async fn agent_client(server: &Server, client_id: &str) -> String {
    server.client_token(client_id, Role::Agent, |_| {}).await
}

fn assert_forbidden(reply: &Reply, needle: &str) {
    let body = reply.assert_error(StatusCode::FORBIDDEN);
    assert_message_contains(&body, needle);
}

async fn post_agent(server: &Server, token: &str, path: &str, body: Value) -> Reply {
    server
        .call(Method::POST, path, Some(token), Some(&body))
        .await
}

/// Submits a job (as `token`) and answers its id.
async fn submit_id(server: &Server, token: &str, job: Value) -> String {
    let reply = submit(server, Some(token), job).await.ok_json();
    reply["job_id"].as_str().unwrap().to_owned()
}

/// Uploads an artifact as `token`.
async fn upload_artifact_as(server: &Server, token: &str, id: &str) -> Reply {
    let body = multipart(BOUNDARY, &[("file", Some("a.tgz"), b"artifact bytes")]);
    let mut req = request(
        Method::POST,
        &format!("/v1/result/{id}/artifact"),
        Some(&multipart_type()),
        Body::from(body),
    );
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    server.send(req).await
}

/// Every post about a running job, as `token`: each reply by what it was.
async fn report_on_job(server: &Server, token: &str, id: &str) -> Vec<(&'static str, Reply)> {
    let call = |path: String, body: Value| async move {
        server
            .call(Method::POST, &path, Some(token), Some(&body))
            .await
    };
    let fragment = json!({"fragment_number": 0, "timestamp": "2026-12-03T10:00:00Z",
                          "phase": "test", "log_data": "forged\n"});
    let mut legacy = request(
        Method::POST,
        &format!("/v1/result/{id}/output"),
        Some("text/plain"),
        Body::from("forged"),
    );
    legacy.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    vec![
        (
            "complete",
            call(format!("/v1/result/{id}"), json!({"job_state": "complete"})).await,
        ),
        (
            "status",
            call(format!("/v1/result/{id}"), json!({"status": {"test": 0}})).await,
        ),
        (
            "log",
            call(format!("/v1/result/{id}/log/output"), fragment.clone()).await,
        ),
        (
            "serial",
            call(format!("/v1/result/{id}/log/serial"), fragment).await,
        ),
        ("legacy output", server.send(legacy).await),
        ("artifact", upload_artifact_as(server, token, id).await),
        (
            "upload url",
            call(
                format!("/v1/result/{id}/artifact/upload-url"),
                json!({"size": 10}),
            )
            .await,
        ),
        (
            "events",
            call(
                format!("/v1/job/{id}/events"),
                json!({"job_status_webhook": "http://hooks.example/x", "events": []}),
            )
            .await,
        ),
    ]
}

#[tokio::test]
async fn a_claim_with_another_clients_agent_name_is_403_whatever_its_case() {
    let server = standard().await;
    let (lab_a, lab_b) = (
        agent_client(&server, "lab-a").await,
        agent_client(&server, "lab-b").await,
    );
    serve_queues(&server, &lab_a, "dev1", &["q"]).await;
    serve_queues(&server, &lab_b, "dev2", &["q"]).await;
    let admin = admin_token(&server).await;
    let job = submit_id(
        &server,
        &admin,
        json!({"job_queue": "q", "exclude_agents": ["dev1"]}),
    )
    .await;
    // lab-b cannot pass itself off as lab-a's dev1, in any case.
    for name in ["dev1", "DEV1", "Dev1"] {
        let reply = claim(&server, "q", Some(&lab_b), Some(name)).await;
        assert_forbidden(&reply, "belongs to client 'lab-a'");
        assert_message_contains(&reply.json(), &format!("Agent name '{name}'"));
    }
    // lab-a's own agent, in another case, is still excluded by the job.
    for name in ["dev1", "DEV1"] {
        claim(&server, "q", Some(&lab_a), Some(name))
            .await
            .assert_no_content();
    }
    let claimed = claim(&server, "q", Some(&lab_b), Some("dev2"))
        .await
        .ok_json();
    assert_eq!(claimed["job_id"], json!(job));
}

#[tokio::test]
async fn an_upper_case_exclusion_keeps_out_the_lower_case_agent() {
    let server = standard().await;
    let lab_a = agent_client(&server, "lab-a").await;
    serve_queues(&server, &lab_a, "dev1", &["q"]).await;
    serve_queues(&server, &lab_a, "dev2", &["q"]).await;
    let admin = admin_token(&server).await;
    // The submission check counts dev1 as excluded too: only dev2 remains.
    let reply = submit(
        &server,
        Some(&admin),
        json!({"job_queue": "q", "exclude_agents": ["DEV1", "DEV2"]}),
    )
    .await;
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    let job = submit_id(
        &server,
        &admin,
        json!({"job_queue": "q", "exclude_agents": ["DEV1"]}),
    )
    .await;
    claim(&server, "q", Some(&lab_a), Some("dev1"))
        .await
        .assert_no_content();
    let claimed = claim(&server, "q", Some(&lab_a), Some("dev2"))
        .await
        .ok_json();
    assert_eq!(claimed["job_id"], json!(job));
}

#[tokio::test]
async fn a_name_first_used_in_a_claim_becomes_the_claimers() {
    let server = standard().await;
    let (lab_a, lab_b) = (
        agent_client(&server, "lab-a").await,
        agent_client(&server, "lab-b").await,
    );
    claim(&server, "q", Some(&lab_a), Some("fresh"))
        .await
        .assert_no_content();
    let reply = post_agent(
        &server,
        &lab_b,
        "/v1/agents/data/FRESH",
        json!({"state": "waiting"}),
    )
    .await;
    assert_forbidden(&reply, "belongs to client 'lab-a' (registered as 'fresh')");
    claim(&server, "q", Some(&lab_b), Some("fresh"))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    let reply = post_agent(
        &server,
        &lab_a,
        "/v1/agents/data/fresh",
        json!({"state": "waiting"}),
    )
    .await;
    assert_eq!(reply.ok_json(), json!({"status": "OK"}));
}

#[tokio::test]
async fn rewriting_another_clients_registration_is_403() {
    let server = standard().await;
    let (lab_a, lab_b) = (
        agent_client(&server, "lab-a").await,
        agent_client(&server, "lab-b").await,
    );
    let reply = post_agent(
        &server,
        &lab_a,
        "/v1/agents/data/dev1",
        json!({"state": "waiting", "queues": ["q"], "location": "lab A"}),
    )
    .await;
    reply.ok_json();
    let forged = json!({"queues": ["elsewhere"], "location": "forged"});
    for path in ["/v1/agents/data/dev1", "/v1/agents/data/DEV1"] {
        let reply = post_agent(&server, &lab_b, path, forged.clone()).await;
        assert_forbidden(&reply, "belongs to client 'lab-a'");
        assert!(
            reply.headers.get(header::SET_COOKIE).is_none(),
            "no cookie on a refusal"
        );
    }
    let reply = post_agent(
        &server,
        &lab_b,
        "/v2/agents/dev1/data",
        json!({"mode": "offline", "location": "forged"}),
    )
    .await;
    assert_forbidden(&reply, "belongs to client 'lab-a'");
    let reply = post_agent(
        &server,
        &lab_b,
        "/v1/agents/provision_logs/dev1",
        json!({"job_id": "x", "exit_code": 1, "detail": "forged"}),
    )
    .await;
    assert_forbidden(&reply, "belongs to client 'lab-a'");
    let agent = server.get("/v1/agents/data/dev1").await.ok_json();
    assert_eq!(agent["location"], json!("lab A"), "{agent}");
    assert_eq!(agent["queues"], json!(["q"]));
    assert_eq!(agent["state"], json!("waiting"));
    assert!(agent["provision_streak_type"].is_null(), "{agent}");

    // Its own client still may; so may an admin and a manager (the CLI's
    // `admin set agent-status`), without taking the name.
    let reply = post_agent(
        &server,
        &lab_a,
        "/v2/agents/dev1/data",
        json!({"mode": "online", "state": "waiting"}),
    )
    .await;
    reply.ok_json();
    let reply = post_agent(
        &server,
        &lab_a,
        "/v1/agents/provision_logs/dev1",
        json!({"job_id": "x", "exit_code": 0}),
    )
    .await;
    reply.assert_ok_text();
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    for token in [&admin, &manager] {
        let reply = post_agent(
            &server,
            token,
            "/v1/agents/data/dev1",
            json!({"state": "maintenance", "comment": "by an operator"}),
        )
        .await;
        assert_eq!(reply.ok_json(), json!({"status": "OK"}));
    }
    let reply = post_agent(
        &server,
        &admin,
        "/v1/agents/data/new-by-admin",
        json!({"state": "offline"}),
    )
    .await;
    reply.ok_json();
    post_agent(
        &server,
        &lab_b,
        "/v1/agents/data/new-by-admin",
        json!({"state": "waiting"}),
    )
    .await
    .ok_json();
    post_agent(
        &server,
        &lab_a,
        "/v1/agents/data/dev1",
        json!({"state": "waiting"}),
    )
    .await
    .ok_json();
    let reply = post_agent(
        &server,
        &lab_a,
        "/v1/agents/data/new-by-admin",
        json!({"state": "waiting"}),
    )
    .await;
    assert_forbidden(&reply, "belongs to client 'lab-b'");
}

#[tokio::test]
async fn posts_about_a_job_come_only_from_the_client_that_claimed_it() {
    let server = standard().await;
    let (lab_a, lab_b) = (
        agent_client(&server, "lab-a").await,
        agent_client(&server, "lab-b").await,
    );
    serve_queues(&server, &lab_a, "dev1", &["q"]).await;
    serve_queues(&server, &lab_b, "dev2", &["q"]).await;
    let admin = admin_token(&server).await;
    let job = submit_id(
        &server,
        &admin,
        json!({"job_queue": "q", "job_status_webhook": "http://hooks.example/x"}),
    )
    .await;
    let claimed = claim(&server, "q", Some(&lab_a), Some("dev1"))
        .await
        .ok_json();
    assert_eq!(claimed["job_id"], json!(job));

    for (what, reply) in report_on_job(&server, &lab_b, &job).await {
        let body = reply.assert_error(StatusCode::FORBIDDEN);
        assert_message_contains(&body, "was claimed by client 'lab-a'");
        assert_message_contains(&body, &format!("Job {job}"));
        assert!(!what.is_empty());
    }
    let result = server.result(&job).await;
    assert_eq!(result["job_state"], json!("running"), "{result}");
    assert!(result.get("test_status").is_none(), "{result}");
    let log = server
        .get(&format!("/v1/result/{job}/log/output"))
        .await
        .ok_json();
    assert_eq!(
        log["output"]["test"]["last_fragment_number"],
        json!(-1),
        "{log}"
    );
    server
        .get(&format!("/v1/result/{job}/artifact"))
        .await
        .assert_no_content();
    server
        .get(&format!("/v1/result/{job}/output"))
        .await
        .assert_no_content();

    // The claimer posts as ever.
    let reply = server
        .call(
            Method::POST,
            &format!("/v1/result/{job}"),
            Some(&lab_a),
            Some(&json!({"job_state": "test"})),
        )
        .await;
    reply.assert_ok_text();
    upload_artifact_as(&server, &lab_a, &job)
        .await
        .assert_ok_text();
    // An admin may close out a job whose agent is gone.
    for (what, reply) in report_on_job(&server, &admin, &job).await {
        match what {
            // This server relays no webhooks (403 for that) and may store
            // artifacts itself (400): either way, past the claimer's check.
            "events" | "upload url" => {
                assert!(!reply.text().contains("claimed"), "{what}: {reply:?}")
            }
            _ => assert_eq!(reply.status, StatusCode::OK, "{what}: {reply:?}"),
        }
    }
    assert_eq!(server.result(&job).await["job_state"], json!("complete"));
    // Managers do not reach these agent routes at all.
    let manager = manager_token(&server).await;
    let reply = server
        .call(
            Method::POST,
            &format!("/v1/result/{job}"),
            Some(&manager),
            Some(&json!({"job_state": "complete"})),
        )
        .await;
    reply.assert_error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_job_nobody_claimed_takes_no_agent_posts() {
    let server = standard().await;
    let lab_a = agent_client(&server, "lab-a").await;
    serve_queues(&server, &lab_a, "dev1", &["q"]).await;
    let admin = admin_token(&server).await;
    let job = submit_id(&server, &admin, json!({"job_queue": "q"})).await;
    let reply = server
        .call(
            Method::POST,
            &format!("/v1/result/{job}"),
            Some(&lab_a),
            Some(&json!({"job_state": "complete"})),
        )
        .await;
    assert_forbidden(&reply, "has not been claimed");
    let reply = server
        .call(
            Method::POST,
            &format!("/v1/result/{job}"),
            Some(&admin),
            Some(&json!({"job_state": "cancelled"})),
        )
        .await;
    reply.assert_ok_text();
}

#[tokio::test]
async fn a_job_claimed_before_claimers_were_recorded_takes_any_agents_posts() {
    use testflinger_shared::store::ClaimRequest;
    let server = standard().await;
    let lab_a = agent_client(&server, "lab-a").await;
    let admin = admin_token(&server).await;
    let job = submit_id(&server, &admin, json!({"job_queue": "old"})).await;
    // As a claim stored before this server recorded claimers.
    let request = ClaimRequest {
        queues: vec!["old".into()],
        agent_name: Some("old-agent".into()),
        client_id: None,
        lease_until: None,
    };
    let claimed = server
        .state
        .app
        .store()
        .claim_job(&request, testflinger_shared::Timestamp::now())
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(claimed.claimed_by, None);
    let reply = server
        .call(
            Method::POST,
            &format!("/v1/result/{job}"),
            Some(&lab_a),
            Some(&json!({"job_state": "complete"})),
        )
        .await;
    reply.assert_ok_text();
}

#[tokio::test]
async fn the_open_mode_binds_nothing() {
    // With tokens accepted, as without: names and jobs are anyone's.
    let server = Server::with_auth(AuthMode::Open).await;
    let (lab_a, lab_b) = (
        agent_client(&server, "lab-a").await,
        agent_client(&server, "lab-b").await,
    );
    serve_queues(&server, &lab_a, "dev1", &["q"]).await;
    serve_queues(&server, &lab_b, "DEV1", &["q"]).await;
    let job = server.submit(json!({"job_queue": "q"})).await;
    let claimed = claim(&server, "q", Some(&lab_b), Some("dev1"))
        .await
        .ok_json();
    assert_eq!(claimed["job_id"], json!(job));
    for reply in [
        server
            .call(
                Method::POST,
                &format!("/v1/result/{job}"),
                Some(&lab_a),
                Some(&json!({"job_state": "test"})),
            )
            .await,
        server
            .post_json(
                &format!("/v1/result/{job}"),
                &json!({"status": {"test": 0}}),
            )
            .await,
        upload_artifact(&server, &job, b"x").await,
    ] {
        reply.assert_ok_text();
    }
    // A job nobody claimed takes anonymous posts too, as before.
    let waiting = server.submit(json!({"job_queue": "q"})).await;
    server
        .post_result(&waiting, json!({"job_state": "complete"}))
        .await;
    // Anonymous: the README's walk-through.
    let plain = Server::new().await;
    plain
        .post_json("/v1/agents/data/dev1", &json!({"queues": ["q"]}))
        .await
        .ok_json();
    let job = plain
        .submit(json!({"job_queue": "q", "exclude_agents": ["other"]}))
        .await;
    let claimed = plain.get_as("/v1/job?queue=q", "DEV1").await.ok_json();
    assert_eq!(claimed["job_id"], json!(job));
    plain
        .post_result(&job, json!({"job_state": "complete"}))
        .await;
}

#[tokio::test]
async fn admins_reassign_and_release_agent_names() {
    let server = standard().await;
    let (lab_a, lab_b) = (
        agent_client(&server, "lab-a").await,
        agent_client(&server, "lab-b").await,
    );
    let admin = admin_token(&server).await;
    serve_queues(&server, &lab_a, "dev1", &["q"]).await;
    let put = |token: String, name: &'static str, body: Value| {
        let server = &server;
        async move {
            server
                .call(
                    Method::PUT,
                    &format!("/v2/agents/{name}/owner"),
                    Some(&token),
                    Some(&body),
                )
                .await
        }
    };
    let reply = put(admin.clone(), "DEV1", json!({"client_id": "lab-b"})).await;
    assert_eq!(
        reply.ok_json(),
        json!({"name": "DEV1", "client_id": "lab-b", "previous_client_id": "lab-a"})
    );
    claim(&server, "q", Some(&lab_b), Some("dev1"))
        .await
        .assert_no_content();
    assert_forbidden(
        &claim(&server, "q", Some(&lab_a), Some("dev1")).await,
        "belongs to client 'lab-b'",
    );
    // Released: the next agent client to use it takes it.
    let reply = put(admin.clone(), "dev1", json!({"client_id": null})).await;
    assert_eq!(
        reply.ok_json(),
        json!({"name": "dev1", "client_id": null, "previous_client_id": "lab-b"})
    );
    serve_queues(&server, &lab_a, "dev1", &["q"]).await;
    claim(&server, "q", Some(&lab_b), Some("dev1"))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    // A name may be assigned before its agent first starts.
    let reply = put(admin.clone(), "dev9", json!({"client_id": "lab-b"})).await;
    assert_eq!(reply.ok_json()["previous_client_id"], Value::Null);
    assert_forbidden(
        &post_agent(&server, &lab_a, "/v1/agents/data/dev9", json!({})).await,
        "belongs to client 'lab-b'",
    );

    // Only admins; only existing agent clients; a well-formed body.
    let manager = manager_token(&server).await;
    for token in [&manager, &lab_a] {
        put(token.clone(), "dev1", json!({"client_id": "lab-a"}))
            .await
            .assert_error(StatusCode::FORBIDDEN);
    }
    put(admin.clone(), "dev1", json!({"client_id": "nobody"}))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    put(admin.clone(), "dev1", json!({"client_id": "manager"}))
        .await
        .assert_invalid_fields(&["client_id"]);
    put(admin.clone(), "dev1", json!({}))
        .await
        .assert_invalid_fields(&["client_id"]);
    put(
        admin.clone(),
        "dev1",
        json!({"client_id": "lab-b", "owner": "x"}),
    )
    .await
    .assert_invalid_fields(&["owner"]);
    put(admin.clone(), "dev1", json!({"client_id": 7}))
        .await
        .assert_invalid_fields(&["client_id"]);

    // Deleting a client frees its names for the next agent client.
    server
        .call(
            Method::DELETE,
            "/v1/client-permissions/lab-a",
            Some(&admin),
            None,
        )
        .await
        .assert_ok_text();
    serve_queues(&server, &lab_b, "dev1", &["q"]).await;
}
