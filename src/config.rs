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

/// Default of `--max-in-flight-tiles`.
pub const DEFAULT_MAX_IN_FLIGHT_TILES: usize = 256;
/// Default of `--max-in-flight-per-caller`: half the server-wide default, so no one
/// identified caller can take the whole server.
pub const DEFAULT_MAX_IN_FLIGHT_PER_CALLER: usize = 128;
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
/// Default of `--remote-metadata-ttl`.
pub const DEFAULT_REMOTE_METADATA_TTL: Duration = Duration::from_secs(300);
/// Default of `--max-request-size`: a GetTiles of 1000 tiles naming 64 assets each fits.
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 4 << 20;
/// Default of `--max-response-size`: a 1024 x 1024 NPY tile of 4 float64 bands and its
/// mask fit.
pub const DEFAULT_MAX_RESPONSE_SIZE: u64 = 64 << 20;
/// Default of `--max-request-memory`: a 1024 px tile of 8 four-band uint16 assets
/// stacked for a median (about 200 MiB) fits; a 4096 px preview with 16
/// float64 outputs (about 12 GiB at its worst) does not.
pub const DEFAULT_MAX_REQUEST_MEMORY: u64 = 256 << 20;
/// Default of `--max-in-flight-memory`: what the front may hold for all renders at
/// once; a 256 px tile of six RGB assets reserves about 4 MiB, so the default admits
/// about as many such tiles as `--max-in-flight-tiles`.
pub const DEFAULT_MAX_IN_FLIGHT_MEMORY: u64 = 1 << 30;
/// Default of `--max-concurrent-streams` (HTTP/2 streams, i.e. calls, per connection).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 128;
/// Default of `--tile-cache-ttl`.
pub const DEFAULT_TILE_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default of `--layer-reload-interval`.
pub const DEFAULT_LAYER_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// Default of `--max-connection-age`: off (zero), so a connection lives as long as its
/// client keeps it; deployments behind client-side balancing set it (deploy/k8s: 5m).
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::ZERO;
/// Default of `--connection-preface-timeout`: a gRPC client sends its HTTP/2 preface as
/// soon as it has connected (after TLS), so a few seconds are generous even far away.
pub const DEFAULT_CONNECTION_PREFACE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of `--connection-idle-timeout`: long enough that a client calling every few
/// minutes keeps its connection, short enough that idle connections do not pile up.
/// A closed idle connection costs the client one reconnect on its next call.
pub const DEFAULT_CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default of `--http2-keepalive-interval`: a ping after this long without anything
/// received finds peers that vanished without closing (host gone, NAT state lost).
pub const DEFAULT_HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// Default of `--http2-keepalive-timeout`: how long the ping's answer may take (gRPC's
/// own default).
pub const DEFAULT_HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest `--max-connections`: the kernel's default ceiling on open files per process
/// (`fs.nr_open`), which no limit can pass.
pub const MAX_MAX_CONNECTIONS: usize = 1 << 20;

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
    /// Number of GDAL worker processes [default: two per core, at least 4].
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
    /// Tiles being rendered at once, server-wide; more get RESOURCE_EXHAUSTED [default: 256].
    #[arg(long, env = "TESSERA_MAX_IN_FLIGHT_TILES")]
    pub max_in_flight_tiles: Option<usize>,
    /// Tiles being rendered at once for one caller identified by its bearer token or client
    /// certificate; more get RESOURCE_EXHAUSTED [default: 128].
    #[arg(long, env = "TESSERA_MAX_IN_FLIGHT_PER_CALLER")]
    pub max_in_flight_per_caller: Option<usize>,
    /// Memory one tile or preview may hold in the front while it renders (e.g. 256MiB),
    /// worked out from the request and the assets' metadata before reading; more is
    /// RESOURCE_EXHAUSTED [default: 256MiB].
    #[arg(long, env = "TESSERA_MAX_REQUEST_MEMORY", value_parser = parse_bytes)]
    pub max_request_memory: Option<u64>,
    /// Memory all tiles and previews in flight may hold in the front together (e.g.
    /// 1GiB); a request that does not fit in what is left gets RESOURCE_EXHAUSTED
    /// [default: 1GiB].
    #[arg(long, env = "TESSERA_MAX_IN_FLIGHT_MEMORY", value_parser = parse_bytes)]
    pub max_in_flight_memory: Option<u64>,
    /// Longest an asset read waits for a free worker before RESOURCE_EXHAUSTED [default: 5s].
    #[arg(long, env = "TESSERA_MAX_WORKER_WAIT", value_parser = humantime::parse_duration)]
    pub max_worker_wait: Option<Duration>,
    /// Resident memory (e.g. 1GiB) over which a worker is replaced after its job [default: 1GiB].
    #[arg(long, env = "TESSERA_WORKER_MAX_RSS", value_parser = parse_bytes)]
    pub worker_max_rss: Option<u64>,
    /// Address-space limit of each worker (e.g. 4GiB): a runaway read kills one worker, not the pod; 0 = none [default: 4GiB].
    #[arg(long, env = "TESSERA_WORKER_MEMORY_LIMIT", value_parser = parse_bytes)]
    pub worker_memory_limit: Option<u64>,
    /// Worker crashes caused by one asset within the quarantine window that quarantine it [default: 2].
    #[arg(long, env = "TESSERA_QUARANTINE_THRESHOLD")]
    pub quarantine_threshold: Option<usize>,
    /// Workers killed because one asset's read ran past --read-timeout (not a client's
    /// shorter deadline), within the quarantine window, that quarantine it; 0 = never [default: 3].
    #[arg(long, env = "TESSERA_QUARANTINE_TIMEOUTS")]
    pub quarantine_timeouts: Option<usize>,
    /// Window in which an asset's crashes and read-timeout kills are counted [default: 10m].
    #[arg(long, env = "TESSERA_QUARANTINE_WINDOW", value_parser = humantime::parse_duration)]
    pub quarantine_window: Option<Duration>,
    /// How long a quarantined asset's reads fail fast [default: 5m].
    #[arg(long, env = "TESSERA_QUARANTINE_DURATION", value_parser = humantime::parse_duration)]
    pub quarantine_duration: Option<Duration>,
    /// Failed spawns or crashes within the crash-loop window that turn health NOT_SERVING [default: 5].
    #[arg(long, env = "TESSERA_CRASH_LOOP_THRESHOLD")]
    pub crash_loop_threshold: Option<usize>,
    /// Window for counting failed spawns and crashes [default: 30s].
    #[arg(long, env = "TESSERA_CRASH_LOOP_WINDOW", value_parser = humantime::parse_duration)]
    pub crash_loop_window: Option<Duration>,
    /// How often idle workers are pinged; 0s turns pings off [default: 10s].
    #[arg(long, env = "TESSERA_PING_INTERVAL", value_parser = humantime::parse_duration)]
    pub ping_interval: Option<Duration>,
    /// How long an idle worker has to answer a ping [default: 1s].
    #[arg(long, env = "TESSERA_PING_TIMEOUT", value_parser = humantime::parse_duration)]
    pub ping_timeout: Option<Duration>,
    /// Address of the admin HTTP endpoint (GET /metrics, Prometheus text); off when unset [default: off].
    #[arg(long, env = "TESSERA_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Another local directory whose files may be named by absolute path (repeatable; env:
    /// comma-separated); relative names always resolve in --data-dir [default: none].
    #[arg(long, env = "TESSERA_ALLOW_LOCAL", value_delimiter = ',')]
    pub allow_local: Vec<PathBuf>,
    /// An OGC TileMatrixSet 2.0 JSON file: one more tile matrix set to serve besides
    /// WebMercatorQuad and WorldCRS84Quad (repeatable; env: comma-separated) [default: none].
    #[arg(long = "tile-matrix-set", env = "TESSERA_TILE_MATRIX_SETS", value_delimiter = ',')]
    pub tile_matrix_sets: Vec<PathBuf>,
    /// URL prefix under which remote assets may be read, e.g. https://data.example.com/cogs/
    /// or s3://naip-bucket/ (repeatable; env: comma-separated) [default: none].
    #[arg(long, env = "TESSERA_ALLOW_REMOTE", value_delimiter = ',')]
    pub allow_remote: Vec<String>,
    /// S3-compatible endpoint (host[:port]) for s3:// assets [default: AWS].
    #[arg(long, env = "TESSERA_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Address S3 buckets in the path (http://endpoint/bucket/key), not the host name [default: false].
    #[arg(long, env = "TESSERA_S3_PATH_STYLE", num_args = 0..=1, default_missing_value = "true")]
    pub s3_path_style: Option<bool>,
    /// Talk to the S3 endpoint over https [default: true].
    #[arg(long, env = "TESSERA_S3_HTTPS", num_args = 0..=1, default_missing_value = "true")]
    pub s3_https: Option<bool>,
    /// S3 region [default: from AWS_REGION, else us-east-1].
    #[arg(long, env = "TESSERA_S3_REGION")]
    pub s3_region: Option<String>,
    /// Read s3:// assets without signing requests (public buckets) [default: false; credentials come from the standard AWS variables or web identity].
    #[arg(long, env = "TESSERA_S3_ANONYMOUS", num_args = 0..=1, default_missing_value = "true")]
    pub s3_anonymous: Option<bool>,
    /// A GDAL configuration option for the workers, KEY=VALUE (repeatable; env: separated by ';'); overrides Tessera's defaults.
    #[arg(long, env = "TESSERA_GDAL_CONFIG", value_delimiter = ';')]
    pub gdal_config: Vec<String>,
    /// How long the front trusts a remote asset's cached bounds and type [default: 5m].
    #[arg(long, env = "TESSERA_REMOTE_METADATA_TTL", value_parser = humantime::parse_duration)]
    pub remote_metadata_ttl: Option<Duration>,
    /// Memory for remote assets' bytes (headers and blocks), one cache shared by every
    /// worker (e.g. 512MiB) [default: 1/8 of the pod's memory, between 64MiB and 1GiB].
    #[arg(long, env = "TESSERA_REMOTE_CACHE_SIZE", value_parser = parse_bytes)]
    pub remote_cache_size: Option<u64>,
    /// Memory for encoded tiles kept in the front (e.g. 256MiB); 0 = no tile cache [default: 0].
    #[arg(long, env = "TESSERA_TILE_CACHE_SIZE", value_parser = parse_bytes)]
    pub tile_cache_size: Option<u64>,
    /// How long a cached tile is served [default: 60s].
    #[arg(long, env = "TESSERA_TILE_CACHE_TTL", value_parser = humantime::parse_duration)]
    pub tile_cache_ttl: Option<Duration>,
    /// How often the `[[layers]]` of the config file are checked for changed MosaicJSON
    /// files and glob matches; 0s = never [default: 5s].
    #[arg(long, env = "TESSERA_LAYER_RELOAD_INTERVAL", value_parser = humantime::parse_duration)]
    pub layer_reload_interval: Option<Duration>,
    /// CPU time one worker job may use before the worker is killed (SIGXCPU), a backstop
    /// behind --read-timeout; 0s = none [default: 60s].
    #[arg(long, env = "TESSERA_WORKER_CPU_PER_JOB", value_parser = humantime::parse_duration)]
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
    pub max_block_bytes: Option<u64>,
    /// Largest request message (e.g. 4MiB); larger ones get RESOURCE_EXHAUSTED [default: 4MiB].
    #[arg(long, env = "TESSERA_MAX_REQUEST_SIZE", value_parser = parse_bytes)]
    pub max_request_size: Option<u64>,
    /// Largest response message, i.e. one encoded tile (e.g. 64MiB); larger tiles get RESOURCE_EXHAUSTED [default: 64MiB].
    #[arg(long, env = "TESSERA_MAX_RESPONSE_SIZE", value_parser = parse_bytes)]
    pub max_response_size: Option<u64>,
    /// Concurrent calls (HTTP/2 streams) on one client connection [default: 128].
    #[arg(long, env = "TESSERA_MAX_CONCURRENT_STREAMS")]
    pub max_concurrent_streams: Option<u32>,
    /// Age (±10%) after which a client connection is sent GOAWAY: calls in flight
    /// finish, new calls go to a new connection. E.g. "5m", so clients balancing over a
    /// headless Service re-resolve and spread over new pods; 0s = off [default: 0s].
    #[arg(long, env = "TESSERA_MAX_CONNECTION_AGE", value_parser = humantime::parse_duration)]
    pub max_connection_age: Option<Duration>,
    /// Client connections open at once; more are closed right after accept [default:
    /// the open-file limit (RLIMIT_NOFILE) minus a reserve for the workers, the admin
    /// endpoint, the OTLP exporter and files; logged at start].
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Time a new connection has to send its HTTP/2 preface (after the TLS handshake,
    /// which has its own 10s); a silent connection is closed after it [default: 5s].
    #[arg(long, env = "TESSERA_CONNECTION_PREFACE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub connection_preface_timeout: Option<Duration>,
    /// Time a connection may stay without any call open before it is sent GOAWAY and
    /// closed; 0s = never [default: 5m].
    #[arg(long, env = "TESSERA_CONNECTION_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub connection_idle_timeout: Option<Duration>,
    /// Time without anything received on a connection after which the server sends an
    /// HTTP/2 ping; 0s = no pings [default: 60s].
    #[arg(long, env = "TESSERA_HTTP2_KEEPALIVE_INTERVAL", value_parser = humantime::parse_duration)]
    pub http2_keepalive_interval: Option<Duration>,
    /// Time a keepalive ping's answer may take before the connection is closed [default: 20s].
    #[arg(long, env = "TESSERA_HTTP2_KEEPALIVE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub http2_keepalive_timeout: Option<Duration>,
    /// PEM certificate chain of the server; with --tls-key, the server speaks TLS only [default: plaintext].
    #[arg(long, env = "TESSERA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "TESSERA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): clients must present a certificate it signed (mTLS) [default: no client certificates].
    #[arg(long, env = "TESSERA_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// File of accepted bearer tokens, one per line; callers must send `authorization: Bearer TOKEN`.
    /// A single token can also come from the TESSERA_AUTH_TOKEN variable [default: no token check].
    #[arg(long, env = "TESSERA_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
}

