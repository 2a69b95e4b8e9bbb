//! `tessera chaos`: the long chaos run. Starts a server over the demo data, renders a
//! seeded mix of tiles with many concurrent clients once calmly and once while workers
//! are SIGKILLed every `--kill-every` and SIGSTOPped every `--stop-every`-th time, and
//! reports requests, outcomes by gRPC code, workers killed and replaced (from the
//! server's own metrics), latency with and without chaos, and peak RSS.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Args;
use futures::StreamExt;
use tonic::transport::Channel;

use super::{
    ClientError,
    bench::{Mix, Rng, children, percentile, start_server, status_kb, tile_mix},
    connect,
};
use crate::pb::v1::{self, tile_service_client::TileServiceClient};

/// Flags of `tessera chaos`.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Data directory with the demo data.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Workers of the server.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Tiles per run (one calm run, one chaos run).
    #[arg(long, default_value_t = 10_000)]
    pub tiles: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Time between SIGKILLs of a random worker.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub kill_every: Duration,
    /// Every N-th kill, also SIGSTOP another worker.
    #[arg(long, default_value_t = 7)]
    pub stop_every: u32,
    /// Deadline of each request.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub deadline: Duration,
    /// Seed of the tile mix and of the victims.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

struct RunResult {
    latencies: Vec<Duration>,
    codes: BTreeMap<String, usize>,
    wall: Duration,
}

async fn run(
    client: &TileServiceClient<Channel>,
    mix: &Mix,
    clients: usize,
    deadline: Duration,
) -> RunResult {
    let started = Instant::now();
    let timeout = format!("{}m", deadline.as_millis());
    let results: Vec<(Duration, String)> = futures::stream::iter(mix.iter().cloned())
        .map(|((z, x, y), assets)| {
            let mut client = client.clone();
            let timeout = timeout.clone();
            async move {
                let mut request = tonic::Request::new(v1::GetTileRequest {
                    z: u32::from(z),
                    x,
                    y,
                    assets,
                    ..Default::default()
                });
                if let Ok(v) = timeout.parse() {
                    request.metadata_mut().insert("grpc-timeout", v);
                }
                let t = Instant::now();
                let code = match client.get_tile(request).await {
                    Ok(_) => "OK".to_owned(),
                    Err(e) => format!("{:?}", e.code()),
                };
                (t.elapsed(), code)
            }
        })
        .buffer_unordered(clients)
        .collect()
        .await;
    let mut latencies: Vec<_> = results.iter().map(|(d, _)| *d).collect();
    latencies.sort();
    let mut codes = BTreeMap::new();
    for (_, code) in results {
        *codes.entry(code).or_insert(0) += 1;
    }
    RunResult { latencies, codes, wall: started.elapsed() }
}

fn metrics(admin: &str) -> BTreeMap<String, u64> {
    use std::io::{Read, Write};
    let mut text = String::new();
    if let Ok(mut conn) = std::net::TcpStream::connect(admin) {
        let _ = conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n");
        let _ = conn.read_to_string(&mut text);
    }
    text.lines()
        .filter(|l| l.starts_with("tessera_"))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn report(label: &str, r: &RunResult) {
    let total: usize = r.codes.values().sum();
    println!(
        "{label:>6}: {total} tiles in {:.1} s ({:.0} tiles/s), p50 {:.1} ms, p99 {:.1} ms, outcomes {:?}",
        r.wall.as_secs_f64(),
        total as f64 / r.wall.as_secs_f64(),
        percentile(&r.latencies, 50.0).as_secs_f64() * 1000.0,
        percentile(&r.latencies, 99.0).as_secs_f64() * 1000.0,
        r.codes
    );
}

/// `tessera chaos`.
pub async fn chaos(args: ChaosArgs) -> Result<(), ClientError> {
    let server = start_server(
        &args.data_dir,
        args.workers,
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--read-timeout",
            "1s",
            "--handshake-timeout",
            "2s",
            "--ping-interval",
            "300ms",
            "--ping-timeout",
            "300ms",
            "--max-worker-wait",
            "30s",
            "--max-in-flight-tiles",
            "1024",
        ],
        &[],
    )?;
    let admin = server.admin.clone().unwrap_or_default();
    let client = connect(&server.address).await?;
    let (mix, _, _) = tile_mix(&client, args.tiles, args.seed).await?;
    println!(
        "tessera chaos: {} tiles per run, {} clients, {} workers, SIGKILL every {:?}, SIGSTOP every {} kills, deadline {:?}",
        args.tiles, args.clients, args.workers, args.kill_every, args.stop_every, args.deadline
    );
    let calm = run(&client, &mix, args.clients, args.deadline).await;
    report("calm", &calm);

    let before = metrics(&admin);
    let stop = Arc::new(AtomicBool::new(false));
    let (kills, stops) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let chaos_thread = {
        let (stop, kills, stops) = (Arc::clone(&stop), Arc::clone(&kills), Arc::clone(&stops));
        let (front, every, stop_every, seed) =
            (server.child.id(), args.kill_every, args.stop_every, args.seed);
        std::thread::spawn(move || {
            let mut rng = Rng(seed.max(1));
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                let workers = children(front);
                if workers.is_empty() {
                    continue;
                }
                let victim = workers[rng.below(workers.len())];
                signal(victim, nix::sys::signal::Signal::SIGKILL);
                let n = kills.fetch_add(1, Ordering::Relaxed) + 1;
                if stop_every > 0 && n % stop_every == 0 && workers.len() > 1 {
                    let other = workers[rng.below(workers.len())];
                    if other != victim {
                        signal(other, nix::sys::signal::Signal::SIGSTOP);
                        stops.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let wild = run(&client, &mix, args.clients, args.deadline).await;
    stop.store(true, Ordering::Relaxed);
    let _ = chaos_thread.join();
    report("chaos", &wild);

    // Let the pool heal, then read what the server counted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = metrics(&admin);
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    println!(
        "chaos: {} SIGKILLs and {} SIGSTOPs sent; server saw {} crashes, killed {} workers (deadline/ping), {} spawns ({} failed while starting), {} retried jobs; {} worker processes now",
        kills.load(Ordering::Relaxed),
        stops.load(Ordering::Relaxed),
        delta("tessera_worker_crashes_total"),
        delta("tessera_worker_kills_total"),
        delta("tessera_worker_spawns_total"),
        delta("tessera_worker_spawn_failures_total"),
        delta("tessera_job_retries_total"),
        after.get("tessera_worker_processes").unwrap_or(&0),
    );
    let front = server.child.id();
    let peaks: Vec<u64> = children(front).iter().filter_map(|p| status_kb(*p, "VmHWM:")).collect();
    println!(
        "peak RSS: front {} MiB; current workers max {} MiB",
        status_kb(front, "VmHWM:").unwrap_or(0) / 1024,
        peaks.iter().max().copied().unwrap_or(0) / 1024
    );
    Ok(())
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}
