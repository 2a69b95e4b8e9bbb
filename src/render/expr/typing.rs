//! The static type pass: the dtype numexpr gives every node of a block, for bands of a
//! given type, as a [`Typed`] tree that evaluation follows.
//!
//! numexpr builds its tree by running the text as Python over placeholder objects, so:
//!
//! - Sub-expressions made only of literals are computed by Python first: `2*3` is the
//!   `int` 6, `1/2` the `float` 0.5, `1<2` the `bool` `True`; a function of literals is
//!   a numpy scalar (`abs(-2)` is an `int64`, `sqrt(4)` a `float64`). An `int` literal
//!   is `int32` when it fits, `int64` otherwise; a `float` is `float64`.
//! - Every other node takes the higher-ranked type of its operands
//!   ([`ExprDtype::common`]), with these exceptions: `/` of integers is `float64`;
//!   comparisons, `&`, `|`, `^`, `~` and `isnan`/`isinf`/`isfinite` are `bool`;
//!   functions of integers are `float64` except `round` and `sign`; functions otherwise
//!   have a minimum type, `float32` (most) or `float64` (`hypot`, `copysign`,
//!   `minimum`, `maximum`, `round`, `trunc`, `sign`, `isnan`, `isinf`, `isfinite`), and
//!   `floor`/`ceil` a maximum of `float64`.
//! - `x ** c` with a constant `c` that is a multiple of 0.5 within ±50 is expanded
//!   (numexpr's default "aggressive" optimisation) into multiplications of `x` in `x`'s
//!   type, times `sqrt(x)` for a half, and `1/…` for a negative `c`: `b1**2` stays
//!   `int32` on `uint8` bands and `float32` on `float32` bands, `b1**0.5` is `sqrt(b1)`.

use super::dtype::ExprDtype;
use super::func::Func;
use super::parse::{BinaryOp, Node, UnaryOp};

/// A node with its dtype.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Typed {
    /// The dtype of the node's values.
    pub dtype: ExprDtype,
    /// What computes them.
    pub node: TypedNode,
}

/// A node of a typed block. Operands whose dtype differs from `compute` are converted to
/// it first (which changes values only from an integer type to `float32`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TypedNode {
    /// A constant, already in the node's dtype.
    Constant(f64),
    /// A 1-based band.
    Band(u32),
    /// Arithmetic negation in the node's dtype.
    Neg(Box<Typed>),
    /// Logical not.
    Not(Box<Typed>),
    /// A binary operation computed in `compute` (the node's dtype, except for
    /// comparisons, whose dtype is `bool`).
    Binary { op: BinaryOp, compute: ExprDtype, lhs: Box<Typed>, rhs: Box<Typed> },
    /// `base ** c` for a constant `c` expanded into multiplications.
    Power { base: Box<Typed>, chain: PowerChain },
    /// A function computed in `compute`, with the result in the node's dtype.
    Call { func: Func, compute: ExprDtype, args: Vec<Typed> },
    /// `where(cond, a, b)` in the node's dtype.
    Where(Box<[Typed; 3]>),
}

/// numexpr's expansion of `x ** c`: `x` multiplied `count` times by binary
/// exponentiation in `x`'s dtype, then times `sqrt(x)` if `c` has a half, then
/// `1 / …` if `c` is negative; `count == 0` without a half is `1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PowerChain {
    /// `|c|` without its half.
    pub count: u32,
    /// The dtype of `sqrt(x)` when `c` has a half.
    pub sqrt: Option<ExprDtype>,
    /// The dtype of the product with `sqrt(x)` (the chain's dtype before `1/…`).
    pub product: ExprDtype,
    /// The dtype of `1/…` when `c` is negative.
    pub reciprocal: Option<ExprDtype>,
}

/// Largest `|c|` numexpr expands into multiplications.
const MAX_EXPANDED_POWER: f64 = 50.0;

/// Python's type for a literal sub-expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `bool`.
    Bool,
    /// Python `int` (any size).
    Int,
    /// `numpy.int64`, from a numpy function of `int`s.
    NumpyInt64,
    /// Python `float` or `numpy.float64`.
    Float,
}

/// A sub-expression Python computes before numexpr sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Constant {
    value: f64,
    class: Class,
}

impl Constant {
    fn dtype(self) -> ExprDtype {
        match self.class {
            Class::Bool => ExprDtype::Bool,
            Class::Int if (-2_147_483_648.0..=2_147_483_647.0).contains(&self.value) => ExprDtype::Int32,
            Class::Int | Class::NumpyInt64 => ExprDtype::Int64,
            Class::Float => ExprDtype::Float64,
        }
    }

