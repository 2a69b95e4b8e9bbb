#![allow(clippy::float_cmp)] // bounds are copied, not computed

use std::{path::Path, sync::Arc};

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, ListArray, RecordBatch,
    StringArray, StructArray, TimestampMicrosecondArray, TimestampSecondArray, types::Float64Type,
};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Fields};
use parquet::arrow::ArrowWriter;

use super::{rfc3339, wkb_extent};
use crate::layers::stac::{
    DateRange, Location, Selection, SortKey, StacItem, parse_item_collection, parse_items, select,
};

/// The items of the STAC file at `path`, as the layer reads them (its bytes, told apart
/// by their first bytes).
fn read_items(
    layer: &str,
    path: &std::path::Path,
    selection: &Selection,
) -> Result<Vec<super::super::RawItem>, crate::layers::LayerError> {
    let bytes = std::fs::read(path).unwrap();
    parse_items(layer, &Location::File(path.to_owned()), bytes, selection)
}

/// A stac-geoparquet file of these columns (all nullable), written with the arrow
/// writer as pyarrow would.
fn write(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>) -> std::path::PathBuf {
    let batch =
        RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, c)| (n, c, true))).unwrap();
    let path = dir.join(name);
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

fn ids(ids: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(ids.to_vec()))
}

/// stac-geoparquet 1.0's bbox: a struct of xmin, ymin, xmax, ymax; `None` is a null row.
fn bboxes(rows: &[Option<[f64; 4]>]) -> ArrayRef {
    let fields: Fields =
        ["xmin", "ymin", "xmax", "ymax"].iter().map(|n| Field::new(*n, DataType::Float64, true)).collect();
    let corner = |i: usize| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(|r| Some(r.map_or(0.0, |b| b[i]))).collect::<Vec<_>>()))
    };
    let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<bool>>());
    Arc::new(StructArray::try_new(fields, (0..4).map(corner).collect(), Some(nulls)).unwrap())
}

/// `assets`: `image` with these hrefs (`None`: a null href), and a `thumbnail`.
fn assets(hrefs: &[Option<&str>]) -> ArrayRef {
    let asset = |hrefs: Vec<Option<&str>>| -> (Arc<Field>, ArrayRef) {
        let href: ArrayRef = Arc::new(StringArray::from(hrefs));
        let array = StructArray::from(vec![(Arc::new(Field::new("href", DataType::Utf8, true)), href)]);
        (Arc::new(Field::new("x", array.data_type().clone(), true)), Arc::new(array))
    };
    let (image_field, image) = asset(hrefs.to_vec());
    let (thumb_field, thumb) = asset(vec![Some("t.png"); hrefs.len()]);
    let image_field = Arc::new(image_field.as_ref().clone().with_name("image"));
    let thumb_field = Arc::new(thumb_field.as_ref().clone().with_name("thumbnail"));
    Arc::new(StructArray::from(vec![(image_field, image), (thumb_field, thumb)]))
}

/// Microseconds since 1970, UTC, from RFC 3339 text.
fn times(texts: &[&str]) -> ArrayRef {
    let micros = texts
        .iter()
        .map(|t| {
            let t = crate::layers::stac::parse_time(t, false).unwrap();
            i64::try_from(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros()).unwrap()
        })
        .collect::<Vec<_>>();
    Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC"))
}

fn image() -> Selection {
    Selection { asset: "image".into(), ..Selection::default() }
}

fn read(path: &Path, selection: &Selection) -> Result<Vec<StacItem>, String> {
    let raw = read_items("l", path, selection).map_err(|e| e.to_string())?;
    select("l", &Location::File(path.to_owned()), Path::new("/data"), raw, selection)
        .map_err(|e| e.to_string())
}

fn hrefs(items: &[StacItem]) -> Vec<&str> {
    items.iter().map(|i| &*i.href).collect()
}

