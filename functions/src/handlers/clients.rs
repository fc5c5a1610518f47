//! Client permissions and restricted queues (SPEC.md §4.4).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};
use testflinger_shared::auth::hash_secret;
use testflinger_shared::clients::{is_client_id, validate_client_update, OwnerRemoval};

use super::ok_text;
use crate::auth::Caller;
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
        if !me.role.may_manage(current.role) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Client '{client_id}' has the role {}, above yours ({}).",
                    current.role.as_str(),
                    me.role.as_str()
                ),
            ));
        }
    }
    if let Some(role) = update.role {
        if !me.role.may_manage(role) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "You may not grant the role {}, above your own ({}).",
                    role.as_str(),
                    me.role.as_str()
                ),
            ));
        }
    }
    // The slow hash runs off the async workers.
    let client = tokio::task::spawn_blocking({
        let client_id = client_id.clone();
        let existing = existing.clone();
        move || update.apply(&client_id, existing, hash_secret)
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Hashing the secret failed.",
        )
    })??;
    let created = state.store.put_client(&client).await?;
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

/// `POST /v1/restricted-queues/{queue} {"client_id"}`: restricts the queue
/// (if it is not yet) and makes the client an owner.
pub async fn restrict_queue(
    State(state): State<AppState>,
    caller: Caller,
    Segment(queue): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let client_id = client_id_field(&body)?;
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
