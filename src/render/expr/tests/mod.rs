//! Expected values marked "rio-tiler" were computed with rio-tiler 9.4.12 (numexpr
//! 2.14.2, numpy) by `rio_tiler.expression.apply_expression(get_expression_blocks(e),
//! ["b1", "b2", "b3"], numpy.array([B1, B2, B3], dtype="float64"))` over the bands below,
//! and for masks with `ImageData(MaskedArray(...), band_names=[...]).apply_expression`.

mod dtype;

use super::*;
use crate::render::DataType;

const MAX: f64 = f64::MAX;
const NAN: f64 = f64::NAN;
const B1: [f64; 6] = [1.0, 2.0, 3.0, 0.0, -4.5, NAN];
const B2: [f64; 6] = [2.0, 2.0, -3.0, 0.0, 0.0, 1.0];
const B3: [f64; 6] = [50.0, 150.0, 100.0, 101.0, 0.0, 200.0];
const ALL_VALID: [u8; 6] = [255; 6];

fn parse(text: &str) -> Result<Expression, ExprError> {
    Expression::parse(text, &ExprLimits::default())
}

fn eval(text: &str) -> Vec<Vec<f64>> {
    let expr = parse(text).unwrap();
    expr.evaluate(&[&B1, &B2, &B3], DataType::F64, BandMasks::Shared(&ALL_VALID)).unwrap().bands
}

/// Equal up to a few ulp: the last bit of transcendental functions may differ between
/// libms (outputs are finite after nan_to_num, so the difference is always defined).
fn assert_bands(text: &str, expected: &[&[f64]]) {
    let got = eval(text);
    assert_eq!(got.len(), expected.len(), "{text}: output count");
    for (band, (got, want)) in got.iter().zip(expected).enumerate() {
        assert_eq!(got.len(), want.len(), "{text}: band {band} length");
        for (pixel, (&got, &want)) in got.iter().zip(want.iter()).enumerate() {
            let close = (got - want).abs() <= 4.0 * f64::EPSILON * want.abs();
            assert!(close, "{text}: band {band} pixel {pixel}: got {got:e}, expected {want:e}");
        }
    }
}

