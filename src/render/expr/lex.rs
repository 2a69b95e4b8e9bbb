//! Tokenizer for one block: numbers, names (lowercased, as rio-tiler lowercases the
//! whole expression), operators and punctuation, each with its byte position in the
//! original text.

use super::error::ExprError;
use crate::echo::{number, quote};

/// A token's meaning.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A number; `integer` when written without `.` or exponent (a Python `int`).
    Num {
        value: f64,
        integer: bool,
    },
    Name(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    End,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub position: usize,
}

/// Operators, longest first so that `**` wins over `*`.
const OPERATORS: [&str; 17] =
    ["**", "//", "<=", ">=", "==", "!=", "+", "-", "*", "/", "%", "<", ">", "&", "|", "^", "~"];

const ALLOWED_CHARACTERS: &str = "bands (b1, b2, …), numbers, functions, parentheses, ',' \
     and the operators + - * / // % ** < <= > >= == != & | ^ ~";

/// Splits `text[start..end]` into tokens, ending with [`Tok::End`] at `end`.
pub(crate) fn tokenize(text: &str, start: usize, end: usize) -> Result<Vec<Token>, ExprError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = start;
    while i < end {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let position = i;
        let tok = if c.is_ascii_digit()
            || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) && i + 1 < end)
        {
            let (value, next) = lex_number(text, i, end)?;
            let integer = text.as_bytes()[i..next].iter().all(u8::is_ascii_digit);
            i = next;
            Tok::Num { value, integer }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let mut j = i;
            while j < end && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            i = j;
            // rio-tiler lowercases the whole expression: `B1` and `SQRT` are accepted.
            Tok::Name(text[position..j].to_ascii_lowercase())
        } else if c == b'(' {
            i += 1;
            Tok::LParen
        } else if c == b')' {
            i += 1;
            Tok::RParen
        } else if c == b',' {
            i += 1;
            Tok::Comma
        } else if let Some(op) = OPERATORS.iter().find(|op| text[i..end].starts_with(**op)) {
            i += op.len();
            Tok::Op(op)
        } else {
            return Err(stray_character(text, position));
        };
        tokens.push(Token { tok, position });
    }
    tokens.push(Token { tok: Tok::End, position: end });
    Ok(tokens)
}

fn stray_character(text: &str, position: usize) -> ExprError {
    let ch = text[position..].chars().next().unwrap_or('?');
    let hint = match ch {
        '=' => " ('=' assigns; compare with '==')".to_string(),
        '!' => " (use '~' for not and '!=' for not-equal)".to_string(),
        '.' => " (a '.' must be part of a number such as 0.5)".to_string(),
        _ => String::new(),
    };
    ExprError::syntax(
        position,
        format!("unexpected character {}{hint}; allowed are {ALLOWED_CHARACTERS}", quote(&ch.to_string())),
    )
}

/// Lexes `digits [. digits] [e [+-] digits]` or `. digits [exponent]` starting at `start`.
fn lex_number(text: &str, start: usize, end: usize) -> Result<(f64, usize), ExprError> {
    let bytes = text.as_bytes();
    let digits = |mut j: usize| {
        while j < end && bytes[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let mut i = digits(start);
    if i < end && bytes[i] == b'.' {
        i = digits(i + 1);
    }
    if i < end && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < end && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        let after = digits(j);
        if after == j {
            return Err(ExprError::syntax(
                j,
                format!(
                    "incomplete number {}: an exponent needs digits, e.g. 1e3 or 2.5e-4",
                    quote(&text[start..j])
                ),
            ));
        }
        i = after;
    }
    if i < end && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.') {
        return Err(ExprError::syntax(
            i,
            format!(
                "invalid number: {} cannot be followed by '{}'; numbers are decimal \
                 (12, 0.5, 1e3) and need an operator before a name, e.g. 2*b1",
                quote(&text[start..i]),
                bytes[i] as char
            ),
        ));
    }
    let value = text[start..i]
        .parse::<f64>()
        .map_err(|_| ExprError::syntax(start, format!("invalid number {}", quote(&text[start..i]))))?;
    Ok((value, i))
}

/// A token as error messages name it.
pub(crate) fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Num { value, .. } => format!("number {}", number(*value)),
        Tok::Name(n) => format!("'{n}'"),
        Tok::Op(op) => format!("'{op}'"),
        Tok::LParen => "'('".to_string(),
        Tok::RParen => "')'".to_string(),
        Tok::Comma => "','".to_string(),
        Tok::End => "end of expression".to_string(),
    }
}
