//! The byte ranges of the TIFF blocks a read will touch, so the front can fetch them
//! all at once before a worker warps (see [`super::remote_io`]).
//!
//! The read's grid is taken into the asset's CRS (its bounds densified, as the warper
//! does), then into pixels of the overview the read uses, widened by a margin for the
//! resampling kernel; every block under that window, of band 1 (pixel-interleaved) or
//! of every band (band-interleaved), and of the internal mask, is looked up in GDAL's
//! `TIFF` metadata domain (`BLOCK_OFFSET_x_y`, `BLOCK_SIZE_x_y`). A block the list
//! misses is still read, through the front, only more slowly: the list is an
//! optimisation, never a condition of correctness.

use gdal::{
    Dataset, Metadata,
    raster::RasterBand,
    spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef},
};

use crate::ipc::read_plan::Grid;
use crate::pb::worker::ByteRange;

/// Pixels added around the window (at the overview's resolution, at least): bilinear
/// needs 1, cubic 2, lanczos 3.
const MARGIN: f64 = 4.0;

/// Blocks beyond which a read is not planned (it reads through the front as it goes).
const MAX_BLOCKS: usize = 4096;

/// GDAL's COG layout puts 4 bytes (the block's size) before each block and repeats its
/// last 4 bytes after it; GDAL reads them with the block.
const LEADER: u64 = 4;

/// Points along each edge of the grid's bounds, as the warper samples them.
const EDGE_POINTS: usize = 21;

/// The bounds in the asset's CRS of `grid`'s edges, sampled at [`EDGE_POINTS`] points
/// each and taken through `to_source`. Not GDAL's `OCTTransformBounds`: with GDAL 3.6
/// and PROJ 9.1 it consults PROJ's database on every call, and was a sixth of all CPU
/// of a run of warm remote tiles. Its care for poles and the antimeridian is not needed
/// here: a block the list misses is still read, only through a question of its own.
fn densified_bounds(to_source: &CoordTransform, grid: &Grid) -> Option<[f64; 4]> {
    let (mut xs, mut ys) = (Vec::with_capacity(4 * EDGE_POINTS), Vec::with_capacity(4 * EDGE_POINTS));
    for i in 0..EDGE_POINTS {
        let t = i as f64 / (EDGE_POINTS - 1) as f64;
        let x = grid.min_x + t * (grid.max_x - grid.min_x);
        let y = grid.min_y + t * (grid.max_y - grid.min_y);
        xs.extend([x, x, grid.min_x, grid.max_x]);
        ys.extend([grid.min_y, grid.max_y, y, y]);
    }
    let mut zs = vec![0.0; xs.len()];
    to_source.transform_coords(&mut xs, &mut ys, &mut zs).ok()?;
    let finite = |v: &[f64]| v.iter().copied().filter(|v| v.is_finite()).collect::<Vec<_>>();
    let (xs, ys) = (finite(&xs), finite(&ys));
    let min = |v: &[f64]| v.iter().copied().reduce(f64::min);
    let max = |v: &[f64]| v.iter().copied().reduce(f64::max);
    Some([min(&xs)?, min(&ys)?, max(&xs)?, max(&ys)?])
}

