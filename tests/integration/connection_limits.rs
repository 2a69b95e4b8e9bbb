//! Connections that do nothing: `--max-connections` closes those over the limit at
//! accept, `--connection-preface-timeout` closes the silent ones,
//! `--connection-idle-timeout` sends GOAWAY to those without a call, and keepalive pings
//! drop peers that stopped answering. Each outcome is read from the server's counters.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::harness::{Server, ServerOptions, tile_request};

/// The HTTP/2 client preface (RFC 9113 §3.4) and an empty SETTINGS frame.
const PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Waits until the metric `name` is `value` (at most `limit`); its last value.
async fn wait_for_metric(server: &Server, name: &str, value: u64, limit: Duration) -> u64 {
    let until = Instant::now() + limit;
    loop {
        let now = server.metric(name);
        if now == value || Instant::now() > until {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Reads from `conn` until the server closes it (at most `limit`): true if it did.
async fn closed_by_server(conn: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let until = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(until, conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_at_accept_and_tiles_are_served_once_silent_ones_time_out() {
    let server = Server::start_with(ServerOptions {
        args: args(&["--max-connections", "8", "--connection-preface-timeout", "3s"]),
        ..Default::default()
    });
    assert!(server.log_text().contains("client connections limited to 8"), "{}", server.log_text());
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(&server.address).await.unwrap());
    }
    assert_eq!(wait_for_metric(&server, "tessera_grpc_open_connections", 8, Duration::from_secs(2)).await, 8);

    // The ninth is closed before anything is read, long before any preface timeout.
    let mut ninth = TcpStream::connect(&server.address).await.unwrap();
    assert!(closed_by_server(&mut ninth, Duration::from_secs(1)).await, "the ninth connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(3), "too slow to tell the limit from the timeout");
    // The admin endpoint still answers, and counts exactly that.
    assert_eq!(server.metric("tessera_grpc_connections_refused_total"), 1);
    assert_eq!(server.metric("tessera_grpc_connections_preface_timeouts_total"), 0);
    assert_eq!(server.metric("tessera_grpc_connections_total"), 8);
    assert_eq!(server.metric("tessera_grpc_open_connections"), 8);
    assert_eq!(server.metric("tessera_grpc_max_connections"), 8);
    server.wait_for_log("refusing connections: --max-connections=8 are open", Duration::from_secs(5)).await;

    // The silent ones are closed at their preface timeout, and the slots are free again.
    for conn in &mut silent {
        assert!(closed_by_server(conn, Duration::from_secs(10)).await, "a silent connection stayed open");
    }
    assert_eq!(wait_for_metric(&server, "tessera_grpc_open_connections", 0, Duration::from_secs(2)).await, 0);
    assert_eq!(server.metric("tessera_grpc_connections_preface_timeouts_total"), 8);

    let mut client = server.client().await;
    let tile = client.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_02.tif"])).await.unwrap().into_inner();
    assert!(tile.data.starts_with(b"\x89PNG"), "not a PNG: {} bytes", tile.data.len());
    assert_eq!(server.metric("tessera_grpc_connections_total"), 9);
    assert_eq!(server.metric("tessera_grpc_connections_refused_total"), 1);
    assert_eq!(server.metric("tessera_grpc_connections_preface_timeouts_total"), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_whole_preface_is_closed_at_the_preface_timeout() {
    let server = Server::start_with(ServerOptions {
        args: args(&["--connection-preface-timeout", "500ms"]),
        ..Default::default()
    });
    let started = Instant::now();
    let mut silent = TcpStream::connect(&server.address).await.unwrap();
    // A peer that sends the start of a preface and stalls is no better than a silent one.
    let mut stalled = TcpStream::connect(&server.address).await.unwrap();
    stalled.write_all(&PREFACE_AND_SETTINGS[..10]).await.unwrap();
    assert!(
        closed_by_server(&mut silent, Duration::from_secs(10)).await,
        "the silent connection stayed open"
    );
    assert!(
        closed_by_server(&mut stalled, Duration::from_secs(10)).await,
        "the stalled connection stayed open"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(server.metric("tessera_grpc_connections_preface_timeouts_total"), 2);
    assert_eq!(wait_for_metric(&server, "tessera_grpc_open_connections", 0, Duration::from_secs(2)).await, 0);

    // A client that sends its preface at once is served as before.
    let mut client = server.client().await;
    client.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_02.tif"])).await.unwrap();
    assert_eq!(server.metric("tessera_grpc_connections_preface_timeouts_total"), 2);
    assert_eq!(server.metric("tessera_grpc_connections_total"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_call_is_sent_goaway_after_the_idle_timeout() {
    let server = Server::start_with(ServerOptions {
        args: args(&["--connection-idle-timeout", "1s"]),
        // A call that lasts longer than the idle timeout keeps its connection busy.
        env: vec![("TESSERA_TEST_SLOW_READ".into(), "utm_rgb_00=2500".into())],
        ..Default::default()
    });
    let mut client = server.client().await;
    let slow = client.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_00.tif"])).await.unwrap().into_inner();
    assert!(slow.data.starts_with(b"\x89PNG"));
    assert_eq!(server.metric("tessera_grpc_connections_idle_total"), 0, "idle while a call was open");
    assert_eq!(server.metric("tessera_grpc_open_connections"), 1);

    // With no call open, the connection is shut down after the idle timeout.
    assert_eq!(
        wait_for_metric(&server, "tessera_grpc_connections_idle_total", 1, Duration::from_secs(10)).await,
        1
    );
    assert_eq!(wait_for_metric(&server, "tessera_grpc_open_connections", 0, Duration::from_secs(5)).await, 0);
    // The client's next call goes out on a new connection.
    let tile = client.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_02.tif"])).await.unwrap().into_inner();
    assert!(tile.data.starts_with(b"\x89PNG"));
    assert_eq!(server.metric("tessera_grpc_connections_total"), 2);
    assert_eq!(server.metric("tessera_grpc_connections_idle_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_answer_pings_is_dropped_and_a_client_that_does_is_kept() {
    let server = Server::start_with(ServerOptions {
        args: args(&[
            "--http2-keepalive-interval",
            "300ms",
            "--http2-keepalive-timeout",
            "300ms",
            "--connection-idle-timeout",
            "0s",
        ]),
        ..Default::default()
    });
    // Sends a valid preface, then never reads: the server's pings go unanswered.
    let mut mute = TcpStream::connect(&server.address).await.unwrap();
    mute.write_all(PREFACE_AND_SETTINGS).await.unwrap();
    let mut client = server.client().await;
    client.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_02.tif"])).await.unwrap();

    assert_eq!(
        wait_for_metric(
            &server,
            "tessera_grpc_connections_keepalive_timeouts_total",
            1,
            Duration::from_secs(10)
        )
        .await,
        1
    );
    assert!(closed_by_server(&mut mute, Duration::from_secs(5)).await, "the mute peer stayed connected");
    // The tonic client answers the pings: its connection is kept through many intervals.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.metric("tessera_grpc_open_connections"), 1);
    client.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_02.tif"])).await.unwrap();
    assert_eq!(server.metric("tessera_grpc_connections_total"), 2);
    assert_eq!(server.metric("tessera_grpc_connections_keepalive_timeouts_total"), 1);
}

/// One metric from the admin endpoint, or `None` if it does not answer within `limit`
/// (a server out of file descriptors cannot accept the scrape).
fn metric_within(server: &Server, name: &str, limit: Duration) -> Option<u64> {
    use std::io::{Read, Write};
    let addr = server.admin.parse().unwrap();
    let mut conn = std::net::TcpStream::connect_timeout(&addr, limit).ok()?;
    conn.set_read_timeout(Some(limit)).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.parse().unwrap())
}

async fn health(client: &mut HealthClient<tonic::transport::Channel>) -> i32 {
    client.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status
}

/// The attack as reported: more silent connections than the server has descriptors.
/// Under the default `--max-connections` the flood takes the connection slots but no
/// descriptor the server needs: the admin endpoint answers, a killed worker is replaced,
/// health stays SERVING, and connections opened before the flood keep working.
///
/// The server inherits a low soft RLIMIT_NOFILE from this test process, lowered only
/// while it starts (nextest runs each test in a process of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_beyond_the_open_file_limit_leaves_workers_admin_and_health_working() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    const OPEN_FILES: u64 = 512;
    // 512 - 128 reserved - 2 workers x 24.
    const LIMIT: u64 = 336;
    const FLOOD: u64 = 600;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(hard >= 2 * FLOOD, "this test needs an open-file limit of {} to flood", 2 * FLOOD);
    setrlimit(Resource::RLIMIT_NOFILE, OPEN_FILES, hard).unwrap();
    let server = Server::start_with(ServerOptions {
        args: args(&["--connection-preface-timeout", "60s"]),
        wait_ready: false,
        ..Default::default()
    });
    setrlimit(Resource::RLIMIT_NOFILE, soft.max(2 * FLOOD), hard).unwrap();
    server.wait_ready(Duration::from_secs(20));
    let log = server.log_text();
    assert!(log.contains(&format!("client connections limited to {LIMIT}")), "{log}");

    // Two clients connected before the flood.
    let mut tiles = server.client().await;
    let reference =
        tiles.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_02.tif"])).await.unwrap().into_inner();
    let mut probe = HealthClient::new(
        tonic::transport::Channel::from_shared(server.url()).unwrap().connect().await.unwrap(),
    );
    assert_eq!(health(&mut probe).await, ServingStatus::Serving as i32);

    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        flood.push(TcpStream::connect(&server.address).await.unwrap());
    }
    let refused = FLOOD - (LIMIT - 2);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = metric_within(&server, "tessera_grpc_connections_refused_total", Duration::from_secs(5))
            .expect("the admin endpoint did not answer during the flood");
        if seen == refused || Instant::now() > until {
            assert_eq!(seen, refused);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.metric("tessera_grpc_open_connections"), LIMIT);
    assert_eq!(server.metric("tessera_grpc_connections_total"), LIMIT);

    // A worker killed during the flood is replaced: its pipes find free descriptors.
    let before = server.worker_pids();
    assert_eq!(before.len(), 2);
    crate::harness::signal(before[0], nix::sys::signal::Signal::SIGKILL);
    let after = server.wait_for_replacement(&before, 2, Duration::from_secs(20));
    assert!(!after.contains(&before[0]) && after.len() == 2, "not replaced: {before:?} -> {after:?}");
    assert_eq!(server.metric("tessera_worker_spawn_failures_total"), 0);
    assert!(!server.log_text().contains("Too many open files"), "{}", server.log_text());
    // Both workers render: the tile through each of them (the pool has no affinity, so
    // several tiles).
    for _ in 0..4 {
        let tile =
            tiles.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_02.tif"])).await.unwrap().into_inner();
        assert_eq!(tile.data, reference.data);
    }
    assert_eq!(health(&mut probe).await, ServingStatus::Serving as i32);

    // Once the flood is gone, new clients connect again.
    drop(flood);
    assert_eq!(
        wait_for_metric(&server, "tessera_grpc_open_connections", 2, Duration::from_secs(10)).await,
        2
    );
    let mut late = server.client().await;
    let tile = late.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_02.tif"])).await.unwrap().into_inner();
    assert_eq!(tile.data, reference.data);
    assert_eq!(server.metric("tessera_grpc_connections_refused_total"), refused);
}
