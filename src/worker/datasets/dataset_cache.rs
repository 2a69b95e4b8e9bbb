//! The worker's least-recently-used cache of open datasets. Opening a COG costs a header
//! read (one or two round trips when remote); keeping it open makes a warm read cost
//! only its data. A local file is looked up by the identity of a fresh open beneath its
//! root ([`FileId`]: device, inode, size, mtime), so a file replaced or rewritten since
//! it was opened is reopened. Facts worked out from a dataset that a read needs again on
//! every tile (its suggested resolution in a CRS, its overview sizes) are kept beside it
//! and go with it. A local dataset's descriptors and staging links ([`Staged`]) live
//! exactly as long as its entry: evicting it closes the dataset, then them.

use std::{cell::RefCell, collections::HashMap, num::NonZeroUsize, ops::Deref, rc::Rc};

use gdal::Dataset;
use lru::LruCache;

use crate::ipc::limits::WorkerLimits;
use crate::worker::{
    local_files::{FileId, LocalFiles, Staged},
    remote_io::Remote,
    warp::KeptWarp,
};

/// What an asset's overview choice depends on, apart from the tile: worked out once per
/// open dataset and target CRS.
#[derive(Debug, Clone, PartialEq)]
pub struct WarpFacts {
    /// The asset's pixel size warped whole to the CRS (GDAL's suggested warp output).
    pub native_resolution: (f64, f64),
    /// The sizes of band 1's overviews, in GDAL's order.
    pub overviews: Vec<(usize, usize)>,
}

/// An open dataset and what has been worked out from it.
pub struct Cached {
    dataset: Dataset,
    /// The file itself, when `dataset` is a warped VRT made from its ground control
    /// points (see `read::georeference`): the VRT reads it, so it closes after the VRT
    /// (fields drop in order).
    source: Option<Dataset>,
    /// By target CRS; `None` when GDAL could not work them out (not asked again).
    warp_facts: RefCell<HashMap<String, Option<WarpFacts>>>,
    /// The warps onto Web Mercator ([`KeptWarp`]) by overview read (`None`:
    /// full resolution); `None` when the file takes `gdalwarp` (see
    /// [`KeptWarp::prepare`]). Each overview they read is an open of its own (one more
    /// descriptor for a local file), closed with the entry.
    kept_warps: RefCell<HashMap<Option<usize>, Option<Rc<KeptWarp>>>>,
}

impl Cached {
    fn new(dataset: Dataset, source: Option<Dataset>) -> Self {
        Self { dataset, source, warp_facts: RefCell::default(), kept_warps: RefCell::default() }
    }

    /// The file as opened: the source of a GCP-warped VRT, else the dataset itself.
    pub fn file(&self) -> &Dataset {
        self.source.as_ref().unwrap_or(&self.dataset)
    }

    /// The warp facts for `target_crs`, computed by `compute` on the first call only.
    pub fn warp_facts(
        &self,
        target_crs: &str,
        compute: impl FnOnce(&Dataset) -> Option<WarpFacts>,
    ) -> Option<WarpFacts> {
        if let Some(known) = self.warp_facts.borrow().get(target_crs) {
            return known.clone();
        }
        let facts = compute(&self.dataset);
        self.warp_facts.borrow_mut().insert(target_crs.to_owned(), facts.clone());
        facts
    }
}

impl Cached {
    /// The kept warp of this file read at `overview`, made by `prepare` on the first
    /// call only. Never for a file read through a VRT of its ground control points.
    pub fn kept_warp(
        &self,
        overview: Option<usize>,
        prepare: impl FnOnce(&Dataset) -> Option<KeptWarp>,
    ) -> Option<Rc<KeptWarp>> {
        if self.source.is_some() {
            return None;
        }
        if let Some(known) = self.kept_warps.borrow().get(&overview) {
            return known.clone();
        }
        let kept = prepare(&self.dataset).map(Rc::new);
        self.kept_warps.borrow_mut().insert(overview, kept.clone());
        kept
    }
}

impl Deref for Cached {
    type Target = Dataset;

    fn deref(&self) -> &Dataset {
        &self.dataset
    }
}

struct Entry {
    // Field order is drop order: the dataset closes before its descriptors go.
    cached: Cached,
    stamp: Option<FileId>,
    staged: Option<Staged>,
}

/// Open datasets by path, and the rules local files are opened by.
pub struct DatasetCache {
    entries: LruCache<String, Entry>,
    local: LocalFiles,
    remote: Option<&'static Remote>,
    /// The size limits an asset must be within to be opened.
    limits: WorkerLimits,
}

impl DatasetCache {
    /// A cache holding at most `capacity` datasets (at least one), opening local files
    /// with `local`.
    pub fn new(capacity: usize, local: LocalFiles) -> Self {
        Self {
            entries: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            local,
            remote: None,
            limits: WorkerLimits::default(),
        }
    }

    /// Opens only assets within `limits` (by default, the defaults of `tessera worker`).
    #[must_use]
    pub fn with_limits(mut self, limits: WorkerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The size limits an asset must be within to be opened.
    #[must_use]
    pub fn limits(&self) -> &WorkerLimits {
        &self.limits
    }

    /// Reads remote assets through `remote` (without it, they cannot be opened).
    #[must_use]
    pub fn with_remote(mut self, remote: &'static Remote) -> Self {
        self.remote = Some(remote);
        self
    }

    /// The channel remote assets are read through.
    #[must_use]
    pub fn remote(&self) -> Option<&'static Remote> {
        self.remote
    }

    /// The roots and staging directory local files are opened with.
    pub fn local(&mut self) -> &mut LocalFiles {
        &mut self.local
    }

