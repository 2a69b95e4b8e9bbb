//! The supervised pool of GDAL worker processes (front side).
//!
//! # Theory of operation
//!
//! GDAL is not thread-safe and can crash or hang, so every GDAL call runs in a worker
//! process (`tessera worker`) that does one job at a time. The pool is a `deadpool`
//! managed pool of [`WorkerProcess`]es: one checkout is one job. Each rule below lives
//! in one file of this module, named in parentheses ("here" is this file).
//!
//! - **A worker** (`process.rs`, its states in `state.rs`): spawned in its own process
//!   group, it shakes hands, then answers one job at a time over its stdin and stdout; a
//!   reaper task collects its exit and logs a crash with the tail of its stderr.
//! - **Start-up** (here): [`WorkerPool::warm_up`] spawns every worker and waits for all
//!   handshakes; health reports SERVING only after it returns.
//!   Before, the server logs whether the workers' address-space limits fit the pod
//!   ([`log_budget`], `memory_budget.rs`).
//! - **A job** (`attempt.rs`): refused at once if its asset is quarantined; then a worker
//!   is checked out. That wait is bounded twice: by the job's deadline (DEADLINE_EXCEEDED)
//!   and by `max_worker_wait` (RESOURCE_EXHAUSTED, so overload sheds load instead of
//!   queueing without bound). The wait is cancellable: a caller that goes away starts
//!   nothing. The exchange itself runs in a spawned task, so it always completes or times
//!   out: the worker's channel never holds a half-read answer and the worker goes back to
//!   the pool.
//! - **Affinity** (`affinity.rs`): a job goes preferably to an idle worker that already
//!   has its asset open; the pool never waits or spawns for that.
//! - **Pipelining** (`pipeline.rs`): when no worker is idle, a local read also offers
//!   itself to busy workers; one doing a local read queues it in its pipe, so the worker
//!   starts it the moment it answers. At most two jobs are in flight on a worker, each
//!   answering in its own slot of the reply region.
//! - **Deadline** (`attempt.rs`, `retry.rs`) = min(client deadline, start of the
//!   exchange + read timeout). A job whose deadline has passed is never started; a worker
//!   that misses it is SIGKILLed (its whole process group), dropped and replaced in the
//!   background. If only the read timeout passed and the caller's deadline leaves time,
//!   the job is retried once on another worker (a hang is more often the worker's than
//!   the asset's). A kill where the read timeout (not the caller's shorter deadline)
//!   expired, on a worker that was running (not stopped from outside), counts against the
//!   asset: `quarantine_timeouts` of them within `quarantine_window` quarantine it (see
//!   [`Quarantine`], `quarantine.rs`), and a kill that does is not retried.
//! - **Crash** (`retry.rs`): a worker that dies mid-job is dropped and replaced; its
//!   reaper logs the exit status, signal and stderr tail once. If it died by its own fault
//!   (SIGSEGV, SIGABRT, a non-zero exit...) the crash counts against the asset, and the
//!   job is retried once on another worker; an asset that crashes workers
//!   `quarantine_threshold` times within `quarantine_window` is quarantined. A SIGKILL
//!   comes from outside (OOM killer, operator) and says nothing about the asset: such a
//!   job is retried while its deadline allows, up to [`MAX_ATTEMPTS`] times.
//! - **Protocol fault** (`process.rs`): garbage, oversize or mismatched frames: the
//!   worker is killed and replaced; the job fails with an internal error.
//! - **Recycling** (`recycle.rs`): after its job, a worker over its job budget
//!   (`max_jobs_per_worker` with ±10% jitter, so workers do not all restart at once) or
//!   over `max_rss_bytes` retires and is replaced in the background.
//! - **Replacement** (`replenish.rs`, slots and spares in `slots.rs`) spawns a spare
//!   worker that the pool's next `create` takes, so a replacement never blocks a caller
//!   that could use an idle worker; the pool never runs more than `size` workers. Failed
//!   spawns back off exponentially with jitter; `crash_loop_threshold` failures within
//!   `crash_loop_window` mark the pool unhealthy (health NOT_SERVING) until the pool is
//!   full of live workers again (`crash_loop.rs`).
//! - **Liveness** (`liveness.rs`): idle workers are pinged every `ping_interval`; one that
//!   does not answer within `ping_timeout` is killed and replaced.
//! - **Shutdown** (here): [`WorkerPool::shutdown`] closes the pool (idle workers get
//!   SIGTERM and their stdin closed; busy ones when their job ends), then waits until
//!   every worker process has been reaped (`registry.rs`); stragglers are SIGKILLed after
//!   a grace.
//!
//! The pool's counters are in `stats.rs`.

