//! Reads some bands of an asset in its own grid — a window, at an output size, through
//! overviews with a resampling kernel (GDAL's `RasterIO`) — and decides which pixels are
//! valid the way rio-tiler's `reader.read` does when nothing is reprojected:
//! - with a nodata value (the request's override, else band 1's): a pixel is valid
//!   unless it equals nodata (NaN matches NaN; `float32` bands compare in single
//!   precision, as NumPy does);
//! - else with an alpha band: valid where the alpha, read the same way, is opaque (the
//!   largest value of its type);
//! - else: valid where the band's GDAL mask band, read the same way, is non-zero (all
//!   valid for an asset without a mask).
//!
//! Shared by the point, statistics and preview jobs.

use gdal::{
    Dataset, Metadata as _,
    raster::{ColorInterpretation, GdalType, RasterBand, ResampleAlg},
};

use crate::worker::{
    grid::Window,
    read::{JobError, data_bands, data_type, first_band},
};
use crate::{
    ipc::read_plan::gdal_name,
    pb::worker::{DataType, ErrorKind, Resampling},
};

/// Most bytes of pixels (native type, all bands) one read may produce: what fits in a
/// frame to the front.
const MAX_READ_BYTES: usize = crate::ipc::MAX_FRAME_LEN / 2;

/// Pixels of some bands with their validity, band-sequential and row-major.
pub struct MaskedPixels {
    /// Pixel type.
    pub dtype: DataType,
    /// All bands' values in their native type and byte order.
    pub native: Vec<u8>,
    /// Each band's values, converted exactly to `f64`.
    pub values: Vec<Vec<f64>>,
    /// Each band's validity.
    pub valid: Vec<Vec<bool>>,
    /// The nodata value in force.
    pub nodata: Option<f64>,
}

/// One band a job reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectedBand {
    /// 1-based index among the asset's data bands, as requests count them.
    pub index: u32,
    /// 1-based GDAL band index.
    pub gdal_index: usize,
}

/// The data bands a request names (empty = all), refused with [`ErrorKind::Invalid`]
/// when one does not exist.
pub fn select_bands(ds: &Dataset, requested: &[u32]) -> Result<Vec<SelectedBand>, JobError> {
    let data = data_bands(ds)?;
    let indexes: Vec<u32> =
        if requested.is_empty() { (1..=data.len() as u32).collect() } else { requested.to_vec() };
    indexes
        .into_iter()
        .map(|index| match data.get((index as usize).wrapping_sub(1)) {
            Some(gdal_index) if index > 0 => Ok(SelectedBand { index, gdal_index: *gdal_index }),
            _ => Err(JobError::new(
                ErrorKind::Invalid,
                format!("band {index} does not exist: the asset has data bands 1..={}", data.len()),
            )),
        })
        .collect()
}

/// A band's description, or `b<index>` (rio-tiler's band description).
#[must_use]
pub fn band_description(ds: &Dataset, band: SelectedBand) -> String {
    ds.rasterband(band.gdal_index)
        .ok()
        .and_then(|b| b.description().ok())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| format!("b{}", band.index))
}

/// The `RasterIO` kernel for a protocol resampling; [`ErrorKind::Invalid`] for kernels
/// only the warper has.
pub fn raster_io_algorithm(resampling: i32) -> Result<ResampleAlg, JobError> {
    let resampling = Resampling::try_from(resampling).unwrap_or(Resampling::Nearest);
    Ok(match gdal_name(resampling) {
        "near" => ResampleAlg::NearestNeighbour,
        "bilinear" => ResampleAlg::Bilinear,
        "cubic" => ResampleAlg::Cubic,
        "cubicspline" => ResampleAlg::CubicSpline,
        "lanczos" => ResampleAlg::Lanczos,
        "average" => ResampleAlg::Average,
        "mode" => ResampleAlg::Mode,
        "gauss" => ResampleAlg::Gauss,
        other => {
            return Err(JobError::new(
                ErrorKind::Invalid,
                format!("resampling '{other}' is not available when reading through overviews"),
            ));
        }
    })
}

