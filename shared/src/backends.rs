//! Opens the store and blob store that the configuration names.

use std::sync::Arc;

use crate::blob::{BlobStore, FsBlobStore, S3BlobStore};
use crate::config::{BlobConfig, Config, StoreConfig};
use crate::store::{MongoStore, SqliteStore, Store};
use crate::Result;

/// The storage a server process works with, opened once at start-up (once
/// per cold start under Lambda).
#[derive(Clone)]
pub struct Backends {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
}

impl Backends {
    pub async fn open(config: &Config) -> Result<Self> {
        let store: Arc<dyn Store> = match &config.store {
            StoreConfig::Embedded => Arc::new(SqliteStore::open(&config.data_dir)?),
            StoreConfig::MongoDb(mongo) => Arc::new(MongoStore::connect(mongo).await?),
        };
        let blobs: Arc<dyn BlobStore> = match &config.blobs {
            BlobConfig::Filesystem => Arc::new(FsBlobStore::open(&config.data_dir)?),
            BlobConfig::S3(s3) => Arc::new(S3BlobStore::connect(s3).await?),
        };
        Ok(Backends { store, blobs })
    }

    /// The deploy-time step (idempotent): MongoDB indexes (claim order,
    /// unique keys, retention TTLs) and the artifact bucket. The embedded
    /// backends need nothing beyond what opening them does.
    pub async fn setup(config: &Config) -> Result<Vec<String>> {
        let mut done = Vec::new();
        if let StoreConfig::MongoDb(mongo) = &config.store {
            MongoStore::connect(mongo)
                .await?
                .setup(config.retention_days)
                .await?;
            done.push(format!(
                "MongoDB indexes in {} / {}",
                mongo.display_uri(),
                mongo.database
            ));
        }
        if let BlobConfig::S3(s3) = &config.blobs {
            S3BlobStore::connect(s3).await?.setup().await?;
            done.push(format!("S3 bucket {}", s3.bucket));
        }
        if done.is_empty() {
            Self::open(config).await?;
            done.push(format!("embedded store in {}", config.data_dir.display()));
        }
        Ok(done)
    }

    /// A short description for the start-up log line.
    pub fn describe(config: &Config) -> String {
        let store = match &config.store {
            StoreConfig::Embedded => format!("embedded SQLite in {}", config.data_dir.display()),
            StoreConfig::MongoDb(mongo) => {
                format!(
                    "MongoDB {} database {}",
                    mongo.display_uri(),
                    mongo.database
                )
            }
        };
        let blobs = match &config.blobs {
            BlobConfig::Filesystem => {
                format!("files in {}", config.data_dir.join("blobs").display())
            }
            BlobConfig::S3(s3) => format!("S3 bucket {}", s3.bucket),
        };
        format!("store: {store}; blobs: {blobs}")
    }
}
