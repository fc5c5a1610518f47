//! The Testflinger server on one port, for a laptop or a lab without AWS:
//! every endpoint of the route table behind one router.
//!
//! ```text
//! testflinger-local [serve] [--bind ADDR:PORT]
//! testflinger-local setup
//! testflinger-local create-client CLIENT_ID --secret SECRET --role ROLE [...]
//! testflinger-local preload --jobs N [--queues Q] [--prefix NAME]
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use testflinger_functions::{app, telemetry, AppState};
use testflinger_shared::backends::Backends;
use testflinger_shared::config::{Config, KEYS};
use testflinger_shared::{retention, Timestamp};

const DEFAULT_BIND: &str = "127.0.0.1:8000";

const USAGE: &str = "\
Usage: testflinger-local [serve] [--bind ADDR:PORT]
       testflinger-local setup
       testflinger-local create-client CLIENT_ID --secret SECRET --role ROLE
                 [--max-priority QUEUE=N]... [--allowed-queue QUEUE]...
                 [--max-reservation QUEUE=SECONDS]...
       testflinger-local preload --jobs N [--queues Q] [--prefix NAME]

serve (the default) serves the Testflinger API on one port (default
127.0.0.1:8000). setup prepares the configured backends once per deployment
(MongoDB indexes, including the retention TTLs, and the S3 bucket); running
it again changes nothing. create-client writes a client straight to the
configured store, with its secret hashed, so that a fresh deployment gets
its first admin without the API; an existing client gets the fields given.
`--secret -` reads the secret from the first line of standard input, which
keeps it out of the process list and the shell history. QUEUE may be \"*\"
(any queue). preload writes N waiting jobs straight to the configured store,
round-robin over Q queues named NAME0, NAME1, ... (default 100 queues named
loadgen-q0 to loadgen-q99, those of testflinger-loadgen), in batches of
10,000: a fast way to give benchmarks a deep backlog.

Configuration comes from the environment and from the file named by
TESTFLINGER_CONFIG (default ./testflinger.conf, if present); see README.md.

Options:
  --bind ADDR:PORT   address to listen on (0.0.0.0:8000 opens it to the network)
  -h, --help         this text
";

enum Command {
    Serve { bind: SocketAddr },
    Setup,
    CreateClient(NewClient),
    Preload(Preload),
    Help,
}

/// The `preload` arguments.
#[derive(Debug, PartialEq, Eq)]
struct Preload {
    jobs: u64,
    queues: usize,
    prefix: String,
}

/// Jobs written per `insert_jobs` call by `preload`.
const PRELOAD_BATCH: usize = 10_000;
/// How often `preload` reports its progress.
const PRELOAD_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The value after an option, or an error naming the option.
fn option_value<'a>(
    rest: &mut impl Iterator<Item = &'a String>,
    name: &str,
) -> Result<String, String> {
    rest.next()
        .cloned()
        .ok_or_else(|| format!("{name} needs a value"))
}

fn parse_preload(args: &[String]) -> Result<Preload, String> {
    let mut jobs = None;
    let mut preload = Preload {
        jobs: 0,
        queues: 100,
        prefix: "loadgen-q".into(),
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| option_value(&mut rest, name);
        match arg.as_str() {
            "--jobs" => {
                let text = value("--jobs")?;
                jobs = Some(
                    text.parse::<u64>()
                        .map_err(|_| format!("--jobs {text:?} is not a whole number"))?,
                );
            }
            "--queues" => {
                let text = value("--queues")?;
                preload.queues = text
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--queues {text:?} is not a whole number above 0"))?;
            }
            "--prefix" => {
                preload.prefix = value("--prefix")?;
                if preload.prefix.trim().is_empty() {
                    return Err("--prefix must not be empty".into());
                }
            }
            other => return Err(format!("preload: unknown argument {other:?}")),
        }
    }
    preload.jobs = jobs.ok_or("preload needs --jobs N")?;
    Ok(preload)
}

/// The `create-client` arguments, as a client-permissions body.
struct NewClient {
    client_id: String,
    body: serde_json::Map<String, serde_json::Value>,
}

