//! What a worker does with a job: open an asset (through the dataset cache; a local one
//! beneath its root, see [`super::local_files`]), describe it, or warp it onto a tile
//! grid and return the pixels and their validity mask.

use std::time::Instant;

use gdal::{
    Dataset, DatasetOptions, GdalOpenFlags, Metadata,
    raster::{ColorInterpretation, GdalDataType},
    spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef},
};

use super::{
    block_ranges, blocks,
    dataset_cache::{Cached, DatasetCache, WarpFacts},
    gdal_errors,
    local_files::LocalError,
    overview,
    remote_io::{self, Remote},
    warp,
};
use crate::{
    ipc::read_plan::{self, PlanError, ReadPlan},
    pb::worker::{
        BandMeta, DataType, Deferred, ErrorKind, InfoResult, ReadRequest, ReadResult, ReadStats,
        worker_response,
    },
};

/// Datasets a worker keeps open.
pub const DATASET_CACHE_CAPACITY: usize = 64;

/// Drivers a worker will open anything with: GeoTIFF and COG (COGs open through GTiff;
/// the COG driver is listed so a GDAL that reads them itself keeps working). VRT, MEM,
/// netCDF and every other driver are unreachable, whatever path reaches a worker.
const ALLOWED_DRIVERS: &[&str] = &["GTiff", "COG"];

/// GDAL settings for reading COGs, set once at worker start (they are process-wide).
/// Each can be overridden with `--gdal-config KEY=VALUE` (or the worker's environment).
pub const GDAL_CONFIG: &[(&str, &str)] = &[
    // Opening a COG must not list its directory (a LIST request on S3, a page on HTTP).
    ("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR"),
    ("GDAL_CACHEMAX", "128"),
    ("GDAL_NUM_THREADS", "1"),
    // Only the warp's debug messages, which name the overview it chose.
    ("CPL_DEBUG", "WARP"),
];

/// A failed job, as the worker reports it.
#[derive(Debug)]
pub struct JobError {
    /// The kind, which the front maps to a gRPC code.
    pub kind: ErrorKind,
    /// What went wrong, with GDAL's words where it had any.
    pub message: String,
}

impl JobError {
    /// A new error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    pub(super) fn gdal(kind: ErrorKind, context: &str, fallback: impl std::fmt::Display) -> Self {
        let detail = gdal_errors::take().unwrap_or_else(|| fallback.to_string());
        Self::new(kind, format!("{context}: {detail}"))
    }
}

impl From<LocalError> for JobError {
    fn from(e: LocalError) -> Self {
        let kind = match e {
            LocalError::NotFound => ErrorKind::NotFound,
            LocalError::Denied => ErrorKind::Denied,
            LocalError::NotRegular => ErrorKind::NotRegular,
            LocalError::Io(_) => ErrorKind::ReadFailed,
        };
        Self::new(kind, e.to_string())
    }
}

impl From<PlanError> for JobError {
    fn from(e: PlanError) -> Self {
        Self::new(ErrorKind::Invalid, e.to_string())
    }
}

/// Sets the process-wide GDAL configuration for COG reads. Values already present in
/// the environment win, so an operator can tune them without a rebuild.
pub fn configure_gdal() {
    for (key, value) in GDAL_CONFIG {
        if std::env::var_os(key).is_none() {
            let _ = gdal::config::set_config_option(key, value);
        }
    }
}

