//! A load generator for any server that speaks the Testflinger API.
//!
//! Simulated agents repeat the upstream agent's idle cycle (`GET /v1`, four
//! `GET /v1/agents/data/{name}`, `POST /v1/agents/queues`, `GET /v1/job` with
//! the `agent_name` cookie) and, when a claim succeeds, play a running job
//! (state and agent-state posts per phase, about 20 log fragments, status
//! posts, a provision log, a small artifact, `complete`). Submitters post
//! jobs. It stops by itself at `--duration` or after `--jobs` jobs, and
//! refuses targets outside the loopback range unless `--allow-remote`.
//! With `--jobs` and `--submitters 0` it drains jobs already waiting (for
//! instance from `testflinger-local preload`): an agent whose claim finds
//! nothing stops, since nothing more will come.
//!
//! ```text
//! testflinger-loadgen [--target URL] [--agents N] [--submitters M] [--queues Q]
//!                     [--duration SECONDS | --jobs N] [--poll-interval SECONDS]
//!                     [--submit-rate PER_SECOND] [--client-id ID --client-secret S]
//!                     [--json] [--allow-remote]
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// What the run does, for `--help`.
const LONG_ABOUT: &str = "\
Drives a Testflinger server with simulated agents (the upstream agent's idle \
cycle, and whole jobs when they claim one) and job submitters, then prints \
per-endpoint throughput and latency.

An agent's idle cycle is GET /v1, four GET /v1/agents/data/{name}, POST \
/v1/agents/queues and GET /v1/job with the agent_name cookie; when a claim \
succeeds it plays a running job (state and agent-state posts per phase, about \
20 log fragments, status posts, a provision log, a small artifact, complete). \
Submitters post jobs. The run stops by itself after --duration (default 10 \
seconds) or once --jobs jobs have completed, and at the latest after an hour. \
Only loopback targets unless --allow-remote. With --jobs and --submitters 0 \
the agents drain the jobs already waiting (for instance from \
`testflinger-local preload`): each stops when its claim finds nothing, so the \
run also ends when the backlog runs out.";

/// Drives a Testflinger server with simulated agents and job submitters, then
/// prints per-endpoint throughput and latency
#[derive(Debug, Parser)]
#[command(
    name = "testflinger-loadgen",
    long_about = LONG_ABOUT,
    // As before: an option given twice takes its last value.
    args_override_self = true,
)]
struct Cli {
    /// The server's base URL
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8000")]
    target: String,
    // The numbers take allow_negative_numbers: "-3" is a bad value, not an
    // unknown option.
    /// Simulated agents, each serving two queues
    #[arg(
        long,
        value_name = "N",
        default_value = "10",
        value_parser = count,
        allow_negative_numbers = true,
    )]
    agents: usize,
    /// Job submitters
    #[arg(
        long,
        value_name = "M",
        default_value = "1",
        value_parser = count,
        allow_negative_numbers = true,
    )]
    submitters: usize,
    /// Queues, named loadgen-q0, loadgen-q1, ... (0 counts as 1)
    #[arg(
        long,
        value_name = "Q",
        default_value = "4",
        value_parser = count,
        allow_negative_numbers = true,
    )]
    queues: usize,
    /// Stop after this many seconds [default: 10, unless --jobs]
    #[arg(
        long,
        value_name = "SECONDS",
        value_parser = seconds,
        allow_negative_numbers = true,
        conflicts_with = "jobs",
    )]
    duration: Option<Duration>,
    /// Stop once N jobs have completed; without submitters, also once the
    /// jobs already waiting run out
    #[arg(long, value_name = "N", value_parser = job_count, allow_negative_numbers = true)]
    jobs: Option<u64>,
    /// Pause after a claim that finds nothing, in seconds (0: poll
    /// back-to-back)
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "0",
        value_parser = seconds,
        allow_negative_numbers = true,
    )]
    poll_interval: Duration,
    /// Jobs submitted per second, by all submitters together (default, or 0:
    /// as fast as possible)
    #[arg(long, value_name = "PER_SECOND", value_parser = number, allow_negative_numbers = true)]
    submit_rate: Option<f64>,
    /// Log in as this client (POST /v1/oauth2/token) and send its token, as
    /// agent endpoints need in the standard and strict auth modes
    #[arg(long, value_name = "ID", requires = "client_secret")]
    client_id: Option<String>,
    /// The secret of --client-id
    // A secret may begin with '-'.
    #[arg(
        long,
        value_name = "SECRET",
        requires = "client_id",
        allow_hyphen_values = true
    )]
    client_secret: Option<String>,
    /// Print the report as one JSON object
    #[arg(long)]
    json: bool,
    /// Allow a target outside the loopback range (127.0.0.0/8, ::1,
    /// localhost)
    #[arg(long)]
    allow_remote: bool,
}

