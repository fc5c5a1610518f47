//! Job statistics (`GET /v1/statistics/jobs`, upstream #1327): jobs counted
//! as they are submitted, grouped by submitter or by queue, over whole UTC
//! days, filtered by queues and submitters; 422 naming each bad parameter;
//! the roles that may read them.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use testflinger_shared::job::{validate_submission, CLIENT_ID};
use testflinger_shared::role::{AuthMode, Role};
use testflinger_shared::statistics::Day;
use testflinger_shared::Timestamp;

use crate::common::*;
use crate::support::*;

async fn stats(server: &Server, token: Option<&str>, query: &str) -> Reply {
    let uri = format!("/v1/statistics/jobs{query}");
    server.call(Method::GET, &uri, token, None).await
}

/// Stores a job created at `at` straight through the store (the API only
/// submits jobs now), as submitted by `client` (`None`: anonymously).
async fn stored_at(server: &Server, queue: &str, client: Option<&str>, at: &str) {
    let created = Timestamp::parse_rfc3339(at).unwrap();
    let mut job = validate_submission(json!({ "job_queue": queue }), created).unwrap();
    if let Some(client) = client {
        job.job_data.insert(CLIENT_ID.into(), json!(client));
    }
    server.state.app.store().insert_job(&job).await.unwrap();
}

fn today() -> String {
    Day::of(Timestamp::now()).to_string()
}

#[tokio::test]
async fn submitted_jobs_are_counted_by_submitter_and_by_queue() {
    let server = standard().await;
    let ci = server.client_token("ci", Role::Contributor, |_| {}).await;
    let before = today();
    let empty = stats(&server, None, "").await.ok_json();
    assert_eq!(
        (&empty["total"], &empty["totals"], &empty["daily"]),
        (&json!(0), &json!([]), &json!([]))
    );
    server.submit_with(json!({"job_queue": "rpi4"}), &ci).await;
    server.submit_with(json!({"job_queue": "rpi4"}), &ci).await;
    server.submit_with(json!({"job_queue": "x86"}), &ci).await;
    server.submit(json!({"job_queue": "rpi4"})).await;
    let now = today();
    if before != now {
        return; // Midnight (UTC) passed during the test: the days differ.
    }

    let by_submitter = stats(&server, Some(&ci), "").await.ok_json();
    let stop = Day::parse(&now).unwrap().plus(1);
    assert_eq!(
        by_submitter,
        json!({
            "group_by": "submitted_by",
            "start": stop.plus(-30).to_string(),
            "stop": stop.to_string(),
            "queues": [],
            "submitters": [],
            "total": 4,
            "totals": [{"key": "ci", "count": 3}, {"key": null, "count": 1}],
            "daily": [
                {"date": now, "key": null, "count": 1},
                {"date": now, "key": "ci", "count": 3},
            ],
        })
    );
    let by_queue = stats(&server, None, "?group_by=queue").await.ok_json();
    assert_eq!(by_queue["group_by"], json!("queue"));
    assert_eq!(by_queue["total"], json!(4));
    assert_eq!(
        by_queue["totals"],
        json!([{"key": "rpi4", "count": 3}, {"key": "x86", "count": 1}])
    );
    assert_eq!(
        by_queue["daily"],
        json!([
            {"date": now, "key": "rpi4", "count": 3},
            {"date": now, "key": "x86", "count": 1},
        ])
    );
}

#[tokio::test]
async fn filters_select_queues_and_submitters() {
    let server = Server::new().await;
    let day = "2026-05-04T10:00:00Z";
    for (queue, client) in [
        ("a", Some("ci")),
        ("a", Some("bot")),
        ("a", None),
        ("b", Some("ci")),
        ("c", Some("ci")),
    ] {
        stored_at(&server, queue, client, day).await;
    }
    let range = "start=2026-05-01&stop=2026-05-08";
    let server = &server;
    let q = |query: &str| {
        let uri = format!("/v1/statistics/jobs?{range}&{query}");
        async move { server.get(&uri).await.ok_json() }
    };
    let totals = |body: &Value| body["totals"].clone();

    let a_and_c = q("group_by=queue&queues=a&queues=c&queues=a").await;
    assert_eq!(a_and_c["queues"], json!(["a", "c"]));
    assert_eq!(
        totals(&a_and_c),
        json!([{"key": "a", "count": 3}, {"key": "c", "count": 1}])
    );
    let ci_on_a_and_c = q("group_by=queue&queues=a&queues=c&submitters=ci").await;
    assert_eq!(
        totals(&ci_on_a_and_c),
        json!([{"key": "a", "count": 1}, {"key": "c", "count": 1}])
    );
    // A submitter filter names clients: anonymous jobs are left out.
    let clients = q("submitters=ci&submitters=bot").await;
    assert_eq!(clients["submitters"], json!(["ci", "bot"]));
    assert_eq!(clients["total"], json!(4));
    assert_eq!(
        totals(&clients),
        json!([{"key": "ci", "count": 3}, {"key": "bot", "count": 1}])
    );
    assert_eq!(q("submitters=nobody").await["total"], json!(0));
    assert_eq!(q("queues=nowhere").await["totals"], json!([]));
}