/// A sample type GDAL reads into.
trait Sample: GdalType + Copy + Into<f64> {
    fn put_ne_bytes(self, out: &mut Vec<u8>);
}

macro_rules! samples {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            fn put_ne_bytes(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_ne_bytes());
            }
        }
    )*};
}
samples!(u8, u16, i16, u32, i32, f32, f64);

/// Where and how big one read is.
#[derive(Debug, Clone, Copy)]
pub struct ReadShape {
    /// Source window at full resolution.
    pub window: Window,
    /// Output (width, height).
    pub size: (usize, usize),
    /// Resampling kernel.
    pub algorithm: ResampleAlg,
}

fn read_samples<T: Sample>(
    band: &RasterBand,
    shape: ReadShape,
    native: &mut Vec<u8>,
) -> Result<Vec<f64>, String> {
    let w = shape.window;
    let buffer = band
        .read_as::<T>(
            (w.col as isize, w.row as isize),
            (w.width, w.height),
            shape.size,
            Some(shape.algorithm),
        )
        .map_err(|e| e.to_string())?;
    let (_, data) = buffer.into_shape_and_vec();
    native.reserve(data.len() * std::mem::size_of::<T>());
    Ok(data
        .into_iter()
        .map(|v| {
            v.put_ne_bytes(native);
            v.into()
        })
        .collect())
}

/// Reads `band` in its type `dtype`, appending the native bytes; returns the values.
fn read_band(
    band: &RasterBand,
    dtype: DataType,
    shape: ReadShape,
    native: &mut Vec<u8>,
) -> Result<Vec<f64>, String> {
    match dtype {
        DataType::Uint8 => read_samples::<u8>(band, shape, native),
        DataType::Uint16 => read_samples::<u16>(band, shape, native),
        DataType::Int16 => read_samples::<i16>(band, shape, native),
        DataType::Uint32 => read_samples::<u32>(band, shape, native),
        DataType::Int32 => read_samples::<i32>(band, shape, native),
        DataType::Float32 => read_samples::<f32>(band, shape, native),
        DataType::Float64 => read_samples::<f64>(band, shape, native),
        // Signed bytes are a GeoTIFF's bytes read as they are (GDAL 3.6 has no Int8).
        DataType::Int8 => read_samples::<u8>(band, shape, native)
            .map(|values| values.into_iter().map(|v| f64::from(i8::from_ne_bytes([v as u8]))).collect()),
        DataType::Unspecified => Err(format!("data type {dtype:?} is not supported")),
    }
}

/// Whether `value` is the nodata value, compared as NumPy compares a band of `dtype`
/// with a Python float.
#[must_use]
#[allow(clippy::float_cmp)] // nodata is an exact value; exactness is the point
pub fn is_nodata(value: f64, nodata: f64, dtype: DataType) -> bool {
    if nodata.is_nan() {
        value.is_nan()
    } else if dtype == DataType::Float32 {
        value as f32 == nodata as f32
    } else {
        value == nodata
    }
}

