//! Remote assets, read through the front: a GDAL virtual file system (`/vsitessera/`)
//! whose reads are questions to the front over the worker's frame channel.
//!
//! Theory of operation. A worker has no network access and no credentials. The front
//! names a remote asset `/vsitessera/<generation>/<url>` (see
//! [`crate::fetch::worker_path`]); GDAL opens it through the plugin installed here
//! (`VSIInstallPluginHandler`, GDAL >= 3.0). Every read GDAL makes (its single reads,
//! and the several ranges of a `ReadMultiRange`, in one question) becomes a
//! [`RangeRequest`] frame on the worker's frame channel, written with the id of the job
//! in flight; the worker then blocks for the front's [`RangeReply`], which the front
//! answers from its shared cache or after fetching the bytes. Questions are only asked
//! during a job, so the channel stays a strict alternation: job, questions and answers,
//! result.
//!
//! Two kinds of job ask less. A read first asks about its planned blocks as a plan
//! ("held?"); when the front holds them all the answer carries their bytes, kept for the
//! read ([`Remote::plan`]), and GDAL's reads inside them ask nothing. The worker keeps
//! those bytes across jobs too ([`crate::worker::held_blocks`]), so a read that plans
//! ranges it was sent before asks nothing at all. A speculative job
//! (a point, statistics or preview job with `defer_remote`) asks every read as a plan,
//! and a read of bytes the front does not hold fails at once and is listed
//! ([`Remote::missed`]) instead of waiting for the network.
//!
//! GDAL's own network file systems (`/vsicurl/`, `/vsis3/` and the rest) are replaced by
//! a handler that refuses every path, so nothing a file names (an overview or a VRT
//! source on a URL) can make the worker reach the network itself. The plugin lists no
//! sibling files, so GDAL never asks for `x.tif.ovr` or `x.tif.msk` of a remote asset.
//!
//! This is the second module (after [`crate::worker::warp`]) that holds `unsafe` code: the
//! callbacks GDAL calls. Each states what it relies on.

use std::{
    cell::RefCell,
    ffi::{CStr, c_char, c_int, c_void},
    fs::File,
    io::{BufReader, BufWriter, StdinLock},
    rc::Rc,
};

use crate::{
    ipc::{self, FrameError},
    pb::worker::{
        ByteRange, ErrorKind, RangeReply, RangeRequest, WorkerRequest, WorkerResponse, worker_request,
        worker_response,
    },
    worker::held_blocks::{HELD_BYTES, HeldBlocks},
};

/// The prefix of remote assets' paths in a worker.
pub const PREFIX: &str = ipc::REMOTE_PREFIX;

/// [`PREFIX`] for GDAL, which keeps the pointer (not a copy) for as long as the handler
/// is installed: a `'static` string.
const PREFIX_C: &std::ffi::CStr = c"/vsitessera/";

/// GDAL's network file systems, refused in workers (`'static`, as [`PREFIX_C`]).
const NETWORK_PREFIXES: &[&std::ffi::CStr] = &[
    c"/vsicurl/",
    c"/vsicurl_streaming/",
    c"/vsis3/",
    c"/vsis3_streaming/",
    c"/vsigs/",
    c"/vsigs_streaming/",
    c"/vsiaz/",
    c"/vsiaz_streaming/",
    c"/vsiadls/",
    c"/vsioss/",
    c"/vsioss_streaming/",
    c"/vsiswift/",
    c"/vsiswift_streaming/",
    c"/vsiwebhdfs/",
    c"/vsihdfs/",
];

/// Reads are widened to the end of the front's cache chunk they end in and the rest kept:
/// GDAL parses a TIFF header with reads of a few bytes each, and each would otherwise be
/// a question to the front. Never further: the bytes of a planned read are cached in
/// whole chunks, so the widened read is still a hit.
const READ_AHEAD: u64 = crate::ipc::REMOTE_CHUNK;

