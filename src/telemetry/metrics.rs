//! The front's metrics: tiles by format and status, reads (point, statistics, preview)
//! by RPC and status, tile and asset-read latency, dataset-cache hits, encoded bytes and
//! gRPC connections are kept here; the subsystems that own other counters (the pool,
//! the reader of remote assets, the memory budget) keep them and hand them over as a
//! [`MetricSource`]. Telemetry imports none of them: it is a leaf every layer may use.
//!
//! Each value is kept once and read two ways: rendered as Prometheus text for the admin
//! endpoint ([`render_prometheus`]), and recorded on OpenTelemetry instruments
//! (observed, for the sources) that the OTLP exporter sends when `OTEL_*` asks for it.
//! Without an exporter the OpenTelemetry side is the no-op global meter.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram as OtelHistogram, Meter, UpDownCounter},
};

/// One value for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Prometheus name.
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// `counter` or `gauge`.
    pub kind: &'static str,
    /// One label, if the metric has one.
    pub label: Option<(&'static str, String)>,
    /// The value.
    pub value: u64,
}

impl Sample {
    /// An unlabelled counter.
    #[must_use]
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Self { name, help, kind: "counter", label: None, value }
    }

    /// An unlabelled gauge.
    #[must_use]
    pub fn gauge(name: &'static str, help: &'static str, value: u64) -> Self {
        Self { name, help, kind: "gauge", label: None, value }
    }
}

/// OpenTelemetry instruments a source registered; they report while kept.
pub type Observers = Vec<Box<dyn std::any::Any + Send + Sync>>;

/// A subsystem that owns counters and gauges and hands them to telemetry.
pub trait MetricSource: std::fmt::Debug + Send + Sync + 'static {
    /// The current values, for `/metrics`.
    fn samples(&self) -> Vec<Sample>;

    /// Metrics that may have no sample yet (a labelled counter before its first label
    /// value), as (name, help, kind): registered over OTLP from the start all the same.
    fn latent(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        Vec::new()
    }

    /// Registers observable instruments on `meter` for the OTLP exporter. By default
    /// one per sample name (`tessera_remote_cache_hits_total` →
    /// `tessera.remote.cache_hits`), with the sample's label as an attribute.
    fn observe(self: Arc<Self>, meter: &Meter) -> Observers {
        let mut names: Vec<(&'static str, &'static str, &'static str)> = Vec::new();
        let described = self.samples().into_iter().map(|s| (s.name, s.help, s.kind));
        for (name, help, kind) in described.chain(self.latent()) {
            if !names.iter().any(|(n, _, _)| *n == name) {
                names.push((name, help, kind));
            }
        }
        let mut keep: Observers = Vec::new();
        for (name, help, kind) in names {
            let source = Arc::clone(&self);
            let observe = move |o: &dyn opentelemetry::metrics::AsyncInstrument<u64>| {
                for sample in source.samples().into_iter().filter(|s| s.name == name) {
                    let attrs: Vec<KeyValue> =
                        sample.label.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
                    o.observe(sample.value, &attrs);
                }
            };
            let otel_name = otel_counter_name(name);
            keep.push(if kind == "counter" {
                Box::new(
                    meter
                        .u64_observable_counter(otel_name)
                        .with_description(help)
                        .with_callback(observe)
                        .build(),
                )
            } else {
                Box::new(
                    meter
                        .u64_observable_gauge(otel_name)
                        .with_description(help)
                        .with_callback(observe)
                        .build(),
                )
            });
        }
        keep
    }
}

/// Where a tile's answer came from, when it was not rendered for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedTile {
    /// The tile cache.
    Cached,
    /// Another caller's render of the same request.
    Coalesced,
}

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// gRPC code names, indexed by code, as the `status` label.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of a gRPC code ("OK", "NOT_FOUND"...).
#[must_use]
pub fn code_name(code: tonic::Code) -> &'static str {
    CODE_NAMES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

/// A latency histogram with fixed buckets ([`LATENCY_BUCKETS`]).
#[derive(Debug, Default)]
struct Histogram {
    state: Mutex<HistogramState>,
}

