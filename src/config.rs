//! `tessera serve` configuration: flags, each with an environment variable, over an
//! optional TOML config file, over the `DEFAULT_*` constants. Validated once, here.
//!
//! The settings are grouped by the subsystem that takes them, one file each:
//!
//! | group | settings | resolves into |
//! | --- | --- | --- |
//! | [`server`] | listen address, shutdown, admin endpoint | [`ServerConfig`] |
//! | [`data`] | data directory, local roots, tile matrix sets, layers | [`DataConfig`] |
//! | [`pool`] | workers, their timeouts, limits and supervision | [`crate::pool::PoolConfig`] |
//! | [`limits`] | what one request, and all of them, may ask | [`crate::api::Limits`] |
//! | [`connections`] | HTTP/2 connections: streams, age, timeouts | [`ConnectionConfig`] |
//! | [`security`] | TLS and bearer tokens | [`SecurityConfig`] |
//! | [`remote`] | remote assets: allowed prefixes, S3, GDAL options, their cache | [`RemoteConfig`] |
//! | [`tile_cache`] | the cache of encoded tiles | [`TileCacheConfig`] |
//!
//! Each group is one struct that is at once the group's flags (flattened into
//! [`ServeArgs`]) and its keys of the config file (flattened into [`FileConfig`]: keys
//! stay flat, named as the flags with `_`), and it resolves itself, flags over file over
//! its `DEFAULT_*` constants, validated, into what its subsystem takes. A new setting is
//! therefore, in its group's file, a field with its flag and key, a `DEFAULT_*`
//! constant, its line of `resolve` (and a check, if it has a range); then the field of
//! the subsystem's config it sets, the code that uses it, and its row in
//! `docs/configuration.md` (a test checks the page against `tessera serve --help`).

pub mod connections;
pub mod data;
mod file;
pub mod limits;
pub mod pool;
pub mod remote;
pub mod security;
pub mod server;
pub mod tile_cache;

use std::{path::PathBuf, time::Duration};

use clap::Args;

pub use connections::{ConnectionArgs, ConnectionConfig};
pub use data::{DataArgs, DataConfig};
pub use file::FileConfig;
pub use limits::LimitsArgs;
pub use pool::PoolArgs;
pub use remote::{RemoteArgs, RemoteConfig};
pub use security::{SecurityArgs, SecurityConfig, TlsConfig};
pub use server::{ServerArgs, ServerConfig};
pub use tile_cache::{TileCacheArgs, TileCacheConfig};

/// Flags of `tessera serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the flag names with `_`);
    /// flags and environment variables override it.
    #[arg(long, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address, shutdown, admin endpoint.
    #[command(flatten)]
    pub server: ServerArgs,
    /// What is served.
    #[command(flatten)]
    pub data: DataArgs,
    /// The worker pool.
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Request limits.
    #[command(flatten)]
    pub limits: LimitsArgs,
    /// Client connections.
    #[command(flatten)]
    pub connections: ConnectionArgs,
    /// TLS and bearer tokens.
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Remote assets.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// The tile cache.
    #[command(flatten)]
    pub tile_cache: TileCacheArgs,
}

/// The validated configuration of a server, by subsystem.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Listen address, shutdown, admin endpoint.
    pub server: ServerConfig,
    /// The data directory, local roots, tile matrix sets and layers.
    pub data: DataConfig,
    /// The worker pool's settings; the server adds what only it knows at start.
    pub pool: crate::pool::PoolConfig,
    /// Request limits.
    pub limits: crate::api::Limits,
    /// What every client connection is served with.
    pub connections: ConnectionConfig,
    /// TLS material and bearer tokens.
    pub security: SecurityConfig,
    /// Remote assets.
    pub remote: RemoteConfig,
    /// The tile cache.
    pub tile_cache: TileCacheConfig,
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
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::File { path: path.clone(), reason: e.to_string() })?;
                FileConfig::parse(path, &text)?
            }
            None => FileConfig::default(),
        };
        let (remote, worker_env) = self.remote.resolve(file.remote)?;
        let limits = self.limits.resolve(file.limits)?;
        let security = self.security.resolve(file.security)?;
        let pool = self.pool.resolve(file.pool, worker_env)?;
        let connections = self.connections.resolve(file.connections)?;
        let server = self.server.resolve(file.server)?;
        let tile_cache = self.tile_cache.resolve(file.tile_cache);
        let data = self.data.resolve(file.data, file.layers)?;
        Ok(ServeConfig { server, data, pool, limits, connections, security, remote, tile_cache })
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

/// `#[serde(with)]` for a byte size of the config file, as [`parse_bytes`] reads it.
mod bytes_serde_opt {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| super::parse_bytes(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// `#[serde(with)]` for a duration of the config file, as humantime reads it ("10s").
mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// A zero duration means "off".
fn nonzero(d: Duration) -> Option<Duration> {
    Some(d).filter(|d| !d.is_zero())
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
        assert_eq!(file.server.listen, Some("0.0.0.0:50051".parse().unwrap()));
        // Clients of the headless Service re-balance every few minutes.
        assert_eq!(file.connections.max_connection_age, Some(Duration::from_secs(300)));
        // The Deployment's terminationGracePeriodSeconds is sized from these two.
        assert!(file.server.shutdown_delay.is_some_and(|d| !d.is_zero()));
        assert!(file.server.shutdown_grace.is_some());
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
        assert_eq!(config.connections.max_age, Some(Duration::from_secs(300)));
        assert_eq!(config.server.listen.port(), 50051);
    }

    #[test]
    fn the_layers_pages_example_parses_and_validates() {
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
            data: DataArgs { data_dir: Some(std::env::temp_dir()), ..DataArgs::default() },
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
