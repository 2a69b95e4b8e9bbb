//! The `[[layers]]` tables of the configuration file, and their validation into
//! [`LayerSpec`]s the registry builds layers from.
//!
//! ```toml
//! [[layers]]
//! name = "naip-2022"
//! description = "NAIP 2022, 60 cm"       # optional
//! mosaicjson = "naip/2022/mosaic.json"    # relative to the data directory, or absolute
//!
//! [[layers]]
//! name = "dem"
//! footprint = { glob = "dem/**/*.tif", assets = ["dem/extra.tif"], minzoom = 6, maxzoom = 16 }
//!
//! [[layers]]
//! name = "naip"
//! stac = { items = "naip/items.json", asset = "image", sort = "-datetime", datetime = "2020-01-01/..", filter = { "naip:state" = "ny" } }
//! ```

use std::{
    collections::HashSet,
    path::{Component, Path, PathBuf},
};

use serde::Deserialize;

use super::{
    LayerError,
    document::Location,
    stac::{DateRange, Selection, SortKey},
};
use crate::tms::MAX_ZOOM;

/// Longest layer name.
pub const MAX_LAYER_NAME_LEN: usize = 64;

/// A footprint layer's lowest zoom when not configured.
pub const DEFAULT_FOOTPRINT_MINZOOM: u8 = 0;

/// A footprint layer's highest zoom when not configured.
pub const DEFAULT_FOOTPRINT_MAXZOOM: u8 = MAX_ZOOM;

/// One `[[layers]]` table: a name and exactly one of `mosaicjson` or `footprint`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    /// The name requests use, `[A-Za-z0-9_.-]{1,64}`, unique.
    pub name: String,
    /// Shown in the layer's info; for a MosaicJSON layer it replaces the document's own.
    #[serde(default)]
    pub description: Option<String>,
    /// A MosaicJSON document: a path relative to the data directory or absolute, or an
    /// `http(s)://` or `s3://` URL (under `--allow-remote`).
    #[serde(default)]
    pub mosaicjson: Option<PathBuf>,
    /// A layer of assets found by their footprints.
    #[serde(default)]
    pub footprint: Option<FootprintConfig>,
    /// A layer of the items of a STAC ItemCollection.
    #[serde(default)]
    pub stac: Option<StacConfig>,
    /// At most this many assets per tile, the first in the layer's order; a tile that
    /// had more says it was truncated. Without it, a tile over the server's
    /// `--max-assets-per-tile` is refused.
    #[serde(default)]
    pub max_assets_per_tile: Option<usize>,
    /// For `first` tiles, leave out each asset whose footprint within the tile lies under
    /// the footprints of assets before it, before anything is read (cogeo-mosaic's
    /// `skipcovered`). Right only when every asset's data fill its footprint (a STAC
    /// item's bbox, a footprint asset's bounds); footprint and STAC layers.
    #[serde(default)]
    pub skip_covered: bool,
    /// A COG of the layer built by `tessera layer build-overview` (relative to the data
    /// directory): tiles at zooms up to `overview_maxzoom` read it alone.
    #[serde(default)]
    pub overview: Option<PathBuf>,
    /// The zoom the overview was built at (`--max-zoom`); required with `overview`.
    #[serde(default)]
    pub overview_maxzoom: Option<u8>,
}

/// The `stac` table of a layer: the items file, which asset of each item is the COG, and
/// which items in which order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StacConfig {
    /// A STAC ItemCollection (GeoJSON) or stac-geoparquet file (told apart by its first
    /// bytes): a path relative to the data directory or absolute, or an `http(s)://` or
    /// `s3://` URL (under `--allow-remote`).
    pub items: PathBuf,
    /// The item asset that is the COG ([`DEFAULT_STAC_ASSET`] when absent).
    #[serde(default)]
    pub asset: Option<String>,
    /// The asset's 1-based bands that tiles return, in this order, when a request names
    /// neither `bands` nor an `expression` (`[1, 2, 3]`: RGB of a 4-band NAIP scene).
    #[serde(default)]
    pub bands: Vec<u32>,
    /// A property to order items by, `-` first for highest first (`"-datetime"`: newest
    /// on top); without it the file's order is the priority order.
    #[serde(default)]
    pub sort: Option<String>,
    /// Items valid within `START/END` only (RFC 3339 times or dates, `..` for open).
    #[serde(default)]
    pub datetime: Option<String>,
    /// Properties an item must have with exactly these values.
    #[serde(default)]
    pub filter: std::collections::BTreeMap<String, toml::Value>,
    /// Lowest zoom served ([`DEFAULT_FOOTPRINT_MINZOOM`] when absent).
    #[serde(default)]
    pub minzoom: Option<u8>,
    /// Highest zoom served ([`DEFAULT_FOOTPRINT_MAXZOOM`] when absent).
    #[serde(default)]
    pub maxzoom: Option<u8>,
}

