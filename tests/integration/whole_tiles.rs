//! Whole-tile jobs: a tile whose reads would not run in parallel (one worker, or as many
//! tiles in flight as workers) goes to one worker, which reads, selects and encodes it in one job. The tile is
//! the bytes the read-by-read path makes; a whole-tile job that fails is run again read
//! by read, so that each asset's outcome, and the blame for a crash, is what that path
//! reports.

use std::time::Duration;

use tessera::pb::v1;

use crate::harness::{self, Server};

/// Describes `assets` first, so the tiles' jobs are reads only.
async fn warm(server: &Server, assets: &[&str]) {
    let mut client = server.client().await;
    for a in assets {
        client.get_asset_info(v1::GetAssetInfoRequest { asset: (*a).to_owned() }).await.unwrap();
    }
}

fn outcomes(tile: &v1::GetTileResponse) -> Vec<i32> {
    tile.assets.iter().map(|a| a.outcome).collect()
}

#[tokio::test]
async fn a_tile_on_a_pool_of_one_is_one_job_and_the_bytes_of_its_reads_one_by_one() {
    let whole = Server::with(&[], &[], 1);
    let split = Server::with(&[], &["--whole-tiles", "false"], 1);
    let idle = Server::with(&[], &[], 2);
    for s in [&whole, &split, &idle] {
        warm(s, &harness::UTM).await;
        warm(s, &["copy_of_utm_rgb_00.tif"]).await;
    }
    // The z12 tile of the six assets, and a z16 tile inside one of them whose first
    // asset covers it (the second is not needed), in PNG and in JPEG.
    let (x, y) = harness::tile_at(-75.0305, 39.9650, 16);
    let mut requests = vec![
        harness::tile_request(12, 1194, 1551, &harness::UTM),
        harness::tile_request(16, x, y, &["utm_rgb_00.tif", "copy_of_utm_rgb_00.tif"]),
    ];
    let mut jpeg = harness::tile_request(12, 1194, 1551, &harness::UTM);
    jpeg.format = v1::ImageFormat::Jpeg as i32;
    jpeg.quality = 70;
    requests.push(jpeg);
    for request in requests {
        let jobs = whole.metric("tessera_jobs_started_total");
        let tiles = whole.metric("tessera_whole_tiles_total");
        let one = whole.client().await.get_tile(request.clone()).await.unwrap().into_inner();
        let by_read = split.client().await.get_tile(request.clone()).await.unwrap().into_inner();
        let spread = idle.client().await.get_tile(request.clone()).await.unwrap().into_inner();
        assert_eq!(one.data, by_read.data, "a whole tile differs from its reads one by one");
        assert_eq!(one.data, spread.data, "a whole tile differs from its reads in parallel");
        let shape =
            |t: &v1::GetTileResponse| (t.content_type.clone(), t.width, t.height, t.dtype, t.band_count);
        assert_eq!(shape(&one), shape(&by_read));
        assert_eq!(one.mask, by_read.mask);
        assert_eq!(whole.metric("tessera_whole_tiles_total"), tiles + 1);
        assert_eq!(whole.metric("tessera_jobs_started_total"), jobs + 1, "one job for the tile");
        // Read one after another in priority order, stopping once the tile is complete:
        // the used assets come first, the rest were not needed.
        let used = one.assets.iter().take_while(|a| a.outcome == v1::AssetOutcome::Used as i32).count();
        assert!(used >= 1);
        assert!(
            one.assets[used..].iter().all(|a| a.outcome == v1::AssetOutcome::NotNeeded as i32
                || a.outcome == v1::AssetOutcome::Skipped as i32),
            "{:?}",
            outcomes(&one)
        );
    }
    assert_eq!(split.metric("tessera_whole_tiles_total"), 0, "--whole-tiles false");
    assert_eq!(idle.metric("tessera_whole_tiles_total"), 0, "a lone caller's reads spread over idle workers");
    for s in [&whole, &split, &idle] {
        assert_eq!(s.metric("tessera_whole_tile_fallbacks_total"), 0);
        assert_eq!(s.metric("tessera_worker_crashes_total") + s.metric("tessera_worker_kills_total"), 0);
    }
}

