//! The clients of SqliteStore.

use super::*;

pub(super) const CLIENT_COLUMNS: &str =
    "client_id, client_secret_hash, role, max_priority, allowed_queues, \
                              max_reservation_time";

pub(super) fn client_from_row(row: &Row<'_>) -> rusqlite::Result<Client> {
    let role: String = row.get(2)?;
    let role = Role::parse(&role).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown role {role:?}").into(),
        )
    })?;
    let max_priority: String = row.get(3)?;
    let allowed_queues: String = row.get(4)?;
    let max_reservation_time: String = row.get(5)?;
    Ok(Client {
        client_id: row.get(0)?,
        secret_hash: row.get(1)?,
        role,
        max_priority: serde_json::from_str(&max_priority).unwrap_or_default(),
        allowed_queues: serde_json::from_str(&allowed_queues).unwrap_or_default(),
        max_reservation_time: serde_json::from_str(&max_reservation_time).unwrap_or_default(),
    })
}

pub(super) fn load_client(conn: &Connection, client_id: &str) -> rusqlite::Result<Option<Client>> {
    conn.prepare_cached(&format!(
        "SELECT {CLIENT_COLUMNS} FROM client_permissions WHERE client_id = ?1"
    ))?
    .query_row([client_id], client_from_row)
    .optional()
}

pub(super) fn save_client(conn: &Connection, client: &Client) -> rusqlite::Result<()> {
    let json = |value: serde_json::Result<String>| value.unwrap_or_else(|_| "null".into());
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO client_permissions ({CLIENT_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))?
    .execute(params![
        client.client_id,
        client.secret_hash,
        client.role.as_str(),
        json(serde_json::to_string(&client.max_priority)),
        json(serde_json::to_string(&client.allowed_queues)),
        json(serde_json::to_string(&client.max_reservation_time)),
    ])?;
    Ok(())
}

pub(super) fn load_restriction(
    conn: &Connection,
    queue: &str,
) -> rusqlite::Result<Option<RestrictedQueue>> {
    let restricted = conn
        .prepare_cached("SELECT 1 FROM restricted_queues WHERE queue_name = ?1")?
        .exists([queue])?;
    if !restricted {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT client_id FROM restricted_queue_owners WHERE queue_name = ?1 ORDER BY client_id",
    )?;
    let owners = stmt
        .query_map([queue], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(RestrictedQueue {
        queue: queue.to_owned(),
        owners,
    }))
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn get_client(&self, client_id: &str) -> Result<Option<Client>> {
        let client_id = client_id.to_owned();
        self.read_now("reading a client", move |conn| {
            load_client(conn, &client_id)
        })
    }

    async fn list_clients(&self) -> Result<Vec<Client>> {
        self.read("reading clients", |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM client_permissions ORDER BY client_id"
            ))?;
            let rows = stmt.query_map([], client_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn put_client(&self, client: &Client) -> Result<bool> {
        let client = client.clone();
        self.write("storing a client", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let existed = tx
                .prepare_cached("SELECT 1 FROM client_permissions WHERE client_id = ?1")?
                .exists([&client.client_id])?;
            save_client(&tx, &client)?;
            tx.commit()?;
            Ok(!existed)
        })
        .await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        let client_id = client_id.to_owned();
        self.write("deleting a client", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let deleted = tx
                .prepare_cached("DELETE FROM client_permissions WHERE client_id = ?1")?
                .execute([&client_id])?;
            tx.prepare_cached("DELETE FROM refresh_tokens WHERE client_id = ?1")?
                .execute([&client_id])?;
            tx.prepare_cached("DELETE FROM secrets WHERE client_id = ?1")?
                .execute([&client_id])?;
            // Its agent names are free for the next agent client.
            tx.prepare_cached("DELETE FROM agent_owners WHERE client_id = ?1")?
                .execute([&client_id])?;
            // The restrictions stay, even without owners.
            tx.prepare_cached("DELETE FROM restricted_queue_owners WHERE client_id = ?1")?
                .execute([&client_id])?;
            tx.commit()?;
            Ok(deleted == 1)
        })
        .await
    }

    async fn list_restricted_queues(&self) -> Result<Vec<RestrictedQueue>> {
        self.read_now("reading restricted queues", |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT r.queue_name, o.client_id FROM restricted_queues r \
                 LEFT JOIN restricted_queue_owners o ON o.queue_name = r.queue_name \
                 ORDER BY r.queue_name, o.client_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            let mut out: Vec<RestrictedQueue> = Vec::new();
            for row in rows {
                let (queue, owner) = row?;
                if out.last().is_none_or(|last| last.queue != queue) {
                    out.push(RestrictedQueue {
                        queue,
                        owners: Vec::new(),
                    });
                }
                if let (Some(owner), Some(last)) = (owner, out.last_mut()) {
                    last.owners.push(owner);
                }
            }
            Ok(out)
        })
    }

    async fn get_restricted_queue(&self, queue: &str) -> Result<Option<RestrictedQueue>> {
        let queue = queue.to_owned();
        self.read_now("reading a restricted queue", move |conn| {
            load_restriction(conn, &queue)
        })
    }

    async fn add_queue_owner(&self, queue: &str, client_id: &str) -> Result<bool> {
        let (queue, client_id) = (queue.to_owned(), client_id.to_owned());
        self.write("adding a queue owner", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let Some(mut client) = load_client(&tx, &client_id)? else {
                return Ok(false);
            };
            tx.prepare_cached("INSERT OR IGNORE INTO restricted_queues (queue_name) VALUES (?1)")?
                .execute([&queue])?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO restricted_queue_owners (queue_name, client_id) \
                 VALUES (?1, ?2)",
            )?
            .execute([&queue, &client_id])?;
            if !client.allowed_queues.contains(&queue) {
                client.allowed_queues.push(queue);
                save_client(&tx, &client)?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn remove_queue_owner(&self, queue: &str, client_id: &str) -> Result<OwnerRemoval> {
        let (queue, client_id) = (queue.to_owned(), client_id.to_owned());
        self.write("removing a queue owner", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let restricted = tx
                .prepare_cached("SELECT 1 FROM restricted_queues WHERE queue_name = ?1")?
                .exists([&queue])?;
            if !restricted {
                return Ok(OwnerRemoval::NotRestricted);
            }
            let removed = tx
                .prepare_cached(
                    "DELETE FROM restricted_queue_owners WHERE queue_name = ?1 AND client_id = ?2",
                )?
                .execute([&queue, &client_id])?;
            if removed == 0 {
                return Ok(OwnerRemoval::NotOwner);
            }
            if let Some(mut client) = load_client(&tx, &client_id)? {
                let before = client.allowed_queues.len();
                client.allowed_queues.retain(|q| *q != queue);
                if client.allowed_queues.len() != before {
                    save_client(&tx, &client)?;
                }
            }
            let restriction_ended = tx
                .prepare_cached(
                    "DELETE FROM restricted_queues WHERE queue_name = ?1 AND NOT EXISTS \
                     (SELECT 1 FROM restricted_queue_owners WHERE queue_name = ?1)",
                )?
                .execute([&queue])?
                == 1;
            tx.commit()?;
            Ok(OwnerRemoval::Removed { restriction_ended })
        })
        .await
    }
}
