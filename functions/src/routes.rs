//! The route table: every endpoint declared once, by name, method and path.
//!
//! From this table the harness mounts every endpoint, each binary in
//! `src/bin/<name>.rs` mounts its own, and `template.yaml` declares one
//! function per entry; a test keeps the three in agreement.

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tower::Layer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

use crate::handlers::{agents, artifacts, jobs, logs, meta, queues, results};
use crate::AppState;

/// One endpoint: its function name, method, path (axum and SAM share the
/// `{param}` syntax) and the handler behind it.
pub struct Endpoint {
    pub name: &'static str,
    pub method: Method,
    pub path: &'static str,
    route: fn() -> MethodRouter<AppState>,
}

impl Endpoint {
    pub fn method_router(&self) -> MethodRouter<AppState> {
        (self.route)()
    }
}

macro_rules! endpoint {
    ($name:literal, $method:ident, $path:literal, $handler:path) => {
        Endpoint {
            name: $name,
            method: Method::$method,
            path: $path,
            route: || on(MethodFilter::$method, $handler),
        }
    };
}

pub static ENDPOINTS: &[Endpoint] = &[
    endpoint!("version", GET, "/v1", meta::version),
    endpoint!("job-submit", POST, "/v1/job", jobs::submit_job),
    endpoint!("job-claim", GET, "/v1/job", jobs::claim_job),
    endpoint!("job-get", GET, "/v1/job/{id}", jobs::get_job),
    endpoint!("job-action", POST, "/v1/job/{id}/action", jobs::act_on_job),
    endpoint!("result-post", POST, "/v1/result/{id}", results::post_result),
    endpoint!("result-get", GET, "/v1/result/{id}", results::get_result),
    endpoint!(
        "job-position",
        GET,
        "/v1/job/{id}/position",
        jobs::job_position
    ),
    endpoint!("job-search", GET, "/v1/job/search", jobs::search_jobs),
    endpoint!(
        "attachments-upload",
        POST,
        "/v1/job/{id}/attachments",
        artifacts::upload_attachments
    ),
    endpoint!(
        "attachments-download",
        GET,
        "/v1/job/{id}/attachments",
        artifacts::download_attachments
    ),
    endpoint!(
        "agent-data-post",
        POST,
        "/v1/agents/data/{name}",
        agents::post_agent_data
    ),
    endpoint!(
        "agent-data-list",
        GET,
        "/v1/agents/data",
        agents::list_agents
    ),
    endpoint!(
        "agent-data-get",
        GET,
        "/v1/agents/data/{name}",
        agents::get_agent
    ),
    endpoint!(
        "provision-log-post",
        POST,
        "/v1/agents/provision_logs/{name}",
        agents::post_provision_log
    ),
    endpoint!(
        "queue-agents",
        GET,
        "/v1/queues/{queue}/agents",
        queues::queue_agents
    ),
    endpoint!(
        "queue-jobs",
        GET,
        "/v1/queues/{queue}/jobs",
        queues::queue_jobs
    ),
    endpoint!(
        "queue-wait-times",
        GET,
        "/v1/queues/wait_times",
        queues::wait_times
    ),
    endpoint!(
        "log-post",
        POST,
        "/v1/result/{id}/log/{log_type}",
        logs::post_log
    ),
    endpoint!(
        "log-get",
        GET,
        "/v1/result/{id}/log/{log_type}",
        logs::get_log
    ),
    endpoint!(
        "legacy-output-post",
        POST,
        "/v1/result/{id}/output",
        logs::post_legacy_output
    ),
    endpoint!(
        "legacy-output-get",
        GET,
        "/v1/result/{id}/output",
        logs::get_legacy_output
    ),
    endpoint!(
        "legacy-serial-post",
        POST,
        "/v1/result/{id}/serial_output",
        logs::post_legacy_serial
    ),
    endpoint!(
        "legacy-serial-get",
        GET,
        "/v1/result/{id}/serial_output",
        logs::get_legacy_serial
    ),
    endpoint!(
        "artifact-upload",
        POST,
        "/v1/result/{id}/artifact",
        artifacts::upload_artifact
    ),
    endpoint!(
        "artifact-download",
        GET,
        "/v1/result/{id}/artifact",
        artifacts::download_artifact
    ),
    endpoint!(
        "artifact-upload-url",
        POST,
        "/v1/result/{id}/artifact/upload-url",
        artifacts::artifact_upload_url
    ),
    endpoint!(
        "agent-queues-post",
        POST,
        "/v1/agents/queues",
        agents::advertise_queues
    ),
    endpoint!(
        "agent-queues-get",
        GET,
        "/v1/agents/queues",
        agents::list_queues
    ),
    endpoint!(
        "agent-images-post",
        POST,
        "/v1/agents/images",
        agents::advertise_images
    ),
    endpoint!(
        "agent-images-get",
        GET,
        "/v1/agents/images/{queue}",
        agents::get_images
    ),
];

/// A router with a trailing slash made optional on every path (SPEC.md §2).
pub type App = NormalizePath<Router>;

/// Every endpoint on one router: the local harness and the contract tests.
pub fn app(state: AppState) -> App {
    finish(ENDPOINTS.iter().fold(Router::new(), mount), state)
}

/// One endpoint's router, as its Lambda function serves it; `None` for an
/// unknown name.
pub fn endpoint_app(name: &str, state: AppState) -> Option<App> {
    let endpoint = ENDPOINTS.iter().find(|e| e.name == name)?;
    Some(finish(mount(Router::new(), endpoint), state))
}

fn mount(router: Router<AppState>, endpoint: &Endpoint) -> Router<AppState> {
    router.route(endpoint.path, endpoint.method_router())
}

fn finish(router: Router<AppState>, state: AppState) -> App {
    let router = router
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        // Each body is limited by its own extractor (JSON bodies by the JSON
        // limit while reading, uploads by the blob limit while streaming).
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(log_request))
        .with_state(state);
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// One log line per request: method, path, status, latency.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "testflinger::request",
        %method,
        %path,
        status = response.status().as_u16(),
        latency_ms = format_args!("{latency_ms:.3}"),
    );
    response
}
