//! The real clients' request sequences, replayed through the router:
//! `testflinger-agent` (upstream-api.md §8) and `testflinger-cli` (§9),
//! asserting every status code and every response field those clients read
//! (SPEC.md §4.1–4.3, §6, §7). First anonymous callers in `open` mode; then
//! (at the end) the same clients holding tokens, in the `standard` and
//! `strict` modes (SPEC.md §3, upstream-api.md §3).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use common::*;
use serde_json::{json, Value};
use testflinger_shared::auth::{AuthMode, Role, TokenKeys};
use testflinger_shared::logs::LOG_PHASES;
use testflinger_shared::Timestamp;

const AGENT: &str = "dev-01";

/// The phases the agent runs and posts as job states, in order (§8 step 12).
const PHASES: [&str; 6] = [
    "setup",
    "provision",
    "firmware_update",
    "test",
    "allocate",
    "reserve",
];

// ---------------------------------------------------------------------------
// What the agent sends

/// A log fragment with a fixed agent timestamp derived from its number.
fn fragment(n: i64, phase: &str, data: &str) -> Value {
    json!({
        "fragment_number": n,
        "timestamp": format!("2026-11-25T10:{:02}:{:02}Z", (n / 60) % 60, n % 60),
        "phase": phase,
        "log_data": data,
    })
}

async fn post_fragment(server: &Server, id: &str, log_type: &str, body: Value) {
    server
        .post_json(&format!("/v1/result/{id}/log/{log_type}"), &body)
        .await
        .assert_ok_text();
}

/// `POST /v1/agents/data/<name>`: 200 `{"status": "OK"}` and the cookie the
/// claim reads.
async fn post_agent_data(server: &Server, name: &str, body: Value) {
    let reply = server
        .post_json(&format!("/v1/agents/data/{name}"), &body)
        .await;
    assert_eq!(
        reply.ok_json(),
        json!({"status": "OK"}),
        "agent data {body}: {reply:?}"
    );
    let cookies: Vec<&str> = reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("an ASCII cookie"))
        .collect();
    assert_eq!(
        cookies,
        [format!(
            "agent_name={name}; HttpOnly; Path=/; SameSite=Strict"
        )],
        "{reply:?}"
    );
}

/// `GET /v1/agents/data/<name>`: 200, the agent.
async fn get_agent(server: &Server, name: &str) -> Value {
    let agent = server
        .get(&format!("/v1/agents/data/{name}"))
        .await
        .ok_json();
    assert_eq!(agent["name"], json!(name), "{agent}");
    agent
}

/// `GET /v1`: the agent's health check.
async fn health_check(server: &Server) {
    let reply = server.get("/v1").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(
        reply.text().starts_with("Testflinger Server v"),
        "{reply:?}"
    );
}

/// The agent's start-up (§8 steps 2–4) on `queues`.
async fn start_agent(server: &Server, name: &str, queues: &[&str]) {
    post_agent_data(server, name, json!({"state": "waiting", "comment": ""})).await;
    let advertised: serde_json::Map<String, Value> = queues
        .iter()
        .map(|q| (q.to_string(), json!(format!("The {q} devices"))))
        .collect();
    server
        .post_json("/v1/agents/queues", &Value::Object(advertised))
        .await
        .assert_ok_text();
    post_agent_data(
        server,
        name,
        json!({
            "location": "lab 1, rack 3",
            "queues": queues,
            "provision_type": "noprovision",
            "identifier": format!("{name}-serial"),
        }),
    )
    .await;
}

/// The agent's claim: `GET /v1/job?queue=..` with its cookie.
async fn claim_as(server: &Server, agent: &str, queues: &[&str]) -> Reply {
    let query: Vec<String> = queues.iter().map(|q| format!("queue={q}")).collect();
    server
        .get_as(&format!("/v1/job?{}", query.join("&")), agent)
        .await
}

/// A claim that must hand out `id`; returns the claim answer.
async fn claim_expecting(server: &Server, agent: &str, queues: &[&str], id: &str) -> Value {
    let job = claim_as(server, agent, queues).await.ok_json();
    assert_eq!(job["job_id"], json!(id), "{job}");
    let started = job["started_at"].as_str().unwrap_or_default();
    assert!(is_rfc3339_utc(started), "started_at: {job}");
    job
}

async fn job_state(server: &Server, id: &str) -> String {
    server.result(id).await["job_state"]
        .as_str()
        .expect("job_state is a string")
        .to_owned()
}

fn attachments_body(content: &[u8]) -> Vec<u8> {
    multipart(BOUNDARY, &[("file", Some("attachments.tar.gz"), content)])
}

async fn upload_attachments(server: &Server, id: &str, content: &[u8]) -> Reply {
    server
        .post_raw(
            &format!("/v1/job/{id}/attachments"),
            Some(&multipart_type()),
            attachments_body(content),
        )
        .await
}

// ---------------------------------------------------------------------------
// What the CLI reads

/// Every anonymous CLI command starts here; 404 means "carry on anonymously".
async fn cli_auth_init(server: &Server) {
    let reply = server.post_json("/oidc/auth-init", &json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reply:?}");
}

/// The CLI's next `start_fragment`: `max(last_fragment_number) + 1` over the
/// phases, or the same start when nothing new came.
fn next_start(view: &Value, log_type: &str, current: i64) -> i64 {
    let last = view[log_type]
        .as_object()
        .unwrap_or_else(|| panic!("{log_type} is an object: {view}"))
        .values()
        .map(|p| p["last_fragment_number"].as_i64().expect("an integer"))
        .max()
        .unwrap_or(-1);
    if last >= 0 {
        last + 1
    } else {
        current
    }
}

fn is_empty_phase(entry: &Value) -> bool {
    *entry == json!({"last_fragment_number": -1, "log_data": ""})
}

/// The path and query of a `Link` header's `rel="next"` target.
fn next_link(reply: &Reply) -> Option<String> {
    let link = reply.headers.get(header::LINK)?.to_str().ok()?.to_owned();
    assert!(link.contains("rel=\"next\""), "{link}");
    let start = link.find('<').expect("a <URL>") + 1;
    let end = link.find('>').expect("a <URL>");
    let url = &link[start..end];
    // An absolute URL is requested as-is too: only its path and query reach
    // the router.
    let path = match url.find("://") {
        Some(scheme) => {
            let rest = &url[scheme + 3..];
            &rest[rest.find('/').unwrap_or(rest.len())..]
        }
        None => url,
    };
    Some(path.to_owned())
}

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|j| j["job_id"].as_str().expect("a job_id").to_owned())
        .collect()
}

/// `GET /v1/job/search?<query>`: the ids, newest first, and the list.
async fn search(server: &Server, query: &str) -> (Vec<String>, Value) {
    let list = server
        .get(&format!("/v1/job/search?{query}"))
        .await
        .ok_json();
    (ids_of(&list), list)
}

/// Jobs created in order get distinct creation times.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

// ---------------------------------------------------------------------------
// The agent

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
// The CLI

