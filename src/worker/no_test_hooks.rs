//! The stand-in for [`test_hooks`](super) in builds without the `test-hooks` feature
//! (every release build): the same calls, doing nothing, and no `TESSERA_TEST_*`
//! variable is read or even named. `make test` builds with the feature.

/// A broken answer: none can be asked for without the feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbage {}

/// No hooks.
#[derive(Debug, Default)]
pub struct TestHooks;

/// Nothing to remove.
pub struct BusyMarker;

// The same signatures as the real hooks, so the worker calls them the same way.
#[allow(clippy::unused_self)]
impl TestHooks {
    /// No hooks, whatever the environment says.
    pub fn from_env() -> Self {
        Self
    }

    /// Does nothing.
    pub fn before_hello(&self) {}

    /// Never.
    pub fn garbage_for(&self, _path: &str) -> Option<Garbage> {
        None
    }

    /// Does nothing.
    pub fn on_read(&mut self, _path: &str) -> BusyMarker {
        BusyMarker
    }
}

/// Never called: there is no [`Garbage`] to write.
pub fn write_garbage(
    _out: &mut impl std::io::Write,
    kind: Garbage,
    _request: &crate::pb::worker::WorkerRequest,
) -> std::io::Result<()> {
    match kind {}
}
