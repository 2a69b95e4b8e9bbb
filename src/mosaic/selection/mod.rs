//! Pixel selection: how the assets of a mosaic tile combine into one raster.
//!
//! Tessera's methods are those of rio-tiler (9.4.12), with the same results: the
//! pick methods (`highest`, `lowest`, `lastbandlow`, `lastbandhigh`) fold the assets one
//! after the other, the stack methods (`mean`, `median`, `stdev`, `count`) reduce all the
//! values of a pixel at once, and `first` is first-wins compositing.
//!
//! # Theory of operation
//!
//! rio-tiler feeds its method the assets in request order, and several methods depend on
//! that order (ties go to the earlier asset, floating-point sums round in that order).
//! Tessera's reads land in any order, so a [`Selector`] sequences them: a raster that
//! arrives before every earlier asset is accounted for (added, skipped or failed) waits,
//! and is fed once the gap closes. The result therefore never depends on arrival order.
//!
//! Only `first` may stop before every read has landed (see
//! [`Compositor`](crate::render::Compositor)); every other method needs all the assets
//! that touch the tile.

mod pick;
mod stack;

use std::borrow::Cow;

use crate::render::{Compositor, DataType, Raster};

use pick::{Pick, Rule};
use stack::{Count, Mean, Stack, Statistic};

/// How the valid pixels of a tile's assets combine into one output pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelSelection {
    /// The first asset (in request order) with a valid pixel gives all its bands.
    First,
    /// Per band, the highest valid value; on a tie the earlier asset's value stays.
    Highest,
    /// Per band, the lowest valid value; on a tie the earlier asset's value stays.
    Lowest,
    /// Per band, the mean of the valid values, cast back to the input type.
    Mean,
    /// Per band, the median of the valid values, cast back to the input type.
    Median,
    /// Per band, the population standard deviation (ddof 0) of the valid values, as
    /// `float64`.
    Stdev,
    /// One `uint8` band: how many assets have a valid pixel. Every pixel is valid.
    Count,
    /// The asset whose last band is lowest gives its other bands; the last band is dropped.
    LastBandLow,
    /// The asset whose last band is highest gives its other bands; the last band is dropped.
    LastBandHigh,
}

/// A request that a pixel selection method cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectionError {
    /// `lastbandlow`/`lastbandhigh` drop the band they decide on, so they need two bands.
    #[error(
        "pixel selection '{method}' decides on the last band and drops it: it needs at least 2 bands, the tile has {bands}"
    )]
    TooFewBands {
        /// The method's name.
        method: &'static str,
        /// Bands in the tile.
        bands: usize,
    },
    /// `count` is a `uint8` band, so it takes at most [`PixelSelection::MAX_COUNT_ASSETS`].
    #[error(
        "pixel selection 'count' returns uint8 counts: it takes at most {limit} assets, the tile has {assets}"
    )]
    TooManyAssets {
        /// Assets in the tile.
        assets: usize,
        /// The most `count` takes.
        limit: usize,
    },
}

impl PixelSelection {
    /// Every method, in the order of this enum.
    pub const ALL: [Self; 9] = [
        Self::First,
        Self::Highest,
        Self::Lowest,
        Self::Mean,
        Self::Median,
        Self::Stdev,
        Self::Count,
        Self::LastBandLow,
        Self::LastBandHigh,
    ];

    /// The most assets `count` accepts. rio-tiler returns `uint8` counts below 256 fed
    /// assets and `int64` from there; Tessera has no 64-bit integer type, so it refuses
    /// the larger mosaics up front.
    pub const MAX_COUNT_ASSETS: usize = 255;

