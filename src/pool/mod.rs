//! The supervised pool of GDAL worker processes (front side).
//!
//! # Theory of operation
//!
//! GDAL is not thread-safe and can crash or hang, so every GDAL call runs in a worker
//! process (`tessera worker`) that does one job at a time. The pool is a `deadpool`
//! managed pool of [`WorkerProcess`]es: one checkout is one job.
//!
//! - **Start-up**: [`WorkerPool::warm_up`] spawns every worker and waits for all
//!   handshakes; health reports SERVING only after it returns.
//!   Before, the server logs whether the workers' address-space limits fit the pod
//!   ([`log_budget`]).
//! - **A job**: refused at once if its asset is quarantined; then a worker is checked
//!   out. That wait is bounded twice: by the job's deadline (DEADLINE_EXCEEDED) and by
//!   `max_worker_wait` (RESOURCE_EXHAUSTED, so overload sheds load instead of queueing
//!   without bound). The wait is cancellable: a caller that goes away starts nothing. The
//!   exchange itself runs in a spawned task, so it always completes or times out: the
//!   worker's channel never holds a half-read answer and the worker goes back to the pool.
//! - **Deadline** = min(client deadline, start of the exchange + read timeout). A job
//!   whose deadline has passed is never started; a worker that misses it is SIGKILLed
//!   (its whole process group), dropped and replaced in the background. If only the
//!   read timeout passed and the caller's deadline leaves time, the job is retried once
//!   on another worker (a hang is more often the worker's than the asset's). A kill
//!   where the read timeout (not the caller's shorter deadline) expired, on a worker
//!   that was running (not stopped from outside), counts against the asset: `quarantine_timeouts` of them within `quarantine_window` quarantine it
//!   (see [`Quarantine`]), and a kill that does is not retried.
//! - **Crash**: a worker that dies mid-job is dropped and replaced; its reaper logs the
//!   exit status, signal and stderr tail once. If it died by its own fault (SIGSEGV,
//!   SIGABRT, a non-zero exit...) the crash counts against the asset, and the job is
//!   retried once on another worker; an asset that crashes workers
//!   `quarantine_threshold` times within `quarantine_window` is quarantined. A SIGKILL
//!   comes from outside (OOM killer, operator) and says nothing about the asset: such a
//!   job is retried while its deadline allows, up to [`MAX_ATTEMPTS`] times.
//! - **Protocol fault** (garbage, oversize or mismatched frames): the worker is killed
//!   and replaced; the job fails with an internal error.
//! - **Recycling**: after its job, a worker over its job budget (`max_jobs_per_worker`
//!   with ±10% jitter, so workers do not all restart at once) or over `max_rss_bytes`
//!   retires and is replaced in the background.
//! - **Replacement** spawns a spare worker that the pool's next `create` takes, so a
//!   replacement never blocks a caller that could use an idle worker. Failed spawns back
//!   off exponentially with jitter; `crash_loop_threshold` failures within
//!   `crash_loop_window` mark the pool unhealthy (health NOT_SERVING) until the pool is
//!   full of live workers again.
//! - **Liveness**: idle workers are pinged every `ping_interval`; one that does not
//!   answer within `ping_timeout` is killed and replaced.
//! - **Shutdown**: [`WorkerPool::shutdown`] closes the pool (idle workers get SIGTERM and
//!   their stdin closed; busy ones when their job ends), then waits until every worker
//!   process has been reaped; stragglers are SIGKILLed after a grace.

mod memory_budget;
mod metrics;
mod process;
mod quarantine;
mod registry;
mod stats;

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use deadpool::managed::{self, Object, RecycleError, RecycleResult};
pub use memory_budget::{PodMemory, log_budget, over_budget, pod_memory};
pub use process::{
    ExchangeError, ExitInfo, SpawnError, WorkerProcess, WorkerState, check_response, worker_environment,
};
pub use quarantine::{Quarantine, Quarantined};
use rand::Rng;
pub use registry::Registry;
pub use stats::PoolStats;
use tokio::{sync::watch, time::Instant};
use tracing::Instrument as _;

use crate::pb::worker::{PingRequest, WorkerRequest, WorkerResponse, worker_request::Job};

