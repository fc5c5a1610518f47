//! Typed configuration, read once at start-up (DESIGN.md §2).
//!
//! Values come from the environment and from an optional file named by
//! `TESTFLINGER_CONFIG` (default `testflinger.conf` in the working folder,
//! used only if it exists) made of `KEY = "value"` lines. The environment
//! wins. A bad value stops start-up with a message naming the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::role::AuthMode;
use crate::secrets::SecretsKey;

/// Every key the server reads, with its meaning; the file may hold no other.
pub const KEYS: &[(&str, &str)] = &[
    ("TESTFLINGER_CONFIG", "path of this file (environment only)"),
    (
        "TESTFLINGER_DATA_DIR",
        "folder of the embedded database and blob files",
    ),
    ("TESTFLINGER_MAX_JSON_SIZE", "largest JSON request body"),
    ("TESTFLINGER_MAX_LOG_FRAGMENT_SIZE", "largest log fragment"),
    (
        "TESTFLINGER_MAX_BLOB_SIZE",
        "largest artifact or attachments upload",
    ),
    (
        "TESTFLINGER_MAX_JSON_KEYS_PER_OBJECT",
        "most keys in one object of a JSON body (default 1000)",
    ),
    (
        "TESTFLINGER_MAX_JSON_KEYS",
        "most keys in a whole JSON body (default 10000)",
    ),
    (
        "TESTFLINGER_MAX_JSON_DEPTH",
        "deepest nesting of a JSON body (default 32, at most 64)",
    ),
    (
        "TESTFLINGER_RESULT_LOG_TAIL",
        "bytes of each phase's log a result answer carries (default 1MiB)",
    ),
    (
        "TESTFLINGER_RETENTION_DAYS",
        "days jobs, results and blobs are kept",
    ),
    (
        "TESTFLINGER_LEASE_SECONDS",
        "seconds a claimed job stays with an agent that says nothing about it (default 16200)",
    ),
    (
        "TESTFLINGER_MAX_ATTEMPTS",
        "claims a job gets when it does not set max_attempts (default 2)",
    ),
    (
        "TESTFLINGER_LEASE_SWEEP_SECONDS",
        "seconds between the harness's sweeps of expired leases (default 30)",
    ),
    (
        "TESTFLINGER_AGENT_OFFLINE_SECONDS",
        "seconds without a word from an agent before listings show it silent (default 300)",
    ),
    ("TESTFLINGER_LOG_FORMAT", "text or json"),
    (
        "TESTFLINGER_HEADER_TIMEOUT",
        "seconds for a request head to arrive from its first byte (default 10)",
    ),
    (
        "TESTFLINGER_IDLE_TIMEOUT",
        "seconds a keep-alive connection may wait idle (default 60)",
    ),
    (
        "TESTFLINGER_SEND_TIMEOUT",
        "seconds an answer may wait for a client that does not read (default 60)",
    ),
    (
        "TESTFLINGER_BODY_TIMEOUT",
        "seconds a request body may stall before the minimum rate applies (default 20)",
    ),
    (
        "TESTFLINGER_MIN_BODY_RATE",
        "bytes per second a request body must average (default 1KiB)",
    ),
    (
        "TESTFLINGER_MAX_CONNECTIONS",
        "open connections at most (default: half the open-file limit)",
    ),
    (
        "TESTFLINGER_METRICS_BIND",
        "host:port to serve GET /metrics on instead of the main port (default: the main port)",
    ),
    (
        "TESTFLINGER_BUFFER_BUDGET",
        "memory for request bodies read whole, all requests together (default 256MiB)",
    ),
    ("MONGODB_URI", "MongoDB connection string (selects MongoDB)"),
    ("MONGO_URI", "the same, upstream's older name"),
    (
        "MONGODB_HOST",
        "MongoDB host, when no URI is given (default mongo)",
    ),
    ("MONGODB_PORT", "MongoDB port (default 27017)"),
    ("MONGODB_USERNAME", "MongoDB user"),
    ("MONGODB_PASSWORD", "MongoDB password"),
    (
        "MONGODB_DATABASE",
        "database name (default: the URI's, else testflinger)",
    ),
    (
        "MONGODB_AUTH_SOURCE",
        "database that holds the MongoDB user",
    ),
    (
        "MONGODB_MAX_POOL_SIZE",
        "connections per process (default 10; 2 under Lambda)",
    ),
    (
        "MONGODB_CONNECT_TIMEOUT",
        "seconds to wait for MongoDB at start-up (default 10)",
    ),
    (
        "MONGODB_COMMAND_METRICS",
        "true: time every MongoDB command for /metrics (the driver then copies each command and reply; default false)",
    ),
    (
        "ARTIFACT_BUCKET",
        "S3 bucket for artifacts and attachments (selects S3)",
    ),
    ("S3_FORCE_PATH_STYLE", "true for path-style S3 servers"),
    ("AWS_ENDPOINT_URL_S3", "S3 endpoint (default: AWS)"),
    ("AWS_ENDPOINT_URL", "endpoint of every AWS service"),
    (
        "AWS_REGION",
        "AWS region (default us-east-1 with a custom endpoint)",
    ),
    (
        "AWS_ACCESS_KEY_ID",
        "S3 access key (default: the SDK's credential chain)",
    ),
    ("AWS_SECRET_ACCESS_KEY", "S3 secret key"),
    ("AWS_SESSION_TOKEN", "S3 session token"),
    (
        "JWT_SIGNING_KEY",
        "HS256 key of access tokens (selects the standard auth mode)",
    ),
    ("TESTFLINGER_AUTH_MODE", "open, standard or strict"),
    (
        "JWT_LEEWAY",
        "seconds of clock skew allowed on tokens (default 5)",
    ),
    (
        "TESTFLINGER_SECRETS_KEY",
        "base64 of 32 random bytes that encrypt stored secrets (enables secrets)",
    ),
    (
        "WEBHOOK_URL",
        "scheme and host that job status webhooks may be relayed to",
    ),
    (
        "WEBHOOK_URLS",
        "comma-separated further schemes and hosts webhooks may be relayed to",
    ),
    ("WEBHOOK_AUTH", "bearer token sent with relayed webhooks"),
];