    /// The method's name, as rio-tiler and TiTiler spell it (for spans and metrics).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Highest => "highest",
            Self::Lowest => "lowest",
            Self::Mean => "mean",
            Self::Median => "median",
            Self::Stdev => "stdev",
            Self::Count => "count",
            Self::LastBandLow => "lastbandlow",
            Self::LastBandHigh => "lastbandhigh",
        }
    }

    /// The data type of the output for assets of type `input`: `float64` for `stdev`,
    /// `uint8` for `count`, `input` for every other method (`mean` and `median` cast back,
    /// truncating toward zero for integer types).
    #[must_use]
    pub fn output_dtype(self, input: DataType) -> DataType {
        match self {
            Self::Stdev => DataType::F64,
            Self::Count => DataType::U8,
            _ => input,
        }
    }

    /// Bands in the output for assets of `input_bands` bands: one fewer for the last-band
    /// methods, one for `count`. Only meaningful once [`Self::check`] passed.
    #[must_use]
    pub fn output_bands(self, input_bands: usize) -> usize {
        match self {
            Self::LastBandLow | Self::LastBandHigh => input_bands.saturating_sub(1),
            Self::Count => 1,
            _ => input_bands,
        }
    }

    /// Whether the method can finish before every touching asset has been read.
    #[must_use]
    pub fn stops_early(self) -> bool {
        self == Self::First
    }

    /// Checks that the method can combine `asset_count` assets of `bands` bands.
    pub fn check(self, bands: usize, asset_count: usize) -> Result<(), SelectionError> {
        match self {
            Self::LastBandLow | Self::LastBandHigh if bands < 2 => {
                Err(SelectionError::TooFewBands { method: self.name(), bands })
            }
            Self::Count if asset_count > Self::MAX_COUNT_ASSETS => {
                Err(SelectionError::TooManyAssets { assets: asset_count, limit: Self::MAX_COUNT_ASSETS })
            }
            _ => Ok(()),
        }
    }
}

/// What every input raster of a tile looks like.
#[derive(Debug, Clone, Copy)]
struct Shape {
    dtype: DataType,
    bands: usize,
    width: usize,
    height: usize,
}

impl Shape {
    fn pixel_count(self) -> usize {
        self.width * self.height
    }

    fn matches(self, r: &Raster) -> bool {
        (r.dtype, r.bands, r.width, r.height) == (self.dtype, self.bands, self.width, self.height)
            && r.is_consistent()
    }
}

/// Combines the rasters of a tile's assets with one [`PixelSelection`], whatever order
/// the reads complete in.
///
/// Driven like [`Compositor`]: [`add`](Self::add) each raster that was read,
/// [`settle`](Self::settle) each asset skipped or failed, stop reading once
/// [`is_complete`](Self::is_complete), then [`finish`](Self::finish).
#[derive(Debug)]
pub struct Selector {
    combine: Combine,
}

#[derive(Debug)]
enum Combine {
    /// `first`, which may complete early.
    First {
        compositor: Compositor,
        /// `settled[i]`: asset i has been added, skipped or has failed.
        settled: Vec<bool>,
    },
    /// Every other method, fed in request order.
    InOrder(Sequenced),
}

/// Feeds a [`Fold`] the assets in request order.
#[derive(Debug)]
struct Sequenced {
    shape: Shape,
    fold: Fold,
    /// Rasters that arrived before an earlier asset was accounted for.
    waiting: Vec<Option<Raster>>,
    /// `settled[i]`: asset i has been added, skipped or has failed.
    settled: Vec<bool>,
    /// Every asset before this one has been fed or skipped.
    next: usize,
    /// The value of output pixels no asset makes valid.
    fill: f64,
}

/// A method's running state.
#[derive(Debug)]
enum Fold {
    Pick(Pick),
    Mean(Mean),
    Stack(Stack),
    Count(Count),
}

impl Fold {
    fn feed(&mut self, src: Cow<'_, Raster>) {
        match self {
            Self::Pick(f) => f.feed(&src),
            Self::Mean(f) => f.feed(&src),
            Self::Stack(f) => f.feed(src.into_owned()),
            Self::Count(f) => f.feed(&src),
        }
    }

    fn finish(self, fill: f64) -> Raster {
        match self {
            Self::Pick(f) => f.finish(),
            Self::Mean(f) => f.finish(fill),
            Self::Stack(f) => f.finish(fill),
            Self::Count(f) => f.finish(),
        }
    }
}

