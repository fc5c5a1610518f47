//! Request metrics, and `GET /metrics`.
//!
//! Each request matched to a route-table entry is counted by name, method
//! and status, and its latency to the answer's head goes into a histogram
//! (`testflinger_shared::metrics`). Under Lambda, where each instance's
//! memory lives only as long as the instance, each request also writes one
//! line in CloudWatch's embedded metric format to standard output, which
//! CloudWatch turns into metrics of the `Testflinger` namespace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use testflinger_shared::metrics::{self, HTTP_DURATION, HTTP_REQUESTS};
use testflinger_shared::Timestamp;

use crate::error::ApiResult;
use crate::AppState;

static EMBEDDED_METRIC_FORMAT: AtomicBool = AtomicBool::new(false);

/// Under Lambda: also log each request in CloudWatch's embedded metric format.
pub fn log_embedded_metrics() {
    EMBEDDED_METRIC_FORMAT.store(true, Ordering::Relaxed);
}

/// Counts one answered request of the route named `route`.
pub fn record_request(route: &'static str, method: &Method, status: StatusCode, latency: Duration) {
    let status = status.as_str();
    metrics::count(
        HTTP_REQUESTS,
        &[
            ("route", route),
            ("method", method.as_str()),
            ("status", status),
        ],
        1,
    );
    metrics::observe(HTTP_DURATION, &[("route", route)], latency.as_secs_f64());
    if EMBEDDED_METRIC_FORMAT.load(Ordering::Relaxed) {
        println!(
            "{}",
            embedded_metric_line(route, status, latency, Timestamp::now())
        );
    }
}

/// One request as CloudWatch's embedded metric format: the `Latency` (ms)
/// and `Requests` metrics by route, with the status as a property.
fn embedded_metric_line(route: &str, status: &str, latency: Duration, now: Timestamp) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now.millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Testflinger",
                "Dimensions": [["route"]],
                "Metrics": [
                    {"Name": "Latency", "Unit": "Milliseconds"},
                    {"Name": "Requests", "Unit": "Count"},
                ],
            }],
        },
        "route": route,
        "status": status,
        "Latency": latency.as_secs_f64() * 1000.0,
        "Requests": 1,
    })
    .to_string()
}

/// `GET /metrics`: Prometheus's text format. 404 on the main port when the
/// harness serves metrics on a port of their own (`TESTFLINGER_METRICS_BIND`).
pub async fn get_metrics(State(state): State<AppState>) -> ApiResult<Response> {
    if !state.serves_metrics {
        return Err(testflinger_shared::Error::NotFound(
            "Metrics are served on the address TESTFLINGER_METRICS_BIND names.".into(),
        )
        .into());
    }
    let gauges = state.app.gauges(Timestamp::now()).await?;
    let text = metrics::registry().render(&gauges);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedded_metric_line_names_its_metrics_and_dimension() {
        let line = embedded_metric_line(
            "job-claim",
            "204",
            Duration::from_micros(1500),
            Timestamp::from_millis(7),
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["_aws"]["Timestamp"], 7);
        assert_eq!(
            value["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "route"
        );
        assert_eq!(value["route"], "job-claim");
        assert_eq!(value["Latency"], 1.5);
        assert_eq!(value["Requests"], 1);
    }
}
