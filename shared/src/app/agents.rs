//! Agents: their data and cookie, provision logs, and the queues and
//! images they advertise.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::App;
use super::Caller;
use crate::agents::{
    validate_agent_name, validate_agent_update, validate_agent_update_v2, validate_commanded_mode,
    validate_images, validate_provision_entry, validate_queues, Agent, AgentOwner,
};
use crate::clients::RestrictedQueue;
use crate::job::Job;
use crate::permissions;
use crate::role::Role;
use crate::{Error, Result, Timestamp};

/// Agents with what their views show beside them: the restricted queues
/// (for each agent's `restricted_to`).
#[derive(Debug)]
pub struct Agents {
    pub agents: Vec<Agent>,
    pub restricted: Vec<RestrictedQueue>,
    /// The job each agent runs (v2 views), by agent name; only filled
    /// by the v2 reads.
    pub jobs: BTreeMap<String, Job>,
    /// Agents last heard from before this instant are shown silent
    /// ([`Agent::silent_since`]).
    pub offline_before: Timestamp,
}

/// Who is stamped as `*_changed_by` for a post: the client, except for an
/// agent's own report (upstream stamps no `_by` then) and anonymous posts.
fn changed_by(caller: &Caller) -> Option<String> {
    match caller.role() {
        Some(Role::Agent) | None => None,
        Some(_) => caller.client_id().map(str::to_owned),
    }
}

fn unknown_agent(name: &str) -> Error {
    Error::NotFound(format!("Agent '{name}' does not exist."))
}

/// What an admin's reassignment of an agent name did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerChange {
    pub name: String,
    /// The owner now; `None`: released.
    pub client_id: Option<String>,
    pub previous: Option<AgentOwner>,
}

/// Whether an agent client may take a name it does not own yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Binding {
    /// A free name becomes the caller's (registration, the claim).
    Bind,
    /// A free name stays free (a provision log: nothing is written for an
    /// unknown agent).
    CheckOnly,
}

impl App {
    /// `POST /v1/agents/data/{name}`: creates or updates the agent; a flat
    /// `state` is folded into mode and sub-state.
    pub async fn post_agent_data(
        &self,
        caller: &Caller,
        name: &str,
        body: Map<String, Value>,
        now: Timestamp,
    ) -> Result<()> {
        validate_agent_name(name)?;
        let mut update = validate_agent_update(body)?;
        self.check_agent_identity(caller, name, Binding::Bind, now)
            .await?;
        update.by = changed_by(caller);
        // The agent's own report (not an operator's edit) is its word.
        update.heard = update.by.is_none();
        self.store.upsert_agent(name, &update, now).await?;
        if update.heard {
            self.heard_in_write(name, now);
        }
        self.touch_agent_lease(name, now).await;
        Ok(())
    }

    /// Outside the open mode an agent client acts only under agent names
    /// of its own ([`permissions::may_act_as_agent`]); a name no client
    /// owns yet becomes the caller's (`Binding::Bind`). Admins, managers
    /// and the open mode are not bound ([`permissions::binds_agent_names`]).
    pub(super) async fn check_agent_identity(
        &self,
        caller: &Caller,
        name: &str,
        binding: Binding,
        now: Timestamp,
    ) -> Result<()> {
        if !permissions::binds_agent_names(caller, self.settings.auth_mode) {
            return Ok(());
        }
        let Some(client_id) = caller.client_id() else {
            return Ok(());
        };
        // Every claim comes here: a read, and a write only the first time.
        let owner = match self.store.agent_owner(name).await? {
            Some(owner) => owner,
            None if binding == Binding::CheckOnly => return Ok(()),
            None => {
                validate_agent_name(name)?;
                let owner = self.store.bind_agent_name(name, client_id, now).await?;
                if owner.client_id == client_id {
                    tracing::info!(
                        agent = name,
                        client_id,
                        "agent name bound to its first client"
                    );
                }
                owner
            }
        };
        let allowed = permissions::may_act_as_agent(caller, name, &owner);
        if allowed.is_err() {
            tracing::warn!(agent = name, client_id, owner = %owner.client_id, "agent name refused: another client's");
        }
        allowed
    }

    /// `PUT /v2/agents/{name}/owner` `{"client_id": "<agent client>" | null}`
    /// (admins only): the name, matched whatever its case, becomes that
    /// client's whoever held it, or (`null`) is released for the next
    /// agent client that registers or claims with it. The agent need not
    /// exist: a name may be assigned before its agent first starts.
    pub async fn assign_agent_owner(
        &self,
        name: &str,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<OwnerChange> {
        validate_agent_name(name)?;
        let mut fields = crate::validation::FieldErrors::new();
        for key in body.keys().filter(|k| *k != "client_id") {
            fields.add(key.clone(), "Unknown field.");
        }
        let client_id = match body.get("client_id") {
            None => {
                fields.add(
                    "client_id",
                    "Missing data for required field (null releases the name).",
                );
                None
            }
            Some(Value::Null) => None,
            Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
            Some(_) => {
                fields.add(
                    "client_id",
                    "Must be a client id, or null to release the name.",
                );
                None
            }
        };
        fields.into_result()?;
        if let Some(id) = &client_id {
            let client = self
                .store
                .get_client(id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("Client '{id}' does not exist.")))?;
            if client.role != Role::Agent {
                return Err(Error::invalid_field(
                    "client_id",
                    format!(
                        "Client '{id}' has the role {}: agent names belong to clients of the role agent.",
                        client.role.as_str()
                    ),
                ));
            }
        }
        let previous = self
            .store
            .set_agent_owner(name, client_id.as_deref(), now)
            .await?;
        tracing::info!(agent = name, client_id = ?client_id, previous = ?previous.as_ref().map(|o| &o.client_id), "agent name reassigned");
        Ok(OwnerChange {
            name: name.to_owned(),
            client_id,
            previous,
        })
    }

