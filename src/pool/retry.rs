//! Retry classification: what a failed exchange says, about the worker or about the
//! asset, and whether the job runs again on another worker.
//!
//! - A worker that died by its own fault (SIGSEGV, SIGABRT, a non-zero exit...) counts
//!   against the asset (towards its quarantine) and against the pool (towards a crash
//!   loop); the job is retried once.
//! - A worker SIGKILLed from outside says nothing about the asset: the job is retried
//!   while its deadline allows, up to [`MAX_ATTEMPTS`] times.
//! - A worker killed at the read timeout, when the caller can still wait, is more likely
//!   stuck than the asset: the job is retried once, unless that kill quarantined the
//!   asset. A kill at the read timeout on a running worker counts against the asset; a
//!   kill at the caller's deadline, or of a worker stopped from outside, does not.
//! - A protocol fault fails the job.
//! - A whole-tile job (`TileJob`) whose worker crashed or ran past the read timeout is
//!   not retried and counts against no asset: the front runs the tile again read by
//!   read, where the asset at fault is found and counted as above.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use super::{ExchangeError, ExitInfo, PoolError, PoolStats, WorkerPool, attempt::JobTimes};
use crate::pb::worker::{WorkerResponse, worker_request::Job};

/// Most attempts of one job when workers keep being killed from outside.
/// (Killed from outside says nothing about the job, so a few more tries are cheap; the
/// job's deadline bounds them too.)
pub const MAX_ATTEMPTS: u32 = 8;

/// What went wrong in earlier attempts of a job.
#[derive(Debug, Default)]
pub(super) struct Faults {
    /// The job is a whole tile: its failures are no one asset's, and the front runs the
    /// tile again read by read instead of retrying it.
    whole: bool,
    /// Workers that died by their own fault.
    own: u32,
    /// Whether a worker already hung past the read timeout.
    timed_out: bool,
}

/// How an attempt at a job ended.
// Lives for one loop iteration on the stack; boxing the response would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Attempt {
    /// Settled: this is the job's outcome.
    Done(Result<WorkerResponse, PoolError>),
    /// The worker died: run the job again.
    Retry,
    /// No worker could be checked out yet: try again (does not count as an attempt).
    Checkout,
}

impl WorkerPool {
    /// Runs `job` until an attempt settles it, at most [`MAX_ATTEMPTS`] times.
    pub(super) async fn run_attempts(
        self: &Arc<Self>,
        job: &Job,
        asset: &str,
        deadline: Instant,
        times: &mut JobTimes,
        attempts: &mut u32,
    ) -> Result<WorkerResponse, PoolError> {
        let mut faults = Faults { whole: matches!(job, Job::Tile(_)), ..Faults::default() };
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

    /// Takes a failed exchange about `asset`: counts it where it belongs and says whether
    /// the job runs again. `bounded_by_read_timeout`: the worker's deadline was the read
    /// timeout's, not the caller's `request_deadline`.
    pub(super) fn classify(
        &self,
        error: ExchangeError,
        exit: Option<ExitInfo>,
        asset: &str,
        faults: &mut Faults,
        bounded_by_read_timeout: bool,
        request_deadline: Instant,
    ) -> Attempt {
        match error {
            ExchangeError::Died if faults.whole && !exit.is_some_and(|e| e.is_external_kill()) => {
                self.pool.manager().crash_loop.record_failure();
                Attempt::Done(Err(PoolError::Crashed(describe_exit(exit))))
            }
            ExchangeError::Timeout { .. } if faults.whole => {
                // Split, each read gets the read timeout and is blamed for its own.
                if Instant::now() + Duration::from_millis(50) < request_deadline {
                    Attempt::Done(Err(PoolError::Crashed(
                        "the whole-tile job ran past its read timeout".into(),
                    )))
                } else {
                    Attempt::Done(Err(PoolError::DeadlineExceeded))
                }
            }
            ExchangeError::Died => {
                let external = exit.is_some_and(|e| e.is_external_kill());
                if !external {
                    faults.own += 1;
                    self.pool.manager().crash_loop.record_failure();
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
            ExchangeError::Timeout { stopped } => {
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
            ExchangeError::Fault(f) => Attempt::Done(Err(PoolError::Fault(f))),
            // Queued behind a job that ended its worker: it never ran; another worker
            // takes it, and this try does not count.
            ExchangeError::NotRun => Attempt::Checkout,
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
