//! Test support (feature `test-support`): configurations that give each test
//! its own backends, so tests run in parallel against the real thing.
//!
//! - `TESTFLINGER_TEST_MONGODB_URI`: a MongoDB-compatible server; each test
//!   gets its own database.
//! - `TESTFLINGER_TEST_S3_ENDPOINT` (with `TESTFLINGER_TEST_S3_ACCESS_KEY`
//!   and `TESTFLINGER_TEST_S3_SECRET_KEY`): an S3-compatible server; each
//!   test gets its own bucket.
//! - `TESTFLINGER_TEST_BACKENDS=production`: suites that follow the
//!   environment (the contract tests) run on MongoDB + S3 instead of the
//!   embedded backends.
//! - `TESTFLINGER_TEST_REQUIRE_BACKENDS=1`: a production-backend test whose
//!   server is not configured fails instead of being skipped (CI sets it).
//!
//! A configured server that cannot be reached always fails the test.

use tempfile::TempDir;
use uuid::Uuid;

use crate::backends::Backends;
use crate::config::{BlobConfig, Config, MongoConfig, S3Config, StoreConfig};

/// A configuration with its own data folder, database and bucket.
pub struct TestEnv {
    pub config: Config,
    _dir: TempDir,
}

impl TestEnv {
    /// Embedded SQLite and files in a fresh temporary folder.
    pub fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        TestEnv {
            config: Config::embedded(dir.path()),
            _dir: dir,
        }
    }

    /// MongoDB + S3 when `TESTFLINGER_TEST_BACKENDS=production`, else embedded.
    pub fn from_env() -> Self {
        match std::env::var("TESTFLINGER_TEST_BACKENDS").as_deref() {
            Ok("production") => Self::production(),
            Ok("embedded") | Err(_) => Self::embedded(),
            Ok(other) => {
                panic!("TESTFLINGER_TEST_BACKENDS={other:?}: expected embedded or production")
            }
        }
    }

    /// MongoDB and S3, both required.
    pub fn production() -> Self {
        let mut env = Self::embedded();
        env.config.store = StoreConfig::MongoDb(
            mongo_config().unwrap_or_else(|| missing("TESTFLINGER_TEST_MONGODB_URI")),
        );
        env.config.blobs =
            BlobConfig::S3(s3_config().unwrap_or_else(|| missing("TESTFLINGER_TEST_S3_ENDPOINT")));
        env
    }

    /// The MongoDB store (with file blobs); `None` when no server is
    /// configured and backends are not required.
    pub fn mongodb() -> Option<Self> {
        let mongo = optional(mongo_config(), "TESTFLINGER_TEST_MONGODB_URI")?;
        let mut env = Self::embedded();
        env.config.store = StoreConfig::MongoDb(mongo);
        Some(env)
    }

    /// The S3 blob store (with the embedded store); `None` as for [`Self::mongodb`].
    pub fn s3() -> Option<Self> {
        let s3 = optional(s3_config(), "TESTFLINGER_TEST_S3_ENDPOINT")?;
        let mut env = Self::embedded();
        env.config.blobs = BlobConfig::S3(s3);
        Some(env)
    }

    /// Runs the deploy step (indexes, bucket) and opens the backends.
    /// Panics with the cause when a configured server cannot be reached.
    pub async fn open(&self) -> Backends {
        open_config(&self.config).await
    }
}

/// [`TestEnv::open`] for a configuration a test has adjusted.
pub async fn open_config(config: &Config) -> Backends {
    if let Err(e) = Backends::setup(config).await {
        panic!(
            "test backends are configured but not usable ({}): {e}",
            Backends::describe(config)
        );
    }
    Backends::open(config).await.unwrap_or_else(|e| {
        panic!(
            "test backends did not open ({}): {e}",
            Backends::describe(config)
        )
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", Uuid::new_v4().simple())
}

fn mongo_config() -> Option<MongoConfig> {
    let uri = std::env::var("TESTFLINGER_TEST_MONGODB_URI")
        .ok()
        .filter(|u| !u.is_empty())?;
    let mut config = MongoConfig::new(uri, unique("tf_test_"));
    config.max_pool_size = 16;
    config.connect_timeout = std::time::Duration::from_secs(10);
    Some(config)
}

fn s3_config() -> Option<S3Config> {
    let endpoint = std::env::var("TESTFLINGER_TEST_S3_ENDPOINT")
        .ok()
        .filter(|u| !u.is_empty())?;
    let key =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    Some(S3Config {
        // Bucket names: 3 to 63 lower-case letters, digits and hyphens.
        bucket: unique("tf-test-"),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        force_path_style: true,
        access_key_id: Some(key("TESTFLINGER_TEST_S3_ACCESS_KEY", "testflinger")),
        secret_access_key: Some(key("TESTFLINGER_TEST_S3_SECRET_KEY", "testflinger-secret")),
        session_token: None,
    })
}

fn required() -> bool {
    matches!(
        std::env::var("TESTFLINGER_TEST_REQUIRE_BACKENDS").as_deref(),
        Ok("1") | Ok("true")
    )
}

fn optional<T>(config: Option<T>, variable: &str) -> Option<T> {
    if config.is_none() {
        if required() {
            missing(variable);
        }
        eprintln!("SKIPPED: {variable} is not set, so this production-backend test did not run (scripts/test.sh sets it)");
    }
    config
}

fn missing(variable: &str) -> ! {
    panic!("{variable} is not set: production-backend tests need a real server (scripts/test.sh starts one)")
}
