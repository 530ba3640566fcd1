//! Files in an S3-compatible object store (`MVGEN_STORAGE_URL=s3://bucket/prefix`), through the
//! `object_store` crate: the same layout as `file://` under the prefix
//! (`{prefix}/{kind}/{uuid}.{ext}`, records under `{prefix}/records/{kind}/{uuid}.json`), so any
//! replica finds what another stored.
//!
//! A file appears under its final key only whole: a small one is one PUT with `If-None-Match: *`
//! (`PutMode::Create`), a large one a multipart upload, which S3 shows only once completed and
//! which is aborted when the stream fails, is refused or is dropped.
//!
//! A store that is slow or wrong fails fast and loudly: each request to it has a deadline
//! (`MVGEN_STORAGE_TIMEOUT`, [`within`]) and a stream from it one on each wait for bytes
//! ([`watched`]), never on a whole transfer; the bucket is checked by a listing, never created;
//! and its XML error answers become one line ([`readable`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ClientConfigKey, ClientOptions, GetOptions, MultipartUpload, ObjectStore, ObjectStoreExt,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
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

/// How long one request to the store may take when `MVGEN_STORAGE_TIMEOUT` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What an operator may tune about an `s3://` store beyond the `AWS_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `MVGEN_STORAGE_TIMEOUT`: the deadline of each request to the store, and how long a stream
    /// from it may go without a byte (never the whole transfer of a large file).
    pub timeout: Duration,
    /// `MVGEN_STORAGE_PUBLIC_URL`: the `scheme://host[:port]` presigned URLs are signed for, when
    /// clients reach the store under another name than mvgen does.
    pub public_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options { timeout: DEFAULT_TIMEOUT, public_url: None }
    }
}

/// An S3-compatible store.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<AmazonS3>,
    /// Signs the presigned URLs. A signature covers the Host header, so a URL cannot be moved to
    /// another host after signing: with `MVGEN_STORAGE_PUBLIC_URL` this is a second client
    /// configured with the public endpoint (it only signs, never sends); otherwise `store`.
    signer: Arc<AmazonS3>,
    prefix: String,
    bucket: String,
    /// The store's endpoint for messages (`AWS_ENDPOINT_URL`, or AWS itself).
    endpoint: String,
    timeout: Duration,
}

/// Where an opened object's ranges are fetched from.
#[derive(Debug)]
pub(super) struct Source {
    store: Arc<AmazonS3>,
    path: Path,
    timeout: Duration,
}

impl Source {
    pub(super) async fn range(self, start: u64, count: u64) -> Result<ByteStream, StorageError> {
        let options = GetOptions { range: Some((start..start + count).into()), ..GetOptions::default() };
        let got = within(self.timeout, "a ranged GET", "", self.store.get_opts(&self.path, options)).await?;
        Ok(watched(got.into_stream(), self.timeout))
    }
}

/// Runs one request to the store under its deadline: a store that accepts connections but never
/// answers (hung, overloaded, a balancer holding the connection) fails the work that needs it in
/// `timeout`, retryably, instead of after the client's read timeout and retries (over 30 s, and
/// three times that through a retrying balancer). object_store's own retries happen inside it.
async fn within<T>(
    timeout: Duration,
    what: &str,
    id: &str,
    request: impl Future<Output = object_store::Result<T>>,
) -> Result<T, StorageError> {
    match tokio::time::timeout(timeout, request).await {
        Ok(answer) => answer.map_err(|e| store_error(e, id)),
        Err(_) => Err(StorageError::Unavailable(no_answer(what, timeout))),
    }
}

fn no_answer(what: &str, timeout: Duration) -> String {
    format!("{what} got no answer from the store within {} s (MVGEN_STORAGE_TIMEOUT)", timeout.as_secs_f64())
}

/// An object's bytes as they arrive, failing when none came for `timeout`: the deadline is on
/// each wait for the store, never on the whole transfer, so a 100 MB video sent to a slow client
/// takes as long as it takes, while a store that stops sending mid-file cuts the answer. The wait
/// starts only when the next chunk is asked for, so a client that reads slowly never trips it.
fn watched(
    body: futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
    timeout: Duration,
) -> ByteStream {
    stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(timeout, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
            Ok(Some(Err(e))) => Some((Err(std::io::Error::other(readable(&with_causes(&e)))), None)),
            Ok(None) => None,
            Err(_) => {
                let stalled = no_answer("reading an object", timeout);
                Some((Err(std::io::Error::new(std::io::ErrorKind::TimedOut, stalled)), None))
            }
        }
    })
    .boxed()
}

