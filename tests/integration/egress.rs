//! The egress proxy: a remote asset whose host redirects the worker elsewhere (another
//! host, a path outside the allowed prefix, cloud metadata) is unreadable, and the
//! redirect's target never sees a request; the proxy itself passes ranged reads and
//! tunnels untouched and refuses the rest with a 403.

use std::sync::atomic::Ordering;

use tessera::{
    egress::{EgressPolicy, EgressProxy, S3Access},
    mosaic::RemotePrefix,
    pb::v1,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};
use tonic::Code;

use crate::{
    harness::{self, Server, ServerOptions, tile_request},
    http_range,
};

/// The mosaic tile the demo assets share.
const MOSAIC: (u32, u32, u32) = (12, 1194, 1551);

/// A directory with `allowed/utm_rgb_00.tif` and `utm_rgb_00.tif` (outside the prefix the
/// tests allow), both links to the fixture.
fn origin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = harness::fixtures().join(harness::UTM[0]);
    std::fs::create_dir(dir.path().join("allowed")).unwrap();
    std::os::unix::fs::symlink(&fixture, dir.path().join("allowed").join(harness::UTM[0])).unwrap();
    std::os::unix::fs::symlink(&fixture, dir.path().join(harness::UTM[0])).unwrap();
    dir
}

fn npy(url: &str) -> v1::GetTileRequest {
    let (z, x, y) = MOSAIC;
    let mut t = tile_request(z, x, y, &[url]);
    t.format = v1::ImageFormat::Npy as i32;
    t
}

#[tokio::test]
async fn redirects_away_from_the_allowed_prefix_are_refused_and_their_targets_see_no_request() {
    // A second origin that would serve the asset if a worker ever reached it.
    let (elsewhere, elsewhere_counts) = http_range::serve(harness::fixtures().to_path_buf()).await;
    let dir = origin_dir();
    let outside = format!("/{}", harness::UTM[0]);
    let redirects = vec![
        ("/allowed/to_another_host.tif".to_owned(), format!("{elsewhere}/{}", harness::UTM[0])),
        ("/allowed/out_of_the_prefix.tif".to_owned(), outside.clone()),
        ("/allowed/to_metadata.tif".to_owned(), "http://169.254.169.254/latest/meta-data/".to_owned()),
        ("/allowed/within_the_prefix.tif".to_owned(), format!("/allowed/{}", harness::UTM[0])),
    ];
    let (base, counts) = http_range::serve_with_redirects(dir.path().to_path_buf(), redirects).await;
    let server = Server::start_with(ServerOptions {
        args: vec!["--allow-remote".into(), format!("{base}/allowed/")],
        ..Default::default()
    });
    let mut client = server.client().await;

    for name in ["to_another_host", "out_of_the_prefix", "to_metadata"] {
        let asset = format!("{base}/allowed/{name}.tif");
        let status = client.get_tile(npy(&asset)).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{asset}: {status:?}");
        assert!(status.message().contains(&asset), "{asset}: {}", status.message());
        assert!(counts.of(&format!("/allowed/{name}.tif")) > 0, "{asset} was never asked for");
    }
    assert_eq!(elsewhere_counts.requests.load(Ordering::SeqCst), 0, "a redirect reached another host");
    assert_eq!(counts.of(&outside), 0, "a redirect reached a path outside the allowed prefix");
    for target in [
        format!("{elsewhere}/{}", harness::UTM[0]),
        format!("{base}{outside}"),
        "http://169.254.169.254/".into(),
    ] {
        assert_logged_refusal(&server, &target);
    }
    // Each refusal is counted once, as it is logged.
    let logged = server.log.lock().unwrap().iter().filter(|l| l.contains("egress refused")).count() as u64;
    assert_eq!(server.metric("tessera_egress_refused_total"), logged);
    assert!(
        server.metric("tessera_egress_allowed_total") >= 3,
        "the redirecting requests themselves were allowed"
    );

    // A redirect inside the prefix is followed, and plain allowed assets still render,
    // pixel for pixel as the local file.
    let local = client.get_tile(npy(harness::UTM[0])).await.unwrap().into_inner();
    for asset in
        [format!("{base}/allowed/within_the_prefix.tif"), format!("{base}/allowed/{}", harness::UTM[0])]
    {
        let tile = client.get_tile(npy(&asset)).await.unwrap().into_inner();
        assert!(tile.data == local.data && tile.mask == local.mask, "{asset}: pixels differ");
        assert_eq!(tile.assets[0].outcome, v1::AssetOutcome::Used as i32);
    }
    assert_eq!(elsewhere_counts.requests.load(Ordering::SeqCst), 0);
    assert_eq!(counts.of(&outside), 0);
}

