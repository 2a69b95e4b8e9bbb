//! What the server echoes of a request: names come back quoted, escaped (CR, LF, bidi
//! controls) and cut to 128 characters, numbers in a short form, and no message grows
//! past what clients accept in a trailer; grpc-python reads the answer to a 1 MB layer
//! name (refused by its length, unechoed) and to a long one within the bound (echoed,
//! cut) instead of failing with "Stream removed".

use prost::Message as _;
use tessera::pb::v1::{self, get_tile_request::Colormap};
use tonic::{Code, Status};

use crate::harness::{Server, tile_request, venv_python};

/// The good tile the requests are variations of.
const GOOD: (u32, u32, u32, &str) = (12, 1194, 1551, "utm_rgb_00.tif");

/// A name crafted to forge a log line and reverse the text after it.
const FORGING: &str = "evil\r\nINFO forged line\u{202E}fdp.exe";
/// [`FORGING`] as messages quote it.
const FORGING_QUOTED: &str = r"'evil\r\nINFO forged line\u{202e}fdp.exe'";

/// A megabyte-long name: over every name's bound (256 bytes), refused by its length.
fn megabyte_name() -> String {
    "L".repeat(1 << 20)
}

/// The longest name a request may give (256 bytes): echoed, cut.
fn long_name() -> String {
    "L".repeat(256)
}

/// The long name as messages quote it: its first 128 characters and its length.
fn long_quoted() -> String {
    format!("'{}'… (256 bytes)", "L".repeat(128))
}

/// The good tile's request, changed.
fn good_with(change: impl FnOnce(&mut v1::GetTileRequest)) -> v1::GetTileRequest {
    let mut request = tile_request(GOOD.0, GOOD.1, GOOD.2, &[GOOD.3]);
    change(&mut request);
    request
}

/// A tile request naming `layer` instead of assets.
fn layer_tile(layer: &str) -> v1::GetTileRequest {
    v1::GetTileRequest { layer: layer.into(), ..tile_request(GOOD.0, GOOD.1, GOOD.2, &[]) }
}

async fn tile_error(server: &Server, label: &str, request: v1::GetTileRequest) -> Status {
    match server.client().await.get_tile(request).await {
        Ok(_) => panic!("{label}: expected an error, got a tile"),
        Err(status) => status,
    }
}

/// The message for a colormap name that is not served, as quoted in it.
fn unknown_colormap(quoted: &str) -> String {
    format!(
        "unknown colormap {quoted}: no similar name among the 211 named colormaps (lowercase, e.g. viridis, magma, terrain; \"_r\" reverses a map)"
    )
}

/// Asserts the code and the exact message.
fn assert_status(label: &str, status: &Status, code: Code, message: &str) {
    assert_eq!(status.code(), code, "{label}: wrong code; message: {:?}", status.message());
    assert_eq!(status.message(), message, "{label}");
}

#[tokio::test]
async fn long_names_come_back_cut_to_128_characters_and_megabyte_ones_are_refused_by_length() {
    let server = Server::start();
    let (long, quoted, big) = (long_name(), long_quoted(), megabyte_name());

    let status = tile_error(&server, "layer", layer_tile(&long)).await;
    assert_status(
        "layer",
        &status,
        Code::NotFound,
        &format!("layer {quoted} is not served here: this server has no layers configured"),
    );
    let status = tile_error(&server, "megabyte layer", layer_tile(&big)).await;
    assert_status(
        "megabyte layer",
        &status,
        Code::InvalidArgument,
        "layer is 1048576 bytes long, over the limit of 256 bytes",
    );

    let colormap = good_with(|r| r.colormap = Some(Colormap::ColormapName(long.clone())));
    let status = tile_error(&server, "colormap", colormap).await;
    assert_status("colormap", &status, Code::InvalidArgument, &unknown_colormap(&quoted));
    let colormap = good_with(|r| r.colormap = Some(Colormap::ColormapName(big.clone())));
    let status = tile_error(&server, "megabyte colormap", colormap).await;
    assert_status(
        "megabyte colormap",
        &status,
        Code::InvalidArgument,
        "colormap_name is 1048576 bytes long, over the limit of 256 bytes",
    );

    let tms = good_with(|r| r.tile_matrix_set.clone_from(&long));
    let status = tile_error(&server, "tile matrix set", tms).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(&format!("tile matrix set {quoted} is not served here; use one of ")),
        "{:?}",
        status.message()
    );
    // The quoted name and the message around it stay far under a trailer's limits.
    assert!(status.message().len() < 2048, "{} bytes", status.message().len());
    let tms = good_with(|r| r.tile_matrix_set.clone_from(&big));
    let status = tile_error(&server, "megabyte tile matrix set", tms).await;
    assert_status(
        "megabyte tile matrix set",
        &status,
        Code::InvalidArgument,
        "tile_matrix_set is 1048576 bytes long, over the limit of 256 bytes",
    );
}

