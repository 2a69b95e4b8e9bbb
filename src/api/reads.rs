//! The reads beside tiles: `GetPoint`, `GetStatistics` and `GetPreview`, with
//! rio-tiler's `Reader.point`, `Reader.statistics` and `Reader.preview` semantics.
//!
//! Each request is checked here once (every bad field named, with what is allowed),
//! becomes one worker job per asset run by the engine (`crate::engine`: the worker does
//! the GDAL work and the arithmetic; a preview is then rendered as a tile is), and the
//! answer becomes the public response. A point or box outside an asset is OUT_OF_RANGE.

use crate::ipc::{
    MAX_HISTOGRAM_BINS, MAX_PERCENTILES,
    read_plan::{decimated_read_kernels, is_decimated_read_kernel, kernel_name},
};

use futures::future::join_all;
use tokio::time::Instant;
use tonic::Status;

use super::{TileApi, validate};
use crate::{
    echo::{number, quote},
    engine::{Preview, RenderedPreview},
    error::{ServiceError, status_message},
    mosaic::Asset,
    pb::{
        v1,
        worker::{
            self, PointRequest, PreviewRequest, StatisticsRequest, worker_request::Job, worker_response,
        },
    },
    render::DataType,
};

/// Largest `max_size`, `width` or `height` of a statistics or preview read.
pub const MAX_READ_SIZE: u32 = 4096;
/// Longest side of a statistics or preview read when the request says 0.
pub const DEFAULT_READ_SIZE: u32 = 1024;

/// A checked lon/lat point.
fn lon_lat(lon: f64, lat: f64) -> Result<(), ServiceError> {
    if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
        return Err(ServiceError::invalid(
            "lon",
            format!("lon={} is not a longitude in [-180, 180]", number(lon)),
        ));
    }
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        return Err(ServiceError::invalid(
            "lat",
            format!("lat={} is not a latitude in [-90, 90]", number(lat)),
        ));
    }
    Ok(())
}

/// Band indexes are 1-based.
fn bands(bands: &[u32]) -> Result<Vec<u32>, ServiceError> {
    match bands.iter().find(|b| **b == 0) {
        Some(b) => Err(ServiceError::invalid("bands", format!("band {b} is invalid: bands are 1-based"))),
        None => Ok(bands.to_vec()),
    }
}

/// A nodata override is a number or NaN.
fn nodata(value: Option<f64>) -> Result<Option<f64>, ServiceError> {
    if value.is_some_and(f64::is_infinite) {
        return Err(ServiceError::invalid("nodata", "nodata must be a finite number or NaN"));
    }
    Ok(value)
}

/// The one asset of a statistics or preview request, resolved; the resolver's
/// complaints name this request's field, `asset`.
fn asset(api: &TileApi, name: &str) -> Result<Asset, ServiceError> {
    if name.is_empty() {
        return Err(ServiceError::invalid("asset", "no asset: give an asset path"));
    }
    api.resolver.resolve(name).map_err(|e| match e {
        ServiceError::InvalidArgument { message, .. } => ServiceError::invalid("asset", message),
        other => other,
    })
}

/// The kernel of a decimated read: one `RasterIO` has.
fn read_kernel(value: i32) -> Result<worker::Resampling, ServiceError> {
    use worker::Resampling as R;
    match validate::kernel("resampling", value)? {
        R::Unspecified => Ok(R::Nearest),
        k if is_decimated_read_kernel(k) => Ok(k),
        k => Err(ServiceError::invalid(
            "resampling",
            format!(
                "resampling {} is not available for a decimated read; use one of {}",
                kernel_name(k),
                decimated_read_kernels()
            ),
        )),
    }
}

