//! Protobuf requests → domain types, once, at the edge. Everything behind this module
//! works with values that cannot be invalid.

use crate::{
    echo::{number, quote},
    engine::TileRequest,
    error::ServiceError,
    mosaic::{AssetResolver, MAX_ASSET_NAME_LEN, PixelSelection},
    pb::{v1, worker},
    render::{
        OutputFormat,
        colormap::{Colormap, ColormapError, Rgba},
        expr::{ExprLimits, Expression},
        rescale::RescaleRange,
    },
    tms::TileMatrixSets,
};

/// Default tile edge in pixels when the request says 0.
pub const DEFAULT_TILE_SIZE: u32 = 256;
/// Default quality for JPEG and WebP.
pub const DEFAULT_QUALITY: u8 = 85;
/// Largest `buffer`, in pixels on each side.
pub const MAX_BUFFER: u32 = 64;
/// Longest name a request may give for a layer, a colormap or a tile matrix set, in
/// bytes. Every string field is checked against its bound before anything else looks at
/// it, so what a request costs never grows with a name's length.
pub const MAX_NAME_LEN: usize = 256;

/// INVALID_ARGUMENT when `value` (the request's `field`) is longer than `max` bytes. The
/// value itself is not echoed.
pub(super) fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), ServiceError> {
    if value.len() <= max {
        return Ok(());
    }
    Err(ServiceError::invalid(
        field,
        format!("{field} is {} bytes long, over the limit of {max} bytes", value.len()),
    ))
}

/// INVALID_ARGUMENT when an asset name (the request's `field`) is over
/// [`MAX_ASSET_NAME_LEN`], in the asset policy's words.
pub(super) fn bounded_asset(field: &'static str, name: &str) -> Result<(), ServiceError> {
    if name.len() <= MAX_ASSET_NAME_LEN {
        return Ok(());
    }
    Err(ServiceError::invalid(
        field,
        format!("an asset name of {} bytes exceeds the limit of {MAX_ASSET_NAME_LEN} bytes", name.len()),
    ))
}

/// The bounds of the string fields every request shares: a layer name, asset names, a
/// colormap name and an expression.
pub(super) fn bounded_strings(
    layer: &str,
    assets: &[String],
    colormap_name: Option<&str>,
    expression: &str,
) -> Result<(), ServiceError> {
    bounded("layer", layer, MAX_NAME_LEN)?;
    // The number of assets is checked where their use is (its message names the
    // request); the request's size bounds this loop.
    for asset in assets {
        bounded_asset("assets", asset)?;
    }
    if let Some(name) = colormap_name {
        bounded("colormap_name", name, MAX_NAME_LEN)?;
    }
    bounded("expression", expression, crate::render::expr::DEFAULT_MAX_LEN)
}

/// [`bounded_strings`] of a tile request, and its tile matrix set.
pub(super) fn tile_strings(req: &v1::GetTileRequest) -> Result<(), ServiceError> {
    use v1::get_tile_request::Colormap as C;
    bounded("tile_matrix_set", &req.tile_matrix_set, MAX_NAME_LEN)?;
    let colormap_name = match &req.colormap {
        Some(C::ColormapName(name)) => Some(name.as_str()),
        _ => None,
    };
    bounded_strings(&req.layer, &req.assets, colormap_name, &req.expression)
}

/// Request limits, each configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest tile edge in pixels.
    pub max_tile_size: u32,
    /// Most assets in one tile.
    pub max_assets_per_tile: usize,
    /// Most tiles in one GetTiles request.
    pub max_batch_size: usize,
    /// Tiles of one GetTiles or StreamTiles call rendered at once.
    pub stream_concurrency: usize,
    /// Tiles being rendered at once, server-wide.
    pub max_in_flight_tiles: usize,
    /// Largest request message in bytes (refused at the edge, see [`super::EdgeStatusLayer`]).
    pub max_request_size: usize,
    /// Largest encoded response message (one tile) in bytes.
    pub max_response_size: usize,
    /// Tiles being rendered at once for one identified caller (token or certificate).
    pub max_in_flight_per_caller: usize,
    /// Bytes one tile or preview may hold in the front while it renders.
    pub max_request_memory: u64,
    /// Bytes all tiles and previews in flight may hold together.
    pub max_in_flight_memory: u64,
}

