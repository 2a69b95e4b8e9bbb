//! One worker process as the front sees it: spawn + handshake, one request/response
//! exchange at a time, kill, and a reaper task that waits for the exit, logs it with the
//! tail of the worker's stderr, and leaves no zombie.

use std::{
    collections::VecDeque,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::watch,
    time::Instant,
};

use super::{
    registry::Registry,
    state::{ExitInfo, ProcessState, WorkerState},
};
use crate::{
    ipc::{
        self, FrameError, PROTOCOL_VERSION, RangeService,
        region::{REPLY_REGION_BYTES, REPLY_REGION_ENV, ReplyRegion},
    },
    pb::worker::{Hello, WorkerRequest, WorkerResponse},
};

/// Variables a worker inherits from the front, by prefix: GDAL and its libraries' options,
/// OpenTelemetry settings, and (in builds with the `test-hooks` feature only) the test
/// hooks. No cloud credentials or settings (`AWS_*`, `GOOGLE_*`, `AZURE_*`): the front
/// alone reads remote assets.
#[cfg(feature = "test-hooks")]
pub const INHERITED_ENV_PREFIXES: &[&str] = &["GDAL_", "CPL_", "VSI_", "OTEL_", "PROJ_", "TESSERA_TEST_"];
/// Variables a worker inherits from the front, by prefix (see the `test-hooks` build).
#[cfg(not(feature = "test-hooks"))]
pub const INHERITED_ENV_PREFIXES: &[&str] = &["GDAL_", "CPL_", "VSI_", "OTEL_", "PROJ_"];

/// Variables a worker inherits from the front, by name: the log filter, where GDAL and
/// PROJ find their data, the dynamic loader's path and the temporary directory.
pub const INHERITED_ENV: &[&str] = &["RUST_LOG", "GDAL_DATA", "PROJ_LIB", "LD_LIBRARY_PATH", "TMPDIR"];

/// The part of `vars` (the front's environment) a worker gets: nothing else of the front
/// reaches it (no tokens, no service credentials, no `HOME`, no proxies: its network
/// access is none: remote assets come from the front).
pub fn worker_environment(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.filter(|(k, _)| {
        INHERITED_ENV.contains(&k.as_str()) || INHERITED_ENV_PREFIXES.iter().any(|p| k.starts_with(p))
    })
    .collect()
}

/// Lines of a worker's stderr kept for the log line about its death.
const STDERR_TAIL_LINES: usize = 20;

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The process could not be started.
    #[error("cannot start worker {exe}: {source}")]
    Exec {
        /// The executable.
        exe: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The worker was SIGKILLed from outside before its hello.
    #[error("worker {pid} was killed before it shook hands")]
    Killed {
        /// The worker's pid.
        pid: u32,
    },
    /// No valid Hello within the timeout.
    #[error("worker {pid} did not shake hands: {reason}")]
    Handshake {
        /// The worker's pid.
        pid: u32,
        /// What went wrong.
        reason: String,
    },
}

/// Why an exchange with a worker failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The deadline passed; the worker has been killed.
    #[error("the worker did not answer before the deadline")]
    Timeout {
        /// The worker was stopped (SIGSTOP, a debugger) when the deadline passed: held up
        /// from outside, which says nothing about what it was reading.
        stopped: bool,
    },
    /// The worker died (or closed its channel) before answering.
    #[error("the worker died mid-job")]
    Died,
    /// The job was queued in the worker's pipe behind another (pipelined) whose end
    /// ended the worker: it never ran, and says nothing about its asset.
    #[error("the worker ended before it started the job")]
    NotRun,
    /// The worker sent something that is not a valid answer; it has been killed.
    #[error("protocol fault: {0}")]
    Fault(String),
}

/// The caller of a job queued behind another (see `pipeline.rs`), as the exchange that
/// queued it holds it.
pub trait QueuedCaller {
    /// Resolves once the caller no longer waits for the job's answer.
    fn gone(&mut self) -> impl Future<Output = ()> + Send + '_;
}

/// No caller: never gone.
impl QueuedCaller for () {
    fn gone(&mut self) -> impl Future<Output = ()> + Send + '_ {
        std::future::pending()
    }
}

