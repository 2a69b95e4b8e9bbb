//! Files that change between the front's check and the worker's open: a tile swapped in a
//! tight loop for a symlink out of its root, or for a FIFO, is never read through the
//! swapped-in name; sidecar files follow the same rules; odd names (too long, a trailing
//! slash) are refused with a plain code and no OS error text.
//!
//! The roots are `--allow-local` directories made in a tempdir (the shared fixture data
//! directory is read-only to tests); the worker treats them exactly as the data directory.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tessera::pb::v1::{self, tile_service_client::TileServiceClient};
use tonic::{Code, transport::Channel};

use crate::harness::{self, Server, ServerOptions, tile_request};

/// The mosaic tile every demo asset covers, with different pixels in each.
const MOSAIC: (u32, u32, u32) = (12, 1194, 1551);
/// How long the swapping runs (requests go on for all of it).
const SWAP_FOR: Duration = Duration::from_secs(4);

/// A root directory (canonical) inside a tempdir, and the tempdir.
fn root_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let root = root.canonicalize().unwrap();
    (dir, root)
}

fn server_for(root: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--allow-local".to_owned(), root.display().to_string()];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    Server::start_with(ServerOptions { args, ..Default::default() })
}

fn name(path: &Path) -> String {
    path.display().to_string()
}

async fn tile(client: &mut TileServiceClient<Channel>, asset: &str) -> Result<Vec<u8>, tonic::Status> {
    let (z, x, y) = MOSAIC;
    client.get_tile(tile_request(z, x, y, &[asset])).await.map(|r| r.into_inner().data)
}

/// Makes something (a file, a link, a FIFO) at the path it is given.
type Maker = Box<dyn Fn(&Path) + Send>;

/// Puts `make(tmp)`'s result at `target` by rename, alternating between the makers, until
/// `stop`; how many swaps it made.
fn swap_loop(target: PathBuf, makers: Vec<Maker>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let tmp = target.with_extension("swap");
        let mut swaps = 0;
        while !stop.load(Ordering::Relaxed) {
            for make in &makers {
                let _ = std::fs::remove_file(&tmp);
                make(&tmp);
                std::fs::rename(&tmp, &target).unwrap();
                swaps += 1;
            }
        }
        swaps
    })
}

/// What the requests of a swap run got: each success's bytes and each failure's status.
#[derive(Default)]
struct Outcomes {
    ok: Vec<Vec<u8>>,
    errors: Vec<tonic::Status>,
}

