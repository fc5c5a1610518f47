//! Artifacts and attachments: blobs streamed in by agents and submitters,
//! streamed out (or handed out as presigned URLs) to whoever reads them.

use std::time::Duration;

use uuid::Uuid;

use super::{App, Caller};
use crate::blob::{Blob, BlobKey, ByteStream};
use crate::job::{AttachmentsStatus, JobState};
use crate::permissions;
use crate::{Error, Result};

/// Blobs above this size are redirected when transfers go direct: Lambda
/// answers at most 6 MB, and binary bodies grow by a third in base64.
pub const DIRECT_DOWNLOAD_THRESHOLD: u64 = 4 * 1024 * 1024;

/// How long a presigned URL stays valid.
pub const PRESIGNED_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// How a stored blob reaches the reader.
pub enum Download {
    /// Streamed through this process.
    Stream(Blob),
    /// From the object store itself, at this presigned URL.
    Redirect(String),
    /// There is none.
    Nothing,
}

/// Where and how long an agent may `PUT` an artifact directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUpload {
    pub url: String,
    pub size: u64,
    pub expires_in: Duration,
}

/// What an attachments upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentsUpload {
    /// Stored now (this many bytes); the job is claimable.
    Stored(u64),
    /// They were already complete: a retried upload changes nothing.
    AlreadyComplete,
}

fn job_not_found(job_id: Uuid) -> Error {
    Error::NotFound(format!("Job {job_id} not found."))
}

impl App {
    /// `POST /v1/result/{id}/artifact`: streams `body` into the blob store;
    /// from the job's claimer or an admin ([`permissions::may_report_on_job`]).
    pub async fn upload_artifact(
        &self,
        caller: &Caller,
        job_id: Uuid,
        body: ByteStream<'_>,
    ) -> Result<u64> {
        let Some(job) = self.store.get_job(job_id).await? else {
            return Err(job_not_found(job_id));
        };
        permissions::may_report_on_job(caller, self.settings.auth_mode, &job)?;
        self.hold_lease(caller, job_id, crate::Timestamp::now())
            .await?;
        let key = BlobKey::artifact(job_id);
        let size = self
            .blobs
            .put(&key, body, self.settings.limits.blob)
            .await?;
        tracing::info!(job_id = %job_id, bytes = size, "artifact stored");
        crate::metrics::count(crate::metrics::ARTIFACT_BYTES, &[("direction", "in")], size);
        Ok(size)
    }

    /// `POST /v1/job/{id}/attachments`: a job that declared attachments
    /// becomes claimable once they are stored.
    pub async fn upload_attachments(
        &self,
        job_id: Uuid,
        body: ByteStream<'_>,
    ) -> Result<AttachmentsUpload> {
        let Some(job) = self.store.get_job(job_id).await? else {
            return Err(job_not_found(job_id));
        };
        let not_awaiting =
            || Error::invalid_field("file", format!("Job {job_id} is not awaiting attachments."));
        match job.attachments_status {
            Some(AttachmentsStatus::Complete) => return Ok(AttachmentsUpload::AlreadyComplete),
            Some(AttachmentsStatus::Waiting) if job.state == JobState::Waiting => {}
            _ => return Err(not_awaiting()),
        }
        let key = BlobKey::attachments(job_id);
        let size = self
            .blobs
            .put(&key, body, self.settings.limits.blob)
            .await?;
        if !self.store.complete_attachments(job_id).await? {
            return Err(not_awaiting());
        }
        tracing::info!(job_id = %job_id, bytes = size, "attachments stored");
        crate::metrics::count(crate::metrics::ARTIFACT_BYTES, &[("direction", "in")], size);
        Ok(AttachmentsUpload::Stored(size))
    }

    /// `GET /v1/result/{id}/artifact` and `GET /v1/job/{id}/attachments`:
    /// large blobs go direct when this deployment sends them so and the
    /// store can presign; the rest is streamed.
    pub async fn download(&self, key: BlobKey) -> Result<Download> {
        if self.settings.direct_transfers {
            if let Some(size) = self.blobs.size(&key).await? {
                if size > DIRECT_DOWNLOAD_THRESHOLD {
                    if let Some(url) = self
                        .blobs
                        .presigned_get(&key, PRESIGNED_URL_LIFETIME)
                        .await?
                    {
                        return Ok(Download::Redirect(url));
                    }
                }
            }
        }
        Ok(match self.blobs.get(&key).await? {
            Some(blob) => {
                // Counted as sent when the stream starts, at its known size.
                let size = blob.size.unwrap_or(0);
                crate::metrics::count(
                    crate::metrics::ARTIFACT_BYTES,
                    &[("direction", "out")],
                    size,
                );
                Download::Stream(blob)
            }
            None => Download::Nothing,
        })
    }

    /// `POST /v1/result/{id}/artifact/upload-url` `{"size"}`: a presigned
    /// URL to which the agent `PUT`s the artifact straight into the object
    /// store, for deployments whose gateway caps request bodies.
    pub async fn artifact_upload_url(
        &self,
        caller: &Caller,
        job_id: Uuid,
        size: u64,
    ) -> Result<PresignedUpload> {
        let limit = self.settings.limits.blob;
        if size > limit {
            return Err(Error::TooLarge {
                what: "the artifact",
                limit,
            });
        }
        let Some(job) = self.store.get_job(job_id).await? else {
            return Err(job_not_found(job_id));
        };
        permissions::may_report_on_job(caller, self.settings.auth_mode, &job)?;
        self.hold_lease(caller, job_id, crate::Timestamp::now())
            .await?;
        let key = BlobKey::artifact(job_id);
        match self
            .blobs
            .presigned_put(&key, PRESIGNED_URL_LIFETIME, size)
            .await?
        {
            Some(url) => Ok(PresignedUpload {
                url,
                size,
                expires_in: PRESIGNED_URL_LIFETIME,
            }),
            None => Err(Error::BadRequest(format!(
                "This server stores artifacts itself: POST the artifact as multipart field \"file\" to /v1/result/{job_id}/artifact."
            ))),
        }
    }
}
