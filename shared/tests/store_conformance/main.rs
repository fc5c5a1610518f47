//! One conformance suite for the store traits, run unchanged against every
//! implementation: the embedded SQLite store and MongoDB (a real
//! MongoDB-wire-compatible server; see `testflinger_shared::testing`).
//! One module per aggregate, as the traits are; the rules both stores must
//! encode (claim eligibility and order, state moves) are checked against
//! their one definition in `shared`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value};
use testflinger_shared::agents::{validate_agent_update, validate_commanded_mode, ProvisionEntry};
use testflinger_shared::auth::{hash_secret, new_refresh_token, refresh_token_hash};
use testflinger_shared::clients::{Client, OwnerRemoval, RefreshToken, RestrictedQueue};
use testflinger_shared::job::{validate_submission, AttachmentsStatus, NewJob};
use testflinger_shared::logs::{LegacyStream, LogFragment, LogType};
use testflinger_shared::queues::SearchQuery;
use testflinger_shared::results::{validate_result, ResultPatch, REPORTED_STATE_KEY};
use testflinger_shared::role::Role;
use testflinger_shared::secrets::StoredSecret;
use testflinger_shared::store::prelude::*;
use testflinger_shared::store::{CancelOutcome, ClaimRequest};
use testflinger_shared::{Error, Timestamp};
use uuid::Uuid;

/// Runs each case against every store; a store whose server is not
/// configured is skipped, unless backends are required (CI).
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let env = testflinger_shared::testing::TestEnv::embedded();
                    super::$case(env.open().await.store).await;
                }
            )*
        }
        mod mongodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(env) = testflinger_shared::testing::TestEnv::mongodb() else { return };
                    super::$case(env.open().await.store).await;
                }
            )*
        }
    };
}

mod agents;
mod clients;
mod events;
mod jobs;
mod leases;
mod logs;
mod queues;
mod retention;
mod secrets;
mod statistics;
mod tokens;

fn t(millis: i64) -> Timestamp {
    Timestamp::from_millis(1_790_000_000_000 + millis)
}

fn new_job(body: Value, created: i64) -> NewJob {
    validate_submission(body, t(created)).expect("a valid job")
}

async fn insert(store: &Arc<dyn Store>, body: Value, created: i64) -> Uuid {
    let job = new_job(body, created);
    store.insert_job(&job).await.expect("insert");
    job.job_id
}

fn claim(queues: &[&str], agent: Option<&str>) -> ClaimRequest {
    ClaimRequest {
        queues: queues.iter().map(|q| q.to_string()).collect(),
        agent_name: agent.map(str::to_owned),
        client_id: None,
        lease_until: None,
    }
}

async fn claim_id(store: &Arc<dyn Store>, queues: &[&str], agent: Option<&str>) -> Option<Uuid> {
    store
        .claim_job(&claim(queues, agent), t(100_000))
        .await
        .expect("claim")
        .map(|job| job.job_id)
}

fn patch(body: Value) -> ResultPatch {
    validate_result(body.as_object().unwrap().clone()).expect("a valid result")
}

fn fragment(n: i64, phase: &str, data: &str) -> LogFragment {
    LogFragment {
        fragment_number: n,
        timestamp: t(1_000 + n),
        phase: phase.into(),
        log_data: data.into(),
    }
}

fn agent_update(body: Value) -> testflinger_shared::agents::AgentUpdate {
    validate_agent_update(body.as_object().unwrap().clone()).expect("a valid agent update")
}

/// A client with no permissions; the hash need not be a real one here.
fn client(id: &str) -> Client {
    Client::new(id, format!("hash-of-{id}"), Role::Contributor)
}

async fn put_clients(store: &Arc<dyn Store>, ids: &[&str]) {
    for id in ids {
        assert!(store.put_client(&client(id)).await.unwrap(), "{id} created");
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn allowed_queues(store: &Arc<dyn Store>, client_id: &str) -> Vec<String> {
    store
        .get_client(client_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("client {client_id} exists"))
        .allowed_queues
}

/// A refresh token issued at `t(issued)`, expiring at `t(expires)`;
/// returns its hash.
async fn issue_token(store: &Arc<dyn Store>, client_id: &str, issued: i64, expires: i64) -> String {
    let token_hash = refresh_token_hash(&new_refresh_token());
    store
        .insert_refresh_token(&RefreshToken {
            token_hash: token_hash.clone(),
            client_id: client_id.into(),
            issued_at: t(issued),
            expires_at: t(expires),
            revoked: false,
        })
        .await
        .unwrap();
    token_hash
}

/// Sealed bytes as the store must keep them: not UTF-8, with zeros.
fn sealed(tag: u8) -> Vec<u8> {
    vec![0, 255, tag, 0x80, 0, 0xfe, tag, 1, 2, 3, 0]
}

fn secret(
    client_id: &str,
    path: &str,
    tag: u8,
    expires: Option<i64>,
    ephemeral: bool,
) -> StoredSecret {
    StoredSecret {
        client_id: client_id.into(),
        path: path.into(),
        sealed: sealed(tag),
        expires_at: expires.map(t),
        ephemeral,
        updated_at: t(1),
    }
}

async fn existing(
    store: &Arc<dyn Store>,
    client_id: &str,
    paths: &[&str],
    now: i64,
) -> Vec<String> {
    let mut found = store
        .existing_secrets(client_id, &strings(paths), t(now))
        .await
        .unwrap();
    found.sort();
    found
}

async fn take(
    store: &Arc<dyn Store>,
    client_id: &str,
    paths: &[&str],
    now: i64,
) -> Vec<StoredSecret> {
    let mut taken = store
        .take_secrets(client_id, &strings(paths), t(now))
        .await
        .unwrap();
    taken.sort_by(|a, b| a.path.cmp(&b.path));
    taken
}

fn sorted_owners(queue: Option<RestrictedQueue>) -> Option<Vec<String>> {
    queue.map(|q| {
        let mut owners = q.owners;
        owners.sort();
        owners
    })
}
