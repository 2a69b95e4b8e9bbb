//! Liveness: idle workers are pinged every `ping_interval`; one that does not answer
//! within `ping_timeout` is killed and replaced like any worker that misses a deadline
//! (`recycle.rs`). Only workers idle at that moment are pinged (never waiting, never
//! spawning one), and each tick also tops up the pool's spares (`replenish.rs`).

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use deadpool::managed;
use tokio::time::Instant;

use super::{PoolStats, WorkerPool};
use crate::pb::worker::{PingRequest, WorkerRequest, worker_request::Job};

impl WorkerPool {
    /// Pings idle workers every `ping_interval`; a worker that does not answer within
    /// `ping_timeout` is killed and replaced. Runs until the pool closes.
    pub fn spawn_liveness(self: &Arc<Self>) {
        let interval = self.config().ping_interval;
        if interval.is_zero() {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if this.pool.is_closed() {
                    return;
                }
                this.ping_idle().await;
                this.replenish();
            }
        });
    }

    async fn ping_idle(self: &Arc<Self>) {
        let idle = self.pool.status().available;
        // Check out only workers that are idle right now: never wait, never spawn.
        let timeouts = managed::Timeouts {
            wait: Some(Duration::ZERO),
            create: Some(Duration::ZERO),
            recycle: Some(Duration::from_millis(100)),
        };
        let mut held = Vec::new();
        for _ in 0..idle {
            match self.pool.timeout_get(&timeouts).await {
                Ok(w) => held.push(w),
                Err(_) => break,
            }
        }
        let deadline = Instant::now() + self.config().ping_timeout;
        for worker in held {
            PoolStats::bump(&self.stats().pings);
            let request = WorkerRequest {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                reply_slot: 0,
                trace_context: std::collections::HashMap::default(),
                job: Some(Job::Ping(PingRequest {})),
            };
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let pid = worker.pid();
                if let Err((e, _)) = this.exchange(worker, request, deadline).await {
                    tracing::warn!(pid, error = %e, "idle worker failed its liveness ping; replaced");
                }
            });
        }
    }
}