#[tokio::test]
async fn a_whole_tile_that_crashes_its_worker_is_run_again_read_by_read_which_blames_the_asset() {
    let s =
        Server::with(&[("TESSERA_TEST_CRASH_READ", "utm_rgb_02=segv")], &["--quarantine-duration", "60s"], 1);
    let assets = ["utm_rgb_02.tif", "utm_rgb_00.tif"];
    warm(&s, &assets).await;
    let request = harness::tile_request(12, 1194, 1551, &assets);
    let mut client = s.client().await;
    let tile = client.get_tile(request.clone()).await.unwrap().into_inner();
    // The whole-tile job crashed its worker (not retried, blamed on no asset); read by
    // read, the poison asset's read and its one retry crashed two more and quarantined
    // it; the other asset made the tile.
    assert_eq!(outcomes(&tile), vec![v1::AssetOutcome::Failed as i32, v1::AssetOutcome::Used as i32]);
    assert!(tile.assets[0].error.contains("SIGSEGV"), "{}", tile.assets[0].error);
    assert_eq!(s.metric("tessera_whole_tile_fallbacks_total"), 1);
    assert_eq!(s.metric("tessera_whole_tiles_total"), 0);
    assert_eq!(s.metric("tessera_worker_crashes_total"), 3);
    assert_eq!(s.metric("tessera_asset_quarantines_total"), 1);
    let alone =
        client.get_tile(harness::tile_request(12, 1194, 1551, &assets[1..])).await.unwrap().into_inner();
    assert_eq!(tile.data, alone.data, "the tile without the poison asset");
    // With an asset of the tile quarantined, the tile goes read by read at once.
    let again = client.get_tile(request).await.unwrap().into_inner();
    assert_eq!(again.data, tile.data);
    assert!(again.assets[0].error.contains("quarantined"), "{}", again.assets[0].error);
    assert_eq!(s.metric("tessera_whole_tile_fallbacks_total"), 1);
    assert_eq!(s.metric("tessera_worker_crashes_total"), 3);
    assert_eq!(s.wait_for_workers(1, Duration::from_secs(10)).len(), 1);
}

