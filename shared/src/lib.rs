//! The Testflinger server's domain: job documents and their rules, the
//! storage traits with their implementations, and configuration.
//!
//! Nothing here knows about HTTP. The `functions` crate maps these types to
//! status codes; the `local` crate wires them to a socket.

pub mod agents;
pub mod app;
pub mod auth;
pub mod blob;
pub mod clients;
pub mod config;
pub mod error;
pub mod events;
pub mod job;
pub mod logs;
pub mod metrics;
pub mod permissions;
pub mod queues;
pub mod results;
pub mod retention;
pub mod role;
pub mod secrets;
pub mod statistics;
pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod throttle;
pub mod timestamp;
pub mod validation;
pub mod webhooks;

pub use error::{Error, Result};
pub use timestamp::Timestamp;

/// The server's version, as the health check reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod backends;
