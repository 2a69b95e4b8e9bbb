//! The point job: every requested band's value at the full-resolution pixel that
//! contains a lon/lat point, with its validity, as rio-tiler's `Reader.point` reads it
//! (no interpolation).

use gdal::raster::ResampleAlg;

use crate::pb::worker::{ErrorKind, PointRequest, PointResult, ReadStats};
use crate::worker::{
    dataset_cache::DatasetCache,
    grid::{Grid, Window},
    masked_read::{ReadShape, band_description, read_masked, select_bands},
    read::{JobError, open},
};

/// Reads the pixel under the request's point.
pub fn point(
    cache: &mut DatasetCache,
    req: &PointRequest,
    stats: &mut ReadStats,
) -> Result<PointResult, JobError> {
    if !(req.lon.is_finite() && req.lat.is_finite()) {
        return Err(JobError::new(ErrorKind::Invalid, format!("({}, {}) is not a point", req.lon, req.lat)));
    }
    let ds = open(cache, &req.path, stats)?;
    let bands = select_bands(ds, &req.bands)?;
    let grid = Grid::of(ds)?;
    let (column, row) = grid.pixel_at(req.lon, req.lat)?;
    let started = std::time::Instant::now();
    let shape = ReadShape {
        window: Window { col: column, row, width: 1, height: 1 },
        size: (1, 1),
        algorithm: ResampleAlg::NearestNeighbour,
    };
    let pixels = read_masked(ds, &bands, shape, req.nodata)?;
    stats.warp_us = started.elapsed().as_micros() as u64;
    Ok(PointResult {
        dtype: pixels.dtype as i32,
        bands: bands.iter().map(|b| b.index).collect(),
        values: pixels.values.iter().map(|v| v[0]).collect(),
        valid: pixels.valid.iter().map(|v| v[0]).collect(),
        band_descriptions: bands.iter().map(|b| band_description(ds, *b)).collect(),
        nodata: pixels.nodata,
        column: column as u32,
        row: row as u32,
    })
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values from the Python oracle are the point
mod tests {
    use super::*;
    use crate::worker::test_assets::{cache, int16_two_bands};

    // Expected values from rio-tiler 9.4.12 `Reader(path).point(lon, lat[, nodata=...])`
    // on the same file written with rasterio.
    fn point_at(path: &str, lon: f64, lat: f64, nodata: Option<f64>) -> Result<PointResult, JobError> {
        let req =
            PointRequest { path: path.to_owned(), lon, lat, bands: vec![], nodata, defer_remote: false };
        point(&mut cache(), &req, &mut ReadStats::default())
    }

    #[test]
    fn a_point_returns_each_band_at_full_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let path = int16_two_bands(dir.path());
        // point(-74.9, 40.9): [1, 101], nothing masked, pixel_location (0, 0)
        let p = point_at(&path, -74.9, 40.9, None).unwrap();
        assert_eq!((p.values, p.valid, p.column, p.row), (vec![1.0, 101.0], vec![true, true], 0, 0));
        assert_eq!((p.bands, p.band_descriptions), (vec![1, 2], vec!["b1".to_owned(), "b2".to_owned()]));
        assert_eq!((p.dtype, p.nodata), (crate::pb::worker::DataType::Int16 as i32, Some(-9999.0)));
    }

    #[test]
    fn nodata_masks_each_band_on_its_own_and_can_be_overridden() {
        let dir = tempfile::tempdir().unwrap();
        let path = int16_two_bands(dir.path());
        // point(-74.6, 40.6): [-9999, 105], mask [True, False], pixel_location (0, 1)
        let p = point_at(&path, -74.6, 40.6, None).unwrap();
        assert_eq!((p.values, p.valid, p.column, p.row), (vec![-9999.0, 105.0], vec![false, true], 0, 1));
        // point(-74.6, 40.6, nodata=105): mask [False, True]
        let p = point_at(&path, -74.6, 40.6, Some(105.0)).unwrap();
        assert_eq!((p.valid, p.nodata), (vec![true, false], Some(105.0)));
    }

    #[test]
    fn a_point_outside_the_asset_names_its_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = int16_two_bands(dir.path());
        // rio-tiler raises PointOutsideBounds; so does a point on the edge (-75, 40.5).
        for (lon, lat) in [(-70.0, 40.6), (-75.0, 40.5)] {
            let e = point_at(&path, lon, lat, None).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Outside);
            assert_eq!(
                e.message,
                format!(
                    "the point ({lon}, {lat}) is outside the asset, whose lon/lat bounds are [-75, 40.25, -73, 41]"
                )
            );
        }
        let req =
            PointRequest { path, lon: -74.9, lat: 40.9, bands: vec![3], nodata: None, defer_remote: false };
        let e = point(&mut cache(), &req, &mut ReadStats::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
    }
}
