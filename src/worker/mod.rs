//! The worker process (`tessera worker`, spawned by the front, hidden from `--help`).
//!
//! Theory of operation: one thread, one GDAL state. The worker writes a [`Hello`] frame,
//! then loops: read a request frame from stdin, run it against GDAL, write one response
//! frame. It never writes anything but frames on its frame channel: before GDAL is
//! touched, the original stdout is duplicated for frames and fd 1 is pointed at stderr,
//! so a stray `printf` inside a driver cannot corrupt the protocol. It exits when stdin
//! closes (the front went away) or, through the parent-death signal, when the front dies.
//!
//! The folder by role: `read/` opens an asset, describes it and reads a tile (the main
//! job), with the overview choice (`overview.rs`) and the TIFF blocks a read touches
//! (`blocks.rs`, `block_ranges.rs`); `jobs/` holds the point, statistics and preview
//! jobs; `datasets/` the cache of open datasets and the opening of local files; `ffi/`
//! GDAL's C API (the warp, the virtual file system remote bytes come through, the error
//! handler), the only `unsafe` code; `limits.rs` the hardening; `in_process.rs` the
//! reader `tessera bench --floor` calls without a process boundary.

mod block_ranges;
mod blocks;
mod coverage;
mod datasets;
mod ffi;
mod held_blocks;
mod in_process;
mod jobs;
mod limits;
mod overview;
mod read;
#[cfg(test)]
mod test_assets;
#[cfg(feature = "test-hooks")]
mod test_hooks;
#[cfg(not(feature = "test-hooks"))]
#[path = "no_test_hooks.rs"]
mod test_hooks;

use datasets::{dataset_cache, local_files};
use ffi::{gdal_errors, io, remote_io, warp};
use jobs::{grid, masked_read, point, preview, statistics, summary, whole_tile};

use std::{
    fs::File,
    io::{BufReader, BufWriter},
    os::fd::AsFd,
    process::ExitCode,
};

use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::ipc::limits::WorkerLimits;
use crate::{
    ipc::{FrameError, PROTOCOL_VERSION},
    pb::worker::{
        Deferred, ErrorKind, Hello, Pong, ReadStats, WorkerError, WorkerRequest, WorkerResponse,
        worker_request::{self, Job},
        worker_response,
    },
    telemetry::{LogFormat, Role},
};

pub use in_process::InProcessReader;
pub use read::JobError;

/// Entry point of `tessera worker`.
#[must_use]
pub fn run(limits: &WorkerLimits) -> ExitCode {
    if let Err(e) = die_with_parent() {
        eprintln!("tessera worker: cannot set the parent-death signal: {e}");
        return ExitCode::from(70);
    }
    if let Err(e) = limits.apply() {
        eprintln!("tessera worker: {e}");
        return ExitCode::from(70);
    }
    let frames_out = match redirect_stdout_to_stderr() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tessera worker: cannot set up the frame channel: {e}");
            return ExitCode::from(70);
        }
    };
    let mut telemetry = crate::telemetry::Telemetry::init(Role::Worker, LogFormat::Text);
    if telemetry.exporting_traces {
        flush_on_sigterm(telemetry.flusher());
    }
    let code = serve(frames_out, limits, telemetry.exporting_traces);
    telemetry.shutdown();
    code
}

