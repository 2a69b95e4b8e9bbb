//! A loopback HTTP/1.1 server for files of one directory that answers HEAD and ranged
//! GETs (what an origin of COGs answers), counts the requests and bytes it served, and
//! misbehaves on demand ([`Faults`]): error statuses, connections reset mid-body, bodies
//! cut short, stalls, and objects replaced between requests.
//!
//! Every answer carries an `ETag` (a hash of the bytes served under the name) and a
//! `Last-Modified` (the version of the name: the original file, then each replacement);
//! an `If-Match` that names another ETag is answered `412 Precondition Failed`, as
//! origins do.

use std::{
    collections::HashMap,
    fmt::Write as _,
    hash::{Hash, Hasher},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

/// What the server has served so far.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub body_bytes: AtomicU64,
    /// Requests by path ("/utm_rgb_00.tif").
    pub by_path: Mutex<HashMap<String, u64>>,
    /// Requests by path and the first byte of their range (0 for a request without one).
    pub by_range_start: Mutex<HashMap<(String, u64), u64>>,
    /// Faults injected, by kind ("503", "reset", "truncated", "stall").
    pub faults: Mutex<HashMap<&'static str, u64>>,
}

impl Counts {
    /// Requests for `path` so far.
    pub fn of(&self, path: &str) -> u64 {
        self.by_path.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Requests for `path` whose range started at byte `start` (0 also counts requests
    /// without a range).
    pub fn starting_at(&self, path: &str, start: u64) -> u64 {
        self.by_range_start.lock().unwrap().get(&(path.to_owned(), start)).copied().unwrap_or(0)
    }

    /// Requests for `path` whose range started after byte `start`.
    pub fn starting_after(&self, path: &str, start: u64) -> u64 {
        let by_start = self.by_range_start.lock().unwrap();
        by_start.iter().filter(|((p, s), _)| p == path && *s > start).map(|(_, n)| n).sum()
    }

    /// Requests so far.
    pub fn total(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Faults of `kind` injected so far.
    pub fn injected(&self, kind: &str) -> u64 {
        self.faults.lock().unwrap().get(kind).copied().unwrap_or(0)
    }
}

/// One request as the fault rules see it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its number on this server, from 1.
    pub number: u64,
    /// Its number among the requests for its path, from 1.
    pub number_for_path: u64,
    pub method: String,
    pub path: String,
    /// The `Range: bytes=a-b` asked for (`b` absent for an open range).
    pub range: Option<(u64, Option<u64>)>,
}

impl Request {
    /// The first byte asked for (0 without a range).
    pub fn range_start(&self) -> u64 {
        self.range.map_or(0, |(a, _)| a)
    }
}

/// How the server misbehaves for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers this status with an empty body.
    Status(u16),
    /// Sends the head and half the body, then resets the connection (RST, no FIN).
    ResetMidBody,
    /// Sends the head (with the whole range's Content-Length) and half the body, then
    /// closes the connection.
    Truncate,
    /// Waits this long, then answers normally.
    Stall(Duration),
}

impl Fault {
    fn kind(self) -> &'static str {
        match self {
            Self::Status(503) => "503",
            Self::Status(_) => "status",
            Self::ResetMidBody => "reset",
            Self::Truncate => "truncated",
            Self::Stall(_) => "stall",
        }
    }
}

type Predicate = Box<dyn Fn(&Request) -> bool + Send + Sync>;

struct Rule {
    when: Predicate,
    fault: Fault,
    /// How many more times the rule applies (`None`: always).
    left: Option<AtomicU64>,
}

/// The faults of one server: rules tried in order (the first that matches a request
/// decides its fault) and replacements of files. Clones share their state, so a test
/// can keep one to replace a file while the server runs.
#[derive(Clone, Default)]
pub struct Faults {
    rules: Arc<Vec<Rule>>,
    /// For a path: the files served under it in turn, with the per-path request number
    /// after which each one takes over.
    replacements: Arc<Mutex<Replacements>>,
}

/// Files served under a path in turn: (the per-path request number after which it is
/// served, the file).
type Replacements = HashMap<String, Vec<(u64, PathBuf)>>;

impl Faults {
    /// No fault: the server answers every request well.
    pub fn none() -> Self {
        Self::default()
    }

    /// `fault` for every request that `when` matches.
    pub fn on(self, when: impl Fn(&Request) -> bool + Send + Sync + 'static, fault: Fault) -> Self {
        self.rule(Box::new(when), fault, None)
    }

