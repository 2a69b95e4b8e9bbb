//! Settings of the worker pool: how many workers, how long their jobs and handshakes may
//! take, the limits each worker runs under, when one is recycled, and the supervision
//! (pings, quarantine of assets that crash workers, crash-loop detection).

use std::{path::PathBuf, time::Duration};

use clap::Args;
use serde::Deserialize;

use super::{ConfigError, parse_bytes};
use crate::{ipc::limits::WorkerLimits, pool::PoolConfig};

/// Default time one worker job may take.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a new worker has for its handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default jobs after which a worker is replaced.
pub const DEFAULT_MAX_JOBS_PER_WORKER: u64 = 10_000;
/// Default of `--max-worker-wait`.
pub const DEFAULT_MAX_WORKER_WAIT: Duration = Duration::from_secs(5);
/// Default of `--worker-max-rss`.
pub const DEFAULT_WORKER_MAX_RSS: u64 = 1 << 30;
/// Default of `--worker-memory-limit`.
pub const DEFAULT_WORKER_MEMORY_LIMIT: u64 = 4 << 30;
/// Default of `--quarantine-threshold`.
pub const DEFAULT_QUARANTINE_THRESHOLD: usize = 2;
/// Default of `--quarantine-timeouts`: above the two kills one request can cost (the
/// read and its one retry), so a single slow read never quarantines an asset.
pub const DEFAULT_QUARANTINE_TIMEOUTS: usize = 3;
/// Default of `--quarantine-window`.
pub const DEFAULT_QUARANTINE_WINDOW: Duration = Duration::from_secs(600);
/// Default of `--quarantine-duration`.
pub const DEFAULT_QUARANTINE_DURATION: Duration = Duration::from_secs(300);
/// Default of `--crash-loop-threshold`.
pub const DEFAULT_CRASH_LOOP_THRESHOLD: usize = 5;
/// Default of `--crash-loop-window`.
pub const DEFAULT_CRASH_LOOP_WINDOW: Duration = Duration::from_secs(30);
/// Default of `--ping-interval`.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);
/// Default of `--ping-timeout`.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// The pool's flags, and its keys of the config file.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(default)]
pub struct PoolArgs {
    /// Number of GDAL worker processes [default: one per core and one more, at least 2].
    #[arg(long, env = "TESSERA_WORKERS")]
    pub workers: Option<usize>,
    /// Longest one asset read may take, e.g. "10s" or "500ms" [default: 10s].
    #[arg(long, env = "TESSERA_READ_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub read_timeout: Option<Duration>,
    /// Time a new worker has to start and shake hands [default: 10s].
    #[arg(long, env = "TESSERA_HANDSHAKE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub handshake_timeout: Option<Duration>,
    /// Jobs after which a worker is replaced [default: 10000].
    #[arg(long, env = "TESSERA_MAX_JOBS_PER_WORKER")]
    pub max_jobs_per_worker: Option<u64>,
    /// Longest an asset read waits for a free worker before RESOURCE_EXHAUSTED [default: 5s].
    #[arg(long, env = "TESSERA_MAX_WORKER_WAIT", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub max_worker_wait: Option<Duration>,
    /// Resident memory (e.g. 1GiB) over which a worker is replaced after its job [default: 1GiB].
    #[arg(long, env = "TESSERA_WORKER_MAX_RSS", value_parser = parse_bytes)]
    #[serde(with = "super::bytes_serde_opt")]
    pub worker_max_rss: Option<u64>,
    /// Address-space limit of each worker (e.g. 4GiB): a runaway read kills one worker, not the pod; 0 = none [default: 4GiB].
    #[arg(long, env = "TESSERA_WORKER_MEMORY_LIMIT", value_parser = parse_bytes)]
    #[serde(with = "super::bytes_serde_opt")]
    pub worker_memory_limit: Option<u64>,
    /// CPU time one worker job may use before the worker is killed (SIGXCPU), a backstop
    /// behind --read-timeout; 0s = none [default: 60s].
    #[arg(long, env = "TESSERA_WORKER_CPU_PER_JOB", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub worker_cpu_per_job: Option<Duration>,
    /// Open files of each worker (RLIMIT_NOFILE) [default: 1024].
    #[arg(long, env = "TESSERA_WORKER_MAX_OPEN_FILES")]
    pub worker_max_open_files: Option<u64>,
    /// Largest asset a worker opens, in pixels per band (width x height) [default: 17179869184, 2^34].
    #[arg(long, env = "TESSERA_MAX_ASSET_PIXELS")]
    pub max_asset_pixels: Option<u64>,
    /// Largest asset a worker opens, in bands [default: 64].
    #[arg(long, env = "TESSERA_MAX_ASSET_BANDS")]
    pub max_asset_bands: Option<u32>,
    /// Largest block (tile or strip) of an asset a worker opens, decompressed: block width
    /// x height x bands decoded together x bytes per sample, at every overview too (e.g.
    /// 64MiB) [default: 64MiB].
    #[arg(long, env = "TESSERA_MAX_BLOCK_BYTES", value_parser = parse_bytes)]
    #[serde(with = "super::bytes_serde_opt")]
    pub max_block_bytes: Option<u64>,
    /// Worker crashes caused by one asset within the quarantine window that quarantine it [default: 2].
    #[arg(long, env = "TESSERA_QUARANTINE_THRESHOLD")]
    pub quarantine_threshold: Option<usize>,
    /// Workers killed because one asset's read ran past --read-timeout (not a client's
    /// shorter deadline), within the quarantine window, that quarantine it; 0 = never [default: 3].
    #[arg(long, env = "TESSERA_QUARANTINE_TIMEOUTS")]
    pub quarantine_timeouts: Option<usize>,
    /// Window in which an asset's crashes and read-timeout kills are counted [default: 10m].
    #[arg(long, env = "TESSERA_QUARANTINE_WINDOW", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub quarantine_window: Option<Duration>,
    /// How long a quarantined asset's reads fail fast [default: 5m].
    #[arg(long, env = "TESSERA_QUARANTINE_DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub quarantine_duration: Option<Duration>,
    /// Failed spawns or crashes within the crash-loop window that turn health NOT_SERVING [default: 5].
    #[arg(long, env = "TESSERA_CRASH_LOOP_THRESHOLD")]
    pub crash_loop_threshold: Option<usize>,
    /// Window for counting failed spawns and crashes [default: 30s].
    #[arg(long, env = "TESSERA_CRASH_LOOP_WINDOW", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub crash_loop_window: Option<Duration>,
    /// How often idle workers are pinged; 0s turns pings off [default: 10s].
    #[arg(long, env = "TESSERA_PING_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub ping_interval: Option<Duration>,
    /// Whether a tile goes whole to one worker (its reads, pixel selection and encoding in
    /// one job) when there is one worker or at least as many tiles in flight as workers;
    /// with fewer tiles, its reads are spread over the workers [default: true].
    #[arg(long, env = "TESSERA_WHOLE_TILES", value_name = "BOOL")]
    pub whole_tiles: Option<bool>,
    /// How long an idle worker has to answer a ping [default: 1s].
    #[arg(long, env = "TESSERA_PING_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub ping_timeout: Option<Duration>,
}

