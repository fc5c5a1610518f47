//! Claim throughput: N waiting jobs drained by C concurrent claimers over
//! HTTP on loopback, on the configured store (embedded by default; MongoDB
//! when `MONGODB_URI` is set, in a fresh database that is dropped at the
//! end). On MongoDB it also times the same `findOneAndUpdate` through the
//! driver alone, on a copy of the jobs with the same index, and prints the
//! ratio.
//!
//! ```text
//! cargo run --release -p testflinger-local --example claim_bench -- [--jobs 2000] [--claimers 32]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;
use serde_json::json;
use testflinger_functions::{app, AppState};
use testflinger_shared::backends::Backends;
use testflinger_shared::config::{Config, StoreConfig};
use testflinger_shared::job::validate_submission;
use testflinger_shared::store::mongo::ClaimQuery;
use testflinger_shared::store::ClaimRequest;
use testflinger_shared::Timestamp;

struct Options {
    jobs: usize,
    claimers: usize,
}

fn options() -> Options {
    let mut options = Options {
        jobs: 2000,
        claimers: 32,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--jobs", Some(n)) => options.jobs = n,
            ("--claimers", Some(n)) => options.claimers = n,
            _ => panic!("usage: claim_bench [--jobs N] [--claimers C]"),
        }
    }
    options
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let options = options();
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::load().expect("configuration");
    config.data_dir = data.path().to_path_buf();
    let database = format!("claim_bench_{}", uuid::Uuid::new_v4().simple());
    if let StoreConfig::MongoDb(mongo) = &mut config.store {
        mongo.database = database.clone();
        mongo.max_pool_size = 64;
    }
    Backends::setup(&config).await.expect("setup");
    let backends = Backends::open(&config).await.expect("backends");
    println!("backend: {}", Backends::describe(&config));

    // Preload.
    let started = Instant::now();
    stream::iter(0..options.jobs)
        .map(|i| {
            let store = backends.store.clone();
            async move {
                let job =
                    validate_submission(json!({"job_queue": "bench", "n": i}), Timestamp::now())
                        .unwrap();
                store.insert_job(&job).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    println!(
        "preloaded {} jobs in {:.2} s",
        options.jobs,
        started.elapsed().as_secs_f64()
    );

    // The server on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service = app(AppState::new(&config, backends.clone()));
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service(service),
        )
        .await
        .unwrap()
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.claimers)
        .build()
        .unwrap();
    let url = Arc::new(format!("http://{address}/v1/job?queue=bench"));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..options.claimers {
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let t = Instant::now();
                let answer = http
                    .get(url.as_str())
                    .header("Cookie", format!("agent_name=bench-{c}"))
                    .send()
                    .await
                    .unwrap();
                let status = answer.status();
                let _ = answer.bytes().await;
                if status == reqwest::StatusCode::NO_CONTENT {
                    return latencies;
                }
                assert_eq!(status, reqwest::StatusCode::OK);
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    assert_eq!(latencies.len(), options.jobs, "every job claimed once");
    let server_rate = options.jobs as f64 / elapsed;
    println!(
        "server: {} claims by {} claimers over HTTP in {elapsed:.2} s = {server_rate:.0} claims/s (p50 {:.2} ms, p99 {:.2} ms)",
        options.jobs,
        options.claimers,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );

    if let StoreConfig::MongoDb(mongo) = &config.store {
        let client = mongodb::Client::with_uri_str(&mongo.uri).await.unwrap();
        let db = client.database(&database);
        let raw = db.collection::<Document>("raw_claims");
        raw.create_index(
            IndexModel::builder()
                .keys(doc! {"result_data.job_state": 1, "job_data.job_queue": 1, "job_priority": -1, "created_at": 1, "_id": 1})
                .options(IndexOptions::builder().name("claim_order".to_owned()).build())
                .build(),
        )
        .await
        .unwrap();
        let now = mongodb::bson::DateTime::now();
        let documents: Vec<Document> = (0..options.jobs)
            .map(|i| doc! {
                "job_id": uuid::Uuid::new_v4().to_string(), "created_at": now, "job_priority": 0i64,
                "job_data": {"job_queue": "bench", "n": i as i64}, "result_data": {"job_state": "waiting"},
            })
            .collect();
        for chunk in documents.chunks(1000) {
            raw.insert_many(chunk.to_vec()).await.unwrap();
        }
        let request = ClaimRequest {
            queues: vec!["bench".into()],
            agent_name: Some("raw".into()),
            client_id: None,
            lease_until: None,
        };
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..options.claimers {
            let raw = raw.clone();
            let request = request.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0usize;
                loop {
                    let query = ClaimQuery::new(&request, Timestamp::now());
                    let claimed = raw
                        .find_one_and_update(query.filter, query.update)
                        .sort(query.sort)
                        .await
                        .unwrap();
                    if claimed.is_none() {
                        return n;
                    }
                    n += 1;
                }
            }));
        }
        let mut claimed = 0;
        for task in tasks {
            claimed += task.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(claimed, options.jobs);
        let raw_rate = claimed as f64 / elapsed;
        println!(
            "driver alone: {claimed} findOneAndUpdate claims by {} tasks in {elapsed:.2} s = {raw_rate:.0} claims/s",
            options.claimers
        );
        println!("server / driver-alone ratio: {:.2}", server_rate / raw_rate);
        db.drop().await.unwrap();
    }
}
