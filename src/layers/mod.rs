//! Server-side mosaic layers: a caller names a layer instead of listing thousands of
//! assets, and Tessera picks the assets that cover the tile.
//!
//! # Theory of operation
//!
//! A layer is configured by a `[[layers]]` table ([`LayerConfig`]) and is one of:
//! - a **MosaicJSON** document ([`mosaicjson`]), whose `tiles` map lists assets per Web
//!   Mercator quadkey; selection follows cogeo-mosaic exactly;
//! - a **footprint** layer ([`footprint`]): configured assets and/or a glob under the data
//!   directory, whose lon/lat bounds are read once through a [`BoundsSource`] (the
//!   integrator's worker info jobs) and kept in an R-tree;
//! - a **STAC** layer ([`stac`]): the items of an ItemCollection or a stac-geoparquet
//!   file, each item's asset found by its bbox in the same kind of R-tree, nothing opened.
//!
//! [`Layers`] holds an immutable snapshot of every layer behind a lock that is only held
//! to clone or replace an `Arc`, so a tile request never waits on a reload. The reload
//! loop ([`Layers::watch`]) re-reads a MosaicJSON or STAC file when its modification time or size
//! changes and re-evaluates footprint globs, reading bounds only for new or rewritten
//! files, then swaps in a new snapshot. A document that fails to parse leaves the
//! previous version in service and is reported once per version of the file.
//!
//! A layer may have an **overview** ([`OverviewSpec`]): one COG of the layer on the
//! WebMercatorQuad grid of a zoom N, built by `tessera layer build-overview` through a
//! running server. WebMercatorQuad tiles at zooms `0..=N` then read that one file instead
//! of the thousands of assets under them; tiles above N are unchanged. The overview does
//! not follow the layer's changes: it is as fresh as its last build.
//!
//! Asset names come back as written (MosaicJSON, with `asset_prefix`) or relative to the
//! data directory (glob matches); the caller resolves them through the same access
//! policy as assets named in a request.

mod config;
pub mod document;
mod error;
pub mod footprint;
pub mod mosaicjson;
pub mod quadkey;
mod reload;
pub mod stac;

use std::sync::{Arc, PoisonError, RwLock};

pub use config::{
    DEFAULT_FOOTPRINT_MAXZOOM, DEFAULT_FOOTPRINT_MINZOOM, DEFAULT_STAC_ASSET, FootprintConfig, FootprintSpec,
    LayerConfig, LayerSpec, MAX_LAYER_NAME_LEN, OverviewSpec, SpecKind, StacConfig, StacSpec, validate,
};
pub use document::{DocumentSource, Documents, Location, RemoteVersion};
pub use error::LayerError;
pub use reload::ReloadReport;

use crate::tms::TileId;

/// Where footprint layers get an asset's bounds: longitude/latitude `[west, south, east,
/// north]`, or a message saying why they cannot be read. The integrator implements it
/// with worker info jobs; the asset name is as the layer lists it.
pub trait BoundsSource: Send + Sync {
    /// The asset's lon/lat bounds.
    fn bounds<'a>(&'a self, asset: &'a str) -> futures::future::BoxFuture<'a, Result<[f64; 4], String>>;
}

/// Which kind of layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Backed by a MosaicJSON document.
    MosaicJson,
    /// Backed by asset footprints.
    Footprint,
    /// The items of a STAC ItemCollection or stac-geoparquet file.
    Stac,
}