pub const DEFAULT_CONFIG_FILE: &str = "testflinger.conf";
pub const DEFAULT_DATA_DIR: &str = "testflinger-data";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{key} = {value:?} is not valid: {problem}")]
    Invalid {
        key: String,
        value: String,
        problem: String,
    },
    #[error("configuration file {path}: {problem}")]
    File { path: String, problem: String },
}

/// Request and upload size limits in bytes (SPEC.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub json_body: u64,
    pub log_fragment: u64,
    pub blob: u64,
    /// Keys one object of a JSON body may hold.
    pub json_keys_per_object: u64,
    /// Keys a whole JSON body may hold, at every level.
    pub json_keys: u64,
    /// Levels a JSON body may nest (the body's object is level 1).
    pub json_depth: u64,
    /// Bytes of each phase's log that `GET /v1/result/{id}` assembles: the
    /// tail; the rest is read from the logs endpoint.
    pub result_log_tail: u64,
}

/// The deepest nesting a setting may allow: within what every backend
/// stores (MongoDB nests documents 100 deep, and a body sits two levels
/// down in its document) and below serde_json's own recursion limit.
pub const MAX_JSON_DEPTH: u64 = crate::validation::MAX_DEPTH as u64;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            json_body: 16 << 20,
            log_fragment: 4 << 20,
            blob: 2 << 30,
            json_keys_per_object: 1_000,
            json_keys: 10_000,
            json_depth: 32,
            result_log_tail: 1 << 20,
        }
    }
}

impl Limits {
    /// The shape a JSON body may have.
    pub fn json_shape(&self) -> crate::validation::JsonShape {
        crate::validation::JsonShape {
            keys_per_object: self.json_keys_per_object,
            total_keys: self.json_keys,
            depth: self.json_depth,
        }
    }
}

/// How the harness guards its connections and memory against slow, idle
/// or greedy clients (under Lambda the API gateway does the connection
/// part; the buffer budget applies everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serving {
    /// A request head must arrive whole within this time of its first byte.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request under way is closed after this.
    pub idle_timeout: Duration,
    /// A response write that makes no progress for this long ends the
    /// connection (a client that stops reading).
    pub send_timeout: Duration,
    /// A request body may stall this long in all before it must keep up
    /// `min_body_rate` on average over the time the server waits for it.
    pub body_grace: Duration,
    /// Bytes per second, averaged over the time spent waiting for the body.
    pub min_body_rate: u64,
    /// Open connections at most; `None`: half the open-file limit.
    pub max_connections: Option<usize>,
    /// Bytes of request bodies held in memory at once, across requests
    /// (503 with `Retry-After` when full).
    pub buffer_budget: u64,
    /// `TESTFLINGER_METRICS_BIND`: the harness serves `/metrics` on this
    /// address (and not on its main port); `None`: on the main port.
    pub metrics_bind: Option<std::net::SocketAddr>,
}

impl Default for Serving {
    fn default() -> Self {
        Serving {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            body_grace: Duration::from_secs(20),
            min_body_rate: 1 << 10,
            max_connections: None,
            buffer_budget: 256 << 20,
            metrics_bind: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the documents live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// SQLite in the data folder: nothing to install.
    Embedded,
    MongoDb(MongoConfig),
}

/// How to reach MongoDB.
#[derive(Clone, PartialEq, Eq)]
pub struct MongoConfig {
    pub uri: String,
    pub database: String,
    pub max_pool_size: u32,
    pub connect_timeout: Duration,
    /// `MONGODB_COMMAND_METRICS`: time each command (store latency metrics).
    pub command_metrics: bool,
    /// Kept only to blank it out of error messages.
    password: Option<String>,
}

impl MongoConfig {
    pub fn new(uri: impl Into<String>, database: impl Into<String>) -> Self {
        let uri = uri.into();
        MongoConfig {
            password: uri_password(&uri),
            uri,
            database: database.into(),
            max_pool_size: 10,
            connect_timeout: Duration::from_secs(10),
            command_metrics: false,
        }
    }

    /// `text` with the password, if any, blanked out.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        if let Some(password) = self.password.as_deref().filter(|p| !p.is_empty()) {
            out = out.replace(password, "***");
            out = out.replace(&percent_encode(password), "***");
        }
        out
    }