/// A number of 0 or more: counts, seconds and rates.
fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or(format!("{text:?} is not a number of 0 or more"))
}

/// A count: a number of 0 or more, its fraction dropped.
fn count(text: &str) -> Result<usize, String> {
    number(text).map(|n| n as usize)
}

fn job_count(text: &str) -> Result<u64, String> {
    number(text).map(|n| n as u64)
}

fn seconds(text: &str) -> Result<Duration, String> {
    number(text).map(Duration::from_secs_f64)
}

#[derive(Debug, Clone, PartialEq)]
struct Options {
    target: String,
    agents: usize,
    submitters: usize,
    queues: usize,
    duration: Option<Duration>,
    jobs: Option<u64>,
    poll_interval: Duration,
    submit_rate: Option<f64>,
    client: Option<(String, String)>,
    json: bool,
    allow_remote: bool,
}

impl From<Cli> for Options {
    fn from(cli: Cli) -> Options {
        let mut target = cli.target;
        if target.ends_with('/') {
            target.pop();
        }
        Options {
            target,
            agents: cli.agents,
            submitters: cli.submitters,
            queues: cli.queues.max(1),
            // Neither: 10 seconds. Both: refused by the parser.
            duration: match cli.jobs {
                None => Some(cli.duration.unwrap_or(Duration::from_secs(10))),
                Some(_) => None,
            },
            jobs: cli.jobs,
            poll_interval: cli.poll_interval,
            submit_rate: cli.submit_rate.filter(|&rate| rate > 0.0),
            // Both or neither: the parser requires each with the other.
            client: cli.client_id.zip(cli.client_secret),
            json: cli.json,
            allow_remote: cli.allow_remote,
        }
    }
}

