//! Handlers, one module per resource. Each parses its request, makes one
//! call to the use cases (`testflinger_shared::app`) and turns the answer
//! into a view; the rules live in the use cases.

pub mod agents;
pub mod artifacts;
pub mod clients;
pub mod events;
pub mod jobs;
pub mod logs;
pub mod meta;
pub mod oauth;
pub mod queues;
pub mod results;
pub mod secrets;
pub mod statistics;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `200 OK` with the plain-text body `OK`, as the clients expect.
pub fn ok_text() -> Response {
    text(StatusCode::OK, "OK".to_owned())
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// 405 for `HEAD` on reads with effects (the claim, the consuming legacy
/// output reads): axum answers `HEAD` with the `GET` handler otherwise.
pub fn refuse_head(method: &axum::http::Method) -> Result<(), crate::error::ApiError> {
    if method == axum::http::Method::HEAD {
        Err(crate::error::ApiError::method_not_allowed(
            "HEAD is not answered here: this GET changes state; use GET.",
        ))
    } else {
        Ok(())
    }
}

/// `204 No Content`: "nothing here" on the reads clients poll.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
