//! Band-math expressions in rio-tiler's language, e.g. `(b4-b1)/(b4+b1)` for NDVI or
//! `b1*2;b2;where(b3>100,1,0)` for three output bands.
//!
//! # Theory of operation
//!
//! A request's text is parsed once ([`Expression::parse`]) into one syntax tree per
//! `;`-separated block, bounded by [`ExprLimits`]; every mistake comes back as an
//! [`ExprError`] pointing at a byte of the text. Once the asset is known,
//! [`Expression::check_bands`] rejects references beyond its band count. Evaluation
//! ([`Expression::evaluate`]) first types each tree for the asset's data type as
//! numexpr would (`typing`), then walks it once, computing every node over the whole
//! tile (`&[f64]` slices) with the kernel of the node's dtype (`kernels`), and returns
//! one band per block in rio-tiler's output dtype ([`ExprDtype`]) plus the output mask.
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
//! - `/` is true division (`float64` for integers); `//` is `floor(a/b)` and `%` is
//!   `a - floor(a/b)*b` (numexpr's float kernels, so `-7 % 3 == 2`); between integers
//!   they are integer operations with the same signs, and 0 for a division by zero.
//! - Functions (numexpr's names): `abs sqrt exp expm1 log` (natural) `log10 log1p log2
//!   sin cos tan arcsin arccos arctan arctan2(y, x) sinh cosh tanh arcsinh arccosh
//!   arctanh floor ceil round` (half to even) `trunc sign fmod(x, y) hypot(x, y)
//!   copysign(x, y) minimum(a, b) maximum(a, b) isnan isinf isfinite where(c, a, b)`,
//!   plus `min(a, b)` / `max(a, b)` (see below).
//! - Blocks are separated by `;`; one trailing `;` is allowed, an empty block elsewhere
//!   is an error. Whitespace (space, tab, newline) may appear anywhere between tokens.
//!
//! # Results and their data type
//!
//! rio-tiler evaluates each block with numexpr, whose types depend on the bands' type:
//! `uint8`, `uint16`, `int16` and `int32` bands are computed as `int32`, `uint32` as
//! `int64`, `float32` as `float32` and `float64` as `float64`; see `typing.rs` for the
//! rules (`b1*2` on `uint8` is `int32`, `b1/2` `float64`, `b1>2` `bool`, `sqrt(b1)`
//! `float64`, and on `float32` bands `b1*2` is `float32` but `b1*0.5` `float64`). Tessera
//! computes the same way: `int32` and `int64` arithmetic wraps on overflow (`b1*b2` on
//! `uint16` 65535 × 65535 is -131071), integer `//` and `%` by zero give 0, and
//! `float32` results are rounded to `float32` after each operation.
//! [`Expression::output_dtype`] gives the dtype of the whole output without evaluating.
//!
//! Every block then goes through `numpy.nan_to_num` in its own dtype: NaN becomes 0,
//! ±inf the largest finite value (`f64::MAX` for `float64`, `f32::MAX` for `float32`),
//! so `0/0 → 0`, `1/0 → f64::MAX`, `log(0) → f64::MIN`. rio-tiler stacks the blocks into
//! one array, promoted with numpy's rules to one dtype (`bool` and `int32` → `int32`,
//! `int32` and `float32` → `float64`); no value changes in that promotion. The output
//! mask is rio-tiler's `logical_or.reduce` of the masks of every band the expression
//! reads, the same mask for all output bands: a pixel is valid only where all
//! referenced bands are valid.
//!
//! Tessera has no `bool` or `int64` raster type. [`ExprDtype::storage`] maps the output
//! dtype to the type Tessera stores:
//!
//! | rio-tiler dtype | Tessera [`DataType`] | values |
//! |---|---|---|
//! | `bool` | `U8` | 0 / 1 |
//! | `int32` | `I32` | exact |
//! | `int64` | `F64` | exact up to ±2⁵³ |
//! | `float32` | `F32` | exact |
//! | `float64` | `F64` | exact |
//!
//! [`Evaluation::into_raster`] encodes the output that way.
//!
//! # Deliberate differences from rio-tiler
//!
//! - `bool` outputs are stored as `uint8` and `int64` outputs as `float64` (above).
//! - `int64` arithmetic (on `uint32` bands) keeps its values in `f64`: each operation is
//!   exact in 64 bits, but a result beyond ±2⁵³ is rounded before the next one, and
//!   `b1**b2` uses `f64` where numexpr uses `long double`.
//! - `float32` transcendental functions (`exp`, `sin`, `log`, `**` with a non-constant
//!   or fractional exponent, …) are computed in `f64` and rounded, which may differ in
//!   the last bit from the C `float` functions numexpr calls. `+ - * / sqrt` are exact.
//! - An integer band to a negative integer constant (`b1**-1` on `uint8`) is an error in
//!   numexpr; here it is `b1**-1.0`, `float64`. An integer to a negative integer band
//!   value (`b1**b2`) is `1/b1` in integers, and 0 where `b1` is 0 (numexpr crashes).
//! - `min(a, b)` / `max(a, b)` are elementwise (aliases of `minimum` / `maximum`, NaN
//!   propagating); in numexpr they are whole-array reductions that fail with two
//!   arguments.
//! - `&`, `|`, `^`, `~` work on conditions only (no bitwise integer arithmetic).
//! - Sub-expressions of literals only are computed as Python would, in `f64`: `7//2` is
//!   the integer 3, `1/2` the float 0.5. Python's errors there (`1/0`, `(-8)**0.5`
//!   giving a complex number, integers beyond 64 bits) are not reproduced, and two
//!   literal conditions added or multiplied (`(1<2)+(1<2)`) are a condition, not
//!   Python's integer 2.
//! - Chained comparisons (`1 < b1 < 3`) are an error in both, with a clearer message here.
//! - Leading spaces in a block (`b1; b2`) and newlines are accepted (Python's parser
//!   rejects them in rio-tiler). An empty or blank block between two `;` (`b1;;b2`) is an
//!   error here, where rio-tiler silently drops it. Hexadecimal and
//!   `1_000` literals are not accepted. A block of literals only (`b1;2`) is one value
//!   repeated over the tile, where rio-tiler fails to stack it with the other blocks.

mod dtype;
mod error;
mod eval;
mod func;
mod kernels;
mod lex;
mod parse;
#[cfg(test)]
mod tests;
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
        let several = ranges.len() > 1;
        for (n, range) in ranges.into_iter().enumerate() {
            let before = band_refs.len();
            let node = parse::parse_block(text, range.start, range.end, limits.max_depth, &mut band_refs)?;
            // rio-tiler stacks each block's array as a band: a block of numbers alone is
            // a scalar it cannot stack ("inhomogeneous shape"), or fails before that
            // (integer modulo by zero, an int too large), so it is refused here too.
            if several && band_refs.len() == before {
                return Err(ExprError::syntax(
                    range.start,
                    format!(
                        "output band {} reads no band: each ';'-separated output must reference at least one band, e.g. b1",
                        n + 1
                    ),
                ));
            }
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
