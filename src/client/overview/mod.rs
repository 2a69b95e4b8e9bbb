//! `tessera layer build-overview NAME --max-zoom N -o FILE`: a low-zoom pyramid of a big
//! layer, so that its tiles at zooms `0..=N` read one file instead of thousands.
//!
//! # Theory of operation
//!
//! The layer is rendered by a running server, through its pool, exactly as callers see
//! it: GetLayer gives the bounds, the data type, the bands and their nodata; every
//! WebMercatorQuad tile at zoom N that touches the bounds is asked for as NPY (exact
//! values and the validity mask, not an image) with `ignore_overview`, so a rebuild
//! never reads the overview it replaces. The tiles are written, as they arrive, into a
//! tiled GeoTIFF in EPSG:3857 whose pixel grid is the zoom-N tile grid itself (a tile is
//! one 256 px block), so that tiles at zooms up to N read from it line up pixel for
//! pixel. Where the layer's bands all have the same nodata, masked pixels are written as
//! nodata; otherwise the mask is kept as an internal per-dataset mask. A tile the layer
//! has no asset for stays masked. GDAL's COG driver then copies it, with its internal
//! overviews, into a file beside FILE, which is renamed over FILE: a server reading the
//! old version never sees half of the new one.
//!
//! The grid is bounded ([`MAX_OVERVIEW_TILES`]); the temporary GeoTIFF is compressed, so
//! the disk it needs is about the size of the result, and memory stays at a few tiles.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use clap::{Args, ValueEnum};
use futures::StreamExt;

use self::staging::{Layout, Staging, TileData, gdal_error, npy_payload, write_cog};
use super::{ClientError, ConnectArgs, connect_with, resend_unsent};
use crate::pb::v1;

mod staging;

/// The largest overview built: 16 384 tiles (128 x 128 at 256 px, a 32 768 px square).
pub const MAX_OVERVIEW_TILES: u64 = 16_384;

/// Tile requests in flight while building, when not configured.
pub const DEFAULT_OVERVIEW_CONCURRENCY: usize = 8;

/// The side of a tile, and of a block of the overview, in pixels.
const TILE_SIZE: usize = 256;

/// Half the circumference of the WebMercatorQuad square, in metres.
const HALF_WORLD: f64 = std::f64::consts::PI * 6_378_137.0;

/// The latitude where WebMercatorQuad ends.
const MAX_LATITUDE: f64 = 85.051_128_779_806_59;

/// Metadata items the overview carries: which layer it shows, and at what zoom.
pub const LAYER_METADATA: &str = "TESSERA_LAYER";
/// See [`LAYER_METADATA`].
pub const MAXZOOM_METADATA: &str = "TESSERA_OVERVIEW_MAXZOOM";

/// Flags of `tessera layer`.
#[derive(Debug, Args)]
pub struct LayerArgs {
    /// What to do with the layer.
    #[command(subcommand)]
    pub command: LayerCommand,
}

/// Subcommands of `tessera layer`.
#[derive(Debug, clap::Subcommand)]
pub enum LayerCommand {
    /// Render a layer at one zoom through a running server into a COG that the layer's
    /// `overview` then serves tiles at that zoom and below from.
    BuildOverview(BuildOverviewArgs),
}

/// How the COG's internal overviews are computed from the zoom-N pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OverviewResampling {
    /// Nearest neighbour (classes, indexes).
    Nearest,
    /// Mean of the valid pixels.
    Average,
    /// Bilinear.
    Bilinear,
    /// Cubic.
    Cubic,
    /// Most frequent value (classes).
    Mode,
}

impl OverviewResampling {
    fn gdal_name(self) -> &'static str {
        match self {
            Self::Nearest => "NEAREST",
            Self::Average => "AVERAGE",
            Self::Bilinear => "BILINEAR",
            Self::Cubic => "CUBIC",
            Self::Mode => "MODE",
        }
    }
}

