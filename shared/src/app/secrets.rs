//! Per-client secrets (SPEC.md §4.4): written and deleted by their client
//! (or an admin), read only by the claim of a job that names them.

use serde_json::{Map, Value};

use super::{App, Caller};
use crate::error::Location;
use crate::permissions;
use crate::secrets::{is_secret_path, validate_secret_write, SecretsKey, StoredSecret};
use crate::{Error, Result, Timestamp};

/// Checks a secret's path (the `{*path}` of its route).
pub fn check_secret_path(path: &str) -> Result<()> {
    if is_secret_path(path) {
        Ok(())
    } else {
        Err(Error::invalid(
            Location::Path,
            "path",
            "A secret path is segments of letters, digits, '_' and '-' joined by '/'.",
        ))
    }
}

impl App {
    /// The key, once the caller is known to write its own secrets (or to
    /// be an admin).
    fn secrets_key_for(&self, caller: &Caller, owner_id: &str) -> Result<&SecretsKey> {
        permissions::may_write_secrets(caller, owner_id)?;
        self.settings.secrets_key.as_ref().ok_or_else(|| {
            Error::BadRequest(
                "No secrets store: this server has no TESTFLINGER_SECRETS_KEY.".into(),
            )
        })
    }

    /// `PUT /v1/secrets/{client_id}/{path}` `{"value", "expire_after"?,
    /// "ephemeral"?}`; answers when the secret expires (`None`: never).
    pub async fn put_secret(
        &self,
        caller: &Caller,
        owner_id: &str,
        path: &str,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<Option<Timestamp>> {
        check_secret_path(path)?;
        let write = validate_secret_write(body, now)?;
        let key = self.secrets_key_for(caller, owner_id)?;
        if caller.client_id() != Some(owner_id) && self.store.get_client(owner_id).await?.is_none()
        {
            return Err(Error::NotFound(format!(
                "Client '{owner_id}' does not exist."
            )));
        }
        self.store
            .put_secret(&StoredSecret {
                sealed: key.seal(owner_id, path, &write.value),
                client_id: owner_id.to_owned(),
                path: path.to_owned(),
                expires_at: write.expires_at,
                ephemeral: write.ephemeral,
                updated_at: now,
            })
            .await?;
        tracing::info!(client_id = %owner_id, path = %path, ephemeral = write.ephemeral, "secret written");
        Ok(write.expires_at)
    }

    /// `DELETE /v1/secrets/{client_id}/{path}`
    pub async fn delete_secret(&self, caller: &Caller, owner_id: &str, path: &str) -> Result<()> {
        check_secret_path(path)?;
        self.secrets_key_for(caller, owner_id)?;
        if self.store.delete_secret(owner_id, path).await? {
            tracing::info!(client_id = %owner_id, path = %path, "secret deleted");
            Ok(())
        } else {
            Err(Error::NotFound(format!(
                "Client '{owner_id}' has no secret at '{path}'."
            )))
        }
    }
}