mod affinity;
mod attempt;
mod crash_loop;
mod liveness;
mod memory_budget;
mod metrics;
mod pipeline;
mod process;
mod quarantine;
mod recycle;
mod registry;
mod replenish;
mod retry;
mod slots;
mod state;
mod stats;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use deadpool::managed;
pub use memory_budget::{PodMemory, log_budget, over_budget, pod_memory};
pub use process::{ExchangeError, SpawnError, WorkerProcess, check_response, worker_environment};
pub use quarantine::{Quarantine, Quarantined};
pub use registry::Registry;
pub use retry::MAX_ATTEMPTS;
pub use slots::{ManagerInner, WorkerManager};
pub use state::{ExitInfo, WorkerState};
pub use stats::PoolStats;
use tokio::{sync::watch, time::Instant};

use affinity::Affinity;
use attempt::JobTimes;

use crate::pb::worker::{WorkerResponse, worker_request::Job};

/// Default number of workers when `--workers` is not given: one per core and one more,
/// at least 2. Workers only compute: the front fetches remote bytes while no worker
/// waits (a read whose blocks are missing is deferred), so workers beyond the cores only
/// contend for them, each with its own open datasets, warps and decoded blocks to fill
/// (and about 80 MiB resident). The one more keeps the cores busy while a worker waits
/// on the front (a plan question, its next job). On 2 cores, 3 workers served 10-12% more
/// tiles a second than 4 on a fresh server, local and over HTTP, and as many once every
/// asset was open (docs/remote-assets.md).
#[must_use]
pub fn default_worker_count() -> usize {
    std::thread::available_parallelism().map_or(3, |n| n.get() + 1).max(2)
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
    /// Whether a tile may go whole to one worker ([`WorkerPool::whole_tiles_now`]).
    pub whole_tiles: bool,
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

/// The pool of worker processes.
#[derive(Debug)]
pub struct WorkerPool {
    pool: managed::Pool<WorkerManager>,
    next_id: AtomicU64,
    quarantine: Quarantine,
    /// Which workers have each asset open (most recent first): jobs go preferably there.
    affinity: Affinity,
    /// Local reads waiting for a worker, offered to busy ones (pipelining).
    waiting: pipeline::Waiting,
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
        let pool = managed::Pool::builder(WorkerManager::new(config))
            .max_size(size)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .expect("a pool with a runtime and max_size >= 1 always builds");
        Arc::new(Self {
            pool,
            next_id: AtomicU64::new(1),
            quarantine,
            affinity: Affinity::default(),
            waiting: pipeline::Waiting::default(),
        })
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

    /// Whether a tile's reads should go to one worker as a whole-tile job, with `tiles`
    /// tiles being rendered (this one among them): whole tiles are on, and there is one
    /// worker, or at least as many tiles as workers, so that no tile would have two
    /// workers to itself to read in parallel. (Counting tiles, not idle workers: a lone
    /// caller's tile is always spread, also while a worker is on its way back to the
    /// pool or being replaced.)
    #[must_use]
    pub fn whole_tiles_now(&self, tiles: usize) -> bool {
        let workers = self.config().size;
        self.config().whole_tiles && (workers <= 1 || tiles >= workers)
    }

    /// Whether reads of `asset` fail fast now, quarantined.
    #[must_use]
    pub fn is_quarantined(&self, asset: &str) -> bool {
        self.quarantine.check(asset, std::time::Instant::now()).is_some()
    }

    /// Counts a tile rendered whole by one worker, or run again read by read after its
    /// whole-tile job failed (`fell_back`).
    pub fn count_whole_tile(&self, fell_back: bool) {
        let stats = self.stats();
        PoolStats::bump(if fell_back { &stats.whole_tile_fallbacks } else { &stats.whole_tiles });
    }

    /// Follows the pool's health: false during a crash loop.
    #[must_use]
    pub fn health(&self) -> watch::Receiver<bool> {
        self.pool.manager().crash_loop.subscribe()
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
