//! Colours and custom colormaps given in a request, validated once: exact values
//! (`value → colour`) and intervals (`[min, max) → colour`).

use super::ColormapError;

/// Most entries an exact-values colormap may have.
pub const MAX_EXACT_ENTRIES: usize = 256;
/// Most intervals an interval colormap may have.
pub const MAX_INTERVALS: usize = 256;

/// A colour with alpha, each channel 0..=255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgba(pub [u8; 4]);

impl Rgba {
    /// From 3 (RGB, opaque) or 4 (RGBA) channel values, each 0..=255.
    pub fn from_channels(channels: &[i64]) -> Result<Self, ColormapError> {
        if channels.len() != 3 && channels.len() != 4 {
            return Err(ColormapError::ChannelCount { count: channels.len() });
        }
        let mut rgba = [255; 4];
        for (slot, &value) in rgba.iter_mut().zip(channels) {
            *slot = u8::try_from(value).map_err(|_| ColormapError::ChannelValue { value })?;
        }
        Ok(Self(rgba))
    }

    /// From `#RGB`, `#RGBA`, `#RRGGBB` or `#RRGGBBAA` (hex digits in either case); the
    /// alpha is 255 when absent, and a one-digit channel `X` means `XX`.
    pub fn from_hex(text: &str) -> Result<Self, ColormapError> {
        let invalid = || ColormapError::HexColor { text: text.to_owned() };
        let digits = text.strip_prefix('#').ok_or_else(invalid)?;
        if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let width = match digits.len() {
            3 | 4 => 1,
            6 | 8 => 2,
            _ => return Err(invalid()),
        };
        let mut rgba = [255; 4];
        for (slot, chunk) in rgba.iter_mut().zip(digits.as_bytes().chunks(width)) {
            let chunk = std::str::from_utf8(chunk).map_err(|_| invalid())?;
            let value = u8::from_str_radix(chunk, 16).map_err(|_| invalid())?;
            *slot = if width == 1 { value * 17 } else { value };
        }
        Ok(Self(rgba))
    }
}

/// Validated exact-value entries: finite, distinct values (`-0` is `0`), 1 to
/// [`MAX_EXACT_ENTRIES`] of them, in the order given (which decides between values that
/// become equal once rounded to `float32`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ExactEntries(pub(super) Vec<(f64, Rgba)>);

impl ExactEntries {
    pub(super) fn new(mut entries: Vec<(f64, Rgba)>) -> Result<Self, ColormapError> {
        check_count(entries.len(), MAX_EXACT_ENTRIES, "values")?;
        for (value, _) in &mut entries {
            if !value.is_finite() {
                return Err(ColormapError::NotFiniteValue { value: *value });
            }
            // numpy compares -0.0 equal to 0.0; one key stands for both.
            *value += 0.0;
        }
        let mut values: Vec<f64> = entries.iter().map(|(v, _)| *v).collect();
        values.sort_by(f64::total_cmp);
        // Values are finite and `-0` is gone, so total order equality is numeric equality.
        if let Some(pair) = values.windows(2).find(|pair| pair[0].total_cmp(&pair[1]).is_eq()) {
            return Err(ColormapError::DuplicateValue { value: pair[0] });
        }
        Ok(Self(entries))
    }

    /// The 256-entry table when the values are exactly the integers 0..=255: rio-tiler
    /// then indexes a table with the value cast to uint8 instead of matching values.
    pub(super) fn as_full_table(&self) -> Option<[u8; 1024]> {
        if self.0.len() != 256 {
            return None;
        }
        let mut table = [0; 1024];
        for (value, color) in &self.0 {
            // Values are distinct, so 256 integers in 0..=255 fill every slot once.
            if value.fract() != 0.0 || !(0.0..=255.0).contains(value) {
                return None;
            }
            let at = 4 * (*value as usize);
            table[at..at + 4].copy_from_slice(&color.0);
        }
        Some(table)
    }
}

/// One `[min, max)` interval and its colour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Interval {
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) color: Rgba,
}

/// Validated intervals: finite bounds, `min < max`, 1 to [`MAX_INTERVALS`] of them,
/// sorted by `min`, none overlapping (touching is fine: `[0, 1)` then `[1, 2)`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Intervals(pub(super) Vec<Interval>);

impl Intervals {
    pub(super) fn new(entries: Vec<(f64, f64, Rgba)>) -> Result<Self, ColormapError> {
        check_count(entries.len(), MAX_INTERVALS, "intervals")?;
        let mut intervals = Vec::with_capacity(entries.len());
        for (min, max, color) in entries {
            if !min.is_finite() || !max.is_finite() {
                return Err(ColormapError::NotFiniteInterval { min, max });
            }
            if min >= max {
                return Err(ColormapError::InvertedInterval { min, max });
            }
            intervals.push(Interval { min: min + 0.0, max: max + 0.0, color });
        }
        intervals.sort_by(|a, b| a.min.total_cmp(&b.min));
        if let Some(pair) = intervals.windows(2).find(|pair| pair[1].min < pair[0].max) {
            return Err(ColormapError::OverlappingIntervals {
                first: (pair[0].min, pair[0].max),
                second: (pair[1].min, pair[1].max),
            });
        }
        Ok(Self(intervals))
    }
}