/// A live worker process and its frame channel.
#[derive(Debug)]
pub struct WorkerProcess {
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    state: WorkerState,
    jobs_done: u64,
    /// Jobs after which this worker retires (the pool's budget with jitter).
    job_limit: u64,
    /// The process's life, shared with its reaper: the handle marks it `Retiring` when it
    /// ends the worker on purpose (so its exit is not logged as a crash), the reaper
    /// marks it `Exited` when it has collected the exit status.
    process: Arc<watch::Sender<ProcessState>>,
    /// The memory the worker puts a read's pixels in (see [`ReplyRegion`]); `None`
    /// where it could not be made, and the pixels come through the pipe.
    region: Option<ReplyRegion>,
    /// The job whose request [`send`](Self::send) wrote ahead of its
    /// [`exchange`](Self::exchange), with how the writing went.
    sent: Option<(u64, Result<(), ExchangeError>)>,
    /// The worker's `/proc/PID/statm`, opened once: [`rss_bytes`](Self::rss_bytes)
    /// reads it after every job, on a runtime thread, between one job and the next.
    /// Bound to this process: once it is gone, reads fail instead of finding another
    /// process that took its pid.
    statm: Option<std::fs::File>,
}

/// Bytes a job pipe holds: a read's reply (a 256 px RGBA tile with its mask is ~330 KB)
/// fits in one write, instead of the worker and the front taking turns over Linux's
/// default 64 KiB, with a wake-up of each per turn. Pipe pages are allocated only while
/// they hold data. Above `/proc/sys/fs/pipe-max-size` the kernel refuses, and the
/// default stays.
const PIPE_BYTES: i32 = 1 << 20;

fn widen_pipe(pipe: &impl std::os::fd::AsFd, pid: u32) {
    if let Err(e) = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BYTES)) {
        tracing::debug!(pid, error = %e, "job pipe keeps its default size");
    }
}

impl WorkerProcess {
    /// Starts `exe worker` in its own process group, with a minimal environment (see
    /// [`worker_environment`]) and `limits` on its command line, and waits for its
    /// handshake.
    pub async fn spawn(
        exe: &Path,
        handshake_timeout: Duration,
        limits: &crate::ipc::limits::WorkerLimits,
        env: &[(String, String)],
        registry: &Registry,
    ) -> Result<Self, SpawnError> {
        let mut command = Command::new(exe);
        command.arg("worker").args(limits.args()).env_clear().envs(worker_environment(std::env::vars()));
        let region = match ReplyRegion::create(REPLY_REGION_BYTES) {
            Ok(region) => {
                let fd = region.raw_fd();
                command.env(REPLY_REGION_ENV, format!("{fd}:{}", region.len()));
                // SAFETY: one fcntl between fork and exec, async-signal-safe.
                unsafe {
                    command.pre_exec(move || ReplyRegion::inherit(fd));
                }
                Some(region)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot make a worker's reply region; its pixels take the pipe");
                None
            }
        };
        // Workers export their spans under their own service name: "tessera-worker".
        let service =
            format!("{}{}", crate::telemetry::service_name(), crate::telemetry::WORKER_SERVICE_SUFFIX);
        command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("OTEL_SERVICE_NAME", service)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child =
            command.spawn().map_err(|source| SpawnError::Exec { exe: exe.display().to_string(), source })?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_group(pid);
            return Err(SpawnError::Handshake { pid, reason: "stdio pipes missing".into() });
        };

        widen_pipe(&stdin, pid);
        widen_pipe(&stdout, pid);
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
        tokio::spawn(forward_stderr(pid, stderr, Arc::clone(&tail)));
        let process = Arc::new(watch::Sender::new(ProcessState::Running));
        registry.insert(pid);
        tokio::spawn(reap(child, pid, tail, Arc::clone(&process), registry.clone()));

