//! A whole tile on one worker ([`TileJob`]): the reads of the assets that touch it, one
//! after another in priority order into the front's own first-wins pixel selection,
//! stopping once no later read can change a pixel, then the front's encoder. The front
//! sends a tile this way when it would not have two workers to itself (one worker, or as
//! many tiles in flight as workers): a tile then costs one job instead of one per read,
//! and its pixels never cross the process boundary (docs/ARCHITECTURE.md, section 2,
//! "Whole-tile jobs").
//!
//! A remote asset's read plans its blocks first, as a read job with `plan_remote` does:
//! when the front holds them all, they come with its answer and the read waits on
//! nothing. When it does not, the job renders nothing more: it lists the blocks of that
//! read and of every remote read after it ([`read::list_blocks`], no question asked)
//! and answers [`Deferred`] with them all, so the front fetches them at once, with no
//! worker waiting, and sends the job again.
//!
//! Any read that fails fails the job: the front runs the tile again read by read, which
//! reports each asset's outcome (and blames a crash on the asset that caused it).

use std::time::Instant;

use super::super::{
    JobError, dataset_cache::DatasetCache, ffi::remote_io::Remote, read, test_hooks::TestHooks,
};
use crate::{
    mosaic::{PixelSelection, Selector},
    pb::worker::{Deferred, DeferredRead, ErrorKind, ReadStats, TileJob, TileResult, worker_response},
    render::{DataType, OutputFormat, Raster, encode},
};

/// Runs `job`, asking the front through `remote` for the bytes of its remote assets;
/// `exporting`: each read gets a span of its own.
pub fn whole_tile(
    cache: &mut DatasetCache,
    hooks: &mut TestHooks,
    remote: &Remote,
    job: &TileJob,
    stats: &mut ReadStats,
    exporting: bool,
) -> Result<worker_response::Result, JobError> {
    let invalid = |what: &str| JobError::new(ErrorKind::Invalid, format!("tile job: {what}"));
    let dtype = DataType::from_worker(job.dtype).ok_or_else(|| invalid("no data type"))?;
    let format = OutputFormat::from_wire(job.format, job.quality).ok_or_else(|| invalid("no format"))?;
    let bands = job.band_count as usize;
    let Some(first) = job.reads.first() else { return Err(invalid("no read")) };
    let (width, height) = (first.width as usize, first.height as usize);
    if job.reads.iter().any(|r| (r.width as usize, r.height as usize) != (width, height)) {
        return Err(invalid("reads of different sizes"));
    }
    let mut selector =
        Selector::new(PixelSelection::First, dtype, bands, width, height, job.fill, job.reads.len())
            .map_err(|e| invalid(&e.to_string()))?;
    let mut read_us = Vec::with_capacity(job.reads.len());
    let mut deferred: Vec<DeferredRead> = Vec::new();
    for (i, request) in job.reads.iter().enumerate() {
        let span = if exporting {
            tracing::info_span!("tile read", asset.path = request.path.as_str())
        } else {
            tracing::Span::none()
        };
        let _entered = span.enter();
        let started = Instant::now();
        let _busy = hooks.on_read(&request.path);
        // A local read answers in its own buffers (the selection takes them here), not
        // in the reply region a lone read job writes to.
        let is_remote = crate::ipc::is_remote(&request.path);
        if !deferred.is_empty() {
            if is_remote {
                let Deferred { ranges, .. } = read::list_blocks(cache, request, stats)?;
                deferred.push(DeferredRead { read: i as u32, ranges });
            }
            continue;
        }
        let answer = read::read(cache, is_remote.then_some(remote), request, stats);
        if is_remote {
            remote.forget_planned();
        }
        let r = match answer? {
            worker_response::Result::Read(r) => r,
            worker_response::Result::Deferred(Deferred { ranges, .. }) if is_remote => {
                deferred.push(DeferredRead { read: i as u32, ranges });
                continue;
            }
            _ => return Err(JobError::new(ErrorKind::Protocol, "a read of a tile job answered no pixels")),
        };
        let raster = Raster {
            dtype: DataType::from_worker(r.dtype).unwrap_or(dtype),
            bands: r.band_count as usize,
            width: r.width as usize,
            height: r.height as usize,
            pixels: r.pixels,
            mask: r.mask,
        };
        if !raster.is_consistent()
            || (raster.dtype, raster.bands, raster.width, raster.height) != (dtype, bands, width, height)
        {
            return Err(JobError::new(
                ErrorKind::ReadFailed,
                format!("{}: not the raster the tile job asked for", request.path),
            ));
        }
        selector.add(i, &raster);
        read_us.push(started.elapsed().as_micros() as u64);
        if selector.is_complete() {
            break;
        }
    }
    if !deferred.is_empty() {
        return Ok(worker_response::Result::Deferred(Deferred { ranges: Vec::new(), reads: deferred }));
    }
    let (data, mask) =
        encode(&selector.finish(), format).map_err(|e| JobError::new(ErrorKind::Invalid, e.to_string()))?;
    Ok(worker_response::Result::Tile(TileResult { data, mask, read_us }))
}
