//! The hostile-input catalogue: every way a caller might try to make the server read
//! what it must not, or break it, each answered with the exact gRPC code and a message
//! that says what was wrong — and after every case the server still renders the same
//! good tile, byte for byte.

use bytes::{Buf, BufMut};
use tessera::pb::v1::{self, tile_service_client::TileServiceClient};
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

use crate::harness::{self, Server, ServerOptions, tile_request};

/// The good tile every case is followed by.
const GOOD: (u32, u32, u32, &str) = (12, 1194, 1551, "utm_rgb_00.tif");
/// The one remote prefix the catalogue's server allows (port 1: nothing is ever fetched).
const ALLOWED_PREFIX: &str = "http://127.0.0.1:1/cogs/";
/// The catalogue server's response limit: a 256 px PNG fits, a 1024 px NPY does not.
const MAX_RESPONSE: usize = 1 << 20;

/// What a case sends.
enum Call {
    Tile(Box<v1::GetTileRequest>),
    Info(String),
    Tiles(Vec<v1::GetTileRequest>),
    /// Raw bytes as the GetTile request message.
    Raw(Vec<u8>),
}

struct Case {
    label: String,
    call: Call,
    code: Code,
    fragment: String,
}

fn case(label: impl Into<String>, call: Call, code: Code, fragment: impl Into<String>) -> Case {
    Case { label: label.into(), call, code, fragment: fragment.into() }
}

fn asset_tile(asset: &str) -> Call {
    Call::Tile(Box::new(tile_request(GOOD.0, GOOD.1, GOOD.2, &[asset])))
}

fn good_with(change: impl FnOnce(&mut v1::GetTileRequest)) -> Call {
    let mut request = tile_request(GOOD.0, GOOD.1, GOOD.2, &[GOOD.3]);
    change(&mut request);
    Call::Tile(Box::new(request))
}

/// Sends bytes unchanged as a request and returns the response's bytes.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.chunk().to_vec();
        src.advance(bytes.len());
        Ok(Some(bytes))
    }
}

/// Runs one call; the status it failed with, or a description of what it returned.
async fn run(
    client: &mut TileServiceClient<Channel>,
    channel: &Channel,
    call: Call,
) -> Result<String, Status> {
    match call {
        Call::Tile(r) => client.get_tile(*r).await.map(|t| format!("a {} tile", t.get_ref().content_type)),
        Call::Info(asset) => {
            client.get_asset_info(v1::GetAssetInfoRequest { asset }).await.map(|_| "asset info".into())
        }
        Call::Tiles(tiles) => {
            let mut stream = client.get_tiles(v1::GetTilesRequest { tiles }).await?.into_inner();
            let mut n = 0;
            while stream.message().await?.is_some() {
                n += 1;
            }
            Ok(format!("{n} batch results"))
        }
        Call::Raw(bytes) => {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await.map_err(|e| Status::unknown(e.to_string()))?;
            let path = http::uri::PathAndQuery::from_static("/tessera.v1.TileService/GetTile");
            grpc.unary(tonic::Request::new(bytes), path, RawCodec)
                .await
                .map(|r| format!("{} bytes", r.get_ref().len()))
        }
    }
}

