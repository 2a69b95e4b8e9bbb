//! `tessera demo-data DIR`: a small, deterministic set of COGs written with GDAL, used
//! by `make run`, the benchmark and the integration tests. Every value is a function of
//! the pixel position, so the files are identical on every machine.
//!
//! | file | CRS | type | bands | mask |
//! |---|---|---|---|---|
//! | `utm_rgb_{row}{col}.tif` (6, a 2 x 3 grid that overlaps) | EPSG:32618 | uint8 | RGB | nodata 0, 32-px collar |
//! | `dem_4326.tif` | EPSG:4326 | float32 | 1 | nodata -9999, a hole |
//! | `rgba_3857.tif` | EPSG:3857 | uint8 | RGB + alpha | alpha 0 outside a disc |
//! | `nir_uint16.tif` | EPSG:32618 | uint16 | 4 (R, G, B, NIR) | nodata 0, collar |
//!
//! They sit around longitude -75, latitude 39.93, inside zoom 12 tile 1194/1551 (the
//! six UTM assets entirely), with internal tiles of 256 px and overviews.

use std::path::Path;

use gdal::{
    Dataset, DriverManager,
    raster::{Buffer, ColorInterpretation, GdalType, RasterCreationOptions},
    spatial_ref::SpatialRef,
};

/// The six overlapping UTM RGB assets, in mosaic priority order.
pub const UTM_RGB_ASSETS: [&str; 6] = [
    "utm_rgb_00.tif",
    "utm_rgb_01.tif",
    "utm_rgb_02.tif",
    "utm_rgb_10.tif",
    "utm_rgb_11.tif",
    "utm_rgb_12.tif",
];

/// UTM asset edge in pixels.
const UTM_SIZE: usize = 1024;
/// UTM pixel size in metres.
const UTM_RES: f64 = 2.0;
/// Distance between neighbouring UTM assets' origins (less than 2048 m: they overlap).
const UTM_STEP: f64 = 1800.0;
/// Top-left of asset 00.
const UTM_ORIGIN: (f64, f64) = (496_500.0, 4_424_500.0);
/// Width of the nodata collar.
const COLLAR: usize = 32;

struct Grid<T> {
    width: usize,
    height: usize,
    bands: Vec<Vec<T>>,
}

fn write_cog<T: GdalType + Copy>(
    path: &Path,
    grid: Grid<T>,
    epsg: u32,
    geo_transform: [f64; 6],
    nodata: Option<f64>,
    interpretation: &[ColorInterpretation],
) -> gdal::errors::Result<()> {
    let mem = DriverManager::get_driver_by_name("MEM")?;
    let mut ds: Dataset = mem.create_with_band_type::<T, _>("", grid.width, grid.height, grid.bands.len())?;
    ds.set_geo_transform(&geo_transform)?;
    ds.set_spatial_ref(&SpatialRef::from_epsg(epsg)?)?;
    for (i, data) in grid.bands.into_iter().enumerate() {
        let mut band = ds.rasterband(i + 1)?;
        let mut buffer = Buffer::new((grid.width, grid.height), data);
        band.write((0, 0), (grid.width, grid.height), &mut buffer)?;
        let interp = interpretation.get(i).and_then(|c| ColorInterpretation::from_c_int(c.c_int()));
        let is_alpha = matches!(interp, Some(ColorInterpretation::AlphaBand));
        if let Some(interp) = interp {
            band.set_color_interpretation(interp)?;
        }
        if !is_alpha {
            band.set_no_data_value(nodata)?;
        }
    }
    let cog = DriverManager::get_driver_by_name("COG")?;
    let options = RasterCreationOptions::from_iter([
        "COMPRESS=DEFLATE",
        "BLOCKSIZE=256",
        "OVERVIEW_RESAMPLING=AVERAGE",
        "NUM_THREADS=1",
    ]);
    ds.create_copy(&cog, path, &options)?;
    Ok(())
}

fn in_collar(col: usize, row: usize, width: usize, height: usize) -> bool {
    col < COLLAR || row < COLLAR || col >= width - COLLAR || row >= height - COLLAR
}

