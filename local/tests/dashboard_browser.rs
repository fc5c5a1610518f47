//! The dashboard in a real browser (issue 14): the harness binary on a free
//! port, seeded over HTTP with queues, agents, jobs in several states,
//! events, logs and an artifact; Debian's Chromium, driven headless over
//! the DevTools protocol, loads every page at desktop width and at 375 px.
//! Each page must show what matters on it, log no console error (a script
//! error, a refused resource, a CSP violation), not scroll sideways on a
//! phone, and leave a screenshot under `target/screenshots/<backend>/`
//! (`TESTFLINGER_SCREENSHOTS` names another folder).
//!
//! Chromium missing is a failure, not a skip: `apt-get install chromium`
//! (`CHROMIUM` names another binary).

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::Emulation;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use reqwest::StatusCode;
use serde_json::{json, Value};
use testflinger_shared::config::StoreConfig;
use testflinger_shared::testing::TestEnv;

/// What the seed created, for the pages' assertions.
struct Seeded {
    done: String,
    running: String,
    waiting: String,
    cancelled: String,
    beta_waiting: String,
}

/// The webhook path of the finished job: a credential no page may show.
const WEBHOOK_TOKEN: &str = "hooktoken-7f3a";
/// A job name that is markup: it must be shown as text.
const MARKUP_NAME: &str = "<i>not italic</i> & <script>boom()</script>";

async fn ok(response: reqwest::Response) -> reqwest::Response {
    let status = response.status();
    assert!(status.is_success(), "{}: {status}", response.url());
    response
}

async fn seed(base: &str) -> Seeded {
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{base}{path}");
    let post = |path: &str, body: Value| {
        let request = http.post(url(path)).json(&body);
        async move { ok(request.send().await.unwrap()).await }
    };
    post(
        "/v1/agents/queues",
        json!({"alpha": "Alpha lab: x86 laptops", "beta": "Beta boards"}),
    )
    .await;
    let agents = [
        ("agent-1", "waiting", vec!["alpha"], "lab 1, rack A"),
        ("agent-2", "waiting", vec!["alpha"], "lab 1, rack B"),
        ("agent-3", "provision", vec!["beta"], "lab 2"),
        ("agent-4", "offline", vec!["beta"], "lab 2"),
        ("agent-5", "maintenance", vec!["alpha", "beta"], "lab 3"),
    ];
    for (name, state, queues, location) in &agents {
        post(
            &format!("/v1/agents/data/{name}"),
            json!({"state": state, "queues": queues, "location": location,
                   "log": [format!("{name} started"), format!("{name} polling")]}),
        )
        .await;
    }
    let submit = |body: Value| {
        let post = post("/v1/job", body);
        async move {
            post.await.json::<Value>().await.unwrap()["job_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let done = submit(json!({
        "job_queue": "alpha", "name": MARKUP_NAME, "tags": ["smoke", "nightly"],
        "job_status_webhook": format!("https://chat.example/hooks/{WEBHOOK_TOKEN}"),
        "test_data": {"test_cmds": "echo hello"},
    }))
    .await;
    let running = submit(json!({"job_queue": "alpha", "tags": ["nightly"]})).await;
    let cancelled = submit(json!({"job_queue": "alpha"})).await;
    let beta_waiting = submit(json!({"job_queue": "beta"})).await;
    let claim = |agent: &str, queue: &str| {
        let request = http
            .get(url(&format!("/v1/job?queue={queue}")))
            .header("Cookie", format!("agent_name={agent}"));
        async move {
            ok(request.send().await.unwrap())
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(claim("agent-1", "alpha").await["job_id"], json!(done));
    assert_eq!(claim("agent-2", "alpha").await["job_id"], json!(running));
    ok(http
        .post(url(&format!("/v1/job/{cancelled}/action")))
        .json(&json!({"action": "cancel"}))
        .send()
        .await
        .unwrap())
    .await;
    let waiting = submit(json!({"job_queue": "alpha", "tags": ["later"]})).await;

    // The finished job: phases, output, an artifact, then complete.
    for (n, phase, text) in [
        (0, "provision", "provisioning jammy\n"),
        (1, "test", "hello from the test phase\n"),
    ] {
        post(&format!("/v1/result/{done}"), json!({"job_state": phase})).await;
        post(
            &format!("/v1/result/{done}/log/output"),
            json!({"fragment_number": n, "timestamp": "2026-12-01T10:00:00Z", "phase": phase, "log_data": text}),
        )
        .await;
    }
    let artifact = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"\x1f\x8b not really a tarball".to_vec())
            .file_name("artifact.tar.gz"),
    );
    ok(http
        .post(url(&format!("/v1/result/{done}/artifact")))
        .multipart(artifact)
        .send()
        .await
        .unwrap())
    .await;
    post(
        &format!("/v1/result/{done}"),
        json!({"job_state": "complete", "status": {"provision": 0, "test": 0}}),
    )
    .await;
    post(
        "/v1/agents/provision_logs/agent-1",
        json!({"job_id": done, "exit_code": 0, "detail": "provisioned jammy"}),
    )
    .await;
    post(
        "/v1/agents/provision_logs/agent-3",
        json!({"job_id": beta_waiting, "exit_code": 1, "detail": "flash failed"}),
    )
    .await;

    // The running job: in its test phase, output streaming.
    post(
        &format!("/v1/result/{running}"),
        json!({"job_state": "test", "status": {"provision": 0}}),
    )
    .await;
    post(
        &format!("/v1/result/{running}/log/output"),
        json!({"fragment_number": 0, "timestamp": "2026-12-01T10:05:00Z", "phase": "test", "log_data": "step 1 of 3\n"}),
    )
    .await;
    Seeded {
        done,
        running,
        waiting,
        cancelled,
        beta_waiting,
    }
}

