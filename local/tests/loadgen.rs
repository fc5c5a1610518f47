//! The load generator against a real harness: bounded, counting, and
//! refusing anything but loopback before it sends a request.

mod common;

use std::process::Command;

use common::{create_client, Server};
use serde_json::Value;

const LOADGEN: &str = env!("CARGO_BIN_EXE_testflinger-loadgen");

#[test]
fn it_drives_whole_jobs_and_reports_every_endpoint_as_json() {
    let server = Server::start();
    let output = Command::new(LOADGEN)
        .args([
            "--target",
            &server.base,
            "--agents",
            "4",
            "--submitters",
            "1",
            "--queues",
            "2",
            "--jobs",
            "6",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["completed"].as_u64(), Some(6), "{report}");
    assert!(report["claims"].as_u64().unwrap() >= 6);
    assert!(report["duration_s"].as_f64().unwrap() > 0.0);
    let endpoints = report["endpoints"].as_object().unwrap();
    for endpoint in [
        "GET /v1",
        "GET /v1/agents/data/{name}",
        "POST /v1/agents/queues",
        "GET /v1/job",
        "POST /v1/job",
        "POST /v1/result/{id}",
        "POST /v1/result/{id}/log/output",
        "POST /v1/result/{id}/artifact",
        "POST /v1/agents/provision_logs/{name}",
    ] {
        let stats = &endpoints[endpoint];
        assert!(stats["count"].as_u64().unwrap() > 0, "{endpoint}: {stats}");
        assert_eq!(
            stats["errors"],
            serde_json::json!({}),
            "{endpoint}: {stats}"
        );
        for key in ["rps", "p50_ms", "p90_ms", "p99_ms", "max_ms"] {
            assert!(stats[key].as_f64().is_some(), "{endpoint}.{key}");
        }
    }
    // Four agents each: GET /v1 once per idle cycle, the data read four times.
    assert_eq!(
        endpoints["GET /v1/agents/data/{name}"]["count"]
            .as_u64()
            .unwrap(),
        4 * endpoints["GET /v1"]["count"].as_u64().unwrap()
    );
    assert_eq!(report["total"]["errors"].as_u64(), Some(0));
}

#[test]
fn it_stops_by_itself_at_the_duration() {
    let server = Server::start();
    let started = std::time::Instant::now();
    let output = Command::new(LOADGEN)
        .args([
            "--target",
            &server.base,
            "--agents",
            "2",
            "--submitters",
            "0",
            "--duration",
            "1",
            "--poll-interval",
            "0.05",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(started.elapsed().as_secs() < 30, "it stopped by itself");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["completed"].as_u64(), Some(0));
    assert!(
        report["endpoints"]["GET /v1/job"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn without_submitters_it_drains_a_preloaded_backlog_and_stops_when_it_runs_out() {
    let server = Server::start();
    // The harness binary's bulk path writes the backlog beside the running
    // server (the embedded store takes writers from several processes).
    let preload = Command::new(common::BINARY)
        .args(["preload", "--jobs", "30", "--queues", "3"])
        .current_dir(server.data_dir().parent().unwrap())
        .env("TESTFLINGER_DATA_DIR", server.data_dir())
        .env_remove("TESTFLINGER_CONFIG")
        .env_remove("MONGODB_URI")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&preload.stdout);
    assert!(
        preload.status.success() && text.contains("preloaded 30 jobs"),
        "{text}{}",
        String::from_utf8_lossy(&preload.stderr)
    );
    // Asked for more jobs than wait: it stops when the queues are empty.
    let mut child = Command::new(LOADGEN)
        .args([
            "--target",
            &server.base,
            "--agents",
            "3",
            "--submitters",
            "0",
            "--queues",
            "3",
            "--jobs",
            "1000",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed().as_secs() > 60 {
            let _ = child.kill();
            panic!("the load generator did not stop when the backlog ran out");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["completed"].as_u64(), Some(30), "{report}");
    assert_eq!(report["claims"].as_u64(), Some(30), "{report}");
    assert_eq!(report["total"]["errors"].as_u64(), Some(0), "{report}");
    assert!(
        report["endpoints"].get("POST /v1/job").is_none(),
        "{report}"
    );
}

#[test]
fn it_refuses_a_target_outside_loopback() {
    // Refused before any request: the address is never contacted.
    let output = Command::new(LOADGEN)
        .args(["--target", "http://10.0.0.1:8000", "--duration", "1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("only loopback targets"));
}

#[test]
fn it_logs_in_with_client_credentials_where_agents_need_tokens() {
    // The standard mode: agent endpoints need an agent token.
    let server = Server::start_with(&[("JWT_SIGNING_KEY", "a signing key for the load test")]);
    let (ok, text) = create_client(
        &server.data_dir(),
        &["load-agents", "--secret", "-", "--role", "agent"],
        "the load agents' secret",
    );
    assert!(ok, "{text}");
    let run = |credentials: &[&str]| {
        Command::new(LOADGEN)
            .args([
                "--target",
                &server.base,
                "--agents",
                "2",
                "--queues",
                "1",
                "--json",
            ])
            .args(credentials)
            .output()
            .unwrap()
    };
    let output = run(&[
        "--jobs",
        "2",
        "--client-id",
        "load-agents",
        "--client-secret",
        "the load agents' secret",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["completed"].as_u64(), Some(2), "{report}");
    assert_eq!(report["total"]["errors"].as_u64(), Some(0), "{report}");

    // Without credentials every claim is refused, and the report says so.
    let output = run(&["--duration", "1"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let claim_errors = &report["endpoints"]["GET /v1/job"]["errors"];
    assert!(claim_errors["401"].as_u64().unwrap_or(0) > 0, "{report}");

    // Wrong credentials stop it before any load, naming the token endpoint.
    let output = run(&[
        "--jobs",
        "2",
        "--client-id",
        "load-agents",
        "--client-secret",
        "wrong secret here",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/v1/oauth2/token"));
}
