//! A tile's pixels: band-sequential values of one data type, plus a validity mask.

use crate::pb::{v1, worker};

/// Pixel data types a tile can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// Unsigned 8-bit.
    U8,
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
            Self::U8 => 1,
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
            worker::DataType::Uint16 => Self::U16,
            worker::DataType::Int16 => Self::I16,
            worker::DataType::Uint32 => Self::U32,
            worker::DataType::Int32 => Self::I32,
            worker::DataType::Float32 => Self::F32,
            worker::DataType::Float64 => Self::F64,
            worker::DataType::Unspecified | worker::DataType::Int8 => return None,
        })
    }

    /// To the public API's enum.
    #[must_use]
    pub fn to_api(self) -> v1::DataType {
        match self {
            Self::U8 => v1::DataType::Uint8,
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
        match self {
            Self::U8 => vec![value.clamp(0.0, 255.0) as u8],
            Self::U16 => (value.clamp(0.0, 65535.0) as u16).to_ne_bytes().to_vec(),
            Self::I16 => (value.clamp(-32768.0, 32767.0) as i16).to_ne_bytes().to_vec(),
            Self::U32 => (value.max(0.0) as u32).to_ne_bytes().to_vec(),
            Self::I32 => (value as i32).to_ne_bytes().to_vec(),
            Self::F32 => (value as f32).to_ne_bytes().to_vec(),
            Self::F64 => value.to_ne_bytes().to_vec(),
        }
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

    /// Whether the buffers have the sizes the header claims.
    #[must_use]
    pub fn is_consistent(&self) -> bool {
        self.pixels.len() == self.bands * self.pixel_count() * self.dtype.size()
            && self.mask.len() == self.pixel_count()
    }
}
