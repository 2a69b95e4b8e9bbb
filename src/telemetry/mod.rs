//! Traces, metrics and logs.
//!
//! Theory of operation:
//!
//! - **Logs** go to stderr through `tracing-subscriber`, filtered by `RUST_LOG` (default
//!   `info`), human-readable or one JSON object per line (`--log-format json`) with the
//!   trace and span ids of the current span. A worker writes [`format::WorkerLines`]:
//!   level, its pid and the trace id of the job it is running; the front re-logs each
//!   line as its own event ([`forward_worker_line`]).
//! - **Traces**: every span of Tessera's own code also becomes an OpenTelemetry span
//!   (`tracing-opentelemetry`). They are exported over OTLP/gRPC only when the standard
//!   `OTEL_*` variables ask for it ([`export`]); otherwise spans still get W3C ids (so
//!   logs and workers share the caller's trace id) but are not sampled: nothing is
//!   recorded or sent anywhere. The RPC span joins the caller's trace from the
//!   `traceparent` header ([`grpc`]); an asset read's context travels to the worker in
//!   the IPC request ([`inject`], [`extract`]), and the worker exports its own spans
//!   under its own service name.
//! - **Metrics** ([`metrics`]) are kept in the front, rendered as Prometheus text on the
//!   admin port and, when `OTEL_*` asks for it, exported over OTLP.
//!
//! [`Telemetry::shutdown`] flushes spans and metrics still in their batches.

pub mod export;
pub mod format;
pub mod grpc;
pub mod metrics;

use std::{collections::HashMap, io::IsTerminal as _};

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    metrics::SdkMeterProvider,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, filter, layer::SubscriberExt, util::SubscriberInitExt};

/// Service name of the front when `OTEL_SERVICE_NAME` does not set one.
pub const DEFAULT_SERVICE_NAME: &str = "tessera";

/// Suffix of the workers' service name: `tessera` → `tessera-worker`.
pub const WORKER_SERVICE_SUFFIX: &str = "-worker";

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with `trace_id` and `span_id` (for Kubernetes).
    Json,
}

/// Which process is being set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `tessera serve`: exports traces and metrics.
    Front,
    /// `tessera worker`: exports traces; logs in worker lines for the front to forward.
    Worker,
    /// The command-line tools: logs only.
    Tool,
}

/// The installed telemetry; [`Telemetry::shutdown`] flushes what is still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    /// Whether spans are exported (not just given ids).
    pub exporting_traces: bool,
    /// The worker's exporter runtime; dropped after the providers have flushed.
    runtime: Option<tokio::runtime::Runtime>,
}

/// The service name from `OTEL_SERVICE_NAME` (or `service.name` in
/// `OTEL_RESOURCE_ATTRIBUTES`), else [`DEFAULT_SERVICE_NAME`].
#[must_use]
pub fn service_name() -> String {
    let from_env = std::env::var("OTEL_SERVICE_NAME").ok().filter(|s| !s.trim().is_empty());
    let from_attributes = || {
        std::env::var("OTEL_RESOURCE_ATTRIBUTES").ok().and_then(|attrs| {
            attrs.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == "service.name" && !v.trim().is_empty()).then(|| v.trim().to_owned())
            })
        })
    };
    from_env.or_else(from_attributes).unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned())
}