/// What a layer serves, TileJSON-like. Band information is the caller's to add.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// The layer's configured name.
    pub name: String,
    /// MosaicJSON or footprint.
    pub kind: LayerKind,
    /// The configured description, else the MosaicJSON document's.
    pub description: Option<String>,
    /// West, south, east, north in degrees: the document's `bounds`, or the union of the
    /// footprints (the whole world while a footprint layer has no readable asset).
    pub bounds: [f64; 4],
    /// Lowest zoom served.
    pub minzoom: u8,
    /// Highest zoom served (a document's `maxzoom` capped at [`crate::tms::MAX_ZOOM`]).
    pub maxzoom: u8,
    /// Longitude, latitude, zoom.
    pub center: (f64, f64, u8),
    /// Distinct assets the layer can select.
    pub asset_count: usize,
    /// Footprint assets left out because their bounds could not be read.
    pub unreadable_assets: usize,
    /// The MosaicJSON document's `attribution`.
    pub attribution: Option<String>,
    /// The MosaicJSON document's `version`.
    pub version: Option<String>,
    /// The entries the layer was built from: a MosaicJSON document's quadkeys, a
    /// footprint layer's assets (readable or not), a STAC layer's selected items.
    pub item_count: usize,
    /// How long building this version of the layer took (reading, parsing, indexing).
    pub load_time: std::time::Duration,
    /// The overview's asset name and the highest zoom it serves, if the layer has one.
    pub overview: Option<(String, u8)>,
}

/// One layer, immutable; a reload builds a new one.
#[derive(Debug)]
pub struct Layer {
    info: LayerInfo,
    /// The lowest zoom of the layer's own assets (`info.minzoom` is 0 with an overview).
    own_minzoom: u8,
    spec: LayerSpec,
    source: LayerSource,
}

/// What a layer selects from, with what the reload loop compares against.
#[derive(Debug)]
enum LayerSource {
    MosaicJson { mosaic: mosaicjson::Mosaic, version: document::Version },
    Footprint { entries: Vec<footprint::Entry>, index: footprint::FootprintIndex },
    Stac { index: footprint::FootprintIndex, version: document::Version },
}

impl Layer {
    /// The layer's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// What the layer serves.
    #[must_use]
    pub fn info(&self) -> &LayerInfo {
        &self.info
    }

    /// The asset budget of one tile, if the layer has one.
    #[must_use]
    pub fn max_assets_per_tile(&self) -> Option<usize> {
        self.spec.max_assets_per_tile
    }

    /// The layer's first asset (the document's first, or the first footprint that
    /// could be read): where a description of the layer's bands comes from.
    #[must_use]
    pub fn first_asset(&self) -> Option<String> {
        match &self.source {
            LayerSource::MosaicJson { mosaic, .. } => mosaic.first_asset(),
            LayerSource::Footprint { entries, .. } => {
                entries.iter().find(|e| e.footprint.is_ok()).map(|e| e.name.clone())
            }
            LayerSource::Stac { index, .. } => index.first(),
        }
    }

    /// The layer's overview, if it has one.
    #[must_use]
    pub fn overview(&self) -> Option<&OverviewSpec> {
        self.spec.overview.as_ref()
    }

    /// The overview `tile` reads instead of the layer's assets: the layer's overview when
    /// the tile is a WebMercatorQuad tile at or below its zoom (the grid it was built on),
    /// whatever the layer's own zoom range.
    #[must_use]
    pub fn overview_for(&self, tile: &TileId) -> Option<&OverviewSpec> {
        self.overview()
            .filter(|o| tile.z <= o.maxzoom && tile.tms == crate::tms::TileMatrixSet::WEB_MERCATOR_QUAD)
    }

    /// The assets covering `tile`, highest priority first (render them as an explicit
    /// request listing them in this order): the overview alone when [`Layer::overview_for`]
    /// gives one. Empty when none covers it; an error when the tile's zoom is outside the
    /// layer's range.
    pub fn assets_for_tile(&self, tile: &TileId) -> Result<Vec<String>, LayerError> {
        if let Some(overview) = self.overview_for(tile) {
            return Ok(vec![overview.asset.clone()]);
        }
        self.own_assets_for_tile(tile)
    }

    /// The layer's own assets covering `tile`, as [`Layer::assets_for_tile`] but never
    /// the overview (what an overview is built from); an error when the tile's zoom is
    /// outside the layer's own range.
    pub fn own_assets_for_tile(&self, tile: &TileId) -> Result<Vec<String>, LayerError> {
        self.check_zoom(tile)?;
        Ok(match &self.source {
            LayerSource::MosaicJson { mosaic, .. } => mosaic.assets_for_tile(tile),
            LayerSource::Footprint { index, .. } | LayerSource::Stac { index, .. } => {
                tile.geographic_bounds().map_or_else(Vec::new, |b| index.assets_in(&b))
            }
        })
    }

