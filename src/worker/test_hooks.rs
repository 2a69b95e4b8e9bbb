//! Fault-injection hooks for the integration tests, read from environment variables
//! that only the tests set. Compiled only with the `test-hooks` cargo feature (the test
//! suite's build); other builds get the inert stand-in `no_test_hooks.rs`, so a release
//! binary has no hook at all. They are documented here and in docs/testing.md (a test
//! checks that both name the same variables).
//! "A read" is any job that reads pixels: a read, a point, statistics or a preview, and
//! each read of a whole-tile job.
//!
//! - `TESSERA_TEST_SLOW_READ=SUBSTRING=MILLIS`: a read of an asset whose path contains
//!   SUBSTRING sleeps MILLIS before touching GDAL (a stand-in for a stalled network).
//! - `TESSERA_TEST_BUSY_DIR=DIR`: during each read the worker holds a file `DIR/<pid>`
//!   naming the asset, so a test can find the worker that is serving a read.
//! - `TESSERA_TEST_HELLO_DELAY_MS=MILLIS`: the worker waits MILLIS before its handshake.
//! - `TESSERA_TEST_FAIL_HELLO_FILE=PATH`: while PATH exists, a new worker exits with
//!   code 3 instead of shaking hands (a crash loop).
//! - `TESSERA_TEST_CRASH_READ=SUBSTRING=abort|segv|spin`: a read of a matching asset
//!   crashes the worker (SIGABRT or SIGSEGV) — a poison asset — or spins on the CPU until
//!   the per-job CPU limit kills it (SIGXCPU).
//! - `TESSERA_TEST_CRASH_TOKENS=DIR`: with the crash hook, a worker crashes only if it
//!   can take (delete) one `crash-*` file from DIR, so a test sets how many crashes occur.
//! - `TESSERA_TEST_LEAK_READ=SUBSTRING=MIB`: a read of a matching asset allocates MIB
//!   mebibytes, touches them and keeps them (memory growth; past RLIMIT_AS the
//!   allocation fails and the worker aborts).
//! - `TESSERA_TEST_GARBAGE_READ=SUBSTRING=oversize|garbage|wrong_id|short`: instead of
//!   answering a read of a matching asset, the worker writes a broken frame.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

/// See the module docs.
pub const SLOW_READ_VAR: &str = "TESSERA_TEST_SLOW_READ";
/// See the module docs.
pub const BUSY_DIR_VAR: &str = "TESSERA_TEST_BUSY_DIR";
/// See the module docs.
pub const HELLO_DELAY_VAR: &str = "TESSERA_TEST_HELLO_DELAY_MS";
/// See the module docs.
pub const FAIL_HELLO_VAR: &str = "TESSERA_TEST_FAIL_HELLO_FILE";
/// See the module docs.
pub const CRASH_READ_VAR: &str = "TESSERA_TEST_CRASH_READ";
/// See the module docs.
pub const CRASH_TOKENS_VAR: &str = "TESSERA_TEST_CRASH_TOKENS";
/// See the module docs.
pub const LEAK_READ_VAR: &str = "TESSERA_TEST_LEAK_READ";
/// See the module docs.
pub const GARBAGE_READ_VAR: &str = "TESSERA_TEST_GARBAGE_READ";

/// A broken answer the garbage hook writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbage {
    /// A length prefix over the frame cap.
    Oversize,
    /// A valid length followed by bytes that are not a message.
    Noise,
    /// A well-formed answer to another job.
    WrongId,
    /// A read result whose buffers are shorter than its header claims.
    Short,
    /// A read result that places its pixels past the end of the reply region.
    OutsideRegion,
}

/// The hooks in force for this worker.
#[derive(Debug, Default)]
pub struct TestHooks {
    slow_read: Option<(String, Duration)>,
    busy_dir: Option<PathBuf>,
    hello_delay: Option<Duration>,
    fail_hello: Option<PathBuf>,
    crash_read: Option<(String, String)>,
    crash_tokens: Option<PathBuf>,
    leak_read: Option<(String, usize)>,
    garbage_read: Option<(String, Garbage)>,
    leaked: Vec<Vec<u8>>,
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

fn pair(var: &str) -> Option<(String, String)> {
    let v = std::env::var(var).ok()?;
    let (needle, value) = v.rsplit_once('=')?;
    Some((needle.to_owned(), value.to_owned()))
}

fn take_token(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        e.file_name().to_string_lossy().starts_with("crash-") && std::fs::remove_file(e.path()).is_ok()
    })
}

