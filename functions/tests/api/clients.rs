//! Client permissions (SPEC.md §3, §4.4): who reads, creates, changes and
//! deletes clients, what a manager may grant, and what a new secret or a
//! deletion does to a client's sessions.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use testflinger_shared::role::Role;

use crate::common::*;
use crate::support::*;

trait OkText {
    fn ok_text(&self);
}

impl OkText for Reply {
    /// 200 with a plain-text body (the client-permissions answers).
    fn ok_text(&self) {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        assert!(self.content_type().starts_with("text/plain"), "{self:?}");
    }
}

// ---------------------------------------------------------------- reading

#[tokio::test]
async fn client_permissions_are_read_by_admins_and_managers_only() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    let contributor = server
        .client_token("ci", Role::Contributor, |c| {
            c.max_priority.insert("q".into(), 3);
        })
        .await;
    for uri in ["/v1/client-permissions", "/v1/client-permissions/ci"] {
        server
            .call(Method::GET, uri, None, None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED);
        server
            .call(Method::GET, uri, Some(&contributor), None)
            .await
            .assert_error(StatusCode::FORBIDDEN);
    }
    let list = server
        .call(Method::GET, "/v1/client-permissions", Some(&admin), None)
        .await
        .ok_json();
    let mut ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["admin", "ci", "manager"], "{list}");
    let one = server
        .call(
            Method::GET,
            "/v1/client-permissions/ci",
            Some(&manager),
            None,
        )
        .await
        .ok_json();
    assert_eq!(
        one,
        json!({
            "client_id": "ci",
            "role": "contributor",
            "max_priority": {"q": 3},
            "allowed_queues": [],
            "max_reservation_time": {},
        })
    );
    server
        .call(
            Method::GET,
            "/v1/client-permissions/nobody",
            Some(&admin),
            None,
        )
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn client_permissions_never_show_a_secret_or_its_hash() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let secret = "a-very-secret-secret-value";
    put_client(
        &server,
        Some(&admin),
        "ci",
        json!({"client_secret": secret}),
    )
    .await
    .assert_put_ok();
    for uri in ["/v1/client-permissions", "/v1/client-permissions/ci"] {
        let reply = server.call(Method::GET, uri, Some(&admin), None).await;
        reply.ok_json();
        let text = reply.text();
        for leak in [secret, &secret_of("admin"), "argon2", "hash", "$2"] {
            assert!(!text.contains(leak), "{leak:?} in {text}");
        }
    }
}

// ---------------------------------------------------------------- creating and changing

#[tokio::test]
async fn put_creates_then_updates_a_client() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let reply = put_client(
        &server,
        Some(&admin),
        "new-ci",
        json!({"client_secret": "a-long-enough-secret", "role": "contributor",
               "max_priority": {"q": 5}, "allowed_queues": ["secure"]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(reply.content_type().starts_with("text/plain"), "{reply:?}");
    assert_eq!(reply.text(), "Created permissions for client 'new-ci'");
    let reply = put_client(
        &server,
        Some(&admin),
        "new-ci",
        json!({"max_reservation_time": {"*": 30_000}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.text(), "Updated permissions for client 'new-ci'");
    let view = server
        .call(
            Method::GET,
            "/v1/client-permissions/new-ci",
            Some(&admin),
            None,
        )
        .await
        .ok_json();
    assert_eq!(
        view,
        json!({
            "client_id": "new-ci",
            "role": "contributor",
            "max_priority": {"q": 5},
            "allowed_queues": ["secure"],
            "max_reservation_time": {"*": 30_000},
        })
    );
}

#[tokio::test]
async fn put_validates_the_client() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    put_client(&server, Some(&admin), "x", json!({"role": "contributor"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "short"}),
    )
    .await
    .assert_invalid_fields(&["client_secret"]);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "a-long-enough-secret", "colour": "blue"}),
    )
    .await
    .assert_invalid_fields(&["colour"]);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "a-long-enough-secret", "role": "root"}),
    )
    .await
    .assert_invalid_fields(&["role"]);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "a-long-enough-secret", "max_priority": {"q": -1}}),
    )
    .await
    .assert_invalid_fields(&["max_priority"]);
    // Nothing was created.
    server
        .call(Method::GET, "/v1/client-permissions/x", Some(&admin), None)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    // Anonymous callers manage nobody.
    put_client(
        &server,
        None,
        "x",
        json!({"client_secret": "a-long-enough-secret"}),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED);
    // A client id with '$' is refused; 15 characters are enough.
    put_client(
        &server,
        Some(&admin),
        "bad$id",
        json!({"client_secret": "a-long-enough-secret"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "fourteen-chars"}),
    )
    .await
    .assert_invalid_fields(&["client_secret"]);
    put_client(
        &server,
        Some(&admin),
        "x",
        json!({"client_secret": "fifteen-chars!!"}),
    )
    .await
    .assert_put_ok();
    server.login("x", "fifteen-chars!!").await.ok_json();
}

