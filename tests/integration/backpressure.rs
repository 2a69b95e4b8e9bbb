//! Backpressure on StreamTiles: a client that streams small requests faster than tiles
//! render is slowed down by HTTP/2 flow control (the server stops reading), not
//! disconnected by h2's small-DATA-frame budget, and the other calls on its connection
//! carry on.

use std::collections::BTreeMap;

use futures::StreamExt as _;
use tessera::pb::v1::{self, stream_tiles_response, tile_service_client::TileServiceClient};
use tonic::{Code, Status, transport::Channel};

use crate::harness::{self, Server, ServerOptions, tile_at};

/// Every `REAL_EVERY`-th request is a real 64-px NPY tile; the others fail fast with
/// NOT_FOUND (an asset that does not exist, refused before any worker is asked).
const REAL_EVERY: usize = 5;
/// Distinct real tiles (repeats come from the tile cache or share a render).
const DISTINCT_TILES: u32 = 100;

/// Request `n`: ~45 bytes on the wire.
fn request(n: usize) -> v1::StreamTilesRequest {
    // Zoom-18 tiles around the centre of the asset, all inside it.
    let (cx, cy) = tile_at(-75.029, 39.9614, 18);
    let k = (n / REAL_EVERY) as u32 % DISTINCT_TILES;
    let asset = if n % REAL_EVERY == 0 { harness::UTM[0] } else { "no_such_asset.tif" };
    let mut tile = harness::tile_request(18, cx - 5 + k % 10, cy - 5 + k / 10, &[asset]);
    tile.tile_size = 64;
    tile.format = v1::ImageFormat::Npy as i32;
    v1::StreamTilesRequest { id: format!("r{n}"), tile: Some(tile) }
}

/// `count` requests, as fast as the client can, one per poll: tonic's encoder then sends
/// each in its own small HTTP/2 DATA frame (a source that is always ready would be
/// packed into 32 KiB frames), as a client producing requests one by one does.
fn one_frame_per_request(count: usize) -> impl futures::Stream<Item = v1::StreamTilesRequest> + Send {
    futures::stream::iter(0..count).then(|n| async move {
        tokio::task::yield_now().await;
        request(n)
    })
}

/// Streams `count` requests and reads every answer, by id; on a failed stream, the
/// status and how many answers had come.
async fn stream_all(
    client: &mut TileServiceClient<Channel>,
    count: usize,
    mut after_each: impl AsyncFnMut(usize),
) -> Result<BTreeMap<String, v1::StreamTilesResponse>, (Status, usize)> {
    let mut responses =
        client.stream_tiles(one_frame_per_request(count)).await.map_err(|s| (s, 0))?.into_inner();
    let mut seen = BTreeMap::new();
    while let Some(answer) = responses.next().await {
        let answer = answer.map_err(|s| (s, seen.len()))?;
        let id = answer.id.clone();
        assert!(seen.insert(id.clone(), answer).is_none(), "{id} answered twice");
        after_each(seen.len()).await;
    }
    Ok(seen)
}