    /// The URI without its credentials, for logs.
    pub fn display_uri(&self) -> String {
        match self.uri.split_once("://") {
            Some((scheme, rest)) => {
                let hosts = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
                format!("{scheme}://{hosts}")
            }
            None => self.redact(&self.uri),
        }
    }
}

impl std::fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &self.display_uri())
            .field("database", &self.database)
            .field("max_pool_size", &self.max_pool_size)
            .finish()
    }
}

/// Where artifacts and attachments live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobConfig {
    /// Files in the data folder.
    Filesystem,
    S3(S3Config),
}

/// An S3-compatible bucket. Unset endpoint, region and credentials fall back
/// to the AWS SDK's own chain (environment, profile, role).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

/// Who may call without a token, how tokens are signed, and the keys of
/// the features that need one.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub signing_key: Option<String>,
    pub leeway_seconds: u64,
    /// Seals stored secrets; without it the secrets endpoints answer that
    /// this server keeps no secrets.
    pub secrets_key: Option<SecretsKey>,
    /// A scheme and host job events may be relayed to (`WEBHOOK_URL`).
    pub webhook_url: Option<String>,
    /// Further schemes and hosts trusted alike (`WEBHOOK_URLS`).
    pub webhook_urls: Vec<String>,
    pub webhook_auth: Option<String>,
}

impl AuthConfig {
    /// Every base URL job events may be relayed to: `WEBHOOK_URL` and each
    /// of `WEBHOOK_URLS`, in that order.
    pub fn trusted_webhook_urls(&self) -> Vec<String> {
        self.webhook_url
            .iter()
            .chain(&self.webhook_urls)
            .cloned()
            .collect()
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |set: bool| if set { "(hidden)" } else { "(unset)" };
        f.debug_struct("AuthConfig")
            .field("mode", &self.mode)
            .field("signing_key", &hidden(self.signing_key.is_some()))
            .field("leeway_seconds", &self.leeway_seconds)
            .field("secrets_key", &hidden(self.secrets_key.is_some()))
            .field("webhook_url", &self.webhook_url)
            .field("webhook_urls", &self.webhook_urls)
            .field("webhook_auth", &hidden(self.webhook_auth.is_some()))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub store: StoreConfig,
    pub blobs: BlobConfig,
    pub limits: Limits,
    pub serving: Serving,
    pub retention_days: u32,
    pub log_format: LogFormat,
    pub auth: AuthConfig,
    pub leases: LeaseConfig,
}

/// Claim leases (SPEC.md §11): how long a claimed job stays with an agent
/// that says nothing, and how many claims a job gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// `TESTFLINGER_LEASE_SECONDS`: a claim's lease, renewed by whatever the
    /// agent posts or reads about the job (see the README for the default).
    pub lease_seconds: u64,
    /// `TESTFLINGER_MAX_ATTEMPTS`: claims a job gets when it does not say
    /// (its `max_attempts` field); after the last lease expires it ends.
    pub max_attempts: u32,
    /// `TESTFLINGER_LEASE_SWEEP_SECONDS`: how often the harness sweeps
    /// expired leases (under Lambda the schedule in `template.yaml` rules).
    pub sweep_seconds: u64,
    /// `TESTFLINGER_AGENT_OFFLINE_SECONDS`: an agent not heard from for this
    /// long is shown silent, and a requeued job is not kept from it for
    /// the sake of another agent that is silent too.
    pub agent_offline_seconds: u64,
}

impl LeaseConfig {
    /// 4 h 30 min: the agent's default global timeout (4 h), which bounds its
    /// longest quiet stretch (a provision phase that prints nothing and has
    /// no cancel checks), plus a margin for uploads and retries.
    pub const DEFAULT_LEASE_SECONDS: u64 = 4 * 3600 + 30 * 60;
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 2;
    pub const DEFAULT_SWEEP_SECONDS: u64 = 30;
    /// 5 min: an idle agent polls every few seconds (10 s by default), a
    /// busy one posts output every 10 s, so five minutes of silence is 30
    /// missed polls, not a slow network.
    pub const DEFAULT_AGENT_OFFLINE_SECONDS: u64 = 300;
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            lease_seconds: Self::DEFAULT_LEASE_SECONDS,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            sweep_seconds: Self::DEFAULT_SWEEP_SECONDS,
            agent_offline_seconds: Self::DEFAULT_AGENT_OFFLINE_SECONDS,
        }
    }
}

