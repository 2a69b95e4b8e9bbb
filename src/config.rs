//! `tessera serve` configuration: flags, each with an environment variable, over an
//! optional TOML config file, over the `DEFAULT_*` constants. Validated once, here.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;
use serde::Deserialize;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50051";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default time one worker job may take.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a new worker has for its handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default grace for in-flight requests at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default time between a shutdown signal (health turns NOT_SERVING) and closing the
/// listener, so load balancers can move away first.
pub const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::ZERO;
/// Default jobs after which a worker is replaced.
pub const DEFAULT_MAX_JOBS_PER_WORKER: u64 = 10_000;
/// Default largest tile edge.
pub const DEFAULT_MAX_TILE_SIZE: u32 = 1024;
/// Default most assets per tile.
pub const DEFAULT_MAX_ASSETS_PER_TILE: usize = 64;
/// Default most tiles per batch.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 1000;
/// Default tiles rendered at once per batch or stream.
pub const DEFAULT_STREAM_CONCURRENCY: usize = 8;

/// Flags of `tessera serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the flag names with `_`);
    /// flags and environment variables override it.
    #[arg(long, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:50051].
    #[arg(long, env = "TESSERA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory the assets are read from [default: ./data].
    #[arg(long, env = "TESSERA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Number of GDAL worker processes [default: one per core, at least 2].
    #[arg(long, env = "TESSERA_WORKERS")]
    pub workers: Option<usize>,
    /// Longest one asset read may take, e.g. "10s" or "500ms" [default: 10s].
    #[arg(long, env = "TESSERA_READ_TIMEOUT", value_parser = humantime::parse_duration)]
    pub read_timeout: Option<Duration>,
    /// Time a new worker has to start and shake hands [default: 10s].
    #[arg(long, env = "TESSERA_HANDSHAKE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// Time in-flight requests get to finish at shutdown [default: 10s].
    #[arg(long, env = "TESSERA_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// After SIGTERM, keep serving this long with health NOT_SERVING before the listener
    /// closes, e.g. "5s" for Kubernetes endpoints to catch up [default: 0s].
    #[arg(long, env = "TESSERA_SHUTDOWN_DELAY", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Option<Duration>,
    /// Jobs after which a worker is replaced [default: 10000].
    #[arg(long, env = "TESSERA_MAX_JOBS_PER_WORKER")]
    pub max_jobs_per_worker: Option<u64>,
    /// Largest tile edge in pixels [default: 1024].
    #[arg(long, env = "TESSERA_MAX_TILE_SIZE")]
    pub max_tile_size: Option<u32>,
    /// Most assets in one tile [default: 64].
    #[arg(long, env = "TESSERA_MAX_ASSETS_PER_TILE")]
    pub max_assets_per_tile: Option<usize>,
    /// Most tiles in one GetTiles request [default: 1000].
    #[arg(long, env = "TESSERA_MAX_BATCH_SIZE")]
    pub max_batch_size: Option<usize>,
    /// Tiles of one GetTiles/StreamTiles call rendered at once [default: 8].
    #[arg(long, env = "TESSERA_STREAM_CONCURRENCY")]
    pub stream_concurrency: Option<usize>,
}

/// The config file's shape: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    workers: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    read_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    handshake_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    shutdown_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    shutdown_delay: Option<Duration>,
    max_jobs_per_worker: Option<u64>,
    max_tile_size: Option<u32>,
    max_assets_per_tile: Option<usize>,
    max_batch_size: Option<usize>,
    stream_concurrency: Option<usize>,
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The validated configuration of a server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Worker count.
    pub workers: usize,
    /// Per-job timeout.
    pub read_timeout: Duration,
    /// Worker handshake timeout.
    pub handshake_timeout: Duration,
    /// Shutdown grace.
    pub shutdown_grace: Duration,
    /// NOT_SERVING period before the listener closes.
    pub shutdown_delay: Duration,
    /// Jobs per worker before recycling.
    pub max_jobs_per_worker: u64,
    /// Largest tile edge.
    pub max_tile_size: u32,
    /// Most assets per tile.
    pub max_assets_per_tile: usize,
    /// Most tiles per batch.
    pub max_batch_size: usize,
    /// Tiles rendered at once per batch/stream.
    pub stream_concurrency: usize,
}

/// A configuration that cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl ServeArgs {
    /// Merges flags/env over the config file over the defaults, and validates.
    ///
    /// # Panics
    /// Never: the default listen address is a constant that parses.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let config = ServeConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses")),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            workers: self
                .workers
                .or(file.workers)
                .unwrap_or_else(crate::pool::default_worker_count),
            read_timeout: self
                .read_timeout
                .or(file.read_timeout)
                .unwrap_or(DEFAULT_READ_TIMEOUT),
            handshake_timeout: self
                .handshake_timeout
                .or(file.handshake_timeout)
                .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
            shutdown_grace: self
                .shutdown_grace
                .or(file.shutdown_grace)
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            shutdown_delay: self
                .shutdown_delay
                .or(file.shutdown_delay)
                .unwrap_or(DEFAULT_SHUTDOWN_DELAY),
            max_jobs_per_worker: self
                .max_jobs_per_worker
                .or(file.max_jobs_per_worker)
                .unwrap_or(DEFAULT_MAX_JOBS_PER_WORKER),
            max_tile_size: self
                .max_tile_size
                .or(file.max_tile_size)
                .unwrap_or(DEFAULT_MAX_TILE_SIZE),
            max_assets_per_tile: self
                .max_assets_per_tile
                .or(file.max_assets_per_tile)
                .unwrap_or(DEFAULT_MAX_ASSETS_PER_TILE),
            max_batch_size: self
                .max_batch_size
                .or(file.max_batch_size)
                .unwrap_or(DEFAULT_MAX_BATCH_SIZE),
            stream_concurrency: self
                .stream_concurrency
                .or(file.stream_concurrency)
                .unwrap_or(DEFAULT_STREAM_CONCURRENCY),
        };
        if !(1..=256).contains(&config.workers) {
            return Err(ConfigError::Invalid(format!(
                "--workers={} is outside 1..=256",
                config.workers
            )));
        }
        if !(1..=4096).contains(&config.max_tile_size) {
            return Err(ConfigError::Invalid(format!(
                "--max-tile-size={} is outside 1..=4096",
                config.max_tile_size
            )));
        }
        for (name, v) in [
            ("--max-assets-per-tile", config.max_assets_per_tile),
            ("--max-batch-size", config.max_batch_size),
            ("--stream-concurrency", config.stream_concurrency),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if config.max_jobs_per_worker == 0 {
            return Err(ConfigError::Invalid(
                "--max-jobs-per-worker must be at least 1".into(),
            ));
        }
        if !config.data_dir.is_dir() {
            return Err(ConfigError::Invalid(format!(
                "--data-dir {} is not a directory",
                config.data_dir.display()
            )));
        }
        Ok(config)
    }
}
