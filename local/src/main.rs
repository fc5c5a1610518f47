//! The Testflinger server on one port, for a laptop or a lab without AWS:
//! every endpoint of the route table behind one router.
//!
//! ```text
//! testflinger-local [serve] [--bind ADDR:PORT]
//! testflinger-local setup
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

serve (the default) serves the Testflinger API on one port (default
127.0.0.1:8000). setup prepares the configured backends once per deployment
(MongoDB indexes, including the retention TTLs, and the S3 bucket); running
it again changes nothing.

Configuration comes from the environment and from the file named by
TESTFLINGER_CONFIG (default ./testflinger.conf, if present); see README.md.

Options:
  --bind ADDR:PORT   address to listen on (0.0.0.0:8000 opens it to the network)
  -h, --help         this text
";

enum Command {
    Serve { bind: SocketAddr },
    Setup,
    Help,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut bind = DEFAULT_BIND.to_owned();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "serve" => {}
            "setup" if args.len() == 1 => return Ok(Command::Setup),
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
    fn bind_changes_the_address() {
        let Ok(Command::Serve { bind }) = parse_args(&args(&["--bind", "0.0.0.0:9000"])) else {
            panic!("expected serve")
        };
        assert_eq!(bind.to_string(), "0.0.0.0:9000");
        assert!(parse_args(&args(&["--bind", "nowhere"])).is_err());
        assert!(parse_args(&args(&["--frobnicate"])).is_err());
    }
}
