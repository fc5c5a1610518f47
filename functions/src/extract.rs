//! Extractors that answer bad input with the API's JSON errors.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts};
use http_body_util::BodyExt;
use serde_json::{Map, Value};
use uuid::Uuid;

use testflinger_shared::validation::parse_json_body;
use testflinger_shared::Error;

use crate::budget;
use crate::error::ApiError;
use crate::AppState;

/// A request body that must be a JSON object, read up to the configured limit.
/// Over the limit: 413 (refused from `Content-Length`, or while reading);
/// malformed: 400; valid JSON but not an object: 422; more keys or nesting
/// than the configured shape, or a key no store can hold (a NUL in it): 422
/// naming where, found while parsing (`validation::parse_json_body`).
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<AppState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_json_content_type(req.headers())?;
        let limits = state.app.settings().limits;
        let bytes = read_limited(req.into_body(), limits.json_body).await?;
        let value = parse_json_body(&bytes, &limits.json_shape())?;
        match value {
            Value::Object(map) => Ok(JsonObject(map)),
            _ => Err(Error::invalid_field("_schema", "The body must be a JSON object.").into()),
        }
    }
}

/// Reads a whole body, refusing more than `limit` bytes while reading, and
/// charging what it holds to the request's memory budget ([`budget`]).
pub async fn read_limited(body: Body, limit: u64) -> Result<bytes::Bytes, Error> {
    let too_large = || Error::TooLarge {
        what: "the request body",
        limit,
    };
    // A declared length over the limit (`Content-Length`) is refused at
    // once, before a byte of the body is waited for.
    let declared = axum::body::HttpBody::size_hint(&body).lower();
    if declared > limit {
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    if let Err(busy) = budget::charge(declared) {
        return Err(discard(body, limit, busy).await);
    }
    let mut charged = declared;
    let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let read = bytes.len() as u64 + data.len() as u64;
        if read > limit {
            return Err(too_large());
        }
        if read > charged {
            if let Err(busy) = budget::charge(read - charged) {
                drop(bytes);
                return Err(discard(body, limit - read, busy).await);
            }
            charged = read;
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes.into())
}

/// Reads and drops the rest of a body the budget cannot hold (up to `left`
/// bytes), so that the client, still sending, gets to read the 503 rather
/// than a reset connection; answers `why`.
async fn discard(mut body: std::pin::Pin<&mut Body>, mut left: u64, why: Error) -> Error {
    while let Some(Ok(frame)) = body.frame().await {
        let size = frame.data_ref().map_or(0, |d| d.len() as u64);
        match left.checked_sub(size) {
            Some(rest) => left = rest,
            None => break,
        }
    }
    why
}

/// Why a body could not be read: too slow (408, from the harness's guard),
/// or broken off.
pub fn body_error(error: &(dyn std::error::Error + 'static)) -> Error {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(slow) = e.downcast_ref::<SlowBody>() {
            return Error::TimedOut(slow.to_string());
        }
        cause = e.source();
    }
    Error::BadRequest(format!("The request body could not be read: {error}."))
}

/// A body that did not keep up the minimum rate the server allows.
#[derive(Debug, thiserror::Error)]
#[error(
    "The request body arrived too slowly: {received} bytes after {waited_seconds} s of waiting \
     (the server needs at least {min_rate} bytes per second after the first {grace_seconds} s)."
)]
pub struct SlowBody {
    pub received: u64,
    pub waited_seconds: u64,
    pub min_rate: u64,
    pub grace_seconds: u64,
}

/// JSON endpoints accept `application/json` (and `+json`), and also bodies
/// with no type, plain text or curl's default form type, as upstream's
/// clients and the README's curl examples send; anything else is 415.
fn check_json_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let accepted = mime.is_empty()
        || mime == "application/json"
        || mime.ends_with("+json")
        || mime == "text/plain"
        || mime == "application/x-www-form-urlencoded";
    if accepted {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(format!(
            "Expected a JSON body (Content-Type: application/json), not {mime}."
        )))
    }
}

/// Refuses at once a request whose declared `Content-Length` is over
/// `limit` (plus `slack` for framing such as multipart headers).
pub fn refuse_declared_length(
    headers: &axum::http::HeaderMap,
    limit: u64,
    slack: u64,
) -> Result<(), Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit.saturating_add(slack) => Err(Error::TooLarge {
            what: "the upload",
            limit,
        }),
        _ => Ok(()),
    }
}

/// The `{id}` path segment as a job UUID; anything else is 400.
pub struct JobId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for JobId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::BadRequest("Invalid job id.".into()))?;
        let raw = params
            .iter()
            .find(|(name, _)| name == "id")
            .map(|(_, value)| value.as_str())
            .unwrap_or("");
        Uuid::parse_str(raw).map(JobId).map_err(|_| {
            Error::BadRequest(format!("Invalid job id {raw:?}: a job id is a UUID.")).into()
        })
    }
}

/// A route's named text parameter other than `{id}` (`{name}`, `{queue}`,
/// `{log_type}`); a segment that is not valid UTF-8 is 400 with a JSON body.
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::BadRequest(format!("Invalid path: {}.", e.body_text())))?;
        params
            .into_iter()
            .find(|(name, _)| name != "id")
            .map(|(_, value)| Segment(value))
            .ok_or_else(|| Error::BadRequest("The path is missing a segment.".into()).into())
    }
}

/// Where a request came from, when known: the peer of the harness's
/// connection, or the source address API Gateway saw under Lambda. Never a
/// header a client could set.
pub struct SourceAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        use lambda_http::request::RequestContext;
        use lambda_http::RequestExt;
        if let Some(axum::extract::ConnectInfo(peer)) = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        {
            return Ok(SourceAddress(Some(peer.ip())));
        }
        let gateway = match parts.extensions.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.as_deref(),
            _ => None,
        };
        Ok(SourceAddress(gateway.and_then(|ip| ip.parse().ok())))
    }
}

/// The value of one cookie.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "session=1; agent_name=dev-01".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, "agent_name").as_deref(), Some("dev-01"));
        assert_eq!(cookie(&headers, "other"), None);
    }
}