/// The worker's frame channel: requests in, responses out.
pub struct Channel {
    /// Frames from the front.
    pub input: BufReader<StdinLock<'static>>,
    /// Frames to the front.
    pub output: BufWriter<File>,
    /// The memory shared with the front for large payloads both ways (see
    /// [`crate::ipc::region`]); `None` without one.
    pub region: Option<crate::ipc::region::ReplyRegion>,
}

/// What the plugin needs between GDAL's calls: the channel, the job in flight, and what
/// the job's remote reads cost and how the last one failed.
pub struct Remote {
    channel: RefCell<Channel>,
    job: RefCell<Job>,
    /// The slot of the reply region the job in flight (or the last one, until its
    /// answer is written) uses.
    slot: std::cell::Cell<u32>,
    /// The bytes of planned ranges sent by the front, kept across jobs.
    held: RefCell<HeldBlocks>,
}

/// The job in flight, as the plugin sees it.
#[derive(Default)]
struct Job {
    /// Its id (questions carry it); `None` between jobs, when no question may be asked.
    id: Option<u64>,
    /// Why the last remote read failed, as the front said.
    error: Option<(ErrorKind, String)>,
    /// What the job's remote reads cost (questions and bytes in `network_*`).
    stats: crate::pb::worker::ReadStats,
    /// The bytes of the read's planned blocks (offset, bytes), from the front's answer
    /// to the plan or kept from an earlier one, served without a question.
    planned: Vec<(u64, Rc<[u8]>)>,
    /// A job with `defer_remote`: reads of bytes the front does not hold fail at once
    /// instead of waiting, and are listed in `missed`.
    speculative: bool,
    /// The ranges a speculative job could not read.
    missed: Vec<ByteRange>,
}

/// An open remote file.
struct Handle {
    remote: &'static Remote,
    path: String,
    size: u64,
    position: u64,
    eof: bool,
    /// The last widened read: its offset and bytes.
    ahead: Option<(u64, Vec<u8>)>,
}

