//! The value types of an expression as numexpr types them: the type of every
//! sub-expression, and of each output band, is one of five numpy dtypes. The order of
//! the variants is numexpr's promotion rank (`bool < int < long < float < double`),
//! which is *not* numpy's: numexpr promotes `int32` with `float32` to `float32`, numpy
//! to `float64` (see [`ExprDtype::common`] and [`ExprDtype::promote`]).

use super::func::condition;
use crate::render::DataType;

/// A numpy dtype that numexpr computes in: the type of a sub-expression or of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExprDtype {
    /// numpy `bool`: conditions (comparisons, `&`, `|`, `isnan`, …), 0 or 1.
    Bool,
    /// numpy `int32`: integer arithmetic on `uint8`, `uint16`, `int16` and `int32`
    /// bands; it wraps on overflow.
    Int32,
    /// numpy `int64`: integer arithmetic on `uint32` bands, or with an integer constant
    /// beyond the `int32` range; it wraps on overflow.
    Int64,
    /// numpy `float32`: arithmetic on `float32` bands, rounded to `float32` after each
    /// operation.
    Float32,
    /// numpy `float64`.
    Float64,
}

impl ExprDtype {
    /// numexpr's type for a band of `data` type: integers of up to 32 bits (except
    /// `uint32`) are computed as `int32`, `uint32` as `int64`.
    #[must_use]
    pub fn of_band(data: DataType) -> Self {
        match data {
            DataType::U8 | DataType::I8 | DataType::U16 | DataType::I16 | DataType::I32 => Self::Int32,
            DataType::U32 => Self::Int64,
            DataType::F32 => Self::Float32,
            DataType::F64 => Self::Float64,
        }
    }

    /// The numpy name, e.g. `int32`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::Float32 => "float32",
            Self::Float64 => "float64",
        }
    }

    /// The Tessera type that stores values of this dtype. `bool` is stored as `U8` (0 or
    /// 1) and `int64` as `F64`, exact up to ±2⁵³ (Tessera has neither type).
    #[must_use]
    pub fn storage(self) -> DataType {
        match self {
            Self::Bool => DataType::U8,
            Self::Int32 => DataType::I32,
            Self::Float32 => DataType::F32,
            Self::Int64 | Self::Float64 => DataType::F64,
        }
    }

    /// numexpr's common type of two operands (its `commonKind`): the higher rank.
    #[must_use]
    pub fn common(self, other: Self) -> Self {
        self.max(other)
    }

    /// numpy's promotion (`numpy.result_type`), used when rio-tiler stacks the output
    /// bands into one array: a mix of integers and `float32` becomes `float64`.
    #[must_use]
    pub fn promote(self, other: Self) -> Self {
        let (low, high) = if self <= other { (self, other) } else { (other, self) };
        match (low, high) {
            (Self::Int32 | Self::Int64, Self::Float32) => Self::Float64,
            _ => high,
        }
    }

    /// Whether values of this dtype are integers (`int32` or `int64`).
    #[must_use]
    pub fn is_integer(self) -> bool {
        matches!(self, Self::Int32 | Self::Int64)
    }

    /// `value` converted to this dtype with numpy's `astype` rules for values in range:
    /// floats are truncated toward zero into integers, rounded to nearest into `float32`,
    /// and any non-zero value is `true`. Out of range or NaN into an integer gives the
    /// type's minimum, as numpy does on x86-64. `int64` values stay in `f64`, exact up
    /// to ±2⁵³.
    #[must_use]
    pub fn cast(self, value: f64) -> f64 {
        match self {
            Self::Bool => condition(value != 0.0),
            Self::Int32 => f64::from(to_i32(value)),
            Self::Int64 => from_i64(to_i64(value)),
            Self::Float32 => to_f32(value),
            Self::Float64 => value,
        }
    }

    /// numpy's `nan_to_num` in this dtype: NaN becomes 0 and ±infinity the largest finite
    /// value of the dtype. Integers and booleans are unchanged.
    #[must_use]
    pub fn nan_to_num(self, value: f64) -> f64 {
        let max = match self {
            Self::Float32 => f64::from(f32::MAX),
            Self::Float64 => f64::MAX,
            Self::Bool | Self::Int32 | Self::Int64 => return value,
        };
        if value.is_nan() {
            0.0
        } else if value.is_infinite() {
            max.copysign(value)
        } else {
            value
        }
    }
}

impl std::fmt::Display for ExprDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rounds to the nearest `f32` (ties to even), as a C `(float)` conversion does.
// Rounding to f32 is the point: these are the values numexpr stores in float32.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn to_f32(value: f64) -> f64 {
    f64::from(value as f32)
}

/// An integer-valued `f64` that came out of `int32` arithmetic, as `i32`. Values
/// outside the `i32` range (or NaN) give `i32::MIN`, as x86-64's conversion does.
// The range check makes the conversion exact; truncation toward zero is numpy's.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn to_i32(value: f64) -> i32 {
    let truncated = value.trunc();
    if (-2_147_483_648.0..=2_147_483_647.0).contains(&truncated) { truncated as i32 } else { i32::MIN }
}

/// As [`to_i32`], for `int64`.
// The range check makes the conversion exact; truncation toward zero is numpy's.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn to_i64(value: f64) -> i64 {
    let truncated = value.trunc();
    // 2^63 is exactly representable; every f64 below it is within range.
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&truncated) {
        truncated as i64
    } else {
        i64::MIN
    }
}

/// An `int64` result back in `f64`: exact up to ±2⁵³, rounded to nearest beyond.
// Tessera keeps int64 values in f64 (it has no 64-bit integer type); the rounding is
// documented on `ExprDtype::storage`.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn from_i64(value: i64) -> f64 {
    value as f64
}
