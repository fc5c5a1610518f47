//! Exactly once across processes: two harness processes over one MongoDB
//! database, many concurrent claimers spread over both, every job claimed
//! exactly once and none lost.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;

use common::{Server, BINARY};
use reqwest::StatusCode;
use serde_json::{json, Value};
use testflinger_shared::config::StoreConfig;
use testflinger_shared::testing::TestEnv;

const JOBS: usize = 1000;
const CLAIMERS: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_over_one_database_claim_each_job_exactly_once() {
    let Some(env) = TestEnv::mongodb() else {
        return;
    };
    let StoreConfig::MongoDb(mongo) = &env.config.store else {
        unreachable!("TestEnv::mongodb configures MongoDB")
    };
    let backend = [
        ("MONGODB_URI", mongo.uri.as_str()),
        ("MONGODB_DATABASE", mongo.database.as_str()),
    ];

    // The deploy step, as an operator runs it: indexes first.
    let setup = Command::new(BINARY)
        .arg("setup")
        .envs(backend)
        .env_remove("TESTFLINGER_CONFIG")
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    let servers = [Server::start_with(&backend), Server::start_with(&backend)];
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    let mut submitted = HashSet::new();
    for i in 0..JOBS {
        let server = &servers[i % 2];
        let answer: Value = http
            .post(server.url("/v1/job"))
            .json(&json!({"job_queue": "shared-queue", "n": i}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        submitted.insert(answer["job_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(submitted.len(), JOBS);

    let bases: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| s.base.clone()).collect());
    let mut claimers = Vec::new();
    for c in 0..CLAIMERS {
        let http = http.clone();
        let bases = bases.clone();
        claimers.push(tokio::spawn(async move {
            let url = format!("{}/v1/job?queue=shared-queue", bases[c % bases.len()]);
            let mut mine = Vec::new();
            loop {
                let answer = http
                    .get(&url)
                    .header("Cookie", format!("agent_name=claimer-{c}"))
                    .send()
                    .await
                    .unwrap();
                match answer.status() {
                    StatusCode::OK => {
                        let job: Value = answer.json().await.unwrap();
                        mine.push(job["job_id"].as_str().unwrap().to_owned());
                    }
                    StatusCode::NO_CONTENT => return mine,
                    other => panic!("claim answered {other}: {}", answer.text().await.unwrap()),
                }
            }
        }));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut per_server = [0usize; 2];
    for (c, claimer) in claimers.into_iter().enumerate() {
        let mine = claimer.await.unwrap();
        per_server[c % 2] += mine.len();
        for id in mine {
            *counts.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "jobs claimed more than once: {twice:?}");
    let claimed: HashSet<String> = counts.into_keys().collect();
    assert_eq!(claimed, submitted, "every job is claimed, none lost");
    assert!(
        per_server.iter().all(|n| *n > 0),
        "both processes served claims: {per_server:?}"
    );
}

/// A harness started on a MongoDB database that `setup` never prepared
/// prepares it itself (the step is idempotent), so its claims use the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_prepares_a_fresh_mongodb_database_at_start() {
    let Some(env) = TestEnv::mongodb() else {
        return;
    };
    let StoreConfig::MongoDb(mongo) = &env.config.store else {
        unreachable!("TestEnv::mongodb configures MongoDB")
    };
    let backend = [
        ("MONGODB_URI", mongo.uri.as_str()),
        ("MONGODB_DATABASE", mongo.database.as_str()),
    ];
    let server = Server::start_with(&backend);
    let client = mongodb::Client::with_uri_str(&mongo.uri).await.unwrap();
    let names = client
        .database(&mongo.database)
        .collection::<mongodb::bson::Document>("jobs")
        .list_index_names()
        .await
        .unwrap();
    assert!(
        names
            .iter()
            .any(|n| n == testflinger_shared::store::mongo::CLAIM_INDEX),
        "{names:?}"
    );
    assert!(
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("ready: MongoDB indexes")),
        "the start-up log says so"
    );
}
