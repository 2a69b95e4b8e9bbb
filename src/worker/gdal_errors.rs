//! Captures GDAL's error messages. GDAL reports failures through a process-wide handler
//! and a bare return code; the default handler prints to stderr and the message is lost
//! to the caller. The worker installs a handler that keeps the messages of the current
//! job, so an error response says what GDAL said.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overview_is_read_from_the_warp_debug_message() {
        assert_eq!(overview_in("WARP: Selecting overview level 1 for /data/a.tif"), Some(1));
        assert_eq!(overview_in("Selecting overview level 12 for x"), Some(12));
        assert_eq!(overview_in("WARP: srcNoData=0.000000 dstNoData=0.000000"), None);
    }
}
