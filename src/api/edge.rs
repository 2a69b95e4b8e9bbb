//! What happens to a call before and after the tile API sees it: the bearer-token check
//! and the translation of the transport's own errors into Tessera's codes.
//!
//! tonic refuses an over-long request message with OUT_OF_RANGE and an undecodable one
//! with INTERNAL, in words that name neither the limit's flag nor the fix. Neither is a
//! server fault: [`EdgeStatusLayer`] rewrites them to RESOURCE_EXHAUSTED and
//! INVALID_ARGUMENT, naming `--max-request-size` or the message type, wherever the status
//! travels (response headers of a trailers-only answer, or the trailers of a stream).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tonic::{Code, Status};

/// Checks `authorization: Bearer TOKEN` against the accepted tokens.
#[derive(Clone)]
pub struct BearerAuth {
    tokens: std::sync::Arc<[String]>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth").field("tokens", &self.tokens.len()).finish()
    }
}

/// Compares without an early exit (`subtle`), so the time taken says nothing about how
/// much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

impl BearerAuth {
    /// A check that accepts any of `tokens` (which must not be empty).
    #[must_use]
    pub fn new(tokens: Vec<String>) -> Self {
        Self { tokens: tokens.into() }
    }

    /// Ok when `metadata` carries an accepted token.
    pub fn check(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let Some(value) = metadata.get("authorization") else {
            return Err(Status::unauthenticated(
                "no bearer token: this server requires the metadata 'authorization: Bearer <token>'",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| {
                Status::unauthenticated("the 'authorization' metadata is not of the form 'Bearer <token>'")
            })?;
        // Every token is compared, so the answer takes as long whichever one matches.
        let accepted =
            self.tokens.iter().fold(false, |ok, t| ok | constant_time_eq(t.as_bytes(), token.as_bytes()));
        if accepted { Ok(()) } else { Err(Status::unauthenticated("the bearer token is not accepted")) }
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        self.check(request.metadata())?;
        Ok(request)
    }
}

/// Rewrites the transport's message-size and decode errors; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct EdgeStatusLayer {
    /// `--max-request-size`, for the message.
    pub max_request_size: usize,
}

impl<S> tower_layer::Layer<S> for EdgeStatusLayer {
    type Service = EdgeStatus<S>;
    fn layer(&self, inner: S) -> Self::Service {
        EdgeStatus { inner, max_request_size: self.max_request_size }
    }
}

/// See [`EdgeStatusLayer`].
#[derive(Debug, Clone)]
pub struct EdgeStatus<S> {
    inner: S,
    max_request_size: usize,
}

/// What the call was, for the messages: the method path.
#[derive(Debug, Clone)]
struct CallInfo {
    method: String,
    max_request_size: usize,
}

/// The status Tessera sends instead of `status`, if it rewrites it.
fn rewrite(status: &Status, call: &CallInfo) -> Option<Status> {
    let message = status.message();
    match status.code() {
        Code::OutOfRange if message.starts_with("Error, decoded message length too large") => {
            let found = message
                .split("found ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .map_or_else(String::new, |n| format!(" of {n} bytes"));
            Some(Status::resource_exhausted(format!(
                "the request message{found} exceeds this server's limit of {} bytes (--max-request-size); split the batch or send fewer assets",
                call.max_request_size
            )))
        }
        Code::Internal if message.starts_with("failed to decode Protobuf message") => {
            Some(Status::invalid_argument(format!(
                "the request to {} is not a valid protobuf message of its type: {message}",
                call.method
            )))
        }
        _ => None,
    }
}

/// Rewrites the status in `headers` (response headers or trailers) in place.
fn rewrite_headers(headers: &mut HeaderMap, call: &CallInfo) {
    if !headers.contains_key("grpc-status") {
        return;
    }
    let Some(status) = Status::from_header_map(headers) else { return };
    if let Some(new) = rewrite(&status, call) {
        headers.remove("grpc-status");
        headers.remove("grpc-message");
        headers.remove("grpc-status-details-bin");
        let _ = new.add_header(headers);
    }
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for EdgeStatus<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<EdgeBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let call =
            CallInfo { method: request.uri().path().to_owned(), max_request_size: self.max_request_size };
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            rewrite_headers(response.headers_mut(), &call);
            Ok(response.map(|inner| EdgeBody { inner, call }))
        })
    }
}

/// A response body whose trailers get the same rewrite.
#[derive(Debug)]
pub struct EdgeBody<B> {
    inner: B,
    call: CallInfo,
}

impl<B> Body for EdgeBody<B>
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
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => {
                let mut trailers = frame.into_trailers().unwrap_or_default();
                rewrite_headers(&mut trailers, &this.call);
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> CallInfo {
        CallInfo { method: "/tessera.v1.TileService/GetTile".into(), max_request_size: 4096 }
    }

    #[test]
    fn transport_errors_become_tessera_codes() {
        let big = Status::out_of_range(
            "Error, decoded message length too large: found 5000 bytes, the limit is: 4096 bytes",
        );
        let new = rewrite(&big, &call()).unwrap();
        assert_eq!(new.code(), Code::ResourceExhausted);
        assert!(
            new.message()
                .contains("of 5000 bytes exceeds this server's limit of 4096 bytes (--max-request-size)")
        );
        let garbage = Status::internal("failed to decode Protobuf message: invalid wire type");
        let new = rewrite(&garbage, &call()).unwrap();
        assert_eq!(new.code(), Code::InvalidArgument);
        assert!(new.message().contains("/tessera.v1.TileService/GetTile is not a valid protobuf"));
        assert!(rewrite(&Status::internal("worker crashed"), &call()).is_none());
    }

    #[test]
    fn headers_are_rewritten_in_place() {
        let mut headers = HeaderMap::new();
        Status::internal("failed to decode Protobuf message: buffer underflow")
            .add_header(&mut headers)
            .unwrap();
        rewrite_headers(&mut headers, &call());
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
    }

    #[test]
    fn tokens_are_checked() {
        let auth = BearerAuth::new(vec!["s3cret".into(), "other".into()]);
        let mut md = tonic::metadata::MetadataMap::new();
        assert!(auth.check(&md).unwrap_err().message().contains("no bearer token"));
        md.insert("authorization", "Bearer nope".parse().unwrap());
        assert_eq!(auth.check(&md).unwrap_err().message(), "the bearer token is not accepted");
        md.insert("authorization", "Basic czNjcmV0".parse().unwrap());
        assert!(auth.check(&md).unwrap_err().message().contains("Bearer <token>"));
        md.insert("authorization", "Bearer other".parse().unwrap());
        assert!(auth.check(&md).is_ok());
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
    }
}
