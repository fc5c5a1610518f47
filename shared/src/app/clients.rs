//! Callers and clients: who a token belongs to, logins and refresh tokens,
//! client permissions (one update flow for the API and the operator's
//! `create-client`), and restricted queues.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{App, Caller};
use crate::auth::{
    hash_secret, new_refresh_token, refresh_token_hash, verify_secret, TokenError, TokenKeys,
    ACCESS_TOKEN_SECONDS, REFRESH_TOKEN_SECONDS,
};
use crate::clients::{
    is_client_id, validate_client_update, Client, OwnerRemoval, RefreshToken, RestrictedQueue,
};
use crate::error::Location;
use crate::permissions::{self, Actor};
use crate::{Error, Result, Timestamp};

/// Slow hashes at once, at most: each Argon2 check takes ~19 MiB and a core
/// for tens of milliseconds, so a burst of logins must queue rather than
/// exhaust memory.
const SLOW_HASHES_AT_ONCE: usize = 2;
/// How long a login waits for its turn before the answer is 503.
const SLOW_HASH_WAIT: Duration = Duration::from_secs(10);

/// Runs a slow hash (checking or making a client secret) off the async
/// workers, a bounded number at a time.
async fn slow_hash<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(SLOW_HASHES_AT_ONCE);
    let busy = || Error::Busy("Too many logins at once; try again in a few seconds.".into());
    let _turn = tokio::time::timeout(SLOW_HASH_WAIT, TURNS.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::backend("checking a client secret", e))
}

/// A hash that no secret matches, checked against when the client is
/// unknown so that both refusals take the same time.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_secret(&new_refresh_token()))
}

/// Tokens handed out by a login or a refresh.
#[derive(Debug)]
pub struct Tokens {
    pub access_token: String,
    pub expires_in: i64,
    /// Only from a login.
    pub refresh_token: Option<String>,
}

/// What a client update did.
#[derive(Debug)]
pub struct ClientChange {
    pub client: Client,
    pub created: bool,
    /// Refresh tokens ended because the secret changed.
    pub revoked_tokens: u64,
}

fn unknown_client(client_id: &str) -> Error {
    Error::NotFound(format!("Client '{client_id}' does not exist."))
}

fn not_restricted(queue: &str) -> Error {
    Error::NotFound(format!("Queue '{queue}' is not restricted."))
}

impl App {
    fn token_keys(&self) -> Result<&TokenKeys> {
        self.settings.token_keys.as_ref().ok_or_else(|| {
            Error::NotFound(
                "This server issues no tokens (it has no JWT_SIGNING_KEY); call it without one."
                    .into(),
            )
        })
    }

    /// Who a request's bearer token (if any) belongs to, with the client
    /// loaded fresh from the store, so that a deleted client or a changed
    /// role takes effect at once: expired → 401 (the clients refresh and
    /// replay), forged or garbage → 403, a client that is gone → 401.
    /// A token issued ahead of `now` by more than the leeway is refused
    /// like an expired one.
    pub async fn identify(&self, bearer_token: Option<&str>, now: Timestamp) -> Result<Caller> {
        let Some(token) = bearer_token else {
            return Ok(Caller::anonymous());
        };
        let Some(keys) = &self.settings.token_keys else {
            return Err(Error::Forbidden(
                "This server accepts no tokens (it has no JWT_SIGNING_KEY); call it without one."
                    .into(),
            ));
        };
        let claims = keys.verify(token, now).map_err(|e| match e {
            TokenError::Expired => Error::Unauthorized(
                "The access token has expired; get a new one from /v1/oauth2/refresh.".into(),
            ),
            TokenError::IssuedAhead => Error::Unauthorized(
                "The access token was issued in the future (beyond the allowed clock skew); \
                 get a new one from /v1/oauth2/refresh."
                    .into(),
            ),
            TokenError::Invalid => Error::Forbidden("The access token is not valid.".into()),
        })?;
        match self.store.get_client(&claims.client_id).await? {
            Some(client) => Ok(Caller {
                client: Some(client),
                agent: None,
            }),
            None => Err(Error::Unauthorized(format!(
                "Client '{}' no longer exists.",
                claims.client_id
            ))),
        }
    }

