//! Worker jobs as the engine runs them: one span per asset job (the pool fills in the
//! worker, the wait and the IPC time; the worker's own span becomes its child), asset
//! descriptions through the info cache, remote assets' headers and blocks fetched by the
//! front before a job needs them (and deferred jobs rerun once they are), and a worker's
//! or the pool's error turned into what the caller should see.

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use tokio::time::Instant;
use tracing::{Instrument, Span, field::Empty};

use super::request::TileRequest;
use crate::{
    echo::quote,
    error::ServiceError,
    fetch::{AssetReader, ReaderStats},
    mosaic::{Asset, AssetInfo, InfoCache, is_remote_path},
    pb::worker::{
        Deferred, ErrorKind, InfoRequest, ReadRequest, ReadResult, TileJob, TileResult, WorkerError,
        WorkerResponse, worker_request::Job, worker_response,
    },
    pool::{PoolError, WorkerPool},
    telemetry::metrics::Metrics,
};

/// Renders tiles through the worker pool.
#[derive(Debug)]
pub struct TileRenderer {
    pool: Arc<WorkerPool>,
    /// The reader of remote assets (none when the server reads none).
    reader: Option<Arc<AssetReader>>,
    infos: InfoCache,
    metrics: Arc<Metrics>,
    /// A turn per asset being described: callers asking about an asset already being
    /// described wait for that description instead of asking a worker again (16 tiles
    /// arriving together on a fresh server had made 96 info jobs for six assets).
    describing: Describing,
    /// Tiles being rendered now (for [`WorkerPool::whole_tiles_now`]).
    pub(super) rendering: std::sync::atomic::AtomicUsize,
}

/// Turns to describe assets, by path.
type Describing = std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>;

/// A caller's hold on an asset's turn to be described; the last holder removes it from
/// the map (holders take it under the map's lock, so none is left out), also when its
/// caller goes away.
struct DescribeTurn<'a>(Arc<tokio::sync::Mutex<()>>, &'a Describing, &'a std::path::Path);

impl<'a> DescribeTurn<'a> {
    fn take(describing: &'a Describing, path: &'a std::path::Path) -> Self {
        let mut map = describing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Self(Arc::clone(map.entry(path.to_path_buf()).or_default()), describing, path)
    }
}

impl Drop for DescribeTurn<'_> {
    fn drop(&mut self) {
        let mut map = self.1.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if Arc::strong_count(&self.0) == 2 && map.get(self.2).is_some_and(|t| Arc::ptr_eq(t, &self.0)) {
            map.remove(self.2);
        }
    }
}

/// The read of `asset` for the tile `req` (`tile`: see [`TileRenderer::read`]).
pub(super) fn read_request(
    asset: &Asset,
    req: &TileRequest,
    read_bands: &[u32],
    tile: Option<(u64, u32)>,
) -> ReadRequest {
    let bounds = req.read_bounds();
    ReadRequest {
        path: asset.path.to_string_lossy().into_owned(),
        target_crs: req.tile.tms.crs().to_owned(),
        min_x: bounds.min_x,
        min_y: bounds.min_y,
        max_x: bounds.max_x,
        max_y: bounds.max_y,
        width: req.out_size(),
        height: req.out_size(),
        resampling: req.resampling as i32,
        bands: read_bands.to_vec(),
        nodata: req.nodata,
        padding: req.padding,
        reproject: req.reproject as i32,
        plan_remote: false,
        tile: tile.map_or(0, |(tile, _)| tile),
        tile_rank: tile.map_or(0, |(_, rank)| rank),
    }
}

/// Marks `span` failed with `e` (its status ERROR, the message as its description).
pub fn record_error(span: &Span, e: &ServiceError) {
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", e.to_string().as_str());
}

/// Records a job's outcome on its span: "ok", or "failed" with the error.
fn record_outcome<T>(span: &Span, result: &Result<T, ServiceError>) {
    match result {
        Ok(_) => span.record("outcome", "ok"),
        Err(e) => {
            record_error(span, e);
            span.record("outcome", "failed")
        }
    };
}