/// Most attempts of one job when workers keep being killed from outside.
/// (Killed from outside says nothing about the job, so a few more tries are cheap; the
/// job's deadline bounds them too.)
pub const MAX_ATTEMPTS: u32 = 8;

/// Default number of workers when `--workers` is not given: two per core, at least 4.
/// A worker is busy for the whole of a read, network waits included, so reads of remote
/// assets keep more workers than cores occupied; local reads are CPU-bound and lose
/// little to the extra processes (about 80 MiB resident each).
#[must_use]
pub fn default_worker_count() -> usize {
    std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).max(4))
}

/// How the pool is set up.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Number of worker processes.
    pub size: usize,
    /// The executable to run as `EXE worker` (the running binary).
    pub worker_exe: PathBuf,
    /// How long a new worker has to send its hello.
    pub handshake_timeout: Duration,
    /// Longest one job may run on a worker (from the moment it is sent).
    pub read_timeout: Duration,
    /// Jobs after which a worker is replaced (±10% jitter per worker).
    pub max_jobs_per_worker: u64,
    /// Resident memory after which a worker is replaced (checked after each job).
    pub max_rss_bytes: Option<u64>,
    /// Resource and asset-size limits of each worker (address space, CPU per job, open
    /// files, largest asset).
    pub worker_limits: crate::ipc::limits::WorkerLimits,
    /// Longest a job waits for a free worker before RESOURCE_EXHAUSTED.
    pub max_worker_wait: Duration,
    /// Crashes of one asset within `quarantine_window` that quarantine it.
    pub quarantine_threshold: usize,
    /// Read-timeout kills of one asset's reads within `quarantine_window` that
    /// quarantine it; 0 = never.
    pub quarantine_timeouts: usize,
    /// Window for counting an asset's crashes.
    pub quarantine_window: Duration,
    /// How long a quarantine lasts.
    pub quarantine_duration: Duration,
    /// Failed spawns or crashes within `crash_loop_window` that mark the pool unhealthy.
    pub crash_loop_threshold: usize,
    /// Window for counting failures.
    pub crash_loop_window: Duration,
    /// How often idle workers are pinged; zero turns pinging off.
    pub ping_interval: Duration,
    /// How long a ping may take.
    pub ping_timeout: Duration,
    /// Environment of each worker on top of what it inherits from the front (see
    /// `process::INHERITED_ENV`): GDAL configuration options.
    pub worker_env: Vec<(String, String)>,
    /// Who answers workers' questions about remote assets (none: they cannot be read).
    pub ranges: Option<Arc<dyn crate::ipc::RangeService>>,
}

/// Why a job could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The deadline passed before or during the job.
    #[error("the read did not finish before its deadline")]
    DeadlineExceeded,
    /// No worker became free within the wait bound.
    #[error("no worker became free within {0:?}")]
    Overloaded(Duration),
    /// No worker can be had: the pool is closed or workers cannot be spawned.
    #[error("no worker available: {0}")]
    Unavailable(String),
    /// The job's worker died by its own fault, on every attempt.
    #[error("reading it crashed the worker ({0})")]
    Crashed(String),
    /// The asset is quarantined.
    #[error("it is quarantined for {}s more: {}", .0.remaining.as_secs().max(1), .0.reason)]
    Quarantined(Quarantined),
    /// A worker broke the protocol.
    #[error("worker protocol fault: {0}")]
    Fault(String),
}

/// deadpool's view of how to make and check workers: a handle on [`ManagerInner`],
/// shared so that a spawn can outlive the checkout that asked for it.
#[derive(Debug)]
pub struct WorkerManager {
    inner: Arc<ManagerInner>,
}

impl std::ops::Deref for WorkerManager {
    type Target = ManagerInner;

    fn deref(&self) -> &ManagerInner {
        &self.inner
    }
}

