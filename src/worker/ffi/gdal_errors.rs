//! Captures GDAL's error messages. GDAL reports failures through a process-wide handler
//! and a bare return code; the default handler prints to stderr and the message is lost
//! to the caller. The worker installs a handler that keeps the messages of the current
//! job, so an error response says what GDAL said — without where in GDAL's sources it
//! was said ([`without_source_locations`]).
//!
//! The two statics below are the handler's only state, and the one place the worker keeps
//! state outside the values it passes around: GDAL calls the handler as a plain C
//! function from inside any call, with no way to reach the job that made the call. The
//! worker is one thread doing one job at a time, so "the current job" is well defined;
//! each job clears them first ([`clear`]).

use std::sync::{
    Mutex,
    atomic::{AtomicU32, Ordering},
};

use gdal::errors::CplErrType;

static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The overview the last warp chose, plus one (0: full resolution). GDAL says so only in
/// a `WARP` debug message, which the worker turns on for this.
static OVERVIEW: AtomicU32 = AtomicU32::new(0);

/// Most messages kept per job; a corrupt file can produce thousands.
const MAX_KEPT: usize = 8;

/// Installs the handler. Warnings and debug output go to stderr (and so to the front's
/// log); failures are kept for the current job.
pub fn install() {
    gdal::config::set_error_handler(|class, _num, msg| match class {
        CplErrType::Failure | CplErrType::Fatal => {
            if let Ok(mut m) = MESSAGES.lock() {
                if m.len() < MAX_KEPT {
                    m.push(msg.to_owned());
                }
            }
        }
        CplErrType::Warning => tracing::warn!("GDAL warning: {msg}"),
        CplErrType::Debug => {
            if let Some(level) = overview_in(msg) {
                OVERVIEW.store(level + 1, Ordering::Relaxed);
            }
        }
        CplErrType::None => {}
    });
}