/// The variable a single bearer token can come from (not a flag: flags show in `ps`).
pub const AUTH_TOKEN_VAR: &str = "TESSERA_AUTH_TOKEN";

/// The config file's shape: every key optional. Public so that the `config_file` fuzz
/// target parses files exactly as `--config` does ([`FileConfig::parse`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
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
    max_in_flight_tiles: Option<usize>,
    max_in_flight_per_caller: Option<usize>,
    #[serde(default, with = "bytes_serde_opt")]
    max_request_memory: Option<u64>,
    #[serde(default, with = "bytes_serde_opt")]
    max_in_flight_memory: Option<u64>,
    #[serde(default, with = "humantime_serde_opt")]
    max_worker_wait: Option<Duration>,
    #[serde(default, with = "bytes_serde_opt")]
    worker_max_rss: Option<u64>,
    #[serde(default, with = "bytes_serde_opt")]
    worker_memory_limit: Option<u64>,
    quarantine_threshold: Option<usize>,
    quarantine_timeouts: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    quarantine_window: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    quarantine_duration: Option<Duration>,
    crash_loop_threshold: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    crash_loop_window: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    ping_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    ping_timeout: Option<Duration>,
    admin_listen: Option<SocketAddr>,
    allow_remote: Option<Vec<String>>,
    allow_local: Option<Vec<PathBuf>>,
    tile_matrix_sets: Option<Vec<PathBuf>>,
    s3_endpoint: Option<String>,
    s3_path_style: Option<bool>,
    s3_https: Option<bool>,
    s3_region: Option<String>,
    s3_anonymous: Option<bool>,
    gdal_config: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, with = "humantime_serde_opt")]
    remote_metadata_ttl: Option<Duration>,
    #[serde(default, with = "bytes_serde_opt")]
    remote_cache_size: Option<u64>,
    #[serde(default, with = "bytes_serde_opt")]
    tile_cache_size: Option<u64>,
    #[serde(default, with = "humantime_serde_opt")]
    tile_cache_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    layer_reload_interval: Option<Duration>,
    #[serde(default)]
    layers: Vec<crate::layers::LayerConfig>,
    #[serde(default, with = "humantime_serde_opt")]
    worker_cpu_per_job: Option<Duration>,
    worker_max_open_files: Option<u64>,
    max_asset_pixels: Option<u64>,
    max_asset_bands: Option<u32>,
    #[serde(default, with = "bytes_serde_opt")]
    max_block_bytes: Option<u64>,
    #[serde(default, with = "bytes_serde_opt")]
    max_request_size: Option<u64>,
    #[serde(default, with = "bytes_serde_opt")]
    max_response_size: Option<u64>,
    max_concurrent_streams: Option<u32>,
    #[serde(default, with = "humantime_serde_opt")]
    max_connection_age: Option<Duration>,
    max_connections: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    connection_preface_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    connection_idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    http2_keepalive_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    http2_keepalive_timeout: Option<Duration>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    auth_token_file: Option<PathBuf>,
}

