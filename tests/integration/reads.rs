//! `GetPoint`, `GetStatistics` and `GetPreview` against rio-tiler 9.4.12's
//! `Reader.point`, `Reader.statistics` (with a box: `Reader.part` in the asset's CRS,
//! then `statistics`) and `Reader.preview` on the same demo files
//! (`tests/parity/reference.py`, modes "point", "statistics" and "preview"), and their
//! bad input.
//!
//! Every number is compared exactly (bit for bit): both sides read the same pixels
//! through the same overviews with the same kernel and follow NumPy's arithmetic.
//!
//! A point outside one asset of several is that asset's OUT_OF_RANGE error, the others
//! answer; outside every asset, the call itself is OUT_OF_RANGE.

use std::path::PathBuf;

use serde_json::{Value, json};
use tessera::pb::v1;
use tonic::{Code, Status, transport::Channel};

use crate::harness::{self, Server, fixtures, parse_npy};

type Client = v1::tile_service_client::TileServiceClient<Channel>;

/// rio-tiler's answer to `case` (the script's JSON line).
fn reference(case: &Value) -> Value {
    serde_json::from_slice(&harness::reference_script(case)).unwrap()
}

fn asset_path(asset: &str) -> PathBuf {
    fixtures().join(asset)
}

/// A float the script printed as its exact repr.
fn float(v: &Value) -> f64 {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a float string")).parse().unwrap()
}

/// A number the script printed as an integer or as a float string.
fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| float(v))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(float).collect()
}

/// Asserts two lists of floats are identical bit for bit (NaN equals NaN).
fn assert_bits(label: &str, ours: &[f64], theirs: &[f64]) {
    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(ours), bits(theirs), "{label}: ours {ours:?}, rio-tiler {theirs:?}");
}

fn dtype_name(dtype: i32) -> String {
    v1::DataType::try_from(dtype).unwrap().as_str_name().trim_start_matches("DATA_TYPE_").to_lowercase()
}

/// A point in utm_rgb_00 and utm_rgb_11 (in its nodata collar), dem_4326 and nir_uint16.
const EVERYWHERE: (f64, f64) = (-75.018, 39.954);
/// A point in utm_rgb_00 and dem_4326, west of utm_rgb_11.
const WEST_OF_11: (f64, f64) = (-75.03, 39.96);

