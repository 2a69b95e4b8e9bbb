//! The statistics job: reads the asset (or the part under a lon/lat bounding box) in
//! its own CRS, decimated through overviews to at most `max_size` pixels on its longer
//! side as rio-tiler's `Reader.statistics` does, and summarises each band
//! ([`crate::worker::summary`]). Only the numbers go back to the front.
//!
//! With a bounding box, the window is the asset's whole pixels under the box (its
//! corners transformed to the asset's CRS, rounded outwards) clipped to the asset: the
//! part of the box outside the asset is not counted as masked pixels.

use crate::ipc::read_plan::output_size;
use crate::pb::worker::{
    BandStatistics, DataType, ErrorKind, ReadStats, StatisticsRequest, StatisticsResult,
};
use crate::worker::{
    dataset_cache::DatasetCache,
    grid::{DEFAULT_MAX_SIZE, Grid, Window},
    masked_read::{ReadShape, band_description, raster_io_algorithm, read_masked, select_bands},
    read::{JobError, open},
    summary::{DEFAULT_HISTOGRAM_BINS, HistogramOptions, SampleKind, SummaryOptions, summarize},
};

fn invalid(message: impl Into<String>) -> JobError {
    JobError::new(ErrorKind::Invalid, message)
}

/// How NumPy's arithmetic treats a band of `dtype`.
fn sample_kind(dtype: DataType) -> SampleKind {
    match dtype {
        DataType::Float32 => SampleKind::Float32,
        DataType::Float64 => SampleKind::Float64,
        _ => SampleKind::Integer,
    }
}

/// The summary options of a request (checked before any pixel is read; the band type
/// is set once known).
fn summary_options(req: &StatisticsRequest) -> Result<SummaryOptions, JobError> {
    let histogram = if req.categorical {
        HistogramOptions::Categorical { categories: req.categories.clone() }
    } else {
        let range = match (req.histogram_min, req.histogram_max) {
            (Some(low), Some(high)) => Some((low, high)),
            (None, None) => None,
            _ => return Err(invalid("histogram_min and histogram_max go together")),
        };
        let count =
            if req.histogram_bins == 0 { DEFAULT_HISTOGRAM_BINS } else { req.histogram_bins as usize };
        HistogramOptions::Bins { count, range }
    };
    SummaryOptions::new(req.percentiles.clone(), histogram, SampleKind::Float64).map_err(invalid)
}

/// The lon/lat bounding box of a request, if it has one.
fn bbox(req: &StatisticsRequest) -> Result<Option<[f64; 4]>, JobError> {
    match req.bbox.as_slice() {
        [] => Ok(None),
        &[west, south, east, north]
            if [west, south, east, north].iter().all(|v| v.is_finite()) && west < east && south < north =>
        {
            Ok(Some([west, south, east, north]))
        }
        other => Err(invalid(format!(
            "bbox {other:?} is not west, south, east, north with west < east and south < north"
        ))),
    }
}

