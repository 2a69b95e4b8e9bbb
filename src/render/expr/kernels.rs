//! Per-pixel kernels in numexpr's dtypes. Every value is held in an `f64`, which
//! represents `bool`, `int32` and `float32` values exactly: an `int32` kernel converts its
//! operands to `i32`, computes with wrapping arithmetic and converts back; a `float32`
//! kernel computes in `f64` and rounds to `f32` after each step (for `+ - * /` that is
//! exactly `float32` arithmetic, since `f64` has more than twice the precision).
//! `int64` values are exact up to ±2⁵³ and rounded beyond.

use super::dtype::{ExprDtype, from_i64, to_f32, to_i32, to_i64};
use super::func::condition;
use super::parse::BinaryOp;

/// The kernel of `op` with operands already converted to `compute`.
// `==` and `!=` compare exactly, as numpy does; a tolerance would change results.
#[allow(clippy::float_cmp)]
pub(crate) fn binary(op: BinaryOp, compute: ExprDtype) -> fn(f64, f64) -> f64 {
    match op {
        BinaryOp::Lt => |a, b| condition(a < b),
        BinaryOp::Le => |a, b| condition(a <= b),
        BinaryOp::Gt => |a, b| condition(a > b),
        BinaryOp::Ge => |a, b| condition(a >= b),
        BinaryOp::Eq => |a, b| condition(a == b),
        BinaryOp::Ne => |a, b| condition(a != b),
        BinaryOp::And => |a, b| condition(a != 0.0 && b != 0.0),
        BinaryOp::Or => |a, b| condition(a != 0.0 || b != 0.0),
        BinaryOp::Xor => |a, b| condition((a != 0.0) != (b != 0.0)),
        _ => match compute {
            ExprDtype::Int32 => int32(op),
            ExprDtype::Int64 => int64(op),
            ExprDtype::Float32 => float32(op),
            // Booleans in arithmetic are 0 and 1.
            ExprDtype::Bool | ExprDtype::Float64 => float64(op),
        },
    }
}

/// Arithmetic negation in `dtype` (`int32` wraps: `-(-2³¹)` is `-2³¹`).
pub(crate) fn neg(dtype: ExprDtype) -> fn(f64) -> f64 {
    match dtype {
        ExprDtype::Int32 => |x| f64::from(to_i32(x).wrapping_neg()),
        ExprDtype::Int64 => |x| from_i64(to_i64(x).wrapping_neg()),
        _ => |x| -x,
    }
}

/// numexpr's double kernels: `//` is `floor(a/b)` and `%` is `a - floor(a/b)*b`
/// (Python's sign convention; division by zero gives ±inf and NaN).
fn float64(op: BinaryOp) -> fn(f64, f64) -> f64 {
    match op {
        BinaryOp::Add => |a, b| a + b,
        BinaryOp::Sub => |a, b| a - b,
        BinaryOp::Mul => |a, b| a * b,
        BinaryOp::FloorDiv => |a, b| (a / b).floor(),
        BinaryOp::Mod => |a, b| a - (a / b).floor() * b,
        BinaryOp::Pow => f64::powf,
        _ => |a, b| a / b,
    }
}

/// numexpr's float kernels, each C `float` operation rounded.
fn float32(op: BinaryOp) -> fn(f64, f64) -> f64 {
    match op {
        BinaryOp::Add => |a, b| to_f32(a + b),
        BinaryOp::Sub => |a, b| to_f32(a - b),
        BinaryOp::Mul => |a, b| to_f32(a * b),
        BinaryOp::FloorDiv => |a, b| to_f32(a / b).floor(),
        BinaryOp::Mod => |a, b| to_f32(a - to_f32(to_f32(a / b).floor() * b)),
        BinaryOp::Pow => |a, b| to_f32(a.powf(b)),
        _ => |a, b| to_f32(a / b),
    }
}