#[tokio::test]
async fn cli_submit_checks_the_queue_then_submits_and_uploads_attachments() {
    let server = Server::new().await;

    // No agent lists the queue yet: the CLI exits with the server's message.
    cli_auth_init(&server).await;
    let reply = server.get("/v1/queues/lab-q/agents").await;
    let body = reply.assert_error(StatusCode::NOT_FOUND);
    assert_eq!(body["message"], json!("Queue 'lab-q' does not exist."));

    start_agent(&server, "dev-01", &["lab-q", "other"]).await;
    start_agent(&server, "dev-02", &["other"]).await;
    post_agent_data(
        &server,
        "dev-03",
        json!({"state": "offline", "queues": ["lab-q"]}),
    )
    .await;

    cli_auth_init(&server).await;
    let agents = server.get("/v1/queues/lab-q/agents").await.ok_json();
    let mut seen: Vec<(String, String)> = agents
        .as_array()
        .unwrap_or_else(|| panic!("a list: {agents}"))
        .iter()
        .map(|a| {
            assert!(
                a["queues"]
                    .as_array()
                    .is_some_and(|q| q.contains(&json!("lab-q"))),
                "{a}"
            );
            (
                a["name"].as_str().expect("a name").to_owned(),
                a["state"].as_str().expect("a state").to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("dev-01".to_owned(), "waiting".to_owned()),
            ("dev-03".to_owned(), "offline".to_owned())
        ]
    );

    // A bad submission: the CLI prints the field messages.
    let reply = server
        .post_json("/v1/job", &json!({"job_queue": "", "tags": "x"}))
        .await;
    reply.assert_invalid_fields(&["job_queue", "tags"]);

    // The CLI packs `local` files and strips `local` before submitting.
    let job = json!({
        "job_queue": "lab-q",
        "test_data": {
            "test_cmds": "./run.sh",
            "attachments": [{"agent": "run.sh"}, {"agent": "data/blob.bin", "device": "/tmp/blob.bin"}],
        },
    });
    let reply = server.post_json("/v1/job", &job).await;
    let id = reply.ok_json()["job_id"]
        .as_str()
        .expect("a job_id")
        .to_owned();
    uuid::Uuid::parse_str(&id).expect("a UUID");
    let archive = binary(4_000, 11);
    upload_attachments(&server, &id, &archive)
        .await
        .assert_ok_text();

    // `show` and the agent see the same job.
    cli_auth_init(&server).await;
    let shown = server.get(&format!("/v1/job/{id}")).await.ok_json();
    assert_eq!(shown["job_id"], json!(id), "{shown}");
    assert_eq!(shown["test_data"], job["test_data"], "{shown}");
    let claimed = claim_expecting(&server, "dev-01", &["lab-q", "other"], &id).await;
    assert_eq!(claimed["attachments_status"], json!("complete"));
}

#[tokio::test]
async fn cli_poll_reads_fragments_from_start_fragment() {
    let server = Server::new().await;
    start_agent(&server, AGENT, &["q"]).await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    tick().await;
    let behind = server.submit(json!({"job_queue": "q"})).await;

    // `poll`: the job, the result, then the loop.
    cli_auth_init(&server).await;
    let job = server.get(&format!("/v1/job/{id}")).await.ok_json();
    assert_eq!(job["job_id"], json!(id));
    assert_eq!(job_state(&server, &id).await, "waiting");
    let position = server.get(&format!("/v1/job/{id}/position")).await;
    assert_eq!(position.status, StatusCode::OK, "{position:?}");
    assert_eq!(position.text(), "0");
    let position = server.get(&format!("/v1/job/{behind}/position")).await;
    assert_eq!(position.status, StatusCode::OK, "{position:?}");
    assert_eq!(position.text(), "1");

    let mut start = 0;
    let view = server
        .get(&format!(
            "/v1/result/{id}/log/output?start_fragment={start}"
        ))
        .await
        .ok_json();
    let phases = view["output"].as_object().expect("an object");
    assert_eq!(phases.len(), LOG_PHASES.len(), "{view}");
    assert!(phases.values().all(is_empty_phase), "{view}");
    start = next_start(&view, "output", start);
    assert_eq!(start, 0);

    // The agent claims it and starts.
    claim_expecting(&server, AGENT, &["q"], &id).await;
    server
        .get(&format!("/v1/job/{id}/position"))
        .await
        .assert_error(StatusCode::GONE);
    let position = server.get(&format!("/v1/job/{behind}/position")).await;
    assert_eq!(position.text(), "0", "{position:?}");
    server.post_result(&id, json!({"job_state": "setup"})).await;
    for (n, phase, data) in [
        (0, "setup", "s0\n"),
        (1, "setup", "s1\n"),
        (2, "provision", "p2\n"),
    ] {
        post_fragment(&server, &id, "output", fragment(n, phase, data)).await;
    }
    post_fragment(&server, &id, "serial", fragment(0, "provision", "boot\n")).await;

    assert_eq!(job_state(&server, &id).await, "setup");
    let view = server
        .get(&format!(
            "/v1/result/{id}/log/output?start_fragment={start}"
        ))
        .await
        .ok_json();
    assert_eq!(
        view["output"]["setup"],
        json!({"last_fragment_number": 1, "log_data": "s0\ns1\n"})
    );
    assert_eq!(
        view["output"]["provision"],
        json!({"last_fragment_number": 2, "log_data": "p2\n"})
    );
    assert!(is_empty_phase(&view["output"]["test"]), "{view}");
    start = next_start(&view, "output", start);
    assert_eq!(start, 3);

    // Nothing new: the start stays.
    let view = server
        .get(&format!(
            "/v1/result/{id}/log/output?start_fragment={start}"
        ))
        .await
        .ok_json();
    assert!(
        view["output"]
            .as_object()
            .unwrap()
            .values()
            .all(is_empty_phase),
        "{view}"
    );
    assert_eq!(next_start(&view, "output", start), 3);

    server.post_result(&id, json!({"job_state": "test"})).await;
    for (n, data) in [(3, "t3\n"), (4, "t4\n")] {
        post_fragment(&server, &id, "output", fragment(n, "test", data)).await;
    }
    let view = server
        .get(&format!(
            "/v1/result/{id}/log/output?start_fragment={start}"
        ))
        .await
        .ok_json();
    assert!(is_empty_phase(&view["output"]["setup"]), "{view}");
    assert!(is_empty_phase(&view["output"]["provision"]), "{view}");
    assert_eq!(
        view["output"]["test"],
        json!({"last_fragment_number": 4, "log_data": "t3\nt4\n"})
    );
    start = next_start(&view, "output", start);
    assert_eq!(start, 5);

    // `poll --phase test` and `--start_timestamp`.
    let view = server
        .get(&format!(
            "/v1/result/{id}/log/output?start_fragment=0&phase=test&start_timestamp=2026-11-25T10:00:04Z"
        ))
        .await
        .ok_json();
    assert_eq!(
        view,
        json!({"output": {"test": {"last_fragment_number": 4, "log_data": "t4\n"}}})
    );

    // `poll-serial`.
    let view = server
        .get(&format!("/v1/result/{id}/log/serial?start_fragment=0"))
        .await
        .ok_json();
    assert_eq!(
        view["serial"]["provision"],
        json!({"last_fragment_number": 0, "log_data": "boot\n"})
    );
    assert_eq!(next_start(&view, "serial", 0), 1);

    // The job finishes: the poll loop reads `complete` and stops.
    post_fragment(&server, &id, "output", fragment(5, "cleanup", "bye\n")).await;
    server
        .post_result(&id, json!({"status": {"setup": 0, "provision": 0, "test": 0, "cleanup": 0}, "job_state": "complete"}))
        .await;
    let view = server
        .get(&format!(
            "/v1/result/{id}/log/output?start_fragment={start}"
        ))
        .await
        .ok_json();
    assert_eq!(
        view["output"]["cleanup"],
        json!({"last_fragment_number": 5, "log_data": "bye\n"})
    );
    assert_eq!(job_state(&server, &id).await, "complete");
    server
        .get(&format!("/v1/job/{id}/position"))
        .await
        .assert_error(StatusCode::GONE);
}

#[tokio::test]
async fn cli_status_results_artifacts_and_show() {
    let server = Server::new().await;
    start_agent(&server, AGENT, &["q"]).await;
    let submitted = json!({
        "job_queue": "q",
        "name": "show me",
        "tags": ["t1"],
        "provision_data": {"distro": "noble"},
        "test_data": {"test_cmds": "true"},
    });
    let id = server.submit(submitted.clone()).await;

    // `status`
    cli_auth_init(&server).await;
    assert_eq!(job_state(&server, &id).await, "waiting");

    // `show`
    cli_auth_init(&server).await;
    let shown = server.get(&format!("/v1/job/{id}")).await.ok_json();
    for (key, value) in submitted.as_object().unwrap() {
        assert_eq!(shown[key], *value, "{key}: {shown}");
    }
    assert_eq!(shown["job_id"], json!(id), "{shown}");

    // `artifacts` before there is one.
    cli_auth_init(&server).await;
    server
        .get(&format!("/v1/result/{id}/artifact"))
        .await
        .assert_no_content();

    // The agent runs it.
    claim_expecting(&server, AGENT, &["q"], &id).await;
    assert_eq!(job_state(&server, &id).await, "running");
    server.post_result(&id, json!({"job_state": "test"})).await;
    post_fragment(&server, &id, "output", fragment(0, "test", "ok\n")).await;
    let artifact = binary(9_000, 42);
    upload_artifact(&server, &id, &artifact)
        .await
        .assert_ok_text();
    server
        .post_result(
            &id,
            json!({"status": {"test": 0}, "device_info": {"device_ip": "10.0.0.9"}, "job_state": "complete"}),
        )
        .await;

    // `status` and `results`.
    cli_auth_init(&server).await;
    let result = server.result(&id).await;
    assert_eq!(result["job_state"], json!("complete"), "{result}");
    assert_eq!(result["test_status"], json!(0), "{result}");
    assert_eq!(result["test_output"], json!("ok\n"), "{result}");
    assert_eq!(
        result["device_info"],
        json!({"device_ip": "10.0.0.9"}),
        "{result}"
    );
    let pretty = serde_json::to_string_pretty(&result).expect("printable");
    assert!(pretty.contains("\"job_state\": \"complete\""), "{pretty}");

    // `artifacts`
    cli_auth_init(&server).await;
    let download = server.get(&format!("/v1/result/{id}/artifact")).await;
    assert_eq!(download.status, StatusCode::OK, "{download:?}");
    assert_eq!(
        download
            .headers
            .get(header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok()),
        Some("attachment; filename=artifact.tar.gz"),
        "{download:?}"
    );
    assert_eq!(download.body.as_ref(), artifact.as_slice());

    // Unknown jobs: "no data"; bad ids: "invalid id".
    for uri in [
        format!("/v1/job/{UNKNOWN_ID}"),
        format!("/v1/result/{UNKNOWN_ID}"),
        format!("/v1/result/{UNKNOWN_ID}/artifact"),
    ] {
        server.get(&uri).await.assert_no_content();
    }
    for uri in [
        "/v1/job/not-a-uuid",
        "/v1/result/not-a-uuid",
        "/v1/result/not-a-uuid/artifact",
    ] {
        server.get(uri).await.assert_error(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn cli_cancel_waiting_and_running_jobs() {
    let server = Server::new().await;
    start_agent(&server, AGENT, &["q"]).await;
    let waiting = server.submit(json!({"job_queue": "q"})).await;
    let running = server.submit(json!({"job_queue": "q"})).await;

    // A waiting job.
    cli_auth_init(&server).await;
    server
        .post_json(
            &format!("/v1/job/{waiting}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_ok_text();
    assert_eq!(job_state(&server, &waiting).await, "cancelled");
    server
        .get(&format!("/v1/job/{waiting}/position"))
        .await
        .assert_error(StatusCode::GONE);

    // A cancelled job is never claimed: the agent gets the other one.
    claim_expecting(&server, AGENT, &["q"], &running).await;
    server
        .post_result(&running, json!({"job_state": "provision"}))
        .await;
    cli_auth_init(&server).await;
    server
        .post_json(
            &format!("/v1/job/{running}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_ok_text();
    assert_eq!(job_state(&server, &running).await, "cancelled");

    // A second cancel: 400 with a message the CLI prints.
    for id in [&waiting, &running] {
        cli_auth_init(&server).await;
        let body = server
            .post_json(
                &format!("/v1/job/{id}/action"),
                &json!({"action": "cancel"}),
            )
            .await
            .assert_error(StatusCode::BAD_REQUEST);
        assert!(body["message"].is_string(), "{body}");
    }

    // A complete job cannot be cancelled either.
    let done = server.submit(json!({"job_queue": "q"})).await;
    claim_expecting(&server, AGENT, &["q"], &done).await;
    server
        .post_result(
            &done,
            json!({"status": {"test": 0}, "job_state": "complete"}),
        )
        .await;
    server
        .post_json(
            &format!("/v1/job/{done}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    assert_eq!(job_state(&server, &done).await, "complete");

    // Unknown job, unknown action, bad id.
    server
        .post_json(
            &format!("/v1/job/{UNKNOWN_ID}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .post_json(
            &format!("/v1/job/{done}/action"),
            &json!({"action": "pause"}),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    server
        .post_json("/v1/job/not-a-uuid/action", &json!({"action": "cancel"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cli_queue_status_and_list_queues() {
    let server = Server::new().await;
    post_agent_data(
        &server,
        "dev-01",
        json!({"state": "waiting", "comment": ""}),
    )
    .await;
    server
        .post_json(
            "/v1/agents/queues",
            &json!({"q1": "First queue", "q2": "Second queue"}),
        )
        .await
        .assert_ok_text();
    server
        .post_json(
            "/v1/agents/images",
            &json!({"q1": {"jammy": "url: http://images.example/jammy.img.xz", "noble": "distro: noble"}}),
        )
        .await
        .assert_ok_text();
    post_agent_data(
        &server,
        "dev-01",
        json!({"queues": ["q1", "q2"], "location": "rack 1", "provision_type": "maas"}),
    )
    .await;
    post_agent_data(
        &server,
        "dev-02",
        json!({"state": "waiting", "comment": "", "queues": ["q1"]}),
    )
    .await;
    post_agent_data(
        &server,
        "dev-03",
        json!({"state": "offline", "comment": "broken fan", "queues": ["q2"]}),
    )
    .await;

    // `list-queues`
    cli_auth_init(&server).await;
    let queues = server.get("/v1/agents/queues").await.ok_json();
    assert_eq!(queues, json!({"q1": "First queue", "q2": "Second queue"}));

    // `reserve` reads a queue's images.
    cli_auth_init(&server).await;
    assert_eq!(
        server.get("/v1/agents/images/q1").await.ok_json(),
        json!({"jammy": "url: http://images.example/jammy.img.xz", "noble": "distro: noble"})
    );
    assert_eq!(
        server.get("/v1/agents/images/q2").await.ok_json(),
        json!({})
    );

    // `queue-status q1` while the queue is empty.
    cli_auth_init(&server).await;
    let agents = server.get("/v1/queues/q1/agents").await.ok_json();
    let mut names: Vec<&str> = agents
        .as_array()
        .expect("a list")
        .iter()
        .map(|a| {
            assert!(a["state"].is_string(), "{a}");
            assert!(a["queues"].is_array(), "{a}");
            a["name"].as_str().expect("a name")
        })
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["dev-01", "dev-02"]);
    server.get("/v1/queues/q1/jobs").await.assert_no_content();

    // With jobs: one waiting, one claimed, one on another queue.
    let first = server.submit(json!({"job_queue": "q1"})).await;
    tick().await;
    let second = server.submit(json!({"job_queue": "q1"})).await;
    let elsewhere = server.submit(json!({"job_queue": "q2"})).await;
    claim_expecting(&server, "dev-02", &["q1"], &first).await;

    cli_auth_init(&server).await;
    let jobs = server.get("/v1/queues/q1/jobs").await.ok_json();
    let mut seen: Vec<(String, String)> = jobs
        .as_array()
        .expect("a list")
        .iter()
        .map(|j| {
            assert_eq!(j["job_queue"], json!("q1"), "{j}");
            assert!(
                is_rfc3339_utc(j["created_at"].as_str().unwrap_or_default()),
                "{j}"
            );
            (
                j["job_id"].as_str().expect("a job_id").to_owned(),
                j["job_state"].as_str().expect("a job_state").to_owned(),
            )
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        (first.clone(), "running".to_owned()),
        (second.clone(), "waiting".to_owned()),
    ];
    expected.sort();
    assert_eq!(seen, expected, "{jobs}");
    let other = server.get("/v1/queues/q2/jobs").await.ok_json();
    assert_eq!(ids_of(&other), [elsewhere]);

    // `list-agents`
    cli_auth_init(&server).await;
    let list = server.get("/v1/agents/data").await.ok_json();
    let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
    for agent in list.as_array().expect("a list") {
        assert!(agent.get("log").is_none(), "the list has no logs: {agent}");
        assert!(agent["restricted_to"].is_object(), "{agent}");
        assert!(
            is_rfc3339_utc(agent["updated_at"].as_str().unwrap_or_default()),
            "{agent}"
        );
        by_name.insert(
            agent["name"].as_str().expect("a name").to_owned(),
            agent.clone(),
        );
    }
    assert_eq!(
        by_name.keys().map(String::as_str).collect::<Vec<_>>(),
        ["dev-01", "dev-02", "dev-03"]
    );
    assert_eq!(by_name["dev-01"]["queues"], json!(["q1", "q2"]));
    assert_eq!(by_name["dev-01"]["location"], json!("rack 1"));
    assert_eq!(by_name["dev-01"]["provision_type"], json!("maas"));
    assert_eq!(by_name["dev-03"]["state"], json!("offline"));
    assert_eq!(by_name["dev-03"]["comment"], json!("broken fan"));

    // `agent-status`
    cli_auth_init(&server).await;
    let agent = get_agent(&server, "dev-03").await;
    assert_eq!(agent["state"], json!("offline"), "{agent}");
    assert_eq!(agent["queues"], json!(["q2"]), "{agent}");
    server
        .get("/v1/agents/data/nobody")
        .await
        .assert_error(StatusCode::NOT_FOUND);

    // Wait times (curl-only): the claimed queue has its percentiles.
    let waits = server.get("/v1/queues/wait_times").await.ok_json();
    let q1 = waits["q1"]
        .as_object()
        .unwrap_or_else(|| panic!("q1 has wait times: {waits}"));
    let mut keys: Vec<&str> = q1.keys().map(String::as_str).collect();
    keys.sort_by_key(|k| k.parse::<u32>().unwrap_or(u32::MAX));
    assert_eq!(keys, ["5", "10", "50", "90", "95"], "{waits}");
    assert!(
        q1.values().all(|v| v.as_f64().is_some_and(|s| s >= 0.0)),
        "{waits}"
    );
    assert!(waits.get("q2").is_none(), "no claim on q2: {waits}");
    let only = server
        .get("/v1/queues/wait_times?queue=q1&queue=q2")
        .await
        .ok_json();
    assert_eq!(only, json!({"q1": waits["q1"]}));
}

#[tokio::test]
async fn cli_search_by_tags_and_state() {
    let server = Server::new().await;
    start_agent(&server, AGENT, &["q", "r"]).await;
    let j1 = server
        .submit(json!({"job_queue": "q", "tags": ["a"]}))
        .await;
    tick().await;
    let j2 = server
        .submit(json!({"job_queue": "q", "tags": ["a", "b"]}))
        .await;
    tick().await;
    let j3 = server
        .submit(json!({"job_queue": "r", "tags": ["b", "c"]}))
        .await;
    tick().await;
    let j4 = server
        .submit(json!({"job_queue": "q", "tags": ["b", "a"]}))
        .await;
    server
        .post_json(
            &format!("/v1/job/{j4}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_ok_text();

    let (ids, list) = search(&server, "tags=a&tags=b&match=all").await;
    assert_eq!(ids, [j4.as_str(), j2.as_str()], "{list}");
    for item in list.as_array().unwrap() {
        assert!(
            is_rfc3339_utc(item["created_at"].as_str().unwrap_or_default()),
            "{item}"
        );
        assert_eq!(item["job_queue"], json!("q"), "{item}");
        assert!(item["tags"].is_array(), "{item}");
    }
    assert_eq!(list[0]["job_state"], json!("cancelled"));
    assert_eq!(list[0]["tags"], json!(["b", "a"]));
    assert_eq!(list[1]["job_state"], json!("waiting"));
    assert_eq!(list[1]["tags"], json!(["a", "b"]));

    let (ids, list) = search(&server, "tags=a&tags=b&match=all&state=active").await;
    assert_eq!(ids, [j2.as_str()], "{list}");
    let (ids, list) = search(&server, "tags=a&tags=b").await;
    assert_eq!(
        ids,
        [j4.as_str(), j3.as_str(), j2.as_str(), j1.as_str()],
        "{list}"
    );
    let (ids, list) = search(&server, "tags=a&tags=b&match=any").await;
    assert_eq!(
        ids,
        [j4.as_str(), j3.as_str(), j2.as_str(), j1.as_str()],
        "{list}"
    );
    let (ids, list) = search(&server, "tags=c").await;
    assert_eq!(ids, [j3.as_str()], "{list}");
    assert_eq!(list[0]["job_queue"], json!("r"), "{list}");
    let (ids, list) = search(&server, "state=cancelled").await;
    assert_eq!(ids, [j4.as_str()], "{list}");
    let (ids, list) = search(&server, "state=waiting").await;
    assert_eq!(ids, [j3.as_str(), j2.as_str(), j1.as_str()], "{list}");

    // A claimed job moves from `waiting` to `running`, still `active`.
    claim_expecting(&server, AGENT, &["r"], &j3).await;
    let (ids, list) = search(&server, "state=running").await;
    assert_eq!(ids, [j3.as_str()], "{list}");
    let (ids, list) = search(&server, "tags=c&state=active").await;
    assert_eq!(ids, [j3.as_str()], "{list}");
    server
        .post_result(&j3, json!({"job_state": "complete"}))
        .await;
    let (ids, list) = search(&server, "state=complete").await;
    assert_eq!(ids, [j3.as_str()], "{list}");
    let (ids, list) = search(&server, "state=active").await;
    assert_eq!(ids, [j2.as_str(), j1.as_str()], "{list}");
    let (ids, list) = search(&server, "tags=nothing").await;
    assert!(ids.is_empty(), "{list}");

    // Paging: each `Link: <...>; rel="next"` is requested as it is.
    let mut pages = Vec::new();
    let mut uri = "/v1/job/search?tags=a&tags=b&limit=1".to_owned();
    loop {
        let reply = server.get(&uri).await;
        let page = reply.ok_json();
        assert_eq!(page.as_array().map(Vec::len), Some(1), "{uri}: {page}");
        pages.extend(ids_of(&page));
        match next_link(&reply) {
            Some(next) => uri = next,
            None => break,
        }
        assert!(pages.len() < 10, "the pages never end: {pages:?}");
    }
    assert_eq!(pages, [j4, j3, j2, j1]);

    // A bad `match`.
    let body = server
        .get("/v1/job/search?tags=a&match=some")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["detail"]["query"]["match"].is_array(), "{body}");
}

// ---------------------------------------------------------------------------
// With authentication: the same clients holding tokens (SPEC.md §3,
// upstream-api.md §3, §8, §9)

/// The agent-role client the operator creates for an agent host.
const AGENT_HOST: &str = "agent-host-lab1";
const AGENT_HOST_SECRET: &str = "the agent host's secret";
const ADMIN: &str = "lab-admin";
const ADMIN_SECRET: &str = "the lab admin's secret";
const CI: &str = "ci-team";
const CI_SECRET: &str = "the CI team's secret";

/// An access token for `client_id` that expired 50 minutes ago (issued an
/// hour ago, for 10 minutes), signed with the server's key.
fn expired_token(client_id: &str, role: Role) -> String {
    let an_hour_ago = Timestamp::from_millis(Timestamp::now().millis() - 3_600_000);
    TokenKeys::new(SIGNING_KEY.as_bytes(), 0).issue(client_id, role, an_hour_ago)
}

/// What `POST /v1/oauth2/token` answers: `{access_token, token_type,
/// expires_in, refresh_token}`.
fn assert_token_set(tokens: &Value) {
    assert_eq!(tokens["token_type"], json!("Bearer"), "{tokens}");
    assert_eq!(tokens["expires_in"], json!(600), "{tokens}");
    assert!(
        tokens["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3),
        "a JWT: {tokens}"
    );
    assert!(
        tokens["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() == 64),
        "a 64-character refresh token: {tokens}"
    );
}

/// The JSON message of an error answer, which both clients print.
fn error_message(reply: &Reply, status: StatusCode) -> String {
    reply.assert_error(status)["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

/// The agent-host charm: logs in once with the agent client's credentials
/// and writes the refresh token to the agent's token file.
async fn charm_login(server: &Server, client_id: &str, secret: &str) -> String {
    let tokens = server.login(client_id, secret).await.ok_json();
    assert_token_set(&tokens);
    tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

/// The claims of a JWT, decoded without checking the signature, as the CLI
/// does (`jwt.decode(token, options={"verify_signature": False})`).
fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("a base64url payload");
    serde_json::from_slice(&bytes).expect("a JSON payload")
}

/// The CLI's `get_user_role()`: `permissions.role` of the access token, or
/// `contributor` when there is none ("legacy client ids").
fn cli_user_role(token: &str) -> String {
    jwt_claims(token)
        .get("permissions")
        .and_then(|p| p.get("role"))
        .and_then(Value::as_str)
        .unwrap_or("contributor")
        .to_owned()
}

/// `{queue: description}` as the agent advertises its queues.
fn advertised(queues: &[&str]) -> Value {
    Value::Object(
        queues
            .iter()
            .map(|q| (q.to_string(), json!(format!("The {q} devices"))))
            .collect(),
    )
}

/// `testflinger-agent` started with `--token-file`: one `requests.Session`
/// that keeps the `agent_name` cookie from `Set-Cookie`, sends the cached
/// access token as `Authorization: Bearer`, gets that token from
/// `POST /v1/oauth2/refresh` before its first request, and on a 401 drops
/// it, refreshes and replays the request once (upstream-api.md §3.3, §8).
/// Without a token file it is an agent of an `open` server: no
/// `Authorization` header at all.
struct TokenAgent<'a> {
    server: &'a Server,
    name: String,
    refresh_token: Option<String>,
    access_token: Option<String>,
    cookie: Option<String>,
    /// Refreshes so far.
    refreshes: usize,
    /// Each 401 the session answered with a refresh and a replay.
    unauthorized: Vec<Reply>,
}

impl<'a> TokenAgent<'a> {
    fn new(server: &'a Server, name: &str, refresh_token: Option<String>) -> Self {
        TokenAgent {
            server,
            name: name.to_owned(),
            refresh_token,
            access_token: None,
            cookie: None,
            refreshes: 0,
            unauthorized: Vec::new(),
        }
    }

    /// An agent on `server` in `mode`: with its own agent-role client and
    /// token file, except in `open` mode, where agents hold no token.
    async fn for_mode(server: &'a Server, mode: AuthMode, name: &str) -> Self {
        if mode == AuthMode::Open {
            return TokenAgent::new(server, name, None);
        }
        let client_id = format!("agent-host-{name}");
        let secret = format!("{client_id}-secret");
        server
            .add_client(&client_id, &secret, Role::Agent, |_| {})
            .await;
        let refresh_token = charm_login(server, &client_id, &secret).await;
        TokenAgent::new(server, name, Some(refresh_token))
    }

    /// `POST /v1/oauth2/refresh {"refresh_token"}`: a new access token.
    async fn refresh(&mut self) {
        let token = self.refresh_token.clone().expect("a token file");
        let reply = self
            .server
            .post_json("/v1/oauth2/refresh", &json!({"refresh_token": token}))
            .await;
        let body = reply.ok_json();
        assert_eq!(body["token_type"], json!("Bearer"), "{body}");
        assert_eq!(body["expires_in"], json!(600), "{body}");
        self.access_token = Some(
            body["access_token"]
                .as_str()
                .expect("an access token")
                .to_owned(),
        );
        self.refreshes += 1;
    }

    /// Ten minutes pass: the cached access token has expired.
    fn expire_access_token(&mut self) {
        self.access_token = Some(expired_token(AGENT_HOST, Role::Agent));
    }

    fn take_unauthorized(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.unauthorized)
    }

    /// One request as the session sends it, without the 401 handling.
    async fn send_once(
        &mut self,
        method: &Method,
        uri: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let mut req = request(method.clone(), uri, content_type, Body::from(body.to_vec()));
        if let Some(token) = &self.access_token {
            req.headers_mut().insert(
                header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            );
        }
        if let Some(cookie) = &self.cookie {
            req.headers_mut()
                .insert(header::COOKIE, cookie.parse().unwrap());
        }
        let reply = self.server.send(req).await;
        for value in reply.headers.get_all(header::SET_COOKIE) {
            let pair = value
                .to_str()
                .expect("an ASCII cookie")
                .split(';')
                .next()
                .unwrap_or_default()
                .trim();
            if pair.starts_with("agent_name=") {
                self.cookie = Some(pair.to_owned());
            }
        }
        reply
    }

    /// One request with the agent's token handling.
    async fn send(
        &mut self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        if self.refresh_token.is_some() && self.access_token.is_none() {
            self.refresh().await;
        }
        let reply = self.send_once(&method, uri, content_type, &body).await;
        if reply.status != StatusCode::UNAUTHORIZED || self.refresh_token.is_none() {
            return reply;
        }
        self.unauthorized.push(reply);
        self.access_token = None;
        self.refresh().await;
        self.send_once(&method, uri, content_type, &body).await
    }

    async fn get(&mut self, uri: &str) -> Reply {
        self.send(Method::GET, uri, None, Vec::new()).await
    }

    async fn post_json(&mut self, uri: &str, body: &Value) -> Reply {
        self.send(
            Method::POST,
            uri,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// `POST /v1/agents/data/<name>`: `{"status": "OK"}` and the cookie.
    async fn post_agent_data(&mut self, body: Value) {
        let uri = format!("/v1/agents/data/{}", self.name);
        let reply = self.post_json(&uri, &body).await;
        assert_eq!(reply.ok_json(), json!({"status": "OK"}), "{body}");
        let cookies: Vec<&str> = reply
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("an ASCII cookie"))
            .collect();
        assert_eq!(
            cookies,
            [format!(
                "agent_name={}; HttpOnly; Path=/; SameSite=Strict",
                self.name
            )],
            "{reply:?}"
        );
        assert_eq!(
            self.cookie.as_deref(),
            Some(format!("agent_name={}", self.name).as_str())
        );
    }

    /// `GET /v1/agents/data/<name>`
    async fn get_self(&mut self) -> Value {
        let uri = format!("/v1/agents/data/{}", self.name);
        let agent = self.get(&uri).await.ok_json();
        assert_eq!(agent["name"], json!(self.name), "{agent}");
        agent
    }

    async fn result(&mut self, id: &str) -> Value {
        self.get(&format!("/v1/result/{id}")).await.ok_json()
    }

    async fn post_result(&mut self, id: &str, body: Value) {
        self.post_json(&format!("/v1/result/{id}"), &body)
            .await
            .assert_ok_text();
    }

    async fn post_fragment(&mut self, id: &str, log_type: &str, body: Value) {
        self.post_json(&format!("/v1/result/{id}/log/{log_type}"), &body)
            .await
            .assert_ok_text();
    }

    /// `GET /v1/job?queue=..`
    async fn claim(&mut self, queues: &[&str]) -> Reply {
        let query: Vec<String> = queues.iter().map(|q| format!("queue={q}")).collect();
        self.get(&format!("/v1/job?{}", query.join("&"))).await
    }

    async fn upload_artifact(&mut self, id: &str, content: &[u8]) -> Reply {
        self.send(
            Method::POST,
            &format!("/v1/result/{id}/artifact"),
            Some(&multipart_type()),
            multipart(BOUNDARY, &[("file", Some("file"), content)]),
        )
        .await
    }

    /// Start-up (§8 steps 1–4).
    async fn start(&mut self, queues: &[&str]) {
        self.post_agent_data(json!({"state": "waiting", "comment": ""}))
            .await;
        self.post_json("/v1/agents/queues", &advertised(queues))
            .await
            .assert_ok_text();
        let images = json!({queues[0]: {"jammy": "url: http://images.example/jammy.img.xz"}});
        self.post_json("/v1/agents/images", &images)
            .await
            .assert_ok_text();
        let identity = json!({
            "location": "lab 1, rack 3",
            "queues": queues,
            "provision_type": "noprovision",
            "identifier": format!("{}-serial", self.name),
        });
        self.post_agent_data(identity).await;
    }

    /// One idle polling cycle (§8 steps 5–9); returns the claim's answer.
    async fn poll(&mut self, queues: &[&str]) -> Reply {
        let health = self.get("/v1").await;
        assert_eq!(health.status, StatusCode::OK, "{health:?}");
        assert!(
            health.text().starts_with("Testflinger Server v"),
            "{health:?}"
        );
        self.get_self().await;
        self.post_json("/v1/agents/queues", &advertised(queues))
            .await
            .assert_ok_text();
        for _ in 0..2 {
            let agent = self.get_self().await;
            assert!(agent["restricted_to"].is_object(), "{agent}");
        }
        self.claim(queues).await
    }
}

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

/// `testflinger-cli` with credentials (`--client-id/--secret-key`, the
/// config file or `TESTFLINGER_CLIENT_ID/SECRET_KEY`): `login` is
/// `POST /v1/oauth2/token` with HTTP Basic (the CLI keeps the refresh token
/// in its auth.conf); a later command without credentials exchanges the
/// stored refresh token; every request then carries `Authorization: Bearer`.
struct Cli<'a> {
    server: &'a Server,
    client_id: String,
    secret: String,
    access_token: Option<String>,
    refresh_token: Option<String>,
}

impl<'a> Cli<'a> {
    fn new(server: &'a Server, client_id: &str, secret: &str) -> Self {
        Cli {
            server,
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            access_token: None,
            refresh_token: None,
        }
    }

    /// `login` (or any command given credentials).
    async fn login(&mut self) -> Value {
        let tokens = self
            .server
            .login(&self.client_id, &self.secret)
            .await
            .ok_json();
        assert_token_set(&tokens);
        self.access_token = tokens["access_token"].as_str().map(str::to_owned);
        self.refresh_token = tokens["refresh_token"].as_str().map(str::to_owned);
        tokens
    }

    /// A new command run without credentials: the stored refresh token.
    async fn resume(&mut self) {
        let token = self.refresh_token.clone().expect("a stored refresh token");
        let body = self
            .server
            .post_json("/v1/oauth2/refresh", &json!({"refresh_token": token}))
            .await
            .ok_json();
        assert_eq!(body["token_type"], json!("Bearer"), "{body}");
        self.access_token = Some(
            body["access_token"]
                .as_str()
                .expect("an access token")
                .to_owned(),
        );
    }

    fn token(&self) -> &str {
        self.access_token.as_deref().expect("logged in")
    }

    async fn call(&self, method: Method, uri: &str, body: Option<&Value>) -> Reply {
        self.server
            .call(method, uri, Some(self.token()), body)
            .await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call(Method::GET, uri, None).await
    }

    /// `submit`: the queue check, then the job; returns the job id.
    async fn submit(&self, job: Value) -> String {
        let queue = job["job_queue"].as_str().expect("a job_queue").to_owned();
        let agents = self
            .get(&format!("/v1/queues/{queue}/agents"))
            .await
            .ok_json();
        assert!(
            agents
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["state"] != json!("offline"))),
            "an online agent on {queue}: {agents}"
        );
        self.server.submit_with(job, self.token()).await
    }

    async fn cancel(&self, id: &str) -> Reply {
        self.call(
            Method::POST,
            &format!("/v1/job/{id}/action"),
            Some(&json!({"action": "cancel"})),
        )
        .await
    }
}

/// The phases of a job the agent runs after its claim, one output fragment
/// each, up to `complete` (§8 steps 10–15).
async fn run_claimed_job(agent: &mut TokenAgent<'_>, id: &str) -> serde_json::Map<String, Value> {
    agent.post_agent_data(json!({"job_id": id})).await;
    let mut status = serde_json::Map::new();
    for (n, phase) in (0_i64..).zip(PHASES) {
        assert_ne!(agent.result(id).await["job_state"], json!("cancelled"));
        for _ in 0..2 {
            agent.get_self().await;
        }
        agent.post_result(id, json!({"job_state": phase})).await;
        agent
            .post_agent_data(json!({"state": phase, "comment": ""}))
            .await;
        agent
            .post_fragment(id, "output", fragment(n, phase, &format!("{phase}\n")))
            .await;
        status.insert(phase.into(), json!(0));
        agent
            .post_result(id, json!({"status": Value::Object(status.clone())}))
            .await;
    }
    status.insert("cleanup".into(), json!(0));
    agent
        .post_result(
            id,
            json!({"status": Value::Object(status.clone()), "job_state": "complete"}),
        )
        .await;
    agent.post_agent_data(json!({"job_id": ""})).await;
    agent
        .post_agent_data(json!({"state": "waiting", "comment": ""}))
        .await;
    status
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
    assert_ne!(get_agent(&server, AGENT).await["job_id"], json!(id));
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

#[tokio::test]
async fn cli_with_credentials_submits_cancels_writes_secrets_and_administers() {
    let server = Server::with_auth(AuthMode::Standard).await;
    server
        .add_client(ADMIN, ADMIN_SECRET, Role::Admin, |_| {})
        .await;
    server
        .add_client(CI, CI_SECRET, Role::Contributor, |c| {
            c.max_priority.insert("lab-q".into(), 20);
        })
        .await;
    server
        .add_client(AGENT_HOST, AGENT_HOST_SECRET, Role::Agent, |_| {})
        .await;
    let refresh_token = charm_login(&server, AGENT_HOST, AGENT_HOST_SECRET).await;
    let mut agent = TokenAgent::new(&server, AGENT, Some(refresh_token));
    agent.start(&["lab-q"]).await;

    // `login`: a wrong secret is refused with a message; the right one
    // gives the token set.
    let message = error_message(
        &server.login(CI, "not the CI team's secret").await,
        StatusCode::UNAUTHORIZED,
    );
    assert!(!message.is_empty());
    let message = error_message(
        &server.login("nobody", "not anybody's secret").await,
        StatusCode::UNAUTHORIZED,
    );
    assert!(!message.is_empty());
    let mut cli = Cli::new(&server, CI, CI_SECRET);
    cli.login().await;

    // `submit` at a priority within max_priority, after an anonymous job.
    let anonymous = server.submit(json!({"job_queue": "lab-q"})).await;
    let id = cli
        .submit(json!({"job_queue": "lab-q", "job_priority": 20, "tags": ["ci"]}))
        .await;
    let message = error_message(
        &cli.call(
            Method::POST,
            "/v1/job",
            Some(&json!({"job_queue": "lab-q", "job_priority": 21})),
        )
        .await,
        StatusCode::FORBIDDEN,
    );
    assert!(message.contains("20"), "the limit is named: {message}");
    error_message(
        &server
            .post_json("/v1/job", &json!({"job_queue": "lab-q", "job_priority": 1}))
            .await,
        StatusCode::UNAUTHORIZED,
    );

    // `show`, `status` and `poll` with the token.
    let shown = cli.get(&format!("/v1/job/{id}")).await.ok_json();
    assert_eq!(shown["job_id"], json!(id), "{shown}");
    assert_eq!(shown["job_queue"], json!("lab-q"), "{shown}");
    assert_eq!(
        cli.get(&format!("/v1/result/{id}")).await.ok_json()["job_state"],
        json!("waiting")
    );
    let position = cli.get(&format!("/v1/job/{id}/position")).await;
    assert_eq!(
        (position.status, position.text()),
        (StatusCode::OK, "0"),
        "{position:?}"
    );
    let position = server.get(&format!("/v1/job/{anonymous}/position")).await;
    assert_eq!(
        (position.status, position.text()),
        (StatusCode::OK, "1"),
        "{position:?}"
    );
    cli.get(&format!("/v1/result/{id}/log/output?start_fragment=0"))
        .await
        .ok_json();

    // The agent takes the prioritised job first; its client cancels it.
    let claimed = agent.poll(&["lab-q"]).await.ok_json();
    assert_eq!(claimed["job_id"], json!(id), "{claimed}");
    agent.post_agent_data(json!({"job_id": id})).await;
    agent.post_result(&id, json!({"job_state": "setup"})).await;
    cli.cancel(&id).await.assert_ok_text();
    assert_eq!(agent.result(&id).await["job_state"], json!("cancelled"));
    agent
        .post_result(
            &id,
            json!({"status": {"setup": 0}, "job_state": "complete"}),
        )
        .await;
    agent.post_agent_data(json!({"job_id": ""})).await;
    assert_eq!(job_state(&server, &id).await, "cancelled");
    cli.cancel(&id).await.assert_error(StatusCode::BAD_REQUEST);

    // `secret write lab/wifi hunter2 --expire-after 3600`: a new command,
    // with the refresh token the CLI stored.
    let mut cli = Cli {
        access_token: None,
        ..cli
    };
    cli.resume().await;
    let before = Timestamp::now();
    let written = cli
        .call(
            Method::PUT,
            &format!("/v1/secrets/{CI}/lab/wifi"),
            Some(&json!({"value": "hunter2", "expire_after": 3600})),
        )
        .await
        .ok_json();
    let after = Timestamp::now();
    let expires_at = written["expires_at"]
        .as_str()
        .and_then(Timestamp::parse_rfc3339)
        .unwrap_or_else(|| panic!("an RFC 3339 expires_at: {written}"));
    assert!(
        expires_at.millis() >= before.plus_seconds(3600).millis() - 1000
            && expires_at.millis() <= after.plus_seconds(3600).millis() + 1000,
        "{written}"
    );
    // `--expire-after -1`: never.
    let written = cli
        .call(
            Method::PUT,
            &format!("/v1/secrets/{CI}/lab/api-token"),
            Some(&json!({"value": "abc123", "expire_after": null})),
        )
        .await
        .ok_json();
    assert_eq!(written, json!({"expires_at": null}));

    // A job of that client names the secret; the agent's claim gets it.
    let with_secret = cli
        .submit(json!({
            "job_queue": "lab-q",
            "job_priority": 1,
            "test_data": {"test_cmds": "connect $WIFI", "secrets": {"WIFI": "lab/wifi"}},
        }))
        .await;
    let claimed = agent.poll(&["lab-q"]).await.ok_json();
    assert_eq!(claimed["job_id"], json!(with_secret), "{claimed}");
    assert_eq!(
        claimed["test_data"]["secrets"],
        json!({"WIFI": "hunter2"}),
        "{claimed}"
    );
    run_claimed_job(&mut agent, &with_secret).await;
    assert_eq!(job_state(&server, &with_secret).await, "complete");

    // `secret delete`
    for path in ["lab/wifi", "lab/api-token"] {
        cli.call(Method::DELETE, &format!("/v1/secrets/{CI}/{path}"), None)
            .await
            .assert_ok_text();
    }
    error_message(
        &cli.call(Method::DELETE, &format!("/v1/secrets/{CI}/lab/wifi"), None)
            .await,
        StatusCode::NOT_FOUND,
    );

    // `admin set client-permissions --json '{...}'`: the CLI reads the
    // client first (404: create it), then PUTs.
    let mut admin = Cli::new(&server, ADMIN, ADMIN_SECRET);
    admin.login().await;
    const BOT_SECRET: &str = "the new bot's secret";
    error_message(
        &admin.get("/v1/client-permissions/new-bot").await,
        StatusCode::NOT_FOUND,
    );
    let created = admin
        .call(
            Method::PUT,
            "/v1/client-permissions/new-bot",
            Some(&json!({
                "client_id": "new-bot",
                "client_secret": BOT_SECRET,
                "max_priority": {"lab-q": 5},
                "role": "contributor",
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{created:?}");
    assert_eq!(created.text(), "Created permissions for client 'new-bot'");
    // Again: it exists, so the CLI edits it.
    let current = admin.get("/v1/client-permissions/new-bot").await.ok_json();
    assert_eq!(current["client_id"], json!("new-bot"), "{current}");
    assert_eq!(current["role"], json!("contributor"), "{current}");
    assert_eq!(current["max_priority"], json!({"lab-q": 5}), "{current}");
    let updated = admin
        .call(
            Method::PUT,
            "/v1/client-permissions/new-bot",
            Some(&json!({"client_id": "new-bot", "max_priority": {"lab-q": 10}})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{updated:?}");
    assert_eq!(updated.text(), "Updated permissions for client 'new-bot'");
    let mut bot = Cli::new(&server, "new-bot", BOT_SECRET);
    bot.login().await;
    let bot_job = bot
        .submit(json!({"job_queue": "lab-q", "job_priority": 10}))
        .await;

    // `admin get client-permissions`, all and one: never a secret.
    let all = admin.get("/v1/client-permissions").await.ok_json();
    let mut ids: Vec<&str> = all
        .as_array()
        .unwrap_or_else(|| panic!("a list: {all}"))
        .iter()
        .map(|c| c["client_id"].as_str().expect("a client_id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [AGENT_HOST, CI, ADMIN, "new-bot"], "{all}");
    for view in all.as_array().unwrap().iter().chain([&current]) {
        let text = view.to_string();
        assert!(
            !text.contains("secret") && !text.contains("hash") && !text.contains("$argon2"),
            "{view}"
        );
    }
    let one = admin.get("/v1/client-permissions/new-bot").await.ok_json();
    assert_eq!(one["max_priority"], json!({"lab-q": 10}), "{one}");

    // `admin delete client-permissions`: the client is gone at once.
    admin
        .call(Method::DELETE, "/v1/client-permissions/new-bot", None)
        .await
        .assert_ok_text();
    error_message(
        &admin.get("/v1/client-permissions/new-bot").await,
        StatusCode::NOT_FOUND,
    );
    error_message(
        &server.login("new-bot", BOT_SECRET).await,
        StatusCode::UNAUTHORIZED,
    );
    error_message(
        &bot.get(&format!("/v1/result/{bot_job}")).await,
        StatusCode::UNAUTHORIZED,
    );
    // An admin cancels anyone's job.
    admin.cancel(&bot_job).await.assert_ok_text();

    // `admin set agent-status --status offline --agents dev-01 --comment ..`
    let current = admin
        .get(&format!("/v1/agents/data/{AGENT}"))
        .await
        .ok_json();
    assert_eq!(current["state"], json!("waiting"), "{current}");
    let comment = format!("Set to offline by {ADMIN}. Reason: fan broken");
    let set = admin
        .call(
            Method::POST,
            &format!("/v1/agents/data/{AGENT}"),
            Some(&json!({"state": "offline", "comment": comment})),
        )
        .await;
    assert_eq!(set.ok_json(), json!({"status": "OK"}));
    // The agent's next cycle reads it and stays idle.
    let me = agent.get_self().await;
    assert_eq!(me["state"], json!("offline"), "{me}");
    assert_eq!(me["comment"], json!(comment), "{me}");
    // Nobody else may: anonymous 401, a contributor 403.
    error_message(
        &server
            .post_json(
                &format!("/v1/agents/data/{AGENT}"),
                &json!({"state": "waiting", "comment": ""}),
            )
            .await,
        StatusCode::UNAUTHORIZED,
    );
    error_message(
        &cli.call(
            Method::POST,
            &format!("/v1/agents/data/{AGENT}"),
            Some(&json!({"state": "waiting", "comment": ""})),
        )
        .await,
        StatusCode::FORBIDDEN,
    );
    assert_eq!(agent.get_self().await["state"], json!("offline"));
    // `--status online` is sent as `waiting`.
    admin
        .get(&format!("/v1/agents/data/{AGENT}"))
        .await
        .ok_json();
    let set = admin
        .call(
            Method::POST,
            &format!("/v1/agents/data/{AGENT}"),
            Some(&json!({"state": "waiting", "comment": ""})),
        )
        .await;
    assert_eq!(set.ok_json(), json!({"status": "OK"}));
    assert_eq!(agent.get_self().await["state"], json!("waiting"));
    let claimed = agent.poll(&["lab-q"]).await.ok_json();
    assert_eq!(claimed["job_id"], json!(anonymous), "{claimed}");
    assert!(agent.take_unauthorized().is_empty());
}

/// The CLI's admin commands check the caller's role before sending anything
/// (`require_role`): they decode the access token without verifying it and
/// read `permissions.role`, counting a token without one as a contributor.
/// Upstream's tokens carry the client's permissions there
/// (upstream-api.md §3.3).
#[tokio::test]
async fn cli_admin_commands_find_the_role_in_the_token_permissions() {
    let server = Server::with_auth(AuthMode::Standard).await;
    for (client_id, role) in [
        (ADMIN, Role::Admin),
        ("lab-manager", Role::Manager),
        (CI, Role::Contributor),
    ] {
        let secret = format!("{client_id}-secret-of-length");
        server.add_client(client_id, &secret, role, |_| {}).await;
        let mut cli = Cli::new(&server, client_id, &secret);
        cli.login().await;
        assert_eq!(
            cli_user_role(cli.token()),
            role.as_str(),
            "{}",
            jwt_claims(cli.token())
        );
        // And after a refresh.
        cli.resume().await;
        assert_eq!(
            cli_user_role(cli.token()),
            role.as_str(),
            "{}",
            jwt_claims(cli.token())
        );
    }
}

#[tokio::test]
async fn anonymous_cli_does_what_contributors_do_in_standard_mode() {
    let server = Server::with_auth(AuthMode::Standard).await;
    let mut agent = TokenAgent::for_mode(&server, AuthMode::Standard, AGENT).await;
    agent.start(&["q"]).await;

    // Every command: `/oidc/auth-init` 404, then anonymous requests.
    cli_auth_init(&server).await;
    let agents = server.get("/v1/queues/q/agents").await.ok_json();
    assert_eq!(agents[0]["name"], json!(AGENT), "{agents}");
    let id = server
        .submit(json!({"job_queue": "q", "job_priority": 0, "test_data": {"test_cmds": "true"}}))
        .await;
    tick().await;
    let other = server.submit(json!({"job_queue": "q"})).await;

    for _ in 0..2 {
        cli_auth_init(&server).await;
        assert_eq!(job_state(&server, &id).await, "waiting");
    }
    cli_auth_init(&server).await;
    let shown = server.get(&format!("/v1/job/{id}")).await.ok_json();
    assert_eq!(shown["test_data"], json!({"test_cmds": "true"}), "{shown}");
    let position = server.get(&format!("/v1/job/{other}/position")).await;
    assert_eq!(position.text(), "1", "{position:?}");
    cli_auth_init(&server).await;
    server.get("/v1/agents/queues").await.ok_json();
    server.get("/v1/agents/data").await.ok_json();
    server.get("/v1/queues/q/jobs").await.ok_json();
    server
        .get(&format!("/v1/result/{id}/artifact"))
        .await
        .assert_no_content();

    // The agent runs it; the CLI polls and reads the results.
    let claimed = agent.poll(&["q"]).await.ok_json();
    assert_eq!(claimed["job_id"], json!(id), "{claimed}");
    let status = run_claimed_job(&mut agent, &id).await;
    cli_auth_init(&server).await;
    let view = server
        .get(&format!("/v1/result/{id}/log/output?start_fragment=0"))
        .await
        .ok_json();
    assert_eq!(
        next_start(&view, "output", 0),
        PHASES.len() as i64,
        "{view}"
    );
    cli_auth_init(&server).await;
    let result = server.result(&id).await;
    assert_eq!(result["job_state"], json!("complete"), "{result}");
    for (phase, rc) in &status {
        assert_eq!(result[format!("{phase}_status")], *rc, "{phase}: {result}");
    }
    assert_eq!(result["test_output"], json!("test\n"), "{result}");

    // `cancel` of an anonymous job, by another anonymous CLI.
    cli_auth_init(&server).await;
    server
        .post_json(
            &format!("/v1/job/{other}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_ok_text();
    assert_eq!(job_state(&server, &other).await, "cancelled");
    agent.poll(&["q"]).await.assert_no_content();

    // What a contributor may not do without a token: 401 with a message.
    for (uri, job) in [
        ("/v1/job", json!({"job_queue": "q", "job_priority": 5})),
        (
            "/v1/job",
            json!({"job_queue": "q", "reserve_data": {"ssh_keys": ["lp:me"], "timeout": 30000}}),
        ),
    ] {
        error_message(&server.post_json(uri, &job).await, StatusCode::UNAUTHORIZED);
    }
    assert!(agent.take_unauthorized().is_empty());
}

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

#[tokio::test]
async fn strict_mode_refuses_the_anonymous_cli_but_not_a_contributor_token() {
    let server = Server::with_auth(AuthMode::Strict).await;

    // The health check stays open; the CLI still learns there is no OIDC.
    let health = server.get("/v1").await;
    assert_eq!(health.status, StatusCode::OK, "{health:?}");
    assert!(
        health.text().starts_with("Testflinger Server v"),
        "{health:?}"
    );
    cli_auth_init(&server).await;

    // Agents with their tokens work as in `standard` mode.
    let mut agent = TokenAgent::for_mode(&server, AuthMode::Strict, AGENT).await;
    agent.start(&["q"]).await;
    agent.poll(&["q"]).await.assert_no_content();

    // The anonymous CLI: 401 with a message on submit and on reads.
    let message = error_message(
        &server
            .post_json("/v1/job", &json!({"job_queue": "q"}))
            .await,
        StatusCode::UNAUTHORIZED,
    );
    assert!(!message.is_empty());
    for uri in [
        "/v1/queues/q/agents".to_owned(),
        "/v1/agents/queues".to_owned(),
        "/v1/agents/data".to_owned(),
        format!("/v1/agents/data/{AGENT}"),
        format!("/v1/result/{UNKNOWN_ID}"),
        format!("/v1/job/{UNKNOWN_ID}"),
    ] {
        error_message(&server.get(&uri).await, StatusCode::UNAUTHORIZED);
    }
    agent.poll(&["q"]).await.assert_no_content();

    // With a contributor token the same commands work.
    let token = server.client_token(CI, Role::Contributor, |_| {}).await;
    let agents = server
        .call(Method::GET, "/v1/queues/q/agents", Some(&token), None)
        .await
        .ok_json();
    assert_eq!(agents[0]["name"], json!(AGENT), "{agents}");
    let id = server.submit_with(json!({"job_queue": "q"}), &token).await;
    let result = server
        .call(Method::GET, &format!("/v1/result/{id}"), Some(&token), None)
        .await
        .ok_json();
    assert_eq!(result["job_state"], json!("waiting"), "{result}");
    let claimed = agent.poll(&["q"]).await.ok_json();
    assert_eq!(claimed["job_id"], json!(id), "{claimed}");

    // Cancel: 401 anonymous, 200 with the token.
    error_message(
        &server
            .post_json(
                &format!("/v1/job/{id}/action"),
                &json!({"action": "cancel"}),
            )
            .await,
        StatusCode::UNAUTHORIZED,
    );
    server
        .call(
            Method::POST,
            &format!("/v1/job/{id}/action"),
            Some(&token),
            Some(&json!({"action": "cancel"})),
        )
        .await
        .assert_ok_text();
    assert_eq!(agent.result(&id).await["job_state"], json!("cancelled"));
    assert!(agent.take_unauthorized().is_empty());
}
