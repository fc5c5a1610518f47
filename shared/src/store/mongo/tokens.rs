//! The tokens of MongoStore.

use super::*;

#[async_trait]
impl TokenStore for MongoStore {
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()> {
        self.db
            .collection::<Document>(REFRESH_TOKENS)
            .insert_one(doc! {
                "token_hash": &token.token_hash,
                "client_id": &token.client_id,
                "issued_at": date(token.issued_at),
                "expires_at": date(token.expires_at),
                "revoked": token.revoked,
                "last_accessed": date(token.issued_at),
            })
            .await
            .map_err(|e| Error::backend("storing a refresh token", e))?;
        Ok(())
    }

    async fn use_refresh_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<String>> {
        let found = self
            .db
            .collection::<Document>(REFRESH_TOKENS)
            .find_one_and_update(
                doc! {"token_hash": token_hash, "revoked": false, "expires_at": {"$gt": date(now)}},
                doc! {"$set": {"last_accessed": date(now)}},
            )
            .projection(doc! {"client_id": 1})
            .await
            .map_err(|e| Error::backend("using a refresh token", e))?;
        Ok(found.and_then(|d| d.get_str("client_id").ok().map(str::to_owned)))
    }

    async fn revoke_refresh_token(&self, token_hash: &str) -> Result<bool> {
        let changed = self
            .db
            .collection::<Document>(REFRESH_TOKENS)
            .update_one(
                doc! {"token_hash": token_hash, "revoked": false},
                doc! {"$set": {"revoked": true}},
            )
            .await
            .map_err(|e| Error::backend("revoking a refresh token", e))?;
        Ok(changed.matched_count == 1)
    }

    async fn revoke_client_tokens(&self, client_id: &str) -> Result<u64> {
        let changed = self
            .db
            .collection::<Document>(REFRESH_TOKENS)
            .update_many(
                doc! {"client_id": client_id, "revoked": false},
                doc! {"$set": {"revoked": true}},
            )
            .await
            .map_err(|e| Error::backend("revoking a client's refresh tokens", e))?;
        Ok(changed.modified_count)
    }
}
