//! The gRPC listener: accepts TCP connections up to `--max-connections`, speaks TLS
//! when configured, waits for the HTTP/2 preface, and serves HTTP/2 on each connection
//! with hyper until the client closes it, it idles, ages or stops answering pings, or
//! the server shuts down.
//!
//! Tessera runs this loop itself instead of tonic's `Server` for one reason: a
//! connection that reaches `--max-connection-age` must get a graceful shutdown (GOAWAY,
//! the calls in flight finish, the client reconnects elsewhere). tonic 0.14 polls its
//! finished age timer again after starting that shutdown, which panics the connection
//! task and fails every call still in flight on it (tonic issue 2522). Here the timer
//! fires once, and the connection then runs until its last stream ends.
//!
//! A connection's life, and what bounds each stage (an unauthenticated peer must not be
//! able to hold a descriptor for long without doing anything):
//! 1. **accept**: over `--max-connections` open, the new connection is closed at once,
//!    before anything is read (counted; a warning at most every
//!    [`REFUSAL_LOG_INTERVAL`]). The limit keeps descriptors free for worker
//!    replacements and the admin endpoint ([`super::fd_budget`]).
//! 2. **TLS handshake** (when configured): [`TLS_HANDSHAKE_TIMEOUT`].
//! 3. **preface**: the client's HTTP/2 preface within `--connection-preface-timeout`
//!    ([`super::preface`]: hyper has no such timeout).
//! 4. **HTTP/2**: without any call open for `--connection-idle-timeout`, GOAWAY
//!    ([`super::streams`] counts the calls); a peer that does not answer a keepalive
//!    ping (`--http2-keepalive-interval`, `--http2-keepalive-timeout`; hyper's own) is
//!    dropped.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, RootCertStore, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        server::WebPkiClientVerifier,
    },
};
use tonic::transport::server::Connected;

use super::{
    preface,
    streams::{CountedBody, OpenStreams},
};
use crate::{
    config::{ConnectionConfig, TlsConfig},
    telemetry::metrics::Metrics,
};

/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// The age of each connection varies by up to this share either way, so connections
/// opened together (e.g. after a deploy) do not all reconnect at once.
const AGE_JITTER: f64 = 0.1;
/// At most one warning per this interval about connections refused at the limit: a
/// flood must not turn into a flood of log lines.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

// HTTP/2 flow control and h2's small-DATA-frame budget.
//
// Backpressure on a client stream (StreamTiles) works by not reading it: the request
// bytes the server has not read stay in h2 until the stream's window is full, and the
// client then waits. h2 (since 0.4.16) also charges every buffered non-final DATA frame
// under 256 bytes `256 - payload` against a per-connection budget, refunded when the
// frame is read, and sends GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames" when the
// budget runs out. A gRPC client sends each small message in its own frame, so with
// hyper's defaults (1 MiB stream window; budget half the 1 MiB connection window) a
// stalled stream of ~45-byte requests exhausted the budget after ~2 500 unread frames,
// long before its window was full: the connection, and every call on it, died.
//
// hyper does not expose h2's budget setting, but h2 sizes it as half the connection
// window. So the windows are chosen together: each stream may hold at most
// `STREAM_WINDOW` unread bytes, i.e. `STREAM_WINDOW / SMALLEST_MESSAGE_FRAME` frames of
// the smallest message a client plausibly streams, and the connection window is set so
// that its budget covers that many frames on every stream the connection may have open.
// Unread request bytes stay bounded by streams × `STREAM_WINDOW` (4 MiB at the default
// 128 streams), whatever the connection window. A peer sending smaller frames on
// purpose is still cut off, once it has made h2 hold streams × ~310 KiB of frame
// overhead (39 MiB at 128 streams; h2's own default allowed 512 KiB per connection, at
// the same ratio of memory held to bytes sent).

