//! Supervision beyond the basics: poison assets, memory limits, overload, crash loops,
//! liveness pings, broken worker frames, deadlines and cancellation. Counts come from
//! the server's own metrics endpoint.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use tessera::pb::v1;
use tonic::Code;
use tonic_types::StatusExt;

use crate::harness::{self, Server, alive};

fn server(env: &[(&str, &str)], args: &[&str], workers: usize) -> Server {
    Server::with(env, args, workers)
}

fn tile(asset: &str) -> v1::GetTileRequest {
    harness::tile_request(12, 1194, 1551, &[asset])
}

/// Describes the assets first, so later jobs are reads only.
async fn warm(server: &Server, assets: &[&str]) {
    let mut client = server.client().await;
    for a in assets {
        client.get_asset_info(v1::GetAssetInfoRequest { asset: (*a).to_owned() }).await.unwrap();
    }
}

fn tokens(dir: &Path, n: usize) {
    for i in 0..n {
        std::fs::write(dir.join(format!("crash-{i}")), b"").unwrap();
    }
}

#[tokio::test]
async fn a_worker_that_aborts_mid_read_is_retried_and_the_caller_sees_the_tile() {
    let crash_dir = tempfile::tempdir().unwrap();
    let s = server(
        &[
            ("TESSERA_TEST_CRASH_READ", "utm_rgb_01=abort"),
            ("TESSERA_TEST_CRASH_TOKENS", crash_dir.path().to_str().unwrap()),
        ],
        &[],
        2,
    );
    let mut client = s.client().await;
    let reference = client.get_tile(tile("utm_rgb_01.tif")).await.unwrap().into_inner();
    tokens(crash_dir.path(), 1);
    let spawns = s.metric("tessera_worker_spawns_total");
    let again = client.get_tile(tile("utm_rgb_01.tif")).await.unwrap().into_inner();
    assert_eq!(again.data, reference.data, "the retried tile differs");
    assert_eq!(s.metric("tessera_worker_crashes_total"), 1);
    assert_eq!(s.metric("tessera_job_retries_total"), 1);
    assert_eq!(s.metric("tessera_asset_quarantines_total"), 0);
    assert_eq!(s.wait_for_workers(2, Duration::from_secs(10)).len(), 2);
    assert_eq!(s.metric("tessera_worker_spawns_total"), spawns + 1, "one replacement");
    s.wait_for_log("worker died pid=", Duration::from_secs(5)).await;
    let log = s.log_text();
    assert_eq!(log.matches("worker died pid=").count(), 1, "the death is logged once:\n{log}");
    assert!(log.contains("signal=Some(6)"), "SIGABRT not logged:\n{log}");
    assert!(log.contains("test hook: crashing on"), "stderr tail not logged:\n{log}");
}

