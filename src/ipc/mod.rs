//! The contract between the front and its workers, and the code both sides run:
//! framing and protocol version of the channel (here), the limits a worker is started
//! with ([`limits`]), and how a read request becomes one warp ([`read_plan`]: the front
//! checks kernels and sizes with it, the worker plans its read with it). Neither side's
//! own code lives here: no GDAL, no tokio tasks, no pool.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of one encoded
//! protobuf message (`tessera.worker.v1`). The worker writes nothing but frames on its
//! frame channel; its diagnostics go to stderr. Lengths are checked against
//! [`MAX_FRAME_LEN`] before any allocation, so a corrupt length is an error, not an
//! out-of-memory.

pub mod limits;
pub mod read_plan;
pub mod region;

use std::io::{self, Read, Write};

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Most histogram bins (and categories) a statistics job may ask for: the front
/// refuses more, the worker checks again.
pub const MAX_HISTOGRAM_BINS: usize = 10_000;

/// Most percentiles a statistics job may ask for.
pub const MAX_PERCENTILES: usize = 100;

/// The prefix of the paths a worker knows remote assets by (`/vsitessera/...`): a job
/// about one may ask the front for bytes mid-job; any other path is a local file.
pub const REMOTE_PREFIX: &str = "/vsitessera/";

/// Whether a job's `path` names a remote asset (see [`REMOTE_PREFIX`]).
#[must_use]
pub fn is_remote(path: &str) -> bool {
    path.starts_with(REMOTE_PREFIX)
}

/// Answers the range requests a worker makes mid-job about a remote asset: the front's
/// reader of remote assets ([`crate::fetch`]), which the pool hands each question to.
pub trait RangeService: Send + Sync + std::fmt::Debug {
    /// The answer to `request`, asked during a job about the asset `job_path`; it must
    /// come by `deadline` (an error reply then).
    fn serve<'a>(
        &'a self,
        job_path: &'a str,
        request: crate::pb::worker::RangeRequest,
        deadline: tokio::time::Instant,
    ) -> futures::future::BoxFuture<'a, crate::pb::worker::RangeReply>;
}

/// The asset a job reads, if it reads one (pings read none).
#[must_use]
pub fn job_path(request: &crate::pb::worker::WorkerRequest) -> Option<&str> {
    use crate::pb::worker::worker_request::Job;
    match &request.job {
        Some(Job::Read(r)) => Some(&r.path),
        Some(Job::Info(i)) => Some(&i.path),
        Some(Job::Point(p)) => Some(&p.path),
        Some(Job::Statistics(s)) => Some(&s.path),
        Some(Job::Preview(p)) => Some(&p.path),
        Some(Job::Tile(t)) => t.reads.first().map(|r| r.path.as_str()),
        Some(Job::Ping(_) | Job::RangeReply(_)) | None => None,
    }
}

/// The asset a worker's range question about `asked` may read during `request`: for a
/// whole-tile job, the one of its reads that names the same remote object (whatever
/// version each names); for any other job, or a tile that reads no such object, the
/// job's own asset ([`job_path`]), which the front's reader then compares with `asked`.
#[must_use]
pub fn question_asset<'a>(request: &'a crate::pb::worker::WorkerRequest, asked: &str) -> Option<&'a str> {
    use crate::pb::worker::worker_request::Job;
    fn object(path: &str) -> Option<&str> {
        let rest = path.strip_prefix(REMOTE_PREFIX)?;
        Some(split_generation(rest).map_or(rest, |(_, url)| url))
    }
    if let Some(Job::Tile(t)) = &request.job
        && let Some(asked) = object(asked)
        && let Some(read) = t.reads.iter().find(|r| object(&r.path) == Some(asked))
    {
        return Some(&read.path);
    }
    job_path(request)
}

/// A remote asset's worker path after its prefix, `<generation>/<url>`, split into the
/// generation's digits and the URL; `None` when it names no generation (`<url>`). URLs
/// start with a scheme, never a digit.
#[must_use]
pub fn split_generation(after_prefix: &str) -> Option<(&str, &str)> {
    let digits = after_prefix.bytes().take_while(u8::is_ascii_digit).count();
    let url = after_prefix[digits..].strip_prefix('/')?;
    (digits > 0).then(|| (&after_prefix[..digits], url))
}

/// The unit in which the front caches remote bytes; a worker's small reads are widened
/// up to its boundaries.
pub const REMOTE_CHUNK: u64 = 16 * 1024;

/// Version of the IPC protocol; bumped on any incompatible change to the messages.
pub const PROTOCOL_VERSION: u32 = 4;