impl Selector {
    /// A selector for `asset_count` assets whose rasters are `bands` bands of
    /// `width` x `height` values of `dtype`. Output pixels no asset makes valid hold
    /// `fill` (cast to the output type).
    pub fn new(
        method: PixelSelection,
        dtype: DataType,
        bands: usize,
        width: usize,
        height: usize,
        fill: f64,
        asset_count: usize,
    ) -> Result<Self, SelectionError> {
        method.check(bands, asset_count)?;
        let shape = Shape { dtype, bands, width, height };
        let fold = match method {
            PixelSelection::First => {
                let out = Raster::empty(dtype, bands, width, height, fill);
                let compositor = Compositor::new(out, asset_count);
                return Ok(Self {
                    combine: Combine::First { compositor, settled: vec![false; asset_count] },
                });
            }
            PixelSelection::Highest => Fold::Pick(Pick::new(Rule::Highest, shape, fill)),
            PixelSelection::Lowest => Fold::Pick(Pick::new(Rule::Lowest, shape, fill)),
            PixelSelection::LastBandHigh => Fold::Pick(Pick::new(Rule::LastBandHighest, shape, fill)),
            PixelSelection::LastBandLow => Fold::Pick(Pick::new(Rule::LastBandLowest, shape, fill)),
            PixelSelection::Mean => Fold::Mean(Mean::new(shape)),
            PixelSelection::Median => Fold::Stack(Stack::new(Statistic::Median, shape)),
            PixelSelection::Stdev => Fold::Stack(Stack::new(Statistic::Stdev, shape)),
            PixelSelection::Count => Fold::Count(Count::new(shape)),
        };
        Ok(Self {
            combine: Combine::InOrder(Sequenced {
                shape,
                fold,
                waiting: vec![None; asset_count],
                settled: vec![false; asset_count],
                next: 0,
                fill,
            }),
        })
    }

    /// Adds asset `index`'s pixels. The raster must have the shape and type given to
    /// [`Self::new`] (the caller checks it against the read request): one that does not
    /// counts as skipped. An index out of range or already settled is ignored.
    pub fn add(&mut self, index: usize, src: &Raster) {
        match &mut self.combine {
            Combine::First { compositor, settled } => {
                if let Some(s) = settled.get_mut(index) {
                    *s = true;
                    compositor.add(index, src);
                }
            }
            Combine::InOrder(s) => s.add(index, src),
        }
    }

    /// Marks asset `index` as contributing nothing (skipped or failed).
    pub fn settle(&mut self, index: usize) {
        match &mut self.combine {
            Combine::First { compositor, settled } => {
                if let Some(s) = settled.get_mut(index) {
                    *s = true;
                }
                compositor.settle(index);
            }
            Combine::InOrder(s) => s.settle(index),
        }
    }

    /// Whether no asset still outstanding could change the result: once every asset is
    /// settled, and for `first` as soon as every pixel is decided.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        match &self.combine {
            Combine::First { compositor, settled } => compositor.is_complete() || settled.iter().all(|s| *s),
            Combine::InOrder(s) => s.next == s.settled.len(),
        }
    }

    /// The combined raster, of [`PixelSelection::output_dtype`] and
    /// [`PixelSelection::output_bands`]. Assets never settled count as skipped.
    #[must_use]
    pub fn finish(self) -> Raster {
        match self.combine {
            Combine::First { compositor, .. } => compositor.finish(),
            Combine::InOrder(mut s) => {
                for w in std::mem::take(&mut s.waiting).into_iter().flatten() {
                    s.fold.feed(Cow::Owned(w));
                }
                s.fold.finish(s.fill)
            }
        }
    }
}

impl Sequenced {
    fn add(&mut self, index: usize, src: &Raster) {
        if self.settled.get(index) != Some(&false) {
            return;
        }
        if !self.shape.matches(src) {
            // Nothing to feed: the asset counts as skipped.
            self.settle(index);
            return;
        }
        self.settled[index] = true;
        if index == self.next {
            self.fold.feed(Cow::Borrowed(src));
            self.next += 1;
            self.advance();
        } else {
            self.waiting[index] = Some(src.clone());
        }
    }

    fn settle(&mut self, index: usize) {
        if let Some(s) = self.settled.get_mut(index) {
            *s = true;
        }
        self.advance();
    }

    /// Feeds the waiting rasters whose predecessors are all accounted for.
    fn advance(&mut self) {
        while self.settled.get(self.next) == Some(&true) {
            if let Some(r) = self.waiting[self.next].take() {
                self.fold.feed(Cow::Owned(r));
            }
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests;
