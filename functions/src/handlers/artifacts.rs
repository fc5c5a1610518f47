//! Artifacts and attachments: streamed in from multipart bodies, streamed
//! out (or redirected to the object store under Lambda).

use std::io;

use axum::body::Body;
use axum::extract::multipart::{Field, Multipart, MultipartError, MultipartRejection};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt;
use serde_json::{json, Value};
use testflinger_shared::app::artifacts::Download;
use testflinger_shared::blob::{BlobKey, ByteStream};
use testflinger_shared::Error;

use super::{no_content, ok_text};
use crate::auth::CallerOf;
use crate::error::{ApiError, ApiResult};
use crate::extract::{body_error, refuse_declared_length, JobId, JsonObject};
use crate::AppState;

/// `POST /v1/result/{id}/artifact`: multipart, field `file`.
pub async fn upload_artifact(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    JobId(id): JobId,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    refuse_declared_length(&headers, state.app.settings().limits.blob, MULTIPART_SLACK)?;
    upload(&state, id, Upload::Artifact(caller), multipart).await
}

/// `GET /v1/result/{id}/artifact`
pub async fn download_artifact(
    State(state): State<AppState>,
    JobId(id): JobId,
) -> ApiResult<Response> {
    let key = BlobKey::artifact(id);
    let download = state.app.download(key).await?;
    Ok(download_response(download, &key))
}

/// `POST /v1/job/{id}/attachments`: multipart, field `file`. A retried
/// upload after success answers OK again.
pub async fn upload_attachments(
    State(state): State<AppState>,
    JobId(id): JobId,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    refuse_declared_length(&headers, state.app.settings().limits.blob, MULTIPART_SLACK)?;
    upload(&state, id, Upload::Attachments, multipart).await
}

/// `GET /v1/job/{id}/attachments`: the agent downloads them after its claim.
pub async fn download_attachments(
    State(state): State<AppState>,
    JobId(id): JobId,
) -> ApiResult<Response> {
    let key = BlobKey::attachments(id);
    let download = state.app.download(key).await?;
    Ok(download_response(download, &key))
}

/// `POST /v1/result/{id}/artifact/upload-url` `{"size": bytes}`: a presigned
/// URL to which the agent `PUT`s the artifact straight into the object store.
pub async fn artifact_upload_url(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    JobId(id): JobId,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let size = match body.get("size").and_then(Value::as_u64) {
        Some(size) if size > 0 => size,
        _ => {
            return Err(Error::invalid_field(
                "size",
                "Give the artifact's size in bytes, a positive integer.",
            )
            .into())
        }
    };
    let upload = state.app.artifact_upload_url(&caller, id, size).await?;
    Ok(Json(json!({
        "url": upload.url,
        "method": "PUT",
        "headers": {"Content-Length": upload.size.to_string()},
        "expires_in": upload.expires_in.as_secs(),
    })))
}

/// What a multipart body may carry beyond its file: boundaries, part
/// headers, small fields.
const MULTIPART_SLACK: u64 = 1 << 20;

enum Upload {
    /// An artifact, from this caller.
    Artifact(testflinger_shared::app::Caller),
    Attachments,
}

/// Streams the multipart field `file` (earlier fields are skipped) into
/// the use case: the field is handed over after its headers, unread.
async fn upload(
    state: &AppState,
    id: uuid::Uuid,
    kind: Upload,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::unsupported_media_type(format!(
            "Expected a multipart/form-data body with a \"file\" field: {e}."
        ))
    })?;
    let limit = state.app.settings().limits.blob;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| multipart_error(e, limit))?;
        let Some(field) = field else {
            return Err(
                Error::BadRequest("The multipart body has no \"file\" field.".into()).into(),
            );
        };
        if field.name() != Some("file") {
            continue;
        }
        let body = field_stream(field);
        match &kind {
            Upload::Artifact(caller) => state.app.upload_artifact(caller, id, body).await?,
            Upload::Attachments => {
                state.app.upload_attachments(id, body).await?;
                0
            }
        };
        return Ok(ok_text());
    }
}

fn field_stream(field: Field<'_>) -> ByteStream<'_> {
    Box::pin(field.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return io::Error::new(io::ErrorKind::FileTooLarge, e.body_text());
        }
        match body_error(&e) {
            Error::TimedOut(message) => io::Error::new(io::ErrorKind::TimedOut, message),
            _ => io::Error::new(io::ErrorKind::InvalidData, e.body_text()),
        }
    }))
}

fn multipart_error(error: MultipartError, limit: u64) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::TooLarge {
            what: "the upload",
            limit,
        }
        .into()
    } else if let timed_out @ Error::TimedOut(_) = body_error(&error) {
        timed_out.into()
    } else {
        Error::BadRequest(format!(
            "The multipart body could not be read: {}.",
            error.body_text()
        ))
        .into()
    }
}

/// A stored blob as a download (both kinds are gzipped tarballs), a 307 to
/// the object store, or 204 when there is none.
fn download_response(download: Download, key: &BlobKey) -> Response {
    match download {
        Download::Nothing => no_content(),
        Download::Redirect(url) => {
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url)]).into_response()
        }
        Download::Stream(blob) => {
            let mut response = Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/gzip")
                .header(
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename={}", key.kind.download_name()),
                );
            if let Some(size) = blob.size {
                response = response.header(header::CONTENT_LENGTH, size);
            }
            response
                .body(Body::from_stream(blob.body))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}
