//! Tokens (SPEC.md §3): client credentials for an access and a refresh
//! token, refresh tokens for access tokens, and revocation.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use base64::Engine;
use serde_json::{json, Map, Value};
use testflinger_shared::auth::{
    hash_secret, new_refresh_token, refresh_token_hash, verify_secret, TokenKeys,
    ACCESS_TOKEN_SECONDS, REFRESH_TOKEN_SECONDS,
};
use testflinger_shared::clients::RefreshToken;
use testflinger_shared::Timestamp;

use crate::auth::slow_hash;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonObject;
use crate::AppState;

fn keys(state: &AppState) -> ApiResult<&TokenKeys> {
    state.auth.keys.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "This server issues no tokens (it has no JWT_SIGNING_KEY); call it without one.",
        )
    })
}

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

/// A hash that no secret matches, checked against when the client is
/// unknown so that both refusals take the same time.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_secret(&new_refresh_token()))
}

/// `POST /v1/oauth2/token` with HTTP Basic `client_id:client_secret`.
pub async fn issue_token(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let keys = keys(&state)?;
    let Some((client_id, secret)) = basic_credentials(&headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Give the client id and secret with HTTP Basic authentication.",
        ));
    };
    let client = state.store.get_client(&client_id).await?;
    let stored = client.as_ref().map(|c| c.secret_hash.clone());
    // The decoy is made (once) inside the slow-hash pool too, never on an
    // async worker.
    let matches = slow_hash(move || {
        verify_secret(&secret, stored.as_deref().unwrap_or_else(|| decoy_hash()))
    })
    .await?;
    let Some(client) = client.filter(|_| matches) else {
        // Debug formatting escapes whatever the caller put in the id.
        tracing::info!(client_id = ?client_id, "token refused: invalid client id or secret");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Invalid client id or client secret.",
        ));
    };
    let now = Timestamp::now();
    let refresh_token = new_refresh_token();
    state
        .store
        .insert_refresh_token(&RefreshToken {
            token_hash: refresh_token_hash(&refresh_token),
            client_id: client.client_id.clone(),
            issued_at: now,
            expires_at: now.plus_seconds(REFRESH_TOKEN_SECONDS),
            revoked: false,
        })
        .await?;
    tracing::info!(client_id = %client.client_id, role = client.role.as_str(), "tokens issued");
    Ok(Json(json!({
        "access_token": keys.issue_for(&client, now),
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
        "refresh_token": refresh_token,
    })))
}

fn refresh_token_field(body: &Map<String, Value>) -> ApiResult<&str> {
    match body.get("refresh_token") {
        Some(Value::String(token)) if !token.is_empty() => Ok(token),
        Some(_) => Err(ApiError::invalid_field(
            "json",
            "refresh_token",
            "Must be a non-empty string.",
        )),
        None => Err(ApiError::invalid_field(
            "json",
            "refresh_token",
            "Missing data for required field.",
        )),
    }
}

/// `POST /v1/oauth2/refresh {"refresh_token"}`: a new access token. The
/// client's role is read now, so a changed role shows in the new token.
pub async fn refresh_token(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let keys = keys(&state)?;
    let token = refresh_token_field(&body)?;
    let now = Timestamp::now();
    let invalid = || {
        ApiError::bad_request(
            "Invalid refresh token: it is unknown, revoked or expired; log in again.",
        )
    };
    let client_id = state
        .store
        .use_refresh_token(&refresh_token_hash(token), now)
        .await?
        .ok_or_else(invalid)?;
    let client = state
        .store
        .get_client(&client_id)
        .await?
        .ok_or_else(invalid)?;
    Ok(Json(json!({
        "access_token": keys.issue_for(&client, now),
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
    })))
}

/// `POST /v1/oauth2/revoke {"refresh_token"}` (admin).
pub async fn revoke_token(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let token = refresh_token_field(&body)?;
    if state
        .store
        .revoke_refresh_token(&refresh_token_hash(token))
        .await?
    {
        tracing::info!("refresh token revoked");
        Ok(Json(json!({"status": "OK"})))
    } else {
        Err(ApiError::bad_request(
            "The refresh token is unknown or already revoked.",
        ))
    }
}
