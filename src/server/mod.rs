//! `tessera serve`: binds the listener, starts the worker pool, serves the tile API,
//! health and reflection, and shuts down in order on SIGTERM/SIGINT:
//! health NOT_SERVING → (optional shutdown delay, still serving) → stop accepting and drain in-flight requests (bounded by the
//! grace) → close the pool and wait until no worker process is left.

pub mod allocator;
mod connections;
pub mod documents;
pub mod fd_budget;
mod preface;
mod streams;

use std::{sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;
use tower_layer::Layer;

use connections::{ConnectionSettings, tls_acceptor};
use fd_budget::FdBudget;

use crate::{
    api::{BearerAuth, EdgeStatusLayer, TileApi, TileServiceImpl, TileSharing, WorkerBounds},
    config::ServeConfig,
    engine::TileRenderer,
    fetch::AssetReader,
    layers::{Documents, Layers},
    mosaic::AssetResolver,
    pb::{self, v1::tile_service_server::TileServiceServer},
    pool::WorkerPool,
    telemetry::{grpc::RpcTraceLayer, metrics::Metrics},
};

/// The gRPC service name health reports on (besides the empty "whole server" name).
pub const SERVICE_NAME: &str = "tessera.v1.TileService";

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Binding, the data directory or the transport failed.
    #[error("{0}")]
    Io(String),
}

/// Runs the server until a shutdown signal.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let resolver = AssetResolver::new(&config.data.data_dir)
        .map_err(|e| ServeError::Io(format!("data directory {}: {e}", config.data.data_dir.display())))?
        .with_local_roots(&config.data.allow_local)
        .map_err(|e| ServeError::Io(format!("--allow-local {e}")))?
        .with_remote(&config.remote.allow_remote)
        .map_err(|e| ServeError::Io(format!("--allow-remote {e}")))?;
    let worker_exe =
        std::env::current_exe().map_err(|e| ServeError::Io(format!("cannot find own executable: {e}")))?;
    let reader = asset_reader(&config)?;
    crate::pool::log_budget(config.pool.size, config.pool.worker_limits.memory_limit);
    let mut pool_config = config.pool.clone();
    pool_config.worker_exe = worker_exe;
    // Workers open local files beneath the same canonical roots the resolver checks.
    pool_config.worker_limits.local_roots = resolver.local_roots().to_vec();
    pool_config.ranges = reader.clone().map(|r| r as Arc<dyn crate::ipc::RangeService>);
    let pool = WorkerPool::new(pool_config);
    let metrics = Arc::new(Metrics::new());
    metrics.observe(Arc::clone(&pool) as _);
    if let Some(reader) = &reader {
        metrics.observe(Arc::clone(reader) as _);
    }
    let (api, layers) = tile_api(&config, resolver, Arc::clone(&pool), reader, Arc::clone(&metrics))?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status("", ServingStatus::NotServing).await;
    health_reporter.set_service_status(SERVICE_NAME, ServingStatus::NotServing).await;

    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| ServeError::Io(format!("cannot listen on {}: {e}", config.server.listen)))?;
    let local = listener.local_addr().map_err(|e| ServeError::Io(e.to_string()))?;
    let settings = settings(&config)?;
    // Tests and scripts read the bound address from this line (the port may be 0).
    tracing::info!(
        address = %local,
        workers = config.pool.size,
        runtime_threads = config.server.runtime_threads,
        tls = config.security.tls.is_some(),
        mtls = config.security.tls.as_ref().is_some_and(|t| t.client_ca_pem.is_some()),
        bearer_tokens = config.security.auth_tokens.len(),
        "listening on {local}"
    );

    // Workers start and layers load in the background; health turns SERVING once all
    // workers have shaken hands and every layer is built. A layer that cannot be built
    // stops the server.
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (layers_ready, mut layers_failed) = spawn_layer_load(Arc::clone(&layers));
    spawn_warm_up(Arc::clone(&pool), health_reporter.clone(), layers_ready, shutdown_rx.clone());
    layers.watch(config.data.layer_reload_interval, shutdown_rx.clone());
    if let Some(addr) = config.server.admin_listen {
        crate::admin::spawn(addr, Arc::clone(&metrics))
            .await
            .map_err(|e| ServeError::Io(format!("admin endpoint {addr}: {e}")))?;
    }

    let reporter = health_reporter.clone();
    let mut drain_rx = shutdown_rx.clone();
    let delay = config.server.shutdown_delay;
    let shutdown_signal = async move {
        crate::shutdown::signalled().await;
        reporter.set_service_status("", ServingStatus::NotServing).await;
        reporter.set_service_status(SERVICE_NAME, ServingStatus::NotServing).await;
        if !delay.is_zero() {
            tracing::info!(?delay, "health NOT_SERVING; still accepting requests for the shutdown delay");
            tokio::time::sleep(delay).await;
        }
        let _ = shutdown_tx.send(true);
    };
    let grace = config.server.shutdown_grace;
    let service = RpcTraceLayer.layer(
        EdgeStatusLayer { max_request_size: config.limits.max_request_size }
            .layer(routes(TileServiceImpl(api), health_service, &config)?.prepare()),
    );
    let server = connections::serve(listener, service, settings, metrics, shutdown_signal);
    tokio::pin!(server);
    // Drain in-flight requests, bounded by the grace once the signal has come.
    let mut outcome = Ok(());
    tokio::select! {
        () = &mut server => {}
        () = async {
            let _ = drain_rx.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "in-flight requests did not finish within the grace; stopping anyway");
        }
        Ok(error) = &mut layers_failed => {
            outcome = Err(ServeError::Io(format!("[[layers]]: {error}")));
        }
    }
    if pool.shutdown(Duration::from_secs(2)).await {
        tracing::info!("all workers stopped; bye");
    } else {
        tracing::error!(left = ?pool.worker_pids(), "some workers did not exit");
    }
    outcome
}

