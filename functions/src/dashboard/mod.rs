//! The dashboard (issue 14): read-only HTML pages over the same use cases
//! as the API, rendered on the server with [maud].
//!
//! Why maud: its templates are Rust, checked by the compiler with the rest
//! of the crate (a typo in a field is a build error, not a blank cell in
//! production); every interpolated value is HTML-escaped, attributes
//! included (only `PreEscaped` opts out, and these pages never use it);
//! there are no template files to ship or load at a Lambda cold start; and
//! it adds one small proc-macro crate to the build. askama would also
//! check templates at build time but keeps them in separate files with a
//! second syntax; minijinja finds template errors only at run time.
//!
//! The pages are entries of the route table (`routes::PAGES`), served by
//! the harness like every endpoint and under Lambda all by one function,
//! `dashboard`. Each page needs what the matching API read needs
//! (`auth::AMC`), so a strict server shows nothing to anonymous visitors.
//! Pages carry a strict Content-Security-Policy: no inline script or
//! style; the one stylesheet and the one script are entries of their own.

mod agents;
mod chart;
mod jobs;
mod overview;
mod queues;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use testflinger_shared::Timestamp;

pub use agents::{agent_page, agents_page};
pub use jobs::{job_output, job_page, jobs_page};
pub use overview::overview_page;
pub use queues::{queue_page, queues_page};

/// The Content-Security-Policy of every page: only this server's own
/// stylesheet, script and fetches; no inline code, no frames, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

const STYLESHEET: &str = include_str!("static/dashboard.css");
const SCRIPT: &str = include_str!("static/dashboard.js");

/// Which section of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Overview,
    Agents,
    Jobs,
    Queues,
}

/// A rendered page, answered with the security headers every page carries.
pub struct Page {
    status: StatusCode,
    markup: Markup,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.markup.into_string()).into_response();
        let headers = response.headers_mut();
        let set = |headers: &mut axum::http::HeaderMap, name, value: &'static str| {
            headers.insert(name, HeaderValue::from_static(value));
        };
        set(headers, header::CONTENT_TYPE, "text/html; charset=utf-8");
        set(
            headers,
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        );
        set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        set(headers, header::REFERRER_POLICY, "same-origin");
        set(headers, header::CACHE_CONTROL, "no-store");
        response
    }
}

/// A page that could not be shown: the API's status for the same failure,
/// as an HTML page. Server-side causes are logged, never shown.
pub struct PageError(testflinger_shared::Error);

impl From<testflinger_shared::Error> for PageError {
    fn from(error: testflinger_shared::Error) -> Self {
        PageError(error)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let api = crate::ApiError::from(self.0);
        let status = api.status();
        let message = if status.is_server_error() {
            tracing::error!(
                status = status.as_u16(),
                error = api.message(),
                "page failed"
            );
            "The server could not read what this page shows. Try again shortly.".to_owned()
        } else {
            api.message().to_owned()
        };
        let title = status.canonical_reason().unwrap_or("Error");
        Page {
            status,
            markup: layout(
                title,
                None,
                html! {
                    h1 { (title) }
                    p { (message) }
                    p { a href="/" { "Back to the overview" } }
                },
            ),
        }
        .into_response()
    }
}

pub type PageResult = Result<Page, PageError>;

fn page(title: &str, section: Section, body: Markup) -> PageResult {
    Ok(Page {
        status: StatusCode::OK,
        markup: layout(title, Some(section), body),
    })
}

fn layout(title: &str, section: Option<Section>, body: Markup) -> Markup {
    let link = |href: &str, label: &str, this: Section| {
        html! {
            @if section == Some(this) {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Testflinger" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/static/dashboard.css";
                script src="/static/dashboard.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header {
                    nav aria-label="Main" {
                        span.brand { "Testflinger" }
                        (link("/", "Overview", Section::Overview))
                        (link("/agents", "Agents", Section::Agents))
                        (link("/jobs", "Jobs", Section::Jobs))
                        (link("/queues", "Queues", Section::Queues))
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// `GET /static/dashboard.css`
pub async fn stylesheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLESHEET)
}

/// `GET /static/dashboard.js`
pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A moment as the pages show it: UTC to the second, with how long ago in
/// a tooltip-free form a phone can read.
/// When the agent was last heard from, marked silent past
/// `TESTFLINGER_AGENT_OFFLINE_SECONDS` (its reported state is shown apart).
fn last_seen_cell(
    agent: &testflinger_shared::agents::Agent,
    now: Timestamp,
    offline_before: Timestamp,
) -> Markup {
    html! {
        (when(testflinger_shared::app::dashboard::last_seen(agent), now))
        @if agent.silent_since(offline_before).is_some() {
            " " strong.silent { "silent" }
        }
    }
}

fn when(at: Timestamp, now: Timestamp) -> Markup {
    let text = at.to_rfc3339();
    let shown = text.get(..19).unwrap_or(&text).replace('T', " ");
    html! {
        time datetime=(text) { (shown) " UTC" }
        " " span.muted { "(" (ago(now.seconds_since(at))) ")" }
    }
}

/// `3 min ago`, `in 2 h`, ...
fn ago(seconds: i64) -> String {
    let future = seconds < 0;
    let text = duration(seconds.unsigned_abs() as f64);
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A duration in seconds, rounded to its largest unit or two.
fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn state_badge(state: &str) -> Markup {
    // Only known state names become class names; any other state an agent
    // posts is shown, escaped, with the plain style.
    let class = match state {
        "complete" | "completed" => "state state-complete",
        "cancelled" => "state state-cancelled",
        _ => "state",
    };
    html! { span class=(class) { (state) } }
}

/// A query string value, percent-encoded.
fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The value of a query parameter, trimmed; `None` when absent or empty.
fn param(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let markup = html! { p { ("<script>alert(1)</script>") } a href=("\"><x") { "x" } };
        let text = markup.into_string();
        assert!(!text.contains("<script>"), "{text}");
        assert!(text.contains("&lt;script&gt;"), "{text}");
        assert!(!text.contains("\"><x"), "{text}");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(125.0), "2 min 5 s");
        assert_eq!(duration(7260.0), "2 h 1 min");
        assert_eq!(ago(-90), "in 1 min 30 s");
    }
}
