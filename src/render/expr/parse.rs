//! Tokens → syntax tree for one `;`-separated block: a recursive-descent parser with
//! Python's precedence levels (numexpr evaluates expressions with Python's grammar),
//! plus a two-kind type check (number / condition) done while parsing so that
//! evaluation cannot meet an ill-typed node.

use super::error::{ExprError, ExprErrorKind};
use super::func::Func;
use super::lex::{Tok, Token, describe, tokenize};
use crate::echo::quote;

/// A node of a parsed block. Conditions evaluate to 0.0 / 1.0.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// A literal. `integer` keeps Python's `int` (`2`) apart from `float` (`2.0`):
    /// numexpr types them differently (see [`super::typing`]).
    Number { value: f64, integer: bool },
    /// A 1-based band.
    Band(u32),
    /// `-x` (numbers) or `~x` (conditions).
    Unary(UnaryOp, Box<Node>),
    /// A binary operation.
    Binary(BinaryOp, Box<Node>, Box<Node>),
    /// A function call whose arity was checked.
    Call(Func, Vec<Node>),
}

/// Unary operators left after parsing (`+x` is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    /// Arithmetic negation.
    Neg,
    /// Logical not of a condition.
    Not,
}

/// Binary operators. `+` and `*` between two conditions are turned into `Or` / `And`
/// while parsing, as numexpr does for booleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    Xor,
}

/// Whether a node yields numbers or conditions (0/1). Conditions may be used as numbers
/// (they count as 0 and 1) but numbers may not be used as conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Number,
    Condition,
}

/// A band reference and where it was written, for [`super::Expression::check_bands`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BandRef {
    pub band: u32,
    pub position: usize,
}

/// Parses the block `text[start..end]` (non-blank) into a node, collecting band
/// references. Positions in errors are offsets into `text`.
pub(crate) fn parse_block(
    text: &str,
    start: usize,
    end: usize,
    max_depth: usize,
    band_refs: &mut Vec<BandRef>,
) -> Result<Node, ExprError> {
    let tokens = tokenize(text, start, end)?;
    let mut parser = Parser { tokens, next: 0, max_depth, band_refs };
    let (node, _) = parser.expression(1)?;
    let token = parser.peek();
    match token.tok {
        Tok::End => Ok(node),
        Tok::RParen => Err(ExprError::syntax(token.position, "unmatched ')': there is no '(' open here")),
        ref other => {
            let hint = match other {
                Tok::Name(name) if name == "and" || name == "or" => {
                    "; 'and' and 'or' are written '&' and '|' between parenthesised conditions"
                }
                _ => "; separate output bands with ';'",
            };
            Err(ExprError::syntax(
                token.position,
                format!(
                    "expected an operator or the end of the output band, found {}{hint}",
                    describe(other)
                ),
            ))
        }
    }
}

struct Parser<'r> {
    tokens: Vec<Token>,
    next: usize,
    max_depth: usize,
    band_refs: &'r mut Vec<BandRef>,
}

