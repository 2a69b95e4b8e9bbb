//! One attempt at a job: a worker checked out within two bounds (the job's deadline, and
//! `max_worker_wait` so that overload sheds load instead of queueing without bound), the
//! deadline of the work itself (the read timeout counts from the exchange, not from the
//! wait), and the exchange run in a task of its own, so that a caller going away cannot
//! cut it in half. How a failed exchange is taken is `retry.rs`'s business.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use deadpool::managed;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::{
    PoolError, PoolStats, WorkerPool,
    retry::{Attempt, Faults},
};
use crate::pb::worker::{WorkerRequest, worker_request::Job};

/// Where a job's time went, over all its attempts; recorded on the caller's span.
#[derive(Debug, Default)]
pub(super) struct JobTimes {
    /// Waiting for a worker to be checked out.
    pub(super) wait: Duration,
    /// Exchanging frames with workers (the work itself included).
    pub(super) ipc: Duration,
    /// The worker of the last attempt.
    pub(super) pid: u32,
}

impl WorkerPool {
    /// Checks out a worker (preferring one that has `asset` open) and runs `job` on it.
    pub(super) async fn attempt(
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
            Ok(Err(managed::PoolError::Backend(e))) if self.pool.manager().crash_loop.is_healthy() => {
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
        let exchange_started = Instant::now();
        // The job is sent here, so that the worker starts on it at once: a task spawned
        // now runs only when this one yields, which can be after its caller has done
        // other work (compositing the read before). The frame fits in the idle worker's
        // pipe: the writing is never cut in half by the caller going away.
        let mut worker = worker;
        worker.send(&request, deadline).await;
        // The wait for the answer is detached so that a caller going away cannot cut an
        // exchange in half.
        let exchange =
            tokio::spawn(async move { this.exchange(worker, request, deadline).await }.in_current_span());
        let exchanged = exchange.await;
        times.ipc += exchange_started.elapsed();
        match exchanged {
            Ok(Ok(response)) => {
                self.affinity.remember(asset, times.pid);
                Attempt::Done(Ok(response))
            }
            Ok(Err((error, exit))) => {
                self.classify(error, exit, asset, faults, bounded_by_read_timeout, request_deadline)
            }
            Err(join) => Attempt::Done(Err(PoolError::Fault(format!("exchange task failed: {join}")))),
        }
    }
}
