//! The OpenAPI document lists exactly the route table, is well formed
//! OpenAPI 3.1 (every `$ref` resolves, every operation has answers, every
//! path parameter is declared), and is what both of its routes serve.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use testflinger_functions::auth::Access;
use testflinger_functions::{app, openapi, AppState, ENDPOINTS};
use testflinger_shared::backends::Backends;
use testflinger_shared::config::Config;
use tower::ServiceExt;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every (method, path) the document describes.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().expect("a path item") {
            assert!(METHODS.contains(&key.as_str()), "{path}: unknown key {key}");
            out.insert((key.to_uppercase(), path.clone()));
        }
    }
    out
}

/// Every problem of structure found in the document: refs that resolve to
/// nothing, operations without answers, undeclared or missing path
/// parameters, duplicate operation ids.
fn problems(document: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if document["openapi"] != "3.1.0" {
        problems.push(format!("openapi is {}", document["openapi"]));
    }
    if !document["info"]["title"].is_string() || !document["info"]["version"].is_string() {
        problems.push("info needs a title and a version".into());
    }
    check_refs(document, document, "#", &mut problems);
    let all_ids: BTreeSet<&str> = document["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, item)| item.as_object().into_iter().flatten())
        .filter_map(|(_, operation)| operation["operationId"].as_str())
        .collect();
    let mut ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        for (method, operation) in item.as_object().into_iter().flatten() {
            let at = format!("{method} {path}");
            match operation["responses"].as_object() {
                Some(responses) if !responses.is_empty() => {
                    for (status, response) in responses {
                        let valid = status.len() == 3
                            && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s));
                        if !valid {
                            problems.push(format!("{at}: status {status}"));
                        }
                        if !response["description"].is_string() {
                            problems.push(format!("{at} {status}: no description"));
                        }
                        for (name, link) in response["links"].as_object().into_iter().flatten() {
                            let target = link["operationId"].as_str().unwrap_or_default();
                            if !all_ids.contains(target) {
                                problems
                                    .push(format!("{at} {status}: link {name} to no operation"));
                            }
                        }
                    }
                }
                _ => problems.push(format!("{at}: no responses")),
            }
            match operation["operationId"].as_str() {
                Some(id) if ids.insert(id.to_owned()) => {}
                other => problems.push(format!("{at}: operationId {other:?} missing or repeated")),
            }
            let declared: BTreeSet<String> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    if p["required"] != true {
                        problems.push(format!("{at}: path parameter {} not required", p["name"]));
                    }
                    p["name"].as_str().unwrap_or_default().to_owned()
                })
                .collect();
            if declared != in_path {
                problems.push(format!(
                    "{at}: path parameters {declared:?}, path has {in_path:?}"
                ));
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let place = parameter["in"].as_str().unwrap_or_default();
                if !["path", "query", "header", "cookie"].contains(&place)
                    || !parameter["name"].is_string()
                    || !parameter["schema"].is_object()
                {
                    problems.push(format!("{at}: parameter {parameter}"));
                }
            }
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for scheme in requirement
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    if !document["components"]["securitySchemes"][scheme].is_object() {
                        problems.push(format!("{at}: security scheme {scheme} undeclared"));
                    }
                }
            }
        }
    }
    problems
}

fn check_refs(root: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(target) = map.get("$ref") {
                let resolved = target
                    .as_str()
                    .and_then(|r| r.strip_prefix('#'))
                    .and_then(|pointer| root.pointer(pointer));
                if resolved.is_none() {
                    problems.push(format!("{at}: $ref {target} resolves to nothing"));
                }
            }
            for (key, child) in map {
                check_refs(root, child, &format!("{at}/{key}"), problems);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                check_refs(root, child, &format!("{at}/{i}"), problems);
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_lists_every_route_table_entry_and_nothing_else() {
    let document = openapi::build();
    let table: BTreeSet<(String, String)> = ENDPOINTS
        .iter()
        .map(|e| (e.method.to_string(), e.path.replace("{*", "{")))
        .collect();
    assert_eq!(table.len(), ENDPOINTS.len());
    assert_eq!(documented(&document), table);
    // And each operation is the entry's, by name.
    for endpoint in ENDPOINTS {
        let path = endpoint.path.replace("{*", "{");
        let operation = &document["paths"][&path][endpoint.method.as_str().to_lowercase()];
        assert_eq!(operation["operationId"], endpoint.name, "{path}");
    }
}

#[test]
fn the_document_is_well_formed_openapi_3_1() {
    let document: Value = serde_json::from_slice(openapi::document()).expect("JSON");
    assert_eq!(document, openapi::build());
    let problems = problems(&document);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_structure_check_finds_what_is_wrong() {
    let mut document = openapi::build();
    document["paths"]["/v1/job/{id}"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"] = json!({"$ref": "#/components/schemas/NoSuchSchema"});
    document["paths"]["/v1"]["get"]["responses"] = json!({});
    document["paths"]["/v1/job"]["post"]["responses"]["200"]["links"]["job-get"]["operationId"] =
        json!("no-such-operation");
    document["paths"]["/v1/job"]["post"]["parameters"] =
        json!([{"name": "id", "in": "path", "required": true, "schema": {}}]);
    let problems = problems(&document);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0].contains("NoSuchSchema"), "{problems:#?}");
}

#[test]
fn every_error_answer_has_the_error_body_and_every_guarded_endpoint_its_401_and_403() {
    let document = openapi::build();
    for endpoint in ENDPOINTS {
        let path = endpoint.path.replace("{*", "{");
        let operation = &document["paths"][&path][endpoint.method.as_str().to_lowercase()];
        let responses = operation["responses"].as_object().unwrap();
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{} {status}",
                    endpoint.name
                );
            }
        }
        let guarded = endpoint.access != Access::Public;
        if guarded {
            assert!(responses.contains_key("401"), "{}", endpoint.name);
            assert!(responses.contains_key("403"), "{}", endpoint.name);
        }
        let security = &operation["security"];
        if endpoint.name == "oauth-token" {
            assert_eq!(security, &json!([{"basic": []}]));
        } else if guarded {
            let schemes = security.as_array().unwrap();
            assert!(
                schemes.contains(&json!({"bearer": []})),
                "{}",
                endpoint.name
            );
        } else {
            assert_eq!(security, &json!([]), "{}", endpoint.name);
        }
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{}: no success answer",
            endpoint.name
        );
    }
}

#[tokio::test]
async fn both_routes_serve_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::embedded(dir.path());
    let backends = Backends::open(&config).await.unwrap();
    let app = app(AppState::new(&config, backends));
    for path in ["/v1/openapi.json", "/openapi.json", "/v1/openapi.json/"] {
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        let served: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served, openapi::build(), "{path}");
    }
}