/// The overview index in GDAL's "Selecting overview level N for ..." debug message.
fn overview_in(msg: &str) -> Option<u32> {
    let (_, rest) = msg.split_once("Selecting overview level ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The overview the warps since the last call read from (0 = full resolution), and
/// forgets it.
pub fn take_overview() -> u32 {
    OVERVIEW.swap(0, Ordering::Relaxed)
}

/// Records that a warp read overview `level` (0-based), for a warp that says so itself
/// instead of through GDAL's debug message.
pub fn note_overview(level: u32) {
    OVERVIEW.store(level + 1, Ordering::Relaxed);
}

/// Forgets the messages of the previous job.
pub fn clear() {
    if let Ok(mut m) = MESSAGES.lock() {
        m.clear();
    }
}

/// The failure messages since the last [`clear`], joined; `None` when there were none.
pub fn take() -> Option<String> {
    let mut m = MESSAGES.lock().ok()?;
    if m.is_empty() {
        return None;
    }
    let joined = m.join("; ");
    m.clear();
    Some(joined)
}

/// Like [`take`], leaving out PROJ's complaints about single points it cannot
/// transform (`PROJ: webmerc: Invalid latitude` for a pole): the warper skips such
/// points and warps the rest, so a warp of an asset that reaches a pole succeeds.
pub fn take_beyond_points() -> Option<String> {
    let mut m = MESSAGES.lock().ok()?;
    m.retain(|msg| !msg.starts_with("PROJ: "));
    if m.is_empty() {
        return None;
    }
    let joined = m.join("; ");
    m.clear();
    Some(joined)
}

/// Extensions of the source files GDAL names in its messages.
const SOURCE_EXTENSIONS: [&str; 6] = [".cpp", ".c", ".h", ".hpp", ".cc", ".cxx"];

/// `message` without the source locations GDAL puts in some of its messages: its
/// allocation checks (`VSI_MALLOC_VERBOSE` and kin) write `FILE, LINE: ` or
/// `FILE: LINE: ` before the text, e.g. `./alg/gdalwarpoperation.cpp, 694: cannot
/// allocate 2700000000 bytes`. Which file and line of the server's GDAL failed tells a
/// caller about the build, not about the request. Wherever such a location appears
/// (first, or after `warp failed: `, `; ` or a quote), it goes; the rest stays.
#[must_use]
pub fn without_source_locations(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((start, end)) = source_location(rest) {
        out.push_str(&rest[..start]);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Characters of a source path as GDAL writes one (`__FILE__`).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '\\' | '-' | '+')
}

/// The byte range of the first source location in `text`: a whole path token (or
/// `(unknown file)`, GDAL's stand-in) ending in a source extension, then `, ` or `: `,
/// the line number and `: ` (or `:` at the end).
fn source_location(text: &str) -> Option<(usize, usize)> {
    const UNKNOWN: &str = "(unknown file)";
    let mut start = 0;
    while let Some(rest) = text.get(start..).filter(|r| !r.is_empty()) {
        let file_len = if rest.starts_with(UNKNOWN) {
            UNKNOWN.len()
        } else {
            rest.find(|c: char| !is_path_char(c)).unwrap_or(rest.len())
        };
        if file_len == 0 {
            // Not a path: on to the next character.
            start += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let file = &rest[..file_len];
        let is_source =
            file == UNKNOWN || SOURCE_EXTENSIONS.iter().any(|e| file.len() > e.len() && file.ends_with(e));
        if is_source && let Some(len) = line_suffix(&rest[file_len..]) {
            return Some((start, start + file_len + len));
        }
        start += file_len;
    }
    None
}

/// The length of `, LINE: ` or `: LINE: ` at the start of `text` (`:` alone at its
/// end), if there.
fn line_suffix(text: &str) -> Option<usize> {
    let after_separator = text.strip_prefix(", ").or_else(|| text.strip_prefix(": "))?;
    let digits = after_separator.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_separator.len());
    if digits == 0 {
        return None;
    }
    let tail = &after_separator[digits..];
    let colon = if tail.starts_with(": ") {
        2
    } else if tail == ":" {
        1
    } else {
        return None;
    };
    Some(text.len() - tail.len() + colon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdal_source_locations_are_removed_from_messages() {
        // As GDAL 3.6 wrote it for a warp whose buffer did not fit the memory limit.
        assert_eq!(
            without_source_locations("./alg/gdalwarpoperation.cpp, 694: cannot allocate 2700000000 bytes"),
            "cannot allocate 2700000000 bytes"
        );
        assert_eq!(
            without_source_locations(
                "warp failed: ./alg/gdalwarpoperation.cpp, 1847: cannot allocate 12 bytes; \
                 /build/gdal-3.6.2/frmts/gtiff/geotiff.cpp: 5120: Multiplication overflow : 1 * 2"
            ),
            "warp failed: cannot allocate 12 bytes; Multiplication overflow : 1 * 2"
        );
        assert_eq!(
            without_source_locations("(unknown file), 0: cannot allocate 64 bytes"),
            "cannot allocate 64 bytes"
        );
        // Inside the gdal crate's description of an error, after a quote.
        assert_eq!(
            without_source_locations(
                "reading the mask band: CPL error class: 'Failure', error number: '2', error msg: \
                 '../port/cpl_vsisimple.cpp, 12: cannot allocate 8x8 bytes'"
            ),
            "reading the mask band: CPL error class: 'Failure', error number: '2', error msg: \
             'cannot allocate 8x8 bytes'"
        );
        assert_eq!(without_source_locations("/src/x.h:"), "/src/x.h:");
        assert_eq!(without_source_locations("a/x.cc: 7:"), "");
    }

    #[test]
    fn messages_without_source_locations_are_unchanged() {
        for message in [
            "",
            "read failed: TIFFReadEncodedTile() failed.",
            "/data/a.tif: 3: not a source file",
            "a.tif, 12: neither",
            "file.cpp, line 12: no line number",
            ".cpp, 12: no file name",
            "x.cpp,12: no space",
            "x.cpp, 12 no colon",
            "x.cppy, 12: another extension",
            "Zürich.c, é: 12: ",
            "(unknown file",
        ] {
            assert_eq!(without_source_locations(message), message);
        }
    }

    #[test]
    fn the_overview_is_read_from_the_warp_debug_message() {
        assert_eq!(overview_in("WARP: Selecting overview level 1 for /data/a.tif"), Some(1));
        assert_eq!(overview_in("Selecting overview level 12 for x"), Some(12));
        assert_eq!(overview_in("WARP: srcNoData=0.000000 dstNoData=0.000000"), None);
    }
}