/// Five items, as the ItemCollection tests have them.
fn naip(dir: &Path) -> std::path::PathBuf {
    write(
        dir,
        "items.parquet",
        vec![
            ("id", ids(&[Some("a"), Some("b"), Some("c"), Some("d"), Some("e")])),
            (
                "bbox",
                bboxes(&[
                    Some([-75.0, 40.0, -74.0, 41.0]),
                    Some([-76.0, 40.0, -75.0, 41.0]),
                    Some([-76.0, 39.0, -75.0, 40.0]),
                    Some([-76.0, 39.0, -75.0, 40.0]),
                    Some([-75.0, 39.0, -74.0, 40.0]),
                ]),
            ),
            (
                "assets",
                assets(&[Some("./a.tif"), Some("../b.tif"), Some("c.tif"), Some("c.tif"), Some("e.tif")]),
            ),
            (
                "datetime",
                times(&[
                    "2019-12-31T23:59:59Z",
                    "2020-01-01T00:00:00Z",
                    "2021-12-31T18:00:00Z",
                    "2021-12-31T18:00:00.5Z",
                    "2022-01-01T00:00:00Z",
                ]),
            ),
            ("naip:state", Arc::new(StringArray::from(vec!["ny", "ny", "nj", "ny", "ny"]))),
            ("gsd", Arc::new(Float32Array::from(vec![0.6, 0.6, 0.6, 1.0, 0.6]))),
            // Never read unless a filter names it: a type filters cannot use.
            (
                "eo:bands",
                Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(vec![Some(vec![Some(1.0)]); 5])),
            ),
        ],
    )
}

#[test]
fn rows_become_the_items_an_item_collection_of_the_same_items_gives() {
    let dir = tempfile::tempdir().unwrap();
    let path = naip(dir.path());
    let selection = Selection {
        sort: SortKey::parse("gsd"),
        filter: vec![("naip:state".into(), serde_json::json!("ny"))],
        ..image()
    };
    let from_parquet = read_items("l", &path, &selection).unwrap();
    let features: Vec<serde_json::Value> = from_parquet
        .iter()
        .map(|item| {
            let (datetime, _) = item.datetime.clone().unwrap();
            let [w, s, e, n] = item.bbox;
            serde_json::json!({
                "id": item.id, "bbox": [w, s, e, n],
                "properties": {"datetime": datetime, "gsd": item.properties[0], "naip:state": item.properties[1]},
                "assets": {"image": {"href": &*item.href}},
            })
        })
        .collect();
    let json = serde_json::json!({"type": "FeatureCollection", "features": features}).to_string();
    let from_json =
        parse_item_collection("l", &Location::File(path.clone()), json.as_bytes(), &selection).unwrap();
    assert_eq!(from_parquet, from_json);
    let first = &from_parquet[0];
    assert_eq!(
        (first.id.as_str(), first.bbox, &*first.href, first.datetime.as_ref().unwrap().0.as_str()),
        ("a", [-75.0, 40.0, -74.0, 41.0], "./a.tif", "2019-12-31T23:59:59Z")
    );
    // A float32 0.6 is the JSON number 0.6, so that a filter `gsd = 0.6` matches it.
    assert_eq!(first.properties, [Some(serde_json::json!(0.6)), Some(serde_json::json!("ny"))]);
    assert_eq!(from_parquet[3].datetime.as_ref().unwrap().0, "2021-12-31T18:00:00.500000Z");
    // Items that name the same file share its href.
    assert!(Arc::ptr_eq(&from_parquet[2].href, &from_parquet[3].href));
}