impl PoolArgs {
    /// These flags over `file` over the defaults, with `worker_env` (the GDAL options of
    /// the workers, see [`super::RemoteArgs::resolve`]), validated.
    ///
    /// What only the server knows at start is left empty for it to fill in: the
    /// executable (`worker_exe`), the range service (`ranges`) and the canonical local
    /// roots (`worker_limits.local_roots`).
    pub fn resolve(self, file: Self, worker_env: Vec<(String, String)>) -> Result<PoolConfig, ConfigError> {
        let config = PoolConfig {
            size: self.workers.or(file.workers).unwrap_or_else(crate::pool::default_worker_count),
            worker_exe: PathBuf::new(),
            handshake_timeout: self
                .handshake_timeout
                .or(file.handshake_timeout)
                .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
            read_timeout: self.read_timeout.or(file.read_timeout).unwrap_or(DEFAULT_READ_TIMEOUT),
            max_jobs_per_worker: self
                .max_jobs_per_worker
                .or(file.max_jobs_per_worker)
                .unwrap_or(DEFAULT_MAX_JOBS_PER_WORKER),
            max_rss_bytes: Some(
                self.worker_max_rss.or(file.worker_max_rss).unwrap_or(DEFAULT_WORKER_MAX_RSS),
            )
            .filter(|b| *b > 0),
            worker_limits: WorkerLimits {
                memory_limit: Some(
                    self.worker_memory_limit
                        .or(file.worker_memory_limit)
                        .unwrap_or(DEFAULT_WORKER_MEMORY_LIMIT),
                )
                .filter(|b| *b > 0),
                cpu_seconds_per_job: self
                    .worker_cpu_per_job
                    .or(file.worker_cpu_per_job)
                    .unwrap_or(crate::ipc::limits::DEFAULT_CPU_PER_JOB)
                    .as_secs(),
                max_open_files: self
                    .worker_max_open_files
                    .or(file.worker_max_open_files)
                    .unwrap_or(crate::ipc::limits::DEFAULT_MAX_OPEN_FILES),
                max_asset_pixels: self
                    .max_asset_pixels
                    .or(file.max_asset_pixels)
                    .unwrap_or(crate::ipc::limits::DEFAULT_MAX_ASSET_PIXELS),
                max_asset_bands: self
                    .max_asset_bands
                    .or(file.max_asset_bands)
                    .unwrap_or(crate::ipc::limits::DEFAULT_MAX_ASSET_BANDS),
                local_roots: Vec::new(),
                max_block_bytes: self
                    .max_block_bytes
                    .or(file.max_block_bytes)
                    .unwrap_or(crate::ipc::limits::DEFAULT_MAX_BLOCK_BYTES),
            },
            max_worker_wait: self.max_worker_wait.or(file.max_worker_wait).unwrap_or(DEFAULT_MAX_WORKER_WAIT),
            quarantine_threshold: self
                .quarantine_threshold
                .or(file.quarantine_threshold)
                .unwrap_or(DEFAULT_QUARANTINE_THRESHOLD),
            quarantine_timeouts: self
                .quarantine_timeouts
                .or(file.quarantine_timeouts)
                .unwrap_or(DEFAULT_QUARANTINE_TIMEOUTS),
            quarantine_window: self
                .quarantine_window
                .or(file.quarantine_window)
                .unwrap_or(DEFAULT_QUARANTINE_WINDOW),
            quarantine_duration: self
                .quarantine_duration
                .or(file.quarantine_duration)
                .unwrap_or(DEFAULT_QUARANTINE_DURATION),
            crash_loop_threshold: self
                .crash_loop_threshold
                .or(file.crash_loop_threshold)
                .unwrap_or(DEFAULT_CRASH_LOOP_THRESHOLD),
            crash_loop_window: self
                .crash_loop_window
                .or(file.crash_loop_window)
                .unwrap_or(DEFAULT_CRASH_LOOP_WINDOW),
            ping_interval: self.ping_interval.or(file.ping_interval).unwrap_or(DEFAULT_PING_INTERVAL),
            ping_timeout: self.ping_timeout.or(file.ping_timeout).unwrap_or(DEFAULT_PING_TIMEOUT),
            worker_env,
            ranges: None,
            whole_tiles: self.whole_tiles.or(file.whole_tiles).unwrap_or(true),
        };
        validate(&config)?;
        Ok(config)
    }
}

