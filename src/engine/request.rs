//! A tile request as the engine takes it: checked once at the edge (`crate::api`), so
//! nothing here can be invalid; and the shape of a rendered image after rescale and a
//! colormap, a rule the edge checks and the engine applies.

use std::sync::Arc;

use crate::{
    error::ServiceError,
    mosaic::{Asset, PixelSelection},
    pb::worker,
    render::{DataType, OutputFormat, colormap::Colormap, expr::Expression, rescale::RescaleRange},
    tms::TileId,
};

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
    /// Kernel of the read from the chosen overview.
    pub resampling: worker::Resampling,
    /// Kernel of the warp; unspecified = nearest (the worker resolves it).
    pub reproject: worker::Resampling,
    /// Encoding.
    pub format: OutputFormat,
    /// Band math over each asset's bands, applied before the assets are combined.
    pub expression: Option<Arc<Expression>>,
    /// The assets' nodata value, instead of the files'.
    pub nodata: Option<f64>,
    /// Output pixels added on each side, times two (`buffer` is in half pixels).
    pub buffer_halves: u32,
    /// Read-window padding in pixels on each side.
    pub padding: u32,
    /// How the assets combine.
    pub selection: PixelSelection,
    /// Linear rescale of the combined bands to uint8: one range, or one per band.
    pub rescale: Vec<RescaleRange>,
    /// Colormap of the (single-band) result.
    pub colormap: Option<Arc<Colormap>>,
}

impl TileRequest {
    /// Width and height of the output: the tile size plus the buffer on both sides.
    #[must_use]
    pub fn out_size(&self) -> u32 {
        self.size + self.buffer_halves
    }

    /// The area read: the tile's bounds widened by the buffer (in output pixels).
    #[must_use]
    pub fn read_bounds(&self) -> crate::tms::BBox {
        let b = self.tile.bounds();
        let pixel = (b.max_x - b.min_x) / f64::from(self.size);
        let pad = pixel * f64::from(self.buffer_halves) / 2.0;
        crate::tms::BBox {
            min_x: b.min_x - pad,
            min_y: b.min_y - pad,
            max_x: b.max_x + pad,
            max_y: b.max_y + pad,
        }
    }
}

/// The type and band count of an image of `bands` bands of `dtype` after `rescale`
/// (uint8) and a colormap (uint8 RGB), or why the two do not fit it. `what` names the
/// image in messages ("tile", "preview").
pub fn after_rescale_and_colormap(
    (dtype, bands): (DataType, usize),
    rescale: &[RescaleRange],
    colormap: bool,
    what: &str,
) -> Result<(DataType, usize), ServiceError> {
    let mut out = (dtype, bands);
    if !rescale.is_empty() {
        if rescale.len() != 1 && rescale.len() != bands {
            return Err(ServiceError::invalid(
                "rescale",
                format!(
                    "{} rescale ranges for {bands} bands: give one range for all bands or one per band",
                    rescale.len()
                ),
            ));
        }
        out.0 = DataType::U8;
    }
    if colormap {
        if bands != 1 {
            return Err(ServiceError::invalid(
                "colormap",
                format!(
                    "a colormap applies to one band; the {what} has {bands} (choose one band with `bands` or an expression)"
                ),
            ));
        }
        out = (DataType::U8, 3);
    }
    Ok(out)
}