impl Remote {
    /// Installs the plugin (and the refusing network handlers) for `channel`. Once per
    /// process: the returned reference lives as long as GDAL's handler table.
    pub fn install(channel: Channel) -> &'static Self {
        let remote: &'static Self = Box::leak(Box::new(Self {
            channel: RefCell::new(channel),
            job: RefCell::new(Job::default()),
            slot: std::cell::Cell::new(0),
            held: RefCell::new(HeldBlocks::new(HELD_BYTES)),
        }));
        // SAFETY: the callbacks struct comes from GDAL's allocator and is filled before
        // VSIInstallPluginHandler copies it; `pUserData` points to a leaked (never freed)
        // `Remote`, so it outlives every callback; GDAL keeps the prefix pointers, which
        // are 'static literals.
        unsafe {
            let cb = gdal_sys::VSIAllocFilesystemPluginCallbacksStruct();
            (*cb).pUserData = std::ptr::from_ref(remote).cast_mut().cast::<c_void>();
            (*cb).stat = Some(stat);
            (*cb).open = Some(open);
            (*cb).tell = Some(tell);
            (*cb).seek = Some(seek);
            (*cb).read = Some(read);
            (*cb).read_multi_range = Some(read_multi_range);
            (*cb).eof = Some(eof);
            (*cb).close = Some(close);
            (*cb).sibling_files = Some(no_siblings);
            (*cb).nBufferSize = 0;
            (*cb).nCacheSize = 0;
            gdal_sys::VSIInstallPluginHandler(PREFIX_C.as_ptr(), cb);
            gdal_sys::VSIFreeFilesystemPluginCallbacksStruct(cb);

            let refuse = gdal_sys::VSIAllocFilesystemPluginCallbacksStruct();
            (*refuse).stat = Some(refused_stat);
            (*refuse).open = Some(refused_open);
            for network in NETWORK_PREFIXES {
                gdal_sys::VSIInstallPluginHandler(network.as_ptr(), refuse);
            }
            gdal_sys::VSIFreeFilesystemPluginCallbacksStruct(refuse);
        }
        remote
    }

    /// The next frame from the front, outside any job.
    pub fn read_request(&self) -> Result<WorkerRequest, FrameError> {
        ipc::read_frame(&mut self.channel.borrow_mut().input)
    }

    /// Whether the front withdrew job `id` (queued in the pipe, its caller gone) before
    /// this worker took it: see [`crate::ipc::region`].
    pub fn is_withdrawn(&self, id: u64) -> bool {
        self.channel.borrow().region.as_ref().is_some_and(|r| r.is_withdrawn(id))
    }

    /// Writes a frame to the front.
    pub fn write<M: prost::Message>(&self, message: &M) -> Result<(), FrameError> {
        ipc::write_frame(&mut self.channel.borrow_mut().output, message)
    }

    /// Writes a job's answer, with a read's pixels and mask moved to the reply region
    /// when they fit (the answer then only says how many bytes of each it holds).
    pub fn write_response(&self, mut response: WorkerResponse) -> Result<(), FrameError> {
        let mut channel = self.channel.borrow_mut();
        if let Some(region) = &mut channel.region
            && let Some(worker_response::Result::Read(r)) = &mut response.result
            && !(r.pixels.is_empty() && r.mask.is_empty())
            && let Some([pixels, mask]) = region.put(self.slot.get(), &[&r.pixels, &r.mask]).as_deref()
        {
            (r.shared_pixels, r.shared_mask) = (*pixels, *mask);
            (r.pixels, r.mask) = (Vec::new(), Vec::new());
        }
        ipc::write_frame(&mut channel.output, &response)
    }

    /// Runs `fill` on the first `len` bytes of the job's slot of the reply region, for a
    /// local read to write its answer where the front will take it from (the answer then
    /// only names the bytes); `None`, nothing run, without a slot of that size. Not for a
    /// job that asks the front for bytes: their replies come through the same slot.
    pub fn with_answer_region<R>(&self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        let mut channel = self.channel.borrow_mut();
        let slot = channel.region.as_mut().and_then(|r| r.slot_mut(self.slot.get()))?;
        Some(fill(slot.get_mut(..len)?))
    }

    /// Marks job `id` in flight: remote reads may ask the front until [`Self::end_job`];
    /// its answer and the front's replies use `slot` of the reply region.
    /// In a `speculative` job, a read of bytes the front does not hold is not waited
    /// for: it fails, and its range is listed for [`Self::missed`].
    pub fn begin_job(&self, id: u64, slot: u32, speculative: bool) {
        *self.job.borrow_mut() = Job { id: Some(id), speculative, ..Job::default() };
        self.slot.set(slot);
    }

    /// The ranges the job in flight could not read (a speculative job's), taken.
    pub fn missed(&self) -> Vec<ByteRange> {
        std::mem::take(&mut self.job.borrow_mut().missed)
    }

    /// Reads `ranges` of `path`: asked outright, or in a speculative job asked as a plan
    /// ("held?"), whose answer carries the bytes when they are all held; when they are
    /// not, the ranges are listed as missed and nothing is read.
    fn fetch(&self, path: &str, ranges: Vec<ByteRange>) -> Option<RangeReply> {
        if !self.job.borrow().speculative {
            return self.ask(path, ranges, false);
        }
        let reply = self.ask(path, ranges.clone(), true)?;
        if !reply.ready {
            self.job.borrow_mut().missed.extend(ranges);
            return None;
        }
        if reply.data.len() == ranges.len() {
            return Some(reply);
        }
        // Held, but too many bytes to come with a plan's answer: asked outright.
        self.ask(path, ranges, false)
    }

    /// Ends the job in flight: why its last remote read failed, if one did, and adds
    /// what its remote reads cost to `stats`.
    pub fn end_job(&self, stats: &mut crate::pb::worker::ReadStats) -> Option<(ErrorKind, String)> {
        let job = std::mem::take(&mut *self.job.borrow_mut());
        stats.network_requests += job.stats.network_requests;
        stats.network_bytes += job.stats.network_bytes;
        stats.remote_cache_hits += job.stats.remote_cache_hits;
        stats.remote_cache_misses += job.stats.remote_cache_misses;
        stats.origin_requests += job.stats.origin_requests;
        stats.remote_wait_us += job.stats.remote_wait_us;
        stats.origin_bytes += job.stats.origin_bytes;
        stats.held_ranges += job.stats.held_ranges;
        job.error
    }

    /// Asks the front about `path` and waits for its answer. A failure the front reports
    /// is kept for the job's error; a broken channel ends the worker (the front is gone
    /// or mad, and GDAL cannot be unwound from inside a callback).
    pub fn ask(&self, path: &str, ranges: Vec<ByteRange>, plan: bool) -> Option<RangeReply> {
        let Some(id) = self.job.borrow().id else {
            self.fail(ErrorKind::ReadFailed, "a remote asset was read outside a job".to_owned());
            return None;
        };
        let question = WorkerResponse {
            id,
            result: Some(worker_response::Result::Range(RangeRequest {
                path: path.to_owned(),
                ranges,
                plan,
            })),
            stats: None,
        };
        let answer = {
            let mut channel = self.channel.borrow_mut();
            let answer = ipc::write_frame(&mut channel.output, &question)
                .and_then(|()| ipc::read_frame::<WorkerRequest>(&mut channel.input));
            // Bytes the front left in the reply region are copied out before anything
            // else can use it.
            answer.map(|mut request| {
                if let Some(worker_request::Job::RangeReply(reply)) = &mut request.job
                    && !reply.shared_data.is_empty()
                {
                    let shared = std::mem::take(&mut reply.shared_data);
                    match channel.region.as_ref().and_then(|region| region.copy_parts(self.slot.get(), &shared)) {
                        Some(data) => reply.data = data,
                        None => {
                            reply.error = Some(crate::pb::worker::WorkerError {
                                kind: ErrorKind::Protocol as i32,
                                message: format!(
                                    "the front's answer names {} bytes of a reply region this worker cannot read",
                                    shared.iter().map(|l| u64::from(*l)).sum::<u64>()
                                ),
                            });
                        }
                    }
                }
                request
            })
        };
        let reply =
            match answer {
                Ok(WorkerRequest {
                    id: answered, job: Some(worker_request::Job::RangeReply(reply)), ..
                }) if answered == id => reply,
                Ok(other) => {
                    tracing::error!(
                        job = id,
                        answered = other.id,
                        "the front answered a range request with something else; exiting"
                    );
                    std::process::exit(65);
                }
                Err(e) => {
                    tracing::error!(job = id, "the frame channel broke during a remote read, exiting: {e}");
                    std::process::exit(74);
                }
            };
        let mut job = self.job.borrow_mut();
        job.stats.network_requests += 1;
        job.stats.network_bytes += reply.data.iter().map(|d| d.len() as u64).sum::<u64>();
        job.stats.remote_cache_hits += reply.cache_hits;
        job.stats.remote_cache_misses += reply.cache_misses;
        job.stats.origin_requests += reply.origin_requests;
        job.stats.remote_wait_us += reply.wait_us;
        job.stats.origin_bytes += reply.origin_bytes;
        drop(job);
        if let Some(e) = &reply.error {
            let kind = ErrorKind::try_from(e.kind).unwrap_or(ErrorKind::ReadFailed);
            self.fail(kind, e.message.clone());
            return None;
        }
        Some(reply)
    }

    /// Readies the planned blocks `ranges` of `path` (the versioned path of the dataset
    /// as opened) for the read about to run: reads inside them then ask nothing. From
    /// the bytes this worker kept, when it holds every range; else asked of the front as
    /// a plan, whose answer carries the bytes when the front holds them all (kept then
    /// for later reads too). Whether they are ready; `None` when the question failed.
    /// Ranges whose bytes are missing or short (cut at the end of the asset) are kept as
    /// far as they go.
    pub fn plan(&self, path: &str, ranges: &[ByteRange]) -> Option<bool> {
        let held = self.held.borrow_mut().get_all(path, ranges);
        let data = if let Some(held) = held {
            self.job.borrow_mut().stats.held_ranges += held.len() as u64;
            held
        } else {
            let reply = self.ask(path, ranges.to_vec(), true)?;
            if !reply.ready {
                return Some(false);
            }
            let data: Vec<Rc<[u8]>> = reply.data.into_iter().map(Rc::from).collect();
            self.held.borrow_mut().put_all(path, ranges, &data);
            data
        };
        let mut job = self.job.borrow_mut();
        job.planned.extend(ranges.iter().zip(data).map(|(r, bytes)| (r.offset, bytes)));
        Some(true)
    }

    /// Drops the bytes kept for a read's planned blocks: a job that reads several remote
    /// assets (a whole tile) calls it after each read, since the kept blocks are known by
    /// their offsets only and another asset has other bytes at the same offsets.
    pub fn forget_planned(&self) {
        self.job.borrow_mut().planned.clear();
    }

    /// `length` bytes at `offset` from the planned blocks, if they hold them all.
    fn planned(&self, offset: u64, length: u64) -> Option<Vec<u8>> {
        let job = self.job.borrow();
        let (start, bytes) = job
            .planned
            .iter()
            .find(|(start, bytes)| offset >= *start && offset + length <= start + bytes.len() as u64)?;
        let from = (offset - start) as usize;
        Some(bytes[from..from + length as usize].to_vec())
    }

    fn fail(&self, kind: ErrorKind, message: String) {
        self.job.borrow_mut().error = Some((kind, message));
    }
}

