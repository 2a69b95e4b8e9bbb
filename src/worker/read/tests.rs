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
    ipc::read_plan::{Grid, ReadPlan},
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

/// A `bands`-band GeoTIFF of `size` x `size` pixels of 10 m in EPSG:32618 at [`ORIGIN`],
/// values varying from pixel to pixel and band to band, with overviews at 2 and 4; the
/// last band is alpha (0 in a corner, 255 elsewhere) when `alpha`.
fn textured_bands<T: GdalType + Copy + TryFrom<u32>>(
    dir: &Path,
    name: &str,
    bands: usize,
    alpha: bool,
    nodata: Option<f64>,
) -> String {
    let size = 256;
    let path = dir.join(name);
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = driver.create_with_band_type::<T, _>(&path, size, size, bands).unwrap();
    ds.set_geo_transform(&[ORIGIN.0, 10.0, 0.0, ORIGIN.1, 0.0, -10.0]).unwrap();
    ds.set_spatial_ref(&SpatialRef::from_epsg(32618).unwrap()).unwrap();
    for b in 1..=bands {
        let mut band = ds.rasterband(b).unwrap();
        let values: Vec<T> = (0..size * size)
            .map(|i| {
                let (x, y) = ((i % size) as u32, (i / size) as u32);
                let v = if alpha && b == bands {
                    if x < 40 && y < 40 { 0 } else { 255 }
                } else {
                    // Some zeros, so a nodata of 0 masks pixels inside the file.
                    (x * 37 + y * 101 + (x * y) % 53 + b as u32 * 19) % 251
                };
                T::try_from(v).ok().unwrap()
            })
            .collect();
        band.write((0, 0), (size, size), &mut Buffer::new((size, size), values)).unwrap();
        if alpha && b == bands {
            band.set_color_interpretation(gdal::raster::ColorInterpretation::AlphaBand).unwrap();
        } else {
            band.set_no_data_value(nodata).unwrap();
        }
    }
    ds.build_overviews("AVERAGE", &[2, 4], &[]).unwrap();
    path.to_string_lossy().into_owned()
}

/// Web Mercator grids of `width` x `height` pixels of `pixel` m centred `offset` m
/// east and south of the asset's top-left corner (some reach past its edges; the last
/// is 100 km wide, where the approximating transformer's threshold tells).
fn mercator_grids() -> Vec<Grid> {
    let mut utm = SpatialRef::from_epsg(32618).unwrap();
    utm.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let mut mercator = SpatialRef::from_epsg(3857).unwrap();
    mercator.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let to_mercator = CoordTransform::new(&utm, &mercator).unwrap();
    [
        (1280.0, 13.0, 64, 48),
        (300.0, 9.1, 70, 50),
        (2500.0, 37.0, 80, 80),
        (2400.0, 3.3, 33, 61),
        (1280.0, 400.0, 256, 256),
    ]
    .into_iter()
    .map(|(offset, pixel, width, height)| {
        let (mut x, mut y) = ([ORIGIN.0 + offset], [ORIGIN.1 - offset]);
        to_mercator.transform_coords(&mut x, &mut y, &mut []).unwrap();
        let (half_w, half_h) = (pixel * f64::from(width) / 2.0, pixel * f64::from(height) / 2.0);
        Grid {
            min_x: x[0] - half_w,
            min_y: y[0] - half_h,
            max_x: x[0] + half_w,
            max_y: y[0] + half_h,
            width,
            height,
        }
    })
    .collect()
}

/// Every band (data and alpha) of `ds`, read whole as `gdal_type`.
fn all_bands(ds: &gdal::Dataset, gdal_type: u32, type_size: usize) -> Vec<Vec<u8>> {
    (1..=ds.raster_count()).map(|b| super::warp::read_band(ds, b, gdal_type, type_size).unwrap()).collect()
}