/// Flags of `tessera layer build-overview`.
#[derive(Debug, Args)]
pub struct BuildOverviewArgs {
    /// Server, TLS and token.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The layer (see `ListLayers`).
    pub layer: String,
    /// The zoom the layer is rendered at: tiles at this zoom and below read the overview.
    #[arg(long)]
    pub max_zoom: u8,
    /// The COG to write (replaced atomically); put it under the server's data directory
    /// and name it in the layer's `overview`.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Tile requests in flight.
    #[arg(long, default_value_t = DEFAULT_OVERVIEW_CONCURRENCY)]
    pub concurrency: usize,
    /// How the COG's own lower-resolution levels are made from the zoom-N pixels.
    #[arg(long, value_enum, default_value_t = OverviewResampling::Average)]
    pub resampling: OverviewResampling,
}

/// The zoom-N tiles an overview covers: columns `x0..=x1`, rows `y0..=y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileGrid {
    /// The zoom.
    pub z: u8,
    /// First column.
    pub x0: u32,
    /// First row (from the top).
    pub y0: u32,
    /// Last column.
    pub x1: u32,
    /// Last row.
    pub y1: u32,
}

impl TileGrid {
    /// The WebMercatorQuad tiles at `z` touching lon/lat `[west, south, east, north]`
    /// (latitudes clamped to the square); `None` across the antimeridian.
    #[must_use]
    pub fn covering(bounds: [f64; 4], z: u8) -> Option<Self> {
        let [west, south, east, north] = bounds;
        if west > east || south > north {
            return None;
        }
        let n = f64::from(1u32 << z);
        let last = (1u32 << z) - 1;
        let fx = |lon: f64| (lon.clamp(-180.0, 180.0) + 180.0) / 360.0 * n;
        let fy = |lat: f64| {
            let r = lat.clamp(-MAX_LATITUDE, MAX_LATITUDE).to_radians();
            (1.0 - r.tan().asinh() / std::f64::consts::PI) / 2.0 * n
        };
        let index = |v: f64| (v.max(0.0) as u32).min(last);
        let x0 = index(fx(west).floor());
        let y0 = index(fy(north).floor());
        let x1 = index(fx(east).ceil() - 1.0).max(x0);
        let y1 = index(fy(south).ceil() - 1.0).max(y0);
        Some(Self { z, x0, y0, x1, y1 })
    }

    /// Columns and rows.
    #[must_use]
    pub fn size(&self) -> (u64, u64) {
        (u64::from(self.x1 - self.x0 + 1), u64::from(self.y1 - self.y0 + 1))
    }

    /// Number of tiles.
    #[must_use]
    pub fn tiles(&self) -> u64 {
        let (w, h) = self.size();
        w * h
    }

    /// The GDAL geotransform of the grid in EPSG:3857 metres.
    #[must_use]
    pub fn geo_transform(&self) -> [f64; 6] {
        let res = 2.0 * HALF_WORLD / (TILE_SIZE as f64 * f64::from(1u32 << self.z));
        let tile = res * TILE_SIZE as f64;
        [-HALF_WORLD + f64::from(self.x0) * tile, res, 0.0, HALF_WORLD - f64::from(self.y0) * tile, 0.0, -res]
    }
}

/// The largest zoom at or below `z` whose grid over `bounds` fits [`MAX_OVERVIEW_TILES`].
fn largest_fitting_zoom(bounds: [f64; 4], z: u8) -> Option<u8> {
    (0..=z).rev().find(|z| TileGrid::covering(bounds, *z).is_some_and(|g| g.tiles() <= MAX_OVERVIEW_TILES))
}

/// A file name beside `output`, hidden, for a version being written.
fn beside(output: &Path, suffix: &str) -> PathBuf {
    let name = output.file_name().map_or_else(|| "overview".into(), |n| n.to_string_lossy().into_owned());
    output.with_file_name(format!(".{name}.{}.{suffix}", std::process::id()))
}

/// Removes the temporary files when dropped (also when the build fails half-way).
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What fetching the tiles found.
#[derive(Debug, Default)]
struct Fetched {
    /// Tiles the layer has no asset for (left masked).
    empty: usize,
    /// Tiles cut at the layer's asset budget.
    truncated: usize,
}

