//! Chaos: 32 concurrent clients read a seeded mix of single-asset and mosaic tiles while
//! workers are SIGKILLed every 200 ms and now and then SIGSTOPped. Every answer must be
//! the correct tile, or DEADLINE_EXCEEDED for a request that overlapped a SIGSTOP; the
//! pool must end whole with no zombie or orphan.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use tessera::pb::v1;
use tonic::Code;

use crate::harness::{self, Server, ServerOptions, alive, tile_at};

/// Chaos lasts this long; the whole test stays well under a minute.
const CHAOS: Duration = Duration::from_secs(20);
const CLIENTS: usize = 32;
const WORKERS: usize = 4;

fn requests() -> Vec<v1::GetTileRequest> {
    let mut out = Vec::new();
    for (i, asset) in harness::UTM.iter().enumerate() {
        // Centre of each UTM asset (a 2 x 3 grid, 1800 m apart, around -75.02, 39.96).
        let lon = -75.0305 + 0.0211 * (i % 3) as f64;
        let lat = 39.9650 - 0.0162 * (i / 3) as f64;
        for z in [14u32, 15, 16] {
            let (x, y) = tile_at(lon, lat, z);
            out.push(harness::tile_request(z, x, y, &[asset]));
        }
    }
    for z in [12u32, 13, 14] {
        let (x, y) = tile_at(-75.0156, 39.9594, z);
        out.push(harness::tile_request(z, x, y, &harness::UTM));
    }
    out
}

struct Outcome {
    start: Instant,
    end: Instant,
    index: usize,
    result: Result<Vec<u8>, tonic::Status>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_every_answer_is_the_right_tile_or_a_deadline_for_a_stopped_read() {
    let server = Server::start_with(ServerOptions {
        workers: WORKERS,
        args: [
            "--read-timeout",
            "1s",
            "--handshake-timeout",
            "2s",
            "--ping-interval",
            "300ms",
            "--ping-timeout",
            "300ms",
            "--max-worker-wait",
            "20s",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
        // Workers starting and exiting are logged too, for a failure message.
        env: vec![("RUST_LOG".into(), "info,tessera::pool=debug".into())],
        ..Default::default()
    });
    let client = server.client().await;
    let requests = requests();
    let mut references = Vec::new();
    for r in &requests {
        references.push(client.clone().get_tile(r.clone()).await.unwrap().into_inner().data);
    }

    let stops: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen: Arc<Mutex<BTreeSet<u32>>> = Arc::default();
    let chaos_until = Instant::now() + CHAOS;
    let chaos = spawn_chaos(server.pid(), chaos_until, Arc::clone(&stops), Arc::clone(&seen));
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        let requests = requests.clone();
        let outcomes = Arc::clone(&outcomes);
        clients.push(tokio::spawn(async move {
            let mut rng = 1 + c as u64 * 7919;
            while Instant::now() < chaos_until {
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let index = (rng >> 33) as usize % requests.len();
                let mut request = tonic::Request::new(requests[index].clone());
                request.metadata_mut().insert("grpc-timeout", "3S".parse().unwrap());
                let start = Instant::now();
                let result = client.clone().get_tile(request).await.map(|r| r.into_inner().data);
                outcomes.lock().unwrap().push(Outcome { start, end: Instant::now(), index, result });
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let kills = chaos.await.unwrap();

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let stops = stops.lock().unwrap().clone();
    let mut ok = 0;
    let mut deadlines = 0;
    for o in &outcomes {
        match &o.result {
            Ok(data) => {
                assert_eq!(data, &references[o.index], "request {} returned a wrong tile", o.index);
                ok += 1;
            }
            // The server's DEADLINE_EXCEEDED, or tonic's client timer ("Timeout expired",
            // reported as CANCELLED) when a loaded machine answered at the wire.
            Err(e) if e.code() == Code::DeadlineExceeded || e.message() == "Timeout expired" => {
                // A stopped worker holds its slot until its read deadline (1 s), a ping
                // (0.6 s) or, if it was stopped while starting, the handshake timeout (2 s);
                // requests waiting for that slot can hit their own 3 s deadline.
                let overlapped = stops.iter().any(|t| *t + Duration::from_secs(5) >= o.start && *t <= o.end);
                let nearest = stops.iter().map(|t| o.start.saturating_duration_since(*t)).min();
                assert!(
                    overlapped,
                    "DEADLINE_EXCEEDED without a SIGSTOP nearby (took {:?}, last stop {nearest:?} before): {e:?}",
                    o.end - o.start
                );
                deadlines += 1;
            }
            Err(e) => panic!("request {} failed: {e:?}", o.index),
        }
    }
    eprintln!(
        "chaos: {} requests, {ok} ok, {deadlines} deadline, {kills} SIGKILLs, {} SIGSTOPs",
        outcomes.len(),
        stops.len()
    );
    assert!(ok > 100, "only {ok} tiles succeeded");
    assert!(kills >= 50);

    // The pool is whole again; nothing the chaos touched is left behind.
    let workers = server.wait_for_workers(WORKERS, Duration::from_secs(15));
    assert_eq!(workers.len(), WORKERS, "pool not back to full size: {workers:?}\n{}", pool_lines(&server));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = seen.lock().unwrap().clone();
    for pid in &seen {
        let is_current = workers.contains(pid);
        assert!(is_current || !alive(*pid), "worker {pid} is an orphan (alive, not in the pool)");
        let state = harness::stat_fields(*pid).map(|f| f[0].clone());
        assert_ne!(state.as_deref(), Some("Z"), "worker {pid} is a zombie");
    }
    let ok_after = client.clone().get_tile(requests[0].clone()).await.unwrap().into_inner();
    assert_eq!(ok_after.data, references[0]);
}

/// SIGKILLs a random worker every 200 ms and SIGSTOPs another every 7th time, until
/// `until`; records every worker pid it saw and when it stopped one. Returns the kills.
fn spawn_chaos(
    server_pid: u32,
    until: Instant,
    stops: Arc<Mutex<Vec<Instant>>>,
    seen: Arc<Mutex<BTreeSet<u32>>>,
) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let mut rng = 0x5eed_u64;
        let mut tick = 0u32;
        let mut kills = 0u32;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let workers = harness::children_of(server_pid);
            seen.lock().unwrap().extend(workers.iter().copied());
            if workers.is_empty() {
                continue;
            }
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let victim = workers[(rng >> 33) as usize % workers.len()];
            harness::signal(victim, Signal::SIGKILL);
            kills += 1;
            tick += 1;
            if tick % 7 == 0 && workers.len() > 1 {
                let other = workers[((rng >> 40) as usize + 1) % workers.len()];
                if other != victim {
                    stops.lock().unwrap().push(Instant::now());
                    harness::signal(other, Signal::SIGSTOP);
                }
            }
        }
        kills
    })
}

/// The server's log lines about workers starting, dying and being replaced, for a
/// failure message.
fn pool_lines(server: &Server) -> String {
    let log = server.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("tessera::pool")).collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
