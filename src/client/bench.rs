//! `tessera bench`: a fixed, seeded mix of tiles over the demo data (single assets and
//! the 6-asset mosaic), rendered at concurrency 1 and 8 against a server this command
//! starts (or one given with `--server`). Prints tiles/s, p50/p99 latency and the peak
//! RSS of the front and of its workers (from /proc, when the server is ours).

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clap::Args;
use futures::StreamExt;

use tonic::transport::Channel;

use super::{ClientError, one_write};
use crate::{
    demo::UTM_RGB_ASSETS,
    pb::v1::{self, tile_service_client::TileServiceClient},
};

/// Flags of `tessera bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Benchmark this server instead of starting one.
    #[arg(long)]
    pub server: Option<String>,
    /// Data directory with the demo data (for the server this command starts).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Workers of the server this command starts.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Tiles per concurrency level.
    #[arg(long, default_value_t = 400)]
    pub tiles: usize,
    /// Seed of the tile mix.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Export the started server's traces and metrics over OTLP to a counting receiver in
    /// this process, to measure what telemetry costs.
    #[arg(long)]
    pub otlp_sink: bool,
    /// Render the tiles listed in this JSON file (`[{"z":12,"x":1194,"y":1551,"assets":[...]}]`,
    /// or `"layer":"NAME"` instead of `assets`) in order, `--concurrency` at a time, and print one JSON result line (used by
    /// bench/run.py) instead of the built-in mix.
    #[arg(long)]
    pub tile_list: Option<PathBuf>,
    /// Requests in flight with `--tile-list`.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Times the `--tile-list` is rendered in a row (later passes are warm).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// With `--tile-list`: render the tiles in this process, one thread, with the
    /// worker's read path called directly (no server, no pool, no IPC, no gRPC): the
    /// floor the served numbers are compared with. Local assets under `--data-dir` only;
    /// `--concurrency` must be 1 (GDAL is not thread-safe). With `--server` too, each
    /// tile is rendered here and asked of the server in turn, and both results print.
    #[arg(long, hide = true, requires = "tile_list")]
    pub floor: bool,
    /// Write a stac-geoparquet catalogue of N items (NAIP-like quarter-quads on a grid,
    /// two years, hrefs the demo assets in turn; see src/client/stac_bench.rs) to
    /// `--stac-file` and exit.
    #[arg(long, hide = true, value_name = "N")]
    pub write_stac_items: Option<usize>,
    /// The catalogue `--write-stac-items` writes (default: DATA_DIR/stac-bench/items-N.parquet).
    #[arg(long, hide = true)]
    pub stac_file: Option<PathBuf>,
    /// Load this STAC items file as a layer in this process (no server), sorted by
    /// `--stac-sort`, and time finding the assets of `--stac-queries` random tiles per
    /// zoom (z8, z10, z12, z14); print one JSON line: load time, memory, latencies.
    #[arg(long, hide = true)]
    pub stac_layer: Option<PathBuf>,
    /// The layer's `sort` for `--stac-layer` (empty: file order).
    #[arg(long, hide = true, default_value = "-datetime")]
    pub stac_sort: String,
    /// Tiles per zoom for `--stac-layer`.
    #[arg(long, hide = true, default_value_t = 20_000)]
    pub stac_queries: usize,
}

/// One entry of a `--tile-list` file.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ListedTile {
    pub(super) z: u32,
    pub(super) x: u32,
    pub(super) y: u32,
    #[serde(default)]
    pub(super) assets: Vec<String>,
    /// A layer instead of `assets` (the floor needs assets).
    #[serde(default)]
    pub(super) layer: Option<String>,
}

/// Reads a `--tile-list` file.
pub(super) fn read_list(path: &std::path::Path) -> Result<Vec<ListedTile>, ClientError> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text)
        .map_err(|e| ClientError::Usage(format!("{}: not a tile list: {e}", path.display())))
}

