//! Starting the harness binary for black-box tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BINARY: &str = env!("CARGO_BIN_EXE_testflinger-local");

/// A running harness on a free port; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// Every line the server has logged so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    env: Vec<(String, String)>,
    _data: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts the harness with extra environment variables.
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        Self::start_in(Command::new(BINARY), env)
    }

    /// Starts the harness under `sh` with its open-file limit set by
    /// `ulimit` first (`-Sn 256` lowers the soft limit only, `-n 64` both).
    pub fn start_with_ulimit(ulimit: &str, env: &[(&str, &str)]) -> Server {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit {ulimit} && exec \"$0\" \"$@\""),
            BINARY,
        ]);
        Self::start_in(command, env)
    }

    fn start_in(command: Command, env: &[(&str, &str)]) -> Server {
        let data = tempfile::tempdir().unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let log = std::sync::Arc::default();
        let (child, base) = spawn(command, data.path(), &env, std::sync::Arc::clone(&log));
        Server {
            child,
            base,
            log,
            env,
            _data: data,
        }
    }

    /// Kills the harness with SIGKILL, as a crash or an OOM kill would, and
    /// starts it again on the same data and settings (on a new port).
    pub fn kill_and_restart(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
        let (child, base) = spawn(
            Command::new(BINARY),
            self._data.path(),
            &self.env,
            std::sync::Arc::clone(&self.log),
        );
        self.child = child;
        self.base = base;
    }

    /// The data folder the harness runs on (its embedded store).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._data.path().join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The `host:port` the harness listens on.
    pub fn address(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// Whether a log line so far contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(text))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the harness on a free port over `folder`; answers the child and
/// its base URL once it listens.
fn spawn(
    mut command: Command,
    folder: &std::path::Path,
    env: &[(String, String)],
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> (Child, String) {
    let mut child = command
        .args(["--bind", "127.0.0.1:0"])
        .current_dir(folder)
        .env("TESTFLINGER_DATA_DIR", folder.join("data"))
        .env_remove("TESTFLINGER_CONFIG")
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the harness binary starts");
    let base = listening_address(&mut child, log);
    (child, base)
}

/// Reads the start-up log until the line that names the bound address, then
/// keeps draining the log in the background so the server never blocks on it.
fn listening_address(
    child: &mut Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> String {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        let mut early = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut log) = log.lock() {
                log.push(line.clone());
            }
            if !sent {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(Ok(address));
                    sent = true;
                } else {
                    early.push(line);
                }
            }
        }
        if !sent {
            let _ = tx.send(Err(early.join("\n")));
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(address)) => address,
        Ok(Err(log)) => panic!("the harness stopped before listening:\n{log}"),
        Err(_) => panic!("the harness did not log the address it listens on"),
    }
}

/// Runs `testflinger-local create-client` on a data folder, with the secret
/// on standard input; returns (success, stdout + stderr).
pub fn create_client(data_dir: &std::path::Path, args: &[&str], secret: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(BINARY)
        .arg("create-client")
        .args(args)
        .env("TESTFLINGER_DATA_DIR", data_dir)
        .env_remove("TESTFLINGER_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A refused argument ends the child before it reads its input: the
    // write may then meet a closed pipe, which is not the test's failure.
    let _ = writeln!(child.stdin.take().unwrap(), "{secret}");
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
