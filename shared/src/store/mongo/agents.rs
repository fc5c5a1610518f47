//! The agents of MongoStore.

use super::*;
use crate::agents::{JOB_ID, SUBMITTED_BY};

/// Compare-and-set attempts of a provision streak under contention.
pub(super) const PROVISION_ATTEMPTS: usize = 64;

/// Reads an agent document: upstream keeps the agent's fields at the top.
pub(super) fn agent_from_document(mut document: Document) -> Agent {
    document.remove("_id");
    let name = document.get_str("name").unwrap_or_default().to_owned();
    document.remove("name");
    let updated_at = document
        .get_datetime("updated_at")
        .map(|d| d.timestamp_millis())
        .unwrap_or(0);
    document.remove("updated_at");
    let last_heard = document
        .get_datetime(crate::agents::LAST_HEARD)
        .ok()
        .map(|d| Timestamp::from_millis(d.timestamp_millis()));
    document.remove(crate::agents::LAST_HEARD);
    let strings = |value: Option<Bson>| -> Vec<Bson> {
        match value {
            Some(Bson::Array(items)) => items,
            _ => Vec::new(),
        }
    };
    let log = strings(document.remove("log"))
        .into_iter()
        .filter_map(|b| b.as_str().map(str::to_owned))
        .collect();
    let provision_log = strings(document.remove("provision_log"))
        .into_iter()
        .map(Bson::into_relaxed_extjson)
        .collect();
    let streak = match (
        document.remove("provision_streak_type"),
        document.remove("provision_streak_count"),
    ) {
        (Some(Bson::String(kind)), Some(count)) => {
            let count = match count {
                Bson::Int64(n) => n,
                Bson::Int32(n) => i64::from(n),
                _ => 0,
            };
            Some((kind, count))
        }
        _ => None,
    };
    Agent {
        name,
        fields: to_json_map(document),
        log,
        updated_at: Timestamp::from_millis(updated_at),
        provision_streak: streak,
        provision_log,
        last_heard,
    }
}

fn owner_from_document(document: &Document) -> AgentOwner {
    AgentOwner {
        name: document.get_str("name").unwrap_or_default().to_owned(),
        client_id: document.get_str("client_id").unwrap_or_default().to_owned(),
        bound_at: Timestamp::from_millis(
            document
                .get_datetime("bound_at")
                .map(|d| d.timestamp_millis())
                .unwrap_or(0),
        ),
    }
}

impl MongoStore {
    /// Writes an update: the stamps are computed on the agent as read just
    /// before (a concurrent change of the same field between the read and
    /// the write may stamp twice or not at all); `create`: an unknown agent
    /// is created, else `false` and nothing written.
    async fn write_agent(
        &self,
        name: &str,
        update: &AgentUpdate,
        now: Timestamp,
        create: bool,
    ) -> Result<bool> {
        let current = self.get_agent(name).await?;
        if current.is_none() && !create {
            return Ok(false);
        }
        let changes = update.changes(current.as_ref().map(|a| &a.fields), now);
        let mut set = to_document(&changes.set, "agent")?;
        set.insert("updated_at", date(now));
        if update.heard {
            set.insert(crate::agents::LAST_HEARD, date(now));
        }
        check_size(&set)?;
        let mut change = doc! {"$set": set};
        if !changes.unset.is_empty() {
            let unset: Document = changes
                .unset
                .iter()
                .map(|f| (f.clone(), Bson::String(String::new())))
                .collect();
            change.insert("$unset", unset);
        }
        if !update.log.is_empty() {
            change.insert(
                "$push",
                doc! {"log": {"$each": &update.log, "$slice": -(crate::agents::AGENT_LOG_KEEP as i64)}},
            );
        }
        let written = self
            .db
            .collection::<Document>(AGENTS)
            .update_one(doc! {"name": name}, change)
            .upsert(create)
            .await
            .map_err(|e| Error::backend("storing an agent", e))?;
        Ok(create || written.matched_count == 1)
    }
}

#[async_trait]
impl AgentStore for MongoStore {
    async fn upsert_agent(&self, name: &str, update: &AgentUpdate, now: Timestamp) -> Result<()> {
        self.write_agent(name, update, now, true).await.map(|_| ())
    }

    async fn update_agent(&self, name: &str, update: &AgentUpdate, now: Timestamp) -> Result<bool> {
        self.write_agent(name, update, now, false).await
    }

    async fn get_agent(&self, name: &str) -> Result<Option<Agent>> {
        let found = self
            .db
            .collection::<Document>(AGENTS)
            .find_one(doc! {"name": name})
            .await
            .map_err(|e| Error::backend("reading an agent", e))?;
        Ok(found.map(agent_from_document))
    }

    async fn list_agents(&self) -> Result<Vec<Agent>> {
        let documents = collect_all(
            self.db
                .collection::<Document>(AGENTS)
                .find(doc! {})
                .sort(doc! {"name": 1}),
            "reading agents",
        )
        .await?;
        Ok(documents.into_iter().map(agent_from_document).collect())
    }