#[tokio::test]
async fn the_range_is_whole_utc_days_with_an_exclusive_stop() {
    let server = Server::new().await;
    for at in [
        "2026-02-27T23:59:59.999Z",
        "2026-02-28T00:00:00Z",
        "2026-02-28T23:59:59.999Z",
        "2026-03-01T12:00:00+02:00", // 10:00 UTC
        "2026-03-01T23:30:00-01:00", // 00:30 UTC on 2 March
        "2026-03-02T08:00:00Z",
    ] {
        stored_at(&server, "q", None, at).await;
    }
    let server = &server;
    let daily = |query: &str| {
        let uri = format!("/v1/statistics/jobs?group_by=queue&{query}");
        async move {
            let body = server.get(&uri).await.ok_json();
            let days: Vec<(String, u64)> = body["daily"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["date"].as_str().unwrap().to_owned(),
                        d["count"].as_u64().unwrap(),
                    )
                })
                .collect();
            (body["start"].clone(), body["stop"].clone(), days)
        }
    };
    let day = |d: &str, n: u64| (d.to_owned(), n);
    assert_eq!(
        daily("start=2026-02-28&stop=2026-03-02").await,
        (
            json!("2026-02-28"),
            json!("2026-03-02"),
            vec![day("2026-02-28", 2), day("2026-03-01", 1)]
        )
    );
    // Times widen to the days they fall in; a stop at midnight excludes its day.
    assert_eq!(
        daily("start=2026-02-27T18:00:00Z&stop=2026-03-01T00:00:00.001Z").await,
        (
            json!("2026-02-27"),
            json!("2026-03-02"),
            vec![
                day("2026-02-27", 1),
                day("2026-02-28", 2),
                day("2026-03-01", 1)
            ]
        )
    );
    assert_eq!(
        daily("start=2026-03-02T00:00:00%2B01:00&stop=2026-03-03").await,
        (
            json!("2026-03-01"),
            json!("2026-03-03"),
            vec![day("2026-03-01", 1), day("2026-03-02", 2)]
        )
    );
    // Only a stop: the thirty days before it.
    let (start, stop, days) = daily("stop=2026-03-02").await;
    assert_eq!((start, stop), (json!("2026-01-31"), json!("2026-03-02")));
    assert_eq!(days.iter().map(|d| d.1).sum::<u64>(), 4);
}

#[tokio::test]
async fn every_bad_parameter_is_named_under_detail_query() {
    let server = &Server::new().await;
    let refused = |query: &str| {
        let uri = format!("/v1/statistics/jobs?{query}");
        async move {
            let body = server
                .get(&uri)
                .await
                .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
            let mut fields: Vec<String> = body["detail"]["query"]
                .as_object()
                .unwrap_or_else(|| panic!("detail.query in {body}"))
                .keys()
                .cloned()
                .collect();
            fields.sort();
            fields
        }
    };
    assert_eq!(
        refused("group_by=agent&start=yesterday&stop=2026-13-01").await,
        ["group_by", "start", "stop"]
    );
    assert_eq!(
        refused("start=2026-03-02&stop=2026-03-02&queues=&submitters=a%20b").await,
        ["queues", "stop", "submitters"]
    );
    assert_eq!(refused("start=2026-03-02&stop=2026-03-01").await, ["stop"]);
    assert_eq!(refused("start=2024-01-01&stop=2025-01-02").await, ["stop"]);
    assert_eq!(refused("start=2999-01-01").await, ["start"]);
    // Unknown parameters are ignored, as elsewhere.
    server
        .get("/v1/statistics/jobs?colour=blue")
        .await
        .ok_json();
}

#[tokio::test]
async fn admins_managers_and_contributors_read_statistics_agents_do_not() {
    let server = standard().await;
    server.submit(json!({"job_queue": "q"})).await;
    let admin = admin_token(&server).await;
    let manager = manager_token(&server).await;
    let contributor = server.client_token("ci", Role::Contributor, |_| {}).await;
    // Anonymous callers act as contributors in the standard mode.
    for token in [Some(&admin), Some(&manager), Some(&contributor), None] {
        let body = stats(&server, token.map(String::as_str), "?group_by=queue")
            .await
            .ok_json();
        assert_eq!(body["totals"], json!([{"key": "q", "count": 1}]));
    }

    let strict = Server::with_auth(AuthMode::Strict).await;
    stats(&strict, None, "")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    let agent = agent_token(&strict).await;
    stats(&strict, Some(&agent), "")
        .await
        .assert_error(StatusCode::FORBIDDEN);
    for role in [Role::Admin, Role::Manager, Role::Contributor] {
        let token = strict.client_token(role.as_str(), role, |_| {}).await;
        stats(&strict, Some(&token), "").await.ok_json();
    }
}
