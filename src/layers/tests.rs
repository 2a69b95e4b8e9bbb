//! Layer selection and the registry's load/reload behaviour, against temp directories
//! and a bounds source that reads `west south east north` from the asset file itself.

// Bounds are copied from documents or unioned from footprints, never computed: exact
// equality is the point.
#![allow(clippy::float_cmp)]

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use super::*;
use crate::tms::TileMatrixSet;

const EXAMPLE: &str = include_str!("testdata/example.mosaic.json");

/// Reads an asset's bounds from the file `data_dir/asset` ("w s e n"), recording every
/// read; a file that does not hold four numbers is unreadable.
struct FileBounds {
    dir: PathBuf,
    reads: Mutex<Vec<String>>,
}

impl FileBounds {
    fn new(dir: &Path) -> Arc<Self> {
        Arc::new(Self { dir: dir.to_owned(), reads: Mutex::new(Vec::new()) })
    }

    fn take_reads(&self) -> Vec<String> {
        let mut reads = std::mem::take(&mut *self.reads.lock().unwrap());
        reads.sort();
        reads
    }
}

impl BoundsSource for FileBounds {
    fn bounds<'a>(&'a self, asset: &'a str) -> futures::future::BoxFuture<'a, Result<[f64; 4], String>> {
        Box::pin(async move {
            self.reads.lock().unwrap().push(asset.to_owned());
            let text = std::fs::read_to_string(self.dir.join(asset)).map_err(|e| e.to_string())?;
            let numbers: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
            <[f64; 4]>::try_from(numbers).map_err(|_| format!("'{text}' is not four numbers"))
        })
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn wm(z: u32, x: u32, y: u32) -> TileId {
    TileMatrixSet::WEB_MERCATOR_QUAD.tile(z, x, y).unwrap()
}

fn crs84(z: u32, x: u32, y: u32) -> TileId {
    TileMatrixSet::WORLD_CRS84_QUAD.tile(z, x, y).unwrap()
}

fn mosaic_config(name: &str, file: &str) -> LayerConfig {
    LayerConfig {
        name: name.into(),
        description: None,
        mosaicjson: Some(file.into()),
        footprint: None,
        stac: None,
        max_assets_per_tile: None,
        skip_covered: false,
        overview: None,
        overview_maxzoom: None,
    }
}

fn footprint_config(name: &str, assets: &[&str], glob: Option<&str>) -> LayerConfig {
    LayerConfig {
        name: name.into(),
        description: Some("by footprint".into()),
        mosaicjson: None,
        footprint: Some(FootprintConfig {
            assets: assets.iter().map(|a| (*a).to_owned()).collect(),
            glob: glob.map(str::to_owned),
            minzoom: Some(2),
            maxzoom: None,
        }),
        stac: None,
        max_assets_per_tile: None,
        skip_covered: false,
        overview: None,
        overview_maxzoom: None,
    }
}

async fn load(dir: &Path, configs: &[LayerConfig]) -> (Arc<Layers>, Arc<FileBounds>) {
    let source = FileBounds::new(dir);
    let layers = Layers::load(configs, dir, source.clone(), Documents::local()).await.unwrap();
    (Arc::new(layers), source)
}

fn assets(layers: &Layers, layer: &str, tile: &TileId) -> Vec<String> {
    layers.get(layer).unwrap().assets_for_tile(tile).unwrap()
}

/// Rewrites a file and moves its modification time, so a same-size edit is seen too.
fn rewrite(dir: &Path, name: &str, text: &str, seconds_later: i64) {
    write(dir, name, text);
    let path = dir.join(name);
    let meta = std::fs::metadata(&path).unwrap();
    let mtime = filetime::FileTime::from_last_modification_time(&meta);
    let moved = filetime::FileTime::from_unix_time(mtime.unix_seconds() + seconds_later, mtime.nanoseconds());
    filetime::set_file_mtime(&path, moved).unwrap();
}

// Expected asset lists in the MosaicJSON tests were computed with cogeo-mosaic 9.2.0's
// `get_assets` / `assets_for_bbox` logic over testdata/example.mosaic.json, run with
// morecantile 7.1.0 (WebMercatorQuad for quadkeys, WorldCRS84Quad for tile bounds).

#[tokio::test]
async fn mosaic_tiles_at_and_above_quadkey_zoom_use_the_ancestor_quadkey() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "example.json", EXAMPLE);
    let (layers, _) = load(dir.path(), &[mosaic_config("ex", "example.json")]).await;
    assert_eq!(assets(&layers, "ex", &wm(2, 1, 0)), ["b.tif", "c.tif"]);
    // 5/12/10 has quadkey 03120: its ancestor at zoom 2 is 03.
    assert_eq!(assets(&layers, "ex", &wm(5, 12, 10)), ["a.tif", "e.tif"]);
    assert_eq!(assets(&layers, "ex", &wm(6, 24, 20)), ["a.tif", "e.tif"]);
    // Quadkey 13 is not in the document.
    assert!(assets(&layers, "ex", &wm(2, 3, 1)).is_empty());
}

