//! One conformance suite for the blob-store trait, run unchanged against the
//! filesystem store and S3 (a real S3-compatible server; see
//! `testflinger_shared::testing`).

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, StreamExt};
use testflinger_shared::blob::{BlobKey, BlobStore, ByteStream};
use testflinger_shared::Error;
use uuid::Uuid;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod filesystem {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let env = testflinger_shared::testing::TestEnv::embedded();
                    super::$case(env.open().await.blobs).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(env) = testflinger_shared::testing::TestEnv::s3() else { return };
                    super::$case(env.open().await.blobs).await;
                }
            )*
        }
    };
}

conformance!(
    a_blob_reads_back_byte_for_byte,
    a_large_blob_streams_through_several_parts,
    an_empty_blob_is_stored,
    a_new_upload_replaces_the_old,
    an_upload_over_the_limit_is_refused_and_keeps_the_old,
    a_broken_upload_stores_nothing,
    a_missing_blob_is_none_and_delete_is_idempotent,
    kinds_and_jobs_do_not_share_blobs,
);

const LIMIT: u64 = 64 * 1024 * 1024;

/// Deterministic bytes, every value present.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A body delivered in chunks of `chunk` bytes.
fn body(data: &[u8], chunk: usize) -> ByteStream<'static> {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(chunks))
}

async fn read(blobs: &Arc<dyn BlobStore>, key: &BlobKey) -> Option<Vec<u8>> {
    let blob = blobs.get(key).await.expect("get")?;
    let mut out = Vec::new();
    let mut chunks = blob.body;
    while let Some(chunk) = chunks.next().await {
        out.extend_from_slice(&chunk.expect("a chunk"));
    }
    if let Some(size) = blob.size {
        assert_eq!(
            size,
            out.len() as u64,
            "the announced size matches the body"
        );
    }
    Some(out)
}

async fn a_blob_reads_back_byte_for_byte(blobs: Arc<dyn BlobStore>) {
    let key = BlobKey::artifact(Uuid::new_v4());
    let data = pattern(300_000, 1);
    assert_eq!(
        blobs.put(&key, body(&data, 7_001), LIMIT).await.unwrap(),
        300_000
    );
    assert_eq!(read(&blobs, &key).await.unwrap(), data);
    assert_eq!(blobs.size(&key).await.unwrap(), Some(300_000));
}

async fn a_large_blob_streams_through_several_parts(blobs: Arc<dyn BlobStore>) {
    // 20 MiB + a tail: more than two S3 parts of 8 MiB.
    let key = BlobKey::artifact(Uuid::new_v4());
    let data = pattern(20 * 1024 * 1024 + 12_345, 2);
    assert_eq!(
        blobs
            .put(&key, body(&data, 1024 * 1024), LIMIT)
            .await
            .unwrap(),
        data.len() as u64
    );
    let back = read(&blobs, &key).await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the large blob reads back byte for byte");
}

async fn an_empty_blob_is_stored(blobs: Arc<dyn BlobStore>) {
    let key = BlobKey::attachments(Uuid::new_v4());
    assert_eq!(blobs.put(&key, body(&[], 1), LIMIT).await.unwrap(), 0);
    assert_eq!(read(&blobs, &key).await.unwrap(), Vec::<u8>::new());
}

async fn a_new_upload_replaces_the_old(blobs: Arc<dyn BlobStore>) {
    let key = BlobKey::artifact(Uuid::new_v4());
    blobs
        .put(&key, body(&pattern(5_000, 3), 999), LIMIT)
        .await
        .unwrap();
    let newer = pattern(1_234, 4);
    blobs.put(&key, body(&newer, 100), LIMIT).await.unwrap();
    assert_eq!(read(&blobs, &key).await.unwrap(), newer);
}

async fn an_upload_over_the_limit_is_refused_and_keeps_the_old(blobs: Arc<dyn BlobStore>) {
    let key = BlobKey::artifact(Uuid::new_v4());
    let old = pattern(1_000, 5);
    blobs.put(&key, body(&old, 1_000), LIMIT).await.unwrap();
    let refused = blobs
        .put(&key, body(&pattern(10_001, 6), 1_000), 10_000)
        .await;
    assert!(
        matches!(refused, Err(Error::TooLarge { limit: 10_000, .. })),
        "{refused:?}"
    );
    assert_eq!(read(&blobs, &key).await.unwrap(), old);

    // Over the limit only after several S3 parts: the multipart upload is abandoned.
    let big = 17 * 1024 * 1024;
    let refused = blobs
        .put(&key, body(&pattern(big + 1, 7), 1024 * 1024), big as u64)
        .await;
    assert!(
        matches!(refused, Err(Error::TooLarge { .. })),
        "{refused:?}"
    );
    assert_eq!(read(&blobs, &key).await.unwrap(), old);
}

async fn a_broken_upload_stores_nothing(blobs: Arc<dyn BlobStore>) {
    let key = BlobKey::artifact(Uuid::new_v4());
    let chunks: Vec<io::Result<Bytes>> = vec![
        Ok(Bytes::from(pattern(9 * 1024 * 1024, 8))),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let broken = blobs.put(&key, Box::pin(stream::iter(chunks)), LIMIT).await;
    assert!(matches!(broken, Err(Error::BadRequest(_))), "{broken:?}");
    assert!(read(&blobs, &key).await.is_none());
    assert_eq!(blobs.size(&key).await.unwrap(), None);
}

async fn a_missing_blob_is_none_and_delete_is_idempotent(blobs: Arc<dyn BlobStore>) {
    let key = BlobKey::artifact(Uuid::new_v4());
    assert!(read(&blobs, &key).await.is_none());
    assert_eq!(blobs.size(&key).await.unwrap(), None);
    blobs.delete(&key).await.unwrap();
    blobs.put(&key, body(b"x", 1), LIMIT).await.unwrap();
    blobs.delete(&key).await.unwrap();
    assert!(read(&blobs, &key).await.is_none());
    blobs.delete(&key).await.unwrap();
}

async fn kinds_and_jobs_do_not_share_blobs(blobs: Arc<dyn BlobStore>) {
    let job = Uuid::new_v4();
    blobs
        .put(&BlobKey::artifact(job), body(b"artifact", 3), LIMIT)
        .await
        .unwrap();
    blobs
        .put(&BlobKey::attachments(job), body(b"attachments", 3), LIMIT)
        .await
        .unwrap();
    assert_eq!(
        read(&blobs, &BlobKey::artifact(job)).await.unwrap(),
        b"artifact"
    );
    assert_eq!(
        read(&blobs, &BlobKey::attachments(job)).await.unwrap(),
        b"attachments"
    );
    assert!(read(&blobs, &BlobKey::artifact(Uuid::new_v4()))
        .await
        .is_none());
}