#[tokio::test]
async fn grpc_python_reads_the_answers_to_long_and_megabyte_layer_names() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (request, big) = (dir.path().join("request.pb"), dir.path().join("big.pb"));
    std::fs::write(&request, layer_tile(&long_name()).encode_to_vec()).unwrap();
    std::fs::write(&big, layer_tile(&megabyte_name()).encode_to_vec()).unwrap();
    // The request as raw bytes through a generic call: no stubs needed.
    let script = r#"
import sys, grpc
with grpc.insecure_channel(sys.argv[1]) as channel:
    call = channel.unary_unary("/tessera.v1.TileService/GetTile")
    for path in sys.argv[2:]:
        try:
            call(open(path, "rb").read(), timeout=30)
            print("OK")
        except grpc.RpcError as e:
            print(e.code().name)
            print(e.details())
"#;
    let output = tokio::process::Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .arg(&server.address)
        .arg(&request)
        .arg(&big)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        stdout.trim_end(),
        format!(
            "NOT_FOUND\nlayer {} is not served here: this server has no layers configured\nINVALID_ARGUMENT\nlayer is 1048576 bytes long, over the limit of 256 bytes",
            long_quoted()
        )
    );
}

#[tokio::test]
async fn line_breaks_and_bidi_overrides_in_names_come_back_escaped() {
    let server = Server::start();

    let status = tile_error(&server, "layer", layer_tile(FORGING)).await;
    assert_status(
        "layer",
        &status,
        Code::NotFound,
        &format!("layer {FORGING_QUOTED} is not served here: this server has no layers configured"),
    );

    let colormap = good_with(|r| r.colormap = Some(Colormap::ColormapName(FORGING.into())));
    let status = tile_error(&server, "colormap", colormap).await;
    assert_status("colormap", &status, Code::InvalidArgument, &unknown_colormap(FORGING_QUOTED));

    let tms = good_with(|r| r.tile_matrix_set = FORGING.into());
    let status = tile_error(&server, "tile matrix set", tms).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(&format!("tile matrix set {FORGING_QUOTED} is not served here")),
        "{:?}",
        status.message()
    );

    let expression = good_with(|r| r.expression = "b1\u{202E}+b2".into());
    let status = tile_error(&server, "expression", expression).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .starts_with(r"expression at column 3 (1-based): unexpected character '\u{202e}'; allowed"),
        "{:?}",
        status.message()
    );

    let point = v1::GetPointRequest { layer: FORGING.into(), lon: 0.0, lat: 0.0, ..Default::default() };
    let status = server.client().await.get_point(point).await.unwrap_err();
    assert_status(
        "point layer",
        &status,
        Code::NotFound,
        &format!("layer {FORGING_QUOTED} is not served here: this server has no layers configured"),
    );
}

#[tokio::test]
async fn huge_numbers_come_back_in_scientific_notation() {
    let server = Server::start();

    let status = tile_error(&server, "buffer", good_with(|r| r.buffer = 1e308)).await;
    assert_status(
        "buffer",
        &status,
        Code::InvalidArgument,
        "buffer=1e308 must be a multiple of 0.5 in 0..=64 (pixels on each side)",
    );

    let rescale = good_with(|r| r.rescale = vec![v1::RescaleRange { min: 1e300, max: -1e-300 }]);
    let status = tile_error(&server, "rescale", rescale).await;
    assert_status(
        "rescale",
        &status,
        Code::InvalidArgument,
        "rescale range 1e300,-1e-300 is empty or inverted: min must be less than max",
    );

    let point =
        v1::GetPointRequest { assets: vec![GOOD.3.into()], lon: -1.5e308, lat: 0.0, ..Default::default() };
    let status = server.client().await.get_point(point).await.unwrap_err();
    assert_status("lon", &status, Code::InvalidArgument, "lon=-1.5e308 is not a longitude in [-180, 180]");
}