#[derive(Debug, Default, Clone)]
struct HistogramState {
    /// Observations at or below each bound (not cumulative).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&self, seconds: f64) {
        if let Ok(mut s) = self.state.lock() {
            if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
                s.buckets[i] += 1;
            }
            s.count += 1;
            s.sum += seconds;
        }
    }

    fn snapshot(&self) -> HistogramState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The OpenTelemetry side of the metrics.
#[derive(Debug)]
struct Instruments {
    tiles: Counter<u64>,
    reads: Counter<u64>,
    tile_duration: OtelHistogram<f64>,
    read_duration: OtelHistogram<f64>,
    encoded_bytes: Counter<u64>,
    cache_lookups: Counter<u64>,
    shared_tiles: Counter<u64>,
    connections: Counter<u64>,
    open_connections: UpDownCounter<i64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build()
        };
        Self {
            tiles: meter
                .u64_counter("tessera.tiles")
                .with_description("Tiles answered, by format and gRPC status.")
                .build(),
            reads: meter
                .u64_counter("tessera.reads")
                .with_description(
                    "GetPoint, GetStatistics and GetPreview calls answered, by RPC and gRPC status.",
                )
                .build(),
            tile_duration: seconds("tessera.tile.duration", "Time to answer one tile."),
            read_duration: seconds(
                "tessera.asset_read.duration",
                "Time of one asset read, waiting included.",
            ),
            encoded_bytes: meter
                .u64_counter("tessera.encoded_bytes")
                .with_unit("By")
                .with_description("Bytes of encoded tiles, by format.")
                .build(),
            cache_lookups: meter
                .u64_counter("tessera.dataset_cache.lookups")
                .with_description("Worker dataset-cache lookups, by result (hit or miss).")
                .build(),
            shared_tiles: meter
                .u64_counter("tessera.tiles.shared")
                .with_description(
                    "Tiles answered without a render of their own, by source (cache or coalesced).",
                )
                .build(),
            connections: meter
                .u64_counter("tessera.grpc.connections")
                .with_description(
                    "gRPC connections, by event: accepted; aged (shut down at --max-connection-age); \
                     refused (over --max-connections); preface_timeout (silent past \
                     --connection-preface-timeout); idle (shut down at \
                     --connection-idle-timeout); keepalive_timeout (no answer to a ping).",
                )
                .build(),
            open_connections: meter
                .i64_up_down_counter("tessera.grpc.open_connections")
                .with_description("gRPC connections open now.")
                .build(),
        }
    }
}

