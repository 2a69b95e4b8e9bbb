//! The worker's reader without the worker process: the same GDAL set-up, dataset cache
//! and read path as [`super::serve`], called directly by one thread. It exists for the
//! benchmark's floor (`tessera bench --floor`), which measures what a tile costs with
//! no front, no pool and no IPC, so that their cost is a measured ratio.
//!
//! GDAL state here is process-wide and not thread-safe: one `InProcessReader` per
//! process, used by one thread.

use std::path::PathBuf;

use super::{JobError, dataset_cache::DatasetCache, gdal_errors, local_files::LocalFiles, read};
use crate::pb::worker::{InfoResult, ReadRequest, ReadResult, ReadStats};

/// A worker's reader in this process.
pub struct InProcessReader {
    cache: DatasetCache,
}

impl std::fmt::Debug for InProcessReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessReader").finish_non_exhaustive()
    }
}

impl InProcessReader {
    /// Sets GDAL up as a worker does and opens local assets under `roots` (canonical
    /// directories). Call once per process.
    pub fn new(roots: &[PathBuf]) -> Result<Self, String> {
        gdal_errors::install();
        read::configure_gdal();
        read::warm_up();
        let local = LocalFiles::new(roots, &std::env::temp_dir())?;
        Ok(Self { cache: DatasetCache::new(read::DATASET_CACHE_CAPACITY, local) })
    }

    /// Describes the asset at `path`, as a worker's info job.
    pub fn info(&mut self, path: &str) -> Result<InfoResult, JobError> {
        read::info(&mut self.cache, path, &mut ReadStats::default())
    }

    /// Reads a window of an asset, as a worker's read job.
    pub fn read(&mut self, request: &ReadRequest) -> Result<ReadResult, JobError> {
        match read::read(&mut self.cache, None, request, &mut ReadStats::default())? {
            crate::pb::worker::worker_response::Result::Read(r) => Ok(r),
            _ => Err(JobError::new(crate::pb::worker::ErrorKind::Protocol, "a local read deferred")),
        }
    }
}