#[tokio::test]
async fn mosaic_tiles_below_quadkey_zoom_join_their_descendants_in_quadkey_order_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "example.json", EXAMPLE);
    let (layers, _) = load(dir.path(), &[mosaic_config("ex", "example.json")]).await;
    assert_eq!(assets(&layers, "ex", &wm(1, 0, 0)), ["a.tif", "b.tif", "c.tif", "d.tif", "e.tif"]);
    assert_eq!(assets(&layers, "ex", &wm(1, 1, 0)), ["f.tif"]);
    assert_eq!(assets(&layers, "ex", &wm(1, 0, 1)), ["h.tif", "b.tif", "i.tif"]);
    assert_eq!(assets(&layers, "ex", &wm(1, 1, 1)), ["g.tif"]);
}

#[tokio::test]
async fn mosaic_zoom_range_is_enforced_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "example.json", EXAMPLE);
    let (layers, _) = load(dir.path(), &[mosaic_config("ex", "example.json")]).await;
    let layer = layers.get("ex").unwrap();
    assert_eq!(
        layer.assets_for_tile(&wm(0, 0, 0)).unwrap_err().to_string(),
        "layer 'ex' serves zoom levels 1..=6; tile zoom 0 is outside"
    );
    assert!(matches!(
        layer.assets_for_tile(&wm(7, 0, 0)),
        Err(LayerError::ZoomOutsideLayer { z: 7, minzoom: 1, maxzoom: 6, .. })
    ));
}

#[tokio::test]
async fn mosaic_selection_for_other_tile_matrix_sets_goes_by_geographic_bounds_column_by_column() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "example.json", EXAMPLE);
    let (layers, _) = load(dir.path(), &[mosaic_config("ex", "example.json")]).await;
    // West half at zoom 1 (tiles of CRS84 zoom 0 are outside the mosaic's minzoom 1):
    // -180..-90, 0..90 covers columns 0..=1 (the east edge -90 counts in column 1),
    // rows 0..=2 (the south edge 0 counts in row 2).
    assert_eq!(
        assets(&layers, "ex", &crs84(1, 0, 0)),
        ["a.tif", "b.tif", "d.tif", "h.tif", "c.tif", "e.tif", "i.tif"]
    );
    assert_eq!(
        assets(&layers, "ex", &crs84(1, 1, 0)),
        ["b.tif", "c.tif", "a.tif", "e.tif", "i.tif", "f.tif", "g.tif"]
    );
    assert_eq!(assets(&layers, "ex", &crs84(1, 1, 1)), ["i.tif", "g.tif"]);
    assert_eq!(assets(&layers, "ex", &crs84(2, 2, 1)), ["a.tif", "e.tif", "i.tif"]);
}

#[tokio::test]
async fn a_geographic_edge_that_rounds_short_pulls_in_the_western_neighbour_first() {
    // WorldCRS84Quad 2/7/1 spans 135..180°E, 0..45°N. cogeo-mosaic's arithmetic puts
    // 135° in column 6 at zoom 3 (just short of the edge), so the cells of column 6 come
    // first and the asset shared with column 7 moves ahead of column 7's own.
    let dir = tempfile::tempdir().unwrap();
    let doc = r#"{"mosaicjson": "0.0.3", "minzoom": 2, "quadkey_zoom": 3,
        "tiles": {"132": ["both.tif"], "131": ["own.tif", "both.tif"]}}"#;
    write(dir.path(), "edge.json", doc);
    let (layers, _) = load(dir.path(), &[mosaic_config("edge", "edge.json")]).await;
    assert_eq!(assets(&layers, "edge", &crs84(2, 7, 1)), ["both.tif", "own.tif"]);
}