impl ObjectStorage {
    /// A store for `bucket`, keys under `prefix`, the rest (endpoint, region, credentials,
    /// `allow_http`) from `builder` (`AmazonS3Builder::from_env()` reads the standard `AWS_*`).
    pub fn new(builder: AmazonS3Builder, bucket: &str, prefix: &str, options: &Options) -> Result<Self, String> {
        // object_store retries a failed request (a 5xx, a reset) twice, all within the deadline
        // `within` puts on the whole operation.
        let retry = RetryConfig { max_retries: 2, retry_timeout: options.timeout, ..RetryConfig::default() };
        // Options set here replace the builder's client options: keep its `allow_http`.
        let allow_http = builder
            .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        // TLS roots and the rest of the client are the connector's (src/storage/s3_http.rs).
        let client = ClientOptions::new().with_allow_http(allow_http);
        // No overall or read timeout on the client: a large GET streamed to a slow client takes as
        // long as it takes, and the client's read timeout also runs while the reader is not
        // asking for bytes, so it cut slow readers mid-file. `within` bounds each request and
        // `watched` each wait of a stream for the store instead.
        let client = client
            .with_connect_timeout(options.timeout.min(Duration::from_secs(5)))
            .with_read_timeout_disabled()
            .with_timeout_disabled();
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint).unwrap_or_else(|| "AWS S3".to_string());
        let builder = builder
            .with_bucket_name(bucket)
            .with_retry(retry)
            .with_client_options(client)
            .with_http_connector(super::s3_http::Connector);
        let store = Arc::new(builder.clone().build().map_err(|e| format!("s3://{bucket}: {e}"))?);
        let signer = match &options.public_url {
            None => Arc::clone(&store),
            Some(public) => Arc::new(
                builder
                    .with_endpoint(public)
                    .build()
                    .map_err(|e| format!("MVGEN_STORAGE_PUBLIC_URL={public:?}: {e}"))?,
            ),
        };
        Ok(ObjectStorage {
            store,
            signer,
            prefix: prefix.trim_matches('/').to_string(),
            bucket: bucket.into(),
            endpoint,
            timeout: options.timeout,
        })
    }

    /// One request to the store under the deadline (see [`within`]).
    async fn within<T>(
        &self,
        what: &str,
        id: &str,
        request: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, StorageError> {
        within(self.timeout, what, id, request).await
    }

    /// Proves the bucket exists without creating it: a listing (which no S3 server answers by
    /// making a bucket) before any write, since SeaweedFS, for one, creates a missing bucket on
    /// the first PUT into it, and a typo in one replica's `MVGEN_STORAGE_URL` would then quietly
    /// split the outputs between two buckets.
    async fn check_bucket(&self) -> Result<(), StorageError> {
        let mut listing = self.store.list(Some(&self.key(".mvgen-bucket-check")));
        match self.within("listing the bucket", "", async { listing.next().await.transpose() }).await {
            Ok(_) => Ok(()),
            Err(StorageError::Unavailable(e)) if e.contains("NoSuchBucket") => Err(StorageError::Unavailable(format!(
                "bucket {:?} does not exist at {} (mvgen never creates one: create it, or fix the bucket in \
                 MVGEN_STORAGE_URL)",
                self.bucket, self.endpoint
            ))),
            Err(e) => Err(e),
        }
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
            match tokio::time::timeout(self.timeout, self.store.head(&path)).await {
                Err(_) => return Err(StorageError::Unavailable(no_answer("a HEAD", self.timeout))),
                Ok(Ok(meta)) => return Ok((path, content_type_for(ext).unwrap_or("application/octet-stream"), meta)),
                Ok(Err(object_store::Error::NotFound { .. })) => {}
                Ok(Err(e)) => return Err(store_error(e, &id)),
            }
        }
        Err(StorageError::NotFound(id))
    }

    /// `bytes` as file `id` of `kind` (extension `ext`), in one PUT with `mode`.
    async fn put_file(
        &self,
        kind: Collection,
        id: &str,
        ext: &str,
        bytes: &[u8],
        mode: PutMode,
    ) -> Result<(), StorageError> {
        let path = self.file_key(kind, id, ext);
        let content_type = content_type_for(ext).unwrap_or("application/octet-stream");
        self.put_whole(&path, content_type, Bytes::copy_from_slice(bytes).into(), mode).await
    }

    async fn put_whole(
        &self,
        path: &Path,
        content_type: &str,
        bytes: PutPayload,
        mode: PutMode,
    ) -> Result<(), StorageError> {
        let options = PutOptions { mode, attributes: content_type_attribute(content_type), ..PutOptions::default() };
        self.within("a PUT", "", self.store.put_opts(path, bytes, options)).await?;
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
        let upload =
            self.within("starting a multipart upload", "", self.store.put_multipart_opts(path, options)).await?;
        let mut guard = AbortOnDrop(Some(upload), self.timeout);
        let result = match guard.0.as_mut() {
            Some(upload) => upload_parts(upload.as_mut(), first, body, self.timeout).await,
            None => Err(StorageError::Io(std::io::Error::other("upload gone"))),
        };
        let Some(mut upload) = guard.0.take() else {
            return Err(StorageError::Io(std::io::Error::other("upload gone")));
        };
        match result {
            Ok(()) => self.within("completing a multipart upload", "", upload.complete()).await.map(drop),
            Err(e) => {
                if let Err(abort) = self.within("aborting a multipart upload", "", upload.abort()).await {
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
/// (spawned, so they progress while the next part is gathered; aborted if this is dropped). Each
/// part is one request to the store and has its own deadline, `timeout`; waiting for the source
/// to fill the next part is not the store's time and has none here (the download's own bounds).
async fn upload_parts(
    upload: &mut dyn MultipartUpload,
    first: (Vec<Bytes>, SemaphorePermit<'static>),
    body: &mut Checked,
    timeout: Duration,
) -> Result<(), StorageError> {
    let mut in_flight = tokio::task::JoinSet::new();
    let (mut part, mut permit) = first;
    let mut ended = false;
    loop {
        let sent = upload.put_part(PutPayload::from_iter(std::mem::take(&mut part)));
        in_flight.spawn(async move {
            let sent = within(timeout, "uploading a part", "", sent).await;
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

fn finished(done: Option<Result<Result<(), StorageError>, tokio::task::JoinError>>) -> Result<(), StorageError> {
    match done {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => Err(StorageError::Io(std::io::Error::other(e))),
    }
}

/// Aborts a multipart upload whose put was dropped mid-stream (the request went away), so no
/// parts are left behind; the object never existed under its key.
/// The abort has the store's deadline too, so a hung store leaves no task waiting on it.
struct AbortOnDrop(Option<Box<dyn MultipartUpload>>, Duration);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let timeout = self.1;
        if let (Some(mut upload), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(crate::background::task(async move {
                let _ = tokio::time::timeout(timeout, upload.abort()).await;
            }));
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
        e => StorageError::Unavailable(readable(&with_causes(&e))),
    }
}

/// A store's error as one readable line. object_store puts the store's whole answer in its
/// message, and an S3 error answer is an XML document (`<Error><Code>…</Code><Message>…`), often
/// spread over lines: in a log line or an exit message an operator wants the status, the S3
/// code and its message, so the XML is replaced by those (`… 403 Forbidden: SignatureDoesNotMatch:
/// The request signature we calculated does not match …`). Other text passes through on one line.
fn readable(text: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].trim().to_string())
    };
    let line = match text.find('<').filter(|_| text.contains("<Error>")) {
        None => text.to_string(),
        Some(xml) => {
            let before = text[..xml].trim_end().trim_end_matches(':');
            let said: Vec<String> = [tag("Code"), tag("Message")].into_iter().flatten().collect();
            if said.is_empty() { before.to_string() } else { format!("{before}: {}", said.join(": ")) }
        }
    };
    line.split_whitespace().collect::<Vec<_>>().join(" ")
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
            self.put_file(kind, &id, ext, bytes, PutMode::Create).await?;
            Ok(id)
        })
    }

    fn put_as<'a>(
        &'a self,
        kind: Collection,
        id: &'a str,
        content_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let id = parse_id(id)?;
            let ext = stored_extension(kind, content_type)?;
            // Overwrite: the same bytes again when a cut purge redoes it. A PUT that answered is
            // stored, so there is nothing more to wait for.
            self.put_file(kind, &id, ext, bytes, PutMode::Overwrite).await
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
            let got = match tokio::time::timeout(self.timeout, self.store.get(&path)).await {
                Err(_) => return Err(StorageError::Unavailable(no_answer("reading a record", self.timeout))),
                Ok(Ok(got)) => got,
                Ok(Err(object_store::Error::NotFound { .. })) => return Ok(None),
                Ok(Err(e)) => return Err(store_error(e, &id)),
            };
            // A record is a few hundred bytes: anything large was not written by mvgen.
            if got.meta.size > MAX_RECORD_BYTES {
                tracing::warn!(key = %path, "ignoring a record larger than {MAX_RECORD_BYTES} bytes");
                return Ok(None);
            }
            Ok(Some(self.within("reading a record", &id, got.bytes()).await?.to_vec()))
        })
    }

    fn open<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<Opened, StorageError>> {
        Box::pin(async move {
            let (path, content_type, meta) = self.head(kind, id).await?;
            // The bytes are fetched only if the reader is read: a ranged answer fetches its range.
            // `watched` bounds the GET's answer and then each wait for the next chunk.
            let (store, key) = (Arc::clone(&self.store), path.clone());
            let whole = stream::once(async move { store.get(&key).await })
                .map(|got| match got {
                    Ok(got) => got.into_stream(),
                    Err(e) => stream::iter([Err(e)]).boxed(),
                })
                .flatten()
                .boxed();
            let whole = watched(whole, self.timeout);
            Ok(Opened {
                file: Reader::Stream(tokio_util::io::StreamReader::new(whole)),
                len: meta.size,
                modified: Some(SystemTime::from(meta.last_modified)),
                content_type,
                etag: meta.e_tag.map(|tag| if tag.starts_with('"') { tag } else { format!("\"{tag}\"") }),
                source: Some(Source { store: Arc::clone(&self.store), path, timeout: self.timeout }),
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
            // Signed for the endpoint clients use (see `signer`); the signing needs no request
            // unless credentials must be fetched first, which the deadline bounds.
            let url =
                self.within("signing a URL", "", self.signer.signed_url(reqwest::Method::GET, &path, expires)).await?;
            Ok(Some(url.to_string()))
        })
    }

    fn delete<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let id = parse_id(id)?;
            let keys = kind.extensions().iter().map(|ext| self.file_key(kind, &id, ext));
            // S3's DELETE of a missing key succeeds; object_store may still say NotFound.
            for key in keys.chain([self.record_key(kind, &id)]) {
                match self.within("a DELETE", &id, self.store.delete(&key)).await {
                    Err(StorageError::NotFound(_)) | Ok(()) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            self.check_bucket().await?;
            let probe = self.key(&format!(".mvgen-probe-{}", Uuid::new_v4()));
            self.put_whole(&probe, "text/plain", Bytes::from_static(b"probe").into(), PutMode::Create).await?;
            self.within("a DELETE", "", self.store.delete(&probe)).await?;
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

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn a_store_error_answer_is_one_line_with_its_status_code_and_message() {
        // What object_store says for a refused request: the store's XML answer, over several lines.
        let raw = "Generic S3 error: Error performing PUT http://127.0.0.1:8333/b/p/x in 2ms - Server returned \
                   non-2xx status code: 403 Forbidden: <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  \
                   <Code>SignatureDoesNotMatch</Code>\n  <Message>The request signature we calculated does not \
                   match.</Message>\n  <Resource>/b/p/x</Resource>\n  <RequestId>1</RequestId>\n</Error>";
        assert_eq!(
            readable(raw),
            "Generic S3 error: Error performing PUT http://127.0.0.1:8333/b/p/x in 2ms - Server returned non-2xx \
             status code: 403 Forbidden: SignatureDoesNotMatch: The request signature we calculated does not match."
        );
        // An answer without the S3 fields keeps the status; text without XML passes on one line.
        assert_eq!(
            readable("status code: 500 Internal Server Error: <Error></Error>"),
            "status code: 500 Internal Server Error"
        );
        assert_eq!(
            readable("error sending request:\n connection refused"),
            "error sending request: connection refused"
        );
        assert_eq!(readable("a < b"), "a < b");
    }
}
