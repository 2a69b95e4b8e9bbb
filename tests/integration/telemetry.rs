//! Traces over OTLP to a real receiver, across the process boundary; metrics on the
//! Prometheus endpoint and over OTLP; JSON logs with trace ids; flush at shutdown.

// Metric samples are integer counts printed as numbers: compared exactly on purpose.
#![allow(clippy::float_cmp)]

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::atomic::Ordering,
    time::Duration,
};

use tessera::pb::v1;
use tonic::{Code, metadata::MetadataValue};

use crate::{
    harness::{self, Server, ServerOptions, tile_request},
    otlp::{ReceivedSpan, Receiver},
};

/// The mosaic tile the demo assets share.
const MOSAIC: (u32, u32, u32) = (12, 1194, 1551);

/// A W3C traceparent of a caller span: (header, trace id, caller span id).
fn traceparent(seed: u64) -> (String, String, String) {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let trace_id = format!("{:016x}{:016x}", nanos as u64, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let span_id = format!("{:016x}", seed.wrapping_add(0x1234_5678_9abc_def0));
    (format!("00-{trace_id}-{span_id}-01"), trace_id, span_id)
}

fn traced<T>(message: T, header: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("traceparent", MetadataValue::try_from(header).unwrap());
    request
}

fn otel_server(receiver: std::net::SocketAddr, workers: usize, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), format!("http://{receiver}")),
        ("OTEL_SERVICE_NAME".to_owned(), "tessera-test".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL".to_owned(), "300".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Server::start_with(ServerOptions { workers, env, ..Default::default() })
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "expected one '{name}' span: {spans:#?}");
    found[0]
}

#[tokio::test]
async fn a_mosaic_tile_is_one_trace_from_the_caller_through_three_workers() {
    let (receiver, addr) = Receiver::start().await;
    let server = otel_server(addr, 3, &[]);
    let workers: BTreeSet<i64> = server.worker_pids().into_iter().map(i64::from).collect();
    assert_eq!(workers.len(), 3);
    let mut client = server.client().await;
    let (z, x, y) = MOSAIC;
    let assets = &harness::UTM[..3];

    let (header, trace_id, caller_span) = traceparent(1);
    let tile = client.get_tile(traced(tile_request(z, x, y, assets), &header)).await.unwrap().into_inner();
    // rpc + tile + composite + encode + 3 × (asset info, worker info, asset read, worker read).
    let spans = receiver.wait_for_trace(&trace_id, Duration::from_secs(15), |s| s.len() >= 16).await;
    assert_eq!(spans.len(), 16, "{spans:#?}");

    let rpc = one(&spans, "tessera.v1.TileService/GetTile");
    assert_eq!(rpc.parent_id, caller_span, "the RPC span is the caller's child");
    assert_eq!(rpc.kind, 2, "server kind");
    assert_eq!(rpc.service, "tessera-test");
    assert_eq!(rpc.str("rpc.system"), "grpc");
    assert_eq!(rpc.str("rpc.service"), "tessera.v1.TileService");
    assert_eq!(rpc.str("rpc.method"), "GetTile");
    assert_eq!(rpc.int("rpc.grpc.status_code"), 0);

    let tile_span = one(&spans, "tile");
    assert_eq!(tile_span.parent_id, rpc.span_id);
    assert_eq!(
        (tile_span.int("tile.z"), tile_span.int("tile.x"), tile_span.int("tile.y")),
        (i64::from(z), i64::from(x), i64::from(y))
    );
    assert_eq!(tile_span.str("tile.matrix_set"), "WebMercatorQuad");
    assert_eq!(tile_span.int("assets"), 3);
    assert_eq!(tile_span.str("pixel_selection"), "first");
    assert_eq!(tile_span.str("format"), "png");
    assert_eq!(tile_span.int("bytes_out"), (tile.data.len() + tile.mask.len()) as i64);
    let composite = one(&spans, "composite");
    assert_eq!(composite.parent_id, tile_span.span_id);
    assert!(composite.attributes.contains_key("composite_ms"));
    assert_eq!(one(&spans, "encode").parent_id, tile_span.span_id);

    let reads = named(&spans, "asset read");
    assert_eq!(reads.len(), 3);
    let read_ids: BTreeSet<&str> = reads.iter().map(|r| r.span_id.as_str()).collect();
    for r in &reads {
        assert_eq!(r.parent_id, composite.span_id);
        assert_eq!(r.service, "tessera-test");
        assert_eq!(r.str("outcome"), "ok");
        assert!(assets.contains(&r.str("asset.uri")), "{r:#?}");
        assert_eq!(r.int("retries"), 0);
        assert!(workers.contains(&r.int("worker.pid")), "{r:#?}");
        for timing in ["pool.wait_ms", "ipc_ms"] {
            assert!(matches!(r.attr(timing), crate::otlp::Attr::Float(ms) if *ms >= 0.0), "{timing}: {r:#?}");
        }
    }
    let worker_reads = named(&spans, "worker read");
    assert_eq!(worker_reads.len(), 3);
    let parents: BTreeSet<&str> = worker_reads.iter().map(|w| w.parent_id.as_str()).collect();
    assert_eq!(parents, read_ids, "each worker span is the child of one front-side read span");
    let pids: BTreeSet<i64> = worker_reads.iter().map(|w| w.int("worker.pid")).collect();
    assert_eq!(pids.len(), 3, "three reads in flight at once ran on three workers: {worker_reads:#?}");
    assert!(pids.is_subset(&workers));
    for w in &worker_reads {
        assert_eq!(w.service, "tessera-test-worker");
        let front = reads.iter().find(|r| r.span_id == w.parent_id).unwrap();
        assert_eq!(front.int("worker.pid"), w.int("worker.pid"), "the front names the worker that ran it");
        assert!(w.int("gdal.overview_level") >= 1, "a zoom-12 tile of 2 m data reads an overview: {w:#?}");
        assert_eq!(w.int("remote.questions"), 0, "local files are not read through the front");
    }
    let infos = named(&spans, "asset info");
    let worker_infos = named(&spans, "worker info");
    assert_eq!((infos.len(), worker_infos.len()), (3, 3));
    for w in &worker_infos {
        assert!(!w.bool("dataset_cache.hit"), "the first open of each asset is a miss");
        assert!(w.int("io.read_bytes") > 0, "opening reads the file: {w:#?}");
        assert!(infos.iter().any(|i| i.span_id == w.parent_id && i.parent_id == tile_span.span_id));
    }

    // The same tile again, three times: every (worker, asset) pair opens its dataset once
    // (a miss), then finds it open (hits).
    for seed in 2..5 {
        let (header, trace_id, _) = traceparent(seed);
        client.get_tile(traced(tile_request(z, x, y, assets), &header)).await.unwrap();
        let again = receiver.wait_for_trace(&trace_id, Duration::from_secs(15), |s| s.len() >= 10).await;
        // Asset metadata is cached in the front now: no info jobs.
        assert!(named(&again, "asset info").is_empty());
        assert_eq!(named(&again, "worker read").len(), 3);
    }
    assert_each_worker_opens_each_asset_once(&receiver);
    wait_for_otlp_metrics(&receiver).await;
}

