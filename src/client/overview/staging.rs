//! The overview's file: a tiled GeoTIFF on the zoom-N tile grid that tiles are written
//! into as they arrive (one tile, one block; validity as nodata or an internal mask), and
//! the COG copied from it. GDAL is called here and nowhere else in the client.

use std::path::Path;

use gdal::{
    Dataset, DriverManager, Metadata,
    raster::{Buffer, GdalType, RasterCreationOptions},
    spatial_ref::SpatialRef,
};

use super::{LAYER_METADATA, MAXZOOM_METADATA, OverviewResampling, TILE_SIZE, TileGrid};
use crate::{client::ClientError, pb::v1};

/// How validity is stored in the overview.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Validity {
    /// Every band has this nodata: a masked pixel is nodata in every band.
    Nodata(f64),
    /// An internal per-dataset mask (the layer's bands have no common nodata).
    Mask,
}

/// The layer's pixel layout, as GetLayer describes its first asset.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub(super) dtype: v1::DataType,
    pub(super) bands: usize,
    pub(super) validity: Validity,
}

impl Layout {
    pub(super) fn of(layer: &v1::GetLayerResponse) -> Result<Self, ClientError> {
        let dtype = v1::DataType::try_from(layer.dtype).unwrap_or(v1::DataType::Unspecified);
        if dtype == v1::DataType::Unspecified || layer.data_band_count == 0 {
            return Err(ClientError::Usage(format!(
                "the server describes no bands for layer '{}' (its sample asset '{}' could not be read?)",
                layer.layer.as_ref().map_or("", |l| l.name.as_str()),
                layer.sample_asset
            )));
        }
        let data: Vec<&v1::BandInfo> =
            layer.bands.iter().filter(|b| !b.color_interpretation.eq_ignore_ascii_case("alpha")).collect();
        let common = data.first().filter(|first| {
            first.has_nodata && data.iter().all(|b| b.has_nodata && same_value(b.nodata, first.nodata))
        });
        let validity = common.map_or(Validity::Mask, |b| Validity::Nodata(b.nodata));
        Ok(Self { dtype, bands: layer.data_band_count as usize, validity })
    }

    pub(super) fn type_size(&self) -> usize {
        match self.dtype {
            v1::DataType::Uint16 | v1::DataType::Int16 => 2,
            v1::DataType::Uint32 | v1::DataType::Int32 | v1::DataType::Float32 => 4,
            v1::DataType::Float64 => 8,
            _ => 1,
        }
    }
}

/// Equal, NaN equal to NaN (a NaN nodata). Nodata is an exact value, not a tolerance.
#[allow(clippy::float_cmp)]
fn same_value(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// A pixel type the overview is written in: native-endian bytes in, nodata cast.
trait Pixel: GdalType + Copy {
    const SIZE: usize;
    fn from_bytes(b: &[u8]) -> Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

macro_rules! pixel {
    ($($t:ty),*) => {$(
        impl Pixel for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_bytes(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_ne_bytes(a)
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
        }
    )*};
}
// Every pixel type converts to f64 without loss; from f64 the nodata is cast, as GDAL does.
pixel!(u8, u16, i16, u32, i32, f32, f64);

/// One tile as the server sent it: band-sequential pixels and a 0/255 mask, or nothing
/// (no asset of the layer there).
pub(super) struct TileData {
    pub(super) pixels: Vec<u8>,
    pub(super) mask: Vec<u8>,
}

/// The payload of an .npy array, checked against the expected length.
pub(super) fn npy_payload<'a>(bytes: &'a [u8], expected: usize, what: &str) -> Result<&'a [u8], ClientError> {
    let bad = || ClientError::Overview(format!("the server sent a {what} that is not the expected .npy"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad());
    }
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let payload = bytes.get(10 + header..).ok_or_else(bad)?;
    if payload.len() == expected { Ok(payload) } else { Err(bad()) }
}

/// The overview being written: the temporary tiled GeoTIFF.
pub(super) struct Staging {
    pub(super) ds: Dataset,
    pub(super) layout: Layout,
    pub(super) grid: TileGrid,
    /// Valid pixels whose every band equals the nodata (masked in the overview).
    pub(super) lost_pixels: u64,
}

