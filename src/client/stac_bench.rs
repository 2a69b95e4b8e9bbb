//! `tessera bench --write-stac-items N --stac-file FILE` and `tessera bench --stac-layer
//! FILE`: the layer of a million items (bench/run.py scenario j).
//!
//! The generator writes a stac-geoparquet catalogue shaped like NAIP: 0.0625° x 0.0625°
//! quarter-quad cells in rows of [`GRID_COLUMNS`] from 125°W, 24.5°N (1 000 x 500 cells
//! reach 62.5°W, 55.75°N: the contiguous US and a margin), two acquisitions per cell
//! ([`YEARS`]), each item's `image` href one of the demo assets in turn (a catalogue of
//! real footprints over a handful of readable files). The measurement loads it as a STAC
//! layer in this process, as the server's front would (`Layers::load`), and reports the
//! load time, the process's memory before and after (VmRSS, VmHWM) and the time
//! `Layer::assets_for_tile` takes over random tiles inside the grid at z8, z10, z12 and
//! z14.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use arrow_array::{
    Array, ArrayRef, BinaryArray, Float64Array, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Fields};
use parquet::{arrow::ArrowWriter, basic::Compression, file::properties::WriterProperties};

use super::{ClientError, bench::Rng};
use crate::{
    demo::UTM_RGB_ASSETS,
    layers::{BoundsSource, Documents, LayerConfig, Layers, StacConfig},
    tms::TileMatrixSet,
};

/// Quarter-quad edge in degrees.
pub const CELL_DEGREES: f64 = 0.0625;
/// Cells per grid row.
pub const GRID_COLUMNS: usize = 1000;
/// The grid's south-west corner (lon, lat).
pub const GRID_ORIGIN: (f64, f64) = (-125.0, 24.5);
/// The acquisition years; each cell has one item per year.
pub const YEARS: [i32; 2] = [2020, 2022];
/// Rows per record batch and row group written.
const WRITE_ROWS: usize = 65_536;
/// Zoom levels queried.
const ZOOMS: [u8; 4] = [8, 10, 12, 14];

/// The cell of item `i` (column, row) and its year: the first half of the items are the
/// first year's, cell by cell, row after row.
fn cell_of(i: usize, items: usize) -> (usize, usize, i32) {
    let per_year = items.div_ceil(YEARS.len());
    let (year, cell) = (i / per_year, i % per_year);
    (cell % GRID_COLUMNS, cell / GRID_COLUMNS, YEARS[year.min(YEARS.len() - 1)])
}

/// West, south, east, north of a cell.
fn cell_bbox(column: usize, row: usize) -> [f64; 4] {
    let west = GRID_ORIGIN.0 + column as f64 * CELL_DEGREES;
    let south = GRID_ORIGIN.1 + row as f64 * CELL_DEGREES;
    [west, south, west + CELL_DEGREES, south + CELL_DEGREES]
}

