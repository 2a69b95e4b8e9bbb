//! The origin client against real sockets: a scripted HTTP/1.1 range server on
//! 127.0.0.1 that misbehaves on chosen requests, an HTTPS one with a test CA, and moto
//! for S3 when it is installed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::*;

/// The object every test server holds.
fn object() -> Vec<u8> {
    (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// The object served under paths that hold `big`: 1 MiB, many chunks.
fn big_object() -> Vec<u8> {
    (0..1_048_576u32).map(|i| (i * 13 % 251) as u8).collect()
}

/// What the server does with one request.
#[derive(Clone)]
enum Reply {
    /// The range asked for, as a `206` (or `416`), with this ETag.
    Range(Option<&'static str>),
    /// The whole object as a `200`.
    Whole,
    /// A bodiless answer with this status and headers.
    Status(u16, Vec<(&'static str, String)>),
    /// Headers and half the body, then a TCP reset.
    ResetMidBody,
    /// Content-Length of the range, half the body, then a clean close.
    Truncated,
    /// Content-Range of the range, a Content-Length of half of it, that half.
    ShortContentLength,
    /// A Content-Range that starts at 0, whatever was asked.
    LyingContentRange,
    /// This reply after a pause.
    Stall(Duration, Box<Reply>),
}

/// A request as the server saw it: lower-case header names.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

type Script = dyn Fn(u32, &Seen) -> Reply + Send + Sync;

/// A scripted range server; stops when dropped.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Requests received so far.
    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn url(&self, path: &str) -> RemoteUrl {
        RemoteUrl::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    fn prefix(&self) -> RemotePrefix {
        RemotePrefix::parse(&format!("http://{}/cogs/", self.addr)).unwrap()
    }
}

/// Serves one request per connection; `script` gets the request's number (from 1).
async fn serve(script: impl Fn(u32, &Seen) -> Reply + Send + Sync + 'static) -> Server {
    serve_with(TcpListener::bind("127.0.0.1:0").await.unwrap(), Arc::new(script), None)
}

fn serve_with(listener: TcpListener, script: Arc<Script>, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicU32::new(0));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (script, log, count, tls) = (script.clone(), log.clone(), count.clone(), tls.clone());
            tokio::spawn(async move {
                if let Some(acceptor) = tls {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        answer(stream, &*script, &log, &count).await;
                    }
                } else {
                    let (tcp, reset) = answer(tcp, &*script, &log, &count).await;
                    if reset {
                        // Closing with SO_LINGER 0 sends RST instead of FIN.
                        tcp.set_zero_linger().unwrap();
                    }
                }
            });
        }
    });
    Server { addr, seen, task }
}

