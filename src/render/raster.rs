//! A tile's pixels: band-sequential values of one data type, plus a validity mask.

use crate::pb::{v1, worker};

/// Pixel data types a tile can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// Unsigned 8-bit.
    U8,
    /// Signed 8-bit.
    I8,
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit.
    I16,
    /// Unsigned 32-bit.
    U32,
    /// Signed 32-bit.
    I32,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

impl DataType {
    /// Bytes per value.
    #[must_use]
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    /// The NumPy name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "uint8",
            Self::I8 => "int8",
            Self::U16 => "uint16",
            Self::I16 => "int16",
            Self::U32 => "uint32",
            Self::I32 => "int32",
            Self::F32 => "float32",
            Self::F64 => "float64",
        }
    }

    /// From the worker protocol's enum.
    #[must_use]
    pub fn from_worker(t: i32) -> Option<Self> {
        Some(match worker::DataType::try_from(t).ok()? {
            worker::DataType::Uint8 => Self::U8,
            worker::DataType::Int8 => Self::I8,
            worker::DataType::Uint16 => Self::U16,
            worker::DataType::Int16 => Self::I16,
            worker::DataType::Uint32 => Self::U32,
            worker::DataType::Int32 => Self::I32,
            worker::DataType::Float32 => Self::F32,
            worker::DataType::Float64 => Self::F64,
            worker::DataType::Unspecified => return None,
        })
    }

    /// To the worker protocol's enum.
    #[must_use]
    pub fn to_worker(self) -> worker::DataType {
        match self {
            Self::U8 => worker::DataType::Uint8,
            Self::I8 => worker::DataType::Int8,
            Self::U16 => worker::DataType::Uint16,
            Self::I16 => worker::DataType::Int16,
            Self::U32 => worker::DataType::Uint32,
            Self::I32 => worker::DataType::Int32,
            Self::F32 => worker::DataType::Float32,
            Self::F64 => worker::DataType::Float64,
        }
    }

    /// To the public API's enum.
    #[must_use]
    pub fn to_api(self) -> v1::DataType {
        match self {
            Self::U8 => v1::DataType::Uint8,
            Self::I8 => v1::DataType::Int8,
            Self::U16 => v1::DataType::Uint16,
            Self::I16 => v1::DataType::Int16,
            Self::U32 => v1::DataType::Uint32,
            Self::I32 => v1::DataType::Int32,
            Self::F32 => v1::DataType::Float32,
            Self::F64 => v1::DataType::Float64,
        }
    }

    /// `value` in this type, native byte order, saturating like GDAL does.
    #[must_use]
    pub fn encode_value(self, value: f64) -> Vec<u8> {
        let mut bytes = vec![0; self.size()];
        self.write_value(value, &mut bytes);
        bytes
    }

    /// Writes `value` in this type into `out` (exactly [`Self::size`] bytes), native byte
    /// order, with the cast of [`Self::encode_value`]: integers truncate toward zero and
    /// saturate at the type's range (NaN becomes 0), floats round to nearest.
    pub fn write_value(self, value: f64, out: &mut [u8]) {
        match self {
            Self::U8 => out.copy_from_slice(&[value.clamp(0.0, 255.0) as u8]),
            Self::I8 => out.copy_from_slice(&(value.clamp(-128.0, 127.0) as i8).to_ne_bytes()),
            Self::U16 => out.copy_from_slice(&(value.clamp(0.0, 65535.0) as u16).to_ne_bytes()),
            Self::I16 => out.copy_from_slice(&(value.clamp(-32768.0, 32767.0) as i16).to_ne_bytes()),
            Self::U32 => out.copy_from_slice(&(value.max(0.0) as u32).to_ne_bytes()),
            Self::I32 => out.copy_from_slice(&(value as i32).to_ne_bytes()),
            Self::F32 => out.copy_from_slice(&(value as f32).to_ne_bytes()),
            Self::F64 => out.copy_from_slice(&value.to_ne_bytes()),
        }
    }

    /// Reads one value of this type from `bytes` (exactly [`Self::size`] bytes, native
    /// byte order). Every type converts to `f64` exactly.
    #[must_use]
    pub fn read_value(self, bytes: &[u8]) -> f64 {
        // The caller hands exactly `size()` bytes; a shorter slice reads as zero bytes
        // rather than panicking.
        fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
            bytes.try_into().unwrap_or([0; N])
        }
        match self {
            Self::U8 => f64::from(bytes.first().copied().unwrap_or(0)),
            Self::I8 => f64::from(i8::from_ne_bytes(array(bytes))),
            Self::U16 => f64::from(u16::from_ne_bytes(array(bytes))),
            Self::I16 => f64::from(i16::from_ne_bytes(array(bytes))),
            Self::U32 => f64::from(u32::from_ne_bytes(array(bytes))),
            Self::I32 => f64::from(i32::from_ne_bytes(array(bytes))),
            Self::F32 => f64::from(f32::from_ne_bytes(array(bytes))),
            Self::F64 => f64::from_ne_bytes(array(bytes)),
        }
    }

    /// Whether this is a floating-point type.
    #[must_use]
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }
}

