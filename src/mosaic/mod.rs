//! Which assets make a tile: resolving the caller's asset names to files or URLs this
//! server may read, and the front's cache of asset metadata (bounds, type, bands) that lets a
//! tile skip assets it does not touch without a worker job; and pixel selection, how the
//! assets of a tile combine.

mod assets;
mod info_cache;
mod remote;
mod selection;

pub use assets::{Asset, AssetResolver, MAX_ASSET_NAME_LEN};
pub use info_cache::{AssetInfo, InfoCache};
pub use remote::{
    AddressRange, RemotePrefix, RemoteUrl, Scheme, WORKER_PREFIX, address_range, is_remote_path,
};
pub use selection::{PixelSelection, SelectionError, Selector};