/// The highest band index a STAC layer's `bands` may name.
pub const MAX_LAYER_BANDS: u32 = 1024;

/// The item asset a STAC layer serves when `asset` is not set.
pub const DEFAULT_STAC_ASSET: &str = "image";

/// A validated STAC layer configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct StacSpec {
    /// The items file (joined to the data directory when relative) or URL.
    pub items: Location,
    /// Which items, in which order, and which of their assets.
    pub selection: Selection,
    /// The asset's bands tiles return by default (empty: all data bands).
    pub bands: Vec<u32>,
    /// Lowest zoom served.
    pub minzoom: u8,
    /// Highest zoom served.
    pub maxzoom: u8,
}

/// The `footprint` table of a layer: explicit assets and/or a glob, and a zoom range.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FootprintConfig {
    /// Asset names, in priority order (as an explicit request would list them).
    #[serde(default)]
    pub assets: Vec<String>,
    /// A glob relative to the data directory (`**` allowed); matches follow `assets`,
    /// sorted by path. Re-evaluated on every reload.
    #[serde(default)]
    pub glob: Option<String>,
    /// Lowest zoom served ([`DEFAULT_FOOTPRINT_MINZOOM`] when absent).
    #[serde(default)]
    pub minzoom: Option<u8>,
    /// Highest zoom served ([`DEFAULT_FOOTPRINT_MAXZOOM`] when absent).
    #[serde(default)]
    pub maxzoom: Option<u8>,
}

/// A validated layer configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// The layer's name.
    pub name: String,
    /// The configured description.
    pub description: Option<String>,
    /// What the layer is made of.
    pub kind: SpecKind,
    /// The asset budget of one tile, if the layer has one.
    pub max_assets_per_tile: Option<usize>,
    /// Leave out covered assets of `first` tiles.
    pub skip_covered: bool,
    /// The layer's low-zoom overview, if it has one.
    pub overview: Option<OverviewSpec>,
}

/// A validated `overview` of a layer: one COG in EPSG:3857 on the WebMercatorQuad grid of
/// `maxzoom`, which WebMercatorQuad tiles at zooms `0..=maxzoom` read instead of the
/// layer's assets.
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewSpec {
    /// The asset name requests use for it (relative to the data directory).
    pub asset: String,
    /// The file (joined to the data directory), checked at start.
    pub path: PathBuf,
    /// The highest zoom it serves.
    pub maxzoom: u8,
}

/// The two kinds of layer.
#[derive(Debug, Clone, PartialEq)]
pub enum SpecKind {
    /// A MosaicJSON document: a file (joined to the data directory when relative) or a URL.
    MosaicJson(Location),
    /// Assets found by footprint.
    Footprint(FootprintSpec),
    /// The items of a STAC ItemCollection.
    Stac(StacSpec),
}

/// A validated footprint layer configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FootprintSpec {
    /// Explicit assets, duplicates removed (first kept).
    pub assets: Vec<String>,
    /// The glob, relative to the data directory.
    pub glob: Option<String>,
    /// Lowest zoom served.
    pub minzoom: u8,
    /// Highest zoom served.
    pub maxzoom: u8,
}

/// Validates all `[[layers]]` tables: names, uniqueness, kinds, zooms and globs.
pub fn validate(configs: &[LayerConfig], data_dir: &Path) -> Result<Vec<LayerSpec>, LayerError> {
    let mut names = HashSet::new();
    configs
        .iter()
        .map(|c| {
            let spec = c.validate(data_dir)?;
            if !names.insert(spec.name.clone()) {
                return Err(LayerError::DuplicateName { name: spec.name });
            }
            Ok(spec)
        })
        .collect()
}

