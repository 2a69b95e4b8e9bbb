//! The front's cache of asset metadata. The first tile that touches an asset asks a
//! worker to describe it; later tiles decide from the cache whether the asset touches
//! them at all, so an asset outside a tile costs no worker job (and, when remote, no
//! request). A local entry is dropped when the file's size or modification time
//! changes; a remote one after the remote-metadata TTL.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use super::remote::is_remote_path;
use crate::{
    pb::worker::InfoResult,
    render::{
        DataType,
        colormap::{Colormap, Rgba},
    },
    tms::BBox,
};

/// What the front knows about an asset.
#[derive(Debug, Clone)]
pub struct AssetInfo {
    /// The worker's full description.
    pub info: InfoResult,
    /// Pixel type of the data bands.
    pub dtype: DataType,
    /// Number of bands that are not alpha.
    pub data_bands: usize,
    /// Longitude/latitude bounds, west > east when they cross the antimeridian (as the
    /// worker's GDAL gives them).
    pub geographic: BBox,
    /// Nodata value of band 1.
    pub nodata: Option<f64>,
    /// The file's own colour table (a paletted file), as a colormap.
    pub colormap: Option<Arc<Colormap>>,
}

impl AssetInfo {
    /// Builds the front's view from a worker's description; `None` if the description
    /// is incomplete (a worker fault).
    #[must_use]
    pub fn from_worker(info: InfoResult) -> Option<Self> {
        let dtype = DataType::from_worker(info.dtype)?;
        let g = info.geographic_bounds.as_slice();
        let [min_x, min_y, max_x, max_y] = <[f64; 4]>::try_from(g).ok()?;
        let data_bands =
            info.bands.iter().filter(|b| !b.color_interpretation.eq_ignore_ascii_case("alpha")).count();
        let nodata = info.bands.first().and_then(|b| b.nodata);
        let colormap = (!info.color_table.is_empty())
            .then(|| {
                let entries = info.color_table.chunks_exact(4).enumerate();
                Colormap::exact(entries.map(|(i, c)| (i as f64, Rgba([c[0], c[1], c[2], c[3]]))).collect())
            })
            .and_then(Result::ok)
            .map(Arc::new);
        Some(Self {
            dtype,
            data_bands,
            geographic: BBox { min_x, min_y, max_x, max_y },
            nodata,
            colormap,
            info,
        })
    }
}

type Stamp = (u64, Option<SystemTime>);
type Entries = lru::LruCache<PathBuf, (Option<Stamp>, Instant, Arc<AssetInfo>)>;

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()))
}

/// Most assets described at once; beyond it the least recently used go.
const MAX_ENTRIES: usize = 100_000;

/// Asset metadata by canonical (or GDAL) path.
#[derive(Debug)]
pub struct InfoCache {
    entries: Mutex<Entries>,
    remote_ttl: Duration,
}

impl Default for InfoCache {
    fn default() -> Self {
        Self::new(crate::config::remote::DEFAULT_REMOTE_METADATA_TTL)
    }
}

impl InfoCache {
    /// A cache trusting remote entries for `remote_ttl`.
    ///
    /// # Panics
    /// Never: the capacity is a non-zero constant.
    #[must_use]
    pub fn new(remote_ttl: Duration) -> Self {
        let capacity = std::num::NonZeroUsize::new(MAX_ENTRIES).expect("a non-zero constant");
        Self { entries: Mutex::new(lru::LruCache::new(capacity)), remote_ttl }
    }

    /// The cached metadata, if the file has not changed (local) or the entry is younger
    /// than the TTL (remote: nothing to stat).
    pub fn get(&self, path: &Path) -> Option<Arc<AssetInfo>> {
        let remote = is_remote_path(path);
        let now = if remote { None } else { stamp(path) };
        let mut entries = self.entries.lock().ok()?;
        let (then, stored, info) = entries.get(path)?;
        let fresh = if remote { stored.elapsed() < self.remote_ttl } else { *then == now && now.is_some() };
        fresh.then(|| Arc::clone(info))
    }

    /// Remembers the metadata of `path`.
    pub fn insert(&self, path: &Path, info: Arc<AssetInfo>) {
        let stamp = if is_remote_path(path) { None } else { stamp(path) };
        if let Ok(mut e) = self.entries.lock() {
            e.put(path.to_path_buf(), (stamp, Instant::now(), info));
        }
    }
}
