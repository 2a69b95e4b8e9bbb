//! `tessera bench --floor --tile-list FILE`: the tiles of a list rendered in this
//! process by one thread, with the worker's read path called directly and the front's
//! pure compositing and encoding after it; no server, no pool, no IPC, no gRPC.
//!
//! It is the floor a served tile is compared with: bench/run.py divides Tessera's time
//! per tile (one worker, one request in flight) by this one's, both measured in one
//! `tessera bench --server ADDR --floor` run, tile by tile in turn, which also checks
//! that the two PNGs of each tile are the same bytes. Each tile takes the
//! front's path in order: asset descriptions (kept after the first, as the front's
//! info cache does), assets whose lon/lat bounds miss the tile skipped, reads in
//! request order into first-wins pixel selection, stopping once no later asset can
//! change a pixel, then PNG. The front reads a tile's assets in parallel on several
//! workers; here they are read one after another, so the floor does no read the
//! served tile could have skipped.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::{
    ClientError,
    bench::{ListedTile, list_report, read_list},
};
use crate::{
    mosaic::{AssetInfo, PixelSelection, Selector},
    pb::worker::{ErrorKind, ReadRequest, Resampling},
    render::{DataType, OutputFormat, Raster, encode},
    tms::TileMatrixSet,
    worker::InProcessReader,
};

/// Tile edge in pixels, as `tessera bench --tile-list` asks the server for.
const TILE_SIZE: u32 = 256;

/// Renders `list` `repeat` times in a row and prints one result line (as `--tile-list`),
/// with `warm`: the passes after the first (which opens the assets) alone, their wall
/// time and this process's CPU time in them (zero tiles with one pass). bench/run.py
/// runs one such process a core to compare with a served run under load.
pub fn run(data_dir: &Path, list: &Path, concurrency: usize, repeat: usize) -> Result<(), ClientError> {
    check_concurrency(concurrency)?;
    let tiles = read_list(list)?;
    let mut floor = Floor::new(data_dir)?;
    let started = Instant::now();
    let mut results: Vec<(Duration, Result<(), String>)> = Vec::with_capacity(tiles.len() * repeat.max(1));
    let mut warm_from = None;
    for pass in 0..repeat.max(1) {
        if pass == 1 {
            warm_from = Some((Instant::now(), super::bench::process_cpu_time(), results.len()));
        }
        results.extend(tiles.iter().map(|tile| {
            let (took, png) = floor.timed(tile);
            (took, png.map(|_| ()))
        }));
    }
    let mut report = list_report(&results, started.elapsed());
    let (wall, cpu, warm_tiles) = warm_from.map_or((Duration::ZERO, Duration::ZERO, 0), |(at, cpu, from)| {
        (at.elapsed(), super::bench::process_cpu_time().saturating_sub(cpu), results.len() - from)
    });
    report["warm"] = serde_json::json!({
        "tiles": warm_tiles,
        "wall_s": wall.as_secs_f64(),
        "cpu_ms": cpu.as_secs_f64() * 1000.0,
    });
    println!("{report}");
    Ok(())
}

/// `--floor` renders on one thread.
pub(super) fn check_concurrency(concurrency: usize) -> Result<(), ClientError> {
    if concurrency == 1 {
        return Ok(());
    }
    Err(ClientError::Usage(
        "--floor renders on one thread (GDAL is not thread-safe): use --concurrency 1".into(),
    ))
}

/// The reader and what the front would have cached.
pub(super) struct Floor {
    reader: InProcessReader,
    root: PathBuf,
    infos: HashMap<String, AssetInfo>,
}

impl Floor {
    /// A floor reading the assets under `data_dir`.
    pub(super) fn new(data_dir: &Path) -> Result<Self, ClientError> {
        let root = data_dir
            .canonicalize()
            .map_err(|e| ClientError::Usage(format!("--data-dir {}: {e}", data_dir.display())))?;
        Ok(Self {
            reader: InProcessReader::new(std::slice::from_ref(&root)).map_err(ClientError::Usage)?,
            root,
            infos: HashMap::new(),
        })
    }

    /// One tile rendered to PNG, and how long it took.
    pub(super) fn timed(&mut self, tile: &ListedTile) -> (Duration, Result<Vec<u8>, String>) {
        let t0 = Instant::now();
        let result = self.render(tile);
        (t0.elapsed(), result)
    }

    /// An asset name as the worker gets it: a path under the data directory.
    fn path(&self, asset: &str) -> String {
        self.root.join(asset).to_string_lossy().into_owned()
    }

    fn info(&mut self, path: &str) -> Result<&AssetInfo, String> {
        if !self.infos.contains_key(path) {
            let info = self.reader.info(path).map_err(|e| format!("{path}: {}", e.message))?;
            let info =
                AssetInfo::from_worker(info).ok_or_else(|| format!("{path}: incomplete description"))?;
            self.infos.insert(path.to_owned(), info);
        }
        self.infos.get(path).ok_or_else(|| format!("{path}: no description"))
    }

    /// One tile to PNG bytes.
    fn render(&mut self, tile: &ListedTile) -> Result<Vec<u8>, String> {
        let tms = TileMatrixSet::WEB_MERCATOR_QUAD;
        let id = tms.tile(tile.z, tile.x, tile.y).map_err(|e| e.to_string())?;
        let (bounds, geographic) = (id.bounds(), id.geographic_bounds());
        let paths: Vec<String> = tile.assets.iter().map(|a| self.path(a)).collect();
        let mut touching = Vec::new();
        let mut reference: Option<(DataType, usize, f64)> = None;
        for (i, path) in paths.iter().enumerate() {
            let info = self.info(path)?;
            reference.get_or_insert((info.dtype, info.data_bands, info.nodata.unwrap_or(0.0)));
            if geographic.is_none_or(|g| info.geographic.intersects_lon_lat(&g)) {
                touching.push(i);
            }
        }
        let (dtype, bands, fill) = reference.ok_or("the tile lists no asset")?;
        let size = TILE_SIZE as usize;
        let mut selector = Selector::new(PixelSelection::First, dtype, bands, size, size, fill, paths.len())
            .map_err(|e| e.to_string())?;
        for i in (0..paths.len()).filter(|i| !touching.contains(i)) {
            selector.settle(i);
        }
        for &i in &touching {
            let request = ReadRequest {
                path: paths[i].clone(),
                target_crs: tms.crs().to_owned(),
                min_x: bounds.min_x,
                min_y: bounds.min_y,
                max_x: bounds.max_x,
                max_y: bounds.max_y,
                width: TILE_SIZE,
                height: TILE_SIZE,
                resampling: Resampling::Nearest as i32,
                ..Default::default()
            };
            match self.reader.read(&request) {
                Ok(r) => {
                    let raster = Raster {
                        dtype: DataType::from_worker(r.dtype).ok_or("the read returned an unknown type")?,
                        bands: r.band_count as usize,
                        width: r.width as usize,
                        height: r.height as usize,
                        pixels: r.pixels,
                        mask: r.mask,
                    };
                    if !raster.is_consistent() || (raster.dtype, raster.bands) != (dtype, bands) {
                        return Err(format!("{}: a malformed raster", paths[i]));
                    }
                    selector.add(i, &raster);
                }
                Err(e) if e.kind == ErrorKind::Outside => selector.settle(i),
                Err(e) => return Err(format!("{}: {}", paths[i], e.message)),
            }
            if selector.is_complete() {
                break;
            }
        }
        encode(&selector.finish(), OutputFormat::Png).map(|(png, _mask)| png).map_err(|e| e.to_string())
    }
}
