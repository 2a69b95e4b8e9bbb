//! Colormaps: one band of values in, RGB plus alpha out, as rio-tiler 9.4.12 renders a
//! single-band tile with `colormap=` (`apply_cmap` and `render` with a mask).
//!
//! Theory of operation. A [`Colormap`] is built once from a request, then applied to a
//! one-band [`Raster`] of any data type. There are three kinds, as in rio-tiler:
//!
//! - **256-entry table** (every named map, and an exact-values map whose values are
//!   exactly the integers 0..=255): each value is cast to uint8 the way numpy does it
//!   (rio-tiler warns and casts, it does not rescale), and the table is indexed with the
//!   result. Integers keep their low byte (300 → 44, -1 → 255); floats are truncated
//!   toward zero and then keep their low byte when within the int32 range, and give 0
//!   otherwise (NaN, ±infinity, 1e10 → 0; 255.9 → 255; -300.0 → 212).
//! - **Exact values**: a pixel whose value equals a key takes its colour.
//! - **Intervals**: a pixel with `min <= value < max` takes the interval's colour.
//!
//! With exact values and intervals, a value that matches nothing (NaN included) becomes
//! `(0, 0, 0, 0)`. For a `float32` tile, keys and bounds are rounded to `float32` before
//! comparing, as numpy compares a `float32` array with a Python number. Matching uses
//! the stored value even where the tile has no data (its RGB is kept); the output alpha
//! is the colour's alpha where the tile has data and 0 where it has none.
//!
//! The output is a 3-band `uint8` [`Raster`] (R, G, B) whose `mask` is that alpha
//! (0..=255, not only 0/255); the PNG and WebP encoders write the mask as alpha.

mod custom;
mod named;

pub use custom::{MAX_EXACT_ENTRIES, MAX_INTERVALS, Rgba};
pub use named::{count as named_count, names};

use super::{DataType, Raster};
use crate::echo::{number, quote};
use custom::{ExactEntries, Interval, Intervals};
use named::TABLE_LEN;

/// A validated colormap, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Colormap {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// 256 RGBA entries indexed by the value cast to uint8.
    Table(Box<[u8; TABLE_LEN]>),
    /// Exact values, distinct, in the order given.
    Exact(ExactEntries),
    /// Sorted, disjoint `[min, max)` intervals.
    Intervals(Intervals),
}

/// Why a colormap is invalid or cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ColormapError {
    /// No named colormap has this name.
    #[error("unknown colormap {}: {}", quote(name), describe_suggestions(suggestions))]
    UnknownName {
        /// The name asked for.
        name: String,
        /// Close names that exist, nearest first (may be empty).
        suggestions: Vec<&'static str>,
    },
    /// A custom colormap has no entries.
    #[error("colormap has no {what}: give 1 to {max}")]
    Empty {
        /// "values" or "intervals".
        what: &'static str,
        /// The most allowed.
        max: usize,
    },
    /// A custom colormap has more entries than allowed.
    #[error("colormap has {count} {what}: at most {max} are allowed")]
    TooManyEntries {
        /// "values" or "intervals".
        what: &'static str,
        /// How many were given.
        count: usize,
        /// The most allowed.
        max: usize,
    },
    /// An exact value is NaN or infinite.
    #[error("colormap value {} is not finite: values must be finite numbers", number(*value))]
    NotFiniteValue {
        /// The value.
        value: f64,
    },
    /// An exact value appears twice.
    #[error("colormap value {} is given twice: each value takes one colour", number(*value))]
    DuplicateValue {
        /// The value.
        value: f64,
    },
    /// An interval bound is NaN or infinite.
    #[error(
        "colormap interval [{}, {}) is not finite: bounds must be finite numbers",
        number(*min),
        number(*max)
    )]
    NotFiniteInterval {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// An interval's lower bound is not below its upper bound.
    #[error(
        "colormap interval [{}, {}) is empty or inverted: min must be less than max",
        number(*min),
        number(*max)
    )]
    InvertedInterval {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// Two intervals overlap.
    #[error(
        "colormap intervals [{}, {}) and [{}, {}) overlap: intervals are [min, max) and must not overlap",
        number(first.0), number(first.1), number(second.0), number(second.1)
    )]
    OverlappingIntervals {
        /// The interval with the lower `min`.
        first: (f64, f64),
        /// The interval that starts before `first` ends.
        second: (f64, f64),
    },
    /// A colour does not have 3 or 4 channels.
    #[error("a colour has 3 (RGB) or 4 (RGBA) channels, not {count}")]
    ChannelCount {
        /// Channels given.
        count: usize,
    },
    /// A colour channel is outside 0..=255.
    #[error("colour channel {value} is out of range: channels and alpha are 0 to 255")]
    ChannelValue {
        /// The value given.
        value: i64,
    },
    /// A hex colour is malformed.
    #[error("colour {} is not #RGB, #RGBA, #RRGGBB or #RRGGBBAA", quote(text))]
    HexColor {
        /// The text given.
        text: String,
    },
    /// The tile has more (or fewer) than one band.
    #[error(
        "a colormap applies to a single band, and this tile has {bands}: select one band or an expression giving one band"
    )]
    BandCount {
        /// Bands in the tile.
        bands: usize,
    },
    /// The raster's buffers do not match its header.
    #[error("cannot apply a colormap to a raster whose buffers do not match its size")]
    InconsistentRaster,
}

fn describe_suggestions(suggestions: &[&str]) -> String {
    let count = named::count();
    if suggestions.is_empty() {
        format!(
            "no similar name among the {count} named colormaps (lowercase, e.g. viridis, magma, terrain; \"_r\" reverses a map)"
        )
    } else {
        format!("did you mean {}? ({count} named colormaps exist)", suggestions.join(", "))
    }
}

