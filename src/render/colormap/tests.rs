//! Colormap outputs checked against rio-tiler 9.4.12.
use super::*;

// Expected outputs were computed with rio-tiler 9.4.12 and numpy 2.4.6 as
// `numpy.load(BytesIO(ImageData(numpy.ma.MaskedArray(values[None, None, :], mask=…))
// .render(img_format="NPY", colormap=cm)))`, whose 4 bands are R, G, B and the
// alpha rio-tiler writes (colormap alpha combined with the mask).

fn raster(dtype: DataType, values: &[f64], mask: &[u8]) -> Raster {
    let pixels = values.iter().flat_map(|&v| dtype.encode_value(v)).collect();
    Raster { dtype, bands: 1, width: values.len(), height: 1, pixels, mask: mask.to_vec() }
}

/// R, G, B and alpha planes of the output.
fn planes(out: &Raster) -> [Vec<u8>; 4] {
    assert_eq!((out.dtype, out.bands), (DataType::U8, 3));
    let n = out.pixel_count();
    [out.pixels[..n].to_vec(), out.pixels[n..2 * n].to_vec(), out.pixels[2 * n..].to_vec(), out.mask.clone()]
}

fn rgba(c: [u8; 4]) -> Rgba {
    Rgba(c)
}

fn discrete() -> Colormap {
    Colormap::exact(vec![
        (0.0, rgba([0, 0, 0, 0])),
        (1.0, rgba([255, 0, 0, 255])),
        (100.0, rgba([0, 255, 0, 128])),
        (1000.0, rgba([0, 0, 255, 255])),
    ])
    .unwrap()
}

#[test]
fn a_named_map_on_uint8_indexes_its_table_and_masks_alpha() {
    let out = Colormap::named("viridis")
        .unwrap()
        .apply(&raster(DataType::U8, &[0.0, 1.0, 128.0, 255.0], &[255, 255, 0, 255]))
        .unwrap();
    assert_eq!(
        planes(&out),
        [vec![68, 68, 32, 253], vec![1, 2, 144, 231], vec![84, 85, 140, 36], vec![255, 255, 0, 255]]
    );
    assert_eq!((out.width, out.height), (4, 1));
}

#[test]
fn a_named_map_on_float_data_indexes_with_numpys_uint8_cast() {
    let values = [-1.0, 0.5, 255.9, 256.0, 300.0, f64::NAN, 1e10, -300.0];
    let out = Colormap::named("viridis").unwrap().apply(&raster(DataType::F64, &values, &[255; 8])).unwrap();
    assert_eq!(
        planes(&out),
        [
            vec![253, 68, 253, 68, 67, 68, 68, 141],
            vec![231, 1, 231, 1, 59, 1, 1, 214],
            vec![36, 84, 36, 84, 131, 84, 84, 68],
            vec![255; 8],
        ]
    );
}

#[test]
fn a_named_map_on_integer_data_keeps_the_low_byte() {
    let out = Colormap::named("viridis")
        .unwrap()
        .apply(&raster(DataType::I16, &[-1.0, 256.0, 300.0, 7.0], &[255, 255, 255, 0]))
        .unwrap();
    assert_eq!(
        planes(&out),
        [vec![253, 68, 67, 70], vec![231, 1, 59, 11], vec![36, 84, 131, 94], vec![255, 255, 255, 0]]
    );
}

#[test]
fn exact_values_match_or_give_transparent_black_and_masked_pixels_keep_rgb() {
    let values = [0.0, 1.0, 100.0, 1000.0, 2.0, 1.5, f64::NAN, 100.0, -0.0];
    let mask = [255, 255, 255, 255, 255, 255, 255, 0, 255];
    let out = discrete().apply(&raster(DataType::F32, &values, &mask)).unwrap();
    assert_eq!(
        planes(&out),
        [
            vec![0, 255, 0, 0, 0, 0, 0, 0, 0],
            vec![0, 0, 255, 0, 0, 0, 0, 255, 0],
            vec![0, 0, 0, 255, 0, 0, 0, 0, 0],
            vec![0, 255, 128, 255, 0, 0, 0, 0, 0],
        ]
    );
}

#[test]
fn exact_values_on_uint8_do_not_wrap() {
    // 232 is 1000 modulo 256: no match, unlike a 256-entry table.
    let out = discrete()
        .apply(&raster(DataType::U8, &[0.0, 1.0, 100.0, 232.0, 2.0], &[255, 255, 255, 255, 0]))
        .unwrap();
    assert_eq!(
        planes(&out),
        [vec![0, 255, 0, 0, 0], vec![0, 0, 255, 0, 0], vec![0; 5], vec![0, 255, 128, 0, 0]]
    );
}

#[test]
fn intervals_include_min_exclude_max_and_leave_gaps_transparent() {
    let cm = Colormap::intervals(vec![
        (10.0, 20.0, rgba([0, 255, 0, 128])),
        (0.0, 10.0, rgba([255, 0, 0, 255])),
        (30.0, 40.0, rgba([0, 0, 255, 255])),
    ])
    .unwrap();
    let values = [-1.0, 0.0, 9.99, 10.0, 19.999, 20.0, 25.0, 30.0, 40.0, f64::NAN, 5.0];
    let mut mask = vec![255; 10];
    mask.push(0);
    let out = cm.apply(&raster(DataType::F64, &values, &mask)).unwrap();
    assert_eq!(
        planes(&out),
        [
            vec![0, 255, 255, 0, 0, 0, 0, 0, 0, 0, 255],
            vec![0, 0, 0, 255, 255, 0, 0, 0, 0, 0, 0],
            vec![0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0],
            vec![0, 255, 255, 128, 128, 0, 0, 255, 0, 0, 0],
        ]
    );
}

