//! The Testflinger server on one port, for a laptop or a lab without AWS:
//! every endpoint of the route table behind one router.
//!
//! ```text
//! testflinger-local [serve] [--bind ADDR:PORT]
//! testflinger-local setup
//! testflinger-local create-client CLIENT_ID --secret SECRET --role ROLE [...]
//! testflinger-local preload --jobs N [--queues Q] [--prefix NAME]
//! ```

mod server;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use testflinger_functions::{app, telemetry, AppState};
use testflinger_shared::backends::Backends;
use testflinger_shared::config::{BlobConfig, Config, StoreConfig, KEYS};
use testflinger_shared::{retention, Timestamp};

const DEFAULT_BIND: &str = "127.0.0.1:8000";

/// The overview of `--help`: what each command does.
const LONG_ABOUT: &str = "\
The Testflinger server on one port, for a laptop or a lab without AWS: every \
endpoint of the route table behind one router.

serve (the default) serves the Testflinger API on one port (default \
127.0.0.1:8000). setup prepares the configured backends once per deployment \
(MongoDB indexes, including the retention TTLs, and the S3 bucket); running \
it again changes nothing. create-client writes a client straight to the \
configured store, with its secret hashed, so that a fresh deployment gets its \
first admin without the API; an existing client gets the fields given. \
`--secret -` reads the secret from the first line of standard input, which \
keeps it out of the process list and the shell history. QUEUE may be \"*\" \
(any queue). preload writes N waiting jobs straight to the configured store, \
round-robin over Q queues named NAME0, NAME1, ... (default 100 queues named \
loadgen-q0 to loadgen-q99, those of testflinger-loadgen), in batches of \
10,000: a fast way to give benchmarks a deep backlog.";

/// Where the settings come from, under the help of `serve` (and of no command).
const CONFIGURATION: &str = "\
Configuration comes from the environment and from the file named by \
TESTFLINGER_CONFIG (default ./testflinger.conf, if present); see README.md.";

/// [`CONFIGURATION`] with a pointer to the settings, under the commands
/// other than `serve`.
const CONFIGURATION_SEE_SETTINGS: &str = "\
Configuration comes from the environment and from the file named by \
TESTFLINGER_CONFIG (default ./testflinger.conf, if present); see README.md. \
`testflinger-local --help` lists the settings.";

/// [`CONFIGURATION`] and, for `--help`, every setting with its meaning.
fn settings_help() -> String {
    const WIDTH: usize = 100;
    let key_width = KEYS.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let indent = 2 + key_width + 2;
    let mut text = format!("{CONFIGURATION}\n\nSettings:");
    for (key, meaning) in KEYS {
        text.push_str(&format!("\n  {key:<key_width$}  "));
        // A meaning too long for one line goes on under itself.
        let mut column = indent;
        for (i, word) in meaning.split(' ').enumerate() {
            if i > 0 && column + 1 + word.len() > WIDTH {
                text.push_str(&format!("\n{:indent$}", ""));
                column = indent;
            } else if i > 0 {
                text.push(' ');
                column += 1;
            }
            text.push_str(word);
            column += word.len();
        }
    }
    text
}

/// The Testflinger server on one port, for a laptop or a lab without AWS
#[derive(Debug, Parser)]
#[command(
    name = "testflinger-local",
    long_about = LONG_ABOUT,
    // `--bind` alone means `serve --bind`; with another command it is an error.
    args_conflicts_with_subcommands = true,
    args_override_self = true,
    after_help = CONFIGURATION,
    after_long_help = settings_help(),
)]
struct Cli {
    #[command(flatten)]
    serve: Serve,
    #[command(subcommand)]
    command: Option<Command>,
}