    /// The path GDAL knows the cached dataset of `path` by, when it differs (a staged
    /// local file): GDAL's messages name it, callers should see `path`.
    pub fn gdal_path(&self, path: &str) -> Option<&str> {
        self.entries.peek(path).and_then(|e| e.staged.as_ref()).map(Staged::gdal_path)
    }

    /// The open dataset for `path`, if cached and still current.
    pub fn get(&mut self, path: &str, stamp: Option<&FileId>) -> Option<&Cached> {
        let current = self.entries.peek(path).is_some_and(|e| e.stamp.as_ref() == stamp);
        if !current {
            self.entries.pop(path);
            return None;
        }
        self.entries.get(path).map(|e| &e.cached)
    }

    /// Closes every cached version of remote asset `path` (`/vsitessera/[<generation>/]<url>`).
    pub fn forget_remote(&mut self, path: &str) {
        let asset = crate::worker::remote_io::unversioned(path);
        let keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(key, _)| crate::worker::remote_io::unversioned(key) == asset)
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            self.entries.pop(&key);
        }
    }

    /// Caches a freshly opened dataset (with the staging of a local one) and returns it.
    #[cfg(test)]
    pub fn insert(
        &mut self,
        path: &str,
        dataset: Dataset,
        stamp: Option<FileId>,
        staged: Option<Staged>,
    ) -> &Cached {
        self.insert_warped(path, dataset, None, stamp, staged)
    }

    /// Caches `dataset` read through a warped VRT of it (`source`, kept open beside it).
    pub fn insert_warped(
        &mut self,
        path: &str,
        dataset: Dataset,
        source: Option<Dataset>,
        stamp: Option<FileId>,
        staged: Option<Staged>,
    ) -> &Cached {
        self.entries.put(path.to_owned(), Entry { cached: Cached::new(dataset, source), stamp, staged });
        &self.entries.get(path).expect("just inserted").cached
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::worker::test_assets;

    #[test]
    fn warp_facts_are_worked_out_once_per_crs_and_go_with_a_reopened_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = test_assets::int16_two_bands(dir.path());
        let mut cache = DatasetCache::new(2, test_assets::local_files());
        let stamp = Some(cache.local().open(&path).unwrap().id().clone());
        let calls = &Cell::new(0);
        let facts = |crs: &'static str| {
            move |ds: &Dataset| {
                calls.set(calls.get() + 1);
                let (width, _) = ds.raster_size();
                (crs == "EPSG:3857")
                    .then(|| WarpFacts { native_resolution: (1.0, 2.0), overviews: vec![(width, 1)] })
            }
        };
        cache.insert(&path, Dataset::open(&path).unwrap(), stamp.clone(), None);
        let cached = cache.get(&path, stamp.as_ref()).unwrap();
        let mercator = Some(WarpFacts { native_resolution: (1.0, 2.0), overviews: vec![(4, 1)] });
        assert_eq!(cached.warp_facts("EPSG:3857", facts("EPSG:3857")), mercator);
        assert_eq!(cached.warp_facts("EPSG:3857", facts("EPSG:3857")), mercator);
        // A CRS GDAL could not work out is not asked again either.
        assert_eq!(cached.warp_facts("EPSG:4326", facts("EPSG:4326")), None);
        assert_eq!(cached.warp_facts("EPSG:4326", facts("EPSG:3857")), None);
        assert_eq!(calls.get(), 2);

        // A file that changed is reopened, and its facts are worked out again.
        let other = tempfile::tempdir().unwrap();
        let replacement = test_assets::int16_two_bands(other.path());
        let changed = Some(cache.local().open(&replacement).unwrap().id().clone());
        assert!(cache.get(&path, changed.as_ref()).is_none());
        let reopened = cache.insert(&path, Dataset::open(&path).unwrap(), changed, None);
        assert_eq!(reopened.warp_facts("EPSG:3857", facts("EPSG:3857")), mercator);
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn evicted_and_replaced_files_release_their_descriptors_and_links() {
        use crate::{pb::worker::ReadStats, worker::read};
        let dir = tempfile::tempdir().unwrap();
        let mut cache = DatasetCache::new(2, test_assets::local_files());
        let stage = cache.local().stage_dir().to_path_buf();
        let open_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let staged = || std::fs::read_dir(&stage).unwrap().count();
        let paths: Vec<String> = (0..5)
            .map(|i| {
                let sub = dir.path().join(i.to_string());
                std::fs::create_dir(&sub).unwrap();
                test_assets::int16_two_bands(&sub)
            })
            .collect();
        read::open(&mut cache, &paths[0], &mut ReadStats::default()).unwrap();
        read::open(&mut cache, &paths[1], &mut ReadStats::default()).unwrap();
        let (fds, links) = (open_fds(), staged());
        assert_eq!(links, 2);
        for path in &paths[2..] {
            read::open(&mut cache, path, &mut ReadStats::default()).unwrap();
            // Only the two cached datasets keep anything open (nextest runs each test in its
            // own process, so the descriptor count is this test's).
            assert_eq!((open_fds(), staged()), (fds, links), "after {path}");
        }
        // A cached file replaced on disk is reopened, and the old one's staging goes.
        let last = paths.last().unwrap();
        std::fs::copy(&paths[0], format!("{last}.new")).unwrap();
        std::fs::rename(format!("{last}.new"), last).unwrap();
        let mut stats = ReadStats::default();
        read::open(&mut cache, last, &mut stats).unwrap();
        assert!(!stats.dataset_cache_hit);
        assert_eq!((open_fds(), staged()), (fds, links));
        let mut stats = ReadStats::default();
        read::open(&mut cache, last, &mut stats).unwrap();
        assert!(stats.dataset_cache_hit);
    }
}
