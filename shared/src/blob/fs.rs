//! Blobs as files under `<data dir>/blobs/`. An upload is written to a
//! temporary file and renamed into place once complete.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use super::{body_error, Blob, BlobKey, BlobStore, ByteStream};
use crate::{Error, Result};

/// Chunk size of downloads.
const READ_CHUNK: usize = 64 * 1024;

pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let root = data_dir.join("blobs");
        for sub in ["artifacts", "attachments", "tmp"] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(|e| Error::backend("creating the blob folders", e))?;
        }
        Ok(FsBlobStore { root })
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        self.root
            .join(key.kind.folder())
            .join(key.job_id.to_string())
    }

    async fn write_all(&self, tmp: &Path, mut body: ByteStream<'_>, limit: u64) -> Result<u64> {
        let mut file = tokio::fs::File::create(tmp)
            .await
            .map_err(|e| Error::backend("creating a blob file", e))?;
        let mut written: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| body_error(e, limit))?;
            written += chunk.len() as u64;
            if written > limit {
                return Err(Error::TooLarge {
                    what: "the upload",
                    limit,
                });
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::backend("writing a blob file", e))?;
        }
        file.sync_data()
            .await
            .map_err(|e| Error::backend("writing a blob file", e))?;
        Ok(written)
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &BlobKey, body: ByteStream<'_>, limit: u64) -> Result<u64> {
        let tmp = self.root.join("tmp").join(Uuid::new_v4().to_string());
        match self.write_all(&tmp, body, limit).await {
            Ok(size) => {
                tokio::fs::rename(&tmp, self.path(key))
                    .await
                    .map_err(|e| Error::backend("moving a blob into place", e))?;
                Ok(size)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>> {
        let file = match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::backend("opening a blob file", e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| Error::backend("reading a blob file", e))?
            .len();
        Ok(Some(Blob {
            size: Some(size),
            body: Box::pin(ReaderStream::with_capacity(file, READ_CHUNK)),
        }))
    }

    async fn size(&self, key: &BlobKey) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::backend("reading a blob file", e)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::backend("removing a blob file", e)),
        }
    }
}
