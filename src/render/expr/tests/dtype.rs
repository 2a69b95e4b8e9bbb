//! Output dtypes and typed values against rio-tiler 9.4.12 (numexpr 2.14.2, numpy 2.4).
//!
//! The dtype table was produced by running, for each expression and input type,
//! `ImageData(numpy.ma.MaskedArray(numpy.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]],
//! [[9, 10], [11, 12]]], dtype=T))).apply_expression(expr).array.dtype`. Expected values
//! come from the same call on the bands written in each test (`.array.data`).

use super::super::*;
use crate::render::DataType;

/// Input types of the columns of [`TABLE`].
const COLUMNS: [DataType; 6] =
    [DataType::U8, DataType::U16, DataType::I16, DataType::U32, DataType::F32, DataType::F64];

use ExprDtype::{Bool, Float32, Float64, Int32, Int64};

/// (expression, output dtype for each of [`COLUMNS`]), from rio-tiler.
const TABLE: &[(&str, [ExprDtype; 6])] = &[
    ("b1", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("b1*2", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("b1/2", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("b1>2", [Bool, Bool, Bool, Bool, Bool, Bool]),
    ("sqrt(b1)", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("b1//2", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("b1%2", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("b1*0.5", [Float64, Float64, Float64, Float64, Float64, Float64]),
    ("b1+b2", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("-b1", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("b1**2", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("b1**2.0", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("b1**0.5", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("b1**2.5", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("b1**-1.0", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("b1**60", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("2**b1", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("2.0**b1", [Float64, Float64, Float64, Float64, Float64, Float64]),
    ("b1**b2", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("abs(b1)", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("round(b1)", [Int32, Int32, Int32, Int64, Float64, Float64]),
    ("sign(b1)", [Int32, Int32, Int32, Int64, Float64, Float64]),
    ("floor(b1)", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("trunc(b1)", [Float64, Float64, Float64, Float64, Float64, Float64]),
    ("minimum(b1,b2)", [Float64, Float64, Float64, Float64, Float64, Float64]),
    ("where(b1>1,b1,0)", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("where(b1>1,1,0)", [Int32, Int32, Int32, Int32, Int32, Int32]),
    ("where(b1>1,b1,0.5)", [Float64, Float64, Float64, Float64, Float64, Float64]),
    ("(b1>1)*2", [Int32, Int32, Int32, Int32, Int32, Int32]),
    ("(b1>1)&(b2>1)", [Bool, Bool, Bool, Bool, Bool, Bool]),
    ("isnan(b1)", [Bool, Bool, Bool, Bool, Bool, Bool]),
    ("b1;b1>2", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("b1*2;b1/2", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("b1;b1*0.5", [Float64, Float64, Float64, Float64, Float64, Float64]),
    ("b1>1;sqrt(b1)", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("b1*3000000000", [Int64, Int64, Int64, Int64, Float32, Float64]),
    ("b1*abs(-2)", [Int64, Int64, Int64, Int64, Float32, Float64]),
    ("b1*sqrt(4)", [Float64, Float64, Float64, Float64, Float64, Float64]),
    ("b1*(7//2)", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("b1*(7/2)", [Float64, Float64, Float64, Float64, Float64, Float64]),
    ("b1**0", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("sqrt(b1>1)", [Float32, Float32, Float32, Float32, Float32, Float32]),
    ("(b1>1)**2", [Bool, Bool, Bool, Bool, Bool, Bool]),
    ("b1*(1<2)", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("b1*2**40", [Int64, Int64, Int64, Int64, Float32, Float64]),
    ("hypot(b1,b2)", [Float64, Float64, Float64, Float64, Float64, Float64]),
    ("(b2-b1)/(b2+b1)", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("b1*b2;b3>1;b1/b3", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("(b1>1)/(b2>1)", [Float64, Float64, Float64, Float64, Float64, Float64]),
    ("where(1<2,b1,0.5)", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("b1**-0.5", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("b1**3.5", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("(b1>1)+(b2>1)", [Bool, Bool, Bool, Bool, Bool, Bool]),
    ("exp(b1)*2", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("b1*2;sqrt(b1)", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("ceil(b1)+1", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("-b1**2", [Int32, Int32, Int32, Int64, Float32, Float64]),
    ("~(b1>1)", [Bool, Bool, Bool, Bool, Bool, Bool]),
    ("b1*3000000000;sqrt(b1>1)", [Float64, Float64, Float64, Float64, Float32, Float64]),
    ("b1>1;sqrt(b1>1)", [Float32, Float32, Float32, Float32, Float32, Float32]),
    ("b1*2;b1*3000000000", [Int64, Int64, Int64, Int64, Float32, Float64]),
    ("b1>1;(b1>1)*2", [Int32, Int32, Int32, Int32, Int32, Int32]),
    ("b1>1;b2<3", [Bool, Bool, Bool, Bool, Bool, Bool]),
];

fn parse(text: &str) -> Expression {
    Expression::parse(text, &ExprLimits::default()).unwrap()
}

#[test]
fn output_dtype_matches_rio_tiler() {
    let mut checked = 0;
    for (text, expected) in TABLE {
        let expr = parse(text);
        for (&input, &want) in COLUMNS.iter().zip(expected) {
            assert_eq!(expr.output_dtype(input), want, "{text} on {}", input.name());
            checked += 1;
        }
    }
    assert_eq!(checked, TABLE.len() * COLUMNS.len());
}

/// Evaluates `text` over bands of `input` type (values given as `f64`), all valid.
fn evaluate(text: &str, input: DataType, bands: &[&[f64]]) -> Evaluation {
    let pixels = bands[0].len();
    let mask = vec![255; pixels];
    parse(text).evaluate(bands, input, BandMasks::Shared(&mask)).unwrap()
}

/// Checks exact values and the dtype of one-block expressions.
fn assert_typed(input: DataType, bands: &[&[f64]], cases: &[(&str, ExprDtype, &[f64])]) {
    for (text, dtype, expected) in cases {
        let out = evaluate(text, input, bands);
        assert_eq!(out.dtype, *dtype, "{text} on {}", input.name());
        assert_eq!(out.bands, vec![expected.to_vec()], "{text} on {}", input.name());
    }
}

#[test]
fn uint8_bands_are_computed_in_int32() {
    let b1 = [255.0, 200.0, 7.0, 0.0, 1.0];
    let b2 = [2.0, 3.0, 0.0, 5.0, 255.0];
    assert_typed(
        DataType::U8,
        &[&b1, &b2],
        &[
            ("b1//2", Int32, &[127.0, 100.0, 3.0, 0.0, 0.0]),
            ("b1*b2", Int32, &[510.0, 600.0, 0.0, 0.0, 255.0]),
            // Integer `%` and `//` by zero give 0 (numexpr's int kernels).
            ("b1%b2", Int32, &[1.0, 2.0, 0.0, 0.0, 1.0]),
            ("b1//b2", Int32, &[127.0, 66.0, 0.0, 0.0, 0.0]),
            ("b1**3", Int32, &[16_581_375.0, 8_000_000.0, 343.0, 0.0, 1.0]),
            ("-b1", Int32, &[-255.0, -200.0, -7.0, 0.0, -1.0]),
            ("b1-b2", Int32, &[253.0, 197.0, 7.0, -5.0, -254.0]),
            ("b1**b2", Int32, &[65025.0, 8_000_000.0, 1.0, 0.0, 1.0]),
            ("sign(b1-7)", Int32, &[1.0, 1.0, 0.0, -1.0, -1.0]),
            ("round(b1)", Int32, &[255.0, 200.0, 7.0, 0.0, 1.0]),
            ("b1/b2", Float64, &[127.5, 66.666_666_666_666_67, f64::MAX, 0.0, 0.003_921_568_627_450_98]),
            (
                "b1**-1.0",
                Float64,
                &[0.003_921_568_627_450_98, 0.005, 0.142_857_142_857_142_85, f64::MAX, 1.0],
            ),
        ],
    );
}

#[test]
fn uint16_products_wrap_in_int32() {
    let b1 = [65535.0, 300.0, 7.0, 0.0, 40000.0];
    let b2 = [65535.0, 300.0, 2.0, 0.0, 3.0];
    let min = f64::from(i32::MIN);
    assert_typed(
        DataType::U16,
        &[&b1, &b2],
        &[
            ("b1*b2", Int32, &[-131_071.0, 90000.0, 14.0, 0.0, 120_000.0]),
            ("b1**2", Int32, &[-131_071.0, 90000.0, 49.0, 0.0, 1_600_000_000.0]),
            ("b1**3", Int32, &[196_607.0, 27_000_000.0, 343.0, 0.0, 692_322_304.0]),
            // Beyond |50| the exponent is not expanded: `(int)pow(...)` overflows to i32::MIN.
            ("b1**60", Int32, &[min, min, min, 0.0, min]),
            ("2**b1", Int32, &[min, min, 128.0, 1.0, min]),
            ("b1//b2", Int32, &[1.0, 1.0, 3.0, 0.0, 13333.0]),
            ("b1*b2/3", Float64, &[-43_690.333_333_333_336, 30000.0, 4.666_666_666_666_667, 0.0, 40000.0]),
            ("b1*b2*1.5", Float64, &[-196_606.5, 135_000.0, 21.0, 0.0, 180_000.0]),
            ("b1*b2>b1", Bool, &[0.0, 1.0, 1.0, 0.0, 1.0]),
            ("b1**0", Int32, &[1.0; 5]),
            // The wrapped int32 square times sqrt(b1), in float64.
            (
                "b1**2.5",
                Float64,
                &[
                    -33_553_920.000_976_562,
                    1_558_845.726_811_989_7,
                    129.641_814_242_164_94,
                    0.0,
                    320_000_000_000.0,
                ],
            ),
        ],
    );
}

#[test]
fn int16_floor_division_and_modulo_follow_python_signs() {
    let b1 = [-7.0, 7.0, -7.0, 7.0, -32768.0];
    let b2 = [3.0, -3.0, -3.0, 0.0, -1.0];
    assert_typed(
        DataType::I16,
        &[&b1, &b2],
        &[
            ("b1//b2", Int32, &[-3.0, -3.0, 2.0, 0.0, 32768.0]),
            ("b1%b2", Int32, &[2.0, -2.0, -1.0, 0.0, 0.0]),
            ("-b1", Int32, &[7.0, -7.0, 7.0, -7.0, 32768.0]),
            ("b1*b1", Int32, &[49.0, 49.0, 49.0, 49.0, 1_073_741_824.0]),
            ("abs(b1)", Float64, &[7.0, 7.0, 7.0, 7.0, 32768.0]),
            // A negative integer exponent is `1/x` in integers.
            ("b2**b1", Int32, &[0.0, -2187.0, 0.0, 0.0, -1.0]),
            ("b1**b2", Int32, &[-343.0, 0.0, 0.0, 1.0, 0.0]),
        ],
    );
}

#[test]
fn uint32_bands_are_computed_in_int64() {
    let b1 = [4_294_967_295.0, 3_000_000_000.0, 7.0];
    let b2 = [4_294_967_295.0, 2.0, 0.0];
    assert_typed(
        DataType::U32,
        &[&b1, &b2],
        &[
            ("b1*b2", Int64, &[-8_589_934_591.0, 6_000_000_000.0, 0.0]),
            ("b1+b2", Int64, &[8_589_934_590.0, 3_000_000_002.0, 7.0]),
            ("b1//b2", Int64, &[1.0, 1_500_000_000.0, 0.0]),
            ("b1%b2", Int64, &[0.0, 0.0, 0.0]),
            ("b1**3", Int64, &[12_884_901_887.0, -2_666_827_603_905_609_728.0, 343.0]),
        ],
    );
}

#[test]
fn float32_bands_are_rounded_to_float32_after_each_operation() {
    let f = |v: f32| f64::from(v);
    let b1 = [f(0.1), f(16_777_217.0), f(3.3), f(-2.5), f(1e30)];
    let b2 = [f(0.7), f(3.0), f(0.2), f(0.0), f(1e30)];
    let max = f64::from(f32::MAX);
    assert_typed(
        DataType::F32,
        &[&b1, &b2],
        &[
            ("b1*b2", Float32, &[0.070_000_000_298_023_22, 50_331_648.0, 0.660_000_026_226_043_7, -0.0, max]),
            ("b1+b2", Float32, &[0.800_000_011_920_929, 16_777_220.0, 3.5, -2.5, 2.000_000_030_094_932_4e30]),
            ("b1/b2", Float32, &[0.142_857_149_243_354_8, 5_592_405.5, 16.5, -max, 1.0]),
            ("b1//b2", Float32, &[0.0, 5_592_405.0, 16.0, -max, 1.0]),
            ("b1%b2", Float32, &[0.100_000_001_490_116_12, 1.0, 0.099_999_904_632_568_36, 0.0, 0.0]),
            (
                "b1**2",
                Float32,
                &[0.010_000_000_707_805_157, 281_474_976_710_656.0, 10.889_999_389_648_438, 6.25, max],
            ),
            (
                "b1**3",
                Float32,
                &[0.001_000_000_047_497_451_3, 4.722_366_482_869_645e21, 35.936_996_459_960_94, -15.625, max],
            ),
            (
                "b1**2.5",
                Float32,
                &[0.003_162_277_862_429_619, 1.152_921_504_606_847e18, 19.782_665_252_685_547, 0.0, max],
            ),
            (
                "b1**-1.0",
                Float32,
                &[
                    10.0,
                    5.960_464_477_539_063e-8,
                    0.303_030_312_061_309_8,
                    -0.400_000_005_960_464_5,
                    1.000_000_003_171_076_9e-30,
                ],
            ),
            (
                "sqrt(b1)",
                Float32,
                &[0.316_227_763_891_220_1, 4096.0, 1.816_590_189_933_776_9, 0.0, 999_999_986_991_104.0],
            ),
            (
                "b1*3",
                Float32,
                &[
                    0.300_000_011_920_928_96,
                    50_331_648.0,
                    9.899_999_618_530_273,
                    -7.5,
                    3.000_000_196_258_126e30,
                ],
            ),
            (
                "b1-b2*3",
                Float32,
                &[
                    -1.999_999_880_790_710_4,
                    16_777_207.0,
                    2.699_999_809_265_136_7,
                    -2.5,
                    -2.000_000_181_210_66e30,
                ],
            ),
            (
                "b1*b2*b2",
                Float32,
                &[0.048_999_998_718_500_14, 150_994_944.0, 0.132_000_014_185_905_46, -0.0, max],
            ),
            // A float literal is float64: the product is not rounded to float32.
            (
                "b1*0.1",
                Float64,
                &[
                    0.010_000_000_149_011_612,
                    1_677_721.6,
                    0.329_999_995_231_628_43,
                    -0.25,
                    1.000_000_015_047_466_2e29,
                ],
            ),
            ("round(b1)", Float64, &[0.0, 16_777_216.0, 3.0, -2.0, 1.000_000_015_047_466_2e30]),
            (
                "where(b1>1,b1,2)",
                Float32,
                &[2.0, 16_777_216.0, 3.299_999_952_316_284, 2.0, 1.000_000_015_047_466_2e30],
            ),
            ("b1>b2", Bool, &[0.0, 1.0, 1.0, 0.0, 0.0]),
        ],
    );
}

#[test]
fn blocks_are_promoted_to_one_dtype_without_changing_values() {
    // rio-tiler on uint8 [[1, 200]] and [[3, 0]]: "b1*b2;b1/b2;b1>b2" is float64
    // [[3, 0], [0.333.., 1.797..e308], [0, 1]].
    let out = evaluate("b1*b2;b1/b2;b1>b2", DataType::U8, &[&[1.0, 200.0], &[3.0, 0.0]]);
    assert_eq!(out.dtype, Float64);
    assert_eq!(out.bands, vec![vec![3.0, 0.0], vec![1.0 / 3.0, f64::MAX], vec![0.0, 1.0]]);

    // A float32 block keeps float32's nan_to_num (3.4e38, not 1.8e308) when the output
    // is promoted to float64 (rio-tiler on float32 [[1e30, 2]]: "b1*b1;b1*0.5").
    let out = evaluate("b1*b1;b1*0.5", DataType::F32, &[&[f64::from(1e30_f32), 2.0]]);
    assert_eq!(out.dtype, Float64);
    assert_eq!(out.bands, vec![vec![f64::from(f32::MAX), 4.0], vec![5.000_000_075_237_331e29, 1.0]]);
}

#[test]
fn integer_to_negative_integer_power_is_float64_where_numexpr_refuses_it() {
    // numexpr raises "Integers to negative integer powers are not allowed" on integer
    // bands; Tessera computes `b1**-1.0` instead.
    let out = evaluate("b1**-1", DataType::U8, &[&[4.0, 0.0]]);
    assert_eq!(out.dtype, Float64);
    assert_eq!(out.bands, vec![vec![0.25, f64::MAX]]);
    assert_eq!(parse("b1**-1").output_dtype(DataType::F32), Float32);
}

#[test]
fn into_raster_stores_each_dtype_in_its_tessera_type() {
    let out = evaluate("b1>1;b1*2", DataType::U8, &[&[1.0, 3.0]]);
    assert_eq!(out.dtype, Int32);
    let raster = out.into_raster(2, 1);
    assert_eq!((raster.dtype, raster.bands, raster.width, raster.height), (DataType::I32, 2, 2, 1));
    let values: Vec<i32> =
        raster.pixels.chunks_exact(4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(values, vec![0, 1, 2, 6]);
    assert_eq!(raster.mask, vec![255, 255]);

    let raster = evaluate("b1>1", DataType::F32, &[&[1.0, 3.0]]).into_raster(2, 1);
    assert_eq!((raster.dtype, raster.pixels), (DataType::U8, vec![0, 1]));
}

#[test]
fn storage_and_promotion_tables() {
    let storage: Vec<DataType> = [Bool, Int32, Int64, Float32, Float64].iter().map(|d| d.storage()).collect();
    assert_eq!(storage, vec![DataType::U8, DataType::I32, DataType::F64, DataType::F32, DataType::F64]);
    // numpy.result_type
    assert_eq!(Int32.promote(Float32), Float64);
    assert_eq!(Float32.promote(Int64), Float64);
    assert_eq!(Bool.promote(Float32), Float32);
    assert_eq!(Bool.promote(Int32), Int32);
    assert_eq!(Int64.promote(Int32), Int64);
    // numexpr's commonKind
    assert_eq!(Int32.common(Float32), Float32);
    assert_eq!(Int64.common(Float32), Float32);
}

#[test]
fn cast_follows_numpy_astype() {
    let got = vec![
        Int32.cast(-2.7),
        Int32.cast(2.7),
        Int32.cast(3e9),
        Float32.cast(0.1),
        Bool.cast(-0.5),
        Bool.cast(0.0),
        Int64.cast(-3e9 - 0.5),
    ];
    assert_eq!(got, vec![-2.0, 2.0, f64::from(i32::MIN), f64::from(0.1_f32), 1.0, 0.0, -3e9]);
}
