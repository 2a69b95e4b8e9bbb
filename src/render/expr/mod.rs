//! Band-math expressions in rio-tiler's language, e.g. `(b4-b1)/(b4+b1)` for NDVI or
//! `b1*2;b2;where(b3>100,1,0)` for three output bands.
//!
//! # Theory of operation
//!
//! A request's text is parsed once ([`Expression::parse`]) into one syntax tree per
//! `;`-separated block, bounded by [`ExprLimits`]; every mistake comes back as an
//! [`ExprError`] pointing at a byte of the text. Once the asset is known,
//! [`Expression::check_bands`] rejects references beyond its band count. Evaluation
//! ([`Expression::evaluate`]) walks each tree once, computing every node over the whole
//! tile (`&[f64]` slices), and returns one `f64` band per block plus the output mask.
//!
//! # Language (as rio-tiler 9.4.12 evaluates it with numexpr, Python's grammar)
//!
//! - Bands `b1`, `b2`, … (1-based). The whole text is case-insensitive (rio-tiler
//!   lowercases it): `B1`, `SQRT(b1)` are accepted. `b0` and `b01` are errors.
//! - Decimal numbers: `12`, `0.5`, `.5`, `5.`, `1e3`, `2.5E-4`.
//! - Operators, loosest first (Python's table): comparisons `< <= > >= == !=`; `|`;
//!   `^`; `&`; `+ -`; `* / // %`; unary `- + ~`; `**` (right-associative, and tighter
//!   than a unary sign on its left: `-2**2 == -4`, `2**-1 == 0.5`). Because `&` binds
//!   tighter than comparisons, conditions are parenthesised: `(b1>1)&(b2<3)`.
//! - Conditions (comparisons, `&`, `|`, `^`, `~`, `isnan`…) are 0.0 / 1.0 and count as
//!   numbers in arithmetic. Between two conditions `+` is "or" and `*` is "and" (numexpr's
//!   boolean rules) while `-`, `//`, `%`, `**` are refused, as numexpr refuses them.
//! - `/` is true division; `//` is `floor(a/b)` and `%` is `a - floor(a/b)*b` (numexpr's
//!   float kernels, so `-7 % 3 == 2`).
//! - Functions (numexpr's names): `abs sqrt exp expm1 log` (natural) `log10 log1p log2
//!   sin cos tan arcsin arccos arctan arctan2(y, x) sinh cosh tanh arcsinh arccosh
//!   arctanh floor ceil round` (half to even) `trunc sign fmod(x, y) hypot(x, y)
//!   copysign(x, y) minimum(a, b) maximum(a, b) isnan isinf isfinite where(c, a, b)`,
//!   plus `min(a, b)` / `max(a, b)` (see below).
//! - Blocks are separated by `;`; one trailing `;` is allowed, an empty block elsewhere
//!   is an error. Whitespace (space, tab, newline) may appear anywhere between tokens.
//!
//! # Results
//!
//! As in rio-tiler, every output band goes through `numpy.nan_to_num`: NaN becomes 0,
//! +inf becomes `f64::MAX`, -inf `f64::MIN` (so `0/0 → 0`, `1/0 → f64::MAX`,
//! `log(0) → f64::MIN`). A caller that stores `f32` must clamp to the `f32` range
//! (Rust's `as f32` would turn `f64::MAX` back into infinity); that gives exactly
//! rio-tiler's float32 `nan_to_num`. The output mask is rio-tiler's
//! `logical_or.reduce` of the masks of every band the expression reads, the same mask
//! for all output bands: a pixel is valid only where all referenced bands are valid.
//!
//! # Deliberate differences from rio-tiler
//!
//! - Outputs are always `f64`; rio-tiler's dtype follows numexpr's casting (int32 for
//!   integer-only arithmetic on integer bands, bool for conditions only, float32 or
//!   float64 otherwise). The caller chooses the stored data type.
//! - Arithmetic is `f64` throughout. numexpr computes integer bands in int32 (which
//!   can wrap, e.g. `b1*b2` on large uint16 values) and float32 bands in float32; integer
//!   `//` and `%` by zero give 0 there but ±`f64::MAX` / 0 here, and `b1**-1` on integer
//!   bands is an error there but `1/b1` here.
//! - `min(a, b)` / `max(a, b)` are elementwise (aliases of `minimum` / `maximum`, NaN
//!   propagating); in numexpr they are whole-array reductions that fail with two
//!   arguments.
//! - `&`, `|`, `^`, `~` work on conditions only (no bitwise integer arithmetic).
//! - Chained comparisons (`1 < b1 < 3`) are an error in both, with a clearer message here.
//! - Leading spaces in a block (`b1; b2`) and newlines are accepted (Python's parser
//!   rejects them in rio-tiler). An empty or blank block between two `;` (`b1;;b2`) is an
//!   error here, where rio-tiler silently drops it. Hexadecimal and
//!   `1_000` literals are not accepted.