impl Limits {
    /// RESOURCE_EXHAUSTED when `response` (`what`: "the tile") is over
    /// `--max-response-size` encoded; `smaller` names the size field to shrink.
    pub(super) fn check_response_size(
        &self,
        what: &str,
        response: &impl prost::Message,
        smaller: &str,
    ) -> Result<(), ServiceError> {
        let size = response.encoded_len();
        if size <= self.max_response_size {
            return Ok(());
        }
        Err(ServiceError::ResourceExhausted {
            message: format!(
                "{what} is {size} bytes encoded, over this server's limit of {} bytes per response (--max-response-size); ask for {smaller}, fewer bands or a compressed format",
                self.max_response_size
            ),
            retry_after: std::time::Duration::ZERO,
        })
    }
}

/// The kernels every field takes, for messages.
const KERNELS: &str = "nearest, bilinear, cubic, cubic_spline, lanczos, average, mode, rms; gauss (resampling only); max, min, med, q1, q3, sum (reproject only)";

/// A public kernel as the worker protocol names it (`Unspecified` stays unspecified).
pub(super) fn kernel(field: &'static str, value: i32) -> Result<worker::Resampling, ServiceError> {
    v1::Resampling::try_from(value)
        .ok()
        .and_then(|k| worker::Resampling::from_str_name(k.as_str_name()))
        .ok_or_else(|| {
            ServiceError::invalid(
                field,
                format!("{field}={value} is not a known kernel; use one of {KERNELS}"),
            )
        })
}

/// The read and warp kernels, checked the way the worker will use them.
fn kernels(req: &v1::GetTileRequest) -> Result<(worker::Resampling, worker::Resampling), ServiceError> {
    let read = match kernel("resampling", req.resampling)? {
        worker::Resampling::Unspecified => worker::Resampling::Nearest,
        k => k,
    };
    let warp = kernel("reproject", req.reproject)?;
    let probe = worker::ReadRequest { resampling: read as i32, reproject: warp as i32, ..Default::default() };
    crate::ipc::read_plan::Kernels::from_request(&probe).map_err(|e| {
        let field = if matches!(e, crate::ipc::read_plan::PlanError::NotAWarpKernel(_)) {
            "reproject"
        } else {
            "resampling"
        };
        ServiceError::invalid(field, e.to_string())
    })?;
    Ok((read, warp))
}

/// The `rescale` ranges of a request.
pub(super) fn rescale_ranges(ranges: &[v1::RescaleRange]) -> Result<Vec<RescaleRange>, ServiceError> {
    ranges
        .iter()
        .map(|r| RescaleRange::new(r.min, r.max))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServiceError::invalid("rescale", e.to_string()))
}

/// A tile request's colormap: a named one, or exact values or intervals.
fn colormap(value: Option<&v1::get_tile_request::Colormap>) -> Result<Option<Colormap>, ServiceError> {
    use v1::get_tile_request::Colormap as C;
    match value {
        None => Ok(None),
        Some(C::ColormapName(name)) => colormap_of(Some(name), None),
        Some(C::CustomColormap(custom)) => colormap_of(None, Some(custom)),
    }
}

/// A colormap named or given (the `colormap` oneof of a tile or preview request).
pub(super) fn colormap_of(
    name: Option<&str>,
    custom: Option<&v1::CustomColormap>,
) -> Result<Option<Colormap>, ServiceError> {
    let invalid = |e: ColormapError| ServiceError::invalid("colormap", e.to_string());
    let rgba = |c: Option<&v1::Rgba>| {
        let c = c.copied().unwrap_or_default();
        Rgba::from_channels(&[i64::from(c.r), i64::from(c.g), i64::from(c.b), i64::from(c.a)])
            .map_err(invalid)
    };
    Ok(Some(match (name, custom) {
        (Some(name), _) => Colormap::named(name).map_err(invalid)?,
        (None, None) => return Ok(None),
        (None, Some(custom)) => match (custom.values.is_empty(), custom.intervals.is_empty()) {
            (false, true) => Colormap::exact(
                custom
                    .values
                    .iter()
                    .map(|e| Ok((e.value, rgba(e.color.as_ref())?)))
                    .collect::<Result<_, _>>()?,
            )
            .map_err(invalid)?,
            (true, false) => Colormap::intervals(
                custom
                    .intervals
                    .iter()
                    .map(|i| Ok((i.min, i.max, rgba(i.color.as_ref())?)))
                    .collect::<Result<_, _>>()?,
            )
            .map_err(invalid)?,
            _ => {
                return Err(ServiceError::invalid(
                    "colormap",
                    "a custom colormap gives either exact values or intervals (one of the two, not empty)",
                ));
            }
        },
    }))
}