/// A WKB polygon of the box (the geometry column real catalogues carry; a layer with a
/// `bbox` column does not read it).
fn wkb_box([w, s, e, n]: [f64; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(93);
    out.push(1);
    out.extend(3u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend(5u32.to_le_bytes());
    for (x, y) in [(w, s), (e, s), (e, n), (w, n), (w, s)] {
        out.extend(x.to_le_bytes());
        out.extend(y.to_le_bytes());
    }
    out
}

/// Writes `items` grid items to `path` (snappy, row groups of 65 536), each item's
/// `image` href being `hrefs[i % hrefs.len()]`.
pub fn write_grid_items(path: &Path, items: usize, hrefs: &[String]) -> Result<(), ClientError> {
    let nullable = |name: &str, t: DataType| Arc::new(Field::new(name, t, true));
    let file = std::fs::File::create(path)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(WRITE_ROWS))
        .build();
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let mut file = Some(file);
    for start in (0..items).step_by(WRITE_ROWS) {
        let rows: Vec<(usize, usize, usize, i32)> = (start..(start + WRITE_ROWS).min(items))
            .map(|i| {
                let (c, r, y) = cell_of(i, items);
                (i, c, r, y)
            })
            .collect();
        let boxes: Vec<[f64; 4]> = rows.iter().map(|&(_, c, r, _)| cell_bbox(c, r)).collect();
        let corner =
            |k: usize| -> ArrayRef { Arc::new(Float64Array::from_iter_values(boxes.iter().map(|b| b[k]))) };
        let bbox_fields: Fields = ["xmin", "ymin", "xmax", "ymax"]
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, true))
            .collect();
        let bbox = StructArray::new(bbox_fields, (0..4).map(corner).collect(), None);
        let ids = StringArray::from_iter_values(
            rows.iter().map(|&(_, c, r, y)| format!("bench_{r:04}_{c:04}_{y}")),
        );
        let geometry = BinaryArray::from_iter_values(boxes.iter().map(|b| wkb_box(*b)));
        // June of the year, a day and hour that vary by cell (flight lines are not flown at once).
        let micros = rows.iter().map(|&(_, c, r, y)| {
            let days =
                i64::from(y - 1970) * 365 + i64::from((y - 1969) / 4) + 151 + ((c * 7 + r * 3) % 60) as i64;
            (days * 86_400 + ((c + r) % 10) as i64 * 3600 + 16 * 3600) * 1_000_000
        });
        let datetime = TimestampMicrosecondArray::from_iter_values(micros).with_timezone("UTC");
        let href = StringArray::from_iter_values(rows.iter().map(|&(i, ..)| hrefs[i % hrefs.len()].as_str()));
        let kind = StringArray::from_iter_values(
            rows.iter().map(|_| "image/tiff; application=geotiff; profile=cloud-optimized"),
        );
        let image = StructArray::from(vec![
            (nullable("href", DataType::Utf8), Arc::new(href) as ArrayRef),
            (nullable("type", DataType::Utf8), Arc::new(kind) as ArrayRef),
        ]);
        let thumbs =
            StringArray::from_iter_values(rows.iter().map(|&(_, c, r, y)| format!("thumbs/{y}/{r}/{c}.jpg")));
        let thumbnail =
            StructArray::from(vec![(nullable("href", DataType::Utf8), Arc::new(thumbs) as ArrayRef)]);
        let assets = StructArray::from(vec![
            (nullable("image", image.data_type().clone()), Arc::new(image) as ArrayRef),
            (nullable("thumbnail", thumbnail.data_type().clone()), Arc::new(thumbnail) as ArrayRef),
        ]);
        let year_text = StringArray::from_iter_values(rows.iter().map(|&(.., y)| y.to_string()));
        let gsd =
            Float64Array::from_iter_values(rows.iter().map(|&(.., y)| if y >= 2022 { 0.3 } else { 0.6 }));
        let batch = RecordBatch::try_from_iter_with_nullable([
            ("id", Arc::new(ids) as ArrayRef, true),
            ("bbox", Arc::new(bbox) as ArrayRef, true),
            ("geometry", Arc::new(geometry) as ArrayRef, true),
            ("datetime", Arc::new(datetime) as ArrayRef, true),
            ("assets", Arc::new(assets) as ArrayRef, true),
            ("naip:year", Arc::new(year_text) as ArrayRef, true),
            ("gsd", Arc::new(gsd) as ArrayRef, true),
        ])
        .map_err(|e| ClientError::Usage(format!("building a record batch: {e}")))?;
        if writer.is_none() {
            let file = file.take().ok_or_else(|| ClientError::Usage("writer lost its file".into()))?;
            writer = Some(
                ArrowWriter::try_new(file, batch.schema(), Some(props.clone()))
                    .map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))?,
            );
        }
        if let Some(w) = writer.as_mut() {
            w.write(&batch).map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))?;
        }
    }
    match writer {
        Some(w) => w.close().map(|_| ()).map_err(|e| ClientError::Usage(format!("{}: {e}", path.display()))),
        None => Err(ClientError::Usage("--write-stac-items 0: nothing to write".into())),
    }
}