#[tokio::test]
async fn a_whole_tile_past_its_deadline_is_deadline_exceeded_and_its_worker_replaced() {
    let s = Server::with(&[("TESSERA_TEST_SLOW_READ", "utm_rgb=3000")], &[], 1);
    warm(&s, &harness::UTM).await;
    let mut request = tonic::Request::new(harness::tile_request(12, 1194, 1551, &harness::UTM));
    request.set_timeout(Duration::from_millis(500));
    let err = s.client().await.get_tile(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert_eq!(s.metric("tessera_whole_tile_fallbacks_total"), 0);
    assert_eq!(s.metric("tessera_worker_kills_total"), 1, "the worker stopped at the deadline");
    assert_eq!(s.metric("tessera_asset_quarantines_total"), 0);
    assert_eq!(s.wait_for_workers(1, Duration::from_secs(10)).len(), 1);
}

#[tokio::test]
async fn with_as_many_tiles_in_flight_as_workers_a_tile_goes_whole_and_a_lone_one_is_spread() {
    let s = Server::with(&[("TESSERA_TEST_SLOW_READ", "utm_rgb_12=400")], &[], 2);
    warm(&s, &harness::UTM).await;
    let mosaic = harness::tile_request(12, 1194, 1551, &harness::UTM);
    let alone = s.client().await.get_tile(mosaic.clone()).await.unwrap().into_inner();
    assert_eq!(s.metric("tessera_whole_tiles_total"), 0, "a lone tile is spread over the idle workers");
    // One tile in flight (its read takes 400 ms), and a second one: two tiles, two workers.
    let started = s.metric("tessera_jobs_started_total");
    let url = s.url();
    let first = tokio::spawn(async move {
        let mut client = v1::tile_service_client::TileServiceClient::connect(url).await.unwrap();
        client.get_tile(harness::tile_request(12, 1194, 1551, &["utm_rgb_12.tif"])).await
    });
    let waiting = std::time::Instant::now();
    while s.metric("tessera_jobs_started_total") == started {
        assert!(waiting.elapsed() < Duration::from_secs(5), "the first tile's read never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = tokio::time::timeout(Duration::from_secs(10), s.client().await.get_tile(mosaic))
        .await
        .expect("the second tile")
        .unwrap()
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_secs(10), first).await.expect("the first tile").unwrap().is_ok()
    );
    assert_eq!(s.metric("tessera_whole_tiles_total"), 1, "the second tile went whole");
    assert_eq!(second.data, alone.data);
    assert_eq!(s.metric("tessera_whole_tile_fallbacks_total"), 0);
}

#[tokio::test]
async fn a_remote_tile_goes_whole_once_the_front_holds_its_blocks() {
    let (base, counts) = crate::http_range::serve(harness::fixtures().to_path_buf()).await;
    let s = Server::with(&[], &["--allow-remote", &format!("{base}/")], 1);
    let urls: Vec<String> = harness::UTM.iter().map(|a| format!("{base}/{a}")).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    warm(&s, &urls).await;
    warm(&s, &harness::UTM).await;
    // A z16 tile: its blocks are full-resolution ones, past the header the front fetched
    // (a z12 tile's overview blocks come with it in these small files).
    let (x, y) = harness::tile_at(-75.0305, 39.9650, 16);
    let remote = harness::tile_request(16, x, y, &urls);
    let local = harness::tile_request(16, x, y, &harness::UTM);
    let mut client = s.client().await;
    let from_disk = client.get_tile(local).await.unwrap().into_inner();
    assert_eq!(
        (s.metric("tessera_whole_tiles_total"), s.metric("tessera_whole_tile_fallbacks_total")),
        (1, 0)
    );

    // The z12 tile of the six: their blocks there came with the headers, so it goes whole
    // at once, six remote reads in one job, each from its own asset's bytes.
    let before = counts.requests.load(std::sync::atomic::Ordering::SeqCst);
    let z12_disk =
        client.get_tile(harness::tile_request(12, 1194, 1551, &harness::UTM)).await.unwrap().into_inner();
    let z12 = client.get_tile(harness::tile_request(12, 1194, 1551, &urls)).await.unwrap().into_inner();
    assert_eq!(counts.requests.load(std::sync::atomic::Ordering::SeqCst), before, "no request to the origin");
    assert_eq!(
        (s.metric("tessera_whole_tiles_total"), s.metric("tessera_whole_tile_fallbacks_total")),
        (3, 0)
    );
    assert!(outcomes(&z12).iter().filter(|o| **o == v1::AssetOutcome::Used as i32).count() > 1);
    assert_eq!((&z12.data, &z12.mask), (&z12_disk.data, &z12_disk.mask), "six remote reads in one job");

    // Cold: the front holds the headers (the descriptions above) but no data block. The
    // job renders nothing once its first remote read finds its blocks missing: it lists
    // the blocks of every remote read and answers at once; the front fetches them all,
    // with no worker waiting, and sends the job again. Two jobs, no fallback.
    let jobs = s.metric("tessera_jobs_started_total");
    let before = counts.requests.load(std::sync::atomic::Ordering::SeqCst);
    let cold = client.get_tile(remote.clone()).await.unwrap().into_inner();
    let fetched = counts.requests.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(fetched > 0, "the data blocks came from the origin");
    assert_eq!(
        s.metric("tessera_jobs_started_total"),
        jobs + 2,
        "a job that lists the blocks, then the tile's"
    );
    assert_eq!(
        (s.metric("tessera_whole_tiles_total"), s.metric("tessera_whole_tile_fallbacks_total")),
        (4, 0)
    );
    assert_eq!((cold.data.clone(), cold.mask.clone()), (from_disk.data.clone(), from_disk.mask.clone()));
    assert_eq!(outcomes(&cold), outcomes(&from_disk));

    // Held: one job, nothing asked of the origin, the bytes of the same tile of local
    // files, each asset reported under its URL.
    let jobs = s.metric("tessera_jobs_started_total");
    let before = counts.requests.load(std::sync::atomic::Ordering::SeqCst);
    let warm_tile = client.get_tile(remote).await.unwrap().into_inner();
    assert_eq!(counts.requests.load(std::sync::atomic::Ordering::SeqCst), before, "no request to the origin");
    assert_eq!(s.metric("tessera_jobs_started_total"), jobs + 1, "one job for the tile");
    assert_eq!(
        (s.metric("tessera_whole_tiles_total"), s.metric("tessera_whole_tile_fallbacks_total")),
        (5, 0)
    );
    assert_eq!(warm_tile.data, from_disk.data, "a remote whole tile differs from the local tile");
    assert_eq!(warm_tile.mask, from_disk.mask);
    assert_eq!(outcomes(&warm_tile), outcomes(&from_disk));
    for (report, url) in warm_tile.assets.iter().zip(&urls) {
        assert_eq!(&report.asset, url);
    }
    assert_eq!(s.metric("tessera_worker_crashes_total") + s.metric("tessera_worker_kills_total"), 0);
}