/// The output size with the buffer fits the limit; padding and nodata are in range.
fn check_read_window(
    req: &v1::GetTileRequest,
    size: u32,
    buffer_halves: u32,
    limits: &Limits,
) -> Result<(), ServiceError> {
    if size + buffer_halves > limits.max_tile_size {
        return Err(ServiceError::invalid(
            "buffer",
            format!(
                "tile_size {size} plus buffer {} on each side is {} px, over --max-tile-size {}",
                number(req.buffer),
                size + buffer_halves,
                limits.max_tile_size
            ),
        ));
    }
    if req.padding > crate::ipc::read_plan::MAX_PADDING {
        return Err(ServiceError::invalid(
            "padding",
            format!("padding={} is outside 0..={} pixels", req.padding, crate::ipc::read_plan::MAX_PADDING),
        ));
    }
    if req.nodata.is_some_and(f64::is_infinite) {
        return Err(ServiceError::invalid("nodata", "nodata must be a finite number or NaN"));
    }
    Ok(())
}

/// A request's band-math expression (with the request's `bands`, which it replaces),
/// parsed once.
pub(super) fn expression(
    text: &str,
    bands: &[u32],
) -> Result<Option<std::sync::Arc<Expression>>, ServiceError> {
    let expression = match text.trim() {
        "" => None,
        text => {
            if !bands.is_empty() {
                return Err(ServiceError::invalid(
                    "expression",
                    "give either bands or an expression, not both (the expression names its bands)",
                ));
            }
            let parsed = Expression::parse(text, &ExprLimits::default())
                .map_err(|e| ServiceError::invalid("expression", format!("expression {e}")))?;
            Some(std::sync::Arc::new(parsed))
        }
    };
    Ok(expression)
}

/// The pixel selection method of a request.
fn selection(value: i32) -> Result<PixelSelection, ServiceError> {
    use v1::PixelSelection as V;
    Ok(match V::try_from(value) {
        Ok(V::Unspecified | V::First) => PixelSelection::First,
        Ok(V::Highest) => PixelSelection::Highest,
        Ok(V::Lowest) => PixelSelection::Lowest,
        Ok(V::Mean) => PixelSelection::Mean,
        Ok(V::Median) => PixelSelection::Median,
        Ok(V::Stdev) => PixelSelection::Stdev,
        Ok(V::Count) => PixelSelection::Count,
        Ok(V::Lastbandlow) => PixelSelection::LastBandLow,
        Ok(V::Lastbandhigh) => PixelSelection::LastBandHigh,
        Err(_) => {
            let names: Vec<&str> = PixelSelection::ALL.iter().map(|m| m.name()).collect();
            return Err(ServiceError::invalid(
                "pixel_selection",
                format!("pixel_selection={value} is not a known value; use one of {}", names.join(", ")),
            ));
        }
    })
}

/// Output pixels added on each side by `buffer` (a multiple of 0.5), times two.
fn buffer_halves(buffer: f64) -> Result<u32, ServiceError> {
    let halves = buffer * 2.0;
    if !(buffer.is_finite() && (0.0..=f64::from(MAX_BUFFER)).contains(&buffer) && halves.fract() == 0.0) {
        return Err(ServiceError::invalid(
            "buffer",
            format!(
                "buffer={} must be a multiple of 0.5 in 0..={MAX_BUFFER} (pixels on each side)",
                number(buffer)
            ),
        ));
    }
    Ok(halves as u32)
}

pub(super) fn format(value: i32, quality: u32) -> Result<OutputFormat, ServiceError> {
    let q = match quality {
        0 => DEFAULT_QUALITY,
        1..=100 => quality as u8,
        _ => {
            return Err(ServiceError::invalid(
                "quality",
                format!("quality={quality} is outside 1..=100 (0 means {DEFAULT_QUALITY})"),
            ));
        }
    };
    Ok(match v1::ImageFormat::try_from(value) {
        Ok(v1::ImageFormat::Unspecified | v1::ImageFormat::Png) => OutputFormat::Png,
        Ok(v1::ImageFormat::Jpeg) => OutputFormat::Jpeg(q),
        Ok(v1::ImageFormat::Webp) => OutputFormat::Webp(q),
        Ok(v1::ImageFormat::Npy) => OutputFormat::Npy,
        Err(_) => {
            return Err(ServiceError::invalid(
                "format",
                format!("format={value} is not a known value; use PNG, JPEG, WEBP or NPY"),
            ));
        }
    })
}

