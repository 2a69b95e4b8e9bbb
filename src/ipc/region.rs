//! A worker's reply region: memory the front and one worker share, into which the
//! worker puts a read's pixels and mask instead of sending them down the job pipe.
//!
//! Why. A 256 px RGB tile's answer is ~260 KB. Through the pipe it is copied four
//! times (into the frame, into the kernel's pipe pages, which are allocated and charged
//! for each write, out of them, out of the frame) and it was the largest cost of a job
//! outside GDAL: 7% of a worker's time, 20% of the front's exchange with it. Through
//! the region it is copied once, with no system call: a local read has GDAL write its
//! pixels and mask straight into the region, and the front copies them into its raster
//! (an answer built elsewhere first, such as a remote read's, is copied in by
//! [`ReplyRegion::put`]). The pipe still carries the answer itself, which says where in
//! the region its bytes are.
//!
//! The same region carries the other large payload, the other way: the bytes of a
//! remote asset the front sends a worker in answer to its range questions (a read's
//! planned blocks, ~100-400 KB).
//!
//! The front creates the region (a `memfd` of [`REPLY_REGION_BYTES`]) when it spawns
//! the worker, which finds it through [`REPLY_REGION_ENV`] (`FD:BYTES`); both map it
//! writable. Pages take memory only once written. The region is two halves, slots of
//! [`REPLY_SLOT_BYTES`]: each job names its slot (`WorkerRequest.reply_slot`), and the
//! front alternates them from one job of a worker to the next. Within a slot the
//! channel is a strict exchange: one side writes the slot and then a frame saying what
//! it holds, the other copies the bytes out before it answers, so the two never use a
//! slot at the same time. Two slots let a job wait in the worker's pipe behind a local
//! read (pipelined, see `pool/pipeline.rs`): the worker writes the second job's answer
//! in the other slot while the front copies the first's out, and the front sends a
//! third job only once the first's slot is copied out. (While a job is in flight the
//! front touches its slot only to answer the worker's range questions, which a local
//! read never asks: that is why only a local read writes its answer there as it goes,
//! and only a local read has a job queued behind it.)
//! Before the slots, one word the front writes and the worker reads: the id of a job
//! queued in the worker's pipe whose caller has gone ([`ReplyRegion::withdraw`]). The
//! worker looks at it as it takes each job from the pipe and skips a withdrawn one
//! ([`ReplyRegion::is_withdrawn`]); one it has started runs to its end.
//! A worker that writes into it out of turn can only spoil its own answer's pixels (or
//! the bytes it asked for), as it could through the pipe, or skip a job whose caller is
//! still waiting: the caller then gets an error, as from a worker that failed it.
//! Lengths are checked against the region's size before any copy. A payload larger
//! than the region (or a worker without one) takes the pipe, as before.
//!
//! Hand-written on `nix` (memfd, mmap): a mapping crate would add nothing but a
//! dependency to these two calls.

