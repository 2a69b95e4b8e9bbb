//! Shared test machinery: fixtures (the demo data plus broken files, generated once per
//! target directory), a server process on port 0, the gdalwarp oracle and a .npy reader.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, OnceLock, mpsc},
    time::{Duration, Instant},
};

use tessera::pb::v1::{self, tile_service_client::TileServiceClient};
use tonic::transport::Channel;

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// The six overlapping UTM assets, in priority order.
pub const UTM: [&str; 6] = tessera::demo::UTM_RGB_ASSETS;

/// The custom tile matrix set of the tests (OGC TMS 2.0 JSON): `UTM18NTest`, a UTM
/// zone 18N grid over the demo data.
pub fn custom_tms_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/utm18n_tms.json")
}

/// The built-in tile matrix sets and the tests' custom one, as a server started with
/// `--tile-matrix-set` [`custom_tms_file`] has them.
pub fn tile_matrix_sets() -> &'static tessera::tms::TileMatrixSets {
    static SETS: OnceLock<tessera::tms::TileMatrixSets> = OnceLock::new();
    SETS.get_or_init(|| tessera::tms::TileMatrixSets::load(&[custom_tms_file()]).unwrap())
}

/// `.venv/bin/python`, where `make venv` installs grpcio, grpcio-tools and rio-tiler.
pub fn venv_python() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(path.is_file(), "{} is missing: run `make venv`", path.display());
    path
}

/// Runs `tests/parity/reference.py` (rio-tiler, in the venv) on `case`; its stdout.
pub fn reference_script(case: &serde_json::Value) -> Vec<u8> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/parity/reference.py");
    let mut child = Command::new(venv_python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), case).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "reference.py failed on {case}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Fixture directory: demo data plus broken files. Built once (atomically, so parallel
/// test processes agree) and reused.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join("fixtures-v4");
        if dir.join("complete").exists() {
            return dir;
        }
        let staging = root.join(format!("fixtures-staging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let status = Command::new(BIN).arg("demo-data").arg(&staging).status().unwrap();
        assert!(status.success(), "demo-data failed");
        let good = std::fs::read(staging.join("utm_rgb_00.tif")).unwrap();
        // Header intact, tile data cut: opens, fails on read.
        std::fs::write(staging.join("truncated.tif"), &good[..good.len() * 6 / 10]).unwrap();
        // Cut inside the header: does not open.
        std::fs::write(staging.join("header_cut.tif"), &good[..200]).unwrap();
        std::fs::write(staging.join("not_a_tiff.tif"), b"{\"this\": \"is JSON, not a GeoTIFF\"}\n").unwrap();
        std::fs::write(staging.join("outside_secret.txt"), b"secret").unwrap();
        // A byte-identical copy under another name, for tests that slow one of the two down.
        std::fs::write(staging.join("copy_of_utm_rgb_00.tif"), &good).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", staging.join("escape.tif")).unwrap();
        std::fs::create_dir(staging.join("sub")).unwrap();
        hostile_fixtures(&staging);
        std::fs::write(staging.join("complete"), b"").unwrap();
        if std::fs::rename(&staging, &dir).is_err() {
            // Another test process won the race; its copy is identical.
            let _ = std::fs::remove_dir_all(&staging);
            assert!(dir.join("complete").exists());
        }
        dir
    })
}

/// Files the hostile-input catalogue opens: other formats, a VRT that points at
/// `/etc/passwd`, a header that claims an absurd size, and more symlink escapes.
fn hostile_fixtures(dir: &Path) {
    let vrt = r#"<VRTDataset rasterXSize="10" rasterYSize="10">
  <VRTRasterBand dataType="Byte" band="1">
    <SimpleSource><SourceFilename relativeToVRT="0">/etc/passwd</SourceFilename><SourceBand>1</SourceBand></SimpleSource>
  </VRTRasterBand>
</VRTDataset>
"#;
    std::fs::write(dir.join("passwd.vrt"), vrt).unwrap();
    // The same VRT under a GeoTIFF's name: the driver allow-list, not the name, stops it.
    std::fs::write(dir.join("vrt_disguised.tif"), vrt).unwrap();
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, 2, 2);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.write_header().unwrap().write_image_data(&[0, 1, 2, 3]).unwrap();
    }
    std::fs::write(dir.join("image.png"), png).unwrap();
    std::fs::write(dir.join("netcdf_like.nc"), b"CDF\x01\0\0\0\0\0\0\0\x0a\0\0\0\x01").unwrap();
    std::fs::write(dir.join("data.json"), b"{\"type\": \"FeatureCollection\", \"features\": []}\n").unwrap();
    std::fs::write(dir.join("huge_header.tif"), huge_header_tiff(100_000, 100_000, 1000)).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("escape_dir")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/secret.tif", dir.join("dangling_escape.tif")).unwrap();
}