        let mut worker = Self {
            pid,
            stdin,
            stdout: BufReader::new(stdout),
            state: WorkerState::Starting,
            jobs_done: 0,
            job_limit: u64::MAX,
            process,
            region,
            sent: None,
            statm: std::fs::File::open(format!("/proc/{pid}/statm")).ok(),
        };
        match tokio::time::timeout(handshake_timeout, ipc::read_frame_async::<Hello>(&mut worker.stdout))
            .await
        {
            Ok(Ok(hello)) if hello.protocol_version == PROTOCOL_VERSION => {
                tracing::debug!(pid, gdal = %hello.gdal_version, "worker ready");
                worker.state = WorkerState::Idle;
                Ok(worker)
            }
            outcome => {
                let died = matches!(outcome, Ok(Err(FrameError::Closed)));
                let reason = match outcome {
                    Ok(Ok(hello)) => format!(
                        "protocol version {} (this front speaks {PROTOCOL_VERSION})",
                        hello.protocol_version
                    ),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no hello within {handshake_timeout:?}"),
                };
                // A worker killed from outside during its start is not a crash loop.
                let external = died
                    && worker
                        .wait_exited(Duration::from_millis(500))
                        .await
                        .is_some_and(|e| e.is_external_kill());
                worker.kill();
                if external {
                    return Err(SpawnError::Killed { pid });
                }
                Err(SpawnError::Handshake { pid, reason })
            }
        }
    }

    /// The worker's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Jobs this worker has answered.
    #[must_use]
    pub fn jobs_done(&self) -> u64 {
        self.jobs_done
    }

    /// Jobs after which this worker retires.
    #[must_use]
    pub fn job_limit(&self) -> u64 {
        self.job_limit
    }

    /// Sets the job budget.
    pub fn set_job_limit(&mut self, limit: u64) {
        self.job_limit = limit;
    }

    /// Where the worker is in its life.
    #[must_use]
    pub fn state(&self) -> WorkerState {
        if self.process.borrow().exit().is_some() { WorkerState::Dead } else { self.state }
    }

    /// Writes a job's request ahead of its [`exchange`](Self::exchange), which then only
    /// waits for the answer. It lets a caller start the job before handing the wait to
    /// another task: a job's frame fits in the pipe of an idle worker, so the writing
    /// ends in the poll that starts it. A failure (the worker gone, or no room by
    /// `deadline`) marks the worker dead or kills it, as in the exchange, and is kept for
    /// the exchange to return.
    pub async fn send(&mut self, request: &WorkerRequest, deadline: Instant) {
        self.state = WorkerState::Busy;
        let written =
            tokio::time::timeout_at(deadline, ipc::write_frame_async(&mut self.stdin, request)).await;
        let result = match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failed(Some(e))),
            Err(_) => Err(self.failed(None)),
        };
        self.sent = Some((request.id, result));
    }

    /// Sends one request (unless [`send`](Self::send) did) and waits for its response
    /// until `deadline`. On a timeout or a protocol fault the worker is killed; on any
    /// error it is [`WorkerState::Dead`].
    ///
    /// Mid-job, the worker may ask for bytes of the job's remote asset: each question is
    /// answered by `ranges` (or refused without it) and the wait goes on.
    pub async fn exchange(
        &mut self,
        request: &WorkerRequest,
        deadline: Instant,
        ranges: Option<&dyn RangeService>,
    ) -> Result<WorkerResponse, ExchangeError> {
        self.exchange_then(request, deadline, ranges, std::future::pending::<Option<(WorkerRequest, ())>>())
            .await
            .0
    }

    /// [`exchange`](Self::exchange), and meanwhile, once, the job `next` yields (if it
    /// yields one) written into the worker's pipe behind this one, in the other slot of
    /// the reply region: the worker starts it as soon as it has answered (see
    /// `pipeline.rs`). Only for a job that asks no questions (a local read): a question
    /// from a job with another queued behind it is a protocol fault. Returns the answer
    /// and the job queued, if any; the job queued is already written, so its own
    /// exchange only waits (as after [`send`](Self::send)). If this exchange fails, the
    /// worker is gone and the job queued never ran. If the queued job's caller goes
    /// before this exchange ends, the job is withdrawn in the reply region: the worker
    /// answers it without running it (unless it had started).
    pub async fn exchange_then<T: QueuedCaller>(
        &mut self,
        request: &WorkerRequest,
        deadline: Instant,
        ranges: Option<&dyn RangeService>,
        next: impl Future<Output = Option<(WorkerRequest, T)>>,
    ) -> (Result<WorkerResponse, ExchangeError>, Option<(WorkerRequest, T)>) {
        let mut queued = None;
        let result = self.exchange_queueing(request, deadline, ranges, next, &mut queued).await;
        if let Some((next, _)) = &queued {
            self.sent = Some((next.id, Ok(())));
        }
        (result, queued)
    }

    async fn exchange_queueing<T: QueuedCaller>(
        &mut self,
        request: &WorkerRequest,
        deadline: Instant,
        ranges: Option<&dyn RangeService>,
        next: impl Future<Output = Option<(WorkerRequest, T)>>,
        queued: &mut Option<(WorkerRequest, T)>,
    ) -> Result<WorkerResponse, ExchangeError> {
        use crate::pb::worker::worker_response::Result as R;
        // Whether `send` wrote this job's request already (a failure there ends it here).
        let written_ahead = match self.sent.take() {
            Some((id, result)) if id == request.id => {
                result?;
                true
            }
            _ => false,
        };
        self.state = WorkerState::Busy;
        let (stdin, stdout, region) = (&mut self.stdin, &mut self.stdout, &mut self.region);
        let mut next = std::pin::pin!(next);
        let (mut asking, mut withdrawn) = (true, false);
        let io = async {
            if !written_ahead {
                ipc::write_frame_async(&mut *stdin, request).await?;
            }
            loop {
                // The answer is read by one future, polled to its end even while a job
                // is queued meanwhile (a frame half read would be lost).
                let read = ipc::read_frame_async::<WorkerResponse>(&mut *stdout);
                let mut read = std::pin::pin!(read);
                let response = loop {
                    if let Some((job, caller)) = queued.as_mut().filter(|_| !withdrawn) {
                        tokio::select! {
                            biased;
                            response = &mut read => break response?,
                            () = caller.gone() => {
                                withdrawn = true;
                                if let Some(region) = region.as_ref() {
                                    region.withdraw(job.id);
                                }
                            }
                        }
                        continue;
                    }
                    tokio::select! {
                        biased;
                        response = &mut read => break response?,
                        job = &mut next, if asking => {
                            asking = false;
                            if let Some((mut job, tag)) = job {
                                job.reply_slot = request.reply_slot ^ 1;
                                // Kept before the writing: a job half written (the
                                // deadline passing) is lost with the worker, and must
                                // hear so.
                                let (job, _) = queued.insert((job, tag));
                                ipc::write_frame_async(&mut *stdin, job).await?;
                            }
                        }
                    }
                };
                let question = match response.result {
                    Some(R::Range(question)) if response.id == request.id => question,
                    _ => return Ok(response),
                };
                if queued.is_some() {
                    return Err(FrameError::Unexpected(
                        "a job with another queued behind it asked the front for bytes".into(),
                    ));
                }
                let answer = range_answer(request, ranges, question, deadline, region.as_mut()).await;
                ipc::write_frame_async(&mut *stdin, &answer).await?;
            }
        };
        let outcome = tokio::time::timeout_at(deadline, io).await;
        let result = match outcome {
            Ok(Ok(response)) if response.id != request.id => Err(ExchangeError::Fault(format!(
                "answer for job {} while job {} was in flight",
                response.id, request.id
            ))),
            Ok(Ok(response)) => {
                self.unshare(response, request.reply_slot).and_then(|r| check_response(request, r))
            }
            Ok(Err(e)) => return Err(self.failed(Some(e))),
            Err(_) => return Err(self.failed(None)),
        };
        match result {
            Ok(response) => {
                self.state = WorkerState::Idle;
                self.jobs_done += 1;
                Ok(response)
            }
            Err(e) => {
                self.kill();
                Err(e)
            }
        }
    }

    /// What a failed exchange means (`None`: the deadline passed), with the worker
    /// marked dead or killed.
    fn failed(&mut self, cause: Option<FrameError>) -> ExchangeError {
        let error = match cause {
            None => {
                let stopped = is_stopped(self.pid);
                tracing::warn!(pid = self.pid, stopped, "worker missed its deadline; killing it");
                ExchangeError::Timeout { stopped }
            }
            Some(FrameError::Closed) => ExchangeError::Died,
            Some(e) => ExchangeError::Fault(e.to_string()),
        };
        if matches!(error, ExchangeError::Died) {
            self.state = WorkerState::Dead;
        } else {
            self.kill();
        }
        error
    }

    /// A read's answer with the pixels and mask it left in `slot` of the reply region
    /// copied in, before the worker can be given another job in that slot.
    fn unshare(&self, mut response: WorkerResponse, slot: u32) -> Result<WorkerResponse, ExchangeError> {
        use crate::pb::worker::worker_response::Result as R;
        let Some(R::Read(r)) = &mut response.result else { return Ok(response) };
        if r.shared_pixels == 0 && r.shared_mask == 0 {
            return Ok(response);
        }
        let fault = |what: &str| Err(ExchangeError::Fault(format!("a read's answer {what}")));
        if !r.pixels.is_empty() || !r.mask.is_empty() {
            return fault("has pixels both in the pipe and in the reply region");
        }
        let Some(region) = &self.region else {
            return fault("names a reply region the worker was not given");
        };
        match region.copy_parts(slot, &[r.shared_pixels, r.shared_mask]).map(<[Vec<u8>; 2]>::try_from) {
            Some(Ok([pixels, mask])) => {
                (r.pixels, r.mask) = (pixels, mask);
                (r.shared_pixels, r.shared_mask) = (0, 0);
                Ok(response)
            }
            _ => fault(&format!(
                "names {} bytes of a {} byte reply region",
                u64::from(r.shared_pixels) + u64::from(r.shared_mask),
                region.len()
            )),
        }
    }

    /// Waits (bounded) for the reaper to see the process exit, and says how it ended.
    pub async fn wait_exited(&mut self, limit: Duration) -> Option<ExitInfo> {
        let mut process = self.process.subscribe();
        match tokio::time::timeout(limit, process.wait_for(|p| p.exit().is_some())).await {
            Ok(Ok(state)) => state.exit(),
            _ => None,
        }
    }

    /// Resident memory of the worker in bytes, from `/proc/PID/statm` (one short read of
    /// the file opened at spawn: this runs after every job, on a runtime thread).
    #[must_use]
    pub fn rss_bytes(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 128];
        let n = self.statm.as_ref()?.read_at(&mut buf, 0).ok()?;
        let pages: u64 = std::str::from_utf8(&buf[..n]).ok()?.split_whitespace().nth(1)?.parse().ok()?;
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
        Some(pages * u64::try_from(page).ok()?)
    }

    /// SIGKILLs the worker's process group. The reaper collects it.
    pub fn kill(&mut self) {
        self.retire();
        self.state = WorkerState::Dead;
        kill_group(self.pid);
    }

    /// Marks the process as ended on purpose (its exit is expected). An exit the reaper
    /// has already collected stays as it is.
    fn retire(&self) {
        self.process.send_if_modified(|process| {
            let running = *process == ProcessState::Running;
            if running {
                *process = ProcessState::Retiring;
            }
            running
        });
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // A worker leaves the pool only when it is dead, retired or the pool closes.
        // Closing stdin (dropping it) asks it to exit; the reaper escalates to SIGKILL
        // after its grace period.
        self.retire();
        if self.state != WorkerState::Dead {
            let _ = nix::sys::signal::killpg(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        }
    }
}