impl Config {
    /// Reads the process environment and the configuration file.
    pub fn load() -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let (file, required) = match env.get("TESTFLINGER_CONFIG") {
            Some(path) => (PathBuf::from(path), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let mut values = if required || file.exists() {
            read_file(&file)?
        } else {
            HashMap::new()
        };
        values.extend(env);
        Self::from_values(&values)
    }

    /// Builds the configuration from merged key/value pairs.
    pub fn from_values(values: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            values
                .get(key)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let defaults = Limits::default();
        let limits = Limits {
            json_body: parse_or(
                get,
                "TESTFLINGER_MAX_JSON_SIZE",
                defaults.json_body,
                parse_size,
            )?,
            log_fragment: parse_or(
                get,
                "TESTFLINGER_MAX_LOG_FRAGMENT_SIZE",
                defaults.log_fragment,
                parse_size,
            )?,
            blob: parse_or(get, "TESTFLINGER_MAX_BLOB_SIZE", defaults.blob, parse_size)?,
            json_keys_per_object: parse_or(
                get,
                "TESTFLINGER_MAX_JSON_KEYS_PER_OBJECT",
                defaults.json_keys_per_object,
                |v| parse_count(v, u64::from(u32::MAX)),
            )?,
            json_keys: parse_or(get, "TESTFLINGER_MAX_JSON_KEYS", defaults.json_keys, |v| {
                parse_count(v, u64::from(u32::MAX))
            })?,
            json_depth: parse_or(
                get,
                "TESTFLINGER_MAX_JSON_DEPTH",
                defaults.json_depth,
                |v| parse_count(v, MAX_JSON_DEPTH),
            )?,
            result_log_tail: parse_or(
                get,
                "TESTFLINGER_RESULT_LOG_TAIL",
                defaults.result_log_tail,
                parse_size,
            )?,
        };
        let retention_days = parse_or(get, "TESTFLINGER_RETENTION_DAYS", 7, |v| {
            v.parse::<u32>()
                .ok()
                .filter(|d| *d > 0)
                .ok_or_else(|| "expected a whole number of days, 1 or more".to_owned())
        })?;
        let leases = LeaseConfig {
            lease_seconds: parse_or(
                get,
                "TESTFLINGER_LEASE_SECONDS",
                LeaseConfig::DEFAULT_LEASE_SECONDS,
                |v| {
                    v.parse::<u64>()
                        .ok()
                        .filter(|s| (1..=30 * 86_400).contains(s))
                        .ok_or_else(|| {
                            "expected a whole number of seconds, from 1 to 2592000".to_owned()
                        })
                },
            )?,
            max_attempts: parse_or(
                get,
                "TESTFLINGER_MAX_ATTEMPTS",
                LeaseConfig::DEFAULT_MAX_ATTEMPTS,
                |v| {
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| "expected a whole number from 1 to 100".to_owned())
                },
            )?,
            sweep_seconds: parse_or(
                get,
                "TESTFLINGER_LEASE_SWEEP_SECONDS",
                LeaseConfig::DEFAULT_SWEEP_SECONDS,
                |v| whole_seconds(v, 1, 3600),
            )?,
            agent_offline_seconds: parse_or(
                get,
                "TESTFLINGER_AGENT_OFFLINE_SECONDS",
                LeaseConfig::DEFAULT_AGENT_OFFLINE_SECONDS,
                |v| whole_seconds(v, 10, 7 * 86_400),
            )?,
        };
        let under_lambda = get("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let default_format = if under_lambda {
            LogFormat::Json
        } else {
            LogFormat::Text
        };
        let log_format = parse_or(get, "TESTFLINGER_LOG_FORMAT", default_format, |v| {
            match v.to_ascii_lowercase().as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected \"text\" or \"json\"".to_owned()),
            }
        })?;
        Ok(Config {
            data_dir: PathBuf::from(get("TESTFLINGER_DATA_DIR").unwrap_or(DEFAULT_DATA_DIR)),
            store: store_config(&get, under_lambda)?,
            blobs: blob_config(&get)?,
            limits,
            serving: serving_config(&get)?,
            retention_days,
            log_format,
            auth: auth_config(&get)?,
            leases,
        })
    }

    /// A configuration for the embedded backends in `data_dir`, all else default.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::from_values(&HashMap::new()).expect("defaults are valid");
        config.data_dir = data_dir.into();
        config
    }
}

fn serving_config<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<Serving, ConfigError> {
    let defaults = Serving::default();
    let seconds = |key: &str, default: Duration| parse_or(get, key, default, parse_seconds);
    Ok(Serving {
        header_timeout: seconds("TESTFLINGER_HEADER_TIMEOUT", defaults.header_timeout)?,
        idle_timeout: seconds("TESTFLINGER_IDLE_TIMEOUT", defaults.idle_timeout)?,
        send_timeout: seconds("TESTFLINGER_SEND_TIMEOUT", defaults.send_timeout)?,
        body_grace: seconds("TESTFLINGER_BODY_TIMEOUT", defaults.body_grace)?,
        min_body_rate: parse_or(
            get,
            "TESTFLINGER_MIN_BODY_RATE",
            defaults.min_body_rate,
            parse_size,
        )?,
        max_connections: parse_or(get, "TESTFLINGER_MAX_CONNECTIONS", None, |v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| "expected a whole number of connections, 1 or more".to_owned())
        })?,
        buffer_budget: parse_or(
            get,
            "TESTFLINGER_BUFFER_BUDGET",
            defaults.buffer_budget,
            parse_size,
        )?,
        metrics_bind: parse_or(get, "TESTFLINGER_METRICS_BIND", None, |v| {
            v.parse::<std::net::SocketAddr>()
                .map(Some)
                .map_err(|_| "expected host:port, such as 127.0.0.1:9100".to_owned())
        })?,
    })
}

/// A duration in whole seconds: `30`, `30s`, `2m`.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let (number, factor) = match text.strip_suffix('m') {
        Some(minutes) => (minutes, 60),
        None => (text.strip_suffix('s').unwrap_or(text), 1),
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(factor))
        .map(Duration::from_secs)
        .ok_or_else(|| "expected a whole number of seconds above zero, such as 30 or 2m".to_owned())
}