use std::{
    ffi::c_void,
    num::NonZeroUsize,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// Size of each slot of a worker's reply region: a 512 px tile of four 32-bit bands
/// with its mask fits (4.25 MiB would not: such answers take the pipe).
pub const REPLY_SLOT_BYTES: usize = 4 * 1024 * 1024;

/// Bytes before the slots: the withdrawal word, padded to a cache line.
pub const CONTROL_BYTES: usize = 64;

/// Size of each worker's reply region: the withdrawal word and two slots.
pub const REPLY_REGION_BYTES: usize = CONTROL_BYTES + 2 * REPLY_SLOT_BYTES;

/// The variable that tells a worker its region: `FD:BYTES`.
pub const REPLY_REGION_ENV: &str = "TESSERA_REPLY_REGION";

/// A mapping of a reply region.
#[derive(Debug)]
pub struct ReplyRegion {
    ptr: NonNull<c_void>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain memory owned by this value; the protocol (one job in
// flight, bytes copied out before the next) keeps the two processes apart.
unsafe impl Send for ReplyRegion {}

impl ReplyRegion {
    /// A new region of `len` bytes (the front's side). Its descriptor is close-on-exec:
    /// [`Self::inherit`] hands it to one child.
    pub fn create(len: usize) -> std::io::Result<Self> {
        use nix::sys::memfd::{MFdFlags, memfd_create};
        let fd = memfd_create(c"tessera-reply", MFdFlags::MFD_CLOEXEC)?;
        nix::unistd::ftruncate(&fd, i64::try_from(len).map_err(std::io::Error::other)?)?;
        Self::map(fd, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE)
    }

    /// The region the front gave this worker, mapped writable; `None` without one (a
    /// worker started by hand, or an older front).
    #[must_use]
    pub fn from_env() -> Option<Self> {
        let value = std::env::var(REPLY_REGION_ENV).ok()?;
        let (fd, len) = value.split_once(':')?;
        let (fd, len): (RawFd, usize) = (fd.parse().ok()?, len.parse().ok()?);
        if fd < 3 || len == 0 {
            return None;
        }
        // SAFETY: the front passed this descriptor for this purpose; nothing else in
        // the worker knows of it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Self::map(fd, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE).ok()
    }

    fn map(fd: OwnedFd, len: usize, prot: ProtFlags) -> std::io::Result<Self> {
        if len <= CONTROL_BYTES {
            return Err(std::io::Error::other(format!("a region of {len} bytes has no room for its slots")));
        }
        let size = NonZeroUsize::new(len).ok_or_else(|| std::io::Error::other("an empty region"))?;
        // SAFETY: a fresh shared mapping of a descriptor we own; unmapped on drop.
        let ptr = unsafe { mmap(None, size, prot, MapFlags::MAP_SHARED, &fd, 0)? };
        Ok(Self { ptr, len, fd })
    }

    /// The region's size in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes in each of the region's two slots.
    #[must_use]
    pub fn slot_len(&self) -> usize {
        (self.len - CONTROL_BYTES) / 2
    }

    /// Where `slot` (0 or 1) starts; `None` for another number.
    fn slot_start(&self, slot: u32) -> Option<usize> {
        (slot < 2).then(|| CONTROL_BYTES + slot as usize * self.slot_len())
    }

    /// The withdrawal word: 0, or the id + 1 of the job last withdrawn.
    fn control(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned and longer than `CONTROL_BYTES` (checked
        // in `map`), so its first 8 bytes are an aligned u64 that lives as long as
        // `self`; both processes touch them only through atomic operations.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().cast::<u64>()) }
    }

    /// The front's side: job `id`, queued in the worker's pipe, is not to be run (its
    /// caller has gone). Only the last withdrawal counts: the front withdraws only the
    /// job waiting in the pipe, and there is one at most.
    pub fn withdraw(&self, id: u64) {
        self.control().store(id.wrapping_add(1), Ordering::Release);
    }

    /// The worker's side, as it takes job `id` from the pipe: whether it was withdrawn.
    #[must_use]
    pub fn is_withdrawn(&self, id: u64) -> bool {
        self.control().load(Ordering::Acquire) == id.wrapping_add(1)
    }

    /// Copies of consecutive buffers of `lens` bytes from the start of `slot` (what
    /// [`Self::put`] wrote), or `None` if they run past its end.
    #[must_use]
    pub fn copy_parts(&self, slot: u32, lens: &[u32]) -> Option<Vec<Vec<u8>>> {
        let start = self.slot_start(slot)?;
        let total = lens.iter().try_fold(0usize, |sum, &len| sum.checked_add(len as usize))?;
        if total > self.slot_len() {
            return None;
        }
        let mut at = start;
        lens.iter()
            .map(|&len| {
                let part = self.copy(at, len as usize)?;
                at += len as usize;
                Some(part)
            })
            .collect()
    }

    /// Always false: a region has at least one byte.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The descriptor, for the child's environment.
    #[must_use]
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// In a child about to exec: keeps the descriptor open across the exec. Only
    /// async-signal-safe calls (one `fcntl`).
    pub fn inherit(fd: RawFd) -> std::io::Result<()> {
        // SAFETY: fcntl on a descriptor number; no allocation.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes `parts` one after another from the start of `slot`, and gives their
    /// lengths (what the frame tells the other side); `None`, nothing written, when they
    /// do not fit in the slot (or there is no such slot).
    pub fn put(&mut self, slot: u32, parts: &[&[u8]]) -> Option<Vec<u32>> {
        let start = self.slot_start(slot)?;
        let lens = parts.iter().map(|p| u32::try_from(p.len()).ok()).collect::<Option<Vec<u32>>>()?;
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > self.slot_len() {
            return None;
        }
        let mut at = start;
        for part in parts {
            // SAFETY: `at + part.len() <= start + total <= start + slot_len <= self.len`,
            // inside the writable mapping; `part` is ordinary memory of this process, not
            // the region.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    part.as_ptr(),
                    self.ptr.as_ptr().cast::<u8>().add(at),
                    part.len(),
                );
            }
            at += part.len();
        }
        Some(lens)
    }

    /// The whole of `slot`, for the worker to write a local read's answer into in place
    /// (see the module doc: the front does not touch a job's slot while the job is in
    /// flight, unless the job asks it for bytes); `None` for no such slot.
    pub fn slot_mut(&mut self, slot: u32) -> Option<&mut [u8]> {
        let start = self.slot_start(slot)?;
        // SAFETY: `start + slot_len <= len`: the slot is writable bytes of the mapping
        // for as long as `self` lives, and `&mut self` keeps this the only slice of it
        // in this process.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>().add(start), self.slot_len())
        })
    }

    /// A copy of bytes `start..start + len`, or `None` if they are not all inside the
    /// region.
    fn copy(&self, start: usize, len: usize) -> Option<Vec<u8>> {
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        let mut out = Vec::with_capacity(len);
        // SAFETY: `start..end` is inside the mapping; the capacity is `len`; the worker
        // does not write while its answer is read (see the module doc).
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().cast::<u8>().add(start), out.as_mut_ptr(), len);
            out.set_len(len);
        }
        Some(out)
    }
}