/// Everything the pool needs to make workers.
#[derive(Debug)]
pub struct ManagerInner {
    config: PoolConfig,
    registry: Registry,
    stats: Arc<PoolStats>,
    /// Workers spawned in the background to replace dead or retired ones.
    spares: Mutex<Vec<WorkerProcess>>,
    /// Signalled when a spare is added.
    spare_ready: tokio::sync::Notify,
    /// Worker slots in use: workers in the pool or spare, plus spawns in progress. A slot
    /// is reserved before a spawn and released when a worker leaves service (deadpool's
    /// `detach`) or a spawn fails, so the pool never runs more than `size` workers.
    live: std::sync::atomic::AtomicUsize,
    /// Times of recent failed spawns and crashes (the crash-loop detector).
    failures: Mutex<VecDeque<std::time::Instant>>,
    /// Set at shutdown: no more spares.
    closed: std::sync::atomic::AtomicBool,
    /// Whether the pool is healthy (no crash loop); health follows it.
    healthy: watch::Sender<bool>,
}

impl ManagerInner {
    /// Reserves a worker slot if one is free.
    fn reserve(&self) -> bool {
        self.live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.config.size).then_some(n + 1))
            .is_ok()
    }

    /// Gives a slot back.
    fn release(&self) {
        let _ = self.live.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Keeps a started worker for the next checkout (or lets it go if the pool closed).
    fn add_spare(&self, worker: WorkerProcess) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut s) = self.spares.lock() {
            s.push(worker);
        }
        self.spare_ready.notify_one();
    }

    fn take_spare(&self) -> Option<WorkerProcess> {
        loop {
            let spare = self.spares.lock().ok()?.pop()?;
            if spare.state() == WorkerState::Idle {
                return Some(spare);
            }
            // Died while waiting as a spare: its slot is free again.
            self.release();
        }
    }

    /// Spawns a worker into a slot reserved by the caller; the slot is released if the
    /// spawn fails.
    async fn spawn(&self) -> Result<WorkerProcess, SpawnError> {
        /// Releases the reserved slot if the spawn fails or its future is dropped.
        struct Slot<'a>(Option<&'a ManagerInner>);
        impl Drop for Slot<'_> {
            fn drop(&mut self) {
                if let Some(m) = self.0 {
                    m.release();
                }
            }
        }
        let mut slot = Slot(Some(self));
        PoolStats::bump(&self.stats.spawns);
        let result = WorkerProcess::spawn(
            &self.config.worker_exe,
            self.config.handshake_timeout,
            &self.config.worker_limits,
            &self.config.worker_env,
            &self.registry,
        )
        .await;
        match result {
            Ok(mut w) => {
                slot.0 = None;
                w.set_job_limit(job_budget(self.config.max_jobs_per_worker, &mut rand::rng()));
                Ok(w)
            }
            Err(e) => {
                drop(slot);
                PoolStats::bump(&self.stats.spawn_failures);
                if !matches!(e, SpawnError::Killed { .. }) {
                    self.record_failure();
                }
                Err(e)
            }
        }
    }

    /// Notes a failed spawn or a crash; too many within the window mark the pool unhealthy.
    fn record_failure(&self) {
        let now = std::time::Instant::now();
        let Ok(mut failures) = self.failures.lock() else { return };
        failures.push_back(now);
        while failures.front().is_some_and(|t| now.duration_since(*t) > self.config.crash_loop_window) {
            failures.pop_front();
        }
        if failures.len() >= self.config.crash_loop_threshold && *self.healthy.borrow() {
            tracing::error!(
                failures = failures.len(),
                window = ?self.config.crash_loop_window,
                "workers keep failing: crash loop; health NOT_SERVING until the pool is whole again"
            );
            self.healthy.send_replace(false);
        }
    }
}

impl managed::Manager for WorkerManager {
    type Type = WorkerProcess;
    type Error = SpawnError;

