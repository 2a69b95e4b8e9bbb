//! Request limits: what one request may ask for (tile size, assets, batch size, memory,
//! message sizes) and what all requests in flight may hold together.

use clap::Args;
use serde::Deserialize;

use super::{ConfigError, parse_bytes};
use crate::api::Limits;

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

/// The limits' flags, and their keys of the config file.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(default)]
pub struct LimitsArgs {
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
    #[serde(with = "super::bytes_serde_opt")]
    pub max_request_memory: Option<u64>,
    /// Memory all tiles and previews in flight may hold in the front together (e.g.
    /// 1GiB); a request that does not fit in what is left gets RESOURCE_EXHAUSTED
    /// [default: 1GiB].
    #[arg(long, env = "TESSERA_MAX_IN_FLIGHT_MEMORY", value_parser = parse_bytes)]
    #[serde(with = "super::bytes_serde_opt")]
    pub max_in_flight_memory: Option<u64>,
    /// Largest request message (e.g. 4MiB); larger ones get RESOURCE_EXHAUSTED [default: 4MiB].
    #[arg(long, env = "TESSERA_MAX_REQUEST_SIZE", value_parser = parse_bytes)]
    #[serde(with = "super::bytes_serde_opt")]
    pub max_request_size: Option<u64>,
    /// Largest response message, i.e. one encoded tile (e.g. 64MiB); larger tiles get RESOURCE_EXHAUSTED [default: 64MiB].
    #[arg(long, env = "TESSERA_MAX_RESPONSE_SIZE", value_parser = parse_bytes)]
    #[serde(with = "super::bytes_serde_opt")]
    pub max_response_size: Option<u64>,
}

impl LimitsArgs {
    /// These flags over `file` over the defaults, validated.
    pub fn resolve(self, file: Self) -> Result<Limits, ConfigError> {
        let limits = Limits {
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
            max_request_size: size_limit(
                "--max-request-size",
                self.max_request_size.or(file.max_request_size).unwrap_or(DEFAULT_MAX_REQUEST_SIZE),
            )?,
            max_response_size: size_limit(
                "--max-response-size",
                self.max_response_size.or(file.max_response_size).unwrap_or(DEFAULT_MAX_RESPONSE_SIZE),
            )?,
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
        };
        validate(&limits)?;
        Ok(limits)
    }
}

/// Checks every value is in range.
fn validate(limits: &Limits) -> Result<(), ConfigError> {
    if !(1..=4096).contains(&limits.max_tile_size) {
        return Err(ConfigError::Invalid(format!(
            "--max-tile-size={} is outside 1..=4096",
            limits.max_tile_size
        )));
    }
    for (name, v) in [
        ("--max-assets-per-tile", limits.max_assets_per_tile),
        ("--max-batch-size", limits.max_batch_size),
        ("--stream-concurrency", limits.stream_concurrency),
        ("--max-in-flight-tiles", limits.max_in_flight_tiles),
        ("--max-in-flight-per-caller", limits.max_in_flight_per_caller),
    ] {
        if v == 0 {
            return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
        }
    }
    if limits.max_request_memory > limits.max_in_flight_memory {
        return Err(ConfigError::Invalid(format!(
            "--max-request-memory={} exceeds --max-in-flight-memory={}: one request cannot hold more than all of them",
            limits.max_request_memory, limits.max_in_flight_memory
        )));
    }
    Ok(())
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