    /// `POST /v2/agents/{name}/data`: the agent's own report of its mode
    /// and sub-state (route: agents only).
    pub async fn post_agent_data_v2(
        &self,
        caller: &Caller,
        name: &str,
        body: Map<String, Value>,
        now: Timestamp,
    ) -> Result<()> {
        validate_agent_name(name)?;
        let mut update = validate_agent_update_v2(body)?;
        self.check_agent_identity(caller, name, Binding::Bind, now)
            .await?;
        update.by = changed_by(caller);
        update.heard = true;
        self.store.upsert_agent(name, &update, now).await?;
        self.heard_in_write(name, now);
        Ok(())
    }

    /// `PATCH /v2/agents/{name}/commanded_mode`: an admin's command; an
    /// unknown agent is a 404 and is never created.
    pub async fn command_agent_mode(
        &self,
        caller: &Caller,
        name: &str,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<()> {
        let mut update = validate_commanded_mode(body)?;
        update.by = caller.client_id().map(str::to_owned);
        if self.store.update_agent(name, &update, now).await? {
            tracing::info!(agent = name, commanded_mode = ?update.fields.get(crate::agents::COMMANDED_MODE), "agent mode commanded");
            Ok(())
        } else {
            Err(unknown_agent(name))
        }
    }

    /// `GET /v1/agents/data`: every agent.
    pub async fn list_agents(&self, now: Timestamp) -> Result<Agents> {
        let agents = self.store.list_agents().await?;
        let restricted = self.store.list_restricted_queues().await?;
        Ok(Agents {
            agents,
            restricted,
            jobs: BTreeMap::new(),
            offline_before: self.offline_before(now),
        })
    }

    /// `GET /v2/agents/data`: every agent with the job it runs.
    pub async fn list_agents_v2(&self, now: Timestamp) -> Result<Agents> {
        let listing = self.list_agents(now).await?;
        self.with_jobs(listing).await
    }

    /// `GET /v2/agents/{name}/data`: one agent with the job it runs.
    pub async fn get_agent_v2(
        &self,
        caller: &Caller,
        name: &str,
        now: Timestamp,
    ) -> Result<Agents> {
        let listing = self.get_agent(caller, name, now).await?;
        self.with_jobs(listing).await
    }

    async fn with_jobs(&self, mut listing: Agents) -> Result<Agents> {
        for agent in &listing.agents {
            let Some(job_id) = agent.job_id().and_then(|id| uuid::Uuid::parse_str(id).ok()) else {
                continue;
            };
            if let Some(job) = self.store.get_job(job_id).await? {
                listing.jobs.insert(agent.name.clone(), job);
            }
        }
        Ok(listing)
    }

    /// `GET /v1/agents/data/{name}`: one agent, 404 when unknown. The
    /// agent reading its own data is heard from.
    pub async fn get_agent(&self, caller: &Caller, name: &str, now: Timestamp) -> Result<Agents> {
        let agent = self
            .store
            .get_agent(name)
            .await?
            .ok_or_else(|| unknown_agent(name))?;
        self.heard_reading_itself(caller, &agent, now).await;
        let restricted = self.store.list_restricted_queues().await?;
        Ok(Agents {
            agents: vec![agent],
            restricted,
            jobs: BTreeMap::new(),
            offline_before: self.offline_before(now),
        })
    }

    /// `POST /v1/agents/provision_logs/{name}`: nothing is written for an
    /// unknown agent; only the agent's own client (or an operator) posts.
    pub async fn post_provision_log(
        &self,
        caller: &Caller,
        name: &str,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<()> {
        let entry = validate_provision_entry(body)?;
        self.check_agent_identity(caller, name, Binding::CheckOnly, now)
            .await?;
        if self.store.record_provision(name, &entry, now).await? {
            if caller.role().is_none_or(|r| r == Role::Agent) {
                self.heard_from(name, None, now).await;
            }
            Ok(())
        } else {
            Err(unknown_agent(name))
        }
    }

    /// `POST /v1/agents/queues`: `{queue: description}`.
    pub async fn advertise_queues(&self, body: &Map<String, Value>, now: Timestamp) -> Result<()> {
        let queues = validate_queues(body)?;
        self.store.upsert_queues(&queues, now).await
    }

    /// `GET /v1/agents/queues`: every advertised queue with its description.
    pub async fn list_queues(&self) -> Result<BTreeMap<String, String>> {
        self.store.list_queues().await
    }

    /// `POST /v1/agents/images`: `{queue: {image: provision data}}`.
    pub async fn advertise_images(&self, body: &Map<String, Value>, now: Timestamp) -> Result<()> {
        let images = validate_images(body)?;
        self.store.set_images(&images, now).await
    }

    /// `GET /v1/agents/images/{queue}`: empty when none are known.
    pub async fn get_images(&self, queue: &str) -> Result<BTreeMap<String, String>> {
        self.store.get_images(queue).await
    }
}
