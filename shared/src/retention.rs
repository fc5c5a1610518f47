//! Retention (SPEC.md §9): jobs, results and blobs expire after a configured
//! number of days. MongoDB does this with TTL indexes; the embedded store
//! needs a periodic sweep, which this is.

use std::time::Duration;

use crate::backends::Backends;
use crate::blob::BlobKey;
use crate::{Result, Timestamp};

/// Deletes everything older than `days` and returns how many jobs went.
pub async fn sweep(backends: &Backends, days: u32, now: Timestamp) -> Result<usize> {
    let cutoff = Timestamp::from_millis(now.millis() - i64::from(days) * 86_400_000);
    let expired = backends.store.purge_expired(cutoff).await?;
    for job_id in &expired {
        backends.blobs.delete(&BlobKey::artifact(*job_id)).await?;
        backends
            .blobs
            .delete(&BlobKey::attachments(*job_id))
            .await?;
    }
    Ok(expired.len())
}

/// How often the local harness sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