/// Pixels of a tile: `bands * height * width` values, band-sequential, native byte
/// order, and one mask byte per pixel (255 valid, 0 no data).
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    /// Value type.
    pub dtype: DataType,
    /// Number of bands.
    pub bands: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The values.
    pub pixels: Vec<u8>,
    /// The validity mask.
    pub mask: Vec<u8>,
}

impl Raster {
    /// A raster of `fill` everywhere and no valid pixel.
    #[must_use]
    pub fn empty(dtype: DataType, bands: usize, width: usize, height: usize, fill: f64) -> Self {
        let value = dtype.encode_value(fill);
        let pixels = value.repeat(bands * width * height);
        Self { dtype, bands, width, height, pixels, mask: vec![0; width * height] }
    }

    /// Number of pixels per band.
    #[must_use]
    pub fn pixel_count(&self) -> usize {
        self.width * self.height
    }

    /// The value at `index` (`band * pixel_count() + pixel`), exactly, as `f64`.
    ///
    /// # Panics
    /// If `index` is outside the raster (a consistent raster holds
    /// `bands * pixel_count()` values).
    #[must_use]
    pub fn value(&self, index: usize) -> f64 {
        let size = self.dtype.size();
        self.dtype.read_value(&self.pixels[index * size..(index + 1) * size])
    }

    /// Stores `value` at `index` (`band * pixel_count() + pixel`), cast like
    /// [`DataType::encode_value`].
    ///
    /// # Panics
    /// If `index` is outside the raster.
    pub fn set_value(&mut self, index: usize, value: f64) {
        let size = self.dtype.size();
        self.dtype.write_value(value, &mut self.pixels[index * size..(index + 1) * size]);
    }

    /// Copies the value at `src_index` of `src` (same data type) to `index`, bit for bit.
    ///
    /// # Panics
    /// If either index is outside its raster.
    pub fn copy_value(&mut self, index: usize, src: &Raster, src_index: usize) {
        debug_assert_eq!(self.dtype, src.dtype);
        let size = self.dtype.size();
        self.pixels[index * size..(index + 1) * size]
            .copy_from_slice(&src.pixels[src_index * size..(src_index + 1) * size]);
    }

    /// Whether the buffers have the sizes the header claims.
    #[must_use]
    pub fn is_consistent(&self) -> bool {
        self.pixels.len() == self.bands * self.pixel_count() * self.dtype.size()
            && self.mask.len() == self.pixel_count()
    }
}

#[cfg(test)]
// Conversions are exact, and exactly what these tests check.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    const ALL: [DataType; 7] = [
        DataType::U8,
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::F32,
        DataType::F64,
    ];

    #[test]
    fn values_round_trip_through_every_type() {
        for dtype in ALL {
            let mut r = Raster::empty(dtype, 2, 2, 1, 0.0);
            r.set_value(3, 7.0);
            assert_eq!(r.value(3), 7.0, "{}", dtype.name());
            assert_eq!(r.value(0), 0.0);
            assert_eq!(r.pixels[3 * dtype.size()..], dtype.encode_value(7.0)[..]);
        }
    }

    #[test]
    fn set_value_truncates_toward_zero_and_saturates_like_encode_value() {
        let mut r = Raster::empty(DataType::I16, 1, 4, 1, 0.0);
        for (i, v) in [-3.9, 2.7, 1e9, f64::NAN].into_iter().enumerate() {
            r.set_value(i, v);
            assert_eq!(r.pixels[i * 2..i * 2 + 2], DataType::I16.encode_value(v)[..]);
        }
        assert_eq!([r.value(0), r.value(1), r.value(2), r.value(3)], [-3.0, 2.0, 32767.0, 0.0]);
        let mut u = Raster::empty(DataType::U8, 1, 2, 1, 0.0);
        u.set_value(0, 255.9);
        u.set_value(1, -1.0);
        assert_eq!(u.pixels, vec![255, 0]);
    }

    #[test]
    fn float_values_keep_nan_and_rounding_of_f32() {
        let mut r = Raster::empty(DataType::F32, 1, 2, 1, 0.0);
        r.set_value(0, f64::NAN);
        r.set_value(1, 0.1);
        assert!(r.value(0).is_nan());
        assert_eq!(r.value(1), f64::from(0.1f32));
    }

    #[test]
    fn copy_value_moves_the_bytes_of_one_value() {
        let src = Raster::empty(DataType::U16, 1, 2, 1, 513.0);
        let mut dst = Raster::empty(DataType::U16, 2, 2, 1, 0.0);
        dst.copy_value(3, &src, 1);
        assert_eq!([dst.value(0), dst.value(3)], [0.0, 513.0]);
    }
}
