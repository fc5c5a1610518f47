//! Client permissions and restricted queues (SPEC.md §4.4).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};
use testflinger_shared::auth::{hash_secret, Role};
use testflinger_shared::clients::{is_client_id, validate_client_update, OwnerRemoval};

use super::ok_text;
use crate::auth::{slow_hash, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonObject, Segment};
use crate::AppState;

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

fn checked_id(client_id: &str) -> ApiResult<()> {
    if is_client_id(client_id) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "path",
            "client_id",
            "A client id is 1 to 128 printable characters, without spaces, '/' or '$'.",
        ))
    }
}

/// `GET /v1/client-permissions`: every client, never a secret or its hash.
pub async fn list_clients(State(state): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let clients = state.store.list_clients().await?;
    Ok(Json(clients.iter().map(|c| c.view()).collect()))
}

/// `GET /v1/client-permissions/{client_id}`
pub async fn get_client(
    State(state): State<AppState>,
    Segment(client_id): Segment,
) -> ApiResult<Json<Value>> {
    match state.store.get_client(&client_id).await? {
        Some(client) => Ok(Json(client.view())),
        None => Err(unknown_client(&client_id)),
    }
}

fn unknown_client(client_id: &str) -> ApiError {
    ApiError::not_found(format!("Client '{client_id}' does not exist."))
}

/// `PUT /v1/client-permissions/{client_id}`: creates a client (a secret is
/// needed) or updates the fields given. Nobody grants or edits a role above
/// their own.
pub async fn put_client(
    State(state): State<AppState>,
    caller: Caller,
    Segment(client_id): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    checked_id(&client_id)?;
    if body
        .get("client_id")
        .is_some_and(|id| id.as_str() != Some(client_id.as_str()))
    {
        return Err(ApiError::invalid_field(
            "json",
            "client_id",
            "Must be the client id of the path, or left out.",
        ));
    }
    let update = validate_client_update(&body)?;
    let me = caller.require("Managing clients")?;
    let existing = state.store.get_client(&client_id).await?;
    if let Some(current) = &existing {
        let allowed = if current.client_id == me.client_id {
            me.role == Role::Admin || update.only_secret()
        } else {
            me.may_change(&current.client_id, current.role)
        };
        if !allowed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Client '{}' ({}) may not change client '{client_id}' ({}): only an admin changes \
                     clients of its own role or above, or its own permissions.",
                    me.client_id,
                    me.role.as_str(),
                    current.role.as_str()
                ),
            ));
        }
    }
    if let Some(role) = update.role {
        if me.role != Role::Admin && role.rank() >= me.role.rank() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Client '{}' ({}) may grant only roles below its own, not {}.",
                    me.client_id,
                    me.role.as_str(),
                    role.as_str()
                ),
            ));
        }
    }
    let new_secret = update.client_secret.is_some() && existing.is_some();
    let client = slow_hash({
        let client_id = client_id.clone();
        move || update.apply(&client_id, existing, hash_secret)
    })
    .await??;
    let created = state.store.put_client(&client).await?;
    if new_secret {
        // A changed secret ends the sessions of the old one.
        let revoked = state.store.revoke_client_tokens(&client_id).await?;
        tracing::info!(client_id = %client_id, revoked, "secret changed: refresh tokens revoked");
    }
    let verb = if created { "Created" } else { "Updated" };
    tracing::info!(client_id = %client_id, role = client.role.as_str(), by = ?caller.client_id(), "{} client permissions", verb.to_lowercase());
    Ok(text(
        StatusCode::OK,
        format!("{verb} permissions for client '{client_id}'"),
    ))
}

/// `DELETE /v1/client-permissions/{client_id}` (admin): the client, its
/// refresh tokens and its secrets.
pub async fn delete_client(
    State(state): State<AppState>,
    caller: Caller,
    Segment(client_id): Segment,
) -> ApiResult<Response> {
    if state.store.delete_client(&client_id).await? {
        tracing::info!(client_id = %client_id, by = ?caller.client_id(), "client deleted");
        Ok(ok_text())
    } else {
        Err(unknown_client(&client_id))
    }
}

