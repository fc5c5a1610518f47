//! `testflinger-cli`'s request sequences (upstream-api.md §9), replayed
//! through the router, asserting every status code and every response field
//! the CLI reads (SPEC.md §4.1–4.3, §6, §7). First anonymous commands in
//! `open` mode; then (at the end) the CLI with credentials, and without them,
//! in the `standard` and `strict` modes (SPEC.md §3, upstream-api.md §3).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{header, Method, StatusCode};
use common::replay::*;
use common::*;
use serde_json::{json, Value};
use testflinger_shared::logs::LOG_PHASES;
use testflinger_shared::role::{AuthMode, Role};
use testflinger_shared::Timestamp;

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
// Anonymous, in `open` mode

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
// With authentication: the CLI holding tokens, or without them, in the
// `standard` and `strict` modes (SPEC.md §3, upstream-api.md §3, §9)

const ADMIN: &str = "lab-admin";

const ADMIN_SECRET: &str = "the lab admin's secret";

const CI: &str = "ci-team";

const CI_SECRET: &str = "the CI team's secret";

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
