//! The Lambda boundary: API Gateway HTTP API (payload format 2.0) events,
//! checked in under `tests/fixtures/apigw-v2-*.json`, are passed through
//! `lambda_http` into the one endpoint's router that its function serves,
//! and the Lambda response that would go back to API Gateway is checked.
//!
//! Each invocation goes through `lambda_http::Adapter`, the service that
//! `lambda_http::run` hands to the Lambda runtime: the event is deserialized
//! from JSON text as the runtime does, converted to an HTTP request (query
//! string, `cookies`, base64 bodies), answered by `endpoint_app(name, ..)`,
//! and the answer converted back (text or base64 body, headers) and
//! serialized to the JSON that API Gateway receives.

use base64::prelude::{Engine as _, BASE64_STANDARD};
use std::path::{Path, PathBuf};

use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent};
use serde_json::{json, Value};
use tempfile::TempDir;
use testflinger_functions::{endpoint_app, AppState, ENDPOINTS};
use testflinger_shared::backends::Backends;
use testflinger_shared::config::Config;
use tower::ServiceExt;
use uuid::Uuid;

/// The job id in fixtures whose path names a job; tests put a real one there.
const PLACEHOLDER_ID: &str = "00000000-0000-0000-0000-000000000000";

// ---------------------------------------------------------------- helpers

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A checked-in event, parsed.
fn fixture(name: &str) -> Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The endpoint API Gateway would route this event to: the one whose method
/// and path make up the event's `routeKey` (as `template.yaml` declares).
fn endpoint_for(event: &Value) -> &'static str {
    let route_key = event["routeKey"].as_str().expect("a routeKey");
    ENDPOINTS
        .iter()
        .find(|e| format!("{} {}", e.method, e.path) == route_key)
        .unwrap_or_else(|| panic!("no endpoint serves the route {route_key:?}"))
        .name
}

/// Replaces every string equal to `from` anywhere in the event, and `from`
/// inside longer strings (paths).
fn replace_strings(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_strings(v, from, to)),
        _ => {}
    }
}

/// Sets the event's body as API Gateway would send these bytes: as text, or
/// base64 with `isBase64Encoded`, with a matching `content-length`.
fn set_body(event: &mut Value, bytes: &[u8], base64: bool) {
    event["body"] = if base64 {
        Value::String(base64_encode(bytes))
    } else {
        Value::String(String::from_utf8(bytes.to_vec()).expect("a text body"))
    };
    event["isBase64Encoded"] = Value::Bool(base64);
    event["headers"]["content-length"] = Value::String(bytes.len().to_string());
}

/// One Lambda function's view of the world: its endpoint's router over a
/// data folder shared by all the functions of one test (as the deployed
/// functions share the database and bucket).
struct Lambda {
    state: AppState,
    _dir: TempDir,
}

/// The response as serialized for API Gateway.
#[derive(Debug)]
struct Reply {
    status: u64,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.json["headers"][name].as_str()
    }

    fn is_base64(&self) -> bool {
        self.json["isBase64Encoded"]
            .as_bool()
            .expect("isBase64Encoded is a boolean")
    }

    /// The body text of a text response (absent or null counts as empty).
    fn text(&self) -> &str {
        assert!(!self.is_base64(), "a text body: {self:?}");
        match &self.json["body"] {
            Value::Null => "",
            Value::String(s) => s,
            other => panic!("the body is not a string: {other}"),
        }
    }

    fn body_json(&self) -> Value {
        serde_json::from_str(self.text()).unwrap_or_else(|e| panic!("a JSON body ({e}): {self:?}"))
    }

    /// The bytes of a binary (base64) response.
    fn bytes(&self) -> Vec<u8> {
        assert!(self.is_base64(), "a base64 body: {self:?}");
        base64_decode(self.json["body"].as_str().expect("a body"))
    }
}

