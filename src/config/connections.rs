//! Settings of client connections: HTTP/2 streams per connection, how many connections,
//! and how long one may live, stay silent or stay idle.

use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::{ConfigError, nonzero};

/// Default of `--max-concurrent-streams` (HTTP/2 streams, i.e. calls, per connection).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 128;
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

/// The connection flags, and their keys of the config file.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(default)]
pub struct ConnectionArgs {
    /// Concurrent calls (HTTP/2 streams) on one client connection [default: 128].
    #[arg(long, env = "TESSERA_MAX_CONCURRENT_STREAMS")]
    pub max_concurrent_streams: Option<u32>,
    /// Age (±10%) after which a client connection is sent GOAWAY: calls in flight
    /// finish, new calls go to a new connection. E.g. "5m", so clients balancing over a
    /// headless Service re-resolve and spread over new pods; 0s = off [default: 0s].
    #[arg(long, env = "TESSERA_MAX_CONNECTION_AGE", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub max_connection_age: Option<Duration>,
    /// Client connections open at once; more are closed right after accept [default:
    /// the open-file limit (RLIMIT_NOFILE) minus a reserve for the workers, the admin
    /// endpoint, the OTLP exporter and files; logged at start].
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Time a new connection has to send its HTTP/2 preface (after the TLS handshake,
    /// which has its own 10s); a silent connection is closed after it [default: 5s].
    #[arg(long, env = "TESSERA_CONNECTION_PREFACE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub connection_preface_timeout: Option<Duration>,
    /// Time a connection may stay without any call open before it is sent GOAWAY and
    /// closed; 0s = never [default: 5m].
    #[arg(long, env = "TESSERA_CONNECTION_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub connection_idle_timeout: Option<Duration>,
    /// Time without anything received on a connection after which the server sends an
    /// HTTP/2 ping; 0s = no pings [default: 60s].
    #[arg(long, env = "TESSERA_HTTP2_KEEPALIVE_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub http2_keepalive_interval: Option<Duration>,
    /// Time a keepalive ping's answer may take before the connection is closed [default: 20s].
    #[arg(long, env = "TESSERA_HTTP2_KEEPALIVE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub http2_keepalive_timeout: Option<Duration>,
}

/// What every client connection is served with (besides TLS, see [`super::SecurityConfig`]).
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub max_concurrent_streams: u32,
    /// GOAWAY after this age (jittered): calls in flight finish and the client
    /// reconnects, so clients balancing over a headless Service re-resolve and reach new
    /// pods; `None` = never.
    pub max_age: Option<Duration>,
    /// `--max-connections`; `None`: derived from the open-file limit at start (see
    /// `server::fd_budget`).
    pub max_connections: Option<usize>,
    /// Time to send the HTTP/2 preface, from accept (plaintext) or the end of the TLS
    /// handshake.
    pub preface_timeout: Duration,
    /// Graceful shutdown after this long without a call open; `None` = never.
    pub idle_timeout: Option<Duration>,
    /// HTTP/2 ping after this long without anything received; `None` = no pings.
    pub keepalive_interval: Option<Duration>,
    /// Time a ping's answer may take.
    pub keepalive_timeout: Duration,
}

impl ConnectionArgs {
    /// These flags over `file` over the defaults, validated.
    pub fn resolve(self, file: Self) -> Result<ConnectionConfig, ConfigError> {
        let config = ConnectionConfig {
            max_concurrent_streams: self
                .max_concurrent_streams
                .or(file.max_concurrent_streams)
                .unwrap_or(DEFAULT_MAX_CONCURRENT_STREAMS),
            max_age: nonzero(
                self.max_connection_age.or(file.max_connection_age).unwrap_or(DEFAULT_MAX_CONNECTION_AGE),
            ),
            max_connections: self.max_connections.or(file.max_connections),
            preface_timeout: self
                .connection_preface_timeout
                .or(file.connection_preface_timeout)
                .unwrap_or(DEFAULT_CONNECTION_PREFACE_TIMEOUT),
            idle_timeout: nonzero(
                self.connection_idle_timeout
                    .or(file.connection_idle_timeout)
                    .unwrap_or(DEFAULT_CONNECTION_IDLE_TIMEOUT),
            ),
            keepalive_interval: nonzero(
                self.http2_keepalive_interval
                    .or(file.http2_keepalive_interval)
                    .unwrap_or(DEFAULT_HTTP2_KEEPALIVE_INTERVAL),
            ),
            keepalive_timeout: self
                .http2_keepalive_timeout
                .or(file.http2_keepalive_timeout)
                .unwrap_or(DEFAULT_HTTP2_KEEPALIVE_TIMEOUT),
        };
        if config.max_concurrent_streams == 0 {
            return Err(ConfigError::Invalid("--max-concurrent-streams must be at least 1".into()));
        }
        if let Some(n) = config.max_connections.filter(|n| !(1..=MAX_MAX_CONNECTIONS).contains(n)) {
            return Err(ConfigError::Invalid(format!(
                "--max-connections={n} is outside 1..={MAX_MAX_CONNECTIONS}"
            )));
        }
        // Zero would close every connection at once, or keep silent ones forever.
        for (name, t) in [
            ("--connection-preface-timeout", config.preface_timeout),
            ("--http2-keepalive-timeout", config.keepalive_timeout),
        ] {
            if t.is_zero() {
                return Err(ConfigError::Invalid(format!("{name} must be more than 0s")));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_max_connection_age_turns_it_off() {
        let args = ConnectionArgs { max_connection_age: Some(Duration::ZERO), ..ConnectionArgs::default() };
        assert_eq!(args.resolve(ConnectionArgs::default()).unwrap().max_age, None);
    }
}