/// A classic little-endian TIFF header of `width` x `height` pixels and `bands` bands
/// (planar, one uncompressed strip per band) whose strips hold one byte each: it opens,
/// and its size is a lie.
pub fn huge_header_tiff(width: u32, height: u32, bands: u16) -> Vec<u8> {
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    let entries: u32 = 10;
    let offsets_at = 8 + 2 + entries * 12 + 4;
    let counts_at = offsets_at + 4 * u32::from(bands);
    let data_at = counts_at + 4 * u32::from(bands);
    let mut out = b"II".to_vec();
    out.extend_from_slice(&42u16.to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(entries as u16).to_le_bytes());
    let mut entry = |tag: u16, kind: u16, count: u32, value: u32| {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    };
    entry(256, LONG, 1, width); // ImageWidth
    entry(257, LONG, 1, height); // ImageLength
    entry(258, SHORT, 1, 8); // BitsPerSample
    entry(259, SHORT, 1, 1); // Compression: none
    entry(262, SHORT, 1, 1); // Photometric: min-is-black
    entry(273, LONG, u32::from(bands), offsets_at); // StripOffsets
    entry(277, SHORT, 1, u32::from(bands)); // SamplesPerPixel
    entry(278, LONG, 1, height); // RowsPerStrip
    entry(279, LONG, u32::from(bands), counts_at); // StripByteCounts
    entry(284, SHORT, 1, 2); // PlanarConfiguration: separate
    out.extend_from_slice(&0u32.to_le_bytes());
    for _ in 0..bands {
        out.extend_from_slice(&data_at.to_le_bytes());
    }
    for _ in 0..bands {
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    out.extend_from_slice(&[0; 16]);
    out
}

/// Options of a test server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub workers: usize,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub wait_ready: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { workers: 2, env: Vec::new(), args: Vec::new(), wait_ready: true }
    }
}

/// A `tessera serve` process on 127.0.0.1:0.
pub struct Server {
    pub child: Child,
    pub address: String,
    /// The admin endpoint (always on in tests, on port 0).
    pub admin: String,
    pub log: Arc<Mutex<Vec<String>>>,
    ready: mpsc::Receiver<()>,
}

impl Server {
    /// A ready server with `workers` workers, extra environment and arguments.
    pub fn with(env: &[(&str, &str)], args: &[&str], workers: usize) -> Self {
        Self::start_with(ServerOptions {
            workers,
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            wait_ready: true,
        })
    }

    pub fn start() -> Self {
        Self::start_with(ServerOptions::default())
    }

