//! The route table: every endpoint declared once, by name, method and path.
//!
//! From this table the harness mounts every endpoint, each binary in
//! `src/bin/<name>.rs` mounts its own, and `template.yaml` declares one
//! function per entry; a test keeps the three in agreement.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tower::Layer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_http::trace::TraceLayer;

use crate::auth::{
    authorize, Access, ADMIN, AGENT, AGENT_ONLY, AGENT_OR_ADMIN, AM, AMC, AMG, ANYONE,
};
use crate::budget;
use crate::dashboard;
use crate::handlers::{
    agents, artifacts, clients, events, jobs, logs, meta, oauth, queues, results, secrets,
    statistics,
};
use crate::openapi::{self, Operation};
use crate::AppState;

/// A task run on a schedule rather than by a request: under Lambda its own
/// function with an EventBridge schedule (`template.yaml`; the route-table
/// test checks both), in the harness a background task.
pub struct Scheduled {
    pub name: &'static str,
    /// The EventBridge schedule expression.
    pub schedule: &'static str,
    /// One run; its answer is logged by the Lambda runtime.
    pub run: fn(
        std::sync::Arc<testflinger_shared::app::App>,
    ) -> futures::future::BoxFuture<'static, Result<serde_json::Value, String>>,
}

/// Every scheduled task.
pub const SCHEDULED: &[Scheduled] = &[Scheduled {
    name: "lease-sweep",
    schedule: "rate(1 minute)",
    run: |app| {
        Box::pin(async move {
            let report = app
                .sweep_leases(testflinger_shared::Timestamp::now())
                .await
                .map_err(|e| e.to_string())?;
            if report.requeued + report.failed > 0 {
                tracing::info!(
                    requeued = report.requeued,
                    ended = report.failed,
                    "expired leases swept"
                );
            }
            Ok(serde_json::json!({"requeued": report.requeued, "ended": report.failed}))
        })
    },
}];

/// One endpoint: its function name, method, path (axum and SAM share the
/// `{param}` syntax), the handler behind it and its documentation.
pub struct Endpoint {
    pub name: &'static str,
    pub method: Method,
    pub path: &'static str,
    /// Who may call it (SPEC.md §3).
    pub access: Access,
    route: fn() -> MethodRouter<AppState>,
    operation: fn() -> Operation,
}

impl Endpoint {
    pub fn method_router(&self) -> MethodRouter<AppState> {
        (self.route)()
    }

    /// Its operation in the OpenAPI document.
    pub fn operation(&self) -> Operation {
        (self.operation)()
    }
}

/// An entry of [`ENDPOINTS`]. The handler `module::function` is documented
/// by `openapi::ops::module::function`, which must exist: an endpoint
/// cannot be declared without its documentation.
macro_rules! endpoint {
    ($name:literal, $method:ident, $path:literal, $module:ident :: $handler:ident, $access:expr) => {
        Endpoint {
            name: $name,
            method: Method::$method,
            path: $path,
            access: $access,
            route: || on(MethodFilter::$method, $module::$handler),
            operation: crate::openapi::ops::$module::$handler,
        }
    };
}

