//! Supervision under faults: a worker killed mid-read, a worker that hangs, recycling,
//! and no worker left behind after shutdown.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use tessera::pb::v1;
use tonic::Code;

use crate::harness::{self, Server, ServerOptions, alive};

/// A server whose reads of `slow` assets take `millis` and whose workers mark the read
/// they are serving in `busy_dir`.
fn slow_server(busy_dir: &Path, slow: &str, millis: u64, workers: usize, args: &[&str]) -> Server {
    Server::start_with(ServerOptions {
        workers,
        env: vec![
            ("TESSERA_TEST_SLOW_READ".into(), format!("{slow}={millis}")),
            ("TESSERA_TEST_BUSY_DIR".into(), busy_dir.display().to_string()),
        ],
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        wait_ready: true,
    })
}

/// Waits for a worker to start a read, and returns its pid.
async fn busy_worker(busy_dir: &Path) -> u32 {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(entry) = std::fs::read_dir(busy_dir).unwrap().flatten().next() {
            return entry.file_name().to_str().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < until, "no worker started the read");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_worker_killed_mid_read_is_retried_on_another_worker() {
    let busy = tempfile::tempdir().unwrap();
    let server = slow_server(busy.path(), "utm_rgb_01", 800, 2, &[]);
    let before = server.worker_pids();
    assert_eq!(before.len(), 2);
    let mut client = server.client().await;
    // The reference tile, read without faults.
    let reference = client
        .get_tile(harness::tile_request(12, 1194, 1551, &["utm_rgb_01.tif"]))
        .await
        .unwrap()
        .into_inner();

    let mut c2 = client.clone();
    let call =
        tokio::spawn(
            async move { c2.get_tile(harness::tile_request(12, 1194, 1551, &["utm_rgb_01.tif"])).await },
        );
    let victim = busy_worker(busy.path()).await;
    harness::signal(victim, Signal::SIGKILL);
    let tile = call.await.unwrap().expect("the read was retried on another worker").into_inner();
    assert_eq!(tile.data, reference.data);

    let after = server.wait_for_replacement(&[victim], 2, Duration::from_secs(10));
    assert_eq!(after.len(), 2, "pool did not return to full size: {after:?}");
    assert!(!after.contains(&victim));
    assert!(!alive(victim));
    server.wait_for_log("worker died", Duration::from_secs(5)).await;
    let log = server.log_text();
    assert!(log.contains(&format!("worker_pid={victim}")) || log.contains(&format!("pid={victim}")));
    assert!(log.contains("signal=Some(9)"), "signal not logged:\n{log}");
}

#[tokio::test]
async fn a_hung_worker_is_killed_at_the_deadline_and_replaced() {
    let busy = tempfile::tempdir().unwrap();
    // Reads take 1 s; the client allows 2.5 s; the worker is stopped mid-read.
    let server = slow_server(busy.path(), "utm_rgb_02", 1000, 2, &[]);
    let mut client = server.client().await;
    // The deadline travels as the grpc-timeout header; tonic's own client-side timer is
    // not set, so what comes back is the server's answer.
    let mut request = tonic::Request::new(harness::tile_request(12, 1194, 1551, &["utm_rgb_02.tif"]));
    request.metadata_mut().insert("grpc-timeout", "2500m".parse().unwrap());
    let started = Instant::now();
    let call = tokio::spawn(async move { client.get_tile(request).await });
    let victim = busy_worker(busy.path()).await;
    harness::signal(victim, Signal::SIGSTOP);
    let err = call.await.unwrap().unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(elapsed < Duration::from_millis(2500 + 100), "answered after {elapsed:?}");
    assert_eq!(server.metric("tessera_worker_kills_total"), 1);
    let after = server.wait_for_replacement(&[victim], 2, Duration::from_secs(10));
    assert_eq!(after.len(), 2, "pool did not return to full size: {after:?}");
    assert!(!after.contains(&victim), "the stopped worker was not replaced");
    assert!(!alive(victim));
    // The server still serves.
    let ok = server.client().await.get_tile(harness::tile_request(12, 1194, 1551, &["utm_rgb_00.tif"])).await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn the_read_timeout_bounds_a_hung_read_without_a_client_deadline() {
    let busy = tempfile::tempdir().unwrap();
    let server = slow_server(busy.path(), "utm_rgb_02", 5000, 2, &["--read-timeout", "1s"]);
    let started = Instant::now();
    let err = server
        .client()
        .await
        .get_tile(harness::tile_request(12, 1194, 1551, &["utm_rgb_02.tif"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    let elapsed = started.elapsed();
    // The info job is quick; the read is cut at 1 s, retried once on another worker
    // (the caller's 30 s deadline leaves time), and cut again at 1 s.
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(2600), "{elapsed:?}");
    assert_eq!(server.metric("tessera_worker_kills_total"), 2);
    assert_eq!(server.metric("tessera_job_retries_total"), 1);
    assert!(err.message().contains("utm_rgb_02.tif"), "{}", err.message());
    assert_eq!(server.wait_for_workers(2, Duration::from_secs(10)).len(), 2);
}

#[tokio::test]
async fn workers_are_recycled_after_max_jobs() {
    let server = Server::start_with(ServerOptions {
        args: vec!["--max-jobs-per-worker".into(), "2".into()],
        ..Default::default()
    });
    let first = server.worker_pids();
    let mut client = server.client().await;
    // Budgets are 2 jobs ±1 per worker: 12 tiles (info + read jobs) retire every worker.
    for _ in 0..12 {
        client.get_tile(harness::tile_request(12, 1194, 1551, &["utm_rgb_00.tif"])).await.unwrap();
    }
    let recycled = server.metric("tessera_worker_recycles_max_jobs_total");
    assert!(recycled >= 2, "only {recycled} recycles");
    assert_eq!(
        server.metric("tessera_worker_crashes_total") + server.metric("tessera_worker_kills_total"),
        0
    );
    let after = server.wait_for_workers(2, Duration::from_secs(10));
    assert_eq!(after.len(), 2);
    assert!(first.iter().all(|p| !after.contains(p)), "workers {first:?} were not recycled: {after:?}");
}

#[tokio::test]
async fn shutdown_leaves_no_worker_process() {
    let mut server = Server::start_with(ServerOptions { workers: 3, ..Default::default() });
    let workers = server.worker_pids();
    assert_eq!(workers.len(), 3);
    server.client().await.get_tile(harness::tile_request(12, 1194, 1551, &["utm_rgb_00.tif"])).await.unwrap();
    let status = server.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "server exited with {status:?}");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived the server");
    }
    server.wait_for_log("all workers stopped", Duration::from_secs(5)).await;
}

#[tokio::test]
async fn in_flight_requests_finish_during_graceful_shutdown() {
    let busy = tempfile::tempdir().unwrap();
    let mut server = slow_server(busy.path(), "utm_rgb_01", 1000, 2, &[]);
    let mut client = server.client().await;
    let call = tokio::spawn(async move {
        client.get_tile(harness::tile_request(12, 1194, 1551, &["utm_rgb_01.tif"])).await
    });
    busy_worker(busy.path()).await;
    let status = server.terminate(Duration::from_secs(15)).await;
    assert!(status.success());
    let tile = call.await.unwrap().expect("the in-flight request was lost").into_inner();
    assert_eq!(tile.assets[0].outcome, v1::AssetOutcome::Used as i32);
}

#[tokio::test]
async fn outstanding_reads_are_abandoned_once_earlier_assets_fill_every_pixel() {
    let busy = tempfile::tempdir().unwrap();
    let server = slow_server(busy.path(), "copy_of_utm", 3000, 2, &[]);
    let mut client = server.client().await;
    // A zoom-16 tile well inside utm_rgb_00.tif: the first asset fills every pixel.
    let (x, y) = harness::tile_at(-75.0305, 39.9650, 16);
    // Metadata first, so the timing below is about the reads.
    for asset in ["utm_rgb_00.tif", "copy_of_utm_rgb_00.tif"] {
        client.get_asset_info(v1::GetAssetInfoRequest { asset: asset.into() }).await.unwrap();
    }
    let started = Instant::now();
    let tile = client
        .get_tile(harness::tile_request(16, x, y, &["utm_rgb_00.tif", "copy_of_utm_rgb_00.tif"]))
        .await
        .unwrap()
        .into_inner();
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "waited for the slow read: {:?}",
        started.elapsed()
    );
    let outcomes: Vec<_> = tile.assets.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, vec![v1::AssetOutcome::Used as i32, v1::AssetOutcome::NotNeeded as i32]);

    // In the other order the slow asset has priority: the tile must wait for it.
    let started = Instant::now();
    let tile = client
        .get_tile(harness::tile_request(16, x, y, &["copy_of_utm_rgb_00.tif", "utm_rgb_00.tif"]))
        .await
        .unwrap()
        .into_inner();
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(tile.assets[0].outcome, v1::AssetOutcome::Used as i32);
    // The abandoned read finished on its worker, which went back to the pool.
    assert_eq!(server.wait_for_workers(2, Duration::from_secs(5)).len(), 2);
}

#[tokio::test]
async fn workers_exit_when_the_front_is_killed() {
    let mut server = Server::start_with(ServerOptions { workers: 3, ..Default::default() });
    let workers = server.worker_pids();
    assert_eq!(workers.len(), 3);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while workers.iter().any(|p| alive(*p)) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<_> = workers.iter().filter(|p| alive(**p)).collect();
    assert!(left.is_empty(), "workers {left:?} outlived a SIGKILLed front");
}