/// `--write-stac-items N --stac-file FILE`: the catalogue, its hrefs the demo assets
/// relative to FILE's directory (`../utm_rgb_00.tif` for a file in a subdirectory of the
/// demo data).
pub fn write(items: usize, file: &Path, data_dir: &Path) -> Result<(), ClientError> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let data = data_dir
        .canonicalize()
        .map_err(|e| ClientError::Usage(format!("--data-dir {}: {e}", data_dir.display())))?;
    let from = dir.canonicalize()?;
    let up = from.strip_prefix(&data).map(|rest| rest.components().count()).map_err(|_| {
        ClientError::Usage(format!(
            "--stac-file {} is not under --data-dir {}",
            file.display(),
            data_dir.display()
        ))
    })?;
    let hrefs: Vec<String> = UTM_RGB_ASSETS.iter().map(|a| format!("{}{a}", "../".repeat(up))).collect();
    let started = Instant::now();
    write_grid_items(file, items, &hrefs)?;
    let bytes = std::fs::metadata(file)?.len();
    eprintln!(
        "wrote {items} items to {} ({:.1} MiB) in {:.1} s",
        file.display(),
        bytes as f64 / 1_048_576.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// STAC layers never ask for bounds: nothing to read.
struct NoBounds;

impl BoundsSource for NoBounds {
    fn bounds<'a>(&'a self, asset: &'a str) -> futures::future::BoxFuture<'a, Result<[f64; 4], String>> {
        Box::pin(async move { Err(format!("{asset}: a STAC layer reads no bounds")) })
    }
}

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// p50, p99 and max of `times`, in microseconds.
fn spread(times: &mut [Duration]) -> serde_json::Value {
    times.sort();
    let us = |d: Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
    serde_json::json!({
        "queries": times.len(),
        "p50_us": us(super::bench::percentile(times, 50.0)),
        "p99_us": us(super::bench::percentile(times, 99.0)),
        "max_us": us(times.last().copied().unwrap_or_default()),
    })
}

/// `--stac-layer FILE`: load it as a layer (sorted by `sort`, as `[[layers]] stac`
/// would), then `queries` random tiles per zoom; prints one JSON line.
pub async fn measure(
    file: &Path,
    data_dir: &Path,
    sort: &str,
    queries: usize,
    seed: u64,
) -> Result<(), ClientError> {
    let file = std::path::absolute(file)?;
    let (rss_before, _) = memory_mib();
    let config = stac_layer_config("million", file.clone(), (!sort.is_empty()).then(|| sort.to_owned()));
    let started = Instant::now();
    let layers = Layers::load(&[config], data_dir, Arc::new(NoBounds), Documents::local())
        .await
        .map_err(|e| ClientError::Usage(e.to_string()))?;
    let load = started.elapsed();
    let (rss_after, hwm_after) = memory_mib();
    let layer = layers.get("million").ok_or_else(|| ClientError::Usage("the layer is missing".into()))?;
    let info = layer.info().clone();
    let [west, south, east, north] = info.bounds;
    let mut rng = Rng(seed.max(1));
    let mut uniform = |lo: f64, hi: f64| lo + (hi - lo) * (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    let mut all = Vec::new();
    let mut zooms = Vec::new();
    for z in ZOOMS {
        let (mut times, mut counts) = (Vec::with_capacity(queries), Vec::with_capacity(queries));
        for _ in 0..queries {
            let (lon, lat) = (uniform(west, east), uniform(south, north));
            let (x, y) = super::bench::lonlat_to_tile(lon, lat, z);
            let tile = TileMatrixSet::WEB_MERCATOR_QUAD
                .tile(u32::from(z), x, y)
                .map_err(|e| ClientError::Usage(e.to_string()))?;
            let t0 = Instant::now();
            let assets = layer.assets_for_tile(&tile).map_err(|e| ClientError::Usage(e.to_string()))?;
            times.push(t0.elapsed());
            counts.push(assets.len());
        }
        all.extend_from_slice(&times);
        let mut row = spread(&mut times);
        row["z"] = z.into();
        row["mean_assets"] =
            ((counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64 * 10.0).round() / 10.0).into();
        row["max_assets"] = counts.iter().max().copied().unwrap_or(0).into();
        zooms.push(row);
    }
    let report = serde_json::json!({
        "file": file.display().to_string(),
        "file_mib": std::fs::metadata(&file).map_or(f64::NAN, |m| m.len() as f64 / 1_048_576.0),
        "items": info.item_count,
        "sort": sort,
        "load_s": load.as_secs_f64(),
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "hwm_after_mib": hwm_after,
        "zooms": zooms,
        "overall": spread(&mut all),
    });
    println!("{report}");
    Ok(())
}

/// Where `--stac-file` defaults to: a subdirectory of the data directory.
#[must_use]
pub fn default_file(data_dir: &Path, items: usize) -> PathBuf {
    data_dir.join("stac-bench").join(format!("items-{items}.parquet"))
}

/// A STAC layer over `file` serving zooms 0-22, sorted by `sort`.
fn stac_layer_config(name: &str, file: PathBuf, sort: Option<String>) -> LayerConfig {
    LayerConfig {
        name: name.into(),
        description: None,
        mosaicjson: None,
        footprint: None,
        stac: Some(StacConfig {
            items: file,
            asset: None,
            bands: Vec::new(),
            sort,
            datetime: None,
            filter: std::collections::BTreeMap::new(),
            minzoom: Some(0),
            maxzoom: Some(22),
        }),
        max_assets_per_tile: None,
        skip_covered: false,
        overview: None,
        overview_maxzoom: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tms::BBox;

    #[test]
    fn the_generated_grid_loads_as_a_layer_whose_tiles_hold_the_cells_they_touch() {
        let dir = tempfile::tempdir().unwrap();
        for asset in UTM_RGB_ASSETS {
            std::fs::write(dir.path().join(asset), b"").unwrap();
        }
        let file = default_file(dir.path(), 5000);
        write(5000, &file, dir.path()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let config = stac_layer_config("g", file.clone(), Some("-datetime".into()));
        let layers =
            rt.block_on(Layers::load(&[config], dir.path(), Arc::new(NoBounds), Documents::local())).unwrap();
        let layer = layers.get("g").unwrap();
        // 2500 cells: 1000 x 2.5 rows.
        assert_eq!((layer.info().item_count, layer.info().bounds), (5000, [-125.0, 24.5, -62.5, 24.6875]));
        // A z12 tile in the first row of cells, newest first, each cell once per year.
        let tile = TileMatrixSet::WEB_MERCATOR_QUAD.tile(12, 626, 1759).unwrap();
        let area = tile.geographic_bounds().unwrap();
        let mut expected: Vec<(i32, String)> = (0..5000)
            .filter_map(|i| {
                let (column, row, year) = cell_of(i, 5000);
                let [min_x, min_y, max_x, max_y] = cell_bbox(column, row);
                BBox { min_x, min_y, max_x, max_y }
                    .intersects(&area)
                    .then(|| (year, UTM_RGB_ASSETS[i % 6].to_owned()))
            })
            .collect();
        assert!(expected.len() >= 2, "{area:?}");
        expected.sort_by_key(|(y, _)| std::cmp::Reverse(*y));
        let got = layer.assets_for_tile(&tile).unwrap();
        // Items in a cell row share their file with other cells: compare as years' sets of names.
        let newest: Vec<&str> =
            expected.iter().filter(|(y, _)| *y == 2022).map(|(_, a)| a.as_str()).collect();
        let mut got_newest: Vec<&str> = got[..newest.len()].iter().map(String::as_str).collect();
        let mut want = newest.clone();
        got_newest.sort_unstable();
        want.sort_unstable();
        assert_eq!((got.len(), got_newest), (expected.len(), want));
    }
}
