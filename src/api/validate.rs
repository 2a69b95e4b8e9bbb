//! Protobuf requests → domain types, once, at the edge. Everything behind this module
//! works with values that cannot be invalid.

use crate::{
    error::ServiceError,
    mosaic::{Asset, AssetResolver},
    pb::{v1, worker},
    render::OutputFormat,
    tms::{TileId, TileMatrixSets},
};

/// Default tile edge in pixels when the request says 0.
pub const DEFAULT_TILE_SIZE: u32 = 256;
/// Default quality for JPEG and WebP.
pub const DEFAULT_QUALITY: u8 = 85;

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
    /// Largest encoded response message (one tile) in bytes.
    pub max_response_size: usize,
    /// Tiles being rendered at once for one identified caller (token or certificate).
    pub max_in_flight_per_caller: usize,
}

/// A checked tile request.
#[derive(Debug, Clone)]
pub struct TileRequest {
    /// Which tile.
    pub tile: TileId,
    /// Edge in pixels.
    pub size: u32,
    /// Assets in priority order.
    pub assets: Vec<Asset>,
    /// 1-based data bands; empty = all.
    pub bands: Vec<u32>,
    /// Resampling kernel.
    pub resampling: worker::Resampling,
    /// Encoding.
    pub format: OutputFormat,
}

fn resampling(value: i32) -> Result<worker::Resampling, ServiceError> {
    use v1::Resampling as R;
    use worker::Resampling as W;
    Ok(match R::try_from(value) {
        Ok(R::Unspecified | R::Nearest) => W::Nearest,
        Ok(R::Bilinear) => W::Bilinear,
        Ok(R::Cubic) => W::Cubic,
        Ok(R::CubicSpline) => W::CubicSpline,
        Ok(R::Lanczos) => W::Lanczos,
        Ok(R::Average) => W::Average,
        Ok(R::Mode) => W::Mode,
        Ok(other) => {
            return Err(ServiceError::invalid(
                "resampling",
                format!(
                    "resampling {} is not available yet; use nearest, bilinear, cubic, cubic_spline, lanczos, average or mode",
                    other.as_str_name()
                ),
            ));
        }
        Err(_) => {
            return Err(ServiceError::invalid(
                "resampling",
                format!(
                    "resampling={value} is not a known value; use nearest, bilinear, cubic, cubic_spline, lanczos, average or mode"
                ),
            ));
        }
    })
}

fn format(value: i32, quality: u32) -> Result<OutputFormat, ServiceError> {
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
                    "tile matrix set '{}' is not served here; use one of {} (empty means WebMercatorQuad)",
                    req.tile_matrix_set,
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
        let resampling = resampling(req.resampling)?;
        if !matches!(
            v1::PixelSelection::try_from(req.pixel_selection),
            Ok(v1::PixelSelection::Unspecified | v1::PixelSelection::First)
        ) {
            return Err(ServiceError::invalid(
                "pixel_selection",
                format!("pixel_selection={} is not a known value; use FIRST", req.pixel_selection),
            ));
        }
        for (field, set) in [
            ("expression", !req.expression.is_empty()),
            ("rescale", !req.rescale.is_empty()),
            ("colormap", req.colormap.is_some()),
            ("nodata", req.nodata.is_some()),
            ("buffer", req.buffer != 0.0),
            ("padding", req.padding != 0),
            ("reproject", req.reproject != 0),
        ] {
            if set {
                return Err(ServiceError::invalid(field, format!("{field} is not available yet")));
            }
        }
        let assets = req.assets.iter().map(|a| resolver.resolve(a)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { tile, size, assets, bands: req.bands.clone(), resampling, format })
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
            max_response_size: 1 << 20,
            max_in_flight_per_caller: 1,
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
