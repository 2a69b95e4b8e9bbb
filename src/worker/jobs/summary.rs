//! The statistics of one band's pixels, computed in the worker so that only numbers
//! cross the IPC channel.
//!
//! The numbers match rio-tiler's `get_array_statistics` (no coverage array) to the last
//! bit, which fixes some choices that a textbook would make otherwise:
//! - sums are NumPy's pairwise sums over the same sequences NumPy sums (the mean and
//!   the sum over the whole band with masked pixels as 0, the standard deviation over
//!   the valid values alone);
//! - percentiles and the median are rio-tiler's weighted quantiles with unit weights:
//!   the first sorted valid value whose rank reaches `p / 100 × count`, with no
//!   interpolation between neighbours;
//! - the histogram follows `numpy.histogram`: `bins` equal bins over the valid range
//!   (or the given one), right edge included in the last bin, and for `float32` bands
//!   the edges and bin arithmetic in single precision as NumPy does them.
//!
//! NaN and infinite values count as masked.

// Exact float equality is the specification here: NumPy groups, compares and tests
// values exactly, and the tests assert bit-for-bit agreement with it.
#![allow(clippy::float_cmp)]

use crate::echo::number;
use crate::ipc::{MAX_HISTOGRAM_BINS, MAX_PERCENTILES};

/// Percentiles computed when a request names none.
pub const DEFAULT_PERCENTILES: [f64; 2] = [2.0, 98.0];
/// Histogram bins when a request sets none.
pub const DEFAULT_HISTOGRAM_BINS: usize = 10;

/// How a band's values are stored, which decides NumPy's arithmetic precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Any integer type.
    Integer,
    /// `float32`: histogram edges and bin arithmetic in single precision.
    Float32,
    /// `float64`.
    Float64,
}

/// What the histogram counts.
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramOptions {
    /// Equal bins between `range` (or the valid values' minimum and maximum).
    Bins {
        /// Number of bins, 1..=[`MAX_HISTOGRAM_BINS`].
        count: usize,
        /// Lower and upper edges, finite, lower <= upper.
        range: Option<(f64, f64)>,
    },
    /// One count per distinct value (`categories` empty) or per listed value.
    Categorical {
        /// The values to count; empty = every distinct valid value.
        categories: Vec<f64>,
    },
}

/// Options of [`summarize`], valid by construction ([`SummaryOptions::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryOptions {
    percentiles: Vec<f64>,
    histogram: HistogramOptions,
    kind: SampleKind,
}

impl SummaryOptions {
    /// Checks the options: percentiles in [0, 100] (empty = [`DEFAULT_PERCENTILES`]),
    /// 1..=[`MAX_HISTOGRAM_BINS`] bins, a finite, ordered histogram range.
    pub fn new(percentiles: Vec<f64>, histogram: HistogramOptions, kind: SampleKind) -> Result<Self, String> {
        let percentiles = if percentiles.is_empty() { DEFAULT_PERCENTILES.to_vec() } else { percentiles };
        if percentiles.len() > MAX_PERCENTILES {
            return Err(format!("at most {MAX_PERCENTILES} percentiles, not {}", percentiles.len()));
        }
        if let Some(bad) = percentiles.iter().find(|p| !(0.0..=100.0).contains(*p)) {
            return Err(format!("percentile {} is not in [0, 100]", number(*bad)));
        }
        match &histogram {
            HistogramOptions::Bins { count, range } => {
                if !(1..=MAX_HISTOGRAM_BINS).contains(count) {
                    return Err(format!("histogram bins must be in 1..={MAX_HISTOGRAM_BINS}, not {count}"));
                }
                if let Some((low, high)) = range {
                    if !low.is_finite() || !high.is_finite() || low > high {
                        return Err(format!(
                            "the histogram range [{}, {}] must be finite with min <= max",
                            number(*low),
                            number(*high)
                        ));
                    }
                }
            }
            HistogramOptions::Categorical { categories } => {
                if categories.len() > MAX_HISTOGRAM_BINS {
                    return Err(format!("at most {MAX_HISTOGRAM_BINS} categories, not {}", categories.len()));
                }
            }
        }
        Ok(Self { percentiles, histogram, kind })
    }

