//! The admin HTTP endpoint (`--admin-listen`, off by default): `GET /metrics` in the
//! Prometheus text format with the pool's counters and occupancy. Deliberately tiny:
//! one request per connection, no keep-alive, nothing but `/metrics`.

use std::{fmt::Write as _, net::SocketAddr, sync::Arc};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::pool::WorkerPool;

/// The metrics page.
#[must_use]
pub fn render_metrics(pool: &WorkerPool) -> String {
    let mut out = String::new();
    for (name, help, value) in pool.stats().counters() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    }
    let (busy, idle, waiting) = pool.occupancy();
    for (name, help, value) in [
        ("tessera_pool_busy_workers", "Workers running a job.", busy),
        ("tessera_pool_idle_workers", "Workers waiting for a job.", idle),
        ("tessera_pool_waiting_jobs", "Jobs waiting for a worker.", waiting),
        ("tessera_worker_processes", "Live worker processes.", pool.worker_pids().len()),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    }
    out
}

/// Binds `addr` and serves `/metrics` in the background.
pub async fn spawn(addr: SocketAddr, pool: Arc<WorkerPool>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "admin endpoint on http://{local}/metrics");
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let read = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf));
                let Ok(Ok(n)) = read.await else { return };
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if request.starts_with("GET /metrics ") {
                    ("200 OK", render_metrics(&pool))
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
