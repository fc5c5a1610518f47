//! Agents (SPEC.md §4.3): agent data and the cookie it sets, provision
//! logs, the queues and images agents advertise, and the owners of the
//! restricted queues an agent serves.

use axum::http::{Method, StatusCode};
use serde_json::json;
use testflinger_shared::role::{AuthMode, Role};

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

// ---------------------------------------------------------------- modes (upstream #1312, v2)

#[tokio::test]
async fn legacy_states_fold_into_modes_and_v1_reads_synthesise_the_state() {
    let server = Server::new().await;
    for (posted, mode, state, legacy) in [
        ("offline", "offline", None, "offline"),
        ("restart", "restart", None, "restart"),
        ("maintenance", "maintenance", Some("waiting"), "maintenance"),
        ("unknown", "online", None, "waiting"),
        ("waiting", "online", Some("waiting"), "waiting"),
        ("provision", "online", Some("provision"), "provision"),
    ] {
        let name = format!("fold-{posted}");
        let reply = server
            .post_json(
                &format!("/v1/agents/data/{name}"),
                &json!({"state": posted, "queues": ["fq"]}),
            )
            .await;
        assert_eq!(reply.ok_json(), json!({"status": "OK"}));
        let v2 = server
            .get(&format!("/v2/agents/{name}/data"))
            .await
            .ok_json();
        assert_eq!(v2["mode"], json!(mode), "{posted}: {v2}");
        assert_eq!(v2["state"].as_str(), state, "{posted}: {v2}");
        assert!(is_rfc3339_utc(v2["mode_changed_at"].as_str().unwrap()));
        // Every v1 read shows the synthesised flat state.
        let one = server
            .get(&format!("/v1/agents/data/{name}"))
            .await
            .ok_json();
        assert_eq!(one["state"], json!(legacy), "{posted}: {one}");
        assert_eq!(one["mode"], json!(mode));
        for list in ["/v1/agents/data", "/v1/queues/fq/agents"] {
            let listed = server.get(list).await.ok_json();
            let mine = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == json!(name))
                .unwrap_or_else(|| panic!("{list}: {listed}"));
            assert_eq!(mine["state"], json!(legacy), "{list} {posted}");
        }
    }
    // An explicit mode wins over the flat state; an invalid one is a 422.
    let reply = server
        .post_json(
            "/v1/agents/data/fold-waiting",
            &json!({"mode": "maintenance", "comment": "bench"}),
        )
        .await;
    assert_eq!(reply.ok_json(), json!({"status": "OK"}));
    let one = server.get("/v1/agents/data/fold-waiting").await.ok_json();
    assert_eq!(
        (one["state"].clone(), one["comment"].clone()),
        (json!("maintenance"), json!("bench"))
    );
    server
        .post_json("/v1/agents/data/fold-waiting", &json!({"mode": "asleep"}))
        .await
        .assert_invalid_fields(&["mode"]);
    server
        .post_json(
            "/v1/agents/data/fold-waiting",
            &json!({"mode_changed_at": "x"}),
        )
        .await
        .assert_invalid_fields(&["mode_changed_at"]);
}

#[tokio::test]
async fn mode_changes_are_stamped_with_the_posting_client_but_not_for_agents() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let agent = agent_token(&server).await;
    let post = |token: String, body: serde_json::Value| {
        let server = &server;
        async move {
            let reply = server
                .call(
                    Method::POST,
                    "/v1/agents/data/stamped",
                    Some(&token),
                    Some(&body),
                )
                .await;
            assert_eq!(reply.ok_json(), json!({"status": "OK"}), "{reply:?}");
        }
    };
    post(agent.clone(), json!({"state": "waiting"})).await;
    post(
        admin.clone(),
        json!({"mode": "offline", "comment": "rack move"}),
    )
    .await;
    let v1 = server.get("/v1/agents/data/stamped").await.ok_json();
    assert_eq!(v1["mode_changed_by"], json!("admin"));
    assert_eq!(v1["state"], json!("offline"));
    let stamped_at = v1["mode_changed_at"].clone();
    // The same mode again: not restamped.
    post(admin.clone(), json!({"state": "offline"})).await;
    let v1 = server.get("/v1/agents/data/stamped").await.ok_json();
    assert_eq!(v1["mode_changed_at"], stamped_at);
    post(agent.clone(), json!({"state": "waiting"})).await;
    let v1 = server.get("/v1/agents/data/stamped").await.ok_json();
    assert!(v1.get("mode_changed_by").is_none(), "{v1}");
    assert_eq!(v1["state"], json!("waiting"));
}

