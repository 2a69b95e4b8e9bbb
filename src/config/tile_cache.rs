//! The front's cache of encoded tiles (see [`crate::api::TileSharing`]).

use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::parse_bytes;

/// Default of `--tile-cache-ttl`.
pub const DEFAULT_TILE_CACHE_TTL: Duration = Duration::from_secs(60);

/// The tile cache's flags, and its keys of the config file.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(default)]
pub struct TileCacheArgs {
    /// Memory for encoded tiles kept in the front (e.g. 256MiB); 0 = no tile cache [default: 0].
    #[arg(long, env = "TESSERA_TILE_CACHE_SIZE", value_parser = parse_bytes)]
    #[serde(with = "super::bytes_serde_opt")]
    pub tile_cache_size: Option<u64>,
    /// How long a cached tile is served [default: 60s].
    #[arg(long, env = "TESSERA_TILE_CACHE_TTL", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub tile_cache_ttl: Option<Duration>,
}

/// The tile cache's size and lifetime.
#[derive(Debug, Clone)]
pub struct TileCacheConfig {
    /// `--tile-cache-size` in bytes (0 = off).
    pub max_bytes: u64,
    /// `--tile-cache-ttl`.
    pub ttl: Duration,
}

impl TileCacheArgs {
    /// These flags over `file` over the defaults.
    #[must_use]
    pub fn resolve(self, file: Self) -> TileCacheConfig {
        TileCacheConfig {
            max_bytes: self.tile_cache_size.or(file.tile_cache_size).unwrap_or(0),
            ttl: self.tile_cache_ttl.or(file.tile_cache_ttl).unwrap_or(DEFAULT_TILE_CACHE_TTL),
        }
    }
}
