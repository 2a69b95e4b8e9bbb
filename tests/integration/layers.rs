//! Server-side layers: a MosaicJSON layer, a footprint layer and STAC layers over the
//! same demo assets give the tiles of the explicit request; edits to a layer's files are picked
//! up while serving; ListLayers/GetLayer describe them; bad layer requests get exact
//! codes.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use tessera::pb::v1::{self, tile_service_client::TileServiceClient};
use tonic::{Code, transport::Channel};

use crate::harness::{self, Server, ServerOptions};

/// The six demo assets; their priority order is also the footprint glob's (path) order.
pub(crate) const ASSETS: [&str; 6] = harness::UTM;

/// The zoom of the MosaicJSON document's quadkeys.
const QUADKEY_ZOOM: u32 = 14;

/// A directory of its own under the data directory: copies of the demo assets (the
/// footprint glob matches in it) and the MosaicJSON document.
pub(crate) struct LayerDir {
    pub(crate) path: PathBuf,
    /// `path` relative to the data directory.
    pub(crate) relative: String,
}

impl LayerDir {
    pub(crate) fn new() -> Self {
        let relative = format!("layers-{}", std::process::id());
        let path = harness::fixtures().join(&relative);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        Self { path, relative }
    }

    pub(crate) fn copy(&self, asset: &str) {
        std::fs::copy(harness::fixtures().join(asset), self.path.join(asset)).unwrap();
    }

    /// The name requests use for `asset` in this directory.
    pub(crate) fn name(&self, asset: &str) -> String {
        format!("{}/{asset}", self.relative)
    }
}

impl Drop for LayerDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn quadkey(z: u32, x: u32, y: u32) -> String {
    (1..=z)
        .rev()
        .map(|level| {
            let bit = 1 << (level - 1);
            char::from(b'0' + u8::from(x & bit != 0) + 2 * u8::from(y & bit != 0))
        })
        .collect()
}

/// A MosaicJSON 0.0.3 document listing each of `assets` (names, lon/lat bounds) under
/// every zoom-14 quadkey its bounds reach, in the order given.
pub(crate) fn mosaic_json(assets: &[(String, v1::Bounds)]) -> String {
    let mut tiles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, b) in assets {
        let (x0, y0) = harness::tile_at(b.min_x, b.max_y, QUADKEY_ZOOM);
        let (x1, y1) = harness::tile_at(b.max_x, b.min_y, QUADKEY_ZOOM);
        for x in x0..=x1 {
            for y in y0..=y1 {
                tiles.entry(quadkey(QUADKEY_ZOOM, x, y)).or_default().push(name.clone());
            }
        }
    }
    serde_json::json!({
        "mosaicjson": "0.0.3",
        "name": "demo",
        "description": "the demo assets by quadkey",
        "version": "1.0.0",
        "attribution": "Tessera demo data",
        "minzoom": 12,
        "maxzoom": 18,
        "quadkey_zoom": QUADKEY_ZOOM,
        "bounds": [-75.05, 39.93, -74.97, 39.98],
        "center": [-75.0, 39.95, 14],
        "tiles": tiles,
    })
    .to_string()
}

pub(crate) async fn geographic_bounds(client: &mut TileServiceClient<Channel>, asset: &str) -> v1::Bounds {
    let info = client.get_asset_info(v1::GetAssetInfoRequest { asset: asset.into() }).await.unwrap();
    info.into_inner().geographic_bounds.unwrap()
}