impl FileConfig {
    /// Parses the text of the config file `path`. Reads nothing the file names: that,
    /// and the merge with the flags, is [`ServeArgs::resolve`]'s.
    pub fn parse(path: &std::path::Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::File { path: path.to_owned(), reason: e.to_string() })
    }

    /// The `[[layers]]` tables, as written (checked by [`crate::layers::validate`]).
    #[must_use]
    pub fn layers(&self) -> &[crate::layers::LayerConfig] {
        &self.layers
    }
}

/// Parses a byte size: plain bytes, or a number with KiB, MiB, GiB (or KB, MB, GB).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("'{s}' is not a size like 512MiB or 2GiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit '{other}' in '{s}'; use B, KiB, MiB or GiB")),
    };
    n.checked_mul(factor).ok_or_else(|| format!("'{s}' is too large"))
}

mod bytes_serde_opt {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| super::parse_bytes(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
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
    /// `--max-in-flight-tiles`.
    pub max_in_flight_tiles: usize,
    /// `--max-in-flight-per-caller`.
    pub max_in_flight_per_caller: usize,
    /// `--max-request-memory` in bytes (at most `max_in_flight_memory`).
    pub max_request_memory: u64,
    /// `--max-in-flight-memory` in bytes.
    pub max_in_flight_memory: u64,
    /// `--max-worker-wait`.
    pub max_worker_wait: Duration,
    /// `--worker-max-rss`.
    pub worker_max_rss: u64,
    /// Worker limits: `--worker-memory-limit`, `--worker-cpu-per-job`,
    /// `--worker-max-open-files`, `--max-asset-pixels`, `--max-asset-bands`,
    /// `--max-block-bytes`.
    pub worker_limits: crate::worker::WorkerLimits,
    /// `--max-request-size` in bytes.
    pub max_request_size: usize,
    /// `--max-response-size` in bytes.
    pub max_response_size: usize,
    /// `--max-concurrent-streams`.
    pub max_concurrent_streams: u32,
    /// `--max-connection-age`; `None` when off.
    pub max_connection_age: Option<Duration>,
    /// `--max-connections`; `None`: derived from the open-file limit at start
    /// (see `server::fd_budget`).
    pub max_connections: Option<usize>,
    /// `--connection-preface-timeout`.
    pub connection_preface_timeout: Duration,
    /// `--connection-idle-timeout`; `None` when off.
    pub connection_idle_timeout: Option<Duration>,
    /// `--http2-keepalive-interval`; `None` when off.
    pub http2_keepalive_interval: Option<Duration>,
    /// `--http2-keepalive-timeout`.
    pub http2_keepalive_timeout: Duration,
    /// TLS settings, when the server speaks TLS.
    pub tls: Option<TlsConfig>,
    /// Accepted bearer tokens; empty = no token check.
    pub auth_tokens: Vec<String>,
    /// `--quarantine-threshold`.
    pub quarantine_threshold: usize,
    /// `--quarantine-timeouts`; 0 = read-timeout kills never quarantine.
    pub quarantine_timeouts: usize,
    /// `--quarantine-window`.
    pub quarantine_window: Duration,
    /// `--quarantine-duration`.
    pub quarantine_duration: Duration,
    /// `--crash-loop-threshold`.
    pub crash_loop_threshold: usize,
    /// `--crash-loop-window`.
    pub crash_loop_window: Duration,
    /// `--ping-interval`.
    pub ping_interval: Duration,
    /// `--ping-timeout`.
    pub ping_timeout: Duration,
    /// `--admin-listen`.
    pub admin_listen: Option<SocketAddr>,
    /// `--allow-remote` prefixes.
    pub allow_remote: Vec<String>,
    /// `--allow-local` directories.
    pub allow_local: Vec<PathBuf>,
    /// The built-in tile matrix sets and those of `--tile-matrix-set` files.
    pub tile_matrix_sets: crate::tms::TileMatrixSets,
    /// Environment of every worker process: GDAL configuration options (Tessera's
    /// S3 settings and `--gdal-config`), on top of the front's own environment.
    pub worker_env: Vec<(String, String)>,
    /// `--remote-metadata-ttl`.
    pub remote_metadata_ttl: Duration,
    /// `--remote-cache-size`: bytes of remote assets the front keeps (see [`crate::fetch`]).
    pub remote_cache_size: u64,
    /// `--tile-cache-size` (0 = off).
    pub tile_cache_size: u64,
    /// `--tile-cache-ttl`.
    pub tile_cache_ttl: Duration,
    /// The `[[layers]]` tables of the config file (validated).
    pub layers: Vec<crate::layers::LayerConfig>,
    /// `--layer-reload-interval` (zero: never).
    pub layer_reload_interval: Duration,
}

/// The server's TLS material, read from the files at start.
#[derive(Clone)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_pem: Vec<u8>,
    /// PEM private key.
    pub key_pem: Vec<u8>,
    /// PEM CA of client certificates (mTLS), if required.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").field("mtls", &self.client_ca_pem.is_some()).finish_non_exhaustive()
    }
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

