//! How many client connections the front can hold open at once (`--max-connections`):
//! the open-file limit (soft `RLIMIT_NOFILE`) at start, minus a reserve for everything
//! else in the process that needs a file descriptor.
//!
//! Every client connection is a descriptor. When the process runs out of them, not only
//! the gRPC `accept` fails: the admin endpoint cannot accept a scrape, and a crashed or
//! retired worker cannot be replaced (its stdio pipes are descriptors too), so the pool
//! counts failed spawns, crash-loops and turns health NOT_SERVING. The listener therefore
//! stops at a limit below that line and closes further connections right after accept.
//!
//! The reserve, counted generously (running out costs far more than a few hundred idle
//! descriptors):
//! - per worker, [`FDS_PER_WORKER`]: the front's ends of its stdin, stdout and stderr
//!   pipes and tokio's pidfd for its exit (4); the same again plus both ends of each new
//!   pipe and std's exec-status pipe while its replacement starts (8); the front's
//!   connections to origins for the remote reads it makes on the worker's behalf (8);
//!   the memfd of its reply region and its `/proc/PID/statm`, with its replacement's (4);
//! - [`FDS_RESERVED`] for the rest: stdio, the runtime (epoll, event and signal
//!   descriptors), the gRPC and admin listeners, concurrent admin scrapes, the
//!   OTLP exporter's connections and DNS lookups, and the files the front opens (the
//!   config, TLS material, layers' MosaicJSON files).
//!
//! A limit of "unlimited" counts as [`MAX_MAX_CONNECTIONS`] plus the reserve.

use crate::config::connections::MAX_MAX_CONNECTIONS;

/// Descriptors the front needs for one worker (see the module docs).
pub const FDS_PER_WORKER: u64 = 24;
/// Descriptors the front needs besides workers and client connections (see the module docs).
pub const FDS_RESERVED: u64 = 128;

/// The open-file limit and what is reserved of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft RLIMIT_NOFILE.
    pub open_files: u64,
    /// Descriptors kept for workers and everything else but client connections.
    pub reserved: u64,
}

impl FdBudget {
    /// The budget of this process for `workers` workers.
    pub fn of_process(workers: usize) -> Result<Self, String> {
        let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_err(|e| format!("cannot read the open-file limit (RLIMIT_NOFILE): {e}"))?;
        Ok(Self::new(soft, workers))
    }

    /// The budget under an open-file limit of `open_files` for `workers` workers.
    #[must_use]
    pub fn new(open_files: u64, workers: usize) -> Self {
        let reserved = FDS_RESERVED + FDS_PER_WORKER * workers as u64;
        let ceiling = MAX_MAX_CONNECTIONS as u64 + reserved;
        Self { open_files: open_files.min(ceiling), reserved }
    }

    /// Descriptors left for client connections (0 when the reserve takes them all).
    #[must_use]
    pub fn for_connections(&self) -> usize {
        usize::try_from(self.open_files.saturating_sub(self.reserved)).unwrap_or(MAX_MAX_CONNECTIONS)
    }
}

/// `--max-connections`: the flag's value when given, else what the budget leaves. An
/// error when nothing is left, naming the numbers and what to change.
pub fn max_connections(flag: Option<usize>, budget: &FdBudget, workers: usize) -> Result<usize, String> {
    match flag {
        Some(n) => Ok(n),
        None if budget.for_connections() == 0 => Err(format!(
            "the open-file limit (RLIMIT_NOFILE={}) leaves no file descriptor for client \
             connections: {} are reserved for {workers} workers ({FDS_PER_WORKER} each), the \
             admin endpoint, the OTLP exporter and files; raise the limit (ulimit -n, \
             LimitNOFILE=), lower --workers, or set --max-connections",
            budget.open_files, budget.reserved
        )),
        None => Ok(budget.for_connections()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_limit_minus_the_reserve_for_the_workers() {
        let budget = FdBudget::new(20_000, 16);
        assert_eq!(budget.reserved, 128 + 16 * 24);
        assert_eq!(max_connections(None, &budget, 16), Ok(20_000 - 512));
        assert_eq!(max_connections(Some(8), &budget, 16), Ok(8));
    }

    #[test]
    fn an_unlimited_open_file_limit_gives_the_largest_limit() {
        let budget = FdBudget::new(u64::MAX, 4);
        assert_eq!(max_connections(None, &budget, 4), Ok(MAX_MAX_CONNECTIONS));
    }

    #[test]
    fn a_limit_the_reserve_takes_whole_is_refused_with_the_numbers() {
        let budget = FdBudget::new(256, 8);
        let e = max_connections(None, &budget, 8).unwrap_err();
        assert!(e.starts_with("the open-file limit (RLIMIT_NOFILE=256) leaves no file descriptor"), "{e}");
        assert!(e.contains("320 are reserved for 8 workers (24 each)"), "{e}");
        // An explicit limit is the operator's call.
        assert_eq!(max_connections(Some(10), &budget, 8), Ok(10));
    }
}
