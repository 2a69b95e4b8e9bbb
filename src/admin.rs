//! The admin HTTP endpoint (`--admin-listen`, off by default): `GET /metrics` in the
//! Prometheus text format ([`crate::telemetry::metrics`]), served by hyper's HTTP/1.1
//! server. Deliberately small: one request per connection (no keep-alive), a 5 s limit
//! on the request head, nothing but `/metrics`.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::telemetry::metrics::{Metrics, render_prometheus};

/// Admin connections served at once; more are closed at accept.
const MAX_ADMIN_CONNECTIONS: usize = 32;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept`, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Binds `addr` and serves `/metrics` in the background.
pub async fn spawn(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "admin endpoint on http://{local}/metrics");
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            // Out of file descriptors, most likely: wait instead of spinning.
            let Ok((conn, _)) = listener.accept().await else {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            };
            // Beyond the cap the connection is closed unread: the admin port cannot be
            // used to hold the server's descriptors (the fd budget of --max-connections
            // reserves this many).
            let Ok(permit) = Arc::clone(&open).try_acquire_owned() else { continue };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let _permit = permit;
                let service = service_fn(move |request: Request<Incoming>| {
                    let body = answer(&request, &metrics);
                    async move { Ok::<_, Infallible>(body) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .serve_connection(TokioIo::new(conn), service)
                    .await;
            });
        }
    });
    Ok(local)
}

/// `GET /metrics`, or 404 saying what is served.
fn answer(request: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, body) = if request.method() == Method::GET && request.uri().path() == "/metrics" {
        (StatusCode::OK, render_prometheus(metrics))
    } else {
        (StatusCode::NOT_FOUND, "only GET /metrics is served here\n".to_owned())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}
