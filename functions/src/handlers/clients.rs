//! Client permissions and restricted queues (SPEC.md §4.4).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::Value;

use super::{ok_text, text};
use crate::auth::CallerOf;
use crate::error::ApiResult;
use crate::extract::{JsonObject, Segment};
use crate::{views, AppState};

/// `GET /v1/client-permissions`: every client, never a secret or its hash.
pub async fn list_clients(State(state): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let clients = state.app.list_clients().await?;
    Ok(Json(clients.iter().map(views::client).collect()))
}

/// `GET /v1/client-permissions/{client_id}`
pub async fn get_client(
    State(state): State<AppState>,
    Segment(client_id): Segment,
) -> ApiResult<Json<Value>> {
    Ok(Json(views::client(
        &state.app.get_client(&client_id).await?,
    )))
}

/// `PUT /v1/client-permissions/{client_id}`: creates a client (a secret is
/// needed) or updates the fields given.
pub async fn put_client(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    Segment(client_id): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let change = state.app.put_client(&caller, &client_id, &body).await?;
    let verb = if change.created { "Created" } else { "Updated" };
    Ok(text(
        StatusCode::OK,
        format!("{verb} permissions for client '{client_id}'"),
    ))
}

/// `DELETE /v1/client-permissions/{client_id}` (admin): the client, its
/// refresh tokens and its secrets.
pub async fn delete_client(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    Segment(client_id): Segment,
) -> ApiResult<Response> {
    state.app.delete_client(&caller, &client_id).await?;
    Ok(ok_text())
}

/// `GET /v1/restricted-queues`
pub async fn list_restricted_queues(State(state): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    let queues = state.app.list_restricted_queues().await?;
    Ok(Json(queues.iter().map(views::restricted_queue).collect()))
}

/// `GET /v1/restricted-queues/{queue}`
pub async fn get_restricted_queue(
    State(state): State<AppState>,
    Segment(queue): Segment,
) -> ApiResult<Json<Value>> {
    let restriction = state.app.get_restricted_queue(&queue).await?;
    Ok(Json(views::restricted_queue(&restriction)))
}

/// `POST /v1/restricted-queues/{queue} {"client_id"}`: restricts the queue
/// (if it is not yet) and makes the client an owner.
pub async fn restrict_queue(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    Segment(queue): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    state.app.restrict_queue(&caller, &queue, &body).await?;
    Ok(ok_text())
}

/// `DELETE /v1/restricted-queues/{queue} {"client_id"}`: removes one owner;
/// the restriction ends with its last owner, not before.
pub async fn unrestrict_queue(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    Segment(queue): Segment,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    state.app.unrestrict_queue(&caller, &queue, &body).await?;
    Ok(ok_text())
}
