//! Fault-injection hooks for the integration tests, read from environment variables
//! that only the tests set. A normal `tessera serve` never sets them, so in production
//! every hook is inert. They are documented here and in the README's testing section:
//!
//! - `TESSERA_TEST_SLOW_READ=SUBSTRING=MILLIS`: a read of an asset whose path contains
//!   SUBSTRING sleeps MILLIS before touching GDAL (a stand-in for a stalled network).
//! - `TESSERA_TEST_BUSY_DIR=DIR`: during each read the worker holds a file `DIR/<pid>`
//!   naming the asset, so a test can find the worker that is serving a read.
//! - `TESSERA_TEST_HELLO_DELAY_MS=MILLIS`: the worker waits MILLIS before its handshake.

use std::{path::PathBuf, time::Duration};

/// See the module docs.
pub const SLOW_READ_VAR: &str = "TESSERA_TEST_SLOW_READ";
/// See the module docs.
pub const BUSY_DIR_VAR: &str = "TESSERA_TEST_BUSY_DIR";
/// See the module docs.
pub const HELLO_DELAY_VAR: &str = "TESSERA_TEST_HELLO_DELAY_MS";

/// The hooks in force for this worker.
#[derive(Debug, Default)]
pub struct TestHooks {
    slow_read: Option<(String, Duration)>,
    busy_dir: Option<PathBuf>,
    hello_delay: Option<Duration>,
}

/// Removes the busy marker when the read ends.
pub struct BusyMarker(Option<PathBuf>);

impl Drop for BusyMarker {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl TestHooks {
    /// Reads the hooks from the environment.
    pub fn from_env() -> Self {
        let slow_read = std::env::var(SLOW_READ_VAR).ok().and_then(|v| {
            let (needle, ms) = v.rsplit_once('=')?;
            Some((needle.to_owned(), Duration::from_millis(ms.parse().ok()?)))
        });
        let busy_dir = std::env::var_os(BUSY_DIR_VAR).map(PathBuf::from);
        let hello_delay =
            std::env::var(HELLO_DELAY_VAR).ok().and_then(|v| v.parse().ok()).map(Duration::from_millis);
        Self { slow_read, busy_dir, hello_delay }
    }

    /// Runs before the handshake.
    pub fn before_hello(&self) {
        if let Some(d) = self.hello_delay {
            std::thread::sleep(d);
        }
    }

    /// Runs at the start of a read; the marker lives until the read ends.
    pub fn on_read(&self, path: &str) -> BusyMarker {
        let marker = self.busy_dir.as_ref().and_then(|dir| {
            let p = dir.join(std::process::id().to_string());
            std::fs::write(&p, path).ok().map(|()| p)
        });
        if let Some((needle, delay)) = &self.slow_read {
            if path.contains(needle.as_str()) {
                std::thread::sleep(*delay);
            }
        }
        BusyMarker(marker)
    }
}