fn store_config<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    under_lambda: bool,
) -> Result<StoreConfig, ConfigError> {
    const SELECTING: [&str; 8] = [
        "MONGODB_URI",
        "MONGO_URI",
        "MONGODB_HOST",
        "MONGODB_PORT",
        "MONGODB_USERNAME",
        "MONGODB_PASSWORD",
        "MONGODB_DATABASE",
        "MONGODB_AUTH_SOURCE",
    ];
    if !SELECTING.iter().any(|key| get(key).is_some()) {
        return Ok(StoreConfig::Embedded);
    }
    let uri = match get("MONGODB_URI").or_else(|| get("MONGO_URI")) {
        Some(uri) => {
            if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
                let key = if get("MONGODB_URI").is_some() {
                    "MONGODB_URI"
                } else {
                    "MONGO_URI"
                };
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    value: "(hidden)".into(),
                    problem: "expected a mongodb:// or mongodb+srv:// URI".into(),
                });
            }
            uri.to_owned()
        }
        None => {
            let host = get("MONGODB_HOST").unwrap_or("mongo");
            let port = parse_or(get, "MONGODB_PORT", 27017u16, |v| {
                v.parse::<u16>()
                    .map_err(|_| "expected a port number".to_owned())
            })?;
            let credentials = match (get("MONGODB_USERNAME"), get("MONGODB_PASSWORD")) {
                (Some(user), password) => format!(
                    "{}:{}@",
                    percent_encode(user),
                    percent_encode(password.unwrap_or(""))
                ),
                (None, _) => String::new(),
            };
            let auth = get("MONGODB_AUTH_SOURCE")
                .map(|db| format!("?authSource={}", percent_encode(db)))
                .unwrap_or_default();
            format!("mongodb://{credentials}{host}:{port}/{auth}")
        }
    };
    let database = get("MONGODB_DATABASE")
        .map(str::to_owned)
        .or_else(|| uri_database(&uri))
        .unwrap_or_else(|| "testflinger".to_owned());
    let mut mongo = MongoConfig::new(uri, database);
    if let Some(password) = get("MONGODB_PASSWORD") {
        mongo.password = Some(password.to_owned());
    }
    mongo.max_pool_size = parse_or(
        get,
        "MONGODB_MAX_POOL_SIZE",
        if under_lambda { 2 } else { 10 },
        |v| {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| "expected a whole number, 1 or more".to_owned())
        },
    )?;
    mongo.connect_timeout = parse_or(
        get,
        "MONGODB_CONNECT_TIMEOUT",
        Duration::from_secs(10),
        |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Duration::from_secs)
                .ok_or_else(|| "expected a whole number of seconds, 1 or more".to_owned())
        },
    )?;
    mongo.command_metrics = parse_or(get, "MONGODB_COMMAND_METRICS", false, parse_bool)?;
    Ok(StoreConfig::MongoDb(mongo))
}

/// Open without a signing key, standard with one (SPEC.md §3).
fn auth_config<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<AuthConfig, ConfigError> {
    let signing_key = get("JWT_SIGNING_KEY").map(str::to_owned);
    let default_mode = if signing_key.is_some() {
        AuthMode::Standard
    } else {
        AuthMode::Open
    };
    let mode = parse_or(get, "TESTFLINGER_AUTH_MODE", default_mode, |v| {
        AuthMode::parse(&v.to_ascii_lowercase())
            .ok_or_else(|| "expected open, standard or strict".to_owned())
    })?;
    let leeway_seconds = parse_or(get, "JWT_LEEWAY", 5, |v| {
        v.parse::<u64>()
            .map_err(|_| "expected a whole number of seconds".to_owned())
    })?;
    if mode != AuthMode::Open && signing_key.is_none() {
        // Tokens cannot be issued or checked without a key, and a server
        // that silently ran open where its operator asked for tokens would
        // be worse than one that does not start.
        return Err(ConfigError::Invalid {
            key: "TESTFLINGER_AUTH_MODE".to_owned(),
            value: mode.as_str().to_owned(),
            problem: format!(
                "the {} mode needs JWT_SIGNING_KEY (a long random string) to sign tokens",
                mode.as_str()
            ),
        });
    }
    if signing_key.as_deref().is_some_and(|k| k.len() < 16) {
        return Err(ConfigError::Invalid {
            key: "JWT_SIGNING_KEY".to_owned(),
            value: "(hidden)".to_owned(),
            problem: "too short: use at least 16 random characters".to_owned(),
        });
    }
    let secrets_key = match get("TESTFLINGER_SECRETS_KEY") {
        None => None,
        Some(text) => {
            Some(
                SecretsKey::from_base64(text).map_err(|problem| ConfigError::Invalid {
                    key: "TESTFLINGER_SECRETS_KEY".to_owned(),
                    value: "(hidden)".to_owned(),
                    problem,
                })?,
            )
        }
    };
    let webhook_url = parse_or(get, "WEBHOOK_URL", None, |v| {
        let ok = (v.starts_with("http://") || v.starts_with("https://"))
            && v.split_once("://")
                .is_some_and(|(_, rest)| !rest.is_empty());
        if ok {
            Ok(Some(v.to_owned()))
        } else {
            Err("expected an http:// or https:// URL".to_owned())
        }
    })?;
    let webhook_urls = parse_or(get, "WEBHOOK_URLS", Vec::new(), |v| {
        v.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                let ok = (item.starts_with("http://") || item.starts_with("https://"))
                    && crate::webhooks::origin(item).is_some();
                if ok {
                    Ok(item.to_owned())
                } else {
                    Err(format!(
                        "{item:?} is not an http:// or https:// URL with a host \
                         (expected URLs separated by commas)"
                    ))
                }
            })
            .collect()
    })?;
    Ok(AuthConfig {
        mode,
        signing_key,
        leeway_seconds,
        secrets_key,
        webhook_url,
        webhook_urls,
        webhook_auth: get("WEBHOOK_AUTH").map(str::to_owned),
    })
}

