//! What the origin client did: requests, bytes, retries, hedges and errors by kind, for
//! the metrics endpoint.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of every origin request since start.
#[derive(Debug, Default)]
pub struct OriginCounters {
    requests: AtomicU64,
    bytes: AtomicU64,
    retries: AtomicU64,
    hedges: AtomicU64,
    hedge_wins: AtomicU64,
    /// Failed attempts by label: an HTTP status ("404", "503") or "reset", "truncated",
    /// "timeout", "connect", "transport", "denied", "bad-range", "changed", "deadline".
    errors: Mutex<BTreeMap<String, u64>>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginCountersSnapshot {
    /// Requests sent (each attempt and each hedge).
    pub requests: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// Retries after a transient failure.
    pub retries: u64,
    /// Hedge requests sent.
    pub hedges: u64,
    /// Hedge requests whose answer was used.
    pub hedge_wins: u64,
    /// Failures by label, sorted by label.
    pub errors: BTreeMap<String, u64>,
}

impl OriginCounters {
    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> OriginCountersSnapshot {
        OriginCountersSnapshot {
            requests: self.requests.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            retries: self.retries.load(Relaxed),
            hedges: self.hedges.load(Relaxed),
            hedge_wins: self.hedge_wins.load(Relaxed),
            errors: self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        }
    }

    pub(super) fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    pub(super) fn received(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Relaxed);
    }

    pub(super) fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    pub(super) fn hedge(&self) {
        self.hedges.fetch_add(1, Relaxed);
    }

    pub(super) fn hedge_win(&self) {
        self.hedge_wins.fetch_add(1, Relaxed);
    }

    pub(super) fn error(&self, label: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *errors.entry(label.to_owned()).or_default() += 1;
    }
}