mod dtype;
mod error;
mod eval;
mod func;
mod kernels;
mod lex;
mod parse;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dtype;
mod typing;

pub use dtype::ExprDtype;
pub use error::{EvalError, ExprError, ExprErrorKind};

use crate::render::{DataType, Raster};
use parse::{BandRef, Node};

/// Default for [`ExprLimits::max_len`]: bytes of expression text.
pub const DEFAULT_MAX_LEN: usize = 1024;
/// Default for [`ExprLimits::max_depth`]: nesting depth.
pub const DEFAULT_MAX_DEPTH: usize = 32;
/// Default for [`ExprLimits::max_outputs`]: output bands (`;` blocks).
pub const DEFAULT_MAX_OUTPUTS: usize = 16;

/// Bounds on what a request may ask the parser and evaluator to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExprLimits {
    /// Longest accepted text, in bytes.
    pub max_len: usize,
    /// Deepest accepted nesting. A lone band or number has depth 1; each parenthesis,
    /// function call, unary operator and right-hand operand adds one, so `b1+b2` is 2,
    /// `b1+b2*b3` is 3 and `(b1)` is 2, while a flat chain `b1+b2+b3+b4` stays 2.
    pub max_depth: usize,
    /// Most output bands (`;`-separated blocks).
    pub max_outputs: usize,
}

impl Default for ExprLimits {
    fn default() -> Self {
        Self { max_len: DEFAULT_MAX_LEN, max_depth: DEFAULT_MAX_DEPTH, max_outputs: DEFAULT_MAX_OUTPUTS }
    }
}

/// A parsed band-math expression: one tree per output band.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    text: String,
    /// Byte ranges of the blocks in `text` (trimmed) and their trees.
    blocks: Vec<(std::ops::Range<usize>, Node)>,
    /// Band references in text order.
    band_refs: Vec<BandRef>,
}

/// Validity masks of the input bands: 0 is invalid, anything else valid.
#[derive(Debug, Clone, Copy)]
pub enum BandMasks<'a> {
    /// One mask for all bands of the asset (GDAL's dataset mask).
    Shared(&'a [u8]),
    /// One mask per band, indexed like the bands (`masks[i - 1]` for band `i`).
    PerBand(&'a [&'a [u8]]),
}

/// The result of [`Expression::evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// rio-tiler's dtype of the output array, the same for every band (see
    /// [`Expression::output_dtype`]).
    pub dtype: ExprDtype,
    /// One band per `;` block, in order, after `nan_to_num`. Every value is a value of
    /// `dtype` (0/1 for `bool`, an integer for `int32`, an `f32` for `float32`), so
    /// converting it to [`ExprDtype::storage`] with `as` is exact (`int64` values are
    /// exact up to ±2⁵³).
    pub bands: Vec<Vec<f64>>,
    /// 255 where every band the expression reads is valid, 0 elsewhere.
    pub mask: Vec<u8>,
}

