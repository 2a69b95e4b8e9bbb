//! The front's cache of asset metadata. The first tile that touches an asset asks a
//! worker to describe it; later tiles decide from the cache whether the asset touches
//! them at all, so an asset outside a tile costs no worker job. An entry is dropped
//! when the file's size or modification time changes.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use crate::{pb::worker::InfoResult, render::DataType, tms::BBox};

/// What the front knows about an asset.
#[derive(Debug, Clone)]
pub struct AssetInfo {
    /// The worker's full description.
    pub info: InfoResult,
    /// Pixel type of the data bands.
    pub dtype: DataType,
    /// Number of bands that are not alpha.
    pub data_bands: usize,
    /// Longitude/latitude bounds.
    pub geographic: BBox,
    /// Nodata value of band 1.
    pub nodata: Option<f64>,
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
        Some(Self { dtype, data_bands, geographic: BBox { min_x, min_y, max_x, max_y }, nodata, info })
    }
}

type Stamp = (u64, Option<SystemTime>);
type Entries = HashMap<PathBuf, (Option<Stamp>, Arc<AssetInfo>)>;

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()))
}

/// Asset metadata by canonical path.
#[derive(Debug, Default)]
pub struct InfoCache {
    entries: Mutex<Entries>,
}

impl InfoCache {
    /// The cached metadata, if the file has not changed since.
    pub fn get(&self, path: &Path) -> Option<Arc<AssetInfo>> {
        let now = stamp(path);
        let entries = self.entries.lock().ok()?;
        let (then, info) = entries.get(path)?;
        (*then == now).then(|| Arc::clone(info))
    }

    /// Remembers the metadata of `path`.
    pub fn insert(&self, path: &Path, info: Arc<AssetInfo>) {
        if let Ok(mut e) = self.entries.lock() {
            e.insert(path.to_path_buf(), (stamp(path), info));
        }
    }
}