/// Whether `path` names a remote asset (read through the front).
#[must_use]
pub fn is_remote(path: &str) -> bool {
    ipc::is_remote(path)
}

/// Whether remote `path` already names the version to open
/// (`/vsitessera/<generation>/<url>`, as the front sends a read it has just checked).
#[must_use]
pub fn is_versioned(path: &str) -> bool {
    path.strip_prefix(PREFIX).is_some_and(|rest| ipc::split_generation(rest).is_some())
}

// ---- GDAL's callbacks -------------------------------------------------------------

/// # Safety
/// `user` is the `Remote` given at install time.
unsafe fn remote(user: *mut c_void) -> &'static Remote {
    // SAFETY: the caller passes GDAL's pUserData, which is the leaked `Remote`.
    unsafe { &*user.cast::<Remote>() }
}

/// # Safety
/// `name` is a NUL-terminated string from GDAL.
unsafe fn string_of(name: *const c_char) -> Option<String> {
    if name.is_null() {
        return None;
    }
    // SAFETY: GDAL passes a valid NUL-terminated string.
    Some(unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned())
}

/// The whole path of a file the plugin is called about: GDAL passes it without the
/// plugin's prefix.
///
/// # Safety
/// `name` is a NUL-terminated string from GDAL.
unsafe fn path_of(name: *const c_char) -> Option<String> {
    // SAFETY: the caller's contract.
    unsafe { string_of(name) }.map(|rest| format!("{PREFIX}{rest}"))
}

