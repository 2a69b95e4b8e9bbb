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
