//! Pipelining: a local read queued in a busy worker's pipe, behind the local read it is
//! doing, when no worker is idle.
//!
//! Why. One tile's reads often outnumber the idle workers (one worker, or a busy pool).
//! Without a queue in the worker, each of them waits for the one before it to answer,
//! and the worker sits idle between the two: the front has to wake, take the answer
//! and send the next job, and the worker has to wake again. On a virtual machine a core
//! with nothing to do halts, and each of those wake-ups then costs 20 to 190 us
//! (measured on the 2-core VM of BENCHMARKS.md (i)): between two reads the worker was
//! idle for 80 us when the machine was quiet and 400 us when it was not. A job already
//! in its pipe starts the moment the last one is answered, and the front takes that
//! answer while the worker reads on.
//!
//! How.
//! - A caller whose job is a local read and who finds no idle worker offers its job
//!   here ([`Waiting::offer`]) while it waits for a worker as usual: the first of the
//!   two wins. A caller that leaves, or gets a worker first, takes its offer back.
//! - The task that runs a worker's exchange (`WorkerPool::serve_jobs`), while the job in
//!   flight is a local read, takes an offer when there is one, no worker is idle and
//!   every caller waiting for a worker has offered its job ([`Waiting::adopt`]; callers
//!   that cannot offer are counted, [`Waiting::other`]), and
//!   writes it into the worker's pipe behind the job in flight, at most one: two jobs in
//!   flight at most, one running and one waiting. A caller that cannot offer (an info
//!   job, a remote read) so waits no longer than before: the next worker given back is
//!   its, in deadpool's order. The waiting
//!   job's answer goes in the other slot of the reply region (`ipc/region.rs`), so the
//!   worker never writes over the answer the front is still copying out.
//! - Only local reads on both sides: a remote read asks the front for bytes mid-job, and
//!   its questions must not meet a job waiting in the pipe.
//! - A queued job starts when the one before it is answered: its deadline (the caller's,
//!   or the read timeout from that moment) counts from then. Until it starts, its caller
//!   is still waiting for a worker, within the same bounds (its deadline and
//!   `max_worker_wait`). A caller that goes before its job has started (it gave up
//!   waiting, or its tile was complete without it) has the job withdrawn: the exchange
//!   writes its id in the reply region, and the worker answers it unrun
//!   (`ErrorKind::Withdrawn`) when it takes it from the pipe. If the job before it ends
//!   the worker (a crash, a kill at a deadline), the queued job never ran: it goes back
//!   to its caller as [`ExchangeError::NotRun`], which tries again for a worker without
//!   counting an attempt or blaming its asset.
//! - A worker within two jobs of its job budget, or over its memory cap, takes no offer,
//!   so it retires on time.
//! - The worker takes a queued job as soon as it has answered the one before, mostly
//!   before the front has seen that answer: a read of a tile the answer completed is
//!   answered unrun by the worker itself (`ERROR_KIND_COVERED`, `worker/coverage.rs`),
//!   since a withdrawal comes too late.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{Notify, oneshot},
    time::Instant,
};

use super::{ExchangeError, ExitInfo};
use crate::pb::worker::{WorkerRequest, WorkerResponse, worker_request::Job};

/// Whether `job` may wait in a worker's pipe, or have one wait behind it: a read of a
/// local file (one that never asks the front for bytes).
#[must_use]
pub(super) fn pipelinable(job: Option<&Job>) -> bool {
    matches!(job, Some(Job::Read(read)) if !crate::ipc::is_remote(&read.path))
}

/// How a job ended, as its exchange task tells its caller.
#[derive(Debug)]
pub(super) struct Delivered {
    pub(super) result: Result<WorkerResponse, (ExchangeError, Option<ExitInfo>)>,
    /// The worker that ran it.
    pub(super) pid: u32,
    /// Whether its deadline was the read timeout's rather than the caller's.
    pub(super) bounded_by_read_timeout: bool,
    /// The caller's deadline.
    pub(super) request_deadline: Instant,
}

/// A job in flight on a worker, and where its answer goes.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) request: WorkerRequest,
    /// The deadline of the work: the caller's, or the read timeout from its start.
    pub(super) deadline: Instant,
    pub(super) request_deadline: Instant,
    pub(super) bounded_by_read_timeout: bool,
    pub(super) reply: oneshot::Sender<Delivered>,
}

/// An offer a worker took: the caller's deadline, where the answer goes, and the
/// signal that the job has started (the job before it answered).
#[derive(Debug)]
pub(super) struct Taken {
    pub(super) request_deadline: Instant,
    pub(super) reply: oneshot::Sender<Delivered>,
    pub(super) started: oneshot::Sender<()>,
}

