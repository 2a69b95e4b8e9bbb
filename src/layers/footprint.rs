//! Footprint layers: assets listed in the configuration or found by a glob, each with
//! its lon/lat bounds read once through a [`BoundsSource`] and kept in an R-tree, so the
//! assets of a tile are found without opening any of them.
//!
//! A tile's assets are those whose footprint shares area with the tile's lon/lat bounds
//! (touching edges do not count), in the layer's list order: configured assets first,
//! then glob matches sorted by path. A footprint whose west edge lies east of its east
//! edge crosses the antimeridian and is indexed as two boxes, cut at ±180°; the layer's
//! bounds are the shortest union of the footprints ([`lon_lat_union`]), which crosses
//! too when they do.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use futures::StreamExt;
use rstar::{AABB, RTree, primitives::GeomWithData, primitives::Rectangle};

use super::{BoundsSource, LayerError};
use crate::tms::{BBox, lon_lat_union};

/// How many bounds reads a layer keeps in flight while it is built.
pub const BOUNDS_CONCURRENCY: usize = 16;

/// What identifies one version of a file: a change of either means it was rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Modification time, where the file system keeps one.
    pub modified: Option<SystemTime>,
    /// Size in bytes.
    pub len: u64,
}

impl FileStamp {
    /// The stamp of a file's metadata.
    #[must_use]
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self { modified: meta.modified().ok(), len: meta.len() }
    }
}

/// One asset of a footprint layer, as last read.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The asset name (a glob match is relative to the data directory, `/`-separated).
    pub name: String,
    /// The file's stamp when it came from the glob; `None` for a configured asset.
    pub stamp: Option<FileStamp>,
    /// West, south, east, north in degrees, or why they could not be read.
    pub footprint: Result<[f64; 4], String>,
}

type Indexed = GeomWithData<Rectangle<[f64; 2]>, u32>;

/// The R-tree over a layer's readable footprints.
#[derive(Debug)]
pub struct FootprintIndex {
    /// Names of readable assets, in list order; the tree's data index into this. Items
    /// that name the same asset share one allocation (a STAC layer of a million items
    /// over a few hundred files keeps a pointer per item, not a copy of its href).
    names: Vec<Arc<str>>,
    tree: RTree<Indexed>,
    /// Union of all footprints, `None` while there is none.
    bounds: Option<[f64; 4]>,
}

impl FootprintIndex {
    /// Indexes the readable entries, keeping their order.
    #[must_use]
    pub fn new(entries: &[Entry]) -> Self {
        Self::of_items(
            entries
                .iter()
                .filter_map(|e| e.footprint.as_ref().ok().map(|f| (Arc::from(e.name.as_str()), *f)))
                .collect(),
        )
    }

    /// The first asset in list order.
    #[must_use]
    pub fn first(&self) -> Option<String> {
        self.names.first().map(ToString::to_string)
    }

    /// Indexes (name, footprint) pairs in priority order (STAC items, no file stamps),
    /// bulk-loading the tree.
    #[must_use]
    pub fn of_items(items: Vec<(Arc<str>, [f64; 4])>) -> Self {
        let mut names = Vec::with_capacity(items.len());
        let mut boxes = Vec::with_capacity(items.len());
        let mut footprints = Vec::with_capacity(items.len());
        for (name, footprint) in items {
            let id = names.len() as u32;
            names.push(name);
            let footprint = bbox(footprint);
            footprints.push(footprint);
            for part in footprint.lon_lat_parts() {
                let corners = ([part.min_x, part.min_y], [part.max_x, part.max_y]);
                boxes.push(Indexed::new(Rectangle::from_corners(corners.0, corners.1), id));
            }
        }
        let bounds = lon_lat_union(footprints).map(|b| [b.min_x, b.min_y, b.max_x, b.max_y]);
        Self { names, tree: RTree::bulk_load(boxes), bounds }
    }

    /// How many assets are indexed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no asset is indexed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The union of the footprints (west, south, east, north; west > east when it
    /// crosses the antimeridian, see [`lon_lat_union`]), `None` when empty.
    #[must_use]
    pub fn bounds(&self) -> Option<[f64; 4]> {
        self.bounds
    }