/// `GET /v1/restricted-queues`
pub async fn list_restricted_queues(State(state): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let queues = state.store.list_restricted_queues().await?;
    Ok(Json(queues.iter().map(|q| q.view()).collect()))
}

/// `GET /v1/restricted-queues/{queue}`
pub async fn get_restricted_queue(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> ApiResult<Json<Value>> {
    match state.store.get_restricted_queue(&queue).await? {
        Some(restriction) => Ok(Json(restriction.view())),
        None => Err(ApiError::not_found(format!(
            "Queue '{queue}' is not restricted."
        ))),
    }
}

fn client_id_field(body: &Map<String, Value>) -> ApiResult<String> {
    match body.get("client_id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        Some(_) => Err(ApiError::invalid_field(
            "json",
            "client_id",
            "Must be a non-empty string.",
        )),
        None => Err(ApiError::invalid_field(
            "json",
            "client_id",
            "Missing data for required field.",
        )),
    }
}

/// Owning a queue grants it in the owner's `allowed_queues`, so naming an
/// owner follows the rules of changing that client: oneself, or a client
/// of a lower role (an admin: anyone).
fn check_owner_change(caller: &Caller, owner_id: &str, owner_role: Role) -> ApiResult<()> {
    let me = caller.require("Restricting queues")?;
    if owner_id == me.client_id || me.may_change(owner_id, owner_role) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Client '{}' ({}) may not change the queues of client '{owner_id}' ({}).",
                me.client_id,
                me.role.as_str(),
                owner_role.as_str()
            ),
        ))
    }
}

/// `POST /v1/restricted-queues/{queue} {"client_id"}`: restricts the queue
/// (if it is not yet) and makes the client an owner.
pub async fn restrict_queue(
    State(state): State<AppState>,
    caller: Caller,
    Segment(queue): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let client_id = client_id_field(&body)?;
    let Some(owner) = state.store.get_client(&client_id).await? else {
        return Err(unknown_client(&client_id));
    };
    check_owner_change(&caller, &owner.client_id, owner.role)?;
    let served = state
        .store
        .list_agents()
        .await?
        .iter()
        .any(|a| a.queues().contains(&queue.as_str()));
    if !served {
        return Err(ApiError::not_found(format!(
            "No agent serves queue '{queue}', so it cannot be restricted."
        )));
    }
    if !state.store.add_queue_owner(&queue, &client_id).await? {
        return Err(unknown_client(&client_id));
    }
    tracing::info!(queue = %queue, owner = %client_id, by = ?caller.client_id(), "queue restricted");
    Ok(ok_text())
}

/// `DELETE /v1/restricted-queues/{queue} {"client_id"}`: removes one owner;
/// the restriction ends with its last owner, not before.
pub async fn unrestrict_queue(
    State(state): State<AppState>,
    caller: Caller,
    Segment(queue): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let client_id = client_id_field(&body)?;
    if let Some(owner) = state.store.get_client(&client_id).await? {
        check_owner_change(&caller, &owner.client_id, owner.role)?;
    }
    match state.store.remove_queue_owner(&queue, &client_id).await? {
        OwnerRemoval::NotRestricted => Err(ApiError::not_found(format!(
            "Queue '{queue}' is not restricted."
        ))),
        OwnerRemoval::NotOwner => Err(ApiError::not_found(format!(
            "Client '{client_id}' is not an owner of queue '{queue}'."
        ))),
        OwnerRemoval::Removed { restriction_ended } => {
            tracing::info!(queue = %queue, owner = %client_id, restriction_ended, by = ?caller.client_id(), "queue owner removed");
            Ok(ok_text())
        }
    }
}
