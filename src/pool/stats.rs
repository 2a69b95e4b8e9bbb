//! Counters of what the pool has done, for the metrics endpoint, logs and tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters (and two gauges) of the pool's life.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Worker processes spawned (handshake or not).
    pub spawns: AtomicU64,
    /// Spawns that failed (exec error, no valid hello).
    pub spawn_failures: AtomicU64,
    /// Workers that died on their own mid-job (signal or exit), or were killed from outside.
    pub crashes: AtomicU64,
    /// Workers the pool killed: missed deadline, protocol fault, failed ping.
    pub kills: AtomicU64,
    /// Workers retired after `max_jobs`.
    pub recycles_max_jobs: AtomicU64,
    /// Workers retired for resident memory over the cap.
    pub recycles_rss: AtomicU64,
    /// Jobs sent to a worker.
    pub jobs_started: AtomicU64,
    /// Tiles read, selected and encoded by one worker in one job.
    pub whole_tiles: AtomicU64,
    /// Whole-tile jobs that failed, their tile run again read by read.
    pub whole_tile_fallbacks: AtomicU64,
    /// Jobs retried after a worker died.
    pub retries: AtomicU64,
    /// Assets put in quarantine.
    pub quarantines: AtomicU64,
    /// Reads refused because their asset is quarantined.
    pub quarantine_rejections: AtomicU64,
    /// Jobs refused because no worker became free within the wait bound.
    pub wait_rejections: AtomicU64,
    /// Idle-worker pings sent.
    pub pings: AtomicU64,
    /// Jobs sent to a worker that already had their asset open (affinity).
    pub affinity_hits: AtomicU64,
    /// Jobs queued in a busy worker's pipe behind the read it was doing (pipelining;
    /// also counted in `jobs_started`).
    pub pipelined: AtomicU64,
    /// Jobs queued that way and withdrawn before they started, their caller gone: the
    /// worker answered them unrun.
    pub withdrawn: AtomicU64,
    /// Reads the worker answered unrun: the tile's earlier reads had left no pixel for
    /// them (`ReadRequest.tile`).
    pub covered: AtomicU64,
}

impl PoolStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as `(name, help, value)`, in Prometheus naming.
    #[must_use]
    pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("tessera_worker_spawns_total", "Worker processes spawned.", get(&self.spawns)),
            ("tessera_worker_spawn_failures_total", "Worker spawns that failed.", get(&self.spawn_failures)),
            ("tessera_worker_crashes_total", "Workers that died mid-job.", get(&self.crashes)),
            (
                "tessera_worker_kills_total",
                "Workers killed by the pool (deadline, fault, ping).",
                get(&self.kills),
            ),
            (
                "tessera_worker_recycles_max_jobs_total",
                "Workers retired after max jobs.",
                get(&self.recycles_max_jobs),
            ),
            (
                "tessera_worker_recycles_rss_total",
                "Workers retired for memory over the cap.",
                get(&self.recycles_rss),
            ),
            ("tessera_jobs_started_total", "Jobs sent to workers.", get(&self.jobs_started)),
            ("tessera_job_retries_total", "Jobs retried after a worker died.", get(&self.retries)),
            (
                "tessera_asset_quarantines_total",
                "Assets quarantined after crashing workers.",
                get(&self.quarantines),
            ),
            (
                "tessera_quarantine_rejections_total",
                "Reads refused for a quarantined asset.",
                get(&self.quarantine_rejections),
            ),
            (
                "tessera_worker_wait_rejections_total",
                "Jobs refused: no worker free within the wait bound.",
                get(&self.wait_rejections),
            ),
            ("tessera_worker_pings_total", "Idle-worker liveness pings.", get(&self.pings)),
            (
                "tessera_affinity_hits_total",
                "Jobs sent to a worker that had their asset open.",
                get(&self.affinity_hits),
            ),
            (
                "tessera_jobs_pipelined_total",
                "Jobs queued in a busy worker's pipe behind its read.",
                get(&self.pipelined),
            ),
            (
                "tessera_whole_tiles_total",
                "Tiles read, selected and encoded by one worker in one job (one worker, or as many tiles in flight as workers).",
                get(&self.whole_tiles),
            ),
            (
                "tessera_whole_tile_fallbacks_total",
                "Whole-tile jobs that failed, their tile run again read by read.",
                get(&self.whole_tile_fallbacks),
            ),
            (
                "tessera_jobs_withdrawn_total",
                "Jobs queued in a worker's pipe and withdrawn before they started, their caller gone.",
                get(&self.withdrawn),
            ),
            (
                "tessera_reads_covered_total",
                "Reads answered unrun by their worker: the tile's earlier reads had left no pixel for them.",
                get(&self.covered),
            ),
        ]
    }
}
