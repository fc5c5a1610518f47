//! The API tests in one test binary, one module per resource (SPEC.md §2–§8),
//! driven through the real router (no socket), each test on its own
//! backends: the embedded store in a fresh temporary folder, or, with
//! `TESTFLINGER_TEST_BACKENDS=production`, its own MongoDB database and S3
//! bucket (`scripts/test.sh` runs both).

#[path = "../common/mod.rs"]
mod common;
mod support;

mod agent_identity;
mod agents;
mod artifacts;
mod budget;
mod clients;
mod events;
mod job_events;
mod jobs;
mod json_shape;
mod leases;
mod liveness;
mod meta;
mod metrics;
mod oauth;
mod queues;
mod restricted_queues;
mod results;
mod secrets;
mod statistics;
