//! Quadkeys of Web Mercator tiles, the keys of a MosaicJSON document's `tiles` map.
//!
//! A quadkey has one digit per zoom level, coarsest first; the digit is `x bit + 2 * y bit`
//! of the tile at that level. The quadkey of a tile's ancestor is therefore a prefix of
//! the tile's own, and sorting quadkeys of one length as strings lists them in the order
//! a recursive top-left, top-right, bottom-left, bottom-right descent visits them.

/// The deepest quadkey a MosaicJSON document may use (its zoom fields stop at 30).
pub const MAX_QUADKEY_ZOOM: u8 = 30;

/// The quadkey of tile `x`, `y` at zoom `z` (empty at zoom 0).
#[must_use]
pub fn quadkey(z: u8, x: u32, y: u32) -> String {
    (1..=z)
        .rev()
        .map(|level| {
            let mask = 1u32 << (level - 1);
            let digit = u8::from(x & mask != 0) + 2 * u8::from(y & mask != 0);
            char::from(b'0' + digit)
        })
        .collect()
}

/// The tile `(z, x, y)` a quadkey names, or `None` when it has a character other than
/// `0`-`3` or is deeper than [`MAX_QUADKEY_ZOOM`].
#[must_use]
pub fn tile_of(quadkey: &str) -> Option<(u8, u32, u32)> {
    if quadkey.len() > usize::from(MAX_QUADKEY_ZOOM) {
        return None;
    }
    let (mut x, mut y) = (0u32, 0u32);
    for c in quadkey.bytes() {
        let digit = match c {
            b'0'..=b'3' => u32::from(c - b'0'),
            _ => return None,
        };
        x = (x << 1) | (digit & 1);
        y = (y << 1) | (digit >> 1);
    }
    Some((quadkey.len() as u8, x, y))
}

/// Earth radius of the Web Mercator sphere, in metres.
const EARTH_RADIUS: f64 = 6_378_137.0;

/// Web Mercator x of the matrices' west edge (and y of their north edge).
const ORIGIN: f64 = 20_037_508.342_789_244;

/// Ground size of a pixel at zoom 0, as the WebMercatorQuad definition states it.
const CELL_SIZE_Z0: f64 = 156_543.033_928_040_97;

/// Width of one tile in metres at zoom `z`, computed as the OGC definition's cell size
/// times 256 pixels.
fn tile_size(z: u8) -> f64 {
    CELL_SIZE_Z0 / f64::from(1u32 << z) * 256.0
}

/// The Web Mercator column containing longitude `lon` at zoom `z`, clamped to the matrix.
///
/// This is the arithmetic cogeo-mosaic's tile lookup performs (degrees to metres on the
/// sphere, then metres from the origin over the tile size), so a longitude on a column
/// edge lands on the same side it does there: east of the edge where the division is
/// exact, west of it where rounding leaves it a hair short (135° at zoom 3 is in column
/// 6, not 7).
#[must_use]
pub fn column(lon: f64, z: u8) -> u32 {
    let x = EARTH_RADIUS * lon.to_radians();
    clamp_index((x + ORIGIN) / tile_size(z), z)
}

/// The Web Mercator row containing latitude `lat` at zoom `z`, clamped to the matrix
/// (latitudes beyond ±85.05° fall in the first or last row); the equator, the one row
/// edge a geographic tile edge meets exactly, belongs to the row south of it.
#[must_use]
pub fn row(lat: f64, z: u8) -> u32 {
    let y = EARTH_RADIUS * lat.to_radians().tan().asinh();
    clamp_index((ORIGIN - y) / tile_size(z), z)
}

/// `floor(position)` clamped to `0..2^z` (NaN counts as 0).
fn clamp_index(position: f64, z: u8) -> u32 {
    let count = 1u32 << z;
    if position.is_nan() || position < 0.0 {
        0
    } else if position >= f64::from(count) {
        count - 1
    } else {
        position.floor() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadkeys_match_hand_computed_digits() {
        // 3/3/5: x=011, y=101 → digits (0+2·1)(1+0)(1+2·1) = 2 1 3.
        assert_eq!(quadkey(3, 3, 5), "213");
        // 6/35/21: x=100011, y=010101 → 1 2 0 2 1 3.
        assert_eq!(quadkey(6, 35, 21), "120213");
        assert_eq!(quadkey(1, 0, 0), "0");
        assert_eq!(quadkey(1, 1, 1), "3");
        assert_eq!(quadkey(0, 0, 0), "");
        assert_eq!(quadkey(30, (1 << 30) - 1, 0), "1".repeat(30));
    }

    #[test]
    fn parsing_a_quadkey_inverts_it() {
        assert_eq!(tile_of("213"), Some((3, 3, 5)));
        assert_eq!(tile_of("120213"), Some((6, 35, 21)));
        assert_eq!(tile_of(""), Some((0, 0, 0)));
        assert_eq!(tile_of("0124"), None);
        assert_eq!(tile_of("0x"), None);
        assert_eq!(tile_of(&"0".repeat(31)), None);
    }

    #[test]
    fn points_on_edges_fall_where_cogeo_mosaic_puts_them() {
        // Tile indices computed with morecantile 7.1.0's WebMercatorQuad.tile(lon, lat, z)
        // (what cogeo-mosaic picks quadkeys for a bounding box with); the same
        // arithmetic matched it on 11 000 random WorldCRS84Quad tile corners at quadkey
        // zooms 0 to 24.
        assert_eq!((column(-90.0, 2), column(0.0, 2), column(90.0, 2)), (1, 2, 3));
        assert_eq!((column(90.0, 3), column(135.0, 3), column(45.0, 3), column(-135.0, 3)), (6, 6, 5, 1));
        assert_eq!((column(135.0, 5), column(-22.5, 7), column(22.5, 4)), (27, 56, 9));
        assert_eq!((column(-180.0, 3), column(180.0, 3)), (0, 7));
        assert_eq!((row(0.0, 2), row(0.0, 3), row(45.0, 4)), (2, 4, 5));
        assert_eq!((row(90.0, 3), row(-90.0, 3), row(-89.9, 3), row(-85.06, 3)), (0, 7, 7, 7));
        assert_eq!((column(f64::NAN, 3), row(f64::NAN, 3)), (0, 0));
    }
}