impl Lambda {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let config = Config::embedded(dir.path());
        let backends = Backends::open(&config).await.expect("backends open");
        Lambda {
            state: AppState::new(&config, backends),
            _dir: dir,
        }
    }

    /// Invokes the function the event's route belongs to, as the Lambda
    /// runtime would: JSON text in, `lambda_http::Adapter` around the
    /// endpoint's router, JSON out.
    async fn invoke(&self, event: &Value) -> Reply {
        let name = endpoint_for(event);
        let app = endpoint_app(name, self.state.clone()).expect("a known endpoint");
        // The runtime deserializes the invocation's bytes, not a `Value`.
        let payload: LambdaRequest =
            serde_json::from_str(&event.to_string()).expect("a Lambda HTTP event");
        assert!(
            matches!(payload, LambdaRequest::ApiGatewayV2(_)),
            "read as an HTTP API v2 event: {payload:?}"
        );
        let response = Adapter::from(app)
            .oneshot(LambdaEvent::new(payload, Context::default()))
            .await
            .expect("the router is infallible");
        let json = serde_json::to_value(&response).expect("the response serializes");
        let status = json["statusCode"].as_u64().expect("a statusCode");
        Reply { status, json }
    }

    /// Submits a job through the job-submit fixture; returns its id.
    async fn submit(&self, job: &Value) -> Uuid {
        let mut event = fixture("apigw-v2-job-submit.json");
        set_body(&mut event, job.to_string().as_bytes(), false);
        let reply = self.invoke(&event).await;
        assert_eq!(reply.status, 200, "submit {job}: {reply:?}");
        job_id(&reply)
    }

    /// Claims with the job-claim fixture as the given agent.
    async fn claim_as(&self, agent: &str) -> Reply {
        let mut event = fixture("apigw-v2-job-claim.json");
        event["cookies"] = json!([format!("agent_name={agent}"), "theme=dark"]);
        self.invoke(&event).await
    }
}

fn job_id(reply: &Reply) -> Uuid {
    let body = reply.body_json();
    let id = body["job_id"].as_str().expect("a job_id string");
    Uuid::parse_str(id).unwrap_or_else(|e| panic!("job_id {id:?} is not a UUID: {e}"))
}

// A tiny standard (RFC 4648) base64 codec, independent of lambda_http's.

