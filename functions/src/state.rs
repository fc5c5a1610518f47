//! What every handler can reach.

use std::sync::Arc;

use testflinger_shared::backends::Backends;
use testflinger_shared::blob::BlobStore;
use testflinger_shared::config::{Config, Limits};
use testflinger_shared::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub limits: Limits,
}

impl AppState {
    pub fn new(config: &Config, backends: Backends) -> Self {
        AppState {
            store: backends.store,
            blobs: backends.blobs,
            limits: config.limits,
        }
    }
}