/// The merged byte ranges of the blocks a read of `grid` (in `target_crs`) from overview
/// `overview` (`NONE` = full resolution, or GDAL's index) touches; `None` when they
/// cannot be worked out (GDAL's own overview choice, a rotated or GCP-georeferenced
/// asset, too many blocks).
pub fn for_read(ds: &Dataset, grid: &Grid, target_crs: &str, overview: &str) -> Option<Vec<ByteRange>> {
    let band1 = ds.rasterband(1).ok()?;
    let level = match overview {
        "NONE" => None,
        index => Some(index.parse::<usize>().ok()?),
    };
    let (width, height) = ds.raster_size();
    let gt = ds.geo_transform().ok()?;
    if gt[2] != 0.0 || gt[4] != 0.0 || gt[1] == 0.0 || gt[5] == 0.0 {
        return None;
    }
    let mut source = ds.spatial_ref().ok()?;
    source.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let mut target = SpatialRef::from_definition(target_crs).ok()?;
    target.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let [x0, y0, x1, y1] = densified_bounds(&CoordTransform::new(&target, &source).ok()?, grid)?;
    // Full-resolution pixel coordinates of the window.
    let cols = [(x0 - gt[0]) / gt[1], (x1 - gt[0]) / gt[1]];
    let rows = [(y0 - gt[3]) / gt[5], (y1 - gt[3]) / gt[5]];
    let level_band = match level {
        None => band1,
        Some(i) => band1.overview(i).ok()?,
    };
    let (level_width, level_height) = level_band.size();
    let (sx, sy) = (level_width as f64 / width as f64, level_height as f64 / height as f64);
    // The kernel's reach, in level pixels: wider when the read decimates further.
    let decimation = ((cols[1] - cols[0]).abs() * sx / f64::from(grid.width.max(1))).max(1.0);
    let margin = MARGIN * decimation;
    let window = |a: f64, b: f64, scale: f64, size: usize| {
        let low = (a.min(b) * scale - margin).floor().max(0.0);
        let high = (a.max(b) * scale + margin).ceil().min(size as f64);
        (low < high).then_some((low as usize, high as usize))
    };
    let (c0, c1) = window(cols[0], cols[1], sx, level_width)?;
    let (r0, r1) = window(rows[0], rows[1], sy, level_height)?;

    let interleaved_by_band = super::warp::band_interleave(&level_band).is_some_and(|i| i == "BAND");
    let mut read_bands = vec![];
    if interleaved_by_band {
        for i in 1..=ds.raster_count() {
            let band = ds.rasterband(i).ok()?;
            read_bands.push(match level {
                None => band,
                Some(l) => band.overview(l).ok()?,
            });
        }
    } else {
        read_bands.push(level_band);
    }
    let mut ranges = Vec::new();
    for band in &read_bands {
        blocks_under(band, (c0, c1), (r0, r1), read_bands.len() + 1, &mut ranges)?;
    }
    // An internal mask (a per-dataset mask that is neither alpha nor nodata).
    let mask =
        read_bands[0].mask_flags().ok().filter(|f| f.is_per_dataset() && !f.is_alpha() && !f.is_nodata());
    if mask.is_some()
        && let Ok(m) = read_bands[0].open_mask_band()
    {
        blocks_under(&m, (c0, c1), (r0, r1), read_bands.len() + 1, &mut ranges)?;
    }
    Some(merge(ranges))
}

/// Adds the blocks of `band` under columns `cols` and rows `rows` (end exclusive) to
/// `ranges`; `None` when the read would touch too many (`bands` bands of them).
fn blocks_under(
    band: &RasterBand<'_>,
    cols: (usize, usize),
    rows: (usize, usize),
    bands: usize,
    ranges: &mut Vec<ByteRange>,
) -> Option<()> {
    let (bw, bh) = band.block_size();
    if bw == 0 || bh == 0 {
        return None;
    }
    let (bx0, bx1) = (cols.0 / bw, (cols.1 - 1) / bw);
    let (by0, by1) = (rows.0 / bh, (rows.1 - 1) / bh);
    if (bx1 - bx0 + 1) * (by1 - by0 + 1) * bands > MAX_BLOCKS {
        return None;
    }
    for by in by0..=by1 {
        for bx in bx0..=bx1 {
            ranges.extend(block(band, bx, by));
        }
    }
    Some(())
}

/// Where block (`x`, `y`) of `band` lies in the file, with its leader and trailer;
/// `None` for a sparse block or one GDAL does not place.
fn block(band: &RasterBand<'_>, x: usize, y: usize) -> Option<ByteRange> {
    let offset: u64 = band.metadata_item(&format!("BLOCK_OFFSET_{x}_{y}"), "TIFF")?.parse().ok()?;
    let size: u64 = band.metadata_item(&format!("BLOCK_SIZE_{x}_{y}"), "TIFF")?.parse().ok()?;
    (offset > 0 && size > 0).then(|| {
        let start = offset.saturating_sub(LEADER);
        ByteRange { offset: start, length: offset + size + LEADER - start }
    })
}

