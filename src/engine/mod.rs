//! The tile engine: what happens between a checked request and its encoded answer.
//! It describes assets (cached), decides which touch the tile, runs one worker job per
//! asset read through the pool (with the front fetching remote bytes first), composites
//! the rasters as they land, applies rescale and colormap, and encodes. The API
//! (`crate::api`) turns protobuf into the types here and the results back; the pixel
//! arithmetic itself is `crate::render`, the workers are `crate::pool`.
//!
//! - [`request`]: the checked tile request.
//! - [`jobs`]: worker jobs with their spans, remote prefetch, error mapping.
//! - [`tile`]: planning, compositing and encoding one tile.
//! - [`preview`]: a whole asset at a bounded size, rendered as a tile is.
//! - [`budget`]: the memory a render may hold, reserved before it reads.

pub mod budget;
pub mod jobs;
pub mod preview;
pub mod request;
pub mod tile;

pub use budget::{MemoryBudget, RenderShape};
pub use jobs::TileRenderer;
pub use preview::{Preview, RenderedPreview};
pub use request::{TileRequest, after_rescale_and_colormap};
pub use tile::evaluate_expression;