    fn into_typed(self) -> Typed {
        // Python's literals are integral for the integer classes and 0/1 for `bool`.
        Typed { dtype: self.dtype(), node: TypedNode::Constant(self.value) }
    }

    fn is_integral(self) -> bool {
        self.class != Class::Float
    }
}

/// A node after typing: still a constant, or computed over the tile.
enum Annotated {
    Constant(Constant),
    Typed(Typed),
}

impl Annotated {
    fn into_typed(self) -> Typed {
        match self {
            Self::Constant(constant) => constant.into_typed(),
            Self::Typed(typed) => typed,
        }
    }

    fn dtype(&self) -> ExprDtype {
        match self {
            Self::Constant(constant) => constant.dtype(),
            Self::Typed(typed) => typed.dtype,
        }
    }
}

/// Types `node` for bands of dtype `band` (see [`ExprDtype::of_band`]).
pub(crate) fn annotate(node: &Node, band: ExprDtype) -> Typed {
    annotate_node(node, band).into_typed()
}

fn annotate_node(node: &Node, band: ExprDtype) -> Annotated {
    match node {
        Node::Number { value, integer } => Annotated::Constant(Constant {
            value: *value,
            class: if *integer { Class::Int } else { Class::Float },
        }),
        Node::Band(b) => Annotated::Typed(Typed { dtype: band, node: TypedNode::Band(*b) }),
        Node::Unary(op, operand) => match (annotate_node(operand, band), op) {
            (Annotated::Constant(c), UnaryOp::Neg) => {
                let class = if c.class == Class::Bool { Class::Int } else { c.class };
                Annotated::Constant(Constant { value: -c.value, class })
            }
            (Annotated::Constant(c), UnaryOp::Not) => Annotated::Constant(Constant {
                value: super::func::condition(c.value == 0.0),
                class: Class::Bool,
            }),
            (Annotated::Typed(t), UnaryOp::Neg) => {
                Annotated::Typed(Typed { dtype: t.dtype, node: TypedNode::Neg(Box::new(t)) })
            }
            (Annotated::Typed(t), UnaryOp::Not) => {
                Annotated::Typed(Typed { dtype: ExprDtype::Bool, node: TypedNode::Not(Box::new(t)) })
            }
        },
        Node::Binary(op, lhs, rhs) => binary(*op, annotate_node(lhs, band), annotate_node(rhs, band)),
        Node::Call(func, args) => call(*func, args, band),
    }
}

fn binary(op: BinaryOp, lhs: Annotated, rhs: Annotated) -> Annotated {
    match (&lhs, &rhs) {
        (Annotated::Constant(a), Annotated::Constant(b)) => {
            return Annotated::Constant(fold_binary(op, *a, *b));
        }
        (Annotated::Typed(base), Annotated::Constant(exponent)) if op == BinaryOp::Pow => {
            if let Some(chain) = expansion(base.dtype, *exponent) {
                let dtype = chain.reciprocal.unwrap_or(chain.product);
                let node = TypedNode::Power { base: Box::new(lhs.into_typed()), chain };
                return Annotated::Typed(Typed { dtype, node });
            }
        }
        _ => {}
    }
    let common = lhs.dtype().common(rhs.dtype());
    let (dtype, compute) = match op {
        BinaryOp::Div if common <= ExprDtype::Int64 => (ExprDtype::Float64, ExprDtype::Float64),
        // numexpr has no ordering kernel for booleans; they are compared as int32.
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            (ExprDtype::Bool, common.max(ExprDtype::Int32))
        }
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => {
            (ExprDtype::Bool, common)
        }
        _ => (common, common),
    };
    let node =
        TypedNode::Binary { op, compute, lhs: Box::new(lhs.into_typed()), rhs: Box::new(rhs.into_typed()) };
    Annotated::Typed(Typed { dtype, node })
}

/// numexpr's expansion of `x ** c` for `x` of dtype `base`, if `c` qualifies: a
/// multiple of 0.5 with `|c| <= 50`.
///
/// numexpr refuses an integer `x` to a negative integer constant (`b1**-1` on integer
/// bands); Tessera computes it as `b1**-1.0`, `1/b1` in `float64`.
fn expansion(base: ExprDtype, exponent: Constant) -> Option<PowerChain> {
    let c = exponent.value;
    let twice = 2.0 * c;
    if twice.fract() != 0.0 || c.abs() > MAX_EXPANDED_POWER {
        return None;
    }
    // |c| <= 50, so both conversions are exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (count, half) = (c.abs().trunc() as u32, twice.abs() as u32 % 2 == 1);
    let sqrt = half.then(|| if base <= ExprDtype::Int64 { ExprDtype::Float64 } else { base });
    let product = match sqrt {
        Some(s) if count == 0 => s,
        Some(s) => base.common(s),
        None => base,
    };
    let reciprocal = (c < 0.0).then(|| {
        let quotient = ExprDtype::Int32.common(product);
        if quotient <= ExprDtype::Int64 { ExprDtype::Float64 } else { quotient }
    });
    Some(PowerChain { count, sqrt, product, reciprocal })
}

