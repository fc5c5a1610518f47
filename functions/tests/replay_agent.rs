//! `testflinger-agent`'s request sequences (upstream-api.md §8), replayed
//! through the router, asserting every status code and every response field
//! the agent reads (SPEC.md §4.1–4.3, §6, §7). First an anonymous agent in
//! `open` mode; then an agent holding a token in the `standard` mode
//! (SPEC.md §3, upstream-api.md §3); at the end, the `multi` device connector
//! that runs on a parent job's agent.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use common::replay::*;
use common::*;
use serde_json::{json, Value};
use testflinger_shared::logs::LOG_PHASES;
use testflinger_shared::role::{AuthMode, Role};

/// `GET /v1`: the agent's health check.
async fn health_check(server: &Server) {
    let reply = server.get("/v1").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(
        reply.text().starts_with("Testflinger Server v"),
        "{reply:?}"
    );
}

// ---------------------------------------------------------------------------
// Anonymous, in `open` mode

#[tokio::test]
async fn agent_runs_a_whole_job_as_testflinger_agent_does() {
    let server = Server::new().await;

    // Start-up (§8 steps 2–4).
    post_agent_data(&server, AGENT, json!({"state": "waiting", "comment": ""})).await;
    server
        .post_json(
            "/v1/agents/queues",
            &json!({"a": "Queue A devices", "b": "Queue B devices"}),
        )
        .await
        .assert_ok_text();
    server
        .post_json(
            "/v1/agents/images",
            &json!({"a": {"jammy": "url: http://images.example/jammy.img.xz"}}),
        )
        .await
        .assert_ok_text();
    post_agent_data(
        &server,
        AGENT,
        json!({
            "location": "lab 1, rack 3",
            "queues": ["a", "b"],
            "provision_type": "noprovision",
            "identifier": "serial-0042",
        }),
    )
    .await;

    // One idle polling cycle (§8 steps 5–9).
    health_check(&server).await;
    assert_eq!(get_agent(&server, AGENT).await["state"], json!("waiting"));
    server
        .post_json(
            "/v1/agents/queues",
            &json!({"a": "Queue A devices", "b": "Queue B devices"}),
        )
        .await
        .assert_ok_text();
    for _ in 0..2 {
        let agent = get_agent(&server, AGENT).await;
        assert_eq!(agent["state"], json!("waiting"), "{agent}");
        assert!(agent["restricted_to"].is_object(), "{agent}");
    }
    claim_as(&server, AGENT, &["a", "b"])
        .await
        .assert_no_content();

    // A job arrives; the next poll claims it.
    let submitted = json!({
        "job_queue": "b",
        "name": "a whole job",
        "tags": ["nightly", "jammy"],
        "global_timeout": 14400,
        "output_timeout": 900,
        "provision_data": {"distro": "jammy"},
        "firmware_update_data": {"version": "latest"},
        "test_data": {"test_cmds": "ssh $DEVICE_IP uname -a"},
        "allocate_data": {"allocate": true},
        "reserve_data": {"ssh_keys": ["lp:someone"], "timeout": "30m"},
        "custom_field": {"kept": [1, 2]},
    });
    let id = server.submit(submitted.clone()).await;
    assert_eq!(job_state(&server, &id).await, "waiting");
    let job = claim_expecting(&server, AGENT, &["a", "b"], &id).await;
    for field in [
        "job_queue",
        "name",
        "tags",
        "global_timeout",
        "output_timeout",
        "provision_data",
        "firmware_update_data",
        "test_data",
        "allocate_data",
        "custom_field",
    ] {
        assert_eq!(job[field], submitted[field], "{field}: {job}");
    }
    assert_eq!(
        job["reserve_data"],
        json!({"ssh_keys": ["lp:someone"], "timeout": 1800}),
        "the reservation timeout is stored in seconds: {job}"
    );
    assert!(job.get("job_status_webhook").is_none(), "{job}");
    assert!(job.get("attachments_status").is_none(), "{job}");
    assert_eq!(job_state(&server, &id).await, "running");

    // Step 10.
    post_agent_data(&server, AGENT, json!({"job_id": id})).await;

    // Step 12: the phases.
    let mut output_n = 0_i64;
    let mut serial_n = 0_i64;
    let mut expected_output: BTreeMap<&str, String> = BTreeMap::new();
    let mut expected_serial: BTreeMap<&str, String> = BTreeMap::new();
    let mut status = serde_json::Map::new();
    let device_info = json!({"device_ip": "10.1.2.3", "agent_name": AGENT});
    let mut previous_state = "running".to_owned();
    for phase in PHASES {
        let result = server.result(&id).await;
        assert_eq!(result["job_state"], json!(previous_state), "{result}");
        assert_ne!(result["job_state"], json!("cancelled"));
        for _ in 0..2 {
            get_agent(&server, AGENT).await;
        }
        server.post_result(&id, json!({"job_state": phase})).await;
        post_agent_data(&server, AGENT, json!({"state": phase, "comment": ""})).await;
        previous_state = phase.to_owned();

        let mut text = String::new();
        for banner in [
            "*".repeat(40),
            format!("* Starting testflinger {phase} phase on {AGENT}"),
            "*".repeat(40),
        ] {
            let line = format!("{banner}\n");
            post_fragment(&server, &id, "output", fragment(output_n, phase, &line)).await;
            output_n += 1;
            text.push_str(&line);
        }
        if phase == "allocate" {
            server
                .post_result(&id, json!({"device_info": device_info}))
                .await;
        }
        for k in 0..2 {
            let line = format!("{phase} output {k}\n");
            post_fragment(&server, &id, "output", fragment(output_n, phase, &line)).await;
            output_n += 1;
            text.push_str(&line);
        }
        expected_output.insert(phase, text);
        if phase == "test" {
            let serial = "[    0.000000] Linux version 6.8.0\n";
            post_fragment(&server, &id, "serial", fragment(serial_n, phase, serial)).await;
            serial_n += 1;
            expected_serial.insert(phase, serial.to_owned());
        }
        let rc = if phase == "test" { 1 } else { 0 };
        status.insert(phase.to_owned(), json!(rc));
        server
            .post_result(&id, json!({"status": Value::Object(status.clone())}))
            .await;
        if phase == "provision" {
            server
                .post_json(
                    &format!("/v1/agents/provision_logs/{AGENT}"),
                    &json!({"job_id": id, "exit_code": 0, "detail": "provision_success"}),
                )
                .await
                .assert_ok_text();
        }
    }

    // Step 13: cleanup posts logs and status, but no state.
    let mut cleanup = String::new();
    for line in ["*** cleanup banner ***\n", "cleaning up\n"] {
        post_fragment(&server, &id, "output", fragment(output_n, "cleanup", line)).await;
        output_n += 1;
        cleanup.push_str(line);
    }
    expected_output.insert("cleanup", cleanup);
    status.insert("cleanup".into(), json!(0));
    server
        .post_result(&id, json!({"status": Value::Object(status.clone())}))
        .await;
    assert_eq!(job_state(&server, &id).await, "reserve");

    // Step 14: outcome.
    let artifact = binary(70_000, 7);
    upload_artifact(&server, &id, &artifact)
        .await
        .assert_ok_text();
    server
        .post_result(
            &id,
            json!({"status": Value::Object(status.clone()), "job_state": "complete"}),
        )
        .await;

    // Step 15: back to waiting, and straight to the next poll.
    health_check(&server).await;
    post_agent_data(&server, AGENT, json!({"job_id": ""})).await;
    get_agent(&server, AGENT).await;
    post_agent_data(&server, AGENT, json!({"state": "waiting", "comment": ""})).await;
    post_agent_data(
        &server,
        AGENT,
        json!({"log": ["job finished", "back to waiting"]}),
    )
    .await;
    claim_as(&server, AGENT, &["a", "b"])
        .await
        .assert_no_content();

    // What the CLI then reads.
    let result = server.result(&id).await;
    assert_eq!(result["job_state"], json!("complete"), "{result}");
    for (phase, rc) in &status {
        assert_eq!(result[format!("{phase}_status")], *rc, "{phase}: {result}");
    }
    for phase in LOG_PHASES {
        assert_eq!(
            result[format!("{phase}_output")],
            json!(expected_output[phase]),
            "{phase}: {result}"
        );
        match expected_serial.get(phase) {
            Some(serial) => assert_eq!(result[format!("{phase}_serial")], json!(serial)),
            None => assert!(
                result.get(format!("{phase}_serial")).is_none(),
                "{phase}: {result}"
            ),
        }
    }
    assert_eq!(result["device_info"], device_info, "{result}");

    let view = server
        .get(&format!("/v1/result/{id}/log/output"))
        .await
        .ok_json();
    assert_eq!(next_start(&view, "output", 0), output_n, "{view}");
    assert_eq!(
        view["output"]["setup"],
        json!({"last_fragment_number": 4, "log_data": expected_output["setup"]})
    );
    let serial_view = server
        .get(&format!("/v1/result/{id}/log/serial"))
        .await
        .ok_json();
    assert_eq!(
        serial_view["serial"]["test"],
        json!({"last_fragment_number": serial_n - 1, "log_data": expected_serial["test"]})
    );

    let download = server.get(&format!("/v1/result/{id}/artifact")).await;
    assert_eq!(download.status, StatusCode::OK, "{download:?}");
    assert_eq!(download.body.as_ref(), artifact.as_slice());

    let agent = get_agent(&server, AGENT).await;
    assert_eq!(agent["state"], json!("waiting"), "{agent}");
    assert_eq!(agent["comment"], json!(""), "{agent}");
    assert_eq!(agent["job_id"], json!(""), "{agent}");
    assert_eq!(agent["queues"], json!(["a", "b"]), "{agent}");
    assert_eq!(agent["location"], json!("lab 1, rack 3"), "{agent}");
    assert_eq!(agent["provision_type"], json!("noprovision"), "{agent}");
    assert_eq!(agent["identifier"], json!("serial-0042"), "{agent}");
    assert_eq!(agent["provision_streak_type"], json!("pass"), "{agent}");
    assert_eq!(agent["provision_streak_count"], json!(1), "{agent}");
    assert!(
        is_rfc3339_utc(agent["updated_at"].as_str().unwrap_or_default()),
        "{agent}"
    );
    assert_eq!(
        agent["log"],
        json!(["job finished", "back to waiting"]),
        "{agent}"
    );
}

