//! A layer's low-zoom overview: `tessera layer build-overview` renders a layer of the six
//! demo assets at one zoom through a running server into a COG; a server whose layer
//! names it answers tiles at that zoom and below with that one file (one job), with the
//! pixels the layer itself has at that zoom, and tiles above it from the layer's assets
//! as before.

use std::{path::Path, process::Command};

use tessera::pb::v1::{self, tile_service_client::TileServiceClient};
use tonic::transport::Channel;

use crate::harness::{self, Server, ServerOptions};

/// The zoom the overview is built at: the demo assets cover 4 x 3 tiles there.
const OVERVIEW_ZOOM: u32 = 14;

/// A directory of its own under the data directory, with copies of the demo assets.
struct LayerDir {
    path: std::path::PathBuf,
    relative: String,
}

impl LayerDir {
    fn new() -> Self {
        let relative = format!("overview-{}", std::process::id());
        let path = harness::fixtures().join(&relative);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        std::fs::create_dir(path.join("ov")).unwrap();
        for asset in harness::UTM {
            std::fs::copy(harness::fixtures().join(asset), path.join(asset)).unwrap();
        }
        Self { path, relative }
    }

    fn name(&self, file: &str) -> String {
        format!("{}/{file}", self.relative)
    }

    /// A server whose layer "demo" is the six assets by footprint (the glob does not
    /// reach the overviews, in `ov/`), with `extra` lines in its table.
    fn server(&self, extra: &str) -> Server {
        let config = self.path.join("tessera.toml");
        let toml = format!(
            "[[layers]]\nname = \"demo\"\nfootprint = {{ glob = \"{}/*.tif\" }}\n{extra}\n",
            self.relative
        );
        std::fs::write(&config, toml).unwrap();
        Server::start_with(ServerOptions {
            args: vec!["--config".into(), config.display().to_string()],
            ..Default::default()
        })
    }
}

impl Drop for LayerDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn npy(mut request: v1::GetTileRequest) -> v1::GetTileRequest {
    request.format = v1::ImageFormat::Npy as i32;
    request
}

fn layer_tile(z: u32, x: u32, y: u32) -> v1::GetTileRequest {
    npy(v1::GetTileRequest { z, x, y, layer: "demo".into(), ..Default::default() })
}

async fn tile(client: &mut TileServiceClient<Channel>, request: v1::GetTileRequest) -> v1::GetTileResponse {
    client.get_tile(request).await.unwrap().into_inner()
}

fn used(tile: &v1::GetTileResponse) -> Vec<String> {
    tile.assets.iter().map(|r| r.asset.clone()).collect()
}

fn pixels(tile: &v1::GetTileResponse) -> (Vec<u8>, Vec<u8>) {
    (tile.data.clone(), tile.mask.clone())
}

/// The tile's response and the worker jobs it started.
async fn counted(
    server: &Server,
    client: &mut TileServiceClient<Channel>,
    request: v1::GetTileRequest,
) -> (v1::GetTileResponse, u64) {
    let before = server.metric("tessera_jobs_started_total");
    let got = tile(client, request).await;
    (got, server.metric("tessera_jobs_started_total") - before)
}

