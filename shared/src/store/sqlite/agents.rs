//! The agents of SqliteStore.

use super::*;

pub(super) const AGENT_COLUMNS: &str =
    "name, fields, log, updated_at, streak_type, streak_count, provision_log, last_heard";

pub(super) fn agent_from_row(row: &Row<'_>) -> rusqlite::Result<Agent> {
    let fields: String = row.get(1)?;
    let log: String = row.get(2)?;
    let streak_type: Option<String> = row.get(4)?;
    let streak_count: Option<i64> = row.get(5)?;
    let provision_log: String = row.get(6)?;
    Ok(Agent {
        name: row.get(0)?,
        fields: parse_object(&fields),
        log: serde_json::from_str(&log).unwrap_or_default(),
        updated_at: Timestamp::from_millis(row.get(3)?),
        provision_streak: streak_type.zip(streak_count),
        provision_log: serde_json::from_str(&provision_log).unwrap_or_default(),
        last_heard: row.get::<_, Option<i64>>(7)?.map(Timestamp::from_millis),
    })
}

fn owner_from_row(row: &Row<'_>) -> rusqlite::Result<AgentOwner> {
    Ok(AgentOwner {
        name: row.get(0)?,
        client_id: row.get(1)?,
        bound_at: Timestamp::from_millis(row.get(2)?),
    })
}

fn load_owner(conn: &Connection, key: &str) -> rusqlite::Result<Option<AgentOwner>> {
    conn.prepare_cached("SELECT name, client_id, bound_at FROM agent_owners WHERE name_key = ?1")?
        .query_row([key], owner_from_row)
        .optional()
}

pub(super) fn load_agent(conn: &Connection, name: &str) -> rusqlite::Result<Option<Agent>> {
    conn.prepare_cached(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?1"
    ))?
    .query_row([name], agent_from_row)
    .optional()
}

pub(super) fn save_agent(conn: &Connection, agent: &Agent) -> rusqlite::Result<()> {
    let (streak_type, streak_count) = agent.provision_streak.clone().unzip();
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO agents ({AGENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        agent.name,
        to_json(&agent.fields),
        Value::from(agent.log.clone()).to_string(),
        agent.updated_at.millis(),
        streak_type,
        streak_count,
        Value::Array(agent.provision_log.clone()).to_string(),
        agent.last_heard.map(Timestamp::millis),
    ])?;
    Ok(())
}