impl ServeConfig {
    /// Checks every value is in range.
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=256).contains(&self.workers) {
            return Err(ConfigError::Invalid(format!("--workers={} is outside 1..=256", self.workers)));
        }
        if !(1..=4096).contains(&self.max_tile_size) {
            return Err(ConfigError::Invalid(format!(
                "--max-tile-size={} is outside 1..=4096",
                self.max_tile_size
            )));
        }
        for (name, v) in [
            ("--max-assets-per-tile", self.max_assets_per_tile),
            ("--max-batch-size", self.max_batch_size),
            ("--stream-concurrency", self.stream_concurrency),
            ("--max-in-flight-tiles", self.max_in_flight_tiles),
            ("--max-in-flight-per-caller", self.max_in_flight_per_caller),
            ("--quarantine-threshold", self.quarantine_threshold),
            ("--crash-loop-threshold", self.crash_loop_threshold),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if self.max_request_memory > self.max_in_flight_memory {
            return Err(ConfigError::Invalid(format!(
                "--max-request-memory={} exceeds --max-in-flight-memory={}: one request cannot hold more than all of them",
                self.max_request_memory, self.max_in_flight_memory
            )));
        }
        if self.max_concurrent_streams == 0 {
            return Err(ConfigError::Invalid("--max-concurrent-streams must be at least 1".into()));
        }
        if let Some(n) = self.max_connections.filter(|n| !(1..=MAX_MAX_CONNECTIONS).contains(n)) {
            return Err(ConfigError::Invalid(format!(
                "--max-connections={n} is outside 1..={MAX_MAX_CONNECTIONS}"
            )));
        }
        // Zero would close every connection at once, or keep silent ones forever.
        for (name, t) in [
            ("--connection-preface-timeout", self.connection_preface_timeout),
            ("--http2-keepalive-timeout", self.http2_keepalive_timeout),
        ] {
            if t.is_zero() {
                return Err(ConfigError::Invalid(format!("{name} must be more than 0s")));
            }
        }
        if self.worker_limits.max_open_files < 64 {
            return Err(ConfigError::Invalid(format!(
                "--worker-max-open-files={} is below 64 (GDAL, its caches and the frame channel need them)",
                self.worker_limits.max_open_files
            )));
        }
        if self.worker_limits.max_asset_pixels == 0 || self.worker_limits.max_asset_bands == 0 {
            return Err(ConfigError::Invalid(
                "--max-asset-pixels and --max-asset-bands must be at least 1".into(),
            ));
        }
        if self.worker_limits.max_block_bytes < 1 << 16 {
            return Err(ConfigError::Invalid(format!(
                "--max-block-bytes={} is below 64KiB, the block of a small 128 x 128 float32 tile",
                self.worker_limits.max_block_bytes
            )));
        }
        if self.max_jobs_per_worker == 0 {
            return Err(ConfigError::Invalid("--max-jobs-per-worker must be at least 1".into()));
        }
        for prefix in &self.allow_remote {
            crate::mosaic::RemotePrefix::parse(prefix)
                .map_err(|e| ConfigError::Invalid(format!("--allow-remote {e}")))?;
        }
        if let Some(dir) = self.allow_local.iter().find(|d| !d.is_dir()) {
            return Err(ConfigError::Invalid(format!("--allow-local {} is not a directory", dir.display())));
        }
        if !self.data_dir.is_dir() {
            return Err(ConfigError::Invalid(format!(
                "--data-dir {} is not a directory",
                self.data_dir.display()
            )));
        }
        crate::layers::validate(&self.layers, &self.data_dir)
            .map_err(|e| ConfigError::Invalid(format!("[[layers]]: {e}")))?;
        Ok(())
    }
}

