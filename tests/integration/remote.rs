//! Remote assets (HTTP through a loopback range server, S3 through moto), the
//! allow-list, zero requests for assets that miss a tile, coalescing and the tile cache.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tessera::{pb::v1, tms::TileMatrixSet};
use tonic::Code;

use crate::{
    harness::{self, Server, ServerOptions, tile_request},
    http_range::{self, Counts},
};

/// The mosaic tile the demo assets share.
const MOSAIC: (u32, u32, u32) = (12, 1194, 1551);

fn npy(z: u32, x: u32, y: u32, assets: &[&str]) -> v1::GetTileRequest {
    let mut t = tile_request(z, x, y, assets);
    t.format = v1::ImageFormat::Npy as i32;
    t
}

async fn http_server(extra_args: &[&str]) -> (Server, String, Arc<Counts>) {
    let (base, counts) = http_range::serve(harness::fixtures().to_path_buf()).await;
    let mut args = vec!["--allow-remote".to_owned(), format!("{base}/")];
    args.extend(extra_args.iter().map(|a| (*a).to_owned()));
    let server = Server::start_with(ServerOptions { workers: 3, args, ..Default::default() });
    (server, base, counts)
}

#[tokio::test]
async fn an_http_mosaic_equals_the_same_mosaic_from_local_files() {
    let (server, base, counts) = http_server(&[]).await;
    let mut client = server.client().await;
    let (z, x, y) = MOSAIC;
    let local = &harness::UTM[..3];
    let urls: Vec<String> = local.iter().map(|a| format!("{base}/{a}")).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let from_http = client.get_tile(npy(z, x, y, &urls)).await.unwrap().into_inner();
    let from_disk = client.get_tile(npy(z, x, y, local)).await.unwrap().into_inner();
    assert!(from_http.data == from_disk.data && from_http.mask == from_disk.mask, "pixels differ");
    assert!(counts.requests.load(Ordering::SeqCst) > 0);
    for (report, url) in from_http.assets.iter().zip(&urls) {
        assert_eq!(&report.asset, url);
        assert_eq!(report.outcome, v1::AssetOutcome::Used as i32);
    }
    // A missing remote object is NOT_FOUND for the caller, naming the URL, not the path
    // workers know it by.
    let missing = format!("{base}/no_such.tif");
    let status = client.get_tile(tile_request(z, x, y, &[&missing])).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(&missing) && !status.message().contains("/vsi"), "{status:?}");
    // The remote cache's size is in the start-up log (the default: an eighth of memory).
    server
        .wait_for_log("remote assets are read by the front through a cache of", Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn remote_assets_outside_the_allow_list_are_refused_before_any_request() {
    let (base, counts) = http_range::serve(harness::fixtures().to_path_buf()).await;
    let allowed = format!("{base}/allowed/");
    let server = Server::start_with(ServerOptions {
        args: vec![
            "--allow-remote".into(),
            allowed.clone(),
            "--allow-remote".into(),
            "s3://good-bucket/cogs".into(),
        ],
        ..Default::default()
    });
    let mut client = server.client().await;
    let (z, x, y) = MOSAIC;
    let host = base.trim_start_matches("http://");
    for (asset, fragment) in [
        (format!("{base}/utm_rgb_00.tif"), "under none of the allowed prefixes"),
        (format!("{base}/allowed-not/utm_rgb_00.tif"), "under none of the allowed prefixes"),
        (format!("{base}/allowed/../utm_rgb_00.tif"), "'..'"),
        (format!("{base}/allowed/%2e%2e/utm_rgb_00.tif"), "percent-encoded"),
        (format!("http://user@{host}/allowed/utm_rgb_00.tif"), "user information"),
        (format!("https://{host}/allowed/utm_rgb_00.tif"), "under none of the allowed prefixes"),
        ("s3://good-bucket/cogs-private/a.tif".to_owned(), "under none of the allowed prefixes"),
        ("s3://other-bucket/cogs/a.tif".to_owned(), "under none of the allowed prefixes"),
        ("ftp://example.com/a.tif".to_owned(), "scheme 'ftp' is not served"),
        (format!("/vsicurl/{allowed}utm_rgb_00.tif"), "virtual file system"),
    ] {
        let status = client.get_tile(tile_request(z, x, y, &[&asset])).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{asset}: {status:?}");
        assert!(status.message().contains(fragment), "{asset}: {}", status.message());
    }
    assert_eq!(counts.requests.load(Ordering::SeqCst), 0, "a refused asset was fetched");
    // The server still serves.
    client.get_tile(tile_request(z, x, y, &[harness::UTM[0]])).await.unwrap();
}

#[tokio::test]
async fn an_asset_that_misses_the_tile_is_not_requested_once_its_bounds_are_known() {
    let (server, base, counts) = http_server(&[]).await;
    let mut client = server.client().await;
    // Tiles inside utm_rgb_00 that utm_rgb_12 (two rows, one column away) does not touch.
    let mut bounds = Vec::new();
    for asset in [harness::UTM[0], "utm_rgb_12.tif"] {
        let info = client.get_asset_info(v1::GetAssetInfoRequest { asset: asset.into() }).await.unwrap();
        bounds.push(info.into_inner().geographic_bounds.unwrap());
    }
    let (near, far) = (bounds[0], bounds[1]);
    let misses_far = |z: u32, x: u32, y: u32| {
        let g = TileMatrixSet::WEB_MERCATOR_QUAD.tile(z, x, y).unwrap().geographic_bounds().unwrap();
        g.max_x < far.min_x || g.min_x > far.max_x || g.max_y < far.min_y || g.min_y > far.max_y
    };
    let mut tiles = Vec::new();
    for (fx, fy) in [(0.1, 0.1), (0.1, 0.9), (0.9, 0.1), (0.9, 0.9), (0.3, 0.2), (0.2, 0.3)] {
        let lon = near.min_x + (near.max_x - near.min_x) * fx;
        let lat = near.min_y + (near.max_y - near.min_y) * fy;
        let (x, y) = harness::tile_at(lon, lat, 17);
        if misses_far(17, x, y) && !tiles.contains(&(x, y)) {
            tiles.push((x, y));
        }
    }
    assert!(tiles.len() >= 2, "need two tiles that miss utm_rgb_12: {tiles:?}");
    let (near_url, far_url) = (format!("{base}/{}", harness::UTM[0]), format!("{base}/utm_rgb_12.tif"));
    // The first tile describes both assets (the far one costs its open)...
    let (x, y) = tiles[0];
    let first = client.get_tile(tile_request(17, x, y, &[&far_url, &near_url])).await.unwrap().into_inner();
    assert_eq!(first.assets[0].outcome, v1::AssetOutcome::Skipped as i32);
    assert!(counts.of("/utm_rgb_12.tif") > 0);
    // ...after which it costs nothing, on this tile or another.
    let far_before = counts.of("/utm_rgb_12.tif");
    for &(x, y) in &tiles {
        let t = client.get_tile(tile_request(17, x, y, &[&far_url, &near_url])).await.unwrap().into_inner();
        assert_eq!(t.assets[0].outcome, v1::AssetOutcome::Skipped as i32);
        assert_eq!(t.assets[1].outcome, v1::AssetOutcome::Used as i32);
    }
    assert_eq!(counts.of("/utm_rgb_12.tif"), far_before, "an asset outside the tiles was requested");
}

#[tokio::test]
async fn identical_concurrent_requests_share_one_worker_job() {
    let server = Server::start_with(ServerOptions {
        workers: 3,
        env: vec![("TESSERA_TEST_SLOW_READ".into(), "utm_rgb_01=400".into())],
        ..Default::default()
    });
    let client = server.client().await;
    let (z, x, y) = MOSAIC;
    // Describe the asset first (an info job), so the burst below costs reads only.
    client.clone().get_asset_info(v1::GetAssetInfoRequest { asset: "utm_rgb_01.tif".into() }).await.unwrap();
    let jobs_before = server.metric("tessera_jobs_started_total");
    let burst = (0..8).map(|_| {
        let mut c = client.clone();
        async move {
            c.get_tile(tile_request(z, x, y, &["utm_rgb_01.tif"])).await.map(tonic::Response::into_inner)
        }
    });
    let tiles = futures::future::join_all(burst).await;
    let tiles: Vec<_> = tiles.into_iter().map(Result::unwrap).collect();
    assert!(tiles.iter().all(|t| t.data == tiles[0].data && !t.data.is_empty()));
    assert_eq!(server.metric("tessera_jobs_started_total") - jobs_before, 1, "one render for 8 callers");
    assert_eq!(server.metric("tessera_tiles_coalesced_total"), 7);
    // Once answered, the same request renders again (no tile cache configured).
    client.clone().get_tile(tile_request(z, x, y, &["utm_rgb_01.tif"])).await.unwrap();
    assert_eq!(server.metric("tessera_jobs_started_total") - jobs_before, 2);
}

#[tokio::test]
async fn callers_asking_about_an_asset_being_described_share_its_one_info_job() {
    let server = Server::start_with(ServerOptions { workers: 3, ..Default::default() });
    let client = server.client().await;
    let burst = (0..8).map(|_| {
        let mut c = client.clone();
        async move { c.get_asset_info(v1::GetAssetInfoRequest { asset: "utm_rgb_02.tif".into() }).await }
    });
    let infos: Vec<_> = futures::future::join_all(burst).await.into_iter().map(Result::unwrap).collect();
    assert!(infos.iter().all(|i| i.get_ref() == infos[0].get_ref()));
    assert_eq!(server.metric("tessera_jobs_started_total"), 1, "one info job for 8 callers");
    // Described, it is not asked about again.
    client.clone().get_asset_info(v1::GetAssetInfoRequest { asset: "utm_rgb_02.tif".into() }).await.unwrap();
    assert_eq!(server.metric("tessera_jobs_started_total"), 1);
}

#[tokio::test]
async fn the_tile_cache_answers_with_identical_bytes_and_no_job() {
    let server = Server::start_with(ServerOptions {
        args: vec!["--tile-cache-size".into(), "16MiB".into(), "--tile-cache-ttl".into(), "1h".into()],
        ..Default::default()
    });
    let mut client = server.client().await;
    let (z, x, y) = MOSAIC;
    let request = tile_request(z, x, y, &harness::UTM);
    let first = client.get_tile(request.clone()).await.unwrap().into_inner();
    let jobs = server.metric("tessera_jobs_started_total");
    let second = client.get_tile(request.clone()).await.unwrap().into_inner();
    assert_eq!(first, second, "a cached tile is the same answer, byte for byte");
    assert_eq!(server.metric("tessera_jobs_started_total"), jobs, "no worker job for a cached tile");
    assert_eq!(server.metric("tessera_tile_cache_hits_total"), 1);
    // Another format is another request.
    let mut jpeg = request;
    jpeg.format = v1::ImageFormat::Jpeg as i32;
    client.get_tile(jpeg).await.unwrap();
    assert!(server.metric("tessera_jobs_started_total") > jobs);
    assert_eq!(server.metric("tessera_tile_cache_hits_total"), 1);
}

/// moto's S3 server: `$TESSERA_MOTO_SERVER`, else `.venv/bin/moto_server` in the crate
/// (`make test` installs it).
fn moto_server_path() -> PathBuf {
    std::env::var_os("TESSERA_MOTO_SERVER").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"),
        PathBuf::from,
    )
}