/// What a served tile said about itself: the assets it reports and whether the layer's
/// asset budget cut it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Served {
    assets: usize,
    truncated: bool,
    /// The server's own time for the tile (`GetTileResponse.elapsed`), in ms.
    server_ms: f64,
}

/// The result line of a `--tile-list` run: `{"tiles", "errors", "wall_s", "tiles_per_s",
/// "p50_ms", "p99_ms", "latencies_ms", "error_messages"}` (latencies in list order), and
/// for served tiles `"assets"` (reported per tile) and `"truncated"` (cut at a layer's
/// asset budget) and `"server_ms"` (the server's own time for it, `elapsed`), in list
/// order (0 and false for a failed tile or the floor).
pub(super) fn list_report(results: &[(Duration, Result<(), String>)], wall: Duration) -> serde_json::Value {
    list_report_served(results, &[], wall)
}

fn list_report_served(
    results: &[(Duration, Result<(), String>)],
    served: &[Served],
    wall: Duration,
) -> serde_json::Value {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut ok: Vec<Duration> = results.iter().filter(|(_, r)| r.is_ok()).map(|(d, _)| *d).collect();
    ok.sort();
    let mut messages: Vec<String> = results.iter().filter_map(|(_, r)| r.clone().err()).collect();
    messages.dedup();
    messages.truncate(5);
    serde_json::json!({
        "tiles": results.len(),
        "errors": results.len() - ok.len(),
        "wall_s": wall.as_secs_f64(),
        "tiles_per_s": ok.len() as f64 / wall.as_secs_f64(),
        "p50_ms": ms(percentile(&ok, 50.0)),
        "p99_ms": ms(percentile(&ok, 99.0)),
        "latencies_ms": results.iter().map(|(d, _)| ms(*d)).collect::<Vec<_>>(),
        "error_messages": messages,
        "assets": (0..results.len()).map(|i| served.get(i).map_or(0, |s| s.assets)).collect::<Vec<_>>(),
        "truncated": (0..results.len()).map(|i| served.get(i).is_some_and(|s| s.truncated)).collect::<Vec<_>>(),
        "server_ms": (0..results.len()).map(|i| served.get(i).map_or(0.0, |s| s.server_ms)).collect::<Vec<_>>(),
    })
}

