//! STAC layers: the items of a STAC ItemCollection (GeoJSON) or of a stac-geoparquet
//! file, one COG per item (the item asset named by `asset`), found by each item's
//! `bbox` (or its geometry's extent when it has no `bbox`). No asset is opened to build
//! the layer: the catalogue says where each one is.
//!
//! Both formats become [`RawItem`]s (what the selection needs of an item, nothing
//! more), then [`select`] applies the layer's datetime range and property filter, sorts
//! by the chosen property (a stable sort: file order breaks ties, and without `sort` the
//! file order is the priority order), and resolves each href: absolute URLs and paths
//! stay as they are, a relative href is relative to the document, as STAC defines it.
//!
//! [`read_items`] tells the formats apart by the file's first bytes (`PAR1` is
//! parquet), not by its name. Hand-written here: the ItemCollection reader (serde, only
//! the fields used), the filter and the sort; [`geoparquet`] reads stac-geoparquet with
//! the `parquet` crate's arrow reader, only the columns the selection needs, one record
//! batch at a time.
//!
//! Hrefs are `Arc<str>`: a catalogue whose items share a few files keeps one copy of
//! each href, and the layer's index holds a pointer per item.

use std::{
    cmp::Ordering,
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use serde::Deserialize;

use super::LayerError;
pub use super::document::Location;

pub mod geoparquet;

/// The first bytes of a parquet file.
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

/// The items of a STAC document's bytes: stac-geoparquet when they start with `PAR1`,
/// else an ItemCollection. Blocking: call off the async threads.
pub fn parse_items(
    layer: &str,
    document: &Location,
    bytes: Vec<u8>,
    selection: &Selection,
) -> Result<Vec<RawItem>, LayerError> {
    if bytes.starts_with(PARQUET_MAGIC) {
        return geoparquet::read_items(layer, document, bytes::Bytes::from(bytes), selection);
    }
    parse_item_collection(layer, document, &bytes, selection)
}

/// How items are ordered: by a property, ascending or descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The property (`datetime`, `eo:cloud_cover`...).
    pub property: String,
    /// Highest first (`sort = "-datetime"`: newest on top).
    pub descending: bool,
}

impl SortKey {
    /// `"-datetime"` → datetime descending; `"gsd"` → gsd ascending.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (property, descending) = match text.strip_prefix('-') {
            Some(p) => (p, true),
            None => (text.strip_prefix('+').unwrap_or(text), false),
        };
        (!property.is_empty()).then(|| Self { property: property.to_owned(), descending })
    }
}

/// An inclusive datetime range; either end may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// From (inclusive).
    pub start: Option<SystemTime>,
    /// To (inclusive).
    pub end: Option<SystemTime>,
}

impl DateRange {
    /// `"2019-01-01/2021-12-31"`, `"../2021-12-31T12:00:00Z"`, `"2020-06-01/.."`: RFC 3339
    /// times or dates (a date as an end means the end of that day, UTC).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (start, end) = text
            .split_once('/')
            .ok_or_else(|| format!("is '{text}'; use START/END (RFC 3339 or YYYY-MM-DD, `..` for open)"))?;
        let bound = |s: &str, end: bool| -> Result<Option<SystemTime>, String> {
            if s.is_empty() || s == ".." {
                return Ok(None);
            }
            parse_time(s, end).map(Some).ok_or_else(|| format!("has '{s}', not an RFC 3339 time or a date"))
        };
        let range = Self { start: bound(start, false)?, end: bound(end, true)? };
        if let (Some(a), Some(b)) = (range.start, range.end)
            && a > b
        {
            return Err(format!("is '{text}': its start is after its end"));
        }
        Ok(range)
    }

    /// Whether an item valid from `from` to `to` (one instant when equal) overlaps it.
    fn overlaps(&self, from: SystemTime, to: SystemTime) -> bool {
        self.start.is_none_or(|s| to >= s) && self.end.is_none_or(|e| from <= e)
    }
}

