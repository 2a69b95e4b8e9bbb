//! TIFF bombs: files small on disk that cost a worker gigabytes or seconds per read. A
//! block over `--max-block-bytes` is refused when the asset is opened; an asset whose
//! reads keep running past the read timeout is quarantined; a pool whose workers' memory
//! limits add up to more than the pod has is warned about at start.

use std::{
    io::Write as _,
    path::Path,
    time::{Duration, Instant},
};

use gdal::{Dataset, DriverManager, raster::RasterCreationOptions};
use tessera::pb::v1;
use tonic::Code;

use crate::harness::{self, Server};

fn server(env: &[(&str, &str)], args: &[&str], workers: usize) -> Server {
    Server::with(env, args, workers)
}

fn tile(asset: &str) -> v1::GetTileRequest {
    harness::tile_request(12, 1194, 1551, &[asset])
}

fn info(asset: &str) -> v1::GetAssetInfoRequest {
    v1::GetAssetInfoRequest { asset: asset.to_owned() }
}

/// Gives `path` the georeferencing of the demo asset the test tile covers, so that
/// without the block limit the tile would be read from it.
fn georeference(path: &Path) {
    let demo = Dataset::open(harness::fixtures().join("utm_rgb_00.tif")).unwrap();
    let mut ds = Dataset::open_ex(
        path,
        gdal::DatasetOptions {
            open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE | gdal::GdalOpenFlags::GDAL_OF_RASTER,
            ..Default::default()
        },
    )
    .unwrap();
    ds.set_geo_transform(&demo.geo_transform().unwrap()).unwrap();
    ds.set_spatial_ref(&demo.spatial_ref().unwrap()).unwrap();
}

/// A `width` x `height` GeoTIFF of zeros, `T` samples, created by GDAL with `options`.
fn gdal_tiff<T: gdal::raster::GdalType + Copy>(path: &Path, size: usize, options: &[&str]) -> String {
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let options: RasterCreationOptions = options.iter().copied().collect();
    let ds = driver.create_with_band_type_with_options::<T, _>(path, size, size, 1, &options).unwrap();
    drop(ds);
    georeference(path);
    path.to_string_lossy().into_owned()
}

/// The reported bomb: a GeoTIFF of 46 000 x 46 000 bytes in one deflated tile, about
/// 2 MB on disk and 2.1 GB decoded. The zlib stream is written without compressing
/// 2.1 GB: one chunk of zeros is deflated once, ending on a full flush (so it refers to
/// nothing before it), and repeated.
fn deflate_tile_bomb(path: &Path) -> String {
    const SIDE: u32 = 46_000;
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    let total = u64::from(SIDE) * u64::from(SIDE);
    let chunk_len = SIDE as usize * 16;
    let chunks = total / chunk_len as u64;
    assert_eq!(chunks * chunk_len as u64, total);
    let mut deflate = flate2::Compress::new(flate2::Compression::best(), false);
    let mut chunk = Vec::with_capacity(chunk_len);
    deflate.compress_vec(&vec![0; chunk_len], &mut chunk, flate2::FlushCompress::Full).unwrap();
    assert_eq!(deflate.total_in(), chunk_len as u64, "the chunk was not deflated whole");
    let mut tile = vec![0x78, 0xda];
    for _ in 0..chunks {
        tile.extend_from_slice(&chunk);
    }
    // A final empty block with fixed codes, then the Adler-32 of `total` zeros.
    tile.extend_from_slice(&[0x03, 0x00]);
    let adler = ((total % 65_521) << 16 | 1) as u32;
    tile.extend_from_slice(&adler.to_be_bytes());

    let entries: u16 = 10;
    let data_at = 8 + 2 + u32::from(entries) * 12 + 4;
    let mut out = b"II".to_vec();
    out.extend_from_slice(&42u16.to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    let mut entry = |tag: u16, kind: u16, value: u32| {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    };
    entry(256, LONG, SIDE); // ImageWidth
    entry(257, LONG, SIDE); // ImageLength
    entry(258, SHORT, 8); // BitsPerSample
    entry(259, SHORT, 8); // Compression: deflate
    entry(262, SHORT, 1); // Photometric: min-is-black
    entry(277, SHORT, 1); // SamplesPerPixel
    entry(322, LONG, SIDE); // TileWidth
    entry(323, LONG, SIDE); // TileLength
    entry(324, LONG, data_at); // TileOffsets
    entry(325, LONG, u32::try_from(tile.len()).unwrap()); // TileByteCounts
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&tile);
    std::fs::File::create(path).unwrap().write_all(&out).unwrap();
    georeference(path);
    path.to_string_lossy().into_owned()
}