impl SqliteStore {
    /// Writes an update in one transaction; `create`: an unknown agent is
    /// created, else `false` and nothing written.
    async fn write_agent(
        &self,
        name: &str,
        update: &AgentUpdate,
        now: Timestamp,
        create: bool,
    ) -> Result<bool> {
        let (name, update) = (name.to_owned(), update.clone());
        self.write("storing an agent", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current = load_agent(&tx, &name)?;
            if current.is_none() && !create {
                return Ok(false);
            }
            let changes = update.changes(current.as_ref().map(|a| &a.fields), now);
            let mut agent = current.unwrap_or_else(|| Agent {
                name: name.clone(),
                fields: Map::new(),
                log: Vec::new(),
                updated_at: now,
                provision_streak: None,
                provision_log: Vec::new(),
                last_heard: None,
            });
            changes.apply(&mut agent.fields);
            agent.log.extend(update.log);
            crate::agents::keep_last(&mut agent.log, crate::agents::AGENT_LOG_KEEP);
            agent.updated_at = now;
            if update.heard {
                agent.last_heard = Some(now);
            }
            save_agent(&tx, &agent)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl AgentStore for SqliteStore {
    async fn upsert_agent(&self, name: &str, update: &AgentUpdate, now: Timestamp) -> Result<()> {
        self.write_agent(name, update, now, true).await.map(|_| ())
    }

    async fn update_agent(&self, name: &str, update: &AgentUpdate, now: Timestamp) -> Result<bool> {
        self.write_agent(name, update, now, false).await
    }

    async fn get_agent(&self, name: &str) -> Result<Option<Agent>> {
        let name = name.to_owned();
        self.read_now("reading an agent", move |conn| load_agent(conn, &name))
    }

    async fn list_agents(&self) -> Result<Vec<Agent>> {
        self.read("reading agents", |conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name"))?;
            let rows = stmt.query_map([], agent_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn record_provision(
        &self,
        name: &str,
        entry: &ProvisionEntry,
        now: Timestamp,
    ) -> Result<bool> {
        let (name, entry) = (name.to_owned(), entry.clone());
        self.write("recording a provision", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let Some(mut agent) = load_agent(&tx, &name)? else {
                return Ok(false);
            };
            let (kind, count) = agent.next_streak(entry.exit_code);
            agent.provision_streak = Some((kind.to_owned(), count));
            let stored = entry.to_value(now, agent.submitted_by());
            agent.provision_log.push(stored);
            crate::agents::keep_last(&mut agent.provision_log, crate::agents::PROVISION_LOG_KEEP);
            save_agent(&tx, &agent)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn set_agent_job(
        &self,
        name: &str,
        job_id: Uuid,
        submitted_by: Option<&str>,
        _now: Timestamp,
    ) -> Result<()> {
        let (name, submitted_by) = (name.to_owned(), submitted_by.map(str::to_owned));
        self.write("linking an agent to its job", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if let Some(mut agent) = load_agent(&tx, &name)? {
                agent.link_job(job_id, submitted_by.as_deref());
                save_agent(&tx, &agent)?;
            }
            tx.commit()
        })
        .await
    }

    async fn clear_agent_job(&self, name: &str, job_id: Uuid, _now: Timestamp) -> Result<()> {
        let name = name.to_owned();
        self.write("unlinking an agent from its job", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if let Some(mut agent) = load_agent(&tx, &name)? {
                if agent.unlink_job(job_id) {
                    save_agent(&tx, &agent)?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn mark_heard(&self, name: &str, now: Timestamp) -> Result<()> {
        let name = name.to_owned();
        self.write("recording that an agent was heard from", move |conn| {
            conn.prepare_cached(
                "UPDATE agents SET last_heard = ?2 \
                 WHERE name = ?1 AND (last_heard IS NULL OR last_heard < ?2)",
            )?
            .execute(params![name, now.millis()])?;
            Ok(())
        })
        .await
    }

    async fn agent_owner(&self, name: &str) -> Result<Option<AgentOwner>> {
        let key = agent_name_key(name);
        self.read_now("reading an agent's owner", move |conn| {
            load_owner(conn, &key)
        })
    }

    async fn bind_agent_name(
        &self,
        name: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<AgentOwner> {
        let (name, client_id) = (name.to_owned(), client_id.to_owned());
        self.write("binding an agent name", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let key = agent_name_key(&name);
            tx.prepare_cached(
                "INSERT INTO agent_owners (name_key, name, client_id, bound_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name_key) DO NOTHING",
            )?
            .execute(params![key, name, client_id, now.millis()])?;
            let owner = load_owner(&tx, &key)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            tx.commit()?;
            Ok(owner)
        })
        .await
    }

    async fn set_agent_owner(
        &self,
        name: &str,
        client_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<AgentOwner>> {
        let (name, client_id) = (name.to_owned(), client_id.map(str::to_owned));
        self.write("reassigning an agent name", move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let key = agent_name_key(&name);
            let previous = load_owner(&tx, &key)?;
            match client_id {
                Some(client_id) => tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO agent_owners (name_key, name, client_id, bound_at) \
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![key, name, client_id, now.millis()])?,
                None => tx
                    .prepare_cached("DELETE FROM agent_owners WHERE name_key = ?1")?
                    .execute([&key])?,
            };
            tx.commit()?;
            Ok(previous)
        })
        .await
    }
}