/// The front's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Tiles answered by (format, status).
    tiles: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Encoded bytes by format.
    encoded_bytes: Mutex<BTreeMap<String, u64>>,
    /// GetPoint/GetStatistics/GetPreview calls by (RPC, status).
    reads: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    tile_seconds: Histogram,
    read_seconds: Histogram,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    /// Tiles answered from the tile cache, and from another caller's render.
    tile_cache_hits: AtomicU64,
    tiles_coalesced: AtomicU64,
    otel: Instruments,
    /// Keeps the sources' observable instruments registered.
    observers: Mutex<Observers>,
    /// The subsystems' counters, in the order they were handed over.
    sources: Mutex<Vec<Arc<dyn MetricSource>>>,
    /// gRPC connections accepted, open now, and shut down for their age.
    connections_accepted: AtomicU64,
    connections_open: AtomicU64,
    connections_aged: AtomicU64,
    /// gRPC connections closed at accept (over `--max-connections`), for sending no
    /// preface in time, for idleness, and for not answering a keepalive ping.
    connections_refused: AtomicU64,
    connections_preface_timeouts: AtomicU64,
    connections_idle: AtomicU64,
    connections_keepalive_timeouts: AtomicU64,
    /// `--max-connections` as the server runs with it (0 until the listener starts).
    max_connections: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics recorded on the global meter as well.
    #[must_use]
    pub fn new() -> Self {
        Self {
            tiles: Mutex::default(),
            encoded_bytes: Mutex::default(),
            reads: Mutex::default(),
            tile_seconds: Histogram::default(),
            read_seconds: Histogram::default(),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            tile_cache_hits: AtomicU64::new(0),
            tiles_coalesced: AtomicU64::new(0),
            otel: Instruments::new(&opentelemetry::global::meter("tessera")),
            observers: Mutex::default(),
            sources: Mutex::default(),
            connections_accepted: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_aged: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_preface_timeouts: AtomicU64::new(0),
            connections_idle: AtomicU64::new(0),
            connections_keepalive_timeouts: AtomicU64::new(0),
            max_connections: AtomicU64::new(0),
        }
    }

    /// A gRPC connection was accepted; it counts as open until the guard is dropped.
    #[must_use]
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.otel.connections.add(1, &[KeyValue::new("event", "accepted")]);
        self.otel.open_connections.add(1, &[]);
        OpenConnection(self)
    }

    /// A gRPC connection reached `--max-connection-age` and is shutting down.
    pub fn connection_aged(&self) {
        self.connections_aged.fetch_add(1, Ordering::Relaxed);
        self.otel.connections.add(1, &[KeyValue::new("event", "aged")]);
    }

    /// The gRPC listener's connection limit (shown as a gauge next to the open count).
    pub fn set_max_connections(&self, limit: usize) {
        self.max_connections.store(limit as u64, Ordering::Relaxed);
    }

    /// A gRPC connection was closed right after accept: `--max-connections` are open.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
        self.otel.connections.add(1, &[KeyValue::new("event", "refused")]);
    }

    /// A gRPC connection was closed for not sending its HTTP/2 preface in time.
    pub fn connection_preface_timed_out(&self) {
        self.connections_preface_timeouts.fetch_add(1, Ordering::Relaxed);
        self.otel.connections.add(1, &[KeyValue::new("event", "preface_timeout")]);
    }

    /// A gRPC connection reached `--connection-idle-timeout` and is shutting down.
    pub fn connection_idle(&self) {
        self.connections_idle.fetch_add(1, Ordering::Relaxed);
        self.otel.connections.add(1, &[KeyValue::new("event", "idle")]);
    }

    /// A gRPC connection was closed because its peer did not answer a keepalive ping.
    pub fn connection_keepalive_timed_out(&self) {
        self.connections_keepalive_timeouts.fetch_add(1, Ordering::Relaxed);
        self.otel.connections.add(1, &[KeyValue::new("event", "keepalive_timeout")]);
    }

    /// Takes a subsystem's counters: on `/metrics` from now on, and as observable
    /// instruments on the global meter (exported over OTLP when asked).
    pub fn observe(&self, source: Arc<dyn MetricSource>) {
        let keep = Arc::clone(&source).observe(&opentelemetry::global::meter("tessera"));
        if let Ok(mut o) = self.observers.lock() {
            o.extend(keep);
        }
        if let Ok(mut sources) = self.sources.lock() {
            sources.push(source);
        }
    }

    /// One tile answered: its format, status, latency and encoded size (0 for errors).
    pub fn tile(&self, format: &str, code: tonic::Code, elapsed: Duration, bytes: u64) {
        let status = code_name(code);
        if let Ok(mut t) = self.tiles.lock() {
            *t.entry((format.to_owned(), status)).or_default() += 1;
        }
        self.tile_seconds.observe(elapsed.as_secs_f64());
        let attrs = [KeyValue::new("format", format.to_owned()), KeyValue::new("status", status)];
        self.otel.tiles.add(1, &attrs);
        self.otel.tile_duration.record(elapsed.as_secs_f64(), &attrs);
        if bytes > 0 {
            if let Ok(mut b) = self.encoded_bytes.lock() {
                *b.entry(format.to_owned()).or_default() += bytes;
            }
            self.otel.encoded_bytes.add(bytes, &[KeyValue::new("format", format.to_owned())]);
        }
    }

    /// One GetPoint, GetStatistics or GetPreview call answered with `code`.
    pub fn read(&self, rpc: &'static str, code: tonic::Code) {
        let status = code_name(code);
        if let Ok(mut r) = self.reads.lock() {
            *r.entry((rpc, status)).or_default() += 1;
        }
        self.otel.reads.add(1, &[KeyValue::new("rpc", rpc), KeyValue::new("status", status)]);
    }

    /// A tile answered without a render of its own.
    pub fn shared_tile(&self, source: SharedTile) {
        let (counter, label) = match source {
            SharedTile::Cached => (&self.tile_cache_hits, "cache"),
            SharedTile::Coalesced => (&self.tiles_coalesced, "coalesced"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.otel.shared_tiles.add(1, &[KeyValue::new("source", label)]);
    }

    /// One asset read finished (or failed) after `elapsed`.
    pub fn asset_read(&self, elapsed: Duration, ok: bool) {
        self.read_seconds.observe(elapsed.as_secs_f64());
        self.otel
            .read_duration
            .record(elapsed.as_secs_f64(), &[KeyValue::new("outcome", if ok { "ok" } else { "error" })]);
    }

    /// A worker looked a dataset up in its cache.
    pub fn dataset_cache(&self, hit: bool) {
        let counter = if hit { &self.cache_hits } else { &self.cache_misses };
        counter.fetch_add(1, Ordering::Relaxed);
        self.otel.cache_lookups.add(1, &[KeyValue::new("result", if hit { "hit" } else { "miss" })]);
    }

    /// Dataset-cache hits and misses so far.
    #[must_use]
    pub fn dataset_cache_counts(&self) -> (u64, u64) {
        (self.cache_hits.load(Ordering::Relaxed), self.cache_misses.load(Ordering::Relaxed))
    }
}

/// An open gRPC connection, counted in [`Metrics`] until dropped.
#[derive(Debug)]
pub struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
        self.0.otel.open_connections.add(-1, &[]);
    }
}