#[tokio::test]
async fn v2_agent_endpoints_check_roles_and_bodies() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    let agent = agent_token(&server).await;
    let contributor = server
        .client_token("contrib", Role::Contributor, |_| {})
        .await;
    let post_v2 = |token: &str, name: &str, body: serde_json::Value| {
        let (token, name) = (token.to_owned(), name.to_owned());
        let server = &server;
        async move {
            server
                .call(
                    Method::POST,
                    &format!("/v2/agents/{name}/data"),
                    Some(&token),
                    Some(&body),
                )
                .await
        }
    };

    // Only agents report through v2.
    let reply = post_v2(
        &agent,
        "v2-dev",
        json!({
            "mode": "online", "state": "waiting", "queues": ["v2q"], "location": "lab",
            "provision_type": "noprovision", "identifier": "s-1", "log": ["up"],
        }),
    )
    .await;
    assert_eq!(reply.ok_json(), json!({"status": "OK"}), "{reply:?}");
    assert_eq!(
        reply.headers["set-cookie"],
        "agent_name=v2-dev; HttpOnly; Path=/; SameSite=Strict"
    );
    for token in [&admin, &manager, &contributor] {
        post_v2(token, "v2-dev", json!({"mode": "offline"}))
            .await
            .assert_error(StatusCode::FORBIDDEN);
    }
    let reply = post_v2(
        &agent,
        "v2-dev",
        json!({"mode": "offline", "state": "waiting"}),
    )
    .await;
    assert_eq!(
        reply.assert_error(StatusCode::BAD_REQUEST)["message"],
        json!("mode=offline does not take a state")
    );
    post_v2(&agent, "v2-dev", json!({"state": "unknown"}))
        .await
        .assert_invalid_fields(&["state"]);
    post_v2(&agent, "v2-dev", json!({"mode": "away"}))
        .await
        .assert_invalid_fields(&["mode"]);

    // Reads: the list for people, one agent for everyone.
    let get = |token: &str, uri: &str| {
        let (token, uri) = (token.to_owned(), uri.to_owned());
        let server = &server;
        async move { server.call(Method::GET, &uri, Some(&token), None).await }
    };
    let listed = get(&contributor, "/v2/agents/data").await.ok_json();
    assert_eq!(listed[0]["name"], json!("v2-dev"));
    assert_eq!(listed[0]["mode"], json!("online"));
    assert_eq!(listed[0]["job"], json!(null));
    // Even in open mode, where anonymous callers act as agents, an admin's
    // own token may not report for an agent.
    let open = Server::with_auth(AuthMode::Open).await;
    let open_admin = admin_token(&open).await;
    open.call(
        Method::POST,
        "/v2/agents/o/data",
        Some(&open_admin),
        Some(&json!({"mode": "online"})),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN);
    let reply = open
        .call(
            Method::POST,
            "/v2/agents/o/data",
            None,
            Some(&json!({"mode": "online"})),
        )
        .await;
    assert_eq!(reply.ok_json(), json!({"status": "OK"}));
    // (Standard mode lets anonymous callers, hence everyone, read it.)
    let strict = Server::with_auth(AuthMode::Strict).await;
    let strict_agent = agent_token(&strict).await;
    strict
        .call(Method::GET, "/v2/agents/data", Some(&strict_agent), None)
        .await
        .assert_error(StatusCode::FORBIDDEN);
    let one = get(&agent, "/v2/agents/v2-dev/data").await.ok_json();
    for key in [
        "name",
        "mode",
        "mode_changed_at",
        "commanded_mode",
        "commanded_mode_changed_at",
        "commanded_mode_changed_by",
        "state",
        "state_changed_at",
        "job_id",
        "queues",
        "location",
        "provision_type",
        "comment",
        "restricted_to",
        "job",
    ] {
        assert!(one.get(key).is_some(), "{key} missing: {one}");
    }
    assert_eq!(
        (one["state"].clone(), one["queues"].clone()),
        (json!("waiting"), json!(["v2q"]))
    );
    get(&agent, "/v2/agents/ghost/data")
        .await
        .assert_error(StatusCode::NOT_FOUND);

    // Moving to offline unsets the state.
    let reply = post_v2(&agent, "v2-dev", json!({"mode": "offline"})).await;
    assert_eq!(reply.ok_json(), json!({"status": "OK"}));
    let one = get(&agent, "/v2/agents/v2-dev/data").await.ok_json();
    assert_eq!(
        (one["mode"].clone(), one["state"].clone()),
        (json!("offline"), json!(null))
    );

    // The admin's command.
    let patch = |token: &str, name: &str, body: serde_json::Value| {
        let (token, name) = (token.to_owned(), name.to_owned());
        let server = &server;
        async move {
            server
                .call(
                    Method::PATCH,
                    &format!("/v2/agents/{name}/commanded_mode"),
                    Some(&token),
                    Some(&body),
                )
                .await
        }
    };
    for token in [&manager, &agent, &contributor] {
        patch(token, "v2-dev", json!({"commanded_mode": "offline"}))
            .await
            .assert_error(StatusCode::FORBIDDEN);
    }
    patch(&admin, "ghost", json!({"commanded_mode": "offline"}))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    get(&admin, "/v2/agents/ghost/data")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    patch(&admin, "v2-dev", json!({"comment": "x"}))
        .await
        .assert_invalid_fields(&["commanded_mode"]);
    patch(&admin, "v2-dev", json!({"commanded_mode": "sleep"}))
        .await
        .assert_invalid_fields(&["commanded_mode"]);
    let reply = patch(
        &admin,
        "v2-dev",
        json!({"commanded_mode": "maintenance", "comment": "swap"}),
    )
    .await;
    assert_eq!(reply.ok_json(), json!({"status": "OK"}));
    let one = get(&admin, "/v2/agents/v2-dev/data").await.ok_json();
    assert_eq!(one["commanded_mode"], json!("maintenance"));
    assert_eq!(one["commanded_mode_changed_by"], json!("admin"));
    assert_eq!(one["comment"], json!("swap"));
    let at = one["commanded_mode_changed_at"].clone();
    assert!(is_rfc3339_utc(at.as_str().unwrap()));
    patch(&admin, "v2-dev", json!({"commanded_mode": "maintenance"}))
        .await
        .ok_json();
    let one = get(&admin, "/v2/agents/v2-dev/data").await.ok_json();
    assert_eq!(one["commanded_mode_changed_at"], at, "not restamped");
    assert_eq!(one["comment"], json!(""), "no comment clears it");
}

