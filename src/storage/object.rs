//! Files in an S3-compatible object store (`MVGEN_STORAGE_URL=s3://bucket/prefix`), through the
//! `object_store` crate: the same layout as `file://` under the prefix
//! (`{prefix}/{kind}/{uuid}.{ext}`, records under `{prefix}/records/{kind}/{uuid}.json`), so any
//! replica finds what another stored.
//!
//! A file appears under its final key only whole: a small one is one PUT with `If-None-Match: *`
//! (`PutMode::Create`), a large one a multipart upload, which S3 shows only once completed and
//! which is aborted when the stream fails, is refused or is dropped.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, Certificate, ClientConfigKey, ClientOptions, GetOptions, MultipartUpload, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};
use tokio::sync::{Semaphore, SemaphorePermit};
use uuid::Uuid;

use super::checked::{Begun, Checked};
use super::{
    ByteStream, Collection, MAX_RECORD_BYTES, Opened, Put, Reader, Storage, StorageError, Stored, parse_id,
    stored_extension,
};
use crate::media::content_type_for;

/// The part size of a multipart upload (S3's smallest allowed); a stream that ends before this
/// many bytes is stored with one PUT. A streamed put holds at most `PARTS_IN_FLIGHT + 1` parts in
/// memory whatever the file's size, and all of them together at most [`PART_BUDGET`].
pub const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts uploaded at once per stream: two keep the link busy while the next part fills.
const PARTS_IN_FLIGHT: usize = 2;

/// An S3-compatible store.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<AmazonS3>,
    prefix: String,
    bucket: String,
}

/// Where an opened object's ranges are fetched from.
#[derive(Debug)]
pub(super) struct Source {
    store: Arc<AmazonS3>,
    path: Path,
}

impl Source {
    pub(super) async fn range(self, start: u64, count: u64) -> Result<ByteStream, StorageError> {
        let options = GetOptions { range: Some((start..start + count).into()), ..GetOptions::default() };
        let got = self.store.get_opts(&self.path, options).await.map_err(|e| store_error(e, ""))?;
        Ok(got.into_stream().map(|chunk| chunk.map_err(std::io::Error::other)).boxed())
    }
}

impl ObjectStorage {
    /// A store for `bucket`, keys under `prefix`, the rest (endpoint, region, credentials,
    /// `allow_http`) from `builder` (`AmazonS3Builder::from_env()` reads the standard `AWS_*`).
    pub fn new(builder: AmazonS3Builder, bucket: &str, prefix: &str) -> Result<Self, String> {
        // A store that is down must fail the request it holds in seconds (a retryable 503), not
        // after object_store's default of retrying for three minutes. No overall timeout: a large
        // GET streamed to a slow client takes as long as it takes; a stalled one hits the read timeout.
        let retry = RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(10), ..RetryConfig::default() };
        // Mozilla's roots compiled in, as for the providers (src/providers/client.rs): the static
        // binary may run where there is no CA store at all.
        let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().map(|der| Certificate::from_der(der));
        // Options set here replace the builder's client options: keep its `allow_http`.
        let allow_http = builder
            .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let mut client = ClientOptions::new().with_no_system_certificates(true).with_allow_http(allow_http);
        for root in roots {
            client = client.with_root_certificate(root.map_err(|e| format!("embedded TLS roots: {e}"))?);
        }
        let client = client
            .with_connect_timeout(Duration::from_secs(5))
            .with_read_timeout(Duration::from_secs(30))
            .with_timeout_disabled();
        let store = builder
            .with_bucket_name(bucket)
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(|e| format!("s3://{bucket}: {e}"))?;
        Ok(ObjectStorage {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_string(),
            bucket: bucket.into(),
        })
    }

    fn key(&self, rest: &str) -> Path {
        if self.prefix.is_empty() { Path::from(rest) } else { Path::from(format!("{}/{rest}", self.prefix)) }
    }

    fn file_key(&self, kind: Collection, id: &str, ext: &str) -> Path {
        self.key(&format!("{}/{id}.{ext}", kind.dir_name()))
    }

    fn record_key(&self, kind: Collection, id: &str) -> Path {
        self.key(&format!("records/{}/{id}.json", kind.dir_name()))
    }

    /// The stored object of `id`, tried under each of the kind's extensions.
    async fn head(
        &self,
        kind: Collection,
        id: &str,
    ) -> Result<(Path, &'static str, object_store::ObjectMeta), StorageError> {
        let id = parse_id(id)?;
        for ext in kind.extensions() {
            let path = self.file_key(kind, &id, ext);
            match self.store.head(&path).await {
                Ok(meta) => return Ok((path, content_type_for(ext).unwrap_or("application/octet-stream"), meta)),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(e, &id)),
            }
        }
        Err(StorageError::NotFound(id))
    }

    async fn put_whole(
        &self,
        path: &Path,
        content_type: &str,
        bytes: PutPayload,
        mode: PutMode,
    ) -> Result<(), StorageError> {
        let options = PutOptions { mode, attributes: content_type_attribute(content_type), ..PutOptions::default() };
        self.store.put_opts(path, bytes, options).await.map_err(|e| store_error(e, ""))?;
        Ok(())
    }

    /// `first` and the rest of `body` as a multipart upload to `path`, aborted on any failure (and
    /// when dropped). Each part holds a permit of the process-wide [`PART_BUDGET`] from before it
    /// is gathered until it is uploaded.
    async fn put_multipart(
        &self,
        path: &Path,
        content_type: &str,
        first: (Vec<Bytes>, SemaphorePermit<'static>),
        body: &mut Checked,
    ) -> Result<(), StorageError> {
        let options = PutMultipartOptions { attributes: content_type_attribute(content_type), ..Default::default() };
        let upload = self.store.put_multipart_opts(path, options).await.map_err(|e| store_error(e, ""))?;
        let mut guard = AbortOnDrop(Some(upload));
        let result = match guard.0.as_mut() {
            Some(upload) => upload_parts(upload.as_mut(), first, body).await,
            None => Err(StorageError::Io(std::io::Error::other("upload gone"))),
        };
        let Some(mut upload) = guard.0.take() else {
            return Err(StorageError::Io(std::io::Error::other("upload gone")));
        };
        match result {
            Ok(()) => upload.complete().await.map(drop).map_err(|e| store_error(e, "")),
            Err(e) => {
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(error = %abort, key = %path, "could not abort a failed multipart upload");
                }
                Err(e)
            }
        }
    }
}

