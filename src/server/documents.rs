//! Layer documents at URLs (a MosaicJSON or STAC source at `https://…` or `s3://…`),
//! read through the same origin client as remote assets: the `--allow-remote` policy
//! (refused forms, IP literals, redirects only within the allow-list), S3 signing and
//! credentials, retries with jittered backoff and hedging all apply.
//!
//! A document is read in [`CHUNK`] ranges, [`CHUNKS_IN_FLIGHT`] at a time, each asking
//! for the version the first range answered; an object replaced mid-read is read again
//! from the start (up to [`READS`] times), so a layer is never built from two versions.
//! Its size is checked against [`MAX_DOCUMENT_BYTES`] before the rest is fetched. The
//! bytes go around the shared cache of remote bytes: a document is read once per
//! version and kept only as the layer built from it.

use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt, future::BoxFuture};

use crate::{
    fetch::{FetchError, Fetched, Origin},
    layers::{DocumentSource, RemoteVersion},
    mosaic::{AssetResolver, RemoteUrl},
};

/// The largest remote layer document read (a stac-geoparquet of a million items is
/// about 100 MiB; an ItemCollection of a million, several GiB, is not for this path).
pub const MAX_DOCUMENT_BYTES: u64 = 512 * 1024 * 1024;
/// The size of one range of a document.
const CHUNK: u64 = 8 * 1024 * 1024;
/// Ranges of one document in flight at once.
const CHUNKS_IN_FLIGHT: usize = 4;
/// How long reading one document may take, retries included.
const DEADLINE: Duration = Duration::from_secs(120);
/// Reads of a document that changes while it is read, before giving up.
const READS: usize = 3;

/// Remote layer documents through the origin client, under the resolver's policy.
#[derive(Debug)]
pub struct RemoteDocuments {
    resolver: AssetResolver,
    origin: Origin,
}

impl RemoteDocuments {
    /// Documents read with `origin`, at URLs `resolver` allows.
    #[must_use]
    pub fn new(resolver: AssetResolver, origin: Origin) -> Self {
        Self { resolver, origin }
    }

    /// The URL, checked against the policy assets are read under.
    fn url(&self, url: &str) -> Result<RemoteUrl, String> {
        let asset = self.resolver.resolve(url).map_err(|e| e.to_string())?;
        RemoteUrl::from_gdal_path(&asset.path.to_string_lossy())
    }

    async fn first(
        &self,
        url: &RemoteUrl,
        end: u64,
        deadline: tokio::time::Instant,
    ) -> Result<Fetched, String> {
        self.origin.get_range(url, 0..end, None, deadline).await.map_err(|e| match e {
            FetchError::OutOfRange(_) => "the object is empty".to_owned(),
            other => other.to_string(),
        })
    }

    async fn read_once(
        &self,
        url: &RemoteUrl,
        deadline: tokio::time::Instant,
    ) -> Result<(Vec<u8>, RemoteVersion), FetchError> {
        let first = self.origin.get_range(url, 0..CHUNK, None, deadline).await?;
        if first.size > MAX_DOCUMENT_BYTES {
            return Err(FetchError::Failed {
                status: None,
                message: format!(
                    "the document is {} bytes; remote layer documents are read up to {MAX_DOCUMENT_BYTES} bytes",
                    first.size
                ),
            });
        }
        let size = first.size;
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        bytes.extend_from_slice(&first.bytes);
        let validator = first.validator;
        let ranges = (CHUNK..size)
            .step_by(usize::try_from(CHUNK).unwrap_or(usize::MAX))
            .map(|s| s..(s + CHUNK).min(size));
        let rest: Vec<Fetched> = futures::stream::iter(ranges)
            .map(|r| self.origin.get_range(url, r, Some(&validator), deadline))
            .buffered(CHUNKS_IN_FLIGHT)
            .try_collect()
            .await?;
        for part in rest {
            bytes.extend_from_slice(&part.bytes);
        }
        let version = RemoteVersion { size, etag: validator.etag, last_modified: validator.last_modified };
        Ok((bytes, version))
    }
}

impl DocumentSource for RemoteDocuments {
    fn version<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<RemoteVersion, String>> {
        async move {
            let url = self.url(url)?;
            let answer = self.first(&url, 1, tokio::time::Instant::now() + DEADLINE).await?;
            Ok(RemoteVersion {
                size: answer.size,
                etag: answer.validator.etag,
                last_modified: answer.validator.last_modified,
            })
        }
        .boxed()
    }

    fn read<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<(Vec<u8>, RemoteVersion), String>> {
        async move {
            let url = self.url(url)?;
            let deadline = tokio::time::Instant::now() + DEADLINE;
            let mut reads = 0;
            loop {
                reads += 1;
                match self.read_once(&url, deadline).await {
                    Err(FetchError::Changed(why)) if reads < READS => {
                        tracing::info!(%why, "a layer document changed while it was read; reading it again");
                    }
                    Err(FetchError::OutOfRange(_)) => return Err("the object is empty".to_owned()),
                    Err(FetchError::Changed(why)) => {
                        return Err(format!("it changed while it was read, {READS} times: {why}"));
                    }
                    Err(other) => return Err(other.to_string()),
                    Ok(done) => return Ok(done),
                }
            }
        }
        .boxed()
    }
}