pub(super) fn open<'c>(
    cache: &'c mut DatasetCache,
    path: &str,
    stats: &mut ReadStats,
) -> Result<&'c Cached, JobError> {
    // A remote asset is known by its version (the front's generation of it), so a
    // dataset opened on an object that has changed since is not used again.
    let versioned;
    let path = if remote_io::is_versioned(path) {
        path
    } else if remote_io::is_remote(path) {
        versioned = cache
            .remote()
            .and_then(|remote| remote.versioned(path))
            .ok_or_else(|| JobError::new(ErrorKind::ReadFailed, "the front did not describe the asset"))?;
        versioned.as_str()
    } else {
        path
    };
    // A local file is opened afresh on every job: the cache serves its dataset only if it
    // was opened on this very file, and nothing is ever opened by name outside a root.
    let local = if remote_io::is_remote(path) { None } else { Some(cache.local().open(path)?) };
    let stamp = local.as_ref().map(|opened| opened.id().clone());
    // Two lookups because the borrow checker cannot see that a miss releases the borrow.
    if cache.get(path, stamp.as_ref()).is_some() {
        stats.dataset_cache_hit = true;
        return Ok(cache.get(path, stamp.as_ref()).expect("present a moment ago"));
    }
    let started = Instant::now();
    let staged = local.map(|opened| cache.local().stage(opened)).transpose()?;
    let gdal_path = staged.as_ref().map_or(path, |s| s.gdal_path());
    // GDAL names the staged link; the caller knows the file by its path.
    let named = |mut e: JobError| {
        e.message = e.message.replace(gdal_path, path);
        e
    };
    gdal_errors::clear();
    let ds = open_dataset(gdal_path, &[], true)
        .map_err(|e| named(JobError::gdal(ErrorKind::Unreadable, "not a readable GeoTIFF", e)))?;
    if ds.raster_count() == 0 {
        return Err(JobError::new(ErrorKind::Unreadable, "the file has no raster bands"));
    }
    let (width, height) = ds.raster_size();
    let limits = cache.limits();
    if let Some(why) = limits.asset_too_large(width, height, ds.raster_count()) {
        return Err(JobError::new(ErrorKind::TooLarge, why));
    }
    // Before any pixel: GDAL decodes a block whole, whatever part a read needs.
    if let Some(why) = blocks::blocks(&ds).iter().find_map(|b| limits.block_too_large(b)) {
        return Err(JobError::new(ErrorKind::TooLarge, why));
    }
    let (ds, source) = georeference(ds).map_err(named)?;
    stats.open_us = started.elapsed().as_micros() as u64;
    Ok(cache.insert_warped(path, ds, source, stamp, staged))
}

/// Turns directory listing on open on for this thread while it lives, when it is off by
/// Tessera's default (`EMPTY_DIR`, set by [`configure_gdal`]): GDAL then finds the
/// sidecars staged beside a local file. An operator's own setting (the worker's
/// environment, where `--gdal-config` puts it) is left alone: `EMPTY_DIR` there reads no
/// sidecar.
struct SidecarLookup;

impl SidecarLookup {
    fn on() -> Option<Self> {
        const KEY: &str = "GDAL_DISABLE_READDIR_ON_OPEN";
        if std::env::var_os(KEY).is_some() {
            return None;
        }
        gdal::config::set_thread_local_config_option(KEY, "FALSE").ok().map(|()| Self)
    }
}

impl Drop for SidecarLookup {
    fn drop(&mut self) {
        let _ = gdal::config::clear_thread_local_config_option("GDAL_DISABLE_READDIR_ON_OPEN");
    }
}

/// The dataset jobs read: the file itself, or, for a file placed on Earth by ground
/// control points instead of a geotransform, a warped VRT made from its GCPs as
/// rio-tiler makes it (in the GCPs' CRS, with GDAL's GCP transformer, nearest, GDAL's
/// suggested extent and resolution; an alpha band unless the file has nodata or alpha),
/// with the file kept open beside it. A file with neither cannot be placed on a map.
fn georeference(ds: Dataset) -> Result<(Dataset, Option<Dataset>), JobError> {
    if ds.geo_transform().is_ok() {
        return Ok((ds, None));
    }
    // SAFETY: `ds` is a live dataset handle; GDALGetGCPCount only reads it.
    let gcps = unsafe { gdal_sys::GDALGetGCPCount(ds.c_dataset()) };
    if gcps == 0 {
        return Err(JobError::new(
            ErrorKind::Unreadable,
            "the file is not georeferenced: it has neither a geotransform nor ground control points",
        ));
    }
    let has_alpha = ds.raster_count() > data_bands(&ds)?.len();
    let has_nodata = ds.rasterband(1).is_ok_and(|b| b.no_data_value().is_some());
    let mut args = vec!["-of".to_owned(), "VRT".to_owned(), "-r".to_owned(), "near".to_owned()];
    if !has_alpha && !has_nodata {
        args.push("-dstalpha".to_owned());
    }
    gdal_errors::clear();
    let vrt = warp::warp(&ds, &args).map_err(|e| {
        JobError::gdal(ErrorKind::Unreadable, "cannot warp the file from its ground control points", e)
    })?;
    Ok((vrt, Some(ds)))
}