/// `SETTINGS_INITIAL_WINDOW_SIZE`: the request bytes a client may send on one stream
/// before the server reads them. Half the protocol's default: requests are small (a
/// StreamTiles client keeps ~700 tile requests in flight with it; a 1 000-tile GetTiles
/// batch takes a few round trips), and it halves what stalled streams may buffer.
const STREAM_WINDOW: u32 = 32 * 1024;
/// The smallest DATA frame a legitimate client sends when it streams one message per
/// frame: the 5-byte gRPC prefix and a StreamTilesRequest naming a tile of a short
/// asset or layer.
const SMALLEST_MESSAGE_FRAME: u64 = 24;
/// What h2 charges a buffered DATA frame of `n < 256` payload bytes: `256 - n` (its
/// `DEFAULT_DATA_FRAME_OVERHEAD_THRESHOLD`, not exported).
const H2_FRAME_OVERHEAD: u64 = 256;
/// The largest window HTTP/2 allows (2^31 - 1).
const MAX_WINDOW: u64 = (1 << 31) - 1;
/// hyper's own connection window, kept as the floor.
const MIN_CONNECTION_WINDOW: u64 = 1 << 20;

/// The connection window for `max_streams` streams per connection: twice the h2 frame
/// budget that lets every one of them hold a full [`STREAM_WINDOW`] of
/// [`SMALLEST_MESSAGE_FRAME`]-byte frames unread (h2's budget is half the window).
/// Beyond ~3 400 streams it is capped at the protocol's maximum.
fn connection_window(max_streams: u32) -> u32 {
    let frames_per_stream = u64::from(STREAM_WINDOW) / SMALLEST_MESSAGE_FRAME;
    let budget = u64::from(max_streams) * frames_per_stream * (H2_FRAME_OVERHEAD - SMALLEST_MESSAGE_FRAME);
    // Capped at 2^31 - 1, so within u32.
    u32::try_from((2 * budget).clamp(MIN_CONNECTION_WINDOW, MAX_WINDOW)).unwrap_or(u32::MAX >> 1)
}

/// The service every connection serves (tonic's routes): HTTP requests in, responses
/// with a body of `B` out, never failing at the transport level. Named once for the
/// functions of the accept loop.
pub trait GrpcService<B>:
    tower_service::Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<B>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> GrpcService<B> for S where
    S: tower_service::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// A response body hyper can send for [`GrpcService`].
pub trait GrpcBody:
    http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Unpin + Send + 'static
{
}

impl<B> GrpcBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Unpin
        + Send
        + 'static
{
}

/// What every connection is served with.
#[derive(Clone)]
pub struct ConnectionSettings {
    /// The configured streams, age (± [`AGE_JITTER`]) and timeouts.
    pub config: ConnectionConfig,
    /// TLS (and client-certificate checks) when configured.
    pub tls: Option<TlsAcceptor>,
    /// Connections open at once; more are closed right after accept.
    pub max_connections: usize,
}

