//! MosaicJSON documents (spec 0.0.1 to 0.0.3): which assets cover each Web Mercator
//! tile at the document's `quadkey_zoom`, and the asset list of any tile derived from it
//! the way cogeo-mosaic derives it.
//!
//! Selection for a Web Mercator tile z/x/y, with `qz` the quadkey zoom:
//! - `z >= qz`: the assets of the ancestor's quadkey (a prefix of the tile's quadkey);
//! - `z < qz`: the assets of every descendant quadkey at `qz`, in quadkey order;
//!
//! concatenated, duplicates dropped keeping the first occurrence, then `asset_prefix`
//! prepended to each. For a tile of another tile matrix set, cogeo-mosaic takes the Web
//! Mercator tiles at `qz` containing the tile's north-west and south-east corners and
//! every tile between them, column by column (west to east, each column north to
//! south), with the same concatenation. A corner exactly on a tile edge therefore pulls
//! in the neighbouring column or row that only touches the tile, on whichever side
//! cogeo-mosaic's floating-point arithmetic puts it ([`quadkey::column`]); Tessera keeps
//! those neighbours, because dropping them would change the order of deduplicated
//! assets and so the pixels chosen where assets overlap.
//!
//! `quadkey_zoom` is the document's value unless it is absent or 0, in which case it is
//! `minzoom` (cogeo-mosaic's `quadkey_zoom or minzoom`). Keys of `tiles` that are not
//! quadkeys at that zoom can never be selected; they are dropped and counted.

use std::{collections::BTreeMap, collections::HashMap};

use serde::Deserialize;

use super::{LayerError, quadkey};
use crate::tms::{BBox, TileId, TileMatrixSet};

/// MosaicJSON spec versions accepted in the `mosaicjson` field.
pub const SUPPORTED_MOSAICJSON_VERSIONS: [&str; 3] = ["0.0.1", "0.0.2", "0.0.3"];

/// The document as written; fields Tessera does not use (`asset_type`, `data_type`,
/// `colormap`, `layers`) are ignored.
#[derive(Deserialize)]
struct RawMosaic {
    mosaicjson: String,
    name: Option<String>,
    description: Option<String>,
    version: Option<String>,
    attribution: Option<String>,
    minzoom: Option<i64>,
    maxzoom: Option<i64>,
    quadkey_zoom: Option<i64>,
    bounds: Option<[f64; 4]>,
    center: Option<[f64; 3]>,
    tiles: HashMap<String, Vec<String>>,
    tilematrixset: Option<serde_json::Value>,
    asset_prefix: Option<String>,
}

/// A validated MosaicJSON document.
#[derive(Debug)]
pub struct Mosaic {
    /// The document's `name`.
    pub name: Option<String>,
    /// The document's `description`.
    pub description: Option<String>,
    /// The document's `version` (`1.0.0` when absent, as in cogeo-mosaic).
    pub version: String,
    /// The document's `attribution`.
    pub attribution: Option<String>,
    /// Lowest zoom served.
    pub minzoom: u8,
    /// Highest zoom served.
    pub maxzoom: u8,
    /// The zoom of the `tiles` keys.
    pub quadkey_zoom: u8,
    /// West, south, east, north in degrees (west > east across the antimeridian).
    pub bounds: [f64; 4],
    /// Longitude, latitude, zoom (the middle of `bounds` at `minzoom` when absent; for
    /// bounds across the antimeridian, the middle of the arc over it, where cogeo-mosaic
    /// would average the two edges into the opposite side of the world).
    pub center: (f64, f64, u8),
    /// Prepended to every asset name on selection.
    asset_prefix: String,
    /// Every asset name once, in order of first appearance while reading.
    assets: Vec<Box<str>>,
    /// Quadkey (all of length `quadkey_zoom`) → indices into `assets`, in quadkey order.
    tiles: BTreeMap<Box<str>, Box<[u32]>>,
    /// `tiles` keys dropped because they are not quadkeys at `quadkey_zoom`.
    pub ignored_keys: usize,
}