#[test]
fn file_order_sorts_and_filters_select_as_for_an_item_collection() {
    let dir = tempfile::tempdir().unwrap();
    let path = naip(dir.path());
    let all = read(&path, &image()).unwrap();
    let expected_first = [
        dir.path().join("a.tif").display().to_string(),
        dir.path().parent().unwrap().join("b.tif").display().to_string(),
    ];
    assert_eq!(hrefs(&all)[..2], [expected_first[0].as_str(), expected_first[1].as_str()]);
    assert_eq!(all.len(), 5);
    let newest = read(&path, &Selection { sort: SortKey::parse("-datetime"), ..image() }).unwrap();
    let ends: Vec<&str> = hrefs(&newest).iter().map(|h| h.rsplit('/').next().unwrap()).collect();
    assert_eq!(ends, ["e.tif", "c.tif", "c.tif", "b.tif", "a.tif"]);
    let range = Selection { datetime: Some(DateRange::parse("2020-01-01/2021-12-31").unwrap()), ..image() };
    let ny = Selection {
        filter: vec![("naip:state".into(), serde_json::json!("ny")), ("gsd".into(), serde_json::json!(0.6))],
        ..range.clone()
    };
    let picked: Vec<[f64; 4]> = read(&path, &ny).unwrap().iter().map(|i| i.bbox).collect();
    assert_eq!(picked, [[-76.0, 40.0, -75.0, 41.0]], "only b: ny, 0.6 m, in 2020-2021");
    assert_eq!(read(&path, &range).unwrap().len(), 3, "b, c and d");
    // A property no row has matches nothing; a property of a type filters cannot use is named.
    let absent = Selection { filter: vec![("naip:year".into(), serde_json::json!("2020"))], ..image() };
    assert!(read(&path, &absent).unwrap().is_empty());
    let bands = Selection { filter: vec![("eo:bands".into(), serde_json::json!(1))], ..image() };
    assert_eq!(
        read(&path, &bands).unwrap_err(),
        format!(
            "layer 'l': {}: item 'a' has column 'eo:bands' of type List(Float64); filters and sorts use strings, numbers, booleans and timestamps",
            path.display()
        )
    );
}

#[test]
fn the_format_is_told_by_its_first_bytes_not_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = naip(dir.path());
    let disguised = dir.path().join("items.json");
    std::fs::copy(&parquet, &disguised).unwrap();
    assert_eq!(read(&disguised, &image()).unwrap().len(), 5);
    let json = dir.path().join("items.parquet.json");
    std::fs::write(&json, br#"{"type": "FeatureCollection", "features": []}"#).unwrap();
    assert!(read(&json, &image()).unwrap().is_empty());
}