impl Telemetry {
    /// Installs the global subscriber (and the OTLP exporters the environment asks for).
    /// The front must call it inside its tokio runtime: the gRPC exporter's channel is
    /// bound to it.
    #[must_use]
    pub fn init(role: Role, format: LogFormat) -> Self {
        let plan = export::ExportPlan::from_env(role);
        let resource = Resource::builder()
            .with_service_name(service_name())
            .with_attribute(opentelemetry::KeyValue::new("process.pid", i64::from(std::process::id())))
            .build();
        let mut problems = plan.problems.clone();

        let mut span_exporter = None;
        // The gRPC exporter's channel lives on a tokio runtime; a worker has none of its
        // own, so it gets a one-thread runtime for the exporter alone.
        let mut runtime = None;
        if plan.traces && role == Role::Worker {
            match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
                Ok(rt) => runtime = Some(rt),
                Err(e) => problems.push(format!("cannot start the exporter's runtime: {e}")),
            }
        }
        let entered = runtime.as_ref().map(tokio::runtime::Runtime::enter);
        if plan.traces && (role != Role::Worker || runtime.is_some()) {
            match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
                Ok(exporter) => span_exporter = Some(exporter),
                Err(e) => problems.push(format!("cannot build the OTLP span exporter: {e}")),
            }
        }
        let exporting_traces = span_exporter.is_some();
        let tracer_provider = (role != Role::Tool && !plan.sdk_disabled)
            .then(|| tracer_provider(resource.clone(), span_exporter));
        let mut meter_provider = None;
        if plan.metrics && role == Role::Front {
            match opentelemetry_otlp::MetricExporter::builder().with_tonic().build() {
                Ok(exporter) => {
                    let provider = SdkMeterProvider::builder()
                        .with_resource(resource)
                        .with_periodic_exporter(exporter)
                        .build();
                    opentelemetry::global::set_meter_provider(provider.clone());
                    meter_provider = Some(provider);
                }
                Err(e) => problems.push(format!("cannot build the OTLP metric exporter: {e}")),
            }
        }
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

        let env_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        // Only Tessera's own spans become OpenTelemetry spans, whatever RUST_LOG says: the
        // exporter's own HTTP/2 stack must not trace itself.
        // With nothing exported, spans carry ids and nothing else (see `tracer_provider`):
        // the layer then also skips what only an exported span shows (busy and idle
        // times, taken at every poll of an instrumented future; the code location and
        // thread of each span).
        let otel_layer = tracer_provider.as_ref().map(|p| {
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("tessera"))
                .with_tracked_inactivity(exporting_traces)
                .with_location(exporting_traces)
                .with_threads(exporting_traces)
                .with_filter(filter::filter_fn(|m| m.target().starts_with("tessera")))
        });
        let fmt_layer = match (role, format) {
            // The worker's lines carry no span fields (the trace id comes from the
            // OpenTelemetry context): spans are not this layer's business, so their fields
            // are not formatted for it. (A `RUST_LOG` directive scoped to a span then does
            // not apply in workers.)
            (Role::Worker, _) => tracing_subscriber::fmt::layer()
                .event_format(format::WorkerLines::new())
                .with_writer(std::io::stderr)
                .with_filter(env_filter)
                .with_filter(filter::filter_fn(|m: &tracing::Metadata<'_>| m.is_event()))
                .boxed(),
            (_, LogFormat::Json) => tracing_subscriber::fmt::layer()
                .event_format(format::JsonLines)
                .fmt_fields(format::NoSpanFields)
                .with_writer(std::io::stderr)
                .with_filter(env_filter)
                .boxed(),
            // Colours only for a terminal: a file or a log collector gets plain lines (and
            // the log layer writes no escape codes it would have to strip).
            (_, LogFormat::Text) => tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .with_filter(env_filter)
                .boxed(),
        };
        let _ = tracing_subscriber::registry().with(otel_layer).with(fmt_layer).try_init();
        for problem in problems {
            tracing::warn!("telemetry: {problem}");
        }
        if exporting_traces || meter_provider.is_some() {
            tracing::info!(
                traces = exporting_traces,
                metrics = meter_provider.is_some(),
                "exporting telemetry over OTLP/gRPC"
            );
        }
        drop(entered);
        Self { tracer_provider, meter_provider, exporting_traces, runtime }
    }

    /// A function that sends the spans still buffered, callable from any thread (the
    /// worker's SIGTERM handler).
    pub fn flusher(&self) -> impl Fn() + Send + 'static {
        let provider = self.tracer_provider.clone();
        move || {
            if let Some(p) = &provider {
                let _ = p.force_flush();
            }
        }
    }

    /// Flushes and stops the exporters: spans and metrics still in their batches are sent.
    pub fn shutdown(&mut self) {
        if let Some(p) = self.tracer_provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("tessera: flushing spans failed: {e}");
            }
        }
        if let Some(p) = self.meter_provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("tessera: flushing metrics failed: {e}");
            }
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A process's tracer provider: spans go to `exporter` in batches. Without one they
/// still get W3C ids, so the caller's trace id reaches logs and workers, but are not
/// sampled: a sampled span keeps its attributes, timings and end only for the SDK to
/// drop them. Ids and their propagation are the same; the `traceparent` a worker gets
/// then says "not sampled". (With the worker's log layer in [`Telemetry::init`], a
/// worker's own time around a read fell from ~100 to ~75 us a job, median of 700 jobs.)
fn tracer_provider<E>(resource: Resource, exporter: Option<E>) -> SdkTracerProvider
where
    E: opentelemetry_sdk::trace::SpanExporter + 'static,
{
    let builder = SdkTracerProvider::builder().with_resource(resource);
    match exporter {
        Some(exporter) => builder.with_batch_exporter(exporter).build(),
        None => builder.with_sampler(Sampler::AlwaysOff).build(),
    }
}