/// The rustls acceptor for the server's certificate and key, requiring client
/// certificates that chain to the client CA when one is given. ALPN offers only `h2`.
pub fn tls_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_slice_iter(&tls.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--tls-cert: {e}"))?;
    if certs.is_empty() {
        return Err("--tls-cert holds no PEM certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem).map_err(|e| format!("--tls-key: {e}"))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &tls.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(pem) {
                let ca = ca.map_err(|e| format!("--tls-client-ca: {e}"))?;
                roots.add(ca).map_err(|e| format!("--tls-client-ca: {e}"))?;
            }
            if roots.is_empty() {
                return Err("--tls-client-ca holds no PEM certificate".into());
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .map_err(|e| format!("--tls-client-ca: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config =
        builder.with_single_cert(certs, key).map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `service` on every connection `listener` accepts until `shutdown` completes;
/// then stops accepting, shuts every connection down gracefully (GOAWAY; calls in
/// flight finish) and returns once the last one has closed.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    settings: ConnectionSettings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) where
    S: GrpcService<B>,
    B: GrpcBody,
{
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(settings.max_connections.min(Semaphore::MAX_PERMITS)));
    metrics.set_max_connections(settings.max_connections);
    let mut refusals = RefusalLog::default();
    // Every connection holds a receiver; `closed()` says when the last one is gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        // Counted before the close, so the peer never sees one uncounted;
                        // closed before any read: the descriptor is free again at once.
                        metrics.connection_refused();
                        drop(tcp);
                        refusals.refused(peer, settings.max_connections);
                        continue;
                    };
                    // A tile answer is one write; delayed ACKs would add ~40 ms to
                    // every sequential request.
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "cannot turn Nagle's algorithm off");
                    }
                    tokio::spawn(connection(
                        tcp,
                        peer,
                        slot,
                        service.clone(),
                        Arc::clone(&settings),
                        Arc::clone(&metrics),
                        stop_rx.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
}

/// Warnings about connections refused at `--max-connections`, at most one per
/// [`REFUSAL_LOG_INTERVAL`], each saying how many were refused since the last.
#[derive(Debug, Default)]
struct RefusalLog {
    last: Option<Instant>,
    unreported: u64,
}

impl RefusalLog {
    fn refused(&mut self, peer: SocketAddr, limit: usize) {
        self.unreported += 1;
        if self.last.is_some_and(|t| t.elapsed() < REFUSAL_LOG_INTERVAL) {
            return;
        }
        tracing::warn!(
            %peer,
            refused = self.unreported,
            max_connections = limit,
            "refusing connections: --max-connections={limit} are open ({} refused since the last warning)",
            self.unreported
        );
        self.last = Some(Instant::now());
        self.unreported = 0;
    }
}

/// One connection, from the TLS handshake (if any) to its close; it holds its `slot`
/// of `--max-connections` until then.
async fn connection<S, B>(
    tcp: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    service: S,
    settings: Arc<ConnectionSettings>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) where
    S: GrpcService<B>,
    B: GrpcBody,
{
    let _slot = slot;
    let _open = metrics.connection_opened();
    let Some(acceptor) = &settings.tls else {
        return prefaced(tcp, peer, service, &settings, &metrics, stop).await;
    };
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
    let tls = tokio::select! {
        r = handshake => r,
        _ = stop.wait_for(|s| *s) => return,
    };
    match tls {
        Ok(Ok(stream)) => prefaced(stream, peer, service, &settings, &metrics, stop).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, timeout = ?TLS_HANDSHAKE_TIMEOUT, "TLS handshake timed out"),
    }
}

/// Waits (at most `--connection-preface-timeout`) for the client's HTTP/2 preface, then
/// serves HTTP/2; a connection that stays silent is closed.
async fn prefaced<IO, S, B>(
    io: IO,
    peer: SocketAddr,
    service: S,
    settings: &ConnectionSettings,
    metrics: &Metrics,
    mut stop: watch::Receiver<bool>,
) where
    IO: Connected + AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: GrpcService<B>,
    B: GrpcBody,
{
    // tonic reads the peer (and its TLS certificates) from this request extension.
    let info = io.connect_info();
    let mut io = io;
    // `io` outlives the outcome's bookkeeping: a peer sees its connection close only
    // after the close has been counted.
    let read = tokio::select! {
        r = tokio::time::timeout(settings.config.preface_timeout, preface::read(&mut io)) => r,
        _ = stop.wait_for(|s| *s) => return,
    };
    match read {
        Ok(Ok(preface)) => http2(preface.put_back(io), info, peer, service, settings, metrics, stop).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection failed before its HTTP/2 preface"),
        Err(_) => {
            tracing::debug!(
                %peer,
                timeout = ?settings.config.preface_timeout,
                "no HTTP/2 preface within --connection-preface-timeout; closing"
            );
            metrics.connection_preface_timed_out();
        }
    }
}

/// Serves HTTP/2 on an established connection until the client closes it, it idles or
/// reaches its age, or the server shuts down (the latter three: GOAWAY, then calls in
/// flight end).
async fn http2<IO, I, S, B>(
    io: IO,
    info: I,
    peer: SocketAddr,
    service: S,
    settings: &ConnectionSettings,
    metrics: &Metrics,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    I: Clone + Send + Sync + 'static,
    S: GrpcService<B>,
    B: GrpcBody,
{
    let (streams, mut open_streams) = OpenStreams::new();
    let per_request = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let mut request = request.map(tonic::body::Body::new);
        request.extensions_mut().insert(info.clone());
        let mut service = service.clone();
        let open = streams.open();
        async move {
            std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
            let response = service.call(request).await?;
            Ok::<_, Infallible>(response.map(|body| CountedBody::new(body, open)))
        }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.config.max_concurrent_streams)
        .keep_alive_interval(settings.config.keepalive_interval)
        .keep_alive_timeout(settings.config.keepalive_timeout)
        // Fixed windows (no BDP growth): they bound what a stalled stream buffers, see
        // `connection_window`.
        .adaptive_window(false)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(connection_window(settings.config.max_concurrent_streams));
    let conn = builder.serve_connection(TokioIo::new(io), per_request);
    tokio::pin!(conn);
    let age = settings.config.max_age.map(jittered);
    let aged = async move {
        match age {
            Some(age) => tokio::time::sleep(age).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(aged);
    // Idle from the start: a connection that opens no call is closed like one whose
    // calls have ended. The deadline moves each time the last open call ends.
    let idle_timeout = settings.config.idle_timeout;
    let idle = tokio::time::sleep(idle_timeout.unwrap_or(Duration::MAX / 4));
    tokio::pin!(idle);
    // Each of the timers below may fire once: after a graceful shutdown has begun, only
    // the connection itself is polled, until its last stream ends.
    let mut closing = false;
    loop {
        tokio::select! {
            result = &mut conn => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        tracing::debug!(%peer, "no answer to a keepalive ping; connection closed");
                        metrics.connection_keepalive_timed_out();
                    } else {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                return;
            }
            () = &mut aged, if !closing => {
                tracing::debug!(%peer, ?age, "connection reached --max-connection-age; sending GOAWAY");
                metrics.connection_aged();
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = &mut idle, if !closing && idle_timeout.is_some() && *open_streams.borrow() == 0 => {
                tracing::debug!(%peer, ?idle_timeout, "no call within --connection-idle-timeout; sending GOAWAY");
                metrics.connection_idle();
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            Ok(()) = open_streams.changed(), if !closing => {
                if let Some(timeout) = idle_timeout.filter(|_| *open_streams.borrow_and_update() == 0) {
                    idle.as_mut().reset(tokio::time::Instant::now() + timeout);
                }
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// `age` ± [`AGE_JITTER`], at random.
fn jittered(age: Duration) -> Duration {
    age.mul_f64(1.0 + AGE_JITTER * rand::random_range(-1.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_vary_within_the_jitter() {
        let age = Duration::from_secs(300);
        let ages: Vec<Duration> = (0..1000).map(|_| jittered(age)).collect();
        assert!(ages.iter().all(|a| *a >= Duration::from_secs(270) && *a <= Duration::from_secs(330)));
        let spread = ages.iter().max().unwrap().saturating_sub(*ages.iter().min().unwrap());
        assert!(spread > Duration::from_secs(30), "ages barely vary: {spread:?}");
    }

    #[test]
    fn the_connection_window_budgets_every_stream_full_of_the_smallest_frames() {
        // h2 0.4.20: Auto budget = connection window / 2.
        let budget = |streams| u64::from(connection_window(streams)) / 2;
        let stalled_stream_charge =
            u64::from(STREAM_WINDOW) / SMALLEST_MESSAGE_FRAME * (256 - SMALLEST_MESSAGE_FRAME);
        for streams in [1, 8, 128, 1000] {
            assert!(budget(streams) >= u64::from(streams) * stalled_stream_charge, "{streams} streams");
        }
        assert_eq!(connection_window(1), 1 << 20);
        assert_eq!(connection_window(128), 2 * 128 * 1365 * 232);
        assert_eq!(u64::from(connection_window(100_000)), MAX_WINDOW);
    }

    #[test]
    fn tls_settings_that_cannot_work_are_refused_with_the_flag_named() {
        let none = TlsConfig { cert_pem: Vec::new(), key_pem: Vec::new(), client_ca_pem: None };
        assert_eq!(tls_acceptor(&none).err().unwrap(), "--tls-cert holds no PEM certificate");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let good = TlsConfig {
            cert_pem: cert.cert.pem().into_bytes(),
            key_pem: cert.signing_key.serialize_pem().into_bytes(),
            client_ca_pem: None,
        };
        assert!(tls_acceptor(&good).is_ok());
        let no_key = TlsConfig { key_pem: b"not a key".to_vec(), ..good.clone() };
        assert!(tls_acceptor(&no_key).err().unwrap().starts_with("--tls-key: "));
        let empty_ca = TlsConfig { client_ca_pem: Some(Vec::new()), ..good };
        assert_eq!(tls_acceptor(&empty_ca).err().unwrap(), "--tls-client-ca holds no PEM certificate");
    }
}
