//! The clients of MongoStore.

use super::*;

pub(super) fn client_document(client: &ApiClient) -> Document {
    let limits = |map: &BTreeMap<String, i64>| -> Document {
        map.iter()
            .map(|(queue, limit)| (queue.clone(), Bson::Int64(*limit)))
            .collect()
    };
    doc! {
        "client_id": &client.client_id,
        "client_secret_hash": &client.secret_hash,
        "role": client.role.as_str(),
        "max_priority": limits(&client.max_priority),
        "allowed_queues": &client.allowed_queues,
        "max_reservation_time": limits(&client.max_reservation_time),
    }
}

pub(super) fn client_from_document(document: Document) -> Result<ApiClient> {
    let corrupt = |what: &str| {
        Error::backend(
            "reading a client",
            format!("client document without {what}"),
        )
    };
    let limits = |key: &str| -> BTreeMap<String, i64> {
        document
            .get_document(key)
            .map(|map| {
                map.keys()
                    .map(|queue| (queue.clone(), int(map, queue)))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ApiClient {
        client_id: document
            .get_str("client_id")
            .map_err(|_| corrupt("a client_id"))?
            .to_owned(),
        // Upstream's OIDC clients have no secret (they cannot log in with
        // one), and a client without a role is a contributor there.
        secret_hash: document
            .get_str("client_secret_hash")
            .unwrap_or_default()
            .to_owned(),
        role: match document.get_str("role") {
            Err(_) => Role::Contributor,
            Ok(role) => Role::parse(role).ok_or_else(|| corrupt("a known role"))?,
        },
        max_priority: limits("max_priority"),
        allowed_queues: document
            .get_array("allowed_queues")
            .map(|queues| {
                queues
                    .iter()
                    .filter_map(|q| q.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        max_reservation_time: limits("max_reservation_time"),
    })
}

/// A restriction; its owners by client id.
pub(super) fn restriction_from_document(document: &Document) -> RestrictedQueue {
    let mut owners: Vec<String> = document
        .get_array("owners")
        .map(|owners| {
            owners
                .iter()
                .filter_map(|o| o.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    owners.sort_unstable();
    owners.dedup();
    RestrictedQueue {
        queue: document
            .get_str("queue_name")
            .unwrap_or_default()
            .to_owned(),
        owners,
    }
}

#[async_trait]
impl ClientStore for MongoStore {
    async fn get_client(&self, client_id: &str) -> Result<Option<ApiClient>> {
        self.clients()
            .find_one(doc! {"client_id": client_id})
            .await
            .map_err(|e| Error::backend("reading a client", e))?
            .map(client_from_document)
            .transpose()
    }

    async fn list_clients(&self) -> Result<Vec<ApiClient>> {
        let documents = collect_all(
            self.clients().find(doc! {}).sort(doc! {"client_id": 1}),
            "reading clients",
        )
        .await?;
        documents.into_iter().map(client_from_document).collect()
    }

    async fn put_client(&self, client: &ApiClient) -> Result<bool> {
        let document = client_document(client);
        check_size(&document)?;
        let clients = self.clients();
        let put = || {
            clients
                .replace_one(doc! {"client_id": &client.client_id}, document.clone())
                .upsert(true)
        };
        // Two concurrent creations of one client: the unique index refuses
        // the second upsert, which then replaces the first's document.
        let replaced = match put().await {
            Err(e) if is_duplicate_key(&e) => put().await,
            other => other,
        }
        .map_err(|e| write_error("storing a client", e))?;
        Ok(replaced.upserted_id.is_some())
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        let context = "deleting a client";
        let deleted = self
            .clients()
            .delete_one(doc! {"client_id": client_id})
            .await
            .map_err(|e| Error::backend(context, e))?;
        self.db
            .collection::<Document>(REFRESH_TOKENS)
            .delete_many(doc! {"client_id": client_id})
            .await
            .map_err(|e| Error::backend(context, e))?;
        self.secrets()
            .delete_many(doc! {"client_id": client_id})
            .await
            .map_err(|e| Error::backend(context, e))?;
        // Its agent names are free for the next agent client.
        self.agent_owners()
            .delete_many(doc! {"client_id": client_id})
            .await
            .map_err(|e| Error::backend(context, e))?;
        // The restrictions stay, even without owners.
        self.restricted_queues()
            .update_many(
                doc! {"owners": client_id},
                doc! {"$pull": {"owners": client_id}},
            )
            .await
            .map_err(|e| Error::backend(context, e))?;
        Ok(deleted.deleted_count == 1)
    }

    async fn list_restricted_queues(&self) -> Result<Vec<RestrictedQueue>> {
        let documents = collect_all(
            self.restricted_queues()
                .find(doc! {})
                .sort(doc! {"queue_name": 1}),
            "reading restricted queues",
        )
        .await?;
        Ok(documents.iter().map(restriction_from_document).collect())
    }

    async fn get_restricted_queue(&self, queue: &str) -> Result<Option<RestrictedQueue>> {
        let found = self
            .restricted_queues()
            .find_one(doc! {"queue_name": queue})
            .await
            .map_err(|e| Error::backend("reading a restricted queue", e))?;
        Ok(found.as_ref().map(restriction_from_document))
    }

    async fn add_queue_owner(&self, queue: &str, client_id: &str) -> Result<bool> {
        let context = "adding a queue owner";
        let client = self
            .clients()
            .find_one(doc! {"client_id": client_id})
            .projection(doc! {"_id": 1})
            .await
            .map_err(|e| Error::backend(context, e))?;
        if client.is_none() {
            return Ok(false);
        }
        let restricted = self.restricted_queues();
        let restrict = || {
            restricted
                .update_one(
                    doc! {"queue_name": queue},
                    doc! {"$addToSet": {"owners": client_id}},
                )
                .upsert(true)
        };
        // Two concurrent first owners: the unique index refuses the second
        // upsert, which then finds the queue restricted.
        let added = match restrict().await {
            Err(e) if is_duplicate_key(&e) => restrict().await,
            other => other,
        }
        .map_err(|e| Error::backend(context, e))?;
        // Granting the queue is also the check that the client still
        // exists: `delete_client` removes the client before its ownerships,
        // so a client deleted after this point loses the ownership there,
        // and one deleted before it loses it here.
        let granted = self
            .clients()
            .update_one(
                doc! {"client_id": client_id},
                doc! {"$addToSet": {"allowed_queues": queue}},
            )
            .await
            .map_err(|e| Error::backend(context, e))?;
        if granted.matched_count == 1 {
            return Ok(true);
        }
        restricted
            .update_one(
                doc! {"queue_name": queue},
                doc! {"$pull": {"owners": client_id}},
            )
            .await
            .map_err(|e| Error::backend(context, e))?;
        if added.upserted_id.is_some() {
            // The restriction was this call's own doing: undone too, unless
            // another owner has joined meanwhile.
            restricted
                .delete_one(doc! {"queue_name": queue, "owners": {"$size": 0}})
                .await
                .map_err(|e| Error::backend(context, e))?;
        }
        Ok(false)
    }

    async fn remove_queue_owner(&self, queue: &str, client_id: &str) -> Result<OwnerRemoval> {
        let context = "removing a queue owner";
        let pulled = self
            .restricted_queues()
            .update_one(
                doc! {"queue_name": queue, "owners": client_id},
                doc! {"$pull": {"owners": client_id}},
            )
            .await
            .map_err(|e| Error::backend(context, e))?;
        if pulled.matched_count == 0 {
            let restricted = self
                .restricted_queues()
                .find_one(doc! {"queue_name": queue})
                .projection(doc! {"_id": 1})
                .await
                .map_err(|e| Error::backend(context, e))?;
            return Ok(match restricted {
                Some(_) => OwnerRemoval::NotOwner,
                None => OwnerRemoval::NotRestricted,
            });
        }
        self.clients()
            .update_one(
                doc! {"client_id": client_id},
                doc! {"$pull": {"allowed_queues": queue}},
            )
            .await
            .map_err(|e| Error::backend(context, e))?;
        // Only when no owner is left (one may have been added meanwhile).
        let ended = self
            .restricted_queues()
            .delete_one(doc! {"queue_name": queue, "owners": {"$size": 0}})
            .await
            .map_err(|e| Error::backend(context, e))?;
        Ok(OwnerRemoval::Removed {
            restriction_ended: ended.deleted_count == 1,
        })
    }
}
