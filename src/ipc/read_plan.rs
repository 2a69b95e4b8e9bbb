//! How a [`ReadRequest`] becomes one `gdalwarp` call, and what is done to its output:
//! the two kernels, the padded grid and its crop, the nodata override.
//!
//! Theory of operation. rio-tiler reads a tile through a warped VRT built with its
//! `reproject_method`, then reads that VRT at the tile's size with its
//! `resampling_method`. Tessera runs a single `gdalwarp` straight onto the tile grid, so
//! it has room for one kernel: the warp kernel (`reproject`, nearest when unset, as
//! rio-tiler's `reproject_method` defaults to nearest whatever `resampling_method` is).
//! Measured against rio-tiler 9.4.12, that is the kernel its tiles are made with:
//! at and beyond native resolution the VRT grid is the tile grid and the read is 1:1;
//! when decimating, GDAL warps the VRT directly at the requested size with the warp
//! kernel unless the read kernel is nearest. The read kernel is still checked (a
//! warp-only kernel there is refused, as rasterio refuses it) so a request means the
//! same thing here as in rio-tiler.
//!
//! Padding widens the warped grid by whole target pixels on each side, at the same
//! resolution, and the centre is cropped back out: the pixels of the tile sit at the
//! same coordinates with or without it.

use crate::pb::worker::{DataType, ReadRequest, Resampling};

/// Most pixels of padding a read may ask for on each side. Kernels reach a few source
/// pixels (lanczos: 3); more padding only costs warp time and memory.
pub const MAX_PADDING: u32 = 64;

/// Why a read request cannot be planned. Every variant is the caller's mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A kernel number this worker does not know.
    #[error("{field}={value} is not a known resampling kernel")]
    UnknownKernel {
        /// `resampling` or `reproject`.
        field: &'static str,
        /// The number received.
        value: i32,
    },
    /// A warp-only kernel asked for as the read kernel.
    #[error("resampling={0} is a warp kernel, not a read kernel: ask for it as reproject")]
    NotAReadKernel(String),
    /// A read-only kernel asked for as the warp kernel.
    #[error("reproject={0} is not a warp kernel: GDAL's warper has no {0}")]
    NotAWarpKernel(String),
    /// More padding than [`MAX_PADDING`].
    #[error("padding={0} is more than {MAX_PADDING} pixels")]
    PaddingTooLarge(u32),
    /// A target grid without pixels.
    #[error("the target grid is {0}x{1} pixels; both must be at least 1")]
    EmptyGrid(u32, u32),
    /// A target grid whose padded size does not fit.
    #[error("the target grid {0}x{1} with padding {2} is too large")]
    GridTooLarge(u32, u32, u32),
}

/// The name the API and rio-tiler give a kernel ("cubic_spline").
#[must_use]
pub fn kernel_name(kernel: Resampling) -> String {
    kernel.as_str_name().trim_start_matches("RESAMPLING_").to_ascii_lowercase()
}

/// What GDAL 3.6 does with one kernel.
struct KernelRow {
    kernel: Resampling,
    /// The name `gdalwarp -r` and `OVERVIEW_RESAMPLING` take.
    gdal: &'static str,
    /// GDAL's RasterIO resamples a read with it (rasterio refuses the others for reads:
    /// "can be used for warp operations but not for reads").
    read: bool,
    /// GDAL's warper has it (`gdalwarp -r gauss` is "Unknown resampling method").
    warp: bool,
    /// A decimated read through overviews (statistics, previews) takes it: the gdal
    /// crate's RasterIO kernels, which lack rms.
    decimated: bool,
}