/// Runs `tessera layer build-overview LAYER --max-zoom ZOOM -o OUT` against `server`.
fn build_overview(server: &str, layer: &str, zoom: u32, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(harness::BIN)
        .args(["layer", "build-overview", layer, "--server", server, "--max-zoom"])
        .arg(zoom.to_string())
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_tile_below_the_overview_zoom_reads_only_the_overview_cog() {
    let dir = LayerDir::new();
    let overview = dir.path.join("ov/demo-overview.tif");
    // The layer's own tiles at the overview's zoom and one above, before any overview.
    let (own, own_above, above) = {
        let server = dir.server("");
        let mut client = server.client().await;
        let layer = client.get_layer(v1::GetLayerRequest { layer: "demo".into() }).await.unwrap();
        let bounds = layer.into_inner().layer.unwrap().bounds.unwrap();
        let (x0, y0) = harness::tile_at(bounds.min_x, bounds.max_y, OVERVIEW_ZOOM);
        let out = build_overview(&server.address, "demo", OVERVIEW_ZOOM, &overview, &[]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{log}");
        assert!(
            log.contains(&format!(
                "layer 'demo' at zoom {OVERVIEW_ZOOM}: 12 tiles (4 x 3; 0 without assets, 0 cut at the asset budget), 1024 x 768 px,"
            )),
            "{log}"
        );
        let mut own = Vec::new();
        for (x, y) in [(x0, y0), (x0 + 1, y0 + 1), (x0 + 3, y0 + 2)] {
            own.push(((x, y), tile(&mut client, layer_tile(OVERVIEW_ZOOM, x, y)).await));
        }
        let above = (OVERVIEW_ZOOM + 1, 2 * x0 + 3, 2 * y0 + 3);
        let own_above = tile(&mut client, layer_tile(above.0, above.1, above.2)).await;
        (own, own_above, above)
    };
    assert!(own.iter().all(|(_, t)| t.mask.contains(&255)), "the tiles have pixels");
    assert!(used(&own_above).len() >= 2, "the tile above reads several assets: {:?}", used(&own_above));

    let server = dir.server(&format!(
        "overview = \"{}\"\noverview_maxzoom = {OVERVIEW_ZOOM}",
        dir.name("ov/demo-overview.tif")
    ));
    let mut client = server.client().await;
    let overview_name = dir.name("ov/demo-overview.tif");
    let explicit = |z, x, y| npy(harness::tile_request(z, x, y, &[overview_name.as_str()]));

    // At the overview's zoom: the pixels the layer itself had there, exactly.
    for ((x, y), want) in &own {
        let got = tile(&mut client, layer_tile(OVERVIEW_ZOOM, *x, *y)).await;
        assert_eq!(used(&got), vec![overview_name.clone()]);
        assert!(pixels(&got) == pixels(want), "tile {OVERVIEW_ZOOM}/{x}/{y}: the overview's pixels differ");
    }
    // Below it: one job each (the file is open by now), the pixels of the explicit
    // request for the overview; and the layer serves zooms from 0.
    for z in [13, 12, 9, 3, 0] {
        let (x, y) = harness::tile_at(-75.0, 39.95, z);
        let (got, jobs) = counted(&server, &mut client, layer_tile(z, x, y)).await;
        assert_eq!((used(&got), jobs), (vec![overview_name.clone()], 1), "tile {z}/{x}/{y}");
        assert!(!got.truncated);
        let want = tile(&mut client, explicit(z, x, y)).await;
        assert!(pixels(&got) == pixels(&want), "tile {z}/{x}/{y}: not the overview's pixels");
        // (At zoom 3 the demo assets are less than a pixel.)
        assert_eq!(got.mask.contains(&255), z >= 9, "tile {z}/{x}/{y} has pixels");
    }
    // Above it: the layer's own assets, one job each, and the tile is unchanged.
    let (got, jobs) = counted(&server, &mut client, layer_tile(above.0, above.1, above.2)).await;
    assert_eq!(used(&got), used(&own_above));
    assert_eq!(jobs, used(&own_above).len() as u64);
    assert!(pixels(&got) == pixels(&own_above), "the tile above the overview changed");
    // `ignore_overview` reads the layer's own assets at the overview's zooms (a rebuild).
    let ((x, y), want) = &own[1];
    let request = v1::GetTileRequest { ignore_overview: true, ..layer_tile(OVERVIEW_ZOOM, *x, *y) };
    let got = tile(&mut client, request).await;
    assert_eq!(used(&got), used(want));
    assert!(pixels(&got) == pixels(want));
    let info = client.get_layer(v1::GetLayerRequest { layer: "demo".into() }).await.unwrap().into_inner();
    let info = info.layer.unwrap();
    assert_eq!(
        (info.min_zoom, info.overview.as_str(), info.overview_max_zoom),
        (0, overview_name.as_str(), OVERVIEW_ZOOM)
    );

    // A rebuild against this server reads the layer, not the overview: the same file.
    let rebuilt = dir.path.join("ov/rebuilt.tif");
    let out = build_overview(&server.address, "demo", OVERVIEW_ZOOM, &rebuilt, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&rebuilt).unwrap() == std::fs::read(&overview).unwrap(), "the rebuild differs");

    // Rebuilt in place with other internal overviews (nearest, not average), it is read
    // from the next tile on: no restart, no reload.
    let (x, y) = harness::tile_at(-75.0, 39.95, 12);
    let before = tile(&mut client, layer_tile(12, x, y)).await;
    let out = build_overview(&server.address, "demo", OVERVIEW_ZOOM, &overview, &["--resampling", "nearest"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let after = tile(&mut client, layer_tile(12, x, y)).await;
    assert_eq!(used(&after), vec![overview_name.clone()]);
    assert!(pixels(&after) != pixels(&before), "the rebuilt overview is not what the tile shows");
    assert!(pixels(&after) == pixels(&tile(&mut client, explicit(12, x, y)).await));
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path.join("ov")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "temporary files left beside the overview: {leftovers:?}");
}

#[tokio::test]
async fn build_overview_refuses_a_grid_over_the_maximum_and_a_missing_overview_stops_the_start() {
    let dir = LayerDir::new();
    let server = dir.server("");
    let out = Command::new(harness::BIN)
        .args(["layer", "build-overview", "demo", "--server", &server.address, "--max-zoom", "20", "-o"])
        .arg(dir.path.join("big.tif"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains(
            "tessera: layer 'demo' at zoom 20 covers 193 x 133 = 25669 tiles, over the maximum of 16384 tiles (32768 x 32768 px) of an overview; zoom 19 fits, ask for --max-zoom 19 or lower"
        ),
        "{log}"
    );
    assert!(!dir.path.join("big.tif").exists());

    let config = dir.path.join("missing.toml");
    let toml = format!(
        "[[layers]]\nname = \"demo\"\nfootprint = {{ glob = \"{}/*.tif\" }}\noverview = \"{}\"\noverview_maxzoom = 8\n",
        dir.relative,
        dir.name("nowhere.tif")
    );
    std::fs::write(&config, toml).unwrap();
    let (code, log) = harness::serve_until_exit(&config, &[]);
    assert_eq!(code, Some(1), "{log}");
    let missing = harness::fixtures().join(dir.name("nowhere.tif"));
    assert!(
        log.contains(&format!(
            "layer 'demo': overview {}: cannot read: No such file or directory",
            missing.display()
        )),
        "{log}"
    );
}

#[tokio::test]
async fn an_overview_keeps_an_alpha_mask_and_a_float_nodata_exactly() {
    let dir = LayerDir::new();
    let config = dir.path.join("masks.toml");
    let toml = "[[layers]]\nname = \"rgba\"\nfootprint = { assets = [\"rgba_3857.tif\"] }\n\n[[layers]]\nname = \"dem\"\nfootprint = { assets = [\"dem_4326.tif\"] }\n";
    std::fs::write(&config, toml).unwrap();
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.display().to_string()],
        ..Default::default()
    });
    let mut client = server.client().await;
    // The alpha band becomes an internal mask; the DEM's -9999 stays its nodata.
    for (layer, z) in [("rgba", 15), ("dem", 11)] {
        let file = format!("ov/{layer}.tif");
        let out = build_overview(&server.address, layer, z, &dir.path.join(&file), &[]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let info = client.get_layer(v1::GetLayerRequest { layer: layer.into() }).await.unwrap().into_inner();
        let b = info.layer.unwrap().bounds.unwrap();
        let (x0, y0) = harness::tile_at(b.min_x, b.max_y, z);
        let (x1, y1) = harness::tile_at(b.max_x, b.min_y, z);
        let (mut masked, mut valid) = (0, 0);
        for x in x0..=x1 {
            for y in y0..=y1 {
                let own = v1::GetTileRequest { layer: layer.into(), ..layer_tile(z, x, y) };
                let own = tile(&mut client, own).await;
                let from_file =
                    tile(&mut client, npy(harness::tile_request(z, x, y, &[&dir.name(&file)]))).await;
                assert!(
                    pixels(&from_file) == pixels(&own),
                    "{layer} {z}/{x}/{y}: the overview's pixels differ"
                );
                masked += own.mask.iter().filter(|m| **m == 0).count();
                valid += own.mask.iter().filter(|m| **m == 255).count();
            }
        }
        assert!(masked > 0 && valid > 0, "{layer}: {masked} masked and {valid} valid pixels");
    }
}
