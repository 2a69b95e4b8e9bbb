//! The running binary as a generic gRPC client sees it: every command of the README's
//! grpcurl cookbook (list and describe through reflection, which grpcurl 1.8 speaks as
//! v1alpha; GetTile and GetTiles from JSON; saving the image; asset info; health) runs
//! against a live server and prints what the README says it prints, so the docs cannot
//! rot. Error details (`google.rpc.BadRequest`, `RetryInfo`) decode too: reflection
//! serves their files in both protocol versions.

use std::path::PathBuf;

use prost::Message as _;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::harness::{Server, ServerOptions};

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The grpcurl executable: `$TESSERA_GRPCURL`, else `.venv/bin/grpcurl` in the crate.
/// Fails (never skips) when it is missing.
fn grpcurl_path() -> PathBuf {
    let path = std::env::var_os("TESSERA_GRPCURL")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/grpcurl"), PathBuf::from);
    assert!(
        path.is_file(),
        "grpcurl not found at {}: run `make venv` (or set TESSERA_GRPCURL to a grpcurl executable)",
        path.display()
    );
    path
}

/// The README's grpcurl cookbook: each command with the texts the `# expect:` lines
/// before it say it must print.
fn cookbook() -> Vec<(Vec<String>, String)> {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("<!-- grpcurl-cookbook -->").expect("no cookbook marker in the README");
    let block = readme[start..].split("```sh\n").nth(1).and_then(|b| b.split("\n```").next()).unwrap();
    let (mut out, mut expect, mut pending) = (Vec::new(), Vec::new(), String::new());
    for line in block.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix("# expect: ") {
            expect.push(text.to_owned());
        } else if let Some(part) = line.strip_suffix('\\') {
            pending.push_str(part);
        } else if !line.is_empty() && !line.starts_with('#') {
            pending.push_str(line);
            out.push((std::mem::take(&mut expect), std::mem::take(&mut pending)));
        }
    }
    out
}

#[tokio::test]
async fn every_command_of_the_readme_cookbook_runs_and_prints_what_it_promises() {
    // As `make run` serves: with the demo layer.
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo.toml");
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), demo.display().to_string()],
        ..ServerOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let commands = cookbook();
    assert!(commands.len() >= 9, "the cookbook parsed into only {} commands", commands.len());
    let grpcurl = grpcurl_path().display().to_string();
    for (expect, command) in &commands {
        let line = command.replace(".venv/bin/grpcurl", &grpcurl).replace("127.0.0.1:50051", &server.address);
        let mut bash = Command::new("bash");
        bash.args(["-o", "pipefail", "-c", &line]).current_dir(dir.path());
        let stdout = stdout_of_success(bash, command).await;
        for text in expect {
            assert!(stdout.contains(text.as_str()), "{command}\ndid not print {text:?}:\n{stdout}");
        }
    }
    // The command that saves the image wrote a 256 x 256 PNG.
    let png = std::fs::read(dir.path().join("tile.png")).expect("no tile.png was written");
    assert!(png.starts_with(PNG_SIGNATURE));
    assert_eq!(&png[12..16], b"IHDR");
    let size = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!(size, (256, 256));
}

/// Runs `command` (killed if the test ends first), asserts it succeeded and returns its
/// standard output; `what` names it in the failure.
async fn stdout_of_success(mut command: Command, what: &str) -> String {
    let output = command.kill_on_drop(true).output().await.unwrap();
    assert!(
        output.status.success(),
        "{what}\nfailed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `BadRequest` detail of a zoom past WebMercatorQuad's last, as grpcurl prints it
/// once it can resolve the type through reflection.
fn zoom_25_bad_request() -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": "z", "description": "z=25 is outside 0..=24 for WebMercatorQuad"}]
    })
}

