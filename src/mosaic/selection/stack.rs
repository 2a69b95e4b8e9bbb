//! The stack methods: each output value reduces all the valid values of one pixel and
//! band, computed the way rio-tiler's `numpy.ma` reductions compute them.
//!
//! Arithmetic that Tessera reproduces, because it shows in the output:
//! - sums run in request order from +0.0, in `float32` for `float32` assets and in
//!   `float64` otherwise (integers are summed as `float64`);
//! - a mean is that sum divided by the count in `float64`; `numpy.ma` masks a quotient
//!   that is not finite, or whose sum is at least `count / f64::MIN_POSITIVE`, and keeps
//!   the sum as its data;
//! - `mean` and `median` cast back to the asset type (integers truncate toward zero);
//! - a median is `(low + high) / 2`, the two middle values summed like any sum and
//!   halved in the asset's float type, or in `float64` for integers (for an odd count,
//!   low and high are the same value); a valid NaN makes the median NaN;
//! - `stdev` is `sqrt(sum((x - mean)^2) / count)` in `float64` (ddof 0); it is 0 where the
//!   mean is masked, and masked where it is not finite.
//!
//! A band masked by arithmetic alone leaves the pixel valid if another band is valid,
//! as rio-tiler's pixel mask is "any band valid".

use super::Shape;
use crate::render::{DataType, Raster};

/// Adds `value` to `sum` in the precision numpy sums `dtype` in.
fn accumulate(dtype: DataType, sum: f64, value: f64) -> f64 {
    if dtype == DataType::F32 { f64::from(sum as f32 + value as f32) } else { sum + value }
}

/// `sum / count` as `numpy.ma.divide` computes it: the quotient and whether it is masked
/// (a masked quotient's data is the sum).
fn masked_quotient(sum: f64, count: f64) -> (f64, bool) {
    let q = sum / count;
    if !q.is_finite() || sum.abs() * f64::MIN_POSITIVE >= count { (sum, true) } else { (q, false) }
}

/// Writes one pixel's band values, or leaves it at `fill` and invalid when every band is
/// masked.
fn write_pixel(out: &mut Raster, p: usize, values: &[(f64, bool)]) {
    if values.iter().all(|(_, masked)| *masked) {
        return;
    }
    let n = out.pixel_count();
    for (b, (v, _)) in values.iter().enumerate() {
        out.set_value(b * n + p, *v);
    }
    out.mask[p] = 255;
}

/// `mean`, accumulated as the assets come (in request order).
#[derive(Debug)]
pub(super) struct Mean {
    shape: Shape,
    sums: Vec<f64>,
    /// Valid values per pixel (every band shares the pixel's mask).
    counts: Vec<u32>,
}

impl Mean {
    pub(super) fn new(shape: Shape) -> Self {
        let n = shape.pixel_count();
        Self { shape, sums: vec![0.0; shape.bands * n], counts: vec![0; n] }
    }

    pub(super) fn feed(&mut self, src: &Raster) {
        let n = self.shape.pixel_count();
        for b in 0..self.shape.bands {
            for p in (0..n).filter(|p| src.mask[*p] != 0) {
                let i = b * n + p;
                self.sums[i] = accumulate(self.shape.dtype, self.sums[i], src.value(i));
            }
        }
        for (c, m) in self.counts.iter_mut().zip(&src.mask) {
            *c += u32::from(*m != 0);
        }
    }

    pub(super) fn finish(self, fill: f64) -> Raster {
        let Shape { dtype, bands, width, height } = self.shape;
        let mut out = Raster::empty(dtype, bands, width, height, fill);
        let n = out.pixel_count();
        let mut values = Vec::with_capacity(bands);
        for (p, &count) in self.counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            values.clear();
            values.extend((0..bands).map(|b| masked_quotient(self.sums[b * n + p], f64::from(count))));
            write_pixel(&mut out, p, &values);
        }
        out
    }
}

/// Which reduction a [`Stack`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Statistic {
    /// The median.
    Median,
    /// The population standard deviation.
    Stdev,
}

