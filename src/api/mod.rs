//! The gRPC API: `tessera.v1.TileService`. Handlers turn protobuf into domain types
//! (`validate`), hand them to the tile engine ([`crate::engine`]), and map errors to statuses in one
//! place ([`crate::error`]).

mod callers;
mod deadline;
mod edge;
mod layers;
mod reads;
mod tile_cache;
mod validate;

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

pub use callers::Caller;
pub use edge::{BearerAuth, EdgeStatusLayer};
pub use layers::WorkerBounds;
pub use tile_cache::{Source, TileSharing};
pub use validate::{DEFAULT_QUALITY, DEFAULT_TILE_SIZE, Limits};

use crate::{
    engine::{MemoryBudget, TileRenderer, TileRequest},
    error::{ServiceError, status_message},
    mosaic::AssetResolver,
    pb::v1::{
        self, Bounds, GetAssetInfoRequest, GetAssetInfoResponse, GetTileRequest, GetTileResponse,
        GetTilesRequest, GetTilesResponse, OverviewSize, StreamTilesRequest, StreamTilesResponse,
        tile_service_server::TileService,
    },
    render::DataType,
    telemetry::metrics::{Metrics, SharedTile},
    tms::TileMatrixSets,
};

/// The request deadline when the client sends none.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Time reserved at the end of a client deadline for the answer to travel back: 5% of
/// the timeout, between 20 and 200 ms. Without it a loaded server's DEADLINE_EXCEEDED
/// arrives after the client's own timer has already cancelled the call.
#[must_use]
pub fn deadline_margin(timeout: Duration) -> Duration {
    (timeout / 20).clamp(Duration::from_millis(20), Duration::from_millis(200))
}

/// The service state shared by all handlers.
#[derive(Debug)]
pub struct TileApi {
    renderer: Arc<TileRenderer>,
    resolver: AssetResolver,
    limits: Limits,
    /// One permit per tile being rendered: admission control.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// The bytes tiles and previews in flight may hold: admission control by memory.
    budget: Arc<MemoryBudget>,
    metrics: Arc<Metrics>,
    /// Coalescing of identical requests and the tile cache.
    sharing: TileSharing,
    /// Tiles in flight per identified caller.
    callers: callers::CallerLimits,
    /// The tile matrix sets served.
    tile_matrix_sets: TileMatrixSets,
    /// The server-side layers.
    layers: Arc<crate::layers::Layers>,
}

type ResultStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl TileApi {
    /// The API over a renderer.
    // One argument per part of the service; a builder would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        renderer: Arc<TileRenderer>,
        resolver: AssetResolver,
        limits: Limits,
        metrics: Arc<Metrics>,
        sharing: TileSharing,
        tile_matrix_sets: TileMatrixSets,
        layers: Arc<crate::layers::Layers>,
    ) -> Arc<Self> {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight_tiles));
        let callers = callers::CallerLimits::new(limits.max_in_flight_per_caller);
        let budget = Arc::new(MemoryBudget::new(limits.max_in_flight_memory, limits.max_request_memory));
        metrics.observe(Arc::clone(&budget) as _);
        Arc::new(Self {
            renderer,
            resolver,
            limits,
            in_flight,
            budget,
            metrics,
            sharing,
            callers,
            tile_matrix_sets,
            layers,
        })
    }

    /// The request's deadline: the client's grpc-timeout (less a small margin, so our
    /// DEADLINE_EXCEEDED reaches the client before its own timer fires), or the default.
    fn deadline<T>(request: &Request<T>) -> Instant {
        Self::client_deadline(request).unwrap_or_else(|| Instant::now() + DEFAULT_REQUEST_TIMEOUT)
    }

    /// The client's own deadline, if it sent one (less the margin).
    fn client_deadline<T>(request: &Request<T>) -> Option<Instant> {
        deadline::client_timeout(request.metadata())
            .map(|t| Instant::now() + t.saturating_sub(deadline_margin(t)))
    }

    /// The deadline of one tile of a batch or stream: the call's deadline if the client
    /// set one, else the default timeout counted from when the tile starts (a long-lived
    /// stream must not age its later tiles out).
    fn tile_deadline(call_deadline: Option<Instant>) -> Instant {
        call_deadline.unwrap_or_else(|| Instant::now() + DEFAULT_REQUEST_TIMEOUT)
    }

    /// Renders one tile for `caller` and counts it in the metrics, whatever its outcome.
    async fn tile(
        &self,
        req: &GetTileRequest,
        deadline: Instant,
        caller: Option<Caller>,
    ) -> Result<GetTileResponse, ServiceError> {
        let started = Instant::now();
        let checked = validate::tile_strings(req).and_then(|()| {
            layers::with_layer_assets(req, &self.layers, &self.tile_matrix_sets, &self.limits)
        });
        let (result, source) = match checked {
            Err(e) => (Err(e), Source::Rendered),
            Ok((explicit, None)) => self.tile_shared(&explicit, deadline, caller).await,
            Ok((explicit, Some(pick))) => {
                // The layer's choice, on its own span: how many assets cover the tile,
                // how many were skipped as covered, how many are read, and whether the
                // asset budget cut them.
                let span = tracing::info_span!(
                    "layer",
                    layer.name = req.layer.as_str(),
                    layer.covering_assets = pick.covering as i64,
                    layer.skipped_assets = pick.skipped as i64,
                    layer.read_assets = pick.read as i64,
                    layer.truncated = pick.truncated(),
                );
                let (result, source) = self.tile_shared(&explicit, deadline, caller).instrument(span).await;
                let result = result.map(|tile| GetTileResponse { truncated: pick.truncated(), ..tile });
                (result, source)
            }
        };
        match source {
            Source::Rendered => {}
            Source::Cached => self.metrics.shared_tile(SharedTile::Cached),
            Source::Coalesced => self.metrics.shared_tile(SharedTile::Coalesced),
        }
        let (code, bytes) = match &result {
            Ok(t) => (tonic::Code::Ok, (t.data.len() + t.mask.len()) as u64),
            Err(e) => (e.code(), 0),
        };
        self.metrics.tile(format_label(req.format), code, started.elapsed(), bytes);
        result
    }

    /// Renders one explicit tile request within the caller's limit, shared with
    /// identical requests in flight and through the tile cache.
    async fn tile_shared(
        &self,
        req: &GetTileRequest,
        deadline: Instant,
        caller: Option<Caller>,
    ) -> (Result<GetTileResponse, ServiceError>, Source) {
        match caller.map(|c| (c, self.callers.try_acquire(c))) {
            Some((caller, None)) => (
                Err(ServiceError::ResourceExhausted {
                    message: format!(
                        "{caller} already has {} tiles being rendered (--max-in-flight-per-caller); retry later",
                        self.callers.max()
                    ),
                    retry_after: Duration::from_millis(200),
                }),
                Source::Rendered,
            ),
            // The permit (if any) lives in `_permit` until the tile is done.
            _permit => {
                let key = prost::Message::encode_to_vec(req);
                self.sharing.get_or_render(key, deadline, || self.tile_uncounted(req, deadline)).await
            }
        }
    }

    /// Admission control: one of the `--max-in-flight-tiles` permits (tiles, and the
    /// reads of GetPoint/GetStatistics/GetPreview), or RESOURCE_EXHAUSTED now rather
    /// than a queue. `busy` says what holds them all.
    fn admit(&self, busy: &str) -> Result<tokio::sync::SemaphorePermit<'_>, ServiceError> {
        self.in_flight.try_acquire().map_err(|_| ServiceError::ResourceExhausted {
            message: format!(
                "server overloaded: {} {busy} (--max-in-flight-tiles); retry later",
                self.limits.max_in_flight_tiles
            ),
            retry_after: Duration::from_millis(200),
        })
    }

    /// Runs one GetPoint/GetStatistics/GetPreview call under admission control, and
    /// counts it by RPC and status.
    async fn read<T>(
        &self,
        rpc: &'static str,
        read: impl std::future::Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let result = match self.admit("tiles and reads are already in flight") {
            Ok(_permit) => read.await,
            Err(e) => Err(e),
        };
        self.metrics.read(rpc, result.as_ref().map_or_else(ServiceError::code, |_| tonic::Code::Ok));
        result
    }

    async fn tile_uncounted(
        &self,
        req: &GetTileRequest,
        deadline: Instant,
    ) -> Result<GetTileResponse, ServiceError> {
        let parsed = TileRequest::parse(req, &self.limits, &self.resolver, &self.tile_matrix_sets)?;
        let _permit = self.admit("tiles are already being rendered")?;
        let tile =
            self.renderer.render(&parsed, deadline, &self.budget, self.limits.max_response_size).await?;
        self.limits.check_response_size("the tile", &tile, "a smaller tile_size")?;
        Ok(tile)
    }
}