fn base64_encode(bytes: &[u8]) -> String {
    BASE64_STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Vec<u8> {
    BASE64_STANDARD.decode(text).expect("valid base64")
}

/// A multipart/form-data body with one `file` field holding `bytes`.
fn multipart_file(boundary: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"artifact.tar.gz\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

// ---------------------------------------------------------------- tests

#[test]
fn every_fixture_is_an_http_api_v2_event_for_a_declared_route() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("the fixtures folder")
        .map(|entry| entry.expect("a folder entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.starts_with("apigw-v2-") && name.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "the fixtures: {names:?}");
    for name in &names {
        let event = fixture(name);
        assert_eq!(event["version"], "2.0", "{name}");
        assert_eq!(event["requestContext"]["stage"], "$default", "{name}");
        assert_eq!(
            event["routeKey"], event["requestContext"]["routeKey"],
            "{name}"
        );
        assert_eq!(
            event["rawPath"], event["requestContext"]["http"]["path"],
            "{name}"
        );
        let route_key = event["routeKey"].as_str().unwrap();
        let method = event["requestContext"]["http"]["method"].as_str().unwrap();
        assert!(route_key.starts_with(&format!("{method} ")), "{name}");
        endpoint_for(&event);
        let payload: LambdaRequest = serde_json::from_str(&event.to_string())
            .unwrap_or_else(|e| panic!("{name} is not a Lambda HTTP event: {e}"));
        assert!(
            matches!(payload, LambdaRequest::ApiGatewayV2(_)),
            "{name} reads as {payload:?}"
        );
    }
}

#[tokio::test]
async fn job_submit_event_answers_a_job_id_as_json_text() {
    let lambda = Lambda::new().await;
    let event = fixture("apigw-v2-job-submit.json");
    assert_eq!(endpoint_for(&event), "job-submit");

    let reply = lambda.invoke(&event).await;

    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(!reply.is_base64(), "JSON goes back as text: {reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json["cookies"], json!([]), "{reply:?}");
    let id = job_id(&reply);

    // The whole body reached the handler: the job, with its extra field, is
    // what an agent claims from the queue.
    let claimed = lambda.claim_as("agent-7").await;
    assert_eq!(claimed.status, 200, "{claimed:?}");
    let job = claimed.body_json();
    assert_eq!(job["job_id"], id.to_string());
    assert_eq!(job["job_queue"], "lambda-queue");
    assert_eq!(job["custom_field"], json!({"kept": true}));
}

#[tokio::test]
async fn job_submit_event_with_a_base64_body_is_decoded() {
    let lambda = Lambda::new().await;
    let mut event = fixture("apigw-v2-job-submit.json");
    let body = event["body"].as_str().expect("a text body").to_owned();
    set_body(&mut event, body.as_bytes(), true);
    assert_ne!(event["body"].as_str(), Some(body.as_str()));

    let reply = lambda.invoke(&event).await;

    assert_eq!(reply.status, 200, "{reply:?}");
    let id = job_id(&reply);
    let claimed = lambda.claim_as("agent-7").await;
    assert_eq!(claimed.status, 200, "{claimed:?}");
    let job = claimed.body_json();
    assert_eq!(job["job_id"], id.to_string());
    assert_eq!(job["custom_field"], json!({"kept": true}));
}

#[tokio::test]
async fn job_submit_event_with_malformed_json_is_a_json_400() {
    let lambda = Lambda::new().await;
    let mut event = fixture("apigw-v2-job-submit.json");
    set_body(&mut event, br#"{"job_queue": "lambda-queue", "#, false);

    let reply = lambda.invoke(&event).await;

    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(!reply.is_base64(), "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.body_json();
    let message = body["message"].as_str().expect("a message string");
    assert!(!message.is_empty(), "{body}");
}

#[tokio::test]
async fn job_claim_event_passes_every_queue_and_the_agent_cookie() {
    let lambda = Lambda::new().await;
    // An agent that may run the job serves its queue (else the submit is 422).
    let agent = testflinger_shared::agents::validate_agent_update(
        json!({"queues": ["lambda-queue"]})
            .as_object()
            .unwrap()
            .clone(),
    )
    .unwrap();
    lambda
        .state
        .app
        .store()
        .upsert_agent("agent-1", &agent, testflinger_shared::Timestamp::now())
        .await
        .unwrap();
    let id = lambda
        .submit(&json!({"job_queue": "lambda-queue", "exclude_agents": ["agent-9"]}))
        .await;

    let event = fixture("apigw-v2-job-claim.json");
    assert_eq!(endpoint_for(&event), "job-claim");
    // API Gateway gives the agent's cookies only in `cookies`, and repeated
    // parameters comma-joined in `queryStringParameters`.
    assert!(event["headers"].get("cookie").is_none());
    assert_eq!(event["rawQueryString"], "queue=other&queue=lambda-queue");
    assert_eq!(
        event["queryStringParameters"]["queue"],
        "other,lambda-queue"
    );

    // The excluded agent, named only by the `cookies` field, is refused the
    // job: the cookie reached the handler.
    let refused = lambda.claim_as("agent-9").await;
    assert_eq!(refused.status, 204, "{refused:?}");
    assert_eq!(refused.text(), "", "{refused:?}");

    // The fixture as checked in (agent-7) gets the job from the second of the
    // repeated `queue` parameters.
    let reply = lambda.invoke(&event).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(!reply.is_base64(), "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let job = reply.body_json();
    assert_eq!(job["job_id"], id.to_string(), "{job}");
    assert_eq!(job["job_queue"], "lambda-queue", "{job}");

    // Claimed once only.
    let again = lambda.invoke(&event).await;
    assert_eq!(again.status, 204, "{again:?}");
}

#[tokio::test]
async fn job_claim_event_polls_only_the_queues_in_the_raw_query_string() {
    let lambda = Lambda::new().await;
    lambda.submit(&json!({"job_queue": "lambda-queue"})).await;

    // Only the first queue: nothing there.
    let mut event = fixture("apigw-v2-job-claim.json");
    event["rawQueryString"] = json!("queue=other");
    event["queryStringParameters"] = json!({"queue": "other"});
    let reply = lambda.invoke(&event).await;
    assert_eq!(reply.status, 204, "{reply:?}");

    // No queue at all: the handler's own 400.
    event["rawQueryString"] = json!("");
    event
        .as_object_mut()
        .unwrap()
        .remove("queryStringParameters");
    let reply = lambda.invoke(&event).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.body_json()["message"].is_string(), "{reply:?}");
}

#[tokio::test]
async fn artifact_round_trip_returns_the_exact_bytes_base64_encoded() {
    let lambda = Lambda::new().await;
    let id = lambda.submit(&json!({"job_queue": "lambda-queue"})).await;

    // Every byte value, a few KiB, and a stray CRLF and dashes for multipart.
    let mut artifact: Vec<u8> = (0..=255u8).cycle().take(4 * 1024 + 17).collect();
    artifact.extend_from_slice(b"\r\n--\r\n");
    artifact.extend((0..=255u8).rev());

    // Upload: API Gateway sends a multipart body base64-encoded.
    let mut upload = fixture("apigw-v2-artifact-upload.json");
    assert_eq!(endpoint_for(&upload), "artifact-upload");
    assert!(upload["rawPath"].as_str().unwrap().contains(PLACEHOLDER_ID));
    replace_strings(&mut upload, PLACEHOLDER_ID, &id.to_string());
    let content_type = upload["headers"]["content-type"].as_str().unwrap();
    let boundary = content_type
        .split_once("boundary=")
        .expect("a multipart boundary")
        .1
        .to_owned();
    set_body(&mut upload, &multipart_file(&boundary, &artifact), true);
    let reply = lambda.invoke(&upload).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.text(), "OK");

    // Download: the fixture with the real job id in every place it appears.
    let mut download = fixture("apigw-v2-artifact-download.json");
    assert_eq!(endpoint_for(&download), "artifact-download");
    assert_eq!(download["pathParameters"]["id"], PLACEHOLDER_ID);
    replace_strings(&mut download, PLACEHOLDER_ID, &id.to_string());
    assert_eq!(
        download["rawPath"],
        format!("/v1/result/{id}/artifact").as_str()
    );
    assert_eq!(download["pathParameters"]["id"], id.to_string());
    let reply = lambda.invoke(&download).await;

    assert_eq!(reply.status, 200, "{:?}", reply.json["statusCode"]);
    assert!(reply.is_base64(), "binary goes back as base64");
    assert_eq!(reply.header("content-type"), Some("application/gzip"));
    assert_eq!(
        reply.header("content-disposition"),
        Some("attachment; filename=artifact.tar.gz")
    );
    let bytes = reply.bytes();
    assert_eq!(bytes.len(), artifact.len());
    assert!(bytes == artifact, "the downloaded bytes differ");
    if let Some(length) = reply.header("content-length") {
        assert_eq!(length, artifact.len().to_string());
    }
}

#[tokio::test]
async fn artifact_upload_fixture_as_checked_in_is_stored() {
    let lambda = Lambda::new().await;
    let id = lambda.submit(&json!({"job_queue": "lambda-queue"})).await;
    let mut upload = fixture("apigw-v2-artifact-upload.json");
    replace_strings(&mut upload, PLACEHOLDER_ID, &id.to_string());
    let reply = lambda.invoke(&upload).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // The checked-in body's file field: a small gzip stream.
    let mut download = fixture("apigw-v2-artifact-download.json");
    replace_strings(&mut download, PLACEHOLDER_ID, &id.to_string());
    let reply = lambda.invoke(&download).await;
    assert_eq!(reply.status, 200, "{:?}", reply.json["statusCode"]);
    let bytes = reply.bytes();
    assert_eq!(&bytes[..2], b"\x1f\x8b", "a gzip stream");
}

#[tokio::test]
async fn artifact_download_event_for_a_job_without_one_is_204() {
    let lambda = Lambda::new().await;
    let id = lambda.submit(&json!({"job_queue": "lambda-queue"})).await;
    let mut download = fixture("apigw-v2-artifact-download.json");
    replace_strings(&mut download, PLACEHOLDER_ID, &id.to_string());
    let reply = lambda.invoke(&download).await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(reply.text(), "");
}