impl Evaluation {
    /// The output as a [`Raster`] of [`ExprDtype::storage`] type, `width * height`
    /// pixels per band (the pixel count given to [`Expression::evaluate`]).
    #[must_use]
    pub fn into_raster(self, width: usize, height: usize) -> Raster {
        let dtype = self.dtype.storage();
        let mut pixels = Vec::with_capacity(self.bands.len() * width * height * dtype.size());
        for band in &self.bands {
            for &value in band {
                pixels.extend_from_slice(&dtype.encode_value(value));
            }
        }
        Raster { dtype, bands: self.bands.len(), width, height, pixels, mask: self.mask }
    }
}

impl Expression {
    /// Parses `text` within `limits`.
    pub fn parse(text: &str, limits: &ExprLimits) -> Result<Self, ExprError> {
        if text.len() > limits.max_len {
            return Err(ExprError::new(
                ExprErrorKind::Limit,
                limits.max_len,
                format!(
                    "expression is {} bytes long, over the limit (max_len) of {} bytes",
                    text.len(),
                    limits.max_len
                ),
            ));
        }
        let ranges = block_ranges(text)?;
        if ranges.len() > limits.max_outputs {
            return Err(ExprError::new(
                ExprErrorKind::Limit,
                ranges[limits.max_outputs].start,
                format!(
                    "expression has {} output bands (';'-separated), over the limit \
                     (max_outputs) of {}",
                    ranges.len(),
                    limits.max_outputs
                ),
            ));
        }
        let mut band_refs = Vec::new();
        let mut blocks = Vec::with_capacity(ranges.len());
        for range in ranges {
            let node = parse::parse_block(text, range.start, range.end, limits.max_depth, &mut band_refs)?;
            blocks.push((range, node));
        }
        if band_refs.is_empty() {
            return Err(ExprError::syntax(
                0,
                "expression reads no band: reference at least one band, e.g. b1",
            ));
        }
        Ok(Self { text: text.to_string(), blocks, band_refs })
    }

    /// Sorted, unique 1-based bands the expression reads.
    #[must_use]
    pub fn bands(&self) -> Vec<u32> {
        let mut bands: Vec<u32> = self.band_refs.iter().map(|r| r.band).collect();
        bands.sort_unstable();
        bands.dedup();
        bands
    }

    /// Number of output bands (`;` blocks).
    #[must_use]
    pub fn outputs(&self) -> usize {
        self.blocks.len()
    }

    /// The text of each output band's block, trimmed (for band descriptions).
    #[must_use]
    pub fn block_texts(&self) -> Vec<&str> {
        self.blocks.iter().map(|(range, _)| &self.text[range.clone()]).collect()
    }

    /// Rejects the first band reference (in text order) beyond `available` bands.
    pub fn check_bands(&self, available: usize) -> Result<(), ExprError> {
        match self.band_refs.iter().find(|r| r.band as usize > available) {
            None => Ok(()),
            Some(r) => Err(ExprError::new(
                ExprErrorKind::BandOutOfRange,
                r.position,
                format!(
                    "band b{} does not exist: the asset has {available} band{} (b1 to b{available})",
                    r.band,
                    if available == 1 { "" } else { "s" }
                ),
            )),
        }
    }

    /// rio-tiler's dtype of the output array for bands of type `input`: numexpr's type of
    /// each block, then numpy's promotion of the blocks to one array (`b1>2` on `uint8`
    /// is `bool`, `b1*2` `int32`, `b1/2` `float64`, `b1;b1/2` `float64`).
    #[must_use]
    pub fn output_dtype(&self, input: DataType) -> ExprDtype {
        let band = ExprDtype::of_band(input);
        self.blocks
            .iter()
            .map(|(_, node)| typing::annotate(node, band).dtype)
            .reduce(ExprDtype::promote)
            .unwrap_or(ExprDtype::Float64)
    }