    /// The same options for a band stored as `kind`.
    #[must_use]
    pub fn with_kind(self, kind: SampleKind) -> Self {
        Self { kind, ..self }
    }

    /// The percentiles computed, in order.
    #[must_use]
    pub fn percentiles(&self) -> &[f64] {
        &self.percentiles
    }
}

/// The statistics of one band. Without valid pixels, every value statistic is NaN and
/// `count` and `sum` are 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Smallest valid value.
    pub min: f64,
    /// Largest valid value.
    pub max: f64,
    /// Mean of the valid values.
    pub mean: f64,
    /// Number of valid values.
    pub count: f64,
    /// Sum of the valid values.
    pub sum: f64,
    /// Population standard deviation.
    pub std: f64,
    /// The 50th percentile, as the percentiles are computed.
    pub median: f64,
    /// Most frequent value (the smallest on a tie).
    pub majority: f64,
    /// Least frequent value (the smallest on a tie).
    pub minority: f64,
    /// Number of distinct valid values.
    pub unique: f64,
    /// One per option percentile.
    pub percentiles: Vec<f64>,
    /// Histogram counts.
    pub histogram_counts: Vec<u64>,
    /// Bin edges (one more than the counts), or the categories counted.
    pub histogram_values: Vec<f64>,
    /// Valid pixels in percent of all pixels, rounded to 2 decimals.
    pub valid_percent: f64,
    /// Masked pixels (including NaN and infinities).
    pub masked_pixels: f64,
    /// Valid pixels.
    pub valid_pixels: f64,
}

/// The statistics of `values` where `valid` is true (the two have the same length, in
/// the band's row-major order).
#[must_use]
pub fn summarize(values: &[f64], valid: &[bool], options: &SummaryOptions) -> Summary {
    debug_assert_eq!(values.len(), valid.len());
    let is_valid = |(v, ok): (&f64, &bool)| *ok && v.is_finite();
    let filled: Vec<f64> = values.iter().zip(valid).map(|p| if is_valid(p) { *p.0 } else { 0.0 }).collect();
    let compressed: Vec<f64> = values.iter().zip(valid).filter(|p| is_valid(*p)).map(|p| *p.0).collect();
    let mut sorted = compressed.clone();
    sorted.sort_by(f64::total_cmp);
    let (keys, counts) = distinct(&sorted);

    let total = values.len();
    let n = compressed.len();
    let valid_percent = if total == 0 { 0.0 } else { round2((n as f64 / total as f64).min(1.0) * 100.0) };
    let (histogram_counts, histogram_values) = match &options.histogram {
        HistogramOptions::Bins { count, range } => histogram(&compressed, *count, *range, options.kind),
        HistogramOptions::Categorical { categories } => categorical(&keys, &counts, categories, options.kind),
    };
    let mut summary = Summary {
        min: f64::NAN,
        max: f64::NAN,
        mean: f64::NAN,
        count: 0.0,
        sum: 0.0,
        std: f64::NAN,
        median: f64::NAN,
        majority: f64::NAN,
        minority: f64::NAN,
        unique: keys.len() as f64,
        percentiles: vec![f64::NAN; options.percentiles.len()],
        histogram_counts,
        histogram_values,
        valid_percent,
        masked_pixels: (total - n) as f64,
        valid_pixels: n as f64,
    };
    if n == 0 {
        return summary;
    }
    let count = n as f64;
    let sum = pairwise_sum(&filled);
    let average = pairwise_sum(&compressed) / count;
    let squares: Vec<f64> = compressed.iter().map(|v| (v - average) * (v - average)).collect();
    summary.min = sorted[0];
    summary.max = sorted[n - 1];
    summary.mean = sum / count;
    summary.count = count;
    summary.sum = sum;
    summary.std = (pairwise_sum(&squares) / count).sqrt();
    summary.median = quantile(&sorted, 0.5);
    summary.percentiles = options.percentiles.iter().map(|p| quantile(&sorted, p / 100.0)).collect();
    summary.majority = first_extreme(&keys, &counts, |c, best| c > best);
    summary.minority = first_extreme(&keys, &counts, |c, best| c < best);
    summary
}