/// Python's arithmetic on two literal sub-expressions. Values are computed in `f64`
/// (Python's `int`s are exact up to 2⁵³).
fn fold_binary(op: BinaryOp, a: Constant, b: Constant) -> Constant {
    let value = super::kernels::binary(op, ExprDtype::Float64)(a.value, b.value);
    let integral = a.is_integral() && b.is_integral();
    let class = match op {
        BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Xor => Class::Bool,
        BinaryOp::Div => Class::Float,
        BinaryOp::Pow if integral && b.value < 0.0 => Class::Float,
        _ if !integral => Class::Float,
        _ if a.class == Class::NumpyInt64 || b.class == Class::NumpyInt64 => Class::NumpyInt64,
        _ => Class::Int,
    };
    Constant { value, class }
}

fn call(func: Func, args: &[Node], band: ExprDtype) -> Annotated {
    let args: Vec<Annotated> = args.iter().map(|arg| annotate_node(arg, band)).collect();
    if func == Func::Where {
        return select(args);
    }
    let constants: Option<Vec<Constant>> = args
        .iter()
        .map(|arg| match arg {
            Annotated::Constant(c) => Some(*c),
            Annotated::Typed(_) => None,
        })
        .collect();
    if let Some(constants) = constants {
        return Annotated::Constant(fold_call(func, &constants));
    }
    let common = args.iter().map(Annotated::dtype).fold(ExprDtype::Bool, ExprDtype::common);
    let compute = if common.is_integer() {
        if matches!(func, Func::Round | Func::Sign) { common } else { ExprDtype::Float64 }
    } else {
        common.max(minimum_dtype(func))
    };
    let dtype =
        if matches!(func, Func::Isnan | Func::Isinf | Func::Isfinite) { ExprDtype::Bool } else { compute };
    let args = args.into_iter().map(Annotated::into_typed).collect();
    Annotated::Typed(Typed { dtype, node: TypedNode::Call { func, compute, args } })
}

/// `where`: a literal condition picks its branch (as numexpr does); otherwise the
/// common dtype of the three arguments.
fn select(args: Vec<Annotated>) -> Annotated {
    let Ok([cond, if_true, if_false]) = <[Annotated; 3]>::try_from(args) else {
        unreachable!("the parser checked that where has three arguments")
    };
    if let Annotated::Constant(c) = cond {
        return if c.value == 0.0 { if_false } else { if_true };
    }
    let dtype = cond.dtype().common(if_true.dtype()).common(if_false.dtype());
    let args = [cond.into_typed(), if_true.into_typed(), if_false.into_typed()];
    Annotated::Typed(Typed { dtype, node: TypedNode::Where(Box::new(args)) })
}

/// numexpr's minimum computation dtype of a function of non-integers (`floor` and
/// `ceil` also have a maximum, `float64`, which is the highest dtype anyway).
fn minimum_dtype(func: Func) -> ExprDtype {
    match func {
        Func::Hypot
        | Func::Copysign
        | Func::Minimum
        | Func::Maximum
        | Func::Round
        | Func::Trunc
        | Func::Sign
        | Func::Isnan
        | Func::Isinf
        | Func::Isfinite => ExprDtype::Float64,
        _ => ExprDtype::Float32,
    }
}

/// A numpy function of literals: a numpy scalar. Functions that keep integers integral
/// in numpy give `int64`; the others `float64`, or `bool` for the `is…` tests.
fn fold_call(func: Func, args: &[Constant]) -> Constant {
    let value = match (func.unary(), func.binary(), args) {
        (Some(f), _, [x]) => f(x.value),
        (_, Some(f), [x, y]) => f(x.value, y.value),
        _ => unreachable!("the parser checked the arity and where is handled apart"),
    };
    let integral = args.iter().all(|c| c.is_integral());
    let class = match func {
        Func::Isnan | Func::Isinf | Func::Isfinite => Class::Bool,
        Func::Abs
        | Func::Floor
        | Func::Ceil
        | Func::Round
        | Func::Trunc
        | Func::Sign
        | Func::Fmod
        | Func::Minimum
        | Func::Maximum
            if integral =>
        {
            Class::NumpyInt64
        }
        _ => Class::Float,
    };
    Constant { value, class }
}
