//! The admin HTTP endpoint (`--admin-listen`, off by default): `GET /metrics` in the
//! Prometheus text format ([`crate::telemetry::metrics`]). Deliberately tiny: one
//! request per connection, no keep-alive, nothing but `/metrics`.

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{
    pool::WorkerPool,
    telemetry::metrics::{Metrics, render_prometheus},
};

/// Admin connections served at once; more are closed at accept.
const MAX_ADMIN_CONNECTIONS: usize = 32;
/// Pause after a failed `accept`, so the loop does not spin.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// Binds `addr` and serves `/metrics` in the background.
pub async fn spawn(
    addr: SocketAddr,
    pool: Arc<WorkerPool>,
    metrics: Arc<Metrics>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "admin endpoint on http://{local}/metrics");
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            // Out of file descriptors, most likely: wait instead of spinning.
            let Ok((mut conn, _)) = listener.accept().await else {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            };
            // Beyond the cap the connection is closed unread: the admin port cannot be
            // used to hold the server's descriptors (the fd budget of --max-connections
            // reserves this many).
            let Ok(permit) = Arc::clone(&open).try_acquire_owned() else { continue };
            let pool = Arc::clone(&pool);
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let _permit = permit;
                let mut buf = vec![0u8; 2048];
                let read = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf));
                let Ok(Ok(n)) = read.await else { return };
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if request.starts_with("GET /metrics ") {
                    ("200 OK", render_prometheus(&metrics, &pool))
                } else {
                    ("404 Not Found", "only GET /metrics is served here\n".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(local)
}