impl Cli {
    /// The command to run: `serve` unless another is given.
    fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Testflinger API on one port (the default command)
    ///
    /// Serves every endpoint of the route table on one port (default
    /// 127.0.0.1:8000) until Ctrl-C or SIGTERM; the requests in flight
    /// finish first. Expired jobs and blobs are removed now and then.
    #[command(
        args_override_self = true,
        after_help = CONFIGURATION,
        after_long_help = settings_help(),
    )]
    Serve(Serve),
    /// Prepare the configured backends, once per deployment
    ///
    /// Prepares the configured backends once per deployment: the MongoDB
    /// indexes, including the retention TTLs, and the S3 bucket. Running it
    /// again changes nothing. Each step done is printed as "ready: STEP".
    #[command(after_help = CONFIGURATION_SEE_SETTINGS)]
    Setup,
    /// Write a client straight to the configured store, its secret hashed
    ///
    /// Writes a client straight to the configured store, with its secret
    /// hashed, so that a fresh deployment gets its first admin without the
    /// API. An existing client gets the fields given (a new secret also ends
    /// the sessions of the old one); the others stay as they are.
    #[command(
        args_override_self = true,
        after_help = CONFIGURATION_SEE_SETTINGS,
    )]
    CreateClient(CreateClient),
    /// Write N waiting jobs straight to the configured store, for benchmarks
    ///
    /// Writes N waiting jobs straight to the configured store, round-robin
    /// over Q queues named NAME0, NAME1, ... (default 100 queues named
    /// loadgen-q0 to loadgen-q99, those of testflinger-loadgen), in batches
    /// of 10,000: a fast way to give benchmarks a deep backlog.
    #[command(
        args_override_self = true,
        after_help = CONFIGURATION_SEE_SETTINGS,
    )]
    Preload(Preload),
}

/// The `serve` arguments (also accepted without the word `serve`).
#[derive(Debug, Args)]
struct Serve {
    /// Address to listen on (0.0.0.0:8000 opens it to the network)
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = DEFAULT_BIND,
        value_parser = bind_address
    )]
    bind: SocketAddr,
}

fn bind_address(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an address such as 127.0.0.1:8000"))
}

/// The `preload` arguments.
#[derive(Debug, Args, PartialEq, Eq)]
struct Preload {
    /// How many waiting jobs to write
    // allow_negative_numbers: "-1" is a bad value, not an unknown option.
    #[arg(
        long,
        value_name = "N",
        value_parser = whole_number,
        allow_negative_numbers = true
    )]
    jobs: u64,
    /// How many queues to spread them over, round-robin
    #[arg(
        long,
        value_name = "Q",
        default_value_t = 100,
        value_parser = count_above_zero,
        allow_negative_numbers = true
    )]
    queues: usize,
    /// The queues' names: NAME0, NAME1, ...
    #[arg(
        long,
        value_name = "NAME",
        default_value = "loadgen-q",
        value_parser = prefix
    )]
    prefix: String,
}

fn whole_number(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a whole number"))
}

fn count_above_zero(text: &str) -> Result<usize, String> {
    text.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a whole number above 0"))
}

fn prefix(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the prefix must not be empty".into());
    }
    Ok(text.to_owned())
}

/// Jobs written per `insert_jobs` call by `preload`.
const PRELOAD_BATCH: usize = 10_000;
/// How often `preload` reports its progress.
const PRELOAD_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The `create-client` arguments.
#[derive(Debug, Args)]
struct CreateClient {
    /// The client's id: 1 to 128 printable characters, without spaces, '/',
    /// '$' or ':'
    #[arg(value_name = "CLIENT_ID", value_parser = client_id)]
    client_id: String,
    /// The client's secret, stored hashed (needed for a new client); "-"
    /// reads it from the first line of standard input, which keeps it out of
    /// the process list and the shell history
    // A secret may begin with '-'.
    #[arg(long, value_name = "SECRET", allow_hyphen_values = true)]
    secret: Option<String>,
    /// The client's role: admin, manager, contributor or agent (needed for a
    /// new client)
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// The highest job priority the client may give on QUEUE; QUEUE may be
    /// "*" (any queue). Repeatable
    #[arg(long, value_name = "QUEUE=N", value_parser = queue_limit)]
    max_priority: Vec<(String, i64)>,
    /// A restricted queue the client may submit to. Repeatable
    #[arg(long, value_name = "QUEUE")]
    allowed_queue: Vec<String>,
    /// The longest reservation, in seconds, the client may ask for on QUEUE;
    /// QUEUE may be "*" (any queue). Repeatable
    #[arg(long, value_name = "QUEUE=SECONDS", value_parser = queue_limit)]
    max_reservation: Vec<(String, i64)>,
}