pub static ENDPOINTS: &[Endpoint] = &[
    endpoint!("version", GET, "/v1", meta::version, Access::Public),
    endpoint!("metrics", GET, "/metrics", meta::metrics, Access::Public),
    endpoint!(
        "openapi",
        GET,
        "/v1/openapi.json",
        openapi::serve_document,
        Access::Public
    ),
    endpoint!(
        "openapi-root",
        GET,
        "/openapi.json",
        openapi::serve_document,
        Access::Public
    ),
    endpoint!("job-submit", POST, "/v1/job", jobs::submit_job, AMC),
    endpoint!("job-claim", GET, "/v1/job", jobs::claim_job, AGENT),
    endpoint!("job-get", GET, "/v1/job/{id}", jobs::get_job, AMC),
    endpoint!(
        "job-action",
        POST,
        "/v1/job/{id}/action",
        jobs::act_on_job,
        AMC
    ),
    endpoint!(
        "result-post",
        POST,
        "/v1/result/{id}",
        results::post_result,
        AGENT_OR_ADMIN
    ),
    endpoint!(
        "result-get",
        GET,
        "/v1/result/{id}",
        results::get_result,
        ANYONE
    ),
    endpoint!(
        "job-events-get",
        GET,
        "/v1/events/job/{id}",
        events::get_job_events,
        ANYONE
    ),
    endpoint!(
        "result-status",
        GET,
        "/v1/result/{id}/status",
        results::get_status,
        ANYONE
    ),
    endpoint!(
        "job-position",
        GET,
        "/v1/job/{id}/position",
        jobs::job_position,
        AMC
    ),
    endpoint!("job-search", GET, "/v1/job/search", jobs::search_jobs, AMC),
    endpoint!(
        "attachments-upload",
        POST,
        "/v1/job/{id}/attachments",
        artifacts::upload_attachments,
        AMC
    ),
    endpoint!(
        "attachments-download",
        GET,
        "/v1/job/{id}/attachments",
        artifacts::download_attachments,
        AGENT
    ),
    endpoint!(
        "agent-data-post",
        POST,
        "/v1/agents/data/{name}",
        agents::post_agent_data,
        AMG
    ),
    endpoint!(
        "agent-data-list",
        GET,
        "/v1/agents/data",
        agents::list_agents,
        AMC
    ),
    endpoint!(
        "agent-data-get",
        GET,
        "/v1/agents/data/{name}",
        agents::get_agent,
        ANYONE
    ),
    endpoint!(
        "agents-v2-list",
        GET,
        "/v2/agents/data",
        agents::list_agents_v2,
        AMC
    ),
    endpoint!(
        "agent-v2-get",
        GET,
        "/v2/agents/{name}/data",
        agents::get_agent_v2,
        ANYONE
    ),
    endpoint!(
        "agent-v2-post",
        POST,
        "/v2/agents/{name}/data",
        agents::post_agent_data_v2,
        AGENT_ONLY
    ),
    endpoint!(
        "agent-v2-commanded-mode",
        PATCH,
        "/v2/agents/{name}/commanded_mode",
        agents::command_agent_mode,
        ADMIN
    ),
    endpoint!(
        "agent-v2-owner",
        PUT,
        "/v2/agents/{name}/owner",
        agents::assign_agent_owner,
        ADMIN
    ),
    endpoint!(
        "provision-log-post",
        POST,
        "/v1/agents/provision_logs/{name}",
        agents::post_provision_log,
        AGENT
    ),
    endpoint!(
        "queue-agents",
        GET,
        "/v1/queues/{queue}/agents",
        queues::queue_agents,
        AMC
    ),
    endpoint!(
        "queue-jobs",
        GET,
        "/v1/queues/{queue}/jobs",
        queues::queue_jobs,
        AMC
    ),
    endpoint!(
        "queue-wait-times",
        GET,
        "/v1/queues/wait_times",
        queues::wait_times,
        AMC
    ),
    endpoint!(
        "statistics-jobs",
        GET,
        "/v1/statistics/jobs",
        statistics::job_statistics,
        AMC
    ),
    endpoint!(
        "log-post",
        POST,
        "/v1/result/{id}/log/{log_type}",
        logs::post_log,
        AGENT_OR_ADMIN
    ),
    endpoint!(
        "log-get",
        GET,
        "/v1/result/{id}/log/{log_type}",
        logs::get_log,
        AMC
    ),
    endpoint!(
        "legacy-output-post",
        POST,
        "/v1/result/{id}/output",
        logs::post_legacy_output,
        AGENT_OR_ADMIN
    ),
    endpoint!(
        "legacy-output-get",
        GET,
        "/v1/result/{id}/output",
        logs::get_legacy_output,
        AMC
    ),
    endpoint!(
        "legacy-serial-post",
        POST,
        "/v1/result/{id}/serial_output",
        logs::post_legacy_serial,
        AGENT_OR_ADMIN
    ),
    endpoint!(
        "legacy-serial-get",
        GET,
        "/v1/result/{id}/serial_output",
        logs::get_legacy_serial,
        AMC
    ),
    endpoint!(
        "artifact-upload",
        POST,
        "/v1/result/{id}/artifact",
        artifacts::upload_artifact,
        AGENT_OR_ADMIN
    ),
    endpoint!(
        "artifact-download",
        GET,
        "/v1/result/{id}/artifact",
        artifacts::download_artifact,
        AMC
    ),
    endpoint!(
        "artifact-upload-url",
        POST,
        "/v1/result/{id}/artifact/upload-url",
        artifacts::artifact_upload_url,
        AGENT_OR_ADMIN
    ),
    endpoint!(
        "agent-queues-post",
        POST,
        "/v1/agents/queues",
        agents::advertise_queues,
        AMG
    ),
    endpoint!(
        "agent-queues-get",
        GET,
        "/v1/agents/queues",
        agents::list_queues,
        AMC
    ),
    endpoint!(
        "agent-images-post",
        POST,
        "/v1/agents/images",
        agents::advertise_images,
        AMG
    ),
    endpoint!(
        "agent-images-get",
        GET,
        "/v1/agents/images/{queue}",
        agents::get_images,
        AMC
    ),
    endpoint!(
        "job-events",
        POST,
        "/v1/job/{id}/events",
        events::relay_events,
        AGENT_OR_ADMIN
    ),
    endpoint!(
        "oauth-token",
        POST,
        "/v1/oauth2/token",
        oauth::issue_token,
        Access::Public
    ),
    endpoint!(
        "oauth-refresh",
        POST,
        "/v1/oauth2/refresh",
        oauth::refresh_token,
        Access::Public
    ),
    endpoint!(
        "oauth-revoke",
        POST,
        "/v1/oauth2/revoke",
        oauth::revoke_token,
        ADMIN
    ),
    endpoint!(
        "client-permissions-list",
        GET,
        "/v1/client-permissions",
        clients::list_clients,
        AM
    ),
    endpoint!(
        "client-permissions-get",
        GET,
        "/v1/client-permissions/{client_id}",
        clients::get_client,
        AM
    ),
    endpoint!(
        "client-permissions-put",
        PUT,
        "/v1/client-permissions/{client_id}",
        clients::put_client,
        AM
    ),
    endpoint!(
        "client-permissions-delete",
        DELETE,
        "/v1/client-permissions/{client_id}",
        clients::delete_client,
        ADMIN
    ),
    endpoint!(
        "restricted-queues-list",
        GET,
        "/v1/restricted-queues",
        clients::list_restricted_queues,
        AMC
    ),
    endpoint!(
        "restricted-queues-get",
        GET,
        "/v1/restricted-queues/{queue}",
        clients::get_restricted_queue,
        AMC
    ),
    endpoint!(
        "restricted-queues-post",
        POST,
        "/v1/restricted-queues/{queue}",
        clients::restrict_queue,
        AM
    ),
    endpoint!(
        "restricted-queues-delete",
        DELETE,
        "/v1/restricted-queues/{queue}",
        clients::unrestrict_queue,
        AM
    ),
    endpoint!(
        "secret-put",
        PUT,
        "/v1/secrets/{client_id}/{*path}",
        secrets::put_secret,
        AMC
    ),
    endpoint!(
        "secret-delete",
        DELETE,
        "/v1/secrets/{client_id}/{*path}",
        secrets::delete_secret,
        AMC
    ),
];