/// Hello, then jobs until stdin closes; `exporting`: the jobs' spans are exported.
fn serve(frames_out: File, limits: &WorkerLimits, exporting: bool) -> ExitCode {
    gdal_errors::install();
    read::configure_gdal();
    read::warm_up();
    let mut hooks = test_hooks::TestHooks::from_env();
    hooks.before_hello();

    let remote = remote_io::Remote::install(remote_io::Channel {
        input: BufReader::new(std::io::stdin().lock()),
        output: BufWriter::new(frames_out),
        region: crate::ipc::region::ReplyRegion::from_env(),
    });
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        gdal_version: gdal::version::version_info("RELEASE_NAME"),
        pid: std::process::id(),
    };
    if let Err(e) = remote.write(&hello) {
        tracing::error!("cannot send hello: {e}");
        return ExitCode::from(70);
    }

    let local = match local_files::LocalFiles::new(&limits.local_roots, &std::env::temp_dir()) {
        Ok(local) => local,
        Err(e) => {
            tracing::error!("cannot set up local file access: {e}");
            return ExitCode::from(70);
        }
    };
    let mut cache = dataset_cache::DatasetCache::new(read::DATASET_CACHE_CAPACITY, local)
        .with_remote(remote)
        .with_limits(limits.clone());
    let mut backstop = limits.cpu_backstop();
    let mut coverage = coverage::Coverage::default();
    loop {
        let request: WorkerRequest = match remote.read_request() {
            Ok(r) => r,
            Err(FrameError::Closed) => return ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("bad frame from the front, exiting: {e}");
                return ExitCode::from(65);
            }
        };
        if let Some(garbage) = garbage_hook(&hooks, &request) {
            let _ = test_hooks::write_garbage(&mut *remote.output(), garbage, &request);
            continue;
        }
        // A job that waited in the pipe behind the last one and whose caller has gone
        // since is answered without being run (`ipc/region.rs`).
        let response = if remote.is_withdrawn(request.id) {
            unrun(request.id, ErrorKind::Withdrawn, "withdrawn before it started: its caller had gone")
        } else if let Some(Job::Read(read)) = &request.job
            && coverage.covers(read.tile, read.tile_rank)
        {
            // Not run: the tile's earlier reads here left no pixel for it (`coverage.rs`).
            unrun(request.id, ErrorKind::Covered, "not run: the tile's earlier reads left no pixel for it")
        } else {
            backstop.arm();
            handle(&mut cache, &mut hooks, remote, &mut coverage, request, exporting)
        };
        if let Err(e) = remote.write_response(response) {
            tracing::error!("cannot write a response, exiting: {e}");
            return ExitCode::from(74);
        }
    }
}

/// The answer to job `id`, not run, and why.
fn unrun(id: u64, kind: ErrorKind, message: &str) -> WorkerResponse {
    WorkerResponse {
        id,
        result: Some(worker_response::Result::Error(WorkerError {
            kind: kind as i32,
            message: message.to_owned(),
        })),
        stats: None,
    }
}

/// On SIGTERM (the front retiring this worker, or stopping), sends the buffered spans,
/// then dies of the signal as before.
fn flush_on_sigterm(flush: impl Fn() + Send + 'static) {
    use signal_hook::consts::SIGTERM;
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM]) else {
        tracing::warn!("cannot watch SIGTERM; spans of the last jobs may be lost at exit");
        return;
    };
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            flush();
            let _ = signal_hook::low_level::emulate_default_handler(SIGTERM);
        }
    });
}

