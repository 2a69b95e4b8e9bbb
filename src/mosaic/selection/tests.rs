//! Every expected raster below was computed by feeding the same values, as
//! `numpy.ma.MaskedArray`s of shape (bands, height, width) whose mask is the asset's
//! pixel mask on every band, in asset order, to rio-tiler 9.4.12's own method classes
//! (`rio_tiler.mosaic.methods.defaults`, numpy 2.4.6), reading `.data`, then taking the
//! pixel mask as rio-tiler's `ImageData` does (valid where any band is valid) and
//! writing the fill value (9) into invalid pixels, as Tessera does.

// The expected floats are numpy's repr, digit for digit, so that they can be checked
// against it; separators would hide that.
#![allow(clippy::unreadable_literal)]

use super::*;

const FILL: f64 = 9.0;

/// A raster of `values` (band-sequential) cast to `dtype`, valid where `mask` is 1.
fn raster(dtype: DataType, width: usize, values: &[f64], mask: &[u8]) -> Raster {
    let bands = values.len() / mask.len();
    let mut r = Raster::empty(dtype, bands, width, mask.len() / width, 0.0);
    for (i, v) in values.iter().enumerate() {
        r.set_value(i, *v);
    }
    r.mask = mask.iter().map(|m| if *m == 0 { 0 } else { 255 }).collect();
    r
}

/// The three-asset, two-band, 3x2 case every method is checked on: pixel 0 is valid
/// everywhere, pixel 1 ties on band 1 (assets 0 and 2), pixel 2 is missing from asset 1,
/// pixel 3 is only in asset 2, pixel 4 is in no asset, pixel 5 is in assets 0 and 1.
/// Values under masked pixels (250) must never show.
fn three_assets() -> [Raster; 3] {
    let r = |values: &[f64], mask: &[u8]| raster(DataType::U8, 3, values, mask);
    [
        r(&[10., 5., 20., 250., 250., 7., 1., 3., 2., 250., 250., 4.], &[1, 1, 1, 0, 0, 1]),
        r(&[30., 9., 250., 250., 250., 8., 2., 1., 250., 250., 250., 9.], &[1, 1, 0, 0, 0, 1]),
        r(&[20., 7., 40., 12., 250., 250., 3., 3., 2., 6., 250., 250.], &[1, 1, 1, 1, 0, 0]),
    ]
}

/// Feeds `assets` to a new selector in `order`, then finishes it.
fn select(method: PixelSelection, assets: &[Raster], order: &[usize]) -> Raster {
    let a = &assets[0];
    let mut s = Selector::new(method, a.dtype, a.bands, a.width, a.height, FILL, assets.len()).unwrap();
    for &i in order {
        s.add(i, &assets[i]);
    }
    assert!(s.is_complete());
    s.finish()
}

fn values(r: &Raster) -> Vec<f64> {
    (0..r.bands * r.pixel_count()).map(|i| r.value(i)).collect()
}

/// Asserts type, band count, values (NaN equal to NaN) and mask.
fn assert_raster(r: &Raster, dtype: DataType, expected: &[f64], mask: &[u8]) {
    assert_eq!(r.dtype, dtype);
    assert_eq!(r.bands, expected.len() / r.pixel_count());
    assert!(r.is_consistent());
    let got = values(r);
    let same = got.iter().zip(expected).all(|(g, e)| g.total_cmp(e).is_eq() || (g.is_nan() && e.is_nan()));
    assert!(same && got.len() == expected.len(), "values {got:?}, expected {expected:?}");
    assert_eq!(r.mask, mask);
}

