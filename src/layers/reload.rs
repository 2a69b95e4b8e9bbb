//! Building layers at startup and rebuilding them while serving: [`Layers::load`],
//! [`Layers::reload`] and the loop that calls it, [`Layers::watch`].
//!
//! A reload compares each layer's sources with what the layer was built from (the
//! MosaicJSON file's modification time and size; the glob's matches and their stamps)
//! and rebuilds only the layers whose sources changed. Failures keep the previous
//! version; each distinct failure is logged once, not on every tick.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use super::{
    BoundsSource, FootprintSpec, Layer, LayerConfig, LayerError, LayerInfo, LayerKind, LayerSource,
    LayerSpec, Layers, Snapshot, SpecKind, StacSpec,
    footprint::{self, Entry, FileStamp, FootprintIndex},
    mosaicjson::Mosaic,
    stac,
};
use crate::tms::{BBox, MAX_ZOOM};

/// What the registry needs to rebuild layers.
pub(super) struct Reloader {
    data_dir: PathBuf,
    source: Arc<dyn BoundsSource>,
    /// Layer name → the last failure logged for it; serialises reloads.
    reported: tokio::sync::Mutex<HashMap<String, String>>,
}

/// What one reload pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Layers rebuilt from changed sources and swapped in.
    pub reloaded: Vec<String>,
    /// Layers whose changed sources could not be used (the previous version stays).
    pub failed: Vec<String>,
}

impl Layers {
    /// Validates `configs` and builds every layer: MosaicJSON documents are read and
    /// parsed, footprint globs listed (relative to `data_dir`) and every footprint asset's
    /// bounds read through `source`. Any configuration or document error is returned;
    /// assets whose bounds cannot be read are only left out (and counted).
    pub async fn load(
        configs: &[LayerConfig],
        data_dir: &Path,
        source: Arc<dyn BoundsSource>,
    ) -> Result<Self, LayerError> {
        let specs = super::validate(configs, data_dir)?;
        let reloader = Reloader {
            data_dir: data_dir.to_owned(),
            source,
            reported: tokio::sync::Mutex::new(HashMap::new()),
        };
        let mut layers = Vec::with_capacity(specs.len());
        for spec in specs {
            if let Some(overview) = &spec.overview {
                stat(&overview.path).await.map_err(|e| LayerError::Overview {
                    layer: spec.name.clone(),
                    path: overview.path.clone(),
                    source: match e {
                        LayerError::Read { source, .. } => source,
                        other => std::io::Error::other(other.to_string()),
                    },
                })?;
            }
            let started = std::time::Instant::now();
            let mut layer = match &spec.kind {
                SpecKind::MosaicJson(path) => {
                    let (bytes, stamp) = read_file(path).await?;
                    mosaic_layer(spec.clone(), parse_mosaic(path.clone(), bytes).await?, stamp)?
                }
                SpecKind::Footprint(fp) => {
                    let list = reloader.footprint_list(&spec, fp).await?;
                    reloader.footprint_layer(spec.clone(), (fp.minzoom, fp.maxzoom), list, &[]).await
                }
                SpecKind::Stac(stac) => {
                    let (bytes, stamp) = read_file(&stac.items).await?;
                    stac_layer(spec.clone(), stac.clone(), data_dir.to_owned(), bytes, stamp).await?
                }
            };
            layer.info.load_time = started.elapsed();
            with_overview_zooms(&mut layer);
            let info = &layer.info;
            tracing::info!(
                layer = %info.name,
                items = info.item_count,
                load_ms = info.load_time.as_secs_f64() * 1e3,
                assets = info.asset_count,
                unreadable = info.unreadable_assets,
                "layer loaded"
            );
            layers.push(Arc::new(layer));
        }
        Ok(Self { current: RwLock::new(Arc::new(Snapshot { layers })), reloader })
    }

