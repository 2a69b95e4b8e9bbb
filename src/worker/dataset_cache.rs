//! The worker's least-recently-used cache of open datasets. Opening a COG costs a header
//! read (one or two round trips when remote); keeping it open makes a warm read cost
//! only its data. A local file that changed since it was opened (size or mtime) is
//! reopened. Facts worked out from a dataset that a read needs again on every tile (its
//! suggested resolution in a CRS, its overview sizes) are kept beside it and go with it.

use std::{cell::RefCell, collections::HashMap, num::NonZeroUsize, ops::Deref, time::SystemTime};

use gdal::Dataset;
use lru::LruCache;

/// What identifies the version of a file that a cached handle was opened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    /// The stamp of a local path; `None` for non-local paths or when stat fails.
    pub fn of(path: &str) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self { len: meta.len(), modified: meta.modified().ok() })
    }
}

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
    /// By target CRS; `None` when GDAL could not work them out (not asked again).
    warp_facts: RefCell<HashMap<String, Option<WarpFacts>>>,
}

impl Cached {
    fn new(dataset: Dataset) -> Self {
        Self { dataset, warp_facts: RefCell::default() }
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

impl Deref for Cached {
    type Target = Dataset;

    fn deref(&self) -> &Dataset {
        &self.dataset
    }
}

struct Entry {
    cached: Cached,
    stamp: Option<FileStamp>,
}

/// Open datasets by path.
pub struct DatasetCache {
    entries: LruCache<String, Entry>,
}

impl DatasetCache {
    /// A cache holding at most `capacity` datasets (at least one).
    pub fn new(capacity: usize) -> Self {
        Self { entries: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)) }
    }

    /// The open dataset for `path`, if cached and still current.
    pub fn get(&mut self, path: &str, stamp: Option<&FileStamp>) -> Option<&Cached> {
        let current = self.entries.peek(path).is_some_and(|e| e.stamp.as_ref() == stamp);
        if !current {
            self.entries.pop(path);
            return None;
        }
        self.entries.get(path).map(|e| &e.cached)
    }

    /// Caches a freshly opened dataset and returns it.
    pub fn insert(&mut self, path: &str, dataset: Dataset, stamp: Option<FileStamp>) -> &Cached {
        self.entries.put(path.to_owned(), Entry { cached: Cached::new(dataset), stamp });
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
        let mut cache = DatasetCache::new(2);
        let stamp = FileStamp::of(&path);
        let calls = &Cell::new(0);
        let facts = |crs: &'static str| {
            move |ds: &Dataset| {
                calls.set(calls.get() + 1);
                let (width, _) = ds.raster_size();
                (crs == "EPSG:3857")
                    .then(|| WarpFacts { native_resolution: (1.0, 2.0), overviews: vec![(width, 1)] })
            }
        };
        cache.insert(&path, Dataset::open(&path).unwrap(), stamp.clone());
        let cached = cache.get(&path, stamp.as_ref()).unwrap();
        let mercator = Some(WarpFacts { native_resolution: (1.0, 2.0), overviews: vec![(4, 1)] });
        assert_eq!(cached.warp_facts("EPSG:3857", facts("EPSG:3857")), mercator);
        assert_eq!(cached.warp_facts("EPSG:3857", facts("EPSG:3857")), mercator);
        // A CRS GDAL could not work out is not asked again either.
        assert_eq!(cached.warp_facts("EPSG:4326", facts("EPSG:4326")), None);
        assert_eq!(cached.warp_facts("EPSG:4326", facts("EPSG:3857")), None);
        assert_eq!(calls.get(), 2);

        // A file that changed is reopened, and its facts are worked out again.
        let changed = Some(FileStamp { len: 0, modified: None });
        assert!(cache.get(&path, changed.as_ref()).is_none());
        let reopened = cache.insert(&path, Dataset::open(&path).unwrap(), changed);
        assert_eq!(reopened.warp_facts("EPSG:3857", facts("EPSG:3857")), mercator);
        assert_eq!(calls.get(), 3);
    }
}