impl Colormap {
    /// The named colormap `name`, spelt exactly as rio-tiler names it (lowercase, e.g.
    /// `viridis`, `viridis_r`); names are case-sensitive, as in rio-tiler.
    pub fn named(name: &str) -> Result<Self, ColormapError> {
        match named::find(name) {
            Some(t) => Ok(Self { kind: Kind::Table(Box::new(*t.table)) }),
            None => Err(ColormapError::UnknownName {
                name: name.to_owned(),
                suggestions: named::similar_names(name),
            }),
        }
    }

    /// A map of exact values to colours: 1 to [`MAX_EXACT_ENTRIES`] distinct finite
    /// values. If the values are exactly the integers 0..=255 it behaves as a 256-entry
    /// table (see the module docs), as in rio-tiler.
    pub fn exact(entries: Vec<(f64, Rgba)>) -> Result<Self, ColormapError> {
        let entries = ExactEntries::new(entries)?;
        let kind = match entries.as_full_table() {
            Some(table) => Kind::Table(Box::new(table)),
            None => Kind::Exact(entries),
        };
        Ok(Self { kind })
    }

    /// A map of `[min, max)` intervals to colours: 1 to [`MAX_INTERVALS`] finite,
    /// non-empty, non-overlapping intervals, in any order.
    pub fn intervals(entries: Vec<(f64, f64, Rgba)>) -> Result<Self, ColormapError> {
        Ok(Self { kind: Kind::Intervals(Intervals::new(entries)?) })
    }

    /// Colours a one-band raster: a 3-band uint8 raster (R, G, B) of the same size
    /// whose mask is the alpha (the colour's alpha where `raster` has data, else 0).
    pub fn apply(&self, raster: &Raster) -> Result<Raster, ColormapError> {
        if raster.bands != 1 {
            return Err(ColormapError::BandCount { bands: raster.bands });
        }
        if !raster.is_consistent() {
            return Err(ColormapError::InconsistentRaster);
        }
        let n = raster.pixel_count();
        let mut pixels = vec![0; 3 * n];
        let mut mask = vec![0; n];
        let lookup = Lookup::new(&self.kind, raster.dtype);
        for (p, &valid) in raster.mask.iter().enumerate() {
            // Consistent and single-band: `p` indexes a value of band 0.
            let [red, green, blue, alpha] = lookup.color(raster.value(p));
            pixels[p] = red;
            pixels[n + p] = green;
            pixels[2 * n + p] = blue;
            mask[p] = if valid == 0 { 0 } else { alpha };
        }
        Ok(Raster { dtype: DataType::U8, bands: 3, width: raster.width, height: raster.height, pixels, mask })
    }
}

/// A colormap prepared for one source data type.
enum Lookup<'a> {
    Table { table: &'a [u8; TABLE_LEN], float: bool },
    Exact(Vec<(f64, [u8; 4])>),
    Intervals(Vec<Interval>),
}

impl<'a> Lookup<'a> {
    fn new(kind: &'a Kind, dtype: DataType) -> Self {
        // numpy compares a float32 array with a Python number in float32.
        let key = |v: f64| if dtype == DataType::F32 { f64::from(v as f32) } else { v };
        match kind {
            Kind::Table(table) => {
                Self::Table { table, float: matches!(dtype, DataType::F32 | DataType::F64) }
            }
            Kind::Exact(entries) => {
                let mut keyed: Vec<(f64, [u8; 4])> = entries.0.iter().map(|(v, c)| (key(*v), c.0)).collect();
                // Rounding to float32 can merge keys; the one given last wins, as the later
                // key of a dict does in rio-tiler. The sort is stable, so of equal keys
                // the last in the sorted order is the last given.
                keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
                keyed.reverse();
                keyed.dedup_by(|next, kept| next.0.total_cmp(&kept.0).is_eq());
                keyed.reverse();
                Self::Exact(keyed)
            }
            Kind::Intervals(intervals) => Self::Intervals(
                intervals
                    .0
                    .iter()
                    .map(|i| Interval { min: key(i.min), max: key(i.max), color: i.color })
                    .collect(),
            ),
        }
    }

    fn color(&self, value: f64) -> [u8; 4] {
        const NONE: [u8; 4] = [0, 0, 0, 0];
        match self {
            Self::Table { table, float } => {
                let i = usize::from(if *float { float_to_u8(value) } else { (value as i64) as u8 });
                [table[4 * i], table[4 * i + 1], table[4 * i + 2], table[4 * i + 3]]
            }
            Self::Exact(entries) => {
                entries.binary_search_by(|(k, _)| k.total_cmp(&(value + 0.0))).map_or(NONE, |i| entries[i].1)
            }
            Self::Intervals(intervals) => {
                // The last interval starting at or below `value` is the only candidate:
                // earlier ones end at or before its start. NaN starts no interval.
                let after = intervals.partition_point(|i| i.min <= value);
                match after.checked_sub(1).map(|i| &intervals[i]) {
                    Some(i) if value < i.max => i.color.0,
                    _ => NONE,
                }
            }
        }
    }
}

/// numpy's float → uint8 cast on x86-64 (a truncating conversion to int32 whose
/// out-of-range and NaN result is `i32::MIN`, then the low byte). rio-tiler applies it
/// to non-uint8 data before indexing a 256-entry table.
fn float_to_u8(value: f64) -> u8 {
    let t = value.trunc();
    if (-2_147_483_648.0..=2_147_483_647.0).contains(&t) { (t as i32) as u8 } else { 0 }
}

#[cfg(test)]
mod tests;
