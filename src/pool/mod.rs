//! The supervised pool of GDAL worker processes (front side).
//!
//! # Theory of operation
//!
//! GDAL is not thread-safe and can crash or hang, so every GDAL call runs in a worker
//! process (`tessera worker`) that does one job at a time. The pool is a `deadpool`
//! managed pool of [`WorkerProcess`]es: one checkout is one job.
//!
//! - **Start-up**: [`WorkerPool::warm_up`] spawns every worker and waits for their
//!   handshakes; health reports SERVING only after it returns.
//! - **A job**: check a worker out (this wait is cancellable: a caller that goes away
//!   starts nothing), then hand the exchange to a spawned task. From then on the job
//!   runs to its end even if the caller goes away, so the worker's channel never holds a
//!   half-read answer and the worker returns to the pool.
//! - **Deadline** = min(client deadline, read timeout). A job whose deadline has passed
//!   is never started; a worker that misses it is SIGKILLed (its whole process group),
//!   dropped, and replaced in the background; the caller gets
//!   [`PoolError::DeadlineExceeded`].
//! - **Crash**: a worker that dies mid-job is dropped and replaced, its exit status and
//!   stderr tail are logged by its reaper, and the job is retried once on another worker
//!   (reads are idempotent).
//! - **Recycling**: a worker that has answered `max_jobs_per_worker` jobs retires after
//!   its job and is replaced in the background.
//! - **Replacement** spawns a spare worker that the pool's next `create` takes, so
//!   replacing never blocks a caller that could use an idle worker.
//! - **Shutdown**: [`WorkerPool::shutdown`] closes the pool (idle workers get SIGTERM and
//!   their stdin closed; busy ones when their job ends), then waits until every worker
//!   process has been reaped; stragglers are SIGKILLed after a grace.

mod process;
mod registry;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use deadpool::managed::{self, Object, RecycleError, RecycleResult};
pub use process::{ExchangeError, SpawnError, WorkerProcess, WorkerState};
pub use registry::Registry;
use tokio::time::Instant;

use crate::pb::worker::{WorkerRequest, WorkerResponse, worker_request::Job};

/// Default number of workers when `--workers` is not given: one per core, at least 2.
#[must_use]
pub fn default_worker_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
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
    /// Jobs after which a worker is replaced.
    pub max_jobs_per_worker: u64,
}

/// Why a job could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The deadline passed before or during the job.
    #[error("the read did not finish before its deadline")]
    DeadlineExceeded,
    /// No worker can be had: the pool is closed or workers cannot be spawned.
    #[error("no worker available: {0}")]
    Unavailable(String),
    /// The job killed two workers in a row.
    #[error("the read crashed two workers in a row")]
    Crashed,
    /// A worker broke the protocol.
    #[error("worker protocol fault: {0}")]
    Fault(String),
}

/// deadpool's view of how to make and check workers.
#[derive(Debug)]
pub struct WorkerManager {
    config: PoolConfig,
    registry: Registry,
    /// Workers spawned in the background to replace dead or retired ones.
    spares: Mutex<Vec<WorkerProcess>>,
}

impl managed::Manager for WorkerManager {
    type Type = WorkerProcess;
    type Error = SpawnError;

    async fn create(&self) -> Result<WorkerProcess, SpawnError> {
        let spare = self.spares.lock().ok().and_then(|mut s| s.pop());
        if let Some(w) = spare.filter(|w| w.state() == WorkerState::Idle) {
            return Ok(w);
        }
        WorkerProcess::spawn(
            &self.config.worker_exe,
            self.config.handshake_timeout,
            &self.registry,
        )
        .await
    }

    async fn recycle(
        &self,
        w: &mut WorkerProcess,
        _: &managed::Metrics,
    ) -> RecycleResult<SpawnError> {
        match w.state() {
            WorkerState::Idle => Ok(()),
            state => Err(RecycleError::message(format!(
                "worker {} is {state:?}",
                w.pid()
            ))),
        }
    }
}

/// The pool of worker processes.
#[derive(Debug)]
pub struct WorkerPool {
    pool: managed::Pool<WorkerManager>,
    next_id: AtomicU64,
}

