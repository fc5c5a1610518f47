//! The memory budget for bodies read whole (issue 12, item 2): a body the
//! budget cannot hold is 503 with `Retry-After`, stores nothing, and the
//! budget is whole again once each request has been answered.

use axum::http::{header, Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_body_the_buffer_budget_cannot_hold_is_503_and_stores_nothing() {
    // 64 KiB of budget: a body is charged 4 times its size, so 10 KiB fits
    // and 20 KiB does not.
    let server = Server::with_config(|config| config.serving.buffer_budget = 64 << 10).await;
    let job =
        |size: usize| json!({"job_queue": "budget", "test_data": {"test_cmds": "x".repeat(size)}});

    let refused = server
        .call(Method::POST, "/v1/job", None, Some(&job(20 << 10)))
        .await;
    let body = refused.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("request bodies in memory"),
        "{body}"
    );
    assert!(refused.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(
        server.get("/v1/queues/budget/jobs").await.status,
        StatusCode::NO_CONTENT,
        "nothing was stored"
    );

    // What fits goes through, again and again: each answer gives its share back.
    for _ in 0..5 {
        server.submit(job(10 << 10)).await;
    }
}