/// One plain HTTP/1.1 request to moto (which takes unsigned requests); the status code.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

struct Moto(std::process::Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn an_s3_asset_equals_the_same_tile_from_the_local_file() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let moto = moto_server_path();
    let child = std::process::Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); `make venv` installs it", moto.display()));
    let _moto = Moto(child);
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < until, "moto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http(port, "PUT", "/tessera-test", b""), 200, "create bucket");
    let bytes = std::fs::read(harness::fixtures().join(harness::UTM[0])).unwrap();
    assert_eq!(http(port, "PUT", &format!("/tessera-test/cogs/{}", harness::UTM[0]), &bytes), 200);

    let credentials = [("AWS_ACCESS_KEY_ID", "tessera-test"), ("AWS_SECRET_ACCESS_KEY", "tessera-test")];
    let endpoint = format!("127.0.0.1:{port}");
    // S3 set up with Tessera's flags...
    let flags =
        ["--s3-endpoint", &endpoint, "--s3-path-style", "--s3-https=false", "--s3-region", "us-east-1"];
    assert_s3_tile_equals_local(&flags, &credentials).await;
    // ... and with the standard variables alone (which the egress proxy must read too).
    let mut env = credentials.to_vec();
    env.extend([
        ("AWS_S3_ENDPOINT", endpoint.as_str()),
        ("AWS_VIRTUAL_HOSTING", "FALSE"),
        ("AWS_HTTPS", "NO"),
        ("AWS_REGION", "us-east-1"),
    ]);
    assert_s3_tile_equals_local(&[], &env).await;
}