fn assert_refused(label: &str, status: &tonic::Status, asset: &str, why: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{label}: {status:?}");
    assert_eq!(status.message(), format!("asset '{asset}' is too large: {why}"), "{label}");
}

#[tokio::test]
async fn a_46000_pixel_deflate_tile_is_refused_at_open_without_decoding_it() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = deflate_tile_bomb(&dir.path().join("bomb.tif"));
    let on_disk = std::fs::metadata(&bomb).unwrap().len();
    assert!(on_disk < 3_000_000, "the bomb is {on_disk} bytes");
    let s = server(&[], &["--allow-local", dir.path().to_str().unwrap()], 2);
    let mut client = s.client().await;
    let why = "its full resolution has blocks of 46000 x 46000 pixels x 1 band x 1 byte = 2116000000 \
               bytes decompressed, more than the 67108864 bytes per block this server decodes \
               (--max-block-bytes)";
    let started = Instant::now();
    let err = client.get_tile(tile(&bomb)).await.unwrap_err();
    assert_refused("tile", &err, &bomb, why);
    let err = client.get_asset_info(info(&bomb)).await.unwrap_err();
    assert_refused("info", &err, &bomb, why);
    // Decoding the tile takes seconds and gigabytes; refusing it, one header read.
    assert!(started.elapsed() < Duration::from_secs(5), "slow: {:?}", started.elapsed());
    assert_eq!(s.metric("tessera_worker_crashes_total"), 0);
    assert_eq!(s.metric("tessera_worker_kills_total"), 0);
    // The workers are the same and still serve.
    assert_eq!(s.worker_pids().len(), 2);
    client.get_tile(tile("utm_rgb_00.tif")).await.unwrap();
}

#[tokio::test]
async fn blocks_and_strips_over_max_block_bytes_are_refused_and_row_split_strips_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One 4096 x 4096 deflated tile: 16 MiB decoded.
    let tiled = gdal_tiff::<u8>(
        &d.join("tile.tif"),
        4096,
        &["TILED=YES", "BLOCKXSIZE=4096", "BLOCKYSIZE=4096", "COMPRESS=DEFLATE"],
    );
    // One 2048-row strip of UInt16: GDAL decodes the strip whole (8 MiB).
    let strip = gdal_tiff::<u16>(&d.join("strip.tif"), 2048, &["BLOCKYSIZE=2048", "COMPRESS=DEFLATE"]);
    // The same strip of bytes: GDAL reads it row by row, one row in memory.
    let split = gdal_tiff::<u8>(&d.join("split.tif"), 2048, &["BLOCKYSIZE=2048", "COMPRESS=DEFLATE"]);
    let s = server(&[], &["--allow-local", d.to_str().unwrap(), "--max-block-bytes", "1MiB"], 2);
    let mut client = s.client().await;
    let limit = "more than the 1048576 bytes per block this server decodes (--max-block-bytes)";
    let err = client.get_tile(tile(&tiled)).await.unwrap_err();
    assert_refused(
        "tile",
        &err,
        &tiled,
        &format!(
            "its full resolution has blocks of 4096 x 4096 pixels x 1 band x 1 byte = 16777216 bytes decompressed, {limit}"
        ),
    );
    let err = client.get_asset_info(info(&strip)).await.unwrap_err();
    assert_refused(
        "strip",
        &err,
        &strip,
        &format!(
            "its full resolution has blocks of 2048 x 2048 pixels x 1 band x 2 bytes = 8388608 bytes decompressed, {limit}"
        ),
    );
    let described = client.get_asset_info(info(&split)).await.unwrap().into_inner();
    assert_eq!((described.block_width, described.block_height), (2048, 1));
    // The demo COGs (256 x 256 x 3 bands of bytes, 192 KiB) pass.
    let good = client.get_tile(tile("utm_rgb_00.tif")).await.unwrap().into_inner();
    assert_eq!(good.assets[0].outcome, v1::AssetOutcome::Used as i32);
    assert_eq!(s.metric("tessera_worker_crashes_total"), 0);
    assert_eq!(s.metric("tessera_worker_kills_total"), 0);
}

/// Waits until the server's counter `name` reaches `value` (a worker killed at a
/// deadline is counted when the kill is done, which may be just after the answer).
async fn wait_metric(s: &Server, name: &str, value: u64) {
    let until = Instant::now() + Duration::from_secs(10);
    while s.metric(name) < value && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.metric(name), value, "{name}");
}

