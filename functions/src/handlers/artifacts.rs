//! Artifacts: streamed in from the agent, streamed out to clients.

use std::io;

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use testflinger_shared::blob::{BlobKey, ByteStream};

use super::{no_content, ok_text};
use crate::error::{ApiError, ApiResult};
use crate::extract::JobId;
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
    stream_blob(
        &state,
        BlobKey::artifact(id),
        "application/gzip",
        "artifact.tar.gz",
    )
    .await
}

/// Streams the multipart field `file` into the blob store under `key`.
pub async fn store_file_field(
    state: &AppState,
    key: BlobKey,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<u64> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(format!(
            "Expected a multipart/form-data body with a \"file\" field: {e}."
        ))
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
pub async fn stream_blob(
    state: &AppState,
    key: BlobKey,
    content_type: &'static str,
    filename: &str,
) -> ApiResult<Response> {
    let Some(blob) = state.blobs.get(&key).await? else {
        return Ok(no_content());
    };
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename={filename}"),
        );
    if let Some(size) = blob.size {
        response = response.header(header::CONTENT_LENGTH, size);
    }
    response
        .body(Body::from_stream(blob.body))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        .map(IntoResponse::into_response)
}
