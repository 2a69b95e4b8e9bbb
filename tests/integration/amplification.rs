//! One request must not cost the front gigabytes or seconds of its runtime. The attacks
//! filed against the front run against the real server; what is asserted is what the
//! server itself says (codes, messages, its counters) and what the kernel says of the
//! front's memory (its peak RSS), not how long anything took. Health probes run
//! throughout, and each must be answered.

use std::time::{Duration, Instant};

use tessera::pb::v1;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::harness::{self, Server, ServerOptions, tile_request};

/// The front's peak resident memory so far (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Worker jobs answered so far (every answer reports its dataset-cache lookup).
fn worker_jobs(server: &Server) -> u64 {
    server.metric("tessera_dataset_cache_hits_total") + server.metric("tessera_dataset_cache_misses_total")
}

/// The filed preview: a 4-band uint16 asset at 4096 x 4096 px as NPY, with 16 outputs.
fn preview_attack() -> v1::GetPreviewRequest {
    v1::GetPreviewRequest {
        asset: "nir_uint16.tif".into(),
        width: Some(4096),
        height: Some(4096),
        format: v1::ImageFormat::Npy as i32,
        expression: "b1/b2;".repeat(16),
        ..Default::default()
    }
}

/// The filed tile: 1024 px, 16 outputs over 8 assets under median (rescaled to uint8,
/// so only the memory limit stands in its way).
fn tile_attack() -> v1::GetTileRequest {
    let mut request = tile_request(12, 1194, 1551, &["nir_uint16.tif"; 8]);
    request.tile_size = 1024;
    request.format = v1::ImageFormat::Npy as i32;
    request.expression = "b1/b2;".repeat(16);
    request.pixel_selection = v1::PixelSelection::Median as i32;
    request.rescale = vec![v1::RescaleRange { min: 0.0, max: 2.0 }];
    request
}

#[tokio::test]
async fn renders_that_would_need_gigabytes_are_refused_before_any_read() {
    let server = Server::start();
    let mut client = server.client().await;
    // The asset's description is what the estimate needs: fetch it once, so the attacks
    // below cost no worker job at all.
    client.get_asset_info(v1::GetAssetInfoRequest { asset: "nir_uint16.tif".into() }).await.unwrap();
    let jobs = worker_jobs(&server);
    let rss_before = peak_rss(server.pid());

    // Two filed previews at once (they took the front past 8.8 GB before).
    let (mut first, mut second) = (client.clone(), client.clone());
    let (a, b) = tokio::join!(first.get_preview(preview_attack()), second.get_preview(preview_attack()));
    for status in [a.unwrap_err(), b.unwrap_err()] {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(
            status.message(),
            "the preview (4096x4096 px, 16 float64 band(s), 1 asset) would be at least 2147483648 bytes encoded, over this server's limit of 67108864 bytes per response (--max-response-size); ask for a smaller max_size, width or height, fewer bands or a compressed format"
        );
    }
    // Three outputs rescaled to uint8 fit the response (48 MiB) but not the memory.
    let mut rescaled = preview_attack();
    rescaled.expression = "b1/b2;".repeat(3);
    rescaled.rescale = vec![v1::RescaleRange { min: 0.0, max: 2.0 }];
    let status = client.get_preview(rescaled).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("the preview (4096x4096 px, 3 uint8 band(s), 1 asset) would need about "),
        "{status:?}"
    );
    assert!(
        status.message().ends_with(
            "over this server's limit of 256.0 MiB per request (--max-request-memory); ask for a smaller max_size, width or height"
        ),
        "{status:?}"
    );

    let status = client.get_tile(tile_attack()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().starts_with("the tile (1024x1024 px, 16 uint8 band(s), 8 assets) would need about "),
        "{status:?}"
    );
    assert!(status.message().contains("(--max-request-memory)"), "{status:?}");

    assert_eq!(worker_jobs(&server), jobs, "nothing was read");
    assert_eq!(server.metric("tessera_memory_refused_total{limit=\"request\"}"), 2);
    assert_eq!(server.metric("tessera_memory_reserved_bytes"), 0);
    let grown = peak_rss(server.pid()).saturating_sub(rss_before);
    eprintln!("front peak RSS grew by {} MiB during the attacks", grown >> 20);
    assert!(grown < 64 << 20, "the front's peak RSS grew by {} MiB", grown >> 20);

    // The server still renders what fits.
    let mut fits = tile_attack();
    fits.tile_size = 256;
    fits.assets.truncate(2);
    let tile = client.get_tile(fits).await.unwrap().into_inner();
    assert_eq!((tile.width, tile.band_count), (256, 16));
    assert_eq!(server.metric("tessera_memory_reserved_bytes"), 0, "the reservation is returned");
}