/// The largest value of a type: an opaque alpha.
fn opaque(dtype: DataType) -> f64 {
    match dtype {
        DataType::Uint8 => f64::from(u8::MAX),
        DataType::Uint16 => f64::from(u16::MAX),
        DataType::Int16 => f64::from(i16::MAX),
        DataType::Uint32 => f64::from(u32::MAX),
        DataType::Int32 => f64::from(i32::MAX),
        DataType::Float32 => f64::from(f32::MAX),
        DataType::Int8 => f64::from(i8::MAX),
        DataType::Float64 | DataType::Unspecified => f64::MAX,
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> JobError {
    JobError::gdal(ErrorKind::ReadFailed, what, e)
}

/// Reads `bands` with the validity rules of the module docs.
pub fn read_masked(
    ds: &Dataset,
    bands: &[SelectedBand],
    shape: ReadShape,
    nodata_override: Option<f64>,
) -> Result<MaskedPixels, JobError> {
    let (first_band, _, dtype, type_size) = first_band(ds)?;
    let (width, height) = shape.size;
    let bytes = width.saturating_mul(height).saturating_mul(bands.len()).saturating_mul(type_size);
    if bytes > MAX_READ_BYTES {
        return Err(JobError::new(
            ErrorKind::Invalid,
            format!(
                "a read of {width} x {height} pixels x {} bands is larger than this server returns",
                bands.len()
            ),
        ));
    }
    let nodata = nodata_override.or_else(|| first_band.no_data_value());

    crate::worker::gdal_errors::clear();
    let mut native = Vec::with_capacity(bytes);
    let mut values = Vec::with_capacity(bands.len());
    for b in bands {
        let band = ds.rasterband(b.gdal_index).map_err(|e| failed("cannot open a band", e))?;
        values.push(read_band(&band, dtype, shape, &mut native).map_err(|e| failed("reading pixels", e))?);
    }
    let valid = if let Some(nodata) = nodata {
        values.iter().map(|v| v.iter().map(|x| !is_nodata(*x, nodata, dtype)).collect()).collect()
    } else if let Some(alpha) = alpha_band(ds) {
        let alpha_type = data_type(alpha.band_type()).map_or(DataType::Uint8, |(t, _)| t);
        let alpha_values = read_band(&alpha, alpha_type, shape, &mut Vec::new())
            .map_err(|e| failed("reading the alpha band", e))?;
        let opaque = opaque(alpha_type);
        #[allow(clippy::float_cmp)] // only the exact largest value is opaque
        let mask: Vec<bool> = alpha_values.iter().map(|a| *a == opaque).collect();
        vec![mask; bands.len()]
    } else {
        let mut valid = Vec::with_capacity(bands.len());
        for b in bands {
            let band = ds.rasterband(b.gdal_index).map_err(|e| failed("cannot open a band", e))?;
            let mask_band = band.open_mask_band().map_err(|e| failed("cannot open the mask band", e))?;
            let mask = read_band(&mask_band, DataType::Uint8, shape, &mut Vec::new())
                .map_err(|e| failed("reading the mask band", e))?;
            valid.push(mask.iter().map(|m| *m != 0.0).collect());
        }
        valid
    };
    if let Some(msg) = crate::worker::gdal_errors::take() {
        return Err(JobError::new(ErrorKind::ReadFailed, format!("read failed: {msg}")));
    }
    Ok(MaskedPixels { dtype, native, values, valid, nodata })
}

/// The asset's first alpha band, if any.
fn alpha_band(ds: &Dataset) -> Option<RasterBand<'_>> {
    (1..=ds.raster_count())
        .filter_map(|i| ds.rasterband(i).ok())
        .find(|b| b.color_interpretation() == ColorInterpretation::AlphaBand)
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values from the Python oracle are the point
mod tests {
    use super::*;

    #[test]
    fn nodata_compares_as_numpy_does() {
        // numpy.array([0.1], dtype="float32") == 0.1 -> True in NumPy 2 (the Python
        // float is cast to float32); a float64 band compares exactly.
        assert!(is_nodata(f64::from(0.1f32), 0.1, DataType::Float32));
        assert!(!is_nodata(f64::from(0.1f32), 0.1, DataType::Float64));
        assert!(is_nodata(f64::NAN, f64::NAN, DataType::Float32));
        assert!(!is_nodata(0.0, f64::NAN, DataType::Float64));
        assert!(is_nodata(255.0, 255.0, DataType::Uint8));
    }

    #[test]
    fn protocol_kernels_map_to_raster_io_kernels() {
        assert_eq!(raster_io_algorithm(Resampling::Average as i32).unwrap(), ResampleAlg::Average);
        assert_eq!(raster_io_algorithm(0).unwrap(), ResampleAlg::NearestNeighbour);
        // Exactly the kernels the kernel table lets a decimated read have.
        for kernel in crate::ipc::read_plan::all_kernels() {
            assert_eq!(
                raster_io_algorithm(kernel as i32).is_ok(),
                kernel == Resampling::Unspecified || crate::ipc::read_plan::is_decimated_read_kernel(kernel),
                "{kernel:?}"
            );
        }
    }
}