/// Writes `text` to `path` through a temporary file and a rename, as a deployment tool
/// would (the reload never sees half a file).
fn replace_file(path: &Path, text: &str) {
    let staging = path.with_extension("tmp");
    std::fs::write(&staging, text).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

pub(crate) fn npy_request(mut request: v1::GetTileRequest) -> v1::GetTileRequest {
    request.format = v1::ImageFormat::Npy as i32;
    request
}

pub(crate) fn layer_request(layer: &str, z: u32, x: u32, y: u32) -> v1::GetTileRequest {
    npy_request(v1::GetTileRequest { z, x, y, layer: layer.into(), ..Default::default() })
}

/// The assets a response says were used, in report order.
pub(crate) fn used(tile: &v1::GetTileResponse) -> Vec<String> {
    tile.assets.iter().map(|r| r.asset.clone()).collect()
}

/// The pixels of a tile: data and mask bytes.
pub(crate) fn pixels(tile: &v1::GetTileResponse) -> (Vec<u8>, Vec<u8>) {
    (tile.data.clone(), tile.mask.clone())
}

pub(crate) async fn tile(
    client: &mut TileServiceClient<Channel>,
    request: v1::GetTileRequest,
) -> v1::GetTileResponse {
    client.get_tile(request).await.unwrap().into_inner()
}

#[tokio::test]
async fn mosaicjson_and_footprint_layers_equal_the_explicit_request_and_follow_edits() {
    let dir = LayerDir::new();
    // The glob starts with five assets; the sixth arrives while serving.
    for asset in &ASSETS[..5] {
        dir.copy(asset);
    }
    let names: Vec<String> = ASSETS.iter().map(|a| dir.name(a)).collect();
    // The explicit request: every asset present, in the layers' order.
    let explicit = |z, x, y, present: usize| {
        let all: Vec<&str> = names[..present].iter().map(String::as_str).collect();
        npy_request(harness::tile_request(z, x, y, &all))
    };

    // The document is written from the assets' bounds as the server reports them.
    let bounds = {
        let server = Server::start();
        let mut client = server.client().await;
        let mut bounds = Vec::new();
        for asset in ASSETS {
            bounds.push((dir.name(asset), geographic_bounds(&mut client, asset).await));
        }
        bounds
    };
    let mosaic = dir.path.join("demo.mosaic.json");
    replace_file(&mosaic, &mosaic_json(&bounds[..5]));
    let config = dir.path.join("tessera.toml");
    let toml = format!(
        r#"
[[layers]]
name = "demo-mosaic"
mosaicjson = "{relative}/demo.mosaic.json"

[[layers]]
name = "demo-footprint"
description = "demo assets by footprint"
footprint = {{ glob = "{relative}/*.tif", minzoom = 12, maxzoom = 18 }}
"#,
        relative = dir.relative
    );
    std::fs::write(&config, toml).unwrap();
    let server = Server::start_with(ServerOptions {
        args: vec![
            "--config".into(),
            config.display().to_string(),
            "--layer-reload-interval".into(),
            "200ms".into(),
        ],
        ..Default::default()
    });
    let mut client = server.client().await;

    // ListLayers, exactly.
    let mut list = client.list_layers(v1::ListLayersRequest {}).await.unwrap().into_inner().layers;
    // How long each took to build: there, and taken out of the exact comparison.
    for layer in &mut list {
        let load_time = layer.load_time.take().expect("a load time");
        assert!(load_time.seconds < 10 && (load_time.seconds, load_time.nanos) > (0, 0), "{load_time:?}");
    }
    let quadkeys = serde_json::from_str::<serde_json::Value>(&mosaic_json(&bounds[..5])).unwrap()["tiles"]
        .as_object()
        .unwrap()
        .len() as u64;
    assert_eq!(
        list[0],
        v1::LayerInfo {
            name: "demo-mosaic".into(),
            kind: v1::LayerKind::Mosaicjson as i32,
            description: "the demo assets by quadkey".into(),
            bounds: Some(v1::Bounds { min_x: -75.05, min_y: 39.93, max_x: -74.97, max_y: 39.98 }),
            min_zoom: 12,
            max_zoom: 18,
            center_lon: -75.0,
            center_lat: 39.95,
            center_zoom: 14,
            asset_count: 5,
            unreadable_assets: 0,
            attribution: "Tessera demo data".into(),
            version: "1.0.0".into(),
            item_count: quadkeys,
            load_time: None,
            overview: String::new(),
            overview_max_zoom: 0,
        }
    );
    let footprint = &list[1];
    let union = bounds[..5].iter().fold((f64::MAX, f64::MAX, f64::MIN, f64::MIN), |u, (_, b)| {
        (u.0.min(b.min_x), u.1.min(b.min_y), u.2.max(b.max_x), u.3.max(b.max_y))
    });
    assert_eq!(
        (footprint.name.as_str(), footprint.kind, footprint.description.as_str()),
        ("demo-footprint", v1::LayerKind::Footprint as i32, "demo assets by footprint")
    );
    assert_eq!(
        footprint.bounds,
        Some(v1::Bounds { min_x: union.0, min_y: union.1, max_x: union.2, max_y: union.3 })
    );
    assert_eq!(
        (
            footprint.min_zoom,
            footprint.max_zoom,
            footprint.center_zoom,
            footprint.asset_count,
            footprint.item_count
        ),
        (12, 18, 12, 5, 5)
    );

    // GetLayer adds the bands of the first asset.
    let layer = client.get_layer(v1::GetLayerRequest { layer: "demo-footprint".into() }).await.unwrap();
    let layer = layer.into_inner();
    let mut described = layer.layer.clone().unwrap();
    assert!(described.load_time.take().is_some());
    assert_eq!(&described, footprint);
    assert_eq!(layer.sample_asset, names[0]);
    assert_eq!((layer.dtype, layer.data_band_count), (v1::DataType::Uint8 as i32, 3));
    assert_eq!(
        layer.bands.iter().map(|b| (b.index, b.nodata, b.has_nodata)).collect::<Vec<_>>(),
        [(1, 0.0, true), (2, 0.0, true), (3, 0.0, true)]
    );

    // Tiles: the three-asset parity tile at z16, a z14 tile across the four western
    // assets, and a z12 tile holding all of them (the document joins its z14 quadkeys).
    let (x14, y14) = harness::tile_at(-75.017, 39.953, 14);
    let cases = [(16, 19111, 24821), (14, x14, y14), (12, 1194, 1551)];
    for (z, x, y) in cases {
        let want = tile(&mut client, explicit(z, x, y, 5)).await;
        assert!(want.mask.contains(&255), "tile {z}/{x}/{y} has pixels");
        for layer in ["demo-mosaic", "demo-footprint"] {
            let got = tile(&mut client, layer_request(layer, z, x, y)).await;
            assert!(pixels(&got) == pixels(&want), "layer {layer}, tile {z}/{x}/{y}: pixels differ");
            assert_eq!((got.width, got.height, got.dtype, got.band_count), (256, 256, want.dtype, 3));
        }
    }
    // Points: each layer answers for its assets at the point, exactly as the explicit
    // request for them. The footprint layer's are those whose bounds hold the point;
    // the MosaicJSON layer's, those its document lists for the quadkey holding it.
    let document: serde_json::Value = serde_json::from_str(&mosaic_json(&bounds[..5])).unwrap();
    let centre = |b: &v1::Bounds| (f64::midpoint(b.min_x, b.max_x), f64::midpoint(b.min_y, b.max_y));
    for (lon, lat) in [(-75.017, 39.953), (-75.04, 39.965), centre(&bounds[2].1)] {
        let holding: Vec<String> = bounds[..5]
            .iter()
            .filter(|(_, b)| (b.min_x..=b.max_x).contains(&lon) && (b.min_y..=b.max_y).contains(&lat))
            .map(|(name, _)| name.clone())
            .collect();
        let (qx, qy) = harness::tile_at(lon, lat, QUADKEY_ZOOM);
        let listed: Vec<String> =
            serde_json::from_value(document["tiles"][quadkey(QUADKEY_ZOOM, qx, qy)].clone()).unwrap();
        assert!(
            !holding.is_empty() && listed.len() >= holding.len(),
            "({lon}, {lat}): {holding:?} {listed:?}"
        );
        for (layer, want_assets) in [("demo-footprint", &holding), ("demo-mosaic", &listed)] {
            let point = |layer: &str, assets: &[String]| v1::GetPointRequest {
                layer: layer.into(),
                assets: assets.to_vec(),
                lon,
                lat,
                ..Default::default()
            };
            let got = client.get_point(point(layer, &[])).await.unwrap().into_inner();
            let want = client.get_point(point("", want_assets)).await.unwrap().into_inner();
            assert_eq!(got, want, "layer {layer} at ({lon}, {lat})");
            let answered: Vec<&str> = got.assets.iter().map(|a| a.asset.as_str()).collect();
            assert_eq!(answered, *want_assets, "layer {layer} at ({lon}, {lat})");
            assert!(got.assets.iter().any(|a| a.error.is_none()), "layer {layer} at ({lon}, {lat})");
        }
    }

    // What the footprint layer picked for the z16 tile: the assets whose bounds reach
    // it, in path order.
    let z16 = tile(&mut client, layer_request("demo-footprint", 16, 19111, 24821)).await;
    let picked = used(&z16);
    assert_eq!(picked, [names[0].as_str(), &names[1], &names[3], &names[4]]);

    // An edit to the MosaicJSON document: the z16 tile's quadkey now lists one asset.
    let only = picked[0].clone();
    let mut edited = bounds.clone();
    edited.retain(|(name, _)| *name == only);
    replace_file(&mosaic, &mosaic_json(&edited));
    let want =
        tile(&mut client, npy_request(harness::tile_request(16, 19111, 24821, &[only.as_str()]))).await;
    let before = tile(&mut client, explicit(16, 19111, 24821, 5)).await;
    assert!(pixels(&want) != pixels(&before), "one asset alone gives another tile");
    let got = wait_for(|| {
        let mut client = client.clone();
        let only = only.clone();
        async move {
            let got = tile(&mut client, layer_request("demo-mosaic", 16, 19111, 24821)).await;
            (used(&got) == [only]).then_some(got)
        }
    })
    .await;
    assert!(pixels(&got) == pixels(&want), "the edited layer renders the one asset");
    let info = client.get_layer(v1::GetLayerRequest { layer: "demo-mosaic".into() }).await.unwrap();
    assert_eq!(info.into_inner().layer.unwrap().asset_count, 1);

    // A new file matching the footprint glob joins the layer.
    dir.copy(ASSETS[5]);
    wait_for(|| {
        let mut client = client.clone();
        async move {
            let list = client.list_layers(v1::ListLayersRequest {}).await.unwrap().into_inner();
            (list.layers[1].asset_count == 6).then_some(())
        }
    })
    .await;
    let (x, y) = harness::tile_at(-74.985, 39.94, 16);
    let got = tile(&mut client, layer_request("demo-footprint", 16, x, y)).await;
    assert_eq!(used(&got), [names[5].clone()]);
    let want = tile(&mut client, explicit(16, x, y, 6)).await;
    assert!(pixels(&got) == pixels(&want), "the new asset renders in the layer");
    server.wait_for_log("layer reloaded", Duration::from_secs(5)).await;
}

/// Polls `probe` every 100 ms until it gives a value, for at most 10 s.
pub(crate) async fn wait_for<T, F, Fut>(probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "the layer edit was not picked up within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server with one footprint layer, "one", over the first demo asset.
fn one_asset_layer() -> (LayerDir, Server) {
    let dir = LayerDir::new();
    dir.copy(ASSETS[0]);
    let config = dir.path.join("tessera.toml");
    let toml = format!(
        "[[layers]]\nname = \"one\"\nfootprint = {{ assets = [\"{}\"], minzoom = 12, maxzoom = 18 }}\n",
        dir.name(ASSETS[0])
    );
    std::fs::write(&config, toml).unwrap();
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.display().to_string()],
        ..Default::default()
    });
    (dir, server)
}