/// The grid of `layer` at `z`, checked: not across the antimeridian, within the layer's
/// zooms and [`MAX_OVERVIEW_TILES`].
fn grid_of(name: &str, info: &v1::LayerInfo, z: u8) -> Result<TileGrid, ClientError> {
    let bounds = info.bounds.map_or([-180.0, -90.0, 180.0, 90.0], |b| [b.min_x, b.min_y, b.max_x, b.max_y]);
    if z > crate::tms::MAX_ZOOM || u32::from(z) > info.max_zoom {
        return Err(ClientError::Usage(format!(
            "layer '{name}' serves zooms up to {}; --max-zoom {z} is above",
            info.max_zoom.min(u32::from(crate::tms::MAX_ZOOM))
        )));
    }
    let grid = TileGrid::covering(bounds, z).ok_or_else(|| {
        ClientError::Usage(format!(
            "layer '{name}' crosses the antimeridian (bounds {bounds:?}); an overview of it cannot be built"
        ))
    })?;
    if grid.tiles() > MAX_OVERVIEW_TILES {
        let (w, h) = grid.size();
        let fits = largest_fitting_zoom(bounds, z)
            .map_or_else(String::new, |z| format!("; zoom {z} fits, ask for --max-zoom {z} or lower"));
        return Err(ClientError::Usage(format!(
            "layer '{name}' at zoom {z} covers {w} x {h} = {} tiles, over the maximum of {MAX_OVERVIEW_TILES} tiles ({} x {} px) of an overview{fits}",
            grid.tiles(),
            128 * TILE_SIZE,
            128 * TILE_SIZE,
        )));
    }
    Ok(grid)
}

/// Asks for every tile of the grid, `concurrency` at a time, and writes each into
/// `staging` as it arrives.
async fn fetch_tiles(
    client: &super::Client,
    name: &str,
    staging: &mut Staging,
    concurrency: usize,
) -> Result<Fetched, ClientError> {
    let (grid, layout) = (staging.grid, staging.layout);
    let template = v1::GetTileRequest {
        z: u32::from(grid.z),
        layer: name.to_owned(),
        format: v1::ImageFormat::Npy as i32,
        tile_size: TILE_SIZE as u32,
        ignore_overview: true,
        ..Default::default()
    };
    let coords: Vec<(u32, u32)> =
        (grid.y0..=grid.y1).flat_map(|y| (grid.x0..=grid.x1).map(move |x| (x, y))).collect();
    let total = coords.len();
    let mut tiles = futures::stream::iter(coords)
        .map(|(x, y)| {
            let mut client = client.clone();
            let request = v1::GetTileRequest { x, y, ..template.clone() };
            async move { ((x, y), resend_unsent(async || client.get_tile(request.clone()).await).await) }
        })
        .buffer_unordered(concurrency.max(1));
    let mut fetched = Fetched::default();
    let pixels = TILE_SIZE * TILE_SIZE;
    let mut done = 0;
    while let Some(((x, y), result)) = tiles.next().await {
        let data = match result {
            Ok(tile) => {
                let tile = tile.into_inner();
                if (tile.width, tile.height, tile.band_count as usize, tile.dtype)
                    != (TILE_SIZE as u32, TILE_SIZE as u32, layout.bands, layout.dtype as i32)
                {
                    return Err(ClientError::Overview(format!(
                        "tile {}/{x}/{y} came back {}x{} with {} bands of type {}, not as layer '{name}' describes its first asset ({} bands of {})",
                        grid.z,
                        tile.width,
                        tile.height,
                        tile.band_count,
                        tile.dtype,
                        layout.bands,
                        layout.dtype.as_str_name()
                    )));
                }
                fetched.truncated += usize::from(tile.truncated);
                let expected = pixels * layout.bands * layout.type_size();
                Some(TileData {
                    pixels: npy_payload(&tile.data, expected, "tile")?.to_vec(),
                    mask: npy_payload(&tile.mask, pixels, "mask")?.to_vec(),
                })
            }
            // No asset of the layer there: the tile stays masked.
            Err(status) if status.code() == tonic::Code::NotFound => {
                fetched.empty += 1;
                None
            }
            Err(status) => return Err(status.into()),
        };
        staging.write(x, y, data)?;
        done += 1;
        if done % 256 == 0 {
            eprintln!("{done}/{total} tiles");
        }
    }
    Ok(fetched)
}

