//! Agents: their data and cookie, provision logs, and the queues and
//! images they advertise.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::App;
use crate::agents::{
    validate_agent_name, validate_agent_update, validate_images, validate_provision_entry,
    validate_queues, Agent,
};
use crate::clients::RestrictedQueue;
use crate::{Error, Result, Timestamp};

/// Agents with what their views show beside them: the restricted queues
/// (for each agent's `restricted_to`).
#[derive(Debug)]
pub struct Agents {
    pub agents: Vec<Agent>,
    pub restricted: Vec<RestrictedQueue>,
}

fn unknown_agent(name: &str) -> Error {
    Error::NotFound(format!("Agent '{name}' does not exist."))
}

impl App {
    /// `POST /v1/agents/data/{name}`: creates or updates the agent.
    pub async fn post_agent_data(
        &self,
        name: &str,
        body: Map<String, Value>,
        now: Timestamp,
    ) -> Result<()> {
        validate_agent_name(name)?;
        let update = validate_agent_update(body)?;
        self.store.upsert_agent(name, &update, now).await
    }

    /// `GET /v1/agents/data`: every agent.
    pub async fn list_agents(&self) -> Result<Agents> {
        let agents = self.store.list_agents().await?;
        let restricted = self.store.list_restricted_queues().await?;
        Ok(Agents { agents, restricted })
    }

    /// `GET /v1/agents/data/{name}`: one agent, 404 when unknown.
    pub async fn get_agent(&self, name: &str) -> Result<Agents> {
        let agent = self
            .store
            .get_agent(name)
            .await?
            .ok_or_else(|| unknown_agent(name))?;
        let restricted = self.store.list_restricted_queues().await?;
        Ok(Agents {
            agents: vec![agent],
            restricted,
        })
    }

    /// `POST /v1/agents/provision_logs/{name}`: nothing is written for an
    /// unknown agent.
    pub async fn post_provision_log(
        &self,
        name: &str,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<()> {
        let entry = validate_provision_entry(body)?;
        if self.store.record_provision(name, &entry, now).await? {
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
