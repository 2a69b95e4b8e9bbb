//! Captures GDAL's error messages. GDAL reports failures through a process-wide handler
//! and a bare return code; the default handler prints to stderr and the message is lost
//! to the caller. The worker installs a handler that keeps the messages of the current
//! job, so an error response says what GDAL said.

use std::sync::Mutex;

use gdal::errors::CplErrType;

static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());

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
        CplErrType::Warning => eprintln!("GDAL warning: {msg}"),
        CplErrType::None | CplErrType::Debug => {}
    });
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
