//! Request input quoted into messages. An error message says what the caller sent, but
//! the caller chose those bytes: echoed raw, a name forges log lines (CR, LF), reorders
//! what a reader sees (bidi controls), or grows the `grpc-message` trailer past what
//! clients accept (grpc-python refuses metadata over 16 KiB: a 1 MB layer name turned
//! NOT_FOUND into "Stream removed"), and a number such as `1e308` prints as 309 digits.
//!
//! Every request string quoted into a message goes through [`quote`], every request
//! number through [`number`], and [`cap_message`] bounds each whole message where
//! errors become statuses (`crate::error`), whatever slipped through (GDAL's text
//! included).

use std::{
    borrow::Cow,
    fmt::{self, Write as _},
};

/// Most characters of one quoted input; the rest is replaced by `… (N bytes)`. A quoted
/// input is therefore at most 128 escapes long (each at most 10 characters, `\u{10ffff}`)
/// plus quotes and the suffix: under 1.3 KiB.
pub const MAX_QUOTED_CHARS: usize = 128;

/// Most bytes of a status message as it travels in the `grpc-message` trailer, where
/// each byte outside printable ASCII, and space `"` `#` `%` `<` `>` `` ` `` `?` `{` `}`,
/// is percent-encoded into three. An INVALID_ARGUMENT repeats the message twice more in
/// `grpc-status-details-bin` (base64, 4/3), so its trailers stay under 7.6 KiB: within
/// the 16 KiB grpc-python accepts, and the 8 KiB of stricter clients. Tessera's own
/// messages, with their quoted inputs, are far shorter.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// Wire bytes [`cap_message`] keeps free for its suffix (whose number has at most 20
/// digits; the ellipsis and spaces take 3 each).
const SUFFIX_ROOM: usize = 96;

/// `text` in single quotes, escaped and truncated, for a message: see [`Quoted`].
#[must_use]
pub fn quote(text: &str) -> Quoted<'_> {
    Quoted(text)
}

/// A request string as a message shows it: in single quotes; `\`, `'`, control
/// characters (C0, DEL, C1), line and paragraph separators and bidi controls escaped as
/// in Rust (`\\`, `\'`, `\n`, `\r`, `\t`, `\u{202e}`); and past [`MAX_QUOTED_CHARS`]
/// characters cut, with the whole length after it: `'aaa…aaa'… (1048576 bytes)` (the first 128 characters between the quotes). The
/// quoted form is one line, reads in logical order, and shows every hidden character.
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("'")?;
        for c in self.0.chars().take(MAX_QUOTED_CHARS) {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\'' => f.write_str("\\'")?,
                c => write_char(f, c)?,
            }
        }
        f.write_str("'")?;
        if self.0.chars().nth(MAX_QUOTED_CHARS).is_some() {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// Whether `c` is a Unicode bidirectional control: the embeddings and overrides
/// (U+202A-U+202E), the isolates (U+2066-U+2069) and the marks (U+200E, U+200F, U+061C).
#[must_use]
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Whether a message shows `c` escaped: control characters (C0, DEL, C1), the line
/// and paragraph separators (U+2028, U+2029, line breaks to some log viewers) and
/// bidi controls.
fn is_hidden(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `c`, escaped if hidden.
fn write_char(f: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        c if is_hidden(c) => write!(f, "\\u{{{:x}}}", u32::from(c)),
        c => f.write_char(c),
    }
}

/// A request number for a message: see [`Number`].
#[must_use]
pub fn number(value: f64) -> Number {
    Number(value)
}

/// A request number as a message shows it: the shortest text that reads back as the
/// same `f64`, in positional notation from 1e-5 up to 1e16 (`0.5`, `-3`, `256`) and in
/// scientific notation outside (`1e308`, `-2.5e-300`), so no value prints longer than
/// about 25 characters; `NaN`, `inf`, `-inf` as such.
#[derive(Debug, Clone, Copy)]
pub struct Number(f64);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let magnitude = v.abs();
        if v.is_finite() && magnitude != 0.0 && !(1e-5..1e16).contains(&magnitude) {
            write!(f, "{v:e}")
        } else {
            write!(f, "{v}")
        }
    }
}

/// `message` with hidden characters escaped (as [`quote`] does, but leaving `\` and
/// `'` alone: the quoted parts are already escaped) and cut to [`MAX_MESSAGE_BYTES`] as
/// sent ([`wire_len`]), ending in `… (message truncated from N bytes)`. Borrowed when
/// there is nothing to do.
#[must_use]
pub fn cap_message(message: &str) -> Cow<'_, str> {
    if wire_len(message) <= MAX_MESSAGE_BYTES && !message.chars().any(is_hidden) {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_BYTES));
    let mut sent = 0;
    let mut escaped = String::new();
    for c in message.chars() {
        escaped.clear();
        // Writing to a String cannot fail.
        let _ = write_char(&mut escaped, c);
        sent += wire_len(&escaped);
        if sent > MAX_MESSAGE_BYTES - SUFFIX_ROOM {
            let _ = write!(out, "… (message truncated from {} bytes)", message.len());
            return Cow::Owned(out);
        }
        out.push_str(&escaped);
    }
    Cow::Owned(out)
}