/// One page to load and what it must show (as text a reader sees) and must
/// not (anywhere in its HTML).
struct Check {
    name: &'static str,
    path: String,
    shows: Vec<String>,
    hides: Vec<String>,
}

fn checks(s: &Seeded) -> Vec<Check> {
    let check = |name, path: String, shows: &[&str], hides: &[&str]| Check {
        name,
        path,
        shows: shows.iter().map(|t| t.to_string()).collect(),
        hides: hides.iter().map(|t| t.to_string()).collect(),
    };
    vec![
        check(
            "overview",
            "/".into(),
            &[
                "Overview",
                "Queues",
                "alpha",
                "beta",
                "Agents by state",
                "maintenance",
                "Recent jobs",
                &s.done,
                &s.beta_waiting,
            ],
            &[WEBHOOK_TOKEN],
        ),
        check(
            "agents",
            "/agents".into(),
            &[
                "Agents",
                "agent-1",
                "agent-5",
                "lab 1, rack A",
                "5 agents match",
                &s.running,
                "1 pass",
            ],
            &[],
        ),
        check(
            "agents-filtered",
            "/agents?queue=beta&state=provision".into(),
            &["agent-3", "1 agents match", "1 fail"],
            &["agent-1<", "agent-4<"],
        ),
        check(
            "agent",
            "/agents/agent-1".into(),
            &[
                "Agent agent-1",
                "Provision history",
                "provisioned jammy",
                &s.done,
                "Recent log",
                "agent-1 polling",
                "lab 1, rack A",
            ],
            &[],
        ),
        check(
            "jobs",
            "/jobs".into(),
            &[
                "Jobs",
                &s.done,
                &s.running,
                &s.waiting,
                &s.cancelled,
                &s.beta_waiting,
                "anonymous",
            ],
            &[WEBHOOK_TOKEN],
        ),
        check(
            "jobs-search",
            "/jobs?state=cancelled&queue=alpha".into(),
            &[&s.cancelled],
            &[&s.done, &s.running],
        ),
        check(
            "job-complete",
            format!("/jobs/{}", s.done),
            &[
                MARKUP_NAME,
                "complete",
                "provision",
                "passed (0)",
                "job_completed",
                "job_assigned",
                "hello from the test phase",
                "artifact.tar.gz",
                "agent-1",
                "smoke",
                "Job definition",
            ],
            &[WEBHOOK_TOKEN, "<script>boom", "<i>not"],
        ),
        check(
            "job-running",
            format!("/jobs/{}", s.running),
            &[
                "test",
                "in progress",
                "step 1 of 3",
                "agent-2",
                "Live: refreshed every 5 seconds",
            ],
            &[],
        ),
        check(
            "job-waiting",
            format!("/jobs/{}", s.waiting),
            &[
                "waiting",
                "Position",
                "0 (next to run)",
                "Expected start",
                "later",
            ],
            &[],
        ),
        check(
            "queues",
            "/queues".into(),
            &["Queues", "alpha", "beta", "Wait p50"],
            &[],
        ),
        check(
            "queue",
            "/queues/alpha".into(),
            &[
                "Queue alpha",
                "Alpha lab: x86 laptops",
                "waiting",
                "Wait times",
                "p50",
                "agent-1",
                "agent-5",
                &s.done,
                &s.waiting,
            ],
            &[&s.beta_waiting],
        ),
    ]
}

