//! Fuzzes band-math expressions: the input is expression text as a request carries it
//! (up to 4 KiB, over the 1 KiB limit so the limit is exercised too), parsed with the
//! default limits. A rejected text gets a short one-line message with nothing hidden in
//! it; an accepted one evaluates on a small raster of every data type without panicking,
//! into one band per block and a mask, and the output fits its data type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::render::DataType;
use tessera::render::expr::{BandMasks, ExprDtype, ExprLimits, Expression};

/// Bands of the raster the expressions read: `b1` to `b4`.
const BANDS: usize = 4;
/// Pixels of each band.
const PIXELS: usize = 6;

/// Whether `value` is a value of `dtype` after `nan_to_num` (as `Evaluation` promises:
/// storing it in [`ExprDtype::storage`] is exact).
fn fits(value: f64, dtype: ExprDtype) -> bool {
    match dtype {
        ExprDtype::Bool => value == 0.0 || value == 1.0,
        ExprDtype::Int32 => {
            value.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&value)
        }
        ExprDtype::Int64 => value.is_finite() && value.fract() == 0.0,
        ExprDtype::Float32 => value.is_finite() && f64::from(value as f32) == value,
        ExprDtype::Float64 => value.is_finite(),
    }
}

/// Band values of `dtype`: zero, extremes, and for floats NaN and infinities.
fn band_values(dtype: DataType, band: usize) -> Vec<f64> {
    let (min, max) = match dtype {
        DataType::U8 => (0.0, 255.0),
        DataType::U16 => (0.0, 65_535.0),
        DataType::I16 => (-32_768.0, 32_767.0),
        DataType::U32 => (0.0, 4_294_967_295.0),
        DataType::I32 => (-2_147_483_648.0, 2_147_483_647.0),
        DataType::F32 => (f64::from(f32::MIN), f64::from(f32::MAX)),
        DataType::F64 => (f64::MIN, f64::MAX),
    };
    let special = if matches!(dtype, DataType::F32 | DataType::F64) { f64::NAN } else { 1.0 };
    let mut values = vec![0.0, min, max, 1.0, special, (band as f64) + 2.0];
    values.rotate_left(band % PIXELS);
    values
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 4096 {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let expression = match Expression::parse(text, &ExprLimits::default()) {
        Ok(expression) => expression,
        Err(e) => {
            let message = e.to_string();
            assert!(message.len() <= 2048, "a {}-byte message for {text:?}", message.len());
            assert!(
                !message.chars().any(|c| c.is_control() || tessera::echo::is_bidi_control(c)),
                "a hidden character in {message:?}"
            );
            return;
        }
    };
    if expression.check_bands(BANDS).is_err() {
        return;
    }
    // Every accepted output block reads a band (a block of numbers alone is refused, as
    // rio-tiler cannot stack it), so every value must fit the output type.
    assert!(
        expression.block_texts().iter().all(|b| Expression::parse(b, &ExprLimits::default()).is_ok()),
        "{text:?}: an output block that reads no band was accepted"
    );
    let mask: Vec<u8> = (0..PIXELS).map(|p| if p == 3 { 0 } else { 255 }).collect();
    for dtype in [
        DataType::U8,
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::F32,
        DataType::F64,
    ] {
        let bands: Vec<Vec<f64>> = (0..BANDS).map(|b| band_values(dtype, b)).collect();
        let slices: Vec<&[f64]> = bands.iter().map(Vec::as_slice).collect();
        let out = expression
            .evaluate(&slices, dtype, BandMasks::Shared(&mask))
            .unwrap_or_else(|e| panic!("{text:?} on {dtype:?}: {e}"));
        assert_eq!(out.bands.len(), expression.outputs(), "{text:?} on {dtype:?}");
        assert_eq!(out.mask, mask, "{text:?} on {dtype:?}");
        assert_eq!(out.dtype, expression.output_dtype(dtype), "{text:?} on {dtype:?}");
        for band in &out.bands {
            assert_eq!(band.len(), PIXELS, "{text:?} on {dtype:?}");
            if let Some(v) = band.iter().find(|v| !fits(**v, out.dtype)) {
                panic!("{text:?} on {dtype:?}: {v} is not a {:?} value", out.dtype);
            }
        }
        let raster = out.into_raster(PIXELS, 1);
        assert!(raster.is_consistent(), "{text:?} on {dtype:?}: an inconsistent raster");
    }
});