/// When the answer to a worker's question must be ready, for a job due at `deadline`: a
/// tenth of the time left (at most 100 ms) earlier.
fn answer_by(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    deadline.checked_sub((left / 10).min(Duration::from_millis(100))).unwrap_or(deadline)
}
/// The front's answer to `question`, asked by the worker mid-`request` about the asset
/// [`ipc::question_asset`] names: the bytes from `ranges` (a refusal without it), through
/// the job's slot of `region` when they fit. Answered a little before the job's deadline, so that a fetch that
/// runs out of time fails the job with its own error instead of getting the worker
/// killed at the deadline.
async fn range_answer(
    request: &WorkerRequest,
    ranges: Option<&dyn RangeService>,
    question: crate::pb::worker::RangeRequest,
    deadline: Instant,
    region: Option<&mut ReplyRegion>,
) -> WorkerRequest {
    use crate::pb::worker::{ErrorKind, RangeReply, WorkerError, worker_request::Job};
    let mut reply = match (ranges, ipc::question_asset(request, &question.path)) {
        (Some(ranges), Some(path)) => ranges.serve(path, question, answer_by(deadline)).await,
        _ => RangeReply {
            error: Some(WorkerError {
                kind: ErrorKind::RemoteDenied as i32,
                message: "this server reads no remote assets".to_owned(),
            }),
            ..RangeReply::default()
        },
    };
    if let Some(region) = region
        && !reply.data.is_empty()
        && let Some(lens) =
            region.put(request.reply_slot, &reply.data.iter().map(Vec::as_slice).collect::<Vec<_>>())
    {
        reply.shared_data = lens;
        reply.data = Vec::new();
    }
    WorkerRequest { id: request.id, job: Some(Job::RangeReply(reply)), ..WorkerRequest::default() }
}