    /// Rebuilds the layers whose sources changed since they were built and swaps the new
    /// snapshot in. Concurrent calls run one after the other.
    pub async fn reload(&self) -> ReloadReport {
        let mut reported = self.reloader.reported.lock().await;
        let before = self.snapshot();
        let mut report = ReloadReport::default();
        let mut layers = Vec::with_capacity(before.layers.len());
        for layer in &before.layers {
            let name = layer.name().to_owned();
            let started = std::time::Instant::now();
            match self.reloader.rebuild(layer, reported.get(&name)).await {
                Ok(None) => {
                    reported.remove(&name);
                    layers.push(layer.clone());
                }
                Ok(Some(mut new)) => {
                    new.info.load_time = started.elapsed();
                    with_overview_zooms(&mut new);
                    reported.remove(&name);
                    tracing::info!(
                        layer = %name,
                        assets = new.info.asset_count,
                        unreadable = new.info.unreadable_assets,
                        "layer reloaded"
                    );
                    report.reloaded.push(name);
                    layers.push(Arc::new(new));
                }
                Err(Failure { signature, error }) => {
                    if reported.get(&name) != Some(&signature) {
                        tracing::warn!(layer = %name, %error, "layer not reloaded; the previous version stays in service");
                        reported.insert(name.clone(), signature);
                    }
                    report.failed.push(name);
                    layers.push(layer.clone());
                }
            }
        }
        if !report.reloaded.is_empty() {
            self.swap(Snapshot { layers });
        }
        report
    }

    /// Spawns the reload loop: [`Layers::reload`] every `interval` until `shutdown`
    /// turns true (or its sender is dropped). A zero interval, or no layer configured,
    /// disables reloading.
    pub fn watch(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            // The set of layers is fixed at start: with none there is nothing to watch.
            if self.is_empty() {
                return;
            }
            if interval.is_zero() {
                tracing::info!("layer reloading is off (interval 0)");
                return;
            }
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => { self.reload().await; }
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            return;
                        }
                    }
                }
            }
        })
    }
}

/// A layer with an overview says so, and serves every zoom from 0 (its overview's range)
/// up.
fn with_overview_zooms(layer: &mut Layer) {
    if let Some(overview) = &layer.spec.overview {
        layer.info.minzoom = 0;
        layer.info.overview = Some((overview.asset.clone(), overview.maxzoom));
    }
}

/// A source that changed but cannot be used.
struct Failure {
    /// Identifies this failure, so that the same one is logged once.
    signature: String,
    error: LayerError,
}

impl Reloader {
    /// The layer rebuilt from its sources, `None` when they did not change. A MosaicJSON
    /// file whose version already failed (`last_failure`) is not read again.
    async fn rebuild(&self, layer: &Layer, last_failure: Option<&String>) -> Result<Option<Layer>, Failure> {
        match (&layer.spec.kind, &layer.source) {
            (SpecKind::MosaicJson(path), LayerSource::MosaicJson { stamp, .. }) => {
                let Some(signature) = changed(path, *stamp, last_failure).await? else {
                    return Ok(None);
                };
                let fail = |error| Failure { signature: signature.clone(), error };
                let (bytes, now) = read_file(path).await.map_err(fail)?;
                let mosaic = parse_mosaic(path.clone(), bytes).await.map_err(fail)?;
                mosaic_layer(layer.spec.clone(), mosaic, now).map(Some).map_err(fail)
            }
            (SpecKind::Footprint(fp), LayerSource::Footprint { entries, .. }) => {
                if fp.glob.is_none() {
                    return Ok(None);
                }
                let list = self
                    .footprint_list(&layer.spec, fp)
                    .await
                    .map_err(|error| Failure { signature: error.to_string(), error })?;
                let unchanged = list.len() == entries.len()
                    && list
                        .iter()
                        .zip(entries)
                        .all(|((name, stamp), e)| *name == e.name && *stamp == e.stamp);
                if unchanged {
                    return Ok(None);
                }
                Ok(Some(
                    self.footprint_layer(layer.spec.clone(), (fp.minzoom, fp.maxzoom), list, entries).await,
                ))
            }
            (SpecKind::Stac(stac), LayerSource::Stac { stamp, .. }) => {
                let Some(signature) = changed(&stac.items, *stamp, last_failure).await? else {
                    return Ok(None);
                };
                let fail = |error| Failure { signature: signature.clone(), error };
                let (bytes, now) = read_file(&stac.items).await.map_err(fail)?;
                stac_layer(layer.spec.clone(), stac.clone(), self.data_dir.clone(), bytes, now)
                    .await
                    .map(Some)
                    .map_err(fail)
            }
            // A layer's source always matches its spec's kind.
            _ => Ok(None),
        }
    }

