//! Worker slots and spares: how deadpool makes and checks workers.
//!
//! The pool never runs more than `size` workers: a slot is reserved before a spawn and
//! released when a worker leaves service (deadpool's `detach`), a spawn fails or a spare
//! dies. Workers spawned in the background to replace others (`replenish.rs`) wait as
//! spares, and the pool's next `create` takes one before it spawns anything.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use deadpool::managed::{self, RecycleError, RecycleResult};

use super::{
    PoolConfig, PoolStats, Registry, SpawnError, WorkerProcess, WorkerState, crash_loop::CrashLoop,
    recycle::job_budget,
};

/// deadpool's view of how to make and check workers: a handle on [`ManagerInner`],
/// shared so that a spawn can outlive the checkout that asked for it.
#[derive(Debug)]
pub struct WorkerManager {
    inner: Arc<ManagerInner>,
}

impl WorkerManager {
    /// A manager with no worker yet.
    pub(super) fn new(config: PoolConfig) -> Self {
        let crash_loop = CrashLoop::new(config.crash_loop_threshold, config.crash_loop_window);
        let inner = ManagerInner {
            config,
            registry: Registry::default(),
            stats: Arc::new(PoolStats::default()),
            spares: Mutex::new(Vec::new()),
            spare_ready: tokio::sync::Notify::new(),
            live: AtomicUsize::new(0),
            crash_loop,
            closed: AtomicBool::new(false),
        };
        Self { inner: Arc::new(inner) }
    }
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
    pub(super) config: PoolConfig,
    pub(super) registry: Registry,
    pub(super) stats: Arc<PoolStats>,
    /// Workers spawned in the background to replace dead or retired ones.
    pub(super) spares: Mutex<Vec<WorkerProcess>>,
    /// Signalled when a spare is added.
    spare_ready: tokio::sync::Notify,
    /// Worker slots in use: workers in the pool or spare, plus spawns in progress. A slot
    /// is reserved before a spawn and released when a worker leaves service (deadpool's
    /// `detach`) or a spawn fails, so the pool never runs more than `size` workers.
    pub(super) live: AtomicUsize,
    /// Failed spawns and crashes, and the health they decide.
    pub(super) crash_loop: CrashLoop,
    /// Set at shutdown: no more spares.
    pub(super) closed: AtomicBool,
}

impl ManagerInner {
    /// Reserves a worker slot if one is free.
    pub(super) fn reserve(&self) -> bool {
        self.live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.config.size).then_some(n + 1))
            .is_ok()
    }

    /// Gives a slot back.
    fn release(&self) {
        let _ = self.live.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Keeps a started worker for the next checkout (or lets it go if the pool closed).
    pub(super) fn add_spare(&self, worker: WorkerProcess) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut s) = self.spares.lock() {
            s.push(worker);
        }
        self.spare_ready.notify_one();
    }

    /// Lets go of spares that died while they waited (killed from outside), freeing
    /// their slots: otherwise a dead spare holds its slot until a checkout finds no idle
    /// worker and looks for a spare, and the pool runs a worker short until then.
    pub(super) fn prune_spares(&self) {
        let Ok(mut spares) = self.spares.lock() else { return };
        let before = spares.len();
        spares.retain(|w| w.state() == WorkerState::Idle);
        for _ in spares.len()..before {
            self.release();
        }
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
    pub(super) async fn spawn(&self) -> Result<WorkerProcess, SpawnError> {
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
                    self.crash_loop.record_failure();
                }
                Err(e)
            }
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
