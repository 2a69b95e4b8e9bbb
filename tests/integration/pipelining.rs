//! Pipelining: a local read queued in a busy worker's pipe behind its read (tiles read
//! by read: `--whole-tiles false`). The tiles
//! are the same bytes as when every read has a worker of its own; a worker that dies
//! with a job queued behind its read costs that job nothing but a new worker.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tessera::pb::v1;
use tonic::Status;

use crate::harness::{self, Server};

/// Tiles read by read, as a pool of one worker reads them with whole tiles off (with
/// them, such a pool reads a tile in one job: `whole_tiles.rs`).
const SPLIT: &[&str] = &["--whole-tiles", "false"];

/// The z12 tile of the six UTM assets (it touches every one).
fn mosaic() -> v1::GetTileRequest {
    harness::tile_request(12, 1194, 1551, &harness::UTM)
}

/// Describes the assets first, so the tile's jobs are reads only.
async fn warm(server: &Server) {
    let mut client = server.client().await;
    for a in harness::UTM {
        client.get_asset_info(v1::GetAssetInfoRequest { asset: a.to_owned() }).await.unwrap();
    }
}

/// The z12 tile of one asset, asked for on a connection of its own (with a gRPC
/// deadline of `timeout` if given), to be spawned beside other calls.
async fn tile_of(
    server: String,
    asset: &'static str,
    timeout: Option<Duration>,
) -> Result<v1::GetTileResponse, Status> {
    let mut client = tessera::pb::v1::tile_service_client::TileServiceClient::connect(server).await.unwrap();
    let mut request = tonic::Request::new(harness::tile_request(12, 1194, 1551, &[asset]));
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    client.get_tile(request).await.map(tonic::Response::into_inner)
}

/// Waits (up to 5 s) for the counter `metric` to move past `from`.
async fn until_moved(s: &Server, metric: &str, from: u64) {
    let waiting = Instant::now();
    while s.metric(metric) == from {
        assert!(waiting.elapsed() < Duration::from_secs(5), "{metric} stayed at {from}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn reads_queued_behind_one_worker_make_the_tile_every_read_on_its_own_worker_makes() {
    let (one, six) = (Server::with(&[], SPLIT, 1), Server::with(&[], &[], 6));
    warm(&one).await;
    warm(&six).await;
    let reads = one.metric("tessera_jobs_started_total");
    let queued = one.client().await.get_tile(mosaic()).await.unwrap().into_inner();
    let apart = six.client().await.get_tile(mosaic()).await.unwrap().into_inner();
    assert_eq!(queued.data, apart.data, "a pipelined read changed the tile");
    let used = queued.assets.iter().filter(|a| a.outcome == v1::AssetOutcome::Used as i32).count();
    assert!(used >= 2, "the tile needs several reads, {used} were used");
    // Reads after the first waited in the worker's pipe behind the one before it. (One
    // whose exchange task first runs after the worker has answered, as under load, takes
    // the worker back from the pool instead: not every one need have waited there.)
    let started = one.metric("tessera_jobs_started_total") - reads;
    assert!(started >= used as u64, "{started} jobs for {used} reads");
    let pipelined = one.metric("tessera_jobs_pipelined_total");
    assert!(pipelined >= 1 && pipelined < started, "{pipelined} of {started} jobs waited in the pipe");
    assert_eq!(six.metric("tessera_jobs_pipelined_total"), 0, "idle workers take reads at once");
    assert_eq!(one.metric("tessera_worker_spawns_total"), 1);
    assert_eq!(one.metric("tessera_worker_kills_total"), 0);
    assert_eq!(one.metric("tessera_worker_crashes_total"), 0);
}

#[tokio::test]
async fn a_read_queued_behind_one_whose_worker_is_killed_runs_on_the_next_worker_uncounted() {
    let s = Server::with(&[("TESSERA_TEST_SLOW_READ", "utm_rgb=400")], SPLIT, 1);
    warm(&s).await;
    let mut client = s.client().await;
    let reference = client.get_tile(mosaic()).await.unwrap().into_inner();
    let worker = s.worker_pids();
    assert_eq!(worker.len(), 1);
    let (pipelined, retries) =
        (s.metric("tessera_jobs_pipelined_total"), s.metric("tessera_job_retries_total"));
    let call = tokio::spawn(async move { client.get_tile(mosaic()).await });
    // 150 ms into the first read (400 ms): the second waits in the worker's pipe.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(s.metric("tessera_jobs_pipelined_total"), pipelined + 1, "no read queued yet");
    harness::signal(worker[0], Signal::SIGKILL);
    let tile = call.await.unwrap().expect("the tile survives the kill").into_inner();
    assert_eq!(tile.data, reference.data, "the tile changed");
    assert_eq!(s.metric("tessera_worker_crashes_total"), 1);
    // The running read is retried (killed from outside); the queued one never ran: it
    // waits for a worker again, not counted as a retry.
    assert_eq!(s.metric("tessera_job_retries_total"), retries + 1);
    assert_eq!(s.metric("tessera_asset_quarantines_total"), 0);
    assert_eq!(s.metric("tessera_worker_kills_total"), 0);
    assert_ne!(s.wait_for_workers(1, Duration::from_secs(10)), worker, "a new worker took over");
}

#[tokio::test]
async fn a_job_that_cannot_wait_in_a_pipe_keeps_its_turn_for_a_worker() {
    let s = Server::with(&[("TESSERA_TEST_SLOW_READ", "utm_rgb=300")], SPLIT, 1);
    warm(&s).await;
    let tile = |asset: &'static str, after: u64| {
        let server = s.url();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after)).await;
            tile_of(server, asset, None).await.unwrap();
            Instant::now()
        })
    };
    // The first read runs, the second waits in the worker's pipe behind it.
    let (first, second) = (tile("utm_rgb_00.tif", 0), tile("utm_rgb_01.tif", 20));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A job that cannot be queued (an info job) waits for the worker; a read asked for
    // after it must not jump ahead by waiting in the pipe.
    let info = tokio::spawn({
        let server = s.url();
        async move {
            let mut client =
                tessera::pb::v1::tile_service_client::TileServiceClient::connect(server).await.unwrap();
            client
                .get_asset_info(v1::GetAssetInfoRequest { asset: "copy_of_utm_rgb_00.tif".to_owned() })
                .await
                .unwrap();
            Instant::now()
        }
    });
    let later = tile("utm_rgb_02.tif", 50);
    let (info, later) = (info.await.unwrap(), later.await.unwrap());
    assert!(info < later, "the read asked for after the info job was served first");
    first.await.unwrap();
    second.await.unwrap();
    assert_eq!(s.metric("tessera_jobs_pipelined_total"), 1, "only the second read waited in the pipe");
}

