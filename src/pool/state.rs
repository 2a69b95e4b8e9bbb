//! Where a worker is in its life, as two explicit state machines: the front's handle on
//! it ([`WorkerState`], changed only by whoever holds the handle) and the process itself
//! ([`ProcessState`], shared by the handle and the reaper task that waits for the exit).
//!
//! ```text
//! WorkerState    Starting ──hello──▶ Idle ◀──answered── Busy
//!                                     └────job sent─────▶┘
//!                any ──killed, channel broken, or exit seen──▶ Dead
//!
//! ProcessState   Running ──the front kills it or lets it go──▶ Retiring ──▶ Exited
//!                Running ──────────────died on its own──────────────────────▶ Exited
//! ```
//!
//! Whether an exit came from `Running` or from `Retiring` decides how the reaper logs it:
//! an exit the front asked for is routine; any other is a crash, logged with the tail of
//! the worker's stderr.

use nix::sys::signal::Signal;

/// Where a worker is in its life, as the front's handle sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Spawned; its hello has not been read yet.
    Starting,
    /// Handshaken and waiting for a job.
    Idle,
    /// A job is in flight: its response has not been read.
    Busy,
    /// Exited, killed, or its channel is broken: never used again.
    Dead,
}

/// Where a worker process is in its life, as its handle and its reaper share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProcessState {
    /// Running (or stopped), and the front has not asked it to go.
    Running,
    /// The front ended it on purpose (SIGKILL, or SIGTERM and its stdin closed): its exit
    /// is expected, not a crash, and the reaper may force it.
    Retiring,
    /// The reaper has collected its exit status.
    Exited(ExitInfo),
}

impl ProcessState {
    /// How the process ended, once it has.
    pub(super) fn exit(self) -> Option<ExitInfo> {
        match self {
            Self::Exited(info) => Some(info),
            Self::Running | Self::Retiring => None,
        }
    }
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal number, if a signal ended it.
    pub signal: Option<i32>,
}

impl ExitInfo {
    /// SIGKILL comes from outside the worker (the kernel's OOM killer, an operator, the
    /// pool itself): it says nothing about what the worker was reading. Everything else
    /// (SIGSEGV, SIGABRT, SIGBUS, a non-zero exit...) is the worker's own fault.
    #[must_use]
    pub fn is_external_kill(&self) -> bool {
        self.signal == Some(Signal::SIGKILL as i32)
    }
}