impl TestHooks {
    /// Reads the hooks from the environment.
    pub fn from_env() -> Self {
        let parsed = |var: &str| pair(var).and_then(|(n, v)| Some((n, v.parse::<u64>().ok()?)));
        Self {
            slow_read: parsed(SLOW_READ_VAR).map(|(n, ms)| (n, Duration::from_millis(ms))),
            busy_dir: std::env::var_os(BUSY_DIR_VAR).map(PathBuf::from),
            hello_delay: std::env::var(HELLO_DELAY_VAR)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
            fail_hello: std::env::var_os(FAIL_HELLO_VAR).map(PathBuf::from),
            crash_read: pair(CRASH_READ_VAR),
            crash_tokens: std::env::var_os(CRASH_TOKENS_VAR).map(PathBuf::from),
            leak_read: parsed(LEAK_READ_VAR).map(|(n, mib)| (n, mib as usize)),
            garbage_read: pair(GARBAGE_READ_VAR).and_then(|(n, kind)| {
                let kind = match kind.as_str() {
                    "oversize" => Garbage::Oversize,
                    "garbage" => Garbage::Noise,
                    "wrong_id" => Garbage::WrongId,
                    "short" => Garbage::Short,
                    "outside_region" => Garbage::OutsideRegion,
                    _ => return None,
                };
                Some((n, kind))
            }),
            leaked: Vec::new(),
        }
    }

    /// Runs before the handshake; may end the process (crash-loop hook).
    pub fn before_hello(&self) {
        if let Some(d) = self.hello_delay {
            std::thread::sleep(d);
        }
        if self.fail_hello.as_ref().is_some_and(|p| p.exists()) {
            eprintln!("test hook: failing before the handshake");
            std::process::exit(3);
        }
    }

    /// The broken answer to give instead of reading `path`, if any.
    pub fn garbage_for(&self, path: &str) -> Option<Garbage> {
        self.garbage_read.as_ref().filter(|(n, _)| path.contains(n.as_str())).map(|(_, g)| *g)
    }

    /// Runs at the start of a read; the marker lives until the read ends. May crash the
    /// worker, sleep, or grow its memory.
    pub fn on_read(&mut self, path: &str) -> BusyMarker {
        let marker = self.busy_dir.as_ref().and_then(|dir| {
            let p = dir.join(std::process::id().to_string());
            std::fs::write(&p, path).ok().map(|()| p)
        });
        if let Some((needle, how)) = &self.crash_read {
            let allowed = self.crash_tokens.as_deref().is_none_or(take_token);
            if path.contains(needle.as_str()) && allowed {
                eprintln!("test hook: crashing on {path}");
                let _ = std::io::stderr().flush();
                if how == "spin" {
                    let mut x: u64 = 0;
                    loop {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                }
                if how == "segv" {
                    // Rust's runtime handles the first SIGSEGV (its stack-overflow
                    // handler) by restoring the default action; the second one kills.
                    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSEGV);
                    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSEGV);
                }
                std::process::abort();
            }
        }
        if let Some((needle, mib)) = &self.leak_read {
            if path.contains(needle.as_str()) {
                // Touch every page so the memory is resident, then keep it.
                self.leaked.push(vec![1u8; mib << 20]);
            }
        }
        if let Some((needle, delay)) = &self.slow_read {
            if path.contains(needle.as_str()) {
                std::thread::sleep(*delay);
            }
        }
        BusyMarker(marker)
    }
}

/// Writes the broken answer `kind` to `request` on the frame channel.
pub fn write_garbage(
    out: &mut impl Write,
    kind: Garbage,
    request: &crate::pb::worker::WorkerRequest,
) -> std::io::Result<()> {
    use prost::Message;

    use crate::pb::worker::{DataType, ReadResult, WorkerResponse, worker_response};
    let read_result = |pixels: usize, mask: usize| ReadResult {
        dtype: DataType::Uint8 as i32,
        band_count: 3,
        width: 256,
        height: 256,
        pixels: vec![0; pixels],
        mask: vec![0; mask],
        nodata: None,
        shared_pixels: 0,
        shared_mask: 0,
    };
    let frame = |msg: &WorkerResponse| {
        let mut buf = (msg.encoded_len() as u32).to_be_bytes().to_vec();
        msg.encode(&mut buf).map(|()| buf).unwrap_or_default()
    };
    let bytes = match kind {
        Garbage::Oversize => u32::MAX.to_be_bytes().to_vec(),
        Garbage::Noise => {
            let mut b = 16u32.to_be_bytes().to_vec();
            b.extend_from_slice(&[0xff; 16]);
            b
        }
        Garbage::WrongId => frame(&WorkerResponse {
            id: request.id + 1000,
            result: Some(worker_response::Result::Read(read_result(3 * 256 * 256, 256 * 256))),
            stats: None,
        }),
        Garbage::Short => frame(&WorkerResponse {
            id: request.id,
            result: Some(worker_response::Result::Read(read_result(100, 256 * 256))),
            stats: None,
        }),
        Garbage::OutsideRegion => frame(&WorkerResponse {
            id: request.id,
            result: Some(worker_response::Result::Read(ReadResult {
                shared_pixels: crate::ipc::region::REPLY_REGION_BYTES as u32,
                shared_mask: 256 * 256,
                ..read_result(0, 0)
            })),
            stats: None,
        }),
    };
    out.write_all(&bytes)?;
    out.flush()
}