#[tokio::test]
async fn bad_layer_requests_get_exact_codes_and_messages() {
    let (dir, server) = one_asset_layer();
    let mut client = server.client().await;
    let refused = |request: v1::GetTileRequest| {
        let mut client = client.clone();
        async move {
            let e = client.get_tile(request).await.unwrap_err();
            (e.code(), e.message().to_owned())
        }
    };
    let (x, y) = harness::tile_at(-75.03, 39.96, 16);
    assert_eq!(
        refused(layer_request("two", 16, x, y)).await,
        (Code::NotFound, "layer 'two' is not served here; layers: one".to_owned())
    );
    let mut both = layer_request("one", 16, x, y);
    both.assets = vec![ASSETS[0].into()];
    assert_eq!(
        refused(both).await,
        (
            Code::InvalidArgument,
            "the request names layer 'one' and 1 assets; give either `layer` or `assets`, not both"
                .to_owned()
        )
    );
    assert_eq!(
        refused(layer_request("one", 10, 0, 0)).await,
        (Code::InvalidArgument, "layer 'one' serves zoom levels 12..=18; tile zoom 10 is outside".to_owned())
    );
    assert_eq!(
        refused(layer_request("one", 16, 0, 0)).await,
        (Code::NotFound, "layer 'one' has no asset at tile WebMercatorQuad/16/0/0".to_owned())
    );
    // Coordinates are checked as for any request.
    assert_eq!(
        refused(layer_request("one", 12, 5000, 0)).await,
        (Code::InvalidArgument, "x=5000 is outside 0..=4095 for WebMercatorQuad at z=12".to_owned())
    );
    let e = client.get_layer(v1::GetLayerRequest { layer: "nope".into() }).await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::NotFound, "layer 'nope' is not served here; layers: one"));
    // The layer's tile is served.
    let good = tile(&mut client, layer_request("one", 16, x, y)).await;
    assert_eq!(used(&good), [dir.name(ASSETS[0])]);
    // A batch may mix layer tiles; each answers on its own.
    let tiles = vec![layer_request("one", 16, x, y), layer_request("two", 16, x, y)];
    let mut stream = client.get_tiles(v1::GetTilesRequest { tiles }).await.unwrap().into_inner();
    let mut results = BTreeMap::new();
    while let Some(item) = stream.message().await.unwrap() {
        results.insert(item.index, item.result.unwrap());
    }
    let Some(v1::get_tiles_response::Result::Tile(first)) = results.get(&0) else {
        panic!("the layer tile of the batch failed: {results:?}")
    };
    assert!(pixels(first) == pixels(&good));
    let Some(v1::get_tiles_response::Result::Error(e)) = results.get(&1) else {
        panic!("the unknown layer of the batch did not fail: {results:?}")
    };
    assert_eq!(
        (e.code, e.message.as_str()),
        (Code::NotFound as i32, "layer 'two' is not served here; layers: one")
    );
    // So is it to `tessera get --layer`.
    let png = dir.path.join("layer.png");
    let out = std::process::Command::new(harness::BIN)
        .args(["get", "--server", &server.address, "--layer", "one", &format!("16/{x}/{y}"), "-o"])
        .arg(&png)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains(&format!("{} ASSET_OUTCOME_USED", dir.name(ASSETS[0]))), "{log}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));

    // A server without layers says so.
    let plain = Server::start();
    let e = plain.client().await.get_tile(layer_request("one", 16, x, y)).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "layer 'one' is not served here: this server has no layers configured")
    );
    let list = plain.client().await.list_layers(v1::ListLayersRequest {}).await.unwrap().into_inner();
    assert!(list.layers.is_empty());
}