    /// `fault` for the first `times` requests that `when` matches; the next ones are
    /// answered well (unless a later rule matches).
    pub fn on_first(
        self,
        times: u64,
        when: impl Fn(&Request) -> bool + Send + Sync + 'static,
        fault: Fault,
    ) -> Self {
        self.rule(Box::new(when), fault, Some(times))
    }

    /// `fault` for every `k`-th request (requests k, 2k, 3k... of the server).
    pub fn every(self, k: u64, fault: Fault) -> Self {
        self.on(move |r| r.number % k == 0, fault)
    }

    fn rule(self, when: Predicate, fault: Fault, times: Option<u64>) -> Self {
        let mut rules =
            Arc::try_unwrap(self.rules).unwrap_or_else(|_| panic!("rules are set before serving"));
        rules.push(Rule { when, fault, left: times.map(AtomicU64::new) });
        Self { rules: Arc::new(rules), replacements: self.replacements }
    }

    /// After the `after`-th request for `path`, `file` is served under it instead (new
    /// bytes, a new ETag and Last-Modified): an object replaced at the origin.
    pub fn replaced_after(self, path: &str, after: u64, file: PathBuf) -> Self {
        self.replacements.lock().unwrap().entry(path.to_owned()).or_default().push((after, file));
        self
    }

    /// `file` is served under `path` from the next request on.
    pub fn replace_now(&self, path: &str, file: PathBuf, counts: &Counts) {
        self.replacements.lock().unwrap().entry(path.to_owned()).or_default().push((counts.of(path), file));
    }

    /// The fault for `request`, if any (a rule with a count left is used up by one).
    fn pick(&self, request: &Request) -> Option<Fault> {
        self.rules.iter().find_map(|rule| {
            if !(rule.when)(request) {
                return None;
            }
            match &rule.left {
                None => Some(rule.fault),
                Some(left) => left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                    .then_some(rule.fault),
            }
        })
    }

    /// The file served for `request` under `root` and its version (0: the original).
    fn file(&self, root: &Path, request: &Request) -> (PathBuf, u64) {
        let replacements = self.replacements.lock().unwrap();
        let taken: Vec<&PathBuf> = replacements
            .get(&request.path)
            .into_iter()
            .flatten()
            .filter(|(after, _)| request.number_for_path > *after)
            .map(|(_, file)| file)
            .collect();
        match taken.last() {
            Some(file) => ((*file).clone(), taken.len() as u64),
            None => (root.join(request.path.trim_start_matches('/')), 0),
        }
    }
}

/// The strong ETag of `bytes`: a hash of them.
fn etag(bytes: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

/// The Last-Modified date of version `v` of a name: a day per version from 2024-01-01.
fn last_modified(v: u64) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    format!("{}, {:02} Jan 2024 00:00:00 GMT", DAYS[(v % 7) as usize], v % 31 + 1)
}

/// Serves `root` on 127.0.0.1 (a free port); returns the base URL and the counters.
pub async fn serve(root: PathBuf) -> (String, Arc<Counts>) {
    serve_with_redirects(root, Vec::new()).await
}

/// Like [`serve`], but answers a request for `path` with `302 Found` and `Location: to`
/// for each `(path, to)` of `redirects` (counted like any request).
pub async fn serve_with_redirects(root: PathBuf, redirects: Vec<(String, String)>) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let counts = Origin::new(root, redirects, Faults::none()).spawn(listener, None);
    (base, counts)
}

/// Like [`serve`], misbehaving as `faults` say.
pub async fn serve_with_faults(root: PathBuf, faults: Faults) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let counts = Origin::new(root, Vec::new(), faults).spawn(listener, None);
    (base, counts)
}

/// Like [`serve`], over TLS with `tls` (base URL `https://127.0.0.1:PORT`).
pub async fn serve_tls(root: PathBuf, tls: tokio_rustls::TlsAcceptor) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let counts = Origin::new(root, Vec::new(), Faults::none()).spawn(listener, Some(tls));
    (base, counts)
}

/// What one server serves and how.
struct Origin {
    root: PathBuf,
    redirects: Vec<(String, String)>,
    faults: Faults,
    counts: Arc<Counts>,
}

impl Origin {
    fn new(root: PathBuf, redirects: Vec<(String, String)>, faults: Faults) -> Arc<Self> {
        Arc::new(Self { root, redirects, faults, counts: Arc::new(Counts::default()) })
    }

