#![allow(clippy::float_cmp)] // bounds are copied, not computed

use super::*;

fn doc() -> Location {
    Location::File(PathBuf::from("/data/stac/items.json"))
}

fn collection(features: &str) -> Vec<u8> {
    format!(r#"{{"type": "FeatureCollection", "features": [{features}]}}"#).into_bytes()
}

fn item(id: &str, bbox: &str, datetime: &str, href: &str, extra: &str) -> String {
    format!(
        r#"{{"type": "Feature", "stac_version": "1.0.0", "id": "{id}", "bbox": {bbox},
            "geometry": null, "properties": {{"datetime": "{datetime}"{extra}}},
            "assets": {{"image": {{"href": "{href}"}}, "thumbnail": {{"href": "t.png"}}}}}}"#
    )
}

fn selected(bytes: &[u8], selection: &Selection) -> Result<Vec<StacItem>, String> {
    let raw = parse_item_collection("l", &doc(), bytes, selection).map_err(|e| e.to_string())?;
    select("l", &doc(), Path::new("/data"), raw, selection).map_err(|e| e.to_string())
}

fn image() -> Selection {
    Selection { asset: "image".into(), ..Selection::default() }
}

#[test]
fn items_keep_file_order_and_resolve_hrefs_against_the_document() {
    let bytes = collection(
        &[
            item("a", "[-75, 40, -74, 41]", "2020-01-01T00:00:00Z", "./a.tif", ""),
            item("b", "[-76, 40, -75, 41]", "2022-01-01T00:00:00Z", "../b.tif", ""),
            item("c", "[-76, 39, -75, 40]", "2021-01-01T00:00:00Z", "https://example.test/c.tif", ""),
            item("d", "[-76, 39, -75, 40]", "2021-01-01T00:00:00Z", "/elsewhere/d.tif", ""),
        ]
        .join(","),
    );
    let items = selected(&bytes, &image()).unwrap();
    let hrefs: Vec<&str> = items.iter().map(|i| &*i.href).collect();
    assert_eq!(hrefs, ["stac/a.tif", "b.tif", "https://example.test/c.tif", "/elsewhere/d.tif"]);
    assert_eq!(items[0].bbox, [-75.0, 40.0, -74.0, 41.0]);
}

#[test]
fn newest_on_top_with_a_descending_datetime_sort_and_ties_in_file_order() {
    let bytes = collection(
        &[
            item("a", "[0, 0, 1, 1]", "2020-01-01T00:00:00Z", "a.tif", ""),
            // 2021-12-31T22:00Z: still after c.
            item("b", "[0, 0, 1, 1]", "2022-01-01T00:00:00+02:00", "b.tif", ""),
            item("c", "[0, 0, 1, 1]", "2021-06-01T00:00:00Z", "c.tif", ""),
            item("d", "[0, 0, 1, 1]", "2020-01-01T00:00:00Z", "d.tif", ""),
        ]
        .join(","),
    );
    let newest = Selection { sort: SortKey::parse("-datetime"), ..image() };
    let hrefs: Vec<String> =
        selected(&bytes, &newest).unwrap().into_iter().map(|i| i.href.to_string()).collect();
    assert_eq!(hrefs, ["stac/b.tif", "stac/c.tif", "stac/a.tif", "stac/d.tif"]);
    let oldest = Selection { sort: SortKey::parse("datetime"), ..image() };
    let hrefs: Vec<String> =
        selected(&bytes, &oldest).unwrap().into_iter().map(|i| i.href.to_string()).collect();
    assert_eq!(hrefs, ["stac/a.tif", "stac/d.tif", "stac/c.tif", "stac/b.tif"]);
}