#[tokio::test]
async fn a_commanded_drain_stops_claims_while_others_still_claim() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let agent = agent_token(&server).await;
    serve_queues(&server, &agent, "drained", &["dq"]).await;
    serve_queues(&server, &agent, "busy", &["dq"]).await;
    // `drained` runs a job; the drain lets it finish.
    let first = submit(&server, Some(&admin), json!({"job_queue": "dq"}))
        .await
        .ok_json();
    let first_id = first["job_id"].as_str().unwrap().to_owned();
    let claimed = claim(&server, "dq", Some(&agent), Some("drained"))
        .await
        .ok_json();
    assert_eq!(claimed["job_id"], json!(first_id));
    let reply = server
        .call(
            Method::PATCH,
            "/v2/agents/drained/commanded_mode",
            Some(&admin),
            Some(&json!({"commanded_mode": "maintenance", "comment": "drain"})),
        )
        .await;
    assert_eq!(reply.ok_json(), json!({"status": "OK"}));
    let v2 = server
        .call(Method::GET, "/v2/agents/drained/data", Some(&admin), None)
        .await
        .ok_json();
    assert_eq!(v2["job"]["job_id"], json!(first_id), "{v2}");
    assert_eq!(v2["job_id"], json!(first_id));

    let second = submit(&server, Some(&admin), json!({"job_queue": "dq"}))
        .await
        .ok_json();
    claim(&server, "dq", Some(&agent), Some("drained"))
        .await
        .assert_no_content();
    let taken = claim(&server, "dq", Some(&agent), Some("busy"))
        .await
        .ok_json();
    assert_eq!(taken["job_id"], second["job_id"]);
    // The drained agent's running job finishes normally.
    let reply = server
        .call(
            Method::POST,
            &format!("/v1/result/{first_id}"),
            Some(&agent),
            Some(&json!({"job_state": "complete"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");

    // Back online: it claims again.
    let third = submit(&server, Some(&admin), json!({"job_queue": "dq"}))
        .await
        .ok_json();
    server
        .call(
            Method::PATCH,
            "/v2/agents/drained/commanded_mode",
            Some(&admin),
            Some(&json!({"commanded_mode": "online"})),
        )
        .await
        .ok_json();
    let taken = claim(&server, "dq", Some(&agent), Some("drained"))
        .await
        .ok_json();
    assert_eq!(taken["job_id"], third["job_id"]);
}
