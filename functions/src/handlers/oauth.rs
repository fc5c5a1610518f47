//! Tokens (SPEC.md §3): client credentials for an access and a refresh
//! token, refresh tokens for access tokens, and revocation.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};
use testflinger_shared::app::clients::Tokens;
use testflinger_shared::Timestamp;

use crate::error::ApiResult;
use crate::extract::{JsonObject, SourceAddress};
use crate::AppState;

/// `client_id:client_secret` from HTTP Basic.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn tokens_view(tokens: Tokens) -> Value {
    let mut out = json!({
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
    });
    if let Some(refresh_token) = tokens.refresh_token {
        out["refresh_token"] = Value::String(refresh_token);
    }
    out
}

/// `POST /v1/oauth2/token` with HTTP Basic `client_id:client_secret`.
pub async fn issue_token(
    State(state): State<AppState>,
    SourceAddress(address): SourceAddress,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let tokens = state
        .app
        .login(basic_credentials(&headers), address, Timestamp::now())
        .await?;
    Ok(Json(tokens_view(tokens)))
}

/// `POST /v1/oauth2/refresh {"refresh_token"}`: a new access token.
pub async fn refresh_token(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let tokens = state.app.refresh(&body, Timestamp::now()).await?;
    Ok(Json(tokens_view(tokens)))
}

/// `POST /v1/oauth2/revoke {"refresh_token"}` (admin).
pub async fn revoke_token(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    state.app.revoke(&body).await?;
    Ok(Json(json!({"status": "OK"})))
}