/// An RFC 3339 time (`Z` or a `±HH:MM` offset), or a `YYYY-MM-DD` date (its first
/// instant, or its last with `end`), in UTC.
fn parse_time(text: &str, end: bool) -> Option<SystemTime> {
    if text.len() == 10 {
        let day = humantime::parse_rfc3339_weak(&format!("{text}T00:00:00")).ok()?;
        return Some(if end { day + std::time::Duration::from_nanos(86_400_000_000_000 - 1) } else { day });
    }
    // `±HH:MM` after the time (past the date's own dashes), else `Z` or nothing.
    let (local, offset) = match text.get(19..).and_then(|rest| rest.rfind(['+', '-']).map(|i| 19 + i)) {
        Some(i) => {
            let (h, m) = text[i + 1..].split_once(':')?;
            let minutes = h.parse::<u64>().ok()? * 60 + m.parse::<u64>().ok()?;
            (&text[..i], Some((text.as_bytes()[i] == b'+', std::time::Duration::from_secs(minutes * 60))))
        }
        None => (text.strip_suffix('Z').or_else(|| text.strip_suffix('z')).unwrap_or(text), None),
    };
    let t = humantime::parse_rfc3339_weak(local).ok()?;
    Some(match offset {
        // 12:00+02:00 is 10:00 UTC.
        Some((true, d)) => t.checked_sub(d)?,
        Some((false, d)) => t.checked_add(d)?,
        None => t,
    })
}

/// What the layer needs of one item, as read from either format.
#[derive(Debug, Clone, PartialEq)]
pub struct RawItem {
    /// The item's `id` (or its position when it has none), for messages.
    pub id: String,
    /// West, south, east, north in degrees.
    pub bbox: [f64; 4],
    /// The chosen asset's href, as written (shared by the items that repeat it, where
    /// the reader sees that).
    pub href: Arc<str>,
    /// `datetime`, else `start_datetime`..`end_datetime` (RFC 3339), when present.
    pub datetime: Option<(String, String)>,
    /// The values of [`Selection::properties`], in that order (`None`: absent or null).
    pub properties: Vec<Option<serde_json::Value>>,
}

/// How a layer picks and orders items.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selection {
    /// The item asset that is the COG.
    pub asset: String,
    /// Order; `None` keeps file order.
    pub sort: Option<SortKey>,
    /// Items valid in this range only.
    pub datetime: Option<DateRange>,
    /// Property = value, all of which an item must match.
    pub filter: Vec<(String, serde_json::Value)>,
}