impl Taken {
    /// The job, starting now (the job before it was answered); its caller hears so.
    pub(super) fn start(self, request: WorkerRequest, read_timeout: Duration) -> InFlight {
        let _ = self.started.send(());
        // A caller gone (its job withdrawn, or started before the withdrawal reached the
        // worker) no longer bounds the job: the worker is not killed at a deadline
        // nobody waits for, only at the read timeout.
        let request_deadline =
            if self.reply.is_closed() { Instant::now() + read_timeout } else { self.request_deadline };
        InFlight::starting(request, request_deadline, read_timeout, self.reply)
    }
}

impl super::process::QueuedCaller for Taken {
    /// The caller dropped its [`Queued`]: it gave up waiting (its deadline or
    /// `max_worker_wait`), or its tile needs the read no more.
    fn gone(&mut self) -> impl Future<Output = ()> + Send + '_ {
        self.reply.closed()
    }
}

/// What a caller whose offer was taken waits on: its job's start (the wait for a worker
/// is bounded until then), then its answer.
#[derive(Debug)]
pub(super) struct Queued {
    pub(super) started: oneshot::Receiver<()>,
    pub(super) answer: oneshot::Receiver<Delivered>,
}

impl InFlight {
    /// A job starting now, for a caller whose deadline is `request_deadline`.
    pub(super) fn starting(
        request: WorkerRequest,
        request_deadline: Instant,
        read_timeout: Duration,
        reply: oneshot::Sender<Delivered>,
    ) -> Self {
        let read_deadline = Instant::now() + read_timeout;
        Self {
            request,
            deadline: request_deadline.min(read_deadline),
            request_deadline,
            // A kill at the read timeout (not at the caller's shorter deadline) says
            // something about the asset.
            bounded_by_read_timeout: read_deadline < request_deadline,
            reply,
        }
    }

    /// Tells the caller (if it still listens).
    pub(super) fn deliver(self, result: Result<WorkerResponse, (ExchangeError, Option<ExitInfo>)>, pid: u32) {
        let _ = self.reply.send(Delivered {
            result,
            pid,
            bounded_by_read_timeout: self.bounded_by_read_timeout,
            request_deadline: self.request_deadline,
        });
    }
}

const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

/// A caller's job offered to busy workers.
#[derive(Debug)]
pub(super) struct Offer {
    state: AtomicU8,
    request: Mutex<Option<(WorkerRequest, Taken)>>,
    taken: Notify,
}

impl Offer {
    /// Takes the offer back unless a worker has taken it; true if it was taken back.
    pub(super) fn withdraw(&self) -> bool {
        self.state.compare_exchange(WAITING, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Resolves once a worker has taken the offer.
    pub(super) async fn taken(&self) {
        self.taken.notified().await;
    }
}

/// Takes an offer back when its caller stops waiting for it (unless a worker has it).
pub(super) struct OfferGuard(pub(super) Arc<Offer>);

impl Drop for OfferGuard {
    fn drop(&mut self) {
        self.0.withdraw();
    }
}

/// The offers of callers waiting for a worker.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    offers: Mutex<VecDeque<Arc<Offer>>>,
    /// Signalled when an offer arrives, or when no caller that did not offer is left
    /// waiting.
    arrived: Notify,
    /// Callers waiting for a worker without an offer (an info job, a remote read): while
    /// there is one, no offer is taken, so that it keeps its turn.
    others: AtomicUsize,
}

/// A caller waiting for a worker without an offer, counted while it lives.
pub(super) struct OtherGuard<'a>(&'a Waiting);

impl Drop for OtherGuard<'_> {
    fn drop(&mut self) {
        if self.0.others.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.arrived.notify_waiters();
        }
    }
}

impl Waiting {
    /// Offers `request` (for a caller whose deadline is `request_deadline`) to busy
    /// workers: the offer, and where its answer will come if a worker takes it.
    pub(super) fn offer(&self, request: WorkerRequest, request_deadline: Instant) -> (Arc<Offer>, Queued) {
        let (reply, answer) = oneshot::channel();
        let (started_tx, started) = oneshot::channel();
        let taken = Taken { request_deadline, reply, started: started_tx };
        let offer = Arc::new(Offer {
            state: AtomicU8::new(WAITING),
            request: Mutex::new(Some((request, taken))),
            taken: Notify::new(),
        });
        if let Ok(mut offers) = self.offers.lock() {
            // Offers taken back (or taken) leave the queue here, before the new one joins it.
            offers.retain(|o| o.state.load(Ordering::Acquire) == WAITING);
            offers.push_back(Arc::clone(&offer));
        }
        self.arrived.notify_waiters();
        (offer, Queued { started, answer })
    }

