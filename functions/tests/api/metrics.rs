//! `GET /metrics` (issue 14): Prometheus's text format with the request
//! counters and histograms, the job and lease counters, and the gauges of
//! unfinished jobs per queue and agents per state read from the store. The
//! registry is the process's, shared by the tests running beside these, so
//! counters are compared before and after, under names of their own.

use axum::http::{Method, StatusCode};
use serde_json::json;
use testflinger_shared::metrics::{registry, HTTP_REQUESTS, JOBS_CLAIMED, JOBS_SUBMITTED, METRICS};

use crate::common::*;
use crate::support::*;

async fn scrape(server: &Server) -> String {
    let reply = server.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(reply
        .content_type()
        .starts_with("text/plain; version=0.0.4"));
    reply.text().to_owned()
}

#[tokio::test]
async fn metrics_count_requests_and_jobs_and_show_queue_depths() {
    let server = Server::new().await;
    let submits = || registry().counter(JOBS_SUBMITTED, &[("queue", "metrics-q")]);
    let claims = || registry().counter(JOBS_CLAIMED, &[("queue", "metrics-q")]);
    let routed = || {
        registry().counter(
            HTTP_REQUESTS,
            &[
                ("route", "job-submit"),
                ("method", "POST"),
                ("status", "200"),
            ],
        )
    };
    let (submits_before, claims_before, routed_before) = (submits(), claims(), routed());

    for _ in 0..3 {
        server.submit(json!({"job_queue": "metrics-q"})).await;
    }
    let claimed = claim(&server, "metrics-q", None, Some("metrics-agent"))
        .await
        .ok_json();
    assert!(claimed["job_id"].is_string());

    assert_eq!(submits() - submits_before, 3);
    assert_eq!(claims() - claims_before, 1);
    assert!(routed() - routed_before >= 3);

    let text = scrape(&server).await;
    assert!(
        text.contains("testflinger_jobs{queue=\"metrics-q\",state=\"waiting\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("testflinger_jobs{queue=\"metrics-q\",state=\"running\"} 1\n"),
        "{text}"
    );
    assert!(text.contains(
        "testflinger_http_request_duration_seconds_bucket{route=\"job-submit\",le=\"+Inf\"}"
    ));
    for (name, kind, _) in METRICS {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
    }
}

#[tokio::test]
async fn agents_are_counted_by_state() {
    let server = Server::new().await;
    for (name, state) in [("m-1", "waiting"), ("m-2", "waiting"), ("m-3", "provision")] {
        let reply = call_as(
            &server,
            Method::POST,
            &format!("/v1/agents/data/{name}"),
            None,
            Some(name),
            Some(&json!({"state": state, "queues": ["m"]})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let text = scrape(&server).await;
    assert!(
        text.contains("testflinger_agents{state=\"waiting\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("testflinger_agents{state=\"provision\"} 1\n"),
        "{text}"
    );
}

#[test]
fn the_readme_lists_every_metric() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for (name, _, _) in METRICS {
        assert!(readme.contains(&format!("`{name}`")), "README lacks {name}");
    }
}