#[tokio::test]
async fn requests_in_flight_share_one_memory_budget() {
    // A 256 px tile of one RGB asset reserves 2.75 MiB (see below): two fit in 8 MiB, and
    // while their reads are slowed the other 14 of 16 distinct tiles find no room.
    let server = Server::start_with(ServerOptions {
        workers: 4,
        args: ["--max-in-flight-memory", "8MiB", "--max-request-memory", "4MiB"].map(String::from).to_vec(),
        env: vec![("TESSERA_TEST_SLOW_READ".into(), "utm_rgb_00=1500".into())],
        ..Default::default()
    });
    let client = server.client().await;
    // Distinct requests (identical ones in flight would share one render).
    let request = |quality: u32| v1::GetTileRequest {
        quality,
        format: v1::ImageFormat::Npy as i32,
        ..tile_request(12, 1194, 1551, &["utm_rgb_00.tif"])
    };
    let calls: Vec<_> = (1..=16)
        .map(|quality| {
            let mut client = client.clone();
            tokio::spawn(async move { client.get_tile(request(quality)).await })
        })
        .collect();
    let mut answered = 0;
    let mut refused = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => answered += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(status.message().contains("(--max-in-flight-memory); retry later"), "{status:?}");
                let details = tonic_types::StatusExt::get_details_retry_info(&status);
                assert!(details.is_some(), "a retry hint: {status:?}");
                refused += 1;
            }
        }
    }
    // Per pixel: the answer and the selected raster (3 bands + mask each), a float64
    // accumulator per band, and the output three times.
    let per_tile = 256 * 256 * (4 + 4 + 8 * 3 + 3 * 4);
    let fit = (8 << 20) / per_tile;
    assert_eq!((answered, refused), (fit, 16 - fit), "{per_tile} bytes a tile");
    assert_eq!(server.metric("tessera_memory_refused_total{limit=\"in_flight\"}"), (16 - fit) as u64);
    assert_eq!(server.metric("tessera_memory_reserved_bytes"), 0);
    // With the budget back, the refused ones go through.
    let mut client = client.clone();
    assert!(client.get_tile(request(99)).await.is_ok());
}

/// One health probe's answer time, or `None` when none came within a second.
async fn probe(health: &mut HealthClient<tonic::transport::Channel>) -> Option<Duration> {
    let started = Instant::now();
    let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
    request.set_timeout(Duration::from_secs(1));
    let answer = health.check(request).await.ok()?;
    (answer.into_inner().status == ServingStatus::Serving as i32).then(|| started.elapsed())
}

/// How long the admin endpoint takes to answer `GET /metrics` in full.
fn metrics_time(address: &str) -> Duration {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut conn = std::net::TcpStream::connect(address).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    started.elapsed()
}

