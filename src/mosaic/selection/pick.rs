//! The pick methods: each output value is one asset's value, chosen by comparing assets
//! one after the other in request order.
//!
//! As in rio-tiler, an asset's value replaces the current one when the current pixel is
//! still invalid, or when the asset's pixel is valid and strictly better. Ties keep the
//! earlier asset, and a NaN never compares better, so a valid NaN, once taken, stays
//! (order matters, hence the sequencing in the parent module). The output mask is valid
//! where any asset was valid.

use super::Shape;
use crate::render::Raster;

/// What "better" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// Per band, higher wins.
    Highest,
    /// Per band, lower wins.
    Lowest,
    /// Per pixel, a higher last band wins all bands; the last band is dropped.
    LastBandHighest,
    /// Per pixel, a lower last band wins all bands; the last band is dropped.
    LastBandLowest,
}

impl Rule {
    fn better(self, candidate: f64, current: f64) -> bool {
        match self {
            Self::Highest | Self::LastBandHighest => candidate > current,
            Self::Lowest | Self::LastBandLowest => candidate < current,
        }
    }
}

/// The running choice.
#[derive(Debug)]
pub(super) struct Pick {
    rule: Rule,
    /// The chosen values (bit for bit), and as mask where any asset was valid.
    out: Raster,
    /// The value each choice was made on: one per output value for the per-band rules,
    /// the last band's value per pixel for the last-band rules. Meaningless where `out`
    /// is still invalid.
    keys: Vec<f64>,
}

impl Pick {
    pub(super) fn new(rule: Rule, shape: Shape, fill: f64) -> Self {
        let per_band = matches!(rule, Rule::Highest | Rule::Lowest);
        let bands = if per_band { shape.bands } else { shape.bands.saturating_sub(1) };
        let keys = vec![0.0; if per_band { bands } else { 1 } * shape.pixel_count()];
        Self { rule, out: Raster::empty(shape.dtype, bands, shape.width, shape.height, fill), keys }
    }

    pub(super) fn feed(&mut self, src: &Raster) {
        let n = self.out.pixel_count();
        match self.rule {
            Rule::Highest | Rule::Lowest => {
                for b in 0..self.out.bands {
                    for p in (0..n).filter(|p| src.mask[*p] != 0) {
                        let i = b * n + p;
                        let v = src.value(i);
                        if self.out.mask[p] == 0 || self.rule.better(v, self.keys[i]) {
                            self.keys[i] = v;
                            self.out.copy_value(i, src, i);
                        }
                    }
                }
                // Only now: every band above had to see whether the pixel was invalid.
                for (o, s) in self.out.mask.iter_mut().zip(&src.mask) {
                    if *s != 0 {
                        *o = 255;
                    }
                }
            }
            Rule::LastBandHighest | Rule::LastBandLowest => {
                let last = self.out.bands;
                for p in (0..n).filter(|p| src.mask[*p] != 0) {
                    let v = src.value(last * n + p);
                    if self.out.mask[p] == 0 || self.rule.better(v, self.keys[p]) {
                        self.keys[p] = v;
                        self.out.mask[p] = 255;
                        for b in 0..last {
                            self.out.copy_value(b * n + p, src, b * n + p);
                        }
                    }
                }
            }
        }
    }

    pub(super) fn finish(self) -> Raster {
        self.out
    }
}
