//! What every handler can reach.

use std::sync::Arc;

use testflinger_shared::backends::Backends;
use testflinger_shared::blob::BlobStore;
use testflinger_shared::config::{Config, Limits};
use testflinger_shared::store::Store;

use crate::auth::AuthState;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub limits: Limits,
    /// Send large blobs straight between clients and the object store
    /// (presigned URLs) instead of through this process: on under Lambda,
    /// whose payloads are capped at 6 MB; off in the harness, which streams.
    pub direct_transfers: bool,
    pub auth: Arc<AuthState>,
}

impl AppState {
    pub fn new(config: &Config, backends: Backends) -> Self {
        AppState {
            store: backends.store,
            blobs: backends.blobs,
            limits: config.limits,
            direct_transfers: false,
            auth: Arc::new(AuthState::new(&config.auth)),
        }
    }
}