/// NumPy's pairwise summation (`np.add.reduce` over a contiguous float64 array): blocks
/// of at most 128 values summed in 8 interleaved accumulators, halves added
/// recursively. Matching it matters: a naive loop differs in the last bits.
#[must_use]
pub fn pairwise_sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        return values.iter().fold(0.0, |acc, v| acc + v);
    }
    if n <= BLOCK {
        let mut r = [0.0; 8];
        r.copy_from_slice(&values[..8]);
        let whole = n - n % 8;
        for chunk in values[8..whole].chunks_exact(8) {
            for (acc, v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &values[whole..] {
            res += v;
        }
        return res;
    }
    let mut half = n / 2;
    half -= half % 8;
    pairwise_sum(&values[..half]) + pairwise_sum(&values[half..])
}

/// rio-tiler's weighted quantile with unit weights: the first sorted value whose rank
/// (1-based) reaches `q × count`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let target = q * sorted.len() as f64;
    let index = if target <= 1.0 { 0 } else { target.ceil() as usize - 1 };
    sorted[index.min(sorted.len() - 1)]
}

/// The distinct values of a sorted slice and how often each occurs.
fn distinct(sorted: &[f64]) -> (Vec<f64>, Vec<u64>) {
    let mut keys: Vec<f64> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    for v in sorted {
        match (keys.last(), counts.last_mut()) {
            (Some(last), Some(c)) if last == v => *c += 1,
            _ => {
                keys.push(*v);
                counts.push(1);
            }
        }
    }
    (keys, counts)
}

/// The first key whose count beats every earlier one under `better` (NumPy's
/// `argmax`/`argmin`).
fn first_extreme(keys: &[f64], counts: &[u64], better: impl Fn(u64, u64) -> bool) -> f64 {
    let mut best = 0;
    for (i, c) in counts.iter().enumerate() {
        if better(*c, counts[best]) {
            best = i;
        }
    }
    keys[best]
}

/// Python's `round(x, 2)`: the exact binary value rounded half-to-even at 2 decimals
/// (Rust's formatting rounds the same way).
fn round2(x: f64) -> f64 {
    format!("{x:.2}").parse().unwrap_or(x)
}

/// `numpy.histogram(values, bins, range)`.
fn histogram(
    values: &[f64],
    bins: usize,
    range: Option<(f64, f64)>,
    kind: SampleKind,
) -> (Vec<u64>, Vec<f64>) {
    let single = kind == SampleKind::Float32;
    // The range NumPy finds itself is a pair of scalars of the band's type: for float32,
    // the widening of a constant range and the edges are then computed in float32.
    let single_range = single && range.is_none() && !values.is_empty();
    let (mut first, mut last) = match range {
        Some(r) => r,
        None if values.is_empty() => (0.0, 1.0),
        None => {
            values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
        }
    };
    if first == last {
        if single_range {
            (first, last) = (f64::from(first as f32 - 0.5), f64::from(last as f32 + 0.5));
        } else {
            (first, last) = (first - 0.5, last + 0.5);
        }
    }
    // numpy.linspace: i * step + first, the last edge set to `last`; in float32 for a
    // float32 range, else in float64 and cast to the bins' type.
    let mut edges: Vec<f64> = if single_range {
        let (first32, last32) = (first as f32, last as f32);
        let step = (last32 - first32) / bins as f32;
        (0..=bins).map(|i| f64::from(i as f32 * step + first32)).collect()
    } else {
        let step = (last - first) / bins as f64;
        let cast = |v: f64| if single { f64::from(v as f32) } else { v };
        (0..=bins).map(|i| cast(i as f64 * step + first)).collect()
    };
    edges[bins] = if single { f64::from(last as f32) } else { last };

    let mut counts = vec![0u64; bins];
    let denominator = last - first;
    for &x in values {
        if x < edges[0] || x > edges[bins] {
            continue;
        }
        let position = if single {
            f64::from(((x as f32 - first as f32) / denominator as f32) * bins as f32)
        } else {
            ((x - first) / denominator) * bins as f64
        };
        let mut index = (position as usize).min(bins - 1);
        // NumPy's one-step corrections: the arithmetic may be off by an ulp at an edge.
        if x < edges[index] {
            index -= 1;
        } else if index != bins - 1 && x >= edges[index + 1] {
            index += 1;
        }
        counts[index] += 1;
    }
    (counts, edges)
}