#[test]
fn evaluation_matches_rio_tiler() {
    let third = 1.0 / 3.0;
    let cases: &[(&str, &[&[f64]])] = &[
        // NDVI: 0/0 -> NaN -> 0, -6/0 -> -inf -> f64::MIN (nan_to_num), NaN band -> 0.
        ("(b2-b1)/(b2+b1)", &[&[third, 0.0, -MAX, 0.0, -1.0, 0.0]]),
        ("b1/b2", &[&[0.5, 1.0, -1.0, 0.0, -MAX, 0.0]]),
        ("-b1/b2", &[&[-0.5, -1.0, 1.0, 0.0, MAX, 0.0]]),
        ("log(b2)", &[&[std::f64::consts::LN_2, std::f64::consts::LN_2, 0.0, -MAX, -MAX, 0.0]]),
        ("where(b1>1,b1,0.5)", &[&[0.5, 2.0, 3.0, 0.5, 0.5, 0.5]]),
        ("(b1>1)&(b2<3)", &[&[0.0, 1.0, 1.0, 0.0, 0.0, 0.0]]),
        ("b1==2", &[&[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]]),
        ("b1!=2", &[&[1.0, 0.0, 1.0, 1.0, 1.0, 1.0]]),
        ("-b1**2", &[&[-1.0, -4.0, -9.0, -0.0, -20.25, 0.0]]),
        ("b1**0.5**2", &[&[1.0, 1.189_207_115_002_721, 1.316_074_012_952_492_4, 0.0, 0.0, 0.0]]),
        ("b2**-2", &[&[0.25, 0.25, 0.111_111_111_111_111_1, MAX, MAX, 1.0]]),
        ("2**b1", &[&[2.0, 4.0, 8.0, 1.0, 0.044_194_173_824_159_22, 0.0]]),
        (
            "b1*2;b2;where(b3>100,1,0)",
            &[
                &[2.0, 4.0, 6.0, 0.0, -9.0, 0.0],
                &[2.0, 2.0, -3.0, 0.0, 0.0, 1.0],
                &[0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
            ],
        ),
        ("(b1-5.5)//2.5", &[&[-2.0, -2.0, -1.0, -3.0, -4.0, 0.0]]),
        ("(b1-5.5)%2.5", &[&[0.5, 1.5, 0.0, 2.0, 0.0, 0.0]]),
        ("b1%b2", &[&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]),
        ("b1//b2", &[&[0.0, 1.0, -1.0, 0.0, -MAX, 0.0]]),
        // Two conditions: `+` is "or", `*` is "and"; with a number they count as 0/1.
        ("(b1>1)+(b2>1)", &[&[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]),
        ("(b1>1)*b1", &[&[0.0, 2.0, 3.0, 0.0, -0.0, 0.0]]),
        ("(b1>1)-1", &[&[-1.0, 0.0, 0.0, -1.0, -1.0, -1.0]]),
        ("(b1>1)/(b2>1)", &[&[0.0, 1.0, MAX, 0.0, 0.0, 0.0]]),
        ("where(b1>1,b2>1,b3>100)", &[&[0.0, 1.0, 0.0, 1.0, 0.0, 1.0]]),
        (
            "arctan2(b1,b2)",
            &[&[
                0.463_647_609_000_806_1,
                std::f64::consts::FRAC_PI_4,
                2.356_194_490_192_345,
                0.0,
                -std::f64::consts::FRAC_PI_2,
                0.0,
            ]],
        ),
        ("sqrt(b1)", &[&[1.0, std::f64::consts::SQRT_2, 1.732_050_807_568_877_2, 0.0, 0.0, 0.0]]),
        // numpy rounds half to even: 1.5 -> 2, -2.25 -> -2.
        ("round(b1*0.5)", &[&[0.0, 1.0, 2.0, 0.0, -2.0, 0.0]]),
        ("minimum(b1,b2)", &[&[1.0, 2.0, -3.0, 0.0, -4.5, 0.0]]),
        ("maximum(b1,b2)", &[&[2.0, 2.0, 3.0, 0.0, 0.0, 0.0]]),
        ("sign(b1)", &[&[1.0, 1.0, 1.0, 0.0, -1.0, 0.0]]),
        ("~(b1>=2)^(b2<0)", &[&[1.0, 0.0, 1.0, 1.0, 1.0, 1.0]]),
        ("abs(b1)+floor(b1/2)+ceil(b2/4)", &[&[2.0, 4.0, 4.0, 0.0, 1.5, 0.0]]),
        ("exp(b2)-expm1(b2)", &[&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]),
        (
            "log10(b3)+log1p(b2)",
            &[&[
                2.797_582_293_004_128_3,
                3.274_703_547_723_791,
                0.0,
                2.004_321_373_782_642_6,
                -MAX,
                2.994_177_176_223_926_7,
            ]],
        ),
        (
            "B1+SQRT(B3)",
            &[&[8.071_067_811_865_476, 14.247_448_713_915_89, 13.0, 10.049_875_621_120_89, -4.5, 0.0]],
        ),
    ];
    for (text, expected) in cases {
        assert_bands(text, expected);
    }
}

#[test]
fn elementwise_min_and_max_are_aliases_of_minimum_and_maximum() {
    // Tessera extension: numexpr's min/max are reductions; here they are elementwise.
    assert_eq!(eval("min(b1,b2)"), eval("minimum(b1,b2)"));
    assert_eq!(eval("max(b1,b2)"), eval("maximum(b1,b2)"));
}

#[test]
fn a_constant_output_block_is_refused_as_rio_tiler_cannot_stack_it() {
    // rio-tiler 9.4.12's apply_expression(["b1", "2*3"], ...) raises InvalidExpression
    // ("inhomogeneous shape"): a block of numbers is a scalar, not a band.
    let err = parse("b1;2*3").unwrap_err();
    assert_eq!((err.position, err.kind), (3, ExprErrorKind::Syntax), "{err}");
    assert!(err.message.starts_with("output band 2 reads no band"), "{err}");
    // A number inside a block that reads a band is broadcast as before (b1's last value
    // is not finite, so b1*0+6 is NaN there, and NaN becomes 0).
    assert_eq!(eval("b1;b1*0+6"), vec![eval("b1")[0].clone(), vec![6.0, 6.0, 6.0, 6.0, 6.0, 0.0]]);
}

#[test]
fn precedence_and_associativity_follow_python() {
    let cases: &[(&str, f64)] = &[
        ("-2**2+b1*0", -4.0),
        ("2**3**2+b1*0", 512.0),
        ("2**-1+b1*0", 0.5),
        ("2*-b1**2", -8.0),
        ("b1-b2-1", -1.0),
        ("b1/b2/4", 0.25),
        ("b1+2*3", 8.0),
        ("b1*2**2", 8.0),
        ("-b1%3", 1.0),
        ("b1 > 1 + 1", 0.0),
        ("b1 >= 1 + 1", 1.0),
        ("(b1>1)|(b1<1)&(b1==0)", 1.0),
        ("(b1<1)|(b1>1)&(b1==0)", 0.0),
        ("(b1>1)^(b1>0)&(b1<0)", 1.0),
        ("~(b1>1)|(b1>0)", 1.0),
        ("~((b1>1)|(b1>0))", 0.0),
        ("b1*--2", 4.0),
        ("+b1-+2", 0.0),
        ("10-b1*3//4", 9.0),
        ("2*b1%3", 1.0),
    ];
    let b1 = [2.0];
    let b2 = [2.0];
    for (text, expected) in cases {
        let expr = parse(text).unwrap();
        let got = expr.evaluate(&[&b1, &b2], DataType::F64, BandMasks::Shared(&[255])).unwrap().bands;
        assert_eq!(got, vec![vec![*expected]], "{text}");
    }
}

#[test]
fn shared_mask_is_copied_to_the_output() {
    let expr = parse("b1+b2;b2").unwrap();
    let out =
        expr.evaluate(&[&B1, &B2], DataType::F64, BandMasks::Shared(&[255, 0, 7, 255, 0, 255])).unwrap();
    assert_eq!(out.mask, vec![255, 0, 255, 255, 0, 255]);
    assert_eq!(out.bands.len(), 2);
}

#[test]
fn output_is_masked_where_any_referenced_band_is_masked() {
    // rio-tiler: ImageData(MaskedArray([[[1,2,3,4]],[[10,20,30,40]]], mask=[[[F,T,F,F]],
    // [[F,F,T,F]]]), band_names=["b1","b3"]).apply_expression("b1+b3;b3*2") gives data
    // [[11,22,33,44],[20,40,60,80]] and mask [F,T,T,F] on both bands. Band 2 is not read,
    // so its mask (all invalid here) does not count.
    let b1 = [1.0, 2.0, 3.0, 4.0];
    let b3 = [10.0, 20.0, 30.0, 40.0];
    let masks: [&[u8]; 3] = [&[255, 0, 255, 255], &[0, 0, 0, 0], &[255, 255, 0, 255]];
    let expr = parse("b1+b3;b3*2").unwrap();
    let out = expr.evaluate(&[&b1, &[], &b3], DataType::F64, BandMasks::PerBand(&masks)).unwrap();
    assert_eq!(out.bands, vec![vec![11.0, 22.0, 33.0, 44.0], vec![20.0, 40.0, 60.0, 80.0]]);
    assert_eq!(out.mask, vec![255, 0, 0, 255]);
}

#[test]
fn evaluate_reports_inputs_that_do_not_fit() {
    let expr = parse("b1+b3").unwrap();
    assert_eq!(
        expr.evaluate(&[&B1, &B2], DataType::F64, BandMasks::Shared(&ALL_VALID)),
        Err(EvalError::MissingBand { band: 3, available: 2 })
    );
    assert_eq!(
        expr.evaluate(&[&B1, &B2, &[1.0]], DataType::F64, BandMasks::Shared(&ALL_VALID)),
        Err(EvalError::LengthMismatch { what: "band b3".to_string(), len: 1, expected: 6 })
    );
    assert_eq!(
        expr.evaluate(&[&B1, &B2, &B3], DataType::F64, BandMasks::Shared(&[255])),
        Err(EvalError::LengthMismatch { what: "the shared mask".to_string(), len: 1, expected: 6 })
    );
    let masks: [&[u8]; 1] = [&ALL_VALID];
    assert_eq!(
        expr.evaluate(&[&B1, &B2, &B3], DataType::F64, BandMasks::PerBand(&masks)),
        Err(EvalError::MissingMask { band: 3, available: 1 })
    );
}

#[test]
fn bands_outputs_and_block_texts_describe_the_expression() {
    let expr = parse(" b3*2 ;B1+b3;\tb10 ;").unwrap();
    assert_eq!(expr.bands(), vec![1, 3, 10]);
    assert_eq!(expr.outputs(), 3);
    assert_eq!(expr.block_texts(), vec!["b3*2", "B1+b3", "b10"]);
}

#[test]
fn check_bands_points_at_the_first_band_beyond_the_asset() {
    let expr = parse("b1+b7*b9;b2").unwrap();
    assert_eq!(expr.check_bands(9), Ok(()));
    let err = expr.check_bands(4).unwrap_err();
    assert_eq!((err.position, err.kind), (3, ExprErrorKind::BandOutOfRange));
    assert_eq!(
        err.to_string(),
        "at column 4 (1-based): band b7 does not exist: the asset has 4 bands (b1 to b4)"
    );
}

#[test]
fn error_display_gives_a_one_based_column() {
    let err = parse("(b1+b2").unwrap_err();
    assert_eq!(
        err.to_string(),
        "at column 7 (1-based): expected ')' to close '(' at column 1, found end of expression"
    );
}

#[test]
fn a_flat_chain_is_not_deep() {
    let sum = (1..=40).map(|b| format!("b{b}")).collect::<Vec<_>>().join("+");
    assert_eq!(parse(&sum).unwrap().bands().len(), 40);
}

#[test]
fn a_trailing_semicolon_is_allowed() {
    assert_eq!(parse("b1;b2;").unwrap().outputs(), 2);
}

#[test]
fn limits_are_enforced_with_the_actual_value() {
    let small = ExprLimits { max_len: 10, max_depth: 3, max_outputs: 2 };
    let cases: &[(&str, usize, &str)] = &[
        ("b1+b2+b3+b4", 10, "expression is 11 bytes long, over the limit (max_len) of 10 bytes"),
        ("(((b1)))", 2, "depth 4 exceeds the limit (max_depth) of 3"),
        ("-(-(-b1))", 2, "depth 4 exceeds the limit (max_depth) of 3"),
        ("b1;b2;b3", 6, "expression has 3 output bands (';'-separated), over the limit (max_outputs) of 2"),
    ];
    for (text, position, fragment) in cases {
        let err = Expression::parse(text, &small).unwrap_err();
        assert_eq!(err.kind, ExprErrorKind::Limit, "{text}");
        assert_eq!(err.position, *position, "{text}: {err}");
        assert!(err.message.contains(fragment), "{text}: {err}");
    }
    assert!(Expression::parse("((b1))", &small).is_ok());
}

#[test]
fn default_limits_reject_long_deep_and_wide_expressions() {
    let long = format!("b1{}", "+1".repeat(512));
    let err = parse(&long).unwrap_err();
    assert_eq!((err.position, err.kind), (1024, ExprErrorKind::Limit));
    assert!(err.message.contains("1026 bytes long"), "{err}");

    let deep = format!("{}b1{}", "(".repeat(40), ")".repeat(40));
    let err = parse(&deep).unwrap_err();
    assert_eq!((err.position, err.kind), (31, ExprErrorKind::Limit));
    assert!(err.message.contains("depth 33 exceeds the limit (max_depth) of 32"), "{err}");

    let wide = vec!["b1"; 17].join(";");
    let err = parse(&wide).unwrap_err();
    assert_eq!((err.position, err.kind), (48, ExprErrorKind::Limit));
    assert!(err.message.contains("17 output bands"), "{err}");
    assert_eq!(parse(&vec!["b1"; 16].join(";")).unwrap().outputs(), 16);
}

#[test]
fn bad_expressions_point_at_the_mistake() {
    use ExprErrorKind::{Arity, Syntax, Type, UnknownFunction, UnknownName};
    let cases: &[(&str, usize, ExprErrorKind, &str)] = &[
        ("(b1+b2", 6, Syntax, "expected ')' to close '(' at column 1, found end of expression"),
        ("log(b1", 6, Syntax, "expected ')' to close '(' at column 4"),
        ("b1)", 2, Syntax, "unmatched ')'"),
        ("()", 1, Syntax, "expected an expression inside '(' at column 1"),
        ("b1+", 3, Syntax, "expected an operand after '+' at column 3, found end of expression"),
        ("b1 ** * 2", 6, Syntax, "expected an operand after '**' at column 4, found '*'"),
        ("b1 <> b2", 4, Syntax, "expected an operand after '<' at column 4, found '>'"),
        ("foo(b1)", 0, UnknownFunction, "unknown function 'foo'; allowed functions are abs, sqrt"),
        ("c1+b1", 0, UnknownName, "unknown name 'c1': bands are b1, b2, …"),
        ("not b1", 0, UnknownName, "'and', 'or' and 'not' are written '&', '|' and '~'"),
        ("b1 and b2", 3, Syntax, "found 'and'; 'and' and 'or' are written '&' and '|'"),
        ("arctan2(b1)", 0, Arity, "arctan2 takes 2 arguments (arctan2(y, x)), got 1"),
        ("max(b1)", 0, Arity, "max takes 2 arguments (max(a, b)), got 1"),
        ("sqrt(b1,b2)", 0, Arity, "sqrt takes 1 argument (sqrt(x)), got 2"),
        ("sqrt(b1,)", 8, Syntax, "expected a band, a number, a function call or '(', found ')'"),
        ("sqrt b1", 0, Syntax, "function 'sqrt' must be called: sqrt(x)"),
        ("", 0, Syntax, "expression is empty"),
        ("   ", 0, Syntax, "expression is empty"),
        ("b1;;b2", 3, Syntax, "empty output band before this ';'"),
        (" ; b1", 1, Syntax, "empty output band before this ';'"),
        ("b0+b1", 0, UnknownName, "there is no band 'b0': bands are numbered from 1"),
        ("b01", 0, UnknownName, "band 'b01' has a leading zero: write b1"),
        ("b", 0, UnknownName, "'b' needs a band number: bands are b1, b2, …"),
        ("b99999999999", 0, UnknownName, "band number in 'b99999999999' is too large"),
        ("b1(2)", 2, Syntax, "'b1' is a band, not a function"),
        ("b1*1e", 5, Syntax, "incomplete number '1e': an exponent needs digits"),
        ("1e+b1", 3, Syntax, "incomplete number '1e+'"),
        ("2b1", 1, Syntax, "invalid number: '2' cannot be followed by 'b'"),
        ("b1*1.5.2", 6, Syntax, "invalid number: '1.5' cannot be followed by '.'"),
        ("b1 $ 2", 3, Syntax, "unexpected character '$'; allowed are bands"),
        ("b1 = 2", 3, Syntax, "'=' assigns; compare with '=='"),
        ("b1 ! b2", 3, Syntax, "use '~' for not and '!=' for not-equal"),
        ("b1×b2", 2, Syntax, "unexpected character '×'"),
        ("b1 b2", 3, Syntax, "expected an operator or the end of the output band, found 'b2'"),
        ("b1,b2", 2, Syntax, "found ','"),
        ("1<b1<3", 4, Syntax, "chained comparisons such as 'a < b < c' are not supported"),
        ("b1>1&b2<3", 4, Type, "its left operand is a number; '&' binds tighter than comparisons"),
        ("b1&(b2<3)", 2, Type, "'&' combines conditions but its left operand is a number"),
        ("-(b1>1)", 0, Type, "cannot negate a condition with '-': use '~'"),
        ("~b1", 0, Type, "'~' negates a condition but its operand is a number"),
        ("where(b1,1,0)", 6, Type, "the first argument of where must be a condition"),
        ("(b1>1)-(b2>1)", 6, Type, "'-' needs a number on at least one side"),
        ("(b1>1)**(b2>1)", 6, Type, "'**' needs a number on at least one side"),
        ("2+3", 0, Syntax, "expression reads no band"),
        // rio-tiler 9.4.12: InvalidExpression ("inhomogeneous shape", "integer modulo by
        // zero", "Python int too large to convert to C long").
        ("b1;2", 3, Syntax, "output band 2 reads no band: each ';'-separated output must reference"),
        ("b2;1%0", 3, Syntax, "output band 2 reads no band"),
        ("11**111**2;b1+1", 0, Syntax, "output band 1 reads no band"),
        ("b1;b2 +", 7, Syntax, "expected an operand after '+' at column 7"),
    ];
    for (text, position, kind, fragment) in cases {
        let err = parse(text).unwrap_err();
        assert_eq!(err.position, *position, "{text:?}: {err}");
        assert_eq!(err.kind, *kind, "{text:?}: {err}");
        assert!(err.message.contains(fragment), "{text:?}: {err}");
    }
}