    /// The footprint layer's assets in list order: configured ones (no stamp), then glob
    /// matches not already configured, except the layer's own overview (written where
    /// the glob may match it, it is not one of the layer's assets).
    async fn footprint_list(
        &self,
        layer_spec: &LayerSpec,
        spec: &FootprintSpec,
    ) -> Result<Vec<(String, Option<FileStamp>)>, LayerError> {
        let layer = layer_spec.name.as_str();
        let overview = layer_spec.overview.as_ref().map(|o| o.path.as_path());
        let mut list: Vec<(String, Option<FileStamp>)> =
            spec.assets.iter().map(|a| (a.clone(), None)).collect();
        if let Some(pattern) = &spec.glob {
            let (name, dir, owned) = (layer.to_owned(), self.data_dir.clone(), pattern.clone());
            let found = tokio::task::spawn_blocking(move || footprint::glob_files(&name, &dir, &owned))
                .await
                .map_err(|e| LayerError::Glob {
                    layer: layer.to_owned(),
                    pattern: pattern.clone(),
                    problem: format!("listing task failed: {e}"),
                })??;
            let configured: std::collections::HashSet<&str> =
                spec.assets.iter().map(String::as_str).collect();
            let globbed: Vec<_> = found
                .into_iter()
                .filter(|(n, _)| {
                    !configured.contains(n.as_str()) && overview != Some(self.data_dir.join(n).as_path())
                })
                .map(|(n, s)| (n, Some(s)))
                .collect();
            list.extend(globbed);
        }
        Ok(list)
    }

    /// Reads what `previous` does not already hold and builds the layer.
    async fn footprint_layer(
        &self,
        spec: LayerSpec,
        (minzoom, maxzoom): (u8, u8),
        list: Vec<(String, Option<FileStamp>)>,
        previous: &[Entry],
    ) -> Layer {
        let entries = footprint::read_entries(&spec.name, list, previous, self.source.as_ref()).await;
        let index = FootprintIndex::new(&entries);
        let unreadable = entries.len() - index.len();
        let info = indexed_info(&spec, LayerKind::Footprint, &index, (minzoom, maxzoom), unreadable);
        Layer { own_minzoom: info.minzoom, info, spec, source: LayerSource::Footprint { entries, index } }
    }
}

/// The signature of `path`'s version when it changed since `stamp`, `None` when it did
/// not; a version that already failed (`last_failure`) fails again without being read.
async fn changed(
    path: &Path,
    stamp: FileStamp,
    last_failure: Option<&String>,
) -> Result<Option<String>, Failure> {
    let now = stat(path).await.map_err(|error| Failure { signature: error.to_string(), error })?;
    if now == stamp {
        return Ok(None);
    }
    let signature = format!("{now:?}");
    if last_failure == Some(&signature) {
        let error = LayerError::Read {
            path: path.to_owned(),
            source: std::io::Error::other("this version of the file was already refused"),
        };
        return Err(Failure { signature, error });
    }
    Ok(Some(signature))
}

/// What a layer over an R-tree of footprints serves: their union (the whole world while
/// there is none) and its centre at the lowest zoom.
fn indexed_info(
    spec: &LayerSpec,
    kind: LayerKind,
    index: &FootprintIndex,
    (minzoom, maxzoom): (u8, u8),
    unreadable_assets: usize,
) -> LayerInfo {
    let item_count = index.len() + unreadable_assets;
    let bounds = index.bounds().unwrap_or([-180.0, -90.0, 180.0, 90.0]);
    let [min_x, min_y, max_x, max_y] = bounds;
    let (center_lon, center_lat) = BBox { min_x, min_y, max_x, max_y }.lon_lat_centre();
    LayerInfo {
        name: spec.name.clone(),
        kind,
        description: spec.description.clone(),
        bounds,
        minzoom,
        maxzoom,
        center: (center_lon, center_lat, minzoom),
        asset_count: index.len(),
        unreadable_assets,
        attribution: None,
        version: None,
        item_count,
        load_time: Duration::ZERO,
        overview: None,
    }
}

