//! The secrets of SqliteStore.

use super::*;

pub(super) const SECRET_COLUMNS: &str = "client_id, path, value, expires_at, ephemeral, updated_at";

/// A secret that has not expired at ?3.
pub(super) const SECRET_LIVE: &str = "(expires_at IS NULL OR expires_at > ?3)";

pub(super) fn secret_from_row(row: &Row<'_>) -> rusqlite::Result<StoredSecret> {
    Ok(StoredSecret {
        client_id: row.get(0)?,
        path: row.get(1)?,
        sealed: row.get(2)?,
        expires_at: row.get::<_, Option<i64>>(3)?.map(Timestamp::from_millis),
        ephemeral: row.get(4)?,
        updated_at: Timestamp::from_millis(row.get(5)?),
    })
}

#[async_trait]
impl SecretStore for SqliteStore {
    async fn put_secret(&self, secret: &StoredSecret) -> Result<()> {
        let secret = secret.clone();
        self.write("storing a secret", move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO secrets \
                 (client_id, path, value, expires_at, ephemeral, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                secret.client_id,
                secret.path,
                secret.sealed,
                secret.expires_at.map(Timestamp::millis),
                secret.ephemeral,
                secret.updated_at.millis(),
            ])?;
            Ok(())
        })
        .await
    }

    async fn delete_secret(&self, client_id: &str, path: &str) -> Result<bool> {
        let (client_id, path) = (client_id.to_owned(), path.to_owned());
        self.write("deleting a secret", move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM secrets WHERE client_id = ?1 AND path = ?2")?
                .execute([client_id, path])?;
            Ok(deleted == 1)
        })
        .await
    }

    async fn existing_secrets(
        &self,
        client_id: &str,
        paths: &[String],
        now: Timestamp,
    ) -> Result<Vec<String>> {
        let paths = crate::secrets::distinct_paths(paths);
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let client_id = client_id.to_owned();
        self.read("reading secrets", move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT 1 FROM secrets WHERE client_id = ?1 AND path = ?2 AND {SECRET_LIVE}"
            ))?;
            let mut out = Vec::new();
            for path in paths {
                if stmt.exists(params![client_id, path, now.millis()])? {
                    out.push(path);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn take_secrets(
        &self,
        client_id: &str,
        paths: &[String],
        now: Timestamp,
    ) -> Result<Vec<StoredSecret>> {
        let paths = crate::secrets::distinct_paths(paths);
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let client_id = client_id.to_owned();
        // One transaction on the single writer: an ephemeral secret is read
        // and deleted in one step, so exactly one reader gets it.
        self.write("reading secrets", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut out = Vec::new();
            {
                let mut select = tx.prepare_cached(&format!(
                    "SELECT {SECRET_COLUMNS} FROM secrets \
                     WHERE client_id = ?1 AND path = ?2 AND {SECRET_LIVE}"
                ))?;
                let mut delete =
                    tx.prepare_cached("DELETE FROM secrets WHERE client_id = ?1 AND path = ?2")?;
                for path in paths {
                    let found = select
                        .query_row(params![client_id, path, now.millis()], secret_from_row)
                        .optional()?;
                    if let Some(secret) = found {
                        if secret.ephemeral {
                            delete.execute([&client_id, &path])?;
                        }
                        out.push(secret);
                    }
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}