/// The data type of a GDAL band as the protocol names it, with its size in bytes.
pub(super) fn data_type(t: GdalDataType) -> Option<(DataType, usize)> {
    Some(match t {
        GdalDataType::UInt8 => (DataType::Uint8, 1),
        GdalDataType::UInt16 => (DataType::Uint16, 2),
        GdalDataType::Int16 => (DataType::Int16, 2),
        GdalDataType::UInt32 => (DataType::Uint32, 4),
        GdalDataType::Int32 => (DataType::Int32, 4),
        GdalDataType::Float32 => (DataType::Float32, 4),
        GdalDataType::Float64 => (DataType::Float64, 8),
        _ => return None,
    })
}

/// Band 1, whose type every band of an asset is read as: the band, GDAL's type, the
/// protocol's type and its size in bytes. A type the protocol has no name for is
/// unreadable.
pub(super) fn first_band(
    ds: &Dataset,
) -> Result<(gdal::raster::RasterBand<'_>, GdalDataType, DataType, usize), JobError> {
    let band =
        ds.rasterband(1).map_err(|e| JobError::gdal(ErrorKind::Unreadable, "cannot read band 1", e))?;
    let gdal_type = band.band_type();
    // GDAL 3.6 has no Int8: a GeoTIFF's signed bytes are bytes that say so.
    if gdal_type == GdalDataType::UInt8
        && band.metadata_item("PIXELTYPE", "IMAGE_STRUCTURE").as_deref() == Some("SIGNEDBYTE")
    {
        return Ok((band, gdal_type, DataType::Int8, 1));
    }
    let Some((dtype, type_size)) = data_type(gdal_type) else {
        return Err(JobError::new(
            ErrorKind::Unreadable,
            format!("data type {} is not supported", gdal_type.name()),
        ));
    };
    Ok((band, gdal_type, dtype, type_size))
}

/// Indexes (1-based) of the bands that carry data, not alpha.
pub(super) fn data_bands(ds: &Dataset) -> Result<Vec<usize>, JobError> {
    let mut out = Vec::new();
    for i in 1..=ds.raster_count() {
        let band = ds
            .rasterband(i)
            .map_err(|e| JobError::gdal(ErrorKind::Unreadable, "cannot read band metadata", e))?;
        if band.color_interpretation() != ColorInterpretation::AlphaBand {
            out.push(i);
        }
    }
    Ok(out)
}

/// Warps the asset onto the request's grid (padded and cropped back when the request
/// asks for padding), with the request's kernels and nodata override. A remote read
/// with `plan_remote` first asks the front for the blocks it will touch, and answers
/// [`Deferred`] instead of waiting while the front fetches them.
pub fn read(
    cache: &mut DatasetCache,
    remote: Option<&Remote>,
    req: &ReadRequest,
    stats: &mut ReadStats,
) -> Result<worker_response::Result, JobError> {
    read_or_list(cache, remote, req, stats, false)
}

/// The blocks a read of a remote asset will touch, as the [`Deferred`] a read with
/// `plan_remote` answers when the front holds none of them, without asking the front
/// or reading a pixel (its ranges are empty when they cannot be worked out). A whole
/// tile lists its remaining reads this way once one of them is deferred, so the front
/// fetches the blocks of all of them at once.
pub fn list_blocks(
    cache: &mut DatasetCache,
    req: &ReadRequest,
    stats: &mut ReadStats,
) -> Result<Deferred, JobError> {
    match read_or_list(cache, None, req, stats, true)? {
        worker_response::Result::Deferred(deferred) => Ok(deferred),
        _ => Err(JobError::new(ErrorKind::Protocol, "listing a read's blocks read its pixels")),
    }
}