fn parse_create_client(args: &[String]) -> Result<NewClient, String> {
    use serde_json::{json, Map, Value};
    let mut rest = args.iter();
    let client_id = rest
        .next()
        .filter(|id| !id.starts_with('-'))
        .ok_or("create-client needs a client id first")?
        .clone();
    let mut body = Map::new();
    let limits = |key: &str, text: &str, body: &mut Map<String, Value>| -> Result<(), String> {
        let (queue, n) = text
            .split_once('=')
            .ok_or_else(|| format!("--{key} takes QUEUE=N, not {text:?}"))?;
        let n: i64 = n
            .parse()
            .map_err(|_| format!("--{key} {text:?}: {n:?} is not a whole number"))?;
        let field = key.replace('-', "_");
        let field = if field == "max_reservation" {
            "max_reservation_time".to_owned()
        } else {
            field
        };
        let map = body.entry(field).or_insert_with(|| json!({}));
        map[queue] = json!(n);
        Ok(())
    };
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| option_value(&mut rest, name);
        match arg.as_str() {
            "--secret" => {
                let mut secret = value("--secret")?;
                if secret == "-" {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .map_err(|e| format!("cannot read the secret from standard input: {e}"))?;
                    secret = line.trim_end_matches(['\r', '\n']).to_owned();
                }
                body.insert("client_secret".into(), json!(secret));
            }
            "--role" => {
                body.insert("role".into(), json!(value("--role")?));
            }
            "--allowed-queue" => {
                let queue = value("--allowed-queue")?;
                let list = body.entry("allowed_queues").or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut() {
                    list.push(json!(queue));
                }
            }
            "--max-priority" => limits("max-priority", &value("--max-priority")?, &mut body)?,
            "--max-reservation" => {
                limits("max-reservation", &value("--max-reservation")?, &mut body)?
            }
            other => return Err(format!("create-client: unknown argument {other:?}")),
        }
    }
    Ok(NewClient { client_id, body })
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut bind = DEFAULT_BIND.to_owned();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "serve" => {}
            "setup" if args.len() == 1 => return Ok(Command::Setup),
            "create-client" if arg == &args[0] => {
                return parse_create_client(&args[1..]).map(Command::CreateClient)
            }
            "preload" if arg == &args[0] => return parse_preload(&args[1..]).map(Command::Preload),
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "--bind" => {
                bind = rest
                    .next()
                    .ok_or("--bind needs an address such as 127.0.0.1:8000")?
                    .clone();
            }
            other if other.starts_with("--bind=") => bind = other["--bind=".len()..].to_owned(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let bind = bind
        .parse()
        .map_err(|_| format!("--bind {bind:?} is not an address such as 127.0.0.1:8000"))?;
    Ok(Command::Serve { bind })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_args(&args) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("testflinger-local: {problem}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}\nSettings:\n");
            for (key, meaning) in KEYS {
                println!("  {key:<36} {meaning}");
            }
            ExitCode::SUCCESS
        }
        Command::Serve { bind } => run(serve(bind)),
        Command::Setup => run(setup()),
        Command::CreateClient(client) => run(create_client(client)),
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
    let service = app(AppState::new(&config, backends));
    let result = axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service(service),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| format!("server error: {e}"));
    sweeper.abort();
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

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_arguments_serve_on_localhost_8000() {
        let Ok(Command::Serve { bind }) = parse_args(&[]) else {
            panic!("expected serve")
        };
        assert_eq!(bind.to_string(), "127.0.0.1:8000");
    }

    #[test]
    fn setup_is_a_subcommand() {
        assert!(matches!(parse_args(&args(&["setup"])), Ok(Command::Setup)));
        assert!(parse_args(&args(&["setup", "--bind", "x"])).is_err());
    }

    #[test]
    fn create_client_takes_its_permissions() {
        let Ok(Command::CreateClient(new)) = parse_args(&args(&[
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
        ])) else {
            panic!("expected create-client")
        };
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
        assert!(parse_args(&args(&["create-client"])).is_err());
        assert!(parse_args(&args(&["create-client", "x", "--max-priority", "q"])).is_err());
        assert!(parse_args(&args(&["create-client", "x", "--colour", "red"])).is_err());
    }

    #[test]
    fn preload_takes_a_job_count_and_optional_queues() {
        let Ok(Command::Preload(preload)) = parse_args(&args(&["preload", "--jobs", "1000000"]))
        else {
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
        let Ok(Command::Preload(preload)) = parse_args(&args(&[
            "preload", "--queues", "3", "--prefix", "rpi-", "--jobs", "7",
        ])) else {
            panic!("expected preload")
        };
        assert_eq!((preload.jobs, preload.queues), (7, 3));
        assert_eq!(preload.prefix, "rpi-");
        assert!(parse_args(&args(&["preload"])).is_err());
        assert!(parse_args(&args(&["preload", "--jobs", "-1"])).is_err());
        assert!(parse_args(&args(&["preload", "--jobs", "5", "--queues", "0"])).is_err());
        assert!(parse_args(&args(&["preload", "--jobs", "5", "--colour", "red"])).is_err());
        assert!(parse_args(&args(&["--bind", "127.0.0.1:1", "preload", "--jobs", "5"])).is_err());
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
        let Ok(Command::Serve { bind }) = parse_args(&args(&["--bind", "0.0.0.0:9000"])) else {
            panic!("expected serve")
        };
        assert_eq!(bind.to_string(), "0.0.0.0:9000");
        assert!(parse_args(&args(&["--bind", "nowhere"])).is_err());
        assert!(parse_args(&args(&["--frobnicate"])).is_err());
    }
}
