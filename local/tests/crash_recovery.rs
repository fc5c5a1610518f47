//! Crash recovery by claim leases (issue 13): the harness is killed with
//! SIGKILL again and again while agents claim and finish jobs, and started
//! again on the same data. Claims the store made whose answers never
//! reached an agent, and the job of an agent that went silent for good,
//! come back by their leases: in the end every job is finished, by agents
//! that really received it. On the embedded store, and on MongoDB when the
//! test environment names one.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::Server;
use reqwest::StatusCode;
use serde_json::{json, Value};
use testflinger_shared::config::StoreConfig;
use testflinger_shared::testing::TestEnv;

const JOBS: usize = 400;
const AGENTS: usize = 4;
const KILLS: usize = 5;
/// How long recovery may take after the last restart: leases of 2 s swept
/// every second, and the jobs left then to finish.
const RECOVERY: Duration = Duration::from_secs(90);

const LEASE: [(&str, &str); 3] = [
    ("TESTFLINGER_LEASE_SECONDS", "2"),
    ("TESTFLINGER_LEASE_SWEEP_SECONDS", "1"),
    // Every kill may cost a job an attempt; none may run out of them here.
    ("TESTFLINGER_MAX_ATTEMPTS", "100"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_kills_during_claims_every_job_is_recovered_on_the_embedded_store() {
    kills_during_claims(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_kills_during_claims_every_job_is_recovered_on_mongodb() {
    let Some(env) = TestEnv::mongodb() else {
        return;
    };
    let StoreConfig::MongoDb(mongo) = &env.config.store else {
        unreachable!("TestEnv::mongodb configures MongoDB")
    };
    let setup = std::process::Command::new(common::BINARY)
        .arg("setup")
        .env("MONGODB_URI", &mongo.uri)
        .env("MONGODB_DATABASE", &mongo.database)
        .env_remove("TESTFLINGER_CONFIG")
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    kills_during_claims(&[
        ("MONGODB_URI", mongo.uri.as_str()),
        ("MONGODB_DATABASE", mongo.database.as_str()),
    ])
    .await;
}

/// What the agents saw.
#[derive(Default)]
struct Seen {
    /// Jobs an agent received from a claim.
    received: HashSet<String>,
    /// Jobs an agent finished (its final post answered 200).
    finished: HashSet<String>,
    /// Final posts refused with 409: the job was requeued meanwhile.
    lost: usize,
}

async fn kills_during_claims(backend: &[(&str, &str)]) {
    let env: Vec<(&str, &str)> = LEASE.iter().chain(backend).copied().collect();
    let mut server = Server::start_with(&env);
    let base = Arc::new(RwLock::new(server.base.clone()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut ids = Vec::new();
    for n in 0..JOBS {
        let answer: Value = http
            .post(server.url("/v1/job"))
            .json(&json!({"job_queue": "crash", "n": n}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(answer["job_id"].as_str().unwrap().to_owned());
    }
    // An agent whose answer was lost for certain: it claims one job and
    // is never heard from again.
    let ghost = http
        .get(server.url("/v1/job?queue=crash"))
        .header("Cookie", "agent_name=ghost")
        .send()
        .await
        .unwrap();
    assert_eq!(ghost.status(), StatusCode::OK);
    let ghost_job = ghost.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let agents: Vec<_> = (0..AGENTS)
        .map(|i| {
            tokio::spawn(agent(
                format!("crash-agent-{i}"),
                http.clone(),
                Arc::clone(&base),
                Arc::clone(&seen),
                Arc::clone(&stop),
            ))
        })
        .collect();

    // Kill the server at uneven moments while the agents work.
    for round in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(150 + 170 * (round as u64 % 3))).await;
        server.kill_and_restart();
        *base.write().unwrap() = server.base.clone();
    }

    // Every job ends finished within the recovery time.
    let deadline = Instant::now() + RECOVERY;
    let states = loop {
        let states = states(&http, &server, &ids).await;
        if states.iter().all(|s| s == "complete") || Instant::now() > deadline {
            break states;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for agent in agents {
        agent.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let unfinished: Vec<(&String, &String)> = ids
        .iter()
        .zip(&states)
        .filter(|(_, s)| *s != "complete")
        .collect();
    assert!(
        unfinished.is_empty(),
        "{} of {JOBS} jobs not finished {RECOVERY:?} after the last of {KILLS} kills: {unfinished:?}",
        unfinished.len()
    );
    // Each was finished by an agent that received it; the ghost's too.
    for id in &ids {
        assert!(seen.received.contains(id), "{id} finished unreceived");
    }
    assert!(seen.finished.contains(&ghost_job));
    let events: Value = http
        .get(server.url(&format!("/v1/events/job/{ghost_job}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_name"] == "job_requeued"),
        "{events}"
    );
    let mut requeued = 0;
    for id in &ids {
        let events: Value = http
            .get(server.url(&format!("/v1/events/job/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = events["events"].as_array().unwrap();
        requeued += usize::from(events.iter().any(|e| e["event_name"] == "job_requeued"));
    }
    eprintln!(
        "{KILLS} kills, {AGENTS} agents: {} jobs finished by agents, {requeued} recovered \
         by a lease (the ghost's included), {} final posts refused (requeued meanwhile)",
        seen.finished.len(),
        seen.lost
    );
}

/// Every job's state, read from the server.
async fn states(http: &reqwest::Client, server: &Server, ids: &[String]) -> Vec<String> {
    let mut states = Vec::new();
    for id in ids {
        let state = match http
            .get(server.url(&format!("/v1/result/{id}")))
            .send()
            .await
        {
            Ok(answer) => answer.json::<Value>().await.map_or_else(
                |e| format!("unreadable: {e}"),
                |v| v["job_state"].as_str().unwrap_or("none").to_owned(),
            ),
            Err(e) => format!("unreachable: {e}"),
        };
        states.push(state);
    }
    states
}

/// An agent: claims, and finishes each job it receives with one final
/// post, retried through restarts until answered (200, or 409 when the job
/// was requeued meanwhile).
async fn agent(
    name: String,
    http: reqwest::Client,
    base: Arc<RwLock<String>>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let cookie = format!("agent_name={name}");
    let url = |path: &str| format!("{}{path}", base.read().unwrap());
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let claimed = http
            .get(url("/v1/job?queue=crash"))
            .header("Cookie", &cookie)
            .send()
            .await;
        let job = match claimed {
            Ok(answer) if answer.status() == StatusCode::OK => match answer.json::<Value>().await {
                Ok(job) => job["job_id"].as_str().unwrap().to_owned(),
                // The answer broke off: the job is the server's to recover.
                Err(_) => continue,
            },
            Ok(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        seen.lock().unwrap().received.insert(job.clone());
        loop {
            let posted = http
                .post(url(&format!("/v1/result/{job}")))
                .header("Cookie", &cookie)
                .json(&json!({"job_state": "complete"}))
                .send()
                .await;
            match posted.map(|a| a.status()) {
                Ok(StatusCode::OK) => {
                    seen.lock().unwrap().finished.insert(job);
                    break;
                }
                Ok(StatusCode::CONFLICT) => {
                    seen.lock().unwrap().lost += 1;
                    break;
                }
                Ok(other) => panic!("{name}: final post of {job} answered {other}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}
