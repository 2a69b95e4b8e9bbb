//! Errors of the expression engine: one for text that cannot become an [`Expression`]
//! (it points at the offending byte), one for inputs that do not fit a parsed
//! expression at evaluation time (a caller bug, not a request error).
//!
//! [`Expression`]: super::Expression

/// What kind of mistake an [`ExprError`] reports, for callers that classify errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExprErrorKind {
    /// The text is not a well-formed expression (stray character, missing operand,
    /// unbalanced parenthesis, empty block, chained comparison, …).
    Syntax,
    /// A name that is neither a band (`b1`, `b2`, …) nor a function.
    UnknownName,
    /// A call to a function Tessera does not provide.
    UnknownFunction,
    /// A function called with the wrong number of arguments.
    Arity,
    /// An operand of the wrong kind: a number where a condition is needed (`&`, `|`,
    /// `^`, `~`, the first argument of `where`) or a condition where a number is needed.
    Type,
    /// One of the [`ExprLimits`](super::ExprLimits) was exceeded.
    Limit,
    /// A band reference beyond the bands the asset has (see
    /// [`Expression::check_bands`](super::Expression::check_bands)).
    BandOutOfRange,
}

/// Why a band-math expression was rejected, and where.
///
/// `position` is the 0-based byte offset in the whole original text (blocks after a
/// `;` keep their offset in the full string). The `Display` form is
/// `at column N (1-based): message`; every byte before an error position is ASCII
/// (the parser stops at the first other character), so columns count characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {} (1-based): {message}", .position + 1)]
#[non_exhaustive]
pub struct ExprError {
    /// 0-based byte offset of the offending spot in the original text.
    pub position: usize,
    /// What was wrong and what is allowed instead.
    pub message: String,
    /// The class of mistake.
    pub kind: ExprErrorKind,
}

impl ExprError {
    pub(crate) fn new(kind: ExprErrorKind, position: usize, message: impl Into<String>) -> Self {
        Self { position, message: message.into(), kind }
    }

    pub(crate) fn syntax(position: usize, message: impl Into<String>) -> Self {
        Self::new(ExprErrorKind::Syntax, position, message)
    }
}

/// The inputs handed to [`Expression::evaluate`](super::Expression::evaluate) do not
/// match the expression. Never caused by request text once
/// [`Expression::check_bands`](super::Expression::check_bands) passed: it signals a
/// caller bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The expression reads band `band` but only `available` band slices were given.
    #[error("expression reads band b{band} but only {available} bands were given")]
    MissingBand {
        /// 1-based band the expression references.
        band: u32,
        /// How many band slices were passed.
        available: usize,
    },
    /// Per-band masks were given but none for a band the expression reads.
    #[error("expression reads band b{band} but only {available} band masks were given")]
    MissingMask {
        /// 1-based band the expression references.
        band: u32,
        /// How many masks were passed.
        available: usize,
    },
    /// A band or mask slice has a different pixel count from the first band read.
    #[error("{what} has {len} pixels, expected {expected}")]
    LengthMismatch {
        /// Which input, e.g. `band b2` or `mask of band b2`.
        what: String,
        /// Its length.
        len: usize,
        /// The pixel count of the first band read.
        expected: usize,
    },
}