impl Mosaic {
    /// Parses and validates a document read from `document` (a file or URL, named in
    /// errors).
    pub fn parse(document: &str, bytes: &[u8]) -> Result<Self, LayerError> {
        let raw: RawMosaic = serde_json::from_slice(bytes)
            .map_err(|source| LayerError::Parse { document: document.to_owned(), source })?;
        let field = |field: &'static str, problem: String| LayerError::MosaicField {
            document: document.to_owned(),
            field,
            problem,
        };
        if !SUPPORTED_MOSAICJSON_VERSIONS.contains(&raw.mosaicjson.as_str()) {
            return Err(field(
                "mosaicjson",
                format!(
                    "is '{}'; supported versions are {}",
                    raw.mosaicjson,
                    SUPPORTED_MOSAICJSON_VERSIONS.join(", ")
                ),
            ));
        }
        check_tile_matrix_set(raw.tilematrixset.as_ref()).map_err(|p| field("tilematrixset", p))?;
        let zoom = |name: &'static str, value: Option<i64>, default: u8| match value {
            None => Ok(default),
            Some(v) => u8::try_from(v)
                .ok()
                .filter(|z| *z <= quadkey::MAX_QUADKEY_ZOOM)
                .ok_or_else(|| field(name, format!("is {v}; allowed: 0..={}", quadkey::MAX_QUADKEY_ZOOM))),
        };
        let minzoom = zoom("minzoom", raw.minzoom, 0)?;
        let maxzoom = zoom("maxzoom", raw.maxzoom, quadkey::MAX_QUADKEY_ZOOM)?;
        if minzoom > maxzoom {
            return Err(field("minzoom", format!("is {minzoom}, above maxzoom {maxzoom}")));
        }
        let quadkey_zoom = match zoom("quadkey_zoom", raw.quadkey_zoom, 0)? {
            0 => minzoom,
            z => z,
        };
        let bounds = raw.bounds.unwrap_or([-180.0, -90.0, 180.0, 90.0]);
        if bounds.iter().any(|v| !v.is_finite()) {
            return Err(field("bounds", format!("is {bounds:?}; all four numbers must be finite")));
        }
        let center = match raw.center {
            None => {
                let [min_x, min_y, max_x, max_y] = bounds;
                let (lon, lat) = BBox { min_x, min_y, max_x, max_y }.lon_lat_centre();
                (lon, lat, minzoom)
            }
            Some([lon, lat, z]) => {
                let valid = lon.is_finite()
                    && lat.is_finite()
                    && z.fract() == 0.0
                    && (0.0..=f64::from(quadkey::MAX_QUADKEY_ZOOM)).contains(&z);
                if !valid {
                    return Err(field(
                        "center",
                        format!(
                            "is [{lon}, {lat}, {z}]; expected [lon, lat, zoom] with a whole zoom in 0..={}",
                            quadkey::MAX_QUADKEY_ZOOM
                        ),
                    ));
                }
                (lon, lat, z as u8)
            }
        };

        let mut assets: Vec<Box<str>> = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut tiles = BTreeMap::new();
        let mut ignored_keys = 0;
        for (key, names) in raw.tiles {
            if key.len() != usize::from(quadkey_zoom) || quadkey::tile_of(&key).is_none() {
                ignored_keys += 1;
                continue;
            }
            let mut ids = Vec::with_capacity(names.len());
            for name in names {
                let next = u32::try_from(assets.len())
                    .map_err(|_| field("tiles", "names more than 2^32 distinct assets".to_owned()))?;
                let id = *index.entry(name).or_insert_with_key(|name| {
                    assets.push(name.as_str().into());
                    next
                });
                ids.push(id);
            }
            tiles.insert(key.into_boxed_str(), ids.into_boxed_slice());
        }

        Ok(Self {
            name: raw.name,
            description: raw.description,
            version: raw.version.unwrap_or_else(|| "1.0.0".to_owned()),
            attribution: raw.attribution,
            minzoom,
            maxzoom,
            quadkey_zoom,
            bounds,
            center,
            asset_prefix: raw.asset_prefix.unwrap_or_default(),
            assets,
            tiles,
            ignored_keys,
        })
    }

    /// How many quadkeys the document's `tiles` map.
    #[must_use]
    pub fn quadkey_count(&self) -> usize {
        self.tiles.len()
    }

    /// How many distinct assets the document names.
    #[must_use]
    pub fn asset_count(&self) -> usize {
        self.assets.len()
    }

    /// The first asset of the first quadkey (in quadkey order), with `asset_prefix`.
    #[must_use]
    pub fn first_asset(&self) -> Option<String> {
        let id = *self.tiles.values().find_map(|ids| ids.first())?;
        Some(format!("{}{}", self.asset_prefix, self.assets[id as usize]))
    }

    /// The assets at a lon/lat point: those of the Web Mercator tile at `quadkey_zoom`
    /// holding it, as cogeo-mosaic's `assets_for_point` picks them.
    #[must_use]
    pub fn assets_for_point(&self, lon: f64, lat: f64) -> Vec<String> {
        let z = self.quadkey_zoom;
        let tile = TileId {
            tms: TileMatrixSet::WEB_MERCATOR_QUAD,
            z,
            x: quadkey::column(lon, z),
            y: quadkey::row(lat, z),
        };
        self.assets_for_tile(&tile)
    }

    /// The assets covering `tile`, in cogeo-mosaic's order (see the module docs). The
    /// zoom range is not checked here.
    #[must_use]
    pub fn assets_for_tile(&self, tile: &TileId) -> Vec<String> {
        let mut seen = vec![false; self.assets.len()];
        let mut out = Vec::new();
        let mut take = |ids: &[u32]| {
            for &id in ids {
                let id = id as usize;
                if !std::mem::replace(&mut seen[id], true) {
                    out.push(format!("{}{}", self.asset_prefix, self.assets[id]));
                }
            }
        };
        if tile.tms == TileMatrixSet::WEB_MERCATOR_QUAD {
            let key = quadkey::quadkey(tile.z, tile.x, tile.y);
            if tile.z >= self.quadkey_zoom {
                if let Some(ids) = self.tiles.get(&key[..usize::from(self.quadkey_zoom)]) {
                    take(ids);
                }
            } else {
                // Every stored key has length `quadkey_zoom`, so the keys starting with
                // the tile's quadkey are exactly its descendants at that zoom, and the
                // map yields them in quadkey order.
                let descendants = self
                    .tiles
                    .range::<str, _>((std::ops::Bound::Included(key.as_str()), std::ops::Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(key.as_str()));
                for (_, ids) in descendants {
                    take(ids);
                }
            }
        } else if let Some(bounds) = tile.geographic_bounds() {
            // Any other set whose tiles the front can place in longitude/latitude.
            for ids in self.quadkeys_for_bbox(&bounds) {
                take(ids);
            }
        }
        out
    }

    /// The asset lists of the Web Mercator tiles at `quadkey_zoom` from the one holding
    /// the north-west corner of `b` to the one holding its south-east corner, column by
    /// column.
    fn quadkeys_for_bbox(&self, b: &BBox) -> Vec<&[u32]> {
        let qz = self.quadkey_zoom;
        let (x0, x1) = (quadkey::column(b.min_x, qz), quadkey::column(b.max_x, qz));
        let (y0, y1) = (quadkey::row(b.max_y, qz), quadkey::row(b.min_y, qz));
        let cells = u64::from(x1 - x0 + 1) * u64::from(y1 - y0 + 1);
        if cells <= self.tiles.len() as u64 {
            (x0..=x1)
                .flat_map(|x| (y0..=y1).map(move |y| (x, y)))
                .filter_map(|(x, y)| self.tiles.get(quadkey::quadkey(qz, x, y).as_str()).map(|ids| &ids[..]))
                .collect()
        } else {
            // A wide box over a deep quadkey zoom: scanning the document is cheaper than
            // visiting every cell of the range.
            let mut hits: Vec<((u32, u32), &[u32])> = self
                .tiles
                .iter()
                .filter_map(|(key, ids)| {
                    let (_, x, y) = quadkey::tile_of(key)?;
                    ((x0..=x1).contains(&x) && (y0..=y1).contains(&y)).then_some(((x, y), &ids[..]))
                })
                .collect();
            hits.sort_unstable_by_key(|(xy, _)| *xy);
            hits.into_iter().map(|(_, ids)| ids).collect()
        }
    }
}

/// Only Web Mercator quadkeys are understood: `tilematrixset` must be absent, null or a
/// tile matrix set whose `id` is `WebMercatorQuad`.
fn check_tile_matrix_set(tms: Option<&serde_json::Value>) -> Result<(), String> {
    match tms {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(value) => match value.get("id").and_then(serde_json::Value::as_str) {
            Some("WebMercatorQuad") => Ok(()),
            Some(id) => Err(format!(
                "has id '{id}'; Tessera serves MosaicJSON on WebMercatorQuad quadkeys only (omit the field or use WebMercatorQuad)"
            )),
            None => Err("has no string `id`; expected a tile matrix set with id WebMercatorQuad".to_owned()),
        },
    }
}