impl TileRequest {
    /// Checks a request against the limits and the server's tile matrix sets, and
    /// resolves its assets.
    pub fn parse(
        req: &v1::GetTileRequest,
        limits: &Limits,
        resolver: &AssetResolver,
        sets: &TileMatrixSets,
    ) -> Result<Self, ServiceError> {
        let tms = sets.get(&req.tile_matrix_set).ok_or_else(|| {
            ServiceError::invalid(
                "tile_matrix_set",
                format!(
                    "tile matrix set {} is not served here; use one of {} (empty means WebMercatorQuad)",
                    quote(&req.tile_matrix_set),
                    sets.names()
                ),
            )
        })?;
        let tile = tms.tile(req.z, req.x, req.y).map_err(|e| {
            let field = match e {
                crate::tms::TileError::Zoom { .. } => "z",
                crate::tms::TileError::Coordinate { axis: "x", .. } => "x",
                _ => "y",
            };
            ServiceError::invalid(field, e.to_string())
        })?;
        // The default is the set's tile size (256 for the built-in sets), and obeys the
        // limit too: a server limited below it serves its limit.
        let default_size = tms.tile_size(tile.z).0.min(limits.max_tile_size);
        let size = match req.tile_size {
            0 => default_size,
            s if s <= limits.max_tile_size => s,
            s => {
                return Err(ServiceError::invalid(
                    "tile_size",
                    format!("tile_size={s} is outside 1..={} (0 means {default_size})", limits.max_tile_size),
                ));
            }
        };
        if req.assets.is_empty() {
            return Err(ServiceError::invalid("assets", "no assets: give at least one asset path"));
        }
        if req.assets.len() > limits.max_assets_per_tile {
            return Err(ServiceError::invalid(
                "assets",
                format!(
                    "{} assets in one tile exceed the limit of {}",
                    req.assets.len(),
                    limits.max_assets_per_tile
                ),
            ));
        }
        if let Some(b) = req.bands.iter().find(|b| **b == 0) {
            return Err(ServiceError::invalid("bands", format!("band {b} is invalid: bands are 1-based")));
        }
        let format = format(req.format, req.quality)?;
        let (resampling, reproject) = kernels(req)?;
        let buffer_halves = buffer_halves(req.buffer)?;
        check_read_window(req, size, buffer_halves, limits)?;
        let expression = expression(&req.expression, &req.bands)?;
        let selection = selection(req.pixel_selection)?;
        let rescale = rescale_ranges(&req.rescale)?;
        let colormap = colormap(req.colormap.as_ref())?.map(std::sync::Arc::new);
        let assets = req.assets.iter().map(|a| resolver.resolve(a)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            tile,
            size,
            assets,
            bands: req.bands.clone(),
            resampling,
            reproject,
            format,
            expression,
            nodata: req.nodata,
            buffer_halves,
            padding: req.padding,
            selection,
            rescale,
            colormap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the request_validation fuzz target: with --max-tile-size under 256, a
    /// request that leaves tile_size at 0 got a 256 px tile, over the limit.
    #[test]
    fn default_tile_size_obeys_a_smaller_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.tif"), b"x").unwrap();
        let resolver = AssetResolver::new(dir.path()).unwrap();
        let limits = Limits {
            max_tile_size: 128,
            max_assets_per_tile: 1,
            max_batch_size: 1,
            stream_concurrency: 1,
            max_in_flight_tiles: 1,
            max_request_size: 1 << 20,
            max_response_size: 1 << 20,
            max_in_flight_per_caller: 1,
            max_request_memory: 1 << 20,
            max_in_flight_memory: 1 << 20,
        };
        let req = v1::GetTileRequest { assets: vec!["a.tif".into()], ..Default::default() };
        assert_eq!(
            TileRequest::parse(&req, &limits, &resolver, &TileMatrixSets::default()).unwrap().size,
            128
        );
        let big = v1::GetTileRequest { tile_size: 129, ..req };
        let e = TileRequest::parse(&big, &limits, &resolver, &TileMatrixSets::default()).unwrap_err();
        assert_eq!(e.to_string(), "tile_size=129 is outside 1..=128 (0 means 128)");
    }
}
