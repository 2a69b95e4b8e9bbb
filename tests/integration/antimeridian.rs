//! Assets across the antimeridian: a UTM zone 60 scene over the Aleutians whose lon/lat
//! bounds wrap (west 179.77 > east -179.77). Tiles on both sides of ±180° have pixels,
//! the same as rio-tiler's, whether asked for by asset or through a footprint layer;
//! tiles away from it answer NOT_FOUND as any tile outside every asset does.

use std::path::{Path, PathBuf};

use gdal::{DriverManager, raster::Buffer, spatial_ref::SpatialRef};
use serde_json::json;
use tessera::pb::v1::{self, tile_service_client::TileServiceClient};
use tonic::{Code, transport::Channel};

use crate::harness::{self, BIN, Npy, Server, ServerOptions, differing_pixels, npy_tile, parse_npy};

type Client = TileServiceClient<Channel>;

/// The scene's size in pixels (square) and its pixel size in metres.
const SIZE: usize = 512;
const PIXEL: f64 = 60.0;
/// Its north-west corner in EPSG:32660: 179.79°E, 51.65°N. 180° runs down the middle
/// (easting 708,217 m at 51.5°N).
const ORIGIN: (f64, f64) = (693_000.0, 5_725_720.0);

/// GDAL 3.6.2's `OCTTransformBounds` of the scene (densified 21 points an edge), as
/// Python's `osgeo` prints it: west > east.
const LON_LAT_BOUNDS: [f64; 4] = [179.773_032, 51.362_134, -179.766_800, 51.649_302];

/// Tiles with pixels of the scene on either side of ±180°, at zooms 7 (the scene is
/// about 40 x 40 of the tile's pixels), 9, 10 (tile pixels of 95 m here, the scene's
/// are 60 m) and 12 (tiles inside the scene, 0.09° from the antimeridian).
///
/// No zoom reads the overview, in rio-tiler or in Tessera: both take the asset's
/// resolution in EPSG:3857 from GDAL's suggested warp output of the whole scene, and
/// for a scene across the antimeridian that output spans the whole world (725 x 1
/// pixels of 55 km, GDAL 3.6.2 and rasterio's 3.10.3 alike). The read then runs at the
/// tile's own resolution, warped from full resolution. Tessera follows rio-tiler there,
/// so the pixels match exactly; the cost is a full-resolution read for low-zoom tiles.
const WEST_OF_180: [(u32, u32, u32); 4] = [(7, 127, 42), (9, 511, 170), (10, 1023, 340), (12, 4094, 1361)];
const EAST_OF_180: [(u32, u32, u32); 4] = [(7, 0, 42), (9, 0, 170), (10, 0, 340), (12, 1, 1361)];
/// Tiles on the scene's row that miss it: next to it on either side, and half a world
/// away.
const MISSING: [(u32, u32, u32); 3] = [(10, 1021, 340), (10, 2, 340), (10, 512, 340)];

/// The scene's value of `band` at pixel (`col`, `row`).
fn pixel_value(band: usize, col: usize, row: usize) -> usize {
    match band {
        1 => col % 256,
        2 => row % 256,
        _ => (7 * col + 3 * row) % 251 + 1,
    }
}

/// Points in the scene 0.1° either side of the antimeridian.
const POINTS: [(f64, f64); 2] = [(179.9, 51.5), (-179.9, 51.5)];

/// Checks a point answer holds the scene's own pixel values at the pixel it names.
fn assert_scene_pixel(point: &v1::AssetPoint, label: &str) {
    assert_eq!(point.error, None, "{label}");
    let (col, row) = (point.column as usize, point.row as usize);
    let expected: Vec<f64> = (1..=3).map(|b| pixel_value(b, col, row) as f64).collect();
    assert_eq!((point.values.clone(), point.valid.clone()), (expected, vec![true; 3]), "{label}");
}

/// A directory of its own under the data directory, holding the scene.
struct SceneDir {
    path: PathBuf,
    /// `path` relative to the data directory.
    relative: String,
}

