//! Linear rescale of a tile's bands to `uint8`, with the arithmetic of rio-tiler 9.4.12
//! (`ImageData.rescale` / `post_process(in_range=…)`), so that Tessera's bytes match.
//!
//! For each band with range `[min, max]`, a valid pixel's value `v` becomes
//! `trunc((clamp(v, min, max) - min) / (max - min) * 255)`:
//!
//! - values below `min` give 0, above `max` give 255 (±infinity included);
//! - the cast to `uint8` truncates, it does not round (`0.6` in `[0, 3]` is 50.99… → 50);
//! - NaN gives 0;
//! - a `float32` tile rounds the rescaled value to `float32` before truncating (rio-tiler
//!   writes it back into the source array), so `1.8f32` in `[0, 3]` gives 153 where the
//!   same value as `float64` gives 152; integer sources truncate directly;
//! - pixels outside the mask become 0 in every band; the mask is kept as it is.
//!
//! One range applies to every band; otherwise there is one range per band.

use super::{DataType, Raster};
use crate::echo::number;

/// An input range `[min, max]` mapped onto `0..=255`. Always finite with `min < max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RescaleRange {
    min: f64,
    max: f64,
}

/// Why a rescale cannot be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RescaleError {
    /// A bound is NaN or infinite.
    #[error(
        "rescale range {},{} is not finite: both bounds must be finite numbers",
        number(*min),
        number(*max)
    )]
    NotFinite {
        /// The lower bound given.
        min: f64,
        /// The upper bound given.
        max: f64,
    },
    /// The lower bound is not below the upper bound.
    #[error(
        "rescale range {},{} is empty or inverted: min must be less than max",
        number(*min),
        number(*max)
    )]
    Inverted {
        /// The lower bound given.
        min: f64,
        /// The upper bound given.
        max: f64,
    },
    /// No range was given.
    #[error("rescale needs at least one range (min,max)")]
    NoRange,
    /// The number of ranges matches neither 1 nor the band count.
    #[error("{ranges} rescale ranges for {bands} bands: give one range for all bands or one per band")]
    RangeCount {
        /// Ranges given.
        ranges: usize,
        /// Bands in the tile.
        bands: usize,
    },
    /// The raster's buffers do not match its header.
    #[error("cannot rescale a raster whose buffers do not match its size")]
    InconsistentRaster,
}

impl RescaleRange {
    /// A range from `min` to `max`; both finite and `min < max`.
    pub fn new(min: f64, max: f64) -> Result<Self, RescaleError> {
        if !min.is_finite() || !max.is_finite() {
            return Err(RescaleError::NotFinite { min, max });
        }
        if min >= max {
            return Err(RescaleError::Inverted { min, max });
        }
        Ok(Self { min, max })
    }

    /// The lower bound.
    #[must_use]
    pub fn min(self) -> f64 {
        self.min
    }

    /// The upper bound.
    #[must_use]
    pub fn max(self) -> f64 {
        self.max
    }

    /// The `uint8` value of one valid sample `value` read from a tile of type `source`.
    #[must_use]
    pub fn apply(self, value: f64, source: DataType) -> u8 {
        let scaled = (value.clamp(self.min, self.max) - self.min) / (self.max - self.min) * 255.0;
        let stored = if source == DataType::F32 { f64::from(scaled as f32) } else { scaled };
        // `stored` is NaN or within 0..=255; `as` truncates and turns NaN into 0, which
        // is what the uint8 cast gives on the reference platform.
        stored as u8
    }
}