/// A read size: `max_size` (0 = the default) or an explicit `width` / `height`.
fn read_size(field: &'static str, value: u32) -> Result<u32, ServiceError> {
    match value {
        0 if field == "max_size" => Ok(DEFAULT_READ_SIZE),
        1..=MAX_READ_SIZE => Ok(value),
        _ if field == "max_size" => Err(ServiceError::invalid(
            field,
            format!("max_size={value} is outside 1..={MAX_READ_SIZE} (0 means {DEFAULT_READ_SIZE})"),
        )),
        _ => Err(ServiceError::invalid(field, format!("{field}={value} is outside 1..={MAX_READ_SIZE}"))),
    }
}

/// A lon/lat box as west, south, east, north.
fn bbox(b: Option<&v1::Bounds>) -> Result<Vec<f64>, ServiceError> {
    let Some(b) = b else { return Ok(Vec::new()) };
    let (west, south, east, north) = (b.min_x, b.min_y, b.max_x, b.max_y);
    let shown = || format!("[{}, {}, {}, {}]", number(west), number(south), number(east), number(north));
    let lon = |v: f64| v.is_finite() && (-180.0..=180.0).contains(&v);
    let lat = |v: f64| v.is_finite() && (-90.0..=90.0).contains(&v);
    if !(lon(west) && lon(east) && lat(south) && lat(north)) {
        return Err(ServiceError::invalid(
            "bbox",
            format!(
                "bbox {} is not a lon/lat box: min_x and max_x in [-180, 180], min_y and max_y in [-90, 90]",
                shown()
            ),
        ));
    }
    if west >= east || south >= north {
        return Err(ServiceError::invalid(
            "bbox",
            format!("bbox {} is empty: min_x must be less than max_x and min_y less than max_y", shown()),
        ));
    }
    Ok(vec![west, south, east, north])
}