/// rio-tiler 9.4.12's output for [`three_assets`], per method: type, values, mask.
fn expected(method: PixelSelection) -> (DataType, Vec<f64>, Vec<u8>) {
    const MASK: [u8; 6] = [255, 255, 255, 255, 0, 255];
    let (dtype, values): (DataType, &[f64]) = match method {
        PixelSelection::First => (DataType::U8, &[10., 5., 20., 12., 9., 7., 1., 3., 2., 6., 9., 4.]),
        PixelSelection::Highest => (DataType::U8, &[30., 9., 40., 12., 9., 8., 3., 3., 2., 6., 9., 9.]),
        PixelSelection::Lowest => (DataType::U8, &[10., 5., 20., 12., 9., 7., 1., 1., 2., 6., 9., 4.]),
        PixelSelection::Mean => (DataType::U8, &[20., 7., 30., 12., 9., 7., 2., 2., 2., 6., 9., 6.]),
        PixelSelection::Median => (DataType::U8, &[20., 7., 30., 12., 9., 7., 2., 3., 2., 6., 9., 6.]),
        PixelSelection::Stdev => (
            DataType::F64,
            &[
                8.16496580927726,
                1.632993161855452,
                10.0,
                0.0,
                9.0,
                0.5,
                0.816496580927726,
                0.9428090415820634,
                0.0,
                0.0,
                9.0,
                2.5,
            ],
        ),
        PixelSelection::Count => return (DataType::U8, vec![3., 3., 2., 1., 0., 2.], vec![255; 6]),
        PixelSelection::LastBandLow => (DataType::U8, &[10., 9., 20., 12., 9., 7.]),
        PixelSelection::LastBandHigh => (DataType::U8, &[20., 5., 20., 12., 9., 8.]),
    };
    (dtype, values.to_vec(), MASK.to_vec())
}

#[test]
fn every_method_matches_rio_tiler_on_three_assets_fed_in_order() {
    let assets = three_assets();
    for method in PixelSelection::ALL {
        let (dtype, values, mask) = expected(method);
        let out = select(method, &assets, &[0, 1, 2]);
        assert_eq!(out.dtype, method.output_dtype(DataType::U8), "{}", method.name());
        assert_eq!(out.bands, method.output_bands(2), "{}", method.name());
        assert_raster(&out, dtype, &values, &mask);
    }
}

#[test]
fn every_arrival_order_gives_the_same_raster_even_around_a_skipped_asset() {
    // Four assets, the second skipped: the result is rio-tiler's for the other three.
    let [a, b, c] = three_assets();
    let assets = [a.clone(), a, b, c];
    let events = [0, 1, 2, 3];
    for method in PixelSelection::ALL {
        let (dtype, values, mask) = expected(method);
        for order in permutations(&events) {
            let mut s = Selector::new(method, DataType::U8, 2, 3, 2, FILL, 4).unwrap();
            for i in order.iter().copied() {
                if i == 1 { s.settle(1) } else { s.add(i, &assets[i]) }
            }
            assert!(s.is_complete());
            assert_raster(&s.finish(), dtype, &values, &mask);
        }
    }
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, *first);
            all.push(tail);
        }
    }
    all
}

#[test]
fn only_first_completes_before_every_asset_is_settled() {
    let full = raster(DataType::U8, 2, &[5., 6., 7., 8.], &[1, 1]);
    for method in PixelSelection::ALL {
        let mut s = Selector::new(method, DataType::U8, 2, 2, 1, FILL, 3).unwrap();
        s.add(0, &full);
        assert_eq!(s.is_complete(), method.stops_early(), "{}", method.name());
        s.add(2, &full);
        assert_eq!(s.is_complete(), method.stops_early(), "{}", method.name());
        s.settle(1);
        assert!(s.is_complete(), "{}", method.name());
    }
}

#[test]
fn first_completes_as_soon_as_earlier_assets_are_settled() {
    let full = raster(DataType::U8, 2, &[5., 6.], &[1, 1]);
    let mut s = Selector::new(PixelSelection::First, DataType::U8, 1, 2, 1, FILL, 3).unwrap();
    s.add(1, &full);
    assert!(!s.is_complete(), "asset 0 could still win");
    s.settle(0);
    assert!(s.is_complete(), "asset 2 cannot change anything");
    assert_raster(&s.finish(), DataType::U8, &[5., 6.], &[255, 255]);
}

#[test]
fn mean_median_stdev_of_uint16_truncate_like_rio_tiler() {
    let r = |values: &[f64], mask: &[u8]| raster(DataType::U16, 4, values, mask);
    let assets = [
        r(&[1000., 1., 65535., 500.], &[1, 1, 1, 1]),
        r(&[1001., 2., 65535., 501.], &[1, 1, 1, 1]),
        r(&[1001., 2., 65534., 7.], &[1, 1, 1, 0]),
    ];
    let all = [255; 4];
    let mean = select(PixelSelection::Mean, &assets, &[2, 0, 1]);
    assert_raster(&mean, DataType::U16, &[1000., 1., 65534., 500.], &all);
    let median = select(PixelSelection::Median, &assets, &[1, 2, 0]);
    assert_raster(&median, DataType::U16, &[1001., 2., 65535., 500.], &all);
    let stdev = select(PixelSelection::Stdev, &assets, &[0, 2, 1]);
    let third = 0.4714045207910317;
    assert_raster(&stdev, DataType::F64, &[third, third, third, 0.5], &all);
}