/// Loopback only (127.0.0.0/8, ::1, localhost), unless allowed otherwise.
fn check_target(target: &str, allow_remote: bool) -> Result<(), String> {
    let url = reqwest::Url::parse(target).map_err(|e| format!("--target {target:?}: {e}"))?;
    let host = url
        .host_str()
        .ok_or(format!("--target {target:?} has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback || allow_remote {
        Ok(())
    } else {
        Err(format!(
            "refusing to load {host}: only loopback targets (127.0.0.0/8, ::1) unless --allow-remote"
        ))
    }
}

/// Latencies and errors of one endpoint.
#[derive(Debug, Default, Clone)]
struct EndpointStats {
    latencies_us: Vec<u64>,
    errors: BTreeMap<u16, u64>,
}

#[derive(Debug, Default)]
struct Stats {
    endpoints: BTreeMap<String, EndpointStats>,
}

impl Stats {
    fn record(
        &mut self,
        endpoint: &str,
        latency: Duration,
        status: Option<StatusCode>,
        expected: &[StatusCode],
    ) {
        let entry = self.endpoints.entry(endpoint.to_owned()).or_default();
        entry.latencies_us.push(latency.as_micros() as u64);
        match status {
            Some(s) if expected.contains(&s) => {}
            Some(s) => *entry.errors.entry(s.as_u16()).or_default() += 1,
            // A transport failure: no status at all.
            None => *entry.errors.entry(0).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Stats) {
        for (name, stats) in other.endpoints {
            let entry = self.endpoints.entry(name).or_default();
            entry.latencies_us.extend(stats.latencies_us);
            for (status, n) in stats.errors {
                *entry.errors.entry(status).or_default() += n;
            }
        }
    }
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[rank] as f64 / 1000.0
}

/// What the whole run shares.
struct Shared {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    deadline: Option<Instant>,
    job_goal: Option<u64>,
    /// Draining a backlog (`--jobs` without submitters): an agent whose
    /// claim finds nothing stops.
    drain: bool,
    submitted: AtomicU64,
    claims: AtomicU64,
    completed: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn done(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || self
                .job_goal
                .is_some_and(|goal| self.completed.load(Ordering::Relaxed) >= goal)
    }

    /// One request, timed and recorded under its label, `"<METHOD> <templated
    /// path>"`, whose first word is the method sent.
    async fn call(
        &self,
        stats: &mut Stats,
        endpoint: &str,
        path: &str,
        body: Option<Value>,
        cookie: Option<&str>,
        expected: &[StatusCode],
    ) -> Option<(StatusCode, Vec<u8>)> {
        let method = endpoint
            .split(' ')
            .next()
            .and_then(|m| m.parse::<Method>().ok())
            .unwrap_or(Method::GET);
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("agent_name={cookie}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let started = Instant::now();
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let body = response
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                Some((status, body))
            }
            Err(_) => None,
        };
        stats.record(
            endpoint,
            started.elapsed(),
            answer.as_ref().map(|(s, _)| *s),
            expected,
        );
        answer
    }
}

const OK: &[StatusCode] = &[StatusCode::OK];
const PHASES: [&str; 6] = [
    "setup",
    "provision",
    "firmware_update",
    "test",
    "allocate",
    "reserve",
];

async fn agent(
    shared: Arc<Shared>,
    index: usize,
    queues: Vec<String>,
    poll_interval: Duration,
) -> Stats {
    let mut stats = Stats::default();
    let name = format!("loadgen-agent-{index:04}");
    let data_path = format!("/v1/agents/data/{name}");
    let advertised: serde_json::Map<String, Value> = queues
        .iter()
        .map(|q| (q.clone(), json!("load test queue")))
        .collect();
    shared
        .call(
            &mut stats,
            "POST /v1/agents/data/{name}",
            &data_path,
            Some(json!({"state": "waiting", "queues": queues, "location": "loadgen"})),
            None,
            OK,
        )
        .await;
    let claim_path = format!(
        "/v1/job?{}",
        queues
            .iter()
            .map(|q| format!("queue={q}"))
            .collect::<Vec<_>>()
            .join("&")
    );
    while !shared.done() {
        shared
            .call(&mut stats, "GET /v1", "/v1", None, None, OK)
            .await;
        for _ in 0..4 {
            shared
                .call(
                    &mut stats,
                    "GET /v1/agents/data/{name}",
                    &data_path,
                    None,
                    None,
                    OK,
                )
                .await;
        }
        shared
            .call(
                &mut stats,
                "POST /v1/agents/queues",
                "/v1/agents/queues",
                Some(Value::Object(advertised.clone())),
                None,
                OK,
            )
            .await;
        let claim = shared
            .call(
                &mut stats,
                "GET /v1/job",
                &claim_path,
                None,
                Some(&name),
                &[StatusCode::OK, StatusCode::NO_CONTENT],
            )
            .await;
        let job_id = match claim {
            Some((StatusCode::OK, body)) => serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|job| job["job_id"].as_str().map(str::to_owned)),
            // Nothing left on this agent's queues, and nobody submits more.
            Some((StatusCode::NO_CONTENT, _)) if shared.drain => break,
            _ => None,
        };
        match job_id {
            Some(job_id) => {
                shared.claims.fetch_add(1, Ordering::Relaxed);
                run_job(&shared, &mut stats, &name, &data_path, &job_id).await;
                shared.completed.fetch_add(1, Ordering::Relaxed);
            }
            None if !poll_interval.is_zero() => tokio::time::sleep(poll_interval).await,
            None => {}
        }
    }
    stats
}

