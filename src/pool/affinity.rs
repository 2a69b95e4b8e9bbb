//! Affinity: a job goes preferably to an idle worker that already has its asset open.
//! The pool remembers, for each asset, the last few workers that answered a job about
//! it; at checkout it swaps the worker it got for one of those if one is idle, and never
//! waits or spawns to do so, so affinity adds no queueing delay.

use std::{num::NonZeroUsize, sync::Mutex, time::Duration};

use deadpool::managed::{self, Object};

use super::{PoolStats, WorkerManager, WorkerPool};

/// Assets whose workers the pool remembers.
const AFFINITY_ASSETS: usize = 16_384;
/// Workers remembered per asset.
const AFFINITY_WORKERS: usize = 4;

/// Which workers have each asset open (most recent first).
#[derive(Debug)]
pub(super) struct Affinity(Mutex<lru::LruCache<String, Vec<u32>>>);

impl Default for Affinity {
    fn default() -> Self {
        Self(Mutex::new(lru::LruCache::new(NonZeroUsize::new(AFFINITY_ASSETS).expect("a non-zero constant"))))
    }
}

impl Affinity {
    /// Notes that worker `pid` has `asset` open now.
    pub(super) fn remember(&self, asset: &str, pid: u32) {
        if let Ok(mut a) = self.0.lock() {
            let pids = a.get_or_insert_mut(asset.to_owned(), Vec::new);
            pids.retain(|p| *p != pid);
            pids.insert(0, pid);
            pids.truncate(AFFINITY_WORKERS);
        }
    }

    /// The workers that had `asset` open most recently (none if the lock is poisoned).
    fn workers_of(&self, asset: &str) -> Option<Vec<u32>> {
        self.0.lock().ok().map(|mut a| a.get(asset).cloned().unwrap_or_default())
    }
}

impl WorkerPool {
    /// Affinity: if `first` does not have `asset` open but an idle worker that does is
    /// in the pool, takes that one instead. Only idle workers are tried (never waiting,
    /// never starting one), so affinity adds no queueing delay; the others go straight
    /// back.
    pub(super) async fn prefer(&self, first: Object<WorkerManager>, asset: &str) -> Object<WorkerManager> {
        let Some(preferred) = self.affinity.workers_of(asset) else { return first };
        if preferred.is_empty() || preferred.contains(&first.pid()) {
            if !preferred.is_empty() {
                PoolStats::bump(&self.stats().affinity_hits);
            }
            return first;
        }
        let idle_only = managed::Timeouts {
            wait: Some(Duration::ZERO),
            create: Some(Duration::ZERO),
            recycle: Some(Duration::from_millis(50)),
        };
        let mut passed_over = Vec::new();
        let mut chosen = first;
        while self.pool.status().available > 0 && passed_over.len() < self.config().size {
            match self.pool.timeout_get(&idle_only).await {
                Ok(w) if preferred.contains(&w.pid()) => {
                    PoolStats::bump(&self.stats().affinity_hits);
                    passed_over.push(std::mem::replace(&mut chosen, w));
                    break;
                }
                Ok(w) => passed_over.push(w),
                Err(_) => break,
            }
        }
        drop(passed_over);
        chosen
    }
}