/// Every kernel, in one table: the worker's GDAL enums
/// (`worker::read::warp_kernel`, `worker::jobs::masked_read::raster_io_algorithm`) are
/// tested against it, and the API's checks read it.
const KERNELS: [KernelRow; 15] = {
    const fn row(
        kernel: Resampling,
        gdal: &'static str,
        read: bool,
        warp: bool,
        decimated: bool,
    ) -> KernelRow {
        KernelRow { kernel, gdal, read, warp, decimated }
    }
    use Resampling as R;
    [
        row(R::Nearest, "near", true, true, true),
        row(R::Bilinear, "bilinear", true, true, true),
        row(R::Cubic, "cubic", true, true, true),
        row(R::CubicSpline, "cubicspline", true, true, true),
        row(R::Lanczos, "lanczos", true, true, true),
        row(R::Average, "average", true, true, true),
        row(R::Mode, "mode", true, true, true),
        row(R::Gauss, "gauss", true, false, true),
        row(R::Rms, "rms", true, true, false),
        row(R::Max, "max", false, true, false),
        row(R::Min, "min", false, true, false),
        row(R::Med, "med", false, true, false),
        row(R::Q1, "q1", false, true, false),
        row(R::Q3, "q3", false, true, false),
        row(R::Sum, "sum", false, true, false),
    ]
};

/// `kernel`'s row; unspecified is nearest.
fn kernel_row(kernel: Resampling) -> &'static KernelRow {
    KERNELS.iter().find(|r| r.kernel == kernel).unwrap_or(&KERNELS[0])
}

/// The name `gdalwarp -r` takes for a kernel.
#[must_use]
pub fn gdal_name(kernel: Resampling) -> &'static str {
    kernel_row(kernel).gdal
}

/// Whether GDAL's RasterIO resamples a read with this kernel.
#[must_use]
pub fn is_read_kernel(kernel: Resampling) -> bool {
    kernel_row(kernel).read
}

/// Whether GDAL 3.6's warper has this kernel.
#[must_use]
pub fn is_warp_kernel(kernel: Resampling) -> bool {
    kernel_row(kernel).warp
}

/// Whether a decimated read through overviews (statistics, previews) takes this kernel.
#[must_use]
pub fn is_decimated_read_kernel(kernel: Resampling) -> bool {
    kernel_row(kernel).decimated
}

/// The kernels a decimated read takes, by their API names: "nearest, bilinear, ...".
#[must_use]
pub fn decimated_read_kernels() -> String {
    KERNELS.iter().filter(|r| r.decimated).map(|r| kernel_name(r.kernel)).collect::<Vec<_>>().join(", ")
}

/// The two kernels of a read, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    /// The read kernel (rio-tiler's `resampling_method`); never a warp-only kernel.
    pub read: Resampling,
    /// The kernel `gdalwarp` runs with (rio-tiler's `reproject_method`); never a
    /// read-only kernel.
    pub warp: Resampling,
}

impl Kernels {
    /// Whether the read kernel is nearest (GDAL then allows 20% oversampling when it
    /// picks an overview).
    #[must_use]
    pub fn read_is_nearest(&self) -> bool {
        matches!(self.read, Resampling::Nearest | Resampling::Unspecified)
    }

    /// The kernels a request asks for: unspecified `resampling` and unspecified
    /// `reproject` are each nearest, as in rio-tiler, independently of each other (so
    /// a read-only read kernel such as gauss warps with nearest unless told otherwise).
    pub fn from_request(req: &ReadRequest) -> Result<Self, PlanError> {
        let known =
            |field, value| Resampling::try_from(value).map_err(|_| PlanError::UnknownKernel { field, value });
        let read = match known("resampling", req.resampling)? {
            Resampling::Unspecified => Resampling::Nearest,
            k => k,
        };
        if !is_read_kernel(read) {
            return Err(PlanError::NotAReadKernel(kernel_name(read)));
        }
        let warp = match known("reproject", req.reproject)? {
            Resampling::Unspecified => Resampling::Nearest,
            k if !is_warp_kernel(k) => return Err(PlanError::NotAWarpKernel(kernel_name(k))),
            k => k,
        };
        Ok(Self { read, warp })
    }
}

