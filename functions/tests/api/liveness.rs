//! Agent liveness (issue 13, SPEC.md §11): an agent not heard from for
//! `TESTFLINGER_AGENT_OFFLINE_SECONDS` is listed silent, with since when,
//! its reported and commanded state untouched; only the agent itself makes
//! itself heard. Time is moved by seeding records in the past, never by
//! sleeping.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use testflinger_shared::agents::validate_agent_update;
use testflinger_shared::role::{AuthMode, Role};
use testflinger_shared::Timestamp;

use crate::common::*;
use crate::support::*;

/// The offline threshold of these tests.
const OFFLINE: u64 = 60;

async fn server(mode: AuthMode) -> Server {
    let adjust = |config: &mut testflinger_shared::config::Config| {
        config.leases.agent_offline_seconds = OFFLINE;
        config.leases.lease_seconds = 60;
        config.auth.mode = mode;
        config.auth.signing_key = Some(SIGNING_KEY.into());
    };
    Server::with_config(adjust).await
}

fn ago(seconds: i64) -> Timestamp {
    Timestamp::now().plus_seconds(-seconds)
}

/// An agent whose own last report was at `at`.
async fn seed(server: &Server, name: &str, at: Timestamp) {
    let body = json!({"state": "waiting", "queues": ["q"], "location": "lab"});
    let mut update = validate_agent_update(body.as_object().unwrap().clone()).unwrap();
    update.heard = true;
    server
        .state
        .app
        .store()
        .upsert_agent(name, &update, at)
        .await
        .unwrap();
}

async fn listed(server: &Server, path: &str, name: &str) -> Value {
    let list = server.get(path).await.ok_json();
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {path}: {list}"))
        .clone()
}

#[tokio::test]
async fn an_agent_not_heard_from_is_listed_silent_and_keeps_its_state() {
    let server = server(AuthMode::Open).await;
    let long_ago = ago(600);
    seed(&server, "dev-1", long_ago).await;
    seed(&server, "dev-2", ago(1)).await;
    let since = json!(long_ago.to_rfc3339());

    for path in ["/v1/agents/data", "/v2/agents/data", "/v1/queues/q/agents"] {
        let silent = listed(&server, path, "dev-1").await;
        assert_eq!(silent["silent_since"], since, "{path}: {silent}");
        assert_eq!(silent["last_heard"], since, "{path}");
        assert_eq!(silent["state"], "waiting", "{path}: state kept");
        let alive = listed(&server, path, "dev-2").await;
        assert!(alive.get("silent_since").is_none(), "{path}: {alive}");
        assert!(alive["last_heard"].is_string(), "{path}");
    }
    let one = server.get("/v1/agents/data/dev-1").await.ok_json();
    assert_eq!(one["silent_since"], since);
    let one = server.get("/v2/agents/dev-1/data").await.ok_json();
    assert_eq!(one["silent_since"], since);
    assert_eq!(one["mode"], "online");

    // Reads by others did not count; the agent's own poll does.
    let polled = claim(&server, "q", None, Some("dev-1")).await;
    assert_eq!(polled.status, StatusCode::NO_CONTENT);
    let alive = listed(&server, "/v1/agents/data", "dev-1").await;
    assert!(alive.get("silent_since").is_none(), "{alive}");
    let heard = Timestamp::parse_rfc3339(alive["last_heard"].as_str().unwrap()).unwrap();
    assert!(heard > long_ago);
    assert_eq!(alive["state"], "waiting");
}

/// `GET /v1/agents/data/dev-1` with dev-1's cookie and `token`.
async fn read_dev_1(server: &Server, token: Option<&str>) {
    let reply = call_as(
        server,
        Method::GET,
        "/v1/agents/data/dev-1",
        token,
        Some("dev-1"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

#[tokio::test]
async fn only_the_agent_itself_makes_itself_heard() {
    let server = server(AuthMode::Standard).await;
    let own = server.client_token("agent-bot", Role::Agent, |_| {}).await;
    let other = server
        .client_token("agent-other", Role::Agent, |_| {})
        .await;
    let admin = admin_token(&server).await;
    let long_ago = ago(600);
    seed(&server, "dev-1", long_ago).await;
    let store = server.state.app.store();
    store
        .bind_agent_name("dev-1", "agent-bot", long_ago)
        .await
        .unwrap();
    let since = json!(long_ago.to_rfc3339());

    // The cookie alone, another agent client's token with the cookie, and
    // an admin's command: none is the agent speaking.
    read_dev_1(&server, None).await;
    read_dev_1(&server, Some(&other)).await;
    let command = call_as(
        &server,
        Method::PATCH,
        "/v2/agents/dev-1/commanded_mode",
        Some(&admin),
        None,
        Some(&json!({"commanded_mode": "offline"})),
    )
    .await;
    assert_eq!(command.status, StatusCode::OK, "{command:?}");
    let agent = server.get("/v1/agents/data/dev-1").await.ok_json();
    assert_eq!(agent["silent_since"], since, "{agent}");

    // The agent, commanded offline, only reads its own data: that is
    // enough to be heard, and its states stay as they were.
    read_dev_1(&server, Some(&own)).await;
    let agent = server.get("/v2/agents/dev-1/data").await.ok_json();
    assert!(agent.get("silent_since").is_none(), "{agent}");
    assert_eq!(agent["commanded_mode"], "offline");
    assert_eq!(agent["state"], "waiting");
}

#[tokio::test]
async fn a_requeued_job_is_not_kept_from_its_agent_for_a_silent_one() {
    let server = server(AuthMode::Open).await;
    seed(&server, "dev-1", ago(1)).await;
    // dev-2 serves the queue but has not been heard from for an hour.
    seed(&server, "dev-2", ago(3600)).await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let claimed = claim(&server, "q", None, Some("dev-1")).await.ok_json();
    assert_eq!(claimed["job_id"], json!(id));

    let app = &server.state.app;
    let report = app
        .sweep_leases(Timestamp::now().plus_seconds(600))
        .await
        .unwrap();
    assert_eq!((report.requeued, report.failed), (1, 0));
    // Passing dev-1 over would leave the job to an agent that is gone.
    let again = claim(&server, "q", None, Some("dev-1")).await.ok_json();
    assert_eq!(again["job_id"], json!(id));
}
