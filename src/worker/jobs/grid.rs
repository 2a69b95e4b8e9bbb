//! An asset's pixel grid in its own CRS, and the arithmetic the point, statistics and
//! preview jobs do on it the way rio-tiler does: the pixel containing a point
//! (`rasterio.transform.rowcol`, floored), a window covering a bounding box
//! (`windows.from_bounds`, rounded outwards); the decimated output size
//! (`rio_tiler.utils.output_size`) is the contract's (`crate::ipc::read_plan`).

use gdal::{
    Dataset,
    spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef},
};

use crate::pb::worker::ErrorKind;
use crate::worker::read::{JobError, to_lon_lat};

/// Longest side of a statistics or preview read when the request sets none.
pub const DEFAULT_MAX_SIZE: u32 = 1024;

/// A pixel window of the asset at full resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First column.
    pub col: usize,
    /// First row.
    pub row: usize,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

/// The georeferencing of an open asset (north-up: rotated grids are refused).
pub struct Grid {
    geo_transform: [f64; 6],
    width: usize,
    height: usize,
    srs: SpatialRef,
}

fn unreadable(what: &str, e: impl std::fmt::Display) -> JobError {
    JobError::new(ErrorKind::Unreadable, format!("cannot read {what}: {e}"))
}

impl Grid {
    /// The grid of `ds`.
    pub fn of(ds: &Dataset) -> Result<Self, JobError> {
        let srs = ds.spatial_ref().map_err(|e| unreadable("the CRS (is it georeferenced?)", e))?;
        let geo_transform = ds.geo_transform().map_err(|e| unreadable("the geotransform", e))?;
        if geo_transform[2].abs() > 0.0 || geo_transform[4].abs() > 0.0 {
            return Err(JobError::new(ErrorKind::Unreadable, "rotated geotransforms are not supported"));
        }
        let (width, height) = ds.raster_size();
        Ok(Self { geo_transform, width, height, srs })
    }

    /// Full-resolution size: (width, height).
    #[must_use]
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Native bounds: min x, min y, max x, max y.
    #[must_use]
    pub fn bounds(&self) -> [f64; 4] {
        let gt = &self.geo_transform;
        let (west, east) = (gt[0], gt[0] + gt[1] * self.width as f64);
        let (north, south) = (gt[3], gt[3] + gt[5] * self.height as f64);
        [west.min(east), south.min(north), west.max(east), south.max(north)]
    }

    /// The error for a point or area outside the asset, naming its lon/lat bounds.
    #[must_use]
    pub fn outside(&self, what: &str) -> JobError {
        let bounds = match to_lon_lat(&self.srs, self.bounds()) {
            Ok([w, s, e, n]) => format!("lon/lat bounds are [{w}, {s}, {e}, {n}]"),
            Err(_) => format!("native bounds are {:?}", self.bounds()),
        };
        JobError::new(ErrorKind::Outside, format!("{what} is outside the asset, whose {bounds}"))
    }

    fn transform_from_wgs84(&self) -> Result<CoordTransform, JobError> {
        let mut wgs84 = SpatialRef::from_epsg(4326).map_err(|e| unreadable("EPSG:4326", e))?;
        wgs84.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let mut native = self.srs.clone();
        native.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        CoordTransform::new(&wgs84, &native).map_err(|e| unreadable("a transformation from lon/lat", e))
    }

    /// The full-resolution pixel (column, row) containing a lon/lat point, or
    /// [`ErrorKind::Outside`] unless the point lies strictly inside the asset's bounds
    /// (rio-tiler's test).
    pub fn pixel_at(&self, lon: f64, lat: f64) -> Result<(usize, usize), JobError> {
        let here = format!("the point ({lon}, {lat})");
        let (mut x, mut y) = ([lon], [lat]);
        self.transform_from_wgs84()?
            .transform_coords(&mut x, &mut y, &mut [])
            .map_err(|_| self.outside(&here))?;
        let [min_x, min_y, max_x, max_y] = self.bounds();
        if !(min_x < x[0] && x[0] < max_x && min_y < y[0] && y[0] < max_y) {
            return Err(self.outside(&here));
        }
        let (col, row) = pixel_index(&self.geo_transform, x[0], y[0]);
        // Within the bounds, the index is inside the grid but for an ulp at the far edges.
        let clamp = |v: f64, size: usize| (v.max(0.0) as usize).min(size - 1);
        Ok((clamp(col, self.width), clamp(row, self.height)))
    }

    /// The window of full-resolution pixels covering a lon/lat bounding box (west,
    /// south, east, north), clipped to the asset; [`ErrorKind::Outside`] when they do
    /// not overlap.
    pub fn window_of(&self, bbox: [f64; 4]) -> Result<Window, JobError> {
        let here = format!("the area {bbox:?}");
        let native =
            self.transform_from_wgs84()?.transform_bounds(&bbox, 21).map_err(|_| self.outside(&here))?;
        covering_window(&self.geo_transform, native, self.width, self.height)
            .ok_or_else(|| self.outside(&here))
    }
}