    async fn record_provision(
        &self,
        name: &str,
        entry: &ProvisionEntry,
        now: Timestamp,
    ) -> Result<bool> {
        // The streak moves by compare-and-set on the streak it was computed
        // from, so concurrent posts for one agent each count once.
        for _ in 0..PROVISION_ATTEMPTS {
            let Some(agent) = self.get_agent(name).await? else {
                return Ok(false);
            };
            let stored = bson::to_bson(&entry.to_value(now, agent.submitted_by()))
                .map_err(|e| Error::backend("recording a provision", e))?;
            let (kind, count) = agent.next_streak(entry.exit_code);
            let filter = match &agent.provision_streak {
                Some((old_kind, old_count)) => doc! {
                    "name": name, "provision_streak_type": old_kind, "provision_streak_count": old_count,
                },
                None => doc! {"name": name, "provision_streak_type": {"$exists": false}},
            };
            let changed = self
                .db
                .collection::<Document>(AGENTS)
                .update_one(
                    filter,
                    doc! {
                        "$set": {"provision_streak_type": kind, "provision_streak_count": count},
                        "$push": {"provision_log": {"$each": [stored], "$slice": -(crate::agents::PROVISION_LOG_KEEP as i64)}},
                    },
                )
                .await
                .map_err(|e| Error::backend("recording a provision", e))?;
            if changed.matched_count == 1 {
                return Ok(true);
            }
            tokio::task::yield_now().await;
        }
        Err(Error::backend(
            "recording a provision",
            format!("the agent {name} changed {PROVISION_ATTEMPTS} times while its streak was being updated"),
        ))
    }

    async fn set_agent_job(
        &self,
        name: &str,
        job_id: Uuid,
        submitted_by: Option<&str>,
        _now: Timestamp,
    ) -> Result<()> {
        let update = match submitted_by {
            Some(client) => doc! {"$set": {JOB_ID: job_id.to_string(), SUBMITTED_BY: client}},
            None => doc! {"$set": {JOB_ID: job_id.to_string()}, "$unset": {SUBMITTED_BY: ""}},
        };
        self.db
            .collection::<Document>(AGENTS)
            .update_one(doc! {"name": name}, update)
            .await
            .map_err(|e| Error::backend("linking an agent to its job", e))?;
        Ok(())
    }

    async fn clear_agent_job(&self, name: &str, job_id: Uuid, _now: Timestamp) -> Result<()> {
        self.db
            .collection::<Document>(AGENTS)
            .update_one(
                doc! {"name": name, JOB_ID: job_id.to_string()},
                doc! {"$set": {JOB_ID: ""}, "$unset": {SUBMITTED_BY: ""}},
            )
            .await
            .map_err(|e| Error::backend("unlinking an agent from its job", e))?;
        Ok(())
    }

    async fn mark_heard(&self, name: &str, now: Timestamp) -> Result<()> {
        // `$max`: a late write from a slower process never moves it back.
        self.db
            .collection::<Document>(AGENTS)
            .update_one(
                doc! {"name": name},
                doc! {"$max": {crate::agents::LAST_HEARD: date(now)}},
            )
            .await
            .map_err(|e| Error::backend("recording that an agent was heard from", e))?;
        Ok(())
    }

    async fn agent_owner(&self, name: &str) -> Result<Option<AgentOwner>> {
        let found = self
            .agent_owners()
            .find_one(doc! {"_id": agent_name_key(name)})
            .await
            .map_err(|e| Error::backend("reading an agent's owner", e))?;
        Ok(found.as_ref().map(owner_from_document))
    }

    async fn bind_agent_name(
        &self,
        name: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<AgentOwner> {
        let context = "binding an agent name";
        let owners = self.agent_owners();
        let bind = || {
            owners
                .find_one_and_update(
                    doc! {"_id": agent_name_key(name)},
                    doc! {"$setOnInsert": {"name": name, "client_id": client_id, "bound_at": date(now)}},
                )
                .upsert(true)
                .return_document(ReturnDocument::After)
        };
        let bound = match bind().await {
            // Two first binds at once: the other insert won, so this one
            // now finds the name owned.
            Err(e) if is_duplicate_key(&e) => bind().await,
            other => other,
        }
        .map_err(|e| Error::backend(context, e))?;
        bound
            .as_ref()
            .map(owner_from_document)
            .ok_or_else(|| Error::backend(context, "the upsert answered no document"))
    }

    async fn set_agent_owner(
        &self,
        name: &str,
        client_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<AgentOwner>> {
        let context = "reassigning an agent name";
        let key = agent_name_key(name);
        let owners = self.agent_owners();
        let previous = match client_id {
            Some(client_id) => {
                let replace = || {
                    owners
                        .find_one_and_replace(
                            doc! {"_id": &key},
                            doc! {"_id": &key, "name": name, "client_id": client_id, "bound_at": date(now)},
                        )
                        .upsert(true)
                        .return_document(ReturnDocument::Before)
                };
                match replace().await {
                    Err(e) if is_duplicate_key(&e) => replace().await,
                    other => other,
                }
            }
            None => owners.find_one_and_delete(doc! {"_id": &key}).await,
        }
        .map_err(|e| Error::backend(context, e))?;
        Ok(previous.as_ref().map(owner_from_document))
    }
}
