//! grpc.health.v1: NOT_SERVING until every worker has shaken hands, SERVING while the
//! pool is up, NOT_SERVING once shutdown starts.

use std::time::Duration;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::harness::{Server, ServerOptions};

async fn status(server: &Server, service: &str) -> i32 {
    let mut client = HealthClient::new(
        tonic::transport::Channel::from_shared(server.url()).unwrap().connect().await.unwrap(),
    );
    client.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status
}

#[tokio::test]
async fn health_is_not_serving_until_the_workers_have_shaken_hands() {
    let server = Server::start_with(ServerOptions {
        env: vec![("TESSERA_TEST_HELLO_DELAY_MS".into(), "1500".into())],
        wait_ready: false,
        ..Default::default()
    });
    assert_eq!(status(&server, "").await, ServingStatus::NotServing as i32);
    assert_eq!(status(&server, "tessera.v1.TileService").await, ServingStatus::NotServing as i32);
    server.wait_ready(Duration::from_secs(20));
    assert_eq!(status(&server, "").await, ServingStatus::Serving as i32);
    assert_eq!(status(&server, "tessera.v1.TileService").await, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn health_turns_not_serving_when_shutdown_starts() {
    let mut server = Server::start_with(ServerOptions {
        args: vec!["--shutdown-delay".into(), "2s".into()],
        ..Default::default()
    });
    let mut client = HealthClient::new(
        tonic::transport::Channel::from_shared(server.url()).unwrap().connect().await.unwrap(),
    );
    let check = |c: &mut HealthClient<_>| {
        let mut c = c.clone();
        async move { c.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status }
    };
    assert_eq!(check(&mut client).await, ServingStatus::Serving as i32);
    crate::harness::signal(server.pid(), nix::sys::signal::Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(check(&mut client).await, ServingStatus::NotServing as i32);
    let exit = server.terminate(Duration::from_secs(15)).await;
    assert!(exit.success());
}

/// The admin endpoint (hyper) answers `GET /metrics` in Prometheus text and 404 to
/// anything else, one request per connection.
#[test]
fn the_admin_endpoint_serves_metrics_and_nothing_else() {
    use std::io::{Read, Write};
    let server = Server::start();
    let ask = |head: &str| {
        let mut conn = std::net::TcpStream::connect(&server.admin).unwrap();
        conn.write_all(head.as_bytes()).unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        text
    };
    let metrics = ask("GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(metrics.contains("content-type: text/plain; version=0.0.4\r\n"), "{metrics}");
    assert!(metrics.contains("connection: close\r\n"), "{metrics}");
    assert!(metrics.contains("\ntessera_"), "{metrics}");
    for head in [
        "GET /other HTTP/1.1\r\nhost: x\r\n\r\n",
        "POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
    ] {
        let answer = ask(head);
        assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
        assert!(answer.ends_with("only GET /metrics is served here\n"), "{answer}");
    }
}