/// rasterio's `rowcol` without flooring: the fractional (column, row) of a point, via
/// the inverse geotransform as the `affine` package computes it.
#[must_use]
pub fn pixel_index(gt: &[f64; 6], x: f64, y: f64) -> (f64, f64) {
    let (col, row) = inverse_transform(gt, x, y);
    (col.floor(), row.floor())
}

/// The affine inverse of a GDAL geotransform applied to (x, y), term by term as the
/// `affine` package computes `~transform * (x, y)`.
#[allow(clippy::many_single_char_names)] // affine's coefficient names, so the formulas read as its source
fn inverse_transform(gt: &[f64; 6], x: f64, y: f64) -> (f64, f64) {
    // affine's names: x' = a*col + b*row + c, y' = d*col + e*row + f.
    let [c, a, b, f, d, e] = *gt;
    let inverse_determinant = 1.0 / (a * e - b * d);
    let (inv_a, inv_b) = (e * inverse_determinant, -b * inverse_determinant);
    let (inv_d, inv_e) = (-d * inverse_determinant, a * inverse_determinant);
    let (inv_c, inv_f) = (-c * inv_a - f * inv_b, -c * inv_d - f * inv_e);
    (inv_a * x + inv_b * y + inv_c, inv_d * x + inv_e * y + inv_f)
}

/// The whole pixels covering native `bounds` (rasterio's `windows.from_bounds`, rounded
/// outwards like rio-tiler's `_round_window`), clipped to a `width` x `height` grid.
#[must_use]
pub fn covering_window(gt: &[f64; 6], bounds: [f64; 4], width: usize, height: usize) -> Option<Window> {
    let [left, bottom, right, top] = bounds;
    let inverse = |x: f64, y: f64| inverse_transform(gt, x, y);
    let corners = [inverse(left, top), inverse(right, top), inverse(right, bottom), inverse(left, bottom)];
    let fold = |pick: fn(&(f64, f64)) -> f64| {
        corners
            .iter()
            .map(pick)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let (col_start, col_stop) = fold(|p| p.0);
    let (row_start, row_stop) = fold(|p| p.1);
    if ![col_start, col_stop, row_start, row_stop].iter().all(|v| v.is_finite()) {
        return None;
    }
    let clip = |v: f64, size: usize| v.clamp(0.0, size as f64) as usize;
    let (c0, c1) = (clip(col_start.floor(), width), clip(col_stop.ceil(), width));
    let (r0, r1) = (clip(row_start.floor(), height), clip(row_stop.ceil(), height));
    (c1 > c0 && r1 > r0).then_some(Window { col: c0, row: r0, width: c1 - c0, height: r1 - r0 })
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values from the Python oracle are the point
mod tests {
    use super::*;

    // rasterio.transform.rowcol(Affine(a, b, c, d, e, f), x, y) in rasterio 1.4.4.
    #[test]
    fn pixel_indexes_match_rasterio_rowcol() {
        let gt = [-75.0, 0.5, 0.0, 41.0, 0.0, -0.25];
        // rowcol(Affine(0.5, 0, -75, 0, -0.25, 41), -74.9, 40.9) -> (0, 0)
        assert_eq!(pixel_index(&gt, -74.9, 40.9), (0.0, 0.0));
        // rowcol(..., -73.5, 40.5) -> (2, 3): exactly on an edge, the pixel after it.
        assert_eq!(pixel_index(&gt, -73.5, 40.5), (3.0, 2.0));
        // rowcol(..., -73.26, 40.01) -> (3, 3)
        assert_eq!(pixel_index(&gt, -73.26, 40.01), (3.0, 3.0));
        let utm = [500_000.0, 30.0, 0.0, 4_500_000.0, 0.0, -30.0];
        // rowcol(Affine(30, 0, 500000, 0, -30, 4500000), 500095.5, 4499900.0) -> (3, 3)
        assert_eq!(pixel_index(&utm, 500_095.5, 4_499_900.0), (3.0, 3.0));
    }

    #[test]
    fn a_bounding_box_covers_whole_pixels_and_is_clipped() {
        let gt = [0.0, 1.0, 0.0, 10.0, 0.0, -1.0];
        // windows.from_bounds(1.5, 2.5, 4.2, 8.9) -> col 1.5..4.2, row 1.1..7.5
        // -> rounded outwards: cols 1..5, rows 1..8
        assert_eq!(
            covering_window(&gt, [1.5, 2.5, 4.2, 8.9], 10, 10),
            Some(Window { col: 1, row: 1, width: 4, height: 7 })
        );
        assert_eq!(
            covering_window(&gt, [-5.0, -5.0, 3.0, 20.0], 10, 10),
            Some(Window { col: 0, row: 0, width: 3, height: 10 })
        );
        assert_eq!(covering_window(&gt, [11.0, 0.0, 12.0, 5.0], 10, 10), None);
    }
}
