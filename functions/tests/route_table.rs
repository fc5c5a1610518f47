//! The route table is the one source of truth: every declared endpoint has
//! its binary and its SAM function with the same method and path, nothing
//! extra exists, and each single-endpoint router answers exactly its method.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_yaml::Value;
use testflinger_functions::routes::{DASHBOARD_FUNCTION, PAGES, SCHEDULED};
use testflinger_functions::{endpoint_app, AppState, ENDPOINTS};
use testflinger_shared::backends::Backends;
use testflinger_shared::config::Config;
use tower::ServiceExt;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// SAM writes a greedy segment `{name+}` where axum writes `{*name}`.
fn sam_path(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix("{*") {
            Some(rest) => format!("{{{}+}}", rest.trim_end_matches('}')),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn declared() -> BTreeMap<String, (String, String)> {
    let mut table = BTreeMap::new();
    for e in ENDPOINTS {
        let previous = table.insert(e.name.to_owned(), (e.method.to_string(), sam_path(e.path)));
        assert!(previous.is_none(), "endpoint {} is declared twice", e.name);
    }
    let routes: BTreeSet<_> = table.values().collect();
    assert_eq!(
        routes.len(),
        table.len(),
        "two endpoints share a method and path"
    );
    table
}

#[test]
fn every_endpoint_has_its_binary_and_no_binary_is_extra() {
    let bin_dir = crate_dir().join("src/bin");
    let mut binaries = BTreeSet::new();
    for entry in std::fs::read_dir(&bin_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            source.contains(&format!("serve(\"{name}\")"))
                || source.contains(&format!("run_scheduled(\"{name}\")")),
            "{} must serve the endpoint (or run the scheduled task) it is named after",
            path.display()
        );
        binaries.insert(name);
    }
    let mut names: BTreeSet<String> = declared().into_keys().collect();
    assert!(!PAGES.is_empty());
    names.insert(DASHBOARD_FUNCTION.to_owned());
    for task in SCHEDULED {
        assert!(
            names.insert(task.name.to_owned()),
            "{} is declared twice",
            task.name
        );
    }
    assert_eq!(binaries, names);
}

#[test]
fn template_declares_exactly_the_route_table() {
    let text = std::fs::read_to_string(crate_dir().join("../template.yaml")).unwrap();
    let template: Value = serde_yaml::from_str(&text).unwrap();

    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Handler"].as_str(), Some("bootstrap"));
    assert!(globals["Architectures"].is_sequence());
    assert!(globals["Timeout"].is_number() && globals["MemorySize"].is_number());

    let mut functions = BTreeMap::new();
    let mut scheduled = BTreeMap::new();
    let mut dashboard_routes = BTreeSet::new();
    for (logical_id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{logical_id:?} names no binary"))
            .to_owned();
        let events = resource["Properties"]["Events"].as_mapping().unwrap();
        if binary == DASHBOARD_FUNCTION {
            for event in events.values() {
                assert_eq!(event["Type"].as_str(), Some("HttpApi"), "{binary}");
                let method = event["Properties"]["Method"].as_str().unwrap();
                let path = event["Properties"]["Path"].as_str().unwrap();
                assert!(
                    dashboard_routes.insert((method.to_uppercase(), path.to_owned())),
                    "{method} {path} twice on the dashboard function"
                );
            }
            continue;
        }
        assert_eq!(events.len(), 1, "{binary}: one HttpApi event per function");
        let event = events.values().next().unwrap();
        if event["Type"].as_str() == Some("ScheduleV2") {
            let expression = event["Properties"]["ScheduleExpression"]
                .as_str()
                .unwrap_or_else(|| panic!("{binary}: a schedule expression"))
                .to_owned();
            assert!(
                scheduled.insert(binary.clone(), expression).is_none(),
                "{binary} appears twice in template.yaml"
            );
            continue;
        }
        assert_eq!(event["Type"].as_str(), Some("HttpApi"), "{binary}");
        let method = event["Properties"]["Method"]
            .as_str()
            .unwrap()
            .to_uppercase();
        let path = event["Properties"]["Path"].as_str().unwrap().to_owned();
        assert!(
            functions.insert(binary.clone(), (method, path)).is_none(),
            "{binary} appears twice in template.yaml"
        );
    }
    assert_eq!(functions, declared());
    let pages: BTreeSet<(String, String)> = PAGES
        .iter()
        .map(|p| (p.method.to_string(), sam_path(p.path)))
        .collect();
    assert_eq!(
        pages.len(),
        PAGES.len(),
        "two pages share a method and path"
    );
    assert_eq!(
        dashboard_routes, pages,
        "the dashboard function's events and routes::PAGES"
    );
    for page in PAGES {
        assert!(
            !declared().contains_key(page.name),
            "{} is both a page and an endpoint",
            page.name
        );
    }
    let tasks: BTreeMap<String, String> = SCHEDULED
        .iter()
        .map(|t| (t.name.to_owned(), t.schedule.to_owned()))
        .collect();
    assert_eq!(
        scheduled, tasks,
        "scheduled functions and routes::SCHEDULED"
    );
}

#[tokio::test]
async fn each_function_answers_only_its_own_method_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::embedded(dir.path());
    let backends = Backends::open(&config).await.unwrap();
    let state = AppState::new(&config, backends);
    let id = "0b6a5d0e-6f2e-4b0a-9d0e-3c1c4b7d8e9f";
    for endpoint in ENDPOINTS {
        let path = endpoint
            .path
            .replace("{id}", id)
            .replace("{queue}", "q")
            .replace("{client_id}", "ci-bot")
            .replace("{*path}", "lab/wifi");
        let app = endpoint_app(endpoint.name, state.clone()).unwrap();
        let request = |method: Method| {
            Request::builder()
                .method(method)
                .uri(&path)
                .body(Body::empty())
                .unwrap()
        };
        // A handler may answer 404 (an unknown job); the router's fallback
        // says that no endpoint answers.
        let own = app
            .clone()
            .oneshot(request(endpoint.method.clone()))
            .await
            .unwrap();
        let status = own.status();
        let body = axum::body::to_bytes(own.into_body(), 1 << 20)
            .await
            .unwrap();
        let unrouted = String::from_utf8_lossy(&body).contains("No endpoint answers");
        assert!(
            !unrouted && status != StatusCode::METHOD_NOT_ALLOWED,
            "{} does not answer {} {path}: {status}",
            endpoint.name,
            endpoint.method,
        );
        let other = if endpoint.method == Method::GET {
            Method::DELETE
        } else {
            Method::GET
        };
        let wrong = app.clone().oneshot(request(other.clone())).await.unwrap();
        assert_eq!(
            wrong.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {other}",
            endpoint.name
        );
        let elsewhere = app
            .oneshot(Request::get("/v1/nowhere").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            elsewhere.status(),
            StatusCode::NOT_FOUND,
            "{}",
            endpoint.name
        );
    }
    // The dashboard function answers each page, with only its method.
    let dashboard = endpoint_app(DASHBOARD_FUNCTION, state.clone()).unwrap();
    for page in PAGES {
        let path = page
            .path
            .replace("{id}", id)
            .replace("{queue}", "q")
            .replace("{name}", "agent-1");
        let own = dashboard
            .clone()
            .oneshot(Request::get(&path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = own.status();
        let body = axum::body::to_bytes(own.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&body).contains("No endpoint answers")
                && status != StatusCode::METHOD_NOT_ALLOWED,
            "{} does not answer GET {path}: {status}",
            page.name
        );
        let wrong = dashboard
            .clone()
            .oneshot(Request::delete(&path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            wrong.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{}",
            page.name
        );
    }
    let api = dashboard
        .oneshot(Request::get("/v1/job/search").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        api.status(),
        StatusCode::NOT_FOUND,
        "the dashboard serves no API route"
    );
    assert!(endpoint_app("no-such-endpoint", state).is_none());
}

#[tokio::test]
async fn each_scheduled_task_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::embedded(dir.path());
    let backends = Backends::open(&config).await.unwrap();
    let state = AppState::new(&config, backends);
    for task in SCHEDULED {
        let answer = (task.run)(state.app.clone()).await;
        assert!(answer.is_ok(), "{}: {answer:?}", task.name);
    }
}