/// `median` and `stdev`, which need every value: the rasters are kept, in request
/// order, and reduced at the end.
#[derive(Debug)]
pub(super) struct Stack {
    statistic: Statistic,
    shape: Shape,
    rasters: Vec<Raster>,
}

impl Stack {
    pub(super) fn new(statistic: Statistic, shape: Shape) -> Self {
        Self { statistic, shape, rasters: Vec::new() }
    }

    pub(super) fn feed(&mut self, src: Raster) {
        self.rasters.push(src);
    }

    pub(super) fn finish(self, fill: f64) -> Raster {
        let Shape { dtype, bands, width, height } = self.shape;
        let out_dtype = match self.statistic {
            Statistic::Median => dtype,
            Statistic::Stdev => DataType::F64,
        };
        let mut out = Raster::empty(out_dtype, bands, width, height, fill);
        let n = out.pixel_count();
        let mut valid: Vec<&Raster> = Vec::with_capacity(self.rasters.len());
        let mut scratch = Vec::with_capacity(self.rasters.len());
        let mut values = Vec::with_capacity(bands);
        for p in 0..n {
            valid.clear();
            valid.extend(self.rasters.iter().filter(|r| r.mask[p] != 0));
            if valid.is_empty() {
                continue;
            }
            values.clear();
            for b in 0..bands {
                scratch.clear();
                scratch.extend(valid.iter().map(|r| r.value(b * n + p)));
                values.push(match self.statistic {
                    Statistic::Median => (median(dtype, &mut scratch), false),
                    Statistic::Stdev => stdev(dtype, &scratch),
                });
            }
            write_pixel(&mut out, p, &values);
        }
        out
    }
}

/// The median of `values` (not empty) in `dtype`'s arithmetic; sorts `values`.
fn median(dtype: DataType, values: &mut [f64]) -> f64 {
    if values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    values.sort_unstable_by(f64::total_cmp);
    let k = values.len();
    let high = values[k / 2];
    let low = if k % 2 == 1 { high } else { values[k / 2 - 1] };
    // numpy sums low and high like any sum (from +0.0, so two -0.0 give 0.0), also for
    // an odd count (low == high), then halves: huge floats overflow to infinity.
    let sum = accumulate(dtype, accumulate(dtype, 0.0, low), high);
    if dtype == DataType::F32 { f64::from(sum as f32 / 2.0) } else { sum / 2.0 }
}

/// The standard deviation (ddof 0) of `values` (not empty), in request order, and
/// whether `numpy.ma` masks it.
fn stdev(dtype: DataType, values: &[f64]) -> (f64, bool) {
    let count = values.len() as f64;
    let sum = values.iter().fold(0.0, |s, v| accumulate(dtype, s, *v));
    let (mean, mean_masked) = masked_quotient(sum, count);
    if mean_masked {
        // Every deviation is masked, so their sum is 0 and so is the deviation.
        return (0.0, false);
    }
    let squares = values.iter().fold(0.0, |s, v| s + (v - mean) * (v - mean));
    // numpy.ma overwrites the variance's mask with "no valid value", keeping a masked
    // quotient's data (the sum of squares).
    let (variance, _) = masked_quotient(squares, count);
    let deviation = variance.sqrt();
    (deviation, !deviation.is_finite())
}

/// `count`: valid assets per pixel.
#[derive(Debug)]
pub(super) struct Count {
    shape: Shape,
    counts: Vec<u8>,
}

impl Count {
    pub(super) fn new(shape: Shape) -> Self {
        Self { shape, counts: vec![0; shape.pixel_count()] }
    }

    pub(super) fn feed(&mut self, src: &Raster) {
        for (c, m) in self.counts.iter_mut().zip(&src.mask) {
            // At most MAX_COUNT_ASSETS (255) assets are fed, so this never saturates.
            *c = c.saturating_add(u8::from(*m != 0));
        }
    }

    pub(super) fn finish(self) -> Raster {
        let n = self.shape.pixel_count();
        Raster {
            dtype: DataType::U8,
            bands: 1,
            width: self.shape.width,
            height: self.shape.height,
            pixels: self.counts,
            mask: vec![255; n],
        }
    }
}