/// The requests of a running job, in the upstream agent's order.
async fn run_job(shared: &Shared, stats: &mut Stats, name: &str, data_path: &str, job_id: &str) {
    let result = format!("/v1/result/{job_id}");
    shared
        .call(
            stats,
            "POST /v1/agents/data/{name}",
            data_path,
            Some(json!({"job_id": job_id})),
            None,
            OK,
        )
        .await;
    let mut fragment = 0;
    let mut status = serde_json::Map::new();
    for phase in PHASES {
        shared
            .call(stats, "GET /v1/result/{id}", &result, None, None, OK)
            .await;
        shared
            .call(
                stats,
                "POST /v1/result/{id}",
                &result,
                Some(json!({"job_state": phase})),
                None,
                OK,
            )
            .await;
        shared
            .call(
                stats,
                "POST /v1/agents/data/{name}",
                data_path,
                Some(json!({"state": phase, "comment": ""})),
                None,
                OK,
            )
            .await;
        for line in 0..3 {
            let body = json!({
                "fragment_number": fragment, "timestamp": "2026-11-25T10:00:00Z", "phase": phase,
                "log_data": format!("{phase} line {line} of a simulated job\n"),
            });
            shared
                .call(
                    stats,
                    "POST /v1/result/{id}/log/output",
                    &format!("{result}/log/output"),
                    Some(body),
                    None,
                    OK,
                )
                .await;
            fragment += 1;
        }
        status.insert(phase.to_owned(), json!(0));
        shared
            .call(
                stats,
                "POST /v1/result/{id}",
                &result,
                Some(json!({"status": status})),
                None,
                OK,
            )
            .await;
        if phase == "provision" {
            shared
                .call(
                    stats,
                    "POST /v1/agents/provision_logs/{name}",
                    &format!("/v1/agents/provision_logs/{name}"),
                    Some(json!({"job_id": job_id, "exit_code": 0, "detail": "provision_success"})),
                    None,
                    OK,
                )
                .await;
        }
    }
    // A small artifact: multipart field "file".
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![0x1f_u8; 4096]).file_name("artifact.tar.gz"),
    );
    let mut request = shared
        .http
        .post(format!("{}{result}/artifact", shared.base))
        .multipart(form);
    if let Some(token) = &shared.token {
        request = request.bearer_auth(token);
    }
    let started = Instant::now();
    let answer = request.send().await.ok().map(|r| r.status());
    stats.record(
        "POST /v1/result/{id}/artifact",
        started.elapsed(),
        answer,
        OK,
    );
    shared
        .call(
            stats,
            "POST /v1/result/{id}",
            &result,
            Some(json!({"status": status, "job_state": "complete"})),
            None,
            OK,
        )
        .await;
    shared
        .call(
            stats,
            "POST /v1/agents/data/{name}",
            data_path,
            Some(json!({"job_id": "", "state": "waiting", "comment": ""})),
            None,
            OK,
        )
        .await;
}

async fn submitter(
    shared: Arc<Shared>,
    index: usize,
    queues: Vec<String>,
    interval: Option<Duration>,
) -> Stats {
    let mut stats = Stats::default();
    let mut n = index;
    while !shared.done() {
        if let Some(goal) = shared.job_goal {
            if shared.submitted.fetch_add(1, Ordering::Relaxed) >= goal {
                break;
            }
        }
        let queue = &queues[n % queues.len()];
        shared
            .call(&mut stats, "POST /v1/job", "/v1/job",
                  Some(json!({"job_queue": queue, "tags": ["loadgen"], "test_data": {"test_cmds": "true"}})), None, OK)
            .await;
        n += 1;
        if let Some(interval) = interval {
            tokio::time::sleep(interval).await;
        }
    }
    stats
}

async fn fetch_token(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
) -> Result<String, String> {
    let answer = http
        .post(format!("{base}/v1/oauth2/token"))
        .basic_auth(id, Some(secret))
        .send()
        .await
        .map_err(|e| format!("cannot reach {base}: {e}"))?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    match body["access_token"].as_str() {
        Some(token) if status.is_success() => Ok(token.to_owned()),
        _ => Err(format!("POST /v1/oauth2/token answered {status}: {body}")),
    }
}