/// The metrics label of a request's format, valid or not.
fn format_label(format: i32) -> &'static str {
    match v1::ImageFormat::try_from(format) {
        Ok(v1::ImageFormat::Unspecified | v1::ImageFormat::Png) => "png",
        Ok(v1::ImageFormat::Jpeg) => "jpeg",
        Ok(v1::ImageFormat::Webp) => "webp",
        Ok(v1::ImageFormat::Npy) => "npy",
        Err(_) => "invalid",
    }
}

/// Every band of an asset, as the API describes them.
fn band_infos(info: &crate::pb::worker::InfoResult) -> Vec<v1::BandInfo> {
    info.bands
        .iter()
        .enumerate()
        .map(|(n, b)| v1::BandInfo {
            index: n as u32 + 1,
            description: b.description.clone(),
            color_interpretation: b.color_interpretation.clone(),
            has_nodata: b.nodata.is_some(),
            nodata: b.nodata.unwrap_or_default(),
        })
        .collect()
}

/// The tonic service: a cheap handle on [`TileApi`].
#[derive(Debug, Clone)]
pub struct TileServiceImpl(pub Arc<TileApi>);

fn tile_result(result: Result<GetTileResponse, ServiceError>) -> v1::get_tiles_response::Result {
    match result {
        Ok(t) => v1::get_tiles_response::Result::Tile(t),
        Err(e) => v1::get_tiles_response::Result::Error(status_message(&Status::from(e))),
    }
}

#[tonic::async_trait]
impl TileService for TileServiceImpl {
    async fn get_tile(&self, request: Request<GetTileRequest>) -> Result<Response<GetTileResponse>, Status> {
        let deadline = TileApi::deadline(&request);
        let tile = self.0.tile(request.get_ref(), deadline, Caller::of(&request)).await?;
        Ok(Response::new(tile))
    }

    type GetTilesStream = ResultStream<GetTilesResponse>;

    async fn get_tiles(
        &self,
        request: Request<GetTilesRequest>,
    ) -> Result<Response<Self::GetTilesStream>, Status> {
        let call_deadline = TileApi::client_deadline(&request);
        let caller = Caller::of(&request);
        let tiles = request.into_inner().tiles;
        let limits = &self.0.limits;
        if tiles.is_empty() {
            return Err(ServiceError::invalid("tiles", "no tiles: give at least one tile").into());
        }
        if tiles.len() > limits.max_batch_size {
            return Err(ServiceError::invalid(
                "tiles",
                format!(
                    "{} tiles in one batch exceed the limit of {}; split the batch",
                    tiles.len(),
                    limits.max_batch_size
                ),
            )
            .into());
        }
        let api = Arc::clone(&self.0);
        let concurrency = limits.stream_concurrency.max(1);
        // Lazy: tiles are rendered as the client reads results, at most `concurrency` at
        // once; a client that goes away drops the stream and stops the rest.
        let stream = futures::stream::iter(tiles.into_iter().enumerate())
            .map(move |(index, tile)| {
                let api = Arc::clone(&api);
                async move {
                    let result = api.tile(&tile, TileApi::tile_deadline(call_deadline), caller).await;
                    Ok(GetTilesResponse {
                        index: index as u32,
                        z: tile.z,
                        x: tile.x,
                        y: tile.y,
                        result: Some(tile_result(result)),
                    })
                }
            })
            .buffer_unordered(concurrency);
        Ok(Response::new(Box::pin(stream)))
    }