    /// Evaluates every block over whole bands of type `input`, as numexpr computes them
    /// in rio-tiler (see [`Expression::output_dtype`]). `bands[i - 1]` holds band `i`,
    /// values of type `input`; bands the expression does not read may be empty slices.
    /// All bands read (and their masks) must have the same length, which is the pixel
    /// count of the outputs.
    pub fn evaluate(
        &self,
        bands: &[&[f64]],
        input: DataType,
        masks: BandMasks<'_>,
    ) -> Result<Evaluation, EvalError> {
        let used = self.bands();
        let mut pixels = None;
        for &band in &used {
            let data = bands
                .get(band as usize - 1)
                .ok_or(EvalError::MissingBand { band, available: bands.len() })?;
            let expected = *pixels.get_or_insert(data.len());
            check_len(&format!("band b{band}"), data.len(), expected)?;
        }
        // `parse` guarantees at least one band is read.
        let pixels = pixels.unwrap_or(0);
        let mut mask = vec![255u8; pixels];
        match masks {
            BandMasks::Shared(shared) => {
                check_len("the shared mask", shared.len(), pixels)?;
                combine(&mut mask, shared);
            }
            BandMasks::PerBand(per_band) => {
                for &band in &used {
                    let band_mask = per_band
                        .get(band as usize - 1)
                        .ok_or(EvalError::MissingMask { band, available: per_band.len() })?;
                    check_len(&format!("mask of band b{band}"), band_mask.len(), pixels)?;
                    combine(&mut mask, band_mask);
                }
            }
        }
        let band = ExprDtype::of_band(input);
        let typed: Vec<_> = self.blocks.iter().map(|(_, node)| typing::annotate(node, band)).collect();
        // Promotion to the common dtype never changes a value: every value of a block's
        // dtype is a value of the promoted dtype.
        let dtype = typed.iter().map(|t| t.dtype).reduce(ExprDtype::promote).unwrap_or(ExprDtype::Float64);
        let outputs = typed.iter().map(|t| eval::evaluate_block(t, bands, pixels)).collect();
        Ok(Evaluation { dtype, bands: outputs, mask })
    }
}

fn check_len(what: &str, len: usize, expected: usize) -> Result<(), EvalError> {
    if len == expected {
        Ok(())
    } else {
        Err(EvalError::LengthMismatch { what: what.to_string(), len, expected })
    }
}

fn combine(mask: &mut [u8], band_mask: &[u8]) {
    for (out, &valid) in mask.iter_mut().zip(band_mask) {
        if valid == 0 {
            *out = 0;
        }
    }
}

/// Splits `text` at `;` into trimmed, non-blank block ranges. A single trailing `;` is
/// tolerated (rio-tiler drops empty blocks); any other blank block is an error.
fn block_ranges(text: &str) -> Result<Vec<std::ops::Range<usize>>, ExprError> {
    let mut raw = Vec::new();
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        if byte == b';' {
            raw.push(start..i);
            start = i + 1;
        }
    }
    raw.push(start..text.len());
    let last = raw.len() - 1;
    let mut ranges = Vec::with_capacity(raw.len());
    for (index, range) in raw.into_iter().enumerate() {
        let block = &text[range.clone()];
        let trimmed = block.trim_ascii();
        if trimmed.is_empty() {
            if index == last && index > 0 {
                continue;
            }
            if last == 0 {
                return Err(ExprError::syntax(
                    0,
                    "expression is empty: write band math such as (b2-b1)/(b2+b1)",
                ));
            }
            // Not the last block, so `range.end` is the `;` closing it.
            return Err(ExprError::syntax(
                range.end,
                "empty output band before this ';': each ';' separates two expressions",
            ));
        }
        let offset = range.start + (block.len() - block.trim_ascii_start().len());
        ranges.push(offset..offset + trimmed.len());
    }
    Ok(ranges)
}
