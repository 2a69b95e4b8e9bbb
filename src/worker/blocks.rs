//! The blocks GDAL would decode to read an asset, checked against `--max-block-bytes`
//! when the asset is opened, before any pixel is read.
//!
//! GDAL decodes a TIFF block (a tile, or a strip of rows) whole, into memory, whatever
//! part of it a read needs: a 2 MB file holding one deflated 46 000 x 46 000 tile costs
//! gigabytes and seconds per read. A block is what GDAL reports as the band's block
//! size, at full resolution, for every overview, and for the masks; a pixel-interleaved
//! image decodes every band of a block at once, a band-interleaved one a single band.
//!
//! GDAL's reported block is the unit it allocates. The one case where it differs from
//! the file's strips is an 8-bit image stored as a single strip: GDAL presents it as
//! one-row blocks and reads it row by row through libtiff's streaming decoder, so memory
//! stays one row (reaching the last row still decodes every row before it: a cost in
//! time, which the read timeout and the deadline quarantine bound, not in memory).

use gdal::{Dataset, Metadata, raster::RasterBand};

use super::{limits::Block, warp};

/// Every block shape of `ds`: full resolution, each overview, and their masks.
pub fn blocks(ds: &Dataset) -> Vec<Block> {
    let band_count = ds.raster_count();
    let main_interleave = ds.metadata_item("INTERLEAVE", "IMAGE_STRUCTURE");
    let Ok(band1) = ds.rasterband(1) else { return Vec::new() };
    let mut out = Vec::new();
    level(&mut out, "full resolution".to_owned(), &band1, band_count, main_interleave);
    let overviews = band1.overview_count().unwrap_or(0).max(0) as usize;
    for i in 0..overviews {
        if let Ok(overview) = band1.overview(i) {
            // An overview is its own TIFF directory: a hostile file may interleave it
            // differently from the main image.
            let interleave = warp::band_interleave(&overview);
            level(&mut out, format!("overview {}", i + 1), &overview, band_count, interleave);
        }
    }
    out
}

/// The blocks of one level: its band's, and its mask's.
fn level(
    out: &mut Vec<Block>,
    name: String,
    band: &RasterBand<'_>,
    bands: usize,
    interleave: Option<String>,
) {
    // Unknown interleave counts as pixel-interleaved: the larger of the two.
    let together = if interleave.as_deref() == Some("BAND") { 1 } else { bands };
    out.push(block(name.clone(), band, together));
    if let Ok(mask) = band.open_mask_band() {
        out.push(block(format!("{name} mask"), &mask, 1));
    }
}

fn block(level: String, band: &RasterBand<'_>, bands: usize) -> Block {
    let (width, height) = band.block_size();
    Block { level, width, height, bands, sample_bytes: usize::from(band.band_type().bytes()) }
}

#[cfg(test)]
mod tests {
    use gdal::{DriverManager, raster::RasterCreationOptions};

    use super::*;

    /// A 512 x 512 UInt16 tiled GeoTIFF of 3 bands in `interleave`, with two internal
    /// overviews and an internal mask.
    fn tiled(dir: &std::path::Path, interleave: &str) -> Dataset {
        let path = dir.join(format!("{interleave}.tif"));
        let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
        let options = RasterCreationOptions::from_iter([
            "TILED=YES",
            "BLOCKXSIZE=256",
            "BLOCKYSIZE=128",
            &format!("INTERLEAVE={interleave}"),
        ]);
        let mut ds =
            driver.create_with_band_type_with_options::<u16, _>(&path, 512, 512, 3, &options).unwrap();
        ds.rasterband(1).unwrap().create_mask_band(true).unwrap();
        ds.build_overviews("NEAREST", &[2, 4], &[]).unwrap();
        drop(ds);
        Dataset::open(&path).unwrap()
    }

    fn shapes(ds: &Dataset) -> Vec<(String, usize, usize, usize, usize)> {
        blocks(ds).into_iter().map(|b| (b.level, b.width, b.height, b.bands, b.sample_bytes)).collect()
    }

    #[test]
    fn every_level_and_mask_is_listed_with_the_bands_its_blocks_hold() {
        let dir = tempfile::tempdir().unwrap();
        let level = |name: &str, w, h, bands, bytes| (name.to_owned(), w, h, bands, bytes);
        // Pixel-interleaved: a block holds all 3 bands of 2 bytes; masks are 1 byte.
        assert_eq!(
            shapes(&tiled(dir.path(), "PIXEL")),
            [
                level("full resolution", 256, 128, 3, 2),
                level("full resolution mask", 256, 128, 1, 1),
                level("overview 1", 128, 128, 3, 2),
                level("overview 1 mask", 128, 128, 1, 1),
                level("overview 2", 128, 128, 3, 2),
                level("overview 2 mask", 128, 128, 1, 1),
            ]
        );
        // Band-interleaved: one band per block, at every level (read from each overview's
        // own directory).
        let band = shapes(&tiled(dir.path(), "BAND"));
        assert_eq!(band.iter().map(|l| l.3).collect::<Vec<_>>(), [1; 6]);
        assert_eq!(band[2], level("overview 1", 128, 128, 1, 2));
    }
}
