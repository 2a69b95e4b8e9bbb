//! The front's reader of remote assets: it answers the workers' range requests from
//! the shared cache ([`super::cache`]), fetches the blocks a read has planned before any
//! worker renders it, and starts fetching the headers of a tile's assets as soon as the
//! tile is asked for.
//!
//! A worker may ask only about the asset of the job it is running (the pool passes the
//! job's path with each question): a worker that a hostile file has subverted still
//! cannot make the front fetch anything else.

use std::{ops::Range, sync::Arc, time::Duration};

use futures::{FutureExt, future::BoxFuture};
use tokio::time::Instant;

use super::{
    FetchError, Origin,
    cache::{CacheCounters, ObjectState, RangeCache, ReadCost},
};
use crate::{
    ipc::RangeService,
    mosaic::{RemoteUrl, WORKER_PREFIX},
    pb::worker::{ByteRange, ErrorKind, RangeReply, RangeRequest, WorkerError},
    telemetry::metrics::{MetricSource, Sample},
};

/// Most bytes one question may ask for (a read's planned blocks included): larger
/// reads are the worker's fault.
const MAX_QUESTION_BYTES: u64 = 256 * 1024 * 1024;

/// Most bytes the answer to a plan carries (its blocks, when all are cached); a larger
/// plan is answered without them and the worker reads its blocks question by question.
const MAX_PLAN_REPLY_BYTES: u64 = 32 * 1024 * 1024;

/// Most ranges in one question.
const MAX_QUESTION_RANGES: usize = 65_536;

/// What the front's own fetches for an asset read cost (the plan's prefetch), for its
/// span.
pub type ReaderStats = ReadCost;

/// The reader of remote assets, shared by the pool and the tile renderer.
#[derive(Debug)]
pub struct AssetReader {
    cache: RangeCache,
}

impl AssetReader {
    /// A reader fetching through `origin` into a cache of `capacity` bytes, trusting
    /// an object's validator for `metadata_ttl` after each check.
    #[must_use]
    pub fn new(origin: Arc<Origin>, capacity: u64, metadata_ttl: Duration) -> Self {
        Self { cache: RangeCache::new(origin, capacity, metadata_ttl) }
    }

    /// The same reader with a read-ahead window of `bytes` (see [`RangeCache::with_read_ahead`]).
    #[must_use]
    pub fn with_read_ahead(self, bytes: u64) -> Self {
        Self { cache: self.cache.with_read_ahead(bytes) }
    }

    /// The cache's counters.
    #[must_use]
    pub fn cache_counters(&self) -> &Arc<CacheCounters> {
        self.cache.counters()
    }

    /// Bytes the cache holds.
    #[must_use]
    pub fn cache_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// The origin.
    #[must_use]
    pub fn origin(&self) -> &Arc<Origin> {
        self.cache.origin()
    }

    /// For the asset at worker path `path`, if remote: its header fetched unless known
    /// (and its validator checked when the TTL has passed), so the worker that opens it
    /// finds it cached; what that cost. Concurrent calls for one asset make one fetch.
    pub async fn ensure_header(
        &self,
        path: &std::path::Path,
        deadline: Instant,
    ) -> Result<ReadCost, FetchError> {
        let mut cost = ReadCost::default();
        let Some(path) = path.to_str().filter(|p| p.starts_with(WORKER_PREFIX)) else { return Ok(cost) };
        let url = RemoteUrl::from_gdal_path(path).map_err(FetchError::Denied)?;
        self.cache.object(&url, deadline, &mut cost).await?;
        Ok(cost)
    }

    /// Worker path `path` (`/vsitessera/<url>`) with the generation the cache knows the
    /// object at (`/vsitessera/<generation>/<url>`), so the worker opens that version
    /// without asking; `None` when the object is not known (yet) or `path` is not remote.
    #[must_use]
    pub fn versioned_path(&self, path: &str) -> Option<String> {
        let url = RemoteUrl::from_gdal_path(path).ok()?;
        let generation = self.cache.generation(&url)?;
        Some(format!("{WORKER_PREFIX}{generation}/{url}"))
    }