impl Staging {
    pub(super) fn create(
        path: &Path,
        layout: Layout,
        grid: TileGrid,
        layer: &str,
    ) -> gdal::errors::Result<Self> {
        let (w, h) = grid.size();
        let (width, height) = (w as usize * TILE_SIZE, h as usize * TILE_SIZE);
        let driver = DriverManager::get_driver_by_name("GTiff")?;
        let mut options = vec![
            "TILED=YES".to_owned(),
            format!("BLOCKXSIZE={TILE_SIZE}"),
            format!("BLOCKYSIZE={TILE_SIZE}"),
            "COMPRESS=DEFLATE".to_owned(),
            "BIGTIFF=IF_SAFER".to_owned(),
        ];
        if layout.dtype == v1::DataType::Int8 {
            options.push("PIXELTYPE=SIGNEDBYTE".to_owned());
        }
        let options = RasterCreationOptions::from_iter(options);
        let bands = layout.bands;
        let mut ds = match layout.dtype {
            v1::DataType::Uint16 => {
                driver.create_with_band_type_with_options::<u16, _>(path, width, height, bands, &options)
            }
            v1::DataType::Int16 => {
                driver.create_with_band_type_with_options::<i16, _>(path, width, height, bands, &options)
            }
            v1::DataType::Uint32 => {
                driver.create_with_band_type_with_options::<u32, _>(path, width, height, bands, &options)
            }
            v1::DataType::Int32 => {
                driver.create_with_band_type_with_options::<i32, _>(path, width, height, bands, &options)
            }
            v1::DataType::Float32 => {
                driver.create_with_band_type_with_options::<f32, _>(path, width, height, bands, &options)
            }
            v1::DataType::Float64 => {
                driver.create_with_band_type_with_options::<f64, _>(path, width, height, bands, &options)
            }
            _ => driver.create_with_band_type_with_options::<u8, _>(path, width, height, bands, &options),
        }?;
        ds.set_geo_transform(&grid.geo_transform())?;
        ds.set_spatial_ref(&SpatialRef::from_epsg(3857)?)?;
        ds.set_metadata_item(LAYER_METADATA, layer, "")?;
        ds.set_metadata_item(MAXZOOM_METADATA, &grid.z.to_string(), "")?;
        match layout.validity {
            Validity::Nodata(value) => {
                for b in 1..=bands {
                    ds.rasterband(b)?.set_no_data_value(Some(value))?;
                }
            }
            Validity::Mask => ds.rasterband(1)?.create_mask_band(true)?,
        }
        Ok(Self { ds, layout, grid, lost_pixels: 0 })
    }

    /// Writes tile `x`/`y` of the grid; `None`: no asset there, all masked.
    pub(super) fn write(&mut self, x: u32, y: u32, tile: Option<TileData>) -> Result<(), ClientError> {
        let pixels = TILE_SIZE * TILE_SIZE;
        let size = self.layout.type_size();
        let tile = match tile {
            Some(t) => t,
            None => TileData { pixels: vec![0; pixels * size * self.layout.bands], mask: vec![0; pixels] },
        };
        let offset = (
            ((x - self.grid.x0) as usize * TILE_SIZE) as isize,
            ((y - self.grid.y0) as usize * TILE_SIZE) as isize,
        );
        let written = match self.layout.dtype {
            v1::DataType::Uint16 => self.write_typed::<u16>(offset, &tile),
            v1::DataType::Int16 => self.write_typed::<i16>(offset, &tile),
            v1::DataType::Uint32 => self.write_typed::<u32>(offset, &tile),
            v1::DataType::Int32 => self.write_typed::<i32>(offset, &tile),
            v1::DataType::Float32 => self.write_typed::<f32>(offset, &tile),
            v1::DataType::Float64 => self.write_typed::<f64>(offset, &tile),
            // uint8, and int8 stored as bytes that say they are signed.
            _ => self.write_typed::<u8>(offset, &tile),
        };
        written.map_err(|e| ClientError::Overview(format!("writing tile {}/{x}/{y}: {e}", self.grid.z)))
    }

    fn write_typed<T: Pixel>(&mut self, offset: (isize, isize), tile: &TileData) -> gdal::errors::Result<()> {
        let n = TILE_SIZE * TILE_SIZE;
        let mut bands: Vec<Vec<T>> = tile
            .pixels
            .chunks_exact(n * T::SIZE)
            .map(|band| band.chunks_exact(T::SIZE).map(T::from_bytes).collect())
            .collect();
        if let Validity::Nodata(nodata) = self.layout.validity {
            let fill = T::from_f64(nodata);
            for p in 0..n {
                if tile.mask[p] == 0 {
                    for band in &mut bands {
                        band[p] = fill;
                    }
                } else if bands.iter().all(|band| same_value(band[p].to_f64(), T::from_f64(nodata).to_f64()))
                {
                    self.lost_pixels += 1;
                }
            }
        }
        for (i, values) in bands.into_iter().enumerate() {
            let mut buffer = Buffer::new((TILE_SIZE, TILE_SIZE), values);
            self.ds.rasterband(i + 1)?.write(offset, (TILE_SIZE, TILE_SIZE), &mut buffer)?;
        }
        if self.layout.validity == Validity::Mask {
            let band = self.ds.rasterband(1)?;
            let mut mask = band.open_mask_band()?;
            let mut buffer = Buffer::new((TILE_SIZE, TILE_SIZE), tile.mask.clone());
            mask.write(offset, (TILE_SIZE, TILE_SIZE), &mut buffer)?;
        }
        Ok(())
    }
}

pub(super) fn gdal_error(what: &str, e: gdal::errors::GdalError) -> ClientError {
    ClientError::Overview(format!("{what}: {e}"))
}

/// Copies the staging GeoTIFF into a COG at `path`, with internal overviews.
pub(super) fn write_cog(
    staged: &Dataset,
    path: &Path,
    resampling: OverviewResampling,
) -> Result<(), ClientError> {
    let cog = DriverManager::get_driver_by_name("COG").map_err(|e| gdal_error("the COG driver", e))?;
    let options = RasterCreationOptions::from_iter([
        "COMPRESS=DEFLATE".to_owned(),
        format!("BLOCKSIZE={TILE_SIZE}"),
        format!("OVERVIEW_RESAMPLING={}", resampling.gdal_name()),
        "BIGTIFF=IF_SAFER".to_owned(),
        "NUM_THREADS=ALL_CPUS".to_owned(),
    ]);
    // Dropped at once: the file is complete when GDAL closes it.
    staged
        .create_copy(&cog, path, &options)
        .map(drop)
        .map_err(|e| gdal_error(&format!("writing the COG {}", path.display()), e))
}