/// rio-tiler's categorical histogram: the count of each category (cast to the band's
/// type, as NumPy's `astype` does), or of every distinct value.
fn categorical(keys: &[f64], counts: &[u64], categories: &[f64], kind: SampleKind) -> (Vec<u64>, Vec<f64>) {
    if categories.is_empty() {
        return (counts.to_vec(), keys.to_vec());
    }
    let cast = |c: f64| match kind {
        SampleKind::Integer => c.trunc(),
        SampleKind::Float32 => f64::from(c as f32),
        SampleKind::Float64 => c,
    };
    let values: Vec<f64> = categories.iter().map(|c| cast(*c)).collect();
    let found = values.iter().map(|v| keys.iter().position(|k| k == v).map_or(0, |i| counts[i])).collect();
    (found, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bins(count: usize, range: Option<(f64, f64)>) -> HistogramOptions {
        HistogramOptions::Bins { count, range }
    }

    fn defaults(kind: SampleKind) -> SummaryOptions {
        SummaryOptions::new(vec![], bins(DEFAULT_HISTOGRAM_BINS, None), kind).unwrap()
    }

    #[test]
    fn pairwise_sum_matches_numpy_bit_for_bit() {
        // np.sum(np.array([1e16] + [1.0] * 199)) == 1.0000000000000188e16 in NumPy 2.4.6
        // (a left-to-right loop gives 1e16: each 1.0 is lost against 1e16 alone).
        let mut values = vec![1e16];
        values.extend(std::iter::repeat_n(1.0, 199));
        assert_eq!(pairwise_sum(&values), 1.000_000_000_000_018_8e16);
        assert_eq!(values.iter().sum::<f64>(), 1e16);
        // np.sum(np.array([0.1] * 7)) == 0.7 (short arrays: a plain loop).
        assert_eq!(pairwise_sum(&[0.1; 7]), 0.7);
        assert_eq!(pairwise_sum(&[]), 0.0);
    }

    #[test]
    fn statistics_match_rio_tiler_on_a_masked_integer_band() {
        // rio_tiler.utils.get_array_statistics(numpy.ma.MaskedArray(
        //     numpy.array([[[1, 2, 3, 4], [5, 6, 7, 0]]], dtype="uint8"),
        //     mask=[[[0, 0, 0, 0], [0, 0, 0, 1]]]))  (rio-tiler 9.4.12, NumPy 2.4.6)
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0];
        let valid = [true, true, true, true, true, true, true, false];
        let s = summarize(&values, &valid, &defaults(SampleKind::Integer));
        assert_eq!((s.min, s.max, s.mean, s.count, s.sum), (1.0, 7.0, 4.0, 7.0, 28.0));
        assert_eq!(s.std, 2.0);
        assert_eq!((s.median, s.majority, s.minority, s.unique), (4.0, 1.0, 1.0, 7.0));
        assert_eq!(s.percentiles, vec![1.0, 7.0]);
        assert_eq!(s.histogram_counts, vec![1, 1, 0, 1, 0, 1, 1, 0, 1, 1]);
        assert_eq!(
            s.histogram_values,
            vec![1.0, 1.6, 2.2, 2.8, 3.4, 4.0, 4.6, 5.2, 5.8, 6.399_999_999_999_999_5, 7.0]
        );
        assert_eq!((s.valid_percent, s.masked_pixels, s.valid_pixels), (87.5, 1.0, 7.0));
    }

    #[test]
    fn the_median_and_percentiles_take_a_sorted_value_without_interpolation() {
        // get_array_statistics(numpy.ma.MaskedArray(numpy.array([[[1, 2, 3, 4]]],
        //     dtype="float64")), percentiles=[2, 25, 50, 75, 98, 100])
        // median 2.0 where numpy.median says 2.5; percentile_25 1.0, _75 3.0.
        let options =
            SummaryOptions::new(vec![2.0, 25.0, 50.0, 75.0, 98.0, 100.0], bins(4, None), SampleKind::Float64)
                .unwrap();
        let s = summarize(&[4.0, 1.0, 3.0, 2.0], &[true; 4], &options);
        assert_eq!(s.median, 2.0);
        assert_eq!(s.percentiles, vec![1.0, 1.0, 2.0, 3.0, 4.0, 4.0]);
        assert_eq!(s.std, 1.118_033_988_749_895);
        assert_eq!(s.histogram_counts, vec![1, 1, 1, 1]);
        assert_eq!(s.histogram_values, vec![1.0, 1.75, 2.5, 3.25, 4.0]);
    }

    #[test]
    fn float_sums_and_spread_match_numpy_to_the_last_bit() {
        // get_array_statistics(numpy.ma.MaskedArray(a, mask=numpy.zeros(a.shape, bool)),
        //     percentiles=[50], bins=3) with a = numpy.array([[[0.1, 0.2, 0.3],
        //     [1e-3, numpy.nan, 7.25]]]) (a full mask array, as every read has: with
        //     `nomask`, rio-tiler's fix_invalid would count the NaN as a valid 1e20).
        let values = [0.1, 0.2, 0.3, 1e-3, f64::NAN, 7.25];
        let options = SummaryOptions::new(vec![50.0], bins(3, None), SampleKind::Float64).unwrap();
        let s = summarize(&values, &[true; 6], &options);
        assert_eq!(s.sum, 7.851);
        assert_eq!(s.mean, 1.5702);
        assert_eq!(s.std, 2.841_649_549_117_554_4);
        assert_eq!((s.median, s.percentiles[0]), (0.2, 0.2));
        assert_eq!((s.masked_pixels, s.valid_pixels, s.valid_percent), (1.0, 5.0, 83.33));
        assert_eq!(s.histogram_counts, vec![4, 0, 1]);
        assert_eq!(s.histogram_values, vec![0.001, 2.417_333_333_333_333, 4.833_666_666_666_667, 7.25]);
    }

    #[test]
    fn float32_histograms_use_single_precision_edges() {
        // get_array_statistics(numpy.ma.MaskedArray(numpy.array([[[0.1, 0.7, 0.3]]],
        //     dtype="float32")), bins=3)
        let values = [f64::from(0.1f32), f64::from(0.7f32), f64::from(0.3f32)];
        let options = SummaryOptions::new(vec![], bins(3, None), SampleKind::Float32).unwrap();
        let s = summarize(&values, &[true; 3], &options);
        assert_eq!(s.histogram_counts, vec![1, 1, 1]);
        assert_eq!(
            s.histogram_values,
            vec![
                0.100_000_001_490_116_12,
                0.299_999_982_118_606_57,
                0.499_999_970_197_677_6,
                0.699_999_988_079_071
            ]
        );
        assert_eq!(s.mean, 0.366_666_667_163_372_04);
        assert_eq!(s.std, 0.249_443_818_881_924_6);
        // numpy.histogram(numpy.array([0.1, 0.1], dtype="float32"), bins=3)[1]: the
        // widened constant range is float32 too.
        let s = summarize(&[values[0]; 2], &[true; 2], &options);
        assert_eq!(
            s.histogram_values,
            vec![
                -0.400_000_005_960_464_5,
                -0.066_666_662_693_023_68,
                0.266_666_680_574_417_1,
                0.600_000_023_841_857_9
            ]
        );
        // numpy.histogram(numpy.array([0.1, 0.7, 0.3, 0.35], dtype="float32"), bins=3,
        //     range=(0, 0.7)) -> [1, 2, 1], edges cast from float64.
        let ranged = SummaryOptions::new(vec![], bins(3, Some((0.0, 0.7))), SampleKind::Float32).unwrap();
        let s = summarize(&[values[0], values[1], values[2], f64::from(0.35f32)], &[true; 4], &ranged);
        assert_eq!(s.histogram_counts, vec![1, 2, 1]);
        assert_eq!(
            s.histogram_values,
            vec![0.0, 0.233_333_334_326_744_08, 0.466_666_668_653_488_16, 0.699_999_988_079_071]
        );
    }

    #[test]
    fn a_given_range_drops_values_outside_and_keeps_the_right_edge() {
        // numpy.histogram([0, 1, 5, 10, 11], bins=2, range=(0, 10)) -> [2, 2], [0, 5, 10]
        let options = SummaryOptions::new(vec![], bins(2, Some((0.0, 10.0))), SampleKind::Integer).unwrap();
        let s = summarize(&[0.0, 1.0, 5.0, 10.0, 11.0], &[true; 5], &options);
        assert_eq!(s.histogram_counts, vec![2, 2]);
        assert_eq!(s.histogram_values, vec![0.0, 5.0, 10.0]);
    }

    #[test]
    fn a_constant_band_gets_a_unit_wide_histogram() {
        // get_array_statistics(numpy.ma.zeros((1, 2, 2)))["histogram"]
        let s = summarize(&[0.0; 4], &[true; 4], &defaults(SampleKind::Float64));
        let mut counts = vec![0; 10];
        counts[5] = 4;
        assert_eq!(s.histogram_counts, counts);
        assert_eq!(s.histogram_values[..3], [-0.5, -0.4, -0.3]);
        assert_eq!(s.histogram_values[3], -0.199_999_999_999_999_96);
        assert_eq!(s.histogram_values[10], 0.5);
        assert_eq!((s.std, s.unique), (0.0, 1.0));
    }

    #[test]
    fn a_fully_masked_band_has_nan_statistics_and_zero_counts() {
        // get_array_statistics(numpy.ma.MaskedArray(numpy.zeros((1, 1, 2)), mask=True))
        let s = summarize(&[3.0, 4.0], &[false, false], &defaults(SampleKind::Integer));
        assert!(s.min.is_nan() && s.max.is_nan() && s.mean.is_nan() && s.std.is_nan());
        assert!(s.median.is_nan() && s.majority.is_nan() && s.percentiles.iter().all(|p| p.is_nan()));
        assert_eq!((s.count, s.sum, s.unique), (0.0, 0.0, 0.0));
        assert_eq!((s.valid_percent, s.masked_pixels, s.valid_pixels), (0.0, 2.0, 0.0));
        assert_eq!(s.histogram_counts, vec![0; 10]);
        assert_eq!(s.histogram_values[10], 1.0);
    }

    #[test]
    fn categorical_histograms_count_each_value() {
        // get_array_statistics(numpy.ma.MaskedArray(numpy.array([[[1, 1, 2, 5]]],
        //     dtype="uint8")), categorical=True[, categories=[1, 3, 5.7]])
        let all = SummaryOptions::new(
            vec![],
            HistogramOptions::Categorical { categories: vec![] },
            SampleKind::Integer,
        )
        .unwrap();
        let s = summarize(&[1.0, 1.0, 2.0, 5.0], &[true; 4], &all);
        assert_eq!((s.histogram_counts, s.histogram_values), (vec![2, 1, 1], vec![1.0, 2.0, 5.0]));
        assert_eq!((s.majority, s.minority), (1.0, 2.0));
        let listed = SummaryOptions::new(
            vec![],
            HistogramOptions::Categorical { categories: vec![1.0, 3.0, 5.7] },
            SampleKind::Integer,
        )
        .unwrap();
        let s = summarize(&[1.0, 1.0, 2.0, 5.0], &[true; 4], &listed);
        assert_eq!((s.histogram_counts, s.histogram_values), (vec![2, 0, 1], vec![1.0, 3.0, 5.0]));
    }

    #[test]
    fn invalid_options_are_refused() {
        let bad = |p: Vec<f64>, h| SummaryOptions::new(p, h, SampleKind::Integer).unwrap_err();
        assert_eq!(bad(vec![101.0], bins(10, None)), "percentile 101 is not in [0, 100]");
        assert_eq!(bad(vec![], bins(0, None)), "histogram bins must be in 1..=10000, not 0");
        assert_eq!(
            bad(vec![], bins(10, Some((5.0, 1.0)))),
            "the histogram range [5, 1] must be finite with min <= max"
        );
        assert_eq!(
            SummaryOptions::new(vec![], bins(10, None), SampleKind::Integer).unwrap().percentiles(),
            &[2.0, 98.0]
        );
    }
}