/// Renders a tile list and prints its [`list_report`].
async fn run_list(
    client: &TileServiceClient<Channel>,
    path: &std::path::Path,
    concurrency: usize,
    repeat: usize,
) -> Result<(), ClientError> {
    let tiles = read_list(path)?;
    let started = Instant::now();
    let all = tiles.iter().cycle().take(tiles.len() * repeat.max(1));
    let outcomes: Vec<(Duration, Result<Served, String>)> = futures::stream::iter(all)
        .map(|t| async {
            let (took, tile) = serve_one(client.clone(), t).await;
            (took, split_png(tile).0)
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    println!("{}", served_report(outcomes, started.elapsed()));
    Ok(())
}

/// One listed tile asked of the server, how long the call took, and the tile's bytes.
async fn serve_one(
    mut client: TileServiceClient<Channel>,
    t: &ListedTile,
) -> (Duration, Result<(Served, Vec<u8>), String>) {
    let request = v1::GetTileRequest {
        z: t.z,
        x: t.x,
        y: t.y,
        assets: t.assets.clone(),
        layer: t.layer.clone().unwrap_or_default(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let r = client
        .get_tile(request)
        .await
        .map(|tile| {
            let tile = tile.into_inner();
            let server_ms = tile.elapsed.map_or(0.0, |d| d.seconds as f64 * 1e3 + f64::from(d.nanos) / 1e6);
            (Served { assets: tile.assets.len(), truncated: tile.truncated, server_ms }, tile.data)
        })
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()));
    (t0.elapsed(), r)
}

/// [`list_report_served`] of served calls.
fn served_report(outcomes: Vec<(Duration, Result<Served, String>)>, wall: Duration) -> serde_json::Value {
    let served: Vec<Served> = outcomes.iter().map(|(_, r)| r.clone().unwrap_or_default()).collect();
    let results: Vec<(Duration, Result<(), String>)> =
        outcomes.into_iter().map(|(d, r)| (d, r.map(|_| ()))).collect();
    list_report_served(&results, &served, wall)
}

/// `--server ADDR --floor`: each listed tile rendered by the floor in this process and
/// asked of the server, one right after the other (the floor first on even tiles, the
/// server first on odd ones), so that both see the same state of the machine: on a
/// shared virtual machine the speed of a core moves by half or more within seconds,
/// and two runs one after the other compare those moves more than the renderers.
/// Prints `{"served": REPORT, "floor": REPORT, "same_png": N}`: each report as
/// `--tile-list` prints it, with its own tiles' times summed as its wall time, and the
/// tiles whose two PNGs were the same bytes. Both reports also have `cpu_ms`: the CPU
/// time (user + system) this process spent in the floor's renders, or in the calls (the
/// client's side of gRPC), all tiles together.
async fn run_list_with_floor(
    client: &TileServiceClient<Channel>,
    data_dir: &std::path::Path,
    path: &std::path::Path,
    repeat: usize,
) -> Result<(), ClientError> {
    let tiles = read_list(path)?;
    let mut floor = super::floor::Floor::new(data_dir)?;
    let (mut served, mut floors) = (Vec::new(), Vec::new());
    let (mut served_wall, mut floor_wall) = (Duration::ZERO, Duration::ZERO);
    let (mut served_cpu, mut floor_cpu) = (Duration::ZERO, Duration::ZERO);
    let mut same_png = 0;
    for (i, t) in tiles.iter().cycle().take(tiles.len() * repeat.max(1)).enumerate() {
        let (mut ours, mut theirs) = (None, None);
        for floor_turn in [i % 2 == 0, i % 2 == 1] {
            if floor_turn {
                let cpu = process_cpu_time();
                let (took, png) = floor.timed(t);
                floor_cpu += process_cpu_time().saturating_sub(cpu);
                floor_wall += took;
                let (outcome, png) = split_png(png.map(|png| ((), png)));
                theirs = png;
                floors.push((took, outcome));
            } else {
                let cpu = process_cpu_time();
                let (took, tile) = serve_one(client.clone(), t).await;
                served_cpu += process_cpu_time().saturating_sub(cpu);
                served_wall += took;
                let (outcome, png) = split_png(tile);
                ours = png;
                served.push((took, outcome));
            }
        }
        same_png += usize::from(ours.is_some() && ours == theirs);
    }
    let mut floor_report = list_report(&floors, floor_wall);
    floor_report["cpu_ms"] = serde_json::json!(floor_cpu.as_secs_f64() * 1000.0);
    let mut served_report = served_report(served, served_wall);
    served_report["cpu_ms"] = serde_json::json!(served_cpu.as_secs_f64() * 1000.0);
    let report = serde_json::json!({
        "served": served_report,
        "floor": floor_report,
        "same_png": same_png,
    });
    println!("{report}");
    Ok(())
}

/// A render's outcome and, apart, its PNG (moved, not copied).
fn split_png<T>(result: Result<(T, Vec<u8>), String>) -> (Result<T, String>, Option<Vec<u8>>) {
    match result {
        Ok((outcome, png)) => (Ok(outcome), Some(png)),
        Err(e) => (Err(e), None),
    }
}

/// CPU time (user + system) of this process so far.
pub(super) fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &raw mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

/// A small deterministic generator (xorshift*), so the mix is the same on every run.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub(super) fn lonlat_to_tile(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = ((lon + 180.0) / 360.0 * n).floor();
    let lat = lat.to_radians();
    let y = ((1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor();
    (x as u32, y as u32)
}

/// Tiles at zoom `z` that lie inside `b` (west, south, east, north), shrunk by a margin.
fn tiles_inside(b: &v1::Bounds, z: u8) -> Vec<(u8, u32, u32)> {
    let (x0, y0) = lonlat_to_tile(b.min_x, b.max_y, z);
    let (x1, y1) = lonlat_to_tile(b.max_x, b.min_y, z);
    let mut out = Vec::new();
    for x in x0..=x1 {
        for y in y0..=y1 {
            out.push((z, x, y));
        }
    }
    out
}

/// A `tessera serve` child process started for a measurement.
pub(super) struct Server {
    pub(super) child: Child,
    pub(super) address: String,
    /// The admin endpoint, when started with `--admin-listen`.
    pub(super) admin: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// Starts `tessera serve` on port 0 with `extra` flags and waits for its pool.
pub(super) fn start_server(
    data_dir: &std::path::Path,
    workers: usize,
    extra: &[&str],
    env: &[(String, String)],
) -> Result<Server, ClientError> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", &workers.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or_else(|| ClientError::Usage("no stderr".into()))?;
    let mut lines = BufReader::new(stderr).lines();
    let mut address = None;
    let mut admin = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.split("admin endpoint on http://").nth(1) {
            admin = Some(rest.split('/').next().unwrap_or_default().to_owned());
        }
        if let Some(rest) = line.split("listening on ").nth(1) {
            address = Some(rest.split_whitespace().next().unwrap_or_default().to_owned());
        }
        if line.contains("worker pool ready") {
            break;
        }
    }
    // Keep draining the server's log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let address = address.ok_or_else(|| ClientError::Usage("the server did not start".into()))?;
    Ok(Server { child, address, admin })
}

pub(super) fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

pub(super) fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).ok().is_some_and(|s| {
                s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub(super) type Mix = Vec<((u8, u32, u32), Vec<String>)>;

/// The seeded mix: half single-asset tiles at zooms 14-16 inside one asset, half tiles of
/// the 6-asset mosaic at zooms 12-14. Asset bounds come from the server itself.
pub(super) async fn tile_mix(
    client: &TileServiceClient<Channel>,
    tiles: usize,
    seed: u64,
) -> Result<(Mix, usize, usize), ClientError> {
    let mut singles = Vec::new();
    let mut mosaic_bounds: Option<v1::Bounds> = None;
    for name in UTM_RGB_ASSETS {
        let info =
            client.clone().get_asset_info(v1::GetAssetInfoRequest { asset: name.into() }).await?.into_inner();
        let b = info.geographic_bounds.unwrap_or_default();
        for z in 14..=16u8 {
            singles.extend(tiles_inside(&b, z).into_iter().map(|t| (t, vec![name.to_owned()])));
        }
        mosaic_bounds = Some(match mosaic_bounds {
            None => b,
            Some(m) => v1::Bounds {
                min_x: m.min_x.min(b.min_x),
                min_y: m.min_y.min(b.min_y),
                max_x: m.max_x.max(b.max_x),
                max_y: m.max_y.max(b.max_y),
            },
        });
    }
    let all: Vec<String> = UTM_RGB_ASSETS.iter().map(|s| (*s).to_owned()).collect();
    let mosaic_bounds = mosaic_bounds.unwrap_or_default();
    let mosaic: Mix =
        (12..=14u8).flat_map(|z| tiles_inside(&mosaic_bounds, z)).map(|t| (t, all.clone())).collect();
    let mut rng = Rng(seed.max(1));
    let mix = (0..tiles)
        .map(|_| {
            if rng.below(2) == 0 {
                singles[rng.below(singles.len())].clone()
            } else {
                mosaic[rng.below(mosaic.len())].clone()
            }
        })
        .collect();
    Ok((mix, singles.len(), mosaic.len()))
}

/// Renders the mix with `concurrency` requests in flight; prints one result line.
async fn run_level(client: &TileServiceClient<Channel>, mix: &Mix, concurrency: usize) {
    let started = Instant::now();
    let results: Vec<(Duration, bool)> = futures::stream::iter(mix.iter().cloned())
        .map(|((z, x, y), assets)| {
            let mut client = client.clone();
            async move {
                let t = Instant::now();
                let ok = client
                    .get_tile(v1::GetTileRequest { z: u32::from(z), x, y, assets, ..Default::default() })
                    .await
                    .is_ok();
                (t.elapsed(), ok)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = started.elapsed();
    let mut latencies: Vec<_> = results.iter().map(|(d, _)| *d).collect();
    latencies.sort();
    let errors = results.iter().filter(|(_, ok)| !ok).count();
    println!(
        "{concurrency:>11} {:>8} {:>9.1} {:>9.2} {:>9.2} {errors:>7}",
        results.len(),
        results.len() as f64 / wall.as_secs_f64(),
        percentile(&latencies, 50.0).as_secs_f64() * 1000.0,
        percentile(&latencies, 99.0).as_secs_f64() * 1000.0,
    );
}

/// `tessera bench`.
pub async fn bench(args: BenchArgs) -> Result<(), ClientError> {
    if let Some(list) = args.tile_list.as_deref().filter(|_| args.floor && args.server.is_none()) {
        return super::floor::run(&args.data_dir, list, args.concurrency, args.repeat);
    }
    if let Some(items) = args.write_stac_items {
        let file =
            args.stac_file.clone().unwrap_or_else(|| super::stac_bench::default_file(&args.data_dir, items));
        return super::stac_bench::write(items, &file, &args.data_dir);
    }
    if let Some(file) = &args.stac_layer {
        return super::stac_bench::measure(
            file,
            &args.data_dir,
            &args.stac_sort,
            args.stac_queries,
            args.seed,
        )
        .await;
    }
    let sink = if args.otlp_sink { Some(super::otlp_sink::Sink::start().await?) } else { None };
    let env: Vec<(String, String)> = sink
        .iter()
        .map(|(_, addr)| ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), format!("http://{addr}")))
        .collect();
    let server = match &args.server {
        Some(_) => None,
        None => Some(start_server(&args.data_dir, args.workers, &[], &env)?),
    };
    let address =
        args.server.clone().or_else(|| server.as_ref().map(|s| s.address.clone())).unwrap_or_default();
    let client = one_write::connect(&address).await?;
    if let Some(list) = args.tile_list.as_deref().filter(|_| args.floor) {
        super::floor::check_concurrency(args.concurrency)?;
        return run_list_with_floor(&client, &args.data_dir, list, args.repeat).await;
    }
    if let Some(list) = &args.tile_list {
        return run_list(&client, list, args.concurrency, args.repeat).await;
    }
    let (mix, singles, mosaics) = tile_mix(&client, args.tiles, args.seed).await?;
    println!(
        "tessera bench: {} tiles per run, seed {}, {singles} single-asset candidates, {mosaics} 6-asset mosaic candidates, 256 px PNG",
        args.tiles, args.seed
    );
    println!(
        "{:>11} {:>8} {:>9} {:>9} {:>9} {:>7}",
        "concurrency", "tiles", "tiles/s", "p50 ms", "p99 ms", "errors"
    );
    for concurrency in [1usize, 8] {
        run_level(&client, &mix, concurrency).await;
    }
    if let Some(s) = &server {
        let front = s.child.id();
        let workers = children(front);
        let peaks: Vec<u64> = workers.iter().filter_map(|p| status_kb(*p, "VmHWM:")).collect();
        println!(
            "peak RSS: front {} MiB; workers ({}) max {} MiB, sum {} MiB",
            status_kb(front, "VmHWM:").unwrap_or(0) / 1024,
            workers.len(),
            peaks.iter().max().copied().unwrap_or(0) / 1024,
            peaks.iter().sum::<u64>() / 1024
        );
    }
    if let Some((sink, _)) = sink {
        // Stop the server first: its last spans leave at shutdown.
        drop(server);
        println!("OTLP sink received {}", sink.summary());
    }
    Ok(())
}
