//! One cache of remote bytes for the whole server, shared by every worker.
//!
//! Theory of operation. An object (a remote asset) is cut into aligned chunks of
//! [`CHUNK`] bytes; a chunk is the unit cached, evicted and fetched. A read of some
//! ranges needs some chunks: those cached are used at once, those another read is
//! fetching already are waited for (so N workers opening the same cold asset cause one
//! fetch), and the rest are fetched, consecutive chunks in one request. The cache is
//! bounded in bytes (moka, weighted by chunk length, TinyLFU admission).
//!
//! Each object has a state: its size, its validator (ETag / Last-Modified) and a
//! generation. Every answer from the origin carries the validator, and one that differs
//! from the known one means the object changed: its generation goes up, chunks of the
//! old generation are never served again (their keys carry the generation), and a read
//! made against the old generation fails with [`FetchError::Changed`], so a worker
//! never mixes the bytes of two versions in one dataset. Within `metadata_ttl` of the
//! last check, cached chunks are served without asking the origin; after it, the next
//! read checks the object again (its first chunk, fetched anew) before it uses them.
//!
//! Read-ahead. A chunk that must be fetched brings the rest of its read-ahead window
//! (an aligned span of `--remote-read-ahead` bytes, 256 KiB by default) along in the same
//! request, unless cached or in flight already; the first fetch of an object, its
//! header, is a whole window too. Over a slow link a request costs a
//! round trip whatever its length, and a COG stores neighbouring blocks next to each
//! other: the next tile of a map being panned finds its blocks cached. The runs of one
//! read are fetched concurrently, so a read waits one round trip however many it needs.
//!
//! In-flight fetches are [`Shared`] futures polled by whoever waits for them; the
//! table of them holds only weak handles, so a fetch nobody waits for any more (its
//! callers cancelled or past their deadline) is dropped, and its requests with it.

use std::{
    collections::{BTreeMap, HashMap},
    ops::Range,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::{
    FutureExt,
    future::{BoxFuture, Shared, WeakShared},
};
use tokio::time::Instant;

use super::{FetchError, Origin, Validator};
use crate::mosaic::RemoteUrl;

/// The unit of caching and fetching, in bytes.
pub const CHUNK: u64 = crate::ipc::REMOTE_CHUNK;

/// The first bytes of an object fetched when it is first seen: the header and tile
/// index of a typical COG, in one request.
pub const HEADER_BYTES: u64 = 64 * 1024;

/// Longest run of chunks fetched in one request.
const MAX_RUN_CHUNKS: u64 = 512;

/// Objects whose state is kept (size, validator, generation).
const MAX_OBJECTS: u64 = 100_000;

/// Bytes of bookkeeping counted per cached chunk besides its data.
const CHUNK_OVERHEAD: u32 = 96;

/// What is known of an object.
#[derive(Debug, Clone)]
pub struct ObjectState {
    /// Its size in bytes.
    pub size: u64,
    /// Its validator, as the origin last gave it.
    pub validator: Validator,
    /// Goes up each time the object is seen to change; never 0.
    pub generation: u64,
    /// When the validator was last compared with the origin's; `None`: it must be,
    /// before the object's chunks are used again.
    checked: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ChunkKey {
    url: Arc<str>,
    generation: u64,
    index: u64,
}

/// A fetch of consecutive chunks: the chunks, in order, and the requests it took
/// (retries and hedges included).
struct Run {
    chunks: Vec<Bytes>,
    requests: u32,
}

type RunResult = Result<Arc<Run>, FetchError>;
type RunFuture = Shared<BoxFuture<'static, RunResult>>;

/// Fetches in flight by chunk: the fetch's id, a weak handle on it, and the chunk's
/// place in its answer.
type Inflight = HashMap<ChunkKey, (u64, WeakShared<BoxFuture<'static, RunResult>>, usize)>;

/// What one read cost, for the asset read's span.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadCost {
    /// Chunks found in the cache.
    pub hits: u64,
    /// Chunks not in it (fetched by this read, or waited for).
    pub misses: u64,
    /// Requests this read made to the origin.
    pub requests: u64,
    /// Bytes those requests received.
    pub bytes: u64,
    /// Time spent waiting for the origin.
    pub wait: Duration,
}

impl ReadCost {
    /// Adds `other` to this cost.
    pub fn add(&mut self, other: Self) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.wait += other.wait;
    }
}

/// The cache's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Chunks served from the cache.
    pub hits: AtomicU64,
    /// Chunks that were not in it.
    pub misses: AtomicU64,
    /// Chunks evicted to make room (not replaced or expired).
    pub evictions: AtomicU64,
    /// Chunks a read waited for because another read was fetching them.
    pub coalesced: AtomicU64,
    /// Objects seen to change (a new generation).
    pub changes: AtomicU64,
}