/// The catalogue: more than 40 cases.
#[allow(clippy::too_many_lines)]
fn catalogue(truncated_tile: (u32, u32)) -> Vec<Case> {
    use Code::{FailedPrecondition as FP, InvalidArgument as IA, NotFound as NF, PermissionDenied as PD};
    let mut cases = vec![
        // Path traversal, raw and disguised.
        case("parent dir", asset_tile("../outside.tif"), PD, "'..' is not allowed"),
        case("parent dir via sub", asset_tile("sub/../../outside.tif"), PD, "'..' is not allowed"),
        case("parent dir that stays inside", asset_tile("sub/../utm_rgb_00.tif"), PD, "'..' is not allowed"),
        case("dot then parent", asset_tile("./../utm_rgb_00.tif"), PD, "'..' is not allowed"),
        // Local names are not URL-decoded: these are just names that do not exist.
        case("percent-encoded parent", asset_tile("%2e%2e/outside.tif"), NF, "does not exist"),
        case("percent-encoded slash", asset_tile("..%2foutside.tif"), NF, "does not exist"),
        // Absolute paths.
        case("/etc/passwd", asset_tile("/etc/passwd"), PD, "absolute paths outside the data directory"),
        case("/etc/shadow", asset_tile("/etc/shadow"), PD, "absolute paths outside the data directory"),
        case("/proc/self/environ", asset_tile("/proc/self/environ"), PD, "absolute paths outside"),
        case("double slash", asset_tile("//etc/passwd"), PD, "absolute paths outside"),
        // Symlinks out of the data directory.
        case("symlink to a file outside", asset_tile("escape.tif"), PD, "through a symlink"),
        case("symlinked directory", asset_tile("escape_dir/passwd"), PD, "through a symlink"),
        case("dangling symlink outside", asset_tile("dangling_escape.tif"), PD, "symlink that leads outside"),
        case("info through a symlink", Call::Info("escape.tif".into()), PD, "through a symlink"),
        // GDAL's own syntaxes.
        case(
            "/vsicurl/ metadata",
            asset_tile("/vsicurl/http://169.254.169.254/latest/meta-data/"),
            PD,
            "virtual file system",
        ),
        case("/vsizip/", asset_tile("/vsizip/sub/a.zip/a.tif"), PD, "virtual file system"),
        case("/vsimem/", asset_tile("/vsimem/a.tif"), PD, "virtual file system"),
        case("/vsistdin/", asset_tile("/vsistdin/"), PD, "virtual file system"),
        case("/vsi inside a path", asset_tile("sub/vsicurl/../../x"), PD, "virtual file system"),
        case("GTIFF_DIR:", asset_tile("GTIFF_DIR:1:utm_rgb_00.tif"), PD, "driver prefixes"),
        case("NETCDF:", asset_tile("NETCDF:netcdf_like.nc:var"), PD, "driver prefixes"),
        case("vrt://", asset_tile("vrt://utm_rgb_00.tif?bands=1"), PD, "scheme 'vrt' is not served"),
        case("file://", asset_tile("file:///etc/passwd"), PD, "scheme 'file' is not served"),
        // URLs.
        case(
            "metadata endpoint",
            asset_tile("http://169.254.169.254/latest/meta-data/"),
            PD,
            "169.254.169.254 (link-local (cloud metadata)) is an IP-literal host",
        ),
        case("decimal IP", asset_tile("http://2130706433/cogs/a.tif"), PD, "non-canonical form"),
        case("hex IP", asset_tile("http://0x7f.0.0.1/cogs/a.tif"), PD, "non-canonical form"),
        case(
            "IPv6 loopback",
            asset_tile("http://[::1]/cogs/a.tif"),
            PD,
            "::1 (loopback) is an IP-literal host",
        ),
        case(
            "other host",
            asset_tile("https://evil.example.com/a.tif"),
            PD,
            "under none of the allowed prefixes: http://127.0.0.1:1/cogs/",
        ),
        case(
            "allowed host, other path",
            asset_tile("http://127.0.0.1:1/private/a.tif"),
            PD,
            "under none of the allowed prefixes",
        ),
        case(
            "userinfo trick",
            asset_tile("http://127.0.0.1:1@evil.example.com/cogs/a.tif"),
            PD,
            "user information",
        ),
        case("URL '..'", asset_tile("http://127.0.0.1:1/cogs/../secret.tif"), PD, "'.' and '..' segments"),
        case("URL %2e%2e", asset_tile("http://127.0.0.1:1/cogs/%2e%2e/secret.tif"), PD, "percent-encoded"),
        case("URL fragment", asset_tile("http://127.0.0.1:1/cogs/a.tif#x"), PD, "'#'"),
        case("URL backslash", asset_tile("http://127.0.0.1:1/cogs\\..\\secret.tif"), PD, "'\\\\'"),
        // Files that are not GeoTIFFs, or lie.
        case(
            "VRT pointing at /etc/passwd",
            asset_tile("passwd.vrt"),
            FP,
            "'passwd.vrt' cannot be read: not a readable GeoTIFF",
        ),
        case("VRT named .tif", asset_tile("vrt_disguised.tif"), FP, "'vrt_disguised.tif' cannot be read"),
        case("PNG", asset_tile("image.png"), FP, "'image.png' cannot be read"),
        case("NetCDF-like", asset_tile("netcdf_like.nc"), FP, "'netcdf_like.nc' cannot be read"),
        case("JSON", asset_tile("data.json"), FP, "'data.json' cannot be read"),
        case("header cut", asset_tile("header_cut.tif"), FP, "'header_cut.tif' cannot be read"),
        case(
            "truncated tile data",
            Call::Tile(Box::new(tile_request(17, truncated_tile.0, truncated_tile.1, &["truncated.tif"]))),
            FP,
            "'truncated.tif' cannot be read",
        ),
        case(
            "100000 x 100000 x 1000 bands",
            asset_tile("huge_header.tif"),
            IA,
            "has 1000 bands, more than the 64 this server opens (--max-asset-bands)",
        ),
        case("info of the huge header", Call::Info("huge_header.tif".into()), IA, "--max-asset-bands"),
        // Asset names.
        case("empty name", asset_tile(""), IA, "an asset path is empty"),
        case("NUL byte", asset_tile("utm_rgb_00.tif\0.png"), IA, "contains a NUL byte"),
        case(
            "name of 10 000 bytes",
            asset_tile(&"a".repeat(10_000)),
            IA,
            "an asset name of 10000 bytes exceeds the limit of 4096",
        ),
        case(
            "65 assets",
            Call::Tile(Box::new(tile_request(12, 1194, 1551, &[GOOD.3; 65]))),
            IA,
            "65 assets in one tile exceed the limit of 64",
        ),
        // Sizes and coordinates.
        case(
            "tile_size 100000",
            good_with(|r| r.tile_size = 100_000),
            IA,
            "tile_size=100000 is outside 1..=1024",
        ),
        case(
            "tile_size u32::MAX",
            good_with(|r| r.tile_size = u32::MAX),
            IA,
            "tile_size=4294967295 is outside",
        ),
        case("z u32::MAX", good_with(|r| r.z = u32::MAX), IA, "z=4294967295 is outside 0..=24"),
        case(
            "x u32::MAX at z 24",
            good_with(|r| (r.z, r.x) = (24, u32::MAX)),
            IA,
            "x=4294967295 is outside 0..=16777215",
        ),
        case(
            "y past the edge at z 0",
            good_with(|r| (r.z, r.x, r.y) = (0, 0, 1)),
            IA,
            "y=1 is outside 0..=0",
        ),
        case("band 0", good_with(|r| r.bands = vec![0]), IA, "bands are 1-based"),
        case("band u32::MAX", good_with(|r| r.bands = vec![u32::MAX]), IA, "band 4294967295 does not exist"),
        case(
            "response over --max-response-size",
            good_with(|r| (r.tile_size, r.format) = (1024, v1::ImageFormat::Npy as i32)),
            Code::ResourceExhausted,
            "over this server's limit of 1048576 bytes per response (--max-response-size)",
        ),
        // Enumerations and names.
        case("format 99", good_with(|r| r.format = 99), IA, "format=99 is not a known value"),
        case("resampling -1", good_with(|r| r.resampling = -1), IA, "resampling=-1 is not a known kernel"),
        case(
            "pixel_selection 42",
            good_with(|r| r.pixel_selection = 42),
            IA,
            "pixel_selection=42 is not a known value",
        ),
        case(
            "tile matrix set path",
            good_with(|r| r.tile_matrix_set = "../../etc/passwd".into()),
            IA,
            "tile matrix set '../../etc/passwd' is not served here",
        ),
        case("quality 101", good_with(|r| r.quality = 101), IA, "quality=101 is outside 1..=100"),
        // Batches.
        case("empty batch", Call::Tiles(Vec::new()), IA, "no tiles"),
        case(
            "batch of 1001",
            Call::Tiles(vec![tile_request(GOOD.0, GOOD.1, GOOD.2, &[GOOD.3]); 1001]),
            IA,
            "1001 tiles in one batch exceed the limit of 1000",
        ),
        // Message size and wire format.
        case(
            "request of 5 MiB",
            Call::Tile(Box::new(tile_request(12, 1194, 1551, &[&"a".repeat(5 << 20)]))),
            Code::ResourceExhausted,
            "exceeds this server's limit of 4194304 bytes (--max-request-size)",
        ),
        case("garbage bytes", Call::Raw(vec![0xff, 0xff, 0xff, 0xff]), IA, "is not a valid protobuf message"),
        case(
            "string field sent as a varint",
            Call::Raw(vec![0x32 & !0x07, 0x01]),
            IA,
            "not a valid protobuf message",
        ),
        case("length past the end", Call::Raw(vec![0x32, 0x10, b'a']), IA, "not a valid protobuf message"),
    ];
    // The API has no floating-point request fields: a NaN or an infinity can only arrive
    // as a double where an integer belongs (malformed), or in an unknown field (ignored,
    // and the request is judged on what it says).
    let mut nan_in_z = vec![0x11]; // field 2 (z) with wire type 1 (64-bit)
    nan_in_z.extend_from_slice(&f64::NAN.to_le_bytes());
    cases.push(case("NaN where z belongs", Call::Raw(nan_in_z), IA, "not a valid protobuf message"));
    let mut inf_unknown = vec![0xf9, 0x06]; // field 111, wire type 1
    inf_unknown.extend_from_slice(&f64::INFINITY.to_le_bytes());
    cases.push(case("infinity in an unknown field", Call::Raw(inf_unknown), IA, "no assets"));
    cases
}