/// A target grid: bounds in the target CRS and a size in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// West edge.
    pub min_x: f64,
    /// South edge.
    pub min_y: f64,
    /// East edge.
    pub max_x: f64,
    /// North edge.
    pub max_y: f64,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

impl Grid {
    /// The grid of a request.
    #[must_use]
    pub fn of(req: &ReadRequest) -> Self {
        Self {
            min_x: req.min_x,
            min_y: req.min_y,
            max_x: req.max_x,
            max_y: req.max_y,
            width: req.width,
            height: req.height,
        }
    }

    /// This grid with `padding` more pixels of the same size on each side. Padding 0 is
    /// the grid itself, bit for bit.
    pub fn padded(&self, padding: u32) -> Result<Self, PlanError> {
        if padding == 0 {
            return Ok(*self);
        }
        let too_large = || PlanError::GridTooLarge(self.width, self.height, padding);
        let width = padding.checked_mul(2).and_then(|p| p.checked_add(self.width)).ok_or_else(too_large)?;
        let height = padding.checked_mul(2).and_then(|p| p.checked_add(self.height)).ok_or_else(too_large)?;
        let pad_x = f64::from(padding) * (self.max_x - self.min_x) / f64::from(self.width);
        let pad_y = f64::from(padding) * (self.max_y - self.min_y) / f64::from(self.height);
        Ok(Self {
            min_x: self.min_x - pad_x,
            min_y: self.min_y - pad_y,
            max_x: self.max_x + pad_x,
            max_y: self.max_y + pad_y,
            width,
            height,
        })
    }

    /// Columns and rows.
    #[must_use]
    pub fn size(&self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }
}

/// The window of the warped grid that a read returns: the tile inside its padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    /// Columns and rows skipped at the top-left (the padding).
    pub offset: usize,
    /// Columns kept.
    pub width: usize,
    /// Rows kept.
    pub height: usize,
}

impl Crop {
    /// The window of the grid returned, as `(x, y, width, height)` in pixels.
    #[must_use]
    pub fn window(&self) -> (usize, usize, usize, usize) {
        (self.offset, self.offset, self.width, self.height)
    }
}

/// Everything a read does around its warp.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadPlan {
    /// The kernels.
    pub kernels: Kernels,
    /// The grid `gdalwarp` warps onto (the request's, padded).
    pub grid: Grid,
    /// The part of `grid` returned.
    pub crop: Crop,
    /// `gdalwarp -ovr`: an overview index, `NONE`, or (until the worker has worked the
    /// choice out, see the worker's `overview.rs`) GDAL's own `AUTO`.
    pub overview: String,
    /// The nodata override: the source's nodata for the warp, and the value whose
    /// pixels the mask marks invalid.
    pub nodata: Option<f64>,
}

impl ReadPlan {
    /// The plan of a request, or why it cannot be served.
    pub fn for_request(req: &ReadRequest) -> Result<Self, PlanError> {
        let kernels = Kernels::from_request(req)?;
        if req.padding > MAX_PADDING {
            return Err(PlanError::PaddingTooLarge(req.padding));
        }
        let tile = Grid::of(req);
        if tile.width == 0 || tile.height == 0 {
            return Err(PlanError::EmptyGrid(tile.width, tile.height));
        }
        let (width, height) = tile.size();
        Ok(Self {
            kernels,
            grid: tile.padded(req.padding)?,
            crop: Crop { offset: req.padding as usize, width, height },
            overview: "AUTO".to_owned(),
            nodata: req.nodata,
        })
    }