/// The pool's error about a job for `asset`, as the caller should see it.
fn pool_error(asset: &str, e: PoolError) -> ServiceError {
    let quoted = quote(asset);
    match e {
        PoolError::DeadlineExceeded => ServiceError::DeadlineExceeded(format!(
            "reading asset {quoted} did not finish before the deadline"
        )),
        PoolError::Unavailable(why) => ServiceError::Unavailable(why),
        PoolError::Overloaded(wait) => ServiceError::ResourceExhausted {
            message: format!(
                "server overloaded: no worker became free within {} ms to read asset {quoted} (--max-worker-wait); retry later",
                wait.as_millis()
            ),
            retry_after: wait.max(Duration::from_millis(100)),
        },
        e @ (PoolError::Crashed(_) | PoolError::Quarantined(_)) => {
            ServiceError::AssetUnreadable { asset: asset.to_owned(), reason: e.to_string() }
        }
        PoolError::Fault(f) => ServiceError::Internal(format!("worker fault while reading {quoted}: {f}")),
    }
}

/// The span of one job about `asset` on the front side; the pool fills in the worker,
/// the wait and the IPC time, the worker's own span becomes its child.
pub(super) fn asset_span(kind: &'static str, asset: &Asset) -> Span {
    tracing::info_span!(
        "asset_job",
        otel.name = kind,
        // A string field: text logs show it quoted and escaped.
        asset.uri = asset.name.as_str(),
        worker.pid = Empty,
        pool.wait_ms = Empty,
        ipc_ms = Empty,
        retries = Empty,
        dataset_cache.hit = Empty,
        remote.requests = Empty,
        remote.bytes = Empty,
        remote.cache_hits = Empty,
        remote.cache_misses = Empty,
        remote.wait_ms = Empty,
        outcome = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    )
}

pub(super) fn duration(d: Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}

/// What reading a remote asset cost, on its span (running totals).
fn record_remote_cost(span: &Span, cost: ReaderStats) {
    if cost != ReaderStats::default() {
        record_remote_fields(span, cost);
    }
}

/// `cost` on `span`, zeros too: a remote read that cost the front nothing (its worker
/// kept the bytes) shows so.
fn record_remote_fields(span: &Span, cost: ReaderStats) {
    span.record("remote.requests", cost.requests as i64);
    span.record("remote.bytes", cost.bytes as i64);
    span.record("remote.cache_hits", cost.hits as i64);
    span.record("remote.cache_misses", cost.misses as i64);
    span.record("remote.wait_ms", cost.wait.as_secs_f64() * 1e3);
}

/// A worker's error about `asset`, as the caller should see it.
fn worker_error(asset: &Asset, mut e: WorkerError) -> ServiceError {
    // GDAL names the file by its full path; the caller knows it by the asset name, and
    // the server's directory layout is none of its business.
    e.message = e.message.replace(&*asset.path.to_string_lossy(), &asset.name);
    let name = quote(&asset.name);
    match ErrorKind::try_from(e.kind) {
        Ok(ErrorKind::NotFound) => {
            ServiceError::NotFound(format!("asset {name} does not exist: {}", e.message))
        }
        Ok(ErrorKind::Invalid) => ServiceError::invalid("bands", format!("asset {name}: {}", e.message)),
        Ok(ErrorKind::TooLarge) => {
            ServiceError::invalid("assets", format!("asset {name} is too large: {}", e.message))
        }
        Ok(ErrorKind::Outside) => ServiceError::OutOfRange(format!("asset {name}: {}", e.message)),
        // The file changed between the resolver's check and the worker's open: answered
        // as the resolver answers the same file.
        Ok(ErrorKind::Denied) => ServiceError::PermissionDenied(format!(
            "asset {name} is not allowed: it leads outside the data directory (or the --allow-local directory it is in)"
        )),
        Ok(ErrorKind::NotRegular) => ServiceError::NotFound(format!("asset {name} is not a regular file")),
        Ok(ErrorKind::Unreadable | ErrorKind::ReadFailed | ErrorKind::RemoteDenied) => {
            ServiceError::AssetUnreadable { asset: asset.name.clone(), reason: e.message }
        }
        // The origin, not the asset: the caller may try again.
        Ok(ErrorKind::RemoteUnavailable | ErrorKind::RemoteChanged) => {
            ServiceError::Unavailable(format!("asset {name}: {}", e.message))
        }
        Ok(ErrorKind::RemoteDeadline) => {
            ServiceError::DeadlineExceeded(format!("asset {name}: {}", e.message))
        }
        _ => ServiceError::Internal(format!("worker error on {name}: {}", e.message)),
    }
}