unsafe extern "C" fn stat(
    user: *mut c_void,
    name: *const c_char,
    buf: *mut gdal_sys::VSIStatBufL,
    _flags: c_int,
) -> c_int {
    // SAFETY: GDAL's pUserData and file name, see `remote` and `path_of`.
    let (remote, Some(path)) = (unsafe { remote(user) }, unsafe { path_of(name) }) else { return -1 };
    let Some(reply) = remote.ask(&path, Vec::new(), false) else { return -1 };
    if buf.is_null() {
        return 0;
    }
    // SAFETY: GDAL passes a valid stat buffer, which is glibc's `struct stat64` on
    // Linux; all-zero is a valid value of it.
    unsafe {
        let buf = buf.cast::<libc::stat64>();
        std::ptr::write_bytes(buf, 0, 1);
        (*buf).st_size = reply.size as i64;
        (*buf).st_mode = libc::S_IFREG | 0o444;
    }
    0
}

unsafe extern "C" fn open(user: *mut c_void, name: *const c_char, access: *const c_char) -> *mut c_void {
    // SAFETY: GDAL's pUserData and strings, see `remote` and `path_of`.
    let (remote, Some(path), access) =
        (unsafe { remote(user) }, unsafe { path_of(name) }, unsafe { string_of(access) })
    else {
        return std::ptr::null_mut();
    };
    if access.is_some_and(|a| a.contains(['w', 'a', '+'])) {
        return std::ptr::null_mut();
    }
    let Some(reply) = remote.ask(&path, Vec::new(), false) else { return std::ptr::null_mut() };
    let handle = Box::new(Handle { remote, path, size: reply.size, position: 0, eof: false, ahead: None });
    Box::into_raw(handle).cast::<c_void>()
}