fn client_id(text: &str) -> Result<String, String> {
    if text.starts_with('-') {
        return Err("a client id does not begin with '-'".into());
    }
    Ok(text.to_owned())
}

/// `QUEUE=N`, for `--max-priority` and `--max-reservation`.
fn queue_limit(text: &str) -> Result<(String, i64), String> {
    let (queue, n) = text
        .split_once('=')
        .ok_or_else(|| format!("takes QUEUE=N, not {text:?}"))?;
    let n = n
        .parse()
        .map_err(|_| format!("{n:?} is not a whole number"))?;
    Ok((queue.to_owned(), n))
}

/// The `create-client` arguments, as a client-permissions body.
struct NewClient {
    client_id: String,
    body: serde_json::Map<String, serde_json::Value>,
}

impl CreateClient {
    /// The client-permissions body of the fields given; `--secret -` reads
    /// the secret from standard input here.
    fn into_new_client(self) -> Result<NewClient, String> {
        use serde_json::{json, Map};
        let mut body = Map::new();
        if let Some(mut secret) = self.secret {
            if secret == "-" {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| format!("cannot read the secret from standard input: {e}"))?;
                secret = line.trim_end_matches(['\r', '\n']).to_owned();
            }
            body.insert("client_secret".into(), json!(secret));
        }
        if let Some(role) = self.role {
            body.insert("role".into(), json!(role));
        }
        if !self.allowed_queue.is_empty() {
            body.insert("allowed_queues".into(), json!(self.allowed_queue));
        }
        for (field, limits) in [
            ("max_priority", self.max_priority),
            ("max_reservation_time", self.max_reservation),
        ] {
            if !limits.is_empty() {
                // A queue given twice: the last value wins.
                let map: Map<_, _> = limits
                    .into_iter()
                    .map(|(queue, n)| (queue, json!(n)))
                    .collect();
                body.insert(field.into(), map.into());
            }
        }
        Ok(NewClient {
            client_id: self.client_id,
            body,
        })
    }
}

fn main() -> ExitCode {
    let command = Cli::parse().into_command();
    match command {
        Command::Serve(Serve { bind }) => run(serve(bind)),
        Command::Setup => run(setup()),
        Command::CreateClient(args) => match args.into_new_client() {
            Ok(client) => run(create_client(client)),
            Err(problem) => {
                eprintln!("testflinger-local: {problem}");
                ExitCode::from(2)
            }
        },
        Command::Preload(preload) => run(preload_jobs(preload)),
    }
}

/// Runs an async command to completion; its error is the exit message.
fn run(command: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("testflinger-local: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("testflinger-local: {problem}");
            ExitCode::FAILURE
        }
    }
}

async fn setup() -> Result<(), String> {
    let config = Config::load().map_err(|e| format!("configuration error: {e}"))?;
    telemetry::init(config.log_format);
    let done = Backends::setup(&config)
        .await
        .map_err(|e| format!("setup failed: {e}"))?;
    for step in done {
        println!("ready: {step}");
    }
    Ok(())
}

async fn create_client(new: NewClient) -> Result<(), String> {
    use testflinger_shared::app::{App, Settings};
    use testflinger_shared::permissions::Actor;
    use testflinger_shared::Error;
    let config = Config::load().map_err(|e| format!("configuration error: {e}"))?;
    let backends = Backends::open(&config)
        .await
        .map_err(|e| format!("cannot open the store: {e}"))?;
    // The same update flow as `PUT /v1/client-permissions/{id}`, by the
    // operator, who may do anything.
    let app = App::new(Settings::new(&config), backends);
    let change = app
        .update_client(Actor::Operator, &new.client_id, &new.body)
        .await
        .map_err(|e| match e {
            Error::Validation { fields, .. } => fields
                .iter()
                .map(|(field, problems)| format!("{field}: {}", problems.join(" ")))
                .collect::<Vec<_>>()
                .join("; "),
            other => format!("cannot write client {:?}: {other}", new.client_id),
        })?;
    if change.revoked_tokens > 0 {
        println!(
            "revoked {} refresh token(s) issued under the old secret",
            change.revoked_tokens
        );
    }
    println!(
        "{} client {} with the role {} in the {}",
        if change.created { "created" } else { "updated" },
        change.client.client_id,
        change.client.role.as_str(),
        Backends::describe(&config)
    );
    Ok(())
}

