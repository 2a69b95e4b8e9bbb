//! A loopback HTTP/1.1 server for files of one directory that answers HEAD and ranged
//! GETs (what GDAL's `/vsicurl/` sends) and counts the requests and bytes it served.

use std::{
    fmt::Write as _,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// What the server has served so far.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub body_bytes: AtomicU64,
    /// Requests by path ("/utm_rgb_00.tif").
    pub by_path: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Counts {
    /// Requests for `path` so far.
    pub fn of(&self, path: &str) -> u64 {
        self.by_path.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// Serves `root` on 127.0.0.1 (a free port); returns the base URL and the counters.
pub async fn serve(root: PathBuf) -> (String, Arc<Counts>) {
    serve_with_redirects(root, Vec::new()).await
}

/// Like [`serve`], but answers a request for `path` with `302 Found` and `Location: to`
/// for each `(path, to)` of `redirects` (counted like any request).
pub async fn serve_with_redirects(root: PathBuf, redirects: Vec<(String, String)>) -> (String, Arc<Counts>) {
    let redirects = Arc::new(redirects);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let counts = Arc::new(Counts::default());
    let c = Arc::clone(&counts);
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else { continue };
            let (root, counts, redirects) = (root.clone(), Arc::clone(&c), Arc::clone(&redirects));
            tokio::spawn(async move {
                let (read, mut write) = conn.into_split();
                let mut lines = BufReader::new(read).lines();
                // One request per iteration: keep-alive, as curl expects.
                while let Ok(Some(request_line)) = lines.next_line().await {
                    let mut range = None;
                    while let Ok(Some(header)) = lines.next_line().await {
                        if header.is_empty() {
                            break;
                        }
                        let lower = header.to_ascii_lowercase();
                        if let Some(r) = lower.strip_prefix("range: bytes=") {
                            let (a, b) = r.split_once('-').unwrap();
                            range = Some((a.parse::<u64>().unwrap(), b.parse::<u64>().ok()));
                        }
                    }
                    counts.requests.fetch_add(1, Ordering::SeqCst);
                    let mut parts = request_line.split(' ');
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
                    *counts.by_path.lock().unwrap().entry(path.to_owned()).or_default() += 1;
                    let redirect = redirects.iter().find(|(from, _)| from == path).map(|(_, to)| to);
                    let response = if let Some(to) = redirect {
                        format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n")
                            .into_bytes()
                    } else {
                        match std::fs::read(root.join(path.trim_start_matches('/'))) {
                            Err(_) => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
                            Ok(data) => {
                                let len = data.len() as u64;
                                let (status, start, end) = match range {
                                    Some((a, b)) => (
                                        "206 Partial Content",
                                        a.min(len),
                                        b.map_or(len, |b| (b + 1).min(len)),
                                    ),
                                    None => ("200 OK", 0, len),
                                };
                                let mut head = format!(
                                    "HTTP/1.1 {status}\r\naccept-ranges: bytes\r\ncontent-length: {}\r\n",
                                    end - start
                                );
                                if range.is_some() {
                                    let _ =
                                        write!(head, "content-range: bytes {start}-{}/{len}\r\n", end - 1);
                                }
                                head.push_str("\r\n");
                                let mut out = head.into_bytes();
                                if method == "GET" {
                                    out.extend_from_slice(&data[start as usize..end as usize]);
                                    counts.body_bytes.fetch_add(end - start, Ordering::SeqCst);
                                }
                                out
                            }
                        }
                    };
                    if write.write_all(&response).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (base, counts)
}