#[tokio::test]
async fn wide_boxes_over_deep_quadkeys_scan_the_document_in_the_same_order() {
    // quadkey_zoom 12 makes the CRS84 zoom-1 tile span 1025 × 2049 cells: more than the
    // document's keys, so the document is scanned instead of the cells.
    let dir = tempfile::tempdir().unwrap();
    let far_east = quadkey::quadkey(12, 4000, 100);
    let west_north = quadkey::quadkey(12, 10, 50);
    let west_south = quadkey::quadkey(12, 10, 1500);
    let east_of_west = quadkey::quadkey(12, 11, 20);
    let doc = format!(
        r#"{{"mosaicjson": "0.0.3", "minzoom": 0, "maxzoom": 14, "quadkey_zoom": 12, "tiles": {{
            "{far_east}": ["east.tif"], "{west_south}": ["ws.tif", "x.tif"], "{east_of_west}": ["x.tif", "ew.tif"],
            "{west_north}": ["wn.tif"] }} }}"#
    );
    write(dir.path(), "deep.json", &doc);
    let (layers, _) = load(dir.path(), &[mosaic_config("deep", "deep.json")]).await;
    assert_eq!(assets(&layers, "deep", &crs84(1, 0, 0)), ["wn.tif", "ws.tif", "x.tif", "ew.tif"]);
    assert_eq!(assets(&layers, "deep", &crs84(1, 3, 0)), ["east.tif"]);
}

#[tokio::test]
async fn asset_prefix_is_prepended_after_deduplication() {
    let dir = tempfile::tempdir().unwrap();
    let doc =
        EXAMPLE.replace("\"quadkey_zoom\": 2,", "\"quadkey_zoom\": 2, \"asset_prefix\": \"s3://bucket/\",");
    write(dir.path(), "prefixed.json", &doc);
    let (layers, _) = load(dir.path(), &[mosaic_config("p", "prefixed.json")]).await;
    assert_eq!(
        assets(&layers, "p", &wm(1, 0, 1)),
        ["s3://bucket/h.tif", "s3://bucket/b.tif", "s3://bucket/i.tif"]
    );
}

#[tokio::test]
async fn quadkey_zoom_zero_or_absent_means_minzoom() {
    let dir = tempfile::tempdir().unwrap();
    let doc = r#"{"mosaicjson": "0.0.3", "minzoom": 1, "quadkey_zoom": 0, "tiles": {"0": ["nw.tif"], "3": ["se.tif"], "": ["never.tif"]}}"#;
    write(dir.path(), "qz0.json", doc);
    let (layers, _) = load(dir.path(), &[mosaic_config("q", "qz0.json")]).await;
    assert_eq!(assets(&layers, "q", &wm(3, 1, 1)), ["nw.tif"]);
    assert_eq!(assets(&layers, "q", &wm(1, 1, 1)), ["se.tif"]);
    let info = &layers.list()[0];
    // Defaults: maxzoom 30 capped at Tessera's 24, world bounds, centre at minzoom.
    assert_eq!((info.minzoom, info.maxzoom, info.asset_count), (1, 24, 2));
    assert_eq!(info.bounds, [-180.0, -90.0, 180.0, 90.0]);
    assert_eq!(info.center, (0.0, 0.0, 1));
    assert_eq!(info.version.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn mosaic_info_comes_from_the_document() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "example.json", EXAMPLE);
    let (layers, _) = load(dir.path(), &[mosaic_config("ex", "example.json")]).await;
    let mut list = layers.list();
    let load_time = std::mem::take(&mut list[0].load_time);
    assert!(load_time > Duration::ZERO && load_time < Duration::from_secs(10), "{load_time:?}");
    assert_eq!(
        list,
        vec![LayerInfo {
            name: "ex".into(),
            kind: LayerKind::MosaicJson,
            description: Some("A hand-made MosaicJSON document for Tessera's layer tests".into()),
            bounds: [-180.0, -85.051_128_779_806_6, 90.0, 85.051_128_779_806_6],
            minzoom: 1,
            maxzoom: 6,
            center: (-45.0, 0.0, 3),
            // a..i: the keys that are not zoom-2 quadkeys are ignored with their assets.
            asset_count: 9,
            unreadable_assets: 0,
            attribution: Some("Tessera test data".into()),
            version: Some("1.0.2".into()),
            // The eight zoom-2 quadkeys; "0", "0123" and "0x" are ignored.
            item_count: 8,
            load_time: Duration::ZERO,
            overview: None,
        }]
    );
    // Quadkey "00" comes first.
    assert_eq!(layers.get("ex").unwrap().first_asset().as_deref(), Some("a.tif"));
}