async fn check_point(client: &mut Client, assets: &[&str], (lon, lat): (f64, f64), bands: &[u32]) {
    let label = format!("point ({lon}, {lat}) bands {bands:?}");
    let ours = client
        .get_point(v1::GetPointRequest {
            assets: assets.iter().map(|a| (*a).to_owned()).collect(),
            lon,
            lat,
            bands: bands.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{label}: {e:?}"))
        .into_inner();
    let theirs = reference(&json!({
        "mode": "point",
        "assets": assets.iter().map(|a| asset_path(a)).collect::<Vec<_>>(),
        "lon": lon, "lat": lat, "bands": bands,
    }));
    assert_eq!((ours.lon, ours.lat, ours.assets.len()), (lon, lat, assets.len()), "{label}");
    for ((asset, ours), theirs) in assets.iter().zip(&ours.assets).zip(theirs.as_array().unwrap()) {
        let label = format!("{label} in {asset}");
        assert_eq!(ours.asset, *asset, "{label}");
        if theirs.get("error").is_some() {
            assert_eq!(theirs["error"], "PointOutsideBounds", "{label}");
            let error = ours.error.as_ref().unwrap_or_else(|| panic!("{label}: no error in {ours:?}"));
            assert_eq!(error.code, Code::OutOfRange as i32, "{label}: {error:?}");
            let prefix = format!(
                "asset '{asset}': the point ({lon}, {lat}) is outside the asset, whose lon/lat bounds are ["
            );
            assert!(error.message.starts_with(&prefix), "{label}: {:?}", error.message);
            assert!(ours.values.is_empty(), "{label}");
            continue;
        }
        assert_eq!(ours.error, None, "{label}");
        assert_bits(&label, &ours.values, &floats(&theirs["values"]));
        let valid: Vec<bool> =
            theirs["valid"].as_array().unwrap().iter().map(|v| v.as_bool().unwrap()).collect();
        assert_eq!(ours.valid, valid, "{label}: validity");
        assert_eq!(json!(ours.band_descriptions), theirs["band_descriptions"], "{label}");
        assert_eq!(dtype_name(ours.dtype), theirs["dtype"].as_str().unwrap(), "{label}");
        let expected_bands: Vec<u32> =
            if bands.is_empty() { (1..=ours.values.len() as u32).collect() } else { bands.to_vec() };
        assert_eq!(ours.bands, expected_bands, "{label}");
    }
}

#[tokio::test]
async fn points_match_rio_tiler_in_every_asset_and_a_missed_asset_is_out_of_range() {
    let server = Server::start();
    let mut client = server.client().await;
    let all = ["utm_rgb_00.tif", "utm_rgb_11.tif", "dem_4326.tif", "nir_uint16.tif"];
    check_point(&mut client, &all, EVERYWHERE, &[]).await;
    check_point(&mut client, &["nir_uint16.tif", "utm_rgb_00.tif"], EVERYWHERE, &[3, 1]).await;
    // utm_rgb_11 is missed: its own error, the others answer.
    check_point(&mut client, &["utm_rgb_00.tif", "utm_rgb_11.tif", "dem_4326.tif"], WEST_OF_11, &[]).await;
    let answer = client
        .get_point(v1::GetPointRequest {
            assets: vec!["utm_rgb_11.tif".into(), "utm_rgb_00.tif".into()],
            lon: WEST_OF_11.0,
            lat: WEST_OF_11.1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<(i32, usize)> =
        answer.assets.iter().map(|a| (a.error.as_ref().map_or(0, |e| e.code), a.values.len())).collect();
    assert_eq!(outcomes, vec![(Code::OutOfRange as i32, 0), (0, 3)]);

    // Outside every asset: the call fails with the first asset's error.
    let status = client
        .get_point(v1::GetPointRequest {
            assets: vec!["utm_rgb_11.tif".into(), "dem_4326.tif".into()],
            lon: -70.0,
            lat: 39.96,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().starts_with(
            "asset 'utm_rgb_11.tif': the point (-70, 39.96) is outside the asset, whose lon/lat bounds are [-75.0199"
        ),
        "{:?}",
        status.message()
    );
}

/// One statistics case: the request, and its rio-tiler options.
struct StatisticsCase {
    label: &'static str,
    request: v1::GetStatisticsRequest,
    reference: Value,
}

fn statistics_case(label: &'static str, request: v1::GetStatisticsRequest) -> StatisticsCase {
    let mut reference = json!({
        "mode": "statistics",
        "asset": asset_path(&request.asset),
        "bands": request.bands,
        "max_size": request.max_size,
        // Whole percentiles as integers, as rio-tiler's callers write them (its keys are
        // "percentile_{p}" of the value as given).
        "percentiles": request
            .percentiles
            .iter()
            .map(|p| if p.fract() == 0.0 { json!(*p as i64) } else { json!(p) })
            .collect::<Vec<_>>(),
        "bins": request.histogram_bins,
        "categorical": request.categorical,
        "categories": request.categories,
    });
    if let Some(b) = &request.bbox {
        reference["bbox"] = json!([b.min_x, b.min_y, b.max_x, b.max_y]);
    }
    if let (Some(min), Some(max)) = (request.histogram_min, request.histogram_max) {
        reference["range"] = json!([min, max]);
    }
    if let Some(nodata) = request.nodata {
        reference["nodata"] = json!(nodata);
    }
    StatisticsCase { label, request, reference }
}

async fn check_statistics(client: &mut Client, case: &StatisticsCase) {
    let label = case.label;
    let ours = client
        .get_statistics(case.request.clone())
        .await
        .unwrap_or_else(|e| panic!("{label}: {e:?}"))
        .into_inner();
    let theirs = reference(&case.reference);
    assert_eq!(
        (json!(ours.width), json!(ours.height)),
        (theirs["width"].clone(), theirs["height"].clone()),
        "{label}"
    );
    assert_eq!(ours.asset, case.request.asset, "{label}");
    let expected_percentiles =
        if case.request.percentiles.is_empty() { vec![2.0, 98.0] } else { case.request.percentiles.clone() };
    assert_eq!(ours.percentiles, expected_percentiles, "{label}");
    let bands = theirs["bands"].as_object().unwrap();
    assert_eq!(ours.bands.len(), bands.len(), "{label}: band count");
    let order: Vec<u32> = ours.bands.iter().map(|b| b.band).collect();
    let requested = &case.request.bands;
    assert_eq!(&order, if requested.is_empty() { &order } else { requested }, "{label}: band order");
    for ours in &ours.bands {
        let name = format!("b{}", ours.band);
        let label = format!("{label}, {name}");
        let theirs = &bands[&name];
        assert_eq!(json!(ours.description), theirs["description"], "{label}");
        let fields = |b: &v1::BandStatistics| {
            vec![
                b.min,
                b.max,
                b.mean,
                b.count,
                b.sum,
                b.std,
                b.median,
                b.majority,
                b.minority,
                b.unique,
                b.valid_percent,
                b.masked_pixels,
                b.valid_pixels,
            ]
        };
        let names = [
            "min",
            "max",
            "mean",
            "count",
            "sum",
            "std",
            "median",
            "majority",
            "minority",
            "unique",
            "valid_percent",
            "masked_pixels",
            "valid_pixels",
        ];
        let expected: Vec<f64> = names.iter().map(|n| float(&theirs[*n])).collect();
        for ((name, ours), theirs) in names.iter().zip(fields(ours)).zip(expected) {
            assert_bits(&format!("{label}: {name}"), &[ours], &[theirs]);
        }
        let percentiles: Vec<f64> = ours
            .percentiles
            .iter()
            .zip(&expected_percentiles)
            // rio-tiler names them by the integer part: 99.5 is "percentile_99".
            .map(|(_, p)| float(&theirs[format!("percentile_{}", p.trunc() as i64)]))
            .collect();
        assert_eq!(ours.percentiles.len(), expected_percentiles.len(), "{label}");
        assert_bits(&format!("{label}: percentiles"), &ours.percentiles, &percentiles);
        let histogram = theirs["histogram"].as_array().unwrap();
        let counts: Vec<f64> = histogram[0].as_array().unwrap().iter().map(number).collect();
        let ours_counts: Vec<f64> = ours.histogram_counts.iter().map(|c| *c as f64).collect();
        assert_eq!(ours_counts, counts, "{label}: histogram counts");
        let edges: Vec<f64> = histogram[1].as_array().unwrap().iter().map(number).collect();
        assert_bits(&format!("{label}: histogram values"), &ours.histogram_values, &edges);
    }
}

#[tokio::test]
async fn statistics_match_rio_tiler_for_whole_assets_and_boxes() {
    let server = Server::start();
    let mut client = server.client().await;
    let request = |asset: &str| v1::GetStatisticsRequest { asset: asset.into(), ..Default::default() };
    let bbox = |min_x, min_y, max_x, max_y| Some(v1::Bounds { min_x, min_y, max_x, max_y });
    let cases = [
        statistics_case("float32 asset, defaults", request("dem_4326.tif")),
        statistics_case(
            "float32 asset, percentiles and bins",
            v1::GetStatisticsRequest {
                percentiles: vec![0.0, 25.0, 50.0, 99.5],
                histogram_bins: 20,
                ..request("dem_4326.tif")
            },
        ),
        statistics_case(
            "uint8 asset through an overview",
            v1::GetStatisticsRequest { max_size: 256, ..request("utm_rgb_00.tif") },
        ),
        statistics_case(
            "uint16 bands with a histogram range",
            v1::GetStatisticsRequest {
                bands: vec![4, 2],
                histogram_min: Some(20_000.0),
                histogram_max: Some(30_000.0),
                max_size: 300,
                ..request("nir_uint16.tif")
            },
        ),
        statistics_case(
            "categorical uint8",
            v1::GetStatisticsRequest {
                bands: vec![1],
                categorical: true,
                categories: vec![0.0, 100.0, 200.0, 244.0],
                max_size: 64,
                ..request("utm_rgb_00.tif")
            },
        ),
        statistics_case("alpha band asset", request("rgba_3857.tif")),
        statistics_case(
            "nodata override",
            v1::GetStatisticsRequest { nodata: Some(244.0), max_size: 128, ..request("utm_rgb_00.tif") },
        ),
        statistics_case(
            "box inside a UTM asset",
            v1::GetStatisticsRequest {
                bbox: bbox(-75.035, 39.955, -75.025, 39.965),
                ..request("utm_rgb_00.tif")
            },
        ),
        statistics_case(
            "box inside the float32 asset, percentiles",
            v1::GetStatisticsRequest {
                bbox: bbox(-75.05, 39.88, -74.99, 39.95),
                percentiles: vec![10.0, 90.0],
                ..request("dem_4326.tif")
            },
        ),
    ];
    for case in &cases {
        check_statistics(&mut client, case).await;
    }
    let status = client
        .get_statistics(v1::GetStatisticsRequest {
            bbox: bbox(-70.0, 39.0, -69.0, 40.0),
            ..request("dem_4326.tif")
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert_eq!(
        status.message(),
        "asset 'dem_4326.tif': the area [-70.0, 39.0, -69.0, 40.0] is outside the asset, whose lon/lat bounds are [-75.06, 39.87, -74.96000000000001, 39.97]"
    );
}

async fn check_preview(client: &mut Client, label: &str, request: v1::GetPreviewRequest) {
    let ours = client
        .get_preview(v1::GetPreviewRequest { format: v1::ImageFormat::Npy as i32, ..request.clone() })
        .await
        .unwrap_or_else(|e| panic!("{label}: {e:?}"))
        .into_inner();
    let dir = tempfile::tempdir().unwrap();
    let theirs = reference(&json!({
        "mode": "preview",
        "out": dir.path(),
        "asset": asset_path(&request.asset),
        "bands": request.bands,
        "max_size": request.max_size,
        "width": request.width,
        "height": request.height,
        "expression": request.expression,
        "rescale": request.rescale.iter().map(|r| [r.min, r.max]).collect::<Vec<_>>(),
        "colormap_name": match &request.colormap {
            Some(v1::get_preview_request::Colormap::ColormapName(name)) => Some(name.clone()),
            _ => None,
        },
    }));
    let (data, mask) = (parse_npy(&ours.data), parse_npy(&ours.mask));
    let (ref_data, ref_mask) = (
        parse_npy(&std::fs::read(dir.path().join("data.npy")).unwrap()),
        parse_npy(&std::fs::read(dir.path().join("mask.npy")).unwrap()),
    );
    assert_eq!(ours.content_type, "application/x-npy", "{label}");
    assert_eq!(data.descr, ref_data.descr, "{label}: data type");
    assert_eq!(data.shape, ref_data.shape, "{label}: shape");
    assert_eq!(json!(data.shape), theirs["shape"], "{label}");
    assert_eq!(
        (ours.band_count as usize, ours.height as usize, ours.width as usize),
        (data.shape[0], data.shape[1], data.shape[2]),
        "{label}"
    );
    assert_eq!(dtype_name(ours.dtype), theirs["dtype"].as_str().unwrap(), "{label}");
    let mask_differs =
        mask.values.iter().zip(&ref_mask.values).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(mask_differs, 0, "{label}: {mask_differs} mask pixels differ from rio-tiler");
    assert!(mask.values.iter().any(|m| *m > 0.0), "{label}: no valid pixel");
    // Every value, valid or not: invalid pixels hold what was read too.
    let values_differ =
        data.values.iter().zip(&ref_data.values).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(values_differ, 0, "{label}: {values_differ} values differ from rio-tiler");
    let b = ours.bounds.unwrap();
    assert_bits(
        &format!("{label}: bounds"),
        &[b.min_x, b.min_y, b.max_x, b.max_y],
        &floats(&theirs["bounds"]),
    );
    assert_eq!(ours.crs, theirs["crs"].as_str().unwrap(), "{label}: crs");
}

#[tokio::test]
async fn previews_match_rio_tiler_pixel_for_pixel() {
    let server = Server::start();
    let mut client = server.client().await;
    let request = |asset: &str| v1::GetPreviewRequest { asset: asset.into(), ..Default::default() };
    check_preview(
        &mut client,
        "uint8 UTM asset, max_size 100",
        v1::GetPreviewRequest { max_size: 100, ..request("utm_rgb_00.tif") },
    )
    .await;
    check_preview(&mut client, "float32 asset whole", request("dem_4326.tif")).await;
    check_preview(
        &mut client,
        "uint16 bands, width only",
        v1::GetPreviewRequest { bands: vec![3, 1], width: Some(300), ..request("nir_uint16.tif") },
    )
    .await;
    check_preview(
        &mut client,
        "alpha band, width and height",
        v1::GetPreviewRequest { width: Some(200), height: Some(120), ..request("rgba_3857.tif") },
    )
    .await;
    // Band math, rescale and colormaps, as for a tile.
    check_preview(
        &mut client,
        "NDVI-like expression (float64)",
        v1::GetPreviewRequest {
            expression: "(b4-b1)/(b4+b1)".into(),
            max_size: 200,
            ..request("nir_uint16.tif")
        },
    )
    .await;
    check_preview(
        &mut client,
        "two outputs, rescaled per band",
        v1::GetPreviewRequest {
            expression: "b4-b1;b2+b3".into(),
            rescale: vec![
                v1::RescaleRange { min: -2000.0, max: 2000.0 },
                v1::RescaleRange { min: 0.0, max: 20_000.0 },
            ],
            max_size: 150,
            ..request("nir_uint16.tif")
        },
    )
    .await;
    check_preview(
        &mut client,
        "float32 rescaled and colormapped",
        v1::GetPreviewRequest {
            rescale: vec![v1::RescaleRange { min: 80.0, max: 250.0 }],
            colormap: Some(v1::get_preview_request::Colormap::ColormapName("terrain".into())),
            ..request("dem_4326.tif")
        },
    )
    .await;
    check_preview(
        &mut client,
        "expression, rescale and reversed colormap",
        v1::GetPreviewRequest {
            expression: "where(b1 > 150, b1 - 100, b1 + 20)".into(),
            rescale: vec![v1::RescaleRange { min: 0.0, max: 260.0 }],
            colormap: Some(v1::get_preview_request::Colormap::ColormapName("viridis_r".into())),
            max_size: 300,
            ..request("dem_4326.tif")
        },
    )
    .await;

    // Other formats are encoded like tiles.
    let png = client
        .get_preview(v1::GetPreviewRequest { max_size: 64, ..request("utm_rgb_00.tif") })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((png.content_type.as_str(), png.width, png.height, png.band_count), ("image/png", 64, 64, 3));
    let decoder = png::Decoder::new(std::io::Cursor::new(png.data));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!((info.width, info.height, info.color_type), (64, 64, png::ColorType::Rgba));
}

/// Asserts `status` is INVALID_ARGUMENT about `field` with exactly `message`.
fn assert_invalid(label: &str, status: &Status, field: &str, message: &str) {
    use tonic_types::StatusExt;
    assert_eq!((status.code(), status.message()), (Code::InvalidArgument, message), "{label}");
    let violations = status.get_details_bad_request().unwrap().field_violations;
    assert_eq!(
        violations.iter().map(|v| (v.field.as_str(), v.description.as_str())).collect::<Vec<_>>(),
        vec![(field, message)],
        "{label}"
    );
}

#[tokio::test]
async fn bad_points_are_refused_with_their_field_and_why() {
    let server = Server::start();
    let mut client = server.client().await;
    let point = |lon, lat| v1::GetPointRequest {
        assets: vec!["utm_rgb_00.tif".into()],
        lon,
        lat,
        ..Default::default()
    };
    let points = [
        (
            "no assets",
            v1::GetPointRequest { assets: vec![], ..point(-75.03, 39.96) },
            "assets",
            "no assets: give at least one asset path, or a layer".to_owned(),
        ),
        ("longitude", point(200.0, 39.96), "lon", "lon=200 is not a longitude in [-180, 180]".to_owned()),
        ("latitude", point(-75.03, -91.0), "lat", "lat=-91 is not a latitude in [-90, 90]".to_owned()),
        (
            "band 0",
            v1::GetPointRequest { bands: vec![0], ..point(-75.03, 39.96) },
            "bands",
            "band 0 is invalid: bands are 1-based".to_owned(),
        ),
        (
            "band 9",
            v1::GetPointRequest { bands: vec![9], ..point(-75.03, 39.96) },
            "bands",
            "asset 'utm_rgb_00.tif': band 9 does not exist: the asset has data bands 1..=3".to_owned(),
        ),
        (
            "infinite nodata",
            v1::GetPointRequest { nodata: Some(f64::INFINITY), ..point(-75.03, 39.96) },
            "nodata",
            "nodata must be a finite number or NaN".to_owned(),
        ),
    ];
    for (label, request, field, message) in points {
        let status = client.get_point(request).await.unwrap_err();
        assert_invalid(label, &status, field, &message);
    }
    let status = client
        .get_point(v1::GetPointRequest { assets: vec!["nope.tif".into()], ..point(-75.03, 39.96) })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::NotFound, "asset 'nope.tif' does not exist in the data directory")
    );
}

#[tokio::test]
async fn bad_statistics_requests_are_refused_with_their_field_and_why() {
    let server = Server::start();
    let mut client = server.client().await;
    let statistics_request =
        |asset: &str| v1::GetStatisticsRequest { asset: asset.into(), ..Default::default() };
    let bbox = |min_x, min_y, max_x, max_y| Some(v1::Bounds { min_x, min_y, max_x, max_y });
    let statistics = [
        ("no asset", statistics_request(""), "asset", "no asset: give an asset path".to_owned()),
        (
            "west >= east",
            v1::GetStatisticsRequest { bbox: bbox(-75.0, 39.9, -75.1, 40.0), ..statistics_request("dem_4326.tif") },
            "bbox",
            "bbox [-75, 39.9, -75.1, 40] is empty: min_x must be less than max_x and min_y less than max_y".to_owned(),
        ),
        (
            "latitude in the box",
            v1::GetStatisticsRequest { bbox: bbox(-75.0, 39.9, -74.9, 95.0), ..statistics_request("dem_4326.tif") },
            "bbox",
            "bbox [-75, 39.9, -74.9, 95] is not a lon/lat box: min_x and max_x in [-180, 180], min_y and max_y in [-90, 90]".to_owned(),
        ),
        (
            "percentile",
            v1::GetStatisticsRequest { percentiles: vec![50.0, 120.0], ..statistics_request("dem_4326.tif") },
            "percentiles",
            "percentile 120 is not in [0, 100]".to_owned(),
        ),
        (
            "max_size",
            v1::GetStatisticsRequest { max_size: 5000, ..statistics_request("dem_4326.tif") },
            "max_size",
            "max_size=5000 is outside 1..=4096 (0 means 1024)".to_owned(),
        ),
        (
            "bins",
            v1::GetStatisticsRequest { histogram_bins: 20_000, ..statistics_request("dem_4326.tif") },
            "histogram_bins",
            "histogram_bins=20000 is outside 1..=10000 (0 means 10)".to_owned(),
        ),
        (
            "half a range",
            v1::GetStatisticsRequest { histogram_max: Some(3.0), ..statistics_request("dem_4326.tif") },
            "histogram_min",
            "histogram_min and histogram_max go together: give both or neither".to_owned(),
        ),
        (
            "warp-only kernel",
            v1::GetStatisticsRequest { resampling: v1::Resampling::Q1 as i32, ..statistics_request("dem_4326.tif") },
            "resampling",
            "resampling q1 is not available for a decimated read; use one of nearest, bilinear, cubic, cubic_spline, lanczos, average, mode, gauss".to_owned(),
        ),
        (
            "unknown kernel",
            v1::GetStatisticsRequest { resampling: 99, ..statistics_request("dem_4326.tif") },
            "resampling",
            "resampling=99 is not a known kernel; use one of nearest, bilinear, cubic, cubic_spline, lanczos, average, mode, rms; gauss (resampling only); max, min, med, q1, q3, sum (reproject only)".to_owned(),
        ),
        (
            "categories without categorical",
            v1::GetStatisticsRequest { categories: vec![1.0], ..statistics_request("dem_4326.tif") },
            "categories",
            "categories apply only with categorical=true".to_owned(),
        ),
    ];
    for (label, request, field, message) in statistics {
        let status = client.get_statistics(request).await.unwrap_err();
        assert_invalid(label, &status, field, &message);
    }
}

const EXPRESSION_SYNTAX: &str =
    "expression at column 5 (1-based): expected an operand after '+' at column 4, found '*'";
const EXPRESSION_BAND: &str = "expression at column 1 (1-based): band b4 does not exist: the asset has 3 bands (b1 to b3) (asset 'utm_rgb_00.tif' has data bands 1..=3)";
const UNKNOWN_COLORMAP: &str =
    "unknown colormap 'viridiss': did you mean viridis, viridis_r? (211 named colormaps exist)";

#[tokio::test]
async fn bad_previews_are_refused_with_their_field_and_why() {
    let server = Server::start();
    let mut client = server.client().await;
    let preview = |asset: &str| v1::GetPreviewRequest { asset: asset.into(), ..Default::default() };
    let previews = [
        (
            "width 0",
            v1::GetPreviewRequest { width: Some(0), ..preview("dem_4326.tif") },
            "width",
            "width=0 is outside 1..=4096",
        ),
        (
            "height",
            v1::GetPreviewRequest { height: Some(4097), ..preview("dem_4326.tif") },
            "height",
            "height=4097 is outside 1..=4096",
        ),
        (
            "band 4",
            v1::GetPreviewRequest { bands: vec![4], ..preview("utm_rgb_00.tif") },
            "bands",
            "band 4 does not exist in asset 'utm_rgb_00.tif', which has data bands 1..=3",
        ),
        (
            "float32 as PNG",
            preview("dem_4326.tif"),
            "format",
            "PNG cannot carry float32 data: PNG takes uint8 or uint16; use format NPY for float32",
        ),
        (
            "rescale count",
            v1::GetPreviewRequest {
                rescale: vec![v1::RescaleRange { min: 0.0, max: 1.0 }; 2],
                ..preview("utm_rgb_00.tif")
            },
            "rescale",
            "2 rescale ranges for 3 bands: give one range for all bands or one per band",
        ),
        (
            "quality",
            v1::GetPreviewRequest { quality: 101, ..preview("utm_rgb_00.tif") },
            "quality",
            "quality=101 is outside 1..=100 (0 means 85)",
        ),
        (
            "expression and bands",
            v1::GetPreviewRequest { expression: "b1*2".into(), bands: vec![1], ..preview("utm_rgb_00.tif") },
            "expression",
            "give either bands or an expression, not both (the expression names its bands)",
        ),
        (
            "bad expression",
            v1::GetPreviewRequest { expression: "b1 +* 2".into(), ..preview("utm_rgb_00.tif") },
            "expression",
            EXPRESSION_SYNTAX,
        ),
        (
            "expression band 4",
            v1::GetPreviewRequest { expression: "b4/b1".into(), ..preview("utm_rgb_00.tif") },
            "expression",
            EXPRESSION_BAND,
        ),
        (
            "colormap of three bands",
            v1::GetPreviewRequest {
                colormap: Some(v1::get_preview_request::Colormap::ColormapName("viridis".into())),
                ..preview("utm_rgb_00.tif")
            },
            "colormap",
            "a colormap applies to one band; the preview has 3 (choose one band with `bands` or an expression)",
        ),
        (
            "unknown colormap",
            v1::GetPreviewRequest {
                colormap: Some(v1::get_preview_request::Colormap::ColormapName("viridiss".into())),
                bands: vec![1],
                ..preview("utm_rgb_00.tif")
            },
            "colormap",
            UNKNOWN_COLORMAP,
        ),
    ];
    for (label, request, field, message) in previews {
        let status = client.get_preview(request).await.unwrap_err();
        assert_invalid(label, &status, field, message);
    }
    // A rescaled float32 preview is uint8, and fits PNG.
    let rescaled = client
        .get_preview(v1::GetPreviewRequest {
            rescale: vec![v1::RescaleRange { min: 80.0, max: 250.0 }],
            max_size: 32,
            ..preview("dem_4326.tif")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (rescaled.content_type.as_str(), rescaled.dtype, rescaled.width, rescaled.height),
        ("image/png", v1::DataType::Uint8 as i32, 32, 32)
    );
}
