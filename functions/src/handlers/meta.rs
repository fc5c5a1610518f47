//! The health check and the answers for unknown routes.

use axum::http::StatusCode;
use axum::http::{Method, Uri};

use crate::error::ApiError;
use testflinger_shared::VERSION;

/// `GET /v1`: agents use it as a health check.
pub async fn version() -> String {
    format!("Testflinger Server v{VERSION}")
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("No endpoint answers {method} {}.", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not answer {method}.", uri.path()),
    )
}