/// Every (worker, asset) pair's first job opens the dataset (a miss, reading the
/// file); its later jobs find it open (hits).
fn assert_each_worker_opens_each_asset_once(receiver: &Receiver) {
    let mut jobs: BTreeMap<(i64, String), Vec<ReceivedSpan>> = BTreeMap::new();
    for s in receiver.spans().into_iter().filter(|s| s.name.starts_with("worker ")) {
        jobs.entry((s.int("worker.pid"), s.str("asset.path").to_owned())).or_default().push(s);
    }
    let mut hits = 0;
    for ((pid, path), mut spans) in jobs {
        spans.sort_by_key(|s| s.start_ns);
        assert!(!spans[0].bool("dataset_cache.hit"), "first job of {path} on {pid} must open it");
        assert!(spans[0].int("io.read_bytes") > 0);
        for s in &spans[1..] {
            assert!(s.bool("dataset_cache.hit"), "later jobs of {path} on {pid} find it open: {s:#?}");
            hits += 1;
        }
    }
    // 15 jobs on at most 9 (worker, asset) pairs.
    assert!(hits >= 6, "{hits} cache hits");
}

/// The metrics reach the receiver over OTLP too.
async fn wait_for_otlp_metrics(receiver: &Receiver) {
    wait_for_metric_names(
        receiver,
        &[
            "tessera.tiles",
            "tessera.tile.duration",
            "tessera.asset_read.duration",
            "tessera.worker.spawns",
            "tessera.pool.workers",
            "tessera.dataset_cache.lookups",
            "tessera.encoded_bytes",
        ],
    )
    .await;
}

