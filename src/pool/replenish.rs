//! Replacement: a worker that leaves service (crashed, killed, retired) is replaced by a
//! spare spawned in the background, which the pool's next checkout takes
//! (`slots.rs`), so a replacement never blocks a caller that could use an idle worker.
//! A spare that dies while it waits (killed from outside) is replaced the same way, at
//! the next liveness tick.
//! Spawns that fail back off exponentially, with jitter (`crate::backoff`); once every
//! slot holds a live worker again, a crash loop ends (`crash_loop.rs`).

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use super::{SpawnError, WorkerPool};

impl WorkerPool {
    /// Spawns spare workers in the background while worker slots are free, backing off
    /// (exponentially, with jitter) while spawns fail.
    pub(super) fn replenish(self: &Arc<Self>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let manager = this.pool.manager();
            // A spare that died waiting frees its slot for a new one here (every
            // liveness tick), not only at the next checkout that wants a spare.
            manager.prune_spares();
            let backoff = || crate::backoff::delays(Duration::from_millis(50), Duration::from_secs(10));
            let mut delays = backoff();
            while !this.pool.is_closed() && manager.reserve() {
                match manager.spawn().await {
                    Ok(w) => {
                        manager.add_spare(w);
                        delays = backoff();
                        this.mark_healthy_if_whole();
                    }
                    // Killed from outside while starting: nothing wrong with spawning.
                    Err(SpawnError::Killed { pid }) => {
                        tracing::warn!(pid, "replacement worker killed while starting; spawning another");
                    }
                    Err(e) => {
                        let pause = delays.next().unwrap_or(Duration::from_secs(10));
                        tracing::error!(error = %e, retry_in = ?pause, "cannot spawn a replacement worker");
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        });
    }

    /// Clears the crash-loop state once every slot has a live worker again.
    fn mark_healthy_if_whole(&self) {
        let manager = self.pool.manager();
        if manager.live.load(Ordering::SeqCst) >= manager.config.size {
            manager.crash_loop.end();
        }
    }
}