#[tokio::test]
async fn bad_layer_points_get_exact_codes_and_messages() {
    let (dir, server) = one_asset_layer();
    let client = server.client().await;
    let point = |layer: &str, lon: f64, lat: f64| v1::GetPointRequest {
        layer: layer.into(),
        lon,
        lat,
        ..Default::default()
    };
    let refused_point = |request: v1::GetPointRequest| {
        let mut client = client.clone();
        async move {
            let e = client.get_point(request).await.unwrap_err();
            (e.code(), e.message().to_owned())
        }
    };
    assert_eq!(
        refused_point(point("two", -75.03, 39.96)).await,
        (Code::NotFound, "layer 'two' is not served here; layers: one".to_owned())
    );
    assert_eq!(
        refused_point(v1::GetPointRequest { assets: vec![ASSETS[0].into()], ..point("one", -75.03, 39.96) })
            .await,
        (
            Code::InvalidArgument,
            "the request names layer 'one' and 1 assets; give either `layer` or `assets`, not both"
                .to_owned()
        )
    );
    assert_eq!(
        refused_point(point("one", 10.0, 10.0)).await,
        (Code::NotFound, "layer 'one' has no asset at lon 10, lat 10".to_owned())
    );
    assert_eq!(
        refused_point(point("one", 200.0, 10.0)).await,
        (Code::InvalidArgument, "lon=200 is not a longitude in [-180, 180]".to_owned())
    );
    // The layer's point is answered.
    let mut client = client;
    let good = client.get_point(point("one", -75.03, 39.96)).await.unwrap().into_inner();
    let answered: Vec<(&str, bool)> =
        good.assets.iter().map(|a| (a.asset.as_str(), a.error.is_none())).collect();
    assert_eq!(answered, [(dir.name(ASSETS[0]).as_str(), true)]);
}