/// Waits (up to 10 s) until the receiver has seen every metric in `wanted`.
async fn wait_for_metric_names(receiver: &Receiver, wanted: &[&str]) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let names = receiver.metric_names();
        if wanted.iter().all(|w| names.contains(*w)) {
            break;
        }
        assert!(std::time::Instant::now() < until, "metrics missing over OTLP; got {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_failed_read_sets_error_status_on_the_front_and_worker_spans() {
    let (receiver, addr) = Receiver::start().await;
    let server = otel_server(addr, 2, &[]);
    let mut client = server.client().await;
    let (x, y) = harness::truncated_read_tile(&mut client).await;
    let (header, trace_id, _) = traceparent(7);
    let status =
        client.get_tile(traced(tile_request(17, x, y, &["truncated.tif"]), &header)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    let spans = receiver
        .wait_for_trace(&trace_id, Duration::from_secs(15), |s| {
            !named(s, "worker read").is_empty() && !named(s, "tessera.v1.TileService/GetTile").is_empty()
        })
        .await;
    let worker = one(&spans, "worker read");
    assert_eq!(worker.status.0, 2, "worker span status is ERROR: {worker:#?}");
    assert!(worker.status.1.contains("truncated.tif"), "{worker:#?}");
    assert_eq!(worker.str("error.kind"), "ERROR_KIND_READ_FAILED");
    let read = one(&spans, "asset read");
    assert_eq!(worker.parent_id, read.span_id);
    assert_eq!(read.status.0, 2, "front read span status is ERROR: {read:#?}");
    assert!(read.status.1.contains("'truncated.tif'"), "{read:#?}");
    assert_eq!(read.str("outcome"), "failed");
    let tile = one(&spans, "tile");
    assert_eq!(tile.status.0, 2);
    // A caller's bad asset is not a server fault: the RPC span records the code only.
    let rpc = one(&spans, "tessera.v1.TileService/GetTile");
    assert_eq!(rpc.int("rpc.grpc.status_code"), Code::FailedPrecondition as i64);
    assert_eq!(rpc.status.0, 0);
}

#[tokio::test]
async fn spans_of_the_last_requests_are_flushed_at_shutdown() {
    let (receiver, addr) = Receiver::start().await;
    // Batches leave only every 60 s: whatever arrives, arrives because of the shutdown.
    let mut server = otel_server(addr, 2, &[("OTEL_BSP_SCHEDULE_DELAY", "60000")]);
    let mut client = server.client().await;
    let (z, x, y) = MOSAIC;
    let (header, trace_id, _) = traceparent(11);
    client.get_tile(traced(tile_request(z, x, y, &harness::UTM[..2]), &header)).await.unwrap();
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.spans().iter().all(|s| s.trace_id != trace_id), "exported before shutdown");
    let status = server.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    // rpc, tile, composite, encode, 2 × (asset info, worker info, asset read, worker read).
    let spans = receiver.wait_for_trace(&trace_id, Duration::from_secs(5), |s| s.len() >= 12).await;
    assert_eq!(spans.len(), 12, "{spans:#?}");
    assert_eq!(named(&spans, "worker read").len(), 2);
    assert_eq!(named(&spans, "worker info").len(), 2);
}