impl LayerConfig {
    /// Validates this table alone.
    pub fn validate(&self, data_dir: &Path) -> Result<LayerSpec, LayerError> {
        let name = &self.name;
        let name_ok = (1..=MAX_LAYER_NAME_LEN).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !name_ok {
            return Err(LayerError::InvalidName { name: name.clone() });
        }
        let kind = match (&self.mosaicjson, &self.footprint, &self.stac) {
            (Some(path), None, None) => SpecKind::MosaicJson(Location::configured(path, data_dir)),
            (None, Some(footprint), None) => SpecKind::Footprint(footprint.validate(name)?),
            (None, None, Some(stac)) => SpecKind::Stac(stac.validate(name, data_dir)?),
            (None, None, None) => return Err(LayerError::Kind { name: name.clone(), found: "none is set" }),
            _ => return Err(LayerError::Kind { name: name.clone(), found: "more than one is set" }),
        };
        if self.max_assets_per_tile == Some(0) {
            return Err(LayerError::Config {
                layer: name.clone(),
                field: "max_assets_per_tile",
                problem: "is 0; give at least 1 (or leave it out)".to_owned(),
            });
        }
        if self.skip_covered && matches!(kind, SpecKind::MosaicJson(_)) {
            return Err(LayerError::Config {
                layer: name.clone(),
                field: "skip_covered",
                problem:
                    "needs footprints, and a MosaicJSON layer has none; use it on a footprint or STAC layer"
                        .to_owned(),
            });
        }
        Ok(LayerSpec {
            name: name.clone(),
            description: self.description.clone(),
            kind,
            max_assets_per_tile: self.max_assets_per_tile,
            skip_covered: self.skip_covered,
            overview: self.overview(data_dir)?,
        })
    }

    /// The `overview` and `overview_maxzoom` pair, checked: both or neither, a relative
    /// path inside the data directory, a zoom Tessera serves.
    fn overview(&self, data_dir: &Path) -> Result<Option<OverviewSpec>, LayerError> {
        let problem = |field: &'static str, problem: String| LayerError::Config {
            layer: self.name.clone(),
            field,
            problem,
        };
        let (path, maxzoom) = match (&self.overview, self.overview_maxzoom) {
            (None, None) => return Ok(None),
            (Some(path), Some(maxzoom)) => (path, maxzoom),
            (Some(_), None) => {
                return Err(problem(
                    "overview_maxzoom",
                    "is missing; give the --max-zoom the overview was built with".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(problem(
                    "overview_maxzoom",
                    "is set without `overview = \"file.tif\"`".to_owned(),
                ));
            }
        };
        let name = path.to_str().filter(|n| {
            !n.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        });
        let Some(name) = name else {
            return Err(problem(
                "overview",
                format!(
                    "is '{}'; use a relative path inside the data directory, without '..'",
                    path.display()
                ),
            ));
        };
        if maxzoom > MAX_ZOOM {
            return Err(problem("overview_maxzoom", format!("is {maxzoom}; allowed: 0..={MAX_ZOOM}")));
        }
        Ok(Some(OverviewSpec { asset: name.to_owned(), path: data_dir.join(path), maxzoom }))
    }
}

/// The zoom range of a layer, with defaults, checked; `table` names it in messages.
fn zooms(
    layer: &str,
    table: &'static [&'static str; 2],
    minzoom: Option<u8>,
    maxzoom: Option<u8>,
) -> Result<(u8, u8), LayerError> {
    let problem =
        |field: &'static str, problem: String| LayerError::Config { layer: layer.to_owned(), field, problem };
    let minzoom = minzoom.unwrap_or(DEFAULT_FOOTPRINT_MINZOOM);
    let maxzoom = maxzoom.unwrap_or(DEFAULT_FOOTPRINT_MAXZOOM);
    if maxzoom > MAX_ZOOM {
        return Err(problem(table[1], format!("is {maxzoom}; allowed: 0..={MAX_ZOOM}")));
    }
    if minzoom > maxzoom {
        return Err(problem(table[0], format!("is {minzoom}, above maxzoom {maxzoom}")));
    }
    Ok((minzoom, maxzoom))
}