/// A little-endian WKB polygon with one ring.
fn wkb_polygon(ring: &[(f64, f64)]) -> Vec<u8> {
    let mut out = vec![1];
    out.extend(3u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend(u32::try_from(ring.len()).unwrap().to_le_bytes());
    for (x, y) in ring {
        out.extend(x.to_le_bytes());
        out.extend(y.to_le_bytes());
    }
    out
}

#[test]
fn without_a_bbox_column_the_wkb_geometry_gives_the_extent() {
    let dir = tempfile::tempdir().unwrap();
    let polygon = wkb_polygon(&[(-75.0, 40.0), (-74.0, 40.5), (-74.5, 41.0), (-75.0, 40.0)]);
    let geometry: ArrayRef = Arc::new(arrow_array::BinaryArray::from(vec![Some(polygon.as_slice()), None]));
    let path = write(
        dir.path(),
        "g.parquet",
        vec![
            ("id", ids(&[Some("g"), Some("h")])),
            ("geometry", geometry),
            ("assets", assets(&[Some("g.tif"), Some("h.tif")])),
        ],
    );
    assert_eq!(
        read(&path, &image()).unwrap_err(),
        format!("layer 'l': {}: item 'h' has neither a bbox nor a geometry", path.display())
    );
    let raw = read_items("l", &path, &image()).map(|_| ()).unwrap_err();
    assert!(raw.to_string().ends_with("item 'h' has neither a bbox nor a geometry"));
    // A Z polygon (ISO code 1003), big-endian multipolygon around it.
    let mut z = vec![1];
    z.extend(1003u32.to_le_bytes());
    z.extend(1u32.to_le_bytes());
    z.extend(2u32.to_le_bytes());
    for (x, y) in [(10.0f64, -5.0f64), (12.0, -3.0)] {
        z.extend(x.to_le_bytes());
        z.extend(y.to_le_bytes());
        z.extend(100.0f64.to_le_bytes());
    }
    let mut multi = vec![0];
    multi.extend(6u32.to_be_bytes());
    multi.extend(1u32.to_be_bytes());
    multi.extend(&z);
    assert_eq!(wkb_extent(&multi), Some([10.0, -5.0, 12.0, -3.0]));
    assert_eq!(wkb_extent(&z[..z.len() - 1]), None, "cut short");
    assert_eq!(wkb_extent(b"POLYGON"), None);
    let geometry: ArrayRef = Arc::new(arrow_array::BinaryArray::from(vec![Some(polygon.as_slice())]));
    let path = write(
        dir.path(),
        "one.parquet",
        vec![("id", ids(&[Some("g")])), ("geometry", geometry), ("assets", assets(&[Some("g.tif")]))],
    );
    assert_eq!(read(&path, &image()).unwrap()[0].bbox, [-75.0, 40.0, -74.0, 41.0]);
}

#[test]
fn a_null_bbox_falls_back_to_the_geometry_which_is_not_read_when_every_row_has_a_bbox() {
    let dir = tempfile::tempdir().unwrap();
    let polygon = wkb_polygon(&[(-75.0, 40.0), (-74.0, 40.5), (-74.5, 41.0), (-75.0, 40.0)]);
    let geometry = |rows: usize| -> ArrayRef {
        Arc::new(arrow_array::BinaryArray::from(vec![Some(polygon.as_slice()); rows]))
    };
    let path = write(
        dir.path(),
        "null.parquet",
        vec![
            ("id", ids(&[Some("a"), Some("b")])),
            ("bbox", bboxes(&[Some([0.0, 0.0, 1.0, 1.0]), None])),
            ("geometry", geometry(2)),
            ("assets", assets(&[Some("a.tif"), Some("b.tif")])),
        ],
    );
    let boxes: Vec<[f64; 4]> = read(&path, &image()).unwrap().iter().map(|i| i.bbox).collect();
    assert_eq!(boxes, [[0.0, 0.0, 1.0, 1.0], [-75.0, 40.0, -74.0, 41.0]]);
    // A geometry that is not WKB does not matter to a row with a bbox.
    let not_wkb: ArrayRef = Arc::new(arrow_array::BinaryArray::from(vec![Some(b"not WKB".as_slice())]));
    let path = write(
        dir.path(),
        "full.parquet",
        vec![
            ("id", ids(&[Some("a")])),
            ("bbox", bboxes(&[Some([0.0, 0.0, 1.0, 1.0])])),
            ("geometry", not_wkb),
            ("assets", assets(&[Some("a.tif")])),
        ],
    );
    assert_eq!(read(&path, &image()).unwrap()[0].bbox, [0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn a_bbox_may_be_a_list_of_four_or_six_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let lists: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
        Some(vec![Some(-75.0), Some(40.0), Some(-74.0), Some(41.0)]),
        Some(vec![Some(-75.0), Some(40.0), Some(0.0), Some(-74.0), Some(41.0), Some(300.0)]),
    ]));
    let path = write(
        dir.path(),
        "l.parquet",
        vec![
            ("id", ids(&[Some("a"), Some("b")])),
            ("bbox", lists),
            ("assets", assets(&[Some("a.tif"), Some("b.tif")])),
        ],
    );
    let boxes: Vec<[f64; 4]> = read(&path, &image()).unwrap().iter().map(|i| i.bbox).collect();
    assert_eq!(boxes, [[-75.0, 40.0, -74.0, 41.0]; 2]);
}