/// numexpr's int kernels: wrapping arithmetic, C division truncating toward zero,
/// `//` and `%` with Python's signs, and 0 for a division by zero.
fn int32(op: BinaryOp) -> fn(f64, f64) -> f64 {
    match op {
        BinaryOp::Add => |a, b| f64::from(to_i32(a).wrapping_add(to_i32(b))),
        BinaryOp::Sub => |a, b| f64::from(to_i32(a).wrapping_sub(to_i32(b))),
        BinaryOp::Mul => |a, b| f64::from(to_i32(a).wrapping_mul(to_i32(b))),
        BinaryOp::FloorDiv => |a, b| f64::from(floor_div_i32(to_i32(a), to_i32(b))),
        BinaryOp::Mod => |a, b| f64::from(mod_i32(to_i32(a), to_i32(b))),
        BinaryOp::Pow => |a, b| f64::from(pow_i32(to_i32(a), to_i32(b))),
        _ => |a, b| f64::from(div_i32(to_i32(a), to_i32(b))),
    }
}

/// numexpr's long kernels, as [`int32`] with 64 bits.
fn int64(op: BinaryOp) -> fn(f64, f64) -> f64 {
    match op {
        BinaryOp::Add => |a, b| from_i64(to_i64(a).wrapping_add(to_i64(b))),
        BinaryOp::Sub => |a, b| from_i64(to_i64(a).wrapping_sub(to_i64(b))),
        BinaryOp::Mul => |a, b| from_i64(to_i64(a).wrapping_mul(to_i64(b))),
        BinaryOp::FloorDiv => |a, b| from_i64(floor_div_i64(to_i64(a), to_i64(b))),
        BinaryOp::Mod => |a, b| from_i64(mod_i64(to_i64(a), to_i64(b))),
        BinaryOp::Pow => |a, b| from_i64(pow_i64(to_i64(a), to_i64(b))),
        _ => |a, b| from_i64(div_i64(to_i64(a), to_i64(b))),
    }
}

fn div_i32(a: i32, b: i32) -> i32 {
    if b == 0 { 0 } else { a.wrapping_div(b) }
}

fn floor_div_i32(a: i32, b: i32) -> i32 {
    if b == 0 {
        return 0;
    }
    let adjust = a.wrapping_rem(b) != 0 && (a < 0) != (b < 0);
    a.wrapping_div(b).wrapping_sub(i32::from(adjust))
}

fn mod_i32(a: i32, b: i32) -> i32 {
    if b == 0 { 0 } else { a.wrapping_rem(b).wrapping_add(b).wrapping_rem(b) }
}

/// `(int)pow((double)a, b)`: out of range gives `i32::MIN`, as on x86-64. A negative
/// exponent gives `1/a` in integers (numexpr crashes on `0` there; Tessera gives 0).
fn pow_i32(a: i32, b: i32) -> i32 {
    if b < 0 {
        return div_i32(1, a);
    }
    to_i32(f64::from(a).powf(f64::from(b)))
}

fn div_i64(a: i64, b: i64) -> i64 {
    if b == 0 { 0 } else { a.wrapping_div(b) }
}

fn floor_div_i64(a: i64, b: i64) -> i64 {
    if b == 0 {
        return 0;
    }
    let adjust = a.wrapping_rem(b) != 0 && (a < 0) != (b < 0);
    a.wrapping_div(b).wrapping_sub(i64::from(adjust))
}

fn mod_i64(a: i64, b: i64) -> i64 {
    if b == 0 { 0 } else { a.wrapping_rem(b).wrapping_add(b).wrapping_rem(b) }
}

/// `llround(pow(a, b))`, in `f64` where numexpr uses `long double` (results beyond 2⁵³
/// may differ in their last digits).
fn pow_i64(a: i64, b: i64) -> i64 {
    if b < 0 {
        return div_i64(1, a);
    }
    to_i64(from_i64(a).powf(from_i64(b)).round())
}