impl StacConfig {
    fn validate(&self, layer: &str, data_dir: &Path) -> Result<StacSpec, LayerError> {
        let problem = |field: &'static str, problem: String| LayerError::Config {
            layer: layer.to_owned(),
            field,
            problem,
        };
        let (minzoom, maxzoom) = zooms(layer, &["stac.minzoom", "stac.maxzoom"], self.minzoom, self.maxzoom)?;
        let asset = self.asset.clone().unwrap_or_else(|| DEFAULT_STAC_ASSET.to_owned());
        if asset.is_empty() {
            return Err(problem("stac.asset", "is empty; name the item asset that is the COG".to_owned()));
        }
        if let Some(b) = self.bands.iter().find(|b| !(1..=MAX_LAYER_BANDS).contains(*b)) {
            return Err(problem(
                "stac.bands",
                format!("has band {b}; bands are 1-based indexes of the item asset, 1..={MAX_LAYER_BANDS}"),
            ));
        }
        let sort = match &self.sort {
            None => None,
            Some(text) => Some(SortKey::parse(text).ok_or_else(|| {
                problem("stac.sort", format!("is '{text}'; use a property name, `-` first for highest first"))
            })?),
        };
        let datetime = self
            .datetime
            .as_deref()
            .map(DateRange::parse)
            .transpose()
            .map_err(|e| problem("stac.datetime", e))?;
        let filter = self
            .filter
            .iter()
            .map(|(key, value)| {
                let json = match value {
                    toml::Value::String(s) => serde_json::Value::from(s.as_str()),
                    toml::Value::Integer(i) => serde_json::Value::from(*i),
                    toml::Value::Float(f) => serde_json::Value::from(*f),
                    toml::Value::Boolean(b) => serde_json::Value::from(*b),
                    other => {
                        return Err(problem(
                            "stac.filter",
                            format!("has {key} = {other}; values are strings, numbers or booleans"),
                        ));
                    }
                };
                Ok((key.clone(), json))
            })
            .collect::<Result<_, _>>()?;
        Ok(StacSpec {
            items: Location::configured(&self.items, data_dir),
            selection: Selection { asset, sort, datetime, filter },
            bands: self.bands.clone(),
            minzoom,
            maxzoom,
        })
    }
}

impl FootprintConfig {
    fn validate(&self, layer: &str) -> Result<FootprintSpec, LayerError> {
        let problem = |field: &'static str, problem: String| LayerError::Config {
            layer: layer.to_owned(),
            field,
            problem,
        };
        let (minzoom, maxzoom) =
            zooms(layer, &["footprint.minzoom", "footprint.maxzoom"], self.minzoom, self.maxzoom)?;
        if self.assets.is_empty() && self.glob.is_none() {
            return Err(problem(
                "footprint",
                "names no asset: set `assets = [...]`, `glob = \"...\"` or both".to_owned(),
            ));
        }
        if let Some(i) = self.assets.iter().position(String::is_empty) {
            return Err(problem("footprint.assets", format!("has an empty name at index {i}")));
        }
        if let Some(pattern) = &self.glob {
            let path = Path::new(pattern);
            if pattern.is_empty()
                || !path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
            {
                return Err(problem(
                    "footprint.glob",
                    format!("is '{pattern}'; use a relative pattern inside the data directory, without '..'"),
                ));
            }
            glob::Pattern::new(pattern)
                .map_err(|e| problem("footprint.glob", format!("is '{pattern}', not a glob pattern: {e}")))?;
        }
        let mut seen = HashSet::new();
        let assets = self.assets.iter().filter(|a| seen.insert(a.as_str())).cloned().collect();
        Ok(FootprintSpec { assets, glob: self.glob.clone(), minzoom, maxzoom })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `[[layers]]` tables the way the configuration file holds them.
    fn parse(toml_text: &str) -> Result<Vec<LayerConfig>, toml::de::Error> {
        #[derive(Deserialize)]
        struct File {
            layers: Vec<LayerConfig>,
        }
        toml::from_str::<File>(toml_text).map(|f| f.layers)
    }

    fn validate_text(toml_text: &str) -> Result<Vec<LayerSpec>, String> {
        let configs = parse(toml_text).map_err(|e| e.to_string())?;
        validate(&configs, Path::new("/data")).map_err(|e| e.to_string())
    }

