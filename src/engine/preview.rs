//! A preview: the whole asset at a bounded size, read by one worker job and then
//! treated as a tile is (expression, rescale, colormap, encoding), with its memory
//! reserved from the asset's description before the read.

use std::sync::Arc;

use super::{
    TileRenderer,
    budget::{MemoryBudget, RenderShape},
    request::after_rescale_and_colormap,
    tile::evaluate_expression,
};
use crate::{
    echo::quote,
    error::ServiceError,
    ipc::read_plan::output_size,
    mosaic::{Asset, AssetInfo},
    pb::worker::{PreviewRequest, worker_request::Job, worker_response},
    render::{
        DataType, OutputFormat, Raster, check_encodable, colormap::Colormap, encode, expr::Expression,
        rescale::RescaleRange,
    },
};

/// A checked preview request.
#[derive(Debug)]
pub struct Preview {
    /// The asset.
    pub asset: Asset,
    /// The worker's job (its bands are those an expression names).
    pub job: PreviewRequest,
    /// Encoding.
    pub format: OutputFormat,
    /// Band math over the asset's bands.
    pub expression: Option<Arc<Expression>>,
    /// Linear rescale to uint8: one range, or one per band.
    pub rescale: Vec<RescaleRange>,
    /// Colormap of the (single-band) result.
    pub colormap: Option<Colormap>,
}

/// A rendered preview and the description of its asset.
#[derive(Debug)]
pub struct RenderedPreview {
    /// The asset's description.
    pub info: Arc<AssetInfo>,
    /// The encoded image.
    pub data: Vec<u8>,
    /// The validity mask (NPY only).
    pub mask: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The type of the encoded image.
    pub dtype: DataType,
    /// Its bands.
    pub band_count: usize,
}

fn unexpected(asset: &Asset) -> ServiceError {
    ServiceError::Internal(format!(
        "worker answered a preview job about {} with something else",
        quote(&asset.name)
    ))
}

/// What a preview will hold, from the request and the asset's description, before the
/// read: the worker's output size (rio-tiler's rule), `read_bands` of the asset's type,
/// the expression's outputs, and the image `out` encoded.
fn preview_shape(
    info: &AssetInfo,
    job: &PreviewRequest,
    expression: Option<&Expression>,
    read_bands: usize,
    out: (DataType, usize),
) -> RenderShape {
    let (width, height) = output_size(
        (info.info.width as usize, info.info.height as usize),
        job.width,
        job.height,
        job.max_size,
    );
    RenderShape {
        width: width as u64,
        height: height as u64,
        assets: 1,
        read: (info.dtype, read_bands),
        expression_outputs: expression.map(Expression::outputs),
        selected: match expression {
            Some(e) => (e.output_dtype(info.dtype).storage(), e.outputs()),
            None => (info.dtype, read_bands),
        },
        out,
    }
}

impl TileRenderer {
    /// Renders `preview` within `budget` (and, for NPY, `max_response_size` bytes).
    pub async fn preview(
        &self,
        preview: Preview,
        budget: &MemoryBudget,
        max_response_size: usize,
        deadline: tokio::time::Instant,
    ) -> Result<RenderedPreview, ServiceError> {
        let Preview { asset, job, format, expression, rescale, colormap } = preview;
        // The description (cached) says what the image will hold before anything is read.
        let info = self.info(&asset, deadline).await?;
        if let Some(e) = &expression {
            e.check_bands(info.data_bands).map_err(|e| {
                ServiceError::invalid(
                    "expression",
                    format!(
                        "expression {e} (asset {} has data bands 1..={})",
                        quote(&asset.name),
                        info.data_bands
                    ),
                )
            })?;
        } else if let Some(b) = job.bands.iter().find(|b| **b as usize > info.data_bands) {
            return Err(ServiceError::invalid(
                "bands",
                format!(
                    "band {b} does not exist in asset {}, which has data bands 1..={}",
                    quote(&asset.name),
                    info.data_bands
                ),
            ));
        }
        let read_bands = if job.bands.is_empty() { info.data_bands } else { job.bands.len() };
        let (dtype, band_count) = after_rescale_and_colormap(
            match &expression {
                Some(e) => (e.output_dtype(info.dtype).storage(), e.outputs()),
                None => (info.dtype, read_bands),
            },
            &rescale,
            colormap.is_some(),
            "preview",
        )?;
        check_encodable(format, dtype, band_count)
            .map_err(|e| ServiceError::invalid("format", e.to_string()))?;

        let shape = preview_shape(&info, &job, expression.as_deref(), read_bands, (dtype, band_count));
        let smaller = "a smaller max_size, width or height";
        if format == OutputFormat::Npy {
            MemoryBudget::check_raw_size("the preview", &shape, max_response_size, smaller)?;
        }
        let _reservation = budget.reserve("the preview", &shape, smaller)?;

        let read_band_numbers: Vec<u32> = job.bands.clone();
        let worker_response::Result::Preview(r) =
            self.run_job("asset preview", &asset, Job::Preview(job), deadline).await?
        else {
            return Err(unexpected(&asset));
        };
        let raster = Raster {
            dtype: DataType::from_worker(r.dtype).ok_or_else(|| unexpected(&asset))?,
            bands: r.band_count as usize,
            width: r.width as usize,
            height: r.height as usize,
            pixels: r.pixels,
            mask: r.mask,
        };
        if !(raster.is_consistent() && raster.dtype == info.dtype && raster.bands == read_bands) {
            return Err(ServiceError::Internal(format!(
                "worker returned a malformed preview of {}",
                quote(&asset.name)
            )));
        }
        let (width, height) = (r.width, r.height);
        let (data, mask) = tokio::task::spawn_blocking(move || {
            let mut raster = match &expression {
                Some(e) => evaluate_expression(e, &raster, &read_band_numbers)?,
                None => raster,
            };
            if !rescale.is_empty() {
                raster = crate::render::rescale::rescale(&raster, &rescale)
                    .map_err(|e| ServiceError::Internal(format!("rescale: {e}")))?;
            }
            if let Some(colormap) = &colormap {
                raster =
                    colormap.apply(&raster).map_err(|e| ServiceError::Internal(format!("colormap: {e}")))?;
            }
            encode(&raster, format).map_err(|e| ServiceError::Internal(e.to_string()))
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("encoder task failed: {e}")))??;
        Ok(RenderedPreview { info, data, mask, width, height, dtype, band_count })
    }
}