/// A response that answers the request it claims to answer, with buffers of the sizes
/// its header claims; anything else is a protocol fault.
pub fn check_response(
    request: &WorkerRequest,
    response: WorkerResponse,
) -> Result<WorkerResponse, ExchangeError> {
    use crate::pb::worker::{worker_request::Job, worker_response::Result as R};
    let fault = |what: String| Err(ExchangeError::Fault(what));
    match (&request.job, &response.result) {
        (Some(Job::Read(req)), Some(R::Read(r))) => {
            if (r.width, r.height) != (req.width, req.height) {
                return fault(format!(
                    "{}x{} pixels for a {}x{} read",
                    r.width, r.height, req.width, req.height
                ));
            }
            check_pixels(r)?;
            Ok(response)
        }
        // Only a job that was allowed to defer may answer Deferred.
        (Some(job), Some(R::Deferred(_)))
            if match job {
                Job::Read(r) => r.plan_remote,
                Job::Point(r) => r.defer_remote,
                Job::Statistics(r) => r.defer_remote,
                Job::Preview(r) => r.defer_remote,
                Job::Tile(t) => t.reads.iter().any(|r| r.plan_remote),
                _ => false,
            } =>
        {
            Ok(response)
        }
        (Some(Job::Preview(_)), Some(R::Preview(r))) => {
            check_pixels(r)?;
            Ok(response)
        }
        (Some(Job::Point(_)), Some(R::Point(p))) => {
            let n = p.bands.len();
            if p.values.len() != n || p.valid.len() != n || p.band_descriptions.len() != n {
                return fault(format!(
                    "{} values, {} flags and {} descriptions for {n} bands",
                    p.values.len(),
                    p.valid.len(),
                    p.band_descriptions.len()
                ));
            }
            Ok(response)
        }
        (Some(Job::Tile(job)), Some(R::Tile(t))) => {
            if t.read_us.is_empty() || t.read_us.len() > job.reads.len() {
                return fault(format!("{} reads used of a tile job of {}", t.read_us.len(), job.reads.len()));
            }
            Ok(response)
        }
        (Some(Job::Info(_)), Some(R::Info(_)))
        | (Some(Job::Statistics(_)), Some(R::Statistics(_)))
        | (Some(Job::Ping(_)), Some(R::Pong(_)))
        | (
            Some(
                Job::Read(_)
                | Job::Info(_)
                | Job::Point(_)
                | Job::Statistics(_)
                | Job::Preview(_)
                | Job::Tile(_),
            ),
            Some(R::Error(_)),
        ) => Ok(response),
        (_, other) => {
            let kind = match other {
                Some(R::Read(_)) => "pixels",
                Some(R::Info(_)) => "a description",
                Some(R::Pong(_)) => "a pong",
                Some(R::Point(_)) => "point values",
                Some(R::Statistics(_)) => "statistics",
                Some(R::Preview(_)) => "a preview",
                Some(R::Error(_)) => "an error",
                Some(R::Range(_)) => "a range request for another job",
                Some(R::Deferred(_)) => "a deferral",
                Some(R::Tile(_)) => "a tile",
                None => "nothing",
            };
            fault(format!("answered with {kind}"))
        }
    }
}