/// [`read`], or with `list` [`list_blocks`].
fn read_or_list(
    cache: &mut DatasetCache,
    remote: Option<&Remote>,
    req: &ReadRequest,
    stats: &mut ReadStats,
    list: bool,
) -> Result<worker_response::Result, JobError> {
    let mut plan = ReadPlan::for_request(req)?;
    let ds = open(cache, &req.path, stats)?;
    let data_bands = data_bands(ds)?;
    let (band1, gdal_type, dtype, type_size) = first_band(ds)?;
    let nodata = plan.nodata.or_else(|| band1.no_data_value());
    let selected: Vec<usize> = if req.bands.is_empty() {
        (1..=data_bands.len()).collect()
    } else {
        req.bands.iter().map(|b| *b as usize).collect()
    };
    if let Some(bad) = selected.iter().find(|b| **b == 0 || **b > data_bands.len()) {
        return Err(JobError::new(
            ErrorKind::Invalid,
            format!("band {bad} does not exist: the asset has data bands 1..={}", data_bands.len()),
        ));
    }

    let started = Instant::now();
    gdal_errors::clear();
    // A warped VRT read back whole: GDAL warps it block by block, as rio-tiler's
    // WarpedVRT does, from the overview rio-tiler's read would take.
    if let Some(choice) = overview_argument(ds, &band1, req, &plan) {
        plan.overview = choice;
    }
    if list {
        let ranges =
            block_ranges::for_read(ds, &plan.grid, &req.target_crs, &plan.overview).unwrap_or_default();
        return Ok(worker_response::Result::Deferred(Deferred { ranges, reads: Vec::new() }));
    }
    // The plan is asked about the dataset as opened (its generation in the path), so
    // the blocks that come with the answer are of the version GDAL parsed.
    if let Some(remote) = remote
        && remote_io::is_remote(&req.path)
        && let Some(ranges) = block_ranges::for_read(ds, &plan.grid, &req.target_crs, &plan.overview)
        && !ranges.is_empty()
        && remote.plan(&ds.description().unwrap_or_default(), &ranges) == Some(false)
        && req.plan_remote
    {
        return Ok(worker_response::Result::Deferred(Deferred { ranges, reads: Vec::new() }));
    }
    let out = if let Some(out) = warp_kept(ds, &plan, &req.target_crs)? {
        out
    } else {
        let mut args = vec!["-of".to_owned(), "VRT".to_owned()];
        args.extend(plan.warp_args(&req.target_crs));
        warp::warp(ds, &args).map_err(|e| JobError::gdal(ErrorKind::ReadFailed, "warp failed", e))?
    };
    if let Some(msg) = gdal_errors::take_beyond_points() {
        return Err(JobError::new(ErrorKind::ReadFailed, format!("warp failed: {msg}")));
    }
    let out_bands = out.raster_count();
    if out_bands != data_bands.len() + 1 {
        return Err(JobError::new(
            ErrorKind::ReadFailed,
            format!("warp produced {out_bands} bands, expected {} + alpha", data_bands.len()),
        ));
    }
    let (grid_width, grid_height) = out.raster_size();
    if (grid_width, grid_height) != plan.grid.size() {
        return Err(JobError::new(
            ErrorKind::ReadFailed,
            format!("warp produced {grid_width}x{grid_height} pixels, expected {:?}", plan.grid.size()),
        ));
    }
    let local = !remote_io::is_remote(&req.path);
    let answer = answer(&out, &plan, &selected, (gdal_type, dtype, type_size), remote.filter(|_| local))?;
    stats.warp_us = started.elapsed().as_micros() as u64;
    Ok(worker_response::Result::Read(ReadResult { nodata, ..answer }))
}