    /// Counts a caller waiting for a worker without an offer, until the guard is dropped.
    pub(super) fn other(&self) -> OtherGuard<'_> {
        self.others.fetch_add(1, Ordering::AcqRel);
        OtherGuard(self)
    }

    /// Whether a caller without an offer is waiting for a worker.
    pub(super) fn others_waiting(&self) -> bool {
        self.others.load(Ordering::Acquire) > 0
    }

    /// Waits for an offer while `may_take` holds when one arrives, and takes it: the
    /// request (ready to be queued behind the job in flight), its caller's deadline and
    /// where its answer goes.
    pub(super) async fn adopt(&self, may_take: impl Fn() -> bool) -> Option<(WorkerRequest, Taken)> {
        loop {
            let arrived = self.arrived.notified();
            let mut arrived = std::pin::pin!(arrived);
            // Registered before looking, so an offer made meanwhile is not missed.
            arrived.as_mut().enable();
            if may_take()
                && let Some(taken) = self.take()
            {
                return Some(taken);
            }
            arrived.await;
        }
    }

    fn take(&self) -> Option<(WorkerRequest, Taken)> {
        let mut offers = self.offers.lock().ok()?;
        while let Some(offer) = offers.pop_front() {
            if offer.state.compare_exchange(WAITING, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_err() {
                continue;
            }
            let taken = offer.request.lock().ok().and_then(|mut r| r.take());
            offer.taken.notify_one();
            if taken.is_some() {
                return taken;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &str) -> Job {
        Job::Read(crate::pb::worker::ReadRequest { path: path.to_owned(), ..Default::default() })
    }

    #[test]
    fn only_local_reads_are_pipelined() {
        assert!(pipelinable(Some(&read("/data/a.tif"))));
        assert!(!pipelinable(Some(&read(&format!("{}https/example.test/a.tif", crate::ipc::REMOTE_PREFIX)))));
        assert!(!pipelinable(Some(&Job::Info(crate::pb::worker::InfoRequest::default()))));
        assert!(!pipelinable(Some(&Job::Ping(crate::pb::worker::PingRequest::default()))));
        assert!(!pipelinable(None));
    }

    #[tokio::test]
    async fn an_offer_is_taken_once_and_not_after_it_is_withdrawn() {
        let waiting = Waiting::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let (first, _rx1) = waiting.offer(WorkerRequest { id: 1, ..Default::default() }, deadline);
        let (second, _rx2) = waiting.offer(WorkerRequest { id: 2, ..Default::default() }, deadline);
        assert!(first.withdraw(), "nobody took it yet");
        assert!(!first.withdraw(), "withdrawn once");
        // Not while the worker may not take one.
        let none = tokio::time::timeout(Duration::from_millis(20), waiting.adopt(|| false)).await;
        assert!(none.is_err());
        let (request, taken) = waiting.adopt(|| true).await.unwrap();
        assert_eq!((request.id, taken.request_deadline), (2, deadline), "the withdrawn offer is skipped");
        assert!(!second.withdraw(), "a taken offer cannot be taken back");
        tokio::time::timeout(Duration::from_secs(1), second.taken())
            .await
            .expect("its caller hears it was taken");
        let later = tokio::time::timeout(Duration::from_millis(20), waiting.adopt(|| true)).await;
        assert!(later.is_err(), "nothing left to take");
    }

    #[tokio::test]
    async fn no_offer_is_taken_while_a_caller_without_one_waits() {
        let waiting = Arc::new(Waiting::default());
        let other = waiting.other();
        assert!(waiting.others_waiting());
        let (_offer, _queued) = waiting.offer(WorkerRequest { id: 3, ..Default::default() }, Instant::now());
        let adopter = tokio::spawn({
            let waiting = Arc::clone(&waiting);
            async move { waiting.adopt(|| !waiting.others_waiting()).await.map(|(r, _)| r.id) }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!adopter.is_finished(), "taken while another caller waited");
        // That caller got its worker: the waiting worker looks again.
        drop(other);
        let taken = tokio::time::timeout(Duration::from_secs(1), adopter).await.unwrap().unwrap();
        assert_eq!(taken, Some(3));
    }

    #[tokio::test]
    async fn a_worker_waiting_for_an_offer_takes_the_next_one_made() {
        let waiting = Arc::new(Waiting::default());
        let adopter = tokio::spawn({
            let waiting = Arc::clone(&waiting);
            async move { waiting.adopt(|| true).await.map(|(r, _)| r.id) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_offer, _rx) = waiting.offer(WorkerRequest { id: 7, ..Default::default() }, Instant::now());
        let taken = tokio::time::timeout(Duration::from_secs(1), adopter).await.unwrap().unwrap();
        assert_eq!(taken, Some(7));
    }
}
