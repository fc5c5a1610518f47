//! Restricted queues (SPEC.md §3, §4.4): who may restrict a queue and to
//! which clients, how owners are removed, and that only its owners submit to a
//! restricted queue.

use axum::http::{Method, StatusCode};
use serde_json::json;
use testflinger_shared::role::Role;

use crate::common::*;
use crate::support::*;

async fn unrestrict(server: &Server, token: Option<&str>, queue: &str, client_id: &str) -> Reply {
    server
        .call(
            Method::DELETE,
            &format!("/v1/restricted-queues/{queue}"),
            token,
            Some(&json!({ "client_id": client_id })),
        )
        .await
}

#[tokio::test]
async fn restricting_a_queue_needs_an_admin_or_a_manager() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    let contributor = server.client_token("ci", Role::Contributor, |_| {}).await;
    serve_queues(&server, &admin, "dev-1", &["a", "b"]).await;
    restrict(&server, None, "a", "ci")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    restrict(&server, Some(&contributor), "a", "ci")
        .await
        .assert_error(StatusCode::FORBIDDEN);
    unrestrict(&server, Some(&contributor), "a", "ci")
        .await
        .assert_error(StatusCode::FORBIDDEN);
    server
        .call(Method::GET, "/v1/restricted-queues/a", Some(&admin), None)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    restrict(&server, Some(&manager), "a", "ci")
        .await
        .assert_ok_text();
    restrict(&server, Some(&admin), "b", "ci")
        .await
        .assert_ok_text();
    // Restricted queues are read by contributors and anonymous callers too.
    let list = server.get("/v1/restricted-queues").await.ok_json();
    assert_eq!(
        list,
        json!([{"queue": "a", "owners": ["ci"]}, {"queue": "b", "owners": ["ci"]}])
    );
    let one = server
        .call(
            Method::GET,
            "/v1/restricted-queues/a",
            Some(&contributor),
            None,
        )
        .await
        .ok_json();
    assert_eq!(one, json!({"queue": "a", "owners": ["ci"]}));
}

#[tokio::test]
async fn restricting_needs_a_known_client_a_served_queue_and_a_client_id() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    server.client_token("ci", Role::Contributor, |_| {}).await;
    serve_queues(&server, &admin, "dev-1", &["served"]).await;
    restrict(&server, Some(&admin), "served", "nobody")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    restrict(&server, Some(&admin), "unserved", "ci")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .call(
            Method::POST,
            "/v1/restricted-queues/served",
            Some(&admin),
            Some(&json!({})),
        )
        .await
        .assert_invalid_fields(&["client_id"]);
    server
        .call(
            Method::POST,
            "/v1/restricted-queues/served",
            Some(&admin),
            Some(&json!({"client_id": 7})),
        )
        .await
        .assert_invalid_fields(&["client_id"]);
    // Nothing was restricted.
    let list = server.get("/v1/restricted-queues").await.ok_json();
    assert_eq!(list, json!([]));
    server
        .get("/v1/restricted-queues/served")
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn removing_owners_ends_the_restriction_with_the_last_one() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    server.client_token("one", Role::Contributor, |_| {}).await;
    server.client_token("two", Role::Contributor, |_| {}).await;
    serve_queues(&server, &admin, "dev-1", &["lab"]).await;
    restrict(&server, Some(&admin), "lab", "one")
        .await
        .assert_ok_text();
    restrict(&server, Some(&admin), "lab", "two")
        .await
        .assert_ok_text();
    let mut restriction = server.get("/v1/restricted-queues/lab").await.ok_json();
    restriction["owners"]
        .as_array_mut()
        .unwrap()
        .sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(
        restriction,
        json!({"queue": "lab", "owners": ["one", "two"]})
    );

    unrestrict(&server, Some(&admin), "lab", "one")
        .await
        .assert_ok_text();
    let restriction = server.get("/v1/restricted-queues/lab").await.ok_json();
    assert_eq!(restriction, json!({"queue": "lab", "owners": ["two"]}));
    let one = server
        .call(
            Method::GET,
            "/v1/client-permissions/one",
            Some(&admin),
            None,
        )
        .await
        .ok_json();
    assert_eq!(one["allowed_queues"], json!([]), "{one}");
    let two = server
        .call(
            Method::GET,
            "/v1/client-permissions/two",
            Some(&admin),
            None,
        )
        .await
        .ok_json();
    assert_eq!(two["allowed_queues"], json!(["lab"]), "{two}");
    // Not an owner (any more).
    unrestrict(&server, Some(&admin), "lab", "one")
        .await
        .assert_error(StatusCode::NOT_FOUND);

    unrestrict(&server, Some(&admin), "lab", "two")
        .await
        .assert_ok_text();
    server
        .get("/v1/restricted-queues/lab")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    unrestrict(&server, Some(&admin), "lab", "two")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    // The queue is open again.
    server.submit(json!({"job_queue": "lab"})).await;
}

#[tokio::test]
async fn a_manager_cannot_make_an_admin_own_a_queue() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    serve_queues(&server, &agent_token(&server).await, "dut-1", &["secure"]).await;
    restrict(&server, Some(&manager), "secure", "admin")
        .await
        .assert_error(StatusCode::FORBIDDEN);
    restrict(&server, Some(&admin), "secure", "admin")
        .await
        .assert_ok_text();
    unrestrict(&server, Some(&manager), "secure", "admin")
        .await
        .assert_error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_restricted_queue_takes_jobs_only_from_allowed_clients() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let owner = server
        .client_token("owner", Role::Contributor, |_| {})
        .await;
    let other = server
        .client_token("other", Role::Contributor, |_| {})
        .await;
    serve_queues(&server, &admin, "dev-1", &["secure"]).await;
    // Before the restriction, anyone submits.
    server.submit(json!({"job_queue": "secure"})).await;
    restrict(&server, Some(&admin), "secure", "owner")
        .await
        .assert_ok_text();
    let job = json!({"job_queue": "secure"});
    submit(&server, None, job.clone())
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    submit(&server, Some(&other), job.clone())
        .await
        .assert_error(StatusCode::FORBIDDEN);
    server.submit_with(job.clone(), &owner).await;
    // The owner's allowed_queues gained the queue.
    let owner_view = server
        .call(
            Method::GET,
            "/v1/client-permissions/owner",
            Some(&admin),
            None,
        )
        .await
        .ok_json();
    assert_eq!(
        owner_view["allowed_queues"],
        json!(["secure"]),
        "{owner_view}"
    );
    // Other queues stay open.
    submit(&server, Some(&other), json!({"job_queue": "open"}))
        .await
        .ok_json();
}
