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
    let [c, a, b] = args else {
        unreachable!("parser admits only functions with known arity")
    };
    select(eval(c, bands), eval(a, bands), eval(b, bands))
}

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

fn map1<'a>(x: Value<'a>, f: fn(f64) -> f64) -> Value<'a> {
    match x {
        Value::Scalar(v) => Value::Scalar(f(v)),
        Value::Borrowed(s) => Value::Owned(s.iter().map(|&v| f(v)).collect()),
        Value::Owned(mut v) => {
            v.iter_mut().for_each(|x| *x = f(*x));
            Value::Owned(v)
        }
    }
}

fn map2<'a>(a: Value<'a>, b: Value<'a>, f: fn(f64, f64) -> f64) -> Value<'a> {
    match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => Value::Scalar(f(x, y)),
        (Value::Owned(mut v), other) => {
            match other {
                Value::Scalar(y) => v.iter_mut().for_each(|x| *x = f(*x, y)),
                Value::Borrowed(s) => v.iter_mut().zip(s).for_each(|(x, &y)| *x = f(*x, y)),
                Value::Owned(w) => v.iter_mut().zip(&w).for_each(|(x, &y)| *x = f(*x, y)),
            }
            Value::Owned(v)
        }
        (other, Value::Owned(mut w)) => {
            match other {
                Value::Scalar(x) => w.iter_mut().for_each(|y| *y = f(x, *y)),
                Value::Borrowed(s) => w.iter_mut().zip(s).for_each(|(y, &x)| *y = f(x, *y)),
                Value::Owned(_) => unreachable!("matched by the arm above"),
            }
            Value::Owned(w)
        }
        (Value::Scalar(x), Value::Borrowed(s)) => Value::Owned(s.iter().map(|&y| f(x, y)).collect()),
        (Value::Borrowed(s), Value::Scalar(y)) => Value::Owned(s.iter().map(|&x| f(x, y)).collect()),
        (Value::Borrowed(s), Value::Borrowed(t)) => {
            Value::Owned(s.iter().zip(t).map(|(&x, &y)| f(x, y)).collect())
        }
    }
}

/// `where(c, a, b)`: `a` where `c` is true (non-zero), else `b`.
fn select<'a>(c: Value<'a>, a: Value<'a>, b: Value<'a>) -> Value<'a> {
    if let Value::Scalar(c) = c {
        return if c != 0.0 { a } else { b };
    }
    let pick = |i: usize, v: &Value<'_>| match v {
        Value::Scalar(x) => *x,
        Value::Borrowed(s) => s[i],
        Value::Owned(w) => w[i],
    };
    let mut out = c.into_vec(0);
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = if *slot != 0.0 { pick(i, &a) } else { pick(i, &b) };
    }
    Value::Owned(out)
}