/// The Lambda function that serves every entry of [`PAGES`].
pub const DASHBOARD_FUNCTION: &str = "dashboard";

/// The dashboard's pages and their two assets (issue 14): entries like
/// every endpoint, mounted by the harness beside them, but under Lambda all
/// served by one function, [`DASHBOARD_FUNCTION`] (one binary for ten
/// routes that share their code; `template.yaml` gives it one HttpApi
/// event per entry, and the route-table test checks both). Each page asks
/// what the API read it shows asks ([`AMC`]): anonymous visitors see them
/// unless the server is strict.
pub static PAGES: &[Endpoint] = &[
    endpoint!("page-overview", GET, "/", dashboard::overview_page, AMC),
    endpoint!("page-agents", GET, "/agents", dashboard::agents_page, AMC),
    endpoint!(
        "page-agent",
        GET,
        "/agents/{name}",
        dashboard::agent_page,
        AMC
    ),
    endpoint!("page-jobs", GET, "/jobs", dashboard::jobs_page, AMC),
    endpoint!("page-job", GET, "/jobs/{id}", dashboard::job_page, AMC),
    endpoint!(
        "page-job-output",
        GET,
        "/jobs/{id}/output",
        dashboard::job_output,
        AMC
    ),
    endpoint!("page-queues", GET, "/queues", dashboard::queues_page, AMC),
    endpoint!(
        "page-queue",
        GET,
        "/queues/{queue}",
        dashboard::queue_page,
        AMC
    ),
    endpoint!(
        "page-stylesheet",
        GET,
        "/static/dashboard.css",
        dashboard::stylesheet,
        Access::Public
    ),
    endpoint!(
        "page-script",
        GET,
        "/static/dashboard.js",
        dashboard::script,
        Access::Public
    ),
];

