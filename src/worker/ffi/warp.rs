//! The unsafe boundary: GDAL's `GDALWarp` application call, the same warp set up from a
//! kept transformer ([`KeptWarp`]), raw band reads and the interleave of an overview's
//! dataset, which the `gdal` crate does not wrap. The other
//! unsafe module is [`crate::worker::remote_io`], the virtual file system GDAL calls back into.

use std::{
    ffi::{CString, c_char, c_int, c_void},
    ptr,
};

use gdal::Dataset;

/// Runs `gdalwarp` with `args` (without the program name) on `src` and returns the
/// output dataset (the args choose an in-memory format, a warped VRT, so nothing touches disk).
pub fn warp(src: &Dataset, args: &[String]) -> Result<Dataset, String> {
    let owned_args = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "a warp argument contains a NUL byte".to_owned())?;
    let mut arg_ptrs: Vec<*mut c_char> = owned_args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    arg_ptrs.push(ptr::null_mut());

    // SAFETY: arg_ptrs is a NULL-terminated array of NUL-terminated strings that outlive the
    // call; GDAL only reads them and copies what it keeps.
    let options = unsafe { gdal_sys::GDALWarpAppOptionsNew(arg_ptrs.as_mut_ptr(), ptr::null_mut()) };
    if options.is_null() {
        return Err(format!("GDAL refused the warp options {args:?}"));
    }
    let mut sources = [src.c_dataset()];
    let mut usage_error: c_int = 0;
    let empty = c"";
    // SAFETY: `sources` holds one valid open dataset handle, borrowed for the call;
    // `options` is a live options object; the destination is created by GDAL (in memory) and
    // ownership of the returned handle passes to us.
    let out = unsafe {
        gdal_sys::GDALWarp(
            empty.as_ptr(),
            ptr::null_mut(),
            1,
            sources.as_mut_ptr(),
            options,
            &raw mut usage_error,
        )
    };
    // SAFETY: `options` came from GDALWarpAppOptionsNew and is freed exactly once.
    unsafe { gdal_sys::GDALWarpAppOptionsFree(options) };
    if out.is_null() {
        return Err(if usage_error != 0 {
            format!("GDAL rejected the warp arguments {args:?}")
        } else {
            "GDALWarp failed".to_owned()
        });
    }
    // SAFETY: `out` is a new, owned dataset handle; Dataset closes it on drop.
    Ok(unsafe { Dataset::from_c_dataset(out) })
}

/// The pixel size (x, y) GDAL suggests for `src` warped whole into `target_crs`: what
/// `gdalwarp` picks without `-tr`, and rio-tiler's `calculate_default_transform`.
pub fn suggested_resolution(src: &Dataset, target_crs: &str) -> Result<(f64, f64), String> {
    let option = CString::new(format!("DST_SRS={target_crs}"))
        .map_err(|_| "the target CRS contains a NUL byte".to_owned())?;
    let mut options = [option.as_ptr().cast_mut(), ptr::null_mut()];
    // SAFETY: `src` is a live dataset; `options` is a NULL-terminated list of strings
    // that outlive the call (GDAL copies what it keeps). A NULL result is handled.
    let transformer = unsafe {
        gdal_sys::GDALCreateGenImgProjTransformer2(src.c_dataset(), ptr::null_mut(), options.as_mut_ptr())
    };
    if transformer.is_null() {
        return Err(format!("GDAL cannot transform the asset to {target_crs}"));
    }
    let mut geo_transform = [0.0_f64; 6];
    let mut extent = [0.0_f64; 4];
    let (mut pixels, mut lines): (c_int, c_int) = (0, 0);
    // SAFETY: `transformer` is the live GenImgProj transformer made above, matching the
    // transform function; the out-pointers (GDAL writes the extent unconditionally) are
    // valid for the call.
    let err = unsafe {
        gdal_sys::GDALSuggestedWarpOutput2(
            src.c_dataset(),
            Some(gdal_sys::GDALGenImgProjTransform),
            transformer,
            geo_transform.as_mut_ptr(),
            &raw mut pixels,
            &raw mut lines,
            extent.as_mut_ptr(),
            0,
        )
    };
    // SAFETY: created above by GDALCreateGenImgProjTransformer2, destroyed exactly once.
    unsafe { gdal_sys::GDALDestroyGenImgProjTransformer(transformer) };
    if err != gdal_sys::CPLErr::CE_None {
        return Err(format!("GDAL cannot suggest a warp of the asset to {target_crs}"));
    }
    Ok((geo_transform[1].abs(), geo_transform[5].abs()))
}