/// Builds the configured layers in the background: the returned watch turns true once
/// they are served; the oneshot carries the error that stops the server when one
/// cannot be built.
fn spawn_layer_load(
    layers: Arc<Layers>,
) -> (tokio::sync::watch::Receiver<bool>, tokio::sync::oneshot::Receiver<crate::layers::LayerError>) {
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match layers.load_configured().await {
            Ok(()) => {
                if !layers.is_empty() {
                    tracing::info!(
                        layers = layers.configured(),
                        load_ms = started.elapsed().as_secs_f64() * 1e3,
                        "layers loaded"
                    );
                }
                let _ = ready_tx.send(true);
            }
            Err(error) => {
                tracing::error!(%error, "a layer cannot be built; stopping");
                let _ = failed_tx.send(error);
            }
        }
    });
    (ready_rx, failed_rx)
}

/// The front's reader of remote assets, when `--allow-remote` names any prefix.
fn asset_reader(config: &ServeConfig) -> Result<Option<Arc<AssetReader>>, ServeError> {
    // Remote assets are read by the front alone: it holds the S3 settings and
    // credentials (the S3 flags and the AWS_* variables); workers get none of them.
    let remote = &config.remote;
    Ok(if remote.allow_remote.is_empty() {
        None
    } else {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .chain(remote.s3_env.iter().cloned())
            .collect();
        let origin = crate::fetch::build_origin(&remote.allow_remote, &env)
            .map_err(|e| ServeError::Io(format!("remote assets: {e}")))?;
        tracing::info!(
            cache_bytes = remote.cache_size,
            "remote assets are read by the front through a cache of {} MiB (--remote-cache-size)",
            remote.cache_size / (1024 * 1024)
        );
        Some(Arc::new(
            AssetReader::new(Arc::new(origin), remote.cache_size, remote.metadata_ttl)
                .with_read_ahead(remote.read_ahead),
        ))
    })
}

/// The tile API over `pool`, with its layers validated (they are built once the server
/// listens).
fn tile_api(
    config: &ServeConfig,
    resolver: AssetResolver,
    pool: Arc<WorkerPool>,
    reader: Option<Arc<AssetReader>>,
    metrics: Arc<Metrics>,
) -> Result<(Arc<TileApi>, Arc<Layers>), ServeError> {
    let origin = reader.as_ref().map(|r| crate::fetch::Origin::clone(r.origin()));
    let renderer =
        Arc::new(TileRenderer::new(pool, reader, Arc::clone(&metrics), config.remote.metadata_ttl));
    let sharing = TileSharing::new(config.tile_cache.max_bytes, config.tile_cache.ttl);
    // Footprint layers read their assets' bounds through the workers (a job waits for
    // its worker to start); documents at URLs come through the origin client. The
    // layers are built once the server listens (`spawn_layer_load`).
    let bounds = Arc::new(WorkerBounds::new(Arc::clone(&renderer), resolver.clone()));
    let documents = match &origin {
        Some(origin) => Documents::with_remote(Arc::new(documents::RemoteDocuments::new(
            resolver.clone(),
            origin.clone(),
        ))),
        None => Documents::local(),
    };
    let layers = Arc::new(
        Layers::pending(&config.data.layers, &config.data.data_dir, bounds, documents)
            .map_err(|e| ServeError::Io(format!("[[layers]]: {e}")))?,
    );
    let api = TileApi::new(
        renderer,
        resolver,
        config.limits.clone(),
        metrics,
        sharing,
        config.data.tile_matrix_sets.clone(),
        Arc::clone(&layers),
    );
    Ok((api, layers))
}

