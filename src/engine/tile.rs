//! The path of one tile: asset metadata (cached) → which assets touch the tile → reads
//! of all of them in flight at once on different workers → first-wins compositing
//! (stopping as soon as nothing outstanding can change a pixel) → encoding.

use std::{collections::VecDeque, sync::Arc, task::Poll, time::Duration};

use futures::{Stream, StreamExt, stream::FuturesUnordered};
use tokio::time::Instant;
use tracing::{Instrument, Span, field::Empty};

use super::{
    TileRenderer,
    budget::{MemoryBudget, RenderShape},
    jobs::{asset_span, duration, off_runtime, read_request, record_error},
    request::{TileRequest, after_rescale_and_colormap},
};
use crate::{
    echo::quote,
    error::ServiceError,
    mosaic::{AssetInfo, PixelSelection, Selector},
    pb::{
        v1::{self, AssetOutcome, AssetReport},
        worker::{ReadRequest, ReadResult, TileJob},
    },
    render::{
        DataType, OutputFormat, Raster, check_encodable, encode,
        expr::{BandMasks, Expression},
        rescale::rescale,
    },
};

/// A tile counted in [`TileRenderer::rendering`] while it lives.
struct Rendering<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Rendering<'a> {
    fn new(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Rendering<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What the first phase of a tile decided.
#[derive(Debug)]
struct Plan {
    /// One report per requested asset.
    reports: Vec<AssetReport>,
    /// The first per-asset error, returned if no asset can be used.
    first_error: Option<ServiceError>,
    /// The first usable asset, whose type and nodata the tile takes.
    reference: Arc<AssetInfo>,
    /// The bands each read asks the worker for (empty = all data bands).
    read_bands: Vec<u32>,
    /// Bands in each read's answer.
    read_band_count: usize,
    /// Type and bands of each asset's raster after the expression (if any): what the
    /// pixel selection combines.
    selected: (DataType, usize),
    /// Type and bands of the combined raster.
    out: (DataType, usize),
    /// Assets (indexes) whose bounds touch the tile.
    touching: Vec<usize>,
    /// The colormap the tile is drawn with: the request's, or else a paletted first
    /// asset's own colour table.
    colormap: Option<Arc<crate::render::colormap::Colormap>>,
}

impl Plan {
    /// What rendering the plan will hold in memory (see [`RenderShape`]).
    fn shape(&self, req: &TileRequest) -> RenderShape {
        RenderShape {
            width: u64::from(req.out_size()),
            height: u64::from(req.out_size()),
            assets: self.touching.len() as u64,
            read: (self.reference.dtype, self.read_band_count),
            expression_outputs: req.expression.as_ref().map(|e| e.outputs()),
            selected: self.selected,
            out: self.out,
        }
    }
}

/// The number of the next first-wins tile (`ReadRequest.tile`); 0 means none.
static NEXT_TILE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Records a per-asset failure.
fn fail(report: &mut AssetReport, e: ServiceError, first: &mut Option<ServiceError>, started: Instant) {
    report.outcome = AssetOutcome::Failed as i32;
    report.error = e.to_string();
    report.elapsed = duration(started.elapsed());
    if first.is_none() {
        *first = Some(e);
    }
}

/// Checks that `info` can share a tile with the reference asset.
fn check_compatible(
    req: &TileRequest,
    name: &str,
    info: &AssetInfo,
    reference_name: &str,
    reference: &AssetInfo,
) -> Result<(), ServiceError> {
    let (name, reference_name) = (quote(name), quote(reference_name));
    if info.dtype != reference.dtype {
        return Err(ServiceError::invalid(
            "assets",
            format!(
                "asset {name} holds {} data but asset {reference_name} holds {}: a tile's assets must share one data type",
                info.dtype.name(),
                reference.dtype.name()
            ),
        ));
    }
    if let Some(expression) = &req.expression {
        return expression.check_bands(info.data_bands).map_err(|e| {
            ServiceError::invalid(
                "expression",
                format!("expression {e} (asset {name} has data bands 1..={})", info.data_bands),
            )
        });
    }
    if let Some(b) = req.bands.iter().find(|b| **b as usize > info.data_bands) {
        return Err(ServiceError::invalid(
            "bands",
            format!("band {b} does not exist in asset {name}, which has data bands 1..={}", info.data_bands),
        ));
    }
    if req.bands.is_empty() && info.data_bands != reference.data_bands {
        return Err(ServiceError::invalid(
            "bands",
            format!(
                "asset {name} has {} data bands but asset {reference_name} has {}: choose common bands with `bands`",
                info.data_bands, reference.data_bands
            ),
        ));
    }
    Ok(())
}

/// A worker's pixels as a raster, if they have the shape and type the read asked for.
fn checked_raster(r: ReadResult, req: &TileRequest, plan: &Plan) -> Option<Raster> {
    let raster = Raster {
        dtype: crate::render::DataType::from_worker(r.dtype)?,
        bands: r.band_count as usize,
        width: r.width as usize,
        height: r.height as usize,
        pixels: r.pixels,
        mask: r.mask,
    };
    let size = req.out_size() as usize;
    (raster.dtype == plan.reference.dtype
        && raster.bands == plan.read_band_count
        && raster.width == size
        && raster.height == size
        && raster.is_consistent())
    .then_some(raster)
}

/// An asset's raster after the request's expression (one band per block, in the type
/// rio-tiler's numexpr gives the result), or unchanged without one. `read_bands` says
/// which band each raster band is.
fn apply_expression(
    raster: Raster,
    expression: Option<&Expression>,
    read_bands: &[u32],
) -> Result<Raster, ServiceError> {
    match expression {
        Some(expression) => evaluate_expression(expression, &raster, read_bands),
        None => Ok(raster),
    }
}

/// Pixel work on at most this many bytes of raster runs where its task is, without
/// [`off_runtime`]: compositing a 256 px RGB tile (262 KB) takes tens of microseconds,
/// less than moving it to another thread and back.
const INLINE_PIXEL_BYTES: usize = 1 << 20;

/// A tile of at most this many bytes of pixels is encoded where its task is, without
/// [`off_runtime`]: a 256 px RGBA tile.
const INLINE_ENCODE_BYTES: u64 = 256 * 256 * 4;

/// `expression` over a raster whose bands are the asset's `read_bands` (1-based, in
/// order): one band per block of the expression, in the type rio-tiler's numexpr gives.
pub fn evaluate_expression(
    expression: &Expression,
    raster: &Raster,
    read_bands: &[u32],
) -> Result<Raster, ServiceError> {
    let n = raster.pixel_count();
    let highest = read_bands.iter().max().copied().unwrap_or(0) as usize;
    let mut planes: Vec<Vec<f64>> = vec![Vec::new(); highest];
    for (i, band) in read_bands.iter().enumerate() {
        planes[*band as usize - 1] = (0..n).map(|p| raster.value(i * n + p)).collect();
    }
    let views: Vec<&[f64]> = planes.iter().map(Vec::as_slice).collect();
    let result = expression
        .evaluate(&views, raster.dtype, BandMasks::Shared(&raster.mask))
        .map_err(|e| ServiceError::Internal(format!("expression: {e}")))?;
    Ok(result.into_raster(raster.width, raster.height))
}

/// Whether an error concerns one asset only (the tile can go on without it), as opposed
/// to the whole request (deadline, no workers, a bug).
fn fails_only_this_asset(e: &ServiceError) -> bool {
    matches!(e, ServiceError::AssetUnreadable { .. } | ServiceError::NotFound(_))
}

/// The next read to composite: one that landed while the last was handed over, else the
/// next to land. Before it is handed over, the reads still outstanding are polled once: a
/// read waiting for a worker takes the one this read gave back and sends it its job, so
/// that worker reads while this answer is composited (with fewer workers free than reads,
/// reads would otherwise take turns with the compositing). An answer that lands meanwhile
/// waits in `landed` for its turn.
async fn next_read<S: Stream + Unpin>(reads: &mut S, landed: &mut VecDeque<S::Item>) -> Option<S::Item> {
    let next = match landed.pop_front() {
        Some(read) => read,
        None => reads.next().await?,
    };
    while let Poll::Ready(Some(read)) = futures::poll!(reads.next()) {
        landed.push_back(read);
    }
    Some(next)
}

impl TileRenderer {
    /// Renders one tile, within `budget` (reserved once the assets' metadata say what
    /// the tile will hold, before any pixel is read); an NPY tile bound to be over
    /// `max_response_size` is refused then too.
    pub async fn render(
        &self,
        req: &TileRequest,
        deadline: Instant,
        budget: &MemoryBudget,
        max_response_size: usize,
    ) -> Result<v1::GetTileResponse, ServiceError> {
        let span = tracing::info_span!(
            "tile",
            tile.z = i64::from(req.tile.z),
            tile.x = i64::from(req.tile.x),
            tile.y = i64::from(req.tile.y),
            tile.matrix_set = %req.tile.tms,
            tile.size = i64::from(req.size),
            assets = req.assets.len() as i64,
            assets.used = Empty,
            pixel_selection = req.selection.name(),
            format = req.format.label(),
            bytes_out = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
        );
        let _rendering = Rendering::new(&self.rendering);
        let result =
            self.render_in_span(req, deadline, budget, max_response_size).instrument(span.clone()).await;
        match &result {
            Ok(tile) => {
                span.record("bytes_out", (tile.data.len() + tile.mask.len()) as i64);
                let used = tile.assets.iter().filter(|a| a.outcome == AssetOutcome::Used as i32).count();
                span.record("assets.used", used as i64);
            }
            Err(e) => record_error(&span, e),
        }
        result
    }

    async fn render_in_span(
        &self,
        req: &TileRequest,
        deadline: Instant,
        budget: &MemoryBudget,
        max_response_size: usize,
    ) -> Result<v1::GetTileResponse, ServiceError> {
        let started = Instant::now();
        let mut plan = self.plan(req, deadline, started).await?;
        let shape = plan.shape(req);
        let smaller = "a smaller tile_size, fewer assets or fewer bands";
        if req.format == OutputFormat::Npy {
            MemoryBudget::check_raw_size("the tile", &shape, max_response_size, smaller)?;
        }
        let _reservation = budget.reserve("the tile", &shape, smaller)?;
        if self.goes_whole(req, &plan) {
            let span = tracing::info_span!(
                "asset_job",
                otel.name = "whole tile",
                assets.read = plan.touching.len() as i64,
                assets.used = Empty,
                worker.pid = Empty,
                pool.wait_ms = Empty,
                ipc_ms = Empty,
                retries = Empty,
                dataset_cache.hit = Empty,
                remote.requests = Empty,
                remote.bytes = Empty,
                remote.cache_hits = Empty,
                remote.cache_misses = Empty,
                remote.wait_ms = Empty,
                outcome = Empty,
                otel.status_code = Empty,
                otel.status_description = Empty,
            );
            let whole = self.render_whole(req, &plan, deadline, started).instrument(span.clone()).await;
            match whole {
                Ok(Some(mut tile)) => {
                    span.record("outcome", "ok");
                    let used = tile.assets.iter().filter(|a| a.outcome == AssetOutcome::Used as i32).count();
                    span.record("assets.used", used as i64);
                    tile.elapsed = duration(started.elapsed());
                    return Ok(tile);
                }
                Ok(None) => {
                    span.record("outcome", "split");
                }
                Err(e) => {
                    record_error(&span, &e);
                    span.record("outcome", "failed");
                    return Err(e);
                }
            }
        }
        let composite_span =
            tracing::info_span!("composite", composite_ms = Empty, assets.read = plan.touching.len() as i64);
        let selector = self.composite(req, &mut plan, deadline, started).instrument(composite_span).await?;
        // Without lon/lat bounds (a custom set in another CRS) the plan could not skip
        // assets by their bounds; a tile they all miss is found out after compositing.
        let outside =
            req.tile.geographic_bounds().is_none().then(|| {
                format!("tile {} of {} is outside the bounds of every asset", req.tile, req.tile.tms)
            });
        let (format, rescale_ranges, colormap) = (req.format, req.rescale.clone(), plan.colormap.clone());
        let encode_span = tracing::info_span!("encode", format = format.label(), bytes = Empty);
        let finish = move || {
            let mut raster = selector.finish();
            if let Some(outside) = outside
                && raster.mask.iter().all(|m| *m == 0)
            {
                return Err(ServiceError::NotFound(outside));
            }
            if !rescale_ranges.is_empty() {
                raster = rescale(&raster, &rescale_ranges)
                    .map_err(|e| ServiceError::Internal(format!("rescale: {e}")))?;
            }
            if let Some(colormap) = &colormap {
                raster =
                    colormap.apply(&raster).map_err(|e| ServiceError::Internal(format!("colormap: {e}")))?;
            }
            let encoded = encode_span.in_scope(|| encode(&raster, format));
            if let Ok((data, mask)) = &encoded {
                encode_span.record("bytes", (data.len() + mask.len()) as i64);
            }
            encoded.map_err(|e| ServiceError::Internal(e.to_string()))
        };
        // A small tile is finished where its task is: encoding a 256 px PNG takes about
        // as long as handing it to another thread and back. A larger one, or one with a
        // rescale or colormap to apply, goes to the blocking pool.
        let inline = plan.colormap.is_none()
            && req.rescale.is_empty()
            && shape.width * shape.height * (shape.out.0.size() * shape.out.1) as u64 <= INLINE_ENCODE_BYTES;
        let (data, mask) = if inline { finish()? } else { off_runtime("encoder", finish).await?? };
        Ok(v1::GetTileResponse {
            data,
            content_type: format.content_type().to_owned(),
            width: req.out_size(),
            height: req.out_size(),
            dtype: plan.out.0.to_api() as i32,
            band_count: plan.out.1 as u32,
            mask,
            assets: plan.reports,
            elapsed: duration(started.elapsed()),
            // The API sets it for a layer tile cut at its asset budget.
            truncated: false,
        })
    }

    /// Whether `req` goes whole to one worker (`worker/jobs/whole_tile.rs`): a first-wins
    /// tile with nothing to do after the selection but the encoding, when it would not
    /// have two workers to itself to read in parallel (and this server reads its remote
    /// assets, if any).
    fn goes_whole(&self, req: &TileRequest, plan: &Plan) -> bool {
        req.selection == PixelSelection::First
            && req.expression.is_none()
            && req.rescale.is_empty()
            && plan.colormap.is_none()
            && req.tile.geographic_bounds().is_some()
            && plan.selected == (plan.reference.dtype, plan.read_band_count)
            && plan.out == plan.selected
            && self.whole_tile_now(&plan.touching.iter().map(|&i| &req.assets[i]).collect::<Vec<_>>())
    }

    /// The tile rendered by one worker in one job, or `None` when it should be run read by
    /// read (see [`TileRenderer::run_whole_tile`]).
    async fn render_whole(
        &self,
        req: &TileRequest,
        plan: &Plan,
        deadline: Instant,
        started: Instant,
    ) -> Result<Option<v1::GetTileResponse>, ServiceError> {
        let reads: Vec<ReadRequest> = plan
            .touching
            .iter()
            .map(|&i| read_request(&req.assets[i], req, &plan.read_bands, None))
            .collect();
        let (format, quality) = req.format.to_wire();
        let job = TileJob {
            reads,
            dtype: plan.reference.dtype.to_worker() as i32,
            band_count: plan.read_band_count as u32,
            fill: req.nodata.or(plan.reference.nodata).unwrap_or(0.0),
            format,
            quality,
        };
        let sent = started.elapsed();
        let Some(t) = self.run_whole_tile(job, &req.assets[plan.touching[0]], deadline).await? else {
            return Ok(None);
        };
        let mut reports = plan.reports.clone();
        let mut finished = sent;
        for (k, &i) in plan.touching.iter().enumerate() {
            reports[i].outcome = match t.read_us.get(k) {
                Some(us) => {
                    finished += Duration::from_micros(*us);
                    reports[i].elapsed = duration(finished);
                    AssetOutcome::Used as i32
                }
                None => AssetOutcome::NotNeeded as i32,
            };
        }
        Ok(Some(v1::GetTileResponse {
            data: t.data,
            content_type: req.format.content_type().to_owned(),
            width: req.out_size(),
            height: req.out_size(),
            dtype: plan.out.0.to_api() as i32,
            band_count: plan.out.1 as u32,
            mask: t.mask,
            assets: reports,
            elapsed: duration(started.elapsed()),
            truncated: false,
        }))
    }

    /// Describes every asset (cache or worker), checks they can make one tile in the
    /// requested format, and picks the ones whose bounds touch the tile.
    async fn plan(
        &self,
        req: &TileRequest,
        deadline: Instant,
        started: Instant,
    ) -> Result<Plan, ServiceError> {
        let mut reports: Vec<AssetReport> =
            req.assets.iter().map(|a| AssetReport { asset: a.name.clone(), ..Default::default() }).collect();
        let mut first_error = None;
        let infos = futures::future::join_all(req.assets.iter().map(|a| self.info(a, deadline))).await;
        let mut usable: Vec<(usize, Arc<AssetInfo>)> = Vec::new();
        for (i, info) in infos.into_iter().enumerate() {
            match info {
                Ok(info) => usable.push((i, info)),
                Err(e) if fails_only_this_asset(&e) => fail(&mut reports[i], e, &mut first_error, started),
                Err(e) => return Err(e),
            }
        }
        let Some((reference_index, reference)) = usable.first().cloned() else {
            return Err(first_error.unwrap_or_else(|| ServiceError::Internal("no asset and no error".into())));
        };
        for (i, info) in &usable {
            check_compatible(req, &req.assets[*i].name, info, &req.assets[reference_index].name, &reference)?;
        }
        let (read_bands, read_band_count, selected) = match &req.expression {
            Some(e) => (e.bands(), e.bands().len(), (e.output_dtype(reference.dtype).storage(), e.outputs())),
            None if req.bands.is_empty() => {
                (Vec::new(), reference.data_bands, (reference.dtype, reference.data_bands))
            }
            None => (req.bands.clone(), req.bands.len(), (reference.dtype, req.bands.len())),
        };
        req.selection
            .check(selected.1, req.assets.len())
            .map_err(|e| ServiceError::invalid("pixel_selection", e.to_string()))?;
        let combined = (req.selection.output_dtype(selected.0), req.selection.output_bands(selected.1));
        // A paletted file is drawn in its own colours when the request names no colormap
        // (TiTiler's rule); NPY keeps the indexes.
        let colormap = req.colormap.clone().or_else(|| {
            (req.format != OutputFormat::Npy && combined.1 == 1).then(|| reference.colormap.clone()).flatten()
        });
        let out = after_rescale_and_colormap(combined, &req.rescale, colormap.is_some(), "tile")?;
        check_encodable(req.format, out.0, out.1)
            .map_err(|e| ServiceError::invalid("format", e.to_string()))?;

        // Assets whose bounds miss the tile cost nothing more (bounds that cross the
        // antimeridian are compared part by part). (A custom tile matrix set
        // in a CRS the front cannot project has no lon/lat bounds: every asset is read,
        // and the workers' warps find out.)
        let tile_bounds = req.tile.geographic_bounds();
        let mut touching = Vec::new();
        for (i, info) in &usable {
            if tile_bounds.is_none_or(|t| info.geographic.intersects_lon_lat(&t)) {
                touching.push(*i);
            } else {
                reports[*i].outcome = AssetOutcome::Skipped as i32;
            }
        }
        if touching.is_empty() {
            return Err(first_error.unwrap_or_else(|| {
                ServiceError::NotFound(format!(
                    "tile {} of {} is outside the bounds of every asset",
                    req.tile, req.tile.tms
                ))
            }));
        }
        Ok(Plan {
            reports,
            first_error,
            reference,
            read_bands,
            read_band_count,
            selected,
            out,
            touching,
            colormap,
        })
    }

    /// Reads the touching assets, all in flight at once, and feeds them to the pixel
    /// selection as they land (on the blocking pool); stops as soon as nothing
    /// outstanding can change a pixel. The selector is left to finish.
    async fn composite(
        &self,
        req: &TileRequest,
        plan: &mut Plan,
        deadline: Instant,
        started: Instant,
    ) -> Result<Selector, ServiceError> {
        let read_bands: Arc<[u32]> = plan.read_bands.clone().into();
        let read_bands = &read_bands;
        // A first-wins tile without an expression numbers its reads, so that a worker
        // answers one that can no longer change a pixel without running it.
        let tile = (req.selection.stops_early() && req.expression.is_none())
            .then(|| NEXT_TILE.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let mut reads: FuturesUnordered<_> = plan
            .touching
            .iter()
            .map(|&i| {
                let asset = &req.assets[i];
                let span = asset_span("asset read", asset);
                async move {
                    let result =
                        self.read(asset, req, read_bands, tile.map(|t| (t, i as u32)), deadline).await;
                    let current = Span::current();
                    match &result {
                        Ok(Some(_)) => current.record("outcome", "ok"),
                        Ok(None) => current.record("outcome", "covered"),
                        Err(e) => {
                            tracing::debug!(error = %e, "asset read failed");
                            record_error(&current, e);
                            current.record("outcome", "failed")
                        }
                    };
                    (i, result)
                }
                .instrument(span)
            })
            .collect();
        // The reads start (the first job goes to its worker) before the selection's
        // buffers are made: about 10 us sooner (BENCHMARKS.md (i)).
        let mut landed = VecDeque::new();
        while let Poll::Ready(Some(read)) = futures::poll!(reads.next()) {
            landed.push_back(read);
        }
        let size = req.out_size() as usize;
        let fill = req.nodata.or(plan.reference.nodata).unwrap_or(0.0);
        let (dtype, bands) = plan.selected;
        let mut compositor = Selector::new(req.selection, dtype, bands, size, size, fill, req.assets.len())
            .map_err(|e| ServiceError::invalid("pixel_selection", e.to_string()))?;
        for (i, report) in plan.reports.iter().enumerate() {
            if !plan.touching.contains(&i) || report.outcome == AssetOutcome::Failed as i32 {
                compositor.settle(i);
            }
        }
        let mut used = 0;
        let mut compositing = Duration::ZERO;
        while let Some((i, result)) = next_read(&mut reads, &mut landed).await {
            match result {
                // The worker found the tile's earlier reads covered every pixel: the
                // tile is complete once they are composited.
                Ok(None) => compositor.settle(i),
                Ok(Some(r)) => {
                    let raster = checked_raster(r, req, plan).ok_or_else(|| {
                        ServiceError::Internal(format!(
                            "worker returned a malformed raster for {}",
                            quote(&req.assets[i].name)
                        ))
                    })?;
                    let (expression, bands) = (req.expression.clone(), Arc::clone(read_bands));
                    let inline = expression.is_none() && raster.pixels.len() <= INLINE_PIXEL_BYTES;
                    let add = move |mut compositor: Selector| {
                        let add_started = std::time::Instant::now();
                        let added = apply_expression(raster, expression.as_deref(), &bands)
                            .map(|raster| compositor.add(i, &raster));
                        (compositor, added.map(|()| add_started.elapsed()))
                    };
                    let (back, added) = if inline {
                        add(compositor)
                    } else {
                        off_runtime("compositing", move || add(compositor)).await?
                    };
                    compositor = back;
                    compositing += added?;
                    plan.reports[i].outcome = AssetOutcome::Used as i32;
                    plan.reports[i].elapsed = duration(started.elapsed());
                    used += 1;
                }
                Err(e) if fails_only_this_asset(&e) => {
                    fail(&mut plan.reports[i], e, &mut plan.first_error, started);
                    compositor.settle(i);
                }
                Err(e) => return Err(e),
            }
            if compositor.is_complete() {
                break;
            }
        }
        // Dropping the outstanding reads stops those not yet started; running ones finish
        // on their worker, which then returns to the pool.
        drop(reads);
        Span::current().record("composite_ms", compositing.as_secs_f64() * 1e3);
        for r in &mut plan.reports {
            if r.outcome == AssetOutcome::Unspecified as i32 {
                r.outcome = AssetOutcome::NotNeeded as i32;
            }
        }
        if used == 0 {
            return Err(plan
                .first_error
                .take()
                .unwrap_or_else(|| ServiceError::Internal("no read succeeded".into())));
        }
        Ok(compositor)
    }
}
