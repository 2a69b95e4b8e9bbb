//! NPY tiles equal the `gdalwarp` CLI's output for the same bounds and options, value
//! for value, across zooms (overview levels included), tile edges, sizes and kernels.

use tessera::pb::v1;

use crate::harness::{self, Server, assert_matches_oracle, gdalwarp, npy_tile, tile_at};

/// Tiles at each zoom that contain the asset's centre and its north-west and
/// south-east corners (so edges, where the mask matters, are covered).
async fn tiles_over(server: &Server, asset: &str, zooms: &[u32]) -> Vec<(u32, u32, u32)> {
    let info = server
        .client()
        .await
        .get_asset_info(v1::GetAssetInfoRequest { asset: asset.into() })
        .await
        .unwrap()
        .into_inner();
    let g = info.geographic_bounds.unwrap();
    let inset = |a: f64, b: f64| a + (b - a) * 0.02;
    let points = [
        (f64::midpoint(g.min_x, g.max_x), f64::midpoint(g.min_y, g.max_y)),
        (inset(g.min_x, g.max_x), inset(g.max_y, g.min_y)),
        (inset(g.max_x, g.min_x), inset(g.min_y, g.max_y)),
    ];
    let mut tiles = Vec::new();
    for z in zooms {
        for (lon, lat) in points {
            let (x, y) = tile_at(lon, lat, *z);
            if !tiles.contains(&(*z, x, y)) {
                tiles.push((*z, x, y));
            }
        }
    }
    tiles
}

struct Case<'a> {
    assets: &'a [&'a str],
    tms: &'a str,
    z: u32,
    x: u32,
    y: u32,
    size: u32,
    resampling: v1::Resampling,
    bands: Vec<u32>,
}

async fn check(server: &Server, case: &Case<'_>) {
    let kernel = match case.resampling {
        v1::Resampling::Bilinear => "bilinear",
        _ => "near",
    };
    let label = format!(
        "{:?} {} {}/{}/{} size {} {kernel} bands {:?}",
        case.assets, case.tms, case.z, case.x, case.y, case.size, case.bands
    );
    let mut request = harness::tile_request(case.z, case.x, case.y, case.assets);
    request.tile_matrix_set = case.tms.to_owned();
    request.tile_size = case.size;
    // The oracle's one kernel is both: its `-r` (the warp) and its overview choice
    // (oversampling only for a nearest read). An unset `reproject` would warp with
    // nearest, as rio-tiler does.
    request.resampling = case.resampling as i32;
    request.reproject = case.resampling as i32;
    request.format = v1::ImageFormat::Npy as i32;
    request.bands = case.bands.clone();
    let tile =
        server.client().await.get_tile(request).await.unwrap_or_else(|e| panic!("{label}: {e}")).into_inner();
    let (data, mask) = npy_tile(&tile);
    let mut oracle = gdalwarp(case.assets, case.tms, case.z, case.x, case.y, case.size, kernel);
    if !case.bands.is_empty() {
        let n = (case.size * case.size) as usize;
        oracle.values = case
            .bands
            .iter()
            .flat_map(|b| oracle.values[(*b as usize - 1) * n..*b as usize * n].to_vec())
            .collect();
        oracle.bands = case.bands.len();
    }
    assert_matches_oracle(&label, &data, &mask, &oracle, case.size as usize);
}

async fn check_tiles(server: &Server, asset: &str, zooms: &[u32], bands: &[u32]) -> usize {
    let tiles = tiles_over(server, asset, zooms).await;
    for (i, (z, x, y)) in tiles.iter().enumerate() {
        let case = Case {
            assets: &[asset],
            tms: "WebMercatorQuad",
            z: *z,
            x: *x,
            y: *y,
            size: if i % 2 == 0 { 256 } else { 512 },
            resampling: if i % 3 == 1 { v1::Resampling::Bilinear } else { v1::Resampling::Nearest },
            bands: bands.to_vec(),
        };
        check(server, &case).await;
    }
    tiles.len()
}

#[tokio::test]
async fn utm_rgb_tiles_equal_gdalwarp_from_overviews_to_full_resolution() {
    let server = Server::start();
    // z11-z13 read overviews of a 2 m asset; z16-z17 full resolution.
    let n = check_tiles(&server, "utm_rgb_00.tif", &[11, 12, 13, 14, 15, 16, 17], &[]).await;
    assert!(n >= 14, "only {n} tiles checked");
}

#[tokio::test]
async fn float32_dem_tiles_with_nodata_equal_gdalwarp() {
    let server = Server::start();
    let n = check_tiles(&server, "dem_4326.tif", &[11, 12, 13, 14, 15], &[]).await;
    assert!(n >= 8, "only {n} tiles checked");
}

#[tokio::test]
async fn rgba_tiles_use_alpha_as_the_mask_and_equal_gdalwarp() {
    let server = Server::start();
    let n = check_tiles(&server, "rgba_3857.tif", &[12, 13, 14], &[]).await;
    assert!(n >= 4, "only {n} tiles checked");
}

#[tokio::test]
async fn uint16_band_selection_equals_gdalwarp_bands() {
    let server = Server::start();
    let n = check_tiles(&server, "nir_uint16.tif", &[13, 15], &[4, 1]).await;
    assert!(n >= 3, "only {n} tiles checked");
}