fn report(stats: &Stats, elapsed: f64, shared: &Shared, as_json: bool) {
    let mut endpoints = serde_json::Map::new();
    let (mut total, mut total_errors) = (0u64, 0u64);
    let mut rows = Vec::new();
    for (name, s) in &stats.endpoints {
        let mut sorted = s.latencies_us.clone();
        sorted.sort_unstable();
        let count = sorted.len() as u64;
        let errors: u64 = s.errors.values().sum();
        total += count;
        total_errors += errors;
        let row = json!({
            "count": count,
            "rps": (count as f64 / elapsed * 10.0).round() / 10.0,
            "p50_ms": percentile_ms(&sorted, 0.50),
            "p90_ms": percentile_ms(&sorted, 0.90),
            "p99_ms": percentile_ms(&sorted, 0.99),
            "max_ms": percentile_ms(&sorted, 1.0),
            "errors": s.errors.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        });
        rows.push((name.clone(), row.clone()));
        endpoints.insert(name.clone(), row);
    }
    let claims = shared.claims.load(Ordering::Relaxed);
    let completed = shared.completed.load(Ordering::Relaxed);
    if as_json {
        let out = json!({
            "endpoints": endpoints,
            "total": {"count": total, "rps": (total as f64 / elapsed * 10.0).round() / 10.0, "errors": total_errors},
            "claims": claims,
            "completed": completed,
            "duration_s": (elapsed * 1000.0).round() / 1000.0,
        });
        println!("{out}");
        return;
    }
    println!(
        "{:<44} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}  errors",
        "endpoint", "count", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (name, row) in rows {
        println!(
            "{:<44} {:>8} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}",
            name,
            row["count"].as_u64().unwrap_or(0),
            row["rps"].as_f64().unwrap_or(0.0),
            row["p50_ms"].as_f64().unwrap_or(0.0),
            row["p90_ms"].as_f64().unwrap_or(0.0),
            row["p99_ms"].as_f64().unwrap_or(0.0),
            row["max_ms"].as_f64().unwrap_or(0.0),
            row["errors"]
        );
    }
    println!(
        "total: {total} requests in {elapsed:.2} s = {:.0} req/s, {total_errors} errors; {claims} jobs claimed, {completed} completed",
        total as f64 / elapsed
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::from(Cli::parse());
    if let Err(problem) = check_target(&options.target, options.allow_remote) {
        eprintln!("testflinger-loadgen: {problem}");
        return ExitCode::from(2);
    }
    let http = match reqwest::Client::builder()
        .pool_max_idle_per_host(options.agents + options.submitters + 4)
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            eprintln!("testflinger-loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let token = match &options.client {
        Some((id, secret)) => match fetch_token(&http, &options.target, id, secret).await {
            Ok(token) => Some(token),
            Err(problem) => {
                eprintln!("testflinger-loadgen: {problem}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let started = Instant::now();
    let shared = Arc::new(Shared {
        http,
        base: options.target.clone(),
        token,
        deadline: options.duration.map(|d| started + d),
        job_goal: options.jobs,
        drain: options.jobs.is_some() && options.submitters == 0,
        submitted: AtomicU64::new(0),
        claims: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    // A bound of its own even in --jobs mode: at most an hour.
    let watchdog = {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            shared.stop.store(true, Ordering::Relaxed);
        })
    };
    let queues: Vec<String> = (0..options.queues)
        .map(|i| format!("loadgen-q{i}"))
        .collect();
    if !options.json {
        eprintln!(
            "loading {} with {} agents and {} submitters over {} queues ({})",
            options.target,
            options.agents,
            options.submitters,
            queues.len(),
            match (options.duration, options.jobs) {
                (Some(d), _) => format!("for {:.0} s", d.as_secs_f64()),
                (None, Some(n)) if options.submitters == 0 => {
                    format!("until {n} waiting jobs complete or none is left")
                }
                (None, Some(n)) => format!("until {n} jobs complete"),
                _ => String::new(),
            }
        );
    }
    let mut tasks = Vec::new();
    for i in 0..options.agents {
        // Each agent serves two queues, as lab agents often do.
        let mine = vec![
            queues[i % queues.len()].clone(),
            queues[(i + 1) % queues.len()].clone(),
        ];
        // Real agents start at unrelated times: spread the first polls
        // over one interval, so that a paced run is not 400 agents polling
        // in the same instant every interval.
        let offset = options
            .poll_interval
            .mul_f64(i as f64 / options.agents as f64);
        let shared = shared.clone();
        let interval = options.poll_interval;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            agent(shared, i, mine, interval).await
        }));
    }
    let interval = options
        .submit_rate
        .map(|rate| Duration::from_secs_f64(options.submitters.max(1) as f64 / rate));
    for i in 0..options.submitters {
        tasks.push(tokio::spawn(submitter(
            shared.clone(),
            i,
            queues.clone(),
            interval,
        )));
    }
    let mut stats = Stats::default();
    for task in tasks {
        if let Ok(part) = task.await {
            stats.merge(part);
        }
    }
    watchdog.abort();
    report(
        &stats,
        started.elapsed().as_secs_f64(),
        &shared,
        options.json,
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::CommandFactory;

    /// The options of these arguments, as `main` would take them.
    fn parse_args(args: &[&str]) -> Result<Options, clap::Error> {
        Cli::try_parse_from(std::iter::once("testflinger-loadgen").chain(args.iter().copied()))
            .map(Options::from)
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert()
    }

    #[test]
    fn options_have_sane_defaults_and_are_checked() {
        let o = parse_args(&[]).unwrap();
        assert_eq!((o.agents, o.submitters, o.queues), (10, 1, 4));
        assert_eq!(o.duration, Some(Duration::from_secs(10)));
        assert_eq!(o.target, "http://127.0.0.1:8000");
        assert_eq!(
            (o.jobs, o.poll_interval, o.submit_rate),
            (None, Duration::ZERO, None)
        );
        assert_eq!((o.client, o.json, o.allow_remote), (None, false, false));
        let o = parse_args(&[
            "--jobs",
            "50",
            "--agents",
            "400",
            "--target",
            "http://127.0.0.1:9/",
            "--json",
        ])
        .unwrap();
        assert_eq!(
            (o.jobs, o.duration, o.agents, o.json),
            (Some(50), None, 400, true)
        );
        assert_eq!(o.target, "http://127.0.0.1:9");
        assert!(parse_args(&["--jobs", "5", "--duration", "3"]).is_err());
        assert!(parse_args(&["--client-id", "x"]).is_err());
        assert!(parse_args(&["--agents", "-3"]).is_err());
        assert!(parse_args(&["--frobnicate"]).is_err());
    }

    #[test]
    fn every_option_keeps_its_meaning() {
        let o = parse_args(&[
            "--submitters",
            "0",
            "--queues",
            "0",
            "--duration",
            "2.5",
            "--poll-interval",
            "0.25",
            "--submit-rate",
            "20",
            "--client-id",
            "load-agents",
            "--client-secret",
            "-a secret",
            "--allow-remote",
        ])
        .unwrap();
        assert_eq!((o.submitters, o.queues), (0, 1));
        assert_eq!(o.duration, Some(Duration::from_millis(2500)));
        assert_eq!(o.poll_interval, Duration::from_millis(250));
        assert_eq!(o.submit_rate, Some(20.0));
        assert_eq!(
            o.client,
            Some(("load-agents".to_owned(), "-a secret".to_owned()))
        );
        assert!(o.allow_remote);
        assert_eq!(
            parse_args(&["--submit-rate", "0"]).unwrap().submit_rate,
            None
        );
        for bad in [
            &["--duration", "soon"][..],
            &["--poll-interval", "-1"],
            &["--submit-rate", "inf"],
            &["--client-secret", "s"],
        ] {
            assert!(parse_args(bad).is_err(), "{bad:?}");
        }
        for bad in ["many", "-3"] {
            let problem = parse_args(&["--agents", bad]).unwrap_err().to_string();
            assert!(problem.contains("not a number of 0 or more"), "{problem}");
        }
    }

    #[test]
    fn only_loopback_targets_unless_allowed() {
        for ok in [
            "http://127.0.0.1:8000",
            "http://127.1.2.3:1",
            "http://[::1]:8000",
            "http://localhost:8000",
        ] {
            assert!(check_target(ok, false).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.1:8000",
            "http://192.168.1.2",
            "https://example.com",
        ] {
            assert!(check_target(refused, false).is_err(), "{refused}");
            assert!(check_target(refused, true).is_ok());
        }
        assert!(check_target("not a url", true).is_err());
    }

    #[test]
    fn percentiles_and_errors_are_counted() {
        let mut stats = Stats::default();
        for ms in 1..=100u64 {
            stats.record(
                "GET /v1",
                Duration::from_millis(ms),
                Some(StatusCode::OK),
                OK,
            );
        }
        stats.record(
            "GET /v1",
            Duration::from_millis(1),
            Some(StatusCode::BAD_GATEWAY),
            OK,
        );
        stats.record("GET /v1", Duration::from_millis(1), None, OK);
        let s = &stats.endpoints["GET /v1"];
        assert_eq!(s.errors[&502], 1);
        assert_eq!(s.errors[&0], 1);
        let mut sorted = s.latencies_us.clone();
        sorted.sort_unstable();
        assert_eq!(percentile_ms(&sorted, 1.0), 100.0);
        assert!((percentile_ms(&sorted, 0.5) - 49.0).abs() <= 1.0);
    }
}
