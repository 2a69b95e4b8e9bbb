//! Tile matrix sets (OGC TMS 2.0): which tiles exist at a zoom level and what ground
//! each one covers. Two sets are built in: `WebMercatorQuad` (EPSG:3857, the default)
//! and `WorldCRS84Quad` (longitude/latitude, two tiles at zoom 0). More come from OGC
//! TileMatrixSet 2.0 JSON files named in the configuration ([`ogc`]); the server's
//! [`TileMatrixSets`] holds them all.
//!
//! A [`TileMatrixSet`] is a copyable handle to a definition that lives for the whole
//! process (custom ones are loaded once at start), so tiles stay small `Copy` keys.
//!
//! Lon/lat bounds of assets may cross the antimeridian (west > east); [`antimeridian`]
//! compares and joins them.

mod antimeridian;
mod ogc;
mod registry;

use std::{fmt, str::FromStr};

pub use antimeridian::lon_lat_union;
pub use ogc::{TmsError, parse_ogc_json};
pub use registry::TileMatrixSets;

/// Half the width of the Web Mercator world in metres (pi * 6378137).
const WEB_MERCATOR_HALF_WORLD: f64 = 20_037_508.342_789_244;

/// The highest zoom level of the built-in tile matrix sets.
pub const MAX_ZOOM: u8 = 24;

/// The definition behind a [`TileMatrixSet`].
#[derive(Debug)]
pub struct Definition {
    /// The identifier requests use.
    pub id: &'static str,
    /// A human title.
    pub title: &'static str,
    /// The CRS as GDAL takes it (`EPSG:3857`, `OGC:CRS84`, a WKT...).
    pub crs: &'static str,
    /// The set's URI, when it has one.
    pub uri: &'static str,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// Spherical Mercator quadtree, exact formulas.
    WebMercator,
    /// Longitude/latitude quadtree with two tiles at zoom 0, exact formulas.
    Crs84,
    /// Matrices read from a file, zoom `i` = `matrices[i]`.
    Custom { matrices: Vec<Matrix>, geographic: Geographic },
}

/// How the front can put a custom set's coordinates into longitude/latitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Geographic {
    /// The CRS is Web Mercator.
    Mercator,
    /// The CRS is longitude/latitude already.
    LonLat,
    /// Another CRS: the front does not project (it never calls GDAL or PROJ).
    Unknown,
}

/// One tile matrix of a custom set, in x/y axis order.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Ground size of one pixel, in CRS units.
    pub cell_size: f64,
    /// The corner the tiles count from: x.
    pub origin_x: f64,
    /// The corner the tiles count from: y.
    pub origin_y: f64,
    /// Whether rows count down from a top-left origin (else up from bottom-left).
    pub top_left: bool,
    /// Tile width in pixels.
    pub tile_width: u32,
    /// Tile height in pixels.
    pub tile_height: u32,
    /// Columns.
    pub matrix_width: u32,
    /// Rows.
    pub matrix_height: u32,
}

static WEB_MERCATOR_QUAD: Definition = Definition {
    id: "WebMercatorQuad",
    title: "Google Maps Compatible for the World",
    crs: "EPSG:3857",
    uri: "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
    kind: Kind::WebMercator,
};

static WORLD_CRS84_QUAD: Definition = Definition {
    id: "WorldCRS84Quad",
    title: "CRS84 for the World",
    // gdalwarp takes -te in longitude, latitude order for EPSG:4326.
    crs: "EPSG:4326",
    uri: "http://www.opengis.net/def/tilematrixset/OGC/1.0/WorldCRS84Quad",
    kind: Kind::Crs84,
};

/// A tile matrix set: a copyable handle to its definition.
#[derive(Debug, Clone, Copy)]
pub struct TileMatrixSet(&'static Definition);

impl PartialEq for TileMatrixSet {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for TileMatrixSet {}

impl std::hash::Hash for TileMatrixSet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

/// Names of the built-in sets, for error messages.
pub const SUPPORTED_TILE_MATRIX_SETS: &str = "WebMercatorQuad, WorldCRS84Quad";

impl FromStr for TileMatrixSet {
    type Err = ();

    /// A built-in set by name (empty = `WebMercatorQuad`); custom sets are looked up in
    /// [`TileMatrixSets`].
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "" | "WebMercatorQuad" => Ok(Self::WEB_MERCATOR_QUAD),
            "WorldCRS84Quad" => Ok(Self::WORLD_CRS84_QUAD),
            _ => Err(()),
        }
    }
}

impl fmt::Display for TileMatrixSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.id)
    }
}

