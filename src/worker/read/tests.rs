//! The read path against real GDAL, in process: small GeoTIFFs written to a temporary
//! directory, read with padding, kernels and the nodata override.

use std::path::Path;

use gdal::{
    DriverManager,
    raster::{Buffer, GdalType},
    spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef},
};

use crate::pb::worker::{ErrorKind, ReadRequest, ReadResult, ReadStats, Resampling};
use crate::{
    ipc::read_plan::Grid,
    worker::{read, test_assets},
};

/// West and north edges of every test asset, in EPSG:32618 (near lon -75, lat 39.75).
const ORIGIN: (f64, f64) = (500_000.0, 4_400_000.0);

/// Writes a one-band GeoTIFF of `width` x `height` pixels of `pixel` metres in
/// EPSG:32618, its top-left corner at [`ORIGIN`]; returns its path.
fn write_tiff<T: GdalType + Copy>(
    dir: &Path,
    (width, height): (usize, usize),
    pixel: f64,
    values: Vec<T>,
    nodata: Option<f64>,
) -> String {
    let path = dir.join("asset.tif");
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = driver.create_with_band_type::<T, _>(&path, width, height, 1).unwrap();
    ds.set_geo_transform(&[ORIGIN.0, pixel, 0.0, ORIGIN.1, 0.0, -pixel]).unwrap();
    ds.set_spatial_ref(&SpatialRef::from_epsg(32618).unwrap()).unwrap();
    let mut band = ds.rasterband(1).unwrap();
    band.write((0, 0), (width, height), &mut Buffer::new((width, height), values)).unwrap();
    band.set_no_data_value(nodata).unwrap();
    path.to_string_lossy().into_owned()
}

/// A 64 x 64 asset of 10 m pixels with values that vary from pixel to pixel.
fn textured_asset(dir: &Path) -> String {
    let values = (0..64 * 64).map(|i| ((i % 64) * 37 + (i / 64) * 101 + (i * i) % 53) as u8).collect();
    write_tiff::<u8>(dir, (64, 64), 10.0, values, None)
}

/// A read of `grid` with `kernel` as both the read and the warp kernel.
fn request(path: &str, crs: &str, grid: Grid, kernel: Resampling) -> ReadRequest {
    ReadRequest {
        path: path.to_owned(),
        target_crs: crs.to_owned(),
        min_x: grid.min_x,
        min_y: grid.min_y,
        max_x: grid.max_x,
        max_y: grid.max_y,
        width: grid.width,
        height: grid.height,
        resampling: kernel as i32,
        reproject: kernel as i32,
        ..ReadRequest::default()
    }
}

fn run(req: &ReadRequest) -> Result<ReadResult, super::JobError> {
    match read::read(&mut test_assets::cache(), None, req, &mut ReadStats::default())? {
        crate::pb::worker::worker_response::Result::Read(r) => Ok(r),
        other => panic!("a read answered {other:?}"),
    }
}

/// The `width` x `height` window at (`offset`, `offset`) of a `grid_width`-wide band of
/// one-byte values.
fn centre(values: &[u8], grid_width: usize, offset: usize, width: usize, height: usize) -> Vec<u8> {
    (offset..offset + height)
        .flat_map(|row| &values[row * grid_width + offset..row * grid_width + offset + width])
        .copied()
        .collect()
}

/// A 40 x 30 Web Mercator grid of about 10 x 10 units around the asset's centre.
fn mercator_grid() -> Grid {
    let mut utm = SpatialRef::from_epsg(32618).unwrap();
    utm.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let mut mercator = SpatialRef::from_epsg(3857).unwrap();
    mercator.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let (mut x, mut y) = ([ORIGIN.0 + 320.0], [ORIGIN.1 - 320.0]);
    CoordTransform::new(&utm, &mercator).unwrap().transform_coords(&mut x, &mut y, &mut []).unwrap();
    let (x, y) = (x[0].round(), y[0].round());
    Grid { min_x: x - 200.0, min_y: y - 150.0, max_x: x + 200.0, max_y: y + 150.0, width: 40, height: 30 }
}

#[test]
fn a_padded_read_is_the_centre_of_a_read_of_the_padded_grid() {
    let dir = tempfile::tempdir().unwrap();
    let path = textured_asset(dir.path());
    let grid = mercator_grid();
    let mut padded = request(&path, "EPSG:3857", grid, Resampling::Bilinear);
    padded.padding = 3;
    let wide = request(&path, "EPSG:3857", grid.padded(3).unwrap(), Resampling::Bilinear);

    let tile = run(&padded).unwrap();
    let whole = run(&wide).unwrap();
    assert_eq!((tile.width, tile.height, whole.width, whole.height), (40, 30, 46, 36));
    assert_eq!(tile.pixels, centre(&whole.pixels, 46, 3, 40, 30));
    assert_eq!(tile.mask, centre(&whole.mask, 46, 3, 40, 30));
    assert!(tile.mask.iter().all(|m| *m == 255), "the grid lies inside the asset");
}

/// A 40 x 24 grid of the asset's own CRS and pixel size, shifted half a pixel: every
/// output pixel of a bilinear warp interpolates four source pixels.
fn half_pixel_grid() -> Grid {
    Grid {
        min_x: ORIGIN.0 + 105.0,
        min_y: ORIGIN.1 - 395.0,
        max_x: ORIGIN.0 + 505.0,
        max_y: ORIGIN.1 - 155.0,
        width: 40,
        height: 24,
    }
}