#[tokio::test]
async fn grpcurl_decodes_the_bad_request_of_a_batch_item_and_of_a_failed_call() {
    let server = Server::start();
    let grpcurl = grpcurl_path();
    let good =
        json!({"z": 12, "x": 1194, "y": 1551, "assets": ["utm_rgb_00.tif"], "format": "IMAGE_FORMAT_NPY"});
    let bad = json!({"z": 25, "x": 0, "y": 0, "assets": ["utm_rgb_00.tif"]});

    // A batch: the good tile comes back, the bad one carries its status.
    let batch = json!({"tiles": [good, bad]}).to_string();
    let mut get_tiles = Command::new(&grpcurl);
    get_tiles.args(["-plaintext", "-d", &batch, &server.address, "tessera.v1.TileService/GetTiles"]);
    let stdout = stdout_of_success(get_tiles, "GetTiles").await;
    assert!(!stdout.contains("is not recognized"), "{stdout}");
    let mut results: Vec<Value> =
        serde_json::Deserializer::from_str(&stdout).into_iter().collect::<Result<_, _>>().unwrap();
    // grpcurl omits the zero index of the first tile.
    results.sort_by_key(|r| r["index"].as_u64().unwrap_or(0));
    assert_eq!(results.len(), 2, "{stdout}");
    assert_eq!(results[0]["tile"]["contentType"], "application/x-npy", "{stdout}");
    assert_eq!(
        results[1]["error"],
        json!({
            "code": 3,
            "message": "z=25 is outside 0..=24 for WebMercatorQuad",
            "details": [zoom_25_bad_request()]
        })
    );

    // The same tile alone fails the call: grpcurl prints the status and its details
    // (from the grpc-status-details-bin trailer) on stderr and exits 64 + the code.
    let output = Command::new(&grpcurl)
        .args(["-plaintext", "-v", "-d", &bad.to_string(), &server.address, "tessera.v1.TileService/GetTile"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64 + 3), "{stderr}");
    assert!(
        stderr.contains(
            "  Code: InvalidArgument\n  Message: z=25 is outside 0..=24 for WebMercatorQuad\n  Details:\n"
        ),
        "{stderr}"
    );
    let detail = stderr.split("  1)\t").nth(1).unwrap_or_else(|| panic!("no detail printed:\n{stderr}"));
    let detail: Value = serde_json::Deserializer::from_str(detail).into_iter().next().unwrap().unwrap();
    assert_eq!(detail, zoom_25_bad_request());
}

/// Per symbol asked for with `file_containing_symbol`, the name of the file reflection
/// answers with and that file's imports, over reflection protocol `$version`.
macro_rules! files_containing {
    ($version:ident, $server:expr, $symbols:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let requests: Vec<_> = $symbols
            .iter()
            .map(|symbol| ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol((*symbol).to_owned())),
            })
            .collect();
        let channel = tonic::transport::Channel::from_shared($server.url()).unwrap().connect().await.unwrap();
        let mut client = ServerReflectionClient::new(channel);
        let mut responses =
            client.server_reflection_info(tokio_stream::iter(requests)).await.unwrap().into_inner();
        let mut files = Vec::new();
        while let Some(response) = responses.message().await.unwrap() {
            let found = match response.message_response {
                Some(MessageResponse::FileDescriptorResponse(found)) => found,
                other => panic!("{}: {other:?}", stringify!($version)),
            };
            let [file] = found.file_descriptor_proto.as_slice() else {
                panic!(
                    "{}: {} files for one symbol",
                    stringify!($version),
                    found.file_descriptor_proto.len()
                );
            };
            let file = prost_types::FileDescriptorProto::decode(file.as_slice()).unwrap();
            files.push((file.name().to_owned(), file.dependency));
        }
        files
    }};
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_serve_every_message_an_error_detail_needs() {
    let server = Server::start();
    let symbols = [
        "google.rpc.Status",
        "google.rpc.BadRequest",
        "google.rpc.RetryInfo",
        "google.protobuf.Any",
        "google.protobuf.Duration",
    ];
    let file =
        |name: &str, imports: &[&str]| (name.to_owned(), imports.iter().map(|i| (*i).to_owned()).collect());
    let expected: Vec<(String, Vec<String>)> = vec![
        file("google/rpc/status.proto", &["google/protobuf/any.proto"]),
        file("google/rpc/error_details.proto", &["google/protobuf/duration.proto"]),
        file("google/rpc/error_details.proto", &["google/protobuf/duration.proto"]),
        file("google/protobuf/any.proto", &[]),
        file("google/protobuf/duration.proto", &[]),
    ];
    assert_eq!(files_containing!(v1, server, symbols), expected, "v1");
    assert_eq!(files_containing!(v1alpha, server, symbols), expected, "v1alpha");
}
