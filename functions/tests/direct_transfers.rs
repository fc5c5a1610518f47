//! Direct transfers for deployments that cannot carry large bodies (Lambda):
//! large artifact downloads answer 307 to a presigned object-store URL, and
//! agents can get a presigned upload URL. Checked against a real
//! S3-compatible server, followed with a plain HTTP client.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use testflinger_functions::{app, App, AppState};
use testflinger_shared::app::Settings;
use testflinger_shared::testing::{open_config, TestEnv};
use tower::ServiceExt;

async fn server(env: &TestEnv, direct: bool) -> App {
    let backends = open_config(&env.config).await;
    let mut settings = Settings::new(&env.config);
    settings.direct_transfers = direct;
    let state = AppState::with_settings(settings, backends);
    app(state)
}

async fn call(
    app: &App,
    method: Method,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, bytes)
}

async fn submit(app: &App) -> String {
    let (status, _, body) = call(
        app,
        Method::POST,
        "/v1/job",
        "application/json",
        br#"{"job_queue": "q"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice::<Value>(&body).unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn upload(app: &App, job: &str, data: &[u8]) {
    let mut body = b"--XBOUNDARYX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.tgz\"\r\n\r\n".to_vec();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--XBOUNDARYX--\r\n");
    let (status, _, _) = call(
        app,
        Method::POST,
        &format!("/v1/result/{job}/artifact"),
        "multipart/form-data; boundary=XBOUNDARYX",
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

#[tokio::test]
async fn a_large_artifact_download_redirects_to_the_object_store() {
    let Some(env) = TestEnv::s3() else { return };
    let app = server(&env, true).await;
    let job = submit(&app).await;
    let data = pattern(5 * 1024 * 1024);
    upload(&app, &job, &data).await;

    let (status, headers, _) = call(
        &app,
        Method::GET,
        &format!("/v1/result/{job}/artifact"),
        "text/plain",
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    let location = headers[header::LOCATION].to_str().unwrap().to_owned();
    let fetched = reqwest::get(&location).await.unwrap();
    assert_eq!(fetched.status(), reqwest::StatusCode::OK);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn a_small_artifact_and_the_harness_stream_through_the_server() {
    let Some(env) = TestEnv::s3() else { return };
    let direct = server(&env, true).await;
    let job = submit(&direct).await;
    upload(&direct, &job, &pattern(1024)).await;
    let (status, _, body) = call(
        &direct,
        Method::GET,
        &format!("/v1/result/{job}/artifact"),
        "text/plain",
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, pattern(1024));

    // The harness (no direct transfers) streams even a large one itself.
    let harness = server(&env, false).await;
    let job = submit(&harness).await;
    let data = pattern(5 * 1024 * 1024);
    upload(&harness, &job, &data).await;
    let (status, _, body) = call(
        &harness,
        Method::GET,
        &format!("/v1/result/{job}/artifact"),
        "text/plain",
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == data);
}

#[tokio::test]
async fn an_agent_puts_its_artifact_to_a_presigned_url() {
    let Some(env) = TestEnv::s3() else { return };
    let app = server(&env, true).await;
    let job = submit(&app).await;
    let data = pattern(300_000);
    let request = json!({"size": data.len()}).to_string().into_bytes();
    let (status, _, body) = call(
        &app,
        Method::POST,
        &format!("/v1/result/{job}/artifact/upload-url"),
        "application/json",
        request,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["method"], json!("PUT"));
    assert_eq!(answer["expires_in"], json!(900));
    let put = reqwest::Client::new()
        .put(answer["url"].as_str().unwrap())
        .header("Content-Length", data.len())
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "PUT answered {}", put.status());

    let (status, _, body) = call(
        &app,
        Method::GET,
        &format!("/v1/result/{job}/artifact"),
        "text/plain",
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, data);
}

#[tokio::test]
async fn upload_urls_check_the_size_and_the_job() {
    let Some(env) = TestEnv::s3() else { return };
    let app = server(&env, true).await;
    let job = submit(&app).await;
    let ask = |job: String, body: Value| {
        let app = app.clone();
        async move {
            call(
                &app,
                Method::POST,
                &format!("/v1/result/{job}/artifact/upload-url"),
                "application/json",
                body.to_string().into_bytes(),
            )
            .await
            .0
        }
    };
    assert_eq!(
        ask(job.clone(), json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        ask(job.clone(), json!({"size": 0})).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        ask(job.clone(), json!({"size": 3u64 << 30})).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let unknown = "0b6a5d0e-6f2e-4b0a-9d0e-3c1c4b7d8e9f".to_owned();
    assert_eq!(
        ask(unknown, json!({"size": 10})).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_server_that_stores_files_itself_hands_out_no_urls() {
    let env = TestEnv::embedded();
    let app = server(&env, true).await;
    let job = submit(&app).await;
    let (status, _, body) = call(
        &app,
        Method::POST,
        &format!("/v1/result/{job}/artifact/upload-url"),
        "application/json",
        br#"{"size": 10}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("POST the artifact"));
    // And a large download streams, since files cannot be presigned.
    let data = pattern(5 * 1024 * 1024);
    upload(&app, &job, &data).await;
    let (status, _, body) = call(
        &app,
        Method::GET,
        &format!("/v1/result/{job}/artifact"),
        "text/plain",
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == data);
}