#[tokio::test]
async fn a_poison_asset_is_quarantined_and_fails_fast_while_others_are_served() {
    let s = server(&[("TESSERA_TEST_CRASH_READ", "utm_rgb_02=segv")], &["--quarantine-duration", "60s"], 2);
    warm(&s, &["utm_rgb_02.tif"]).await;
    let mut client = s.client().await;
    let err = client.get_tile(tile("utm_rgb_02.tif")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("asset 'utm_rgb_02.tif'"), "{}", err.message());
    assert!(err.message().contains("SIGSEGV"), "{}", err.message());
    assert_eq!(s.metric("tessera_worker_crashes_total"), 2, "the read and its one retry");
    assert_eq!(s.metric("tessera_asset_quarantines_total"), 1);

    let jobs = s.metric("tessera_jobs_started_total");
    let started = Instant::now();
    let err = client.get_tile(tile("utm_rgb_02.tif")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500), "not fast: {:?}", started.elapsed());
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("quarantined for"), "{}", err.message());
    assert!(err.message().contains("crashed 2 workers"), "{}", err.message());
    assert_eq!(s.metric("tessera_jobs_started_total"), jobs, "a quarantined read reached a worker");
    assert_eq!(s.metric("tessera_quarantine_rejections_total"), 1);
    assert_eq!(s.metric("tessera_worker_crashes_total"), 2);

    // Other assets, and mosaics that include the poison asset, still render.
    let ok = client.get_tile(tile("utm_rgb_00.tif")).await.unwrap().into_inner();
    assert_eq!(ok.assets[0].outcome, v1::AssetOutcome::Used as i32);
    let mosaic = client
        .get_tile(harness::tile_request(12, 1194, 1551, &["utm_rgb_02.tif", "utm_rgb_00.tif"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mosaic.assets[0].outcome, v1::AssetOutcome::Failed as i32);
    assert!(mosaic.assets[0].error.contains("quarantined"));
    assert_eq!(mosaic.assets[1].outcome, v1::AssetOutcome::Used as i32);
    s.wait_for_log("asset quarantined", Duration::from_secs(5)).await;
    assert_eq!(s.wait_for_workers(2, Duration::from_secs(10)).len(), 2);
}

#[tokio::test]
async fn a_worker_over_the_rss_cap_is_recycled_after_its_job() {
    let s = server(&[("TESSERA_TEST_LEAK_READ", "utm_rgb_01=200")], &["--worker-max-rss", "150MiB"], 2);
    let before = s.worker_pids();
    let mut client = s.client().await;
    client.get_tile(tile("utm_rgb_01.tif")).await.unwrap();
    assert_eq!(s.metric("tessera_worker_recycles_rss_total"), 1);
    let after = s.wait_for_replacement(&before, 2, Duration::from_secs(10));
    assert_eq!(after.len(), 2);
    assert_eq!(before.iter().filter(|p| after.contains(p)).count(), 1, "exactly one worker replaced");
    // Reads that do not leak leave workers alone.
    client.get_tile(tile("utm_rgb_00.tif")).await.unwrap();
    assert_eq!(s.metric("tessera_worker_recycles_rss_total"), 1);
}

#[tokio::test]
async fn a_runaway_read_hits_the_worker_memory_limit_and_kills_only_that_worker() {
    let s = server(&[("TESSERA_TEST_LEAK_READ", "utm_rgb_02=2000")], &["--worker-memory-limit", "1GiB"], 2);
    warm(&s, &["utm_rgb_02.tif"]).await;
    let mut client = s.client().await;
    let err = client.get_tile(tile("utm_rgb_02.tif")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("SIGABRT"), "{}", err.message());
    assert_eq!(s.metric("tessera_worker_crashes_total"), 2);
    assert_eq!(s.wait_for_workers(2, Duration::from_secs(10)).len(), 2);
    client.get_tile(tile("utm_rgb_00.tif")).await.unwrap();
}

#[tokio::test]
async fn too_many_tiles_in_flight_are_resource_exhausted_with_a_retry_hint() {
    let s = server(&[("TESSERA_TEST_SLOW_READ", "utm_rgb_01=1000")], &["--max-in-flight-tiles", "2"], 3);
    warm(&s, &["utm_rgb_01.tif"]).await;
    let client = s.client().await;
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let mut c = client.clone();
            // Distinct requests (the quality differs): identical ones would share a render.
            let mut request = tile("utm_rgb_01.tif");
            request.quality = 50 + i as u32;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i * 100)).await;
                c.get_tile(request).await
            })
        })
        .collect();
    let mut refused = Vec::new();
    let mut served = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => served += 1,
            Err(e) => refused.push(e),
        }
    }
    assert_eq!(served, 2);
    assert_eq!(refused.len(), 1);
    let e = &refused[0];
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("2 tiles are already being rendered"), "{}", e.message());
    let retry = e.get_details_retry_info().expect("a retry hint");
    assert_eq!(retry.retry_delay, Some(Duration::from_millis(200)));

    // The reads of GetStatistics (GetPoint, GetPreview) take the same permits.
    let slow: Vec<_> = (0..2)
        .map(|i| {
            let mut c = client.clone();
            let mut request = tile("utm_rgb_01.tif");
            request.quality = 60 + i;
            tokio::spawn(async move { c.get_tile(request).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let statistics = v1::GetStatisticsRequest { asset: "utm_rgb_00.tif".into(), ..Default::default() };
    let e = client.clone().get_statistics(statistics.clone()).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::ResourceExhausted,
            "server overloaded: 2 tiles and reads are already in flight (--max-in-flight-tiles); retry later"
        )
    );
    for call in slow {
        call.await.unwrap().unwrap();
    }
    let answer = client.clone().get_statistics(statistics).await.unwrap().into_inner();
    assert_eq!(answer.bands.len(), 3);
    assert_eq!(s.metric("tessera_reads_total{rpc=\"GetStatistics\",status=\"RESOURCE_EXHAUSTED\"}"), 1);
    assert_eq!(s.metric("tessera_reads_total{rpc=\"GetStatistics\",status=\"OK\"}"), 1);
}

#[tokio::test]
async fn a_read_that_cannot_get_a_worker_in_time_is_resource_exhausted() {
    let s = server(&[("TESSERA_TEST_SLOW_READ", "utm_rgb_01=1500")], &["--max-worker-wait", "300ms"], 1);
    warm(&s, &["utm_rgb_01.tif", "utm_rgb_00.tif"]).await;
    let mut c1 = s.client().await;
    let first = tokio::spawn(async move { c1.get_tile(tile("utm_rgb_01.tif")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let err = s.client().await.get_tile(tile("utm_rgb_00.tif")).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("no worker became free within 300 ms"), "{}", err.message());
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_millis(800), "{waited:?}");
    assert!(err.get_details_retry_info().is_some());
    assert_eq!(s.metric("tessera_worker_wait_rejections_total"), 1);
    first.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_crash_loop_turns_health_not_serving_until_workers_start_again() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let fail_file = tempfile::NamedTempFile::new().unwrap();
    let fail_path = fail_file.path().to_owned();
    std::fs::remove_file(&fail_path).unwrap();
    let s = server(
        &[("TESSERA_TEST_FAIL_HELLO_FILE", fail_path.to_str().unwrap())],
        &["--crash-loop-threshold", "3", "--ping-interval", "200ms"],
        2,
    );
    let channel = tonic::transport::Channel::from_shared(s.url()).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    let status = |h: &mut HealthClient<_>| {
        let mut h = h.clone();
        async move { h.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status }
    };
    assert_eq!(status(&mut health).await, 1, "SERVING at start");

    std::fs::write(&fail_path, b"").unwrap();
    for pid in s.worker_pids() {
        harness::signal(pid, Signal::SIGKILL);
    }
    let until = Instant::now() + Duration::from_secs(10);
    while status(&mut health).await != 2 {
        assert!(Instant::now() < until, "health never turned NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s.metric("tessera_worker_spawn_failures_total") >= 3);

    std::fs::remove_file(&fail_path).unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while status(&mut health).await != 1 {
        assert!(Instant::now() < until, "health never came back to SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.wait_for_workers(2, Duration::from_secs(10)).len(), 2);
    s.client().await.get_tile(tile("utm_rgb_00.tif")).await.unwrap();
}

#[tokio::test]
async fn an_idle_worker_that_stops_answering_pings_is_replaced() {
    let s = server(&[], &["--ping-interval", "200ms", "--ping-timeout", "300ms"], 2);
    let workers = s.worker_pids();
    let victim = workers[0];
    harness::signal(victim, Signal::SIGSTOP);
    let until = Instant::now() + Duration::from_secs(5);
    while alive(victim) {
        assert!(Instant::now() < until, "the stopped worker was never replaced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = s.wait_for_workers(2, Duration::from_secs(5));
    assert_eq!(after.len(), 2);
    assert!(after.contains(&workers[1]), "the healthy worker was replaced too");
    assert!(s.metric("tessera_worker_pings_total") >= 2);
    assert_eq!(s.metric("tessera_worker_kills_total"), 1);
    s.client().await.get_tile(tile("utm_rgb_00.tif")).await.unwrap();
}

#[tokio::test]
async fn a_spare_killed_before_any_request_took_it_is_replaced_without_waiting_for_one() {
    let s = server(&[], &["--ping-interval", "200ms", "--ping-timeout", "300ms"], 2);
    let first = s.worker_pids();
    assert_eq!(first.len(), 2);
    // An idle worker killed: a ping finds it gone, and a spare is started in its slot.
    harness::signal(first[0], Signal::SIGKILL);
    let with_spare = s.wait_for_replacement(&first[..1], 2, Duration::from_secs(10));
    assert_eq!(with_spare.len(), 2, "the killed worker was not replaced: {with_spare:?}");
    let spare = *with_spare.iter().find(|p| !first.contains(p)).unwrap();
    // Started and waiting: a few pings later nothing has changed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.worker_pids(), with_spare);
    assert_eq!(s.metric("tessera_worker_spawns_total"), 3);
    // The spare killed while it waits for a request: its slot is free again at the next
    // tick, not at the next request that needs a second worker.
    harness::signal(spare, Signal::SIGKILL);
    let after = s.wait_for_replacement(&[spare], 2, Duration::from_secs(10));
    assert_eq!(after.len(), 2, "the pool stayed at {after:?} after its spare was killed");
    assert!(after.contains(&first[1]) && !after.contains(&spare), "{after:?}");
    assert_eq!(s.metric("tessera_worker_spawns_total"), 4, "two first workers and two replacements");
    assert_eq!(s.metric("tessera_worker_kills_total"), 0, "nothing was killed by the front");
    let tile = s.client().await.get_tile(tile("utm_rgb_00.tif")).await.unwrap().into_inner();
    assert!(tile.data.starts_with(b"\x89PNG"));
}

#[tokio::test]
async fn broken_frames_from_a_worker_kill_it_and_the_front_keeps_serving() {
    for (kind, asset) in [
        ("oversize", "utm_rgb_01.tif"),
        ("garbage", "utm_rgb_02.tif"),
        ("wrong_id", "utm_rgb_10.tif"),
        ("short", "utm_rgb_11.tif"),
        ("outside_region", "utm_rgb_12.tif"),
    ] {
        let needle = asset.trim_end_matches(".tif");
        let s = server(&[("TESSERA_TEST_GARBAGE_READ", &format!("{needle}={kind}"))], &[], 2);
        warm(&s, &[asset]).await;
        let before = s.worker_pids();
        let err = s.client().await.get_tile(tile(asset)).await.unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{kind}: {err:?}");
        assert_eq!(s.metric("tessera_worker_kills_total"), 1, "{kind}");
        let after = s.wait_for_replacement(&before, 2, Duration::from_secs(10));
        assert_eq!(before.iter().filter(|p| after.contains(p)).count(), 1, "{kind}: one worker replaced");
        let ok = s.client().await.get_tile(tile("utm_rgb_00.tif")).await.unwrap().into_inner();
        assert_eq!(ok.content_type, "image/png", "{kind}");
        assert!(!s.log_text().contains("panicked"), "{kind}: the front panicked");
    }
}

#[tokio::test]
async fn a_request_whose_deadline_has_passed_starts_no_job() {
    let s = server(&[], &[], 2);
    let mut request = tonic::Request::new(tile("utm_rgb_00.tif"));
    // 10 ms, less than the server's margin for the answer: nothing can be started.
    request.metadata_mut().insert("grpc-timeout", "10m".parse().unwrap());
    let err = s.client().await.get_tile(request).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(s.metric("tessera_jobs_started_total"), 0);
}

#[tokio::test]
async fn a_cancelled_request_starts_no_further_reads_and_its_workers_return_to_the_pool() {
    let s = server(&[("TESSERA_TEST_SLOW_READ", "utm_rgb=800")], &[], 2);
    warm(&s, &harness::UTM).await;
    let workers = s.worker_pids();
    let jobs = s.metric("tessera_jobs_started_total");
    // No deadline: the client just goes away after 300 ms (the call is dropped).
    let mut client = s.client().await;
    let call = client.get_tile(harness::tile_request(12, 1194, 1551, &harness::UTM));
    assert!(tokio::time::timeout(Duration::from_millis(300), call).await.is_err());
    // Let the two reads already running finish, and the two queued behind them in their
    // workers' pipes (pipelining: one behind each read, already sent, so they run).
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(s.metric("tessera_jobs_pipelined_total"), 2);
    assert_eq!(s.metric("tessera_jobs_started_total"), jobs + 4, "reads started after the cancel");
    assert_eq!(s.metric("tessera_pool_busy_workers"), 0);
    assert_eq!(s.worker_pids(), workers, "no worker was killed");
    assert_eq!(s.metric("tessera_worker_kills_total"), 0);
}