    async fn create(&self) -> Result<WorkerProcess, SpawnError> {
        let until = tokio::time::Instant::now() + self.config.handshake_timeout;
        loop {
            if let Some(w) = self.take_spare() {
                return Ok(w);
            }
            if self.reserve() {
                // Spawned in its own task: if this checkout is cancelled (its deadline
                // passed, its caller left), the new worker becomes a spare, not waste.
                let inner = Arc::clone(&self.inner);
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    let result = inner.spawn().await;
                    if let Err(Ok(orphan)) = tx.send(result) {
                        inner.add_spare(orphan);
                    }
                });
                return rx.await.unwrap_or_else(|_| {
                    Err(SpawnError::Handshake { pid: 0, reason: "spawn task ended".into() })
                });
            }
            // Every slot is taken, by a replacement still starting: wait for it.
            let ready = self.spare_ready.notified();
            if tokio::time::timeout_at(until, ready).await.is_err() {
                return Err(SpawnError::Handshake { pid: 0, reason: "no worker slot became free".into() });
            }
        }
    }

    fn detach(&self, _: &mut WorkerProcess) {
        self.release();
    }

    async fn recycle(&self, w: &mut WorkerProcess, _: &managed::Metrics) -> RecycleResult<SpawnError> {
        match w.state() {
            WorkerState::Idle => Ok(()),
            state => Err(RecycleError::message(format!("worker {} is {state:?}", w.pid()))),
        }
    }
}

/// The pool of worker processes.
#[derive(Debug)]
pub struct WorkerPool {
    pool: managed::Pool<WorkerManager>,
    next_id: AtomicU64,
    quarantine: Quarantine,
    /// Which workers have each asset open (most recent first): jobs go preferably there.
    affinity: Mutex<lru::LruCache<String, Vec<u32>>>,
}

/// Assets whose workers the pool remembers.
const AFFINITY_ASSETS: usize = 16_384;
/// Workers remembered per asset.
const AFFINITY_WORKERS: usize = 4;

/// What went wrong in earlier attempts of a job.
#[derive(Debug, Default)]
struct Faults {
    /// Workers that died by their own fault.
    own: u32,
    /// Whether a worker already hung past the read timeout.
    timed_out: bool,
}

/// Where a job's time went, over all its attempts; recorded on the caller's span.
#[derive(Debug, Default)]
struct JobTimes {
    /// Waiting for a worker to be checked out.
    wait: Duration,
    /// Exchanging frames with workers (the work itself included).
    ipc: Duration,
    /// The worker of the last attempt.
    pid: u32,
}

// Lives for one loop iteration on the stack; boxing the response would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    Done(Result<WorkerResponse, PoolError>),
    /// The worker died: run the job again.
    Retry,
    /// No worker could be checked out yet: try again (does not count as an attempt).
    Checkout,
}

impl WorkerPool {
    /// Builds the pool; no worker is spawned until [`warm_up`](Self::warm_up).
    ///
    /// # Panics
    /// Never: a pool with a runtime and `max_size >= 1` always builds.
    #[must_use]
    pub fn new(config: PoolConfig) -> Arc<Self> {
        let size = config.size.max(1);
        let quarantine = Quarantine::new(
            config.quarantine_threshold,
            config.quarantine_timeouts,
            config.quarantine_window,
            config.quarantine_duration,
        );
        let manager = ManagerInner {
            config,
            registry: Registry::default(),
            stats: Arc::new(PoolStats::default()),
            spares: Mutex::new(Vec::new()),
            spare_ready: tokio::sync::Notify::new(),
            live: std::sync::atomic::AtomicUsize::new(0),
            failures: Mutex::new(VecDeque::new()),
            healthy: watch::channel(true).0,
            closed: std::sync::atomic::AtomicBool::new(false),
        };
        let manager = WorkerManager { inner: Arc::new(manager) };
        let pool = managed::Pool::builder(manager)
            .max_size(size)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .expect("a pool with a runtime and max_size >= 1 always builds");
        let affinity = Mutex::new(lru::LruCache::new(
            std::num::NonZeroUsize::new(AFFINITY_ASSETS).expect("a non-zero constant"),
        ));
        Arc::new(Self { pool, next_id: AtomicU64::new(1), quarantine, affinity })
    }

    fn config(&self) -> &PoolConfig {
        &self.pool.manager().config
    }

    /// The pool's counters.
    #[must_use]
    pub fn stats(&self) -> &PoolStats {
        &self.pool.manager().stats
    }

    /// The configured number of workers.
    #[must_use]
    pub fn size(&self) -> usize {
        self.config().size
    }