    /// `POST /v1/oauth2/token`: a login with a client id and secret
    /// (`None` when the request carried none), from `address` when known.
    /// Repeated failures for a client id or from an address are throttled
    /// (429, [`crate::throttle`]) before any secret is checked.
    pub async fn login(
        &self,
        credentials: Option<(String, String)>,
        address: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Tokens> {
        let keys = self.token_keys()?;
        let Some((client_id, secret)) = credentials else {
            return Err(Error::Unauthorized(
                "Give the client id and secret with HTTP Basic authentication.".into(),
            ));
        };
        self.logins.check(&client_id, address, now)?;
        let client = self.store.get_client(&client_id).await?;
        let stored = client.as_ref().map(|c| c.secret_hash.clone());
        // The decoy is made (once) inside the slow-hash pool too, never on
        // an async worker.
        let matches = slow_hash(move || {
            verify_secret(&secret, stored.as_deref().unwrap_or_else(|| decoy_hash()))
        })
        .await?;
        let Some(client) = client.filter(|_| matches) else {
            self.logins.failed(&client_id, address, now);
            // Debug formatting escapes whatever the caller put in the id.
            tracing::info!(client_id = ?client_id, ?address, "token refused: invalid client id or secret");
            return Err(Error::Unauthorized(
                "Invalid client id or client secret.".into(),
            ));
        };
        self.logins.succeeded(&client.client_id);
        let refresh_token = new_refresh_token();
        self.store
            .insert_refresh_token(&RefreshToken {
                token_hash: refresh_token_hash(&refresh_token),
                client_id: client.client_id.clone(),
                issued_at: now,
                expires_at: now.plus_seconds(REFRESH_TOKEN_SECONDS),
                revoked: false,
            })
            .await?;
        tracing::info!(client_id = %client.client_id, role = client.role.as_str(), "tokens issued");
        Ok(Tokens {
            access_token: keys.issue_for(&client, now),
            expires_in: ACCESS_TOKEN_SECONDS,
            refresh_token: Some(refresh_token),
        })
    }

    /// `POST /v1/oauth2/refresh`: a new access token. The client's role is
    /// read now, so a changed role shows in the new token.
    pub async fn refresh(&self, body: &Map<String, Value>, now: Timestamp) -> Result<Tokens> {
        let keys = self.token_keys()?;
        let token = refresh_token_field(body)?;
        let invalid = || {
            Error::BadRequest(
                "Invalid refresh token: it is unknown, revoked or expired; log in again.".into(),
            )
        };
        let client_id = self
            .store
            .use_refresh_token(&refresh_token_hash(token), now)
            .await?
            .ok_or_else(invalid)?;
        let client = self
            .store
            .get_client(&client_id)
            .await?
            .ok_or_else(invalid)?;
        Ok(Tokens {
            access_token: keys.issue_for(&client, now),
            expires_in: ACCESS_TOKEN_SECONDS,
            refresh_token: None,
        })
    }

    /// `POST /v1/oauth2/revoke` (admin).
    pub async fn revoke(&self, body: &Map<String, Value>) -> Result<()> {
        let token = refresh_token_field(body)?;
        if self
            .store
            .revoke_refresh_token(&refresh_token_hash(token))
            .await?
        {
            tracing::info!("refresh token revoked");
            Ok(())
        } else {
            Err(Error::BadRequest(
                "The refresh token is unknown or already revoked.".into(),
            ))
        }
    }

    /// `GET /v1/client-permissions`: every client.
    pub async fn list_clients(&self) -> Result<Vec<Client>> {
        self.store.list_clients().await
    }

    /// `GET /v1/client-permissions/{id}`
    pub async fn get_client(&self, client_id: &str) -> Result<Client> {
        self.store
            .get_client(client_id)
            .await?
            .ok_or_else(|| unknown_client(client_id))
    }

    /// Creates a client (a secret is needed) or updates the fields given:
    /// `PUT /v1/client-permissions/{id}` and the operator's
    /// `create-client`, under [`permissions::may_update_client`]. A new
    /// secret ends the sessions of the old one.
    pub async fn update_client(
        &self,
        actor: Actor<'_>,
        client_id: &str,
        body: &Map<String, Value>,
    ) -> Result<ClientChange> {
        if !is_client_id(client_id) {
            return Err(Error::invalid(
                Location::Path,
                "client_id",
                "This is not a client id: a client id is 1 to 128 printable characters, without spaces, '/' or '$'.",
            ));
        }
        if body
            .get("client_id")
            .is_some_and(|id| id.as_str() != Some(client_id))
        {
            return Err(Error::invalid_field(
                "client_id",
                "Must be the client id of the path, or left out.",
            ));
        }
        let update = validate_client_update(body)?;
        let existing = self.store.get_client(client_id).await?;
        if matches!(actor, Actor::Operator) && existing.is_none() && update.role.is_none() {
            // Through the API a new client is a contributor; the operator
            // says which role the first clients get.
            return Err(Error::invalid_field(
                "role",
                "A new client needs --role: admin, manager, contributor or agent.",
            ));
        }
        permissions::may_update_client(actor, client_id, existing.as_ref(), &update)?;
        let new_secret = update.client_secret.is_some() && existing.is_some();
        let client = slow_hash({
            let client_id = client_id.to_owned();
            move || update.apply(&client_id, existing, hash_secret)
        })
        .await??;
        let created = self.store.put_client(&client).await?;
        let mut revoked_tokens = 0;
        if new_secret {
            revoked_tokens = self.store.revoke_client_tokens(client_id).await?;
            tracing::info!(client_id = %client_id, revoked = revoked_tokens, "secret changed: refresh tokens revoked");
        }
        let by = match actor {
            Actor::Operator => "the operator",
            Actor::Client(me) => me.client_id.as_str(),
        };
        tracing::info!(client_id = %client_id, role = client.role.as_str(), by, created, "client permissions written");
        Ok(ClientChange {
            client,
            created,
            revoked_tokens,
        })
    }

    /// `PUT /v1/client-permissions/{id}`: [`App::update_client`] by the
    /// calling client.
    pub async fn put_client(
        &self,
        caller: &Caller,
        client_id: &str,
        body: &Map<String, Value>,
    ) -> Result<ClientChange> {
        let me = permissions::require_client(caller, "Managing clients")?;
        self.update_client(Actor::Client(me), client_id, body).await
    }

    /// `DELETE /v1/client-permissions/{id}` (admin): the client, its
    /// refresh tokens and its secrets.
    pub async fn delete_client(&self, caller: &Caller, client_id: &str) -> Result<()> {
        if self.store.delete_client(client_id).await? {
            tracing::info!(client_id = %client_id, by = ?caller.client_id(), "client deleted");
            Ok(())
        } else {
            Err(unknown_client(client_id))
        }
    }

    /// `GET /v1/restricted-queues`
    pub async fn list_restricted_queues(&self) -> Result<Vec<RestrictedQueue>> {
        self.store.list_restricted_queues().await
    }

    /// `GET /v1/restricted-queues/{queue}`
    pub async fn get_restricted_queue(&self, queue: &str) -> Result<RestrictedQueue> {
        self.store
            .get_restricted_queue(queue)
            .await?
            .ok_or_else(|| not_restricted(queue))
    }

    /// `POST /v1/restricted-queues/{queue} {"client_id"}`: restricts the
    /// queue (if it is not yet) and makes the client an owner. Only a queue
    /// some agent serves can be restricted.
    pub async fn restrict_queue(
        &self,
        caller: &Caller,
        queue: &str,
        body: &Map<String, Value>,
    ) -> Result<()> {
        let client_id = client_id_field(body)?;
        let Some(owner) = self.store.get_client(&client_id).await? else {
            return Err(unknown_client(&client_id));
        };
        permissions::may_change_owner(caller, &owner)?;
        let served = self
            .store
            .list_agents()
            .await?
            .iter()
            .any(|a| a.queues().contains(&queue));
        if !served {
            return Err(Error::NotFound(format!(
                "No agent serves queue '{queue}', so it cannot be restricted."
            )));
        }
        if !self.store.add_queue_owner(queue, &client_id).await? {
            return Err(unknown_client(&client_id));
        }
        tracing::info!(queue = %queue, owner = %client_id, by = ?caller.client_id(), "queue restricted");
        Ok(())
    }

    /// `DELETE /v1/restricted-queues/{queue} {"client_id"}`: removes one
    /// owner; the restriction ends with its last owner, not before.
    pub async fn unrestrict_queue(
        &self,
        caller: &Caller,
        queue: &str,
        body: &Map<String, Value>,
    ) -> Result<()> {
        let client_id = client_id_field(body)?;
        if let Some(owner) = self.store.get_client(&client_id).await? {
            permissions::may_change_owner(caller, &owner)?;
        }
        match self.store.remove_queue_owner(queue, &client_id).await? {
            OwnerRemoval::NotRestricted => Err(not_restricted(queue)),
            OwnerRemoval::NotOwner => Err(Error::NotFound(format!(
                "Client '{client_id}' is not an owner of queue '{queue}'."
            ))),
            OwnerRemoval::Removed { restriction_ended } => {
                tracing::info!(queue = %queue, owner = %client_id, restriction_ended, by = ?caller.client_id(), "queue owner removed");
                Ok(())
            }
        }
    }
}

fn required_string<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str> {
    match body.get(field) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(_) => Err(Error::invalid_field(field, "Must be a non-empty string.")),
        None => Err(Error::invalid_field(
            field,
            "Missing data for required field.",
        )),
    }
}

fn refresh_token_field(body: &Map<String, Value>) -> Result<&str> {
    required_string(body, "refresh_token")
}

fn client_id_field(body: &Map<String, Value>) -> Result<String> {
    required_string(body, "client_id").map(str::to_owned)
}
