//! Settings of the server process itself: where it listens, how it stops, and the admin
//! endpoint.

use std::{net::SocketAddr, time::Duration};

use clap::Args;
use serde::Deserialize;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50051";
/// Default grace for in-flight requests at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default time between a shutdown signal (health turns NOT_SERVING) and closing the
/// listener, so load balancers can move away first.
pub const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::ZERO;

/// The server's flags, and its keys of the config file.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(default)]
pub struct ServerArgs {
    /// Address to listen on [default: 0.0.0.0:50051].
    #[arg(long, env = "TESSERA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Time in-flight requests get to finish at shutdown [default: 10s].
    #[arg(long, env = "TESSERA_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub shutdown_grace: Option<Duration>,
    /// After SIGTERM, keep serving this long with health NOT_SERVING before the listener
    /// closes, e.g. "5s" for Kubernetes endpoints to catch up [default: 0s].
    #[arg(long, env = "TESSERA_SHUTDOWN_DELAY", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub shutdown_delay: Option<Duration>,
    /// Address of the admin HTTP endpoint (GET /metrics, Prometheus text); off when unset [default: off].
    #[arg(long, env = "TESSERA_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
}

/// Where the server listens and how it stops.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `--listen`.
    pub listen: SocketAddr,
    /// `--shutdown-grace`.
    pub shutdown_grace: Duration,
    /// `--shutdown-delay`: NOT_SERVING period before the listener closes.
    pub shutdown_delay: Duration,
    /// `--admin-listen`.
    pub admin_listen: Option<SocketAddr>,
}

impl ServerArgs {
    /// These flags over `file` over the defaults.
    ///
    /// # Panics
    /// Never: the default listen address is a constant that parses.
    #[must_use]
    pub fn resolve(self, file: Self) -> ServerConfig {
        ServerConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses")),
            shutdown_grace: self.shutdown_grace.or(file.shutdown_grace).unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            shutdown_delay: self.shutdown_delay.or(file.shutdown_delay).unwrap_or(DEFAULT_SHUTDOWN_DELAY),
            admin_listen: self.admin_listen.or(file.admin_listen),
        }
    }
}
