//! Black box: the harness binary started on a free port and driven over
//! HTTP, the way curl, the CLI and an agent drive it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{create_client, Server, BINARY};

use reqwest::StatusCode;
use serde_json::{json, Value};

fn multipart_file(bytes: Vec<u8>) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(bytes).file_name("artifact.tar.gz");
    reqwest::multipart::Form::new().part("file", part)
}

#[tokio::test]
async fn a_job_walks_from_submit_to_results_over_http() {
    let server = Server::start();
    let http = reqwest::Client::new();

    let version = http.get(server.url("/v1/")).send().await.unwrap();
    assert_eq!(version.status(), StatusCode::OK);
    assert!(version
        .text()
        .await
        .unwrap()
        .starts_with("Testflinger Server v"));

    // Submit, with a field the server does not know: it is passed through.
    let submitted = http
        .post(server.url("/v1/job"))
        .json(&json!({"job_queue": "myqueue", "test_data": {"test_cmds": "echo hi"}, "lab_note": "bench 3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), StatusCode::OK);
    let job_id = submitted.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Claim, as an agent does: repeated queue parameters and the cookie.
    let claimed = http
        .get(server.url("/v1/job?queue=other&queue=myqueue"))
        .header("Cookie", "agent_name=agent-01")
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status(), StatusCode::OK);
    let job: Value = claimed.json().await.unwrap();
    assert_eq!(job["job_id"], json!(job_id));
    assert_eq!(job["lab_note"], json!("bench 3"));
    assert_eq!(job["test_data"]["test_cmds"], json!("echo hi"));
    assert!(job["started_at"].as_str().unwrap().ends_with('Z'));
    let again = http
        .get(server.url("/v1/job?queue=myqueue"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NO_CONTENT);

    // Phases and the result.
    for state in ["setup", "provision", "test"] {
        let posted = http
            .post(server.url(&format!("/v1/result/{job_id}")))
            .json(&json!({"job_state": state}))
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), StatusCode::OK);
        assert_eq!(posted.text().await.unwrap(), "OK");
    }
    let result = http
        .post(server.url(&format!("/v1/result/{job_id}")))
        .json(&json!({"exit_code": 0, "output": "foo", "status": {"test": 0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), StatusCode::OK);

    // An artifact of 3 MiB up and down, byte for byte.
    let artifact: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let uploaded = http
        .post(server.url(&format!("/v1/result/{job_id}/artifact")))
        .multipart(multipart_file(artifact.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::OK);
    let downloaded = http
        .get(server.url(&format!("/v1/result/{job_id}/artifact")))
        .send()
        .await
        .unwrap();
    assert_eq!(downloaded.status(), StatusCode::OK);
    assert_eq!(
        downloaded.headers()["content-disposition"],
        "attachment; filename=artifact.tar.gz"
    );
    assert_eq!(
        downloaded.bytes().await.unwrap().as_ref(),
        artifact.as_slice()
    );

    let completed = http
        .post(server.url(&format!("/v1/result/{job_id}")))
        .json(&json!({"job_state": "complete"}))
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), StatusCode::OK);

    let results: Value = http
        .get(server.url(&format!("/v1/result/{job_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(results["exit_code"], json!(0));
    assert_eq!(results["output"], json!("foo"));
    assert_eq!(results["test_status"], json!(0));
    assert_eq!(results["job_state"], json!("complete"));

    // A finished job cannot be cancelled.
    let cancel = http
        .post(server.url(&format!("/v1/job/{job_id}/action")))
        .json(&json!({"action": "cancel"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cancel_cases_over_http() {
    let server = Server::start();
    let http = reqwest::Client::new();
    let submit = || async {
        let answer: Value = http
            .post(server.url("/v1/job"))
            .json(&json!({"job_queue": "cancel-q"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["job_id"].as_str().unwrap().to_owned()
    };
    let cancel = |id: String| {
        let http = http.clone();
        let url = server.url(&format!("/v1/job/{id}/action"));
        async move {
            http.post(url)
                .json(&json!({"action": "cancel"}))
                .send()
                .await
                .unwrap()
        }
    };
    let state = |id: String| {
        let http = http.clone();
        let url = server.url(&format!("/v1/result/{id}"));
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["job_state"].as_str().unwrap().to_owned()
        }
    };

    // A waiting job: cancelled, then no longer claimable.
    let waiting = submit().await;
    let answer = cancel(waiting.clone()).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await.unwrap(), "OK");
    assert_eq!(state(waiting.clone()).await, "cancelled");
    let claim = http
        .get(server.url("/v1/job?queue=cancel-q"))
        .send()
        .await
        .unwrap();
    assert_eq!(claim.status(), StatusCode::NO_CONTENT);

    // Cancelled twice: 400 with a JSON message.
    let twice = cancel(waiting.clone()).await;
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    let body: Value = twice.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("already"));

    // A running job: cancelled, and the agent's later `complete` does not undo it.
    let running = submit().await;
    let claim = http
        .get(server.url("/v1/job?queue=cancel-q"))
        .send()
        .await
        .unwrap();
    assert_eq!(claim.status(), StatusCode::OK);
    assert_eq!(cancel(running.clone()).await.status(), StatusCode::OK);
    let late = http
        .post(server.url(&format!("/v1/result/{running}")))
        .json(&json!({"job_state": "complete"}))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::OK);
    assert_eq!(state(running).await, "cancelled");

    // Unknown job: 404; not a job id: 400; unknown action: 422.
    let unknown = cancel("4c5e1f52-9b1d-4a5c-8f4e-2a6b7c8d9e0f".into()).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let bad_id = cancel("not-a-uuid".into()).await;
    assert_eq!(bad_id.status(), StatusCode::BAD_REQUEST);
    let bad_action = http
        .post(server.url(&format!("/v1/job/{waiting}/action")))
        .json(&json!({"action": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_action.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_key() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .args(["--bind", "127.0.0.1:0"])
        .current_dir(data.path())
        .env("TESTFLINGER_DATA_DIR", data.path())
        .env("TESTFLINGER_MAX_JSON_SIZE", "plenty")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TESTFLINGER_MAX_JSON_SIZE"), "{stderr}");
}

#[tokio::test]
async fn a_config_file_is_read_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tf.conf");
    std::fs::write(
        &file,
        "# tiny JSON bodies\nTESTFLINGER_MAX_JSON_SIZE = \"64\"\nTESTFLINGER_RETENTION_DAYS = \"zero\"\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();

    // The file's bad value stops start-up, naming the key.
    let output = Command::new(BINARY)
        .args(["--bind", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("TESTFLINGER_CONFIG", file)
        .env("TESTFLINGER_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TESTFLINGER_RETENTION_DAYS"), "{stderr}");

    // The environment overrides it; the file's JSON limit still applies.
    let server = Server::start_with(&[
        ("TESTFLINGER_CONFIG", file),
        ("TESTFLINGER_RETENTION_DAYS", "3"),
    ]);
    let http = reqwest::Client::new();
    let small = http
        .post(server.url("/v1/job"))
        .json(&json!({"job_queue": "q"}))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), StatusCode::OK);
    let large = http
        .post(server.url("/v1/job"))
        .json(&json!({"job_queue": "q", "padding": "x".repeat(100)}))
        .send()
        .await
        .unwrap();
    assert_eq!(large.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn ctrl_c_stops_the_server_cleanly() {
    let mut server = Server::start();
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(server.url("/v1")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let pid = server.child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let mut status = None;
    for _ in 0..100 {
        if let Some(exit) = server.child.try_wait().unwrap() {
            status = Some(exit);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.expect("the server exits after Ctrl-C");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn an_unreachable_mongodb_stops_start_up_naming_the_host_not_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens there.
    let output = Command::new(BINARY)
        .args(["--bind", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("TESTFLINGER_CONFIG")
        .env(
            "MONGODB_URI",
            "mongodb://lab:hunter2-secret@127.0.0.1:1/testflinger",
        )
        .env("MONGODB_CONNECT_TIMEOUT", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach MongoDB at 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2-secret"),
        "the password leaked: {stderr}"
    );
}

#[tokio::test]
async fn create_client_bootstraps_an_admin_that_a_running_server_accepts_at_once() {
    let server = Server::start_with(&[("JWT_SIGNING_KEY", "a signing key for this test")]);
    let http = reqwest::Client::new();
    let secret = "the first admin's secret";
    let (ok, text) = create_client(
        &server.data_dir(),
        &[
            "lab-admin",
            "--secret",
            "-",
            "--role",
            "admin",
            "--max-priority",
            "*=100",
        ],
        secret,
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("created client lab-admin with the role admin"),
        "{text}"
    );
    assert!(
        !text.contains(secret),
        "the secret is never printed: {text}"
    );

    // The server, already running, sees the new client at once.
    let token: Value = http
        .post(server.url("/v1/oauth2/token"))
        .basic_auth("lab-admin", Some(secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().expect("an access token");
    let clients: Value = http
        .get(server.url("/v1/client-permissions"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(clients[0]["client_id"], "lab-admin", "{clients}");
    assert_eq!(clients[0]["role"], "admin", "{clients}");
    assert_eq!(clients[0]["max_priority"]["*"], 100, "{clients}");
    assert!(!clients.to_string().contains("argon2"), "{clients}");

    // A wrong secret is refused.
    let refused = http
        .post(server.url("/v1/oauth2/token"))
        .basic_auth("lab-admin", Some("not the secret at all"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // Running it again updates the client: a new secret replaces the old.
    let (ok, text) = create_client(
        &server.data_dir(),
        &["lab-admin", "--secret", "-"],
        "a rotated secret for the admin",
    );
    assert!(ok && text.contains("updated client lab-admin"), "{text}");
    assert!(text.contains("revoked 1 refresh token"), "{text}");
    // The session of the old secret ends with it.
    let replayed = http
        .post(server.url("/v1/oauth2/refresh"))
        .json(&serde_json::json!({"refresh_token": token["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 400);
    let old = http
        .post(server.url("/v1/oauth2/token"))
        .basic_auth("lab-admin", Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
}

#[test]
fn create_client_refuses_bad_arguments_naming_the_problem() {
    let data = tempfile::tempdir().unwrap();
    for (args, secret, expected) in [
        (
            &["x", "--secret", "-"][..],
            "a long enough secret",
            "needs --role",
        ),
        (
            &["x", "--secret", "-", "--role", "root"],
            "a long enough secret",
            "role",
        ),
        (
            &["x", "--secret", "-", "--role", "agent"],
            "short",
            "client_secret",
        ),
        (
            &["x y", "--secret", "-", "--role", "agent"],
            "a long enough secret",
            "not a client id",
        ),
        (
            &["x", "--max-priority", "q=high", "--role", "agent"],
            "",
            "not a whole number",
        ),
    ] {
        let (ok, text) = create_client(data.path(), args, secret);
        assert!(!ok, "{args:?} must fail: {text}");
        assert!(text.contains(expected), "{args:?}: {text}");
    }
}

#[tokio::test]
async fn secret_values_travel_only_to_the_claiming_agent_and_never_to_the_log() {
    let server = Server::start_with(&[
        ("JWT_SIGNING_KEY", "a signing key for this test"),
        (
            "TESTFLINGER_SECRETS_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        ),
        ("RUST_LOG", "debug"),
    ]);
    let http = reqwest::Client::new();
    for (id, role) in [("ci", "contributor"), ("dut-agents", "agent")] {
        let (ok, text) = create_client(
            &server.data_dir(),
            &[id, "--secret", "-", "--role", role],
            "a secret of sufficient length",
        );
        assert!(ok, "{text}");
    }
    let token = |id: &'static str| {
        let http = http.clone();
        let url = server.url("/v1/oauth2/token");
        async move {
            let body: Value = http
                .post(url)
                .basic_auth(id, Some("a secret of sufficient length"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let (ci, agent) = (token("ci").await, token("dut-agents").await);
    let value = "wifi-passphrase-7f3a9c";
    let put = http
        .put(server.url("/v1/secrets/ci/lab/wifi"))
        .bearer_auth(&ci)
        .json(&json!({"value": value, "ephemeral": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let job: Value = http
        .post(server.url("/v1/job"))
        .bearer_auth(&ci)
        .json(&json!({"job_queue": "lab", "test_data": {"secrets": {"WIFI": "lab/wifi"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = job["job_id"].as_str().expect("a job id");
    let shown = http
        .get(server.url(&format!("/v1/job/{job_id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        shown.contains("lab/wifi") && !shown.contains(value),
        "{shown}"
    );
    let claimed: Value = http
        .get(server.url("/v1/job?queue=lab"))
        .bearer_auth(&agent)
        .header("Cookie", "agent_name=dut-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(claimed["test_data"]["secrets"]["WIFI"], value, "{claimed}");
    assert_eq!(claimed["client_id"], "ci", "{claimed}");

    std::thread::sleep(Duration::from_millis(200));
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("job claimed"), "the log is captured: {log}");
    assert!(
        !log.contains(value),
        "a secret value reached the log:\n{log}"
    );
    assert!(!log.contains("a secret of sufficient length"), "{log}");
}

#[tokio::test]
async fn a_backend_failure_is_500_and_logged_once_inside_its_request_span() {
    let server = Server::start();
    // The store breaks under the server: its agents table is gone.
    let database = server.data_dir().join("testflinger.sqlite3");
    rusqlite::Connection::open(database)
        .unwrap()
        .execute_batch("DROP TABLE agents;")
        .unwrap();
    let answer = reqwest::Client::new()
        .get(server.url("/v1/agents/data/dev-01"))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(
        !body["message"].as_str().unwrap().contains("agents"),
        "the cause stays out of the answer: {body}"
    );
    // The answer's own log line comes last; wait for it.
    let mut log = Vec::new();
    for _ in 0..100 {
        log = server.log.lock().unwrap().clone();
        if log.iter().any(|l| l.contains("testflinger::request")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let failures: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("storage backend failure"))
        .collect();
    assert_eq!(failures.len(), 1, "logged once: {log:#?}");
    for field in [
        "ERROR",
        "request{",
        "method=GET",
        "route=\"agent-data-get\"",
        "request_id=req-42",
        "no such table: agents",
    ] {
        assert!(
            failures[0].contains(field),
            "{field:?} missing from {:?}",
            failures[0]
        );
    }
    assert!(
        log.iter().any(|l| l.contains("testflinger::request")
            && l.contains("status=500")
            && l.contains("request_id=req-42")),
        "the answer is logged in the same span: {log:#?}"
    );
}

/// Sends request headers only and reads the answer's head and body, giving
/// up after a few seconds.
async fn headers_only(server: &Server, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.url("").trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&answer);
                    if text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
                        break;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_over_limit_content_length_is_refused_at_once() {
    let server = Server::start();
    let job = format!("/v1/result/{}/artifact", uuid::Uuid::new_v4());
    for (path, content_type, length) in [
        ("/v1/job", "application/json", "1000000000000"),
        (
            job.as_str(),
            "multipart/form-data; boundary=x",
            "3221225472",
        ),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n\
             Content-Length: {length}\r\n\r\n"
        );
        let answer = headers_only(&server, &head).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer:?}");
        assert!(answer.contains("\"message\""), "a JSON error: {answer:?}");
    }
}

#[tokio::test]
async fn an_address_that_keeps_guessing_client_ids_is_throttled_with_429() {
    let server = Server::start_with(&[("JWT_SIGNING_KEY", "a signing key for this test")]);
    let http = reqwest::Client::new();
    let secret = "the lab admin's own secret";
    let (ok, text) = create_client(
        &server.data_dir(),
        &["lab-admin", "--secret", "-", "--role", "admin"],
        secret,
    );
    assert!(ok, "{text}");
    let login = |id: String, secret: &'static str| {
        http.post(server.url("/v1/oauth2/token"))
            .basic_auth(id, Some(secret))
            .send()
    };
    // Each guessed id fails once only (so no client id is throttled), yet
    // the address, 127.0.0.1, runs out of free failures.
    for n in 0..=testflinger_shared::throttle::ADDRESS_FREE_FAILURES {
        let answer = login(format!("guess-{n}"), "a guess").await.unwrap();
        assert_eq!(answer.status(), 401);
    }
    let answer = login("lab-admin".into(), "the lab admin's own secret")
        .await
        .unwrap();
    assert_eq!(answer.status(), 429);
    assert!(answer.headers().contains_key("retry-after"));
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("this address"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_can_have_a_port_of_their_own() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let server = Server::start_with(&[("TESTFLINGER_METRICS_BIND", &address)]);
    let http = reqwest::Client::new();
    // A request on the main port, then the scrape on the metrics port.
    let version = http.get(server.url("/v1")).send().await.unwrap();
    assert_eq!(version.status(), StatusCode::OK);
    let mut scraped = None;
    for _ in 0..50 {
        match http.get(format!("http://{address}/metrics")).send().await {
            Ok(answer) => {
                scraped = Some(answer);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let scraped = scraped.expect("the metrics port answers");
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.unwrap();
    assert!(
        text.contains(
            "testflinger_http_requests_total{route=\"version\",method=\"GET\",status=\"200\"} 1\n"
        ),
        "{text}"
    );
    // The main port no longer shows them.
    let hidden = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let body: Value = hidden.json().await.unwrap();
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("TESTFLINGER_METRICS_BIND"));
}