impl SceneDir {
    /// Writes the scene: three uint8 bands (column, row and a mix of both, so a pixel
    /// taken from the wrong place shows), no nodata, a tiled COG with one overview
    /// (nearest), as `gdal_translate -of COG` makes it.
    fn new(label: &str) -> Self {
        let relative = format!("antimeridian-{label}-{}", std::process::id());
        let path = harness::fixtures().join(&relative);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        let plain = path.join("plain.tif");
        {
            let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
            let mut ds = driver.create_with_band_type::<u8, _>(&plain, SIZE, SIZE, 3).unwrap();
            ds.set_geo_transform(&[ORIGIN.0, PIXEL, 0.0, ORIGIN.1, 0.0, -PIXEL]).unwrap();
            ds.set_spatial_ref(&SpatialRef::from_epsg(32660).unwrap()).unwrap();
            for band in 1..=3 {
                let values: Vec<u8> = (0..SIZE * SIZE)
                    .map(|p| u8::try_from(pixel_value(band, p % SIZE, p / SIZE)).unwrap())
                    .collect();
                let mut buffer = Buffer::new((SIZE, SIZE), values);
                ds.rasterband(band).unwrap().write((0, 0), (SIZE, SIZE), &mut buffer).unwrap();
            }
        }
        let status = std::process::Command::new("gdal_translate")
            .args(["-q", "-of", "COG", "-co", "BLOCKSIZE=256", "-co", "RESAMPLING=NEAREST"])
            .arg(&plain)
            .arg(path.join("aleutian_utm60.tif"))
            .status()
            .unwrap();
        assert!(status.success(), "gdal_translate -of COG failed");
        std::fs::remove_file(plain).unwrap();
        Self { path, relative }
    }

    /// The name requests use for the scene.
    fn asset(&self) -> String {
        format!("{}/aleutian_utm60.tif", self.relative)
    }
}

impl Drop for SceneDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn npy_request(z: u32, x: u32, y: u32, asset: &str) -> v1::GetTileRequest {
    v1::GetTileRequest { format: v1::ImageFormat::Npy as i32, ..harness::tile_request(z, x, y, &[asset]) }
}

fn valid_pixels(mask: &Npy) -> usize {
    mask.values.iter().filter(|m| **m > 0.0).count()
}

/// rio-tiler's own tile of the scene (the parity script's "peer" mode): data and mask.
fn rio_tiler(scene: &Path, (z, x, y): (u32, u32, u32), out: &Path) -> (Npy, Npy) {
    let case = json!({
        "mode": "peer", "out": out, "assets": [scene], "tms": "WebMercatorQuad", "z": z, "x": x, "y": y,
    });
    harness::reference_script(&case);
    let read = |name: &str| parse_npy(&std::fs::read(out.join(name)).unwrap());
    (read("data.npy"), read("mask.npy"))
}