    /// Fetches `ranges` of the asset at worker path `path` into the cache (a deferred
    /// read's plan), all at once; what it cost.
    pub async fn fetch_planned(
        &self,
        path: &str,
        ranges: &[ByteRange],
        deadline: Instant,
    ) -> Result<ReadCost, FetchError> {
        let url = RemoteUrl::from_gdal_path(path).map_err(FetchError::Denied)?;
        let ranges = checked_ranges(ranges)?;
        let mut cost = ReadCost::default();
        self.cache.read(&url, 0, &ranges, deadline, &mut cost).await?;
        Ok(cost)
    }

    async fn answer(&self, job_path: &str, question: RangeRequest, deadline: Instant) -> RangeReply {
        let started = std::time::Instant::now();
        let mut cost = ReadCost::default();
        let outcome = self.answer_inner(job_path, &question, deadline, &mut cost).await;
        let mut reply = match outcome {
            Ok(reply) => reply,
            Err(e) => RangeReply { error: Some(worker_error(&e)), ..RangeReply::default() },
        };
        reply.cache_hits = cost.hits;
        reply.cache_misses = cost.misses;
        reply.origin_requests = cost.requests;
        reply.wait_us = cost.wait.min(started.elapsed()).as_micros() as u64;
        reply
    }

    async fn answer_inner(
        &self,
        job_path: &str,
        question: &RangeRequest,
        deadline: Instant,
        cost: &mut ReadCost,
    ) -> Result<RangeReply, FetchError> {
        let (generation, url) = parse_worker_path(&question.path)?;
        let (_, job_url) = parse_worker_path(job_path)?;
        if url != job_url {
            return Err(FetchError::Denied(format!(
                "a worker asked for {url} during a job about {job_url}: refused"
            )));
        }
        let ranges = checked_ranges(&question.ranges)?;
        if question.plan {
            let state = self.cache.object(&url, deadline, cost).await?;
            let ready = self.cache.holds(&url, generation.unwrap_or(state.generation), &ranges);
            let bytes: u64 = ranges.iter().map(|r| r.end - r.start).sum();
            if !ready || bytes > MAX_PLAN_REPLY_BYTES {
                return Ok(reply_for(&state, Vec::new(), ready));
            }
            // Every range is cached: the bytes go with the answer, and the worker's reads
            // are served from them instead of one question each.
            let (state, data) =
                self.cache.read(&url, generation.unwrap_or(0), &ranges, deadline, cost).await?;
            return Ok(reply_for(&state, data.into_iter().map(Vec::from).collect(), true));
        }
        if ranges.is_empty() {
            let state = self.cache.object(&url, deadline, cost).await?;
            if generation.is_some_and(|g| g != state.generation) {
                return Err(FetchError::Changed(format!("{url} changed while it was being read")));
            }
            return Ok(reply_for(&state, Vec::new(), true));
        }
        let (state, data) = self.cache.read(&url, generation.unwrap_or(0), &ranges, deadline, cost).await?;
        Ok(reply_for(&state, data.into_iter().map(Vec::from).collect(), true))
    }
}

impl MetricSource for AssetReader {
    fn latent(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        vec![super::ORIGIN_ERRORS]
    }

    /// The cache's and the origin's counters.
    fn samples(&self) -> Vec<Sample> {
        use std::sync::atomic::Ordering::Relaxed;
        let c = self.cache.counters();
        let sample = |name, help, kind, value| Sample { name, help, kind, label: None, value };
        let mut out = vec![
            sample(
                "tessera_remote_cache_bytes",
                "Bytes of remote assets the front holds.",
                "gauge",
                self.cache_size(),
            ),
            sample(
                "tessera_remote_cache_hits_total",
                "Chunks of remote assets served from the cache.",
                "counter",
                c.hits.load(Relaxed),
            ),
            sample(
                "tessera_remote_cache_misses_total",
                "Chunks of remote assets not in the cache.",
                "counter",
                c.misses.load(Relaxed),
            ),
            sample(
                "tessera_remote_cache_evictions_total",
                "Chunks evicted from the remote cache for room.",
                "counter",
                c.evictions.load(Relaxed),
            ),
            sample(
                "tessera_remote_cache_coalesced_total",
                "Chunks a read waited for while another read fetched them.",
                "counter",
                c.coalesced.load(Relaxed),
            ),
            sample(
                "tessera_remote_objects_changed_total",
                "Remote objects seen to change (read afresh).",
                "counter",
                c.changes.load(Relaxed),
            ),
        ];
        out.extend(self.origin().samples());
        out
    }
}