#[test]
fn exact_values_0_to_255_behave_as_a_table_with_the_uint8_cast() {
    // {i: (i, 255 - i, 0, 255 if i % 2 == 0 else 100) for i in range(256)}
    let entries = (0..=255u8)
        .map(|i| (f64::from(i), rgba([i, 255 - i, 0, if i % 2 == 0 { 255 } else { 100 }])))
        .collect();
    let out = Colormap::exact(entries)
        .unwrap()
        .apply(&raster(DataType::F64, &[256.0, -1.0, 3.7, 2.0], &[255, 255, 255, 0]))
        .unwrap();
    assert_eq!(
        planes(&out),
        [vec![0, 255, 3, 2], vec![255, 0, 252, 253], vec![0; 4], vec![255, 100, 100, 0]]
    );
}

#[test]
fn float32_tiles_compare_in_float32() {
    let exact = Colormap::exact(vec![(16_777_217.0, rgba([1, 2, 3, 4])), (7.0, rgba([9, 9, 9, 9]))]).unwrap();
    let out = exact.apply(&raster(DataType::F32, &[16_777_216.0, 0.1], &[255, 255])).unwrap();
    assert_eq!(planes(&out), [vec![1, 0], vec![2, 0], vec![3, 0], vec![4, 0]]);
    let intervals = Colormap::intervals(vec![(0.100_000_000_1, 1.0, rgba([5, 6, 7, 8]))]).unwrap();
    let out = intervals.apply(&raster(DataType::F32, &[0.1, 0.05], &[255, 255])).unwrap();
    assert_eq!(planes(&out), [vec![5, 0], vec![6, 0], vec![7, 0], vec![8, 0]]);
    // In float64, 0.1 is below 0.1000000001 and does not match.
    let out = intervals.apply(&raster(DataType::F64, &[0.1], &[255])).unwrap();
    assert_eq!(planes(&out)[3], vec![0]);
}

#[test]
fn keys_merged_by_float32_rounding_take_the_colour_given_last() {
    let cm = Colormap::exact(vec![(16_777_217.0, rgba([1, 1, 1, 1])), (16_777_216.0, rgba([2, 2, 2, 2]))])
        .unwrap();
    let out = cm.apply(&raster(DataType::F32, &[16_777_216.0], &[255])).unwrap();
    assert_eq!(planes(&out)[0], vec![2]);
    let cm = Colormap::exact(vec![(16_777_216.0, rgba([2, 2, 2, 2])), (16_777_217.0, rgba([1, 1, 1, 1]))])
        .unwrap();
    let out = cm.apply(&raster(DataType::F32, &[16_777_216.0], &[255])).unwrap();
    assert_eq!(planes(&out)[0], vec![1]);
}

#[test]
fn numpys_float_to_uint8_cast_is_reproduced() {
    // numpy.array(v, float64).astype(uint8) on x86-64 with numpy 2.4.6.
    let cases = [
        (1.5, 1),
        (255.9, 255),
        (256.0, 0),
        (300.0, 44),
        (-1.0, 255),
        (-0.5, 0),
        (-255.0, 1),
        (70_000.7, 112),
        (2_147_483_647.0, 255),
        (2_147_483_648.0, 0),
        (-2_147_483_649.0, 0),
        (1e20, 0),
        (f64::NAN, 0),
        (f64::INFINITY, 0),
    ];
    for (value, expected) in cases {
        assert_eq!(float_to_u8(value), expected, "{value}");
    }
}

#[test]
fn more_than_one_band_is_refused() {
    let r =
        Raster { dtype: DataType::U8, bands: 3, width: 1, height: 1, pixels: vec![1, 2, 3], mask: vec![255] };
    let e = Colormap::named("magma").unwrap().apply(&r).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a colormap applies to a single band, and this tile has 3: select one band or an expression giving one band"
    );
    let mut broken = raster(DataType::U16, &[1.0], &[255]);
    broken.pixels.pop();
    assert_eq!(
        Colormap::named("magma").unwrap().apply(&broken).unwrap_err(),
        ColormapError::InconsistentRaster
    );
}

#[test]
fn unknown_names_list_close_ones_and_the_count() {
    assert_eq!(
        Colormap::named("Viridis").unwrap_err().to_string(),
        "unknown colormap 'Viridis': did you mean viridis, cividis, viridis_r? (211 named colormaps exist)"
    );
    assert_eq!(
        Colormap::named("xyzzy-map").unwrap_err().to_string(),
        "unknown colormap 'xyzzy-map': no similar name among the 211 named colormaps (lowercase, e.g. viridis, magma, terrain; \"_r\" reverses a map)"
    );
    assert_eq!(named_count(), 211);
    assert!(names().any(|n| n == "cfastie"));
}

#[test]
fn unknown_names_are_quoted_escaped_and_cut() {
    assert_eq!(
        Colormap::named("viridis\r\n\u{202E}x").unwrap_err().to_string(),
        "unknown colormap 'viridis\\r\\n\\u{202e}x': no similar name among the 211 named colormaps (lowercase, e.g. viridis, magma, terrain; \"_r\" reverses a map)"
    );
    // A megabyte name: cut in the message, and compared with no table (it is near none).
    let long = "viridis".repeat(150_000);
    let message = Colormap::named(&long).unwrap_err().to_string();
    assert!(
        message
            .starts_with(&format!("unknown colormap '{}'… (1050000 bytes): no similar name", &long[..128])),
        "{message}"
    );
}