/// What a read answers: the request's window of the warped grid `out` (its padding
/// left out), the `selected` bands one after another and the mask (alpha > 0, less the
/// pixels of the nodata override), read straight into the answer's buffers. With
/// `region` (a local read), into the reply region when they fit: one copy less on the
/// way out. A remote read's cannot go there: its range replies come through the region
/// while it reads.
fn answer(
    out: &Dataset,
    plan: &ReadPlan,
    selected: &[usize],
    (gdal_type, dtype, type_size): (GdalDataType, DataType, usize),
    region: Option<&Remote>,
) -> Result<ReadResult, JobError> {
    let (width, height) = (plan.crop.width, plan.crop.height);
    let (window, alpha) = (plan.crop.window(), out.raster_count());
    let plane = width * height * type_size;
    let (pixel_bytes, mask_bytes) = (selected.len() * plane, width * height);
    let fill = |pixels: &mut [u8], mask: &mut [u8]| -> Result<(), JobError> {
        for (b, values) in selected.iter().zip(pixels.chunks_exact_mut(plane)) {
            warp::read_window_into(out, *b, window, gdal_type as u32, type_size, values)
                .map_err(|e| JobError::gdal(ErrorKind::ReadFailed, "reading warped pixels", e))?;
        }
        warp::read_window_into(out, alpha, window, gdal_sys::GDALDataType::GDT_Byte, 1, mask)
            .map_err(|e| JobError::gdal(ErrorKind::ReadFailed, "reading the warped mask", e))?;
        for m in mask.iter_mut() {
            *m = if *m > 0 { 255 } else { 0 };
        }
        if let Some(value) = plan.nodata {
            for band in pixels.chunks_exact(plane) {
                read_plan::mask_nodata(mask, band, dtype, value);
            }
        }
        Ok(())
    };
    let in_region = region
        .and_then(|remote| {
            remote.with_answer_region(pixel_bytes + mask_bytes, |region| {
                let (pixels, mask) = region.split_at_mut(pixel_bytes);
                fill(pixels, mask)
            })
        })
        .transpose()?;
    let (pixels, mask, shared_pixels, shared_mask) = if in_region.is_some() {
        (Vec::new(), Vec::new(), pixel_bytes as u32, mask_bytes as u32)
    } else {
        let (mut pixels, mut mask) = (vec![0u8; pixel_bytes], vec![0u8; mask_bytes]);
        fill(&mut pixels, &mut mask)?;
        // Moved to the reply region, if it fits, as the answer leaves the worker.
        (pixels, mask, 0, 0)
    };
    Ok(ReadResult {
        dtype: dtype as i32,
        band_count: selected.len() as u32,
        width: width as u32,
        height: height as u32,
        pixels,
        mask,
        nodata: None,
        shared_pixels,
        shared_mask,
    })
}

/// The warped VRT of `plan` made through the file's kept warp ([`warp::KeptWarp`]), or
/// `None` when it has none for this read (another target CRS, a nodata override, an
/// overview left to GDAL's choice, a kernel the warper does not have, a file `gdalwarp`
/// treats differently, a tile reaching far beyond the file): `gdalwarp` then warps.
fn warp_kept(ds: &Cached, plan: &ReadPlan, target_crs: &str) -> Result<Option<Dataset>, JobError> {
    if target_crs != warp::KEPT_WARP_CRS || plan.nodata.is_some() {
        return Ok(None);
    }
    let Some(kernel) = warp_kernel(plan.kernels.warp) else { return Ok(None) };
    let overview = match plan.overview.as_str() {
        "NONE" => None,
        level => match level.parse::<usize>() {
            Ok(level) => Some(level),
            Err(_) => return Ok(None),
        },
    };
    let Some(kept) = ds.kept_warp(overview, |file| {
        warp::KeptWarp::prepare(file, overview, |level| open_overview(file, &level))
    }) else {
        return Ok(None);
    };
    let g = &plan.grid;
    // `gdalwarp -te -ts`'s grid, from the same numbers.
    let geo_transform = [
        g.min_x,
        (g.max_x - g.min_x) / f64::from(g.width),
        0.0,
        g.max_y,
        0.0,
        -((g.max_y - g.min_y) / f64::from(g.height)),
    ];
    let out = warp::warp_reusing(ds, &kept, geo_transform, g.size(), kernel)
        .map_err(|e| JobError::gdal(ErrorKind::ReadFailed, "warp failed", e))?;
    if out.is_some()
        && let Some(level) = overview
    {
        gdal_errors::note_overview(level as u32);
    }
    Ok(out)
}

/// The warper's kernel for `gdalwarp -r`'s name of it; `None` for one it does not have.
fn warp_kernel(kernel: crate::pb::worker::Resampling) -> Option<gdal_sys::GDALResampleAlg::Type> {
    use crate::pb::worker::Resampling as R;
    use gdal_sys::GDALResampleAlg as A;
    Some(match kernel {
        R::Unspecified | R::Nearest => A::GRA_NearestNeighbour,
        R::Bilinear => A::GRA_Bilinear,
        R::Cubic => A::GRA_Cubic,
        R::CubicSpline => A::GRA_CubicSpline,
        R::Lanczos => A::GRA_Lanczos,
        R::Average => A::GRA_Average,
        R::Mode => A::GRA_Mode,
        R::Rms => A::GRA_RMS,
        R::Max => A::GRA_Max,
        R::Min => A::GRA_Min,
        R::Med => A::GRA_Med,
        R::Q1 => A::GRA_Q1,
        R::Q3 => A::GRA_Q3,
        R::Sum => A::GRA_Sum,
        R::Gauss => return None,
    })
}

