//! Vectorised evaluation: each node is computed over the whole tile at once, into a
//! fresh or reused buffer, never pixel by pixel through the tree. Constant sub-trees
//! stay scalars, so `2**0.5*b1` multiplies one slice by one number.

use super::func::{Func, condition};
use super::parse::{BinaryOp, Node, UnaryOp};

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

/// Evaluates `node` into an output band of `pixels` values; every band it references
/// is in `bands` with `pixels` values (checked by the caller).
pub(crate) fn evaluate_node(node: &Node, bands: &[&[f64]], pixels: usize) -> Vec<f64> {
    finish(eval(node, bands), pixels)
}

/// rio-tiler applies `numpy.nan_to_num` to every output band: NaN becomes 0 and
/// ±infinity the largest finite value of the (here `f64`) type.
fn finish(value: Value<'_>, pixels: usize) -> Vec<f64> {
    let mut out = value.into_vec(pixels);
    for v in &mut out {
        if v.is_nan() {
            *v = 0.0;
        } else if *v == f64::INFINITY {
            *v = f64::MAX;
        } else if *v == f64::NEG_INFINITY {
            *v = f64::MIN;
        }
    }
    out
}

fn eval<'a>(node: &Node, bands: &[&'a [f64]]) -> Value<'a> {
    match node {
        Node::Number(v) => Value::Scalar(*v),
        Node::Band(b) => Value::Borrowed(bands[*b as usize - 1]),
        Node::Unary(op, operand) => {
            let f: fn(f64) -> f64 = match op {
                UnaryOp::Neg => |x| -x,
                UnaryOp::Not => |x| condition(x == 0.0),
            };
            map1(eval(operand, bands), f)
        }
        Node::Binary(op, lhs, rhs) => map2(eval(lhs, bands), eval(rhs, bands), binary_fn(*op)),
        Node::Call(func, args) => call(*func, args, bands),
    }
}

fn call<'a>(func: Func, args: &[Node], bands: &[&'a [f64]]) -> Value<'a> {
    if let (Some(f), [x]) = (func.unary(), args) {
        return map1(eval(x, bands), f);
    }
    if let (Some(f), [a, b]) = (func.binary(), args) {
        return map2(eval(a, bands), eval(b, bands), f);
    }
    // `where` is the only three-argument function; the parser checked the arity.
    let [c, a, b] = args else { unreachable!("parser admits only functions with known arity") };
    select(eval(c, bands), eval(a, bands), eval(b, bands))
}

// `==` and `!=` compare exactly, as numpy does; a tolerance would change results.
#[allow(clippy::float_cmp)]
fn binary_fn(op: BinaryOp) -> fn(f64, f64) -> f64 {
    match op {
        BinaryOp::Add => |a, b| a + b,
        BinaryOp::Sub => |a, b| a - b,
        BinaryOp::Mul => |a, b| a * b,
        BinaryOp::Div => |a, b| a / b,
        // numexpr's double kernels: floor(a/b) and a - floor(a/b)*b (Python's sign
        // convention; division by zero gives ±inf and NaN).
        BinaryOp::FloorDiv => |a, b| (a / b).floor(),
        BinaryOp::Mod => |a, b| a - (a / b).floor() * b,
        BinaryOp::Pow => f64::powf,
        BinaryOp::Lt => |a, b| condition(a < b),
        BinaryOp::Le => |a, b| condition(a <= b),
        BinaryOp::Gt => |a, b| condition(a > b),
        BinaryOp::Ge => |a, b| condition(a >= b),
        BinaryOp::Eq => |a, b| condition(a == b),
        BinaryOp::Ne => |a, b| condition(a != b),
        BinaryOp::And => |a, b| condition(a != 0.0 && b != 0.0),
        BinaryOp::Or => |a, b| condition(a != 0.0 || b != 0.0),
        BinaryOp::Xor => |a, b| condition((a != 0.0) != (b != 0.0)),
    }
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

fn map1(operand: Value<'_>, op: fn(f64) -> f64) -> Value<'_> {
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
fn map2<'a>(lhs: Value<'a>, rhs: Value<'a>, op: fn(f64, f64) -> f64) -> Value<'a> {
    match (lhs, rhs) {
        (Value::Scalar(left), Value::Scalar(right)) => Value::Scalar(op(left, right)),
        (Value::Owned(mut out), rhs) => {
            combine_into(&mut out, rhs.view(), op);
            Value::Owned(out)
        }
        (lhs, Value::Owned(mut out)) => {
            combine_into(&mut out, lhs.view(), |right, left| op(left, right));
            Value::Owned(out)
        }
        (lhs, rhs) => {
            let pixels = lhs.len().or(rhs.len()).unwrap_or(0);
            let mut out = lhs.into_vec(pixels);
            combine_into(&mut out, rhs.view(), op);
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