/// Checks every value is in range.
fn validate(config: &PoolConfig) -> Result<(), ConfigError> {
    if !(1..=256).contains(&config.size) {
        return Err(ConfigError::Invalid(format!("--workers={} is outside 1..=256", config.size)));
    }
    for (name, v) in [
        ("--quarantine-threshold", config.quarantine_threshold),
        ("--crash-loop-threshold", config.crash_loop_threshold),
    ] {
        if v == 0 {
            return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
        }
    }
    let limits = &config.worker_limits;
    if limits.max_open_files < 64 {
        return Err(ConfigError::Invalid(format!(
            "--worker-max-open-files={} is below 64 (GDAL, its caches and the frame channel need them)",
            limits.max_open_files
        )));
    }
    if limits.max_asset_pixels == 0 || limits.max_asset_bands == 0 {
        return Err(ConfigError::Invalid(
            "--max-asset-pixels and --max-asset-bands must be at least 1".into(),
        ));
    }
    if limits.max_block_bytes < 1 << 16 {
        return Err(ConfigError::Invalid(format!(
            "--max-block-bytes={} is below 64KiB, the block of a small 128 x 128 float32 tile",
            limits.max_block_bytes
        )));
    }
    if config.max_jobs_per_worker == 0 {
        return Err(ConfigError::Invalid("--max-jobs-per-worker must be at least 1".into()));
    }
    Ok(())
}