/// Overview `level` (`OVERVIEW_LEVEL`'s value) of `file`, opened on its own as
/// `gdalwarp -ovr` reads it, with the file's own driver rules and sidecar lookup. Quietly:
/// without it the read warps the file itself.
fn open_overview(file: &Dataset, level: &str) -> Option<Dataset> {
    let path = file.description().ok()?;
    let option = format!("OVERVIEW_LEVEL={level}");
    open_dataset(&path, &[option.as_str()], false).ok()
}

/// Opens `gdal_path` as every read does: a raster, read-only, by the GeoTIFF drivers
/// only, with `open_options`. A local file's sidecars (`.msk`, `.ovr`, `.aux.xml`,
/// staged beside it) are found as rio-tiler finds them; a remote asset's are never
/// probed (one request less each). `verbose`: GDAL says why an open failed.
fn open_dataset(gdal_path: &str, open_options: &[&str], verbose: bool) -> gdal::errors::Result<Dataset> {
    let mut open_flags = GdalOpenFlags::GDAL_OF_RASTER | GdalOpenFlags::GDAL_OF_READONLY;
    if verbose {
        open_flags |= GdalOpenFlags::GDAL_OF_VERBOSE_ERROR;
    }
    let options = DatasetOptions {
        open_flags,
        allowed_drivers: Some(ALLOWED_DRIVERS),
        open_options: (!open_options.is_empty()).then_some(open_options),
        ..DatasetOptions::default()
    };
    let sidecars = (!remote_io::is_remote(gdal_path)).then(SidecarLookup::on).flatten();
    let ds = Dataset::open_ex(gdal_path, options);
    drop(sidecars);
    ds
}

/// Loads PROJ's database and GDAL's drivers, and runs one small warp the way a read
/// does, before the first job (part of starting a worker, off any request's clock). A
/// worker's first read otherwise pays for it: tens of milliseconds of CPU for the first
/// coordinate transformation, and as much again for the first warp (the GeoTIFF and VRT
/// drivers, the warper and its kernels paged in), measured on a cold six-asset tile.
pub fn warm_up() {
    if let Ok(utm) = SpatialRef::from_epsg(32618) {
        let _ = to_lon_lat(&utm, [500_000.0, 4_400_000.0, 501_000.0, 4_401_000.0]);
    }
    if let (Ok(wgs84), Ok(mercator)) = (SpatialRef::from_epsg(4326), SpatialRef::from_epsg(3857)) {
        let _ = CoordTransform::new(&wgs84, &mercator);
    }
    let _ = warm_up_warp();
}

/// A 64 px, 3-band UTM GeoTIFF in memory (with an overview), warped to Web Mercator
/// with `-ovr` and an alpha band as reads do, and read back.
fn warm_up_warp() -> Result<(), Box<dyn std::error::Error>> {
    const PATH: &str = "/vsimem/tessera-warm-up.tif";
    let driver = gdal::DriverManager::get_driver_by_name("GTiff")?;
    let options =
        gdal::raster::RasterCreationOptions::from_iter(["TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32"]);
    {
        let mut ds = driver.create_with_band_type_with_options::<u8, _>(PATH, 64, 64, 3, &options)?;
        ds.set_geo_transform(&[500_000.0, 10.0, 0.0, 4_400_640.0, 0.0, -10.0])?;
        ds.set_spatial_ref(&SpatialRef::from_epsg(32618)?)?;
        ds.build_overviews("NEAREST", &[2], &[])?;
    }
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let ds = Dataset::open(PATH)?;
        let _ = warp::suggested_resolution(&ds, "EPSG:3857");
        let (min_x, min_y) = (-8_349_000.0, 4_829_900.0);
        let args: Vec<String> = [
            "-of",
            "VRT",
            "-t_srs",
            "EPSG:3857",
            "-te",
            &min_x.to_string(),
            &min_y.to_string(),
            &(min_x + 500.0).to_string(),
            &(min_y + 500.0).to_string(),
            "-ts",
            "16",
            "16",
            "-r",
            "bilinear",
            "-ovr",
            "0",
            "-dstalpha",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let out = warp::warp(&ds, &args)?;
        for band in 1..=out.raster_count() {
            warp::read_band(&out, band, gdal_sys::GDALDataType::GDT_Byte, 1)?;
        }
        Ok(())
    })();
    let _ = gdal::vsi::unlink_mem_file(PATH);
    gdal_errors::clear();
    result
}

