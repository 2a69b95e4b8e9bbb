//! A real OTLP/gRPC receiver (the collector's trace and metrics services) on loopback,
//! keeping what it is sent, for the telemetry tests.

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
};
use tonic::{Request, Response, Status};

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the process that sent it.
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_id: String,
    pub name: String,
    /// OTLP span kind (2 = server).
    pub kind: i32,
    pub attributes: HashMap<String, Attr>,
    /// OTLP status code (0 unset, 1 ok, 2 error) and message.
    pub status: (i32, String),
    pub start_ns: u64,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> &Attr {
        self.attributes
            .get(key)
            .unwrap_or_else(|| panic!("span '{}' has no attribute {key}: {self:#?}", self.name))
    }
    pub fn str(&self, key: &str) -> &str {
        match self.attr(key) {
            Attr::Str(s) => s,
            other => panic!("{key} of '{}' is {other:?}, not a string", self.name),
        }
    }
    pub fn int(&self, key: &str) -> i64 {
        match self.attr(key) {
            Attr::Int(i) => *i,
            other => panic!("{key} of '{}' is {other:?}, not an integer", self.name),
        }
    }
    pub fn bool(&self, key: &str) -> bool {
        match self.attr(key) {
            Attr::Bool(b) => *b,
            other => panic!("{key} of '{}' is {other:?}, not a bool", self.name),
        }
    }
}

fn attr(value: Option<&AnyValue>) -> Attr {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => Attr::Str(s.clone()),
        Some(Value::IntValue(i)) => Attr::Int(*i),
        Some(Value::DoubleValue(f)) => Attr::Float(*f),
        Some(Value::BoolValue(b)) => Attr::Bool(*b),
        _ => Attr::Other,
    }
}

fn attributes(kvs: &[KeyValue]) -> HashMap<String, Attr> {
    kvs.iter().map(|kv| (kv.key.clone(), attr(kv.value.as_ref()))).collect()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[derive(Debug, Default)]
struct Store {
    spans: Vec<ReceivedSpan>,
    metric_names: BTreeSet<String>,
}

/// The receiver; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Receiver {
    store: Arc<Mutex<Store>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut store = self.store.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let resource = rs.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
            let service = match resource.get("service.name") {
                Some(Attr::Str(s)) => s.clone(),
                _ => String::new(),
            };
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                store.spans.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_id: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                    status: span.status.map(|s| (s.code, s.message)).unwrap_or_default(),
                    start_ns: span.start_time_unix_nano,
                });
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut store = self.store.lock().unwrap();
        for rm in request.into_inner().resource_metrics {
            for metric in rm.scope_metrics.into_iter().flat_map(|s| s.metrics) {
                store.metric_names.insert(metric.name);
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

impl Receiver {
    /// Serves on 127.0.0.1 (a free port) in the background.
    pub async fn start() -> (Self, SocketAddr) {
        let receiver = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .add_service(MetricsServiceServer::new(receiver.clone()));
        tokio::spawn(router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)));
        (receiver, addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store.lock().unwrap().spans.clone()
    }

    pub fn metric_names(&self) -> BTreeSet<String> {
        self.store.lock().unwrap().metric_names.clone()
    }

    /// The spans of `trace_id`, once `ready` holds for them (at most `limit`).
    pub async fn wait_for_trace(
        &self,
        trace_id: &str,
        limit: Duration,
        ready: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let until = Instant::now() + limit;
        loop {
            let spans: Vec<_> = self.spans().into_iter().filter(|s| s.trace_id == trace_id).collect();
            if ready(&spans) {
                return spans;
            }
            assert!(Instant::now() < until, "trace {trace_id} incomplete after {limit:?}: {spans:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