/// A small, realistic job for queue `queue`, validated like a submission.
fn preload_job(
    queue: &str,
    n: u64,
    now: Timestamp,
) -> Result<testflinger_shared::job::NewJob, String> {
    use serde_json::json;
    let body = json!({
        "job_queue": queue,
        "name": format!("preloaded job {n}"),
        "tags": ["preload", "loadgen"],
        "provision_data": {"url": "http://images.example.invalid/noble/server-arm64.img.xz"},
        "test_data": {"test_cmds": "ssh $DEVICE_IP uname -a\nssh $DEVICE_IP lsb_release -a"},
    });
    testflinger_shared::job::validate_submission(body, now)
        .map_err(|e| format!("the preloaded job is not valid: {e}"))
}

async fn preload_jobs(preload: Preload) -> Result<(), String> {
    use std::time::Instant;
    let config = Config::load().map_err(|e| format!("configuration error: {e}"))?;
    let backends = Backends::open(&config)
        .await
        .map_err(|e| format!("cannot open the store: {e}"))?;
    let store = backends.store;
    eprintln!(
        "preloading {} jobs over {} queues ({}0 to {}{}) in the {}",
        preload.jobs,
        preload.queues,
        preload.prefix,
        preload.prefix,
        preload.queues - 1,
        Backends::describe(&config)
    );
    let queues: Vec<String> = (0..preload.queues)
        .map(|i| format!("{}{i}", preload.prefix))
        .collect();
    let started = Instant::now();
    let mut last_report = started;
    let mut written = 0u64;
    let mut batch = Vec::with_capacity(PRELOAD_BATCH);
    while written < preload.jobs {
        let size = (preload.jobs - written).min(PRELOAD_BATCH as u64);
        let now = Timestamp::now();
        batch.clear();
        for n in written..written + size {
            batch.push(preload_job(
                &queues[(n % queues.len() as u64) as usize],
                n,
                now,
            )?);
        }
        store
            .insert_jobs(&batch)
            .await
            .map_err(|e| format!("cannot store jobs (after {written} written): {e}"))?;
        written += size;
        // Progress every few seconds, not every batch.
        if last_report.elapsed() >= PRELOAD_PROGRESS_EVERY && written < preload.jobs {
            last_report = Instant::now();
            eprintln!(
                "{written} of {} jobs written ({:.0} jobs/s so far)",
                preload.jobs,
                written as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "preloaded {written} jobs in {elapsed:.1} s = {:.0} jobs/s",
        written as f64 / elapsed.max(1e-9)
    );
    Ok(())
}

async fn serve(bind: SocketAddr) -> Result<(), String> {
    let config = Config::load().map_err(|e| format!("configuration error: {e}"))?;
    telemetry::init(config.log_format);
    // Before anything opens descriptors: the open-file limit is raised first.
    let guards = server::Guards::resolve(config.serving);
    server::return_large_blocks_to_the_system();
    // The deploy step is idempotent and quick: a harness on MongoDB never
    // serves without its indexes (Lambda functions cannot run it; they log
    // how to when a claim finds them missing).
    let embedded = matches!(
        (&config.store, &config.blobs),
        (StoreConfig::Embedded, BlobConfig::Filesystem)
    );
    if !embedded {
        for step in Backends::setup(&config)
            .await
            .map_err(|e| format!("cannot prepare the storage backends: {e}"))?
        {
            tracing::info!("ready: {step}");
        }
    }
    let backends = Backends::open(&config)
        .await
        .map_err(|e| format!("cannot open the storage backends: {e}"))?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        "Testflinger server listening on http://{address} ({})",
        Backends::describe(&config)
    );
    let sweeper = tokio::spawn(sweep_forever(backends.clone(), config.retention_days));
    tracing::info!(
        max_connections = guards.max_connections,
        open_files = guards.open_files,
        header_timeout_s = guards.serving.header_timeout.as_secs(),
        idle_timeout_s = guards.serving.idle_timeout.as_secs(),
        buffer_budget_mib = guards.serving.buffer_budget >> 20,
        "connection guards"
    );
    let state = AppState::new(&config, backends);
    let lease_sweeper = tokio::spawn(sweep_leases_forever(
        state.app.clone(),
        Duration::from_secs(config.leases.sweep_seconds),
    ));
    let metrics_server = match config.serving.metrics_bind {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
                format!("cannot listen on {address} (TESTFLINGER_METRICS_BIND): {e}")
            })?;
            let metrics = testflinger_functions::endpoint_app("metrics", state.clone())
                .expect("the route table has /metrics");
            tracing::info!(
                "metrics on http://{}/metrics",
                listener.local_addr().map_err(|e| e.to_string())?
            );
            Some(tokio::spawn(async move {
                let service =
                    axum::ServiceExt::<axum::extract::Request>::into_make_service(metrics);
                if let Err(e) = axum::serve(listener, service).await {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            }))
        }
        None => None,
    };
    let mut state = state;
    state.serves_metrics = config.serving.metrics_bind.is_none();
    let service = app(state);
    let result = server::serve(listener, service, guards, shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"));
    sweeper.abort();
    lease_sweeper.abort();
    if let Some(server) = metrics_server {
        server.abort();
    }
    tracing::info!("stopped");
    result
}