/// `tessera layer build-overview`.
pub async fn build_overview(args: BuildOverviewArgs) -> Result<(), ClientError> {
    let started = Instant::now();
    let name = args.layer.clone();
    let mut client = connect_with(&args.connect).await?;
    let request = v1::GetLayerRequest { layer: name.clone() };
    let described = resend_unsent(async || client.get_layer(request.clone()).await).await?.into_inner();
    let layout = Layout::of(&described)?;
    let info = described.layer.unwrap_or_default();
    let grid = grid_of(&name, &info, args.max_zoom)?;
    if !info.overview.is_empty() {
        eprintln!(
            "layer '{name}' serves zooms up to {} from its overview {}; the build reads the layer's own assets",
            info.overview_max_zoom, info.overview
        );
    }

    let staging_path = beside(&args.output, "staging.tmp");
    let cog_path = beside(&args.output, "cog.tmp");
    let _cleanup = Cleanup(vec![staging_path.clone(), cog_path.clone()]);
    let mut staging = Staging::create(&staging_path, layout, grid, &name)
        .map_err(|e| gdal_error(&format!("creating {}", staging_path.display()), e))?;
    let fetched = fetch_tiles(&client, &name, &mut staging, args.concurrency).await?;
    let lost = staging.lost_pixels;
    let mut staged = staging.ds;
    staged.flush_cache().map_err(|e| gdal_error("writing the staging GeoTIFF", e))?;
    write_cog(&staged, &cog_path, args.resampling)?;
    drop(staged);
    std::fs::rename(&cog_path, &args.output).map_err(|e| {
        ClientError::Overview(format!("renaming {} to {}: {e}", cog_path.display(), args.output.display()))
    })?;

    let bytes = std::fs::metadata(&args.output).map_or(0, |m| m.len());
    let (w, h) = grid.size();
    let Fetched { empty, truncated } = fetched;
    eprintln!(
        "layer '{name}' at zoom {}: {} tiles ({w} x {h}; {empty} without assets, {truncated} cut at the asset budget), {} x {} px, {bytes} bytes, written to {} in {:.1} s",
        grid.z,
        grid.tiles(),
        w as usize * TILE_SIZE,
        h as usize * TILE_SIZE,
        args.output.display(),
        started.elapsed().as_secs_f64()
    );
    if truncated > 0 {
        eprintln!(
            "warning: {truncated} tiles were cut at the layer's asset budget (max_assets_per_tile): the overview shows only the first assets there; raise the budget for the build, or build at a higher --max-zoom"
        );
    }
    if lost > 0 {
        eprintln!(
            "warning: {lost} valid pixels have the nodata value in every band and are masked in the overview"
        );
    }
    eprintln!(
        "serve it: in the layer's [[layers]] table, overview = \"<{} relative to the data directory>\" and overview_maxzoom = {}",
        args.output.display(),
        grid.z
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_is_the_tiles_touching_the_bounds() {
        // The demo assets: inside zoom-12 tile 1194/1551.
        let demo = [-75.04, 39.93, -74.98, 39.97];
        assert_eq!(
            TileGrid::covering(demo, 12),
            Some(TileGrid { z: 12, x0: 1194, y0: 1551, x1: 1194, y1: 1551 })
        );
        assert_eq!(TileGrid::covering(demo, 0).unwrap().tiles(), 1);
        let world = [-180.0, -90.0, 180.0, 90.0];
        assert_eq!(TileGrid::covering(world, 3), Some(TileGrid { z: 3, x0: 0, y0: 0, x1: 7, y1: 7 }));
        assert_eq!(TileGrid::covering([170.0, 0.0, -170.0, 1.0], 3), None);
        // Zoom 7 of the world is 16 384 tiles; zoom 8 is over.
        assert_eq!(largest_fitting_zoom(world, 12), Some(7));
    }

    #[test]
    fn the_geotransform_puts_tile_edges_on_pixel_edges() {
        let g = TileGrid { z: 1, x0: 1, y0: 0, x1: 1, y1: 1 };
        let [ox, res, _, oy, _, neg] = g.geo_transform();
        assert_eq!((ox, oy), (0.0, HALF_WORLD));
        assert!((res - HALF_WORLD / 256.0).abs() < 1e-9 && (neg + res).abs() < 1e-12);
    }
}
