//! Bad requests get the exact gRPC code and a message that names the problem; invalid
//! arguments carry a `google.rpc.BadRequest` naming the field; and the server that
//! refused them still renders a correct tile afterwards.

use tessera::pb::v1::{self, tile_service_client::TileServiceClient};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

use crate::harness::{self, Server, tile_at, tile_request};

/// The asset every "is the server still fine" check renders.
const GOOD_ASSET: &str = "utm_rgb_00.tif";

/// Sends `request` and returns the error it must fail with.
async fn tile_error(
    client: &mut TileServiceClient<Channel>,
    label: &str,
    request: v1::GetTileRequest,
) -> Status {
    match client.get_tile(request).await {
        Ok(tile) => {
            let tile = tile.into_inner();
            panic!(
                "{label}: expected an error, got a {}x{} {} tile (asset reports {:?})",
                tile.width, tile.height, tile.content_type, tile.assets
            )
        }
        Err(status) => status,
    }
}

/// Asserts the code and that the message contains `fragment`.
fn assert_status(label: &str, status: &Status, code: Code, fragment: &str) {
    assert_eq!(status.code(), code, "{label}: wrong code; message: {:?}", status.message());
    assert!(
        status.message().contains(fragment),
        "{label}: message {:?} does not contain {fragment:?}",
        status.message()
    );
}

/// Asserts an `INVALID_ARGUMENT` whose message contains `fragment` and whose
/// `google.rpc.BadRequest` detail has a violation of `field` with the same description.
fn assert_invalid(label: &str, status: &Status, field: &str, fragment: &str) {
    assert_status(label, status, Code::InvalidArgument, fragment);
    let bad_request = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("{label}: no google.rpc.BadRequest detail in {status:?}"));
    let fields: Vec<&str> = bad_request.field_violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, vec![field], "{label}: field violations {:?}", bad_request.field_violations);
    assert!(
        bad_request.field_violations[0].description.contains(fragment),
        "{label}: violation description {:?} does not contain {fragment:?}",
        bad_request.field_violations[0].description
    );
}

/// Asserts the server still renders zoom 12 tile 1194/1551 of the good asset as a
/// 256 x 256 RGB PNG made from that asset.
async fn assert_serves_a_good_tile(server: &Server) {
    let tile = server
        .client()
        .await
        .get_tile(tile_request(12, 1194, 1551, &[GOOD_ASSET]))
        .await
        .unwrap_or_else(|e| panic!("the good tile failed after the bad requests: {e:?}"))
        .into_inner();
    assert_eq!(tile.content_type, "image/png");
    assert_eq!((tile.width, tile.height, tile.band_count), (256, 256, 3));
    assert!(tile.data.starts_with(b"\x89PNG\r\n\x1a\n"), "the good tile is not a PNG");
    let outcomes: Vec<i32> = tile.assets.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, vec![v1::AssetOutcome::Used as i32]);
}

