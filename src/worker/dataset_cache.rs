//! The worker's least-recently-used cache of open datasets. Opening a COG costs a header
//! read (one or two round trips when remote); keeping it open makes a warm read cost
//! only its data. A local file that changed since it was opened (size or mtime) is
//! reopened.

use std::{num::NonZeroUsize, time::SystemTime};

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

struct Entry {
    dataset: Dataset,
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
    pub fn get(&mut self, path: &str, stamp: Option<&FileStamp>) -> Option<&Dataset> {
        let current = self.entries.peek(path).is_some_and(|e| e.stamp.as_ref() == stamp);
        if !current {
            self.entries.pop(path);
            return None;
        }
        self.entries.get(path).map(|e| &e.dataset)
    }

    /// Caches a freshly opened dataset and returns it.
    pub fn insert(&mut self, path: &str, dataset: Dataset, stamp: Option<FileStamp>) -> &Dataset {
        self.entries.put(path.to_owned(), Entry { dataset, stamp });
        &self.entries.get(path).expect("just inserted").dataset
    }
}