impl ServeArgs {
    /// Merges flags/env over the config file over the defaults, and validates.
    ///
    /// # Panics
    /// Never: the default listen address is a constant that parses.
    // One flat merge, a few lines per setting: splitting it would only scatter them.
    #[allow(clippy::too_many_lines)]
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::File { path: path.clone(), reason: e.to_string() })?;
                FileConfig::parse(path, &text)?
            }
            None => FileConfig::default(),
        };
        let worker_env = worker_env(&self, &file)?;
        let worker_limits = worker_limits(&self, &file);
        let config = ServeConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses")),
            data_dir: self.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            workers: self.workers.or(file.workers).unwrap_or_else(crate::pool::default_worker_count),
            read_timeout: self.read_timeout.or(file.read_timeout).unwrap_or(DEFAULT_READ_TIMEOUT),
            handshake_timeout: self
                .handshake_timeout
                .or(file.handshake_timeout)
                .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
            shutdown_grace: self.shutdown_grace.or(file.shutdown_grace).unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            shutdown_delay: self.shutdown_delay.or(file.shutdown_delay).unwrap_or(DEFAULT_SHUTDOWN_DELAY),
            max_jobs_per_worker: self
                .max_jobs_per_worker
                .or(file.max_jobs_per_worker)
                .unwrap_or(DEFAULT_MAX_JOBS_PER_WORKER),
            max_tile_size: self.max_tile_size.or(file.max_tile_size).unwrap_or(DEFAULT_MAX_TILE_SIZE),
            max_assets_per_tile: self
                .max_assets_per_tile
                .or(file.max_assets_per_tile)
                .unwrap_or(DEFAULT_MAX_ASSETS_PER_TILE),
            max_batch_size: self.max_batch_size.or(file.max_batch_size).unwrap_or(DEFAULT_MAX_BATCH_SIZE),
            stream_concurrency: self
                .stream_concurrency
                .or(file.stream_concurrency)
                .unwrap_or(DEFAULT_STREAM_CONCURRENCY),
            max_in_flight_tiles: self
                .max_in_flight_tiles
                .or(file.max_in_flight_tiles)
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT_TILES),
            max_in_flight_per_caller: self
                .max_in_flight_per_caller
                .or(file.max_in_flight_per_caller)
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT_PER_CALLER),
            max_request_memory: memory_limit(
                "--max-request-memory",
                self.max_request_memory.or(file.max_request_memory).unwrap_or(DEFAULT_MAX_REQUEST_MEMORY),
            )?,
            max_in_flight_memory: memory_limit(
                "--max-in-flight-memory",
                self.max_in_flight_memory
                    .or(file.max_in_flight_memory)
                    .unwrap_or(DEFAULT_MAX_IN_FLIGHT_MEMORY),
            )?,
            max_worker_wait: self.max_worker_wait.or(file.max_worker_wait).unwrap_or(DEFAULT_MAX_WORKER_WAIT),
            worker_max_rss: self.worker_max_rss.or(file.worker_max_rss).unwrap_or(DEFAULT_WORKER_MAX_RSS),
            worker_limits,
            max_request_size: size_limit(
                "--max-request-size",
                self.max_request_size.or(file.max_request_size).unwrap_or(DEFAULT_MAX_REQUEST_SIZE),
            )?,
            max_response_size: size_limit(
                "--max-response-size",
                self.max_response_size.or(file.max_response_size).unwrap_or(DEFAULT_MAX_RESPONSE_SIZE),
            )?,
            max_concurrent_streams: self
                .max_concurrent_streams
                .or(file.max_concurrent_streams)
                .unwrap_or(DEFAULT_MAX_CONCURRENT_STREAMS),
            max_connection_age: Some(
                self.max_connection_age.or(file.max_connection_age).unwrap_or(DEFAULT_MAX_CONNECTION_AGE),
            )
            .filter(|age| !age.is_zero()),
            max_connections: self.max_connections.or(file.max_connections),
            connection_preface_timeout: self
                .connection_preface_timeout
                .or(file.connection_preface_timeout)
                .unwrap_or(DEFAULT_CONNECTION_PREFACE_TIMEOUT),
            connection_idle_timeout: Some(
                self.connection_idle_timeout
                    .or(file.connection_idle_timeout)
                    .unwrap_or(DEFAULT_CONNECTION_IDLE_TIMEOUT),
            )
            .filter(|t| !t.is_zero()),
            http2_keepalive_interval: Some(
                self.http2_keepalive_interval
                    .or(file.http2_keepalive_interval)
                    .unwrap_or(DEFAULT_HTTP2_KEEPALIVE_INTERVAL),
            )
            .filter(|t| !t.is_zero()),
            http2_keepalive_timeout: self
                .http2_keepalive_timeout
                .or(file.http2_keepalive_timeout)
                .unwrap_or(DEFAULT_HTTP2_KEEPALIVE_TIMEOUT),
            tls: tls_config(
                self.tls_cert.or(file.tls_cert),
                self.tls_key.or(file.tls_key),
                self.tls_client_ca.or(file.tls_client_ca),
            )?,
            auth_tokens: auth_tokens(
                self.auth_token_file.or(file.auth_token_file).as_deref(),
                std::env::var(AUTH_TOKEN_VAR).ok(),
            )?,
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
            admin_listen: self.admin_listen.or(file.admin_listen),
            allow_remote: if self.allow_remote.is_empty() {
                file.allow_remote.unwrap_or_default()
            } else {
                self.allow_remote.clone()
            },
            allow_local: if self.allow_local.is_empty() {
                file.allow_local.unwrap_or_default()
            } else {
                self.allow_local.clone()
            },
            tile_matrix_sets: crate::tms::TileMatrixSets::load(if self.tile_matrix_sets.is_empty() {
                file.tile_matrix_sets.as_deref().unwrap_or_default()
            } else {
                &self.tile_matrix_sets
            })
            .map_err(|e| ConfigError::Invalid(format!("--tile-matrix-set {e}")))?,
            worker_env,
            remote_metadata_ttl: self
                .remote_metadata_ttl
                .or(file.remote_metadata_ttl)
                .unwrap_or(DEFAULT_REMOTE_METADATA_TTL),
            remote_cache_size: self
                .remote_cache_size
                .or(file.remote_cache_size)
                .unwrap_or_else(default_remote_cache_size),
            tile_cache_size: self.tile_cache_size.or(file.tile_cache_size).unwrap_or(0),
            tile_cache_ttl: self.tile_cache_ttl.or(file.tile_cache_ttl).unwrap_or(DEFAULT_TILE_CACHE_TTL),
            layers: file.layers,
            layer_reload_interval: self
                .layer_reload_interval
                .or(file.layer_reload_interval)
                .unwrap_or(DEFAULT_LAYER_RELOAD_INTERVAL),
        };
        config.validate()?;
        Ok(config)
    }
}

