//! What every handler can reach: the use cases.

use std::sync::Arc;

use testflinger_shared::app::{App, Settings};
use testflinger_shared::backends::Backends;
use testflinger_shared::config::Config;

use crate::budget::BufferBudget;
use crate::webhook::HttpWebhooks;

#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
    /// The memory all requests' buffered bodies may take together.
    pub budget: BufferBudget,
    /// Whether `GET /metrics` answers on this router (the harness's main
    /// port does not when metrics have a port of their own).
    pub serves_metrics: bool,
}

impl AppState {
    /// The use cases as the configuration sets them up (streamed blobs).
    pub fn new(config: &Config, backends: Backends) -> Self {
        Self::with_settings(Settings::new(config), backends)
    }

    /// The use cases with settings adjusted by the caller (direct transfers
    /// under Lambda).
    pub fn with_settings(settings: Settings, backends: Backends) -> Self {
        let budget = BufferBudget::new(settings.buffer_budget);
        let app = App::new(settings, backends).with_webhook_sender(Arc::new(HttpWebhooks));
        AppState {
            app: Arc::new(app),
            budget,
            serves_metrics: true,
        }
    }
}
