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

/// The Web Mercator column containing longitude `lon` at zoom `z`, clamped to the matrix.
/// A longitude exactly on a column edge belongs to the column east of it.
#[must_use]
pub fn column(lon: f64, z: u8) -> u32 {
    clamp_index((lon + 180.0) / 360.0, z)
}

/// The Web Mercator row containing latitude `lat` at zoom `z`, clamped to the matrix
/// (latitudes beyond ±85.05° fall in the first or last row). A latitude exactly on a row
/// edge belongs to the row south of it.
#[must_use]
pub fn row(lat: f64, z: u8) -> u32 {
    let phi = lat.to_radians();
    let y = (std::f64::consts::FRAC_PI_4 + phi / 2.0).tan().ln();
    clamp_index((1.0 - y / std::f64::consts::PI) / 2.0, z)
}

/// `floor(fraction * 2^z)` clamped to `0..2^z` (NaN counts as 0).
fn clamp_index(fraction: f64, z: u8) -> u32 {
    let n = f64::from(1u32 << z);
    let index = (fraction * n).floor();
    if index.is_nan() || index < 0.0 {
        0
    } else if index >= n {
        (1u32 << z) - 1
    } else {
        index as u32
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
    fn points_on_edges_fall_east_and_south() {
        // Tile indices computed with morecantile 7.1.0's WebMercatorQuad.tile(lon, lat, z)
        // (the function cogeo-mosaic picks quadkeys for a bounding box with).
        assert_eq!((column(-90.0, 2), row(0.0, 2)), (1, 2));
        assert_eq!((column(0.0, 2), column(90.0, 2)), (2, 3));
        assert_eq!((column(45.0, 3), column(-135.0, 3), row(0.0, 3)), (5, 1, 4));
        assert_eq!((column(22.5, 4), row(0.0, 4)), (9, 8));
        assert_eq!((column(-180.0, 3), row(90.0, 3)), (0, 0));
        assert_eq!((column(180.0, 3), row(-90.0, 3)), (7, 7));
        assert_eq!((column(0.0, 3), row(-89.9, 3), row(-85.06, 3)), (4, 7, 7));
        assert_eq!((column(f64::NAN, 3), row(f64::NAN, 3)), (0, 0));
    }
}
