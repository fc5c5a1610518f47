//! The blob store: artifacts and attachments, streamed in and out so that
//! memory stays flat whatever their size.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use uuid::Uuid;

use crate::Result;

pub mod fs;
pub mod s3;

pub use fs::FsBlobStore;
pub use s3::S3BlobStore;

/// A stream of body chunks. A chunk error of kind [`io::ErrorKind::FileTooLarge`]
/// means the sender went over a limit; any other error means the upload broke.
pub type ByteStream<'a> = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'a>>;

/// What a blob belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// The tarball an agent uploads at the end of a job.
    Artifact,
    /// The tarball a submitter uploads for a job that declares attachments.
    Attachments,
}

impl BlobKind {
    /// The file name clients save a download under.
    pub fn download_name(self) -> &'static str {
        match self {
            BlobKind::Artifact => "artifact.tar.gz",
            BlobKind::Attachments => "attachments.tar.gz",
        }
    }

    pub fn folder(self) -> &'static str {
        match self {
            BlobKind::Artifact => "artifacts",
            BlobKind::Attachments => "attachments",
        }
    }
}

/// One blob: a kind and the job it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobKey {
    pub kind: BlobKind,
    pub job_id: Uuid,
}

impl BlobKey {
    pub fn artifact(job_id: Uuid) -> Self {
        BlobKey {
            kind: BlobKind::Artifact,
            job_id,
        }
    }

    pub fn attachments(job_id: Uuid) -> Self {
        BlobKey {
            kind: BlobKind::Attachments,
            job_id,
        }
    }
}

impl fmt::Display for BlobKey {
    /// `artifacts/<job id>`: the relative path or object key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.folder(), self.job_id)
    }
}

/// A stored blob being read.
pub struct Blob {
    /// The size in bytes, when the store knows it up front.
    pub size: Option<u64>,
    pub body: ByteStream<'static>,
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `body` under `key` as it arrives and returns its size. A blob
    /// already stored there is replaced only once the new one is complete: a
    /// failed upload leaves the previous blob (or none) and no partial one.
    /// More than `limit` bytes fails with [`crate::Error::TooLarge`]; a broken
    /// body with [`crate::Error::BadRequest`].
    async fn put(&self, key: &BlobKey, body: ByteStream<'_>, limit: u64) -> Result<u64>;

    /// Opens a stored blob for streaming; `None` when there is none.
    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>>;

    /// The size of a stored blob; `None` when there is none.
    async fn size(&self, key: &BlobKey) -> Result<Option<u64>>;

    /// Removes a blob; removing a missing one is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<()>;

    /// A URL from which a client can download the blob directly, valid for
    /// `expires`; `None` when the store cannot hand one out (files).
    async fn presigned_get(&self, _key: &BlobKey, _expires: Duration) -> Result<Option<String>> {
        Ok(None)
    }

    /// A URL to which a client can `PUT` exactly `size` bytes directly;
    /// `None` when the store cannot hand one out (files).
    async fn presigned_put(
        &self,
        _key: &BlobKey,
        _expires: Duration,
        _size: u64,
    ) -> Result<Option<String>> {
        Ok(None)
    }
}

/// Maps an error from an upload body to the domain's error.
pub(crate) fn body_error(error: io::Error, limit: u64) -> crate::Error {
    if error.kind() == io::ErrorKind::FileTooLarge {
        crate::Error::TooLarge {
            what: "the upload",
            limit,
        }
    } else if error.kind() == io::ErrorKind::TimedOut {
        crate::Error::TimedOut(error.to_string())
    } else {
        crate::Error::BadRequest(format!("The upload was interrupted: {error}"))
    }
}
