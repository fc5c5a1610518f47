//! Per-client secrets (SPEC.md §4.4).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};
use testflinger_shared::app::secrets::check_secret_path;
use testflinger_shared::{Error, Timestamp};

use super::ok_text;
use crate::auth::CallerOf;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonObject;
use crate::AppState;

/// `{client_id}` and `{*path}` of a secret's route; a path that is not a
/// secret's is refused before the body is read.
pub struct SecretAddress {
    pub client_id: String,
    pub path: String,
}

impl<S: Send + Sync> FromRequestParts<S> for SecretAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::BadRequest(format!("Invalid path: {}.", e.body_text())))?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let path = get("path");
        check_secret_path(&path)?;
        Ok(SecretAddress {
            client_id: get("client_id"),
            path,
        })
    }
}

/// `PUT /v1/secrets/{client_id}/{path}` `{"value", "expire_after"?, "ephemeral"?}`
pub async fn put_secret(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    address: SecretAddress,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let expires_at = state
        .app
        .put_secret(
            &caller,
            &address.client_id,
            &address.path,
            &body,
            Timestamp::now(),
        )
        .await?;
    Ok(Json(json!({
        "expires_at": expires_at.map(Timestamp::to_rfc3339),
    })))
}

/// `DELETE /v1/secrets/{client_id}/{path}`
pub async fn delete_secret(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    address: SecretAddress,
) -> ApiResult<Response> {
    state
        .app
        .delete_secret(&caller, &address.client_id, &address.path)
        .await?;
    Ok(ok_text())
}