#[test]
fn malformed_rows_are_named_with_the_layer_the_file_and_the_item() {
    let dir = tempfile::tempdir().unwrap();
    let good = Some([0.0, 0.0, 1.0, 1.0]);
    let cases: Vec<(Vec<(&str, ArrayRef)>, String)> = vec![
        (
            vec![("id", ids(&[Some("a"), Some("x")])), ("bbox", bboxes(&[good, None])), ("assets", assets(&[Some("a.tif"), Some("x.tif")]))],
            "item 'x' has neither a bbox nor a geometry".into(),
        ),
        (
            vec![("id", ids(&[Some("x")])), ("bbox", bboxes(&[Some([0.0, 95.0, 1.0, 96.0])])), ("assets", assets(&[Some("x.tif")]))],
            "item 'x' has bbox [0.0, 95.0, 1.0, 96.0]; expected [west, south, east, north] (or 6 numbers with heights) in degrees".into(),
        ),
        (
            vec![("id", ids(&[Some("a"), Some("x")])), ("bbox", bboxes(&[good, good])), ("assets", assets(&[Some("a.tif"), None]))],
            "item 'x' asset 'image' has no href".into(),
        ),
        (
            vec![("id", ids(&[Some("a"), None])), ("bbox", bboxes(&[good, good])), ("assets", assets(&[Some("a.tif"), Some("")]))],
            "item 'row 1' asset 'image' has no href".into(),
        ),
        (
            vec![("id", Arc::new(Int64Array::from(vec![7]))), ("bbox", bboxes(&[good])), ("assets", assets(&[Some("a.tif")]))],
            "item 'row 0' has column 'id' of type Int64, not a string".into(),
        ),
        (
            vec![("id", ids(&[Some("x")])), ("bbox", Arc::new(StringArray::from(vec!["0,0,1,1"]))), ("assets", assets(&[Some("a.tif")]))],
            "item 'x' has column 'bbox' of type Utf8; expected a struct of xmin, ymin, xmax, ymax or a list of numbers".into(),
        ),
        (
            vec![
                ("id", ids(&[Some("x")])),
                ("bbox", bboxes(&[good])),
                ("assets", assets(&[Some("a.tif")])),
                ("datetime", Arc::new(BooleanArray::from(vec![true]))),
            ],
            "item 'x' has column 'datetime' of type Boolean, not a timestamp or an RFC 3339 string".into(),
        ),
    ];
    for (i, (columns, expected)) in cases.into_iter().enumerate() {
        let path = write(dir.path(), &format!("bad{i}.parquet"), columns);
        assert_eq!(read(&path, &image()).unwrap_err(), format!("layer 'l': {}: {expected}", path.display()));
    }
}

#[test]
fn files_that_are_not_stac_geoparquet_are_refused_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let good = Some([0.0, 0.0, 1.0, 1.0]);
    let no_id = write(
        dir.path(),
        "no_id.parquet",
        vec![("bbox", bboxes(&[good])), ("assets", assets(&[Some("a.tif")]))],
    );
    let no_bbox = write(
        dir.path(),
        "no_bbox.parquet",
        vec![("id", ids(&[Some("a")])), ("assets", assets(&[Some("a.tif")]))],
    );
    let no_assets =
        write(dir.path(), "no_assets.parquet", vec![("id", ids(&[Some("a")])), ("bbox", bboxes(&[good]))]);
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &std::fs::read(naip(dir.path())).unwrap()[..200]).unwrap();
    let cases = [
        (&no_id, "not a stac-geoparquet file: it has no `id` column".to_owned()),
        (&no_bbox, "not a stac-geoparquet file: it has neither a `bbox` nor a `geometry` column".to_owned()),
        (&no_assets, "not a stac-geoparquet file: it has no `assets` column".to_owned()),
    ];
    for (path, expected) in cases {
        assert_eq!(read(path, &image()).unwrap_err(), format!("layer 'l': {}: {expected}", path.display()));
    }
    let visual = Selection { asset: "visual".into(), ..Selection::default() };
    assert_eq!(
        read(&no_id.with_file_name("items.parquet"), &visual).unwrap_err(),
        format!(
            "layer 'l': {}: no item has asset 'visual' (the `assets` column has: image, thumbnail)",
            dir.path().join("items.parquet").display()
        )
    );
    let err = read(&cut, &image()).unwrap_err();
    assert!(err.starts_with(&format!("layer 'l': {}: not a stac-geoparquet file: ", cut.display())), "{err}");
}