#[tokio::test]
async fn an_operator_proxy_turns_enforcement_off_with_a_warning() {
    let server = Server::start_with(ServerOptions {
        args: vec!["--gdal-config".into(), "GDAL_HTTP_PROXY=127.0.0.1:3128".into()],
        ..Default::default()
    });
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.iter().any(|l| l.contains("WARN") && l.contains("GDAL_HTTP_PROXY") && l.contains("NOT checked")),
        "no warning in {log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("egress proxy for workers started")));
}

/// Waits (the log is read by another thread) for the proxy's refusal of `target`.
fn assert_logged_refusal(server: &Server, target: &str) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log = server.log.lock().unwrap().clone();
        let refusals: Vec<&String> = log.iter().filter(|l| l.contains("egress refused")).collect();
        if refusals.iter().any(|line| line.contains("WARN") && line.contains(target)) {
            return;
        }
        assert!(std::time::Instant::now() < until, "no refusal of {target} in {refusals:#?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A proxy in this process allowing `prefixes`.
async fn proxy(prefixes: &[String]) -> EgressProxy {
    let prefixes: Vec<RemotePrefix> = prefixes.iter().map(|p| RemotePrefix::parse(p).unwrap()).collect();
    EgressProxy::start(EgressPolicy::new(&prefixes, &S3Access::default(), &[]).unwrap()).await.unwrap()
}

/// One response on `conn`: status, lower-case headers and the body (none for HEAD).
async fn read_response(
    conn: &mut BufReader<TcpStream>,
    head_only: bool,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut line = String::new();
    conn.read_line(&mut line).await.unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        conn.read_line(&mut header).await.unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = header(&headers, "content-length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; if head_only { 0 } else { length }];
    conn.read_exact(&mut body).await.unwrap();
    (status, headers, body)
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn the_proxy_passes_head_and_ranged_reads_on_one_kept_alive_connection_and_refuses_others() {
    let (base, counts) = http_range::serve(harness::fixtures().to_path_buf()).await;
    let (other, other_counts) = http_range::serve(harness::fixtures().to_path_buf()).await;
    let proxy = proxy(&[format!("{base}/")]).await;
    let file = std::fs::read(harness::fixtures().join(harness::UTM[0])).unwrap();
    let url = format!("{base}/{}", harness::UTM[0]);
    let mut conn = BufReader::new(TcpStream::connect(proxy.gdal_proxy_value()).await.unwrap());

    conn.write_all(format!("HEAD {url} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.unwrap();
    let (status, headers, _) = read_response(&mut conn, true).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), Some(file.len().to_string().as_str()));
    assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));

    conn.write_all(format!("GET {url} HTTP/1.1\r\nhost: x\r\nrange: bytes=100-1123\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, headers, body) = read_response(&mut conn, false).await;
    assert_eq!(status, 206);
    assert_eq!(header(&headers, "content-range"), Some(format!("bytes 100-1123/{}", file.len()).as_str()));
    assert_eq!(body, &file[100..1124]);
    assert_eq!(counts.requests.load(Ordering::SeqCst), 2);

    // Same connection, another origin: refused, and the proxy closes the connection.
    let refused = format!("{other}/{}", harness::UTM[0]);
    conn.write_all(format!("GET {refused} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.unwrap();
    let (status, headers, body) = read_response(&mut conn, false).await;
    assert_eq!(status, 403);
    assert_eq!(header(&headers, "connection"), Some("close"));
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with(&format!("tessera egress: GET {refused} refused: ")), "{body}");
    assert_eq!(conn.read(&mut [0; 1]).await.unwrap(), 0, "connection left open");
    assert_eq!(other_counts.requests.load(Ordering::SeqCst), 0);
    let counters = proxy.counters();
    assert_eq!((counters.allowed(), counters.refused()), (2, 1));
}

#[tokio::test]
async fn tunnels_open_only_to_the_hosts_of_https_prefixes() {
    // An echo server stands in for a TLS origin: the tunnel carries bytes, not TLS.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let proxy = proxy(&[format!("https://{echo_addr}/cogs/")]).await;

    let mut conn = BufReader::new(TcpStream::connect(proxy.addr()).await.unwrap());
    conn.write_all(format!("CONNECT {echo_addr} HTTP/1.1\r\nhost: {echo_addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut conn, true).await;
    assert_eq!(status, 200);
    conn.write_all(b"ping through the tunnel").await.unwrap();
    let mut echoed = [0; 23];
    conn.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping through the tunnel");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for target in
        [format!("127.0.0.1:{}", closed.port()), "169.254.169.254:443".into(), format!("user@{echo_addr}")]
    {
        let mut conn = BufReader::new(TcpStream::connect(proxy.addr()).await.unwrap());
        conn.write_all(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (status, _, body) = read_response(&mut conn, false).await;
        assert_eq!(status, 403, "{target}");
        let body = String::from_utf8(body).unwrap();
        assert!(body.starts_with(&format!("tessera egress: CONNECT {target} refused: ")), "{body}");
    }
    let counters = proxy.counters();
    assert_eq!((counters.allowed(), counters.refused()), (1, 3));
}
