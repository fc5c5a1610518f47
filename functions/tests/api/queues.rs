//! Queues (SPEC.md §4.3): a queue exists when an agent lists it; its agents
//! and jobs; the wait times of the queues jobs were claimed from.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_queue_exists_when_an_agent_lists_it() {
    let server = Server::new().await;
    let reply = server.get("/v1/queues/lab-q/agents").await;
    assert_eq!(
        reply.assert_error(StatusCode::NOT_FOUND)["message"],
        json!("Queue 'lab-q' does not exist.")
    );
    server
        .post_json(
            "/v1/agents/data/dev",
            &json!({"state": "waiting", "queues": ["lab-q"]}),
        )
        .await
        .ok_json();
    let agents = server.get("/v1/queues/lab-q/agents").await.ok_json();
    assert_eq!(agents[0]["name"], json!("dev"));
    server
        .get("/v1/queues/lab-q/jobs")
        .await
        .assert_no_content();
    let id = server.submit(json!({"job_queue": "lab-q"})).await;
    let jobs = server.get("/v1/queues/lab-q/jobs").await.ok_json();
    assert_eq!(
        jobs,
        json!([{"job_id": id, "created_at": jobs[0]["created_at"], "job_state": "waiting", "job_queue": "lab-q", "submitted_by": null}])
    );
}

#[tokio::test]
async fn wait_times_cover_claimed_queues_only() {
    let server = Server::new().await;
    assert_eq!(
        server.get("/v1/queues/wait_times").await.ok_json(),
        json!({})
    );
    server.submit(json!({"job_queue": "a"})).await;
    server.submit(json!({"job_queue": "b"})).await;
    server.claim_one("queue=a").await;
    server.claim_one("queue=b").await;
    let all = server.get("/v1/queues/wait_times").await.ok_json();
    assert_eq!(all.as_object().unwrap().len(), 2);
    let keys: Vec<&String> = all["a"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["5", "10", "50", "90", "95"]);
    assert!(all["a"]["50"].as_f64().unwrap() >= 0.0);
    let only_a = server.get("/v1/queues/wait_times?queue=a").await.ok_json();
    assert_eq!(
        only_a.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["a"]
    );
}