/// Pixels whose buffers have the sizes their header claims.
fn check_pixels(r: &crate::pb::worker::ReadResult) -> Result<(), ExchangeError> {
    let fault = |what: String| Err(ExchangeError::Fault(what));
    let Some(dtype) = crate::render::DataType::from_worker(r.dtype) else {
        return fault(format!("unknown data type {}", r.dtype));
    };
    // u128: a hostile header (u32::MAX bands of u32::MAX^2 pixels) cannot overflow.
    let pixels = u128::from(r.width) * u128::from(r.height);
    let expected = pixels * u128::from(r.band_count) * dtype.size() as u128;
    if r.pixels.len() as u128 != expected || r.mask.len() as u128 != pixels {
        return fault(format!(
            "{} pixel bytes and {} mask bytes where the header claims {expected} and {pixels}",
            r.pixels.len(),
            r.mask.len()
        ));
    }
    Ok(())
}

/// Whether process `pid` is stopped (state `T`, or `t` when traced) as `/proc` shows it.
fn is_stopped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so the state is the
    // first field after the last ')'.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some('T' | 't'))
}

fn kill_group(pid: u32) {
    if pid != 0 {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

/// Grace a worker gets between SIGTERM (or stdin closing) and SIGKILL.
const EXIT_GRACE: Duration = Duration::from_secs(2);

async fn reap(
    mut child: Child,
    pid: u32,
    tail: Arc<Mutex<VecDeque<String>>>,
    process: Arc<watch::Sender<ProcessState>>,
    registry: Registry,
) {
    // Until the front lets it go, wait for the exit (a crash) or for that moment; from
    // then on one grace period, after which a worker still here is forced out.
    let mut state = process.subscribe();
    let status = loop {
        if *state.borrow_and_update() == ProcessState::Retiring {
            break tokio::select! {
                status = child.wait() => status,
                () = tokio::time::sleep(EXIT_GRACE) => {
                    kill_group(pid);
                    child.wait().await
                }
            };
        }
        tokio::select! {
            status = child.wait() => break status,
            // `process` (held here) keeps the channel open: this only wakes on a change.
            _ = state.changed() => {}
        }
    };
    // Let the stderr forwarder drain the last lines before reading the tail.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let info = match &status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            ExitInfo { code: s.code(), signal: s.signal() }
        }
        Err(_) => ExitInfo { code: None, signal: None },
    };
    // An exit the front asked for is routine; any other is a crash.
    let expected = process.send_replace(ProcessState::Exited(info)) == ProcessState::Retiring;
    registry.remove(pid);
    if expected {
        tracing::debug!(pid, ?status, "worker exited");
        return;
    }
    let tail = tail.lock().map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default();
    match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            tracing::error!(pid, code = ?s.code(), signal = ?s.signal(), stderr_tail = %tail, "worker died");
        }
        Err(e) => tracing::error!(pid, error = %e, "cannot collect worker exit status"),
    }
}