    /// The `gdalwarp` arguments (without `-of` and the file names).
    #[must_use]
    pub fn warp_args(&self, target_crs: &str) -> Vec<String> {
        let g = &self.grid;
        let mut args: Vec<String> = [
            "-t_srs",
            target_crs,
            "-te",
            &g.min_x.to_string(),
            &g.min_y.to_string(),
            &g.max_x.to_string(),
            &g.max_y.to_string(),
            "-ts",
            &g.width.to_string(),
            &g.height.to_string(),
            "-r",
            gdal_name(self.kernels.warp),
            "-ovr",
            &self.overview,
            "-dstalpha",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if let Some(nodata) = self.nodata {
            // The destination takes the same value, as rio-tiler's warped VRT does, so
            // invalid pixels hold it.
            let value = gdal_number(nodata);
            args.extend(["-srcnodata".to_owned(), value.clone(), "-dstnodata".to_owned(), value]);
        }
        args
    }
}

/// The `gdalwarp` arguments of a read (without `-of` and the file names); the
/// integration tests run the `gdalwarp` CLI with them as the oracle.
pub fn warp_args(req: &ReadRequest) -> Result<Vec<String>, PlanError> {
    Ok(ReadPlan::for_request(req)?.warp_args(&req.target_crs))
}

/// A number as GDAL's option parser reads it back exactly (NaN and infinities by the
/// names `CPLAtof` knows).
fn gdal_number(value: f64) -> String {
    if value.is_nan() { "nan".to_owned() } else { value.to_string() }
}

/// Marks invalid (0) the pixels of `mask` where `band` (native-endian values of `dtype`)
/// equals `nodata`, compared in the band's type as rio-tiler's `data == nodata` does;
/// NaN matches NaN.
pub fn mask_nodata(mask: &mut [u8], band: &[u8], dtype: DataType, nodata: f64) {
    let target = if dtype == DataType::Float32 { f64::from(nodata as f32) } else { nodata };
    let values: Box<dyn Iterator<Item = f64> + '_> = match dtype {
        DataType::Uint8 => Box::new(band.iter().map(|v| f64::from(*v))),
        DataType::Int8 => Box::new(band.iter().map(|v| f64::from(i8::from_ne_bytes([*v])))),
        DataType::Uint16 => Box::new(decode(band, |b| f64::from(u16::from_ne_bytes(b)))),
        DataType::Int16 => Box::new(decode(band, |b| f64::from(i16::from_ne_bytes(b)))),
        DataType::Uint32 => Box::new(decode(band, |b| f64::from(u32::from_ne_bytes(b)))),
        DataType::Int32 => Box::new(decode(band, |b| f64::from(i32::from_ne_bytes(b)))),
        DataType::Float32 => Box::new(decode(band, |b| f64::from(f32::from_ne_bytes(b)))),
        DataType::Float64 => Box::new(decode(band, f64::from_ne_bytes)),
        DataType::Unspecified => return,
    };
    for (m, v) in mask.iter_mut().zip(values) {
        // An exact match is the point: nodata is a sentinel value, not a measurement.
        #[allow(clippy::float_cmp)]
        let hit = v == target || (v.is_nan() && target.is_nan());
        if hit {
            *m = 0;
        }
    }
}

/// The values of a band of `N`-byte values.
fn decode<const N: usize>(band: &[u8], value: impl Fn([u8; N]) -> f64) -> impl Iterator<Item = f64> {
    band.chunks_exact(N).map(move |chunk| {
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(chunk);
        value(bytes)
    })
}

/// rio-tiler's `output_size`: the (width, height) of a read of a `width` x `height`
/// source. A requested width or height (0 counts as unset, as Python's falsy 0 does)
/// wins over `max_size`; one alone keeps the aspect ratio (rounded up); otherwise the
/// longer side is cut to `max_size` when it is not already smaller.
#[must_use]
pub fn output_size(
    source: (usize, usize),
    requested_width: Option<u32>,
    requested_height: Option<u32>,
    max_size: u32,
) -> (usize, usize) {
    let (width, height) = (source.0 as f64, source.1 as f64);
    let requested_width = requested_width.filter(|w| *w > 0).map(|w| w as usize);
    let requested_height = requested_height.filter(|h| *h > 0).map(|h| h as usize);
    let ratio = height / width;
    let (out_width, out_height) = match (requested_width, requested_height) {
        (Some(w), Some(h)) => (w, h),
        (Some(w), None) => (w, (w as f64 * ratio).ceil() as usize),
        (None, Some(h)) => ((h as f64 / ratio).ceil() as usize, h),
        (None, None) if source.0.max(source.1) < max_size as usize => source,
        (None, None) if ratio > 1.0 => ((f64::from(max_size) / ratio).ceil() as usize, max_size as usize),
        (None, None) => (max_size as usize, (f64::from(max_size) * ratio).ceil() as usize),
    };
    (out_width.max(1), out_height.max(1))
}