fn check_count(count: usize, max: usize, what: &'static str) -> Result<(), ColormapError> {
    if count == 0 {
        return Err(ColormapError::Empty { what, max });
    }
    if count > max {
        return Err(ColormapError::TooManyEntries { what, count, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Rgba = Rgba([255, 0, 0, 255]);

    #[test]
    fn colours_take_three_or_four_channels_in_range() {
        assert_eq!(Rgba::from_channels(&[1, 2, 3]).unwrap(), Rgba([1, 2, 3, 255]));
        assert_eq!(Rgba::from_channels(&[1, 2, 3, 0]).unwrap(), Rgba([1, 2, 3, 0]));
        assert_eq!(
            Rgba::from_channels(&[1, 2]).unwrap_err().to_string(),
            "a colour has 3 (RGB) or 4 (RGBA) channels, not 2"
        );
        assert_eq!(
            Rgba::from_channels(&[0, 256, 0]).unwrap_err().to_string(),
            "colour channel 256 is out of range: channels and alpha are 0 to 255"
        );
        assert!(Rgba::from_channels(&[0, 0, -1, 255]).is_err());
    }

    #[test]
    fn hex_colours_read_like_rio_tilers_parse_color() {
        // parse_color("#FFF") == (255, 255, 255, 255), "#FF0000" == (255, 0, 0, 255).
        assert_eq!(Rgba::from_hex("#FFF").unwrap(), Rgba([255, 255, 255, 255]));
        assert_eq!(Rgba::from_hex("#1234").unwrap(), Rgba([0x11, 0x22, 0x33, 0x44]));
        assert_eq!(Rgba::from_hex("#FF00").unwrap(), Rgba([255, 255, 0, 0]));
        assert_eq!(Rgba::from_hex("#FF0000").unwrap(), RED);
        assert_eq!(Rgba::from_hex("#ff000080").unwrap(), Rgba([255, 0, 0, 128]));
        for bad in ["FF0000", "#FF000", "#GG0000", "#", "#ff0000ff00"] {
            assert_eq!(
                Rgba::from_hex(bad).unwrap_err().to_string(),
                format!("colour '{bad}' is not #RGB, #RGBA, #RRGGBB or #RRGGBBAA")
            );
        }
    }

    #[test]
    fn exact_values_must_be_finite_distinct_and_at_most_256() {
        let e = ExactEntries::new(vec![(2.0, RED), (-0.0, RED), (1.0, RED)]).unwrap();
        assert_eq!(
            e.0.iter().map(|(v, _)| v.to_bits()).collect::<Vec<_>>(),
            [2.0f64, 0.0, 1.0].map(f64::to_bits)
        );
        assert_eq!(
            ExactEntries::new(vec![]).unwrap_err().to_string(),
            "colormap has no values: give 1 to 256"
        );
        let many = (0..257).map(|i| (f64::from(i), RED)).collect();
        assert_eq!(
            ExactEntries::new(many).unwrap_err().to_string(),
            "colormap has 257 values: at most 256 are allowed"
        );
        assert_eq!(
            ExactEntries::new(vec![(0.0, RED), (-0.0, RED)]).unwrap_err().to_string(),
            "colormap value 0 is given twice: each value takes one colour"
        );
        assert_eq!(
            ExactEntries::new(vec![(f64::NAN, RED)]).unwrap_err().to_string(),
            "colormap value NaN is not finite: values must be finite numbers"
        );
    }

    #[test]
    fn only_the_values_0_to_255_make_a_full_table() {
        let full: Vec<_> = (0..256).rev().map(|i| (f64::from(i), Rgba([i as u8, 0, 0, 255]))).collect();
        let table = ExactEntries::new(full.clone()).unwrap().as_full_table().unwrap();
        assert_eq!(&table[4 * 200..4 * 201], &[200, 0, 0, 255]);
        let mut shifted = full;
        shifted[0].0 = 256.0;
        assert!(ExactEntries::new(shifted.clone()).unwrap().as_full_table().is_none());
        shifted[0].0 = 0.5;
        assert!(ExactEntries::new(shifted).unwrap().as_full_table().is_none());
    }

    #[test]
    fn intervals_must_be_increasing_disjoint_and_at_most_256() {
        let ok = Intervals::new(vec![(1.0, 2.0, RED), (0.0, 1.0, RED)]).unwrap();
        assert_eq!(ok.0.iter().map(|i| (i.min, i.max)).collect::<Vec<_>>(), vec![(0.0, 1.0), (1.0, 2.0)]);
        assert_eq!(
            Intervals::new(vec![(0.0, 10.0, RED), (5.0, 20.0, RED)]).unwrap_err().to_string(),
            "colormap intervals [0, 10) and [5, 20) overlap: intervals are [min, max) and must not overlap"
        );
        assert_eq!(
            Intervals::new(vec![(3.0, 3.0, RED)]).unwrap_err().to_string(),
            "colormap interval [3, 3) is empty or inverted: min must be less than max"
        );
        assert_eq!(
            Intervals::new(vec![(0.0, f64::INFINITY, RED)]).unwrap_err().to_string(),
            "colormap interval [0, inf) is not finite: bounds must be finite numbers"
        );
        assert_eq!(
            Intervals::new(vec![]).unwrap_err().to_string(),
            "colormap has no intervals: give 1 to 256"
        );
        let many = (0..257).map(|i| (f64::from(i), f64::from(i) + 1.0, RED)).collect();
        assert_eq!(
            Intervals::new(many).unwrap_err().to_string(),
            "colormap has 257 intervals: at most 256 are allowed"
        );
    }
}
