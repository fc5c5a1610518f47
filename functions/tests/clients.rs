//! The real clients' request sequences, replayed through the router:
//! `testflinger-agent` (upstream-api.md §8) and `testflinger-cli` (§9),
//! asserting every status code and every response field those clients read
//! (SPEC.md §4.1–4.3, §6, §7). Anonymous callers, `open` mode.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{header, StatusCode};
use common::*;
use serde_json::{json, Value};
use testflinger_shared::logs::LOG_PHASES;

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
