//! Opens the store and blob store that the configuration names.

use std::sync::Arc;

use crate::blob::{BlobStore, FsBlobStore};
use crate::config::{BlobConfig, Config, StoreConfig};
use crate::store::{SqliteStore, Store};
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
        };
        let blobs: Arc<dyn BlobStore> = match &config.blobs {
            BlobConfig::Filesystem => Arc::new(FsBlobStore::open(&config.data_dir)?),
        };
        Ok(Backends { store, blobs })
    }

    /// A short description for the start-up log line.
    pub fn describe(config: &Config) -> String {
        let store = match &config.store {
            StoreConfig::Embedded => format!("embedded SQLite in {}", config.data_dir.display()),
        };
        let blobs = match &config.blobs {
            BlobConfig::Filesystem => {
                format!("files in {}", config.data_dir.join("blobs").display())
            }
        };
        format!("store: {store}; blobs: {blobs}")
    }
}