fn blob_config<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<BlobConfig, ConfigError> {
    let Some(bucket) = get("ARTIFACT_BUCKET") else {
        return Ok(BlobConfig::Filesystem);
    };
    let force_path_style = parse_or(get, "S3_FORCE_PATH_STYLE", false, parse_bool)?;
    let owned = |key: &str| get(key).map(str::to_owned);
    Ok(BlobConfig::S3(S3Config {
        bucket: bucket.to_owned(),
        endpoint: owned("AWS_ENDPOINT_URL_S3").or_else(|| owned("AWS_ENDPOINT_URL")),
        region: owned("AWS_REGION").or_else(|| owned("AWS_DEFAULT_REGION")),
        force_path_style,
        access_key_id: owned("AWS_ACCESS_KEY_ID"),
        secret_access_key: owned("AWS_SECRET_ACCESS_KEY"),
        session_token: owned("AWS_SESSION_TOKEN"),
    }))
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The password in `scheme://user:password@hosts/...`, if any.
fn uri_password(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    let userinfo = rest.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, p)| p.to_owned())
}

/// The database in `scheme://hosts/database?options`, if any.
fn uri_database(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    let after_hosts = rest.split_once('/')?.1;
    let name = after_hosts.split('?').next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// A whole number from 1 to `max`.
fn parse_count(text: &str, max: u64) -> Result<u64, String> {
    text.parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("expected a whole number from 1 to {max}"))
}

fn parse_or<'a, T>(
    get: impl Fn(&str) -> Option<&'a str>,
    key: &str,
    default: T,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    match get(key) {
        None => Ok(default),
        Some(value) => parse(value.trim()).map_err(|problem| ConfigError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            problem,
        }),
    }
}

/// A size in bytes: `1048576`, `512KiB`, `16MiB`, `2GiB` (also KB/MB/GB as
/// powers of ten).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "expected a size such as 1048576, 16MiB or 2GiB".to_owned())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown unit {other:?}; use B, KiB, MiB or GiB")),
    };
    number
        .checked_mul(factor)
        .filter(|n| *n > 0)
        .ok_or_else(|| "expected a size above zero that fits in 64 bits".to_owned())
}

/// Reads `KEY = "value"` lines; `#` starts a comment line.
fn read_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let file_error = |problem: String| ConfigError::File {
        path: path.display().to_string(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    parse_file(&text).map_err(file_error)
}

pub fn parse_file(text: &str) -> Result<HashMap<String, String>, String> {
    let mut values = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line_no = number + 1;
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {line_no}: expected KEY = \"value\""))?;
        let key = key.trim();
        if !KEYS.iter().any(|(known, _)| *known == key) {
            return Err(format!("line {line_no}: unknown setting {key}"));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        values.insert(key.to_owned(), value.to_owned());
    }
    Ok(values)
}