#[tokio::test]
async fn reads_that_keep_running_past_the_read_timeout_quarantine_the_asset_but_client_deadlines_do_not() {
    let s = server(
        &[("TESSERA_TEST_SLOW_READ", "utm_rgb_0=5000")],
        &["--read-timeout", "1500ms", "--quarantine-duration", "60s"],
        2,
    );
    let mut client = s.client().await;
    for asset in ["utm_rgb_01.tif", "utm_rgb_02.tif"] {
        client.get_asset_info(info(asset)).await.unwrap();
    }
    let with_deadline = |asset: &str| {
        let mut request = tonic::Request::new(tile(asset));
        request.metadata_mut().insert("grpc-timeout", "600m".parse().unwrap());
        request
    };
    // The server answers DEADLINE_EXCEEDED just before the client's deadline; a client
    // whose own timer fires first reports it as CANCELLED "Timeout expired".
    let assert_client_deadline = |err: &tonic::Status| {
        assert!(
            err.code() == Code::DeadlineExceeded
                || (err.code() == Code::Cancelled && err.message() == "Timeout expired"),
            "{err:?}"
        );
    };

    // Client deadlines shorter than the read timeout, as many as the threshold: each
    // kills its worker, none counts against the asset.
    for i in 1..=3 {
        let err = client.get_tile(with_deadline("utm_rgb_01.tif")).await.unwrap_err();
        assert_client_deadline(&err);
        wait_metric(&s, "tessera_worker_kills_total", i).await;
    }
    assert_eq!(s.metric("tessera_asset_quarantines_total"), 0);

    // The read timeout: the read and its retry, 2 kills.
    let err = client.get_tile(tile("utm_rgb_02.tif")).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    wait_metric(&s, "tessera_worker_kills_total", 5).await;
    assert_eq!(s.metric("tessera_asset_quarantines_total"), 0, "one slow read quarantined its asset");
    // The third read-timeout kill quarantines the asset, and is not retried.
    let err = client.get_tile(tile("utm_rgb_02.tif")).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    wait_metric(&s, "tessera_worker_kills_total", 6).await;
    assert_eq!(s.metric("tessera_asset_quarantines_total"), 1);
    s.wait_for_log(
        "asset quarantined: its reads keep running past the read timeout",
        Duration::from_secs(10),
    )
    .await;

    let jobs = s.metric("tessera_jobs_started_total");
    let err = client.get_tile(tile("utm_rgb_02.tif")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().starts_with("asset 'utm_rgb_02.tif'"), "{}", err.message());
    assert!(
        err.message().contains("quarantined for")
            && err.message().contains("reading it ran past the 1.5s read timeout 3 times within 600 s"),
        "{}",
        err.message()
    );
    assert_eq!(s.metric("tessera_jobs_started_total"), jobs, "a quarantined read reached a worker");
    assert_eq!(s.metric("tessera_quarantine_rejections_total"), 1);

    // The asset only ever cut short by its callers' deadlines still gets a worker.
    let err = client.get_tile(with_deadline("utm_rgb_01.tif")).await.unwrap_err();
    assert_client_deadline(&err);
    assert_eq!(s.metric("tessera_jobs_started_total"), jobs + 1);
    assert_eq!(s.metric("tessera_quarantine_rejections_total"), 1);
    assert_eq!(s.metric("tessera_worker_crashes_total"), 0);
}

#[tokio::test]
async fn workers_whose_memory_limits_outgrow_the_pod_are_warned_about_at_start() {
    let pod = tessera::pool::pod_memory().expect("no /proc/meminfo");
    let s = server(&[], &["--worker-memory-limit", "1024GiB"], 4);
    let expected = tessera::pool::over_budget(4, 1 << 40, &pod).expect("4 TiB fits this machine");
    assert!(expected.starts_with(
        "the workers may use more memory than the pod has: 4 workers x 1024.0 GiB (--worker-memory-limit) = 4096.0 GiB"
    ));
    let log = s.log_text();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(&expected)).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(warnings[0].contains(&format!("pod_memory={}", pod.bytes)), "{}", warnings[0]);
    // It warns and starts.
    let mut client = s.client().await;
    client.get_tile(tile("utm_rgb_00.tif")).await.unwrap();

    // Within the pod: the figures, no warning.
    let fits = server(&[], &["--worker-memory-limit", "1GiB"], 1);
    let log = fits.log_text();
    assert!(!log.contains("more memory than the pod has"), "{log}");
    let line = log.lines().find(|l| l.contains("worker memory budget")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("worker_memory_limit=1073741824"), "{line}");
}