impl Drop for ReplyRegion {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEN: usize = CONTROL_BYTES + 8192;

    /// A region of two 4096-byte slots as the front maps it, and the worker's mapping.
    fn pair() -> (ReplyRegion, ReplyRegion) {
        let front = ReplyRegion::create(LEN).unwrap();
        let dup = nix::unistd::dup(&front.fd).unwrap();
        let worker = ReplyRegion::map(dup, LEN, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE).unwrap();
        (front, worker)
    }

    #[test]
    fn bytes_put_by_one_mapping_are_read_by_another() {
        let (front, mut worker) = pair();
        assert_eq!(worker.slot_len(), 4096);
        assert_eq!(worker.put(0, &[b"pixels", b"mask"]), Some(vec![6, 4]));
        assert_eq!(front.copy(CONTROL_BYTES, 6).unwrap(), b"pixels");
        assert_eq!(front.copy(CONTROL_BYTES + 6, 4).unwrap(), b"mask");
        // Out of bounds, or too large to put: refused, nothing read or written.
        assert_eq!(front.copy(LEN - 2, 7), None);
        assert_eq!(front.copy(usize::MAX, 2), None);
        assert_eq!(worker.put(0, &[&[1u8; 4000], &[2u8; 97]]), None, "larger than a slot");
        assert_eq!(worker.put(2, &[b"x"]), None, "no third slot");
        assert_eq!(front.copy(CONTROL_BYTES, 6).unwrap(), b"pixels");
    }

    #[test]
    fn a_withdrawal_names_one_job_and_the_last_counts() {
        let (front, worker) = pair();
        assert!(!worker.is_withdrawn(0), "a fresh region withdraws no job, not even job 0");
        front.withdraw(7);
        assert!(worker.is_withdrawn(7));
        assert!(!worker.is_withdrawn(8));
        front.withdraw(9);
        assert!(!worker.is_withdrawn(7) && worker.is_withdrawn(9));
        front.withdraw(u64::MAX);
        assert!(worker.is_withdrawn(u64::MAX) && !worker.is_withdrawn(0));
        // The slots do not overlap the word.
        let mut worker = worker;
        worker.slot_mut(0).unwrap().fill(0xff);
        assert!(worker.is_withdrawn(u64::MAX));
        let short = ReplyRegion::create(CONTROL_BYTES);
        assert!(short.is_err(), "a region with no room for slots is refused");
    }

    #[test]
    fn the_two_slots_hold_two_answers_apart() {
        let (front, mut worker) = pair();
        assert_eq!(worker.put(0, &[b"first", b"m1"]), Some(vec![5, 2]));
        let second = worker.slot_mut(1).unwrap();
        assert_eq!(second.len(), 4096);
        second[..6].copy_from_slice(b"second");
        second[6..8].copy_from_slice(b"m2");
        second[4090..].copy_from_slice(b"at end");
        assert_eq!(front.copy_parts(0, &[5, 2]).unwrap(), [b"first".to_vec(), b"m1".to_vec()]);
        assert_eq!(front.copy_parts(1, &[6, 2]).unwrap(), [b"second".to_vec(), b"m2".to_vec()]);
        assert_eq!(front.copy_parts(1, &[4090, 6]).unwrap()[1], b"at end");
        // A slot's parts never run into the next slot or past the region.
        assert_eq!(front.copy_parts(0, &[4096, 1]), None);
        assert_eq!(front.copy_parts(1, &[4097]), None);
        assert_eq!(front.copy_parts(2, &[1]), None);
        assert!(worker.slot_mut(2).is_none());
    }

    #[test]
    fn the_front_puts_buffers_the_worker_copies_out_whole_or_not_at_all() {
        let (mut front, worker) = pair();
        assert_eq!(front.put(1, &[b"block one", b"", b"block two"]), Some(vec![9, 0, 9]));
        assert_eq!(
            worker.copy_parts(1, &[9, 0, 9]).unwrap(),
            [b"block one".to_vec(), Vec::new(), b"block two".to_vec()]
        );
        assert_eq!(worker.copy_parts(1, &[9, 4090]), None, "past the end");
        assert_eq!(worker.copy_parts(0, &[u32::MAX, u32::MAX]), None, "lengths that overflow");
        assert_eq!(worker.copy_parts(1, &[]).unwrap(), Vec::<Vec<u8>>::new());
    }
}
