//! A counting OTLP/gRPC receiver for `tessera bench --otlp-sink`: it accepts every
//! span and metric batch, keeps only counts, so the benchmark measures the cost of
//! exporting telemetry without a collector.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
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
    common::v1::any_value::Value,
};
use tonic::{Request, Response, Status};

/// Spans received per `service.name`, and metric batches.
#[derive(Debug, Clone, Default)]
pub struct Sink {
    spans: Arc<Mutex<BTreeMap<String, u64>>>,
    metric_batches: Arc<Mutex<u64>>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().map_err(|_| Status::internal("poisoned"))?;
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            let n: usize = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
            *spans.entry(service).or_default() += n as u64;
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        _: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        if let Ok(mut n) = self.metric_batches.lock() {
            *n += 1;
        }
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

impl Sink {
    /// Serves on 127.0.0.1 (a free port) in the background.
    pub async fn start() -> std::io::Result<(Self, SocketAddr)> {
        let sink = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(sink.clone()))
            .add_service(MetricsServiceServer::new(sink.clone()));
        tokio::spawn(router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)));
        Ok((sink, addr))
    }

    /// "1234 spans (tessera: 1000, tessera-worker: 234), 3 metric batches".
    #[must_use]
    pub fn summary(&self) -> String {
        let spans = self.spans.lock().map(|s| s.clone()).unwrap_or_default();
        let total: u64 = spans.values().sum();
        let per: Vec<String> = spans.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let batches = self.metric_batches.lock().map_or(0, |n| *n);
        format!("{total} spans ({}), {batches} metric batches", per.join(", "))
    }
}
