//! Vectorised evaluation of a [`Typed`] block: each node is computed over the whole
//! tile at once, into a fresh or reused buffer, never pixel by pixel through the tree,
//! with the kernel of the node's dtype (see [`super::kernels`]). Constant sub-trees stay
//! scalars, so `2**0.5*b1` multiplies one slice by one number.

use super::dtype::{ExprDtype, to_f32};
use super::func::{Func, condition};
use super::kernels;
use super::parse::BinaryOp;
use super::typing::{PowerChain, Typed, TypedNode};

/// An intermediate result: a scalar, a borrowed input band, or an owned buffer that
/// later operations may overwrite in place.
enum Value<'a> {
    Scalar(f64),
    Borrowed(&'a [f64]),
    Owned(Vec<f64>),
}

impl Value<'_> {
    /// The value as one slice of `pixels` values.
    fn into_vec(self, pixels: usize) -> Vec<f64> {
        match self {
            Value::Scalar(v) => vec![v; pixels],
            Value::Borrowed(s) => s.to_vec(),
            Value::Owned(v) => v,
        }
    }
}

/// Evaluates the block `typed` into an output band of `pixels` values in its dtype;
/// every band it references is in `bands` with `pixels` values (checked by the caller).
/// rio-tiler applies `numpy.nan_to_num` to every block, in the block's dtype.
pub(crate) fn evaluate_block(typed: &Typed, bands: &[&[f64]], pixels: usize) -> Vec<f64> {
    let mut out = eval(typed, bands).into_vec(pixels);
    if matches!(typed.dtype, ExprDtype::Float32 | ExprDtype::Float64) {
        for value in &mut out {
            *value = typed.dtype.nan_to_num(*value);
        }
    }
    out
}

fn eval<'a>(typed: &Typed, bands: &[&'a [f64]]) -> Value<'a> {
    match &typed.node {
        TypedNode::Constant(value) => Value::Scalar(*value),
        TypedNode::Band(b) => Value::Borrowed(bands[*b as usize - 1]),
        TypedNode::Neg(operand) => map1(eval(operand, bands), kernels::neg(operand.dtype)),
        TypedNode::Not(operand) => map1(eval(operand, bands), |x| condition(x == 0.0)),
        TypedNode::Binary { op, compute, lhs, rhs } => {
            map2(operand(lhs, *compute, bands), operand(rhs, *compute, bands), kernels::binary(*op, *compute))
        }
        TypedNode::Power { base, chain } => power(eval(base, bands), base.dtype, *chain),
        TypedNode::Call { func, compute, args } => call(*func, *compute, typed.dtype, args, bands),
        TypedNode::Where(args) => {
            let [cond, if_true, if_false] = &**args;
            select(
                eval(cond, bands),
                operand(if_true, typed.dtype, bands),
                operand(if_false, typed.dtype, bands),
            )
        }
    }
}

/// `typed` evaluated and converted to `compute`: only an integer converted to `float32`
/// changes (it is rounded); every other conversion numexpr makes is exact in `f64`.
fn operand<'a>(typed: &Typed, compute: ExprDtype, bands: &[&'a [f64]]) -> Value<'a> {
    let value = eval(typed, bands);
    if compute == ExprDtype::Float32 && typed.dtype.is_integer() { map1(value, to_f32) } else { value }
}

/// A function computed in `f64` on operands converted to `compute`, rounded to `f32`
/// when the result is `float32` (numexpr calls the C `float` function there, which may
/// differ in the last bit for transcendental functions).
fn call<'a>(
    func: Func,
    compute: ExprDtype,
    result: ExprDtype,
    args: &[Typed],
    bands: &[&'a [f64]],
) -> Value<'a> {
    let round = result == ExprDtype::Float32;
    if let (Some(f), [x]) = (func.unary(), args) {
        let x = operand(x, compute, bands);
        return if round { map1(x, move |v| to_f32(f(v))) } else { map1(x, f) };
    }
    let (Some(f), [a, b]) = (func.binary(), args) else {
        unreachable!("where is typed apart and the parser checked the arity")
    };
    let (a, b) = (operand(a, compute, bands), operand(b, compute, bands));
    if round { map2(a, b, move |x, y| to_f32(f(x, y))) } else { map2(a, b, f) }
}

