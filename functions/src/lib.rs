//! The Testflinger server's HTTP endpoints.
//!
//! Handlers parse requests and map domain results to status codes; the rules
//! live in `testflinger_shared`. [`routes::ENDPOINTS`] declares every endpoint
//! once: the local harness mounts them all, each Lambda binary in `src/bin/`
//! mounts one.

pub mod auth;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod lambda;
pub mod routes;
pub mod state;
pub mod telemetry;

pub use error::ApiError;
pub use routes::{app, endpoint_app, App, Endpoint, ENDPOINTS};
pub use state::AppState;