/// Every request of `count` answered exactly once, real tiles with a 64×64 RGB NPY tile,
/// the others with NOT_FOUND naming the asset.
fn assert_every_request_answered(seen: &BTreeMap<String, v1::StreamTilesResponse>, count: usize) {
    assert_eq!(seen.len(), count, "answers missing");
    for n in 0..count {
        let r = &seen[&format!("r{n}")];
        match (n % REAL_EVERY == 0, r.result.as_ref().unwrap()) {
            (true, stream_tiles_response::Result::Tile(t)) => {
                let (data, mask) = harness::npy_tile(t);
                assert_eq!(data.shape, [3, 64, 64], "r{n}");
                assert_eq!(mask.shape, [64, 64], "r{n}");
            }
            (false, stream_tiles_response::Result::Error(e)) => {
                assert_eq!(e.code, Code::NotFound as i32, "r{n}: {}", e.message);
                assert!(e.message.contains("no_such_asset.tif"), "r{n}: {}", e.message);
            }
            (_, other) => panic!("r{n}: unexpected answer {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_stream_of_small_requests_faster_than_tiles_render_completes_with_every_answer() {
    const REQUESTS: usize = 5000;
    let server = Server::start();
    let mut client = server.client().await;
    // The same channel, hence the same HTTP/2 connection.
    let mut other = client.clone();
    let mut statistics = None;
    let seen = stream_all(&mut client, REQUESTS, async |answers| {
        // A unary call on the same connection while the stream is busy.
        if answers == 20 {
            let request = v1::GetStatisticsRequest {
                asset: harness::UTM[0].into(),
                max_size: 64,
                ..Default::default()
            };
            statistics = Some(other.get_statistics(request).await);
        }
    })
    .await;
    let statistics = statistics.expect("the stream ended before the concurrent call was made");
    let statistics =
        statistics.unwrap_or_else(|e| panic!("GetStatistics on the same connection failed: {e:?}"));
    assert_eq!(statistics.get_ref().bands.len(), 3);
    assert_eq!(statistics.get_ref().width, 64);
    let seen = seen.unwrap_or_else(|(status, n)| panic!("the stream failed after {n} answers: {status:?}"));
    assert_every_request_answered(&seen, REQUESTS);
}

#[tokio::test]
async fn several_stalled_streams_on_one_connection_all_complete() {
    const STREAMS: usize = 6;
    const REQUESTS: usize = 2000;
    let server = Server::start();
    let client = server.client().await;
    let calls = (0..STREAMS).map(|_| {
        let mut client = client.clone();
        async move { stream_all(&mut client, REQUESTS, async |_| {}).await }
    });
    for (i, seen) in futures::future::join_all(calls).await.into_iter().enumerate() {
        let seen =
            seen.unwrap_or_else(|(status, n)| panic!("stream {i} failed after {n} answers: {status:?}"));
        assert_every_request_answered(&seen, REQUESTS);
    }
}

/// A peer that floods tiny DATA frames on streams the server has stopped reading is
/// still cut off by h2 (GOAWAY ENHANCE_YOUR_CALM), once the frames' overhead exceeds
/// the budget the windows were sized for; the server goes on serving.
#[tokio::test]
async fn a_flood_of_one_byte_frames_on_stalled_streams_is_cut_off() {
    /// More than the connection's frame budget covers: each stalled stream can hold
    /// ~32 000 one-byte frames (32 KiB window), charged 255 each.
    const STREAMS: usize = 8;
    // h2 logs the budget running out at debug level.
    let server = Server::start_with(ServerOptions {
        env: vec![("RUST_LOG".into(), "info,h2=debug".into())],
        ..ServerOptions::default()
    });
    let tcp = tokio::net::TcpStream::connect(&server.address).await.unwrap();
    // A 1 KiB receive window, never read: the server's answers back up, its tiles wait
    // to be sent, and it stops reading the request streams.
    let (mut h2, connection) =
        h2::client::Builder::new().initial_window_size(1024).handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut real = bytes::BytesMut::new();
    for n in 0..40 {
        let message = prost::Message::encode_to_vec(&request(n * REAL_EVERY));
        real.extend_from_slice(&[0]);
        real.extend_from_slice(&(message.len() as u32).to_be_bytes());
        real.extend_from_slice(&message);
    }
    let real = real.freeze();
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let call =
            http::Request::post(format!("http://{}/tessera.v1.TileService/StreamTiles", server.address))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())
                .unwrap();
        let Ok(ready) = h2.ready().await else { break };
        h2 = ready;
        let Ok((answer, mut body)) = h2.send_request(call, false) else { break };
        if body.send_data(real.clone(), false).is_err() {
            break;
        }
        // The start of one more message (flag and a 1 MiB length), a byte per frame.
        let prefix = [0u8, 0, 0x10, 0, 0];
        for i in 0..32 * 1024 {
            let byte = prefix.get(i).copied().unwrap_or(0);
            if body.send_data(bytes::Bytes::copy_from_slice(&[byte]), false).is_err() {
                break;
            }
        }
        streams.push((answer, body));
    }
    // The server sends GOAWAY and closes; the client, still writing, may see the reset
    // before it reads the GOAWAY.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), connection)
        .await
        .expect("the flood was not cut off")
        .unwrap();
    let error = ended.expect_err("the connection ended cleanly");
    assert!(error.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || error.is_io(), "{error:?}");
    server.wait_for_log("too many small DATA frames", std::time::Duration::from_secs(10)).await;
    drop(streams);
    // The server goes on serving other connections.
    let mut client = server.client().await;
    let tile = client.get_tile(request(0).tile.unwrap()).await.unwrap();
    assert_eq!(harness::npy_tile(tile.get_ref()).0.shape, [3, 64, 64]);
}
