//! The benchmark client's connection: a call's frames leave in one write.
//!
//! tonic's client (hyper's HTTP/2 client) writes a unary call's HEADERS frame and its
//! DATA frame in two writes: the request body is sent by a task of its own that hyper
//! starts once the stream is open, after the HEADERS have been flushed. The C core of
//! gRPC (behind Python's grpcio, the client of `bench/pair.py` and the Python example)
//! writes such a call in one `sendmsg`. The two writes wake the server twice for every call, so a
//! benchmark with the tonic client measured a cost of the client as the server's
//! (BENCHMARKS.md (i)).
//!
//! This connection keeps what hyper writes in a buffer, and on a flush lets the runtime
//! run the other tasks that are ready once (the body's among them) before the buffer
//! goes out in one write. Hand-written because no crate does it: tokio's `BufWriter`
//! writes on every flush, and hyper has no setting for it. Only the `tessera bench`
//! client uses it; `tessera get` and the examples keep the stock connection.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tonic::transport::{Channel, Endpoint};

use super::ClientError;
use crate::pb::v1::tile_service_client::TileServiceClient;

/// Past this many bytes held, the buffer is written out at once (a large request).
const HOLD_LIMIT: usize = 64 * 1024;

/// Connects the benchmark's client to `server` (an `http://host:port` URL or a bare
/// `host:port`) over a [`OneWrite`] connection. An `https://` address gets the stock
/// connection ([`super::connect`]).
pub async fn connect(server: &str) -> Result<TileServiceClient<Channel>, ClientError> {
    if server.starts_with("https://") {
        return super::connect(server).await;
    }
    let url = super::server_url(server);
    let fail = |source| ClientError::Connect { server: url.clone(), source };
    let channel = Endpoint::from_shared(url.clone())
        .map_err(fail)?
        .connect_with_connector(Connector)
        .await
        .map_err(fail)?;
    Ok(TileServiceClient::new(channel).max_decoding_message_size(super::MAX_RESPONSE_BYTES))
}

/// A stream whose writes are held until a flush has let the runtime turn once.
pub struct OneWrite<S> {
    stream: S,
    held: Vec<u8>,
    /// Whether the current flush has already yielded to the runtime once.
    yielded: bool,
}

impl<S: AsyncWrite + Unpin> OneWrite<S> {
    fn new(stream: S) -> Self {
        Self { stream, held: Vec::new(), yielded: false }
    }

    /// Writes out what is held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    /// Holds `bufs`, after writing out what is held if it would grow past the limit.
    fn poll_hold(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.held.len() + len > HOLD_LIMIT {
            ready!(self.poll_drain(cx))?;
        }
        for b in bufs {
            self.held.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for OneWrite<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for OneWrite<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_hold(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_hold(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.held.is_empty() && !this.yielded {
            // Once: the tasks already woken (the call's body) run first and add to it.
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(cx))?;
        this.yielded = false;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// tonic's connector: a TCP connection (no delay) to the URI's host and port.
#[derive(Clone, Copy)]
struct Connector;

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<OneWrite<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| io::Error::other(format!("{uri}: no host")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(80);
            let stream = TcpStream::connect((host, port)).await?;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(OneWrite::new(stream)))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::Wake,
    };

    use super::*;

    /// An output that records each write it is given.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>, bool);

    impl AsyncWrite for Writes {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().1 = true;
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counting_waker() -> (Arc<Wakes>, std::task::Waker) {
        let woken = Arc::new(Wakes::default());
        (Arc::clone(&woken), woken.into())
    }

    fn write(s: &mut OneWrite<Writes>, cx: &mut Context<'_>, bytes: &[u8]) {
        assert!(matches!(Pin::new(s).poll_write(cx, bytes), Poll::Ready(Ok(n)) if n == bytes.len()));
    }

    #[test]
    fn what_is_written_before_and_during_a_flush_leaves_in_one_write() {
        let (woken, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut s = OneWrite::new(Writes::default());
        write(&mut s, &mut cx, b"HEADERS");
        // The first flush yields (and asks to be polled again) without writing.
        assert!(Pin::new(&mut s).poll_flush(&mut cx).is_pending());
        assert_eq!(woken.0.load(Ordering::Relaxed), 1);
        assert!(s.stream.0.is_empty());
        // What another task adds meanwhile goes with it.
        let parts = [io::IoSlice::new(b"DA"), io::IoSlice::new(b"TA")];
        assert!(matches!(Pin::new(&mut s).poll_write_vectored(&mut cx, &parts), Poll::Ready(Ok(4))));
        assert!(matches!(Pin::new(&mut s).poll_flush(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(s.stream.0, vec![b"HEADERSDATA".to_vec()]);
        // The next call yields once again; a flush with nothing held does not.
        write(&mut s, &mut cx, b"next");
        assert!(Pin::new(&mut s).poll_flush(&mut cx).is_pending());
        assert!(matches!(Pin::new(&mut s).poll_flush(&mut cx), Poll::Ready(Ok(()))));
        assert!(matches!(Pin::new(&mut s).poll_flush(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(woken.0.load(Ordering::Relaxed), 2);
        assert_eq!(s.stream.0.len(), 2);
    }

    #[test]
    fn a_large_write_and_a_shutdown_write_out_what_is_held_first() {
        let (woken, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut s = OneWrite::new(Writes::default());
        write(&mut s, &mut cx, b"small");
        let large = vec![7u8; HOLD_LIMIT];
        write(&mut s, &mut cx, &large);
        assert_eq!(s.stream.0, vec![b"small".to_vec()]);
        write(&mut s, &mut cx, b"tail");
        assert_eq!(s.stream.0.len(), 2, "the held limit was reached");
        assert!(matches!(Pin::new(&mut s).poll_shutdown(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(s.stream.0, vec![b"small".to_vec(), large, b"tail".to_vec()]);
        assert!(s.stream.1, "the stream was shut down");
        assert_eq!(woken.0.load(Ordering::Relaxed), 0);
    }
}