#[tokio::test]
async fn invalid_documents_name_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let source = FileBounds::new(dir.path());
    let cases = [
        (
            "{\"mosaicjson\": \"0.0.3\",\n \"tiles\": {\"0\": [1]}}",
            "not a MosaicJSON document: invalid type: integer `1`, expected a string at line 2 column 18",
        ),
        (
            "{\"mosaicjson\": \"0.0.3\", \"minzoom\": 31, \"tiles\": {}}",
            "field `minzoom` is 31; allowed: 0..=30",
        ),
        (
            "{\"mosaicjson\": \"0.0.3\", \"minzoom\": 25, \"tiles\": {}}",
            "field `minzoom` is 25; Tessera serves zoom levels 0..=24",
        ),
        (
            "{\"mosaicjson\": \"0.0.3\", \"minzoom\": 5, \"maxzoom\": 4, \"tiles\": {}}",
            "field `minzoom` is 5, above maxzoom 4",
        ),
        (
            "{\"mosaicjson\": \"0.1.0\", \"tiles\": {}}",
            "field `mosaicjson` is '0.1.0'; supported versions are 0.0.1, 0.0.2, 0.0.3",
        ),
        (
            "{\"mosaicjson\": \"0.0.3\", \"tilematrixset\": {\"id\": \"WorldCRS84Quad\"}, \"tiles\": {}}",
            "field `tilematrixset` has id 'WorldCRS84Quad'; Tessera serves MosaicJSON on WebMercatorQuad quadkeys only (omit the field or use WebMercatorQuad)",
        ),
        (
            "{\"mosaicjson\": \"0.0.3\", \"center\": [0, 0, 2.5], \"tiles\": {}}",
            "field `center` is [0, 0, 2.5]; expected [lon, lat, zoom] with a whole zoom in 0..=30",
        ),
        (
            "{\"mosaicjson\": \"0.0.3\"}",
            "not a MosaicJSON document: missing field `tiles` at line 1 column 23",
        ),
    ];
    for (text, expected) in cases {
        write(dir.path(), "bad.json", text);
        let err =
            Layers::load(&[mosaic_config("b", "bad.json")], dir.path(), source.clone(), Documents::local())
                .await
                .unwrap_err();
        let path = dir.path().join("bad.json");
        assert_eq!(err.to_string(), format!("{}: {expected}", path.display()));
    }
    let err = Layers::load(&[mosaic_config("b", "missing.json")], dir.path(), source, Documents::local())
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with(&format!("{}: cannot read: ", dir.path().join("missing.json").display()))
    );
}