/// # Safety
/// `file` is a pointer `open` returned and `close` has not freed.
unsafe fn handle<'a>(file: *mut c_void) -> &'a mut Handle {
    // SAFETY: the caller's contract.
    unsafe { &mut *file.cast::<Handle>() }
}

unsafe extern "C" fn tell(file: *mut c_void) -> gdal_sys::vsi_l_offset {
    // SAFETY: GDAL passes a handle from `open`.
    unsafe { handle(file) }.position
}

unsafe extern "C" fn seek(file: *mut c_void, offset: gdal_sys::vsi_l_offset, whence: c_int) -> c_int {
    // SAFETY: GDAL passes a handle from `open`.
    let h = unsafe { handle(file) };
    h.position = match whence {
        libc::SEEK_SET => offset,
        libc::SEEK_CUR => h.position.saturating_add(offset),
        libc::SEEK_END => h.size.saturating_add(offset),
        _ => return -1,
    };
    h.eof = false;
    0
}

unsafe extern "C" fn eof(file: *mut c_void) -> c_int {
    // SAFETY: GDAL passes a handle from `open`.
    c_int::from(unsafe { handle(file) }.eof)
}

unsafe extern "C" fn close(file: *mut c_void) -> c_int {
    if !file.is_null() {
        // SAFETY: `file` came from Box::into_raw in `open`; GDAL closes it once.
        drop(unsafe { Box::from_raw(file.cast::<Handle>()) });
    }
    0
}

unsafe extern "C" fn read(file: *mut c_void, buffer: *mut c_void, size: usize, count: usize) -> usize {
    // SAFETY: GDAL passes a handle from `open`.
    let h = unsafe { handle(file) };
    let wanted = size.saturating_mul(count) as u64;
    let available = h.size.saturating_sub(h.position).min(wanted);
    if available < wanted {
        h.eof = true;
    }
    if available == 0 || size == 0 {
        return 0;
    }
    let Some(bytes) = read_at(h, available) else { return 0 };
    // SAFETY: GDAL's buffer holds size * count >= bytes.len() bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer.cast::<u8>(), bytes.len()) };
    h.position += bytes.len() as u64;
    bytes.len() / size
}

/// `length` bytes at the handle's position, from the read-ahead or the front.
fn read_at(h: &mut Handle, length: u64) -> Option<Vec<u8>> {
    let start = h.position;
    if let Some(bytes) = h.remote.planned(start, length) {
        return Some(bytes);
    }
    if let Some((offset, ahead)) = &h.ahead
        && start >= *offset
        && start + length <= offset + ahead.len() as u64
    {
        let from = (start - offset) as usize;
        return Some(ahead[from..from + length as usize].to_vec());
    }
    let widened = (start + length).next_multiple_of(READ_AHEAD).min(h.size) - start;
    let mut reply = h.remote.fetch(&h.path, vec![ByteRange { offset: start, length: widened }])?;
    let data = reply.data.pop().filter(|d| d.len() as u64 >= length)?;
    if widened > length {
        let out = data[..length as usize].to_vec();
        h.ahead = Some((start, data));
        Some(out)
    } else {
        Some(data)
    }
}