/// Parts held in memory at once by all the streamed puts of this process together (S3 parts are
/// at least 5 MiB, so 20 streams each holding even one would be 100 MiB): a stream waits for a
/// permit before gathering a part, and its source waits with it. Three parts keep a store as busy
/// as four did, in 15 MiB: with four, 20 downloads into S3 peaked at 64–65 MiB, just over the
/// 64 MiB goal (BENCHMARKS.md).
pub const PART_BUDGET: usize = 3;
static PARTS: Semaphore = Semaphore::const_new(PART_BUDGET);

async fn part_permit() -> Result<SemaphorePermit<'static>, StorageError> {
    PARTS.acquire().await.map_err(|_| StorageError::Io(std::io::Error::other("part budget closed")))
}

/// Reads from `body` onto `part` until it holds a part's worth; `true` when the stream ended.
async fn gather(body: &mut Checked, part: &mut Vec<Bytes>) -> Result<bool, StorageError> {
    let mut size: usize = part.iter().map(Bytes::len).sum();
    while size < PART_BYTES {
        match body.next().await? {
            Some(chunk) => {
                size += chunk.len();
                part.push(chunk);
            }
            None => return Ok(true),
        }
    }
    Ok(false)
}

/// Uploads `first` and then each part gathered from `body`, at most [`PARTS_IN_FLIGHT`] at once
/// (spawned, so they progress while the next part is gathered; aborted if this is dropped).
async fn upload_parts(
    upload: &mut dyn MultipartUpload,
    first: (Vec<Bytes>, SemaphorePermit<'static>),
    body: &mut Checked,
) -> Result<(), StorageError> {
    let mut in_flight = tokio::task::JoinSet::new();
    let (mut part, mut permit) = first;
    let mut ended = false;
    loop {
        let sent = upload.put_part(PutPayload::from_iter(std::mem::take(&mut part)));
        in_flight.spawn(async move {
            let sent = sent.await;
            drop(permit);
            sent
        });
        if ended {
            break;
        }
        while in_flight.len() >= PARTS_IN_FLIGHT {
            finished(in_flight.join_next().await)?;
        }
        let next = part_permit().await?;
        ended = gather(body, &mut part).await?;
        if part.is_empty() {
            // The stream ended on a part boundary.
            drop(next);
            break;
        }
        permit = next;
    }
    while let Some(done) = in_flight.join_next().await {
        finished(Some(done))?;
    }
    Ok(())
}

fn finished(done: Option<Result<Result<(), object_store::Error>, tokio::task::JoinError>>) -> Result<(), StorageError> {
    match done {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(e))) => Err(store_error(e, "")),
        Some(Err(e)) => Err(StorageError::Io(std::io::Error::other(e))),
    }
}

/// Aborts a multipart upload whose put was dropped mid-stream (the request went away), so no
/// parts are left behind; the object never existed under its key.
struct AbortOnDrop(Option<Box<dyn MultipartUpload>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let (Some(mut upload), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}

fn content_type_attribute(content_type: &str) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, content_type.to_string().into());
    attributes
}