/// `tessera_worker_spawns_total` → `tessera.worker.spawns`.
#[must_use]
pub fn otel_counter_name(prometheus: &str) -> String {
    let base = prometheus.strip_suffix("_total").unwrap_or(prometheus);
    let rest = base.strip_prefix("tessera_").unwrap_or(base);
    match rest.split_once('_') {
        Some((group, name)) => format!("tessera.{group}.{name}"),
        None => format!("tessera.{rest}"),
    }
}

fn help_and_type(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramState) {
    help_and_type(out, name, help, "histogram");
    let mut cumulative = 0;
    for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
        h.count, h.sum, h.count
    );
}

/// The admin endpoint's page: every metric in the Prometheus text format (0.0.4).
#[must_use]
pub fn render_prometheus(metrics: &Metrics) -> String {
    let mut out = String::new();
    help_and_type(&mut out, "tessera_tiles_total", "Tiles answered, by format and gRPC status.", "counter");
    for ((format, status), n) in metrics.tiles.lock().map(|t| t.clone()).unwrap_or_default() {
        let _ = writeln!(out, "tessera_tiles_total{{format=\"{format}\",status=\"{status}\"}} {n}");
    }
    help_and_type(
        &mut out,
        "tessera_reads_total",
        "GetPoint, GetStatistics and GetPreview calls answered, by RPC and gRPC status.",
        "counter",
    );
    for ((rpc, status), n) in metrics.reads.lock().map(|r| r.clone()).unwrap_or_default() {
        let _ = writeln!(out, "tessera_reads_total{{rpc=\"{rpc}\",status=\"{status}\"}} {n}");
    }
    help_and_type(&mut out, "tessera_encoded_bytes_total", "Bytes of encoded tiles, by format.", "counter");
    for (format, n) in metrics.encoded_bytes.lock().map(|t| t.clone()).unwrap_or_default() {
        let _ = writeln!(out, "tessera_encoded_bytes_total{{format=\"{format}\"}} {n}");
    }
    histogram(
        &mut out,
        "tessera_tile_duration_seconds",
        "Time to answer one tile.",
        &metrics.tile_seconds.snapshot(),
    );
    histogram(
        &mut out,
        "tessera_asset_read_duration_seconds",
        "Time of one asset read, waiting for a worker included.",
        &metrics.read_seconds.snapshot(),
    );
    let (hits, misses) = metrics.dataset_cache_counts();
    for (name, help, v) in [
        ("tessera_dataset_cache_hits_total", "Reads that found their dataset open in the worker.", hits),
        ("tessera_dataset_cache_misses_total", "Reads that had to open their dataset.", misses),
    ] {
        help_and_type(&mut out, name, help, "counter");
        let _ = writeln!(out, "{name} {v}");
    }
    for (name, help, counter) in [
        ("tessera_tile_cache_hits_total", "Tiles answered from the tile cache.", &metrics.tile_cache_hits),
        (
            "tessera_tiles_coalesced_total",
            "Tiles answered by another caller's render of the same request.",
            &metrics.tiles_coalesced,
        ),
    ] {
        help_and_type(&mut out, name, help, "counter");
        let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
    }
    let ratio = if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 };
    help_and_type(
        &mut out,
        "tessera_dataset_cache_hit_ratio",
        "Share of dataset-cache lookups that hit.",
        "gauge",
    );
    let _ = writeln!(out, "tessera_dataset_cache_hit_ratio {ratio}");
    let sources = metrics.sources.lock().map(|s| s.clone()).unwrap_or_default();
    for source in sources {
        let mut described = std::collections::HashSet::new();
        for sample in source.samples() {
            if described.insert(sample.name) {
                help_and_type(&mut out, sample.name, sample.help, sample.kind);
            }
            match sample.label {
                Some((key, value)) => {
                    let _ = writeln!(out, "{}{{{key}=\"{value}\"}} {}", sample.name, sample.value);
                }
                None => {
                    let _ = writeln!(out, "{} {}", sample.name, sample.value);
                }
            }
        }
    }
    render_connections(&mut out, metrics);
    out
}