#[test]
fn mean_and_median_of_int16_truncate_toward_zero() {
    let r = |values: &[f64], mask: &[u8]| raster(DataType::I16, 3, values, mask);
    let assets =
        [r(&[-3., -7., 100.], &[1, 1, 1]), r(&[-4., -8., -100.], &[1, 1, 1]), r(&[-4., 0., 1.], &[1, 0, 1])];
    let all = [255; 3];
    assert_raster(&select(PixelSelection::Mean, &assets, &[0, 1, 2]), DataType::I16, &[-3., -7., 0.], &all);
    assert_raster(&select(PixelSelection::Median, &assets, &[2, 1, 0]), DataType::I16, &[-4., -7., 1.], &all);
    assert_raster(
        &select(PixelSelection::Stdev, &assets, &[1, 0, 2]),
        DataType::F64,
        &[0.4714045207910317, 0.5, 81.65101890906745],
        &all,
    );
}

#[test]
fn uint8_sums_do_not_wrap_and_means_truncate() {
    let r = |values: &[f64], mask: &[u8]| raster(DataType::U8, 3, values, mask);
    let assets =
        [r(&[200., 255., 1.], &[1, 1, 1]), r(&[100., 255., 2.], &[1, 1, 1]), r(&[7., 254., 2.], &[0, 1, 1])];
    let all = [255; 3];
    assert_raster(&select(PixelSelection::Mean, &assets, &[1, 2, 0]), DataType::U8, &[150., 254., 1.], &all);
    assert_raster(
        &select(PixelSelection::Median, &assets, &[0, 1, 2]),
        DataType::U8,
        &[150., 255., 2.],
        &all,
    );
    let third = 0.4714045207910317;
    assert_raster(
        &select(PixelSelection::Stdev, &assets, &[2, 0, 1]),
        DataType::F64,
        &[50., third, third],
        &all,
    );
}

/// Two bands of float32: pixel 1 cancels 1e8 in float32 (band 0) and holds an infinity
/// (band 1), pixel 2 is missing from asset 2 (an even median), pixel 3 holds a NaN in
/// band 0.
fn float32_assets() -> [Raster; 3] {
    let r = |values: &[f64], mask: &[u8]| raster(DataType::F32, 2, values, mask);
    [
        r(&[0.1, 1e8, -1.5, f64::NAN, 1., f64::INFINITY, 3., 4.], &[1, 1, 1, 1]),
        r(&[0.2, 1., 2.5, 1., 1., 2., 3., 1.], &[1, 1, 1, 1]),
        r(&[0.4, -1e8, 4., 2., 1., 2., 3., 5.], &[1, 1, 0, 1]),
    ]
}

#[test]
fn float32_mean_sums_in_float32_and_keeps_a_non_finite_band_in_a_valid_pixel() {
    let assets = float32_assets();
    let expected = [0.23333334922790527, 0.0, 0.5, f64::NAN, 1.0, f64::INFINITY, 3.0, 3.3333332538604736];
    for order in permutations(&[0, 1, 2]) {
        let out = select(PixelSelection::Mean, &assets, &order);
        assert_raster(&out, DataType::F32, &expected, &[255; 4]);
    }
}

#[test]
fn float32_median_averages_in_float32_and_propagates_nan() {
    let out = select(PixelSelection::Median, &float32_assets(), &[2, 1, 0]);
    let expected = [0.20000000298023224, 1.0, 0.5, f64::NAN, 1.0, 2.0, 3.0, 4.0];
    assert_raster(&out, DataType::F32, &expected, &[255; 4]);
}

#[test]
fn float32_stdev_is_float64_and_zero_where_the_mean_is_not_finite() {
    let out = select(PixelSelection::Stdev, &float32_assets(), &[1, 2, 0]);
    let expected = [0.12472191475096667, 81649658.0927726, 2.0, 0.0, 0.0, 0.0, 0.0, 1.699673171197595];
    assert_raster(&out, DataType::F64, &expected, &[255; 4]);
}

