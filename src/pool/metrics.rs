//! The pool's counters and occupancy, handed to telemetry as a [`MetricSource`]: the
//! counters as they are named on `/metrics`, and over OTLP the counters plus one
//! `tessera.pool.workers` gauge by state.

use std::sync::Arc;

use opentelemetry::{KeyValue, metrics::Meter};

use super::WorkerPool;
use crate::telemetry::metrics::{MetricSource, Observers, Sample, otel_counter_name};

impl MetricSource for WorkerPool {
    fn samples(&self) -> Vec<Sample> {
        let mut out: Vec<Sample> = self
            .stats()
            .counters()
            .into_iter()
            .map(|(name, help, value)| Sample::counter(name, help, value))
            .collect();
        let (busy, idle, waiting) = self.occupancy();
        for (name, help, value) in [
            ("tessera_pool_size", "Configured worker count.", self.size()),
            ("tessera_pool_busy_workers", "Workers running a job.", busy),
            ("tessera_pool_idle_workers", "Workers waiting for a job.", idle),
            ("tessera_pool_waiting_jobs", "Jobs waiting for a worker.", waiting),
            ("tessera_worker_processes", "Live worker processes.", self.worker_pids().len()),
        ] {
            out.push(Sample::gauge(name, help, value as u64));
        }
        out
    }

    fn observe(self: Arc<Self>, meter: &Meter) -> Observers {
        let mut keep: Observers = Vec::new();
        for (name, help, _) in self.stats().counters() {
            let pool = Arc::clone(&self);
            keep.push(Box::new(
                meter
                    .u64_observable_counter(otel_counter_name(name))
                    .with_description(help)
                    .with_callback(move |o| {
                        if let Some((_, _, v)) =
                            pool.stats().counters().into_iter().find(|(n, _, _)| *n == name)
                        {
                            o.observe(v, &[]);
                        }
                    })
                    .build(),
            ));
        }
        let pool = Arc::clone(&self);
        keep.push(Box::new(
            meter
                .u64_observable_gauge("tessera.pool.workers")
                .with_description("Workers by state: busy, idle, and jobs waiting for one.")
                .with_callback(move |o| {
                    let (busy, idle, waiting) = pool.occupancy();
                    o.observe(busy as u64, &[KeyValue::new("state", "busy")]);
                    o.observe(idle as u64, &[KeyValue::new("state", "idle")]);
                    o.observe(waiting as u64, &[KeyValue::new("state", "waiting")]);
                })
                .build(),
        ));
        keep
    }
}
