//! Tile matrix sets (OGC TMS 2.0): which tiles exist at a zoom level and what ground
//! each one covers. Two sets are served: `WebMercatorQuad` (EPSG:3857, the default) and
//! `WorldCRS84Quad` (longitude/latitude, two tiles at zoom 0).

use std::{fmt, str::FromStr};

/// Half the width of the Web Mercator world in metres (pi * 6378137).
const WEB_MERCATOR_HALF_WORLD: f64 = 20_037_508.342_789_244;

/// The highest zoom level served for either tile matrix set.
pub const MAX_ZOOM: u8 = 24;

/// A supported tile matrix set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileMatrixSet {
    /// Spherical Mercator (EPSG:3857), one tile at zoom 0.
    WebMercatorQuad,
    /// Equirectangular longitude/latitude (CRS84), two tiles at zoom 0.
    WorldCrs84Quad,
}

/// Names accepted in requests, for error messages.
pub const SUPPORTED_TILE_MATRIX_SETS: &str = "WebMercatorQuad, WorldCRS84Quad";

impl FromStr for TileMatrixSet {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "" | "WebMercatorQuad" => Ok(Self::WebMercatorQuad),
            "WorldCRS84Quad" => Ok(Self::WorldCrs84Quad),
            _ => Err(()),
        }
    }
}

impl fmt::Display for TileMatrixSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WebMercatorQuad => "WebMercatorQuad",
            Self::WorldCrs84Quad => "WorldCRS84Quad",
        })
    }
}

/// An axis-aligned box: `min_x, min_y, max_x, max_y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    /// West.
    pub min_x: f64,
    /// South.
    pub min_y: f64,
    /// East.
    pub max_x: f64,
    /// North.
    pub max_y: f64,
}

impl BBox {
    /// Whether the two boxes share area (touching edges do not count).
    #[must_use]
    pub fn intersects(&self, other: &BBox) -> bool {
        self.min_x < other.max_x
            && other.min_x < self.max_x
            && self.min_y < other.max_y
            && other.min_y < self.max_y
    }
}

/// A tile of a tile matrix set whose coordinates have been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    /// The tile matrix set.
    pub tms: TileMatrixSet,
    /// Zoom.
    pub z: u8,
    /// Column.
    pub x: u32,
    /// Row from the top.
    pub y: u32,
}

/// Why tile coordinates are not a tile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// Zoom beyond [`MAX_ZOOM`].
    #[error("z={z} is outside 0..={MAX_ZOOM} for {tms}")]
    Zoom {
        /// The set.
        tms: TileMatrixSet,
        /// The zoom asked for.
        z: u32,
    },
    /// Column or row beyond the matrix at that zoom.
    #[error("{axis}={value} is outside 0..={max} for {tms} at z={z}")]
    Coordinate {
        /// The set.
        tms: TileMatrixSet,
        /// Zoom.
        z: u8,
        /// "x" or "y".
        axis: &'static str,
        /// The value asked for.
        value: u32,
        /// The largest valid value.
        max: u32,
    },
}

impl TileMatrixSet {
    /// The CRS of the tile grid as GDAL takes it.
    #[must_use]
    pub fn crs(self) -> &'static str {
        match self {
            Self::WebMercatorQuad => "EPSG:3857",
            // gdalwarp takes -te in longitude, latitude order for EPSG:4326.
            Self::WorldCrs84Quad => "EPSG:4326",
        }
    }

    /// Columns and rows of the matrix at zoom `z`.
    #[must_use]
    pub fn matrix_size(self, z: u8) -> (u32, u32) {
        let rows = 1u32 << z;
        match self {
            Self::WebMercatorQuad => (rows, rows),
            Self::WorldCrs84Quad => (rows * 2, rows),
        }
    }

    /// Checks `z/x/y` and returns the tile.
    #[must_use = "the tile or the reason it is not one"]
    pub fn tile(self, z: u32, x: u32, y: u32) -> Result<TileId, TileError> {
        if z > u32::from(MAX_ZOOM) {
            return Err(TileError::Zoom { tms: self, z });
        }
        let z = z as u8;
        let (cols, rows) = self.matrix_size(z);
        for (axis, value, count) in [("x", x, cols), ("y", y, rows)] {
            if value >= count {
                return Err(TileError::Coordinate { tms: self, z, axis, value, max: count - 1 });
            }
        }
        Ok(TileId { tms: self, z, x, y })
    }
}

