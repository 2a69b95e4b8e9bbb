//! Reading one band of a [`Raster`] as `f64`, whatever its data type. Every Tessera
//! data type converts to `f64` exactly, so rescale and colormaps can work on `f64` and
//! still reproduce comparisons made in the source type.

use super::{DataType, Raster};

/// The values of band `band` (0-based) in pixel order. The caller checks that the
/// raster is consistent and that `band < raster.bands`.
pub(super) fn band_values(raster: &Raster, band: usize) -> Vec<f64> {
    let size = raster.dtype.size();
    let n = raster.pixel_count();
    let bytes = &raster.pixels[band * n * size..(band + 1) * n * size];
    match raster.dtype {
        DataType::U8 => bytes.iter().map(|&v| f64::from(v)).collect(),
        DataType::U16 => decode(bytes, |b| f64::from(u16::from_ne_bytes(b))),
        DataType::I16 => decode(bytes, |b| f64::from(i16::from_ne_bytes(b))),
        DataType::U32 => decode(bytes, |b| f64::from(u32::from_ne_bytes(b))),
        DataType::I32 => decode(bytes, |b| f64::from(i32::from_ne_bytes(b))),
        DataType::F32 => decode(bytes, |b| f64::from(f32::from_ne_bytes(b))),
        DataType::F64 => decode(bytes, f64::from_ne_bytes),
    }
}

fn decode<const N: usize>(bytes: &[u8], convert: impl Fn([u8; N]) -> f64) -> Vec<f64> {
    bytes
        .chunks_exact(N)
        .map(|chunk| {
            let mut sample = [0; N];
            sample.copy_from_slice(chunk);
            convert(sample)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_band_of_each_type_reads_back_exactly() {
        let mut pixels = Vec::new();
        for v in [-1.5f32, 2.25, 7.0, 1e30] {
            pixels.extend_from_slice(&v.to_ne_bytes());
        }
        let r = Raster { dtype: DataType::F32, bands: 2, width: 2, height: 1, pixels, mask: vec![255, 0] };
        assert_eq!(band_values(&r, 0), vec![-1.5, 2.25]);
        assert_eq!(band_values(&r, 1), vec![7.0, f64::from(1e30f32)]);

        let pixels = [-32768i16, 32767].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let r = Raster { dtype: DataType::I16, bands: 1, width: 2, height: 1, pixels, mask: vec![255, 255] };
        assert_eq!(band_values(&r, 0), vec![-32768.0, 32767.0]);
    }
}