impl WorkerPool {
    /// Builds the pool; no worker is spawned until [`warm_up`](Self::warm_up).
    ///
    /// # Panics
    /// Never: a pool with a runtime and `max_size >= 1` always builds.
    #[must_use]
    pub fn new(config: PoolConfig) -> Arc<Self> {
        let size = config.size.max(1);
        let manager = WorkerManager {
            config,
            registry: Registry::default(),
            spares: Mutex::new(Vec::new()),
        };
        let pool = managed::Pool::builder(manager)
            .max_size(size)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .expect("a pool with a runtime and max_size >= 1 always builds");
        Arc::new(Self {
            pool,
            next_id: AtomicU64::new(1),
        })
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
                    return Err(SpawnError::Handshake {
                        pid: 0,
                        reason: e.to_string(),
                    });
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

    /// Runs one job, retrying once on another worker if the first one dies.
    pub async fn run(
        self: &Arc<Self>,
        job: Job,
        deadline: Instant,
    ) -> Result<WorkerResponse, PoolError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let now = Instant::now();
            if now >= deadline {
                return Err(PoolError::DeadlineExceeded);
            }
            let worker = match tokio::time::timeout_at(deadline, self.pool.get()).await {
                Err(_) => return Err(PoolError::DeadlineExceeded),
                Ok(Ok(w)) => w,
                Ok(Err(managed::PoolError::Closed)) => {
                    return Err(PoolError::Unavailable("the server is shutting down".into()));
                }
                Ok(Err(e)) => return Err(PoolError::Unavailable(e.to_string())),
            };
            let request = WorkerRequest {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                deadline_ms: deadline
                    .saturating_duration_since(Instant::now())
                    .as_millis() as u64,
                trace_context: std::collections::HashMap::default(),
                job: Some(job.clone()),
            };
            let this = Arc::clone(self);
            // Detached so that a caller going away cannot cut an exchange in half.
            let exchange =
                tokio::spawn(async move { this.exchange(worker, request, deadline).await });
            match exchange.await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(ExchangeError::Died)) if attempts < 2 => {
                    tracing::warn!("worker died mid-read; retrying on another worker");
                }
                Ok(Err(ExchangeError::Died)) => return Err(PoolError::Crashed),
                Ok(Err(ExchangeError::Timeout)) => return Err(PoolError::DeadlineExceeded),
                Ok(Err(ExchangeError::Fault(f))) => return Err(PoolError::Fault(f)),
                Err(join) => return Err(PoolError::Fault(format!("exchange task failed: {join}"))),
            }
        }
    }

    async fn exchange(
        self: Arc<Self>,
        mut worker: Object<WorkerManager>,
        request: WorkerRequest,
        deadline: Instant,
    ) -> Result<WorkerResponse, ExchangeError> {
        let result = worker.exchange(&request, deadline).await;
        let retire = match &result {
            Ok(_) => worker.jobs_done() >= self.pool.manager().config.max_jobs_per_worker,
            Err(_) => true,
        };
        if retire {
            let mut w = Object::take(worker);
            if matches!(result, Err(ExchangeError::Died)) {
                // Let the reaper log the exit status before the retry starts.
                w.wait_exited(Duration::from_millis(500)).await;
            } else if result.is_ok() {
                tracing::debug!(pid = w.pid(), jobs = w.jobs_done(), "recycling worker");
            }
            drop(w);
            self.replenish();
        }
        result
    }

    /// Spawns a spare worker in the background if the pool is short of one.
    fn replenish(self: &Arc<Self>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let manager = this.pool.manager();
            let short = || {
                let status = this.pool.status();
                let spares = manager.spares.lock().map_or(0, |s| s.len());
                !this.pool.is_closed() && status.size + spares < status.max_size
            };
            if !short() {
                return;
            }
            match WorkerProcess::spawn(
                &manager.config.worker_exe,
                manager.config.handshake_timeout,
                &manager.registry,
            )
            .await
            {
                Ok(w) if short() => {
                    if let Ok(mut s) = manager.spares.lock() {
                        s.push(w);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot spawn a replacement worker"),
            }
        });
    }

    /// Closes the pool and waits (at most `grace` plus a margin) until no worker process
    /// is left. Returns whether all are gone.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.pool.close();
        let manager = self.pool.manager();
        if let Ok(mut s) = manager.spares.lock() {
            s.clear();
        }
        manager
            .registry
            .wait_empty(grace + Duration::from_secs(3))
            .await
    }
}