/// The span of one job inside the worker, a child of the front's asset-read span (whose
/// context the request carries). Jobs without a trace context (pings) get none. When
/// nothing is exported the span only carries the trace id to the job's log lines: it
/// gets no fields, and what the job records on it is dropped at once (its fields cost
/// a worker about 9 us a job in a profile, for attributes nobody sees).
fn job_span(request: &WorkerRequest, exporting: bool) -> tracing::Span {
    if request.trace_context.is_empty() {
        return tracing::Span::none();
    }
    if !exporting {
        let span = tracing::info_span!("worker_job");
        let _ = span.set_parent(crate::telemetry::extract(&request.trace_context));
        return span;
    }
    let name = match &request.job {
        Some(worker_request::Job::Read(_)) => "worker read",
        Some(worker_request::Job::Info(_)) => "worker info",
        Some(worker_request::Job::Point(_)) => "worker point",
        Some(worker_request::Job::Statistics(_)) => "worker statistics",
        Some(worker_request::Job::Preview(_)) => "worker preview",
        Some(worker_request::Job::Tile(_)) => "worker tile",
        _ => return tracing::Span::none(),
    };
    let path = crate::ipc::job_path(request).unwrap_or_default();
    let span = tracing::info_span!(
        "worker_job",
        otel.name = name,
        worker.pid = i64::from(std::process::id()),
        asset.path = path,
        dataset_cache.hit = Empty,
        gdal.open_ms = Empty,
        gdal.warp_ms = Empty,
        gdal.overview_level = Empty,
        remote.questions = Empty,
        remote.bytes = Empty,
        remote.held = Empty,
        io.read_bytes = Empty,
        error.kind = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    let _ = span.set_parent(crate::telemetry::extract(&request.trace_context));
    span
}

fn handle(
    cache: &mut dataset_cache::DatasetCache,
    hooks: &mut test_hooks::TestHooks,
    remote: &remote_io::Remote,
    coverage: &mut coverage::Coverage,
    request: WorkerRequest,
    exporting: bool,
) -> WorkerResponse {
    let span = job_span(&request, exporting);
    let _entered = span.enter();
    let path = crate::ipc::job_path(&request).map(ToOwned::to_owned);
    let mut stats = ReadStats::default();
    // `io.read_bytes` is an attribute of the exported span only: without an exporter
    // the two reads of `/proc/self/io` a job are skipped (system calls on the path of
    // every read, for a number nobody sees).
    let io_before = exporting.then(io::read_bytes);
    let _ = gdal_errors::take_overview();
    let speculative = match &request.job {
        Some(worker_request::Job::Point(r)) => r.defer_remote,
        Some(worker_request::Job::Statistics(r)) => r.defer_remote,
        Some(worker_request::Job::Preview(r)) => r.defer_remote,
        _ => false,
    };
    remote.begin_job(request.id, request.reply_slot, speculative);
    let result = match request.job {
        Some(worker_request::Job::Read(read)) => {
            let _busy = hooks.on_read(&read.path);
            let result = read::read(cache, Some(remote), &read, &mut stats);
            if let Ok(worker_response::Result::Read(r)) = &result {
                note_coverage(coverage, remote, &read, r);
            }
            result
        }
        Some(worker_request::Job::Ping(_)) => Ok(worker_response::Result::Pong(Pong {})),
        Some(worker_request::Job::Info(info)) => {
            read::info(cache, &info.path, &mut stats).map(worker_response::Result::Info)
        }
        Some(worker_request::Job::Point(req)) => {
            let _busy = hooks.on_read(&req.path);
            point::point(cache, &req, &mut stats).map(worker_response::Result::Point)
        }
        Some(worker_request::Job::Statistics(req)) => {
            let _busy = hooks.on_read(&req.path);
            statistics::statistics(cache, &req, &mut stats).map(worker_response::Result::Statistics)
        }
        Some(worker_request::Job::Preview(req)) => {
            let _busy = hooks.on_read(&req.path);
            preview::preview(cache, &req, &mut stats).map(worker_response::Result::Preview)
        }
        Some(worker_request::Job::Tile(job)) => {
            whole_tile::whole_tile(cache, hooks, remote, &job, &mut stats, exporting)
        }
        Some(worker_request::Job::RangeReply(_)) => {
            Err(JobError::new(ErrorKind::Protocol, "a range reply arrived while no job was in flight"))
        }
        None => Err(JobError::new(ErrorKind::Protocol, "request carries no job")),
    };
    // A speculative job that missed bytes answers with them, whatever GDAL made of the
    // failed reads; its dataset is opened afresh next time, in case GDAL kept state of
    // the failure.
    let missed = remote.missed();
    // A remote read the front could not serve explains the job's failure better than
    // GDAL's words about it ("read failed").
    let result = match (result, remote.end_job(&mut stats)) {
        (_, _) if !missed.is_empty() => {
            gdal_errors::clear();
            if let Some(path) = &path {
                cache.forget_remote(path);
            }
            Ok(worker_response::Result::Deferred(Deferred {
                ranges: block_ranges::merge(missed),
                reads: Vec::new(),
            }))
        }
        (Err(_), Some((kind, message))) => Err(JobError::new(kind, message)),
        (result, _) => result,
    };
    // Every error leaves the worker here: GDAL's source file names and line numbers
    // stay behind, whichever step quoted GDAL.
    let mut result =
        result.map_err(|e| JobError::new(e.kind, gdal_errors::without_source_locations(&e.message)));
    stats.overview_level = gdal_errors::take_overview();
    stats.io_read_bytes = io_before.map_or(0, |before| io::read_bytes().saturating_sub(before));
    record_stats(&span, &stats);
    if let (Err(e), Some(path)) = (&mut result, &path) {
        // GDAL names a local dataset by its staged link, a remote one by its version;
        // the front knows them by their paths.
        if let Some(staged) = cache.gdal_path(path) {
            e.message = e.message.replace(staged, path);
        }
        e.message = remote_io::unversioned(&e.message);
    }
    if let Err(e) = &result {
        span.record("error.kind", e.kind.as_str_name());
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_description", e.message.as_str());
        tracing::debug!(kind = e.kind.as_str_name(), "job failed: {}", e.message);
    }
    WorkerResponse {
        id: request.id,
        result: Some(result.unwrap_or_else(|e| {
            worker_response::Result::Error(WorkerError { kind: e.kind as i32, message: e.message })
        })),
        stats: Some(stats),
    }
}

/// Notes what the answer `r` to `read` covers of its tile, its mask in the answer or
/// in the job's slot of the reply region.
fn note_coverage(
    coverage: &mut coverage::Coverage,
    remote: &remote_io::Remote,
    read: &crate::pb::worker::ReadRequest,
    r: &crate::pb::worker::ReadResult,
) {
    if read.tile == 0 {
        return;
    }
    if r.shared_mask == 0 {
        coverage.note(read.tile, read.tile_rank, &r.mask);
        return;
    }
    let (start, len) = (r.shared_pixels as usize, r.shared_mask as usize);
    remote.with_answer_region(start + len, |slot| coverage.note(read.tile, read.tile_rank, &slot[start..]));
}

/// The job's statistics on its span (integers as i64: OpenTelemetry has no unsigned type).
fn record_stats(span: &tracing::Span, stats: &ReadStats) {
    span.record("dataset_cache.hit", stats.dataset_cache_hit);
    span.record("gdal.open_ms", stats.open_us as f64 / 1e3);
    span.record("gdal.warp_ms", stats.warp_us as f64 / 1e3);
    span.record("gdal.overview_level", i64::from(stats.overview_level));
    span.record("remote.questions", stats.network_requests as i64);
    span.record("remote.bytes", stats.network_bytes as i64);
    span.record("remote.held", stats.held_ranges as i64);
    span.record("io.read_bytes", stats.io_read_bytes as i64);
}

fn garbage_hook(hooks: &test_hooks::TestHooks, request: &WorkerRequest) -> Option<test_hooks::Garbage> {
    match &request.job {
        Some(worker_request::Job::Read(read)) => hooks.garbage_for(&read.path),
        _ => None,
    }
}

/// Asks the kernel to SIGKILL this process when the front dies, and exits at once if the
/// front is already gone (the race between fork and prctl).
fn die_with_parent() -> nix::Result<()> {
    let parent = nix::unistd::getppid();
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    if nix::unistd::getppid() != parent || parent.as_raw() == 1 {
        std::process::exit(0);
    }
    Ok(())
}

/// Keeps the real stdout for frames and points fd 1 at stderr.
fn redirect_stdout_to_stderr() -> nix::Result<File> {
    let frames = nix::unistd::dup(std::io::stdout().as_fd())?;
    nix::unistd::dup2_stdout(std::io::stderr().as_fd())?;
    Ok(File::from(frames))
}
