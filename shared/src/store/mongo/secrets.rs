//! The secrets of MongoStore.

use super::*;

/// The client's secrets among `paths` that have not expired at `now`.
pub(super) fn live_secrets(client_id: &str, paths: &[String], now: Timestamp) -> Document {
    doc! {
        "client_id": client_id,
        "path": {"$in": paths},
        "$or": [{"expires_at": Bson::Null}, {"expires_at": {"$gt": date(now)}}],
    }
}

pub(super) fn secret_from_document(document: &Document) -> Result<StoredSecret> {
    let corrupt = |what: &str| {
        Error::backend(
            "reading a secret",
            format!("secret document without {what}"),
        )
    };
    let sealed = match document.get("value") {
        Some(Bson::Binary(binary)) => binary.bytes.clone(),
        _ => return Err(corrupt("a binary value")),
    };
    let millis = |key: &str| {
        document
            .get_datetime(key)
            .ok()
            .map(|d| d.timestamp_millis())
    };
    Ok(StoredSecret {
        client_id: document
            .get_str("client_id")
            .map_err(|_| corrupt("a client_id"))?
            .to_owned(),
        path: document
            .get_str("path")
            .map_err(|_| corrupt("a path"))?
            .to_owned(),
        sealed,
        expires_at: millis("expires_at").map(Timestamp::from_millis),
        ephemeral: document.get_bool("ephemeral").unwrap_or(false),
        updated_at: Timestamp::from_millis(millis("updated_at").unwrap_or(0)),
    })
}

#[async_trait]
impl SecretStore for MongoStore {
    async fn put_secret(&self, secret: &StoredSecret) -> Result<()> {
        let mut document = doc! {
            "client_id": &secret.client_id,
            "path": &secret.path,
            "value": Binary {
                subtype: BinarySubtype::Generic,
                bytes: secret.sealed.clone(),
            },
            "ephemeral": secret.ephemeral,
            "updated_at": date(secret.updated_at),
        };
        // No `expires_at` at all for a secret that never expires, so that
        // the TTL index leaves it alone.
        if let Some(expires_at) = secret.expires_at {
            document.insert("expires_at", date(expires_at));
        }
        check_size(&document)?;
        let secrets = self.secrets();
        let put = || {
            secrets
                .replace_one(
                    doc! {"client_id": &secret.client_id, "path": &secret.path},
                    document.clone(),
                )
                .upsert(true)
        };
        match put().await {
            Err(e) if is_duplicate_key(&e) => put().await,
            other => other,
        }
        .map_err(|e| write_error("storing a secret", e))?;
        Ok(())
    }

    async fn delete_secret(&self, client_id: &str, path: &str) -> Result<bool> {
        let deleted = self
            .secrets()
            .delete_one(doc! {"client_id": client_id, "path": path})
            .await
            .map_err(|e| Error::backend("deleting a secret", e))?;
        Ok(deleted.deleted_count == 1)
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
        let documents = collect_all(
            self.secrets()
                .find(live_secrets(client_id, &paths, now))
                .projection(doc! {"path": 1}),
            "reading secrets",
        )
        .await?;
        let found: Vec<&str> = documents
            .iter()
            .filter_map(|d| d.get_str("path").ok())
            .collect();
        Ok(paths
            .into_iter()
            .filter(|p| found.contains(&p.as_str()))
            .collect())
    }

    async fn take_secrets(
        &self,
        client_id: &str,
        paths: &[String],
        now: Timestamp,
    ) -> Result<Vec<StoredSecret>> {
        let context = "reading secrets";
        let paths = crate::secrets::distinct_paths(paths);
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let documents = collect_all(
            self.secrets().find(live_secrets(client_id, &paths, now)),
            context,
        )
        .await?;
        let mut found: BTreeMap<String, StoredSecret> = BTreeMap::new();
        for document in documents {
            let secret = secret_from_document(&document)?;
            let secret = if secret.ephemeral {
                // Read and deleted in one step: of concurrent readers,
                // exactly one gets it.
                let mut filter = live_secrets(client_id, std::slice::from_ref(&secret.path), now);
                filter.insert("ephemeral", true);
                let taken = self
                    .secrets()
                    .find_one_and_delete(filter)
                    .await
                    .map_err(|e| Error::backend(context, e))?;
                match taken {
                    Some(taken) => secret_from_document(&taken)?,
                    None => continue,
                }
            } else {
                secret
            };
            found.insert(secret.path.clone(), secret);
        }
        Ok(paths.iter().filter_map(|p| found.remove(p)).collect())
    }
}