#[tokio::test]
async fn client_ids_cannot_hold_a_colon() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    put_client(
        &server,
        Some(&admin),
        "user:name",
        json!({"client_secret": "a long enough secret"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_created_client_logs_in_with_its_secret() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    put_client(
        &server,
        Some(&admin),
        "fresh",
        json!({"client_secret": "the-fresh-secret-1", "role": "agent"}),
    )
    .await
    .assert_put_ok();
    let body = server.login("fresh", "the-fresh-secret-1").await.ok_json();
    let token = body["access_token"].as_str().unwrap();
    serve_queues(&server, token, "dev-1", &["q"]).await;
    server
        .login("fresh", "the-fresh-secret-2")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    // A new secret replaces the old one.
    put_client(
        &server,
        Some(&admin),
        "fresh",
        json!({"client_secret": "the-fresh-secret-2"}),
    )
    .await
    .assert_put_ok();
    server.login("fresh", "the-fresh-secret-2").await.ok_json();
    server
        .login("fresh", "the-fresh-secret-1")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_new_secret_ends_the_sessions_of_the_old_one() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let (_, refresh_token) = login_pair(&server, "ci", Role::Contributor).await;
    refresh(&server, &refresh_token).await.ok_json();
    put_client(
        &server,
        Some(&admin),
        "ci",
        json!({"client_secret": "a new secret after a leak"}),
    )
    .await
    .ok_text();
    refresh(&server, &refresh_token)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .login("ci", "a new secret after a leak")
        .await
        .ok_json();
}

#[tokio::test]
async fn a_manager_cannot_grant_or_edit_an_admin_but_creates_contributors() {
    let server = standard().await;
    let manager = manager_token(&server).await;
    admin_token(&server).await;
    put_client(
        &server,
        Some(&manager),
        "boss",
        json!({"client_secret": "a-long-enough-secret", "role": "admin"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    put_client(
        &server,
        Some(&manager),
        "admin",
        json!({"max_priority": {"*": 1}}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    put_client(
        &server,
        Some(&manager),
        "admin",
        json!({"client_secret": "taking-over-the-admin"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    server.login("admin", &secret_of("admin")).await.ok_json();
    let reply = put_client(
        &server,
        Some(&manager),
        "worker",
        json!({"client_secret": "a-long-enough-secret", "role": "contributor"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.text(), "Created permissions for client 'worker'");
    // Nor may the manager promote its contributor to admin.
    put_client(&server, Some(&manager), "worker", json!({"role": "admin"}))
        .await
        .assert_error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_manager_changes_its_own_role_and_below_and_only_its_own_secret() {
    let server = standard().await;
    let manager = manager_token(&server).await;
    let manager_id = "manager";
    server
        .add_client("m2", &secret_of("m2"), Role::Manager, |_| {})
        .await;
    // A peer (upstream: "not above its own"), but only with what the
    // manager holds itself: it holds no priority.
    put_client(
        &server,
        Some(&manager),
        "m2",
        json!({"client_secret": "a new secret for m2 here"}),
    )
    .await
    .ok_text();
    put_client(
        &server,
        Some(&manager),
        "m2",
        json!({"max_priority": {"*": 5}}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    // Not its own permissions, but its own secret.
    put_client(
        &server,
        Some(&manager),
        manager_id,
        json!({"allowed_queues": ["*"], "max_priority": {"*": 1000000}}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    put_client(
        &server,
        Some(&manager),
        manager_id,
        json!({"client_secret": "the manager's own new secret"}),
    )
    .await
    .ok_text();
    // Another manager, and contributors; never an admin.
    put_client(
        &server,
        Some(&manager),
        "m3",
        json!({"client_secret": "a secret for m3 here", "role": "manager"}),
    )
    .await
    .ok_text();
    put_client(
        &server,
        Some(&manager),
        "c1",
        json!({"client_secret": "a secret for c1 here", "role": "contributor"}),
    )
    .await
    .ok_text();
    put_client(
        &server,
        Some(&manager),
        "a2",
        json!({"client_secret": "a secret for a2 here", "role": "admin"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_manager_grants_no_more_than_it_holds() {
    let server = standard().await;
    let manager = server
        .client_token("lead", Role::Manager, |c| {
            c.max_priority.insert("rpi".into(), 50);
            c.allowed_queues = vec!["rpi".into()];
            c.max_reservation_time.insert("rpi".into(), 7200);
        })
        .await;
    let grant = |body: Value| {
        let mut body = body;
        body["client_secret"] = json!("a secret for ci here");
        put_client(&server, Some(&manager), "ci", body)
    };
    grant(json!({"max_priority": {"rpi": 50}, "allowed_queues": ["rpi"], "max_reservation_time": {"rpi": 7200}}))
        .await
        .ok_text();
    for too_much in [
        json!({"max_priority": {"rpi": 51}}),
        json!({"max_priority": {"*": 1}}),
        json!({"allowed_queues": ["x86"]}),
        json!({"allowed_queues": ["*"]}),
        json!({"max_reservation_time": {"rpi": 7201}}),
    ] {
        let body = grant(too_much.clone())
            .await
            .assert_error(StatusCode::FORBIDDEN);
        assert!(
            body["message"].as_str().unwrap().contains("does not hold"),
            "{too_much}: {body}"
        );
    }
}

// ---------------------------------------------------------------- deleting

#[tokio::test]
async fn only_an_admin_deletes_a_client() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    server.client_token("ci", Role::Contributor, |_| {}).await;
    let uri = "/v1/client-permissions/ci";
    server
        .call(Method::DELETE, uri, Some(&manager), None)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    server
        .call(Method::DELETE, uri, None, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    server
        .call(Method::DELETE, uri, Some(&admin), None)
        .await
        .assert_ok_text();
    server
        .call(Method::DELETE, uri, Some(&admin), None)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .call(Method::GET, uri, Some(&admin), None)
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_a_client_ends_its_tokens() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let (access, refresh_token) = login_pair(&server, "ci", Role::Contributor).await;
    server.submit_with(json!({"job_queue": "q"}), &access).await;
    server
        .call(
            Method::DELETE,
            "/v1/client-permissions/ci",
            Some(&admin),
            None,
        )
        .await
        .assert_ok_text();
    submit(&server, Some(&access), json!({"job_queue": "q"}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    refresh(&server, &refresh_token)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .login("ci", &secret_of("ci"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
}