type Parsed = Result<(Node, Kind), ExprError>;

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with `End`, and `advance` never moves past it.
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.tok != Tok::End {
            self.next += 1;
        }
        token
    }

    fn peek_op(&self, ops: &[&'static str]) -> Option<(&'static str, usize)> {
        match self.peek().tok {
            Tok::Op(op) if ops.contains(&op) => Some((op, self.peek().position)),
            _ => None,
        }
    }

    /// One nesting level deeper; `position` is where the nested part starts.
    fn deeper(&self, depth: usize, position: usize) -> Result<usize, ExprError> {
        let depth = depth + 1;
        if depth > self.max_depth {
            return Err(ExprError::new(
                ExprErrorKind::Limit,
                position,
                format!(
                    "expression nested too deeply: depth {depth} exceeds the limit \
                     (max_depth) of {}",
                    self.max_depth
                ),
            ));
        }
        Ok(depth)
    }

    fn expression(&mut self, depth: usize) -> Parsed {
        self.comparison(depth)
    }

    /// Python comparisons sit below `|`; numexpr cannot evaluate chained ones.
    fn comparison(&mut self, depth: usize) -> Parsed {
        const COMPARISONS: [&str; 6] = ["<", "<=", ">", ">=", "==", "!="];
        let (lhs, lhs_kind) = self.bit_or(depth)?;
        let Some((op, position)) = self.peek_op(&COMPARISONS) else {
            return Ok((lhs, lhs_kind));
        };
        self.advance();
        let rhs_depth = self.deeper(depth, position)?;
        let (rhs, _) = self.operand(op, position, rhs_depth, Self::bit_or)?;
        if let Some((second, second_position)) = self.peek_op(&COMPARISONS) {
            return Err(ExprError::syntax(
                second_position,
                format!(
                    "chained comparisons such as 'a {op} b {second} c' are not supported: \
                     write (a {op} b) & (b {second} c)"
                ),
            ));
        }
        let op = match op {
            "<" => BinaryOp::Lt,
            "<=" => BinaryOp::Le,
            ">" => BinaryOp::Gt,
            ">=" => BinaryOp::Ge,
            "==" => BinaryOp::Eq,
            _ => BinaryOp::Ne,
        };
        Ok((binary(op, lhs, rhs), Kind::Condition))
    }

    fn bit_or(&mut self, depth: usize) -> Parsed {
        self.logical_chain(depth, "|", BinaryOp::Or, Self::bit_xor)
    }

    fn bit_xor(&mut self, depth: usize) -> Parsed {
        self.logical_chain(depth, "^", BinaryOp::Xor, Self::bit_and)
    }

    fn bit_and(&mut self, depth: usize) -> Parsed {
        self.logical_chain(depth, "&", BinaryOp::And, Self::arith)
    }

    /// `&`, `|`, `^`: both sides must be conditions (Tessera has no integer bitwise ops).
    fn logical_chain(
        &mut self,
        depth: usize,
        symbol: &'static str,
        op: BinaryOp,
        next: fn(&mut Self, usize) -> Parsed,
    ) -> Parsed {
        let (mut lhs, mut lhs_kind) = next(self, depth)?;
        while let Some((_, position)) = self.peek_op(&[symbol]) {
            self.advance();
            let rhs_depth = self.deeper(depth, position)?;
            let (rhs, rhs_kind) = self.operand(symbol, position, rhs_depth, next)?;
            for (side, kind) in [("left", lhs_kind), ("right", rhs_kind)] {
                if kind != Kind::Condition {
                    return Err(ExprError::new(
                        ExprErrorKind::Type,
                        position,
                        format!(
                            "'{symbol}' combines conditions but its {side} operand is a \
                             number; '{symbol}' binds tighter than comparisons, so write \
                             each comparison in parentheses, e.g. (b1 > 1) {symbol} (b2 < 3)"
                        ),
                    ));
                }
            }
            lhs = binary(op, lhs, rhs);
            lhs_kind = Kind::Condition;
        }
        Ok((lhs, lhs_kind))
    }

    fn arith(&mut self, depth: usize) -> Parsed {
        self.arithmetic_chain(depth, &["+", "-"], Self::term)
    }

    fn term(&mut self, depth: usize) -> Parsed {
        self.arithmetic_chain(depth, &["*", "/", "//", "%"], Self::factor)
    }

    fn arithmetic_chain(
        &mut self,
        depth: usize,
        ops: &[&'static str],
        next: fn(&mut Self, usize) -> Parsed,
    ) -> Parsed {
        let (mut lhs, mut lhs_kind) = next(self, depth)?;
        while let Some((symbol, position)) = self.peek_op(ops) {
            self.advance();
            let rhs_depth = self.deeper(depth, position)?;
            let (rhs, rhs_kind) = self.operand(symbol, position, rhs_depth, next)?;
            let (node, kind) = arithmetic(symbol, position, (lhs, lhs_kind), (rhs, rhs_kind))?;
            lhs = node;
            lhs_kind = kind;
        }
        Ok((lhs, lhs_kind))
    }

    /// Unary `-`, `+`, `~`: in Python they bind looser than `**` (`-2**2 == -4`).
    fn factor(&mut self, depth: usize) -> Parsed {
        let Some((symbol, position)) = self.peek_op(&["-", "+", "~"]) else {
            return self.power(depth);
        };
        self.advance();
        let inner_depth = self.deeper(depth, position)?;
        let (operand, kind) = self.operand(symbol, position, inner_depth, Self::factor)?;
        match (symbol, kind) {
            ("+", _) => Ok((operand, kind)),
            ("-", Kind::Number) => Ok((Node::Unary(UnaryOp::Neg, Box::new(operand)), kind)),
            ("-", Kind::Condition) => Err(ExprError::new(
                ExprErrorKind::Type,
                position,
                "cannot negate a condition with '-': use '~' for logical not",
            )),
            (_, Kind::Condition) => Ok((Node::Unary(UnaryOp::Not, Box::new(operand)), kind)),
            (_, Kind::Number) => Err(ExprError::new(
                ExprErrorKind::Type,
                position,
                "'~' negates a condition but its operand is a number; write e.g. ~(b1 > 0)",
            )),
        }
    }

    /// `**` is right-associative and its right side may carry a unary sign (`2**-1`).
    fn power(&mut self, depth: usize) -> Parsed {
        let base = self.primary(depth)?;
        let Some((_, position)) = self.peek_op(&["**"]) else {
            return Ok(base);
        };
        self.advance();
        let rhs_depth = self.deeper(depth, position)?;
        let exponent = self.operand("**", position, rhs_depth, Self::factor)?;
        arithmetic("**", position, base, exponent)
    }

    /// Parses the operand after an operator, with a clear error when it is missing.
    fn operand(
        &mut self,
        symbol: &str,
        position: usize,
        depth: usize,
        next: fn(&mut Self, usize) -> Parsed,
    ) -> Parsed {
        let token = self.peek();
        if matches!(token.tok, Tok::End | Tok::RParen | Tok::Comma)
            || matches!(token.tok, Tok::Op(op) if !matches!(op, "-" | "+" | "~"))
        {
            return Err(ExprError::syntax(
                token.position,
                format!(
                    "expected an operand after '{symbol}' at column {}, found {}",
                    position + 1,
                    describe(&token.tok)
                ),
            ));
        }
        next(self, depth)
    }

    fn primary(&mut self, depth: usize) -> Parsed {
        let token = self.advance();
        match token.tok {
            Tok::Num { value, integer } => Ok((Node::Number { value, integer }, Kind::Number)),
            Tok::LParen => {
                let inner_depth = self.deeper(depth, token.position)?;
                if matches!(self.peek().tok, Tok::RParen) {
                    return Err(ExprError::syntax(
                        self.peek().position,
                        format!("expected an expression inside '(' at column {}", token.position + 1),
                    ));
                }
                let inner = self.expression(inner_depth)?;
                self.close_paren(token.position)?;
                Ok(inner)
            }
            Tok::Name(name) => self.name(&name, token.position, depth),
            other => Err(ExprError::syntax(
                token.position,
                format!("expected a band, a number, a function call or '(', found {}", describe(&other)),
            )),
        }
    }

    fn close_paren(&mut self, open: usize) -> Result<(), ExprError> {
        let token = self.peek().clone();
        if token.tok == Tok::RParen {
            self.advance();
            return Ok(());
        }
        Err(ExprError::syntax(
            token.position,
            format!("expected ')' to close '(' at column {}, found {}", open + 1, describe(&token.tok)),
        ))
    }

    fn name(&mut self, name: &str, position: usize, depth: usize) -> Parsed {
        let called = matches!(self.peek().tok, Tok::LParen);
        if let Some(band) = band_number(name, position)? {
            if called {
                return Err(ExprError::syntax(
                    self.peek().position,
                    format!(
                        "{q} is a band, not a function; put an operator between it and '('",
                        q = quote(name)
                    ),
                ));
            }
            self.band_refs.push(BandRef { band, position });
            return Ok((Node::Band(band), Kind::Number));
        }
        match (Func::from_name(name), called) {
            (Some(func), true) => self.call(func, name, position, depth),
            (Some(func), false) => Err(ExprError::syntax(
                position,
                format!("function {} must be called: {}", quote(name), func.signature(name)),
            )),
            (None, true) => Err(ExprError::new(
                ExprErrorKind::UnknownFunction,
                position,
                format!("unknown function {}; allowed functions are {}", quote(name), Func::list()),
            )),
            (None, false) => Err(unknown_name(name, position)),
        }
    }

    fn call(&mut self, func: Func, name: &str, position: usize, depth: usize) -> Parsed {
        let open = self.advance().position;
        let arg_depth = self.deeper(depth, open)?;
        let mut args = Vec::new();
        if matches!(self.peek().tok, Tok::RParen) {
            self.advance();
        } else {
            loop {
                let arg_position = self.peek().position;
                if matches!(self.peek().tok, Tok::Comma | Tok::End) {
                    return Err(ExprError::syntax(
                        arg_position,
                        format!("expected an argument of {name}, found {}", describe(&self.peek().tok)),
                    ));
                }
                let (arg, kind) = self.expression(arg_depth)?;
                args.push((arg, kind, arg_position));
                if matches!(self.peek().tok, Tok::Comma) {
                    self.advance();
                    continue;
                }
                self.close_paren(open)?;
                break;
            }
        }
        if args.len() != func.arity() {
            return Err(ExprError::new(
                ExprErrorKind::Arity,
                position,
                format!(
                    "{name} takes {} argument{} ({}), got {}",
                    func.arity(),
                    if func.arity() == 1 { "" } else { "s" },
                    func.signature(name),
                    args.len()
                ),
            ));
        }
        let kind = func.result_kind(&args.iter().map(|(_, k, _)| *k).collect::<Vec<_>>());
        if func == Func::Where && args[0].1 != Kind::Condition {
            return Err(ExprError::new(
                ExprErrorKind::Type,
                args[0].2,
                "the first argument of where must be a condition, e.g. where(b1 > 0, b1, 0)",
            ));
        }
        Ok((Node::Call(func, args.into_iter().map(|(node, _, _)| node).collect()), kind))
    }
}

fn binary(op: BinaryOp, lhs: Node, rhs: Node) -> Node {
    Node::Binary(op, Box::new(lhs), Box::new(rhs))
}

/// Arithmetic between two operands with numexpr's boolean rules: `+`/`*` of two
/// conditions are logical or/and; `-`, `//`, `%`, `**` of two conditions are refused
/// (numexpr has no such operation); `/` of two conditions divides their 0/1 values.
fn arithmetic(
    symbol: &str,
    position: usize,
    (lhs, lhs_kind): (Node, Kind),
    (rhs, rhs_kind): (Node, Kind),
) -> Parsed {
    let both_conditions = lhs_kind == Kind::Condition && rhs_kind == Kind::Condition;
    let op = match (symbol, both_conditions) {
        ("+", true) => return Ok((binary(BinaryOp::Or, lhs, rhs), Kind::Condition)),
        ("*", true) => return Ok((binary(BinaryOp::And, lhs, rhs), Kind::Condition)),
        ("/", _) => BinaryOp::Div,
        (_, true) => {
            return Err(ExprError::new(
                ExprErrorKind::Type,
                position,
                format!(
                    "'{symbol}' needs a number on at least one side, but both sides are \
                     conditions; use where(cond, a, b) to turn a condition into numbers"
                ),
            ));
        }
        ("+", false) => BinaryOp::Add,
        ("-", false) => BinaryOp::Sub,
        ("*", false) => BinaryOp::Mul,
        ("//", false) => BinaryOp::FloorDiv,
        ("%", false) => BinaryOp::Mod,
        _ => BinaryOp::Pow,
    };
    Ok((binary(op, lhs, rhs), Kind::Number))
}

/// `Some(n)` for a band name `b<n>`; an error for malformed band names (`b`, `b0`,
/// `b01`, a number beyond `u32`); `None` for any other name.
fn band_number(name: &str, position: usize) -> Result<Option<u32>, ExprError> {
    let Some(digits) = name.strip_prefix('b') else {
        return Ok(None);
    };
    if digits.is_empty() {
        return Err(ExprError::new(
            ExprErrorKind::UnknownName,
            position,
            "'b' needs a band number: bands are b1, b2, …",
        ));
    }
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Ok(None);
    }
    if digits.starts_with('0') {
        let hint = digits.trim_start_matches('0');
        let message = if hint.is_empty() {
            format!("there is no band {q}: bands are numbered from 1 (b1, b2, …)", q = quote(name))
        } else {
            format!("band {q} has a leading zero: write b{hint}", q = quote(name))
        };
        return Err(ExprError::new(ExprErrorKind::UnknownName, position, message));
    }
    digits.parse::<u32>().map(Some).map_err(|_| {
        ExprError::new(
            ExprErrorKind::UnknownName,
            position,
            format!("band number in {q} is too large", q = quote(name)),
        )
    })
}

fn unknown_name(name: &str, position: usize) -> ExprError {
    let hint = match name {
        "and" | "or" | "not" => {
            " ('and', 'or' and 'not' are written '&', '|' and '~' between parenthesised \
             conditions)"
        }
        "true" | "false" => " (there are no boolean constants; use 1 and 0)",
        _ => "",
    };
    ExprError::new(
        ExprErrorKind::UnknownName,
        position,
        format!(
            "unknown name {q}{hint}: bands are b1, b2, …; functions are called with parentheses",
            q = quote(name)
        ),
    )
}
