//! One attempt at a job: a worker checked out within two bounds (the job's deadline, and
//! `max_worker_wait` so that overload sheds load instead of queueing without bound), or
//! the job queued behind a busy worker's read (`pipeline.rs`); the deadline of the work
//! itself (the read timeout counts from the job's start, not from the wait), and the
//! exchange run in a task of its own, so that a caller going away cannot cut it in half.
//! How a failed exchange is taken is `retry.rs`'s business.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use deadpool::managed;
use tokio::{
    sync::oneshot,
    time::{Instant, error::Elapsed},
};
use tracing::Instrument as _;

use super::{
    PoolError, PoolStats, WorkerPool,
    pipeline::{self, Delivered, InFlight, OfferGuard, Queued},
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

/// The time `job` may take on its worker: the read timeout, once per read of a whole
/// tile.
fn read_timeout(per_read: Duration, job: &Job) -> Duration {
    match job {
        Job::Tile(t) => per_read.saturating_mul(u32::try_from(t.reads.len()).unwrap_or(u32::MAX).max(1)),
        _ => per_read,
    }
}

/// A worker for a job, or the answer of a busy worker that queued it (pipelining).
// Lives for one attempt on the stack; boxing the worker would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Checkout {
    /// deadpool's checkout, bounded by the wait.
    Worker(
        Result<Result<managed::Object<super::WorkerManager>, managed::PoolError<super::SpawnError>>, Elapsed>,
    ),
    /// Queued behind another job: its start and its answer come here.
    Queued(Queued),
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
        let mut checkout = self.checkout(job, deadline, wait_until).await;
        if let Checkout::Queued(queued) = &mut checkout {
            // Until the job before it is answered, this one still waits for a worker.
            // (A sender gone without a word: the worker ended, the answer says so.)
            if let Err(elapsed) = tokio::time::timeout_at(deadline.min(wait_until), &mut queued.started).await
            {
                checkout = Checkout::Worker(Err(elapsed));
            }
        }
        times.wait += checkout_started.elapsed();
        let worker = match checkout {
            Checkout::Queued(queued) => {
                let exchange_started = Instant::now();
                let delivered = queued.answer.await;
                times.ipc += exchange_started.elapsed();
                return self.settle(delivered, asset, faults, times);
            }
            Checkout::Worker(Err(_)) if deadline <= wait_until => {
                return Attempt::Done(Err(PoolError::DeadlineExceeded));
            }
            Checkout::Worker(Err(_)) => {
                PoolStats::bump(&self.stats().wait_rejections);
                return Attempt::Done(Err(PoolError::Overloaded(wait)));
            }
            Checkout::Worker(Ok(Ok(w))) => w,
            Checkout::Worker(Ok(Err(managed::PoolError::Closed))) => {
                return Attempt::Done(Err(PoolError::Unavailable("the server is shutting down".into())));
            }
            // A spawn failed while the pool is healthy (a worker killed as it started):
            // try again for another worker, within the deadline.
            Checkout::Worker(Ok(Err(managed::PoolError::Backend(e))))
                if self.pool.manager().crash_loop.is_healthy() =>
            {
                tracing::warn!(error = %e, "worker spawn failed during checkout; trying again");
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Attempt::Checkout;
            }
            Checkout::Worker(Ok(Err(e))) => return Attempt::Done(Err(PoolError::Unavailable(e.to_string()))),
        };
        let worker = self.prefer(worker, asset).await;
        // The read timeout bounds the work, not the wait for a worker.
        let (reply, answer) = oneshot::channel();
        let head = InFlight::starting(
            self.request(job),
            deadline,
            read_timeout(self.config().read_timeout, job),
            reply,
        );
        PoolStats::bump(&self.stats().jobs_started);
        times.pid = worker.pid();
        let this = Arc::clone(self);
        let exchange_started = Instant::now();
        // The job is sent here, so that the worker starts on it at once: a task spawned
        // now runs only when this one yields, which can be after its caller has done
        // other work (compositing the read before). The frame fits in the idle worker's
        // pipe: the writing is never cut in half by the caller going away.
        let mut worker = worker;
        worker.send(&head.request, head.deadline).await;
        // The wait for the answer is detached so that a caller going away cannot cut an
        // exchange in half; the task goes on with the jobs queued behind this one.
        tokio::spawn(async move { this.serve_jobs(worker, head).await }.in_current_span());
        let delivered = answer.await;
        times.ipc += exchange_started.elapsed();
        self.settle(delivered, asset, faults, times)
    }

    /// The request of `job`, in slot 0 of the reply region (a job queued behind it gets
    /// the other slot when it is written). Its deadline stays in the front
    /// ([`InFlight::starting`]), which counts the read timeout from the job's start.
    fn request(&self, job: &Job) -> WorkerRequest {
        WorkerRequest {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            trace_context: crate::telemetry::inject(&tracing::Span::current()),
            job: Some(job.clone()),
            reply_slot: 0,
        }
    }

    /// A worker from deadpool within `deadline` and `wait_until`; for a local read when
    /// no worker is idle, also offered to busy workers (the first of the two wins).
    async fn checkout(&self, job: &Job, deadline: Instant, wait_until: Instant) -> Checkout {
        let until = deadline.min(wait_until);
        if !pipeline::pipelinable(Some(job)) || self.pool.status().available > 0 {
            // Counted while it waits: no busy worker takes an offer made after it.
            let _other = self.waiting.other();
            return Checkout::Worker(tokio::time::timeout_at(until, self.pool.get()).await);
        }
        let (offer, queued) = self.waiting.offer(self.request(job), deadline);
        // Taken back if this caller stops waiting, unless a worker has it.
        let offer = OfferGuard(offer);
        let got = tokio::time::timeout_at(until, async {
            tokio::select! {
                checkout = self.pool.get() => Some(checkout),
                () = offer.0.taken() => None,
            }
        })
        .await;
        match got {
            Ok(Some(checkout)) if offer.0.withdraw() => Checkout::Worker(Ok(checkout)),
            Err(elapsed) if offer.0.withdraw() => Checkout::Worker(Err(elapsed)),
            // Taken by a busy worker (meanwhile, if a worker was checked out too: that
            // one goes back).
            _ => Checkout::Queued(queued),
        }
    }

    /// What a job's answer, as its exchange task delivered it, means for the attempt.
    fn settle(
        &self,
        delivered: Result<Delivered, oneshot::error::RecvError>,
        asset: &str,
        faults: &mut Faults,
        times: &mut JobTimes,
    ) -> Attempt {
        let Ok(delivered) = delivered else {
            return Attempt::Done(Err(PoolError::Fault("exchange task failed".into())));
        };
        times.pid = delivered.pid;
        match delivered.result {
            Ok(response) => {
                self.affinity.remember(asset, delivered.pid);
                Attempt::Done(Ok(response))
            }
            Err((error, exit)) => self.classify(
                error,
                exit,
                asset,
                faults,
                delivered.bounded_by_read_timeout,
                delivered.request_deadline,
            ),
        }
    }
}