/// The W3C trace context of `span` (`traceparent`, and `tracestate` when set), for a
/// request to another process. Empty when the span is not part of a trace.
#[must_use]
pub fn inject(span: &tracing::Span) -> HashMap<String, String> {
    struct Map<'a>(&'a mut HashMap<String, String>);
    impl Injector for Map<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key.to_owned(), value);
        }
    }
    let mut carrier = HashMap::new();
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut Map(&mut carrier));
    }
    carrier
}

/// The remote context in a carrier written by [`inject`].
#[must_use]
pub fn extract<H: std::hash::BuildHasher>(carrier: &HashMap<String, String, H>) -> Context {
    struct Map<'a, H>(&'a HashMap<String, String, H>);
    impl<H: std::hash::BuildHasher> Extractor for Map<'_, H> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).map(String::as_str)
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(String::as_str).collect()
        }
    }
    TraceContextPropagator::new().extract(&Map(carrier))
}

/// Re-logs one stderr line of worker `pid` as the front's own event, at the line's level
/// and with its trace id, so it reaches the same log pipeline (and format) as the rest.
/// Lines a worker did not format itself (a driver printing to stderr, a panic) are
/// forwarded as warnings.
pub fn forward_worker_line(pid: u32, line: &str) {
    let parsed = format::WorkerLines::parse(line);
    // An Option field is recorded only when Some: lines outside a trace carry none.
    let trace_id = parsed.trace_id;
    let message = parsed.message;
    match parsed.level {
        Some(tracing::Level::ERROR) => {
            tracing::error!(target: "tessera::worker", worker_pid = pid, trace_id, "{message}");
        }
        Some(tracing::Level::INFO) => {
            tracing::info!(target: "tessera::worker", worker_pid = pid, trace_id, "{message}");
        }
        Some(tracing::Level::DEBUG) => {
            tracing::debug!(target: "tessera::worker", worker_pid = pid, trace_id, "{message}");
        }
        Some(tracing::Level::TRACE) => {
            tracing::trace!(target: "tessera::worker", worker_pid = pid, trace_id, "{message}");
        }
        Some(tracing::Level::WARN) | None => {
            tracing::warn!(target: "tessera::worker", worker_pid = pid, trace_id, "{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_sdk::{error::OTelSdkResult, trace::SpanData};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// An exporter that drops what it is given.
    #[derive(Debug)]
    struct Discard;

    impl opentelemetry_sdk::trace::SpanExporter for Discard {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            Ok(())
        }
    }

    /// The `traceparent` a worker gets for a span that continues a sampled caller's trace,
    /// under a provider with or without an exporter.
    fn passed_on(exporter: Option<Discard>) -> Vec<String> {
        let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let caller = extract(&HashMap::from([("traceparent".to_owned(), caller.to_owned())]));
        let provider = tracer_provider(Resource::builder().build(), exporter);
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let carrier = tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let span = tracing::info_span!("asset_job");
            let _ = span.set_parent(caller);
            inject(&span)
        });
        let _ = provider.shutdown();
        carrier["traceparent"].split('-').map(ToOwned::to_owned).collect()
    }

    #[test]
    fn spans_not_exported_pass_the_callers_trace_on_unsampled() {
        let [version, trace, span, flags] = <[String; 4]>::try_from(passed_on(None)).unwrap();
        assert_eq!((version.as_str(), trace.as_str()), ("00", "0af7651916cd43dd8448eb211c80319c"));
        // The span's own id, valid, not the caller's.
        assert_eq!(span.len(), 16);
        assert_ne!(span, "0000000000000000");
        assert_ne!(span, "b7ad6b7169203331");
        assert_eq!(flags, "00", "nothing is exported: the worker's spans need not be recorded");

        let [_, trace, _, flags] = <[String; 4]>::try_from(passed_on(Some(Discard))).unwrap();
        assert_eq!(trace, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(flags, "01", "exported: sampled, as the caller asked");
    }
}