    pub fn start_with(opts: ServerOptions) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--workers", &opts.workers.to_string()])
            .arg("--data-dir")
            .arg(fixtures())
            .args(&opts.args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &opts.env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let (admin_tx, admin_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let plain = strip_ansi(&line);
                if let Some(rest) = plain.split("listening on ").nth(1) {
                    // Text or JSON lines: the address is the run of address characters.
                    let addr = rest.split(|c: char| !(c.is_ascii_alphanumeric() || ".:[]".contains(c)));
                    let _ = addr_tx.send(addr.into_iter().next().unwrap_or_default().to_owned());
                }
                if let Some(rest) = plain.split("admin endpoint on http://").nth(1) {
                    let _ = admin_tx.send(rest.split('/').next().unwrap_or_default().to_owned());
                }
                if plain.contains("worker pool ready") {
                    let _ = ready_tx.send(());
                }
                log2.lock().unwrap().push(plain);
            }
        });
        let address =
            addr_rx.recv_timeout(Duration::from_secs(20)).expect("server did not report its address");
        let admin = admin_rx.recv_timeout(Duration::from_secs(20)).expect("no admin endpoint");
        let server = Self { child, address, admin, log, ready: ready_rx };
        if opts.wait_ready {
            server.wait_ready(Duration::from_secs(20));
        }
        server
    }

    pub fn wait_ready(&self, limit: Duration) {
        self.ready.recv_timeout(limit).expect("worker pool did not become ready");
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub async fn client(&self) -> TileServiceClient<Channel> {
        TileServiceClient::connect(self.url()).await.unwrap().max_decoding_message_size(64 << 20)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Worker processes: children of the server.
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// Waits until the server has exactly `n` worker processes again and at least one of
    /// `before` is gone (a killed worker takes a moment to die), at most `limit`.
    pub fn wait_for_replacement(&self, before: &[u32], n: usize, limit: Duration) -> Vec<u32> {
        let until = Instant::now() + limit;
        loop {
            let pids = self.worker_pids();
            let replaced = before.iter().any(|p| !pids.contains(p));
            if (pids.len() == n && replaced) || Instant::now() > until {
                return pids;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the server has exactly `n` worker processes, at most `limit`.
    pub fn wait_for_workers(&self, n: usize, limit: Duration) -> Vec<u32> {
        let until = Instant::now() + limit;
        loop {
            let pids = self.worker_pids();
            if pids.len() == n || Instant::now() > until {
                return pids;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The admin endpoint's metrics page.
    pub fn metrics_text(&self) -> String {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(&self.admin).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        text
    }

    /// One metric's value.
    pub fn metric(&self, name: &str) -> u64 {
        let text = self.metrics_text();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
            .parse()
            .unwrap()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (at most `limit`) for a log line containing `needle`. Lines come through
    /// the server's stderr pipe and a reader thread, so one written just before an
    /// effect the test saw (a closed socket, a metric) may not be here yet.
    pub async fn wait_for_log(&self, needle: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while !self.log_text().contains(needle) {
            assert!(
                Instant::now() < until,
                "no {needle:?} in the log within {limit:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then wait for the exit (at most `limit`).
    /// (Async so the test's own connections keep being served and can answer GOAWAY.)
    pub async fn terminate(&mut self, limit: Duration) -> ExitStatus {
        signal(self.pid(), nix::sys::signal::Signal::SIGTERM);
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "server did not exit within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let workers = self.worker_pids();
        let _ = self.child.kill();
        let _ = self.child.wait();
        for w in workers {
            signal(w, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Runs `tessera serve` over the fixtures with `--config config` and `extra` until it
/// exits, as a server whose start must fail does: its exit code and stderr.
pub fn serve_until_exit(config: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--data-dir"])
        .arg(fixtures())
        .arg("--config")
        .arg(config)
        .args(extra)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Pids whose parent is `pid`, skipping zombies (already dead, waiting to be reaped).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Some(fields) = stat_fields(p) else {
            continue;
        };
        if fields.get(1).and_then(|f| f.parse::<u32>().ok()) == Some(pid) && fields[0] != "Z" {
            out.push(p);
        }
    }
    out.sort_unstable();
    out
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z")
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces and
/// parentheses, so it ends at the last ')'): state, ppid, pgrp, session, tty_nr, tpgid,
/// flags, minflt... (`[0]` is the state); `None` when the process is gone.
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<String> = stat.rsplit_once(')')?.1.split_whitespace().map(str::to_owned).collect();
    (!fields.is_empty()).then_some(fields)
}

/// A tile request with defaults.
pub fn tile_request(z: u32, x: u32, y: u32, assets: &[&str]) -> v1::GetTileRequest {
    v1::GetTileRequest {
        z,
        x,
        y,
        assets: assets.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

/// A zoom-17 tile (x, y) whose read of `truncated.tif` fails in the worker.
/// truncated.tif is the first 60% of a copy of utm_rgb_00.tif: its header and overviews
/// are intact, its last full-resolution blocks (the south of the image) are gone. A tile
/// near the south-east corner reads full resolution there.
pub async fn truncated_read_tile(client: &mut TileServiceClient<Channel>) -> (u32, u32) {
    let info =
        client.get_asset_info(v1::GetAssetInfoRequest { asset: UTM[0].into() }).await.unwrap().into_inner();
    let g = info.geographic_bounds.expect("geographic bounds");
    let inset = |a: f64, b: f64| a + (b - a) * 0.05;
    tile_at(inset(g.max_x, g.min_x), inset(g.min_y, g.max_y), 17)
}

/// Web Mercator tile containing a lon/lat.
pub fn tile_at(lon: f64, lat: f64, z: u32) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = ((lon + 180.0) / 360.0 * n).floor();
    let r = lat.to_radians();
    let y = ((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor();
    (x as u32, y as u32)
}

/// A decoded .npy: shape and values as f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Npy {
    pub descr: String,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

pub fn parse_npy(bytes: &[u8]) -> Npy {
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "not an .npy 1.0");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + len) % 64, 0, "header not 64-byte aligned");
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    let descr = header.split("'descr': '").nth(1).unwrap().split('\'').next().unwrap().to_owned();
    assert!(header.contains("'fortran_order': False"));
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> =
        shape_text.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect();
    let data = &bytes[10 + len..];
    let count: usize = shape.iter().product();
    let values: Vec<f64> = match descr.as_str() {
        "|u1" | "|b1" => data.iter().map(|v| f64::from(*v)).collect(),
        "|i1" => data.iter().map(|v| f64::from(i8::from_ne_bytes([*v]))).collect(),
        "<i4" => data.chunks_exact(4).map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap()))).collect(),
        "<u4" => data.chunks_exact(4).map(|c| f64::from(u32::from_le_bytes(c.try_into().unwrap()))).collect(),
        "<u2" => data.chunks_exact(2).map(|c| f64::from(u16::from_le_bytes([c[0], c[1]]))).collect(),
        "<i2" => data.chunks_exact(2).map(|c| f64::from(i16::from_le_bytes([c[0], c[1]]))).collect(),
        "<f4" => data.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap()))).collect(),
        "<f8" => data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        other => panic!("unexpected dtype {other}"),
    };
    assert_eq!(values.len(), count, "data length does not match the shape");
    Npy { descr, shape, values }
}

/// What `gdalwarp` makes of `assets` for a tile: the data bands (band-sequential) and
/// the validity mask (alpha > 0), read back with GDAL.
pub struct Oracle {
    pub bands: usize,
    pub values: Vec<f64>,
    pub mask: Vec<u8>,
}

/// The oracle of a first-wins mosaic: each asset warped on its own by the `gdalwarp`
/// CLI into a warped VRT (as rio-tiler's WarpedVRT, and Tessera's workers, read), read
/// back at its size; a pixel comes from the first asset valid there.
pub fn gdalwarp(assets: &[&str], tms: &str, z: u32, x: u32, y: u32, size: u32, resampling: &str) -> Oracle {
    let mut warped = assets.iter().map(|a| gdalwarp_one(a, tms, (z, x, y), size, resampling));
    let mut oracle = warped.next().expect("at least one asset");
    let n = oracle.mask.len();
    for next in warped {
        assert_eq!(next.bands, oracle.bands, "assets of one mosaic have the same bands");
        for p in 0..n {
            if oracle.mask[p] != 0 || next.mask[p] == 0 {
                continue;
            }
            oracle.mask[p] = next.mask[p];
            for b in 0..oracle.bands {
                oracle.values[b * n + p] = next.values[b * n + p];
            }
        }
    }
    oracle
}

fn gdalwarp_one(asset: &str, tms: &str, (z, x, y): (u32, u32, u32), size: u32, resampling: &str) -> Oracle {
    let tms_value = tile_matrix_sets().get(tms).unwrap();
    let tile = tms_value.tile(z, x, y).unwrap();
    let b = tile.bounds();
    let out = tempfile::Builder::new().suffix(".vrt").tempfile().unwrap();
    let mut cmd = Command::new("gdalwarp");
    cmd.args(["-q", "-overwrite", "-of", "VRT", "-t_srs", tms_value.crs(), "-te"])
        .args([b.min_x, b.min_y, b.max_x, b.max_y].iter().map(ToString::to_string))
        .args(["-ts", &size.to_string(), &size.to_string(), "-r", resampling])
        .args(["-ovr", &oracle_overview(asset, tms_value.crs(), &b, size, resampling), "-dstalpha"])
        .arg(fixtures().join(asset))
        .arg(out.path());
    let status = cmd.status().unwrap();
    assert!(status.success(), "gdalwarp failed: {cmd:?}");
    let ds = gdal::Dataset::open(out.path()).unwrap();
    let count = ds.raster_count();
    let (w, h) = ds.raster_size();
    let mut values = Vec::new();
    for i in 1..count {
        let band = ds.rasterband(i).unwrap();
        values.extend(band.read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap().data());
    }
    let alpha = ds.rasterband(count).unwrap().read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap();
    let mask = alpha.data().iter().map(|a| if *a > 0.0 { 255 } else { 0 }).collect();
    Oracle { bands: count - 1, values, mask }
}

/// The overview rio-tiler's read takes for a tile (`gdalwarp -ovr`'s value), worked out
/// here on its own from the `gdalwarp` CLI and the file: rio-tiler reads a warped VRT of
/// the tile's extent at the asset's resolution (gdalwarp's suggested one), decimated to
/// the tile's size; GDAL serves that from the coarsest overview whose resolution is at
/// most the wanted one (times 1.2 for a nearest read).
fn oracle_overview(asset: &str, crs: &str, b: &tessera::tms::BBox, size: u32, resampling: &str) -> String {
    let whole = tempfile::Builder::new().suffix(".vrt").tempfile().unwrap();
    let status = Command::new("gdalwarp")
        .args(["-q", "-overwrite", "-of", "VRT", "-t_srs", crs])
        .arg(fixtures().join(asset))
        .arg(whole.path())
        .status()
        .unwrap();
    assert!(status.success(), "gdalwarp -of VRT of {asset} failed");
    let gt = gdal::Dataset::open(whole.path()).unwrap().geo_transform().unwrap();
    let out = f64::from(size);
    let (width, height) = (b.max_x - b.min_x, b.max_y - b.min_y);
    let vrt_w = (width / gt[1].abs().min(width / out)).round().max(1.0);
    let vrt_h = (height / gt[5].abs().min(height / out)).round().max(1.0);
    let wanted = (vrt_w / out).min(vrt_h / out) * if resampling == "near" { 1.2 } else { 1.0 };
    let ds = gdal::Dataset::open(fixtures().join(asset)).unwrap();
    let (asset_w, asset_h) = ds.raster_size();
    let band = ds.rasterband(1).unwrap();
    let mut best = ("NONE".to_owned(), 1.0);
    for i in 0..band.overview_count().unwrap() as usize {
        let (ow, oh) = band.overview(i).unwrap().size();
        let implicit_w = (vrt_w * ow as f64 / asset_w as f64 + 0.5).floor().max(1.0);
        let implicit_h = (vrt_h * oh as f64 / asset_h as f64 + 0.5).floor().max(1.0);
        let resolution = (vrt_w / implicit_w).min(vrt_h / implicit_h);
        if resolution > best.1 && resolution <= wanted {
            best = (i.to_string(), resolution);
        }
    }
    best.0
}

/// Asserts an NPY tile equals the oracle: same mask everywhere, same values where valid.
pub fn assert_matches_oracle(label: &str, data: &Npy, mask: &Npy, oracle: &Oracle, size: usize) {
    assert_eq!(data.shape, vec![oracle.bands, size, size], "{label}: shape");
    assert_eq!(mask.shape, vec![size, size], "{label}: mask shape");
    let ours: Vec<u8> = mask.values.iter().map(|v| *v as u8).collect();
    let differing = ours.iter().zip(&oracle.mask).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "{label}: {differing} mask pixels differ from gdalwarp");
    let valid = ours.iter().filter(|m| **m == 255).count();
    assert!(valid > 0, "{label}: the tile has no valid pixel; pick a tile that touches the asset");
    let n = size * size;
    let mut mismatches = 0;
    for b in 0..oracle.bands {
        for p in 0..n {
            if ours[p] == 255 && data.values[b * n + p].to_bits() != oracle.values[b * n + p].to_bits() {
                mismatches += 1;
            }
        }
    }
    assert_eq!(mismatches, 0, "{label}: {mismatches} valid values differ from gdalwarp");
}

/// Decodes an NPY tile response into (data, mask).
pub fn npy_tile(t: &v1::GetTileResponse) -> (Npy, Npy) {
    assert_eq!(t.content_type, "application/x-npy");
    (parse_npy(&t.data), parse_npy(&t.mask))
}

/// Pixels whose mask differs, or whose values differ where both are valid (bit for bit;
/// NaN equals NaN).
pub fn differing_pixels(label: &str, ours: &(Npy, Npy), theirs: &(Npy, Npy)) -> usize {
    let ((data, mask), (ref_data, ref_mask)) = (ours, theirs);
    assert_eq!(data.descr, ref_data.descr, "{label}: data type");
    assert_eq!(data.shape, ref_data.shape, "{label}: shape");
    let n = mask.values.len();
    assert_eq!(ref_mask.values.len(), n, "{label}: mask size");
    let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    (0..n)
        .filter(|&p| {
            (mask.values[p] > 0.0) != (ref_mask.values[p] > 0.0)
                || (mask.values[p] > 0.0
                    && (0..data.shape[0]).any(|b| !same(data.values[b * n + p], ref_data.values[b * n + p])))
        })
        .count()
}
