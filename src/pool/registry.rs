//! The set of worker processes that exist (spawned and not yet reaped), whatever the
//! pool thinks of them. Shutdown waits on it so no worker outlives the front.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Pids of live worker processes.
#[derive(Debug, Clone, Default)]
pub struct Registry(Arc<Mutex<BTreeSet<u32>>>);

impl Registry {
    /// Records a new process.
    pub fn insert(&self, pid: u32) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(pid);
        }
    }

    /// Forgets a reaped process.
    pub fn remove(&self, pid: u32) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(&pid);
        }
    }

    /// The live pids.
    #[must_use]
    pub fn pids(&self) -> Vec<u32> {
        self.0.lock().map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    /// Waits until every process has been reaped, at most `limit`.
    pub async fn wait_empty(&self, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < until {
            if self.pids().is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.pids().is_empty()
    }
}