/// `tessera_tiles_total{format="png",status="OK"}` and friends.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn prometheus_counters_follow_a_known_set_of_requests() {
    let server = Server::start();
    let mut client = server.client().await;
    let (z, x, y) = MOSAIC;
    let mut png_bytes = 0;
    for _ in 0..2 {
        let t = client.get_tile(tile_request(z, x, y, &harness::UTM[..1])).await.unwrap().into_inner();
        png_bytes += t.data.len();
    }
    let mut jpeg = tile_request(z, x, y, &harness::UTM[..1]);
    jpeg.format = v1::ImageFormat::Jpeg as i32;
    let jpeg_bytes = client.get_tile(jpeg).await.unwrap().into_inner().data.len();
    let missing = client.get_tile(tile_request(z, x, y, &["no_such_asset.tif"])).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let mut bad_format = tile_request(z, x, y, &harness::UTM[..1]);
    bad_format.format = 99;
    assert_eq!(client.get_tile(bad_format).await.unwrap_err().code(), Code::InvalidArgument);

    let text = server.metrics_text();
    assert_eq!(sample(&text, r#"tessera_tiles_total{format="png",status="OK"}"#), 2.0);
    assert_eq!(sample(&text, r#"tessera_tiles_total{format="jpeg",status="OK"}"#), 1.0);
    assert_eq!(sample(&text, r#"tessera_tiles_total{format="png",status="NOT_FOUND"}"#), 1.0);
    assert_eq!(sample(&text, r#"tessera_tiles_total{format="invalid",status="INVALID_ARGUMENT"}"#), 1.0);
    assert_eq!(sample(&text, r#"tessera_encoded_bytes_total{format="png"}"#), png_bytes as f64);
    assert_eq!(sample(&text, r#"tessera_encoded_bytes_total{format="jpeg"}"#), jpeg_bytes as f64);
    assert_eq!(sample(&text, "tessera_tile_duration_seconds_count"), 5.0);
    assert_eq!(sample(&text, r#"tessera_tile_duration_seconds_bucket{le="+Inf"}"#), 5.0);
    // Three reads (the missing asset fails before any job); one info job.
    assert_eq!(sample(&text, "tessera_asset_read_duration_seconds_count"), 3.0);
    let (hits, misses) = (
        sample(&text, "tessera_dataset_cache_hits_total"),
        sample(&text, "tessera_dataset_cache_misses_total"),
    );
    assert_eq!(hits + misses, 4.0, "{text}");
    assert!((1.0..=2.0).contains(&misses), "one miss per worker that opened the asset: {text}");
    assert_eq!(sample(&text, "tessera_dataset_cache_hit_ratio"), hits / 4.0);
    assert_eq!(sample(&text, "tessera_worker_spawns_total"), 2.0);
    assert_eq!(sample(&text, "tessera_jobs_started_total"), 4.0);
    assert_eq!(sample(&text, "tessera_pool_size"), 2.0);
    assert_eq!(sample(&text, "tessera_pool_busy_workers"), 0.0);
    assert_eq!(sample(&text, "tessera_worker_crashes_total"), 0.0);
}

#[tokio::test]
async fn json_logs_carry_the_trace_id_and_worker_lines_their_pid() {
    let server = Server::start_with(ServerOptions {
        args: vec!["--log-format".into(), "json".into()],
        env: vec![("RUST_LOG".into(), "info,tessera=debug".into())],
        ..Default::default()
    });
    let mut client = server.client().await;
    let (x, y) = harness::truncated_read_tile(&mut client).await;
    let (header, trace_id, _) = traceparent(13);
    client.get_tile(traced(tile_request(17, x, y, &["truncated.tif"]), &header)).await.unwrap_err();

    // The worker's line reaches the front's log through its stderr pipe; on a loaded
    // machine that can take a while, and the wait ends as soon as it is there.
    let until = std::time::Instant::now() + Duration::from_secs(15);
    let worker_line = loop {
        let lines: Vec<serde_json::Value> = server
            .log_text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        assert!(
            lines
                .iter()
                .all(|l| l["timestamp"].is_string() && l["level"].is_string() && l["message"].is_string())
        );
        let found =
            lines.iter().find(|l| l["target"] == "tessera::worker" && l["trace_id"] == trace_id.as_str());
        if let Some(line) = found {
            break line.clone();
        }
        assert!(
            std::time::Instant::now() < until,
            "no worker line with trace {trace_id}:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        server.worker_pids().contains(&(worker_line["worker_pid"].as_u64().unwrap() as u32)),
        "{worker_line}"
    );
    assert!(worker_line["message"].as_str().unwrap().contains("job failed"), "{worker_line}");
    // The front's own lines inside the request carry the trace too, with their span id
    // (they come through the same pipe as the worker's, and may be read after it).
    loop {
        let front = server.log_text();
        let traced_front_line =
            front.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).find(|l| {
                l["target"] != "tessera::worker"
                    && l["trace_id"] == trace_id.as_str()
                    && l["span_id"].is_string()
            });
        if traced_front_line.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < until, "no front line in trace {trace_id}:\n{front}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Bounds of a Web Mercator tile in EPSG:3857 metres.
fn mercator_bounds(z: u32, x: u32, y: u32) -> [f64; 4] {
    let world = 20_037_508.342_789_244;
    let size = 2.0 * world / f64::from(1u32 << z);
    let (min_x, max_y) = (-world + f64::from(x) * size, world - f64::from(y) * size);
    [min_x, max_y - size, min_x + size, max_y]
}

/// A worker process with `env`, its channel, and its hello: the test plays the front.
async fn bare_worker(
    env: &[(&str, String)],
) -> (
    tokio::process::Child,
    tokio::process::ChildStdin,
    tokio::process::ChildStdout,
    tessera::pb::worker::Hello,
) {
    let mut worker = tokio::process::Command::new(harness::BIN)
        .arg("worker")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = worker.stdin.take().unwrap();
    let mut stdout = worker.stdout.take().unwrap();
    let hello = tessera::ipc::read_frame_async(&mut stdout).await.unwrap();
    (worker, stdin, stdout, hello)
}

/// The read job of the MOSAIC tile for `path`: 256 px of Web Mercator, nearest.
fn mosaic_read(path: String) -> tessera::pb::worker::ReadRequest {
    let (z, x, y) = MOSAIC;
    let [min_x, min_y, max_x, max_y] = mercator_bounds(z, x, y);
    tessera::pb::worker::ReadRequest {
        path,
        target_crs: "EPSG:3857".into(),
        min_x,
        min_y,
        max_x,
        max_y,
        width: 256,
        height: 256,
        resampling: tessera::pb::worker::Resampling::Nearest as i32,
        ..Default::default()
    }
}

/// The bytes of `ranges` of `file`, cut at its end, as a front answers them.
fn bytes_of(file: &[u8], ranges: &[tessera::pb::worker::ByteRange]) -> Vec<Vec<u8>> {
    ranges
        .iter()
        .map(|r| {
            let end = ((r.offset + r.length) as usize).min(file.len());
            file[(r.offset as usize).min(end)..end].to_vec()
        })
        .collect()
}

/// Plays the front for job `id` of a worker reading `remote`: answers its questions from
/// `file` (generation 7) until its answer comes; the answer, the questions and the bytes
/// sent.
async fn answer_questions(
    stdin: &mut tokio::process::ChildStdin,
    stdout: &mut tokio::process::ChildStdout,
    id: u64,
    remote: &str,
    file: &[u8],
) -> (tessera::pb::worker::WorkerResponse, u64, u64) {
    use tessera::{
        ipc::{read_frame_async, write_frame_async},
        pb::worker::{RangeReply, WorkerRequest, WorkerResponse, worker_request::Job, worker_response},
    };
    let (mut questions, mut bytes) = (0, 0);
    loop {
        let response: WorkerResponse = read_frame_async(&mut *stdout).await.unwrap();
        let Some(worker_response::Result::Range(q)) = response.result else {
            return (response, questions, bytes);
        };
        assert_eq!(response.id, id);
        // The path of the job's asset: first as the job names it, then with the
        // generation this front gave it (7).
        let versioned = remote.replacen("/vsitessera/", "/vsitessera/7/", 1);
        assert!(q.path == remote || q.path == versioned, "question {questions} of read {id}: {}", q.path);
        let data = bytes_of(file, &q.ranges);
        questions += 1;
        bytes += data.iter().map(Vec::len).sum::<usize>() as u64;
        let reply =
            RangeReply { size: file.len() as u64, data, ready: true, generation: 7, ..RangeReply::default() };
        let answer = WorkerRequest { id, job: Some(Job::RangeReply(reply)), ..WorkerRequest::default() };
        write_frame_async(&mut *stdin, &answer).await.unwrap();
    }
}

/// A worker reads a remote asset only by asking the front: driven here over its IPC
/// channel directly, with the test as the front, its questions (byte ranges of the
/// job's asset) are answered from the file, and the counts on its answer and span are
/// exactly the questions and bytes it got. GDAL's own network file systems are refused
/// in a worker: a `/vsicurl/` or `/vsis3/` path reaches no server.
#[tokio::test]
async fn a_worker_reads_remote_assets_only_through_the_front_and_counts_what_it_asked() {
    use tessera::{
        ipc::{read_frame_async, write_frame_async},
        pb::worker::{ErrorKind, WorkerRequest, WorkerResponse, worker_request::Job, worker_response},
    };
    let (receiver, otlp) = Receiver::start().await;
    let (base, counts) = crate::http_range::serve(harness::fixtures().to_path_buf()).await;
    let file = std::fs::read(harness::fixtures().join(harness::UTM[0])).unwrap();
    let (mut worker, mut stdin, mut stdout, hello) = bare_worker(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")),
        ("OTEL_SERVICE_NAME", "tessera-test-worker".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
    ])
    .await;

    let (header, trace_id, _) = traceparent(17);
    let request = |id, path: String| WorkerRequest {
        id,
        trace_context: [("traceparent".to_owned(), header.clone())].into(),
        job: Some(Job::Read(mosaic_read(path))),
        reply_slot: 0,
    };
    let remote = format!("/vsitessera/{base}/{}", harness::UTM[0]);
    let mut stats = Vec::new();
    for id in 1..=2 {
        write_frame_async(&mut stdin, &request(id, remote.clone())).await.unwrap();
        let (response, questions, bytes) =
            answer_questions(&mut stdin, &mut stdout, id, &remote, &file).await;
        assert!(matches!(response.result, Some(worker_response::Result::Read(_))), "{:?}", response.result);
        let s = response.stats.unwrap();
        assert_eq!(
            (s.network_requests, s.network_bytes),
            (questions, bytes),
            "read {id}: the worker's counts vs ours"
        );
        stats.push(s);
    }
    assert!(stats[0].network_requests >= 2 && stats[0].network_bytes > 0, "{:?}", stats[0]);
    assert!(!stats[0].dataset_cache_hit && stats[1].dataset_cache_hit);
    // The same read again, on the open dataset: the worker kept the bytes of the blocks
    // it was sent for the first (worker/held_blocks.rs), so it asks only which version
    // of the asset to read (the job names none), and no byte.
    assert_eq!(
        (stats[0].held_ranges, stats[1].network_requests, stats[1].network_bytes),
        (0, 1, 0),
        "{stats:?}"
    );
    assert!(stats[1].held_ranges > 0, "{stats:?}");

    // GDAL's network file systems, asked for directly: refused, and no server sees a
    // request. (Should a file name one, GDAL finds those prefixes' handlers replaced by
    // one that refuses every path.)
    for (id, path) in [
        (3, format!("/vsicurl/{base}/{}", harness::UTM[0])),
        (4, format!("/vsis3/tessera-test/{}", harness::UTM[0])),
        (5, format!("/vsicurl_streaming/{base}/{}", harness::UTM[0])),
    ] {
        write_frame_async(&mut stdin, &request(id, path.clone())).await.unwrap();
        let response: WorkerResponse = read_frame_async(&mut stdout).await.unwrap();
        let Some(worker_response::Result::Error(e)) = response.result else {
            panic!("{path}: {:?}", response.result)
        };
        // Not a remote asset to a worker: a local path outside its roots.
        assert_eq!(e.kind, ErrorKind::Denied as i32, "{path}: {}", e.message);
    }
    assert_eq!(counts.requests.load(Ordering::SeqCst), 0, "a worker reached the range server itself");

    // Closing stdin ends the worker, which flushes its spans.
    drop(stdin);
    assert!(worker.wait().await.unwrap().success());
    let spans = receiver.wait_for_trace(&trace_id, Duration::from_secs(5), |s| s.len() >= 5).await;
    let mut reads = named(&spans, "worker read");
    reads.sort_by_key(|s| s.start_ns);
    assert_eq!(reads.len(), 5);
    for (span, s) in reads.iter().zip(&stats) {
        assert_eq!(span.service, "tessera-test-worker");
        assert_eq!(span.int("worker.pid"), i64::from(hello.pid));
        assert_eq!(span.int("remote.questions"), s.network_requests as i64);
        assert_eq!(span.int("remote.bytes"), s.network_bytes as i64);
    }
}

/// A remote read asks the front about its planned blocks first. When the answer to the
/// plan carries their bytes, the read is served from them: no question for a block
/// after the plan, against one per block read when the answer says only that they are
/// cached; the same read again on the open dataset asks only the generation check and
/// the plan, or, when the plan's answer carried the bytes (which the worker keeps), the
/// generation check alone; and the pixels are the same either way. The test plays the
/// front over the worker's channel.
#[tokio::test]
async fn a_read_whose_planned_blocks_come_with_the_answer_asks_no_question_per_block() {
    use tessera::{
        ipc::{read_frame_async, write_frame_async},
        pb::worker::{RangeReply, WorkerRequest, WorkerResponse, worker_request::Job, worker_response},
    };
    let file = std::fs::read(harness::fixtures().join(harness::UTM[0])).unwrap();
    let (mut worker, mut stdin, mut stdout, _) = bare_worker(&[]).await;
    let remote = format!("/vsitessera/http://127.0.0.1:9/{}", harness::UTM[0]);

    // Each mode reads twice (the second on the open dataset); the questions of each
    // read as (plan?, ranges asked).
    let mut outcome = Vec::new();
    let mut id = 0;
    for bytes_with_plan in [false, true] {
        let mut reads = Vec::new();
        for _ in 0..2 {
            id += 1;
            let job = Job::Read(mosaic_read(remote.clone()));
            let request = WorkerRequest { id, job: Some(job), ..Default::default() };
            write_frame_async(&mut stdin, &request).await.unwrap();
            let mut questions = Vec::new();
            let result = loop {
                let response: WorkerResponse = read_frame_async(&mut stdout).await.unwrap();
                let Some(worker_response::Result::Range(q)) = response.result else { break response.result };
                questions.push((q.plan, q.ranges.len()));
                let data = if q.plan && !bytes_with_plan { Vec::new() } else { bytes_of(&file, &q.ranges) };
                let reply = RangeReply {
                    size: file.len() as u64,
                    data,
                    ready: true,
                    generation: 1,
                    ..Default::default()
                };
                let answer = WorkerRequest { id, job: Some(Job::RangeReply(reply)), ..Default::default() };
                write_frame_async(&mut stdin, &answer).await.unwrap();
            };
            let Some(worker_response::Result::Read(read)) = result else { panic!("read {id}: {result:?}") };
            reads.push((questions, read));
        }
        outcome.push(reads);
    }
    drop(stdin);
    assert!(worker.wait().await.unwrap().success());

    let plans = |questions: &[(bool, usize)]| questions.iter().filter(|(plan, _)| *plan).count();
    let after_plan = |questions: &[(bool, usize)]| {
        let at = questions.iter().position(|(plan, _)| *plan).expect("a plan question");
        questions[at + 1..].iter().filter(|(_, ranges)| *ranges > 0).count()
    };
    let (without, with) = (&outcome[0], &outcome[1]);
    for (questions, _) in [&without[0], &without[1], &with[0]] {
        assert_eq!(plans(questions), 1, "{questions:?}");
    }
    // Only told they are cached, the first read asks for its blocks one question at a
    // time.
    assert!(after_plan(&without[0].0) >= 1, "{:?}", without[0].0);
    // With the bytes: nothing after the plan.
    assert_eq!(after_plan(&with[0].0), 0, "{:?}", with[0].0);
    assert!(with[0].0.len() < without[0].0.len(), "{:?} vs {:?}", with[0].0, without[0].0);
    // Again on the open dataset: the blocks are in GDAL's cache of the overview the kept
    // warp reads, so the generation check and the plan are all it asks; and not even
    // the plan when the worker kept the bytes that came with the last answer to it.
    assert_eq!(without[1].0, [(false, 0), (true, 1)]);
    assert_eq!(with[1].0, [(false, 0)]);
    for ((_, a), (_, b)) in without.iter().zip(with) {
        assert_eq!((a.width, a.height, a.band_count), (b.width, b.height, b.band_count));
        assert!(a.pixels == b.pixels && a.mask == b.mask, "the pixels differ with the planned bytes");
        assert!(a.mask.contains(&255), "the read covers the asset");
    }
}

/// A point job with `defer_remote` never waits for bytes the front does not hold: the
/// test, playing the front, holds only the first 64 KiB of the asset (its header); the
/// job answers Deferred with the ranges it missed, all beyond them. Once they are held,
/// the same job gives the point exactly as a job reading through the front as it goes.
#[tokio::test]
async fn a_point_job_defers_the_bytes_the_front_does_not_hold_instead_of_waiting() {
    use tessera::{
        ipc::{read_frame_async, write_frame_async},
        pb::worker::{
            PointRequest, RangeReply, WorkerRequest, WorkerResponse, worker_request::Job, worker_response,
        },
    };
    const HELD: u64 = 64 * 1024;
    let file = std::fs::read(harness::fixtures().join(harness::UTM[0])).unwrap();
    let (mut worker, mut stdin, mut stdout, _) = bare_worker(&[]).await;
    let remote = format!("/vsitessera/http://127.0.0.1:9/{}", harness::UTM[0]);
    // (defer_remote, the front holds everything?) for jobs 1, 2 and 3.
    let mut answers = Vec::new();
    for (id, (defer, all_held)) in [(true, false), (true, true), (false, true)].into_iter().enumerate() {
        let id = id as u64 + 1;
        let job = Job::Point(PointRequest {
            path: remote.clone(),
            lon: -75.0305,
            lat: 39.9650,
            defer_remote: defer,
            ..Default::default()
        });
        write_frame_async(&mut stdin, &WorkerRequest { id, job: Some(job), ..Default::default() })
            .await
            .unwrap();
        let (mut waited, mut refused) = (0, 0);
        let result = loop {
            let response: WorkerResponse = read_frame_async(&mut stdout).await.unwrap();
            let Some(worker_response::Result::Range(q)) = response.result else { break response.result };
            let held = all_held || q.ranges.iter().all(|r| r.offset + r.length <= HELD);
            if !q.plan && !q.ranges.is_empty() && !held {
                waited += 1;
            }
            let reply = if q.plan && !held {
                refused += 1;
                RangeReply { size: file.len() as u64, ready: false, generation: 1, ..Default::default() }
            } else {
                let data = bytes_of(&file, &q.ranges);
                RangeReply { size: file.len() as u64, data, ready: true, generation: 1, ..Default::default() }
            };
            let answer = WorkerRequest { id, job: Some(Job::RangeReply(reply)), ..Default::default() };
            write_frame_async(&mut stdin, &answer).await.unwrap();
        };
        assert_eq!(waited, 0, "job {id} asked outright for bytes the front does not hold");
        answers.push((result, refused));
    }
    drop(stdin);
    assert!(worker.wait().await.unwrap().success());

    let Some(worker_response::Result::Deferred(missed)) = &answers[0].0 else {
        panic!("job 1 should defer: {:?}", answers[0].0)
    };
    assert!(answers[0].1 >= 1);
    assert!(
        !missed.ranges.is_empty() && missed.ranges.iter().all(|r| r.offset + r.length > HELD),
        "{missed:?}"
    );
    let (Some(worker_response::Result::Point(deferred)), Some(worker_response::Result::Point(direct))) =
        (&answers[1].0, &answers[2].0)
    else {
        panic!("jobs 2 and 3 should answer the point: {answers:?}")
    };
    assert_eq!(deferred, direct);
    assert!(deferred.valid.iter().all(|v| *v), "{deferred:?}");
}

/// What a remote read cost is on its spans, from the front's own fetches (no longer
/// GDAL's counters): over a cold tile, the requests and bytes of its `asset info` and
/// `asset read` spans are exactly what the origin served, with cache misses and time
/// waiting; the same tile again costs no request, and its read finds every chunk cached.
#[tokio::test]
async fn remote_reads_carry_their_requests_bytes_cache_hits_and_wait_on_their_spans() {
    let (receiver, addr) = Receiver::start().await;
    let (base, counts) = crate::http_range::serve(harness::fixtures().to_path_buf()).await;
    let server = Server::start_with(ServerOptions {
        workers: 2,
        env: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), format!("http://{addr}")),
            ("OTEL_SERVICE_NAME".to_owned(), "tessera-test".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
            ("OTEL_METRIC_EXPORT_INTERVAL".to_owned(), "300".to_owned()),
        ],
        // No read-ahead: the header's window would bring the blocks, and the read's
        // span would have no request to show.
        args: vec![
            "--allow-remote".to_owned(),
            format!("{base}/"),
            "--remote-read-ahead".to_owned(),
            "0".to_owned(),
        ],
        ..Default::default()
    });
    let mut client = server.client().await;
    let (z, x, y) = MOSAIC;
    let url = format!("{base}/{}", harness::UTM[0]);

    let (header, trace_id, _) = traceparent(21);
    client.get_tile(traced(tile_request(z, x, y, &[url.as_str()]), &header)).await.unwrap();
    let spans = receiver
        .wait_for_trace(&trace_id, Duration::from_secs(15), |s| {
            !named(s, "asset read").is_empty() && !named(s, "asset info").is_empty()
        })
        .await;
    let (info, read) = (one(&spans, "asset info"), one(&spans, "asset read"));
    let origin = (counts.requests.load(Ordering::SeqCst), counts.body_bytes.load(Ordering::SeqCst));
    assert_eq!(
        (info.int("remote.requests") + read.int("remote.requests")) as u64,
        origin.0,
        "the spans' requests vs the origin's: {info:#?} {read:#?}"
    );
    assert_eq!((info.int("remote.bytes") + read.int("remote.bytes")) as u64, origin.1);
    // Cold: the header is fetched for the description, the blocks for the read.
    assert!(info.int("remote.requests") >= 1 && read.int("remote.requests") >= 1, "{info:#?} {read:#?}");
    for span in [info, read] {
        assert!(span.int("remote.cache_misses") > 0, "{span:#?}");
        assert!(
            matches!(span.attr("remote.wait_ms"), crate::otlp::Attr::Float(ms) if *ms > 0.0),
            "{span:#?}"
        );
    }

    // Again, on the worker that read it (the pool prefers the worker that has the asset
    // open): it kept the bytes of the blocks it was sent, so the read asks the front
    // nothing, and both spans say so.
    let (header, trace_id, _) = traceparent(22);
    client.get_tile(traced(tile_request(z, x, y, &[url.as_str()]), &header)).await.unwrap();
    let spans = receiver
        .wait_for_trace(&trace_id, Duration::from_secs(15), |s| {
            !named(s, "asset read").is_empty() && !named(s, "worker read").is_empty()
        })
        .await;
    let (read, worker) = (one(&spans, "asset read"), one(&spans, "worker read"));
    assert_eq!(
        (read.int("remote.requests"), read.int("remote.cache_misses"), read.int("remote.cache_hits")),
        (0, 0, 0),
        "{read:#?}"
    );
    assert_eq!((worker.int("remote.questions"), worker.int("remote.bytes")), (0, 0), "{worker:#?}");
    assert!(worker.int("remote.held") > 0, "{worker:#?}");
    assert_eq!(counts.requests.load(Ordering::SeqCst), origin.0, "the repeat reached the origin");
    assert!(named(&spans, "asset info").is_empty(), "the description was cached");

    // The cache's and the origin's counters go out over OTLP too, not only on /metrics.
    wait_for_metric_names(
        &receiver,
        &[
            "tessera.remote.cache_bytes",
            "tessera.remote.cache_hits",
            "tessera.remote.cache_misses",
            "tessera.remote.cache_evictions",
            "tessera.remote.cache_coalesced",
            "tessera.origin.requests",
            "tessera.origin.bytes",
            "tessera.origin.retries",
        ],
    )
    .await;
}