#[tokio::test]
async fn a_queued_read_whose_caller_has_gone_is_withdrawn_not_run() {
    let s = Server::with(&[("TESSERA_TEST_SLOW_READ", "utm_rgb=400")], SPLIT, 1);
    warm(&s).await;
    // The first read runs (400 ms); the second waits in the worker's pipe behind it,
    // and its caller gives up long before the first is done.
    let started = s.metric("tessera_jobs_started_total");
    let first = tokio::spawn(tile_of(s.url(), "utm_rgb_00.tif", None));
    until_moved(&s, "tessera_jobs_started_total", started).await;
    let second = tile_of(s.url(), "utm_rgb_01.tif", Some(Duration::from_millis(150))).await;
    let gone = second.expect_err("the second caller's deadline is 150 ms");
    assert_eq!(gone.code(), tonic::Code::DeadlineExceeded, "{gone:?}");
    assert_eq!(s.metric("tessera_jobs_pipelined_total"), 1, "the second read did not wait in the pipe");
    first.await.unwrap().expect("the first tile");
    // The worker took the second job from its pipe, saw it withdrawn and answered it
    // unrun (the counter moves only on that answer); the next read gets the worker.
    let third = tile_of(s.url(), "utm_rgb_02.tif", None).await.expect("a read after the withdrawn one");
    assert!(!third.data.is_empty());
    assert_eq!(s.metric("tessera_jobs_withdrawn_total"), 1);
    // Jobs started: the info jobs of `warm` (one an asset) and the three reads, the
    // withdrawn one counted as it was queued. (The third read may itself wait in the
    // pipe, behind the withdrawn job's answer.)
    assert_eq!(s.metric("tessera_jobs_started_total"), harness::UTM.len() as u64 + 3);
    assert_eq!(s.metric("tessera_worker_kills_total"), 0);
    assert_eq!(s.metric("tessera_worker_crashes_total"), 0);
    assert_eq!(s.metric("tessera_worker_spawns_total"), 1);
}