/// A STAC ItemCollection of `assets` (name, bounds, datetime), hrefs relative to the
/// document as STAC writes them.
fn item_collection(assets: &[(String, v1::Bounds, &str)]) -> String {
    let features: Vec<serde_json::Value> = assets
        .iter()
        .enumerate()
        .map(|(i, (name, b, datetime))| {
            let file = name.rsplit('/').next().unwrap();
            serde_json::json!({
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": format!("item-{i}"),
                "bbox": [b.min_x, b.min_y, b.max_x, b.max_y],
                "geometry": null,
                "properties": {"datetime": datetime, "tessera:even": i % 2 == 0},
                "assets": {"image": {"href": format!("./{file}"), "type": "image/tiff; application=geotiff"}},
            })
        })
        .collect();
    serde_json::json!({"type": "FeatureCollection", "features": features}).to_string()
}

/// The same items as [`item_collection`], as a stac-geoparquet file: `id`, a `bbox`
/// struct, a `geometry` column (never read: there is a bbox), `datetime` timestamps,
/// `assets` with `image.href`, and `tessera:even` as a boolean column.
fn stac_geoparquet(assets: &[(String, v1::Bounds, &str)]) -> Vec<u8> {
    use std::sync::Arc;

    use arrow_array::{
        Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, StringArray, StructArray,
        TimestampSecondArray,
    };
    use arrow_schema::Field;

    let strings = |f: &dyn Fn(usize) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values((0..assets.len()).map(f)))
    };
    let corner = |get: fn(&v1::Bounds) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(assets.iter().map(|(_, b, _)| get(b))))
    };
    let field = |name: &str, array: &ArrayRef| Arc::new(Field::new(name, array.data_type().clone(), true));
    let bbox_columns = [
        ("xmin", corner(|b| b.min_x)),
        ("ymin", corner(|b| b.min_y)),
        ("xmax", corner(|b| b.max_x)),
        ("ymax", corner(|b| b.max_y)),
    ];
    let bbox: ArrayRef = Arc::new(StructArray::from(
        bbox_columns.iter().map(|(n, a)| (field(n, a), Arc::clone(a))).collect::<Vec<_>>(),
    ));
    let href = strings(&|i| format!("./{}", assets[i].0.rsplit('/').next().unwrap()));
    let image: ArrayRef = Arc::new(StructArray::from(vec![(field("href", &href), href)]));
    let all_assets: ArrayRef = Arc::new(StructArray::from(vec![(field("image", &image), image)]));
    let seconds = assets.iter().map(|(_, _, t)| {
        let t = humantime::parse_rfc3339(t).unwrap();
        i64::try_from(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap()
    });
    let datetime: ArrayRef = Arc::new(TimestampSecondArray::from_iter_values(seconds).with_timezone("UTC"));
    let geometry: ArrayRef =
        Arc::new(BinaryArray::from_iter_values(assets.iter().map(|_| b"not read".as_slice())));
    let even: ArrayRef =
        Arc::new(BooleanArray::from((0..assets.len()).map(|i| i % 2 == 0).collect::<Vec<_>>()));
    write_parquet(vec![
        ("id", strings(&|i| format!("item-{i}"))),
        ("bbox", bbox),
        ("geometry", geometry),
        ("datetime", datetime),
        ("assets", all_assets),
        ("tessera:even", even),
    ])
}