/// The transport settings: TLS, HTTP/2 streams per connection, connection limit,
/// timeouts and age.
fn settings(config: &ServeConfig) -> Result<ConnectionSettings, ServeError> {
    let tls = config
        .security
        .tls
        .as_ref()
        .map(tls_acceptor)
        .transpose()
        .map_err(|e| ServeError::Io(format!("TLS: {e}")))?;
    Ok(ConnectionSettings {
        config: config.connections.clone(),
        tls,
        max_connections: max_connections(config)?,
    })
}

/// `--max-connections`, or what the open-file limit leaves for client connections;
/// logged, with a warning when a configured value leaves the workers too few descriptors.
fn max_connections(config: &ServeConfig) -> Result<usize, ServeError> {
    let workers = config.pool.size;
    let configured = config.connections.max_connections;
    let budget = FdBudget::of_process(workers).map_err(ServeError::Io)?;
    let limit = fd_budget::max_connections(configured, &budget, workers).map_err(ServeError::Io)?;
    let available = budget.for_connections();
    tracing::info!(
        max_connections = limit,
        open_file_limit = budget.open_files,
        reserved = budget.reserved,
        configured = configured.is_some(),
        "client connections limited to {limit}"
    );
    if limit > available {
        tracing::warn!(
            max_connections = limit,
            open_file_limit = budget.open_files,
            reserved = budget.reserved,
            "--max-connections={limit} is more than the {available} descriptors the open-file limit \
             leaves after the reserve for {} workers, the admin endpoint and files: a connection \
             flood can stop worker replacements and the admin endpoint",
            workers
        );
    }
    Ok(limit)
}

/// The tile API (behind the bearer-token check when tokens are configured, with the
/// message-size limits), health, and reflection over both and over the `google.rpc`
/// error details their statuses carry (in protocol versions v1 and v1alpha: grpcurl 1.8
/// speaks only v1alpha, newer tools v1). Health and reflection need no token: probes
/// and tooling must work without one, and neither reads data.
fn routes(
    api: TileServiceImpl,
    health: tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    config: &ServeConfig,
) -> Result<tonic::service::Routes, ServeError> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let err = |e: tonic_reflection::server::Error| ServeError::Io(format!("reflection: {e}"));
    let tiles = TileServiceServer::new(api)
        .max_decoding_message_size(config.limits.max_request_size)
        .max_encoding_message_size(config.limits.max_response_size);
    let routes = tonic::service::Routes::new(health)
        .add_service(reflection().build_v1().map_err(err)?)
        .add_service(reflection().build_v1alpha().map_err(err)?);
    let tokens = &config.security.auth_tokens;
    Ok(if tokens.is_empty() {
        routes.add_service(tiles)
    } else {
        routes.add_service(InterceptedService::new(tiles, BearerAuth::new(tokens.clone())))
    })
}

/// Starts every worker in the background, retrying with exponential backoff, and turns
/// health SERVING once all have shaken hands and the layers are loaded (unless shutdown
/// has begun).
fn spawn_warm_up(
    pool: Arc<WorkerPool>,
    reporter: tonic_health::server::HealthReporter,
    mut layers_ready: tokio::sync::watch::Receiver<bool>,
    mut shutdown_rx: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut delays = crate::backoff::delays(Duration::from_millis(100), Duration::from_secs(10));
        loop {
            match pool.warm_up().await {
                Ok(()) => {
                    tokio::select! {
                        ready = layers_ready.wait_for(|r| *r) => {
                            if ready.is_err() {
                                return;
                            }
                        }
                        _ = shutdown_rx.wait_for(|s| *s) => return,
                    }
                    if *shutdown_rx.borrow() {
                        return;
                    }
                    set_health(&reporter, ServingStatus::Serving).await;
                    tracing::info!(workers = pool.worker_pids().len(), "worker pool ready; serving");
                    pool.spawn_liveness();
                    follow_pool_health(&pool, &reporter, shutdown_rx).await;
                    return;
                }
                Err(e) => {
                    let backoff = delays.next().unwrap_or(Duration::from_secs(10));
                    tracing::error!(error = %e, retry_in = ?backoff, "cannot start the worker pool");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = shutdown_rx.changed() => return,
                    }
                }
            }
        }
    });
}

async fn set_health(reporter: &tonic_health::server::HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

/// Mirrors the pool's crash-loop state into health until shutdown starts.
async fn follow_pool_health(
    pool: &WorkerPool,
    reporter: &tonic_health::server::HealthReporter,
    mut shutdown_rx: tokio::sync::watch::Receiver<bool>,
) {
    let mut healthy = pool.health();
    loop {
        tokio::select! {
            changed = healthy.changed() => {
                if changed.is_err() || *shutdown_rx.borrow() {
                    return;
                }
                let ok = *healthy.borrow_and_update();
                set_health(reporter, if ok { ServingStatus::Serving } else { ServingStatus::NotServing }).await;
            }
            _ = shutdown_rx.changed() => return,
        }
    }
}