async fn not_found(client: &mut Client, request: v1::GetTileRequest) -> String {
    let status = client.get_tile(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    status.message().to_owned()
}

#[tokio::test]
async fn tiles_either_side_of_the_antimeridian_have_the_pixels_rio_tiler_has() {
    let scene = SceneDir::new("tiles");
    let server = Server::start();
    let mut client = server.client().await;
    let asset = scene.asset();

    // The worker's bounds wrap, as GDAL gives them, and GetAssetInfo passes them on.
    let info = client.get_asset_info(v1::GetAssetInfoRequest { asset: asset.clone() }).await.unwrap();
    let g = info.into_inner().geographic_bounds.unwrap();
    for (ours, gdal) in [g.min_x, g.min_y, g.max_x, g.max_y].into_iter().zip(LON_LAT_BOUNDS) {
        assert!((ours - gdal).abs() < 1e-5, "{g:?} vs {LON_LAT_BOUNDS:?}");
    }
    // `tessera info` says why west is east of east.
    let o =
        std::process::Command::new(BIN).args(["info", "--server", &server.address, &asset]).output().unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    let row = table.lines().find(|l| l.starts_with("lon/lat bounds")).unwrap_or_default();
    assert!(
        row.starts_with("lon/lat bounds  179.77") && row.ends_with(" (across the antimeridian)"),
        "{table}"
    );

    // Every tile has pixels, and the same pixels as rio-tiler's own read of the file.
    let dir = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for (z, x, y) in WEST_OF_180.into_iter().chain(EAST_OF_180) {
        let label = format!("{z}/{x}/{y}");
        let tile = client.get_tile(npy_request(z, x, y, &asset)).await;
        let ours = npy_tile(&tile.unwrap_or_else(|e| panic!("{label}: {e:?}")).into_inner());
        let valid = valid_pixels(&ours.1);
        assert!(valid > 0, "{label}: no valid pixel");
        let theirs = rio_tiler(&scene.path.join("aleutian_utm60.tif"), (z, x, y), &dir.path().join(&label));
        assert_eq!(valid_pixels(&theirs.1), valid, "{label}: valid pixels");
        let differing = differing_pixels(&label, &ours, &theirs);
        assert_eq!(differing, 0, "{label}: {differing} of {valid} valid pixels differ from rio-tiler");
        report.push(format!("{label}: {valid} valid"));
    }
    eprintln!("{}", report.join(", "));

    // Tiles that miss the scene answer as they always did.
    for (z, x, y) in MISSING {
        let message = not_found(&mut client, npy_request(z, x, y, &asset)).await;
        assert_eq!(
            message,
            format!("tile {z}/{x}/{y} of WebMercatorQuad is outside the bounds of every asset")
        );
    }
    // Points on either side read the pixel under them (the one at -179.9° lies outside
    // zone 60, 174°E to 180°, where the projection and the file go on).
    for (lon, lat) in POINTS {
        let request = v1::GetPointRequest { assets: vec![asset.clone()], lon, lat, ..Default::default() };
        let answer = client.get_point(request).await.unwrap().into_inner();
        assert_scene_pixel(&answer.assets[0], &format!("({lon}, {lat})"));
    }
}

#[tokio::test]
async fn a_footprint_layer_across_the_antimeridian_serves_both_sides_and_nothing_far_away() {
    let scene = SceneDir::new("layer");
    let config = scene.path.join("tessera.toml");
    let toml = format!(
        "[[layers]]\nname = \"aleutian\"\nfootprint = {{ assets = [\"{}\"], minzoom = 6, maxzoom = 14 }}\n",
        scene.asset()
    );
    std::fs::write(&config, toml).unwrap();
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.display().to_string()],
        ..Default::default()
    });
    let mut client = server.client().await;

    // The layer's bounds are the scene's, still wrapping; its centre is over the
    // antimeridian (the plain average of the edges would put it near Greenwich).
    let info = client.get_asset_info(v1::GetAssetInfoRequest { asset: scene.asset() }).await.unwrap();
    let g = info.into_inner().geographic_bounds.unwrap();
    let layers = client.list_layers(v1::ListLayersRequest {}).await.unwrap().into_inner().layers;
    let layer = &layers[0];
    assert_eq!(layer.bounds, Some(g));
    let centre = (g.min_x + (g.max_x + 360.0 - g.min_x) / 2.0, f64::midpoint(g.min_y, g.max_y));
    let centre = (if centre.0 > 180.0 { centre.0 - 360.0 } else { centre.0 }, centre.1);
    assert_eq!((layer.center_lon, layer.center_lat, layer.center_zoom), (centre.0, centre.1, 6));
    assert!(180.0 - layer.center_lon.abs() < 0.01, "{layer:?}");

    // Layer tiles on both sides are the explicit request's, pixel for pixel.
    for (z, x, y) in WEST_OF_180.into_iter().chain(EAST_OF_180) {
        let want = client.get_tile(npy_request(z, x, y, &scene.asset())).await.unwrap().into_inner();
        assert!(want.mask.contains(&255), "{z}/{x}/{y}: no valid pixel");
        let request = v1::GetTileRequest {
            format: v1::ImageFormat::Npy as i32,
            layer: "aleutian".into(),
            ..harness::tile_request(z, x, y, &[])
        };
        let got = client.get_tile(request).await.unwrap().into_inner();
        assert!(got.data == want.data && got.mask == want.mask, "{z}/{x}/{y}: pixels differ");
        assert_eq!(got.assets.iter().map(|a| a.asset.as_str()).collect::<Vec<_>>(), [scene.asset()]);
    }
    for (lon, lat) in POINTS {
        let request = v1::GetPointRequest { layer: "aleutian".into(), lon, lat, ..Default::default() };
        let answer = client.get_point(request).await.unwrap().into_inner();
        assert_eq!(answer.assets.len(), 1, "({lon}, {lat})");
        assert_scene_pixel(&answer.assets[0], &format!("layer at ({lon}, {lat})"));
    }
    // A layer tile away from the scene is a layer tile without assets.
    for (z, x, y) in MISSING {
        let request = v1::GetTileRequest { layer: "aleutian".into(), ..harness::tile_request(z, x, y, &[]) };
        let message = not_found(&mut client, request).await;
        assert_eq!(message, format!("layer 'aleutian' has no asset at tile WebMercatorQuad/{z}/{x}/{y}"));
    }
}
