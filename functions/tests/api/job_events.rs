//! Each job's events (`GET /v1/events/job/{id}`), the link between an agent
//! and the job it runs, and who submitted what: all recorded by the server
//! from the requests it already gets.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use testflinger_shared::role::Role;

use crate::common::*;
use crate::support::*;

/// A standard-mode server with an agent `dev-1` on queue `q` and a CI client.
async fn lab() -> (Server, String, String) {
    let server = standard().await;
    let agent = agent_token(&server).await;
    serve_queues(&server, &agent, "dev-1", &["q"]).await;
    let ci = server.client_token("ci", Role::Contributor, |_| {}).await;
    (server, agent, ci)
}

async fn post_result(server: &Server, agent: &str, id: &str, body: Value) {
    call_as(
        server,
        Method::POST,
        &format!("/v1/result/{id}"),
        Some(agent),
        Some("dev-1"),
        Some(&body),
    )
    .await
    .assert_ok_text();
}

/// Submits a job (with a token when given) and answers its id.
async fn submit_id(server: &Server, token: Option<&str>, job: Value) -> String {
    let reply = submit(server, token, job).await.ok_json();
    reply["job_id"].as_str().unwrap().to_owned()
}

async fn events(server: &Server, id: &str) -> Vec<Value> {
    let body = server.get(&format!("/v1/events/job/{id}")).await.ok_json();
    assert_eq!(body["job_id"], json!(id));
    body["events"].as_array().unwrap().clone()
}

fn names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event_name"].as_str().unwrap())
        .collect()
}

async fn agent(server: &Server, name: &str) -> Value {
    server
        .get(&format!("/v1/agents/data/{name}"))
        .await
        .ok_json()
}

