//! The preview job: the whole asset in its own CRS, decimated to a bounded size that
//! keeps its aspect ratio (rio-tiler's `Reader.preview` and `output_size`), read
//! through overviews. A pixel of the result is valid where any band is valid (rio-tiler's
//! `ImageData.mask`).

use crate::ipc::read_plan::output_size;
use crate::pb::worker::{PreviewRequest, ReadResult, ReadStats};
use crate::worker::{
    dataset_cache::DatasetCache,
    grid::{DEFAULT_MAX_SIZE, Grid, Window},
    masked_read::{ReadShape, raster_io_algorithm, read_masked, select_bands},
    read::{JobError, open},
};

/// Reads the preview the request asks for.
pub fn preview(
    cache: &mut DatasetCache,
    req: &PreviewRequest,
    stats: &mut ReadStats,
) -> Result<ReadResult, JobError> {
    let algorithm = raster_io_algorithm(req.resampling)?;
    let ds = open(cache, &req.path, stats)?;
    let bands = select_bands(ds, &req.bands)?;
    let (width, height) = Grid::of(ds)?.size();
    let max_size = if req.max_size == 0 { DEFAULT_MAX_SIZE } else { req.max_size };
    let size = output_size((width, height), req.width, req.height, max_size);
    let started = std::time::Instant::now();
    let shape = ReadShape { window: Window { col: 0, row: 0, width, height }, size, algorithm };
    let pixels = read_masked(ds, &bands, shape, req.nodata)?;
    let mask =
        (0..size.0 * size.1).map(|i| if pixels.valid.iter().any(|band| band[i]) { 255 } else { 0 }).collect();
    stats.warp_us = started.elapsed().as_micros() as u64;
    Ok(ReadResult {
        dtype: pixels.dtype as i32,
        band_count: bands.len() as u32,
        width: size.0 as u32,
        height: size.1 as u32,
        pixels: pixels.native,
        mask,
        nodata: pixels.nodata,
        // Moved to the reply region, if it fits, as the answer leaves the worker.
        shared_pixels: 0,
        shared_mask: 0,
    })
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values from the Python oracle are the point
mod tests {
    use super::*;
    use crate::{
        pb::worker::DataType,
        worker::test_assets::{BAND_1, BAND_2, cache, int16_two_bands},
    };

    fn int16s(bytes: &[u8]) -> Vec<i16> {
        bytes.chunks_exact(2).map(|c| i16::from_ne_bytes([c[0], c[1]])).collect()
    }

    #[test]
    fn a_preview_is_decimated_like_rio_tiler() {
        let dir = tempfile::tempdir().unwrap();
        let path = int16_two_bands(dir.path());
        // rio-tiler 9.4.12: Reader(path).preview(max_size=2) -> data
        // [[[2, 4], [10, -9999]], [[-9999, 104], [110, 112]]], mask all 255 (a pixel is
        // valid where any band is).
        let req = PreviewRequest { path: path.clone(), max_size: 2, ..PreviewRequest::default() };
        let r = preview(&mut cache(), &req, &mut ReadStats::default()).unwrap();
        assert_eq!((r.width, r.height, r.band_count), (2, 2, 2));
        assert_eq!((r.dtype, r.nodata), (DataType::Int16 as i32, Some(-9999.0)));
        assert_eq!(int16s(&r.pixels), vec![2, 4, 10, -9999, -9999, 104, 110, 112]);
        assert_eq!(r.mask, vec![255; 4]);
    }

    #[test]
    fn a_small_asset_is_previewed_whole_and_one_band_carries_its_own_mask() {
        let dir = tempfile::tempdir().unwrap();
        let path = int16_two_bands(dir.path());
        let req = PreviewRequest { path: path.clone(), bands: vec![2], ..PreviewRequest::default() };
        let r = preview(&mut cache(), &req, &mut ReadStats::default()).unwrap();
        assert_eq!((r.width, r.height, r.band_count), (4, 3, 1));
        assert_eq!(int16s(&r.pixels), BAND_2.to_vec());
        let expected: Vec<u8> = BAND_2.iter().map(|v| if *v == -9999 { 0 } else { 255 }).collect();
        assert_eq!(r.mask, expected);
        // A width alone: 2 x ceil(2 * 3 / 4) = 2 x 2.
        let req = PreviewRequest { path, width: Some(2), bands: vec![1], ..PreviewRequest::default() };
        let r = preview(&mut cache(), &req, &mut ReadStats::default()).unwrap();
        assert_eq!((r.width, r.height), (2, 2));
        assert_eq!(int16s(&r.pixels), vec![BAND_1[1], BAND_1[3], BAND_1[9], BAND_1[11]]);
        assert_eq!(r.mask, vec![255, 255, 255, 0]);
    }
}