fn utm_rgb(asset: usize) -> Grid<u8> {
    let n = UTM_SIZE;
    let mut bands = vec![vec![0u8; n * n]; 3];
    for row in 0..n {
        for col in 0..n {
            if in_collar(col, row, n, n) {
                continue;
            }
            let p = row * n + col;
            // Values stay in 1..=255 so data never equals the nodata value 0.
            bands[0][p] = 1 + ((col * 254 / n) as u8);
            bands[1][p] = 1 + ((row * 254 / n) as u8);
            bands[2][p] = 1 + (((asset * 40 + (col / 64 + row / 64) * 7) % 254) as u8);
        }
    }
    Grid { width: n, height: n, bands }
}

fn nir_uint16() -> Grid<u16> {
    let n = UTM_SIZE;
    let mut bands = vec![vec![0u16; n * n]; 4];
    for row in 0..n {
        for col in 0..n {
            if in_collar(col, row, n, n) {
                continue;
            }
            let p = row * n + col;
            for (b, band) in bands.iter_mut().enumerate() {
                band[p] = 1 + ((col * 37 + row * 11 + b * 1000) % 60_000) as u16;
            }
        }
    }
    Grid { width: n, height: n, bands }
}

fn dem() -> Grid<f32> {
    let n = 512;
    let mut data = vec![0f32; n * n];
    for row in 0..n {
        for col in 0..n {
            let (dx, dy) = (col as f32 - 300.0, row as f32 - 200.0);
            data[row * n + col] = if dx * dx + dy * dy < 40.0 * 40.0 {
                -9999.0
            } else {
                100.0 + (col as f32 * 0.05).sin() * 20.0 + row as f32 * 0.25
            };
        }
    }
    Grid { width: n, height: n, bands: vec![data] }
}

fn rgba() -> Grid<u8> {
    let n = 512;
    let mut bands = vec![vec![0u8; n * n]; 4];
    for row in 0..n {
        for col in 0..n {
            let p = row * n + col;
            let (dx, dy) = (col as f64 - 256.0, row as f64 - 256.0);
            bands[0][p] = (col / 2) as u8;
            bands[1][p] = (row / 2) as u8;
            bands[2][p] = ((col + row) / 4) as u8;
            bands[3][p] = if dx * dx + dy * dy < 240.0 * 240.0 { 255 } else { 0 };
        }
    }
    Grid { width: n, height: n, bands }
}

/// Writes the demo assets into `dir` (created if missing); existing files are replaced.
pub fn write_demo_data(dir: &Path) -> std::io::Result<()> {
    use ColorInterpretation::{AlphaBand, BlueBand, GreenBand, RedBand, Undefined};
    std::fs::create_dir_all(dir)?;
    let gdal_err = |e: gdal::errors::GdalError| std::io::Error::other(e.to_string());
    for (i, name) in UTM_RGB_ASSETS.iter().enumerate() {
        let (r, c) = (i / 3, i % 3);
        let gt = [
            UTM_ORIGIN.0 + c as f64 * UTM_STEP,
            UTM_RES,
            0.0,
            UTM_ORIGIN.1 - r as f64 * UTM_STEP,
            0.0,
            -UTM_RES,
        ];
        write_cog(&dir.join(name), utm_rgb(i), 32618, gt, Some(0.0), &[RedBand, GreenBand, BlueBand])
            .map_err(gdal_err)?;
    }
    let gt = [UTM_ORIGIN.0 + 900.0, UTM_RES, 0.0, UTM_ORIGIN.1 - 900.0, 0.0, -UTM_RES];
    write_cog(
        &dir.join("nir_uint16.tif"),
        nir_uint16(),
        32618,
        gt,
        Some(0.0),
        &[RedBand, GreenBand, BlueBand, Undefined],
    )
    .map_err(gdal_err)?;
    let gt = [-75.06, 0.1 / 512.0, 0.0, 39.97, 0.0, -0.1 / 512.0];
    write_cog(&dir.join("dem_4326.tif"), dem(), 4326, gt, Some(-9999.0), &[]).map_err(gdal_err)?;
    // EPSG:3857 around (-75.0, 39.9): x = -8348961, y = 4851000.
    let gt = [-8_352_000.0, 10.0, 0.0, 4_854_000.0, 0.0, -10.0];
    write_cog(&dir.join("rgba_3857.tif"), rgba(), 3857, gt, None, &[RedBand, GreenBand, BlueBand, AlphaBand])
        .map_err(gdal_err)?;
    Ok(())
}
