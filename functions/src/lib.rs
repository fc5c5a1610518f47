//! The Testflinger server's HTTP endpoints.
//!
//! Handlers parse requests, make one call to the use cases
//! (`testflinger_shared::app`) and turn the answer into a view ([`views`]);
//! errors become statuses in one place ([`error`]). [`routes::ENDPOINTS`] declares every endpoint
//! once: the local harness mounts them all, each Lambda binary in `src/bin/`
//! mounts one.

pub mod auth;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod lambda;
pub mod query;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod views;
pub mod webhook;

pub use error::ApiError;
pub use routes::{app, endpoint_app, App, Endpoint, ENDPOINTS};
pub use state::AppState;
