//! Who is calling, and whether they may (SPEC.md §3).
//!
//! Each endpoint of the route table names the roles allowed to call it. A
//! middleware in front of each endpoint reads the bearer token (if any),
//! asks the use cases who it belongs to (the client is loaded **fresh from
//! the store**, so a deleted client or a changed role takes effect at once)
//! and applies [`permissions::route_access`].

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use testflinger_shared::app::Caller;
use testflinger_shared::permissions;
use testflinger_shared::role::Role;
use testflinger_shared::timestamp::Timestamp;

use crate::error::ApiError;
use crate::AppState;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, and no token is even read (the health check, the token
    /// endpoints themselves).
    Public,
    /// Callers holding one of these roles; anonymous callers hold the roles
    /// their mode gives them.
    Roles(&'static [Role]),
    /// Callers holding one of these roles, and anonymous callers whose mode
    /// gives them one; a client identified with another role is refused
    /// even where an anonymous caller would pass.
    Only(&'static [Role]),
}

use Role::{Admin as A, Agent as G, Contributor as C, Manager as M};

/// Submit, read, cancel, search, queue and agent reads.
pub const AMC: Access = Access::Roles(&[A, M, C]);
/// What only agents do: claim, attachments, provision logs.
pub const AGENT: Access = Access::Roles(&[G]);
/// Posts about a running job (results, logs, live output, artifacts, job
/// events): the agent that claimed it, or an admin (who may close out a
/// job whose agent is gone); the use case checks which client claimed it.
pub const AGENT_OR_ADMIN: Access = Access::Roles(&[A, G]);
/// Agent writes that admins and managers may also make (agent state,
/// advertised queues and images).
pub const AMG: Access = Access::Roles(&[A, M, G]);
/// The v2 agent report: the agent's own word, never an admin's or a
/// manager's (they command a mode instead), whatever the mode.
pub const AGENT_ONLY: Access = Access::Only(&[G]);
/// Reads that agents and people both make.
pub const ANYONE: Access = Access::Roles(&[A, M, C, G]);
/// Restricted queues and client permissions.
pub const AM: Access = Access::Roles(&[A, M]);
/// Deleting clients, revoking refresh tokens.
pub const ADMIN: Access = Access::Roles(&[A]);

/// The caller of a request, as the middleware identified it.
pub struct CallerOf(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for CallerOf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default();
        caller.agent = crate::extract::cookie(&parts.headers, "agent_name");
        Ok(CallerOf(caller))
    }
}

/// The middleware in front of every endpoint.
pub async fn authorize(
    State((state, access)): State<(AppState, Access)>,
    mut request: Request,
    next: Next,
) -> Response {
    let (allowed, only) = match access {
        Access::Public => return next.run(request).await,
        Access::Roles(allowed) => (allowed, false),
        Access::Only(allowed) => (allowed, true),
    };
    let mode = state.app.settings().auth_mode;
    let token = bearer_token(request.headers()).map(str::to_owned);
    let checked = async {
        let caller = state
            .app
            .identify(token.as_deref(), Timestamp::now())
            .await?;
        if only {
            permissions::route_access_only(allowed, &caller, mode)?;
        } else {
            permissions::route_access(allowed, &caller, mode)?;
        }
        Ok::<_, testflinger_shared::Error>(caller)
    };
    match checked.await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