/// A parquet file of these columns, written as pyarrow would (snappy).
fn write_parquet(columns: Vec<(&str, arrow_array::ArrayRef)>) -> Vec<u8> {
    let batch =
        arrow_array::RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, c)| (n, c, true)))
            .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

#[tokio::test]
async fn a_stac_layer_equals_the_explicit_request_for_its_items_in_its_order() {
    stac_layer_equals_the_explicit_request("items.json", |assets| item_collection(assets).into_bytes()).await;
}

#[tokio::test]
async fn a_stac_geoparquet_layer_equals_the_explicit_request_for_its_items_in_its_order() {
    stac_layer_equals_the_explicit_request("items.parquet", stac_geoparquet).await;
}

/// Two STAC layers over the six demo assets, read from `file` as `encode` writes their
/// items: sorted newest first, and filtered (from 2019, `tessera:even`). Their tiles are
/// the explicit request's for their items in their order.
async fn stac_layer_equals_the_explicit_request(
    file: &str,
    encode: impl Fn(&[(String, v1::Bounds, &str)]) -> Vec<u8>,
) {
    let dir = LayerDir::new();
    for asset in ASSETS {
        dir.copy(asset);
    }
    let bounds = {
        let server = Server::start();
        let mut client = server.client().await;
        let mut bounds = Vec::new();
        for (i, asset) in ASSETS.iter().enumerate() {
            // Older in file order: sorted newest first, the order reverses.
            let datetime = [
                "2017-05-01T00:00:00Z",
                "2018-05-01T00:00:00Z",
                "2019-05-01T00:00:00Z",
                "2020-05-01T00:00:00Z",
                "2021-05-01T00:00:00Z",
                "2022-05-01T00:00:00Z",
            ][i];
            bounds.push((dir.name(asset), geographic_bounds(&mut client, asset).await, datetime));
        }
        bounds
    };
    std::fs::write(dir.path.join(file), encode(&bounds)).unwrap();
    let config = dir.path.join("tessera.toml");
    let toml = format!(
        r#"
[[layers]]
name = "newest"
stac = {{ items = "{relative}/{file}", sort = "-datetime", minzoom = 12, maxzoom = 18 }}

[[layers]]
name = "even-since-2019"
stac = {{ items = "{relative}/{file}", datetime = "2019-01-01/..", filter = {{ "tessera:even" = true }} }}

[[layers]]
name = "blue-red"
stac = {{ items = "{relative}/{file}", bands = [3, 1] }}
"#,
        relative = dir.relative
    );
    std::fs::write(&config, toml).unwrap();
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.display().to_string()],
        ..Default::default()
    });
    let mut client = server.client().await;
    let newest: Vec<String> = bounds.iter().rev().map(|(name, _, _)| name.clone()).collect();
    // Items 2 and 4 (even, from 2019), in file order.
    let selected: Vec<String> = [2, 4].iter().map(|i| bounds[*i].0.clone()).collect();
    let (x14, y14) = harness::tile_at(-75.017, 39.953, 14);
    for (z, x, y) in [(16, 19111, 24821), (14, x14, y14), (12, 1194, 1551)] {
        for (layer, assets) in [("newest", &newest), ("even-since-2019", &selected)] {
            let names: Vec<&str> = assets.iter().map(String::as_str).collect();
            let want = tile(&mut client, npy_request(harness::tile_request(z, x, y, &names))).await;
            let got = tile(&mut client, layer_request(layer, z, x, y)).await;
            assert!(pixels(&got) == pixels(&want), "layer {layer}, tile {z}/{x}/{y}: pixels differ");
            // The layer asks for the items touching the tile, in the layer's order.
            let listed = used(&got);
            let order: Vec<Option<usize>> =
                listed.iter().map(|a| names.iter().position(|n| n == a)).collect();
            assert!(
                !listed.is_empty()
                    && order.windows(2).all(|w| w[0].is_some() && w[0] < w[1])
                    && order[0].is_some(),
                "layer {layer}, tile {z}/{x}/{y}: {listed:?} is not in the order of {names:?}"
            );
        }
    }
    // A layer's bands are the default; a request's own bands replace them.
    let in_file_order: Vec<&str> = bounds.iter().map(|(name, _, _)| name.as_str()).collect();
    for (asked, read) in [(vec![], vec![3, 1]), (vec![2], vec![2])] {
        let explicit =
            v1::GetTileRequest { bands: read.clone(), ..harness::tile_request(14, x14, y14, &in_file_order) };
        let want = tile(&mut client, npy_request(explicit)).await;
        let asking = v1::GetTileRequest { bands: asked, ..layer_request("blue-red", 14, x14, y14) };
        let got = tile(&mut client, asking).await;
        assert_eq!(harness::parse_npy(&got.data).shape[0], read.len(), "bands {read:?}");
        assert!(pixels(&got) == pixels(&want), "layer blue-red, bands {read:?}: pixels differ");
    }
    let layer = client.get_layer(v1::GetLayerRequest { layer: "newest".into() }).await.unwrap().into_inner();
    let info = layer.layer.unwrap();
    assert_eq!(
        (info.kind, info.asset_count, info.item_count, info.min_zoom, info.max_zoom),
        (v1::LayerKind::Stac as i32, 6, 6, 12, 18)
    );
    let filtered = client.get_layer(v1::GetLayerRequest { layer: "even-since-2019".into() }).await.unwrap();
    assert_eq!(filtered.into_inner().layer.unwrap().item_count, 2);
}