    #[test]
    fn both_kinds_parse_from_toml() {
        let specs = validate_text(
            r#"
            [[layers]]
            name = "naip-2022"
            description = "NAIP"
            mosaicjson = "naip/mosaic.json"

            [[layers]]
            name = "dem_v1.2"
            footprint = { glob = "dem/*.tif", assets = ["b.tif", "a.tif", "b.tif"], maxzoom = 16 }
            "#,
        )
        .unwrap();
        assert_eq!(
            specs,
            vec![
                LayerSpec {
                    name: "naip-2022".into(),
                    description: Some("NAIP".into()),
                    kind: SpecKind::MosaicJson(Location::File(PathBuf::from("/data/naip/mosaic.json"))),
                    max_assets_per_tile: None,
                    skip_covered: false,
                    overview: None,
                },
                LayerSpec {
                    name: "dem_v1.2".into(),
                    description: None,
                    kind: SpecKind::Footprint(FootprintSpec {
                        assets: vec!["b.tif".into(), "a.tif".into()],
                        glob: Some("dem/*.tif".into()),
                        minzoom: 0,
                        maxzoom: 16,
                    }),
                    max_assets_per_tile: None,
                    skip_covered: false,
                    overview: None,
                },
            ]
        );
    }

    #[test]
    fn a_layer_must_have_exactly_one_kind() {
        let both = "[[layers]]\nname = \"x\"\nmosaicjson = \"m.json\"\nfootprint = { glob = \"*.tif\" }";
        assert_eq!(
            validate_text(both).unwrap_err(),
            "layer 'x': set exactly one of `mosaicjson = \"file.json\"`, a `footprint` table or a `stac` table (more than one is set)"
        );
        assert_eq!(
            validate_text("[[layers]]\nname = \"x\"").unwrap_err(),
            "layer 'x': set exactly one of `mosaicjson = \"file.json\"`, a `footprint` table or a `stac` table (none is set)"
        );
    }

    #[test]
    fn names_are_checked_and_unique() {
        let long = "a".repeat(65);
        for bad in ["", "a b", "naïve", "x/y", long.as_str()] {
            let text = format!("[[layers]]\nname = \"{bad}\"\nmosaicjson = \"m.json\"");
            assert_eq!(
                validate_text(&text).unwrap_err(),
                format!("layer name '{bad}' is not allowed: use 1 to 64 of A-Z a-z 0-9 _ . -")
            );
        }
        let twice = "[[layers]]\nname = \"a\"\nmosaicjson = \"m.json\"\n[[layers]]\nname = \"a\"\nfootprint = { assets = [\"x.tif\"] }";
        assert_eq!(
            validate_text(twice).unwrap_err(),
            "layer 'a' is configured twice; layer names must be unique"
        );
    }

    #[test]
    fn footprint_fields_are_validated() {
        let cases = [
            ("{}", "layer 'f': `footprint` names no asset: set `assets = [...]`, `glob = \"...\"` or both"),
            (
                "{ glob = \"../x/*.tif\" }",
                "layer 'f': `footprint.glob` is '../x/*.tif'; use a relative pattern inside the data directory, without '..'",
            ),
            (
                "{ glob = \"/abs/*.tif\" }",
                "layer 'f': `footprint.glob` is '/abs/*.tif'; use a relative pattern inside the data directory, without '..'",
            ),
            ("{ glob = \"a/***.tif\" }", "layer 'f': `footprint.glob` is 'a/***.tif', not a glob pattern: "),
            (
                "{ assets = [\"a.tif\"], maxzoom = 25 }",
                "layer 'f': `footprint.maxzoom` is 25; allowed: 0..=24",
            ),
            (
                "{ assets = [\"a.tif\"], minzoom = 9, maxzoom = 8 }",
                "layer 'f': `footprint.minzoom` is 9, above maxzoom 8",
            ),
            ("{ assets = [\"a.tif\", \"\"] }", "layer 'f': `footprint.assets` has an empty name at index 1"),
        ];
        for (table, expected) in cases {
            let err = validate_text(&format!("[[layers]]\nname = \"f\"\nfootprint = {table}")).unwrap_err();
            assert!(err.starts_with(expected), "{table}: {err}");
        }
    }