#[test]
fn a_kept_warp_gives_the_pixels_of_gdalwarp_for_every_kernel_overview_and_band_layout() {
    let dir = tempfile::tempdir().unwrap();
    let assets = [
        (
            textured_bands::<u8>(dir.path(), "rgb.tif", 3, false, Some(0.0)),
            1,
            gdal_sys::GDALDataType::GDT_Byte,
        ),
        (textured_bands::<u8>(dir.path(), "rgba.tif", 4, true, None), 1, gdal_sys::GDALDataType::GDT_Byte),
        (textured_bands::<u16>(dir.path(), "u16.tif", 2, false, None), 2, gdal_sys::GDALDataType::GDT_UInt16),
        (
            textured_bands::<u16>(dir.path(), "u16_nodata.tif", 1, false, Some(7.0)),
            2,
            gdal_sys::GDALDataType::GDT_UInt16,
        ),
    ];
    let kernels = [
        Resampling::Nearest,
        Resampling::Bilinear,
        Resampling::Cubic,
        Resampling::CubicSpline,
        Resampling::Lanczos,
        Resampling::Average,
        Resampling::Mode,
        Resampling::Max,
    ];
    let mut compared = 0;
    for (path, type_size, gdal_type) in &assets {
        let mut cache = test_assets::cache();
        let ds = super::open(&mut cache, path, &mut ReadStats::default()).unwrap();
        for grid in mercator_grids() {
            for kernel in kernels {
                for overview in ["NONE", "0", "1"] {
                    let mut req = request(path, "EPSG:3857", grid, Resampling::Nearest);
                    req.reproject = kernel as i32;
                    let mut plan = ReadPlan::for_request(&req).unwrap();
                    plan.overview = overview.to_owned();
                    let label = format!("{path} {grid:?} {kernel:?} overview {overview}");
                    let kept = super::warp_kept(ds, &plan, "EPSG:3857")
                        .unwrap()
                        .unwrap_or_else(|| panic!("{label}: no kept warp"));
                    let mut args = vec!["-of".to_owned(), "VRT".to_owned()];
                    args.extend(plan.warp_args("EPSG:3857"));
                    let app = super::warp::warp(ds, &args).unwrap();
                    assert_eq!(kept.raster_count(), app.raster_count(), "{label}");
                    assert_eq!(kept.raster_size(), app.raster_size(), "{label}");
                    let (ours, theirs) =
                        (all_bands(&kept, *gdal_type, *type_size), all_bands(&app, *gdal_type, *type_size));
                    assert!(ours == theirs, "{label}: pixels differ from gdalwarp's");
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 4 * 5 * 8 * 3);
}

#[test]
fn reads_the_kept_warp_does_not_cover_go_to_gdalwarp() {
    let dir = tempfile::tempdir().unwrap();
    let path = textured_bands::<u8>(dir.path(), "rgb.tif", 3, false, Some(0.0));
    let mut cache = test_assets::cache();
    let ds = super::open(&mut cache, &path, &mut ReadStats::default()).unwrap();
    let grid = mercator_grids()[0];
    let plan = |crs: &str, overview: &str, nodata: Option<f64>| {
        let mut req = request(&path, crs, grid, Resampling::Nearest);
        req.nodata = nodata;
        let mut plan = ReadPlan::for_request(&req).unwrap();
        plan.overview = overview.to_owned();
        plan
    };
    assert!(super::warp_kept(ds, &plan("EPSG:3857", "NONE", None), "EPSG:3857").unwrap().is_some());
    // Another CRS, a nodata override, GDAL's own overview choice.
    assert!(super::warp_kept(ds, &plan("EPSG:4326", "NONE", None), "EPSG:4326").unwrap().is_none());
    assert!(super::warp_kept(ds, &plan("EPSG:3857", "NONE", Some(3.0)), "EPSG:3857").unwrap().is_none());
    assert!(super::warp_kept(ds, &plan("EPSG:3857", "AUTO", None), "EPSG:3857").unwrap().is_none());
    // The whole world on one tile: its corners lie millions of source pixels away.
    let mut world = plan("EPSG:3857", "NONE", None);
    let e = 20_037_508.342_789_244;
    world.grid = Grid { min_x: -e, min_y: -e, max_x: e, max_y: e, width: 256, height: 256 };
    assert!(super::warp_kept(ds, &world, "EPSG:3857").unwrap().is_none());

    // A file in the target's own CRS, and one whose nodata its type cannot hold (the
    // warper would work in a wider type than the file's).
    let same = dir.path().join("mercator.tif");
    let mut m = DriverManager::get_driver_by_name("GTiff")
        .unwrap()
        .create_with_band_type::<u8, _>(&same, 8, 8, 1)
        .unwrap();
    m.set_geo_transform(&[grid.min_x, 10.0, 0.0, grid.max_y, 0.0, -10.0]).unwrap();
    m.set_spatial_ref(&SpatialRef::from_epsg(3857).unwrap()).unwrap();
    drop(m);
    let wide = textured_bands::<u8>(dir.path(), "wide_nodata.tif", 2, false, Some(-1.0));
    for other in [same.to_string_lossy().into_owned(), wide] {
        let ds = super::open(&mut cache, &other, &mut ReadStats::default()).unwrap();
        assert!(
            super::warp_kept(ds, &plan("EPSG:3857", "NONE", None), "EPSG:3857").unwrap().is_none(),
            "{other}"
        );
    }
}

#[test]
fn the_warper_has_exactly_the_warp_kernels_of_the_kernel_table() {
    for kernel in crate::ipc::read_plan::all_kernels() {
        assert_eq!(
            super::warp_kernel(kernel).is_some(),
            crate::ipc::read_plan::is_warp_kernel(kernel),
            "{kernel:?}"
        );
    }
}
