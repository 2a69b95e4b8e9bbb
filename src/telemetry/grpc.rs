//! The server span of each RPC, as a tower layer around the whole gRPC router.
//!
//! A layer rather than code in each handler because only here is the whole call visible:
//! the span starts before the handler runs, stays open while a streamed response is
//! being produced (the response body is polled inside it, so the tiles of a batch are
//! its children), and ends when the body ends, with the gRPC status read from the
//! response headers (trailers-only errors) or trailers. Follows the OpenTelemetry RPC
//! conventions: `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`, kind
//! server, status ERROR for the server-side failure codes. A W3C `traceparent` in the
//! request metadata makes the span a child of the caller's.
//!
//! Health checks and reflection are not traced: probes every few seconds would drown
//! the traces that matter.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Services whose calls get a span.
const TRACED_PREFIX: &str = "/tessera.";

/// Adds the RPC span to a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcTraceLayer;

impl<S> tower_layer::Layer<S> for RpcTraceLayer {
    type Service = RpcTrace<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcTrace { inner }
    }
}

/// See [`RpcTraceLayer`].
#[derive(Debug, Clone)]
pub struct RpcTrace<S> {
    inner: S,
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The server span of a call to `path` (`/package.Service/Method`).
fn rpc_span(path: &str, headers: &HeaderMap) -> Span {
    let full = path.trim_start_matches('/');
    let (service, method) = full.split_once('/').unwrap_or((full, ""));
    let span = tracing::info_span!(
        "rpc",
        otel.name = full,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
    span
}

/// Server-side failure codes, which set the span's status to ERROR (the RPC
/// conventions: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
/// DATA_LOSS). A caller's mistake (INVALID_ARGUMENT, NOT_FOUND...) is not a server error.
fn is_server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// Records the call's status on its span; true when `headers` carried one.
fn record_status(span: &Span, headers: &HeaderMap) -> bool {
    let Some(code) = headers.get("grpc-status").and_then(|v| v.to_str().ok()?.parse::<i32>().ok()) else {
        return false;
    };
    span.record("rpc.grpc.status_code", code);
    if is_server_error(code) {
        span.record("otel.status_code", "ERROR");
        if let Some(message) = headers.get("grpc-message").and_then(|v| v.to_str().ok()) {
            span.record("otel.status_description", message);
        }
    }
    true
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for RpcTrace<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if !request.uri().path().starts_with(TRACED_PREFIX) {
            let future = self.inner.call(request);
            return Box::pin(async move {
                Ok(future.await?.map(|body| TracedBody { inner: body, span: None, done: true }))
            });
        }
        let span = rpc_span(request.uri().path(), request.headers());
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(async move {
            let response = tracing::Instrument::instrument(future, span.clone()).await?;
            let done = record_status(&span, response.headers());
            Ok(response.map(|body| TracedBody { inner: body, span: Some(span), done }))
        })
    }
}

/// A response body that keeps the RPC span open (and entered while it is polled) until
/// the last frame, and records the status from the trailers.
#[derive(Debug)]
pub struct TracedBody<B> {
    inner: B,
    span: Option<Span>,
    /// The status is known (headers or trailers).
    done: bool,
}

impl<B> Body for TracedBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let _entered = this.span.as_ref().map(Span::enter);
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let (Some(span), Poll::Ready(Some(Ok(frame)))) = (&this.span, &polled) {
            if let Some(trailers) = frame.trailers_ref() {
                this.done |= record_status(span, trailers);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for TracedBody<B> {
    fn drop(&mut self) {
        // The client went away before the status was sent: the call was cancelled.
        if let (Some(span), false) = (&self.span, self.done) {
            span.record("rpc.grpc.status_code", 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_side_codes_are_errors() {
        let errors: Vec<i32> = (0..=16).filter(|c| is_server_error(*c)).collect();
        assert_eq!(errors, vec![2, 4, 12, 13, 14, 15]);
    }
}