/// The length of `text` percent-encoded as tonic writes `grpc-message`.
#[must_use]
pub fn wire_len(text: &str) -> usize {
    text.bytes().map(|b| if (0x20..0x7F).contains(&b) && !b" \"#%<>`?{}".contains(&b) { 1 } else { 3 }).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_line_breaks_controls_and_bidi_characters() {
        assert_eq!(quote("naip").to_string(), "'naip'");
        assert_eq!(quote("").to_string(), "''");
        assert_eq!(quote("a\r\nINFO forged").to_string(), r"'a\r\nINFO forged'");
        assert_eq!(quote("tab\there\0nul\x1b[31m").to_string(), r"'tab\there\u{0}nul\u{1b}[31m'");
        assert_eq!(quote("del\x7f c1\u{85}\u{9b}").to_string(), r"'del\u{7f} c1\u{85}\u{9b}'");
        assert_eq!(quote("evil\u{202E}fdp.exe").to_string(), r"'evil\u{202e}fdp.exe'");
        for (c, escaped) in [
            ('\u{202A}', r"\u{202a}"),
            ('\u{2066}', r"\u{2066}"),
            ('\u{2069}', r"\u{2069}"),
            ('\u{200E}', r"\u{200e}"),
            ('\u{200F}', r"\u{200f}"),
            ('\u{061C}', r"\u{61c}"),
            ('\u{2028}', r"\u{2028}"),
            ('\u{2029}', r"\u{2029}"),
        ] {
            assert_eq!(quote(&format!("x{c}y")).to_string(), format!("'x{escaped}y'"));
        }
        // The quote and the escape character are escaped, so the quoted form is
        // unambiguous: a literal backslash-n is not a line feed.
        assert_eq!(quote(r"it's a\n").to_string(), r"'it\'s a\\n'");
        // Printable non-ASCII text stays readable.
        assert_eq!(quote("Zürich-東京.tif").to_string(), "'Zürich-東京.tif'");
    }

    #[test]
    fn quoting_cuts_long_input_and_says_how_long_it_was() {
        let exact = "a".repeat(MAX_QUOTED_CHARS);
        assert_eq!(quote(&exact).to_string(), format!("'{exact}'"));
        let long = "a".repeat(1 << 20);
        assert_eq!(quote(&long).to_string(), format!("'{exact}'… (1048576 bytes)"));
        // Characters, not bytes, are counted: a multi-byte character is never split.
        let wide = "é".repeat(MAX_QUOTED_CHARS + 1);
        assert_eq!(
            quote(&wide).to_string(),
            format!("'{}'… ({} bytes)", "é".repeat(MAX_QUOTED_CHARS), wide.len())
        );
        // The worst case, every character escaped, stays bounded.
        let hidden = "\u{10FFFF}\u{202E}".repeat(1000);
        assert!(quote(&hidden).to_string().len() < 1300);
    }

    #[test]
    fn numbers_print_compactly_whatever_their_magnitude() {
        let shown = |v: f64| number(v).to_string();
        assert_eq!(shown(1e308), "1e308");
        assert_eq!(shown(-1e308), "-1e308");
        assert_eq!(shown(f64::MAX), "1.7976931348623157e308");
        assert_eq!(shown(5e-324), "5e-324");
        assert_eq!(shown(-2.5e-300), "-2.5e-300");
        assert_eq!(shown(1e16), "1e16");
        assert_eq!(shown(9_999_999_999_999_998.0), "9999999999999998");
        assert_eq!(shown(0.00001), "0.00001");
        assert_eq!(shown(0.000_009), "9e-6");
        assert_eq!(shown(64.5), "64.5");
        assert_eq!(shown(-3.0), "-3");
        assert_eq!(shown(0.0), "0");
        assert_eq!(shown(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(shown(f64::NAN), "NaN");
        assert_eq!(shown(f64::INFINITY), "inf");
        assert_eq!(shown(f64::NEG_INFINITY), "-inf");
        // Every value reads back exactly.
        for v in [1e308, 5e-324, 0.1, 123_456.789, -1e-7, 1e15 + 0.5] {
            assert_eq!(shown(v).parse::<f64>().unwrap().to_bits(), v.to_bits(), "{v}");
        }
    }

    #[test]
    fn the_wire_length_counts_what_tonic_percent_encodes() {
        assert_eq!(wire_len("asset-a.tif"), 11);
        assert_eq!(wire_len("a b"), 5);
        assert_eq!(wire_len("é"), 6);
        assert_eq!(wire_len("%\"#<>`?{}"), 27);
    }

    #[test]
    fn messages_are_capped_and_their_hidden_characters_escaped() {
        assert!(matches!(cap_message("asset 'a.tif' does not exist"), Cow::Borrowed(_)));
        assert_eq!(cap_message("line one\nline two\u{202E}"), r"line one\nline two\u{202e}");
        // Quoted parts are not escaped twice.
        assert_eq!(cap_message(r"layer 'a\r\n' is not served"), r"layer 'a\r\n' is not served");
        let huge = format!("GDAL: {}", "x".repeat(1 << 20));
        let capped = cap_message(&huge);
        assert!(wire_len(&capped) <= MAX_MESSAGE_BYTES, "{} bytes", wire_len(&capped));
        assert!(capped.starts_with("GDAL: xxx"));
        assert!(capped.ends_with("xxx… (message truncated from 1048582 bytes)"), "{capped}");
        // Escapes near the cut neither split a character nor overflow the cap.
        let hidden = "\u{1}é ".repeat(MAX_MESSAGE_BYTES);
        let capped = cap_message(&hidden);
        assert!(wire_len(&capped) <= MAX_MESSAGE_BYTES, "{} bytes", wire_len(&capped));
        assert!(capped.starts_with(r"\u{1}é \u{1}é "), "{capped}");
        assert!(capped.ends_with(&format!("… (message truncated from {} bytes)", hidden.len())));
    }
}