#[tokio::test]
async fn a_footprint_layer_lists_assets_in_configured_then_path_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tiles/b.tif", "-10 -10 10 10");
    write(dir.path(), "tiles/a.tif", "0 0 20 20");
    write(dir.path(), "tiles/c.tif", "100 0 120 20");
    write(dir.path(), "tiles/broken.tif", "not bounds");
    write(dir.path(), "extra/z.tif", "5 5 6 6");
    let config = footprint_config("fp", &["extra/z.tif", "tiles/b.tif"], Some("tiles/*.tif"));
    let (layers, source) = load(dir.path(), &[config]).await;
    assert_eq!(
        source.take_reads(),
        ["extra/z.tif", "tiles/a.tif", "tiles/b.tif", "tiles/broken.tif", "tiles/c.tif"]
    );
    // The whole of 2/1/1 (lon -90..0, lat 0..66.5) and 2/2/1 (lon 0..90).
    assert_eq!(assets(&layers, "fp", &wm(2, 1, 1)), ["tiles/b.tif"]);
    assert_eq!(assets(&layers, "fp", &wm(2, 2, 1)), ["extra/z.tif", "tiles/b.tif", "tiles/a.tif"]);
    assert_eq!(assets(&layers, "fp", &crs84(2, 4, 1)), ["extra/z.tif", "tiles/b.tif", "tiles/a.tif"]);
    assert_eq!(assets(&layers, "fp", &wm(3, 6, 3)), ["tiles/c.tif"]);
    // Zoom 1 is below the configured minzoom 2.
    assert!(layers.get("fp").unwrap().assets_for_tile(&wm(1, 1, 0)).is_err());
    let info = &layers.list()[0];
    assert_eq!((info.asset_count, info.unreadable_assets), (4, 1));
    assert_eq!((info.minzoom, info.maxzoom), (2, 24));
    assert_eq!(info.bounds, [-10.0, -10.0, 120.0, 20.0]);
    assert_eq!(info.center, (55.0, 5.0, 2));
    assert_eq!(info.description.as_deref(), Some("by footprint"));
    assert_eq!(layers.get("fp").unwrap().first_asset().as_deref(), Some("extra/z.tif"));
}

#[tokio::test]
async fn a_footprint_across_the_antimeridian_serves_tiles_on_both_sides_and_bounds_over_it() {
    let dir = tempfile::tempdir().unwrap();
    // GDAL's transform_bounds of a UTM zone 60 scene: west > east.
    write(dir.path(), "fiji.tif", "177 -20 -178 -15");
    write(dir.path(), "tonga.tif", "-176 -22 -174 -18");
    let (layers, _) = load(dir.path(), &[footprint_config("fp", &["fiji.tif", "tonga.tif"], None)]).await;
    // Zoom 8 tiles holding lon 179.5 and -179.5 at lat -17.5 (columns 255 and 0, row
    // 140), and one over lon 0 on the same row.
    assert_eq!(assets(&layers, "fp", &wm(8, 255, 140)), ["fiji.tif"]);
    assert_eq!(assets(&layers, "fp", &wm(8, 0, 140)), ["fiji.tif"]);
    assert!(assets(&layers, "fp", &wm(8, 128, 140)).is_empty());
    // The CRS84 tiles either side of the antimeridian at zoom 2 (45 degrees each).
    assert_eq!(assets(&layers, "fp", &crs84(2, 7, 2)), ["fiji.tif"]);
    assert_eq!(assets(&layers, "fp", &crs84(2, 0, 2)), ["fiji.tif", "tonga.tif"]);
    let layer = layers.get("fp").unwrap();
    assert_eq!(layer.assets_for_point(179.9, -17.0), ["fiji.tif"]);
    assert_eq!(layer.assets_for_point(-179.9, -17.0), ["fiji.tif"]);
    let info = &layers.list()[0];
    assert_eq!(info.bounds, [177.0, -22.0, -174.0, -15.0]);
    assert_eq!(info.center, (-178.5, -18.5, 2));
}

#[tokio::test]
async fn a_mosaic_document_with_bounds_across_the_antimeridian_is_centred_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let doc = r#"{"mosaicjson": "0.0.3", "minzoom": 5, "bounds": [177, -20, -178, -15], "tiles": {}}"#;
    write(dir.path(), "fiji.json", doc);
    let (layers, _) = load(dir.path(), &[mosaic_config("m", "fiji.json")]).await;
    let info = &layers.list()[0];
    assert_eq!(info.bounds, [177.0, -20.0, -178.0, -15.0]);
    assert_eq!(info.center, (179.5, -17.5, 5));
}

