//! The tokens of SqliteStore.

use super::*;

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()> {
        let token = token.clone();
        self.write("storing a refresh token", move |conn| {
            conn.prepare_cached(
                "INSERT INTO refresh_tokens \
                 (token_hash, client_id, issued_at, expires_at, revoked, last_accessed) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?3)",
            )?
            .execute(params![
                token.token_hash,
                token.client_id,
                token.issued_at.millis(),
                token.expires_at.millis(),
                token.revoked,
            ])?;
            Ok(())
        })
        .await
    }

    async fn use_refresh_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<String>> {
        let token_hash = token_hash.to_owned();
        self.write("using a refresh token", move |conn| {
            conn.prepare_cached(
                "UPDATE refresh_tokens SET last_accessed = ?2 \
                 WHERE token_hash = ?1 AND revoked = 0 AND expires_at > ?2 \
                 RETURNING client_id",
            )?
            .query_row(params![token_hash, now.millis()], |r| r.get(0))
            .optional()
        })
        .await
    }

    async fn revoke_refresh_token(&self, token_hash: &str) -> Result<bool> {
        let token_hash = token_hash.to_owned();
        self.write("revoking a refresh token", move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = ?1 AND revoked = 0",
                )?
                .execute([token_hash])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn revoke_client_tokens(&self, client_id: &str) -> Result<u64> {
        let client_id = client_id.to_owned();
        self.write("revoking a client's refresh tokens", move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE refresh_tokens SET revoked = 1 WHERE client_id = ?1 AND revoked = 0",
                )?
                .execute([client_id])?;
            Ok(changed as u64)
        })
        .await
    }
}
