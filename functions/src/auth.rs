//! Who is calling, and whether they may (SPEC.md §3).
//!
//! Each endpoint of the route table names the roles allowed to call it. A
//! middleware in front of each endpoint reads the bearer token (if any),
//! checks it, loads the client **fresh from the store** (so a deleted client
//! or a changed role takes effect at once, not at the next refresh) and
//! decides: the caller's role, or what anonymous callers may do in the
//! configured mode, must be on the endpoint's list.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use testflinger_shared::auth::{AuthMode, Role, TokenError, TokenKeys};
use testflinger_shared::clients::Client;
use testflinger_shared::config::AuthConfig;
use testflinger_shared::secrets::SecretsKey;

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
}

use Role::{Admin as A, Agent as G, Contributor as C, Manager as M};

/// Submit, read, cancel, search, queue and agent reads.
pub const AMC: Access = Access::Roles(&[A, M, C]);
/// What only agents do: claim, results, logs, artifacts, attachments.
pub const AGENT: Access = Access::Roles(&[G]);
/// Agent writes that admins and managers may also make (agent state,
/// advertised queues and images).
pub const AMG: Access = Access::Roles(&[A, M, G]);
/// Reads that agents and people both make.
pub const ANYONE: Access = Access::Roles(&[A, M, C, G]);
/// Restricted queues and client permissions.
pub const AM: Access = Access::Roles(&[A, M]);
/// Deleting clients, revoking refresh tokens.
pub const ADMIN: Access = Access::Roles(&[A]);

/// The authentication settings every request sees, built once at start-up.
pub struct AuthState {
    pub mode: AuthMode,
    /// `None` without `JWT_SIGNING_KEY`: no token is issued or accepted.
    pub keys: Option<TokenKeys>,
    pub secrets_key: Option<SecretsKey>,
    pub webhook_url: Option<String>,
    pub webhook_auth: Option<String>,
}

impl AuthState {
    pub fn new(config: &AuthConfig) -> Self {
        AuthState {
            mode: config.mode,
            keys: config
                .signing_key
                .as_deref()
                .map(|key| TokenKeys::new(key.as_bytes(), config.leeway_seconds)),
            secrets_key: config.secrets_key.clone(),
            webhook_url: config.webhook_url.clone(),
            webhook_auth: config.webhook_auth.clone(),
        }
    }
}

/// The caller of a request: a client loaded from the store, or anonymous.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub client: Option<Client>,
}

impl Caller {
    pub fn client_id(&self) -> Option<&str> {
        self.client.as_ref().map(|c| c.client_id.as_str())
    }

    pub fn role(&self) -> Option<Role> {
        self.client.as_ref().map(|c| c.role)
    }

    /// Admins and managers act on other clients' jobs.
    pub fn is_manager(&self) -> bool {
        matches!(self.role(), Some(Role::Admin | Role::Manager))
    }

    /// The client, or 401 naming what needed it.
    pub fn require(&self, what: &str) -> Result<&Client, ApiError> {
        self.client.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!(
                    "{what} needs an authenticated client; log in with a client id and secret."
                ),
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The middleware in front of every endpoint.
pub async fn authorize(
    State((state, access)): State<(AppState, Access)>,
    mut request: Request,
    next: Next,
) -> Response {
    let Access::Roles(allowed) = access else {
        return next.run(request).await;
    };
    let caller = match identify(&state, request.headers()).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let anonymous = state.auth.mode.anonymous_roles();
    let permitted = allowed
        .iter()
        .any(|role| caller.role() == Some(*role) || anonymous.contains(role));
    if !permitted {
        let roles: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        let roles = roles.join(" or ");
        return match caller.client_id() {
            None => ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("Authentication is required for this endpoint (role: {roles})."),
            ),
            Some(id) => ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Client '{id}' may not do this: it needs the role {roles}."),
            ),
        }
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Reads the bearer token, if any: expired → 401 (the clients refresh and
/// replay), forged or garbage → 403, a client that no longer exists → 401.
async fn identify(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
    let Some(token) = bearer_token(headers) else {
        return Ok(Caller::default());
    };
    let Some(keys) = &state.auth.keys else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "This server accepts no tokens (it has no JWT_SIGNING_KEY); call it without one.",
        ));
    };
    let claims = keys.verify(token).map_err(|e| match e {
        TokenError::Expired => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The access token has expired; get a new one from /v1/oauth2/refresh.",
        ),
        TokenError::Invalid => {
            ApiError::new(StatusCode::FORBIDDEN, "The access token is not valid.")
        }
    })?;
    match state.store.get_client(&claims.client_id).await? {
        Some(client) => Ok(Caller {
            client: Some(client),
        }),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("Client '{}' no longer exists.", claims.client_id),
        )),
    }
}

/// Slow hashes at once, at most: each Argon2 check takes ~19 MiB and a
/// core for tens of milliseconds, so a burst of logins must queue rather
/// than exhaust memory.
const SLOW_HASHES_AT_ONCE: usize = 2;
/// How long a login waits for its turn before the answer is 503.
const SLOW_HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs a slow hash (checking or making a client secret) off the async
/// workers, a bounded number at a time.
pub async fn slow_hash<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(SLOW_HASHES_AT_ONCE);
    let busy = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many logins at once; try again in a few seconds.",
        )
    };
    let _turn = tokio::time::timeout(SLOW_HASH_WAIT, TURNS.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    tokio::task::spawn_blocking(work).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Checking the secret failed; the error has been logged.",
        )
    })
}

fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