/// Rescales every band of `raster` to `uint8`. `ranges` holds one range for all bands or
/// one per band. The result has the same size and mask; masked pixels are 0.
pub fn rescale(raster: &Raster, ranges: &[RescaleRange]) -> Result<Raster, RescaleError> {
    match ranges.len() {
        0 => return Err(RescaleError::NoRange),
        1 => {}
        n if n == raster.bands => {}
        n => return Err(RescaleError::RangeCount { ranges: n, bands: raster.bands }),
    }
    if !raster.is_consistent() {
        return Err(RescaleError::InconsistentRaster);
    }
    let mut pixels = Vec::with_capacity(raster.bands * raster.pixel_count());
    for band in 0..raster.bands {
        let range = if ranges.len() == 1 { ranges[0] } else { ranges[band] };
        let first = band * raster.pixel_count();
        pixels.extend(
            raster
                .mask
                .iter()
                .enumerate()
                .map(|(p, &m)| if m == 0 { 0 } else { range.apply(raster.value(first + p), raster.dtype) }),
        );
    }
    Ok(Raster {
        dtype: DataType::U8,
        bands: raster.bands,
        width: raster.width,
        height: raster.height,
        pixels,
        mask: raster.mask.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values below were computed with rio-tiler 9.4.12 and numpy 2.4.6:
    // `ImageData(numpy.ma.MaskedArray(data, mask=mask)).post_process(in_range=ranges)`
    // with `data` of shape (bands, 1, n) in the given dtype, reading `.array.data`.

    fn raster(dtype: DataType, bands: &[&[f64]], mask: &[u8]) -> Raster {
        let pixels = bands.iter().flat_map(|b| b.iter()).flat_map(|&v| dtype.encode_value(v)).collect();
        Raster { dtype, bands: bands.len(), width: mask.len(), height: 1, pixels, mask: mask.to_vec() }
    }

    fn range(min: f64, max: f64) -> RescaleRange {
        RescaleRange::new(min, max).unwrap()
    }

    #[test]
    fn float64_values_are_clipped_scaled_and_truncated_like_rio_tiler() {
        let values =
            [-10.0, 0.0, 0.6, 1.2, 1.5, 2.9999, 3.0, 50.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 2.0];
        let mut mask = vec![255; 11];
        mask.push(0);
        let out = rescale(&raster(DataType::F64, &[&values], &mask), &[range(0.0, 3.0)]).unwrap();
        assert_eq!(out.dtype, DataType::U8);
        assert_eq!(out.pixels, vec![0, 0, 50, 101, 127, 254, 255, 255, 0, 255, 0, 0]);
        assert_eq!(out.mask, mask);
    }

    #[test]
    fn float32_tiles_round_to_float32_before_truncating() {
        let values = [f64::from(1.8f32), f64::from(0.6f32), f64::from(2.4f32), 3.0];
        let as_f32 = rescale(&raster(DataType::F32, &[&values], &[255; 4]), &[range(0.0, 3.0)]).unwrap();
        assert_eq!(as_f32.pixels, vec![153, 51, 204, 255]);
        // The same first value in float64 truncates lower (152.99999594688416).
        let f64_values = [f64::from(1.8f32), 0.6, 2.4, 3.0];
        let as_f64 = rescale(&raster(DataType::F64, &[&f64_values], &[255; 4]), &[range(0.0, 3.0)]).unwrap();
        assert_eq!(as_f64.pixels, vec![152, 50, 203, 255]);
    }

    #[test]
    fn integer_tiles_rescale_from_their_own_values() {
        let i16s = [-200.0, -100.0, -1.0, 0.0, 1.0, 99.0, 100.0, 300.0];
        let mask = [255, 255, 255, 255, 255, 255, 255, 0];
        let out = rescale(&raster(DataType::I16, &[&i16s], &mask), &[range(-100.0, 100.0)]).unwrap();
        assert_eq!(out.pixels, vec![0, 0, 126, 127, 128, 253, 255, 0]);

        let u16s = [0.0, 1.0, 39.0, 40.0, 5000.0, 9999.0, 10000.0, 65535.0];
        let out = rescale(&raster(DataType::U16, &[&u16s], &[255; 8]), &[range(0.0, 10000.0)]).unwrap();
        assert_eq!(out.pixels, vec![0, 0, 0, 1, 127, 254, 255, 255]);

        let u8s = [0.0, 1.0, 2.0, 127.0, 128.0, 254.0, 255.0];
        let out = rescale(&raster(DataType::U8, &[&u8s], &[255; 7]), &[range(1.0, 254.0)]).unwrap();
        assert_eq!(out.pixels, vec![0, 0, 1, 126, 128, 255, 255]);
    }

    #[test]
    fn one_range_applies_to_every_band_and_several_apply_band_by_band() {
        let bands: [&[f64]; 2] = [&[0.0, 0.5, 1.0, 2.0], &[0.0, 50.0, 100.0, 200.0]];
        let r = raster(DataType::F64, &bands, &[255, 255, 0, 255]);
        let per_band = rescale(&r, &[range(0.0, 1.0), range(0.0, 100.0)]).unwrap();
        assert_eq!(per_band.pixels, vec![0, 127, 0, 255, 0, 127, 0, 255]);
        let shared = rescale(&r, &[range(0.0, 2.0)]).unwrap();
        assert_eq!(shared.pixels, vec![0, 63, 0, 255, 0, 255, 0, 255]);
        assert_eq!((shared.bands, shared.width, shared.height), (2, 4, 1));
    }

    #[test]
    fn a_range_count_other_than_one_or_the_band_count_is_refused() {
        let bands: [&[f64]; 3] = [&[1.0], &[2.0], &[3.0]];
        let r = raster(DataType::F64, &bands, &[255]);
        let e = rescale(&r, &[range(0.0, 1.0), range(0.0, 2.0)]).unwrap_err();
        assert_eq!(e, RescaleError::RangeCount { ranges: 2, bands: 3 });
        assert_eq!(
            e.to_string(),
            "2 rescale ranges for 3 bands: give one range for all bands or one per band"
        );
        assert_eq!(rescale(&r, &[]).unwrap_err(), RescaleError::NoRange);
    }

    #[test]
    fn ranges_must_be_finite_and_increasing() {
        assert_eq!(
            RescaleRange::new(5.0, 5.0).unwrap_err().to_string(),
            "rescale range 5,5 is empty or inverted: min must be less than max"
        );
        assert!(matches!(RescaleRange::new(10.0, 0.0), Err(RescaleError::Inverted { .. })));
        assert_eq!(
            RescaleRange::new(f64::NAN, 1.0).unwrap_err().to_string(),
            "rescale range NaN,1 is not finite: both bounds must be finite numbers"
        );
        assert!(matches!(RescaleRange::new(0.0, f64::INFINITY), Err(RescaleError::NotFinite { .. })));
        let r = range(-1.5, 2.0);
        assert_eq!((r.min(), r.max()), (-1.5, 2.0));
    }

    #[test]
    fn an_inconsistent_raster_is_an_error_not_a_panic() {
        let mut r = raster(DataType::F64, &[&[1.0, 2.0]], &[255, 255]);
        r.pixels.pop();
        assert_eq!(rescale(&r, &[range(0.0, 1.0)]).unwrap_err(), RescaleError::InconsistentRaster);
    }
}