#[test]
fn a_malformed_stac_geoparquet_row_stops_the_start_naming_the_layer_the_file_and_the_item() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, StringArray, StructArray};
    use arrow_schema::{DataType, Field};

    let dir = LayerDir::new();
    // Two items; the second has no bbox (a null list) and no geometry column.
    let ids: ArrayRef = Arc::new(StringArray::from(vec!["good", "no-footprint"]));
    let bbox: ArrayRef =
        Arc::new(arrow_array::ListArray::from_iter_primitive::<arrow_array::types::Float64Type, _, _>(vec![
            Some(vec![Some(-75.1), Some(39.9), Some(-75.0), Some(40.0)]),
            None,
        ]));
    let href: ArrayRef = Arc::new(StringArray::from(vec!["a.tif", "b.tif"]));
    let image: ArrayRef =
        Arc::new(StructArray::from(vec![(Arc::new(Field::new("href", DataType::Utf8, true)), href)]));
    let image_type = image.data_type().clone();
    let assets: ArrayRef =
        Arc::new(StructArray::from(vec![(Arc::new(Field::new("image", image_type, true)), image)]));
    let items = dir.path.join("items.parquet");
    std::fs::write(&items, write_parquet(vec![("id", ids), ("bbox", bbox), ("assets", assets)])).unwrap();
    let config = dir.path.join("tessera.toml");
    std::fs::write(
        &config,
        format!("[[layers]]\nname = \"naip\"\nstac = {{ items = \"{}/items.parquet\" }}\n", dir.relative),
    )
    .unwrap();
    let (code, stderr) = harness::serve_until_exit(&config, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    let expected = format!(
        "tessera: [[layers]]: layer 'naip': {}: item 'no-footprint' has neither a bbox nor a geometry",
        items.display()
    );
    assert!(stderr.lines().any(|l| l == expected), "no line {expected:?} in:\n{stderr}");
}