#[tokio::test]
async fn a_worker_over_its_memory_cap_takes_no_more_reads_into_its_pipe() {
    // Each read waits 300 ms; the first one grows the worker past its cap.
    let s = Server::with(
        &[("TESSERA_TEST_SLOW_READ", "utm_rgb=300"), ("TESSERA_TEST_LEAK_READ", "utm_rgb_00=200")],
        &["--worker-max-rss", "150MiB", "--whole-tiles", "false"],
        1,
    );
    warm(&s).await;
    let tile = |asset: &'static str| tokio::spawn(tile_of(s.url(), asset, None));
    let worker = s.worker_pids();
    let started = s.metric("tessera_jobs_started_total");
    let first = tile("utm_rgb_00.tif");
    until_moved(&s, "tessera_jobs_started_total", started).await;
    // Queued behind the first while the worker is still under its cap.
    let second = tile("utm_rgb_01.tif");
    until_moved(&s, "tessera_jobs_pipelined_total", 0).await;
    let third = tile("utm_rgb_02.tif");
    for call in [first, second, third] {
        assert!(!call.await.unwrap().expect("every tile is served").data.is_empty());
    }
    // Once over its cap, the worker took no job into its pipe: the third read waited
    // for the worker that replaced it.
    assert_eq!(s.metric("tessera_jobs_pipelined_total"), 1);
    assert_eq!(s.metric("tessera_worker_recycles_rss_total"), 1);
    assert_eq!(s.metric("tessera_worker_spawns_total"), 2);
    assert_eq!(s.metric("tessera_worker_kills_total") + s.metric("tessera_worker_crashes_total"), 0);
    assert_ne!(s.wait_for_workers(1, Duration::from_secs(10)), worker, "a new worker took over");
}

#[tokio::test]
async fn a_queued_read_its_tile_no_longer_needs_is_answered_unrun() {
    // The first read takes 300 ms, so the second waits in the worker's pipe behind it;
    // reading the second asset would crash the worker.
    let s = Server::with(
        &[("TESSERA_TEST_SLOW_READ", "/utm_rgb_00=300"), ("TESSERA_TEST_CRASH_READ", "copy_of_utm=abort")],
        SPLIT,
        1,
    );
    let mut client = s.client().await;
    let assets = ["utm_rgb_00.tif", "copy_of_utm_rgb_00.tif"];
    for asset in assets {
        client.get_asset_info(v1::GetAssetInfoRequest { asset: asset.into() }).await.unwrap();
    }
    // A zoom-16 tile well inside utm_rgb_00.tif: its first asset fills every pixel.
    let (x, y) = harness::tile_at(-75.0305, 39.9650, 16);
    let started = s.metric("tessera_jobs_started_total");
    let tile = client.get_tile(harness::tile_request(16, x, y, &assets)).await.unwrap().into_inner();
    let outcomes: Vec<_> = tile.assets.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, vec![v1::AssetOutcome::Used as i32, v1::AssetOutcome::NotNeeded as i32]);
    assert_eq!(s.metric("tessera_jobs_pipelined_total"), 1, "the second read did not wait in the pipe");
    assert_eq!(s.metric("tessera_jobs_started_total"), started + 2);
    // The worker took the second read from its pipe after answering the first, and
    // answered it unrun: the first had left no pixel for it. (Had the front seen the
    // first answer and withdrawn the second before the worker took it, that is
    // answered unrun too; either way the crashing read never ran.) The tile is sent
    // as soon as the first read covers it, so that answer may come after the tile.
    let unrun = || s.metric("tessera_reads_covered_total") + s.metric("tessera_jobs_withdrawn_total");
    let waiting = Instant::now();
    while unrun() == 0 && s.metric("tessera_worker_crashes_total") == 0 {
        assert!(waiting.elapsed() < Duration::from_secs(5), "the second read was never answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (covered, withdrawn) =
        (s.metric("tessera_reads_covered_total"), s.metric("tessera_jobs_withdrawn_total"));
    assert_eq!(covered + withdrawn, 1, "{covered} covered, {withdrawn} withdrawn");
    assert_eq!(s.metric("tessera_worker_crashes_total"), 0, "the second read ran");
    // The same tile by itself is the same bytes.
    let alone = client.get_tile(harness::tile_request(16, x, y, &assets[..1])).await.unwrap().into_inner();
    assert_eq!(tile.data, alone.data);
}