/// Reads one request and answers it as scripted; the stream, and whether the script
/// wants the connection reset rather than closed.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    script: &Script,
    log: &Mutex<Vec<Seen>>,
    count: &AtomicU32,
) -> (S, bool) {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
        return (stream.into_inner(), false);
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let seen = Seen { path, headers };
    log.lock().unwrap().push(seen.clone());
    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
    let mut reply = script(n, &seen);
    while let Reply::Stall(pause, then) = reply {
        tokio::time::sleep(pause).await;
        reply = *then;
    }
    let data = if seen.path.contains("big") { big_object() } else { object() };
    let len = data.len() as u64;
    let (start, end) = seen
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .map_or((0, len), |(a, b)| (a.parse().unwrap(), (b.parse::<u64>().unwrap() + 1).min(len)));
    let body = data.get(start as usize..end as usize).unwrap_or(&[]);
    let range_head = |extra: &str, content_length: usize| {
        format!(
            "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {start}-{}/{len}\r\ncontent-length: {content_length}\r\n{extra}connection: close\r\n\r\n",
            end - 1
        )
    };
    let half = &body[..body.len() / 2];
    let out = stream.get_mut();
    match reply {
        Reply::Range(_) | Reply::ResetMidBody | Reply::Truncated | Reply::ShortContentLength
            if start >= len =>
        {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\ncontent-range: bytes */{len}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = out.write_all(head.as_bytes()).await;
        }
        Reply::Range(etag) => {
            let extra = etag.map(|e| format!("etag: {e}\r\n")).unwrap_or_default();
            let _ = out.write_all(range_head(&extra, body.len()).as_bytes()).await;
            let _ = out.write_all(body).await;
        }
        Reply::Whole => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n");
            let _ = out.write_all(head.as_bytes()).await;
            let _ = out.write_all(&data).await;
        }
        Reply::Status(code, extra) => {
            let extra = extra.iter().fold(String::new(), |all, (k, v)| all + k + ": " + v + "\r\n");
            let head =
                format!("HTTP/1.1 {code} Scripted\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n");
            let _ = out.write_all(head.as_bytes()).await;
        }
        Reply::ResetMidBody => {
            let _ = out.write_all(range_head("", body.len()).as_bytes()).await;
            let _ = out.write_all(half).await;
            let _ = out.flush().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            return (stream.into_inner(), true);
        }
        Reply::Truncated => {
            let _ = out.write_all(range_head("", body.len()).as_bytes()).await;
            let _ = out.write_all(half).await;
        }
        Reply::ShortContentLength => {
            let _ = out.write_all(range_head("", half.len()).as_bytes()).await;
            let _ = out.write_all(half).await;
        }
        Reply::LyingContentRange => {
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-{}/{len}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len() - 1,
                body.len()
            );
            let _ = out.write_all(head.as_bytes()).await;
            let _ = out.write_all(&data[..body.len()]).await;
        }
        Reply::Stall(..) => unreachable!(),
    }
    let _ = out.flush().await;
    let _ = out.shutdown().await;
    (stream.into_inner(), false)
}

/// An origin reading under `allow`, hedging off unless `hedge` says otherwise.
fn configured(allow: Vec<RemotePrefix>, tweak: impl FnOnce(&mut OriginConfig)) -> Origin {
    let mut config = OriginConfig::new(allow, S3Settings::default());
    config.hedge = HedgeConfig { budget: 0.0, burst: 0.0, ..HedgeConfig::default() };
    tweak(&mut config);
    Origin::new(config).unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn errors(origin: &Origin) -> Vec<(String, u64)> {
    origin.counters().snapshot().errors.into_iter().collect()
}

fn label(name: &str, n: u64) -> Vec<(String, u64)> {
    vec![(name.to_owned(), n)]
}

#[tokio::test]
async fn a_range_is_read_exactly_and_clipped_at_the_end() {
    let server = serve(|_, _| Reply::Range(Some("\"v1\""))).await;
    let origin = configured(vec![server.prefix()], |_| {});
    let got = origin.get_range(&server.url("/cogs/a.tif"), 100..300, None, soon()).await.unwrap();
    assert_eq!(&got.bytes[..], &object()[100..300]);
    assert_eq!((got.size, got.requests), (10_000, 1));
    assert_eq!(got.validator.etag.as_deref(), Some("\"v1\""));
    let tail = origin.get_range(&server.url("/cogs/a.tif"), 9_990..20_000, None, soon()).await.unwrap();
    assert_eq!(&tail.bytes[..], &object()[9_990..]);
    assert_eq!(server.requests(), 2);
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen[0].header("range"), Some("bytes=100-299"));
    assert_eq!(seen[1].header("range"), Some("bytes=9990-19999"));
    let counters = origin.counters().snapshot();
    assert_eq!((counters.requests, counters.bytes, counters.retries), (2, 210, 0));
}

