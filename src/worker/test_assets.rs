//! Small GeoTIFFs with known pixels for the in-process tests of the worker's jobs.

use gdal::{DriverManager, spatial_ref::SpatialRef};

use super::{dataset_cache::DatasetCache, local_files::LocalFiles};

/// Band 1 of the fixture (row-major, 4 x 3); -9999 is nodata.
pub const BAND_1: [i16; 12] = [1, 2, 3, 4, -9999, 6, 7, 8, 9, 10, 11, -9999];
/// Band 2 of the fixture.
pub const BAND_2: [i16; 12] = [101, -9999, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112];

/// Writes the fixture into `dir` and returns its path: a 4 x 3 Int16 GeoTIFF of two
/// bands in EPSG:4326 with 0.5° x 0.25° pixels from (-75, 41) and nodata -9999. The
/// Python oracle writes the same file with rasterio.
pub fn int16_two_bands(dir: &std::path::Path) -> String {
    let path = dir.join("fixture.tif").to_string_lossy().into_owned();
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = driver.create_with_band_type::<i16, _>(&path, 4, 3, 2).unwrap();
    ds.set_geo_transform(&[-75.0, 0.5, 0.0, 41.0, 0.0, -0.25]).unwrap();
    ds.set_spatial_ref(&SpatialRef::from_epsg(4326).unwrap()).unwrap();
    for (index, values) in [(1, BAND_1), (2, BAND_2)] {
        let mut band = ds.rasterband(index).unwrap();
        band.set_no_data_value(Some(-9999.0)).unwrap();
        let mut buffer = gdal::raster::Buffer::new((4, 3), values.to_vec());
        band.write((0, 0), (4, 3), &mut buffer).unwrap();
    }
    path
}

/// Local-file rules for tests: the temporary directory (where tests write their
/// fixtures) is the one root.
pub fn local_files() -> LocalFiles {
    let tmp = std::env::temp_dir().canonicalize().unwrap();
    LocalFiles::new(std::slice::from_ref(&tmp), &tmp).unwrap()
}

/// A dataset cache for one test.
pub fn cache() -> DatasetCache {
    DatasetCache::new(4, local_files())
}
