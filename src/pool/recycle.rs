//! Recycling: after every exchange (a job or a ping, or jobs queued one behind another)
//! the pool decides whether the worker goes back to the pool or retires. It retires when it crashed or was killed, when it
//! has done its job budget (`max_jobs_per_worker`, ±10% per worker so that workers
//! started together do not all retire together), or when its resident memory is over
//! `max_rss_bytes`. A retired worker leaves the pool at once and is replaced in the
//! background (`replenish.rs`).

use std::{sync::Arc, time::Duration};

use deadpool::managed::Object;
use rand::Rng;
use tokio::time::Instant;

use super::{
    ExchangeError, ExitInfo, PoolStats, WorkerManager, WorkerPool, WorkerProcess,
    pipeline::{self, InFlight},
};
use crate::pb::worker::{ErrorKind, WorkerRequest, WorkerResponse, worker_response::Result as R};

impl WorkerPool {
    /// Runs one exchange on `worker`, then retires the worker if it must go. A worker
    /// that died is waited for (briefly): how it exited comes back with the error.
    pub(super) async fn exchange(
        self: Arc<Self>,
        mut worker: Object<WorkerManager>,
        request: WorkerRequest,
        deadline: Instant,
    ) -> Result<WorkerResponse, (ExchangeError, Option<ExitInfo>)> {
        let result = worker.exchange(&request, deadline, self.config().ranges.as_deref()).await;
        let exit = self.after_exchange(worker, result.as_ref().err()).await;
        result.map_err(|e| (e, exit))
    }

    /// Runs `head` (already sent) on `worker`, and the jobs queued behind it one after
    /// another (see `pipeline.rs`): each answer goes to its caller as it comes. Then the
    /// worker goes back to the pool, or retires.
    pub(super) async fn serve_jobs(self: Arc<Self>, mut worker: Object<WorkerManager>, mut head: InFlight) {
        let ranges = self.config().ranges.clone();
        loop {
            // A worker within two jobs of its budget, or over its memory cap, takes none,
            // so it retires on time.
            let adopt = pipeline::pipelinable(head.request.job.as_ref())
                && worker.jobs_done().saturating_add(2) <= worker.job_limit()
                && self.over_rss(&worker).is_none();
            let next = async {
                if !adopt {
                    return std::future::pending().await;
                }
                // Only while no worker is idle (an idle one runs the job at once) and
                // every caller waiting for a worker has offered its job: one that has
                // not (an info job, a remote read) gets the next worker given back, in
                // its turn.
                let taken = self
                    .waiting
                    .adopt(|| self.pool.status().available == 0 && !self.waiting.others_waiting())
                    .await;
                if taken.is_some() {
                    PoolStats::bump(&self.stats().jobs_started);
                    PoolStats::bump(&self.stats().pipelined);
                }
                taken
            };
            let (result, queued) =
                worker.exchange_then(&head.request, head.deadline, ranges.as_deref(), next).await;
            let pid = worker.pid();
            let read_timeout = self.config().read_timeout;
            match result {
                Err(error) => {
                    let exit = self.after_exchange(worker, Some(&error)).await;
                    head.deliver(Err((error, exit)), pid);
                    if let Some((request, taken)) = queued {
                        taken.start(request, read_timeout).deliver(Err((ExchangeError::NotRun, None)), pid);
                    }
                    return;
                }
                Ok(response) => {
                    // Counted only when its caller has indeed gone: a worker that answers
                    // WITHDRAWN for a job whose caller waits is a worker failing a job.
                    if matches!(&response.result, Some(R::Error(e)) if e.kind == ErrorKind::Withdrawn as i32)
                        && head.reply.is_closed()
                    {
                        PoolStats::bump(&self.stats().withdrawn);
                    }
                    if matches!(&response.result, Some(R::Error(e)) if e.kind == ErrorKind::Covered as i32) {
                        PoolStats::bump(&self.stats().covered);
                    }
                    head.deliver(Ok(response), pid);
                }
            }
            match queued {
                Some((request, taken)) => head = taken.start(request, read_timeout),
                None => break,
            }
        }
        self.after_exchange(worker, None).await;
    }

    /// The worker's resident memory and the cap, if it is over `max_rss_bytes`.
    fn over_rss(&self, worker: &WorkerProcess) -> Option<(u64, u64)> {
        let cap = self.config().max_rss_bytes?;
        worker.rss_bytes().filter(|rss| *rss > cap).map(|rss| (rss, cap))
    }

    /// After an exchange that ended with `error` (or none): retires the worker if it
    /// must go, and says how it exited if it died.
    async fn after_exchange(
        self: &Arc<Self>,
        worker: Object<WorkerManager>,
        error: Option<&ExchangeError>,
    ) -> Option<ExitInfo> {
        let stats = self.stats();
        let retire = match error {
            None if worker.jobs_done() >= worker.job_limit() => {
                PoolStats::bump(&stats.recycles_max_jobs);
                tracing::debug!(
                    pid = worker.pid(),
                    jobs = worker.jobs_done(),
                    "recycling worker after its job budget"
                );
                true
            }
            None => match self.over_rss(&worker) {
                Some((rss, cap)) => {
                    PoolStats::bump(&stats.recycles_rss);
                    tracing::info!(pid = worker.pid(), rss, cap, "recycling worker over its memory cap");
                    true
                }
                None => false,
            },
            Some(ExchangeError::Died) => {
                PoolStats::bump(&stats.crashes);
                true
            }
            Some(_) => {
                PoolStats::bump(&stats.kills);
                true
            }
        };
        let mut exit = None;
        if retire {
            let mut w = Object::take(worker);
            if matches!(error, Some(ExchangeError::Died)) {
                // The reaper logs the exit; its status decides whether the asset is to blame.
                exit = w.wait_exited(Duration::from_millis(500)).await;
            }
            drop(w);
            self.replenish();
        }
        exit
    }
}

/// A worker's job budget: `base` ±10% (at least ±1), so workers started together do not
/// all retire together.
pub(super) fn job_budget(base: u64, rng: &mut impl Rng) -> u64 {
    let jitter = (base / 10).max(1);
    rng.random_range(base.saturating_sub(jitter).max(1)..=base.saturating_add(jitter))
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
}