/// `x ** c` as numexpr expands it (see [`PowerChain`]): binary exponentiation by
/// repeated multiplication in `x`'s dtype (so `int32` powers wrap), then `* sqrt(x)`,
/// then `1 / …`.
fn power(base: Value<'_>, dtype: ExprDtype, chain: PowerChain) -> Value<'_> {
    let mul = kernels::binary(BinaryOp::Mul, dtype);
    let product_mul = kernels::binary(BinaryOp::Mul, chain.product);
    let reciprocal = chain.reciprocal.map(|quotient| kernels::binary(BinaryOp::Div, quotient));
    map1(base, move |x| {
        let mut result: Option<f64> = None;
        let mut square = x;
        let mut bit = 1;
        loop {
            if chain.count & bit != 0 {
                result = Some(result.map_or(square, |r| mul(r, square)));
            }
            bit <<= 1;
            if bit > chain.count {
                break;
            }
            square = mul(square, square);
        }
        if let Some(sqrt) = chain.sqrt {
            let root = if sqrt == ExprDtype::Float32 { to_f32(x.sqrt()) } else { x.sqrt() };
            result = Some(result.map_or(root, |r| product_mul(r, root)));
        }
        // `x ** 0` is numexpr's `ones_like(x)`.
        let result = result.unwrap_or(1.0);
        reciprocal.map_or(result, |div| div(1.0, result))
    })
}

/// A read-only look at a [`Value`].
#[derive(Clone, Copy)]
enum View<'v> {
    Scalar(f64),
    Slice(&'v [f64]),
}

impl View<'_> {
    fn at(self, index: usize) -> f64 {
        match self {
            View::Scalar(value) => value,
            View::Slice(values) => values[index],
        }
    }
}

impl Value<'_> {
    fn view(&self) -> View<'_> {
        match self {
            Value::Scalar(value) => View::Scalar(*value),
            Value::Borrowed(values) => View::Slice(values),
            Value::Owned(values) => View::Slice(values),
        }
    }

    fn len(&self) -> Option<usize> {
        match self {
            Value::Scalar(_) => None,
            Value::Borrowed(values) => Some(values.len()),
            Value::Owned(values) => Some(values.len()),
        }
    }
}

fn map1(operand: Value<'_>, op: impl Fn(f64) -> f64) -> Value<'_> {
    match operand {
        Value::Scalar(value) => Value::Scalar(op(value)),
        Value::Borrowed(values) => Value::Owned(values.iter().map(|&value| op(value)).collect()),
        Value::Owned(mut values) => {
            for value in &mut values {
                *value = op(*value);
            }
            Value::Owned(values)
        }
    }
}

/// `out[i] = op(out[i], other[i])`.
fn combine_into(out: &mut [f64], other: View<'_>, op: impl Fn(f64, f64) -> f64) {
    match other {
        View::Scalar(value) => {
            for slot in out {
                *slot = op(*slot, value);
            }
        }
        View::Slice(values) => {
            for (slot, &value) in out.iter_mut().zip(values) {
                *slot = op(*slot, value);
            }
        }
    }
}

/// Applies `op` pixel by pixel, writing into an owned operand's buffer when there is one.
fn map2<'a>(lhs: Value<'a>, rhs: Value<'a>, op: impl Fn(f64, f64) -> f64) -> Value<'a> {
    match (lhs, rhs) {
        (Value::Scalar(left), Value::Scalar(right)) => Value::Scalar(op(left, right)),
        (Value::Owned(mut out), rhs) => {
            combine_into(&mut out, rhs.view(), &op);
            Value::Owned(out)
        }
        (lhs, Value::Owned(mut out)) => {
            combine_into(&mut out, lhs.view(), |right, left| op(left, right));
            Value::Owned(out)
        }
        (lhs, rhs) => {
            let pixels = lhs.len().or(rhs.len()).unwrap_or(0);
            let mut out = lhs.into_vec(pixels);
            combine_into(&mut out, rhs.view(), &op);
            Value::Owned(out)
        }
    }
}

/// `where(cond, a, b)`: `a` where `cond` is true (non-zero), else `b`.
fn select<'a>(cond: Value<'a>, if_true: Value<'a>, if_false: Value<'a>) -> Value<'a> {
    if let Value::Scalar(cond) = cond {
        return if cond == 0.0 { if_false } else { if_true };
    }
    let (if_true, if_false) = (if_true.view(), if_false.view());
    let mut out = cond.into_vec(0);
    for (index, slot) in out.iter_mut().enumerate() {
        *slot = if *slot == 0.0 { if_false.at(index) } else { if_true.at(index) };
    }
    Value::Owned(out)
}