#[tokio::test]
async fn edits_to_a_mosaic_file_are_picked_up_and_broken_edits_keep_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "example.json", EXAMPLE);
    let (layers, _) = load(dir.path(), &[mosaic_config("ex", "example.json")]).await;
    let old = layers.get("ex").unwrap();
    assert_eq!(layers.reload().await, ReloadReport::default());

    // Same size, new contents: only the modification time tells.
    let edited = EXAMPLE.replace("\"b.tif\", \"c.tif\"", "\"B.tif\", \"C.tif\"");
    rewrite(dir.path(), "example.json", &edited, 10);
    assert_eq!(layers.reload().await.reloaded, ["ex"]);
    assert_eq!(assets(&layers, "ex", &wm(2, 1, 0)), ["B.tif", "C.tif"]);
    // A layer fetched before the swap keeps answering from its version.
    assert_eq!(old.assets_for_tile(&wm(2, 1, 0)).unwrap(), ["b.tif", "c.tif"]);

    rewrite(dir.path(), "example.json", "{\"mosaicjson\": \"0.0.3\", \"tiles\": {", 20);
    let report = layers.reload().await;
    assert_eq!((report.reloaded.len(), report.failed), (0, vec!["ex".to_owned()]));
    assert_eq!(assets(&layers, "ex", &wm(2, 1, 0)), ["B.tif", "C.tif"]);
    // The broken version stays refused (without being parsed again) until it changes.
    let report = layers.reload().await;
    assert_eq!((report.reloaded.len(), report.failed), (0, vec!["ex".to_owned()]));

    rewrite(dir.path(), "example.json", &EXAMPLE.replace("\"d.tif\"", "\"D.tif\""), 30);
    assert_eq!(layers.reload().await.reloaded, ["ex"]);
    assert_eq!(assets(&layers, "ex", &wm(2, 0, 1)), ["D.tif"]);
    assert_eq!(assets(&layers, "ex", &wm(2, 1, 0)), ["b.tif", "c.tif"]);
}

#[tokio::test]
async fn glob_additions_and_removals_are_picked_up_reading_only_new_or_rewritten_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t/1.tif", "0 0 10 10");
    write(dir.path(), "t/2.tif", "5 5 15 15");
    write(dir.path(), "t/bad.tif", "?");
    let (layers, source) = load(dir.path(), &[footprint_config("fp", &[], Some("t/*.tif"))]).await;
    assert_eq!(source.take_reads(), ["t/1.tif", "t/2.tif", "t/bad.tif"]);
    assert_eq!(layers.reload().await, ReloadReport::default());
    assert!(source.take_reads().is_empty());

    write(dir.path(), "t/0.tif", "8 8 9 9");
    std::fs::remove_file(dir.path().join("t/2.tif")).unwrap();
    assert_eq!(layers.reload().await.reloaded, ["fp"]);
    assert_eq!(source.take_reads(), ["t/0.tif"]);
    assert_eq!(assets(&layers, "fp", &wm(2, 2, 1)), ["t/0.tif", "t/1.tif"]);
    assert_eq!((layers.list()[0].asset_count, layers.list()[0].unreadable_assets), (2, 1));

    // A rewritten file is read again; the unreadable one is retried once it changes.
    rewrite(dir.path(), "t/1.tif", "100 0 110 10", 10);
    rewrite(dir.path(), "t/bad.tif", "-20 -20 -10 -10", 10);
    assert_eq!(layers.reload().await.reloaded, ["fp"]);
    assert_eq!(source.take_reads(), ["t/1.tif", "t/bad.tif"]);
    assert_eq!(assets(&layers, "fp", &wm(2, 2, 1)), ["t/0.tif"]);
    assert_eq!(assets(&layers, "fp", &wm(2, 3, 1)), ["t/1.tif"]);
    assert_eq!(assets(&layers, "fp", &wm(3, 3, 4)), ["t/bad.tif"]);
    assert_eq!(layers.list()[0].bounds, [-20.0, -20.0, 110.0, 10.0]);
}