/// Largest frame either side accepts: 8 bands x 4096 x 4096 x 8 bytes is far below
/// this; a longer length means a corrupt stream.
pub const MAX_FRAME_LEN: usize = 256 * 1024 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer closed the channel before a whole frame arrived.
    #[error("the channel closed")]
    Closed,
    /// The length prefix exceeds [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte cap")]
    TooLarge(usize),
    /// The payload is not a valid message.
    #[error("undecodable frame: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Reading or writing failed.
    #[error("channel I/O failed: {0}")]
    Io(io::Error),
    /// A valid frame the exchange does not allow at this point.
    #[error("unexpected frame: {0}")]
    Unexpected(String),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe => Self::Closed,
            _ => Self::Io(e),
        }
    }
}

fn checked_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

fn encode_frame(msg: &impl Message) -> Result<Vec<u8>, FrameError> {
    let len = msg.encoded_len();
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    msg.encode(&mut buf).map_err(|e| FrameError::Io(io::Error::other(e)))?;
    Ok(buf)
}

/// Reads one frame (blocking; the worker side).
pub fn read_frame<M: Message + Default>(r: &mut impl Read) -> Result<M, FrameError> {
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix)?;
    let mut buf = vec![0u8; checked_len(prefix)?];
    r.read_exact(&mut buf)?;
    Ok(M::decode(buf.as_slice())?)
}

/// Writes one frame and flushes (blocking; the worker side).
pub fn write_frame(w: &mut impl Write, msg: &impl Message) -> Result<(), FrameError> {
    w.write_all(&encode_frame(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame (async; the front side).
pub async fn read_frame_async<M: Message + Default>(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<M, FrameError> {
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix).await?;
    let len = checked_len(prefix)?;
    // Read into spare capacity: a reply of pixels is not zeroed first only to be overwritten.
    let mut buf = Vec::with_capacity(len);
    let got = (&mut *r).take(len as u64).read_to_end(&mut buf).await?;
    if got != len {
        return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(M::decode(buf.as_slice())?)
}

/// Writes one frame and flushes (async; the front side).
pub async fn write_frame_async(
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
    msg: &impl Message,
) -> Result<(), FrameError> {
    w.write_all(&encode_frame(msg)?).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::worker::Hello;

    #[test]
    fn a_whole_tile_may_ask_about_each_of_its_remote_assets_and_no_other() {
        use crate::pb::worker::{ReadRequest, TileJob, WorkerRequest, worker_request::Job};
        let read = |path: &str| ReadRequest { path: path.into(), ..Default::default() };
        let tile = WorkerRequest {
            job: Some(Job::Tile(TileJob {
                reads: vec![
                    read("/vsitessera/4/http://h/a.tif"),
                    read("/data/b.tif"),
                    read("/vsitessera/http://h/c.tif"),
                ],
                ..Default::default()
            })),
            ..Default::default()
        };
        // Matched by object, whatever version the question names.
        assert_eq!(
            question_asset(&tile, "/vsitessera/4/http://h/a.tif"),
            Some("/vsitessera/4/http://h/a.tif")
        );
        assert_eq!(question_asset(&tile, "/vsitessera/7/http://h/c.tif"), Some("/vsitessera/http://h/c.tif"));
        // Anything else is checked against the job's first asset, which it is not.
        assert_eq!(
            question_asset(&tile, "/vsitessera/1/http://h/d.tif"),
            Some("/vsitessera/4/http://h/a.tif")
        );
        assert_eq!(question_asset(&tile, "/data/b.tif"), Some("/vsitessera/4/http://h/a.tif"));
        let lone =
            WorkerRequest { job: Some(Job::Read(read("/vsitessera/http://h/a.tif"))), ..Default::default() };
        assert_eq!(question_asset(&lone, "/vsitessera/http://h/c.tif"), Some("/vsitessera/http://h/a.tif"));
    }

    #[test]
    fn a_frame_round_trips() {
        let hello = Hello { protocol_version: PROTOCOL_VERSION, gdal_version: "3.6.2".into(), pid: 7 };
        let mut buf = Vec::new();
        write_frame(&mut buf, &hello).unwrap();
        assert_eq!(&buf[..4], &(hello.encoded_len() as u32).to_be_bytes());
        let back: Hello = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back, hello);
    }

    #[test]
    fn an_oversized_length_is_refused_before_allocating() {
        let buf = u32::MAX.to_be_bytes();
        let err = read_frame::<Hello>(&mut buf.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(n) if n == u32::MAX as usize));
    }

    #[test]
    fn a_truncated_frame_is_a_closed_channel() {
        let mut buf = 10u32.to_be_bytes().to_vec();
        buf.extend_from_slice(&[1, 2]);
        assert!(matches!(read_frame::<Hello>(&mut buf.as_slice()), Err(FrameError::Closed)));
    }
}