/// The summary options of a statistics request.
fn summary_options(req: &v1::GetStatisticsRequest) -> Result<(), ServiceError> {
    if req.percentiles.len() > MAX_PERCENTILES {
        return Err(ServiceError::invalid(
            "percentiles",
            format!("{} percentiles exceed the limit of {MAX_PERCENTILES}", req.percentiles.len()),
        ));
    }
    if let Some(p) = req.percentiles.iter().find(|p| !(0.0..=100.0).contains(*p)) {
        return Err(ServiceError::invalid(
            "percentiles",
            format!("percentile {} is not in [0, 100]", number(*p)),
        ));
    }
    if req.histogram_bins as usize > MAX_HISTOGRAM_BINS {
        return Err(ServiceError::invalid(
            "histogram_bins",
            format!("histogram_bins={} is outside 1..={MAX_HISTOGRAM_BINS} (0 means 10)", req.histogram_bins),
        ));
    }
    match (req.histogram_min, req.histogram_max) {
        (Some(min), Some(max)) if !(min.is_finite() && max.is_finite() && min <= max) => {
            return Err(ServiceError::invalid(
                "histogram_min",
                format!(
                    "the histogram range [{}, {}] must be finite with histogram_min <= histogram_max",
                    number(min),
                    number(max)
                ),
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(ServiceError::invalid(
                "histogram_min",
                "histogram_min and histogram_max go together: give both or neither",
            ));
        }
        _ => {}
    }
    if req.categorical {
        if req.histogram_bins != 0 || req.histogram_min.is_some() {
            return Err(ServiceError::invalid(
                "histogram_bins",
                "categorical statistics count values: histogram_bins and the histogram range do not apply",
            ));
        }
        if req.categories.len() > MAX_HISTOGRAM_BINS {
            return Err(ServiceError::invalid(
                "categories",
                format!("{} categories exceed the limit of {MAX_HISTOGRAM_BINS}", req.categories.len()),
            ));
        }
    } else if !req.categories.is_empty() {
        return Err(ServiceError::invalid("categories", "categories apply only with categorical=true"));
    }
    Ok(())
}

/// Whether an error concerns one asset of a point request only.
fn fails_only_this_point(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::OutOfRange(_) | ServiceError::NotFound(_) | ServiceError::AssetUnreadable { .. }
    )
}

fn unexpected(kind: &str, asset: &Asset) -> ServiceError {
    ServiceError::Internal(format!(
        "worker answered a {kind} job about {} with something else",
        quote(&asset.name)
    ))
}

/// `GetPoint`: the pixel under the point in each asset, all read at once.
pub(super) async fn point(
    api: &TileApi,
    req: &v1::GetPointRequest,
    deadline: Instant,
) -> Result<v1::GetPointResponse, ServiceError> {
    validate::bounded_strings(&req.layer, &req.assets, None, "")?;
    lon_lat(req.lon, req.lat)?;
    let names = super::layers::point_assets(req, &api.layers, &api.limits)?;
    if names.is_empty() {
        return Err(ServiceError::invalid("assets", "no assets: give at least one asset path, or a layer"));
    }
    if names.len() > api.limits.max_assets_per_tile {
        return Err(ServiceError::invalid(
            "assets",
            format!(
                "{} assets in one request exceed the limit of {}",
                names.len(),
                api.limits.max_assets_per_tile
            ),
        ));
    }
    let bands = bands(&req.bands)?;
    let nodata = nodata(req.nodata)?;
    let assets = names.iter().map(|a| api.resolver.resolve(a)).collect::<Result<Vec<_>, _>>()?;
    let jobs = assets.iter().map(|asset| {
        let job = Job::Point(PointRequest {
            path: asset.path.to_string_lossy().into_owned(),
            lon: req.lon,
            lat: req.lat,
            bands: bands.clone(),
            nodata,
            // Set for a remote asset by the renderer's run_job.
            defer_remote: false,
        });
        api.renderer.run_job("asset point", asset, job, deadline)
    });
    let mut first_error = None;
    let mut answered = 0;
    let mut points = Vec::with_capacity(assets.len());
    for (asset, result) in assets.iter().zip(join_all(jobs).await) {
        let point = match result {
            Ok(worker_response::Result::Point(p)) => {
                answered += 1;
                v1::AssetPoint {
                    asset: asset.name.clone(),
                    error: None,
                    dtype: DataType::from_worker(p.dtype).map_or(0, |d| d.to_api() as i32),
                    bands: p.bands,
                    values: p.values,
                    valid: p.valid,
                    band_descriptions: p.band_descriptions,
                    nodata: p.nodata,
                    column: p.column,
                    row: p.row,
                }
            }
            Ok(_) => return Err(unexpected("point", asset)),
            Err(e) if fails_only_this_point(&e) => {
                let error = status_message(&Status::from(e.clone()));
                first_error.get_or_insert(e);
                v1::AssetPoint { asset: asset.name.clone(), error: Some(error), ..Default::default() }
            }
            Err(e) => return Err(e),
        };
        points.push(point);
    }
    match first_error {
        Some(e) if answered == 0 => Err(e),
        _ => Ok(v1::GetPointResponse { lon: req.lon, lat: req.lat, assets: points }),
    }
}

/// `GetStatistics`: per-band statistics of an asset or of the part under a box.
pub(super) async fn statistics(
    api: &TileApi,
    req: &v1::GetStatisticsRequest,
    deadline: Instant,
) -> Result<v1::GetStatisticsResponse, ServiceError> {
    validate::bounded_asset("asset", &req.asset)?;
    let asset = asset(api, &req.asset)?;
    let bbox = bbox(req.bbox.as_ref())?;
    let max_size = read_size("max_size", req.max_size)?;
    let bands = bands(&req.bands)?;
    summary_options(req)?;
    let nodata = nodata(req.nodata)?;
    let resampling = read_kernel(req.resampling)?;
    let job = Job::Statistics(StatisticsRequest {
        path: asset.path.to_string_lossy().into_owned(),
        bbox,
        max_size,
        bands,
        percentiles: req.percentiles.clone(),
        histogram_bins: req.histogram_bins,
        histogram_min: req.histogram_min,
        histogram_max: req.histogram_max,
        categorical: req.categorical,
        categories: req.categories.clone(),
        nodata,
        resampling: resampling as i32,
        defer_remote: false,
    });
    let worker_response::Result::Statistics(s) =
        api.renderer.run_job("asset statistics", &asset, job, deadline).await?
    else {
        return Err(unexpected("statistics", &asset));
    };
    Ok(v1::GetStatisticsResponse {
        asset: asset.name.clone(),
        dtype: DataType::from_worker(s.dtype).map_or(0, |d| d.to_api() as i32),
        width: s.width,
        height: s.height,
        percentiles: s.percentiles,
        bands: s
            .bands
            .into_iter()
            .map(|b| v1::BandStatistics {
                band: b.band,
                description: b.description,
                min: b.min,
                max: b.max,
                mean: b.mean,
                count: b.count,
                sum: b.sum,
                std: b.std,
                median: b.median,
                majority: b.majority,
                minority: b.minority,
                unique: b.unique,
                percentiles: b.percentiles,
                histogram_counts: b.histogram_counts,
                histogram_values: b.histogram_values,
                valid_percent: b.valid_percent,
                masked_pixels: b.masked_pixels,
                valid_pixels: b.valid_pixels,
            })
            .collect(),
    })
}

/// A GetPreview request, checked.
fn checked_preview(api: &TileApi, req: &v1::GetPreviewRequest) -> Result<Preview, ServiceError> {
    use v1::get_preview_request::Colormap as C;
    let colormap_name = match &req.colormap {
        Some(C::ColormapName(name)) => Some(name.as_str()),
        _ => None,
    };
    validate::bounded_asset("asset", &req.asset)?;
    validate::bounded_strings("", &[], colormap_name, &req.expression)?;
    let asset = asset(api, &req.asset)?;
    let max_size = read_size("max_size", req.max_size)?;
    let width = req.width.map(|w| read_size("width", w)).transpose()?;
    let height = req.height.map(|h| read_size("height", h)).transpose()?;
    let format = validate::format(req.format, req.quality)?;
    let bands = bands(&req.bands)?;
    let expression = validate::expression(&req.expression, &bands)?;
    let rescale = validate::rescale_ranges(&req.rescale)?;
    let colormap = match &req.colormap {
        None => None,
        Some(C::ColormapName(name)) => validate::colormap_of(Some(name), None)?,
        Some(C::CustomColormap(custom)) => validate::colormap_of(None, Some(custom))?,
    };
    let job = PreviewRequest {
        path: asset.path.to_string_lossy().into_owned(),
        max_size,
        width,
        height,
        // An expression reads the bands it names.
        bands: expression.as_ref().map_or(bands, |e| e.bands()),
        resampling: read_kernel(req.resampling)? as i32,
        nodata: nodata(req.nodata)?,
        defer_remote: false,
    };
    Ok(Preview { asset, job, format, expression, rescale, colormap })
}

/// `GetPreview`: the whole asset at a bounded size, encoded like a tile: the bands or
/// the expression, then `rescale`, then the colormap, as for a tile.
pub(super) async fn preview(
    api: &TileApi,
    req: &v1::GetPreviewRequest,
    deadline: Instant,
) -> Result<v1::GetPreviewResponse, ServiceError> {
    let preview = checked_preview(api, req)?;
    let format = preview.format;
    let RenderedPreview { info, data, mask, width, height, dtype, band_count } =
        api.renderer.preview(preview, &api.budget, api.limits.max_response_size, deadline).await?;
    let i = &info.info;
    let bounds = match i.bounds.as_slice() {
        &[min_x, min_y, max_x, max_y] => Some(v1::Bounds { min_x, min_y, max_x, max_y }),
        _ => None,
    };
    let response = v1::GetPreviewResponse {
        data,
        content_type: format.content_type().to_owned(),
        width,
        height,
        dtype: dtype.to_api() as i32,
        band_count: band_count as u32,
        mask,
        crs: i.crs.clone(),
        crs_wkt: i.crs_wkt.clone(),
        bounds,
    };
    api.limits.check_response_size("the preview", &response, "a smaller max_size")?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: ServiceError) -> (&'static str, String) {
        match e {
            ServiceError::InvalidArgument { field, message } => (field, message),
            other => panic!("not an invalid argument: {other:?}"),
        }
    }

    #[test]
    fn points_and_boxes_must_be_lon_lat() {
        assert!(lon_lat(-180.0, 90.0).is_ok());
        assert_eq!(
            message(lon_lat(200.0, 0.0).unwrap_err()),
            ("lon", "lon=200 is not a longitude in [-180, 180]".to_owned())
        );
        assert_eq!(
            message(lon_lat(0.0, f64::NAN).unwrap_err()),
            ("lat", "lat=NaN is not a latitude in [-90, 90]".to_owned())
        );
        let b = |min_x, min_y, max_x, max_y| v1::Bounds { min_x, min_y, max_x, max_y };
        assert_eq!(bbox(None).unwrap(), Vec::<f64>::new());
        assert_eq!(bbox(Some(&b(-75.0, 40.0, -74.0, 41.0))).unwrap(), vec![-75.0, 40.0, -74.0, 41.0]);
        assert_eq!(
            message(bbox(Some(&b(-74.0, 40.0, -75.0, 41.0))).unwrap_err()).1,
            "bbox [-74, 40, -75, 41] is empty: min_x must be less than max_x and min_y less than max_y"
        );
        assert_eq!(message(bbox(Some(&b(-75.0, 40.0, -74.0, 95.0))).unwrap_err()).0, "bbox");
    }

    #[test]
    fn read_sizes_and_kernels_are_bounded() {
        assert_eq!(read_size("max_size", 0).unwrap(), DEFAULT_READ_SIZE);
        assert_eq!(
            message(read_size("max_size", 4097).unwrap_err()).1,
            "max_size=4097 is outside 1..=4096 (0 means 1024)"
        );
        assert_eq!(message(read_size("width", 0).unwrap_err()).1, "width=0 is outside 1..=4096");
        assert_eq!(read_kernel(0).unwrap(), worker::Resampling::Nearest);
        assert_eq!(read_kernel(v1::Resampling::Gauss as i32).unwrap(), worker::Resampling::Gauss);
        assert_eq!(
            message(read_kernel(v1::Resampling::Max as i32).unwrap_err()).1,
            "resampling max is not available for a decimated read; use one of nearest, bilinear, cubic, cubic_spline, lanczos, average, mode, gauss"
        );
        assert_eq!(message(read_kernel(99).unwrap_err()).0, "resampling");
    }

    #[test]
    fn statistics_options_are_checked_before_any_read() {
        let ok = v1::GetStatisticsRequest { percentiles: vec![0.0, 50.0, 100.0], ..Default::default() };
        assert!(summary_options(&ok).is_ok());
        let cases = [
            (v1::GetStatisticsRequest { percentiles: vec![101.0], ..Default::default() }, "percentiles"),
            (v1::GetStatisticsRequest { histogram_bins: 10_001, ..Default::default() }, "histogram_bins"),
            (v1::GetStatisticsRequest { histogram_min: Some(1.0), ..Default::default() }, "histogram_min"),
            (
                v1::GetStatisticsRequest {
                    histogram_min: Some(2.0),
                    histogram_max: Some(1.0),
                    ..Default::default()
                },
                "histogram_min",
            ),
            (v1::GetStatisticsRequest { categories: vec![1.0], ..Default::default() }, "categories"),
            (
                v1::GetStatisticsRequest { categorical: true, histogram_bins: 5, ..Default::default() },
                "histogram_bins",
            ),
        ];
        for (req, field) in cases {
            assert_eq!(message(summary_options(&req).unwrap_err()).0, field, "{req:?}");
        }
    }
}