    /// The bands the layer's tiles return when a request names none (a STAC layer's
    /// `bands`; empty: all data bands).
    #[must_use]
    pub fn default_bands(&self) -> &[u32] {
        match &self.spec.kind {
            SpecKind::Stac(stac) => &stac.bands,
            _ => &[],
        }
    }

    /// Whether the layer leaves out assets covered by earlier ones for `first` tiles
    /// (`skip_covered = true`; footprint and STAC layers only).
    #[must_use]
    pub fn skips_covered(&self) -> bool {
        self.spec.skip_covered
    }

    /// Like [`Self::own_assets_for_tile`], but without the assets whose footprint within
    /// the tile lies under the footprints of assets before them; also returns how many
    /// were left out. A MosaicJSON layer has no footprints: nothing is left out.
    pub fn uncovered_assets_for_tile(&self, tile: &TileId) -> Result<(Vec<String>, usize), LayerError> {
        self.check_zoom(tile)?;
        Ok(match &self.source {
            LayerSource::MosaicJson { mosaic, .. } => (mosaic.assets_for_tile(tile), 0),
            LayerSource::Footprint { index, .. } | LayerSource::Stac { index, .. } => {
                tile.geographic_bounds().map_or_else(|| (Vec::new(), 0), |b| index.uncovered_assets_in(&b))
            }
        })
    }

    /// An error when the tile's zoom is outside the layer's own range.
    fn check_zoom(&self, tile: &TileId) -> Result<(), LayerError> {
        let (minzoom, maxzoom) = (self.own_minzoom, self.info.maxzoom);
        if !(minzoom..=maxzoom).contains(&tile.z) {
            return Err(LayerError::ZoomOutsideLayer {
                layer: self.info.name.clone(),
                z: tile.z,
                minzoom,
                maxzoom,
            });
        }
        Ok(())
    }

    /// The assets at a lon/lat point, highest priority first: for a MosaicJSON layer
    /// those of the quadkey tile holding it (cogeo-mosaic's `assets_for_point`), for a
    /// footprint layer those whose footprint holds it.
    #[must_use]
    pub fn assets_for_point(&self, lon: f64, lat: f64) -> Vec<String> {
        match &self.source {
            LayerSource::MosaicJson { mosaic, .. } => mosaic.assets_for_point(lon, lat),
            LayerSource::Footprint { index, .. } | LayerSource::Stac { index, .. } => {
                index.assets_at(lon, lat)
            }
        }
    }
}

/// The registry of layers: cheap to share (`Arc<Layers>`), read without waiting on
/// reloads.
pub struct Layers {
    current: RwLock<Arc<Snapshot>>,
    reloader: reload::Reloader,
    /// The validated configuration, in order.
    specs: Vec<LayerSpec>,
    /// Whether every configured layer has been built ([`Layers::load_configured`]).
    loaded: std::sync::atomic::AtomicBool,
}

/// Every layer at one moment, in configuration order.
#[derive(Debug, Default)]
struct Snapshot {
    layers: Vec<Arc<Layer>>,
}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layers").field("layers", &self.snapshot().layers.len()).finish_non_exhaustive()
    }
}

impl Layers {
    /// The layer called `name`, as of now.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<Layer>> {
        self.snapshot().layers.iter().find(|l| l.name() == name).cloned()
    }

    /// Every layer's info, in configuration order.
    #[must_use]
    pub fn list(&self) -> Vec<LayerInfo> {
        self.snapshot().layers.iter().map(|l| l.info.clone()).collect()
    }

    /// Whether no layer is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// How many layers are configured (built or not yet).
    #[must_use]
    pub fn configured(&self) -> usize {
        self.specs.len()
    }

    /// Whether the configured layers are built and served (until then the registry
    /// serves none).
    #[must_use]
    pub fn loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        // A panic while swapping cannot leave a half-written Arc: the old value stands.
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn swap(&self, next: Snapshot) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }
}

#[cfg(test)]
mod tests;
