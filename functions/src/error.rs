//! The one place where errors become HTTP answers: always a JSON body
//! `{"message", "detail"}` (SPEC.md §2).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use testflinger_shared::validation::FieldErrors;
use testflinger_shared::Error;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub detail: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            detail: Value::Object(Map::new()),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 422 for bad fields of a JSON body (`location` "json") or of the query
    /// string (`location` "query").
    pub fn validation(location: &str, fields: &FieldErrors) -> Self {
        let fields: Map<String, Value> = fields
            .iter()
            .map(|(field, problems)| (field.to_owned(), json!(problems)))
            .collect();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: "Validation error".into(),
            detail: json!({ location: fields }),
        }
    }

    pub fn invalid_field(location: &str, field: &str, problem: &str) -> Self {
        let mut fields = FieldErrors::new();
        fields.add(field, problem);
        Self::validation(location, &fields)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::Validation { message, fields } => {
                let mut api = ApiError::validation("json", &fields);
                api.message = message;
                api
            }
            Error::BadRequest(message) => ApiError::bad_request(message),
            Error::NotFound(message) => ApiError::not_found(message),
            Error::Unauthorized(message) => ApiError::new(StatusCode::UNAUTHORIZED, message),
            Error::Forbidden(message) => ApiError::new(StatusCode::FORBIDDEN, message),
            error @ Error::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request is too large: {error}."),
            ),
            error @ Error::Backend { .. } => {
                // The cause is for the operator's log, not for the client.
                tracing::error!(error = %error, "storage backend failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The server's storage backend failed; the error has been logged.",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "message": self.message, "detail": self.detail });
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
