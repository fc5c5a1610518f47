//! Artifacts (SPEC.md §4.2) and attachments (§4.1): multipart uploads,
//! downloads of the same bytes, the limits, and which jobs take attachments.

use axum::http::{header, StatusCode};
use serde_json::json;

use crate::common::*;

// ---------------------------------------------------------------- artifacts

#[tokio::test]
async fn artifact_upload_then_download_returns_the_same_bytes() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let content = binary(70_000, 7);
    upload_artifact(&server, &id, &content)
        .await
        .assert_ok_text();
    let reply = server.get(&format!("/v1/result/{id}/artifact")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply
            .headers
            .get(header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok()),
        Some("attachment; filename=artifact.tar.gz")
    );
    assert_eq!(reply.body.len(), content.len());
    assert!(reply.body == content, "the bytes come back unchanged");
}

#[tokio::test]
async fn a_second_artifact_upload_replaces_the_first() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    upload_artifact(&server, &id, &binary(5000, 1))
        .await
        .assert_ok_text();
    let second = binary(300, 2);
    upload_artifact(&server, &id, &second)
        .await
        .assert_ok_text();
    let reply = server.get(&format!("/v1/result/{id}/artifact")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(reply.body == second, "the newer upload is served");
}

#[tokio::test]
async fn artifact_download_with_none_stored_is_204() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    server
        .get(&format!("/v1/result/{id}/artifact"))
        .await
        .assert_no_content();
}

#[tokio::test]
async fn artifact_upload_for_unknown_job_is_404() {
    let server = Server::new().await;
    upload_artifact(&server, UNKNOWN_ID, b"data")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .get(&format!("/v1/result/{UNKNOWN_ID}/artifact"))
        .await
        .assert_no_content();
}

#[tokio::test]
async fn artifact_with_a_bad_id_is_400() {
    let server = Server::new().await;
    upload_artifact(&server, "not-a-uuid", b"data")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .get("/v1/result/not-a-uuid/artifact")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn artifact_upload_without_multipart_is_415() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let uri = format!("/v1/result/{id}/artifact");
    server
        .post_raw(&uri, Some("application/octet-stream"), b"raw".to_vec())
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    server
        .post_raw(&uri, None, b"raw".to_vec())
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    server.get(&uri).await.assert_no_content();
}

#[tokio::test]
async fn artifact_multipart_without_a_file_field_is_400() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let body = multipart(
        BOUNDARY,
        &[("other", Some("a.tgz"), b"data"), ("note", None, b"hello")],
    );
    server
        .post_raw(
            &format!("/v1/result/{id}/artifact"),
            Some(&multipart_type()),
            body,
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .get(&format!("/v1/result/{id}/artifact"))
        .await
        .assert_no_content();
}

#[tokio::test]
async fn artifact_truncated_multipart_is_400_and_stores_nothing() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let mut body = multipart(BOUNDARY, &[("file", Some("a.tgz"), &binary(3000, 6))]);
    body.truncate(body.len() - 200);
    server
        .post_raw(
            &format!("/v1/result/{id}/artifact"),
            Some(&multipart_type()),
            body,
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    server
        .get(&format!("/v1/result/{id}/artifact"))
        .await
        .assert_no_content();
}

#[tokio::test]
async fn artifact_file_field_after_other_fields_is_stored() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let content = binary(1234, 9);
    let body = multipart(
        BOUNDARY,
        &[("note", None, b"hello"), ("file", Some("a.tgz"), &content)],
    );
    server
        .post_raw(
            &format!("/v1/result/{id}/artifact"),
            Some(&multipart_type()),
            body,
        )
        .await
        .assert_ok_text();
    let reply = server.get(&format!("/v1/result/{id}/artifact")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body == content);
}

#[tokio::test]
async fn artifact_over_the_blob_limit_is_413_and_keeps_the_previous_one() {
    let server = Server::with_config(|c| c.limits.blob = 1000).await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let uri = format!("/v1/result/{id}/artifact");

    // With none stored before: still none after.
    upload_artifact(&server, &id, &binary(2000, 3))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    server.get(&uri).await.assert_no_content();

    let first = binary(900, 4);
    upload_artifact(&server, &id, &first).await.assert_ok_text();
    upload_artifact(&server, &id, &binary(5000, 5))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    let reply = server.get(&uri).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(reply.body == first, "the previous artifact is intact");
}

// ---------------------------------------------------------------- attachments

#[tokio::test]
async fn attachments_are_only_for_jobs_that_declare_them() {
    let server = Server::new().await;
    let plain = server.submit(json!({"job_queue": "q"})).await;
    let body = multipart(BOUNDARY, &[("file", Some("a.tar.gz"), b"data")]);
    server
        .post_raw(
            &format!("/v1/job/{plain}/attachments"),
            Some(&multipart_type()),
            body.clone(),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    server
        .post_raw(
            &format!("/v1/job/{UNKNOWN_ID}/attachments"),
            Some(&multipart_type()),
            body.clone(),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND);
    server
        .get(&format!("/v1/job/{plain}/attachments"))
        .await
        .assert_no_content();

    // A job waiting for attachments that is cancelled no longer takes them.
    let waiting = server
        .submit(json!({"job_queue": "q", "test_data": {"attachments": [{"agent": "f"}]}}))
        .await;
    server
        .post_json(
            &format!("/v1/job/{waiting}/action"),
            &json!({"action": "cancel"}),
        )
        .await
        .assert_ok_text();
    server
        .post_raw(
            &format!("/v1/job/{waiting}/attachments"),
            Some(&multipart_type()),
            body,
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
}