#[tokio::test]
async fn the_watch_loop_swaps_in_edits_and_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "example.json", EXAMPLE);
    write(dir.path(), "t/1.tif", "0 0 10 10");
    let configs = [mosaic_config("ex", "example.json"), footprint_config("fp", &[], Some("t/*.tif"))];
    let (layers, _) = load(dir.path(), &configs).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = layers.clone().watch(Duration::from_millis(20), shutdown);

    rewrite(dir.path(), "example.json", &EXAMPLE.replace("\"f.tif\"", "\"F.tif\", \"f.tif\""), 10);
    write(dir.path(), "t/2.tif", "1 1 2 2");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while assets(&layers, "ex", &wm(2, 2, 1)) != ["F.tif", "f.tif"]
        || assets(&layers, "fp", &wm(2, 2, 1)) != ["t/1.tif", "t/2.tif"]
    {
        assert!(tokio::time::Instant::now() < deadline, "the reload loop did not pick the edits up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(layers.list().iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["ex", "fp"]);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_zero_interval_or_no_layer_turns_reloading_off() {
    // A layer, but a zero interval: the loop ends at once, shutdown never sent.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "example.json", EXAMPLE);
    let (layers, _) = load(dir.path(), &[mosaic_config("ex", "example.json")]).await;
    assert!(!layers.is_empty());
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::time::timeout(Duration::from_secs(5), layers.watch(Duration::ZERO, shutdown))
        .await
        .unwrap()
        .unwrap();
    // No layer, and an interval: nothing to watch, so it ends at once too.
    let layers = Arc::new(
        Layers::load(&[], Path::new("."), FileBounds::new(Path::new(".")), Documents::local()).await.unwrap(),
    );
    assert!(layers.is_empty());
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::time::timeout(Duration::from_secs(5), layers.watch(Duration::from_millis(20), shutdown))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn unknown_layers_are_none() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "example.json", EXAMPLE);
    let (layers, _) = load(dir.path(), &[mosaic_config("ex", "example.json")]).await;
    assert!(layers.get("other").is_none());
    assert_eq!(layers.get("ex").unwrap().info().kind, LayerKind::MosaicJson);
}

fn stac_item(id: &str, bbox: [f64; 4], datetime: &str, href: &str) -> String {
    format!(
        r#"{{"type": "Feature", "id": "{id}", "bbox": [{}, {}, {}, {}], "geometry": null,
            "properties": {{"datetime": "{datetime}"}}, "assets": {{"image": {{"href": "{href}"}}}}}}"#,
        bbox[0], bbox[1], bbox[2], bbox[3]
    )
}

fn stac_config(name: &str, items: &str, sort: Option<&str>) -> LayerConfig {
    let table = format!(
        "name = \"{name}\"\nstac = {{ items = \"{items}\"{} }}",
        sort.map_or_else(String::new, |s| format!(", sort = \"{s}\""))
    );
    toml::from_str(&table).unwrap()
}

#[tokio::test]
async fn a_stac_layer_selects_items_by_bbox_in_sort_order_opening_nothing_and_reloads_on_edit() {
    let dir = tempfile::tempdir().unwrap();
    let items = |third: &str| {
        format!(
            r#"{{"type": "FeatureCollection", "features": [{}, {}, {}]}}"#,
            stac_item("old", [-80.0, 35.0, -70.0, 45.0], "2018-06-01T00:00:00Z", "./old.tif"),
            stac_item("new", [-75.0, 40.0, -65.0, 50.0], "2022-06-01T00:00:00Z", "./new.tif"),
            stac_item("far", [100.0, 0.0, 110.0, 10.0], "2020-06-01T00:00:00Z", third),
        )
    };
    write(dir.path(), "stac/items.json", &items("https://example.test/far.tif"));
    let configs = [
        stac_config("naip", "stac/items.json", Some("-datetime")),
        stac_config("plain", "stac/items.json", None),
    ];
    let (layers, source) = load(dir.path(), &configs).await;
    // z5 tile 9/11 covers about -78.75..-67.5 W, 40.98..48.92 N: both US items, newest first.
    assert_eq!(assets(&layers, "naip", &wm(5, 9, 11)), ["stac/new.tif", "stac/old.tif"]);
    assert_eq!(assets(&layers, "plain", &wm(5, 9, 11)), ["stac/old.tif", "stac/new.tif"]);
    assert_eq!(assets(&layers, "naip", &wm(5, 25, 15)), ["https://example.test/far.tif"]);
    assert!(assets(&layers, "naip", &wm(5, 0, 0)).is_empty());
    assert_eq!(layers.get("naip").unwrap().assets_for_point(-72.0, 42.0), ["stac/new.tif", "stac/old.tif"]);
    assert!(source.take_reads().is_empty(), "no asset is opened to build a STAC layer");
    let info = layers.get("naip").unwrap().info().clone();
    assert_eq!((info.kind, info.asset_count, info.bounds), (LayerKind::Stac, 3, [-80.0, 0.0, 110.0, 50.0]));

    assert_eq!(layers.reload().await, ReloadReport::default());
    rewrite(dir.path(), "stac/items.json", &items("https://example.test/moved.tif"), 10);
    assert_eq!(layers.reload().await.reloaded, ["naip", "plain"]);
    assert_eq!(assets(&layers, "naip", &wm(5, 25, 15)), ["https://example.test/moved.tif"]);
}