#[tokio::test]
async fn agent_sees_a_cancel_and_its_late_complete_keeps_the_job_cancelled() {
    let server = Server::new().await;
    start_agent(&server, AGENT, &["q"]).await;
    let id = server
        .submit(json!({"job_queue": "q", "test_data": {"test_cmds": "sleep 3600"}}))
        .await;
    claim_expecting(&server, AGENT, &["q"], &id).await;
    post_agent_data(&server, AGENT, json!({"job_id": id})).await;
    let mut status = serde_json::Map::new();
    for phase in ["setup", "provision", "firmware_update", "test"] {
        assert_ne!(job_state(&server, &id).await, "cancelled");
        server.post_result(&id, json!({"job_state": phase})).await;
        post_agent_data(&server, AGENT, json!({"state": phase, "comment": ""})).await;
        if phase != "test" {
            status.insert(phase.into(), json!(0));
            server
                .post_result(&id, json!({"status": Value::Object(status.clone())}))
                .await;
        }
    }
    post_fragment(&server, &id, "output", fragment(0, "test", "running\n")).await;

    // Someone cancels the running job (CLI `cancel`).
    cli_auth_init(&server).await;
    server
        .post_json(
            &format!("/v1/job/{id}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_ok_text();

    // The agent's cancel check inside the test phase sees it.
    assert_eq!(job_state(&server, &id).await, "cancelled");

    // It kills the command, runs cleanup and reports as usual.
    status.insert("test".into(), json!(247));
    server
        .post_result(&id, json!({"status": Value::Object(status.clone())}))
        .await;
    post_fragment(&server, &id, "output", fragment(1, "cleanup", "cleanup\n")).await;
    status.insert("cleanup".into(), json!(0));
    server
        .post_result(&id, json!({"status": Value::Object(status.clone())}))
        .await;
    server
        .post_result(
            &id,
            json!({"status": Value::Object(status.clone()), "job_state": "complete"}),
        )
        .await;
    post_agent_data(&server, AGENT, json!({"job_id": ""})).await;
    post_agent_data(&server, AGENT, json!({"state": "waiting", "comment": ""})).await;

    // The job stays cancelled; the late report is recorded in the result.
    let result = server.result(&id).await;
    assert_eq!(result["job_state"], json!("cancelled"), "{result}");
    assert_eq!(result["test_status"], json!(247), "{result}");
    assert_eq!(result["cleanup_status"], json!(0), "{result}");
    assert_eq!(result["test_output"], json!("running\n"), "{result}");
    assert_eq!(result["cleanup_output"], json!("cleanup\n"), "{result}");
    assert!(
        result
            .as_object()
            .unwrap()
            .iter()
            .any(|(key, value)| key != "job_state" && *value == json!("complete")),
        "the agent's `complete` is recorded in the result: {result}"
    );

    // `GET /v1/job/<id>` is the definition; the state lives in the result.
    let definition = server.get(&format!("/v1/job/{id}")).await.ok_json();
    assert_eq!(definition["job_id"], json!(id), "{definition}");
    assert_eq!(definition["job_queue"], json!("q"), "{definition}");
    assert_eq!(
        definition["test_data"],
        json!({"test_cmds": "sleep 3600"}),
        "{definition}"
    );

    // The queue view and a second cancel agree.
    let jobs = server.get("/v1/queues/q/jobs").await.ok_json();
    assert_eq!(jobs[0]["job_state"], json!("cancelled"), "{jobs}");
    server
        .post_json(
            &format!("/v1/job/{id}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    claim_as(&server, AGENT, &["q"]).await.assert_no_content();
}

/// The newer agent (upstream after August 2026): it posts no `job_id` of its
/// own, checks for a cancel with `GET /v1/result/{id}/status` (any non-2xx
/// meaning "not cancelled"), and the server links it to its job.
#[tokio::test]
async fn a_newer_agent_polls_status_for_a_cancel_and_posts_no_job_id() {
    let server = Server::new().await;
    start_agent(&server, AGENT, &["q"]).await;
    let id = server
        .submit(json!({"job_queue": "q", "test_data": {"test_cmds": "sleep 3600"}}))
        .await;
    claim_expecting(&server, AGENT, &["q"], &id).await;
    let cancelled = |status: &Value| status["job_state"] == json!("cancelled");
    let status_of = |id: String| {
        let server = &server;
        async move { server.get(&format!("/v1/result/{id}/status")).await }
    };
    let mut status = serde_json::Map::new();
    for phase in ["setup", "provision", "test"] {
        let check = status_of(id.clone()).await;
        assert_eq!(check.status, StatusCode::OK, "{check:?}");
        assert!(!cancelled(&check.json()));
        server.post_result(&id, json!({"job_state": phase})).await;
        post_agent_data(&server, AGENT, json!({"state": phase, "comment": ""})).await;
        if phase != "test" {
            status.insert(phase.into(), json!(0));
            server
                .post_result(&id, json!({"status": Value::Object(status.clone())}))
                .await;
        }
    }
    // The server, not the agent, says which job the agent runs.
    assert_eq!(get_agent(&server, AGENT).await["job_id"], json!(id));
    let check = status_of(id.clone()).await.json();
    assert_eq!(
        check,
        json!({"job_state": "test", "setup_status": 0, "provision_status": 0})
    );

    server
        .post_json(
            &format!("/v1/job/{id}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_ok_text();
    // The next poll inside the test phase sees it.
    assert!(cancelled(&status_of(id.clone()).await.json()));
    assert_eq!(get_agent(&server, AGENT).await["job_id"], json!(""));
    status.insert("test".into(), json!(247));
    server
        .post_result(
            &id,
            json!({"status": Value::Object(status.clone()), "job_state": "complete"}),
        )
        .await;
    post_agent_data(&server, AGENT, json!({"state": "waiting", "comment": ""})).await;
    assert!(cancelled(&status_of(id.clone()).await.json()));
    // A status poll for a job that is gone is 204: "not cancelled", go on.
    status_of(uuid::Uuid::new_v4().to_string())
        .await
        .assert_no_content();
    // The CLI's `job-events` shows what happened.
    let events = server.get(&format!("/v1/events/job/{id}")).await.ok_json();
    let names: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"job_submitted"));
    assert_eq!(names[1], "job_assigned");
    assert!(names.contains(&"job_cancelled"), "{names:?}");
    assert!(!names.contains(&"job_completed"), "{names:?}");
}

#[tokio::test]
async fn an_excluded_agent_does_not_get_the_job() {
    let server = Server::new().await;
    start_agent(&server, "dev-01", &["q"]).await;
    start_agent(&server, "dev-02", &["q"]).await;
    let id = server
        .submit(json!({"job_queue": "q", "exclude_agents": ["dev-01"]}))
        .await;
    claim_as(&server, "dev-01", &["q"])
        .await
        .assert_no_content();
    assert_eq!(job_state(&server, &id).await, "waiting");
    let job = claim_expecting(&server, "dev-02", &["q"], &id).await;
    assert_eq!(job["exclude_agents"], json!(["dev-01"]), "{job}");
    assert_eq!(job_state(&server, &id).await, "running");
    claim_as(&server, "dev-01", &["q"])
        .await
        .assert_no_content();
}

#[tokio::test]
async fn an_agent_downloads_attachments_after_its_claim() {
    let server = Server::new().await;
    start_agent(&server, AGENT, &["q"]).await;
    let test_data = json!({"test_cmds": "cat file.txt", "attachments": [{"agent": "file.txt"}]});
    let id = server
        .submit(json!({"job_queue": "q", "test_data": test_data}))
        .await;

    // Not claimable before its attachments arrive.
    claim_as(&server, AGENT, &["q"]).await.assert_no_content();
    server
        .get(&format!("/v1/job/{id}/attachments"))
        .await
        .assert_no_content();

    let archive = binary(50_000, 3);
    upload_attachments(&server, &id, &archive)
        .await
        .assert_ok_text();
    // The CLI retries an upload whose answer it did not see.
    upload_attachments(&server, &id, &archive)
        .await
        .assert_ok_text();

    let job = claim_expecting(&server, AGENT, &["q"], &id).await;
    assert_eq!(job["attachments_status"], json!("complete"), "{job}");
    assert_eq!(job["test_data"], test_data, "{job}");

    // §8 step 11.
    let download = server.get(&format!("/v1/job/{id}/attachments")).await;
    assert_eq!(download.status, StatusCode::OK, "{download:?}");
    assert!(
        download.content_type().starts_with("application/gzip"),
        "{download:?}"
    );
    assert_eq!(download.body.as_ref(), archive.as_slice());

    // A job that declared none: no upload, nothing to download.
    let plain = server.submit(json!({"job_queue": "q"})).await;
    upload_attachments(&server, &plain, &archive)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    server
        .get(&format!("/v1/job/{plain}/attachments"))
        .await
        .assert_no_content();
    upload_attachments(&server, UNKNOWN_ID, &archive)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    upload_attachments(&server, "not-a-uuid", &archive)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------
// With an agent token, in the `standard` mode (SPEC.md §3,
// upstream-api.md §3, §8)

/// A request as an agent without a token would make it: its cookie, no
/// `Authorization`.
async fn tokenless(
    server: &Server,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut req = request(method, uri, content_type, Body::from(body));
    req.headers_mut().insert(
        header::COOKIE,
        format!("agent_name={AGENT}").parse().unwrap(),
    );
    server.send(req).await
}

#[tokio::test]
async fn agent_with_an_agent_token_runs_a_whole_job_in_standard_mode() {
    let server = Server::with_auth(AuthMode::Standard).await;

    // The operator creates the agent client; the agent-host charm logs in
    // once and writes the refresh token to the agent's token file.
    server
        .add_client(AGENT_HOST, AGENT_HOST_SECRET, Role::Agent, |_| {})
        .await;
    let refresh_token = charm_login(&server, AGENT_HOST, AGENT_HOST_SECRET).await;
    let mut agent = TokenAgent::new(&server, AGENT, Some(refresh_token));

    // Start-up: the first request fetches an access token (§8 steps 1–4).
    agent.start(&["a", "b"]).await;
    assert_eq!(agent.refreshes, 1);
    let me = agent.get_self().await;
    assert_eq!(me["queues"], json!(["a", "b"]), "{me}");
    assert_eq!(me["state"], json!("waiting"), "{me}");
    assert_eq!(
        server.get("/v1/agents/images/a").await.ok_json(),
        json!({"jammy": "url: http://images.example/jammy.img.xz"})
    );

    // Idle cycles.
    for _ in 0..2 {
        agent.poll(&["a", "b"]).await.assert_no_content();
    }

    // A contributor (the anonymous CLI) submits a job with an attachment.
    cli_auth_init(&server).await;
    server.get("/v1/queues/b/agents").await.ok_json();
    let test_data = json!({"test_cmds": "./run.sh", "attachments": [{"agent": "run.sh"}]});
    let id = server
        .submit(json!({"job_queue": "b", "name": "with a token", "test_data": test_data}))
        .await;
    agent.poll(&["a", "b"]).await.assert_no_content();
    let archive = binary(3_000, 5);
    upload_attachments(&server, &id, &archive)
        .await
        .assert_ok_text();

    // In `standard` mode a claim needs the agent's token and its cookie.
    let mut no_cookie = request(Method::GET, "/v1/job?queue=a&queue=b", None, Body::empty());
    no_cookie.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {}", agent.access_token.as_deref().unwrap())
            .parse()
            .unwrap(),
    );
    let message = error_message(&server.send(no_cookie).await, StatusCode::UNAUTHORIZED);
    assert!(message.starts_with("Agent not identified"), "{message}");
    let message = error_message(
        &tokenless(
            &server,
            Method::GET,
            "/v1/job?queue=a&queue=b",
            None,
            Vec::new(),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    );
    assert!(!message.starts_with("Agent not identified"), "{message}");
    assert_eq!(job_state(&server, &id).await, "waiting");

    // The claim.
    let job = agent.poll(&["a", "b"]).await.ok_json();
    assert_eq!(job["job_id"], json!(id), "{job}");
    assert!(
        is_rfc3339_utc(job["started_at"].as_str().unwrap_or_default()),
        "{job}"
    );
    assert_eq!(job["test_data"], test_data, "{job}");
    assert_eq!(job["attachments_status"], json!("complete"), "{job}");
    assert_eq!(job_state(&server, &id).await, "running");

    // The access token expires: the next request (step 10) is refused with
    // 401 and changes nothing; the agent refreshes and replays it.
    agent.expire_access_token();
    let before = get_agent(&server, AGENT).await;
    assert_eq!(before["job_id"], json!(id), "the claim linked the agent");
    let refused = agent
        .send_once(
            &Method::POST,
            &format!("/v1/agents/data/{AGENT}"),
            Some("application/json"),
            json!({"job_id": id}).to_string().as_bytes(),
        )
        .await;
    let message = error_message(&refused, StatusCode::UNAUTHORIZED);
    assert!(message.to_lowercase().contains("expired"), "{message}");
    assert_eq!(
        get_agent(&server, AGENT).await,
        before,
        "a refused request changes nothing"
    );
    agent.refresh().await;
    assert_eq!(agent.refreshes, 2);
    agent.post_agent_data(json!({"job_id": id})).await;
    assert_eq!(get_agent(&server, AGENT).await["job_id"], json!(id));
    assert!(agent.unauthorized.is_empty());

    // Step 11: the attachments.
    let download = agent.get(&format!("/v1/job/{id}/attachments")).await;
    assert_eq!(download.status, StatusCode::OK, "{download:?}");
    assert_eq!(download.body.as_ref(), archive.as_slice());

    // Without the token, every agent-only endpoint answers 401 and changes
    // nothing (a CLI or a script cannot act as an agent).
    let fragment_body = fragment(0, "setup", "forged\n").to_string().into_bytes();
    for (method, uri, content_type, body) in [
        (Method::GET, "/v1/job?queue=b".to_owned(), None, Vec::new()),
        (
            Method::POST,
            format!("/v1/result/{id}"),
            Some("application/json".to_owned()),
            json!({"job_state": "complete"}).to_string().into_bytes(),
        ),
        (
            Method::POST,
            format!("/v1/result/{id}/log/output"),
            Some("application/json".to_owned()),
            fragment_body.clone(),
        ),
        (
            Method::POST,
            format!("/v1/result/{id}/log/serial"),
            Some("application/json".to_owned()),
            fragment_body,
        ),
        (
            Method::POST,
            format!("/v1/result/{id}/artifact"),
            Some(multipart_type()),
            multipart(BOUNDARY, &[("file", Some("file"), b"forged")]),
        ),
        (
            Method::GET,
            format!("/v1/job/{id}/attachments"),
            None,
            Vec::new(),
        ),
        (
            Method::POST,
            format!("/v1/agents/data/{AGENT}"),
            Some("application/json".to_owned()),
            json!({"state": "offline", "comment": "forged"})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            "/v1/agents/queues".to_owned(),
            Some("application/json".to_owned()),
            json!({"forged": "queue"}).to_string().into_bytes(),
        ),
        (
            Method::POST,
            "/v1/agents/images".to_owned(),
            Some("application/json".to_owned()),
            json!({"a": {"forged": "url: http://evil.example/x.img"}})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            format!("/v1/agents/provision_logs/{AGENT}"),
            Some("application/json".to_owned()),
            json!({"job_id": id, "exit_code": 1, "detail": "forged"})
                .to_string()
                .into_bytes(),
        ),
        (
            Method::POST,
            format!("/v1/job/{id}/events"),
            Some("application/json".to_owned()),
            json!({"job_status_webhook": "http://hooks.example/x", "events": []})
                .to_string()
                .into_bytes(),
        ),
    ] {
        let reply = tokenless(&server, method.clone(), &uri, content_type.as_deref(), body).await;
        let message = error_message(&reply, StatusCode::UNAUTHORIZED);
        assert!(!message.is_empty(), "{method} {uri}");
    }
    assert_eq!(job_state(&server, &id).await, "running");
    let me = get_agent(&server, AGENT).await;
    assert_eq!(me["state"], json!("waiting"), "{me}");
    assert_eq!(me["provision_streak_count"], Value::Null, "{me}");
    assert_eq!(
        server.get("/v1/agents/queues").await.ok_json(),
        advertised(&["a", "b"])
    );
    assert_eq!(
        server.get("/v1/agents/images/a").await.ok_json(),
        json!({"jammy": "url: http://images.example/jammy.img.xz"})
    );
    server
        .get(&format!("/v1/result/{id}/artifact"))
        .await
        .assert_no_content();

    // Step 12: the phases, with the token and the cookie throughout.
    let mut output_n = 0_i64;
    let mut expected_output: BTreeMap<&str, String> = BTreeMap::new();
    let mut status = serde_json::Map::new();
    let device_info = json!({"device_ip": "10.1.2.3", "agent_name": AGENT});
    let mut previous_state = "running".to_owned();
    for phase in PHASES {
        let result = agent.result(&id).await;
        assert_eq!(result["job_state"], json!(previous_state), "{result}");
        for _ in 0..2 {
            agent.get_self().await;
        }
        agent.post_result(&id, json!({"job_state": phase})).await;
        agent
            .post_agent_data(json!({"state": phase, "comment": ""}))
            .await;
        previous_state = phase.to_owned();
        let mut text = String::new();
        for k in 0..3 {
            if phase == "test" && k == 1 {
                // The token expires in the middle of the output: the agent
                // gets a 401, refreshes and replays the fragment once.
                agent.expire_access_token();
            }
            let line = format!("{phase} line {k}\n");
            agent
                .post_fragment(&id, "output", fragment(output_n, phase, &line))
                .await;
            output_n += 1;
            text.push_str(&line);
        }
        expected_output.insert(phase, text);
        if phase == "allocate" {
            agent
                .post_result(&id, json!({"device_info": device_info}))
                .await;
        }
        if phase == "test" {
            agent
                .post_fragment(&id, "serial", fragment(0, phase, "boot\n"))
                .await;
        }
        status.insert(phase.to_owned(), json!(0));
        agent
            .post_result(&id, json!({"status": Value::Object(status.clone())}))
            .await;
        if phase == "provision" {
            agent
                .post_json(
                    &format!("/v1/agents/provision_logs/{AGENT}"),
                    &json!({"job_id": id, "exit_code": 0, "detail": "provision_success"}),
                )
                .await
                .assert_ok_text();
        }
    }
    let refused = agent.take_unauthorized();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let message = error_message(&refused[0], StatusCode::UNAUTHORIZED);
    assert!(message.to_lowercase().contains("expired"), "{message}");
    assert_eq!(agent.refreshes, 3);

    // Step 13: cleanup.
    agent
        .post_fragment(&id, "output", fragment(output_n, "cleanup", "cleanup\n"))
        .await;
    expected_output.insert("cleanup", "cleanup\n".to_owned());
    status.insert("cleanup".into(), json!(0));
    agent
        .post_result(&id, json!({"status": Value::Object(status.clone())}))
        .await;

    // Step 14: the outcome.
    let artifact = binary(20_000, 9);
    agent.upload_artifact(&id, &artifact).await.assert_ok_text();
    agent
        .post_result(
            &id,
            json!({"status": Value::Object(status.clone()), "job_state": "complete"}),
        )
        .await;

    // Step 15, and the next poll.
    agent.get("/v1").await;
    agent.post_agent_data(json!({"job_id": ""})).await;
    agent.get_self().await;
    agent
        .post_agent_data(json!({"state": "waiting", "comment": ""}))
        .await;
    agent.claim(&["a", "b"]).await.assert_no_content();
    assert!(agent.take_unauthorized().is_empty());
    assert_eq!(agent.refreshes, 3);

    // What the anonymous CLI then reads.
    let result = server.result(&id).await;
    assert_eq!(result["job_state"], json!("complete"), "{result}");
    assert_eq!(result["device_info"], device_info, "{result}");
    assert_eq!(result["test_serial"], json!("boot\n"), "{result}");
    for (phase, text) in &expected_output {
        assert_eq!(
            result[format!("{phase}_output")],
            json!(text),
            "{phase}: {result}"
        );
        assert_eq!(
            result[format!("{phase}_status")],
            json!(0),
            "{phase}: {result}"
        );
    }
    let view = server
        .get(&format!("/v1/result/{id}/log/output"))
        .await
        .ok_json();
    assert_eq!(next_start(&view, "output", 0), output_n + 1, "{view}");
    let download = server.get(&format!("/v1/result/{id}/artifact")).await;
    assert_eq!(download.status, StatusCode::OK, "{download:?}");
    assert_eq!(download.body.as_ref(), artifact.as_slice());
    let me = get_agent(&server, AGENT).await;
    assert_eq!(me["state"], json!("waiting"), "{me}");
    assert_eq!(me["job_id"], json!(""), "{me}");
    assert_eq!(me["provision_streak_type"], json!("pass"), "{me}");
    assert_eq!(me["provision_streak_count"], json!(1), "{me}");
}

// ---------------------------------------------------------------------------
// The `multi` device connector, in the `open` and `standard` modes

/// The `multi` device connector, on the parent job's agent, is an anonymous
/// API client (upstream-api.md §8): it submits child jobs with
/// `parent_job_id` and `allocate_data`, polls their results until
/// `allocated`, reads their `device_info`, and cancels them at the end.
async fn multi_device_children_run_and_are_cancelled(mode: AuthMode) {
    let server = Server::with_auth(mode).await;
    let mut parent_agent = TokenAgent::for_mode(&server, mode, "multi-01").await;
    parent_agent.start(&["multi"]).await;
    let mut child_agents = Vec::new();
    for (name, queue) in [("rpi-01", "rpi-a"), ("rpi-02", "rpi-b")] {
        let mut agent = TokenAgent::for_mode(&server, mode, name).await;
        agent.start(&[queue]).await;
        child_agents.push((agent, queue));
    }

    let jobs = json!([
        {"job_queue": "rpi-a", "provision_data": {"distro": "jammy"}, "test_data": {"test_cmds": "true"}},
        {"job_queue": "rpi-b", "provision_data": {"distro": "noble"}, "test_data": {"test_cmds": "true"}},
    ]);
    cli_auth_init(&server).await;
    let parent = server
        .submit(json!({
            "job_queue": "multi",
            "provision_data": {"jobs": jobs},
            "test_data": {"test_cmds": "run-across-devices"},
        }))
        .await;
    let claimed = parent_agent.poll(&["multi"]).await.ok_json();
    assert_eq!(claimed["job_id"], json!(parent), "{claimed}");
    assert_eq!(claimed["provision_data"]["jobs"], jobs, "{claimed}");
    parent_agent
        .post_agent_data(json!({"job_id": parent}))
        .await;
    for phase in ["setup", "provision"] {
        parent_agent
            .post_result(&parent, json!({"job_state": phase}))
            .await;
    }

    // The connector creates the children (no auth header, no cookie).
    let mut children = Vec::new();
    for job in jobs.as_array().unwrap() {
        let mut job = job.clone();
        job["allocate_data"] = json!({"allocate": true});
        job["parent_job_id"] = json!(parent);
        let reply = server.post_json("/v1/job", &job).await;
        children.push(
            reply.ok_json()["job_id"]
                .as_str()
                .expect("a job_id")
                .to_owned(),
        );
    }
    for child in &children {
        assert_eq!(job_state(&server, child).await, "waiting");
    }
    assert_eq!(job_state(&server, &parent).await, "provision");

    // Each child's agent runs it up to `allocated`, then watches its own
    // and its parent's state.
    for (((agent, queue), child), ip) in child_agents
        .iter_mut()
        .zip(&children)
        .zip(["10.0.0.11", "10.0.0.12"])
    {
        let job = agent.poll(&[queue]).await.ok_json();
        assert_eq!(job["job_id"], json!(child), "{job}");
        assert_eq!(job["parent_job_id"], json!(parent), "{job}");
        assert_eq!(job["allocate_data"], json!({"allocate": true}), "{job}");
        agent.post_agent_data(json!({"job_id": child})).await;
        for phase in ["setup", "provision", "firmware_update", "test", "allocate"] {
            assert_ne!(agent.result(child).await["job_state"], json!("cancelled"));
            agent.post_result(child, json!({"job_state": phase})).await;
            agent
                .post_agent_data(json!({"state": phase, "comment": ""}))
                .await;
        }
        agent
            .post_result(child, json!({"device_info": {"device_ip": ip}}))
            .await;
        agent
            .post_result(child, json!({"job_state": "allocated"}))
            .await;
        assert_eq!(agent.result(child).await["job_state"], json!("allocated"));
        assert_eq!(agent.result(&parent).await["job_state"], json!("provision"));
    }

    // The connector sees every child allocated and reads their addresses.
    let mut addresses = Vec::new();
    for child in &children {
        let result = server.result(child).await;
        assert_eq!(result["job_state"], json!("allocated"), "{result}");
        addresses.push(result["device_info"]["device_ip"].clone());
    }
    assert_eq!(addresses, [json!("10.0.0.11"), json!("10.0.0.12")]);
    assert_eq!(job_state(&server, &parent).await, "provision");

    // The parent's test runs; then the connector cancels the children.
    parent_agent
        .post_result(&parent, json!({"job_state": "test"}))
        .await;
    for child in &children {
        server
            .post_json(
                &format!("/v1/job/{child}/action"),
                &json!({"action": "cancel"}),
            )
            .await
            .assert_ok_text();
    }
    // A second cancel is 400, which the connector ignores.
    server
        .post_json(
            &format!("/v1/job/{}/action", children[0]),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST);

    // The children's agents see it, clean up and report.
    for ((agent, _), child) in child_agents.iter_mut().zip(&children) {
        assert_eq!(agent.result(child).await["job_state"], json!("cancelled"));
        agent
            .post_result(
                child,
                json!({"status": {"setup": 0, "provision": 0, "allocate": 0}, "job_state": "complete"}),
            )
            .await;
        agent.post_agent_data(json!({"job_id": ""})).await;
        agent
            .post_agent_data(json!({"state": "waiting", "comment": ""}))
            .await;
        assert_eq!(job_state(&server, child).await, "cancelled");
        assert!(agent.take_unauthorized().is_empty());
    }
    parent_agent
        .post_result(
            &parent,
            json!({"status": {"provision": 0, "test": 0}, "job_state": "complete"}),
        )
        .await;
    assert_eq!(job_state(&server, &parent).await, "complete");
    assert!(parent_agent.take_unauthorized().is_empty());
}

#[tokio::test]
async fn multi_device_children_in_open_mode() {
    multi_device_children_run_and_are_cancelled(AuthMode::Open).await;
}

#[tokio::test]
async fn multi_device_children_in_standard_mode() {
    multi_device_children_run_and_are_cancelled(AuthMode::Standard).await;
}

// ---------------------------------------------------------------------------
// Restarts (upstream-2026-09.md §1.4: #1291, #1304)

/// The newest agent's start-up: it reads its data first and re-posts a
/// stored `offline` or `maintenance` with the stored comment; anything
/// else (`restart`, `waiting`, a phase, a 404) makes it post `waiting`.
/// Returns the state it posted.
async fn agent_start_up(server: &Server, name: &str) -> String {
    let reply = server.get(&format!("/v1/agents/data/{name}")).await;
    let (state, comment) = if reply.status == StatusCode::OK {
        let data = reply.json();
        match data["state"].as_str() {
            Some(kept @ ("offline" | "maintenance")) => (
                kept.to_owned(),
                data["comment"].as_str().unwrap_or_default().to_owned(),
            ),
            _ => ("waiting".to_owned(), String::new()),
        }
    } else {
        assert_eq!(
            error_message(&reply, StatusCode::NOT_FOUND),
            format!("Agent '{name}' does not exist.")
        );
        ("waiting".to_owned(), String::new())
    };
    post_agent_data(server, name, json!({"state": state, "comment": comment})).await;
    state
}

#[tokio::test]
async fn offline_and_maintenance_survive_an_agent_restart_and_restart_does_not() {
    let server = Server::new().await;
    let name = "restarting-agent";

    // First start: unknown agent (404), so it posts waiting.
    assert_eq!(agent_start_up(&server, name).await, "waiting");
    start_agent(&server, name, &["rq"]).await;
    let id = server.submit(json!({"job_queue": "rq"})).await;

    // An operator takes it offline; the agent is restarted (a redeploy).
    post_agent_data(
        &server,
        name,
        json!({"state": "offline", "comment": "bad cable"}),
    )
    .await;
    assert_eq!(agent_start_up(&server, name).await, "offline");
    let data = get_agent(&server, name).await;
    assert_eq!(
        (data["state"].as_str(), data["comment"].as_str()),
        (Some("offline"), Some("bad cable")),
        "{data}"
    );

    // Maintenance survives the same way.
    post_agent_data(
        &server,
        name,
        json!({"state": "maintenance", "comment": "firmware work"}),
    )
    .await;
    assert_eq!(agent_start_up(&server, name).await, "maintenance");
    let data = get_agent(&server, name).await;
    assert_eq!(
        (data["state"].as_str(), data["comment"].as_str()),
        (Some("maintenance"), Some("firmware work")),
        "{data}"
    );

    // The agent's restart path (#1304): it posts `restart`, which is kept,
    // and exits; the new agent comes back with `waiting` and takes jobs.
    post_agent_data(&server, name, json!({"state": "restart", "comment": ""})).await;
    assert_eq!(get_agent(&server, name).await["state"], json!("restart"));
    assert_eq!(agent_start_up(&server, name).await, "waiting");
    assert_eq!(get_agent(&server, name).await["state"], json!("waiting"));
    claim_expecting(&server, name, &["rq"], &id).await;
}