/// A store error as mvgen reports it: an unknown key is `NotFound`; anything else (the store
/// unreachable, a 5xx, refused credentials) is `Unavailable`: that request fails, retryable.
fn store_error(e: object_store::Error, id: &str) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } if !id.is_empty() => StorageError::NotFound(id.to_string()),
        e => StorageError::Unavailable(with_causes(&e)),
    }
}

/// An error with its chain of causes ("HTTP error: builder error" alone says nothing).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

impl Storage for ObjectStorage {
    fn put<'a>(
        &'a self,
        kind: Collection,
        content_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<String, StorageError>> {
        Box::pin(async move {
            let ext = stored_extension(kind, content_type)?;
            let id = Uuid::new_v4().to_string();
            let path = self.file_key(kind, &id, ext);
            let content_type = content_type_for(ext).unwrap_or("application/octet-stream");
            self.put_whole(&path, content_type, Bytes::copy_from_slice(bytes).into(), PutMode::Create).await?;
            Ok(id)
        })
    }

    fn find<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<Stored, StorageError>> {
        Box::pin(async move {
            let (path, content_type, _) = self.head(kind, id).await?;
            Ok(Stored { path: path.as_ref().into(), content_type })
        })
    }

    fn put_record<'a>(
        &'a self,
        kind: Collection,
        id: &'a str,
        record: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let id = parse_id(id)?;
            let payload = Bytes::copy_from_slice(record).into();
            self.put_whole(&self.record_key(kind, &id), "application/json", payload, PutMode::Overwrite).await
        })
    }

    fn record<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StorageError>> {
        Box::pin(async move {
            let id = parse_id(id)?;
            let path = self.record_key(kind, &id);
            let got = match self.store.get(&path).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(store_error(e, &id)),
            };
            // A record is a few hundred bytes: anything large was not written by mvgen.
            if got.meta.size > MAX_RECORD_BYTES {
                tracing::warn!(key = %path, "ignoring a record larger than {MAX_RECORD_BYTES} bytes");
                return Ok(None);
            }
            Ok(Some(got.bytes().await.map_err(|e| store_error(e, &id))?.to_vec()))
        })
    }

    fn open<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<Opened, StorageError>> {
        Box::pin(async move {
            let (path, content_type, meta) = self.head(kind, id).await?;
            // The bytes are fetched only if the reader is read: a ranged answer fetches its range.
            let (store, key) = (Arc::clone(&self.store), path.clone());
            let whole = stream::once(async move { store.get(&key).await })
                .map(|got| match got {
                    Ok(got) => got.into_stream().map(|chunk| chunk.map_err(std::io::Error::other)).boxed(),
                    Err(e) => stream::iter([Err(std::io::Error::other(e))]).boxed(),
                })
                .flatten()
                .boxed();
            Ok(Opened {
                file: Reader::Stream(tokio_util::io::StreamReader::new(whole)),
                len: meta.size,
                modified: Some(SystemTime::from(meta.last_modified)),
                content_type,
                etag: meta.e_tag.map(|tag| if tag.starts_with('"') { tag } else { format!("\"{tag}\"") }),
                source: Some(Source { store: Arc::clone(&self.store), path }),
            })
        })
    }

    fn put_stream<'a>(
        &'a self,
        kind: Collection,
        max_bytes: u64,
        body: ByteStream,
    ) -> BoxFuture<'a, Result<Put, StorageError>> {
        Box::pin(async move {
            let (mut body, Begun { id, content_type, ext, first }) = Checked::begin(body, kind, max_bytes).await?;
            let path = self.file_key(kind, &id, ext);
            // Up to one part is gathered first: a stream that ends within it is one PUT.
            let permit = part_permit().await?;
            let mut head = vec![first];
            if gather(&mut body, &mut head).await? {
                self.put_whole(&path, content_type, PutPayload::from_iter(head), PutMode::Create).await?;
                return Ok(Put { id, content_type, len: body.bytes_read() });
            }
            self.put_multipart(&path, content_type, (head, permit), &mut body).await?;
            Ok(Put { id, content_type, len: body.bytes_read() })
        })
    }

    fn signed_url<'a>(
        &'a self,
        kind: Collection,
        id: &'a str,
        expires: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        Box::pin(async move {
            let (path, _, _) = self.head(kind, id).await?;
            let url =
                self.store.signed_url(reqwest::Method::GET, &path, expires).await.map_err(|e| store_error(e, ""))?;
            Ok(Some(url.to_string()))
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            let probe = self.key(&format!(".mvgen-probe-{}", Uuid::new_v4()));
            self.put_whole(&probe, "text/plain", Bytes::from_static(b"probe").into(), PutMode::Create).await?;
            self.store.delete(&probe).await.map_err(|e| store_error(e, ""))?;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}", self.bucket),
            prefix => format!("s3://{}/{prefix}", self.bucket),
        }
    }
}