#[test]
fn timestamps_of_any_unit_are_rfc_3339_utc() {
    assert_eq!(rfc3339(0, 1), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_651_363_200, 1), "2022-05-01T00:00:00Z");
    assert_eq!(rfc3339(1_651_363_200_250, 1_000), "2022-05-01T00:00:00.250Z");
    assert_eq!(rfc3339(-1, 1_000_000), "1969-12-31T23:59:59.999999Z");
    assert_eq!(rfc3339(951_782_400, 1), "2000-02-29T00:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let seconds: ArrayRef = Arc::new(TimestampSecondArray::from(vec![1_651_363_200]).with_timezone("+02:00"));
    let path = write(
        dir.path(),
        "s.parquet",
        vec![
            ("id", ids(&[Some("a")])),
            ("bbox", bboxes(&[Some([0.0, 0.0, 1.0, 1.0])])),
            ("assets", assets(&[Some("a.tif")])),
            ("datetime", seconds),
        ],
    );
    let items = read_items("l", &path, &image()).unwrap();
    // Arrow keeps instants in UTC; the zone only says how to show them.
    assert_eq!(items[0].datetime, Some(("2022-05-01T00:00:00Z".into(), "2022-05-01T00:00:00Z".into())));
}

/// STAC layers read no bounds.
struct NoBounds;

impl crate::layers::BoundsSource for NoBounds {
    fn bounds<'a>(&'a self, asset: &'a str) -> futures::future::BoxFuture<'a, Result<[f64; 4], String>> {
        Box::pin(async move { Err(format!("{asset} was opened")) })
    }
}

#[tokio::test]
async fn a_rewritten_file_is_reloaded_and_a_broken_one_keeps_the_previous_version() {
    use crate::layers::{LayerConfig, Layers};

    let dir = tempfile::tempdir().unwrap();
    let file = |hrefs: &[Option<&str>], boxes: &[Option<[f64; 4]>]| {
        let names: Vec<String> = (0..hrefs.len()).map(|i| format!("item-{i}")).collect();
        let names: Vec<Option<&str>> = names.iter().map(|n| Some(n.as_str())).collect();
        let path = write(
            dir.path(),
            "staging.parquet",
            vec![("id", ids(&names)), ("bbox", bboxes(boxes)), ("assets", assets(hrefs))],
        );
        std::fs::rename(path, dir.path().join("items.parquet")).unwrap();
    };
    let here = Some([-75.0, 40.0, -74.0, 41.0]);
    file(&[Some("a.tif")], &[here]);
    let config: LayerConfig = toml::from_str("name = \"p\"\nstac = { items = \"items.parquet\" }").unwrap();
    let layers = Layers::load(&[config], dir.path(), Arc::new(NoBounds), crate::layers::Documents::local())
        .await
        .unwrap();
    let tile = crate::tms::TileMatrixSet::WEB_MERCATOR_QUAD.tile(8, 74, 96).unwrap();
    assert_eq!(layers.get("p").unwrap().assets_for_tile(&tile).unwrap(), ["a.tif"]);
    file(&[Some("b.tif"), Some("a.tif")], &[here, here]);
    assert_eq!(layers.reload().await.reloaded, ["p"]);
    assert_eq!(layers.get("p").unwrap().assets_for_tile(&tile).unwrap(), ["b.tif", "a.tif"]);
    file(&[Some("b.tif"), Some("a.tif"), Some("c.tif")], &[here, here, None]);
    assert_eq!(layers.reload().await.failed, ["p"]);
    assert_eq!(layers.get("p").unwrap().assets_for_tile(&tile).unwrap(), ["b.tif", "a.tif"]);
}
