//! Layer documents at URLs: a MosaicJSON document served by a loopback HTTP origin
//! (the range server of `http_range`) is read through the front's origin client under
//! `--allow-remote`, reloaded when its ETag changes, and refused without a prefix that
//! holds it; health stays NOT_SERVING (and layer calls UNAVAILABLE) until the layers
//! are loaded.

use std::{path::PathBuf, time::Duration};

use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    harness::{self, Server, ServerOptions},
    http_range::{self, Fault, Faults},
    layers::{
        ASSETS, LayerDir, geographic_bounds, layer_request, mosaic_json, npy_request, pixels, tile, used,
        wait_for,
    },
};

/// The demo assets in `dir` (names as requests give them) and a MosaicJSON document
/// listing them in that order and in reverse: two documents of the same length.
async fn documents(dir: &LayerDir) -> (Vec<String>, String, String) {
    for asset in ASSETS {
        dir.copy(asset);
    }
    let server = Server::start();
    let mut client = server.client().await;
    let mut listed = Vec::new();
    for asset in ASSETS {
        listed.push((dir.name(asset), geographic_bounds(&mut client, asset).await));
    }
    let forward = mosaic_json(&listed);
    listed.reverse();
    let reverse = mosaic_json(&listed);
    (ASSETS.iter().map(|a| dir.name(a)).collect(), forward, reverse)
}

/// A config file in `dir` with one MosaicJSON layer, "remote", at `url`.
fn config(dir: &LayerDir, url: &str) -> PathBuf {
    let path = dir.path.join("remote.toml");
    std::fs::write(&path, format!("[[layers]]\nname = \"remote\"\nmosaicjson = \"{url}\"\n")).unwrap();
    path
}

async fn health(server: &Server) -> i32 {
    let channel = tonic::transport::Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let mut client = HealthClient::new(channel);
    client.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_mosaicjson_layer_equals_the_local_one_and_reloads_when_its_etag_changes() {
    let dir = LayerDir::new();
    let (names, forward, reverse) = documents(&dir).await;
    assert_eq!(forward.len(), reverse.len(), "the edit keeps the size: only the ETag tells");
    let origin = tempfile::tempdir().unwrap();
    std::fs::write(origin.path().join("mosaic.json"), &forward).unwrap();
    let (base, counts) = http_range::serve(origin.path().to_owned()).await;
    let url = format!("{base}/mosaic.json");
    let server = Server::start_with(ServerOptions {
        args: vec![
            "--config".into(),
            config(&dir, &url).display().to_string(),
            "--allow-remote".into(),
            format!("{base}/"),
            "--layer-reload-interval".into(),
            "200ms".into(),
        ],
        ..Default::default()
    });
    let mut client = server.client().await;
    let (x, y) = harness::tile_at(-75.017, 39.953, 14);
    let explicit = |order: &[String]| {
        let names: Vec<&str> = order.iter().map(String::as_str).collect();
        npy_request(harness::tile_request(14, x, y, &names))
    };
    let want = tile(&mut client, explicit(&names)).await;
    let got = tile(&mut client, layer_request("remote", 14, x, y)).await;
    assert!(pixels(&got) == pixels(&want), "the remote layer's tile differs from the explicit request");
    let first = used(&got);
    assert!(first.len() > 1, "the tile should need several assets: {first:?}");

    // Unchanged, the document is only checked (a one-byte range per pass), never rebuilt.
    let checks_before = counts.of("/mosaic.json");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(counts.of("/mosaic.json") >= checks_before + 3, "the reload loop checks the document's version");
    assert!(!server.log_text().contains("layer reloaded"));

    std::fs::write(origin.path().join("mosaic.json"), &reverse).unwrap();
    let reversed: Vec<String> = first.iter().rev().cloned().collect();
    let after = wait_for(|| {
        let mut client = client.clone();
        let reversed = reversed.clone();
        async move {
            let t = tile(&mut client, layer_request("remote", 14, x, y)).await;
            (used(&t) == reversed).then_some(t)
        }
    })
    .await;
    let mut backwards = names.clone();
    backwards.reverse();
    let want = tile(&mut client, explicit(&backwards)).await;
    assert!(pixels(&after) == pixels(&want), "after the edit the layer serves the reversed document");
    // One rebuild for one new version, however many passes saw it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(server.log_text().matches("layer reloaded").count(), 1, "{}", server.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_and_layer_calls_unavailable_until_a_slow_remote_layer_loads() {
    let dir = LayerDir::new();
    let (names, forward, _) = documents(&dir).await;
    let origin = tempfile::tempdir().unwrap();
    std::fs::write(origin.path().join("mosaic.json"), &forward).unwrap();
    // The first requests for the document (the read and its hedge) stall for 3 s.
    let faults =
        Faults::none().on_first(2, |r| r.path == "/mosaic.json", Fault::Stall(Duration::from_secs(3)));
    let (base, _counts) = http_range::serve_with_faults(origin.path().to_owned(), faults).await;
    let server = Server::start_with(ServerOptions {
        args: vec![
            "--config".into(),
            config(&dir, &format!("{base}/mosaic.json")).display().to_string(),
            "--allow-remote".into(),
            format!("{base}/"),
        ],
        wait_ready: false,
        ..Default::default()
    });
    assert_eq!(health(&server).await, ServingStatus::NotServing as i32);
    let mut client = server.client().await;
    let loading = "the server is still loading its 1 layers; retry once health reports SERVING";
    let status = client.get_tile(layer_request("remote", 14, 4766, 6200)).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unavailable, loading));
    let status = client.list_layers(tessera::pb::v1::ListLayersRequest {}).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unavailable, loading));
    // Explicit assets are served meanwhile: only layers wait.
    let (x, y) = harness::tile_at(-75.017, 39.953, 14);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    client.get_tile(harness::tile_request(14, x, y, &names)).await.unwrap();
    assert_eq!(health(&server).await, ServingStatus::NotServing as i32);

    server.wait_ready(Duration::from_secs(20));
    assert_eq!(health(&server).await, ServingStatus::Serving as i32);
    let layers = client.list_layers(tessera::pb::v1::ListLayersRequest {}).await.unwrap().into_inner();
    let info = &layers.layers[0];
    assert_eq!(info.name, "remote");
    let load_time = info.load_time.unwrap();
    assert!(load_time.seconds >= 2, "the load took the stall: {load_time:?}");
}

#[test]
fn a_remote_document_without_an_allowed_prefix_stops_the_server_with_the_reason() {
    let dir = LayerDir::new();
    let url = "http://127.0.0.1:9/mosaic.json";
    let cases = [
        (
            vec![],
            format!(
                "{url}: cannot read: this server reads no remote data (no --allow-remote prefix is configured); add a prefix that holds the document"
            ),
        ),
        (
            vec!["--allow-remote".to_owned(), "http://127.0.0.1:9/other/".to_owned()],
            format!(
                "{url}: cannot read: asset '{url}' is not allowed: it is under none of the allowed prefixes: http://127.0.0.1:9/other/"
            ),
        ),
    ];
    for (extra, reason) in cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (code, stderr) = harness::serve_until_exit(&config(&dir, url), &extra);
        assert_eq!(code, Some(1), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert_eq!(last, format!("tessera: [[layers]]: {reason}"), "{stderr}");
    }
}
