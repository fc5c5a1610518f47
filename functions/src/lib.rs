//! The Testflinger server's HTTP endpoints.
//!
//! Handlers parse requests, make one call to the use cases
//! (`testflinger_shared::app`) and turn the answer into a view ([`views`]);
//! errors become statuses in one place ([`error`]). [`routes::ENDPOINTS`] declares every endpoint
//! once: the local harness mounts them all, each Lambda binary in `src/bin/`
//! mounts one.

/// jemalloc, with its background threads giving freed memory back to the
/// system within a second or so: after a burst of large bodies the process
/// shrinks again (glibc's allocator kept most of a 1.3 GB peak). Measured
/// with `scripts/attack-memory.sh`. Every binary that links the endpoints
/// (the harness, each Lambda function) uses it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start: purge freed pages after 1 s from
/// background threads, whether or not the process is busy.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

pub mod auth;
pub mod budget;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod lambda;
pub mod metrics;
pub mod openapi;
pub mod query;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod views;
pub mod webhook;

pub use error::ApiError;
pub use routes::{app, endpoint_app, App, Endpoint, ENDPOINTS};
pub use state::AppState;