/// The worker limits from the flags over the file over the defaults.
fn worker_limits(args: &ServeArgs, file: &FileConfig) -> crate::worker::WorkerLimits {
    crate::worker::WorkerLimits {
        memory_limit: Some(
            args.worker_memory_limit.or(file.worker_memory_limit).unwrap_or(DEFAULT_WORKER_MEMORY_LIMIT),
        )
        .filter(|b| *b > 0),
        cpu_seconds_per_job: args
            .worker_cpu_per_job
            .or(file.worker_cpu_per_job)
            .unwrap_or(crate::worker::DEFAULT_CPU_PER_JOB)
            .as_secs(),
        max_open_files: args
            .worker_max_open_files
            .or(file.worker_max_open_files)
            .unwrap_or(crate::worker::DEFAULT_MAX_OPEN_FILES),
        max_asset_pixels: args
            .max_asset_pixels
            .or(file.max_asset_pixels)
            .unwrap_or(crate::worker::DEFAULT_MAX_ASSET_PIXELS),
        max_asset_bands: args
            .max_asset_bands
            .or(file.max_asset_bands)
            .unwrap_or(crate::worker::DEFAULT_MAX_ASSET_BANDS),
        // Canonical only once the data directory is resolved: `serve` fills them in.
        local_roots: Vec::new(),
        max_block_bytes: args
            .max_block_bytes
            .or(file.max_block_bytes)
            .unwrap_or(crate::worker::DEFAULT_MAX_BLOCK_BYTES),
    }
}

