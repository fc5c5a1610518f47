//! The one place where errors become HTTP answers: always a JSON body
//! `{"message", "detail"}` (SPEC.md §2).
//!
//! Every failure is a [`testflinger_shared::Error`] and one `match` gives
//! its status. Only what exists below the domain (a method the route does
//! not answer, a body that is not the media type a route reads) has its
//! own constructor here. The error is logged here, once, inside the
//! request's span: server-side failures at `error` with their cause, the
//! client's mistakes at `debug`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use testflinger_shared::error::Location;
use testflinger_shared::validation::FieldErrors;
use testflinger_shared::Error;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    detail: Value,
    /// Seconds for `Retry-After` (503 and 429).
    retry_after: Option<u64>,
}

fn field_detail(location: Location, fields: &FieldErrors) -> Value {
    let fields: Map<String, Value> = fields
        .iter()
        .map(|(field, problems)| (field.to_owned(), json!(problems)))
        .collect();
    json!({ location.as_str(): fields })
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            detail: Value::Object(Map::new()),
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE).then_some(5),
        }
    }

    /// 405: the route exists but does not answer this method (or a `HEAD`
    /// on a read that changes state).
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, message)
    }

    /// 415: the body is not of a media type this route reads.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest(_) | Error::Malformed { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Gone(_) => StatusCode::GONE,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            Error::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Upstream {
                timed_out: true, ..
            } => StatusCode::GATEWAY_TIMEOUT,
            Error::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Error::Backend { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match error {
            Error::Validation {
                location,
                message,
                fields,
            }
            | Error::Malformed {
                location,
                message,
                fields,
            } => {
                tracing::debug!(status = status.as_u16(), %message, "request refused");
                ApiError {
                    status,
                    message,
                    detail: field_detail(location, &fields),
                    retry_after: None,
                }
            }
            error @ Error::TooLarge { .. } => {
                tracing::debug!(status = status.as_u16(), %error, "request refused");
                ApiError::new(status, format!("The request is too large: {error}."))
            }
            Error::Throttled {
                message,
                retry_after,
            } => {
                tracing::info!(status = status.as_u16(), %message, retry_after, "request throttled");
                ApiError {
                    retry_after: Some(retry_after),
                    ..ApiError::new(status, message)
                }
            }
            error @ Error::Backend { .. } => {
                // The cause is for the operator's log, not for the client.
                tracing::error!(error = %error, "storage backend failure");
                ApiError::new(
                    status,
                    "The server's storage backend failed; the error has been logged.",
                )
            }
            error => {
                if status.is_server_error() {
                    tracing::warn!(status = status.as_u16(), %error, "request failed");
                } else {
                    tracing::debug!(status = status.as_u16(), %error, "request refused");
                }
                ApiError::new(status, error.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "message": self.message, "detail": self.detail });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_one_status() {
        let cases: Vec<(Error, u16)> = vec![
            (Error::invalid_field("x", "bad"), 422),
            (Error::BadRequest("b".into()), 400),
            (Error::Unauthorized("u".into()), 401),
            (Error::Forbidden("f".into()), 403),
            (Error::NotFound("n".into()), 404),
            (Error::Gone("g".into()), 410),
            (Error::Conflict("c".into()), 409),
            (
                Error::TooLarge {
                    what: "w",
                    limit: 1,
                },
                413,
            ),
            (Error::Busy("b".into()), 503),
            (Error::TimedOut("t".into()), 408),
            (
                Error::Throttled {
                    message: "m".into(),
                    retry_after: 3,
                },
                429,
            ),
            (
                Error::Upstream {
                    message: "m".into(),
                    timed_out: false,
                },
                502,
            ),
            (
                Error::Upstream {
                    message: "m".into(),
                    timed_out: true,
                },
                504,
            ),
            (Error::backend("ctx", "cause"), 500),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from(error).status().as_u16(), status);
        }
    }

    #[test]
    fn field_errors_name_their_location_and_backend_causes_stay_private() {
        let api = ApiError::from(Error::invalid(Location::Query, "queue", "Give one."));
        assert_eq!(api.detail, json!({"query": {"queue": ["Give one."]}}));
        let api = ApiError::from(Error::backend("reading", "secret cause"));
        assert!(!api.message().contains("secret cause"));
    }
}