/// A STAC layer from the bytes of its items file: parsed, selected and indexed off the
/// async threads (an ItemCollection of 100 000 items is hundreds of megabytes).
async fn stac_layer(
    spec: LayerSpec,
    stac: StacSpec,
    data_dir: PathBuf,
    bytes: Vec<u8>,
    stamp: FileStamp,
) -> Result<Layer, LayerError> {
    let (path, minzoom, maxzoom) = (stac.items.clone(), stac.minzoom, stac.maxzoom);
    let name = spec.name.clone();
    let index = tokio::task::spawn_blocking(move || {
        let document = stac::Location::File(stac.items.clone());
        let raw = stac::parse_item_collection(&name, &document, &bytes, &stac.selection)?;
        let items = stac::select(&name, &document, &data_dir, raw, &stac.selection)?;
        Ok::<_, LayerError>(FootprintIndex::of_items(items.into_iter().map(|i| (i.href, i.bbox)).collect()))
    })
    .await
    .map_err(|e| LayerError::Read {
        path,
        source: std::io::Error::other(format!("parsing task failed: {e}")),
    })??;
    let info = indexed_info(&spec, LayerKind::Stac, &index, (minzoom, maxzoom), 0);
    Ok(Layer { own_minzoom: info.minzoom, info, spec, source: LayerSource::Stac { index, stamp } })
}

/// A MosaicJSON layer; its zooms must reach into Tessera's range.
fn mosaic_layer(spec: LayerSpec, mosaic: Mosaic, stamp: FileStamp) -> Result<Layer, LayerError> {
    if let SpecKind::MosaicJson(path) = &spec.kind {
        if mosaic.minzoom > MAX_ZOOM {
            return Err(LayerError::MosaicField {
                path: path.clone(),
                field: "minzoom",
                problem: format!("is {}; Tessera serves zoom levels 0..={MAX_ZOOM}", mosaic.minzoom),
            });
        }
        if mosaic.ignored_keys > 0 {
            tracing::warn!(
                layer = %spec.name,
                path = %path.display(),
                ignored = mosaic.ignored_keys,
                quadkey_zoom = mosaic.quadkey_zoom,
                "MosaicJSON `tiles` keys that are not quadkeys at quadkey_zoom are ignored"
            );
        }
    }
    let info = LayerInfo {
        name: spec.name.clone(),
        kind: LayerKind::MosaicJson,
        description: spec.description.clone().or_else(|| mosaic.description.clone()),
        bounds: mosaic.bounds,
        minzoom: mosaic.minzoom,
        maxzoom: mosaic.maxzoom.min(MAX_ZOOM),
        center: mosaic.center,
        asset_count: mosaic.asset_count(),
        unreadable_assets: 0,
        attribution: mosaic.attribution.clone(),
        version: Some(mosaic.version.clone()),
        item_count: mosaic.quadkey_count(),
        load_time: Duration::ZERO,
        overview: None,
    };
    Ok(Layer { own_minzoom: info.minzoom, info, spec, source: LayerSource::MosaicJson { mosaic, stamp } })
}

async fn stat(path: &Path) -> Result<FileStamp, LayerError> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|source| LayerError::Read { path: path.to_owned(), source })?;
    Ok(FileStamp::of(&meta))
}

/// The file's bytes and the stamp taken just before reading them (so a write racing
/// the read shows up as a newer stamp on the next pass).
async fn read_file(path: &Path) -> Result<(Vec<u8>, FileStamp), LayerError> {
    let stamp = stat(path).await?;
    let bytes =
        tokio::fs::read(path).await.map_err(|source| LayerError::Read { path: path.to_owned(), source })?;
    Ok((bytes, stamp))
}

/// Parses off the async threads: documents of 10 000 assets are tens of megabytes.
async fn parse_mosaic(path: PathBuf, bytes: Vec<u8>) -> Result<Mosaic, LayerError> {
    let task_path = path.clone();
    tokio::task::spawn_blocking(move || Mosaic::parse(&task_path, &bytes)).await.map_err(|e| {
        LayerError::Read { path, source: std::io::Error::other(format!("parsing task failed: {e}")) }
    })?
}