/// A server reading `s3://tessera-test/cogs/` configured by `args` and `env` renders the
/// same pixels and describes the same asset as from the local file.
async fn assert_s3_tile_equals_local(args: &[&str], env: &[(&str, &str)]) {
    let mut all = vec!["--allow-remote", "s3://tessera-test/cogs/"];
    all.extend(args);
    let server = Server::start_with(ServerOptions {
        args: all.iter().map(|s| (*s).to_owned()).collect(),
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    });
    let mut client = server.client().await;
    let (z, x, y) = MOSAIC;
    let url = format!("s3://tessera-test/cogs/{}", harness::UTM[0]);
    let from_s3 = client.get_tile(npy(z, x, y, &[&url])).await.unwrap().into_inner();
    let from_disk = client.get_tile(npy(z, x, y, &[harness::UTM[0]])).await.unwrap().into_inner();
    assert!(from_s3.data == from_disk.data && from_s3.mask == from_disk.mask, "pixels differ");
    let remote =
        client.get_asset_info(v1::GetAssetInfoRequest { asset: url.clone() }).await.unwrap().into_inner();
    let local = client
        .get_asset_info(v1::GetAssetInfoRequest { asset: harness::UTM[0].into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((remote.width, remote.height, remote.crs), (local.width, local.height, local.crs));
}