/// The gRPC listener's counters and gauges.
fn render_connections(out: &mut String, metrics: &Metrics) {
    for (name, help, counter) in [
        ("tessera_grpc_connections_total", "gRPC connections accepted.", &metrics.connections_accepted),
        (
            "tessera_grpc_connections_aged_total",
            "gRPC connections shut down gracefully at --max-connection-age.",
            &metrics.connections_aged,
        ),
        (
            "tessera_grpc_connections_refused_total",
            "gRPC connections closed right after accept because --max-connections were open.",
            &metrics.connections_refused,
        ),
        (
            "tessera_grpc_connections_preface_timeouts_total",
            "gRPC connections closed for not sending their HTTP/2 preface within --connection-preface-timeout.",
            &metrics.connections_preface_timeouts,
        ),
        (
            "tessera_grpc_connections_idle_total",
            "gRPC connections shut down gracefully after --connection-idle-timeout without a call.",
            &metrics.connections_idle,
        ),
        (
            "tessera_grpc_connections_keepalive_timeouts_total",
            "gRPC connections closed because the peer did not answer a keepalive ping in time.",
            &metrics.connections_keepalive_timeouts,
        ),
    ] {
        help_and_type(out, name, help, "counter");
        let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
    }
    for (name, help, value) in [
        (
            "tessera_grpc_open_connections",
            "gRPC connections open now.",
            usize::try_from(metrics.connections_open.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
        ),
        (
            "tessera_grpc_max_connections",
            "gRPC connections that may be open at once (--max-connections).",
            usize::try_from(metrics.max_connections.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
        ),
    ] {
        help_and_type(out, name, help, "gauge");
        let _ = writeln!(out, "{name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_in_the_text() {
        let h = Histogram::default();
        for s in [0.001, 0.003, 0.003, 0.2, 20.0] {
            h.observe(s);
        }
        let mut out = String::new();
        histogram(&mut out, "x", "help", &h.snapshot());
        assert!(out.contains("x_bucket{le=\"0.002\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.25\"} 4\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 4\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 5\nx_sum 20.207\nx_count 5\n"), "{out}");
    }

    #[test]
    fn counter_names_map_to_otel_style() {
        assert_eq!(otel_counter_name("tessera_worker_spawns_total"), "tessera.worker.spawns");
        assert_eq!(otel_counter_name("tessera_asset_quarantines_total"), "tessera.asset.quarantines");
        assert_eq!(otel_counter_name("tessera_job_retries_total"), "tessera.job.retries");
    }

    #[test]
    fn code_names_follow_grpc() {
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(code_name(tonic::Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(tonic::Code::Unauthenticated), "UNAUTHENTICATED");
    }
}