fn screenshot_dir(backend: &str) -> PathBuf {
    let root = std::env::var_os("TESTFLINGER_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../screenshots"));
    let dir = root.join(backend);
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: the dashboard's browser test needs Chromium (apt-get install -y chromium)",
        path.display()
    );
    path
}

/// Console errors, refused resources and uncaught exceptions of a tab.
fn watch_errors(tab: &Tab) -> Arc<Mutex<Vec<String>>> {
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&errors);
    tab.enable_log().unwrap();
    tab.enable_runtime().unwrap();
    tab.add_event_listener(Arc::new(move |event: &Event| {
        let problem = match event {
            Event::LogEntryAdded(e) => {
                let entry = &e.params.entry;
                matches!(
                    entry.level,
                    headless_chrome::protocol::cdp::Log::LogEntryLevel::Error
                )
                .then(|| format!("{:?}: {} ({:?})", entry.source, entry.text, entry.url))
            }
            Event::RuntimeConsoleAPICalled(e) => matches!(
                e.params.Type,
                headless_chrome::protocol::cdp::Runtime::ConsoleAPICalledEventTypeOption::Error
            )
            .then(|| format!("console.error: {:?}", e.params.args)),
            Event::RuntimeExceptionThrown(e) => {
                Some(format!("exception: {:?}", e.params.exception_details))
            }
            _ => None,
        };
        if let Some(problem) = problem {
            sink.lock().unwrap().push(problem);
        }
    }))
    .unwrap();
    errors
}