/// A memory budget: at least 1 MiB, at most 1 TiB.
fn memory_limit(flag: &str, bytes: u64) -> Result<u64, ConfigError> {
    if !(1 << 20..=1 << 40).contains(&bytes) {
        return Err(ConfigError::Invalid(format!("{flag}={bytes} is outside 1MiB..=1TiB")));
    }
    Ok(bytes)
}

/// A message-size limit: at least 1 KiB, at most 1 GiB.
fn size_limit(flag: &str, bytes: u64) -> Result<usize, ConfigError> {
    if !(1024..=1 << 30).contains(&bytes) {
        return Err(ConfigError::Invalid(format!("{flag}={bytes} is outside 1KiB..=1GiB")));
    }
    Ok(usize::try_from(bytes).unwrap_or(usize::MAX))
}

fn read_file(flag: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::Invalid(format!("{flag} {}: {e}", path.display())))
}

/// Reads the TLS files; certificate and key come together, a client CA needs both.
fn tls_config(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> Result<Option<TlsConfig>, ConfigError> {
    match (cert, key) {
        (None, None) if client_ca.is_none() => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsConfig {
            cert_pem: read_file("--tls-cert", &cert)?,
            key_pem: read_file("--tls-key", &key)?,
            client_ca_pem: client_ca.map(|ca| read_file("--tls-client-ca", &ca)).transpose()?,
        })),
        _ => Err(ConfigError::Invalid(
            "TLS needs both --tls-cert and --tls-key (and --tls-client-ca needs them too)".into(),
        )),
    }
}

/// The accepted bearer tokens: the file's non-empty lines (`#` starts a comment line)
/// plus the variable's value. A configured source without any token is an error, not
/// an open door.
fn auth_tokens(file: Option<&std::path::Path>, var: Option<String>) -> Result<Vec<String>, ConfigError> {
    let mut tokens = Vec::new();
    if let Some(path) = file {
        let text = String::from_utf8(read_file("--auth-token-file", path)?).map_err(|_| {
            ConfigError::Invalid(format!("--auth-token-file {}: not UTF-8 text", path.display()))
        })?;
        tokens.extend(
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned),
        );
        if tokens.is_empty() {
            return Err(ConfigError::Invalid(format!("--auth-token-file {} holds no token", path.display())));
        }
    }
    if let Some(token) = var {
        let token = token.trim();
        if token.is_empty() {
            return Err(ConfigError::Invalid(format!("{AUTH_TOKEN_VAR} is set but empty")));
        }
        tokens.push(token.to_owned());
    }
    if tokens.iter().any(|t| !t.bytes().all(|b| b.is_ascii_graphic())) {
        return Err(ConfigError::Invalid("bearer tokens must be printable ASCII without spaces".into()));
    }
    Ok(tokens)
}

/// The remote cache's default size: an eighth of the pod's memory (its cgroup limit, or
/// the machine's), at least 64 MiB and at most 1 GiB.
#[must_use]
pub fn default_remote_cache_size() -> u64 {
    const MIB: u64 = 1024 * 1024;
    crate::pool::pod_memory().map_or(256 * MIB, |pod| (pod.bytes / 8).clamp(64 * MIB, 1024 * MIB))
}