#[tokio::test]
async fn every_hostile_input_gets_its_exact_code_and_message_and_the_server_keeps_serving() {
    let server = Server::start_with(ServerOptions {
        args: vec![
            "--allow-remote".into(),
            ALLOWED_PREFIX.into(),
            "--max-response-size".into(),
            MAX_RESPONSE.to_string(),
        ],
        ..Default::default()
    });
    let mut client = server.client().await;
    let channel = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let good = || tile_request(GOOD.0, GOOD.1, GOOD.2, &[GOOD.3]);
    let reference = client.get_tile(good()).await.expect("the good tile").into_inner();
    assert_eq!(reference.content_type, "image/png");
    let truncated = harness::truncated_read_tile(&mut client).await;

    let cases = catalogue(truncated);
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let workers_before = server.worker_pids();
    let mut failures = Vec::new();
    for Case { label, call, code, fragment } in cases {
        match run(&mut client, &channel, call).await {
            Ok(what) => failures.push(format!("{label}: expected {code:?}, got {what}")),
            Err(status) if status.code() != code || !status.message().contains(&fragment) => {
                failures.push(format!(
                    "{label}: expected {code:?} with {fragment:?}, got {:?}: {:?}",
                    status.code(),
                    status.message()
                ));
            }
            Err(_) => {}
        }
        // The server still renders the same good tile, byte for byte.
        let again =
            client.get_tile(good()).await.unwrap_or_else(|e| panic!("after {label}: {e:?}")).into_inner();
        assert_eq!(again.data, reference.data, "after {label}: the good tile changed");
    }
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
    // No hostile input crashed a worker.
    assert_eq!(server.worker_pids(), workers_before, "workers were replaced during the catalogue");
    assert_eq!(server.metric("tessera_worker_crashes_total"), 0);
}
