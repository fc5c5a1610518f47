//! Artifacts: streamed in from the agent, streamed out to clients.

use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt;
use serde_json::{json, Value};
use testflinger_shared::blob::{BlobKey, ByteStream};
use testflinger_shared::job::{self, AttachmentsStatus};

use super::{no_content, ok_text};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JobId, JsonObject};
use crate::AppState;

/// `POST /v1/result/{id}/artifact`: multipart, field `file`.
pub async fn upload_artifact(
    State(state): State<AppState>,
    JobId(id): JobId,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    if state.store.get_job(id).await?.is_none() {
        return Err(ApiError::not_found(format!("Job {id} not found.")));
    }
    let size = store_file_field(&state, BlobKey::artifact(id), multipart).await?;
    tracing::info!(job_id = %id, bytes = size, "artifact stored");
    Ok(ok_text())
}

/// `GET /v1/result/{id}/artifact`
pub async fn download_artifact(
    State(state): State<AppState>,
    JobId(id): JobId,
) -> ApiResult<Response> {
    let key = BlobKey::artifact(id);
    if let Some(redirect) = redirect_large_blob(&state, &key).await? {
        return Ok(redirect);
    }
    stream_blob(&state, key).await
}

/// `POST /v1/job/{id}/attachments`: multipart, field `file`. A job that
/// declared attachments becomes claimable once they are stored; a retried
/// upload after success answers OK again.
pub async fn upload_attachments(
    State(state): State<AppState>,
    JobId(id): JobId,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let Some(job) = state.store.get_job(id).await? else {
        return Err(ApiError::not_found(format!("Job {id} not found.")));
    };
    let not_awaiting = || {
        ApiError::invalid_field(
            "json",
            "file",
            &format!("Job {id} is not awaiting attachments."),
        )
    };
    match job.attachments_status {
        Some(AttachmentsStatus::Complete) => return Ok(ok_text()),
        Some(AttachmentsStatus::Waiting) if job.state == job::WAITING => {}
        _ => return Err(not_awaiting()),
    }
    let size = store_file_field(&state, BlobKey::attachments(id), multipart).await?;
    if !state.store.complete_attachments(id).await? {
        return Err(not_awaiting());
    }
    tracing::info!(job_id = %id, bytes = size, "attachments stored");
    Ok(ok_text())
}

/// `GET /v1/job/{id}/attachments`: the agent downloads them after its claim.
pub async fn download_attachments(
    State(state): State<AppState>,
    JobId(id): JobId,
) -> ApiResult<Response> {
    let key = BlobKey::attachments(id);
    if let Some(redirect) = redirect_large_blob(&state, &key).await? {
        return Ok(redirect);
    }
    stream_blob(&state, key).await
}

/// Blobs above this size are redirected when transfers go direct: Lambda
/// answers at most 6 MB, and binary bodies grow by a third in base64.
pub const DIRECT_DOWNLOAD_THRESHOLD: u64 = 4 * 1024 * 1024;

/// How long a presigned URL stays valid.
pub const PRESIGNED_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// `307` to a presigned download URL, when transfers go direct, the blob is
/// large and the store can presign; `None` to stream it (or answer 204).
async fn redirect_large_blob(state: &AppState, key: &BlobKey) -> ApiResult<Option<Response>> {
    if !state.direct_transfers {
        return Ok(None);
    }
    match state.blobs.size(key).await? {
        Some(size) if size > DIRECT_DOWNLOAD_THRESHOLD => {}
        _ => return Ok(None),
    }
    let Some(url) = state
        .blobs
        .presigned_get(key, PRESIGNED_URL_LIFETIME)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(
        (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url)]).into_response(),
    ))
}

/// `POST /v1/result/{id}/artifact/upload-url` `{"size": bytes}`: a presigned
/// URL to which the agent `PUT`s the artifact straight into the object store,
/// for deployments whose gateway caps request bodies (API Gateway: 10 MB).
pub async fn artifact_upload_url(
    State(state): State<AppState>,
    JobId(id): JobId,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let size = match body.get("size").and_then(Value::as_u64) {
        Some(size) if size > 0 => size,
        _ => {
            return Err(ApiError::invalid_field(
                "json",
                "size",
                "Give the artifact's size in bytes, a positive integer.",
            ))
        }
    };
    if size > state.limits.blob {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The artifact is larger than the limit of {} bytes.",
                state.limits.blob
            ),
        ));
    }
    if state.store.get_job(id).await?.is_none() {
        return Err(ApiError::not_found(format!("Job {id} not found.")));
    }
    let key = BlobKey::artifact(id);
    let Some(url) = state
        .blobs
        .presigned_put(&key, PRESIGNED_URL_LIFETIME, size)
        .await?
    else {
        return Err(ApiError::bad_request(format!(
            "This server stores artifacts itself: POST the artifact as multipart field \"file\" to /v1/result/{id}/artifact."
        )));
    };
    Ok(Json(json!({
        "url": url,
        "method": "PUT",
        "headers": {"Content-Length": size.to_string()},
        "expires_in": PRESIGNED_URL_LIFETIME.as_secs(),
    })))
}

/// Streams the multipart field `file` into the blob store under `key`.
pub async fn store_file_field(
    state: &AppState,
    key: BlobKey,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<u64> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expected a multipart/form-data body with a \"file\" field: {e}."),
        )
    })?;
    loop {
        let field = multipart.next_field().await.map_err(multipart_error)?;
        let Some(field) = field else {
            return Err(ApiError::bad_request(
                "The multipart body has no \"file\" field.",
            ));
        };
        if field.name() != Some("file") {
            continue;
        }
        let body: ByteStream<'_> = Box::pin(field.map_err(|e| {
            let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                io::ErrorKind::FileTooLarge
            } else {
                io::ErrorKind::InvalidData
            };
            io::Error::new(kind, e.body_text())
        }));
        return Ok(state.blobs.put(&key, body, state.limits.blob).await?);
    }
}

fn multipart_error(error: MultipartError) -> ApiError {
    ApiError::new(
        error.status(),
        format!(
            "The multipart body could not be read: {}.",
            error.body_text()
        ),
    )
}

/// Answers with a stored blob as a download, or 204 when there is none.
/// Both kinds of blob are gzipped tarballs.
pub async fn stream_blob(state: &AppState, key: BlobKey) -> ApiResult<Response> {
    let Some(blob) = state.blobs.get(&key).await? else {
        return Ok(no_content());
    };
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
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        .map(IntoResponse::into_response)
}
