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

/// Threads of the front's async runtime when `--runtime-threads` is not given: a quarter
/// of the cores, at least one. The runtime serves gRPC, talks to the workers and
/// fetches remote bytes; the pixel work is the workers' (and a large tile's the blocking
/// pool's). The front's CPU is about a quarter of a tile's (BENCHMARKS.md (i): 0.7-0.8
/// ms against the worker's 2.3-2.5 ms), so a quarter of the cores keeps pace with the
/// workers. More threads only hand a request's steps from one to another: on 2 cores,
/// one thread served a tile one at a time about 0.1 ms sooner than two (600 paired
/// tiles) and as many tiles a second under 16 callers (884 against 885).
#[must_use]
pub fn default_runtime_threads(cores: usize) -> usize {
    cores.div_ceil(4).max(1)
}

/// The most runtime threads `--runtime-threads` takes.
pub const MAX_RUNTIME_THREADS: usize = 256;

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
    /// Threads of the front's async runtime (gRPC, the workers' channels, remote
    /// fetches), 1-256 [default: a quarter of the cores, at least 1].
    #[arg(long, env = "TESSERA_RUNTIME_THREADS")]
    pub runtime_threads: Option<usize>,
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
    /// `--runtime-threads`.
    pub runtime_threads: usize,
}

impl ServerArgs {
    /// These flags over `file` over the defaults.
    ///
    /// # Errors
    /// A `--runtime-threads` of 0 or over [`MAX_RUNTIME_THREADS`].
    ///
    /// # Panics
    /// Never: the default listen address is a constant that parses.
    pub fn resolve(self, file: Self) -> Result<ServerConfig, super::ConfigError> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let runtime_threads = match self.runtime_threads.or(file.runtime_threads) {
            None => default_runtime_threads(cores),
            Some(n @ 1..=MAX_RUNTIME_THREADS) => n,
            Some(n) => {
                return Err(super::ConfigError::Invalid(format!(
                    "--runtime-threads {n}: must be 1 to {MAX_RUNTIME_THREADS}"
                )));
            }
        };
        Ok(ServerConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses")),
            shutdown_grace: self.shutdown_grace.or(file.shutdown_grace).unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            shutdown_delay: self.shutdown_delay.or(file.shutdown_delay).unwrap_or(DEFAULT_SHUTDOWN_DELAY),
            admin_listen: self.admin_listen.or(file.admin_listen),
            runtime_threads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_gets_a_quarter_of_the_cores_and_at_least_one_thread() {
        let threads: Vec<usize> =
            [1, 2, 3, 4, 5, 8, 16, 64].into_iter().map(default_runtime_threads).collect();
        assert_eq!(threads, [1, 1, 1, 1, 2, 2, 4, 16]);
        assert_eq!(default_runtime_threads(0), 1);
    }

    #[test]
    fn runtime_threads_come_from_the_flag_then_the_file_and_are_bounded() {
        let args = |n: Option<usize>| ServerArgs { runtime_threads: n, ..ServerArgs::default() };
        assert_eq!(args(Some(3)).resolve(args(Some(5))).unwrap().runtime_threads, 3);
        assert_eq!(args(None).resolve(args(Some(5))).unwrap().runtime_threads, 5);
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        assert_eq!(args(None).resolve(args(None)).unwrap().runtime_threads, default_runtime_threads(cores));
        for bad in [0, MAX_RUNTIME_THREADS + 1] {
            let e = args(Some(bad)).resolve(args(None)).unwrap_err().to_string();
            assert_eq!(e, format!("--runtime-threads {bad}: must be 1 to 256"));
        }
    }
}
