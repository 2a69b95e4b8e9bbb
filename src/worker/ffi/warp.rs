//! The unsafe boundary: GDAL's `GDALWarp` application call, raw band reads and the
//! interleave of an overview's dataset, which the `gdal` crate does not wrap. The other
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
    let band = ds.rasterband(index).map_err(|e| e.to_string())?;
    let (width, height) = ds.raster_size();
    let mut buf = vec![0u8; width * height * type_size];
    // SAFETY: `buf` holds exactly width * height values of `gdal_type` (type_size bytes
    // each, checked by the caller from GDALGetDataTypeSizeBytes); the band handle is live
    // for the borrow of `band`.
    let err = unsafe {
        gdal_sys::GDALRasterIO(
            band.c_rasterband(),
            gdal_sys::GDALRWFlag::GF_Read,
            0,
            0,
            width as c_int,
            height as c_int,
            buf.as_mut_ptr().cast::<c_void>(),
            width as c_int,
            height as c_int,
            gdal_type,
            0,
            0,
        )
    };
    if err != gdal_sys::CPLErr::CE_None {
        return Err(format!("reading band {index} failed"));
    }
    Ok(buf)
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