    /// (workers checked out, workers idle, callers waiting for a worker).
    #[must_use]
    pub fn occupancy(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size - s.available, s.available, s.waiting)
    }

    /// Follows the pool's health: false during a crash loop.
    #[must_use]
    pub fn health(&self) -> watch::Receiver<bool> {
        self.pool.manager().healthy.subscribe()
    }

    /// Spawns every worker and waits for all handshakes.
    pub async fn warm_up(&self) -> Result<(), SpawnError> {
        let size = self.pool.status().max_size;
        let checkouts = futures::future::join_all((0..size).map(|_| self.pool.get())).await;
        for c in checkouts {
            match c {
                Ok(_) => {}
                Err(managed::PoolError::Backend(e)) => return Err(e),
                Err(e) => {
                    return Err(SpawnError::Handshake { pid: 0, reason: e.to_string() });
                }
            }
        }
        Ok(())
    }

    /// Pids of every live worker process (in the pool, busy, spare or exiting).
    #[must_use]
    pub fn worker_pids(&self) -> Vec<u32> {
        self.pool.manager().registry.pids()
    }

    /// Runs one job about `asset` (the quarantine key), retrying on another worker if
    /// the first one dies.
    pub async fn run(
        self: &Arc<Self>,
        job: Job,
        asset: &str,
        deadline: Instant,
    ) -> Result<WorkerResponse, PoolError> {
        if let Some(q) = self.quarantine.check(asset, std::time::Instant::now()) {
            PoolStats::bump(&self.stats().quarantine_rejections);
            return Err(PoolError::Quarantined(q));
        }
        let mut times = JobTimes::default();
        let mut attempts = 0;
        let result = self.run_attempts(&job, asset, deadline, &mut times, &mut attempts).await;
        // The caller's span (an asset read) declares these fields; on others it is a no-op.
        // (Integers as i64: OpenTelemetry attributes have no unsigned type.)
        let span = tracing::Span::current();
        span.record("worker.pid", i64::from(times.pid));
        span.record("pool.wait_ms", times.wait.as_secs_f64() * 1e3);
        span.record("ipc_ms", times.ipc.as_secs_f64() * 1e3);
        span.record("retries", i64::from(attempts.saturating_sub(1)));
        result
    }

    async fn run_attempts(
        self: &Arc<Self>,
        job: &Job,
        asset: &str,
        deadline: Instant,
        times: &mut JobTimes,
        attempts: &mut u32,
    ) -> Result<WorkerResponse, PoolError> {
        let mut faults = Faults::default();
        let mut attempt = 1;
        while attempt <= MAX_ATTEMPTS {
            *attempts = attempt;
            match self.attempt(job, asset, deadline, &mut faults, times).await {
                Attempt::Done(result) => return result,
                Attempt::Checkout => {}
                Attempt::Retry => {
                    tracing::warn!(asset, attempt, "worker died mid-job; retrying on another worker");
                    attempt += 1;
                    if attempt <= MAX_ATTEMPTS {
                        PoolStats::bump(&self.stats().retries);
                    }
                }
            }
        }
        if faults.timed_out {
            return Err(PoolError::DeadlineExceeded);
        }
        Err(PoolError::Unavailable(format!(
            "the workers reading it were killed from outside {MAX_ATTEMPTS} times in a row"
        )))
    }

    async fn attempt(
        self: &Arc<Self>,
        job: &Job,
        asset: &str,
        deadline: Instant,
        faults: &mut Faults,
        times: &mut JobTimes,
    ) -> Attempt {
        if Instant::now() >= deadline {
            return Attempt::Done(Err(PoolError::DeadlineExceeded));
        }
        let wait = self.config().max_worker_wait;
        let checkout_started = Instant::now();
        let wait_until = checkout_started + wait;
        let checkout = tokio::time::timeout_at(deadline.min(wait_until), self.pool.get()).await;
        times.wait += checkout_started.elapsed();
        let worker = match checkout {
            Err(_) if deadline <= wait_until => return Attempt::Done(Err(PoolError::DeadlineExceeded)),
            Err(_) => {
                PoolStats::bump(&self.stats().wait_rejections);
                return Attempt::Done(Err(PoolError::Overloaded(wait)));
            }
            Ok(Ok(w)) => w,
            Ok(Err(managed::PoolError::Closed)) => {
                return Attempt::Done(Err(PoolError::Unavailable("the server is shutting down".into())));
            }
            // A spawn failed while the pool is healthy (a worker killed as it started):
            // try again for another worker, within the deadline.
            Ok(Err(managed::PoolError::Backend(e))) if *self.pool.manager().healthy.borrow() => {
                tracing::warn!(error = %e, "worker spawn failed during checkout; trying again");
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Attempt::Checkout;
            }
            Ok(Err(e)) => return Attempt::Done(Err(PoolError::Unavailable(e.to_string()))),
        };
        let worker = self.prefer(worker, asset).await;
        // The read timeout bounds the work, not the wait for a worker.
        let request_deadline = deadline;
        let read_deadline = Instant::now() + self.config().read_timeout;
        // Whether a kill at the deadline would be the read timeout's, which says something
        // about the asset, rather than the caller's, which does not.
        let bounded_by_read_timeout = read_deadline < request_deadline;
        let deadline = request_deadline.min(read_deadline);
        let request = WorkerRequest {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            deadline_ms: deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
            trace_context: crate::telemetry::inject(&tracing::Span::current()),
            job: Some(job.clone()),
        };
        PoolStats::bump(&self.stats().jobs_started);
        times.pid = worker.pid();
        let this = Arc::clone(self);
        // Detached so that a caller going away cannot cut an exchange in half.
        let exchange_started = Instant::now();
        let exchange =
            tokio::spawn(async move { this.exchange(worker, request, deadline).await }.in_current_span());
        let exchanged = exchange.await;
        times.ipc += exchange_started.elapsed();
        match exchanged {
            Ok(Ok(response)) => {
                self.remember(asset, times.pid);
                Attempt::Done(Ok(response))
            }
            Ok(Err((ExchangeError::Died, exit))) => {
                let external = exit.is_some_and(|e| e.is_external_kill());
                if !external {
                    faults.own += 1;
                    self.pool.manager().record_failure();
                    let what = describe_exit(exit);
                    if self.quarantine.record_crash(asset, std::time::Instant::now(), &what) {
                        PoolStats::bump(&self.stats().quarantines);
                        tracing::error!(asset, crash = %what, duration = ?self.config().quarantine_duration, "asset quarantined");
                    }
                    if faults.own >= 2 {
                        return Attempt::Done(Err(PoolError::Crashed(what)));
                    }
                }
                Attempt::Retry
            }
            Ok(Err((ExchangeError::Timeout { stopped }, _))) => {
                // A worker stopped from outside is not held up by the asset.
                let quarantined = bounded_by_read_timeout && !stopped && self.count_timeout(asset);
                // The worker hung past the read timeout but the caller can still wait:
                // the hang is more likely the worker's than the asset's, so try another
                // worker (once, and not for an asset this very kill quarantined).
                let first = !std::mem::replace(&mut faults.timed_out, true);
                if first && !quarantined && Instant::now() + Duration::from_millis(50) < request_deadline {
                    Attempt::Retry
                } else {
                    Attempt::Done(Err(PoolError::DeadlineExceeded))
                }
            }
            Ok(Err((ExchangeError::Fault(f), _))) => Attempt::Done(Err(PoolError::Fault(f))),
            Err(join) => Attempt::Done(Err(PoolError::Fault(format!("exchange task failed: {join}")))),
        }
    }

    /// Counts a read-timeout kill against `asset`; true if it quarantined the asset.
    fn count_timeout(&self, asset: &str) -> bool {
        let read_timeout = self.config().read_timeout;
        if !self.quarantine.record_timeout(asset, std::time::Instant::now(), read_timeout) {
            return false;
        }
        PoolStats::bump(&self.stats().quarantines);
        tracing::error!(
            asset,
            ?read_timeout,
            duration = ?self.config().quarantine_duration,
            "asset quarantined: its reads keep running past the read timeout"
        );
        true
    }

    /// Affinity: if `first` does not have `asset` open but an idle worker that does is
    /// in the pool, takes that one instead. Only idle workers are tried (never waiting,
    /// never starting one), so affinity adds no queueing delay; the others go straight
    /// back.
    async fn prefer(&self, first: Object<WorkerManager>, asset: &str) -> Object<WorkerManager> {
        let preferred = match self.affinity.lock() {
            Ok(mut a) => a.get(asset).cloned().unwrap_or_default(),
            Err(_) => return first,
        };
        if preferred.is_empty() || preferred.contains(&first.pid()) {
            if !preferred.is_empty() {
                PoolStats::bump(&self.stats().affinity_hits);
            }
            return first;
        }
        let idle_only = managed::Timeouts {
            wait: Some(Duration::ZERO),
            create: Some(Duration::ZERO),
            recycle: Some(Duration::from_millis(50)),
        };
        let mut passed_over = Vec::new();
        let mut chosen = first;
        while self.pool.status().available > 0 && passed_over.len() < self.config().size {
            match self.pool.timeout_get(&idle_only).await {
                Ok(w) if preferred.contains(&w.pid()) => {
                    PoolStats::bump(&self.stats().affinity_hits);
                    passed_over.push(std::mem::replace(&mut chosen, w));
                    break;
                }
                Ok(w) => passed_over.push(w),
                Err(_) => break,
            }
        }
        drop(passed_over);
        chosen
    }

    /// Notes that worker `pid` has `asset` open now.
    fn remember(&self, asset: &str, pid: u32) {
        if let Ok(mut a) = self.affinity.lock() {
            let pids = a.get_or_insert_mut(asset.to_owned(), Vec::new);
            pids.retain(|p| *p != pid);
            pids.insert(0, pid);
            pids.truncate(AFFINITY_WORKERS);
        }
    }

    async fn exchange(
        self: Arc<Self>,
        mut worker: Object<WorkerManager>,
        request: WorkerRequest,
        deadline: Instant,
    ) -> Result<WorkerResponse, (ExchangeError, Option<ExitInfo>)> {
        let result = worker.exchange(&request, deadline, self.config().ranges.as_deref()).await;
        let stats = self.stats();
        let retire = match &result {
            Ok(_) if worker.jobs_done() >= worker.job_limit() => {
                PoolStats::bump(&stats.recycles_max_jobs);
                tracing::debug!(
                    pid = worker.pid(),
                    jobs = worker.jobs_done(),
                    "recycling worker after its job budget"
                );
                true
            }
            Ok(_) => match (self.config().max_rss_bytes, worker.rss_bytes()) {
                (Some(cap), Some(rss)) if rss > cap => {
                    PoolStats::bump(&stats.recycles_rss);
                    tracing::info!(pid = worker.pid(), rss, cap, "recycling worker over its memory cap");
                    true
                }
                _ => false,
            },
            Err(ExchangeError::Died) => {
                PoolStats::bump(&stats.crashes);
                true
            }
            Err(_) => {
                PoolStats::bump(&stats.kills);
                true
            }
        };
        let mut exit = None;
        if retire {
            let mut w = Object::take(worker);
            if matches!(result, Err(ExchangeError::Died)) {
                // The reaper logs the exit; its status decides whether the asset is to blame.
                exit = w.wait_exited(Duration::from_millis(500)).await;
            }
            drop(w);
            self.replenish();
        }
        result.map_err(|e| (e, exit))
    }

    /// Spawns spare workers in the background while worker slots are free, backing off
    /// (exponentially, with jitter) while spawns fail.
    fn replenish(self: &Arc<Self>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let manager = this.pool.manager();
            let backoff = || crate::backoff::delays(Duration::from_millis(50), Duration::from_secs(10));
            let mut delays = backoff();
            while !this.pool.is_closed() && manager.reserve() {
                match manager.spawn().await {
                    Ok(w) => {
                        manager.add_spare(w);
                        delays = backoff();
                        this.mark_healthy_if_whole();
                    }
                    // Killed from outside while starting: nothing wrong with spawning.
                    Err(SpawnError::Killed { pid }) => {
                        tracing::warn!(pid, "replacement worker killed while starting; spawning another");
                    }
                    Err(e) => {
                        let pause = delays.next().unwrap_or(Duration::from_secs(10));
                        tracing::error!(error = %e, retry_in = ?pause, "cannot spawn a replacement worker");
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        });
    }

    /// Clears the crash-loop state once every slot has a live worker again.
    fn mark_healthy_if_whole(&self) {
        let manager = self.pool.manager();
        let whole = manager.live.load(Ordering::SeqCst) >= manager.config.size;
        if whole && !*manager.healthy.borrow() {
            if let Ok(mut f) = manager.failures.lock() {
                f.clear();
            }
            manager.healthy.send_replace(true);
            tracing::info!("worker pool whole again; healthy");
        }
    }

    /// Pings idle workers every `ping_interval`; a worker that does not answer within
    /// `ping_timeout` is killed and replaced. Runs until the pool closes.
    pub fn spawn_liveness(self: &Arc<Self>) {
        let interval = self.config().ping_interval;
        if interval.is_zero() {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if this.pool.is_closed() {
                    return;
                }
                this.ping_idle().await;
                this.replenish();
            }
        });
    }

    async fn ping_idle(self: &Arc<Self>) {
        let idle = self.pool.status().available;
        // Check out only workers that are idle right now: never wait, never spawn.
        let timeouts = managed::Timeouts {
            wait: Some(Duration::ZERO),
            create: Some(Duration::ZERO),
            recycle: Some(Duration::from_millis(100)),
        };
        let mut held = Vec::new();
        for _ in 0..idle {
            match self.pool.timeout_get(&timeouts).await {
                Ok(w) => held.push(w),
                Err(_) => break,
            }
        }
        let deadline = Instant::now() + self.config().ping_timeout;
        for worker in held {
            PoolStats::bump(&self.stats().pings);
            let request = WorkerRequest {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                deadline_ms: self.config().ping_timeout.as_millis() as u64,
                trace_context: std::collections::HashMap::default(),
                job: Some(Job::Ping(PingRequest {})),
            };
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let pid = worker.pid();
                if let Err((e, _)) = this.exchange(worker, request, deadline).await {
                    tracing::warn!(pid, error = %e, "idle worker failed its liveness ping; replaced");
                }
            });
        }
    }

    /// Closes the pool and waits (at most `grace` plus a margin) until no worker process
    /// is left. Returns whether all are gone.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.pool.manager().closed.store(true, Ordering::SeqCst);
        self.pool.close();
        let manager = self.pool.manager();
        if let Ok(mut s) = manager.spares.lock() {
            s.clear();
        }
        manager.registry.wait_empty(grace + Duration::from_secs(3)).await
    }
}