pub(super) fn to_lon_lat(srs: &SpatialRef, bounds: [f64; 4]) -> Result<[f64; 4], gdal::errors::GdalError> {
    let mut src = srs.clone();
    src.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let mut wgs84 = SpatialRef::from_epsg(4326)?;
    wgs84.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    CoordTransform::new(&src, &wgs84)?.transform_bounds(&bounds, 21)
}

/// Describes the asset.
pub fn info(cache: &mut DatasetCache, path: &str, stats: &mut ReadStats) -> Result<InfoResult, JobError> {
    let ds = open(cache, path, stats)?;
    let unreadable = |what: &str, e: gdal::errors::GdalError| {
        JobError::gdal(ErrorKind::Unreadable, &format!("cannot read {what}"), e)
    };
    let srs = ds.spatial_ref().map_err(|e| unreadable("the CRS (is it georeferenced?)", e))?;
    let gt = ds.geo_transform().map_err(|e| unreadable("the geotransform", e))?;
    if gt[2].abs() > 0.0 || gt[4].abs() > 0.0 {
        return Err(JobError::new(ErrorKind::Unreadable, "rotated geotransforms are not supported"));
    }
    let (width, height) = ds.raster_size();
    let (west, east) = (gt[0], gt[0] + gt[1] * width as f64);
    let (north, south) = (gt[3], gt[3] + gt[5] * height as f64);
    let bounds = [west.min(east), south.min(north), west.max(east), south.max(north)];
    gdal_errors::clear();
    let geographic = to_lon_lat(&srs, bounds).map_err(|_| not_on_earth(&srs))?;

    let (first_band, _, dtype, _) = first_band(ds)?;
    let mut bands = Vec::new();
    for i in 1..=ds.raster_count() {
        let b = ds.rasterband(i).map_err(|e| unreadable("a band", e))?;
        bands.push(BandMeta {
            description: b.description().unwrap_or_default(),
            color_interpretation: b.color_interpretation().name(),
            nodata: b.no_data_value(),
        });
    }
    let mut overview_widths = Vec::new();
    let mut overview_heights = Vec::new();
    for i in 0..first_band.overview_count().unwrap_or(0).max(0) as usize {
        if let Ok(o) = first_band.overview(i) {
            let (w, h) = o.size();
            overview_widths.push(w as u32);
            overview_heights.push(h as u32);
        }
    }
    let (block_width, block_height) = first_band.block_size();
    let has_mask = first_band.mask_flags().is_ok_and(|f| !f.is_all_valid());
    let color_table = first_band.color_table().map_or_else(Vec::new, |table| {
        (0..table.entry_count())
            .filter_map(|i| table.entry_as_rgb(i))
            .flat_map(|c| [c.r, c.g, c.b, c.a].map(|v| v.clamp(0, 255) as u8))
            .collect()
    });
    let crs = match (srs.auth_name(), srs.auth_code()) {
        (Some(name), Ok(code)) => format!("{name}:{code}"),
        _ => String::new(),
    };
    Ok(InfoResult {
        driver: ds.file().driver().short_name(),
        crs,
        crs_wkt: srs.to_wkt().unwrap_or_default(),
        bounds: bounds.to_vec(),
        geographic_bounds: geographic.to_vec(),
        width: width as u32,
        height: height as u32,
        dtype: dtype as i32,
        bands,
        overview_widths,
        overview_heights,
        block_width: block_width as u32,
        block_height: block_height as u32,
        has_mask,
        color_table,
    })
}