/// The GDAL options workers get from the S3 flags and `--gdal-config` (flags over file).
fn worker_env(args: &ServeArgs, file: &FileConfig) -> Result<Vec<(String, String)>, ConfigError> {
    let yes_no = |b: bool| if b { "YES" } else { "NO" }.to_owned();
    let mut env = std::collections::BTreeMap::new();
    if let Some(endpoint) = args.s3_endpoint.clone().or_else(|| file.s3_endpoint.clone()) {
        env.insert("AWS_S3_ENDPOINT".to_owned(), endpoint);
    }
    if let Some(path_style) = args.s3_path_style.or(file.s3_path_style) {
        env.insert("AWS_VIRTUAL_HOSTING".to_owned(), yes_no(!path_style));
    }
    if let Some(https) = args.s3_https.or(file.s3_https) {
        env.insert("AWS_HTTPS".to_owned(), yes_no(https));
    }
    if let Some(region) = args.s3_region.clone().or_else(|| file.s3_region.clone()) {
        env.insert("AWS_REGION".to_owned(), region);
    }
    if let Some(anonymous) = args.s3_anonymous.or(file.s3_anonymous) {
        env.insert("AWS_NO_SIGN_REQUEST".to_owned(), yes_no(anonymous));
    }
    for (k, v) in file.gdal_config.iter().flatten() {
        env.insert(k.clone(), v.clone());
    }
    for kv in &args.gdal_config {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            ConfigError::Invalid(format!(
                "--gdal-config '{kv}' is not KEY=VALUE (e.g. GDAL_HTTP_MAX_RETRY=5)"
            ))
        })?;
        env.insert(k.trim().to_owned(), v.to_owned());
    }
    for k in env.keys() {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
            return Err(ConfigError::Invalid(format!(
                "GDAL option name '{k}' is not valid: names are upper case letters, digits and '_'"
            )));
        }
    }
    Ok(env.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("3MB"), Ok(3_000_000));
        assert!(parse_bytes("12 parsecs").unwrap_err().contains("unknown size unit"));
    }

    /// The ConfigMap of deploy/k8s carries this file; `deploy/check.py` reads the same
    /// file for the probe port and the drain times.
    const K8S_CONFIG: &str = include_str!("../deploy/k8s/base/tessera.toml");

    #[test]
    fn the_kubernetes_config_file_parses_with_the_servers_own_keys() {
        let file: FileConfig = toml::from_str(K8S_CONFIG).unwrap();
        assert_eq!(file.listen, Some("0.0.0.0:50051".parse().unwrap()));
        // Clients of the headless Service re-balance every few minutes.
        assert_eq!(file.max_connection_age, Some(Duration::from_secs(300)));
        // The Deployment's terminationGracePeriodSeconds is sized from these two.
        assert!(file.shutdown_delay.is_some_and(|d| !d.is_zero()));
        assert!(file.shutdown_grace.is_some());
    }

    #[test]
    fn the_kubernetes_config_file_resolves_to_a_valid_config() {
        // The pod mounts its data at /data; here any existing directory stands in.
        let path = std::env::temp_dir().join(format!("tessera-k8s-{}.toml", std::process::id()));
        let data_dir = std::env::temp_dir();
        let text = K8S_CONFIG.replace("\"/data\"", &format!("{:?}", data_dir.display().to_string()));
        assert_ne!(text, K8S_CONFIG, "the file sets data_dir = \"/data\"");
        std::fs::write(&path, text).unwrap();
        let args = ServeArgs { config: Some(path.clone()), ..ServeArgs::default() };
        let resolved = args.resolve();
        std::fs::remove_file(&path).unwrap();
        let config = resolved.unwrap();
        assert_eq!(config.max_connection_age, Some(Duration::from_secs(300)));
        assert_eq!(config.listen.port(), 50051);
    }

    #[test]
    fn a_zero_max_connection_age_turns_it_off() {
        let args = ServeArgs {
            max_connection_age: Some(Duration::ZERO),
            data_dir: Some(std::env::temp_dir()),
            ..ServeArgs::default()
        };
        assert_eq!(args.resolve().unwrap().max_connection_age, None);
    }

    #[test]
    fn the_readmes_layers_example_parses_and_validates() {
        let page = include_str!("../docs/layers.md");
        let section = &page[page.find("```toml").expect("a toml block in docs/layers.md")..];
        let block = section.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).unwrap();
        let file: FileConfig = toml::from_str(block).unwrap();
        let specs = crate::layers::validate(&file.layers, std::path::Path::new("/data")).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["naip-2022", "dem"]);
    }

    #[test]
    fn a_bad_layer_table_is_refused_at_start_naming_the_layer() {
        let path = std::env::temp_dir().join(format!("tessera-layers-{}.toml", std::process::id()));
        std::fs::write(&path, "[[layers]]\nname = \"a b\"\nmosaicjson = \"m.json\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            data_dir: Some(std::env::temp_dir()),
            ..ServeArgs::default()
        };
        let resolved = args.resolve();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            resolved.unwrap_err().to_string(),
            "[[layers]]: layer name 'a b' is not allowed: use 1 to 64 of A-Z a-z 0-9 _ . -"
        );
    }
}