impl Selection {
    /// The item properties a reader must keep: the sort property (unless `datetime`,
    /// kept anyway), then the filter's, in order.
    #[must_use]
    pub fn properties(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(sort) = &self.sort
            && sort.property != "datetime"
        {
            out.push(sort.property.clone());
        }
        for (name, _) in &self.filter {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

/// One selected item: the asset name the layer serves and its footprint.
#[derive(Debug, Clone, PartialEq)]
pub struct StacItem {
    /// The asset as a request would name it: a URL, an absolute path, or a path relative
    /// to the data directory.
    pub href: Arc<str>,
    /// West, south, east, north in degrees (west > east across the antimeridian).
    pub bbox: [f64; 4],
}

/// A value to sort by: timestamps and numbers compare as such, strings as text.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum SortValue {
    Number(f64),
    Text(String),
}

fn sort_value(v: &serde_json::Value, is_datetime: bool) -> Option<SortValue> {
    match v {
        serde_json::Value::Number(n) => n.as_f64().map(SortValue::Number),
        serde_json::Value::String(s) if is_datetime => parse_time(s, false)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| SortValue::Number(d.as_secs_f64()))
            .or_else(|| Some(SortValue::Text(s.clone()))),
        serde_json::Value::String(s) => Some(SortValue::Text(s.clone())),
        serde_json::Value::Bool(b) => Some(SortValue::Number(f64::from(u8::from(*b)))),
        _ => None,
    }
}

/// Filters, sorts and resolves `items` read from `document` for layer `layer`.
/// `data_dir` turns resolved local paths under it into names relative to it.
pub fn select(
    layer: &str,
    document: &Location,
    data_dir: &Path,
    items: Vec<RawItem>,
    selection: &Selection,
) -> Result<Vec<StacItem>, LayerError> {
    let names = selection.properties();
    let position = |name: &str| names.iter().position(|n| n == name);
    let filter: Vec<(usize, &serde_json::Value)> =
        selection.filter.iter().filter_map(|(name, value)| position(name).map(|i| (i, value))).collect();
    // Only what the index needs is kept past the filter: href and bbox, not the item.
    let mut kept: Vec<(Option<SortValue>, StacItem)> = Vec::with_capacity(items.len());
    // Hrefs shared by several items are resolved once and stay shared.
    let mut resolved: HashMap<Arc<str>, Arc<str>> = HashMap::new();
    for item in items {
        if !filter.iter().all(|(i, want)| item.properties[*i].as_ref().is_some_and(|v| same_value(v, want))) {
            continue;
        }
        if let Some(range) = &selection.datetime {
            let Some((from, to)) = &item.datetime else { continue };
            let times = parse_time(from, false).zip(parse_time(to, false));
            let Some((from, to)) = times else {
                return Err(item_error(
                    layer,
                    document,
                    &item.id,
                    format!("has datetime '{from}', not RFC 3339"),
                ));
            };
            if !range.overlaps(from, to) {
                continue;
            }
        }
        let key = selection.sort.as_ref().and_then(|sort| {
            if sort.property == "datetime" {
                item.datetime
                    .as_ref()
                    .and_then(|(from, _)| sort_value(&serde_json::Value::String(from.clone()), true))
            } else {
                position(&sort.property)
                    .and_then(|i| item.properties[i].as_ref())
                    .and_then(|v| sort_value(v, sort.property.ends_with("datetime")))
            }
        });
        let href = if let Some(href) = resolved.get(&item.href) {
            Arc::clone(href)
        } else {
            let href: Arc<str> = resolve_href(document, data_dir, &item.href)
                .ok_or_else(|| {
                    item_error(
                        layer,
                        document,
                        &item.id,
                        format!("has href '{}', which cannot be resolved", item.href),
                    )
                })?
                .into();
            if Arc::strong_count(&item.href) > 1 {
                resolved.insert(Arc::clone(&item.href), Arc::clone(&href));
            }
            href
        };
        kept.push((key, StacItem { href, bbox: item.bbox }));
    }
    if let Some(sort) = &selection.sort {
        // Items without the property go last, in file order, whichever the direction.
        kept.sort_by(|(a, _), (b, _)| match (a, b) {
            (Some(a), Some(b)) => {
                let o = a.partial_cmp(b).unwrap_or(Ordering::Equal);
                if sort.descending { o.reverse() } else { o }
            }
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        });
    }
    Ok(kept.into_iter().map(|(_, item)| item).collect())
}

/// Whether a property value equals a filter value (numbers compare as numbers: a filter
/// `gsd = 1` matches `1.0`; exact equality is what a filter asks for).
#[allow(clippy::float_cmp)]
fn same_value(v: &serde_json::Value, want: &serde_json::Value) -> bool {
    match (v.as_f64(), want.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => v == want,
    }
}

/// A layer error about one item of a document.
#[must_use]
pub fn item_error(layer: &str, document: &Location, item: &str, problem: String) -> LayerError {
    LayerError::StacItem {
        layer: layer.to_owned(),
        document: document.to_string(),
        item: item.to_owned(),
        problem,
    }
}

/// An href as a layer names the asset: URLs and absolute paths unchanged; a relative
/// href joined to the document's location (a file's directory, a URL's base), and a
/// local path under `data_dir` made relative to it.
fn resolve_href(document: &Location, data_dir: &Path, href: &str) -> Option<String> {
    if href.contains("://") {
        return Some(href.to_owned());
    }
    let href = href.strip_prefix("file://").unwrap_or(href);
    match document {
        Location::File(file) => {
            let path = if Path::new(href).is_absolute() {
                PathBuf::from(href)
            } else {
                normalize(&file.parent()?.join(href))
            };
            Some(match path.strip_prefix(data_dir) {
                Ok(relative) => relative.to_string_lossy().into_owned(),
                Err(_) => path.to_string_lossy().into_owned(),
            })
        }
        Location::Url(url) => {
            let base = url.rsplit_once('/').map(|(base, _)| base)?;
            let mut parts: Vec<&str> = base.split('/').collect();
            let root = parts.len().min(3);
            for segment in href.split('/') {
                match segment {
                    "." | "" => {}
                    ".." if parts.len() > root + 1 => {
                        parts.pop();
                    }
                    ".." => return None,
                    s => parts.push(s),
                }
            }
            Some(parts.join("/"))
        }
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// An ItemCollection as read: only the fields a layer uses.
#[derive(Deserialize)]
struct Collection {
    #[serde(rename = "type")]
    kind: Option<String>,
    features: Vec<Feature>,
}

#[derive(Deserialize)]
struct Feature {
    id: Option<String>,
    bbox: Option<Vec<f64>>,
    geometry: Option<serde_json::Value>,
    #[serde(default)]
    properties: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    assets: std::collections::BTreeMap<String, ItemAsset>,
}

#[derive(Deserialize)]
struct ItemAsset {
    href: Option<String>,
}

/// The items of a STAC ItemCollection (a GeoJSON FeatureCollection of STAC Items).
pub fn parse_item_collection(
    layer: &str,
    document: &Location,
    bytes: &[u8],
    selection: &Selection,
) -> Result<Vec<RawItem>, LayerError> {
    let collection: Collection = serde_json::from_slice(bytes).map_err(|e| LayerError::StacDocument {
        layer: layer.to_owned(),
        document: document.to_string(),
        problem: format!("not a STAC ItemCollection: {e}"),
    })?;
    if collection.kind.as_deref().is_some_and(|k| k != "FeatureCollection") {
        return Err(LayerError::StacDocument {
            layer: layer.to_owned(),
            document: document.to_string(),
            problem: "its `type` is not \"FeatureCollection\"".to_owned(),
        });
    }
    let names = selection.properties();
    collection
        .features
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let id = f.id.clone().unwrap_or_else(|| format!("#{i}"));
            let fail = |problem: String| item_error(layer, document, &id, problem);
            let bbox = match (&f.bbox, &f.geometry) {
                (Some(b), _) => bbox_of(b).ok_or_else(|| fail(format!("has bbox {b:?}; expected [west, south, east, north] (or 6 numbers with heights) in degrees")))?,
                (None, Some(g)) => geometry_extent(g).ok_or_else(|| fail("has no bbox and a geometry without coordinates".to_owned()))?,
                (None, None) => return Err(fail("has neither a bbox nor a geometry".to_owned())),
            };
            let href = match f.assets.get(&selection.asset) {
                Some(ItemAsset { href: Some(h) }) if !h.is_empty() => Arc::from(h.as_str()),
                Some(_) => return Err(fail(format!("asset '{}' has no href", selection.asset))),
                None => {
                    let keys: Vec<&str> = f.assets.keys().map(String::as_str).collect();
                    return Err(fail(format!("has no asset '{}' (it has: {})", selection.asset, keys.join(", "))));
                }
            };
            let text = |key: &str| f.properties.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
            let datetime = match text("datetime") {
                Some(t) => Some((t.clone(), t)),
                None => text("start_datetime").zip(text("end_datetime")),
            };
            let properties = names.iter().map(|n| f.properties.get(n).filter(|v| !v.is_null()).cloned()).collect();
            Ok(RawItem { id, bbox, href, datetime, properties })
        })
        .collect()
}

/// `[w, s, e, n]` or `[w, s, zmin, e, n, zmax]`, within lon/lat.
#[must_use]
pub fn bbox_of(numbers: &[f64]) -> Option<[f64; 4]> {
    let ([west, south, east, north] | [west, south, _, east, north, _]) = *numbers else {
        return None;
    };
    let lon = |v: f64| (-180.0..=180.0).contains(&v);
    let lat = |v: f64| (-90.0..=90.0).contains(&v);
    (lon(west) && lon(east) && lat(south) && lat(north) && south <= north)
        .then_some([west, south, east, north])
}

/// The lon/lat extent of a GeoJSON geometry's coordinates.
fn geometry_extent(g: &serde_json::Value) -> Option<[f64; 4]> {
    fn walk(v: &serde_json::Value, out: &mut [f64; 4], any: &mut bool) {
        match v.as_array() {
            Some(a) if a.len() >= 2 && a[0].is_number() && a[1].is_number() => {
                let (x, y) = (a[0].as_f64().unwrap_or(0.0), a[1].as_f64().unwrap_or(0.0));
                *out = [out[0].min(x), out[1].min(y), out[2].max(x), out[3].max(y)];
                *any = true;
            }
            Some(a) => a.iter().for_each(|c| walk(c, out, any)),
            None => {}
        }
    }
    let mut out = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    let mut any = false;
    if let Some(geometries) = g.get("geometries").and_then(serde_json::Value::as_array) {
        for part in geometries {
            if let Some(c) = part.get("coordinates") {
                walk(c, &mut out, &mut any);
            }
        }
    } else {
        walk(g.get("coordinates")?, &mut out, &mut any);
    }
    any.then_some(out).and_then(|b| bbox_of(&b))
}

#[cfg(test)]
mod tests;