#[tokio::test]
async fn a_malformed_stac_item_fails_the_start_naming_the_layer_the_file_and_the_item() {
    let dir = tempfile::tempdir().unwrap();
    let bad = stac_item("m_4007501_ne", [0.0, 0.0, 1.0, 1.0], "2020-01-01T00:00:00Z", "a.tif")
        .replace("\"image\"", "\"rgb\"");
    write(dir.path(), "items.json", &format!(r#"{{"type": "FeatureCollection", "features": [{bad}]}}"#));
    let err = Layers::load(
        &[stac_config("naip", "items.json", None)],
        dir.path(),
        FileBounds::new(dir.path()),
        Documents::local(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "layer 'naip': {}: item 'm_4007501_ne' has no asset 'image' (it has: rgb)",
            dir.path().join("items.json").display()
        )
    );
}

#[tokio::test]
async fn an_overview_answers_web_mercator_tiles_up_to_its_zoom_and_is_never_one_of_the_globbed_assets() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "fp/a.tif", "-10 -10 10 10");
    // The overview sits where the glob matches it (its "bounds" would be readable).
    write(dir.path(), "fp/overview.tif", "-10 -10 10 10");
    let mut config = footprint_config("fp", &[], Some("fp/*.tif"));
    config.overview = Some("fp/overview.tif".into());
    config.overview_maxzoom = Some(3);
    let (layers, source) = load(dir.path(), &[config]).await;
    assert_eq!(source.take_reads(), ["fp/a.tif"]);
    let layer = layers.get("fp").unwrap();
    // Below the layer's own minzoom (2) too: the layer now serves from zoom 0.
    assert_eq!((layer.info().minzoom, layer.info().asset_count), (0, 1));
    for tile in [wm(0, 0, 0), wm(1, 0, 0), wm(3, 3, 3), wm(3, 7, 7)] {
        assert_eq!(assets(&layers, "fp", &tile), ["fp/overview.tif"], "{tile:?}");
    }
    assert_eq!(assets(&layers, "fp", &wm(4, 7, 7)), ["fp/a.tif"]);
    // Another tile matrix set, and a request that ignores the overview, read the assets.
    assert_eq!(assets(&layers, "fp", &crs84(2, 3, 1)), ["fp/a.tif"]);
    assert_eq!(layer.own_assets_for_tile(&wm(3, 3, 3)).unwrap(), ["fp/a.tif"]);
    assert_eq!(
        layer.own_assets_for_tile(&wm(1, 0, 0)).unwrap_err().to_string(),
        "layer 'fp' serves zoom levels 2..=24; tile zoom 1 is outside"
    );

    // A missing overview stops the load, naming the layer and the file.
    let mut missing = footprint_config("fp", &[], Some("fp/*.tif"));
    missing.overview = Some("fp/gone.tif".into());
    missing.overview_maxzoom = Some(3);
    let err = Layers::load(&[missing], dir.path(), FileBounds::new(dir.path()), Documents::local())
        .await
        .unwrap_err()
        .to_string();
    let gone = dir.path().join("fp/gone.tif");
    assert!(err.starts_with(&format!("layer 'fp': overview {}: cannot read: ", gone.display())), "{err}");
}
