//! Everything between worker pixels and bytes on the wire: the typed raster of a tile,
//! first-wins compositing of several assets, rescale and colormaps, and the encoders.

pub mod colormap;
mod composite;
mod encode;
pub mod expr;
mod raster;
pub mod rescale;

pub use composite::Compositor;
pub use encode::{EncodeError, OutputFormat, check_encodable, encode};
pub use raster::{DataType, Raster};
