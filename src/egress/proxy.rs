//! The forward proxy: an HTTP/1.1 server on 127.0.0.1 that forwards the plain-HTTP
//! requests and opens the `CONNECT` tunnels its [`EgressPolicy`] allows, and answers
//! everything else `403 Forbidden`.
//!
//! Each client connection keeps at most one upstream connection, reused while the
//! client asks for the same origin (curl keeps its connection to the proxy alive across
//! origins). Responses stream through untouched but for hop-by-hop headers, so ranged
//! reads keep their `206`, `Content-Range`, `Content-Length` and `Accept-Ranges`.

use std::{
    convert::Infallible,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header, uri::PathAndQuery,
};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{
    body::Incoming, client::conn::http1 as client, server::conn::http1 as server, service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Mutex,
};
use tokio_util::sync::CancellationToken;

use super::policy::{EgressPolicy, HTTP_PORT, HostPort};

/// How long resolving and connecting to an origin may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a kept upstream connection may take to become ready for the next request
/// before a new one is opened instead.
const REUSE_WAIT: Duration = Duration::from_secs(2);

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), besides those the
/// `Connection` header names.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "upgrade",
];

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Requests (and tunnels) the proxy has let through and refused.
#[derive(Debug, Default)]
pub struct EgressCounters {
    allowed: AtomicU64,
    refused: AtomicU64,
}

impl EgressCounters {
    /// Requests and tunnels the policy allowed (whether or not the origin answered).
    #[must_use]
    pub fn allowed(&self) -> u64 {
        self.allowed.load(Ordering::Relaxed)
    }

    /// Requests and tunnels answered `403 Forbidden`.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// A running egress proxy; it stops (listener and open connections) when dropped.
#[derive(Debug)]
pub struct EgressProxy {
    addr: SocketAddr,
    counters: Arc<EgressCounters>,
    stop: CancellationToken,
}

/// What every connection task shares.
#[derive(Debug)]
struct Shared {
    policy: EgressPolicy,
    counters: Arc<EgressCounters>,
    stop: CancellationToken,
}

/// A kept connection to one origin.
struct Upstream {
    origin: HostPort,
    sender: client::SendRequest<Incoming>,
}

/// Why the proxy did not reach an origin.
enum DialError {
    /// The policy forbids the address the host resolved to.
    Refused(String),
    /// Resolution or connection failed.
    Failed(String),
}

impl EgressProxy {
    /// Binds 127.0.0.1 on a free port and serves `policy` in background tasks.
    pub async fn start(policy: EgressPolicy) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(EgressCounters::default());
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared { policy, counters: Arc::clone(&counters), stop: stop.clone() });
        tokio::spawn(accept(listener, shared));
        Ok(Self { addr, counters, stop })
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The value for GDAL's `GDAL_HTTP_PROXY` (curl's `CURLOPT_PROXY`): `127.0.0.1:PORT`.
    #[must_use]
    pub fn gdal_proxy_value(&self) -> String {
        self.addr.to_string()
    }

    /// What it has allowed and refused so far.
    #[must_use]
    pub fn counters(&self) -> Arc<EgressCounters> {
        Arc::clone(&self.counters)
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => return,
            conn = listener.accept() => match conn {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(e) => {
                    // Out of file descriptors, typically: wait instead of spinning.
                    tracing::warn!(error = %e, "egress proxy cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let upstream = Arc::new(Mutex::new(None::<Upstream>));
    let stop = shared.stop.clone();
    let service = service_fn(move |request| {
        let (shared, upstream) = (Arc::clone(&shared), Arc::clone(&upstream));
        async move { Ok::<_, Infallible>(handle(request, &shared, &upstream).await) }
    });
    let conn = server::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades();
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "egress proxy connection ended");
            }
        }
        () = stop.cancelled() => {}
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: &Shared,
    upstream: &Mutex<Option<Upstream>>,
) -> Response<ProxyBody> {
    if request.method() == Method::CONNECT {
        tunnel(request, shared).await
    } else {
        forward(request, shared, upstream).await
    }
}