unsafe extern "C" fn read_multi_range(
    file: *mut c_void,
    n: c_int,
    data: *mut *mut c_void,
    offsets: *const gdal_sys::vsi_l_offset,
    sizes: *const usize,
) -> c_int {
    // SAFETY: GDAL passes a handle from `open`.
    let h = unsafe { handle(file) };
    let n = usize::try_from(n).unwrap_or(0);
    if n == 0 {
        return 0;
    }
    // SAFETY: GDAL passes `n` offsets, sizes and destination buffers.
    let (offsets, sizes, data) = unsafe {
        (
            std::slice::from_raw_parts(offsets, n),
            std::slice::from_raw_parts(sizes, n),
            std::slice::from_raw_parts(data, n),
        )
    };
    let planned: Option<Vec<Vec<u8>>> =
        offsets.iter().zip(sizes).map(|(o, s)| h.remote.planned(*o, *s as u64)).collect();
    let reply_data = if let Some(planned) = planned {
        planned
    } else {
        let ranges =
            offsets.iter().zip(sizes).map(|(o, s)| ByteRange { offset: *o, length: *s as u64 }).collect();
        let Some(reply) = h.remote.fetch(&h.path, ranges) else { return -1 };
        reply.data
    };
    if reply_data.len() != n {
        return -1;
    }
    for ((bytes, size), out) in reply_data.iter().zip(sizes).zip(data) {
        if bytes.len() != *size {
            return -1;
        }
        // SAFETY: GDAL's buffer `out` holds `size` bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast::<u8>(), *size) };
    }
    0
}

unsafe extern "C" fn no_siblings(_user: *mut c_void, _name: *const c_char) -> *mut *mut c_char {
    // An empty, NULL-terminated list that GDAL frees: no file beside a remote asset.
    // SAFETY: CPLCalloc returns zeroed memory of the asked size (it aborts on failure).
    unsafe { gdal_sys::CPLCalloc(1, std::mem::size_of::<*mut c_char>()).cast::<*mut c_char>() }
}

unsafe extern "C" fn refused_stat(
    _user: *mut c_void,
    _name: *const c_char,
    _buf: *mut gdal_sys::VSIStatBufL,
    _flags: c_int,
) -> c_int {
    -1
}

unsafe extern "C" fn refused_open(
    _user: *mut c_void,
    name: *const c_char,
    _access: *const c_char,
) -> *mut c_void {
    // SAFETY: GDAL passes a NUL-terminated file name (without the handler's prefix).
    let name = unsafe { string_of(name) }.unwrap_or_default();
    tracing::warn!(path = %crate::echo::quote(&name), "refused: a worker reads the network only through the front");
    std::ptr::null_mut()
}

impl Remote {
    /// The frame writer, for the test hooks that write broken frames.
    pub fn output(&self) -> std::cell::RefMut<'_, BufWriter<File>> {
        std::cell::RefMut::map(self.channel.borrow_mut(), |c| &mut c.output)
    }
}

impl Remote {
    /// The path GDAL opens remote asset `path` by: with the front's current generation
    /// of it (`/vsitessera/<generation>/<url>`). `None` when the front cannot describe it
    /// (the job's error then says why).
    pub fn versioned(&self, path: &str) -> Option<String> {
        let url = path.strip_prefix(PREFIX)?;
        let reply = self.ask(path, Vec::new(), false)?;
        Some(format!("{PREFIX}{}/{url}", reply.generation))
    }
}

/// `text` with every versioned remote path (`/vsitessera/<generation>/<url>`) written as
/// the front names the asset (`/vsitessera/<url>`).
#[must_use]
pub fn unversioned(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let (before, after) = rest.split_at(at + PREFIX.len());
        out.push_str(before);
        rest = ipc::split_generation(after).map_or(after, |(_, url)| url);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_paths_are_told_from_plain_ones() {
        assert!(is_versioned("/vsitessera/12/https://h/a.tif"));
        assert!(!is_versioned("/vsitessera/https://h/a.tif"));
        assert!(!is_versioned("/vsitessera/s3://b/k.tif"));
        assert!(!is_versioned("/vsitessera/12"));
        assert!(!is_versioned("/data/12/a.tif"));
    }

    #[test]
    fn versions_are_taken_out_of_messages() {
        assert_eq!(
            unversioned("cannot open /vsitessera/12/https://h/a.tif: x; /vsitessera/https://h/b.tif"),
            "cannot open /vsitessera/https://h/a.tif: x; /vsitessera/https://h/b.tif"
        );
        assert_eq!(unversioned("no path"), "no path");
        assert_eq!(unversioned("/vsitessera/7"), "/vsitessera/7");
    }
}
