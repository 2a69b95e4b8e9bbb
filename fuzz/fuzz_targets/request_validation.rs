//! Fuzzes request validation at the API edge: the input is a protobuf message as a
//! client would send it, decoded as a `GetTileRequest` and as a `GetTilesRequest`, and
//! every tile that decodes goes through `TileRequest::parse`. It must not panic, and
//! what it accepts must respect the limits and stay inside the data directory.
#![no_main]

mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use tessera::api::{Limits, TileRequest};
use tessera::mosaic::AssetResolver;
use tessera::pb::v1::{GetTileRequest, GetTilesRequest};

/// The server's default limits, and tight ones (a valid configuration too), so the
/// checks are exercised at both ends.
fn limits() -> [Limits; 2] {
    let default = Limits {
        max_tile_size: 1024,
        max_assets_per_tile: 64,
        max_batch_size: 1000,
        stream_concurrency: 8,
        max_in_flight_tiles: 256,
        max_request_size: 4 << 20,
        max_response_size: 64 << 20,
        max_in_flight_per_caller: 128,
        max_request_memory: 256 << 20,
        max_in_flight_memory: 1 << 30,
    };
    let tight = Limits { max_tile_size: 128, max_assets_per_tile: 2, ..default.clone() };
    [default, tight]
}

/// A resolver over the shared data directory, without remote prefixes.
fn resolver() -> &'static AssetResolver {
    static RESOLVER: OnceLock<AssetResolver> = OnceLock::new();
    RESOLVER.get_or_init(|| AssetResolver::new(common::data_dir()).expect("data directory resolves"))
}

fn check(req: &GetTileRequest, limits: &Limits, resolver: &AssetResolver) {
    let Ok(tile) = TileRequest::parse(req, limits, resolver, &tessera::tms::TileMatrixSets::default()) else { return };
    assert!(
        (1..=limits.max_tile_size).contains(&tile.size),
        "tile size {} accepted outside 1..={} (request tile_size={})",
        tile.size,
        limits.max_tile_size,
        req.tile_size
    );
    assert!(!tile.assets.is_empty(), "a tile without assets was accepted");
    assert!(
        tile.assets.len() <= limits.max_assets_per_tile,
        "{} assets accepted, limit {}",
        tile.assets.len(),
        limits.max_assets_per_tile
    );
    for asset in &tile.assets {
        // No remote prefix is configured: every asset must be a file under the root.
        assert!(
            asset.path.starts_with(resolver.root()),
            "asset {:?} resolved to {:?}, outside {:?}",
            asset.name,
            asset.path,
            resolver.root()
        );
    }
    assert!(!tile.bands.contains(&0), "band 0 accepted: {:?}", tile.bands);
}

fuzz_target!(|data: &[u8]| {
    let resolver = resolver();
    let limits = limits();
    if let Ok(req) = GetTileRequest::decode(data) {
        for l in &limits {
            check(&req, l, resolver);
        }
    }
    if let Ok(batch) = GetTilesRequest::decode(data) {
        for req in &batch.tiles {
            for l in &limits {
                check(req, l, resolver);
            }
        }
    }
});