fn text_of(tab: &Tab, expression: &str) -> String {
    tab.evaluate(expression, false)
        .unwrap()
        .value
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn number_of(tab: &Tab, expression: &str) -> f64 {
    tab.evaluate(expression, false)
        .unwrap()
        .value
        .and_then(|v| v.as_f64())
        .unwrap_or(f64::NAN)
}

/// Loads every page at one width; returns the screenshots written.
fn browse(base: &str, seeded: &Seeded, backend: &str, width: u32, label: &str) -> Vec<PathBuf> {
    let browser = Browser::new(LaunchOptions {
        headless: true,
        // The tests run as root in CI, where Chromium's sandbox cannot start.
        sandbox: false,
        window_size: Some((width, 1100)),
        path: Some(chromium()),
        idle_browser_timeout: Duration::from_secs(120),
        ..LaunchOptions::default()
    })
    .expect("Chromium starts");
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(30));
    if width < 500 {
        // A desktop window is at least 500 px wide: a phone is emulated
        // (its viewport, and the page's `<meta name="viewport">` honoured).
        tab.call_method(Emulation::SetDeviceMetricsOverride {
            width,
            height: 812,
            device_scale_factor: 2.0,
            mobile: true,
            scale: None,
            screen_width: None,
            screen_height: None,
            position_x: None,
            position_y: None,
            dont_set_visible_size: None,
            screen_orientation: None,
            viewport: None,
            display_feature: None,
            device_posture: None,
        })
        .unwrap();
    }
    let errors = watch_errors(&tab);
    let dir = screenshot_dir(backend);
    let mut written = Vec::new();
    for check in checks(seeded) {
        let url = format!("{base}{}", check.path);
        tab.navigate_to(&url)
            .unwrap()
            .wait_until_navigated()
            .unwrap();
        // Let the deferred script run and any late resource fail.
        std::thread::sleep(Duration::from_millis(300));
        let page = format!("{label} {} ({url})", check.name);
        let text = text_of(&tab, "document.body.innerText");
        let html = tab.get_content().unwrap();
        assert!(
            !text_of(&tab, "document.title").is_empty(),
            "{page}: no title"
        );
        assert_eq!(
            number_of(&tab, "document.querySelectorAll('h1').length"),
            1.0,
            "{page}: one h1"
        );
        for shown in &check.shows {
            assert!(
                text.contains(shown.as_str()),
                "{page}: {shown:?} is not shown in:\n{text}"
            );
        }
        for hidden in &check.hides {
            assert!(
                !html.contains(hidden.as_str()),
                "{page}: {hidden:?} is in the HTML"
            );
        }
        // Every form control has a label.
        assert_eq!(
            number_of(
                &tab,
                "[...document.querySelectorAll('input, select')].filter(e => !e.labels || e.labels.length === 0).length"
            ),
            0.0,
            "{page}: a form control without a label"
        );
        // Nothing scrolls sideways: wide tables scroll inside their box.
        let inner = number_of(&tab, "window.innerWidth");
        assert_eq!(
            inner,
            f64::from(width),
            "{page}: the viewport is {inner} px wide"
        );
        let overflow = number_of(&tab, "document.documentElement.scrollWidth");
        assert!(
            overflow <= inner,
            "{page}: {overflow} px wide in a {inner} px window"
        );
        let problems = std::mem::take(&mut *errors.lock().unwrap());
        assert!(problems.is_empty(), "{page}: console errors: {problems:#?}");
        let png = tab
            .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
            .unwrap();
        let file = dir.join(format!("{}-{label}.png", check.name));
        std::fs::write(&file, png).unwrap();
        written.push(file);
    }
    written
}

async fn every_page_renders_in_chromium(backend: &str, env: &[(&str, &str)]) {
    let server = Server::start_with(env);
    let seeded = seed(&server.base).await;
    // The stylesheet and script are served with the types a strict
    // browser requires; pages carry the CSP.
    let http = reqwest::Client::new();
    let page = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let css = http
        .get(server.url("/static/dashboard.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let unknown = http
        .get(server.url("/jobs/6f2c55a8-5f0b-4f7e-9a51-1d2f7d1d3f00"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(unknown.text().await.unwrap().contains("<h1>Not Found</h1>"));

    let base = server.base.clone();
    let backend = backend.to_owned();
    let written = tokio::task::spawn_blocking(move || {
        let mut written = browse(&base, &seeded, &backend, 1280, "desktop");
        written.extend(browse(&base, &seeded, &backend, 375, "phone"));
        written
    })
    .await
    .unwrap();
    assert_eq!(written.len(), 2 * 11);
    println!(
        "dashboard screenshots: {}",
        written[0].parent().unwrap().display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_in_chromium_on_the_embedded_store() {
    every_page_renders_in_chromium("embedded", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_in_chromium_on_mongodb() {
    let Some(env) = TestEnv::mongodb() else {
        return;
    };
    let StoreConfig::MongoDb(mongo) = &env.config.store else {
        unreachable!("TestEnv::mongodb configures MongoDB")
    };
    every_page_renders_in_chromium(
        "mongodb",
        &[
            ("MONGODB_URI", mongo.uri.as_str()),
            ("MONGODB_DATABASE", mongo.database.as_str()),
        ],
    )
    .await;
}