#[tokio::test]
async fn out_of_range_coordinates_and_tile_sizes_are_invalid_argument_naming_the_range() {
    let server = Server::start();
    let mut client = server.client().await;

    let status = tile_error(&mut client, "z=31", tile_request(31, 0, 0, &[GOOD_ASSET])).await;
    assert_invalid("z=31", &status, "z", "z=31 is outside 0..=24 for WebMercatorQuad");

    let status = tile_error(&mut client, "x=4 at z=2", tile_request(2, 4, 1, &[GOOD_ASSET])).await;
    assert_invalid("x=4 at z=2", &status, "x", "x=4 is outside 0..=3");

    let status = tile_error(&mut client, "y=4 at z=2", tile_request(2, 1, 4, &[GOOD_ASSET])).await;
    assert_invalid("y=4 at z=2", &status, "y", "y=4 is outside 0..=3");

    let mut request = tile_request(12, 1194, 1551, &[GOOD_ASSET]);
    request.tile_size = 100_000;
    let status = tile_error(&mut client, "tile_size=100000", request).await;
    assert_invalid("tile_size=100000", &status, "tile_size", "tile_size=100000 is outside 1..=1024");

    // 0 is not out of range: it means the default, 256.
    let mut request = tile_request(12, 1194, 1551, &[GOOD_ASSET]);
    request.tile_size = 0;
    let tile = client.get_tile(request).await.expect("tile_size=0 means 256").into_inner();
    assert_eq!((tile.width, tile.height), (256, 256));
    assert_eq!(tile.content_type, "image/png");

    assert_serves_a_good_tile(&server).await;
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument_naming_the_field() {
    let server = Server::start();
    let mut client = server.client().await;

    let status = tile_error(&mut client, "no assets", tile_request(12, 1194, 1551, &[])).await;
    assert_invalid("no assets", &status, "assets", "no assets");

    let mut request = tile_request(12, 1194, 1551, &[GOOD_ASSET]);
    request.tile_matrix_set = "EuropeanETRS89LAEAQuad".into();
    let status = tile_error(&mut client, "unknown tile matrix set", request).await;
    assert_invalid(
        "unknown tile matrix set",
        &status,
        "tile_matrix_set",
        "is not served here; use one of WebMercatorQuad, WorldCRS84Quad",
    );
    assert!(status.message().contains("EuropeanETRS89LAEAQuad"), "{:?}", status.message());

    let mut request = tile_request(12, 1194, 1551, &[GOOD_ASSET]);
    request.format = 99;
    let status = tile_error(&mut client, "format=99", request).await;
    assert_invalid("format=99", &status, "format", "format=99");

    let mut request = tile_request(12, 1194, 1551, &[GOOD_ASSET]);
    request.bands = vec![9];
    let status = tile_error(&mut client, "band 9", request).await;
    assert_invalid("band 9", &status, "bands", "band 9 does not exist");
    assert!(status.message().contains(GOOD_ASSET), "{:?}", status.message());

    assert_serves_a_good_tile(&server).await;
}

#[tokio::test]
async fn data_a_format_cannot_carry_is_invalid_argument_naming_format_and_type() {
    let server = Server::start();
    let mut client = server.client().await;

    // The DEM spans lon -75.06..-74.96, lat 39.87..39.97.
    let (x, y) = tile_at(-75.0, 39.92, 13);
    let mut request = tile_request(13, x, y, &["dem_4326.tif"]);
    request.format = v1::ImageFormat::Png as i32;
    let status = tile_error(&mut client, "float32 to PNG", request).await;
    assert_invalid("float32 to PNG", &status, "format", "PNG cannot carry float32");

    let mut request = tile_request(12, 1194, 1551, &["nir_uint16.tif"]);
    request.format = v1::ImageFormat::Jpeg as i32;
    request.bands = vec![1, 2, 3, 4];
    let status = tile_error(&mut client, "4 uint16 bands to JPEG", request).await;
    assert_invalid("4 uint16 bands to JPEG", &status, "format", "JPEG cannot carry");

    assert_serves_a_good_tile(&server).await;
}

#[tokio::test]
async fn missing_assets_are_not_found_for_tiles_and_asset_info() {
    let server = Server::start();
    let mut client = server.client().await;

    let status = tile_error(&mut client, "nope.tif", tile_request(12, 1194, 1551, &["nope.tif"])).await;
    assert_status("nope.tif", &status, Code::NotFound, "does not exist");
    assert!(status.message().contains("'nope.tif'"), "{:?}", status.message());

    let status = client
        .get_asset_info(v1::GetAssetInfoRequest { asset: "nope.tif".into() })
        .await
        .expect_err("GetAssetInfo of a missing asset succeeded");
    assert_status("GetAssetInfo nope.tif", &status, Code::NotFound, "does not exist");
    assert!(status.message().contains("'nope.tif'"), "{:?}", status.message());

    assert_serves_a_good_tile(&server).await;
}

#[tokio::test]
async fn unreadable_assets_are_failed_precondition_naming_the_asset() {
    let server = Server::start();
    let mut client = server.client().await;

    for asset in ["header_cut.tif", "not_a_tiff.tif"] {
        let status = tile_error(&mut client, asset, tile_request(12, 1194, 1551, &[asset])).await;
        assert_status(asset, &status, Code::FailedPrecondition, &format!("'{asset}'"));
    }

    let (x, y) = harness::truncated_read_tile(&mut client).await;
    let status = tile_error(&mut client, "truncated.tif", tile_request(17, x, y, &["truncated.tif"])).await;
    assert_status(
        &format!("truncated.tif at 17/{x}/{y}"),
        &status,
        Code::FailedPrecondition,
        "'truncated.tif'",
    );

    assert_serves_a_good_tile(&server).await;
}

#[tokio::test]
async fn asset_paths_that_escape_the_data_directory_are_permission_denied() {
    let server = Server::start();
    let mut client = server.client().await;

    for asset in [
        "../outside.tif",
        "escape.tif",
        "/etc/passwd",
        "/vsicurl/http://example.com/a.tif",
        "https://example.com/a.tif",
        "GTIFF_DIR:1:utm_rgb_00.tif",
    ] {
        let status = tile_error(&mut client, asset, tile_request(12, 1194, 1551, &[asset])).await;
        assert_status(asset, &status, Code::PermissionDenied, "is not allowed");
        assert!(status.message().contains(&format!("'{asset}'")), "{asset}: {:?}", status.message());

        let status = client
            .get_asset_info(v1::GetAssetInfoRequest { asset: asset.into() })
            .await
            .expect_err("GetAssetInfo of an escaping path succeeded");
        assert_status(&format!("GetAssetInfo {asset}"), &status, Code::PermissionDenied, "is not allowed");
    }

    assert_serves_a_good_tile(&server).await;
}

/// Bad rendering options over gRPC: expressions with the column of the mistake, and
/// the other options naming what is allowed. Each exact message, code and field.
#[tokio::test]
async fn bad_rendering_options_name_the_field_and_the_position() {
    let server = Server::start();
    let mut client = server.client().await;
    let with = |f: &dyn Fn(&mut v1::GetTileRequest)| {
        let mut r = tile_request(12, 1194, 1551, &[GOOD_ASSET]);
        f(&mut r);
        r
    };
    let expression = |text: &'static str| move |r: &mut v1::GetTileRequest| r.expression = text.into();
    let cases: Vec<(&str, v1::GetTileRequest, &str, &str)> = vec![
        ("unclosed", with(&expression("(b1+b2")), "expression", "at column 7 (1-based)"),
        ("trailing operator", with(&expression("b1+")), "expression", "at column 4 (1-based)"),
        ("unknown function", with(&expression("b1+foo(b2)")), "expression", "at column 4 (1-based)"),
        ("unknown name", with(&expression("b1*c2")), "expression", "at column 4 (1-based)"),
        ("band 0", with(&expression("b0+1")), "expression", "at column 1 (1-based)"),
        ("second block", with(&expression("b1;b2+*b3")), "expression", "at column 7 (1-based)"),
        ("band beyond the asset", with(&expression("b1+b4")), "expression", "at column 4 (1-based)"),
        ("too long", with(&|r| r.expression = "b1+".repeat(400) + "b1"), "expression", "1024"),
        (
            "expression and bands",
            with(&|r| {
                r.expression = "b1".into();
                r.bands = vec![1];
            }),
            "expression",
            "not both",
        ),
        (
            "inverted rescale",
            with(&|r| r.rescale = vec![v1::RescaleRange { min: 5.0, max: 1.0 }]),
            "rescale",
            "min must be less than max",
        ),
        (
            "rescale count",
            with(&|r| r.rescale = vec![v1::RescaleRange { min: 0.0, max: 1.0 }; 2]),
            "rescale",
            "2 rescale ranges for 3 bands",
        ),
        (
            "colormap on 3 bands",
            with(&|r| r.colormap = Some(v1::get_tile_request::Colormap::ColormapName("viridis".into()))),
            "colormap",
            "a colormap applies to one band; the tile has 3",
        ),
        (
            "unknown colormap",
            with(&|r| {
                r.expression = "b1".into();
                r.colormap = Some(v1::get_tile_request::Colormap::ColormapName("Viridis".into()));
            }),
            "colormap",
            "did you mean viridis",
        ),
        ("buffer", with(&|r| r.buffer = 0.3), "buffer", "must be a multiple of 0.5"),
        ("padding", with(&|r| r.padding = 65), "padding", "padding=65 is outside 0..=64"),
        (
            "warp-only read kernel",
            with(&|r| r.resampling = v1::Resampling::Max as i32),
            "resampling",
            "ask for it as reproject",
        ),
        (
            "read-only warp kernel",
            with(&|r| r.reproject = v1::Resampling::Gauss as i32),
            "reproject",
            "not a warp kernel",
        ),
        (
            "lastbandlow on one band",
            with(&|r| {
                r.bands = vec![1];
                r.pixel_selection = v1::PixelSelection::Lastbandlow as i32;
            }),
            "pixel_selection",
            "needs at least 2 bands",
        ),
        (
            "unknown selection",
            with(&|r| r.pixel_selection = 42),
            "pixel_selection",
            "pixel_selection=42 is not a known value",
        ),
    ];
    for (label, request, field, fragment) in cases {
        let status = tile_error(&mut client, label, request).await;
        assert_invalid(label, &status, field, fragment);
    }
    assert_serves_a_good_tile(&server).await;
}