/// Deletes expired jobs and blobs now and then (MongoDB does this with TTL
/// indexes; the embedded store needs this sweep).
async fn sweep_forever(backends: Backends, days: u32) {
    let mut ticks = tokio::time::interval(retention::SWEEP_INTERVAL);
    loop {
        ticks.tick().await;
        match retention::sweep(&backends, days, Timestamp::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "expired jobs removed"),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
        }
    }
}

/// Requeues the jobs of agents gone silent past their lease, and ends
/// those on their last attempt (under Lambda: the `lease-sweep` function).
async fn sweep_leases_forever(app: std::sync::Arc<testflinger_shared::app::App>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        match app.sweep_leases(Timestamp::now()).await {
            Ok(report) if report == Default::default() => {}
            Ok(report) => tracing::info!(
                requeued = report.requeued,
                ended = report.failed,
                "expired leases swept"
            ),
            Err(e) => tracing::warn!(error = %e, "lease sweep failed"),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The command of these arguments, as `main` would run it.
    fn parse_args(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("testflinger-local").chain(args.iter().copied()))
            .map(Cli::into_command)
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert()
    }

    #[test]
    fn no_arguments_serve_on_localhost_8000() {
        let Ok(Command::Serve(Serve { bind })) = parse_args(&[]) else {
            panic!("expected serve")
        };
        assert_eq!(bind.to_string(), "127.0.0.1:8000");
    }

    #[test]
    fn setup_is_a_subcommand() {
        assert!(matches!(parse_args(&["setup"]), Ok(Command::Setup)));
        assert!(parse_args(&["setup", "--bind", "x"]).is_err());
    }

    #[test]
    fn create_client_takes_its_permissions() {
        let Ok(Command::CreateClient(args)) = parse_args(&[
            "create-client",
            "ci-admin",
            "--secret",
            "a secret of some length",
            "--role",
            "admin",
            "--max-priority",
            "rpi=10",
            "--max-priority",
            "*=2",
            "--allowed-queue",
            "secure",
            "--max-reservation",
            "rpi=36000",
        ]) else {
            panic!("expected create-client")
        };
        let new = args.into_new_client().unwrap();
        assert_eq!(new.client_id, "ci-admin");
        assert_eq!(
            serde_json::Value::Object(new.body),
            serde_json::json!({
                "client_secret": "a secret of some length",
                "role": "admin",
                "max_priority": {"rpi": 10, "*": 2},
                "allowed_queues": ["secure"],
                "max_reservation_time": {"rpi": 36000},
            })
        );
        assert!(parse_args(&["create-client"]).is_err());
        assert!(parse_args(&["create-client", "x", "--max-priority", "q"]).is_err());
        assert!(parse_args(&["create-client", "x", "--colour", "red"]).is_err());
    }

    #[test]
    fn create_client_sends_only_the_fields_given() {
        let Ok(Command::CreateClient(args)) =
            parse_args(&["create-client", "ci", "--secret", "-starts-with-a-dash"])
        else {
            panic!("expected create-client")
        };
        let new = args.into_new_client().unwrap();
        assert_eq!(
            serde_json::Value::Object(new.body),
            serde_json::json!({"client_secret": "-starts-with-a-dash"})
        );
    }

    #[test]
    fn bad_arguments_name_the_problem() {
        for (args, expected) in [
            (
                &["create-client", "x", "--max-priority", "q"][..],
                "QUEUE=N",
            ),
            (
                &["create-client", "x", "--max-reservation", "q=long"],
                "not a whole number",
            ),
            (&["create-client", "-x"], "-x"),
            (&["create-client", "-"], "does not begin with '-'"),
            (&["preload", "--jobs", "-1"], "not a whole number"),
            (
                &["preload", "--jobs", "5", "--prefix", ""],
                "must not be empty",
            ),
            (&["create-client", "x", "--colour", "red"], "--colour"),
        ] {
            let problem = parse_args(args).expect_err("an error").to_string();
            assert!(problem.contains(expected), "{args:?}: {problem}");
        }
    }

    #[test]
    fn preload_takes_a_job_count_and_optional_queues() {
        let Ok(Command::Preload(preload)) = parse_args(&["preload", "--jobs", "1000000"]) else {
            panic!("expected preload")
        };
        assert_eq!(
            preload,
            Preload {
                jobs: 1_000_000,
                queues: 100,
                prefix: "loadgen-q".into()
            }
        );
        let Ok(Command::Preload(preload)) = parse_args(&[
            "preload", "--queues", "3", "--prefix", "rpi-", "--jobs", "7",
        ]) else {
            panic!("expected preload")
        };
        assert_eq!((preload.jobs, preload.queues), (7, 3));
        assert_eq!(preload.prefix, "rpi-");
        assert!(parse_args(&["preload"]).is_err());
        assert!(parse_args(&["preload", "--jobs", "-1"]).is_err());
        assert!(parse_args(&["preload", "--jobs", "5", "--queues", "0"]).is_err());
        assert!(parse_args(&["preload", "--jobs", "5", "--prefix", " "]).is_err());
        assert!(parse_args(&["preload", "--jobs", "5", "--colour", "red"]).is_err());
        assert!(parse_args(&["--bind", "127.0.0.1:1", "preload", "--jobs", "5"]).is_err());
    }

    #[test]
    fn preloaded_jobs_are_valid_submissions() {
        let job = preload_job("loadgen-q7", 42, Timestamp::from_millis(1)).unwrap();
        assert_eq!(job.job_queue, "loadgen-q7");
        assert_eq!(job.job_data["name"], "preloaded job 42");
        assert!(job.job_data["test_data"]["test_cmds"].is_string());
        assert_eq!(job.attachments_status, None);
    }

    #[test]
    fn bind_changes_the_address() {
        for args in [
            &["--bind", "0.0.0.0:9000"][..],
            &["--bind=0.0.0.0:9000"],
            &["serve", "--bind", "0.0.0.0:9000"],
        ] {
            let Ok(Command::Serve(Serve { bind })) = parse_args(args) else {
                panic!("expected serve: {args:?}")
            };
            assert_eq!(bind.to_string(), "0.0.0.0:9000");
        }
        let problem = parse_args(&["--bind", "nowhere"]).unwrap_err().to_string();
        assert!(problem.contains("not an address"), "{problem}");
        assert!(parse_args(&["--frobnicate"]).is_err());
    }

    #[test]
    fn help_is_not_an_error_and_lists_the_settings() {
        let help = parse_args(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let text = help.to_string();
        assert!(text.contains("--secret -"), "{text}");
        assert!(text.contains("TESTFLINGER_CONFIG"), "{text}");
        assert!(text.contains("JWT_SIGNING_KEY"), "{text}");
    }
}