async fn forward_stderr(pid: u32, stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        crate::telemetry::forward_worker_line(pid, &line);
        if let Ok(mut t) = tail.lock() {
            if t.len() == STDERR_TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::worker::{ReadRequest, worker_request::Job};

    fn read_request(width: u32, height: u32) -> WorkerRequest {
        WorkerRequest {
            id: 1,
            job: Some(Job::Read(ReadRequest { width, height, ..Default::default() })),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_retiring_worker_that_ignores_sigterm_is_killed_after_the_grace() {
        // Its own process group, as workers have: the kill reaches it and nothing else.
        let child = tokio::process::Command::new("sh")
            .args(["-c", "trap '' TERM; exec sleep 30"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let process = Arc::new(watch::channel(ProcessState::Running).0);
        let reaper =
            tokio::spawn(reap(child, pid, Arc::default(), Arc::clone(&process), Registry::default()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        process.send_replace(ProcessState::Retiring);
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
        tokio::time::timeout(EXIT_GRACE * 3, reaper).await.expect("the reaper gave up waiting").unwrap();
        let waited = started.elapsed();
        assert!(waited >= EXIT_GRACE && waited < EXIT_GRACE * 2, "killed after {waited:?}");
        let ProcessState::Exited(info) = *process.borrow() else { panic!("not collected") };
        assert_eq!(info, ExitInfo { code: None, signal: Some(Signal::SIGKILL as i32) });
    }

    #[test]
    fn a_stopped_process_is_seen_as_stopped() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert!(!is_stopped(pid));
        nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !is_stopped(pid) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(is_stopped(pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!is_stopped(pid), "a reaped process is not stopped");
    }

    #[test]
    fn a_hostile_read_header_is_a_fault_not_an_overflow() {
        // Found by `make fuzz`: band_count, width and height all u32::MAX.
        let frame = [
            0x00, 0x00, 0x00, 0x18, 0x08, 0x01, 0x12, 0x14, 0x08, 0x01, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f,
            0x18, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x20, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ];
        let response: WorkerResponse = ipc::read_frame(&mut frame.as_slice()).unwrap();
        for request in [read_request(256, 256), read_request(u32::MAX, u32::MAX)] {
            assert!(matches!(check_response(&request, response.clone()), Err(ExchangeError::Fault(_))));
        }
    }

    #[test]
    fn new_job_answers_are_checked_like_reads() {
        use crate::pb::worker::{
            DataType, PointRequest, PointResult, PreviewRequest, ReadResult, StatisticsRequest,
            worker_response::Result as R,
        };
        let request = |job| WorkerRequest { id: 1, job: Some(job), ..Default::default() };
        let answer = |result| WorkerResponse { id: 1, result: Some(result), stats: None };
        let preview = request(Job::Preview(PreviewRequest::default()));
        let pixels = |len| ReadResult {
            dtype: DataType::Uint16 as i32,
            band_count: 1,
            width: 3,
            height: 2,
            pixels: vec![0; len],
            mask: vec![0; 6],
            ..ReadResult::default()
        };
        assert!(check_response(&preview, answer(R::Preview(pixels(12)))).is_ok());
        assert!(matches!(
            check_response(&preview, answer(R::Preview(pixels(6)))),
            Err(ExchangeError::Fault(_))
        ));
        let point = request(Job::Point(PointRequest::default()));
        let values = |n| PointResult {
            bands: vec![1, 2],
            values: vec![0.0; n],
            valid: vec![true; 2],
            band_descriptions: vec![String::new(); 2],
            ..Default::default()
        };
        assert!(check_response(&point, answer(R::Point(values(2)))).is_ok());
        assert!(matches!(check_response(&point, answer(R::Point(values(1)))), Err(ExchangeError::Fault(_))));
        let statistics = request(Job::Statistics(StatisticsRequest::default()));
        let Err(ExchangeError::Fault(why)) = check_response(&statistics, answer(R::Preview(pixels(12))))
        else {
            panic!("a preview answering statistics must be a fault");
        };
        assert_eq!(why, "answered with a preview");
    }

    #[test]
    fn workers_inherit_only_what_gdal_needs() {
        let front = [
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/k.json"),
            ("SSL_CERT_FILE", "/ca.pem"),
            ("GDAL_HTTP_TIMEOUT", "3"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("RUST_LOG", "info"),
            ("TESSERA_AUTH_TOKEN", "secret"),
            ("HOME", "/root"),
            ("HTTPS_PROXY", "http://p:3128"),
            ("PATH", "/usr/bin"),
            ("DATABASE_PASSWORD", "hunter2"),
        ];
        let env = worker_environment(front.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        // No cloud credentials or TLS roots: the front alone reads remote assets.
        assert_eq!(names, ["GDAL_HTTP_TIMEOUT", "OTEL_EXPORTER_OTLP_ENDPOINT", "RUST_LOG"]);
    }
}