/// [`suggested_resolution`] of a lon/lat (EPSG:4326) grid of `width` x `height` pixels
/// with geotransform `geo_transform` (a band-less in-memory dataset stands for it).
pub fn suggested_resolution_of_grid(
    geo_transform: [f64; 6],
    width: usize,
    height: usize,
    target_crs: &str,
) -> Result<(f64, f64), String> {
    let driver = gdal::DriverManager::get_driver_by_name("MEM").map_err(|e| e.to_string())?;
    let mut grid = driver
        .create_with_band_type::<u8, _>("", width, height, 0)
        .map_err(|e| format!("cannot make the grid: {e}"))?;
    grid.set_geo_transform(&geo_transform).map_err(|e| e.to_string())?;
    // Longitude first, as in a GeoTIFF (EPSG's own axis order is latitude first).
    let mut lon_lat = gdal::spatial_ref::SpatialRef::from_epsg(4326).map_err(|e| e.to_string())?;
    lon_lat.set_axis_mapping_strategy(gdal::spatial_ref::AxisMappingStrategy::TraditionalGisOrder);
    grid.set_spatial_ref(&lon_lat).map_err(|e| e.to_string())?;
    suggested_resolution(&grid, target_crs)
}

/// Reads the whole of band `index` (1-based) as `width * height` values of GDAL type
/// `gdal_type`, each `type_size` bytes, in native byte order.
pub fn read_band(
    ds: &Dataset,
    index: usize,
    gdal_type: gdal_sys::GDALDataType::Type,
    type_size: usize,
) -> Result<Vec<u8>, String> {
    let (width, height) = ds.raster_size();
    let mut buf = vec![0u8; width * height * type_size];
    read_window_into(ds, index, (0, 0, width, height), gdal_type, type_size, &mut buf)?;
    Ok(buf)
}

/// Reads the window `(x, y, width, height)` of band `index` (1-based) into `out`, which
/// holds exactly `width * height` values of GDAL type `gdal_type` (`type_size` bytes
/// each, native byte order). The window must lie inside the dataset.
pub fn read_window_into(
    ds: &Dataset,
    index: usize,
    (x, y, width, height): (usize, usize, usize, usize),
    gdal_type: gdal_sys::GDALDataType::Type,
    type_size: usize,
    out: &mut [u8],
) -> Result<(), String> {
    let band = ds.rasterband(index).map_err(|e| e.to_string())?;
    let (ds_width, ds_height) = ds.raster_size();
    if x + width > ds_width || y + height > ds_height {
        return Err(format!(
            "the window {width}x{height}+{x}+{y} is not inside {ds_width}x{ds_height} pixels"
        ));
    }
    if out.len() != width * height * type_size {
        return Err(format!("{} bytes cannot hold {width}x{height} values of {type_size} bytes", out.len()));
    }
    let int = |v: usize| {
        c_int::try_from(v).map_err(|_| format!("a window of {width}x{height} pixels is too large"))
    };
    // SAFETY: `out` holds exactly width * height values of `gdal_type` (type_size bytes
    // each, checked by the caller from GDALGetDataTypeSizeBytes, and above); the window
    // is inside the band; the band handle is live for the borrow of `band`.
    let err = unsafe {
        gdal_sys::GDALRasterIO(
            band.c_rasterband(),
            gdal_sys::GDALRWFlag::GF_Read,
            int(x)?,
            int(y)?,
            int(width)?,
            int(height)?,
            out.as_mut_ptr().cast::<c_void>(),
            int(width)?,
            int(height)?,
            gdal_type,
            0,
            0,
        )
    };
    if err != gdal_sys::CPLErr::CE_None {
        return Err(format!("reading band {index} failed"));
    }
    Ok(())
}

/// The `INTERLEAVE` (`PIXEL` or `BAND`) of the dataset that owns `band`: for an
/// overview band, the overview's own TIFF directory, which may differ from the main
/// image's. `None` when GDAL does not say.
pub fn band_interleave(band: &gdal::raster::RasterBand<'_>) -> Option<String> {
    // SAFETY: the band handle is live for the borrow of `band`; GDAL returns the dataset
    // that owns it (owned by GDAL, not us) or null.
    let ds = unsafe { gdal_sys::GDALGetBandDataset(band.c_rasterband()) };
    if ds.is_null() {
        return None;
    }
    // SAFETY: `ds` is a live dataset handle (above); key and domain are NUL-terminated
    // literals; the result is owned by GDAL and copied before any other GDAL call.
    let raw =
        unsafe { gdal_sys::GDALGetMetadataItem(ds, c"INTERLEAVE".as_ptr(), c"IMAGE_STRUCTURE".as_ptr()) };
    if raw.is_null() {
        return None;
    }
    // SAFETY: `raw` is non-null and NUL-terminated (GDAL's metadata strings are).
    Some(unsafe { std::ffi::CStr::from_ptr(raw) }.to_string_lossy().into_owned())
}

