//! `--max-connection-age`: a connection past its age is shut down gracefully (GOAWAY),
//! the call in flight on it still gets its tile, and the client's next call goes out on
//! a new connection.
//!
//! The client is tonic's. It has one known limit here: the first call handed to a
//! connection that got GOAWAY while another call is open on it is cancelled before it
//! is sent, and the channel reconnects for the one after. `tessera::client::never_sent`
//! recognises that case and `resend_unsent` sends such a call again; the test checks
//! that the server never saw the cancelled attempt.

use std::time::{Duration, Instant};

use crate::harness::{Server, ServerOptions, tile_request};

const OK_PNG_TILES: &str = "tessera_tiles_total{format=\"png\",status=\"OK\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_when_its_connection_ages_out_still_gets_its_tile() {
    // Age 4 s ± 10% (3.6–4.4 s); the slow read takes 6 s, so it is in flight when the
    // first connection ages, and it ends before the second connection (opened at ~5 s)
    // can age (7.8 s at the earliest).
    let server = Server::start_with(ServerOptions {
        args: vec!["--max-connection-age".into(), "4s".into(), "--tile-cache-size".into(), "0".into()],
        env: vec![("TESSERA_TEST_SLOW_READ".into(), "utm_rgb_00=6000".into())],
        ..Default::default()
    });
    let quick = || tile_request(12, 1194, 1551, &["utm_rgb_02.tif"]);
    // One channel = one HTTP/2 connection, used for every call below.
    let mut client = server.client().await;
    let start = Instant::now();
    let reference = client.get_tile(quick()).await.unwrap().into_inner();
    assert_eq!(server.metric("tessera_grpc_connections_total"), 1);

    let mut slow_client = client.clone();
    let slow =
        tokio::spawn(
            async move { slow_client.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_00.tif"])).await },
        );
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(start.elapsed())).await;
    assert_eq!(server.metric("tessera_grpc_connections_aged_total"), 1, "the connection did not age");
    assert!(!slow.is_finished(), "the slow call ended before the connection aged");

    // After the GOAWAY the client's next call goes out on a new connection (after one
    // attempt that tonic cancels unsent, see above; the server counts no tile for it).
    let tiles_before = server.metric(OK_PNG_TILES);
    let mut attempts = 0;
    let again = tessera::client::resend_unsent(async || {
        attempts += 1;
        let result = client.get_tile(quick()).await;
        if let Err(status) = &result {
            assert!(tessera::client::never_sent(status), "a call after the GOAWAY failed: {status:?}");
        }
        result
    })
    .await
    .expect("a call after the GOAWAY failed twice")
    .into_inner();
    assert_eq!(again.data, reference.data);
    assert!(attempts <= 2);
    assert_eq!(server.metric(OK_PNG_TILES), tiles_before + 1, "the server saw the cancelled attempt");
    assert_eq!(server.metric("tessera_grpc_connections_total"), 2);

    // The call that was in flight on the aged connection finishes normally.
    let tile = slow.await.unwrap().expect("the call in flight across the connection age failed").into_inner();
    assert!(start.elapsed() < Duration::from_millis(7800), "the test ran too slowly to tell");
    assert!(tile.data.starts_with(b"\x89PNG"), "not a PNG: {} bytes", tile.data.len());
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
    // The aged connection closes once its last stream has ended; the new one stays open.
    let closed_by = Instant::now() + Duration::from_secs(2);
    while server.metric("tessera_grpc_open_connections") != 1 && Instant::now() < closed_by {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.metric("tessera_grpc_open_connections"), 1);
    assert_eq!(server.metric("tessera_grpc_connections_aged_total"), 1);
}
