//! Remote assets: the URL prefixes they may be read under, how S3 is reached, the GDAL
//! options (whose `AWS_*` ones configure the front's S3 client), and the front's cache
//! of their bytes and metadata.

use std::{collections::BTreeMap, time::Duration};

use clap::Args;
use serde::Deserialize;

use super::{ConfigError, parse_bytes};

/// Default of `--remote-read-ahead`: a few blocks of a typical COG, a few milliseconds
/// of transfer beside a round trip of tens.
pub const DEFAULT_REMOTE_READ_AHEAD: u64 = 256 * 1024;

/// Default of `--remote-metadata-ttl`.
pub const DEFAULT_REMOTE_METADATA_TTL: Duration = Duration::from_secs(300);

/// The remote flags, and their keys of the config file.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(default)]
pub struct RemoteArgs {
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
    #[serde(skip)]
    pub gdal_config: Vec<String>,
    /// The file's form of `--gdal-config`: a table `gdal_config = { KEY = "VALUE" }`.
    #[arg(skip)]
    #[serde(rename = "gdal_config")]
    pub gdal_config_table: BTreeMap<String, String>,
    /// How long the front trusts a remote asset's cached bounds and type [default: 5m].
    #[arg(long, env = "TESSERA_REMOTE_METADATA_TTL", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub remote_metadata_ttl: Option<Duration>,
    /// Memory for remote assets' bytes (headers and blocks), one cache shared by every
    /// worker (e.g. 512MiB) [default: 1/8 of the pod's memory, between 64MiB and 1GiB].
    #[arg(long, env = "TESSERA_REMOTE_CACHE_SIZE", value_parser = parse_bytes)]
    #[serde(with = "super::bytes_serde_opt")]
    pub remote_cache_size: Option<u64>,
    /// How much a fetch of a remote asset's block reads around it: the aligned window of
    /// this many bytes that holds the block, in the same request (0: only the block)
    /// [default: 256KiB; at most 8MiB].
    #[arg(long, env = "TESSERA_REMOTE_READ_AHEAD", value_parser = parse_bytes)]
    #[serde(with = "super::bytes_serde_opt")]
    pub remote_read_ahead: Option<u64>,
}

/// Where remote assets may come from, and how the front reads them.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// `--allow-remote` prefixes.
    pub allow_remote: Vec<String>,
    /// The `AWS_*` options (from the S3 flags and `--gdal-config`) for the front's S3
    /// client, on top of the front's own `AWS_*` environment.
    pub s3_env: Vec<(String, String)>,
    /// `--remote-metadata-ttl`.
    pub metadata_ttl: Duration,
    /// `--remote-cache-size`: bytes of remote assets the front keeps (see [`crate::fetch`]).
    pub cache_size: u64,
    /// `--remote-read-ahead`: the window a fetched block brings along, in bytes.
    pub read_ahead: u64,
}

/// Largest `--remote-read-ahead`: the longest run the cache fetches in one request.
pub const MAX_REMOTE_READ_AHEAD: u64 = 8 * 1024 * 1024;

impl RemoteArgs {
    /// These flags over `file` over the defaults, validated; and the GDAL options of
    /// every worker (the `--gdal-config` options that are not `AWS_*`).
    ///
    /// Remote assets are read by the front alone: it holds the S3 settings and
    /// credentials; workers get none of them.
    pub fn resolve(self, file: Self) -> Result<(RemoteConfig, Vec<(String, String)>), ConfigError> {
        let (s3_env, worker_env) =
            gdal_options(&self, &file)?.into_iter().partition(|(k, _)| k.starts_with("AWS_"));
        let config = RemoteConfig {
            allow_remote: if self.allow_remote.is_empty() { file.allow_remote } else { self.allow_remote },
            s3_env,
            metadata_ttl: self
                .remote_metadata_ttl
                .or(file.remote_metadata_ttl)
                .unwrap_or(DEFAULT_REMOTE_METADATA_TTL),
            cache_size: self
                .remote_cache_size
                .or(file.remote_cache_size)
                .unwrap_or_else(default_remote_cache_size),
            read_ahead: self
                .remote_read_ahead
                .or(file.remote_read_ahead)
                .unwrap_or(DEFAULT_REMOTE_READ_AHEAD),
        };
        if config.read_ahead > MAX_REMOTE_READ_AHEAD {
            return Err(ConfigError::Invalid(format!(
                "--remote-read-ahead {} is over the most allowed, 8MiB (8388608 bytes)",
                config.read_ahead
            )));
        }
        for prefix in &config.allow_remote {
            crate::mosaic::RemotePrefix::parse(prefix)
                .map_err(|e| ConfigError::Invalid(format!("--allow-remote {e}")))?;
        }
        Ok((config, worker_env))
    }
}

/// The remote cache's default size: an eighth of the pod's memory (its cgroup limit, or
/// the machine's), at least 64 MiB and at most 1 GiB.
#[must_use]
pub fn default_remote_cache_size() -> u64 {
    const MIB: u64 = 1024 * 1024;
    crate::pool::pod_memory().map_or(256 * MIB, |pod| (pod.bytes / 8).clamp(64 * MIB, 1024 * MIB))
}

/// The GDAL options from the S3 flags and `--gdal-config` (flags over file).
fn gdal_options(args: &RemoteArgs, file: &RemoteArgs) -> Result<Vec<(String, String)>, ConfigError> {
    let yes_no = |b: bool| if b { "YES" } else { "NO" }.to_owned();
    let mut env = BTreeMap::new();
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
    for (k, v) in &file.gdal_config_table {
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
    fn read_ahead_defaults_to_256_kib_and_is_refused_past_8_mib() {
        let (config, _) = RemoteArgs::default().resolve(RemoteArgs::default()).unwrap();
        assert_eq!(config.read_ahead, 256 * 1024);
        let flag = RemoteArgs { remote_read_ahead: Some(0), ..RemoteArgs::default() };
        assert_eq!(flag.resolve(RemoteArgs::default()).unwrap().0.read_ahead, 0);
        let file = RemoteArgs { remote_read_ahead: Some(MAX_REMOTE_READ_AHEAD + 1), ..RemoteArgs::default() };
        let err = RemoteArgs::default().resolve(file).unwrap_err().to_string();
        assert!(err.contains("--remote-read-ahead 8388609 is over the most allowed, 8MiB"), "{err}");
    }
}