    /// The assets whose footprint shares area with `area` (lon/lat, which may cross the
    /// antimeridian), in list order.
    #[must_use]
    pub fn assets_in(&self, area: &BBox) -> Vec<String> {
        let mut ids: Vec<u32> = self.hits(area).into_iter().map(|(id, _, _)| id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().map(|id| self.names[id as usize].to_string()).collect()
    }

    /// Like [`Self::assets_in`], but leaves out each asset whose footprint within `area`
    /// lies entirely under the footprints of the assets kept before it (cogeo-mosaic's
    /// `skipcovered`); returns the assets kept and how many were left out. Only right for
    /// `first` selection over assets whose data fill their footprints.
    #[must_use]
    pub fn uncovered_assets_in(&self, area: &BBox) -> (Vec<String>, usize) {
        let mut hits = self.hits(area);
        // By asset in list order; an asset's parts (antimeridian) and area parts together.
        hits.sort_unstable_by_key(|(id, _, _)| *id);
        let mut kept: Vec<(usize, BBox)> = Vec::new();
        let mut names = Vec::new();
        let mut skipped = 0;
        let mut start = 0;
        while start < hits.len() {
            let id = hits[start].0;
            let end = start + hits[start..].iter().take_while(|(i, _, _)| *i == id).count();
            let parts: Vec<(usize, BBox)> = hits[start..end].iter().map(|(_, a, r)| (*a, *r)).collect();
            let covered = parts.iter().all(|(area_part, rect)| {
                let under: Vec<BBox> = kept.iter().filter(|(a, _)| a == area_part).map(|(_, r)| *r).collect();
                covered_by(rect, &under)
            });
            if covered {
                skipped += 1;
            } else {
                names.push(self.names[id as usize].to_string());
                kept.extend(parts);
            }
            start = end;
        }
        (names, skipped)
    }

    /// (asset id, which part of `area`, the footprint part clipped to that area part) for
    /// every footprint part sharing area with `area` (touching edges do not count).
    fn hits(&self, area: &BBox) -> Vec<(u32, usize, BBox)> {
        let mut hits = Vec::new();
        for (a, part) in area.lon_lat_parts().enumerate() {
            let envelope = AABB::from_corners([part.min_x, part.min_y], [part.max_x, part.max_y]);
            // The tree's test includes touching boxes; the strict test drops them.
            for hit in self.tree.locate_in_envelope_intersecting(&envelope) {
                let r = hit.geom();
                let (lo, hi) = (r.lower(), r.upper());
                let rect = BBox { min_x: lo[0], min_y: lo[1], max_x: hi[0], max_y: hi[1] };
                if part.intersects(&rect) {
                    let clipped = BBox {
                        min_x: rect.min_x.max(part.min_x),
                        min_y: rect.min_y.max(part.min_y),
                        max_x: rect.max_x.min(part.max_x),
                        max_y: rect.max_y.min(part.max_y),
                    };
                    hits.push((hit.data, a, clipped));
                }
            }
        }
        hits
    }

    /// The assets whose footprint holds the lon/lat point (its edges included), in list
    /// order.
    #[must_use]
    pub fn assets_at(&self, lon: f64, lat: f64) -> Vec<String> {
        let mut ids: Vec<u32> = self.tree.locate_all_at_point(&[lon, lat]).map(|hit| hit.data).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().map(|id| self.names[id as usize].to_string()).collect()
    }
}

/// Most footprints one coverage test looks at: past it the asset counts as not covered
/// (reading it is always right; skipping it is only an optimisation).
const MAX_COVERING: usize = 64;

/// Whether the union of `under` covers `target` (all in one lon/lat plane): the plane
/// is cut at every edge into cells, and each cell inside `target` must lie inside one
/// box of `under`.
fn covered_by(target: &BBox, under: &[BBox]) -> bool {
    let under: Vec<&BBox> = under.iter().filter(|b| b.intersects(target)).collect();
    if under.is_empty() || under.len() > MAX_COVERING {
        return false;
    }
    let cuts = |lo: f64, hi: f64, edges: &mut dyn Iterator<Item = f64>| {
        let mut v: Vec<f64> = std::iter::once(lo)
            .chain(std::iter::once(hi))
            .chain(edges.filter(|e| *e > lo && *e < hi))
            .collect();
        v.sort_unstable_by(f64::total_cmp);
        v.dedup();
        v
    };
    let xs = cuts(target.min_x, target.max_x, &mut under.iter().flat_map(|b| [b.min_x, b.max_x]));
    let ys = cuts(target.min_y, target.max_y, &mut under.iter().flat_map(|b| [b.min_y, b.max_y]));
    xs.windows(2).all(|x| {
        let cx = f64::midpoint(x[0], x[1]);
        ys.windows(2).all(|y| {
            let cy = f64::midpoint(y[0], y[1]);
            under.iter().any(|b| b.min_x <= cx && cx <= b.max_x && b.min_y <= cy && cy <= b.max_y)
        })
    })
}

fn bbox([min_x, min_y, max_x, max_y]: [f64; 4]) -> BBox {
    BBox { min_x, min_y, max_x, max_y }
}

/// Checks bounds read for an asset: four finite numbers, south not above north,
/// longitudes within ±180 (west may exceed east across the antimeridian), latitudes
/// within ±90.
fn check_footprint(bounds: [f64; 4]) -> Result<[f64; 4], String> {
    let [west, south, east, north] = bounds;
    let lon = |v: f64| (-180.0..=180.0).contains(&v);
    let lat = |v: f64| (-90.0..=90.0).contains(&v);
    if lon(west) && lon(east) && lat(south) && lat(north) && south <= north {
        Ok(bounds)
    } else {
        Err(format!("bounds {bounds:?} are not west, south, east, north in degrees"))
    }
}

/// Builds the entries for `list` (names with their glob stamps, in list order): an entry
/// of `previous` with the same name and stamp is kept as it is; every other asset's
/// bounds are read through `source`, [`BOUNDS_CONCURRENCY`] at a time. Failures are kept
/// as `Err` entries (and logged) so they are not read again until their file changes.
pub async fn read_entries(
    layer: &str,
    list: Vec<(String, Option<FileStamp>)>,
    previous: &[Entry],
    source: &dyn BoundsSource,
) -> Vec<Entry> {
    let known: HashMap<&str, &Entry> = previous.iter().map(|e| (e.name.as_str(), e)).collect();
    futures::stream::iter(list)
        .map(|(name, stamp)| {
            let kept = known.get(name.as_str()).filter(|e| e.stamp == stamp).map(|e| (*e).clone());
            async move {
                if let Some(entry) = kept {
                    return entry;
                }
                let footprint = source.bounds(&name).await.and_then(check_footprint);
                if let Err(error) = &footprint {
                    tracing::warn!(layer, asset = %name, %error, "asset left out of layer: its bounds cannot be read");
                }
                Entry { name, stamp, footprint }
            }
        })
        .buffered(BOUNDS_CONCURRENCY)
        .collect()
        .await
}

/// The files matching `pattern` under `data_dir`, as `/`-separated names relative to
/// it, sorted by path, with their stamps. Directories are skipped; so are entries that
/// cannot be read and names that are not UTF-8 (with a warning).
pub fn glob_files(
    layer: &str,
    data_dir: &Path,
    pattern: &str,
) -> Result<Vec<(String, FileStamp)>, LayerError> {
    let full = format!("{}/{pattern}", glob::Pattern::escape(&data_dir.to_string_lossy()));
    let error =
        |problem: String| LayerError::Glob { layer: layer.to_owned(), pattern: full.clone(), problem };
    let matches = glob::glob(&full).map_err(|e| error(e.to_string()))?;
    let mut found: Vec<(PathBuf, FileStamp)> = Vec::new();
    for m in matches {
        let path = match m {
            Ok(path) => path,
            Err(e) => {
                tracing::warn!(layer, error = %e, "skipping what the layer's glob cannot read");
                continue;
            }
        };
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {
                // glob joins matches onto the pattern's own prefix, the data directory.
                let relative = path.strip_prefix(data_dir).unwrap_or(&path).to_owned();
                found.push((relative, FileStamp::of(&meta)));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(layer, path = %path.display(), error = %e, "skipping a glob match"),
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found
        .into_iter()
        .filter_map(|(path, stamp)| {
            let parts: Option<Vec<&str>> = path.iter().map(|c| c.to_str()).collect();
            if let Some(parts) = parts {
                Some((parts.join("/"), stamp))
            } else {
                tracing::warn!(layer, path = %path.display(), "skipping a glob match whose name is not UTF-8");
                None
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    fn entry(name: &str, footprint: [f64; 4]) -> Entry {
        Entry { name: name.to_owned(), stamp: None, footprint: Ok(footprint) }
    }

    #[test]
    fn covered_assets_are_left_out_within_the_tile_only() {
        let entries = [
            entry("a", [0.0, 0.0, 10.0, 10.0]),
            entry("inside-a", [2.0, 2.0, 8.0, 8.0]),
            entry("c", [5.0, 5.0, 15.0, 15.0]),
            entry("d", [10.0, 0.0, 20.0, 10.0]),
            // Under a and d together, not under either alone.
            entry("a+d", [0.0, 0.0, 20.0, 10.0]),
            // Under a once clipped to the tile, not before.
            entry("left", [-5.0, 0.0, 5.0, 10.0]),
            // Half outside everything before it.
            entry("top", [0.0, 10.0, 20.0, 20.0]),
            entry("again", [0.0, 0.0, 20.0, 20.0]),
        ];
        let index = FootprintIndex::new(&entries);
        let tile = bbox([0.0, 0.0, 20.0, 20.0]);
        let all: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(index.assets_in(&tile), all);
        let (kept, skipped) = index.uncovered_assets_in(&tile);
        assert_eq!((kept, skipped), (vec!["a".to_owned(), "c".into(), "d".into(), "top".into()], 4));
        // A tile that only `left` reaches outside `a`: it is kept there, and `inside-a`,
        // `a+d` and `again` (clipped to the tile) lie under `a` and `left`.
        let (kept, skipped) = index.uncovered_assets_in(&bbox([-5.0, 0.0, 5.0, 10.0]));
        assert_eq!((kept, skipped), (vec!["a".to_owned(), "left".into()], 3));
        // Touching is not covering: a box beside `a` is kept.
        let beside =
            FootprintIndex::new(&[entry("a", [0.0, 0.0, 10.0, 10.0]), entry("b", [10.0, 0.0, 20.0, 10.0])]);
        assert_eq!(beside.uncovered_assets_in(&tile).0, vec!["a".to_owned(), "b".into()]);
    }

    #[test]
    fn r_tree_query_equals_brute_force_over_random_boxes() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut random_box = |max_size: f64| {
            let w = rng.random_range(-180.0..170.0);
            let s = rng.random_range(-90.0..80.0);
            let e: f64 = w + rng.random_range(0.01..max_size);
            let n: f64 = s + rng.random_range(0.01..max_size);
            [w, s, e.min(180.0), n.min(90.0)]
        };
        let entries: Vec<Entry> =
            (0..200).map(|i| entry(&format!("a{i:03}.tif"), random_box(40.0))).collect();
        // Exact shared edges, which must not count.
        let mut entries = entries;
        entries.push(entry("edge.tif", [10.0, 10.0, 20.0, 20.0]));
        let index = FootprintIndex::new(&entries);
        let mut queries: Vec<[f64; 4]> = (0..300).map(|_| random_box(60.0)).collect();
        queries.extend([[20.0, 10.0, 30.0, 20.0], [0.0, 20.0, 10.0, 30.0], [15.0, 15.0, 25.0, 25.0]]);
        let mut total = 0;
        for q in queries {
            let area = bbox(q);
            let expected: Vec<String> = entries
                .iter()
                .filter(|e| bbox(*e.footprint.as_ref().unwrap()).intersects(&area))
                .map(|e| e.name.clone())
                .collect();
            total += expected.len();
            assert_eq!(index.assets_in(&area), expected, "query {q:?}");
        }
        // The comparison is not vacuous.
        assert!(total > 1000, "{total}");
        assert!(index.assets_in(&bbox([20.0, 10.0, 30.0, 20.0])).iter().all(|n| n != "edge.tif"));
        assert!(index.assets_in(&bbox([15.0, 15.0, 25.0, 25.0])).iter().any(|n| n == "edge.tif"));
    }

    #[test]
    fn assets_come_back_in_list_order_and_unreadable_ones_are_left_out() {
        let entries = vec![
            entry("z.tif", [0.0, 0.0, 10.0, 10.0]),
            Entry { name: "broken.tif".into(), stamp: None, footprint: Err("no".into()) },
            entry("a.tif", [5.0, 5.0, 15.0, 15.0]),
            entry("m.tif", [-5.0, -5.0, 6.0, 6.0]),
            entry("far.tif", [100.0, 0.0, 110.0, 10.0]),
        ];
        let index = FootprintIndex::new(&entries);
        assert_eq!(index.len(), 4);
        assert_eq!(index.assets_in(&bbox([5.5, 5.5, 7.0, 7.0])), ["z.tif", "a.tif", "m.tif"]);
        assert_eq!(index.assets_in(&bbox([-1.0, -1.0, 1.0, 1.0])), ["z.tif", "m.tif"]);
        assert_eq!(index.bounds(), Some([-5.0, -5.0, 110.0, 15.0]));
    }

    #[test]
    fn footprints_across_the_antimeridian_are_found_on_both_sides() {
        let index = FootprintIndex::new(&[
            entry("fiji.tif", [177.0, -20.0, -178.0, -15.0]),
            entry("samoa.tif", [-173.0, -15.0, -171.0, -13.0]),
        ]);
        assert_eq!(index.assets_in(&bbox([178.0, -18.0, 179.0, -17.0])), ["fiji.tif"]);
        assert_eq!(index.assets_in(&bbox([-179.0, -18.0, -178.5, -17.0])), ["fiji.tif"]);
        // Tiles whose edge is the antimeridian itself, on either side.
        assert_eq!(index.assets_in(&bbox([179.5, -18.0, 180.0, -17.0])), ["fiji.tif"]);
        assert_eq!(index.assets_in(&bbox([-180.0, -18.0, -179.5, -17.0])), ["fiji.tif"]);
        assert!(index.assets_in(&bbox([0.0, -18.0, 1.0, -17.0])).is_empty());
        assert!(index.assets_in(&bbox([-178.0, -18.0, -177.0, -17.0])).is_empty(), "touching the east edge");
        // An area that crosses too.
        assert_eq!(index.assets_in(&bbox([179.0, -16.0, -172.0, -14.0])), ["fiji.tif", "samoa.tif"]);
        assert_eq!(index.assets_at(179.9, -18.0), ["fiji.tif"]);
        assert_eq!(index.assets_at(-179.9, -18.0), ["fiji.tif"]);
        assert!(index.assets_at(0.0, -18.0).is_empty());
        // The layer's bounds go the short way round, over the antimeridian.
        assert_eq!(index.bounds(), Some([177.0, -20.0, -171.0, -13.0]));
    }

    #[test]
    fn r_tree_query_equals_brute_force_near_the_antimeridian() {
        let mut rng = StdRng::seed_from_u64(11);
        // Boxes within 20 degrees of it, about half of them across it.
        let mut random_box = |max_size: f64| {
            let w: f64 = rng.random_range(160.0..200.0);
            let e = w + rng.random_range(0.01..max_size);
            let s = rng.random_range(-60.0..50.0);
            let n = s + rng.random_range(0.01..max_size);
            let wrap = |lon: f64| if lon > 180.0 { lon - 360.0 } else { lon };
            [wrap(w), s, wrap(e), n]
        };
        let entries: Vec<Entry> =
            (0..200).map(|i| entry(&format!("a{i:03}.tif"), random_box(15.0))).collect();
        let index = FootprintIndex::new(&entries);
        let (mut total, mut crossing) = (0, 0);
        for _ in 0..300 {
            let q = random_box(20.0);
            let area = bbox(q);
            crossing += usize::from(area.crosses_antimeridian());
            let expected: Vec<String> = entries
                .iter()
                .filter(|e| bbox(*e.footprint.as_ref().unwrap()).intersects_lon_lat(&area))
                .map(|e| e.name.clone())
                .collect();
            total += expected.len();
            assert_eq!(index.assets_in(&area), expected, "query {q:?}");
        }
        assert!(total > 1000 && crossing > 50, "{total} hits, {crossing} crossing queries");
    }

    #[test]
    fn implausible_bounds_are_refused() {
        assert!(check_footprint([0.0, 0.0, 1.0, 1.0]).is_ok());
        assert!(check_footprint([170.0, 0.0, -170.0, 1.0]).is_ok());
        assert_eq!(
            check_footprint([0.0, 5.0, 1.0, 1.0]).unwrap_err(),
            "bounds [0.0, 5.0, 1.0, 1.0] are not west, south, east, north in degrees"
        );
        assert!(check_footprint([500_000.0, 0.0, 600_000.0, 1.0]).is_err());
        assert!(check_footprint([f64::NAN, 0.0, 1.0, 1.0]).is_err());
    }

    #[test]
    fn glob_matches_are_relative_sorted_files() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b/2.tif", "a/1.tif", "a/sub/0.tif", "a/notes.txt", "c.tif"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("d.tif")).unwrap();
        let names: Vec<String> =
            glob_files("l", dir.path(), "**/*.tif").unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a/1.tif", "a/sub/0.tif", "b/2.tif", "c.tif"]);
        let (_, stamp) = &glob_files("l", dir.path(), "c.tif").unwrap()[0];
        assert_eq!(stamp.len, 5);
    }
}