/// What a warp of one source onto one CRS keeps between tiles: the GDAL transformer from
/// the source's pixels to the CRS (its coordinate operation is what costs to set up),
/// and the overview's own dataset when the warp reads an overview.
///
/// [`warp`] runs `gdalwarp`, which sets the same warp up from scratch on every tile: it
/// builds its transformer twice when it reads an overview (once to choose it), asks every
/// driver whether the in-memory output's empty name is a file to delete, and its warper
/// builds one more coordinate operation to find where the poles land on the tile (a
/// third of the setup, measured with `perf` on the six-asset tiles of `make bench`).
/// [`warp_reusing`] builds the same warped VRT as `gdalwarp -of VRT` does for the
/// arguments of [`crate::ipc::read_plan::ReadPlan::warp_args`], from this kept
/// transformer: same transformer (made by the same call on the same dataset), same
/// error threshold, same warp options and the same VRT blocks, so the same pixels (the
/// integration tests compare tiles with the `gdalwarp` CLI's, value for value). The
/// poles are left out by passing the transformer through a forwarding function, which
/// GDAL's pole lookup does not recognise: in Web Mercator, the only CRS this is used
/// for, no pole lies on any tile, which is all the lookup checks.
pub struct KeptWarp {
    transformer: ptr::NonNull<c_void>,
    /// The overview read, opened on its own (`OVERVIEW_LEVEL=N only`, the dataset
    /// `gdalwarp -ovr N` reads); `None` for full resolution.
    overview: Option<Dataset>,
    /// Bands warped (all but a last alpha band).
    bands: c_int,
    /// The source's alpha band, 0 for none.
    src_alpha: c_int,
    /// Columns and rows of the dataset read.
    size: (f64, f64),
    /// The bands' nodata values (`gdalwarp`'s source nodata when not given one), if they
    /// have them.
    nodata: Option<Vec<f64>>,
}

impl Drop for KeptWarp {
    fn drop(&mut self) {
        // SAFETY: made by GDALCreateGenImgProjTransformer2 in `prepare` and owned here
        // alone (the VRTs that used it are closed: each lives for one read).
        unsafe { gdal_sys::GDALDestroyGenImgProjTransformer(self.transformer.as_ptr()) };
    }
}

/// The only target CRS [`KeptWarp`] is made for (see there).
pub const KEPT_WARP_CRS: &str = "EPSG:3857";

