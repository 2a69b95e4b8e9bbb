//! GetTiles (a batch, results streamed as tiles complete) and StreamTiles
//! (bidirectional).

use std::collections::BTreeMap;

use tessera::pb::v1::{self, get_tiles_response, stream_tiles_response};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::harness::{self, Server, ServerOptions, assert_matches_oracle, gdalwarp, npy_tile, tile_at};

/// 100 distinct tile requests over the UTM assets: single assets and mosaics, zooms
/// 14-17, NPY so results can be compared value for value.
fn hundred_tiles() -> Vec<v1::GetTileRequest> {
    let mut out = Vec::new();
    let centre = (-75.0156, 39.9594);
    'outer: for z in 14..=17u32 {
        let (cx, cy) = tile_at(centre.0, centre.1, z);
        for dx in -3i32..=3 {
            for dy in -2i32..=2 {
                let (x, y) = ((cx as i32 + dx) as u32, (cy as i32 + dy) as u32);
                let assets: &[&str] = if (dx + dy) % 2 == 0 { &harness::UTM } else { &harness::UTM[1..3] };
                let mut t = harness::tile_request(z, x, y, assets);
                t.format = v1::ImageFormat::Npy as i32;
                out.push(t);
                if out.len() == 100 {
                    break 'outer;
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn a_batch_of_100_tiles_streams_100_correct_results() {
    let server = Server::start_with(ServerOptions { workers: 3, ..Default::default() });
    let mut client = server.client().await;
    let tiles = hundred_tiles();
    assert_eq!(tiles.len(), 100);
    let mut stream =
        client.get_tiles(v1::GetTilesRequest { tiles: tiles.clone() }).await.unwrap().into_inner();
    let mut results = BTreeMap::new();
    while let Some(item) = stream.next().await {
        let item = item.unwrap();
        assert!(results.insert(item.index, item).is_none(), "index delivered twice");
    }
    assert_eq!(results.len(), 100);
    let mut outside = 0;
    for (index, item) in &results {
        let request = &tiles[*index as usize];
        assert_eq!((item.z, item.x, item.y), (request.z, request.x, request.y));
        // Each batch result equals the same tile asked for alone.
        let single = client.get_tile(request.clone()).await;
        match (&item.result, single) {
            (Some(get_tiles_response::Result::Tile(t)), Ok(s)) => {
                let s = s.into_inner();
                assert_eq!(t.data, s.data, "tile {index} differs from GetTile");
                assert_eq!(t.mask, s.mask, "mask {index} differs from GetTile");
            }
            (Some(get_tiles_response::Result::Error(e)), Err(s)) => {
                // Tiles beyond the assets' edge: NOT_FOUND in both.
                assert_eq!(e.code, Code::NotFound as i32, "tile {index}: {}", e.message);
                assert_eq!(s.code(), Code::NotFound);
                outside += 1;
            }
            (batch, single) => panic!("tile {index}: batch {batch:?} vs single {single:?}"),
        }
    }
    assert!(outside < 50, "{outside} of 100 tiles were outside the assets");
    // And a sample of the batch against gdalwarp itself.
    for index in [0u32, 17, 50, 99] {
        let request = &tiles[index as usize];
        if let Some(get_tiles_response::Result::Tile(t)) = &results[&index].result {
            let assets: Vec<&str> = request.assets.iter().map(String::as_str).collect();
            let oracle = gdalwarp(&assets, "WebMercatorQuad", request.z, request.x, request.y, 256, "near");
            let (data, mask) = npy_tile(t);
            assert_matches_oracle(&format!("batch item {index}"), &data, &mask, &oracle, 256);
        }
    }
}

#[tokio::test]
async fn bad_tiles_in_a_batch_are_per_item_errors_and_the_rest_succeed() {
    let server = Server::start();
    let mut client = server.client().await;
    let good = harness::tile_request(12, 1194, 1551, &["utm_rgb_00.tif"]);
    let mut bad_zoom = good.clone();
    bad_zoom.z = 40;
    let missing = harness::tile_request(12, 1194, 1551, &["missing.tif"]);
    let escape = harness::tile_request(12, 1194, 1551, &["../x.tif"]);
    let mut float_png = harness::tile_request(12, 1194, 1551, &["dem_4326.tif"]);
    float_png.format = v1::ImageFormat::Png as i32;
    let tiles = vec![good.clone(), bad_zoom, good.clone(), missing, escape, float_png, good];
    let mut stream = client.get_tiles(v1::GetTilesRequest { tiles }).await.unwrap().into_inner();
    let mut codes = BTreeMap::new();
    while let Some(item) = stream.next().await {
        let item = item.unwrap();
        let code = match item.result.unwrap() {
            get_tiles_response::Result::Tile(t) => {
                assert_eq!(t.content_type, "image/png");
                0
            }
            get_tiles_response::Result::Error(e) => {
                assert!(!e.message.is_empty());
                e.code
            }
        };
        codes.insert(item.index, code);
    }
    let expected: BTreeMap<u32, i32> = [
        (0, 0),
        (1, Code::InvalidArgument as i32),
        (2, 0),
        (3, Code::NotFound as i32),
        (4, Code::PermissionDenied as i32),
        (5, Code::InvalidArgument as i32),
        (6, 0),
    ]
    .into();
    assert_eq!(codes, expected);
}

#[tokio::test]
async fn a_batch_over_the_limit_is_refused_whole() {
    let server = Server::start_with(ServerOptions {
        args: vec!["--max-batch-size".into(), "5".into()],
        ..Default::default()
    });
    let tiles = vec![harness::tile_request(12, 1194, 1551, &["utm_rgb_00.tif"]); 6];
    let err = server.client().await.get_tiles(v1::GetTilesRequest { tiles }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("6 tiles in one batch exceed the limit of 5"), "{}", err.message());
}

#[tokio::test]
async fn stream_tiles_answers_requests_sent_while_results_arrive() {
    let server = Server::start();
    let mut client = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let request = |id: usize| {
        let (x, y) = tile_at(-75.0156, 39.9594, 15);
        v1::StreamTilesRequest {
            id: format!("req-{id}"),
            tile: Some(harness::tile_request(15, x + (id % 3) as u32, y, &harness::UTM)),
        }
    };
    for id in 0..3 {
        tx.send(request(id)).await.unwrap();
    }
    let mut responses =
        client.stream_tiles(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut seen = Vec::new();
    // Read two results, then send more while the stream is open.
    for _ in 0..2 {
        seen.push(responses.next().await.unwrap().unwrap());
    }
    for id in 3..6 {
        tx.send(request(id)).await.unwrap();
    }
    let mut bad = harness::tile_request(15, 0, 0, &["utm_rgb_00.tif"]);
    bad.tile_size = 100_000;
    tx.send(v1::StreamTilesRequest { id: "bad".into(), tile: Some(bad) }).await.unwrap();
    drop(tx);
    while let Some(r) = responses.next().await {
        seen.push(r.unwrap());
    }
    let mut ids: Vec<_> = seen.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, vec!["bad", "req-0", "req-1", "req-2", "req-3", "req-4", "req-5"]);
    for r in &seen {
        match r.result.as_ref().unwrap() {
            stream_tiles_response::Result::Tile(t) => {
                assert_ne!(r.id, "bad");
                assert_eq!(t.content_type, "image/png");
                assert_eq!(r.z, 15);
            }
            stream_tiles_response::Result::Error(e) => {
                assert_eq!(r.id, "bad");
                assert_eq!(e.code, Code::InvalidArgument as i32);
                assert!(e.message.contains("tile_size=100000"), "{}", e.message);
            }
        }
    }
}
