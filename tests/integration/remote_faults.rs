//! Remote assets against origins that misbehave: resets, short bodies, 503s, stalls,
//! objects replaced between requests, redirects away from the allow-list, and HTTPS
//! with a private CA. Every remote tile is compared pixel for pixel (NPY data and mask)
//! with the same tile read from the local files.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use tessera::pb::v1::{self, tile_service_client::TileServiceClient};
use tonic::{Code, Status, transport::Channel};

use crate::{
    harness::{self, Server, ServerOptions, tile_request},
    http_range::{self, Fault, Faults},
};

/// The mosaic tile the demo assets share.
const MOSAIC: (u32, u32, u32) = (12, 1194, 1551);

type Tile = (u32, u32, u32);

fn npy((z, x, y): Tile, assets: &[&str]) -> v1::GetTileRequest {
    let mut t = tile_request(z, x, y, assets);
    t.format = v1::ImageFormat::Npy as i32;
    t
}

/// `tile` of `assets`, with the caller's deadline `timeout` when given (as the
/// grpc-timeout header, so the answer is the server's).
async fn get(
    client: &mut TileServiceClient<Channel>,
    tile: Tile,
    assets: &[String],
    timeout: Option<Duration>,
) -> Result<v1::GetTileResponse, Status> {
    let assets: Vec<&str> = assets.iter().map(String::as_str).collect();
    let mut request = tonic::Request::new(npy(tile, &assets));
    if let Some(t) = timeout {
        let value = format!("{}m", t.as_millis());
        request.metadata_mut().insert("grpc-timeout", value.parse().unwrap());
    }
    client.get_tile(request).await.map(tonic::Response::into_inner)
}

fn same_pixels(a: &v1::GetTileResponse, b: &v1::GetTileResponse) -> bool {
    a.data == b.data && a.mask == b.mask
}

fn urls(base: &str, assets: &[&str]) -> Vec<String> {
    assets.iter().map(|a| format!("{base}/{a}")).collect()
}

fn local(assets: &[&str]) -> Vec<String> {
    assets.iter().map(|a| (*a).to_owned()).collect()
}

/// A metric's value, 0 when the server has not exported it yet (labelled counters
/// appear with their first event).
fn metric(server: &Server, name: &str) -> u64 {
    let text = server.metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .map_or(0, |v| v.parse().unwrap())
}

fn origin_errors(server: &Server, label: &str) -> u64 {
    metric(server, &format!("tessera_origin_errors_total{{status=\"{label}\"}}"))
}