#[tokio::test]
async fn a_503_is_retried_then_the_range_is_read() {
    let server = serve(|n, _| if n == 1 { Reply::Status(503, vec![]) } else { Reply::Range(None) }).await;
    let origin = configured(vec![server.prefix()], |_| {});
    let got = origin.get_range(&server.url("/cogs/a.tif"), 0..1000, None, soon()).await.unwrap();
    assert_eq!(&got.bytes[..], &object()[..1000]);
    assert_eq!((got.requests, server.requests()), (2, 2));
    assert_eq!(origin.counters().snapshot().retries, 1);
    assert_eq!(errors(&origin), label("503", 1));
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_says() {
    let server = serve(|n, _| {
        if n == 1 { Reply::Status(429, vec![("retry-after", "1".to_owned())]) } else { Reply::Range(None) }
    })
    .await;
    let origin = configured(vec![server.prefix()], |_| {});
    let started = Instant::now();
    let got = origin.get_range(&server.url("/cogs/a.tif"), 0..10, None, soon()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!((got.requests, server.requests()), (2, 2));
    assert_eq!(errors(&origin), label("429", 1));
    // A Retry-After beyond the deadline ends the read at once.
    let late = serve(|_, _| Reply::Status(503, vec![("retry-after", "30".to_owned())])).await;
    let origin = origin_for(&late);
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(2);
    let e = origin.get_range(&late.url("/cogs/a.tif"), 0..10, None, deadline).await.unwrap_err();
    assert_eq!(e, FetchError::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(late.requests(), 1);
}

fn origin_for(server: &Server) -> Origin {
    configured(vec![server.prefix()], |_| {})
}

#[tokio::test]
async fn a_reset_mid_body_is_retried() {
    let server = serve(|n, _| if n == 1 { Reply::ResetMidBody } else { Reply::Range(None) }).await;
    let origin = origin_for(&server);
    let got = origin.get_range(&server.url("/cogs/a.tif"), 0..8000, None, soon()).await.unwrap();
    assert_eq!(&got.bytes[..], &object()[..8000]);
    assert_eq!((got.requests, server.requests()), (2, 2));
    assert_eq!(errors(&origin), label("reset", 1));
}

#[tokio::test]
async fn a_truncated_body_is_retried_and_never_returned() {
    let server = serve(|n, _| match n {
        1 => Reply::Truncated,
        2 => Reply::ShortContentLength,
        _ => Reply::Range(None),
    })
    .await;
    let origin = origin_for(&server);
    let got = origin.get_range(&server.url("/cogs/a.tif"), 100..4100, None, soon()).await.unwrap();
    assert_eq!(&got.bytes[..], &object()[100..4100]);
    assert_eq!((got.requests, server.requests()), (3, 3));
    assert_eq!(origin.counters().snapshot().retries, 2);
    assert_eq!(errors(&origin), label("truncated", 2));

    // Truncated every time: a failure after the retries, never short bytes.
    let always = serve(|_, _| Reply::Truncated).await;
    let origin = configured(vec![always.prefix()], |c| c.max_retries = 2);
    let e = origin.get_range(&always.url("/cogs/a.tif"), 0..4000, None, soon()).await.unwrap_err();
    assert!(
        matches!(&e, FetchError::Failed { status: None, message } if message.contains("after 2 retries")),
        "{e}"
    );
    assert_eq!(always.requests(), 3);
}

#[tokio::test]
async fn a_content_range_that_does_not_answer_the_request_is_refused() {
    let server = serve(|_, _| Reply::LyingContentRange).await;
    let origin = origin_for(&server);
    let e = origin.get_range(&server.url("/cogs/a.tif"), 100..300, None, soon()).await.unwrap_err();
    assert!(
        matches!(&e, FetchError::Failed { status: Some(206), message } if message.contains("bytes 0-199/10000")),
        "{e}"
    );
    assert_eq!(server.requests(), 1);
    assert_eq!(errors(&origin), label("bad-range", 1));
}

#[tokio::test]
async fn final_statuses_are_not_retried() {
    let server = serve(|n, _| match n {
        1 => Reply::Status(404, vec![]),
        2 => Reply::Status(403, vec![]),
        3 => Reply::Status(401, vec![]),
        _ => Reply::Range(None),
    })
    .await;
    let origin = origin_for(&server);
    let url = server.url("/cogs/a.tif");
    let get = |range: Range<u64>| origin.get_range(&url, range, None, soon());
    assert!(matches!(get(0..10).await, Err(FetchError::NotFound(_))));
    assert!(matches!(get(0..10).await, Err(FetchError::Denied(m)) if m.contains("403")));
    assert!(matches!(get(0..10).await, Err(FetchError::Denied(m)) if m.contains("401")));
    assert!(matches!(get(10_000..10_010).await, Err(FetchError::OutOfRange(_))));
    assert_eq!(server.requests(), 4);
    assert_eq!(origin.counters().snapshot().retries, 0);
    let expected: Vec<(String, u64)> =
        ["401", "403", "404", "416"].iter().map(|s| ((*s).to_owned(), 1)).collect();
    assert_eq!(errors(&origin), expected);
}

#[tokio::test]
async fn a_200_is_sliced_when_the_whole_object_fits_the_range_and_refused_otherwise() {
    let server = serve(|_, _| Reply::Whole).await;
    let origin = origin_for(&server);
    let got = origin.get_range(&server.url("/cogs/a.tif"), 5..16_384, None, soon()).await.unwrap();
    assert_eq!(&got.bytes[..], &object()[5..]);
    assert_eq!(got.size, 10_000);
    let e = origin.get_range(&server.url("/cogs/a.tif"), 0..100, None, soon()).await.unwrap_err();
    assert!(
        matches!(&e, FetchError::Failed { status: Some(200), message } if message.contains("ignores Range")),
        "{e}"
    );
    assert_eq!(server.requests(), 2);
    // The refused answer is read only up to the first chunk past the 100 bytes asked
    // for, never whole into memory beyond that chunk.
    assert!(origin.counters().snapshot().bytes <= 2 * 10_000, "bounded by the request");
}

#[tokio::test]
async fn a_stalled_origin_gives_deadline_exceeded_on_time() {
    let server = serve(|_, _| Reply::Stall(Duration::from_secs(5), Box::new(Reply::Range(None)))).await;
    let origin = origin_for(&server);
    let started = Instant::now();
    let deadline = started + Duration::from_millis(300);
    let e = origin.get_range(&server.url("/cogs/a.tif"), 0..10, None, deadline).await.unwrap_err();
    assert_eq!(e, FetchError::DeadlineExceeded);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(400), "{took:?}");
    assert_eq!(server.requests(), 1);
    assert_eq!(errors(&origin), label("deadline", 1));
}

#[tokio::test]
async fn an_attempt_timeout_is_retried_within_the_deadline() {
    let server = serve(|n, _| {
        if n == 1 {
            Reply::Stall(Duration::from_secs(5), Box::new(Reply::Range(None)))
        } else {
            Reply::Range(None)
        }
    })
    .await;
    let origin = configured(vec![server.prefix()], |c| c.attempt_timeout = Duration::from_millis(200));
    let got = origin.get_range(&server.url("/cogs/a.tif"), 0..10, None, soon()).await.unwrap();
    assert_eq!(&got.bytes[..], &object()[..10]);
    assert_eq!((got.requests, server.requests()), (2, 2));
    assert_eq!(errors(&origin), label("timeout", 1));
}

#[tokio::test]
async fn hedging_answers_a_stalled_request_in_about_the_hedge_delay() {
    let server = serve(|n, _| {
        if n == 1 {
            Reply::Stall(Duration::from_secs(3), Box::new(Reply::Range(None)))
        } else {
            Reply::Range(None)
        }
    })
    .await;
    let origin = configured(vec![server.prefix()], |c| {
        c.hedge = HedgeConfig { floor: Duration::from_millis(100), ..HedgeConfig::default() };
    });
    let started = Instant::now();
    let got = origin.get_range(&server.url("/cogs/a.tif"), 0..1000, None, soon()).await.unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(100) && took < Duration::from_millis(400), "{took:?}");
    assert_eq!(&got.bytes[..], &object()[..1000]);
    assert_eq!((got.requests, server.requests()), (2, 2));
    let counters = origin.counters().snapshot();
    assert_eq!((counters.requests, counters.hedges, counters.hedge_wins, counters.retries), (2, 1, 1, 0));
}

#[tokio::test]
async fn hedges_are_capped_by_the_budget() {
    let server = serve(|_, _| Reply::Stall(Duration::from_millis(300), Box::new(Reply::Range(None)))).await;
    let origin = configured(vec![server.prefix()], |c| {
        c.hedge = HedgeConfig {
            floor: Duration::from_millis(50),
            budget: 0.0,
            burst: 1.0,
            ..HedgeConfig::default()
        };
    });
    for _ in 0..3 {
        let got = origin.get_range(&server.url("/cogs/a.tif"), 0..10, None, soon()).await.unwrap();
        assert_eq!(&got.bytes[..], &object()[..10]);
    }
    let counters = origin.counters().snapshot();
    assert_eq!((counters.requests, counters.hedges), (4, 1));
    // The first answer won the one race (it started 50 ms earlier).
    assert_eq!(counters.hedge_wins, 0);
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn a_changed_object_is_reported_whether_the_origin_checks_if_match_or_not() {
    // An origin that honours If-Match.
    let strict = serve(|_, seen| match seen.header("if-match") {
        Some(etag) if etag != "\"v2\"" => Reply::Status(412, vec![]),
        _ => Reply::Range(Some("\"v2\"")),
    })
    .await;
    let origin = origin_for(&strict);
    let old = Validator { etag: Some("\"v1\"".to_owned()), last_modified: None };
    let e = origin.get_range(&strict.url("/cogs/a.tif"), 0..10, Some(&old), soon()).await.unwrap_err();
    assert!(matches!(&e, FetchError::Changed(m) if m.contains("\"v1\"")), "{e}");
    assert_eq!(strict.seen.lock().unwrap()[0].header("if-match"), Some("\"v1\""));
    let current = Validator { etag: Some("\"v2\"".to_owned()), last_modified: None };
    let got = origin.get_range(&strict.url("/cogs/a.tif"), 0..10, Some(&current), soon()).await.unwrap();
    assert_eq!(got.validator, current);

    // One that ignores it: the answer's ETag gives the change away.
    let lax = serve(|_, _| Reply::Range(Some("\"v2\""))).await;
    let origin = origin_for(&lax);
    let e = origin.get_range(&lax.url("/cogs/a.tif"), 0..10, Some(&old), soon()).await.unwrap_err();
    assert_eq!(e, FetchError::Changed(format!("http://{}/cogs/a.tif is now \"v2\", was \"v1\"", lax.addr)));
    // A weak ETag is never sent as If-Match (it could not match), only compared.
    let weak = Validator { etag: Some("W/\"v1\"".to_owned()), last_modified: None };
    assert!(matches!(
        origin.get_range(&lax.url("/cogs/a.tif"), 0..10, Some(&weak), soon()).await,
        Err(FetchError::Changed(_))
    ));
    assert_eq!(lax.seen.lock().unwrap()[1].header("if-match"), None);
    assert_eq!(lax.requests(), 2);
}

#[tokio::test]
async fn redirects_are_followed_only_under_the_allowed_prefixes() {
    let elsewhere = serve(|_, _| Reply::Range(None)).await;
    let target = format!("http://{}/cogs/b.tif", elsewhere.addr);
    let server = serve(move |_, seen| match seen.path.as_str() {
        "/cogs/moved.tif" => Reply::Status(302, vec![("location", "/cogs/b.tif".to_owned())]),
        "/cogs/away.tif" => Reply::Status(302, vec![("location", target.clone())]),
        "/cogs/metadata.tif" => {
            Reply::Status(302, vec![("location", "http://169.254.169.254/latest/meta-data/".to_owned())])
        }
        "/cogs/outside.tif" => Reply::Status(301, vec![("location", "/private/b.tif".to_owned())]),
        "/cogs/loop.tif" => Reply::Status(302, vec![("location", "/cogs/loop.tif".to_owned())]),
        _ => Reply::Range(None),
    })
    .await;
    let origin = origin_for(&server);
    let get = async |path: &str| origin.get_range(&server.url(path), 0..100, None, soon()).await;

    let got = get("/cogs/moved.tif").await.unwrap();
    assert_eq!(&got.bytes[..], &object()[..100]);
    assert_eq!(server.requests(), 2);
    assert_eq!(server.seen.lock().unwrap()[1].path, "/cogs/b.tif");

    let e = get("/cogs/away.tif").await.unwrap_err();
    let expected = format!(
        "redirect to http://{}/cogs/b.tif refused: it is under none of the allowed prefixes",
        elsewhere.addr
    );
    assert_eq!(e, FetchError::Denied(expected));
    assert_eq!(elsewhere.requests(), 0);

    let e = get("/cogs/metadata.tif").await.unwrap_err();
    assert!(
        matches!(&e, FetchError::Denied(m) if m.contains("http://169.254.169.254/latest/meta-data/")),
        "{e}"
    );
    let e = get("/cogs/outside.tif").await.unwrap_err();
    assert!(matches!(&e, FetchError::Denied(m) if m.contains("/private/b.tif")), "{e}");
    let e = get("/cogs/loop.tif").await.unwrap_err();
    assert!(matches!(&e, FetchError::Denied(m) if m.contains("more than 5 redirects")), "{e}");
    // moved: 2; away, metadata, outside: 1 each; loop: the first request and 5 redirects.
    assert_eq!(server.requests(), 2 + 3 + 6);
    assert_eq!(origin.counters().snapshot().retries, 0);
}

#[tokio::test]
async fn a_url_outside_the_prefixes_is_denied_without_a_request() {
    let server = serve(|_, _| Reply::Range(None)).await;
    let origin = origin_for(&server);
    let e = origin.get_range(&server.url("/private/a.tif"), 0..10, None, soon()).await.unwrap_err();
    assert!(matches!(&e, FetchError::Denied(m) if m.contains("under none of the allowed prefixes")), "{e}");
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn names_that_resolve_only_to_link_local_addresses_are_refused() {
    use reqwest::dns::Resolve;
    let resolver = client::NoLinkLocal;
    let refused = resolver.resolve("169.254.169.254".parse().unwrap()).await.err().unwrap();
    assert_eq!(
        refused.to_string(),
        "169.254.169.254 resolves only to link-local (cloud metadata) addresses, which are refused"
    );
    let kept: Vec<SocketAddr> = resolver.resolve("127.0.0.1".parse().unwrap()).await.unwrap().collect();
    assert_eq!(kept, vec!["127.0.0.1:0".parse().unwrap()]);
}

#[tokio::test]
async fn https_origins_are_verified_against_the_extra_ca() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    let server_config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_with(listener, Arc::new(|_, _: &Seen| Reply::Range(None)), Some(acceptor));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let url = RemoteUrl::parse(&format!("https://localhost:{port}/cogs/a.tif")).unwrap();
    let allow = vec![RemotePrefix::parse(&format!("https://localhost:{port}/cogs/")).unwrap()];
    let trusting = configured(allow.clone(), |c| c.extra_ca_file = Some(ca_file.clone()));
    let got = trusting.get_range(&url, 10..20, None, soon()).await.unwrap();
    assert_eq!(&got.bytes[..], &object()[10..20]);
    assert_eq!(server.requests(), 1);

    // Without the CA the certificate is unknown: a failure, and no request reaches the server.
    let strict = configured(allow, |c| c.max_retries = 0);
    let e = strict.get_range(&url, 10..20, None, soon()).await.unwrap_err();
    assert!(
        matches!(&e, FetchError::Failed { status: None, message } if message.contains("certificate")),
        "{e}"
    );
    assert_eq!(server.requests(), 1);
}

/// moto's S3 server: `$TESSERA_MOTO_SERVER`, else `.venv/bin/moto_server` in the crate.
/// moto's S3 server: `$TESSERA_MOTO_SERVER`, else `.venv/bin/moto_server` in the crate
/// (`make test` installs it).
fn moto_server_path() -> PathBuf {
    std::env::var_os("TESSERA_MOTO_SERVER").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"),
        PathBuf::from,
    )
}

struct Moto(std::process::Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One unsigned HTTP/1.1 request to moto; the status code.
async fn moto_request(port: u16, method: &str, path: &str, body: &[u8]) -> u16 {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let mut response = String::new();
    let _ = tokio::io::AsyncReadExt::read_to_string(&mut conn, &mut response).await;
    response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn s3_ranges_are_read_through_moto_and_a_wrong_etag_is_changed() {
    let moto = moto_server_path();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); `make venv` installs it", moto.display()));
    let _moto = Moto(child);
    let until = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < until, "moto did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(moto_request(port, "PUT", "/tessera-test", b"").await, 200);
    assert_eq!(moto_request(port, "PUT", "/tessera-test/cogs/a.tif", &object()).await, 200);

    let env: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", "tessera-test"),
        ("AWS_SECRET_ACCESS_KEY", "tessera-test"),
        ("AWS_S3_ENDPOINT", &format!("127.0.0.1:{port}")),
        ("AWS_VIRTUAL_HOSTING", "FALSE"),
        ("AWS_HTTPS", "NO"),
        ("AWS_REGION", "us-east-1"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let settings = S3Settings::from_env(&env);
    assert_eq!(settings.endpoint.as_deref(), Some(format!("127.0.0.1:{port}").as_str()));
    assert!(settings.path_style && !settings.https);
    let mut config =
        OriginConfig::new(vec![RemotePrefix::parse("s3://tessera-test/cogs/").unwrap()], settings);
    config.hedge.burst = 0.0;
    let origin = Origin::new(config).unwrap();
    let url = RemoteUrl::parse("s3://tessera-test/cogs/a.tif").unwrap();

    let got = origin.get_range(&url, 100..300, None, soon()).await.unwrap();
    assert_eq!(&got.bytes[..], &object()[100..300]);
    assert_eq!((got.size, got.requests), (10_000, 1));
    let etag = got.validator.etag.clone().unwrap();
    let tail = origin.get_range(&url, 9_000..20_000, Some(&got.validator), soon()).await.unwrap();
    assert_eq!(&tail.bytes[..], &object()[9_000..]);
    assert_eq!(tail.validator.etag.as_deref(), Some(etag.as_str()));

    let stale = Validator { etag: Some("\"0123456789abcdef\"".to_owned()), last_modified: None };
    let e = origin.get_range(&url, 0..10, Some(&stale), soon()).await.unwrap_err();
    assert!(matches!(e, FetchError::Changed(_)), "{e}");
    let missing = RemoteUrl::parse("s3://tessera-test/cogs/missing.tif").unwrap();
    assert!(matches!(origin.get_range(&missing, 0..10, None, soon()).await, Err(FetchError::NotFound(_))));
    let beyond = origin.get_range(&url, 10_000..10_010, None, soon()).await.unwrap_err();
    assert!(matches!(beyond, FetchError::OutOfRange(_)), "{beyond}");
    let counters = origin.counters().snapshot();
    assert_eq!((counters.requests, counters.retries), (5, 0));
    let expected: Vec<(String, u64)> = ["404", "412", "416"].iter().map(|s| ((*s).to_owned(), 1)).collect();
    assert_eq!(errors(&origin), expected);
}

#[tokio::test]
async fn a_ttl_check_is_made_once_however_many_reads_find_it_due() {
    use super::cache::{RangeCache, ReadCost};
    let server = serve(|_, _| Reply::Range(Some("\"v1\""))).await;
    let cache = Arc::new(RangeCache::new(Arc::new(origin_for(&server)), 1 << 20, Duration::from_millis(50)));
    let url = server.url("/cogs/a.tif");
    let first = cache.object(&url, soon(), &mut ReadCost::default()).await.unwrap();
    assert_eq!(server.requests(), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    // Eight reads find the check due at once.
    let reads = (0..8).map(|_| {
        let (cache, url) = (Arc::clone(&cache), url.clone());
        tokio::spawn(async move {
            cache.object(&url, soon(), &mut ReadCost::default()).await.map(|s| s.generation)
        })
    });
    for read in futures::future::join_all(reads).await {
        assert_eq!(read.unwrap().unwrap(), first.generation, "the object did not change");
    }
    assert_eq!(server.requests(), 2, "one TTL check for the eight reads");
}

/// The ranges the server was asked for, in order of arrival.
fn ranges_seen(server: &Server) -> Vec<String> {
    server.seen.lock().unwrap().iter().filter_map(|s| s.header("range").map(ToOwned::to_owned)).collect()
}

#[tokio::test]
#[allow(clippy::single_range_in_vec_init)] // one range of bytes, not the numbers in it
async fn a_missing_block_brings_the_rest_of_its_read_ahead_window() {
    use super::cache::{RangeCache, ReadCost};
    let server = serve(|_, _| Reply::Range(Some("\"v1\""))).await;
    let cache = RangeCache::new(Arc::new(origin_for(&server)), 64 << 20, Duration::from_secs(60))
        .with_read_ahead(256 * 1024);
    let url = server.url("/cogs/big.tif");
    let big = big_object();
    let mut cost = ReadCost::default();
    let (_, got) = cache.read(&url, 0, &[300_000..300_100], soon(), &mut cost).await.unwrap();
    assert_eq!(&got[0][..], &big[300_000..300_100]);
    // The header (first sight) with the rest of its window, then the second 256 KiB
    // window, whole, in one request.
    assert_eq!(ranges_seen(&server), ["bytes=0-262143", "bytes=262144-524287"]);
    assert_eq!((cost.requests, cost.bytes), (2, 524_288));
    // Any other byte of those windows: no request.
    let mut cost = ReadCost::default();
    let (_, got) = cache.read(&url, 0, &[70_000..524_288], soon(), &mut cost).await.unwrap();
    assert_eq!(&got[0][..], &big[70_000..524_288]);
    assert_eq!((server.requests(), cost.requests, cost.misses), (2, 0, 0));
    // A read across a window's edge fetches the window it lacks, and only that one.
    let (_, got) = cache.read(&url, 0, &[520_000..530_000], soon(), &mut ReadCost::default()).await.unwrap();
    assert_eq!(&got[0][..], &big[520_000..530_000]);
    assert_eq!(ranges_seen(&server)[2..], ["bytes=524288-786431"]);
}

#[tokio::test]
#[allow(clippy::single_range_in_vec_init)] // one range of bytes, not the numbers in it
async fn without_read_ahead_only_the_chunks_needed_are_fetched() {
    use super::cache::{CHUNK, RangeCache, ReadCost};
    let server = serve(|_, _| Reply::Range(Some("\"v1\""))).await;
    let cache =
        RangeCache::new(Arc::new(origin_for(&server)), 64 << 20, Duration::from_secs(60)).with_read_ahead(0);
    let url = server.url("/cogs/big.tif");
    cache.read(&url, 0, &[100_000..100_100], soon(), &mut ReadCost::default()).await.unwrap();
    let chunk = 100_000 / CHUNK * CHUNK;
    assert_eq!(
        ranges_seen(&server),
        ["bytes=0-65535".to_owned(), format!("bytes={chunk}-{}", chunk + CHUNK - 1)]
    );
}

#[tokio::test]
async fn the_runs_of_one_read_are_fetched_side_by_side() {
    use super::cache::{RangeCache, ReadCost};
    // Every data request takes a second; the header comes at once.
    let server = serve(|n, _| {
        let range = Reply::Range(Some("\"v1\""));
        if n == 1 { range } else { Reply::Stall(Duration::from_secs(1), Box::new(range)) }
    })
    .await;
    let cache =
        RangeCache::new(Arc::new(origin_for(&server)), 64 << 20, Duration::from_secs(60)).with_read_ahead(0);
    let url = server.url("/cogs/big.tif");
    cache.object(&url, soon(), &mut ReadCost::default()).await.unwrap();
    let started = std::time::Instant::now();
    let far_apart = [100_000..100_100, 500_000..500_100, 900_000..900_100];
    let mut cost = ReadCost::default();
    cache.read(&url, 0, &far_apart, soon(), &mut cost).await.unwrap();
    let waited = started.elapsed();
    assert_eq!((server.requests(), cost.requests), (4, 3), "three runs, one request each");
    // One after another they would take three seconds.
    assert!(waited < Duration::from_millis(1900), "the three runs took {waited:?}");
    assert!(
        cost.wait >= Duration::from_secs(1) && cost.wait < Duration::from_millis(1900),
        "{:?}",
        cost.wait
    );
}