/// A worker's job budget: `base` ±10% (at least ±1), so workers started together do not
/// all retire together.
fn job_budget(base: u64, rng: &mut impl Rng) -> u64 {
    let jitter = (base / 10).max(1);
    rng.random_range(base.saturating_sub(jitter).max(1)..=base.saturating_add(jitter))
}

/// "signal 11", "exit code 134"... for messages.
fn describe_exit(exit: Option<ExitInfo>) -> String {
    match exit {
        Some(ExitInfo { signal: Some(s), .. }) => {
            let name = nix::sys::signal::Signal::try_from(s)
                .map_or_else(|_| format!("signal {s}"), |s| s.to_string());
            format!("worker killed by {name}")
        }
        Some(ExitInfo { code: Some(c), .. }) => format!("worker exited with code {c}"),
        _ => "worker died".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_budgets_spread_within_ten_percent() {
        let mut rng = rand::rng();
        let budgets: Vec<u64> = (0..1000).map(|_| job_budget(1000, &mut rng)).collect();
        assert!(budgets.iter().all(|b| (900..=1100).contains(b)));
        let distinct: std::collections::BTreeSet<_> = budgets.iter().collect();
        assert!(distinct.len() > 50, "budgets are not spread: {} distinct", distinct.len());
        assert!((0..100).all(|_| (1..=3).contains(&job_budget(2, &mut rng))));
    }

    #[test]
    fn exits_are_described_by_signal_name_or_code() {
        assert_eq!(
            describe_exit(Some(ExitInfo { code: None, signal: Some(11) })),
            "worker killed by SIGSEGV"
        );
        assert_eq!(
            describe_exit(Some(ExitInfo { code: Some(3), signal: None })),
            "worker exited with code 3"
        );
        assert!(ExitInfo { code: None, signal: Some(9) }.is_external_kill());
        assert!(!ExitInfo { code: None, signal: Some(6) }.is_external_kill());
    }
}