#[test]
fn a_datetime_range_and_a_property_filter_select_items() {
    let bytes = collection(
        &[
            item("a", "[0, 0, 1, 1]", "2019-12-31T23:59:59Z", "a.tif", r#", "naip:state": "ny", "gsd": 0.6"#),
            item("b", "[0, 0, 1, 1]", "2020-01-01T00:00:00Z", "b.tif", r#", "naip:state": "ny", "gsd": 0.6"#),
            item("c", "[0, 0, 1, 1]", "2021-12-31T18:00:00Z", "c.tif", r#", "naip:state": "nj", "gsd": 0.6"#),
            item("d", "[0, 0, 1, 1]", "2021-12-31T18:00:00Z", "d.tif", r#", "naip:state": "ny", "gsd": 1"#),
            item("e", "[0, 0, 1, 1]", "2022-01-01T00:00:00Z", "e.tif", r#", "naip:state": "ny", "gsd": 0.6"#),
        ]
        .join(","),
    );
    let range = Selection { datetime: Some(DateRange::parse("2020-01-01/2021-12-31").unwrap()), ..image() };
    let hrefs: Vec<String> =
        selected(&bytes, &range).unwrap().into_iter().map(|i| i.href.to_string()).collect();
    assert_eq!(hrefs, ["stac/b.tif", "stac/c.tif", "stac/d.tif"]);
    let ny = Selection {
        filter: vec![("naip:state".into(), serde_json::json!("ny")), ("gsd".into(), serde_json::json!(0.6))],
        ..range
    };
    let hrefs: Vec<String> = selected(&bytes, &ny).unwrap().into_iter().map(|i| i.href.to_string()).collect();
    assert_eq!(hrefs, ["stac/b.tif"]);
    let integer = Selection { filter: vec![("gsd".into(), serde_json::json!(1))], ..image() };
    let hrefs: Vec<String> =
        selected(&bytes, &integer).unwrap().into_iter().map(|i| i.href.to_string()).collect();
    assert_eq!(hrefs, ["stac/d.tif"]);
}

#[test]
fn a_missing_bbox_is_the_geometrys_extent() {
    let bytes = collection(
        r#"{"id": "g", "geometry": {"type": "Polygon", "coordinates": [[[-75, 40], [-74, 40.5], [-74.5, 41], [-75, 40]]]},
            "properties": {"datetime": "2020-01-01T00:00:00Z"}, "assets": {"image": {"href": "g.tif"}}}"#,
    );
    assert_eq!(selected(&bytes, &image()).unwrap()[0].bbox, [-75.0, 40.0, -74.0, 41.0]);
}

#[test]
fn malformed_items_are_named_with_the_layer_and_the_document() {
    let cases = [
        (
            item("x", "[0, 0, 1]", "2020-01-01T00:00:00Z", "x.tif", ""),
            "layer 'l': /data/stac/items.json: item 'x' has bbox [0.0, 0.0, 1.0]; expected [west, south, east, north] (or 6 numbers with heights) in degrees",
        ),
        (
            item("x", "[0, 0, 1, 1]", "2020-01-01T00:00:00Z", "x.tif", "").replace("\"image\"", "\"visual\""),
            "layer 'l': /data/stac/items.json: item 'x' has no asset 'image' (it has: thumbnail, visual)",
        ),
        (
            item("x", "[0, 95, 1, 96]", "2020-01-01T00:00:00Z", "x.tif", ""),
            "layer 'l': /data/stac/items.json: item 'x' has bbox [0.0, 95.0, 1.0, 96.0]; expected [west, south, east, north] (or 6 numbers with heights) in degrees",
        ),
        (
            r#"{"id": "y", "properties": {}, "assets": {"image": {"href": "y.tif"}}}"#.to_owned(),
            "layer 'l': /data/stac/items.json: item 'y' has neither a bbox nor a geometry",
        ),
    ];
    for (feature, expected) in cases {
        assert_eq!(selected(&collection(&feature), &image()).unwrap_err(), expected);
    }
    let err = selected(b"{\"type\": \"FeatureCollection\", \"features\": [1]}", &image()).unwrap_err();
    assert!(err.starts_with("layer 'l': /data/stac/items.json: not a STAC ItemCollection: "), "{err}");
    let range = Selection { datetime: Some(DateRange::parse("2020-01-01/..").unwrap()), ..image() };
    let bad_time = collection(&item("z", "[0, 0, 1, 1]", "yesterday", "z.tif", ""));
    assert_eq!(
        selected(&bad_time, &range).unwrap_err(),
        "layer 'l': /data/stac/items.json: item 'z' has datetime 'yesterday', not RFC 3339"
    );
}

#[test]
fn datetime_ranges_parse_dates_times_and_open_ends() {
    let day = DateRange::parse("2020-01-01/2020-01-01").unwrap();
    let inside = parse_time("2020-01-01T23:59:59Z", false).unwrap();
    assert!(day.overlaps(inside, inside));
    let next = parse_time("2020-01-02T00:00:00Z", false).unwrap();
    assert!(!day.overlaps(next, next));
    assert!(DateRange::parse("../2020-01-01").unwrap().start.is_none());
    assert_eq!(
        DateRange::parse("2020").unwrap_err(),
        "is '2020'; use START/END (RFC 3339 or YYYY-MM-DD, `..` for open)"
    );
    assert_eq!(
        DateRange::parse("2021-01-01/2020-01-01").unwrap_err(),
        "is '2021-01-01/2020-01-01': its start is after its end"
    );
    assert_eq!(
        DateRange::parse("2021-13-01/..").unwrap_err(),
        "has '2021-13-01', not an RFC 3339 time or a date"
    );
}

#[test]
fn relative_hrefs_of_a_remote_document_join_its_url() {
    let url = Location::Url("https://example.test/stac/naip/items.json".into());
    assert_eq!(
        resolve_href(&url, Path::new("/data"), "./a.tif").as_deref(),
        Some("https://example.test/stac/naip/a.tif")
    );
    assert_eq!(
        resolve_href(&url, Path::new("/data"), "../b/b.tif").as_deref(),
        Some("https://example.test/stac/b/b.tif")
    );
    assert_eq!(resolve_href(&url, Path::new("/data"), "../../../x.tif"), None);
    let s3 = Location::Url("s3://bucket/stac/items.parquet".into());
    assert_eq!(
        resolve_href(&s3, Path::new("/data"), "tiles/a.tif").as_deref(),
        Some("s3://bucket/stac/tiles/a.tif")
    );
}
