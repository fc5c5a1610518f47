//! Per-client secrets (SPEC.md §4.4): written and deleted by their client
//! (or an admin), read only by the claim of a job that names them.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};
use testflinger_shared::auth::Role;
use testflinger_shared::secrets::{
    is_secret_path, validate_secret_write, SecretsKey, StoredSecret,
};
use testflinger_shared::Timestamp;

use super::ok_text;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonObject;
use crate::AppState;

/// `{client_id}` and `{*path}` of a secret's route.
pub struct SecretAddress {
    pub client_id: String,
    pub path: String,
}

impl<S: Send + Sync> FromRequestParts<S> for SecretAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("Invalid path: {}.", e.body_text())))?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let path = get("path");
        if !is_secret_path(&path) {
            return Err(ApiError::invalid_field(
                "path",
                "path",
                "A secret path is segments of letters, digits, '_' and '-' joined by '/'.",
            ));
        }
        Ok(SecretAddress {
            client_id: get("client_id"),
            path,
        })
    }
}

/// The key, and the check that the caller writes its own secrets (or is an
/// admin).
fn authorise<'a>(
    state: &'a AppState,
    caller: &Caller,
    address: &SecretAddress,
) -> ApiResult<&'a SecretsKey> {
    let me = caller.require("Writing secrets")?;
    if me.client_id != address.client_id && me.role != Role::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Client '{}' may not change the secrets of client '{}'.",
                me.client_id, address.client_id
            ),
        ));
    }
    state.auth.secrets_key.as_ref().ok_or_else(|| {
        ApiError::bad_request("No secrets store: this server has no TESTFLINGER_SECRETS_KEY.")
    })
}

/// `PUT /v1/secrets/{client_id}/{path}` `{"value", "expire_after"?, "ephemeral"?}`
pub async fn put_secret(
    State(state): State<AppState>,
    caller: Caller,
    address: SecretAddress,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let now = Timestamp::now();
    let write = validate_secret_write(&body, now)?;
    let key = authorise(&state, &caller, &address)?;
    if caller.client_id() != Some(address.client_id.as_str())
        && state.store.get_client(&address.client_id).await?.is_none()
    {
        return Err(ApiError::not_found(format!(
            "Client '{}' does not exist.",
            address.client_id
        )));
    }
    state
        .store
        .put_secret(&StoredSecret {
            sealed: key.seal(&address.client_id, &address.path, &write.value),
            client_id: address.client_id.clone(),
            path: address.path.clone(),
            expires_at: write.expires_at,
            ephemeral: write.ephemeral,
            updated_at: now,
        })
        .await?;
    tracing::info!(client_id = %address.client_id, path = %address.path, ephemeral = write.ephemeral, "secret written");
    Ok(Json(json!({
        "expires_at": write.expires_at.map(Timestamp::to_rfc3339),
    })))
}

/// `DELETE /v1/secrets/{client_id}/{path}`
pub async fn delete_secret(
    State(state): State<AppState>,
    caller: Caller,
    address: SecretAddress,
) -> ApiResult<Response> {
    authorise(&state, &caller, &address)?;
    if state
        .store
        .delete_secret(&address.client_id, &address.path)
        .await?
    {
        tracing::info!(client_id = %address.client_id, path = %address.path, "secret deleted");
        Ok(ok_text())
    } else {
        Err(ApiError::not_found(format!(
            "Client '{}' has no secret at '{}'.",
            address.client_id, address.path
        )))
    }
}
