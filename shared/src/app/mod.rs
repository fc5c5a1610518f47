//! The use-case layer: every rule of the server, one module per aggregate.
//!
//! A handler in `functions` parses its request, makes one call here and
//! turns the answer into a view; the harness's operator commands call the
//! same functions. Nothing here knows about HTTP: answers are domain types
//! and failures are [`crate::Error`]. Permission decisions are the pure
//! functions of [`crate::permissions`]; this layer loads what they need
//! (fresh from the store, on every call) and acts on their verdict.
//!
//! | module | aggregate |
//! |---|---|
//! | [`jobs`] | submit, claim (with secrets), read, cancel, position, search |
//! | [`results`] | results, log fragments, legacy live output |
//! | [`artifacts`] | artifacts and attachments (blobs) |
//! | [`agents`] | agent data, provision logs, advertised queues and images |
//! | [`queues`] | queue views: agents, jobs, wait times |
//! | [`clients`] | callers, clients, tokens, restricted queues |
//! | [`secrets`] | per-client secrets |
//! | [`statistics`] | counts of submitted jobs per day, queue and submitter |
//! | [`events`] | the job-events webhook relay |
//! | [`job_events`] | each job's timeline of events, recorded by the others |
//! | [`dashboard`] | what the dashboard pages read: overview, queue depths, agent filters |
//! | [`leases`] | claim leases: renewals, the sweep that requeues silent agents' jobs |
//! | [`liveness`] | when each agent was last heard from; silent agents |
//! | [`gauges`] | the store-derived gauges of `/metrics` |

pub mod agents;
pub mod artifacts;
pub mod clients;
pub mod dashboard;
pub mod events;
pub mod gauges;
pub mod job_events;
pub mod jobs;
pub mod leases;
pub mod liveness;
pub mod queues;
pub mod results;
pub mod secrets;
pub mod statistics;

use std::sync::Arc;

use crate::auth::TokenKeys;
use crate::backends::Backends;
use crate::blob::BlobStore;
use crate::clients::Client;
use crate::config::{Config, LeaseConfig, Limits};
use crate::role::{AuthMode, Role};
use crate::secrets::SecretsKey;
use crate::store::Store;

pub use events::{
    RelayAnswer, TargetOutcome, TargetResult, WebhookAnswer, WebhookFailure, WebhookMethod,
    WebhookSender,
};

/// What the use cases are configured with, fixed at start-up.
pub struct Settings {
    pub limits: Limits,
    pub auth_mode: AuthMode,
    /// `None` without `JWT_SIGNING_KEY`: no token is issued or accepted.
    pub token_keys: Option<TokenKeys>,
    pub secrets_key: Option<SecretsKey>,
    /// The base URLs job events may be relayed to (`WEBHOOK_URL` and
    /// `WEBHOOK_URLS`): only their schemes, hosts and ports count.
    pub webhook_urls: Vec<String>,
    pub webhook_auth: Option<String>,
    /// Send large blobs straight between clients and the object store
    /// (presigned URLs) instead of through this process: on under Lambda,
    /// whose payloads are capped at 6 MB; off in the harness, which streams.
    pub direct_transfers: bool,
    /// Bytes of request bodies all requests may hold in memory at once.
    pub buffer_budget: u64,
    /// Claim leases and attempts.
    pub leases: LeaseConfig,
}

impl Settings {
    pub fn new(config: &Config) -> Self {
        let auth = &config.auth;
        Settings {
            limits: config.limits,
            auth_mode: auth.mode,
            token_keys: auth
                .signing_key
                .as_deref()
                .map(|key| TokenKeys::new(key.as_bytes(), auth.leeway_seconds)),
            secrets_key: auth.secrets_key.clone(),
            webhook_urls: auth.trusted_webhook_urls(),
            webhook_auth: auth.webhook_auth.clone(),
            direct_transfers: false,
            buffer_budget: config.serving.buffer_budget,
            leases: config.leases,
        }
    }
}

/// The server's use cases over its storage, built once per process (once
/// per cold start under Lambda).
pub struct App {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    settings: Settings,
    webhooks: Option<Arc<dyn WebhookSender>>,
    logins: crate::throttle::LoginThrottle,
    heard: liveness::HeardCache,
    gauges: gauges::GaugeCache,
}

impl App {
    pub fn new(settings: Settings, backends: Backends) -> Self {
        App {
            store: backends.store,
            blobs: backends.blobs,
            settings,
            webhooks: None,
            logins: Default::default(),
            heard: Default::default(),
            gauges: Default::default(),
        }
    }

    /// The way job events leave this process (an HTTP client, in `functions`).
    pub fn with_webhook_sender(mut self, sender: Arc<dyn WebhookSender>) -> Self {
        self.webhooks = Some(sender);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The store itself, for operator tools and tests that seed records;
    /// requests go through the use cases.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

/// Who makes a request: a client loaded from the store for this request,
/// or nobody (anonymous).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub client: Option<Client>,
    /// The `agent_name` cookie the request carried, if any: which agent
    /// speaks, for the claim lease of the job it posts or reads about.
    pub agent: Option<String>,
}

impl Caller {
    pub fn anonymous() -> Self {
        Caller::default()
    }

    pub fn client_id(&self) -> Option<&str> {
        self.client.as_ref().map(|c| c.client_id.as_str())
    }

    pub fn role(&self) -> Option<Role> {
        self.client.as_ref().map(|c| c.role)
    }
}