#[tokio::test]
async fn a_job_s_events_follow_it_from_submission_to_completion() {
    let (server, agent_token, ci) = lab().await;
    let id = submit_id(&server, Some(&ci), json!({"job_queue": "q"})).await;
    assert_eq!(names(&events(&server, &id).await), ["job_submitted"]);
    let claimed = claim(&server, "q", Some(&agent_token), Some("dev-1")).await;
    assert_eq!(claimed.ok_json()["job_id"], json!(id));
    let mut status = serde_json::Map::new();
    for phase in ["setup", "provision", "test"] {
        post_result(&server, &agent_token, &id, json!({"job_state": phase})).await;
        status.insert(phase.into(), json!(0));
        post_result(&server, &agent_token, &id, json!({"status": status})).await;
    }
    post_result(&server, &agent_token, &id, json!({"job_state": "complete"})).await;
    // A late report changes nothing and records nothing.
    post_result(&server, &agent_token, &id, json!({"job_state": "complete"})).await;
    let events = events(&server, &id).await;
    assert_eq!(
        names(&events),
        [
            "job_submitted",
            "job_assigned",
            "job_phase_started",
            "job_phase_completed",
            "job_phase_started",
            "job_phase_completed",
            "job_phase_started",
            "job_phase_completed",
            "job_completed",
        ]
    );
    assert_eq!(events[0]["detail"], json!("ci"));
    assert_eq!(events[1]["detail"], json!("dev-1"));
    assert_eq!(events[2]["phase"], json!("setup"));
    assert_eq!(events[3]["phase"], json!("setup"));
    assert_eq!(events[3]["status"], json!(0));
    for event in &events {
        let at = event["timestamp"]["$date"]
            .as_str()
            .expect("a $date timestamp");
        assert!(is_rfc3339_utc(at), "{event}");
        assert!(
            event["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{event}"
        );
    }
}

#[tokio::test]
async fn a_cancel_is_an_event_naming_who_cancelled() {
    let (server, agent_token, ci) = lab().await;
    let id = submit_id(&server, Some(&ci), json!({"job_queue": "q"})).await;
    claim(&server, "q", Some(&agent_token), Some("dev-1"))
        .await
        .ok_json();
    server
        .call(
            Method::POST,
            &format!("/v1/job/{id}/action"),
            Some(&ci),
            Some(&json!({"action": "cancel"})),
        )
        .await
        .assert_ok_text();
    // The agent sees the cancel and reports it: no second event.
    post_result(
        &server,
        &agent_token,
        &id,
        json!({"job_state": "cancelled"}),
    )
    .await;
    let events = events(&server, &id).await;
    assert_eq!(
        names(&events),
        ["job_submitted", "job_assigned", "job_cancelled"]
    );
    assert_eq!(events[2]["detail"], json!("ci"));
    assert!(events[2]["message"].as_str().unwrap().contains("ci"));
}

#[tokio::test]
async fn events_of_an_unknown_job_are_404_and_of_a_bad_id_400() {
    let server = Server::new().await;
    let body = server
        .get(&format!("/v1/events/job/{}", uuid::Uuid::new_v4()))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    assert_eq!(body["message"], json!("Job not found"));
    server
        .get("/v1/events/job/nope")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_claim_links_the_agent_and_the_job_until_the_job_ends() {
    let (server, agent_token, ci) = lab().await;
    let id = submit_id(&server, Some(&ci), json!({"job_queue": "q"})).await;
    claim(&server, "q", Some(&agent_token), Some("dev-1"))
        .await
        .ok_json();
    let linked = agent(&server, "dev-1").await;
    assert_eq!(linked["job_id"], json!(id));
    assert_eq!(linked["submitted_by"], json!("ci"));
    let listed = server.get("/v1/agents/data").await.ok_json();
    assert_eq!(listed[0]["job_id"], json!(id));
    assert_eq!(listed[0]["submitted_by"], json!("ci"));
    let queue = server.get("/v1/queues/q/agents").await.ok_json();
    assert_eq!(queue[0]["submitted_by"], json!("ci"));
    assert_eq!(server.result(&id).await["agent_id"], json!("dev-1"));
    // The newer agent posts no job_id itself; the end of the job unlinks.
    post_result(&server, &agent_token, &id, json!({"job_state": "complete"})).await;
    let unlinked = agent(&server, "dev-1").await;
    assert_eq!(unlinked["job_id"], json!(""));
    assert!(unlinked.get("submitted_by").is_none(), "{unlinked}");
    assert_eq!(server.result(&id).await["agent_id"], json!("dev-1"));

    // A cancel unlinks too.
    let next = submit_id(&server, Some(&ci), json!({"job_queue": "q"})).await;
    claim(&server, "q", Some(&agent_token), Some("dev-1"))
        .await
        .ok_json();
    assert_eq!(agent(&server, "dev-1").await["job_id"], json!(next));
    server
        .call(
            Method::POST,
            &format!("/v1/job/{next}/action"),
            Some(&ci),
            Some(&json!({"action": "cancel"})),
        )
        .await
        .assert_ok_text();
    assert_eq!(agent(&server, "dev-1").await["job_id"], json!(""));
}

#[tokio::test]
async fn an_old_agent_s_own_job_id_posts_stay_harmless() {
    let (server, agent_token, _) = lab().await;
    let id = submit_id(&server, None, json!({"job_queue": "q"})).await;
    claim(&server, "q", Some(&agent_token), Some("dev-1"))
        .await
        .ok_json();
    let post = |body: Value| {
        let (server, token) = (&server, agent_token.clone());
        async move {
            call_as(
                server,
                Method::POST,
                "/v1/agents/data/dev-1",
                Some(&token),
                None,
                Some(&body),
            )
            .await
        }
    };
    post(json!({"job_id": id})).await.ok_json();
    let linked = agent(&server, "dev-1").await;
    assert_eq!(linked["job_id"], json!(id));
    assert!(linked.get("submitted_by").is_none(), "anonymous: {linked}");
    post_result(&server, &agent_token, &id, json!({"job_state": "complete"})).await;
    post(json!({"job_id": ""})).await.ok_json();
    assert_eq!(agent(&server, "dev-1").await["job_id"], json!(""));
    // Nobody but the server says who submitted a job.
    post(json!({"submitted_by": "someone"}))
        .await
        .assert_invalid_fields(&["submitted_by"]);
}

#[tokio::test]
async fn listings_show_who_submitted_each_job() {
    let (server, agent_token, ci) = lab().await;
    let mine = submit_id(&server, Some(&ci), json!({"job_queue": "q", "tags": ["t"]})).await;
    let anonymous = submit_id(&server, None, json!({"job_queue": "q", "tags": ["t"]})).await;
    let by_id = |list: &Value, id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|j| j["job_id"] == json!(id))
            .cloned()
            .unwrap()
    };
    let queue = server.get("/v1/queues/q/jobs").await.ok_json();
    assert_eq!(by_id(&queue, &mine)["submitted_by"], json!("ci"));
    assert_eq!(by_id(&queue, &anonymous)["submitted_by"], json!(null));
    let found = server.get("/v1/job/search?tags=t").await.ok_json();
    assert_eq!(by_id(&found, &mine)["submitted_by"], json!("ci"));
    assert_eq!(by_id(&found, &anonymous)["submitted_by"], json!(null));
    // The provision log of the agent running it names the client too.
    claim(&server, "q", Some(&agent_token), Some("dev-1"))
        .await
        .ok_json();
    call_as(
        &server,
        Method::POST,
        "/v1/agents/provision_logs/dev-1",
        Some(&agent_token),
        None,
        Some(&json!({"job_id": mine, "exit_code": 0, "detail": ""})),
    )
    .await
    .assert_ok_text();
    let logged = agent(&server, "dev-1").await;
    assert_eq!(logged["provision_log"][0]["client_id"], json!("ci"));
}

#[tokio::test]
async fn a_result_s_agent_id_must_be_a_string() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server
        .post_json(&format!("/v1/result/{id}"), &json!({"agent_id": 7}))
        .await
        .assert_invalid_fields(&["agent_id"]);
    server.post_result(&id, json!({"agent_id": "dev-9"})).await;
    assert_eq!(server.result(&id).await["agent_id"], json!("dev-9"));
}
