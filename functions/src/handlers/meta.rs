//! The health check and the answers for unknown routes.

use axum::http::{Method, Uri};
use testflinger_shared::{Error, VERSION};

use crate::error::ApiError;

/// `GET /v1`: agents use it as a health check.
pub async fn version() -> String {
    format!("Testflinger Server v{VERSION}")
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    Error::NotFound(format!("No endpoint answers {method} {}.", uri.path())).into()
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(format!("{} does not answer {method}.", uri.path()))
}

/// `GET /metrics` (see [`crate::metrics`]).
pub async fn metrics(
    state: axum::extract::State<crate::AppState>,
) -> crate::error::ApiResult<axum::response::Response> {
    crate::metrics::get_metrics(state).await
}