/// The shared cache of remote bytes.
pub struct RangeCache {
    origin: Arc<Origin>,
    chunks: moka::sync::Cache<ChunkKey, Bytes>,
    objects: moka::sync::Cache<Arc<str>, Arc<ObjectState>>,
    inflight: Arc<Mutex<Inflight>>,
    /// One TTL check at a time per object: a read that waited for another's finds the
    /// object checked and asks nothing.
    checks: moka::sync::Cache<Arc<str>, Arc<tokio::sync::Mutex<()>>>,
    next_run: AtomicU64,
    metadata_ttl: Duration,
    /// Read-ahead window, in chunks (1: none).
    window: u64,
    counters: Arc<CacheCounters>,
}

impl std::fmt::Debug for RangeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeCache").field("bytes", &self.chunks.weighted_size()).finish_non_exhaustive()
    }
}

impl RangeCache {
    /// A cache of at most `capacity` bytes in front of `origin`, trusting an object's
    /// validator for `metadata_ttl` after each check.
    #[must_use]
    pub fn new(origin: Arc<Origin>, capacity: u64, metadata_ttl: Duration) -> Self {
        let counters = Arc::new(CacheCounters::default());
        let evictions = Arc::clone(&counters);
        let chunks = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .weigher(|_key: &ChunkKey, value: &Bytes| {
                u32::try_from(value.len()).unwrap_or(u32::MAX).saturating_add(CHUNK_OVERHEAD)
            })
            .eviction_listener(move |_key, _value, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    evictions.evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        Self {
            origin,
            chunks,
            objects: moka::sync::Cache::new(MAX_OBJECTS),
            inflight: Arc::new(Mutex::new(HashMap::new())),
            checks: moka::sync::Cache::new(MAX_OBJECTS),
            next_run: AtomicU64::new(1),
            metadata_ttl,
            window: 1,
            counters,
        }
    }

    /// The same cache with a read-ahead window of `bytes` (rounded up to whole chunks;
    /// 0, as without this call: only the chunks a read needs are fetched).
    #[must_use]
    pub fn with_read_ahead(mut self, bytes: u64) -> Self {
        self.window = bytes.div_ceil(CHUNK).max(1);
        self
    }

    /// The counters.
    #[must_use]
    pub fn counters(&self) -> &Arc<CacheCounters> {
        &self.counters
    }

    /// Bytes held (chunk data and bookkeeping).
    #[must_use]
    pub fn weighted_size(&self) -> u64 {
        self.chunks.run_pending_tasks();
        self.chunks.weighted_size()
    }

    /// The origin behind the cache.
    #[must_use]
    pub fn origin(&self) -> &Arc<Origin> {
        &self.origin
    }

    /// The state of `url`: known and checked within the TTL, or after fetching (first
    /// sight) or re-checking (TTL passed) its first bytes.
    pub async fn object(
        &self,
        url: &RemoteUrl,
        deadline: Instant,
        cost: &mut ReadCost,
    ) -> Result<Arc<ObjectState>, FetchError> {
        let key: Arc<str> = url.to_string().into();
        let fresh = |state: &ObjectState| state.checked.is_some_and(|c| c.elapsed() < self.metadata_ttl);
        if let Some(state) = self.objects.get(&key) {
            if fresh(&state) {
                return Ok(state);
            }
            // Checked again (by one read at a time): the first chunk fetched anew, its
            // validator compared.
            let check = self.checks.get_with(Arc::clone(&key), || Arc::new(tokio::sync::Mutex::new(())));
            let started = std::time::Instant::now();
            let _checking = tokio::time::timeout_at(deadline, check.lock())
                .await
                .map_err(|_| FetchError::DeadlineExceeded)?;
            cost.wait += started.elapsed();
            let state = self.objects.get(&key).unwrap_or(state);
            if fresh(&state) {
                self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
                return Ok(state);
            }
            self.revalidate(url, &key, &state, deadline, cost).await?;
            return self
                .objects
                .get(&key)
                .ok_or_else(|| FetchError::Changed("the object was forgotten".into()));
        }
        // The header with the rest of its read-ahead window: a COG keeps its smallest
        // overviews, often its first blocks, right after it.
        let header = 0..HEADER_BYTES.div_ceil(CHUNK).max(self.window);
        self.chunks_of(url, &key, None, header, deadline, cost).await?;
        self.objects.get(&key).ok_or_else(|| FetchError::Changed("the object was forgotten".into()))
    }

    /// The generation the cache knows `url` at, if it knows it; no request.
    #[must_use]
    pub fn generation(&self, url: &RemoteUrl) -> Option<u64> {
        self.objects.get(url.to_string().as_str()).map(|state| state.generation)
    }

    /// Whether every byte of `ranges` of `url` (at `generation`) is cached; no request.
    #[must_use]
    pub fn holds(&self, url: &RemoteUrl, generation: u64, ranges: &[Range<u64>]) -> bool {
        let key: Arc<str> = url.to_string().into();
        let Some(state) = self.objects.get(&key) else { return false };
        if state.generation != generation || state.checked.is_none_or(|c| c.elapsed() >= self.metadata_ttl) {
            return false;
        }
        ranges.iter().all(|r| {
            chunk_span(r, state.size)
                .all(|index| self.chunks.contains_key(&ChunkKey { url: Arc::clone(&key), generation, index }))
        })
    }

    /// Bytes `ranges` of `url`, read against `generation` (0: whichever is current),
    /// each cut at the end of the object; with the object's state.
    pub async fn read(
        &self,
        url: &RemoteUrl,
        generation: u64,
        ranges: &[Range<u64>],
        deadline: Instant,
        cost: &mut ReadCost,
    ) -> Result<(Arc<ObjectState>, Vec<Bytes>), FetchError> {
        let state = self.object(url, deadline, cost).await?;
        if generation != 0 && generation != state.generation {
            return Err(changed(url));
        }
        let key: Arc<str> = url.to_string().into();
        let mut wanted: Vec<u64> = ranges.iter().flat_map(|r| chunk_span(r, state.size)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let chunks = self.chunks_at(url, &key, &state, &wanted, deadline, cost).await?;
        let out = ranges
            .iter()
            .map(|r| {
                let end = r.end.min(state.size);
                let start = r.start.min(end);
                let mut buf = Vec::with_capacity((end - start) as usize);
                for index in chunk_span(&(start..end), state.size) {
                    let chunk = &chunks[&index];
                    let base = index * CHUNK;
                    let from = start.max(base) - base;
                    let to = (end.min(base + chunk.len() as u64) - base).max(from);
                    buf.extend_from_slice(&chunk[from as usize..to as usize]);
                }
                Bytes::from(buf)
            })
            .collect::<Vec<_>>();
        if out
            .iter()
            .zip(ranges)
            .any(|(b, r)| b.len() as u64 != r.end.min(state.size).saturating_sub(r.start))
        {
            // Chunks shorter than the object's size says: the object changed under us.
            return Err(changed(url));
        }
        Ok((state, out))
    }

    /// Chunks `wanted` (sorted) of `url` at the state's generation.
    async fn chunks_at(
        &self,
        url: &RemoteUrl,
        key: &Arc<str>,
        state: &ObjectState,
        wanted: &[u64],
        deadline: Instant,
        cost: &mut ReadCost,
    ) -> Result<BTreeMap<u64, Bytes>, FetchError> {
        let mut found = BTreeMap::new();
        let mut missing = Vec::new();
        for &index in wanted {
            let k = ChunkKey { url: Arc::clone(key), generation: state.generation, index };
            match self.chunks.get(&k) {
                Some(bytes) => {
                    cost.hits += 1;
                    found.insert(index, bytes);
                }
                None => missing.push(index),
            }
        }
        self.counters.hits.fetch_add((wanted.len() - missing.len()) as u64, Ordering::Relaxed);
        if missing.is_empty() {
            return Ok(found);
        }
        let missing = self.with_windows(key, state, missing);
        // Every run at once: one round trip for the read, not one per run.
        let fetches = runs(&missing).map(|run| {
            let mut run_cost = ReadCost::default();
            async move {
                let got = self.chunks_of(url, key, Some(state), run.clone(), deadline, &mut run_cost).await;
                got.map(|got| (run, got, run_cost))
            }
        });
        let started = std::time::Instant::now();
        let landed = futures::future::try_join_all(fetches).await?;
        // The runs waited side by side: the read waited as long as the longest.
        cost.wait += started.elapsed();
        for (run, got, run_cost) in landed {
            cost.add(ReadCost { wait: Duration::ZERO, ..run_cost });
            found.extend(run.zip(got));
        }
        Ok(found)
    }

    /// `missing` (sorted chunk indexes) with the other chunks of their read-ahead
    /// windows that are neither cached nor in flight, sorted.
    fn with_windows(&self, key: &Arc<str>, state: &ObjectState, missing: Vec<u64>) -> Vec<u64> {
        if self.window <= 1 {
            return missing;
        }
        let last = state.size.div_ceil(CHUNK);
        let mut windows: Vec<u64> = missing.iter().map(|i| i / self.window).collect();
        windows.dedup();
        let inflight = self.inflight.lock().expect("in-flight table");
        let mut out = missing;
        for w in windows {
            for index in w * self.window..((w + 1) * self.window).min(last) {
                let k = ChunkKey { url: Arc::clone(key), generation: state.generation, index };
                if !inflight.contains_key(&k) && !self.chunks.contains_key(&k) {
                    out.push(index);
                }
            }
        }
        drop(inflight);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Chunks `run` of `url` (at the generation of `state`, or the first one seen when
    /// `None`), joining fetches in flight for some of them and fetching the rest.
    async fn chunks_of(
        &self,
        url: &RemoteUrl,
        key: &Arc<str>,
        state: Option<&ObjectState>,
        run: Range<u64>,
        deadline: Instant,
        cost: &mut ReadCost,
    ) -> Result<Vec<Bytes>, FetchError> {
        let mut waits: Vec<(RunFuture, usize)> = Vec::new();
        let mut to_fetch = Vec::new();
        {
            // Looked up and registered under one lock: two reads of the same chunks
            // never both start a fetch.
            let mut inflight = self.inflight.lock().expect("in-flight table");
            // An object first seen by another read may have become known since the
            // caller looked: its chunks are then cached under its generation (a fetch
            // settles the object before it leaves the in-flight table).
            let known = self.objects.get(key);
            let state = state.or(known.as_deref());
            let generation = state.map_or(0, |s| s.generation);
            for index in run.clone() {
                let k = ChunkKey { url: Arc::clone(key), generation, index };
                match inflight.get(&k).and_then(|(_, weak, at)| weak.upgrade().map(|f| (f, *at))) {
                    Some(wait) => {
                        self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
                        self.counters.misses.fetch_add(1, Ordering::Relaxed);
                        cost.misses += 1;
                        waits.push(wait);
                    }
                    None => {
                        if let Some(bytes) = self.chunks.get(&k) {
                            self.counters.hits.fetch_add(1, Ordering::Relaxed);
                            cost.hits += 1;
                            let ready: RunFuture = futures::future::ready(Ok(Arc::new(Run {
                                chunks: vec![bytes],
                                requests: 0,
                            })))
                            .boxed()
                            .shared();
                            waits.push((ready, 0));
                        } else {
                            waits.push((futures::future::pending().boxed().shared(), usize::MAX));
                            self.counters.misses.fetch_add(1, Ordering::Relaxed);
                            cost.misses += 1;
                            to_fetch.push(index);
                        }
                    }
                }
            }
            // Fetch the missing chunks, consecutive ones in one request each (entries of
            // fetches nobody waits for any more, all their callers gone, go first).
            inflight.retain(|_, (_, weak, _)| weak.upgrade().is_some());
            for missing in runs(&to_fetch) {
                let future = self.start_run(&mut inflight, url, key, state, missing.clone(), deadline);
                for (at, index) in missing.enumerate() {
                    let slot = (index - run.start) as usize;
                    waits[slot] = (future.clone(), at);
                }
            }
        }
        let started = std::time::Instant::now();
        let results = tokio::time::timeout_at(
            deadline,
            futures::future::join_all(waits.iter().map(|(f, _)| f.clone())),
        )
        .await
        .map_err(|_| FetchError::DeadlineExceeded)?;
        cost.wait += started.elapsed();
        let mut out = Vec::with_capacity(waits.len());
        for (index, (result, (_, at))) in run.zip(results.into_iter().zip(&waits)) {
            let fetched = result?;
            let chunk = fetched.chunks.get(*at).cloned().unwrap_or_default();
            if to_fetch.contains(&index) {
                cost.bytes += chunk.len() as u64;
                // A run this read started is counted once, at its first chunk.
                if *at == 0 {
                    cost.requests += u64::from(fetched.requests);
                }
            }
            out.push(chunk);
        }
        Ok(out)
    }

    /// Starts fetching chunks `run` of `url` and registers the fetch in `inflight`.
    fn start_run(
        &self,
        inflight: &mut Inflight,
        url: &RemoteUrl,
        key: &Arc<str>,
        state: Option<&ObjectState>,
        run: Range<u64>,
        deadline: Instant,
    ) -> RunFuture {
        let id = self.next_run.fetch_add(1, Ordering::Relaxed);
        let generation = state.map_or(0, |s| s.generation);
        let known = state.cloned();
        let (origin, url_owned, key_owned) = (Arc::clone(&self.origin), url.clone(), Arc::clone(key));
        let (chunks, objects, counters) =
            (self.chunks.clone(), self.objects.clone(), Arc::clone(&self.counters));
        let range =
            run.start * CHUNK..known.as_ref().map_or(run.end * CHUNK, |s| (run.end * CHUNK).min(s.size));
        let inflight_keys: Vec<ChunkKey> =
            run.clone().map(|index| ChunkKey { url: Arc::clone(key), generation, index }).collect();
        let keys = inflight_keys.clone();
        let table = Arc::clone(&self.inflight);
        let future = async move {
            let outcome = async {
                let fetched = origin
                    .get_range(&url_owned, range.clone(), known.as_ref().map(|s| &s.validator), deadline)
                    .await;
                if let (Err(FetchError::Changed(_)), Some(known)) = (&fetched, &known) {
                    // The origin refused the validator: whatever it is now, it is not
                    // what the cache holds. A new generation, checked before use.
                    counters.changes.fetch_add(1, Ordering::Relaxed);
                    let refused =
                        ObjectState { generation: known.generation + 1, checked: None, ..known.clone() };
                    objects.insert(Arc::clone(&key_owned), Arc::new(refused));
                }
                let fetched = fetched?;
                let state =
                    settle(&objects, &counters, &key_owned, known.as_ref(), &fetched.validator, fetched.size);
                if known.as_ref().is_some_and(|k| k.generation != state.generation) {
                    return Err(changed(&url_owned));
                }
                let mut out = Vec::new();
                let mut offset = 0usize;
                for index in run {
                    let len = (CHUNK.min(state.size.saturating_sub(index * CHUNK))) as usize;
                    let end = (offset + len).min(fetched.bytes.len());
                    let chunk = Bytes::copy_from_slice(&fetched.bytes[offset..end]);
                    offset = end;
                    let k = ChunkKey { url: Arc::clone(&key_owned), generation: state.generation, index };
                    chunks.insert(k, chunk.clone());
                    out.push(chunk);
                }
                Ok(Arc::new(Run { chunks: out, requests: fetched.requests }))
            }
            .await;
            // Done: later reads find the chunks in the cache (or fetch again after an error).
            if let Ok(mut t) = table.lock() {
                for k in &keys {
                    if t.get(k).is_some_and(|(run, _, _)| *run == id) {
                        t.remove(k);
                    }
                }
            }
            outcome
        }
        .boxed()
        .shared();
        if let Some(weak) = future.downgrade() {
            for (at, k) in inflight_keys.into_iter().enumerate() {
                inflight.insert(k, (id, weak.clone(), at));
            }
        }
        future
    }

    /// The TTL check of `url`: its first chunk fetched anew and the validator compared
    /// with `state`'s (a difference starts a new generation); the chunk is kept.
    async fn revalidate(
        &self,
        url: &RemoteUrl,
        key: &Arc<str>,
        state: &ObjectState,
        deadline: Instant,
        cost: &mut ReadCost,
    ) -> Result<(), FetchError> {
        let started = std::time::Instant::now();
        let fetched = self.origin.get_range(url, 0..CHUNK.min(state.size), None, deadline).await;
        cost.wait += started.elapsed();
        let fetched = fetched?;
        cost.requests += u64::from(fetched.requests);
        cost.bytes += fetched.bytes.len() as u64;
        let new = settle(&self.objects, &self.counters, key, Some(state), &fetched.validator, fetched.size);
        let first = Bytes::copy_from_slice(&fetched.bytes[..fetched.bytes.len().min(CHUNK as usize)]);
        self.chunks.insert(ChunkKey { url: Arc::clone(key), generation: new.generation, index: 0 }, first);
        Ok(())
    }
}

/// The object's state after an answer with `validator` and `size`: unchanged (checked
/// now), or a new generation when it differs from `known`.
fn settle(
    objects: &moka::sync::Cache<Arc<str>, Arc<ObjectState>>,
    counters: &CacheCounters,
    key: &Arc<str>,
    known: Option<&ObjectState>,
    validator: &Validator,
    size: u64,
) -> Arc<ObjectState> {
    let current = objects.get(key);
    let base = current.as_deref().or(known);
    let state = match base {
        Some(s) if s.validator == *validator && s.size == size => {
            ObjectState { checked: Some(Instant::now()), ..s.clone() }
        }
        Some(s) => {
            counters.changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(url = %key, generation = s.generation + 1, "remote object changed; reading it afresh");
            ObjectState {
                size,
                validator: validator.clone(),
                generation: s.generation + 1,
                checked: Some(Instant::now()),
            }
        }
        None => {
            ObjectState { size, validator: validator.clone(), generation: 1, checked: Some(Instant::now()) }
        }
    };
    let state = Arc::new(state);
    objects.insert(Arc::clone(key), Arc::clone(&state));
    state
}

fn changed(url: &RemoteUrl) -> FetchError {
    FetchError::Changed(format!("{url} changed while it was being read"))
}

/// The chunks under `range` of an object of `size` bytes.
fn chunk_span(range: &Range<u64>, size: u64) -> Range<u64> {
    let end = range.end.min(size);
    if range.start >= end {
        return 0..0;
    }
    range.start / CHUNK..end.div_ceil(CHUNK)
}

/// Sorted chunk indexes grouped in runs of consecutive ones (at most
/// [`MAX_RUN_CHUNKS`] long).
fn runs(indexes: &[u64]) -> impl Iterator<Item = Range<u64>> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = *indexes.get(i)?;
        let mut end = start + 1;
        i += 1;
        while indexes.get(i) == Some(&end) && end - start < MAX_RUN_CHUNKS {
            end += 1;
            i += 1;
        }
        Some(start..end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_chunks_make_one_run() {
        assert_eq!(runs(&[1, 2, 3, 7, 9, 10]).collect::<Vec<_>>(), vec![1..4, 7..8, 9..11]);
        assert_eq!(runs(&[]).count(), 0);
        let long: Vec<u64> = (0..MAX_RUN_CHUNKS + 3).collect();
        assert_eq!(
            runs(&long).collect::<Vec<_>>(),
            vec![0..MAX_RUN_CHUNKS, MAX_RUN_CHUNKS..MAX_RUN_CHUNKS + 3]
        );
    }

    #[test]
    fn ranges_map_to_the_chunks_under_them() {
        assert_eq!(chunk_span(&(0..1), 100_000), 0..1);
        assert_eq!(chunk_span(&(CHUNK - 1..CHUNK + 1), 100_000), 0..2);
        assert_eq!(chunk_span(&(CHUNK..2 * CHUNK), 100_000), 1..2);
        // Cut at the end of the object; nothing past it.
        assert_eq!(chunk_span(&(0..10 * CHUNK), CHUNK + 5), 0..2);
        assert_eq!(chunk_span(&(CHUNK + 5..CHUNK + 9), CHUNK + 5), 0..0);
    }
}