impl RangeService for AssetReader {
    fn serve<'a>(
        &'a self,
        job_path: &'a str,
        request: RangeRequest,
        deadline: Instant,
    ) -> BoxFuture<'a, RangeReply> {
        self.answer(job_path, request, deadline).boxed()
    }
}

fn reply_for(state: &ObjectState, data: Vec<Vec<u8>>, ready: bool) -> RangeReply {
    RangeReply { size: state.size, data, ready, generation: state.generation, ..RangeReply::default() }
}

/// `/vsitessera/[<generation>/]<url>` → the generation (if written) and the URL.
fn parse_worker_path(path: &str) -> Result<(Option<u64>, RemoteUrl), FetchError> {
    let rest = path
        .strip_prefix(WORKER_PREFIX)
        .ok_or_else(|| FetchError::Denied(format!("{} is not a remote asset", crate::echo::quote(path))))?;
    let (generation, url) = match crate::ipc::split_generation(rest) {
        Some((generation, url)) => (generation.parse().ok(), url),
        None => (None, rest),
    };
    Ok((generation, RemoteUrl::parse(url).map_err(FetchError::Denied)?))
}

/// The ranges of a question, bounded.
fn checked_ranges(ranges: &[ByteRange]) -> Result<Vec<Range<u64>>, FetchError> {
    if ranges.len() > MAX_QUESTION_RANGES {
        return Err(FetchError::OutOfRange(format!("{} ranges in one read", ranges.len())));
    }
    let mut total = 0u64;
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let end = r
            .offset
            .checked_add(r.length)
            .ok_or_else(|| FetchError::OutOfRange("a range past 2^64".into()))?;
        total = total.saturating_add(r.length);
        out.push(r.offset..end);
    }
    if total > MAX_QUESTION_BYTES {
        return Err(FetchError::OutOfRange(format!(
            "a read of {total} bytes at once (at most {MAX_QUESTION_BYTES})"
        )));
    }
    Ok(out)
}

impl From<FetchError> for WorkerError {
    fn from(e: FetchError) -> Self {
        worker_error(&e)
    }
}

/// A fetch error as the worker reports it (and the front maps it to a gRPC code).
fn worker_error(e: &FetchError) -> WorkerError {
    let kind = match e {
        FetchError::NotFound(_) => ErrorKind::NotFound,
        FetchError::Denied(_) => ErrorKind::RemoteDenied,
        FetchError::Changed(_) => ErrorKind::RemoteChanged,
        FetchError::OutOfRange(_) => ErrorKind::Unreadable,
        FetchError::DeadlineExceeded => ErrorKind::RemoteDeadline,
        FetchError::Failed { .. } => ErrorKind::RemoteUnavailable,
    };
    WorkerError { kind: kind as i32, message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_paths_carry_an_optional_generation() {
        let (g, url) = parse_worker_path("/vsitessera/3/https://h.example/a.tif").unwrap();
        assert_eq!((g, url.to_string().as_str()), (Some(3), "https://h.example/a.tif"));
        let (g, url) = parse_worker_path("/vsitessera/s3://bucket-a/k.tif").unwrap();
        assert_eq!((g, url.to_string().as_str()), (None, "s3://bucket-a/k.tif"));
        assert!(parse_worker_path("/data/a.tif").is_err());
        assert!(parse_worker_path("/vsitessera/3/not a url").is_err());
    }

    #[test]
    fn questions_are_bounded() {
        let r = |offset, length| ByteRange { offset, length };
        assert_eq!(checked_ranges(&[r(0, 10), r(5, 1)]).unwrap(), vec![0..10, 5..6]);
        assert!(matches!(checked_ranges(&[r(u64::MAX, 2)]), Err(FetchError::OutOfRange(_))));
        assert!(matches!(checked_ranges(&[r(0, MAX_QUESTION_BYTES + 1)]), Err(FetchError::OutOfRange(_))));
    }
}