/// Requests `asset`'s mosaic tile from 4 concurrent clients until `stop`.
async fn request_until(server: &Server, asset: &str, stop: &Arc<AtomicBool>) -> Outcomes {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut client = server.client().await;
        let (asset, stop) = (asset.to_owned(), Arc::clone(stop));
        tasks.push(tokio::spawn(async move {
            let mut out = Outcomes::default();
            while !stop.load(Ordering::Relaxed) {
                match tile(&mut client, &asset).await {
                    Ok(data) => out.ok.push(data),
                    Err(status) => out.errors.push(status),
                }
            }
            out
        }));
    }
    let mut all = Outcomes::default();
    for task in tasks {
        let out = task.await.unwrap();
        all.ok.extend(out.ok);
        all.errors.extend(out.errors);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tile_swapped_for_a_symlink_out_of_its_root_never_serves_the_outside_file() {
    let (dir, root) = root_dir();
    let fixtures = harness::fixtures();
    let store = root.join("inside.store");
    std::fs::copy(fixtures.join(harness::UTM[0]), &store).unwrap();
    std::fs::copy(&store, root.join("race.tif")).unwrap();
    let outside = dir.path().join("outside.tif");
    std::fs::copy(fixtures.join(harness::UTM[1]), &outside).unwrap();
    // The outside file's tile as a server that may read it renders it.
    std::fs::copy(&outside, root.join("legit_copy_of_outside.tif")).unwrap();

    let server = server_for(&root, &[]);
    let mut client = server.client().await;
    let race = name(&root.join("race.tif"));
    let inside_tile = tile(&mut client, &race).await.unwrap();
    let outside_tile = tile(&mut client, &name(&root.join("legit_copy_of_outside.tif"))).await.unwrap();
    assert_ne!(inside_tile, outside_tile, "the two files must render differently");

    let stop = Arc::new(AtomicBool::new(false));
    let (store2, outside2) = (store.clone(), outside.clone());
    let makers: Vec<Maker> = vec![
        Box::new(move |tmp| std::fs::hard_link(&store2, tmp).unwrap()),
        // An absolute link, then a relative one: both lead out of the root.
        Box::new(move |tmp| std::os::unix::fs::symlink(&outside2, tmp).unwrap()),
        Box::new(move |tmp| std::fs::hard_link(&store, tmp).unwrap()),
        Box::new(|tmp| std::os::unix::fs::symlink("../outside.tif", tmp).unwrap()),
    ];
    let swapper = swap_loop(root.join("race.tif"), makers, Arc::clone(&stop));
    let timer = stop_after(&stop, SWAP_FOR);
    let outcomes = request_until(&server, &race, &stop).await;
    timer.await.unwrap();
    let swaps = swapper.join().unwrap();

    let leaked = outcomes.ok.iter().filter(|d| **d == outside_tile).count();
    let inside = outcomes.ok.iter().filter(|d| **d == inside_tile).count();
    let denied = outcomes.errors.iter().filter(|s| s.code() == Code::PermissionDenied).count();
    // Those the worker refused: the name was a file at the front's check, a link out at
    // the worker's open (the rest were refused by the front).
    let by_worker = outcomes
        .errors
        .iter()
        .filter(|s| s.message().contains("the --allow-local directory it is in"))
        .count();
    let summary = format!(
        "{swaps} swaps; {} responses: {inside} inside, {leaked} OUTSIDE, {} other tiles; {denied} denied \
         ({by_worker} by the worker), other errors: {:?}",
        outcomes.ok.len() + outcomes.errors.len(),
        outcomes.ok.len() - inside - leaked,
        outcomes.errors.iter().filter(|s| s.code() != Code::PermissionDenied).take(3).collect::<Vec<_>>(),
    );
    eprintln!("{summary}");
    assert_eq!(leaked, 0, "the outside file was served: {summary}");
    assert_eq!(inside + denied, outcomes.ok.len() + outcomes.errors.len(), "{summary}");
    assert!(inside > 0 && by_worker > 0, "the race was not exercised: {summary}");
    // Every refusal names the asset and why, and no server path or OS error text.
    for status in &outcomes.errors {
        assert!(status.message().contains("outside"), "{}", status.message());
        assert!(!status.message().contains("os error"), "{}", status.message());
    }
    assert_eq!(server.metric("tessera_worker_crashes_total"), 0);
    assert_eq!(server.metric("tessera_worker_kills_total"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fifo_swapped_in_is_refused_at_once_and_no_worker_is_killed() {
    let (_dir, root) = root_dir();
    let store = root.join("inside.store");
    std::fs::copy(harness::fixtures().join(harness::UTM[0]), &store).unwrap();
    std::fs::copy(&store, root.join("pipe.tif")).unwrap();
    // Standing FIFOs: one by name, one behind a symlink inside the root.
    nix::unistd::mkfifo(&root.join("fifo.tif"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::os::unix::fs::symlink("fifo.tif", root.join("link_to_fifo.tif")).unwrap();
    let server = server_for(&root, &["--read-timeout", "5s"]);
    let mut client = server.client().await;
    let inside_tile = tile(&mut client, &name(&root.join("pipe.tif"))).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let makers: Vec<Maker> = vec![
        Box::new(move |tmp| std::fs::hard_link(&store, tmp).unwrap()),
        Box::new(|tmp| nix::unistd::mkfifo(tmp, nix::sys::stat::Mode::S_IRWXU).unwrap()),
    ];
    let swapper = swap_loop(root.join("pipe.tif"), makers, Arc::clone(&stop));
    let timer = stop_after(&stop, SWAP_FOR);
    let asset = name(&root.join("pipe.tif"));
    let outcomes = request_until(&server, &asset, &stop).await;
    timer.await.unwrap();
    let swaps = swapper.join().unwrap();

    let inside = outcomes.ok.iter().filter(|d| **d == inside_tile).count();
    let not_regular = outcomes
        .errors
        .iter()
        .filter(|s| {
            s.code() == Code::NotFound && s.message() == format!("asset '{asset}' is not a regular file")
        })
        .count();
    let summary = format!(
        "{swaps} swaps; {inside} inside tiles, {not_regular} 'not a regular file'; other errors: {:?}",
        outcomes.errors.iter().filter(|s| s.code() != Code::NotFound).take(3).collect::<Vec<_>>()
    );
    eprintln!("{summary}");
    assert_eq!(inside, outcomes.ok.len(), "{summary}");
    assert_eq!(not_regular, outcomes.errors.len(), "{summary}");
    assert!(inside > 0 && not_regular > 0, "the race was not exercised: {summary}");
    assert_eq!(server.metric("tessera_worker_kills_total"), 0, "{summary}");
    assert_eq!(server.metric("tessera_worker_crashes_total"), 0, "{summary}");

    for standing in ["fifo.tif", "link_to_fifo.tif"] {
        let asset = name(&root.join(standing));
        let started = Instant::now();
        let status = tile(&mut client, &asset).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{standing}: {status:?}");
        assert_eq!(status.message(), format!("asset '{asset}' is not a regular file"));
        assert!(started.elapsed() < Duration::from_secs(2), "{standing} took {:?}", started.elapsed());
    }
}

/// Runs a GDAL command-line tool; panics with its output if it fails.
fn gdal_tool(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A 1024 x 1024 Byte GeoTIFF of `value` covering Web Mercator tile 2/1/1 exactly.
fn mercator_tile_tiff(path: &Path, value: u8) {
    let half = 20_037_508.342_789_244;
    let quarter = half / 2.0;
    let (west, north, east, south) = (-quarter, quarter, 0.0, 0.0);
    let (w, n, e, s) = (west.to_string(), north.to_string(), east.to_string(), south.to_string());
    gdal_tool(
        "gdal_create",
        &[
            "-of",
            "GTiff",
            "-outsize",
            "1024",
            "1024",
            "-bands",
            "1",
            "-ot",
            "Byte",
            "-burn",
            &value.to_string(),
            "-a_srs",
            "EPSG:3857",
            "-a_ullr",
            &w,
            &n,
            &e,
            &s,
            &name(path),
        ],
    );
}

/// An external overview file for a 1024 x 1024 asset: one 512 x 512 level of `value`.
fn overview_file(path: &Path, value: u8) {
    gdal_tool(
        "gdal_create",
        &[
            "-of",
            "GTiff",
            "-outsize",
            "512",
            "512",
            "-bands",
            "1",
            "-ot",
            "Byte",
            "-burn",
            &value.to_string(),
            &name(path),
        ],
    );
}

async fn overview_widths(client: &mut TileServiceClient<Channel>, asset: &str) -> Vec<u32> {
    let info = client.get_asset_info(v1::GetAssetInfoRequest { asset: asset.into() }).await.unwrap();
    info.into_inner().overviews.iter().map(|o| o.width).collect()
}

/// The distinct values of an NPY tile of `asset` (all Byte).
async fn npy_values(
    client: &mut TileServiceClient<Channel>,
    asset: &str,
    z: u32,
    x: u32,
    y: u32,
) -> BTreeSet<u8> {
    let mut request = tile_request(z, x, y, &[asset]);
    request.format = v1::ImageFormat::Npy as i32;
    let response = client.get_tile(request).await.unwrap().into_inner();
    harness::npy_tile(&response).0.values.iter().map(|v| *v as u8).collect()
}

/// Sets `stop` after `wait`: the end of a swap race.
fn stop_after(stop: &Arc<AtomicBool>, wait: Duration) -> tokio::task::JoinHandle<()> {
    let stop = Arc::clone(stop);
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        stop.store(true, Ordering::Relaxed);
    })
}

#[tokio::test]
async fn external_overviews_are_read_by_the_same_rules_as_their_asset() {
    let (dir, root) = root_dir();
    // base.tif is 7 everywhere; its .ovr (whose level GDAL picks at zoom 2) is 99.
    mercator_tile_tiff(&root.join("base.tif"), 7);
    overview_file(&root.join("base.tif.ovr"), 99);
    // escape.tif's .ovr is a symlink to an overview outside the root (55).
    mercator_tile_tiff(&root.join("escape.tif"), 7);
    overview_file(&dir.path().join("outside.ovr"), 55);
    std::os::unix::fs::symlink(dir.path().join("outside.ovr"), root.join("escape.tif.ovr")).unwrap();
    let (base, escape) = (name(&root.join("base.tif")), name(&root.join("escape.tif")));

    // With directory listing on open enabled, GDAL looks for sidecars: the one inside is
    // used at low zoom, the one outside is not read at all.
    let server = server_for(&root, &["--gdal-config", "GDAL_DISABLE_READDIR_ON_OPEN=FALSE"]);
    let mut client = server.client().await;
    assert_eq!(overview_widths(&mut client, &base).await, vec![512]);
    assert_eq!(
        npy_values(&mut client, &base, 2, 1, 1).await,
        BTreeSet::from([99]),
        "zoom 2 did not read the .ovr"
    );
    assert_eq!(
        npy_values(&mut client, &base, 4, 4, 4).await,
        BTreeSet::from([7]),
        "zoom 4 did not read full resolution"
    );
    assert_eq!(overview_widths(&mut client, &escape).await, Vec::<u32>::new(), "an outside .ovr was read");
    assert_eq!(
        npy_values(&mut client, &escape, 2, 1, 1).await,
        BTreeSet::from([7]),
        "the outside .ovr was served"
    );
    drop(server);

    // Tessera's default (GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR, with listing turned on
    // for local opens only) reads them the same way.
    let server = server_for(&root, &[]);
    let mut client = server.client().await;
    assert_eq!(overview_widths(&mut client, &base).await, vec![512]);
    assert_eq!(npy_values(&mut client, &base, 2, 1, 1).await, BTreeSet::from([99]));
    assert_eq!(overview_widths(&mut client, &escape).await, Vec::<u32>::new(), "an outside .ovr was read");
    // A sidecar that is not a TIFF (a VRT that would read another file) is left out.
    mercator_tile_tiff(&root.join("disguised.tif"), 7);
    let vrt = r#"<VRTDataset rasterXSize="512" rasterYSize="512"><VRTRasterBand dataType="Byte" band="1">
<SimpleSource><SourceFilename relativeToVRT="0">/etc/passwd</SourceFilename><SourceBand>1</SourceBand></SimpleSource>
</VRTRasterBand></VRTDataset>"#;
    std::fs::write(root.join("disguised.tif.ovr"), vrt).unwrap();
    assert_eq!(overview_widths(&mut client, &name(&root.join("disguised.tif"))).await, Vec::<u32>::new());
    drop(server);

    // An operator who sets the default explicitly reads no sidecar.
    let server = server_for(&root, &["--gdal-config", "GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR"]);
    let mut client = server.client().await;
    assert_eq!(overview_widths(&mut client, &base).await, Vec::<u32>::new());
}

#[tokio::test]
async fn names_too_long_or_with_a_trailing_slash_get_plain_codes_without_os_errors() {
    let server = Server::start();
    let mut client = server.client().await;
    let cases = [
        // 4096 bytes in one component: longer than a file name may be.
        ("a".repeat(4096), Code::InvalidArgument, "exceeds the limit of 255 bytes"),
        // 4096 bytes in short components: within the name limit, past the file system's
        // once joined to the data directory.
        (format!("{}xy.tif", "d/".repeat(2045)), Code::InvalidArgument, "exceeds the limit of 4095 bytes"),
        (format!("{}/", harness::UTM[0]), Code::NotFound, "does not exist"),
        (format!("{}/x.tif", harness::UTM[0]), Code::NotFound, "does not exist"),
    ];
    for (asset, code, fragment) in cases {
        let status = tile(&mut client, &asset).await.unwrap_err();
        let short = &asset[..asset.len().min(40)];
        assert_eq!(status.code(), code, "{short}: {}", status.message());
        assert!(status.message().contains(fragment), "{short}: {}", status.message());
        assert!(!status.message().contains("os error"), "{short}: {}", status.message());
        assert!(!status.message().contains(&*harness::fixtures().to_string_lossy()), "{}", status.message());
    }
    let status = tile(&mut client, &format!("{}/", harness::UTM[0])).await.unwrap_err();
    assert_eq!(
        status.message(),
        format!("asset '{}/' does not exist in the data directory", harness::UTM[0])
    );
    // Nothing reached a worker.
    assert_eq!(server.metric("tessera_jobs_started_total"), 0);
}
