//! The functions an expression may call: their names (numexpr's), arities and
//! per-pixel meaning in `f64`.

use super::parse::Kind;

/// A callable function. Names and semantics follow numexpr (numpy ufuncs), plus
/// two-argument elementwise `min`/`max` as aliases of `minimum`/`maximum` (in
/// numexpr `min`/`max` are whole-array reductions, which rio-tiler cannot use per
/// pixel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Abs,
    Sqrt,
    Exp,
    Expm1,
    Log,
    Log10,
    Log1p,
    Log2,
    Sin,
    Cos,
    Tan,
    Arcsin,
    Arccos,
    Arctan,
    Arctan2,
    Sinh,
    Cosh,
    Tanh,
    Arcsinh,
    Arccosh,
    Arctanh,
    Floor,
    Ceil,
    Round,
    Trunc,
    Sign,
    Fmod,
    Hypot,
    Copysign,
    Minimum,
    Maximum,
    Isnan,
    Isinf,
    Isfinite,
    Where,
}

/// Name, function, arity, argument names for messages.
const TABLE: [(&str, Func, &str); 37] = [
    ("abs", Func::Abs, "x"),
    ("sqrt", Func::Sqrt, "x"),
    ("exp", Func::Exp, "x"),
    ("expm1", Func::Expm1, "x"),
    ("log", Func::Log, "x"),
    ("log10", Func::Log10, "x"),
    ("log1p", Func::Log1p, "x"),
    ("log2", Func::Log2, "x"),
    ("sin", Func::Sin, "x"),
    ("cos", Func::Cos, "x"),
    ("tan", Func::Tan, "x"),
    ("arcsin", Func::Arcsin, "x"),
    ("arccos", Func::Arccos, "x"),
    ("arctan", Func::Arctan, "x"),
    ("arctan2", Func::Arctan2, "y, x"),
    ("sinh", Func::Sinh, "x"),
    ("cosh", Func::Cosh, "x"),
    ("tanh", Func::Tanh, "x"),
    ("arcsinh", Func::Arcsinh, "x"),
    ("arccosh", Func::Arccosh, "x"),
    ("arctanh", Func::Arctanh, "x"),
    ("floor", Func::Floor, "x"),
    ("ceil", Func::Ceil, "x"),
    ("round", Func::Round, "x"),
    ("trunc", Func::Trunc, "x"),
    ("sign", Func::Sign, "x"),
    ("fmod", Func::Fmod, "x, y"),
    ("hypot", Func::Hypot, "x, y"),
    ("copysign", Func::Copysign, "x, y"),
    ("minimum", Func::Minimum, "a, b"),
    ("maximum", Func::Maximum, "a, b"),
    ("min", Func::Minimum, "a, b"),
    ("max", Func::Maximum, "a, b"),
    ("isnan", Func::Isnan, "x"),
    ("isinf", Func::Isinf, "x"),
    ("isfinite", Func::Isfinite, "x"),
    ("where", Func::Where, "condition, a, b"),
];

impl Func {
    /// Looks a (lowercased) name up.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        TABLE.iter().find(|(n, _, _)| *n == name).map(|(_, f, _)| *f)
    }

    /// `name(args)` for messages, with the name as the user wrote it.
    pub(crate) fn signature(self, name: &str) -> String {
        let args = TABLE.iter().find(|(_, f, _)| *f == self).map_or("", |(_, _, a)| a);
        format!("{name}({args})")
    }

    /// Number of arguments.
    pub(crate) fn arity(self) -> usize {
        match self {
            Self::Arctan2 | Self::Fmod | Self::Hypot | Self::Copysign | Self::Minimum | Self::Maximum => 2,
            Self::Where => 3,
            _ => 1,
        }
    }

    /// Every accepted name, comma separated, for error messages.
    pub(crate) fn list() -> String {
        TABLE.iter().map(|(n, _, _)| *n).collect::<Vec<_>>().join(", ")
    }

    /// Kind of the result given the argument kinds (arity already checked).
    pub(crate) fn result_kind(self, args: &[Kind]) -> Kind {
        match self {
            Self::Isnan | Self::Isinf | Self::Isfinite => Kind::Condition,
            Self::Where if args.get(1..) == Some(&[Kind::Condition, Kind::Condition]) => Kind::Condition,
            _ => Kind::Number,
        }
    }

    /// The one-argument function as `f64 -> f64` (`None` for other arities).
    pub(crate) fn unary(self) -> Option<fn(f64) -> f64> {
        Some(match self {
            Self::Abs => f64::abs,
            Self::Sqrt => f64::sqrt,
            Self::Exp => f64::exp,
            Self::Expm1 => f64::exp_m1,
            Self::Log => f64::ln,
            Self::Log10 => f64::log10,
            Self::Log1p => f64::ln_1p,
            Self::Log2 => f64::log2,
            Self::Sin => f64::sin,
            Self::Cos => f64::cos,
            Self::Tan => f64::tan,
            Self::Arcsin => f64::asin,
            Self::Arccos => f64::acos,
            Self::Arctan => f64::atan,
            Self::Sinh => f64::sinh,
            Self::Cosh => f64::cosh,
            Self::Tanh => f64::tanh,
            Self::Arcsinh => f64::asinh,
            Self::Arccosh => f64::acosh,
            Self::Arctanh => f64::atanh,
            Self::Floor => f64::floor,
            Self::Ceil => f64::ceil,
            // numpy rounds halves to even.
            Self::Round => f64::round_ties_even,
            Self::Trunc => f64::trunc,
            Self::Sign => sign,
            Self::Isnan => |x: f64| condition(x.is_nan()),
            Self::Isinf => |x: f64| condition(x.is_infinite()),
            Self::Isfinite => |x: f64| condition(x.is_finite()),
            _ => return None,
        })
    }

    /// The two-argument function as `(f64, f64) -> f64` (`None` for other arities).
    pub(crate) fn binary(self) -> Option<fn(f64, f64) -> f64> {
        Some(match self {
            Self::Arctan2 => f64::atan2,
            // C fmod: the result has the sign of the dividend.
            Self::Fmod => |x: f64, y: f64| x % y,
            Self::Hypot => f64::hypot,
            Self::Copysign => f64::copysign,
            Self::Minimum => minimum,
            Self::Maximum => maximum,
            _ => return None,
        })
    }
}

/// numpy's sign: 0 (either sign) gives 0 and NaN stays NaN (unlike `f64::signum`).
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x.is_nan() {
        x
    } else {
        0.0
    }
}

/// numpy.minimum: NaN in either argument gives NaN.
fn minimum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// numpy.maximum: NaN in either argument gives NaN.
fn maximum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// A condition's value.
pub(crate) fn condition(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}