/// A whole number of seconds from `min` to `max`.
fn whole_seconds(value: &str, min: u64, max: u64) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|s| (min..=max).contains(s))
        .ok_or_else(|| format!("expected a whole number of seconds, from {min} to {max}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_have_their_defaults_and_refuse_values_out_of_bounds() {
        let config = Config::from_values(&values(&[])).unwrap();
        assert_eq!(config.leases.lease_seconds, 16_200);
        assert_eq!(config.leases.max_attempts, 2);
        assert_eq!(config.leases.sweep_seconds, 30);
        assert_eq!(config.leases.agent_offline_seconds, 300);
        let set = values(&[
            ("TESTFLINGER_LEASE_SECONDS", "600"),
            ("TESTFLINGER_MAX_ATTEMPTS", "5"),
            ("TESTFLINGER_LEASE_SWEEP_SECONDS", "2"),
            ("TESTFLINGER_AGENT_OFFLINE_SECONDS", "60"),
        ]);
        let config = Config::from_values(&set).unwrap();
        assert_eq!(
            (config.leases.lease_seconds, config.leases.max_attempts),
            (600, 5)
        );
        assert_eq!(
            (
                config.leases.sweep_seconds,
                config.leases.agent_offline_seconds
            ),
            (2, 60)
        );
        for (key, bad) in [
            ("TESTFLINGER_LEASE_SECONDS", "0"),
            ("TESTFLINGER_LEASE_SECONDS", "soon"),
            ("TESTFLINGER_MAX_ATTEMPTS", "0"),
            ("TESTFLINGER_MAX_ATTEMPTS", "101"),
            ("TESTFLINGER_LEASE_SWEEP_SECONDS", "0"),
            ("TESTFLINGER_LEASE_SWEEP_SECONDS", "3601"),
            ("TESTFLINGER_AGENT_OFFLINE_SECONDS", "9"),
            ("TESTFLINGER_AGENT_OFFLINE_SECONDS", "often"),
        ] {
            let error = Config::from_values(&values(&[(key, bad)])).unwrap_err();
            assert!(error.to_string().contains(key), "{key}={bad}: {error}");
        }
    }

    fn values(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_backends() {
        let config = Config::from_values(&HashMap::new()).unwrap();
        assert_eq!(config.store, StoreConfig::Embedded);
        assert_eq!(config.blobs, BlobConfig::Filesystem);
        assert_eq!(config.data_dir, PathBuf::from("testflinger-data"));
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.retention_days, 7);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err =
            Config::from_values(&values(&[("TESTFLINGER_MAX_JSON_SIZE", "lots")])).unwrap_err();
        assert!(
            err.to_string().contains("TESTFLINGER_MAX_JSON_SIZE"),
            "{err}"
        );
        let err = Config::from_values(&values(&[("TESTFLINGER_LOG_FORMAT", "xml")])).unwrap_err();
        assert!(err.to_string().contains("TESTFLINGER_LOG_FORMAT"), "{err}");
    }

    #[test]
    fn any_mongodb_key_selects_mongodb() {
        let config = Config::from_values(&values(&[(
            "MONGODB_URI",
            "mongodb://db.example:27017/lab",
        )]))
        .unwrap();
        let StoreConfig::MongoDb(mongo) = config.store else {
            panic!("expected MongoDB")
        };
        assert_eq!(mongo.database, "lab");
        assert_eq!(mongo.max_pool_size, 10);

        let config = Config::from_values(&values(&[
            ("MONGODB_HOST", "db"),
            ("MONGODB_USERNAME", "tf"),
            ("MONGODB_PASSWORD", "p@ss:word"),
            ("MONGODB_AUTH_SOURCE", "admin"),
            ("MONGODB_MAX_POOL_SIZE", "4"),
        ]))
        .unwrap();
        let StoreConfig::MongoDb(mongo) = config.store else {
            panic!("expected MongoDB")
        };
        assert_eq!(
            mongo.uri,
            "mongodb://tf:p%40ss%3Aword@db:27017/?authSource=admin"
        );
        assert_eq!(mongo.database, "testflinger");
        assert_eq!(mongo.max_pool_size, 4);
        assert_eq!(mongo.display_uri(), "mongodb://db:27017/?authSource=admin");
        assert!(!format!("{mongo:?}").contains("p@ss"));
        assert_eq!(
            mongo.redact("auth failed for p@ss:word"),
            "auth failed for ***"
        );
    }

    #[test]
    fn mongodb_settings_are_checked() {
        for (key, value) in [
            ("MONGODB_URI", "http://db"),
            ("MONGODB_PORT", "lots"),
            ("MONGODB_MAX_POOL_SIZE", "0"),
        ] {
            let mut pairs = vec![(key, value)];
            if key != "MONGODB_URI" {
                pairs.push(("MONGODB_HOST", "db"));
            }
            let err = Config::from_values(&values(&pairs)).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn artifact_bucket_selects_s3() {
        let config = Config::from_values(&values(&[
            ("ARTIFACT_BUCKET", "artifacts"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("S3_FORCE_PATH_STYLE", "true"),
        ]))
        .unwrap();
        let BlobConfig::S3(s3) = config.blobs else {
            panic!("expected S3")
        };
        assert_eq!(s3.bucket, "artifacts");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s3.force_path_style);
        let err = Config::from_values(&values(&[
            ("ARTIFACT_BUCKET", "a"),
            ("S3_FORCE_PATH_STYLE", "maybe"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("S3_FORCE_PATH_STYLE"));
    }

    #[test]
    fn auth_mode_follows_the_signing_key_and_keys_are_never_echoed() {
        let config = Config::from_values(&HashMap::new()).unwrap();
        assert_eq!(config.auth.mode, AuthMode::Open);
        assert_eq!(config.auth.leeway_seconds, 5);
        let key = ("JWT_SIGNING_KEY", "s3cret-key-of-some-length");
        let config = Config::from_values(&values(&[key])).unwrap();
        assert_eq!(config.auth.mode, AuthMode::Standard);
        assert!(!format!("{config:?}").contains("s3cret"));
        let config =
            Config::from_values(&values(&[key, ("TESTFLINGER_AUTH_MODE", "STRICT")])).unwrap();
        assert_eq!(config.auth.mode, AuthMode::Strict);
        let config =
            Config::from_values(&values(&[key, ("TESTFLINGER_AUTH_MODE", "open")])).unwrap();
        assert_eq!(config.auth.mode, AuthMode::Open);

        let err = Config::from_values(&values(&[("TESTFLINGER_AUTH_MODE", "strict")])).unwrap_err();
        assert!(err.to_string().contains("needs JWT_SIGNING_KEY"), "{err}");
        let err = Config::from_values(&values(&[("JWT_SIGNING_KEY", "short")])).unwrap_err();
        assert!(err.to_string().contains("too short") && !err.to_string().contains("\"short\""));
        let err = Config::from_values(&values(&[("TESTFLINGER_AUTH_MODE", "lax")])).unwrap_err();
        assert!(
            err.to_string().contains("open, standard or strict"),
            "{err}"
        );
    }

    #[test]
    fn secrets_key_and_webhook_settings_are_checked() {
        let err = Config::from_values(&values(&[("TESTFLINGER_SECRETS_KEY", "bm90LWEta2V5")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("TESTFLINGER_SECRETS_KEY")
                && !err.to_string().contains("bm90LWEta2V5"),
            "{err}"
        );
        let config = Config::from_values(&values(&[
            (
                "TESTFLINGER_SECRETS_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            ),
            ("WEBHOOK_URL", "https://hooks.example.com"),
            ("WEBHOOK_AUTH", "bearer-value"),
        ]))
        .unwrap();
        assert!(config.auth.secrets_key.is_some());
        assert_eq!(
            config.auth.webhook_url.as_deref(),
            Some("https://hooks.example.com")
        );
        assert!(!format!("{config:?}").contains("bearer-value"));
        let err = Config::from_values(&values(&[("WEBHOOK_URL", "ftp://x")])).unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_URL"), "{err}");
    }

    #[test]
    fn webhook_urls_add_to_webhook_url() {
        let config = Config::from_values(&values(&[
            ("WEBHOOK_URL", "https://hooks.example.com"),
            (
                "WEBHOOK_URLS",
                " https://chat.example.com/hooks , http://127.0.0.1:8065,",
            ),
        ]))
        .unwrap();
        assert_eq!(
            config.auth.trusted_webhook_urls(),
            [
                "https://hooks.example.com",
                "https://chat.example.com/hooks",
                "http://127.0.0.1:8065"
            ]
        );
        let config =
            Config::from_values(&values(&[("WEBHOOK_URLS", "https://chat.example.com")])).unwrap();
        assert_eq!(config.auth.webhook_url, None);
        assert_eq!(
            config.auth.trusted_webhook_urls(),
            ["https://chat.example.com"]
        );
        for bad in [
            "ftp://x",
            "https://a.example https://b.example",
            "https://a.example;https://b.example\\x",
        ] {
            let err = Config::from_values(&values(&[("WEBHOOK_URLS", bad)])).unwrap_err();
            assert!(err.to_string().contains("WEBHOOK_URLS"), "{bad}: {err}");
        }
        assert!(Config::from_values(&values(&[]))
            .unwrap()
            .auth
            .trusted_webhook_urls()
            .is_empty());
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn json_shape_and_log_tail_limits_have_defaults_and_bounds() {
        let config = Config::from_values(&values(&[])).unwrap();
        assert_eq!(
            (
                config.limits.json_keys_per_object,
                config.limits.json_keys,
                config.limits.json_depth,
                config.limits.result_log_tail,
            ),
            (1_000, 10_000, 32, 1 << 20)
        );
        let config = Config::from_values(&values(&[
            ("TESTFLINGER_MAX_JSON_KEYS_PER_OBJECT", "50"),
            ("TESTFLINGER_MAX_JSON_KEYS", "500"),
            ("TESTFLINGER_MAX_JSON_DEPTH", "64"),
            ("TESTFLINGER_RESULT_LOG_TAIL", "64KiB"),
        ]))
        .unwrap();
        assert_eq!(config.limits.json_shape().keys_per_object, 50);
        assert_eq!(config.limits.json_shape().total_keys, 500);
        assert_eq!(config.limits.json_shape().depth, 64);
        assert_eq!(config.limits.result_log_tail, 64 << 10);
        for (key, value) in [
            ("TESTFLINGER_MAX_JSON_DEPTH", "65"),
            ("TESTFLINGER_MAX_JSON_KEYS", "0"),
            ("TESTFLINGER_MAX_JSON_KEYS_PER_OBJECT", "many"),
            ("TESTFLINGER_RESULT_LOG_TAIL", "0"),
        ] {
            let err = Config::from_values(&values(&[(key, value)])).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn the_file_format_is_key_equals_quoted_value() {
        let parsed = parse_file(
            "# comment\nTESTFLINGER_DATA_DIR = \"/srv/tf\"\n\nTESTFLINGER_RETENTION_DAYS=3\n",
        )
        .unwrap();
        assert_eq!(parsed["TESTFLINGER_DATA_DIR"], "/srv/tf");
        assert_eq!(parsed["TESTFLINGER_RETENTION_DAYS"], "3");
        assert!(parse_file("NOT_A_KEY = \"x\"")
            .unwrap_err()
            .contains("NOT_A_KEY"));
        assert!(parse_file("garbage").unwrap_err().contains("line 1"));
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tf.conf");
        std::fs::write(&file, "TESTFLINGER_RETENTION_DAYS = \"3\"\n").unwrap();
        let mut merged = read_file(&file).unwrap();
        merged.extend(values(&[("TESTFLINGER_RETENTION_DAYS", "5")]));
        assert_eq!(Config::from_values(&merged).unwrap().retention_days, 5);
        let only_file = read_file(&file).unwrap();
        assert_eq!(Config::from_values(&only_file).unwrap().retention_days, 3);
    }
}