/// An asset whose CRS PROJ cannot take to longitude/latitude (an engineering CRS, a
/// planet's): one sentence naming the CRS, not its WKT.
fn not_on_earth(srs: &SpatialRef) -> JobError {
    let name = srs.name().filter(|n| !n.is_empty()).unwrap_or_else(|| "unnamed".to_owned());
    let detail = gdal_errors::take().unwrap_or_default();
    let why = if detail.contains("celestial body") {
        "is not on the Earth"
    } else {
        "has no transformation to longitude/latitude"
    };
    JobError::new(
        ErrorKind::Unreadable,
        format!("its CRS \"{name}\" {why}, so it cannot be placed on a map tile"),
    )
}

/// `gdalwarp -ovr`'s value for the overview rio-tiler would read `req` from (an index,
/// or `NONE` for full resolution), or `None` to leave GDAL's own choice when the sizes
/// cannot be known.
fn overview_argument(
    ds: &Cached,
    band1: &gdal::raster::RasterBand<'_>,
    req: &ReadRequest,
    plan: &ReadPlan,
) -> Option<String> {
    let facts = ds.warp_facts(&req.target_crs, |ds| {
        let native_resolution = native_resolution(ds, &req.target_crs)?;
        let count = band1.overview_count().ok()?;
        let overviews = (0..count)
            .map(|i| band1.overview(i as usize).map(|o| o.size()))
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        Some(WarpFacts { native_resolution, overviews })
    })?;
    let tile = read_plan::Grid::of(req);
    let sizes = overview::Sizes {
        extent: (tile.max_x - tile.min_x, tile.max_y - tile.min_y),
        out: (tile.width, tile.height),
        native_resolution: facts.native_resolution,
        asset: ds.raster_size(),
        overviews: facts.overviews,
    };
    let choice = overview::choose(&sizes, plan.kernels.read_is_nearest());
    Some(choice.map_or_else(|| "NONE".to_owned(), |i| i.to_string()))
}

/// The latitude rio-tiler crops lon/lat assets to before measuring their resolution in
/// Web Mercator.
const MERCATOR_LATITUDE_LIMIT: f64 = 85.06;

/// The asset's pixel size in `target_crs` as rio-tiler measures it (its
/// `get_vrt_transform`): GDAL's suggested warp output of the whole asset, except that an
/// EPSG:4326 asset reaching beyond ±85.06° is measured on its rows within them (warped
/// whole, the poles stretch Web Mercator's y to hundreds of times the Earth's extent and
/// the suggested pixel comes out hundreds of kilometres wide), with its rows counted as
/// rio-tiler counts them.
fn native_resolution(ds: &Dataset, target_crs: &str) -> Option<(f64, f64)> {
    let is_epsg = |srs: &SpatialRef, code: i32| {
        srs.auth_name().as_deref() == Some("EPSG") && srs.auth_code().is_ok_and(|c| c == code)
    };
    let lon_lat = ds.spatial_ref().is_ok_and(|srs| is_epsg(&srs, 4326));
    let mercator = SpatialRef::from_definition(target_crs).is_ok_and(|srs| is_epsg(&srs, 3857));
    let gt = ds.geo_transform().ok()?;
    let (width, height) = ds.raster_size();
    let (top, bottom) = (gt[3], gt[3] + gt[5] * height as f64);
    let (north, south) = (top.max(bottom), top.min(bottom));
    if !(lon_lat
        && mercator
        && gt[5] < 0.0
        && (north > MERCATOR_LATITUDE_LIMIT || south < -MERCATOR_LATITUDE_LIMIT))
    {
        return warp::suggested_resolution(ds, target_crs).ok();
    }
    let (north, south) = (north.min(MERCATOR_LATITUDE_LIMIT), south.max(-MERCATOR_LATITUDE_LIMIT));
    let rows = ((north - south) / -gt[5]).round().max(1.0);
    let (west, east) = (gt[0], gt[0] + gt[1] * width as f64);
    let cropped = [west, (east - west) / width as f64, 0.0, north, 0.0, -(north - south) / rows];
    warp::suggested_resolution_of_grid(cropped, width, rows as usize, target_crs).ok()
}

#[cfg(test)]
mod tests;
