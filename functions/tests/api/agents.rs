//! Agents (SPEC.md §4.3): agent data and the cookie it sets, provision
//! logs, the queues and images agents advertise, and the owners of the
//! restricted queues an agent serves.

use axum::http::StatusCode;
use serde_json::json;
use testflinger_shared::role::Role;

use crate::common::*;
use crate::support::*;

// ---------------------------------------------------------------- agent data and provision logs

#[tokio::test]
async fn agent_data_sets_the_cookie_and_checks_fields() {
    let server = Server::new().await;
    let reply = server
        .post_json(
            "/v1/agents/data/dev-1",
            &json!({"state": "waiting", "queues": ["q"], "log": ["booted"]}),
        )
        .await;
    assert_eq!(reply.ok_json(), json!({"status": "OK"}));
    assert_eq!(
        reply.headers["set-cookie"],
        "agent_name=dev-1; HttpOnly; Path=/; SameSite=Strict"
    );
    server
        .post_json(
            "/v1/agents/data/dev-1",
            &json!({"state": 3, "queues": "q", "updated_at": "x"}),
        )
        .await
        .assert_invalid_fields(&["queues", "state", "updated_at"]);
    server
        .post_json("/v1/agents/data/a;b", &json!({"state": "waiting"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST);

    let listed = server.get("/v1/agents/data").await.ok_json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        listed[0].get("log").is_none(),
        "the list leaves logs out: {listed}"
    );
    assert_eq!(listed[0]["restricted_to"], json!({}));
    let one = server.get("/v1/agents/data/dev-1").await.ok_json();
    assert_eq!(one["log"], json!(["booted"]));
    assert_eq!(one["state"], json!("waiting"));
    assert!(is_rfc3339_utc(one["updated_at"].as_str().unwrap()));
    server
        .get("/v1/agents/data/nobody")
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_agent_shows_the_owners_of_its_restricted_queues() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    server.client_token("one", Role::Contributor, |_| {}).await;
    server.client_token("two", Role::Contributor, |_| {}).await;
    serve_queues(&server, &admin, "dev-1", &["lab", "open"]).await;
    serve_queues(&server, &admin, "dev-2", &["elsewhere"]).await;
    restrict(&server, Some(&admin), "lab", "one")
        .await
        .assert_ok_text();
    restrict(&server, Some(&admin), "lab", "two")
        .await
        .assert_ok_text();
    restrict(&server, Some(&admin), "elsewhere", "one")
        .await
        .assert_ok_text();
    let agent = server.get("/v1/agents/data/dev-1").await.ok_json();
    let mut owners: Vec<&str> = agent["restricted_to"]["lab"]
        .as_array()
        .unwrap_or_else(|| panic!("{agent}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    owners.sort_unstable();
    assert_eq!(owners, ["one", "two"], "{agent}");
    assert_eq!(
        agent["restricted_to"].as_object().unwrap().len(),
        1,
        "only this agent's queues: {agent}"
    );
    let other = server.get("/v1/agents/data/dev-2").await.ok_json();
    assert_eq!(other["restricted_to"], json!({"elsewhere": ["one"]}));
    // The list shows the same.
    let list = server.get("/v1/agents/data").await.ok_json();
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == json!("dev-2"))
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(listed["restricted_to"], json!({"elsewhere": ["one"]}));
}

#[tokio::test]
async fn a_provision_log_for_an_unknown_agent_is_404_and_writes_nothing() {
    let server = Server::new().await;
    let entry = json!({"job_id": UNKNOWN_ID, "exit_code": 1, "detail": "provision_fail"});
    server
        .post_json("/v1/agents/provision_logs/ghost", &entry)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .get("/v1/agents/data/ghost")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .post_json(
            "/v1/agents/provision_logs/ghost",
            &json!({"exit_code": "x"}),
        )
        .await
        .assert_invalid_fields(&["exit_code", "job_id"]);
    server
        .post_json("/v1/agents/data/dev", &json!({"state": "waiting"}))
        .await
        .ok_json();
    server
        .post_json("/v1/agents/provision_logs/dev", &entry)
        .await
        .assert_ok_text();
    let agent = server.get("/v1/agents/data/dev").await.ok_json();
    assert_eq!(agent["provision_streak_type"], json!("fail"));
    assert_eq!(agent["provision_streak_count"], json!(1));
}

// ---------------------------------------------------------------- advertised queues and images

#[tokio::test]
async fn advertised_queues_are_listed() {
    let server = Server::new().await;
    let empty = server.get("/v1/agents/queues").await.ok_json();
    assert_eq!(empty, json!({}));
    server
        .post_json(
            "/v1/agents/queues",
            &json!({"q1": "the first queue", "q2": "the second"}),
        )
        .await
        .assert_ok_text();
    server
        .post_json("/v1/agents/queues", &json!({"q1": "renamed", "q3": ""}))
        .await
        .assert_ok_text();
    let listed = server.get("/v1/agents/queues").await.ok_json();
    assert_eq!(
        listed,
        json!({"q1": "renamed", "q2": "the second", "q3": ""})
    );
}

#[tokio::test]
async fn queue_with_a_non_string_description_is_422() {
    let server = Server::new().await;
    server
        .post_json("/v1/agents/queues", &json!({"good": "x", "bad": 5}))
        .await
        .assert_invalid_fields(&["bad"]);
    server
        .post_raw("/v1/agents/queues", Some("application/json"), "[\"q\"]")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(server.get("/v1/agents/queues").await.ok_json(), json!({}));
}

#[tokio::test]
async fn advertised_images_are_served_per_queue() {
    let server = Server::new().await;
    server
        .post_json(
            "/v1/agents/images",
            &json!({"q": {"img": "url: x", "jammy": "distro: jammy"}, "r": {"other": "url: y"}}),
        )
        .await
        .assert_ok_text();
    let images = server.get("/v1/agents/images/q").await.ok_json();
    assert_eq!(images, json!({"img": "url: x", "jammy": "distro: jammy"}));
    let images = server.get("/v1/agents/images/r").await.ok_json();
    assert_eq!(images, json!({"other": "url: y"}));
}

#[tokio::test]
async fn images_of_an_unknown_queue_are_empty() {
    let server = Server::new().await;
    let images = server.get("/v1/agents/images/nowhere").await.ok_json();
    assert_eq!(images, json!({}));
}

#[tokio::test]
async fn a_second_images_post_replaces_the_map() {
    let server = Server::new().await;
    server
        .post_json("/v1/agents/images", &json!({"q": {"img": "url: x"}}))
        .await
        .assert_ok_text();
    server
        .post_json("/v1/agents/images", &json!({"q": {"new": "url: z"}}))
        .await
        .assert_ok_text();
    let images = server.get("/v1/agents/images/q").await.ok_json();
    assert_eq!(images, json!({"new": "url: z"}));
}

#[tokio::test]
async fn images_with_bad_shapes_are_422() {
    let server = Server::new().await;
    server
        .post_json("/v1/agents/images", &json!({"q": "url: x"}))
        .await
        .assert_invalid_fields(&["q"]);
    server
        .post_json("/v1/agents/images", &json!({"q": {"img": 1}}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(server.get("/v1/agents/images/q").await.ok_json(), json!({}));
}