/// Runs `work` on tokio's blocking pool. The pixel work of a request (expressions,
/// compositing, statistics of a stack, rescale, colormaps, encoding) grows with the
/// request and would otherwise stall a runtime thread, and with it health checks and
/// every other call on that thread. (`block_in_place` was measured instead, to save the
/// hand-off: slower, 313 against 323 tiles/s on the six-asset mosaic tiles of `make
/// bench`, and 6.3 against 6.0 ms a tile one at a time.)
pub(super) async fn off_runtime<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ServiceError::Internal(format!("{what} task failed: {e}")))
}

/// Rounds a point, statistics or preview job of a remote asset may defer (each a fetch
/// of what it missed) before it runs reading through the front as it goes.
const MAX_DEFERRALS: u32 = 3;

/// Sets `defer_remote` on a point, statistics or preview job.
fn set_defer_remote(job: &mut Job, on: bool) {
    match job {
        Job::Point(r) => r.defer_remote = on,
        Job::Statistics(r) => r.defer_remote = on,
        Job::Preview(r) => r.defer_remote = on,
        _ => {}
    }
}

impl TileRenderer {
    /// A renderer using `pool`, reading remote assets through `reader`.
    pub fn new(
        pool: Arc<WorkerPool>,
        reader: Option<Arc<AssetReader>>,
        metrics: Arc<Metrics>,
        remote_metadata_ttl: Duration,
    ) -> Self {
        Self {
            pool,
            reader,
            infos: InfoCache::new(remote_metadata_ttl),
            metrics,
            describing: Describing::default(),
            rendering: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// For a remote asset: its header fetched (or found) before a worker is taken, so
    /// that no worker waits for it, and the assets of a tile are fetched all at once.
    async fn remote_header(&self, asset: &Asset, deadline: Instant) -> Result<ReaderStats, ServiceError> {
        let Some(reader) = &self.reader else { return Ok(ReaderStats::default()) };
        reader.ensure_header(&asset.path, deadline).await.map_err(|e| worker_error(asset, e.into()))
    }

    /// Metadata of `asset`, from the cache or a worker.
    pub async fn info(&self, asset: &Asset, deadline: Instant) -> Result<Arc<AssetInfo>, ServiceError> {
        if let Some(info) = self.infos.get(&asset.path) {
            return Ok(info);
        }
        let turn = DescribeTurn::take(&self.describing, &asset.path);
        self.info_in_turn(asset, deadline, &turn.0).await
    }

    /// [`Self::info`] once this caller has the asset's turn: from the cache if the caller
    /// before described it, else from a worker.
    async fn info_in_turn(
        &self,
        asset: &Asset,
        deadline: Instant,
        turn: &tokio::sync::Mutex<()>,
    ) -> Result<Arc<AssetInfo>, ServiceError> {
        let Ok(_turn) = tokio::time::timeout_at(deadline, turn.lock()).await else {
            return Err(ServiceError::DeadlineExceeded(format!(
                "describing asset {} did not finish before the deadline",
                quote(&asset.name)
            )));
        };
        if let Some(info) = self.infos.get(&asset.path) {
            return Ok(info);
        }
        let span = asset_span("asset info", asset);
        let result = self.info_job(asset, deadline).instrument(span.clone()).await;
        record_outcome(&span, &result);
        result
    }

    async fn info_job(&self, asset: &Asset, deadline: Instant) -> Result<Arc<AssetInfo>, ServiceError> {
        let mut cost = self.remote_header(asset, deadline).await?;
        let path = asset.path.to_string_lossy().into_owned();
        let job = Job::Info(InfoRequest { path: path.clone() });
        let response = self.run_counted(job, asset, &path, deadline, &mut cost, &Span::current()).await?;
        match response.result {
            Some(worker_response::Result::Info(info)) => {
                let info = AssetInfo::from_worker(info).ok_or_else(|| {
                    ServiceError::Internal(format!("incomplete description of {}", quote(&asset.name)))
                })?;
                let info = Arc::new(info);
                self.infos.insert(&asset.path, Arc::clone(&info));
                Ok(info)
            }
            Some(worker_response::Result::Error(e)) => Err(worker_error(asset, e)),
            _ => Err(ServiceError::Internal("worker answered an info job with something else".into())),
        }
    }

    /// Runs one job about `asset` (a point, statistics or preview job) in an
    /// `asset_job` span named `kind`; the worker's answer, or its error mapped as a
    /// read's. The pool has checked that the answer is of the job's kind.
    ///
    /// For a remote asset no worker waits on the network: the job runs with
    /// `defer_remote`, and when it missed bytes the front does not hold it answers
    /// Deferred; the front fetches them (the worker is free meanwhile) and runs it again.
    /// After `MAX_DEFERRALS` rounds it runs as before, reading what it still lacks
    /// through the front as it goes.
    pub async fn run_job(
        &self,
        kind: &'static str,
        asset: &Asset,
        mut job: Job,
        deadline: Instant,
    ) -> Result<worker_response::Result, ServiceError> {
        let span = asset_span(kind, asset);
        let result = async {
            let remote = self.reader.is_some() && is_remote_path(&asset.path);
            let path = asset.path.to_string_lossy().into_owned();
            let mut cost = ReaderStats::default();
            let mut deferrals = 0;
            loop {
                cost.add(self.remote_header(asset, deadline).await?);
                set_defer_remote(&mut job, remote && deferrals < MAX_DEFERRALS);
                let response = self
                    .run_counted(job.clone(), asset, &path, deadline, &mut cost, &Span::current())
                    .await?;
                match response.result {
                    Some(worker_response::Result::Deferred(missed)) => {
                        let reader = self.reader.as_ref().ok_or_else(|| {
                            ServiceError::Internal(format!(
                                "worker deferred a {kind} job with no remote reader"
                            ))
                        })?;
                        let fetched = reader
                            .fetch_planned(&path, &missed.ranges, deadline)
                            .await
                            .map_err(|e| worker_error(asset, e.into()))?;
                        cost.add(fetched);
                        record_remote_cost(&Span::current(), cost);
                        deferrals += 1;
                    }
                    Some(worker_response::Result::Error(e)) => return Err(worker_error(asset, e)),
                    Some(result) => return Ok(result),
                    None => {
                        return Err(ServiceError::Internal(format!(
                            "worker answered a {kind} job with nothing"
                        )));
                    }
                }
            }
        }
        .instrument(span.clone())
        .await;
        record_outcome(&span, &result);
        result
    }

    /// Runs `job` about `asset` (known to the pool by `key`) and adds what it cost to
    /// `cost`, noted on `span`.
    async fn run_counted(
        &self,
        job: Job,
        asset: &Asset,
        key: &str,
        deadline: Instant,
        cost: &mut ReaderStats,
        span: &Span,
    ) -> Result<WorkerResponse, ServiceError> {
        let response = self.pool.run(job, key, deadline).await.map_err(|e| pool_error(&asset.name, e))?;
        cost.add(self.count_cache(&response));
        record_remote_cost(span, *cost);
        Ok(response)
    }

    /// Runs a whole-tile job whose first read is of `first` (the worker that has it open is
    /// preferred): the worker's result, or `None` when the tile should be run again read
    /// by read (the job failed in a way that may be one asset's: a read error, a crash,
    /// its read timeout, a quarantined first asset). Errors that are the request's or
    /// the server's (deadline, overload, shutdown) are returned as a read's would be.
    /// A job that defers (the front lacked some of its remote reads' blocks) has them
    /// fetched all at once and runs again, once.
    pub(super) async fn run_whole_tile(
        &self,
        mut job: TileJob,
        first: &Asset,
        deadline: Instant,
    ) -> Result<Option<TileResult>, ServiceError> {
        let key = first.path.to_string_lossy();
        let split = |why: String| {
            tracing::debug!(why, "whole-tile job not done; running the tile read by read");
            self.pool.count_whole_tile(true);
            Ok(None)
        };
        // The reads' paths as the request names them (the reader's keys), before the
        // remote ones name a version.
        let keys: Vec<String> = job.reads.iter().map(|r| r.path.clone()).collect();
        let mut cost = match self.ready_remote_reads(&mut job.reads, deadline).await {
            Ok(cost) => cost,
            Err(e) => return split(e.to_string()),
        };
        let mut fetched = false;
        loop {
            let response = match self.pool.run(Job::Tile(job.clone()), &key, deadline).await {
                Ok(response) => response,
                Err(e @ (PoolError::Crashed(_) | PoolError::Quarantined(_) | PoolError::Fault(_))) => {
                    return split(e.to_string());
                }
                Err(e) => return Err(pool_error(&first.name, e)),
            };
            cost.add(self.count_cache(&response));
            record_remote_cost(&Span::current(), cost);
            match response.result {
                Some(worker_response::Result::Tile(t)) => {
                    self.pool.count_whole_tile(false);
                    for us in &t.read_us {
                        self.metrics.asset_read(Duration::from_micros(*us), true);
                    }
                    return Ok(Some(t));
                }
                Some(worker_response::Result::Error(e)) => return split(e.message),
                // The blocks of its remote reads, fetched all at once (no worker waits
                // meanwhile); then the job again, once.
                Some(worker_response::Result::Deferred(deferred)) if !fetched => {
                    match self.fetch_deferred(&keys, &deferred, deadline).await {
                        Ok(more) => cost.add(more),
                        Err(why) => return split(why),
                    }
                    record_remote_cost(&Span::current(), cost);
                    fetched = true;
                }
                Some(worker_response::Result::Deferred(_)) => {
                    return split("the front still does not hold the blocks of a remote read".to_owned());
                }
                other => return split(format!("answered {other:?}")),
            }
        }
    }

    /// Fetches the blocks a whole tile's job deferred on (`deferred.reads`, by index into
    /// the job's reads, whose request paths are `keys`), all reads at once: what it cost,
    /// or why not (the tile then runs read by read, which reports each asset).
    async fn fetch_deferred(
        &self,
        keys: &[String],
        deferred: &Deferred,
        deadline: Instant,
    ) -> Result<ReaderStats, String> {
        let reader = self.reader.as_ref().ok_or("a whole tile deferred with no remote reader")?;
        let mut fetches = Vec::with_capacity(deferred.reads.len());
        for read in &deferred.reads {
            let key =
                keys.get(read.read as usize).filter(|k| is_remote_path(std::path::Path::new(k))).ok_or_else(
                    || format!("the job deferred read {}, not a remote read of the tile", read.read),
                )?;
            fetches.push(reader.fetch_planned(key, &read.ranges, deadline));
        }
        let mut cost = ReaderStats::default();
        for fetched in futures::future::join_all(fetches).await {
            cost.add(fetched.map_err(|e| e.to_string())?);
        }
        Ok(cost)
    }

    /// Whether a tile of `assets` goes whole to one worker now: the pool says so for the
    /// tiles being rendered, none of `assets` is quarantined, and this server reads the
    /// remote ones among them.
    pub(super) fn whole_tile_now(&self, assets: &[&Asset]) -> bool {
        self.pool.whole_tiles_now(self.rendering.load(std::sync::atomic::Ordering::Relaxed))
            && assets.iter().all(|a| {
                (self.reader.is_some() || !is_remote_path(&a.path))
                    && !self.pool.is_quarantined(&a.path.to_string_lossy())
            })
    }

    /// Readies the remote reads among `reads` (a whole tile's) as a lone read is readied
    /// ([`Self::read_remote_aware`]): each asset's header in the front's cache (fetched
    /// all at once when missing), the version just checked named in its path, and its
    /// blocks planned before they are read, so that the worker waits on no fetch (a read
    /// whose blocks the front does not hold defers the job instead). What the headers
    /// cost; an error when one could not be had (the tile then runs read by read, which
    /// reports that asset).
    async fn ready_remote_reads(
        &self,
        reads: &mut [ReadRequest],
        deadline: Instant,
    ) -> Result<ReaderStats, crate::fetch::FetchError> {
        let Some(reader) = &self.reader else { return Ok(ReaderStats::default()) };
        let remote: Vec<&mut ReadRequest> =
            reads.iter_mut().filter(|r| crate::ipc::is_remote(&r.path)).collect();
        let headers = futures::future::join_all(
            remote.iter().map(|r| reader.ensure_header(std::path::Path::new(&r.path), deadline)),
        )
        .await;
        let mut cost = ReaderStats::default();
        for (read, header) in remote.into_iter().zip(headers) {
            cost.add(header?);
            if let Some(versioned) = reader.versioned_path(&read.path) {
                read.path = versioned;
            }
            read.plan_remote = true;
        }
        Ok(cost)
    }

    /// Counts the worker's dataset-cache lookup and notes it on the current span; what
    /// the job's remote reads cost the front.
    fn count_cache(&self, response: &WorkerResponse) -> ReaderStats {
        let Some(stats) = &response.stats else { return ReaderStats::default() };
        self.metrics.dataset_cache(stats.dataset_cache_hit);
        Span::current().record("dataset_cache.hit", stats.dataset_cache_hit);
        ReaderStats {
            hits: stats.remote_cache_hits,
            misses: stats.remote_cache_misses,
            requests: stats.origin_requests,
            bytes: stats.origin_bytes,
            wait: Duration::from_micros(stats.remote_wait_us),
        }
    }

    /// Reads `asset` for the tile `req`: its pixels, or `None` when the worker answered
    /// that the tile's earlier reads had left no pixel for it (with `tile`, the tile's
    /// number and the asset's rank in it: `ReadRequest.tile`).
    pub(super) async fn read(
        &self,
        asset: &Asset,
        req: &TileRequest,
        read_bands: &[u32],
        tile: Option<(u64, u32)>,
        deadline: Instant,
    ) -> Result<Option<ReadResult>, ServiceError> {
        let read = read_request(asset, req, read_bands, tile);
        let started = Instant::now();
        let result = self.read_remote_aware(asset, read, deadline).await;
        if !matches!(result, Ok(None)) {
            self.metrics.asset_read(started.elapsed(), result.is_ok());
        }
        result
    }

    /// A read job; for a remote asset, in up to three steps: the header fetched by the
    /// front, a job that plans the read (and returns at once when its blocks are not all
    /// cached), the blocks fetched by the front all at once, and the job again, whose
    /// reads all hit the cache. An object that changed meanwhile is read again from
    /// scratch, once.
    async fn read_remote_aware(
        &self,
        asset: &Asset,
        mut read: ReadRequest,
        deadline: Instant,
    ) -> Result<Option<ReadResult>, ServiceError> {
        let remote = self.reader.is_some() && is_remote_path(&asset.path);
        let key = read.path.clone();
        let mut changes = 0;
        let mut cost = ReaderStats::default();
        let span = Span::current();
        loop {
            if remote {
                cost.add(self.remote_header(asset, deadline).await?);
                record_remote_fields(&span, cost);
                // The version just checked: the worker opens it without asking which.
                read.path =
                    self.reader.as_ref().and_then(|r| r.versioned_path(&key)).unwrap_or_else(|| key.clone());
            }
            read.plan_remote = remote;
            let mut deferred = 0;
            let response = loop {
                let response = self
                    .run_counted(Job::Read(read.clone()), asset, &key, deadline, &mut cost, &span)
                    .await?;
                let Some(worker_response::Result::Deferred(plan)) = &response.result else { break response };
                deferred += 1;
                let reader = self.reader.as_ref().filter(|_| deferred == 1).ok_or_else(|| {
                    ServiceError::Internal(format!("worker deferred a read of {} twice", quote(&asset.name)))
                })?;
                match reader.fetch_planned(&key, &plan.ranges, deadline).await {
                    Ok(fetched) => {
                        cost.add(fetched);
                        record_remote_cost(&span, cost);
                    }
                    // Answered as the worker would have: a change is read again below.
                    Err(e) => {
                        break WorkerResponse {
                            result: Some(worker_response::Result::Error(e.into())),
                            ..response
                        };
                    }
                }
                read.plan_remote = false;
            };
            match response.result {
                Some(worker_response::Result::Read(r)) => return Ok(Some(r)),
                Some(worker_response::Result::Error(e))
                    if e.kind == ErrorKind::Covered as i32 && read.tile != 0 =>
                {
                    return Ok(None);
                }
                Some(worker_response::Result::Error(e))
                    if e.kind == ErrorKind::RemoteChanged as i32 && changes == 0 =>
                {
                    changes += 1;
                    tracing::info!(asset = %asset.name, "the remote asset changed during the read; reading it again");
                }
                Some(worker_response::Result::Error(e)) => return Err(worker_error(asset, e)),
                _ => {
                    return Err(ServiceError::Internal(
                        "worker answered a read job with something else".into(),
                    ));
                }
            }
        }
    }
}
