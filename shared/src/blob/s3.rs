//! Blobs in an S3-compatible bucket. Uploads stream through one part buffer
//! (a multipart upload once a body outgrows it), so memory stays flat; an
//! object appears only when complete, and a failed upload is aborted.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use bytes::BytesMut;
use futures::StreamExt;
use tokio_util::io::ReaderStream;

use super::{body_error, Blob, BlobKey, BlobStore, ByteStream};
use crate::config::S3Config;
use crate::{Error, Result};

/// Size of each multipart part (S3's minimum is 5 MiB, except the last).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

impl S3BlobStore {
    /// Builds the client once (per process, or per Lambda cold start).
    pub async fn connect(config: &S3Config) -> Result<Self> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
        match (&config.region, &config.endpoint) {
            (Some(region), _) => loader = loader.region(Region::new(region.clone())),
            // A custom endpoint usually ignores the region, but SigV4 needs one.
            (None, Some(_)) => loader = loader.region(Region::new("us-east-1")),
            (None, None) => {}
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret,
                config.session_token.clone(),
                None,
                "testflinger-configuration",
            ));
        }
        let shared = loader.load().await;
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.force_path_style)
            .build();
        Ok(S3BlobStore {
            client: Client::from_conf(s3),
            bucket: config.bucket.clone(),
        })
    }

    /// Creates the bucket if it does not exist (idempotent; a deploy step).
    pub async fn setup(&self) -> Result<()> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou")) => Ok(()),
            Err(e) => Err(Error::backend("creating the artifact bucket", describe(&e))),
        }
    }

    async fn upload_parts(&self, key: &str, mut body: ByteStream<'_>, limit: u64) -> Result<u64> {
        let mut buffer = BytesMut::with_capacity(PART_SIZE);
        let mut total: u64 = 0;
        let mut multipart: Option<Multipart> = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => return self.abandon(multipart, body_error(e, limit)).await,
            };
            total += chunk.len() as u64;
            if total > limit {
                let error = Error::TooLarge {
                    what: "the upload",
                    limit,
                };
                return self.abandon(multipart, error).await;
            }
            buffer.extend_from_slice(&chunk);
            while buffer.len() >= PART_SIZE {
                let part = buffer.split_to(PART_SIZE).freeze();
                if multipart.is_none() {
                    multipart = Some(self.start_multipart(key).await?);
                }
                if let Some(upload) = multipart.as_mut() {
                    if let Err(e) = self.upload_part(key, upload, part).await {
                        return self.abandon(multipart, e).await;
                    }
                }
            }
        }
        match multipart {
            None => {
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .body(S3Body::from(buffer.freeze()))
                    .send()
                    .await
                    .map_err(|e| Error::backend("storing an object", describe(&e)))?;
            }
            Some(mut upload) => {
                if !buffer.is_empty() {
                    if let Err(e) = self.upload_part(key, &mut upload, buffer.freeze()).await {
                        return self.abandon(Some(upload), e).await;
                    }
                }
                let completed = CompletedMultipartUpload::builder()
                    .set_parts(Some(upload.parts.clone()))
                    .build();
                if let Err(e) = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload.id)
                    .multipart_upload(completed)
                    .send()
                    .await
                {
                    let error = Error::backend("completing a multipart upload", describe(&e));
                    return self.abandon(Some(upload), error).await;
                }
            }
        }
        Ok(total)
    }

    async fn start_multipart(&self, key: &str) -> Result<Multipart> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| Error::backend("starting a multipart upload", describe(&e)))?;
        let id = created
            .upload_id()
            .ok_or_else(|| {
                Error::backend("starting a multipart upload", "no upload id in the answer")
            })?
            .to_owned();
        Ok(Multipart {
            key: key.to_owned(),
            id,
            parts: Vec::new(),
        })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &mut Multipart,
        part: bytes::Bytes,
    ) -> Result<()> {
        let number = upload.parts.len() as i32 + 1;
        let answer = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload.id)
            .part_number(number)
            .body(S3Body::from(part))
            .send()
            .await
            .map_err(|e| Error::backend("uploading a part", describe(&e)))?;
        upload.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(answer.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    /// Aborts a multipart upload (if one was started) and returns `error`.
    async fn abandon<T>(&self, upload: Option<Multipart>, error: Error) -> Result<T> {
        if let Some(upload) = upload {
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&upload.key)
                .upload_id(&upload.id)
                .send()
                .await;
            if let Err(e) = aborted {
                tracing::warn!(error = %describe(&e), "could not abort a multipart upload");
            }
        }
        Err(error)
    }
}

struct Multipart {
    key: String,
    id: String,
    parts: Vec<CompletedPart>,
}

/// An SDK error as one line: code and message when the service sent them,
/// else the whole chain of causes.
fn describe<E>(error: &E) -> String
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => DisplayErrorContext(error).to_string(),
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &BlobKey, body: ByteStream<'_>, limit: u64) -> Result<u64> {
        self.upload_parts(&key.to_string(), body, limit).await
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>> {
        let answer = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.to_string())
            .send()
            .await;
        match answer {
            Ok(object) => Ok(Some(Blob {
                size: object.content_length().and_then(|n| u64::try_from(n).ok()),
                body: Box::pin(ReaderStream::with_capacity(
                    object.body.into_async_read(),
                    64 * 1024,
                )),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(Error::backend("reading an object", describe(&e))),
        }
    }

    async fn size(&self, key: &BlobKey) -> Result<Option<u64>> {
        let answer = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.to_string())
            .send()
            .await;
        match answer {
            Ok(head) => Ok(Some(
                head.content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(Error::backend("looking up an object", describe(&e))),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.to_string())
            .send()
            .await
            .map_err(|e| Error::backend("removing an object", describe(&e)))?;
        Ok(())
    }

    async fn presigned_get(&self, key: &BlobKey, expires: Duration) -> Result<Option<String>> {
        let config = PresigningConfig::expires_in(expires)
            .map_err(|e| Error::backend("presigning a download", e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.to_string())
            .response_content_disposition(format!(
                "attachment; filename={}",
                key.kind.download_name()
            ))
            .presigned(config)
            .await
            .map_err(|e| Error::backend("presigning a download", describe(&e)))?;
        Ok(Some(request.uri().to_owned()))
    }

    async fn presigned_put(
        &self,
        key: &BlobKey,
        expires: Duration,
        size: u64,
    ) -> Result<Option<String>> {
        let config = PresigningConfig::expires_in(expires)
            .map_err(|e| Error::backend("presigning an upload", e))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.to_string())
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .presigned(config)
            .await
            .map_err(|e| Error::backend("presigning an upload", describe(&e)))?;
        Ok(Some(request.uri().to_owned()))
    }
}
