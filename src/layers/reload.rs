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
    document::{Documents, Location, Version},
    footprint::{self, Entry, FileStamp, FootprintIndex},
    mosaicjson::Mosaic,
    stac,
};
use crate::tms::{BBox, MAX_ZOOM};

/// What the registry needs to rebuild layers.
pub(super) struct Reloader {
    data_dir: PathBuf,
    source: Arc<dyn BoundsSource>,
    documents: Documents,
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
    /// Validates `configs` and builds every layer ([`Layers::pending`], then
    /// [`Layers::load_configured`]).
    pub async fn load(
        configs: &[LayerConfig],
        data_dir: &Path,
        source: Arc<dyn BoundsSource>,
        documents: Documents,
    ) -> Result<Self, LayerError> {
        let layers = Self::pending(configs, data_dir, source, documents)?;
        layers.load_configured().await?;
        Ok(layers)
    }

    /// Validates `configs` into a registry that serves no layer until
    /// [`Layers::load_configured`] has built them: a server can listen (and say
    /// NOT_SERVING) while a million-item layer loads.
    pub fn pending(
        configs: &[LayerConfig],
        data_dir: &Path,
        source: Arc<dyn BoundsSource>,
        documents: Documents,
    ) -> Result<Self, LayerError> {
        let specs = super::validate(configs, data_dir)?;
        let reloader = Reloader {
            data_dir: data_dir.to_owned(),
            source,
            documents,
            reported: tokio::sync::Mutex::new(HashMap::new()),
        };
        Ok(Self {
            current: RwLock::new(Arc::new(Snapshot::default())),
            reloader,
            specs,
            loaded: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Builds every configured layer and starts serving them: MosaicJSON and STAC
    /// documents are read (files, and URLs through the registry's documents) and
    /// parsed, footprint globs listed (relative to the data directory) and every
    /// footprint asset's bounds read through the bounds source. Any document error is
    /// returned and nothing is served; assets whose bounds cannot be read are only left
    /// out (and counted).
    pub async fn load_configured(&self) -> Result<(), LayerError> {
        let reloader = &self.reloader;
        let mut layers = Vec::with_capacity(self.specs.len());
        for spec in &self.specs {
            if let Some(overview) = &spec.overview {
                tokio::fs::metadata(&overview.path).await.map_err(|source| LayerError::Overview {
                    layer: spec.name.clone(),
                    path: overview.path.clone(),
                    source,
                })?;
            }
            let started = std::time::Instant::now();
            let mut layer = match &spec.kind {
                SpecKind::MosaicJson(location) => {
                    let (bytes, version) = reloader.documents.read(location).await?;
                    mosaic_layer(spec.clone(), parse_mosaic(location, bytes).await?, version)?
                }
                SpecKind::Footprint(fp) => {
                    let list = reloader.footprint_list(spec, fp).await?;
                    reloader.footprint_layer(spec.clone(), (fp.minzoom, fp.maxzoom), list, &[]).await
                }
                SpecKind::Stac(stac) => {
                    let (bytes, version) = reloader.documents.read(&stac.items).await?;
                    stac_layer(spec.clone(), stac.clone(), reloader.data_dir.clone(), bytes, version).await?
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
        let _serialised = reloader.reported.lock().await;
        self.swap(Snapshot { layers });
        self.loaded.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Rebuilds the layers whose sources changed since they were built and swaps the new
    /// snapshot in. Concurrent calls run one after the other.
    pub async fn reload(&self) -> ReloadReport {
        let mut reported = self.reloader.reported.lock().await;
        if !self.loaded() {
            return ReloadReport::default();
        }
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
            (SpecKind::MosaicJson(location), LayerSource::MosaicJson { version, .. }) => {
                let Some(signature) = self.changed(location, version, last_failure).await? else {
                    return Ok(None);
                };
                let fail = |error| Failure { signature: signature.clone(), error };
                let (bytes, now) = self.documents.read(location).await.map_err(fail)?;
                let mosaic = parse_mosaic(location, bytes).await.map_err(fail)?;
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
            (SpecKind::Stac(stac), LayerSource::Stac { version, .. }) => {
                let Some(signature) = self.changed(&stac.items, version, last_failure).await? else {
                    return Ok(None);
                };
                let fail = |error| Failure { signature: signature.clone(), error };
                let (bytes, now) = self.documents.read(&stac.items).await.map_err(fail)?;
                stac_layer(layer.spec.clone(), stac.clone(), self.data_dir.clone(), bytes, now)
                    .await
                    .map(Some)
                    .map_err(fail)
            }
            // A layer's source always matches its spec's kind.
            _ => Ok(None),
        }
    }

    /// The signature of the document's version when it changed since `version`, `None`
    /// when it did not; a version that already failed (`last_failure`) fails again
    /// without being read.
    async fn changed(
        &self,
        location: &Location,
        version: &Version,
        last_failure: Option<&String>,
    ) -> Result<Option<String>, Failure> {
        let now = self
            .documents
            .version(location)
            .await
            .map_err(|error| Failure { signature: error.to_string(), error })?;
        if now == *version {
            return Ok(None);
        }
        let signature = format!("{now:?}");
        if last_failure == Some(&signature) {
            let error = LayerError::Read {
                document: location.to_string(),
                source: std::io::Error::other("this version of the document was already refused"),
            };
            return Err(Failure { signature, error });
        }
        Ok(Some(signature))
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

/// A STAC layer from its items file (whose `stamp` was taken before reading it): read,
/// selected and indexed off the async threads (an ItemCollection of 100 000 items is
/// hundreds of megabytes; a stac-geoparquet file of a million items takes seconds).
async fn stac_layer(
    spec: LayerSpec,
    stac: StacSpec,
    data_dir: PathBuf,
    bytes: Vec<u8>,
    version: Version,
) -> Result<Layer, LayerError> {
    let (document, minzoom, maxzoom) = (stac.items.to_string(), stac.minzoom, stac.maxzoom);
    let name = spec.name.clone();
    let index = tokio::task::spawn_blocking(move || {
        let document = &stac.items;
        let raw = stac::parse_items(&name, document, bytes, &stac.selection)?;
        let items = stac::select(&name, document, &data_dir, raw, &stac.selection)?;
        Ok::<_, LayerError>(FootprintIndex::of_items(items.into_iter().map(|i| (i.href, i.bbox)).collect()))
    })
    .await
    .map_err(|e| LayerError::Read {
        document,
        source: std::io::Error::other(format!("parsing task failed: {e}")),
    })??;
    let info = indexed_info(&spec, LayerKind::Stac, &index, (minzoom, maxzoom), 0);
    Ok(Layer { own_minzoom: info.minzoom, info, spec, source: LayerSource::Stac { index, version } })
}

/// A MosaicJSON layer; its zooms must reach into Tessera's range.
fn mosaic_layer(spec: LayerSpec, mosaic: Mosaic, version: Version) -> Result<Layer, LayerError> {
    if let SpecKind::MosaicJson(location) = &spec.kind {
        if mosaic.minzoom > MAX_ZOOM {
            return Err(LayerError::MosaicField {
                document: location.to_string(),
                field: "minzoom",
                problem: format!("is {}; Tessera serves zoom levels 0..={MAX_ZOOM}", mosaic.minzoom),
            });
        }
        if mosaic.ignored_keys > 0 {
            tracing::warn!(
                layer = %spec.name,
                document = %location,
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
    Ok(Layer { own_minzoom: info.minzoom, info, spec, source: LayerSource::MosaicJson { mosaic, version } })
}

/// Parses off the async threads: documents of 10 000 assets are tens of megabytes.
async fn parse_mosaic(location: &Location, bytes: Vec<u8>) -> Result<Mosaic, LayerError> {
    let document = location.to_string();
    let task_document = document.clone();
    tokio::task::spawn_blocking(move || Mosaic::parse(&task_document, &bytes)).await.map_err(|e| {
        LayerError::Read { document, source: std::io::Error::other(format!("parsing task failed: {e}")) }
    })?
}