impl KeptWarp {
    /// The kept warp of `file` (read at `overview`, opened by `open_overview` from
    /// `OVERVIEW_LEVEL`'s value) onto [`KEPT_WARP_CRS`], or `None` when the file is one
    /// `gdalwarp` would treat differently from the plain case this covers: no
    /// geotransform, ground control points, RPCs or geolocation arrays; a compound or 3D
    /// CRS, or the target's own (`gdalwarp` then copies pixels); bands of mixed types;
    /// nodata on some bands only, or a value the band's type cannot hold (the warp
    /// would then work in a wider type); an alpha band anywhere but last.
    pub fn prepare(
        file: &Dataset,
        overview: Option<usize>,
        open_overview: impl FnOnce(String) -> Option<Dataset>,
    ) -> Option<Self> {
        file.geo_transform().ok()?;
        let handle = file.c_dataset();
        // SAFETY: `handle` is a live dataset for the borrow of `file`; domains are
        // NUL-terminated literals; the lists returned are GDAL's and only tested for null.
        let plain = unsafe {
            gdal_sys::GDALGetGCPCount(handle) == 0
                && gdal_sys::GDALGetMetadata(handle, c"RPC".as_ptr()).is_null()
                && gdal_sys::GDALGetMetadata(handle, c"GEOLOCATION".as_ptr()).is_null()
        };
        if !plain {
            return None;
        }
        let srs = file.spatial_ref().ok()?;
        let target = gdal::spatial_ref::SpatialRef::from_definition(KEPT_WARP_CRS).ok()?;
        // SAFETY: both handles are live for the borrows of `srs` and `target`.
        let (compound, axes, same) = unsafe {
            (
                gdal_sys::OSRIsCompound(srs.to_c_hsrs()) != 0,
                gdal_sys::OSRGetAxesCount(srs.to_c_hsrs()),
                gdal_sys::OSRIsSame(srs.to_c_hsrs(), target.to_c_hsrs()) != 0,
            )
        };
        if compound || axes != 2 || same {
            return None;
        }
        let overview = match overview {
            Some(level) => Some(open_overview(format!("{level} only"))?),
            None => None,
        };
        let source = overview.as_ref().unwrap_or(file);
        let count = source.raster_count();
        if count != file.raster_count() || count == 0 {
            return None;
        }
        let mut src_alpha = 0;
        let band_type = source.rasterband(1).ok()?.band_type();
        let mut nodata = Vec::new();
        for i in 1..=count {
            let band = source.rasterband(i).ok()?;
            if band.color_interpretation() == gdal::raster::ColorInterpretation::AlphaBand {
                if i != count {
                    return None;
                }
                src_alpha = count as c_int;
            } else if band.band_type() != band_type {
                return None;
            } else {
                nodata.push(band.no_data_value());
            }
        }
        let nodata = if nodata.iter().all(Option::is_none) {
            None
        } else {
            let values = nodata.into_iter().collect::<Option<Vec<f64>>>()?;
            let gdal_type = band_type as gdal_sys::GDALDataType::Type;
            // SAFETY: a pure function of its arguments.
            let held = values
                .iter()
                .all(|v| unsafe { gdal_sys::GDALDataTypeUnionWithValue(gdal_type, *v, 0) } == gdal_type);
            if !held {
                return None;
            }
            Some(values)
        };
        let option = CString::new(format!("DST_SRS={KEPT_WARP_CRS}")).ok()?;
        let mut options = [option.as_ptr().cast_mut(), ptr::null_mut()];
        // SAFETY: `source` is a live dataset; `options` is a NULL-terminated list of
        // strings that outlive the call (GDAL copies what it keeps). NULL is handled.
        let transformer = unsafe {
            gdal_sys::GDALCreateGenImgProjTransformer2(
                source.c_dataset(),
                ptr::null_mut(),
                options.as_mut_ptr(),
            )
        };
        let transformer = ptr::NonNull::new(transformer)?;
        let (width, height) = source.raster_size();
        Some(Self {
            transformer,
            overview,
            bands: count as c_int - c_int::from(src_alpha != 0),
            src_alpha,
            size: (width as f64, height as f64),
            nodata,
        })
    }
}

/// Passes a transform through to GDAL's GenImgProj transform (see [`KeptWarp`]).
unsafe extern "C" fn forward(
    arg: *mut c_void,
    dst_to_src: c_int,
    count: c_int,
    x: *mut f64,
    y: *mut f64,
    z: *mut f64,
    success: *mut c_int,
) -> c_int {
    // SAFETY: GDAL calls this with the arguments of a transformer call: `arg` is the
    // kept GenImgProj transformer given to the approximating transformer, the arrays
    // hold `count` values.
    unsafe { gdal_sys::GDALGenImgProjTransform(arg, dst_to_src, count, x, y, z, success) }
}

/// `gdalwarp`'s default error threshold, in pixels, of its approximating transformer.
const ERROR_THRESHOLD: f64 = 0.125;

/// How far outside the source, in its pixels, a tile's sample points may land before a
/// warp goes to [`warp`] instead: far below the million pixels at which GDAL's warper
/// retries with `CHECK_WITH_INVERT_PROJ` (a retry that refreshes only transformers it
/// recognises), so the retry cannot happen on a kept warp.
const SANE_REACH: f64 = 1e5;