#[tokio::test]
async fn world_crs84_tiles_equal_gdalwarp() {
    let server = Server::start();
    // The DEM spans lon -75.06..-74.96, lat 39.87..39.97.
    for (z, size, resampling) in
        [(9u32, 256u32, v1::Resampling::Nearest), (11, 512, v1::Resampling::Bilinear)]
    {
        let tiles_per_degree = f64::from(1u32 << z) / 180.0;
        let x = ((-75.0 + 180.0) * tiles_per_degree).floor() as u32;
        let y = ((90.0 - 39.92) * tiles_per_degree).floor() as u32;
        let case = Case {
            assets: &["dem_4326.tif"],
            tms: "WorldCRS84Quad",
            z,
            x,
            y,
            size,
            resampling,
            bands: vec![],
        };
        check(&server, &case).await;
    }
}

#[tokio::test]
async fn first_wins_mosaic_of_six_assets_equals_the_first_valid_pixel_of_each_gdalwarp() {
    let server = Server::start_with(harness::ServerOptions { workers: 3, ..Default::default() });
    let centre = (-75.0156, 39.9594);
    let mut checked = 0;
    for (z, size) in [(12u32, 512u32), (13, 256), (14, 256), (15, 512)] {
        let (x, y) = tile_at(centre.0, centre.1, z);
        let case = Case {
            assets: &harness::UTM,
            tms: "WebMercatorQuad",
            z,
            x,
            y,
            size,
            resampling: v1::Resampling::Nearest,
            bands: vec![],
        };
        check(&server, &case).await;
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[tokio::test]
async fn a_zoom_12_mosaic_reports_every_asset_used() {
    let server = Server::start();
    let tile = server
        .client()
        .await
        .get_tile(harness::tile_request(12, 1194, 1551, &harness::UTM))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tile.content_type, "image/png");
    let outcomes: Vec<_> = tile.assets.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, vec![v1::AssetOutcome::Used as i32; 6]);
    assert_eq!((tile.width, tile.height, tile.band_count), (256, 256, 3));
    assert_eq!(tile.dtype, v1::DataType::Uint8 as i32);
}

/// A tile matrix set from an OGC TMS 2.0 JSON file (a UTM grid, in the assets' own CRS):
/// listed with its exact numbers, its tiles equal gdalwarp's on the same grid, its
/// coordinates are checked against its own matrices, and a tile away from every asset
/// is NOT_FOUND although the front cannot project the grid to lon/lat.
#[tokio::test]
async fn a_custom_tile_matrix_set_from_a_file_is_listed_and_served() {
    let server = Server::start_with(harness::ServerOptions {
        args: vec!["--tile-matrix-set".into(), harness::custom_tms_file().display().to_string()],
        ..Default::default()
    });
    let mut client = server.client().await;
    let list = client.list_tile_matrix_sets(v1::ListTileMatrixSetsRequest {}).await.unwrap().into_inner();
    let ids: Vec<&str> = list.tile_matrix_sets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["WebMercatorQuad", "WorldCRS84Quad", "UTM18NTest"]);
    let utm = &list.tile_matrix_sets[2];
    assert_eq!(
        (utm.crs.as_str(), utm.min_zoom, utm.max_zoom, utm.tile_size, utm.custom),
        ("EPSG:32618", 0, 1, 256, true)
    );
    assert_eq!(
        utm.bounds,
        Some(v1::Bounds {
            min_x: 480_000.0,
            min_y: 4_430_000.0 - 40.0 * 1024.0,
            max_x: 480_000.0 + 40.0 * 1024.0,
            max_y: 4_430_000.0
        })
    );
    assert_eq!(utm.geographic_bounds, None);
    let web = &list.tile_matrix_sets[0];
    assert_eq!((web.crs.as_str(), web.max_zoom, web.custom), ("EPSG:3857", 24, false));
    assert!((web.geographic_bounds.unwrap().max_y - 85.051_128_779_806_59).abs() < 1e-9);

    // z1 (33, 12): E 496 896..497 408, N 4 423 344..4 423 856, inside utm_rgb_00.
    for (assets, size) in [(&["utm_rgb_00.tif"][..], 256), (&["utm_rgb_00.tif", "utm_rgb_01.tif"][..], 128)] {
        let case = Case {
            assets,
            tms: "UTM18NTest",
            z: 1,
            x: 33,
            y: 12,
            size,
            resampling: v1::Resampling::Nearest,
            bands: vec![],
        };
        check(&server, &case).await;
    }

    let refused = |request: v1::GetTileRequest| {
        let mut client = client.clone();
        async move { client.get_tile(request).await.unwrap_err() }
    };
    let mut request = harness::tile_request(2, 0, 0, &["utm_rgb_00.tif"]);
    request.tile_matrix_set = "UTM18NTest".into();
    let e = refused(request.clone()).await;
    assert_eq!(
        (e.code(), e.message()),
        (tonic::Code::InvalidArgument, "z=2 is outside 0..=1 for UTM18NTest")
    );
    request.tile_matrix_set = "UTM18N".into();
    let e = refused(request.clone()).await;
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("use one of WebMercatorQuad, WorldCRS84Quad, UTM18NTest"),
        "{}",
        e.message()
    );
    let mut far = harness::tile_request(1, 0, 0, &["utm_rgb_00.tif"]);
    far.tile_matrix_set = "UTM18NTest".into();
    let e = refused(far).await;
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    assert!(e.message().contains("is outside the bounds of every asset"), "{}", e.message());
}
