//! Server-side layers at the API: a tile request that names a `layer` becomes the
//! explicit request for the assets the layer picks for that tile, and ListLayers /
//! GetLayer describe the layers. The layers themselves live in [`crate::layers`].

use std::{borrow::Cow, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use tokio::time::Instant;

use super::{Limits, TileRenderer};
use crate::{
    echo::{number, quote},
    error::ServiceError,
    layers::{BoundsSource, Layer, LayerInfo, LayerKind, Layers},
    mosaic::AssetResolver,
    pb::v1::{self, GetTileRequest, PixelSelection},
    tms::TileMatrixSets,
};

/// How long reading one footprint asset's bounds may take.
const BOUNDS_TIMEOUT: Duration = Duration::from_secs(30);

/// Footprint bounds read by the workers (an info job, through the front's metadata
/// cache), for assets named as a request would name them.
#[derive(Debug)]
pub struct WorkerBounds {
    renderer: Arc<TileRenderer>,
    resolver: AssetResolver,
}

impl WorkerBounds {
    /// Bounds through `renderer`, with names resolved by `resolver` (the same access
    /// policy as assets named in requests).
    #[must_use]
    pub fn new(renderer: Arc<TileRenderer>, resolver: AssetResolver) -> Self {
        Self { renderer, resolver }
    }
}

/// Waits before the retries of a read that failed for want of a worker or time: an
/// asset left out of a footprint layer stays out until its file changes, so a busy or
/// starting pool must not cost it its place.
const BOUNDS_RETRY_WAITS: [Duration; 3] =
    [Duration::from_millis(250), Duration::from_secs(1), Duration::from_secs(4)];

impl BoundsSource for WorkerBounds {
    fn bounds<'a>(&'a self, asset: &'a str) -> BoxFuture<'a, Result<[f64; 4], String>> {
        Box::pin(async move {
            let asset = self.resolver.resolve(asset).map_err(|e| e.to_string())?;
            let mut waits = BOUNDS_RETRY_WAITS.iter();
            loop {
                match self.renderer.info(&asset, Instant::now() + BOUNDS_TIMEOUT).await {
                    Ok(info) => {
                        let g = info.geographic;
                        return Ok([g.min_x, g.min_y, g.max_x, g.max_y]);
                    }
                    Err(
                        ServiceError::ResourceExhausted { .. }
                        | ServiceError::Unavailable(_)
                        | ServiceError::DeadlineExceeded(_),
                    ) if let Some(wait) = waits.next() => tokio::time::sleep(*wait).await,
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
    }
}

/// What a layer picked for a tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LayerPick {
    /// Assets that cover the tile.
    pub covering: usize,
    /// Covering assets left out because earlier ones cover them (`skip_covered`).
    pub skipped: usize,
    /// Assets the tile reads: the first `read` of those not skipped, in the layer's order.
    pub read: usize,
}

impl LayerPick {
    /// Whether the asset budget left covering assets out.
    pub fn truncated(self) -> bool {
        self.read + self.skipped < self.covering
    }
}

/// `req` as an explicit request: unchanged when it names no layer, else with `assets`
/// set to what the layer picks for the tile (its overview alone at the zooms the
/// overview serves, unless the request says `ignore_overview`) (and `layer` cleared, so it renders, and is
/// shared and cached, exactly as that explicit request), cut at the tile's asset budget:
/// the request's `max_assets`, else the layer's `max_assets_per_tile`. Without either,
/// a tile with more assets than `--max-assets-per-tile` is refused.
///
/// A bad tile matrix set or tile coordinate is left for [`super::TileRequest::parse`]
/// to report, as for any request.
pub(super) fn with_layer_assets<'r>(
    req: &'r GetTileRequest,
    layers: &Layers,
    sets: &TileMatrixSets,
    limits: &Limits,
) -> Result<(Cow<'r, GetTileRequest>, Option<LayerPick>), ServiceError> {
    if req.layer.is_empty() {
        if req.max_assets != 0 {
            return Err(ServiceError::invalid(
                "max_assets",
                format!(
                    "max_assets={} applies to layer tiles; list at most the assets you want in `assets`",
                    req.max_assets
                ),
            ));
        }
        return Ok((Cow::Borrowed(req), None));
    }
    let layer = named_layer(layers, &req.layer, &req.assets)?;
    let Some(tile) = sets.get(&req.tile_matrix_set).and_then(|tms| tms.tile(req.z, req.x, req.y).ok()) else {
        return Ok((Cow::Borrowed(req), None));
    };
    let ceiling =
        layer.max_assets_per_tile().unwrap_or(limits.max_assets_per_tile).min(limits.max_assets_per_tile);
    if req.max_assets as usize > ceiling {
        let whose = if layer.max_assets_per_tile().is_some() {
            format!("layer {}'s max_assets_per_tile", quote(&req.layer))
        } else {
            "this server's --max-assets-per-tile".to_owned()
        };
        return Err(ServiceError::invalid(
            "max_assets",
            format!(
                "max_assets={} is over {whose}, {ceiling}; ask for 1..={ceiling} (0: the layer's own budget)",
                req.max_assets
            ),
        ));
    }
    let budget = match (req.max_assets, layer.max_assets_per_tile()) {
        (0, None) => None,
        (0, Some(_)) => Some(ceiling),
        (n, _) => Some(n as usize),
    };
    if tile.geographic_bounds().is_none() {
        return Err(ServiceError::invalid(
            "tile_matrix_set",
            format!(
                "layer {} picks assets by longitude/latitude, and tile matrix set '{}' is in a CRS this server cannot convert to longitude/latitude; ask for a set in EPSG:3857, EPSG:4326 or CRS84 (e.g. WebMercatorQuad)",
                quote(&req.layer),
                tile.tms
            ),
        ));
    }
    // `first` reads assets in order and stops once every pixel is settled: an asset under
    // those before it can change nothing (when data fill their footprints, which is
    // what the layer's `skip_covered` asserts). Other methods read every asset.
    let first = matches!(
        PixelSelection::try_from(req.pixel_selection),
        Ok(PixelSelection::Unspecified | PixelSelection::First)
    );
    let zoom_error = |e: crate::layers::LayerError| ServiceError::invalid("z", e.to_string());
    let overview = if req.ignore_overview { None } else { layer.overview_for(&tile) };
    let (mut assets, skipped) = if let Some(overview) = overview {
        (vec![overview.asset.clone()], 0)
    } else if layer.skips_covered() && first {
        layer.uncovered_assets_for_tile(&tile).map_err(zoom_error)?
    } else {
        (layer.own_assets_for_tile(&tile).map_err(zoom_error)?, 0)
    };
    let covering = assets.len() + skipped;
    if let Some(budget) = budget {
        assets.truncate(budget);
    }
    if assets.is_empty() {
        return Err(ServiceError::NotFound(format!(
            "layer {} has no asset at tile {}/{tile}",
            quote(&req.layer),
            tile.tms
        )));
    }
    if assets.len() > limits.max_assets_per_tile {
        return Err(ServiceError::invalid(
            "layer",
            format!(
                "layer {} has {} assets at tile {}/{tile}, over this server's limit of {} per tile (--max-assets-per-tile); ask for a higher zoom",
                quote(&req.layer),
                assets.len(),
                tile.tms,
                limits.max_assets_per_tile
            ),
        ));
    }
    let pick = LayerPick { covering, skipped, read: assets.len() };
    // The layer's default bands apply to its own assets; an overview holds the bands it
    // was built with.
    let bands = if req.bands.is_empty() && req.expression.is_empty() && overview.is_none() {
        layer.default_bands().to_vec()
    } else {
        req.bands.clone()
    };
    Ok((
        Cow::Owned(GetTileRequest {
            assets,
            layer: String::new(),
            max_assets: 0,
            ignore_overview: false,
            bands,
            ..req.clone()
        }),
        Some(pick),
    ))
}

/// The assets a point request asks about: its `assets`, or those its `layer` has at
/// the point (the point is checked first).
pub(super) fn point_assets<'r>(
    req: &'r v1::GetPointRequest,
    layers: &Layers,
    limits: &Limits,
) -> Result<Cow<'r, [String]>, ServiceError> {
    if req.layer.is_empty() {
        return Ok(Cow::Borrowed(&req.assets));
    }
    let layer = named_layer(layers, &req.layer, &req.assets)?;
    let assets = layer.assets_for_point(req.lon, req.lat);
    if assets.is_empty() {
        return Err(ServiceError::NotFound(format!(
            "layer {} has no asset at lon {}, lat {}",
            quote(&req.layer),
            number(req.lon),
            number(req.lat)
        )));
    }
    if assets.len() > limits.max_assets_per_tile {
        return Err(ServiceError::invalid(
            "layer",
            format!(
                "layer {} has {} assets at lon {}, lat {}, over this server's limit of {} per request (--max-assets-per-tile)",
                quote(&req.layer),
                assets.len(),
                number(req.lon),
                number(req.lat),
                limits.max_assets_per_tile
            ),
        ));
    }
    Ok(Cow::Owned(assets))
}

/// The layer a request names instead of `assets`: INVALID_ARGUMENT when it names
/// assets too, NOT_FOUND when the server does not serve it.
fn named_layer(layers: &Layers, name: &str, assets: &[String]) -> Result<Arc<Layer>, ServiceError> {
    if !assets.is_empty() {
        return Err(ServiceError::invalid(
            "layer",
            format!(
                "the request names layer {} and {} assets; give either `layer` or `assets`, not both",
                quote(name),
                assets.len()
            ),
        ));
    }
    layers.get(name).ok_or_else(|| unknown_layer(name, layers))
}

/// NOT_FOUND for a layer name the server does not serve, naming those it does; while
/// the layers are still loading, UNAVAILABLE.
pub(super) fn unknown_layer(name: &str, layers: &Layers) -> ServiceError {
    if !layers.loaded() {
        return still_loading(layers);
    }
    let served: Vec<String> = layers.list().into_iter().map(|l| l.name).collect();
    ServiceError::NotFound(if served.is_empty() {
        format!("layer {} is not served here: this server has no layers configured", quote(name))
    } else {
        format!("layer {} is not served here; layers: {}", quote(name), served.join(", "))
    })
}

/// UNAVAILABLE while the configured layers are being built (health is NOT_SERVING).
pub(super) fn still_loading(layers: &Layers) -> ServiceError {
    ServiceError::Unavailable(format!(
        "the server is still loading its {} layers; retry once health reports SERVING",
        layers.configured()
    ))
}

/// The API's view of a layer.
pub(super) fn layer_info(info: LayerInfo) -> v1::LayerInfo {
    let [min_x, min_y, max_x, max_y] = info.bounds;
    let (center_lon, center_lat, center_zoom) = info.center;
    v1::LayerInfo {
        name: info.name,
        kind: match info.kind {
            LayerKind::MosaicJson => v1::LayerKind::Mosaicjson,
            LayerKind::Footprint => v1::LayerKind::Footprint,
            LayerKind::Stac => v1::LayerKind::Stac,
        } as i32,
        description: info.description.unwrap_or_default(),
        bounds: Some(v1::Bounds { min_x, min_y, max_x, max_y }),
        min_zoom: info.minzoom.into(),
        max_zoom: info.maxzoom.into(),
        center_lon,
        center_lat,
        center_zoom: center_zoom.into(),
        asset_count: info.asset_count as u64,
        unreadable_assets: info.unreadable_assets as u64,
        attribution: info.attribution.unwrap_or_default(),
        item_count: info.item_count as u64,
        load_time: prost_types::Duration::try_from(info.load_time).ok(),
        version: info.version.unwrap_or_default(),
        overview_max_zoom: info.overview.as_ref().map_or(0, |(_, z)| u32::from(*z)),
        overview: info.overview.map(|(asset, _)| asset).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_info_maps_every_field() {
        let info = LayerInfo {
            name: "naip".into(),
            kind: LayerKind::Footprint,
            description: None,
            bounds: [-1.0, -2.0, 3.0, 4.0],
            minzoom: 2,
            maxzoom: 14,
            center: (1.0, 1.0, 2),
            asset_count: 7,
            unreadable_assets: 1,
            attribution: Some("a".into()),
            version: None,
            item_count: 8,
            load_time: Duration::from_millis(12),
            overview: Some(("ov/naip-z8.tif".into(), 8)),
        };
        assert_eq!(
            layer_info(info),
            v1::LayerInfo {
                name: "naip".into(),
                kind: v1::LayerKind::Footprint as i32,
                description: String::new(),
                bounds: Some(v1::Bounds { min_x: -1.0, min_y: -2.0, max_x: 3.0, max_y: 4.0 }),
                min_zoom: 2,
                max_zoom: 14,
                center_lon: 1.0,
                center_lat: 1.0,
                center_zoom: 2,
                asset_count: 7,
                unreadable_assets: 1,
                attribution: "a".into(),
                version: String::new(),
                item_count: 8,
                load_time: Some(prost_types::Duration { seconds: 0, nanos: 12_000_000 }),
                overview: "ov/naip-z8.tif".into(),
                overview_max_zoom: 8,
            }
        );
    }
}