/// Warps `file` through `kept` onto the grid `geo_transform` x `width` x `height` (the
/// grid `gdalwarp -te -ts` makes) with `kernel`, as [`warp`] with `-of VRT -t_srs
/// EPSG:3857 -te .. -ts .. -r .. -ovr .. -dstalpha` would. `Ok(None)` when the tile
/// reaches so far beyond the source that GDAL's warper could take a path the kept warp
/// does not follow (see [`SANE_REACH`]): the caller then runs [`warp`].
pub fn warp_reusing(
    file: &Dataset,
    kept: &KeptWarp,
    geo_transform: [f64; 6],
    (width, height): (usize, usize),
    kernel: gdal_sys::GDALResampleAlg::Type,
) -> Result<Option<Dataset>, String> {
    let size =
        |v: usize| c_int::try_from(v).map_err(|_| format!("a grid of {width}x{height} pixels is too large"));
    let (w, h) = (size(width)?, size(height)?);
    let transformer = kept.transformer.as_ptr();
    let mut gt = geo_transform;
    // SAFETY: `transformer` is the live GenImgProj transformer of `kept`, used by one
    // warp at a time (the worker is one thread, a VRT lives for one read); GDAL copies
    // the six values.
    unsafe { gdal_sys::GDALSetGenImgProjTransformerDstGeoTransform(transformer, gt.as_ptr()) };
    let (mut xs, mut ys, mut zs, mut ok) = ([0.0_f64; 9], [0.0_f64; 9], [0.0_f64; 9], [0 as c_int; 9]);
    for (i, (fx, fy)) in [0.0, 0.5, 1.0].iter().flat_map(|fx| [0.0, 0.5, 1.0].map(|fy| (*fx, fy))).enumerate()
    {
        xs[i] = fx * f64::from(w);
        ys[i] = fy * f64::from(h);
    }
    // SAFETY: as above; the four arrays hold nine values each.
    let all_ok = unsafe {
        gdal_sys::GDALGenImgProjTransform(
            transformer,
            1,
            9,
            xs.as_mut_ptr(),
            ys.as_mut_ptr(),
            zs.as_mut_ptr(),
            ok.as_mut_ptr(),
        )
    };
    let (sw, sh) = kept.size;
    let sane = all_ok != 0
        && (0..9).all(|i| {
            ok[i] != 0
                && xs[i] > -SANE_REACH
                && ys[i] > -SANE_REACH
                && xs[i] < sw + SANE_REACH
                && ys[i] < sh + SANE_REACH
        });
    if !sane {
        return Ok(None);
    }
    let source = kept.overview.as_ref().unwrap_or(file).c_dataset();
    // SAFETY: the approximating transformer borrows `transformer` (it does not own it:
    // GDALApproxTransformerOwnsSubtransformer is not called) and is owned by the warp
    // options below, then by the VRT.
    let approx =
        unsafe { gdal_sys::GDALCreateApproxTransformer(Some(forward), transformer, ERROR_THRESHOLD) };
    if approx.is_null() {
        return Err("GDAL could not make the approximating transformer".to_owned());
    }
    // SAFETY: GDALCreateWarpOptions returns an owned, defaulted options struct; the band
    // lists are allocated with CPLMalloc as GDALDestroyWarpOptions frees them; the warp
    // option list is GDAL's own (CSLSetNameValue copies).
    unsafe {
        let wo = gdal_sys::GDALCreateWarpOptions();
        let o = &mut *wo;
        o.eResampleAlg = kernel;
        o.hSrcDS = source;
        o.nBandCount = kept.bands;
        let n = kept.bands as usize;
        o.panSrcBands = gdal_sys::CPLMalloc(n * std::mem::size_of::<c_int>()).cast::<c_int>();
        o.panDstBands = gdal_sys::CPLMalloc(n * std::mem::size_of::<c_int>()).cast::<c_int>();
        for i in 0..n {
            *o.panSrcBands.add(i) = i as c_int + 1;
            *o.panDstBands.add(i) = i as c_int + 1;
        }
        if let Some(values) = &kept.nodata {
            o.padfSrcNoDataReal = gdal_sys::CPLMalloc(n * std::mem::size_of::<f64>()).cast::<f64>();
            for (i, v) in values.iter().enumerate().take(n) {
                *o.padfSrcNoDataReal.add(i) = *v;
            }
        }
        o.nSrcAlphaBand = kept.src_alpha;
        o.nDstAlphaBand = kept.bands + 1;
        o.papszWarpOptions =
            gdal_sys::CSLSetNameValue(o.papszWarpOptions, c"INIT_DEST".as_ptr(), c"0".as_ptr());
        o.pfnTransformer = Some(gdal_sys::GDALApproxTransform);
        o.pTransformerArg = approx;
        let vrt = gdal_sys::GDALCreateWarpedVRT(source, w, h, gt.as_mut_ptr(), wo);
        // The VRT keeps its own copy of the options; the transformer is now the VRT's.
        gdal_sys::GDALDestroyWarpOptions(wo);
        if vrt.is_null() {
            gdal_sys::GDALDestroyTransformer(approx);
            return Err("GDAL could not make the warped VRT".to_owned());
        }
        Ok(Some(Dataset::from_c_dataset(vrt)))
    }
}