impl TileId {
    /// The tile's bounds in the tile matrix set's CRS.
    #[must_use]
    pub fn bounds(&self) -> BBox {
        let (cols, rows) = self.tms.matrix_size(self.z);
        let (west, north, width, height) = match self.tms {
            TileMatrixSet::WebMercatorQuad => (
                -WEB_MERCATOR_HALF_WORLD,
                WEB_MERCATOR_HALF_WORLD,
                2.0 * WEB_MERCATOR_HALF_WORLD,
                2.0 * WEB_MERCATOR_HALF_WORLD,
            ),
            TileMatrixSet::WorldCrs84Quad => (-180.0, 90.0, 360.0, 180.0),
        };
        let tile_w = width / f64::from(cols);
        let tile_h = height / f64::from(rows);
        BBox {
            min_x: west + f64::from(self.x) * tile_w,
            max_x: west + f64::from(self.x + 1) * tile_w,
            max_y: north - f64::from(self.y) * tile_h,
            min_y: north - f64::from(self.y + 1) * tile_h,
        }
    }

    /// The tile's bounds in longitude/latitude.
    #[must_use]
    pub fn geographic_bounds(&self) -> BBox {
        let b = self.bounds();
        match self.tms {
            TileMatrixSet::WorldCrs84Quad => b,
            TileMatrixSet::WebMercatorQuad => BBox {
                min_x: mercator_x_to_lon(b.min_x),
                max_x: mercator_x_to_lon(b.max_x),
                min_y: mercator_y_to_lat(b.min_y),
                max_y: mercator_y_to_lat(b.max_y),
            },
        }
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
}

fn mercator_x_to_lon(x: f64) -> f64 {
    x / WEB_MERCATOR_HALF_WORLD * 180.0
}

fn mercator_y_to_lat(y: f64) -> f64 {
    let n = y / WEB_MERCATOR_HALF_WORLD * std::f64::consts::PI;
    n.sinh().atan().to_degrees()
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // tile edges are exact multiples; exactness is the point
mod tests {
    use super::*;

    #[test]
    fn web_mercator_zoom_zero_covers_the_world() {
        let t = TileMatrixSet::WebMercatorQuad.tile(0, 0, 0).unwrap();
        let b = t.bounds();
        assert_eq!(b.min_x, -WEB_MERCATOR_HALF_WORLD);
        assert_eq!(b.max_y, WEB_MERCATOR_HALF_WORLD);
        let g = t.geographic_bounds();
        assert!((g.max_y - 85.051_128_779_806_59).abs() < 1e-9);
        assert!((g.min_x + 180.0).abs() < 1e-12);
    }

    #[test]
    fn crs84_has_two_columns_at_zoom_zero() {
        assert_eq!(TileMatrixSet::WorldCrs84Quad.matrix_size(0), (2, 1));
        let b = TileMatrixSet::WorldCrs84Quad.tile(0, 1, 0).unwrap().bounds();
        assert_eq!((b.min_x, b.min_y, b.max_x, b.max_y), (0.0, -90.0, 180.0, 90.0));
    }

    #[test]
    fn out_of_range_coordinates_name_the_allowed_range() {
        let e = TileMatrixSet::WebMercatorQuad.tile(31, 0, 0).unwrap_err();
        assert_eq!(e.to_string(), "z=31 is outside 0..=24 for WebMercatorQuad");
        let e = TileMatrixSet::WebMercatorQuad.tile(2, 4, 0).unwrap_err();
        assert_eq!(e.to_string(), "x=4 is outside 0..=3 for WebMercatorQuad at z=2");
        let e = TileMatrixSet::WebMercatorQuad.tile(2, 0, 9).unwrap_err();
        assert_eq!(e.to_string(), "y=9 is outside 0..=3 for WebMercatorQuad at z=2");
    }

    #[test]
    fn unknown_names_are_refused_and_empty_means_web_mercator() {
        assert_eq!("".parse(), Ok(TileMatrixSet::WebMercatorQuad));
        assert_eq!("WorldCRS84Quad".parse(), Ok(TileMatrixSet::WorldCrs84Quad));
        assert!("EuropeanETRS89".parse::<TileMatrixSet>().is_err());
    }

    #[test]
    fn touching_boxes_do_not_intersect() {
        let a = BBox { min_x: 0.0, min_y: 0.0, max_x: 1.0, max_y: 1.0 };
        let b = BBox { min_x: 1.0, min_y: 0.0, max_x: 2.0, max_y: 1.0 };
        let c = BBox { min_x: 0.5, min_y: 0.5, max_x: 2.0, max_y: 2.0 };
        assert!(!a.intersects(&b));
        assert!(a.intersects(&c));
    }
}