#[test]
fn padding_changes_no_pixel_of_an_affine_bilinear_warp() {
    // GDAL's warper already reads the kernel's reach around its source window, so
    // widening the grid changes nothing here (under reprojection it changes the
    // approximate transformer's sample points, which rio-tiler's padding shares).
    let dir = tempfile::tempdir().unwrap();
    let path = textured_asset(dir.path());
    let grid = half_pixel_grid();
    let plain = run(&request(&path, "EPSG:32618", grid, Resampling::Bilinear)).unwrap();
    let mut req = request(&path, "EPSG:32618", grid, Resampling::Bilinear);
    req.padding = 2;
    let padded = run(&req).unwrap();
    assert_eq!((padded.width, padded.height), (40, 24));
    assert_eq!(padded.pixels, plain.pixels);
    assert_eq!(padded.mask, plain.mask);
    // Bilinear is in effect: a nearest read of the same grid differs.
    let nearest = run(&request(&path, "EPSG:32618", grid, Resampling::Nearest)).unwrap();
    assert_ne!(nearest.pixels, plain.pixels);
}

#[test]
fn an_unset_reproject_warps_with_nearest_whatever_the_read_kernel() {
    // As rio-tiler's `reproject_method` defaults to nearest: the read kernel alone does
    // not make the warp interpolate.
    let dir = tempfile::tempdir().unwrap();
    let path = textured_asset(dir.path());
    let grid = half_pixel_grid();
    let nearest = run(&request(&path, "EPSG:32618", grid, Resampling::Nearest)).unwrap();
    let bilinear = run(&request(&path, "EPSG:32618", grid, Resampling::Bilinear)).unwrap();
    assert_ne!(bilinear.pixels, nearest.pixels);
    // Gauss, which GDAL's warper lacks, is a valid read kernel on its own.
    for read_kernel in [Resampling::Bilinear, Resampling::Lanczos, Resampling::Gauss] {
        let mut req = request(&path, "EPSG:32618", grid, read_kernel);
        req.reproject = Resampling::Unspecified as i32;
        let tile = run(&req).unwrap_or_else(|e| panic!("{read_kernel:?}: {e:?}"));
        assert_eq!(tile.pixels, nearest.pixels, "{read_kernel:?}");
        assert_eq!(tile.mask, nearest.mask, "{read_kernel:?}");
    }
}

/// The grid of a 16 x 16 asset of 10 m pixels, pixel for pixel.
fn identity_grid() -> Grid {
    Grid {
        min_x: ORIGIN.0,
        min_y: ORIGIN.1 - 160.0,
        max_x: ORIGIN.0 + 160.0,
        max_y: ORIGIN.1,
        width: 16,
        height: 16,
    }
}

#[test]
fn the_nodata_override_replaces_the_files_nodata_in_the_mask() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<u8> = (0..256).map(|i| (i % 10) as u8).collect();
    let path = write_tiff::<u8>(dir.path(), (16, 16), 10.0, values.clone(), Some(0.0));
    let expected =
        |invalid: u8| values.iter().map(|v| if *v == invalid { 0 } else { 255 }).collect::<Vec<u8>>();

    let mut req = request(&path, "EPSG:32618", identity_grid(), Resampling::Nearest);
    let file_nodata = run(&req).unwrap();
    assert_eq!(file_nodata.nodata, Some(0.0));
    assert_eq!(file_nodata.mask, expected(0));

    req.nodata = Some(7.0);
    let overridden = run(&req).unwrap();
    assert_eq!(overridden.nodata, Some(7.0));
    assert_eq!(overridden.mask, expected(7));
    let valid: Vec<u8> =
        values.iter().zip(&overridden.mask).filter(|(_, m)| **m == 255).map(|(v, _)| *v).collect();
    assert_eq!(valid, values.iter().copied().filter(|v| *v != 7).collect::<Vec<_>>());
}

#[test]
fn a_nan_override_masks_exactly_the_nan_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..256).map(|i| if i % 7 == 3 { f32::NAN } else { i as f32 / 4.0 }).collect();
    let path = write_tiff::<f32>(dir.path(), (16, 16), 10.0, values.clone(), None);
    let mut req = request(&path, "EPSG:32618", identity_grid(), Resampling::Nearest);
    req.nodata = Some(f64::NAN);
    let tile = run(&req).unwrap();
    let expected: Vec<u8> = values.iter().map(|v| if v.is_nan() { 0 } else { 255 }).collect();
    assert_eq!(tile.mask, expected);
    assert!(tile.nodata.is_some_and(f64::is_nan));
}

#[test]
fn unsupported_kernels_and_padding_are_refused_before_the_file_is_opened() {
    let mut req = request("/nonexistent/asset.tif", "EPSG:3857", identity_grid(), Resampling::Nearest);
    req.reproject = Resampling::Gauss as i32;
    let e = run(&req).unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Invalid, "reproject=gauss is not a warp kernel: GDAL's warper has no gauss")
    );
    req.reproject = Resampling::Unspecified as i32;
    req.padding = 65;
    let e = run(&req).unwrap_err();
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Invalid, "padding=65 is more than 64 pixels"));
}