/// An axis-aligned box: `min_x, min_y, max_x, max_y`. In longitude/latitude, a box
/// with `min_x > max_x` crosses the antimeridian ([`antimeridian`]).
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
    /// Whether the two boxes share area (touching edges do not count), as boxes of a
    /// plane: for lon/lat boxes, which may cross the antimeridian, use
    /// [`BBox::intersects_lon_lat`].
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
    /// Zoom beyond the set's deepest matrix.
    #[error("z={z} is outside {min}..={max} for {tms}")]
    Zoom {
        /// The set.
        tms: TileMatrixSet,
        /// The zoom asked for.
        z: u32,
        /// The first zoom level.
        min: u8,
        /// The last zoom level.
        max: u8,
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
    /// Spherical Mercator (EPSG:3857), one tile at zoom 0.
    pub const WEB_MERCATOR_QUAD: Self = Self(&WEB_MERCATOR_QUAD);
    /// Equirectangular longitude/latitude (CRS84), two tiles at zoom 0.
    pub const WORLD_CRS84_QUAD: Self = Self(&WORLD_CRS84_QUAD);

    /// A custom set; the definition is kept for the rest of the process.
    fn leak(definition: Definition) -> Self {
        Self(Box::leak(Box::new(definition)))
    }

    /// The definition.
    #[must_use]
    pub fn definition(self) -> &'static Definition {
        self.0
    }

    /// The identifier requests use.
    #[must_use]
    pub fn id(self) -> &'static str {
        self.0.id
    }

    /// Whether the set came from a file.
    #[must_use]
    pub fn is_custom(self) -> bool {
        matches!(self.0.kind, Kind::Custom { .. })
    }

    /// The CRS of the tile grid as GDAL takes it.
    #[must_use]
    pub fn crs(self) -> &'static str {
        self.0.crs
    }

    /// The deepest zoom level.
    #[must_use]
    pub fn max_zoom(self) -> u8 {
        match &self.0.kind {
            Kind::WebMercator | Kind::Crs84 => MAX_ZOOM,
            // The loader refuses sets without matrices or with more than 256.
            Kind::Custom { matrices, .. } => {
                u8::try_from(matrices.len().saturating_sub(1)).unwrap_or(u8::MAX)
            }
        }
    }

    /// Tile width and height in pixels at zoom `z` (the default output size).
    #[must_use]
    pub fn tile_size(self, z: u8) -> (u32, u32) {
        match self.matrix(z) {
            Some(m) => (m.tile_width, m.tile_height),
            None => (256, 256),
        }
    }

    fn matrix(self, z: u8) -> Option<&'static Matrix> {
        match &self.0.kind {
            Kind::Custom { matrices, .. } => matrices.get(usize::from(z)),
            Kind::WebMercator | Kind::Crs84 => None,
        }
    }

    /// Columns and rows of the matrix at zoom `z` (which must exist).
    #[must_use]
    pub fn matrix_size(self, z: u8) -> (u32, u32) {
        let rows = 1u32 << z.min(MAX_ZOOM);
        match &self.0.kind {
            Kind::WebMercator => (rows, rows),
            Kind::Crs84 => (rows * 2, rows),
            Kind::Custom { matrices, .. } => {
                matrices.get(usize::from(z)).map_or((0, 0), |m| (m.matrix_width, m.matrix_height))
            }
        }
    }

    /// Checks `z/x/y` and returns the tile.
    #[must_use = "the tile or the reason it is not one"]
    pub fn tile(self, z: u32, x: u32, y: u32) -> Result<TileId, TileError> {
        let max = self.max_zoom();
        if z > u32::from(max) {
            return Err(TileError::Zoom { tms: self, z, min: 0, max });
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

    /// The area the matrix at zoom `z` covers, in the set's CRS.
    #[must_use]
    pub fn bounds(self, z: u8) -> BBox {
        let (cols, rows) = self.matrix_size(z);
        let first = TileId { tms: self, z, x: 0, y: 0 }.bounds();
        let last = TileId { tms: self, z, x: cols.saturating_sub(1), y: rows.saturating_sub(1) }.bounds();
        BBox {
            min_x: first.min_x.min(last.min_x),
            min_y: first.min_y.min(last.min_y),
            max_x: first.max_x.max(last.max_x),
            max_y: first.max_y.max(last.max_y),
        }
    }

    /// `bounds` in longitude/latitude, when the front can compute it without a
    /// projection library (Web Mercator and longitude/latitude sets).
    fn to_lon_lat(self, b: BBox) -> Option<BBox> {
        let geographic = match &self.0.kind {
            Kind::WebMercator => Geographic::Mercator,
            Kind::Crs84 => Geographic::LonLat,
            Kind::Custom { geographic, .. } => *geographic,
        };
        match geographic {
            Geographic::LonLat => Some(b),
            Geographic::Mercator => Some(BBox {
                min_x: mercator_x_to_lon(b.min_x),
                max_x: mercator_x_to_lon(b.max_x),
                min_y: mercator_y_to_lat(b.min_y),
                max_y: mercator_y_to_lat(b.max_y),
            }),
            Geographic::Unknown => None,
        }
    }

    /// The set's whole area in longitude/latitude, when the front can compute it.
    #[must_use]
    pub fn geographic_bounds(self) -> Option<BBox> {
        self.to_lon_lat(self.bounds(0))
    }
}

impl TileId {
    /// The tile's bounds in the tile matrix set's CRS.
    #[must_use]
    pub fn bounds(&self) -> BBox {
        let (cols, rows) = self.tms.matrix_size(self.z);
        let (x, y) = (f64::from(self.x), f64::from(self.y));
        let (west, north, tile_w, tile_h) = match &self.tms.0.kind {
            Kind::WebMercator | Kind::Crs84 => {
                let (west, north, width, height) = if matches!(self.tms.0.kind, Kind::WebMercator) {
                    (
                        -WEB_MERCATOR_HALF_WORLD,
                        WEB_MERCATOR_HALF_WORLD,
                        2.0 * WEB_MERCATOR_HALF_WORLD,
                        2.0 * WEB_MERCATOR_HALF_WORLD,
                    )
                } else {
                    (-180.0, 90.0, 360.0, 180.0)
                };
                (west, north, width / f64::from(cols), height / f64::from(rows))
            }
            Kind::Custom { matrices, .. } => {
                let Some(m) = matrices.get(usize::from(self.z)) else {
                    return BBox { min_x: 0.0, min_y: 0.0, max_x: 0.0, max_y: 0.0 };
                };
                let tile_w = m.cell_size * f64::from(m.tile_width);
                let tile_h = m.cell_size * f64::from(m.tile_height);
                if !m.top_left {
                    // Rows count up from the bottom-left corner.
                    let south = m.origin_y + y * tile_h;
                    let west = m.origin_x + x * tile_w;
                    return BBox { min_x: west, max_x: west + tile_w, min_y: south, max_y: south + tile_h };
                }
                (m.origin_x, m.origin_y, tile_w, tile_h)
            }
        };
        BBox {
            min_x: west + x * tile_w,
            max_x: west + (x + 1.0) * tile_w,
            max_y: north - y * tile_h,
            min_y: north - (y + 1.0) * tile_h,
        }
    }

    /// The tile's bounds in longitude/latitude; `None` for a custom set in a CRS the
    /// front cannot project (its workers then decide which assets touch the tile).
    #[must_use]
    pub fn geographic_bounds(&self) -> Option<BBox> {
        self.tms.to_lon_lat(self.bounds())
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
        let t = TileMatrixSet::WEB_MERCATOR_QUAD.tile(0, 0, 0).unwrap();
        let b = t.bounds();
        assert_eq!(b.min_x, -WEB_MERCATOR_HALF_WORLD);
        assert_eq!(b.max_y, WEB_MERCATOR_HALF_WORLD);
        let g = t.geographic_bounds().unwrap();
        assert!((g.max_y - 85.051_128_779_806_59).abs() < 1e-9);
        assert!((g.min_x + 180.0).abs() < 1e-12);
    }

    #[test]
    fn crs84_has_two_columns_at_zoom_zero() {
        assert_eq!(TileMatrixSet::WORLD_CRS84_QUAD.matrix_size(0), (2, 1));
        let b = TileMatrixSet::WORLD_CRS84_QUAD.tile(0, 1, 0).unwrap().bounds();
        assert_eq!((b.min_x, b.min_y, b.max_x, b.max_y), (0.0, -90.0, 180.0, 90.0));
    }

    #[test]
    fn out_of_range_coordinates_name_the_allowed_range() {
        let e = TileMatrixSet::WEB_MERCATOR_QUAD.tile(31, 0, 0).unwrap_err();
        assert_eq!(e.to_string(), "z=31 is outside 0..=24 for WebMercatorQuad");
        let e = TileMatrixSet::WEB_MERCATOR_QUAD.tile(2, 4, 0).unwrap_err();
        assert_eq!(e.to_string(), "x=4 is outside 0..=3 for WebMercatorQuad at z=2");
        let e = TileMatrixSet::WEB_MERCATOR_QUAD.tile(2, 0, 9).unwrap_err();
        assert_eq!(e.to_string(), "y=9 is outside 0..=3 for WebMercatorQuad at z=2");
    }

    #[test]
    fn unknown_names_are_refused_and_empty_means_web_mercator() {
        assert_eq!("".parse(), Ok(TileMatrixSet::WEB_MERCATOR_QUAD));
        assert_eq!("WorldCRS84Quad".parse(), Ok(TileMatrixSet::WORLD_CRS84_QUAD));
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