    #[test]
    fn stac_fields_are_validated() {
        let cases = [
            (
                "{ items = \"i.json\", sort = \"-\" }",
                "layer 's': `stac.sort` is '-'; use a property name, `-` first for highest first",
            ),
            (
                "{ items = \"i.json\", datetime = \"2020\" }",
                "layer 's': `stac.datetime` is '2020'; use START/END (RFC 3339 or YYYY-MM-DD, `..` for open)",
            ),
            (
                "{ items = \"i.json\", asset = \"\" }",
                "layer 's': `stac.asset` is empty; name the item asset that is the COG",
            ),
            (
                "{ items = \"i.json\", filter = { a = [1] } }",
                "layer 's': `stac.filter` has a = [1]; values are strings, numbers or booleans",
            ),
            (
                "{ items = \"i.json\", bands = [4, 0] }",
                "layer 's': `stac.bands` has band 0; bands are 1-based indexes of the item asset, 1..=1024",
            ),
            (
                "{ items = \"i.json\", minzoom = 9, maxzoom = 8 }",
                "layer 's': `stac.minzoom` is 9, above maxzoom 8",
            ),
        ];
        for (table, expected) in cases {
            let err = validate_text(&format!("[[layers]]\nname = \"s\"\nstac = {table}")).unwrap_err();
            assert_eq!(err, expected, "{table}");
        }
        let specs = validate_text("[[layers]]\nname = \"s\"\nstac = { items = \"n/i.json\", sort = \"-datetime\", filter = { \"naip:state\" = \"ny\" } }").unwrap();
        let SpecKind::Stac(stac) = &specs[0].kind else { panic!("not a STAC layer") };
        assert_eq!(stac.items, Location::File(PathBuf::from("/data/n/i.json")));
        assert_eq!(stac.selection.asset, DEFAULT_STAC_ASSET);
        assert_eq!(stac.selection.sort, SortKey::parse("-datetime"));
        assert_eq!(stac.selection.filter, vec![("naip:state".to_owned(), serde_json::json!("ny"))]);
    }

    #[test]
    fn skip_covered_needs_footprints() {
        assert_eq!(
            validate_text("[[layers]]\nname = \"m\"\nskip_covered = true\nmosaicjson = \"m.json\"")
                .unwrap_err(),
            "layer 'm': `skip_covered` needs footprints, and a MosaicJSON layer has none; use it on a footprint or STAC layer"
        );
        let specs =
            validate_text("[[layers]]\nname = \"f\"\nskip_covered = true\nfootprint = { glob = \"*.tif\" }")
                .unwrap();
        assert!(specs[0].skip_covered);
    }

    #[test]
    fn an_overview_needs_its_zoom_and_a_path_inside_the_data_directory() {
        let layer = |extra: &str| {
            validate_text(&format!("[[layers]]\nname = \"o\"\nmosaicjson = \"m.json\"\n{extra}"))
        };
        let specs = layer("overview = \"ov/o.tif\"\noverview_maxzoom = 8").unwrap();
        assert_eq!(
            specs[0].overview,
            Some(OverviewSpec {
                asset: "ov/o.tif".into(),
                path: PathBuf::from("/data/ov/o.tif"),
                maxzoom: 8
            })
        );
        let cases = [
            (
                "overview = \"o.tif\"",
                "layer 'o': `overview_maxzoom` is missing; give the --max-zoom the overview was built with",
            ),
            (
                "overview_maxzoom = 3",
                "layer 'o': `overview_maxzoom` is set without `overview = \"file.tif\"`",
            ),
            (
                "overview = \"../o.tif\"\noverview_maxzoom = 3",
                "layer 'o': `overview` is '../o.tif'; use a relative path inside the data directory, without '..'",
            ),
            (
                "overview = \"/abs/o.tif\"\noverview_maxzoom = 3",
                "layer 'o': `overview` is '/abs/o.tif'; use a relative path inside the data directory, without '..'",
            ),
            (
                "overview = \"o.tif\"\noverview_maxzoom = 25",
                "layer 'o': `overview_maxzoom` is 25; allowed: 0..=24",
            ),
        ];
        for (extra, expected) in cases {
            assert_eq!(layer(extra).unwrap_err(), expected, "{extra}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            parse("[[layers]]\nname = \"f\"\nfootprint = { glob = \"*.tif\", maxzom = 3 }").unwrap_err();
        assert!(err.to_string().contains("unknown field `maxzom`"), "{err}");
        let err = parse("[[layers]]\nname = \"f\"\nmosaic = \"m.json\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `mosaic`"), "{err}");
    }
}
