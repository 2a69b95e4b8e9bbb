//! The crash-loop detector: failed spawns and worker crashes are counted over a sliding
//! window; `crash_loop_threshold` of them within `crash_loop_window` mark the pool
//! unhealthy (health NOT_SERVING) until every worker slot holds a live worker again
//! (`replenish.rs` says when).

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::sync::watch;

/// Recent failures and the pool health they decide.
#[derive(Debug)]
pub(super) struct CrashLoop {
    /// Failures within `window` that mark the pool unhealthy.
    threshold: usize,
    /// Window for counting failures.
    window: Duration,
    /// Times of recent failed spawns and crashes.
    failures: Mutex<VecDeque<Instant>>,
    /// Whether the pool is healthy (no crash loop); health follows it.
    healthy: watch::Sender<bool>,
}

impl CrashLoop {
    /// A healthy pool with no failure yet.
    pub(super) fn new(threshold: usize, window: Duration) -> Self {
        Self { threshold, window, failures: Mutex::new(VecDeque::new()), healthy: watch::channel(true).0 }
    }

    /// Notes a failed spawn or a crash; too many within the window mark the pool unhealthy.
    pub(super) fn record_failure(&self) {
        let now = Instant::now();
        let Ok(mut failures) = self.failures.lock() else { return };
        failures.push_back(now);
        while failures.front().is_some_and(|t| now.duration_since(*t) > self.window) {
            failures.pop_front();
        }
        if failures.len() >= self.threshold && *self.healthy.borrow() {
            tracing::error!(
                failures = failures.len(),
                window = ?self.window,
                "workers keep failing: crash loop; health NOT_SERVING until the pool is whole again"
            );
            self.healthy.send_replace(false);
        }
    }

    /// Whether the pool is healthy (not in a crash loop).
    pub(super) fn is_healthy(&self) -> bool {
        *self.healthy.borrow()
    }

    /// Follows the pool's health.
    pub(super) fn subscribe(&self) -> watch::Receiver<bool> {
        self.healthy.subscribe()
    }

    /// Ends a crash loop, if there is one: the pool is whole again (every worker slot
    /// holds a live worker), so the failures are forgotten and the pool is healthy.
    pub(super) fn end(&self) {
        if !*self.healthy.borrow() {
            if let Ok(mut f) = self.failures.lock() {
                f.clear();
            }
            self.healthy.send_replace(true);
            tracing::info!("worker pool whole again; healthy");
        }
    }
}