    type StreamTilesStream = ResultStream<StreamTilesResponse>;

    async fn stream_tiles(
        &self,
        request: Request<Streaming<StreamTilesRequest>>,
    ) -> Result<Response<Self::StreamTilesStream>, Status> {
        let call_deadline = TileApi::client_deadline(&request);
        let caller = Caller::of(&request);
        let mut incoming = request.into_inner();
        let api = Arc::clone(&self.0);
        let concurrency = api.limits.stream_concurrency.max(1);
        let (tx, rx) = mpsc::channel(concurrency * 2);
        tokio::spawn(
            async move {
                let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
                loop {
                    let message = tokio::select! {
                        m = incoming.next() => m,
                        () = tx.closed() => break,
                    };
                    let request = match message {
                        Some(Ok(r)) => r,
                        Some(Err(status)) => {
                            let _ = tx.send(Err(status)).await;
                            break;
                        }
                        None => break,
                    };
                    let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                        break;
                    };
                    let api = Arc::clone(&api);
                    let tx = tx.clone();
                    tokio::spawn(
                        async move {
                            let _permit = permit;
                            let tile = request.tile.unwrap_or_default();
                            let result = tokio::select! {
                                r = api.tile(&tile, TileApi::tile_deadline(call_deadline), caller) => r,
                                // The caller went away: stop waiting for this tile.
                                () = tx.closed() => return,
                            };
                            let response = StreamTilesResponse {
                                id: request.id,
                                z: tile.z,
                                x: tile.x,
                                y: tile.y,
                                result: Some(match tile_result(result) {
                                    v1::get_tiles_response::Result::Tile(t) => {
                                        v1::stream_tiles_response::Result::Tile(t)
                                    }
                                    v1::get_tiles_response::Result::Error(e) => {
                                        v1::stream_tiles_response::Result::Error(e)
                                    }
                                }),
                            };
                            let _ = tx.send(Ok(response)).await;
                        }
                        .in_current_span(),
                    );
                }
            }
            .in_current_span(),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_tile_matrix_sets(
        &self,
        _request: Request<v1::ListTileMatrixSetsRequest>,
    ) -> Result<Response<v1::ListTileMatrixSetsResponse>, Status> {
        let bounds =
            |b: crate::tms::BBox| Bounds { min_x: b.min_x, min_y: b.min_y, max_x: b.max_x, max_y: b.max_y };
        let tile_matrix_sets = self
            .0
            .tile_matrix_sets
            .all()
            .iter()
            .map(|tms| {
                let d = tms.definition();
                v1::TileMatrixSetInfo {
                    id: d.id.to_owned(),
                    title: d.title.to_owned(),
                    crs: d.crs.to_owned(),
                    uri: d.uri.to_owned(),
                    min_zoom: 0,
                    max_zoom: u32::from(tms.max_zoom()),
                    tile_size: tms.tile_size(0).0,
                    bounds: Some(bounds(tms.bounds(0))),
                    geographic_bounds: tms.geographic_bounds().map(bounds),
                    custom: tms.is_custom(),
                }
            })
            .collect();
        Ok(Response::new(v1::ListTileMatrixSetsResponse { tile_matrix_sets }))
    }

    async fn list_layers(
        &self,
        _request: Request<v1::ListLayersRequest>,
    ) -> Result<Response<v1::ListLayersResponse>, Status> {
        let registry = &self.0.layers;
        if !registry.loaded() {
            return Err(layers::still_loading(registry).into());
        }
        let layers = registry.list().into_iter().map(layers::layer_info).collect();
        Ok(Response::new(v1::ListLayersResponse { layers }))
    }

    async fn get_layer(
        &self,
        request: Request<v1::GetLayerRequest>,
    ) -> Result<Response<v1::GetLayerResponse>, Status> {
        let deadline = TileApi::deadline(&request);
        let name = &request.get_ref().layer;
        validate::bounded("layer", name, validate::MAX_NAME_LEN)?;
        let api = &self.0;
        let layer = api.layers.get(name).ok_or_else(|| layers::unknown_layer(name, &api.layers))?;
        let mut response = v1::GetLayerResponse {
            layer: Some(layers::layer_info(layer.info().clone())),
            ..Default::default()
        };
        // The bands come from the first asset: tiles of a layer take its bands.
        if let Some(sample) = layer.first_asset() {
            let asset = api.resolver.resolve(&sample)?;
            let info = api.renderer.info(&asset, deadline).await?;
            response.dtype = info.dtype.to_api() as i32;
            response.data_band_count = info.data_bands as u32;
            response.bands = band_infos(&info.info);
            response.sample_asset = sample;
        }
        Ok(Response::new(response))
    }

    async fn get_asset_info(
        &self,
        request: Request<GetAssetInfoRequest>,
    ) -> Result<Response<GetAssetInfoResponse>, Status> {
        let deadline = TileApi::deadline(&request);
        let name = &request.get_ref().asset;
        validate::bounded_asset("asset", name)?;
        let asset = self.0.resolver.resolve(name)?;
        let info = self.0.renderer.info(&asset, deadline).await?;
        let i = &info.info;
        let bbox = |b: &[f64]| match b {
            [min_x, min_y, max_x, max_y] => {
                Some(Bounds { min_x: *min_x, min_y: *min_y, max_x: *max_x, max_y: *max_y })
            }
            _ => None,
        };
        Ok(Response::new(GetAssetInfoResponse {
            asset: name.clone(),
            driver: i.driver.clone(),
            crs: i.crs.clone(),
            crs_wkt: i.crs_wkt.clone(),
            bounds: bbox(&i.bounds),
            geographic_bounds: bbox(&i.geographic_bounds),
            width: i.width,
            height: i.height,
            dtype: DataType::from_worker(i.dtype).map_or(0, |d| d.to_api() as i32),
            band_count: i.bands.len() as u32,
            data_band_count: info.data_bands as u32,
            bands: band_infos(i),
            overviews: i
                .overview_widths
                .iter()
                .zip(&i.overview_heights)
                .map(|(w, h)| OverviewSize { width: *w, height: *h })
                .collect(),
            block_width: i.block_width,
            block_height: i.block_height,
            has_mask: i.has_mask,
        }))
    }

    async fn get_point(
        &self,
        request: Request<v1::GetPointRequest>,
    ) -> Result<Response<v1::GetPointResponse>, Status> {
        let deadline = TileApi::deadline(&request);
        let answer = self.0.read("GetPoint", reads::point(&self.0, request.get_ref(), deadline)).await?;
        Ok(Response::new(answer))
    }

    async fn get_statistics(
        &self,
        request: Request<v1::GetStatisticsRequest>,
    ) -> Result<Response<v1::GetStatisticsResponse>, Status> {
        let deadline = TileApi::deadline(&request);
        let answer =
            self.0.read("GetStatistics", reads::statistics(&self.0, request.get_ref(), deadline)).await?;
        Ok(Response::new(answer))
    }

    async fn get_preview(
        &self,
        request: Request<v1::GetPreviewRequest>,
    ) -> Result<Response<v1::GetPreviewResponse>, Status> {
        let deadline = TileApi::deadline(&request);
        let answer = self.0.read("GetPreview", reads::preview(&self.0, request.get_ref(), deadline)).await?;
        Ok(Response::new(answer))
    }
}
