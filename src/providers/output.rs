//! A generated file on its way from a provider into storage: the type known from its first bytes,
//! the rest a stream read once, straight into `Storage::put_stream`. A 200 MiB video is never whole
//! in memory: it passes in the chunks the HTTP client reads.
//!
//! The provider's own checks stay the provider's: the type and an empty body are judged before
//! [`Output`] is handed over (so they fail the provider call, as a retry-free `Malformed`), and the
//! size cap, a transport fault or the download timeout mid-stream come out of
//! [`Output::store`] as the same [`ProviderError`]s a whole-body read gave. The download's request
//! timeout (`reqwest`'s, which runs until the body has been read) bounds the stream as a whole.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream;
use reqwest::Response;
use tracing::Instrument as _;

use super::body::human_bytes;
use super::upstream_error::transport_error;
use super::{Media, ProviderError};
use crate::media::checked_media_type;
use crate::storage::checked::SNIFF_BYTES;
use crate::storage::{ByteStream, Collection, Put, Storage, StorageError};

/// A provider's output, not yet read past its first bytes.
pub struct Output {
    /// Decided from the first bytes (`image/png`, `video/mp4`, ...).
    pub content_type: &'static str,
    provider: &'static str,
    /// What the cap message calls it: "output", "video".
    noun: &'static str,
    max_bytes: u64,
    body: ByteStream,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("content_type", &self.content_type).field("provider", &self.provider).finish()
    }
}

impl Output {
    /// A file already in memory and already checked (a mock's, a decoded `data:` URI), as one chunk.
    pub fn from_bytes(provider: &'static str, content_type: &'static str, bytes: impl Into<Bytes>) -> Output {
        let bytes = bytes.into();
        let max_bytes = bytes.len() as u64;
        let body = stream::iter([Ok(bytes)]).boxed();
        Output { content_type, provider, noun: "output", max_bytes, body }
    }

    /// A download's body: at most `max_bytes` (a larger `Content-Length` is refused before any
    /// byte is read), not empty, and of the `expected` kind (`"image"`, `"video"`) as its first
    /// bytes say. Only those first bytes are read here; the rest streams when stored. A transport
    /// fault maps as any other of `provider`'s, a timeout as one after `timeout`.
    pub async fn download(
        provider: &'static str,
        noun: &'static str,
        expected: &str,
        response: Response,
        max_bytes: u64,
        timeout: std::time::Duration,
    ) -> Result<Output, ProviderError> {
        let too_large = move || ProviderError::Malformed { provider, message: too_large_message(noun, max_bytes) };
        if response.content_length().is_some_and(|len| len > max_bytes) {
            return Err(too_large());
        }
        let mut chunks = chunks(response)
            .scan(0u64, move |read, chunk| {
                let item = match chunk {
                    Ok(chunk) => {
                        *read += chunk.len() as u64;
                        // Before the chunk that passes the cap is handed on: nothing past it is kept.
                        if *read > max_bytes { Err(too_large()) } else { Ok(chunk) }
                    }
                    Err(e) => Err(transport_error(provider, &e, timeout)),
                };
                std::future::ready(Some(item))
            })
            .boxed();
        let mut head = BytesMut::new();
        while head.len() < SNIFF_BYTES {
            match chunks.next().await {
                Some(chunk) => head.extend_from_slice(&chunk?),
                None => break,
            }
        }
        if head.is_empty() {
            return Err(ProviderError::Malformed { provider, message: format!("{noun} file is empty") });
        }
        let content_type =
            checked_media_type(&head, expected).map_err(|message| ProviderError::Malformed { provider, message })?;
        let rest = chunks.map(|chunk| chunk.map_err(std::io::Error::other));
        let body = stream::iter([Ok(head.freeze())]).chain(rest).boxed();
        Ok(Output { content_type, provider, noun, max_bytes, body })
    }

    /// Streams the output into `storage` as a new file of `kind`. A fault of the provider's side
    /// (cut, timed out, too large, not the kind's type) is the outer `Err`, as the provider call's
    /// own error; a fault of the store's is the inner one. Either way nothing is left under a
    /// final name (`put_stream`'s promise).
    pub async fn store(
        self,
        storage: &dyn Storage,
        kind: Collection,
    ) -> Result<Result<Put, StorageError>, ProviderError> {
        let (provider, noun, max_bytes) = (self.provider, self.noun, self.max_bytes);
        let malformed = |message| ProviderError::Malformed { provider, message };
        // The body streamed from the provider into the store, as one span when traces are exported.
        let span = crate::trace_context::span(|| tracing::info_span!("output.store", upstream.provider = provider));
        match storage.put_stream(kind, max_bytes, self.body).instrument(span).await {
            Ok(put) => Ok(Ok(put)),
            Err(StorageError::Interrupted(e)) => match provider_error(e) {
                Ok(error) => Err(error),
                Err(e) => Ok(Err(StorageError::Interrupted(e))),
            },
            // The download's own cap comes first; this is `put_stream`'s, the same limit.
            Err(StorageError::TooLarge { .. }) => Err(malformed(too_large_message(noun, max_bytes))),
            Err(StorageError::Rejected(message)) => Err(malformed(message)),
            Err(other) => Ok(Err(other)),
        }
    }

    /// Reads the whole output into memory, with the same cap. For small files and tests only: the
    /// generation path streams with [`Output::store`].
    pub async fn read_all(self) -> Result<Media, ProviderError> {
        let mut bytes = Vec::new();
        let mut body = self.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                provider_error(e)
                    .unwrap_or_else(|e| ProviderError::Unreachable { provider: self.provider, message: e.to_string() })
            })?;
            if (bytes.len() + chunk.len()) as u64 > self.max_bytes {
                let message = too_large_message(self.noun, self.max_bytes);
                return Err(ProviderError::Malformed { provider: self.provider, message });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Media { bytes, content_type: self.content_type.to_owned() })
    }
}

/// `output larger than 200 MiB`.
fn too_large_message(noun: &str, max_bytes: u64) -> String {
    format!("{noun} larger than {}", human_bytes(max_bytes))
}

/// The provider error a stream chunk carried, or the I/O error as it was.
fn provider_error(e: std::io::Error) -> Result<ProviderError, std::io::Error> {
    if !e.get_ref().is_some_and(|inner| inner.is::<ProviderError>()) {
        return Err(e);
    }
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<ProviderError>()) {
        Some(Ok(error)) => Ok(*error),
        Some(Err(inner)) => Err(std::io::Error::new(kind, inner)),
        None => Err(std::io::Error::from(kind)),
    }
}

/// A response body as a stream of chunks, ending at the first error.
fn chunks(response: Response) -> impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Send + 'static {
    stream::unfold(Some(response), |response| async move {
        let mut response = response?;
        match response.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(response))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    })
}