/// `ranges` sorted, overlapping or touching ones merged.
#[must_use]
pub fn merge(mut ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    ranges.sort_by_key(|r| r.offset);
    let mut out: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.offset <= last.offset + last.length => {
                let end = (last.offset + last.length).max(r.offset + r.length);
                last.length = end - last.offset;
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(offset: u64, length: u64) -> ByteRange {
        ByteRange { offset, length }
    }

    fn srs(epsg: u32) -> SpatialRef {
        let mut s = SpatialRef::from_epsg(epsg).unwrap();
        s.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        s
    }

    #[test]
    fn densified_bounds_agree_with_gdals_transform_bounds() {
        let to_utm = CoordTransform::new(&srs(3857), &srs(32618)).unwrap();
        // A z12 and a z16 Web Mercator tile over the demo assets (UTM 18N).
        for (min_x, min_y, size) in [(-8_355_114.0, 4_842_432.0, 9_783.9), (-8_349_000.0, 4_829_900.0, 611.5)]
        {
            let grid =
                Grid { min_x, min_y, max_x: min_x + size, max_y: min_y + size, width: 256, height: 256 };
            let ours = densified_bounds(&to_utm, &grid).unwrap();
            let gdal = to_utm.transform_bounds(&[min_x, min_y, min_x + size, min_y + size], 21).unwrap();
            for (a, b) in ours.iter().zip(gdal) {
                assert!((a - b).abs() < 0.01, "{ours:?} vs GDAL's {gdal:?}");
            }
        }
    }

    #[test]
    fn tiles_either_side_of_the_antimeridian_fall_either_side_of_it_in_utm_zone_60() {
        // Web Mercator z10 tiles 1023/340 (lon 179.65..180) and 0/340 (lon -180..-179.65)
        // at 51.4..51.6°N, where 180° lies at eastings 707,600-709,300 m of zone 60: a
        // scene across the antimeridian is one window of the file for either.
        let to_utm60 = CoordTransform::new(&srs(3857), &srs(32660)).unwrap();
        let edge = 20_037_508.342_789_244;
        let (south, north, width) = (6_692_214.700_423_751, 6_731_350.458_905_762, 2.0 * edge / 1024.0);
        let west_of =
            Grid { min_x: edge - width, min_y: south, max_x: edge, max_y: north, width: 256, height: 256 };
        let east_of = Grid { min_x: -edge, max_x: -edge + width, ..west_of };
        let [x0, _, x1, _] = densified_bounds(&to_utm60, &west_of).unwrap();
        assert!((680_000.0..690_000.0).contains(&x0) && (707_000.0..710_000.0).contains(&x1), "{x0} {x1}");
        let [x0, _, x1, _] = densified_bounds(&to_utm60, &east_of).unwrap();
        assert!((707_000.0..710_000.0).contains(&x0) && (730_000.0..735_000.0).contains(&x1), "{x0} {x1}");
        for grid in [west_of, east_of] {
            let ours = densified_bounds(&to_utm60, &grid).unwrap();
            let b = [grid.min_x, grid.min_y, grid.max_x, grid.max_y];
            let gdal = to_utm60.transform_bounds(&b, 21).unwrap();
            for (a, b) in ours.iter().zip(gdal) {
                assert!((a - b).abs() < 0.01, "{ours:?} vs GDAL's {gdal:?}");
            }
        }
    }

    #[test]
    fn overlapping_and_touching_ranges_merge_and_gaps_stay() {
        let merged = merge(vec![r(100, 10), r(0, 10), r(10, 5), r(105, 20), r(200, 1)]);
        assert_eq!(merged, vec![r(0, 15), r(100, 25), r(200, 1)]);
        assert_eq!(merge(Vec::new()), Vec::new());
    }
}