#[tokio::test]
async fn health_answers_every_probe_while_requests_burn_cpu() {
    let server = Server::start_with(ServerOptions { workers: 2, ..Default::default() });
    let client = server.client().await;
    let channel = tonic::transport::Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    let until = Instant::now() + Duration::from_secs(4);

    // Eight callers sending 3 MB colormap names (13 s of a runtime thread each when the
    // name was compared with every colormap's in full) ...
    let names: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut sent = 0u64;
                while Instant::now() < until {
                    let mut request = tile_request(12, 1194, 1551, &["utm_rgb_00.tif"]);
                    request.colormap =
                        Some(v1::get_tile_request::Colormap::ColormapName("v".repeat(3 << 20)));
                    let status = client.get_tile(request).await.unwrap_err();
                    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
                    assert_eq!(
                        status.message(),
                        "colormap_name is 3145728 bytes long, over the limit of 256 bytes"
                    );
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    // ... and two rendering 1024 px median mosaics of the six RGB assets (compositing
    // and encoding: CPU in the front).
    let mosaics: Vec<_> = (0..2)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut rendered = 0u64;
                while Instant::now() < until {
                    let mut request = tile_request(12, 1194, 1551, &crate::harness::UTM);
                    request.tile_size = 1024;
                    request.pixel_selection = v1::PixelSelection::Median as i32;
                    let tile = client.get_tile(request).await.unwrap().into_inner();
                    assert_eq!(tile.width, 1024);
                    rendered += 1;
                }
                rendered
            })
        })
        .collect();

    // Health over gRPC every 50 ms, and the admin endpoint's /metrics every 200 ms.
    let mut latencies = Vec::new();
    let mut admin = Vec::new();
    while Instant::now() < until {
        latencies.push(probe(&mut health).await);
        if latencies.len() % 4 == 0 {
            let address = server.admin.clone();
            admin.push(tokio::task::spawn_blocking(move || metrics_time(&address)).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut names_sent = 0;
    for task in names {
        names_sent += task.await.unwrap();
    }
    let mut rendered = 0;
    for task in mosaics {
        rendered += task.await.unwrap();
    }
    let answered: Vec<Duration> = latencies.iter().flatten().copied().collect();
    let mut sorted = answered.clone();
    sorted.sort();
    let slowest = sorted.last().copied().unwrap_or_default();
    eprintln!(
        "{} probes, {} answered; median {:?}, slowest {slowest:?}; {names_sent} long names refused, {rendered} mosaics rendered",
        latencies.len(),
        answered.len(),
        sorted.get(sorted.len() / 2).copied().unwrap_or_default(),
    );
    assert!(latencies.len() >= 20, "{} probes", latencies.len());
    assert_eq!(answered.len(), latencies.len(), "every probe is answered SERVING within 1 s: {latencies:?}");
    // Before the fix a probe waited up to 9 s. Now the runtime threads only move bytes;
    // what is left is the OS scheduling this process among the attacker (the test
    // process, on the same two cores), the blocking pool and the other test running
    // beside it: 95% within 100 ms, none over 250 ms.
    let p95 = sorted[sorted.len() * 95 / 100 - 1];
    assert!(p95 <= Duration::from_millis(100), "95% of probes within 100 ms: {latencies:?}");
    assert!(slowest < Duration::from_millis(250), "every probe within 250 ms: {latencies:?}");
    eprintln!("admin /metrics: {admin:?}");
    assert!(admin.len() >= 5, "{} admin probes", admin.len());
    assert!(admin.iter().all(|t| *t < Duration::from_millis(250)), "every /metrics within 250 ms: {admin:?}");
    assert!(rendered >= 2 && names_sent >= 8, "{rendered} mosaics, {names_sent} names");
    assert_eq!(
        server.metric("tessera_tiles_total{format=\"png\",status=\"INVALID_ARGUMENT\"}"),
        names_sent,
        "every long name was refused and counted"
    );
}

/// Minor page faults the process `pid` has taken so far.
fn minor_faults(pid: u32) -> u64 {
    harness::stat_fields(pid).expect("the front is running")[7].parse().unwrap()
}

#[tokio::test]
async fn tiles_after_the_first_reuse_the_fronts_memory_instead_of_faulting_in_new_pages() {
    // One worker, one tile at a time: a six-asset z12 tile and its four z13 children.
    let s = Server::with(&[], &[], 1);
    let mut client = s.client().await;
    let tiles: Vec<v1::GetTileRequest> = std::iter::once((12, 1194, 1551))
        .chain((0..4).map(|i| (13, 2388 + i % 2, 3102 + i / 2)))
        .map(|(z, x, y)| tile_request(z, x, y, &crate::harness::UTM))
        .collect();
    let mut pass = async || {
        for t in &tiles {
            client.get_tile(t.clone()).await.unwrap();
        }
    };
    pass().await;
    pass().await;
    let before = minor_faults(s.pid());
    for _ in 0..4 {
        pass().await;
    }
    let per_tile = (minor_faults(s.pid()) - before) as f64 / (4 * tiles.len()) as f64;
    // With malloc's dynamic thresholds tokio's arenas were trimmed after nearly every
    // tile, and the next one faulted its buffers in again (46 faults a tile in the
    // benchmark's tiles, 52 in these); with the front's pinned thresholds a tile takes
    // none. The margin is for what else may start meanwhile (a blocking thread, its
    // stack and its arena): under a third of what the trimming cost.
    assert!(per_tile < 15.0, "the front took {per_tile:.1} minor page faults a tile");
}