/// A plain-HTTP request: checked, sent to the origin in origin form, answered with the
/// origin's response.
async fn forward(
    request: Request<Incoming>,
    shared: &Shared,
    upstream: &Mutex<Option<Upstream>>,
) -> Response<ProxyBody> {
    let target = request.uri().to_string();
    let line = format!("{} {target}", request.method());
    let origin = match shared.policy.check_request(&target) {
        Ok(origin) => origin,
        Err(why) => return shared.refuse(&line, &why),
    };
    let mut kept = upstream.lock().await;
    let reused = match kept.take() {
        Some(mut up) if up.origin == origin => {
            let ready = tokio::time::timeout(REUSE_WAIT, up.sender.ready()).await;
            matches!(ready, Ok(Ok(()))).then_some(up.sender)
        }
        _ => None,
    };
    let mut sender = match reused {
        Some(sender) => sender,
        None => match open(shared, &origin).await {
            Ok(sender) => sender,
            Err(DialError::Refused(why)) => return shared.refuse(&line, &why),
            Err(DialError::Failed(why)) => return bad_gateway(&line, &why),
        },
    };
    shared.counters.allowed.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(request = line, "egress allowed: {line}");
    match sender.send_request(origin_form(request, &origin)).await {
        Ok(response) => {
            *kept = Some(Upstream { origin, sender });
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => bad_gateway(&line, &e.to_string()),
    }
}

/// An HTTP/1.1 connection to `origin`, its driver running in a task.
async fn open(shared: &Shared, origin: &HostPort) -> Result<client::SendRequest<Incoming>, DialError> {
    let stream = dial(&shared.policy, origin).await?;
    let (sender, conn) = client::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| DialError::Failed(format!("HTTP handshake with {origin}: {e}")))?;
    let stop = shared.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            result = conn => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "egress upstream connection ended");
                }
            }
            () = stop.cancelled() => {}
        }
    });
    Ok(sender)
}

/// A `CONNECT`: checked, connected, answered `200` and then spliced both ways.
async fn tunnel(request: Request<Incoming>, shared: &Shared) -> Response<ProxyBody> {
    let authority = request.uri().authority().map_or_else(String::new, ToString::to_string);
    let line = format!("CONNECT {authority}");
    let origin = match shared.policy.check_connect(&authority) {
        Ok(origin) => origin,
        Err(why) => return shared.refuse(&line, &why),
    };
    let mut stream = match dial(&shared.policy, &origin).await {
        Ok(stream) => stream,
        Err(DialError::Refused(why)) => return shared.refuse(&line, &why),
        Err(DialError::Failed(why)) => return bad_gateway(&line, &why),
    };
    shared.counters.allowed.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(request = line, "egress allowed: {line}");
    let stop = shared.stop.clone();
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut stream) => {}
                    () = stop.cancelled() => {}
                }
            }
            Err(e) => tracing::debug!(error = %e, "egress tunnel was not upgraded"),
        }
    });
    Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed())
}

/// Resolves `origin` here (so the policy sees the addresses) and connects to the first
/// allowed address that answers.
async fn dial(policy: &EgressPolicy, origin: &HostPort) -> Result<TcpStream, DialError> {
    let resolved = tokio::time::timeout(
        DEFAULT_CONNECT_TIMEOUT,
        tokio::net::lookup_host((origin.host.as_str(), origin.port)),
    )
    .await
    .map_err(|_| DialError::Failed(format!("resolving {origin} timed out")))?
    .map_err(|e| DialError::Failed(format!("cannot resolve {origin}: {e}")))?;
    let (usable, forbidden): (Vec<SocketAddr>, Vec<SocketAddr>) =
        resolved.partition(|addr| policy.may_connect(origin, addr.ip()));
    if let (None, Some(addr)) = (usable.first(), forbidden.first()) {
        return Err(DialError::Refused(format!("{origin} resolves to the link-local address {}", addr.ip())));
    }
    let mut last_error = format!("{origin} resolves to no address");
    for addr in usable {
        match tokio::time::timeout(DEFAULT_CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last_error = format!("cannot connect to {origin} ({addr}): {e}"),
            Err(_) => last_error = format!("connecting to {origin} ({addr}) timed out"),
        }
    }
    Err(DialError::Failed(last_error))
}

/// `request` as the origin expects it: origin-form target, its own `Host`, no
/// hop-by-hop headers.
fn origin_form(request: Request<Incoming>, origin: &HostPort) -> Request<Incoming> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::from(path);
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    if let Ok(host) = HeaderValue::from_str(&origin.authority(HTTP_PORT)) {
        parts.headers.insert(header::HOST, host);
    }
    Request::from_parts(parts, body)
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

impl Shared {
    /// The `403` for a request the policy refuses, logged once.
    fn refuse(&self, line: &str, why: &str) -> Response<ProxyBody> {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(request = line, why, "egress refused: {line}: {why}");
        text_response(StatusCode::FORBIDDEN, format!("tessera egress: {line} refused: {why}\n"))
    }
}

/// The `502` for an allowed request whose origin could not be reached.
fn bad_gateway(line: &str, why: &str) -> Response<ProxyBody> {
    tracing::warn!(request = line, why, "egress upstream failed: {line}: {why}");
    text_response(StatusCode::BAD_GATEWAY, format!("tessera egress: {line} failed: {why}\n"))
}

fn text_response(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
