//! The calls (HTTP/2 streams) open on one connection, counted so that
//! `--connection-idle-timeout` knows when the connection has none.
//!
//! hyper does not say how many streams a server connection has open. A call counts from
//! the moment its request reaches the service until its response body is dropped, which
//! hyper does when the body has been sent to the end or the stream was reset: the
//! response of a streaming call keeps it open for as long as it streams.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::watch;

/// Counts a connection's open calls; the receiver of [`OpenStreams::new`] sees the count.
#[derive(Debug, Clone)]
pub struct OpenStreams(Arc<watch::Sender<usize>>);

impl OpenStreams {
    /// A counter at zero, and the receiver that follows it.
    #[must_use]
    pub fn new() -> (Self, watch::Receiver<usize>) {
        let (tx, rx) = watch::channel(0);
        (Self(Arc::new(tx)), rx)
    }

    /// A call has started; it is open until the guard is dropped.
    #[must_use]
    pub fn open(&self) -> OpenStream {
        self.0.send_modify(|n| *n += 1);
        OpenStream(Arc::clone(&self.0))
    }
}

/// One open call, counted until dropped.
#[derive(Debug)]
pub struct OpenStream(Arc<watch::Sender<usize>>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A response body that keeps its call counted as open until it is dropped.
#[derive(Debug)]
pub struct CountedBody<B> {
    inner: B,
    _open: OpenStream,
}

impl<B> CountedBody<B> {
    /// `inner`, counted by `open`.
    pub fn new(inner: B, open: OpenStream) -> Self {
        Self { inner, _open: open }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_counts_until_its_guard_is_dropped() {
        let (streams, rx) = OpenStreams::new();
        let a = streams.open();
        let b = CountedBody::new(http_body_util::Empty::<bytes::Bytes>::new(), streams.open());
        assert_eq!(*rx.borrow(), 2);
        drop(a);
        assert_eq!(*rx.borrow(), 1);
        drop(b);
        assert_eq!(*rx.borrow(), 0);
    }
}