    fn spawn(self: Arc<Self>, listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Arc<Counts> {
        let counts = Arc::clone(&self.counts);
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else { continue };
                let origin = Arc::clone(&self);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => origin.connection(conn, TcpStream::set_zero_linger).await,
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(conn).await {
                                origin.connection(stream, |s| s.get_ref().0.set_zero_linger()).await;
                            }
                        }
                    }
                });
            }
        });
        counts
    }

    /// Serves the requests of one connection, one after the other (keep-alive).
    async fn connection<S>(&self, stream: S, zero_linger: impl Fn(&S) -> std::io::Result<()>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut conn = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if conn.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                return;
            }
            let (mut range, mut if_match) = (None, None);
            loop {
                let mut header = String::new();
                if conn.read_line(&mut header).await.unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let lower = header.to_ascii_lowercase();
                if let Some(r) = lower.strip_prefix("range: bytes=") {
                    let (a, b) = r.split_once('-').unwrap();
                    range = Some((a.parse::<u64>().unwrap(), b.parse::<u64>().ok()));
                }
                if lower.starts_with("if-match:") {
                    if_match = header.split_once(':').map(|(_, v)| v.trim().to_owned());
                }
            }
            let request = self.count(request_line.trim_end(), range);
            let fault = self.faults.pick(&request);
            if let Some(f) = fault {
                *self.counts.faults.lock().unwrap().entry(f.kind()).or_default() += 1;
            }
            if let Some(Fault::Stall(pause)) = fault {
                tokio::time::sleep(pause).await;
            }
            let (head, body) = match fault {
                Some(Fault::Status(code)) => {
                    (format!("HTTP/1.1 {code} Injected\r\ncontent-length: 0\r\n\r\n"), Vec::new())
                }
                _ => self.answer(&request, if_match.as_deref()),
            };
            let stream = conn.get_mut();
            let cut = body.len() / 2;
            let outcome = match fault {
                Some(Fault::ResetMidBody) => {
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body[..cut]).await;
                    let _ = stream.flush().await;
                    // No FIN before the RST: the client sees a reset, not an end.
                    let _ = zero_linger(stream);
                    return;
                }
                Some(Fault::Truncate) => {
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body[..cut]).await;
                    let _ = stream.shutdown().await;
                    return;
                }
                _ => {
                    async {
                        stream.write_all(head.as_bytes()).await?;
                        stream.write_all(&body).await?;
                        stream.flush().await
                    }
                    .await
                }
            };
            if outcome.is_err() {
                return;
            }
            self.counts.body_bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
        }
    }

    /// Counts a request; the request as the rules see it.
    fn count(&self, request_line: &str, range: Option<(u64, Option<u64>)>) -> Request {
        let mut parts = request_line.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let counts = &self.counts;
        let number = counts.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let number_for_path = {
            let mut by_path = counts.by_path.lock().unwrap();
            let n = by_path.entry(path.to_owned()).or_default();
            *n += 1;
            *n
        };
        let start = range.map_or(0, |(a, _)| a);
        *counts.by_range_start.lock().unwrap().entry((path.to_owned(), start)).or_default() += 1;
        Request { number, number_for_path, method: method.to_owned(), path: path.to_owned(), range }
    }

    /// The head and body of a well-behaved answer.
    fn answer(&self, request: &Request, if_match: Option<&str>) -> (String, Vec<u8>) {
        if let Some((_, to)) = self.redirects.iter().find(|(from, _)| *from == request.path) {
            return (
                format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n"),
                Vec::new(),
            );
        }
        let (file, version) = self.faults.file(&self.root, request);
        let Ok(data) = std::fs::read(file) else {
            return ("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_owned(), Vec::new());
        };
        let tag = etag(&data);
        let validators = format!("etag: {tag}\r\nlast-modified: {}\r\n", last_modified(version));
        if if_match.is_some_and(|m| m != "*" && m.split(',').all(|m| m.trim() != tag)) {
            let head = format!("HTTP/1.1 412 Precondition Failed\r\n{validators}content-length: 0\r\n\r\n");
            return (head, Vec::new());
        }
        let len = data.len() as u64;
        let (status, start, end) = match request.range {
            Some((a, b)) => ("206 Partial Content", a.min(len), b.map_or(len, |b| (b + 1).min(len))),
            None => ("200 OK", 0, len),
        };
        let mut head = format!(
            "HTTP/1.1 {status}\r\naccept-ranges: bytes\r\n{validators}content-length: {}\r\n",
            end - start
        );
        if request.range.is_some() {
            let _ = write!(head, "content-range: bytes {start}-{}/{len}\r\n", end.max(1) - 1);
        }
        head.push_str("\r\n");
        let body =
            if request.method == "GET" { data[start as usize..end as usize].to_vec() } else { Vec::new() };
        (head, body)
    }
}