/// Every value of the enum, `UNSPECIFIED` first, for the tests that go through them
/// all (`every_kernel_has_one_row` checks that the values run on without a gap).
#[cfg(test)]
pub(crate) fn all_kernels() -> impl Iterator<Item = Resampling> {
    (0..).map_while(|v| Resampling::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    // rio_tiler.utils.output_size(dataset_height=H, dataset_width=W, output_height=h,
    // output_width=w, max_size=m) in rio-tiler 9.4.12, as (height, width) -> swapped here.
    #[test]
    fn output_sizes_match_rio_tiler() {
        // (H=2000, W=3000, m=1024) -> (683, 1024)
        assert_eq!(output_size((3000, 2000), None, None, 1024), (1024, 683));
        // (H=3000, W=2000, m=1024) -> (1024, 683)
        assert_eq!(output_size((2000, 3000), None, None, 1024), (683, 1024));
        // (H=1000, W=1023, m=1024) -> unchanged; (H=1024, W=1024) -> (1024, 1024)
        assert_eq!(output_size((1023, 1000), None, None, 1024), (1023, 1000));
        assert_eq!(output_size((1024, 1024), None, None, 1024), (1024, 1024));
        // (H=7, W=10000, m=1024) -> (1, 1024): ceil(0.7168) = 1
        assert_eq!(output_size((10000, 7), None, None, 1024), (1024, 1));
        // (H=2000, W=3000, w=100) -> (67, 100); (h=100) -> (100, 150); both -> kept
        assert_eq!(output_size((3000, 2000), Some(100), None, 1024), (100, 67));
        assert_eq!(output_size((3000, 2000), None, Some(100), 1024), (150, 100));
        assert_eq!(output_size((3000, 2000), Some(10), Some(20), 1024), (10, 20));
        // (H=3, W=7, h=2) -> (2, 5): ceil(2 / (3/7)) = ceil(4.666..)
        assert_eq!(output_size((7, 3), None, Some(2), 1024), (5, 2));
        // output_width=0 is falsy: max_size applies.
        assert_eq!(output_size((3000, 2000), Some(0), None, 1024), (1024, 683));
    }

    fn request(resampling: Resampling, reproject: Resampling) -> ReadRequest {
        ReadRequest {
            path: "/data/a.tif".into(),
            target_crs: "EPSG:3857".into(),
            min_x: 1000.0,
            min_y: 2000.0,
            max_x: 1256.0,
            max_y: 2512.0,
            width: 256,
            height: 256,
            resampling: resampling as i32,
            reproject: reproject as i32,
            ..ReadRequest::default()
        }
    }

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_default_read_keeps_the_arguments_of_a_plain_nearest_warp() {
        let req = request(Resampling::Unspecified, Resampling::Unspecified);
        assert_eq!(
            warp_args(&req).unwrap(),
            strings(&[
                "-t_srs",
                "EPSG:3857",
                "-te",
                "1000",
                "2000",
                "1256",
                "2512",
                "-ts",
                "256",
                "256",
                "-r",
                "near",
                "-ovr",
                "AUTO",
                "-dstalpha",
            ])
        );
    }

    #[test]
    fn a_non_square_grid_keeps_its_bounds_and_size() {
        let mut req = request(Resampling::Nearest, Resampling::Unspecified);
        (req.min_x, req.min_y, req.max_x, req.max_y) = (-20_037_508.342_789_244, 0.0, 0.0, 10.5);
        (req.width, req.height) = (260, 130);
        assert_eq!(
            warp_args(&req).unwrap(),
            strings(&[
                "-t_srs",
                "EPSG:3857",
                "-te",
                "-20037508.342789244",
                "0",
                "0",
                "10.5",
                "-ts",
                "260",
                "130",
                "-r",
                "near",
                "-ovr",
                "AUTO",
                "-dstalpha",
            ])
        );
    }

    #[test]
    fn the_warp_runs_with_reproject_or_else_with_nearest_whatever_the_read_kernel() {
        let kernel = |resampling, reproject| {
            let args = warp_args(&request(resampling, reproject)).unwrap();
            args[args.iter().position(|a| a == "-r").unwrap() + 1].clone()
        };
        assert_eq!(kernel(Resampling::Bilinear, Resampling::Unspecified), "near");
        assert_eq!(kernel(Resampling::Lanczos, Resampling::Unspecified), "near");
        assert_eq!(kernel(Resampling::Gauss, Resampling::Unspecified), "near");
        assert_eq!(kernel(Resampling::Nearest, Resampling::CubicSpline), "cubicspline");
        assert_eq!(kernel(Resampling::Bilinear, Resampling::Bilinear), "bilinear");
        assert_eq!(kernel(Resampling::Bilinear, Resampling::Nearest), "near");
        assert_eq!(kernel(Resampling::Gauss, Resampling::Q3), "q3");
    }

    #[test]
    fn every_kernel_has_one_row() {
        use Resampling as R;
        // Every value of the enum but UNSPECIFIED has a row, once.
        let kernels: Vec<R> = all_kernels().skip(1).collect();
        assert_eq!(kernels.len(), 15);
        assert!(R::try_from(16).is_err());
        assert_eq!(all_kernels().next(), Some(R::Unspecified));
        for k in &kernels {
            assert_eq!(KERNELS.iter().filter(|r| r.kernel == *k).count(), 1, "{k:?}");
        }
        // GDAL's names are the API's without underscores, but for nearest.
        for k in &kernels {
            let expected =
                if *k == R::Nearest { "near".to_owned() } else { kernel_name(*k).replace('_', "") };
            assert_eq!(gdal_name(*k), expected, "{k:?}");
        }
        assert_eq!(gdal_name(R::Unspecified), "near");
        // The statistics are warp-only; gauss is read-only in GDAL 3.6; rms reads and
        // warps, but the decimated read path cannot take it.
        let names = |keep: fn(Resampling) -> bool| {
            kernels.iter().filter(|k| keep(**k)).map(|k| kernel_name(*k)).collect::<Vec<_>>().join(" ")
        };
        assert_eq!(names(|k| !is_read_kernel(k)), "max min med q1 q3 sum");
        assert_eq!(names(|k| !is_warp_kernel(k)), "gauss");
        assert_eq!(names(|k| !is_decimated_read_kernel(k)), "rms max min med q1 q3 sum");
        assert_eq!(
            decimated_read_kernels(),
            "nearest, bilinear, cubic, cubic_spline, lanczos, average, mode, gauss"
        );
        assert_eq!(kernel_name(R::CubicSpline), "cubic_spline");
    }

    #[test]
    fn each_kernel_defaults_to_nearest_whatever_the_other_is() {
        use Resampling as R;
        let kernels = |a, b| Kernels::from_request(&request(a, b));
        assert_eq!(
            kernels(R::Unspecified, R::Unspecified),
            Ok(Kernels { read: R::Nearest, warp: R::Nearest })
        );
        assert_eq!(kernels(R::Lanczos, R::Unspecified), Ok(Kernels { read: R::Lanczos, warp: R::Nearest }));
        assert_eq!(kernels(R::Unspecified, R::Bilinear), Ok(Kernels { read: R::Nearest, warp: R::Bilinear }));
        // Gauss cannot warp, and need not: the warp is nearest.
        assert_eq!(kernels(R::Gauss, R::Unspecified), Ok(Kernels { read: R::Gauss, warp: R::Nearest }));
        assert_eq!(kernels(R::Gauss, R::Nearest), Ok(Kernels { read: R::Gauss, warp: R::Nearest }));
        assert_eq!(kernels(R::Rms, R::Sum), Ok(Kernels { read: R::Rms, warp: R::Sum }));
    }

    #[test]
    fn the_overview_oversampling_follows_the_read_kernel_not_the_warp_kernel() {
        use Resampling as R;
        let nearest_read = |a, b| Kernels::from_request(&request(a, b)).unwrap().read_is_nearest();
        assert!(nearest_read(R::Unspecified, R::Unspecified));
        assert!(nearest_read(R::Nearest, R::Bilinear));
        assert!(nearest_read(R::Unspecified, R::Cubic));
        // A bilinear read warps with nearest by default, yet picks its overview as a
        // bilinear read does (no oversampling), as rio-tiler's decimated read does.
        assert!(!nearest_read(R::Bilinear, R::Unspecified));
        assert!(!nearest_read(R::Gauss, R::Nearest));
    }

    #[test]
    fn kernels_outside_their_role_are_refused_with_a_reason() {
        use Resampling as R;
        let refusal = |a: i32, b: i32| {
            let mut req = request(R::Nearest, R::Nearest);
            (req.resampling, req.reproject) = (a, b);
            Kernels::from_request(&req).unwrap_err().to_string()
        };
        assert_eq!(
            refusal(R::Max as i32, R::Nearest as i32),
            "resampling=max is a warp kernel, not a read kernel: ask for it as reproject"
        );
        assert_eq!(
            refusal(R::Nearest as i32, R::Gauss as i32),
            "reproject=gauss is not a warp kernel: GDAL's warper has no gauss"
        );
        assert_eq!(refusal(99, 0), "resampling=99 is not a known resampling kernel");
        assert_eq!(refusal(0, -1), "reproject=-1 is not a known resampling kernel");
    }

    #[test]
    fn padding_widens_the_grid_by_whole_pixels_and_crops_the_centre() {
        // 256 x 256 pixels of 1 x 2 units.
        let mut req = request(Resampling::Bilinear, Resampling::Bilinear);
        req.padding = 2;
        let plan = ReadPlan::for_request(&req).unwrap();
        assert_eq!(
            plan.grid,
            Grid { min_x: 998.0, min_y: 1996.0, max_x: 1258.0, max_y: 2516.0, width: 260, height: 260 }
        );
        assert_eq!(plan.crop, Crop { offset: 2, width: 256, height: 256 });
        assert_eq!(
            plan.warp_args(&req.target_crs),
            strings(&[
                "-t_srs",
                "EPSG:3857",
                "-te",
                "998",
                "1996",
                "1258",
                "2516",
                "-ts",
                "260",
                "260",
                "-r",
                "bilinear",
                "-ovr",
                "AUTO",
                "-dstalpha",
            ])
        );
    }

    #[test]
    fn no_padding_is_the_request_grid_bit_for_bit() {
        let mut req = request(Resampling::Nearest, Resampling::Unspecified);
        (req.min_x, req.max_x) = (0.1, 0.7);
        let plan = ReadPlan::for_request(&req).unwrap();
        assert_eq!(plan.grid, Grid::of(&req));
        assert_eq!(plan.crop, Crop { offset: 0, width: 256, height: 256 });
    }

    #[test]
    fn padding_and_grids_out_of_range_are_refused() {
        let mut req = request(Resampling::Nearest, Resampling::Unspecified);
        req.padding = MAX_PADDING + 1;
        assert_eq!(ReadPlan::for_request(&req), Err(PlanError::PaddingTooLarge(65)));
        req.padding = MAX_PADDING;
        req.width = u32::MAX - 100;
        assert_eq!(ReadPlan::for_request(&req), Err(PlanError::GridTooLarge(u32::MAX - 100, 256, 64)));
        req.width = 0;
        assert_eq!(ReadPlan::for_request(&req), Err(PlanError::EmptyGrid(0, 256)));
    }

    #[test]
    fn the_crop_keeps_the_centre_rows_and_columns() {
        // A 5 x 4 grid, padding 1: the centre is 3 x 2 from (1, 1).
        assert_eq!(Crop { offset: 1, width: 3, height: 2 }.window(), (1, 1, 3, 2));
        assert_eq!(Crop { offset: 0, width: 5, height: 4 }.window(), (0, 0, 5, 4));
    }

    #[test]
    fn the_nodata_override_becomes_source_and_destination_nodata() {
        let tail = |nodata: f64| {
            let mut req = request(Resampling::Nearest, Resampling::Unspecified);
            req.nodata = Some(nodata);
            let args = warp_args(&req).unwrap();
            args[15..].to_vec()
        };
        assert_eq!(tail(-9999.0), strings(&["-srcnodata", "-9999", "-dstnodata", "-9999"]));
        assert_eq!(tail(0.5), strings(&["-srcnodata", "0.5", "-dstnodata", "0.5"]));
        assert_eq!(tail(f64::NAN), strings(&["-srcnodata", "nan", "-dstnodata", "nan"]));
        assert_eq!(tail(f64::NEG_INFINITY), strings(&["-srcnodata", "-inf", "-dstnodata", "-inf"]));
        // Rust writes the shortest digits that read back exactly, without an exponent.
        let big = "300000000000000000000000000000000000000";
        assert_eq!(tail(3.0e38), strings(&["-srcnodata", big, "-dstnodata", big]));
    }

    fn masked(band: &[u8], dtype: DataType, nodata: f64, pixels: usize) -> Vec<u8> {
        let mut mask = vec![255; pixels];
        mask_nodata(&mut mask, band, dtype, nodata);
        mask
    }

    #[test]
    fn pixels_equal_to_the_override_are_masked_in_the_band_type() {
        assert_eq!(masked(&[0, 7, 7, 9], DataType::Uint8, 7.0, 4), [255, 0, 0, 255]);
        assert_eq!(masked(&[0, 7, 7, 9], DataType::Uint8, 7.5, 4), [255; 4]);
        let i16s: Vec<u8> = [-9999i16, 1, -9999].into_iter().flat_map(i16::to_ne_bytes).collect();
        assert_eq!(masked(&i16s, DataType::Int16, -9999.0, 3), [0, 255, 0]);
        // 0.1 is no float32: a float32 band holds float32(0.1), which matches.
        let f32s: Vec<u8> = [0.1f32, 0.2, f32::NAN].into_iter().flat_map(f32::to_ne_bytes).collect();
        assert_eq!(masked(&f32s, DataType::Float32, 0.1, 3), [0, 255, 255]);
        assert_eq!(masked(&f32s, DataType::Float32, f64::NAN, 3), [255, 255, 0]);
        let f64s: Vec<u8> = [-0.0f64, 1.0, f64::NAN].into_iter().flat_map(f64::to_ne_bytes).collect();
        assert_eq!(masked(&f64s, DataType::Float64, 0.0, 3), [0, 255, 255]);
        let u32s: Vec<u8> = [4_000_000_000u32, 3].into_iter().flat_map(u32::to_ne_bytes).collect();
        assert_eq!(masked(&u32s, DataType::Uint32, 4.0e9, 2), [0, 255]);
    }

    #[test]
    fn an_already_invalid_pixel_stays_invalid() {
        let mut mask = vec![0, 255, 0];
        mask_nodata(&mut mask, &[5, 5, 7], DataType::Uint8, 7.0);
        assert_eq!(mask, [0, 255, 0]);
    }
}