/// Every `tessera_origin_errors_total` label with its value.
fn all_origin_errors(server: &Server) -> Vec<(String, u64)> {
    let prefix = "tessera_origin_errors_total{status=\"";
    server
        .metrics_text()
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|rest| {
            let (label, value) = rest.split_once("\"} ").unwrap();
            (label.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// A server (`workers` workers) reading remote assets under each of `bases`, without
/// read-ahead: the fixtures are a few hundred KB, and a 256 KiB window would bring most
/// of their blocks with the header, where these tests are about the blocks' requests.
fn server_for(bases: &[&str], workers: usize, extra: &[&str]) -> Server {
    let mut args = vec!["--remote-read-ahead".to_owned(), "0".to_owned()];
    for base in bases {
        args.extend(["--allow-remote".to_owned(), format!("{base}/")]);
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    Server::start_with(ServerOptions { workers, args, ..Default::default() })
}

/// The first `n` tiles of the MOSAIC tile and its descendants (z12 down, breadth
/// first) whose mosaic of the six local assets has valid pixels, with that mosaic.
async fn local_mosaics(
    client: &mut TileServiceClient<Channel>,
    n: usize,
) -> Vec<(Tile, v1::GetTileResponse)> {
    let mut out = Vec::new();
    let mut level = vec![MOSAIC];
    while out.len() < n {
        let mut next = Vec::new();
        for &(z, x, y) in &level {
            if out.len() < n
                && let Ok(t) = get(client, (z, x, y), &local(&harness::UTM), None).await
                && harness::npy_tile(&t).1.values.contains(&255.0)
            {
                out.push(((z, x, y), t));
            }
            next.extend([(0, 0), (1, 0), (0, 1), (1, 1)].map(|(dx, dy)| (z + 1, 2 * x + dx, 2 * y + dy)));
        }
        assert!(z_of(&next) <= 16, "not {n} tiles with data under {MOSAIC:?}");
        level = next;
    }
    out
}

fn z_of(tiles: &[Tile]) -> u32 {
    tiles.first().map_or(0, |t| t.0)
}

#[tokio::test]
async fn transient_faults_are_retried_and_tiles_are_whole() {
    let fixtures = harness::fixtures().to_path_buf();
    let (resetting, reset_counts) =
        http_range::serve_with_faults(fixtures.clone(), Faults::none().every(5, Fault::ResetMidBody)).await;
    let (truncating, truncated_counts) =
        http_range::serve_with_faults(fixtures, Faults::none().every(5, Fault::Truncate)).await;
    let server = server_for(&[&resetting, &truncating], 2, &[]);
    let mut client = server.client().await;
    let tiles = local_mosaics(&mut client, 30).await;
    for (base, counts, label) in
        [(&resetting, &reset_counts, "reset"), (&truncating, &truncated_counts, "truncated")]
    {
        let assets = urls(base, &harness::UTM);
        for (tile, want) in &tiles {
            let got = get(&mut client, *tile, &assets, None).await;
            let got = got.unwrap_or_else(|e| panic!("{label}: {tile:?}: {e:?}"));
            assert!(same_pixels(&got, want), "{label}: {tile:?}: pixels differ from the local files");
        }
        let injected = counts.injected(label);
        assert!(injected > 0, "{label}: no fault injected in {} requests", counts.total());
        // Each fault is a failed attempt (one whose hedge won instead is not counted).
        let seen = origin_errors(&server, label);
        eprintln!("{label}: {injected} faults in {} requests, {seen} counted", counts.total());
        assert!(seen > 0 && seen <= injected, "{label}: {seen} counted, {injected} injected");
    }
    // Every failure counted was transient and retried; nothing else failed.
    let errors = all_origin_errors(&server);
    let labels: Vec<&str> = errors.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["reset", "truncated"], "{errors:?}");
    let failures: u64 = errors.iter().map(|(_, n)| n).sum();
    assert_eq!(metric(&server, "tessera_origin_retries_total"), failures);
}

#[tokio::test]
async fn a_503_then_success_gives_the_whole_tile() {
    let fixtures = harness::fixtures().to_path_buf();
    let asset = harness::UTM[0];
    let path = format!("/{asset}");
    let (header_path, data_path) = (path.clone(), path.clone());
    // The header fails twice, the first data range once; then the origin answers.
    let faults = Faults::none()
        .on_first(2, move |r| r.path == header_path && r.range_start() == 0, Fault::Status(503))
        .on_first(1, move |r| r.path == data_path && r.range_start() > 0, Fault::Status(503));
    let (flaky_base, counts) = http_range::serve_with_faults(fixtures.clone(), faults).await;
    let (clean_base, clean_counts) = http_range::serve(fixtures).await;
    let server = server_for(&[&flaky_base, &clean_base], 2, &[]);
    let mut client = server.client().await;
    let want = get(&mut client, MOSAIC, &local(&[asset]), None).await.unwrap();

    let from_clean = get(&mut client, MOSAIC, &urls(&clean_base, &[asset]), None).await.unwrap();
    assert!(same_pixels(&from_clean, &want));
    let got = get(&mut client, MOSAIC, &urls(&flaky_base, &[asset]), None).await.unwrap();
    assert!(same_pixels(&got, &want), "pixels differ from the local file");
    assert_eq!(got.assets[0].outcome, v1::AssetOutcome::Used as i32);

    assert_eq!(counts.injected("503"), 3);
    assert_eq!(counts.starting_at(&path, 0), 3, "the header: two 503s and the answer");
    assert_eq!(clean_counts.starting_at(&path, 0), 1);
    assert_eq!(counts.total(), clean_counts.total() + 3, "the same requests as a clean origin, plus 3");
    assert_eq!(origin_errors(&server, "503"), 3);
    assert_eq!(metric(&server, "tessera_origin_retries_total"), 3);
}

#[tokio::test]
async fn a_stalled_origin_gives_deadline_exceeded_and_holds_no_worker() {
    let fixtures = harness::fixtures().to_path_buf();
    let asset = harness::UTM[0];
    let path = format!("/{asset}");
    let stalled_path = path.clone();
    // The header answers; every data range stalls far past the caller's deadline.
    let faults = Faults::none()
        .on(move |r| r.path == stalled_path && r.range_start() > 0, Fault::Stall(Duration::from_secs(5)));
    let (base, counts) = http_range::serve_with_faults(fixtures, faults).await;
    // One worker: if the remote read held it, the local tile below would wait for it.
    let server = server_for(&[&base], 1, &[]);
    let workers = server.worker_pids();
    let (kills, crashes, spawns) = (
        server.metric("tessera_worker_kills_total"),
        server.metric("tessera_worker_crashes_total"),
        server.metric("tessera_worker_spawns_total"),
    );
    let mut client = server.client().await;
    let remote = urls(&base, &[asset]);
    let started = Instant::now();
    let mut remote_client = client.clone();
    let call = tokio::spawn(async move {
        let outcome = get(&mut remote_client, MOSAIC, &remote, Some(Duration::from_secs(1))).await;
        (outcome, Instant::now())
    });
    // Once the front waits for the stalled data, a local tile takes the only worker.
    let until = Instant::now() + Duration::from_secs(5);
    while counts.starting_after(&path, 0) == 0 {
        assert!(Instant::now() < until, "the data ranges were never asked for");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let local_tile = get(&mut client, MOSAIC, &local(&[harness::UTM[1]]), None).await.unwrap();
    let local_done = Instant::now();
    let (outcome, remote_done) = call.await.unwrap();
    let status = outcome.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let elapsed = remote_done - started;
    assert!(elapsed < Duration::from_millis(1800), "answered after {elapsed:?}");
    assert!(local_done < remote_done, "the local tile waited for the remote read's worker");
    assert!(harness::npy_tile(&local_tile).1.values.contains(&255.0));

    assert_eq!(server.metric("tessera_worker_kills_total"), kills, "a worker was killed");
    assert_eq!(server.metric("tessera_worker_crashes_total"), crashes);
    assert_eq!(server.metric("tessera_worker_spawns_total"), spawns);
    assert_eq!(server.worker_pids(), workers);
    // And it still serves.
    let again = get(&mut client, MOSAIC, &local(&[asset]), None).await.unwrap();
    assert!(harness::npy_tile(&again).1.values.contains(&255.0));
}

#[tokio::test]
async fn hedging_keeps_tiles_in_time_under_occasional_stalls() {
    let fixtures = harness::fixtures().to_path_buf();
    let faults = Faults::none().every(7, Fault::Stall(Duration::from_secs(3)));
    let (base, counts) = http_range::serve_with_faults(fixtures, faults).await;
    let server = server_for(&[&base], 4, &[]);
    let mut client = server.client().await;
    let tiles = local_mosaics(&mut client, 30).await;
    let assets = urls(&base, &harness::UTM);
    let mut failed = Vec::new();
    for (tile, want) in &tiles {
        match get(&mut client, *tile, &assets, Some(Duration::from_secs(2))).await {
            Ok(got) => assert!(same_pixels(&got, want), "{tile:?}: pixels differ from the local files"),
            Err(e) => failed.push((*tile, e.code())),
        }
    }
    let stalls = counts.injected("stall");
    let hedges = metric(&server, "tessera_origin_hedges_total");
    eprintln!(
        "{} of 30 tiles in time; {stalls} stalls in {} requests; {hedges} hedges, {} won; failed: {failed:?}",
        30 - failed.len(),
        counts.total(),
        metric(&server, "tessera_origin_hedge_wins_total")
    );
    assert!(failed.len() <= 3, "{} tiles failed: {failed:?}", failed.len());
    assert!(failed.iter().all(|(_, code)| *code == Code::DeadlineExceeded), "{failed:?}");
    assert!(stalls > 0 && hedges > 0, "{stalls} stalls, {hedges} hedges");
}

/// A directory holding `name`, a copy of the fixture `of`.
fn origin_with(name: &str, of: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(harness::fixtures().join(of), dir.path().join(name)).unwrap();
    dir
}

#[tokio::test]
async fn an_object_replaced_between_requests_is_read_afresh_never_mixed() {
    let (old, new) = (harness::UTM[0], harness::UTM[1]);
    let dir = origin_with("changing.tif", old);
    std::fs::copy(harness::fixtures().join(old), dir.path().join("swapped.tif")).unwrap();
    // `changing.tif` is replaced right after its header was read.
    let faults = Faults::none().replaced_after("/changing.tif", 1, harness::fixtures().join(new));
    let (base, counts) = http_range::serve_with_faults(dir.path().to_path_buf(), faults.clone()).await;
    let server = server_for(&[&base], 2, &["--remote-metadata-ttl", "1s"]);
    let mut client = server.client().await;
    let old_tile = get(&mut client, MOSAIC, &local(&[old]), None).await.unwrap();
    let new_tile = get(&mut client, MOSAIC, &local(&[new]), None).await.unwrap();
    assert!(!same_pixels(&old_tile, &new_tile), "the two versions must differ on the tile");

    // Replaced between two tiles: after the metadata TTL the new version is read.
    let swapped = [format!("{base}/swapped.tif")];
    let first = get(&mut client, MOSAIC, &swapped, None).await.unwrap();
    assert!(same_pixels(&first, &old_tile));
    assert_eq!(metric(&server, "tessera_remote_objects_changed_total"), 0);
    faults.replace_now("/swapped.tif", harness::fixtures().join(new), &counts);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after_ttl = get(&mut client, MOSAIC, &swapped, None).await.unwrap();
    assert!(same_pixels(&after_ttl, &new_tile), "the tile after the TTL is not the new object's");
    assert_eq!(metric(&server, "tessera_remote_objects_changed_total"), 1);

    // Replaced right after its header was read, mid-tile: the tile is one version or
    // the other, whole.
    let changing = get(&mut client, MOSAIC, &[format!("{base}/changing.tif")], None).await;
    let changing =
        changing.unwrap_or_else(|e| panic!("an object replaced mid-read: {e:?}\n{}", server.log_text()));
    assert!(
        same_pixels(&changing, &old_tile) || same_pixels(&changing, &new_tile),
        "a tile mixing two versions of the object"
    );
    assert!(counts.of("/changing.tif") > 1);
    assert!(metric(&server, "tessera_remote_objects_changed_total") >= 2);
}

#[tokio::test]
async fn eight_workers_opening_one_cold_asset_make_one_header_fetch() {
    let (base, counts) = http_range::serve(harness::fixtures().to_path_buf()).await;
    let server = server_for(&[&base], 8, &[]);
    let client = server.client().await;
    let asset = harness::UTM[0];
    // Eight distinct z16 tiles inside the asset, at once.
    let info = client
        .clone()
        .get_asset_info(v1::GetAssetInfoRequest { asset: asset.into() })
        .await
        .unwrap()
        .into_inner();
    let g = info.geographic_bounds.unwrap();
    let mut tiles: Vec<Tile> = Vec::new();
    for i in 0..4 {
        for j in 0..2 {
            let lon = g.min_x + (g.max_x - g.min_x) * (0.15 + 0.2 * f64::from(i));
            let lat = g.min_y + (g.max_y - g.min_y) * (0.3 + 0.4 * f64::from(j));
            let (x, y) = harness::tile_at(lon, lat, 16);
            tiles.push((16, x, y));
        }
    }
    tiles.dedup();
    assert_eq!(tiles.len(), 8, "{tiles:?}");
    let remote = urls(&base, &[asset]);
    let calls = tiles.iter().map(|&tile| {
        let (mut c, remote) = (client.clone(), remote.clone());
        async move { get(&mut c, tile, &remote, None).await }
    });
    let got = futures::future::join_all(calls).await;
    assert_eq!(counts.starting_at(&format!("/{asset}"), 0), 1, "header requests");
    let mut client = client;
    for (tile, got) in tiles.iter().zip(got) {
        let want = get(&mut client, *tile, &local(&[asset]), None).await;
        match (got, want) {
            (Ok(got), Ok(want)) => {
                assert!(same_pixels(&got, &want), "{tile:?}: pixels differ");
                assert!(harness::npy_tile(&want).1.values.contains(&255.0), "{tile:?} has no data");
            }
            (got, want) => panic!("{tile:?}: remote {got:?}, local {want:?}"),
        }
    }
}

#[tokio::test]
async fn the_same_tile_repeated_makes_no_request() {
    let (base, counts) = http_range::serve(harness::fixtures().to_path_buf()).await;
    let server = server_for(&[&base], 4, &[]);
    let mut client = server.client().await;
    let assets = urls(&base, &harness::UTM);
    let first = get(&mut client, MOSAIC, &assets, None).await.unwrap();
    let (requests, origin_requests) = (counts.total(), metric(&server, "tessera_origin_requests_total"));
    assert!(requests > 0);
    assert_eq!(origin_requests, requests, "the front's count and the origin's agree");
    let jobs = server.metric("tessera_jobs_started_total");
    for i in 0..5 {
        let again = get(&mut client, MOSAIC, &assets, None).await.unwrap();
        assert!(same_pixels(&again, &first), "repeat {i}: pixels differ");
    }
    assert!(server.metric("tessera_jobs_started_total") > jobs, "the tile cache is off: each repeat renders");
    assert_eq!(counts.total(), requests, "repeats asked the origin");
    assert_eq!(metric(&server, "tessera_origin_requests_total"), origin_requests);
}

/// A directory with `allowed/utm_rgb_00.tif` and `utm_rgb_00.tif` (outside the prefix the
/// test allows), both links to the fixture.
fn redirecting_origin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = harness::fixtures().join(harness::UTM[0]);
    std::fs::create_dir(dir.path().join("allowed")).unwrap();
    std::os::unix::fs::symlink(&fixture, dir.path().join("allowed").join(harness::UTM[0])).unwrap();
    std::os::unix::fs::symlink(&fixture, dir.path().join(harness::UTM[0])).unwrap();
    dir
}

#[tokio::test]
async fn redirects_outside_the_allow_list_are_refused_and_their_targets_see_no_request() {
    // A second origin that would serve the asset if the front ever reached it.
    let (elsewhere, elsewhere_counts) = http_range::serve(harness::fixtures().to_path_buf()).await;
    let dir = redirecting_origin_dir();
    let outside = format!("/{}", harness::UTM[0]);
    let redirects = vec![
        ("/allowed/to_another_host.tif".to_owned(), format!("{elsewhere}/{}", harness::UTM[0])),
        ("/allowed/out_of_the_prefix.tif".to_owned(), outside.clone()),
        ("/allowed/to_metadata.tif".to_owned(), "http://169.254.169.254/latest/meta-data/".to_owned()),
        ("/allowed/within_the_prefix.tif".to_owned(), format!("/allowed/{}", harness::UTM[0])),
    ];
    let (base, counts) = http_range::serve_with_redirects(dir.path().to_path_buf(), redirects).await;
    let server = server_for(&[&format!("{base}/allowed")], 2, &[]);
    let mut client = server.client().await;

    for name in ["to_another_host", "out_of_the_prefix", "to_metadata"] {
        let asset = format!("{base}/allowed/{name}.tif");
        let status = get(&mut client, MOSAIC, std::slice::from_ref(&asset), None).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{asset}: {status:?}");
        assert!(status.message().contains(&asset), "{asset}: {}", status.message());
        assert!(status.message().contains("refused"), "{asset}: {}", status.message());
        assert_eq!(counts.of(&format!("/allowed/{name}.tif")), 1, "{asset}: a refusal is not retried");
    }
    assert_eq!(elsewhere_counts.total(), 0, "a redirect reached another host");
    assert_eq!(counts.of(&outside), 0, "a redirect reached a path outside the allowed prefix");
    assert_eq!(origin_errors(&server, "denied"), 3);

    // A redirect inside the prefix is followed, and plain allowed assets still render,
    // pixel for pixel as the local file.
    let want = get(&mut client, MOSAIC, &local(&[harness::UTM[0]]), None).await.unwrap();
    for asset in
        [format!("{base}/allowed/within_the_prefix.tif"), format!("{base}/allowed/{}", harness::UTM[0])]
    {
        let tile = get(&mut client, MOSAIC, std::slice::from_ref(&asset), None).await.unwrap();
        assert!(same_pixels(&tile, &want), "{asset}: pixels differ");
        assert_eq!(tile.assets[0].outcome, v1::AssetOutcome::Used as i32);
    }
    assert!(counts.of(&format!("/allowed/{}", harness::UTM[0])) > 0);
    assert_eq!(elsewhere_counts.total(), 0);
    assert_eq!(counts.of(&outside), 0);
}

/// A test CA and a server certificate for 127.0.0.1 (an IP SAN) signed by it: the
/// acceptor and the CA's PEM.
fn test_ca() -> (tokio_rustls::TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}

fn https_server(base: &str, ca_file: Option<&Path>) -> Server {
    let env = match ca_file {
        Some(file) => vec![("SSL_CERT_FILE".to_owned(), file.display().to_string())],
        // Whatever the machine sets, no extra root.
        None => {
            vec![("SSL_CERT_FILE".to_owned(), String::new()), ("CURL_CA_BUNDLE".to_owned(), String::new())]
        }
    };
    let args = vec!["--allow-remote".to_owned(), format!("{base}/")];
    Server::start_with(ServerOptions { workers: 2, args, env, ..Default::default() })
}

#[tokio::test]
async fn https_with_a_test_ca_equals_local() {
    let (acceptor, ca_pem) = test_ca();
    let (base, counts) = http_range::serve_tls(harness::fixtures().to_path_buf(), acceptor).await;
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let dir = tempfile::tempdir().unwrap();
    let ca_file: PathBuf = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let asset = harness::UTM[0];
    let remote = urls(&base, &[asset]);

    let trusting = https_server(&base, Some(&ca_file));
    let mut client = trusting.client().await;
    let want = get(&mut client, MOSAIC, &local(&[asset]), None).await.unwrap();
    let got = get(&mut client, MOSAIC, &remote, None).await.unwrap();
    assert!(same_pixels(&got, &want), "pixels differ from the local file");
    assert!(counts.total() > 0);
    drop(trusting);

    // Without the CA the certificate is unknown: the asset fails and the origin sees no
    // request (the handshake fails before one is sent).
    let requests = counts.total();
    let strict = https_server(&base, None);
    let mut client = strict.client().await;
    let status = get(&mut client, MOSAIC, &remote, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains(&remote[0]), "{}", status.message());
    assert!(status.message().contains("certificate"), "{}", status.message());
    assert_eq!(counts.total(), requests);
    // The same certificate would come back: failed at once, not retried.
    assert_eq!(strict.metric("tessera_origin_retries_total"), 0);
    assert!(strict.metric("tessera_origin_errors_total{status=\"tls\"}") >= 1, "{}", strict.metrics_text());
}