/// A router with a trailing slash made optional on every path (SPEC.md §2).
pub type App = NormalizePath<Router>;

/// Every endpoint on one router: the local harness and the contract tests.
pub fn app(state: AppState) -> App {
    let router = ENDPOINTS
        .iter()
        .chain(PAGES)
        .fold(Router::new(), |router, e| mount(router, e, &state));
    finish(router, state)
}

/// One endpoint's router, as its Lambda function serves it (for
/// [`DASHBOARD_FUNCTION`], every page); `None` for an unknown name.
pub fn endpoint_app(name: &str, state: AppState) -> Option<App> {
    if name == DASHBOARD_FUNCTION {
        let router = PAGES
            .iter()
            .fold(Router::new(), |router, e| mount(router, e, &state));
        return Some(finish(router, state));
    }
    let endpoint = ENDPOINTS.iter().find(|e| e.name == name)?;
    Some(finish(mount(Router::new(), endpoint, &state), state))
}

/// Mounts an endpoint behind the check of who may call it, naming the
/// request's span after the endpoint.
fn mount(router: Router<AppState>, endpoint: &Endpoint, state: &AppState) -> Router<AppState> {
    let guard = middleware::from_fn_with_state((state.clone(), endpoint.access), authorize);
    let name = endpoint.name;
    let named = middleware::from_fn(move |request: Request, next: Next| async move {
        tracing::Span::current().record("route", name);
        let method = request.method().clone();
        let started = std::time::Instant::now();
        let response = next.run(request).await;
        crate::metrics::record_request(name, &method, response.status(), started.elapsed());
        response
    });
    router.route(
        endpoint.path,
        endpoint
            .method_router()
            .route_layer(guard)
            .route_layer(named),
    )
}

fn finish(router: Router<AppState>, state: AppState) -> App {
    let router = router
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        // Each body is limited by its own extractor (JSON bodies by the JSON
        // limit while reading, uploads by the blob limit while streaming).
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            budget::within_budget,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        .with_state(state);
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// The span every request runs in: method, path, the endpoint's name from
/// the route table (recorded once routing has matched), and a request id:
/// the Lambda request id under Lambda, else the caller's `x-request-id`,
/// else one of this process's own. Whatever is logged while the request is
/// served (a backend's failure included) carries these fields.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    use lambda_http::RequestExt;
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let request_id = match request.lambda_context_ref() {
        Some(context) => context.request_id.clone(),
        None => request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            // Only a plain token: a caller's text must not forge log fields.
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            })
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{:x}", NEXT_ID.fetch_add(1, Ordering::Relaxed))),
    };
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        route = tracing::field::Empty,
        request_id = %request_id,
    )
}

/// One log line per request, inside its span: status and latency.
fn log_response<B>(response: &Response<B>, latency: Duration, _span: &tracing::Span) {
    tracing::info!(
        target: "testflinger::request",
        status = response.status().as_u16(),
        latency_ms = format_args!("{:.3}", latency.as_secs_f64() * 1000.0),
        "answered",
    );
}