/// Computes the statistics the request asks for.
pub fn statistics(
    cache: &mut DatasetCache,
    req: &StatisticsRequest,
    stats: &mut ReadStats,
) -> Result<StatisticsResult, JobError> {
    let algorithm = raster_io_algorithm(req.resampling)?;
    let bbox = bbox(req)?;
    let options = summary_options(req)?;
    let ds = open(cache, &req.path, stats)?;
    let bands = select_bands(ds, &req.bands)?;
    let grid = Grid::of(ds)?;
    let (width, height) = grid.size();
    let window = match bbox {
        Some(b) => grid.window_of(b)?,
        None => Window { col: 0, row: 0, width, height },
    };
    let max_size = if req.max_size == 0 { DEFAULT_MAX_SIZE } else { req.max_size };
    let size = output_size((window.width, window.height), None, None, max_size);
    let started = std::time::Instant::now();
    let pixels = read_masked(ds, &bands, ReadShape { window, size, algorithm }, req.nodata)?;
    let options = options.with_kind(sample_kind(pixels.dtype));
    let band_statistics = bands
        .iter()
        .zip(pixels.values.iter().zip(&pixels.valid))
        .map(|(band, (values, valid))| {
            let s = summarize(values, valid, &options);
            BandStatistics {
                band: band.index,
                description: band_description(ds, *band),
                min: s.min,
                max: s.max,
                mean: s.mean,
                count: s.count,
                sum: s.sum,
                std: s.std,
                median: s.median,
                majority: s.majority,
                minority: s.minority,
                unique: s.unique,
                percentiles: s.percentiles,
                histogram_counts: s.histogram_counts,
                histogram_values: s.histogram_values,
                valid_percent: s.valid_percent,
                masked_pixels: s.masked_pixels,
                valid_pixels: s.valid_pixels,
            }
        })
        .collect();
    stats.warp_us = started.elapsed().as_micros() as u64;
    Ok(StatisticsResult {
        dtype: pixels.dtype as i32,
        width: size.0 as u32,
        height: size.1 as u32,
        percentiles: options.percentiles().to_vec(),
        bands: band_statistics,
    })
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values from the Python oracle are the point
mod tests {
    use super::*;
    use crate::worker::test_assets::{cache, int16_two_bands};

    fn request(path: &str) -> StatisticsRequest {
        StatisticsRequest { path: path.to_owned(), ..StatisticsRequest::default() }
    }

    // Expected values from rio-tiler 9.4.12 `Reader(path).statistics(...)` on the same
    // file written with rasterio.
    #[test]
    fn statistics_of_the_whole_asset_match_rio_tiler() {
        let dir = tempfile::tempdir().unwrap();
        let path = int16_two_bands(dir.path());
        let r = statistics(&mut cache(), &request(&path), &mut ReadStats::default()).unwrap();
        assert_eq!((r.width, r.height, r.percentiles.clone()), (4, 3, vec![2.0, 98.0]));
        let b1 = &r.bands[0];
        assert_eq!((b1.band, b1.description.as_str()), (1, "b1"));
        assert_eq!((b1.min, b1.max, b1.mean, b1.count, b1.sum), (1.0, 11.0, 6.1, 10.0, 61.0));
        assert_eq!(
            (b1.std, b1.median, b1.majority, b1.minority, b1.unique),
            (3.300_000_000_000_000_3, 6.0, 1.0, 1.0, 10.0)
        );
        assert_eq!(b1.percentiles, vec![1.0, 11.0]);
        assert_eq!(b1.histogram_counts, vec![1, 1, 1, 1, 0, 1, 1, 1, 1, 2]);
        assert_eq!(b1.histogram_values, (1..=11).map(f64::from).collect::<Vec<_>>());
        assert_eq!((b1.valid_percent, b1.masked_pixels, b1.valid_pixels), (83.33, 2.0, 10.0));
        let b2 = &r.bands[1];
        assert_eq!(
            (b2.mean, b2.std, b2.median, b2.sum),
            (106.909_090_909_090_9, 3.315_378_641_601_903_5, 107.0, 1176.0)
        );
        assert_eq!(b2.histogram_values[1..4], [102.1, 103.2, 104.3]);
        assert_eq!((b2.valid_percent, b2.masked_pixels), (91.67, 1.0));
    }

    #[test]
    fn statistics_of_a_decimated_read_match_rio_tiler() {
        let dir = tempfile::tempdir().unwrap();
        let path = int16_two_bands(dir.path());
        // statistics(percentiles=[50], hist_options={"bins": 4}, max_size=2)
        let req =
            StatisticsRequest { max_size: 2, percentiles: vec![50.0], histogram_bins: 4, ..request(&path) };
        let r = statistics(&mut cache(), &req, &mut ReadStats::default()).unwrap();
        assert_eq!((r.width, r.height), (2, 2));
        let b1 = &r.bands[0];
        assert_eq!(
            (b1.min, b1.max, b1.mean, b1.sum, b1.std),
            (2.0, 10.0, 5.333_333_333_333_333, 16.0, 3.399_346_342_395_19)
        );
        assert_eq!((b1.percentiles.clone(), b1.median), (vec![4.0], 4.0));
        assert_eq!(
            (b1.histogram_counts.clone(), b1.histogram_values.clone()),
            (vec![1, 1, 0, 1], vec![2.0, 4.0, 6.0, 8.0, 10.0])
        );
        assert_eq!((b1.valid_percent, b1.masked_pixels), (75.0, 1.0));
        let b2 = &r.bands[1];
        assert_eq!(
            (b2.min, b2.max, b2.median, b2.histogram_counts.clone()),
            (104.0, 112.0, 110.0, vec![1, 0, 0, 2])
        );
    }

    #[test]
    fn a_bounding_box_limits_the_statistics_to_its_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let path = int16_two_bands(dir.path());
        // The box covers columns 1..3 and rows 0..2: band 1 values 2, 3, 6, 7.
        let req =
            StatisticsRequest { bbox: vec![-74.4, 40.5, -73.6, 41.5], bands: vec![1], ..request(&path) };
        let r = statistics(&mut cache(), &req, &mut ReadStats::default()).unwrap();
        assert_eq!((r.width, r.height, r.bands.len()), (2, 2, 1));
        assert_eq!((r.bands[0].min, r.bands[0].max, r.bands[0].sum), (2.0, 7.0, 18.0));
        let outside = StatisticsRequest { bbox: vec![10.0, 10.0, 11.0, 11.0], ..request(&path) };
        let e = statistics(&mut cache(), &outside, &mut ReadStats::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Outside);
        let bad = StatisticsRequest { percentiles: vec![120.0], ..request(&path) };
        let e = statistics(&mut cache(), &bad, &mut ReadStats::default()).unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Invalid, "percentile 120 is not in [0, 100]"));
    }
}