#[tokio::test]
async fn an_asset_budget_cuts_a_layer_tile_in_layer_order_and_says_so() {
    let dir = LayerDir::new();
    for asset in ASSETS {
        dir.copy(asset);
    }
    let config = dir.path.join("tessera.toml");
    let toml = format!(
        "[[layers]]\nname = \"two\"\nmax_assets_per_tile = 2\nfootprint = {{ glob = \"{}/*.tif\" }}\n\n[[layers]]\nname = \"all\"\nfootprint = {{ glob = \"{}/*.tif\" }}\n",
        dir.relative, dir.relative
    );
    std::fs::write(&config, toml).unwrap();
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.display().to_string()],
        ..Default::default()
    });
    let mut client = server.client().await;
    let names: Vec<String> = ASSETS.iter().map(|a| dir.name(a)).collect();
    // z12 1194/1551 holds all six assets.
    let all = tile(&mut client, layer_request("all", 12, 1194, 1551)).await;
    assert_eq!((used(&all).len(), all.truncated), (6, false));
    for (layer, max_assets, read) in [("two", 0, 2), ("two", 1, 1), ("all", 3, 3)] {
        let request = v1::GetTileRequest { max_assets, ..layer_request(layer, 12, 1194, 1551) };
        let got = tile(&mut client, request).await;
        let first: Vec<&str> = names[..read].iter().map(String::as_str).collect();
        assert_eq!(
            (used(&got), got.truncated),
            (first.iter().map(|s| (*s).to_owned()).collect(), true),
            "{layer} {max_assets}"
        );
        let want = tile(&mut client, npy_request(harness::tile_request(12, 1194, 1551, &first))).await;
        assert!(pixels(&got) == pixels(&want), "{layer} {max_assets}: the pixels of its first {read} assets");
        assert!(!want.truncated, "an explicit request is never truncated");
    }
    // A budget at least the assets covering the tile cuts nothing.
    let request = v1::GetTileRequest { max_assets: 6, ..layer_request("all", 12, 1194, 1551) };
    assert!(!tile(&mut client, request).await.truncated);
    let refused = |request: v1::GetTileRequest| {
        let mut client = client.clone();
        async move { client.get_tile(request).await.unwrap_err() }
    };
    let over = refused(v1::GetTileRequest { max_assets: 3, ..layer_request("two", 12, 1194, 1551) }).await;
    assert_eq!(
        (over.code(), over.message()),
        (
            Code::InvalidArgument,
            "max_assets=3 is over layer 'two''s max_assets_per_tile, 2; ask for 1..=2 (0: the layer's own budget)"
        )
    );
    let over = refused(v1::GetTileRequest { max_assets: 65, ..layer_request("all", 12, 1194, 1551) }).await;
    assert_eq!(
        (over.code(), over.message()),
        (
            Code::InvalidArgument,
            "max_assets=65 is over this server's --max-assets-per-tile, 64; ask for 1..=64 (0: the layer's own budget)"
        )
    );
    let explicit = v1::GetTileRequest {
        max_assets: 1,
        ..npy_request(harness::tile_request(12, 1194, 1551, &[names[0].as_str()]))
    };
    let e = refused(explicit).await;
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "max_assets=1 applies to layer tiles; list at most the assets you want in `assets`"
        )
    );
}

#[tokio::test]
async fn skip_covered_leaves_out_an_asset_under_earlier_ones_for_first_only() {
    let dir = LayerDir::new();
    dir.copy(ASSETS[0]);
    // The same scene under a second name: its footprint lies under the first's.
    std::fs::copy(harness::fixtures().join(ASSETS[0]), dir.path.join("copy.tif")).unwrap();
    let (a, copy) = (dir.name(ASSETS[0]), dir.name("copy.tif"));
    let config = dir.path.join("tessera.toml");
    let toml = format!(
        "[[layers]]\nname = \"skip\"\nskip_covered = true\nfootprint = {{ assets = [\"{a}\", \"{copy}\"] }}\n\n[[layers]]\nname = \"keep\"\nfootprint = {{ assets = [\"{a}\", \"{copy}\"] }}\n"
    );
    std::fs::write(&config, toml).unwrap();
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.display().to_string()],
        ..Default::default()
    });
    let mut client = server.client().await;
    let (x, y) = harness::tile_at(-75.03, 39.96, 14);
    let both =
        tile(&mut client, npy_request(harness::tile_request(14, x, y, &[a.as_str(), copy.as_str()]))).await;
    let kept = tile(&mut client, layer_request("keep", 14, x, y)).await;
    assert_eq!(used(&kept), [a.clone(), copy.clone()]);
    let skipped = tile(&mut client, layer_request("skip", 14, x, y)).await;
    assert_eq!((used(&skipped), skipped.truncated), (vec![a.clone()], false));
    assert!(pixels(&skipped) == pixels(&both), "the covered copy could change no pixel");
    // Any other method reads every covering asset.
    let highest = v1::GetTileRequest {
        pixel_selection: v1::PixelSelection::Highest as i32,
        ..layer_request("skip", 14, x, y)
    };
    assert_eq!(used(&tile(&mut client, highest).await), [a, copy]);
}