#[test]
fn float32_median_overflows_to_infinity_like_numpy() {
    // rio-tiler gives inf for both: numpy adds the two middle values in float32 first.
    let r = |values: &[f64]| raster(DataType::F32, 2, values, &[1, 1]);
    let assets = [r(&[3e38, 3e38]), r(&[3e38, 1.]), r(&[1., 3e38])];
    let out = select(PixelSelection::Median, &assets[..1], &[0]);
    assert_raster(&out, DataType::F32, &[f64::INFINITY, f64::INFINITY], &[255, 255]);
    let out = select(PixelSelection::Median, &assets, &[2, 0, 1]);
    assert_raster(&out, DataType::F32, &[f64::INFINITY, f64::INFINITY], &[255, 255]);
}

#[test]
fn float_medians_and_means_of_negative_zeros_are_positive_zero() {
    // numpy sums from +0.0, so -0.0 + -0.0 comes out as 0.0 (rio-tiler: [0.0, 0.5]).
    let r = |values: &[f64]| raster(DataType::F32, 2, values, &[1, 1]);
    let assets = [r(&[-0.0, -0.0]), r(&[-0.0, 1.])];
    for method in [PixelSelection::Median, PixelSelection::Mean] {
        assert_raster(&select(method, &assets, &[1, 0]), DataType::F32, &[0.0, 0.5], &[255, 255]);
    }
}

#[test]
fn float64_mean_is_masked_where_numpy_ma_deems_the_division_unsafe() {
    // numpy.ma masks sum / count when |sum| * f64::MIN_POSITIVE >= count: 1e308 / 1 and
    // 1.2e308 / 2 are masked, and the standard deviation there is 0 (rio-tiler:
    // mean [--, --, 1.5], stdev [0.0, 0.0, 0.5]).
    let r = |values: &[f64], mask: &[u8]| raster(DataType::F64, 3, values, mask);
    let assets = [r(&[1e308, 6e307, 1.], &[1, 1, 1]), r(&[1., 6e307, 2.], &[0, 1, 1])];
    let mean = select(PixelSelection::Mean, &assets, &[0, 1]);
    assert_raster(&mean, DataType::F64, &[FILL, FILL, 1.5], &[0, 0, 255]);
    let stdev = select(PixelSelection::Stdev, &assets, &[1, 0]);
    assert_raster(&stdev, DataType::F64, &[0.0, 0.0, 0.5], &[255; 3]);
}

#[test]
fn float32_highest_and_lowest_keep_a_nan_taken_first() {
    let assets = float32_assets();
    let highest = [0.4000000059604645, 100000000.0, 2.5, f64::NAN, 1.0, f64::INFINITY, 3.0, 5.0];
    let lowest = [0.10000000149011612, -100000000.0, -1.5, f64::NAN, 1.0, 2.0, 3.0, 1.0];
    for order in permutations(&[0, 1, 2]) {
        assert_raster(&select(PixelSelection::Highest, &assets, &order), DataType::F32, &highest, &[255; 4]);
        assert_raster(&select(PixelSelection::Lowest, &assets, &order), DataType::F32, &lowest, &[255; 4]);
    }
}

#[test]
fn last_band_methods_need_two_bands_and_count_at_most_255_assets() {
    for method in [PixelSelection::LastBandLow, PixelSelection::LastBandHigh] {
        assert_eq!(method.check(1, 2), Err(SelectionError::TooFewBands { method: method.name(), bands: 1 }));
        assert!(Selector::new(method, DataType::U8, 1, 1, 1, 0.0, 1).is_err());
        assert_eq!(method.check(2, 300), Ok(()));
    }
    assert_eq!(PixelSelection::Count.check(1, 255), Ok(()));
    assert_eq!(
        PixelSelection::Count.check(1, 256),
        Err(SelectionError::TooManyAssets { assets: 256, limit: 255 })
    );
}

#[test]
fn a_raster_of_the_wrong_shape_counts_as_skipped() {
    let good = raster(DataType::U8, 2, &[4., 8.], &[1, 1]);
    let wrong = raster(DataType::U16, 2, &[1., 1.], &[1, 1]);
    let mut s = Selector::new(PixelSelection::Count, DataType::U8, 1, 2, 1, FILL, 2).unwrap();
    s.add(0, &wrong);
    s.add(1, &good);
    assert!(s.is_complete());
    assert_raster(&s.finish(), DataType::U8, &[1., 1.], &[255, 255]);
}

#[test]
fn names_are_rio_tilers() {
    let names: Vec<_> = PixelSelection::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(
        names,
        ["first", "highest", "lowest", "mean", "median", "stdev", "count", "lastbandlow", "lastbandhigh"]
    );
}
